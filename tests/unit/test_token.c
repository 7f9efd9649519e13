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

/* Data objects (G3: the last checkpoint kept in the token) --------------- */

#define CP "checkpoint"

/* A value with NULs and high bytes, so that nothing treats it as a string. */
static const uint8_t DATA_A[] = {'a', 0x00, 0x01, 0xff, 0x00, 'z'};
static const uint8_t DATA_B[] = {0x00, 'b', '\n', 0x00};
static const uint8_t DATA_C[] = "c";

/* The value of label, which must be exactly one object. */
static void
assert_data_is(
    struct token *t, const char *label, const uint8_t *want, size_t len)
{
	struct token_blob *b = NULL;
	size_t n = 0;

	assert_int_equal(token_data_get(t, label, &b, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(b[0].len, len);
	assert_memory_equal(b[0].data, want, len);
	token_blobs_free(b, n);
}

/* A session of custody's application, opened beside the token module (it
 * shares the login, which belongs to the application). */
static CK_SESSION_HANDLE
raw_session(void)
{
	CK_FUNCTION_LIST *f = mock_p11_functions();
	CK_SLOT_ID slot;
	CK_ULONG n = 1;
	CK_SESSION_HANDLE h;

	assert_int_equal(f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	assert_int_equal(
	    f->C_OpenSession(
		slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h),
	    CKR_OK);
	return h;
}

/* A token data object made directly, as another program could. */
static void
plant(CK_SESSION_HANDLE s, const char *app, const char *label, int priv,
    const void *value, size_t len)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE, p = priv ? CK_TRUE : CK_FALSE;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_PRIVATE, &p, sizeof(p)},
	    {CKA_APPLICATION, (void *)app, strlen(app)},
	    {CKA_LABEL, (void *)label, strlen(label)},
	    {CKA_VALUE, (void *)value, (CK_ULONG)len},
	};
	CK_OBJECT_HANDLE h;

	assert_int_equal(
	    mock_p11_functions()->C_CreateObject(s, tmpl, 6, &h), CKR_OK);
}

/* Binary values round-trip exactly, as private token objects of custody's
 * application; the largest allowed value too. */
static void
test_data_round_trip(void **state)
{
	struct token *t = open_ok();
	uint8_t *big = malloc(TOKEN_DATA_MAX);
	char label64[TOKEN_DATA_LABEL_MAX + 1];

	(void)state;
	assert_non_null(big);
	memset(big, 0, TOKEN_DATA_MAX);
	big[TOKEN_DATA_MAX - 1] = 0x7f;
	memset(label64, '~', TOKEN_DATA_LABEL_MAX);
	label64[TOKEN_DATA_LABEL_MAX] = '\0';
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	assert_data_is(t, CP, DATA_A, sizeof(DATA_A));
	assert_int_equal(mock_p11_object_count(), 1);
	assert_int_equal(token_data_put(t, label64, big, TOKEN_DATA_MAX), 0);
	assert_data_is(t, label64, big, TOKEN_DATA_MAX);
	assert_int_equal(token_data_put(t, "with space", DATA_C, 1), 0);
	assert_data_is(t, "with space", DATA_C, 1);
	/* the labels do not meet */
	assert_data_is(t, CP, DATA_A, sizeof(DATA_A));
	assert_int_equal(mock_p11_object_count(), 3);
	free(big);
	token_close(t);
}

/* A put replaces: the new object first, then the older ones go. */
static void
test_data_replace(void **state)
{
	struct token *t = open_ok();
	unsigned long creates;

	(void)state;
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	creates = mock_p11_calls("C_CreateObject");
	assert_int_equal(token_data_put(t, CP, DATA_B, sizeof(DATA_B)), 0);
	assert_int_equal(mock_p11_calls("C_CreateObject"), creates + 1);
	assert_data_is(t, CP, DATA_B, sizeof(DATA_B));
	assert_int_equal(mock_p11_object_count(), 1);
	/* the same value again: still one object */
	assert_int_equal(token_data_put(t, CP, DATA_B, sizeof(DATA_B)), 0);
	assert_data_is(t, CP, DATA_B, sizeof(DATA_B));
	assert_int_equal(mock_p11_object_count(), 1);
	token_close(t);
}

static void
test_data_delete(void **state)
{
	struct token *t = open_ok();
	struct token_blob *b = (struct token_blob *)&b;
	size_t n = 99;

	(void)state;
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	assert_int_equal(token_data_put(t, "other", DATA_B, sizeof(DATA_B)), 0);
	assert_int_equal(token_data_delete(t, CP), 0);
	assert_int_equal(token_data_get(t, CP, &b, &n), 0);
	assert_int_equal(n, 0);
	assert_null(b);
	assert_data_is(t, "other", DATA_B, sizeof(DATA_B));
	/* nothing to delete is not an error */
	assert_int_equal(token_data_delete(t, CP), 0);
	/* a token that says it destroyed but did not is caught */
	mock_p11_destroy_noop(1);
	assert_int_equal(
	    token_data_delete(t, "other"), CUSTODY_E_DESTROY_INCOMPLETE);
	mock_p11_destroy_noop(0);
	assert_int_equal(token_data_delete(t, "other"), 0);
	assert_int_equal(mock_p11_object_count(), 0);
	token_close(t);
}

