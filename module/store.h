/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_STORE_H
#define CUSTODY_STORE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The store: one SQLite database (WAL, synchronous=FULL, foreign keys on)
 * holding the key registry of ARCHITECTURE.md section 3 (and, from the audit
 * issue on, the audit log, so that a key change and its audit leaf commit in
 * one transaction). The schema is versioned (PRAGMA user_version) and
 * migrated forward on open inside one transaction; a database newer than
 * this program is refused (CUSTODY_E_SCHEMA). Nothing else touches SQLite.
 *
 * A struct store is used by one thread at a time.
 */
struct store;

#define STORE_KEY_ID_LEN   18	 /* "k_" + 16 hex digits */
#define STORE_CKA_ID_LEN   8	 /* the CKA_ID the key id encodes */
#define STORE_SPKI_MAX	   16384 /* bytes; RSA-3072 needs about 420 */
#define STORE_KEY_LIST_MAX 10000 /* records store_key_list() returns */

/* One key record. Strings are owned by the record; NULL means absent. */
struct store_key {
	char id[STORE_KEY_ID_LEN + 1]; /* "k_" + hex(cka_id) */
	char *agent;	    /* e.g. spiffe://example.org/agent/planner */
	char *owner;	    /* human or team */
	char *purpose;	    /* jwt, x509-ca, checkpoint, attestation */
	char *alg;	    /* ed25519, ecdsa-p256, ecdsa-p384, rsa-pss-3072 */
	char *state;	    /* active, retired, destroyed */
	char *task;	    /* JIT task or NULL */
	int64_t created_at; /* Unix seconds */
	int64_t retired_at; /* 0 if never */
	int64_t destroyed_at; /* 0 if never */
	int64_t max_age;      /* seconds, 0 = none */
	int64_t ttl;	      /* seconds, 0 = none */
	char *predecessor;    /* key id or NULL */
	char *successor;      /* key id or NULL */
	uint8_t *spki;	      /* SubjectPublicKeyInfo DER */
	size_t spki_len;
	char *kid;	      /* RFC 7638 JWK thumbprint (base64url) */
	char *token;	      /* URI of the token that holds it */
	char *destroy_reason; /* or NULL */
	int64_t last_exp;     /* latest expiry of what it signed, 0: none */
};

/*
 * Open (creating if needed, mode 0600) the database at path and bring its
 * schema up to date. A symbolic link at path is refused. An existing file
 * keeps its mode (a warning is logged if others can read it); SQLite gives
 * the -wal and -shm files the mode of the database file. Returns
 * CUSTODY_E_STORE (SQLite's message logged), CUSTODY_E_SCHEMA (a schema
 * version newer than this program's, or a negative one), CUSTODY_E_IO
 * (creating the file failed), CUSTODY_E_NOMEM. *stp is written only on
 * success.
 */
int store_open(const char *path, struct store **stp);

/* Close; NULL-safe. */
void store_close(struct store *st);

/*
 * Take WAL checkpoints out of st's commits: SQLite otherwise makes the
 * commit that grows the write-ahead log past 1000 pages copy the log into
 * the database file and fsync it, a pause of milliseconds for whoever waits
 * on that commit. Here a thread with its own connection to path (the file
 * st has open) runs a PASSIVE checkpoint instead, while st's connection goes
 * on committing. The log starts over only after a checkpoint that copied
 * all of it, which a busy writer keeps the thread from doing: when it holds
 * 4000 pages, the committing connection checkpoints itself (copying what the
 * thread has not, and one sync), so the WAL stays bounded. For the one
 * connection that writes (the audit log's); once per store; store_close
 * stops the thread first. Returns what store_open returns, or
 * CUSTODY_E_NOMEM.
 */
int store_wal_offload(struct store *st, const char *path);

/* Schema version of the open database (the newest this program knows). */
int store_schema_version(const struct store *st);

/*
 * Explicit transactions (BEGIN IMMEDIATE / COMMIT / ROLLBACK) for callers that
 * need several changes to commit together. Without one, each call below is
 * its own transaction; inside one, a failed call undoes only its own change
 * and leaves the transaction open. Transactions do not nest: store_begin()
 * with one open, or store_commit() with none, is a precondition failure
 * (CUSTODY_E_INVALID_ARG). store_commit() returns only after the commit is
 * durable (synchronous=FULL); if it fails, the transaction has been rolled
 * back (a failed commit is never retried). store_rollback() with no
 * transaction open does nothing and returns 0, so that it can be called on
 * any error path.
 */
int store_begin(struct store *st);
int store_commit(struct store *st);
int store_rollback(struct store *st);

