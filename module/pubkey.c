/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "util.h"

struct pubkey {
	enum custody_alg alg;
	EVP_PKEY *pkey;
};

/* The one place where the OpenSSL error queue becomes a custody error. */
static int
crypto_error(const char *func, const char *what)
{
	char buf[256];
	unsigned long e;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		custody_log(3, func, NULL, "%s: %s", what, buf);
	}
	return CUSTODY_E_CRYPTO;
}

static int
pubkey_new(enum custody_alg alg, EVP_PKEY *pkey, struct pubkey **pkp)
{
	struct pubkey *pk;

	if ((pk = calloc(1, sizeof(*pk))) == NULL)
		return CUSTODY_E_NOMEM;
	pk->alg = alg;
	pk->pkey = pkey;
	*pkp = pk;
	return 0;
}

static const char *
curve_name(enum custody_alg alg)
{
	switch (alg) {
	case CUSTODY_ALG_ECDSA_P256:
		return "P-256";
	case CUSTODY_ALG_ECDSA_P384:
		return "P-384";
	default:
		return NULL;
	}
}

static size_t
field_len(enum custody_alg alg)
{
	switch (alg) {
	case CUSTODY_ALG_ED25519:
	case CUSTODY_ALG_ECDSA_P256:
		return 32;
	case CUSTODY_ALG_ECDSA_P384:
		return 48;
	default:
		return 0;
	}
}

/*
 * Accept a DER OCTET STRING around the point (what PKCS#11 specifies) or the
 * raw point (what some older modules return); either way the result must be
 * exactly want bytes.
 */
static int
unwrap_point(const uint8_t *in, size_t len, size_t want, const uint8_t **outp)
{
	if (len == want) {
		*outp = in;
		return 0;
	}
	if (want < 128 && len == want + 2 && in[0] == 0x04 && in[1] == want) {
		*outp = in + 2;
		return 0;
	}
	if (want >= 128 && want < 256 && len == want + 3 && in[0] == 0x04 &&
	    in[1] == 0x81 && in[2] == want) {
		*outp = in + 3;
		return 0;
	}
	return CUSTODY_E_PARSE;
}

int
pubkey_from_ec_point(
    enum custody_alg alg, const uint8_t *point, size_t len, struct pubkey **pkp)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	const uint8_t *raw;
	size_t flen = field_len(alg);
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    point != NULL && pkp != NULL, CUSTODY_E_INVALID_ARG);
	if (flen == 0)
		return CUSTODY_E_INVALID_ARG;
	if (alg == CUSTODY_ALG_ED25519) {
		if ((r = unwrap_point(point, len, flen, &raw)) != 0) {
			log_error_f("Ed25519 point of %zu bytes", len);
			return r;
		}
		pkey = EVP_PKEY_new_raw_public_key(
		    EVP_PKEY_ED25519, NULL, raw, flen);
		if (pkey == NULL)
			return crypto_error(__func__, "Ed25519 public key");
		goto done;
	}
	if ((r = unwrap_point(point, len, 2 * flen + 1, &raw)) != 0 ||
	    raw[0] != 0x04) {
		log_error_f("EC point of %zu bytes is not an uncompressed "
			    "%s point",
		    len, curve_name(alg));
		return CUSTODY_E_PARSE;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(
		bld, OSSL_PKEY_PARAM_GROUP_NAME, curve_name(alg), 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(
		bld, OSSL_PKEY_PARAM_PUB_KEY, raw, 2 * flen + 1) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0) {
		r = crypto_error(__func__, "EC public key");
		goto out;
	}
	/* OpenSSL decodes the point here: a failure is a bad point */
	if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		log_error_f("EC point is not a point of %s", curve_name(alg));
		ERR_clear_error();
		r = CUSTODY_E_PARSE;
		goto out;
	}
	EVP_PKEY_CTX_free(ctx);
	/* fromdata does not check that the point is on the curve */
	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    EVP_PKEY_public_check(ctx) != 1) {
		log_error_f("EC point is not on %s", curve_name(alg));
		ERR_clear_error();
		r = CUSTODY_E_PARSE;
		goto out;
	}
done:
	if ((r = pubkey_new(alg, pkey, pkp)) == 0)
		pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return r;
}

