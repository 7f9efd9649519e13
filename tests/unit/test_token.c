/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of token.c through the mock, fault-injecting PKCS#11 function
 * list of mock_p11.c: login discipline, session recovery, verify-after-sign,
 * attribute read-back, destruction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mock_p11.h"
#include "pubkey.h"
#include "secret.h"
#include "token-priv.h"
#include "token.h"

#define USER_PIN "1234"
#define SO_PIN	 "87654321"
#define URI	 "pkcs11:token=custody"

static const uint8_t MSG[] = "a message to sign";

static struct secret *
pin(const char *s)
{
	struct secret *p = NULL;

	assert_int_equal(secret_from_bytes(s, strlen(s), &p), 0);
	return p;
}

static void
reset_token(void)
{
	struct mock_p11_opts o = {.initialized = 1,
	    .label = "custody",
	    .so_pin = SO_PIN,
	    .user_pin = USER_PIN};

	mock_p11_reset(&o);
}

static int
open_with(const char *uri, const char *pinstr, struct token **tp)
{
	struct secret *p = pin(pinstr);
	struct token_opts o = {.module = NULL, .uri = uri, .pin = p};
	int r;

	r = token_open_functions(mock_p11_functions(), &o, tp);
	secret_free(p);
	return r;
}

static struct token *
open_ok(void)
{
	struct token *t = NULL;

	reset_token();
	assert_int_equal(open_with(URI, USER_PIN, &t), 0);
	return t;
}

/* Generate a key of alg and bind to it as a signing key. */
static struct token_key *
new_key(struct token *t, enum custody_alg alg, struct token_generated **gp)
{
	struct token_generated *g = NULL;
	struct token_key *k = NULL;

	assert_int_equal(token_generate(t, alg, "k_", &g), 0);
	assert_int_equal(
	    token_key_open(t, g->id, alg, g->spki, g->spki_len, &k), 0);
	if (gp != NULL)
		*gp = g;
	else
		token_generated_free(g);
	return k;
}

/* C_Initialize gets CKF_OS_LOCKING_OK (never NULL: SoftHSM2 would then run
 * without locks), the user is logged in, and close leaves nothing open. */
static void
test_open_os_locking_and_close(void **state)
{
	struct token *t = open_ok();

	(void)state;
	assert_int_equal(mock_p11_init_flags(), (long)CKF_OS_LOCKING_OK);
	assert_int_equal(mock_p11_is_logged_in(), 1);
	assert_string_equal(token_label(t), "custody");
	assert_string_equal(token_backend(t), "generic");
	token_close(t);
	assert_int_equal(mock_p11_open_sessions(), 0);
	assert_int_equal(mock_p11_calls("C_Finalize"), 1);
}

/* A wrong PIN is tried exactly once and reported as such. */
static void
test_wrong_pin_tried_once(void **state)
{
	struct token *t = NULL;

	(void)state;
	reset_token();
	assert_int_equal(open_with(URI, "9999", &t), CUSTODY_E_PIN_INCORRECT);
	assert_null(t);
	assert_int_equal(mock_p11_login_attempts(), 1);
	assert_int_equal(mock_p11_calls("C_Login"), 1);
}

/* A token reporting a locked PIN is not even tried. */
static void
test_locked_pin_not_tried(void **state)
{
	struct mock_p11_opts o = {.initialized = 1,
	    .label = "custody",
	    .so_pin = SO_PIN,
	    .user_pin = USER_PIN,
	    .pin_lock_after = 1};
	struct token *t = NULL;

	(void)state;
	mock_p11_reset(&o);
	assert_int_equal(open_with(URI, "0000", &t), CUSTODY_E_PIN_INCORRECT);
	/* the mock now reports CKF_USER_PIN_LOCKED */
	assert_int_equal(open_with(URI, USER_PIN, &t), CUSTODY_E_PIN_LOCKED);
	assert_int_equal(mock_p11_login_attempts(), 1);
}

/* Logged in already by someone else in the process: the module did not
 * check custody's PIN, so custody does not ride on that login (P7). */
