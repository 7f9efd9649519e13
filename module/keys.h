/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_KEYS_H
#define CUSTODY_KEYS_H

#include <stdint.h>

#include <jansson.h>

#include "alg.h"
#include "audit.h"
#include "policy.h"
#include "store.h"
#include "token.h"

/*
 * Key administration: the token and the registry together, so that neither
 * holds a key the other does not know. A key is generated in the token
 * first and registered second; if registering fails, the new objects are
 * destroyed. A key is destroyed in the token first (proved by a search on its
 * CKA_ID) and marked destroyed second. Each registry change commits in the
 * same transaction as its audit leaf (key.create, key.destroy; FORMATS.md
 * section 2), so the registry never holds a change the log does not.
 */

/* Who acts, and where: what key administration needs. */
struct keys_env {
	struct token *t;
	struct store *st;      /* for reads */
	struct audit *a;       /* writes: registry changes and their leaves */
	const char *principal; /* "unix:uid=0", "spiffe://...", ... */
	const char *rule;      /* the policy rule that allowed it, "(direct)" */
	const char *policy_sha256; /* hex, of the policy in force; NULL in
				    * direct mode (no policy decided) */
};

struct keys_create_req {
	const char *agent;   /* 1..256 bytes of UTF-8, no control chars */
	const char *owner;   /* same */
	const char *purpose; /* jwt, x509-ca, checkpoint, attestation */
	const char *task;    /* NULL or like agent (up to 128 bytes) */
	enum custody_alg alg;
	int64_t max_age; /* seconds, 0 = none */
	int64_t ttl;	 /* seconds, 0 = none */
};

/*
 * Create a key: refuse a second active key for (agent, purpose, task)
 * (CUSTODY_E_EXISTS) before generating anything, generate it in the token,
 * register it with id "k_" + hex(CKA_ID). *kp is the new record (and *genp,
 * if not NULL, what the token reported, including the attributes read back).
 */
int keys_create(const struct keys_env *env, const struct keys_create_req *req,
    int64_t now, struct store_key **kp, struct token_generated **genp);

/*
 * Bind to the token key of record k for signing (k must be active and held
 * by t). CUSTODY_E_STATE or CUSTODY_E_WRONG_TOKEN otherwise; see
 * token_key_open() for the other errors.
 */
int keys_open(
    struct token *t, const struct store_key *k, struct token_key **tkp);

/* keys_open() that also binds a retired checkpoint key, which co-signs the
 * log's checkpoints while it hands over (checkpoint.h). */
int keys_open_signer(
    struct token *t, const struct store_key *k, struct token_key **tkp);

/* The members every key leaf starts with (FORMATS.md section 2): event,
 * principal, key {id, kid}, policy {sha256, rule}, decision "allow". New
 * reference. */
json_t *keys_leaf_start(
    const struct keys_env *env, const char *event, const struct store_key *k);

/* A key.create leaf's detail for k (also a rotation's new_key). New
 * reference. */
json_t *keys_create_detail(
    const struct store_key *k, const struct token_attrs *attrs);

/* The policy's view of key record k (borrowing its strings). */
void keys_policy_key(const struct store_key *k, struct policy_key *pk);

/* Check a user-supplied text field (agent, owner, task, reason). */
int keys_check_text(const char *what, const char *s, size_t maxlen);

/*
 * A key record as JSON, as `custody key show --json` prints it and
 * custodyd's /v1/keys returns it: id, uri, agent, owner, purpose, alg,
 * state, task, created_at, retired_at, destroyed_at (RFC 3339), max_age,
 * ttl (seconds), predecessor, successor, kid, spki (base64 DER),
 * destroy_reason; members that do not apply are left out. New reference.
 */
json_t *keys_json(const struct store_key *k);

/* The protection attributes a token reported for a new key, as the
 * key.create leaf carries them: sensitive, always_sensitive, extractable,
 * never_extractable, local. New reference. */
json_t *keys_attrs_json(const struct token_attrs *a);

#endif
