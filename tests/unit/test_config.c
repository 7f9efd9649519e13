/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* mkdtemp, setenv */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"

#define NAME "test.conf"

static const char full[] =
    "# custody configuration used by the unit test\n"
    "\n"
    "data-dir /srv/custody\n"
    "  # an indented comment\n"
    "pkcs11-module /usr/lib/softhsm/libsofthsm2.so\n"
    "token pkcs11:token=agents;id=%a1#not-a-comment\n"
    "pin-file /etc/custody/user.pin   # trailing comment\n"
    "policy /etc/custody/policy.json\n"
    "listen-unix /run/custody/custody.sock\n"
    "\tlisten-tcp\t[::1]:8443\n"
    "tls-cert /etc/custody/tls/cert.pem\n"
    "tls-key /etc/custody/tls/key.pem\n"
    "tls-client-ca /etc/custody/tls/ca.pem\n"
    "issuer https://custody.example.org/#issuer\n"
    "log-origin custody.example.org/log\n"
    "checkpoint-interval 15m\n"
    "workers 8\n"
    "jwt-ed25519-alg Ed25519\n"
    "pkcs11-env SOFTHSM2_CONF=/etc/softhsm/softhsm2.conf\n"
    "pkcs11-env TPM2_PKCS11_STORE=/var/lib/tpm2=store\n"
    "pkcs11-env EMPTY_VALUE=\n"
    "# last line has no newline\n"
    "   ";

static int
parse(const char *text, struct config **cfgp, char *err, size_t errsz)
{
	return config_parse(NAME, text, strlen(text), cfgp, err, errsz);
}

/* text is refused with CUSTODY_E_CONFIG and a message containing want. */
static void
expect_error_len(const char *text, size_t len, const char *want)
{
	struct config *cfg = (struct config *)0x1;
	char err[512];

	memset(err, 'X', sizeof(err));
	if (config_parse(NAME, text, len, &cfg, err, sizeof(err)) !=
	    CUSTODY_E_CONFIG)
		fail_msg("accepted: '%.*s'", (int)len, text);
	assert_ptr_equal(cfg, (struct config *)0x1); /* untouched */
	assert_non_null(memchr(err, '\0', sizeof(err)));
	if (strstr(err, want) == NULL)
		fail_msg("message '%s' lacks '%s'", err, want);
}

static void
expect_error(const char *text, const char *want)
{
	expect_error_len(text, strlen(text), want);
}

