/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of service.c on the mock PKCS#11 module and a real SQLite file:
 * the service.start and service.stop leaves, the run marker that tells an
 * unclean shutdown, the checkpointer, the final checkpoint, and the refusals
 * that write nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "keys.h"
#include "mock_p11.h"
#include "policy.h"
#include "secret.h"
#include "service.h"
#include "store.h"
#include "testutil.h"
#include "token-priv.h"
#include "util.h"

#define NOW 1795000000

struct fixture {
	char dir[64];
	char db[96];
	struct config *cfg;
	struct config *cfg_no_origin;
};

static struct token *
open_mock(void)
{
	struct secret *pin = NULL;
	struct token_opts to;
	struct token *t = NULL;

	assert_int_equal(secret_from_bytes("1234", 4, &pin), 0);
	to = (struct token_opts){NULL, "pkcs11:token=custody", pin};
	assert_int_equal(
	    token_open_functions(mock_p11_functions(), &to, &t), 0);
	secret_free(pin);
	return t;
}

static struct config *
make_config(const char *dir, const char *origin)
{
	char text[512];
	struct config *cfg = NULL;

	snprintf(text, sizeof(text),
	    "data-dir %s\ncheckpoint-interval 1s\n%s%s%s", dir,
	    origin ? "log-origin " : "", origin ? origin : "",
	    origin ? "\n" : "");
	assert_int_equal(
	    config_parse("test.conf", text, strlen(text), &cfg, NULL, 0), 0);
	return cfg;
}

/* A data directory as custody init leaves it, with or without a
 * checkpoint key. */
static void
init_store(struct fixture *f, int with_checkpoint_key)
{
	struct keys_create_req req = {.agent = "custody",
	    .owner = "custody",
	    .purpose = "checkpoint",
	    .alg = CUSTODY_ALG_ED25519};
	struct token *t = open_mock();
	struct store *st = NULL;
	struct audit *a = NULL;
	struct store_key *k = NULL;
	struct keys_env env;

	assert_int_equal(store_open(f->db, &st), 0);
	assert_int_equal(audit_open(f->db, &a), 0);
	env = (struct keys_env){t, st, a, "unix:uid=0", "(direct)", NULL};
	if (with_checkpoint_key) {
		assert_int_equal(keys_create(&env, &req, NOW, &k, NULL), 0);
		store_key_free(k);
	}
	audit_close(a);
	store_close(st);
	token_close(t);
}

static int
setup(void **state)
{
	struct mock_p11_opts o = {.initialized = 1,
	    .label = "custody",
	    .so_pin = "87654321",
	    .user_pin = "1234"};
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL ||
	    testutil_mkdtemp("custody-service", f->dir, sizeof(f->dir)) != 0)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/custody.db", f->dir);
	mock_p11_reset(&o);
	f->cfg = make_config(f->dir, "service.test/log");
	f->cfg_no_origin = make_config(f->dir, NULL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	config_free(f->cfg);
	config_free(f->cfg_no_origin);
	testutil_rmtree(f->dir);
	free(f);
	return 0;
}

static uint64_t
leaf_count(struct fixture *f)
{
	struct store *st = NULL;
	uint64_t n = 0;

	assert_int_equal(store_open(f->db, &st), 0);
	assert_int_equal(store_leaf_count(st, &n), 0);
	store_close(st);
	return n;
}

/* Leaf seq, parsed. */
static json_t *
leaf(struct fixture *f, uint64_t seq)
{
	struct store *st = NULL;
	uint8_t *data = NULL, hash[32];
	size_t len;
	json_t *o;

	assert_int_equal(store_open(f->db, &st), 0);
	assert_int_equal(store_leaf_get(st, seq, &data, &len, hash), 0);
	o = json_loadb((const char *)data, len, 0, NULL);
	assert_non_null(o);
	free(data);
	store_close(st);
	return o;
}

static const char *
event_of(json_t *o)
{
	return json_string_value(json_object_get(o, "event"));
}

static json_t *
detail_of(json_t *o)
{
	return json_object_get(o, "detail");
}

