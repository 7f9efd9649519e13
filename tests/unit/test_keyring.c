/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of keyring.c against its header contract: a registry (a real
 * SQLite file in a temporary directory) of active, retired and destroyed
 * keys, the lookups by id and by (agent, purpose, task), references, adds,
 * lists in creation order, the JWK of jwt keys, signing with keys made by
 * keys_create() on the mock PKCS#11 module, index growth and concurrent
 * lookups during adds.
 *
 * Records that never sign are inserted into the store directly, with public
 * keys made by OpenSSL in the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "alg.h"
#include "audit.h"
#include "err.h"
#include "keyring.h"
#include "keys.h"
#include "mock_p11.h"
#include "pubkey.h"
#include "secret.h"
#include "store.h"
#include "testutil.h"
#include "token-priv.h"

#define NOW 1795000000

struct fixture {
	char dir[64];
	char db[96];
	struct token *t;
	struct store *st;
	struct audit *a;
	struct keys_env env;
};

/* One public key per alg, made by OpenSSL once for the whole run. */
struct spki {
	uint8_t *der;
	size_t len;
	char *kid;
};
static struct spki spkis[CUSTODY_ALG_COUNT];

static int
group_setup(void **state)
{
	EVP_PKEY *pk[CUSTODY_ALG_COUNT];
	struct pubkey *cpk = NULL;
	unsigned char *der;
	int i, n;

	(void)state;
	pk[CUSTODY_ALG_ED25519] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	pk[CUSTODY_ALG_ECDSA_P256] =
	    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	pk[CUSTODY_ALG_ECDSA_P384] =
	    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	pk[CUSTODY_ALG_RSA_PSS_3072] =
	    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	for (i = 0; i < CUSTODY_ALG_COUNT; i++) {
		der = NULL;
		if (pk[i] == NULL || (n = i2d_PUBKEY(pk[i], &der)) <= 0)
			return -1;
		spkis[i].len = (size_t)n;
		if ((spkis[i].der = malloc((size_t)n)) == NULL)
			return -1;
		memcpy(spkis[i].der, der, (size_t)n);
		OPENSSL_free(der);
		EVP_PKEY_free(pk[i]);
		if (pubkey_from_spki((enum custody_alg)i, spkis[i].der,
			spkis[i].len, &cpk) != 0 ||
		    pubkey_jwk_thumbprint(cpk, &spkis[i].kid) != 0)
			return -1;
		pubkey_free(cpk);
		cpk = NULL;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < CUSTODY_ALG_COUNT; i++) {
		free(spkis[i].der);
		free(spkis[i].kid);
	}
	return 0;
}

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

	if (f == NULL ||
	    testutil_mkdtemp("custody-keyring", f->dir, sizeof(f->dir)) != 0)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/custody.db", f->dir);
	mock_p11_reset(&o);
	if (secret_from_bytes("1234", 4, &pin) != 0)
		return -1;
	to = (struct token_opts){NULL, "pkcs11:token=custody", pin};
	if (token_open_functions(mock_p11_functions(), &to, &f->t) != 0 ||
	    store_open(f->db, &f->st) != 0 || audit_open(f->db, &f->a) != 0)
		return -1;
	f->env = (struct keys_env){.t = f->t,
	    .st = f->st,
	    .a = f->a,
	    .principal = "unix:uid=0",
	    .rule = "(direct)"};
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

static char *
xstrdup(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	assert_non_null(d = strdup(s));
	return d;
}

/*
 * A new record (heap, as store_key_free() frees it): id k_ + n in hex, in
 * state, created at created; a retired key was retired at created + 1, a
 * destroyed one destroyed then.
 */
static struct store_key *
rec_new(unsigned long long n, const char *agent, const char *purpose,
    const char *task, enum custody_alg alg, const char *state, int64_t created)
{
	struct store_key *k;

	assert_non_null(k = calloc(1, sizeof(*k)));
	snprintf(k->id, sizeof(k->id), "k_%016llx", n);
	k->agent = xstrdup(agent);
	k->owner = xstrdup("team-a");
	k->purpose = xstrdup(purpose);
	k->alg = xstrdup(alg_name(alg));
	k->state = xstrdup(state);
	k->task = xstrdup(task);
	k->created_at = created;
	if (strcmp(state, "retired") == 0)
		k->retired_at = created + 1;
	if (strcmp(state, "destroyed") == 0) {
		k->destroyed_at = created + 1;
		k->destroy_reason = xstrdup("compromised");
	}
	assert_non_null(k->spki = malloc(spkis[alg].len));
	memcpy(k->spki, spkis[alg].der, spkis[alg].len);
	k->spki_len = spkis[alg].len;
	k->kid = xstrdup(spkis[alg].kid);
	k->token = xstrdup("pkcs11:token=custody");
	return k;
}

/* Insert a record made by rec_new() into the registry. */
static void
put_rec(struct fixture *f, unsigned long long n, const char *agent,
    const char *purpose, const char *task, enum custody_alg alg,
    const char *state, int64_t created)
{
	struct store_key *k =
	    rec_new(n, agent, purpose, task, alg, state, created);

	assert_int_equal(store_key_insert(f->st, k), 0);
	store_key_free(k);
}

