/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_SERVICE_H
#define CUSTODY_SERVICE_H

#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "store.h"
#include "token.h"

/*
 * The service: what custodyd, and the CLI in direct mode, hold while they
 * work on a data directory. service_open() takes the directory's lock, opens
 * the store, then the token, then refuses a rolled-back or forked database
 * (checkpoint_check(), G3) before anything can be written, and only then
 * starts the audit log's writer.
 *
 * custodyd's run is recorded in the log (FORMATS.md section 2):
 * service_start() appends a service.start leaf and sets the store's run
 * marker in the same transaction; service_stop() appends service.stop,
 * removes the marker in the same transaction, and signs a final checkpoint
 * that covers it. A marker found by service_start() means that the last run
 * ended without service_stop() (killed, crashed, power lost): its leaf then
 * says "unclean_shutdown": true and the previous run's pid and start time.
 * Between the two, a checkpointer thread signs a checkpoint every
 * checkpoint-interval when the log has grown.
 */
struct service;

#define SERVICE_TOKEN 0x1 /* open the token and the audit log's writer */

/*
 * Open cfg's data directory (cfg is borrowed and must outlive the service).
 * *stagep (if stagep is not NULL) names what was being opened when it
 * failed: "data directory", "store", "token" or "audit log" (the
 * rolled-back check and the log's writer). Errors: CUSTODY_E_NOT_INITIALIZED
 * (no store: run custody init), CUSTODY_E_LOCKED (another process holds the
 * directory), CUSTODY_E_STATE or CUSTODY_E_PROOF (the database is older than,
 * or inconsistent with, a checkpoint signed before: refused), CUSTODY_E_CONFIG
 * (pkcs11-module not set), and the store's, token's and PIN file's errors. *svp
 * is new.
 */
int service_open(const struct config *cfg, unsigned flags, struct service **svp,
    const char **stagep);

/*
 * As service_open() with SERVICE_TOKEN, on a token the caller opened (the
 * tests' mock). t is the service's from the call on, even when it fails.
 */
int service_open_token(
    const struct config *cfg, struct token *t, struct service **svp);

/* Open cfg's token with the PIN of its pin-file, after its pkcs11-env. */
int service_token_open(const struct config *cfg, struct token **tp);

/* What the service holds; the token and the log are NULL without
 * SERVICE_TOKEN. Owned by the service. */
struct store *service_store(struct service *sv);
struct token *service_token(struct service *sv);
struct audit *service_audit(struct service *sv);

/* DATA/custody.db: for threads that need a connection of their own. */
const char *service_store_path(const struct service *sv);

/* DATA/checkpoint: the outside copy of the last checkpoint. */
const char *service_checkpoint_path(const struct service *sv);

/*
 * The policy in force, with a reference of its own (policy_free() it), or
 * NULL when none is (every request is then refused, policy_eval(NULL)).
 */
struct policy *service_policy(struct service *sv);

/*
 * Load the configured policy file again (SIGHUP). A policy that does not
 * load changes nothing: the one in force stays, and the reason is in err
 * (the file's line and column, or a JSON Pointer). A good one is appended as
 * a policy.load leaf (SHA-256 of the file, rule count, file name) and then
 * put in force, atomically for every caller of service_policy(). Errors:
 * the policy's (CUSTODY_E_PARSE, CUSTODY_E_CONFIG, ...), the log's.
 */
int service_policy_reload(struct service *sv, char *err, size_t errsz);

struct service_run_info {
	uint64_t start_seq;	   /* the service.start leaf */
	int unclean;		   /* the last run did not stop cleanly */
	struct store_run previous; /* that run, when unclean */
};

/*
 * Start the run: needs SERVICE_TOKEN, log-origin, an active checkpoint key
 * and, if one is configured, a policy that loads (CUSTODY_E_CONFIG,
 * CUSTODY_E_KEY_NOT_FOUND: nothing is written). Then appends a policy.load
 * leaf after the start leaf (if that fails, the run is stopped again). Appends
 * service.start (version, SHA-256 of the configuration file, pid, and
 * unclean_shutdown when a marker was found, which is also logged) and starts
 * the checkpointer. *infop, if not NULL, says what was found.
 */
int service_start(struct service *sv, const char *version, int64_t now,
    struct service_run_info *infop);

/*
 * Stop the run: stop the checkpointer, append service.stop, remove the
 * marker, sign the final checkpoint (which covers the stop leaf); *sizep,
 * if not NULL, is its tree size. Every step is tried; the first error is
 * returned. Nothing may be appending any more.
 */
int service_stop(struct service *sv, int64_t now, uint64_t *sizep);

struct service_checkpoints {
	uint64_t size;	   /* of the last checkpoint (this run's or older) */
	uint64_t made;	   /* checkpoints this run signed */
	uint64_t failures; /* attempts that failed in a row */
	int last_error;	   /* error of the last attempt, or 0 */
};

/* The checkpointer's state, for health checks and metrics. */
void service_checkpoints(struct service *sv, struct service_checkpoints *out);

/*
 * Stop the checkpointer if it runs, then close the log, the token, the store
 * and release the lock, in that order. Without service_stop() this is what
 * a crash leaves: the next start reports it. NULL-safe.
 */
void service_close(struct service *sv);

#endif