static void
test_open_refuses_foreign_login(void **state)
{
	struct token *t = NULL;

	(void)state;
	reset_token();
	mock_p11_fail("C_Login", CKR_USER_ALREADY_LOGGED_IN, 1, 1);
	assert_int_equal(open_with(URI, "any-pin", &t), CUSTODY_E_TOKEN);
	assert_null(t);
	assert_int_equal(mock_p11_open_sessions(), 0);
}

static void
test_token_not_found(void **state)
{
	struct token *t = NULL;

	(void)state;
	reset_token();
	assert_int_equal(open_with("pkcs11:token=other", USER_PIN, &t),
	    CUSTODY_E_TOKEN_NOT_FOUND);
	assert_int_equal(
	    open_with("pkcs11:slot-id=1", USER_PIN, &t), CUSTODY_E_PARSE);
	assert_int_equal(mock_p11_calls("C_Login"), 0);
}

/* Every algorithm: generated, attributes read back, signs, verifies with a
 * public key parsed independently from the SPKI the token module exported. */
static void
test_generate_and_sign_each_alg(void **state)
{
	struct token *t = open_ok();
	int a;

	(void)state;
	for (a = 0; a < CUSTODY_ALG_COUNT; a++) {
		struct token_generated *g = NULL;
		struct token_key *k = new_key(t, (enum custody_alg)a, &g);
		struct pubkey *pk = NULL;
		uint8_t *sig = NULL;
		size_t siglen = 0;

		assert_true(g->attrs.sensitive && g->attrs.always_sensitive &&
			    !g->attrs.extractable &&
			    g->attrs.never_extractable && g->attrs.local &&
			    g->attrs.sign && !g->attrs.decrypt);
		assert_non_null(g->kid);
		assert_int_equal(strlen(g->kid), 43);
		assert_int_equal(
		    token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
		assert_int_equal(siglen, alg_sig_len((enum custody_alg)a));
		assert_int_equal(pubkey_from_spki((enum custody_alg)a, g->spki,
				     g->spki_len, &pk),
		    0);
		assert_int_equal(
		    pubkey_verify(pk, MSG, sizeof(MSG), sig, siglen), 0);
		free(sig);
		pubkey_free(pk);
		token_key_free(k);
		token_generated_free(g);
	}
	/* two objects per key */
	assert_int_equal(mock_p11_object_count(), 2 * CUSTODY_ALG_COUNT);
	token_close(t);
}

/* A signature that does not verify is never returned. */
static void
test_corrupt_signature_withheld(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ECDSA_P256, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;

	(void)state;
	mock_p11_corrupt_signatures(1);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_SIG_VERIFY);
	assert_null(sig);
	assert_int_equal(siglen, 0);
	mock_p11_corrupt_signatures(0);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	free(sig);
	token_key_free(k);
	token_close(t);
}

/* Losing every session and the login (a device reset) is recovered: a new
 * anchor session, one login with the held PIN, and the signature. */
static void
test_session_loss_recovered(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ED25519, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;

	(void)state;
	assert_int_equal(mock_p11_calls("C_Login"), 1);
	mock_p11_invalidate_sessions();
	assert_int_equal(mock_p11_is_logged_in(), 0);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	assert_int_equal(mock_p11_calls("C_Login"), 2);
	assert_int_equal(mock_p11_is_logged_in(), 1);
	free(sig);
	/* and generation and destruction work on the new sessions */
	token_key_free(k);
	k = new_key(t, CUSTODY_ALG_ECDSA_P256, NULL);
	token_key_free(k);
	token_close(t);
}

/* One lost session (the others fine) is reopened without a new login. */
static void
test_one_session_lost(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ECDSA_P384, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;

	(void)state;
	mock_p11_fail("C_SignInit", CKR_SESSION_HANDLE_INVALID, 1, 1);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	assert_int_equal(mock_p11_calls("C_Login"), 1);
	free(sig);
	token_key_free(k);
	token_close(t);
}

/* CKR_DEVICE_REMOVED (a token pulled and put back): the token is found
 * again by its label, a new anchor logs in, and the signature is made. */
