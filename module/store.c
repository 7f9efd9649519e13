/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/stat.h>

#include <pthread.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "merkle.h"
#include "store.h"
#include "util.h"

#define BUSY_TIMEOUT_MS 5000
/* store_wal_offload: the checkpointer is woken at this many WAL pages (what
 * SQLite's auto-checkpoint uses); the writer checkpoints itself once the log
 * holds this many times as many, which lets the log start over */
#define WAL_CKPT_PAGES	1000
#define WAL_SELF_FACTOR 4

/*
 * Schema migrations: migrations[i] takes the database from version i to
 * i + 1. A migration that has shipped is never edited: append a new one.
 *
 * The CHECK constraints repeat key_check() so that nothing else writing the
 * file (the sqlite3 shell, a future program) can store a record this program
 * would refuse; key_check() runs first so that the caller gets an error that
 * names the field. STRICT makes SQLite refuse values of the wrong type.
 */
static const char *const migrations[] = {
    /* 1: the key registry (ARCHITECTURE.md section 3). */
    "CREATE TABLE keys ("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (id GLOB 'k_"
    "[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]"
    "[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),"
    "  cka_id BLOB NOT NULL UNIQUE"
    "    CHECK (length(cka_id) = 8 AND lower(hex(cka_id)) = substr(id, 3)),"
    "  agent TEXT NOT NULL CHECK (length(agent) > 0),"
    "  owner TEXT NOT NULL CHECK (length(owner) > 0),"
    "  purpose TEXT NOT NULL"
    "    CHECK (purpose IN"
    "    ('jwt', 'x509-ca', 'checkpoint', 'attestation')),"
    "  alg TEXT NOT NULL CHECK (alg IN"
    "    ('ed25519', 'ecdsa-p256', 'ecdsa-p384', 'rsa-pss-3072')),"
    "  state TEXT NOT NULL"
    "    CHECK (state IN ('active', 'retired', 'destroyed')),"
    "  task TEXT CHECK (task IS NULL OR length(task) > 0),"
    "  created_at INTEGER NOT NULL CHECK (created_at > 0),"
    "  retired_at INTEGER CHECK (retired_at IS NULL OR retired_at > 0),"
    "  destroyed_at INTEGER"
    "    CHECK (destroyed_at IS NULL OR destroyed_at > 0),"
    "  max_age INTEGER CHECK (max_age IS NULL OR max_age > 0),"
    "  ttl INTEGER CHECK (ttl IS NULL OR ttl > 0),"
    "  predecessor TEXT REFERENCES keys (id)"
    "    CHECK (predecessor IS NULL OR predecessor <> id),"
    "  successor TEXT REFERENCES keys (id)"
    "    CHECK (successor IS NULL OR successor <> id),"
    "  spki BLOB NOT NULL CHECK (length(spki) > 0),"
    "  kid TEXT NOT NULL CHECK (length(kid) > 0),"
    "  token TEXT NOT NULL CHECK (length(token) > 0),"
    "  destroy_reason TEXT"
    "    CHECK (destroy_reason IS NULL OR length(destroy_reason) > 0),"
    "  CHECK (state <> 'active' OR (retired_at IS NULL AND"
    "    destroyed_at IS NULL AND destroy_reason IS NULL)),"
    "  CHECK (state <> 'retired' OR (retired_at IS NOT NULL AND"
    "    destroyed_at IS NULL AND destroy_reason IS NULL)),"
    "  CHECK (state <> 'destroyed' OR (destroyed_at IS NOT NULL AND"
    "    destroy_reason IS NOT NULL))"
    ") STRICT;"
    /*
     * At most one active key per (agent, purpose, task). A UNIQUE index
     * treats NULLs as distinct, so the task-less key is indexed as '',
     * which no real task can be (task is NULL or non-empty).
     */
    "CREATE UNIQUE INDEX keys_one_active"
    "  ON keys (agent, purpose, ifnull(task, '')) WHERE state = 'active';"
    "CREATE INDEX keys_state ON keys (state, created_at, id);",
    /*
     * 2: the audit log (FORMATS.md sections 1-2): each leaf's exact bytes
     * and leaf hash, and the hashes of the complete Merkle subtrees
     * (merkle.h), written in the transaction that appends the leaf.
     */
    "CREATE TABLE audit_leaves ("
    "  seq INTEGER PRIMARY KEY NOT NULL CHECK (seq >= 0),"
    "  data BLOB NOT NULL CHECK (length(data) BETWEEN 2 AND 65535),"
    "  hash BLOB NOT NULL CHECK (length(hash) = 32)"
    ") STRICT;"
    "CREATE TABLE merkle_nodes ("
    "  level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),"
    "  idx INTEGER NOT NULL CHECK (idx >= 0),"
    "  hash BLOB NOT NULL CHECK (length(hash) = 32),"
    "  PRIMARY KEY (level, idx)"
    ") STRICT, WITHOUT ROWID;",
    /* 3: signed checkpoints (FORMATS.md section 3), never overwritten */
    "CREATE TABLE checkpoints ("
    "  size INTEGER PRIMARY KEY NOT NULL CHECK (size > 0),"
    "  root BLOB NOT NULL CHECK (length(root) = 32),"
    "  note BLOB NOT NULL CHECK (length(note) > 0),"
    "  created_at INTEGER NOT NULL CHECK (created_at > 0)"
    ") STRICT;",
    /* 4: checkpoint sizes only grow, whoever writes the file */
    "CREATE TRIGGER checkpoints_grow BEFORE INSERT ON checkpoints"
    "  WHEN NEW.size <= (SELECT ifnull(max(size), 0) FROM checkpoints)"
    "  BEGIN SELECT RAISE(ABORT, 'checkpoint sizes only grow'); END;",
    /*
     * 5: the run marker of custodyd: one row from its service.start leaf
     * to its service.stop leaf, each written in the same transaction as
     * the leaf, so a row found at start means the last run did not stop.
     */
    "CREATE TABLE service_run ("
    "  id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),"
    "  pid INTEGER NOT NULL CHECK (pid > 0),"
    "  started_at INTEGER NOT NULL CHECK (started_at > 0)"
    ") STRICT;",
    /*
     * 6: the CA certificates of x509-ca keys, each installed in the same
     * transaction as its leaf (self-signed, or an external CA's answer with
     * the chain above it: DER certificates one after the other, the issuer
     * first). The last installed for a key is its certificate; older rows
     * stay, as the log does.
     */
    "CREATE TABLE ca_certs ("
    "  n INTEGER PRIMARY KEY NOT NULL,"
    "  key_id TEXT NOT NULL REFERENCES keys (id),"
    "  cert BLOB NOT NULL CHECK (length(cert) > 0),"
    "  chain BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL CHECK (created_at > 0)"
    ") STRICT;"
    "CREATE INDEX ca_certs_key ON ca_certs (key_id, n);",
    /*
     * 7: the lifecycle (docs/LIFECYCLE.md). last_exp: the latest expiry of
     * a credential a key signed, so that a retired key is kept until then.
     * lifecycle_jobs: a rotation or destruction under way, one per key, so
     * that start-up finishes what a crash interrupted. lifecycle_events:
     * the events posted, by idempotency id. attestations: the envelopes,
     * each written with its attestation leaf, by the keys they are about.
     */
    "ALTER TABLE keys ADD COLUMN last_exp INTEGER NOT NULL DEFAULT 0"
    "  CHECK (last_exp >= 0);"
    "CREATE TABLE lifecycle_jobs ("
    "  key_id TEXT PRIMARY KEY NOT NULL REFERENCES keys (id),"
    "  kind TEXT NOT NULL CHECK (kind IN ('rotate', 'destroy')),"
    "  stage TEXT NOT NULL CHECK (stage IN ('start', 'attest')),"
    "  new_key_id TEXT,"
    "  trigger TEXT NOT NULL CHECK (length(trigger) > 0),"
    "  reason TEXT NOT NULL CHECK (length(reason) > 0),"
    "  principal TEXT NOT NULL CHECK (length(principal) > 0),"
    "  rule TEXT NOT NULL,"
    "  policy_sha256 TEXT,"
    "  decision_seq INTEGER CHECK (decision_seq IS NULL OR"
    "    decision_seq >= 0),"
    "  statement BLOB,"
    "  created_at INTEGER NOT NULL CHECK (created_at > 0),"
    "  CHECK (stage <> 'attest' OR (decision_seq IS NOT NULL AND"
    "    statement IS NOT NULL))"
    ") STRICT;"
    "CREATE TABLE lifecycle_events ("
    "  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
    "  request_sha256 BLOB NOT NULL CHECK (length(request_sha256) = 32),"
    "  result TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL CHECK (created_at > 0)"
    ") STRICT;"
    "CREATE TABLE attestations ("
    "  n INTEGER PRIMARY KEY NOT NULL,"
    "  key_id TEXT NOT NULL REFERENCES keys (id),"
    "  other_key_id TEXT REFERENCES keys (id),"
    "  kind TEXT NOT NULL CHECK (kind IN ('rotation', 'destruction')),"
    "  decision_seq INTEGER NOT NULL CHECK (decision_seq >= 0),"
    "  envelope BLOB NOT NULL CHECK (length(envelope) > 0),"
    "  created_at INTEGER NOT NULL CHECK (created_at > 0)"
    ") STRICT;"
    "CREATE INDEX attestations_key ON attestations (key_id, n);"
    "CREATE INDEX attestations_other ON attestations (other_key_id, n);",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Columns of a key record, in the order of struct store_key. */
#define KEY_COLUMNS                                                            \
	"id, agent, owner, purpose, alg, state, task, created_at, "            \
	"retired_at, destroyed_at, max_age, ttl, predecessor, successor, "     \
	"spki, kid, token, destroy_reason, last_exp"

enum key_column {
	C_ID,
	C_AGENT,
	C_OWNER,
	C_PURPOSE,
	C_ALG,
	C_STATE,
	C_TASK,
	C_CREATED_AT,
	C_RETIRED_AT,
	C_DESTROYED_AT,
	C_MAX_AGE,
	C_TTL,
	C_PREDECESSOR,
	C_SUCCESSOR,
	C_SPKI,
	C_KID,
	C_TOKEN,
	C_DESTROY_REASON,
	C_LAST_EXP,
	C_CKA_ID, /* written, never read back: the id encodes it */
};

/* Statements prepared once at open and kept until close. */
enum stmt_id {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_INSERT,
	S_GET,
	S_STATE_OF,
	S_ACTIVE_FOR,
	S_LIST,
	S_LIST_STATE,
	S_RETIRE,
	S_DESTROY,
	S_SUCCESSOR,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_LEAF_COUNT,
	S_LEAF_PUT,
	S_LEAF_GET,
	S_NODE_PUT,
	S_NODE_GET,
	S_CKPT_PUT,
	S_CKPT_LAST,
	S_CKPT_NEXT,
	S_RUN_GET,
	S_RUN_BEGIN,
	S_RUN_END,
	S_CA_PUT,
	S_CA_GET,
	S_LAST_EXP,
	S_JOB_PUT,
	S_JOB_LIST,
	S_JOB_DELETE,
	S_EVENT_GET,
	S_EVENT_PUT,
	S_ATT_PUT,
	S_ATT_LIST,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_BEGIN_READ] = "BEGIN DEFERRED",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_INSERT] = "INSERT INTO keys (" KEY_COLUMNS ", cka_id) VALUES"
		 " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
		 " ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    [S_GET] = "SELECT " KEY_COLUMNS " FROM keys WHERE id = ?1",
    [S_STATE_OF] = "SELECT state FROM keys WHERE id = ?1",
    [S_ACTIVE_FOR] = "SELECT id FROM keys WHERE agent = ?1 AND"
		     " purpose = ?2 AND ifnull(task, '') = ifnull(?3, '') AND"
		     " state = 'active'",
    [S_LIST] = "SELECT " KEY_COLUMNS " FROM keys"
	       " ORDER BY created_at, id LIMIT ?1",
    [S_LIST_STATE] = "SELECT " KEY_COLUMNS " FROM keys WHERE state = ?1"
		     " ORDER BY created_at, id LIMIT ?2",
    [S_RETIRE] = "UPDATE keys SET state = 'retired', retired_at = ?2"
		 " WHERE id = ?1 AND state = 'active'",
    [S_DESTROY] = "UPDATE keys SET state = 'destroyed', destroyed_at = ?3,"
		  " destroy_reason = ?4 WHERE id = ?1 AND state = ?2",
    [S_SUCCESSOR] = "UPDATE keys SET successor = ?2 WHERE id = ?1 AND"
		    " (successor IS NULL OR successor = ?2)",
    [S_SAVEPOINT] = "SAVEPOINT item",
    [S_RELEASE] = "RELEASE item",
    [S_ROLLBACK_TO] = "ROLLBACK TO item",
    [S_LEAF_COUNT] = "SELECT ifnull(max(seq) + 1, 0) FROM audit_leaves",
    [S_LEAF_PUT] =
	"INSERT INTO audit_leaves (seq, data, hash) VALUES (?1, ?2, ?3)",
    [S_LEAF_GET] = "SELECT data, hash FROM audit_leaves WHERE seq = ?1",
    [S_NODE_PUT] =
	"INSERT INTO merkle_nodes (level, idx, hash) VALUES (?1, ?2, ?3)",
    [S_CKPT_PUT] = "INSERT INTO checkpoints (size, root, note, created_at)"
		   " VALUES (?1, ?2, ?3, ?4)",
    [S_CKPT_LAST] = "SELECT size, root, note FROM checkpoints"
		    " ORDER BY size DESC LIMIT 1",
    [S_CKPT_NEXT] = "SELECT size, root, note FROM checkpoints"
		    " WHERE size > ?1 ORDER BY size LIMIT 1",
    [S_RUN_GET] = "SELECT pid, started_at FROM service_run WHERE id = 1",
    [S_RUN_BEGIN] = "INSERT OR REPLACE INTO service_run (id, pid, started_at)"
		    " VALUES (1, ?1, ?2)",
    [S_RUN_END] = "DELETE FROM service_run WHERE id = 1",
    [S_CA_PUT] = "INSERT INTO ca_certs (key_id, cert, chain, created_at)"
		 " VALUES (?1, ?2, ?3, ?4)",
    [S_CA_GET] = "SELECT cert, chain FROM ca_certs WHERE key_id = ?1"
		 " ORDER BY n DESC LIMIT 1",
    [S_LAST_EXP] = "UPDATE keys SET last_exp = ?2 WHERE id = ?1 AND"
		   " last_exp < ?2",
    [S_JOB_PUT] = "INSERT OR REPLACE INTO lifecycle_jobs (key_id, kind,"
		  " stage, new_key_id, trigger, reason, principal, rule,"
		  " policy_sha256, decision_seq, statement, created_at)"
		  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [S_JOB_LIST] =
	"SELECT key_id, kind, stage, new_key_id, trigger, reason,"
	" principal, rule, policy_sha256, decision_seq, statement,"
	" created_at FROM lifecycle_jobs ORDER BY created_at, key_id",
    [S_JOB_DELETE] = "DELETE FROM lifecycle_jobs WHERE key_id = ?1",
    [S_EVENT_GET] = "SELECT request_sha256, result FROM lifecycle_events"
		    " WHERE id = ?1",
    [S_EVENT_PUT] = "INSERT INTO lifecycle_events (id, request_sha256,"
		    " result, created_at) VALUES (?1, ?2, ?3, ?4)",
    [S_ATT_PUT] = "INSERT INTO attestations (key_id, other_key_id, kind,"
		  " decision_seq, envelope, created_at)"
		  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_ATT_LIST] =
	"SELECT key_id, other_key_id, kind, decision_seq,"
	" envelope, created_at FROM attestations"
	" WHERE key_id = ?1 OR other_key_id = ?1 ORDER BY n LIMIT ?2",
    [S_NODE_GET] =
	"SELECT hash FROM merkle_nodes WHERE level = ?1 AND idx = ?2",
};

