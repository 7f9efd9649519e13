/* SPDX-License-Identifier: Apache-2.0 */
#include <stddef.h>

#include "err.h"

static const struct {
	int code;
	const char *msg;
	const char *hint;
} errors[] = {
    {CUSTODY_OK, "success", NULL},
    {CUSTODY_E_INTERNAL, "internal error",
	"This is a bug in custody; please report it with the log."},
    {CUSTODY_E_NOMEM, "out of memory", NULL},
    {CUSTODY_E_INVALID_ARG, "invalid argument", NULL},
    {CUSTODY_E_PARSE, "malformed input", NULL},
    {CUSTODY_E_IO, "input/output error", NULL},
    {CUSTODY_E_CONFIG, "invalid configuration",
	"Fix the configuration file at the line named above."},
    {CUSTODY_E_MODULE_LOAD, "cannot load the PKCS#11 module",
	"Check the path given by pkcs11-module (for SoftHSM2: "
	"/usr/lib/softhsm/libsofthsm2.so, package softhsm2)."},
    {CUSTODY_E_TOKEN_NOT_FOUND, "token not found",
	"Check the token URI in the configuration, or run 'custody init' "
	"to create the token."},
    {CUSTODY_E_PIN_INCORRECT, "PIN incorrect",
	"Check the file named by pin-file. custody tries a PIN once and "
	"never retries it, so that a wrong PIN cannot lock the token."},
    {CUSTODY_E_PIN_LOCKED, "PIN locked",
	"The token has locked the user PIN; unlock it with the token's "
	"SO tools before starting custody again."},
    {CUSTODY_E_PIN_FILE, "PIN file refused",
	"A PIN file must be a regular file owned by this user with mode "
	"0600 or 0400, holding the PIN on one line."},
    {CUSTODY_E_TOKEN, "token error", NULL},
    {CUSTODY_E_MECHANISM, "algorithm not supported by the token",
	"Choose another algorithm; 'custody key create --help' lists them."},
    {CUSTODY_E_UNPROTECTED_KEY,
	"the token did not protect the key as requested",
	"custody refuses tokens that generate extractable or non-sensitive "
	"keys; the key was destroyed."},
    {CUSTODY_E_KEY_NOT_FOUND, "key not found",
	"'custody key list' shows the keys that exist."},
    {CUSTODY_E_KEY_AMBIGUOUS,
	"more than one token object has the key's "
	"CKA_ID",
	"Another application created objects with custody's "
	"identifiers; inspect the token with pkcs11-tool."},
    {CUSTODY_E_SIG_VERIFY, "the token's signature did not verify",
	"The signature was withheld. The token may be faulty; do not use "
	"it until it has been checked."},
    {CUSTODY_E_CRYPTO, "cryptographic library error", NULL},
    {CUSTODY_E_STORE, "database error", NULL},
    {CUSTODY_E_EXISTS, "already exists",
	"Only one key may be active per agent, purpose and task: destroy the "
	"active one first, or give --task for a per-task key."},
    {CUSTODY_E_STATE, "not allowed in the key's current state", NULL},
    {CUSTODY_E_LOCKED, "the data directory is in use by another process",
	"Stop custodyd (or the other custody command) first, or use the "
	"daemon's API."},
    {CUSTODY_E_UNKNOWN_ALG, "unknown algorithm",
	"Use one of ed25519, ecdsa-p256, ecdsa-p384, rsa-pss-3072."},
    {CUSTODY_E_DESTROY_INCOMPLETE,
	"objects are still on the token after destroy",
	"The token did not delete the key; the record was left unchanged. "
	"Inspect the token with pkcs11-tool."},
    {CUSTODY_E_TOKEN_GONE, "the token is no longer reachable",
	"Check that the token is present and try again."},
    {CUSTODY_E_SCHEMA, "the database was written by a newer custody",
	"Run the custody version that wrote it, or upgrade."},
    {CUSTODY_E_TOO_LARGE, "input too large", NULL},
    {CUSTODY_E_TOKEN_EXISTS, "a token with that label already exists",
	"custody init never reinitialises a token; choose another label or "
	"data directory."},
    {CUSTODY_E_KEY_MISMATCH,
	"the token's key does not match the registered public key",
	"The token object was replaced; custody will not use it."},
    {CUSTODY_E_PROOF, "Merkle proof does not verify", NULL},

    {CUSTODY_E_NOT_FOUND, "not found", NULL},

    {CUSTODY_E_LOG_FAILED, "the audit log has stopped",
	"A write or fsync of the audit log failed; custody signs nothing and "
	"never retries it (the data may be lost). Check the disk, then "
	"restart custody."},
    {CUSTODY_E_WRONG_TOKEN, "the key is held by another token",
	"Point 'token' in the configuration at the token named in the key's "
	"URI ('custody key show ID')."},
    {CUSTODY_E_NOT_INITIALIZED, "the data directory is not initialised",
	"Run 'custody init' first."},
    {CUSTODY_E_UNSUPPORTED, "not supported by the token",
	"The token refuses this kind of object or call; custody uses its "
	"fallback where it has one (a file in the data directory)."},
    {CUSTODY_E_NOT_RUNNING, "custodyd is not running",
	"Nothing listens on the configured listen-unix socket: start "
	"custodyd (custodyd(8)), or check listen-unix in the "
	"configuration."},
    {CUSTODY_E_PROTOCOL, "malformed HTTP exchange", NULL},
    {CUSTODY_E_TIMEOUT, "timed out", NULL},
    {CUSTODY_E_DENIED, "refused by the policy", NULL},
};

static int
find(int r)
{
	size_t i;

	for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].code == r)
			return (int)i;
	return -1;
}

const char *
custody_strerror(int r)
{
	int i = find(r);

	return i < 0 ? "unknown error" : errors[i].msg;
}

const char *
custody_errhint(int r)
{
	int i = find(r);

	return i < 0 ? NULL : errors[i].hint;
}
