/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Self-test of the mock PKCS#11 module: drives it through its function list
 * the way the token module (and SoftHSM2's users) do, verifies every
 * signature with OpenSSL from the exported public attributes, and checks that
 * each mock_p11_* control does what mock_p11.h says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "mock_p11.h"

#define SO_PIN	 "12345678"
#define USER_PIN "1234"
#define LABEL	 "custody-test"

enum kind {
	K_P256,
	K_P384,
	K_ED25519,
	K_RSA,
};

static const CK_BYTE oid_p256[] = {
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const CK_BYTE oid_p521[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};
static const CK_BYTE oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const CK_BYTE name_ed25519[] = {
    0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

static const unsigned char msg[] = "custody says hello";

static CK_FUNCTION_LIST *p11;

/* Every entry of the 2.40 function list. */
static const char *const all_functions[] = {
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_WrapKey",
    "C_UnwrapKey",
    "C_DeriveKey",
    "C_SeedRandom",
    "C_GenerateRandom",
    "C_GetFunctionStatus",
    "C_CancelFunction",
    "C_WaitForSlotEvent",
};

/*
 * Helpers.
 */

static int
padded_eq(const CK_UTF8CHAR *field, size_t n, const char *s)
{
	size_t i, l = strlen(s);

	if (l > n || memcmp(field, s, l) != 0)
		return 0;
	for (i = l; i < n; i++)
		if (field[i] != ' ')
			return 0;
	return 1;
}

static void
init_args(CK_C_INITIALIZE_ARGS *a)
{
	memset(a, 0, sizeof(*a));
	a->flags = CKF_OS_LOCKING_OK;
}

static void
reset_initialised(int lock_after)
{
	struct mock_p11_opts o = {
	    .initialized = 1,
	    .label = LABEL,
	    .so_pin = SO_PIN,
	    .user_pin = USER_PIN,
	    .pin_lock_after = lock_after,
	};

	mock_p11_reset(&o);
}

/* A fresh initialised token with a user PIN, Cryptoki initialised. */
static int
setup(void **state)
{
	CK_C_INITIALIZE_ARGS a;

	(void)state;
	p11 = mock_p11_functions();
	reset_initialised(0);
	init_args(&a);
	return p11->C_Initialize(&a) == CKR_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	(void)p11->C_Finalize(NULL);
	mock_p11_reset(NULL);
	return 0;
}

static CK_SLOT_ID
the_slot(void)
{
	CK_SLOT_ID slot = 0;
	CK_ULONG n = 1;

	assert_int_equal(p11->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
	assert_int_equal(n, 1);
	assert_true(slot != 0);
	return slot;
}

static CK_SESSION_HANDLE
open_session(int rw)
{
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_FLAGS fl = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);

	assert_int_equal(
	    p11->C_OpenSession(the_slot(), fl, NULL, NULL, &s), CKR_OK);
	assert_true(s != CK_INVALID_HANDLE);
	return s;
}

static CK_RV
login(CK_SESSION_HANDLE s, CK_USER_TYPE type, const char *pin)
{
	return p11->C_Login(s, type, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static CK_STATE
state_of(CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO si;

	assert_int_equal(p11->C_GetSessionInfo(s, &si), CKR_OK);
	return si.state;
}

/* A logged-in RW session. */
static CK_SESSION_HANDLE
user_session(void)
{
	CK_SESSION_HANDLE s = open_session(1);

	assert_int_equal(login(s, CKU_USER, USER_PIN), CKR_OK);
	return s;
}

static CK_RV
gen_key(CK_SESSION_HANDLE s, enum kind k, const char *id, CK_OBJECT_HANDLE *pub,
    CK_OBJECT_HANDLE *priv)
{
	static CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	static CK_ULONG bits = 2048;
	static CK_BYTE exp[] = {0x01, 0x00, 0x01};
	CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[8], vt[12];
	CK_ULONG np = 0, nv = 0;

	pt[np++] = (CK_ATTRIBUTE){CKA_TOKEN, &t, sizeof(t)};
	pt[np++] = (CK_ATTRIBUTE){CKA_VERIFY, &t, sizeof(t)};
	pt[np++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)id, strlen(id)};
	pt[np++] = (CK_ATTRIBUTE){CKA_ID, (void *)id, strlen(id)};
	switch (k) {
	case K_P256:
		pt[np++] = (CK_ATTRIBUTE){
		    CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)};
		break;
	case K_P384:
		pt[np++] = (CK_ATTRIBUTE){
		    CKA_EC_PARAMS, (void *)oid_p384, sizeof(oid_p384)};
		break;
	case K_ED25519:
		m.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		pt[np++] = (CK_ATTRIBUTE){
		    CKA_EC_PARAMS, (void *)oid_ed25519, sizeof(oid_ed25519)};
		break;
	case K_RSA:
		m.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		pt[np++] =
		    (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
		pt[np++] =
		    (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, exp, sizeof(exp)};
		break;
	}
	vt[nv++] = (CK_ATTRIBUTE){CKA_TOKEN, &t, sizeof(t)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_PRIVATE, &t, sizeof(t)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_SENSITIVE, &t, sizeof(t)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &f, sizeof(f)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_SIGN, &t, sizeof(t)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_DECRYPT, &f, sizeof(f)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_DERIVE, &f, sizeof(f)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_UNWRAP, &f, sizeof(f)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)id, strlen(id)};
	vt[nv++] = (CK_ATTRIBUTE){CKA_ID, (void *)id, strlen(id)};
	return p11->C_GenerateKeyPair(s, &m, pt, np, vt, nv, pub, priv);
}

static CK_RV
get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    void *buf, CK_ULONG *lenp)
{
	CK_ATTRIBUTE a = {type, buf, *lenp};
	CK_RV rv;

	rv = p11->C_GetAttributeValue(s, o, &a, 1);
	*lenp = a.ulValueLen;
	return rv;
}

/* 0 or 1; fails the test if the attribute cannot be read. */
static int
get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL b = 0x55;
	CK_ULONG len = sizeof(b);

	assert_int_equal(get_attr(s, o, type, &b, &len), CKR_OK);
	assert_int_equal(len, sizeof(b));
	assert_true(b == CK_TRUE || b == CK_FALSE);
	return b;
}

static CK_ULONG
find(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *out,
    CK_ULONG max)
{
	CK_ULONG got = 0;

	assert_int_equal(p11->C_FindObjectsInit(s, t, n), CKR_OK);
	assert_int_equal(p11->C_FindObjects(s, out, max, &got), CKR_OK);
	assert_int_equal(p11->C_FindObjectsFinal(s), CKR_OK);
	return got;
}

static CK_OBJECT_HANDLE
find_one(CK_SESSION_HANDLE s, const char *id, CK_OBJECT_CLASS cls)
{
	CK_ATTRIBUTE t[] = {
	    {CKA_ID, (void *)id, strlen(id)},
	    {CKA_CLASS, &cls, sizeof(cls)},
	};
	CK_OBJECT_HANDLE h[2];

	if (find(s, t, 2, h, 2) != 1)
		return CK_INVALID_HANDLE;
	return h[0];
}

static EVP_PKEY *
export_pub(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, enum kind k)
{
	unsigned char buf[600], ebuf[16];
	CK_ULONG len = sizeof(buf), elen = sizeof(ebuf);
	EVP_PKEY_CTX *c = NULL;
	EVP_PKEY *pk = NULL;
	OSSL_PARAM_BLD *b = NULL;
	OSSL_PARAM *params = NULL, p[3];
	BIGNUM *n = NULL, *e = NULL;

	if (k == K_RSA) {
		assert_int_equal(
		    get_attr(s, pub, CKA_MODULUS, buf, &len), CKR_OK);
		assert_int_equal(
		    get_attr(s, pub, CKA_PUBLIC_EXPONENT, ebuf, &elen), CKR_OK);
		assert_non_null(n = BN_bin2bn(buf, (int)len, NULL));
		assert_non_null(e = BN_bin2bn(ebuf, (int)elen, NULL));
		assert_non_null(b = OSSL_PARAM_BLD_new());
		assert_true(
		    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n));
		assert_true(
		    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e));
		assert_non_null(params = OSSL_PARAM_BLD_to_param(b));
		assert_non_null(
		    c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL));
		assert_int_equal(EVP_PKEY_fromdata_init(c), 1);
		assert_int_equal(
		    EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
		EVP_PKEY_CTX_free(c);
		OSSL_PARAM_free(params);
		OSSL_PARAM_BLD_free(b);
		BN_free(n);
		BN_free(e);
		return pk;
	}
	/* CKA_EC_POINT is a DER OCTET STRING around the point */
	assert_int_equal(get_attr(s, pub, CKA_EC_POINT, buf, &len), CKR_OK);
	assert_true(len >= 2);
	assert_int_equal(buf[0], 0x04);
	assert_int_equal(buf[1], len - 2);
	if (k == K_ED25519) {
		assert_int_equal(len, 34);
		pk = EVP_PKEY_new_raw_public_key(
		    EVP_PKEY_ED25519, NULL, buf + 2, len - 2);
		assert_non_null(pk);
		return pk;
	}
	assert_int_equal(len, k == K_P256 ? 67 : 99);
	assert_int_equal(buf[2], 0x04); /* uncompressed */
	p[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, k == K_P256 ? "P-256" : "P-384", 0);
	p[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_PKEY_PARAM_PUB_KEY, buf + 2, len - 2);
	p[2] = OSSL_PARAM_construct_end();
	assert_non_null(c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL));
	assert_int_equal(EVP_PKEY_fromdata_init(c), 1);
	assert_int_equal(EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, p), 1);
	EVP_PKEY_CTX_free(c);
	return pk;
}

static int
pss_verify_setup(EVP_PKEY_CTX *pc)
{
	return EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
	       EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) == 1 &&
	       EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1;
}

/* 1 if sig is a good signature of in (the message, or its digest for
 * CKM_ECDSA and CKM_RSA_PKCS_PSS). */