/* The WAL checkpointer of store_wal_offload. */
struct walck {
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int wanted, stop;
	struct store *st; /* its own connection */
};

struct store {
	sqlite3 *db;
	int version;
	sqlite3_stmt *stmt[S_COUNT];
	struct walck *wc; /* or NULL: SQLite checkpoints inside commits */
};

static const char *const purposes[] = {
    "jwt", "x509-ca", "checkpoint", "attestation", NULL};
static const char *const algs[] = {
    "ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-pss-3072", NULL};
static const char *const states[] = {"active", "retired", "destroyed", NULL};

/* Room for any state name and its NUL. */
#define STATE_BUFSZ 16

static int sql_error(struct store *, int, const char *, const char *, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Every SQLite failure goes through sqlerr(), the one place where SQLite
 * result codes become custody codes.
 */
#define sqlerr(st, rc, ...) sql_error((st), (rc), __func__, __VA_ARGS__)

/*
 * rc is an extended result code (they are switched on at open). Conflicts
 * are logged at debug level only: the caller knows which record conflicted
 * and says so.
 */
static int
sql_error(struct store *st, int rc, const char *func, const char *fmt, ...)
{
	char what[256];
	const char *msg;
	va_list ap;
	int level = 3, r;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* errmsg describes the most recent failure on the handle, i.e. rc. */
	msg = st != NULL && st->db != NULL ? sqlite3_errmsg(st->db)
					   : sqlite3_errstr(rc);

	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		r = CUSTODY_E_EXISTS;
		level = 7;
		break;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
	case SQLITE_CONSTRAINT_CHECK:
	case SQLITE_CONSTRAINT_NOTNULL:
	case SQLITE_CONSTRAINT_DATATYPE:
		r = CUSTODY_E_INVALID_ARG;
		break;
	case SQLITE_CONSTRAINT_TRIGGER:
		r = CUSTODY_E_STATE;
		break;
	default:
		switch (rc & 0xff) {
		case SQLITE_BUSY:
		case SQLITE_LOCKED:
			/* another connection writes: nothing was written */
			r = CUSTODY_E_LOCKED;
			break;
		case SQLITE_NOMEM:
			r = CUSTODY_E_NOMEM;
			break;
		case SQLITE_TOOBIG:
			r = CUSTODY_E_TOO_LARGE;
			break;
		default:
			r = CUSTODY_E_STORE;
			break;
		}
		break;
	}
	custody_log(
	    level, func, NULL, "%s: %s (SQLite code %d)", what, msg, rc);
	return r;
}

static bool
name_in(const char *s, const char *const *names)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0)
			return true;
	return false;
}

static bool
nonempty(const char *s)
{
	return s != NULL && *s != '\0';
}

int
store_key_id_parse(const char *id, uint8_t cka[STORE_CKA_ID_LEN])
{
	size_t i;

	if (id == NULL ||
	    strnlen(id, STORE_KEY_ID_LEN + 1) != STORE_KEY_ID_LEN ||
	    id[0] != 'k' || id[1] != '_')
		return CUSTODY_E_PARSE;
	/* lower case only, so that every key has one spelling */
	for (i = 2; i < STORE_KEY_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
			(id[i] >= 'a' && id[i] <= 'f')))
			return CUSTODY_E_PARSE;
	return util_hex_decode(id + 2, cka, STORE_CKA_ID_LEN);
}

