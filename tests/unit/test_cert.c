/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cert: CSR checks and certificates assembled around a signature made
 * elsewhere. The CA key here is a software key standing in for the token;
 * every certificate is checked by OpenSSL's X509_verify and by the
 * `openssl verify -x509_strict` command against the CA certificate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cert.h"
#include "err.h"
#include "log.h"
#include "testutil.h"

#define AGENT "spiffe://example.org/agent/a1"

static EVP_PKEY *
keygen(const char *type)
{
	EVP_PKEY *k = NULL;

	if (strcmp(type, "p256") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (strcmp(type, "p384") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	else if (strcmp(type, "p521") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
	else if (strcmp(type, "ed25519") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (strcmp(type, "rsa1024") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	else if (strcmp(type, "rsa2048") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	else if (strcmp(type, "rsa3072") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	assert_non_null(k);
	return k;
}

/* A CSR signed by signer (its key is pub's unless signer differs), with
 * the extensions of conf ("name=value" lines for X509V3_EXT_conf_nid). */
static size_t
make_csr(EVP_PKEY *pub, EVP_PKEY *signer, const char *const *exts, uint8_t *out,
    size_t outsz)
{
	X509_REQ *req;
	STACK_OF(X509_EXTENSION) *sk = NULL;
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	BIO *b;
	char *data;
	long n;
	size_t i;

	assert_non_null(req = X509_REQ_new());
	assert_int_equal(X509_REQ_set_pubkey(req, pub), 1);
	X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_ASC, (const unsigned char *)"agent", -1, -1, 0);
	if (exts != NULL && exts[0] != NULL) {
		assert_non_null(sk = sk_X509_EXTENSION_new_null());
		X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
		for (i = 0; exts[i] != NULL; i += 2) {
			e = X509V3_EXT_conf(NULL, &ctx, exts[i], exts[i + 1]);
			assert_non_null(e);
			sk_X509_EXTENSION_push(sk, e);
		}
		assert_int_equal(X509_REQ_add_extensions(req, sk), 1);
		sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
	}
	assert_true(X509_REQ_sign(req, signer,
			EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519
			    ? NULL
			    : EVP_sha256()) > 0);
	assert_non_null(b = BIO_new(BIO_s_mem()));
	assert_int_equal(PEM_write_bio_X509_REQ(b, req), 1);
	n = BIO_get_mem_data(b, &data);
	assert_true(n > 0 && (size_t)n < outsz);
	memcpy(out, data, (size_t)n);
	BIO_free(b);
	X509_REQ_free(req);
	return (size_t)n;
}

/* A self-signed CA certificate for key, valid from a day ago for days. */
static X509 *
make_ca(EVP_PKEY *key, int days)
{
	X509 *ca;
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	const char *exts[] = {"basicConstraints", "critical,CA:TRUE",
	    "keyUsage", "critical,keyCertSign,cRLSign", "subjectKeyIdentifier",
	    "hash", NULL};
	size_t i;
	EVP_MD_CTX *mctx;
	EVP_PKEY_CTX *pctx = NULL;

	assert_non_null(ca = X509_new());
	X509_set_version(ca, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(ca), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(ca), "CN",
	    MBSTRING_ASC, (const unsigned char *)"custody test CA", -1, -1, 0);
	X509_set_issuer_name(ca, X509_get_subject_name(ca));
	X509_gmtime_adj(X509_getm_notBefore(ca), -86400);
	X509_gmtime_adj(X509_getm_notAfter(ca), (long)days * 86400);
	X509_set_pubkey(ca, key);
	X509V3_set_ctx(&ctx, ca, ca, NULL, NULL, 0);
	for (i = 0; exts[i] != NULL; i += 2) {
		assert_non_null(
		    e = X509V3_EXT_conf(NULL, &ctx, exts[i], exts[i + 1]));
		X509_add_ext(ca, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_non_null(mctx = EVP_MD_CTX_new());
	assert_int_equal(
	    EVP_DigestSignInit(mctx, &pctx,
		EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL
							      : EVP_sha256(),
		NULL, key),
	    1);
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
	}
	assert_true(X509_sign_ctx(ca, mctx) > 0);
	EVP_MD_CTX_free(mctx);
	return ca;
}

/* Sign msg as the token would: raw r||s for ECDSA, PSS salt 32 for RSA. */
static size_t
token_like_sign(EVP_PKEY *key, enum custody_alg alg, const uint8_t *msg,
    size_t len, uint8_t *out)
{
	EVP_MD_CTX *mctx;
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t der[1024];
	const uint8_t *p = der;
	size_t dlen = sizeof(der), half;
	ECDSA_SIG *es;
	const BIGNUM *r, *s;

	assert_non_null(mctx = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestSignInit(mctx, &pctx,
			     alg == CUSTODY_ALG_ED25519	     ? NULL
			     : alg == CUSTODY_ALG_ECDSA_P384 ? EVP_sha384()
							     : EVP_sha256(),
			     NULL, key),
	    1);
	if (alg == CUSTODY_ALG_RSA_PSS_3072) {
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256());
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
	}
	assert_int_equal(EVP_DigestSign(mctx, der, &dlen, msg, len), 1);
	EVP_MD_CTX_free(mctx);
	if (alg != CUSTODY_ALG_ECDSA_P256 && alg != CUSTODY_ALG_ECDSA_P384) {
		memcpy(out, der, dlen);
		return dlen;
	}
	half = alg == CUSTODY_ALG_ECDSA_P256 ? 32 : 48;
	assert_non_null(es = d2i_ECDSA_SIG(NULL, &p, (long)dlen));
	ECDSA_SIG_get0(es, &r, &s);
	BN_bn2binpad(r, out, (int)half);
	BN_bn2binpad(s, out + half, (int)half);
	ECDSA_SIG_free(es);
	return 2 * half;
}

static void
write_pem(const char *path, X509 *x)
{
	FILE *f;

	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
}

/* Issue a leaf for a CSR of csr_type under a CA of ca_type; check it. */
static void
issue_and_check(const char *ca_type, enum custody_alg alg, const char *csr_type,
    const char *want_type)
{
	EVP_PKEY *cakey = keygen(ca_type), *leafkey = keygen(csr_type);
	X509 *ca = make_ca(cakey, 30), *x = NULL, *got;
	struct cert_csr *csr = NULL;
	struct cert_leaf leaf = {AGENT, 0, 3600,
	    CERT_EKU_CLIENT_AUTH | CERT_EKU_SERVER_AUTH,
	    CERT_KU_DIGITAL_SIGNATURE};
	const char *exts[] = {"subjectAltName", "URI:" AGENT, NULL};
	uint8_t pem[8192], *tbs = NULL, sig[1024], *der = NULL;
	const uint8_t *p;
	size_t n, tbslen, siglen, derlen;
	char dir[] = "/tmp/test_cert.XXXXXX", cmd[512], path[300];
	GENERAL_NAMES *gens;
	BASIC_CONSTRAINTS *bc;
	int crit;

	leaf.not_before = (int64_t)time(NULL);
	n = make_csr(leafkey, leafkey, exts, pem, sizeof(pem));
	assert_int_equal(cert_csr_parse(pem, n, AGENT, &csr, NULL, 0), 0);
	assert_string_equal(csr->key_type, want_type);
	assert_int_equal(
	    cert_leaf_tbs(&leaf, csr, ca, alg, &x, &tbs, &tbslen), 0);
	siglen = token_like_sign(cakey, alg, tbs, tbslen, sig);
	assert_int_equal(
	    cert_finish(tbs, tbslen, alg, sig, siglen, cakey, &der, &derlen),
	    0);
	p = der;
	assert_non_null(got = d2i_X509(NULL, &p, (long)derlen));
	assert_int_equal(X509_verify(got, cakey), 1);
	/* the extensions custody chose, and nothing from the CSR but its key
	 */
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(got), leafkey), 1);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(got)), 0);
	assert_int_equal(X509_get_ext_count(got), 6);
	assert_non_null(
	    bc = X509_get_ext_d2i(got, NID_basic_constraints, &crit, NULL));
	assert_int_equal(crit, 1);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_non_null(
	    gens = X509_get_ext_d2i(got, NID_subject_alt_name, &crit, NULL));
	assert_int_equal(crit, 1);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	GENERAL_NAMES_free(gens);
	assert_int_equal(X509_get_key_usage(got), KU_DIGITAL_SIGNATURE);
	assert_int_equal(
	    X509_get_extended_key_usage(got), XKU_SSL_CLIENT | XKU_SSL_SERVER);
	assert_int_equal(ASN1_STRING_cmp(X509_get0_authority_key_id(got),
			     X509_get0_subject_key_id(ca)),
	    0);
	{
		BIGNUM *bn =
		    ASN1_INTEGER_to_BN(X509_get0_serialNumber(got), NULL);

		assert_true(BN_num_bits(bn) > 64);
		BN_free(bn);
	}
	/* and by the openssl command, strictly, for a TLS client */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	write_pem(path, ca);
	snprintf(path, sizeof(path), "%s/leaf.pem", dir);
	write_pem(path, got);
	snprintf(cmd, sizeof(cmd),
	    "openssl verify -x509_strict -purpose sslclient -CAfile %s/ca.pem "
	    "%s/leaf.pem >/dev/null",
	    dir, dir);
	assert_int_equal(system(cmd), 0);
	testutil_rmtree(dir);
	X509_free(got);
	free(der);
	free(tbs);
	X509_free(x);
	cert_csr_free(csr);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(leafkey);
}

static void
test_issue_p256(void **state)
{
	(void)state;
	issue_and_check("p256", CUSTODY_ALG_ECDSA_P256, "p256", "ecdsa-p256");
	issue_and_check("p256", CUSTODY_ALG_ECDSA_P256, "ed25519", "ed25519");
}

static void
test_issue_p384_ed25519(void **state)
{
	(void)state;
	issue_and_check("p384", CUSTODY_ALG_ECDSA_P384, "p384", "ecdsa-p384");
	issue_and_check("ed25519", CUSTODY_ALG_ED25519, "p256", "ecdsa-p256");
}

static void
test_issue_rsa_pss(void **state)
{
	(void)state;
	issue_and_check(
	    "rsa3072", CUSTODY_ALG_RSA_PSS_3072, "rsa2048", "rsa-2048");
}

/* One CSR that must be refused with r and a reason mentioning what. */
static void
refused(const uint8_t *in, size_t len, int r, const char *what)
{
	struct cert_csr *csr = NULL;
	char why[256];

	assert_int_equal(
	    cert_csr_parse(in, len, AGENT, &csr, why, sizeof(why)), r);
	assert_null(csr);
	if (strstr(why, what) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", why, what);
}

static void
refused_exts(const char *const *exts, const char *what)
{
	EVP_PKEY *k = keygen("p256");
	uint8_t pem[8192];
	size_t n = make_csr(k, k, exts, pem, sizeof(pem));

	refused(pem, n, CUSTODY_E_INVALID_ARG, what);
	EVP_PKEY_free(k);
}

static void
test_csr_extensions_refused(void **state)
{
	const char *ca[] = {"basicConstraints", "CA:TRUE", NULL};
	const char *ca_crit[] = {"basicConstraints", "critical,CA:TRUE", NULL};
	const char *pathlen[] = {
	    "basicConstraints", "CA:FALSE,pathlen:0", NULL};
	const char *kcs[] = {"keyUsage", "digitalSignature,keyCertSign", NULL};
	const char *crl[] = {"keyUsage", "cRLSign", NULL};
	const char *eku[] = {
	    "extendedKeyUsage", "clientAuth,codeSigning", NULL};
	const char *any[] = {"extendedKeyUsage", "anyExtendedKeyUsage", NULL};
	const char *other[] = {
	    "subjectAltName", "URI:spiffe://example.org/agent/a2", NULL};
	const char *two[] = {
	    "subjectAltName", "URI:" AGENT ",DNS:evil.example", NULL};
	const char *dns[] = {"subjectAltName", "DNS:a1.example.org", NULL};
	const char *nc[] = {
	    "nameConstraints", "permitted;DNS:example.org", NULL};
	const char *unknown[] = {"1.2.3.4.5", "critical,ASN1:NULL", NULL};
	const char *extra[] = {"1.2.3.4.5", "ASN1:NULL", NULL};
	const char *dup[] = {"subjectAltName", "URI:" AGENT, "subjectAltName",
	    "URI:" AGENT, NULL};

	(void)state;
	refused_exts(ca, "CA certificate");
	refused_exts(ca_crit, "CA certificate");
	refused_exts(pathlen, "CA certificate");
	refused_exts(kcs, "keyCertSign");
	refused_exts(crl, "cRLSign");
	refused_exts(eku, "extKeyUsage");
	refused_exts(any, "extKeyUsage");
	refused_exts(other, "SPIFFE ID");
	refused_exts(two, "SPIFFE ID");
	refused_exts(dns, "SPIFFE ID");
	refused_exts(nc, "does not grant");
	refused_exts(unknown, "critical extension 1.2.3.4.5");
	refused_exts(extra, "extension 1.2.3.4.5");
	refused_exts(dup, "named twice");
}

static void
test_csr_keys_refused(void **state)
{
	const char *types[][2] = {
	    {"rsa1024", "1024 bits"}, {"p521", "secp521r1"}};
	EVP_PKEY *k, *other;
	uint8_t pem[8192];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		k = keygen(types[i][0]);
		n = make_csr(k, k, NULL, pem, sizeof(pem));
		refused(pem, n, CUSTODY_E_INVALID_ARG, types[i][1]);
		EVP_PKEY_free(k);
	}
	/* a key the requester does not hold: signed by another */
	k = keygen("p256");
	other = keygen("p256");
	n = make_csr(k, other, NULL, pem, sizeof(pem));
	refused(pem, n, CUSTODY_E_SIG_VERIFY, "does not verify");
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void
test_csr_malformed(void **state)
{
	EVP_PKEY *k = keygen("p256");
	uint8_t pem[8192], big[CERT_CSR_MAX + 1], two[16384];
	const char *garbage = "-----BEGIN CERTIFICATE REQUEST-----\n"
			      "bm90IGEgcmVxdWVzdA==\n"
			      "-----END CERTIFICATE REQUEST-----\n";
	const char *cert = "-----BEGIN CERTIFICATE-----\nAAAA\n"
			   "-----END CERTIFICATE-----\n";
	size_t n = make_csr(k, k, NULL, pem, sizeof(pem));
	struct cert_csr *csr = NULL;

	(void)state;
	/* the request itself is fine, as PEM and as DER */
	assert_int_equal(cert_csr_parse(pem, n, AGENT, &csr, NULL, 0), 0);
	cert_csr_free(csr);
	refused((const uint8_t *)garbage, strlen(garbage), CUSTODY_E_PARSE,
	    "PKCS#10");
	refused((const uint8_t *)cert, strlen(cert), CUSTODY_E_PARSE,
	    "not a CERTIFICATE REQUEST");
	refused((const uint8_t *)"\x30\x03\x02\x01\x01", 5, CUSTODY_E_PARSE,
	    "PKCS#10");
	refused((const uint8_t *)"", 0, CUSTODY_E_PARSE, "PKCS#10");
	memset(big, 'A', sizeof(big));
	refused(big, sizeof(big), CUSTODY_E_TOO_LARGE, "more than");
	/* two requests in one */
	memcpy(two, pem, n);
	memcpy(two + n, pem, n);
	refused(two, 2 * n, CUSTODY_E_PARSE, "after the request");
	/* truncated */
	refused(pem, n / 2, CUSTODY_E_PARSE, "PEM");
	EVP_PKEY_free(k);
}

/* A validity past the CA's end is cut there; a CA not yet or no longer
 * valid issues nothing; a signature that does not verify is withheld. */
static void
test_validity_and_withheld(void **state)
{
	EVP_PKEY *cakey = keygen("p256"), *leafkey = keygen("p256"),
		 *wrong = keygen("p256");
	X509 *ca = make_ca(cakey, 1), *x = NULL;
	struct cert_csr *csr = NULL;
	struct cert_leaf leaf = {AGENT, 0, 7 * 86400, CERT_EKU_CLIENT_AUTH,
	    CERT_KU_DIGITAL_SIGNATURE};
	uint8_t pem[8192], *tbs = NULL, sig[256], *der = NULL;
	size_t n, tbslen, siglen, derlen;

	(void)state;
	leaf.not_before = (int64_t)time(NULL);
	n = make_csr(leafkey, leafkey, NULL, pem, sizeof(pem));
	assert_int_equal(cert_csr_parse(pem, n, AGENT, &csr, NULL, 0), 0);
	assert_int_equal(cert_leaf_tbs(&leaf, csr, ca, CUSTODY_ALG_ECDSA_P256,
			     &x, &tbs, &tbslen),
	    0);
	assert_int_equal(
	    ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)),
	    0);
	/* signed by another key: withheld */
	siglen =
	    token_like_sign(wrong, CUSTODY_ALG_ECDSA_P256, tbs, tbslen, sig);
	assert_int_equal(cert_finish(tbs, tbslen, CUSTODY_ALG_ECDSA_P256, sig,
			     siglen, cakey, &der, &derlen),
	    CUSTODY_E_SIG_VERIFY);
	assert_int_equal(cert_finish(tbs, tbslen, CUSTODY_ALG_ECDSA_P256, sig,
			     siglen - 1, cakey, &der, &derlen),
	    CUSTODY_E_SIG_VERIFY);
	free(tbs);
	X509_free(x);
	x = NULL;
	leaf.not_before += 2 * 86400; /* after the CA's end */
	assert_int_equal(cert_leaf_tbs(&leaf, csr, ca, CUSTODY_ALG_ECDSA_P256,
			     &x, &tbs, &tbslen),
	    CUSTODY_E_STATE);
	leaf.not_before -= 3 * 86400 + 60; /* before its start */
	assert_int_equal(cert_leaf_tbs(&leaf, csr, ca, CUSTODY_ALG_ECDSA_P256,
			     &x, &tbs, &tbslen),
	    CUSTODY_E_STATE);
	cert_csr_free(csr);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(leafkey);
	EVP_PKEY_free(wrong);
}

static void
test_name_parse(void **state)
{
	const char *bad[] = {"", "CN", "CN=", "XX=a", "cn=a", "CN=a\\,b",
	    "CN=a+O=b", "CN=a;O=b", "CN=\"a\"", "CN=#00", "CN=a,,O=b", ",CN=a",
	    "CN=a,", "C=GBR", "CN= a", "CN=a ", "CN=a\nO=b",
	    "CN=0123456789012345678901234567890123456789012345678901234567890"
	    "1234",
	    "CN=a,O=b,OU=c,L=d,ST=e,DC=f,DC=g,DC=h,DC=i", NULL};
	X509_NAME *name = NULL;
	char why[256], out[256];
	BIO *b;
	size_t i;
	int n;

	(void)state;
	assert_int_equal(cert_name_parse("CN=custody CA,O=Example Org,C=GB",
			     &name, why, sizeof(why)),
	    0);
	/* DER order is the reverse of RFC 4514's: C first */
	assert_int_equal(X509_NAME_entry_count(name), 3);
	assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(
			     X509_NAME_get_entry(name, 0))),
	    NID_countryName);
	assert_non_null(b = BIO_new(BIO_s_mem()));
	X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
	n = BIO_read(b, out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	assert_string_equal(out, "CN=custody CA,O=Example Org,C=GB");
	BIO_free(b);
	X509_NAME_free(name);
	for (i = 0; bad[i] != NULL; i++) {
		name = NULL;
		if (cert_name_parse(bad[i], &name, why, sizeof(why)) !=
		    CUSTODY_E_INVALID_ARG)
			fail_msg("subject \"%s\" was not refused", bad[i]);
		assert_null(name);
		assert_true(why[0] != '\0');
	}
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void
write_key(const char *path, EVP_PKEY *k)
{
	FILE *f;

	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(
	    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
}

/* A self-signed CA certificate made as custody makes it, "in the token". */
static X509 *
custody_ca(EVP_PKEY *key, enum custody_alg alg, const char *subject,
    int64_t from, int64_t ttl)
{
	X509_NAME *name = NULL;
	uint8_t *tbs = NULL, sig[1024], *der = NULL;
	const uint8_t *p;
	size_t tbslen, siglen, derlen;
	X509 *x;

	assert_int_equal(cert_name_parse(subject, &name, NULL, 0), 0);
	assert_int_equal(
	    cert_ca_tbs(name, from, ttl, key, alg, &tbs, &tbslen), 0);
	siglen = token_like_sign(key, alg, tbs, tbslen, sig);
	assert_int_equal(
	    cert_finish(tbs, tbslen, alg, sig, siglen, key, &der, &derlen), 0);
	p = der;
	assert_non_null(x = d2i_X509(NULL, &p, (long)derlen));
	free(der);
	free(tbs);
	X509_NAME_free(name);
	return x;
}

/* custody's self-signed CA: openssl verifies it strictly, and a leaf it
 * issues, for each algorithm of the token */
static void
test_ca_self_signed(void **state)
{
	const struct {
		const char *type;
		enum custody_alg alg;
	} cas[] = {{"p256", CUSTODY_ALG_ECDSA_P256},
	    {"p384", CUSTODY_ALG_ECDSA_P384}, {"ed25519", CUSTODY_ALG_ED25519},
	    {"rsa3072", CUSTODY_ALG_RSA_PSS_3072}};
	char dir[] = "/tmp/test_cert.XXXXXX", path[300];
	EVP_PKEY *key, *leafkey = keygen("p256");
	struct cert_leaf leaf = {
	    AGENT, 0, 3600, CERT_EKU_CLIENT_AUTH, CERT_KU_DIGITAL_SIGNATURE};
	struct cert_csr *csr = NULL;
	uint8_t pem[8192], *tbs = NULL, sig[1024], *der = NULL;
	const uint8_t *p;
	size_t i, n, tbslen, siglen, derlen;
	X509 *ca, *x = NULL, *got;

	(void)state;
	assert_non_null(mkdtemp(dir));
	leaf.not_before = (int64_t)time(NULL);
	n = make_csr(leafkey, leafkey, NULL, pem, sizeof(pem));
	assert_int_equal(cert_csr_parse(pem, n, AGENT, &csr, NULL, 0), 0);
	for (i = 0; i < sizeof(cas) / sizeof(cas[0]); i++) {
		key = keygen(cas[i].type);
		ca = custody_ca(key, cas[i].alg, "CN=custody CA,O=Example",
		    leaf.not_before - 60, 30 * 86400);
		assert_int_equal(X509_check_ca(ca), 1);
		assert_int_equal(X509_get_key_usage(ca),
		    KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN);
		assert_int_equal(X509_get_pathlen(ca), 0);
		snprintf(path, sizeof(path), "%s/ca.pem", dir);
		write_pem(path, ca);
		assert_int_equal(cert_leaf_tbs(&leaf, csr, ca, cas[i].alg, &x,
				     &tbs, &tbslen),
		    0);
		siglen = token_like_sign(key, cas[i].alg, tbs, tbslen, sig);
		assert_int_equal(cert_finish(tbs, tbslen, cas[i].alg, sig,
				     siglen, key, &der, &derlen),
		    0);
		p = der;
		assert_non_null(got = d2i_X509(NULL, &p, (long)derlen));
		snprintf(path, sizeof(path), "%s/leaf.pem", dir);
		write_pem(path, got);
		assert_int_equal(run("openssl verify -x509_strict -CAfile "
				     "%s/ca.pem %s/ca.pem >/dev/null && "
				     "openssl verify -x509_strict -purpose "
				     "sslclient -CAfile %s/ca.pem %s/leaf.pem "
				     ">/dev/null",
				     dir, dir, dir, dir),
		    0);
		X509_free(got);
		X509_free(x);
		x = NULL;
		free(der);
		free(tbs);
		X509_free(ca);
		EVP_PKEY_free(key);
	}
	cert_csr_free(csr);
	EVP_PKEY_free(leafkey);
	testutil_rmtree(dir);
}

/* A CSR for an external CA, signed by the openssl command as a root CA
 * would; its answer with the root is accepted, wrong answers are not. */
static void
test_ca_csr_and_import(void **state)
{
	char dir[] = "/tmp/test_cert.XXXXXX", path[300], why[256];
	EVP_PKEY *key = keygen("p256"), *rootkey = keygen("p384"),
		 *other = keygen("p256");
	X509 *root;
	X509_NAME *name = NULL;
	STACK_OF(X509) *certs = NULL;
	uint8_t *tbs = NULL, sig[256], *der = NULL, *buf = NULL;
	size_t tbslen, siglen, derlen, len;
	int64_t now = (int64_t)time(NULL);
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(
	    cert_name_parse("CN=custody issuing CA,O=Example", &name, NULL, 0),
	    0);
	assert_int_equal(cert_csr_tbs(name, key, &tbs, &tbslen), 0);
	siglen = token_like_sign(key, CUSTODY_ALG_ECDSA_P256, tbs, tbslen, sig);
	assert_int_equal(cert_csr_finish(tbs, tbslen, CUSTODY_ALG_ECDSA_P256,
			     sig, siglen, key, &der, &derlen),
	    0);
	/* signed by another key: withheld */
	assert_int_equal(cert_csr_finish(tbs, tbslen, CUSTODY_ALG_ECDSA_P256,
			     sig, siglen, other, &buf, &len),
	    CUSTODY_E_SIG_VERIFY);
	snprintf(path, sizeof(path), "%s/csr.der", dir);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(der, 1, derlen, f), derlen);
	fclose(f);
	root = make_ca(rootkey, 3650);
	snprintf(path, sizeof(path), "%s/root.pem", dir);
	write_pem(path, root);
	snprintf(path, sizeof(path), "%s/root.key", dir);
	write_key(path, rootkey);
	/* the external CA: openssl, copying the CA extensions asked for */
	assert_int_equal(
	    run("cd %s && openssl req -inform DER -in csr.der -verify -noout "
		"2>/dev/null && openssl x509 -req -inform DER -in csr.der "
		"-CA root.pem -CAkey root.key -copy_extensions copyall "
		"-days 30 -out int.pem 2>/dev/null && cat int.pem root.pem "
		">chain.pem && cat root.pem int.pem >reversed.pem && "
		"openssl verify -x509_strict -CAfile root.pem int.pem "
		">/dev/null",
		dir),
	    0);
	/* now: after openssl made the certificates (their notBefore is the
	 * second they were made, later than the test's start on a slow run) */
	now = (int64_t)time(NULL);
	snprintf(path, sizeof(path), "%s/chain.pem", dir);
	assert_non_null(buf = (uint8_t *)testutil_read_file(path, &len));
	assert_int_equal(
	    cert_ca_check(buf, len, key, now, &certs, why, sizeof(why)), 0);
	assert_int_equal(sk_X509_num(certs), 2);
	sk_X509_pop_free(certs, X509_free);
	certs = NULL;
	/* the answer alone: its signature cannot be checked */
	snprintf(path, sizeof(path), "%s/int.pem", dir);
	free(buf);
	assert_non_null(buf = (uint8_t *)testutil_read_file(path, &len));
	assert_int_equal(
	    cert_ca_check(buf, len, key, now, &certs, why, sizeof(why)),
	    CUSTODY_E_INVALID_ARG);
	assert_non_null(strstr(why, "only one certificate"));
	assert_null(certs);
	/* a block that does not parse after it: refused, not dropped */
	{
		char *bad = malloc(len + 80);

		assert_non_null(bad);
		memcpy(bad, buf, len);
		strcpy(bad + len, "-----BEGIN CERTIFICATE-----\nAAAA\n"
				  "-----END CERTIFICATE-----\n");
		assert_int_equal(
		    cert_ca_check((const uint8_t *)bad, strlen(bad), key, now,
			&certs, why, sizeof(why)),
		    CUSTODY_E_PARSE);
		assert_non_null(strstr(why, "certificate 2 does not parse"));
		free(bad);
	}
	snprintf(path, sizeof(path), "%s/chain.pem", dir);
	free(buf);
	assert_non_null(buf = (uint8_t *)testutil_read_file(path, &len));
	/* for another key */
	assert_int_equal(
	    cert_ca_check(buf, len, other, now, &certs, why, sizeof(why)),
	    CUSTODY_E_KEY_MISMATCH);
	/* not yet valid, no longer valid */
	assert_int_equal(
	    cert_ca_check(buf, len, key, now - 86400, &certs, why, sizeof(why)),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(cert_ca_check(buf, len, key, now + 60 * 86400, &certs,
			     why, sizeof(why)),
	    CUSTODY_E_INVALID_ARG);
	/* in the wrong order: the root is not for this key */
	snprintf(path, sizeof(path), "%s/reversed.pem", dir);
	free(buf);
	assert_non_null(buf = (uint8_t *)testutil_read_file(path, &len));
	assert_int_equal(
	    cert_ca_check(buf, len, key, now, &certs, why, sizeof(why)),
	    CUSTODY_E_KEY_MISMATCH);
	assert_null(certs);
	assert_int_equal(cert_ca_check((const uint8_t *)"garbage", 7, key, now,
			     &certs, why, sizeof(why)),
	    CUSTODY_E_PARSE);
	free(buf);
	free(der);
	free(tbs);
	X509_NAME_free(name);
	X509_free(root);
	EVP_PKEY_free(key);
	EVP_PKEY_free(rootkey);
	EVP_PKEY_free(other);
	testutil_rmtree(dir);
}

/* A leaf certificate is no CA; a chain whose links do not sign each other
 * is refused. */
static void
test_ca_check_refusals(void **state)
{
	char dir[] = "/tmp/test_cert.XXXXXX", path[300], why[256];
	EVP_PKEY *key = keygen("p256"), *k2 = keygen("p256");
	struct cert_leaf leaf = {
	    AGENT, 0, 3600, CERT_EKU_CLIENT_AUTH, CERT_KU_DIGITAL_SIGNATURE};
	struct cert_csr *csr = NULL;
	uint8_t pem[8192], *tbs = NULL, sig[256], *der = NULL, *buf = NULL;
	const uint8_t *p;
	size_t n, tbslen, siglen, derlen, len;
	X509 *ca, *ca2, *x = NULL, *got;
	STACK_OF(X509) *certs = NULL;
	int64_t now = (int64_t)time(NULL);

	(void)state;
	assert_non_null(mkdtemp(dir));
	leaf.not_before = now;
	ca = custody_ca(key, CUSTODY_ALG_ECDSA_P256, "CN=a", now - 60, 86400);
	ca2 = custody_ca(k2, CUSTODY_ALG_ECDSA_P256, "CN=b", now - 60, 86400);
	n = make_csr(key, key, NULL, pem, sizeof(pem));
	assert_int_equal(cert_csr_parse(pem, n, AGENT, &csr, NULL, 0), 0);
	/* a leaf for key's own public key, issued by ca2 */
	assert_int_equal(cert_leaf_tbs(&leaf, csr, ca2, CUSTODY_ALG_ECDSA_P256,
			     &x, &tbs, &tbslen),
	    0);
	siglen = token_like_sign(k2, CUSTODY_ALG_ECDSA_P256, tbs, tbslen, sig);
	assert_int_equal(cert_finish(tbs, tbslen, CUSTODY_ALG_ECDSA_P256, sig,
			     siglen, k2, &der, &derlen),
	    0);
	p = der;
	assert_non_null(got = d2i_X509(NULL, &p, (long)derlen));
	snprintf(path, sizeof(path), "%s/leaf.pem", dir);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		PEM_write_X509(f, got);
		PEM_write_X509(f, ca2); /* and its issuer */
		fclose(f);
	}
	assert_non_null(buf = (uint8_t *)testutil_read_file(path, &len));
	assert_int_equal(
	    cert_ca_check(buf, len, key, now, &certs, why, sizeof(why)),
	    CUSTODY_E_INVALID_ARG);
	assert_non_null(strstr(why, "not a CA certificate"));
	free(buf);
	/* key's CA certificate followed by an unrelated root */
	snprintf(path, sizeof(path), "%s/bad.pem", dir);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		PEM_write_X509(f, ca);
		PEM_write_X509(f, ca2);
		fclose(f);
	}
	assert_non_null(buf = (uint8_t *)testutil_read_file(path, &len));
	assert_int_equal(
	    cert_ca_check(buf, len, key, now, &certs, why, sizeof(why)),
	    CUSTODY_E_SIG_VERIFY);
	assert_null(certs);
	free(buf);
	X509_free(got);
	X509_free(x);
	free(der);
	free(tbs);
	cert_csr_free(csr);
	X509_free(ca);
	X509_free(ca2);
	EVP_PKEY_free(key);
	EVP_PKEY_free(k2);
	testutil_rmtree(dir);
}

