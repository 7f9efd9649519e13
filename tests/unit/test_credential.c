/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of credential.c against its header contract, ARCHITECTURE.md
 * section 5, FORMATS.md section 6 and threat-model.md section 1B (J1-J9):
 * the JWT request parser and its refusals, the signing input of a JWT
 * (decoded here with a base64url decoder of the test's own, not custody's),
 * the compact JWS, and the JWK of keys made by OpenSSL in the test, with
 * RFC 7638 thumbprints computed here and the RFC 7638 section 3.1 and
 * RFC 8037 appendix A.3 vectors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "credential.h"
#include "err.h"
#include "pubkey.h"

#define NOW 1795000000

/* ---- helpers of the test's own (no custody code) ---- */

static void
sha256(const void *buf, size_t len, uint8_t out[32])
{
	assert_int_equal(
	    EVP_Digest(buf, len, out, NULL, EVP_sha256(), NULL), 1);
}

static void
hex32(const uint8_t md[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[64] = '\0';
}

static const char b64u_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding (RFC 4648 section 5); a new string. */
static char *
b64u_encode(const uint8_t *in, size_t len)
{
	char *out = malloc(len / 3 * 4 + 5), *p;
	size_t i;
	uint32_t v;

	assert_non_null(out);
	p = out;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		*p++ = b64u_alphabet[v >> 18 & 63];
		*p++ = b64u_alphabet[v >> 12 & 63];
		*p++ = b64u_alphabet[v >> 6 & 63];
		*p++ = b64u_alphabet[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		*p++ = b64u_alphabet[v >> 18 & 63];
		*p++ = b64u_alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*p++ = b64u_alphabet[v >> 18 & 63];
		*p++ = b64u_alphabet[v >> 12 & 63];
		*p++ = b64u_alphabet[v >> 6 & 63];
	}
	*p = '\0';
	return out;
}

static int
b64u_value(char c)
{
	const char *p;

	if (c == '\0' || (p = strchr(b64u_alphabet, c)) == NULL)
		return -1;
	return (int)(p - b64u_alphabet);
}

/*
 * Strict base64url decoding of s[0..len): the alphabet of RFC 4648 section
 * 5, no padding, no white space, and zero bits where a final group does not
 * fill its last character. A new NUL-terminated buffer, or NULL.
 */
static uint8_t *
b64u_decode(const char *s, size_t len, size_t *outlen)
{
	uint8_t *out;
	size_t i, n = 0;
	uint32_t acc = 0;
	int bits = 0, v;

	if (len % 4 == 1 || (out = malloc(len * 3 / 4 + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if ((v = b64u_value(s[i])) < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) { /* non-canonical trailing bits */
		free(out);
		return NULL;
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

/* The JSON object that a base64url segment holds, duplicates refused. */
static json_t *
segment_json(const char *s, size_t len, char **rawp)
{
	uint8_t *raw;
	size_t n = 0;
	json_t *o;

	assert_non_null(raw = b64u_decode(s, len, &n));
	assert_int_equal(strlen((char *)raw), n);
	assert_non_null(
	    o = json_loadb((char *)raw, n, JSON_REJECT_DUPLICATES, NULL));
	assert_true(json_is_object(o));
	if (rawp != NULL)
		*rawp = (char *)raw;
	else
		free(raw);
	return o;
}

/* The members of o, in order, are exactly the NULL-terminated names. */
static void
assert_members(json_t *o, const char *const *names)
{
	const char *k;
	json_t *v;
	size_t i = 0;

	json_object_foreach(o, k, v)
	{
		(void)v;
		if (names[i] == NULL)
			fail_msg("unexpected member '%s'", k);
		if (strcmp(names[i], k) != 0)
			fail_msg(
			    "member %zu is '%s', want '%s'", i, k, names[i]);
		i++;
	}
	if (names[i] != NULL)
		fail_msg("member '%s' is missing", names[i]);
}

static const char *
str(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_string(v))
		fail_msg("member '%s' is not a string", name);
	return json_string_value(v);
}

static json_int_t
integer(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	if (!json_is_integer(v))
		fail_msg("member '%s' is not an integer", name);
	return json_integer_value(v);
}

static struct credential_jwt_req *
parse_ok(const char *body)
{
	struct credential_jwt_req *q = NULL;
	char err[512] = "";
	int r;

	r = credential_jwt_parse(
	    (const uint8_t *)body, strlen(body), &q, err, sizeof(err));
	if (r != 0)
		fail_msg("%s: refused (%d: %s)", body, r, err);
	assert_non_null(q);
	return q;
}

/*
 * A refusal: the code want, no request, and a message that holds needle
 * (the member's name) when needle is not NULL. Mismatches are printed and
 * counted, so that one test reports every case that is wrong.
 */
static int
refused(const char *body, size_t len, int want, const char *needle)
{
	struct credential_jwt_req *q = NULL;
	char err[512];
	int r;

	memset(err, 0, sizeof(err));
	r = credential_jwt_parse(
	    (const uint8_t *)body, len, &q, err, sizeof(err));
	if (q != NULL) {
		print_message("%.100s: *reqp written on an error\n", body);
		credential_jwt_req_free(q);
		return 1;
	}
	if (r != want) {
		print_message(
		    "%.100s: got %d (%s), want %d\n", body, r, err, want);
		return 1;
	}
	if (err[0] == '\0' || strchr(err, '\n') != NULL) {
		print_message("%.100s: no one-line message\n", body);
		return 1;
	}
	if (needle != NULL && strstr(err, needle) == NULL) {
		print_message("%.100s: message \"%s\" does not name '%s'\n",
		    body, err, needle);
		return 1;
	}
	return 0;
}

static int
refused_s(const char *body, int want, const char *needle)
{
	return refused(body, strlen(body), want, needle);
}

/* A body {"agent":"a","audience":"x", <extra>}. */
static char *
with(const char *extra)
{
	char *s = NULL;

	assert_true(asprintf(&s, "{\"agent\":\"a\",\"audience\":\"x\"%s%s}",
			extra[0] ? "," : "", extra) > 0);
	return s;
}

static int
refused_with(const char *extra, int want, const char *needle)
{
	char *b = with(extra);
	int n = refused_s(b, want, needle);

	free(b);
	return n;
}

/* ---- credential_jwt_parse: accepted requests ---- */

static const char good_body[] =
    "{\"agent\": \"spiffe://example.org/agent/planner\",\n"
    " \"audience\": \"https://api.example.com\",\n"
    " \"ttl\": 300,\n"
    " \"sub\": \"user:alice\",\n"
    " \"claims\": {\"scope\": \"read write\", "
    "\"tenant\": {\"id\": 42, \"tags\": [\"a\", \"b\"]}},\n"
    " \"act\": {\"sub\": \"spiffe://example.org/agent/planner\",\n"
    "         \"act\": {\"sub\": \"broker-1\", \"iss\": \"https://idp\"}}}";

static void
test_parse_good(void **state)
{
	struct credential_jwt_req *q = parse_ok(good_body);
	uint8_t md[32];
	json_t *want;

	(void)state;
	assert_string_equal(q->agent, "spiffe://example.org/agent/planner");
	assert_null(q->key);
	assert_int_equal(q->naud, 1);
	assert_string_equal(q->aud[0], "https://api.example.com");
	assert_int_equal(q->aud_array, 0);
	assert_int_equal(q->ttl, 300);
	assert_string_equal(q->sub, "user:alice");
	assert_non_null(want = json_loads("{\"scope\":\"read write\","
					  "\"tenant\":{\"id\":42,"
					  "\"tags\":[\"a\",\"b\"]}}",
			    0, NULL));
	assert_true(json_equal(q->claims, want));
	json_decref(want);
	assert_int_equal(q->nclaims, 2);
	assert_string_equal(q->claim_names[0], "scope");
	assert_string_equal(q->claim_names[1], "tenant");
	assert_non_null(want = json_loads("{\"sub\":\"spiffe://example.org/"
					  "agent/planner\",\"act\":{\"sub\":"
					  "\"broker-1\",\"iss\":\"https://"
					  "idp\"}}",
			    0, NULL));
	assert_true(json_equal(q->act, want));
	json_decref(want);
	sha256(good_body, strlen(good_body), md);
	assert_memory_equal(q->request_sha256, md, 32);
	credential_jwt_req_free(q);
}

/* The other shapes: key instead of agent, audience as a list, no ttl, no
 * sub, no claims; the limits themselves are allowed. */
static void
test_parse_other_shapes(void **state)
{
	struct credential_jwt_req *q;
	char body[4096], *p;
	size_t i;

	(void)state;
	q = parse_ok("{\"key\":\"k_0123456789abcdef\","
		     "\"audience\":[\"a1\",\"a2\"]}");
	assert_null(q->agent);
	assert_string_equal(q->key, "k_0123456789abcdef");
	assert_int_equal(q->naud, 2);
	assert_int_equal(q->aud_array, 1);
	assert_string_equal(q->aud[0], "a1");
	assert_string_equal(q->aud[1], "a2");
	assert_int_equal(q->ttl, 0);
	assert_null(q->sub);
	assert_null(q->claims);
	assert_int_equal(q->nclaims, 0);
	assert_null(q->act);
	credential_jwt_req_free(q);

	/* a list of one stays a list */
	q = parse_ok("{\"agent\":\"a\",\"audience\":[\"only\"]}");
	assert_int_equal(q->aud_array, 1);
	assert_int_equal(q->naud, 1);
	credential_jwt_req_free(q);

	/* the limits: CREDENTIAL_TTL_MAX, CREDENTIAL_AUD_MAX audiences,
	 * CREDENTIAL_CLAIMS_MAX claims, CREDENTIAL_CLAIM_DEPTH levels,
	 * CREDENTIAL_ACT_DEPTH acts, names of CREDENTIAL_CLAIM_NAME_MAX */
	snprintf(body, sizeof(body),
	    "{\"agent\":\"a\",\"audience\":\"x\","
	    "\"ttl\":%d}",
	    CREDENTIAL_TTL_MAX);
	q = parse_ok(body);
	assert_int_equal(q->ttl, CREDENTIAL_TTL_MAX);
	credential_jwt_req_free(q);
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":[");
	for (i = 0; i < CREDENTIAL_AUD_MAX; i++)
		p += sprintf(p, "%s\"aud%zu\"", i ? "," : "", i);
	strcpy(p, "]}");
	q = parse_ok(body);
	assert_int_equal(q->naud, CREDENTIAL_AUD_MAX);
	credential_jwt_req_free(q);
	p = body +
	    sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\",\"claims\":{");
	for (i = 0; i < CREDENTIAL_CLAIMS_MAX; i++)
		p += sprintf(p, "%s\"c%zu\":%zu", i ? "," : "", i, i);
	strcpy(p, "}}");
	q = parse_ok(body);
	assert_int_equal(q->nclaims, CREDENTIAL_CLAIMS_MAX);
	assert_string_equal(q->claim_names[CREDENTIAL_CLAIMS_MAX - 1], "c63");
	credential_jwt_req_free(q);
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\","
				 "\"claims\":{\"deep\":");
	for (i = 0; i < CREDENTIAL_CLAIM_DEPTH; i++)
		*p++ = '[';
	*p++ = '1';
	for (i = 0; i < CREDENTIAL_CLAIM_DEPTH; i++)
		*p++ = ']';
	strcpy(p, "}}");
	credential_jwt_req_free(parse_ok(body));
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\","
				 "\"claims\":{\"");
	memset(p, 'n', CREDENTIAL_CLAIM_NAME_MAX);
	strcpy(p + CREDENTIAL_CLAIM_NAME_MAX, "\":1}}");
	credential_jwt_req_free(parse_ok(body));
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\",");
	for (i = 0; i < CREDENTIAL_ACT_DEPTH; i++)
		p += sprintf(p, "%s\"act\":{\"sub\":\"s%zu\"", i ? "," : "", i);
	for (i = 0; i < CREDENTIAL_ACT_DEPTH; i++)
		*p++ = '}';
	strcpy(p, "}");
	credential_jwt_req_free(parse_ok(body));
	/* UTF-8 text is fine */
	credential_jwt_req_free(parse_ok("{\"agent\":\"\xc3\xa9t\xc3\xa9\","
					 "\"audience\":\"\\u00e9\"}"));
}

