/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "checkpoint.h"
#include "dsse.h"
#include "err.h"
#include "lifecycle.h"
#include "log.h"
#include "p11uri.h"
#include "util.h"

#define DENIED_MAX 1024 /* scheduler refusals remembered per policy */

struct lifecycle {
	pthread_mutex_t mu; /* one step at a time */
	struct keyring *kr; /* or NULL (direct mode) */
	int64_t cp_overlap; /* seconds */
	/* the scheduler's refusals already logged under policy denied_policy */
	char denied_policy[65];
	char (*denied)[STORE_KEY_ID_LEN + 8];
	size_t ndenied;
};

int
lifecycle_open(struct keyring *kr, int64_t cp_overlap, struct lifecycle **lcp)
{
	struct lifecycle *lc;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    lcp != NULL && cp_overlap > 0, CUSTODY_E_INVALID_ARG);
	if ((lc = calloc(1, sizeof(*lc))) == NULL ||
	    (lc->denied = calloc(DENIED_MAX, sizeof(*lc->denied))) == NULL) {
		free(lc);
		return CUSTODY_E_NOMEM;
	}
	pthread_mutex_init(&lc->mu, NULL);
	lc->kr = kr;
	lc->cp_overlap = cp_overlap;
	*lcp = lc;
	return 0;
}

void
lifecycle_close(struct lifecycle *lc)
{
	if (lc == NULL)
		return;
	pthread_mutex_destroy(&lc->mu);
	free(lc->denied);
	free(lc);
}

/* ---- small parts -------------------------------------------------------- */

static void
sha256_hex(const uint8_t *p, size_t len, char out[65])
{
	uint8_t h[SHA256_DIGEST_LENGTH];

	SHA256(p, len, h);
	util_hex_encode(h, sizeof(h), out);
}

static void
time_text(int64_t t, char out[32])
{
	util_format_time(t, out, 32);
}

/* Is k held by the token env->t is connected to (its URI names it)? */
static int
on_this_token(const struct keys_env *env, const struct store_key *k)
{
	uint8_t cka[STORE_CKA_ID_LEN];
	char *uri = NULL;
	int same;

	if (store_key_id_parse(k->id, cka) != 0 ||
	    p11uri_format_key(token_label(env->t), cka, TOKEN_ID_LEN, &uri) !=
		0)
		return 0;
	same = strcmp(uri, k->token) == 0;
	free(uri);
	return same;
}

/* Sign msg with the token key of record k, whatever its state (a retired
 * key signs the attestation of its own rotation, G5), into a DSSE
 * signature. */
static int
sign_dsse(const struct keys_env *env, const struct store_key *k,
    const uint8_t *msg, size_t len, struct dsse_sig *out)
{
	struct token_key *tk = NULL;
	uint8_t cka[STORE_CKA_ID_LEN], *sig = NULL;
	size_t siglen = 0;
	enum custody_alg alg;
	int r;

	if ((r = store_key_id_parse(k->id, cka)) != 0 ||
	    (r = alg_from_name(k->alg, &alg)) != 0)
		return r;
	if (!on_this_token(env, k)) {
		log_error_f("key %s is held by %s, not by token '%s'", k->id,
		    k->token, token_label(env->t));
		return CUSTODY_E_WRONG_TOKEN;
	}
	if ((r = token_key_open(env->t, cka, alg, k->spki, k->spki_len, &tk)) ==
		0 &&
	    (r = token_sign(env->t, tk, msg, len, &sig, &siglen)) == 0)
		r = dsse_sig_from_raw(
		    alg, k->spki, k->spki_len, sig, siglen, out);
	free(sig);
	token_key_free(tk);
	return r;
}

/* The active attestation key of the service (agent "custody"). */
static int
attestation_key(const struct keys_env *env, struct store_key **kp)
{
	struct store_key **keys = NULL;
	size_t n = 0, i;
	int r;

	if ((r = store_key_list(env->st, "active", &keys, &n)) != 0)
		return r;
	r = CUSTODY_E_KEY_NOT_FOUND;
	for (i = 0; i < n; i++)
		if (strcmp(keys[i]->purpose, "attestation") == 0 &&
		    strcmp(keys[i]->agent, "custody") == 0 &&
		    keys[i]->task == NULL) {
			*kp = keys[i];
			keys[i] = NULL;
			r = 0;
			break;
		}
	store_key_list_free(keys, n);
	if (r != 0)
		log_error_f("the service has no active attestation key");
	return r;
}

/* Build the attestation leaf of the statement whose decision was seq. */
static json_t *
attestation_leaf(const struct keys_env *env, const struct store_key *about,
    uint64_t seq, const char *type, const char *envelope, size_t envlen)
{
	json_t *o;
	char *b64 = NULL;

	if (util_base64_encode((const uint8_t *)envelope, envlen, &b64) != 0)
		return NULL;
	if ((o = keys_leaf_start(env, "attestation", about)) != NULL &&
	    json_object_set_new(o, "detail",
		json_pack("{s:I, s:s, s:s}", "decision_seq", (json_int_t)seq,
		    "predicate_type", type, "envelope", b64)) != 0) {
		json_decref(o);
		o = NULL;
	}
	free(b64);
	return o;
}

struct attest_op {
	struct store_attestation att;
	const char *job_key;
};

static int
attest_op(struct store *st, void *arg)
{
	struct attest_op *a = arg;
	int r;

	if ((r = store_attestation_put(st, &a->att)) != 0)
		return r;
	r = store_job_delete(st, a->job_key);
	return r == CUSTODY_E_NOT_FOUND ? 0 : r;
}

/* An outcome leaf: the step after decision seq failed with r. */
static void
log_outcome(const struct keys_env *env, uint64_t seq, int r, const char *what)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:I, s:s, s:s}}", "event",
	    "outcome", "principal", env->principal, "detail", "decision_seq",
	    (json_int_t)seq, "result", "error", "error", custody_strerror(r));
	uint64_t s;

	log_error_fr(
	    r, "%s (decision leaf %llu)", what, (unsigned long long)seq);
	if (o != NULL)
		(void)audit_append(env->a, o, NULL, NULL, &s, NULL, NULL);
	json_decref(o);
}

/*
 * Sign statement (the job's exact bytes) with the signers, wrap it in an
 * envelope and log it as the attestation of job j; the same op removes the
 * job. about is the subject key; other, the old key of a rotation.
 */
