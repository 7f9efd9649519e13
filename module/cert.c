/* SPDX-License-Identifier: Apache-2.0 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "util.h"

/*
 * The AlgorithmIdentifier of each signing algorithm, in DER, as it goes into
 * both the TBSCertificate and the certificate: ecdsa-with-SHA256 and
 * ecdsa-with-SHA384 (RFC 5758, no parameters), id-Ed25519 (RFC 8410, no
 * parameters) and id-RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a
 * 32-byte salt (RFC 4055), what the token's mechanisms make.
 */
static const uint8_t ALG_ES256[] = {
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t ALG_ES384[] = {
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
static const uint8_t ALG_ED25519[] = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t ALG_PS256[] = {0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48,
    0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d,
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
    0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20};

static int
sig_alg_der(enum custody_alg alg, const uint8_t **derp, size_t *lenp)
{
	switch (alg) {
	case CUSTODY_ALG_ECDSA_P256:
		*derp = ALG_ES256;
		*lenp = sizeof(ALG_ES256);
		return 0;
	case CUSTODY_ALG_ECDSA_P384:
		*derp = ALG_ES384;
		*lenp = sizeof(ALG_ES384);
		return 0;
	case CUSTODY_ALG_ED25519:
		*derp = ALG_ED25519;
		*lenp = sizeof(ALG_ED25519);
		return 0;
	case CUSTODY_ALG_RSA_PSS_3072:
		*derp = ALG_PS256;
		*lenp = sizeof(ALG_PS256);
		return 0;
	default:
		return CUSTODY_E_UNKNOWN_ALG;
	}
}

static int say(char *why, size_t whysz, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write the reason for a refusal into why; returns r. */
static int
say(char *why, size_t whysz, int r, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whysz > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whysz, fmt, ap);
		va_end(ap);
	}
	ERR_clear_error();
	return r;
}

/* ---- requests ----------------------------------------------------------- */

/* The DER of in: in itself, or the one PEM request block it is. */
static int
csr_der(const uint8_t *in, size_t len, uint8_t **derp, size_t *derlenp,
    char *why, size_t whysz)
{
	BIO *b;
	char *name = NULL, *header = NULL, rest[64];
	unsigned char *data = NULL;
	long dlen = 0;
	int n, r = CUSTODY_E_PARSE;
	size_t i;

	*derp = NULL;
	for (i = 0; i < len && (in[i] == ' ' || in[i] == '\t' ||
				   in[i] == '\r' || in[i] == '\n');
	     i++)
		;
	if (len - i < 10 || memcmp(in + i, "-----BEGIN", 10) != 0) {
		if ((*derp = malloc(len > 0 ? len : 1)) == NULL)
			return CUSTODY_E_NOMEM;
		memcpy(*derp, in, len);
		*derlenp = len;
		return 0;
	}
	if ((b = BIO_new_mem_buf(in, (int)len)) == NULL)
		return CUSTODY_E_NOMEM;
	if (PEM_read_bio(b, &name, &header, &data, &dlen) != 1 || dlen <= 0) {
		r = say(why, whysz, CUSTODY_E_PARSE, "not a PEM block");
		goto out;
	}
	if (strcmp(name, "CERTIFICATE REQUEST") != 0 &&
	    strcmp(name, "NEW CERTIFICATE REQUEST") != 0) {
		r = say(why, whysz, CUSTODY_E_PARSE,
		    "a PEM block that is not a CERTIFICATE REQUEST");
		goto out;
	}
	if (header != NULL && header[0] != '\0') {
		r = say(why, whysz, CUSTODY_E_PARSE, "PEM headers");
		goto out;
	}
	/* one request, nothing after it but white space */
	while ((n = BIO_read(b, rest, sizeof(rest))) > 0)
		for (i = 0; i < (size_t)n; i++)
			if (rest[i] != ' ' && rest[i] != '\t' &&
			    rest[i] != '\r' && rest[i] != '\n') {
				r = say(why, whysz, CUSTODY_E_PARSE,
				    "something after the request's PEM block");
				goto out;
			}
	if ((*derp = malloc((size_t)dlen)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	memcpy(*derp, data, (size_t)dlen);
	*derlenp = (size_t)dlen;
	r = 0;
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(b);
	ERR_clear_error();
	return r;
}

/*
 * The Ed25519 points of small order (libsodium's list, each checked to have
 * order 1, 2, 4 or 8) and the non-canonical encodings y >= p: a key anyone
 * can sign for. The sign bit (bit 255) is ignored.
 */
static const uint8_t ed25519_weak[][32] = {
    {0},
    {1},
    {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89,
	0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39,
	0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
    {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76,
	0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6,
	0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
    /* p - 1 (order 2); p and p + 1 are the non-canonical check's */
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

static int
ed25519_weak_key(const uint8_t *k, size_t len)
{
	size_t i, j;
	int high = 1;

	if (len != 32)
		return 1;
	for (i = 0; i < sizeof(ed25519_weak) / sizeof(ed25519_weak[0]); i++) {
		for (j = 0; j < 31 && k[j] == ed25519_weak[i][j]; j++)
			;
		if (j == 31 && (k[31] & 0x7f) == ed25519_weak[i][31])
			return 1;
	}
	/* y >= p = 2^255 - 19: bytes 1..30 all 0xff, byte 31 0x7f (sign bit
	 * aside) and byte 0 at least 0xed */
	for (j = 1; j < 31; j++)
		high &= k[j] == 0xff;
	return high && (k[31] & 0x7f) == 0x7f && k[0] >= 0xed;
}

/*
 * The public key as the request encodes it, before OpenSSL's view of it:
 * an EC key on a named curve (RFC 5480: no explicit parameters) with an
 * uncompressed point, an Ed25519 key that is not of small order.
 */
static int
spki_check(X509_REQ *req, char *why, size_t whysz)
{
	X509_PUBKEY *xpk = X509_REQ_get_X509_PUBKEY(req);
	const unsigned char *k = NULL;
	const void *pval = NULL;
	ASN1_OBJECT *aobj = NULL;
	X509_ALGOR *alg = NULL;
	int klen = 0, ptype = 0;

	if (xpk == NULL ||
	    X509_PUBKEY_get0_param(&aobj, &k, &klen, &alg, xpk) != 1) {
		ERR_clear_error();
		return say(why, whysz, CUSTODY_E_PARSE,
		    "a public key that does not parse");
	}
	switch (OBJ_obj2nid(aobj)) {
	case NID_X9_62_id_ecPublicKey:
		X509_ALGOR_get0(NULL, &ptype, &pval, alg);
		if (ptype != V_ASN1_OBJECT)
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an EC key with explicit curve parameters (RFC "
			    "5480: a named curve only)");
		if (klen < 1 || k[0] != 0x04)
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an EC point that is not uncompressed");
		return 0;
	case NID_ED25519:
		if (ed25519_weak_key(k, (size_t)klen))
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an Ed25519 key of small order or not canonical");
		return 0;
	default:
		return 0;
	}
}

/* The request's signature algorithm: SHA-2, PSS or Ed25519, not MD5 or
 * SHA-1. */
static int
sig_alg_ok(X509_REQ *req)
{
	switch (X509_REQ_get_signature_nid(req)) {
	case NID_ecdsa_with_SHA256:
	case NID_ecdsa_with_SHA384:
	case NID_ecdsa_with_SHA512:
	case NID_sha256WithRSAEncryption:
	case NID_sha384WithRSAEncryption:
	case NID_sha512WithRSAEncryption:
	case NID_rsassaPss:
	case NID_ED25519:
		return 1;
	default:
		return 0;
	}
}

/* The policy's name for pk, or a refusal. */
static int
key_type(EVP_PKEY *pk, const char **typep, char *why, size_t whysz)
{
	char group[64];
	BIGNUM *e = NULL;
	EVP_PKEY_CTX *ctx;
	int bits, ok, r = 0;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_ED25519:
		*typep = "ed25519";
		return 0;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) !=
		    1)
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an EC key without a named curve");
		if (strcmp(group, "prime256v1") == 0)
			*typep = "ecdsa-p256";
		else if (strcmp(group, "secp384r1") == 0)
			*typep = "ecdsa-p384";
		else
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an EC key on %s, not P-256 or P-384", group);
		if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL)
			return CUSTODY_E_NOMEM;
		ok = EVP_PKEY_public_check(ctx);
		EVP_PKEY_CTX_free(ctx);
		if (ok != 1)
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an EC public key that fails the point check");
		return 0;
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(pk);
		if (bits == 2048)
			*typep = "rsa-2048";
		else if (bits == 3072)
			*typep = "rsa-3072";
		else if (bits == 4096)
			*typep = "rsa-4096";
		else
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an RSA key of %d bits, not 2048, 3072 or 4096",
			    bits);
		if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) != 1 ||
		    !BN_is_word(e, 65537))
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an RSA public exponent other than 65537");
		BN_free(e);
		if (r != 0)
			return r;
		if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL)
			return CUSTODY_E_NOMEM;
		ok = EVP_PKEY_public_check(ctx);
		EVP_PKEY_CTX_free(ctx);
		if (ok != 1)
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an RSA public key that fails OpenSSL's check");
		return 0;
	default:
		return say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "a key that is not ECDSA P-256 or P-384, Ed25519 or RSA");
	}
}