static struct service *
open_service(const struct config *cfg)
{
	struct service *sv = NULL;

	assert_int_equal(service_open_token(cfg, open_mock(), &sv), 0);
	return sv;
}

static void
test_start_stop_clean(void **state)
{
	struct fixture *f = *state;
	struct service_run_info info;
	struct service_checkpoints cps;
	struct service *sv;
	struct store_run rm;
	char digest[65];
	uint64_t size = 0;
	json_t *o, *d;

	init_store(f, 1);
	sv = open_service(f->cfg);
	assert_int_equal(service_start(sv, "9.9.9", NOW, &info), 0);
	assert_int_equal(info.start_seq, 1);
	assert_false(info.unclean);
	assert_int_equal(store_run_get(service_store(sv), &rm), 0);
	assert_int_equal(rm.pid, getpid());
	assert_int_equal(rm.started_at, NOW);
	assert_int_equal(service_stop(sv, NOW + 5, &size), 0);
	/* the final checkpoint covers the stop leaf */
	assert_int_equal(size, 3);
	service_checkpoints(sv, &cps);
	assert_int_equal(cps.size, 3);
	assert_int_equal(cps.failures, 0);
	assert_int_equal(
	    store_run_get(service_store(sv), &rm), CUSTODY_E_NOT_FOUND);
	service_close(sv);

	util_hex_encode(f->cfg->sha256, 32, digest);
	o = leaf(f, 1);
	d = detail_of(o);
	assert_string_equal(event_of(o), "service.start");
	assert_string_equal(
	    json_string_value(json_object_get(d, "version")), "9.9.9");
	assert_string_equal(
	    json_string_value(json_object_get(d, "config_sha256")), digest);
	assert_int_equal(
	    json_integer_value(json_object_get(d, "pid")), getpid());
	assert_null(json_object_get(d, "unclean_shutdown"));
	json_decref(o);
	o = leaf(f, 2);
	assert_string_equal(event_of(o), "service.stop");
	json_decref(o);
	assert_int_equal(leaf_count(f), 3);

	/* the next start after a clean stop is clean */
	sv = open_service(f->cfg);
	assert_int_equal(service_start(sv, "9.9.9", NOW + 10, &info), 0);
	assert_false(info.unclean);
	assert_int_equal(info.start_seq, 3);
	assert_int_equal(service_stop(sv, NOW + 11, NULL), 0);
	service_close(sv);
}

static void
test_unclean_shutdown(void **state)
{
	struct fixture *f = *state;
	struct service_run_info info;
	struct service *sv;
	json_t *o, *d;

	init_store(f, 1);
	sv = open_service(f->cfg);
	assert_int_equal(service_start(sv, "9.9.9", NOW, &info), 0);
	/* what a crash leaves: no service_stop() */
	service_close(sv);
	assert_int_equal(leaf_count(f), 2);

	sv = open_service(f->cfg);
	assert_int_equal(service_start(sv, "9.9.9", NOW + 60, &info), 0);
	assert_true(info.unclean);
	assert_int_equal(info.previous.pid, getpid());
	assert_int_equal(info.previous.started_at, NOW);
	assert_int_equal(service_stop(sv, NOW + 61, NULL), 0);
	service_close(sv);

	o = leaf(f, 2);
	d = detail_of(o);
	assert_string_equal(event_of(o), "service.start");
	assert_true(json_is_true(json_object_get(d, "unclean_shutdown")));
	assert_int_equal(
	    json_integer_value(json_object_get(d, "previous_pid")), getpid());
	assert_string_equal(
	    json_string_value(json_object_get(d, "previous_start")),
	    "2026-11-18T11:06:40Z");
	json_decref(o);
	o = leaf(f, 3);
	assert_string_equal(event_of(o), "service.stop");
	json_decref(o);
}

/* Poll (the checkpointer runs every second) for at most 30 s. */
static void
wait_for_checkpoint(struct service *sv, uint64_t size)
{
	struct service_checkpoints cps;
	int i;

	for (i = 0; i < 300; i++) {
		service_checkpoints(sv, &cps);
		if (cps.size >= size)
			return;
		usleep(100 * 1000);
	}
	fail_msg("no checkpoint of size %llu in 30 s (last %llu, error %d)",
	    (unsigned long long)size, (unsigned long long)cps.size,
	    cps.last_error);
}