static int
attest(const struct keys_env *env, const struct store_job *j,
    const struct store_key *about, const struct store_key *other,
    const struct store_key *const *signers, size_t nsigners, uint64_t *seqp)
{
	const char *type = strcmp(j->kind, "rotate") == 0 ? LC_ROTATION_TYPE
							  : LC_DESTRUCTION_TYPE;
	struct dsse_sig sigs[DSSE_MAX_SIGS];
	struct attest_op op;
	uint8_t *pae = NULL;
	size_t paelen = 0, i, n = 0;
	char *env_json = NULL;
	size_t envlen = 0;
	json_t *leaf = NULL;
	int r;

	memset(sigs, 0, sizeof(sigs));
	if ((r = dsse_pae(DSSE_INTOTO, j->statement, j->statement_len, &pae,
		 &paelen)) != 0)
		goto out;
	for (i = 0; i < nsigners && i < DSSE_MAX_SIGS; i++, n++)
		if ((r = sign_dsse(env, signers[i], pae, paelen, &sigs[i])) !=
		    0)
			goto out;
	util_failpoint("attest_after_sign");
	if ((r = dsse_envelope(DSSE_INTOTO, j->statement, j->statement_len,
		 sigs, n, &env_json, &envlen)) != 0)
		goto out;
	if ((leaf = attestation_leaf(env, about, (uint64_t)j->decision_seq,
		 type, env_json, envlen)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	memset(&op, 0, sizeof(op));
	snprintf(op.att.key_id, sizeof(op.att.key_id), "%s", about->id);
	if (other != NULL)
		snprintf(op.att.other_key_id, sizeof(op.att.other_key_id), "%s",
		    other->id);
	snprintf(op.att.kind, sizeof(op.att.kind), "%s",
	    strcmp(j->kind, "rotate") == 0 ? "rotation" : "destruction");
	op.att.decision_seq = j->decision_seq;
	op.att.envelope = (uint8_t *)env_json;
	op.att.len = envlen;
	op.att.created_at = util_now();
	op.job_key = j->key_id;
	r = audit_append(env->a, leaf, attest_op, &op, seqp, NULL, NULL);
out:
	if (r != 0)
		log_outcome(env, (uint64_t)j->decision_seq, r,
		    "the attestation was not made");
	for (i = 0; i < DSSE_MAX_SIGS; i++)
		dsse_sig_clear(&sigs[i]);
	json_decref(leaf);
	free(env_json);
	free(pae);
	return r;
}

/* Write a job alone (its first step), durably. */
static int
job_op(struct store *st, void *arg)
{
	return store_job_put(st, arg);
}

static int
job_drop_op(struct store *st, void *arg)
{
	int r = store_job_delete(st, arg);

	return r == CUSTODY_E_NOT_FOUND ? 0 : r;
}

/* A new job for key k (its strings borrowed from env and the caller). */
static void
job_init(struct store_job *j, const struct keys_env *env,
    const struct store_key *k, const char *kind, const char *trigger,
    const char *reason, int64_t now)
{
	memset(j, 0, sizeof(*j));
	snprintf(j->key_id, sizeof(j->key_id), "%s", k->id);
	snprintf(j->kind, sizeof(j->kind), "%s", kind);
	snprintf(j->stage, sizeof(j->stage), "start");
	j->trigger = (char *)trigger;
	j->reason = (char *)reason;
	j->principal = (char *)env->principal;
	j->rule = (char *)env->rule;
	j->policy_sha256 = (char *)env->policy_sha256;
	j->decision_seq = -1;
	j->created_at = now;
}

static int
check_step(const char *trigger, const char *reason)
{
	int r;

	if (trigger == NULL || *trigger == '\0')
		return CUSTODY_E_INVALID_ARG;
	if ((r = keys_check_text("reason", reason, 256)) != 0)
		return r;
	return 0;
}

/* The key id, as a record, that the step may act on. */
static int
get_key(const struct keys_env *env, const char *id, struct store_key **kp)
{
	uint8_t cka[STORE_CKA_ID_LEN];
	int r;

	if (id == NULL || store_key_id_parse(id, cka) != 0) {
		log_error_f("'%.64s' is not a key id (k_ and 16 hex digits)",
		    id ? id : "");
		return CUSTODY_E_KEY_NOT_FOUND;
	}
	if ((r = store_key_get(env->st, id, kp)) != 0)
		return r;
	if (!on_this_token(env, *kp)) {
		log_error_f("key %s is held by %s, not by token '%s'", id,
		    (*kp)->token, token_label(env->t));
		store_key_free(*kp);
		*kp = NULL;
		return CUSTODY_E_WRONG_TOKEN;
	}
	return 0;
}

/*
 * What every step starts with: res cleared, the step's text checked, the
 * lifecycle's lock taken (the caller releases it, whatever this returns)
 * and the key read, *kp new.
 */
static int
step_begin(struct lifecycle *lc, const struct keys_env *env, const char *id,
    const char *trigger, const char *reason, struct lc_result *res,
    struct store_key **kp)
{
	int r;

	pthread_mutex_lock(&lc->mu);
	memset(res, 0, sizeof(*res));
	if ((r = check_step(trigger, reason)) != 0 ||
	    (r = get_key(env, id, kp)) != 0)
		return r;
	snprintf(res->key_id, sizeof(res->key_id), "%s", (*kp)->id);
	return 0;
}

/* Hand the ring the record of id as the registry now has it. */
static void
ring_follow(struct lifecycle *lc, const struct keys_env *env, const char *id)
{
	struct store_key *k = NULL;
	int r;

	if (lc->kr == NULL)
		return;
	if ((r = store_key_get(env->st, id, &k)) != 0 ||
	    (r = keyring_update(lc->kr, k)) != 0)
		log_error_fr(r, "keyring: key %s", id);
}

static int
job_pending(const struct keys_env *env, const char *id)
{
	struct store_job **jobs = NULL;
	size_t n = 0, i;
	int found = 0;

	if (store_job_list(env->st, &jobs, &n) != 0)
		return 1; /* fail closed: assume one is */
	for (i = 0; i < n; i++)
		if (strcmp(jobs[i]->key_id, id) == 0 ||
		    strcmp(jobs[i]->new_key_id, id) == 0)
			found = 1;
	store_job_list_free(jobs, n);
	if (found)
		log_error_f("a lifecycle step of key %s is under way", id);
	return found;
}

/* ---- rotation ----------------------------------------------------------- */

static json_t *
attrs_json(const struct token_attrs *a)
{
	return json_pack("{s:b, s:b, s:b, s:b}", "CKA_SENSITIVE", a->sensitive,
	    "CKA_EXTRACTABLE", a->extractable, "CKA_NEVER_EXTRACTABLE",
	    a->never_extractable, "CKA_LOCAL", a->local);
}

/* The in-toto statement of a rotation, serialised once. */
static int
rotation_statement(const struct keys_env *env, const struct store_key *old,
    const struct store_key *nk, const struct token_attrs *attrs,
    const char *trigger, const char *reason, int64_t now, uint8_t **outp,
    size_t *lenp)
{
	char oldh[65], newh[65], t[32], *spki = NULL, *s = NULL;
	json_t *st = NULL, *pred;
	int r = CUSTODY_E_NOMEM;

	sha256_hex(old->spki, old->spki_len, oldh);
	sha256_hex(nk->spki, nk->spki_len, newh);
	time_text(now, t);
	if (util_base64_encode(nk->spki, nk->spki_len, &spki) != 0)
		goto out;
	pred = json_pack("{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s}, s:s, "
			 "s:s, s:s, s:s, s:s, s:s, s:o}",
	    "previousKey", "id", old->id, "algorithm", old->alg, "spkiSha256",
	    oldh, "newKey", "id", nk->id, "algorithm", nk->alg, "spkiSha256",
	    newh, "spki", spki, "agent", nk->agent, "owner", nk->owner,
	    "purpose", nk->purpose, "reason", reason, "trigger", trigger,
	    "effectiveTime", t, "tokenAttributes", attrs_json(attrs));
	if (pred == NULL)
		goto out;
	if ((nk->task != NULL && json_object_set_new(pred, "task",
				     json_string(nk->task)) != 0) ||
	    (env->policy_sha256 != NULL &&
		json_object_set_new(pred, "policySha256",
		    json_string(env->policy_sha256)) != 0)) {
		json_decref(pred);
		goto out;
	}
	st = json_pack("{s:s, s:[{s:s, s:{s:s}}], s:s, s:o}", "_type",
	    "https://in-toto.io/Statement/v1", "subject", "name", nk->id,
	    "digest", "sha256", newh, "predicateType", LC_ROTATION_TYPE,
	    "predicate", pred);
	if (st == NULL || (s = json_dumps(st, JSON_COMPACT)) == NULL)
		goto out;
	*lenp = strlen(s);
	*outp = (uint8_t *)s;
	r = 0;
out:
	json_decref(st);
	free(spki);
	return r;
}

/* The successor of old, generated as g (borrowed). */
static int
successor_record(const struct keys_env *env, const struct store_key *old,
    const struct token_generated *g, const char *new_owner, int64_t now,
    struct store_key **kp)
{
	struct store_key *k;
	int r;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return CUSTODY_E_NOMEM;
	memcpy(k->id, "k_", 2);
	util_hex_encode(g->id, TOKEN_ID_LEN, k->id + 2);
	k->created_at = now;
	k->max_age = old->max_age;
	k->ttl = old->ttl;
	k->spki_len = g->spki_len;
	if ((k->agent = strdup(old->agent)) == NULL ||
	    (k->owner = strdup(new_owner ? new_owner : old->owner)) == NULL ||
	    (k->purpose = strdup(old->purpose)) == NULL ||
	    (k->alg = strdup(old->alg)) == NULL ||
	    (k->state = strdup("active")) == NULL ||
	    (old->task != NULL && (k->task = strdup(old->task)) == NULL) ||
	    (k->kid = strdup(g->kid)) == NULL ||
	    (k->predecessor = strdup(old->id)) == NULL ||
	    (k->spki = malloc(g->spki_len)) == NULL) {
		store_key_free(k);
		return CUSTODY_E_NOMEM;
	}
	memcpy(k->spki, g->spki, g->spki_len);
	if ((r = p11uri_format_key(
		 token_label(env->t), g->id, TOKEN_ID_LEN, &k->token)) != 0) {
		store_key_free(k);
		return r;
	}
	*kp = k;
	return 0;
}

struct rotate_arg {
	const struct store_key *old;
	const struct store_key *nk;
	struct store_job *job;
	int64_t now;
	int64_t overlap; /* a checkpoint key: it co-signs until now + this */
};

static int
rotate_op(struct store *st, void *arg)
{
	struct rotate_arg *ra = arg;
	uint64_t seq;
	int r;

	if ((r = store_leaf_count(st, &seq)) != 0 ||
	    (r = store_key_set_state(
		 st, ra->old->id, "active", "retired", ra->now, NULL)) != 0 ||
	    (r = store_key_insert(st, ra->nk)) != 0 ||
	    (r = store_key_set_successor(st, ra->old->id, ra->nk->id)) != 0 ||
	    (ra->overlap > 0 && (r = store_key_set_last_exp(st, ra->old->id,
				     ra->now + ra->overlap)) != 0))
		return r;
	ra->job->decision_seq = (int64_t)seq;
	snprintf(ra->job->stage, sizeof(ra->job->stage), "attest");
	snprintf(
	    ra->job->new_key_id, sizeof(ra->job->new_key_id), "%s", ra->nk->id);
	return store_job_put(st, ra->job);
}

static json_t *
rotate_leaf(const struct keys_env *env, const struct store_key *old,
    const struct store_key *nk, const struct token_generated *g,
    const char *trigger, const char *reason, const uint8_t *pae, size_t paelen)
{
	json_t *o = keys_leaf_start(env, "key.rotate", old), *nkd;
	char tbs[65];

	sha256_hex(pae, paelen, tbs);
	if (o == NULL || (nkd = keys_create_detail(nk, &g->attrs)) == NULL ||
	    json_object_set_new(nkd, "id", json_string(nk->id)) != 0 ||
	    json_object_set_new(nkd, "kid", json_string(nk->kid)) != 0 ||
	    json_object_set_new(o, "tbs_sha256", json_string(tbs)) != 0 ||
	    json_object_set_new(o, "detail",
		json_pack("{s:s, s:s, s:s, s:s, s:o}", "trigger", trigger,
		    "reason", reason, "old", old->id, "new", nk->id, "new_key",
		    nkd)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Sign and log the attestation of rotation job j. */
static int
attest_rotation(
    const struct keys_env *env, const struct store_job *j, uint64_t *seqp)
{
	struct store_key *old = NULL, *nk = NULL;
	const struct store_key *signers[2];
	int r;

	if ((r = store_key_get(env->st, j->key_id, &old)) != 0 ||
	    (r = store_key_get(env->st, j->new_key_id, &nk)) != 0)
		goto out;
	signers[0] = old; /* continuity */
	signers[1] = nk;  /* possession */
	r = attest(env, j, nk, old, signers, 2, seqp);
out:
	store_key_free(old);
	store_key_free(nk);
	return r;
}

int
lifecycle_rotate(struct lifecycle *lc, const struct keys_env *env,
    const char *id, const char *trigger, const char *reason,
    const char *new_owner, int64_t now, struct lc_result *res)
{
	struct store_key *old = NULL, *nk = NULL;
	struct token_generated *g = NULL;
	struct token_destroy_evidence ev;
	struct store_job job;
	struct rotate_arg ra;
	enum custody_alg alg;
	uint8_t *stmt = NULL, *pae = NULL;
	size_t stmtlen = 0, paelen = 0;
	json_t *leaf = NULL;
	int r, stopped = 0, registered = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    lc != NULL && env != NULL && res != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = step_begin(lc, env, id, trigger, reason, res, &old)) != 0 ||
	    (new_owner != NULL &&
		(r = keys_check_text("owner", new_owner, 256)) != 0))
		goto out;
	if (strcmp(old->state, "active") != 0) {
		log_error_f("key %s is %s: only an active key rotates", old->id,
		    old->state);
		r = CUSTODY_E_STATE;
		goto out;
	}
	if (job_pending(env, old->id)) {
		r = CUSTODY_E_STATE;
		goto out;
	}
	if ((r = alg_from_name(old->alg, &alg)) != 0)
		goto out;
	/* 1: the job, so that a crash from here on is found at start-up */
	job_init(&job, env, old, "rotate", trigger, reason, now);
	if ((r = audit_run(env->a, job_op, &job)) != 0)
		goto out;
	util_failpoint("rotate_after_job");
	/* 2: the successor, in the token */
	if ((r = token_generate(env->t, alg, "k_", &g)) != 0)
		goto undo;
	util_failpoint("rotate_after_keygen");
	if ((r = successor_record(env, old, g, new_owner, now, &nk)) != 0 ||
	    (r = rotation_statement(env, old, nk, &g->attrs, trigger, reason,
		 now, &stmt, &stmtlen)) != 0 ||
	    (r = dsse_pae(DSSE_INTOTO, stmt, stmtlen, &pae, &paelen)) != 0)
		goto undo;
	if ((leaf = rotate_leaf(
		 env, old, nk, g, trigger, reason, pae, paelen)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto undo;
	}
	/* 3: the old key stops signing before its active period ends */
	if (lc->kr != NULL && keyring_stop(lc->kr, old->id) == 0)
		stopped = 1;
	job.statement = stmt;
	job.statement_len = stmtlen;
	ra = (struct rotate_arg){old, nk, &job, now,
	    strcmp(old->purpose, "checkpoint") == 0 ? lc->cp_overlap : 0};
	if ((r = audit_append(env->a, leaf, rotate_op, &ra, &res->decision_seq,
		 NULL, NULL)) != 0)
		goto undo;
	registered = 1;
	snprintf(res->new_key_id, sizeof(res->new_key_id), "%s", nk->id);
	util_failpoint("rotate_after_leaf");
	if (lc->kr != NULL) {
		ring_follow(lc, env, old->id);
		if ((r = keyring_add(lc->kr, nk)) != 0)
			log_error_fr(r, "keyring: key %s", res->new_key_id);
		nk = NULL;
	}
	/* 4: the attestation, signed by both keys */
	if (attest_rotation(env, &job, &res->attestation_seq) == 0)
		res->attested = 1;
	r = 0;
	goto out;
undo:
	if (!registered) {
		if (g != NULL && token_destroy(env->t, g->id, &ev) != 0)
			log_error_f("orphan key left on the token: %lu objects",
			    ev.remaining);
		if (stopped)
			(void)keyring_resume(lc->kr, old->id);
		if (audit_run(env->a, job_drop_op, job.key_id) != 0)
			log_error_f("the rotation job of %s stays: start-up "
				    "recovery will drop it",
			    job.key_id);
	}
out:
	pthread_mutex_unlock(&lc->mu);
	json_decref(leaf);
	free(stmt);
	free(pae);
	store_key_free(old);
	store_key_free(nk);
	token_generated_free(g);
	return r;
}

/* ---- retirement ---------------------------------------------------------- */

struct state_arg {
	const char *id, *from, *to, *reason;
	int64_t now;
	struct store_job *job; /* destruction: to attest */
};

static int
state_op(struct store *st, void *arg)
{
	struct state_arg *sa = arg;
	uint64_t seq;
	int r;

	if ((r = store_key_set_state(
		 st, sa->id, sa->from, sa->to, sa->now, sa->reason)) != 0)
		return r;
	if (sa->job == NULL)
		return 0;
	if ((r = store_leaf_count(st, &seq)) != 0)
		return r;
	sa->job->decision_seq = (int64_t)seq;
	snprintf(sa->job->stage, sizeof(sa->job->stage), "attest");
	return store_job_put(st, sa->job);
}

int
lifecycle_retire(struct lifecycle *lc, const struct keys_env *env,
    const char *id, const char *trigger, const char *reason, int64_t now,
    struct lc_result *res)
{
	struct store_key *k = NULL;
	struct state_arg sa;
	json_t *leaf = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    lc != NULL && env != NULL && res != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = step_begin(lc, env, id, trigger, reason, res, &k)) != 0)
		goto out;
	if (strcmp(k->state, "active") != 0) {
		log_error_f("key %s is %s: only an active key retires", k->id,
		    k->state);
		r = CUSTODY_E_STATE;
		goto out;
	}
	if ((leaf = keys_leaf_start(env, "key.retire", k)) == NULL ||
	    json_object_set_new(leaf, "detail",
		json_pack(
		    "{s:s, s:s}", "trigger", trigger, "reason", reason)) != 0) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if (lc->kr != NULL)
		(void)keyring_stop(lc->kr, k->id);
	sa = (struct state_arg){k->id, "active", "retired", NULL, now, NULL};
	if ((r = audit_append(env->a, leaf, state_op, &sa, &res->decision_seq,
		 NULL, NULL)) != 0) {
		if (lc->kr != NULL)
			(void)keyring_resume(lc->kr, k->id);
		goto out;
	}
	ring_follow(lc, env, k->id);
out:
	pthread_mutex_unlock(&lc->mu);
	json_decref(leaf);
	store_key_free(k);
	return r;
}

/* ---- destruction --------------------------------------------------------- */

static int
destruction_statement(const struct keys_env *env, const struct store_key *k,
    const char *trigger, const char *reason,
    const struct token_destroy_evidence *ev, int64_t now, uint8_t **outp,
    size_t *lenp)
{
	char h[65], t[32], *s = NULL;
	json_t *st, *pred;

	sha256_hex(k->spki, k->spki_len, h);
	time_text(now, t);
	pred = json_pack("{s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:s, s:s, "
			 "s:s, s:{s:I, s:{s:s, s:I}}}",
	    "key", "id", k->id, "algorithm", k->alg, "spkiSha256", h, "uri",
	    k->token, "agent", k->agent, "owner", k->owner, "purpose",
	    k->purpose, "reason", reason, "trigger", trigger, "time", t,
	    "evidence", "objectsDestroyed", (json_int_t)ev->destroyed,
	    "searchByCkaId", "ckaId", k->id + 2, "objectsFound",
	    (json_int_t)ev->remaining);
	if (pred == NULL)
		return CUSTODY_E_NOMEM;
	if (env->policy_sha256 != NULL &&
	    json_object_set_new(
		pred, "policySha256", json_string(env->policy_sha256)) != 0) {
		json_decref(pred);
		return CUSTODY_E_NOMEM;
	}
	st = json_pack("{s:s, s:[{s:s, s:{s:s}}], s:s, s:o}", "_type",
	    "https://in-toto.io/Statement/v1", "subject", "name", k->id,
	    "digest", "sha256", h, "predicateType", LC_DESTRUCTION_TYPE,
	    "predicate", pred);
	if (st == NULL || (s = json_dumps(st, JSON_COMPACT)) == NULL) {
		json_decref(st);
		return CUSTODY_E_NOMEM;
	}
	json_decref(st);
	*outp = (uint8_t *)s;
	*lenp = strlen(s);
	return 0;
}

static int
attest_destruction(
    const struct keys_env *env, const struct store_job *j, uint64_t *seqp)
{
	struct store_key *k = NULL, *ak = NULL;
	const struct store_key *signers[1];
	int r;

	if ((r = store_key_get(env->st, j->key_id, &k)) != 0 ||
	    (r = attestation_key(env, &ak)) != 0)
		goto out;
	signers[0] = ak;
	r = attest(env, j, k, NULL, signers, 1, seqp);
out:
	store_key_free(k);
	store_key_free(ak);
	return r;
}

/*
 * The destruction of job j's key from its token step on: destroy the
 * objects, log key.destroy with the evidence and the state change, then
 * attest. The job has its first step durable; j is updated.
 */
static int
destroy_from_token(struct lifecycle *lc, const struct keys_env *env,
    const struct store_key *k, struct store_job *j, int64_t now,
    struct lc_result *res)
{
	struct state_arg sa;
	uint8_t cka[STORE_CKA_ID_LEN], *stmt = NULL, *pae = NULL;
	size_t stmtlen = 0, paelen = 0;
	char tbs[65];
	json_t *leaf = NULL;
	int r;

	if (lc->kr != NULL)
		(void)keyring_stop(lc->kr, k->id);
	if ((r = store_key_id_parse(k->id, cka)) != 0)
		return r;
	r = token_destroy(env->t, cka, &res->ev);
	if (r == CUSTODY_E_KEY_NOT_FOUND && res->ev.remaining == 0) {
		log_warn_f("key %s had no objects left on the token", k->id);
		r = 0;
	}
	if (r != 0) {
		log_error_fr(r,
		    "key %s: the token did not destroy it; it "
		    "signs nothing and the destruction is retried",
		    k->id);
		return r;
	}
	util_failpoint("destroy_after_token");
	if ((r = destruction_statement(env, k, j->trigger, j->reason, &res->ev,
		 now, &stmt, &stmtlen)) != 0 ||
	    (r = dsse_pae(DSSE_INTOTO, stmt, stmtlen, &pae, &paelen)) != 0)
		goto out;
	sha256_hex(pae, paelen, tbs);
	if ((leaf = keys_leaf_start(env, "key.destroy", k)) == NULL ||
	    json_object_set_new(leaf, "tbs_sha256", json_string(tbs)) != 0 ||
	    json_object_set_new(leaf, "detail",
		json_pack("{s:s, s:s, s:{s:I, s:I}}", "trigger", j->trigger,
		    "reason", j->reason, "evidence", "objects_destroyed",
		    (json_int_t)res->ev.destroyed, "objects_found_after",
		    (json_int_t)res->ev.remaining)) != 0) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	j->statement = stmt;
	j->statement_len = stmtlen;
	sa =
	    (struct state_arg){k->id, k->state, "destroyed", j->reason, now, j};
	r = audit_append(
	    env->a, leaf, state_op, &sa, &res->decision_seq, NULL, NULL);
	j->statement = NULL;
	if (r != 0)
		goto out;
	j->statement = stmt;
	stmt = NULL;
	util_failpoint("destroy_after_leaf");
	ring_follow(lc, env, k->id);
	if (attest_destruction(env, j, &res->attestation_seq) == 0)
		res->attested = 1;
out:
	json_decref(leaf);
	free(stmt);
	free(pae);
	return r;
}

/* Is k the service's last active attestation key, or the log's last
 * active checkpoint key? */
static int
last_service_key(const struct keys_env *env, const struct store_key *k)
{
	struct store_key *ak = NULL, **keys = NULL;
	size_t n = 0, i, others = 0;
	int last;

	if (strcmp(k->state, "active") != 0)
		return 0;
	if (strcmp(k->purpose, "checkpoint") == 0) {
		if (store_key_list(env->st, "active", &keys, &n) != 0)
			return 1;
		for (i = 0; i < n; i++)
			others += strcmp(keys[i]->purpose, "checkpoint") == 0 &&
				  strcmp(keys[i]->id, k->id) != 0;
		store_key_list_free(keys, n);
		return others == 0;
	}
	if (strcmp(k->purpose, "attestation") != 0)
		return 0;
	if (attestation_key(env, &ak) != 0)
		return 1;
	last = strcmp(ak->id, k->id) == 0;
	store_key_free(ak);
	return last;
}

int
lifecycle_destroy(struct lifecycle *lc, const struct keys_env *env,
    const char *id, const char *trigger, const char *reason, int64_t now,
    struct lc_result *res)
{
	struct store_key *k = NULL, *ak = NULL;
	struct store_job job;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    lc != NULL && env != NULL && res != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = step_begin(lc, env, id, trigger, reason, res, &k)) != 0)
		goto out;
	if (strcmp(k->state, "destroyed") == 0) {
		log_error_f("key %s was destroyed already", k->id);
		r = CUSTODY_E_STATE;
		goto out;
	}
	if (last_service_key(env, k)) {
		log_error_f("key %s is the service's only %s key, which %s: "
			    "rotate it first",
		    k->id, k->purpose,
		    strcmp(k->purpose, "checkpoint") == 0
			? "signs the log's checkpoints"
			: "attests every destruction");
		r = CUSTODY_E_STATE;
		goto out;
	}
	/* fail before anything is destroyed if it could not be attested */
	if ((r = attestation_key(env, &ak)) != 0)
		goto out;
	if (job_pending(env, k->id)) {
		r = CUSTODY_E_STATE;
		goto out;
	}
	job_init(&job, env, k, "destroy", trigger, reason, now);
	if ((r = audit_run(env->a, job_op, &job)) != 0)
		goto out;
	util_failpoint("destroy_after_job");
	r = destroy_from_token(lc, env, k, &job, now, res);
	free(job.statement);
out:
	pthread_mutex_unlock(&lc->mu);
	store_key_free(k);
	store_key_free(ak);
	return r;
}

