/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the store: a real SQLite file in a fresh directory under /tmp
 * per test. Some tests open the file with their own sqlite3 handle to look
 * at what the store wrote, or to write what the store would refuse.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "store.h"
#include "testutil.h"

/* the schema version this program writes (store.c's migrations) */
#define SCHEMA_NOW     7
#define SCHEMA_NOW_STR "7"

#define ID_A "k_0123456789abcdef"
#define ID_B "k_fedcba9876543210"
#define ID_C "k_00000000000000c0"
#define ID_D "k_00000000000000d0"
#define ID_E "k_00000000000000e0"

#define AGENT "spiffe://example.org/agent/planner"
#define T0    1763892000 /* 2025-11-23T10:00:00Z */

struct fixture {
	char dir[64];
	char path[128];
	struct store *st;
};

/* An Ed25519 SPKI; the zero bytes check that the blob is not a string. */
static uint8_t spki[] = {
    0x30,
    0x2a,
    0x30,
    0x05,
    0x06,
    0x03,
    0x2b,
    0x65,
    0x70,
    0x03,
    0x21,
    0x00,
    0x00,
    0x01,
    0x02,
    0x03,
    0x04,
    0x05,
    0x06,
    0x07,
    0x08,
    0x09,
    0x0a,
    0x0b,
    0x0c,
    0x0d,
    0x0e,
    0x0f,
    0x10,
    0x11,
    0x12,
    0x13,
    0x14,
    0x15,
    0x16,
    0x17,
    0x18,
    0x19,
    0x1a,
    0x1b,
    0x1c,
    0x1d,
    0x1e,
    0x00,
};

/* The last error the library logged, for tests of what it says. */
static char last_error[1024];

static void
log_capture(int level, const char *func, const char *msg, void *arg)
{
	(void)arg;
	if (level <= 3)
		snprintf(last_error, sizeof(last_error), "%s: %s", func, msg);
	if (getenv("TEST_STORE_LOG") != NULL)
		fprintf(stderr, "log %d %s: %s\n", level, func, msg);
}

static void
assert_logged(const char *what)
{
	if (strstr(last_error, what) == NULL)
		fail_msg(
		    "expected \"%s\" in the log, got \"%s\"", what, last_error);
}

static int
setup(void **state)
{
	struct fixture *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/custody.db", f->dir);
	last_error[0] = '\0';
	custody_log_set(log_capture, 7, NULL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	testutil_rmtree(f->dir);
	custody_log_set(NULL, 3, NULL);
	free(f);
	return 0;
}

static void
open_store(struct fixture *f)
{
	assert_int_equal(store_open(f->path, &f->st), 0);
	assert_non_null(f->st);
}

static void
reopen_store(struct fixture *f)
{
	store_close(f->st);
	f->st = NULL;
	open_store(f);
}

/* A valid active key with every optional field absent. */
static void
key_init(struct store_key *k, const char *id)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->id, sizeof(k->id), "%s", id);
	k->agent = (char *)AGENT;
	k->owner = (char *)"team-security";
	k->purpose = (char *)"jwt";
	k->alg = (char *)"ed25519";
	k->state = (char *)"active";
	k->created_at = T0;
	k->spki = spki;
	k->spki_len = sizeof(spki);
	k->kid = (char *)"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
	k->token = (char *)"pkcs11:token=custody";
}

static void
assert_str_or_null(const char *want, const char *got)
{
	if (want == NULL || got == NULL)
		assert_ptr_equal(want, got);
	else
		assert_string_equal(want, got);
}

static void
assert_key_equal(const struct store_key *want, const struct store_key *got)
{
	assert_string_equal(want->id, got->id);
	assert_str_or_null(want->agent, got->agent);
	assert_str_or_null(want->owner, got->owner);
	assert_str_or_null(want->purpose, got->purpose);
	assert_str_or_null(want->alg, got->alg);
	assert_str_or_null(want->state, got->state);
	assert_str_or_null(want->task, got->task);
	assert_true(want->created_at == got->created_at);
	assert_true(want->retired_at == got->retired_at);
	assert_true(want->destroyed_at == got->destroyed_at);
	assert_true(want->max_age == got->max_age);
	assert_true(want->ttl == got->ttl);
	assert_str_or_null(want->predecessor, got->predecessor);
	assert_str_or_null(want->successor, got->successor);
	assert_int_equal(want->spki_len, got->spki_len);
	assert_memory_equal(want->spki, got->spki, want->spki_len);
	assert_str_or_null(want->kid, got->kid);
	assert_str_or_null(want->token, got->token);
	assert_str_or_null(want->destroy_reason, got->destroy_reason);
}

static void
assert_key_count(struct fixture *f, const char *state, size_t want)
{
	struct store_key **keys = NULL;
	size_t n = 0;

	assert_int_equal(store_key_list(f->st, state, &keys, &n), 0);
	assert_int_equal(n, want);
	store_key_list_free(keys, n);
}

static void
assert_key_state(struct fixture *f, const char *id, const char *state)
{
	struct store_key *k = NULL;

	assert_int_equal(store_key_get(f->st, id, &k), 0);
	assert_string_equal(k->state, state);
	store_key_free(k);
}

static sqlite3 *
raw_open(struct fixture *f)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(f->path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
	    SQLITE_OK);
	return db;
}

