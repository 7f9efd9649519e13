/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for JWT requests (credential.c, ARCHITECTURE.md section
 * 5): the body a broker sends to POST /v1/credentials/jwt.
 *
 * Each input is parsed with credential_jwt_parse(). A refusal must return
 * one of the documented codes, leave the output alone and say why. A
 * request that parses must respect the documented bounds, and the JWT built
 * from it (for each algorithm) must hold exactly what the server decides:
 * a header of exactly alg, kid and typ; a payload whose first members are
 * iss, sub, aud, iat, nbf, exp and jti with the values given, with no
 * member twice; a tbs_sha256 that is the SHA-256 of the signing input; and
 * a compact JWS that is the signing input, a dot and the signature. Any
 * broken expectation aborts; ASan, UBSan and LeakSanitizer report the rest.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "credential.h"
#include "err.h"
#include "log.h"

#define NOW 1795428000LL

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "fuzz_jwt: %s:%d: check failed: %s\n", \
			    __FILE__, __LINE__, #x);                           \
			abort();                                               \
		}                                                              \
	} while (0)

static void
quiet(int level, const char *func, const char *msg, void *arg)
{
	(void)level;
	(void)func;
	(void)msg;
	(void)arg;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	custody_log_set(quiet, 0, NULL);
	return 0;
}

/* Strict base64url without padding; *lenp bytes into out (new). */
static uint8_t *
b64u_decode(const char *s, size_t n, size_t *lenp)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
				"uvwxyz0123456789-_";
	uint8_t *out = malloc(n * 3 / 4 + 3);
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0;
	const char *p;

	CHECK(out != NULL);
	CHECK(n % 4 != 1);
	for (i = 0; i < n; i++) {
		CHECK(s[i] != '\0' && (p = strchr(a, s[i])) != NULL);
		acc = acc << 6 | (uint32_t)(p - a);
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	*lenp = o;
	return out;
}

static json_t *
segment(const char *s, size_t n)
{
	size_t len;
	uint8_t *b = b64u_decode(s, n, &len);
	json_t *o =
	    json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES, NULL);

	free(b);
	CHECK(json_is_object(o));
	return o;
}

static void
check_jwt(const struct credential_jwt_req *q, enum custody_alg alg)
{
	static const char *const first[] = {
	    "iss", "sub", "aud", "iat", "nbf", "exp", "jti"};
	struct credential_key k = {
	    "k_0123456789abcdef", "KID-kid_0", "agent-x", alg};
	struct credential_jwt *j = NULL;
	const char *dot, *name;
	uint8_t md[32], sig[3] = {1, 2, 3};
	char *token = NULL;
	json_t *h, *p, *v;
	size_t i = 0;
	int r;

	r = credential_jwt_build(
	    q, &k, "https://iss.test", "EdDSA", NOW, 600, &j);
	CHECK(r == 0 || r == CUSTODY_E_NOMEM);
	if (r != 0)
		return;
	CHECK(j->len == strlen(j->signing_input));
	SHA256((const uint8_t *)j->signing_input, j->len, md);
	CHECK(memcmp(md, j->tbs_sha256, 32) == 0);
	CHECK((dot = strchr(j->signing_input, '.')) != NULL);
	CHECK(strchr(dot + 1, '.') == NULL);
	h = segment(j->signing_input, (size_t)(dot - j->signing_input));
	CHECK(json_object_size(h) == 3);
	CHECK(
	    strcmp(json_string_value(json_object_get(h, "alg")), j->alg) == 0);
	CHECK(strcmp(json_string_value(json_object_get(h, "kid")), k.kid) == 0);
	CHECK(strcmp(json_string_value(json_object_get(h, "typ")), "JWT") == 0);
	p = segment(dot + 1, strlen(dot + 1));
	json_object_foreach(p, name, v)
	{
		if (i < sizeof(first) / sizeof(first[0]))
			CHECK(strcmp(name, first[i]) == 0);
		i++;
	}
	CHECK(strcmp(json_string_value(json_object_get(p, "iss")),
		  "https://iss.test") == 0);
	CHECK(strcmp(json_string_value(json_object_get(p, "sub")),
		  q->sub != NULL ? q->sub : k.agent) == 0);
	CHECK(json_integer_value(json_object_get(p, "iat")) == NOW);
	CHECK(json_integer_value(json_object_get(p, "nbf")) == NOW);
	CHECK(json_integer_value(json_object_get(p, "exp")) == NOW + 600);
	CHECK(
	    strcmp(json_string_value(json_object_get(p, "jti")), j->jti) == 0);
	CHECK(strlen(j->jti) == 22);
	CHECK(json_object_size(p) == 7 + q->nclaims + (q->act != NULL ? 1 : 0));
	if (credential_jwt_finish(j, sig, sizeof(sig), &token) == 0) {
		CHECK(strncmp(token, j->signing_input, j->len) == 0);
		CHECK(strcmp(token + j->len, ".AQID") == 0);
	}
	free(token);
	json_decref(h);
	json_decref(p);
	credential_jwt_free(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct credential_jwt_req *q = (void *)0x1;
	char err[320];
	int r, a;

	err[0] = '\0';
	r = credential_jwt_parse(data, size, &q, err, sizeof(err));
	if (r != 0) {
		CHECK(r == CUSTODY_E_PARSE || r == CUSTODY_E_INVALID_ARG ||
		      r == CUSTODY_E_NOMEM);
		CHECK(q == (void *)0x1);
		CHECK(r == CUSTODY_E_NOMEM || err[0] != '\0');
		CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		return 0;
	}
	CHECK((q->agent == NULL) != (q->key == NULL));
	CHECK(q->naud >= 1 && q->naud <= CREDENTIAL_AUD_MAX);
	CHECK(q->ttl >= 0 && q->ttl <= CREDENTIAL_TTL_MAX);
	CHECK(q->nclaims <= CREDENTIAL_CLAIMS_MAX);
	CHECK((q->claims == NULL) == (q->nclaims == 0) || q->claims != NULL);
	for (a = 0; a < CUSTODY_ALG_COUNT; a++)
		check_jwt(q, (enum custody_alg)a);
	credential_jwt_req_free(q);
	return 0;
}
