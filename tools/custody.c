/* SPDX-License-Identifier: Apache-2.0 */
/*
 * custody: the command-line tool. In direct mode it opens the token and the
 * store itself, under a lock on the data directory.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "alg.h"
#include "cert.h"
#include "checkpoint.h"
#include "config.h"
#include "datadir.h"
#include "err.h"
#include "httpc.h"
#include "keys.h"
#include "lcaudit.h"
#include "lifecycle.h"
#include "log.h"
#include "logdir.h"
#include "merkle.h"
#include "note.h"
#include "policy.h"
#include "proof.h"
#include "secret.h"
#include "service.h"
#include "softhsm2_template.h"
#include "store.h"
#include "token.h"
#include "util.h"

#define EXIT_USAGE 2

struct ctx {
	const char *conf_path; /* from -c, or NULL */
	int json;
	struct config *cfg;
	struct service *sv; /* open_ctx(): what follows belongs to it */
	int lockfd;	    /* init: the lock taken without a service */
	struct store *st;
	struct audit *a; /* the writer of registry changes and leaves */
	struct token *tok;
	char principal[32]; /* unix:uid=N: direct mode acts as its user */
	struct httpc *hc;   /* custodyd, when it runs */
};

/* Direct mode: the user running custody, under the rule "(direct)". */
static struct keys_env
env_of(struct ctx *c)
{
	snprintf(c->principal, sizeof(c->principal), "unix:uid=%lu",
	    (unsigned long)getuid());
	return (struct keys_env){
	    c->tok, c->st, c->a, c->principal, "(direct)", NULL};
}

static const char *progname = "custody";

/* Say what failed and what to do; returns the exit status. */
static int
fail(const char *what, int r)
{
	const char *hint = custody_errhint(r);

	fprintf(stderr, "%s: %s: %s\n", progname, what, custody_strerror(r));
	if (hint != NULL)
		fprintf(stderr, "%s: hint: %s\n", progname, hint);
	return EXIT_FAILURE;
}

static int usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", progname, cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s %s --help'.\n", progname, cmd);
	return EXIT_USAGE;
}

/* ---- opening the configuration, store and token ----------------------- */

static int
load_config(struct ctx *c)
{
	char err[512];
	const char *path = config_choose_path(c->conf_path);
	int r;

	if (c->cfg != NULL)
		return 0;
	if ((r = config_load(path, &c->cfg, err, sizeof(err))) != 0) {
		fprintf(stderr, "%s: %s\n", progname,
		    err[0] ? err : custody_strerror(r));
		if (r == CUSTODY_E_IO)
			fprintf(stderr,
			    "%s: hint: give the configuration "
			    "with -c FILE or $CUSTODY_CONF\n",
			    progname);
		return EXIT_FAILURE;
	}
	return 0;
}

static int
store_path_exists(const struct ctx *c, char **pathp)
{
	struct stat sb;

	if ((*pathp = datadir_path(c->cfg->data_dir, DATADIR_STORE_FILE)) ==
	    NULL)
		return CUSTODY_E_NOMEM;
	return stat(*pathp, &sb) == 0;
}

/*
 * Config, lock, store (which must exist), and, if need_token, the token and
 * the audit log's writer (service_open(): the store is checked against the
 * last checkpoint, G3, before anything is written, and against the copy in
 * the token when the command opens it, which every command that writes does).
 */
static int
open_ctx(struct ctx *c, int need_token)
{
	const char *stage = NULL;
	int r, ex;

	if ((ex = load_config(c)) != 0)
		return ex;
	r = service_open(
	    c->cfg, need_token ? SERVICE_TOKEN : 0, &c->sv, &stage);
	switch (r) {
	case 0:
		c->st = service_store(c->sv);
		c->tok = service_token(c->sv);
		c->a = service_audit(c->sv);
		return 0;
	case CUSTODY_E_NOT_INITIALIZED:
		fprintf(stderr, "%s: %s is not initialised (no %s)\n", progname,
		    c->cfg->data_dir, DATADIR_STORE_FILE);
		fprintf(stderr, "%s: hint: run '%s init' first\n", progname,
		    progname);
		return EXIT_FAILURE;
	case CUSTODY_E_STATE:
	case CUSTODY_E_PROOF:
		fprintf(stderr,
		    "%s: the audit log in %s is older than, or not "
		    "consistent with, a checkpoint signed before: refusing "
		    "to use it\n"
		    "%s: hint: restore the database that goes with "
		    "%s/checkpoint, or ask the auditors (see custody(1), "
		    "AUDIT LOG)\n",
		    progname, c->cfg->data_dir, progname, c->cfg->data_dir);
		return EXIT_FAILURE;
	case CUSTODY_E_CONFIG: /* the line at fault was logged */
		return EXIT_FAILURE;
	default:
		return fail(stage, r);
	}
}

static void
close_ctx(struct ctx *c)
{
	if (c->sv != NULL)
		service_close(c->sv); /* closes what follows too */
	else {
		audit_close(c->a);
		token_close(c->tok);
		store_close(c->st);
	}
	datadir_unlock(c->lockfd);
	httpc_close(c->hc);
	config_free(c->cfg);
}

/* ---- output ------------------------------------------------------------- */

static void
print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s != NULL)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

static void
print_duration(const char *label, int64_t d)
{
	char buf[32];

	if (d == 0) {
		printf("%-12s none\n", label);
		return;
	}
	util_format_duration(d, buf, sizeof(buf));
	printf("%-12s %s\n", label, buf);
}