/* The first column of the first row of sql, as text, into buf. */
static void
raw_query(sqlite3 *db, const char *sql, char *buf, size_t bufsz)
{
	sqlite3_stmt *s = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	snprintf(buf, bufsz, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
}

static void
assert_mode_0600(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
}

static void
test_open_creates_0600_wal(void **state)
{
	struct fixture *f = *state;
	char path[160], buf[32];
	sqlite3 *db;
	mode_t old;

	/* With no umask to help, the store must set the modes itself. */
	old = umask(0);
	open_store(f);
	umask(old);
	assert_int_equal(store_schema_version(f->st), SCHEMA_NOW);
	assert_mode_0600(f->path);
	/* Both exist while the store is open; SQLite copies the db's mode. */
	snprintf(path, sizeof(path), "%s-wal", f->path);
	assert_mode_0600(path);
	snprintf(path, sizeof(path), "%s-shm", f->path);
	assert_mode_0600(path);

	db = raw_open(f);
	raw_query(db, "PRAGMA journal_mode", buf, sizeof(buf));
	assert_string_equal(buf, "wal");
	raw_query(db, "PRAGMA user_version", buf, sizeof(buf));
	assert_string_equal(buf, SCHEMA_NOW_STR);
	raw_query(db,
	    "SELECT count(*) FROM sqlite_schema WHERE name IN "
	    "('keys', 'keys_one_active', 'keys_state')",
	    buf, sizeof(buf));
	assert_string_equal(buf, "3");
	sqlite3_close(db);
}

static void
test_open_missing_dir(void **state)
{
	struct fixture *f = *state;
	struct store *st = (struct store *)&st; /* must stay untouched */
	char path[160];

	snprintf(path, sizeof(path), "%s/nonexistent/custody.db", f->dir);
	assert_int_equal(store_open(path, &st), CUSTODY_E_IO);
	assert_ptr_equal(st, (struct store *)&st);
	assert_logged("nonexistent");
}

static void
test_open_refuses_symlink(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char target[160];
	struct stat sb;
	int fd;

	snprintf(target, sizeof(target), "%s/target", f->dir);
	assert_true((fd = open(target, O_CREAT | O_WRONLY, 0600)) != -1);
	close(fd);
	assert_int_equal(symlink(target, f->path), 0);
	assert_int_equal(store_open(f->path, &st), CUSTODY_E_STORE);
	assert_null(st);
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_size, 0);
}

static void
test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	struct store_key k, *got = NULL;

	open_store(f);
	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	reopen_store(f);
	assert_int_equal(store_schema_version(f->st), SCHEMA_NOW);
	assert_int_equal(store_key_get(f->st, ID_A, &got), 0);
	assert_key_equal(&k, got);
	store_key_free(got);
}

static void
test_run_marker(void **state)
{
	struct fixture *f = *state;
	struct store_run rm = {4242, 1700000000}, got;

	open_store(f);
	assert_int_equal(store_run_get(f->st, &got), CUSTODY_E_NOT_FOUND);
	assert_int_equal(store_run_end(f->st), CUSTODY_E_NOT_FOUND);
	assert_int_equal(store_run_begin(f->st, &rm), 0);
	/* a crash leaves it: it is there after a reopen */
	reopen_store(f);
	assert_int_equal(store_run_get(f->st, &got), 0);
	assert_int_equal(got.pid, 4242);
	assert_int_equal(got.started_at, 1700000000);
	/* the next start replaces it; there is only ever one */
	rm.pid = 7;
	assert_int_equal(store_run_begin(f->st, &rm), 0);
	assert_int_equal(store_run_get(f->st, &got), 0);
	assert_int_equal(got.pid, 7);
	assert_int_equal(store_run_end(f->st), 0);
	assert_int_equal(store_run_get(f->st, &got), CUSTODY_E_NOT_FOUND);
	rm.pid = 0;
	assert_int_equal(store_run_begin(f->st, &rm), CUSTODY_E_INVALID_ARG);
}

static void
test_roundtrip_every_field(void **state)
{
	struct fixture *f = *state;
	struct store_key a, b, *got = NULL;
	char buf[64];
	sqlite3 *db;

	open_store(f);
	/* Every optional field absent: NULL task, 0 durations. */
	key_init(&a, ID_A);
	assert_int_equal(store_key_insert(f->st, &a), 0);
	assert_int_equal(store_key_get(f->st, ID_A, &got), 0);
	assert_key_equal(&a, got);
	assert_null(got->task);
	assert_true(got->max_age == 0 && got->ttl == 0);
	store_key_free(got);
	got = NULL;

	/* Every optional field present. */
	key_init(&b, ID_B);
	b.agent = (char *)"spiffe://example.org/agent/coder";
	b.owner = (char *)"alice@example.org";
	b.purpose = (char *)"x509-ca";
	b.alg = (char *)"rsa-pss-3072";
	b.state = (char *)"destroyed";
	b.task = (char *)"task-42";
	b.created_at = T0 + 1;
	b.retired_at = T0 + 100;
	b.destroyed_at = T0 + 200;
	b.max_age = 86400;
	b.ttl = 3600;
	b.predecessor = (char *)ID_A;
	b.successor = (char *)ID_A;
	b.spki_len = 20;
	b.kid = (char *)"kid-b";
	b.token = (char *)"pkcs11:token=other;serial=42";
	b.destroy_reason = (char *)"key.compromised";
	assert_int_equal(store_key_insert(f->st, &b), 0);
	assert_int_equal(store_key_get(f->st, ID_B, &got), 0);
	assert_key_equal(&b, got);
	store_key_free(got);

	/* NULLs in SQL for the record's zeros; the CKA_ID the id encodes. */
	db = raw_open(f);
	raw_query(db,
	    "SELECT quote(max_age) || quote(ttl) || quote(task) || "
	    "quote(retired_at) FROM keys WHERE id = '" ID_A "'",
	    buf, sizeof(buf));
	assert_string_equal(buf, "NULLNULLNULLNULL");
	raw_query(db, "SELECT hex(cka_id) FROM keys WHERE id = '" ID_A "'", buf,
	    sizeof(buf));
	assert_string_equal(buf, "0123456789ABCDEF");
	sqlite3_close(db);
}

