/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of pubkey.c: RFC 8032 and RFC 8037 vectors from tests/data,
 * and keys made by OpenSSL in the test (not by custody). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "err.h"
#include "pubkey.h"
#include "util.h"

/* Value of "name" in a tests/data vector file, as a static string. */
static const char *
vector(const char *file, const char *name)
{
	static char val[512];
	char path[512], line[600];
	size_t n = strlen(name);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", CUSTODY_TEST_DATA, file);
	assert_non_null(f = fopen(path, "r"));
	val[0] = '\0';
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, name, n) == 0 &&
		    (line[n] == ' ' || line[n] == '\0')) {
			snprintf(val, sizeof(val), "%s",
			    line[n] ? line + n + 1 : "");
			fclose(f);
			return val;
		}
	}
	fclose(f);
	fail_msg("%s: no %s", file, name);
	return NULL;
}

static void
hex(const char *s, uint8_t *out, size_t len)
{
	assert_int_equal(util_hex_decode(s, out, len), 0);
}

/* RFC 8032 7.1 TEST 1 verifies; any flipped bit or length change fails. */
static void
test_ed25519_rfc8032(void **state)
{
	uint8_t pub[32], sig[64];
	struct pubkey *pk = NULL;
	size_t i;

	(void)state;
	hex(vector("rfc8032-ed25519-test1.txt", "public"), pub, 32);
	hex(vector("rfc8032-ed25519-test1.txt", "signature"), sig, 64);
	assert_int_equal(
	    pubkey_from_ec_point(CUSTODY_ALG_ED25519, pub, 32, &pk), 0);
	assert_int_equal(pubkey_verify(pk, (const uint8_t *)"", 0, sig, 64), 0);
	for (i = 0; i < 64; i += 7) {
		sig[i] ^= 0x01;
		assert_int_equal(
		    pubkey_verify(pk, (const uint8_t *)"", 0, sig, 64),
		    CUSTODY_E_SIG_VERIFY);
		sig[i] ^= 0x01;
	}
	assert_int_equal(pubkey_verify(pk, (const uint8_t *)"", 0, sig, 63),
	    CUSTODY_E_SIG_VERIFY);
	assert_int_equal(pubkey_verify(pk, (const uint8_t *)"x", 1, sig, 64),
	    CUSTODY_E_SIG_VERIFY);
	pubkey_free(pk);
}

/* RFC 8037 A.3: the thumbprint of the A.2 key. */
static void
test_thumbprint_rfc8037(void **state)
{
	uint8_t pub[32], wrapped[34] = {0x04, 0x20};
	struct pubkey *pk = NULL;
	char *kid = NULL;

	(void)state;
	hex(vector("rfc8037-thumbprint.txt", "public"), pub, 32);
	memcpy(wrapped + 2, pub, 32);
	/* as a token returns it: DER OCTET STRING around the point */
	assert_int_equal(
	    pubkey_from_ec_point(CUSTODY_ALG_ED25519, wrapped, 34, &pk), 0);
	assert_int_equal(pubkey_jwk_thumbprint(pk, &kid), 0);
	assert_string_equal(
	    kid, vector("rfc8037-thumbprint.txt", "thumbprint"));
	free(kid);
	pubkey_free(pk);
}

static void
test_ec_point_rejects(void **state)
{
	uint8_t p[98];
	struct pubkey *pk = NULL;

	(void)state;
	memset(p, 0x04, sizeof(p));
	assert_int_equal(pubkey_from_ec_point(CUSTODY_ALG_ED25519, p, 31, &pk),
	    CUSTODY_E_PARSE);
	assert_int_equal(pubkey_from_ec_point(CUSTODY_ALG_ED25519, p, 35, &pk),
	    CUSTODY_E_PARSE);
	/* right length, not a point on P-256 */
	assert_int_equal(
	    pubkey_from_ec_point(CUSTODY_ALG_ECDSA_P256, p, 65, &pk),
	    CUSTODY_E_PARSE);
	/* compressed points are refused */
	p[0] = 0x02;
	assert_int_equal(
	    pubkey_from_ec_point(CUSTODY_ALG_ECDSA_P256, p, 33, &pk),
	    CUSTODY_E_PARSE);
	assert_int_equal(
	    pubkey_from_ec_point(CUSTODY_ALG_RSA_PSS_3072, p, 65, &pk),
	    CUSTODY_E_INVALID_ARG);
	assert_null(pk);
}

