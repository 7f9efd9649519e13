/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_LIFECYCLE_H
#define CUSTODY_LIFECYCLE_H

#include <stdint.h>

#include <jansson.h>

#include "keyring.h"
#include "keys.h"
#include "policy.h"
#include "token.h"

/*
 * The lifecycle (docs/LIFECYCLE.md): rotation, retirement and destruction
 * of keys, each with its leaves and, for a rotation or a destruction, a
 * DSSE attestation; lifecycle events; the scheduler's pass; and start-up
 * recovery. Every step that must survive a crash is a job in the store
 * (lifecycle_jobs), written before the step and removed with its last leaf,
 * so that lifecycle_recover() finishes what a crash interrupted and nothing
 * runs twice.
 *
 * Who acts, the token, the store (reads) and the log come in a keys_env;
 * env->st must be usable by the calling thread. The ring, if not NULL, is
 * custodyd's keyring: a key stops signing before its active period ends
 * and the ring follows every change. One lifecycle step runs at a time.
 */
struct lifecycle;

/*
 * kr: the daemon's keyring, or NULL (direct mode). cp_overlap: how long a
 * rotated checkpoint key goes on co-signing (config checkpoint-overlap,
 * seconds > 0).
 */
int lifecycle_open(
    struct keyring *kr, int64_t cp_overlap, struct lifecycle **lcp);
void lifecycle_close(struct lifecycle *lc);

#define LC_PRINCIPAL_SCHEDULER "custody:scheduler"
#define LC_TOLERANCE	       60 /* seconds, stated to auditors */

#define LC_ROTATION_TYPE    "https://custody.dev/key-rotation/v1"
#define LC_DESTRUCTION_TYPE "https://custody.dev/key-destruction/v1"

struct lc_result {
	char key_id[STORE_KEY_ID_LEN + 1];
	char new_key_id[STORE_KEY_ID_LEN + 1]; /* rotation */
	uint64_t decision_seq;		       /* key.rotate/retire/destroy */
	uint64_t attestation_seq;	       /* 0 when not attested */
	int attested;			  /* 0: the attestation is pending */
	struct token_destroy_evidence ev; /* destruction */
};

/*
 * Rotate key id (active; jwt, x509-ca or attestation): generate its
 * successor in the token (same agent, owner, task, alg, max_age, ttl; owner
 * new_owner if not NULL), then in one transaction with the key.rotate leaf
 * retire the old key and register the new one, then sign the rotation
 * attestation with both keys and log it. trigger is age, event or manual;
 * reason 1..256 bytes. CUSTODY_E_KEY_NOT_FOUND, CUSTODY_E_STATE (not
 * active, or a step already under way), CUSTODY_E_INVALID_ARG, the token's
 * and the log's errors. If only the attestation failed, the rotation stands,
 * res->attested is 0 and its job stays for lifecycle_resume().
 */
int lifecycle_rotate(struct lifecycle *lc, const struct keys_env *env,
    const char *id, const char *trigger, const char *reason,
    const char *new_owner, int64_t now, struct lc_result *res);

/*
 * Destroy key id (active or retired): stop it, destroy its objects (a
 * search by CKA_ID must find none), log key.destroy with the evidence and
 * the state change, then the destruction attestation signed by the
 * service's attestation key. The last active attestation key is not
 * destroyed (rotate it first): CUSTODY_E_STATE. A token that fails leaves
 * the key stopped and the job in place, retried by lifecycle_resume().
 */
int lifecycle_destroy(struct lifecycle *lc, const struct keys_env *env,
    const char *id, const char *trigger, const char *reason, int64_t now,
    struct lc_result *res);

/* Retire key id (active) without a successor: key.retire leaf. */
int lifecycle_retire(struct lifecycle *lc, const struct keys_env *env,
    const char *id, const char *trigger, const char *reason, int64_t now,
    struct lc_result *res);

/*
 * Finish the jobs in the store (attestations not made, destructions the
 * token did not complete): what custodyd's scheduler retries on each pass.
 * Each one finished is appended to done (if not NULL) as {key, kind,
 * result}. Returns the number still pending, or an error.
 */
int lifecycle_resume(struct lifecycle *lc, const struct keys_env *env,
    int64_t now, json_t *done);

/*
 * Start-up reconciliation, before anything is served: finish or undo the
 * jobs a crash interrupted, destroy key objects on the token that the
 * registry does not know (or knows as destroyed), mark destroyed (attested,
 * trigger recovery) the registry's keys whose objects are gone, and log
 * what was found and done in one recovery leaf. *foundp (if not NULL) is
 * the number of actions (0: nothing to reconcile, no leaf).
 */
int lifecycle_recover(struct lifecycle *lc, const struct keys_env *env,
    int64_t now, size_t *foundp);

/*
 * One pass of the scheduler at now under policy p (NULL: every step is
 * refused): rotate active keys past max_age, destroy keys past their ttl and
 * retired keys whose credentials have all expired (plus the policy's
 * retired_keep), then lifecycle_resume(). Each step is decided by p for
 * principal custody:scheduler; a refusal is logged once per key and policy.
 * *actedp (if not NULL) counts the steps taken.
 */
int lifecycle_tick(struct lifecycle *lc, const struct keys_env *env,
    struct policy *p, int64_t now, size_t *actedp);

/* A lifecycle event (POST /v1/events). */
struct lc_event {
	const char *id;	  /* idempotency id, 1..128 bytes */
	const char *type; /* agent.retired, task.completed, owner.offboarded,
			   * key.compromised */
	const char *agent, *owner, *task, *key; /* the subject */
	const char *new_owner; /* owner.offboarded with rotate: optional */
	uint8_t request_sha256[32];
};

/*
 * Carry out event ev for env->principal under policy p: every key it acts
 * on must be allowed (action lifecycle.event), else nothing is done and the
 * refusal is logged (*statusp 403). Then a lifecycle.event leaf lists the
 * actions, and each runs with trigger event. The same id again with the same
 * request finishes what is left and answers as the first time (*replayed
 * 1); with another request it is refused (*statusp 409). *resultp is the
 * answer's JSON (new); msg says why on a refusal.
 */
int lifecycle_event(struct lifecycle *lc, const struct keys_env *env,
    struct policy *p, const struct lc_event *ev, int64_t now, json_t **resultp,
    int *statusp, char *msg, size_t msgsz);

#endif