static void
test_duplicate_id(void **state)
{
	struct fixture *f = *state;
	struct store_key k;

	open_store(f);
	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	/* Only the id conflicts: another agent. */
	k.agent = (char *)"spiffe://example.org/agent/other";
	assert_int_equal(store_key_insert(f->st, &k), CUSTODY_E_EXISTS);
	assert_logged("key id " ID_A " is taken");
	assert_key_count(f, NULL, 1);
}

static void
test_one_active_per_agent_purpose_task(void **state)
{
	struct fixture *f = *state;
	struct store_key k;

	open_store(f);
	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);

	/* Same agent, purpose and (no) task. */
	key_init(&k, ID_B);
	assert_int_equal(store_key_insert(f->st, &k), CUSTODY_E_EXISTS);
	assert_logged("an active key (" ID_A ") already exists for agent " AGENT
		      ", purpose jwt, task (none)");

	/* A task is a different key from the task-less one... */
	k.task = (char *)"t1";
	assert_int_equal(store_key_insert(f->st, &k), 0);
	/* ...but only one per task. */
	key_init(&k, ID_C);
	k.task = (char *)"t1";
	assert_int_equal(store_key_insert(f->st, &k), CUSTODY_E_EXISTS);
	assert_logged("task t1");
	/* Another purpose, or a retired key, does not conflict. */
	k.purpose = (char *)"checkpoint";
	assert_int_equal(store_key_insert(f->st, &k), 0);
	key_init(&k, ID_D);
	k.state = (char *)"retired";
	k.retired_at = T0 + 10;
	assert_int_equal(store_key_insert(f->st, &k), 0);

	/* Once the active one is retired, a new one may be active. */
	assert_int_equal(store_key_set_state(
			     f->st, ID_A, "active", "retired", T0 + 20, NULL),
	    0);
	key_init(&k, ID_E);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	assert_key_count(f, "active", 3);
	assert_key_count(f, "retired", 2);
}

static void
test_null_task_distinct(void **state)
{
	struct fixture *f = *state;
	struct store_key k, *got = NULL;

	open_store(f);
	key_init(&k, ID_A);
	k.task = (char *)"t";
	assert_int_equal(store_key_insert(f->st, &k), 0);
	key_init(&k, ID_B);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	assert_int_equal(store_key_get(f->st, ID_A, &got), 0);
	assert_string_equal(got->task, "t");
	store_key_free(got);
	assert_int_equal(store_key_get(f->st, ID_B, &got), 0);
	assert_null(got->task);
	store_key_free(got);
	/* An empty task would collide with "no task": refused. */
	key_init(&k, ID_C);
	k.task = (char *)"";
	assert_int_equal(store_key_insert(f->st, &k), CUSTODY_E_INVALID_ARG);
	assert_logged("task");
}

static void
expect_invalid(struct fixture *f, const struct store_key *k, const char *field)
{
	last_error[0] = '\0';
	assert_int_equal(store_key_insert(f->st, k), CUSTODY_E_INVALID_ARG);
	assert_logged(field);
}

static void
test_invalid_fields(void **state)
{
	struct fixture *f = *state;
	static const char *const bad_ids[] = {
	    "k_0123456789abcde", /* 15 digits */
	    "K_0123456789abcdef",
	    "k-0123456789abcdef",
	    "k_0123456789ABCDEF", /* the schema's GLOB is lower */
	    "k_0123456789abcdeg",
	    "",
	};
	struct store_key k;
	size_t i;

	open_store(f);
	for (i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		key_init(&k, bad_ids[i]);
		expect_invalid(f, &k, ": id is not");
	}
	/* 19 characters and no NUL in the array. */
	key_init(&k, ID_A);
	memset(k.id, 'a', sizeof(k.id));
	expect_invalid(f, &k, ": id is not");

	key_init(&k, ID_A);
	k.purpose = (char *)"signing";
	expect_invalid(f, &k, "purpose");
	key_init(&k, ID_A);
	k.purpose = NULL;
	expect_invalid(f, &k, "purpose");
	key_init(&k, ID_A);
	k.alg = (char *)"rsa-2048";
	expect_invalid(f, &k, "alg");
	key_init(&k, ID_A);
	k.state = (char *)"revoked";
	expect_invalid(f, &k, "state");
	key_init(&k, ID_A);
	k.agent = (char *)"";
	expect_invalid(f, &k, "agent");
	key_init(&k, ID_A);
	k.agent = NULL;
	expect_invalid(f, &k, "agent");
	key_init(&k, ID_A);
	k.owner = (char *)"";
	expect_invalid(f, &k, "owner");
	key_init(&k, ID_A);
	k.ttl = -1;
	expect_invalid(f, &k, "ttl is negative");
	key_init(&k, ID_A);
	k.max_age = -5;
	expect_invalid(f, &k, "max_age is negative");
	key_init(&k, ID_A);
	k.created_at = 0;
	expect_invalid(f, &k, "created_at");
	key_init(&k, ID_A);
	k.spki = NULL;
	expect_invalid(f, &k, "spki");
	key_init(&k, ID_A);
	k.spki_len = 0;
	expect_invalid(f, &k, "spki");
	key_init(&k, ID_A);
	k.spki_len = STORE_SPKI_MAX + 1;
	expect_invalid(f, &k, "spki");
	key_init(&k, ID_A);
	k.kid = (char *)"";
	expect_invalid(f, &k, "kid");
	key_init(&k, ID_A);
	k.token = NULL;
	expect_invalid(f, &k, "token");
	key_init(&k, ID_A);
	k.predecessor = (char *)"k_1";
	expect_invalid(f, &k, "predecessor is not a key id");
	key_init(&k, ID_A);
	k.successor = (char *)ID_A;
	expect_invalid(f, &k, "successor is the key itself");
	/* Timestamps and reason must match the state. */
	key_init(&k, ID_A);
	k.retired_at = T0;
	expect_invalid(f, &k, "retired_at is set on an active key");
	key_init(&k, ID_A);
	k.destroy_reason = (char *)"why";
	expect_invalid(f, &k, "destroy_reason");
	key_init(&k, ID_A);
	k.state = (char *)"retired";
	expect_invalid(f, &k, "retired_at is missing");
	key_init(&k, ID_A);
	k.state = (char *)"destroyed";
	k.destroyed_at = T0;
	expect_invalid(f, &k, "destroy_reason is missing");

	/* A predecessor that names no key: the foreign key refuses it. */
	key_init(&k, ID_A);
	k.predecessor = (char *)ID_B;
	expect_invalid(f, &k, "names no key");

	assert_key_count(f, NULL, 0);
}

