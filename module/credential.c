/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "credential.h"
#include "err.h"
#include "log.h"
#include "policy.h"
#include "pubkey.h"
#include "util.h"

/* JOSE header fields (RFC 7515, 7516, 7797, 8555, 9421 ...): a request that
 * names one is asking to choose the header, which it never can. */
static const char *const header_fields[] = {"alg", "kid", "typ", "cty", "crit",
    "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "enc", "zip", "epk", "b64",
    "header", "protected", "nonce", "url", NULL};

static const char *const request_fields[] = {
    "agent", "key", "audience", "ttl", "sub", "claims", "act", NULL};

static int
in(const char *const *names, const char *s)
{
	size_t i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return 1;
	return 0;
}

static int fail(char *err, size_t errsz, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(char *err, size_t errsz, int r, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return r;
}

/*
 * The member name that jansson's error at pos is about, as spelled in the
 * body (printable ASCII; at most 64 bytes): pos is just after the duplicate
 * name itself (key) or after the value of the member (!key). "" if it
 * cannot be found.
 */
static void
name_at(const uint8_t *b, size_t len, int pos, int key, char *out, size_t outsz)
{
	size_t i, end, start, n = 0, slashes;

	out[0] = '\0';
	if (pos <= 0 || len == 0)
		return;
	i = (size_t)pos - 1 < len ? (size_t)pos - 1 : len - 1;
	if (!key) {
		while (i > 0 && b[i] != ':')
			i--;
		while (i > 0 && (b[i] == ':' || b[i] == ' ' || b[i] == '\t' ||
				    b[i] == '\n' || b[i] == '\r'))
			i--;
	}
	if (b[i] != '"' || i == 0)
		return;
	end = i;
	for (start = end; start > 0; start--) {
		if (b[start - 1] != '"')
			continue;
		for (slashes = 0;
		     start - 1 >= slashes + 1 && b[start - 2 - slashes] == '\\';
		     slashes++)
			;
		if (slashes % 2 == 0)
			break;
	}
	if (start == 0)
		return;
	for (i = start; i < end && n + 1 < outsz && n < 64; i++)
		out[n++] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '?';
	out[n] = '\0';
}

static int
sha256(const void *buf, size_t len, uint8_t out[32])
{
	if (!EVP_Digest(buf, len, out, NULL, EVP_sha256(), NULL)) {
		log_error_f("SHA-256 failed");
		return CUSTODY_E_CRYPTO;
	}
	return 0;
}

/* A text member: 1..max bytes of UTF-8 without control characters. */
static int
text(json_t *v, const char *what, size_t max, char **outp, char *err,
    size_t errsz)
{
	const char *why;

	if (!json_is_string(v))
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "%s must be a string", what);
	if ((why = util_text_problem(json_string_value(v), max)) != NULL) {
		if (strcmp(why, UTIL_TEXT_TOO_LONG) == 0)
			return fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "%s is longer than %zu bytes", what, max);
		return fail(
		    err, errsz, CUSTODY_E_INVALID_ARG, "%s %s", what, why);
	}
	if (outp != NULL && (*outp = strdup(json_string_value(v))) == NULL)
		return CUSTODY_E_NOMEM;
	return 0;
}

/* Is v nested no deeper than max levels of arrays and objects? */
static int
depth_ok(json_t *v, int max)
{
	const char *k;
	json_t *e;
	size_t i;

	if (!json_is_object(v) && !json_is_array(v))
		return 1;
	if (max == 0)
		return 0;
	if (json_is_object(v)) {
		json_object_foreach(
		    v, k, e) if (!depth_ok(e, max - 1)) return 0;
	} else {
		json_array_foreach(v, i, e) if (!depth_ok(e, max - 1)) return 0;
	}
	return 1;
}

static int
parse_audience(struct credential_jwt_req *q, json_t *v, char *err, size_t errsz)
{
	json_t *e;
	size_t i, n;
	char what[32];
	int r;

	if (json_is_string(v))
		n = 1;
	else if (json_is_array(v)) {
		if ((n = json_array_size(v)) == 0)
			return fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "audience must not be an empty list");
		if (n > CREDENTIAL_AUD_MAX)
			return fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "audience lists more than %d audiences",
			    CREDENTIAL_AUD_MAX);
		q->aud_array = 1;
	} else
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "audience must be a string or a list of strings");
	if ((q->aud = calloc(n, sizeof(*q->aud))) == NULL)
		return CUSTODY_E_NOMEM;
	for (i = 0; i < n; i++) {
		e = q->aud_array ? json_array_get(v, i) : v;
		snprintf(what, sizeof(what),
		    q->aud_array ? "audience[%zu]" : "audience", i);
		if ((r = text(e, what, CREDENTIAL_TEXT_MAX, &q->aud[i], err,
			 errsz)) != 0)
			return r;
		q->naud++;
	}
	return 0;
}

