/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of lcaudit.c, the offline auditor's lifecycle checks: synthetic
 * logs of leaves written as LIFECYCLE.md says, with keys generated here by
 * OpenSSL and DSSE envelopes really signed, fed to the checker; each test
 * asserts the exact violation it is about (kind, leaf and key).
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
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "audit.h"
#include "dsse.h"
#include "err.h"
#include "lcaudit.h"
#include "logdir.h"
#include "merkle.h"
#include "note.h"
#include "pubkey.h"
#include "store.h"
#include "testutil.h"
#include "util.h"

#define ROT_TYPE "https://custody.dev/key-rotation/v1"
#define DES_TYPE "https://custody.dev/key-destruction/v1"
#define HOUR	 3600
#define DAY	 86400

/* ---- keys --------------------------------------------------------------- */

struct tkey {
	EVP_PKEY *pk;
	int ed;
	uint8_t *spki;
	size_t spki_len;
	char *spki_b64;
	char spki_hex[65];
	char id[40];
	const char *purpose;
	int64_t max_age, ttl;
};

static void
tkey_gen(struct tkey *k, int ed, const char *id, const char *purpose)
{
	EVP_PKEY_CTX *c;
	uint8_t h[SHA256_DIGEST_LENGTH], *p;
	int n;

	memset(k, 0, sizeof(*k));
	k->ed = ed;
	c = EVP_PKEY_CTX_new_from_name(NULL, ed ? "ED25519" : "EC", NULL);
	assert_non_null(c);
	assert_int_equal(EVP_PKEY_keygen_init(c), 1);
	if (!ed)
		assert_int_equal(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(
				     c, NID_X9_62_prime256v1),
		    1);
	assert_int_equal(EVP_PKEY_keygen(c, &k->pk), 1);
	EVP_PKEY_CTX_free(c);
	n = i2d_PUBKEY(k->pk, NULL);
	assert_true(n > 0);
	k->spki = p = malloc((size_t)n);
	assert_non_null(p);
	assert_int_equal(i2d_PUBKEY(k->pk, &p), n);
	k->spki_len = (size_t)n;
	assert_int_equal(
	    util_base64_encode(k->spki, k->spki_len, &k->spki_b64), 0);
	SHA256(k->spki, k->spki_len, h);
	util_hex_encode(h, sizeof(h), k->spki_hex);
	snprintf(k->id, sizeof(k->id), "%s", id);
	k->purpose = purpose;
}

static void
tkey_free(struct tkey *k)
{
	EVP_PKEY_free(k->pk);
	free(k->spki);
	free(k->spki_b64);
}

/* A DSSE signature by k over msg (ECDSA: DER, as in an envelope). */
static void
tkey_sign(
    const struct tkey *k, const uint8_t *msg, size_t len, struct dsse_sig *s)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	dsse_keyid(k->spki, k->spki_len, s->keyid);
	assert_non_null(c);
	assert_int_equal(EVP_DigestSignInit(
			     c, NULL, k->ed ? NULL : EVP_sha256(), NULL, k->pk),
	    1);
	assert_int_equal(EVP_DigestSign(c, NULL, &n, msg, len), 1);
	assert_non_null(s->sig = malloc(n));
	assert_int_equal(EVP_DigestSign(c, s->sig, &n, msg, len), 1);
	s->len = n;
	EVP_MD_CTX_free(c);
}

/* ---- the log ------------------------------------------------------------ */

struct world {
	struct lcaudit *la;
	int64_t seq;   /* of the next leaf */
	int64_t t0_ms; /* 2026-11-23T10:00:00.000Z */
	struct tkey att, a, b, c;
};

static int
setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	int64_t t0;

	if (w == NULL || util_parse_time("2026-11-23T10:00:00Z", &t0) != 0 ||
	    lcaudit_new(NULL, &w->la) != 0)
		return -1;
	w->t0_ms = t0 * 1000;
	tkey_gen(&w->att, 1, "k_att0000000000001", "attestation");
	tkey_gen(&w->a, 0, "k_a000000000000001", "jwt");
	w->a.max_age = HOUR;
	w->a.ttl = DAY;
	tkey_gen(&w->b, 1, "k_b000000000000001", "jwt");
	w->b.max_age = HOUR;
	w->b.ttl = DAY;
	tkey_gen(&w->c, 0, "k_c000000000000001", "x509");
	*state = w;
	return 0;
}

static int
teardown(void **state)
{
	struct world *w = *state;

	lcaudit_free(w->la);
	tkey_free(&w->att);
	tkey_free(&w->a);
	tkey_free(&w->b);
	tkey_free(&w->c);
	free(w);
	return 0;
}

/* Feed raw bytes as the next leaf. */
static int64_t
put_raw(struct world *w, const char *bytes, size_t len)
{
	int64_t seq = w->seq++;

	assert_int_equal(
	    lcaudit_leaf(w->la, (uint64_t)seq, (const uint8_t *)bytes, len), 0);
	return seq;
}

/*
 * The next leaf: {"v":1,"seq","time"} then the members of fields (taken),
 * at t seconds (and ms milliseconds) after t0.
 */
static int64_t
put_ms(struct world *w, int64_t t_ms, json_t *fields)
{
	json_t *o;
	char tm[32], full[40], *s;
	int64_t ms = w->t0_ms + t_ms, seq;

	assert_non_null(fields);
	util_format_time(ms / 1000, tm, sizeof(tm));
	tm[strlen(tm) - 1] = '\0'; /* the Z */
	snprintf(full, sizeof(full), "%s.%03dZ", tm, (int)(ms % 1000));
	o = json_pack(
	    "{s:i, s:I, s:s}", "v", 1, "seq", (json_int_t)w->seq, "time", full);
	assert_non_null(o);
	assert_int_equal(json_object_update(o, fields), 0);
	json_decref(fields);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_non_null(s);
	seq = put_raw(w, s, strlen(s));
	free(s);
	json_decref(o);
	return seq;
}

static int64_t
put(struct world *w, int64_t t, json_t *fields)
{
	return put_ms(w, t * 1000, fields);
}

static json_t *
key_ref(const struct tkey *k)
{
	return json_pack("{s:s, s:s}", "id", k->id, "kid", "kid-of-key");
}

