/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit.h"
#include "err.h"
#include "log.h"
#include "merkle.h"
#include "store.h"
#include "util.h"

/* Appends taken into one transaction at most, to bound its latency. */
#define BATCH_MAX 1024

/*
 * One queued append. A synchronous one lives on its caller's stack until
 * done is set; an asynchronous one (cb set) is the log's, freed after its
 * callback.
 */
struct item {
	json_t *fields;
	audit_op_fn op;
	void *arg;
	int want_leaf;
	audit_done_fn cb;
	void *cbarg;
	struct item *cbnext; /* the batch's asynchronous items */
	/* results, written by the writer before done */
	int r;
	uint64_t seq;
	char *leaf;
	size_t leaflen;
	int done;
	struct item *next;
};

struct audit {
	struct store *st; /* the writer thread's only */
	pthread_t writer;
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t work;  /* the writer waits for appends */
	pthread_cond_t done;  /* callers wait for their append */
	struct item *head, *tail;
	int stop;
	int failed;
	uint64_t size;
	uint64_t commits;
};

/* "2026-11-23T10:00:00.123Z" */
static void
now_rfc3339_ms(char buf[32])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	util_now_ts(&ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/*
 * The leaf's exact bytes: "v", "seq" and "time" first, then the caller's
 * members in their order, compact. Produced once; stored and hashed as is.
 */
static int
leaf_bytes(json_t *fields, uint64_t seq, char **outp, size_t *lenp)
{
	json_t *o, *v;
	const char *k;
	char t[32], *s;
	size_t len;
	int r = 0;

	if ((o = json_object()) == NULL)
		return CUSTODY_E_NOMEM;
	now_rfc3339_ms(t);
	if (json_object_set_new(o, "v", json_integer(1)) != 0 ||
	    json_object_set_new(o, "seq", json_integer((json_int_t)seq)) != 0 ||
	    json_object_set_new(o, "time", json_string(t)) != 0) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	json_object_foreach(fields, k, v)
	{
		if (strcmp(k, "v") == 0 || strcmp(k, "seq") == 0 ||
		    strcmp(k, "time") == 0) {
			log_error_f("a leaf may not set '%s'", k);
			r = CUSTODY_E_INVALID_ARG;
			goto out;
		}
		if (json_object_set(o, k, v) != 0) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
	}
	if ((s = json_dumps(o, JSON_COMPACT)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if ((len = strlen(s)) > STORE_LEAF_MAX) {
		log_error_f(
		    "a leaf of %zu bytes is over %d", len, STORE_LEAF_MAX);
		free(s);
		r = CUSTODY_E_TOO_LARGE;
		goto out;
	}
	*outp = s;
	*lenp = len;
out:
	json_decref(o);
	return r;
}

/* Errors after which the transaction, not only the item, is in doubt. */
static int
fatal(int r)
{
	return r == CUSTODY_E_STORE || r == CUSTODY_E_IO ||
	       r == CUSTODY_E_NOMEM || r == CUSTODY_E_INTERNAL;
}

/*
 * Write one item at leaf number seq, inside its savepoint. Returns the
 * item's own error (its savepoint undone), or a fatal one for the batch.
 */
static int
write_item(struct audit *a, struct item *it, uint64_t seq)
{
	struct merkle_store ms;
	struct merkle_node nodes[MERKLE_MAX_NEW_NODES];
	uint8_t hash[MERKLE_HASH_LEN];
	size_t n = 0, i;
	int r;

	store_merkle(a->st, &ms);
	if ((r = store_savepoint(a->st)) != 0)
		return r;
	if (it->op != NULL && (r = it->op(a->st, it->arg)) != 0)
		goto undo;
	if (it->fields == NULL) /* audit_run(): the operation alone */
		return store_release(a->st);
	if ((r = leaf_bytes(it->fields, seq, &it->leaf, &it->leaflen)) != 0)
		goto undo;
	merkle_leaf_hash((const uint8_t *)it->leaf, it->leaflen, hash);
	/* from here on any error is the log's (a taken seq or node means the
	 * tree in memory and in the database disagree): fatal, not the item's
	 */
	if ((r = store_leaf_put(a->st, seq, (const uint8_t *)it->leaf,
		 it->leaflen, hash)) != 0 ||
	    (r = merkle_append(&ms, seq, hash, nodes, &n)) != 0)
		goto broken;
	for (i = 0; i < n; i++)
		if ((r = store_node_put(a->st, nodes[i].level, nodes[i].index,
			 nodes[i].hash)) != 0)
			goto broken;
	if ((r = store_release(a->st)) != 0)
		return r;
	it->seq = seq;
	return 0;
undo:
	free(it->leaf);
	it->leaf = NULL;
	if (store_rollback_to(a->st) != 0)
		return CUSTODY_E_STORE;
	/* a store error in the operation is the log's too */
	return fatal(r) ? r : (it->r = r, 0);
broken:
	free(it->leaf);
	it->leaf = NULL;
	log_error_fr(r, "writing leaf %llu", (unsigned long long)seq);
	return fatal(r) ? r : CUSTODY_E_STORE;
}

/*
 * One transaction for the whole batch. Returns the new size, or sets
 * *failedp: then no item of the batch is durable.
 */
static uint64_t
commit_batch(struct audit *a, struct item *batch, uint64_t size, int *failedp)
{
	struct item *it;
	uint64_t n = size;
	int r;

	for (it = batch; it != NULL; it = it->next)
		it->r = 0;
	if ((r = store_begin(a->st)) == CUSTODY_E_LOCKED) {
		/* another connection held the database past the busy timeout:
		 * nothing was written, so this batch fails and the log goes on
		 */
		log_error_fr(r, "audit log busy: batch refused");
		for (it = batch; it != NULL; it = it->next)
			it->r = r;
		return size;
	}
	if (r != 0)
		goto fail;
	for (it = batch; it != NULL; it = it->next) {
		if ((r = write_item(a, it, n)) != 0) {
			(void)store_rollback(a->st);
			goto fail;
		}
		if (it->r == 0 && it->fields != NULL)
			n++;
	}
	/* the commit point: COMMIT returns after the fsync (synchronous=FULL)
	 */
	if ((r = store_commit(a->st)) != 0)
		goto fail;
	return n;
fail:
	log_error_fr(r, "audit log write failed: the log accepts no more "
			"appends until custody is restarted");
	*failedp = 1;
	return size;
}

/*
 * Set every item's result (a->lock held) and return the asynchronous ones,
 * linked by cbnext: once done is set, a synchronous item may vanish.
 */
static struct item *
finish(struct item *batch, int failed)
{
	struct item *it, *cbs = NULL, **tail = &cbs;

	for (it = batch; it != NULL; it = it->next) {
		if (it->cb != NULL) {
			*tail = it;
			tail = &it->cbnext;
		}
		if (failed) {
			it->r = CUSTODY_E_LOG_FAILED;
			free(it->leaf);
			it->leaf = NULL;
		} else if (it->r != 0 || !it->want_leaf) {
			free(it->leaf);
			it->leaf = NULL;
		}
		it->done = 1;
	}
	return cbs;
}

static void *
writer_main(void *arg)
{
	struct audit *a = arg;
	struct item *batch, *it;
	uint64_t size;
	int failed, k;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		while (a->head == NULL && !a->stop)
			pthread_cond_wait(&a->work, &a->lock);
		if (a->head == NULL)
			break; /* stopped, and nothing left to write */
		batch = a->head;
		for (it = batch, k = 1; it->next != NULL && k < BATCH_MAX; k++)
			it = it->next;
		a->head = it->next;
		if (a->head == NULL)
			a->tail = NULL;
		it->next = NULL;
		size = a->size;
		failed = a->failed;
		pthread_mutex_unlock(&a->lock);

		if (!failed)
			size = commit_batch(a, batch, size, &failed);

		pthread_mutex_lock(&a->lock);
		batch = finish(batch, failed);
		if (failed)
			a->failed = 1;
		else {
			a->size = size;
			a->commits++;
		}
		pthread_cond_broadcast(&a->done);
		pthread_mutex_unlock(&a->lock);
		/* callbacks run unlocked (they may append again), in log
		 * order */
		while (batch != NULL) {
			it = batch;
			batch = it->cbnext;
			it->cb(it->cbarg, it->r, it->seq);
			json_decref(it->fields);
			free(it);
		}
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int
audit_open(const char *path, struct audit **ap)
{
	struct audit *a;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    path != NULL && ap != NULL, CUSTODY_E_INVALID_ARG);
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return CUSTODY_E_NOMEM;
	if ((r = store_open(path, &a->st)) != 0 ||
	    (r = store_leaf_count(a->st, &a->size)) != 0 ||
	    (r = store_wal_offload(a->st, path)) != 0)
		goto fail;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->done, NULL);
	if (pthread_create(&a->writer, NULL, writer_main, a) != 0) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->work);
		pthread_cond_destroy(&a->done);
		r = CUSTODY_E_NOMEM;
		goto fail;
	}
	*ap = a;
	return 0;
fail:
	store_close(a->st);
	free(a);
	return r;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = 1;
	pthread_cond_signal(&a->work);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->writer, NULL);
	store_close(a->st);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->done);
	free(a);
}