int
pubkey_from_rsa(enum custody_alg alg, const uint8_t *n, size_t nlen,
    const uint8_t *e, size_t elen, struct pubkey **pkp)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	int r = CUSTODY_E_CRYPTO;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    n != NULL && e != NULL && pkp != NULL, CUSTODY_E_INVALID_ARG);
	if (alg != CUSTODY_ALG_RSA_PSS_3072)
		return CUSTODY_E_INVALID_ARG;
	if (nlen > 1024 || elen > 16)
		return CUSTODY_E_PARSE;
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL)
		return crypto_error(__func__, "RSA numbers");
	if (BN_num_bits(bn) != 3072 || !BN_is_odd(be) || BN_is_one(be)) {
		log_error_f("RSA key of %d bits with a bad exponent or size "
			    "(want 3072)",
		    BN_num_bits(bn));
		r = CUSTODY_E_PARSE;
		goto out;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		r = crypto_error(__func__, "RSA public key");
		goto out;
	}
	if ((r = pubkey_new(alg, pkey, pkp)) == 0)
		pkey = NULL;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return r;
}

/* Does pkey have the type, curve and size that alg requires? */
static int
pkey_matches(enum custody_alg alg, EVP_PKEY *pkey)
{
	char group[32];
	size_t glen = 0;

	switch (alg) {
	case CUSTODY_ALG_ED25519:
		return EVP_PKEY_is_a(pkey, "ED25519");
	case CUSTODY_ALG_ECDSA_P256:
	case CUSTODY_ALG_ECDSA_P384:
		if (!EVP_PKEY_is_a(pkey, "EC") ||
		    !EVP_PKEY_get_utf8_string_param(pkey,
			OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
			&glen))
			return 0;
		return strcmp(group, alg == CUSTODY_ALG_ECDSA_P256
					 ? "prime256v1"
					 : "secp384r1") == 0;
	case CUSTODY_ALG_RSA_PSS_3072:
		return EVP_PKEY_is_a(pkey, "RSA") &&
		       EVP_PKEY_get_bits(pkey) == 3072;
	default:
		return 0;
	}
}

int
pubkey_from_spki(
    enum custody_alg alg, const uint8_t *der, size_t len, struct pubkey **pkp)
{
	const unsigned char *p = der;
	EVP_PKEY *pkey;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    der != NULL && pkp != NULL, CUSTODY_E_INVALID_ARG);
	if (len == 0 || len > 4096)
		return CUSTODY_E_PARSE;
	if ((pkey = d2i_PUBKEY(NULL, &p, (long)len)) == NULL) {
		ERR_clear_error();
		log_error_f("SPKI does not parse");
		return CUSTODY_E_PARSE;
	}
	if (p != der + len || !pkey_matches(alg, pkey)) {
		log_error_f("SPKI has trailing bytes or is not an %s key",
		    alg_name(alg));
		EVP_PKEY_free(pkey);
		ERR_clear_error();
		return CUSTODY_E_PARSE;
	}
	if ((r = pubkey_new(alg, pkey, pkp)) != 0)
		EVP_PKEY_free(pkey);
	return r;
}

int
pubkey_from_spki_any(const uint8_t *der, size_t len, struct pubkey **pkp)
{
	const unsigned char *p = der;
	EVP_PKEY *pkey;
	int a, r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    der != NULL && pkp != NULL, CUSTODY_E_INVALID_ARG);
	if (len == 0 || len > 4096 ||
	    (pkey = d2i_PUBKEY(NULL, &p, (long)len)) == NULL) {
		ERR_clear_error();
		return CUSTODY_E_PARSE;
	}
	for (a = 0; a < CUSTODY_ALG_COUNT; a++)
		if (pkey_matches((enum custody_alg)a, pkey))
			break;
	ERR_clear_error();
	if (p != der + len || a == CUSTODY_ALG_COUNT) {
		EVP_PKEY_free(pkey);
		return CUSTODY_E_UNKNOWN_ALG;
	}
	if ((r = pubkey_new((enum custody_alg)a, pkey, pkp)) != 0)
		EVP_PKEY_free(pkey);
	return r;
}

enum custody_alg
pubkey_alg(const struct pubkey *pk)
{
	return pk->alg;
}