static void
test_set_state(void **state)
{
	struct fixture *f = *state;
	struct store_key k, *got = NULL;

	open_store(f);
	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	key_init(&k, ID_B);
	k.task = (char *)"t";
	assert_int_equal(store_key_insert(f->st, &k), 0);

	/* Not allowed whatever the key's state. */
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "active", "active", T0, NULL),
	    CUSTODY_E_STATE);
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "retired", "active", T0, NULL),
	    CUSTODY_E_STATE);
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "destroyed", "retired", T0, "x"),
	    CUSTODY_E_STATE);
	/* Bad arguments. */
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "active", "gone", T0, NULL),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "live", "retired", T0, NULL),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "active", "retired", 0, NULL),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "active", "destroyed", T0, NULL),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "active", "destroyed", T0, ""),
	    CUSTODY_E_INVALID_ARG);
	/* Unknown key. */
	assert_int_equal(
	    store_key_set_state(f->st, ID_C, "active", "retired", T0, NULL),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_key_state(f, ID_A, "active");

	/* active -> retired; the reason of a retirement is not recorded. */
	assert_int_equal(store_key_set_state(f->st, ID_A, "active", "retired",
			     T0 + 10, "rotated"),
	    0);
	assert_int_equal(store_key_get(f->st, ID_A, &got), 0);
	assert_string_equal(got->state, "retired");
	assert_true(got->retired_at == T0 + 10);
	assert_true(got->destroyed_at == 0);
	assert_null(got->destroy_reason);
	store_key_free(got);
	got = NULL;
	/* The update is conditional on the state the caller saw. */
	assert_int_equal(store_key_set_state(
			     f->st, ID_A, "active", "retired", T0 + 11, NULL),
	    CUSTODY_E_STATE);
	assert_logged("key " ID_A " is retired, not active");
	assert_int_equal(store_key_set_state(f->st, ID_A, "active", "destroyed",
			     T0 + 11, "ttl"),
	    CUSTODY_E_STATE);

	/* retired -> destroyed keeps retired_at. */
	assert_int_equal(store_key_set_state(f->st, ID_A, "retired",
			     "destroyed", T0 + 20, "ttl"),
	    0);
	assert_int_equal(store_key_get(f->st, ID_A, &got), 0);
	assert_string_equal(got->state, "destroyed");
	assert_true(got->retired_at == T0 + 10);
	assert_true(got->destroyed_at == T0 + 20);
	assert_string_equal(got->destroy_reason, "ttl");
	store_key_free(got);
	got = NULL;
	assert_int_equal(store_key_set_state(f->st, ID_A, "retired",
			     "destroyed", T0 + 21, "again"),
	    CUSTODY_E_STATE);

	/* active -> destroyed directly. */
	assert_int_equal(store_key_set_state(f->st, ID_B, "active", "destroyed",
			     T0 + 30, "task.completed"),
	    0);
	assert_int_equal(store_key_get(f->st, ID_B, &got), 0);
	assert_string_equal(got->state, "destroyed");
	assert_true(got->retired_at == 0);
	assert_true(got->destroyed_at == T0 + 30);
	assert_string_equal(got->destroy_reason, "task.completed");
	store_key_free(got);
}