/* The hash is of the body's len bytes, and only those are parsed. */
static void
test_parse_uses_len(void **state)
{
	static const char buf[] = "{\"agent\":\"a\",\"audience\":\"x\"}GARBAGE";
	size_t len = strlen(buf) - strlen("GARBAGE");
	struct credential_jwt_req *q = NULL;
	uint8_t md[32];
	char err[256];

	(void)state;
	assert_int_equal(credential_jwt_parse(
			     (const uint8_t *)buf, len, &q, err, sizeof(err)),
	    0);
	sha256(buf, len, md);
	assert_memory_equal(q->request_sha256, md, 32);
	credential_jwt_req_free(q);
	assert_int_equal(refused(buf, strlen(buf), CUSTODY_E_PARSE, NULL), 0);
}

/* ---- credential_jwt_parse: refusals ---- */

/* J1, J2: no header field at top level, one at a time and all together;
 * alg none; also spelled with escapes. */
static void
test_parse_header_fields(void **state)
{
	static const char *const fields[] = {"alg", "kid", "typ", "cty", "crit",
	    "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "enc", "zip", "b64",
	    NULL};
	char extra[256];
	size_t i;
	int bad = 0;

	(void)state;
	for (i = 0; fields[i] != NULL; i++) {
		snprintf(extra, sizeof(extra), "\"%s\":\"v\"", fields[i]);
		bad += refused_with(extra, CUSTODY_E_INVALID_ARG, fields[i]);
		/* whatever the value's type */
		snprintf(extra, sizeof(extra), "\"%s\":[\"v\"]", fields[i]);
		bad += refused_with(extra, CUSTODY_E_INVALID_ARG, fields[i]);
		/* before the other members */
		snprintf(extra, sizeof(extra),
		    "{\"%s\":{},\"agent\":\"a\",\"audience\":\"x\"}",
		    fields[i]);
		bad += refused_s(extra, CUSTODY_E_INVALID_ARG, fields[i]);
	}
	bad += refused_with("\"alg\":\"none\"", CUSTODY_E_INVALID_ARG, "alg");
	bad += refused_with("\"alg\":\"HS256\"", CUSTODY_E_INVALID_ARG, "alg");
	bad += refused_with(
	    "\"kid\":\"../../dev/null\"", CUSTODY_E_INVALID_ARG, "kid");
	bad += refused_with(
	    "\"\\u0061lg\":\"none\"", CUSTODY_E_INVALID_ARG, "alg");
	bad += refused_with("\"alg\":\"none\",\"kid\":\"x\",\"typ\":\"x\","
			    "\"jku\":\"https://evil\",\"jwk\":{},\"x5u\":\"u\","
			    "\"x5c\":[],\"crit\":[\"exp\"]",
	    CUSTODY_E_INVALID_ARG, "alg");
	assert_int_equal(bad, 0);
}