static int
parse_claims(struct credential_jwt_req *q, json_t *v, char *err, size_t errsz)
{
	const char *k, *why;
	json_t *e;
	char *s;
	size_t n = 0, len;

	if (!json_is_object(v))
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "claims must be an object");
	if ((q->nclaims = json_object_size(v)) > CREDENTIAL_CLAIMS_MAX)
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "claims has more than %d members", CREDENTIAL_CLAIMS_MAX);
	if (q->nclaims > 0 && (q->claim_names = calloc(q->nclaims,
				   sizeof(*q->claim_names))) == NULL)
		return CUSTODY_E_NOMEM;
	json_object_foreach(v, k, e)
	{
		if ((why = util_text_problem(k, CREDENTIAL_CLAIM_NAME_MAX)) !=
		    NULL)
			return fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "a claim name %s",
			    strcmp(why, UTIL_TEXT_TOO_LONG) == 0
				? "is longer than 128 bytes"
				: why);
		if (policy_claim_reserved(k))
			return fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "claims/%s: '%s' is a reserved claim: custody sets "
			    "it (or governs it) and a request cannot",
			    k, k);
		if (!depth_ok(e, CREDENTIAL_CLAIM_DEPTH))
			return fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "claims/%s is nested deeper than %d levels", k,
			    CREDENTIAL_CLAIM_DEPTH);
		q->claim_names[n++] = k;
	}
	if ((s = json_dumps(v, JSON_COMPACT)) == NULL)
		return CUSTODY_E_NOMEM;
	len = strlen(s);
	free(s);
	if (len > CREDENTIAL_CLAIMS_BYTES)
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "claims take %zu bytes, more than %d", len,
		    CREDENTIAL_CLAIMS_BYTES);
	q->claims = json_incref(v);
	return 0;
}

/* RFC 8693 section 4.1: {"sub", optionally "iss" and a nested "act"}. */
static int
check_act(json_t *v, int depth, char *err, size_t errsz)
{
	const char *k;
	json_t *e;
	int r;

	if (!json_is_object(v))
		return fail(
		    err, errsz, CUSTODY_E_INVALID_ARG, "act must be an object");
	if (depth > CREDENTIAL_ACT_DEPTH)
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "act is nested deeper than %d levels",
		    CREDENTIAL_ACT_DEPTH);
	if (json_object_get(v, "sub") == NULL)
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "act must have a sub (RFC 8693 section 4.1)");
	json_object_foreach(v, k, e)
	{
		if (strcmp(k, "sub") == 0 || strcmp(k, "iss") == 0)
			r = text(e,
			    strcmp(k, "sub") == 0 ? "act.sub" : "act.iss",
			    CREDENTIAL_TEXT_MAX, NULL, err, errsz);
		else if (strcmp(k, "act") == 0)
			r = check_act(e, depth + 1, err, errsz);
		else
			r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "act: unknown member '%.64s' (sub, iss and act are "
			    "allowed)",
			    k);
		if (r != 0)
			return r;
	}
	return 0;
}

static int
parse_ttl(struct credential_jwt_req *q, json_t *v, char *err, size_t errsz)
{
	json_int_t t;

	if (!json_is_integer(v))
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "ttl must be an integer number of seconds");
	t = json_integer_value(v);
	if (t <= 0 || t > CREDENTIAL_TTL_MAX)
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "ttl must be between 1 and %d seconds", CREDENTIAL_TTL_MAX);
	q->ttl = (int64_t)t;
	return 0;
}

/* Say what jansson refused, naming the member where it can. */
static int
load_error(const uint8_t *body, size_t len, const json_error_t *je, char *err,
    size_t errsz)
{
	char name[80];

	if (strncmp(je->text, "duplicate object key", 20) == 0) {
		name_at(body, len, je->position, 1, name, sizeof(name));
		return fail(err, errsz, CUSTODY_E_PARSE,
		    "member \"%s\" is given twice (line %d, column %d); "
		    "duplicate members are refused",
		    name, je->line, je->column);
	}
	if (strncmp(je->text, "too big integer", 15) == 0 ||
	    strncmp(je->text, "real number overflow", 20) == 0) {
		/* valid JSON, a value out of any bound */
		name_at(body, len, je->position, 0, name, sizeof(name));
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "%s%sa number out of range (line %d, column %d)", name,
		    name[0] ? " is " : "", je->line, je->column);
	}
	return fail(err, errsz, CUSTODY_E_PARSE,
	    "the body is not valid JSON: %s (line %d, column %d)", je->text,
	    je->line, je->column);
}