static void
test_checkpointer(void **state)
{
	struct fixture *f = *state;
	struct service_checkpoints cps;
	struct service_run_info info;
	struct service *sv;
	uint64_t seq, size;
	json_t *fields;
	char *note = NULL;
	size_t len;

	init_store(f, 1);
	sv = open_service(f->cfg);
	assert_int_equal(service_start(sv, "9.9.9", NOW, &info), 0);
	wait_for_checkpoint(sv, 2);
	/* the log grows: the next checkpoint covers it */
	fields = json_pack("{s:s}", "event", "test.event");
	assert_int_equal(audit_append(service_audit(sv), fields, NULL, NULL,
			     &seq, NULL, NULL),
	    0);
	json_decref(fields);
	assert_int_equal(seq, 2);
	wait_for_checkpoint(sv, 3);
	/* and when it does not grow, nothing more is signed */
	usleep(2500 * 1000);
	service_checkpoints(sv, &cps);
	assert_int_equal(cps.size, 3);
	assert_int_equal(cps.made, 2);
	assert_int_equal(service_stop(sv, NOW + 9, &size), 0);
	assert_int_equal(size, 4);
	service_checkpoints(sv, &cps);
	assert_int_equal(cps.made, 3);
	/* the copy outside the store is the last checkpoint, of size 4 */
	note = testutil_read_file(service_checkpoint_path(sv), &len);
	assert_non_null(note);
	assert_non_null(strstr(note, "\n4\n"));
	free(note);
	service_close(sv);
}

static void
test_refusals_write_nothing(void **state)
{
	struct fixture *f = *state;
	struct service *sv = NULL, *other = NULL;

	/* no store yet */
	assert_int_equal(service_open_token(f->cfg, open_mock(), &sv),
	    CUSTODY_E_NOT_INITIALIZED);
	assert_null(sv);

	init_store(f, 0);
	/* no log-origin: custodyd cannot sign checkpoints */
	sv = open_service(f->cfg_no_origin);
	assert_int_equal(
	    service_start(sv, "9.9.9", NOW, NULL), CUSTODY_E_CONFIG);
	/* a second service on the same directory */
	assert_int_equal(
	    service_open(f->cfg, 0, &other, NULL), CUSTODY_E_LOCKED);
	assert_null(other);
	service_close(sv);
	/* no checkpoint key */
	sv = open_service(f->cfg);
	assert_int_equal(
	    service_start(sv, "9.9.9", NOW, NULL), CUSTODY_E_KEY_NOT_FOUND);
	/* stop without a start is a caller's bug */
	assert_int_equal(service_stop(sv, NOW, NULL), CUSTODY_E_STATE);
	service_close(sv);
	assert_int_equal(leaf_count(f), 0);
}

static void
test_stop_reports_a_failed_checkpoint(void **state)
{
	struct fixture *f = *state;
	struct service_run_info info;
	struct service *sv;
	uint64_t size = 0;

	init_store(f, 1);
	sv = open_service(f->cfg);
	assert_int_equal(service_start(sv, "9.9.9", NOW, &info), 0);
	/* the token cannot sign any more: the final checkpoint fails and
	 * service_stop() says so, after the stop leaf is durable */
	mock_p11_fail("C_SignInit", CKR_DEVICE_ERROR, 1, -1);
	assert_int_not_equal(service_stop(sv, NOW + 1, &size), 0);
	assert_int_equal(size, 0);
	mock_p11_clear_faults();
	service_close(sv);
	assert_int_equal(leaf_count(f), 3);
}

/* The stop leaf cannot be written (its marker is gone): the final
 * checkpoint is still signed over what is durable, and stop fails. */