static void
test_set_successor(void **state)
{
	struct fixture *f = *state;
	struct store_key k, *got = NULL;

	open_store(f);
	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	/* A rotation: the new key names its predecessor, then the old one
	 * its successor, and the old one retires, all in one transaction. */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "active", "retired", T0 + 1, NULL),
	    0);
	key_init(&k, ID_B);
	k.predecessor = (char *)ID_A;
	assert_int_equal(store_key_insert(f->st, &k), 0);
	assert_int_equal(store_key_set_successor(f->st, ID_A, ID_B), 0);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_key_get(f->st, ID_A, &got), 0);
	assert_string_equal(got->successor, ID_B);
	store_key_free(got);

	/* Idempotent; write-once. */
	assert_int_equal(store_key_set_successor(f->st, ID_A, ID_B), 0);
	key_init(&k, ID_C);
	k.task = (char *)"t";
	assert_int_equal(store_key_insert(f->st, &k), 0);
	assert_int_equal(
	    store_key_set_successor(f->st, ID_A, ID_C), CUSTODY_E_STATE);
	/* Errors. */
	assert_int_equal(store_key_set_successor(f->st, ID_D, ID_B),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(
	    store_key_set_successor(f->st, ID_B, ID_D), CUSTODY_E_INVALID_ARG);
	assert_logged("names no key");
	assert_int_equal(
	    store_key_set_successor(f->st, ID_B, ID_B), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    store_key_set_successor(f->st, ID_B, "k_x"), CUSTODY_E_INVALID_ARG);
}