/*
 * Insert k. CUSTODY_E_EXISTS if the id or CKA_ID is taken, or if k is active
 * and an active key already exists for the same (agent, purpose, task), where
 * a NULL task is its own value; CUSTODY_E_INVALID_ARG for a bad field (unknown
 * purpose/alg/state, empty agent/owner/kid/token or task, negative durations,
 * created_at not positive, no SPKI or one over STORE_SPKI_MAX bytes, an id
 * that is not "k_" + 16 lower-case hex digits, a predecessor or successor
 * that is malformed, is k itself or names no key), or for timestamps that do
 * not match the state: an active key has no retired_at, destroyed_at or
 * destroy_reason; a retired key has retired_at and no destroyed_at; a
 * destroyed key has destroyed_at and destroy_reason. The log names the field.
 */
int store_key_insert(struct store *st, const struct store_key *k);

/* Look up id. CUSTODY_E_KEY_NOT_FOUND if absent. *kp is new. */
int store_key_get(struct store *st, const char *id, struct store_key **kp);

/*
 * All keys, oldest first (by created_at, then id), optionally only those in
 * state (NULL: all; an unknown state name is CUSTODY_E_INVALID_ARG).
 * *keysp is a new array of *np new records (NULL and 0 when there are none);
 * free with store_key_list_free(). More than STORE_KEY_LIST_MAX matching
 * records is CUSTODY_E_TOO_LARGE (there is no pagination yet).
 */
int store_key_list(
    struct store *st, const char *state, struct store_key ***keysp, size_t *np);

/*
 * Move key id from state from to state to at time t (sets retired_at or
 * destroyed_at), recording reason for a destruction. The change is
 * conditional on the key still being in state from. Allowed: active ->
 * retired, active -> destroyed, retired -> destroyed; any other pair of
 * known states is CUSTODY_E_STATE. An unknown state name, t <= 0, or a
 * destruction without a non-empty reason is CUSTODY_E_INVALID_ARG; reason is
 * ignored for a retirement. CUSTODY_E_KEY_NOT_FOUND if absent,
 * CUSTODY_E_STATE if it is not in state from.
 */
int store_key_set_state(struct store *st, const char *id, const char *from,
    const char *to, int64_t t, const char *reason);

/*
 * Record successor as the key that replaced id (the rotation chain; the new
 * key is inserted with predecessor = id). Write-once: setting the same
 * successor again succeeds, a different one is CUSTODY_E_STATE.
 * CUSTODY_E_KEY_NOT_FOUND if id is absent; CUSTODY_E_INVALID_ARG if successor
 * is malformed, is id, or names no key.
 */
int store_key_set_successor(
    struct store *st, const char *id, const char *successor);

/* Free a record, or an array of n records and the array; NULL-safe. */
/*
 * The CKA_ID that key id names: id must be "k_" and exactly 16 lower-case
 * hex digits (CUSTODY_E_PARSE otherwise).
 */
int store_key_id_parse(const char *id, uint8_t cka[STORE_CKA_ID_LEN]);

/* ---- audit log (migration 2) ---- */

#define STORE_LEAF_MAX 65535 /* tlog-tiles entries carry a uint16 length */

/*
 * Savepoint "item" inside an open transaction: the audit writer gives each
 * append of a batch one, so that one failing item is undone alone.
 * store_rollback_to() undoes the item's changes and ends the savepoint.
 */
int store_savepoint(struct store *st);
int store_release(struct store *st);
int store_rollback_to(struct store *st);

/* Number of leaves (last seq + 1), in O(log n): CUSTODY_E_STORE if the
 * last leaf is not the stored tree's last, or the tree holds more. */
int store_leaf_count(struct store *st, uint64_t *np);

/* Leaf seq: its exact bytes (2..STORE_LEAF_MAX) and its leaf hash.
 * CUSTODY_E_EXISTS if seq is taken. */
int store_leaf_put(struct store *st, uint64_t seq, const uint8_t *data,
    size_t len, const uint8_t hash[32]);

/* Leaf seq; *datap is new (free(3) it). CUSTODY_E_NOT_FOUND if absent. */
int store_leaf_get(struct store *st, uint64_t seq, uint8_t **datap,
    size_t *lenp, uint8_t hash[32]);

/* Hash of complete Merkle subtree (level, idx) (merkle.h). A missing node
 * is CUSTODY_E_STORE: nodes are written with their leaves. */
int store_node_put(
    struct store *st, unsigned level, uint64_t idx, const uint8_t hash[32]);
int store_node_get(
    struct store *st, unsigned level, uint64_t idx, uint8_t hash[32]);

/* Fill *ms (merkle.h) so that it reads the subtree hashes stored in st. */
struct merkle_store;
void store_merkle(struct store *st, struct merkle_store *ms);

/* ---- checkpoints (migration 3) ---- */

/* Record the signed checkpoint of tree size `size` (> 0), which must be
 * larger than every one recorded (CUSTODY_E_STATE otherwise: sizes only
 * grow, enforced by the schema too). */
int store_checkpoint_put(struct store *st, uint64_t size,
    const uint8_t root[32], const char *note, size_t len, int64_t now);