static void
test_full_file(void **state)
{
	struct config *cfg = NULL;
	char err[256];

	(void)state;
	assert_int_equal(parse(full, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->path, NAME);
	assert_string_equal(cfg->data_dir, "/srv/custody");
	assert_string_equal(
	    cfg->pkcs11_module, "/usr/lib/softhsm/libsofthsm2.so");
	assert_string_equal(
	    cfg->token, "pkcs11:token=agents;id=%a1#not-a-comment");
	assert_string_equal(cfg->pin_file, "/etc/custody/user.pin");
	assert_string_equal(cfg->policy, "/etc/custody/policy.json");
	assert_string_equal(cfg->listen_unix, "/run/custody/custody.sock");
	assert_string_equal(cfg->listen_tcp, "[::1]:8443");
	assert_string_equal(cfg->tls_cert, "/etc/custody/tls/cert.pem");
	assert_string_equal(cfg->tls_key, "/etc/custody/tls/key.pem");
	assert_string_equal(cfg->tls_client_ca, "/etc/custody/tls/ca.pem");
	assert_string_equal(cfg->issuer, "https://custody.example.org/#issuer");
	assert_string_equal(cfg->log_origin, "custody.example.org/log");
	assert_int_equal(cfg->checkpoint_interval, 900);
	assert_int_equal(cfg->workers, 8);
	assert_string_equal(cfg->jwt_ed25519_alg, "Ed25519");
	assert_int_equal(cfg->nenv, 3);
	assert_string_equal(cfg->env[0].name, "SOFTHSM2_CONF");
	assert_string_equal(cfg->env[0].value, "/etc/softhsm/softhsm2.conf");
	assert_string_equal(
	    config_env_get(cfg, "TPM2_PKCS11_STORE"), "/var/lib/tpm2=store");
	assert_string_equal(config_env_get(cfg, "EMPTY_VALUE"), "");
	assert_null(config_env_get(cfg, "HOME"));
	assert_null(config_env_get(NULL, "HOME"));
	config_free(cfg);
	config_free(NULL);
}

static void
test_defaults(void **state)
{
	struct config *cfg = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char err[256];

	(void)state;
	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > 256)
		ncpu = 256;
	assert_int_equal(
	    config_parse(NAME, NULL, 0, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->data_dir, "/var/lib/custody");
	assert_null(cfg->pkcs11_module);
	assert_string_equal(cfg->token, "pkcs11:token=custody");
	assert_string_equal(cfg->pin_file, "/var/lib/custody/user.pin");
	assert_null(cfg->policy);
	assert_string_equal(cfg->listen_unix, "/var/lib/custody/custody.sock");
	assert_null(cfg->listen_tcp);
	assert_null(cfg->tls_cert);
	assert_null(cfg->tls_key);
	assert_null(cfg->tls_client_ca);
	assert_null(cfg->issuer);
	assert_null(cfg->log_origin);
	assert_int_equal(cfg->checkpoint_interval, 1);
	assert_int_equal(cfg->workers, ncpu);
	assert_string_equal(cfg->jwt_ed25519_alg, "EdDSA");
	assert_int_equal(cfg->nenv, 0);
	config_free(cfg);

	/* DATA follows data-dir; a trailing '/' is not doubled */
	assert_int_equal(parse("# only comments\n\n  \t\ndata-dir /srv/c/\n",
			     &cfg, err, sizeof(err)),
	    0);
	assert_string_equal(cfg->data_dir, "/srv/c/");
	assert_string_equal(cfg->pin_file, "/srv/c/user.pin");
	assert_string_equal(cfg->listen_unix, "/srv/c/custody.sock");
	config_free(cfg);
}

static void
test_unknown_keyword(void **state)
{
	(void)state;
	expect_error("data-dir /x\n\ntokn pkcs11:token=a\n",
	    NAME ":3: unknown keyword 'tokn'");
	expect_error("Token pkcs11:token=a\n", NAME ":1: unknown keyword "
						    "'Token'");
	expect_error("data-dir=/x\n", NAME ":1: unknown keyword 'data-dir=/x'");
	/* a '#' inside a word does not start a comment */
	expect_error("issuer#x y\n", NAME ":1: unknown keyword 'issuer#x'");
}

static void
test_missing_value(void **state)
{
	(void)state;
	expect_error("# c\n\ntoken\n", NAME ":3: token: missing value");
	expect_error("workers   \t \n", NAME ":1: workers: missing value");
	expect_error("issuer # no value\n", NAME ":1: issuer: missing value");
	expect_error("\n\n\n\npkcs11-env", NAME ":5: pkcs11-env: missing "
						"value");
}

static void
test_duplicate(void **state)
{
	static const char *lines[] = {
	    "data-dir /a",
	    "pkcs11-module /a",
	    "token pkcs11:token=a",
	    "pin-file /a",
	    "policy /a",
	    "listen-unix /a",
	    "listen-tcp a:1",
	    "tls-cert /a",
	    "tls-key /a",
	    "tls-client-ca /a",
	    "issuer a",
	    "log-origin a",
	    "checkpoint-interval 1s",
	    "workers 1",
	    "jwt-ed25519-alg EdDSA",
	};
	char text[256], want[128];
	size_t i;

	(void)state;
	expect_error("token pkcs11:token=a\n# comment\n\n"
		     "token pkcs11:token=b\n",
	    NAME ":4: duplicate keyword 'token' (first given on line 1)");
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(text, sizeof(text), "\n%s\n%s\n", lines[i], lines[i]);
		snprintf(want, sizeof(want),
		    NAME ":3: duplicate keyword "
			 "'%.*s' (first given on line 2)",
		    (int)strcspn(lines[i], " "), lines[i]);
		expect_error(text, want);
	}
}

static void
test_relative_paths(void **state)
{
	static const char *kw[] = {
	    "data-dir",
	    "pkcs11-module",
	    "pin-file",
	    "policy",
	    "listen-unix",
	    "tls-cert",
	    "tls-key",
	    "tls-client-ca",
	};
	char text[128], want[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(kw) / sizeof(kw[0]); i++) {
		snprintf(text, sizeof(text), "# x\n%s relative/path\n", kw[i]);
		snprintf(want, sizeof(want),
		    NAME ":2: %s: 'relative/path' is "
			 "not an absolute path",
		    kw[i]);
		expect_error(text, want);
		snprintf(text, sizeof(text), "%s ./x\n", kw[i]);
		expect_error(text, "is not an absolute path");
		snprintf(text, sizeof(text), "%s ~/x\n", kw[i]);
		expect_error(text, "is not an absolute path");
	}
}