static EVP_PKEY *
ossl_keygen(const char *type, const char *curve, unsigned bits)
{
	EVP_PKEY *k = NULL;

	if (curve != NULL)
		k = EVP_PKEY_Q_keygen(NULL, NULL, type, curve);
	else if (bits != 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, type, (size_t)bits);
	else
		k = EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(k);
	return k;
}

/* An ECDSA signature by OpenSSL, converted to raw r || s by the test. */
static void
ecdsa_raw(EVP_PKEY *k, const EVP_MD *md, const uint8_t *msg, size_t len,
    uint8_t *raw, size_t half)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char der[160];
	const unsigned char *p = der;
	size_t dlen = sizeof(der);
	const BIGNUM *r, *s;
	ECDSA_SIG *es;

	assert_int_equal(EVP_DigestSignInit(c, NULL, md, NULL, k), 1);
	assert_int_equal(EVP_DigestSign(c, der, &dlen, msg, len), 1);
	assert_non_null(es = d2i_ECDSA_SIG(NULL, &p, (long)dlen));
	ECDSA_SIG_get0(es, &r, &s);
	assert_true(BN_bn2binpad(r, raw, (int)half) > 0);
	assert_true(BN_bn2binpad(s, raw + half, (int)half) > 0);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(c);
}

static void
check_ecdsa(
    enum custody_alg alg, const char *curve, const EVP_MD *md, size_t half)
{
	const uint8_t msg[] = "custody";
	EVP_PKEY *k = ossl_keygen("EC", curve, 0);
	uint8_t point[200], raw[96], *der = NULL, *spki = NULL;
	size_t plen = 0, dlen, slen = 0;
	struct pubkey *pk = NULL, *pk2 = NULL;
	unsigned char *ref = NULL;
	int reflen;

	assert_true(EVP_PKEY_get_octet_string_param(
	    k, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &plen));
	assert_int_equal(pubkey_from_ec_point(alg, point, plen, &pk), 0);
	ecdsa_raw(k, md, msg, sizeof(msg), raw, half);
	assert_int_equal(pubkey_verify(pk, msg, sizeof(msg), raw, 2 * half), 0);
	raw[3] ^= 0x80;
	assert_int_equal(pubkey_verify(pk, msg, sizeof(msg), raw, 2 * half),
	    CUSTODY_E_SIG_VERIFY);
	/* SPKI is what OpenSSL itself writes, and parses back */
	assert_int_equal(pubkey_spki(pk, &spki, &slen), 0);
	assert_true((reflen = i2d_PUBKEY(k, &ref)) > 0);
	assert_int_equal(slen, (size_t)reflen);
	assert_memory_equal(spki, ref, slen);
	assert_int_equal(pubkey_from_spki(alg, spki, slen, &pk2), 0);
	assert_int_equal(pubkey_from_spki(alg == CUSTODY_ALG_ECDSA_P256
					      ? CUSTODY_ALG_ECDSA_P384
					      : CUSTODY_ALG_ECDSA_P256,
			     spki, slen, &pk2 + 0 == NULL ? NULL : &pk2),
	    CUSTODY_E_PARSE);
	/* raw to DER keeps the numbers */
	raw[3] ^= 0x80;
	assert_int_equal(
	    pubkey_ecdsa_raw_to_der(raw, 2 * half, &der, &dlen), 0);
	assert_true(dlen > 2 * half);
	free(der);
	free(spki);
	OPENSSL_free(ref);
	pubkey_free(pk);
	pubkey_free(pk2);
	EVP_PKEY_free(k);
}

static void
test_ecdsa_p256(void **state)
{
	(void)state;
	check_ecdsa(CUSTODY_ALG_ECDSA_P256, "P-256", EVP_sha256(), 32);
}

static void
test_ecdsa_p384(void **state)
{
	(void)state;
	check_ecdsa(CUSTODY_ALG_ECDSA_P384, "P-384", EVP_sha384(), 48);
}