/* Member k of o as a string, or NULL. */
static const char *
js(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t
ji(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/* A key as keys_json() (or custodyd) gives it. */
static void
print_key(json_t *o)
{
	static const char *const rows[][2] = {{"id:", "id"}, {"uri:", "uri"},
	    {"agent:", "agent"}, {"owner:", "owner"}, {"purpose:", "purpose"},
	    {"alg:", "alg"}, {"state:", "state"}};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		printf("%-12s %s\n", rows[i][0], or_empty(js(o, rows[i][1])));
	if (js(o, "task") != NULL)
		printf("%-12s %s\n", "task:", js(o, "task"));
	printf("%-12s %s\n", "created:", or_empty(js(o, "created_at")));
	if (js(o, "retired_at") != NULL)
		printf("%-12s %s\n", "retired:", js(o, "retired_at"));
	if (js(o, "destroyed_at") != NULL)
		printf("%-12s %s (%s)\n", "destroyed:", js(o, "destroyed_at"),
		    or_empty(js(o, "destroy_reason")));
	print_duration("max-age:", ji(o, "max_age"));
	print_duration("ttl:", ji(o, "ttl"));
	printf("%-12s %s\n", "kid:", or_empty(js(o, "kid")));
}

static void
print_key_header(void)
{
	printf("%-18s %-9s %-11s %-12s %-20s %s\n", "ID", "STATE", "PURPOSE",
	    "ALG", "CREATED", "AGENT [TASK]");
}

static void
print_key_row(json_t *o)
{
	const char *task = js(o, "task");

	printf("%-18s %-9s %-11s %-12s %-20s %s%s%s%s\n", or_empty(js(o, "id")),
	    or_empty(js(o, "state")), or_empty(js(o, "purpose")),
	    or_empty(js(o, "alg")), or_empty(js(o, "created_at")),
	    or_empty(js(o, "agent")), task ? " [" : "", task ? task : "",
	    task ? "]" : "");
}

/* Do the attributes read back show a protected key? */
static int
keys_attrs_ok(json_t *a)
{
	return json_is_true(json_object_get(a, "sensitive")) &&
	       json_is_true(json_object_get(a, "always_sensitive")) &&
	       json_is_false(json_object_get(a, "extractable")) &&
	       json_is_true(json_object_get(a, "never_extractable")) &&
	       json_is_true(json_object_get(a, "local"));
}

/* ---- custodyd ------------------------------------------------------------
 */

/*
 * Connect to custodyd on the configured listen-unix socket: 0 and c->hc,
 * or CUSTODY_E_NOT_RUNNING when nothing listens there (the commands that
 * have a direct mode then use it), or another error (printed).
 */
static int
daemon_open(struct ctx *c)
{
	int r, ex;

	if ((ex = load_config(c)) != 0)
		return CUSTODY_E_CONFIG;
	if (c->hc != NULL)
		return 0;
	r = httpc_connect_unix(c->cfg->listen_unix, 0, &c->hc);
	if (r != 0 && r != CUSTODY_E_NOT_RUNNING)
		fprintf(stderr, "%s: %s: %s\n", progname, c->cfg->listen_unix,
		    custody_strerror(r));
	return r;
}

/*
 * One request to custodyd (connected by daemon_open()); body (borrowed)
 * is sent as JSON when not NULL. Returns 0 and, for a JSON answer, *outp
 * (new); otherwise prints what went wrong, the problem custodyd answered
 * with, and returns the exit status.
 */
static int
daemon_call(struct ctx *c, const char *cmd, const char *method,
    const char *target, json_t *body, json_t **outp)
{
	struct httpc_response resp;
	json_t *o = NULL;
	char *s = NULL;
	const char *detail, *rule;
	int r, ex = EXIT_FAILURE;

	*outp = NULL;
	memset(&resp, 0, sizeof(resp));
	if (body != NULL && (s = json_dumps(body, JSON_COMPACT)) == NULL)
		return fail(cmd, CUSTODY_E_NOMEM);
	r = httpc_request(c->hc, method, target, NULL,
	    s != NULL ? "application/json" : NULL, (const uint8_t *)s,
	    s != NULL ? strlen(s) : 0, &resp);
	free(s);
	if (r != 0) {
		fprintf(stderr, "%s: %s: custodyd on %s: %s\n", progname, cmd,
		    c->cfg->listen_unix, custody_strerror(r));
		return EXIT_FAILURE;
	}
	if (resp.content_type != NULL &&
	    (strncmp(resp.content_type, "application/json", 16) == 0 ||
		strncmp(resp.content_type, "application/problem+json", 24) ==
		    0))
		o = json_loadb((const char *)resp.body, resp.len, 0, NULL);
	if (resp.status >= 200 && resp.status < 300) {
		*outp = o;
		ex = 0;
	} else if ((detail = js(o, "detail")) != NULL) {
		rule = js(o, "rule");
		fprintf(stderr, "%s: %s: %s (HTTP %d%s%s)\n", progname, cmd,
		    detail, resp.status, rule ? ", rule " : "",
		    rule ? rule : "");
		json_decref(o);
	} else {
		fprintf(stderr, "%s: %s: custodyd answered HTTP %d: %.200s\n",
		    progname, cmd, resp.status, (const char *)resp.body);
		json_decref(o);
	}
	httpc_response_cleanup(&resp);
	return ex;
}

/*
 * Connect to custodyd for a command that only it serves: 0, or the exit
 * status after saying why.
 */
static int
daemon_required(struct ctx *c, const char *cmd)
{
	int r;

	if ((r = daemon_open(c)) == CUSTODY_E_NOT_RUNNING) {
		fprintf(stderr,
		    "%s: %s: custodyd is not running on %s: only it signs "
		    "credentials and certificates (custodyd(8))\n",
		    progname, cmd, c->cfg->listen_unix);
		return EXIT_FAILURE;
	}
	return r == 0 ? 0 : EXIT_FAILURE;
}

/* ---- custody init ------------------------------------------------------- */

static const char init_help[] =
    "usage: custody [-c FILE] init [--so-pin-file FILE | --existing-token]\n"
    "                              [--json]\n"
    "\n"
    "Create the data directory, initialise the token named by 'token' with\n"
    "C_InitToken/C_InitPIN (the SO PIN and the user PIN are read from files "
    "of\n"
    "mode 0600, never from the command line), create the store, and generate\n"
    "the service keys (checkpoint, attestation) in the token.\n"
    "\n"
    "If the configuration sets 'pkcs11-env SOFTHSM2_CONF=FILE' and FILE does\n"
    "not exist, init writes it from custody's SoftHSM2 template, with a\n"
    "private token directory beside it.\n"
    "\n"
    "  --so-pin-file FILE  the token's new SO PIN [DATA/so.pin]\n"
    "  --existing-token    adopt a token that is initialised already (an HSM\n"
    "                      partition set up with the vendor's tools): no\n"
    "                      C_InitToken, no SO PIN; log in with pin-file\n"
    "  --json              print the result as JSON\n";

/* Write the SoftHSM2 configuration named by pkcs11-env, if it is missing. */
static int
write_softhsm_conf(const char *path)
{
	char *dir = NULL, *tokdir = NULL, *text = NULL, *tmp = NULL;
	const char *mark = "@TOKENDIR@", *at;
	struct stat sb;
	FILE *f = NULL;
	int fd = -1, r = 0;

	if (stat(path, &sb) == 0)
		return 0; /* the operator's own file: leave it alone */
	if ((tmp = strdup(path)) == NULL)
		return CUSTODY_E_NOMEM;
	if ((dir = strdup(dirname(tmp))) == NULL ||
	    (tokdir = datadir_path(dir, "tokens")) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if ((r = datadir_prepare(dir)) != 0 ||
	    (r = datadir_prepare(tokdir)) != 0)
		goto out;
	if ((at = strstr(softhsm2_template, mark)) == NULL) {
		r = CUSTODY_E_INTERNAL;
		goto out;
	}
	if (asprintf(&text, "%.*s%s%s", (int)(at - softhsm2_template),
		softhsm2_template, tokdir, at + strlen(mark)) < 0) {
		text = NULL;
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	fd = open(
	    path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "%s: cannot create %s: %s\n", progname, path,
		    strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	fd = -1;
	if (fputs(text, f) == EOF || fflush(f) != 0 || fsync(fileno(f)) != 0)
		r = CUSTODY_E_IO;
	else /* stderr: stdout may be --json */
		fprintf(stderr,
		    "%s: wrote SoftHSM2 configuration %s (tokens in "
		    "%s)\n",
		    progname, path, tokdir);
out:
	if (f != NULL && fclose(f) != 0 && r == 0)
		r = CUSTODY_E_IO;
	if (fd >= 0)
		close(fd);
	free(tmp);
	free(dir);
	free(tokdir);
	free(text);
	return r;
}

static int
create_service_key(struct ctx *c, const char *purpose, json_t *out,
    uint8_t cka_id[TOKEN_ID_LEN])
{
	struct keys_create_req req;
	struct keys_env env = env_of(c);
	struct store_key *k = NULL;
	int r;

	memset(&req, 0, sizeof(req));
	req.agent = "custody";
	req.owner = "custody";
	req.purpose = purpose;
	/* Ed25519 where the token has EdDSA; ECDSA P-256 where not (TPM) */
	req.alg = token_supports(c->tok, CUSTODY_ALG_ED25519)
		      ? CUSTODY_ALG_ED25519
		      : CUSTODY_ALG_ECDSA_P256;
	if ((r = keys_create(&env, &req, util_now(), &k, NULL)) != 0)
		return r;
	(void)store_key_id_parse(k->id, cka_id);
	if (c->json)
		json_array_append_new(out, keys_json(k));
	else
		printf("  %-12s key %s (%s)\n", purpose, k->id, k->alg);
	store_key_free(k);
	return 0;
}

/* Remove a store and its WAL files (a failed init's leftovers). */
static void
remove_store_files(const char *path)
{
	static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
	char buf[4096];
	size_t i;

	for (i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", path, ext[i]);
		(void)unlink(buf);
	}
}

/* Rename the finished store into place and make the rename durable. */
static int
commit_store(const char *tmp, const char *path)
{
	char wal[4096];
	struct stat sb;

	/* SQLite checkpoints and deletes the WAL when its last connection
	 * closes; a WAL still there would be left behind by the rename */
	snprintf(wal, sizeof(wal), "%s-wal", tmp);
	if (stat(wal, &sb) == 0) {
		fprintf(stderr, "%s: %s remains after closing the store\n",
		    progname, wal);
		return CUSTODY_E_STORE;
	}
	if (rename(tmp, path) != 0) {
		fprintf(stderr, "%s: rename %s: %s\n", progname, tmp,
		    strerror(errno));
		return CUSTODY_E_IO;
	}
	return util_sync_parent(path);
}

static int
cmd_init(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"so-pin-file", required_argument, NULL, 's'},
	    {"existing-token", no_argument, NULL, 'e'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct secret *so = NULL, *user = NULL;
	char *so_path = NULL, *store_path = NULL;
	const char *shconf;
	struct token_opts o;
	json_t *keys = NULL;
	char *tmp_path = NULL;
	uint8_t made[2][TOKEN_ID_LEN];
	int ch, r, ex = EXIT_FAILURE, existing = 0, nmade = 0;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			free(so_path);
			if ((so_path = strdup(optarg)) == NULL)
				return fail("init", CUSTODY_E_NOMEM);
			break;
		case 'e':
			existing = 1;
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(init_help, stdout);
			free(so_path);
			return 0;
		default:
			free(so_path);
			return usage_error("init", "unknown option");
		}
	}
	if (optind != argc) {
		free(so_path);
		return usage_error(
		    "init", "unexpected argument '%s'", argv[optind]);
	}
	if (existing && so_path != NULL) {
		free(so_path);
		return usage_error("init", "--existing-token takes no SO PIN");
	}
	if ((ex = load_config(c)) != 0)
		goto out;
	ex = EXIT_FAILURE;
	if (c->cfg->pkcs11_module == NULL) {
		fprintf(stderr, "%s: %s: pkcs11-module is not set\n", progname,
		    c->cfg->path);
		goto out;
	}
	if ((r = datadir_prepare(c->cfg->data_dir)) != 0) {
		fail(c->cfg->data_dir, r);
		goto out;
	}
	if ((r = datadir_lock(c->cfg->data_dir, &c->lockfd)) != 0) {
		fail("data directory", r);
		goto out;
	}
	if ((r = store_path_exists(c, &store_path)) != 0) {
		if (r > 0) {
			fprintf(stderr, "%s: %s is initialised already\n",
			    progname, c->cfg->data_dir);
			fprintf(stderr,
			    "%s: hint: custody init never "
			    "reinitialises; use another data-dir\n",
			    progname);
		} else
			fail("init", r);
		goto out;
	}
	if (asprintf(&tmp_path, "%s.init", store_path) < 0) {
		tmp_path = NULL;
		fail("init", CUSTODY_E_NOMEM);
		goto out;
	}
	if (!existing && so_path == NULL &&
	    (so_path = datadir_path(c->cfg->data_dir, "so.pin")) == NULL) {
		fail("init", CUSTODY_E_NOMEM);
		goto out;
	}
	if (!existing && (r = secret_read_file(so_path, &so)) != 0) {
		fail(so_path, r);
		goto out;
	}
	if ((r = secret_read_file(c->cfg->pin_file, &user)) != 0) {
		fail(c->cfg->pin_file, r);
		goto out;
	}
	if ((shconf = config_env_get(c->cfg, "SOFTHSM2_CONF")) != NULL &&
	    (r = write_softhsm_conf(shconf)) != 0) {
		fail(shconf, r);
		goto out;
	}
	if ((r = config_apply_env(c->cfg)) != 0) {
		fail("pkcs11-env", r);
		goto out;
	}
	if (!existing && (r = token_init(c->cfg->pkcs11_module, c->cfg->token,
			      so, user)) != 0) {
		fail("token init", r);
		if (r == CUSTODY_E_TOKEN_EXISTS)
			fprintf(stderr,
			    "%s: hint: to adopt a token that is "
			    "set up already, use --existing-token\n",
			    progname);
		goto out;
	}
	o.module = c->cfg->pkcs11_module;
	o.uri = c->cfg->token;
	o.pin = user;
	if ((r = token_open(&o, &c->tok)) != 0) {
		fail("token", r);
		goto out;
	}
	/* the store is built under a temporary name and renamed into place
	 * only when everything succeeded: init is all or nothing */
	remove_store_files(tmp_path);
	if ((r = store_open(tmp_path, &c->st)) != 0 ||
	    (r = audit_open(tmp_path, &c->a)) != 0) {
		fail("store", r);
		goto out;
	}
	if (!c->json)
		printf("%s token '%s' (%s) for %s\n",
		    existing ? "adopted" : "initialised", token_label(c->tok),
		    token_backend(c->tok), c->cfg->data_dir);
	keys = json_array();
	if ((r = create_service_key(c, "checkpoint", keys, made[0])) != 0) {
		fail("service key", r);
		goto out;
	}
	nmade = 1;
	if ((r = create_service_key(c, "attestation", keys, made[1])) != 0) {
		fail("service key", r);
		goto out;
	}
	nmade = 2;
	audit_close(c->a);
	c->a = NULL;
	store_close(c->st);
	c->st = NULL;
	if ((r = commit_store(tmp_path, store_path)) != 0) {
		fail("store", r);
		goto out;
	}
	nmade = 0; /* registered for good */
	if (c->json) {
		json_t *o2 = json_object();

		json_object_set_new(
		    o2, "data_dir", json_string(c->cfg->data_dir));
		json_object_set_new(
		    o2, "token", json_string(token_label(c->tok)));
		json_object_set_new(
		    o2, "backend", json_string(token_backend(c->tok)));
		json_object_set_new(o2, "store", json_string(store_path));
		json_object_set(o2, "service_keys", keys);
		print_json(o2);
	} else
		printf("  store        %s\n", store_path);
	ex = 0;
out:
	if (ex != 0 && c->tok != NULL) {
		/* undo this attempt: no service key survives outside a store */
		struct token_destroy_evidence ev;

		while (nmade > 0)
			(void)token_destroy(c->tok, made[--nmade], &ev);
		audit_close(c->a);
		c->a = NULL;
		store_close(c->st);
		c->st = NULL;
		if (tmp_path != NULL)
			remove_store_files(tmp_path);
		if (!existing)
			fprintf(stderr,
			    "%s: hint: the token is initialised; "
			    "once the cause is fixed, finish with "
			    "'%s init --existing-token'\n",
			    progname, progname);
	}
	json_decref(keys);
	secret_free(so);
	secret_free(user);
	free(so_path);
	free(store_path);
	free(tmp_path);
	return ex;
}

/* ---- custody key ... ---------------------------------------------------- */

static const char key_help[] =
    "usage: custody [-c FILE] key COMMAND [options]\n"
    "\n"
    "  create   generate a key in the token and register it\n"
    "  list     list the registered keys\n"
    "  show     show one key\n"
    "  rotate   replace a key by a new one, attested by both\n"
    "  destroy  destroy a key's objects in the token, attested\n"
    "  history  a key's rotation chain and attestations\n"
    "\n"
    "'custody key COMMAND --help' describes each command.\n";

static const char create_help[] =
    "usage: custody key create --agent A --owner O --purpose P --alg ALG\n"
    "                          [--max-age D] [--ttl D] [--task T] [--json]\n"
    "\n"
    "Generate a key pair inside the token (sensitive, never extractable,\n"
    "sign-only; the attributes are read back and a test signature is\n"
    "verified) and register it for agent A, owned by O, for purpose P.\n"
    "At most one active key exists per (agent, purpose, task).\n"
    "\n"
    "  --agent A      the non-human identity (e.g. "
    "spiffe://example.org/agent/x)\n"
    "  --owner O      the human or team responsible for it\n"
    "  --purpose P    jwt, x509-ca, checkpoint or attestation\n"
    "  --alg ALG      ed25519, ecdsa-p256, ecdsa-p384 or rsa-pss-3072\n"
    "  --max-age D    rotate after D (30s, 15m, 24h, 7d)\n"
    "  --ttl D        destroy after D\n"
    "  --task T       a just-in-time key for task T (needs --ttl)\n"
    "  --json         print the new key as JSON\n";

static int
cmd_key_create(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"agent", required_argument, NULL, 'a'},
	    {"owner", required_argument, NULL, 'o'},
	    {"purpose", required_argument, NULL, 'p'},
	    {"alg", required_argument, NULL, 'g'},
	    {"max-age", required_argument, NULL, 'm'},
	    {"ttl", required_argument, NULL, 't'},
	    {"task", required_argument, NULL, 'k'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct keys_env env;
	struct keys_create_req req;
	struct token_generated *g = NULL;
	struct store_key *k = NULL;
	const char *alg = NULL;
	json_t *o = NULL;
	int ch, r, ex;

	memset(&req, 0, sizeof(req));
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			req.agent = optarg;
			break;
		case 'o':
			req.owner = optarg;
			break;
		case 'p':
			req.purpose = optarg;
			break;
		case 'g':
			alg = optarg;
			break;
		case 'm':
			if (util_parse_duration(optarg, &req.max_age) != 0)
				return usage_error("key create",
				    "bad "
				    "--max-age '%s' (use 30s, 15m, 24h, 7d)",
				    optarg);
			break;
		case 't':
			if (util_parse_duration(optarg, &req.ttl) != 0)
				return usage_error("key create",
				    "bad --ttl "
				    "'%s' (use 30s, 15m, 24h, 7d)",
				    optarg);
			break;
		case 'k':
			req.task = optarg;
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(create_help, stdout);
			return 0;
		default:
			return usage_error("key create", "unknown option");
		}
	}
	if (optind != argc)
		return usage_error(
		    "key create", "unexpected argument '%s'", argv[optind]);
	if (req.agent == NULL || req.owner == NULL || req.purpose == NULL ||
	    alg == NULL)
		return usage_error("key create", "--agent, --owner, --purpose "
						 "and --alg are required");
	if (alg_from_name(alg, &req.alg) != 0)
		return usage_error("key create",
		    "unknown algorithm '%s' (use "
		    "%s)",
		    alg, alg_names());
	/* refuse bad text before the PIN is even read */
	if ((r = keys_check_text("agent", req.agent, 256)) != 0 ||
	    (r = keys_check_text("owner", req.owner, 256)) != 0 ||
	    (req.task != NULL &&
		(r = keys_check_text("task", req.task, 128)) != 0))
		return fail("key create", r);
	/* through custodyd when it runs (its policy decides), else direct */
	if ((r = daemon_open(c)) == 0) {
		json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "agent",
		    req.agent, "owner", req.owner, "purpose", req.purpose,
		    "alg", alg_name(req.alg));

		if (body != NULL && req.task != NULL)
			json_object_set_new(
			    body, "task", json_string(req.task));
		if (body != NULL && req.max_age != 0)
			json_object_set_new(
			    body, "max_age", json_integer(req.max_age));
		if (body != NULL && req.ttl != 0)
			json_object_set_new(body, "ttl", json_integer(req.ttl));
		ex = daemon_call(c, "key create", "POST", "/v1/keys", body, &o);
		json_decref(body);
		if (ex != 0)
			return ex;
	} else if (r != CUSTODY_E_NOT_RUNNING)
		return EXIT_FAILURE;
	else {
		if ((ex = open_ctx(c, 1)) != 0)
			return ex;
		env = env_of(c);
		if ((r = keys_create(&env, &req, util_now(), &k, &g)) != 0)
			return fail("key create", r);
		o = keys_json(k);
		json_object_set_new(
		    o, "token_attributes", keys_attrs_json(&g->attrs));
		store_key_free(k);
		token_generated_free(g);
	}
	if (o == NULL)
		return fail("key create", CUSTODY_E_NOMEM);
	if (c->json)
		print_json(o);
	else {
		print_key(o);
		printf("%-12s %s\n", "token:",
		    keys_attrs_ok(json_object_get(o, "token_attributes"))
			? "sensitive, always sensitive, never extractable, "
			  "local (read back)"
			: "(attributes not reported)");
		json_decref(o);
	}
	return 0;
}

