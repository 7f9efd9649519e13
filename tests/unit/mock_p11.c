/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A mock, fault-injecting PKCS#11 module for unit tests (API in mock_p11.h).
 *
 * One slot, one in-memory token, driven like SoftHSM2 2.6.1 with OpenSSL 3
 * doing the cryptography. What is imitated (SoftHSM2 source at 2.6.1 and the
 * runs in reference/pkcs11-backends.md sections 1 and 4):
 *
 *  - C_Initialize: CKR_CRYPTOKI_ALREADY_INITIALIZED checked first, then
 *    pReserved != NULL and half-given mutex callbacks are CKR_ARGUMENTS_BAD.
 *    Every other call before it is CKR_CRYPTOKI_NOT_INITIALIZED. C_Finalize
 *    closes every session; token objects survive until mock_p11_reset().
 *  - The slot id changes when the token is initialised (SoftHSM2 reassigns
 *    the slot), so callers must find the token by label.
 *  - C_OpenSession on an uninitialised token: CKR_TOKEN_NOT_RECOGNIZED; a
 *    read-only session while the SO is logged in:
 *    CKR_SESSION_READ_WRITE_SO_EXISTS.
 *  - Login state belongs to the application, not the session; the checks and
 *    their order are those of SoftHSM2's Token::loginUser/loginSO. C_Logout
 *    when nobody is logged in is CKR_OK.
 *  - Handles come from one counter shared by sessions and objects and are
 *    never reused. An object has a handle only once the application has been
 *    given one (by C_GenerateKeyPair or C_FindObjectsInit). As in SoftHSM2's
 *    HandleManager, logging out invalidates the handles of private objects,
 *    and closing the last session (or C_CloseAllSessions, C_Finalize,
 *    mock_p11_invalidate_sessions) invalidates every object handle: the
 *    objects are still there but have to be found again, and then get new
 *    handles. Private objects are invisible unless the user is logged in.
 *  - One active operation per session (find or sign): C_SignInit during a
 *    search, or C_FindObjectsInit during a signature, is
 *    CKR_OPERATION_ACTIVE.
 *  - Key-pair defaults and attribute semantics from SoftHSM2's P11Attributes
 *    and P11Objects (ALWAYS_SENSITIVE and NEVER_EXTRACTABLE derived at
 *    generation, CKA_DECRYPT/SIGN/UNWRAP default TRUE, SENSITIVE and
 *    EXTRACTABLE default FALSE, private keys private by default, public keys
 *    public); C_GetAttributeValue returns CKR_ATTRIBUTE_SENSITIVE before
 *    CKR_ATTRIBUTE_TYPE_INVALID before CKR_BUFFER_TOO_SMALL. EC private keys
 *    have CKA_EC_PARAMS and an unreadable CKA_VALUE but no CKA_EC_POINT; RSA
 *    private keys have CKA_MODULUS and CKA_PUBLIC_EXPONENT and unreadable CRT
 *    parts.
 *  - No CKM_ECDSA_SHA*: ECDSA is CKM_ECDSA over a digest, output r||s.
 *  - The signing key is copied into the operation at C_SignInit (an object
 *    destroyed after C_SignInit can still finish that one signature).
 *  - C_CreateObject makes data objects (CKO_DATA) as SoftHSM2's
 *    CreateObject and P11DataObj do: CKA_CLASS is required
 *    (CKR_TEMPLATE_INCOMPLETE), then the write check (a private object needs
 *    the user logged in, a token object a read-write session), then at most
 *    32 attributes (CKR_TEMPLATE_INCONSISTENT); the template may hold
 *    CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_MODIFIABLE, CKA_COPYABLE,
 *    CKA_DESTROYABLE, CKA_LABEL, CKA_APPLICATION, CKA_OBJECT_ID and CKA_VALUE
 *    (anything else: CKR_ATTRIBUTE_TYPE_INVALID). Defaults: a private
 *    session object, empty label, application, object id and value (an
 *    empty value is allowed). CKA_VALUE is readable (a data object is never
 *    sensitive) and, like the label, application and object id, settable.
 *
 * All memory is freed by mock_p11_reset() and, when the library is unloaded
 * (dlclose) or the process exits, by a destructor, so that ASan's leak check
 * stays quiet for a test that dlopens and dlcloses the mock. Private keys are
 * therefore kept as DER bytes (parsed again for each signature) and no
 * OpenSSL object lives between calls: the destructor may run after OpenSSL's
 * own atexit cleanup.
 *
 * Deliberate differences from SoftHSM2 (asked for by the tests' authors):
 * wrong CK_RSA_PKCS_PSS_PARAMS give CKR_MECHANISM_PARAM_INVALID (SoftHSM2:
 * CKR_ARGUMENTS_BAD); C_SignInit with an unknown key handle gives
 * CKR_KEY_HANDLE_INVALID; a removed key-generation mechanism really is
 * refused; C_InitPIN needs no C_SetPIN; the user PIN can lock after N wrong
 * tries; C_SeedRandom is not supported; one internal mutex is used whatever
 * C_Initialize is given; C_CreateObject makes only data objects (any other
 * class gives CKR_ATTRIBUTE_VALUE_INVALID, as tpm2-pkcs11 answers for the
 * classes it does not create).
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "mock_p11.h"

#define SLOT_UNINITIALISED 0x1234UL
#define SLOT_BASE	   0x0b5e0000UL
#define MIN_PIN_LEN	   4
#define MAX_PIN_LEN	   255
#define RSA_MIN_BITS	   2048
#define RSA_MAX_BITS	   4096
#define MAX_CREATE_ATTRS   32 /* SoftHSM2's CreateObject: maxAttribs */

#define MANUFACTURER	    "custody mock"
#define LIBRARY_DESCRIPTION "custody mock PKCS#11"

/* Every entry of the 2.40 function list, in order. */
enum fn_id {
	F_C_Initialize,
	F_C_Finalize,
	F_C_GetInfo,
	F_C_GetFunctionList,
	F_C_GetSlotList,
	F_C_GetSlotInfo,
	F_C_GetTokenInfo,
	F_C_GetMechanismList,
	F_C_GetMechanismInfo,
	F_C_InitToken,
	F_C_InitPIN,
	F_C_SetPIN,
	F_C_OpenSession,
	F_C_CloseSession,
	F_C_CloseAllSessions,
	F_C_GetSessionInfo,
	F_C_GetOperationState,
	F_C_SetOperationState,
	F_C_Login,
	F_C_Logout,
	F_C_CreateObject,
	F_C_CopyObject,
	F_C_DestroyObject,
	F_C_GetObjectSize,
	F_C_GetAttributeValue,
	F_C_SetAttributeValue,
	F_C_FindObjectsInit,
	F_C_FindObjects,
	F_C_FindObjectsFinal,
	F_C_EncryptInit,
	F_C_Encrypt,
	F_C_EncryptUpdate,
	F_C_EncryptFinal,
	F_C_DecryptInit,
	F_C_Decrypt,
	F_C_DecryptUpdate,
	F_C_DecryptFinal,
	F_C_DigestInit,
	F_C_Digest,
	F_C_DigestUpdate,
	F_C_DigestKey,
	F_C_DigestFinal,
	F_C_SignInit,
	F_C_Sign,
	F_C_SignUpdate,
	F_C_SignFinal,
	F_C_SignRecoverInit,
	F_C_SignRecover,
	F_C_VerifyInit,
	F_C_Verify,
	F_C_VerifyUpdate,
	F_C_VerifyFinal,
	F_C_VerifyRecoverInit,
	F_C_VerifyRecover,
	F_C_DigestEncryptUpdate,
	F_C_DecryptDigestUpdate,
	F_C_SignEncryptUpdate,
	F_C_DecryptVerifyUpdate,
	F_C_GenerateKey,
	F_C_GenerateKeyPair,
	F_C_WrapKey,
	F_C_UnwrapKey,
	F_C_DeriveKey,
	F_C_SeedRandom,
	F_C_GenerateRandom,
	F_C_GetFunctionStatus,
	F_C_CancelFunction,
	F_C_WaitForSlotEvent,
	F_COUNT
};

#define FN_NAME(n) [F_##n] = #n

static const char *const fn_names[F_COUNT] = {
    FN_NAME(C_Initialize),
    FN_NAME(C_Finalize),
    FN_NAME(C_GetInfo),
    FN_NAME(C_GetFunctionList),
    FN_NAME(C_GetSlotList),
    FN_NAME(C_GetSlotInfo),
    FN_NAME(C_GetTokenInfo),
    FN_NAME(C_GetMechanismList),
    FN_NAME(C_GetMechanismInfo),
    FN_NAME(C_InitToken),
    FN_NAME(C_InitPIN),
    FN_NAME(C_SetPIN),
    FN_NAME(C_OpenSession),
    FN_NAME(C_CloseSession),
    FN_NAME(C_CloseAllSessions),
    FN_NAME(C_GetSessionInfo),
    FN_NAME(C_GetOperationState),
    FN_NAME(C_SetOperationState),
    FN_NAME(C_Login),
    FN_NAME(C_Logout),
    FN_NAME(C_CreateObject),
    FN_NAME(C_CopyObject),
    FN_NAME(C_DestroyObject),
    FN_NAME(C_GetObjectSize),
    FN_NAME(C_GetAttributeValue),
    FN_NAME(C_SetAttributeValue),
    FN_NAME(C_FindObjectsInit),
    FN_NAME(C_FindObjects),
    FN_NAME(C_FindObjectsFinal),
    FN_NAME(C_EncryptInit),
    FN_NAME(C_Encrypt),
    FN_NAME(C_EncryptUpdate),
    FN_NAME(C_EncryptFinal),
    FN_NAME(C_DecryptInit),
    FN_NAME(C_Decrypt),
    FN_NAME(C_DecryptUpdate),
    FN_NAME(C_DecryptFinal),
    FN_NAME(C_DigestInit),
    FN_NAME(C_Digest),
    FN_NAME(C_DigestUpdate),
    FN_NAME(C_DigestKey),
    FN_NAME(C_DigestFinal),
    FN_NAME(C_SignInit),
    FN_NAME(C_Sign),
    FN_NAME(C_SignUpdate),
    FN_NAME(C_SignFinal),
    FN_NAME(C_SignRecoverInit),
    FN_NAME(C_SignRecover),
    FN_NAME(C_VerifyInit),
    FN_NAME(C_Verify),
    FN_NAME(C_VerifyUpdate),
    FN_NAME(C_VerifyFinal),
    FN_NAME(C_VerifyRecoverInit),
    FN_NAME(C_VerifyRecover),
    FN_NAME(C_DigestEncryptUpdate),
    FN_NAME(C_DecryptDigestUpdate),
    FN_NAME(C_SignEncryptUpdate),
    FN_NAME(C_DecryptVerifyUpdate),
    FN_NAME(C_GenerateKey),
    FN_NAME(C_GenerateKeyPair),
    FN_NAME(C_WrapKey),
    FN_NAME(C_UnwrapKey),
    FN_NAME(C_DeriveKey),
    FN_NAME(C_SeedRandom),
    FN_NAME(C_GenerateRandom),
    FN_NAME(C_GetFunctionStatus),
    FN_NAME(C_CancelFunction),
    FN_NAME(C_WaitForSlotEvent),
};

#define EC_MECH_FLAGS (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)

static const struct mech {
	CK_MECHANISM_TYPE type;
	CK_ULONG min_bits;
	CK_ULONG max_bits;
	CK_FLAGS flags;
} mechs[] = {
    {CKM_RSA_PKCS_KEY_PAIR_GEN, RSA_MIN_BITS, RSA_MAX_BITS,
	CKF_GENERATE_KEY_PAIR},
    {CKM_RSA_PKCS_PSS, RSA_MIN_BITS, RSA_MAX_BITS, CKF_SIGN},
    {CKM_SHA256_RSA_PKCS_PSS, RSA_MIN_BITS, RSA_MAX_BITS, CKF_SIGN},
    {CKM_EC_KEY_PAIR_GEN, 256, 384, CKF_GENERATE_KEY_PAIR | EC_MECH_FLAGS},
    {CKM_ECDSA, 256, 384, CKF_SIGN | EC_MECH_FLAGS},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, 256, 256, CKF_GENERATE_KEY_PAIR},
    {CKM_EDDSA, 256, 256, CKF_SIGN},
};