static bool
id_valid(const char *id)
{
	uint8_t cka[STORE_CKA_ID_LEN];

	return store_key_id_parse(id, cka) == 0;
}

/*
 * The rules of the schema's CHECK constraints, checked in C so that the
 * error names the field. Returns 0 or CUSTODY_E_INVALID_ARG.
 */
static int
key_check(const struct store_key *k)
{
	const char *field = NULL, *why = NULL;
	bool active, retired, destroyed;

	active = k->state != NULL && strcmp(k->state, "active") == 0;
	retired = k->state != NULL && strcmp(k->state, "retired") == 0;
	destroyed = k->state != NULL && strcmp(k->state, "destroyed") == 0;

	if (!id_valid(k->id)) {
		field = "id";
		why = "is not k_ followed by 16 lower-case hex digits";
	} else if (!nonempty(k->agent)) {
		field = "agent";
		why = "is missing or empty";
	} else if (!nonempty(k->owner)) {
		field = "owner";
		why = "is missing or empty";
	} else if (!name_in(k->purpose, purposes)) {
		field = "purpose";
		why = "is not one of jwt, x509-ca, checkpoint, attestation";
	} else if (!name_in(k->alg, algs)) {
		field = "alg";
		why = "is not one of ed25519, ecdsa-p256, ecdsa-p384, "
		      "rsa-pss-3072";
	} else if (!name_in(k->state, states)) {
		field = "state";
		why = "is not one of active, retired, destroyed";
	} else if (k->task != NULL && *k->task == '\0') {
		field = "task";
		why = "is empty (no task is NULL)";
	} else if (k->created_at <= 0) {
		field = "created_at";
		why = "is not positive";
	} else if (k->retired_at < 0) {
		field = "retired_at";
		why = "is negative";
	} else if (k->destroyed_at < 0) {
		field = "destroyed_at";
		why = "is negative";
	} else if (k->max_age < 0) {
		field = "max_age";
		why = "is negative";
	} else if (k->ttl < 0) {
		field = "ttl";
		why = "is negative";
	} else if (k->predecessor != NULL && !id_valid(k->predecessor)) {
		field = "predecessor";
		why = "is not a key id";
	} else if (k->predecessor != NULL &&
		   strcmp(k->predecessor, k->id) == 0) {
		field = "predecessor";
		why = "is the key itself";
	} else if (k->successor != NULL && !id_valid(k->successor)) {
		field = "successor";
		why = "is not a key id";
	} else if (k->successor != NULL && strcmp(k->successor, k->id) == 0) {
		field = "successor";
		why = "is the key itself";
	} else if (k->spki == NULL || k->spki_len == 0) {
		field = "spki";
		why = "is missing";
	} else if (k->spki_len > STORE_SPKI_MAX) {
		field = "spki";
		why = "is longer than STORE_SPKI_MAX";
	} else if (!nonempty(k->kid)) {
		field = "kid";
		why = "is missing or empty";
	} else if (!nonempty(k->token)) {
		field = "token";
		why = "is missing or empty";
	} else if (k->destroy_reason != NULL && *k->destroy_reason == '\0') {
		field = "destroy_reason";
		why = "is empty";
	} else if (active && k->retired_at != 0) {
		field = "retired_at";
		why = "is set on an active key";
	} else if (!destroyed && k->destroyed_at != 0) {
		field = "destroyed_at";
		why = "is set on a key that is not destroyed";
	} else if (!destroyed && k->destroy_reason != NULL) {
		field = "destroy_reason";
		why = "is set on a key that is not destroyed";
	} else if (retired && k->retired_at == 0) {
		field = "retired_at";
		why = "is missing on a retired key";
	} else if (destroyed && k->destroyed_at == 0) {
		field = "destroyed_at";
		why = "is missing on a destroyed key";
	} else if (destroyed && k->destroy_reason == NULL) {
		field = "destroy_reason";
		why = "is missing on a destroyed key";
	}
	if (field == NULL)
		return 0;
	log_error_f("key %.*s: %s %s", (int)strnlen(k->id, sizeof(k->id)),
	    k->id, field, why);
	return CUSTODY_E_INVALID_ARG;
}

/* Ready s for its next use; SQLITE_STATIC bindings must not outlive a call. */
static void
stmt_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Run a statement that returns no rows. */
static int
run(struct store *st, sqlite3_stmt *s)
{
	int r = 0, rc;

	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		r = sqlerr(st, rc, "%s", sqlite3_sql(s));
	stmt_done(s);
	return r;
}

/* Run SQL with no parameters (set-up and migrations only). */
static int
exec(struct store *st, const char *sql)
{
	int rc;

	if ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		return sqlerr(st, rc, "%.64s", sql);
	return 0;
}

/* The first column of the one row a PRAGMA returns, as text and number. */
static int
pragma(struct store *st, const char *sql, char *buf, size_t bufsz, int64_t *vp)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *text;
	int r, rc;

	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL)) != SQLITE_OK) {
		r = sqlerr(st, rc, "%s", sql);
		goto out;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		log_error_f("%s returned nothing", sql);
		r = CUSTODY_E_STORE;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sqlerr(st, rc, "%s", sql);
		goto out;
	}
	if (buf != NULL) {
		if ((text = sqlite3_column_text(s, 0)) == NULL) {
			log_error_f("%s returned NULL", sql);
			r = CUSTODY_E_STORE;
			goto out;
		}
		snprintf(buf, bufsz, "%s", (const char *)text);
	}
	if (vp != NULL)
		*vp = sqlite3_column_int64(s, 0);
	r = 0;
out:
	sqlite3_finalize(s);
	return r;
}

static int
pragma_int(struct store *st, const char *sql, int64_t *vp)
{
	return pragma(st, sql, NULL, 0, vp);
}

/*
 * Create the database file with mode 0600 if it is absent. SQLite would
 * create it 0644 & ~umask, and gives the -wal and -shm files the mode of the
 * database file, so this sets the mode of all three without touching the
 * process-wide umask.
 */
static int
file_create(const char *path)
{
	struct stat sb;
	int fd;

	fd = open(
	    path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		if (errno != EEXIST) {
			log_error_f("create %s: %s", path, strerror(errno));
			return CUSTODY_E_IO;
		}
		if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
		    (sb.st_mode & 077) != 0)
			log_warn_f("%s has mode %04o: others can read the key "
				   "registry and its -wal and -shm files",
			    path, (unsigned int)(sb.st_mode & 07777));
		/* A symbolic link is refused by SQLITE_OPEN_NOFOLLOW. */
		return 0;
	}
	/* The umask may have cleared bits of 0600 that SQLite needs. */
	if (fchmod(fd, 0600) == -1) {
		log_error_f("chmod %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return CUSTODY_E_IO;
	}
	if (close(fd) == -1) {
		log_error_f("close %s: %s", path, strerror(errno));
		unlink(path);
		return CUSTODY_E_IO;
	}
	/* The new name must be durable before anything is committed. */
	return util_sync_parent(path);
}

static int
configure(struct store *st)
{
	char mode[16];
	int64_t v;
	int r, rc;

	sqlite3_extended_result_codes(st->db, 1);
	/*
	 * Defensive mode refuses the few SQL features that can corrupt the
	 * file (writable_schema and the like); without double-quoted string
	 * literals a misquoted name in our SQL is an error, not a string.
	 */
	if ((rc = sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1,
		 (int *)NULL)) != SQLITE_OK ||
	    (rc = sqlite3_db_config(st->db, SQLITE_DBCONFIG_DQS_DDL, 0,
		 (int *)NULL)) != SQLITE_OK ||
	    (rc = sqlite3_db_config(st->db, SQLITE_DBCONFIG_DQS_DML, 0,
		 (int *)NULL)) != SQLITE_OK) {
		r = sqlerr(st, rc, "sqlite3_db_config");
		goto out;
	}
	if ((rc = sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS)) != SQLITE_OK) {
		r = sqlerr(st, rc, "sqlite3_busy_timeout");
		goto out;
	}
	/* Before anything reads the schema of a file we did not write. */
	if ((r = exec(st, "PRAGMA trusted_schema = OFF")) != 0)
		goto out;
	if ((r = pragma(st, "PRAGMA journal_mode = WAL", mode, sizeof(mode),
		 NULL)) != 0)
		goto out;
	if (strcmp(mode, "wal") != 0) {
		log_error_f("journal mode is %s, not wal", mode);
		r = CUSTODY_E_STORE;
		goto out;
	}
	if ((r = exec(st, "PRAGMA synchronous = FULL")) != 0 ||
	    (r = exec(st, "PRAGMA foreign_keys = ON")) != 0)
		goto out;
	/* Both pragmas are silently ignored where unsupported: check. */
	if ((r = pragma_int(st, "PRAGMA synchronous", &v)) != 0)
		goto out;
	if (v != 2) {
		log_error_f("synchronous is %lld, not 2 (FULL)", (long long)v);
		r = CUSTODY_E_STORE;
		goto out;
	}
	if ((r = pragma_int(st, "PRAGMA foreign_keys", &v)) != 0)
		goto out;
	if (v != 1) {
		log_error_f("this SQLite cannot enforce foreign keys");
		r = CUSTODY_E_STORE;
		goto out;
	}
	r = 0;
out:
	return r;
}