/* J3: duplicates, after unescaping, at top level and nested. */
static void
test_parse_duplicates(void **state)
{
	int bad = 0;

	(void)state;
	bad += refused_s("{\"agent\":\"a\",\"agent\":\"b\",\"audience\":\"x\"}",
	    CUSTODY_E_PARSE, "agent");
	bad += refused_with(
	    "\"sub\":\"a\",\"sub\":\"admin\"", CUSTODY_E_PARSE, "sub");
	bad += refused_with("\"ttl\":60,\"ttl\":600", CUSTODY_E_PARSE, "ttl");
	bad += refused_with("\"claims\":{\"role\":\"a\",\"role\":\"admin\"}",
	    CUSTODY_E_PARSE, "role");
	bad += refused_with(
	    "\"claims\":{\"o\":{\"pq\":1,\"pq\":2}}", CUSTODY_E_PARSE, "pq");
	bad += refused_with(
	    "\"act\":{\"sub\":\"a\",\"sub\":\"b\"}", CUSTODY_E_PARSE, "sub");
	bad += refused_s("{\"agent\":\"a\",\"audience\":\"x\","
			 "\"audience\":\"y\"}",
	    CUSTODY_E_PARSE, "audience");
	assert_int_equal(bad, 0);
}

/*
 * J3 with an escaped name: {"agent":"a","\u0061gent":"b"} is refused as a
 * duplicate. The message shows the member as it was spelled
 * ("\u0061gent"); either spelling is taken as naming it.
 */
static void
test_parse_duplicate_escaped(void **state)
{
	static const char body[] =
	    "{\"agent\":\"a\",\"\\u0061gent\":\"b\",\"audience\":\"x\"}";
	static const char body2[] =
	    "{\"agent\":\"a\",\"audience\":\"x\",\"claims\":{\"sub2\":1,"
	    "\"\\u0073ub2\":2}}";
	struct credential_jwt_req *q = NULL;
	char err[512] = "";

	(void)state;
	assert_int_equal(credential_jwt_parse((const uint8_t *)body,
			     strlen(body), &q, err, sizeof(err)),
	    CUSTODY_E_PARSE);
	assert_null(q);
	assert_true(
	    strstr(err, "agent") != NULL || strstr(err, "\\u0061gent") != NULL);
	assert_int_equal(credential_jwt_parse((const uint8_t *)body2,
			     strlen(body2), &q, err, sizeof(err)),
	    CUSTODY_E_PARSE);
	assert_null(q);
	assert_true(
	    strstr(err, "sub2") != NULL || strstr(err, "\\u0073ub2") != NULL);
}

/*
 * A duplicate member whose name is longer than jansson quotes in its own
 * message (20 bytes with the quotes) is still named.
 */
static void
test_parse_duplicate_long_name(void **state)
{
	int bad = 0;

	(void)state;
	bad += refused_with("\"claims\":{\"department_long_name\":1,"
			    "\"department_long_name\":2}",
	    CUSTODY_E_PARSE, "department_long_name");
	assert_int_equal(bad, 0);
}

/* Reserved claims in claims (also escaped); every other member too. */
static void
test_parse_reserved_claims(void **state)
{
	static const char *const reserved[] = {"iss", "sub", "aud", "exp",
	    "nbf", "iat", "jti", "act", "may_act", "cnf", NULL};
	char extra[256];
	size_t i;
	int bad = 0;

	(void)state;
	for (i = 0; reserved[i] != NULL; i++) {
		snprintf(extra, sizeof(extra), "\"claims\":{\"ok\":1,\"%s\":1}",
		    reserved[i]);
		bad += refused_with(extra, CUSTODY_E_INVALID_ARG, reserved[i]);
		snprintf(extra, sizeof(extra),
		    "\"claims\":{\"%s\":{\"sub\":\"x\"}}", reserved[i]);
		bad += refused_with(extra, CUSTODY_E_INVALID_ARG, reserved[i]);
	}
	bad += refused_with("\"claims\":{\"\\u0069ss\":\"https://evil\"}",
	    CUSTODY_E_INVALID_ARG, "iss");
	bad += refused_with(
	    "\"claims\":{\"exp\":1e300}", CUSTODY_E_INVALID_ARG, "exp");
	bad += refused_with("\"claims\":{\"exp\":\"9999999999\"}",
	    CUSTODY_E_INVALID_ARG, "exp");
	/* the registered claims are not request members either */
	bad += refused_with("\"iss\":\"x\"", CUSTODY_E_INVALID_ARG, "iss");
	bad += refused_with("\"exp\":1", CUSTODY_E_INVALID_ARG, "exp");
	bad += refused_with("\"jti\":\"x\"", CUSTODY_E_INVALID_ARG, "jti");
	assert_int_equal(bad, 0);
}