/* Is the one name in gens the URI uri? */
static int
san_is(const GENERAL_NAMES *gens, const char *uri)
{
	const GENERAL_NAME *g;
	const ASN1_IA5STRING *s;

	if (sk_GENERAL_NAME_num(gens) != 1)
		return 0;
	g = sk_GENERAL_NAME_value(gens, 0);
	if (g->type != GEN_URI)
		return 0;
	s = g->d.uniformResourceIdentifier;
	return (size_t)ASN1_STRING_length(s) == strlen(uri) &&
	       memcmp(ASN1_STRING_get0_data(s), uri, strlen(uri)) == 0;
}

/*
 * The value of a known extension, parsed with its ASN.1 item, which must end
 * exactly where the value ends (X509V3_EXT_d2i ignores trailing bytes, which
 * could hide a second value); NULL when it does not.
 */
static void *
ext_value(X509_EXTENSION *ext, const ASN1_ITEM *it)
{
	const ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
	const unsigned char *p = ASN1_STRING_get0_data(v);
	long len = ASN1_STRING_length(v);
	ASN1_VALUE *o = ASN1_item_d2i(NULL, &p, len, it);

	if (o != NULL && p != ASN1_STRING_get0_data(v) + len) {
		ASN1_item_free(o, it);
		o = NULL;
	}
	ERR_clear_error();
	return o;
}

/* One extension the request asks for: only checked, never copied. */
static int
ext_check(X509_EXTENSION *ext, const char *spiffe_id, char *why, size_t whysz)
{
	ASN1_OBJECT *obj = X509_EXTENSION_get_object(ext);
	BASIC_CONSTRAINTS *bc;
	ASN1_BIT_STRING *ku;
	EXTENDED_KEY_USAGE *eku;
	GENERAL_NAMES *gens;
	char oid[80];
	int nid = OBJ_obj2nid(obj), i, r = 0;

	switch (nid) {
	case NID_basic_constraints:
		if ((bc = ext_value(ext, ASN1_ITEM_rptr(BASIC_CONSTRAINTS))) ==
		    NULL)
			return say(why, whysz, CUSTODY_E_PARSE,
			    "a malformed basicConstraints");
		if (bc->ca || bc->pathlen != NULL)
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "basicConstraints asks for a CA certificate");
		BASIC_CONSTRAINTS_free(bc);
		return r;
	case NID_key_usage:
		if ((ku = ext_value(ext, ASN1_ITEM_rptr(ASN1_BIT_STRING))) ==
		    NULL)
			return say(why, whysz, CUSTODY_E_PARSE,
			    "a malformed keyUsage");
		if (ASN1_BIT_STRING_get_bit(ku, 5) ||
		    ASN1_BIT_STRING_get_bit(ku, 6))
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "keyUsage asks for keyCertSign or cRLSign");
		ASN1_BIT_STRING_free(ku);
		return r;
	case NID_ext_key_usage:
		if ((eku = ext_value(
			 ext, ASN1_ITEM_rptr(EXTENDED_KEY_USAGE))) == NULL)
			return say(why, whysz, CUSTODY_E_PARSE,
			    "a malformed extKeyUsage");
		for (i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
			nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i));
			if (nid != NID_client_auth && nid != NID_server_auth) {
				r = say(why, whysz, CUSTODY_E_INVALID_ARG,
				    "extKeyUsage asks for more than clientAuth "
				    "and serverAuth");
				break;
			}
		}
		EXTENDED_KEY_USAGE_free(eku);
		return r;
	case NID_subject_alt_name:
		if ((gens = ext_value(ext, ASN1_ITEM_rptr(GENERAL_NAMES))) ==
		    NULL)
			return say(why, whysz, CUSTODY_E_PARSE,
			    "a malformed subjectAltName");
		if (!san_is(gens, spiffe_id))
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "subjectAltName names something else than the "
			    "agent's SPIFFE ID");
		GENERAL_NAMES_free(gens);
		return r;
	default:
		OBJ_obj2txt(oid, sizeof(oid), obj, 1);
		return say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "%sextension %s, which custody does not grant",
		    X509_EXTENSION_get_critical(ext) ? "critical " : "", oid);
	}
}