static int
version_check(int64_t v)
{
	if (v > SCHEMA_VERSION) {
		log_error_f("database schema version %lld is newer than this "
			    "program's %d",
		    (long long)v, SCHEMA_VERSION);
		return CUSTODY_E_SCHEMA;
	}
	if (v < 0) {
		log_error_f("database schema version %lld: not a custody "
			    "database (this program's is %d)",
		    (long long)v, SCHEMA_VERSION);
		return CUSTODY_E_SCHEMA;
	}
	return 0;
}

/* Bring the schema up to SCHEMA_VERSION in one transaction. */
static int
migrate(struct store *st)
{
	char sql[64];
	int64_t v, from;
	bool tx = false;
	int i, r;

	if ((r = pragma_int(st, "PRAGMA user_version", &v)) != 0 ||
	    (r = version_check(v)) != 0)
		goto out;
	if (v == SCHEMA_VERSION)
		goto done;
	if ((r = exec(st, "BEGIN IMMEDIATE")) != 0)
		goto out;
	tx = true;
	/* Another process may have migrated between the read and the lock. */
	if ((r = pragma_int(st, "PRAGMA user_version", &v)) != 0 ||
	    (r = version_check(v)) != 0)
		goto out;
	from = v;
	for (i = (int)v; i < SCHEMA_VERSION; i++) {
		if ((r = exec(st, migrations[i])) != 0)
			goto out;
		/* PRAGMA takes no parameters; the number is ours, not input. */
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", i + 1);
		if ((r = exec(st, sql)) != 0)
			goto out;
	}
	if ((r = exec(st, "COMMIT")) != 0)
		goto out;
	tx = false;
	if (from != SCHEMA_VERSION)
		log_info_f("database schema migrated from version %lld to %d",
		    (long long)from, SCHEMA_VERSION);
done:
	st->version = SCHEMA_VERSION;
	r = 0;
out:
	if (tx && !sqlite3_get_autocommit(st->db))
		(void)exec(st, "ROLLBACK");
	return r;
}

static int
prepare_all(struct store *st)
{
	size_t i;
	int rc;

	for (i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL);
		if (rc != SQLITE_OK)
			return sqlerr(st, rc, "prepare %s", stmt_sql[i]);
	}
	return 0;
}

int
store_open(const char *path, struct store **stp)
{
	struct store *st = NULL;
	int r, rc;

	CUSTODY_RETURN_VAL_IF_FAIL(path != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(stp != NULL, CUSTODY_E_INVALID_ARG);

	if ((r = file_create(path)) != 0)
		goto out;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	/* Not SQLITE_OPEN_URI: path is a file name, never a URI. */
	if ((rc = sqlite3_open_v2(path, &st->db,
		 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
		     SQLITE_OPEN_EXRESCODE,
		 NULL)) != SQLITE_OK) {
		r = sqlerr(st, rc, "open %s", path);
		goto out;
	}
	if ((r = configure(st)) != 0 || (r = migrate(st)) != 0 ||
	    (r = prepare_all(st)) != 0)
		goto out;
	*stp = st;
	st = NULL;
	r = 0;
out:
	store_close(st);
	return r;
}

static void walck_stop(struct store *st);

void
store_close(struct store *st)
{
	size_t i;
	int rc;

	if (st == NULL)
		return;
	walck_stop(st);
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	if (st->db != NULL) {
		if (!sqlite3_get_autocommit(st->db))
			log_warn_f("closing with a transaction open: it is "
				   "rolled back");
		if ((rc = sqlite3_close(st->db)) != SQLITE_OK)
			log_error_f("sqlite3_close: %s", sqlite3_errstr(rc));
	}
	free(st);
}

/* ---- the WAL checkpointer ------------------------------------------------ */

/*
 * SQLite calls this after each commit of st's connection with the pages in
 * the WAL. Taking the hook turns SQLite's own auto-checkpoint off.
 */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct walck *wc = arg;
	int rc;

	if (pages >= WAL_CKPT_PAGES * WAL_SELF_FACTOR) {
		/* what the thread copied is not copied again: this costs the
		 * rest and one sync, and the next commit starts the log over
		 * (BUSY: the thread is at it; again after the next commit) */
		rc = sqlite3_wal_checkpoint_v2(
		    db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn_f("WAL checkpoint: %s", sqlite3_errstr(rc));
		return SQLITE_OK;
	}
	if (pages >= WAL_CKPT_PAGES) {
		pthread_mutex_lock(&wc->mu);
		if (!wc->wanted) {
			wc->wanted = 1;
			pthread_cond_signal(&wc->cv);
		}
		pthread_mutex_unlock(&wc->mu);
	}
	return SQLITE_OK;
}

static void *
walck_main(void *arg)
{
	struct walck *wc = arg;
	int rc, logged = 0;

	pthread_mutex_lock(&wc->mu);
	for (;;) {
		while (!wc->wanted && !wc->stop)
			pthread_cond_wait(&wc->cv, &wc->mu);
		if (wc->stop)
			break;
		wc->wanted = 0;
		pthread_mutex_unlock(&wc->mu);
		/*
		 * PASSIVE copies the log into the database file and syncs it
		 * while the writer goes on committing (it waits for no one).
		 * The log starts over only after a checkpoint that copied
		 * every frame, which a busy writer keeps from happening here:
		 * the writer's own checkpoint in wal_hook does that, and has
		 * little left to copy.
		 */
		rc = sqlite3_wal_checkpoint_v2(
		    wc->st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && !logged) {
			/* the writer takes over if the WAL keeps growing */
			log_warn_f("WAL checkpoint: %s (logged once)",
			    sqlite3_errmsg(wc->st->db));
			logged = 1;
		}
		pthread_mutex_lock(&wc->mu);
	}
	pthread_mutex_unlock(&wc->mu);
	return NULL;
}

int
store_wal_offload(struct store *st, const char *path)
{
	struct walck *wc;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL && path != NULL && st->wc == NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((wc = calloc(1, sizeof(*wc))) == NULL)
		return CUSTODY_E_NOMEM;
	if ((r = store_open(path, &wc->st)) != 0) {
		free(wc);
		return r;
	}
	pthread_mutex_init(&wc->mu, NULL);
	pthread_cond_init(&wc->cv, NULL);
	if (pthread_create(&wc->t, NULL, walck_main, wc) != 0) {
		pthread_mutex_destroy(&wc->mu);
		pthread_cond_destroy(&wc->cv);
		store_close(wc->st);
		free(wc);
		return CUSTODY_E_NOMEM;
	}
	(void)pthread_setname_np(wc->t, "custody-wal"); /* for ps and gdb */
	st->wc = wc;
	(void)sqlite3_wal_hook(st->db, wal_hook, wc);
	return 0;
}

static void
walck_stop(struct store *st)
{
	struct walck *wc = st->wc;

	if (wc == NULL)
		return;
	/* SQLite's own checkpointing again, for what this connection still
	 * writes and at its close */
	(void)sqlite3_wal_hook(st->db, NULL, NULL);
	(void)sqlite3_wal_autocheckpoint(st->db, WAL_CKPT_PAGES);
	pthread_mutex_lock(&wc->mu);
	wc->stop = 1;
	pthread_cond_signal(&wc->cv);
	pthread_mutex_unlock(&wc->mu);
	pthread_join(wc->t, NULL);
	pthread_mutex_destroy(&wc->mu);
	pthread_cond_destroy(&wc->cv);
	store_close(wc->st);
	free(wc);
	st->wc = NULL;
}

int
store_schema_version(const struct store *st)
{
	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	return st->version;
}

int
store_begin(struct store *st)
{
	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    sqlite3_get_autocommit(st->db), CUSTODY_E_INVALID_ARG);
	return run(st, st->stmt[S_BEGIN]);
}

int
store_commit(struct store *st)
{
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    !sqlite3_get_autocommit(st->db), CUSTODY_E_INVALID_ARG);
	/*
	 * A failed COMMIT may leave the transaction open (SQLITE_BUSY) or
	 * not (an I/O error rolls back). Either way it ends here: an fsync
	 * error is never retried on the same data (G2).
	 */
	if ((r = run(st, st->stmt[S_COMMIT])) != 0 &&
	    !sqlite3_get_autocommit(st->db))
		(void)run(st, st->stmt[S_ROLLBACK]);
	return r;
}

int
store_rollback(struct store *st)
{
	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	/* SQLite may already have rolled back after an error. */
	if (sqlite3_get_autocommit(st->db))
		return 0;
	return run(st, st->stmt[S_ROLLBACK]);
}

/* Parameter i (from 1); NULL text binds SQL NULL. */
static int
bind_text(sqlite3_stmt *s, int i, const char *text)
{
	if (text == NULL)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC);
}

/* In a record 0 means none; in the table, NULL does. */
static int
bind_time(sqlite3_stmt *s, int i, int64_t v)
{
	if (v == 0)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_int64(s, i, v);
}

/* S_INSERT's parameter for a column: parameters count from 1. */
#define P(col) ((col) + 1)