static void
test_parse_ttl(void **state)
{
	char extra[64];
	int bad = 0;

	(void)state;
	bad += refused_with("\"ttl\":0", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":-0", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":-1", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":1.5", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":60.0", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":\"60\"", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":1e300", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":true", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":null", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with(
	    "\"ttl\":9223372036854775807", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with(
	    "\"ttl\":-9223372036854775808", CUSTODY_E_INVALID_ARG, "ttl");
	snprintf(extra, sizeof(extra), "\"ttl\":%d", CREDENTIAL_TTL_MAX + 1);
	bad += refused_with(extra, CUSTODY_E_INVALID_ARG, "ttl");
	assert_int_equal(bad, 0);
}

/*
 * "ttl": 2^63 is valid JSON (RFC 8259 sets no range) with a member out of
 * bounds: CUSTODY_E_INVALID_ARG naming ttl, although jansson refuses it
 * while parsing; the same for "ttl": 1e400.
 */
static void
test_parse_ttl_2_63(void **state)
{
	int bad = 0;

	(void)state;
	bad += refused_with(
	    "\"ttl\":9223372036854775808", CUSTODY_E_INVALID_ARG, "ttl");
	bad += refused_with("\"ttl\":1e400", CUSTODY_E_INVALID_ARG, "ttl");
	assert_int_equal(bad, 0);
}

static void
test_parse_members(void **state)
{
	char big[1200];
	int bad = 0;

	(void)state;
	/* unknown members, named (and cut to a sane length) */
	bad +=
	    refused_with("\"scope\":\"admin\"", CUSTODY_E_INVALID_ARG, "scope");
	bad += refused_with("\"Agent\":\"b\"", CUSTODY_E_INVALID_ARG, "Agent");
	bad += refused_with(
	    "\"claims\":{},\"extra\":1", CUSTODY_E_INVALID_ARG, "extra");
	/* agent or key: exactly one */
	bad += refused_s("{\"agent\":\"a\",\"key\":\"k_0123456789abcdef\","
			 "\"audience\":\"x\"}",
	    CUSTODY_E_INVALID_ARG, "agent");
	bad += refused_s("{\"agent\":\"a\",\"key\":\"k_0123456789abcdef\","
			 "\"audience\":\"x\"}",
	    CUSTODY_E_INVALID_ARG, "key");
	bad +=
	    refused_s("{\"audience\":\"x\"}", CUSTODY_E_INVALID_ARG, "agent");
	bad += refused_s("{\"agent\":\"\",\"audience\":\"x\"}",
	    CUSTODY_E_INVALID_ARG, "agent");
	bad += refused_s(
	    "{\"agent\":1,\"audience\":\"x\"}", CUSTODY_E_INVALID_ARG, "agent");
	bad += refused_s(
	    "{\"key\":null,\"audience\":\"x\"}", CUSTODY_E_INVALID_ARG, "key");
	bad += refused_s("{\"agent\":\"a\\u001b[31m\",\"audience\":\"x\"}",
	    CUSTODY_E_INVALID_ARG, "agent");
	/* sub */
	bad += refused_with("\"sub\":\"\"", CUSTODY_E_INVALID_ARG, "sub");
	bad += refused_with("\"sub\":[\"a\"]", CUSTODY_E_INVALID_ARG, "sub");
	bad += refused_with("\"sub\":\"a\\nb\"", CUSTODY_E_INVALID_ARG, "sub");
	snprintf(
	    big, sizeof(big), "\"sub\":\"%0*d\"", CREDENTIAL_TEXT_MAX + 1, 0);
	bad += refused_with(big, CUSTODY_E_INVALID_ARG, "sub");
	/* claims and act of the wrong type */
	bad += refused_with("\"claims\":[]", CUSTODY_E_INVALID_ARG, "claims");
	bad += refused_with("\"claims\":null", CUSTODY_E_INVALID_ARG, "claims");
	bad +=
	    refused_with("\"act\":\"someone\"", CUSTODY_E_INVALID_ARG, "act");
	assert_int_equal(bad, 0);
}

static void
test_parse_audience(void **state)
{
	char body[2048], *p;
	size_t i;
	int bad = 0;

	(void)state;
	bad +=
	    refused_s("{\"agent\":\"a\"}", CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":[]}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":\"\"}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":null}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":{\"a\":\"b\"}}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":[\"x\",1]}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":[\"x\",[\"y\"]]}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":[\"x\",\"\"]}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":\"x\\u0001\"}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":[\"ok\",\"x\\u007f\"]}",
	    CUSTODY_E_INVALID_ARG, "audience");
	bad += refused_s("{\"agent\":\"a\",\"audience\":\"x\\u0085\"}",
	    CUSTODY_E_INVALID_ARG, "audience");
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":[");
	for (i = 0; i < CREDENTIAL_AUD_MAX + 1; i++)
		p += sprintf(p, "%s\"aud%zu\"", i ? "," : "", i);
	strcpy(p, "]}");
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "audience");
	snprintf(body, sizeof(body), "{\"agent\":\"a\",\"audience\":\"%0*d\"}",
	    CREDENTIAL_TEXT_MAX + 1, 0);
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "audience");
	assert_int_equal(bad, 0);
}

/* JSON-level problems: CUSTODY_E_PARSE. */
static void
test_parse_not_json(void **state)
{
	static const char nul_raw[] = "{\"agent\":\"a\0\",\"audience\":\"x\"}";
	char *deep;
	int bad = 0;

	(void)state;
	bad += refused_s("", CUSTODY_E_PARSE, NULL);
	bad += refused_s("{", CUSTODY_E_PARSE, NULL);
	bad += refused_s(
	    "{\"agent\":\"a\",\"audience\":\"x\",}", CUSTODY_E_PARSE, NULL);
	bad += refused_s(
	    "{\"agent\":\"a\",\"audience\":\"x\"} {}", CUSTODY_E_PARSE, NULL);
	bad += refused_s("{'agent':'a'}", CUSTODY_E_PARSE, NULL);
	/* invalid UTF-8: a stray byte, an overlong '/', a surrogate, a cut
	 * sequence, in values and in names */
	bad += refused_s(
	    "{\"agent\":\"a\xff\",\"audience\":\"x\"}", CUSTODY_E_PARSE, NULL);
	bad += refused_s("{\"agent\":\"a\xc0\xaf\",\"audience\":\"x\"}",
	    CUSTODY_E_PARSE, NULL);
	bad += refused_s("{\"agent\":\"a\xed\xa0\x80\",\"audience\":\"x\"}",
	    CUSTODY_E_PARSE, NULL);
	bad += refused_s("{\"agent\":\"a\xe2\x82\",\"audience\":\"x\"}",
	    CUSTODY_E_PARSE, NULL);
	bad += refused_with("\"claims\":{\"n\xfe\":1}", CUSTODY_E_PARSE, NULL);
	bad +=
	    refused_with("\"claims\":{\"\\ud800\":1}", CUSTODY_E_PARSE, NULL);
	/* NUL: escaped in a value and in a name, and raw */
	bad += refused_s("{\"agent\":\"a\\u0000b\",\"audience\":\"x\"}",
	    CUSTODY_E_PARSE, NULL);
	bad += refused_with("\"sub\":\"admin\\u0000x\"", CUSTODY_E_PARSE, NULL);
	bad +=
	    refused_with("\"claims\":{\"a\\u0000b\":1}", CUSTODY_E_PARSE, NULL);
	bad += refused(nul_raw, sizeof(nul_raw) - 1, CUSTODY_E_PARSE, NULL);
	/* deeper than the parser allows */
	assert_non_null(deep = malloc(100001));
	memset(deep, '[', 100000);
	deep[100000] = '\0';
	bad += refused_s(deep, CUSTODY_E_PARSE, "depth");
	memset(deep, '{', 1);
	memset(deep + 1, '[', 99999);
	bad += refused_s(deep, CUSTODY_E_PARSE, NULL);
	free(deep);
	assert_int_equal(bad, 0);
}

/*
 * A body that is JSON but not an object: valid JSON of the wrong shape, one
 * code for every case (CUSTODY_E_INVALID_ARG), also for a top-level scalar.
 */
static void
test_parse_not_object(void **state)
{
	int bad = 0;

	(void)state;
	bad += refused_s("\"x\"", CUSTODY_E_INVALID_ARG, NULL);
	bad += refused_s("42", CUSTODY_E_INVALID_ARG, NULL);
	bad += refused_s("null", CUSTODY_E_INVALID_ARG, NULL);
	bad += refused_s("true", CUSTODY_E_INVALID_ARG, NULL);
	bad += refused_s("[1]", CUSTODY_E_INVALID_ARG, NULL);
	bad += refused_s("[]", CUSTODY_E_INVALID_ARG, NULL);
	bad += refused_s("[{\"agent\":\"a\",\"audience\":\"x\"}]",
	    CUSTODY_E_INVALID_ARG, NULL);
	assert_int_equal(bad, 0);
}

/* J9: claim bounds. */
static void
test_parse_claim_bounds(void **state)
{
	char *body, *p;
	size_t i;
	int bad = 0;

	(void)state;
	assert_non_null(body = malloc(65536));
	/* deeper than CREDENTIAL_CLAIM_DEPTH, arrays and objects */
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\","
				 "\"claims\":{\"deep\":");
	for (i = 0; i < CREDENTIAL_CLAIM_DEPTH + 1; i++)
		*p++ = '[';
	for (i = 0; i < CREDENTIAL_CLAIM_DEPTH + 1; i++)
		*p++ = ']';
	strcpy(p, "}}");
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "deep");
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\","
				 "\"claims\":{\"ok\":1,\"deep\":");
	for (i = 0; i < CREDENTIAL_CLAIM_DEPTH + 1; i++)
		p += sprintf(p, "{\"o\":");
	*p++ = '1';
	for (i = 0; i < CREDENTIAL_CLAIM_DEPTH + 1; i++)
		*p++ = '}';
	strcpy(p, "}}");
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "deep");
	/* larger than CREDENTIAL_CLAIMS_BYTES, in one claim and in many */
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\","
				 "\"claims\":{\"big\":\"");
	memset(p, 'v', CREDENTIAL_CLAIMS_BYTES);
	strcpy(p + CREDENTIAL_CLAIMS_BYTES, "\"}}");
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "claims");
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\","
				 "\"claims\":{");
	for (i = 0; i < 60; i++)
		p += sprintf(p, "%s\"c%zu\":\"%0300d\"", i ? "," : "", i, 0);
	strcpy(p, "}}");
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "claims");
	/* more than CREDENTIAL_CLAIMS_MAX */
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\","
				 "\"claims\":{");
	for (i = 0; i < CREDENTIAL_CLAIMS_MAX + 1; i++)
		p += sprintf(p, "%s\"c%zu\":%zu", i ? "," : "", i, i);
	strcpy(p, "}}");
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "claims");
	/* names: too long, empty, control characters */
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\","
				 "\"claims\":{\"");
	memset(p, 'n', CREDENTIAL_CLAIM_NAME_MAX + 1);
	strcpy(p + CREDENTIAL_CLAIM_NAME_MAX + 1, "\":1}}");
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "claim");
	bad +=
	    refused_with("\"claims\":{\"\":1}", CUSTODY_E_INVALID_ARG, "claim");
	bad += refused_with(
	    "\"claims\":{\"a\\u0007b\":1}", CUSTODY_E_INVALID_ARG, "claim");
	free(body);
	assert_int_equal(bad, 0);
}