static void
test_spki_trailing_and_garbage(void **state)
{
	EVP_PKEY *k = ossl_keygen("ED25519", NULL, 0);
	unsigned char *der = NULL;
	uint8_t buf[128];
	struct pubkey *pk = NULL;
	int n;

	(void)state;
	assert_true((n = i2d_PUBKEY(k, &der)) > 0);
	memcpy(buf, der, (size_t)n);
	buf[n] = 0;
	assert_int_equal(
	    pubkey_from_spki(CUSTODY_ALG_ED25519, buf, (size_t)n + 1, &pk),
	    CUSTODY_E_PARSE);
	assert_int_equal(
	    pubkey_from_spki(CUSTODY_ALG_ED25519, buf, (size_t)n - 1, &pk),
	    CUSTODY_E_PARSE);
	assert_int_equal(
	    pubkey_from_spki(CUSTODY_ALG_ECDSA_P256, buf, (size_t)n, &pk),
	    CUSTODY_E_PARSE);
	assert_int_equal(
	    pubkey_from_spki(CUSTODY_ALG_ED25519, buf, (size_t)n, &pk), 0);
	pubkey_free(pk);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

static void
test_rsa_pss(void **state)
{
	const uint8_t msg[] = "custody rsa";
	EVP_PKEY *k = ossl_keygen("RSA", NULL, 3072), *small;
	BIGNUM *n = NULL, *e = NULL;
	uint8_t nb[512], eb[8], sig[384];
	size_t siglen = sizeof(sig);
	struct pubkey *pk = NULL;
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int nl, el;

	(void)state;
	assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n));
	assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e));
	nl = BN_bn2bin(n, nb);
	el = BN_bn2bin(e, eb);
	assert_int_equal(pubkey_from_rsa(CUSTODY_ALG_RSA_PSS_3072, nb,
			     (size_t)nl, eb, (size_t)el, &pk),
	    0);
	assert_int_equal(EVP_DigestSignInit(c, &pc, EVP_sha256(), NULL, k), 1);
	assert_int_equal(
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32), 1);
	assert_int_equal(EVP_DigestSign(c, sig, &siglen, msg, sizeof(msg)), 1);
	assert_int_equal(siglen, 384);
	assert_int_equal(pubkey_verify(pk, msg, sizeof(msg), sig, siglen), 0);
	sig[100] ^= 1;
	assert_int_equal(pubkey_verify(pk, msg, sizeof(msg), sig, siglen),
	    CUSTODY_E_SIG_VERIFY);
	pubkey_free(pk);
	BN_free(n);
	BN_free(e);
	/* a 2048-bit key is not an rsa-pss-3072 key */
	small = ossl_keygen("RSA", NULL, 2048);
	n = NULL;
	assert_true(EVP_PKEY_get_bn_param(small, OSSL_PKEY_PARAM_RSA_N, &n));
	nl = BN_bn2bin(n, nb);
	pk = NULL;
	assert_int_equal(pubkey_from_rsa(CUSTODY_ALG_RSA_PSS_3072, nb,
			     (size_t)nl, eb, (size_t)el, &pk),
	    CUSTODY_E_PARSE);
	assert_null(pk);
	BN_free(n);
	EVP_PKEY_free(small);
	EVP_PKEY_free(k);
	EVP_MD_CTX_free(c);
}

static void
test_tbs(void **state)
{
	uint8_t out[64];
	const uint8_t *p = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(pubkey_tbs(CUSTODY_ALG_ECDSA_P256,
			     (const uint8_t *)"abc", 3, out, &p, &len),
	    0);
	assert_int_equal(len, 32);
	assert_ptr_equal(p, out);
	/* FIPS 180-2 SHA-256("abc") */
	assert_int_equal(out[0], 0xba);
	assert_int_equal(out[31], 0xad);
	assert_int_equal(pubkey_tbs(CUSTODY_ALG_ECDSA_P384,
			     (const uint8_t *)"abc", 3, out, &p, &len),
	    0);
	assert_int_equal(len, 48);
	assert_int_equal(pubkey_tbs(CUSTODY_ALG_ED25519, (const uint8_t *)"abc",
			     3, out, &p, &len),
	    0);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "abc", 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ed25519_rfc8032),
	    cmocka_unit_test(test_thumbprint_rfc8037),
	    cmocka_unit_test(test_ec_point_rejects),
	    cmocka_unit_test(test_ecdsa_p256),
	    cmocka_unit_test(test_ecdsa_p384),
	    cmocka_unit_test(test_spki_trailing_and_garbage),
	    cmocka_unit_test(test_rsa_pss),
	    cmocka_unit_test(test_tbs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