static int
csr_extensions(X509_REQ *req, const char *spiffe_id, char *why, size_t whysz)
{
	STACK_OF(X509_EXTENSION) * exts;
	int i, j, n, r = 0;

	/* one extensionRequest with one value, and no other attribute
	 * (X509_REQ_get_extensions reads the first value of the first one
	 * only, and a challengePassword or msExtReq means nothing here) */
	n = X509_REQ_get_attr_count(req);
	for (i = 0; i < n; i++) {
		X509_ATTRIBUTE *at = X509_REQ_get_attr(req, i);
		char oid[80];

		if (OBJ_obj2nid(X509_ATTRIBUTE_get0_object(at)) !=
		    NID_ext_req) {
			OBJ_obj2txt(oid, sizeof(oid),
			    X509_ATTRIBUTE_get0_object(at), 1);
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "attribute %s (only an extensionRequest is read)",
			    oid);
		}
		if (X509_ATTRIBUTE_count(at) != 1 ||
		    X509_REQ_get_attr_by_NID(req, NID_ext_req, i) != -1)
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "more than one extensionRequest");
	}
	exts = X509_REQ_get_extensions(req);
	if (exts == NULL) {
		ERR_clear_error();
		if (n > 0)
			return say(why, whysz, CUSTODY_E_PARSE,
			    "a malformed extensionRequest");
		return 0;
	}
	n = sk_X509_EXTENSION_num(exts);
	for (i = 0; i < n && r == 0; i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);

		for (j = 0; j < i; j++)
			if (OBJ_cmp(X509_EXTENSION_get_object(e),
				X509_EXTENSION_get_object(
				    sk_X509_EXTENSION_value(exts, j))) == 0)
				break;
		if (j < i)
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "an extension named twice");
		else
			r = ext_check(e, spiffe_id, why, whysz);
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return r;
}

int
cert_csr_parse(const uint8_t *in, size_t len, const char *spiffe_id,
    struct cert_csr **csrp, char *why, size_t whysz)
{
	struct cert_csr *csr = NULL;
	X509_REQ *req = NULL;
	uint8_t *der = NULL;
	const unsigned char *p;
	size_t derlen = 0;
	unsigned int mdlen;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    in != NULL && spiffe_id != NULL && csrp != NULL,
	    CUSTODY_E_INVALID_ARG);
	*csrp = NULL;
	if (why != NULL && whysz > 0)
		why[0] = '\0';
	if (len > CERT_CSR_MAX)
		return say(why, whysz, CUSTODY_E_TOO_LARGE,
		    "a CSR of more than %u bytes", CERT_CSR_MAX);
	if ((r = csr_der(in, len, &der, &derlen, why, whysz)) != 0)
		return r;
	p = der;
	if (derlen == 0 || derlen > LONG_MAX ||
	    (req = d2i_X509_REQ(NULL, &p, (long)derlen)) == NULL ||
	    p != der + derlen) {
		r = say(why, whysz, CUSTODY_E_PARSE,
		    "not one DER PKCS#10 certification request");
		goto out;
	}
	/* DER, version 1 (0): one encoding per request, one hash */
	if (X509_REQ_get_version(req) != 0) {
		r = say(why, whysz, CUSTODY_E_PARSE,
		    "a request version other than 1");
		goto out;
	}
	{
		unsigned char *re = NULL;
		int n;

		(void)i2d_re_X509_REQ_tbs(req, NULL);
		n = i2d_X509_REQ(req, &re);
		if (n <= 0 || (size_t)n != derlen ||
		    memcmp(re, der, derlen) != 0) {
			OPENSSL_free(re);
			r = say(why, whysz, CUSTODY_E_PARSE,
			    "a request that is not in DER (BER lengths or "
			    "encodings)");
			goto out;
		}
		OPENSSL_free(re);
	}
	/* the cheap checks of the key's encoding come first */
	if ((r = spki_check(req, why, whysz)) != 0)
		goto out;
	if (!sig_alg_ok(req)) {
		r = say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "a request signed with MD5, SHA-1 or an unknown "
		    "algorithm");
		goto out;
	}
	if ((csr = calloc(1, sizeof(*csr))) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if ((csr->pkey = X509_REQ_get_pubkey(req)) == NULL) {
		r = say(why, whysz, CUSTODY_E_PARSE,
		    "a public key that does not parse");
		goto out;
	}
	if ((r = key_type(csr->pkey, &csr->key_type, why, whysz)) != 0)
		goto out;
	/* proof of possession, before the rest is believed */
	if (X509_REQ_verify(req, csr->pkey) != 1) {
		r = say(why, whysz, CUSTODY_E_SIG_VERIFY,
		    "the CSR's signature does not verify with its key");
		goto out;
	}
	if ((r = csr_extensions(req, spiffe_id, why, whysz)) != 0)
		goto out;
	if (!EVP_Digest(der, derlen, csr->sha256, &mdlen, EVP_sha256(), NULL)) {
		r = CUSTODY_E_CRYPTO;
		goto out;
	}
	*csrp = csr;
	csr = NULL;
	r = 0;
out:
	cert_csr_free(csr);
	X509_REQ_free(req);
	free(der);
	ERR_clear_error();
	return r;
}

void
cert_csr_free(struct cert_csr *csr)
{
	if (csr == NULL)
		return;
	EVP_PKEY_free(csr->pkey);
	free(csr);
}

/* ---- certificates ------------------------------------------------------- */

static int
crypto_fail(const char *what)
{
	log_error_f("%s: %s", what, ERR_reason_error_string(ERR_get_error()));
	ERR_clear_error();
	return CUSTODY_E_CRYPTO;
}

/* OpenSSL's encoding (n bytes at der, freed here whatever happens) copied
 * into *outp (free(3)) and *lenp; n <= 0: what failed. */
static int
der_copy(
    int n, unsigned char *der, const char *what, uint8_t **outp, size_t *lenp)
{
	int r = 0;

	if (n <= 0)
		r = crypto_fail(what);
	else if ((*outp = malloc((size_t)n)) == NULL)
		r = CUSTODY_E_NOMEM;
	else {
		memcpy(*outp, der, (size_t)n);
		*lenp = (size_t)n;
	}
	OPENSSL_free(der);
	return r;
}