static const char *
id_of(unsigned long long n)
{
	static char id[STORE_KEY_ID_LEN + 1];

	snprintf(id, sizeof(id), "k_%016llx", n);
	return id;
}

static void
assert_get(struct keyring *kr, unsigned long long n, const char *state)
{
	struct keyring_key *k = NULL;
	const char *id = id_of(n);

	assert_int_equal(keyring_get(kr, id, &k), 0);
	assert_non_null(k);
	assert_string_equal(k->rec->id, id);
	assert_string_equal(k->rec->state, state);
	keyring_put(k);
}

static void
assert_find(struct keyring *kr, const char *agent, const char *purpose,
    const char *task, unsigned long long want)
{
	struct keyring_key *k = NULL;

	assert_int_equal(keyring_find(kr, agent, purpose, task, &k), 0);
	assert_non_null(k);
	assert_string_equal(k->rec->id, id_of(want));
	assert_string_equal(k->rec->state, "active");
	assert_string_equal(k->rec->agent, agent);
	assert_string_equal(k->rec->purpose, purpose);
	if (task == NULL)
		assert_null(k->rec->task);
	else
		assert_string_equal(k->rec->task, task);
	keyring_put(k);
}

static void
assert_no_find(struct keyring *kr, const char *agent, const char *purpose,
    const char *task)
{
	struct keyring_key *k = (struct keyring_key *)&k;

	assert_int_equal(keyring_find(kr, agent, purpose, task, &k),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_ptr_equal(k, (struct keyring_key *)&k);
}

/* Active and retired keys are in the ring, destroyed ones are not. */
static void
test_open_states(void **state)
{
	struct fixture *f = *state;
	struct keyring *kr = NULL;
	struct keyring_key *k = (struct keyring_key *)&k;

	put_rec(
	    f, 1, "agent-a", "jwt", NULL, CUSTODY_ALG_ED25519, "retired", 100);
	put_rec(
	    f, 2, "agent-a", "jwt", NULL, CUSTODY_ALG_ED25519, "active", 200);
	put_rec(f, 3, "agent-b", "jwt", NULL, CUSTODY_ALG_ECDSA_P256,
	    "destroyed", 300);
	put_rec(f, 4, "agent-b", "x509-ca", NULL, CUSTODY_ALG_ECDSA_P384,
	    "active", 400);
	put_rec(f, 5, "custody", "checkpoint", NULL, CUSTODY_ALG_ED25519,
	    "active", 500);
	put_rec(f, 6, "agent-c", "attestation", NULL, CUSTODY_ALG_ECDSA_P256,
	    "destroyed", 600);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	assert_int_equal(keyring_size(kr), 4);
	assert_get(kr, 1, "retired");
	assert_get(kr, 2, "active");
	assert_get(kr, 4, "active");
	assert_get(kr, 5, "active");
	assert_int_equal(
	    keyring_get(kr, id_of(3), &k), CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(
	    keyring_get(kr, id_of(6), &k), CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(
	    keyring_get(kr, id_of(7), &k), CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(keyring_get(kr, "", &k), CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(
	    keyring_get(kr, "nonsense", &k), CUSTODY_E_KEY_NOT_FOUND);
	assert_ptr_equal(k, (struct keyring_key *)&k);
	assert_no_find(kr, "agent-b", "jwt", NULL);
	assert_find(kr, "agent-b", "x509-ca", NULL, 4);
	assert_find(kr, "custody", "checkpoint", NULL, 5);
	assert_no_find(kr, "agent-c", "attestation", NULL);
	/* the record is the registry's */
	assert_int_equal(keyring_get(kr, id_of(4), &k), 0);
	assert_string_equal(k->rec->owner, "team-a");
	assert_string_equal(k->rec->alg, "ecdsa-p384");
	assert_int_equal(k->rec->created_at, 400);
	assert_int_equal(k->rec->spki_len, spkis[CUSTODY_ALG_ECDSA_P384].len);
	assert_memory_equal(
	    k->rec->spki, spkis[CUSTODY_ALG_ECDSA_P384].der, k->rec->spki_len);
	keyring_put(k);
	keyring_close(kr);

	/* an empty registry gives an empty ring */
	keyring_close(NULL);
	keyring_put(NULL);
	keyring_list_free(NULL, 0);
}

static void
test_open_empty(void **state)
{
	struct fixture *f = *state;
	struct keyring *kr = NULL;
	struct keyring_key *k = NULL, **v = NULL;
	size_t n = 1;

	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	assert_int_equal(keyring_size(kr), 0);
	assert_int_equal(
	    keyring_get(kr, id_of(1), &k), CUSTODY_E_KEY_NOT_FOUND);
	assert_no_find(kr, "agent-a", "jwt", NULL);
	assert_int_equal(keyring_list(kr, NULL, &v, &n), 0);
	assert_int_equal(n, 0);
	keyring_list_free(v, n);
	assert_int_equal(
	    keyring_open(f->t, NULL, NULL, &kr), CUSTODY_E_INVALID_ARG);
	keyring_close(kr);
}

/*
 * By (agent, purpose, task): a task key and the task-less key of the same
 * agent are distinct; a retired key is never found, even when it is the only
 * key of its (agent, purpose, task).
 */
static void
test_find(void **state)
{
	struct fixture *f = *state;
	struct keyring *kr = NULL;

	put_rec(f, 1, "agent-a", "jwt", NULL, CUSTODY_ALG_ECDSA_P256, "retired",
	    100);
	put_rec(f, 2, "agent-a", "jwt", NULL, CUSTODY_ALG_ECDSA_P256, "active",
	    200);
	put_rec(f, 3, "agent-a", "jwt", "task-1", CUSTODY_ALG_ED25519, "active",
	    300);
	put_rec(f, 4, "agent-a", "jwt", "task-2", CUSTODY_ALG_ED25519,
	    "retired", 400);
	put_rec(f, 5, "agent-a", "x509-ca", NULL, CUSTODY_ALG_ECDSA_P384,
	    "active", 500);
	put_rec(f, 6, "agent-b", "jwt", NULL, CUSTODY_ALG_ECDSA_P256, "retired",
	    600);
	put_rec(f, 7, "agent-b", "jwt", "task-1", CUSTODY_ALG_ECDSA_P256,
	    "active", 700);
	/* names whose concatenations collide */
	put_rec(f, 8, "ab", "jwt", "c", CUSTODY_ALG_ED25519, "active", 800);
	put_rec(f, 9, "a", "jwt", "bc", CUSTODY_ALG_ED25519, "active", 900);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	assert_find(kr, "agent-a", "jwt", NULL, 2);
	assert_find(kr, "agent-a", "jwt", "task-1", 3);
	assert_find(kr, "agent-a", "x509-ca", NULL, 5);
	assert_find(kr, "agent-b", "jwt", "task-1", 7);
	assert_find(kr, "ab", "jwt", "c", 8);
	assert_find(kr, "a", "jwt", "bc", 9);
	/* retired only */
	assert_no_find(kr, "agent-a", "jwt", "task-2");
	assert_no_find(kr, "agent-b", "jwt", NULL);
	/* nothing of that kind */
	assert_no_find(kr, "agent-a", "jwt", "task-3");
	assert_no_find(kr, "agent-a", "x509-ca", "task-1");
	assert_no_find(kr, "agent-a", "checkpoint", NULL);
	assert_no_find(kr, "agent-c", "jwt", NULL);
	assert_no_find(kr, "agent-", "jwt", NULL);
	assert_no_find(kr, "agent-aa", "jwt", NULL);
	assert_no_find(kr, "ab", "jwt", NULL);
	assert_no_find(kr, "abc", "jwt", NULL);
	/* but retired keys are there by id */
	assert_get(kr, 1, "retired");
	assert_get(kr, 4, "retired");
	assert_get(kr, 6, "retired");
	keyring_close(kr);
}

/* keyring_add: found at once; a duplicate id is EXISTS (and freed). */
static void
test_add(void **state)
{
	struct fixture *f = *state;
	struct keyring *kr = NULL;
	struct keyring_key *k = NULL;
	struct store_key *rec;

	put_rec(f, 1, "agent-a", "jwt", NULL, CUSTODY_ALG_ECDSA_P256, "active",
	    100);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	assert_no_find(kr, "agent-b", "jwt", NULL);
	assert_int_equal(
	    keyring_add(kr, rec_new(2, "agent-b", "jwt", NULL,
				CUSTODY_ALG_ED25519, "active", 200)),
	    0);
	assert_int_equal(keyring_size(kr), 2);
	assert_get(kr, 2, "active");
	assert_find(kr, "agent-b", "jwt", NULL, 2);
	assert_int_equal(keyring_get(kr, id_of(2), &k), 0);
	assert_non_null(k->jwk);
	keyring_put(k);
	/* a task key and a retired key */
	assert_int_equal(
	    keyring_add(kr, rec_new(3, "agent-b", "jwt", "t",
				CUSTODY_ALG_ECDSA_P384, "active", 300)),
	    0);
	assert_int_equal(
	    keyring_add(kr, rec_new(4, "agent-c", "x509-ca", NULL,
				CUSTODY_ALG_ECDSA_P256, "retired", 400)),
	    0);
	assert_find(kr, "agent-b", "jwt", "t", 3);
	assert_find(kr, "agent-b", "jwt", NULL, 2);
	assert_no_find(kr, "agent-c", "x509-ca", NULL);
	assert_get(kr, 4, "retired");
	/* duplicates: one loaded from the registry, one added */
	assert_int_equal(
	    keyring_add(kr, rec_new(1, "agent-z", "jwt", NULL,
				CUSTODY_ALG_ED25519, "active", 500)),
	    CUSTODY_E_EXISTS);
	assert_int_equal(
	    keyring_add(kr, rec_new(2, "agent-z", "jwt", NULL,
				CUSTODY_ALG_ED25519, "active", 500)),
	    CUSTODY_E_EXISTS);
	assert_int_equal(keyring_size(kr), 4);
	assert_find(kr, "agent-a", "jwt", NULL, 1);
	assert_no_find(kr, "agent-z", "jwt", NULL);
	/* a jwt key whose public key is not of its alg: refused, freed */
	rec = rec_new(
	    5, "agent-d", "jwt", NULL, CUSTODY_ALG_ED25519, "active", 600);
	free(rec->alg);
	rec->alg = xstrdup("ecdsa-p256");
	assert_int_equal(keyring_add(kr, rec), CUSTODY_E_PARSE);
	assert_int_equal(
	    keyring_get(kr, id_of(5), &k), CUSTODY_E_KEY_NOT_FOUND);
	/* NULL arguments: the record is freed all the same */
	assert_int_equal(
	    keyring_add(NULL, rec_new(6, "agent-e", "jwt", NULL,
				  CUSTODY_ALG_ED25519, "active", 700)),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(keyring_add(kr, NULL), CUSTODY_E_INVALID_ARG);
	assert_int_equal(keyring_size(kr), 4);
	keyring_close(kr);
}

/* Does keyring_list(purpose) give exactly the keys want, in that order?
 * (Prints both lists when not.) */
static int
list_is(struct keyring *kr, const char *purpose, const unsigned long long *want,
    size_t nwant)
{
	struct keyring_key **v = NULL;
	size_t n = 0, i;
	int same = 1;

	if (keyring_list(kr, purpose, &v, &n) != 0)
		return 0;
	if (n != nwant)
		same = 0;
	for (i = 0; same && i < n; i++)
		if (strcmp(v[i]->rec->id, id_of(want[i])) != 0)
			same = 0;
	if (!same) {
		for (i = 0; i < n; i++)
			print_message("list %s [%zu] = %s (created %lld)\n",
			    purpose ? purpose : "(all)", i, v[i]->rec->id,
			    (long long)v[i]->rec->created_at);
		for (i = 0; i < nwant; i++)
			print_message("want [%zu] = %s\n", i, id_of(want[i]));
	}
	keyring_list_free(v, n);
	return same;
}

static void
assert_list(struct keyring *kr, const char *purpose,
    const unsigned long long *want, size_t nwant)
{
	assert_true(list_is(kr, purpose, want, nwant));
}

/* Lists by purpose, with a reference per key (active keys only here). */
static void
test_list(void **state)
{
	static const unsigned long long all[] = {1, 2, 3, 4, 5};
	static const unsigned long long jwt[] = {1, 3, 4};
	static const unsigned long long jwt2[] = {1, 3, 4, 6};
	static const unsigned long long x509[] = {2};
	static const unsigned long long cp[] = {5};
	struct fixture *f = *state;
	struct keyring *kr = NULL;
	struct keyring_key **v = NULL, *k;
	size_t n = 0;

	put_rec(
	    f, 1, "agent-a", "jwt", NULL, CUSTODY_ALG_ED25519, "active", 100);
	put_rec(f, 2, "agent-a", "x509-ca", NULL, CUSTODY_ALG_ECDSA_P256,
	    "active", 200);
	put_rec(f, 3, "agent-b", "jwt", NULL, CUSTODY_ALG_RSA_PSS_3072,
	    "active", 300);
	put_rec(
	    f, 4, "agent-b", "jwt", "t", CUSTODY_ALG_ECDSA_P384, "active", 400);
	put_rec(f, 5, "custody", "checkpoint", NULL, CUSTODY_ALG_ED25519,
	    "active", 500);
	put_rec(f, 7, "agent-x", "attestation", NULL, CUSTODY_ALG_ED25519,
	    "destroyed", 50);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	assert_list(kr, NULL, all, 5);
	assert_list(kr, "jwt", jwt, 3);
	assert_list(kr, "x509-ca", x509, 1);
	assert_list(kr, "checkpoint", cp, 1);
	assert_list(kr, "attestation", NULL, 0);
	assert_list(kr, "no-such-purpose", NULL, 0);
	/* an added key comes last */
	assert_int_equal(
	    keyring_add(kr, rec_new(6, "agent-c", "jwt", NULL,
				CUSTODY_ALG_ED25519, "active", 600)),
	    0);
	assert_list(kr, "jwt", jwt2, 4);
	/* the references of a list outlive more adds */
	assert_int_equal(keyring_list(kr, "jwt", &v, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(
	    keyring_add(kr, rec_new(8, "agent-d", "jwt", NULL,
				CUSTODY_ALG_ED25519, "active", 700)),
	    0);
	assert_string_equal(v[3]->rec->id, id_of(6));
	keyring_list_free(v, n);
	/* each list takes its own references */
	assert_int_equal(keyring_list(kr, NULL, &v, &n), 0);
	assert_int_equal(keyring_get(kr, id_of(1), &k), 0);
	keyring_list_free(v, n);
	assert_string_equal(k->rec->id, id_of(1));
	assert_non_null(k->jwk);
	keyring_put(k);
	keyring_close(kr);
}

/*
 * keyring_list() is in creation order across states: created k1 (100,
 * retired), k2 (200), k3 (300) lists as k1, k2, k3.
 */
static void
test_list_creation_order_with_retired(void **state)
{
	static const unsigned long long all[] = {1, 2, 3};
	static const unsigned long long jwt[] = {1, 3};
	struct fixture *f = *state;
	struct keyring *kr = NULL;
	int ok_jwt, ok_all;

	put_rec(
	    f, 1, "agent-a", "jwt", NULL, CUSTODY_ALG_ED25519, "retired", 100);
	put_rec(f, 2, "agent-a", "x509-ca", NULL, CUSTODY_ALG_ECDSA_P256,
	    "active", 200);
	put_rec(
	    f, 3, "agent-a", "jwt", NULL, CUSTODY_ALG_ED25519, "active", 300);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	ok_jwt = list_is(kr, "jwt", jwt, 2);
	ok_all = list_is(kr, NULL, all, 3);
	keyring_close(kr);
	assert_true(ok_jwt);
	assert_true(ok_all);
}

/* A reference keeps its key valid while the ring lives, however it was
 * taken and whatever the ring does meanwhile. */
static void
test_references(void **state)
{
	struct fixture *f = *state;
	struct keyring *kr = NULL;
	struct keyring_key *a = NULL, *b = NULL, *c = NULL, **v = NULL;
	size_t n = 0, i;
	char *jwk;

	put_rec(f, 1, "agent-a", "jwt", NULL, CUSTODY_ALG_ECDSA_P256, "active",
	    100);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	assert_int_equal(keyring_get(kr, id_of(1), &a), 0);
	assert_int_equal(keyring_find(kr, "agent-a", "jwt", NULL, &b), 0);
	assert_ptr_equal(a->rec, b->rec);
	assert_int_equal(keyring_list(kr, "jwt", &v, &n), 0);
	assert_int_equal(n, 1);
	assert_non_null(jwk = json_dumps(a->jwk, JSON_COMPACT));
	keyring_put(a);
	keyring_list_free(v, n);
	/* the ring grows (its arrays move): b stays as it was */
	for (i = 2; i < 200; i++) {
		char agent[32];

		snprintf(agent, sizeof(agent), "agent-%zu", i);
		assert_int_equal(keyring_add(kr, rec_new(i, agent, "jwt", NULL,
						     CUSTODY_ALG_ED25519,
						     "active", (int64_t)i)),
		    0);
	}
	assert_string_equal(b->rec->id, id_of(1));
	assert_string_equal(b->rec->agent, "agent-a");
	{
		char *again = json_dumps(b->jwk, JSON_COMPACT);

		assert_string_equal(again, jwk);
		free(again);
	}
	assert_int_equal(keyring_get(kr, id_of(1), &c), 0);
	assert_ptr_equal(c, b);
	keyring_put(b);
	assert_string_equal(c->rec->kid, spkis[CUSTODY_ALG_ECDSA_P256].kid);
	keyring_put(c);
	free(jwk);
	keyring_close(kr);
}

/* The JWK of jwt keys (alg per key alg and per ed25519_alg); NULL for
 * other purposes. */
static void
check_jwk(struct keyring *kr, unsigned long long n, enum custody_alg alg,
    const char *want_alg)
{
	struct keyring_key *k = NULL;
	struct pubkey *pk = NULL;
	char *want = NULL, *got;
	json_t *req;

	assert_int_equal(keyring_get(kr, id_of(n), &k), 0);
	assert_non_null(k->jwk);
	assert_string_equal(
	    json_string_value(json_object_get(k->jwk, "kid")), k->rec->kid);
	assert_string_equal(
	    json_string_value(json_object_get(k->jwk, "use")), "sig");
	assert_string_equal(
	    json_string_value(json_object_get(k->jwk, "alg")), want_alg);
	/* its required members are those of the record's public key */
	assert_int_equal(
	    pubkey_from_spki(alg, k->rec->spki, k->rec->spki_len, &pk), 0);
	assert_int_equal(pubkey_jwk_required(pk, &want), 0);
	assert_non_null(req = json_deep_copy(k->jwk));
	json_object_del(req, "kid");
	json_object_del(req, "use");
	json_object_del(req, "alg");
	assert_non_null(got = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS));
	assert_string_equal(got, want);
	free(got);
	free(want);
	json_decref(req);
	pubkey_free(pk);
	keyring_put(k);
}

static void
test_jwk(void **state)
{
	struct fixture *f = *state;
	struct keyring *kr = NULL;
	struct keyring_key *k = NULL;
	unsigned long long n;

	put_rec(f, 1, "a1", "jwt", NULL, CUSTODY_ALG_ED25519, "active", 100);
	put_rec(f, 2, "a2", "jwt", NULL, CUSTODY_ALG_ECDSA_P256, "active", 200);
	put_rec(
	    f, 3, "a3", "jwt", NULL, CUSTODY_ALG_ECDSA_P384, "retired", 300);
	put_rec(
	    f, 4, "a4", "jwt", NULL, CUSTODY_ALG_RSA_PSS_3072, "active", 400);
	put_rec(
	    f, 5, "a5", "x509-ca", NULL, CUSTODY_ALG_ECDSA_P256, "active", 500);
	put_rec(f, 6, "custody", "checkpoint", NULL, CUSTODY_ALG_ED25519,
	    "active", 600);
	put_rec(f, 7, "a7", "attestation", NULL, CUSTODY_ALG_ECDSA_P384,
	    "retired", 700);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	check_jwk(kr, 1, CUSTODY_ALG_ED25519, "EdDSA");
	check_jwk(kr, 2, CUSTODY_ALG_ECDSA_P256, "ES256");
	check_jwk(kr, 3, CUSTODY_ALG_ECDSA_P384, "ES384");
	check_jwk(kr, 4, CUSTODY_ALG_RSA_PSS_3072, "PS256");
	for (n = 5; n <= 7; n++) {
		assert_int_equal(keyring_get(kr, id_of(n), &k), 0);
		assert_null(k->jwk);
		keyring_put(k);
	}
	/* and for a key added later */
	assert_int_equal(
	    keyring_add(kr, rec_new(8, "a8", "jwt", NULL, CUSTODY_ALG_ED25519,
				"active", 800)),
	    0);
	check_jwk(kr, 8, CUSTODY_ALG_ED25519, "EdDSA");
	keyring_close(kr);

	/* Ed25519 keys under the RFC 9864 name when configured so */
	assert_int_equal(keyring_open(f->t, f->st, "Ed25519", &kr), 0);
	check_jwk(kr, 1, CUSTODY_ALG_ED25519, "Ed25519");
	check_jwk(kr, 2, CUSTODY_ALG_ECDSA_P256, "ES256");
	assert_int_equal(
	    keyring_add(kr, rec_new(9, "a9", "jwt", NULL, CUSTODY_ALG_ED25519,
				"active", 900)),
	    0);
	check_jwk(kr, 9, CUSTODY_ALG_ED25519, "Ed25519");
	keyring_close(kr);
	assert_int_equal(keyring_open(f->t, f->st, "EdDSA", &kr), 0);
	check_jwk(kr, 1, CUSTODY_ALG_ED25519, "EdDSA");
	keyring_close(kr);
}

/* Sign with keys made in the (mock) token; the signatures verify; the
 * key is bound to its token object once. */
static void
test_sign(void **state)
{
	static const enum custody_alg algs[] = {CUSTODY_ALG_ED25519,
	    CUSTODY_ALG_ECDSA_P256, CUSTODY_ALG_ECDSA_P384,
	    CUSTODY_ALG_RSA_PSS_3072};
	static const uint8_t msg[] = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0";
	struct fixture *f = *state;
	struct keys_create_req req = {
	    .owner = "team-a", .purpose = "jwt", .max_age = 3600, .ttl = 86400};
	struct store_key *rec = NULL;
	struct keyring *kr = NULL;
	struct keyring_key *k = NULL;
	struct pubkey *pk = NULL;
	uint8_t *sig = NULL;
	size_t siglen = 0, i;
	unsigned long finds;
	char agent[32];
	int round;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		snprintf(agent, sizeof(agent), "agent-%zu", i);
		req.agent = agent;
		req.alg = algs[i];
		assert_int_equal(
		    keys_create(&f->env, &req, NOW, &rec, NULL), 0);
		store_key_free(rec);
		rec = NULL;
	}
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		snprintf(agent, sizeof(agent), "agent-%zu", i);
		assert_int_equal(keyring_find(kr, agent, "jwt", NULL, &k), 0);
		assert_int_equal(pubkey_from_spki(algs[i], k->rec->spki,
				     k->rec->spki_len, &pk),
		    0);
		for (round = 0; round < 3; round++) {
			finds = mock_p11_calls("C_FindObjectsInit");
			assert_int_equal(keyring_sign(kr, k, msg,
					     sizeof(msg) - 1, &sig, &siglen),
			    0);
			if (round > 0) /* bound on the first signature only */
				assert_int_equal(
				    mock_p11_calls("C_FindObjectsInit"), finds);
			assert_int_equal(siglen, alg_sig_len(algs[i]));
			assert_int_equal(pubkey_verify(pk, msg, sizeof(msg) - 1,
					     sig, siglen),
			    0);
			sig[0] ^= 1;
			assert_int_equal(pubkey_verify(pk, msg, sizeof(msg) - 1,
					     sig, siglen),
			    CUSTODY_E_SIG_VERIFY);
			free(sig);
			sig = NULL;
		}
		pubkey_free(pk);
		pk = NULL;
		keyring_put(k);
	}

	/* a key created while the ring lives, added to it, signs too */
	req.agent = "agent-late";
	req.alg = CUSTODY_ALG_ECDSA_P256;
	assert_int_equal(keys_create(&f->env, &req, NOW + 1, &rec, NULL), 0);
	assert_int_equal(keyring_add(kr, rec), 0);
	assert_int_equal(keyring_find(kr, "agent-late", "jwt", NULL, &k), 0);
	assert_int_equal(
	    keyring_sign(kr, k, msg, sizeof(msg) - 1, &sig, &siglen), 0);
	assert_int_equal(pubkey_from_spki(CUSTODY_ALG_ECDSA_P256, k->rec->spki,
			     k->rec->spki_len, &pk),
	    0);
	assert_int_equal(
	    pubkey_verify(pk, msg, sizeof(msg) - 1, sig, siglen), 0);
	free(sig);
	sig = NULL;
	pubkey_free(pk);
	keyring_put(k);
	keyring_close(kr);
}

/* A retired key cannot sign: CUSTODY_E_STATE, and the token is not asked. */
static void
test_sign_retired(void **state)
{
	struct fixture *f = *state;
	struct keys_create_req req = {.agent = "agent-r",
	    .owner = "team-a",
	    .purpose = "jwt",
	    .alg = CUSTODY_ALG_ED25519};
	struct store_key *rec = NULL;
	struct keyring *kr = NULL;
	struct keyring_key *k = NULL;
	uint8_t *sig = (uint8_t *)&sig;
	size_t siglen = 7;
	unsigned long signs;
	char id[STORE_KEY_ID_LEN + 1];

	assert_int_equal(keys_create(&f->env, &req, NOW, &rec, NULL), 0);
	memcpy(id, rec->id, sizeof(id));
	store_key_free(rec);
	assert_int_equal(
	    store_key_set_state(f->st, id, "active", "retired", NOW + 10, NULL),
	    0);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	assert_no_find(kr, "agent-r", "jwt", NULL);
	assert_int_equal(keyring_get(kr, id, &k), 0);
	assert_string_equal(k->rec->state, "retired");
	signs = mock_p11_calls("C_Sign");
	assert_int_equal(
	    keyring_sign(kr, k, (const uint8_t *)"m", 1, &sig, &siglen),
	    CUSTODY_E_STATE);
	assert_ptr_equal(sig, (uint8_t *)&sig);
	assert_int_equal(siglen, 7);
	assert_int_equal(mock_p11_calls("C_Sign"), signs);
	keyring_put(k);
	/* so can't a retired record added to the ring */
	assert_int_equal(
	    keyring_add(kr, rec_new(0xabcdefull, "agent-s", "jwt", NULL,
				CUSTODY_ALG_ED25519, "retired", NOW)),
	    0);
	assert_int_equal(keyring_get(kr, id_of(0xabcdefull), &k), 0);
	assert_int_equal(
	    keyring_sign(kr, k, (const uint8_t *)"m", 1, &sig, &siglen),
	    CUSTODY_E_STATE);
	keyring_put(k);
	keyring_close(kr);
}

#define MANY 300

static const char *const purposes[] = {
    "jwt", "x509-ca", "attestation", "checkpoint"};

static const char *
many_state(size_t i)
{
	return i % 7 == 3 ? "destroyed" : i % 5 == 1 ? "retired" : "active";
}

/* Many keys, from the registry and added: the indexes grow, every key is
 * found by id and (when active) by its use. */
static void
test_many(void **state)
{
	struct fixture *f = *state;
	struct keyring *kr = NULL;
	struct keyring_key *k = NULL;
	size_t i, present = 0;
	char agent[32];

	assert_int_equal(store_begin(f->st), 0);
	for (i = 0; i < MANY; i++) {
		snprintf(agent, sizeof(agent), "agent-%zu", i / 4);
		put_rec(f, 0x1000 + i, agent, purposes[i % 4],
		    i % 3 == 0 ? "task" : NULL,
		    (enum custody_alg)(i % 3), /* no RSA: quicker */
		    many_state(i), (int64_t)(1000 + i));
		present += strcmp(many_state(i), "destroyed") != 0;
	}
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(keyring_open(f->t, f->st, NULL, &kr), 0);
	assert_int_equal(keyring_size(kr), present);
	for (i = 0; i < MANY; i++) {
		snprintf(agent, sizeof(agent), "agent-%zu", MANY + i);
		assert_int_equal(
		    keyring_add(kr,
			rec_new(0x2000 + i, agent, purposes[i % 4], NULL,
			    CUSTODY_ALG_ED25519, i % 2 ? "active" : "retired",
			    (int64_t)(5000 + i))),
		    0);
		assert_int_equal(keyring_size(kr), present + i + 1);
	}
	for (i = 0; i < MANY; i++) {
		snprintf(agent, sizeof(agent), "agent-%zu", i / 4);
		if (strcmp(many_state(i), "destroyed") == 0) {
			assert_int_equal(keyring_get(kr, id_of(0x1000 + i), &k),
			    CUSTODY_E_KEY_NOT_FOUND);
			continue;
		}
		assert_get(kr, 0x1000 + i, many_state(i));
		if (strcmp(many_state(i), "active") == 0)
			assert_find(kr, agent, purposes[i % 4],
			    i % 3 == 0 ? "task" : NULL, 0x1000 + i);
		else
			assert_no_find(kr, agent, purposes[i % 4],
			    i % 3 == 0 ? "task" : NULL);
	}
	for (i = 0; i < MANY; i++) {
		snprintf(agent, sizeof(agent), "agent-%zu", MANY + i);
		assert_get(kr, 0x2000 + i, i % 2 ? "active" : "retired");
		if (i % 2)
			assert_find(
			    kr, agent, purposes[i % 4], NULL, 0x2000 + i);
		else
			assert_no_find(kr, agent, purposes[i % 4], NULL);
	}
	keyring_close(kr);
}

/* ---- lookups from 4 threads while another adds ---- */

#define PRE	200
#define ADDED	600
#define READERS 4

struct shared {
	struct keyring *kr;
	struct store_key *recs[ADDED];
	atomic_size_t added; /* recs[0..added) are in the ring */
	atomic_int done;
	atomic_int errors;
	atomic_ulong lookups;
	atomic_ulong during; /* lookups made while the writer ran */
	pthread_barrier_t start;
};

static void *
writer(void *arg)
{
	struct shared *s = arg;
	size_t i;

	pthread_barrier_wait(&s->start);
	for (i = 0; i < ADDED; i++) {
		if (keyring_add(s->kr, s->recs[i]) != 0)
			atomic_fetch_add(&s->errors, 1);
		s->recs[i] = NULL;
		atomic_store(&s->added, i + 1);
		/* let the readers run between adds (and reindexes) */
		nanosleep(&(struct timespec){0, 100 * 1000}, NULL);
	}
	atomic_store(&s->done, 1);
	return NULL;
}

static int
check_key(struct keyring_key *k, const char *id, const char *agent)
{
	return strcmp(k->rec->id, id) == 0 &&
	       strcmp(k->rec->agent, agent) == 0 &&
	       (strcmp(k->rec->purpose, "jwt") != 0 || k->jwk != NULL);
}

static void *
reader(void *arg)
{
	struct shared *s = arg;
	struct keyring_key *k;
	char agent[32], id[STORE_KEY_ID_LEN + 1];
	size_t i, n, pass = 0;
	int last = 0;

	pthread_barrier_wait(&s->start);
	while (!last) {
		last = atomic_load(&s->done);
		for (i = 0; i < PRE; i++) {
			snprintf(id, sizeof(id), "k_%016llx",
			    (unsigned long long)(0x1000 + i));
			snprintf(agent, sizeof(agent), "pre-%zu", i);
			k = NULL;
			if (keyring_get(s->kr, id, &k) != 0 ||
			    !check_key(k, id, agent))
				atomic_fetch_add(&s->errors, 1);
			keyring_put(k);
			k = NULL;
			if (keyring_find(s->kr, agent,
				i % 2 ? "jwt" : "x509-ca", NULL, &k) != 0 ||
			    !check_key(k, id, agent))
				atomic_fetch_add(&s->errors, 1);
			keyring_put(k);
			atomic_fetch_add(&s->lookups, 2);
		}
		n = atomic_load(&s->added);
		for (i = (pass * 37) % (n + 1); i < n; i += 3) {
			snprintf(id, sizeof(id), "k_%016llx",
			    (unsigned long long)(0x5000 + i));
			snprintf(agent, sizeof(agent), "new-%zu", i);
			k = NULL;
			if (keyring_get(s->kr, id, &k) != 0 ||
			    !check_key(k, id, agent))
				atomic_fetch_add(&s->errors, 1);
			keyring_put(k);
			k = NULL;
			if (keyring_find(s->kr, agent, "jwt", "task", &k) !=
				0 ||
			    !check_key(k, id, agent))
				atomic_fetch_add(&s->errors, 1);
			keyring_put(k);
			atomic_fetch_add(&s->lookups, 2);
		}
		if (!last)
			atomic_fetch_add(&s->during, 1);
		pass++;
	}
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct fixture *f = *state;
	struct shared *s;
	pthread_t w, r[READERS];
	struct keyring_key **v = NULL;
	char agent[32];
	size_t i, n = 0;

	assert_non_null(s = calloc(1, sizeof(*s)));
	assert_int_equal(store_begin(f->st), 0);
	for (i = 0; i < PRE; i++) {
		snprintf(agent, sizeof(agent), "pre-%zu", i);
		put_rec(f, 0x1000 + i, agent, i % 2 ? "jwt" : "x509-ca", NULL,
		    i % 2 ? CUSTODY_ALG_ED25519 : CUSTODY_ALG_ECDSA_P256,
		    "active", (int64_t)(100 + i));
	}
	assert_int_equal(store_commit(f->st), 0);
	for (i = 0; i < ADDED; i++) {
		snprintf(agent, sizeof(agent), "new-%zu", i);
		s->recs[i] = rec_new(0x5000 + i, agent, "jwt", "task",
		    i % 2 ? CUSTODY_ALG_ECDSA_P256 : CUSTODY_ALG_ED25519,
		    "active", (int64_t)(10000 + i));
	}
	assert_int_equal(keyring_open(f->t, f->st, NULL, &s->kr), 0);
	assert_int_equal(pthread_barrier_init(&s->start, NULL, READERS + 1), 0);
	for (i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&r[i], NULL, reader, s), 0);
	assert_int_equal(pthread_create(&w, NULL, writer, s), 0);
	assert_int_equal(pthread_join(w, NULL), 0);
	for (i = 0; i < READERS; i++)
		assert_int_equal(pthread_join(r[i], NULL), 0);
	assert_int_equal(atomic_load(&s->errors), 0);
	assert_true(atomic_load(&s->lookups) > (unsigned long)PRE * READERS);
	/* the readers' passes overlapped the adds */
	assert_true(atomic_load(&s->during) > 0);
	pthread_barrier_destroy(&s->start);
	assert_int_equal(keyring_size(s->kr), PRE + ADDED);
	assert_int_equal(keyring_list(s->kr, "jwt", &v, &n), 0);
	assert_int_equal(n, PRE / 2 + ADDED);
	/* the added keys come after the loaded ones, in the order added */
	for (i = 0; i < ADDED; i++)
		assert_string_equal(v[PRE / 2 + i]->rec->id, id_of(0x5000 + i));
	keyring_list_free(v, n);
	keyring_close(s->kr);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_list_creation_order_with_retired, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_references, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_jwk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sign, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sign_retired, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
