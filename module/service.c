/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service: a data directory opened in the order G3 needs, and the run of
 * custodyd recorded in the log (service.start, service.stop, checkpoints).
 */
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "checkpoint.h"
#include "datadir.h"
#include "err.h"
#include "log.h"
#include "policy.h"
#include "secret.h"
#include "service.h"
#include "util.h"

/* Log a checkpointer failure once, then every this many in a row. */
#define FAILURE_LOG_EVERY 60

struct service {
	const struct config *cfg;
	int lockfd;
	char *store_path;
	char *checkpoint_path;
	struct store *st;
	struct token *tok;
	struct audit *a;

	/* the policy in force (NULL: none, every request refused) */
	pthread_mutex_t pmu;
	struct policy *policy;

	/* the run */
	int started;
	struct store_run run;
	char *version;

	/* the checkpointer, with a connection of its own (the main one
	 * belongs to the main thread) */
	struct store *cst;
	pthread_t thread;
	int thread_running;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	int stopping;
	struct service_checkpoints cp;
};

int
service_token_open(const struct config *cfg, struct token **tp)
{
	struct token_opts o;
	struct secret *pin = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    cfg != NULL && tp != NULL, CUSTODY_E_INVALID_ARG);
	if (cfg->pkcs11_module == NULL) {
		log_error_f("%s: pkcs11-module is not set", cfg->path);
		return CUSTODY_E_CONFIG;
	}
	if ((r = config_apply_env(cfg)) != 0)
		return r;
	if ((r = secret_read_file(cfg->pin_file, &pin)) != 0)
		return r;
	o.module = cfg->pkcs11_module;
	o.uri = cfg->token;
	o.pin = pin;
	r = token_open(&o, tp);
	secret_free(pin);
	return r;
}

/* Lock, store, (token), G3 check, (log). */
static int
open_with(const struct config *cfg, unsigned flags, struct token *t,
    struct service **svp, const char **stagep)
{
	const char *stage_unused;
	struct service *sv;
	struct stat sb;
	int r;

	if (stagep == NULL)
		stagep = &stage_unused;
	*stagep = "data directory";
	if (cfg == NULL || svp == NULL) {
		log_error_f("precondition failed: cfg != NULL && svp != NULL");
		token_close(t);
		return CUSTODY_E_INVALID_ARG;
	}
	if ((sv = calloc(1, sizeof(*sv))) == NULL) {
		token_close(t);
		return CUSTODY_E_NOMEM;
	}
	sv->cfg = cfg;
	sv->lockfd = -1;
	sv->tok = t;
	pthread_mutex_init(&sv->mu, NULL);
	pthread_mutex_init(&sv->pmu, NULL);
	if ((sv->store_path =
		    datadir_path(cfg->data_dir, DATADIR_STORE_FILE)) == NULL ||
	    (sv->checkpoint_path = datadir_path(cfg->data_dir, "checkpoint")) ==
		NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if (stat(sv->store_path, &sb) != 0) {
		if (errno != ENOENT) {
			log_error_f("%s: %s", sv->store_path, strerror(errno));
			r = CUSTODY_E_IO;
		} else
			r = CUSTODY_E_NOT_INITIALIZED;
		goto out;
	}
	if ((r = datadir_lock(cfg->data_dir, &sv->lockfd)) != 0 ||
	    (r = store_open(sv->store_path, &sv->st)) != 0)
		goto out;
	if ((flags & SERVICE_TOKEN) && sv->tok == NULL &&
	    (r = service_token_open(cfg, &sv->tok)) != 0)
		goto out;
	/* a database restored from an older copy is refused before use */
	if ((r = checkpoint_check(
		 sv->st, sv->tok, cfg->log_origin, sv->checkpoint_path)) != 0)
		goto out;
	if ((flags & SERVICE_TOKEN) &&
	    (r = audit_open(sv->store_path, &sv->a)) != 0)
		goto out;
	*svp = sv;
	sv = NULL;
out:
	service_close(sv);
	return r;
}

int
service_open(const struct config *cfg, unsigned flags, struct service **svp,
    const char **stagep)
{
	return open_with(cfg, flags, NULL, svp, stagep);
}

int
service_open_token(
    const struct config *cfg, struct token *t, struct service **svp)
{
	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL, CUSTODY_E_INVALID_ARG);
	return open_with(cfg, SERVICE_TOKEN, t, svp, NULL);
}

struct store *
service_store(struct service *sv)
{
	return sv->st;
}

struct token *
service_token(struct service *sv)
{
	return sv->tok;
}

struct audit *
service_audit(struct service *sv)
{
	return sv->a;
}