static void
test_list(void **state)
{
	struct fixture *f = *state;
	struct store_key k, **keys = (struct store_key **)&keys;
	size_t n = 42;

	open_store(f);
	assert_int_equal(store_key_list(f->st, NULL, &keys, &n), 0);
	assert_null(keys);
	assert_int_equal(n, 0);

	/* Inserted out of order; C and D share created_at: id decides. */
	key_init(&k, ID_A);
	k.created_at = T0 + 300;
	assert_int_equal(store_key_insert(f->st, &k), 0);
	key_init(&k, ID_D);
	k.created_at = T0 + 100;
	k.task = (char *)"d";
	assert_int_equal(store_key_insert(f->st, &k), 0);
	key_init(&k, ID_C);
	k.created_at = T0 + 100;
	k.state = (char *)"retired";
	k.retired_at = T0 + 200;
	assert_int_equal(store_key_insert(f->st, &k), 0);
	key_init(&k, ID_B);
	k.created_at = T0 + 50;
	k.state = (char *)"destroyed";
	k.destroyed_at = T0 + 60;
	k.destroy_reason = (char *)"key.compromised";
	assert_int_equal(store_key_insert(f->st, &k), 0);

	assert_int_equal(store_key_list(f->st, NULL, &keys, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(keys[0]->id, ID_B);
	assert_string_equal(keys[1]->id, ID_C);
	assert_string_equal(keys[2]->id, ID_D);
	assert_string_equal(keys[3]->id, ID_A);
	assert_string_equal(keys[2]->task, "d");
	assert_memory_equal(keys[3]->spki, spki, sizeof(spki));
	store_key_list_free(keys, n);

	assert_int_equal(store_key_list(f->st, "active", &keys, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0]->id, ID_D);
	assert_string_equal(keys[1]->id, ID_A);
	store_key_list_free(keys, n);
	assert_int_equal(store_key_list(f->st, "retired", &keys, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0]->id, ID_C);
	store_key_list_free(keys, n);
	assert_int_equal(store_key_list(f->st, "destroyed", &keys, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0]->id, ID_B);
	assert_string_equal(keys[0]->destroy_reason, "key.compromised");
	store_key_list_free(keys, n);

	keys = NULL;
	n = 42;
	assert_int_equal(
	    store_key_list(f->st, "gone", &keys, &n), CUSTODY_E_INVALID_ARG);
	assert_null(keys);
	assert_int_equal(n, 42);
}

static void
test_list_bounded(void **state)
{
	struct fixture *f = *state;
	struct store_key k, **keys = NULL;
	char task[32];
	size_t i, n = 0;

	open_store(f);
	assert_int_equal(store_begin(f->st), 0);
	for (i = 0; i < STORE_KEY_LIST_MAX; i++) {
		key_init(&k, ID_A);
		snprintf(k.id, sizeof(k.id), "k_%016zx", i + 1);
		snprintf(task, sizeof(task), "t%zu", i);
		k.task = task;
		assert_int_equal(store_key_insert(f->st, &k), 0);
	}
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_key_list(f->st, NULL, &keys, &n), 0);
	assert_int_equal(n, STORE_KEY_LIST_MAX);
	store_key_list_free(keys, n);

	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	keys = NULL;
	n = 0;
	assert_int_equal(
	    store_key_list(f->st, NULL, &keys, &n), CUSTODY_E_TOO_LARGE);
	assert_null(keys);
	assert_int_equal(
	    store_key_list(f->st, "active", &keys, &n), CUSTODY_E_TOO_LARGE);
	assert_int_equal(store_key_list(f->st, "retired", &keys, &n), 0);
	assert_int_equal(n, 0);
}

static void
test_schema_too_new(void **state)
{
	struct fixture *f = *state;
	struct store *st = (struct store *)&st; /* must stay untouched */
	sqlite3 *db;

	db = raw_open(f);
	assert_int_equal(
	    sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(f->path, &st), CUSTODY_E_SCHEMA);
	assert_ptr_equal(st, (struct store *)&st);
	assert_logged(
	    "version 999 is newer than this program's " SCHEMA_NOW_STR);
}

/* A database of version 1 (the key registry only) is brought up to date
 * and keeps its keys. */
/* Checkpoint sizes only grow: the schema refuses anything else. */
static void
test_checkpoints_only_grow(void **state)
{
	struct fixture *f = *state;
	uint8_t root[32] = {1}, got[32];
	char *note = NULL;
	size_t len = 0;
	uint64_t size = 0;

	open_store(f);
	assert_int_equal(store_checkpoint_last(f->st, &size, got, &note, &len),
	    CUSTODY_E_NOT_FOUND);
	assert_int_equal(
	    store_checkpoint_put(f->st, 5, root, "n5", 2, 1000), 0);
	assert_int_equal(store_checkpoint_put(f->st, 3, root, "n3", 2, 1000),
	    CUSTODY_E_STATE);
	assert_int_equal(store_checkpoint_put(f->st, 5, root, "n5", 2, 1000),
	    CUSTODY_E_STATE);
	assert_int_equal(
	    store_checkpoint_put(f->st, 9, root, "n9", 2, 1000), 0);
	assert_int_equal(
	    store_checkpoint_last(f->st, &size, got, &note, &len), 0);
	assert_int_equal(size, 9);
	assert_string_equal(note, "n9");
	free(note);
	/* walked in order of size */
	assert_int_equal(
	    store_checkpoint_next(f->st, 0, &size, got, &note, &len), 0);
	assert_int_equal(size, 5);
	assert_string_equal(note, "n5");
	free(note);
	assert_int_equal(
	    store_checkpoint_next(f->st, 5, &size, got, &note, &len), 0);
	assert_int_equal(size, 9);
	free(note);
	assert_int_equal(
	    store_checkpoint_next(f->st, 9, &size, got, &note, &len),
	    CUSTODY_E_NOT_FOUND);
}

/* The leaf count reads two rows, not the log, and still sees a tail cut
 * from the leaves alone or a last leaf that is not the tree's. */
static void
test_leaf_count_checks(void **state)
{
	struct fixture *f = *state;
	uint8_t h[32];
	uint64_t i, n = 0;
	sqlite3 *db;

	open_store(f);
	assert_int_equal(store_begin(f->st), 0);
	for (i = 0; i < 4; i++) {
		memset(h, (int)i + 1, sizeof(h));
		assert_int_equal(
		    store_leaf_put(f->st, i, (const uint8_t *)"{}", 2, h), 0);
		assert_int_equal(store_node_put(f->st, 0, i, h), 0);
	}
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 4);
	store_close(f->st);
	f->st = NULL;
	db = raw_open(f);
	assert_int_equal(
	    sqlite3_exec(
		db, "DELETE FROM audit_leaves WHERE seq = 3", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	open_store(f);
	assert_int_equal(store_leaf_count(f->st, &n), CUSTODY_E_STORE);
	store_close(f->st);
	f->st = NULL;
	db = raw_open(f);
	assert_int_equal(sqlite3_exec(db,
			     "DELETE FROM merkle_nodes WHERE idx = 3;"
			     "UPDATE merkle_nodes SET hash = zeroblob(32) "
			     "WHERE idx = 2",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	open_store(f);
	assert_int_equal(store_leaf_count(f->st, &n), CUSTODY_E_STORE);
	store_close(f->st);
	f->st = NULL;
	db = raw_open(f);
	assert_int_equal(sqlite3_exec(db,
			     "UPDATE merkle_nodes SET hash = (SELECT hash FROM "
			     "audit_leaves WHERE seq = 2) WHERE idx = 2",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	open_store(f);
	assert_int_equal(store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 3);
}

/* Does a thread of this process have the name comm? */
static int
thread_named(const char *comm)
{
	char path[300], buf[32];
	struct dirent *de;
	DIR *d;
	FILE *fp;
	int found = 0;

	assert_non_null(d = opendir("/proc/self/task"));
	while (!found && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(
		    path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		if ((fp = fopen(path, "r")) == NULL)
			continue;
		if (fgets(buf, sizeof(buf), fp) != NULL) {
			buf[strcspn(buf, "\n")] = '\0';
			found = strcmp(buf, comm) == 0;
		}
		fclose(fp);
	}
	closedir(d);
	return found;
}

static off_t
file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/*
 * store_wal_offload: a thread checkpoints the WAL (the database file grows
 * while the writer's commits go on), the WAL stays bounded, and
 * store_close stops the thread.
 */
static void
test_wal_offload(void **state)
{
	struct fixture *f = *state;
	static uint8_t blob[4000];
	char wal[sizeof(f->path) + 8];
	uint8_t h[32];
	uint64_t seq = 0, n = 0;
	off_t dbsize = 0;
	int i, j, k;

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	open_store(f);
	assert_false(thread_named("custody-wal"));
	assert_int_equal(store_wal_offload(f->st, f->path), 0);
	assert_true(thread_named("custody-wal"));
	assert_int_equal(
	    store_wal_offload(f->st, f->path), CUSTODY_E_INVALID_ARG);
	/*
	 * Three rounds of 150 commits of 10 leaves of 4000 bytes: each adds
	 * about 6 MiB to the database and writes about 9 MiB of WAL frames,
	 * past the 1000-page threshold, so the thread checkpoints during
	 * each round (up to 10 s allowed). What is left in the WAL below the
	 * threshold at the end of a round stays there, as with SQLite's own
	 * auto-checkpoint, hence the margins.
	 */
	memset(blob, 'x', sizeof(blob));
	for (k = 1; k <= 3; k++) {
		for (i = 0; i < 150; i++) {
			assert_int_equal(store_begin(f->st), 0);
			for (j = 0; j < 10; j++, seq++) {
				memset(h, (int)(seq & 0xff), sizeof(h));
				assert_int_equal(store_leaf_put(f->st, seq,
						     blob, sizeof(blob), h),
				    0);
				assert_int_equal(
				    store_node_put(f->st, 0, seq, h), 0);
			}
			assert_int_equal(store_commit(f->st), 0);
		}
		for (i = 0; i < 1000; i++) {
			if ((dbsize = file_size(f->path)) >=
			    (k - 1) * (6 << 20) + (2 << 20))
				break;
			usleep(10000);
		}
		assert_true(dbsize >= (k - 1) * (6 << 20) + (2 << 20));
	}
	/* the WAL was started over at 4000 pages (16.5 MB), not grown to the
	 * 27 MiB written */
	assert_true(file_size(wal) < 18 << 20);
	assert_int_equal(store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, seq);
	store_close(f->st);
	f->st = NULL;
	assert_false(thread_named("custody-wal"));
	open_store(f);
	assert_int_equal(store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, seq);
}

/* CA certificates: the last installed is the key's; an unknown key or an
 * empty certificate is refused. */
static void
test_ca_certs(void **state)
{
	struct fixture *f = *state;
	struct store_key k;
	uint8_t *cert = NULL, *chain = NULL;
	size_t certlen = 0, chainlen = 0;

	open_store(f);
	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	assert_int_equal(
	    store_ca_get(f->st, ID_A, &cert, &certlen, &chain, &chainlen),
	    CUSTODY_E_NOT_FOUND);
	assert_int_equal(
	    store_ca_put(f->st, ID_A, (const uint8_t *)"one", 3, NULL, 0, 1000),
	    0);
	assert_int_equal(
	    store_ca_get(f->st, ID_A, &cert, &certlen, &chain, &chainlen), 0);
	assert_int_equal(certlen, 3);
	assert_memory_equal(cert, "one", 3);
	assert_int_equal(chainlen, 0);
	free(cert);
	free(chain);
	assert_int_equal(store_ca_put(f->st, ID_A, (const uint8_t *)"two", 3,
			     (const uint8_t *)"chain", 5, 2000),
	    0);
	assert_int_equal(
	    store_ca_get(f->st, ID_A, &cert, &certlen, &chain, &chainlen), 0);
	assert_memory_equal(cert, "two", 3);
	assert_int_equal(chainlen, 5);
	assert_memory_equal(chain, "chain", 5);
	free(cert);
	free(chain);
	/* foreign key: no such key */
	assert_int_equal(
	    store_ca_put(f->st, ID_B, (const uint8_t *)"x", 1, NULL, 0, 1000),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    store_ca_put(f->st, ID_A, (const uint8_t *)"x", 0, NULL, 0, 1000),
	    CUSTODY_E_INVALID_ARG);
}

static void
test_migration_from_v1(void **state)
{
	struct fixture *f = *state;
	struct store_key k, *got = NULL;
	uint64_t n = 99;
	char buf[32];
	sqlite3 *db;

	open_store(f);
	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	store_close(f->st);
	f->st = NULL;
	/* take it back to what version 1 wrote */
	db = raw_open(f);
	assert_int_equal(sqlite3_exec(db,
			     "DROP TABLE attestations;"
			     "DROP TABLE lifecycle_events;"
			     "DROP TABLE lifecycle_jobs;"
			     "ALTER TABLE keys DROP COLUMN last_exp;"
			     "DROP TABLE ca_certs;"
			     "DROP TABLE service_run; DROP TABLE checkpoints;"
			     "DROP TABLE audit_leaves;"
			     "DROP TABLE merkle_nodes;"
			     "PRAGMA user_version = 1",
			     NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	open_store(f);
	assert_int_equal(store_schema_version(f->st), SCHEMA_NOW);
	assert_int_equal(store_key_get(f->st, ID_A, &got), 0);
	assert_key_equal(&k, got);
	store_key_free(got);
	assert_int_equal(store_leaf_count(f->st, &n), 0);
	assert_int_equal(n, 0);
	db = raw_open(f);
	raw_query(db, "PRAGMA user_version", buf, sizeof(buf));
	assert_string_equal(buf, SCHEMA_NOW_STR);
	sqlite3_close(db);
}

static void
test_transactions(void **state)
{
	struct fixture *f = *state;
	struct store_key k, *got = (struct store_key *)&got;

	open_store(f);
	/* Begin + insert + rollback leaves nothing. */
	assert_int_equal(store_begin(f->st), 0);
	key_init(&k, ID_A);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	assert_int_equal(store_rollback(f->st), 0);
	assert_int_equal(
	    store_key_get(f->st, ID_A, &got), CUSTODY_E_KEY_NOT_FOUND);

	/* No nesting; commit needs a transaction; rollback never fails. */
	assert_int_equal(store_commit(f->st), CUSTODY_E_INVALID_ARG);
	assert_int_equal(store_rollback(f->st), 0);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_begin(f->st), CUSTODY_E_INVALID_ARG);

	/* A failed call inside a transaction undoes only itself. */
	assert_int_equal(store_key_insert(f->st, &k), 0);
	assert_int_equal(store_key_insert(f->st, &k), CUSTODY_E_EXISTS);
	key_init(&k, ID_B);
	k.task = (char *)"t";
	assert_int_equal(store_key_insert(f->st, &k), 0);
	assert_int_equal(
	    store_key_set_state(f->st, ID_A, "active", "retired", T0 + 5, NULL),
	    0);
	assert_int_equal(store_commit(f->st), 0);

	/* Committed: durable across a reopen. */
	reopen_store(f);
	assert_key_state(f, ID_A, "retired");
	assert_key_state(f, ID_B, "active");

	/* Closing with a transaction open rolls it back. */
	assert_int_equal(store_begin(f->st), 0);
	key_init(&k, ID_C);
	assert_int_equal(store_key_insert(f->st, &k), 0);
	reopen_store(f);
	assert_int_equal(
	    store_key_get(f->st, ID_C, &got), CUSTODY_E_KEY_NOT_FOUND);
	assert_key_count(f, NULL, 2);
}

static void
test_get_unknown(void **state)
{
	struct fixture *f = *state;
	struct store_key *got = (struct store_key *)&got;

	open_store(f);
	assert_int_equal(
	    store_key_get(f->st, ID_A, &got), CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(
	    store_key_get(f->st, "not an id", &got), CUSTODY_E_KEY_NOT_FOUND);
	assert_ptr_equal(got, (struct store_key *)&got);
}

/* What the store refuses, the schema refuses too. */
static void
test_schema_constraints(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
	    /* upper-case id */
	    "INSERT INTO keys (id, cka_id, agent, owner, purpose, alg, "
	    "state, created_at, spki, kid, token) VALUES "
	    "('k_0123456789ABCDEF', x'0123456789abcdef', 'a', 'o', 'jwt', "
	    "'ed25519', 'active', 1, x'00', 'k', 't')",
	    /* cka_id that is not the id's */
	    "INSERT INTO keys (id, cka_id, agent, owner, purpose, alg, "
	    "state, created_at, spki, kid, token) VALUES "
	    "('k_0123456789abcdee', x'0123456789abcdef', 'a', 'o', 'jwt', "
	    "'ed25519', 'active', 1, x'00', 'k', 't')",
	    /* a second active key for (a, jwt, no task) */
	    "INSERT INTO keys (id, cka_id, agent, owner, purpose, alg, "
	    "state, created_at, spki, kid, token) VALUES "
	    "('k_00000000000000b0', x'00000000000000b0', 'a', 'o', 'jwt', "
	    "'ed25519', 'active', 1, x'00', 'k', 't')",
	    /* unknown purpose */
	    "INSERT INTO keys (id, cka_id, agent, owner, purpose, alg, "
	    "state, created_at, spki, kid, token) VALUES "
	    "('k_00000000000000b1', x'00000000000000b1', 'a', 'o', 'sign', "
	    "'ed25519', 'active', 1, x'00', 'k', 't')",
	    /* text where an integer belongs (STRICT) */
	    "INSERT INTO keys (id, cka_id, agent, owner, purpose, alg, "
	    "state, created_at, spki, kid, token) VALUES "
	    "('k_00000000000000b2', x'00000000000000b2', 'a', 'o', 'jwt', "
	    "'ed25519', 'active', 'soon', x'00', 'k', 't')",
	    /* destroyed without a reason */
	    "UPDATE keys SET state = 'destroyed', destroyed_at = 5",
	};
	sqlite3 *db;
	size_t i;
	int rc;

	open_store(f);
	store_close(f->st);
	f->st = NULL;
	db = raw_open(f);
	assert_int_equal(
	    sqlite3_exec(db,
		"INSERT INTO keys (id, cka_id, "
		"agent, owner, purpose, alg, state, created_at, spki, kid, "
		"token) "
		"VALUES ('k_00000000000000a0', x'00000000000000a0', 'a', 'o', "
		"'jwt', 'ed25519', 'active', 1, x'00', 'k', 't')",
		NULL, NULL, NULL),
	    SQLITE_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = sqlite3_exec(db, bad[i], NULL, NULL, NULL);
		if (rc != SQLITE_CONSTRAINT)
			fail_msg("statement %zu: %s", i, sqlite3_errmsg(db));
	}
	/* Same agent and purpose with a task: a different key. */
	assert_int_equal(
	    sqlite3_exec(db,
		"INSERT INTO keys (id, cka_id, "
		"agent, owner, purpose, alg, state, task, created_at, spki, "
		"kid, "
		"token) VALUES ('k_00000000000000a1', x'00000000000000a1', "
		"'a', "
		"'o', 'jwt', 'ed25519', 'active', 't', 1, x'00', 'k', 't')",
		NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

/* A record written around the CHECKs is refused on the way out. */
static void
test_corrupt_record(void **state)
{
	struct fixture *f = *state;
	struct store_key *got = NULL;
	sqlite3 *db;

	open_store(f);
	db = raw_open(f);
	assert_int_equal(
	    sqlite3_exec(db,
		"PRAGMA ignore_check_constraints = 1;"
		"INSERT INTO keys (id, cka_id, agent, owner, purpose, alg, "
		"state, "
		"created_at, spki, kid, token) VALUES ('k_00000000000000a0', "
		"x'00000000000000a0', 'a', 'o', 'sign', 'ed25519', 'active', "
		"1, "
		"x'00', 'k', 't')",
		NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(
	    store_key_get(f->st, "k_00000000000000a0", &got), CUSTODY_E_STORE);
	assert_null(got);
	assert_logged("invalid");
}

static void
test_null_safe(void **state)
{
	(void)state;
	store_close(NULL);
	store_key_free(NULL);
	store_key_list_free(NULL, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_open_creates_0600_wal, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_open_missing_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_open_refuses_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_reopen_keeps_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_roundtrip_every_field, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_one_active_per_agent_purpose_task, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_null_task_distinct, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_invalid_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_set_successor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_schema_too_new, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_migration_from_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_checkpoints_only_grow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_leaf_count_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_unknown, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_schema_constraints, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_corrupt_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_safe, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wal_offload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ca_certs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_marker, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