/* A CSR file made by the openssl command in dir, read back. */
static uint8_t *
openssl_csr(const char *dir, const char *cmds, size_t *lenp)
{
	char path[300];
	uint8_t *buf;

	assert_int_equal(run("cd %s && (%s) >/dev/null 2>&1", dir, cmds), 0);
	snprintf(path, sizeof(path), "%s/r.csr", dir);
	assert_non_null(buf = (uint8_t *)testutil_read_file(path, lenp));
	return buf;
}

/* The encodings and algorithms a request must not use (the review of
 * cert.c found each accepted). */
static void
test_csr_hardening(void **state)
{
	char dir[] = "/tmp/test_cert.XXXXXX";
	uint8_t *buf, pem[8192], der[4096], *p;
	size_t len, n, i;
	EVP_PKEY *k;
	X509_REQ *req;
	int dl;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* explicit curve parameters equal to P-256 */
	buf = openssl_csr(dir,
	    "openssl ecparam -name prime256v1 -param_enc explicit -genkey "
	    "-out e.key && openssl req -new -key e.key -subj /CN=x -out r.csr",
	    &len);
	refused(buf, len, CUSTODY_E_INVALID_ARG, "explicit curve");
	free(buf);
	/* a compressed point */
	buf = openssl_csr(dir,
	    "openssl ecparam -name prime256v1 -genkey -out c0.key && "
	    "openssl ec -in c0.key -conv_form compressed -out c.key && "
	    "openssl req -new -key c.key -subj /CN=x -out r.csr",
	    &len);
	refused(buf, len, CUSTODY_E_INVALID_ARG, "not uncompressed");
	free(buf);
	/* signed with SHA-1 */
	buf = openssl_csr(dir,
	    "openssl req -new -key c0.key -sha1 -subj /CN=x -out r.csr", &len);
	refused(buf, len, CUSTODY_E_INVALID_ARG, "SHA-1");
	free(buf);
	/* an attribute other than extensionRequest */
	buf = openssl_csr(dir,
	    "printf '[req]\ndistinguished_name=dn\nattributes=at\n"
	    "prompt=no\n[dn]\nCN=x\n[at]\nchallengePassword=secret12\n' "
	    ">at.cnf && openssl req -new -key c0.key -config at.cnf "
	    "-out r.csr",
	    &len);
	refused(
	    buf, len, CUSTODY_E_INVALID_ARG, "attribute 1.2.840.113549.1.9.7");
	free(buf);
	/* text before the PEM block: not PEM, not DER either */
	k = keygen("p256");
	n = make_csr(k, k, NULL, pem + 6, sizeof(pem) - 6);
	memcpy(pem, "hello\n", 6);
	refused(pem, n + 6, CUSTODY_E_PARSE, "PKCS#10");
	/* an Ed25519 key of small order (the identity): refused before its
	 * signature is even checked */
	EVP_PKEY_free(k);
	k = keygen("ed25519");
	n = make_csr(k, k, NULL, pem, sizeof(pem));
	{
		BIO *b = BIO_new_mem_buf(pem, (int)n);

		assert_non_null(
		    req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL));
		BIO_free(b);
	}
	p = der;
	assert_true((dl = i2d_X509_REQ(req, &p)) > 0);
	X509_REQ_free(req);
	/* the 32 key bytes follow the SPKI's BIT STRING header 03 21 00 */
	for (i = 0; i + 35 <= (size_t)dl; i++)
		if (der[i] == 0x03 && der[i + 1] == 0x21 && der[i + 2] == 0x00)
			break;
	assert_true(i + 35 <= (size_t)dl);
	memset(der + i + 3, 0, 32);
	der[i + 3] = 0x01;
	refused(der, (size_t)dl, CUSTODY_E_INVALID_ARG, "small order");
	/* p - 1, of order 2 */
	memset(der + i + 3, 0xff, 32);
	der[i + 3] = 0xec;
	der[i + 3 + 31] = 0x7f;
	refused(der, (size_t)dl, CUSTODY_E_INVALID_ARG, "small order");
	EVP_PKEY_free(k);
	testutil_rmtree(dir);
}