/* An absent label: n == 0, no array, and that is not an error. */
static void
test_data_get_absent(void **state)
{
	struct token *t = open_ok();
	struct token_blob *b = (struct token_blob *)&b;
	size_t n = 99;

	(void)state;
	assert_int_equal(token_data_get(t, CP, &b, &n), 0);
	assert_int_equal(n, 0);
	assert_null(b);
	token_blobs_free(NULL, 0);
	token_close(t);
}

static void
test_data_invalid_args(void **state)
{
	static const char *const bad[] = {
	    "",
	    "tab\there",
	    "new\nline",
	    "\x7f",
	    "caf\xc3\xa9",
	    "01234567890123456789012345678901234567890123456789012345678901234",
	};
	struct token *t = open_ok();
	struct token_blob *b = NULL;
	size_t i, n = 0;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(token_data_put(t, bad[i], DATA_A, 1),
		    CUSTODY_E_INVALID_ARG);
		assert_int_equal(
		    token_data_get(t, bad[i], &b, &n), CUSTODY_E_INVALID_ARG);
		assert_int_equal(
		    token_data_delete(t, bad[i]), CUSTODY_E_INVALID_ARG);
	}
	assert_int_equal(
	    token_data_put(t, NULL, DATA_A, 1), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    token_data_get(t, NULL, &b, &n), CUSTODY_E_INVALID_ARG);
	assert_int_equal(token_data_delete(t, NULL), CUSTODY_E_INVALID_ARG);
	/* an empty value (tpm2-pkcs11 refuses one) and no value */
	assert_int_equal(
	    token_data_put(t, CP, DATA_A, 0), CUSTODY_E_INVALID_ARG);
	assert_int_equal(token_data_put(t, CP, NULL, 1), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    token_data_get(t, CP, NULL, &n), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    token_data_get(t, CP, &b, NULL), CUSTODY_E_INVALID_ARG);
	assert_null(b);
	assert_int_equal(mock_p11_calls("C_CreateObject"), 0);
	assert_int_equal(mock_p11_calls("C_FindObjectsInit"), 0);
	token_close(t);
}

/* Bounds: the value put, the values read and the number of objects. */
static void
test_data_too_large(void **state)
{
	struct token *t = open_ok();
	uint8_t *big = calloc(1, TOKEN_DATA_MAX + 1);
	struct token_blob *b = NULL;
	CK_SESSION_HANDLE s;
	size_t n = 0;
	int i;

	(void)state;
	assert_non_null(big);
	assert_int_equal(token_data_put(t, CP, big, TOKEN_DATA_MAX + 1),
	    CUSTODY_E_TOO_LARGE);
	assert_int_equal(mock_p11_calls("C_CreateObject"), 0);
	/* a value over the bound, put there by someone else */
	s = raw_session();
	plant(s, "custody", "big", 1, big, TOKEN_DATA_MAX + 1);
	assert_int_equal(token_data_get(t, "big", &b, &n), CUSTODY_E_TOO_LARGE);
	/* an empty value is not a checkpoint (and is what tpm2-pkcs11 shows
	 * for a private value to a session that is not logged in) */
	plant(s, "custody", "empty", 1, "", 0);
	assert_int_equal(token_data_get(t, "empty", &b, &n), CUSTODY_E_TOKEN);
	/* more objects than TOKEN_DATA_MAX_OBJECTS */
	for (i = 0; i < TOKEN_DATA_MAX_OBJECTS; i++)
		plant(s, "custody", "many", 1, DATA_A, sizeof(DATA_A));
	assert_int_equal(token_data_get(t, "many", &b, &n), 0);
	assert_int_equal(n, TOKEN_DATA_MAX_OBJECTS);
	token_blobs_free(b, n);
	b = NULL;
	plant(s, "custody", "many", 1, DATA_A, sizeof(DATA_A));
	assert_int_equal(
	    token_data_get(t, "many", &b, &n), CUSTODY_E_TOO_LARGE);
	assert_null(b);
	/* a put clears them all */
	assert_int_equal(token_data_put(t, "many", DATA_C, 1), 0);
	assert_data_is(t, "many", DATA_C, 1);
	assert_int_equal(mock_p11_functions()->C_CloseSession(s), CKR_OK);
	free(big);
	token_close(t);
}

/* Objects that are not custody's private ones are neither read nor
 * touched: another application's, and a public one (which anyone could
 * have planted without the PIN). */
