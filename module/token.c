/* SPDX-License-Identifier: Apache-2.0 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include <p11-kit/pkcs11.h>

#include "err.h"
#include "log.h"
#include "p11uri.h"
#include "pubkey.h"
#include "secret.h"
#include "token-priv.h"
#include "token.h"
#include "util.h"

/*
 * Backend differences live in this table and nowhere else. A module is
 * matched by CK_INFO.manufacturerID; the last row matches anything.
 */
#define BE_STARTUP_RETRY                                                       \
	0x1		      /* re-initialise if the token looks half-written \
			       */
#define BE_SERIALIZE	  0x2 /* one lock around every call */
#define BE_NOT_MODIFIABLE 0x4 /* the token accepts CKA_MODIFIABLE=FALSE */

static const struct backend {
	const char *name;
	const char *manufacturer;
	unsigned flags;
} backends[] = {
    /*
     * SoftHSM2 2.6.1 is thread-safe with CKF_OS_LOCKING_OK and a session
     * per thread. A process that starts while another one writes the
     * token can see it half-written (token missing, empty label,
     * CKR_USER_PIN_NOT_INITIALIZED); a C_Finalize/C_Initialize cycle cures
     * it (pkcs11-backends.md 1.7). It honours CKA_MODIFIABLE=FALSE, which
     * makes any later attribute change fail with CKR_ACTION_PROHIBITED.
     */
    {"softhsm2", "SoftHSM", BE_STARTUP_RETRY | BE_NOT_MODIFIABLE},
    /* Any other module: trust its locking, use the plain template. */
    {"generic", NULL, 0},
};

#define STARTUP_ATTEMPTS 3
#define MAX_MECHANISMS	 1024
#define MAX_ATTR_LEN	 1024
#define MAX_SLOTS	 256

struct session {
	struct token *t;
	CK_SESSION_HANDLE h;  /* CK_INVALID_HANDLE: open one on next use */
	struct session *next; /* every session, for token_close() */
	struct session *next_idle;
	int idle;
};

struct token {
	void *dl; /* NULL when the caller gave the functions */
	CK_FUNCTION_LIST *f;
	int finalize; /* we initialised the library */
	const struct backend *be;
	struct p11uri uri;
	CK_SLOT_ID slot;
	char label[33];
	struct secret *pin;
	int pin_failed;		   /* the PIN was refused: never use it again */
	int pin_err;		   /* and the error to report from then on */
	pthread_mutex_t call_lock; /* BE_SERIALIZE only */
	pthread_mutex_t lock;	   /* anchor, sessions, pin_failed */
	pthread_mutex_t data_lock; /* one data object put or delete at a time */
	pthread_key_t tls;	   /* this thread's struct session */
	int tls_ok;
	CK_SESSION_HANDLE anchor; /* keeps the login alive */
	struct session *sessions;
	struct session *idle;
	struct {
		int ed_gen, eddsa, ec_gen, ecdsa, rsa_gen, pss;
	} mech;
};

struct token_key {
	uint8_t id[TOKEN_ID_LEN];
	enum custody_alg alg;
	struct pubkey *pub;    /* pinned */
	CK_OBJECT_HANDLE priv; /* guarded by t->lock */
};