static int
verify(EVP_PKEY *pk, CK_MECHANISM_TYPE mech, const unsigned char *in,
    size_t inlen, const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *mc = NULL;
	EVP_PKEY_CTX *pc = NULL, *dpc = NULL;
	ECDSA_SIG *es = NULL;
	unsigned char *der = NULL;
	BIGNUM *r, *s;
	int derlen, ok = 0;

	switch (mech) {
	case CKM_EDDSA:
		ok = (mc = EVP_MD_CTX_new()) != NULL &&
		     EVP_DigestVerifyInit(mc, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestVerify(mc, sig, siglen, in, inlen) == 1;
		break;
	case CKM_ECDSA:
		/* raw r||s to DER for OpenSSL */
		if ((es = ECDSA_SIG_new()) == NULL)
			break;
		r = BN_bin2bn(sig, (int)siglen / 2, NULL);
		s = BN_bin2bn(sig + siglen / 2, (int)siglen / 2, NULL);
		if (r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
			BN_free(r);
			BN_free(s);
			break;
		}
		if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
			break;
		ok =
		    (pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) != NULL &&
		    EVP_PKEY_verify_init(pc) == 1 &&
		    EVP_PKEY_verify(pc, der, (size_t)derlen, in, inlen) == 1;
		break;
	case CKM_SHA256_RSA_PKCS_PSS:
		ok = (mc = EVP_MD_CTX_new()) != NULL &&
		     EVP_DigestVerifyInit(mc, &dpc, EVP_sha256(), NULL, pk) ==
			 1 &&
		     pss_verify_setup(dpc) &&
		     EVP_DigestVerify(mc, sig, siglen, in, inlen) == 1;
		break;
	case CKM_RSA_PKCS_PSS:
		ok =
		    (pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) != NULL &&
		    EVP_PKEY_verify_init(pc) == 1 && pss_verify_setup(pc) &&
		    EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		    EVP_PKEY_verify(pc, sig, siglen, in, inlen) == 1;
		break;
	default:
		break;
	}
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(mc);
	return ok;
}

/* The input C_Sign takes for mech: the message or its digest. */
static size_t
sign_input(CK_MECHANISM_TYPE mech, enum kind k, unsigned char *buf)
{
	unsigned int len = 0;

	if (mech == CKM_ECDSA || mech == CKM_RSA_PKCS_PSS) {
		assert_int_equal(
		    EVP_Digest(msg, sizeof(msg), buf, &len,
			k == K_P384 ? EVP_sha384() : EVP_sha256(), NULL),
		    1);
		return len;
	}
	memcpy(buf, msg, sizeof(msg));
	return sizeof(msg);
}

/* Sign with the two-call convention; returns the C_Sign rv. */
static CK_RV
sign(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE key,
    const unsigned char *in, size_t inlen, unsigned char *sig, CK_ULONG *siglen)
{
	CK_ULONG need = 0;
	CK_RV rv;

	if ((rv = p11->C_SignInit(s, m, key)) != CKR_OK)
		return rv;
	rv = p11->C_Sign(s, (CK_BYTE_PTR)in, inlen, NULL, &need);
	if (rv != CKR_OK)
		return rv;
	assert_true(need <= *siglen);
	*siglen = need;
	return p11->C_Sign(s, (CK_BYTE_PTR)in, inlen, sig, siglen);
}

/* Sign msg with mech and check the signature against the exported key. */
static void
sign_verify(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE priv,
    EVP_PKEY *pk, enum kind k, size_t want_len, int want_ok)
{
	unsigned char in[64], sig[512];
	CK_ULONG siglen = sizeof(sig);
	size_t inlen = sign_input(m->mechanism, k, in);

	assert_int_equal(sign(s, m, priv, in, inlen, sig, &siglen), CKR_OK);
	assert_int_equal(siglen, want_len);
	assert_int_equal(
	    verify(pk, m->mechanism, in, inlen, sig, siglen), want_ok);
	if (want_ok) {
		/* and the check is real */
		sig[siglen / 3] ^= 0x80;
		assert_false(verify(pk, m->mechanism, in, inlen, sig, siglen));
	}
}

/* Attributes every key of the secure template must have. */
static void
check_secure_key(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
    CK_OBJECT_HANDLE priv, enum kind k)
{
	unsigned char buf[512];
	CK_ULONG len = sizeof(buf), kt = 0;

	assert_int_equal(get_bool(s, priv, CKA_TOKEN), 1);
	assert_int_equal(get_bool(s, priv, CKA_PRIVATE), 1);
	assert_int_equal(get_bool(s, priv, CKA_SENSITIVE), 1);
	assert_int_equal(get_bool(s, priv, CKA_EXTRACTABLE), 0);
	assert_int_equal(get_bool(s, priv, CKA_ALWAYS_SENSITIVE), 1);
	assert_int_equal(get_bool(s, priv, CKA_NEVER_EXTRACTABLE), 1);
	assert_int_equal(get_bool(s, priv, CKA_LOCAL), 1);
	assert_int_equal(get_bool(s, priv, CKA_SIGN), 1);
	assert_int_equal(get_bool(s, priv, CKA_DECRYPT), 0);
	assert_int_equal(get_bool(s, priv, CKA_DERIVE), 0);
	assert_int_equal(get_bool(s, priv, CKA_UNWRAP), 0);
	assert_int_equal(get_bool(s, priv, CKA_MODIFIABLE), 1);
	assert_int_equal(get_bool(s, pub, CKA_LOCAL), 1);
	assert_int_equal(get_bool(s, pub, CKA_PRIVATE), 0);
	assert_int_equal(get_bool(s, pub, CKA_VERIFY), 1);
	len = sizeof(kt);
	assert_int_equal(get_attr(s, priv, CKA_KEY_TYPE, &kt, &len), CKR_OK);
	assert_int_equal(kt, k == K_RSA	      ? CKK_RSA
			     : k == K_ED25519 ? CKK_EC_EDWARDS
					      : CKK_EC);
	/* the secret never comes out */
	len = sizeof(buf);
	assert_int_equal(
	    get_attr(s, priv, k == K_RSA ? CKA_PRIVATE_EXPONENT : CKA_VALUE,
		buf, &len),
	    CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(len, CK_UNAVAILABLE_INFORMATION);
	if (k == K_RSA) {
		len = sizeof(buf);
		assert_int_equal(get_attr(s, priv, CKA_PRIME_1, buf, &len),
		    CKR_ATTRIBUTE_SENSITIVE);
		assert_int_equal(len, CK_UNAVAILABLE_INFORMATION);
	}
}

/*
 * Tests.
 */

static void
test_initialize(void **state)
{
	CK_C_INITIALIZE_ARGS a;
	CK_FUNCTION_LIST *fl = NULL;
	CK_INFO info;
	CK_SESSION_HANDLE s;
	CK_BYTE seed[4] = {0};
	const unsigned char *b;
	size_t i, j, n;
	int dummy;

	(void)state;
	mock_p11_reset(NULL);
	assert_int_equal(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	assert_int_equal(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	assert_int_equal(mock_p11_init_flags(), MOCK_P11_INIT_NONE);
	/* every entry is counted under its name (an unknown name aborts) */
	n = sizeof(all_functions) / sizeof(all_functions[0]);
	assert_int_equal(n, 68);
	for (i = 0; i < n; i++) {
		const char *name = all_functions[i];
		int called = strcmp(name, "C_GetInfo") == 0 ||
			     strcmp(name, "C_Finalize") == 0;

		assert_int_equal(mock_p11_calls(name), called);
	}

	assert_int_equal(C_GetFunctionList(&fl), CKR_OK);
	assert_ptr_equal(fl, p11);
	assert_int_equal(C_GetFunctionList(NULL), CKR_ARGUMENTS_BAD);
	assert_int_equal(p11->version.major, 2);
	assert_int_equal(p11->version.minor, 40);
	/* no NULL entry in the function list */
	b = (const unsigned char *)&p11->C_Initialize;
	n = (sizeof(*p11) - offsetof(CK_FUNCTION_LIST, C_Initialize)) /
	    sizeof(p11->C_Initialize);
	assert_int_equal(n, 68);
	for (i = 0; i < n; i++) {
		int nonzero = 0;

		for (j = 0; j < sizeof(p11->C_Initialize); j++)
			nonzero |= b[i * sizeof(p11->C_Initialize) + j];
		assert_true(nonzero);
	}

	init_args(&a);
	a.pReserved = &dummy;
	assert_int_equal(p11->C_Initialize(&a), CKR_ARGUMENTS_BAD);
	init_args(&a);
	a.LockMutex = (CK_LOCKMUTEX)(void (*)(void))abort;
	assert_int_equal(p11->C_Initialize(&a), CKR_ARGUMENTS_BAD);
	init_args(&a);
	assert_int_equal(p11->C_Initialize(&a), CKR_OK);
	assert_int_equal(mock_p11_init_flags(), CKF_OS_LOCKING_OK);
	assert_int_equal(
	    p11->C_Initialize(&a), CKR_CRYPTOKI_ALREADY_INITIALIZED);

	assert_int_equal(p11->C_GetInfo(&info), CKR_OK);
	assert_int_equal(info.cryptokiVersion.major, 2);
	assert_int_equal(info.cryptokiVersion.minor, 40);
	assert_true(padded_eq(
	    info.manufacturerID, sizeof(info.manufacturerID), "custody mock"));
	assert_true(padded_eq(info.libraryDescription,
	    sizeof(info.libraryDescription), "custody mock PKCS#11"));

	assert_int_equal(p11->C_Finalize(&dummy), CKR_ARGUMENTS_BAD);
	assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
	assert_int_equal(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	assert_int_equal(p11->C_Initialize(NULL), CKR_OK);
	assert_int_equal(mock_p11_init_flags(), MOCK_P11_INIT_NULL);

	/* stubs and the functions SoftHSM2 has but the mock refuses */
	reset_initialised(0);
	init_args(&a);
	assert_int_equal(p11->C_Initialize(&a), CKR_OK);
	s = open_session(1);
	assert_int_equal(
	    p11->C_Encrypt(s, seed, 4, NULL, NULL), CKR_FUNCTION_NOT_SUPPORTED);
	assert_int_equal(
	    p11->C_SignUpdate(s, seed, 4), CKR_FUNCTION_NOT_SUPPORTED);
	assert_int_equal(
	    p11->C_SignFinal(s, NULL, NULL), CKR_FUNCTION_NOT_SUPPORTED);
	assert_int_equal(
	    p11->C_WaitForSlotEvent(0, NULL, NULL), CKR_FUNCTION_NOT_SUPPORTED);
	assert_int_equal(
	    p11->C_SetPIN(s, seed, 4, seed, 4), CKR_FUNCTION_NOT_SUPPORTED);
	assert_int_equal(p11->C_SeedRandom(s, seed, sizeof(seed)),
	    CKR_RANDOM_SEED_NOT_SUPPORTED);
	assert_int_equal(mock_p11_calls("C_Encrypt"), 1);
	assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
	assert_int_equal(p11->C_Encrypt(s, seed, 4, NULL, NULL),
	    CKR_CRYPTOKI_NOT_INITIALIZED);
}

static void
test_init_token(void **state)
{
	CK_C_INITIALIZE_ARGS a;
	CK_UTF8CHAR label[32];
	CK_TOKEN_INFO ti;
	CK_SLOT_ID old, slot;
	CK_SESSION_HANDLE s, ro;

	(void)state;
	mock_p11_reset(NULL);
	init_args(&a);
	assert_int_equal(p11->C_Initialize(&a), CKR_OK);
	old = the_slot();
	assert_int_equal(old, 0x1234);
	assert_int_equal(p11->C_GetTokenInfo(old, &ti), CKR_OK);
	assert_int_equal(ti.flags & CKF_TOKEN_INITIALIZED, 0);
	assert_int_equal(ti.ulMinPinLen, 4);
	assert_int_equal(ti.ulMaxPinLen, 255);
	assert_true(padded_eq(
	    ti.manufacturerID, sizeof(ti.manufacturerID), "custody mock"));
	assert_int_equal(
	    p11->C_OpenSession(
		old, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
	    CKR_TOKEN_NOT_RECOGNIZED);

	memset(label, ' ', sizeof(label));
	memcpy(label, LABEL, strlen(LABEL));
	assert_int_equal(
	    p11->C_InitToken(old, (CK_UTF8CHAR_PTR) "123", 3, label),
	    CKR_PIN_INCORRECT);
	assert_int_equal(p11->C_InitToken(old + 1, (CK_UTF8CHAR_PTR)SO_PIN,
			     strlen(SO_PIN), label),
	    CKR_SLOT_ID_INVALID);
	assert_int_equal(p11->C_InitToken(old, (CK_UTF8CHAR_PTR)SO_PIN,
			     strlen(SO_PIN), label),
	    CKR_OK);

	/* the slot moved, like SoftHSM2's */
	assert_int_equal(p11->C_GetTokenInfo(old, &ti), CKR_SLOT_ID_INVALID);
	slot = the_slot();
	assert_true(slot != old);
	assert_int_equal(p11->C_GetTokenInfo(slot, &ti), CKR_OK);
	assert_true(padded_eq(ti.label, sizeof(ti.label), LABEL));
	assert_true(ti.flags & CKF_TOKEN_INITIALIZED);
	assert_true(ti.flags & CKF_LOGIN_REQUIRED);
	assert_true(ti.flags & CKF_RNG);
	assert_false(ti.flags & CKF_USER_PIN_INITIALIZED);

	s = open_session(1);
	assert_int_equal(
	    login(s, CKU_USER, USER_PIN), CKR_USER_PIN_NOT_INITIALIZED);
	assert_int_equal(
	    p11->C_InitPIN(s, (CK_UTF8CHAR_PTR)USER_PIN, strlen(USER_PIN)),
	    CKR_USER_NOT_LOGGED_IN);
	ro = open_session(0);
	assert_int_equal(
	    login(s, CKU_SO, SO_PIN), CKR_SESSION_READ_ONLY_EXISTS);
	assert_int_equal(p11->C_CloseSession(ro), CKR_OK);
	assert_int_equal(login(s, CKU_SO, "87654321"), CKR_PIN_INCORRECT);
	assert_int_equal(login(s, CKU_SO, SO_PIN), CKR_OK);
	assert_int_equal(mock_p11_is_logged_in(), 2);
	assert_int_equal(state_of(s), CKS_RW_SO_FUNCTIONS);
	assert_int_equal(
	    p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro),
	    CKR_SESSION_READ_WRITE_SO_EXISTS);
	assert_int_equal(
	    login(s, CKU_USER, USER_PIN), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
	assert_int_equal(
	    p11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "12", 2), CKR_PIN_LEN_RANGE);
	assert_int_equal(
	    p11->C_InitPIN(s, (CK_UTF8CHAR_PTR)USER_PIN, strlen(USER_PIN)),
	    CKR_OK);
	assert_int_equal(p11->C_Logout(s), CKR_OK);
	assert_int_equal(p11->C_GetTokenInfo(slot, &ti), CKR_OK);
	assert_true(ti.flags & CKF_USER_PIN_INITIALIZED);

	assert_int_equal(p11->C_InitToken(slot, (CK_UTF8CHAR_PTR)SO_PIN,
			     strlen(SO_PIN), label),
	    CKR_SESSION_EXISTS);
	assert_int_equal(login(s, CKU_USER, USER_PIN), CKR_OK);
	assert_int_equal(p11->C_CloseSession(s), CKR_OK);

	/* re-initialising needs the SO PIN */
	assert_int_equal(
	    p11->C_InitToken(slot, (CK_UTF8CHAR_PTR) "00000000", 8, label),
	    CKR_PIN_INCORRECT);
	assert_int_equal(the_slot(), slot);

	/* the token survives C_Finalize/C_Initialize */
	assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
	assert_int_equal(p11->C_Initialize(&a), CKR_OK);
	assert_int_equal(the_slot(), slot);
	s = open_session(1);
	assert_int_equal(login(s, CKU_USER, USER_PIN), CKR_OK);
}

static void
test_login_state(void **state)
{
	CK_SESSION_HANDLE s1, s2, s3;
	CK_TOKEN_INFO ti;

	(void)state;
	s1 = open_session(1);
	s2 = open_session(0);
	assert_int_equal(state_of(s1), CKS_RW_PUBLIC_SESSION);
	assert_int_equal(state_of(s2), CKS_RO_PUBLIC_SESSION);
	assert_int_equal(login(s1, CKU_USER, "0000"), CKR_PIN_INCORRECT);
	assert_int_equal(mock_p11_login_attempts(), 1);
	assert_int_equal(p11->C_GetTokenInfo(the_slot(), &ti), CKR_OK);
	assert_true(ti.flags & CKF_USER_PIN_COUNT_LOW);
	assert_int_equal(
	    p11->C_Login(s1, CKU_USER, NULL, 4), CKR_ARGUMENTS_BAD);
	assert_int_equal(login(s1, 42, USER_PIN), CKR_USER_TYPE_INVALID);

	/* login on one session logs in all of them */
	assert_int_equal(login(s1, CKU_USER, USER_PIN), CKR_OK);
	assert_int_equal(mock_p11_login_attempts(), 2);
	assert_int_equal(mock_p11_is_logged_in(), 1);
	assert_int_equal(p11->C_GetTokenInfo(the_slot(), &ti), CKR_OK);
	assert_false(ti.flags & CKF_USER_PIN_COUNT_LOW);
	assert_int_equal(
	    login(s2, CKU_USER, USER_PIN), CKR_USER_ALREADY_LOGGED_IN);
	assert_int_equal(
	    login(s1, CKU_USER, USER_PIN), CKR_USER_ALREADY_LOGGED_IN);
	assert_int_equal(mock_p11_login_attempts(), 2);
	assert_int_equal(state_of(s1), CKS_RW_USER_FUNCTIONS);
	assert_int_equal(state_of(s2), CKS_RO_USER_FUNCTIONS);
	s3 = open_session(0);
	assert_int_equal(state_of(s3), CKS_RO_USER_FUNCTIONS);
	assert_int_equal(p11->C_CloseSession(s3), CKR_OK);
	assert_int_equal(p11->C_CloseSession(s2), CKR_OK);
	assert_int_equal(
	    login(s1, CKU_SO, SO_PIN), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);

	/* logout anywhere logs out everywhere; twice is fine */
	s2 = open_session(0);
	assert_int_equal(p11->C_Logout(s2), CKR_OK);
	assert_int_equal(state_of(s1), CKS_RW_PUBLIC_SESSION);
	assert_int_equal(mock_p11_is_logged_in(), 0);
	assert_int_equal(p11->C_Logout(s2), CKR_OK);

	/* closed and never-opened handles */
	assert_int_equal(p11->C_CloseSession(s2), CKR_OK);
	assert_int_equal(p11->C_CloseSession(s2), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(
	    login(s2, CKU_USER, USER_PIN), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(
	    p11->C_OpenSession(the_slot(), CKF_RW_SESSION, NULL, NULL, &s3),
	    CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	assert_int_equal(mock_p11_open_sessions(), 1);
}

static void
test_pin_lock(void **state)
{
	CK_C_INITIALIZE_ARGS a;
	CK_SESSION_HANDLE s;
	CK_TOKEN_INFO ti;

	(void)state;
	(void)p11->C_Finalize(NULL);
	reset_initialised(2);
	init_args(&a);
	assert_int_equal(p11->C_Initialize(&a), CKR_OK);
	s = open_session(1);
	assert_int_equal(login(s, CKU_USER, "9999"), CKR_PIN_INCORRECT);
	assert_int_equal(p11->C_GetTokenInfo(the_slot(), &ti), CKR_OK);
	assert_true(ti.flags & CKF_USER_PIN_FINAL_TRY);
	assert_int_equal(login(s, CKU_USER, "9998"), CKR_PIN_INCORRECT);
	assert_int_equal(login(s, CKU_USER, USER_PIN), CKR_PIN_LOCKED);
	assert_int_equal(mock_p11_login_attempts(), 2);
	assert_int_equal(p11->C_GetTokenInfo(the_slot(), &ti), CKR_OK);
	assert_true(ti.flags & CKF_USER_PIN_LOCKED);
	/* the SO can unlock by setting a new user PIN */
	assert_int_equal(login(s, CKU_SO, SO_PIN), CKR_OK);
	assert_int_equal(
	    p11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "4321", 4), CKR_OK);
	assert_int_equal(p11->C_Logout(s), CKR_OK);
	assert_int_equal(login(s, CKU_USER, "4321"), CKR_OK);
}

static void
test_close_last_session_logs_out(void **state)
{
	CK_SESSION_HANDLE s1, s2, s3;
	CK_OBJECT_HANDLE pub, priv;

	(void)state;
	s1 = user_session();
	s2 = open_session(1);
	assert_int_equal(gen_key(s1, K_P256, "k1", &pub, &priv), CKR_OK);
	assert_int_equal(p11->C_CloseSession(s1), CKR_OK);
	assert_int_equal(mock_p11_is_logged_in(), 1);
	assert_int_equal(state_of(s2), CKS_RW_USER_FUNCTIONS);
	assert_int_equal(p11->C_CloseSession(s2), CKR_OK);
	assert_int_equal(mock_p11_is_logged_in(), 0);
	s3 = open_session(1);
	assert_int_equal(state_of(s3), CKS_RW_PUBLIC_SESSION);
	/* as in SoftHSM2, the application's object handles went with it */
	assert_int_equal(login(s3, CKU_USER, USER_PIN), CKR_OK);
	assert_int_equal(
	    get_bool(s3, find_one(s3, "k1", CKO_PUBLIC_KEY), CKA_VERIFY), 1);
	assert_int_equal(p11->C_GetAttributeValue(s3, pub, NULL, 0),
	    CKR_OBJECT_HANDLE_INVALID);
	assert_int_equal(mock_p11_object_count(), 2);

	/* C_CloseAllSessions too */
	s1 = open_session(0);
	assert_int_equal(p11->C_CloseAllSessions(the_slot()), CKR_OK);
	assert_int_equal(mock_p11_open_sessions(), 0);
	assert_int_equal(mock_p11_is_logged_in(), 0);
	assert_int_equal(state_of(open_session(0)), CKS_RO_PUBLIC_SESSION);
}

static void
test_ec_keys(void **state)
{
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s;
	EVP_PKEY *pk;

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_P256, "p256", &pub, &priv), CKR_OK);
	check_secure_key(s, pub, priv, K_P256);
	pk = export_pub(s, pub, K_P256);
	sign_verify(s, &m, priv, pk, K_P256, 64, 1);
	EVP_PKEY_free(pk);

	assert_int_equal(gen_key(s, K_P384, "p384", &pub, &priv), CKR_OK);
	check_secure_key(s, pub, priv, K_P384);
	pk = export_pub(s, pub, K_P384);
	sign_verify(s, &m, priv, pk, K_P384, 96, 1);
	EVP_PKEY_free(pk);

	/* there is no CKM_ECDSA_SHA256, as on SoftHSM2 */
	m.mechanism = CKM_ECDSA_SHA256;
	assert_int_equal(p11->C_SignInit(s, &m, priv), CKR_MECHANISM_INVALID);
	m.mechanism = CKM_EDDSA;
	assert_int_equal(
	    p11->C_SignInit(s, &m, priv), CKR_KEY_TYPE_INCONSISTENT);
	m.mechanism = CKM_ECDSA;
	assert_int_equal(
	    p11->C_SignInit(s, &m, pub), CKR_KEY_FUNCTION_NOT_PERMITTED);
}

static void
test_ed25519(void **state)
{
	static CK_BBOOL t = CK_TRUE;
	CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
	CK_MECHANISM gm = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[] = {
	    {CKA_TOKEN, &t, sizeof(t)},
	    {CKA_EC_PARAMS, (void *)name_ed25519, sizeof(name_ed25519)},
	};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s;
	EVP_PKEY *pk;

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_ED25519, "ed", &pub, &priv), CKR_OK);
	check_secure_key(s, pub, priv, K_ED25519);
	pk = export_pub(s, pub, K_ED25519);
	sign_verify(s, &m, priv, pk, K_ED25519, 64, 1);
	EVP_PKEY_free(pk);

	/* the curve may also be named, as pkcs11-tool does */
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &gm, pt, 2, NULL, 0, &pub, &priv),
	    CKR_OK);
	pk = export_pub(s, pub, K_ED25519);
	sign_verify(s, &m, priv, pk, K_ED25519, 64, 1);
	EVP_PKEY_free(pk);
}

static void
test_rsa(void **state)
{
	CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM m = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof(pss)};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s;
	unsigned char buf[512];
	CK_ULONG len, bits = 0;
	EVP_PKEY *pk;

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_RSA, "rsa", &pub, &priv), CKR_OK);
	check_secure_key(s, pub, priv, K_RSA);
	len = sizeof(bits);
	assert_int_equal(
	    get_attr(s, pub, CKA_MODULUS_BITS, &bits, &len), CKR_OK);
	assert_int_equal(bits, 2048);
	len = sizeof(buf);
	assert_int_equal(get_attr(s, pub, CKA_MODULUS, buf, &len), CKR_OK);
	assert_int_equal(len, 256);
	len = sizeof(buf);
	assert_int_equal(
	    get_attr(s, pub, CKA_PUBLIC_EXPONENT, buf, &len), CKR_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "\x01\x00\x01", 3);
	pk = export_pub(s, pub, K_RSA);
	sign_verify(s, &m, priv, pk, K_RSA, 256, 1);
	m.mechanism = CKM_RSA_PKCS_PSS;
	sign_verify(s, &m, priv, pk, K_RSA, 256, 1);
	EVP_PKEY_free(pk);

	/* a digest of the wrong length */
	len = sizeof(buf);
	assert_int_equal(p11->C_SignInit(s, &m, priv), CKR_OK);
	assert_int_equal(
	    p11->C_Sign(s, buf, 20, buf, &len), CKR_DATA_LEN_RANGE);
	assert_int_equal(
	    p11->C_Sign(s, buf, 32, buf, &len), CKR_OPERATION_NOT_INITIALIZED);

	/* wrong parameters */
	m.mechanism = CKM_SHA256_RSA_PKCS_PSS;
	pss.mgf = CKG_MGF1_SHA1;
	assert_int_equal(
	    p11->C_SignInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	pss.mgf = CKG_MGF1_SHA384;
	pss.hashAlg = CKM_SHA384;
	assert_int_equal(
	    p11->C_SignInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	pss.hashAlg = CKM_SHA256;
	pss.mgf = CKG_MGF1_SHA256;
	pss.sLen = 4096;
	assert_int_equal(
	    p11->C_SignInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	pss.sLen = 32;
	m.ulParameterLen = 3;
	assert_int_equal(
	    p11->C_SignInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	m.pParameter = NULL;
	m.ulParameterLen = 0;
	assert_int_equal(
	    p11->C_SignInit(s, &m, priv), CKR_MECHANISM_PARAM_INVALID);
	m.mechanism = CKM_ECDSA;
	assert_int_equal(
	    p11->C_SignInit(s, &m, priv), CKR_KEY_TYPE_INCONSISTENT);
}

static void
test_sign_protocol(void **state)
{
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE pub, priv, h;
	CK_SESSION_HANDLE s;
	unsigned char dig[32] = {1, 2, 3}, sig[128];
	CK_ULONG len;
	EVP_PKEY *pk;

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_P256, "proto", &pub, &priv), CKR_OK);
	pk = export_pub(s, pub, K_P256);
	len = sizeof(sig);
	assert_int_equal(p11->C_Sign(s, dig, sizeof(dig), sig, &len),
	    CKR_OPERATION_NOT_INITIALIZED);
	assert_int_equal(p11->C_SignInit(s, &m, priv), CKR_OK);
	assert_int_equal(p11->C_SignInit(s, &m, priv), CKR_OPERATION_ACTIVE);
	assert_int_equal(
	    p11->C_FindObjectsInit(s, NULL, 0), CKR_OPERATION_ACTIVE);
	/* size query: the operation stays active */
	len = 0;
	assert_int_equal(p11->C_Sign(s, dig, sizeof(dig), NULL, &len), CKR_OK);
	assert_int_equal(len, 64);
	/* too small: stays active too */
	len = 10;
	assert_int_equal(
	    p11->C_Sign(s, dig, sizeof(dig), sig, &len), CKR_BUFFER_TOO_SMALL);
	assert_int_equal(len, 64);
	len = sizeof(sig);
	assert_int_equal(p11->C_Sign(s, dig, sizeof(dig), sig, &len), CKR_OK);
	assert_int_equal(len, 64);
	assert_true(verify(pk, CKM_ECDSA, dig, sizeof(dig), sig, len));
	/* success ended it */
	assert_int_equal(p11->C_Sign(s, dig, sizeof(dig), sig, &len),
	    CKR_OPERATION_NOT_INITIALIZED);
	assert_int_equal(p11->C_SignInit(s, NULL, priv), CKR_ARGUMENTS_BAD);
	assert_int_equal(
	    p11->C_SignInit(s, &m, 0xdeadbeef), CKR_KEY_HANDLE_INVALID);
	EVP_PKEY_free(pk);

	/* a key generated with CKA_SIGN false */
	{
		static CK_BBOOL f = CK_FALSE;
		CK_MECHANISM gm = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
		CK_ATTRIBUTE pt[] = {
		    {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
		};
		CK_ATTRIBUTE vt[] = {{CKA_SIGN, &f, sizeof(f)}};

		assert_int_equal(
		    p11->C_GenerateKeyPair(s, &gm, pt, 1, vt, 1, &pub, &h),
		    CKR_OK);
		assert_int_equal(
		    p11->C_SignInit(s, &m, h), CKR_KEY_FUNCTION_NOT_PERMITTED);
	}
}

static void
test_keygen_errors_and_defaults(void **state)
{
	static CK_BBOOL t = CK_TRUE;
	static CK_ULONG bits = 1024;
	CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_BYTE junk[] = {0xff, 0x00};
	CK_ATTRIBUTE pt[] = {
	    {CKA_TOKEN, &t, sizeof(t)},
	    {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
	};
	CK_ATTRIBUTE vt[] = {{CKA_TOKEN, &t, sizeof(t)}};
	CK_ATTRIBUTE bad[] = {{CKA_LOCAL, &t, sizeof(t)}};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s, ro;
	unsigned char buf[64];
	CK_ULONG len;

	(void)state;
	s = open_session(1);
	ro = open_session(0);
	assert_int_equal(
	    gen_key(s, K_P256, "x", &pub, &priv), CKR_USER_NOT_LOGGED_IN);
	assert_int_equal(login(s, CKU_USER, USER_PIN), CKR_OK);
	assert_int_equal(
	    gen_key(ro, K_P256, "x", &pub, &priv), CKR_SESSION_READ_ONLY);
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, NULL, pt, 2, vt, 1, &pub, &priv),
	    CKR_ARGUMENTS_BAD);
	m.mechanism = CKM_DSA_KEY_PAIR_GEN;
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, vt, 1, &pub, &priv),
	    CKR_MECHANISM_INVALID);

	/* curve parameters */
	m.mechanism = CKM_EC_KEY_PAIR_GEN;
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 1, vt, 1, &pub, &priv),
	    CKR_TEMPLATE_INCOMPLETE);
	pt[1].pValue = (void *)oid_p521;
	pt[1].ulValueLen = sizeof(oid_p521);
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, vt, 1, &pub, &priv),
	    CKR_CURVE_NOT_SUPPORTED);
	pt[1].pValue = (void *)oid_ed25519;
	pt[1].ulValueLen = sizeof(oid_ed25519);
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, vt, 1, &pub, &priv),
	    CKR_CURVE_NOT_SUPPORTED);
	pt[1].pValue = junk;
	pt[1].ulValueLen = sizeof(junk);
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, vt, 1, &pub, &priv),
	    CKR_DOMAIN_PARAMS_INVALID);
	m.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
	pt[1].pValue = (void *)oid_p256;
	pt[1].ulValueLen = sizeof(oid_p256);
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, vt, 1, &pub, &priv),
	    CKR_CURVE_NOT_SUPPORTED);

	/* template checks */
	m.mechanism = CKM_EC_KEY_PAIR_GEN;
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, bad, 1, &pub, &priv),
	    CKR_ATTRIBUTE_READ_ONLY);
	bad[0].type = CKA_SIGN; /* not a public-key attribute */
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, bad, 1, vt, 1, &pub, &priv),
	    CKR_ATTRIBUTE_TYPE_INVALID);
	bad[0].ulValueLen = 4;
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, bad, 1, &pub, &priv),
	    CKR_ATTRIBUTE_VALUE_INVALID);

	/* RSA size limits, before any slow generation */
	m.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
	pt[1].type = CKA_MODULUS_BITS;
	pt[1].pValue = &bits;
	pt[1].ulValueLen = sizeof(bits);
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, vt, 1, &pub, &priv),
	    CKR_KEY_SIZE_RANGE);
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 1, vt, 1, &pub, &priv),
	    CKR_TEMPLATE_INCOMPLETE);
	assert_int_equal(mock_p11_object_count(), 0);

	/* SoftHSM2's defaults for a minimal template */
	m.mechanism = CKM_EC_KEY_PAIR_GEN;
	pt[1].type = CKA_EC_PARAMS;
	pt[1].pValue = (void *)oid_p256;
	pt[1].ulValueLen = sizeof(oid_p256);
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, vt, 1, &pub, &priv), CKR_OK);
	assert_int_equal(get_bool(s, priv, CKA_PRIVATE), 1);
	assert_int_equal(get_bool(s, priv, CKA_SENSITIVE), 0);
	assert_int_equal(get_bool(s, priv, CKA_EXTRACTABLE), 0);
	assert_int_equal(get_bool(s, priv, CKA_ALWAYS_SENSITIVE), 0);
	assert_int_equal(get_bool(s, priv, CKA_NEVER_EXTRACTABLE), 1);
	assert_int_equal(get_bool(s, priv, CKA_DECRYPT), 1);
	assert_int_equal(get_bool(s, priv, CKA_SIGN), 1);
	assert_int_equal(get_bool(s, priv, CKA_LOCAL), 1);
	assert_int_equal(get_bool(s, pub, CKA_PRIVATE), 0);
	assert_int_equal(get_bool(s, pub, CKA_TOKEN), 1);
	len = sizeof(buf);
	assert_int_equal(
	    get_attr(s, priv, CKA_VALUE, buf, &len), CKR_ATTRIBUTE_SENSITIVE);
	len = sizeof(buf);
	assert_int_equal(get_attr(s, priv, CKA_EC_PARAMS, buf, &len), CKR_OK);
	assert_int_equal(len, sizeof(oid_p256));
	assert_memory_equal(buf, oid_p256, len);
	assert_int_equal(mock_p11_object_count(), 2);
}