/* A positive serial of 128 random bits (17 DER bytes when the top is set). */
static int
set_serial(X509 *x)
{
	uint8_t rnd[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *sn = NULL;
	int r;

	do {
		if ((r = util_random(rnd, sizeof(rnd))) != 0) {
			BN_free(bn);
			return r;
		}
		BN_free(bn);
		if ((bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) == NULL)
			return CUSTODY_E_NOMEM;
	} while (BN_is_zero(bn));
	r = (sn = BN_to_ASN1_INTEGER(bn, NULL)) != NULL &&
		    X509_set_serialNumber(x, sn) == 1
		? 0
		: crypto_fail("serial");
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	return r;
}

/* Unix seconds of an ASN1_TIME; 0, or CUSTODY_E_PARSE. */
static int
time_of(const ASN1_TIME *t, int64_t *secsp)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		ERR_clear_error();
		return CUSTODY_E_PARSE;
	}
	*secsp = (int64_t)timegm(&tm);
	return 0;
}

/* The extensions of a leaf certificate, in the order RFC 5280 lists them. */
static int
leaf_extensions(X509 *x, X509 *ca, const struct cert_leaf *leaf)
{
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_BIT_STRING *ku = NULL;
	EXTENDED_KEY_USAGE *eku = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *g = NULL;
	ASN1_IA5STRING *uri = NULL;
	ASN1_OCTET_STRING *ski = NULL;
	AUTHORITY_KEYID *aki = NULL;
	const ASN1_OCTET_STRING *ca_ski;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	int ok = 0;

	if ((bc = BASIC_CONSTRAINTS_new()) == NULL ||
	    (ku = ASN1_BIT_STRING_new()) == NULL ||
	    (eku = sk_ASN1_OBJECT_new_null()) == NULL ||
	    (gens = GENERAL_NAMES_new()) == NULL ||
	    (g = GENERAL_NAME_new()) == NULL ||
	    (uri = ASN1_IA5STRING_new()) == NULL ||
	    (ski = ASN1_OCTET_STRING_new()) == NULL ||
	    (aki = AUTHORITY_KEYID_new()) == NULL)
		goto out;
	bc->ca = 0; /* CA:FALSE, which DER writes as an empty SEQUENCE */
	if (((leaf->key_usage & CERT_KU_DIGITAL_SIGNATURE) &&
		!ASN1_BIT_STRING_set_bit(ku, 0, 1)) ||
	    ((leaf->key_usage & CERT_KU_KEY_ENCIPHERMENT) &&
		!ASN1_BIT_STRING_set_bit(ku, 2, 1)) ||
	    ((leaf->key_usage & CERT_KU_KEY_AGREEMENT) &&
		!ASN1_BIT_STRING_set_bit(ku, 4, 1)))
		goto out;
	if (((leaf->eku & CERT_EKU_SERVER_AUTH) &&
		!sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth))) ||
	    ((leaf->eku & CERT_EKU_CLIENT_AUTH) &&
		!sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth))))
		goto out;
	if (!ASN1_STRING_set(
		uri, leaf->spiffe_id, (int)strlen(leaf->spiffe_id)))
		goto out;
	GENERAL_NAME_set0_value(g, GEN_URI, uri);
	uri = NULL;
	if (!sk_GENERAL_NAME_push(gens, g))
		goto out;
	g = NULL;
	if (!X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) ||
	    !ASN1_OCTET_STRING_set(ski, md, (int)mdlen))
		goto out;
	if ((ca_ski = X509_get0_subject_key_id(ca)) != NULL) {
		if ((aki->keyid = ASN1_OCTET_STRING_dup(ca_ski)) == NULL)
			goto out;
	} else if (!X509_pubkey_digest(ca, EVP_sha1(), md, &mdlen) ||
		   (aki->keyid = ASN1_OCTET_STRING_new()) == NULL ||
		   !ASN1_OCTET_STRING_set(aki->keyid, md, (int)mdlen))
		goto out;
	ok = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, 0) == 1 &&
	     X509_add1_ext_i2d(x, NID_key_usage, ku, 1, 0) == 1 &&
	     X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, 0) == 1 &&
	     X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, 0) == 1 &&
	     X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, 0) == 1 &&
	     X509_add1_ext_i2d(x, NID_authority_key_identifier, aki, 0, 0) == 1;
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	sk_ASN1_OBJECT_free(eku); /* the OIDs are OpenSSL's static ones */
	GENERAL_NAMES_free(gens);
	GENERAL_NAME_free(g);
	ASN1_IA5STRING_free(uri);
	ASN1_OCTET_STRING_free(ski);
	AUTHORITY_KEYID_free(aki);
	return ok ? 0 : crypto_fail("certificate extensions");
}

/*
 * Write alg into the TBS's signature field. OpenSSL 3.0 has no setter for
 * it (X509_sign writes it from a key it holds): the field is reached
 * through X509_get0_tbs_sigalg, and i2d_re_X509_tbs encodes it afresh.
 */
static int
set_tbs_sigalg(X509 *x, enum custody_alg alg)
{
	const uint8_t *der, *p;
	size_t len;
	X509_ALGOR *a;
	int r;

	if ((r = sig_alg_der(alg, &der, &len)) != 0)
		return r;
	p = der;
	if ((a = d2i_X509_ALGOR(NULL, &p, (long)len)) == NULL)
		return crypto_fail("signature algorithm");
	r = X509_ALGOR_copy((X509_ALGOR *)X509_get0_tbs_sigalg(x), a) == 1
		? 0
		: crypto_fail("signature algorithm");
	X509_ALGOR_free(a);
	return r;
}

/*
 * Do the nameConstraints of CA certificate ca, if any, permit a leaf whose
 * one name is the URI spiffe_id? 0, CUSTODY_E_STATE (no, or they do not
 * parse) or CUSTODY_E_NOMEM.
 */
static int
nc_permits(X509 *ca, const char *spiffe_id, char *why, size_t whysz)
{
	NAME_CONSTRAINTS *nc;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *g = NULL;
	ASN1_IA5STRING *uri = NULL;
	X509 *x = NULL;
	int crit = -1, rc;

	nc = X509_get_ext_d2i(ca, NID_name_constraints, &crit, NULL);
	if (nc == NULL && crit != -1) {
		ERR_clear_error();
		return say(why, whysz, CUSTODY_E_STATE,
		    "the CA certificate's nameConstraints do not parse");
	}
	if (nc != NULL) {
		rc = (x = X509_new()) != NULL &&
			     (gens = GENERAL_NAMES_new()) != NULL &&
			     (g = GENERAL_NAME_new()) != NULL &&
			     (uri = ASN1_IA5STRING_new()) != NULL &&
			     ASN1_STRING_set(
				 uri, spiffe_id, (int)strlen(spiffe_id))
			 ? X509_V_OK
			 : -1;
		if (rc == X509_V_OK) {
			GENERAL_NAME_set0_value(g, GEN_URI, uri);
			uri = NULL;
			if (!sk_GENERAL_NAME_push(gens, g))
				rc = -1;
			else {
				g = NULL; /* gens holds it */
				if (X509_add1_ext_i2d(x, NID_subject_alt_name,
					gens, 1, 0) != 1)
					rc = -1;
			}
		}
		/* NAME_CONSTRAINTS_check reads the SANs OpenSSL caches
		 * when it first looks at the extensions */
		if (rc == X509_V_OK) {
			(void)X509_get_extension_flags(x);
			rc = NAME_CONSTRAINTS_check(x, nc);
		}
		NAME_CONSTRAINTS_free(nc);
		GENERAL_NAMES_free(gens);
		GENERAL_NAME_free(g);
		ASN1_IA5STRING_free(uri);
		X509_free(x);
		ERR_clear_error();
		if (rc == -1)
			return CUSTODY_E_NOMEM;
		if (rc != X509_V_OK)
			return say(why, whysz, CUSTODY_E_STATE,
			    "the CA certificate's name constraints exclude %s",
			    spiffe_id);
	}
	return 0;
}