/* ---- jobs and recovery -------------------------------------------------- */

/* A keys_env acting as the job's principal, as recorded. */
static void
job_env(
    const struct keys_env *env, const struct store_job *j, struct keys_env *out)
{
	*out = *env;
	out->principal = j->principal;
	out->rule = j->rule;
	out->policy_sha256 = j->policy_sha256;
}

static void
note_done(json_t *done, const char *key, const char *kind, const char *what)
{
	if (done != NULL)
		json_array_append_new(
		    done, json_pack("{s:s, s:s, s:s}", "key", key, "step", kind,
			      "result", what));
}

/*
 * Finish job j. at_start: start-up (a rotation that had not reached its
 * leaf is dropped; its new key, if any, is an orphan for the sweep).
 */
static int
finish_job(struct lifecycle *lc, const struct keys_env *env0,
    struct store_job *j, int at_start, int64_t now, json_t *done)
{
	struct keys_env env;
	struct store_key *k = NULL;
	struct lc_result res;
	uint64_t seq;
	int r;

	job_env(env0, j, &env);
	if (strcmp(j->stage, "attest") == 0) {
		r = strcmp(j->kind, "rotate") == 0
			? attest_rotation(&env, j, &seq)
			: attest_destruction(&env, j, &seq);
		note_done(done, j->key_id,
		    strcmp(j->kind, "rotate") == 0 ? "rotation attested"
						   : "destruction attested",
		    r == 0 ? "done" : custody_strerror(r));
		return r;
	}
	if (strcmp(j->kind, "rotate") == 0) {
		if (!at_start)
			return 0; /* its caller is still at work */
		r = audit_run(env.a, job_drop_op, j->key_id);
		if (lc->kr != NULL)
			(void)keyring_resume(lc->kr, j->key_id);
		note_done(done, j->key_id,
		    "rotation interrupted before its leaf",
		    r == 0 ? "dropped (the old key stays active)"
			   : custody_strerror(r));
		return r;
	}
	/* a destruction: the token step again (it finds what is left) */
	if ((r = store_key_get(env.st, j->key_id, &k)) != 0)
		return r;
	if (strcmp(k->state, "destroyed") == 0)
		r = audit_run(env.a, job_drop_op, j->key_id);
	else
		r = destroy_from_token(lc, &env, k, j, now, &res);
	note_done(done, j->key_id, "destruction",
	    r == 0 ? "done" : custody_strerror(r));
	store_key_free(k);
	return r;
}