const char *
service_store_path(const struct service *sv)
{
	return sv->store_path;
}

const char *
service_checkpoint_path(const struct service *sv)
{
	return sv->checkpoint_path;
}

/* ---- the checkpointer --------------------------------------------------- */

/* Sign a checkpoint on st if the log grew past the last one; mu not held. */
static void
checkpoint_once(struct service *sv, struct store *st)
{
	char *note = NULL;
	size_t len;
	uint64_t size = audit_size(sv->a), last;
	uint8_t root[32];
	int r, made = 0;

	pthread_mutex_lock(&sv->mu);
	last = sv->cp.size;
	pthread_mutex_unlock(&sv->mu);
	if (size == 0 || size <= last)
		return;
	r = checkpoint_make(sv->tok, st, sv->cfg->log_origin,
	    sv->checkpoint_path, util_now(), &note, &len, &made);
	free(note);
	note = NULL;
	if (r == 0)
		r = store_checkpoint_last(st, &size, root, &note, &len);
	free(note);
	pthread_mutex_lock(&sv->mu);
	if (r == 0) {
		if (sv->cp.failures > 0)
			log_warn_f("checkpoints signed again after %llu "
				   "failed attempts",
			    (unsigned long long)sv->cp.failures);
		sv->cp.size = size;
		sv->cp.made += made != 0;
		sv->cp.failures = 0;
		sv->cp.last_error = 0;
	} else {
		if (sv->cp.failures % FAILURE_LOG_EVERY == 0)
			log_error_fr(r,
			    "cannot sign a checkpoint of the log "
			    "(%llu failed attempts in a row)",
			    (unsigned long long)sv->cp.failures + 1);
		sv->cp.failures++;
		sv->cp.last_error = r;
	}
	pthread_mutex_unlock(&sv->mu);
}

static void *
checkpointer(void *arg)
{
	struct service *sv = arg;
	struct timespec until;

	pthread_mutex_lock(&sv->mu);
	while (!sv->stopping) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += sv->cfg->checkpoint_interval;
		while (!sv->stopping && pthread_cond_timedwait(&sv->wake,
					    &sv->mu, &until) != ETIMEDOUT)
			;
		if (sv->stopping)
			break;
		pthread_mutex_unlock(&sv->mu);
		checkpoint_once(sv, sv->cst);
		pthread_mutex_lock(&sv->mu);
	}
	pthread_mutex_unlock(&sv->mu);
	return NULL;
}

static int
checkpointer_start(struct service *sv)
{
	pthread_condattr_t ca;
	int e, r;

	if (sv->cfg->checkpoint_interval <= 0) {
		log_error_f("checkpoint-interval must be positive");
		return CUSTODY_E_CONFIG;
	}
	if ((r = store_open(sv->store_path, &sv->cst)) != 0) {
		log_error_fr(r, "the checkpointer cannot open the store");
		return r;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	e = pthread_cond_init(&sv->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (e != 0) {
		log_error_f("pthread_cond_init: %s", strerror(e));
		store_close(sv->cst);
		sv->cst = NULL;
		return CUSTODY_E_IO;
	}
	sv->stopping = 0;
	if ((e = pthread_create(&sv->thread, NULL, checkpointer, sv)) != 0) {
		pthread_cond_destroy(&sv->wake);
		store_close(sv->cst);
		sv->cst = NULL;
		log_error_f("pthread_create: %s", strerror(e));
		return CUSTODY_E_IO;
	}
	sv->thread_running = 1;
	return 0;
}

static void
checkpointer_stop(struct service *sv)
{
	if (!sv->thread_running)
		return;
	pthread_mutex_lock(&sv->mu);
	sv->stopping = 1;
	pthread_cond_signal(&sv->wake);
	pthread_mutex_unlock(&sv->mu);
	pthread_join(sv->thread, NULL);
	pthread_cond_destroy(&sv->wake);
	store_close(sv->cst);
	sv->cst = NULL;
	sv->thread_running = 0;
}

void
service_checkpoints(struct service *sv, struct service_checkpoints *out)
{
	pthread_mutex_lock(&sv->mu);
	*out = sv->cp;
	pthread_mutex_unlock(&sv->mu);
}

/* ---- the policy in force ------------------------------------------------- */

/* Parse cfg's policy file; *pp NULL when none is configured. */
static int
policy_read(struct service *sv, struct policy **pp, char *err, size_t errsz)
{
	*pp = NULL;
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (sv->cfg->policy == NULL)
		return 0;
	return policy_load(sv->cfg->policy, pp, err, errsz);
}

/* Log p as the policy in force (a policy.load leaf), then put it in force;
 * p is taken over either way. */
static int
policy_install(struct service *sv, struct policy *p)
{
	char principal[32], digest[65];
	struct policy *old;
	uint64_t seq;
	json_t *o;
	int r;

	snprintf(principal, sizeof(principal), "unix:uid=%lu",
	    (unsigned long)geteuid());
	util_hex_encode(policy_sha256(p), 32, digest);
	o = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:I, s:s}}", "event",
	    "policy.load", "principal", principal, "policy", "sha256", digest,
	    "detail", "sha256", digest, "rules", (json_int_t)policy_nrules(p),
	    "file", policy_name(p));
	if (o == NULL) {
		policy_free(p);
		return CUSTODY_E_NOMEM;
	}
	r = audit_append(sv->a, o, NULL, NULL, &seq, NULL, NULL);
	json_decref(o);
	if (r != 0) {
		policy_free(p);
		return r;
	}
	pthread_mutex_lock(&sv->pmu);
	old = sv->policy;
	sv->policy = p;
	pthread_mutex_unlock(&sv->pmu);
	policy_free(old);
	log_notice_f("policy %s in force: %zu rules, sha256 %s (leaf %llu)",
	    policy_name(p), policy_nrules(p), digest, (unsigned long long)seq);
	return 0;
}

