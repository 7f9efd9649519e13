/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_MOCK_P11_H
#define CUSTODY_MOCK_P11_H

#include <p11-kit/pkcs11.h>

/*
 * A mock PKCS#11 module for unit tests: one slot holding one in-memory token,
 * driven exactly like SoftHSM2 2.6.1 (same return codes, defaults, login and
 * handle semantics), with OpenSSL 3 doing the real cryptography so that every
 * signature verifies. See mock_p11.c for the list of SoftHSM2 behaviours that
 * are imitated.
 *
 * Two ways to use it: link mock_p11.c into a test and take the function list
 * from mock_p11_functions(), or build mock_p11.c as a shared library, which
 * exports C_GetFunctionList, and load it by path. Only C_GetFunctionList and
 * the mock_p11_* functions below are exported.
 *
 * All state is process-global and guarded by one mutex; every PKCS#11 call and
 * every mock_p11_* function may be called from any thread. The mock never
 * prints anything and never logs a PIN.
 */

/* What mock_p11_init_flags() reports when C_Initialize got NULL arguments. */
#define MOCK_P11_INIT_NULL (-1L)
/* What mock_p11_init_flags() reports when C_Initialize has not succeeded
 * since the last reset. */
#define MOCK_P11_INIT_NONE (-2L)

/* The token that mock_p11_reset() creates. */
struct mock_p11_opts {
	int initialized;      /* token already initialised (C_InitToken done) */
	const char *label;    /* token label, blank-padded to 32 bytes */
	const char *so_pin;   /* SO PIN (NUL-terminated) */
	const char *user_pin; /* NULL: user PIN not initialised */
	int pin_lock_after;   /* 0: never lock; N: after N wrong user PINs in
			       * a row, C_Login returns CKR_PIN_LOCKED */
};

/*
 * The module's function list (version 2.40). Every entry is non-NULL; the
 * functions the mock does not implement return CKR_FUNCTION_NOT_SUPPORTED.
 * The pointer is static and stays valid for the life of the process.
 */
CK_FUNCTION_LIST *mock_p11_functions(void);

/*
 * Wipe all state, as if the process and the token were both new: Cryptoki is
 * not initialised, no sessions, no objects, no fault rules, no lies, no
 * removed mechanisms, all counters zero, corrupt_signatures and destroy_noop
 * off. With o == NULL (or o->initialized == 0) the token is uninitialised:
 * slot id 0x1234, no label, C_OpenSession returns CKR_TOKEN_NOT_RECOGNIZED
 * until C_InitToken. With o->initialized the token has the given label and SO
 * PIN, and the user PIN if o->user_pin is not NULL; its slot id is a
 * different non-zero number. PINs are copied and never printed. Handle values
 * are never reused, not even across resets.
 */
void mock_p11_reset(const struct mock_p11_opts *o);

/*
 * Fault injection. Counting from the moment of this call, the nth call
 * (nth = 1: the next one) of the function named fn ("C_Sign", "C_Login", any
 * entry of the function list, including "C_GetFunctionList") and the
 * count - 1 calls after it return rv without doing anything. count < 0: every
 * call from the nth on; count == 0 is taken as 1; nth < 1 as 1. Any number of
 * rules may be active at once; every rule counts every call of its function,
 * and the first rule (in the order they were added) that fires gives rv.
 * Faulted calls are checked before anything else, even before "is Cryptoki
 * initialised". One exception to "without doing anything": a faulted C_Sign
 * with an rv other than CKR_OK and CKR_BUFFER_TOO_SMALL ends the signing
 * operation of its session (if the session exists), because the standard says
 * a failed C_Sign always does and SoftHSM2 does so.
 * An unknown fn name aborts the program (a typo would make a test pass
 * silently).
 */
void mock_p11_fail(const char *fn, CK_RV rv, int nth, int count);

/*
 * A fault rule as mock_p11_fail(fn, CKR_SESSION_HANDLE_INVALID, nth, 1) that
 * first does what mock_p11_invalidate_sessions() does: a device reset at an
 * exact point of an operation (the login is lost and private objects get new
 * handles when they are found again). Removed like the others.
 */
void mock_p11_fail_reset(const char *fn, int nth);

/* Remove every fault rule added by mock_p11_fail() or mock_p11_fail_reset(). */
void mock_p11_clear_faults(void);

/*
 * How many times the function named fn was called since the last reset,
 * counting calls that failed or were faulted. An unknown name aborts.
 */
unsigned long mock_p11_calls(const char *fn);

/*
 * Simulate session loss (a device reset): every open session is gone, so its
 * handle gives CKR_SESSION_HANDLE_INVALID everywhere, C_CloseSession
 * included; session objects are destroyed; the login state is lost; and, as
 * when SoftHSM2 closes the last session of a slot, every object handle the
 * application holds is invalid (find the objects again). Token objects are
 * kept. New sessions can be opened; C_Login is required again.
 */
void mock_p11_invalidate_sessions(void);

/* on != 0: flip one bit of every signature C_Sign returns from now on. */
void mock_p11_corrupt_signatures(int on);

/*
 * From now until mock_p11_lie_attribute_clear() or a reset, C_GetAttributeValue
 * on any private key reports the CK_BBOOL value for type (for example
 * CKA_EXTRACTABLE = CK_TRUE), whatever the key really has and even if it has
 * no such attribute. Several types may be lied about at once; a second call
 * for the same type replaces the value. Searching and signing still use the
 * real attributes.
 */
void mock_p11_lie_attribute(CK_ATTRIBUTE_TYPE type, CK_BBOOL value);

/* Stop all lies. */
void mock_p11_lie_attribute_clear(void);

/*
 * Drop mechanism m from C_GetMechanismList; C_GetMechanismInfo, C_SignInit
 * and C_GenerateKeyPair with it return CKR_MECHANISM_INVALID. Until reset.
 */
void mock_p11_remove_mechanism(CK_MECHANISM_TYPE m);

/*
 * on != 0: C_DestroyObject checks its arguments as usual, then returns CKR_OK
 * without deleting anything.
 */
void mock_p11_destroy_noop(int on);

/*
 * The flags passed to the last successful C_Initialize since the reset;
 * MOCK_P11_INIT_NULL if it got NULL arguments, MOCK_P11_INIT_NONE if none
 * succeeded.
 */
long mock_p11_init_flags(void);

/* Number of sessions open now. */
unsigned long mock_p11_open_sessions(void);

/* Number of objects on the token now (token and session objects, private
 * ones included, whether or not anyone is logged in). */
unsigned long mock_p11_object_count(void);

/* 1 if the normal user is logged in, 2 if the SO is, 0 otherwise. */
int mock_p11_is_logged_in(void);

/*
 * Number of C_Login calls since the last reset that got as far as comparing
 * a PIN (user or SO); calls refused earlier (already logged in, PIN locked,
 * user PIN not initialised, bad session, faulted) are not counted.
 */
unsigned long mock_p11_login_attempts(void);

#endif /* CUSTODY_MOCK_P11_H */