static int
resume_locked(struct lifecycle *lc, const struct keys_env *env, int at_start,
    int64_t now, json_t *done)
{
	struct store_job **jobs = NULL;
	size_t n = 0, i;
	int r, pending = 0;

	if ((r = store_job_list(env->st, &jobs, &n)) != 0)
		return r;
	for (i = 0; i < n; i++)
		if (finish_job(lc, env, jobs[i], at_start, now, done) != 0)
			pending++;
	store_job_list_free(jobs, n);
	return pending;
}

int
lifecycle_resume(
    struct lifecycle *lc, const struct keys_env *env, int64_t now, json_t *done)
{
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    lc != NULL && env != NULL, CUSTODY_E_INVALID_ARG);
	pthread_mutex_lock(&lc->mu);
	r = resume_locked(lc, env, 0, now, done);
	pthread_mutex_unlock(&lc->mu);
	return r;
}

/* Destroy the token objects of ids that the registry does not hold live. */
static int
sweep_orphans(const struct keys_env *env, json_t *done)
{
	struct store_key *k = NULL;
	struct token_destroy_evidence ev;
	uint8_t *ids = NULL;
	size_t n = 0, i;
	char id[STORE_KEY_ID_LEN + 1];
	int r;

	if ((r = token_list_keys(env->t, "k_", &ids, &n)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		memcpy(id, "k_", 2);
		util_hex_encode(ids + i * TOKEN_ID_LEN, TOKEN_ID_LEN, id + 2);
		r = store_key_get(env->st, id, &k);
		if (r == 0 && strcmp(k->state, "destroyed") != 0) {
			store_key_free(k);
			k = NULL;
			continue;
		}
		if (r != 0 && r != CUSTODY_E_KEY_NOT_FOUND)
			break;
		r = token_destroy(env->t, ids + i * TOKEN_ID_LEN, &ev);
		log_warn_f("recovery: key objects %s on the token %s: %s", id,
		    k != NULL ? "belong to a destroyed key"
			      : "are not in the registry",
		    r == 0 ? "destroyed" : custody_strerror(r));
		if (done != NULL)
			json_array_append_new(done,
			    json_pack("{s:s, s:s, s:s, s:I, s:I}", "key", id,
				"step",
				k != NULL ? "objects of a destroyed key"
					  : "unregistered key objects",
				"result", r == 0 ? "destroyed" : "error",
				"objects_destroyed", (json_int_t)ev.destroyed,
				"objects_found_after",
				(json_int_t)ev.remaining));
		store_key_free(k);
		k = NULL;
		r = 0;
	}
	free(ids);
	return r;
}

/* Mark destroyed, attested, the live keys of this token with no objects. */
static int
sweep_missing(
    struct lifecycle *lc, const struct keys_env *env, int64_t now, json_t *done)
{
	struct store_key **keys = NULL;
	struct store_job job;
	struct lc_result res;
	uint8_t cka[STORE_CKA_ID_LEN];
	size_t n = 0, i;
	int r, c;

	if ((r = store_key_list(env->st, NULL, &keys, &n)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		if (strcmp(keys[i]->state, "destroyed") == 0 ||
		    !on_this_token(env, keys[i]) ||
		    store_key_id_parse(keys[i]->id, cka) != 0)
			continue;
		if ((c = token_count_objects(env->t, cka)) != 0) {
			if (c < 0) {
				r = c;
				break;
			}
			continue;
		}
		log_warn_f("recovery: key %s has no objects on the token: "
			   "marked destroyed",
		    keys[i]->id);
		job_init(&job, env, keys[i], "destroy", "recovery",
		    "its objects were not on the token at start-up", now);
		if ((r = audit_run(env->a, job_op, &job)) == 0)
			r = destroy_from_token(
			    lc, env, keys[i], &job, now, &res);
		free(job.statement);
		note_done(done, keys[i]->id, "registered key without objects",
		    r == 0 ? "destroyed" : custody_strerror(r));
		if (r != 0)
			break;
	}
	store_key_list_free(keys, n);
	return r;
}

int
lifecycle_recover(struct lifecycle *lc, const struct keys_env *env, int64_t now,
    size_t *foundp)
{
	json_t *done = json_array(), *leaf = NULL;
	struct keys_env se;
	uint64_t seq;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    lc != NULL && env != NULL, CUSTODY_E_INVALID_ARG);
	if (done == NULL)
		return CUSTODY_E_NOMEM;
	se = *env;
	se.principal = LC_PRINCIPAL_SCHEDULER;
	se.rule = "(recovery)";
	pthread_mutex_lock(&lc->mu);
	if ((r = resume_locked(lc, &se, 1, now, done)) > 0)
		r = 0; /* a job still pending is retried by the scheduler */
	if (r == 0)
		r = sweep_orphans(&se, done);
	if (r == 0)
		r = sweep_missing(lc, &se, now, done);
	pthread_mutex_unlock(&lc->mu);
	if (foundp != NULL)
		*foundp = json_array_size(done);
	if (json_array_size(done) > 0) {
		leaf = json_pack("{s:s, s:s, s:{s:s}, s:s, s:{s:O}}", "event",
		    "recovery", "principal", LC_PRINCIPAL_SCHEDULER, "policy",
		    "rule", "(recovery)", "decision", "allow", "detail",
		    "actions", done);
		if (leaf == NULL) {
			if (r == 0)
				r = CUSTODY_E_NOMEM;
		} else {
			int r2 = audit_append(
			    env->a, leaf, NULL, NULL, &seq, NULL, NULL);

			if (r == 0)
				r = r2;
		}
	}
	json_decref(leaf);
	json_decref(done);
	return r;
}

/* ---- the scheduler ------------------------------------------------------ */

static int
already_denied(struct lifecycle *lc, const char *policy_hex, const char *id,
    const char *what)
{
	char tag[STORE_KEY_ID_LEN + 8];
	size_t i;

	if (strcmp(lc->denied_policy, policy_hex) != 0) {
		snprintf(lc->denied_policy, sizeof(lc->denied_policy), "%s",
		    policy_hex);
		lc->ndenied = 0;
	}
	snprintf(tag, sizeof(tag), "%s/%s", id, what);
	for (i = 0; i < lc->ndenied; i++)
		if (strcmp(lc->denied[i], tag) == 0)
			return 1;
	if (lc->ndenied < DENIED_MAX)
		snprintf(lc->denied[lc->ndenied++], sizeof(lc->denied[0]), "%s",
		    tag);
	return 0;
}

/* Decide a scheduler step; fills env's rule and policy. 1 if allowed. */
static int
scheduler_may(struct lifecycle *lc, struct keys_env *env, struct policy *p,
    int action, const struct store_key *k, int64_t now, char rule[],
    char policy_hex[65])
{
	struct policy_request q;
	struct policy_decision d;
	struct policy_key pk;
	json_t *leaf;
	uint64_t seq;

	keys_policy_key(k, &pk);
	memset(&q, 0, sizeof(q));
	q.principal = LC_PRINCIPAL_SCHEDULER;
	q.action = action;
	q.key = &pk;
	q.now_ms = now * 1000;
	policy_eval(p, &q, &d);
	snprintf(rule, POLICY_RULE_ID_MAX + 1, "%s", d.rule);
	policy_hex[0] = '\0';
	if (p != NULL)
		util_hex_encode(policy_sha256(p), 32, policy_hex);
	env->principal = LC_PRINCIPAL_SCHEDULER;
	env->rule = rule;
	env->policy_sha256 = p != NULL ? policy_hex : NULL;
	if (d.allow)
		return 1;
	if (already_denied(lc, policy_hex, k->id, policy_action_name(action)))
		return 0;
	leaf = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:s, s:s}",
	    "event", policy_action_name(action), "principal",
	    LC_PRINCIPAL_SCHEDULER, "key", "id", k->id, "kid", k->kid, "policy",
	    "sha256", policy_hex, "rule", rule, "decision", "deny", "reason",
	    d.reason);
	if (leaf != NULL)
		(void)audit_append(env->a, leaf, NULL, NULL, &seq, NULL, NULL);
	json_decref(leaf);
	log_warn_f("scheduler: %s of key %s refused by the policy: %s",
	    policy_action_name(action), k->id, d.reason);
	return 0;
}