static void
test_parse_act(void **state)
{
	char body[1024], *p;
	size_t i;
	int bad = 0;

	(void)state;
	/* act without its sub (RFC 8693 section 4.1), at each level */
	bad += refused_with("\"act\":{}", CUSTODY_E_INVALID_ARG, "act");
	bad += refused_with(
	    "\"act\":{\"iss\":\"https://idp\"}", CUSTODY_E_INVALID_ARG, "sub");
	bad += refused_with("\"act\":{\"sub\":\"a\",\"act\":{\"iss\":\"i\"}}",
	    CUSTODY_E_INVALID_ARG, "sub");
	/* unknown members, wrong types */
	bad += refused_with("\"act\":{\"sub\":\"a\",\"role\":\"admin\"}",
	    CUSTODY_E_INVALID_ARG, "role");
	bad += refused_with("\"act\":{\"sub\":\"a\",\"act\":{\"sub\":\"b\","
			    "\"exp\":1}}",
	    CUSTODY_E_INVALID_ARG, "exp");
	bad +=
	    refused_with("\"act\":{\"sub\":1}", CUSTODY_E_INVALID_ARG, "sub");
	bad += refused_with(
	    "\"act\":{\"sub\":\"\"}", CUSTODY_E_INVALID_ARG, "sub");
	bad += refused_with("\"act\":{\"sub\":\"a\",\"iss\":[\"i\"]}",
	    CUSTODY_E_INVALID_ARG, "iss");
	bad += refused_with(
	    "\"act\":{\"sub\":\"a\\u0000\"}", CUSTODY_E_PARSE, NULL);
	bad += refused_with(
	    "\"act\":{\"sub\":\"a\",\"act\":[]}", CUSTODY_E_INVALID_ARG, "act");
	/* nested deeper than CREDENTIAL_ACT_DEPTH */
	p = body + sprintf(body, "{\"agent\":\"a\",\"audience\":\"x\",");
	for (i = 0; i < CREDENTIAL_ACT_DEPTH + 1; i++)
		p += sprintf(p, "%s\"act\":{\"sub\":\"s%zu\"", i ? "," : "", i);
	for (i = 0; i < CREDENTIAL_ACT_DEPTH + 1; i++)
		*p++ = '}';
	strcpy(p, "}");
	bad += refused_s(body, CUSTODY_E_INVALID_ARG, "act");
	assert_int_equal(bad, 0);
}

/* NULL arguments are refused; err may be NULL. */
static void
test_parse_args(void **state)
{
	struct credential_jwt_req *q = NULL;
	static const char body[] = "{\"agent\":1}";

	(void)state;
	assert_int_equal(
	    credential_jwt_parse(NULL, 0, &q, NULL, 0), CUSTODY_E_INVALID_ARG);
	assert_int_equal(credential_jwt_parse((const uint8_t *)body,
			     strlen(body), NULL, NULL, 0),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(credential_jwt_parse(
			     (const uint8_t *)body, strlen(body), &q, NULL, 0),
	    CUSTODY_E_INVALID_ARG);
	assert_null(q);
	credential_jwt_req_free(NULL);
}

/* ---- the JWS alg ---- */

static void
test_jwt_alg(void **state)
{
	(void)state;
	assert_string_equal(
	    credential_jwt_alg(CUSTODY_ALG_ED25519, NULL), "EdDSA");
	assert_string_equal(
	    credential_jwt_alg(CUSTODY_ALG_ED25519, "EdDSA"), "EdDSA");
	assert_string_equal(
	    credential_jwt_alg(CUSTODY_ALG_ED25519, "Ed25519"), "Ed25519");
	assert_string_equal(
	    credential_jwt_alg(CUSTODY_ALG_ECDSA_P256, "Ed25519"), "ES256");
	assert_string_equal(
	    credential_jwt_alg(CUSTODY_ALG_ECDSA_P384, NULL), "ES384");
	assert_string_equal(
	    credential_jwt_alg(CUSTODY_ALG_RSA_PSS_3072, NULL), "PS256");
	assert_null(credential_jwt_alg(CUSTODY_ALG_COUNT, NULL));
	assert_null(credential_jwt_alg((enum custody_alg) - 1, NULL));
}

/* ---- credential_jwt_build ---- */

struct built {
	struct credential_jwt *jwt;
	json_t *header, *payload;
	char *header_raw, *payload_raw;
};

/* Build and decode: three checks of form that hold for every JWT. */
static void
build(const struct credential_jwt_req *q, const struct credential_key *k,
    const char *ed25519_alg, int64_t ttl, struct built *b)
{
	const char *dot, *s;
	uint8_t md[32];

	memset(b, 0, sizeof(*b));
	assert_int_equal(credential_jwt_build(q, k, "https://custody.example",
			     ed25519_alg, NOW, ttl, &b->jwt),
	    0);
	s = b->jwt->signing_input;
	assert_int_equal(b->jwt->len, strlen(s));
	assert_non_null(dot = strchr(s, '.'));
	assert_null(strchr(dot + 1, '.'));
	assert_null(strchr(s, '='));
	b->header = segment_json(s, (size_t)(dot - s), &b->header_raw);
	b->payload = segment_json(dot + 1, strlen(dot + 1), &b->payload_raw);
	sha256(s, strlen(s), md);
	assert_memory_equal(b->jwt->tbs_sha256, md, 32);
}

static void
built_free(struct built *b)
{
	credential_jwt_free(b->jwt);
	json_decref(b->header);
	json_decref(b->payload);
	free(b->header_raw);
	free(b->payload_raw);
}

/* J1, J2: the header is {"alg","kid","typ":"JWT"}, alg from the key. */
static void
test_build_header(void **state)
{
	static const char *const hdr[] = {"alg", "kid", "typ", NULL};
	static const struct {
		enum custody_alg alg;
		const char *ed25519_alg, *want;
	} cases[] = {
	    {CUSTODY_ALG_ED25519, NULL, "EdDSA"},
	    {CUSTODY_ALG_ED25519, "EdDSA", "EdDSA"},
	    {CUSTODY_ALG_ED25519, "Ed25519", "Ed25519"},
	    {CUSTODY_ALG_ECDSA_P256, NULL, "ES256"},
	    {CUSTODY_ALG_ECDSA_P256, "Ed25519", "ES256"},
	    {CUSTODY_ALG_ECDSA_P384, NULL, "ES384"},
	    {CUSTODY_ALG_RSA_PSS_3072, "Ed25519", "PS256"},
	};
	struct credential_jwt_req *q = parse_ok(
	    "{\"agent\":\"a\",\"audience\":\"x\",\"claims\":{\"typ\":\"t\"}}");
	struct credential_key k = {.id = "k_0123456789abcdef",
	    .kid = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
	    .agent = "spiffe://example.org/agent/a"};
	struct built b;
	char want[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		k.alg = cases[i].alg;
		build(q, &k, cases[i].ed25519_alg, 60, &b);
		assert_members(b.header, hdr);
		snprintf(want, sizeof(want),
		    "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
		    cases[i].want, k.kid);
		assert_string_equal(b.header_raw, want);
		assert_string_equal(b.jwt->alg, cases[i].want);
		built_free(&b);
	}
	credential_jwt_req_free(q);
}

/* The payload of a request with everything; the detail has no value. */
static void
test_build_payload(void **state)
{
	static const char *const members[] = {"iss", "sub", "aud", "iat", "nbf",
	    "exp", "jti", "scope", "tenant", "act", NULL};
	static const char *const detail_members[] = {"sub", "aud", "iat", "exp",
	    "jti", "ttl", "claims_sha256", "act_sha256", NULL};
	struct credential_jwt_req *q = parse_ok(
	    "{\"agent\":\"a\",\"audience\":\"https://api.example.com\","
	    "\"ttl\":600,\"sub\":\"user:alice\",\"claims\":{\"scope\":"
	    "\"SECRET-SCOPE-VALUE\",\"tenant\":{\"id\":42424242,\"name\":"
	    "\"SECRET-TENANT-NAME\"}},\"act\":{\"sub\":\"SECRET-ACTOR\"}}");
	struct credential_key k = {.id = "k_0123456789abcdef",
	    .kid = "kid-1",
	    .agent = "spiffe://example.org/agent/planner",
	    .alg = CUSTODY_ALG_ECDSA_P256};
	struct built b;
	json_t *v, *c;
	char *s, *d, hex[65];
	uint8_t md[32];
	size_t i;

	(void)state;
	build(q, &k, NULL, 300, &b);
	assert_members(b.payload, members);
	assert_string_equal(str(b.payload, "iss"), "https://custody.example");
	assert_string_equal(str(b.payload, "sub"), "user:alice");
	assert_string_equal(str(b.payload, "aud"), "https://api.example.com");
	assert_int_equal(integer(b.payload, "iat"), NOW);
	assert_int_equal(integer(b.payload, "nbf"), NOW);
	assert_int_equal(integer(b.payload, "exp"), NOW + 300);
	assert_int_equal(b.jwt->iat, NOW);
	assert_int_equal(b.jwt->exp, NOW + 300);
	assert_string_equal(str(b.payload, "jti"), b.jwt->jti);
	assert_int_equal(strlen(b.jwt->jti), 22);
	for (i = 0; i < 22; i++)
		assert_true(b64u_value(b.jwt->jti[i]) >= 0);
	assert_true(json_equal(json_object_get(b.payload, "scope"),
	    json_object_get(q->claims, "scope")));
	assert_true(json_equal(json_object_get(b.payload, "tenant"),
	    json_object_get(q->claims, "tenant")));
	assert_true(json_equal(json_object_get(b.payload, "act"), q->act));

	/* the detail: who got what until when, hashes for claims and act */
	assert_non_null(b.jwt->detail);
	assert_members(b.jwt->detail, detail_members);
	assert_string_equal(str(b.jwt->detail, "sub"), "user:alice");
	assert_string_equal(
	    str(b.jwt->detail, "aud"), "https://api.example.com");
	assert_int_equal(integer(b.jwt->detail, "iat"), NOW);
	assert_int_equal(integer(b.jwt->detail, "exp"), NOW + 300);
	assert_int_equal(integer(b.jwt->detail, "ttl"), 300);
	assert_string_equal(str(b.jwt->detail, "jti"), b.jwt->jti);
	c = json_object_get(b.jwt->detail, "claims_sha256");
	assert_true(json_is_object(c));
	assert_int_equal(json_object_size(c), 2);
	/* each the SHA-256 of the claim's value as the token carries it
	 * (compact JSON) */
	for (i = 0; i < 2; i++) {
		const char *name = q->claim_names[i];

		v = json_object_get(b.payload, name);
		assert_non_null(
		    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY));
		sha256(s, strlen(s), md);
		free(s);
		hex32(md, hex);
		assert_string_equal(str(c, name), hex);
	}
	assert_non_null(s = json_dumps(q->act, JSON_COMPACT | JSON_ENCODE_ANY));
	sha256(s, strlen(s), md);
	free(s);
	hex32(md, hex);
	assert_string_equal(str(b.jwt->detail, "act_sha256"), hex);
	assert_non_null(d = json_dumps(b.jwt->detail, 0));
	assert_null(strstr(d, "SECRET"));
	assert_null(strstr(d, "42424242"));
	free(d);
	built_free(&b);
	credential_jwt_req_free(q);
}