int
service_policy_reload(struct service *sv, char *err, size_t errsz)
{
	struct policy *p = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    sv != NULL && sv->started, CUSTODY_E_INVALID_ARG);
	if (sv->cfg->policy == NULL) {
		if (err != NULL && errsz > 0)
			snprintf(err, errsz,
			    "no policy file is configured (every request is "
			    "refused)");
		return CUSTODY_E_CONFIG;
	}
	/* a bad new policy changes nothing: the old one stays in force */
	if ((r = policy_read(sv, &p, err, errsz)) != 0)
		return r;
	if ((r = policy_install(sv, p)) != 0 && err != NULL && errsz > 0)
		snprintf(err, errsz, "cannot log the new policy: %s",
		    custody_strerror(r));
	return r;
}

struct policy *
service_policy(struct service *sv)
{
	struct policy *p;

	pthread_mutex_lock(&sv->pmu);
	p = policy_ref(sv->policy);
	pthread_mutex_unlock(&sv->pmu);
	return p;
}

/* ---- start and stop ------------------------------------------------------ */

/* The leaf of service.start or service.stop: who, what runs, and how. */
static json_t *
run_leaf(const struct service *sv, const char *event, const char *version)
{
	char principal[32], digest[65];
	json_t *o;

	snprintf(principal, sizeof(principal), "unix:uid=%lu",
	    (unsigned long)geteuid());
	util_hex_encode(sv->cfg->sha256, sizeof(sv->cfg->sha256), digest);
	o = json_pack("{s:s, s:s, s:{s:s, s:s, s:I}}", "event", event,
	    "principal", principal, "detail", "version", version,
	    "config_sha256", digest, "pid", (json_int_t)sv->run.pid);
	return o;
}

static int
op_run_begin(struct store *st, void *arg)
{
	return store_run_begin(st, arg);
}

static int
op_run_end(struct store *st, void *arg)
{
	struct store_run cur;
	const struct store_run *mine = arg;
	int r;

	/* the marker must still be this run's: nothing else starts while the
	 * directory is locked, so anything else is a bug worth stopping for */
	if ((r = store_run_get(st, &cur)) != 0)
		return r == CUSTODY_E_NOT_FOUND ? CUSTODY_E_STATE : r;
	if (cur.pid != mine->pid || cur.started_at != mine->started_at)
		return CUSTODY_E_STATE;
	return store_run_end(st);
}