static void
test_data_foreign_objects_ignored(void **state)
{
	struct token *t = open_ok();
	struct token_blob *b = NULL;
	CK_SESSION_HANDLE s = raw_session();
	size_t n = 0;

	(void)state;
	plant(s, "other-app", CP, 1, DATA_B, sizeof(DATA_B));
	plant(s, "custody", CP, 0, DATA_B, sizeof(DATA_B));
	assert_int_equal(token_data_get(t, CP, &b, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	assert_data_is(t, CP, DATA_A, sizeof(DATA_A));
	assert_int_equal(token_data_delete(t, CP), 0);
	assert_int_equal(mock_p11_object_count(), 2);
	assert_int_equal(mock_p11_functions()->C_CloseSession(s), CKR_OK);
	token_close(t);
}

/* C_CreateObject fails: an error, and the old value is kept. */
static void
test_data_create_fault_keeps_old(void **state)
{
	struct token *t = open_ok();

	(void)state;
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	mock_p11_fail("C_CreateObject", CKR_DEVICE_ERROR, 1, 1);
	assert_int_equal(
	    token_data_put(t, CP, DATA_B, sizeof(DATA_B)), CUSTODY_E_TOKEN);
	assert_int_equal(mock_p11_calls("C_DestroyObject"), 0);
	assert_data_is(t, CP, DATA_A, sizeof(DATA_A));
	assert_int_equal(mock_p11_object_count(), 1);
	token_close(t);
}

/* C_DestroyObject fails during a put: both objects remain (the state a
 * crash between the two steps leaves), get returns both, and the next put
 * leaves one. */
static void
test_data_destroy_fault_leaves_both(void **state)
{
	struct token *t = open_ok();
	struct token_blob *b = NULL;
	size_t n = 0, i;
	int a = 0, bb = 0;

	(void)state;
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	mock_p11_fail("C_DestroyObject", CKR_DEVICE_ERROR, 1, 1);
	assert_int_equal(
	    token_data_put(t, CP, DATA_B, sizeof(DATA_B)), CUSTODY_E_TOKEN);
	assert_int_equal(token_data_get(t, CP, &b, &n), 0);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		if (b[i].len == sizeof(DATA_A) &&
		    memcmp(b[i].data, DATA_A, sizeof(DATA_A)) == 0)
			a++;
		if (b[i].len == sizeof(DATA_B) &&
		    memcmp(b[i].data, DATA_B, sizeof(DATA_B)) == 0)
			bb++;
	}
	assert_int_equal(a, 1);
	assert_int_equal(bb, 1);
	token_blobs_free(b, n);
	assert_int_equal(token_data_put(t, CP, DATA_C, 1), 0);
	assert_data_is(t, CP, DATA_C, 1);
	assert_int_equal(mock_p11_object_count(), 1);
	token_close(t);
}

/* A token that does not keep data objects says so on C_CreateObject in one
 * of several ways; each is CUSTODY_E_UNSUPPORTED (the caller then keeps a
 * file), and nothing is stored. Other failures are not "unsupported". */
static void
test_data_unsupported(void **state)
{
	static const CK_RV unsupported[] = {
	    CKR_FUNCTION_NOT_SUPPORTED,
	    CKR_TEMPLATE_INCONSISTENT,
	    CKR_TEMPLATE_INCOMPLETE,
	    CKR_ATTRIBUTE_TYPE_INVALID,
	    CKR_ATTRIBUTE_VALUE_INVALID,
	};
	struct token *t = open_ok();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
		mock_p11_fail("C_CreateObject", unsupported[i], 1, 1);
		assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)),
		    CUSTODY_E_UNSUPPORTED);
	}
	mock_p11_fail("C_CreateObject", CKR_GENERAL_ERROR, 1, 1);
	assert_int_equal(
	    token_data_put(t, CP, DATA_A, sizeof(DATA_A)), CUSTODY_E_TOKEN);
	assert_int_equal(mock_p11_object_count(), 0);
	assert_int_equal(mock_p11_calls("C_DestroyObject"), 0);
	assert_string_equal(custody_strerror(CUSTODY_E_UNSUPPORTED),
	    "not supported by the token");
	assert_non_null(custody_errhint(CUSTODY_E_UNSUPPORTED));
	token_close(t);
}

/* Not logged in (a logout elsewhere in the process): custody logs in again
 * rather than believe "none found", create a public object or destroy
 * nothing; a device reset is recovered the same way. */