int
cert_leaf_check(const struct cert_leaf *leaf, const struct cert_csr *csr,
    X509 *ca, unsigned *key_usagep, char *why, size_t whysz)
{
	unsigned ku;
	int r, base;

	CUSTODY_RETURN_VAL_IF_FAIL(leaf != NULL && csr != NULL && ca != NULL &&
				       key_usagep != NULL &&
				       leaf->spiffe_id != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (why != NULL && whysz > 0)
		why[0] = '\0';
	if (EVP_PKEY_eq(csr->pkey, X509_get0_pubkey(ca)) == 1)
		return say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "the CSR's key is the CA's own");
	/* the usages a key of this type may have (RFC 5480 section 3, RFC
	 * 8410 section 5): the policy's template, less the others */
	ku = leaf->key_usage;
	base = EVP_PKEY_get_base_id(csr->pkey);
	if (base == EVP_PKEY_EC || base == EVP_PKEY_ED25519)
		ku &= ~CERT_KU_KEY_ENCIPHERMENT;
	if (base == EVP_PKEY_RSA || base == EVP_PKEY_ED25519)
		ku &= ~CERT_KU_KEY_AGREEMENT;
	if (ku == 0)
		return say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "the policy grants no key usage that keys of type %s can "
		    "have",
		    csr->key_type);
	/* the issuer's name constraints, enforced here rather than left to
	 * relying parties (RFC 5280 4.2.1.10) */
	if ((r = nc_permits(ca, leaf->spiffe_id, why, whysz)) != 0)
		return r;
	*key_usagep = ku;
	return 0;
}

int
cert_leaf_tbs(const struct cert_leaf *leaf, const struct cert_csr *csr,
    X509 *ca, enum custody_alg alg, X509 **certp, uint8_t **tbsp,
    size_t *tbslenp)
{
	struct cert_leaf checked;
	X509 *x = NULL;
	unsigned char *tbs = NULL;
	int64_t ca_from, ca_until, until;
	unsigned ku;
	int n, r;

	CUSTODY_RETURN_VAL_IF_FAIL(leaf != NULL && csr != NULL && ca != NULL &&
				       certp != NULL && tbsp != NULL &&
				       tbslenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    leaf->spiffe_id != NULL && leaf->spiffe_id[0] != '\0' &&
		leaf->ttl > 0 && leaf->eku != 0 && leaf->key_usage != 0,
	    CUSTODY_E_INVALID_ARG);
	if ((r = time_of(X509_get0_notBefore(ca), &ca_from)) != 0 ||
	    (r = time_of(X509_get0_notAfter(ca), &ca_until)) != 0) {
		log_error_f("the CA certificate's validity does not parse");
		return r;
	}
	if (leaf->not_before < ca_from || leaf->not_before >= ca_until) {
		log_error_f("the CA certificate is not valid now");
		return CUSTODY_E_STATE;
	}
	if ((r = cert_leaf_check(leaf, csr, ca, &ku, NULL, 0)) != 0)
		return r;
	checked = *leaf;
	checked.key_usage = ku;
	until = leaf->ttl > ca_until - leaf->not_before
		    ? ca_until
		    : leaf->not_before + leaf->ttl;
	if ((x = X509_new()) == NULL)
		return CUSTODY_E_NOMEM;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)leaf->not_before) ==
		NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)until) == NULL ||
	    X509_set_pubkey(x, csr->pkey) != 1) {
		r = crypto_fail("certificate fields");
		goto out;
	}
	if ((r = set_serial(x)) != 0 ||
	    (r = leaf_extensions(x, ca, &checked)) != 0 ||
	    (r = set_tbs_sigalg(x, alg)) != 0)
		goto out;
	n = i2d_re_X509_tbs(x, &tbs);
	if ((r = der_copy(n, tbs, "TBSCertificate", tbsp, tbslenp)) != 0)
		goto out;
	*certp = x;
	x = NULL;
	r = 0;
out:
	X509_free(x);
	return r;
}