static void
test_device_removed_recovered(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ECDSA_P256, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;

	(void)state;
	mock_p11_invalidate_sessions();
	mock_p11_fail("C_SignInit", CKR_DEVICE_REMOVED, 1, 1);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	assert_int_equal(mock_p11_calls("C_Login"), 2);
	free(sig);
	token_key_free(k);
	token_close(t);
}

/* A PIN refused at re-login is not tried again, however often asked. */
static void
test_relogin_pin_refused_never_retried(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ED25519, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;
	unsigned long logins;

	(void)state;
	mock_p11_fail("C_Login", CKR_PIN_INCORRECT, 1, -1);
	mock_p11_invalidate_sessions();
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_PIN_INCORRECT);
	logins = mock_p11_calls("C_Login");
	assert_int_equal(logins, 2);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_PIN_INCORRECT);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_PIN_INCORRECT);
	assert_int_equal(mock_p11_calls("C_Login"), logins);
	assert_null(sig);
	token_key_free(k);
	token_close(t);
}

/* Other errors are reported, not retried. */
static void
test_device_error_reported(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ED25519, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;
	unsigned long before = mock_p11_calls("C_SignInit");

	(void)state;
	mock_p11_fail("C_Sign", CKR_DEVICE_ERROR, 1, 1);
	assert_int_equal(
	    token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), CUSTODY_E_TOKEN);
	assert_int_equal(mock_p11_calls("C_SignInit"), before + 1);
	assert_null(sig);
	/* the session is usable again afterwards */
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	free(sig);
	token_key_free(k);
	token_close(t);
}

/* A stale object handle is found again by CKA_ID. */
static void
test_stale_handle_refound(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ECDSA_P256, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;

	(void)state;
	mock_p11_fail("C_SignInit", CKR_KEY_HANDLE_INVALID, 1, 1);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	free(sig);
	token_key_free(k);
	token_close(t);
}

/* A token that reports the new key extractable: the key is destroyed and
 * refused (threat P3). Each protection attribute is checked. */
static void
test_unprotected_key_refused(void **state)
{
	static const struct {
		CK_ATTRIBUTE_TYPE type;
		CK_BBOOL lie;
	} lies[] = {
	    {CKA_EXTRACTABLE, CK_TRUE},
	    {CKA_SENSITIVE, CK_FALSE},
	    {CKA_NEVER_EXTRACTABLE, CK_FALSE},
	    {CKA_ALWAYS_SENSITIVE, CK_FALSE},
	    {CKA_LOCAL, CK_FALSE},
	    {CKA_DECRYPT, CK_TRUE},
	    {CKA_UNWRAP, CK_TRUE},
	};
	struct token *t = open_ok();
	struct token_generated *g = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		mock_p11_lie_attribute(lies[i].type, lies[i].lie);
		assert_int_equal(
		    token_generate(t, CUSTODY_ALG_ECDSA_P256, "k_", &g),
		    CUSTODY_E_UNPROTECTED_KEY);
		assert_null(g);
		assert_int_equal(mock_p11_object_count(), 0);
		mock_p11_lie_attribute_clear();
	}
	token_close(t);
}

/* A key that loses its protection later is refused when opened. */
static void
test_key_open_checks_attrs_and_pin(void **state)
{
	struct token *t = open_ok();
	struct token_generated *g = NULL, *g2 = NULL;
	struct token_key *k = new_key(t, CUSTODY_ALG_ED25519, &g), *k2 = NULL;

	(void)state;
	token_key_free(k);
	k = NULL;
	mock_p11_lie_attribute(CKA_EXTRACTABLE, CK_TRUE);
	assert_int_equal(token_key_open(t, g->id, CUSTODY_ALG_ED25519, g->spki,
			     g->spki_len, &k),
	    CUSTODY_E_UNPROTECTED_KEY);
	mock_p11_lie_attribute_clear();
	/* the pinned public key must be the token's (threat P4) */
	k2 = new_key(t, CUSTODY_ALG_ED25519, &g2);
	assert_int_equal(token_key_open(t, g->id, CUSTODY_ALG_ED25519, g2->spki,
			     g2->spki_len, &k),
	    CUSTODY_E_KEY_MISMATCH);
	assert_int_equal(token_key_open(t, g->id, CUSTODY_ALG_ECDSA_P256,
			     g->spki, g->spki_len, &k),
	    CUSTODY_E_PARSE);
	assert_null(k);
	token_key_free(k2);
	token_generated_free(g);
	token_generated_free(g2);
	token_close(t);
}