static const char list_help[] =
    "usage: custody key list [--state active|retired|destroyed] [--json]\n"
    "\n"
    "List the registered keys, oldest first. Reads the store only (no PIN).\n";

static int
cmd_key_list(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct store_key **keys = NULL;
	const char *state = NULL;
	char target[64];
	size_t n = 0, i;
	json_t *a = NULL, *o;
	int ch, r, ex;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			state = optarg;
			if (strcmp(state, "active") != 0 &&
			    strcmp(state, "retired") != 0 &&
			    strcmp(state, "destroyed") != 0)
				return usage_error("key list",
				    "unknown state "
				    "'%s' (active, retired, destroyed)",
				    state);
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(list_help, stdout);
			return 0;
		default:
			return usage_error("key list", "unknown option");
		}
	}
	if (optind != argc)
		return usage_error(
		    "key list", "unexpected argument '%s'", argv[optind]);
	if ((r = daemon_open(c)) == 0) {
		snprintf(target, sizeof(target), "/v1/keys%s%s",
		    state ? "?state=" : "", state ? state : "");
		if ((ex = daemon_call(
			 c, "key list", "GET", target, NULL, &o)) != 0)
			return ex;
		a = json_incref(json_object_get(o, "keys"));
		json_decref(o);
		if (!json_is_array(a)) {
			json_decref(a);
			return fail("key list", CUSTODY_E_PROTOCOL);
		}
	} else if (r != CUSTODY_E_NOT_RUNNING)
		return EXIT_FAILURE;
	else {
		if ((ex = open_ctx(c, 0)) != 0)
			return ex;
		if ((r = store_key_list(c->st, state, &keys, &n)) != 0)
			return fail("key list", r);
		a = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(a, keys_json(keys[i]));
		store_key_list_free(keys, n);
	}
	if (c->json)
		print_json(a);
	else {
		print_key_header();
		for (i = 0; i < json_array_size(a); i++)
			print_key_row(json_array_get(a, i));
		json_decref(a);
	}
	return 0;
}

static const char show_help[] =
    "usage: custody key show ID [--json]\n"
    "\n"
    "Show key ID (k_ and 16 hex digits). Reads the store only (no PIN).\n";

static int
cmd_key_show(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct store_key *k = NULL;
	uint8_t id[TOKEN_ID_LEN];
	char target[64];
	json_t *o = NULL;
	int ch, r, ex;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(show_help, stdout);
			return 0;
		default:
			return usage_error("key show", "unknown option");
		}
	}
	if (argc - optind != 1)
		return usage_error("key show", "give exactly one key id");
	if (store_key_id_parse(argv[optind], id) != 0)
		return usage_error("key show",
		    "'%s' is not a key id (k_ and 16 "
		    "hex digits)",
		    argv[optind]);
	if ((r = daemon_open(c)) == 0) {
		snprintf(target, sizeof(target), "/v1/keys/%s", argv[optind]);
		if ((ex = daemon_call(
			 c, "key show", "GET", target, NULL, &o)) != 0)
			return ex;
	} else if (r != CUSTODY_E_NOT_RUNNING)
		return EXIT_FAILURE;
	else {
		if ((ex = open_ctx(c, 0)) != 0)
			return ex;
		if ((r = store_key_get(c->st, argv[optind], &k)) != 0)
			return fail(argv[optind], r);
		o = keys_json(k);
		store_key_free(k);
	}
	if (o == NULL)
		return fail("key show", CUSTODY_E_PROTOCOL);
	if (c->json)
		print_json(o);
	else {
		print_key(o);
		json_decref(o);
	}
	return 0;
}

static const char destroy_help[] =
    "usage: custody key destroy ID --reason R [--json]\n"
    "\n"
    "Destroy key ID (active or retired): it stops signing, its private and\n"
    "public objects are destroyed in the token and a search on its CKA_ID\n"
    "must find none; the key.destroy leaf carries that evidence, and a\n"
    "destruction attestation (DSSE, signed by the service's attestation key)\n"
    "follows it in the log. Through custodyd when it runs (its policy\n"
    "decides: key.destroy), else directly. This cannot be undone.\n";

static const char rotate_help[] =
    "usage: custody key rotate ID --reason R [--json]\n"
    "\n"
    "Rotate key ID (active): a successor is generated in the token for the\n"
    "same agent, owner, purpose, task and algorithm; in one step of the log\n"
    "(key.rotate) ID is retired and the successor becomes active; a rotation\n"
    "attestation (DSSE) signed by both keys follows. A retired JWT key stays\n"
    "in the JWKS until the last JWT it signed expires, then the scheduler\n"
    "destroys it. Through custodyd when it runs (key.rotate), else directly.\n";

/* key rotate / key destroy: one step of the lifecycle on one key. */
static int
cmd_key_step(struct ctx *c, int argc, char **argv, int rotate)
{
	static const struct option opts[] = {
	    {"reason", required_argument, NULL, 'r'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd = rotate ? "key rotate" : "key destroy";
	struct lifecycle *lc = NULL;
	struct lc_result res;
	struct keys_env env;
	uint8_t id[TOKEN_ID_LEN];
	const char *reason = NULL;
	char path[64];
	json_t *o = NULL, *body;
	int ch, r, ex;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			reason = optarg;
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(rotate ? rotate_help : destroy_help, stdout);
			return 0;
		default:
			return usage_error(cmd, "unknown option");
		}
	}
	if (argc - optind != 1)
		return usage_error(cmd, "give exactly one key id");
	if (reason == NULL)
		return usage_error(cmd, "--reason is required");
	if (store_key_id_parse(argv[optind], id) != 0)
		return usage_error(cmd,
		    "'%s' is not a key id (k_ and 16 hex digits)",
		    argv[optind]);
	if ((r = keys_check_text("reason", reason, 256)) != 0)
		return fail(cmd, r);
	if ((r = daemon_open(c)) == 0) {
		snprintf(path, sizeof(path), "/v1/keys/%s/%s", argv[optind],
		    rotate ? "rotate" : "destroy");
		body = json_pack("{s:s}", "reason", reason);
		ex = daemon_call(c, cmd, "POST", path, body, &o);
		json_decref(body);
		if (ex != 0)
			return ex;
	} else if (r != CUSTODY_E_NOT_RUNNING)
		return EXIT_FAILURE;
	else {
		if ((ex = open_ctx(c, 1)) != 0)
			return ex;
		env = env_of(c);
		if ((r = lifecycle_open(
			 NULL, c->cfg->checkpoint_overlap, &lc)) != 0)
			return fail(cmd, r);
		r = rotate ? lifecycle_rotate(lc, &env, argv[optind], "manual",
				 reason, NULL, util_now(), &res)
			   : lifecycle_destroy(lc, &env, argv[optind], "manual",
				 reason, util_now(), &res);
		lifecycle_close(lc);
		if (r != 0)
			return fail(argv[optind], r);
		o = json_pack("{s:s, s:I, s:b}", "key", res.key_id, "log_index",
		    (json_int_t)res.decision_seq, "attested", res.attested);
		if (o != NULL && rotate)
			json_object_set_new(
			    o, "new_key", json_string(res.new_key_id));
		if (o != NULL && !rotate)
			json_object_set_new(o, "evidence",
			    json_pack("{s:I, s:I}", "objects_destroyed",
				(json_int_t)res.ev.destroyed,
				"objects_found_after",
				(json_int_t)res.ev.remaining));
		if (o != NULL && res.attested)
			json_object_set_new(o, "attestation_log_index",
			    json_integer((json_int_t)res.attestation_seq));
	}
	if (o == NULL)
		return fail(cmd, CUSTODY_E_NOMEM);
	if (c->json)
		print_json(o);
	else {
		if (rotate)
			printf("rotated %s: its successor is %s (key.rotate "
			       "leaf %lld)\n",
			    argv[optind],
			    or_empty(json_string_value(
				json_object_get(o, "new_key"))),
			    (long long)json_integer_value(
				json_object_get(o, "log_index")));
		else
			printf("destroyed %s: %lld token objects deleted, a "
			       "search by CKA_ID finds %lld (key.destroy leaf "
			       "%lld)\n",
			    argv[optind],
			    (long long)json_integer_value(
				json_object_get(json_object_get(o, "evidence"),
				    "objects_destroyed")),
			    (long long)json_integer_value(
				json_object_get(json_object_get(o, "evidence"),
				    "objects_found_after")),
			    (long long)json_integer_value(
				json_object_get(o, "log_index")));
		if (json_is_true(json_object_get(o, "attested")))
			printf("attested: leaf %lld\n",
			    (long long)json_integer_value(
				json_object_get(o, "attestation_log_index")));
		else
			printf("attestation: pending (custodyd retries it)\n");
		json_decref(o);
	}
	return 0;
}

static int
cmd_key_rotate(struct ctx *c, int argc, char **argv)
{
	return cmd_key_step(c, argc, argv, 1);
}

static int
cmd_key_destroy(struct ctx *c, int argc, char **argv)
{
	return cmd_key_step(c, argc, argv, 0);
}

static const char history_help[] =
    "usage: custody key history ID [--json]\n"
    "\n"
    "Print the life of key ID: its record, the chain of rotations it belongs\n"
    "to (predecessors and successors), and its attestations (rotation and\n"
    "destruction DSSE envelopes, exactly as logged). Needs custodyd (policy:\n"
    "key.read and audit.read).\n";