static const CK_BYTE OID_P256[] = {
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const CK_BYTE OID_P384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const CK_BYTE OID_ED25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
/* PrintableString "edwards25519", which some modules report instead */
static const CK_BYTE STR_ED25519[] = {
    0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

/* The PCT message: any fixed bytes that name their use. */
static const uint8_t PCT_MESSAGE[] = "custody pair-wise consistency test";

static const struct {
	CK_RV rv;
	const char *name;
} rv_names[] = {
    {CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED"},
    {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
    {CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY"},
    {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
    {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
    {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
    {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
    {CKR_CANCEL, "CKR_CANCEL"},
    {CKR_CANT_LOCK, "CKR_CANT_LOCK"},
    {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
    {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
    {CKR_CURVE_NOT_SUPPORTED, "CKR_CURVE_NOT_SUPPORTED"},
    {CKR_DATA_INVALID, "CKR_DATA_INVALID"},
    {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
    {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
    {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
    {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
    {CKR_DOMAIN_PARAMS_INVALID, "CKR_DOMAIN_PARAMS_INVALID"},
    {CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED"},
    {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
    {CKR_FUNCTION_NOT_PARALLEL, "CKR_FUNCTION_NOT_PARALLEL"},
    {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
    {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
    {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
    {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
    {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
    {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"},
    {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
    {CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE"},
    {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
    {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
    {CKR_MUTEX_BAD, "CKR_MUTEX_BAD"},
    {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
    {CKR_OK, "CKR_OK"},
    {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
    {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED"},
    {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
    {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
    {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
    {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
    {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
    {CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG"},
    {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
    {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
    {CKR_SESSION_EXISTS, "CKR_SESSION_EXISTS"},
    {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
    {CKR_SESSION_PARALLEL_NOT_SUPPORTED, "CKR_SESSION_PARALLEL_NOT_SUPPORTED"},
    {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
    {CKR_SESSION_READ_ONLY_EXISTS, "CKR_SESSION_READ_ONLY_EXISTS"},
    {CKR_SESSION_READ_WRITE_SO_EXISTS, "CKR_SESSION_READ_WRITE_SO_EXISTS"},
    {CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID"},
    {CKR_SIGNATURE_LEN_RANGE, "CKR_SIGNATURE_LEN_RANGE"},
    {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
    {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
    {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
    {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
    {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
    {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"},
    {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"},
    {CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "CKR_USER_ANOTHER_ALREADY_LOGGED_IN"},
    {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
    {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
    {CKR_USER_TOO_MANY_TYPES, "CKR_USER_TOO_MANY_TYPES"},
    {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
};

const char *
token_rv_name(CK_RV rv)
{
	size_t i;

	for (i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++)
		if (rv_names[i].rv == rv)
			return rv_names[i].name;
	return "CKR_(vendor or unknown)";
}

/* The one place where a CK_RV becomes a custody error. */
static int
rv_err(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
		return 0;
	case CKR_HOST_MEMORY:
	case CKR_DEVICE_MEMORY:
		return CUSTODY_E_NOMEM;
	case CKR_PIN_INCORRECT:
		return CUSTODY_E_PIN_INCORRECT;
	case CKR_PIN_LOCKED:
	case CKR_PIN_EXPIRED:
		return CUSTODY_E_PIN_LOCKED;
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		return CUSTODY_E_PIN_FILE;
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
	case CKR_CURVE_NOT_SUPPORTED:
	case CKR_DOMAIN_PARAMS_INVALID:
	case CKR_KEY_SIZE_RANGE:
		return CUSTODY_E_MECHANISM;
	case CKR_OBJECT_HANDLE_INVALID:
	case CKR_KEY_HANDLE_INVALID:
		return CUSTODY_E_KEY_NOT_FOUND;
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_DEVICE_REMOVED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
		return CUSTODY_E_TOKEN_GONE;
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SLOT_ID_INVALID:
		return CUSTODY_E_TOKEN_NOT_FOUND;
	case CKR_FUNCTION_NOT_SUPPORTED:
		return CUSTODY_E_UNSUPPORTED;
	default:
		return CUSTODY_E_TOKEN;
	}
}

/*
 * The same for C_CreateObject of a data object, where a refused template
 * means that the token does not keep such objects (rather than a mistake in
 * it: custody's template is fixed and valid). SoftHSM2 keeps them;
 * tpm2-pkcs11 keeps them since 1.3.0, but only private and with a non-empty
 * value, and answers CKR_ATTRIBUTE_VALUE_INVALID for a class it does not
 * keep (and did so for CKO_DATA before 1.3.0); modules without object
 * creation answer CKR_FUNCTION_NOT_SUPPORTED; others name the attribute
 * they do not know (TYPE_INVALID) or call the template inconsistent or
 * incomplete.
 */
static int
rv_err_create(CK_RV rv)
{
	switch (rv) {
	case CKR_FUNCTION_NOT_SUPPORTED:
	case CKR_TEMPLATE_INCONSISTENT:
	case CKR_TEMPLATE_INCOMPLETE:
	case CKR_ATTRIBUTE_TYPE_INVALID:
	case CKR_ATTRIBUTE_VALUE_INVALID:
		return CUSTODY_E_UNSUPPORTED;
	default:
		return rv_err(rv);
	}
}

static void
call_begin(struct token *t)
{
	if (t->be != NULL && (t->be->flags & BE_SERIALIZE))
		pthread_mutex_lock(&t->call_lock);
}

static CK_RV
call_end(struct token *t, const char *fn, CK_RV rv)
{
	if (t->be != NULL && (t->be->flags & BE_SERIALIZE))
		pthread_mutex_unlock(&t->call_lock);
	custody_log(7, fn, NULL, "%s", token_rv_name(rv));
	return rv;
}

/*
 * Every PKCS#11 call goes through here (pkcs11-provider's pattern): the
 * backend's lock if it needs one, and one log line with the CK_RV. The comma
 * operator makes call_begin() run before the call itself.
 */
#define P11(t, fn, ...)                                                        \
	call_end((t), #fn, (call_begin(t), (t)->f->fn(__VA_ARGS__)))

/* Log a failed call with its context and translate it. */
static int
p11_fail(const char *func, const char *what, CK_RV rv)
{
	custody_log(3, func, NULL, "%s: %s (0x%lx)", what, token_rv_name(rv),
	    (unsigned long)rv);
	return rv_err(rv);
}

static int
session_lost(CK_RV rv)
{
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_DEVICE_REMOVED || rv == CKR_USER_NOT_LOGGED_IN ||
	       rv == CKR_TOKEN_NOT_PRESENT;
}

/* ---- loading, slots, login ------------------------------------------- */

static int
load_module(const char *path, void **dlp, CK_FUNCTION_LIST **fp)
{
	CK_C_GetFunctionList gfl;
	CK_FUNCTION_LIST *f = NULL;
	void *dl;
	CK_RV rv;

	if (path == NULL || path[0] != '/') {
		log_error_f("pkcs11-module must be an absolute path");
		return CUSTODY_E_MODULE_LOAD;
	}
	if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		log_error_f("dlopen %s: %s", path, dlerror());
		return CUSTODY_E_MODULE_LOAD;
	}
	*(void **)(&gfl) = dlsym(dl, "C_GetFunctionList");
	if (gfl == NULL) {
		log_error_f(
		    "%s has no C_GetFunctionList: not a PKCS#11 module", path);
		dlclose(dl);
		return CUSTODY_E_MODULE_LOAD;
	}
	if ((rv = gfl(&f)) != CKR_OK || f == NULL) {
		log_error_f(
		    "%s: C_GetFunctionList: %s", path, token_rv_name(rv));
		dlclose(dl);
		return CUSTODY_E_MODULE_LOAD;
	}
	*dlp = dl;
	*fp = f;
	return 0;
}

/*
 * C_Initialize with CKF_OS_LOCKING_OK: with NULL arguments SoftHSM2 turns its
 * locking off and crashes under threads. CKR_CRYPTOKI_ALREADY_INITIALIZED
 * means someone else in this process owns the library: use it, but never
 * C_Finalize it.
 */
static int
initialize(struct token *t)
{
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = P11(t, C_Initialize, &args);
	if (rv == CKR_OK)
		t->finalize = 1;
	else if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
		t->finalize = 0;
	else
		return p11_fail(__func__, "C_Initialize", rv);
	return 0;
}

static void
finalize(struct token *t)
{
	if (t->finalize)
		(void)P11(t, C_Finalize, NULL);
	t->finalize = 0;
}

static void
pick_backend(struct token *t)
{
	CK_INFO info;
	size_t i, n = sizeof(backends) / sizeof(backends[0]);

	t->be = &backends[n - 1];
	if (P11(t, C_GetInfo, &info) != CKR_OK)
		return;
	for (i = 0; i + 1 < n; i++) {
		size_t ml = strlen(backends[i].manufacturer);

		if (memcmp(info.manufacturerID, backends[i].manufacturer, ml) ==
		    0) {
			t->be = &backends[i];
			break;
		}
	}
	log_debug_f("backend %s (%.32s, %.32s)", t->be->name,
	    (const char *)info.manufacturerID,
	    (const char *)info.libraryDescription);
}

static int
token_matches(const CK_TOKEN_INFO *ti, const struct p11uri *u)
{
	return p11uri_field_eq(ti->label, sizeof(ti->label), u->token) &&
	       p11uri_field_eq(ti->manufacturerID, sizeof(ti->manufacturerID),
		   u->manufacturer) &&
	       p11uri_field_eq(ti->model, sizeof(ti->model), u->model) &&
	       p11uri_field_eq(
		   ti->serialNumber, sizeof(ti->serialNumber), u->serial);
}

/*
 * Find the one initialised token that matches the URI. With want_free, find
 * instead a slot whose token is not initialised (for custody init).
 */
static int
find_slot(struct token *t, const struct p11uri *u, int want_free,
    CK_SLOT_ID *slotp, CK_TOKEN_INFO *tip, CK_ULONG *matchesp)
{
	CK_SLOT_ID slots[MAX_SLOTS];
	CK_ULONG n = MAX_SLOTS, i, found = 0;
	CK_TOKEN_INFO ti;
	CK_RV rv;

	if ((rv = P11(t, C_GetSlotList, CK_TRUE, slots, &n)) != CKR_OK)
		return p11_fail(__func__, "C_GetSlotList", rv);
	if (n > MAX_SLOTS)
		return CUSTODY_E_TOKEN;
	for (i = 0; i < n; i++) {
		if ((rv = P11(t, C_GetTokenInfo, slots[i], &ti)) != CKR_OK) {
			log_debug_f("slot %lu: C_GetTokenInfo: %s",
			    (unsigned long)slots[i], token_rv_name(rv));
			continue;
		}
		if (want_free) {
			if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
				*slotp = slots[i];
				*tip = ti;
				return 0;
			}
			continue;
		}
		if (!(ti.flags & CKF_TOKEN_INITIALIZED) ||
		    !token_matches(&ti, u))
			continue;
		if (found++ == 0) {
			*slotp = slots[i];
			*tip = ti;
		}
	}
	if (matchesp != NULL)
		*matchesp = found;
	if (want_free) {
		log_error_f("no slot with an uninitialised token is left");
		return CUSTODY_E_TOKEN_NOT_FOUND;
	}
	if (found == 0) {
		/* the caller says whether that is an error (init probes) */
		log_debug_f("no initialised token matches token=%s", u->token);
		return CUSTODY_E_TOKEN_NOT_FOUND;
	}
	if (found > 1) {
		log_error_f(
		    "%lu tokens match token=%s: add manufacturer, model "
		    "or serial to the URI",
		    (unsigned long)found, u->token);
		return CUSTODY_E_TOKEN_NOT_FOUND;
	}
	return 0;
}

/* After a failed C_Login: a refused PIN is never used again. */
static void
pin_refused(struct token *t, CK_RV rv)
{
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ||
	    rv == CKR_PIN_EXPIRED || rv == CKR_PIN_INVALID ||
	    rv == CKR_PIN_LEN_RANGE) {
		t->pin_failed = 1;
		t->pin_err = rv_err(rv);
	}
}

/* Called with t->lock held (or before other threads exist). */
static int
login_locked(struct token *t, CK_SESSION_HANDLE s)
{
	CK_RV rv;

	if (t->pin_failed) {
		log_error_f("the PIN was refused before; not trying it again");
		return t->pin_err;
	}
	rv = P11(t, C_Login, s, CKU_USER, (CK_UTF8CHAR_PTR)t->pin->data,
	    (CK_ULONG)t->pin->len);
	/* custody's own login, lost and redone: already logged in is fine */
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
		return 0;
	pin_refused(t, rv);
	return p11_fail(__func__, "C_Login", rv);
}

static int
open_rw(struct token *t, CK_SESSION_HANDLE *hp)
{
	CK_RV rv;

	rv = P11(t, C_OpenSession, t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
	    NULL, NULL, hp);
	if (rv != CKR_OK)
		return p11_fail(__func__, "C_OpenSession", rv);
	return 0;
}

static void
load_mechanisms(struct token *t)
{
	CK_MECHANISM_TYPE *m;
	CK_ULONG n = 0, i, alloc;

	if (P11(t, C_GetMechanismList, t->slot, NULL, &n) != CKR_OK || n == 0 ||
	    n > MAX_MECHANISMS)
		return;
	if ((m = calloc(n, sizeof(*m))) == NULL)
		return;
	alloc = n;
	if (P11(t, C_GetMechanismList, t->slot, m, &n) == CKR_OK &&
	    n <= alloc) {
		for (i = 0; i < n; i++) {
			switch (m[i]) {
			case CKM_EC_EDWARDS_KEY_PAIR_GEN:
				t->mech.ed_gen = 1;
				break;
			case CKM_EDDSA:
				t->mech.eddsa = 1;
				break;
			case CKM_EC_KEY_PAIR_GEN:
				t->mech.ec_gen = 1;
				break;
			case CKM_ECDSA:
				t->mech.ecdsa = 1;
				break;
			case CKM_RSA_PKCS_KEY_PAIR_GEN:
				t->mech.rsa_gen = 1;
				break;
			case CKM_SHA256_RSA_PKCS_PSS:
				t->mech.pss = 1;
				break;
			default:
				break;
			}
		}
	}
	free(m);
}

/* Errors at start-up that a half-written SoftHSM2 token can cause. */
static int
startup_transient(CK_RV rv, int r)
{
	return r == CUSTODY_E_TOKEN_NOT_FOUND || rv == CKR_GENERAL_ERROR ||
	       rv == CKR_USER_PIN_NOT_INITIALIZED ||
	       rv == CKR_TOKEN_NOT_PRESENT;
}

/* Find the token, open the anchor session and log in, once. */
static int
connect_once(struct token *t, CK_RV *rvp)
{
	CK_TOKEN_INFO ti;
	CK_RV rv = CKR_OK;
	int r;

	*rvp = CKR_OK;
	if ((r = find_slot(t, &t->uri, 0, &t->slot, &ti, NULL)) != 0) {
		if (r == CUSTODY_E_TOKEN_NOT_FOUND)
			log_warn_f("no initialised token matches token=%s",
			    t->uri.token);
		return r;
	}
	memcpy(t->label, ti.label, sizeof(ti.label));
	t->label[32] = '\0';
	for (r = 31; r >= 0 && t->label[r] == ' '; r--)
		t->label[r] = '\0';
	if (ti.flags & CKF_USER_PIN_LOCKED) {
		log_error_f("token '%s' reports its user PIN locked; not "
			    "trying it",
		    t->label);
		return CUSTODY_E_PIN_LOCKED;
	}
	if (!(ti.flags & CKF_USER_PIN_INITIALIZED)) {
		*rvp = CKR_USER_PIN_NOT_INITIALIZED;
		log_error_f("token '%s' has no user PIN", t->label);
		return CUSTODY_E_TOKEN;
	}
	if (ti.flags & CKF_USER_PIN_FINAL_TRY)
		log_warn_f("token '%s': the next wrong PIN locks it", t->label);
	if ((r = open_rw(t, &t->anchor)) != 0)
		return r;
	rv = P11(t, C_Login, t->anchor, CKU_USER, (CK_UTF8CHAR_PTR)t->pin->data,
	    (CK_ULONG)t->pin->len);
	*rvp = rv;
	if (rv == CKR_OK)
		return 0;
	if (rv == CKR_USER_ALREADY_LOGGED_IN) {
		/*
		 * Someone else in this process logged in, and the module did
		 * not check our PIN: a login state is not an authorisation
		 * (OpenSC CVE-2023-40660), so refuse rather than ride on it.
		 */
		log_error_f("the module is already logged in by another user "
			    "in this process; custody cannot check its PIN");
		r = CUSTODY_E_TOKEN;
		goto fail;
	}
	pin_refused(t, rv);
	r = p11_fail(__func__, "C_Login", rv);
fail:
	(void)P11(t, C_CloseSession, t->anchor);
	t->anchor = CK_INVALID_HANDLE;
	return r;
}

static void
session_release(void *arg)
{
	struct session *s = arg;
	struct token *t = s->t;

	/* a thread ends: its session goes back to the pool, still open */
	pthread_mutex_lock(&t->lock);
	s->idle = 1;
	s->next_idle = t->idle;
	t->idle = s;
	pthread_mutex_unlock(&t->lock);
}

static int
token_new(CK_FUNCTION_LIST *f, struct token **tp)
{
	struct token *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return CUSTODY_E_NOMEM;
	t->f = f;
	t->anchor = CK_INVALID_HANDLE;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->call_lock, NULL);
	pthread_mutex_init(&t->data_lock, NULL);
	if (pthread_key_create(&t->tls, session_release) != 0) {
		pthread_mutex_destroy(&t->lock);
		pthread_mutex_destroy(&t->call_lock);
		pthread_mutex_destroy(&t->data_lock);
		free(t);
		return CUSTODY_E_NOMEM;
	}
	t->tls_ok = 1;
	*tp = t;
	return 0;
}

int
token_open_functions(
    CK_FUNCTION_LIST *f, const struct token_opts *o, struct token **tp)
{
	struct token *t = NULL;
	char err[256];
	CK_RV rv = CKR_OK;
	int r, attempt;

	CUSTODY_RETURN_VAL_IF_FAIL(f != NULL && o != NULL && tp != NULL &&
				       o->pin != NULL && o->uri != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = token_new(f, &t)) != 0)
		return r;
	if ((r = p11uri_parse(o->uri, &t->uri, err, sizeof(err))) != 0) {
		log_error_f("%s", err);
		goto out;
	}
	if ((r = secret_from_bytes(o->pin->data, o->pin->len, &t->pin)) != 0)
		goto out;
	if ((r = initialize(t)) != 0)
		goto out;
	pick_backend(t);
	for (attempt = 1;; attempt++) {
		if ((r = connect_once(t, &rv)) == 0)
			break;
		if (t->pin_failed || !(t->be->flags & BE_STARTUP_RETRY) ||
		    !t->finalize || attempt >= STARTUP_ATTEMPTS ||
		    !startup_transient(rv, r))
			goto out;
		/* SoftHSM2 re-reads the token directory on C_Initialize */
		log_warn_f(
		    "token not ready (attempt %d): re-initialising", attempt);
		finalize(t);
		nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
		if ((r = initialize(t)) != 0)
			goto out;
	}
	load_mechanisms(t);
	*tp = t;
	t = NULL;
out:
	token_close(t);
	return r;
}

int
token_open(const struct token_opts *o, struct token **tp)
{
	CK_FUNCTION_LIST *f = NULL;
	void *dl = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    o != NULL && tp != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = load_module(o->module, &dl, &f)) != 0)
		return r;
	if ((r = token_open_functions(f, o, tp)) != 0) {
		dlclose(dl);
		return r;
	}
	(*tp)->dl = dl;
	return 0;
}

void
token_close(struct token *t)
{
	struct session *s, *next;

	if (t == NULL)
		return;
	if (t->tls_ok)
		pthread_key_delete(t->tls);
	for (s = t->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->h != CK_INVALID_HANDLE)
			(void)P11(t, C_CloseSession, s->h);
		free(s);
	}
	if (t->anchor != CK_INVALID_HANDLE) {
		(void)P11(t, C_Logout, t->anchor);
		(void)P11(t, C_CloseSession, t->anchor);
	}
	finalize(t);
	if (t->dl != NULL)
		dlclose(t->dl);
	secret_free(t->pin);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->call_lock);
	pthread_mutex_destroy(&t->data_lock);
	free(t);
}

const char *
token_backend(const struct token *t)
{
	return t->be->name;
}

const char *
token_label(const struct token *t)
{
	return t->label;
}

/* ---- sessions ----------------------------------------------------------- */

static int anchor_ensure_locked(struct token *t);

/* This thread's session, opened if needed. */
static int
session_get(struct token *t, struct session **sp)
{
	struct session *s = pthread_getspecific(t->tls);
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (t->pin_failed) {
		/* logged out for good: custody stops rather than guess */
		log_error_f("the token refused the PIN; nothing more is done "
			    "until custody is restarted with the right one");
		r = t->pin_err;
		goto out;
	}
	/* a recovery that failed left no anchor: without it, nothing is
	 * logged in and private keys are invisible, so restore it first */
	if (t->anchor == CK_INVALID_HANDLE &&
	    (r = anchor_ensure_locked(t)) != 0)
		goto out;
	if (s == NULL) {
		if ((s = t->idle) != NULL) {
			t->idle = s->next_idle;
			s->idle = 0;
		} else if ((s = calloc(1, sizeof(*s))) != NULL) {
			s->t = t;
			s->h = CK_INVALID_HANDLE;
			s->next = t->sessions;
			t->sessions = s;
		} else {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
		pthread_setspecific(t->tls, s);
	}
	if (s->h == CK_INVALID_HANDLE)
		r = open_rw(t, &s->h);
out:
	pthread_mutex_unlock(&t->lock);
	if (r == 0)
		*sp = s;
	return r;
}

/*
 * Drop a session whose state is unknown (an operation left active, a length
 * the token lied about): it is closed and a new one opens on next use.
 */
static void
session_drop(struct token *t, struct session *s)
{
	pthread_mutex_lock(&t->lock);
	if (s->h != CK_INVALID_HANDLE)
		(void)P11(t, C_CloseSession, s->h);
	s->h = CK_INVALID_HANDLE;
	pthread_mutex_unlock(&t->lock);
}

static int
user_state(CK_STATE st)
{
	return st == CKS_RW_USER_FUNCTIONS || st == CKS_RO_USER_FUNCTIONS;
}

/*
 * With t->lock held: make sure the anchor session is open and logged in,
 * finding the token again by its URI (a token removed and put back may sit
 * in another slot) and logging in once with the held PIN if needed. A
 * failure leaves no anchor, and the next session_get() tries again.
 */
static int
anchor_ensure_locked(struct token *t)
{
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot;
	CK_RV rv;
	int r;

	if (t->pin_failed)
		return t->pin_err;
	if (t->anchor != CK_INVALID_HANDLE) {
		rv = P11(t, C_GetSessionInfo, t->anchor, &si);
		if (rv == CKR_OK && user_state(si.state))
			return 0;
		if (rv == CKR_OK)
			return login_locked(t, t->anchor);
		(void)P11(t, C_CloseSession, t->anchor);
		t->anchor = CK_INVALID_HANDLE;
	}
	if (find_slot(t, &t->uri, 0, &slot, &ti, NULL) != 0) {
		log_error_f("token '%s' is not reachable", t->uri.token);
		return CUSTODY_E_TOKEN_GONE;
	}
	t->slot = slot;
	if ((r = open_rw(t, &t->anchor)) != 0)
		return r;
	if ((r = login_locked(t, t->anchor)) != 0) {
		(void)P11(t, C_CloseSession, t->anchor);
		t->anchor = CK_INVALID_HANDLE;
	}
	return r;
}

/*
 * After a call failed with a lost session: drop this thread's session and
 * make sure the anchor is alive and logged in. A refused PIN is never tried
 * again.
 */
static int
recover(struct token *t, struct session *s, CK_RV why)
{
	int r;

	log_warn_f("session lost (%s): reopening", token_rv_name(why));
	pthread_mutex_lock(&t->lock);
	if (s->h != CK_INVALID_HANDLE)
		(void)P11(t, C_CloseSession, s->h);
	s->h = CK_INVALID_HANDLE;
	r = anchor_ensure_locked(t);
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* ---- attributes and objects --------------------------------------------- */

/* Find up to max objects matching tmpl; *np is how many were found. */
static CK_RV
find_objects(struct token *t, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl,
    CK_ULONG ntmpl, CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *np)
{
	CK_ULONG n = 0, got;
	CK_RV rv, rv2;

	if ((rv = P11(t, C_FindObjectsInit, s, tmpl, ntmpl)) != CKR_OK)
		return rv;
	do {
		got = 0;
		rv = P11(t, C_FindObjects, s, out + n, max - n, &got);
		if (rv == CKR_OK && got > max - n)
			rv = CKR_GENERAL_ERROR; /* a module overrunning out */
		if (rv == CKR_OK)
			n += got;
	} while (rv == CKR_OK && got > 0 && n < max);
	rv2 = P11(t, C_FindObjectsFinal, s);
	if (rv == CKR_OK)
		rv = rv2;
	if (rv == CKR_OK)
		*np = n;
	return rv;
}

/* CKR_OK if session s is logged in as the user, CKR_USER_NOT_LOGGED_IN if
 * not, or the error of C_GetSessionInfo. */
static CK_RV
session_logged_in(struct token *t, CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO si;
	CK_RV rv;

	if ((rv = P11(t, C_GetSessionInfo, s, &si)) != CKR_OK)
		return rv;
	return user_state(si.state) ? CKR_OK : CKR_USER_NOT_LOGGED_IN;
}

/* Objects with CKA_ID id (of class cls, or any class if cls is -1). */
static CK_RV
find_by_id(struct token *t, CK_SESSION_HANDLE s, const uint8_t *id, long cls,
    CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *np)
{
	CK_OBJECT_CLASS c = (CK_OBJECT_CLASS)cls;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_ID, (void *)id, TOKEN_ID_LEN},
	    {CKA_CLASS, &c, sizeof(c)},
	};

	CK_RV rv;

	if ((rv = find_objects(t, s, tmpl, cls < 0 ? 1 : 2, out, max, np)) !=
	    CKR_OK)
		return rv;
	/*
	 * A session that is not logged in hides private objects and still
	 * answers CKR_OK: "none found" counts only from a logged-in session
	 * (checked after the search, so that a logout during it shows too).
	 */
	return session_logged_in(t, s);
}

#define NATTRS 11

/* Read the protection attributes; each must come back as one byte. */
static int
read_attrs(struct token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    struct token_attrs *a, CK_RV *rvp)
{
	CK_BBOOL v[NATTRS];
	CK_ATTRIBUTE tmpl[NATTRS] = {
	    {CKA_SENSITIVE, &v[0], 1},
	    {CKA_ALWAYS_SENSITIVE, &v[1], 1},
	    {CKA_EXTRACTABLE, &v[2], 1},
	    {CKA_NEVER_EXTRACTABLE, &v[3], 1},
	    {CKA_LOCAL, &v[4], 1},
	    {CKA_SIGN, &v[5], 1},
	    {CKA_DECRYPT, &v[6], 1},
	    {CKA_DERIVE, &v[7], 1},
	    {CKA_UNWRAP, &v[8], 1},
	    {CKA_TOKEN, &v[9], 1},
	    {CKA_PRIVATE, &v[10], 1},
	};
	CK_RV rv;
	int i;

	memset(v, 0xff, sizeof(v));
	rv = P11(t, C_GetAttributeValue, s, h, tmpl, NATTRS);
	*rvp = rv;
	if (rv != CKR_OK)
		return p11_fail(__func__, "C_GetAttributeValue", rv);
	for (i = 0; i < NATTRS; i++) {
		if (tmpl[i].ulValueLen != 1 || v[i] > 1) {
			log_error_f("attribute 0x%lx: not a CK_BBOOL",
			    (unsigned long)tmpl[i].type);
			return CUSTODY_E_UNPROTECTED_KEY;
		}
	}
	a->sensitive = v[0];
	a->always_sensitive = v[1];
	a->extractable = v[2];
	a->never_extractable = v[3];
	a->local = v[4];
	a->sign = v[5];
	a->decrypt = v[6];
	a->derive = v[7];
	a->unwrap = v[8];
	a->token = v[9];
	a->private_ = v[10];
	return 0;
}

/* Does the token protect the key the way custody requires? */
static int
check_attrs(const struct token_attrs *a)
{
	const char *bad = NULL;

	if (!a->sensitive)
		bad = "CKA_SENSITIVE is false";
	else if (!a->always_sensitive)
		bad = "CKA_ALWAYS_SENSITIVE is false";
	else if (a->extractable)
		bad = "CKA_EXTRACTABLE is true";
	else if (!a->never_extractable)
		bad = "CKA_NEVER_EXTRACTABLE is false";
	else if (!a->local)
		bad = "CKA_LOCAL is false (not generated on the token)";
	else if (!a->sign)
		bad = "CKA_SIGN is false";
	else if (a->decrypt || a->derive || a->unwrap)
		bad = "the key can decrypt, derive or unwrap";
	else if (!a->token || !a->private_)
		bad = "not a private token object";
	if (bad == NULL)
		return 0;
	log_error_f("the token did not protect the key: %s", bad);
	return CUSTODY_E_UNPROTECTED_KEY;
}

/* The private value must be unreadable, whatever the token's reason. */
static int
check_unreadable(struct token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    enum custody_alg alg)
{
	CK_ATTRIBUTE a = {
	    alg == CUSTODY_ALG_RSA_PSS_3072 ? CKA_PRIVATE_EXPONENT : CKA_VALUE,
	    NULL, 0};
	CK_RV rv;

	rv = P11(t, C_GetAttributeValue, s, h, &a, 1);
	if ((rv == CKR_ATTRIBUTE_SENSITIVE ||
		rv == CKR_ATTRIBUTE_TYPE_INVALID) &&
	    a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
		return 0;
	log_error_f("the private value is readable (%s, length %lu)",
	    token_rv_name(rv), (unsigned long)a.ulValueLen);
	return CUSTODY_E_UNPROTECTED_KEY;
}

/* One attribute of at most MAX_ATTR_LEN bytes into buf. */
static CK_RV
get_attr(struct token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_TYPE type, uint8_t *buf, size_t *lenp)
{
	CK_ATTRIBUTE a = {type, buf, MAX_ATTR_LEN};
	CK_RV rv;

	rv = P11(t, C_GetAttributeValue, s, h, &a, 1);
	if (rv == CKR_OK && (a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
				a.ulValueLen > MAX_ATTR_LEN))
		rv = CKR_GENERAL_ERROR;
	if (rv == CKR_OK)
		*lenp = a.ulValueLen;
	return rv;
}

static int
ec_params_match(enum custody_alg alg, const uint8_t *p, size_t len)
{
	switch (alg) {
	case CUSTODY_ALG_ED25519:
		return (len == sizeof(OID_ED25519) &&
			   memcmp(p, OID_ED25519, len) == 0) ||
		       (len == sizeof(STR_ED25519) &&
			   memcmp(p, STR_ED25519, len) == 0);
	case CUSTODY_ALG_ECDSA_P256:
		return len == sizeof(OID_P256) && memcmp(p, OID_P256, len) == 0;
	case CUSTODY_ALG_ECDSA_P384:
		return len == sizeof(OID_P384) && memcmp(p, OID_P384, len) == 0;
	default:
		return 0;
	}
}

/* The public key of object h, which must be a key of alg. */
static int
read_pubkey(struct token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    enum custody_alg alg, struct pubkey **pkp, CK_RV *rvp)
{
	uint8_t a[MAX_ATTR_LEN], b[MAX_ATTR_LEN];
	size_t alen = 0, blen = 0;
	CK_RV rv;

	if (alg == CUSTODY_ALG_RSA_PSS_3072) {
		if ((rv = get_attr(t, s, h, CKA_MODULUS, a, &alen)) != CKR_OK ||
		    (rv = get_attr(t, s, h, CKA_PUBLIC_EXPONENT, b, &blen)) !=
			CKR_OK) {
			*rvp = rv;
			return p11_fail(__func__, "RSA public key", rv);
		}
		return pubkey_from_rsa(alg, a, alen, b, blen, pkp);
	}
	if ((rv = get_attr(t, s, h, CKA_EC_PARAMS, a, &alen)) != CKR_OK ||
	    (rv = get_attr(t, s, h, CKA_EC_POINT, b, &blen)) != CKR_OK) {
		*rvp = rv;
		return p11_fail(__func__, "EC public key", rv);
	}
	if (!ec_params_match(alg, a, alen)) {
		log_error_f(
		    "public key is not on the curve of %s", alg_name(alg));
		return CUSTODY_E_KEY_MISMATCH;
	}
	return pubkey_from_ec_point(alg, b, blen, pkp);
}

/* ---- public key operations ------------------------------------------- */

bool
token_supports(const struct token *t, enum custody_alg alg)
{
	switch (alg) {
	case CUSTODY_ALG_ED25519:
		return t->mech.ed_gen && t->mech.eddsa;
	case CUSTODY_ALG_ECDSA_P256:
	case CUSTODY_ALG_ECDSA_P384:
		return t->mech.ec_gen && t->mech.ecdsa;
	case CUSTODY_ALG_RSA_PSS_3072:
		return t->mech.rsa_gen && t->mech.pss;
	default:
		return false;
	}
}

static void
sign_mechanism(
    enum custody_alg alg, CK_MECHANISM *m, CK_RSA_PKCS_PSS_PARAMS *pss)
{
	memset(m, 0, sizeof(*m));
	switch (alg) {
	case CUSTODY_ALG_ED25519:
		m->mechanism = CKM_EDDSA; /* pure Ed25519: no parameters */
		break;
	case CUSTODY_ALG_ECDSA_P256:
	case CUSTODY_ALG_ECDSA_P384:
		m->mechanism = CKM_ECDSA; /* over custody's digest */
		break;
	default:
		pss->hashAlg = CKM_SHA256;
		pss->mgf = CKG_MGF1_SHA256;
		pss->sLen = 32;
		m->mechanism = CKM_SHA256_RSA_PKCS_PSS;
		m->pParameter = pss;
		m->ulParameterLen = sizeof(*pss);
		break;
	}
}

/*
 * One signing attempt on session s. Lengths the token reports are checked
 * against what alg produces before anything is written (a lying module must
 * not make custody overrun or release garbage).
 */
static CK_RV
sign_once(struct token *t, struct session *s, CK_OBJECT_HANDLE h,
    enum custody_alg alg, const uint8_t *tbs, size_t tbslen, uint8_t *sig)
{
	CK_RSA_PKCS_PSS_PARAMS pss;
	CK_MECHANISM m;
	CK_ULONG want = alg_sig_len(alg), len = 0;
	CK_RV rv;

	sign_mechanism(alg, &m, &pss);
	if ((rv = P11(t, C_SignInit, s->h, &m, h)) != CKR_OK)
		return rv;
	rv = P11(
	    t, C_Sign, s->h, (CK_BYTE_PTR)tbs, (CK_ULONG)tbslen, NULL, &len);
	if (rv == CKR_OK && len != want) {
		log_error_f("token announces a %lu-byte signature for %s, not "
			    "%lu",
		    (unsigned long)len, alg_name(alg), (unsigned long)want);
		rv = CKR_SIGNATURE_LEN_RANGE;
	} else if (rv == CKR_OK) {
		rv = P11(t, C_Sign, s->h, (CK_BYTE_PTR)tbs, (CK_ULONG)tbslen,
		    sig, &len);
		if (rv == CKR_OK && len != want) {
			log_error_f("token returned a %lu-byte signature, not "
				    "%lu",
			    (unsigned long)len, (unsigned long)want);
			rv = CKR_SIGNATURE_LEN_RANGE;
		}
	}
	/* after a failure the operation may still be active (a short buffer
	 * leaves it so): never hand that session out again */
	if (rv != CKR_OK)
		session_drop(t, s);
	return rv;
}

/* The one private key with CKA_ID id. */
static int
find_private(struct token *t, CK_SESSION_HANDLE s, const uint8_t *id,
    CK_OBJECT_HANDLE *hp, CK_RV *rvp)
{
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	CK_RV rv;

	*rvp = rv = find_by_id(t, s, id, CKO_PRIVATE_KEY, h, 2, &n);
	if (rv != CKR_OK)
		return p11_fail(__func__, "find private key", rv);
	if (n == 0)
		return CUSTODY_E_KEY_NOT_FOUND;
	if (n > 1)
		return CUSTODY_E_KEY_AMBIGUOUS;
	*hp = h[0];
	return 0;
}

int
token_sign(struct token *t, struct token_key *k, const uint8_t *msg, size_t len,
    uint8_t **sigp, size_t *siglenp)
{
	struct session *s = NULL;
	uint8_t digest[64], *sig = NULL;
	const uint8_t *tbs;
	size_t tbslen, siglen;
	CK_OBJECT_HANDLE h;
	CK_RV rv = CKR_OK;
	int r, reopened = 0, refound = 0, dropped = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL && k != NULL && msg != NULL &&
				       sigp != NULL && siglenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	siglen = alg_sig_len(k->alg);
	if ((r = pubkey_tbs(k->alg, msg, len, digest, &tbs, &tbslen)) != 0)
		return r;
	if ((sig = malloc(siglen)) == NULL)
		return CUSTODY_E_NOMEM;
	/*
	 * Recover from what a token may do between two calls: lose the
	 * session (reopened, with a new login if the login went too), forget
	 * object handles (the key is found again by CKA_ID, also after a
	 * re-login, since SoftHSM2 renumbers private objects at logout) or
	 * leave an operation active (a fresh session). Each at most as often
	 * as it can help, so that a broken token ends the loop.
	 */
	for (;;) {
		if ((r = session_get(t, &s)) != 0)
			goto out;
		pthread_mutex_lock(&t->lock);
		h = k->priv;
		pthread_mutex_unlock(&t->lock);
		if ((rv = sign_once(t, s, h, k->alg, tbs, tbslen, sig)) ==
		    CKR_OK)
			break;
		if ((rv == CKR_OBJECT_HANDLE_INVALID ||
			rv == CKR_KEY_HANDLE_INVALID) &&
		    refound < 2) {
			refound++;
			if ((r = session_get(t, &s)) != 0)
				goto out;
			r = find_private(t, s->h, k->id, &h, &rv);
			if (r == 0) {
				pthread_mutex_lock(&t->lock);
				k->priv = h;
				pthread_mutex_unlock(&t->lock);
				continue;
			}
			if (!session_lost(rv))
				goto out;
			/* not logged in, or the session went: recover */
		}
		if (session_lost(rv) && !reopened) {
			reopened = 1;
			if ((r = recover(t, s, rv)) != 0)
				goto out;
			continue;
		}
		if (rv == CKR_OPERATION_ACTIVE && !dropped) {
			dropped = 1; /* sign_once dropped the session */
			continue;
		}
		break;
	}
	if (rv != CKR_OK) {
		r = p11_fail(__func__, "C_Sign", rv);
		goto out;
	}
	/* never release a signature that does not verify (fault attacks) */
	if ((r = pubkey_verify(k->pub, msg, len, sig, siglen)) != 0) {
		log_error_f("signature by the token failed verification with "
			    "the pinned public key; withheld");
		goto out;
	}
	*sigp = sig;
	*siglenp = siglen;
	sig = NULL;
out:
	if (sig != NULL)
		OPENSSL_cleanse(sig, siglen);
	free(sig);
	OPENSSL_cleanse(digest, sizeof(digest));
	return r;
}

static int
key_new(enum custody_alg alg, const uint8_t *id, struct pubkey *pub,
    CK_OBJECT_HANDLE h, struct token_key **kp)
{
	struct token_key *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return CUSTODY_E_NOMEM;
	memcpy(k->id, id, TOKEN_ID_LEN);
	k->alg = alg;
	k->pub = pub;
	k->priv = h;
	*kp = k;
	return 0;
}

void
token_key_free(struct token_key *k)
{
	if (k == NULL)
		return;
	pubkey_free(k->pub);
	free(k);
}

/* Is the public object with CKA_ID id the key pinned in pub? */
static int
check_public(struct token *t, CK_SESSION_HANDLE s, const uint8_t *id,
    enum custody_alg alg, const uint8_t *spki, size_t spki_len, CK_RV *rvp)
{
	struct pubkey *pk = NULL;
	CK_OBJECT_HANDLE h[2];
	CK_ULONG n = 0;
	uint8_t *der = NULL;
	size_t derlen = 0;
	int r;

	*rvp = find_by_id(t, s, id, CKO_PUBLIC_KEY, h, 2, &n);
	if (*rvp != CKR_OK)
		return p11_fail(__func__, "find public key", *rvp);
	if (n != 1) {
		log_error_f("%lu public objects carry the key's CKA_ID",
		    (unsigned long)n);
		return n == 0 ? CUSTODY_E_KEY_NOT_FOUND
			      : CUSTODY_E_KEY_AMBIGUOUS;
	}
	if ((r = read_pubkey(t, s, h[0], alg, &pk, rvp)) != 0 ||
	    (r = pubkey_spki(pk, &der, &derlen)) != 0)
		goto out;
	if (derlen != spki_len || CRYPTO_memcmp(der, spki, derlen) != 0) {
		log_error_f("the token's public key differs from the "
			    "registered one");
		r = CUSTODY_E_KEY_MISMATCH;
	}
out:
	free(der);
	pubkey_free(pk);
	return r;
}

static int
key_open_once(struct token *t, CK_SESSION_HANDLE s, const uint8_t *id,
    enum custody_alg alg, const uint8_t *spki, size_t spki_len,
    CK_OBJECT_HANDLE *hp, CK_RV *rvp)
{
	struct token_attrs a;
	int r;

	*rvp = CKR_OK;
	if ((r = find_private(t, s, id, hp, rvp)) != 0)
		return r;
	if ((r = read_attrs(t, s, *hp, &a, rvp)) != 0)
		return r;
	/* CKA_SENSITIVE and CKA_EXTRACTABLE may be flippable on some tokens;
	 * the ALWAYS/NEVER attributes record the key's whole history */
	if ((r = check_attrs(&a)) != 0)
		return r;
	return check_public(t, s, id, alg, spki, spki_len, rvp);
}

int
token_key_open(struct token *t, const uint8_t id[TOKEN_ID_LEN],
    enum custody_alg alg, const uint8_t *spki, size_t spki_len,
    struct token_key **kp)
{
	struct pubkey *pub = NULL;
	struct session *s;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv = CKR_OK;
	int r, attempt;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    t != NULL && id != NULL && spki != NULL && kp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = pubkey_from_spki(alg, spki, spki_len, &pub)) != 0)
		return r;
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			goto out;
		r = key_open_once(t, s->h, id, alg, spki, spki_len, &h, &rv);
		if (r == 0 || attempt > 0 || !session_lost(rv))
			break;
		if ((r = recover(t, s, rv)) != 0)
			break;
	}
	if (r != 0)
		goto out;
	if ((r = key_new(alg, id, pub, h, kp)) == 0)
		pub = NULL;
out:
	pubkey_free(pub);
	return r;
}

/* ---- generation -----------------------------------------------------------
 */

static int
keygen_once(struct token *t, CK_SESSION_HANDLE s, enum custody_alg alg,
    const char *label, const uint8_t *id, CK_OBJECT_HANDLE *pubp,
    CK_OBJECT_HANDLE *privp, CK_RV *rvp)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = 3072;
	CK_BYTE exp[] = {0x01, 0x00, 0x01};
	CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
	CK_ATTRIBUTE pub[9] = {
	    {CKA_TOKEN, &yes, 1},
	    {CKA_PRIVATE, &no, 1}, /* auditors read it without a PIN */
	    {CKA_VERIFY, &yes, 1},
	    {CKA_ENCRYPT, &no, 1},
	    {CKA_WRAP, &no, 1},
	    {CKA_LABEL, (void *)label, strlen(label)},
	    {CKA_ID, (void *)id, TOKEN_ID_LEN},
	};
	CK_ATTRIBUTE priv[11] = {
	    {CKA_TOKEN, &yes, 1},
	    {CKA_PRIVATE, &yes, 1},
	    {CKA_SENSITIVE, &yes, 1},
	    {CKA_EXTRACTABLE, &no, 1},
	    {CKA_SIGN, &yes, 1},
	    {CKA_DECRYPT, &no, 1},
	    {CKA_DERIVE, &no, 1},
	    {CKA_UNWRAP, &no, 1},
	    {CKA_LABEL, (void *)label, strlen(label)},
	    {CKA_ID, (void *)id, TOKEN_ID_LEN},
	    {CKA_MODIFIABLE, &no, 1},
	};
	CK_ULONG npub = 7, npriv = 10;

	if (t->be->flags & BE_NOT_MODIFIABLE)
		npriv = 11;
	switch (alg) {
	case CUSTODY_ALG_ED25519:
		m.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		pub[npub++] = (CK_ATTRIBUTE){
		    CKA_EC_PARAMS, (void *)OID_ED25519, sizeof(OID_ED25519)};
		break;
	case CUSTODY_ALG_ECDSA_P256:
		pub[npub++] = (CK_ATTRIBUTE){
		    CKA_EC_PARAMS, (void *)OID_P256, sizeof(OID_P256)};
		break;
	case CUSTODY_ALG_ECDSA_P384:
		pub[npub++] = (CK_ATTRIBUTE){
		    CKA_EC_PARAMS, (void *)OID_P384, sizeof(OID_P384)};
		break;
	case CUSTODY_ALG_RSA_PSS_3072:
		m.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		pub[npub++] =
		    (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
		break;
	default:
		return CUSTODY_E_UNKNOWN_ALG;
	}
	if (alg == CUSTODY_ALG_RSA_PSS_3072)
		pub[npub++] =
		    (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, exp, sizeof(exp)};
	*rvp = P11(
	    t, C_GenerateKeyPair, s, &m, pub, npub, priv, npriv, pubp, privp);
	if (*rvp != CKR_OK)
		return p11_fail(__func__, "C_GenerateKeyPair", *rvp);
	return 0;
}

static int
destroy_on(struct token *t, CK_SESSION_HANDLE s, const uint8_t *id,
    struct token_destroy_evidence *ev, CK_RV *rvp)
{
	CK_OBJECT_HANDLE h[64];
	CK_ULONG n = 0, i;
	CK_RV rv;

	/* ev adds up over attempts: a retry after a lost session must not
	 * forget what the first attempt destroyed */
	*rvp = rv = find_by_id(t, s, id, -1, h, 64, &n);
	if (rv != CKR_OK)
		return p11_fail(__func__, "find by CKA_ID", rv);
	for (i = 0; i < n; i++) {
		rv = P11(t, C_DestroyObject, s, h[i]);
		if (rv == CKR_OK)
			ev->destroyed++;
		else if (session_lost(rv)) {
			*rvp = rv;
			return rv_err(rv);
		} else
			log_error_f("C_DestroyObject: %s", token_rv_name(rv));
	}
	/* the proof: nothing with this CKA_ID is left (in a session that is
	 * logged in, or private objects would hide: find_by_id checks) */
	*rvp = rv = find_by_id(t, s, id, -1, h, 64, &n);
	if (rv != CKR_OK)
		return p11_fail(__func__, "find by CKA_ID after destroy", rv);
	ev->remaining = n;
	if (n > 0) {
		log_error_f(
		    "%lu objects remain after destroy", (unsigned long)n);
		return CUSTODY_E_DESTROY_INCOMPLETE;
	}
	return ev->destroyed == 0 ? CUSTODY_E_KEY_NOT_FOUND : 0;
}

int
token_destroy(struct token *t, const uint8_t id[TOKEN_ID_LEN],
    struct token_destroy_evidence *ev)
{
	struct session *s;
	CK_RV rv = CKR_OK;
	int r, attempt;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    t != NULL && id != NULL && ev != NULL, CUSTODY_E_INVALID_ARG);
	memset(ev, 0, sizeof(*ev));
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			return r;
		r = destroy_on(t, s->h, id, ev, &rv);
		if (r == 0 || attempt > 0 || !session_lost(rv))
			break;
		if ((r = recover(t, s, rv)) != 0)
			break;
	}
	return r;
}

int
token_count_objects(struct token *t, const uint8_t id[TOKEN_ID_LEN])
{
	CK_OBJECT_HANDLE h[64];
	struct session *s;
	CK_ULONG n = 0;
	CK_RV rv;
	int r, attempt;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    t != NULL && id != NULL, CUSTODY_E_INVALID_ARG);
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			return r;
		if ((rv = find_by_id(t, s->h, id, -1, h, 64, &n)) == CKR_OK)
			return (int)n;
		if (attempt > 0 || !session_lost(rv))
			break;
		if ((r = recover(t, s, rv)) != 0)
			return r;
	}
	return p11_fail(__func__, "find by CKA_ID", rv);
}

/* The ids of the objects of class cls labelled prefix + hex(CKA_ID), added
 * to ids (room for TOKEN_LIST_MAX) unless there already. */
static CK_RV
list_class(struct token *t, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
    const char *prefix, uint8_t *ids, size_t *np, int *overp)
{
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE *h;
	CK_ULONG n = 0, i;
	size_t j, plen = strlen(prefix);
	uint8_t id[TOKEN_ID_LEN + 1];
	char label[80], want[80];
	CK_RV rv;

	if ((h = calloc(TOKEN_LIST_MAX + 1, sizeof(*h))) == NULL)
		return CKR_HOST_MEMORY;
	if ((rv = find_objects(t, s, tmpl, 1, h, TOKEN_LIST_MAX + 1, &n)) !=
	    CKR_OK)
		goto out;
	for (i = 0; i < n; i++) {
		CK_ATTRIBUTE a[] = {
		    {CKA_ID, id, sizeof(id)},
		    {CKA_LABEL, label, sizeof(label) - 1},
		};

		if (P11(t, C_GetAttributeValue, s, h[i], a, 2) != CKR_OK ||
		    a[0].ulValueLen != TOKEN_ID_LEN ||
		    a[1].ulValueLen != plen + 2 * TOKEN_ID_LEN)
			continue;
		label[a[1].ulValueLen] = '\0';
		memcpy(want, prefix, plen);
		util_hex_encode(id, TOKEN_ID_LEN, want + plen);
		if (strcmp(label, want) != 0)
			continue;
		for (j = 0; j < *np; j++)
			if (memcmp(ids + j * TOKEN_ID_LEN, id, TOKEN_ID_LEN) ==
			    0)
				break;
		if (j < *np)
			continue;
		if (*np == TOKEN_LIST_MAX) {
			*overp = 1;
			break;
		}
		memcpy(ids + (*np)++ * TOKEN_ID_LEN, id, TOKEN_ID_LEN);
	}
	rv = session_logged_in(t, s);
out:
	free(h);
	return rv;
}

int
token_list_keys(struct token *t, const char *prefix, uint8_t **idsp, size_t *np)
{
	struct session *s;
	uint8_t *ids;
	size_t n = 0;
	int r, attempt, over = 0;
	CK_RV rv = CKR_OK;

	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL && prefix != NULL &&
				       strlen(prefix) <= 32 && idsp != NULL &&
				       np != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((ids = malloc(TOKEN_LIST_MAX * TOKEN_ID_LEN)) == NULL)
		return CUSTODY_E_NOMEM;
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			goto fail;
		n = 0;
		if ((rv = list_class(t, s->h, CKO_PRIVATE_KEY, prefix, ids, &n,
			 &over)) == CKR_OK &&
		    (rv = list_class(t, s->h, CKO_PUBLIC_KEY, prefix, ids, &n,
			 &over)) == CKR_OK)
			break;
		if (attempt > 0 || !session_lost(rv))
			break;
		if ((r = recover(t, s, rv)) != 0)
			goto fail;
	}
	if (rv != CKR_OK) {
		r = p11_fail(__func__, "list key objects", rv);
		goto fail;
	}
	if (over) {
		log_error_f(
		    "the token holds more than %d keys", TOKEN_LIST_MAX);
		r = CUSTODY_E_TOO_LARGE;
		goto fail;
	}
	*idsp = ids;
	*np = n;
	return 0;
fail:
	free(ids);
	return r;
}

/* Generate, read back and check, on one session; destroys on failure. */
static int
generate_on(struct token *t, struct session *s, enum custody_alg alg,
    const char *prefix, struct token_generated *g, CK_RV *rvp, int *leftp)
{
	char label[32 + 2 * TOKEN_ID_LEN + 1];
	struct token_destroy_evidence ev;
	struct token_key *k = NULL;
	struct pubkey *pk = NULL;
	CK_OBJECT_HANDLE hpub, hpriv, dummy[1];
	CK_ULONG n = 0;
	uint8_t *sig = NULL;
	size_t siglen = 0;
	int r, r2, made = 0;

	/* a fresh CKA_ID that nothing on the token carries yet */
	if ((r = util_random(g->id, TOKEN_ID_LEN)) != 0)
		return r;
	snprintf(label, sizeof(label), "%.32s", prefix);
	util_hex_encode(g->id, TOKEN_ID_LEN, label + strlen(label));
	if ((*rvp = find_by_id(t, s->h, g->id, -1, dummy, 1, &n)) != CKR_OK)
		return p11_fail(__func__, "find by CKA_ID", *rvp);
	if (n != 0) {
		log_error_f("random CKA_ID already in use");
		return CUSTODY_E_EXISTS;
	}
	if ((r = keygen_once(t, s->h, alg, label, g->id, &hpub, &hpriv, rvp)) !=
	    0)
		return r;
	made = 1;
	if ((r = read_attrs(t, s->h, hpriv, &g->attrs, rvp)) != 0 ||
	    (r = check_attrs(&g->attrs)) != 0 ||
	    (r = check_unreadable(t, s->h, hpriv, alg)) != 0 ||
	    (r = read_pubkey(t, s->h, hpub, alg, &pk, rvp)) != 0 ||
	    (r = pubkey_spki(pk, &g->spki, &g->spki_len)) != 0 ||
	    (r = pubkey_jwk_thumbprint(pk, &g->kid)) != 0)
		goto out;
	/* pair-wise consistency test: the new key signs and verifies */
	if ((r = key_new(alg, g->id, pk, hpriv, &k)) != 0)
		goto out;
	pk = NULL;
	if ((r = token_sign(t, k, PCT_MESSAGE, sizeof(PCT_MESSAGE) - 1, &sig,
		 &siglen)) != 0) {
		log_error_f("pair-wise consistency test failed");
		goto out;
	}
out:
	if (r != 0 && made) {
		/* token_destroy() reopens a lost session itself */
		log_warn_f(
		    "destroying key pair %s, which failed its checks", label);
		r2 = token_destroy(t, g->id, &ev);
		if (r2 != 0 && r2 != CUSTODY_E_KEY_NOT_FOUND) {
			log_error_f(
			    "key pair %s is left on the token (%lu "
			    "objects): remove it with the token's tools",
			    label, ev.remaining);
			*leftp = 1;
			r = CUSTODY_E_DESTROY_INCOMPLETE;
		}
	}
	free(sig);
	token_key_free(k);
	pubkey_free(pk);
	return r;
}

int
token_generate(struct token *t, enum custody_alg alg, const char *prefix,
    struct token_generated **gp)
{
	struct token_generated *g;
	struct session *s;
	CK_RV rv = CKR_OK;
	int r, attempt, left = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    t != NULL && prefix != NULL && gp != NULL, CUSTODY_E_INVALID_ARG);
	if ((unsigned)alg >= CUSTODY_ALG_COUNT)
		return CUSTODY_E_UNKNOWN_ALG;
	if (!token_supports(t, alg)) {
		log_error_f("token '%s' lacks the mechanisms for %s", t->label,
		    alg_name(alg));
		return CUSTODY_E_MECHANISM;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return CUSTODY_E_NOMEM;
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			break;
		r = generate_on(t, s, alg, prefix, g, &rv, &left);
		if (r == 0 || attempt > 0 || !session_lost(rv) || left)
			break;
		/* nothing was created, or it was destroyed: start over */
		free(g->spki);
		free(g->kid);
		memset(g, 0, sizeof(*g));
		if ((r = recover(t, s, rv)) != 0)
			break;
	}
	if (r != 0) {
		token_generated_free(g);
		return r;
	}
	*gp = g;
	return 0;
}

void
token_generated_free(struct token_generated *g)
{
	if (g == NULL)
		return;
	free(g->spki);
	free(g->kid);
	free(g);
}

/* ---- data objects ------------------------------------------------------ */

#define DATA_APPLICATION "custody"
#define DATA_FIND_MAX	 64 /* objects one put or delete clears */

/* 1..TOKEN_DATA_LABEL_MAX printable ASCII bytes. */
static int
data_label_ok(const char *label)
{
	size_t i;

	if (label == NULL)
		return 0;
	for (i = 0; label[i] != '\0'; i++) {
		unsigned char c = (unsigned char)label[i];

		if (i >= TOKEN_DATA_LABEL_MAX || c < 0x20 || c > 0x7e)
			return 0;
	}
	return i > 0;
}

static void
blobs_clear(struct token_blob *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(b[i].data);
		b[i].data = NULL;
		b[i].len = 0;
	}
}

void
token_blobs_free(struct token_blob *b, size_t n)
{
	if (b == NULL)
		return;
	blobs_clear(b, n);
	free(b);
}

/*
 * custody's data objects labelled label: private token objects of class
 * CKO_DATA with custody's CKA_APPLICATION (a public object planted without
 * the PIN does not match). Like find_by_id(), counts only from a session
 * that is logged in.
 */
static CK_RV
find_data(struct token *t, CK_SESSION_HANDLE s, const char *label,
    CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *np)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_PRIVATE, &yes, sizeof(yes)},
	    {CKA_APPLICATION, (void *)DATA_APPLICATION,
		sizeof(DATA_APPLICATION) - 1},
	    {CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_RV rv;

	if ((rv = find_objects(t, s, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), out,
		 max, np)) != CKR_OK)
		return rv;
	return session_logged_in(t, s);
}

/*
 * The CKA_VALUE of data object h, exactly: its length is asked first and
 * must be 1..TOKEN_DATA_MAX (tpm2-pkcs11 shows a private value as empty to a
 * session that is not logged in), then the bytes, whose length must be the
 * one announced. b->data may be set on failure too (blobs_clear() frees it).
 */
static int
read_value(struct token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    struct token_blob *b, CK_RV *rvp)
{
	CK_ATTRIBUTE a = {CKA_VALUE, NULL, 0};
	CK_ULONG want;

	*rvp = P11(t, C_GetAttributeValue, s, h, &a, 1);
	if (*rvp != CKR_OK)
		return p11_fail(__func__, "C_GetAttributeValue (length)", *rvp);
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen == 0) {
		log_error_f("data object has no readable value");
		return CUSTODY_E_TOKEN;
	}
	if (a.ulValueLen > TOKEN_DATA_MAX) {
		log_error_f("data object of %lu bytes; at most %d are read",
		    (unsigned long)a.ulValueLen, TOKEN_DATA_MAX);
		return CUSTODY_E_TOO_LARGE;
	}
	want = a.ulValueLen;
	if ((b->data = malloc(want)) == NULL)
		return CUSTODY_E_NOMEM;
	a.pValue = b->data;
	*rvp = P11(t, C_GetAttributeValue, s, h, &a, 1);
	if (*rvp != CKR_OK)
		return p11_fail(__func__, "C_GetAttributeValue", *rvp);
	if (a.ulValueLen != want) {
		log_error_f("data object announced %lu bytes and gave %lu",
		    (unsigned long)want, (unsigned long)a.ulValueLen);
		return CUSTODY_E_TOKEN;
	}
	b->len = want;
	return 0;
}

static int
data_create(struct token *t, CK_SESSION_HANDLE s, const char *label,
    const uint8_t *data, size_t len, CK_OBJECT_HANDLE *hp, CK_RV *rvp)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_PRIVATE, &yes, sizeof(yes)},
	    {CKA_APPLICATION, (void *)DATA_APPLICATION,
		sizeof(DATA_APPLICATION) - 1},
	    {CKA_LABEL, (void *)label, strlen(label)},
	    {CKA_VALUE, (void *)data, (CK_ULONG)len},
	};

	*rvp =
	    P11(t, C_CreateObject, s, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), hp);
	if (*rvp != CKR_OK) {
		(void)p11_fail(__func__, "C_CreateObject (CKO_DATA)", *rvp);
		return rv_err_create(*rvp);
	}
	return 0;
}

/*
 * After a put created object keep, destroy every other object with label.
 * keep is recognised by its handle or, when the handle is not among those
 * found (SoftHSM2 renumbers private objects when a lost login is redone),
 * by its value. If it is found neither way, nothing is destroyed: never
 * none. A failed destroy is reported after the others were tried.
 */
static int
data_prune(struct token *t, CK_SESSION_HANDLE s, const char *label,
    CK_OBJECT_HANDLE keep, const uint8_t *data, size_t len, CK_RV *rvp)
{
	CK_OBJECT_HANDLE h[DATA_FIND_MAX];
	struct token_blob b = {NULL, 0};
	CK_ULONG n = 0, i, k, destroyed = 0;
	CK_RV rv;
	int r, same;

	*rvp = find_data(t, s, label, h, DATA_FIND_MAX, &n);
	if (*rvp != CKR_OK)
		return p11_fail(__func__, "find data objects", *rvp);
	for (k = 0; k < n && h[k] != keep; k++)
		;
	for (i = 0; k == n && i < n; i++) {
		r = read_value(t, s, h[i], &b, rvp);
		same = r == 0 && b.len == len && memcmp(b.data, data, len) == 0;
		blobs_clear(&b, 1);
		if (r != 0 && session_lost(*rvp))
			return r;
		if (same)
			k = i;
	}
	if (k == n) {
		log_error_f("the new data object '%s' is not found; the older "
			    "ones are kept",
		    label);
		return CUSTODY_E_TOKEN;
	}
	*rvp = CKR_OK;
	for (i = 0, r = 0; i < n; i++) {
		if (i == k)
			continue;
		rv = P11(t, C_DestroyObject, s, h[i]);
		if (rv == CKR_OK)
			destroyed++;
		else if (session_lost(rv)) {
			*rvp = rv;
			return rv_err(rv);
		} else if (rv != CKR_OBJECT_HANDLE_INVALID) {
			/* (invalid: destroyed meanwhile by someone else) */
			log_error_f("C_DestroyObject: %s", token_rv_name(rv));
			if (r == 0)
				r = rv_err(rv);
		}
	}
	log_debug_f("data object '%s': %lu older destroyed", label,
	    (unsigned long)destroyed);
	return r;
}

int
token_data_put(
    struct token *t, const char *label, const uint8_t *data, size_t len)
{
	struct session *s;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_RV rv = CKR_OK;
	int r, attempt;

	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL, CUSTODY_E_INVALID_ARG);
	if (!data_label_ok(label) || data == NULL || len == 0) {
		log_error_f("a data object needs a label of 1 to %d printable "
			    "ASCII bytes and a value of at least one byte",
		    TOKEN_DATA_LABEL_MAX);
		return CUSTODY_E_INVALID_ARG;
	}
	if (len > TOKEN_DATA_MAX) {
		log_error_f(
		    "data object '%s' of %zu bytes; at most %d are kept", label,
		    len, TOKEN_DATA_MAX);
		return CUSTODY_E_TOO_LARGE;
	}
	pthread_mutex_lock(&t->data_lock);
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			goto out;
		r = data_create(t, s->h, label, data, len, &h, &rv);
		if (r == 0 || attempt > 0 || !session_lost(rv))
			break;
		/* (an object created before the loss is pruned below) */
		if ((r = recover(t, s, rv)) != 0)
			break;
	}
	if (r != 0)
		goto out;
	log_debug_f("data object '%s' stored (%zu bytes)", label, len);
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			break;
		r = data_prune(t, s->h, label, h, data, len, &rv);
		if (r == 0 || attempt > 0 || !session_lost(rv))
			break;
		if ((r = recover(t, s, rv)) != 0)
			break;
	}
	if (r != 0)
		log_error_fr(r,
		    "data object '%s': the new value is stored but older "
		    "objects may remain; the next put removes them",
		    label);
out:
	pthread_mutex_unlock(&t->data_lock);
	return r;
}

static int
data_get_once(struct token *t, CK_SESSION_HANDLE s, const char *label,
    struct token_blob *b, size_t *np, CK_RV *rvp)
{
	CK_OBJECT_HANDLE h[TOKEN_DATA_MAX_OBJECTS + 1];
	CK_ULONG n = 0, i;
	int r;

	*rvp = find_data(t, s, label, h, TOKEN_DATA_MAX_OBJECTS + 1, &n);
	if (*rvp != CKR_OK)
		return p11_fail(__func__, "find data objects", *rvp);
	if (n > TOKEN_DATA_MAX_OBJECTS) {
		log_error_f("more than %d data objects are labelled '%s'",
		    TOKEN_DATA_MAX_OBJECTS, label);
		return CUSTODY_E_TOO_LARGE;
	}
	for (i = 0; i < n; i++) {
		if ((r = read_value(t, s, h[i], &b[i], rvp)) != 0) {
			/* an empty value can mean a login lost meanwhile */
			if (!session_lost(*rvp) &&
			    session_logged_in(t, s) == CKR_USER_NOT_LOGGED_IN)
				*rvp = CKR_USER_NOT_LOGGED_IN;
			return r;
		}
	}
	/* values read after a logout may be empty or hidden: read again */
	if ((*rvp = session_logged_in(t, s)) != CKR_OK)
		return p11_fail(__func__, "C_GetSessionInfo", *rvp);
	log_debug_f("data object '%s': %lu found", label, (unsigned long)n);
	*np = n;
	return 0;
}

int
token_data_get(
    struct token *t, const char *label, struct token_blob **blobsp, size_t *np)
{
	struct token_blob *b;
	struct session *s;
	CK_RV rv = CKR_OK;
	size_t n = 0;
	int r, attempt, reopened = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    t != NULL && blobsp != NULL && np != NULL, CUSTODY_E_INVALID_ARG);
	if (!data_label_ok(label)) {
		log_error_f("a data object label is 1 to %d printable ASCII "
			    "bytes",
		    TOKEN_DATA_LABEL_MAX);
		return CUSTODY_E_INVALID_ARG;
	}
	if ((b = calloc(TOKEN_DATA_MAX_OBJECTS, sizeof(*b))) == NULL)
		return CUSTODY_E_NOMEM;
	/*
	 * Search and read again after a lost session (once), or after an
	 * object found vanished before it was read (a put elsewhere
	 * destroyed it).
	 */
	for (attempt = 1;; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			break;
		r = data_get_once(t, s->h, label, b, &n, &rv);
		if (r == 0)
			break;
		if (attempt == 3) {
			/* not "key not found": objects keep changing */
			if (rv == CKR_OBJECT_HANDLE_INVALID)
				r = CUSTODY_E_TOKEN;
			break;
		}
		blobs_clear(b, TOKEN_DATA_MAX_OBJECTS);
		if (rv == CKR_OBJECT_HANDLE_INVALID)
			continue;
		if (!session_lost(rv) || reopened)
			break;
		reopened = 1;
		if ((r = recover(t, s, rv)) != 0)
			break;
	}
	if (r != 0) {
		token_blobs_free(b, TOKEN_DATA_MAX_OBJECTS);
		return r;
	}
	if (n == 0) {
		free(b);
		b = NULL;
	}
	*blobsp = b;
	*np = n;
	return 0;
}

static int
data_delete_on(
    struct token *t, CK_SESSION_HANDLE s, const char *label, CK_RV *rvp)
{
	CK_OBJECT_HANDLE h[DATA_FIND_MAX];
	CK_ULONG n = 0, i, destroyed = 0;
	CK_RV rv;

	*rvp = find_data(t, s, label, h, DATA_FIND_MAX, &n);
	if (*rvp != CKR_OK)
		return p11_fail(__func__, "find data objects", *rvp);
	for (i = 0; i < n; i++) {
		rv = P11(t, C_DestroyObject, s, h[i]);
		if (rv == CKR_OK)
			destroyed++;
		else if (session_lost(rv)) {
			*rvp = rv;
			return rv_err(rv);
		} else
			log_error_f("C_DestroyObject: %s", token_rv_name(rv));
	}
	/* the proof, as for keys: nothing with the label is left */
	*rvp = find_data(t, s, label, h, DATA_FIND_MAX, &n);
	if (*rvp != CKR_OK)
		return p11_fail(
		    __func__, "find data objects after destroy", *rvp);
	if (n > 0) {
		log_error_f("%lu data objects labelled '%s' remain after "
			    "destroy",
		    (unsigned long)n, label);
		return CUSTODY_E_DESTROY_INCOMPLETE;
	}
	if (destroyed > 0)
		log_info_f("data object '%s' destroyed (%lu objects)", label,
		    (unsigned long)destroyed);
	return 0;
}

int
token_data_delete(struct token *t, const char *label)
{
	struct session *s;
	CK_RV rv = CKR_OK;
	int r, attempt;

	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL, CUSTODY_E_INVALID_ARG);
	if (!data_label_ok(label)) {
		log_error_f("a data object label is 1 to %d printable ASCII "
			    "bytes",
		    TOKEN_DATA_LABEL_MAX);
		return CUSTODY_E_INVALID_ARG;
	}
	pthread_mutex_lock(&t->data_lock);
	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = session_get(t, &s)) != 0)
			break;
		r = data_delete_on(t, s->h, label, &rv);
		if (r == 0 || attempt > 0 || !session_lost(rv))
			break;
		if ((r = recover(t, s, rv)) != 0)
			break;
	}
	pthread_mutex_unlock(&t->data_lock);
	return r;
}

/* ---- token initialisation ------------------------------------------------ */

static int
pin_len_ok(const CK_TOKEN_INFO *ti, const struct secret *pin, const char *what)
{
	if (pin->len < ti->ulMinPinLen || pin->len > ti->ulMaxPinLen) {
		log_error_f("%s is %zu bytes; the token takes %lu to %lu", what,
		    pin->len, (unsigned long)ti->ulMinPinLen,
		    (unsigned long)ti->ulMaxPinLen);
		return CUSTODY_E_PIN_FILE;
	}
	return 0;
}

int
token_init_functions(CK_FUNCTION_LIST *f, const char *uri,
    const struct secret *so_pin, const struct secret *user_pin)
{
	struct token *t = NULL;
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_UTF8CHAR label[32];
	CK_ULONG matches = 0;
	char err[256];
	CK_RV rv;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    f != NULL && uri != NULL && so_pin != NULL && user_pin != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = token_new(f, &t)) != 0)
		return r;
	if ((r = p11uri_parse(uri, &t->uri, err, sizeof(err))) != 0) {
		log_error_f("%s", err);
		goto out;
	}
	if (t->uri.token[0] == '\0') {
		log_error_f("the token URI must name a label (token=...)");
		r = CUSTODY_E_PARSE;
		goto out;
	}
	if ((r = initialize(t)) != 0)
		goto out;
	pick_backend(t);
	r = find_slot(t, &t->uri, 0, &slot, &ti, &matches);
	if (matches > 0) {
		log_error_f(
		    "a token labelled '%s' already exists", t->uri.token);
		r = CUSTODY_E_TOKEN_EXISTS;
		goto out;
	}
	if (r != CUSTODY_E_TOKEN_NOT_FOUND)
		goto out;
	if ((r = find_slot(t, &t->uri, 1, &slot, &ti, NULL)) != 0)
		goto out;
	if ((r = pin_len_ok(&ti, so_pin, "the SO PIN")) != 0 ||
	    (r = pin_len_ok(&ti, user_pin, "the user PIN")) != 0)
		goto out;
	memset(label, ' ', sizeof(label));
	memcpy(label, t->uri.token, strlen(t->uri.token));
	rv = P11(t, C_InitToken, slot, (CK_UTF8CHAR_PTR)so_pin->data,
	    (CK_ULONG)so_pin->len, label);
	if (rv != CKR_OK) {
		r = p11_fail(__func__, "C_InitToken", rv);
		goto out;
	}
	/* SoftHSM2 gives an initialised token a new slot id, visible after a
	 * fresh C_Initialize: find it again by its label */
	if (t->finalize) {
		finalize(t);
		if ((r = initialize(t)) != 0)
			goto out;
	}
	if ((r = find_slot(t, &t->uri, 0, &t->slot, &ti, NULL)) != 0)
		goto out;
	if ((r = open_rw(t, &s)) != 0)
		goto out;
	rv = P11(t, C_Login, s, CKU_SO, (CK_UTF8CHAR_PTR)so_pin->data,
	    (CK_ULONG)so_pin->len);
	if (rv != CKR_OK) {
		r = p11_fail(__func__, "C_Login (SO)", rv);
		goto out;
	}
	rv = P11(t, C_InitPIN, s, (CK_UTF8CHAR_PTR)user_pin->data,
	    (CK_ULONG)user_pin->len);
	if (rv != CKR_OK)
		r = p11_fail(__func__, "C_InitPIN", rv);
	(void)P11(t, C_Logout, s);
out:
	if (s != CK_INVALID_HANDLE)
		(void)P11(t, C_CloseSession, s);
	token_close(t);
	return r;
}

int
token_init(const char *module, const char *uri, const struct secret *so_pin,
    const struct secret *user_pin)
{
	CK_FUNCTION_LIST *f = NULL;
	void *dl = NULL;
	int r;

	if ((r = load_module(module, &dl, &f)) != 0)
		return r;
	r = token_init_functions(f, uri, so_pin, user_pin);
	dlclose(dl);
	return r;
}