/*
 * A request body: its SHA-256, and the JSON object it must be (duplicate
 * members refused, compared after unescaping: "\u0073ub" is "sub").
 */
static int
load_request(const uint8_t *body, size_t len, uint8_t sha[32], json_t **op,
    char *err, size_t errsz)
{
	json_error_t je;
	int r;

	*op = NULL;
	if ((r = sha256(body, len, sha)) != 0)
		return r;
	if ((*op = json_loadb((const char *)body, len,
		 JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je)) == NULL)
		return load_error(body, len, &je, err, errsz);
	if (!json_is_object(*op))
		return fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "the body must be a JSON object");
	return 0;
}

int
credential_jwt_parse(const uint8_t *body, size_t len,
    struct credential_jwt_req **reqp, char *err, size_t errsz)
{
	struct credential_jwt_req *q;
	json_t *o = NULL, *v;
	const char *k;
	int r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    body != NULL && reqp != NULL, CUSTODY_E_INVALID_ARG);
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return CUSTODY_E_NOMEM;
	if ((r = load_request(body, len, q->request_sha256, &o, err, errsz)) !=
	    0)
		goto out;
	json_object_foreach(o, k, v)
	{
		if (in(header_fields, k)) {
			r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "'%s' is a JOSE header field: custody builds "
			    "the header from the key alone",
			    k);
			goto out;
		}
		if (!in(request_fields, k)) {
			r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "unknown member '%.64s' (the members are agent or "
			    "key, audience, ttl, sub, claims, act)",
			    k);
			goto out;
		}
		if (strcmp(k, "agent") == 0)
			r = text(v, "agent", 256, &q->agent, err, errsz);
		else if (strcmp(k, "key") == 0)
			r = text(v, "key", 64, &q->key, err, errsz);
		else if (strcmp(k, "audience") == 0)
			r = parse_audience(q, v, err, errsz);
		else if (strcmp(k, "ttl") == 0)
			r = parse_ttl(q, v, err, errsz);
		else if (strcmp(k, "sub") == 0)
			r = text(
			    v, "sub", CREDENTIAL_TEXT_MAX, &q->sub, err, errsz);
		else if (strcmp(k, "claims") == 0)
			r = parse_claims(q, v, err, errsz);
		else if ((r = check_act(v, 1, err, errsz)) == 0)
			q->act = json_incref(v);
		if (r != 0)
			goto out;
	}
	if ((q->agent == NULL) == (q->key == NULL)) {
		r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "name either agent or key (exactly one)");
		goto out;
	}
	if (q->naud == 0) {
		r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "audience is required (RFC 8725 section 3.9)");
		goto out;
	}
out:
	/* claim_names point into the claims object, which q holds */
	json_decref(o);
	if (r != 0) {
		credential_jwt_req_free(q);
		return r;
	}
	*reqp = q;
	return 0;
}

int
credential_x509_parse(const uint8_t *body, size_t len, size_t csr_max,
    struct credential_x509_req **reqp, char *err, size_t errsz)
{
	static const char *const fields[] = {
	    "agent", "key", "csr", "ttl", NULL};
	struct credential_x509_req *q;
	struct credential_jwt_req t;
	json_t *o = NULL, *v;
	const char *k;
	int r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    body != NULL && reqp != NULL, CUSTODY_E_INVALID_ARG);
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return CUSTODY_E_NOMEM;
	if ((r = load_request(body, len, q->request_sha256, &o, err, errsz)) !=
	    0)
		goto out;
	json_object_foreach(o, k, v)
	{
		if (!in(fields, k)) {
			r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "unknown member '%.64s' (the members are agent or "
			    "key, csr, ttl)",
			    k);
			goto out;
		}
		if (strcmp(k, "agent") == 0)
			r = text(v, "agent", 256, &q->agent, err, errsz);
		else if (strcmp(k, "key") == 0)
			r = text(v, "key", 64, &q->key, err, errsz);
		else if (strcmp(k, "ttl") == 0) {
			memset(&t, 0, sizeof(t));
			if ((r = parse_ttl(&t, v, err, errsz)) == 0)
				q->ttl = t.ttl;
		} else if (!json_is_string(v))
			r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
			    "csr must be a string (a PEM CERTIFICATE REQUEST)");
		else if (json_string_length(v) > csr_max)
			r = fail(err, errsz, CUSTODY_E_TOO_LARGE,
			    "csr is longer than %zu bytes", csr_max);
		else if ((q->csr = strndup(json_string_value(v),
			      json_string_length(v))) == NULL)
			r = CUSTODY_E_NOMEM;
		else
			q->csrlen = json_string_length(v);
		if (r != 0)
			goto out;
	}
	if ((q->agent == NULL) == (q->key == NULL)) {
		r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "name either agent or key (exactly one)");
		goto out;
	}
	if (q->csr == NULL) {
		r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "csr is required (a PEM CERTIFICATE REQUEST)");
		goto out;
	}
	if (strlen(q->csr) != q->csrlen) {
		r = fail(err, errsz, CUSTODY_E_INVALID_ARG,
		    "csr holds a NUL character");
		goto out;
	}
