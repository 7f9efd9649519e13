/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_KEYRING_H
#define CUSTODY_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"
#include "token.h"

/*
 * The keyring: custodyd's in-memory view of the registry's active and
 * retired keys, so that a request finds its key by id or by (agent,
 * purpose, task) without a database read, and a key is bound to its token
 * object (token_key_open(): a search and a public-key parse, about 0.1 ms)
 * once, on its first signature, not per request. While custodyd runs it is
 * the only writer of the registry, so the view stays true as long as every
 * change it makes is also made here: keyring_add() for a key it creates.
 * A rotation or destruction stops the key first (keyring_stop()) and hands
 * the ring the new record once it is durable (keyring_update()).
 *
 * Safe for any number of threads: lookups share a read lock; a key found
 * has a reference of the caller's (keyring_put()), so a key removed from
 * the ring meanwhile stays valid until the last reference is dropped.
 */
struct keyring;

struct keyring_key {
	const struct store_key *rec; /* the registry record (immutable) */
	json_t *jwk;		     /* purpose jwt: its JWK; else NULL */
};

/*
 * Load every active and retired key of st (records only: nothing is bound
 * to the token yet) and the JWK of each jwt key, whose "alg" for Ed25519 is
 * ed25519_alg ("EdDSA" or "Ed25519"). t is borrowed and must outlive the
 * ring. *krp is new.
 */
int keyring_open(struct token *t, struct store *st, const char *ed25519_alg,
    struct keyring **krp);

/* Free the ring; every reference must have been dropped. NULL-safe. */
void keyring_close(struct keyring *kr);

/* The key with id (active or retired), or CUSTODY_E_KEY_NOT_FOUND. */
int keyring_get(struct keyring *kr, const char *id, struct keyring_key **kp);

/* The active key of (agent, purpose, task) (task NULL: the task-less one),
 * or CUSTODY_E_KEY_NOT_FOUND. */
int keyring_find(struct keyring *kr, const char *agent, const char *purpose,
    const char *task, struct keyring_key **kp);

/* Drop a reference. NULL-safe. */
void keyring_put(struct keyring_key *k);

/*
 * Add a record just created (rec becomes the ring's; it is freed on error
 * too). CUSTODY_E_EXISTS if the id is in the ring already.
 */
int keyring_add(struct keyring *kr, struct store_key *rec);

/*
 * Every key of purpose (NULL: all), in the order they were created, each
 * with a reference: free with keyring_list_free().
 */
int keyring_list(struct keyring *kr, const char *purpose,
    struct keyring_key ***keysp, size_t *np);
void keyring_list_free(struct keyring_key **keys, size_t n);

/*
 * Sign msg with k (which must be active) as token_sign() does, binding it to
 * its token object first if this is its first signature. CUSTODY_E_STATE if
 * k is not active. *sigp is new.
 */
int keyring_sign(struct keyring *kr, struct keyring_key *k, const uint8_t *msg,
    size_t len, uint8_t **sigp, size_t *siglenp);

/*
 * Stop key id from signing: once this returns, no keyring_sign() with it is
 * running and every later one fails with CUSTODY_E_STATE. What a rotation or
 * a destruction does first, before its leaf, so that no credential signed
 * by the key can follow the leaf that ends its active period.
 * keyring_resume() undoes it (for a step that failed before its leaf) if the
 * key is still active. CUSTODY_E_KEY_NOT_FOUND if id is not in the ring.
 */
int keyring_stop(struct keyring *kr, const char *id);
int keyring_resume(struct keyring *kr, const char *id);

/*
 * The registry changed the record of a key in the ring (rec, taken, also
 * on error): a retired key's record replaces the old one (it can no longer
 * sign); a destroyed key leaves the ring (and the JWKS). Callers holding the
 * old entry keep a valid, stopped one.
 */
int keyring_update(struct keyring *kr, struct store_key *rec);

/*
 * Record that k signed a credential valid until exp (Unix seconds). 1 if
 * exp is later than every one handed to the store so far (the caller then
 * stores it: store_key_set_last_exp()), else 0.
 */
int keyring_note_exp(struct keyring_key *k, int64_t exp);

/* The latest expiry of what k signed (0: nothing). */
int64_t keyring_last_exp(const struct keyring_key *k);

/* Number of keys in the ring. */
size_t keyring_size(struct keyring *kr);

#endif