int
pubkey_spki(const struct pubkey *pk, uint8_t **derp, size_t *lenp)
{
	unsigned char *der = NULL;
	int n;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    pk != NULL && derp != NULL && lenp != NULL, CUSTODY_E_INVALID_ARG);
	if ((n = i2d_PUBKEY(pk->pkey, &der)) <= 0)
		return crypto_error(__func__, "SPKI encoding");
	/* hand out memory that plain free(3) releases */
	if ((*derp = malloc((size_t)n)) == NULL) {
		OPENSSL_free(der);
		return CUSTODY_E_NOMEM;
	}
	memcpy(*derp, der, (size_t)n);
	OPENSSL_free(der);
	*lenp = (size_t)n;
	return 0;
}

static int
b64u(const uint8_t *in, size_t len, char **outp)
{
	return util_base64url_encode(in, len, outp);
}

static int
bn_b64u(const BIGNUM *bn, size_t padto, char **outp)
{
	uint8_t buf[512];
	int n = BN_num_bytes(bn);

	if (n <= 0 || (size_t)n > sizeof(buf) || (padto && (size_t)n > padto))
		return CUSTODY_E_INTERNAL;
	if (padto == 0)
		padto = (size_t)n;
	if (BN_bn2binpad(bn, buf, (int)padto) < 0)
		return CUSTODY_E_CRYPTO;
	return b64u(buf, padto, outp);
}

/*
 * The members of the JWK in lexicographic order without white space, as
 * RFC 7638 section 3 requires, then SHA-256 and base64url.
 */
int
pubkey_jwk_required(const struct pubkey *pk, char **jsonp)
{
	BIGNUM *a = NULL, *b = NULL;
	char *x = NULL, *y = NULL, *json = NULL;
	uint8_t raw[32];
	size_t rawlen = sizeof(raw);
	int r, n = -1;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    pk != NULL && jsonp != NULL, CUSTODY_E_INVALID_ARG);
	switch (pk->alg) {
	case CUSTODY_ALG_ED25519:
		if (!EVP_PKEY_get_raw_public_key(pk->pkey, raw, &rawlen) ||
		    rawlen != 32) {
			r = crypto_error(__func__, "Ed25519 raw key");
			goto out;
		}
		if ((r = b64u(raw, rawlen, &x)) != 0)
			goto out;
		n = asprintf(&json,
		    "{\"crv\":\"Ed25519\",\"kty\":\"OKP\","
		    "\"x\":\"%s\"}",
		    x);
		break;
	case CUSTODY_ALG_ECDSA_P256:
	case CUSTODY_ALG_ECDSA_P384:
		if (!EVP_PKEY_get_bn_param(
			pk->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
		    !EVP_PKEY_get_bn_param(
			pk->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &b)) {
			r = crypto_error(__func__, "EC coordinates");
			goto out;
		}
		if ((r = bn_b64u(a, field_len(pk->alg), &x)) != 0 ||
		    (r = bn_b64u(b, field_len(pk->alg), &y)) != 0)
			goto out;
		n = asprintf(&json,
		    "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\","
		    "\"y\":\"%s\"}",
		    curve_name(pk->alg), x, y);
		break;
	case CUSTODY_ALG_RSA_PSS_3072:
		if (!EVP_PKEY_get_bn_param(
			pk->pkey, OSSL_PKEY_PARAM_RSA_E, &a) ||
		    !EVP_PKEY_get_bn_param(
			pk->pkey, OSSL_PKEY_PARAM_RSA_N, &b)) {
			r = crypto_error(__func__, "RSA numbers");
			goto out;
		}
		if ((r = bn_b64u(a, 0, &x)) != 0 ||
		    (r = bn_b64u(b, 0, &y)) != 0)
			goto out;
		n = asprintf(
		    &json, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", x, y);
		break;
	default:
		r = CUSTODY_E_INTERNAL;
		goto out;
	}
	if (n < 0) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	*jsonp = json;
	r = 0;
out:
	BN_free(a);
	BN_free(b);
	free(x);
	free(y);
	return r;
}

int
pubkey_jwk_thumbprint(const struct pubkey *pk, char **kidp)
{
	char *json = NULL;
	uint8_t md[32];
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(kidp != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = pubkey_jwk_required(pk, &json)) != 0)
		return r;
	if (!EVP_Digest(json, strlen(json), md, NULL, EVP_sha256(), NULL))
		r = crypto_error(__func__, "SHA-256");
	else
		r = b64u(md, sizeof(md), kidp);
	free(json);
	return r;
}