static int
bind_key(sqlite3_stmt *s, const struct store_key *k,
    const uint8_t cka[STORE_CKA_ID_LEN])
{
	int rc;

	if ((rc = bind_text(s, P(C_ID), k->id)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_AGENT), k->agent)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_OWNER), k->owner)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_PURPOSE), k->purpose)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_ALG), k->alg)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_STATE), k->state)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_TASK), k->task)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, P(C_CREATED_AT), k->created_at)) !=
		SQLITE_OK ||
	    (rc = bind_time(s, P(C_RETIRED_AT), k->retired_at)) != SQLITE_OK ||
	    (rc = bind_time(s, P(C_DESTROYED_AT), k->destroyed_at)) !=
		SQLITE_OK ||
	    (rc = bind_time(s, P(C_MAX_AGE), k->max_age)) != SQLITE_OK ||
	    (rc = bind_time(s, P(C_TTL), k->ttl)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_PREDECESSOR), k->predecessor)) !=
		SQLITE_OK ||
	    (rc = bind_text(s, P(C_SUCCESSOR), k->successor)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(s, P(C_SPKI), k->spki, (int)k->spki_len,
		 SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_KID), k->kid)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_TOKEN), k->token)) != SQLITE_OK ||
	    (rc = bind_text(s, P(C_DESTROY_REASON), k->destroy_reason)) !=
		SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, P(C_LAST_EXP), k->last_exp)) !=
		SQLITE_OK ||
	    (rc = sqlite3_bind_blob(s, P(C_CKA_ID), cka, STORE_CKA_ID_LEN,
		 SQLITE_STATIC)) != SQLITE_OK)
		return rc;
	return SQLITE_OK;
}

/* A copy of a text column, NULL for SQL NULL. */
static int
col_text(sqlite3_stmt *s, int col, char **outp)
{
	const unsigned char *text;

	*outp = NULL;
	if (sqlite3_column_type(s, col) == SQLITE_NULL)
		return 0;
	/* NULL here is SQLite's allocation failing. */
	if ((text = sqlite3_column_text(s, col)) == NULL ||
	    (*outp = strdup((const char *)text)) == NULL)
		return CUSTODY_E_NOMEM;
	return 0;
}

/* The record at the current row of s, checked as an insert would be. */
static int
key_from_row(sqlite3_stmt *s, struct store_key **kp)
{
	struct store_key *k = NULL;
	const unsigned char *id;
	const void *blob;
	int n, r;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if ((id = sqlite3_column_text(s, C_ID)) == NULL ||
	    strlen((const char *)id) != STORE_KEY_ID_LEN) {
		log_error_f("a key record has no valid id");
		r = CUSTODY_E_STORE;
		goto out;
	}
	memcpy(k->id, id, STORE_KEY_ID_LEN + 1);
	if ((r = col_text(s, C_AGENT, &k->agent)) != 0 ||
	    (r = col_text(s, C_OWNER, &k->owner)) != 0 ||
	    (r = col_text(s, C_PURPOSE, &k->purpose)) != 0 ||
	    (r = col_text(s, C_ALG, &k->alg)) != 0 ||
	    (r = col_text(s, C_STATE, &k->state)) != 0 ||
	    (r = col_text(s, C_TASK, &k->task)) != 0 ||
	    (r = col_text(s, C_PREDECESSOR, &k->predecessor)) != 0 ||
	    (r = col_text(s, C_SUCCESSOR, &k->successor)) != 0 ||
	    (r = col_text(s, C_KID, &k->kid)) != 0 ||
	    (r = col_text(s, C_TOKEN, &k->token)) != 0 ||
	    (r = col_text(s, C_DESTROY_REASON, &k->destroy_reason)) != 0)
		goto out;
	/* SQL NULL reads as 0, which is what a record means by none. */
	k->created_at = sqlite3_column_int64(s, C_CREATED_AT);
	k->retired_at = sqlite3_column_int64(s, C_RETIRED_AT);
	k->destroyed_at = sqlite3_column_int64(s, C_DESTROYED_AT);
	k->max_age = sqlite3_column_int64(s, C_MAX_AGE);
	k->ttl = sqlite3_column_int64(s, C_TTL);
	k->last_exp = sqlite3_column_int64(s, C_LAST_EXP);
	if (sqlite3_column_type(s, C_SPKI) == SQLITE_BLOB) {
		/* The pointer first, then its length (SQLite's rule). */
		blob = sqlite3_column_blob(s, C_SPKI);
		n = sqlite3_column_bytes(s, C_SPKI);
		if (blob == NULL || n <= 0) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
		if ((k->spki = malloc((size_t)n)) == NULL) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
		memcpy(k->spki, blob, (size_t)n);
		k->spki_len = (size_t)n;
	}
	/* The file may have been written by something other than us. */
	if (key_check(k) != 0) {
		log_error_f("key record %s in the database is invalid", k->id);
		r = CUSTODY_E_STORE;
		goto out;
	}
	*kp = k;
	k = NULL;
	r = 0;
out:
	store_key_free(k);
	return r;
}