static void
test_stop_without_its_leaf(void **state)
{
	struct fixture *f = *state;
	struct service *sv;
	struct store *st = NULL;
	uint64_t size = 0;

	init_store(f, 1);
	sv = open_service(f->cfg);
	assert_int_equal(service_start(sv, "9.9.9", NOW, NULL), 0);
	assert_int_equal(store_open(f->db, &st), 0);
	assert_int_equal(store_run_end(st), 0);
	store_close(st);
	assert_int_equal(service_stop(sv, NOW + 1, &size), CUSTODY_E_STATE);
	assert_int_equal(size, 2);
	service_close(sv);
	assert_int_equal(leaf_count(f), 2);
}

/* A start that fails after its checks leaves no leaf and no marker. */
static void
test_failed_start_leaves_no_trace(void **state)
{
	struct fixture *f = *state;
	struct service *sv;
	struct store_run rm;

	init_store(f, 1);
	sv = open_service(f->cfg);
	f->cfg->checkpoint_interval = 0; /* what the parser never gives */
	assert_int_equal(
	    service_start(sv, "9.9.9", NOW, NULL), CUSTODY_E_CONFIG);
	assert_int_equal(
	    store_run_get(service_store(sv), &rm), CUSTODY_E_NOT_FOUND);
	service_close(sv);
	assert_int_equal(leaf_count(f), 1);
}

static void
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* The policy: loaded at start with a policy.load leaf; a bad reload keeps
 * the one in force; a good one is logged, then swapped in, while a request
 * that holds the old one can still use it. */
static void
test_policy_reload(void **state)
{
	struct fixture *f = *state;
	struct config *cfg;
	struct service *sv;
	struct policy *p0, *p1;
	struct policy_decision d;
	struct policy_request q = {.principal = "unix:uid=0",
	    .action = POLICY_AUDIT_READ,
	    .now_ms = (int64_t)NOW * 1000};
	char path[128], text[512], err[512];
	json_t *o;

	snprintf(path, sizeof(path), "%s/policy.json", f->dir);
	write_text(path, "{\"version\": 1, \"rules\": [{\"id\": \"r0\", "
			 "\"effect\": \"allow\", \"principals\": "
			 "[\"unix:uid=0\"], \"actions\": [\"audit.read\"]}]}");
	snprintf(text, sizeof(text),
	    "data-dir %s\ncheckpoint-interval 1s\nlog-origin s.test/log\n"
	    "policy %s\n",
	    f->dir, path);
	assert_int_equal(
	    config_parse("t.conf", text, strlen(text), &cfg, NULL, 0), 0);
	init_store(f, 1);
	sv = open_service(cfg);
	assert_int_equal(service_start(sv, "9.9.9", NOW, NULL), 0);
	o = leaf(f, 2);
	assert_string_equal(event_of(o), "policy.load");
	assert_int_equal(
	    json_integer_value(json_object_get(detail_of(o), "rules")), 1);
	json_decref(o);
	p0 = service_policy(sv);
	assert_non_null(p0);
	policy_eval(p0, &q, &d);
	assert_true(d.allow);
	assert_string_equal(d.rule, "r0");

	write_text(path, "{\"version\": 1, \"rules\": [], \"x\": 1}");
	assert_int_equal(
	    service_policy_reload(sv, err, sizeof(err)), CUSTODY_E_CONFIG);
	assert_non_null(strstr(err, "/x: unknown field"));
	p1 = service_policy(sv);
	assert_ptr_equal(p1, p0); /* the old one stays in force */
	policy_free(p1);
	assert_int_equal(leaf_count(f), 3);

	write_text(path, "{\"version\": 1, \"rules\": []}");
	assert_int_equal(service_policy_reload(sv, err, sizeof(err)), 0);
	assert_int_equal(leaf_count(f), 4);
	p1 = service_policy(sv);
	assert_ptr_not_equal(p1, p0);
	policy_eval(p1, &q, &d);
	assert_false(d.allow);
	/* a request that started before the swap still has its policy */
	policy_eval(p0, &q, &d);
	assert_true(d.allow);
	policy_free(p0);
	policy_free(p1);
	assert_int_equal(service_stop(sv, NOW + 1, NULL), 0);
	service_close(sv);
	config_free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_start_stop_clean, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unclean_shutdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpointer, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refusals_write_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_stop_reports_a_failed_checkpoint, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_stop_without_its_leaf, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_failed_start_leaves_no_trace, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_policy_reload, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