int
pubkey_tbs(enum custody_alg alg, const uint8_t *msg, size_t len,
    uint8_t out[64], const uint8_t **outp, size_t *outlenp)
{
	const EVP_MD *md;
	unsigned int mdlen = 0;

	switch (alg) {
	case CUSTODY_ALG_ED25519:
	case CUSTODY_ALG_RSA_PSS_3072:
		*outp = msg;
		*outlenp = len;
		return 0;
	case CUSTODY_ALG_ECDSA_P256:
		md = EVP_sha256();
		break;
	case CUSTODY_ALG_ECDSA_P384:
		md = EVP_sha384();
		break;
	default:
		return CUSTODY_E_INVALID_ARG;
	}
	if (!EVP_Digest(msg, len, out, &mdlen, md, NULL))
		return crypto_error(__func__, "digest");
	*outp = out;
	*outlenp = mdlen;
	return 0;
}

int
pubkey_ecdsa_raw_to_der(
    const uint8_t *sig, size_t len, uint8_t **derp, size_t *derlenp)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	unsigned char *der = NULL;
	int n, r = CUSTODY_E_CRYPTO;

	if (len == 0 || len % 2 != 0 || len > 132)
		return CUSTODY_E_PARSE;
	if ((es = ECDSA_SIG_new()) == NULL ||
	    (br = BN_bin2bn(sig, (int)(len / 2), NULL)) == NULL ||
	    (bs = BN_bin2bn(sig + len / 2, (int)(len / 2), NULL)) == NULL ||
	    !ECDSA_SIG_set0(es, br, bs)) {
		r = crypto_error(__func__, "ECDSA signature");
		BN_free(br);
		BN_free(bs);
		goto out;
	}
	if ((n = i2d_ECDSA_SIG(es, &der)) <= 0) {
		r = crypto_error(__func__, "ECDSA signature DER");
		goto out;
	}
	if ((*derp = malloc((size_t)n)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	memcpy(*derp, der, (size_t)n);
	*derlenp = (size_t)n;
	r = 0;
out:
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	return r;
}

int
pubkey_verify(const struct pubkey *pk, const uint8_t *msg, size_t len,
    const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *der = NULL;
	size_t derlen = 0;
	const EVP_MD *md = NULL;
	int r, ok;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    pk != NULL && msg != NULL && sig != NULL, CUSTODY_E_INVALID_ARG);
	if (siglen != alg_sig_len(pk->alg))
		return CUSTODY_E_SIG_VERIFY;
	switch (pk->alg) {
	case CUSTODY_ALG_ECDSA_P256:
		md = EVP_sha256();
		break;
	case CUSTODY_ALG_ECDSA_P384:
		md = EVP_sha384();
		break;
	case CUSTODY_ALG_RSA_PSS_3072:
		md = EVP_sha256();
		break;
	default:
		break; /* Ed25519 hashes inside the algorithm */
	}
	if (md != NULL && pk->alg != CUSTODY_ALG_RSA_PSS_3072) {
		if ((r = pubkey_ecdsa_raw_to_der(sig, siglen, &der, &derlen)) !=
		    0)
			return r;
		sig = der;
		siglen = derlen;
	}
	if ((mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pk->pkey) != 1) {
		r = crypto_error(__func__, "verify init");
		goto out;
	}
	if (pk->alg == CUSTODY_ALG_RSA_PSS_3072 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1)) {
		r = crypto_error(__func__, "PSS parameters");
		goto out;
	}
	ok = EVP_DigestVerify(mctx, sig, siglen, msg, len);
	/* a bad signature also leaves errors on the queue: not a failure */
	ERR_clear_error();
	r = ok == 1 ? 0 : CUSTODY_E_SIG_VERIFY;
out:
	EVP_MD_CTX_free(mctx);
	free(der);
	return r;
}

void
pubkey_free(struct pubkey *pk)
{
	if (pk == NULL)
		return;
	EVP_PKEY_free(pk->pkey);
	free(pk);
}