static int
cmd_key_history(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char path[96];
	json_t *k = NULL, *att = NULL, *chain = NULL, *o, *v;
	const char *id, *next;
	size_t i;
	int ch, ex, hops;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(history_help, stdout);
			return 0;
		default:
			return usage_error("key history", "unknown option");
		}
	}
	if (argc - optind != 1)
		return usage_error("key history", "give exactly one key id");
	id = argv[optind];
	if (store_key_id_parse(id, (uint8_t[TOKEN_ID_LEN]){0}) != 0)
		return usage_error("key history",
		    "'%s' is not a key id (k_ and 16 hex digits)", id);
	if ((ex = daemon_required(c, "key history")) != 0)
		return ex;
	snprintf(path, sizeof(path), "/v1/keys/%s", id);
	if ((ex = daemon_call(c, "key history", "GET", path, NULL, &k)) != 0)
		goto out;
	snprintf(path, sizeof(path), "/v1/attestations?key=%s", id);
	if ((ex = daemon_call(c, "key history", "GET", path, NULL, &att)) != 0)
		goto out;
	/* the chain: back to the first key, then forward to the last */
	chain = json_array();
	json_array_append(chain, k);
	for (o = k, hops = 0; hops < 64 && o != NULL &&
			      (next = json_string_value(
				   json_object_get(o, "predecessor"))) != NULL;
	     hops++) {
		snprintf(path, sizeof(path), "/v1/keys/%s", next);
		v = NULL;
		if (daemon_call(c, "key history", "GET", path, NULL, &v) != 0)
			break;
		json_array_insert_new(chain, 0, v);
		o = v;
	}
	for (o = k, hops = 0; hops < 64 && o != NULL &&
			      (next = json_string_value(
				   json_object_get(o, "successor"))) != NULL;
	     hops++) {
		snprintf(path, sizeof(path), "/v1/keys/%s", next);
		v = NULL;
		if (daemon_call(c, "key history", "GET", path, NULL, &v) != 0)
			break;
		json_array_append_new(chain, v);
		o = v;
	}
	if (c->json) {
		print_json(
		    json_pack("{s:O, s:O, s:O}", "key", k, "chain", chain,
			"attestations", json_object_get(att, "attestations")));
		goto out;
	}
	print_key(k);
	printf("\nrotation chain (oldest first):\n");
	json_array_foreach(chain, i, v)
	{
		printf("  %s%s  %-9s created %s%s%s%s%s\n",
		    strcmp(
			or_empty(json_string_value(json_object_get(v, "id"))),
			id) == 0
			? "*"
			: " ",
		    or_empty(json_string_value(json_object_get(v, "id"))),
		    or_empty(json_string_value(json_object_get(v, "state"))),
		    or_empty(
			json_string_value(json_object_get(v, "created_at"))),
		    json_object_get(v, "retired_at") ? ", retired " : "",
		    or_empty(
			json_string_value(json_object_get(v, "retired_at"))),
		    json_object_get(v, "destroyed_at") ? ", destroyed " : "",
		    or_empty(
			json_string_value(json_object_get(v, "destroyed_at"))));
	}
	printf("\nattestations:\n");
	o = json_object_get(att, "attestations");
	if (json_array_size(o) == 0)
		printf("  (none)\n");
	json_array_foreach(o, i, v)
	{
		printf("  %-11s decision leaf %lld, %s\n    %s\n",
		    or_empty(json_string_value(json_object_get(v, "kind"))),
		    (long long)json_integer_value(
			json_object_get(v, "decision_seq")),
		    or_empty(
			json_string_value(json_object_get(v, "created_at"))),
		    or_empty(
			json_string_value(json_object_get(v, "envelope"))));
	}
out:
	json_decref(k);
	json_decref(att);
	json_decref(chain);
	return ex;
}

static int cmd_key(struct ctx *c, int argc, char **argv);

/* ---- custody audit ... --------------------------------------------------- */

static const char audit_help[] =
    "usage: custody [-c FILE] audit COMMAND [options]\n"
    "\n"
    "  checkpoint           sign a checkpoint of the audit log in the token\n"
    "                       (C2SP tlog-checkpoint in a signed note) and print\n"
    "                       it; the log must be consistent with every\n"
    "                       checkpoint signed before\n"
    "  vkey                 print the verifier keys of the checkpoint keys,\n"
    "                       for auditors\n"
    "  export DIR           write the log, up to its last checkpoint, in the\n"
    "                       C2SP tlog-tiles layout with every checkpoint\n"
    "  verify DIR --vkey K  check an export offline, with no configuration\n"
    "                       and no token: the log, then every key's\n"
    "                       lifecycle\n"
    "  report DIR --vkey K  the same, then the life of every key (text,\n"
    "                       --json or --html)\n"
    "  prove --index N      inclusion proof of leaf N\n"
    "  prove --from M       consistency proof from the tree of size M\n"
    "\n"
    "'custody audit COMMAND --help' for a command's options.\n";

static int
need_origin(struct ctx *c)
{
	if (c->cfg->log_origin != NULL)
		return 0;
	fprintf(
	    stderr, "%s: %s: log-origin is not set\n", progname, c->cfg->path);
	fprintf(stderr,
	    "%s: hint: set log-origin to a name unique to this "
	    "log, e.g. custody.example.org/log\n",
	    progname);
	return EXIT_FAILURE;
}

/*
 * Options of a command that takes only --json and --help, and nops operands
 * (left in argv[optind...]): 0 to go on, else the exit status. *donep is
 * set when --help was served.
 */
static int
json_only_opts(struct ctx *c, const char *cmd, const char *help, int argc,
    char **argv, int nops, int *donep)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int ch;

	*donep = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(help, stdout);
			*donep = 1;
			return 0;
		default:
			return usage_error(cmd, "unknown option");
		}
	}
	if (argc - optind < nops)
		return usage_error(cmd, "missing operand");
	if (argc - optind > nops)
		return usage_error(
		    cmd, "unexpected argument '%s'", argv[optind + nops]);
	return 0;
}

static const char audit_checkpoint_help[] =
    "usage: custody [-c FILE] audit checkpoint [--json]\n"
    "\n"
    "Sign a checkpoint of the audit log with the checkpoint keys in the\n"
    "token, unless the last one covers the whole log already, and print it.\n"
    "A checkpoint is never signed for a log that is smaller than, or not\n"
    "consistent with, the last one. Needs log-origin in the configuration.\n";

static int
cmd_audit_checkpoint(struct ctx *c, int argc, char **argv)
{
	char *note = NULL, *path = NULL;
	size_t len = 0;
	int r, ex, done, fresh = 0;

	if ((ex = json_only_opts(c, "audit checkpoint", audit_checkpoint_help,
		 argc, argv, 0, &done)) != 0 ||
	    done)
		return ex;
	if ((ex = open_ctx(c, 1)) != 0 || (ex = need_origin(c)) != 0)
		return ex;
	if ((path = datadir_path(c->cfg->data_dir, "checkpoint")) == NULL)
		return fail("audit checkpoint", CUSTODY_E_NOMEM);
	r = checkpoint_make(c->tok, c->st, c->cfg->log_origin, path, util_now(),
	    &note, &len, &fresh);
	free(path);
	if (r != 0)
		return fail("audit checkpoint", r);
	if (c->json) {
		json_t *o = json_object();

		json_object_set_new(o, "checkpoint", json_stringn(note, len));
		json_object_set_new(o, "new", json_boolean(fresh));
		print_json(o);
	} else
		fwrite(note, 1, len, stdout);
	free(note);
	return 0;
}

static const char audit_vkey_help[] =
    "usage: custody [-c FILE] audit vkey\n"
    "\n"
    "Print the verifier key (vkey) of each active checkpoint key, one per\n"
    "line: <origin>+<key id>+<base64 key>. Give them to auditors, who pass\n"
    "them to 'custody audit verify --vkey'.\n";

static int
cmd_audit_vkey(struct ctx *c, int argc, char **argv)
{
	char *out = NULL;
	int r, ex, done;

	if ((ex = json_only_opts(c, "audit vkey", audit_vkey_help, argc, argv,
		 0, &done)) != 0 ||
	    done)
		return ex;
	if (c->json)
		return usage_error("audit vkey", "--json is not supported");
	if ((ex = open_ctx(c, 0)) != 0 || (ex = need_origin(c)) != 0)
		return ex;
	if ((r = checkpoint_vkeys(c->st, c->cfg->log_origin, &out)) != 0)
		return fail("audit vkey", r);
	fputs(out, stdout);
	free(out);
	return 0;
}

static const char audit_export_help[] =
    "usage: custody [-c FILE] audit export DIR [--json]\n"
    "\n"
    "Write the audit log, up to its last signed checkpoint, into DIR in the\n"
    "C2SP tlog-tiles layout: checkpoint, tile/entries/..., tile/<L>/..., and\n"
    "every signed checkpoint as checkpoints/<size>. DIR must not exist or be\n"
    "empty; it appears complete or not at all. Leaves appended after the\n"
    "last checkpoint are not exported: run 'custody audit checkpoint' first.\n"
    "Auditors check the export with 'custody audit verify DIR --vkey VKEY'.\n"
    "Needs no token.\n";

static int
cmd_audit_export(struct ctx *c, int argc, char **argv)
{
	struct logdir_export_stats st;
	const char *dir;
	int r, ex, done;

	if ((ex = json_only_opts(c, "audit export", audit_export_help, argc,
		 argv, 1, &done)) != 0 ||
	    done)
		return ex;
	dir = argv[optind];
	if ((ex = open_ctx(c, 0)) != 0)
		return ex;
	if ((r = logdir_export(c->st, dir, &st)) != 0) {
		if (r == CUSTODY_E_NOT_FOUND) {
			fprintf(stderr,
			    "%s: audit export: no checkpoint was ever signed\n"
			    "%s: hint: run '%s audit checkpoint' first\n",
			    progname, progname, progname);
			return EXIT_FAILURE;
		}
		if (r == CUSTODY_E_EXISTS) {
			fprintf(stderr,
			    "%s: audit export: %s exists and is not empty\n"
			    "%s: hint: export into a new directory\n",
			    progname, dir, progname);
			return EXIT_FAILURE;
		}
		return fail("audit export", r);
	}
	if (c->json) {
		json_t *o = json_object();

		json_object_set_new(o, "dir", json_string(dir));
		json_object_set_new(
		    o, "size", json_integer((json_int_t)st.size));
		json_object_set_new(o, "unsigned_leaves",
		    json_integer((json_int_t)st.unsigned_leaves));
		json_object_set_new(
		    o, "tiles", json_integer((json_int_t)st.tiles));
		json_object_set_new(
		    o, "checkpoints", json_integer((json_int_t)st.checkpoints));
		print_json(o);
		return 0;
	}
	printf("exported %llu leaves, %llu tiles and %zu checkpoints to %s\n",
	    (unsigned long long)st.size, (unsigned long long)st.tiles,
	    st.checkpoints, dir);
	if (st.unsigned_leaves > 0)
		printf("%llu leaves after the last checkpoint were not "
		       "exported; run '%s audit checkpoint' to include them\n",
		    (unsigned long long)st.unsigned_leaves, progname);
	return 0;
}

static const char audit_verify_help[] =
    "usage: custody audit verify DIR --vkey VKEY [--vkey VKEY ...]\n"
    "                            [--vkey-file FILE] [--tolerance SECONDS]\n"
    "                            [--json]\n"
    "\n"
    "Check an export made by 'custody audit export' (or any C2SP tlog-tiles\n"
    "directory with checkpoints/<size>), trusting only the verifier keys:\n"
    "  - every checkpoint carries a valid signature by one of the keys, or\n"
    "    by a checkpoint key that the log handed over to: a rotation of a\n"
    "    trusted checkpoint key, attested by both keys, in the leaves of an\n"
    "    earlier checkpoint that verified (docs/LIFECYCLE.md);\n"
    "  - every leaf is read from the entry tiles, and its seq is its index;\n"
    "  - every hash tile and every checkpoint's root is recomputed from the\n"
    "    leaves and compared;\n"
    "  - every checkpoint is consistent with the one before it.\n"
    "Then the lifecycle of every key, from the verified leaves:\n"
    "  - each chain of rotations is unbroken and each rotation attested by\n"
    "    the old and the new key;\n"
    "  - no credential was issued by a key outside its active period;\n"
    "  - no key stayed active past its max_age, or lived past its ttl, by\n"
    "    more than the tolerance;\n"
    "  - every destruction is attested by the service's attestation key.\n"
    "Needs no configuration, no store and no token. On failure it says which\n"
    "leaf, tile, signature or key is wrong and exits with status 1.\n"
    "'custody audit report' prints the lifecycle of every key.\n"
    "\n"
    "  --vkey VKEY        a verifier key, as 'custody audit vkey' prints it\n"
    "                     (the first checkpoint key is enough: the log\n"
    "                     names its successors)\n"
    "  --vkey-file FILE   verifier keys, one per line ('#' comments)\n"
    "  --tolerance SECS   how late the scheduler may act on a max_age or a\n"
    "                     ttl [60]\n"
    "  --json             print the result as JSON\n";