/* sub defaults to the key's agent; aud keeps the request's form; two
 * builds have different jti; no claims, no act, no hashes. */
static void
test_build_defaults(void **state)
{
	static const char *const members[] = {
	    "iss", "sub", "aud", "iat", "nbf", "exp", "jti", NULL};
	static const char *const detail_members[] = {
	    "sub", "aud", "iat", "exp", "jti", "ttl", NULL};
	struct credential_jwt_req *q = parse_ok(
	    "{\"key\":\"k_0123456789abcdef\",\"audience\":[\"a1\",\"a2\"]}");
	struct credential_key k = {.id = "k_0123456789abcdef",
	    .kid = "kid-1",
	    .agent = "spiffe://example.org/agent/planner",
	    .alg = CUSTODY_ALG_ED25519};
	struct built b, b2;
	json_t *aud;

	(void)state;
	build(q, &k, NULL, 1, &b);
	assert_members(b.payload, members);
	assert_string_equal(
	    str(b.payload, "sub"), "spiffe://example.org/agent/planner");
	aud = json_object_get(b.payload, "aud");
	assert_true(json_is_array(aud));
	assert_int_equal(json_array_size(aud), 2);
	assert_string_equal(json_string_value(json_array_get(aud, 0)), "a1");
	assert_string_equal(json_string_value(json_array_get(aud, 1)), "a2");
	assert_int_equal(integer(b.payload, "exp"), NOW + 1);
	assert_members(b.jwt->detail, detail_members);
	assert_true(json_equal(json_object_get(b.jwt->detail, "aud"), aud));
	assert_string_equal(
	    str(b.jwt->detail, "sub"), "spiffe://example.org/agent/planner");
	build(q, &k, NULL, 1, &b2);
	assert_string_not_equal(b.jwt->jti, b2.jwt->jti);
	assert_string_not_equal(b.jwt->signing_input, b2.jwt->signing_input);
	built_free(&b2);
	built_free(&b);
	credential_jwt_req_free(q);

	/* a list of one audience stays a list, a string a string */
	q = parse_ok("{\"agent\":\"a\",\"audience\":[\"only\"]}");
	build(q, &k, NULL, 60, &b);
	aud = json_object_get(b.payload, "aud");
	assert_true(json_is_array(aud));
	assert_int_equal(json_array_size(aud), 1);
	built_free(&b);
	credential_jwt_req_free(q);
	q = parse_ok("{\"agent\":\"a\",\"audience\":\"only\"}");
	build(q, &k, NULL, 60, &b);
	assert_string_equal(str(b.payload, "aud"), "only");
	built_free(&b);
	credential_jwt_req_free(q);
}