/* The facts of a key, as a key.create detail or a new_key carries them. */
static json_t *
facts(const struct tkey *k, int with_id)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b, s:b, "
			      "s:b, s:b, s:b}}",
	    "agent", "spiffe://example.org/agent/a", "owner", "team-a",
	    "purpose", k->purpose, "alg", k->ed ? "ed25519" : "ecdsa-p256",
	    "spki", k->spki_b64, "token", "pkcs11:token=custody;id=%01",
	    "attributes", "sensitive", 1, "always_sensitive", 1, "extractable",
	    0, "never_extractable", 1, "local", 1);

	assert_non_null(d);
	if (k->max_age)
		json_object_set_new(d, "max_age", json_integer(k->max_age));
	if (k->ttl)
		json_object_set_new(d, "ttl", json_integer(k->ttl));
	if (with_id) {
		json_object_set_new(d, "id", json_string(k->id));
		json_object_set_new(d, "kid", json_string("kid-of-key"));
	}
	return d;
}

static json_t *
decision(const char *event, const struct tkey *k)
{
	return json_pack("{s:s, s:s, s:o, s:{s:s, s:s}, s:s}", "event", event,
	    "principal", "custody:scheduler", "key", key_ref(k), "policy",
	    "sha256", "00", "rule", "default", "decision", "allow");
}

static int64_t
leaf_create(struct world *w, int64_t t, const struct tkey *k)
{
	json_t *o = decision("key.create", k);

	json_object_set_new(o, "detail", facts(k, 0));
	return put(w, t, o);
}

static void
hex32(const uint8_t h[32], char out[65])
{
	util_hex_encode(h, 32, out);
}

static json_t *
rotation_statement(const struct tkey *old, const struct tkey *nw)
{
	return json_pack(
	    "{s:s, s:[{s:s, s:{s:s}}], s:s, s:{s:{s:s, s:s, s:s}, "
	    "s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:s, s:s, s:s}}",
	    "_type", "https://in-toto.io/Statement/v1", "subject", "name",
	    nw->id, "digest", "sha256", nw->spki_hex, "predicateType", ROT_TYPE,
	    "predicate", "previousKey", "id", old->id, "algorithm",
	    old->ed ? "ed25519" : "ecdsa-p256", "spkiSha256", old->spki_hex,
	    "newKey", "id", nw->id, "algorithm",
	    nw->ed ? "ed25519" : "ecdsa-p256", "spkiSha256", nw->spki_hex,
	    "spki", nw->spki_b64, "agent", "spiffe://example.org/agent/a",
	    "owner", "team-a", "purpose", nw->purpose, "reason", "max_age",
	    "trigger", "age", "effectiveTime", "2026-11-23T11:00:00Z");
}

static json_t *
destruction_statement(const struct tkey *k)
{
	return json_pack("{s:s, s:[{s:s, s:{s:s}}], s:s, s:{s:{s:s, s:s, s:s, "
			 "s:s}, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:i, s:{s:s, "
			 "s:i}}}}",
	    "_type", "https://in-toto.io/Statement/v1", "subject", "name",
	    k->id, "digest", "sha256", k->spki_hex, "predicateType", DES_TYPE,
	    "predicate", "key", "id", k->id, "algorithm",
	    k->ed ? "ed25519" : "ecdsa-p256", "spkiSha256", k->spki_hex, "uri",
	    "pkcs11:token=custody;id=%01", "agent", "a", "owner", "team-a",
	    "purpose", k->purpose, "reason", "ttl", "trigger", "ttl", "time",
	    "2026-11-24T10:00:00Z", "evidence", "objectsDestroyed", 2,
	    "searchByCkaId", "ckaId", "01", "objectsFound", 0);
}

/* Statement bytes, their PAE's SHA-256 and the base64 of an envelope of
 * them signed by signers[0..n). */
struct signed_stmt {
	char *body;
	uint8_t pae_sha[32];
	char *env_b64;
};

static void
sign_statement(json_t *stmt, struct tkey *const *signers, size_t n,
    struct signed_stmt *out)
{
	struct dsse_sig sigs[DSSE_MAX_SIGS];
	uint8_t *pae;
	size_t paelen, envlen, i;
	char *env;

	assert_true(n <= DSSE_MAX_SIGS);
	out->body = json_dumps(stmt, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(stmt);
	assert_non_null(out->body);
	assert_int_equal(dsse_pae(DSSE_INTOTO, (const uint8_t *)out->body,
			     strlen(out->body), &pae, &paelen),
	    0);
	SHA256(pae, paelen, out->pae_sha);
	for (i = 0; i < n; i++)
		tkey_sign(signers[i], pae, paelen, &sigs[i]);
	assert_int_equal(dsse_envelope(DSSE_INTOTO, (const uint8_t *)out->body,
			     strlen(out->body), sigs, n, &env, &envlen),
	    0);
	assert_int_equal(
	    util_base64_encode((const uint8_t *)env, envlen, &out->env_b64), 0);
	for (i = 0; i < n; i++)
		dsse_sig_clear(&sigs[i]);
	free(env);
	free(pae);
}

static void
signed_stmt_clear(struct signed_stmt *s)
{
	free(s->body);
	free(s->env_b64);
}

static int64_t
leaf_attest(struct world *w, int64_t t, const struct tkey *about,
    int64_t decision_seq, const char *ptype, const char *env_b64)
{
	json_t *o = json_pack("{s:s, s:s, s:o, s:{s:I, s:s, s:s}}", "event",
	    "attestation", "principal", "custody:scheduler", "key",
	    key_ref(about), "detail", "decision_seq", (json_int_t)decision_seq,
	    "predicate_type", ptype, "envelope", env_b64);

	return put(w, t, o);
}

/* How a rotation or destruction is attested in a test. */
enum attest {
	ATT_GOOD,      /* as it should be */
	ATT_NONE,      /* no attestation leaf */
	ATT_OTHER_PAE, /* the decision's tbs_sha256 is of another statement */
	ATT_WRONG_SUBJECT,  /* the statement's subject is another key (signed,
			       and its PAE the decision's tbs_sha256) */
	ATT_WRONG_PREVIOUS, /* rotation: previousKey is another key */
};

/* The statement's subject digest, or predicate member m's spkiSha256. */
static void
set_digest(json_t *st, const char *m, const char *hex)
{
	json_t *o = m == NULL
			? json_object_get(
			      json_array_get(json_object_get(st, "subject"), 0),
			      "digest")
			: json_object_get(json_object_get(st, "predicate"), m);

	assert_non_null(o);
	json_object_set_new(
	    o, m == NULL ? "sha256" : "spkiSha256", json_string(hex));
}

/*
 * key.rotate of old to nw at t, then (unless ATT_NONE) the attestation leaf
 * signed by signers[0..n) at t + 1. Returns the rotate leaf's seq.
 */
static int64_t
rotate(struct world *w, int64_t t, struct tkey *old, struct tkey *nw,
    struct tkey *const *signers, size_t n, enum attest how)
{
	struct signed_stmt ss, other;
	json_t *o, *nk;
	char tbs[65];
	int64_t seq;