/* The state of key id into buf; CUSTODY_E_KEY_NOT_FOUND if absent. */
static int
key_state_of(struct store *st, const char *id, char buf[STATE_BUFSZ])
{
	sqlite3_stmt *s = st->stmt[S_STATE_OF];
	const unsigned char *state;
	int r, rc;

	if ((rc = bind_text(s, 1, id)) != SQLITE_OK) {
		r = sqlerr(st, rc, "bind");
		goto out;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		r = CUSTODY_E_KEY_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sqlerr(st, rc, "state of key %s", id);
		goto out;
	}
	if ((state = sqlite3_column_text(s, 0)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	snprintf(buf, STATE_BUFSZ, "%s", (const char *)state);
	r = 0;
out:
	stmt_done(s);
	return r;
}

/* After a conflict on insert, log what k conflicts with. */
static void
explain_exists(struct store *st, const struct store_key *k)
{
	sqlite3_stmt *s = st->stmt[S_ACTIVE_FOR];
	char state[STATE_BUFSZ];
	const unsigned char *other = NULL;

	if (key_state_of(st, k->id, state) == 0) {
		log_error_f(
		    "key id %s is taken (by a key in state %s)", k->id, state);
		return;
	}
	if (bind_text(s, 1, k->agent) == SQLITE_OK &&
	    bind_text(s, 2, k->purpose) == SQLITE_OK &&
	    bind_text(s, 3, k->task) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		other = sqlite3_column_text(s, 0);
	if (other != NULL)
		log_error_f("key %s: an active key (%s) already exists for "
			    "agent %s, purpose %s, task %s",
		    k->id, (const char *)other, k->agent, k->purpose,
		    k->task != NULL ? k->task : "(none)");
	else
		log_error_f("key %s conflicts with an existing key", k->id);
	stmt_done(s);
}

int
store_key_insert(struct store *st, const struct store_key *k)
{
	sqlite3_stmt *s;
	uint8_t cka[STORE_CKA_ID_LEN];
	int r, rc;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(k != NULL, CUSTODY_E_INVALID_ARG);

	if ((r = key_check(k)) != 0)
		return r;
	store_key_id_parse(k->id, cka);
	s = st->stmt[S_INSERT];
	if ((rc = bind_key(s, k, cka)) != SQLITE_OK) {
		r = sqlerr(st, rc, "bind key %s", k->id);
		goto out;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = sqlerr(st, rc, "insert key %s", k->id);
		/* The statement must be reset before explain_exists() reads. */
		stmt_done(s);
		if (r == CUSTODY_E_EXISTS)
			explain_exists(st, k);
		else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			log_error_f("key %s: predecessor %s or successor %s "
				    "names no key",
			    k->id,
			    k->predecessor != NULL ? k->predecessor : "(none)",
			    k->successor != NULL ? k->successor : "(none)");
		goto out;
	}
	r = 0;
out:
	stmt_done(s);
	return r;
}

int
store_key_get(struct store *st, const char *id, struct store_key **kp)
{
	sqlite3_stmt *s;
	struct store_key *k = NULL;
	int r, rc;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(id != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(kp != NULL, CUSTODY_E_INVALID_ARG);

	s = st->stmt[S_GET];
	if ((rc = bind_text(s, 1, id)) != SQLITE_OK) {
		r = sqlerr(st, rc, "bind");
		goto out;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		log_debug_f("no key %.64s", id);
		r = CUSTODY_E_KEY_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sqlerr(st, rc, "get key %.64s", id);
		goto out;
	}
	if ((r = key_from_row(s, &k)) != 0)
		goto out;
	*kp = k;
	k = NULL;
out:
	stmt_done(s);
	store_key_free(k);
	return r;
}

int
store_key_list(
    struct store *st, const char *state, struct store_key ***keysp, size_t *np)
{
	sqlite3_stmt *s;
	struct store_key **keys = NULL, **tmp;
	size_t n = 0, cap = 0;
	int r, rc;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(keysp != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(np != NULL, CUSTODY_E_INVALID_ARG);

	if (state != NULL && !name_in(state, states)) {
		log_error_f("state %.32s is not one of active, retired, "
			    "destroyed",
		    state);
		return CUSTODY_E_INVALID_ARG;
	}
	/* One row past the limit tells "exactly the limit" from "more". */
	if (state == NULL) {
		s = st->stmt[S_LIST];
		rc = sqlite3_bind_int64(s, 1, STORE_KEY_LIST_MAX + 1);
	} else {
		s = st->stmt[S_LIST_STATE];
		if ((rc = bind_text(s, 1, state)) == SQLITE_OK)
			rc = sqlite3_bind_int64(s, 2, STORE_KEY_LIST_MAX + 1);
	}
	if (rc != SQLITE_OK) {
		r = sqlerr(st, rc, "bind");
		goto out;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == STORE_KEY_LIST_MAX) {
			log_error_f("more than %d keys%s%s: not listed",
			    STORE_KEY_LIST_MAX,
			    state != NULL ? " in state " : "",
			    state != NULL ? state : "");
			r = CUSTODY_E_TOO_LARGE;
			goto out;
		}
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			tmp = realloc(keys, cap * sizeof(*keys));
			if (tmp == NULL) {
				r = CUSTODY_E_NOMEM;
				goto out;
			}
			keys = tmp;
		}
		if ((r = key_from_row(s, &keys[n])) != 0)
			goto out;
		n++;
	}
	if (rc != SQLITE_DONE) {
		r = sqlerr(st, rc, "list keys");
		goto out;
	}
	if (n == 0) {
		free(keys);
		keys = NULL;
	}
	*keysp = keys;
	*np = n;
	keys = NULL;
	n = 0;
	r = 0;
out:
	stmt_done(s);
	store_key_list_free(keys, n);
	return r;
}

static bool
transition_allowed(const char *from, const char *to)
{
	if (strcmp(from, "active") == 0)
		return strcmp(to, "retired") == 0 ||
		       strcmp(to, "destroyed") == 0;
	if (strcmp(from, "retired") == 0)
		return strcmp(to, "destroyed") == 0;
	return false;
}

int
store_key_set_state(struct store *st, const char *id, const char *from,
    const char *to, int64_t t, const char *reason)
{
	sqlite3_stmt *s;
	char cur[STATE_BUFSZ];
	int r, rc;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(id != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(from != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(to != NULL, CUSTODY_E_INVALID_ARG);

	if (!name_in(from, states) || !name_in(to, states)) {
		log_error_f("key %.64s: %.32s -> %.32s: unknown state name", id,
		    from, to);
		return CUSTODY_E_INVALID_ARG;
	}
	if (t <= 0) {
		log_error_f(
		    "key %.64s: time %lld is not positive", id, (long long)t);
		return CUSTODY_E_INVALID_ARG;
	}
	if (!transition_allowed(from, to)) {
		log_error_f("key %.64s: %s -> %s is not allowed", id, from, to);
		return CUSTODY_E_STATE;
	}
	if (strcmp(to, "destroyed") == 0) {
		if (!nonempty(reason)) {
			log_error_f(
			    "key %.64s: a destruction needs a reason", id);
			return CUSTODY_E_INVALID_ARG;
		}
		s = st->stmt[S_DESTROY];
		if ((rc = bind_text(s, 1, id)) != SQLITE_OK ||
		    (rc = bind_text(s, 2, from)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(s, 3, t)) != SQLITE_OK ||
		    (rc = bind_text(s, 4, reason)) != SQLITE_OK) {
			r = sqlerr(st, rc, "bind");
			goto out;
		}
	} else {
		s = st->stmt[S_RETIRE];
		if ((rc = bind_text(s, 1, id)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(s, 2, t)) != SQLITE_OK) {
			r = sqlerr(st, rc, "bind");
			goto out;
		}
	}
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = sqlerr(st, rc, "key %.64s: %s -> %s", id, from, to);
		goto out;
	}
	if (sqlite3_changes(st->db) == 1) {
		r = 0;
		goto out;
	}
	/* The update matched nothing: say why. */
	stmt_done(s);
	if ((r = key_state_of(st, id, cur)) == CUSTODY_E_KEY_NOT_FOUND)
		log_debug_f("no key %.64s", id);
	else if (r == 0) {
		log_error_f("key %s is %s, not %s", id, cur, from);
		r = CUSTODY_E_STATE;
	}
out:
	stmt_done(s);
	return r;
}

int
store_key_set_successor(struct store *st, const char *id, const char *successor)
{
	sqlite3_stmt *s;
	char cur[STATE_BUFSZ];
	int r, rc;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(id != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(successor != NULL, CUSTODY_E_INVALID_ARG);

	if (!id_valid(successor) || strcmp(successor, id) == 0) {
		log_error_f("key %.64s: successor %.64s is not another key's "
			    "id",
		    id, successor);
		return CUSTODY_E_INVALID_ARG;
	}
	s = st->stmt[S_SUCCESSOR];
	if ((rc = bind_text(s, 1, id)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, successor)) != SQLITE_OK) {
		r = sqlerr(st, rc, "bind");
		goto out;
	}
	if ((rc = sqlite3_step(s)) != SQLITE_DONE) {
		r = sqlerr(st, rc, "key %.64s: successor %s", id, successor);
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			log_error_f("key %.64s: successor %s names no key", id,
			    successor);
		goto out;
	}
	if (sqlite3_changes(st->db) == 1) {
		r = 0;
		goto out;
	}
	stmt_done(s);
	if ((r = key_state_of(st, id, cur)) == CUSTODY_E_KEY_NOT_FOUND)
		log_debug_f("no key %.64s", id);
	else if (r == 0) {
		log_error_f("key %s already has another successor", id);
		r = CUSTODY_E_STATE;
	}
out:
	stmt_done(s);
	return r;
}

void
store_key_free(struct store_key *k)
{
	if (k == NULL)
		return;
	free(k->agent);
	free(k->owner);
	free(k->purpose);
	free(k->alg);
	free(k->state);
	free(k->task);
	free(k->predecessor);
	free(k->successor);
	free(k->spki);
	free(k->kid);
	free(k->token);
	free(k->destroy_reason);
	free(k);
}

void
store_key_list_free(struct store_key **keys, size_t n)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < n; i++)
		store_key_free(keys[i]);
	free(keys);
}

/* ---- audit log ------------------------------------------------------------
 */

int
store_savepoint(struct store *st)
{
	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	return run(st, st->stmt[S_SAVEPOINT]);
}

int
store_release(struct store *st)
{
	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	return run(st, st->stmt[S_RELEASE]);
}

int
store_rollback_to(struct store *st)
{
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	/* ROLLBACK TO keeps the savepoint open: release it too */
	if ((r = run(st, st->stmt[S_ROLLBACK_TO])) != 0)
		return r;
	return run(st, st->stmt[S_RELEASE]);
}

static int leaf_count(struct store *st, uint64_t *np);

int
store_leaf_count(struct store *st, uint64_t *np)
{
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && np != NULL, CUSTODY_E_INVALID_ARG);
	if (!sqlite3_get_autocommit(st->db))
		return leaf_count(st, np);
	/*
	 * Its reads must see one snapshot: a writer committing between them
	 * (the audit log's, on another connection) would make the count and
	 * the tree disagree, and that looks like a deleted tail.
	 */
	if ((r = run(st, st->stmt[S_BEGIN_READ])) != 0)
		return r;
	r = leaf_count(st, np);
	(void)run(st, st->stmt[S_ROLLBACK]); /* it wrote nothing */
	return r;
}

static int
leaf_count(struct store *st, uint64_t *np)
{
	sqlite3_stmt *s;
	uint8_t leaf[32], node[32], *data = NULL;
	uint64_t n;
	size_t len;
	int rc, r = 0;

	s = st->stmt[S_LEAF_COUNT];
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		r = sqlerr(st, rc, "count leaves");
		goto out;
	}
	n = (uint64_t)sqlite3_column_int64(s, 0);
	stmt_done(s);
	/*
	 * O(log n), so that start-up never reads the whole log: the leaves
	 * end where the tree's leaf hashes end, and the last leaf is the
	 * tree's. (A leaf deleted in the middle is found by export and by
	 * 'custody audit verify', which read every leaf.)
	 */
	if (n > 0 && ((r = store_leaf_get(st, n - 1, &data, &len, leaf)) != 0 ||
			 (r = store_node_get(st, 0, n - 1, node)) != 0)) {
		free(data);
		return r; /* a missing node is logged as such */
	}
	free(data);
	if (n > 0 && memcmp(leaf, node, 32) != 0) {
		log_error_f("leaf %llu is not the last leaf of the stored tree",
		    (unsigned long long)n - 1);
		return CUSTODY_E_STORE;
	}
	s = st->stmt[S_NODE_GET];
	sqlite3_bind_int64(s, 1, 0);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)n);
	rc = sqlite3_step(s);
	stmt_done(s);
	if (rc == SQLITE_ROW) {
		log_error_f(
		    "the stored tree holds more leaves than the %llu in "
		    "the log: its tail was deleted",
		    (unsigned long long)n);
		return CUSTODY_E_STORE;
	}
	if (rc != SQLITE_DONE)
		return sqlerr(st, rc, "count leaves");
	*np = n;
	return 0;
out:
	stmt_done(s);
	return r;
}

int
store_leaf_put(struct store *st, uint64_t seq, const uint8_t *data, size_t len,
    const uint8_t hash[32])
{
	sqlite3_stmt *s;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && data != NULL && hash != NULL, CUSTODY_E_INVALID_ARG);
	if (seq > INT64_MAX || len < 2 || len > STORE_LEAF_MAX)
		return CUSTODY_E_INVALID_ARG;
	s = st->stmt[S_LEAF_PUT];
	if (sqlite3_bind_int64(s, 1, (sqlite3_int64)seq) != SQLITE_OK ||
	    sqlite3_bind_blob(s, 2, data, (int)len, SQLITE_STATIC) !=
		SQLITE_OK ||
	    sqlite3_bind_blob(s, 3, hash, 32, SQLITE_STATIC) != SQLITE_OK) {
		stmt_done(s);
		return sqlerr(st, sqlite3_errcode(st->db), "bind leaf");
	}
	return run(st, s);
}

