/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_CERT_H
#define CUSTODY_CERT_H
/*
 * X.509 for the credential module (ARCHITECTURE.md section 5): PKCS#10
 * requests checked before anything is decided, certificates built by
 * custody alone around a CSR's public key, and the signature made in the
 * token attached afterwards.
 *
 * OpenSSL 3.0 cannot sign an X509 with a key it does not hold, so a
 * certificate is made in two steps: cert_tbs() builds it (every field set,
 * the signature algorithm of the issuing key written into the TBS) and
 * returns the DER TBSCertificate to sign; cert_finish() wraps the TBS and
 * the token's signature in SEQUENCE { tbs, algorithm, BIT STRING }, parses
 * the result back with d2i_X509 and verifies it with the issuer's public
 * key before anything is released.
 */
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "alg.h"

/* Largest CSR accepted, PEM or DER. */
#define CERT_CSR_MAX (16u << 10)
/* Largest TBSCertificate or CertificationRequestInfo assembled. */
#define CERT_TBS_MAX (64u << 10)

/* A checked PKCS#10 request: all custody takes from it. */
struct cert_csr {
	EVP_PKEY *pkey; /* its public key */
	/* the key as the policy's csr_keys names it: "ecdsa-p256",
	 * "ecdsa-p384", "ed25519", "rsa-2048", "rsa-3072", "rsa-4096" */
	const char *key_type;
	uint8_t sha256[32]; /* of the request's DER */
};

/*
 * Parse and check a CSR (PEM "CERTIFICATE REQUEST", or DER) for the agent
 * spiffe_id. Refused: more than CERT_CSR_MAX bytes (CUSTODY_E_TOO_LARGE);
 * anything but one well-formed request, trailing bytes included
 * (CUSTODY_E_PARSE); a signature that its own key does not verify
 * (CUSTODY_E_SIG_VERIFY: no proof of possession); a key other than the six
 * types above, an RSA exponent other than 65537, an EC point that fails
 * OpenSSL's public check; and extensions asked for that custody would never
 * grant (CUSTODY_E_INVALID_ARG): basicConstraints with CA:TRUE or a path
 * length, keyUsage keyCertSign or cRLSign, an extended key usage other than
 * clientAuth or serverAuth, a subjectAltName other than exactly the URI
 * spiffe_id, any other extension, and an extension named twice; an EC key
 * with explicit parameters or a compressed point, an Ed25519 key of small
 * order or not canonical, an RSA key that fails OpenSSL's public check, a
 * request signed with MD5 or SHA-1, not in DER, of another version than 1
 * or with attributes other than one extensionRequest. Nothing of
 * the request is copied into a certificate but its key, so an allowed
 * extension is only checked, never granted. why (whysz bytes, may be NULL)
 * gets a one-line reason for a refusal, fit for an error answer.
 */
int cert_csr_parse(const uint8_t *in, size_t len, const char *spiffe_id,
    struct cert_csr **csrp, char *why, size_t whysz);

void cert_csr_free(struct cert_csr *csr);

/* Extended key usages and key usages of an issued certificate. */
#define CERT_EKU_CLIENT_AUTH	  (1u << 0)
#define CERT_EKU_SERVER_AUTH	  (1u << 1)
#define CERT_KU_DIGITAL_SIGNATURE (1u << 0)
#define CERT_KU_KEY_ENCIPHERMENT  (1u << 1)
#define CERT_KU_KEY_AGREEMENT	  (1u << 2)

/* A leaf certificate for an agent. */
struct cert_leaf {
	const char *spiffe_id; /* the one URI SAN; the subject is empty */
	int64_t not_before;    /* Unix seconds */
	int64_t ttl;	       /* seconds, > 0; cut at the issuer's notAfter */
	unsigned eku;	       /* CERT_EKU_*, at least one */
	unsigned key_usage;    /* CERT_KU_*, at least one */
};

/*
 * What cert_leaf_tbs checks before it builds anything, for a caller that
 * wants the reason: the CSR's key is not the CA's own (CUSTODY_E_INVALID_ARG),
 * a key usage of the policy's template is left that the CSR's key type may
 * have (keyEncipherment is dropped for EC and Ed25519 keys, keyAgreement for
 * RSA and Ed25519; none left: CUSTODY_E_INVALID_ARG), and the CA
 * certificate's nameConstraints, if any, permit the SPIFFE ID
 * (CUSTODY_E_STATE). *key_usagep gets the usages the certificate will have.
 */
int cert_leaf_check(const struct cert_leaf *leaf, const struct cert_csr *csr,
    X509 *ca, unsigned *key_usagep, char *why, size_t whysz);

/*
 * The nameConstraints of the certificates above the CA certificate (its
 * chain, DER certificates one after the other, as the store keeps it)
 * permit spiffe_id: 0, or CUSTODY_E_STATE with the reason.
 */
int cert_chain_names(const char *spiffe_id, const uint8_t *chain,
    size_t chainlen, char *why, size_t whysz);

/*
 * The certificate der verifies, as a relying party would check it
 * (X509_V_FLAG_X509_STRICT: path length, name constraints, validity,
 * usages), through ca and its chain to the top certificate of the chain as
 * the trust anchor (a partial chain when that one is not self-signed). 0,
 * or CUSTODY_E_STATE with the reason. For CA certificates from an external
 * CA, whose constraints custody did not write.
 */
int cert_path_verify(const uint8_t *der, size_t derlen, X509 *ca,
    const uint8_t *chain, size_t chainlen, char *why, size_t whysz);

