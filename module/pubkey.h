/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_PUBKEY_H
#define CUSTODY_PUBKEY_H

#include <stddef.h>
#include <stdint.h>

#include "alg.h"

/*
 * Public keys: parsing from what a token returns or from SPKI DER, export as
 * SPKI DER and as an RFC 7638 JWK thumbprint, and signature verification.
 * All OpenSSL use for public keys is here, and so is the translation of
 * OpenSSL's error queue (drained into the log as CUSTODY_E_CRYPTO).
 * A struct pubkey is immutable once made, so several threads may verify with
 * the same one at once.
 */
struct pubkey;

/*
 * From an EC point as a token gives it in CKA_EC_POINT: either wrapped in a
 * DER OCTET STRING (SoftHSM2, tpm2-pkcs11) or raw (uncompressed 0x04 || X || Y
 * for ECDSA, 32 bytes for Ed25519). alg must be an EC or Ed25519 alg; the
 * point must be on its curve. CUSTODY_E_PARSE or CUSTODY_E_CRYPTO otherwise.
 */
int pubkey_from_ec_point(enum custody_alg alg, const uint8_t *point, size_t len,
    struct pubkey **pkp);

/* From an RSA modulus and public exponent (big-endian); alg is RSA-PSS-3072,
 * so the modulus must be exactly 3072 bits. */
int pubkey_from_rsa(enum custody_alg alg, const uint8_t *n, size_t nlen,
    const uint8_t *e, size_t elen, struct pubkey **pkp);

/* From SPKI DER, which must hold exactly one key of type alg (no trailing
 * bytes). CUSTODY_E_PARSE on a mismatch. */
int pubkey_from_spki(
    enum custody_alg alg, const uint8_t *der, size_t len, struct pubkey **pkp);

/* From SPKI DER of a key of any supported algorithm, found from the key
 * itself, quietly: CUSTODY_E_PARSE (not an SPKI), CUSTODY_E_UNKNOWN_ALG
 * (another kind of key, or trailing bytes). */
int pubkey_from_spki_any(const uint8_t *der, size_t len, struct pubkey **pkp);

enum custody_alg pubkey_alg(const struct pubkey *pk);

/* SubjectPublicKeyInfo DER; *derp is new (free(3) it). */
int pubkey_spki(const struct pubkey *pk, uint8_t **derp, size_t *lenp);

/*
 * The public key as the required members of its JWK (RFC 7517/7518/8037),
 * in the form RFC 7638 hashes: lexicographic order, no white space, e.g.
 * {"crv":"P-256","kty":"EC","x":"...","y":"..."}. *jsonp is new (free(3)).
 */
int pubkey_jwk_required(const struct pubkey *pk, char **jsonp);

/* RFC 7638 JWK thumbprint, base64url SHA-256; *kidp is new (free(3) it). */
int pubkey_jwk_thumbprint(const struct pubkey *pk, char **kidp);

/*
 * Verify sig over msg, with sig in custody's form (alg_sig_len(): ECDSA raw
 * r || s over SHA-256/384 of msg; RSA-PSS with SHA-256, MGF1-SHA-256, salt
 * 32; pure Ed25519). Returns 0 or CUSTODY_E_SIG_VERIFY (also for a signature
 * of the wrong length); CUSTODY_E_CRYPTO if OpenSSL fails otherwise.
 */
int pubkey_verify(const struct pubkey *pk, const uint8_t *msg, size_t len,
    const uint8_t *sig, size_t siglen);

/*
 * The bytes a token signs for msg: the SHA-256 (P-256) or SHA-384 (P-384)
 * digest for ECDSA, since custody hashes on the host (SoftHSM2 has no
 * CKM_ECDSA_SHA256); msg itself for Ed25519 and RSA-PSS
 * (CKM_SHA256_RSA_PKCS_PSS hashes inside the token). out must hold 64 bytes;
 * *outp points to out or to msg.
 */
int pubkey_tbs(enum custody_alg alg, const uint8_t *msg, size_t len,
    uint8_t out[64], const uint8_t **outp, size_t *outlenp);

/* ECDSA raw r || s (each half len/2 bytes) to DER ECDSA-Sig-Value, for X.509.
 * *derp is new. */
int pubkey_ecdsa_raw_to_der(
    const uint8_t *sig, size_t len, uint8_t **derp, size_t *derlenp);

void pubkey_free(struct pubkey *pk);

#endif
