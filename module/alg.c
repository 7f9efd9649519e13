/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "alg.h"
#include "err.h"

static const struct {
	const char *name;
	size_t sig_len;
} algs[CUSTODY_ALG_COUNT] = {
    [CUSTODY_ALG_ED25519] = {"ed25519", 64},
    [CUSTODY_ALG_ECDSA_P256] = {"ecdsa-p256", 64},
    [CUSTODY_ALG_ECDSA_P384] = {"ecdsa-p384", 96},
    [CUSTODY_ALG_RSA_PSS_3072] = {"rsa-pss-3072", 384},
};

int
alg_from_name(const char *name, enum custody_alg *algp)
{
	int i;

	if (name == NULL)
		return CUSTODY_E_UNKNOWN_ALG;
	for (i = 0; i < CUSTODY_ALG_COUNT; i++) {
		if (strcmp(name, algs[i].name) == 0) {
			*algp = (enum custody_alg)i;
			return 0;
		}
	}
	return CUSTODY_E_UNKNOWN_ALG;
}

const char *
alg_name(enum custody_alg alg)
{
	if ((unsigned)alg >= CUSTODY_ALG_COUNT)
		return "unknown";
	return algs[alg].name;
}

size_t
alg_sig_len(enum custody_alg alg)
{
	if ((unsigned)alg >= CUSTODY_ALG_COUNT)
		return 0;
	return algs[alg].sig_len;
}

const char *
alg_names(void)
{
	return "ed25519, ecdsa-p256, ecdsa-p384, rsa-pss-3072";
}