/* A DER length (definite form) into out (at least 9 bytes); its size. */
static size_t
der_len(size_t n, uint8_t *out)
{
	size_t k = 0, i;

	if (n < 0x80) {
		out[0] = (uint8_t)n;
		return 1;
	}
	for (i = n; i > 0; i >>= 8)
		k++;
	out[0] = (uint8_t)(0x80 | k);
	for (i = 0; i < k; i++)
		out[1 + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
	return 1 + k;
}

/*
 * SEQUENCE { tbs, the AlgorithmIdentifier of alg, BIT STRING { sig } }: a
 * certificate (RFC 5280) or a certification request (RFC 2986), which have
 * the same outer shape. sig is the token's (raw r||s for ECDSA).
 */
static int
assemble(const uint8_t *tbs, size_t tbslen, enum custody_alg alg,
    const uint8_t *sig, size_t siglen, uint8_t **outp, size_t *outlenp)
{
	const uint8_t *algder;
	uint8_t *sder = NULL, *out, hdr[10], bhdr[10];
	size_t alglen, slen, hl, bl, body, total, off;
	int r;

	if ((r = sig_alg_der(alg, &algder, &alglen)) != 0)
		return r;
	if (siglen != alg_sig_len(alg))
		return CUSTODY_E_SIG_VERIFY;
	if (tbslen == 0 || tbslen > CERT_TBS_MAX)
		return CUSTODY_E_TOO_LARGE;
	if (alg == CUSTODY_ALG_ECDSA_P256 || alg == CUSTODY_ALG_ECDSA_P384) {
		/* the token's r||s becomes Ecdsa-Sig-Value (RFC 5480) */
		if ((r = pubkey_ecdsa_raw_to_der(sig, siglen, &sder, &slen)) !=
		    0)
			return r;
		sig = sder;
		siglen = slen;
	}
	/* BIT STRING { 0 unused bits, signature } */
	bl = der_len(siglen + 1, bhdr);
	body = tbslen + alglen + 1 + bl + 1 + siglen;
	hl = der_len(body, hdr);
	total = 1 + hl + body;
	if ((out = malloc(total)) == NULL) {
		free(sder);
		return CUSTODY_E_NOMEM;
	}
	off = 0;
	out[off++] = 0x30;
	memcpy(out + off, hdr, hl);
	off += hl;
	memcpy(out + off, tbs, tbslen);
	off += tbslen;
	memcpy(out + off, algder, alglen);
	off += alglen;
	out[off++] = 0x03;
	memcpy(out + off, bhdr, bl);
	off += bl;
	out[off++] = 0x00;
	memcpy(out + off, sig, siglen);
	free(sder);
	*outp = out;
	*outlenp = total;
	return 0;
}

int
cert_finish(const uint8_t *tbs, size_t tbslen, enum custody_alg alg,
    const uint8_t *sig, size_t siglen, EVP_PKEY *issuer_pub, uint8_t **derp,
    size_t *derlenp)
{
	const uint8_t *p;
	uint8_t *out = NULL;
	size_t total;
	X509 *x = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(tbs != NULL && sig != NULL &&
				       issuer_pub != NULL && derp != NULL &&
				       derlenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = assemble(tbs, tbslen, alg, sig, siglen, &out, &total)) != 0)
		return r;
	/* what OpenSSL reads back is what custody meant, and it verifies */
	p = out;
	if ((x = d2i_X509(NULL, &p, (long)total)) == NULL || p != out + total) {
		r = crypto_fail("the assembled certificate does not parse");
		goto out;
	}
	if (X509_verify(x, issuer_pub) != 1) {
		ERR_clear_error();
		log_error_f("the assembled certificate does not verify with "
			    "the issuer's key; withheld");
		r = CUSTODY_E_SIG_VERIFY;
		goto out;
	}
	*derp = out;
	*derlenp = total;
	out = NULL;
	r = 0;
out:
	X509_free(x);
	free(out);
	return r;
}

/* ---- the CA certificate of an x509-ca key ------------------------------- */

/* The RDN attribute types a subject may use. */
static const char *const rdn_types[] = {
    "CN", "O", "OU", "C", "L", "ST", "DC", NULL};

int
cert_name_parse(const char *s, X509_NAME **namep, char *why, size_t whysz)
{
	char buf[CERT_NAME_MAX + 1], *rdns[CERT_NAME_RDNS], *eq, *save = NULL,
								 *tok;
	const unsigned char *c;
	X509_NAME *name = NULL;
	size_t n = 0, i, vlen;
	int t, r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    s != NULL && namep != NULL, CUSTODY_E_INVALID_ARG);
	if (strlen(s) > CERT_NAME_MAX)
		return say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "a subject of more than %d bytes", CERT_NAME_MAX);
	for (c = (const unsigned char *)s; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f || strchr("\\\"+;<>#", *c) != NULL)
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "a subject with a control character or one of "
			    "\\ \" + ; < > #");
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == CERT_NAME_RDNS)
			return say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "a subject of more than %d attributes",
			    CERT_NAME_RDNS);
		rdns[n++] = tok;
	}
	if (n == 0 || s[0] == ',' || s[strlen(s) - 1] == ',' ||
	    strstr(s, ",,") != NULL)
		return say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "a subject that is not TYPE=value[,TYPE=value...]");
	if ((name = X509_NAME_new()) == NULL)
		return CUSTODY_E_NOMEM;
	/* RFC 4514 writes the last RDN first: add them in reverse */
	for (i = n; i-- > 0;) {
		if ((eq = strchr(rdns[i], '=')) == NULL) {
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "'%s' is not TYPE=value", rdns[i]);
			goto fail;
		}
		*eq = '\0';
		for (t = 0; rdn_types[t] != NULL; t++)
			if (strcmp(rdns[i], rdn_types[t]) == 0)
				break;
		vlen = strlen(eq + 1);
		if (rdn_types[t] == NULL) {
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "attribute type '%s' (one of CN, O, OU, C, L, ST, "
			    "DC)",
			    rdns[i]);
			goto fail;
		}
		if (vlen == 0 || vlen > 64 || eq[1] == ' ' || eq[vlen] == ' ' ||
		    (strcmp(rdns[i], "C") == 0 && vlen != 2)) {
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "the value of %s: 1 to 64 bytes (C: 2), no space "
			    "at either end",
			    rdns[i]);
			goto fail;
		}
		if (X509_NAME_add_entry_by_txt(name, rdns[i], MBSTRING_UTF8,
			(const unsigned char *)eq + 1, (int)vlen, -1, 0) != 1) {
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "the value of %s is not valid UTF-8 for it",
			    rdns[i]);
			goto fail;
		}
	}
	*namep = name;
	return 0;
fail:
	X509_NAME_free(name);
	return r;
}

/* The extensions of a CA certificate (self-signed when ca is NULL). */
static int
ca_extensions(X509 *x)
{
	BASIC_CONSTRAINTS *bc = NULL;
	ASN1_BIT_STRING *ku = NULL;
	ASN1_OCTET_STRING *ski = NULL;
	AUTHORITY_KEYID *aki = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	int ok = 0;

	if ((bc = BASIC_CONSTRAINTS_new()) == NULL ||
	    (bc->pathlen = ASN1_INTEGER_new()) == NULL ||
	    (ku = ASN1_BIT_STRING_new()) == NULL ||
	    (ski = ASN1_OCTET_STRING_new()) == NULL ||
	    (aki = AUTHORITY_KEYID_new()) == NULL)
		goto out;
	/* CA:TRUE, pathlen 0: it issues leaves, never other CAs */
	bc->ca = 0xff;
	if (!ASN1_INTEGER_set(bc->pathlen, 0) ||
	    !ASN1_BIT_STRING_set_bit(ku, 0, 1) || /* digitalSignature */
	    !ASN1_BIT_STRING_set_bit(ku, 5, 1) || /* keyCertSign */
	    !ASN1_BIT_STRING_set_bit(ku, 6, 1))	  /* cRLSign */
		goto out;
	if (!X509_pubkey_digest(x, EVP_sha1(), md, &mdlen) ||
	    !ASN1_OCTET_STRING_set(ski, md, (int)mdlen) ||
	    (aki->keyid = ASN1_OCTET_STRING_dup(ski)) == NULL)
		goto out;
	ok = X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, 0) == 1 &&
	     X509_add1_ext_i2d(x, NID_key_usage, ku, 1, 0) == 1 &&
	     X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, 0) == 1 &&
	     X509_add1_ext_i2d(x, NID_authority_key_identifier, aki, 0, 0) == 1;