/* Queue it (a->lock held), unless the log has failed or is stopping. */
static int
enqueue(struct audit *a, struct item *it)
{
	if (a->failed || a->stop)
		return CUSTODY_E_LOG_FAILED;
	if (a->tail != NULL)
		a->tail->next = it;
	else
		a->head = it;
	a->tail = it;
	pthread_cond_signal(&a->work);
	return 0;
}

int
audit_append_async(struct audit *a, json_t *fields, audit_op_fn op, void *arg,
    audit_done_fn done, void *donearg)
{
	struct item *it;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    a != NULL && json_is_object(fields) && done != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((it = calloc(1, sizeof(*it))) == NULL)
		return CUSTODY_E_NOMEM;
	it->fields = json_incref(fields);
	it->op = op;
	it->arg = arg;
	it->cb = done;
	it->cbarg = donearg;
	pthread_mutex_lock(&a->lock);
	r = enqueue(a, it);
	pthread_mutex_unlock(&a->lock);
	if (r != 0) {
		json_decref(it->fields);
		free(it);
	}
	return r;
}

int
audit_append(struct audit *a, json_t *fields, audit_op_fn op, void *arg,
    uint64_t *seqp, uint8_t **leafp, size_t *leaflenp)
{
	struct item it;

	CUSTODY_RETURN_VAL_IF_FAIL(a != NULL && json_is_object(fields) &&
				       seqp != NULL &&
				       (leafp == NULL) == (leaflenp == NULL),
	    CUSTODY_E_INVALID_ARG);
	memset(&it, 0, sizeof(it));
	it.fields = fields;
	it.op = op;
	it.arg = arg;
	it.want_leaf = leafp != NULL;
	pthread_mutex_lock(&a->lock);
	if (enqueue(a, &it) != 0) {
		pthread_mutex_unlock(&a->lock);
		return CUSTODY_E_LOG_FAILED;
	}
	while (!it.done)
		pthread_cond_wait(&a->done, &a->lock);
	pthread_mutex_unlock(&a->lock);
	if (it.r != 0)
		return it.r;
	*seqp = it.seq;
	if (leafp != NULL) {
		*leafp = (uint8_t *)it.leaf;
		*leaflenp = it.leaflen;
	}
	return 0;
}

int
audit_run(struct audit *a, audit_op_fn op, void *arg)
{
	struct item it;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    a != NULL && op != NULL, CUSTODY_E_INVALID_ARG);
	memset(&it, 0, sizeof(it));
	it.op = op;
	it.arg = arg;
	pthread_mutex_lock(&a->lock);
	if (enqueue(a, &it) != 0) {
		pthread_mutex_unlock(&a->lock);
		return CUSTODY_E_LOG_FAILED;
	}
	while (!it.done)
		pthread_cond_wait(&a->done, &a->lock);
	pthread_mutex_unlock(&a->lock);
	return it.r;
}

uint64_t
audit_size(struct audit *a)
{
	uint64_t n;

	pthread_mutex_lock(&a->lock);
	n = a->size;
	pthread_mutex_unlock(&a->lock);
	return n;
}

int
audit_failed(struct audit *a)
{
	int f;

	pthread_mutex_lock(&a->lock);
	f = a->failed;
	pthread_mutex_unlock(&a->lock);
	return f;
}

uint64_t
audit_commits(struct audit *a)
{
	uint64_t n;

	pthread_mutex_lock(&a->lock);
	n = a->commits;
	pthread_mutex_unlock(&a->lock);
	return n;
}
