/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of audit.c on a real SQLite file: leaf bytes, operations that
 * commit with their leaf or are undone with it, group commit under
 * concurrency, the Merkle tree checked against a naive RFC 6962 root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "audit.h"
#include "err.h"
#include "merkle.h"
#include "store.h"
#include "testutil.h"

struct fixture {
	char dir[64];
	char db[96];
	struct audit *a;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL ||
	    testutil_mkdtemp("custody-audit", f->dir, sizeof(f->dir)) != 0)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/custody.db", f->dir);
	if (audit_open(f->db, &f->a) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	audit_close(f->a);
	testutil_rmtree(f->dir);
	free(f);
	return 0;
}

static json_t *
event(const char *name)
{
	return json_pack(
	    "{s:s, s:{s:s}}", "event", name, "detail", "version", "0.1.0");
}

/* The leaf is "v", "seq", "time" and then the caller's members, compact. */
static void
test_leaf_bytes(void **state)
{
	struct fixture *f = *state;
	json_t *e = event("service.start"), *o;
	json_error_t err;
	uint8_t *leaf = NULL;
	size_t len = 0;
	uint64_t seq = 99;
	const char *t;

	assert_int_equal(
	    audit_append(f->a, e, NULL, NULL, &seq, &leaf, &len), 0);
	assert_int_equal(seq, 0);
	assert_int_equal(audit_size(f->a), 1);
	assert_memory_equal(leaf, "{\"v\":1,\"seq\":0,\"time\":\"", 23);
	assert_true(len > 60);
	{
		static const char tail[] =
		    ",\"event\":\"service.start\","
		    "\"detail\":{\"version\":\"0.1.0\"}}";

		assert_memory_equal(
		    leaf + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	}
	o = json_loadb((const char *)leaf, len, JSON_REJECT_DUPLICATES, &err);
	assert_non_null(o);
	t = json_string_value(json_object_get(o, "time"));
	assert_non_null(t);
	/* 2026-11-23T10:00:00.123Z */
	assert_int_equal(strlen(t), 24);
	assert_int_equal(t[19], '.');
	assert_int_equal(t[23], 'Z');
	json_decref(o);
	json_decref(e);
	free(leaf);
}

/* Bad leaves are refused alone: nothing is consumed, the log goes on. */
static void
test_bad_leaves_refused(void **state)
{
	struct fixture *f = *state;
	json_t *e = json_pack("{s:s, s:i}", "event", "x", "seq", 5);
	char *big = malloc(70000);
	uint64_t seq = 0;

	assert_int_equal(audit_append(f->a, e, NULL, NULL, &seq, NULL, NULL),
	    CUSTODY_E_INVALID_ARG);
	json_decref(e);
	memset(big, 'a', 69999);
	big[69999] = '\0';
	e = json_pack("{s:s, s:s}", "event", "x", "detail", big);
	assert_int_equal(audit_append(f->a, e, NULL, NULL, &seq, NULL, NULL),
	    CUSTODY_E_TOO_LARGE);
	json_decref(e);
	free(big);
	assert_int_equal(audit_size(f->a), 0);
	e = event("service.start");
	assert_int_equal(
	    audit_append(f->a, e, NULL, NULL, &seq, NULL, NULL), 0);
	assert_int_equal(seq, 0);
	json_decref(e);
	assert_false(audit_failed(f->a));
}

static struct store_key *
sample_key(const char *id, const char *agent)
{
	static uint8_t spki[] = {0x30, 0x2a};
	struct store_key *k = calloc(1, sizeof(*k));

	snprintf(k->id, sizeof(k->id), "%s", id);
	k->agent = strdup(agent);
	k->owner = strdup("team");
	k->purpose = strdup("jwt");
	k->alg = strdup("ed25519");
	k->state = strdup("active");
	k->created_at = 1000;
	k->spki = malloc(sizeof(spki));
	memcpy(k->spki, spki, sizeof(spki));
	k->spki_len = sizeof(spki);
	k->kid = strdup("kid");
	k->token = strdup("pkcs11:token=t;id=%00");
	return k;
}

struct op_arg {
	struct store_key *k;
	int fail_with;
};

static int
insert_key_op(struct store *st, void *arg)
{
	struct op_arg *oa = arg;
	int r;

	if ((r = store_key_insert(st, oa->k)) != 0)
		return r;
	return oa->fail_with;
}

/* A registry change commits with its leaf, or is undone with it. */
static void
test_op_commits_or_undone_with_leaf(void **state)
{
	struct fixture *f = *state;
	struct op_arg ok = {sample_key("k_00000000000000aa", "a1"), 0};
	struct op_arg bad = {
	    sample_key("k_00000000000000bb", "a2"), CUSTODY_E_EXISTS};
	struct store *st = NULL;
	struct store_key *got = NULL;
	json_t *e = event("key.create");
	uint8_t *leaf = NULL, hash[32];
	size_t len = 0;
	uint64_t seq = 7;

	assert_int_equal(
	    audit_append(f->a, e, insert_key_op, &bad, &seq, NULL, NULL),
	    CUSTODY_E_EXISTS);
	assert_int_equal(audit_size(f->a), 0);
	assert_int_equal(
	    audit_append(f->a, e, insert_key_op, &ok, &seq, NULL, NULL), 0);
	assert_int_equal(seq, 0);
	/* another connection sees the key and the leaf, but not the undone */
	assert_int_equal(store_open(f->db, &st), 0);
	assert_int_equal(store_key_get(st, "k_00000000000000aa", &got), 0);
	store_key_free(got);
	got = NULL;
	assert_int_equal(store_key_get(st, "k_00000000000000bb", &got),
	    CUSTODY_E_KEY_NOT_FOUND);
	assert_int_equal(store_leaf_get(st, 0, &leaf, &len, hash), 0);
	assert_int_equal(
	    store_leaf_get(st, 1, &leaf, &len, hash), CUSTODY_E_NOT_FOUND);
	free(leaf);
	store_close(st);
	json_decref(e);
	store_key_free(ok.k);
	store_key_free(bad.k);
}

struct worker {
	struct audit *a;
	int n;
	uint64_t *seqs;
	int failures;
};

static void *
append_loop(void *arg)
{
	struct worker *w = arg;
	json_t *e = event("credential.jwt");
	int i;

	for (i = 0; i < w->n; i++)
		if (audit_append(
			w->a, e, NULL, NULL, &w->seqs[i], NULL, NULL) != 0)
			w->failures++;
	json_decref(e);
	return NULL;
}

/* Concurrent appends: every caller gets its own leaf, none is lost. */
static void
test_concurrent_appends(void **state)
{
	struct fixture *f = *state;
	enum { THREADS = 16, EACH = 40 };
	struct worker w[THREADS];
	pthread_t th[THREADS];
	uint8_t *seen = calloc(THREADS * EACH, 1);
	int i, j;

	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){f->a, EACH, calloc(EACH, 8), 0};
		assert_int_equal(
		    pthread_create(&th[i], NULL, append_loop, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
		for (j = 0; j < EACH; j++) {
			assert_true(w[i].seqs[j] < THREADS * EACH);
			assert_int_equal(seen[w[i].seqs[j]], 0);
			seen[w[i].seqs[j]] = 1;
		}
		free(w[i].seqs);
	}
	assert_int_equal(audit_size(f->a), THREADS * EACH);
	assert_true(audit_commits(f->a) <= THREADS * EACH);
	print_message("%d appends in %lu transactions\n", THREADS * EACH,
	    (unsigned long)audit_commits(f->a));
	free(seen);
}

static int waiting;
static pthread_mutex_t waiting_lock = PTHREAD_MUTEX_INITIALIZER;

/* Holds the writer inside the first batch until ten more appends wait. */
static int
hold_op(struct store *st, void *arg)
{
	int n;

	(void)st;
	(void)arg;
	do {
		usleep(10000);
		pthread_mutex_lock(&waiting_lock);
		n = waiting;
		pthread_mutex_unlock(&waiting_lock);
	} while (n < 10);
	usleep(200000); /* let the last of them reach the queue */
	return 0;
}

static void *
one_append(void *arg)
{
	struct audit *a = arg;
	json_t *e = event("credential.jwt");
	uint64_t seq;

	pthread_mutex_lock(&waiting_lock);
	waiting++;
	pthread_mutex_unlock(&waiting_lock);
	if (audit_append(a, e, NULL, NULL, &seq, NULL, NULL) != 0)
		fail_msg("append failed");
	json_decref(e);
	return NULL;
}

static void *
held_append(void *arg)
{
	struct audit *a = arg;
	json_t *e = event("service.start");
	uint64_t seq;

	if (audit_append(a, e, hold_op, NULL, &seq, NULL, NULL) != 0)
		fail_msg("held append failed");
	json_decref(e);
	return NULL;
}

/* Group commit: the ten appends queued behind a busy writer commit in one
 * transaction. */
static void
test_group_commit(void **state)
{
	struct fixture *f = *state;
	pthread_t held, th[10];
	int i;

	waiting = 0;
	assert_int_equal(pthread_create(&held, NULL, held_append, f->a), 0);
	usleep(50000);
	for (i = 0; i < 10; i++)
		assert_int_equal(
		    pthread_create(&th[i], NULL, one_append, f->a), 0);
	pthread_join(held, NULL);
	for (i = 0; i < 10; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(audit_size(f->a), 11);
	assert_int_equal(audit_commits(f->a), 2);
}

/* What the asynchronous appends' callbacks saw. */
struct async_seen {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls[64]; /* callbacks per append */
	uint64_t seq[64];
	int r[64];
	int n;
};

struct async_arg {
	struct async_seen *seen;
	int i;
};

static void
async_done(void *arg, int r, uint64_t seq)
{
	struct async_arg *aa = arg;
	struct async_seen *s = aa->seen;

	pthread_mutex_lock(&s->lock);
	s->calls[aa->i]++;
	s->seq[aa->i] = seq;
	s->r[aa->i] = r;
	s->n++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Holds the writer inside its batch until the test opens the gate. */
static int gate_open, gate_entered;

static int
gate_op(struct store *st, void *arg)
{
	int open_;

	(void)st;
	(void)arg;
	do {
		pthread_mutex_lock(&waiting_lock);
		gate_entered = 1;
		open_ = gate_open;
		pthread_mutex_unlock(&waiting_lock);
		usleep(5000);
		pthread_mutex_lock(&waiting_lock);
		pthread_mutex_unlock(&waiting_lock);
	} while (!open_);
	return 0;
}

static void *
gated_append(void *arg)
{
	struct audit *a = arg;
	json_t *e = event("service.start");
	uint64_t seq;

	if (audit_append(a, e, gate_op, NULL, &seq, NULL, NULL) != 0)
		fail_msg("gated append failed");
	json_decref(e);
	return NULL;
}

static int
refuse_op(struct store *st, void *arg)
{
	(void)st;
	(void)arg;
	return CUSTODY_E_EXISTS;
}

/*
 * Asynchronous appends: queued behind a held writer, they commit in one
 * transaction, each callback runs once, in log order, with its seq; one
 * whose operation fails gets that error alone; the fields may be dropped as
 * soon as the call returns; audit_close() finishes what is queued.
 */
static void
test_async_appends(void **state)
{
	struct fixture *f = *state;
	struct async_seen seen;
	struct async_arg args[64];
	pthread_t held;
	json_t *e;
	int i, n = 40;

	memset(&seen, 0, sizeof(seen));
	pthread_mutex_init(&seen.lock, NULL);
	pthread_cond_init(&seen.cond, NULL);
	gate_open = gate_entered = 0;
	assert_int_equal(pthread_create(&held, NULL, gated_append, f->a), 0);
	for (;;) { /* until the writer holds the gated batch */
		pthread_mutex_lock(&waiting_lock);
		i = gate_entered;
		pthread_mutex_unlock(&waiting_lock);
		if (i)
			break;
		usleep(5000);
	}
	for (i = 0; i < n; i++) {
		args[i].seen = &seen;
		args[i].i = i;
		e = event("credential.jwt");
		assert_int_equal(
		    audit_append_async(f->a, e, i == 7 ? refuse_op : NULL, NULL,
			async_done, &args[i]),
		    0);
		json_decref(e); /* the log holds its own reference */
	}
	pthread_mutex_lock(&waiting_lock);
	gate_open = 1;
	pthread_mutex_unlock(&waiting_lock);
	pthread_join(held, NULL);
	pthread_mutex_lock(&seen.lock);
	while (seen.n < n)
		pthread_cond_wait(&seen.cond, &seen.lock);
	pthread_mutex_unlock(&seen.lock);
	for (i = 0; i < n; i++) {
		assert_int_equal(seen.calls[i], 1);
		if (i == 7) {
			assert_int_equal(seen.r[i], CUSTODY_E_EXISTS);
			continue;
		}
		assert_int_equal(seen.r[i], 0);
		/* leaf 0 is the held append's; 7 took no leaf */
		assert_int_equal(seen.seq[i], (uint64_t)(i < 7 ? i + 1 : i));
	}
	assert_int_equal(audit_size(f->a), (uint64_t)n);
	assert_int_equal(audit_commits(f->a), 2);

	/* queued when the log closes: still written, callbacks still run */
	memset(seen.calls, 0, sizeof(seen.calls));
	seen.n = 0;
	for (i = 0; i < 5; i++) {
		e = event("credential.jwt");
		assert_int_equal(audit_append_async(
				     f->a, e, NULL, NULL, async_done, &args[i]),
		    0);
		json_decref(e);
	}
	audit_close(f->a);
	f->a = NULL;
	assert_int_equal(seen.n, 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(seen.calls[i], 1);
		assert_int_equal(seen.r[i], 0);
		assert_int_equal(seen.seq[i], (uint64_t)(n + i));
	}
	pthread_mutex_destroy(&seen.lock);
	pthread_cond_destroy(&seen.cond);
}

/* Refused without queueing: no callback. */
static void
test_async_refused(void **state)
{
	struct fixture *f = *state;
	json_t *e = json_pack("{s:i}", "seq", 3);
	struct async_seen seen;
	struct async_arg arg = {&seen, 0};

	memset(&seen, 0, sizeof(seen));
	pthread_mutex_init(&seen.lock, NULL);
	pthread_cond_init(&seen.cond, NULL);
	assert_int_equal(
	    audit_append_async(f->a, NULL, NULL, NULL, async_done, &arg),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(audit_append_async(f->a, e, NULL, NULL, NULL, NULL),
	    CUSTODY_E_INVALID_ARG);
	/* fields the log sets itself are refused by the writer: the callback
	 * says so, and nothing is written */
	assert_int_equal(
	    audit_append_async(f->a, e, NULL, NULL, async_done, &arg), 0);
	pthread_mutex_lock(&seen.lock);
	while (seen.n < 1)
		pthread_cond_wait(&seen.cond, &seen.lock);
	pthread_mutex_unlock(&seen.lock);
	assert_int_equal(seen.calls[0], 1);
	assert_int_equal(seen.r[0], CUSTODY_E_INVALID_ARG);
	assert_int_equal(audit_size(f->a), 0);
	json_decref(e);
	pthread_mutex_destroy(&seen.lock);
	pthread_cond_destroy(&seen.cond);
}

struct counting {
	struct audit *a;
	int n;
};

static void *
many_appends(void *arg)
{
	struct counting *k = arg;
	json_t *e = event("credential.jwt");
	uint64_t seq;
	int i;

	for (i = 0; i < k->n; i++)
		if (audit_append(k->a, e, NULL, NULL, &seq, NULL, NULL) != 0)
			fail_msg("append failed");
	json_decref(e);
	return NULL;
}

/*
 * store_leaf_count() on another connection while the log's writer commits
 * (the checkpointer does this): one snapshot, so the count and the tree
 * always agree, and the count never goes backwards.
 */
static void
test_leaf_count_while_appending(void **state)
{
	struct fixture *f = *state;
	struct counting k = {f->a, 400};
	struct store *st;
	pthread_t th[4];
	uint64_t n, last = 0;
	int i, reads = 0;

	assert_int_equal(store_open(f->db, &st), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&th[i], NULL, many_appends, &k), 0);
	while (last < 1600) {
		assert_int_equal(store_leaf_count(st, &n), 0);
		assert_true(n >= last);
		last = n;
		reads++;
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(store_leaf_count(st, &n), 0);
	assert_int_equal(n, 1600);
	assert_true(reads > 1);
	store_close(st);
}

static void
sha256(const void *a, size_t alen, const void *b, size_t blen, const void *c,
    size_t clen, uint8_t out[32])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();

	EVP_DigestInit_ex(m, EVP_sha256(), NULL);
	EVP_DigestUpdate(m, a, alen);
	EVP_DigestUpdate(m, b, blen);
	EVP_DigestUpdate(m, c, clen);
	EVP_DigestFinal_ex(m, out, NULL);
	EVP_MD_CTX_free(m);
}

/* RFC 6962 2.1, written out recursively here, not taken from merkle.c. */
static void
naive_root(uint8_t (*leaves)[32], uint64_t n, uint8_t out[32])
{
	uint8_t l[32], r[32];
	uint64_t k = 1;

	if (n == 1) {
		memcpy(out, leaves[0], 32);
		return;
	}
	while (k * 2 < n)
		k *= 2;
	naive_root(leaves, k, l);
	naive_root(leaves + k, n - k, r);
	sha256("\x01", 1, l, 32, r, 32, out);
}

static int
node_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	return store_node_get(arg, level, index, out);
}

/* The stored tree's root and proofs agree with a naive recomputation from
 * the leaf bytes, for every size; the log survives a reopen. */
static void
test_tree_and_reopen(void **state)
{
	struct fixture *f = *state;
	enum { N = 37 };
	uint8_t hashes[N][32], root[32], want[32], hash[32];
	uint8_t proof[MERKLE_MAX_PROOF][32];
	struct store *st = NULL;
	struct merkle_store ms;
	uint8_t *leaf;
	size_t len, plen;
	uint64_t seq, n, i;
	json_t *e = event("credential.jwt");

	for (i = 0; i < N; i++) {
		assert_int_equal(
		    audit_append(f->a, e, NULL, NULL, &seq, NULL, NULL), 0);
		assert_int_equal(seq, i);
	}
	assert_int_equal(store_open(f->db, &st), 0);
	ms = (struct merkle_store){node_get, st};
	for (i = 0; i < N; i++) {
		assert_int_equal(store_leaf_get(st, i, &leaf, &len, hash), 0);
		/* the stored hash is the RFC 6962 hash of the stored bytes */
		sha256("\x00", 1, leaf, len, "", 0, hashes[i]);
		assert_memory_equal(hash, hashes[i], 32);
		free(leaf);
	}
	for (n = 1; n <= N; n++) {
		naive_root(hashes, n, want);
		assert_int_equal(merkle_root(&ms, n, root), 0);
		assert_memory_equal(root, want, 32);
		for (i = 0; i < n; i += 5) {
			assert_int_equal(
			    merkle_inclusion_proof(&ms, i, n, proof, &plen), 0);
			assert_int_equal(
			    merkle_verify_inclusion(hashes[i], i, n,
				(const uint8_t(*)[32])proof, plen, root),
			    0);
		}
	}
	store_close(st);
	/* reopen: the size is read back, appends go on from there */
	audit_close(f->a);
	assert_int_equal(audit_open(f->db, &f->a), 0);
	assert_int_equal(audit_size(f->a), N);
	assert_int_equal(
	    audit_append(f->a, e, NULL, NULL, &seq, NULL, NULL), 0);
	assert_int_equal(seq, N);
	json_decref(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_leaf_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_bad_leaves_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_op_commits_or_undone_with_leaf, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_concurrent_appends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_async_appends, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_async_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_leaf_count_while_appending, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_tree_and_reopen, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