	json_t *stmt = rotation_statement(old, nw);

	if (how == ATT_WRONG_SUBJECT)
		set_digest(stmt, NULL, old->spki_hex);
	if (how == ATT_WRONG_PREVIOUS)
		set_digest(stmt, "previousKey", nw->spki_hex);
	sign_statement(stmt, signers, n, &ss);
	hex32(ss.pae_sha, tbs);
	if (how == ATT_OTHER_PAE) {
		json_t *st = rotation_statement(old, nw);

		json_object_set_new(json_object_get(st, "predicate"), "reason",
		    json_string("something else"));
		sign_statement(st, NULL, 0, &other);
		hex32(other.pae_sha, tbs);
		signed_stmt_clear(&other);
	}
	nk = facts(nw, 1);
	o = decision("key.rotate", old);
	json_object_set_new(o, "tbs_sha256", json_string(tbs));
	json_object_set_new(o, "detail",
	    json_pack("{s:s, s:s, s:s, s:s, s:o}", "trigger", "age", "reason",
		"max_age", "old", old->id, "new", nw->id, "new_key", nk));
	seq = put(w, t, o);
	if (how != ATT_NONE)
		leaf_attest(w, t + 1, nw, seq, ROT_TYPE, ss.env_b64);
	signed_stmt_clear(&ss);
	return seq;
}

static struct tkey *const *
one(struct tkey *k)
{
	static struct tkey *list[1];

	list[0] = k;
	return list;
}

static int64_t
rotate_ok(struct world *w, int64_t t, struct tkey *old, struct tkey *nw)
{
	struct tkey *both[2] = {old, nw};

	return rotate(w, t, old, nw, both, 2, ATT_GOOD);
}

/* key.destroy of k at t, then its attestation signed by signer at t + 1. */
static int64_t
destroy(struct world *w, int64_t t, struct tkey *k, struct tkey *signer,
    enum attest how)
{
	struct signed_stmt ss, other;
	char tbs[65];
	json_t *o;
	int64_t seq;

	json_t *stmt = destruction_statement(k);

	if (how == ATT_WRONG_SUBJECT)
		set_digest(stmt, NULL, signer->spki_hex);
	sign_statement(stmt, one(signer), 1, &ss);
	hex32(ss.pae_sha, tbs);
	if (how == ATT_OTHER_PAE) {
		json_t *st = destruction_statement(k);

		json_object_set_new(json_object_get(st, "predicate"), "reason",
		    json_string("something else"));
		sign_statement(st, NULL, 0, &other);
		hex32(other.pae_sha, tbs);
		signed_stmt_clear(&other);
	}
	o = decision("key.destroy", k);
	json_object_set_new(o, "tbs_sha256", json_string(tbs));
	json_object_set_new(o, "detail",
	    json_pack("{s:s, s:s, s:{s:i, s:i}}", "trigger", "ttl", "reason",
		"ttl reached", "evidence", "objects_destroyed", 2,
		"objects_found_after", 0));
	seq = put(w, t, o);
	if (how != ATT_NONE)
		leaf_attest(w, t + 1, k, seq, DES_TYPE, ss.env_b64);
	signed_stmt_clear(&ss);
	return seq;
}

static int64_t
leaf_retire(struct world *w, int64_t t, const struct tkey *k)
{
	json_t *o = decision("key.retire", k);

	json_object_set_new(o, "detail",
	    json_pack("{s:s, s:s}", "trigger", "event", "reason",
		"compromise INC-1"));
	return put(w, t, o);
}

static int64_t
leaf_jwt(struct world *w, int64_t t, const struct tkey *k, int64_t exp)
{
	json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s, s:{s:s, s:s}, s:s, "
			      "s:{s:s, s:s, s:I, s:I, s:s}}",
	    "event", "credential.jwt", "principal",
	    "spiffe://example.org/broker/a", "key", key_ref(k),
	    "request_sha256", "aa", "tbs_sha256", "bb", "policy", "sha256",
	    "00", "rule", "brokers", "decision", "allow", "detail", "sub",
	    "agent-a", "aud", "api", "iat", (json_int_t)(w->t0_ms / 1000 + t),
	    "exp", (json_int_t)exp, "jti", "j1");

	return put(w, t, o);
}

static int64_t
leaf_x509(struct world *w, int64_t t, const struct tkey *k, const char *na)
{
	json_t *o = decision("credential.x509", k);

	json_object_set_new(o, "detail",
	    json_pack("{s:s, s:s, s:[s], s:s}", "serial", "01", "subject", "",
		"sans", "agent-a", "not_after", na));
	return put(w, t, o);
}

static int64_t
leaf_outcome_error(struct world *w, int64_t t, int64_t decision_seq)
{
	return put(w, t,
	    json_pack("{s:s, s:s, s:{s:I, s:s, s:s}}", "event", "outcome",
		"principal", "spiffe://example.org/broker/a", "detail",
		"decision_seq", (json_int_t)decision_seq, "result", "error",
		"error", "token failure"));
}

/* ---- assertions --------------------------------------------------------- */

/* How many violations of kind (at leaf seq unless seq == -2, about key id
 * unless NULL; id "" means none). */
static size_t
count(
    const struct world *w, enum lcaudit_kind kind, int64_t seq, const char *id)
{
	const struct lcaudit_violation *v;
	size_t n, i, c = 0;

	v = lcaudit_violations(w->la, &n);
	for (i = 0; i < n; i++) {
		if (v[i].kind != kind || (seq != -2 && v[i].seq != seq))
			continue;
		if (id != NULL && id[0] == '\0' && v[i].key != NULL)
			continue;
		if (id != NULL && id[0] != '\0' &&
		    (v[i].key == NULL || strcmp(v[i].key, id) != 0))
			continue;
		c++;
	}
	return c;
}

static size_t
total(const struct world *w)
{
	size_t n;

	(void)lcaudit_violations(w->la, &n);
	return n;
}