static const char audit_report_help[] =
    "usage: custody audit report DIR --vkey VKEY [--vkey VKEY ...]\n"
    "                            [--vkey-file FILE] [--tolerance SECONDS]\n"
    "                            [--json | --html]\n"
    "\n"
    "Verify an exported log as 'custody audit verify' does, then print the\n"
    "life of every key: its creation, credentials, rotations, retirement,\n"
    "destruction and their attestations, its deadlines, and every violation\n"
    "of the lifecycle checks. Exits with status 1 if the log does not\n"
    "verify (nothing is printed on stdout then) or if a check failed (the\n"
    "report is printed, with its violations).\n"
    "\n"
    "  --vkey VKEY        a verifier key, as 'custody audit vkey' prints it\n"
    "  --vkey-file FILE   verifier keys, one per line ('#' comments)\n"
    "  --tolerance SECS   how late the scheduler may act [60]\n"
    "  --json             the report as JSON\n"
    "  --html             the report as one HTML page with a timeline of\n"
    "                     each key (no script, no external resource)\n";

#define MAX_VKEYS 64

/* Add the vkey string s to vks; 0 or the exit status. */
static int
add_vkey(struct note_vkey **vks, size_t *np, const char *s)
{
	int r;

	if (*np == MAX_VKEYS)
		return usage_error(
		    "audit verify", "more than %d keys", MAX_VKEYS);
	if ((r = note_vkey_parse(s, &vks[*np])) != 0)
		return usage_error("audit verify",
		    "bad verifier key '%s' (%s): give it exactly as "
		    "'custody audit vkey' prints it",
		    s, custody_strerror(r));
	(*np)++;
	return 0;
}

static int
add_vkey_file(struct note_vkey **vks, size_t *np, const char *path)
{
	uint8_t *buf = NULL;
	char *line, *save = NULL, *end;
	size_t len;
	int r, ex = 0;

	if ((r = util_read_file(path, NOTE_MAX_LEN, &buf, &len)) != 0)
		return fail(path, r);
	for (line = strtok_r((char *)buf, "\n", &save); line != NULL && ex == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		line += strspn(line, " \t");
		end = line + strlen(line);
		while (end > line &&
		       (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (*line != '\0' && *line != '#')
			ex = add_vkey(vks, np, line);
	}
	free(buf);
	return ex;
}

static int parse_u64(
    const char *cmd, const char *opt, const char *s, uint64_t *vp);

/* What 'audit verify' and 'audit report' are given. */
struct offline_args {
	struct note_vkey *vks[MAX_VKEYS];
	size_t n;
	const char *dir;
	struct lcaudit_opts lo;
	int html;
};

/* Parse the options of 'audit verify' (report 0) or 'audit report': 0 to go
 * on, else the exit status; *donep when --help was served. */
static int
offline_opts(struct ctx *c, struct offline_args *oa, int report, int argc,
    char **argv, int *donep)
{
	static const struct option opts[] = {
	    {"vkey", required_argument, NULL, 'k'},
	    {"vkey-file", required_argument, NULL, 'f'},
	    {"tolerance", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"html", no_argument, NULL, 'H'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd = report ? "audit report" : "audit verify";
	uint64_t tol;
	int ch, ex = 0;

	*donep = 0;
	oa->lo.tolerance = -1;
	while (
	    ex == 0 && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			ex = add_vkey(oa->vks, &oa->n, optarg);
			break;
		case 'f':
			ex = add_vkey_file(oa->vks, &oa->n, optarg);
			break;
		case 't':
			if ((ex = parse_u64(
				 cmd, "--tolerance", optarg, &tol)) == 0 &&
			    tol > 366 * 86400)
				ex = usage_error(cmd,
				    "--tolerance: at most a year "
				    "(31622400 seconds)");
			oa->lo.tolerance = (int64_t)tol;
			break;
		case 'j':
			c->json = 1;
			break;
		case 'H':
			if (!report)
				ex = usage_error(cmd, "unknown option");
			oa->html = 1;
			break;
		case 'h':
			fputs(report ? audit_report_help : audit_verify_help,
			    stdout);
			*donep = 1;
			return 0;
		default:
			ex = usage_error(cmd, "unknown option");
		}
	}
	if (ex != 0)
		return ex;
	if (c->json && oa->html)
		return usage_error(cmd, "give --json or --html, not both");
	if (argc - optind < 1)
		return usage_error(cmd, "missing DIR");
	if (argc - optind > 1)
		return usage_error(
		    cmd, "unexpected argument '%s'", argv[optind + 1]);
	if (oa->n == 0)
		return usage_error(
		    cmd, "give the verifier keys with --vkey or --vkey-file");
	oa->dir = argv[optind];
	return 0;
}

/*
 * Verify the export and run the lifecycle checks: 0 with *lap finished,
 * else the exit status (the failure said on stderr, and as JSON with
 * --json when json_fail).
 */
static int
offline_check(struct ctx *c, struct offline_args *oa, const char *cmd,
    int json_fail, struct lcaudit **lap, struct logdir_result *res)
{
	char msg[1024];
	int r;

	msg[0] = '\0';
	if ((r = lcaudit_new(&oa->lo, lap)) != 0)
		return fail(cmd, r);
	r = lcaudit_dir(*lap, oa->dir, oa->vks, oa->n, res, msg, sizeof(msg));
	if (r == 0)
		return 0;
	if (c->json && json_fail) {
		json_t *o = json_object();

		json_object_set_new(o, "verified", json_false());
		json_object_set_new(o, "error",
		    json_string(msg[0] ? msg : custody_strerror(r)));
		print_json(o);
	}
	fprintf(stderr, "%s: %s: FAILED: %s\n", progname, cmd,
	    msg[0] ? msg : custody_strerror(r));
	lcaudit_free(*lap);
	*lap = NULL;
	return EXIT_FAILURE;
}

static void
offline_free(struct offline_args *oa)
{
	size_t i;

	for (i = 0; i < oa->n; i++)
		note_vkey_free(oa->vks[i]);
}

/* The lifecycle's violations on stderr, at most `max` of them. */
static void
print_violations(const struct lcaudit *la, const char *cmd, size_t max)
{
	const struct lcaudit_counts *cn = lcaudit_counts(la);
	const struct lcaudit_violation *v;
	size_t n, i;

	v = lcaudit_violations(la, &n);
	for (i = 0; i < n && i < max; i++) {
		if (v[i].seq >= 0)
			fprintf(stderr, "%s: %s: leaf %lld: %s%s%s: %s\n",
			    progname, cmd, (long long)v[i].seq,
			    lcaudit_kind_name(v[i].kind), v[i].key ? " " : "",
			    v[i].key ? v[i].key : "", v[i].msg);
		else
			fprintf(stderr, "%s: %s: %s%s%s: %s\n", progname, cmd,
			    lcaudit_kind_name(v[i].kind), v[i].key ? " " : "",
			    v[i].key ? v[i].key : "", v[i].msg);
	}
	if (cn->violations > i)
		fprintf(stderr,
		    "%s: %s: ... and %llu more ('custody audit "
		    "report' lists them)\n",
		    progname, cmd, (unsigned long long)(cn->violations - i));
}

static int
cmd_audit_verify(struct ctx *c, int argc, char **argv)
{
	struct offline_args oa = {0};
	struct logdir_result res;
	struct lcaudit *la = NULL;
	const struct lcaudit_counts *cn;
	char *root = NULL;
	int r, ex, done;

	if ((ex = offline_opts(c, &oa, 0, argc, argv, &done)) != 0 || done ||
	    (ex = offline_check(c, &oa, "audit verify", 1, &la, &res)) != 0)
		goto out;
	if ((r = util_base64_encode(res.root, sizeof(res.root), &root)) != 0) {
		ex = fail("audit verify", r);
		goto out;
	}
	cn = lcaudit_counts(la);
	if (c->json) {
		json_t *o = json_object(), *lc = json_object();

		json_object_set_new(
		    o, "verified", json_boolean(lcaudit_ok(la)));
		if (!lcaudit_ok(la))
			json_object_set_new(o, "error",
			    json_string("the lifecycle checks failed"));
		json_object_set_new(
		    o, "size", json_integer((json_int_t)res.size));
		json_object_set_new(o, "root", json_string(root));
		json_object_set_new(o, "checkpoints",
		    json_integer((json_int_t)res.checkpoints));
		json_object_set_new(o, "first_checkpoint_size",
		    json_integer((json_int_t)res.first_size));
		json_object_set_new(
		    o, "tiles", json_integer((json_int_t)res.tiles));
		json_object_set_new(o, "handed_over",
		    json_integer((json_int_t)res.handed_over));
		json_object_set_new(lc, "ok", json_boolean(lcaudit_ok(la)));
		json_object_set_new(lc, "tolerance",
		    json_integer((json_int_t)lcaudit_tolerance(la)));
		json_object_set_new(
		    lc, "keys", json_integer((json_int_t)cn->keys));
		json_object_set_new(
		    lc, "rotations", json_integer((json_int_t)cn->rotations));
		json_object_set_new(lc, "destructions",
		    json_integer((json_int_t)cn->destructions));
		json_object_set_new(lc, "credentials",
		    json_integer((json_int_t)cn->credentials));
		json_object_set_new(lc, "attestations_verified",
		    json_integer((json_int_t)cn->attestations_verified));
		json_object_set_new(
		    lc, "violations", json_integer((json_int_t)cn->violations));
		json_object_set_new(o, "lifecycle", lc);
		print_json(o);
	}
	if (!lcaudit_ok(la)) {
		print_violations(la, "audit verify", 20);
		fprintf(stderr,
		    "%s: audit verify: FAILED: the log verifies, but %llu "
		    "lifecycle check%s failed\n",
		    progname, (unsigned long long)cn->violations,
		    cn->violations == 1 ? "" : "s");
		ex = EXIT_FAILURE;
		goto out;
	}
	if (c->json)
		goto out;
	printf("verified: %llu leaves, root %s\n", (unsigned long long)res.size,
	    root);
	if (res.checkpoints == 1)
		printf("  1 signed checkpoint (size %llu)\n",
		    (unsigned long long)res.size);
	else
		printf("  %zu signed checkpoints (sizes %llu to %llu), "
		       "each consistent with the one before\n",
		    res.checkpoints, (unsigned long long)res.first_size,
		    (unsigned long long)res.size);
	if (res.handed_over > 0)
		printf("  %zu checkpoint key%s handed over to in the log\n",
		    res.handed_over, res.handed_over == 1 ? "" : "s");
	printf("  %llu tiles recomputed from the leaves\n",
	    (unsigned long long)res.tiles);
	printf("  lifecycle: %llu keys, %llu rotations, %llu destructions, "
	       "%llu credentials, %llu attestations verified (tolerance "
	       "%llds)\n",
	    (unsigned long long)cn->keys, (unsigned long long)cn->rotations,
	    (unsigned long long)cn->destructions,
	    (unsigned long long)cn->credentials,
	    (unsigned long long)cn->attestations_verified,
	    (long long)lcaudit_tolerance(la));
out:
	free(root);
	lcaudit_free(la);
	offline_free(&oa);
	return ex;
}

static int
cmd_audit_report(struct ctx *c, int argc, char **argv)
{
	struct offline_args oa = {0};
	struct logdir_result res;
	struct lcaudit *la = NULL;
	int r = 0, ex, done;

	if ((ex = offline_opts(c, &oa, 1, argc, argv, &done)) != 0 || done ||
	    (ex = offline_check(c, &oa, "audit report", 0, &la, &res)) != 0)
		goto out;
	if (c->json) {
		json_t *o = lcaudit_report_json(la);

		if (o == NULL)
			r = CUSTODY_E_NOMEM;
		else
			print_json(o);
	} else if (oa.html)
		r = lcaudit_report_html(la, stdout);
	else
		r = lcaudit_report_text(la, stdout);
	if (r == 0 && fflush(stdout) != 0)
		r = CUSTODY_E_IO;
	if (r != 0)
		ex = fail("audit report", r);
	else if (!lcaudit_ok(la)) {
		fprintf(stderr,
		    "%s: audit report: %llu lifecycle check%s failed\n",
		    progname,
		    (unsigned long long)lcaudit_counts(la)->violations,
		    lcaudit_counts(la)->violations == 1 ? "" : "s");
		ex = EXIT_FAILURE;
	}
out:
	lcaudit_free(la);
	offline_free(&oa);
	return ex;
}

static const char audit_prove_help[] =
    "usage: custody [-c FILE] audit prove --index N [--size S] [--json]\n"
    "       custody [-c FILE] audit prove --from M [--size S] [--json]\n"
    "\n"
    "Print a Merkle proof (RFC 9162) against the signed checkpoint of size S\n"
    "(default: the last one), with that checkpoint:\n"
    "  --index N   inclusion of leaf N (0-based, its seq): the leaf's exact\n"
    "              bytes, its hash and the proof, from the leaf upward\n"
    "  --from M    consistency of the tree of size M with the tree of S\n"
    "Hashes are in standard base64, as in checkpoints.\n";

/* A decimal uint64 operand; 0 or the exit status. */
static int
parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *vp)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s < '0' || *s > '9' || ((v = strtoull(s, &end, 10)), errno != 0) ||
	    *end != '\0' || v > INT64_MAX)
		return usage_error(cmd, "%s wants a number, not '%s'", opt, s);
	*vp = (uint64_t)v;
	return 0;
}