#define NMECHS (sizeof(mechs) / sizeof(mechs[0]))

enum curve {
	CURVE_NONE,
	CURVE_P256,
	CURVE_P384,
	CURVE_ED25519,
};

static const CK_BYTE oid_p256[] = {
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const CK_BYTE oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const CK_BYTE name_ed25519[] = {
    0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

enum login {
	LOGIN_NONE,
	LOGIN_USER,
	LOGIN_SO,
};

enum op {
	OP_NONE,
	OP_FIND,
	OP_SIGN,
};

struct attr {
	CK_ATTRIBUTE_TYPE type;
	CK_BYTE *value;
	CK_ULONG len;
};

struct object {
	struct object *next;
	CK_OBJECT_HANDLE handle; /* 0: the application has none */
	CK_SESSION_HANDLE owner; /* session object: its session */
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	int is_private;
	int oom; /* an attr_set() failed */
	struct attr *attrs;
	size_t nattrs;
	unsigned char *der; /* private keys: the key, DER */
	size_t derlen;
};

struct sign_op {
	CK_MECHANISM_TYPE mech;
	unsigned char *der; /* a copy of the key, DER */
	size_t derlen;
	const EVP_MD *md;  /* RSA-PSS hash */
	const EVP_MD *mgf; /* RSA-PSS MGF1 hash */
	int slen;	   /* RSA-PSS salt length */
	size_t siglen;
};

struct session {
	struct session *next;
	CK_SESSION_HANDLE handle;
	int rw;
	enum op op;
	CK_OBJECT_HANDLE *found; /* OP_FIND */
	size_t nfound;
	size_t pos;
	struct sign_op sign; /* OP_SIGN */
};

struct fault {
	enum fn_id fn;
	CK_RV rv;
	unsigned long seen;
	unsigned long nth;
	long count;
	int reset; /* mock_p11_fail_reset(): lose every session first */
};

struct lie {
	CK_ATTRIBUTE_TYPE type;
	CK_BBOOL value;
};

struct state {
	int ready;
	int cryptoki; /* between C_Initialize and C_Finalize */
	long init_flags;
	int tok_init;
	CK_UTF8CHAR label[32];
	unsigned char *so_pin;
	size_t so_pin_len;
	unsigned char *user_pin;
	size_t user_pin_len;
	CK_SLOT_ID slot;
	unsigned long slot_gen;
	int lock_after;
	unsigned long pin_failures;
	enum login login;
	struct object *objects;
	struct session *sessions;
	unsigned long calls[F_COUNT];
	unsigned long login_attempts;
	struct fault *faults;
	size_t nfaults;
	struct lie *lies;
	size_t nlies;
	int removed[NMECHS];
	int corrupt;
	int destroy_noop;
};

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static struct state st;
/* Shared by sessions and objects; never reset, so stale handles stay stale. */
static CK_ULONG next_handle;

static CK_FUNCTION_LIST function_list;

/*
 * Small helpers.
 */

static void
pad(CK_UTF8CHAR *dst, size_t n, const char *src)
{
	size_t l = src != NULL ? strlen(src) : 0;

	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static void
secret_free(unsigned char **p, size_t *len)
{
	if (*p != NULL) {
		OPENSSL_cleanse(*p, *len);
		free(*p);
	}
	*p = NULL;
	*len = 0;
}

static int
secret_set(unsigned char **p, size_t *len, const void *v, size_t vlen)
{
	secret_free(p, len);
	if ((*p = malloc(vlen > 0 ? vlen : 1)) == NULL)
		return -1;
	memcpy(*p, v, vlen);
	*len = vlen;
	return 0;
}

static int
pin_eq(const unsigned char *want, size_t wantlen, const CK_UTF8CHAR *got,
    CK_ULONG gotlen)
{
	if (want == NULL || wantlen != gotlen)
		return 0;
	return CRYPTO_memcmp(want, got, wantlen) == 0;
}

static CK_SLOT_ID
new_slot_id(void)
{
	return SLOT_BASE + ++st.slot_gen;
}

static int
fn_lookup(const char *name)
{
	int i;

	for (i = 0; name != NULL && i < F_COUNT; i++)
		if (fn_names[i] != NULL && strcmp(fn_names[i], name) == 0)
			return i;
	fprintf(stderr, "mock_p11: unknown function name '%s'\n",
	    name != NULL ? name : "(null)");
	abort();
}

static int
mech_index(CK_MECHANISM_TYPE type)
{
	size_t i;

	for (i = 0; i < NMECHS; i++)
		if (mechs[i].type == type)
			return (int)i;
	return -1;
}

/* The mechanism exists, is not removed and can do what flag says. */
static int
mech_ok(CK_MECHANISM_TYPE type, CK_FLAGS flag)
{
	int i = mech_index(type);

	return i >= 0 && !st.removed[i] && (mechs[i].flags & flag) != 0;
}

/*
 * Attributes and objects.
 */

static struct attr *
attr_find(const struct object *o, CK_ATTRIBUTE_TYPE type)
{
	size_t i;

	for (i = 0; i < o->nattrs; i++)
		if (o->attrs[i].type == type)
			return &o->attrs[i];
	return NULL;
}

/* On allocation failure sets o->oom; the caller checks it once. */
static void
attr_set(struct object *o, CK_ATTRIBUTE_TYPE type, const void *v, CK_ULONG len)
{
	struct attr *a, *na;
	CK_BYTE *nv;

	if ((nv = malloc(len > 0 ? len : 1)) == NULL) {
		o->oom = 1;
		return;
	}
	if (len > 0)
		memcpy(nv, v, len);
	if ((a = attr_find(o, type)) == NULL) {
		na = realloc(o->attrs, (o->nattrs + 1) * sizeof(*na));
		if (na == NULL) {
			free(nv);
			o->oom = 1;
			return;
		}
		o->attrs = na;
		a = &o->attrs[o->nattrs++];
		a->type = type;
	} else
		free(a->value);
	a->value = nv;
	a->len = len;
}

static void
attr_set_bool(struct object *o, CK_ATTRIBUTE_TYPE type, int b)
{
	CK_BBOOL v = b ? CK_TRUE : CK_FALSE;

	attr_set(o, type, &v, sizeof(v));
}

static void
attr_set_ulong(struct object *o, CK_ATTRIBUTE_TYPE type, CK_ULONG u)
{
	attr_set(o, type, &u, sizeof(u));
}

static int
attr_bool(const struct object *o, CK_ATTRIBUTE_TYPE type)
{
	const struct attr *a = attr_find(o, type);

	return a != NULL && a->len == sizeof(CK_BBOOL) && a->value[0] != 0;
}

/* Attributes a private key has but never reveals. */
static int
attr_sensitive(const struct object *o, CK_ATTRIBUTE_TYPE type)
{
	if (o->cls != CKO_PRIVATE_KEY)
		return 0;
	if (o->kt != CKK_RSA)
		return type == CKA_VALUE;
	switch (type) {
	case CKA_PRIVATE_EXPONENT:
	case CKA_PRIME_1:
	case CKA_PRIME_2:
	case CKA_EXPONENT_1:
	case CKA_EXPONENT_2:
	case CKA_COEFFICIENT:
		return 1;
	default:
		return 0;
	}
}

/* Keep the private key as DER in o (plain memory, see unload()). */
static int
key_store(struct object *o, EVP_PKEY *pk)
{
	unsigned char *p;
	int len;

	if ((len = i2d_PrivateKey(pk, NULL)) <= 0 ||
	    (o->der = malloc((size_t)len)) == NULL)
		return -1;
	p = o->der;
	o->derlen = (size_t)len;
	return i2d_PrivateKey(pk, &p) == len ? 0 : -1;
}

static EVP_PKEY *
key_load(const unsigned char *der, size_t len)
{
	const unsigned char *p = der;

	return d2i_AutoPrivateKey(NULL, &p, (long)len);
}

static struct object *
obj_new(CK_OBJECT_CLASS cls, CK_KEY_TYPE kt)
{
	struct object *o;

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	o->cls = cls;
	o->kt = kt;
	return o;
}

static void
obj_free(struct object *o)
{
	size_t i;

	if (o == NULL)
		return;
	for (i = 0; i < o->nattrs; i++)
		free(o->attrs[i].value);
	free(o->attrs);
	if (o->der != NULL) {
		OPENSSL_cleanse(o->der, o->derlen);
		free(o->der);
	}
	free(o);
}

static void
obj_append(struct object *o)
{
	struct object **pp = &st.objects;

	while (*pp != NULL)
		pp = &(*pp)->next;
	o->next = NULL;
	*pp = o;
}

static int
obj_visible(const struct object *o)
{
	return !o->is_private || st.login == LOGIN_USER;
}

static CK_OBJECT_HANDLE
obj_handle(struct object *o)
{
	if (o->handle == 0)
		o->handle = ++next_handle;
	return o->handle;
}

/* The object behind a handle the application holds, if it may see it. */
static struct object *
obj_get(CK_OBJECT_HANDLE h)
{
	struct object *o;

	if (h == CK_INVALID_HANDLE)
		return NULL;
	for (o = st.objects; o != NULL; o = o->next)
		if (o->handle == h)
			return obj_visible(o) ? o : NULL;
	return NULL;
}

static void
obj_unlink(struct object *o)
{
	struct object **pp;

	for (pp = &st.objects; *pp != NULL; pp = &(*pp)->next)
		if (*pp == o) {
			*pp = o->next;
			return;
		}
}

/* Destroy session objects: of session h (0: of every session), and only
 * the private ones if private_only. */
static void
objects_drop_session(CK_SESSION_HANDLE h, int private_only)
{
	struct object **pp = &st.objects, *o;

	while ((o = *pp) != NULL) {
		if (o->owner != 0 && (h == 0 || o->owner == h) &&
		    (!private_only || o->is_private)) {
			*pp = o->next;
			obj_free(o);
		} else
			pp = &o->next;
	}
}

/* Forget the handles given to the application (SoftHSM2's HandleManager). */
static void
handles_drop(int private_only)
{
	struct object *o;

	for (o = st.objects; o != NULL; o = o->next)
		if (!private_only || o->is_private)
			o->handle = 0;
}

static void
objects_free_all(void)
{
	struct object *o;

	while ((o = st.objects) != NULL) {
		st.objects = o->next;
		obj_free(o);
	}
}

static unsigned long
objects_count(void)
{
	const struct object *o;
	unsigned long n = 0;

	for (o = st.objects; o != NULL; o = o->next)
		n++;
	return n;
}

/*
 * Sessions and login state.
 */

static void
logout(void)
{
	st.login = LOGIN_NONE;
	objects_drop_session(0, 1);
	handles_drop(1);
}

static void
op_end(struct session *s)
{
	free(s->found);
	s->found = NULL;
	s->nfound = s->pos = 0;
	if (s->sign.der != NULL) {
		OPENSSL_cleanse(s->sign.der, s->sign.derlen);
		free(s->sign.der);
	}
	memset(&s->sign, 0, sizeof(s->sign));
	s->op = OP_NONE;
}

static struct session *
session_get(CK_SESSION_HANDLE h)
{
	struct session *s;

	for (s = st.sessions; s != NULL; s = s->next)
		if (s->handle == h)
			return s;
	return NULL;
}

static CK_STATE
session_state(const struct session *s)
{
	switch (st.login) {
	case LOGIN_USER:
		return s->rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
	case LOGIN_SO:
		return CKS_RW_SO_FUNCTIONS;
	case LOGIN_NONE:
	default:
		return s->rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
	}
}

static void
session_free(struct session *s)
{
	op_end(s);
	objects_drop_session(s->handle, 0);
	free(s);
}

/* What SoftHSM2 does when the last session of the slot goes away. */
static void
all_sessions_gone(void)
{
	logout();
	handles_drop(0);
}

static void
sessions_close_all(void)
{
	struct session *s;

	while ((s = st.sessions) != NULL) {
		st.sessions = s->next;
		session_free(s);
	}
	all_sessions_gone();
}

static unsigned long
sessions_count(int rw_only)
{
	const struct session *s;
	unsigned long n = 0;

	for (s = st.sessions; s != NULL; s = s->next)
		if (!rw_only || s->rw)
			n++;
	return n;
}

/* SoftHSM2's haveWrite(): may this session create or change the object? */
static CK_RV
have_write(const struct session *s, int token, int priv)
{
	if (!s->rw && token)
		return CKR_SESSION_READ_ONLY;
	if (priv && st.login != LOGIN_USER)
		return CKR_USER_NOT_LOGGED_IN;
	return CKR_OK;
}

/*
 * State, entry and exit.
 */

/* Free everything st owns. Plain memory only: never calls into OpenSSL. */
static void
state_free(void)
{
	struct session *s;

	if (!st.ready)
		return;
	while ((s = st.sessions) != NULL) {
		st.sessions = s->next;
		session_free(s);
	}
	objects_free_all();
	secret_free(&st.so_pin, &st.so_pin_len);
	secret_free(&st.user_pin, &st.user_pin_len);
	free(st.faults);
	free(st.lies);
	memset(&st, 0, sizeof(st));
}

static void
state_reset(const struct mock_p11_opts *o)
{
	state_free();
	memset(&st, 0, sizeof(st));
	st.ready = 1;
	st.init_flags = MOCK_P11_INIT_NONE;
	st.slot = SLOT_UNINITIALISED;
	pad(st.label, sizeof(st.label), "");
	if (o == NULL)
		return;
	st.lock_after = o->pin_lock_after > 0 ? o->pin_lock_after : 0;
	if (!o->initialized)
		return;
	st.tok_init = 1;
	st.slot = new_slot_id();
	pad(st.label, sizeof(st.label), o->label);
	/* A failed copy leaves the PIN unset: logins then fail, visibly. */
	if (o->so_pin != NULL)
		(void)secret_set(
		    &st.so_pin, &st.so_pin_len, o->so_pin, strlen(o->so_pin));
	if (o->user_pin != NULL)
		(void)secret_set(&st.user_pin, &st.user_pin_len, o->user_pin,
		    strlen(o->user_pin));
}

static void
lock(void)
{
	pthread_mutex_lock(&mtx);
	if (!st.ready)
		state_reset(NULL);
}

static void
unlock(void)
{
	pthread_mutex_unlock(&mtx);
}

/* Count the call; return 1 with *rvp set if a fault rule fires. */
static int
fault_hit(enum fn_id f, CK_RV *rvp)
{
	size_t i;
	int hit = 0;

	for (i = 0; i < st.nfaults; i++) {
		struct fault *r = &st.faults[i];

		if (r->fn != f)
			continue;
		r->seen++;
		if (hit || r->seen < r->nth)
			continue;
		if (r->count < 0 ||
		    r->seen - r->nth < (unsigned long)r->count) {
			*rvp = r->rv;
			hit = 1;
			if (r->reset)
				sessions_close_all();
		}
	}
	return hit;
}

/* Lock, count, apply faults. Returns 1 (with *rvp) if the call must stop. */
static int
enter(enum fn_id f, CK_RV *rvp)
{
	lock();
	st.calls[f]++;
	return fault_hit(f, rvp);
}

/* enter(), and also stop with CKR_CRYPTOKI_NOT_INITIALIZED. */
static int
begin(enum fn_id f, CK_RV *rvp)
{
	if (enter(f, rvp))
		return 1;
	if (!st.cryptoki) {
		*rvp = CKR_CRYPTOKI_NOT_INITIALIZED;
		return 1;
	}
	return 0;
}

static CK_RV
leave(CK_RV rv)
{
	unlock();
	return rv;
}

/*
 * General purpose, slot and token functions.
 */

static CK_RV
c_initialize(CK_VOID_PTR p)
{
	CK_C_INITIALIZE_ARGS *a = p;
	CK_RV rv;
	int n;

	if (enter(F_C_Initialize, &rv))
		return leave(rv);
	if (st.cryptoki)
		return leave(CKR_CRYPTOKI_ALREADY_INITIALIZED);
	if (a != NULL) {
		if (a->pReserved != NULL)
			return leave(CKR_ARGUMENTS_BAD);
		n = (a->CreateMutex != NULL) + (a->DestroyMutex != NULL) +
		    (a->LockMutex != NULL) + (a->UnlockMutex != NULL);
		if (n != 0 && n != 4)
			return leave(CKR_ARGUMENTS_BAD);
	}
	st.cryptoki = 1;
	st.init_flags = a != NULL ? (long)a->flags : MOCK_P11_INIT_NULL;
	return leave(CKR_OK);
}

static CK_RV
c_finalize(CK_VOID_PTR reserved)
{
	CK_RV rv;

	if (begin(F_C_Finalize, &rv))
		return leave(rv);
	if (reserved != NULL)
		return leave(CKR_ARGUMENTS_BAD);
	sessions_close_all();
	st.cryptoki = 0;
	return leave(CKR_OK);
}

static CK_RV
c_get_info(CK_INFO_PTR info)
{
	CK_RV rv;

	if (begin(F_C_GetInfo, &rv))
		return leave(rv);
	if (info == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	memset(info, 0, sizeof(*info));
	info->cryptokiVersion.major = 2;
	info->cryptokiVersion.minor = 40;
	pad(info->manufacturerID, sizeof(info->manufacturerID), MANUFACTURER);
	info->flags = 0;
	pad(info->libraryDescription, sizeof(info->libraryDescription),
	    LIBRARY_DESCRIPTION);
	info->libraryVersion.major = 1;
	info->libraryVersion.minor = 0;
	return leave(CKR_OK);
}

static CK_RV
c_get_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	CK_RV rv;

	(void)present; /* the one slot always holds a token */
	if (begin(F_C_GetSlotList, &rv))
		return leave(rv);
	if (count == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (list == NULL) {
		*count = 1;
		return leave(CKR_OK);
	}
	if (*count < 1) {
		*count = 1;
		return leave(CKR_BUFFER_TOO_SMALL);
	}
	list[0] = st.slot;
	*count = 1;
	return leave(CKR_OK);
}

static CK_RV
c_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	CK_RV rv;

	if (begin(F_C_GetSlotInfo, &rv))
		return leave(rv);
	if (info == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (slot != st.slot)
		return leave(CKR_SLOT_ID_INVALID);
	memset(info, 0, sizeof(*info));
	pad(info->slotDescription, sizeof(info->slotDescription),
	    "custody mock slot");
	pad(info->manufacturerID, sizeof(info->manufacturerID), MANUFACTURER);
	info->flags = CKF_TOKEN_PRESENT;
	info->hardwareVersion.major = 1;
	info->firmwareVersion.major = 1;
	return leave(CKR_OK);
}

static CK_RV
c_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	char serial[17];
	CK_RV rv;

	if (begin(F_C_GetTokenInfo, &rv))
		return leave(rv);
	if (info == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (slot != st.slot)
		return leave(CKR_SLOT_ID_INVALID);
	memset(info, 0, sizeof(*info));
	memcpy(info->label, st.label, sizeof(info->label));
	pad(info->manufacturerID, sizeof(info->manufacturerID), MANUFACTURER);
	pad(info->model, sizeof(info->model), "mock");
	snprintf(serial, sizeof(serial), "%016lx", (unsigned long)st.slot);
	memcpy(info->serialNumber, serial, sizeof(info->serialNumber));
	info->flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_RESTORE_KEY_NOT_NEEDED;
	if (st.tok_init)
		info->flags |= CKF_TOKEN_INITIALIZED;
	if (st.user_pin != NULL)
		info->flags |= CKF_USER_PIN_INITIALIZED;
	if (st.pin_failures > 0)
		info->flags |= CKF_USER_PIN_COUNT_LOW;
	if (st.lock_after > 0 &&
	    st.pin_failures + 1 == (unsigned long)st.lock_after)
		info->flags |= CKF_USER_PIN_FINAL_TRY;
	if (st.lock_after > 0 &&
	    st.pin_failures >= (unsigned long)st.lock_after)
		info->flags |= CKF_USER_PIN_LOCKED;
	info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulSessionCount = sessions_count(0);
	info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulRwSessionCount = sessions_count(1);
	info->ulMaxPinLen = MAX_PIN_LEN;
	info->ulMinPinLen = MIN_PIN_LEN;
	info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	info->hardwareVersion.major = 1;
	info->firmwareVersion.major = 1;
	pad(info->utcTime, sizeof(info->utcTime), "");
	return leave(CKR_OK);
}

static CK_RV
c_get_mechanism_list(
    CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
	CK_ULONG n = 0;
	size_t i;
	CK_RV rv;

	if (begin(F_C_GetMechanismList, &rv))
		return leave(rv);
	if (count == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (slot != st.slot)
		return leave(CKR_SLOT_ID_INVALID);
	for (i = 0; i < NMECHS; i++)
		if (!st.removed[i])
			n++;
	if (list == NULL) {
		*count = n;
		return leave(CKR_OK);
	}
	if (*count < n) {
		*count = n;
		return leave(CKR_BUFFER_TOO_SMALL);
	}
	for (i = 0, n = 0; i < NMECHS; i++)
		if (!st.removed[i])
			list[n++] = mechs[i].type;
	*count = n;
	return leave(CKR_OK);
}

static CK_RV
c_get_mechanism_info(
    CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
	CK_RV rv;
	int i;

	if (begin(F_C_GetMechanismInfo, &rv))
		return leave(rv);
	if (info == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (slot != st.slot)
		return leave(CKR_SLOT_ID_INVALID);
	if ((i = mech_index(type)) < 0 || st.removed[i])
		return leave(CKR_MECHANISM_INVALID);
	info->ulMinKeySize = mechs[i].min_bits;
	info->ulMaxKeySize = mechs[i].max_bits;
	info->flags = mechs[i].flags;
	return leave(CKR_OK);
}

static CK_RV
c_init_token(
    CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len, CK_UTF8CHAR_PTR label)
{
	CK_RV rv;

	if (begin(F_C_InitToken, &rv))
		return leave(rv);
	if (slot != st.slot)
		return leave(CKR_SLOT_ID_INVALID);
	if (st.sessions != NULL)
		return leave(CKR_SESSION_EXISTS);
	if (pin == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (len < MIN_PIN_LEN || len > MAX_PIN_LEN)
		return leave(CKR_PIN_INCORRECT);
	if (label == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	/* Re-initialising needs the current SO PIN. */
	if (st.tok_init && !pin_eq(st.so_pin, st.so_pin_len, pin, len))
		return leave(CKR_PIN_INCORRECT);
	if (secret_set(&st.so_pin, &st.so_pin_len, pin, len) != 0)
		return leave(CKR_HOST_MEMORY);
	secret_free(&st.user_pin, &st.user_pin_len);
	objects_free_all();
	memcpy(st.label, label, sizeof(st.label));
	st.pin_failures = 0;
	st.tok_init = 1;
	st.slot = new_slot_id();
	return leave(CKR_OK);
}

static CK_RV
c_init_pin(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	struct session *s;
	CK_RV rv;

	if (begin(F_C_InitPIN, &rv))
		return leave(rv);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if (session_state(s) != CKS_RW_SO_FUNCTIONS)
		return leave(CKR_USER_NOT_LOGGED_IN);
	if (pin == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (len < MIN_PIN_LEN || len > MAX_PIN_LEN)
		return leave(CKR_PIN_LEN_RANGE);
	if (secret_set(&st.user_pin, &st.user_pin_len, pin, len) != 0)
		return leave(CKR_HOST_MEMORY);
	st.pin_failures = 0;
	return leave(CKR_OK);
}

static CK_RV
c_set_pin(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old, CK_ULONG oldlen,
    CK_UTF8CHAR_PTR new, CK_ULONG newlen)
{
	CK_RV rv;

	(void)old;
	(void)oldlen;
	(void)new;
	(void)newlen;
	if (begin(F_C_SetPIN, &rv))
		return leave(rv);
	if (session_get(h) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	return leave(CKR_FUNCTION_NOT_SUPPORTED);
}

/*
 * Sessions and login.
 */

static CK_RV
c_open_session(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR hp)
{
	struct session *s, **pp;
	CK_RV rv;

	(void)app;
	(void)notify;
	if (begin(F_C_OpenSession, &rv))
		return leave(rv);
	if (hp == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (slot != st.slot)
		return leave(CKR_SLOT_ID_INVALID);
	if ((flags & CKF_SERIAL_SESSION) == 0)
		return leave(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	if (!st.tok_init)
		return leave(CKR_TOKEN_NOT_RECOGNIZED);
	if ((flags & CKF_RW_SESSION) == 0 && st.login == LOGIN_SO)
		return leave(CKR_SESSION_READ_WRITE_SO_EXISTS);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return leave(CKR_HOST_MEMORY);
	s->handle = ++next_handle;
	s->rw = (flags & CKF_RW_SESSION) != 0;
	for (pp = &st.sessions; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = s;
	*hp = s->handle;
	return leave(CKR_OK);
}

static CK_RV
c_close_session(CK_SESSION_HANDLE h)
{
	struct session **pp, *s;
	CK_RV rv;

	if (begin(F_C_CloseSession, &rv))
		return leave(rv);
	for (pp = &st.sessions; (s = *pp) != NULL; pp = &s->next)
		if (s->handle == h)
			break;
	if (s == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	*pp = s->next;
	session_free(s);
	if (st.sessions == NULL)
		all_sessions_gone();
	return leave(CKR_OK);
}

static CK_RV
c_close_all_sessions(CK_SLOT_ID slot)
{
	CK_RV rv;

	if (begin(F_C_CloseAllSessions, &rv))
		return leave(rv);
	if (slot != st.slot)
		return leave(CKR_SLOT_ID_INVALID);
	sessions_close_all();
	return leave(CKR_OK);
}

static CK_RV
c_get_session_info(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info)
{
	struct session *s;
	CK_RV rv;

	if (begin(F_C_GetSessionInfo, &rv))
		return leave(rv);
	if (info == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	memset(info, 0, sizeof(*info));
	info->slotID = st.slot;
	info->state = session_state(s);
	info->flags = CKF_SERIAL_SESSION | (s->rw ? CKF_RW_SESSION : 0);
	info->ulDeviceError = 0;
	return leave(CKR_OK);
}

static CK_RV
login_so(CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	if (sessions_count(0) != sessions_count(1))
		return CKR_SESSION_READ_ONLY_EXISTS;
	if (st.login == LOGIN_USER)
		return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
	if (st.login == LOGIN_SO)
		return CKR_USER_ALREADY_LOGGED_IN;
	st.login_attempts++;
	if (!pin_eq(st.so_pin, st.so_pin_len, pin, len))
		return CKR_PIN_INCORRECT;
	st.login = LOGIN_SO;
	return CKR_OK;
}

static CK_RV
login_user(CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	if (st.login == LOGIN_SO)
		return CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
	if (st.login == LOGIN_USER)
		return CKR_USER_ALREADY_LOGGED_IN;
	if (st.user_pin == NULL)
		return CKR_USER_PIN_NOT_INITIALIZED;
	if (st.lock_after > 0 &&
	    st.pin_failures >= (unsigned long)st.lock_after)
		return CKR_PIN_LOCKED;
	st.login_attempts++;
	if (!pin_eq(st.user_pin, st.user_pin_len, pin, len)) {
		st.pin_failures++;
		return CKR_PIN_INCORRECT;
	}
	st.pin_failures = 0;
	st.login = LOGIN_USER;
	return CKR_OK;
}

static CK_RV
c_login(
    CK_SESSION_HANDLE h, CK_USER_TYPE type, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	CK_RV rv;

	if (begin(F_C_Login, &rv))
		return leave(rv);
	if (session_get(h) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if (pin == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	switch (type) {
	case CKU_SO:
		return leave(login_so(pin, len));
	case CKU_USER:
		return leave(login_user(pin, len));
	case CKU_CONTEXT_SPECIFIC:
		/* no key here needs CKA_ALWAYS_AUTHENTICATE */
		return leave(CKR_OPERATION_NOT_INITIALIZED);
	default:
		return leave(CKR_USER_TYPE_INVALID);
	}
}

static CK_RV
c_logout(CK_SESSION_HANDLE h)
{
	CK_RV rv;

	if (begin(F_C_Logout, &rv))
		return leave(rv);
	if (session_get(h) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	logout();
	return leave(CKR_OK);
}

/*
 * Objects.
 */

/*
 * How an attribute may appear in a C_GenerateKeyPair template; also tells
 * C_SetAttributeValue which attributes are CK_BBOOL.
 */
enum tkind {
	T_INVALID,   /* CKR_ATTRIBUTE_TYPE_INVALID */
	T_READ_ONLY, /* CKR_ATTRIBUTE_READ_ONLY */
	T_ULONG,     /* CKA_CLASS, CKA_KEY_TYPE: must agree */
	T_BOOL,
	T_BYTES,
	T_DATE,
	T_PARAM, /* a key parameter, handled by the generator */
};

static enum tkind
tmpl_kind(CK_ATTRIBUTE_TYPE type, int pub, CK_KEY_TYPE kt)
{
	int rsa = kt == CKK_RSA;

	switch (type) {
	case CKA_CLASS:
	case CKA_KEY_TYPE:
		return T_ULONG;
	case CKA_TOKEN:
	case CKA_PRIVATE:
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_DESTROYABLE:
	case CKA_DERIVE:
		return T_BOOL;
	case CKA_LABEL:
	case CKA_ID:
	case CKA_SUBJECT:
		return T_BYTES;
	case CKA_START_DATE:
	case CKA_END_DATE:
		return T_DATE;
	case CKA_LOCAL:
	case CKA_KEY_GEN_MECHANISM:
		return T_READ_ONLY;
	case CKA_ENCRYPT:
	case CKA_VERIFY:
	case CKA_VERIFY_RECOVER:
	case CKA_WRAP:
	case CKA_TRUSTED:
		return pub ? T_BOOL : T_INVALID;
	case CKA_SENSITIVE:
	case CKA_DECRYPT:
	case CKA_SIGN:
	case CKA_SIGN_RECOVER:
	case CKA_UNWRAP:
	case CKA_EXTRACTABLE:
	case CKA_WRAP_WITH_TRUSTED:
	case CKA_ALWAYS_AUTHENTICATE:
		return pub ? T_INVALID : T_BOOL;
	case CKA_ALWAYS_SENSITIVE:
	case CKA_NEVER_EXTRACTABLE:
		return pub ? T_INVALID : T_READ_ONLY;
	case CKA_EC_PARAMS:
		return rsa ? T_INVALID : T_PARAM;
	case CKA_EC_POINT:
		return rsa || !pub ? T_INVALID : T_READ_ONLY;
	case CKA_MODULUS_BITS:
		return rsa && pub ? T_PARAM : T_INVALID;
	case CKA_PUBLIC_EXPONENT:
		return rsa ? T_PARAM : T_INVALID;
	case CKA_MODULUS:
		return rsa ? T_READ_ONLY : T_INVALID;
	case CKA_VALUE:
		return !rsa && !pub ? T_READ_ONLY : T_INVALID;
	case CKA_PRIVATE_EXPONENT:
	case CKA_PRIME_1:
	case CKA_PRIME_2:
	case CKA_EXPONENT_1:
	case CKA_EXPONENT_2:
	case CKA_COEFFICIENT:
		return rsa && !pub ? T_READ_ONLY : T_INVALID;
	default:
		return T_INVALID;
	}
}

/* The same for a data object (SoftHSM2's P11DataObj and P11StorageObj). */
static enum tkind
data_kind(CK_ATTRIBUTE_TYPE type)
{
	switch (type) {
	case CKA_CLASS:
		return T_ULONG;
	case CKA_TOKEN:
	case CKA_PRIVATE:
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_DESTROYABLE:
		return T_BOOL;
	case CKA_LABEL:
	case CKA_APPLICATION:
	case CKA_OBJECT_ID:
	case CKA_VALUE:
		return T_BYTES;
	default:
		return T_INVALID;
	}
}

static enum tkind
obj_kind(const struct object *o, CK_ATTRIBUTE_TYPE type)
{
	if (o->cls == CKO_DATA)
		return data_kind(type);
	return tmpl_kind(type, o->cls == CKO_PUBLIC_KEY, o->kt);
}

static CK_RV
c_destroy_object(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh)
{
	struct session *s;
	struct object *o;
	CK_RV rv;

	if (begin(F_C_DestroyObject, &rv))
		return leave(rv);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if ((o = obj_get(oh)) == NULL)
		return leave(CKR_OBJECT_HANDLE_INVALID);
	if ((rv = have_write(s, o->owner == 0, o->is_private)) != CKR_OK)
		return leave(rv);
	if (attr_find(o, CKA_DESTROYABLE) != NULL &&
	    !attr_bool(o, CKA_DESTROYABLE))
		return leave(CKR_ACTION_PROHIBITED);
	if (st.destroy_noop)
		return leave(CKR_OK);
	obj_unlink(o);
	obj_free(o);
	return leave(CKR_OK);
}

static int
lie_find(CK_ATTRIBUTE_TYPE type, CK_BBOOL *vp)
{
	size_t i;

	for (i = 0; i < st.nlies; i++)
		if (st.lies[i].type == type) {
			*vp = st.lies[i].value;
			return 1;
		}
	return 0;
}

static CK_RV
c_get_attribute_value(
    CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	int sensitive = 0, invalid = 0, small = 0;
	const struct attr *a;
	const void *val;
	struct object *o;
	CK_BBOOL lied;
	CK_ULONG i, len;
	CK_RV rv;

	if (begin(F_C_GetAttributeValue, &rv))
		return leave(rv);
	if (tmpl == NULL && n > 0)
		return leave(CKR_ARGUMENTS_BAD);
	if (session_get(h) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if ((o = obj_get(oh)) == NULL)
		return leave(CKR_OBJECT_HANDLE_INVALID);
	for (i = 0; i < n; i++) {
		CK_ATTRIBUTE *t = &tmpl[i];

		if (o->cls == CKO_PRIVATE_KEY && lie_find(t->type, &lied)) {
			val = &lied;
			len = sizeof(lied);
		} else if (attr_sensitive(o, t->type)) {
			t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
			sensitive = 1;
			continue;
		} else if ((a = attr_find(o, t->type)) == NULL) {
			t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
			invalid = 1;
			continue;
		} else {
			val = a->value;
			len = a->len;
		}
		if (t->pValue == NULL)
			t->ulValueLen = len;
		else if (t->ulValueLen >= len) {
			if (len > 0)
				memcpy(t->pValue, val, len);
			t->ulValueLen = len;
		} else {
			t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
			small = 1;
		}
	}
	/* The order SoftHSM2 (P11Object::loadTemplate) chose. */
	if (sensitive)
		return leave(CKR_ATTRIBUTE_SENSITIVE);
	if (invalid)
		return leave(CKR_ATTRIBUTE_TYPE_INVALID);
	if (small)
		return leave(CKR_BUFFER_TOO_SMALL);
	return leave(CKR_OK);
}

/* May C_SetAttributeValue change this attribute of o to t? */
static CK_RV
set_check(const struct object *o, const CK_ATTRIBUTE *t)
{
	switch (t->type) {
	case CKA_CLASS:
	case CKA_KEY_TYPE:
	case CKA_SENSITIVE:
	case CKA_EXTRACTABLE:
	case CKA_ALWAYS_SENSITIVE:
	case CKA_NEVER_EXTRACTABLE:
	case CKA_LOCAL:
		return CKR_ATTRIBUTE_READ_ONLY;
	default:
		break;
	}
	if (attr_sensitive(o, t->type))
		return CKR_ATTRIBUTE_READ_ONLY;
	if (attr_find(o, t->type) == NULL)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (t->pValue == NULL && t->ulValueLen > 0)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	switch (t->type) {
	case CKA_LABEL:
	case CKA_ID:
	case CKA_SUBJECT:
		return CKR_OK;
	case CKA_APPLICATION:
	case CKA_OBJECT_ID:
	case CKA_VALUE:
		return o->cls == CKO_DATA ? CKR_OK : CKR_ATTRIBUTE_READ_ONLY;
	case CKA_START_DATE:
	case CKA_END_DATE:
		return t->ulValueLen == 0 || t->ulValueLen == sizeof(CK_DATE)
			   ? CKR_OK
			   : CKR_ATTRIBUTE_VALUE_INVALID;
	case CKA_SIGN:
	case CKA_SIGN_RECOVER:
	case CKA_DECRYPT:
	case CKA_UNWRAP:
	case CKA_DERIVE:
	case CKA_VERIFY:
	case CKA_VERIFY_RECOVER:
	case CKA_ENCRYPT:
	case CKA_WRAP:
		return t->ulValueLen == sizeof(CK_BBOOL)
			   ? CKR_OK
			   : CKR_ATTRIBUTE_VALUE_INVALID;
	default:
		return CKR_ATTRIBUTE_READ_ONLY;
	}
}

static CK_RV
c_set_attribute_value(
    CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	struct session *s;
	struct object *o;
	CK_ULONG i;
	CK_RV rv;

	if (begin(F_C_SetAttributeValue, &rv))
		return leave(rv);
	if (tmpl == NULL && n > 0)
		return leave(CKR_ARGUMENTS_BAD);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if ((o = obj_get(oh)) == NULL)
		return leave(CKR_OBJECT_HANDLE_INVALID);
	if ((rv = have_write(s, o->owner == 0, o->is_private)) != CKR_OK)
		return leave(rv);
	if (attr_find(o, CKA_MODIFIABLE) != NULL &&
	    !attr_bool(o, CKA_MODIFIABLE))
		return leave(CKR_ACTION_PROHIBITED);
	/* All or nothing: check everything before changing anything. */
	for (i = 0; i < n; i++)
		if ((rv = set_check(o, &tmpl[i])) != CKR_OK)
			return leave(rv);
	for (i = 0; i < n; i++) {
		if (obj_kind(o, tmpl[i].type) == T_BOOL)
			attr_set_bool(o, tmpl[i].type,
			    *(CK_BBOOL *)tmpl[i].pValue != CK_FALSE);
		else
			attr_set(o, tmpl[i].type, tmpl[i].pValue,
			    tmpl[i].ulValueLen);
	}
	if (o->oom) {
		o->oom = 0;
		return leave(CKR_HOST_MEMORY);
	}
	return leave(CKR_OK);
}

static int
obj_matches(const struct object *o, const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	const struct attr *a;
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		if ((a = attr_find(o, tmpl[i].type)) == NULL ||
		    a->len != tmpl[i].ulValueLen)
			return 0;
		if (a->len > 0 && memcmp(a->value, tmpl[i].pValue, a->len) != 0)
			return 0;
	}
	return 1;
}

static CK_RV
c_find_objects_init(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	struct session *s;
	struct object *o;
	size_t cap = 0;
	CK_ULONG i;
	CK_RV rv;

	if (begin(F_C_FindObjectsInit, &rv))
		return leave(rv);
	if (tmpl == NULL && n > 0)
		return leave(CKR_ARGUMENTS_BAD);
	for (i = 0; i < n; i++)
		if (tmpl[i].pValue == NULL && tmpl[i].ulValueLen > 0)
			return leave(CKR_ARGUMENTS_BAD);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if (s->op != OP_NONE)
		return leave(CKR_OPERATION_ACTIVE);
	for (o = st.objects; o != NULL; o = o->next)
		if (obj_visible(o) && obj_matches(o, tmpl, n))
			cap++;
	if ((s->found = calloc(cap > 0 ? cap : 1, sizeof(*s->found))) == NULL)
		return leave(CKR_HOST_MEMORY);
	for (o = st.objects; o != NULL; o = o->next)
		if (obj_visible(o) && obj_matches(o, tmpl, n))
			s->found[s->nfound++] = obj_handle(o);
	s->pos = 0;
	s->op = OP_FIND;
	return leave(CKR_OK);
}

static CK_RV
c_find_objects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
    CK_ULONG_PTR countp)
{
	struct session *s;
	CK_ULONG n = 0;
	CK_RV rv;

	if (begin(F_C_FindObjects, &rv))
		return leave(rv);
	if ((out == NULL && max > 0) || countp == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if (s->op != OP_FIND)
		return leave(CKR_OPERATION_NOT_INITIALIZED);
	while (n < max && s->pos < s->nfound) {
		CK_OBJECT_HANDLE oh = s->found[s->pos++];

		/* skip what was destroyed or hidden since C_FindObjectsInit */
		if (obj_get(oh) != NULL)
			out[n++] = oh;
	}
	*countp = n;
	return leave(CKR_OK);
}

static CK_RV
c_find_objects_final(CK_SESSION_HANDLE h)
{
	struct session *s;
	CK_RV rv;

	if (begin(F_C_FindObjectsFinal, &rv))
		return leave(rv);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if (s->op != OP_FIND)
		return leave(CKR_OPERATION_NOT_INITIALIZED);
	op_end(s);
	return leave(CKR_OK);
}

/*
 * Key-pair generation.
 */

/* The CK_BBOOL type in the template, or def if it is not there. */
static int
tmpl_bool(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, int def)
{
	CK_ULONG i;

	for (i = 0; i < n; i++)
		if (t[i].type == type && t[i].pValue != NULL &&
		    t[i].ulValueLen == sizeof(CK_BBOOL))
			def = *(const CK_BBOOL *)t[i].pValue != CK_FALSE;
	return def;
}

static const CK_ATTRIBUTE *
tmpl_find(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
	const CK_ATTRIBUTE *found = NULL;
	CK_ULONG i;

	for (i = 0; i < n; i++)
		if (t[i].type == type)
			found = &t[i];
	return found;
}

/* Check a template and copy it into o (whose defaults are set). */
static CK_RV
tmpl_apply(struct object *o, const CK_ATTRIBUTE *t, CK_ULONG n, int pub)
{
	CK_ULONG i, u;

	for (i = 0; i < n; i++) {
		if (t[i].pValue == NULL && t[i].ulValueLen > 0)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		switch (o->cls == CKO_DATA ? data_kind(t[i].type)
					   : tmpl_kind(t[i].type, pub, o->kt)) {
		case T_INVALID:
			return CKR_ATTRIBUTE_TYPE_INVALID;
		case T_READ_ONLY:
			return CKR_ATTRIBUTE_READ_ONLY;
		case T_ULONG:
			if (t[i].ulValueLen != sizeof(CK_ULONG))
				return CKR_ATTRIBUTE_VALUE_INVALID;
			memcpy(&u, t[i].pValue, sizeof(u));
			if (u != (t[i].type == CKA_CLASS ? o->cls : o->kt))
				return CKR_TEMPLATE_INCONSISTENT;
			break;
		case T_BOOL:
			if (t[i].ulValueLen != sizeof(CK_BBOOL))
				return CKR_ATTRIBUTE_VALUE_INVALID;
			attr_set_bool(o, t[i].type,
			    *(const CK_BBOOL *)t[i].pValue != CK_FALSE);
			break;
		case T_DATE:
			if (t[i].ulValueLen != 0 &&
			    t[i].ulValueLen != sizeof(CK_DATE))
				return CKR_ATTRIBUTE_VALUE_INVALID;
			attr_set(o, t[i].type, t[i].pValue, t[i].ulValueLen);
			break;
		case T_BYTES:
			attr_set(o, t[i].type, t[i].pValue, t[i].ulValueLen);
			break;
		case T_PARAM:
			break;
		}
	}
	return CKR_OK;
}

/* SoftHSM2's defaults for a generated key of either half. */
static void
key_defaults(struct object *o, CK_MECHANISM_TYPE mech)
{
	int pub = o->cls == CKO_PUBLIC_KEY;

	attr_set_ulong(o, CKA_CLASS, o->cls);
	attr_set_ulong(o, CKA_KEY_TYPE, o->kt);
	attr_set_bool(o, CKA_TOKEN, 0);
	attr_set_bool(o, CKA_PRIVATE, !pub);
	attr_set_bool(o, CKA_MODIFIABLE, 1);
	attr_set_bool(o, CKA_COPYABLE, 1);
	attr_set_bool(o, CKA_DESTROYABLE, 1);
	attr_set(o, CKA_LABEL, NULL, 0);
	attr_set(o, CKA_ID, NULL, 0);
	attr_set(o, CKA_START_DATE, NULL, 0);
	attr_set(o, CKA_END_DATE, NULL, 0);
	attr_set(o, CKA_SUBJECT, NULL, 0);
	attr_set_bool(o, CKA_DERIVE, 0);
	attr_set_bool(o, CKA_LOCAL, 1);
	attr_set_ulong(o, CKA_KEY_GEN_MECHANISM, mech);
	if (pub) {
		attr_set_bool(o, CKA_ENCRYPT, 1);
		attr_set_bool(o, CKA_VERIFY, 1);
		attr_set_bool(o, CKA_VERIFY_RECOVER, 1);
		attr_set_bool(o, CKA_WRAP, 1);
		attr_set_bool(o, CKA_TRUSTED, 0);
	} else {
		attr_set_bool(o, CKA_SENSITIVE, 0);
		attr_set_bool(o, CKA_DECRYPT, 1);
		attr_set_bool(o, CKA_SIGN, 1);
		attr_set_bool(o, CKA_SIGN_RECOVER, 1);
		attr_set_bool(o, CKA_UNWRAP, 1);
		attr_set_bool(o, CKA_EXTRACTABLE, 0);
		attr_set_bool(o, CKA_WRAP_WITH_TRUSTED, 0);
		attr_set_bool(o, CKA_ALWAYS_AUTHENTICATE, 0);
	}
}

static CK_RV
parse_curve(const CK_ATTRIBUTE *a, CK_MECHANISM_TYPE mech, enum curve *cp)
{
	const CK_BYTE *p;
	enum curve c = CURVE_NONE;
	CK_ULONG len;

	if (a == NULL)
		return CKR_TEMPLATE_INCOMPLETE;
	p = a->pValue;
	len = a->ulValueLen;
	if (p == NULL || len < 2)
		return CKR_DOMAIN_PARAMS_INVALID;
	if (len == sizeof(oid_p256) && memcmp(p, oid_p256, len) == 0)
		c = CURVE_P256;
	else if (len == sizeof(oid_p384) && memcmp(p, oid_p384, len) == 0)
		c = CURVE_P384;
	else if ((len == sizeof(oid_ed25519) &&
		     memcmp(p, oid_ed25519, len) == 0) ||
		 (len == sizeof(name_ed25519) &&
		     memcmp(p, name_ed25519, len) == 0))
		c = CURVE_ED25519;
	if (c == CURVE_NONE) {
		/* a well-formed OID, curve name or explicit parameters that
		 * the token does not know */
		if ((p[0] == 0x06 || p[0] == 0x13) && p[1] == len - 2)
			return CKR_CURVE_NOT_SUPPORTED;
		if (p[0] == 0x30)
			return CKR_CURVE_NOT_SUPPORTED;
		return CKR_DOMAIN_PARAMS_INVALID;
	}
	if ((mech == CKM_EC_EDWARDS_KEY_PAIR_GEN) != (c == CURVE_ED25519))
		return CKR_CURVE_NOT_SUPPORTED;
	*cp = c;
	return CKR_OK;
}

static CK_RV
rsa_params(
    const CK_ATTRIBUTE *pubt, CK_ULONG npub, CK_ULONG *bitsp, BIGNUM **ep)
{
	const CK_ATTRIBUTE *a;
	BIGNUM *e = NULL;

	if ((a = tmpl_find(pubt, npub, CKA_MODULUS_BITS)) == NULL)
		return CKR_TEMPLATE_INCOMPLETE;
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
		return CKR_ATTRIBUTE_VALUE_INVALID;
	memcpy(bitsp, a->pValue, sizeof(*bitsp));
	if (*bitsp < RSA_MIN_BITS || *bitsp > RSA_MAX_BITS)
		return CKR_KEY_SIZE_RANGE;
	a = tmpl_find(pubt, npub, CKA_PUBLIC_EXPONENT);
	if (a == NULL || a->ulValueLen == 0) {
		if ((e = BN_new()) == NULL || !BN_set_word(e, RSA_F4)) {
			BN_free(e);
			return CKR_HOST_MEMORY;
		}
	} else {
		if (a->pValue == NULL || a->ulValueLen > 8)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		if ((e = BN_bin2bn(a->pValue, (int)a->ulValueLen, NULL)) ==
		    NULL)
			return CKR_HOST_MEMORY;
		if (!BN_is_odd(e) || BN_is_one(e)) {
			BN_free(e);
			return CKR_ATTRIBUTE_VALUE_INVALID;
		}
	}
	*ep = e;
	return CKR_OK;
}

static EVP_PKEY *
generate(CK_MECHANISM_TYPE mech, enum curve c, CK_ULONG bits, BIGNUM *e)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;

	switch (mech) {
	case CKM_EC_KEY_PAIR_GEN:
		return EVP_PKEY_Q_keygen(
		    NULL, NULL, "EC", c == CURVE_P256 ? "P-256" : "P-384");
	case CKM_EC_EDWARDS_KEY_PAIR_GEN:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	case CKM_RSA_PKCS_KEY_PAIR_GEN:
		if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ==
			NULL ||
		    EVP_PKEY_keygen_init(ctx) <= 0 ||
		    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits) <= 0 ||
		    EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) <= 0 ||
		    EVP_PKEY_generate(ctx, &pk) <= 0)
			pk = NULL;
		EVP_PKEY_CTX_free(ctx);
		return pk;
	default:
		return NULL;
	}
}

/* DER OCTET STRING around a public point (short form: points < 128 bytes). */
static void
set_ec_point(struct object *o, const unsigned char *pt, size_t len)
{
	unsigned char der[2 + 127];

	if (len > 127) {
		o->oom = 1;
		return;
	}
	der[0] = 0x04;
	der[1] = (unsigned char)len;
	memcpy(der + 2, pt, len);
	attr_set(o, CKA_EC_POINT, der, (CK_ULONG)(len + 2));
}

static int
set_bn_attr(
    struct object *o, CK_ATTRIBUTE_TYPE type, EVP_PKEY *pk, const char *param)
{
	unsigned char buf[RSA_MAX_BITS / 8];
	BIGNUM *bn = NULL;
	int len;

	if (!EVP_PKEY_get_bn_param(pk, param, &bn))
		return -1;
	if ((len = BN_num_bytes(bn)) > (int)sizeof(buf)) {
		BN_free(bn);
		return -1;
	}
	BN_bn2bin(bn, buf);
	BN_free(bn);
	attr_set(o, type, buf, (CK_ULONG)len);
	return 0;
}

/* The public values of pk, on both halves. */
static CK_RV
set_key_attrs(struct object *pub, struct object *priv, EVP_PKEY *pk,
    const CK_ATTRIBUTE *ecparams)
{
	unsigned char pt[133];
	size_t len = 0;

	switch (pub->kt) {
	case CKK_EC:
		if (!EVP_PKEY_get_octet_string_param(
			pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len))
			return CKR_FUNCTION_FAILED;
		set_ec_point(pub, pt, len);
		attr_set(
		    pub, CKA_EC_PARAMS, ecparams->pValue, ecparams->ulValueLen);
		attr_set(priv, CKA_EC_PARAMS, ecparams->pValue,
		    ecparams->ulValueLen);
		break;
	case CKK_EC_EDWARDS:
		len = sizeof(pt);
		if (!EVP_PKEY_get_raw_public_key(pk, pt, &len))
			return CKR_FUNCTION_FAILED;
		set_ec_point(pub, pt, len);
		attr_set(
		    pub, CKA_EC_PARAMS, ecparams->pValue, ecparams->ulValueLen);
		attr_set(priv, CKA_EC_PARAMS, ecparams->pValue,
		    ecparams->ulValueLen);
		break;
	case CKK_RSA:
		if (set_bn_attr(pub, CKA_MODULUS, pk, OSSL_PKEY_PARAM_RSA_N) ||
		    set_bn_attr(
			pub, CKA_PUBLIC_EXPONENT, pk, OSSL_PKEY_PARAM_RSA_E) ||
		    set_bn_attr(priv, CKA_MODULUS, pk, OSSL_PKEY_PARAM_RSA_N) ||
		    set_bn_attr(
			priv, CKA_PUBLIC_EXPONENT, pk, OSSL_PKEY_PARAM_RSA_E))
			return CKR_FUNCTION_FAILED;
		attr_set_ulong(
		    pub, CKA_MODULUS_BITS, (CK_ULONG)EVP_PKEY_get_bits(pk));
		break;
	default:
		return CKR_GENERAL_ERROR;
	}
	return CKR_OK;
}

static CK_RV
c_generate_key_pair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pubt, CK_ULONG npub, CK_ATTRIBUTE_PTR privt,
    CK_ULONG npriv, CK_OBJECT_HANDLE_PTR pubhp, CK_OBJECT_HANDLE_PTR privhp)
{
	struct object *pub = NULL, *priv = NULL;
	const CK_ATTRIBUTE *ecparams = NULL;
	struct session *s;
	enum curve c = CURVE_NONE;
	CK_KEY_TYPE kt;
	CK_ULONG bits = 0;
	BIGNUM *e = NULL;
	EVP_PKEY *pk = NULL;
	CK_RV rv;

	if (begin(F_C_GenerateKeyPair, &rv))
		return leave(rv);
	if (m == NULL || pubhp == NULL || privhp == NULL ||
	    (pubt == NULL && npub > 0) || (privt == NULL && npriv > 0))
		return leave(CKR_ARGUMENTS_BAD);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if (!mech_ok(m->mechanism, CKF_GENERATE_KEY_PAIR))
		return leave(CKR_MECHANISM_INVALID);
	switch (m->mechanism) {
	case CKM_EC_KEY_PAIR_GEN:
		kt = CKK_EC;
		break;
	case CKM_EC_EDWARDS_KEY_PAIR_GEN:
		kt = CKK_EC_EDWARDS;
		break;
	default:
		kt = CKK_RSA;
		break;
	}
	if ((rv = have_write(s, tmpl_bool(pubt, npub, CKA_TOKEN, 0),
		 tmpl_bool(pubt, npub, CKA_PRIVATE, 0))) != CKR_OK ||
	    (rv = have_write(s, tmpl_bool(privt, npriv, CKA_TOKEN, 0),
		 tmpl_bool(privt, npriv, CKA_PRIVATE, 1))) != CKR_OK)
		return leave(rv);
	if ((pub = obj_new(CKO_PUBLIC_KEY, kt)) == NULL ||
	    (priv = obj_new(CKO_PRIVATE_KEY, kt)) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	key_defaults(pub, m->mechanism);
	key_defaults(priv, m->mechanism);
	if ((rv = tmpl_apply(pub, pubt, npub, 1)) != CKR_OK ||
	    (rv = tmpl_apply(priv, privt, npriv, 0)) != CKR_OK)
		goto out;
	if (kt == CKK_RSA)
		rv = rsa_params(pubt, npub, &bits, &e);
	else {
		ecparams = tmpl_find(pubt, npub, CKA_EC_PARAMS);
		rv = parse_curve(ecparams, m->mechanism, &c);
	}
	if (rv != CKR_OK)
		goto out;
	if ((pk = generate(m->mechanism, c, bits, e)) == NULL) {
		rv = CKR_FUNCTION_FAILED;
		goto out;
	}
	if ((rv = set_key_attrs(pub, priv, pk, ecparams)) != CKR_OK)
		goto out;
	if (key_store(priv, pk) != 0) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	attr_set_bool(
	    priv, CKA_ALWAYS_SENSITIVE, attr_bool(priv, CKA_SENSITIVE));
	attr_set_bool(
	    priv, CKA_NEVER_EXTRACTABLE, !attr_bool(priv, CKA_EXTRACTABLE));
	if (pub->oom || priv->oom) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	pub->is_private = attr_bool(pub, CKA_PRIVATE);
	priv->is_private = attr_bool(priv, CKA_PRIVATE);
	pub->owner = attr_bool(pub, CKA_TOKEN) ? 0 : s->handle;
	priv->owner = attr_bool(priv, CKA_TOKEN) ? 0 : s->handle;
	obj_append(pub);
	obj_append(priv);
	*pubhp = obj_handle(pub);
	*privhp = obj_handle(priv);
	pub = priv = NULL;
out:
	obj_free(pub);
	obj_free(priv);
	EVP_PKEY_free(pk);
	BN_free(e);
	return leave(rv);
}

/*
 * Object creation: data objects only.
 */

/* SoftHSM2's defaults for a data object. */
static void
data_defaults(struct object *o)
{
	attr_set_ulong(o, CKA_CLASS, CKO_DATA);
	attr_set_bool(o, CKA_TOKEN, 0);
	attr_set_bool(o, CKA_PRIVATE, 1);
	attr_set_bool(o, CKA_MODIFIABLE, 1);
	attr_set_bool(o, CKA_COPYABLE, 1);
	attr_set_bool(o, CKA_DESTROYABLE, 1);
	attr_set(o, CKA_LABEL, NULL, 0);
	attr_set(o, CKA_APPLICATION, NULL, 0);
	attr_set(o, CKA_OBJECT_ID, NULL, 0);
	attr_set(o, CKA_VALUE, NULL, 0);
}

static CK_RV
c_create_object(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR hp)
{
	const CK_ATTRIBUTE *a;
	struct object *o = NULL;
	struct session *s;
	CK_OBJECT_CLASS cls;
	CK_RV rv;

	if (begin(F_C_CreateObject, &rv))
		return leave(rv);
	if (tmpl == NULL || hp == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	/* SoftHSM2's extractObjectInformation(): a CKA_CLASS of the right
	 * size, or the template is incomplete */
	a = tmpl_find(tmpl, n, CKA_CLASS);
	if (a == NULL || a->pValue == NULL || a->ulValueLen != sizeof(cls))
		return leave(CKR_TEMPLATE_INCOMPLETE);
	memcpy(&cls, a->pValue, sizeof(cls));
	if ((rv = have_write(s, tmpl_bool(tmpl, n, CKA_TOKEN, 0),
		 tmpl_bool(tmpl, n, CKA_PRIVATE, 1))) != CKR_OK)
		return leave(rv);
	if (n > MAX_CREATE_ATTRS)
		return leave(CKR_TEMPLATE_INCONSISTENT);
	if (cls != CKO_DATA)
		return leave(CKR_ATTRIBUTE_VALUE_INVALID);
	if ((o = obj_new(CKO_DATA, 0)) == NULL)
		return leave(CKR_HOST_MEMORY);
	data_defaults(o);
	if ((rv = tmpl_apply(o, tmpl, n, 0)) != CKR_OK)
		goto out;
	if (o->oom) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	o->is_private = attr_bool(o, CKA_PRIVATE);
	o->owner = attr_bool(o, CKA_TOKEN) ? 0 : s->handle;
	obj_append(o);
	*hp = obj_handle(o);
	o = NULL;
out:
	obj_free(o);
	return leave(rv);
}

/*
 * Signing.
 */

static const EVP_MD *
pss_md(CK_MECHANISM_TYPE hash, CK_RSA_PKCS_MGF_TYPE *mgfp)
{
	switch (hash) {
	case CKM_SHA256:
		*mgfp = CKG_MGF1_SHA256;
		return EVP_sha256();
	case CKM_SHA384:
		*mgfp = CKG_MGF1_SHA384;
		return EVP_sha384();
	case CKM_SHA512:
		*mgfp = CKG_MGF1_SHA512;
		return EVP_sha512();
	default:
		return NULL;
	}
}

static CK_RV
pss_params(const CK_MECHANISM *m, EVP_PKEY *pk, struct sign_op *op)
{
	CK_RSA_PKCS_PSS_PARAMS p;
	CK_RSA_PKCS_MGF_TYPE mgf = 0;
	int emlen;

	if (m->pParameter == NULL || m->ulParameterLen != sizeof(p))
		return CKR_MECHANISM_PARAM_INVALID;
	memcpy(&p, m->pParameter, sizeof(p));
	if ((op->md = pss_md(p.hashAlg, &mgf)) == NULL || p.mgf != mgf)
		return CKR_MECHANISM_PARAM_INVALID;
	if (m->mechanism == CKM_SHA256_RSA_PKCS_PSS && p.hashAlg != CKM_SHA256)
		return CKR_MECHANISM_PARAM_INVALID;
	emlen = (EVP_PKEY_get_bits(pk) - 1 + 7) / 8;
	if (p.sLen > (CK_ULONG)(emlen - EVP_MD_get_size(op->md) - 2))
		return CKR_MECHANISM_PARAM_INVALID;
	op->mgf = op->md;
	op->slen = (int)p.sLen;
	return CKR_OK;
}

static CK_RV
c_sign_init(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE kh)
{
	struct sign_op op;
	struct session *s;
	struct object *k;
	CK_KEY_TYPE want;
	EVP_PKEY *pk;
	CK_RV rv = CKR_OK;

	if (begin(F_C_SignInit, &rv))
		return leave(rv);
	if (m == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if (s->op != OP_NONE)
		return leave(CKR_OPERATION_ACTIVE);
	if ((k = obj_get(kh)) == NULL)
		return leave(CKR_KEY_HANDLE_INVALID);
	if (!attr_bool(k, CKA_SIGN))
		return leave(CKR_KEY_FUNCTION_NOT_PERMITTED);
	if (!mech_ok(m->mechanism, CKF_SIGN))
		return leave(CKR_MECHANISM_INVALID);
	switch (m->mechanism) {
	case CKM_ECDSA:
		want = CKK_EC;
		break;
	case CKM_EDDSA:
		want = CKK_EC_EDWARDS;
		break;
	default:
		want = CKK_RSA;
		break;
	}
	if (k->cls != CKO_PRIVATE_KEY || k->kt != want || k->der == NULL)
		return leave(CKR_KEY_TYPE_INCONSISTENT);
	memset(&op, 0, sizeof(op));
	op.mech = m->mechanism;
	if ((pk = key_load(k->der, k->derlen)) == NULL)
		return leave(CKR_FUNCTION_FAILED);
	switch (want) {
	case CKK_EC:
		op.siglen = 2 * (size_t)((EVP_PKEY_get_bits(pk) + 7) / 8);
		break;
	case CKK_EC_EDWARDS:
		op.siglen = 64;
		break;
	default:
		rv = pss_params(m, pk, &op);
		op.siglen = (size_t)EVP_PKEY_get_size(pk);
		break;
	}
	EVP_PKEY_free(pk);
	if (rv != CKR_OK)
		return leave(rv);
	if ((op.der = malloc(k->derlen)) == NULL)
		return leave(CKR_HOST_MEMORY);
	memcpy(op.der, k->der, k->derlen);
	op.derlen = k->derlen;
	s->sign = op;
	s->op = OP_SIGN;
	return leave(CKR_OK);
}

static int
pss_setup(EVP_PKEY_CTX *pc, const struct sign_op *op)
{
	return EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
	       EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, op->slen) > 0 &&
	       EVP_PKEY_CTX_set_rsa_mgf1_md(pc, op->mgf) > 0;
}

/* Sign in into out (op->siglen bytes); *lenp: the length written. */
static CK_RV
sign_compute(const struct sign_op *op, const CK_BYTE *in, CK_ULONG inlen,
    CK_BYTE *out, size_t *lenp)
{
	static const unsigned char empty[1];
	unsigned char der[160];
	const unsigned char *p;
	const BIGNUM *r, *sv;
	EVP_PKEY_CTX *pc = NULL, *dpc = NULL;
	EVP_MD_CTX *mc = NULL;
	ECDSA_SIG *es = NULL;
	EVP_PKEY *pk;
	size_t len, half;
	CK_RV rv = CKR_FUNCTION_FAILED;

	if (inlen == 0)
		in = empty;
	if ((pk = key_load(op->der, op->derlen)) == NULL)
		return CKR_FUNCTION_FAILED;
	len = op->siglen;
	switch (op->mech) {
	case CKM_ECDSA:
		if (inlen == 0) {
			rv = CKR_DATA_LEN_RANGE;
			goto out;
		}
		len = sizeof(der);
		if ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL ||
		    EVP_PKEY_sign_init(pc) <= 0 ||
		    EVP_PKEY_sign(pc, der, &len, in, inlen) <= 0)
			goto out;
		p = der;
		if ((es = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
			goto out;
		ECDSA_SIG_get0(es, &r, &sv);
		half = op->siglen / 2;
		if (BN_bn2binpad(r, out, (int)half) < 0 ||
		    BN_bn2binpad(sv, out + half, (int)half) < 0)
			goto out;
		len = op->siglen;
		break;
	case CKM_EDDSA:
		if ((mc = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestSignInit(mc, NULL, NULL, NULL, pk) <= 0 ||
		    EVP_DigestSign(mc, out, &len, in, inlen) <= 0)
			goto out;
		break;
	case CKM_RSA_PKCS_PSS:
		if (inlen != (CK_ULONG)EVP_MD_get_size(op->md)) {
			rv = CKR_DATA_LEN_RANGE;
			goto out;
		}
		if ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL ||
		    EVP_PKEY_sign_init(pc) <= 0 || !pss_setup(pc, op) ||
		    EVP_PKEY_CTX_set_signature_md(pc, op->md) <= 0 ||
		    EVP_PKEY_sign(pc, out, &len, in, inlen) <= 0)
			goto out;
		break;
	case CKM_SHA256_RSA_PKCS_PSS:
		if ((mc = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestSignInit(mc, &dpc, op->md, NULL, pk) <= 0 ||
		    !pss_setup(dpc, op) ||
		    EVP_DigestSign(mc, out, &len, in, inlen) <= 0)
			goto out;
		break;
	default:
		rv = CKR_GENERAL_ERROR;
		goto out;
	}
	*lenp = len;
	rv = CKR_OK;
out:
	ECDSA_SIG_free(es);
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(pk);
	return rv;
}

static CK_RV
c_sign(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG inlen, CK_BYTE_PTR sig,
    CK_ULONG_PTR siglenp)
{
	struct session *s;
	size_t len = 0;
	CK_RV rv;

	if (enter(F_C_Sign, &rv)) {
		/* a failed C_Sign ends the operation (PKCS#11 2.40 5.11) */
		if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL && st.cryptoki &&
		    (s = session_get(h)) != NULL && s->op == OP_SIGN)
			op_end(s);
		return leave(rv);
	}
	if (!st.cryptoki)
		return leave(CKR_CRYPTOKI_NOT_INITIALIZED);
	if ((in == NULL && inlen > 0) || siglenp == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if ((s = session_get(h)) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	if (s->op != OP_SIGN)
		return leave(CKR_OPERATION_NOT_INITIALIZED);
	if (sig == NULL) {
		*siglenp = s->sign.siglen;
		return leave(CKR_OK);
	}
	if (*siglenp < s->sign.siglen) {
		*siglenp = s->sign.siglen;
		return leave(CKR_BUFFER_TOO_SMALL);
	}
	rv = sign_compute(&s->sign, in, inlen, sig, &len);
	op_end(s);
	if (rv != CKR_OK)
		return leave(rv);
	if (st.corrupt && len > 0)
		sig[len / 2] ^= 0x01;
	*siglenp = len;
	return leave(CKR_OK);
}

/*
 * Random numbers.
 */

static CK_RV
c_seed_random(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len)
{
	CK_RV rv;

	(void)len;
	if (begin(F_C_SeedRandom, &rv))
		return leave(rv);
	if (seed == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	if (session_get(h) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	return leave(CKR_RANDOM_SEED_NOT_SUPPORTED);
}

static CK_RV
c_generate_random(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len)
{
	CK_ULONG chunk;
	CK_RV rv;

	if (begin(F_C_GenerateRandom, &rv))
		return leave(rv);
	if (out == NULL && len > 0)
		return leave(CKR_ARGUMENTS_BAD);
	if (session_get(h) == NULL)
		return leave(CKR_SESSION_HANDLE_INVALID);
	while (len > 0) {
		chunk = len > 65536 ? 65536 : len;
		if (RAND_bytes(out, (int)chunk) != 1)
			return leave(CKR_FUNCTION_FAILED);
		out += chunk;
		len -= chunk;
	}
	return leave(CKR_OK);
}

/*
 * Everything else: CKR_FUNCTION_NOT_SUPPORTED, but counted and faultable.
 */

static CK_RV
stub(enum fn_id f)
{
	CK_RV rv;

	if (begin(f, &rv))
		return leave(rv);
	return leave(CKR_FUNCTION_NOT_SUPPORTED);
}

#define STUB(name, args)                                                       \
	static CK_RV stub_##name args                                          \
	{                                                                      \
		return stub(F_C_##name);                                       \
	}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"

STUB(GetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
STUB(SetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			    CK_OBJECT_HANDLE d, CK_OBJECT_HANDLE e))
STUB(CopyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c,
		     CK_ULONG d, CK_OBJECT_HANDLE_PTR e))
STUB(GetObjectSize, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ULONG_PTR c))
STUB(EncryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
STUB(Encrypt, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		  CK_ULONG_PTR e))
STUB(EncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			CK_BYTE_PTR d, CK_ULONG_PTR e))
STUB(EncryptFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
STUB(DecryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
STUB(Decrypt, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		  CK_ULONG_PTR e))
STUB(DecryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			CK_BYTE_PTR d, CK_ULONG_PTR e))
STUB(DecryptFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
STUB(DigestInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b))
STUB(Digest, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
		 CK_ULONG_PTR e))
STUB(DigestUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
STUB(DigestKey, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b))
STUB(DigestFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
STUB(SignUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
STUB(SignFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
STUB(SignRecoverInit,
    (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
STUB(SignRecover, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
		      CK_BYTE_PTR d, CK_ULONG_PTR e))
STUB(VerifyInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
STUB(Verify,
    (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG e))
STUB(VerifyUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
STUB(VerifyFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
STUB(VerifyRecoverInit,
    (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
STUB(VerifyRecover, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			CK_BYTE_PTR d, CK_ULONG_PTR e))
STUB(DigestEncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			      CK_BYTE_PTR d, CK_ULONG_PTR e))
STUB(DecryptDigestUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			      CK_BYTE_PTR d, CK_ULONG_PTR e))
STUB(SignEncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			    CK_BYTE_PTR d, CK_ULONG_PTR e))
STUB(DecryptVerifyUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
			      CK_BYTE_PTR d, CK_ULONG_PTR e))
STUB(GenerateKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c,
		      CK_ULONG d, CK_OBJECT_HANDLE_PTR e))
STUB(WrapKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,
		  CK_OBJECT_HANDLE d, CK_BYTE_PTR e, CK_ULONG_PTR f))
STUB(UnwrapKey,
    (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_BYTE_PTR d,
	CK_ULONG e, CK_ATTRIBUTE_PTR f, CK_ULONG g, CK_OBJECT_HANDLE_PTR i))
STUB(DeriveKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,
		    CK_ATTRIBUTE_PTR d, CK_ULONG e, CK_OBJECT_HANDLE_PTR f))
STUB(GetFunctionStatus, (CK_SESSION_HANDLE a))
STUB(CancelFunction, (CK_SESSION_HANDLE a))
STUB(WaitForSlotEvent, (CK_FLAGS a, CK_SLOT_ID_PTR b, CK_VOID_PTR c))

#pragma GCC diagnostic pop

/*
 * The function list and the exported entry points.
 */

static CK_FUNCTION_LIST function_list = {
    .version = {2, 40},
    .C_Initialize = c_initialize,
    .C_Finalize = c_finalize,
    .C_GetInfo = c_get_info,
    .C_GetFunctionList = C_GetFunctionList,
    .C_GetSlotList = c_get_slot_list,
    .C_GetSlotInfo = c_get_slot_info,
    .C_GetTokenInfo = c_get_token_info,
    .C_GetMechanismList = c_get_mechanism_list,
    .C_GetMechanismInfo = c_get_mechanism_info,
    .C_InitToken = c_init_token,
    .C_InitPIN = c_init_pin,
    .C_SetPIN = c_set_pin,
    .C_OpenSession = c_open_session,
    .C_CloseSession = c_close_session,
    .C_CloseAllSessions = c_close_all_sessions,
    .C_GetSessionInfo = c_get_session_info,
    .C_GetOperationState = stub_GetOperationState,
    .C_SetOperationState = stub_SetOperationState,
    .C_Login = c_login,
    .C_Logout = c_logout,
    .C_CreateObject = c_create_object,
    .C_CopyObject = stub_CopyObject,
    .C_DestroyObject = c_destroy_object,
    .C_GetObjectSize = stub_GetObjectSize,
    .C_GetAttributeValue = c_get_attribute_value,
    .C_SetAttributeValue = c_set_attribute_value,
    .C_FindObjectsInit = c_find_objects_init,
    .C_FindObjects = c_find_objects,
    .C_FindObjectsFinal = c_find_objects_final,
    .C_EncryptInit = stub_EncryptInit,
    .C_Encrypt = stub_Encrypt,
    .C_EncryptUpdate = stub_EncryptUpdate,
    .C_EncryptFinal = stub_EncryptFinal,
    .C_DecryptInit = stub_DecryptInit,
    .C_Decrypt = stub_Decrypt,
    .C_DecryptUpdate = stub_DecryptUpdate,
    .C_DecryptFinal = stub_DecryptFinal,
    .C_DigestInit = stub_DigestInit,
    .C_Digest = stub_Digest,
    .C_DigestUpdate = stub_DigestUpdate,
    .C_DigestKey = stub_DigestKey,
    .C_DigestFinal = stub_DigestFinal,
    .C_SignInit = c_sign_init,
    .C_Sign = c_sign,
    .C_SignUpdate = stub_SignUpdate,
    .C_SignFinal = stub_SignFinal,
    .C_SignRecoverInit = stub_SignRecoverInit,
    .C_SignRecover = stub_SignRecover,
    .C_VerifyInit = stub_VerifyInit,
    .C_Verify = stub_Verify,
    .C_VerifyUpdate = stub_VerifyUpdate,
    .C_VerifyFinal = stub_VerifyFinal,
    .C_VerifyRecoverInit = stub_VerifyRecoverInit,
    .C_VerifyRecover = stub_VerifyRecover,
    .C_DigestEncryptUpdate = stub_DigestEncryptUpdate,
    .C_DecryptDigestUpdate = stub_DecryptDigestUpdate,
    .C_SignEncryptUpdate = stub_SignEncryptUpdate,
    .C_DecryptVerifyUpdate = stub_DecryptVerifyUpdate,
    .C_GenerateKey = stub_GenerateKey,
    .C_GenerateKeyPair = c_generate_key_pair,
    .C_WrapKey = stub_WrapKey,
    .C_UnwrapKey = stub_UnwrapKey,
    .C_DeriveKey = stub_DeriveKey,
    .C_SeedRandom = c_seed_random,
    .C_GenerateRandom = c_generate_random,
    .C_GetFunctionStatus = stub_GetFunctionStatus,
    .C_CancelFunction = stub_CancelFunction,
    .C_WaitForSlotEvent = stub_WaitForSlotEvent,
};

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR listp)
{
	CK_RV rv;

	if (enter(F_C_GetFunctionList, &rv))
		return leave(rv);
	if (listp == NULL)
		return leave(CKR_ARGUMENTS_BAD);
	*listp = &function_list;
	return leave(CKR_OK);
}

CK_FUNCTION_LIST *
mock_p11_functions(void)
{
	return &function_list;
}

/* dlclose() or exit: give back all memory (see the comment at the top). */
__attribute__((destructor)) static void
unload(void)
{
	pthread_mutex_lock(&mtx);
	state_free();
	pthread_mutex_unlock(&mtx);
}

/*
 * Test control.
 */

void
mock_p11_reset(const struct mock_p11_opts *o)
{
	pthread_mutex_lock(&mtx);
	state_reset(o);
	unlock();
}

static void
fault_add(const char *fn, CK_RV rv, int nth, int count, int reset)
{
	struct fault *nf;
	int f = fn_lookup(fn);

	lock();
	nf = realloc(st.faults, (st.nfaults + 1) * sizeof(*nf));
	if (nf == NULL) {
		fprintf(stderr, "mock_p11: out of memory\n");
		abort();
	}
	st.faults = nf;
	nf = &st.faults[st.nfaults++];
	nf->fn = (enum fn_id)f;
	nf->rv = rv;
	nf->seen = 0;
	nf->nth = nth < 1 ? 1 : (unsigned long)nth;
	nf->count = count == 0 ? 1 : count;
	nf->reset = reset;
	unlock();
}

void
mock_p11_fail(const char *fn, CK_RV rv, int nth, int count)
{
	fault_add(fn, rv, nth, count, 0);
}

void
mock_p11_fail_reset(const char *fn, int nth)
{
	fault_add(fn, CKR_SESSION_HANDLE_INVALID, nth, 1, 1);
}

void
mock_p11_clear_faults(void)
{
	lock();
	free(st.faults);
	st.faults = NULL;
	st.nfaults = 0;
	unlock();
}

unsigned long
mock_p11_calls(const char *fn)
{
	unsigned long n;
	int f = fn_lookup(fn);

	lock();
	n = st.calls[f];
	unlock();
	return n;
}

void
mock_p11_invalidate_sessions(void)
{
	lock();
	sessions_close_all();
	unlock();
}

void
mock_p11_corrupt_signatures(int on)
{
	lock();
	st.corrupt = on != 0;
	unlock();
}

void
mock_p11_lie_attribute(CK_ATTRIBUTE_TYPE type, CK_BBOOL value)
{
	struct lie *nl;
	size_t i;

	lock();
	for (i = 0; i < st.nlies; i++)
		if (st.lies[i].type == type) {
			st.lies[i].value = value;
			unlock();
			return;
		}
	nl = realloc(st.lies, (st.nlies + 1) * sizeof(*nl));
	if (nl == NULL) {
		fprintf(stderr, "mock_p11: out of memory\n");
		abort();
	}
	st.lies = nl;
	st.lies[st.nlies].type = type;
	st.lies[st.nlies].value = value;
	st.nlies++;
	unlock();
}

void
mock_p11_lie_attribute_clear(void)
{
	lock();
	free(st.lies);
	st.lies = NULL;
	st.nlies = 0;
	unlock();
}

void
mock_p11_remove_mechanism(CK_MECHANISM_TYPE m)
{
	int i;

	lock();
	if ((i = mech_index(m)) >= 0)
		st.removed[i] = 1;
	unlock();
}

void
mock_p11_destroy_noop(int on)
{
	lock();
	st.destroy_noop = on != 0;
	unlock();
}

long
mock_p11_init_flags(void)
{
	long f;

	lock();
	f = st.init_flags;
	unlock();
	return f;
}

unsigned long
mock_p11_open_sessions(void)
{
	unsigned long n;

	lock();
	n = sessions_count(0);
	unlock();
	return n;
}

unsigned long
mock_p11_object_count(void)
{
	unsigned long n;

	lock();
	n = objects_count();
	unlock();
	return n;
}

int
mock_p11_is_logged_in(void)
{
	int r;

	lock();
	r = st.login == LOGIN_USER ? 1 : st.login == LOGIN_SO ? 2 : 0;
	unlock();
	return r;
}

unsigned long
mock_p11_login_attempts(void)
{
	unsigned long n;

	lock();
	n = st.login_attempts;
	unlock();
	return n;
}