static void
test_mechanism_missing(void **state)
{
	struct token *t = NULL;
	struct token_generated *g = NULL;

	(void)state;
	reset_token();
	mock_p11_remove_mechanism(CKM_EDDSA);
	assert_int_equal(open_with(URI, USER_PIN, &t), 0);
	assert_false(token_supports(t, CUSTODY_ALG_ED25519));
	assert_true(token_supports(t, CUSTODY_ALG_ECDSA_P256));
	assert_int_equal(token_generate(t, CUSTODY_ALG_ED25519, "k_", &g),
	    CUSTODY_E_MECHANISM);
	assert_int_equal(mock_p11_calls("C_GenerateKeyPair"), 0);
	token_close(t);
}

/* Destroy deletes both objects and proves it; the key cannot sign again. */
static void
test_destroy(void **state)
{
	struct token *t = open_ok();
	struct token_generated *g = NULL;
	struct token_key *k = new_key(t, CUSTODY_ALG_ECDSA_P256, &g),
			 *k2 = NULL;
	struct token_destroy_evidence ev;
	uint8_t *sig = NULL;
	size_t siglen = 0;

	(void)state;
	assert_int_equal(token_count_objects(t, g->id), 2);
	assert_int_equal(token_destroy(t, g->id, &ev), 0);
	assert_int_equal(ev.destroyed, 2);
	assert_int_equal(ev.remaining, 0);
	assert_int_equal(token_count_objects(t, g->id), 0);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(token_key_open(t, g->id, CUSTODY_ALG_ECDSA_P256,
			     g->spki, g->spki_len, &k2),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(token_destroy(t, g->id, &ev), CUSTODY_E_KEY_NOT_FOUND);
	token_key_free(k);
	token_generated_free(g);
	token_close(t);
}

/* A token that says it destroyed but did not (threat K7) is caught. */
static void
test_destroy_noop_detected(void **state)
{
	struct token *t = open_ok();
	struct token_generated *g = NULL;
	struct token_key *k = new_key(t, CUSTODY_ALG_ED25519, &g);
	struct token_destroy_evidence ev;

	(void)state;
	mock_p11_destroy_noop(1);
	assert_int_equal(
	    token_destroy(t, g->id, &ev), CUSTODY_E_DESTROY_INCOMPLETE);
	assert_int_equal(ev.remaining, 2);
	token_key_free(k);
	token_generated_free(g);
	token_close(t);
}

/* custody init: C_InitToken on a free slot, C_InitPIN, found again by label
 * although the slot id changed; never reinitialises. */
static void
test_init_token(void **state)
{
	struct secret *so = pin(SO_PIN), *user = pin(USER_PIN),
		      *shrt = pin("1");
	struct token *t = NULL;

	(void)state;
	mock_p11_reset(NULL);
	assert_int_equal(token_init_functions(mock_p11_functions(),
			     "pkcs11:token=fresh", so, shrt),
	    CUSTODY_E_PIN_FILE);
	assert_int_equal(mock_p11_calls("C_InitToken"), 0);
	assert_int_equal(token_init_functions(mock_p11_functions(),
			     "pkcs11:token=fresh", so, user),
	    0);
	/* finalised after C_InitToken (new slot ids) and at the end */
	assert_int_equal(
	    mock_p11_calls("C_Finalize"), mock_p11_calls("C_Initialize"));
	assert_int_equal(mock_p11_open_sessions(), 0);
	assert_int_equal(open_with("pkcs11:token=fresh", USER_PIN, &t), 0);
	token_close(t);
	assert_int_equal(token_init_functions(mock_p11_functions(),
			     "pkcs11:token=fresh", so, user),
	    CUSTODY_E_TOKEN_EXISTS);
	assert_int_equal(mock_p11_calls("C_InitToken"), 1);
	assert_int_equal(
	    token_init_functions(mock_p11_functions(), "pkcs11:", so, user),
	    CUSTODY_E_PARSE);
	secret_free(so);
	secret_free(user);
	secret_free(shrt);
}

struct worker {
	struct token *t;
	struct token_key *k;
	int failures;
};

static void *
sign_loop(void *arg)
{
	struct worker *w = arg;
	uint8_t *sig;
	size_t siglen;
	int i;

	for (i = 0; i < 25; i++) {
		sig = NULL;
		if (token_sign(w->t, w->k, MSG, sizeof(MSG), &sig, &siglen) !=
		    0)
			w->failures++;
		free(sig);
	}
	return NULL;
}

/* Threads sign at once, each on a session of its own. */
static void
test_threads(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ECDSA_P256, NULL);
	struct worker w[4];
	pthread_t th[4];
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){t, k, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, sign_loop, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	/* the anchor, the main thread's and at most one per worker */
	assert_true(mock_p11_open_sessions() <= 6);
	token_key_free(k);
	token_close(t);
	assert_int_equal(mock_p11_open_sessions(), 0);
}