static int
cmd_audit_prove(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"index", required_argument, NULL, 'i'},
	    {"from", required_argument, NULL, 'f'},
	    {"size", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct proof p;
	uint64_t index = 0, from = 0, want = 0;
	size_t i;
	int ch, r, ex = 0, have_index = 0, have_from = 0;
	json_t *o, *a;

	memset(&p, 0, sizeof(p));
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			have_index = 1;
			ex =
			    parse_u64("audit prove", "--index", optarg, &index);
			break;
		case 'f':
			have_from = 1;
			ex = parse_u64("audit prove", "--from", optarg, &from);
			break;
		case 's':
			ex = parse_u64("audit prove", "--size", optarg, &want);
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(audit_prove_help, stdout);
			return 0;
		default:
			return usage_error("audit prove", "unknown option");
		}
		if (ex != 0)
			return ex;
	}
	if (optind != argc)
		return usage_error(
		    "audit prove", "unexpected argument '%s'", argv[optind]);
	if (have_index == have_from)
		return usage_error(
		    "audit prove", "give either --index or --from");
	if ((ex = open_ctx(c, 0)) != 0)
		return ex;
	r = have_index ? proof_inclusion(c->st, index, want, &p)
		       : proof_consistency(c->st, from, want, &p);
	if (r == CUSTODY_E_NOT_FOUND && p.note == NULL) {
		if (want == 0)
			fprintf(stderr,
			    "%s: audit prove: no checkpoint was ever signed\n",
			    progname);
		else
			fprintf(stderr,
			    "%s: audit prove: no checkpoint was signed at "
			    "size %llu\n",
			    progname, (unsigned long long)want);
		fprintf(stderr,
		    "%s: hint: 'custody audit checkpoint' signs one\n",
		    progname);
		ex = EXIT_FAILURE;
		goto out;
	}
	if (r == CUSTODY_E_INVALID_ARG) {
		ex = have_index ? usage_error("audit prove",
				      "leaf %llu is not in the tree of size "
				      "%llu",
				      (unsigned long long)index,
				      (unsigned long long)p.size)
				: usage_error("audit prove",
				      "--from must be between 1 and the size, "
				      "%llu",
				      (unsigned long long)p.size);
		goto out;
	}
	if (r != 0) {
		ex = fail("audit prove", r);
		goto out;
	}
	if ((o = proof_json(&p)) == NULL) {
		ex = fail("audit prove", CUSTODY_E_NOMEM);
		goto out;
	}
	if (c->json)
		print_json(o);
	else {
		a = json_object_get(
		    o, have_index ? "inclusion" : "consistency");
		if (have_index)
			printf("leaf %llu of %llu\n%s\nleaf-hash %s\n",
			    (unsigned long long)index,
			    (unsigned long long)p.size,
			    json_string_value(json_object_get(o, "leaf")),
			    json_string_value(json_object_get(o, "leaf_hash")));
		else
			printf("consistency of %llu with %llu\n",
			    (unsigned long long)from,
			    (unsigned long long)p.size);
		for (i = 0; i < p.n; i++)
			printf("%s %s\n",
			    have_index ? "inclusion" : "consistency",
			    json_string_value(json_array_get(a, i)));
		printf("\n%.*s", (int)p.note_len, p.note);
		json_decref(o);
	}
out:
	proof_cleanup(&p);
	return ex;
}

/* Run the subcommand argv[1] of cmd from cmds[0..n). */
struct subcmd {
	const char *name;
	int (*fn)(struct ctx *, int, char **);
};

static int
dispatch(struct ctx *c, const char *cmd, const struct subcmd *cmds, size_t n,
    const char *help, int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		fputs(help, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(help, stdout);
		return 0;
	}
	for (i = 0; i < n; i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(c, argc - 1, argv + 1);
	fprintf(
	    stderr, "%s: unknown %s command '%s'\n", progname, cmd, argv[1]);
	fputs(help, stderr);
	return EXIT_USAGE;
}

static int
cmd_key(struct ctx *c, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
	    {"create", cmd_key_create},
	    {"list", cmd_key_list},
	    {"show", cmd_key_show},
	    {"rotate", cmd_key_rotate},
	    {"destroy", cmd_key_destroy},
	    {"history", cmd_key_history},
	};

	return dispatch(c, "key", cmds, sizeof(cmds) / sizeof(cmds[0]),
	    key_help, argc, argv);
}

static int
cmd_audit(struct ctx *c, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
	    {"checkpoint", cmd_audit_checkpoint},
	    {"vkey", cmd_audit_vkey},
	    {"export", cmd_audit_export},
	    {"verify", cmd_audit_verify},
	    {"report", cmd_audit_report},
	    {"prove", cmd_audit_prove},
	};

	return dispatch(c, "audit", cmds, sizeof(cmds) / sizeof(cmds[0]),
	    audit_help, argc, argv);
}

/* ---- custody policy ... ------------------------------------------------- */

static const char policy_help[] =
    "usage: custody policy COMMAND ...\n"
    "\n"
    "Policies offline (no configuration, no token, no store):\n"
    "  check FILE         load FILE strictly and say what is wrong with it\n"
    "  test FILE CASES    decide every request of CASES with FILE and\n"
    "                     compare with the decisions expected\n"
    "\n"
    "The language: docs/POLICY.md, custody-policy(5).\n";

static const char policy_check_help[] =
    "usage: custody policy check FILE [--json]\n"
    "\n"
    "Load a policy as custodyd would: duplicate keys, unknown fields, wrong\n"
    "types and unknown names are errors that give the line and column (for\n"
    "syntax) or a JSON Pointer to the value at fault. Prints the number of\n"
    "rules and the SHA-256 of the file (what audit leaves record).\n";

static int
load_policy(const char *path, struct policy **pp)
{
	char err[512];
	int r;

	if ((r = policy_load(path, pp, err, sizeof(err))) != 0) {
		fprintf(stderr, "%s: %s\n", progname,
		    err[0] ? err : custody_strerror(r));
		return EXIT_FAILURE;
	}
	return 0;
}

static int
cmd_policy_check(struct ctx *c, int argc, char **argv)
{
	struct policy *p = NULL;
	char hex[65];
	int ex, done;

	if ((ex = json_only_opts(c, "policy check", policy_check_help, argc,
		 argv, 1, &done)) != 0 ||
	    done)
		return ex;
	if ((ex = load_policy(argv[optind], &p)) != 0)
		return ex;
	util_hex_encode(policy_sha256(p), 32, hex);
	if (c->json)
		print_json(json_pack("{s:s, s:b, s:I, s:s}", "file",
		    argv[optind], "ok", 1, "rules",
		    (json_int_t)policy_nrules(p), "sha256", hex));
	else
		printf("%s: ok, %zu rules, sha256 %s\n", argv[optind],
		    policy_nrules(p), hex);
	policy_free(p);
	return 0;
}

static const char policy_test_help[] =
    "usage: custody policy test FILE CASES [--json]\n"
    "\n"
    "Decide each request of CASES (a JSON file: {\"cases\": [...]}) with the\n"
    "policy FILE, print a table, and exit 1 if any decision differs from the\n"
    "one expected. Cases run in order and share rate-limit buckets. The\n"
    "format is in docs/POLICY.md (Testing a policy).\n";

/* Strings of a case, owned by its JSON (borrowed). */
struct policy_case {
	struct policy_request q;
	struct policy_key k;
	const char *auds[64], *claims[64];
	const char *name;
	long repeat;
	const char *decision, *rule, *reason;
	int64_t ttl;
	int has_ttl, rate_limited; /* rate_limited -1: not given */
};