int
lifecycle_tick(struct lifecycle *lc, const struct keys_env *env0,
    struct policy *p, int64_t now, size_t *actedp)
{
	struct store_key **keys = NULL;
	struct keys_env env;
	struct lc_result res;
	char rule[POLICY_RULE_ID_MAX + 1], ph[65], why[96];
	size_t n = 0, i, acted = 0;
	int64_t keep = p != NULL ? policy_retired_keep(p) : 0, until;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    lc != NULL && env0 != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = store_key_list(env0->st, NULL, &keys, &n)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		const struct store_key *k = keys[i];
		int active = strcmp(k->state, "active") == 0;

		if (strcmp(k->state, "destroyed") == 0 ||
		    !on_this_token(env0, k))
			continue;
		env = *env0;
		if (k->ttl > 0 && now >= k->created_at + k->ttl) {
			if (!scheduler_may(lc, &env, p, POLICY_KEY_DESTROY, k,
				now, rule, ph))
				continue;
			snprintf(why, sizeof(why), "ttl %llds reached",
			    (long long)k->ttl);
			if (lifecycle_destroy(
				lc, &env, k->id, "ttl", why, now, &res) == 0)
				acted++;
			continue;
		}
		if (!active) {
			/* retired: kept while what it signed is valid */
			until = k->last_exp > k->retired_at ? k->last_exp
							    : k->retired_at;
			if (lc->kr != NULL) {
				struct keyring_key *rk;

				if (keyring_get(lc->kr, k->id, &rk) == 0) {
					if (keyring_last_exp(rk) > until)
						until = keyring_last_exp(rk);
					keyring_put(rk);
				}
			}
			if (now < until + keep ||
			    !checkpoint_handed_over(env0->st, k))
				continue;
			if (!scheduler_may(lc, &env, p, POLICY_KEY_DESTROY, k,
				now, rule, ph))
				continue;
			if (lifecycle_destroy(lc, &env, k->id, "expiry",
				"retired, and every credential it signed has "
				"expired",
				now, &res) == 0)
				acted++;
			continue;
		}
		if (k->max_age > 0 && now >= k->created_at + k->max_age) {
			if (!scheduler_may(lc, &env, p, POLICY_KEY_ROTATE, k,
				now, rule, ph))
				continue;
			snprintf(why, sizeof(why), "max_age %llds reached",
			    (long long)k->max_age);
			if (lifecycle_rotate(lc, &env, k->id, "age", why, NULL,
				now, &res) == 0)
				acted++;
		}
	}
	store_key_list_free(keys, n);
	(void)lifecycle_resume(lc, env0, now, NULL);
	if (actedp != NULL)
		*actedp = acted;
	return 0;
}