out:
	json_decref(o);
	if (r != 0) {
		credential_x509_req_free(q);
		return r;
	}
	*reqp = q;
	return 0;
}

void
credential_x509_req_free(struct credential_x509_req *q)
{
	if (q == NULL)
		return;
	free(q->agent);
	free(q->key);
	free(q->csr);
	free(q);
}

void
credential_jwt_req_free(struct credential_jwt_req *q)
{
	size_t i;

	if (q == NULL)
		return;
	free(q->agent);
	free(q->key);
	for (i = 0; i < q->naud; i++)
		free(q->aud[i]);
	free(q->aud);
	free(q->sub);
	free(q->claim_names);
	json_decref(q->claims);
	json_decref(q->act);
	free(q);
}

const char *
credential_jwt_alg(enum custody_alg alg, const char *ed25519_alg)
{
	switch (alg) {
	case CUSTODY_ALG_ED25519:
		return ed25519_alg != NULL &&
			       strcmp(ed25519_alg, "Ed25519") == 0
			   ? "Ed25519"
			   : "EdDSA";
	case CUSTODY_ALG_ECDSA_P256:
		return "ES256";
	case CUSTODY_ALG_ECDSA_P384:
		return "ES384";
	case CUSTODY_ALG_RSA_PSS_3072:
		return "PS256";
	default:
		return NULL;
	}
}