/* Report a bad case at its JSON Pointer; returns EXIT_FAILURE. */
static int case_error(const char *file, size_t i, const char *where,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
case_error(const char *file, size_t i, const char *where, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s: /cases/%zu%s: ", progname, file, i, where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

static int
case_strings(const char *file, size_t i, const char *where, json_t *v,
    const char **out, size_t max, size_t *np)
{
	size_t j;
	json_t *e;

	if (!json_is_array(v) || json_array_size(v) > max)
		return case_error(file, i, where,
		    "must be an array of at most %zu strings", max);
	json_array_foreach(v, j, e)
	{
		if (!json_is_string(e))
			return case_error(
			    file, i, where, "item %zu is not a string", j);
		out[j] = json_string_value(e);
	}
	*np = json_array_size(v);
	return 0;
}

static int
case_parse(const char *file, size_t i, json_t *o, struct policy_case *pc)
{
	json_t *rq, *key = NULL, *auds = NULL, *claims = NULL, *exp;
	json_t *created = NULL, *keyttl = NULL, *rate = NULL;
	const char *action, *time_s, *ttl = NULL, *exp_ttl = NULL;
	const char *created_s = NULL, *keyttl_s = NULL;
	json_error_t e;
	json_int_t repeat = 1;
	int64_t t;
	int act = 0;

	memset(pc, 0, sizeof(*pc));
	if (json_unpack_ex(o, &e, JSON_STRICT, "{s?s, s:o, s?I, s:o}", "name",
		&pc->name, "request", &rq, "repeat", &repeat, "expect",
		&exp) != 0)
		return case_error(file, i, "", "%s", e.text);
	if (repeat < 1 || repeat > 100000)
		return case_error(file, i, "/repeat", "from 1 to 100000");
	pc->repeat = (long)repeat;
	if (json_unpack_ex(rq, &e, JSON_STRICT,
		"{s:s, s:s, s:s, s?o, s?s, s?o, s?s, s?o, s?b, s?s, s?s}",
		"principal", &pc->q.principal, "action", &action, "time",
		&time_s, "key", &key, "ttl", &ttl, "audiences", &auds, "sub",
		&pc->q.sub, "claims", &claims, "act", &act, "csr_key",
		&pc->q.csr_key, "event", &pc->q.event) != 0)
		return case_error(file, i, "/request", "%s", e.text);
	if ((pc->q.action = policy_action_parse(action)) < 0)
		return case_error(
		    file, i, "/request/action", "unknown action '%s'", action);
	if (util_parse_time(time_s, &t) != 0)
		return case_error(
		    file, i, "/request/time", "not an RFC 3339 time");
	pc->q.now_ms = t * 1000;
	pc->q.act = act;
	if (ttl != NULL && util_parse_duration(ttl, &pc->q.ttl) != 0)
		return case_error(file, i, "/request/ttl", "not a duration");
	if (auds != NULL && case_strings(file, i, "/request/audiences", auds,
				pc->auds, 64, &pc->q.naudiences) != 0)
		return EXIT_FAILURE;
	pc->q.audiences = pc->auds;
	if (claims != NULL && case_strings(file, i, "/request/claims", claims,
				  pc->claims, 64, &pc->q.nclaims) != 0)
		return EXIT_FAILURE;
	pc->q.claims = pc->claims;
	if (key != NULL) {
		if (json_unpack_ex(key, &e, JSON_STRICT,
			"{s:s, s:s, s:s, s:s, s?s, s?o, s?o, s?s}", "agent",
			&pc->k.agent, "owner", &pc->k.owner, "purpose",
			&pc->k.purpose, "alg", &pc->k.alg, "task", &pc->k.task,
			"created", &created, "ttl", &keyttl, "id",
			&pc->k.id) != 0)
			return case_error(
			    file, i, "/request/key", "%s", e.text);
		created_s = json_string_value(created);
		keyttl_s = json_string_value(keyttl);
		if (created != NULL &&
		    (created_s == NULL ||
			util_parse_time(created_s, &pc->k.created_at) != 0))
			return case_error(file, i, "/request/key/created",
			    "not an RFC 3339 time");
		if (keyttl != NULL &&
		    (keyttl_s == NULL ||
			util_parse_duration(keyttl_s, &pc->k.ttl) != 0))
			return case_error(
			    file, i, "/request/key/ttl", "not a duration");
		pc->q.key = &pc->k;
	}
	pc->rate_limited = -1;
	if (json_unpack_ex(exp, &e, JSON_STRICT, "{s:s, s?s, s?s, s?o, s?s}",
		"decision", &pc->decision, "rule", &pc->rule, "ttl", &exp_ttl,
		"rate_limited", &rate, "reason", &pc->reason) != 0)
		return case_error(file, i, "/expect", "%s", e.text);
	if (strcmp(pc->decision, "allow") != 0 &&
	    strcmp(pc->decision, "deny") != 0)
		return case_error(
		    file, i, "/expect/decision", "\"allow\" or \"deny\"");
	if (exp_ttl != NULL) {
		if (util_parse_duration(exp_ttl, &pc->ttl) != 0)
			return case_error(
			    file, i, "/expect/ttl", "not a duration");
		pc->has_ttl = 1;
	}
	if (rate != NULL) {
		if (!json_is_boolean(rate))
			return case_error(file, i, "/expect/rate_limited",
			    "must be true or false");
		pc->rate_limited = json_is_true(rate);
	}
	return 0;
}

/* Does d meet what pc expects? what names the first difference. */
static int
case_ok(const struct policy_case *pc, const struct policy_decision *d,
    char *what, size_t whatsz)
{
	char a[24], b[24];

	if ((strcmp(pc->decision, "allow") == 0) != d->allow) {
		snprintf(what, whatsz, "decision");
		return 0;
	}
	if (pc->rule != NULL && strcmp(pc->rule, d->rule) != 0) {
		snprintf(what, whatsz, "rule: expected %s", pc->rule);
		return 0;
	}
	if (pc->has_ttl && pc->ttl != d->ttl) {
		util_format_duration(pc->ttl, a, sizeof(a));
		util_format_duration(d->ttl, b, sizeof(b));
		snprintf(what, whatsz, "ttl: expected %s, got %s", a, b);
		return 0;
	}
	if (pc->rate_limited >= 0 && pc->rate_limited != d->rate_limited) {
		snprintf(what, whatsz, "rate_limited: expected %s",
		    pc->rate_limited ? "true" : "false");
		return 0;
	}
	if (pc->reason != NULL && strstr(d->reason, pc->reason) == NULL) {
		snprintf(
		    what, whatsz, "reason: expected '%.64s' in it", pc->reason);
		return 0;
	}
	return 1;
}

static int
cmd_policy_test(struct ctx *c, int argc, char **argv)
{
	struct policy *p = NULL;
	struct policy_decision d;
	struct policy_case pc;
	json_error_t e;
	json_t *root = NULL, *cases, *o, *out = NULL;
	const char *file, *cfile;
	char what[128], ttl[24];
	size_t i, nfail = 0;
	long k;
	int ex, done, ok;

	if ((ex = json_only_opts(c, "policy test", policy_test_help, argc, argv,
		 2, &done)) != 0 ||
	    done)
		return ex;
	file = argv[optind];
	cfile = argv[optind + 1];
	if ((ex = load_policy(file, &p)) != 0)
		return ex;
	ex = EXIT_FAILURE;
	if ((root = json_load_file(cfile, JSON_REJECT_DUPLICATES, &e)) ==
	    NULL) {
		fprintf(stderr, "%s: %s:%d:%d: %s\n", progname, cfile, e.line,
		    e.column, e.text);
		goto out;
	}
	if (json_unpack_ex(root, &e, JSON_STRICT, "{s:o}", "cases", &cases) !=
		0 ||
	    !json_is_array(cases) || json_array_size(cases) == 0) {
		fprintf(stderr,
		    "%s: %s: expected {\"cases\": [...]} with at "
		    "least one case\n",
		    progname, cfile);
		goto out;
	}
	if (c->json)
		out = json_array();
	else
		printf("%-6s %-8s %-8s %-24s %s\n", "RESULT", "EXPECTED", "GOT",
		    "RULE", "CASE");
	json_array_foreach(cases, i, o)
	{
		if (case_parse(cfile, i, o, &pc) != 0)
			goto out;
		for (k = 0; k < pc.repeat; k++)
			policy_eval(p, &pc.q, &d);
		ok = case_ok(&pc, &d, what, sizeof(what));
		nfail += !ok;
		if (c->json) {
			json_t *r = json_pack("{s:I, s:s?, s:b, s:s, s:s, s:s}",
			    "index", (json_int_t)i, "name", pc.name, "ok", ok,
			    "decision", d.allow ? "allow" : "deny", "rule",
			    d.rule, "reason", d.reason);

			if (d.ttl > 0) {
				util_format_duration(d.ttl, ttl, sizeof(ttl));
				json_object_set_new(r, "ttl", json_string(ttl));
			}
			if (d.rate_limited)
				json_object_set_new(
				    r, "rate_limited", json_true());
			if (!ok)
				json_object_set_new(
				    r, "mismatch", json_string(what));
			json_array_append_new(out, r);
			continue;
		}
		printf("%-6s %-8s %-8s %-24s %s\n", ok ? "ok" : "FAIL",
		    pc.decision, d.allow ? "allow" : "deny", d.rule,
		    pc.name ? pc.name : "");
		if (!ok)
			printf("       %s; reason: %s\n", what, d.reason);
	}
	if (c->json) {
		print_json(json_pack("{s:s, s:I, s:I, s:o}", "policy", file,
		    "cases", (json_int_t)json_array_size(cases), "failed",
		    (json_int_t)nfail, "results", out));
		out = NULL;
	} else
		printf(
		    "%zu cases, %zu failed\n", json_array_size(cases), nfail);
	ex = nfail == 0 ? 0 : EXIT_FAILURE;
out:
	json_decref(out);
	json_decref(root);
	policy_free(p);
	return ex;
}

static int
cmd_policy(struct ctx *c, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
	    {"check", cmd_policy_check},
	    {"test", cmd_policy_test},
	};

	return dispatch(c, "policy", cmds, sizeof(cmds) / sizeof(cmds[0]),
	    policy_help, argc, argv);
}

/* ---- main -----------------------------------------------------------------
 */

/* ---- custody jwt --------------------------------------------------------- */

static const char jwt_issue_help[] =
    "usage: custody jwt issue (--agent A | --key ID) --aud AUD [--aud AUD]...\n"
    "                         [--ttl D] [--sub S] [--claim NAME=VALUE]...\n"
    "                         [--claim-json NAME=JSON]... [--act-sub S]\n"
    "                         [--json]\n"
    "\n"
    "Ask custodyd (it must be running) for a JWT signed by agent A's active\n"
    "jwt key, or by key ID. custodyd's policy decides, records the decision\n"
    "in the audit log, and only then signs. Prints the token (--json: the\n"
    "token, its kid, expiry and the index of its leaf in the audit log).\n"
    "\n"
    "  --agent A            the agent whose task-less jwt key signs\n"
    "  --key ID             the key that signs\n"
    "  --aud AUD            an audience (repeat for several)\n"
    "  --ttl D              lifetime asked for (30s, 15m, ...); policy's\n"
    "                       maximum and the key's remaining life cap it\n"
    "  --sub S              subject [the agent]\n"
    "  --claim NAME=VALUE   a custom claim with a string value\n"
    "  --claim-json NAME=J  a custom claim with a JSON value\n"
    "  --act-sub S          an RFC 8693 act claim: the agent acts for S\n"
    "  --json               print custodyd's answer as JSON\n";

/* NAME=VALUE into o: the value as a string, or parsed as JSON. */
static int
add_claim(json_t *o, const char *arg, int as_json)
{
	const char *eq = strchr(arg, '=');
	char name[160];
	json_t *v;

	if (eq == NULL || eq == arg || (size_t)(eq - arg) >= sizeof(name))
		return usage_error("jwt issue", "'%s' is not NAME=VALUE", arg);
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = '\0';
	if (json_object_get(o, name) != NULL)
		return usage_error("jwt issue", "claim %s given twice", name);
	v = as_json ? json_loads(eq + 1, JSON_DECODE_ANY, NULL)
		    : json_string(eq + 1);
	if (v == NULL)
		return usage_error("jwt issue", "claim %s: '%s' is not %s",
		    name, eq + 1, as_json ? "JSON" : "UTF-8 text");
	json_object_set_new(o, name, v);
	return 0;
}

static int
cmd_jwt_issue(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"agent", required_argument, NULL, 'a'},
	    {"key", required_argument, NULL, 'k'},
	    {"aud", required_argument, NULL, 'u'},
	    {"ttl", required_argument, NULL, 't'},
	    {"sub", required_argument, NULL, 's'},
	    {"claim", required_argument, NULL, 'c'},
	    {"claim-json", required_argument, NULL, 'J'},
	    {"act-sub", required_argument, NULL, 'A'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	json_t *body = json_object(), *aud = json_array(),
	       *claims = json_object(), *out = NULL;
	int64_t ttl = 0;
	int ch, ex = 0;

	if (body == NULL || aud == NULL || claims == NULL) {
		ex = fail("jwt issue", CUSTODY_E_NOMEM);
		goto out;
	}
	while (
	    ex == 0 && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
		case 'k':
		case 's':
			json_object_set_new(body,
			    ch == 'a'	? "agent"
			    : ch == 'k' ? "key"
					: "sub",
			    json_string(optarg));
			break;
		case 'u':
			json_array_append_new(aud, json_string(optarg));
			break;
		case 't':
			if (util_parse_duration(optarg, &ttl) != 0 || ttl <= 0)
				ex = usage_error("jwt issue",
				    "bad --ttl '%s' (use 30s, 15m, 24h)",
				    optarg);
			break;
		case 'c':
		case 'J':
			ex = add_claim(claims, optarg, ch == 'J');
			break;
		case 'A':
			json_object_set_new(
			    body, "act", json_pack("{s:s}", "sub", optarg));
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(jwt_issue_help, stdout);
			goto out;
		default:
			ex = usage_error("jwt issue", "unknown option");
		}
	}
	if (ex != 0)
		goto out;
	if (optind != argc) {
		ex = usage_error(
		    "jwt issue", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if ((json_object_get(body, "agent") == NULL) ==
		(json_object_get(body, "key") == NULL) ||
	    json_array_size(aud) == 0) {
		ex = usage_error("jwt issue",
		    "give --agent or --key (one of them) and --aud");
		goto out;
	}
	json_object_set(body, "audience",
	    json_array_size(aud) == 1 ? json_array_get(aud, 0) : aud);
	if (ttl > 0)
		json_object_set_new(body, "ttl", json_integer(ttl));
	if (json_object_size(claims) > 0)
		json_object_set(body, "claims", claims);
	if ((ex = daemon_required(c, "jwt issue")) != 0)
		goto out;
	if ((ex = daemon_call(c, "jwt issue", "POST", "/v1/credentials/jwt",
		 body, &out)) != 0)
		goto out;
	if (c->json) {
		print_json(out);
		out = NULL;
	} else if (js(out, "token") != NULL)
		printf("%s\n", js(out, "token"));
	else
		ex = fail("jwt issue", CUSTODY_E_PROTOCOL);
out:
	json_decref(out);
	json_decref(body);
	json_decref(aud);
	json_decref(claims);
	return ex;
}

static int
cmd_jwt(struct ctx *c, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
	    {"issue", cmd_jwt_issue},
	};
	static const char help[] =
	    "usage: custody jwt issue ...\n"
	    "\n"
	    "  issue   have custodyd issue a JWT for an agent\n";

	return dispatch(
	    c, "jwt", cmds, sizeof(cmds) / sizeof(cmds[0]), help, argc, argv);
}

/* ---- custody x509, custody ca -------------------------------------------- */

/* A text file of at most max bytes as a JSON string (new), or NULL after
 * saying why. */
static json_t *
file_string(const char *cmd, const char *path, size_t max)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	json_t *s;
	int r;

	if ((r = util_read_file(path, max, &buf, &len)) != 0) {
		fprintf(stderr, "%s: %s: %s: %s\n", progname, cmd, path,
		    custody_strerror(r));
		return NULL;
	}
	if ((s = json_stringn((const char *)buf, len)) == NULL)
		fprintf(stderr, "%s: %s: %s is not UTF-8 text\n", progname, cmd,
		    path);
	free(buf);
	return s;
}

/* Print "certificate" then every PEM of "chain" of custodyd's answer. */
static int
print_chain(const char *cmd, json_t *out)
{
	json_t *chain = json_object_get(out, "chain"), *v;
	size_t i;

	if (js(out, "certificate") == NULL || !json_is_array(chain))
		return fail(cmd, CUSTODY_E_PROTOCOL);
	fputs(js(out, "certificate"), stdout);
	json_array_foreach(chain, i, v) if (json_is_string(v))
	    fputs(json_string_value(v), stdout);
	return 0;
}