/* Print the violations (shown by cmocka when a test fails). */
static void
dump(const struct world *w)
{
	const struct lcaudit_violation *v;
	size_t n, i;

	v = lcaudit_violations(w->la, &n);
	for (i = 0; i < n; i++)
		print_message("  [%s] leaf %lld key %s: %s\n",
		    lcaudit_kind_name(v[i].kind), (long long)v[i].seq,
		    v[i].key ? v[i].key : "-", v[i].msg);
}

/* Exactly n violations (listed when not). */
static void
expect_total(const struct world *w, size_t n)
{
	if (total(w) != n)
		dump(w);
	assert_int_equal(total(w), n);
}

static void
finish(struct world *w)
{
	assert_int_equal(lcaudit_finish(w->la), 0);
}

/* The world's attestation key and key a, created at t = 0 and 1. */
static void
start(struct world *w)
{
	leaf_create(w, 0, &w->att);
	leaf_create(w, 1, &w->a);
}

/* ---- tests -------------------------------------------------------------- */

/* A whole clean history: every check passes, every fact is recorded. */
static void
test_clean_history(void **state)
{
	struct world *w = *state;
	const struct lcaudit_key *a, *b;
	const struct lcaudit_counts *c;
	int64_t rot, des, j1, j2, xs;
	json_t *rep;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	put(w, 0,
	    json_pack("{s:s, s:s, s:{s:s}}", "event", "service.start",
		"principal", "custody:service", "detail", "version", "1"));
	start(w);
	j1 = leaf_jwt(w, 10, &w->a, w->t0_ms / 1000 + 910);
	j2 = leaf_jwt(w, 20, &w->a, w->t0_ms / 1000 + 5000);
	leaf_outcome_error(w, 21, j2); /* not issued */
	/* a refused request is only counted */
	put(w, 30,
	    json_pack("{s:s, s:s, s:o, s:s, s:s}", "event", "credential.jwt",
		"principal", "x", "key", key_ref(&w->a), "decision", "deny",
		"reason", "no rule"));
	put(w, 40,
	    json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:[{s:s, s:s}]}}",
		"event", "lifecycle.event", "principal", "ops", "detail",
		"type", "agent.offboarded", "id", "ev-1", "subject", "agent",
		"a", "actions", "key", w->a.id, "action", "rotate"));
	rot = rotate_ok(w, HOUR - 30, &w->a, &w->b);
	xs = leaf_x509(w, HOUR, &w->b, "2026-11-23T12:00:00Z");
	des = destroy(w, HOUR + 600, &w->a, &w->att, ATT_GOOD);
	finish(w);
	expect_total(w, 0);
	assert_true(lcaudit_ok(w->la));

	a = lcaudit_key_get(w->la, w->a.id);
	b = lcaudit_key_get(w->la, w->b.id);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->state, LCAUDIT_DESTROYED);
	assert_string_equal(a->purpose, "jwt");
	assert_string_equal(a->alg, "ecdsa-p256");
	assert_string_equal(a->spki_sha256, w->a.spki_hex);
	assert_int_equal(a->spki_len, w->a.spki_len);
	assert_int_equal(a->max_age, HOUR);
	assert_int_equal(a->ttl, DAY);
	assert_int_equal(a->created_seq, 2);
	assert_int_equal(a->ended_seq, rot);
	assert_int_equal(a->ended_how, LCAUDIT_END_ROTATE);
	assert_string_equal(a->end_trigger, "age");
	assert_int_equal(a->destroyed_seq, des);
	assert_string_equal(a->destroy_trigger, "ttl");
	assert_int_equal(a->objects_found_after, 0);
	assert_string_equal(a->successor, w->b.id);
	assert_string_equal(b->predecessor, w->a.id);
	assert_int_equal(b->created_seq, rot);
	assert_int_equal(b->state, LCAUDIT_ACTIVE);
	assert_int_equal(a->issued, 1);
	assert_int_equal(a->failed, 1);
	assert_int_equal(a->denied, 1);
	assert_int_equal(a->cred_first_seq, j1);
	assert_int_equal(a->cred_last_seq, j1);
	assert_int_equal(a->cred_max_exp, w->t0_ms / 1000 + 910);
	assert_int_equal(b->issued, 1);
	assert_int_equal(b->cred_first_seq, xs);
	assert_int_equal(b->cred_max_exp, w->t0_ms / 1000 + 2 * HOUR);
	assert_int_equal(a->rotation.decision_seq, rot);
	assert_int_equal(a->rotation.seq, rot + 1);
	assert_int_equal(a->destruction.decision_seq, des);
	assert_int_equal(a->destruction.seq, des + 1);
	assert_string_equal(a->destruction.signer, w->att.id);
	assert_true(a->max_age_late_ms < 0);
	assert_true(b->max_age_late_ms < 0); /* judged at the last leaf */
	c = lcaudit_counts(w->la);
	assert_int_equal(c->keys, 3);
	assert_int_equal(c->active, 2);
	assert_int_equal(c->destroyed, 1);
	assert_int_equal(c->deny, 1);
	assert_int_equal(c->credentials_failed, 1);
	assert_int_equal(c->attestations_verified, 2);
	assert_int_equal(c->ignored, 1);

	/* the reports */
	rep = lcaudit_report_json(w->la);
	assert_non_null(rep);
	assert_true(json_is_true(json_object_get(rep, "ok")));
	assert_int_equal(json_array_size(json_object_get(rep, "keys")), 3);
	assert_int_equal(json_array_size(json_object_get(rep, "events")), 1);
	assert_int_equal(
	    json_integer_value(json_object_get(rep, "tolerance")), 60);
	assert_true(json_is_true(json_object_get(
	    json_array_get(
		json_object_get(json_array_get(json_object_get(rep, "keys"), 1),
		    "attestations"),
		0),
	    "verified")));
	json_decref(rep);
	assert_non_null(f = open_memstream(&text, &len));
	assert_int_equal(lcaudit_report_text(w->la, f), 0);
	fclose(f);
	assert_non_null(strstr(text, "rotation attestation: verified"));
	assert_non_null(strstr(text, "destruction attestation: verified"));
	assert_non_null(strstr(text, "agent.offboarded ev-1"));
	assert_non_null(strstr(text, "0 violations, OK"));
	free(text);
	assert_non_null(f = open_memstream(&text, &len));
	assert_int_equal(lcaudit_report_html(w->la, f), 0);
	fclose(f);
	assert_non_null(strstr(text, "<!DOCTYPE html>"));
	assert_null(strstr(text, "<script"));
	assert_null(strstr(text, "http://"));
	free(text);
	/* no more leaves once finished */
	assert_int_equal(
	    lcaudit_leaf(w->la, 99, (const uint8_t *)"{}", 2), CUSTODY_E_STATE);
}