/* ---- events ------------------------------------------------------------- */

static const char *const event_types[] = {
    "agent.retired", "task.completed", "owner.offboarded", "key.compromised"};

static int
purpose_bit(const char *purpose)
{
	static const char *const p[] = {
	    "jwt", "x509-ca", "checkpoint", "attestation"};
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(purpose, p[i]) == 0)
			return 1 << i;
	return 0;
}

/* Does event ev act on k? */
static int
event_targets(const struct lc_event *ev, const struct store_key *k)
{
	if (strcmp(k->state, "destroyed") == 0)
		return 0;
	if (strcmp(ev->type, "key.compromised") == 0)
		return strcmp(k->id, ev->key) == 0;
	if (strcmp(ev->type, "agent.retired") == 0)
		return strcmp(k->agent, ev->agent) == 0;
	if (strcmp(ev->type, "owner.offboarded") == 0)
		return strcmp(k->owner, ev->owner) == 0;
	/* task.completed */
	return k->task != NULL && strcmp(k->task, ev->task) == 0 &&
	       (ev->agent == NULL || strcmp(k->agent, ev->agent) == 0);
}

static const char *
action_name(int a)
{
	return a == POLICY_LC_DESTROY  ? "destroy"
	       : a == POLICY_LC_RETIRE ? "retire"
				       : "rotate";
}