static const char x509_issue_help[] =
    "usage: custody x509 issue (--agent A | --key ID) --csr FILE [--ttl D]\n"
    "                          [--json]\n"
    "\n"
    "Ask custodyd (it must be running) for an X.509 certificate for the\n"
    "public key of the PKCS#10 request in FILE (PEM), issued by agent A's\n"
    "active x509-ca key or by key ID. Nothing of the request but its key is\n"
    "used: the subject is empty, the one subject alternative name is the\n"
    "agent's SPIFFE ID, the usages come from the policy. custodyd's policy\n"
    "decides and records the decision in the audit log before the token\n"
    "signs. Prints the certificate, then its chain (the CA certificate and\n"
    "its issuers), in PEM.\n"
    "\n"
    "  --agent A    the agent whose task-less x509-ca key issues\n"
    "  --key ID     the x509-ca key that issues\n"
    "  --csr FILE   the request (PEM), signed by the key to certify\n"
    "  --ttl D      lifetime asked for (15m, 24h, ...); the policy's maximum,\n"
    "               the key's and the CA certificate's remaining life cap it\n"
    "  --json       print custodyd's answer as JSON (certificate, chain,\n"
    "               serial, expires_at, log_index)\n";

static int
cmd_x509_issue(struct ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"agent", required_argument, NULL, 'a'},
	    {"key", required_argument, NULL, 'k'},
	    {"csr", required_argument, NULL, 'r'},
	    {"ttl", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	json_t *body = json_object(), *out = NULL, *csr = NULL;
	const char *csr_path = NULL;
	int64_t ttl = 0;
	int ch, ex = 0;

	if (body == NULL)
		return fail("x509 issue", CUSTODY_E_NOMEM);
	while (
	    ex == 0 && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
		case 'k':
			json_object_set_new(body, ch == 'a' ? "agent" : "key",
			    json_string(optarg));
			break;
		case 'r':
			csr_path = optarg;
			break;
		case 't':
			if (util_parse_duration(optarg, &ttl) != 0 || ttl <= 0)
				ex = usage_error("x509 issue",
				    "bad --ttl '%s' (use 15m, 24h, 7d)",
				    optarg);
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(x509_issue_help, stdout);
			goto out;
		default:
			ex = usage_error("x509 issue", "unknown option");
		}
	}
	if (ex != 0)
		goto out;
	if (optind != argc) {
		ex = usage_error(
		    "x509 issue", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if ((json_object_get(body, "agent") == NULL) ==
		(json_object_get(body, "key") == NULL) ||
	    csr_path == NULL) {
		ex = usage_error("x509 issue",
		    "give --agent or --key (one of them) and --csr");
		goto out;
	}
	if ((csr = file_string("x509 issue", csr_path, CERT_CSR_MAX)) == NULL) {
		ex = EXIT_FAILURE;
		goto out;
	}
	json_object_set(body, "csr", csr);
	if (ttl > 0)
		json_object_set_new(body, "ttl", json_integer(ttl));
	if ((ex = daemon_required(c, "x509 issue")) != 0 ||
	    (ex = daemon_call(c, "x509 issue", "POST", "/v1/credentials/x509",
		 body, &out)) != 0)
		goto out;
	if (c->json) {
		print_json(out);
		out = NULL;
	} else
		ex = print_chain("x509 issue", out);
out:
	json_decref(csr);
	json_decref(out);
	json_decref(body);
	return ex;
}

static int
cmd_x509(struct ctx *c, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
	    {"issue", cmd_x509_issue},
	};
	static const char help[] =
	    "usage: custody x509 issue ...\n"
	    "\n"
	    "  issue   have custodyd issue an X.509 certificate for an agent\n";

	return dispatch(
	    c, "x509", cmds, sizeof(cmds) / sizeof(cmds[0]), help, argc, argv);
}

static const char ca_help[] =
    "usage: custody ca init   --key ID [--subject S] [--ttl D] [--json]\n"
    "       custody ca csr    --key ID [--subject S] [--json]\n"
    "       custody ca import --key ID FILE [--json]\n"
    "       custody ca show   --key ID [--json]\n"
    "\n"
    "The CA certificate of an x509-ca key, through custodyd (it must be\n"
    "running; its policy's ca.manage decides, key.read for show):\n"
    "\n"
    "  init     a self-signed CA certificate, signed in the token\n"
    "           (CA:TRUE, pathlen 0, keyCertSign); prints it\n"
    "  csr      a PKCS#10 request for an external CA, signed in the token;\n"
    "           prints it (nothing is installed)\n"
    "  import   install the external CA's answer: FILE holds the certificate\n"
    "           for this key, then its issuers (PEM); custodyd checks that\n"
    "           it is this key's, a CA certificate, valid now, and that each\n"
    "           certificate is signed by the next\n"
    "  show     print the key's CA certificate and its chain\n"
    "\n"
    "  --key ID      the x509-ca key\n"
    "  --subject S   the subject, RFC 4514: CN=..,O=..,C=.. (CN, O, OU, C,\n"
    "                L, ST, DC) [CN=custody CA ID]\n"
    "  --ttl D       validity of a self-signed certificate (1h to 20 years;\n"
    "                never past the key's ttl) [365d]\n"
    "  --json        print custodyd's answer as JSON\n";

static int
cmd_ca_op(struct ctx *c, int argc, char **argv, const char *op)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"subject", required_argument, NULL, 's'},
	    {"ttl", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char cmd[32], target[96];
	const char *key = NULL, *subject = NULL, *method = "POST";
	json_t *body = NULL, *out = NULL, *pem = NULL;
	int64_t ttl = 0;
	int ch, ex = 0;

	snprintf(cmd, sizeof(cmd), "ca %s", op);
	while (
	    ex == 0 && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			key = optarg;
			break;
		case 's':
			subject = optarg;
			break;
		case 't':
			if (util_parse_duration(optarg, &ttl) != 0 || ttl <= 0)
				ex = usage_error(cmd,
				    "bad --ttl '%s' (use 24h, 365d)", optarg);
			break;
		case 'j':
			c->json = 1;
			break;
		case 'h':
			fputs(ca_help, stdout);
			return 0;
		default:
			ex = usage_error(cmd, "unknown option");
		}
	}
	if (ex != 0)
		return ex;
	if (key == NULL ||
	    store_key_id_parse(key, (uint8_t[STORE_CKA_ID_LEN]){0}) != 0)
		return usage_error(cmd, "give --key ID (k_ and 16 hex digits)");
	if ((subject != NULL &&
		(strcmp(op, "import") == 0 || strcmp(op, "show") == 0)) ||
	    (ttl > 0 && strcmp(op, "init") != 0))
		return usage_error(cmd, "--subject is for init and csr, --ttl "
					"for init");
	if ((strcmp(op, "import") == 0) != (optind == argc - 1) ||
	    optind < argc - 1)
		return usage_error(cmd, strcmp(op, "import") == 0
					    ? "give the certificates' FILE"
					    : "unexpected argument");
	if (strcmp(op, "show") == 0) {
		method = "GET";
		snprintf(target, sizeof(target), "/v1/keys/%s/ca", key);
	} else if (strcmp(op, "import") == 0) {
		method = "PUT";
		snprintf(target, sizeof(target), "/v1/keys/%s/ca", key);
		if ((pem = file_string(cmd, argv[optind], 64 << 10)) == NULL)
			return EXIT_FAILURE;
		body = json_pack("{s:O}", "certificates", pem);
	} else {
		snprintf(target, sizeof(target), "/v1/keys/%s/ca/%s", key,
		    strcmp(op, "init") == 0 ? "self-signed" : "csr");
		body = json_object();
		if (body != NULL && subject != NULL)
			json_object_set_new(
			    body, "subject", json_string(subject));
		if (body != NULL && ttl > 0)
			json_object_set_new(body, "ttl", json_integer(ttl));
	}
	if (body == NULL && strcmp(op, "show") != 0) {
		ex = fail(cmd, CUSTODY_E_NOMEM);
		goto out;
	}
	if ((ex = daemon_required(c, cmd)) != 0 ||
	    (ex = daemon_call(c, cmd, method, target, body, &out)) != 0)
		goto out;
	if (c->json) {
		print_json(out);
		out = NULL;
	} else if (strcmp(op, "csr") == 0) {
		if (js(out, "csr") != NULL)
			fputs(js(out, "csr"), stdout);
		else
			ex = fail(cmd, CUSTODY_E_PROTOCOL);
	} else
		ex = print_chain(cmd, out);
out:
	json_decref(pem);
	json_decref(body);
	json_decref(out);
	return ex;
}

static int
cmd_ca_init(struct ctx *c, int argc, char **argv)
{
	return cmd_ca_op(c, argc, argv, "init");
}

static int
cmd_ca_csr(struct ctx *c, int argc, char **argv)
{
	return cmd_ca_op(c, argc, argv, "csr");
}

static int
cmd_ca_import(struct ctx *c, int argc, char **argv)
{
	return cmd_ca_op(c, argc, argv, "import");
}

static int
cmd_ca_show(struct ctx *c, int argc, char **argv)
{
	return cmd_ca_op(c, argc, argv, "show");
}

static int
cmd_ca(struct ctx *c, int argc, char **argv)
{
	static const struct subcmd cmds[] = {
	    {"init", cmd_ca_init},
	    {"csr", cmd_ca_csr},
	    {"import", cmd_ca_import},
	    {"show", cmd_ca_show},
	};

	return dispatch(
	    c, "ca", cmds, sizeof(cmds) / sizeof(cmds[0]), ca_help, argc, argv);
}

static const char main_help[] =
    "usage: custody [-c FILE] [-v] COMMAND [options]\n"
    "\n"
    "custody keeps the signing keys of agents and other non-human identities\n"
    "inside a PKCS#11 token (SoftHSM2, a TPM, an HSM).\n"
    "\n"
    "Commands (through custodyd when it runs, where its policy decides;\n"
    "else in direct mode: the CLI opens the token and the store itself,\n"
    "under a lock on the data directory):\n"
    "  init          initialise the token, the store and the service keys\n"
    "  key create    generate an agent key in the token\n"
    "  key list      list keys\n"
    "  key show      show a key\n"
    "  key destroy   destroy a key (direct mode only, for now)\n"
    "  jwt issue     have custodyd issue a JWT for an agent\n"
    "  x509 issue    have custodyd issue an X.509 certificate for an agent\n"
    "  ca init|csr|import|show  the CA certificate of an x509-ca key\n"
    "  audit checkpoint  sign a checkpoint of the audit log in the token\n"
    "  audit vkey    print the checkpoint verifier keys, for auditors\n"
    "  audit export  write the log in the C2SP tlog-tiles layout\n"
    "  audit verify  check an export offline (no configuration, no token)\n"
    "  audit prove   inclusion and consistency proofs\n"
    "  policy check  check a policy file (offline)\n"
    "  policy test   run a policy's test cases (offline)\n"
    "\n"
    "Options:\n"
    "  -c FILE       configuration file [$CUSTODY_CONF, "
    "else " CONFIG_DEFAULT_PATH "]\n"
    "  -v            more diagnostics (-vv: every PKCS#11 call)\n"
    "  --version     print the version\n"
    "  --help        this text; 'custody COMMAND --help' for a command\n";

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct ctx c;
	int ch, verbose = 0, ex;

	util_harden();
	memset(&c, 0, sizeof(c));
	c.lockfd = -1;
	/* '+': stop at the command word; its options are its own */
	while ((ch = getopt_long(argc, argv, "+c:vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c.conf_path = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			fputs(main_help, stdout);
			return 0;
		case 'V':
			printf("custody %s\n", CUSTODY_VERSION);
			return 0;
		default:
			fputs(main_help, stderr);
			return EXIT_USAGE;
		}
	}
	custody_log_set(custody_log_stderr,
	    verbose >= 2   ? LOG_DEBUG
	    : verbose == 1 ? LOG_INFO
			   : LOG_WARNING,
	    (void *)progname);
	if (optind >= argc) {
		fputs(main_help, stderr);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	/* the command parses its own options from argv[1]; 0 makes glibc
	 * forget the '+' mode of the first parse and permute again */
	optind = 0;
	if (strcmp(argv[0], "init") == 0)
		ex = cmd_init(&c, argc, argv);
	else if (strcmp(argv[0], "key") == 0)
		ex = cmd_key(&c, argc, argv);
	else if (strcmp(argv[0], "audit") == 0)
		ex = cmd_audit(&c, argc, argv);
	else if (strcmp(argv[0], "jwt") == 0)
		ex = cmd_jwt(&c, argc, argv);
	else if (strcmp(argv[0], "x509") == 0)
		ex = cmd_x509(&c, argc, argv);
	else if (strcmp(argv[0], "ca") == 0)
		ex = cmd_ca(&c, argc, argv);
	else if (strcmp(argv[0], "policy") == 0)
		ex = cmd_policy(&c, argc, argv);
	else {
		fprintf(
		    stderr, "%s: unknown command '%s'\n", progname, argv[0]);
		fputs(main_help, stderr);
		ex = EXIT_USAGE;
	}
	close_ctx(&c);
	return ex;
}