static void
test_attributes(void **state)
{
	static CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s, ro;
	char label[32], v[64], mod[8];
	CK_BBOOL sg = 0;
	CK_ULONG len;
	CK_ATTRIBUTE mixed[] = {
	    {CKA_LABEL, label, sizeof(label)},
	    {CKA_VALUE, v, sizeof(v)},
	    {CKA_MODULUS, mod, sizeof(mod)},
	    {CKA_SIGN, &sg, sizeof(sg)},
	};
	CK_ATTRIBUTE ro_attrs[] = {
	    {CKA_EXTRACTABLE, &t, sizeof(t)},
	    {CKA_SENSITIVE, &f, sizeof(f)},
	    {CKA_ALWAYS_SENSITIVE, &f, sizeof(f)},
	    {CKA_NEVER_EXTRACTABLE, &f, sizeof(f)},
	    {CKA_LOCAL, &f, sizeof(f)},
	    {CKA_CLASS, &len, sizeof(len)},
	    {CKA_KEY_TYPE, &len, sizeof(len)},
	};
	CK_ATTRIBUTE set[2] = {
	    {CKA_LABEL, "renamed", 7},
	    {CKA_EXTRACTABLE, &t, sizeof(t)},
	};
	size_t i;

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_P256, "attrs", &pub, &priv), CKR_OK);

	/* size query, exact, too small */
	len = 0;
	assert_int_equal(get_attr(s, pub, CKA_LABEL, NULL, &len), CKR_OK);
	assert_int_equal(len, 5);
	len = 2;
	assert_int_equal(
	    get_attr(s, pub, CKA_LABEL, label, &len), CKR_BUFFER_TOO_SMALL);
	assert_int_equal(len, CK_UNAVAILABLE_INFORMATION);
	len = 5;
	assert_int_equal(get_attr(s, pub, CKA_LABEL, label, &len), CKR_OK);
	assert_memory_equal(label, "attrs", 5);
	len = sizeof(label);
	assert_int_equal(get_attr(s, pub, CKA_MODULUS, label, &len),
	    CKR_ATTRIBUTE_TYPE_INVALID);
	assert_int_equal(len, CK_UNAVAILABLE_INFORMATION);
	/* an EC private key has no CKA_EC_POINT on SoftHSM2 */
	len = sizeof(v);
	assert_int_equal(get_attr(s, priv, CKA_EC_POINT, v, &len),
	    CKR_ATTRIBUTE_TYPE_INVALID);

	/* every attribute is processed; SENSITIVE wins */
	assert_int_equal(p11->C_GetAttributeValue(s, priv, mixed, 4),
	    CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(mixed[0].ulValueLen, 5);
	assert_memory_equal(label, "attrs", 5);
	assert_int_equal(mixed[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
	assert_int_equal(mixed[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
	assert_int_equal(mixed[3].ulValueLen, 1);
	assert_int_equal(sg, CK_TRUE);
	mixed[1] = mixed[3];
	mixed[2].ulValueLen = sizeof(mod);
	assert_int_equal(p11->C_GetAttributeValue(s, priv, mixed, 3),
	    CKR_ATTRIBUTE_TYPE_INVALID);
	assert_int_equal(p11->C_GetAttributeValue(s, 0x7777, mixed, 1),
	    CKR_OBJECT_HANDLE_INVALID);

	/* refused changes */
	for (i = 0; i < sizeof(ro_attrs) / sizeof(ro_attrs[0]); i++)
		assert_int_equal(
		    p11->C_SetAttributeValue(s, priv, &ro_attrs[i], 1),
		    CKR_ATTRIBUTE_READ_ONLY);
	assert_int_equal(get_bool(s, priv, CKA_EXTRACTABLE), 0);
	assert_int_equal(get_bool(s, priv, CKA_SENSITIVE), 1);
	/* all or nothing */
	assert_int_equal(
	    p11->C_SetAttributeValue(s, priv, set, 2), CKR_ATTRIBUTE_READ_ONLY);
	len = sizeof(label);
	assert_int_equal(get_attr(s, priv, CKA_LABEL, label, &len), CKR_OK);
	assert_int_equal(len, 5);
	/* the label may change, but not on a read-only session */
	ro = open_session(0);
	assert_int_equal(
	    p11->C_SetAttributeValue(ro, priv, set, 1), CKR_SESSION_READ_ONLY);
	assert_int_equal(p11->C_SetAttributeValue(s, priv, set, 1), CKR_OK);
	len = sizeof(label);
	assert_int_equal(get_attr(s, priv, CKA_LABEL, label, &len), CKR_OK);
	assert_int_equal(len, 7);
	assert_memory_equal(label, "renamed", 7);
}

static void
test_find_destroy(void **state)
{
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE apub, apriv, bpub, bpriv, h[4], np;
	CK_ATTRIBUTE byid = {CKA_ID, "A", 1};
	CK_SESSION_HANDLE s, ro;
	unsigned char dig[32] = {0}, sig[64];
	CK_ULONG n, len;

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_P256, "A", &apub, &apriv), CKR_OK);
	assert_int_equal(gen_key(s, K_ED25519, "B", &bpub, &bpriv), CKR_OK);
	assert_int_equal(mock_p11_object_count(), 4);
	assert_int_equal(find(s, NULL, 0, h, 4), 4);
	assert_int_equal(find(s, &byid, 1, h, 4), 2);
	assert_int_equal(find_one(s, "A", CKO_PRIVATE_KEY), apriv);
	assert_int_equal(find_one(s, "B", CKO_PUBLIC_KEY), bpub);
	assert_int_equal(find_one(s, "C", CKO_PUBLIC_KEY), CK_INVALID_HANDLE);

	/* one search per session, in pieces */
	assert_int_equal(p11->C_FindObjectsInit(s, &byid, 1), CKR_OK);
	assert_int_equal(
	    p11->C_FindObjectsInit(s, &byid, 1), CKR_OPERATION_ACTIVE);
	assert_int_equal(p11->C_SignInit(s, &m, apriv), CKR_OPERATION_ACTIVE);
	assert_int_equal(p11->C_FindObjects(s, h, 1, &n), CKR_OK);
	assert_int_equal(n, 1);
	assert_int_equal(p11->C_FindObjects(s, h + 1, 1, &n), CKR_OK);
	assert_int_equal(n, 1);
	assert_int_equal(p11->C_FindObjects(s, h + 2, 1, &n), CKR_OK);
	assert_int_equal(n, 0);
	assert_int_equal(p11->C_FindObjectsFinal(s), CKR_OK);
	assert_int_equal(
	    p11->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
	assert_int_equal(
	    p11->C_FindObjects(s, h, 1, &n), CKR_OPERATION_NOT_INITIALIZED);

	/* private objects are invisible when logged out, and (as on SoftHSM2)
	 * their handles do not survive the logout */
	assert_int_equal(p11->C_Logout(s), CKR_OK);
	assert_int_equal(find(s, &byid, 1, h, 4), 1);
	assert_int_equal(h[0], apub);
	assert_int_equal(p11->C_GetAttributeValue(s, apriv, &byid, 0),
	    CKR_OBJECT_HANDLE_INVALID);
	assert_int_equal(login(s, CKU_USER, USER_PIN), CKR_OK);
	assert_int_equal(p11->C_SignInit(s, &m, apriv), CKR_KEY_HANDLE_INVALID);
	np = find_one(s, "A", CKO_PRIVATE_KEY);
	assert_true(np != CK_INVALID_HANDLE && np != apriv);
	apriv = np;
	len = sizeof(sig);
	assert_int_equal(
	    sign(s, &m, apriv, dig, sizeof(dig), sig, &len), CKR_OK);

	/* destroy */
	ro = open_session(0);
	assert_int_equal(
	    p11->C_DestroyObject(ro, apriv), CKR_SESSION_READ_ONLY);
	assert_int_equal(p11->C_DestroyObject(s, apriv), CKR_OK);
	assert_int_equal(mock_p11_object_count(), 3);
	assert_int_equal(p11->C_GetAttributeValue(s, apriv, &byid, 0),
	    CKR_OBJECT_HANDLE_INVALID);
	assert_int_equal(p11->C_SignInit(s, &m, apriv), CKR_KEY_HANDLE_INVALID);
	assert_int_equal(
	    p11->C_DestroyObject(s, apriv), CKR_OBJECT_HANDLE_INVALID);
	assert_int_equal(find(s, &byid, 1, h, 4), 1);
	assert_int_equal(p11->C_DestroyObject(s, apub), CKR_OK);
	assert_int_equal(find(s, &byid, 1, h, 4), 0);
	assert_int_equal(mock_p11_object_count(), 2);
}

static void
test_session_objects(void **state)
{
	static CK_BBOOL f = CK_FALSE;
	CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pt[] = {
	    {CKA_TOKEN, &f, sizeof(f)},
	    {CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)},
	};
	CK_ATTRIBUTE vt[] = {{CKA_TOKEN, &f, sizeof(f)}};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE anchor, s;

	(void)state;
	anchor = user_session();
	s = open_session(0); /* session objects need no RW session */
	assert_int_equal(
	    p11->C_GenerateKeyPair(s, &m, pt, 2, vt, 1, &pub, &priv), CKR_OK);
	assert_int_equal(mock_p11_object_count(), 2);
	assert_int_equal(get_bool(anchor, priv, CKA_TOKEN), 0);
	assert_int_equal(p11->C_CloseSession(s), CKR_OK);
	assert_int_equal(mock_p11_object_count(), 0);
}

/* Data objects as SoftHSM2 makes them (CreateObject, P11DataObj): private
 * by default, binary values read exactly, checks in SoftHSM2's order. */
static void
test_data_objects(void **state)
{
	static const CK_BYTE value[] = {'c', 0x00, 'p', 0xff, 0x00};
	static CK_OBJECT_CLASS data = CKO_DATA, secret = CKO_SECRET_KEY;
	static CK_BBOOL t = CK_TRUE, f = CK_FALSE;
	static CK_ULONG four = 4;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &data, sizeof(data)},
	    {CKA_TOKEN, &t, sizeof(t)},
	    {CKA_APPLICATION, "custody", 7},
	    {CKA_LABEL, "cp", 2},
	    {CKA_VALUE, (void *)value, sizeof(value)},
	};
	CK_ATTRIBUTE byapp[] = {
	    {CKA_CLASS, &data, sizeof(data)},
	    {CKA_APPLICATION, "custody", 7},
	    {CKA_LABEL, "cp", 2},
	};
	CK_ATTRIBUTE pubt[] = {
	    {CKA_CLASS, &data, sizeof(data)},
	    {CKA_TOKEN, &t, sizeof(t)},
	    {CKA_PRIVATE, &f, sizeof(f)},
	    {CKA_LABEL, "pub", 3},
	};
	CK_ATTRIBUTE sesst[] = {
	    {CKA_CLASS, &data, sizeof(data)},
	    {CKA_VALUE, "", 0},
	};
	CK_ATTRIBUTE noclass[] = {{CKA_LABEL, "x", 1}};
	CK_ATTRIBUTE withid[] = {
	    {CKA_CLASS, &data, sizeof(data)},
	    {CKA_ID, "x", 1},
	};
	CK_ATTRIBUTE badbool[] = {
	    {CKA_CLASS, &data, sizeof(data)},
	    {CKA_PRIVATE, &four, sizeof(four)},
	};
	CK_ATTRIBUTE notdata[] = {{CKA_CLASS, &secret, sizeof(secret)}};
	CK_ATTRIBUTE many[33];
	CK_ATTRIBUTE setv = {CKA_VALUE, "new", 3};
	CK_SESSION_HANDLE s, s2, ro;
	CK_OBJECT_HANDLE h, h2, found[4];
	CK_BYTE buf[16];
	CK_ULONG len, i;

	(void)state;
	s = user_session();
	assert_int_equal(p11->C_CreateObject(s, tmpl, 5, &h), CKR_OK);
	assert_int_equal(mock_p11_object_count(), 1);
	assert_int_equal(get_bool(s, h, CKA_PRIVATE), 1);
	assert_int_equal(get_bool(s, h, CKA_TOKEN), 1);
	assert_int_equal(get_bool(s, h, CKA_MODIFIABLE), 1);
	assert_int_equal(get_bool(s, h, CKA_DESTROYABLE), 1);
	len = sizeof(buf);
	assert_int_equal(get_attr(s, h, CKA_OBJECT_ID, buf, &len), CKR_OK);
	assert_int_equal(len, 0);
	/* no CKA_ID on a data object */
	len = sizeof(buf);
	assert_int_equal(
	    get_attr(s, h, CKA_ID, buf, &len), CKR_ATTRIBUTE_TYPE_INVALID);
	assert_int_equal(len, CK_UNAVAILABLE_INFORMATION);
	/* the value: its length, too small a buffer, then the bytes */
	len = 0;
	assert_int_equal(get_attr(s, h, CKA_VALUE, NULL, &len), CKR_OK);
	assert_int_equal(len, sizeof(value));
	len = 2;
	assert_int_equal(
	    get_attr(s, h, CKA_VALUE, buf, &len), CKR_BUFFER_TOO_SMALL);
	assert_int_equal(len, CK_UNAVAILABLE_INFORMATION);
	len = sizeof(buf);
	assert_int_equal(get_attr(s, h, CKA_VALUE, buf, &len), CKR_OK);
	assert_int_equal(len, sizeof(value));
	assert_memory_equal(buf, value, sizeof(value));
	assert_int_equal(find(s, byapp, 3, found, 4), 1);
	assert_int_equal(found[0], h);

	/* private: invisible and unreadable when logged out, not creatable;
	 * a public token object needs only a read-write session */
	assert_int_equal(p11->C_Logout(s), CKR_OK);
	assert_int_equal(find(s, byapp, 3, found, 4), 0);
	len = sizeof(buf);
	assert_int_equal(
	    get_attr(s, h, CKA_VALUE, buf, &len), CKR_OBJECT_HANDLE_INVALID);
	assert_int_equal(
	    p11->C_CreateObject(s, tmpl, 5, &h2), CKR_USER_NOT_LOGGED_IN);
	ro = open_session(0);
	assert_int_equal(
	    p11->C_CreateObject(ro, pubt, 4, &h2), CKR_SESSION_READ_ONLY);
	assert_int_equal(p11->C_CreateObject(s, pubt, 4, &h2), CKR_OK);
	assert_int_equal(get_bool(s, h2, CKA_PRIVATE), 0);
	assert_int_equal(p11->C_DestroyObject(s, h2), CKR_OK);
	assert_int_equal(login(s, CKU_USER, USER_PIN), CKR_OK);
	assert_int_equal(find(s, byapp, 3, found, 4), 1);
	assert_true(found[0] != h); /* renumbered, as keys are */
	h = found[0];

	/* template errors, in SoftHSM2's order; none creates anything */
	assert_int_equal(
	    p11->C_CreateObject(s, NULL, 0, &h2), CKR_ARGUMENTS_BAD);
	assert_int_equal(
	    p11->C_CreateObject(s, tmpl, 5, NULL), CKR_ARGUMENTS_BAD);
	assert_int_equal(
	    p11->C_CreateObject(s, noclass, 1, &h2), CKR_TEMPLATE_INCOMPLETE);
	assert_int_equal(
	    p11->C_CreateObject(s, withid, 2, &h2), CKR_ATTRIBUTE_TYPE_INVALID);
	assert_int_equal(p11->C_CreateObject(s, badbool, 2, &h2),
	    CKR_ATTRIBUTE_VALUE_INVALID);
	assert_int_equal(p11->C_CreateObject(s, notdata, 1, &h2),
	    CKR_ATTRIBUTE_VALUE_INVALID);
	for (i = 0; i < 33; i++)
		many[i] = (CK_ATTRIBUTE){CKA_LABEL, "m", 1};
	many[0] = tmpl[0];
	assert_int_equal(
	    p11->C_CreateObject(s, many, 33, &h2), CKR_TEMPLATE_INCONSISTENT);
	assert_int_equal(p11->C_CreateObject(s, many, 32, &h2), CKR_OK);
	assert_int_equal(p11->C_DestroyObject(s, h2), CKR_OK);
	mock_p11_fail("C_CreateObject", CKR_DEVICE_ERROR, 1, 1);
	assert_int_equal(
	    p11->C_CreateObject(s, tmpl, 5, &h2), CKR_DEVICE_ERROR);
	assert_int_equal(mock_p11_object_count(), 1);

	/* a private session object, with an empty value, in a read-only
	 * session; it goes with its session */
	s2 = open_session(0);
	assert_int_equal(p11->C_CreateObject(s2, sesst, 2, &h2), CKR_OK);
	assert_int_equal(mock_p11_object_count(), 2);
	assert_int_equal(get_bool(s, h2, CKA_TOKEN), 0);
	len = sizeof(buf);
	assert_int_equal(get_attr(s, h2, CKA_VALUE, buf, &len), CKR_OK);
	assert_int_equal(len, 0);
	assert_int_equal(p11->C_CloseSession(s2), CKR_OK);
	assert_int_equal(mock_p11_object_count(), 1);

	/* the value can be changed, and the object destroyed */
	assert_int_equal(p11->C_SetAttributeValue(s, h, &setv, 1), CKR_OK);
	len = sizeof(buf);
	assert_int_equal(get_attr(s, h, CKA_VALUE, buf, &len), CKR_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "new", 3);
	assert_int_equal(p11->C_DestroyObject(ro, h), CKR_SESSION_READ_ONLY);
	assert_int_equal(p11->C_DestroyObject(s, h), CKR_OK);
	assert_int_equal(find(s, byapp, 3, found, 4), 0);
	assert_int_equal(mock_p11_object_count(), 0);
}