/* The checkpoint of the largest size; *notep is new and NUL-terminated.
 * CUSTODY_E_NOT_FOUND if none was signed. */
int store_checkpoint_last(struct store *st, uint64_t *sizep, uint8_t root[32],
    char **notep, size_t *lenp);

/* The checkpoint of the smallest size larger than `after` (0: the first);
 * as store_checkpoint_last. Walks every checkpoint in order of size. */
int store_checkpoint_next(struct store *st, uint64_t after, uint64_t *sizep,
    uint8_t root[32], char **notep, size_t *lenp);

/*
 * The run marker of the service (custodyd): written with its service.start
 * leaf, removed with its service.stop leaf, so one found at start means that
 * the last run did not stop cleanly. At most one.
 */
struct store_run {
	int64_t pid;	    /* of the process that started */
	int64_t started_at; /* Unix seconds */
};

/* The marker, or CUSTODY_E_NOT_FOUND. */
int store_run_get(struct store *st, struct store_run *runp);
/* Set the marker (replacing any). */
int store_run_begin(struct store *st, const struct store_run *rm);
/* Remove the marker; CUSTODY_E_NOT_FOUND if there was none. */
int store_run_end(struct store *st);

void store_key_free(struct store_key *k);
void store_key_list_free(struct store_key **keys, size_t n);

/*
 * The CA certificate of the x509-ca key key_id (DER) and the chain above it
 * (DER certificates one after the other, the issuer first; empty for a
 * self-signed one), installed at now. Called inside the transaction of its
 * audit leaf. CUSTODY_E_INVALID_ARG for a key_id not in the registry.
 */
int store_ca_put(struct store *st, const char *key_id, const uint8_t *cert,
    size_t certlen, const uint8_t *chain, size_t chainlen, int64_t now);

/* The last CA certificate installed for key_id, and its chain (free(3)
 * both); CUSTODY_E_NOT_FOUND when none was. */
int store_ca_get(struct store *st, const char *key_id, uint8_t **certp,
    size_t *certlenp, uint8_t **chainp, size_t *chainlenp);

/* ---- the lifecycle (migration 7) ---- */

/* Raise key id's last_exp to exp (never lowers it; an unknown id or a lower
 * exp changes nothing). */
int store_key_set_last_exp(struct store *st, const char *id, int64_t exp);

/* A rotation or destruction under way (docs/LIFECYCLE.md), one per key. */
struct store_job {
	char key_id[STORE_KEY_ID_LEN + 1];
	char kind[8];  /* rotate, destroy */
	char stage[8]; /* start, attest */
	char new_key_id[STORE_KEY_ID_LEN +
			1]; /* rotate at attest: the new key */
	char *trigger, *reason, *principal, *rule;
	char *policy_sha256;  /* or NULL */
	int64_t decision_seq; /* attest: the key.rotate/key.destroy leaf */
	uint8_t *statement;   /* attest: the in-toto statement, exact bytes */
	size_t statement_len;
	int64_t created_at;
};

/* Write j (replacing the job of its key). */
int store_job_put(struct store *st, const struct store_job *j);
/* Every job, oldest first; free with store_job_list_free(). */
int store_job_list(struct store *st, struct store_job ***jobsp, size_t *np);
/* Remove key_id's job; CUSTODY_E_NOT_FOUND if there was none. */
int store_job_delete(struct store *st, const char *key_id);
void store_job_free(struct store_job *j);
void store_job_list_free(struct store_job **jobs, size_t n);

/*
 * A lifecycle event by its idempotency id: the SHA-256 of the request that
 * posted it and the result it got (JSON text, *resultp new), or
 * CUSTODY_E_NOT_FOUND. store_event_put() records one (CUSTODY_E_EXISTS if
 * the id is taken).
 */
int store_event_get(
    struct store *st, const char *id, uint8_t sha256[32], char **resultp);
int store_event_put(struct store *st, const char *id, const uint8_t sha256[32],
    const char *result, int64_t now);

/* An attestation envelope about key_id (and other_key_id, the old key of a
 * rotation, or NULL), kind rotation or destruction. */
struct store_attestation {
	char key_id[STORE_KEY_ID_LEN + 1];
	char other_key_id[STORE_KEY_ID_LEN + 1]; /* "" if none */
	char kind[16];
	int64_t decision_seq;
	uint8_t *envelope;
	size_t len;
	int64_t created_at;
};

#define STORE_ATTESTATION_LIST_MAX 1000

int store_attestation_put(struct store *st, const struct store_attestation *a);
/* The attestations about key_id (as subject or as the old key), oldest
 * first, at most STORE_ATTESTATION_LIST_MAX; free with
 * store_attestation_list_free(). */
int store_attestation_list(struct store *st, const char *key_id,
    struct store_attestation **listp, size_t *np);
void store_attestation_list_free(struct store_attestation *list, size_t n);

#endif
