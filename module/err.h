/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_ERR_H
#define CUSTODY_ERR_H

/*
 * One table of error codes for the whole library (OpenSSH's ssherr.h is the
 * model). Every library function that can fail returns 0 or one of these
 * negative codes and writes its outputs only on success. The PKCS#11 CK_RV
 * and the OpenSSL error queue are each translated into these codes in one
 * place (token.c and pubkey.c); the detail goes to the log.
 */
#define CUSTODY_OK		     0
#define CUSTODY_E_INTERNAL	     -1 /* a bug: a broken invariant */
#define CUSTODY_E_NOMEM		     -2
#define CUSTODY_E_INVALID_ARG	     -3 /* bad value from the caller */
#define CUSTODY_E_PARSE		     -4 /* malformed input */
#define CUSTODY_E_IO		     -5 /* a system call failed (errno logged) */
#define CUSTODY_E_CONFIG	     -6	 /* bad configuration file */
#define CUSTODY_E_MODULE_LOAD	     -7	 /* PKCS#11 module cannot be loaded */
#define CUSTODY_E_TOKEN_NOT_FOUND    -8	 /* no token matches the URI */
#define CUSTODY_E_PIN_INCORRECT	     -9	 /* the token refused the PIN */
#define CUSTODY_E_PIN_LOCKED	     -10 /* the token locked the PIN */
#define CUSTODY_E_PIN_FILE	     -11 /* PIN file unsafe or unreadable */
#define CUSTODY_E_TOKEN		     -12 /* other token failure (CK_RV logged) */
#define CUSTODY_E_MECHANISM	     -13 /* the token lacks the mechanism */
#define CUSTODY_E_UNPROTECTED_KEY    -14 /* read-back shows an unprotected key */
#define CUSTODY_E_KEY_NOT_FOUND	     -15
#define CUSTODY_E_KEY_AMBIGUOUS	     -16 /* more than one object per CKA_ID */
#define CUSTODY_E_SIG_VERIFY	     -17 /* signature failed verify-after-sign */
#define CUSTODY_E_CRYPTO	     -18 /* OpenSSL failure (queue logged) */
#define CUSTODY_E_STORE		     -19 /* SQLite failure (message logged) */
#define CUSTODY_E_EXISTS	     -20 /* conflicts with an existing record */
#define CUSTODY_E_STATE		     -21 /* not allowed in the key's state */
#define CUSTODY_E_LOCKED	     -22 /* data directory held by another */
#define CUSTODY_E_UNKNOWN_ALG	     -23
#define CUSTODY_E_DESTROY_INCOMPLETE -24 /* objects left after destroy */
#define CUSTODY_E_TOKEN_GONE	     -25 /* token removed, not recovered */
#define CUSTODY_E_SCHEMA	     -26 /* database newer than this program */
#define CUSTODY_E_TOO_LARGE	     -27 /* input over a size limit */
#define CUSTODY_E_TOKEN_EXISTS	     -28 /* a token with that label exists */
#define CUSTODY_E_KEY_MISMATCH	     -29 /* token key differs from the pinned one */
#define CUSTODY_E_NOT_INITIALIZED    -30 /* data directory not initialised */
#define CUSTODY_E_WRONG_TOKEN	     -31 /* the key lives in another token */
#define CUSTODY_E_PROOF		     -32 /* a Merkle proof does not verify */
#define CUSTODY_E_NOT_FOUND	     -33 /* no such record */
#define CUSTODY_E_LOG_FAILED	     -34 /* the audit log stopped (fail closed) */
#define CUSTODY_E_UNSUPPORTED	     -35 /* the token does not support this */
#define CUSTODY_E_NOT_RUNNING	     -36 /* custodyd is not listening */
#define CUSTODY_E_PROTOCOL	     -37 /* a malformed HTTP exchange */
#define CUSTODY_E_TIMEOUT	     -38 /* no answer in time */
#define CUSTODY_E_DENIED	     -39 /* refused by the policy */
#define CUSTODY_E_ERR_MIN	     -39

/* A short description of r ("PIN incorrect"); never NULL. */
const char *custody_strerror(int r);

/*
 * What a user should do about r, as one sentence ("Check the file named by
 * pin-file; custody never retries a wrong PIN."), or NULL when there is
 * nothing useful to add.
 */
const char *custody_errhint(int r);

#endif