/* What the certificate may not be: the CA's own key, a usage the key
 * type cannot have, a name the CA's constraints exclude. */
static void
test_leaf_check(void **state)
{
	EVP_PKEY *cakey = keygen("p256"), *leafkey = keygen("p256");
	X509 *ca = make_ca(cakey, 30), *x = NULL, *nca;
	struct cert_csr *csr = NULL, *own = NULL;
	struct cert_leaf leaf = {AGENT, 0, 3600, CERT_EKU_CLIENT_AUTH,
	    CERT_KU_DIGITAL_SIGNATURE | CERT_KU_KEY_ENCIPHERMENT};
	uint8_t pem[8192], *tbs = NULL;
	size_t n, tbslen;
	unsigned ku = 0;
	char why[256];
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	(void)state;
	leaf.not_before = (int64_t)time(NULL);
	n = make_csr(leafkey, leafkey, NULL, pem, sizeof(pem));
	assert_int_equal(cert_csr_parse(pem, n, AGENT, &csr, NULL, 0), 0);
	/* keyEncipherment is dropped for an EC key */
	assert_int_equal(
	    cert_leaf_check(&leaf, csr, ca, &ku, why, sizeof(why)), 0);
	assert_int_equal(ku, CERT_KU_DIGITAL_SIGNATURE);
	assert_int_equal(cert_leaf_tbs(&leaf, csr, ca, CUSTODY_ALG_ECDSA_P256,
			     &x, &tbs, &tbslen),
	    0);
	{
		ASN1_BIT_STRING *bits =
		    X509_get_ext_d2i(x, NID_key_usage, NULL, NULL);

		assert_non_null(bits);
		assert_true(ASN1_BIT_STRING_get_bit(bits, 0));
		assert_false(ASN1_BIT_STRING_get_bit(bits, 2));
		ASN1_BIT_STRING_free(bits);
	}
	X509_free(x);
	x = NULL;
	free(tbs);
	tbs = NULL;
	/* and nothing left */
	leaf.key_usage = CERT_KU_KEY_ENCIPHERMENT;
	assert_int_equal(cert_leaf_check(&leaf, csr, ca, &ku, why, sizeof(why)),
	    CUSTODY_E_INVALID_ARG);
	assert_non_null(strstr(why, "no key usage"));
	assert_int_equal(cert_leaf_tbs(&leaf, csr, ca, CUSTODY_ALG_ECDSA_P256,
			     &x, &tbs, &tbslen),
	    CUSTODY_E_INVALID_ARG);
	leaf.key_usage = CERT_KU_DIGITAL_SIGNATURE;
	/* the CA's own key */
	n = make_csr(cakey, cakey, NULL, pem, sizeof(pem));
	assert_int_equal(cert_csr_parse(pem, n, AGENT, &own, NULL, 0), 0);
	assert_int_equal(cert_leaf_check(&leaf, own, ca, &ku, why, sizeof(why)),
	    CUSTODY_E_INVALID_ARG);
	assert_non_null(strstr(why, "CA's own"));
	assert_int_equal(cert_leaf_tbs(&leaf, own, ca, CUSTODY_ALG_ECDSA_P256,
			     &x, &tbs, &tbslen),
	    CUSTODY_E_INVALID_ARG);
	/* a CA whose name constraints permit another trust domain only */
	nca = make_ca(cakey, 30);
	X509V3_set_ctx(&ctx, nca, nca, NULL, NULL, 0);
	assert_non_null(e = X509V3_EXT_conf(NULL, &ctx, "nameConstraints",
			    "critical,permitted;URI:.other.org"));
	X509_add_ext(nca, e, -1);
	X509_EXTENSION_free(e);
	assert_int_equal(
	    cert_leaf_check(&leaf, csr, nca, &ku, why, sizeof(why)),
	    CUSTODY_E_STATE);
	assert_non_null(strstr(why, "name constraints"));
	X509_free(nca);
	/* and one that permits the agent's trust domain */
	nca = make_ca(cakey, 30);
	X509V3_set_ctx(&ctx, nca, nca, NULL, NULL, 0);
	assert_non_null(e = X509V3_EXT_conf(NULL, &ctx, "nameConstraints",
			    "critical,permitted;URI:example.org"));
	X509_add_ext(nca, e, -1);
	X509_EXTENSION_free(e);
	assert_int_equal(
	    cert_leaf_check(&leaf, csr, nca, &ku, why, sizeof(why)), 0);
	X509_free(nca);
	cert_csr_free(own);
	cert_csr_free(csr);
	X509_free(ca);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(leafkey);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_issue_p256),
	    cmocka_unit_test(test_issue_p384_ed25519),
	    cmocka_unit_test(test_issue_rsa_pss),
	    cmocka_unit_test(test_csr_extensions_refused),
	    cmocka_unit_test(test_csr_keys_refused),
	    cmocka_unit_test(test_csr_malformed),
	    cmocka_unit_test(test_validity_and_withheld),
	    cmocka_unit_test(test_name_parse),
	    cmocka_unit_test(test_ca_self_signed),
	    cmocka_unit_test(test_ca_csr_and_import),
	    cmocka_unit_test(test_ca_check_refusals),
	    cmocka_unit_test(test_csr_hardening),
	    cmocka_unit_test(test_leaf_check),
	};

	custody_log_set(NULL, getenv("TEST_CERT_LOG") ? 7 : 2, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
