/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Driver for the SIGKILL test (tests/integration/test_audit_crash.sh).
 *
 *   audit_crash append DB THREADS   append from THREADS threads until
 *                                   killed; after each append returns,
 *                                   print "ack SEQ LEAFHASH"
 *   audit_crash fill DB N           append N leaves from 8 threads and
 *                                   exit (a log to export and verify)
 *   audit_crash verify DB ACKS      after the kill: every acknowledged
 *                                   leaf is in the log with its hash, the
 *                                   log is contiguous, the stored tree
 *                                   agrees with one rebuilt from the leaf
 *                                   bytes, and the log accepts appends
 *   audit_crash forge DB            append the leaf whose fields (a JSON
 *                                   object without v, seq and time) are
 *                                   on stdin, as an insider with the
 *                                   database could: the lifecycle test
 *                                   builds logs that verify as Merkle
 *                                   trees and break the lifecycle checks
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "err.h"
#include "merkle.h"
#include "store.h"
#include "util.h"

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct audit *log_;
static int limited; /* fill: stop after `budget` appends */
static long budget;

static void *
appender(void *arg)
{
	json_t *e;
	uint8_t *leaf, hash[MERKLE_HASH_LEN];
	char hex[2 * MERKLE_HASH_LEN + 1];
	size_t len;
	uint64_t seq, n;

	for (n = 0;; n++) {
		if (limited &&
		    __atomic_sub_fetch(&budget, 1, __ATOMIC_SEQ_CST) < 0)
			return NULL;
		e = json_pack("{s:s, s:{s:I, s:I}}", "event", "test.fill",
		    "detail", "thread", (json_int_t)(intptr_t)arg, "n",
		    (json_int_t)n);
		if (audit_append(log_, e, NULL, NULL, &seq, &leaf, &len) != 0) {
			fprintf(stderr, "append failed\n");
			exit(1);
		}
		json_decref(e);
		merkle_leaf_hash(leaf, len, hash);
		free(leaf);
		util_hex_encode(hash, sizeof(hash), hex);
		/* only now is the leaf acknowledged: it is durable */
		pthread_mutex_lock(&out_lock);
		printf("ack %" PRIu64 " %s\n", seq, hex);
		fflush(stdout);
		pthread_mutex_unlock(&out_lock);
	}
	return NULL;
}

static int
node_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	return store_node_get(arg, level, index, out);
}

/* An in-memory tree rebuilt from the leaves, for the comparison. */
struct mem {
	struct merkle_node *n;
	size_t len, cap;
};

static int
mem_get(void *arg, unsigned level, uint64_t index, uint8_t out[32])
{
	struct mem *m = arg;
	size_t i;

	for (i = m->len; i-- > 0;)
		if (m->n[i].level == level && m->n[i].index == index) {
			memcpy(out, m->n[i].hash, 32);
			return 0;
		}
	return CUSTODY_E_STORE;
}

