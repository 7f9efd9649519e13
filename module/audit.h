/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_AUDIT_H
#define CUSTODY_AUDIT_H

#include <stdint.h>

#include <jansson.h>

#include "store.h"

/*
 * The audit log: JSON leaves (FORMATS.md section 2) appended to an RFC 6962
 * Merkle tree kept in the store (merkle.h), durably.
 *
 * Appends use group commit: any number of threads call audit_append(); one
 * writer thread takes everything queued, writes it in one transaction (one
 * fsync, synchronous=FULL) and wakes each caller only once that transaction
 * is durable. Each append gets a savepoint of its own, so one that fails
 * (its operation refused, its leaf too large) is undone alone and the others
 * in the batch still commit.
 *
 * Fail closed (G2): if a commit fails (a write or fsync error), nothing of
 * that batch is reported durable, the log stops accepting appends for good
 * (CUSTODY_E_LOG_FAILED) and nothing is retried: after an fsync error the
 * kernel may have dropped the data it could not write, so a retry that
 * "succeeds" proves nothing. Only a restart, which rereads the database,
 * resumes the log.
 */
struct audit;

/*
 * Open the log in the store at path (a connection of its own, used only by
 * the writer thread) and start the writer. *ap is new; audit_close() it.
 */
int audit_open(const char *path, struct audit **ap);

/*
 * Finish every append already queued, stop the writer, close. NULL-safe.
 * No audit_append() may be running or start.
 */
void audit_close(struct audit *a);

/*
 * Work that must commit together with a leaf (a key's state change and its
 * audit leaf, for instance). It runs on the writer thread, inside the
 * append's savepoint and before the leaf is written, with the writer's
 * store; it returns 0 or an error, which undoes its changes, skips the leaf
 * and is returned by audit_append().
 */
typedef int (*audit_op_fn)(struct store *st, void *arg);

/*
 * Append a leaf: the JSON object fields (borrowed, not changed) follows "v",
 * "seq" and "time", which the log sets; it must not hold those three. The
 * leaf's bytes are produced once (compact JSON, members in order) and never
 * re-serialised. If op is not NULL it runs first in the same transaction.
 * Blocks until the leaf is durable, then returns 0 and its index in *seqp
 * (and, if leafp is not NULL, a copy of its exact bytes in *leafp and
 * *leaflenp, to free(3)). Errors: op's error, CUSTODY_E_TOO_LARGE (leaf
 * over 64 KiB), CUSTODY_E_INVALID_ARG, CUSTODY_E_LOG_FAILED.
 */
int audit_append(struct audit *a, json_t *fields, audit_op_fn op, void *arg,
    uint64_t *seqp, uint8_t **leafp, size_t *leaflenp);

/*
 * Called once an asynchronous append is finished: r is 0 and seq the leaf's
 * index once it is durable, or the error (as audit_append() returns it). It
 * runs on the log's writer thread, after the transaction: it must be quick
 * (hand the work to another thread) and must not wait for the log.
 */
typedef void (*audit_done_fn)(void *arg, int r, uint64_t seq);

/*
 * Append as audit_append() does, without waiting: fields gets a reference
 * of the log's (the caller may drop its own) and op's arg must live until
 * done is called. Returns 0 when queued: done(donearg, ...) is then called
 * exactly once, also when the log fails or is closed. Returns
 * CUSTODY_E_LOG_FAILED (the log has failed or is closing), CUSTODY_E_NOMEM or
 * CUSTODY_E_INVALID_ARG without queueing: done is not called.
 */
int audit_append_async(struct audit *a, json_t *fields, audit_op_fn op,
    void *arg, audit_done_fn done, void *donearg);

/*
 * Run op on the writer thread in a transaction of its own batch, without a
 * leaf, and wait until it is durable: for state that is not a registry
 * change (a lifecycle job's first step) but must be written by the one
 * connection that writes. Inside an op, store_leaf_count() is the seq the
 * item's own leaf will get. Errors: op's, CUSTODY_E_LOG_FAILED.
 */
int audit_run(struct audit *a, audit_op_fn op, void *arg);

/* Number of durable leaves (the tree size). */
uint64_t audit_size(struct audit *a);

/* Has the log failed (and so refuses every append)? */
int audit_failed(struct audit *a);

/* Statistics for tests and metrics: transactions committed so far. */
uint64_t audit_commits(struct audit *a);

#endif