/*
 * Build the certificate for leaf, with the CSR's key, issued under the CA
 * certificate ca by a key of algorithm alg: version 3, a 128-bit random
 * serial, ca's subject as issuer, basicConstraints CA:FALSE (critical),
 * keyUsage (critical), extKeyUsage, subjectAltName (critical: the subject
 * is empty), subjectKeyIdentifier (SHA-1 of the key, RFC 5280 4.2.1.2) and
 * authorityKeyIdentifier (ca's SKI). A validity that would outlive ca is
 * cut at ca's notAfter; a ca that is not valid at not_before is refused
 * (CUSTODY_E_STATE), and so is what cert_leaf_check refuses. Returns the
 * certificate without its signature (free it) and *tbsp, the DER TBSCertificate
 * to sign (free(3)).
 */
int cert_leaf_tbs(const struct cert_leaf *leaf, const struct cert_csr *csr,
    X509 *ca, enum custody_alg alg, X509 **certp, uint8_t **tbsp,
    size_t *tbslenp);

/*
 * The certificate: tbs (as cert_leaf_tbs made it) signed with sig, the
 * token's signature by a key of algorithm alg (raw r||s for ECDSA), whose
 * public key is issuer_pub. The result is parsed back and must verify with
 * issuer_pub (CUSTODY_E_SIG_VERIFY otherwise). Returns its DER in *derp
 * (free(3)).
 */
int cert_finish(const uint8_t *tbs, size_t tbslen, enum custody_alg alg,
    const uint8_t *sig, size_t siglen, EVP_PKEY *issuer_pub, uint8_t **derp,
    size_t *derlenp);

/* ---- the CA certificate of an x509-ca key ---- */

#define CERT_NAME_MAX	 512	     /* bytes of a subject string */
#define CERT_NAME_RDNS	 8	     /* attributes in it */
#define CERT_CHAIN_MAX	 (64u << 10) /* bytes of a PEM chain */
#define CERT_CHAIN_CERTS 8	     /* certificates in it */

/*
 * A subject as RFC 4514 writes it, restricted: TYPE=value pairs separated
 * by commas, TYPE one of CN, O, OU, C, L, ST, DC, values of 1 to 64 bytes of
 * UTF-8 (C: 2) without escapes, quotes, '+', ';', '<', '>', '#' or control
 * characters, at most 8 pairs. The last pair is the first RDN of the DER
 * name, as RFC 4514 says. CUSTODY_E_INVALID_ARG (why says what) or 0 and a
 * new *namep.
 */
int cert_name_parse(const char *s, X509_NAME **namep, char *why, size_t whysz);

/*
 * The TBSCertificate of a self-signed CA certificate for the key pub of
 * algorithm alg: subject and issuer subject, a 128-bit random serial,
 * valid from not_before for ttl seconds, basicConstraints CA:TRUE with
 * pathLenConstraint 0 (critical), keyUsage digitalSignature, keyCertSign
 * and cRLSign (critical), SKI and AKI (both the key's SHA-1). Sign it in the
 * token and pass it to cert_finish with pub as the issuer's key.
 */
int cert_ca_tbs(const X509_NAME *subject, int64_t not_before, int64_t ttl,
    EVP_PKEY *pub, enum custody_alg alg, uint8_t **tbsp, size_t *tbslenp);

/*
 * The CertificationRequestInfo of a PKCS#10 request for the key pub, for an
 * external CA: subject, and an extensionRequest for the extensions of
 * cert_ca_tbs but the AKI. Sign it in the token, then cert_csr_finish.
 */
int cert_csr_tbs(
    const X509_NAME *subject, EVP_PKEY *pub, uint8_t **tbsp, size_t *tbslenp);

/* The request: as cert_finish, but parsed back as a request and verified
 * with pub, its own key. */
int cert_csr_finish(const uint8_t *tbs, size_t tbslen, enum custody_alg alg,
    const uint8_t *sig, size_t siglen, EVP_PKEY *pub, uint8_t **derp,
    size_t *derlenp);

/*
 * Check what an external CA answered, before it is installed: PEM
 * certificates (at most CERT_CHAIN_MAX bytes, CERT_CHAIN_CERTS of them),
 * every block parsing, the first for the key pub (CUSTODY_E_KEY_MISMATCH
 * otherwise), a CA certificate with keyCertSign, then at least its issuer
 * and any above it, in order, each
 * signing the one before (CUSTODY_E_SIG_VERIFY otherwise), all valid at
 * now. When the last is self-signed the whole path is verified by OpenSSL
 * (X509_V_FLAG_X509_STRICT) with it as the trust anchor. Returns the
 * certificates in *certsp (sk_X509_pop_free them), or CUSTODY_E_TOO_LARGE,
 * CUSTODY_E_PARSE, CUSTODY_E_INVALID_ARG, with a reason in why.
 */
int cert_ca_check(const uint8_t *pem, size_t len, EVP_PKEY *pub, int64_t now,
    STACK_OF(X509) * *certsp, char *why, size_t whysz);

/* ---- small views ---- */

/* notBefore and notAfter of x in Unix seconds (either pointer may be NULL);
 * CUSTODY_E_PARSE when they do not convert. */
int cert_validity(const X509 *x, int64_t *fromp, int64_t *untilp);

/* The serial number of x in lowercase hex, without leading zeros. */
int cert_serial_hex(const X509 *x, char *out, size_t outsz);

/* PEM text of DER bytes under label ("CERTIFICATE", "CERTIFICATE
 * REQUEST"), NUL-terminated, to free(3); NULL when out of memory. */
char *cert_pem(const char *label, const uint8_t *der, size_t len);

/* The next DER certificate at *p (before end), advancing *p:
 * CUSTODY_E_NOT_FOUND at the end, CUSTODY_E_PARSE for bytes that are not
 * one. For chains stored as DER certificates one after the other. */
int cert_next_der(const uint8_t **p, const uint8_t *end, X509 **xp);

#endif