static void
test_build_refusals(void **state)
{
	struct credential_jwt_req *q =
	    parse_ok("{\"agent\":\"a\",\"audience\":\"x\"}");
	struct credential_key k = {.id = "k_0123456789abcdef",
	    .kid = "kid-1",
	    .agent = "a",
	    .alg = CUSTODY_ALG_ECDSA_P256};
	struct credential_jwt *j = (struct credential_jwt *)&j;

	(void)state;
	assert_int_equal(credential_jwt_build(q, &k, "iss", NULL, NOW, 0, &j),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(credential_jwt_build(q, &k, "iss", NULL, NOW, -5, &j),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(credential_jwt_build(q, &k, "iss", NULL, 0, 60, &j),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(credential_jwt_build(q, &k, NULL, NULL, NOW, 60, &j),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    credential_jwt_build(NULL, &k, "iss", NULL, NOW, 60, &j),
	    CUSTODY_E_INVALID_ARG);
	k.alg = CUSTODY_ALG_COUNT;
	assert_int_equal(credential_jwt_build(q, &k, "iss", NULL, NOW, 60, &j),
	    CUSTODY_E_UNKNOWN_ALG);
	assert_ptr_equal(j, (struct credential_jwt *)&j);
	credential_jwt_free(NULL);
	credential_jwt_req_free(q);
}

/* The compact JWS: signing input "." base64url(sig), no padding. */
static void
test_finish(void **state)
{
	struct credential_jwt_req *q =
	    parse_ok("{\"agent\":\"a\",\"audience\":\"x\"}");
	struct credential_key k = {.id = "k_0123456789abcdef",
	    .kid = "kid-1",
	    .agent = "a",
	    .alg = CUSTODY_ALG_ECDSA_P256};
	struct credential_jwt *j = NULL;
	uint8_t sig[384], *back;
	size_t lens[] = {1, 2, 3, 64, 65, 96, 384}, i, n, slen;
	char *tok = NULL, *want;

	(void)state;
	for (i = 0; i < sizeof(sig); i++)
		sig[i] = (uint8_t)(i * 7 + 251);
	assert_int_equal(
	    credential_jwt_build(q, &k, "iss", NULL, NOW, 60, &j), 0);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		n = lens[i];
		assert_int_equal(credential_jwt_finish(j, sig, n, &tok), 0);
		slen = strlen(j->signing_input);
		assert_memory_equal(tok, j->signing_input, slen);
		assert_int_equal(tok[slen], '.');
		assert_null(strchr(tok, '='));
		want = b64u_encode(sig, n);
		assert_string_equal(tok + slen + 1, want);
		free(want);
		assert_non_null(back = b64u_decode(tok + slen + 1,
				    strlen(tok + slen + 1), &n));
		assert_int_equal(n, lens[i]);
		assert_memory_equal(back, sig, n);
		free(back);
		free(tok);
		tok = NULL;
	}
	assert_int_equal(
	    credential_jwt_finish(j, sig, 0, &tok), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    credential_jwt_finish(j, NULL, 64, &tok), CUSTODY_E_INVALID_ARG);
	assert_null(tok);
	credential_jwt_free(j);
	credential_jwt_req_free(q);
}

/* ---- credential_jwk ---- */

/* RFC 7638 thumbprint from a JWK's required members, computed here. */
static char *
thumbprint(json_t *jwk)
{
	const char *kty = str(jwk, "kty");
	char *canon = NULL, *out;
	uint8_t md[32];

	if (strcmp(kty, "EC") == 0)
		assert_true(
		    asprintf(&canon,
			"{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\","
			"\"y\":\"%s\"}",
			str(jwk, "crv"), str(jwk, "x"), str(jwk, "y")) > 0);
	else if (strcmp(kty, "RSA") == 0)
		assert_true(asprintf(&canon,
				"{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}",
				str(jwk, "e"), str(jwk, "n")) > 0);
	else if (strcmp(kty, "OKP") == 0)
		assert_true(asprintf(&canon,
				"{\"crv\":\"%s\",\"kty\":\"OKP\",\"x\":\"%s\"}",
				str(jwk, "crv"), str(jwk, "x")) > 0);
	else
		fail_msg("kty %s", kty);
	sha256(canon, strlen(canon), md);
	free(canon);
	out = b64u_encode(md, sizeof(md));
	return out;
}

/* The member name of jwk decodes to exactly want[0..len). */
static void
assert_b64u_member(
    json_t *jwk, const char *name, const uint8_t *want, size_t len)
{
	const char *s = str(jwk, name);
	uint8_t *got;
	size_t n = 0;

	assert_non_null(got = b64u_decode(s, strlen(s), &n));
	assert_int_equal(n, len);
	assert_memory_equal(got, want, len);
	free(got);
}

static void
bn_member(
    EVP_PKEY *pk, const char *param, size_t pad, uint8_t *out, size_t *lenp)
{
	BIGNUM *bn = NULL;

	assert_int_equal(EVP_PKEY_get_bn_param(pk, param, &bn), 1);
	if (pad > 0) {
		assert_int_equal(BN_bn2binpad(bn, out, (int)pad), (int)pad);
		*lenp = pad;
	} else
		*lenp = (size_t)BN_bn2bin(bn, out);
	BN_free(bn);
}

static void
check_jwk(enum custody_alg alg, EVP_PKEY *pk, const char *ed25519_alg,
    const char *want_alg)
{
	static const char *const ec[] = {
	    "crv", "kty", "x", "y", "kid", "use", "alg", NULL};
	static const char *const rsa[] = {
	    "e", "kty", "n", "kid", "use", "alg", NULL};
	static const char *const okp[] = {
	    "crv", "kty", "x", "kid", "use", "alg", NULL};
	unsigned char *der = NULL;
	struct pubkey *cpk = NULL;
	char *ckid = NULL, *mine;
	uint8_t buf[512];
	size_t len = 0;
	json_t *jwk = NULL;
	int n;

	assert_true((n = i2d_PUBKEY(pk, &der)) > 0);
	assert_int_equal(pubkey_from_spki(alg, der, (size_t)n, &cpk), 0);
	assert_int_equal(pubkey_jwk_thumbprint(cpk, &ckid), 0);
	assert_int_equal(
	    credential_jwk(alg, der, (size_t)n, ckid, ed25519_alg, &jwk), 0);
	switch (alg) {
	case CUSTODY_ALG_ED25519:
		assert_members(jwk, okp);
		assert_string_equal(str(jwk, "kty"), "OKP");
		assert_string_equal(str(jwk, "crv"), "Ed25519");
		len = sizeof(buf);
		assert_int_equal(EVP_PKEY_get_raw_public_key(pk, buf, &len), 1);
		assert_int_equal(len, 32);
		assert_b64u_member(jwk, "x", buf, len);
		break;
	case CUSTODY_ALG_ECDSA_P256:
	case CUSTODY_ALG_ECDSA_P384:
		assert_members(jwk, ec);
		assert_string_equal(str(jwk, "kty"), "EC");
		assert_string_equal(str(jwk, "crv"),
		    alg == CUSTODY_ALG_ECDSA_P256 ? "P-256" : "P-384");
		bn_member(pk, OSSL_PKEY_PARAM_EC_PUB_X,
		    alg == CUSTODY_ALG_ECDSA_P256 ? 32 : 48, buf, &len);
		assert_b64u_member(jwk, "x", buf, len);
		bn_member(pk, OSSL_PKEY_PARAM_EC_PUB_Y,
		    alg == CUSTODY_ALG_ECDSA_P256 ? 32 : 48, buf, &len);
		assert_b64u_member(jwk, "y", buf, len);
		break;
	case CUSTODY_ALG_RSA_PSS_3072:
		assert_members(jwk, rsa);
		assert_string_equal(str(jwk, "kty"), "RSA");
		bn_member(pk, OSSL_PKEY_PARAM_RSA_N, 0, buf, &len);
		assert_int_equal(len, 384);
		assert_b64u_member(jwk, "n", buf, len);
		bn_member(pk, OSSL_PKEY_PARAM_RSA_E, 0, buf, &len);
		assert_b64u_member(jwk, "e", buf, len);
		assert_string_equal(str(jwk, "e"), "AQAB");
		break;
	default:
		fail();
	}
	assert_string_equal(str(jwk, "kid"), ckid);
	assert_string_equal(str(jwk, "use"), "sig");
	assert_string_equal(str(jwk, "alg"), want_alg);
	mine = thumbprint(jwk);
	assert_string_equal(mine, ckid);
	free(mine);
	free(ckid);
	pubkey_free(cpk);
	json_decref(jwk);
	OPENSSL_free(der);
}

static void
test_jwk_keys(void **state)
{
	EVP_PKEY *ed, *p256, *p384, *rsa;

	(void)state;
	assert_non_null(ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	assert_non_null(p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	assert_non_null(p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"));
	assert_non_null(
	    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072));
	check_jwk(CUSTODY_ALG_ED25519, ed, NULL, "EdDSA");
	check_jwk(CUSTODY_ALG_ED25519, ed, "EdDSA", "EdDSA");
	check_jwk(CUSTODY_ALG_ED25519, ed, "Ed25519", "Ed25519");
	check_jwk(CUSTODY_ALG_ECDSA_P256, p256, NULL, "ES256");
	check_jwk(CUSTODY_ALG_ECDSA_P384, p384, "Ed25519", "ES384");
	check_jwk(CUSTODY_ALG_RSA_PSS_3072, rsa, NULL, "PS256");
	EVP_PKEY_free(ed);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa);
}

/* A key of another alg, trailing bytes, an unknown alg: refused. */
static void
test_jwk_refusals(void **state)
{
	EVP_PKEY *p256;
	unsigned char *der = NULL;
	uint8_t *longer;
	json_t *jwk = NULL;
	int n;

	(void)state;
	assert_non_null(p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
	assert_true((n = i2d_PUBKEY(p256, &der)) > 0);
	assert_int_equal(credential_jwk(CUSTODY_ALG_ED25519, der, (size_t)n,
			     "k", NULL, &jwk),
	    CUSTODY_E_PARSE);
	assert_int_equal(credential_jwk(CUSTODY_ALG_ECDSA_P384, der, (size_t)n,
			     "k", NULL, &jwk),
	    CUSTODY_E_PARSE);
	assert_int_equal(
	    credential_jwk(CUSTODY_ALG_COUNT, der, (size_t)n, "k", NULL, &jwk),
	    CUSTODY_E_UNKNOWN_ALG);
	assert_non_null(longer = malloc((size_t)n + 1));
	memcpy(longer, der, (size_t)n);
	longer[n] = 0;
	assert_int_equal(credential_jwk(CUSTODY_ALG_ECDSA_P256, longer,
			     (size_t)n + 1, "k", NULL, &jwk),
	    CUSTODY_E_PARSE);
	assert_int_equal(credential_jwk(CUSTODY_ALG_ECDSA_P256, der,
			     (size_t)n - 1, "k", NULL, &jwk),
	    CUSTODY_E_PARSE);
	assert_int_equal(credential_jwk(CUSTODY_ALG_ECDSA_P256, der, (size_t)n,
			     NULL, NULL, &jwk),
	    CUSTODY_E_INVALID_ARG);
	assert_null(jwk);
	free(longer);
	OPENSSL_free(der);
	EVP_PKEY_free(p256);
}

/*
 * RFC 7638 section 3.1: the thumbprint code of this test gives the RFC's
 * value for the RFC's RSA key. That key has 2048 bits, and custody takes
 * RSA only as rsa-pss-3072, so custody's side is checked by its refusal of
 * an SPKI made from the RFC's n and e (OSSL_PARAM_BLD, EVP_PKEY_fromdata).
 */
static const char rfc7638_n[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFF"
    "xuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lq"
    "t7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu"
    "6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksI"
    "NHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

static void
test_jwk_rfc7638(void **state)
{
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pk = NULL;
	BIGNUM *n, *e;
	uint8_t *nbin;
	size_t nlen = 0;
	unsigned char *der = NULL;
	struct pubkey *cpk = NULL;
	json_t *jwk;
	char *mine;
	int len;

	(void)state;
	assert_non_null(
	    jwk = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "n",
		rfc7638_n, "e", "AQAB", "alg", "RS256", "kid", "2011-04-29"));
	mine = thumbprint(jwk);
	assert_string_equal(
	    mine, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	free(mine);
	json_decref(jwk);

	assert_non_null(
	    nbin = b64u_decode(rfc7638_n, strlen(rfc7638_n), &nlen));
	assert_int_equal(nlen, 256);
	assert_non_null(n = BN_bin2bn(nbin, (int)nlen, NULL));
	assert_non_null(e = BN_new());
	assert_int_equal(BN_set_word(e, 65537), 1);
	assert_non_null(bld = OSSL_PARAM_BLD_new());
	assert_int_equal(
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
	assert_int_equal(
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e), 1);
	assert_non_null(params = OSSL_PARAM_BLD_to_param(bld));
	assert_non_null(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL));
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
	assert_true((len = i2d_PUBKEY(pk, &der)) > 0);
	jwk = NULL;
	assert_int_equal(credential_jwk(CUSTODY_ALG_RSA_PSS_3072, der,
			     (size_t)len, "x", NULL, &jwk),
	    CUSTODY_E_PARSE);
	assert_null(jwk);
	assert_int_equal(
	    pubkey_from_spki(CUSTODY_ALG_RSA_PSS_3072, der, (size_t)len, &cpk),
	    CUSTODY_E_PARSE);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	free(nbin);
}

/*
 * RFC 8037 appendix A.2/A.3: the JWK of the RFC's Ed25519 public key has
 * the RFC's x, and its thumbprint (computed here and by custody) is the
 * RFC's.
 */
static void
test_jwk_rfc8037(void **state)
{
	static const uint8_t pub[32] = {0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1,
	    0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e,
	    0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
	    0xf7, 0x07, 0x51, 0x1a};
	static const char thumb[] =
	    "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
	EVP_PKEY *pk;
	unsigned char *der = NULL;
	struct pubkey *cpk = NULL;
	char *mine, *ckid = NULL;
	json_t *jwk = NULL;
	int n;

	(void)state;
	assert_non_null(pk = EVP_PKEY_new_raw_public_key(
			    EVP_PKEY_ED25519, NULL, pub, sizeof(pub)));
	assert_true((n = i2d_PUBKEY(pk, &der)) > 0);
	assert_int_equal(credential_jwk(CUSTODY_ALG_ED25519, der, (size_t)n,
			     thumb, NULL, &jwk),
	    0);
	assert_string_equal(
	    str(jwk, "x"), "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
	assert_string_equal(str(jwk, "alg"), "EdDSA");
	mine = thumbprint(jwk);
	assert_string_equal(mine, thumb);
	assert_int_equal(
	    pubkey_from_spki(CUSTODY_ALG_ED25519, der, (size_t)n, &cpk), 0);
	assert_int_equal(pubkey_jwk_thumbprint(cpk, &ckid), 0);
	assert_string_equal(ckid, thumb);
	free(ckid);
	free(mine);
	pubkey_free(cpk);
	json_decref(jwk);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_other_shapes),
	    cmocka_unit_test(test_parse_uses_len),
	    cmocka_unit_test(test_parse_header_fields),
	    cmocka_unit_test(test_parse_duplicates),
	    cmocka_unit_test(test_parse_duplicate_escaped),
	    cmocka_unit_test(test_parse_duplicate_long_name),
	    cmocka_unit_test(test_parse_reserved_claims),
	    cmocka_unit_test(test_parse_ttl),
	    cmocka_unit_test(test_parse_ttl_2_63),
	    cmocka_unit_test(test_parse_members),
	    cmocka_unit_test(test_parse_audience),
	    cmocka_unit_test(test_parse_not_json),
	    cmocka_unit_test(test_parse_not_object),
	    cmocka_unit_test(test_parse_claim_bounds),
	    cmocka_unit_test(test_parse_act),
	    cmocka_unit_test(test_parse_args),
	    cmocka_unit_test(test_jwt_alg),
	    cmocka_unit_test(test_build_header),
	    cmocka_unit_test(test_build_payload),
	    cmocka_unit_test(test_build_defaults),
	    cmocka_unit_test(test_build_refusals),
	    cmocka_unit_test(test_finish),
	    cmocka_unit_test(test_jwk_keys),
	    cmocka_unit_test(test_jwk_refusals),
	    cmocka_unit_test(test_jwk_rfc7638),
	    cmocka_unit_test(test_jwk_rfc8037),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