int
service_start(struct service *sv, const char *version, int64_t now,
    struct service_run_info *infop)
{
	struct service_run_info info;
	struct policy *pol = NULL;
	json_t *o = NULL, *d;
	char *vkeys = NULL, t[32], perr[512];
	uint8_t root[32];
	char *note = NULL;
	size_t len;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    sv != NULL && version != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(!sv->started, CUSTODY_E_STATE);
	if (sv->a == NULL) {
		log_error_f("the service needs the token and the log");
		return CUSTODY_E_INVALID_ARG;
	}
	if (sv->cfg->log_origin == NULL) {
		log_error_f("%s: log-origin is not set: custodyd signs "
			    "checkpoints and cannot run without it",
		    sv->cfg->path);
		return CUSTODY_E_CONFIG;
	}
	/* a checkpoint key must be there before the first leaf is */
	if ((r = checkpoint_vkeys(sv->st, sv->cfg->log_origin, &vkeys)) != 0)
		goto out;
	/* and the policy must load: a service never starts on a bad one */
	if ((r = policy_read(sv, &pol, perr, sizeof(perr))) != 0) {
		log_error_f("%s", perr[0] ? perr : custody_strerror(r));
		r = CUSTODY_E_CONFIG;
		goto out;
	}
	if (pol == NULL)
		log_warn_f("%s: no policy is configured: every request will "
			   "be refused",
		    sv->cfg->path);
	memset(&info, 0, sizeof(info));
	if ((r = store_run_get(sv->st, &info.previous)) == 0)
		info.unclean = 1;
	else if (r != CUSTODY_E_NOT_FOUND)
		goto out;
	free(sv->version);
	if ((sv->version = strdup(version)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	sv->run.pid = (int64_t)getpid();
	sv->run.started_at = now;
	if ((o = run_leaf(sv, "service.start", version)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	d = json_object_get(o, "detail");
	if (info.unclean) {
		util_format_time(info.previous.started_at, t, sizeof(t));
		if (json_object_set_new(d, "unclean_shutdown", json_true()) !=
			0 ||
		    json_object_set_new(d, "previous_pid",
			json_integer(info.previous.pid)) != 0 ||
		    json_object_set_new(d, "previous_start", json_string(t)) !=
			0) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
	}
	if (store_checkpoint_last(sv->st, &sv->cp.size, root, &note, &len) == 0)
		free(note);
	/* everything that can fail comes before the leaf: a start is in
	 * the log with its checkpointer running, or left no trace */
	if ((r = checkpointer_start(sv)) != 0)
		goto out;
	if ((r = audit_append(sv->a, o, op_run_begin, &sv->run, &info.start_seq,
		 NULL, NULL)) != 0) {
		checkpointer_stop(sv);
		goto out;
	}
	if (info.unclean)
		log_warn_f("the last run (pid %lld, started %s) did not stop "
			   "cleanly; recorded in leaf %llu",
		    (long long)info.previous.pid, t,
		    (unsigned long long)info.start_seq);
	sv->started = 1;
	if (infop != NULL)
		*infop = info;
	if (pol != NULL) {
		r = policy_install(sv, pol);
		pol = NULL;
		if (r != 0) {
			/* the start is in the log: end it there too */
			log_error_fr(r, "cannot log the policy");
			(void)service_stop(sv, now, NULL);
		}
	}
out:
	policy_free(pol);
	json_decref(o);
	free(vkeys);
	return r;
}

int
service_stop(struct service *sv, int64_t now, uint64_t *sizep)
{
	json_t *o = NULL;
	char *note = NULL;
	size_t len;
	uint64_t seq;
	uint8_t root[32];
	int r, made;

	CUSTODY_RETURN_VAL_IF_FAIL(sv != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(sv->started, CUSTODY_E_STATE);
	checkpointer_stop(sv);
	sv->started = 0;
	if ((o = run_leaf(sv, "service.stop", sv->version)) == NULL)
		r = CUSTODY_E_NOMEM;
	else
		r = audit_append(
		    sv->a, o, op_run_end, &sv->run, &seq, NULL, NULL);
	json_decref(o);
	if (r != 0) {
		log_error_fr(r, "cannot log service.stop: the next start will "
				"report an unclean shutdown");
		/* still sign what the log holds: the final checkpoint */
	}
	if (audit_size(sv->a) > 0) {
		int e = checkpoint_make(sv->tok, sv->st, sv->cfg->log_origin,
		    sv->checkpoint_path, now, &note, &len, &made);

		free(note);
		note = NULL;
		if (e == 0)
			e = store_checkpoint_last(
			    sv->st, &seq, root, &note, &len);
		free(note);
		if (e != 0)
			log_error_fr(e, "cannot sign the final checkpoint");
		else {
			sv->cp.size = seq;
			sv->cp.made += made != 0;
			if (sizep != NULL)
				*sizep = seq;
		}
		if (r == 0)
			r = e;
	}
	return r;
}

void
service_close(struct service *sv)
{
	if (sv == NULL)
		return;
	checkpointer_stop(sv);
	audit_close(sv->a);
	token_close(sv->tok);
	store_close(sv->st);
	if (sv->lockfd >= 0)
		datadir_unlock(sv->lockfd);
	pthread_mutex_destroy(&sv->mu);
	policy_free(sv->policy);
	pthread_mutex_destroy(&sv->pmu);
	free(sv->store_path);
	free(sv->checkpoint_path);
	free(sv->version);
	free(sv);
}