int
store_leaf_get(struct store *st, uint64_t seq, uint8_t **datap, size_t *lenp,
    uint8_t hash[32])
{
	sqlite3_stmt *s;
	const void *d, *h;
	int rc, n, r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && datap != NULL && lenp != NULL && hash != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (seq > INT64_MAX)
		return CUSTODY_E_INVALID_ARG;
	s = st->stmt[S_LEAF_GET];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		r = CUSTODY_E_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sqlerr(st, rc, "read leaf %llu", (unsigned long long)seq);
		goto out;
	}
	d = sqlite3_column_blob(s, 0);
	n = sqlite3_column_bytes(s, 0);
	h = sqlite3_column_blob(s, 1);
	if (d == NULL || n < 2 || h == NULL ||
	    sqlite3_column_bytes(s, 1) != 32) {
		log_error_f("leaf %llu is malformed", (unsigned long long)seq);
		r = CUSTODY_E_STORE;
		goto out;
	}
	if ((*datap = malloc((size_t)n)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	memcpy(*datap, d, (size_t)n);
	*lenp = (size_t)n;
	memcpy(hash, h, 32);
out:
	stmt_done(s);
	return r;
}

int
store_node_put(
    struct store *st, unsigned level, uint64_t idx, const uint8_t hash[32])
{
	sqlite3_stmt *s;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && hash != NULL, CUSTODY_E_INVALID_ARG);
	if (level > 63 || idx > INT64_MAX)
		return CUSTODY_E_INVALID_ARG;
	s = st->stmt[S_NODE_PUT];
	sqlite3_bind_int(s, 1, (int)level);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)idx);
	sqlite3_bind_blob(s, 3, hash, 32, SQLITE_STATIC);
	return run(st, s);
}

int
store_node_get(struct store *st, unsigned level, uint64_t idx, uint8_t hash[32])
{
	sqlite3_stmt *s;
	int rc, r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && hash != NULL, CUSTODY_E_INVALID_ARG);
	if (level > 63 || idx > INT64_MAX)
		return CUSTODY_E_INVALID_ARG;
	s = st->stmt[S_NODE_GET];
	sqlite3_bind_int(s, 1, (int)level);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)idx);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW &&
	    sqlite3_column_bytes(s, 0) == 32)
		memcpy(hash, sqlite3_column_blob(s, 0), 32);
	else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		/* the tree's nodes are written with their leaves: a missing
		 * one means a damaged database, not an absent key */
		log_error_f("Merkle node (%u, %llu) is missing or malformed",
		    level, (unsigned long long)idx);
		r = CUSTODY_E_STORE;
	} else
		r = sqlerr(st, rc, "read Merkle node");
	stmt_done(s);
	return r;
}

static int
merkle_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	return store_node_get(arg, level, index, out);
}

void
store_merkle(struct store *st, struct merkle_store *ms)
{
	ms->get = merkle_get;
	ms->arg = st;
}

int
store_checkpoint_put(struct store *st, uint64_t size, const uint8_t root[32],
    const char *note, size_t len, int64_t now)
{
	sqlite3_stmt *s;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && root != NULL && note != NULL, CUSTODY_E_INVALID_ARG);
	if (size == 0 || size > INT64_MAX || len == 0 || len > INT_MAX ||
	    now <= 0)
		return CUSTODY_E_INVALID_ARG;
	s = st->stmt[S_CKPT_PUT];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)size);
	sqlite3_bind_blob(s, 2, root, 32, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, note, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now);
	return run(st, s);
}

/* The checkpoint row s steps to; CUSTODY_E_NOT_FOUND if there is none. */
static int
checkpoint_row(struct store *st, sqlite3_stmt *s, uint64_t *sizep,
    uint8_t root[32], char **notep, size_t *lenp)
{
	const void *n;
	int rc, len, r = 0;

	if ((rc = sqlite3_step(s)) == SQLITE_DONE) {
		r = CUSTODY_E_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sqlerr(st, rc, "read a checkpoint");
		goto out;
	}
	n = sqlite3_column_blob(s, 2);
	len = sqlite3_column_bytes(s, 2);
	if (sqlite3_column_bytes(s, 1) != 32 || n == NULL || len <= 0) {
		log_error_f("the checkpoint of size %lld is malformed",
		    (long long)sqlite3_column_int64(s, 0));
		r = CUSTODY_E_STORE;
		goto out;
	}
	if ((*notep = malloc((size_t)len + 1)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	memcpy(*notep, n, (size_t)len);
	(*notep)[len] = '\0';
	*lenp = (size_t)len;
	*sizep = (uint64_t)sqlite3_column_int64(s, 0);
	memcpy(root, sqlite3_column_blob(s, 1), 32);
out:
	stmt_done(s);
	return r;
}

int
store_checkpoint_last(struct store *st, uint64_t *sizep, uint8_t root[32],
    char **notep, size_t *lenp)
{
	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL && sizep != NULL &&
				       root != NULL && notep != NULL &&
				       lenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	return checkpoint_row(
	    st, st->stmt[S_CKPT_LAST], sizep, root, notep, lenp);
}

int
store_checkpoint_next(struct store *st, uint64_t after, uint64_t *sizep,
    uint8_t root[32], char **notep, size_t *lenp)
{
	sqlite3_stmt *s;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL && after <= INT64_MAX &&
				       sizep != NULL && root != NULL &&
				       notep != NULL && lenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_CKPT_NEXT];
	if (sqlite3_bind_int64(s, 1, (sqlite3_int64)after) != SQLITE_OK) {
		stmt_done(s);
		return sqlerr(st, sqlite3_errcode(st->db), "bind");
	}
	return checkpoint_row(st, s, sizep, root, notep, lenp);
}

int
store_run_get(struct store *st, struct store_run *runp)
{
	sqlite3_stmt *s;
	int rc, r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && runp != NULL, CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_RUN_GET];
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		runp->pid = sqlite3_column_int64(s, 0);
		runp->started_at = sqlite3_column_int64(s, 1);
	} else if (rc == SQLITE_DONE)
		r = CUSTODY_E_NOT_FOUND;
	else
		r = sqlerr(st, rc, "read the run marker");
	stmt_done(s);
	return r;
}

int
store_run_begin(struct store *st, const struct store_run *rm)
{
	sqlite3_stmt *s;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && rm != NULL, CUSTODY_E_INVALID_ARG);
	if (rm->pid <= 0 || rm->started_at <= 0)
		return CUSTODY_E_INVALID_ARG;
	s = st->stmt[S_RUN_BEGIN];
	sqlite3_bind_int64(s, 1, rm->pid);
	sqlite3_bind_int64(s, 2, rm->started_at);
	return run(st, s);
}

int
store_run_end(struct store *st)
{
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = run(st, st->stmt[S_RUN_END])) != 0)
		return r;
	return sqlite3_changes(st->db) == 1 ? 0 : CUSTODY_E_NOT_FOUND;
}

/* ---- CA certificates -------------------------------------------------- */

int
store_ca_put(struct store *st, const char *key_id, const uint8_t *cert,
    size_t certlen, const uint8_t *chain, size_t chainlen, int64_t now)
{
	sqlite3_stmt *s;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL && key_id != NULL &&
				       cert != NULL &&
				       (chain != NULL || chainlen == 0),
	    CUSTODY_E_INVALID_ARG);
	if (certlen == 0 || certlen > INT_MAX || chainlen > INT_MAX || now <= 0)
		return CUSTODY_E_INVALID_ARG;
	s = st->stmt[S_CA_PUT];
	bind_text(s, 1, key_id);
	sqlite3_bind_blob(s, 2, cert, (int)certlen, SQLITE_STATIC);
	/* an empty chain is a zero-length blob, not NULL */
	sqlite3_bind_zeroblob(s, 3, 0);
	if (chainlen > 0)
		sqlite3_bind_blob(s, 3, chain, (int)chainlen, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now);
	return run(st, s);
}

/* A copy of column col's blob (empty allowed) into *outp, *lenp. */
static int
col_blob(sqlite3_stmt *s, int col, uint8_t **outp, size_t *lenp)
{
	const void *b = sqlite3_column_blob(s, col);
	int len = sqlite3_column_bytes(s, col);

	if ((*outp = malloc(len > 0 ? (size_t)len : 1)) == NULL)
		return CUSTODY_E_NOMEM;
	if (len > 0)
		memcpy(*outp, b, (size_t)len);
	*lenp = (size_t)len;
	return 0;
}

int
store_ca_get(struct store *st, const char *key_id, uint8_t **certp,
    size_t *certlenp, uint8_t **chainp, size_t *chainlenp)
{
	sqlite3_stmt *s;
	uint8_t *cert = NULL, *chain = NULL;
	size_t certlen = 0, chainlen = 0;
	int rc, r;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL && key_id != NULL &&
				       certp != NULL && certlenp != NULL &&
				       chainp != NULL && chainlenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_CA_GET];
	bind_text(s, 1, key_id);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE)
		r = CUSTODY_E_NOT_FOUND;
	else if (rc != SQLITE_ROW)
		r = sqlerr(st, rc, "read a CA certificate");
	else if ((r = col_blob(s, 0, &cert, &certlen)) == 0 &&
		 (r = col_blob(s, 1, &chain, &chainlen)) == 0) {
		*certp = cert;
		*certlenp = certlen;
		*chainp = chain;
		*chainlenp = chainlen;
		cert = chain = NULL;
	}
	stmt_done(s);
	free(cert);
	free(chain);
	return r;
}

/* ---- the lifecycle ------------------------------------------------------ */

int
store_key_set_last_exp(struct store *st, const char *id, int64_t exp)
{
	sqlite3_stmt *s;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && id != NULL && exp >= 0, CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_LAST_EXP];
	bind_text(s, 1, id);
	sqlite3_bind_int64(s, 2, exp);
	return run(st, s);
}

