/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_TOKEN_H
#define CUSTODY_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alg.h"
#include "secret.h"

/*
 * The token module: the only code that touches PKCS#11 and the PIN.
 *
 * It loads a module by path (dlopen + C_GetFunctionList), initialises it with
 * CKF_OS_LOCKING_OK (never NULL arguments: SoftHSM2 then disables all its
 * locking), finds the token by the attributes of an RFC 7512 URI (never by
 * slot id), logs in once on a long-lived anchor session and gives each thread
 * its own session. Keys are named by their CKA_ID (TOKEN_ID_LEN random bytes);
 * nothing of PKCS#11 appears in this interface, so that the module can later
 * live in a process of its own behind a socket.
 *
 * Guarantees: keys are generated on the token with CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, CKA_SIGN true and CKA_EXTRACTABLE, CKA_DECRYPT, CKA_DERIVE,
 * CKA_UNWRAP false, and the attributes are read back: a key the token did not
 * protect is destroyed and refused. Every signature is verified with the
 * pinned public key before it is returned. A wrong PIN is tried once and never
 * again: from then on every function fails with the PIN error. Sessions lost
 * to CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT or CKR_USER_NOT_LOGGED_IN are reopened (finding the
 * token again by its URI and logging in again with the held PIN) and the
 * operation is tried once more; stale object handles are found again by
 * CKA_ID. A search by CKA_ID counts only in a session that is logged in, so
 * that "nothing found" never comes from private objects hidden by a logout.
 * The module never calls C_SetAttributeValue, C_CopyObject, C_WrapKey or any
 * decryption.
 *
 * Must be opened after the process has daemonised (forking after
 * C_Initialize breaks some modules). All functions are safe to call from
 * several threads, except token_open() and token_close(): every thread that
 * used the token must have been joined before token_close().
 */
struct token;

/* A key on the token, bound to its pinned public key. */
struct token_key;

#define TOKEN_ID_LEN 8

struct token_opts {
	const char *module;	  /* path of the PKCS#11 module */
	const char *uri;	  /* RFC 7512 token URI */
	const struct secret *pin; /* user PIN (copied) */
};

/*
 * Load, initialise, find the token, log in. Errors: CUSTODY_E_MODULE_LOAD,
 * CUSTODY_E_PARSE (bad URI), CUSTODY_E_TOKEN_NOT_FOUND (also when more than
 * one token matches), CUSTODY_E_PIN_INCORRECT, CUSTODY_E_PIN_LOCKED,
 * CUSTODY_E_TOKEN. *tp is new; close it with token_close().
 */
int token_open(const struct token_opts *o, struct token **tp);

/* Log out, close every session, finalise (if this module initialised the
 * library) and unload. NULL-safe. No other thread may be using t. */
void token_close(struct token *t);

/*
 * Initialise a new token for custody init: pick a slot whose token is not
 * initialised, C_InitToken with so_pin and the label given by the URI's
 * token= attribute (required), then C_InitPIN with user_pin (PIN lengths are
 * checked against the token's limits first). CUSTODY_E_TOKEN_EXISTS if a token
 * already has that label, CUSTODY_E_TOKEN_NOT_FOUND if no slot is free.
 */
int token_init(const char *module, const char *uri, const struct secret *so_pin,
    const struct secret *user_pin);

/* Human-readable name of the backend ("softhsm2", "generic"). */
const char *token_backend(const struct token *t);

/* The token's label (for key URIs). */
const char *token_label(const struct token *t);

/* Does the token have the mechanisms to generate and sign with alg? */
bool token_supports(const struct token *t, enum custody_alg alg);

/* The protection attributes of a private key as the token reports them. */
struct token_attrs {
	bool sensitive, always_sensitive, extractable, never_extractable;
	bool local, sign, decrypt, derive, unwrap, token, private_;
};

/* A key just generated. */
struct token_generated {
	uint8_t id[TOKEN_ID_LEN]; /* its CKA_ID */
	uint8_t *spki;		  /* SubjectPublicKeyInfo DER */
	size_t spki_len;
	char *kid;		  /* RFC 7638 JWK thumbprint */
	struct token_attrs attrs; /* as read back */
};

/*
 * Generate a key pair of alg on the token under a fresh random CKA_ID that no
 * object has, labelled prefix (at most 32 bytes) followed by the CKA_ID in
 * hex, so that "k_" gives the key id custody uses. The attributes are read
 * back, the private value is checked to be unreadable and a signature made with
 * the new key is verified (a pair-wise consistency test); if any check fails
 * both objects are destroyed and CUSTODY_E_UNPROTECTED_KEY (or the error met)
 * is returned. CUSTODY_E_MECHANISM if the token lacks the mechanisms. *gp is
 * new; free it with token_generated_free().
 */
int token_generate(struct token *t, enum custody_alg alg, const char *prefix,
    struct token_generated **gp);

void token_generated_free(struct token_generated *g);

/*
 * Bind to the key with CKA_ID id and pinned public key spki (SPKI DER, as
 * stored when it was created). Exactly one private key must carry the id
 * (CUSTODY_E_KEY_NOT_FOUND, CUSTODY_E_KEY_AMBIGUOUS), it must still report
 * itself sensitive, never extractable and local (CUSTODY_E_UNPROTECTED_KEY),
 * and the public object with that id must hold the same key
 * (CUSTODY_E_KEY_MISMATCH). *kp is new; free with token_key_free().
 */