out:
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING_free(ku);
	ASN1_OCTET_STRING_free(ski);
	AUTHORITY_KEYID_free(aki);
	return ok ? 0 : crypto_fail("CA certificate extensions");
}

int
cert_ca_tbs(const X509_NAME *subject, int64_t not_before, int64_t ttl,
    EVP_PKEY *pub, enum custody_alg alg, uint8_t **tbsp, size_t *tbslenp)
{
	X509 *x = NULL;
	unsigned char *tbs = NULL;
	int n, r;

	CUSTODY_RETURN_VAL_IF_FAIL(subject != NULL && pub != NULL && ttl > 0 &&
				       tbsp != NULL && tbslenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((x = X509_new()) == NULL)
		return CUSTODY_E_NOMEM;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_set_subject_name(x, subject) != 1 ||
	    X509_set_issuer_name(x, subject) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(not_before + ttl)) ==
		NULL ||
	    X509_set_pubkey(x, pub) != 1) {
		r = crypto_fail("CA certificate fields");
		goto out;
	}
	if ((r = set_serial(x)) != 0 || (r = ca_extensions(x)) != 0 ||
	    (r = set_tbs_sigalg(x, alg)) != 0)
		goto out;
	n = i2d_re_X509_tbs(x, &tbs);
	if ((r = der_copy(n, tbs, "TBSCertificate", tbsp, tbslenp)) != 0)
		goto out;
	r = 0;
out:
	X509_free(x);
	return r;
}

int
cert_csr_tbs(
    const X509_NAME *subject, EVP_PKEY *pub, uint8_t **tbsp, size_t *tbslenp)
{
	X509_REQ *req = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509 *tmp = NULL;
	unsigned char *tbs = NULL;
	int n, i, r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    subject != NULL && pub != NULL && tbsp != NULL && tbslenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	/* the CA extensions, made on a scratch certificate, asked for */
	if ((req = X509_REQ_new()) == NULL || (tmp = X509_new()) == NULL ||
	    X509_set_pubkey(tmp, pub) != 1) {
		r = crypto_fail("certification request");
		goto out;
	}
	if ((r = ca_extensions(tmp)) != 0)
		goto out;
	if ((exts = sk_X509_EXTENSION_new_null()) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	for (i = 0; i < X509_get_ext_count(tmp); i++) {
		int nid = OBJ_obj2nid(
		    X509_EXTENSION_get_object(X509_get_ext(tmp, i)));

		/* the issuer's CA names its own key: no AKI asked for */
		if (nid != NID_authority_key_identifier &&
		    !sk_X509_EXTENSION_push(exts, X509_get_ext(tmp, i))) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
	}
	if (X509_REQ_set_version(req, 0) != 1 ||
	    X509_REQ_set_subject_name(req, subject) != 1 ||
	    X509_REQ_set_pubkey(req, pub) != 1 ||
	    X509_REQ_add_extensions(req, exts) != 1) {
		r = crypto_fail("certification request");
		goto out;
	}
	n = i2d_re_X509_REQ_tbs(req, &tbs);
	if ((r = der_copy(n, tbs, "CertificationRequestInfo", tbsp, tbslenp)) !=
	    0)
		goto out;
	r = 0;
out:
	sk_X509_EXTENSION_free(exts); /* tmp owns the extensions */
	X509_free(tmp);
	X509_REQ_free(req);
	return r;
}

int
cert_csr_finish(const uint8_t *tbs, size_t tbslen, enum custody_alg alg,
    const uint8_t *sig, size_t siglen, EVP_PKEY *pub, uint8_t **derp,
    size_t *derlenp)
{
	const uint8_t *p;
	uint8_t *out = NULL;
	size_t total;
	X509_REQ *req = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(tbs != NULL && sig != NULL && pub != NULL &&
				       derp != NULL && derlenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = assemble(tbs, tbslen, alg, sig, siglen, &out, &total)) != 0)
		return r;
	p = out;
	if ((req = d2i_X509_REQ(NULL, &p, (long)total)) == NULL ||
	    p != out + total) {
		r = crypto_fail("the assembled request does not parse");
		goto out;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		log_error_f("the assembled request does not verify with the "
			    "key's public key; withheld");
		r = CUSTODY_E_SIG_VERIFY;
		goto out;
	}
	*derp = out;
	*derlenp = total;
	out = NULL;
	r = 0;
out:
	X509_REQ_free(req);
	free(out);
	return r;
}

