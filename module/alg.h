/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_ALG_H
#define CUSTODY_ALG_H

#include <stddef.h>

/* The signing algorithms custody generates keys for (ARCHITECTURE.md s. 3). */
enum custody_alg {
	CUSTODY_ALG_ED25519,
	CUSTODY_ALG_ECDSA_P256,
	CUSTODY_ALG_ECDSA_P384,
	CUSTODY_ALG_RSA_PSS_3072,
	CUSTODY_ALG_COUNT
};

/*
 * Map "ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-pss-3072" to the enum;
 * CUSTODY_E_UNKNOWN_ALG for anything else (matching is exact).
 */
int alg_from_name(const char *name, enum custody_alg *algp);

/* The name above, or "unknown". */
const char *alg_name(enum custody_alg alg);

/*
 * Length of a signature in custody's form: 64 (Ed25519), 64 and 96 (ECDSA
 * raw r||s, as JWS uses it), 384 (RSA-PSS 3072); 0 for an invalid alg.
 */
size_t alg_sig_len(enum custody_alg alg);

/* Comma-separated list of every name, for help and errors. */
const char *alg_names(void);

#endif