int token_key_open(struct token *t, const uint8_t id[TOKEN_ID_LEN],
    enum custody_alg alg, const uint8_t *spki, size_t spki_len,
    struct token_key **kp);

void token_key_free(struct token_key *k);

/*
 * Sign msg with k (the token hashes or custody does, per alg; see
 * pubkey_tbs()) and verify the signature with the pinned public key before
 * returning it in custody's form (alg_sig_len() bytes; ECDSA raw r || s).
 * CUSTODY_E_SIG_VERIFY if it does not verify (the signature is wiped, never
 * returned), CUSTODY_E_KEY_NOT_FOUND if the key was destroyed. *sigp is new.
 */
int token_sign(struct token *t, struct token_key *k, const uint8_t *msg,
    size_t len, uint8_t **sigp, size_t *siglenp);

/* What token_destroy() did, for the destruction record. */
struct token_destroy_evidence {
	unsigned long destroyed; /* objects destroyed */
	unsigned long remaining; /* objects a search by CKA_ID found after */
};

/*
 * Destroy every object carrying CKA_ID id (the private and the public key),
 * then search for the id again. Returns 0 only if the search finds nothing;
 * CUSTODY_E_DESTROY_INCOMPLETE if objects remain; CUSTODY_E_KEY_NOT_FOUND if
 * there was nothing to destroy. *ev is filled in every case.
 */
int token_destroy(struct token *t, const uint8_t id[TOKEN_ID_LEN],
    struct token_destroy_evidence *ev);

#define TOKEN_LIST_MAX 4096 /* keys token_list_keys() returns */

/*
 * The CKA_IDs of the key objects (private or public) this program made on
 * the token: those labelled prefix followed by their CKA_ID in hex (as
 * token_generate() labels them), each id once, so that start-up can match
 * the token against the registry without touching another application's
 * keys. *idsp is new (n * TOKEN_ID_LEN bytes); more than TOKEN_LIST_MAX is
 * CUSTODY_E_TOO_LARGE.
 */
int token_list_keys(
    struct token *t, const char *prefix, uint8_t **idsp, size_t *np);

/* Number of objects (any class) with CKA_ID id, or a negative error. */
int token_count_objects(struct token *t, const uint8_t id[TOKEN_ID_LEN]);

/*
 * Data objects: small values kept in the token (G3: the last signed audit
 * checkpoint, outside the database). Each is a private token object of class
 * CKO_DATA with CKA_APPLICATION "custody" and the caller's CKA_LABEL, so that
 * reading one needs the PIN and custody never sees or touches another
 * application's objects, nor a public object planted without the PIN.
 * Searches count only in a logged-in session, as for keys.
 */
#define TOKEN_DATA_MAX	       65536 /* bytes in one value */
#define TOKEN_DATA_MAX_OBJECTS 8     /* objects token_data_get() returns */
#define TOKEN_DATA_LABEL_MAX   64    /* a label is 1..64 printable ASCII */

/* One data object's value (binary; may contain NULs). */
struct token_blob {
	uint8_t *data;
	size_t len;
};

/*
 * Store data (1..TOKEN_DATA_MAX bytes) under label, replacing any older
 * object with that label: the new object is created first and the older
 * ones are destroyed after, so that a crash in between leaves both, never
 * none. Errors: CUSTODY_E_INVALID_ARG (bad label, empty data),
 * CUSTODY_E_TOO_LARGE, CUSTODY_E_UNSUPPORTED when the token refuses data
 * objects (C_CreateObject answers CKR_FUNCTION_NOT_SUPPORTED,
 * CKR_TEMPLATE_INCONSISTENT, CKR_TEMPLATE_INCOMPLETE,
 * CKR_ATTRIBUTE_TYPE_INVALID or CKR_ATTRIBUTE_VALUE_INVALID; nothing was
 * stored), CUSTODY_E_TOKEN otherwise. An error after the new object was
 * created (an older one could not be destroyed) leaves the new object and
 * some older ones: token_data_get() returns them all, and the next put
 * removes them. Calls of put and delete in one process run one at a time.
 */
int token_data_put(
    struct token *t, const char *label, const uint8_t *data, size_t len);

/*
 * Every data object with label (normally one; two after a put interrupted
 * by a crash, in no particular order), read exactly, in *blobsp (new, NULL
 * when there is none; free with token_blobs_free()) and their number in *np
 * (0 if none: not an error). More than TOKEN_DATA_MAX_OBJECTS objects, or a
 * value over TOKEN_DATA_MAX bytes, is CUSTODY_E_TOO_LARGE; an empty value
 * (what some tokens report for a private value when not logged in) is
 * CUSTODY_E_TOKEN. Writes *blobsp and *np only on success.
 */
int token_data_get(
    struct token *t, const char *label, struct token_blob **blobsp, size_t *np);

/*
 * Destroy every data object with label, then search again: 0 only if none
 * is left (also when there was none); CUSTODY_E_DESTROY_INCOMPLETE if some
 * remain.
 */
int token_data_delete(struct token *t, const char *label);

/* Free n blobs as token_data_get() returned them. NULL-safe. */
void token_blobs_free(struct token_blob *b, size_t n);

#endif