/* Review regressions ------------------------------------------------------ */

/* Log out the application through the module directly, as another user of
 * the module in this process could. */
static void
logout_elsewhere(void)
{
	CK_FUNCTION_LIST *f = mock_p11_functions();
	CK_SLOT_ID slot;
	CK_ULONG n = 1;
	CK_SESSION_HANDLE h;

	assert_int_equal(f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	assert_int_equal(
	    f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	assert_int_equal(f->C_Logout(h), CKR_OK);
	assert_int_equal(f->C_CloseSession(h), CKR_OK);
	assert_int_equal(mock_p11_is_logged_in(), 0);
}

/* After a logout, private keys are invisible to searches, which still say
 * CKR_OK: custody must log in again rather than believe "none found". */
static void
test_logout_elsewhere_not_mistaken_for_absence(void **state)
{
	struct token *t = open_ok();
	struct token_generated *g = NULL;
	struct token_key *k = new_key(t, CUSTODY_ALG_ED25519, &g);
	struct token_destroy_evidence ev;
	uint8_t *sig = NULL;
	size_t siglen = 0;

	(void)state;
	logout_elsewhere();
	assert_int_equal(token_count_objects(t, g->id), 2);
	logout_elsewhere();
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	free(sig);
	logout_elsewhere();
	assert_int_equal(token_destroy(t, g->id, &ev), 0);
	assert_int_equal(ev.destroyed, 2);
	assert_int_equal(ev.remaining, 0);
	assert_int_equal(mock_p11_object_count(), 0);
	token_key_free(k);
	token_generated_free(g);
	token_close(t);
}

/* A recovery that fails (the token unreachable for a moment) is not final:
 * the next call restores the anchor and the login. */
static void
test_failed_recovery_is_not_final(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ECDSA_P256, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;

	(void)state;
	mock_p11_invalidate_sessions();
	mock_p11_fail("C_GetSlotList", CKR_DEVICE_ERROR, 1, 1);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_TOKEN_GONE);
	assert_null(sig);
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	assert_int_equal(mock_p11_is_logged_in(), 1);
	free(sig);
	token_key_free(k);
	token_close(t);
}

/* A session lost right after C_GenerateKeyPair: the half-checked key is
 * destroyed (on a new session) and generation starts over; no orphan. */
static void
test_generate_session_lost_leaves_no_orphan(void **state)
{
	struct token *t = open_ok();
	struct token_generated *g = NULL;

	(void)state;
	mock_p11_fail("C_GetAttributeValue", CKR_SESSION_HANDLE_INVALID, 1, 1);
	assert_int_equal(
	    token_generate(t, CUSTODY_ALG_ECDSA_P256, "k_", &g), 0);
	assert_int_equal(mock_p11_calls("C_GenerateKeyPair"), 2);
	assert_int_equal(mock_p11_object_count(), 2);
	token_generated_free(g);
	g = NULL;
	/* and if the cleanup cannot destroy it, that is said, not retried */
	mock_p11_fail("C_GetAttributeValue", CKR_SESSION_HANDLE_INVALID, 1, 1);
	mock_p11_destroy_noop(1);
	assert_int_equal(token_generate(t, CUSTODY_ALG_ECDSA_P256, "k_", &g),
	    CUSTODY_E_DESTROY_INCOMPLETE);
	assert_null(g);
	assert_int_equal(mock_p11_calls("C_GenerateKeyPair"), 3);
	mock_p11_destroy_noop(0);
	token_close(t);
}

/* A session lost during the proof search: the retry finds nothing left,
 * and the evidence still counts the objects the first attempt destroyed. */
static void
test_destroy_evidence_survives_retry(void **state)
{
	struct token *t = open_ok();
	struct token_generated *g = NULL;
	struct token_key *k = new_key(t, CUSTODY_ALG_ED25519, &g);
	struct token_destroy_evidence ev;

	(void)state;
	mock_p11_fail("C_FindObjectsInit", CKR_SESSION_HANDLE_INVALID, 2, 1);
	assert_int_equal(token_destroy(t, g->id, &ev), 0);
	assert_int_equal(ev.destroyed, 2);
	assert_int_equal(ev.remaining, 0);
	token_key_free(k);
	token_generated_free(g);
	token_close(t);
}

/* A C_Sign that leaves its operation active does not poison the session
 * for the signatures after it. */
static void
test_stuck_operation_not_kept(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ECDSA_P256, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;
	int i;

	(void)state;
	mock_p11_fail("C_Sign", CKR_BUFFER_TOO_SMALL, 2, 1);
	assert_int_equal(
	    token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), CUSTODY_E_TOKEN);
	for (i = 0; i < 3; i++) {
		assert_int_equal(
		    token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen), 0);
		free(sig);
		sig = NULL;
	}
	token_key_free(k);
	token_close(t);
}