/* Check 2: a credential signed after the key's destruction. */
static void
test_credential_after_destruction(void **state)
{
	struct world *w = *state;
	int64_t des, bad;

	start(w);
	leaf_jwt(w, 10, &w->a, 0);
	des = destroy(w, 20, &w->a, &w->att, ATT_GOOD);
	bad = leaf_jwt(w, 30, &w->a, 0);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_CREDENTIAL, bad, w->a.id), 1);
	assert_non_null(strstr(lcaudit_violations(w->la, &(size_t){0})[0].msg,
	    "after its destruction"));
	expect_total(w, 1);
	assert_false(lcaudit_ok(w->la));
	(void)des;
}

/* Check 2: a credential signed after retirement, by key.retire or by a
 * rotation; one whose signing failed still had to be active. */
static void
test_credential_after_retirement(void **state)
{
	struct world *w = *state;
	int64_t b1, b2, b3;

	start(w);
	leaf_create(w, 2, &w->c);
	leaf_retire(w, 10, &w->c);
	b1 = leaf_x509(w, 11, &w->c, "2026-11-24T10:00:00Z");
	rotate_ok(w, 20, &w->a, &w->b);
	b2 = leaf_jwt(w, 30, &w->a, 0);
	b3 = leaf_jwt(w, 31, &w->a, 0);
	leaf_outcome_error(w, 32, b3);
	leaf_jwt(w, 40, &w->b, 0); /* the new key may */
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_CREDENTIAL, b1, w->c.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_CREDENTIAL, b2, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_CREDENTIAL, b3, w->a.id), 1);
	expect_total(w, 3);
	assert_int_equal(lcaudit_key_get(w->la, w->a.id)->issued, 1);
	assert_int_equal(lcaudit_key_get(w->la, w->a.id)->failed, 1);
	assert_int_equal(
	    lcaudit_key_get(w->la, w->c.id)->ended_how, LCAUDIT_END_RETIRE);
}

/* Check 1: a rotation no attestation completes. */
static void
test_rotation_unattested(void **state)
{
	struct world *w = *state;
	struct tkey *both[2] = {&w->a, &w->b};
	int64_t rot;

	start(w);
	rot = rotate(w, 10, &w->a, &w->b, both, 2, ATT_NONE);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, rot, w->a.id), 1);
	expect_total(w, 1);
	assert_int_equal(lcaudit_key_get(w->la, w->a.id)->rotation.seq, -1);
}

/* Check 1: an attestation signed by the new key only (or the old only). */
static void
test_rotation_one_signer(void **state)
{
	struct world *w = *state;
	int64_t rot, rot2;

	start(w);
	rot = rotate(w, 10, &w->a, &w->b, one(&w->b), 1, ATT_GOOD);
	rot2 = rotate(w, 20, &w->b, &w->c, one(&w->b), 1, ATT_GOOD);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, rot + 1, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, rot, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, rot2 + 1, w->b.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, rot2, w->b.id), 1);
	expect_total(w, 4);
	assert_non_null(strstr(
	    lcaudit_key_get(w->la, w->a.id)->rotation.problem, "old key"));
	assert_non_null(strstr(
	    lcaudit_key_get(w->la, w->b.id)->rotation.problem, "new key"));
}

/* Checks 1 and 4: an envelope whose PAE is not the decision's tbs_sha256
 * (each signed by the right keys). */
static void
test_attestation_other_pae(void **state)
{
	struct world *w = *state;
	struct tkey *both[2] = {&w->a, &w->b};
	int64_t rot, des;

	start(w);
	rot = rotate(w, 10, &w->a, &w->b, both, 2, ATT_OTHER_PAE);
	des = destroy(w, 20, &w->a, &w->att, ATT_OTHER_PAE);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, rot + 1, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, rot, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, des + 1, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, des, w->a.id), 1);
	expect_total(w, 4);
	assert_non_null(strstr(
	    lcaudit_key_get(w->la, w->a.id)->rotation.problem, "tbs_sha256"));
}

/* Checks 1 and 4: a statement about another key, signed by the right keys
 * and with the right PAE hash. */
static void
test_attestation_wrong_subject(void **state)
{
	struct world *w = *state;
	struct tkey *both[2] = {&w->a, &w->b}, *both2[2] = {&w->b, &w->c};
	int64_t rot, rot2, des;

	start(w);
	rot = rotate(w, 10, &w->a, &w->b, both, 2, ATT_WRONG_SUBJECT);
	rot2 = rotate(w, 20, &w->b, &w->c, both2, 2, ATT_WRONG_PREVIOUS);
	des = destroy(w, 30, &w->a, &w->att, ATT_WRONG_SUBJECT);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, rot + 1, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, rot, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, rot2 + 1, w->b.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, rot2, w->b.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, des + 1, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, des, w->a.id), 1);
	expect_total(w, 6);
	assert_non_null(strstr(
	    lcaudit_key_get(w->la, w->a.id)->rotation.problem, "subject"));
	assert_non_null(strstr(
	    lcaudit_key_get(w->la, w->b.id)->rotation.problem, "previousKey"));
	assert_non_null(strstr(
	    lcaudit_key_get(w->la, w->a.id)->destruction.problem, "subject"));
}

/* Check 4: a destruction no attestation completes. */
static void
test_destruction_unattested(void **state)
{
	struct world *w = *state;
	int64_t des;

	start(w);
	des = destroy(w, 10, &w->a, &w->att, ATT_NONE);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, des, w->a.id), 1);
	expect_total(w, 1);
	assert_int_equal(
	    lcaudit_key_get(w->la, w->a.id)->state, LCAUDIT_DESTROYED);
}

/* Check 4: attested by a key that is not an attestation key, or by an
 * attestation key that was no longer active. */