static void
test_token(void **state)
{
	(void)state;
	expect_error("\ntoken custody\n", NAME ":2: token: 'custody' is not a "
					       "PKCS#11 URI");
	expect_error("token PKCS11:token=a\n", NAME ":1: token:");
	expect_error("token pkcs11\n", NAME ":1: token:");
}

static void
test_checkpoint_interval(void **state)
{
	static const char *bad[] = {"0s", "1", "1w", "1.5h", "-1s", "abc",
	    "99999999999999999999d", "36526d"};
	struct config *cfg = NULL;
	char text[128], err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(
		    text, sizeof(text), "\n\ncheckpoint-interval %s\n", bad[i]);
		expect_error(
		    text, NAME ":3: checkpoint-interval: bad duration");
	}
	assert_int_equal(
	    parse("checkpoint-interval 7d\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->checkpoint_interval, 7 * 86400);
	config_free(cfg);
}

static void
test_workers(void **state)
{
	static const char *bad[] = {
	    "0", "257", "-1", "+4", "abc", "1.5", "4x", "9999999999", "1000"};
	struct config *cfg = NULL;
	char text[128], err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "# w\nworkers %s\n", bad[i]);
		expect_error(text, NAME ":2: workers: ");
	}
	assert_int_equal(parse("workers 1\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->workers, 1);
	config_free(cfg);
	assert_int_equal(parse("workers 256\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->workers, 256);
	config_free(cfg);
}

static void
test_jwt_alg(void **state)
{
	struct config *cfg = NULL;
	char err[256];

	(void)state;
	expect_error("jwt-ed25519-alg eddsa\n",
	    NAME ":1: jwt-ed25519-alg: "
		 "'eddsa' is neither EdDSA nor Ed25519");
	expect_error("\njwt-ed25519-alg ES256\n", NAME ":2: jwt-ed25519-alg:");
	assert_int_equal(
	    parse("jwt-ed25519-alg EdDSA\n", &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->jwt_ed25519_alg, "EdDSA");
	config_free(cfg);
}

static void
test_listen_tcp(void **state)
{
	static const char *bad[] = {
	    "localhost",
	    "localhost:0",
	    "localhost:65536",
	    ":8443",
	    "::1:8443",
	    "[::1]8443",
	    "[::1",
	    "[]:80",
	    "host:80a",
	    "host:",
	    "host:-1",
	    "host:+80",
	    "ho st:80",
	    "[::1]:",
	    "a/b:80",
	};
	static const char *good[] = {
	    "localhost:8443",
	    "127.0.0.1:1",
	    "[::1]:65535",
	    "[fe80::1%eth0]:443",
	    "custody.example.org:08443",
	};
	static const char tls[] =
	    "tls-cert /c\ntls-key /k\ntls-client-ca /ca\n";
	struct config *cfg = NULL;
	char text[256], err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%slisten-tcp %s\n", tls, bad[i]);
		expect_error(text, NAME ":4: listen-tcp: ");
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "%slisten-tcp %s\n", tls, good[i]);
		if (parse(text, &cfg, err, sizeof(err)) != 0)
			fail_msg("'%s' refused: %s", good[i], err);
		assert_string_equal(cfg->listen_tcp, good[i]);
		config_free(cfg);
	}
	/* TCP only ever with mutual TLS: the error names the listen-tcp line */
	expect_error("# x\nlisten-tcp a:1\ntls-cert /c\ntls-key /k\n",
	    NAME ":2: listen-tcp needs tls-cert, tls-key and tls-client-ca");
	expect_error("listen-tcp a:1\n", NAME ":1: listen-tcp needs");
}

static void
test_pkcs11_env(void **state)
{
	static const char *pin[] = {
	    "USER_PIN=1234",
	    "pin=1",
	    "SoPin=1",
	    "SOFTHSM2_PIN_FILE=/x",
	    "SPINNER=x",
	    "pIn=x",
	};
	static const char *badname[] = {
	    "1FOO=x",
	    "=x",
	    "FOO-BAR=x",
	    "FOO BAR=x",
	    "F.O=x",
	    "\xc3\xa9=x",
	};
	struct config *cfg = NULL;
	char text[2048], err[256];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(pin) / sizeof(pin[0]); i++) {
		snprintf(text, sizeof(text), "\npkcs11-env %s\n", pin[i]);
		expect_error(text, NAME ":2: pkcs11-env: refusing");
		expect_error(text, "a PIN is never passed in the environment");
	}
	for (i = 0; i < sizeof(badname) / sizeof(badname[0]); i++) {
		snprintf(text, sizeof(text), "pkcs11-env %s\n", badname[i]);
		expect_error(text, NAME ":1: pkcs11-env: ");
	}
	expect_error("pkcs11-env FOO\n", NAME ":1: pkcs11-env: expected "
					      "NAME=VALUE");
	expect_error("pkcs11-env A=1\npkcs11-env B=2\n# c\npkcs11-env A=3\n",
	    NAME ":4: pkcs11-env: 'A' already set on line 1");

	/* up to CONFIG_MAX_ENV distinct names, then refused */
	text[0] = '\0';
	for (i = 0; i < CONFIG_MAX_ENV; i++) {
		n = strlen(text);
		snprintf(
		    text + n, sizeof(text) - n, "pkcs11-env V%zu=%zu\n", i, i);
	}
	assert_int_equal(parse(text, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->nenv, CONFIG_MAX_ENV);
	assert_string_equal(config_env_get(cfg, "V15"), "15");
	config_free(cfg);
	n = strlen(text);
	snprintf(text + n, sizeof(text) - n, "pkcs11-env V99=1\n");
	expect_error(text, NAME ":17: pkcs11-env: more than 16 variables");
}

static void
test_apply_env(void **state)
{
	struct config *cfg = NULL;
	char err[256];

	(void)state;
	unsetenv("CUSTODY_TEST_A");
	setenv("CUSTODY_TEST_B", "old", 1);
	assert_int_equal(parse("pkcs11-env CUSTODY_TEST_A=/a b\n"
			       "pkcs11-env CUSTODY_TEST_B=new\n",
			     &cfg, err, sizeof(err)),
	    0);
	assert_int_equal(config_apply_env(cfg), 0);
	assert_string_equal(getenv("CUSTODY_TEST_A"), "/a b");
	assert_string_equal(getenv("CUSTODY_TEST_B"), "new");
	config_free(cfg);
	unsetenv("CUSTODY_TEST_A");
	unsetenv("CUSTODY_TEST_B");
}

static void
test_control_characters(void **state)
{
	(void)state;
	expect_error("\nissuer a\x01"
		     "b\n",
	    NAME ":2: control character 0x01");
	expect_error("issuer a\x1b[31m\n", NAME ":1: control character 0x1b");
	expect_error("issuer a\x7f\n", NAME ":1: control character 0x7f");
	expect_error("issuer a\tb\n", NAME ":1: issuer: value contains a tab");
	expect_error("# ok\nissuer a\r\n", NAME ":2: carriage return");
	expect_error_len("# ok\nissuer a\0b\n", 16, NAME ":2: NUL byte");
	expect_error_len("\0", 1, NAME ":1: NUL byte");
}

static void
test_long_line(void **state)
{
	struct config *cfg = NULL;
	char *text, err[256];
	size_t n = 4096;

	(void)state;
	/* exactly 4096 bytes before the newline is allowed */
	assert_non_null(text = malloc(2 + n + 2));
	memcpy(text, "#\n", 2);
	memcpy(text + 2, "issuer ", 7);
	memset(text + 9, 'a', n - 7);
	text[2 + n] = '\n';
	text[2 + n + 1] = '\0';
	assert_int_equal(parse(text, &cfg, err, sizeof(err)), 0);
	assert_int_equal(strlen(cfg->issuer), n - 7);
	config_free(cfg);
	free(text);

	n = 4097;
	assert_non_null(text = malloc(2 + n + 2));
	memcpy(text, "#\n", 2);
	memcpy(text + 2, "issuer ", 7);
	memset(text + 9, 'a', n - 7);
	text[2 + n] = '\n';
	text[2 + n + 1] = '\0';
	expect_error(text, NAME ":2: line longer than 4096 bytes");
	/* also without a final newline, and as a comment */
	text[2 + n] = '\0';
	expect_error(text, NAME ":2: line longer than 4096 bytes");
	text[2] = '#';
	expect_error(text, NAME ":2: line longer than 4096 bytes");
	free(text);
}

static void
test_file_too_large(void **state)
{
	size_t n = 1024 * 1024 + 1;
	char *text;

	(void)state;
	assert_non_null(text = malloc(n));
	memset(text, '\n', n);
	expect_error_len(text, n, NAME ": larger than 1 MiB");
	/* exactly 1 MiB of blank lines is fine */
	{
		struct config *cfg = NULL;
		char err[256];

		assert_int_equal(
		    config_parse(NAME, text, n - 1, &cfg, err, sizeof(err)), 0);
		config_free(cfg);
	}
	free(text);
}

static void
test_null_errbuf(void **state)
{
	struct config *cfg = NULL;

	(void)state;
	assert_int_equal(config_parse(NAME, "bogus x\n", 8, &cfg, NULL, 0),
	    CUSTODY_E_CONFIG);
	assert_null(cfg);
	assert_int_equal(
	    config_parse(NAME, "x", 1, NULL, NULL, 0), CUSTODY_E_INVALID_ARG);
}

static void
test_choose_path(void **state)
{
	const char *explicit_path = "/etc/custody/other.conf";

	(void)state;
	setenv("CUSTODY_CONF", "/from/env.conf", 1);
	assert_ptr_equal(config_choose_path(explicit_path), explicit_path);
	assert_string_equal(config_choose_path(NULL), "/from/env.conf");
	setenv("CUSTODY_CONF", "", 1);
	assert_string_equal(config_choose_path(NULL), CONFIG_DEFAULT_PATH);
	unsetenv("CUSTODY_CONF");
	assert_string_equal(config_choose_path(NULL), CONFIG_DEFAULT_PATH);
	assert_string_equal(
	    config_choose_path(NULL), "/etc/custody/custody.conf");
	assert_ptr_equal(config_choose_path(explicit_path), explicit_path);
}

static void
write_file(const char *path, const char *buf, size_t len)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void
test_load(void **state)
{
	char dir[] = "/tmp/test_config.XXXXXX", path[128], err[512], *big;
	struct config *cfg = NULL;
	size_t n = 1024 * 1024 + 1;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/custody.conf", dir);
	write_file(path, full, strlen(full));
	assert_int_equal(config_load(path, &cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg->path, path);
	assert_string_equal(
	    cfg->token, "pkcs11:token=agents;id=%a1#not-a-comment");
	assert_int_equal(cfg->nenv, 3);
	config_free(cfg);
	cfg = NULL;

	/* errors name the file as given and the line */
	write_file(path, "data-dir /x\nworkers 0\n", 22);
	assert_int_equal(
	    config_load(path, &cfg, err, sizeof(err)), CUSTODY_E_CONFIG);
	assert_null(cfg);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "custody.conf:2: workers:"));

	assert_non_null(big = malloc(n));
	memset(big, '#', n);
	write_file(path, big, n);
	free(big);
	assert_int_equal(
	    config_load(path, &cfg, err, sizeof(err)), CUSTODY_E_CONFIG);
	assert_non_null(strstr(err, "larger than 1 MiB"));
	assert_int_equal(unlink(path), 0);

	assert_int_equal(
	    config_load(path, &cfg, err, sizeof(err)), CUSTODY_E_IO);
	assert_null(cfg);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file or directory"));

	assert_int_equal(
	    config_load(dir, &cfg, err, sizeof(err)), CUSTODY_E_CONFIG);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_unknown_keyword),
	    cmocka_unit_test(test_missing_value),
	    cmocka_unit_test(test_duplicate),
	    cmocka_unit_test(test_relative_paths),
	    cmocka_unit_test(test_token),
	    cmocka_unit_test(test_checkpoint_interval),
	    cmocka_unit_test(test_workers),
	    cmocka_unit_test(test_jwt_alg),
	    cmocka_unit_test(test_listen_tcp),
	    cmocka_unit_test(test_pkcs11_env),
	    cmocka_unit_test(test_apply_env),
	    cmocka_unit_test(test_control_characters),
	    cmocka_unit_test(test_long_line),
	    cmocka_unit_test(test_file_too_large),
	    cmocka_unit_test(test_null_errbuf),
	    cmocka_unit_test(test_choose_path),
	    cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