/* A PIN locked at re-login is reported as locked, every time. */
static void
test_relogin_pin_locked_reported(void **state)
{
	struct token *t = open_ok();
	struct token_key *k = new_key(t, CUSTODY_ALG_ED25519, NULL);
	uint8_t *sig = NULL;
	size_t siglen = 0;
	unsigned long logins;

	(void)state;
	mock_p11_fail("C_Login", CKR_PIN_LOCKED, 1, -1);
	mock_p11_invalidate_sessions();
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_PIN_LOCKED);
	logins = mock_p11_calls("C_Login");
	assert_int_equal(token_sign(t, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_PIN_LOCKED);
	assert_int_equal(mock_p11_calls("C_Login"), logins);
	token_key_free(k);
	token_close(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_os_locking_and_close),
	    cmocka_unit_test(test_wrong_pin_tried_once),
	    cmocka_unit_test(test_locked_pin_not_tried),
	    cmocka_unit_test(test_open_refuses_foreign_login),
	    cmocka_unit_test(test_token_not_found),
	    cmocka_unit_test(test_generate_and_sign_each_alg),
	    cmocka_unit_test(test_corrupt_signature_withheld),
	    cmocka_unit_test(test_session_loss_recovered),
	    cmocka_unit_test(test_one_session_lost),
	    cmocka_unit_test(test_device_removed_recovered),
	    cmocka_unit_test(test_relogin_pin_refused_never_retried),
	    cmocka_unit_test(test_device_error_reported),
	    cmocka_unit_test(test_stale_handle_refound),
	    cmocka_unit_test(test_unprotected_key_refused),
	    cmocka_unit_test(test_key_open_checks_attrs_and_pin),
	    cmocka_unit_test(test_mechanism_missing),
	    cmocka_unit_test(test_destroy),
	    cmocka_unit_test(test_destroy_noop_detected),
	    cmocka_unit_test(test_init_token),
	    cmocka_unit_test(test_logout_elsewhere_not_mistaken_for_absence),
	    cmocka_unit_test(test_failed_recovery_is_not_final),
	    cmocka_unit_test(test_generate_session_lost_leaves_no_orphan),
	    cmocka_unit_test(test_destroy_evidence_survives_retry),
	    cmocka_unit_test(test_stuck_operation_not_kept),
	    cmocka_unit_test(test_relogin_pin_locked_reported),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