static void
test_destruction_wrong_signer(void **state)
{
	struct world *w = *state;
	int64_t des, des2;
	struct tkey att2;

	start(w);
	leaf_create(w, 2, &w->b);
	leaf_create(w, 3, &w->c);
	des = destroy(w, 10, &w->a, &w->b, ATT_GOOD);
	/* the attestation key is retired: a new one is not yet created */
	tkey_gen(&att2, 0, "k_att0000000000002", "attestation");
	rotate_ok(w, 20, &w->att, &att2);
	des2 = destroy(w, 30, &w->c, &w->att, ATT_GOOD);
	/* the active one may */
	destroy(w, 40, &w->b, &att2, ATT_GOOD);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, des + 1, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, des, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_ATTESTATION, des2 + 1, w->c.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, des2, w->c.id), 1);
	expect_total(w, 4);
	assert_non_null(
	    strstr(lcaudit_key_get(w->la, w->a.id)->destruction.problem,
		"not an attestation key"));
	assert_non_null(
	    strstr(lcaudit_key_get(w->la, w->c.id)->destruction.problem,
		"not active"));
	assert_string_equal(
	    lcaudit_key_get(w->la, w->b.id)->destruction.signer, att2.id);
	tkey_free(&att2);
}

/* Check 3: max_age, with the tolerance at the leaf that ended the key, and
 * at the log's last leaf for a key still active. */
static void
test_max_age(void **state)
{
	struct world *w = *state;
	int64_t late;

	start(w);
	/* a (created at 1 s) rotated 59.9 s after its max_age: within */
	rotate_ok(w, 1 + HOUR + 59, &w->a, &w->b);
	/* b (created then) rotated 61 s after it: past the tolerance */
	late = rotate_ok(w, (1 + HOUR + 59) + HOUR + 61, &w->b, &w->c);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_MAX_AGE, late, w->b.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_MAX_AGE, -2, w->a.id), 0);
	expect_total(w, 1);
	assert_int_equal(
	    lcaudit_key_get(w->la, w->a.id)->max_age_late_ms, 59 * 1000);
	assert_int_equal(
	    lcaudit_key_get(w->la, w->b.id)->max_age_late_ms, 61 * 1000);
}

static void
test_max_age_at_end(void **state)
{
	struct world *w = *state;

	start(w);
	leaf_jwt(w, 1 + HOUR + 60, &w->a, 0); /* still within */
	put_ms(w, (1 + HOUR + 60) * 1000 + 1,
	    json_pack("{s:s, s:s}", "event", "service.stop", "principal",
		"custody:service"));
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_MAX_AGE, -1, w->a.id), 1);
	expect_total(w, 1);
}

/* Check 3: ttl, whatever ended the key's active life. */
static void
test_ttl(void **state)
{
	struct world *w = *state;
	int64_t late;

	leaf_create(w, 0, &w->att);
	w->a.max_age = 0;
	w->b.max_age = 0;
	leaf_create(w, 1, &w->a);
	leaf_create(w, 1, &w->b);
	leaf_retire(w, 100, &w->a);
	/* a: destroyed 60 s after its ttl, within the tolerance */
	destroy(w, 1 + DAY + 60, &w->a, &w->att, ATT_GOOD);
	/* b: 62 s after it */
	late = destroy(w, 1 + DAY + 62, &w->b, &w->att, ATT_GOOD);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_TTL, late, w->b.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_TTL, -2, w->a.id), 0);
	expect_total(w, 1);
	assert_int_equal(lcaudit_key_get(w->la, w->b.id)->ttl_late_ms, 62000);
}

static void
test_ttl_at_end(void **state)
{
	struct world *w = *state;

	w->a.max_age = 0;
	start(w);
	leaf_retire(w, 10, &w->a);
	put(w, 1 + DAY + 61,
	    json_pack("{s:s, s:s}", "event", "checkpoint.sign", "principal",
		"custody:service"));
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_TTL, -1, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_MAX_AGE, -2, NULL), 0);
	expect_total(w, 1);
}

/* A tolerance of 0 from the options. */
static void
test_tolerance_option(void **state)
{
	struct world *w = *state;
	struct lcaudit_opts o = {0};

	lcaudit_free(w->la);
	assert_int_equal(lcaudit_new(&o, &w->la), 0);
	assert_int_equal(lcaudit_tolerance(w->la), 0);
	start(w);
	rotate_ok(w, 1 + HOUR + 1, &w->a, &w->b);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_MAX_AGE, -2, w->a.id), 1);
	expect_total(w, 1);
}

/* Steps a key cannot take: rotate a retired key, destroy twice, a step on
 * a key no leaf created, a key created twice. */
static void
test_state(void **state)
{
	struct world *w = *state;
	int64_t s1, s2, s3, s4;

	start(w);
	leaf_retire(w, 10, &w->a);
	s1 = leaf_retire(w, 11, &w->a);
	s2 = leaf_retire(w, 12, &w->c);
	destroy(w, 20, &w->a, &w->att, ATT_GOOD);
	s3 = destroy(w, 30, &w->a, &w->att, ATT_NONE);
	s4 = leaf_create(w, 40, &w->a);
	finish(w);
	assert_int_equal(count(w, LCAUDIT_V_STATE, s1, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_UNKNOWN_KEY, s2, ""), 1);
	assert_int_equal(count(w, LCAUDIT_V_STATE, s3, w->a.id), 1);
	assert_int_equal(count(w, LCAUDIT_V_DUPLICATE_KEY, s4, w->a.id), 1);
	expect_total(w, 4);
}

