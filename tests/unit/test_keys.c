/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of keys.c: the token (the mock PKCS#11 module) and the registry
 * (a real SQLite file in a temporary directory) kept in step.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include "err.h"
#include "testutil.h"
#include "dsse.h"
#include "keys.h"
#include "lifecycle.h"
#include "mock_p11.h"
#include "secret.h"
#include "store.h"
#include "token-priv.h"
#include "util.h"

struct fixture {
	char dir[64];
	char db[96];
	struct token *t;
	struct store *st;
	struct audit *a;
	struct keys_env env;
};

static int
setup(void **state)
{
	struct mock_p11_opts o = {.initialized = 1,
	    .label = "custody",
	    .so_pin = "87654321",
	    .user_pin = "1234"};
	struct fixture *f = calloc(1, sizeof(*f));
	struct secret *pin = NULL;
	struct token_opts to;

	if (f == NULL)
		return -1;
	if (testutil_mkdtemp("custody-keys", f->dir, sizeof(f->dir)) != 0)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/custody.db", f->dir);
	mock_p11_reset(&o);
	if (secret_from_bytes("1234", 4, &pin) != 0)
		return -1;
	to = (struct token_opts){NULL, "pkcs11:token=custody", pin};
	if (token_open_functions(mock_p11_functions(), &to, &f->t) != 0 ||
	    store_open(f->db, &f->st) != 0 || audit_open(f->db, &f->a) != 0)
		return -1;
	f->env = (struct keys_env){
	    f->t, f->st, f->a, "unix:uid=0", "(direct)", NULL};
	secret_free(pin);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	audit_close(f->a);
	token_close(f->t);
	store_close(f->st);
	testutil_rmtree(f->dir);
	free(f);
	return 0;
}

static struct keys_create_req
req(const char *agent, const char *task)
{
	return (struct keys_create_req){.agent = agent,
	    .owner = "team-a",
	    .purpose = "jwt",
	    .task = task,
	    .alg = CUSTODY_ALG_ECDSA_P256,
	    .max_age = 3600,
	    .ttl = 86400};
}

/* A created key is in the token and in the registry under one name. */
static void
test_create(void **state)
{
	struct fixture *f = *state;
	struct keys_create_req r = req("spiffe://example.org/agent/a", NULL);
	struct store_key *k = NULL, *got = NULL;
	struct token_generated *g = NULL;
	char hex[2 * TOKEN_ID_LEN + 1];

	assert_int_equal(keys_create(&f->env, &r, 1000, &k, &g), 0);
	util_hex_encode(g->id, TOKEN_ID_LEN, hex);
	assert_int_equal(strncmp(k->id, "k_", 2), 0);
	assert_string_equal(k->id + 2, hex);
	assert_string_equal(k->state, "active");
	assert_string_equal(k->alg, "ecdsa-p256");
	assert_string_equal(k->kid, g->kid);
	assert_int_equal(k->created_at, 1000);
	assert_non_null(strstr(k->token, "pkcs11:token=custody;id=%"));
	assert_int_equal(token_count_objects(f->t, g->id), 2);
	assert_int_equal(store_key_get(f->st, k->id, &got), 0);
	assert_int_equal(got->spki_len, g->spki_len);
	/* its key.create leaf committed with it */
	{
		uint8_t *leaf = NULL, hash[32];
		size_t len = 0;
		json_t *o;

		assert_int_equal(
		    store_leaf_get(f->st, 0, &leaf, &len, hash), 0);
		assert_non_null(o = json_loadb((char *)leaf, len, 0, NULL));
		assert_string_equal(
		    json_string_value(json_object_get(o, "event")),
		    "key.create");
		assert_string_equal(json_string_value(json_object_get(
					json_object_get(o, "key"), "id")),
		    k->id);
		assert_true(json_is_true(json_object_get(
		    json_object_get(json_object_get(o, "detail"), "attributes"),
		    "never_extractable")));
		json_decref(o);
		free(leaf);
	}
	assert_memory_equal(got->spki, g->spki, g->spki_len);
	store_key_free(got);
	store_key_free(k);
	token_generated_free(g);
}

/* A conflict or bad input is refused before anything is generated. */
static void
test_refused_before_keygen(void **state)
{
	struct fixture *f = *state;
	struct keys_create_req r = req("agent-b", NULL);
	struct store_key *k = NULL;
	unsigned long gens;

	assert_int_equal(keys_create(&f->env, &r, 1000, &k, NULL), 0);
	store_key_free(k);
	k = NULL;
	gens = mock_p11_calls("C_GenerateKeyPair");
	assert_int_equal(
	    keys_create(&f->env, &r, 1001, &k, NULL), CUSTODY_E_EXISTS);
	r.agent = "";
	assert_int_equal(
	    keys_create(&f->env, &r, 1001, &k, NULL), CUSTODY_E_INVALID_ARG);
	r.agent = "agent\x1b[31m";
	assert_int_equal(
	    keys_create(&f->env, &r, 1001, &k, NULL), CUSTODY_E_INVALID_ARG);
	r.agent = "agent-\xc0\xaf"; /* overlong UTF-8 */
	assert_int_equal(
	    keys_create(&f->env, &r, 1001, &k, NULL), CUSTODY_E_INVALID_ARG);
	r.agent = "agent-b";
	r.purpose = "checkpoint";
	r.alg = CUSTODY_ALG_RSA_PSS_3072; /* a note has no RSA line */
	assert_int_equal(
	    keys_create(&f->env, &r, 1001, &k, NULL), CUSTODY_E_INVALID_ARG);
	r.alg = CUSTODY_ALG_ECDSA_P256;
	r.purpose = "decrypt";
	assert_int_equal(
	    keys_create(&f->env, &r, 1001, &k, NULL), CUSTODY_E_INVALID_ARG);
	assert_null(k);
	assert_int_equal(mock_p11_calls("C_GenerateKeyPair"), gens);
	/* a task key is its own slot; UTF-8 agents are fine */
	r = req("agent-b", "task-1");
	assert_int_equal(keys_create(&f->env, &r, 1002, &k, NULL), 0);
	store_key_free(k);
	r = req("agent-\xc3\xa9t\xc3\xa9", NULL);
	assert_int_equal(keys_create(&f->env, &r, 1002, &k, NULL), 0);
	store_key_free(k);
}

/* If the registry cannot record a new key, the token does not keep it. */
static void
test_no_orphan_when_registry_fails(void **state)
{
	struct fixture *f = *state;
	struct keys_create_req r = req("agent-c", NULL);
	struct store_key *k = NULL;
	unsigned long objects = mock_p11_object_count();
	sqlite3 *other = NULL;

	/* another writer holds the database: the log's transaction cannot
	 * start (after the busy timeout), nothing is written, and the key,
	 * which exists in the token by then, is destroyed; the log itself is
	 * not failed, since no write or fsync went wrong */
	assert_int_equal(sqlite3_open(f->db, &other), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(
	    keys_create(&f->env, &r, 1000, &k, NULL), CUSTODY_E_LOCKED);
	assert_null(k);
	assert_int_equal(mock_p11_calls("C_GenerateKeyPair") > 0, 1);
	assert_int_equal(mock_p11_object_count(), objects);
	assert_false(audit_failed(f->a));
	sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(other);
}

/* Destroy through the lifecycle (with the service's attestation key, made
 * on first use); ev as the token reported it. */
static int
destroy(struct fixture *f, const char *id, const char *reason, int64_t now,
    struct token_destroy_evidence *ev)
{
	struct keys_create_req ar;
	struct lifecycle *lc = NULL;
	struct store_key *ak = NULL;
	struct lc_result res;
	int r;

	memset(&ar, 0, sizeof(ar));
	ar.agent = "custody";
	ar.owner = "custody";
	ar.purpose = "attestation";
	ar.alg = CUSTODY_ALG_ECDSA_P256;
	r = keys_create(&f->env, &ar, 500, &ak, NULL);
	assert_true(r == 0 || r == CUSTODY_E_EXISTS);
	store_key_free(ak);
	assert_int_equal(lifecycle_open(NULL, 86400, &lc), 0);
	r = lifecycle_destroy(lc, &f->env, id, "manual", reason, now, &res);
	lifecycle_close(lc);
	*ev = res.ev;
	if (r == 0)
		assert_true(res.attested);
	return r;
}

static void
test_open_and_destroy(void **state)
{
	struct fixture *f = *state;
	struct keys_create_req r = req("agent-d", NULL);
	struct store_key *k = NULL, *got = NULL;
	struct token_destroy_evidence ev;
	struct token_key *tk = NULL;
	uint8_t *sig = NULL, cka[TOKEN_ID_LEN];
	size_t siglen = 0;

	assert_int_equal(keys_create(&f->env, &r, 1000, &k, NULL), 0);
	assert_int_equal(keys_open(f->t, k, &tk), 0);
	assert_int_equal(
	    token_sign(f->t, tk, (const uint8_t *)"m", 1, &sig, &siglen), 0);
	free(sig);
	sig = NULL;
	assert_int_equal(
	    destroy(f, k->id, "", 2000, &ev), CUSTODY_E_INVALID_ARG);
	assert_int_equal(destroy(f, k->id, "compromised", 2000, &ev), 0);
	assert_int_equal(ev.destroyed, 2);
	assert_int_equal(ev.remaining, 0);
	assert_int_equal(store_key_id_parse(k->id, cka), 0);
	assert_int_equal(token_count_objects(f->t, cka), 0);
	assert_int_equal(store_key_get(f->st, k->id, &got), 0);
	assert_string_equal(got->state, "destroyed");
	assert_string_equal(got->destroy_reason, "compromised");
	assert_int_equal(got->destroyed_at, 2000);
	/* a destroyed key neither opens nor signs nor is destroyed twice */
	assert_int_equal(keys_open(f->t, got, &tk), CUSTODY_E_STATE);
	assert_int_equal(
	    token_sign(f->t, tk, (const uint8_t *)"m", 1, &sig, &siglen),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(
	    destroy(f, k->id, "again", 2001, &ev), CUSTODY_E_STATE);
	assert_int_equal(destroy(f, "k_0000000000000000", "x", 2001, &ev),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(
	    destroy(f, "nonsense", "x", 2001, &ev), CUSTODY_E_KEY_NOT_FOUND);
	token_key_free(tk);
	store_key_free(got);
	store_key_free(k);
}

/* A token that does not really destroy leaves the record active. */
static void
test_destroy_incomplete_keeps_record(void **state)
{
	struct fixture *f = *state;
	struct keys_create_req r = req("agent-e", NULL);
	struct store_key *k = NULL, *got = NULL;
	struct token_destroy_evidence ev;

	assert_int_equal(keys_create(&f->env, &r, 1000, &k, NULL), 0);
	mock_p11_destroy_noop(1);
	assert_int_equal(destroy(f, k->id, "retired", 2000, &ev),
	    CUSTODY_E_DESTROY_INCOMPLETE);
	mock_p11_destroy_noop(0);
	assert_int_equal(ev.remaining, 2);
	assert_int_equal(store_key_get(f->st, k->id, &got), 0);
	assert_string_equal(got->state, "active");
	store_key_free(got);
	store_key_free(k);
}

/* A key is only used or destroyed through the token its URI names. */
static void
test_wrong_token_refused(void **state)
{
	struct fixture *f = *state;
	struct keys_create_req r = req("agent-f", NULL);
	struct store_key *k = NULL;
	struct token_key *tk = NULL;
	char *saved;

	assert_int_equal(keys_create(&f->env, &r, 1000, &k, NULL), 0);
	saved = k->token;
	k->token = "pkcs11:token=another;id=%00";
	assert_int_equal(keys_open(f->t, k, &tk), CUSTODY_E_WRONG_TOKEN);
	assert_null(tk);
	k->token = saved;
	assert_int_equal(keys_open(f->t, k, &tk), 0);
	token_key_free(tk);
	store_key_free(k);
}

/* A rotation: the registry, the log and the attestation signed by both. */
static void
test_rotate_attested(void **state)
{
	struct fixture *f = *state;
	struct keys_create_req r = req("agent-r", NULL);
	struct store_key *k = NULL, *old = NULL, *nk = NULL;
	struct store_attestation *att = NULL;
	struct token_destroy_evidence ev;
	struct dsse_parsed *p = NULL;
	struct lifecycle *lc = NULL;
	struct lc_result res;
	uint8_t *leaf = NULL, *pae = NULL, h[32], hash[32];
	size_t n = 0, len = 0, paelen = 0;
	char hex[65];
	json_t *o;

	assert_int_equal(keys_create(&f->env, &r, 1000, &k, NULL), 0);
	/* the attestation key, made as destroy() makes it */
	assert_int_equal(destroy(f, "k_0000000000000000", "x", 1001, &ev),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(lifecycle_open(NULL, 86400, &lc), 0);
	assert_int_equal(lifecycle_rotate(lc, &f->env, k->id, "manual", "",
			     NULL, 2000, &res),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(lifecycle_rotate(lc, &f->env, k->id, "manual",
			     "scheduled", NULL, 2000, &res),
	    0);
	assert_true(res.attested);
	assert_int_equal(store_key_get(f->st, k->id, &old), 0);
	assert_string_equal(old->state, "retired");
	assert_int_equal(old->retired_at, 2000);
	assert_string_equal(old->successor, res.new_key_id);
	assert_int_equal(store_key_get(f->st, res.new_key_id, &nk), 0);
	assert_string_equal(nk->state, "active");
	assert_string_equal(nk->predecessor, k->id);
	assert_string_equal(nk->agent, "agent-r");
	/* a retired key rotates no more; a second active key never exists */
	assert_int_equal(lifecycle_rotate(lc, &f->env, k->id, "manual", "again",
			     NULL, 2001, &res),
	    CUSTODY_E_STATE);
	/* the envelope: its PAE is what the key.rotate leaf promised, and
	 * both keys signed it */
	assert_int_equal(store_attestation_list(f->st, nk->id, &att, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(att[0].kind, "rotation");
	assert_string_equal(att[0].other_key_id, k->id);
	assert_int_equal(
	    dsse_parse(att[0].envelope, att[0].len, &p, NULL, 0), 0);
	assert_int_equal(p->nsigs, 2);
	assert_int_equal(dsse_verify(p, old->spki, old->spki_len), 0);
	assert_int_equal(dsse_verify(p, nk->spki, nk->spki_len), 0);
	assert_int_equal(dsse_pae(p->type, p->body, p->len, &pae, &paelen), 0);
	SHA256(pae, paelen, h);
	util_hex_encode(h, 32, hex);
	assert_int_equal(store_leaf_get(f->st, (uint64_t)att[0].decision_seq,
			     &leaf, &len, hash),
	    0);
	o = json_loadb((const char *)leaf, len, 0, NULL);
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "event")), "key.rotate");
	assert_string_equal(
	    json_string_value(json_object_get(o, "tbs_sha256")), hex);
	/* a changed payload no longer verifies */
	p->body[p->len / 2] ^= 1;
	assert_int_equal(
	    dsse_verify(p, nk->spki, nk->spki_len), CUSTODY_E_SIG_VERIFY);
	json_decref(o);
	free(leaf);
	free(pae);
	dsse_parsed_free(p);
	store_attestation_list_free(att, n);
	lifecycle_close(lc);
	store_key_free(nk);
	store_key_free(old);
	store_key_free(k);
}

static void
test_cka_id(void **state)
{
	uint8_t id[TOKEN_ID_LEN];

	(void)state;
	assert_int_equal(store_key_id_parse("k_00ff10a0b0c0d0e0", id), 0);
	assert_int_equal(id[1], 0xff);
	assert_int_equal(
	    store_key_id_parse("k_00FF10A0B0C0D0E0", id), CUSTODY_E_PARSE);
	assert_int_equal(
	    store_key_id_parse("k_00ff10a0b0c0d0e", id), CUSTODY_E_PARSE);
	assert_int_equal(
	    store_key_id_parse("x_00ff10a0b0c0d0e0", id), CUSTODY_E_PARSE);
	assert_int_equal(store_key_id_parse(NULL, id), CUSTODY_E_PARSE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refused_before_keygen, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_no_orphan_when_registry_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_open_and_destroy, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_destroy_incomplete_keeps_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_wrong_token_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_rotate_attested, setup, teardown),
	    cmocka_unit_test(test_cka_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