static int
verify(const char *db, const char *acks)
{
	struct store *st = NULL;
	struct merkle_node nodes[MERKLE_MAX_NEW_NODES];
	struct mem m = {NULL, 0, 0};
	struct merkle_store ss, ms = {mem_get, &m};
	uint8_t *leaf, hash[32], want[32], r1[32], r2[32];
	char line[256], hex[65];
	uint64_t n, i, seq, acked = 0;
	size_t len, k;
	json_t *e;
	FILE *f;

	if (store_open(db, &st) != 0 || store_leaf_count(st, &n) != 0) {
		fprintf(stderr, "the log does not open or is not contiguous\n");
		return 1;
	}
	ss = (struct merkle_store){node_get, st};
	/* rebuild the tree from the leaf bytes alone */
	for (i = 0; i < n; i++) {
		if (store_leaf_get(st, i, &leaf, &len, hash) != 0) {
			fprintf(stderr, "leaf %" PRIu64 " unreadable\n", i);
			return 1;
		}
		merkle_leaf_hash(leaf, len, want);
		free(leaf);
		if (memcmp(want, hash, 32) != 0) {
			fprintf(stderr,
			    "leaf %" PRIu64 ": stored hash is not "
			    "the hash of its bytes\n",
			    i);
			return 1;
		}
		if (merkle_append(&ms, i, hash, nodes, &k) != 0)
			return 1;
		if (m.len + k > m.cap) {
			m.cap = 2 * (m.len + k);
			m.n = realloc(m.n, m.cap * sizeof(*m.n));
		}
		memcpy(m.n + m.len, nodes, k * sizeof(*nodes));
		m.len += k;
	}
	if (n > 0 && (merkle_root(&ss, n, r1) != 0 ||
			 merkle_root(&ms, n, r2) != 0 || memcmp(r1, r2, 32))) {
		fprintf(stderr, "stored tree and rebuilt tree differ\n");
		return 1;
	}
	if ((f = fopen(acks, "r")) == NULL)
		return 1;
	while (fgets(line, sizeof(line), f) != NULL) {
		/* a line cut by the kill was never an acknowledgement */
		if (sscanf(line, "ack %" SCNu64 " %64s", &seq, hex) != 2 ||
		    strlen(hex) != 64 || line[strlen(line) - 1] != '\n')
			continue;
		acked++;
		if (seq >= n ||
		    store_leaf_get(st, seq, &leaf, &len, hash) != 0) {
			fprintf(stderr,
			    "acknowledged leaf %" PRIu64
			    " is not in the log (size %" PRIu64 ")\n",
			    seq, n);
			return 1;
		}
		free(leaf);
		if (util_hex_decode(hex, want, 32) != 0 ||
		    memcmp(want, hash, 32) != 0) {
			fprintf(stderr,
			    "leaf %" PRIu64 " differs from the "
			    "acknowledged one\n",
			    seq);
			return 1;
		}
	}
	fclose(f);
	store_close(st);
	free(m.n);
	/* and the log goes on from where it is */
	if (audit_open(db, &log_) != 0)
		return 1;
	e = json_pack("{s:s}", "event", "service.start");
	if (audit_append(log_, e, NULL, NULL, &seq, NULL, NULL) != 0 ||
	    seq != n) {
		fprintf(
		    stderr, "the log does not continue at %" PRIu64 "\n", n);
		return 1;
	}
	json_decref(e);
	audit_close(log_);
	printf("verified: %" PRIu64 " acknowledged, %" PRIu64 " in the log\n",
	    acked, n);
	return acked > 0 ? 0 : 1;
}

/* Append the leaf whose fields are on stdin; print its seq. */
static int
forge(const char *db)
{
	json_error_t err;
	json_t *fields;
	uint64_t seq;
	int r;

	if ((fields = json_loadf(stdin, JSON_REJECT_DUPLICATES, &err)) ==
		NULL ||
	    !json_is_object(fields)) {
		fprintf(
		    stderr, "forge: stdin: not a JSON object (%s)\n", err.text);
		json_decref(fields);
		return 2;
	}
	if (audit_open(db, &log_) != 0) {
		json_decref(fields);
		return 1;
	}
	r = audit_append(log_, fields, NULL, NULL, &seq, NULL, NULL);
	json_decref(fields);
	audit_close(log_);
	if (r != 0) {
		fprintf(stderr, "forge: %s\n", custody_strerror(r));
		return 1;
	}
	printf("%" PRIu64 "\n", seq);
	return 0;
}

int
main(int argc, char **argv)
{
	pthread_t th[64];
	long i, threads;

	if (argc == 4 && strcmp(argv[1], "verify") == 0)
		return verify(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "forge") == 0)
		return forge(argv[2]);
	if (argc == 4 && strcmp(argv[1], "fill") == 0) {
		threads = 8;
		limited = 1;
		if ((budget = strtol(argv[3], NULL, 10)) < 1)
			threads = 0;
	} else if (argc != 4 || strcmp(argv[1], "append") != 0 ||
		   (threads = strtol(argv[3], NULL, 10)) < 1 || threads > 64)
		threads = 0;
	if (threads == 0) {
		fprintf(stderr, "usage: audit_crash append DB THREADS | "
				"fill DB N | verify DB ACKS | forge DB\n");
		return 2;
	}
	if (audit_open(argv[2], &log_) != 0)
		return 1;
	for (i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, appender, (void *)(intptr_t)i);
	/* append: never returns, the test kills us */
	for (i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	audit_close(log_);
	return 0;
}