/* Malformed and hostile leaves are violations, never crashes. */
static void
test_malformed(void **state)
{
	struct world *w = *state;
	static const char *const raw[] = {
	    "",
	    "{",
	    "[]",
	    "null",
	    "{\"v\":1}",
	    "{\"v\":2,\"seq\":5}",
	    "{\"v\":1,\"v\":1}",
	    "\xff\xfe",
	};
	char *deep;
	size_t i, n = 200000;
	int64_t s;
	json_t *o;

	for (i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
		put_raw(w, raw[i], strlen(raw[i]));
	assert_int_equal(count(w, LCAUDIT_V_MALFORMED, -2, ""),
	    sizeof(raw) / sizeof(raw[0]));
	/* deep nesting: bounded by the parser */
	assert_non_null(deep = malloc(2 * n + 64));
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	s = put_raw(w, deep, 2 * n);
	assert_int_equal(count(w, LCAUDIT_V_MALFORMED, s, ""), 1);
	/* no decision, a bad time, a wrong seq */
	s = put(w, 0, json_pack("{s:s}", "event", "key.create"));
	assert_int_equal(count(w, LCAUDIT_V_MALFORMED, s, ""), 1);
	{
		char buf[256];

		snprintf(buf, sizeof(buf),
		    "{\"v\":1,\"seq\":%lld,\"time\":\"x\",\"event\":"
		    "\"key.create\",\"decision\":\"allow\"}",
		    (long long)w->seq);
		s = put_raw(w, buf, strlen(buf));
		assert_int_equal(count(w, LCAUDIT_V_MALFORMED, s, ""), 1);
		snprintf(buf, sizeof(buf),
		    "{\"v\":1,\"seq\":%lld,\"time\":\"2026-11-23T10:00:00Z\","
		    "\"event\":\"key.create\"}",
		    (long long)w->seq + 7);
		s = put_raw(w, buf, strlen(buf));
		assert_int_equal(count(w, LCAUDIT_V_SEQUENCE, s, ""), 1);
	}
	free(deep);
	/* lifecycle leaves without their fields, or with wrong types */
	start(w);
	put(w, 2,
	    json_pack(
		"{s:s, s:s}", "event", "key.create", "decision", "allow"));
	put(w, 2,
	    json_pack("{s:s, s:o, s:s, s:s}", "event", "key.create", "key",
		key_ref(&w->b), "decision", "allow", "detail", "nope"));
	o = decision("key.create", &w->c);
	json_object_set_new(o, "detail",
	    json_pack(
		"{s:s, s:s, s:i}", "spki", "!!!", "alg", "x", "max_age", -5));
	s = put(w, 2, o);
	assert_true(count(w, LCAUDIT_V_MALFORMED, s, w->c.id) >= 2);
	put(w, 3,
	    json_pack("{s:s, s:o, s:s, s:i}", "event", "key.rotate", "key",
		key_ref(&w->a), "decision", "allow", "detail", 7));
	put(w, 3,
	    json_pack("{s:s, s:o, s:s, s:{s:s}}", "event", "key.rotate", "key",
		key_ref(&w->a), "decision", "allow", "detail", "new_key", "k"));
	put(w, 3,
	    json_pack("{s:s, s:s, s:i}", "event", "key.destroy", "decision",
		"allow", "detail", 1));
	put(w, 3,
	    json_pack("{s:s, s:s, s:s}", "event", "credential.jwt", "decision",
		"allow", "key", "k"));
	put(w, 3,
	    json_pack("{s:s, s:i}", "event", "credential.jwt", "decision", 1));
	put(w, 4,
	    json_pack("{s:s, s:{s:s}}", "event", "attestation", "detail",
		"envelope", "%%%"));
	put(w, 4,
	    json_pack("{s:s, s:{s:I, s:s, s:s}}", "event", "attestation",
		"detail", "decision_seq", (json_int_t)INT64_MIN,
		"predicate_type", ROT_TYPE, "envelope", "e30="));
	put(w, 4,
	    json_pack("{s:s, s:{s:I}}", "event", "outcome", "detail",
		"decision_seq", (json_int_t)-1));
	put(w, 4,
	    json_pack("{s:s, s:{s:[i, s, n]}}", "event", "lifecycle.event",
		"detail", "actions", 1, "x"));
	put(w, 4, json_pack("{s:s, s:s}", "event", "recovery", "detail", "x"));
	/* an attestation of a real rotation, with broken envelopes */
	{
		struct tkey *both[2] = {&w->a, &w->b};
		static const char *const envs[] = {"", "e30=", "bnVsbA==",
		    "eyJwYXlsb2FkVHlwZSI6MSwicGF5bG9hZCI6W119"};
		int64_t rot = rotate(w, 10, &w->a, &w->b, both, 2, ATT_NONE);

		for (i = 0; i < sizeof(envs) / sizeof(envs[0]); i++)
			leaf_attest(w, 11, &w->b, rot, ROT_TYPE, envs[i]);
		assert_int_equal(
		    count(w, LCAUDIT_V_ATTESTATION, -2, w->a.id), 4);
	}
	finish(w);
	assert_false(lcaudit_ok(w->la));
	assert_true(count(w, LCAUDIT_V_MALFORMED, -2, NULL) > 15);
	/* the reports of such a log are still well-formed */
	o = lcaudit_report_json(w->la);
	assert_non_null(o);
	assert_true(json_is_false(json_object_get(o, "ok")));
	json_decref(o);
	{
		FILE *f = fopen("/dev/null", "w");

		assert_non_null(f);
		assert_int_equal(lcaudit_report_text(w->la, f), 0);
		assert_int_equal(lcaudit_report_html(w->la, f), 0);
		fclose(f);
	}
}

/* Text from the log never reaches a terminal or a page unescaped. */
static void
test_report_escaping(void **state)
{
	struct world *w = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	json_t *o;

	snprintf(w->c.id, sizeof(w->c.id), "k_\x1b[31m<b>&");
	leaf_create(w, 0, &w->att);
	o = decision("key.create", &w->c);
	json_object_set_new(o, "detail", facts(&w->c, 0));
	put(w, 1, o);
	leaf_retire(w, 2, &w->c);
	leaf_jwt(w, 3, &w->c, 0);
	finish(w);
	expect_total(w, 1);
	assert_non_null(f = open_memstream(&text, &len));
	assert_int_equal(lcaudit_report_text(w->la, f), 0);
	fclose(f);
	assert_null(strchr(text, '\x1b'));
	assert_non_null(strstr(text, "1 violation, FAILED"));
	free(text);
	assert_non_null(f = open_memstream(&text, &len));
	assert_int_equal(lcaudit_report_html(w->la, f), 0);
	fclose(f);
	assert_null(strstr(text, "<b>"));
	assert_non_null(strstr(text, "&lt;b&gt;&amp;"));
	free(text);
}

/* Out of order and missing leaves. */
static void
test_sequence(void **state)
{
	struct world *w = *state;

	start(w);
	w->seq = 5;
	leaf_create(w, 2, &w->b);
	assert_int_equal(count(w, LCAUDIT_V_SEQUENCE, 5, ""), 1);
	w->seq = 3;
	leaf_create(w, 3, &w->c);
	assert_int_equal(count(w, LCAUDIT_V_SEQUENCE, 3, ""), 1);
	assert_null(lcaudit_key_get(w->la, w->c.id));
	finish(w);
	expect_total(w, 2);
}

/* ---- lcaudit_dir(): an exported log ------------------------------------- */

static void
append(struct audit *a, json_t *fields)
{
	uint64_t seq;

	assert_int_equal(
	    audit_append(a, fields, NULL, NULL, &seq, NULL, NULL), 0);
	json_decref(fields);
}

static void
test_dir(void **state)
{
	struct world *w = *state;
	struct logdir_export_stats stats;
	struct logdir_result res;
	struct merkle_store ms;
	struct store *st = NULL;
	struct audit *a = NULL;
	struct pubkey *pk = NULL;
	struct note_vkey *vk = NULL;
	struct dsse_sig sig;
	char dir[64], db[96], out[128], path[160], msg[256];
	char *text = NULL, *line = NULL, *note = NULL;
	size_t textlen, len;
	uint8_t root[32];
	json_t *o;
	FILE *fp;

	assert_int_equal(
	    testutil_mkdtemp("custody-lcaudit", dir, sizeof(dir)), 0);
	snprintf(db, sizeof(db), "%s/custody.db", dir);
	snprintf(out, sizeof(out), "%s/export", dir);
	assert_int_equal(store_open(db, &st), 0);
	assert_int_equal(audit_open(db, &a), 0);
	w->a.max_age = w->a.ttl = 0;
	o = decision("key.create", &w->a);
	json_object_set_new(o, "detail", facts(&w->a, 0));
	append(a, o);
	append(a,
	    json_pack("{s:s, s:s, s:o, s:s, s:{s:I}}", "event",
		"credential.jwt", "principal", "b", "key", key_ref(&w->a),
		"decision", "allow", "detail", "exp", (json_int_t)2000000000));
	o = decision("key.destroy", &w->a);
	json_object_set_new(o, "tbs_sha256",
	    json_string("000000000000000000000000000000000000000000000000000000"
			"0000000000"));
	json_object_set_new(o, "detail",
	    json_pack("{s:s, s:s, s:{s:i, s:i}}", "trigger", "manual", "reason",
		"test", "evidence", "objects_destroyed", 2,
		"objects_found_after", 0));
	append(a, o);
	audit_close(a);
	/* a checkpoint of the 3 leaves, signed by an Ed25519 note key */
	store_merkle(st, &ms);
	assert_int_equal(merkle_root(&ms, 3, root), 0);
	assert_int_equal(
	    note_checkpoint_text("example.org/log", 3, root, &text, &textlen),
	    0);
	assert_int_equal(pubkey_from_spki(CUSTODY_ALG_ED25519, w->att.spki,
			     w->att.spki_len, &pk),
	    0);
	assert_int_equal(note_vkey_new("example.org/log", pk, &vk), 0);
	tkey_sign(&w->att, (const uint8_t *)text, textlen, &sig);
	assert_int_equal(
	    note_sig_line(vk, text, textlen, sig.sig, sig.len, &line), 0);
	assert_int_equal(
	    note_assemble(text, textlen, &line, 1, &note, &len), 0);
	assert_int_equal(store_checkpoint_put(st, 3, root, note, len, 1), 0);
	assert_int_equal(logdir_export(st, out, &stats), 0);
	assert_int_equal(stats.size, 3);

	/* the verified leaves are checked */
	assert_int_equal(
	    lcaudit_dir(w->la, out, &vk, 1, &res, msg, sizeof(msg)), 0);
	assert_int_equal(res.size, 3);
	assert_int_equal(lcaudit_counts(w->la)->leaves, 3);
	assert_int_equal(count(w, LCAUDIT_V_UNATTESTED, 2, w->a.id), 1);
	expect_total(w, 1);
	assert_int_equal(lcaudit_key_get(w->la, w->a.id)->issued, 1);

	/* a log that does not verify feeds nothing */
	lcaudit_free(w->la);
	assert_int_equal(lcaudit_new(NULL, &w->la), 0);
	snprintf(path, sizeof(path), "%s/checkpoint", out);
	assert_non_null(fp = fopen(path, "r+"));
	fseek(fp, (long)textlen + 10, SEEK_SET);
	fputc('A', fp);
	fputc('A', fp);
	fclose(fp);
	assert_true(
	    lcaudit_dir(w->la, out, &vk, 1, &res, msg, sizeof(msg)) != 0);
	assert_true(msg[0] != '\0');
	assert_int_equal(lcaudit_counts(w->la)->leaves, 0);
	assert_false(lcaudit_ok(w->la));

	dsse_sig_clear(&sig);
	free(text);
	free(line);
	free(note);
	note_vkey_free(vk);
	pubkey_free(pk);
	store_close(st);
	testutil_rmtree(dir);
}

/* Preconditions and NULL-safety. */
static void
test_args(void **state)
{
	struct lcaudit_opts o = {(int64_t)200 * 365 * DAY};
	struct lcaudit *la = NULL;
	size_t n;

	(void)state;
	lcaudit_free(NULL);
	assert_int_equal(lcaudit_new(NULL, NULL), CUSTODY_E_INVALID_ARG);
	assert_int_equal(lcaudit_new(&o, &la), CUSTODY_E_INVALID_ARG);
	assert_int_equal(lcaudit_leaf(NULL, 0, (const uint8_t *)"{}", 2),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(lcaudit_new(NULL, &la), 0);
	assert_int_equal(lcaudit_tolerance(la), LCAUDIT_TOLERANCE);
	assert_int_equal(lcaudit_leaf(la, 0, NULL, 1), CUSTODY_E_INVALID_ARG);
	assert_false(lcaudit_ok(la)); /* not finished */
	assert_int_equal(lcaudit_finish(la), 0);
	assert_int_equal(lcaudit_finish(la), 0);
	assert_true(lcaudit_ok(la)); /* an empty log */
	assert_null(lcaudit_key_get(la, "k"));
	(void)lcaudit_keys(la, &n);
	assert_int_equal(n, 0);
	assert_string_equal(lcaudit_kind_name(LCAUDIT_V_TTL), "ttl");
	assert_string_equal(lcaudit_kind_name(LCAUDIT_V_COUNT), "unknown");
	lcaudit_free(la);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    T(test_clean_history),
	    T(test_credential_after_destruction),
	    T(test_credential_after_retirement),
	    T(test_rotation_unattested),
	    T(test_rotation_one_signer),
	    T(test_attestation_other_pae),
	    T(test_attestation_wrong_subject),
	    T(test_destruction_unattested),
	    T(test_destruction_wrong_signer),
	    T(test_max_age),
	    T(test_max_age_at_end),
	    T(test_ttl),
	    T(test_ttl_at_end),
	    T(test_tolerance_option),
	    T(test_state),
	    T(test_malformed),
	    T(test_report_escaping),
	    T(test_sequence),
	    T(test_dir),
	    cmocka_unit_test(test_args),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