static json_t *
event_subject(const struct lc_event *ev)
{
	json_t *s = json_object();

	if (ev->agent != NULL)
		json_object_set_new(s, "agent", json_string(ev->agent));
	if (ev->owner != NULL)
		json_object_set_new(s, "owner", json_string(ev->owner));
	if (ev->task != NULL)
		json_object_set_new(s, "task", json_string(ev->task));
	if (ev->key != NULL)
		json_object_set_new(s, "key", json_string(ev->key));
	return s;
}

struct event_op {
	const char *id;
	const uint8_t *sha;
	char *result;
	int64_t now;
};

static int
event_put_op(struct store *st, void *arg)
{
	struct event_op *e = arg;

	return store_event_put(st, e->id, e->sha, e->result, e->now);
}

/* Check ev's fields; a message in msg. */
static int
event_check(const struct lc_event *ev, char *msg, size_t msgsz)
{
	size_t i;

	for (i = 0; i < 4; i++)
		if (ev->type != NULL && strcmp(ev->type, event_types[i]) == 0)
			break;
	if (i == 4) {
		snprintf(msg, msgsz,
		    "type must be agent.retired, task.completed, "
		    "owner.offboarded or key.compromised");
		return CUSTODY_E_INVALID_ARG;
	}
	if (ev->id == NULL || util_text_problem(ev->id, 128) != NULL) {
		snprintf(msg, msgsz,
		    "id (the idempotency id) must be 1 to "
		    "128 bytes of text");
		return CUSTODY_E_INVALID_ARG;
	}
#define NEED(field, name)                                                      \
	if ((field) == NULL || util_text_problem((field), 256) != NULL) {      \
		snprintf(msg, msgsz, "%s needs %s", ev->type, name);           \
		return CUSTODY_E_INVALID_ARG;                                  \
	}
	if (i == 0)
		NEED(ev->agent, "agent");
	if (i == 1)
		NEED(ev->task, "task");
	if (i == 2)
		NEED(ev->owner, "owner");
	if (i == 3)
		NEED(ev->key, "key");
#undef NEED
	if (ev->new_owner != NULL &&
	    (i != 2 || util_text_problem(ev->new_owner, 256) != NULL)) {
		snprintf(msg, msgsz,
		    "new_owner is for owner.offboarded, 1 to 256 bytes");
		return CUSTODY_E_INVALID_ARG;
	}
	return 0;
}