int
cert_ca_check(const uint8_t *pem, size_t len, EVP_PKEY *pub, int64_t now,
    STACK_OF(X509) * *certsp, char *why, size_t whysz)
{
	STACK_OF(X509) *certs = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *x, *last;
	BIO *b = NULL;
	int i, n, r;
	time_t t = (time_t)now;

	CUSTODY_RETURN_VAL_IF_FAIL(pem != NULL && pub != NULL && certsp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (why != NULL && whysz > 0)
		why[0] = '\0';
	if (len > CERT_CHAIN_MAX)
		return say(why, whysz, CUSTODY_E_TOO_LARGE,
		    "certificates of more than %u bytes", CERT_CHAIN_MAX);
	if ((certs = sk_X509_new_null()) == NULL ||
	    (b = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (sk_X509_num(certs) == CERT_CHAIN_CERTS ||
		    !sk_X509_push(certs, x)) {
			X509_free(x);
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "more than %d certificates", CERT_CHAIN_CERTS);
			goto out;
		}
	/* the reading ends at the end of the text, not at a block that
	 * does not parse (what follows it would be dropped unseen) */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		r = say(why, whysz, CUSTODY_E_PARSE,
		    "certificate %d does not parse", sk_X509_num(certs) + 1);
		goto out;
	}
	ERR_clear_error();
	if ((n = sk_X509_num(certs)) == 0) {
		r = say(why, whysz, CUSTODY_E_PARSE,
		    "no PEM CERTIFICATE that parses");
		goto out;
	}
	x = sk_X509_value(certs, 0);
	if (n < 2) {
		r = say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "only one certificate: its issuer must follow it, so that "
		    "its signature can be checked");
		goto out;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(x), pub) != 1) {
		r = say(why, whysz, CUSTODY_E_KEY_MISMATCH,
		    "the first certificate is not for this key");
		goto out;
	}
	if (X509_check_ca(x) != 1 ||
	    !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN)) {
		r = say(why, whysz, CUSTODY_E_INVALID_ARG,
		    "the first certificate is not a CA certificate with "
		    "keyCertSign");
		goto out;
	}
	/* each certificate is signed by the next, and all are valid now */
	for (i = 0; i < n; i++) {
		x = sk_X509_value(certs, i);
		if (X509_cmp_time(X509_get0_notBefore(x), &t) >= 0 ||
		    X509_cmp_time(X509_get0_notAfter(x), &t) <= 0) {
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "certificate %d is not valid now", i + 1);
			goto out;
		}
		if (i + 1 < n && X509_verify(x, X509_get0_pubkey(sk_X509_value(
						    certs, i + 1))) != 1) {
			r = say(why, whysz, CUSTODY_E_SIG_VERIFY,
			    "certificate %d is not signed by certificate %d",
			    i + 1, i + 2);
			goto out;
		}
	}
	/* an issuer at index i has i CA certificates below it (this key's
	 * and those between): its pathLenConstraint must allow them, or no
	 * leaf this key signs would verify */
	for (i = 1; i < n; i++) {
		long pl = X509_get_pathlen(sk_X509_value(certs, i));

		if (pl >= 0 && pl < i) {
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "certificate %d allows %ld CA certificate%s below "
			    "it, not the %d this chain has",
			    i + 1, pl, pl == 1 ? "" : "s", i);
			goto out;
		}
	}
	/* a chain that ends in a root: the whole path, as a verifier would */
	last = sk_X509_value(certs, n - 1);
	if (X509_self_signed(last, 1) == 1) {
		if ((store = X509_STORE_new()) == NULL ||
		    (ctx = X509_STORE_CTX_new()) == NULL ||
		    X509_STORE_add_cert(store, last) != 1 ||
		    X509_STORE_CTX_init(
			ctx, store, sk_X509_value(certs, 0), certs) != 1) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
		X509_STORE_CTX_set_time(ctx, 0, t);
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
		if (X509_verify_cert(ctx) != 1) {
			r = say(why, whysz, CUSTODY_E_INVALID_ARG,
			    "the chain does not verify: %s",
			    X509_verify_cert_error_string(
				X509_STORE_CTX_get_error(ctx)));
			goto out;
		}
	}
	*certsp = certs;
	certs = NULL;
	r = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(certs, X509_free);
	BIO_free(b);
	ERR_clear_error();
	return r;
}

/* ---- small views of certificates ---------------------------------------- */

int
cert_validity(const X509 *x, int64_t *fromp, int64_t *untilp)
{
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(x != NULL, CUSTODY_E_INVALID_ARG);
	if (fromp != NULL && (r = time_of(X509_get0_notBefore(x), fromp)) != 0)
		return r;
	if (untilp != NULL && (r = time_of(X509_get0_notAfter(x), untilp)) != 0)
		return r;
	return 0;
}

int
cert_serial_hex(const X509 *x, char *out, size_t outsz)
{
	BIGNUM *bn;
	char *hex, *p;
	int r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    x != NULL && out != NULL && outsz > 0, CUSTODY_E_INVALID_ARG);
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) ==
		NULL ||
	    (hex = BN_bn2hex(bn)) == NULL) {
		BN_free(bn);
		return CUSTODY_E_NOMEM;
	}
	for (p = hex; *p != '\0'; p++)
		*p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
	if (strlen(hex) >= outsz)
		r = CUSTODY_E_TOO_LARGE;
	else
		strcpy(out, hex);
	OPENSSL_free(hex);
	BN_free(bn);
	return r;
}

char *
cert_pem(const char *label, const uint8_t *der, size_t len)
{
	BIO *b;
	char *data, *out = NULL;
	long n;

	if (label == NULL || der == NULL || len == 0 || len > INT_MAX ||
	    (b = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (PEM_write_bio(b, label, "", der, (long)len) > 0 &&
	    (n = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	return out;
}

int
cert_next_der(const uint8_t **p, const uint8_t *end, X509 **xp)
{
	const uint8_t *q = *p;
	X509 *x;

	if (q >= end)
		return CUSTODY_E_NOT_FOUND;
	if ((x = d2i_X509(NULL, &q, (long)(end - q))) == NULL) {
		ERR_clear_error();
		return CUSTODY_E_PARSE;
	}
	*p = q;
	*xp = x;
	return 0;
}

int
cert_chain_names(const char *spiffe_id, const uint8_t *chain, size_t chainlen,
    char *why, size_t whysz)
{
	const uint8_t *p = chain;
	X509 *x;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    spiffe_id != NULL && (chain != NULL || chainlen == 0),
	    CUSTODY_E_INVALID_ARG);
	while (chainlen > 0 &&
	       (r = cert_next_der(&p, chain + chainlen, &x)) == 0) {
		r = nc_permits(x, spiffe_id, why, whysz);
		X509_free(x);
		if (r != 0)
			return r;
	}
	return 0;
}

int
cert_path_verify(const uint8_t *der, size_t derlen, X509 *ca,
    const uint8_t *chain, size_t chainlen, char *why, size_t whysz)
{
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *leaf = NULL, *x, *anchor = ca;
	const uint8_t *p = der;
	int r = CUSTODY_E_NOMEM;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    der != NULL && ca != NULL && (chain != NULL || chainlen == 0),
	    CUSTODY_E_INVALID_ARG);
	if ((leaf = d2i_X509(NULL, &p, (long)derlen)) == NULL ||
	    (untrusted = sk_X509_new_null()) == NULL ||
	    (store = X509_STORE_new()) == NULL ||
	    (ctx = X509_STORE_CTX_new()) == NULL)
		goto out;
	if (X509_up_ref(ca) != 1 || !sk_X509_push(untrusted, ca)) {
		goto out;
	}
	p = chain;
	while (chainlen > 0 && cert_next_der(&p, chain + chainlen, &x) == 0)
		if (!sk_X509_push(untrusted, x)) {
			X509_free(x);
			goto out;
		}
	/* the top of the chain is the trust anchor; without a root, the
	 * highest certificate given, as a partial chain */
	anchor = sk_X509_value(untrusted, sk_X509_num(untrusted) - 1);
	if (X509_STORE_add_cert(store, anchor) != 1 ||
	    X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1)
		goto out;
	X509_STORE_CTX_set_flags(ctx,
	    X509_V_FLAG_X509_STRICT |
		(X509_self_signed(anchor, 0) == 1 ? 0
						  : X509_V_FLAG_PARTIAL_CHAIN));
	if (X509_verify_cert(ctx) != 1) {
		r = say(why, whysz, CUSTODY_E_STATE,
		    "the certificate does not verify with its chain: %s",
		    X509_verify_cert_error_string(
			X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	r = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(leaf);
	ERR_clear_error();
	return r;
}