static void
test_persistence(void **state)
{
	CK_C_INITIALIZE_ARGS a;
	CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s;
	CK_SESSION_INFO si;
	unsigned char sig[64];
	CK_ULONG len = sizeof(sig);

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_ED25519, "keep", &pub, &priv), CKR_OK);
	assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
	assert_int_equal(mock_p11_open_sessions(), 0);
	assert_int_equal(mock_p11_object_count(), 2);
	init_args(&a);
	assert_int_equal(p11->C_Initialize(&a), CKR_OK);
	assert_int_equal(mock_p11_is_logged_in(), 0);
	assert_int_equal(
	    p11->C_GetSessionInfo(s, &si), CKR_SESSION_HANDLE_INVALID);
	s = user_session();
	assert_int_equal(p11->C_SignInit(s, &m, priv), CKR_KEY_HANDLE_INVALID);
	priv = find_one(s, "keep", CKO_PRIVATE_KEY);
	assert_true(priv != CK_INVALID_HANDLE);
	assert_int_equal(
	    sign(s, &m, priv, msg, sizeof(msg), sig, &len), CKR_OK);
}

static void
test_fault_injection(void **state)
{
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s, s2;
	CK_SESSION_INFO si;
	unsigned char dig[32] = {0}, sig[64], rnd[8];
	CK_ULONG len;
	CK_INFO info;
	unsigned long before;
	int i;

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_P256, "f", &pub, &priv), CKR_OK);

	/* nth = 2, count = 2: calls 2 and 3 fail, counted from now */
	assert_int_equal(p11->C_GetInfo(&info), CKR_OK);
	before = mock_p11_calls("C_GetInfo");
	mock_p11_fail("C_GetInfo", CKR_DEVICE_ERROR, 2, 2);
	assert_int_equal(p11->C_GetInfo(&info), CKR_OK);
	assert_int_equal(p11->C_GetInfo(&info), CKR_DEVICE_ERROR);
	assert_int_equal(p11->C_GetInfo(&info), CKR_DEVICE_ERROR);
	assert_int_equal(p11->C_GetInfo(&info), CKR_OK);
	assert_int_equal(p11->C_GetInfo(&info), CKR_OK);
	assert_int_equal(mock_p11_calls("C_GetInfo"), before + 5);

	/* count < 0: forever, until cleared */
	mock_p11_fail("C_GenerateRandom", CKR_DEVICE_REMOVED, 1, -1);
	for (i = 0; i < 5; i++)
		assert_int_equal(p11->C_GenerateRandom(s, rnd, sizeof(rnd)),
		    CKR_DEVICE_REMOVED);
	mock_p11_clear_faults();
	assert_int_equal(p11->C_GenerateRandom(s, rnd, sizeof(rnd)), CKR_OK);

	/* two rules on one function: the first that fires wins */
	mock_p11_fail("C_GetSessionInfo", CKR_SESSION_CLOSED, 1, 1);
	mock_p11_fail("C_GetSessionInfo", CKR_DEVICE_ERROR, 1, 2);
	assert_int_equal(p11->C_GetSessionInfo(s, &si), CKR_SESSION_CLOSED);
	assert_int_equal(p11->C_GetSessionInfo(s, &si), CKR_DEVICE_ERROR);
	assert_int_equal(p11->C_GetSessionInfo(s, &si), CKR_OK);

	/* eight rules at once, on eight functions */
	mock_p11_fail("C_OpenSession", CKR_SESSION_COUNT, 1, 1);
	mock_p11_fail("C_Login", CKR_DEVICE_ERROR, 1, 1);
	mock_p11_fail("C_FindObjectsInit", CKR_DEVICE_MEMORY, 1, 1);
	mock_p11_fail("C_GetAttributeValue", CKR_GENERAL_ERROR, 1, 1);
	mock_p11_fail("C_SignInit", CKR_FUNCTION_FAILED, 1, 1);
	mock_p11_fail("C_GetTokenInfo", CKR_TOKEN_NOT_PRESENT, 1, 1);
	mock_p11_fail("C_CloseSession", CKR_DEVICE_REMOVED, 1, 1);
	mock_p11_fail("C_Initialize", CKR_CANT_LOCK, 1, 1);
	before = mock_p11_open_sessions();
	assert_int_equal(
	    p11->C_OpenSession(the_slot(), CKF_SERIAL_SESSION, NULL, NULL, &s2),
	    CKR_SESSION_COUNT);
	assert_int_equal(mock_p11_open_sessions(), before);
	before = mock_p11_login_attempts();
	assert_int_equal(login(s, CKU_USER, USER_PIN), CKR_DEVICE_ERROR);
	assert_int_equal(mock_p11_login_attempts(), before);
	assert_int_equal(p11->C_FindObjectsInit(s, NULL, 0), CKR_DEVICE_MEMORY);
	assert_int_equal(
	    p11->C_GetAttributeValue(s, pub, NULL, 0), CKR_GENERAL_ERROR);
	assert_int_equal(p11->C_SignInit(s, &m, priv), CKR_FUNCTION_FAILED);
	assert_int_equal(
	    p11->C_Sign(s, dig, 32, NULL, &len), CKR_OPERATION_NOT_INITIALIZED);
	{
		CK_TOKEN_INFO ti;

		assert_int_equal(p11->C_GetTokenInfo(the_slot(), &ti),
		    CKR_TOKEN_NOT_PRESENT);
	}
	s2 = open_session(0);
	assert_int_equal(p11->C_CloseSession(s2), CKR_DEVICE_REMOVED);
	assert_int_equal(p11->C_CloseSession(s2), CKR_OK);
	assert_int_equal(p11->C_Initialize(NULL), CKR_CANT_LOCK);
	assert_int_equal(
	    p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	assert_int_equal(mock_p11_calls("C_Initialize"), 3);

	/* a failed C_Sign ends the operation; BUFFER_TOO_SMALL does not */
	mock_p11_clear_faults();
	assert_int_equal(p11->C_SignInit(s, &m, priv), CKR_OK);
	mock_p11_fail("C_Sign", CKR_BUFFER_TOO_SMALL, 1, 1);
	mock_p11_fail("C_Sign", CKR_DEVICE_ERROR, 2, 1);
	len = sizeof(sig);
	assert_int_equal(
	    p11->C_Sign(s, dig, 32, sig, &len), CKR_BUFFER_TOO_SMALL);
	assert_int_equal(p11->C_Sign(s, dig, 32, sig, &len), CKR_DEVICE_ERROR);
	assert_int_equal(
	    p11->C_Sign(s, dig, 32, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
	assert_int_equal(sign(s, &m, priv, dig, 32, sig, &len), CKR_OK);

	/* faults come before "not initialised" */
	assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
	mock_p11_fail("C_GetInfo", CKR_DEVICE_ERROR, 1, 1);
	assert_int_equal(p11->C_GetInfo(&info), CKR_DEVICE_ERROR);
	assert_int_equal(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
}

static void
test_invalidate_sessions(void **state)
{
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s1, s2, s3;
	CK_SESSION_INFO si;
	unsigned char dig[32] = {0}, sig[64];
	CK_ULONG len = sizeof(sig);

	(void)state;
	s1 = user_session();
	s2 = open_session(0);
	assert_int_equal(gen_key(s1, K_P256, "inv", &pub, &priv), CKR_OK);
	assert_int_equal(p11->C_SignInit(s2, &m, priv), CKR_OK);
	mock_p11_invalidate_sessions();
	assert_int_equal(mock_p11_open_sessions(), 0);
	assert_int_equal(mock_p11_is_logged_in(), 0);
	assert_int_equal(mock_p11_object_count(), 2);
	assert_int_equal(
	    p11->C_GetSessionInfo(s1, &si), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(
	    p11->C_Sign(s2, dig, 32, sig, &len), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(p11->C_CloseSession(s1), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(p11->C_Logout(s1), CKR_SESSION_HANDLE_INVALID);

	/* new sessions work, but need a login and a fresh search */
	s3 = open_session(1);
	assert_true(s3 != s1 && s3 != s2);
	assert_int_equal(state_of(s3), CKS_RW_PUBLIC_SESSION);
	assert_int_equal(p11->C_SignInit(s3, &m, priv), CKR_KEY_HANDLE_INVALID);
	assert_int_equal(login(s3, CKU_USER, USER_PIN), CKR_OK);
	priv = find_one(s3, "inv", CKO_PRIVATE_KEY);
	assert_true(priv != CK_INVALID_HANDLE);
	assert_int_equal(
	    sign(s3, &m, priv, dig, sizeof(dig), sig, &len), CKR_OK);
}

/* mock_p11_fail_reset(): the same loss, at the nth call of one function. */
static void
test_fail_reset(void **state)
{
	CK_OBJECT_HANDLE pub, priv, h[4];
	CK_SESSION_HANDLE s1, s2;
	CK_SESSION_INFO si;
	unsigned long calls;

	(void)state;
	s1 = user_session();
	s2 = open_session(0);
	assert_int_equal(gen_key(s1, K_P256, "rst", &pub, &priv), CKR_OK);
	calls = mock_p11_calls("C_FindObjectsInit");
	mock_p11_fail_reset("C_FindObjectsInit", 2);
	assert_int_equal(find(s2, NULL, 0, h, 4), 2);
	assert_int_equal(mock_p11_open_sessions(), 2);
	assert_int_equal(
	    p11->C_FindObjectsInit(s2, NULL, 0), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(mock_p11_open_sessions(), 0);
	assert_int_equal(mock_p11_is_logged_in(), 0);
	assert_int_equal(mock_p11_object_count(), 2);
	assert_int_equal(
	    p11->C_GetSessionInfo(s1, &si), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(mock_p11_calls("C_FindObjectsInit"), calls + 2);
	/* once only */
	s1 = user_session();
	assert_true(find_one(s1, "rst", CKO_PRIVATE_KEY) != priv);
	assert_int_equal(mock_p11_open_sessions(), 1);
}

static void
test_corrupt_signatures(void **state)
{
	CK_MECHANISM ec = {CKM_ECDSA, NULL, 0}, ed = {CKM_EDDSA, NULL, 0};
	CK_OBJECT_HANDLE p1, k1, p2, k2;
	CK_SESSION_HANDLE s;
	EVP_PKEY *pk1, *pk2;

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_P256, "c1", &p1, &k1), CKR_OK);
	assert_int_equal(gen_key(s, K_ED25519, "c2", &p2, &k2), CKR_OK);
	pk1 = export_pub(s, p1, K_P256);
	pk2 = export_pub(s, p2, K_ED25519);
	mock_p11_corrupt_signatures(1);
	sign_verify(s, &ec, k1, pk1, K_P256, 64, 0);
	sign_verify(s, &ed, k2, pk2, K_ED25519, 64, 0);
	mock_p11_corrupt_signatures(0);
	sign_verify(s, &ec, k1, pk1, K_P256, 64, 1);
	sign_verify(s, &ed, k2, pk2, K_ED25519, 64, 1);
	EVP_PKEY_free(pk1);
	EVP_PKEY_free(pk2);
}

static void
test_lie_attribute(void **state)
{
	static CK_BBOOL f = CK_FALSE;
	CK_OBJECT_HANDLE pub, priv, h[2];
	CK_SESSION_HANDLE s;
	CK_ATTRIBUTE q[] = {
	    {CKA_EXTRACTABLE, &f, sizeof(f)},
	    {CKA_ID, "lie", 3},
	};
	CK_BBOOL b;
	CK_ULONG len = sizeof(b);

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_P256, "lie", &pub, &priv), CKR_OK);
	mock_p11_lie_attribute(CKA_EXTRACTABLE, CK_TRUE);
	mock_p11_lie_attribute(CKA_NEVER_EXTRACTABLE, CK_TRUE);
	mock_p11_lie_attribute(CKA_NEVER_EXTRACTABLE, CK_FALSE);
	assert_int_equal(get_bool(s, priv, CKA_EXTRACTABLE), 1);
	assert_int_equal(get_bool(s, priv, CKA_NEVER_EXTRACTABLE), 0);
	assert_int_equal(get_bool(s, priv, CKA_SENSITIVE), 1);
	/* public keys are left alone */
	assert_int_equal(get_attr(s, pub, CKA_EXTRACTABLE, &b, &len),
	    CKR_ATTRIBUTE_TYPE_INVALID);
	/* searches use the truth */
	assert_int_equal(find(s, q, 2, h, 2), 1);
	assert_int_equal(h[0], priv);
	mock_p11_lie_attribute_clear();
	assert_int_equal(get_bool(s, priv, CKA_EXTRACTABLE), 0);
	assert_int_equal(get_bool(s, priv, CKA_NEVER_EXTRACTABLE), 1);
}

static int
has_mech(CK_MECHANISM_TYPE m, CK_ULONG *np)
{
	CK_MECHANISM_TYPE list[32];
	CK_ULONG i, n = 0;
	int found = 0;

	assert_int_equal(p11->C_GetMechanismList(the_slot(), NULL, &n), CKR_OK);
	assert_true(n <= 32);
	assert_int_equal(p11->C_GetMechanismList(the_slot(), list, &n), CKR_OK);
	for (i = 0; i < n; i++)
		if (list[i] == m)
			found = 1;
	*np = n;
	return found;
}

static void
test_mechanisms(void **state)
{
	CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
	CK_MECHANISM_TYPE one;
	CK_MECHANISM_INFO mi;
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s;
	CK_ULONG n, n2;

	(void)state;
	assert_true(has_mech(CKM_ECDSA, &n));
	assert_int_equal(n, 7);
	assert_true(has_mech(CKM_EDDSA, &n));
	assert_true(has_mech(CKM_SHA256_RSA_PKCS_PSS, &n));
	assert_true(has_mech(CKM_RSA_PKCS_PSS, &n));
	assert_true(has_mech(CKM_EC_KEY_PAIR_GEN, &n));
	assert_true(has_mech(CKM_EC_EDWARDS_KEY_PAIR_GEN, &n));
	assert_true(has_mech(CKM_RSA_PKCS_KEY_PAIR_GEN, &n));
	assert_false(has_mech(CKM_ECDSA_SHA256, &n));
	n = 1;
	assert_int_equal(p11->C_GetMechanismList(the_slot(), &one, &n),
	    CKR_BUFFER_TOO_SMALL);
	assert_int_equal(n, 7);
	assert_int_equal(
	    p11->C_GetMechanismInfo(the_slot(), CKM_ECDSA, &mi), CKR_OK);
	assert_true(mi.flags & CKF_SIGN);
	assert_int_equal(mi.ulMinKeySize, 256);
	assert_int_equal(mi.ulMaxKeySize, 384);
	assert_int_equal(
	    p11->C_GetMechanismInfo(the_slot(), CKM_ECDSA_SHA256, &mi),
	    CKR_MECHANISM_INVALID);

	s = user_session();
	assert_int_equal(gen_key(s, K_ED25519, "ed", &pub, &priv), CKR_OK);
	mock_p11_remove_mechanism(CKM_EDDSA);
	mock_p11_remove_mechanism(CKM_EC_EDWARDS_KEY_PAIR_GEN);
	assert_false(has_mech(CKM_EDDSA, &n2));
	assert_false(has_mech(CKM_EC_EDWARDS_KEY_PAIR_GEN, &n2));
	assert_int_equal(n2, n - 2);
	assert_int_equal(p11->C_GetMechanismInfo(the_slot(), CKM_EDDSA, &mi),
	    CKR_MECHANISM_INVALID);
	assert_int_equal(p11->C_SignInit(s, &m, priv), CKR_MECHANISM_INVALID);
	assert_int_equal(
	    gen_key(s, K_ED25519, "ed2", &pub, &priv), CKR_MECHANISM_INVALID);
	assert_int_equal(gen_key(s, K_P256, "ec", &pub, &priv), CKR_OK);
}

static void
test_destroy_noop(void **state)
{
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s;
	unsigned char dig[32] = {0}, sig[64];
	CK_ULONG len = sizeof(sig);

	(void)state;
	s = user_session();
	assert_int_equal(gen_key(s, K_P256, "stay", &pub, &priv), CKR_OK);
	mock_p11_destroy_noop(1);
	assert_int_equal(p11->C_DestroyObject(s, priv), CKR_OK);
	assert_int_equal(
	    p11->C_DestroyObject(s, 0x12345678), CKR_OBJECT_HANDLE_INVALID);
	assert_int_equal(mock_p11_object_count(), 2);
	assert_int_equal(find_one(s, "stay", CKO_PRIVATE_KEY), priv);
	assert_int_equal(sign(s, &m, priv, dig, 32, sig, &len), CKR_OK);
	mock_p11_destroy_noop(0);
	assert_int_equal(p11->C_DestroyObject(s, priv), CKR_OK);
	assert_int_equal(mock_p11_object_count(), 1);
	assert_int_equal(mock_p11_calls("C_DestroyObject"), 3);
}

static void
test_random(void **state)
{
	unsigned char a[32] = {0}, b[32] = {0};
	CK_SESSION_HANDLE s;

	(void)state;
	s = open_session(0);
	assert_int_equal(p11->C_GenerateRandom(s, a, sizeof(a)), CKR_OK);
	assert_int_equal(p11->C_GenerateRandom(s, b, sizeof(b)), CKR_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(p11->C_GenerateRandom(s + 1000, a, sizeof(a)),
	    CKR_SESSION_HANDLE_INVALID);
}

#define NTHREADS 4
#define NSIGNS	 50

struct worker {
	pthread_t tid;
	CK_SLOT_ID slot;
	CK_OBJECT_HANDLE key;
	EVP_PKEY *pk;
	int errors;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	CK_SESSION_HANDLE s;
	unsigned char dig[32], sig[64];
	CK_ULONG len;
	int i;

	if (p11->C_OpenSession(w->slot, CKF_SERIAL_SESSION, NULL, NULL, &s) !=
	    CKR_OK) {
		w->errors++;
		return NULL;
	}
	for (i = 0; i < NSIGNS; i++) {
		memset(dig, i, sizeof(dig));
		len = sizeof(sig);
		if (p11->C_SignInit(s, &m, w->key) != CKR_OK ||
		    p11->C_Sign(s, dig, sizeof(dig), sig, &len) != CKR_OK ||
		    !verify(w->pk, CKM_ECDSA, dig, sizeof(dig), sig, len))
			w->errors++;
	}
	if (p11->C_CloseSession(s) != CKR_OK)
		w->errors++;
	return NULL;
}

static void
test_threads(void **state)
{
	struct worker w[NTHREADS];
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE anchor;
	EVP_PKEY *pk;
	int i;

	(void)state;
	anchor = user_session();
	assert_int_equal(gen_key(anchor, K_P256, "mt", &pub, &priv), CKR_OK);
	pk = export_pub(anchor, pub, K_P256);
	memset(w, 0, sizeof(w));
	for (i = 0; i < NTHREADS; i++) {
		w[i].slot = the_slot();
		w[i].key = priv;
		w[i].pk = pk;
		assert_int_equal(
		    pthread_create(&w[i].tid, NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_join(w[i].tid, NULL), 0);
		assert_int_equal(w[i].errors, 0);
	}
	assert_int_equal(mock_p11_open_sessions(), 1);
	assert_int_equal(mock_p11_calls("C_Sign"), NTHREADS * NSIGNS);
	assert_int_equal(mock_p11_is_logged_in(), 1);
	EVP_PKEY_free(pk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_initialize, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_init_token, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_login_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pin_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_close_last_session_logs_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ec_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ed25519, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rsa, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_sign_protocol, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_keygen_errors_and_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attributes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find_destroy, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_session_objects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_objects, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_fault_injection, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_invalidate_sessions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fail_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_corrupt_signatures, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_lie_attribute, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mechanisms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_destroy_noop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_random, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	p11 = mock_p11_functions();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