/* Run the actions of result (an event's plan) that are not done yet. */
static void
event_run(struct lifecycle *lc, const struct keys_env *env,
    const struct lc_event *ev, json_t *actions, int64_t now)
{
	struct store_key *k = NULL;
	struct lc_result res;
	json_t *a;
	const char *key, *act;
	char reason[300];
	size_t i;
	int r;

	snprintf(reason, sizeof(reason), "%s %s", ev->type, ev->id);
	json_array_foreach(actions, i, a)
	{
		if (json_unpack(a, "{s:s, s:s}", "key", &key, "action", &act) !=
		    0)
			continue;
		if (store_key_get(env->st, key, &k) != 0)
			continue;
		r = 0;
		if (strcmp(act, "destroy") == 0 &&
		    strcmp(k->state, "destroyed") != 0)
			r = lifecycle_destroy(
			    lc, env, key, "event", reason, now, &res);
		else if (strcmp(act, "retire") == 0 &&
			 strcmp(k->state, "active") == 0)
			r = lifecycle_retire(
			    lc, env, key, "event", reason, now, &res);
		else if (strcmp(act, "rotate") == 0 &&
			 strcmp(k->state, "active") == 0 &&
			 k->successor == NULL) {
			r = lifecycle_rotate(lc, env, key, "event", reason,
			    ev->new_owner, now, &res);
			if (r == 0)
				json_object_set_new(
				    a, "new_key", json_string(res.new_key_id));
		}
		json_object_set_new(a, "result",
		    json_string(r == 0 ? "done" : custody_strerror(r)));
		store_key_free(k);
		k = NULL;
	}
}

int
lifecycle_event(struct lifecycle *lc, const struct keys_env *env0,
    struct policy *p, const struct lc_event *ev, int64_t now, json_t **resultp,
    int *statusp, char *msg, size_t msgsz)
{
	struct store_key **keys = NULL;
	struct policy_lifecycle_rule lr;
	struct policy_request q;
	struct policy_decision d;
	struct policy_key pk;
	struct keys_env env = *env0;
	struct event_op eo;
	char ph[65], rule[POLICY_RULE_ID_MAX + 1], *stored = NULL;
	uint8_t sha[32];
	json_t *result = NULL, *actions = NULL, *leaf = NULL;
	json_error_t je;
	size_t n = 0, i;
	uint64_t seq;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(lc != NULL && env0 != NULL && ev != NULL &&
				       resultp != NULL && statusp != NULL,
	    CUSTODY_E_INVALID_ARG);
	*resultp = NULL;
	*statusp = 400;
	msg[0] = '\0';
	if ((r = event_check(ev, msg, msgsz)) != 0)
		return r;
	/* the same id again: what the first request planned, finished */
	if ((r = store_event_get(env0->st, ev->id, sha, &stored)) == 0) {
		if (memcmp(sha, ev->request_sha256, 32) != 0) {
			snprintf(msg, msgsz,
			    "event id %.128s was used by another request",
			    ev->id);
			*statusp = 409;
			free(stored);
			return CUSTODY_E_EXISTS;
		}
		result = json_loads(stored, 0, &je);
		free(stored);
		if (result == NULL || !json_is_array(actions = json_object_get(
							 result, "actions"))) {
			json_decref(result);
			return CUSTODY_E_STORE;
		}
		json_object_set_new(result, "replayed", json_true());
		env.principal =
		    json_string_value(json_object_get(result, "principal"));
		if (env.principal == NULL)
			env.principal = env0->principal;
		env.rule = "(replay)";
		event_run(lc, &env, ev, actions, now);
		*resultp = result;
		*statusp = 200;
		return 0;
	}
	if (r != CUSTODY_E_NOT_FOUND)
		return r;
	if (p == NULL || policy_lifecycle(p, ev->type, &lr) != 0) {
		snprintf(msg, msgsz, "no policy is in force");
		*statusp = 403;
		return CUSTODY_E_DENIED;
	}
	util_hex_encode(policy_sha256(p), 32, ph);
	if ((r = store_key_list(env0->st, NULL, &keys, &n)) != 0)
		return r;
	if ((actions = json_array()) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	snprintf(rule, sizeof(rule), "(default)");
	for (i = 0; i < n; i++) {
		const struct store_key *k = keys[i];

		if (!event_targets(ev, k))
			continue;
		if (!(lr.purposes & (unsigned)purpose_bit(k->purpose)))
			continue;
		keys_policy_key(k, &pk);
		memset(&q, 0, sizeof(q));
		q.principal = env0->principal;
		q.action = POLICY_LIFECYCLE_EVENT;
		q.key = &pk;
		q.now_ms = now * 1000;
		q.event = ev->type;
		policy_eval(p, &q, &d);
		snprintf(rule, sizeof(rule), "%s", d.rule);
		if (!d.allow) {
			snprintf(msg, msgsz, "%s", d.reason);
			*statusp = d.rate_limited ? 429 : 403;
			leaf = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, "
					 "s:s}, s:s, s:s, s:{s:s, s:s, s:o}}",
			    "event", "lifecycle.event", "principal",
			    env0->principal, "key", "id", k->id, "kid", k->kid,
			    "policy", "sha256", ph, "rule", d.rule, "decision",
			    "deny", "reason", d.reason, "detail", "type",
			    ev->type, "id", ev->id, "subject",
			    event_subject(ev));
			if (leaf != NULL && !d.rate_limited)
				(void)audit_append(env0->a, leaf, NULL, NULL,
				    &seq, NULL, NULL);
			r = CUSTODY_E_DENIED;
			goto out;
		}
		if (json_array_append_new(
			actions, json_pack("{s:s, s:s}", "key", k->id, "action",
				     action_name(lr.action))) != 0) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
	}
	/* the plan, logged and recorded under its id before it runs */
	if ((result = json_pack("{s:s, s:s, s:s, s:O}", "id", ev->id, "type",
		 ev->type, "principal", env0->principal, "actions", actions)) ==
		NULL ||
	    (leaf = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s, s:s, "
			      "s:o, s:O}}",
		 "event", "lifecycle.event", "principal", env0->principal,
		 "policy", "sha256", ph, "rule", rule, "decision", "allow",
		 "detail", "type", ev->type, "id", ev->id, "subject",
		 event_subject(ev), "actions", actions)) == NULL ||
	    (eo.result = json_dumps(result, JSON_COMPACT)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	eo.id = ev->id;
	eo.sha = ev->request_sha256;
	eo.now = now;
	r = audit_append(env0->a, leaf, event_put_op, &eo, &seq, NULL, NULL);
	free(eo.result);
	if (r == CUSTODY_E_EXISTS) {
		snprintf(msg, msgsz, "event id %.128s is being used", ev->id);
		*statusp = 409;
		goto out;
	}
	if (r != 0)
		goto out;
	json_object_set_new(result, "log_index", json_integer((json_int_t)seq));
	env.policy_sha256 = ph;
	env.rule = rule;
	json_decref(actions);
	actions = json_object_get(result, "actions");
	json_incref(actions);
	event_run(lc, &env, ev, actions, now);
	*resultp = result;
	result = NULL;
	*statusp = 200;
out:
	json_decref(result);
	json_decref(actions);
	json_decref(leaf);
	store_key_list_free(keys, n);
	return r;
}