static json_t *
aud_json(const struct credential_jwt_req *q)
{
	json_t *a;
	size_t i;

	if (!q->aud_array)
		return json_string(q->aud[0]);
	if ((a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < q->naud; i++)
		if (json_array_append_new(a, json_string(q->aud[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* Hex SHA-256 of v's compact serialisation (hashes, not values, go in the
 * log: FORMATS.md section 2). */
static json_t *
hash_json(json_t *v)
{
	char *s, hex[65];
	uint8_t md[32];
	int r;

	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		return NULL;
	r = sha256(s, strlen(s), md);
	free(s);
	if (r != 0)
		return NULL;
	util_hex_encode(md, sizeof(md), hex);
	return json_string(hex);
}

static json_t *
detail_json(const struct credential_jwt_req *q, const char *sub,
    const struct credential_jwt *j, int64_t ttl)
{
	json_t *d, *c = NULL, *v;
	const char *k;

	d = json_pack("{s:s, s:o, s:I, s:I, s:s, s:I}", "sub", sub, "aud",
	    aud_json(q), "iat", (json_int_t)j->iat, "exp", (json_int_t)j->exp,
	    "jti", j->jti, "ttl", (json_int_t)ttl);
	if (d == NULL)
		return NULL;
	if (q->claims != NULL) {
		if ((c = json_object()) == NULL ||
		    json_object_set_new(d, "claims_sha256", c) != 0)
			goto fail;
		json_object_foreach(q->claims, k, v)
		{
			if (json_object_set_new(c, k, hash_json(v)) != 0)
				goto fail;
		}
	}
	if (q->act != NULL &&
	    json_object_set_new(d, "act_sha256", hash_json(q->act)) != 0)
		goto fail;
	return d;
fail:
	json_decref(d);
	return NULL;
}

/* base64url of o's compact serialisation. */
static int
b64u_json(json_t *o, char **outp)
{
	char *s;
	int r;

	if ((s = json_dumps(o, JSON_COMPACT)) == NULL)
		return CUSTODY_E_NOMEM;
	r = util_base64url_encode((const uint8_t *)s, strlen(s), outp);
	free(s);
	return r;
}

int
credential_jwt_build(const struct credential_jwt_req *q,
    const struct credential_key *k, const char *iss, const char *ed25519_alg,
    int64_t now, int64_t ttl, struct credential_jwt **jwtp)
{
	struct credential_jwt *j;
	json_t *h = NULL, *p = NULL, *v;
	const char *sub, *name;
	char *hb = NULL, *pb = NULL, *jti = NULL;
	uint8_t rnd[16];
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(q != NULL && k != NULL && k->kid != NULL &&
				       k->agent != NULL && iss != NULL &&
				       ttl > 0 && now > 0 &&
				       ttl <= INT64_MAX - now && jwtp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return CUSTODY_E_NOMEM;
	if ((j->alg = credential_jwt_alg(k->alg, ed25519_alg)) == NULL) {
		r = CUSTODY_E_UNKNOWN_ALG;
		goto out;
	}
	if ((r = util_random(rnd, sizeof(rnd))) != 0 ||
	    (r = util_base64url_encode(rnd, sizeof(rnd), &jti)) != 0)
		goto out;
	if (strlen(jti) >= sizeof(j->jti)) {
		r = CUSTODY_E_INTERNAL;
		goto out;
	}
	memcpy(j->jti, jti, strlen(jti) + 1);
	j->iat = now;
	j->exp = now + ttl;
	sub = q->sub != NULL ? q->sub : k->agent;
	r = CUSTODY_E_NOMEM;
	if ((h = json_pack("{s:s, s:s, s:s}", "alg", j->alg, "kid", k->kid,
		 "typ", "JWT")) == NULL ||
	    (p = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:s}", "iss", iss,
		 "sub", sub, "aud", aud_json(q), "iat", (json_int_t)j->iat,
		 "nbf", (json_int_t)j->iat, "exp", (json_int_t)j->exp, "jti",
		 j->jti)) == NULL)
		goto out;
	if (q->claims != NULL) {
		json_object_foreach(q->claims, name, v)
		{
			if (json_object_set(p, name, v) != 0)
				goto out;
		}
	}
	if (q->act != NULL && json_object_set(p, "act", q->act) != 0)
		goto out;
	if ((j->detail = detail_json(q, sub, j, ttl)) == NULL)
		goto out;
	if ((r = b64u_json(h, &hb)) != 0 || (r = b64u_json(p, &pb)) != 0)
		goto out;
	if (asprintf(&j->signing_input, "%s.%s", hb, pb) < 0) {
		j->signing_input = NULL;
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	j->len = strlen(j->signing_input);
	r = sha256(j->signing_input, j->len, j->tbs_sha256);
out:
	json_decref(h);
	json_decref(p);
	free(hb);
	free(pb);
	free(jti);
	if (r != 0) {
		credential_jwt_free(j);
		return r;
	}
	*jwtp = j;
	return 0;
}

int
credential_jwt_finish(const struct credential_jwt *j, const uint8_t *sig,
    size_t siglen, char **tokenp)
{
	char *s = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    j != NULL && sig != NULL && siglen > 0 && tokenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = util_base64url_encode(sig, siglen, &s)) != 0)
		return r;
	if (asprintf(tokenp, "%s.%s", j->signing_input, s) < 0)
		r = CUSTODY_E_NOMEM;
	free(s);
	return r;
}

void
credential_jwt_free(struct credential_jwt *j)
{
	if (j == NULL)
		return;
	free(j->signing_input);
	json_decref(j->detail);
	free(j);
}

int
credential_jwk(enum custody_alg alg, const uint8_t *spki, size_t spki_len,
    const char *kid, const char *ed25519_alg, json_t **jwkp)
{
	struct pubkey *pk = NULL;
	char *members = NULL;
	json_t *o = NULL;
	const char *jalg = credential_jwt_alg(alg, ed25519_alg);
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    spki != NULL && kid != NULL && jwkp != NULL, CUSTODY_E_INVALID_ARG);
	if (jalg == NULL)
		return CUSTODY_E_UNKNOWN_ALG;
	if ((r = pubkey_from_spki(alg, spki, spki_len, &pk)) != 0 ||
	    (r = pubkey_jwk_required(pk, &members)) != 0)
		goto out;
	if ((o = json_loads(members, 0, NULL)) == NULL ||
	    json_object_set_new(o, "kid", json_string(kid)) != 0 ||
	    json_object_set_new(o, "use", json_string("sig")) != 0 ||
	    json_object_set_new(o, "alg", json_string(jalg)) != 0) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	*jwkp = o;
	o = NULL;
out:
	json_decref(o);
	free(members);
	pubkey_free(pk);
	return r;
}
