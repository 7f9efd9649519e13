/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token module on a real SoftHSM2 token that this test creates in a
 * temporary directory. Signatures are checked by the openssl command, and
 * the token's protection by PKCS#11 calls made here, not by custody.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <dlfcn.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "err.h"
#include "testutil.h"
#include "pubkey.h"
#include "secret.h"
#include "token.h"
#include "util.h"

#define LABEL	 "custody-it"
#define URI	 "pkcs11:token=" LABEL
#define USER_PIN "it-user-pin-0815"
#define SO_PIN	 "it-so-pin-4711"

static char dir[64];
static struct token *tok;
static const uint8_t MSG[] = "custody integration test message";

static struct secret *
pin(const char *s)
{
	struct secret *p = NULL;

	assert_int_equal(secret_from_bytes(s, strlen(s), &p), 0);
	return p;
}

static int
open_token(const char *uri, const char *pinstr, struct token **tp)
{
	struct secret *p = pin(pinstr);
	struct token_opts o = {SOFTHSM2_MODULE, uri, p};
	int r = token_open(&o, tp);

	secret_free(p);
	return r;
}

static void
write_file(const char *name, const void *buf, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int
run(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
setup(void **state)
{
	struct secret *so = pin(SO_PIN), *user = pin(USER_PIN);
	char conf[256], tokens[128];
	FILE *f;

	(void)state;
	if (testutil_mkdtemp("custody-it", dir, sizeof(dir)) != 0)
		return -1;
	snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
	mkdir(tokens, 0700);
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
	if ((f = fopen(conf, "w")) == NULL)
		return -1;
	fprintf(f,
	    "directories.tokendir = %s\nobjectstore.backend = file\n"
	    "log.level = ERROR\nslots.removable = false\n",
	    tokens);
	fclose(f);
	setenv("SOFTHSM2_CONF", conf, 1);
	if (token_init(SOFTHSM2_MODULE, URI, so, user) != 0 ||
	    open_token(URI, USER_PIN, &tok) != 0)
		return -1;
	secret_free(so);
	secret_free(user);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	token_close(tok);
	testutil_rmtree(dir);
	return 0;
}

/* The module's own function list, to check the token behind custody. */
static CK_FUNCTION_LIST *
module_functions(void)
{
	CK_FUNCTION_LIST *f = NULL;
	CK_C_GetFunctionList gfl;
	void *dl = dlopen(SOFTHSM2_MODULE, RTLD_NOW | RTLD_NOLOAD);

	assert_non_null(dl); /* loaded already by the token module */
	*(void **)(&gfl) = dlsym(dl, "C_GetFunctionList");
	assert_non_null(gfl);
	assert_int_equal(gfl(&f), CKR_OK);
	dlclose(dl);
	return f;
}

static CK_SESSION_HANDLE
module_session(CK_FUNCTION_LIST *f)
{
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE s;

	assert_int_equal(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (i = 0; i < n; i++) {
		assert_int_equal(f->C_GetTokenInfo(slots[i], &ti), CKR_OK);
		if (memcmp(ti.label, LABEL, strlen(LABEL)) == 0 &&
		    ti.label[strlen(LABEL)] == ' ')
			break;
	}
	assert_true(i < n);
	/* read-write, so that a refused change is refused for its own sake */
	assert_int_equal(
	    f->C_OpenSession(
		slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
	    CKR_OK);
	return s;
}

static CK_ULONG
module_find(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, const uint8_t *id,
    CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *h)
{
	CK_ATTRIBUTE t[] = {
	    {CKA_ID, (void *)id, TOKEN_ID_LEN}, {CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE hs[4];
	CK_ULONG n = 0;

	assert_int_equal(f->C_FindObjectsInit(s, t, 2), CKR_OK);
	assert_int_equal(f->C_FindObjects(s, hs, 4, &n), CKR_OK);
	assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
	if (n > 0 && h != NULL)
		*h = hs[0];
	return n;
}

/* The openssl command verifies what the token signed. */
static void
openssl_verify(enum custody_alg alg, const struct token_generated *g,
    const uint8_t *sig, size_t siglen)
{
	const char *d = dir;
	uint8_t *der = NULL;
	size_t derlen = 0;
	char cmd[768];

	write_file("pub.der", g->spki, g->spki_len);
	write_file("msg.bin", MSG, sizeof(MSG));
	switch (alg) {
	case CUSTODY_ALG_ED25519:
		write_file("sig.bin", sig, siglen);
		snprintf(cmd, sizeof(cmd),
		    "openssl pkeyutl -verify -pubin "
		    "-inkey %s/pub.der -keyform DER -rawin -in %s/msg.bin "
		    "-sigfile %s/sig.bin",
		    d, d, d);
		break;
	case CUSTODY_ALG_ECDSA_P256:
	case CUSTODY_ALG_ECDSA_P384:
		/* openssl wants DER; JWS (custody's form) is raw r || s */
		assert_int_equal(
		    pubkey_ecdsa_raw_to_der(sig, siglen, &der, &derlen), 0);
		write_file("sig.bin", der, derlen);
		snprintf(cmd, sizeof(cmd),
		    "openssl dgst -%s -verify "
		    "%s/pub.der -keyform DER -signature %s/sig.bin %s/msg.bin",
		    alg == CUSTODY_ALG_ECDSA_P256 ? "sha256" : "sha384", d, d,
		    d);
		break;
	default:
		write_file("sig.bin", sig, siglen);
		snprintf(cmd, sizeof(cmd),
		    "openssl dgst -sha256 -verify "
		    "%s/pub.der -keyform DER -sigopt rsa_padding_mode:pss "
		    "-sigopt rsa_pss_saltlen:32 -sigopt rsa_mgf1_md:sha256 "
		    "-signature %s/sig.bin %s/msg.bin",
		    d, d, d);
		break;
	}
	/* accepted as made; refused once the message changes, which shows
	 * that the check can fail */
	assert_int_equal(run("%s >/dev/null", cmd), 0);
	write_file("msg.bin", "tampered", 8);
	assert_int_not_equal(run("%s >/dev/null 2>&1", cmd), 0);
	free(der);
}

static void
check_alg(enum custody_alg alg)
{
	CK_FUNCTION_LIST *f = module_functions();
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE, v = CK_TRUE;
	struct token_generated *g = NULL;
	struct token_destroy_evidence ev;
	struct token_key *k = NULL;
	uint8_t *sig = NULL;
	size_t siglen = 0;
	CK_ATTRIBUTE secret_attr = {
	    alg == CUSTODY_ALG_RSA_PSS_3072 ? CKA_PRIVATE_EXPONENT : CKA_VALUE,
	    NULL, 0};
	CK_ATTRIBUTE set_extractable = {CKA_EXTRACTABLE, &yes, 1};
	CK_ATTRIBUTE set_sensitive = {CKA_SENSITIVE, &no, 1};
	CK_ATTRIBUTE get_extractable = {CKA_EXTRACTABLE, &v, 1};
	CK_RV rv;

	assert_true(token_supports(tok, alg));
	assert_int_equal(token_generate(tok, alg, "k_", &g), 0);
	assert_int_equal(
	    token_key_open(tok, g->id, alg, g->spki, g->spki_len, &k), 0);
	assert_int_equal(
	    token_sign(tok, k, MSG, sizeof(MSG), &sig, &siglen), 0);
	openssl_verify(alg, g, sig, siglen);
	free(sig);
	sig = NULL;

	/* the token itself, asked directly */
	s = module_session(f);
	assert_int_equal(module_find(f, s, g->id, CKO_PRIVATE_KEY, &h), 1);
	assert_int_equal(module_find(f, s, g->id, CKO_PUBLIC_KEY, NULL), 1);
	rv = f->C_GetAttributeValue(s, h, &secret_attr, 1);
	assert_int_equal(rv, CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(secret_attr.ulValueLen, CK_UNAVAILABLE_INFORMATION);
	/* SoftHSM2: CKA_EXTRACTABLE cannot be set to true (tpm2-pkcs11 lets
	 * the attribute flip; the TPM issue marks this SoftHSM2-only) */
	rv = f->C_SetAttributeValue(s, h, &set_extractable, 1);
	assert_true(
	    rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_ACTION_PROHIBITED);
	rv = f->C_SetAttributeValue(s, h, &set_sensitive, 1);
	assert_true(
	    rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_ACTION_PROHIBITED);
	assert_int_equal(
	    f->C_GetAttributeValue(s, h, &get_extractable, 1), CKR_OK);
	assert_int_equal(v, CK_FALSE);

	/* destroy: both objects gone, and signing fails */
	assert_int_equal(token_destroy(tok, g->id, &ev), 0);
	assert_int_equal(ev.destroyed, 2);
	assert_int_equal(ev.remaining, 0);
	assert_int_equal(module_find(f, s, g->id, CKO_PRIVATE_KEY, NULL), 0);
	assert_int_equal(module_find(f, s, g->id, CKO_PUBLIC_KEY, NULL), 0);
	assert_int_equal(token_sign(tok, k, MSG, sizeof(MSG), &sig, &siglen),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_null(sig);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
	token_key_free(k);
	token_generated_free(g);
}

static void
test_ed25519(void **state)
{
	(void)state;
	check_alg(CUSTODY_ALG_ED25519);
}

static void
test_ecdsa_p256(void **state)
{
	(void)state;
	check_alg(CUSTODY_ALG_ECDSA_P256);
}

static void
test_ecdsa_p384(void **state)
{
	(void)state;
	check_alg(CUSTODY_ALG_ECDSA_P384);
}

static void
test_rsa_pss_3072(void **state)
{
	(void)state;
	check_alg(CUSTODY_ALG_RSA_PSS_3072);
}

struct worker {
	struct token_key *k;
	int failures;
};

static void *
sign_loop(void *arg)
{
	struct worker *w = arg;
	uint8_t *sig;
	size_t siglen;
	int i;

	for (i = 0; i < 200; i++) {
		sig = NULL;
		if (token_sign(tok, w->k, MSG, sizeof(MSG), &sig, &siglen) != 0)
			w->failures++;
		free(sig);
	}
	return NULL;
}

/* Several threads, each with its own session, sign with one key: no error,
 * every signature verified before release (SoftHSM2 crashes if sessions
 * are shared or locking is off, pkcs11-backends.md 1.6). */
static void
test_threads(void **state)
{
	struct token_generated *g = NULL;
	struct token_key *k = NULL;
	struct token_destroy_evidence ev;
	struct worker w[4];
	pthread_t th[4];
	int i;

	(void)state;
	assert_int_equal(
	    token_generate(tok, CUSTODY_ALG_ECDSA_P256, "k_", &g), 0);
	assert_int_equal(token_key_open(tok, g->id, CUSTODY_ALG_ECDSA_P256,
			     g->spki, g->spki_len, &k),
	    0);
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){k, 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, sign_loop, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	assert_int_equal(token_destroy(tok, g->id, &ev), 0);
	token_key_free(k);
	token_generated_free(g);
}

static void
test_errors(void **state)
{
	struct token *t = NULL;
	struct secret *so = pin(SO_PIN), *user = pin(USER_PIN);
	struct token_opts o = {"/nonexistent/libnope.so", URI, user};

	(void)state;
	/* the module is logged in by tok and would not check this PIN: a
	 * second open in this process must not ride on that login (P7) */
	assert_int_equal(open_token(URI, "wrong-pin", &t), CUSTODY_E_TOKEN);
	assert_int_equal(open_token(URI, USER_PIN, &t), CUSTODY_E_TOKEN);
	assert_int_equal(open_token("pkcs11:token=no-such-token", USER_PIN, &t),
	    CUSTODY_E_TOKEN_NOT_FOUND);
	assert_int_equal(token_open(&o, &t), CUSTODY_E_MODULE_LOAD);
	o.module = "/usr/lib/x86_64-linux-gnu/libc.so.6";
	assert_int_equal(token_open(&o, &t), CUSTODY_E_MODULE_LOAD);
	assert_null(t);
	/* init never reinitialises an existing token */
	assert_int_equal(
	    token_init(SOFTHSM2_MODULE, URI, so, user), CUSTODY_E_TOKEN_EXISTS);
	secret_free(so);
	secret_free(user);
	/* the shared token still works after all that */
	assert_true(token_supports(tok, CUSTODY_ALG_ED25519));
}

#define DATA_LABEL "it-checkpoint"

/* pkcs11-tool (OpenSC, not custody) lists the data objects of the token;
 * 1 if one labelled DATA_LABEL is listed, as private and custody's. */
static int
tool_lists_data(int login)
{
	char out[128];
	FILE *f;
	char line[512];
	int label = 0, priv = 0, app = 0;

	snprintf(out, sizeof(out), "%s/objects.txt", dir);
	assert_int_equal(run("pkcs11-tool --module %s --token-label %s "
			     "--list-objects --type data %s >%s 2>&1",
			     SOFTHSM2_MODULE, LABEL,
			     login ? "--login --pin " USER_PIN : "", out),
	    0);
	assert_non_null(f = fopen(out, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, "label:") != NULL &&
		    strstr(line, "'" DATA_LABEL "'") != NULL)
			label = 1;
		if (label && strstr(line, "application:") != NULL &&
		    strstr(line, "'custody'") != NULL)
			app = 1;
		if (label && strstr(line, "flags:") != NULL &&
		    strstr(line, "private") != NULL)
			priv = 1;
	}
	fclose(f);
	if (label)
		assert_true(app && priv);
	return label;
}

static void
assert_data(struct token *t, const uint8_t *want, size_t len)
{
	struct token_blob *b = NULL;
	size_t n = 0;

	assert_int_equal(token_data_get(t, DATA_LABEL, &b, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(b[0].len, len);
	assert_memory_equal(b[0].data, want, len);
	token_blobs_free(b, n);
}

/* Data objects on SoftHSM2 (G3's copy of the checkpoint): binary values
 * exactly, replaced, private (pkcs11-tool sees them only after login),
 * kept across close and open, and deleted. */
static void
test_data_objects(void **state)
{
	static const uint8_t a[] = {'c', 'p', 0x00, 0xff, 0x00, '\n'};
	uint8_t *big = malloc(TOKEN_DATA_MAX);
	struct token_blob *b = NULL;
	size_t i, n = 99;

	(void)state;
	assert_non_null(big);
	for (i = 0; i < TOKEN_DATA_MAX; i++)
		big[i] = (uint8_t)(i * 7);
	assert_int_equal(token_data_get(tok, DATA_LABEL, &b, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(token_data_put(tok, DATA_LABEL, a, sizeof(a)), 0);
	assert_data(tok, a, sizeof(a));
	assert_int_equal(
	    token_data_put(tok, DATA_LABEL, big, TOKEN_DATA_MAX), 0);
	assert_data(tok, big, TOKEN_DATA_MAX);

	/* private: listed only to a logged-in pkcs11-tool */
	assert_int_equal(tool_lists_data(0), 0);
	assert_int_equal(tool_lists_data(1), 1);

	/* kept in the token: a new open reads it back */
	token_close(tok);
	tok = NULL;
	assert_int_equal(open_token(URI, USER_PIN, &tok), 0);
	assert_data(tok, big, TOKEN_DATA_MAX);
	assert_int_equal(token_data_put(tok, DATA_LABEL, a, sizeof(a)), 0);
	assert_data(tok, a, sizeof(a));

	assert_int_equal(token_data_delete(tok, DATA_LABEL), 0);
	assert_int_equal(token_data_get(tok, DATA_LABEL, &b, &n), 0);
	assert_int_equal(n, 0);
	assert_null(b);
	assert_int_equal(tool_lists_data(1), 0);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ed25519),
	    cmocka_unit_test(test_ecdsa_p256),
	    cmocka_unit_test(test_ecdsa_p384),
	    cmocka_unit_test(test_rsa_pss_3072),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_data_objects),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