static void
test_data_not_logged_in_recovered(void **state)
{
	struct token *t = open_ok();

	(void)state;
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	logout_elsewhere();
	assert_data_is(t, CP, DATA_A, sizeof(DATA_A));
	assert_int_equal(mock_p11_calls("C_Login"), 2);
	logout_elsewhere();
	assert_int_equal(token_data_put(t, CP, DATA_B, sizeof(DATA_B)), 0);
	assert_data_is(t, CP, DATA_B, sizeof(DATA_B));
	assert_int_equal(mock_p11_object_count(), 1);
	logout_elsewhere();
	assert_int_equal(token_data_delete(t, CP), 0);
	assert_int_equal(mock_p11_object_count(), 0);
	assert_int_equal(mock_p11_calls("C_Login"), 4);
	/* a device reset: new sessions, one login each time */
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	mock_p11_invalidate_sessions();
	assert_data_is(t, CP, DATA_A, sizeof(DATA_A));
	mock_p11_invalidate_sessions();
	assert_int_equal(token_data_put(t, CP, DATA_B, sizeof(DATA_B)), 0);
	mock_p11_invalidate_sessions();
	assert_int_equal(token_data_delete(t, CP), 0);
	assert_int_equal(mock_p11_calls("C_Login"), 7);
	assert_int_equal(mock_p11_is_logged_in(), 1);
	assert_int_equal(mock_p11_object_count(), 0);
	token_close(t);
}

/* A session lost at each step of a put or a get: the operation completes
 * on a new session and leaves exactly the new value. After a reset between
 * the create and the clean-up, the new object has a new handle and is
 * recognised by its value. */
static void
test_data_reset_mid_operation(void **state)
{
	struct token *t = open_ok();

	(void)state;
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	/* during C_CreateObject: nothing created, created again */
	mock_p11_fail_reset("C_CreateObject", 1);
	assert_int_equal(token_data_put(t, CP, DATA_B, sizeof(DATA_B)), 0);
	assert_data_is(t, CP, DATA_B, sizeof(DATA_B));
	assert_int_equal(mock_p11_object_count(), 1);
	/* during the clean-up's search: the new object is renumbered */
	mock_p11_fail_reset("C_FindObjectsInit", 1);
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	assert_data_is(t, CP, DATA_A, sizeof(DATA_A));
	assert_int_equal(mock_p11_object_count(), 1);
	/* during the clean-up's destroy */
	mock_p11_fail_reset("C_DestroyObject", 1);
	assert_int_equal(token_data_put(t, CP, DATA_B, sizeof(DATA_B)), 0);
	assert_data_is(t, CP, DATA_B, sizeof(DATA_B));
	assert_int_equal(mock_p11_object_count(), 1);
	/* during a read */
	mock_p11_fail_reset("C_GetAttributeValue", 2);
	assert_data_is(t, CP, DATA_B, sizeof(DATA_B));
	/* a session lost without a logout: the handle still counts */
	mock_p11_fail("C_DestroyObject", CKR_SESSION_HANDLE_INVALID, 1, 1);
	assert_int_equal(token_data_put(t, CP, DATA_C, 1), 0);
	assert_data_is(t, CP, DATA_C, 1);
	assert_int_equal(mock_p11_object_count(), 1);
	assert_int_equal(mock_p11_is_logged_in(), 1);
	token_close(t);
}

/* An object that vanishes between the search and the read (a put in
 * another process) is searched for again, not reported. */
static void
test_data_vanished_object_searched_again(void **state)
{
	struct token *t = open_ok();

	(void)state;
	assert_int_equal(token_data_put(t, CP, DATA_A, sizeof(DATA_A)), 0);
	mock_p11_fail("C_GetAttributeValue", CKR_OBJECT_HANDLE_INVALID, 1, 1);
	assert_data_is(t, CP, DATA_A, sizeof(DATA_A));
	assert_int_equal(mock_p11_calls("C_Login"), 1);
	/* but not for ever */
	mock_p11_fail("C_GetAttributeValue", CKR_OBJECT_HANDLE_INVALID, 1, -1);
	{
		struct token_blob *b = NULL;
		size_t n = 0;

		assert_int_equal(
		    token_data_get(t, CP, &b, &n), CUSTODY_E_TOKEN);
		assert_null(b);
	}
	mock_p11_clear_faults();
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
	    cmocka_unit_test(test_data_round_trip),
	    cmocka_unit_test(test_data_replace),
	    cmocka_unit_test(test_data_delete),
	    cmocka_unit_test(test_data_get_absent),
	    cmocka_unit_test(test_data_invalid_args),
	    cmocka_unit_test(test_data_too_large),
	    cmocka_unit_test(test_data_foreign_objects_ignored),
	    cmocka_unit_test(test_data_create_fault_keeps_old),
	    cmocka_unit_test(test_data_destroy_fault_leaves_both),
	    cmocka_unit_test(test_data_unsupported),
	    cmocka_unit_test(test_data_not_logged_in_recovered),
	    cmocka_unit_test(test_data_reset_mid_operation),
	    cmocka_unit_test(test_data_vanished_object_searched_again),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