static int
job_check(const struct store_job *j)
{
	if (!id_valid(j->key_id) ||
	    (strcmp(j->kind, "rotate") != 0 &&
		strcmp(j->kind, "destroy") != 0) ||
	    (strcmp(j->stage, "start") != 0 &&
		strcmp(j->stage, "attest") != 0) ||
	    !nonempty(j->trigger) || !nonempty(j->reason) ||
	    !nonempty(j->principal) || j->rule == NULL || j->created_at <= 0 ||
	    (j->new_key_id[0] != '\0' && !id_valid(j->new_key_id)) ||
	    (strcmp(j->stage, "attest") == 0 &&
		(j->decision_seq < 0 || j->statement == NULL ||
		    j->statement_len == 0 || j->statement_len > INT_MAX))) {
		log_error_f(
		    "an invalid lifecycle job for key %.32s", j->key_id);
		return CUSTODY_E_INVALID_ARG;
	}
	return 0;
}

int
store_job_put(struct store *st, const struct store_job *j)
{
	sqlite3_stmt *s;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && j != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = job_check(j)) != 0)
		return r;
	s = st->stmt[S_JOB_PUT];
	bind_text(s, 1, j->key_id);
	bind_text(s, 2, j->kind);
	bind_text(s, 3, j->stage);
	bind_text(s, 4, j->new_key_id[0] ? j->new_key_id : NULL);
	bind_text(s, 5, j->trigger);
	bind_text(s, 6, j->reason);
	bind_text(s, 7, j->principal);
	bind_text(s, 8, j->rule);
	bind_text(s, 9, j->policy_sha256);
	if (strcmp(j->stage, "attest") == 0) {
		sqlite3_bind_int64(s, 10, j->decision_seq);
		sqlite3_bind_blob(
		    s, 11, j->statement, (int)j->statement_len, SQLITE_STATIC);
	} else {
		sqlite3_bind_null(s, 10);
		sqlite3_bind_null(s, 11);
	}
	sqlite3_bind_int64(s, 12, j->created_at);
	return run(st, s);
}

void
store_job_free(struct store_job *j)
{
	if (j == NULL)
		return;
	free(j->trigger);
	free(j->reason);
	free(j->principal);
	free(j->rule);
	free(j->policy_sha256);
	free(j->statement);
	free(j);
}

void
store_job_list_free(struct store_job **jobs, size_t n)
{
	size_t i;

	if (jobs == NULL)
		return;
	for (i = 0; i < n; i++)
		store_job_free(jobs[i]);
	free(jobs);
}

/* A copy of a short text column into buf (of size sz); "" for NULL. */
static int
col_copy(sqlite3_stmt *s, int col, char *buf, size_t sz)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	buf[0] = '\0';
	if (t == NULL)
		return 0;
	if (strlen((const char *)t) >= sz)
		return CUSTODY_E_STORE;
	memcpy(buf, t, strlen((const char *)t) + 1);
	return 0;
}

static int
job_from_row(sqlite3_stmt *s, struct store_job **jp)
{
	struct store_job *j;
	int r;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return CUSTODY_E_NOMEM;
	if ((r = col_copy(s, 0, j->key_id, sizeof(j->key_id))) != 0 ||
	    (r = col_copy(s, 1, j->kind, sizeof(j->kind))) != 0 ||
	    (r = col_copy(s, 2, j->stage, sizeof(j->stage))) != 0 ||
	    (r = col_copy(s, 3, j->new_key_id, sizeof(j->new_key_id))) != 0 ||
	    (r = col_text(s, 4, &j->trigger)) != 0 ||
	    (r = col_text(s, 5, &j->reason)) != 0 ||
	    (r = col_text(s, 6, &j->principal)) != 0 ||
	    (r = col_text(s, 7, &j->rule)) != 0 ||
	    (r = col_text(s, 8, &j->policy_sha256)) != 0)
		goto fail;
	j->decision_seq = sqlite3_column_type(s, 9) == SQLITE_NULL
			      ? -1
			      : sqlite3_column_int64(s, 9);
	if (sqlite3_column_type(s, 10) == SQLITE_BLOB &&
	    (r = col_blob(s, 10, &j->statement, &j->statement_len)) != 0)
		goto fail;
	j->created_at = sqlite3_column_int64(s, 11);
	if ((r = job_check(j)) != 0) {
		r = CUSTODY_E_STORE;
		goto fail;
	}
	*jp = j;
	return 0;
fail:
	store_job_free(j);
	return r == CUSTODY_E_NOMEM ? r : CUSTODY_E_STORE;
}

int
store_job_list(struct store *st, struct store_job ***jobsp, size_t *np)
{
	sqlite3_stmt *s;
	struct store_job **v = NULL, **tmp;
	size_t n = 0, cap = 0;
	int rc, r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && jobsp != NULL && np != NULL, CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_JOB_LIST];
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			if ((tmp = realloc(v, cap * sizeof(*v))) == NULL) {
				r = CUSTODY_E_NOMEM;
				goto out;
			}
			v = tmp;
		}
		if ((r = job_from_row(s, &v[n])) != 0)
			goto out;
		n++;
	}
	if (rc != SQLITE_DONE)
		r = sqlerr(st, rc, "list lifecycle jobs");
out:
	stmt_done(s);
	if (r != 0) {
		store_job_list_free(v, n);
		return r;
	}
	*jobsp = v;
	*np = n;
	return 0;
}

int
store_job_delete(struct store *st, const char *key_id)
{
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && key_id != NULL, CUSTODY_E_INVALID_ARG);
	bind_text(st->stmt[S_JOB_DELETE], 1, key_id);
	if ((r = run(st, st->stmt[S_JOB_DELETE])) != 0)
		return r;
	return sqlite3_changes(st->db) == 1 ? 0 : CUSTODY_E_NOT_FOUND;
}

int
store_event_get(
    struct store *st, const char *id, uint8_t sha256[32], char **resultp)
{
	sqlite3_stmt *s;
	int rc, r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && id != NULL && sha256 != NULL && resultp != NULL,
	    CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_EVENT_GET];
	bind_text(s, 1, id);
	if ((rc = sqlite3_step(s)) == SQLITE_DONE)
		r = CUSTODY_E_NOT_FOUND;
	else if (rc != SQLITE_ROW)
		r = sqlerr(st, rc, "read a lifecycle event");
	else if (sqlite3_column_bytes(s, 0) != 32)
		r = CUSTODY_E_STORE;
	else {
		memcpy(sha256, sqlite3_column_blob(s, 0), 32);
		r = col_text(s, 1, resultp);
	}
	stmt_done(s);
	return r;
}

int
store_event_put(struct store *st, const char *id, const uint8_t sha256[32],
    const char *result, int64_t now)
{
	sqlite3_stmt *s;
	int rc;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL && id != NULL && sha256 != NULL &&
				       result != NULL && now > 0,
	    CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_EVENT_PUT];
	bind_text(s, 1, id);
	sqlite3_bind_blob(s, 2, sha256, 32, SQLITE_STATIC);
	bind_text(s, 3, result);
	sqlite3_bind_int64(s, 4, now);
	rc = sqlite3_step(s);
	stmt_done(s);
	if (rc == SQLITE_CONSTRAINT)
		return CUSTODY_E_EXISTS;
	return rc == SQLITE_DONE ? 0 : sqlerr(st, rc, "record an event");
}

int
store_attestation_put(struct store *st, const struct store_attestation *a)
{
	sqlite3_stmt *s;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL && a != NULL &&
				       a->envelope != NULL && a->len > 0 &&
				       a->len <= INT_MAX && a->created_at > 0,
	    CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_ATT_PUT];
	bind_text(s, 1, a->key_id);
	bind_text(s, 2, a->other_key_id[0] ? a->other_key_id : NULL);
	bind_text(s, 3, a->kind);
	sqlite3_bind_int64(s, 4, a->decision_seq);
	sqlite3_bind_blob(s, 5, a->envelope, (int)a->len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, a->created_at);
	return run(st, s);
}

void
store_attestation_list_free(struct store_attestation *list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		free(list[i].envelope);
	free(list);
}

int
store_attestation_list(struct store *st, const char *key_id,
    struct store_attestation **listp, size_t *np)
{
	sqlite3_stmt *s;
	struct store_attestation *v = NULL, *tmp, *a;
	size_t n = 0, cap = 0;
	int rc, r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && key_id != NULL && listp != NULL && np != NULL,
	    CUSTODY_E_INVALID_ARG);
	s = st->stmt[S_ATT_LIST];
	bind_text(s, 1, key_id);
	sqlite3_bind_int64(s, 2, STORE_ATTESTATION_LIST_MAX);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			if ((tmp = realloc(v, cap * sizeof(*v))) == NULL) {
				r = CUSTODY_E_NOMEM;
				goto out;
			}
			v = tmp;
		}
		a = &v[n];
		memset(a, 0, sizeof(*a));
		if ((r = col_copy(s, 0, a->key_id, sizeof(a->key_id))) != 0 ||
		    (r = col_copy(s, 1, a->other_key_id,
			 sizeof(a->other_key_id))) != 0 ||
		    (r = col_copy(s, 2, a->kind, sizeof(a->kind))) != 0 ||
		    (r = col_blob(s, 4, &a->envelope, &a->len)) != 0)
			goto out;
		a->decision_seq = sqlite3_column_int64(s, 3);
		a->created_at = sqlite3_column_int64(s, 5);
		n++;
	}
	if (rc != SQLITE_DONE)
		r = sqlerr(st, rc, "list attestations");
out:
	stmt_done(s);
	if (r != 0) {
		store_attestation_list_free(v, n);
		return r;
	}
	*listp = v;
	*np = n;
	return 0;
}
