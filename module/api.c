/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "api.h"
#include "audit.h"
#include "cert.h"
#include "credential.h"
#include "err.h"
#include "keyring.h"
#include "keys.h"
#include "lifecycle.h"
#include "log.h"
#include "logdir.h"
#include "policy.h"
#include "proof.h"
#include "store.h"
#include "tiles.h"
#include "util.h"

/* ---- metrics ------------------------------------------------------------ */

enum route {
	R_HEALTH,
	R_METRICS,
	R_JWT,
	R_KEYS,
	R_KEY,
	R_JWKS,
	R_CHECKPOINT,
	R_TILE,
	R_PROOF,
	R_X509,
	R_CA,
	R_LIFECYCLE,
	R_EVENTS,
	R_ATTESTATIONS,
	R_OTHER,
	R_COUNT
};

static const char *const route_names[] = {"healthz", "metrics",
    "credentials_jwt", "keys", "key", "jwks", "log_checkpoint", "log_tile",
    "log_proof", "credentials_x509", "key_ca", "key_lifecycle", "events",
    "attestations", "other"};

static const int statuses[] = {
    200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 503};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

static const double buckets[] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct metrics {
	atomic_ulong requests[R_COUNT][NSTATUS];
	atomic_ulong issued[CUSTODY_ALG_COUNT];
	atomic_ulong issued_x509[CUSTODY_ALG_COUNT];
	atomic_ulong decisions[2]; /* deny, allow */
	atomic_ulong sign_failures;
	atomic_ulong conns_open, conns_total, conns_refused, slow_closed;
	atomic_ulong jwt_hist[NBUCKETS + 1];
	atomic_ulong jwt_sum_us, jwt_count;
};

/* ---- the parts ---------------------------------------------------------- */

struct loop;

/* A connection, from its accept to its close. Loop thread only. */
struct conn {
	struct loop *lp;
	struct bufferevent *bev; /* until adopted */
	struct evhttp_connection *evcon;
	struct event *adopt, *deadline;
	char principal[API_PRINCIPAL_MAX]; /* "" if SO_PEERCRED failed,
					    * or TLS before the first request */
	int tls;			   /* on the mutual-TLS listener */
	int busy;			   /* a request is being answered */
	int closed;			   /* libevent closed it meanwhile */
	int refused;			   /* over max-connections */
	struct conn *next_pending;	   /* not adopted yet */
};

struct call;
typedef void (*work_fn)(struct call *c);

/* One request on its way through policy, log, token and back. */
struct call {
	struct loop *lp;
	struct conn *conn;
	struct evhttp_request *req;
	enum route route;
	struct timespec t0;
	char principal[API_PRINCIPAL_MAX];
	/* the answer */
	int status;
	const char *ctype;
	char *body;
	size_t len;
	/* the work, on a signer thread once the leaf is durable */
	work_fn work;
	uint64_t seq;
	struct keyring_key *key;
	struct credential_jwt *jwt;
	struct x509_job *x509;
	struct keys_create_req kreq;
	char *kfree[4]; /* kreq's strings */
	char rule[POLICY_RULE_ID_MAX + 1];
	char policy_hex[65];
	int deny_leaf;	  /* the refusal has a leaf of its own */
	int64_t exp_note; /* a credential's expiry for its key's last_exp */
	/* lifecycle requests, on the lifecycle thread */
	char key_id[STORE_KEY_ID_LEN + 1];
	json_t *args; /* the request body */
	int rotate;   /* rotate, else destroy */
	uint8_t body_sha256[32];
	struct call *next;
};

struct loop {
	struct api *api;
	int idx;
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *lst;
	struct evhttp *https; /* the mutual-TLS listener's, or NULL */
	struct evconnlistener *tlst;
	pthread_t th;
	int running;
	struct event *wake;
	struct store *st; /* reads, opened on first use */
	pthread_mutex_t mu;
	struct call *done, *done_tail; /* answers to send */
	int cmd_drain, cmd_stop;
	int draining;
	/* evcon -> conn, open addressing */
	struct conn **conns;
	size_t nslots, nconns;
	struct conn *pending; /* accepted, not adopted yet */
};

struct refused {
	char principal[API_PRINCIPAL_MAX];
	unsigned long n[NSTATUS]; /* by status, as statuses[] */
};

struct api {
	struct service *sv;
	const struct config *cfg;
	struct audit *audit;
	struct token *tok;
	struct keyring *kr;
	int lfd;
	int tfd;      /* listen-tcp, or -1 */
	SSL_CTX *tls; /* its TLS context */
	char *sock_path;
	dev_t sock_dev;
	ino_t sock_ino;
	struct loop *loops;
	int nloops;
	/* signers */
	pthread_t *signers;
	int nsigners;
	pthread_mutex_t jmu;
	pthread_cond_t jcv;
	struct call *jhead, *jtail;
	int jstop;
	/* the lifecycle thread: requests that rotate or destroy, events, and
	 * the scheduler's pass every second */
	struct lifecycle *lc;
	pthread_t lcth;
	int lc_running;
	pthread_mutex_t lmu;
	pthread_cond_t lcv;
	struct call *lhead, *ltail;
	int lstop;
	atomic_long pipeline; /* calls inside the log or a signer */
	atomic_int conns;
	struct metrics m;
	/* refusals without a decision leaf, logged per interval (G4) */
	pthread_mutex_t rmu;
	struct refused refused[API_REFUSED_PRINCIPALS];
	size_t nrefused;
	unsigned long refused_other; /* principals beyond the table */
	int64_t refused_since;
	struct event *flush; /* on loop 0 */
	int64_t started;
};

/* ---- small helpers ------------------------------------------------------ */

static int
status_index(int status)
{
	size_t i;

	for (i = 0; i < NSTATUS; i++)
		if (statuses[i] == status)
			return (int)i;
	return -1;
}

static const char *
reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

static void
set_body(struct call *c, int status, const char *ctype, char *body, size_t len)
{
	free(c->body);
	c->status = status;
	c->ctype = ctype;
	c->body = body;
	c->len = len;
}

static void
set_json(struct call *c, int status, json_t *o)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (s == NULL) {
		set_body(c, 500, "application/problem+json",
		    strdup("{\"type\":\"urn:custody:problem:internal\","
			   "\"title\":\"Internal Server Error\","
			   "\"status\":500,\"detail\":\"out of memory\"}"),
		    0);
		c->len = c->body != NULL ? strlen(c->body) : 0;
		return;
	}
	set_body(c, status, "application/json", s, strlen(s));
}

/*
 * An RFC 9457 problem: type "urn:custody:problem:SLUG", a title, the status
 * and a detail for people; extra (may be NULL) adds members (rule, ...).
 */
static void problem(struct call *c, int status, const char *slug, json_t *extra,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
problem(struct call *c, int status, const char *slug, json_t *extra,
    const char *fmt, ...)
{
	char type[96], detail[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(type, sizeof(type), "urn:custody:problem:%s", slug);
	o = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title",
	    reason_phrase(status), "status", status, "detail", detail);
	if (o != NULL && extra != NULL)
		json_object_update(o, extra);
	json_decref(extra);
	set_json(c, status, o);
	if (c->body != NULL && c->status == status)
		c->ctype = "application/problem+json";
}

/* ---- refusals without a decision (G4) ------------------------------------
 */

static void
count_refused(struct api *a, const char *principal, int status)
{
	size_t i;

	pthread_mutex_lock(&a->rmu);
	for (i = 0; i < a->nrefused; i++)
		if (strcmp(a->refused[i].principal, principal) == 0)
			break;
	if (i == a->nrefused && a->nrefused < API_REFUSED_PRINCIPALS) {
		memset(&a->refused[i], 0, sizeof(a->refused[i]));
		snprintf(a->refused[i].principal,
		    sizeof(a->refused[i].principal), "%s",
		    principal[0] ? principal : "(unknown)");
		a->nrefused++;
	}
	if (i < a->nrefused)
		a->refused[i].n[status_index(status)]++;
	else
		a->refused_other++;
	pthread_mutex_unlock(&a->rmu);
}

static void
flushed(void *arg, int r, uint64_t seq)
{
	(void)arg;
	(void)seq;
	if (r != 0)
		log_error_fr(r, "the requests.refused leaf was not written");
}

/* One requests.refused leaf for what was counted since the last one. */
static void
flush_refused(struct api *a)
{
	char since[32], until[32], code[8];
	json_t *by, *o, *leaf;
	int64_t now = util_now();
	size_t i, k, bytes;
	int r;

	pthread_mutex_lock(&a->rmu);
	if (a->nrefused == 0 && a->refused_other == 0) {
		a->refused_since = now;
		pthread_mutex_unlock(&a->rmu);
		return;
	}
	by = json_object();
	for (i = 0, bytes = 0; by != NULL && i < a->nrefused; i++) {
		/* the leaf stays well under 64 KiB (a principal may take 511
		 * bytes, twice that escaped): the rest is counted in others */
		bytes += 2 * strlen(a->refused[i].principal) + 96;
		if (bytes > API_REFUSED_BYTES) {
			for (k = 0; k < NSTATUS; k++)
				a->refused_other += a->refused[i].n[k];
			continue;
		}
		if ((o = json_object()) == NULL)
			break;
		for (k = 0; k < NSTATUS; k++) {
			if (a->refused[i].n[k] == 0)
				continue;
			snprintf(code, sizeof(code), "%d", statuses[k]);
			json_object_set_new(o, code,
			    json_integer((json_int_t)a->refused[i].n[k]));
		}
		json_object_set_new(by, a->refused[i].principal, o);
	}
	util_format_time(a->refused_since, since, sizeof(since));
	util_format_time(now, until, sizeof(until));
	leaf = json_pack("{s:s, s:s, s:{s:s, s:s, s:o, s:I}}", "event",
	    "requests.refused", "principal", "custody:api", "detail", "from",
	    since, "until", until, "by_principal", by, "others",
	    (json_int_t)a->refused_other);
	a->nrefused = 0;
	a->refused_other = 0;
	a->refused_since = now;
	pthread_mutex_unlock(&a->rmu);
	if (leaf == NULL)
		return;
	if ((r = audit_append_async(
		 a->audit, leaf, NULL, NULL, flushed, NULL)) != 0)
		log_error_fr(r, "the requests.refused leaf was not written");
	json_decref(leaf);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush_refused(arg);
}

/* ---- sending answers ---------------------------------------------------- */

static void conn_release(struct conn *k);
static void x509_job_free(struct x509_job *x);

static void
call_free(struct call *c)
{
	size_t i;

	if (c == NULL)
		return;
	keyring_put(c->key);
	credential_jwt_free(c->jwt);
	x509_job_free(c->x509);
	for (i = 0; i < sizeof(c->kfree) / sizeof(c->kfree[0]); i++)
		free(c->kfree[i]);
	json_decref(c->args);
	free(c->body);
	free(c);
}

/* Send c's answer (loop thread) and free c. */
static void
send_answer(struct call *c)
{
	struct api *a = c->lp->api;
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);
	struct evbuffer *b = evhttp_request_get_output_buffer(c->req);
	struct timespec t1;
	double secs;
	int si, i;

	if (c->body == NULL)
		problem(c, 500, "internal", NULL, "no answer was made");
	if (c->status >= 400 && c->status != 403 && c->status != 409 &&
	    !c->deny_leaf && c->status < 500 && status_index(c->status) >= 0) {
		/* no leaf each (a flood would fill the log): counted, and
		 * one requests.refused leaf per interval says how many */
		count_refused(a, c->principal, c->status);
		log_info_f("%s %s: %d %.*s",
		    c->principal[0] ? c->principal : "(unknown)",
		    evhttp_request_get_uri(c->req), c->status,
		    (int)(c->len < 300 ? c->len : 300), c->body);
	}
	if ((si = status_index(c->status)) >= 0)
		atomic_fetch_add(&a->m.requests[c->route][si], 1);
	if (c->route == R_JWT && c->status == 200) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (double)(t1.tv_sec - c->t0.tv_sec) +
		       (double)(t1.tv_nsec - c->t0.tv_nsec) / 1e9;
		for (i = 0; i < (int)NBUCKETS && secs > buckets[i]; i++)
			;
		atomic_fetch_add(&a->m.jwt_hist[i], 1);
		atomic_fetch_add(&a->m.jwt_sum_us, (unsigned long)(secs * 1e6));
		atomic_fetch_add(&a->m.jwt_count, 1);
	}
	evhttp_add_header(h, "Content-Type", c->ctype);
	evhttp_add_header(h, "Cache-Control",
	    c->route == R_JWKS && c->status == 200 ? "private, max-age=60"
						   : "no-store");
	if (evhttp_request_get_command(c->req) == EVHTTP_REQ_HEAD)
		/* libevent 2.1 would send the body after the head of an
		 * answer to HEAD: send none, and end the connection */
		evhttp_add_header(h, "Connection", "close");
	else {
		if (c->lp->draining)
			evhttp_add_header(h, "Connection", "close");
		evbuffer_add(b, c->body, c->len);
	}
	conn_release(c->conn);
	evhttp_send_reply(c->req, c->status, reason_phrase(c->status), NULL);
	call_free(c);
}

/* From any thread: hand c back to its loop, which sends the answer. */
static void
post_answer(struct call *c)
{
	struct loop *lp = c->lp;

	pthread_mutex_lock(&lp->mu);
	c->next = NULL;
	if (lp->done_tail != NULL)
		lp->done_tail->next = c;
	else
		lp->done = c;
	lp->done_tail = c;
	pthread_mutex_unlock(&lp->mu);
	event_active(lp->wake, 0, 0);
}

/* ---- the signers -------------------------------------------------------- */

static void
submit(struct api *a, struct call *c)
{
	pthread_mutex_lock(&a->jmu);
	c->next = NULL;
	if (a->jtail != NULL)
		a->jtail->next = c;
	else
		a->jhead = c;
	a->jtail = c;
	pthread_cond_signal(&a->jcv);
	pthread_mutex_unlock(&a->jmu);
}

static void *
signer_main(void *arg)
{
	struct api *a = arg;
	struct call *c;

	for (;;) {
		pthread_mutex_lock(&a->jmu);
		while (a->jhead == NULL && !a->jstop)
			pthread_cond_wait(&a->jcv, &a->jmu);
		if ((c = a->jhead) == NULL) {
			pthread_mutex_unlock(&a->jmu);
			break;
		}
		if ((a->jhead = c->next) == NULL)
			a->jtail = NULL;
		pthread_mutex_unlock(&a->jmu);
		c->work(c);
		atomic_fetch_sub(&a->pipeline, 1);
		post_answer(c);
	}
	return NULL;
}

/* The log has the decision leaf (or failed to write it). Writer thread. */
static void
logged(void *arg, int r, uint64_t seq)
{
	struct call *c = arg;
	struct api *a = c->lp->api;

	if (r != 0) {
		/* nothing is signed without its leaf (G1, G2) */
		problem(c, 503, "log-failed", NULL,
		    "the audit log could not record the decision (%s): "
		    "nothing was signed",
		    custody_strerror(r));
		c->work = NULL;
	}
	c->seq = seq;
	if (c->work != NULL) {
		submit(a, c);
		return;
	}
	atomic_fetch_sub(&a->pipeline, 1);
	post_answer(c);
}

/* A credential's expiry, stored with its decision leaf as its key's
 * last_exp (writer thread): a retired key is kept until then. */
static int
exp_op(struct store *st, void *arg)
{
	struct call *c = arg;

	return store_key_set_last_exp(st, c->key->rec->id, c->exp_note);
}

/*
 * Append leaf for c (taking the reference), then do c->work on a signer,
 * or, without work, send the answer already set in c. A log that refuses
 * the append at once answers 503.
 */
static void
log_then(struct call *c, json_t *leaf)
{
	struct api *a = c->lp->api;
	int r;

	if (leaf == NULL) {
		problem(c, 500, "internal", NULL, "out of memory");
		send_answer(c);
		return;
	}
	atomic_fetch_add(&a->pipeline, 1);
	r = audit_append_async(
	    a->audit, leaf, c->exp_note > 0 ? exp_op : NULL, c, logged, c);
	json_decref(leaf);
	if (r != 0) {
		atomic_fetch_sub(&a->pipeline, 1);
		problem(c, 503, "log-failed", NULL,
		    "the audit log refuses to record (%s): nothing is signed "
		    "until custodyd is restarted",
		    custody_strerror(r));
		send_answer(c);
	}
}

/* ---- decision leaves ---------------------------------------------------- */

static void
hex32(const uint8_t *h, char out[65])
{
	util_hex_encode(h, 32, out);
}

/*
 * A decision leaf (FORMATS.md section 2): event, principal, key, hashes,
 * policy and decision, then the reason of a refusal and the detail
 * (taken). key, request_sha256, tbs_sha256, detail may be NULL.
 */
static json_t *
decision_leaf(const struct call *c, const char *event,
    const struct store_key *key, const uint8_t *request_sha256,
    const uint8_t *tbs_sha256, int allow, const char *reason, json_t *detail)
{
	json_t *o;
	char hex[65];

	if ((o = json_pack("{s:s, s:s}", "event", event, "principal",
		 c->principal[0] ? c->principal : "(unknown)")) == NULL)
		goto fail;
	if (key != NULL &&
	    json_object_set_new(o, "key",
		json_pack("{s:s, s:s}", "id", key->id, "kid", key->kid)) != 0)
		goto fail;
	if (request_sha256 != NULL) {
		hex32(request_sha256, hex);
		if (json_object_set_new(o, "request_sha256", json_string(hex)))
			goto fail;
	}
	if (tbs_sha256 != NULL) {
		hex32(tbs_sha256, hex);
		if (json_object_set_new(o, "tbs_sha256", json_string(hex)))
			goto fail;
	}
	if (json_object_set_new(o, "policy",
		c->policy_hex[0] ? json_pack("{s:s, s:s}", "sha256",
				       c->policy_hex, "rule", c->rule)
				 : json_pack("{s:s}", "rule", c->rule)) != 0 ||
	    json_object_set_new(
		o, "decision", json_string(allow ? "allow" : "deny")) != 0)
		goto fail;
	if (!allow && reason != NULL &&
	    json_object_set_new(o, "reason", json_string(reason)) != 0)
		goto fail;
	if (detail != NULL && json_object_set_new(o, "detail", detail) != 0) {
		detail = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(detail);
	json_decref(o);
	return NULL;
}

/* A refusal by policy or by custody's own checks: 403 (or status), logged
 * before it is sent. */
static void refuse(struct call *c, int status, const char *event,
    const struct store_key *key, const uint8_t *request_sha256,
    const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static void refuse_as(struct call *c, int status, const char *slug,
    const char *event, const struct store_key *key,
    const uint8_t *request_sha256, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

static void vrefuse(struct call *c, int status, const char *slug,
    const char *event, const struct store_key *key,
    const uint8_t *request_sha256, const char *rule, const char *fmt,
    va_list ap) __attribute__((format(printf, 8, 0)));

static void
refuse(struct call *c, int status, const char *event,
    const struct store_key *key, const uint8_t *request_sha256,
    const char *rule, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vrefuse(c, status, status == 409 ? "conflict" : "forbidden", event, key,
	    request_sha256, rule, fmt, ap);
	va_end(ap);
}

/* A refusal of what the request carries (a CSR, certificates) with its own
 * problem type: logged as refuse() logs. */
static void
refuse_as(struct call *c, int status, const char *slug, const char *event,
    const struct store_key *key, const uint8_t *request_sha256,
    const char *rule, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vrefuse(c, status, slug, event, key, request_sha256, rule, fmt, ap);
	va_end(ap);
}

static void
vrefuse(struct call *c, int status, const char *slug, const char *event,
    const struct store_key *key, const uint8_t *request_sha256,
    const char *rule, const char *fmt, va_list ap)
{
	char reason[320];

	vsnprintf(reason, sizeof(reason), fmt, ap);
	if (rule != NULL)
		snprintf(c->rule, sizeof(c->rule), "%s", rule);
	if (c->policy_hex[0] == '\0') {
		/* custody's own refusal, before the policy was asked: the
		 * leaf still names the policy in force */
		struct policy *p = service_policy(c->lp->api->sv);

		if (p != NULL)
			hex32(policy_sha256(p), c->policy_hex);
		policy_free(p);
	}
	atomic_fetch_add(&c->lp->api->m.decisions[0], 1);
	problem(
	    c, status, slug, json_pack("{s:s}", "rule", c->rule), "%s", reason);
	c->deny_leaf = 1;
	c->work = NULL;
	log_then(c, decision_leaf(
			c, event, key, request_sha256, NULL, 0, reason, NULL));
}

/* Ask the policy; fills c->rule and c->policy_hex. */
static void
decide(
    struct call *c, const struct policy_request *q, struct policy_decision *d)
{
	struct policy *p = service_policy(c->lp->api->sv);

	policy_eval(p, q, d);
	snprintf(c->rule, sizeof(c->rule), "%s", d->rule);
	if (p != NULL)
		hex32(policy_sha256(p), c->policy_hex);
	policy_free(p);
}

/* A policy refusal: 429 (counted, not a leaf each: G4) or 403 (logged). */
static void
refuse_decision(struct call *c, const char *event, const struct store_key *key,
    const uint8_t *request_sha256, const struct policy_decision *d)
{
	if (d->rate_limited) {
		problem(c, 429, "rate-limited",
		    json_pack("{s:s}", "rule", d->rule), "%s", d->reason);
		send_answer(c);
		return;
	}
	refuse(c, 403, event, key, request_sha256, NULL, "%s", d->reason);
}

/* ---- request bodies ----------------------------------------------------- */

/* The body, contiguous; NULL (answered) if it is over API_BODY_MAX or not
 * JSON by its Content-Type. */
static const uint8_t *
json_body(struct call *c, size_t *lenp)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);
	const char *ct = evhttp_find_header(
	    evhttp_request_get_input_headers(c->req), "Content-Type");
	size_t len = evbuffer_get_length(in);
	const uint8_t *p;

	if (len > API_BODY_MAX) {
		problem(c, 413, "too-large", NULL,
		    "the body has %zu bytes; at most %d are accepted", len,
		    API_BODY_MAX);
		return NULL;
	}
	if (ct != NULL && (strncasecmp(ct, "application/json", 16) != 0 ||
			      (ct[16] != '\0' && ct[16] != ';' &&
				  ct[16] != ' ' && ct[16] != '\t'))) {
		problem(c, 415, "unsupported-media-type", NULL,
		    "the body must be application/json, not %.64s", ct);
		return NULL;
	}
	if ((p = evbuffer_pullup(in, -1)) == NULL)
		p = (const uint8_t *)"";
	*lenp = len;
	return p;
}

/* ---- what both credentials check ----------------------------------------- */

/*
 * The key a credential request names (key_id, else agent's task-less key
 * of purpose), checked before the policy (G5): it exists (404), has that
 * purpose (403, rule (purpose): it never signs what), and is active (409,
 * rule (state)). NULL when c is answered, or being answered.
 */
static const struct store_key *
credential_key(struct call *c, const char *key_id, const char *agent,
    const char *purpose, const char *event, const uint8_t *request_sha256,
    const char *what)
{
	struct api *a = c->lp->api;
	const struct store_key *k;
	int r;

	r = key_id != NULL ? keyring_get(a->kr, key_id, &c->key)
			   : keyring_find(a->kr, agent, purpose, NULL, &c->key);
	if (r != 0) {
		if (key_id != NULL)
			problem(
			    c, 404, "not-found", NULL, "no key %.64s", key_id);
		else
			problem(c, 404, "not-found", NULL,
			    "agent %.256s has no active %s key", agent,
			    purpose);
		send_answer(c);
		return NULL;
	}
	k = c->key->rec;
	if (strcmp(k->purpose, purpose) != 0) {
		refuse(c, 403, event, k, request_sha256, "(purpose)",
		    "key %s is a %s key: it never %s", k->id, k->purpose, what);
		return NULL;
	}
	if (strcmp(k->state, "active") != 0) {
		refuse(c, 409, event, k, request_sha256, "(state)",
		    "key %s is %s: it signs nothing more", k->id, k->state);
		return NULL;
	}
	return k;
}

/*
 * The lifetime of a credential: the smallest of what the rule granted
 * (the ttl asked, capped by its max_ttl) and the key's remaining life. 0 and
 * *ttlp, or -1 when c is refused (409 past the key's ttl, 403 nothing
 * granted).
 */
static int
credential_ttl(struct call *c, const struct store_key *k, int64_t granted,
    int64_t now, const char *event, const uint8_t *request_sha256,
    int64_t *ttlp)
{
	int64_t left;

	if (k->ttl > 0) {
		left = k->created_at + k->ttl - now;
		if (left <= 0) {
			refuse(c, 409, event, k, request_sha256, "(state)",
			    "key %s reached the end of its ttl: it signs "
			    "nothing more",
			    k->id);
			return -1;
		}
		if (left < granted)
			granted = left;
	}
	if (granted <= 0) {
		refuse(c, 403, event, k, request_sha256, NULL,
		    "the rule grants no lifetime");
		return -1;
	}
	*ttlp = granted;
	return 0;
}

/* ---- POST /v1/credentials/jwt ------------------------------------------- */

static void sign_failed(struct call *c, int r, const char *what);

static void
jwt_sign(struct call *c)
{
	struct api *a = c->lp->api;
	char exp[32], *token = NULL;
	uint8_t *sig = NULL;
	size_t siglen = 0;
	enum custody_alg alg;
	int r;

	if ((r = keyring_sign(a->kr, c->key,
		 (const uint8_t *)c->jwt->signing_input, c->jwt->len, &sig,
		 &siglen)) != 0 ||
	    (r = credential_jwt_finish(c->jwt, sig, siglen, &token)) != 0) {
		sign_failed(c, r, "JWT");
		goto out;
	}
	if (alg_from_name(c->key->rec->alg, &alg) == 0)
		atomic_fetch_add(&a->m.issued[alg], 1);
	util_format_time(c->jwt->exp, exp, sizeof(exp));
	set_json(c, 200,
	    json_pack("{s:s, s:s, s:s, s:I}", "token", token, "kid",
		c->key->rec->kid, "expires_at", exp, "log_index",
		(json_int_t)c->seq));
out:
	free(sig);
	if (token != NULL) {
		memset(token, 0, strlen(token));
		free(token);
	}
}

static void
handle_jwt(struct call *c)
{
	struct api *a = c->lp->api;
	const struct config *cfg = a->cfg;
	struct credential_jwt_req *q = NULL;
	struct policy_request pq;
	struct policy_decision d;
	struct policy_key pk;
	const struct store_key *k;
	const uint8_t *body;
	char err[320];
	int64_t now, ttl;
	size_t len;
	int r;

	if (cfg->issuer == NULL) {
		problem(c, 503, "not-configured", NULL,
		    "custodyd issues no JWT: its configuration sets no "
		    "issuer");
		goto answer;
	}
	if ((body = json_body(c, &len)) == NULL)
		goto answer;
	if ((r = credential_jwt_parse(body, len, &q, err, sizeof(err))) != 0) {
		if (r == CUSTODY_E_NOMEM)
			problem(c, 503, "unavailable", NULL, "out of memory");
		else
			problem(c, 400, "bad-request", NULL, "%s", err);
		goto answer;
	}
	/* purpose before policy (G5): whatever a policy says, a key signs
	 * only what it was made for */
	if ((k = credential_key(c, q->key, q->agent, "jwt", "credential.jwt",
		 q->request_sha256, "signs a JWT")) == NULL)
		goto out;
	now = util_now();
	keys_policy_key(k, &pk);
	memset(&pq, 0, sizeof(pq));
	pq.principal = c->principal;
	pq.action = POLICY_CREDENTIAL_JWT;
	pq.key = &pk;
	pq.now_ms = util_now_ms();
	pq.ttl = q->ttl;
	pq.audiences = (const char *const *)q->aud;
	pq.naudiences = q->naud;
	pq.sub = q->sub;
	pq.claims = q->claim_names;
	pq.nclaims = q->nclaims;
	pq.act = q->act != NULL;
	decide(c, &pq, &d);
	if (!d.allow) {
		refuse_decision(c, "credential.jwt", k, q->request_sha256, &d);
		goto out;
	}
	/* the smallest of what was asked, the policy's maximum (d.ttl is
	 * both) and the key's remaining life */
	if (credential_ttl(c, k, d.ttl, now, "credential.jwt",
		q->request_sha256, &ttl) != 0)
		goto out;
	{
		struct credential_key ck = {k->id, k->kid, k->agent, 0};

		if ((r = alg_from_name(k->alg, &ck.alg)) != 0 ||
		    (r = credential_jwt_build(q, &ck, cfg->issuer,
			 cfg->jwt_ed25519_alg, now, ttl, &c->jwt)) != 0) {
			problem(c, 500, "internal", NULL,
			    "the JWT could not be built (%s)",
			    custody_strerror(r));
			goto answer;
		}
	}
	atomic_fetch_add(&a->m.decisions[1], 1);
	c->work = jwt_sign;
	if (keyring_note_exp(c->key, c->jwt->exp))
		c->exp_note = c->jwt->exp;
	{
		json_t *detail = json_incref(c->jwt->detail);

		log_then(
		    c, decision_leaf(c, "credential.jwt", k, q->request_sha256,
			   c->jwt->tbs_sha256, 1, NULL, detail));
	}
	goto out;
answer:
	send_answer(c);
out:
	credential_jwt_req_free(q);
}

/* ---- keys ----------------------------------------------------------------
 */

static struct store *
loop_store(struct call *c)
{
	struct loop *lp = c->lp;
	int r;

	if (lp->st == NULL &&
	    (r = store_open(service_store_path(lp->api->sv), &lp->st)) != 0) {
		problem(c, 503, "unavailable", NULL,
		    "the store cannot be read (%s)", custody_strerror(r));
		return NULL;
	}
	return lp->st;
}

static int
key_readable(
    struct call *c, const struct store_key *k, struct policy_decision *d)
{
	struct policy_request pq;
	struct policy_key pk;

	keys_policy_key(k, &pk);
	memset(&pq, 0, sizeof(pq));
	pq.principal = c->principal;
	pq.action = POLICY_KEY_READ;
	pq.key = &pk;
	pq.now_ms = util_now_ms();
	decide(c, &pq, d);
	return d->allow;
}

/*
 * The key id from the store, if the policy lets c read it (key.read): the
 * record (store_key_free it) and the loop's store in *stp, or NULL when c
 * is answered (404, 503) or being answered (403, logged).
 */
static struct store_key *
readable_key(struct call *c, const char *id, struct store **stp)
{
	struct policy_decision d;
	struct store_key *k = NULL;
	int r;

	if ((*stp = loop_store(c)) == NULL) {
		send_answer(c);
		return NULL;
	}
	if (store_key_id_parse(id, (uint8_t[STORE_CKA_ID_LEN]){0}) != 0 ||
	    (r = store_key_get(*stp, id, &k)) == CUSTODY_E_KEY_NOT_FOUND) {
		problem(c, 404, "not-found", NULL, "no key %.64s", id);
		send_answer(c);
		return NULL;
	}
	if (r != 0) {
		problem(c, 503, "unavailable", NULL, "the store failed (%s)",
		    custody_strerror(r));
		send_answer(c);
		return NULL;
	}
	if (!key_readable(c, k, &d)) {
		refuse_decision(c, "key.read", k, NULL, &d);
		store_key_free(k);
		return NULL;
	}
	return k;
}

static void
handle_key_show(struct call *c, const char *id)
{
	struct store_key *k;
	struct store *st;

	if ((k = readable_key(c, id, &st)) == NULL)
		return;
	set_json(c, 200, keys_json(k));
	send_answer(c);
	store_key_free(k);
}

static void
handle_key_list(struct call *c)
{
	struct policy_decision d;
	struct store_key **keys = NULL;
	struct evkeyvalq qs;
	const char *state = NULL, *q;
	struct store *st;
	size_t n = 0, i, shown = 0, denied = 0;
	json_t *arr;
	int r;

	TAILQ_INIT(&qs);
	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(c->req));
	if (q != NULL && (evhttp_parse_query_str(q, &qs) != 0 ||
			     (qs.tqh_first != NULL &&
				 (strcmp(qs.tqh_first->key, "state") != 0 ||
				     qs.tqh_first->next.tqe_next != NULL)))) {
		problem(c, 400, "bad-request", NULL,
		    "the only query parameter is state=active|retired|"
		    "destroyed");
		goto answer;
	}
	state = evhttp_find_header(&qs, "state");
	if ((st = loop_store(c)) == NULL)
		goto answer;
	if ((r = store_key_list(st, state, &keys, &n)) != 0) {
		if (r == CUSTODY_E_INVALID_ARG)
			problem(c, 400, "bad-request", NULL,
			    "state must be active, retired or destroyed");
		else
			problem(c, 503, "unavailable", NULL,
			    "the store failed (%s)", custody_strerror(r));
		goto answer;
	}
	arr = json_array();
	for (i = 0; arr != NULL && i < n; i++) {
		if (key_readable(c, keys[i], &d)) {
			json_array_append_new(arr, keys_json(keys[i]));
			shown++;
		} else
			denied++;
	}
	if (n > 0 && shown == 0) {
		/* nothing of what exists may be read: a refusal */
		json_decref(arr);
		if (d.rate_limited) {
			refuse_decision(c, "key.read", NULL, NULL, &d);
			goto out;
		}
		snprintf(c->rule, sizeof(c->rule), "%s", d.rule);
		refuse(c, 403, "key.read", NULL, NULL, NULL,
		    "no key may be listed by %s", c->principal);
		goto out;
	}
	set_json(c, 200, json_pack("{s:o}", "keys", arr));
answer:
	send_answer(c);
out:
	evhttp_clear_headers(&qs);
	store_key_list_free(keys, n);
}

/* Members of a key creation request: strings, then integers. */
static int
key_create_parse(struct call *c, json_t *o, char *err, size_t errsz)
{
	static const char *const strs[] = {"agent", "owner", "purpose", "task"};
	const char *k, *alg = NULL;
	json_t *v;
	size_t i;
	int r;

	json_object_foreach(o, k, v)
	{
		for (i = 0; i < 4; i++)
			if (strcmp(k, strs[i]) == 0)
				break;
		if (i < 4) {
			if (!json_is_string(v)) {
				snprintf(err, errsz, "%s must be a string", k);
				return CUSTODY_E_INVALID_ARG;
			}
			if ((c->kfree[i] = strdup(json_string_value(v))) ==
			    NULL)
				return CUSTODY_E_NOMEM;
		} else if (strcmp(k, "alg") == 0) {
			if (!json_is_string(v) ||
			    alg_from_name(json_string_value(v), &c->kreq.alg) !=
				0) {
				snprintf(err, errsz, "alg must be one of %s",
				    alg_names());
				return CUSTODY_E_INVALID_ARG;
			}
			alg = json_string_value(v);
		} else if (strcmp(k, "max_age") == 0 || strcmp(k, "ttl") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 100LL * 366 * 86400) {
				snprintf(err, errsz,
				    "%s must be a number of seconds (0: none)",
				    k);
				return CUSTODY_E_INVALID_ARG;
			}
			*(strcmp(k, "ttl") == 0 ? &c->kreq.ttl
						: &c->kreq.max_age) =
			    json_integer_value(v);
		} else {
			snprintf(err, errsz,
			    "unknown member '%.64s' (agent, owner, purpose, "
			    "alg, task, max_age, ttl)",
			    k);
			return CUSTODY_E_INVALID_ARG;
		}
	}
	c->kreq.agent = c->kfree[0];
	c->kreq.owner = c->kfree[1];
	c->kreq.purpose = c->kfree[2];
	c->kreq.task = c->kfree[3];
	if (c->kreq.agent == NULL || c->kreq.owner == NULL ||
	    c->kreq.purpose == NULL || alg == NULL) {
		snprintf(
		    err, errsz, "agent, owner, purpose and alg are required");
		return CUSTODY_E_INVALID_ARG;
	}
	if (c->kreq.task != NULL && c->kreq.ttl == 0) {
		snprintf(err, errsz,
		    "a key for a task needs a ttl: it is destroyed when the "
		    "task completes or its ttl passes, whichever is first");
		return CUSTODY_E_INVALID_ARG;
	}
	for (i = 0; i < 4; i++) {
		const char *why;
		size_t max = i == 3 ? 128 : 256;

		if (c->kfree[i] == NULL ||
		    (why = util_text_problem(c->kfree[i], max)) == NULL)
			continue;
		if (strcmp(why, UTIL_TEXT_TOO_LONG) == 0)
			snprintf(err, errsz, "%s is longer than %zu bytes",
			    strs[i], max);
		else
			snprintf(err, errsz, "%s %s", strs[i], why);
		return CUSTODY_E_INVALID_ARG;
	}
	r = 0;
	if (strcmp(c->kreq.purpose, "jwt") != 0 &&
	    strcmp(c->kreq.purpose, "x509-ca") != 0) {
		snprintf(err, errsz,
		    "purpose %.32s: the API creates jwt and x509-ca keys "
		    "(checkpoint and attestation keys are the service's, "
		    "made by custody init)",
		    c->kreq.purpose);
		r = CUSTODY_E_INVALID_ARG;
	}
	return r;
}

/* What a refused key.create leaf says of the key asked for. */
static json_t *
key_detail(const struct call *c)
{
	json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "agent", c->kreq.agent,
	    "owner", c->kreq.owner, "purpose", c->kreq.purpose, "alg",
	    alg_name(c->kreq.alg));

	if (d != NULL && c->kreq.task != NULL)
		json_object_set_new(d, "task", json_string(c->kreq.task));
	return d;
}

/* Allowed by policy, refused by the registry's rule of one active key per
 * (agent, purpose, task): logged as the refusal it is, nothing was made. */
static void
key_exists(struct call *c)
{
	struct api *a = c->lp->api;
	char reason[420];
	json_t *leaf;
	uint64_t seq;
	int r = CUSTODY_E_NOMEM;

	snprintf(reason, sizeof(reason),
	    "%.256s already has an active %s key%s%.128s", c->kreq.agent,
	    c->kreq.purpose, c->kreq.task ? " for task " : "",
	    c->kreq.task ? c->kreq.task : "");
	snprintf(c->rule, sizeof(c->rule), "(exists)");
	atomic_fetch_add(&a->m.decisions[0], 1);
	if ((leaf = decision_leaf(c, "key.create", NULL, NULL, NULL, 0, reason,
		 key_detail(c))) == NULL ||
	    (r = audit_append(a->audit, leaf, NULL, NULL, &seq, NULL, NULL)) !=
		0)
		problem(c, 503, "log-failed", NULL,
		    "the audit log could not record the refusal (%s)",
		    custody_strerror(r));
	else
		problem(c, 409, "conflict", json_pack("{s:s}", "rule", c->rule),
		    "%s", reason);
	json_decref(leaf);
}

static void
key_create_work(struct call *c)
{
	struct api *a = c->lp->api;
	struct store_key *k = NULL;
	struct store *st = NULL;
	struct token_generated *g = NULL;
	struct keys_env env;
	json_t *o;
	int r;

	/* a connection of its own: creations are rare, and slow anyway */
	if ((r = store_open(service_store_path(a->sv), &st)) != 0) {
		problem(c, 503, "unavailable", NULL,
		    "the store cannot be opened (%s)", custody_strerror(r));
		return;
	}
	env = (struct keys_env){a->tok, st, a->audit, c->principal, c->rule,
	    c->policy_hex[0] ? c->policy_hex : NULL};
	r = keys_create(&env, &c->kreq, util_now(), &k, &g);
	switch (r) {
	case 0:
		atomic_fetch_add(&a->m.decisions[1], 1);
		if ((o = keys_json(k)) != NULL)
			json_object_set_new(
			    o, "token_attributes", keys_attrs_json(&g->attrs));
		token_generated_free(g);
		set_json(c, 201, o);
		if ((r = keyring_add(a->kr, k)) != 0)
			log_error_fr(r, "the new key is not in the keyring "
					"until custodyd restarts");
		break;
	case CUSTODY_E_EXISTS:
		key_exists(c);
		break;
	case CUSTODY_E_LOG_FAILED:
		problem(c, 503, "log-failed", NULL,
		    "the audit log has failed: nothing is created until "
		    "custodyd is restarted");
		break;
	case CUSTODY_E_MECHANISM:
		problem(c, 400, "bad-request", NULL,
		    "the token cannot make %s keys", alg_name(c->kreq.alg));
		break;
	default:
		problem(c, 503, "unavailable", NULL,
		    "the key was not created (%s)", custody_strerror(r));
	}
	store_close(st);
}

static void
handle_key_create(struct call *c)
{
	struct policy_request pq;
	struct policy_decision d;
	struct policy_key pk;
	const uint8_t *body;
	json_error_t je;
	json_t *o = NULL, *detail;
	char err[320];
	size_t len;
	int r;

	if ((body = json_body(c, &len)) == NULL)
		goto answer;
	if ((o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
		 &je)) == NULL ||
	    !json_is_object(o)) {
		if (o == NULL)
			problem(c, 400, "bad-request", NULL,
			    "the body is not valid JSON: %s", je.text);
		else
			problem(c, 400, "bad-request", NULL,
			    "the body must be a JSON object");
		goto answer;
	}
	if ((r = key_create_parse(c, o, err, sizeof(err))) != 0) {
		if (r == CUSTODY_E_NOMEM)
			problem(c, 503, "unavailable", NULL, "out of memory");
		else
			problem(c, 400, "bad-request", NULL, "%s", err);
		goto answer;
	}
	memset(&pk, 0, sizeof(pk));
	pk.agent = c->kreq.agent;
	pk.owner = c->kreq.owner;
	pk.purpose = c->kreq.purpose;
	pk.alg = alg_name(c->kreq.alg);
	pk.task = c->kreq.task;
	pk.ttl = c->kreq.ttl;
	memset(&pq, 0, sizeof(pq));
	pq.principal = c->principal;
	pq.action = POLICY_KEY_CREATE;
	pq.key = &pk;
	pq.now_ms = util_now_ms();
	decide(c, &pq, &d);
	if (!d.allow) {
		if (d.rate_limited) {
			refuse_decision(c, "key.create", NULL, NULL, &d);
			goto out;
		}
		detail = key_detail(c);
		atomic_fetch_add(&c->lp->api->m.decisions[0], 1);
		problem(c, 403, "forbidden", json_pack("{s:s}", "rule", d.rule),
		    "%s", d.reason);
		log_then(c, decision_leaf(c, "key.create", NULL, NULL, NULL, 0,
				d.reason, detail));
		goto out;
	}
	/* allowed: the key.create leaf, written with the registry change,
	 * is the decision (keys_create) */
	c->work = key_create_work;
	atomic_fetch_add(&c->lp->api->pipeline, 1);
	submit(c->lp->api, c);
	goto out;
answer:
	send_answer(c);
out:
	json_decref(o);
}

/* ---- X.509: certificates and the CA certificates of x509-ca keys -------- */

/* CA certificates made here: a year unless asked, at most 20 years, never
 * past the key's ttl */
#define CA_TTL_DEFAULT (365 * 86400)
#define CA_TTL_MAX     (20 * 366 * 86400)

/* What an X.509 call carries from the loop to its signer and back. */
struct x509_job {
	enum { X_ISSUE, X_CA_SELF, X_CA_CSR, X_CA_IMPORT } kind;
	X509 *ca;	/* X_ISSUE: the key's CA certificate */
	uint8_t *chain; /* DER certificates above it (issuer first) */
	size_t chainlen;
	EVP_PKEY *pub; /* the x509-ca key's own public key (CA calls) */
	uint8_t *tbs;  /* what the token signs */
	size_t tbslen;
	char serial[80];
	int64_t not_after;
	/* X_CA_SELF, X_CA_IMPORT: what the install leaf puts in the store */
	char key_id[STORE_KEY_ID_LEN + 1];
	uint8_t *der; /* the CA certificate */
	size_t derlen;
	json_t *detail; /* of the install leaf */
};

static void
x509_job_free(struct x509_job *x)
{
	if (x == NULL)
		return;
	X509_free(x->ca);
	EVP_PKEY_free(x->pub);
	free(x->chain);
	free(x->tbs);
	free(x->der);
	json_decref(x->detail);
	free(x);
}

/* The PEM certificates of a stored chain (first, the CA certificate der
 * itself when not NULL) into a new JSON array. */
static json_t *
pem_array(
    const uint8_t *der, size_t derlen, const uint8_t *chain, size_t chainlen)
{
	const uint8_t *p = chain, *start;
	json_t *arr = json_array();
	X509 *x;
	char *pem;

	if (arr == NULL)
		return NULL;
	if (der != NULL) {
		if ((pem = cert_pem("CERTIFICATE", der, derlen)) == NULL ||
		    json_array_append_new(arr, json_string(pem)) != 0) {
			free(pem);
			goto fail;
		}
		free(pem);
	}
	while (p != NULL &&
	       (start = p, cert_next_der(&p, chain + chainlen, &x)) == 0) {
		X509_free(x);
		if ((pem = cert_pem(
			 "CERTIFICATE", start, (size_t)(p - start))) == NULL ||
		    json_array_append_new(arr, json_string(pem)) != 0) {
			free(pem);
			goto fail;
		}
		free(pem);
	}
	return arr;
fail:
	json_decref(arr);
	return NULL;
}

/* {"certificate": PEM, "chain": [PEM of its issuers]}, with key and
 * log_index when given (log_index < 0: none). */
static json_t *
ca_json(const char *key, const uint8_t *der, size_t derlen,
    const uint8_t *chain, size_t chainlen, int64_t log_index)
{
	json_t *arr = pem_array(der, derlen, chain, chainlen), *o = NULL,
	       *first;

	if (arr == NULL || (first = json_array_get(arr, 0)) == NULL ||
	    (o = json_pack("{s:s, s:O}", "key", key, "certificate", first)) ==
		NULL ||
	    json_array_remove(arr, 0) != 0 ||
	    json_object_set(o, "chain", arr) != 0 ||
	    (log_index >= 0 && json_object_set_new(o, "log_index",
				   json_integer((json_int_t)log_index)) != 0)) {
		json_decref(o);
		o = NULL;
	}
	json_decref(arr);
	return o;
}

/* The CA certificate of key k and its chain, from the store. */
static int
ca_load(struct call *c, const struct store_key *k, X509 **cap, uint8_t **chainp,
    size_t *chainlenp)
{
	struct store *st;
	uint8_t *der = NULL;
	const uint8_t *p;
	size_t derlen = 0;
	int r;

	if ((st = loop_store(c)) == NULL)
		return CUSTODY_E_STORE;
	if ((r = store_ca_get(st, k->id, &der, &derlen, chainp, chainlenp)) !=
	    0)
		return r;
	p = der;
	if ((*cap = d2i_X509(NULL, &p, (long)derlen)) == NULL) {
		ERR_clear_error();
		free(*chainp);
		*chainp = NULL;
		r = CUSTODY_E_PARSE;
	}
	free(der);
	return r;
}

/* The key's own public key. */
static EVP_PKEY *
key_pub(const struct store_key *k)
{
	const uint8_t *p = k->spki;
	EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)k->spki_len);

	if (pk == NULL)
		ERR_clear_error();
	return pk;
}

/* A signature the token did not make (or that failed verification): the
 * outcome leaf completes the decision, and the answer is 503. */
static void
outcome_error(struct call *c, const char *error)
{
	struct api *a = c->lp->api;
	json_t *o;

	o = json_pack("{s:s, s:s, s:{s:I, s:s, s:s}}", "event", "outcome",
	    "principal", c->principal, "detail", "decision_seq",
	    (json_int_t)c->seq, "result", "error", "error", error);
	if (o != NULL)
		(void)audit_append_async(
		    a->audit, o, NULL, NULL, flushed, NULL);
	json_decref(o);
}

static void
sign_failed(struct call *c, int r, const char *what)
{
	atomic_fetch_add(&c->lp->api->m.sign_failures, 1);
	log_error_fr(r, "%s for leaf %llu (key %s) not signed", what,
	    (unsigned long long)c->seq, c->key->rec->id);
	outcome_error(c, custody_strerror(r));
	if (r == CUSTODY_E_STATE)
		problem(c, 409, "conflict", NULL,
		    "key %s was retired or destroyed before it signed; the "
		    "decision is leaf %llu",
		    c->key->rec->id, (unsigned long long)c->seq);
	else
		problem(c, 503, "sign-failed", NULL,
		    "the token did not sign (%s); the decision is leaf %llu",
		    custody_strerror(r), (unsigned long long)c->seq);
}

static void
x509_sign(struct call *c)
{
	struct api *a = c->lp->api;
	struct x509_job *x = c->x509;
	uint8_t *sig = NULL, *der = NULL;
	size_t siglen = 0, derlen = 0;
	enum custody_alg alg;
	char exp[32], *pem = NULL, why[256];
	json_t *chain;
	int r;

	if ((r = alg_from_name(c->key->rec->alg, &alg)) != 0 ||
	    (r = keyring_sign(
		 a->kr, c->key, x->tbs, x->tbslen, &sig, &siglen)) != 0 ||
	    (r = cert_finish(x->tbs, x->tbslen, alg, sig, siglen,
		 X509_get0_pubkey(x->ca), &der, &derlen)) != 0) {
		sign_failed(c, r, "certificate");
		goto out;
	}
	/* under an external CA, whose constraints custody did not write: the
	 * certificate must verify as a relying party would check it */
	if (x->chainlen > 0 &&
	    (r = cert_path_verify(der, derlen, x->ca, x->chain, x->chainlen,
		 why, sizeof(why))) != 0) {
		log_error_f("certificate of leaf %llu (key %s) withheld: %s",
		    (unsigned long long)c->seq, c->key->rec->id, why);
		outcome_error(c, why);
		problem(c, 503, "withheld", NULL,
		    "signed, but withheld: %s; the decision is leaf %llu", why,
		    (unsigned long long)c->seq);
		goto out;
	}
	atomic_fetch_add(&a->m.issued_x509[alg], 1);
	util_format_time(x->not_after, exp, sizeof(exp));
	if ((pem = cert_pem("CERTIFICATE", der, derlen)) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto out;
	}
	{
		uint8_t *cader = NULL;
		int n = i2d_X509(x->ca, &cader);

		chain = n > 0
			    ? pem_array(cader, (size_t)n, x->chain, x->chainlen)
			    : NULL;
		OPENSSL_free(cader);
	}
	if (chain == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto out;
	}
	set_json(c, 200,
	    json_pack("{s:s, s:o, s:s, s:s, s:I}", "certificate", pem, "chain",
		chain, "serial", x->serial, "expires_at", exp, "log_index",
		(json_int_t)c->seq));
out:
	free(pem);
	free(der);
	free(sig);
}

static void
handle_x509(struct call *c)
{
	struct api *a = c->lp->api;
	struct credential_x509_req *q = NULL;
	struct cert_csr *csr = NULL;
	struct policy_request pq;
	struct policy_decision d;
	struct policy_key pk;
	struct cert_leaf leaf;
	const struct store_key *k;
	const uint8_t *body;
	X509 *cert = NULL;
	uint8_t tbs_sha[32];
	char err[320], na[32], hex[65];
	enum custody_alg alg;
	int64_t now, ttl;
	unsigned ku;
	size_t len;
	json_t *detail;
	int r;

	if ((body = json_body(c, &len)) == NULL)
		goto answer;
	if ((r = credential_x509_parse(
		 body, len, CERT_CSR_MAX, &q, err, sizeof(err))) != 0) {
		if (r == CUSTODY_E_NOMEM)
			problem(c, 503, "unavailable", NULL, "out of memory");
		else if (r == CUSTODY_E_TOO_LARGE)
			problem(c, 413, "too-large", NULL, "%s", err);
		else
			problem(c, 400, "bad-request", NULL, "%s", err);
		goto answer;
	}
	if ((k = credential_key(c, q->key, q->agent, "x509-ca",
		 "credential.x509", q->request_sha256,
		 "issues a certificate")) == NULL)
		goto out;
	/* the CSR before the policy: the policy decides on its key type */
	if ((r = cert_csr_parse((const uint8_t *)q->csr, q->csrlen, k->agent,
		 &csr, err, sizeof(err))) != 0) {
		if (r == CUSTODY_E_NOMEM) {
			problem(c, 503, "unavailable", NULL, "out of memory");
			goto answer;
		}
		refuse_as(c, 400, "bad-csr", "credential.x509", k,
		    q->request_sha256, "(csr)", "the CSR is refused: %s", err);
		goto out;
	}
	now = util_now();
	keys_policy_key(k, &pk);
	memset(&pq, 0, sizeof(pq));
	pq.principal = c->principal;
	pq.action = POLICY_CREDENTIAL_X509;
	pq.key = &pk;
	pq.now_ms = util_now_ms();
	pq.ttl = q->ttl;
	pq.csr_key = csr->key_type;
	decide(c, &pq, &d);
	if (!d.allow) {
		refuse_decision(c, "credential.x509", k, q->request_sha256, &d);
		goto out;
	}
	if (credential_ttl(c, k, d.ttl, now, "credential.x509",
		q->request_sha256, &ttl) != 0)
		goto out;
	if ((c->x509 = calloc(1, sizeof(*c->x509))) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto answer;
	}
	c->x509->kind = X_ISSUE;
	if (loop_store(c) == NULL)
		goto answer; /* answered: the store cannot be read */
	if ((r = ca_load(c, k, &c->x509->ca, &c->x509->chain,
		 &c->x509->chainlen)) != 0) {
		if (r != CUSTODY_E_NOT_FOUND && r != CUSTODY_E_PARSE) {
			problem(c, 503, "unavailable", NULL,
			    "the CA certificate of key %s cannot be read "
			    "(%s)",
			    k->id, custody_strerror(r));
			goto answer;
		}
		refuse(c, 409, "credential.x509", k, q->request_sha256, "(ca)",
		    r == CUSTODY_E_NOT_FOUND
			? "key %s has no CA certificate yet (custody ca init "
			  "or ca import)"
			: "the CA certificate of key %s does not parse",
		    k->id);
		goto out;
	}
	leaf = (struct cert_leaf){k->agent, now, ttl, d.eku, d.key_usage};
	if ((r = cert_leaf_check(
		 &leaf, csr, c->x509->ca, &ku, err, sizeof(err))) != 0 ||
	    (r = cert_chain_names(k->agent, c->x509->chain, c->x509->chainlen,
		 err, sizeof(err))) != 0) {
		if (r == CUSTODY_E_INVALID_ARG)
			refuse_as(c, 400, "bad-csr", "credential.x509", k,
			    q->request_sha256, "(csr)",
			    "the CSR is refused: %s", err);
		else if (r == CUSTODY_E_STATE)
			refuse(c, 409, "credential.x509", k, q->request_sha256,
			    "(ca)", "%s", err);
		else {
			problem(c, 503, "unavailable", NULL, "%s",
			    custody_strerror(r));
			send_answer(c);
		}
		goto out;
	}
	if ((r = alg_from_name(k->alg, &alg)) != 0 ||
	    (r = cert_leaf_tbs(&leaf, csr, c->x509->ca, alg, &cert,
		 &c->x509->tbs, &c->x509->tbslen)) != 0) {
		if (r == CUSTODY_E_STATE) {
			refuse(c, 409, "credential.x509", k, q->request_sha256,
			    "(ca)",
			    "the CA certificate of key %s is not valid now",
			    k->id);
			goto out;
		}
		problem(c, 500, "internal", NULL,
		    "the certificate could not be built (%s)",
		    custody_strerror(r));
		goto answer;
	}
	if ((r = cert_serial_hex(
		 cert, c->x509->serial, sizeof(c->x509->serial))) != 0 ||
	    (r = cert_validity(cert, NULL, &c->x509->not_after)) != 0 ||
	    !EVP_Digest(c->x509->tbs, c->x509->tbslen, tbs_sha, NULL,
		EVP_sha256(), NULL)) {
		problem(c, 500, "internal", NULL,
		    "the certificate could not be built");
		goto answer;
	}
	util_format_time(c->x509->not_after, na, sizeof(na));
	hex32(csr->sha256, hex);
	detail = json_pack("{s:s, s:s, s:[s], s:s, s:s, s:s}", "serial",
	    c->x509->serial, "subject", "", "sans", k->agent, "not_after", na,
	    "csr_sha256", hex, "csr_key", csr->key_type);
	atomic_fetch_add(&a->m.decisions[1], 1);
	c->work = x509_sign;
	if (keyring_note_exp(c->key, c->x509->not_after))
		c->exp_note = c->x509->not_after;
	log_then(c, decision_leaf(c, "credential.x509", k, q->request_sha256,
			tbs_sha, 1, NULL, detail));
	goto out;
answer:
	send_answer(c);
out:
	X509_free(cert);
	cert_csr_free(csr);
	credential_x509_req_free(q);
}

/* ---- the CA certificate of an x509-ca key: /v1/keys/ID/ca ---------------- */

/* Store the CA certificate with its install leaf (writer thread). */
static int
ca_put_op(struct store *st, void *arg)
{
	struct x509_job *x = arg;

	return store_ca_put(st, x->key_id, x->der, x->derlen, x->chain,
	    x->chainlen, util_now());
}

/* The ca.install leaf of x's certificate: the store changes with it. */
static json_t *
install_leaf(struct call *c, const struct store_key *k,
    const uint8_t *request_sha256, X509 *cert, const uint8_t *der,
    size_t derlen, int self_signed, size_t nchain)
{
	char serial[80], na[32], hex[65], *subject = NULL, *issuer = NULL;
	uint8_t h[32];
	int64_t until = 0;
	json_t *o;

	if (cert_serial_hex(cert, serial, sizeof(serial)) != 0 ||
	    cert_validity(cert, NULL, &until) != 0 ||
	    !EVP_Digest(der, derlen, h, NULL, EVP_sha256(), NULL) ||
	    (subject = X509_NAME_oneline(
		 X509_get_subject_name(cert), NULL, 0)) == NULL ||
	    (issuer = X509_NAME_oneline(X509_get_issuer_name(cert), NULL, 0)) ==
		NULL) {
		OPENSSL_free(subject);
		ERR_clear_error();
		return NULL;
	}
	util_format_time(until, na, sizeof(na));
	hex32(h, hex);
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I}", "cert_sha256", hex,
	    "serial", serial, "subject", subject, "issuer", issuer, "not_after",
	    na, "self_signed", self_signed, "chain_length", (json_int_t)nchain);
	OPENSSL_free(subject);
	OPENSSL_free(issuer);
	return decision_leaf(
	    c, "ca.install", k, request_sha256, NULL, 1, NULL, o);
}

static void
ca_self_work(struct call *c)
{
	struct api *a = c->lp->api;
	struct x509_job *x = c->x509;
	uint8_t *sig = NULL;
	const uint8_t *p;
	size_t siglen = 0;
	enum custody_alg alg;
	X509 *cert = NULL;
	json_t *leaf = NULL;
	uint64_t seq = 0;
	int r;

	if ((r = alg_from_name(c->key->rec->alg, &alg)) != 0 ||
	    (r = keyring_sign(
		 a->kr, c->key, x->tbs, x->tbslen, &sig, &siglen)) != 0 ||
	    (r = cert_finish(x->tbs, x->tbslen, alg, sig, siglen, x->pub,
		 &x->der, &x->derlen)) != 0) {
		sign_failed(c, r, "CA certificate");
		goto out;
	}
	p = x->der;
	if ((cert = d2i_X509(NULL, &p, (long)x->derlen)) == NULL ||
	    (leaf = install_leaf(c, c->key->rec, NULL, cert, x->der, x->derlen,
		 1, 0)) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto out;
	}
	/* the certificate is the key's once its leaf is durable */
	if ((r = audit_append(
		 a->audit, leaf, ca_put_op, x, &seq, NULL, NULL)) != 0) {
		problem(c, 503,
		    r == CUSTODY_E_LOG_FAILED ? "log-failed" : "unavailable",
		    NULL,
		    "the CA certificate was signed (leaf %llu) but not "
		    "installed: %s",
		    (unsigned long long)c->seq, custody_strerror(r));
		goto out;
	}
	set_json(c, 201,
	    ca_json(c->key->rec->id, x->der, x->derlen, NULL, 0, (int64_t)seq));
out:
	json_decref(leaf);
	X509_free(cert);
	free(sig);
}

static void
ca_csr_work(struct call *c)
{
	struct api *a = c->lp->api;
	struct x509_job *x = c->x509;
	uint8_t *sig = NULL, *der = NULL;
	size_t siglen = 0, derlen = 0;
	enum custody_alg alg;
	char *pem = NULL;
	int r;

	if ((r = alg_from_name(c->key->rec->alg, &alg)) != 0 ||
	    (r = keyring_sign(
		 a->kr, c->key, x->tbs, x->tbslen, &sig, &siglen)) != 0 ||
	    (r = cert_csr_finish(x->tbs, x->tbslen, alg, sig, siglen, x->pub,
		 &der, &derlen)) != 0) {
		sign_failed(c, r, "CSR");
		goto out;
	}
	if ((pem = cert_pem("CERTIFICATE REQUEST", der, derlen)) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto out;
	}
	set_json(c, 200,
	    json_pack("{s:s, s:s, s:I}", "key", c->key->rec->id, "csr", pem,
		"log_index", (json_int_t)c->seq));
out:
	free(pem);
	free(der);
	free(sig);
}

/*
 * The common part of the CA calls: the key (active, x509-ca: else a deny
 * leaf of event) and the policy's ca.manage. Returns the key, or NULL when
 * c is answered (or being answered).
 */
static const struct store_key *
ca_manage_key(struct call *c, const char *id, const char *event,
    const uint8_t *request_sha256)
{
	struct api *a = c->lp->api;
	struct policy_request pq;
	struct policy_decision d;
	struct policy_key pk;
	const struct store_key *k;

	if (keyring_get(a->kr, id, &c->key) != 0) {
		problem(c, 404, "not-found", NULL, "no key %.64s", id);
		send_answer(c);
		return NULL;
	}
	k = c->key->rec;
	if (strcmp(k->purpose, "x509-ca") != 0) {
		refuse(c, 403, event, k, request_sha256, "(purpose)",
		    "key %s is a %s key: it has no CA certificate", k->id,
		    k->purpose);
		return NULL;
	}
	if (strcmp(k->state, "active") != 0) {
		refuse(c, 409, event, k, request_sha256, "(state)",
		    "key %s is %s: it signs nothing more", k->id, k->state);
		return NULL;
	}
	keys_policy_key(k, &pk);
	memset(&pq, 0, sizeof(pq));
	pq.principal = c->principal;
	pq.action = POLICY_CA_MANAGE;
	pq.key = &pk;
	pq.now_ms = util_now_ms();
	decide(c, &pq, &d);
	if (!d.allow) {
		refuse_decision(c, event, k, request_sha256, &d);
		return NULL;
	}
	return k;
}

/* {"subject": ..., "ttl": ...} of a CA call, each optional, nothing else. */
static int
ca_body(struct call *c, int with_ttl, uint8_t sha[32], X509_NAME **namep,
    int64_t *ttlp)
{
	const uint8_t *body;
	json_error_t je;
	json_t *o = NULL, *v;
	const char *key, *subject = NULL;
	char why[256];
	size_t len;
	int r = -1;

	if ((body = json_body(c, &len)) == NULL)
		return -1;
	if (!EVP_Digest(body, len, sha, NULL, EVP_sha256(), NULL)) {
		problem(c, 500, "internal", NULL, "SHA-256 failed");
		return -1;
	}
	if (len == 0)
		o = json_object();
	else if ((o = json_loadb((const char *)body, len,
		      JSON_REJECT_DUPLICATES, &je)) == NULL ||
		 !json_is_object(o)) {
		problem(c, 400, "bad-request", NULL,
		    "the body must be a JSON object%s%s", o ? "" : ": ",
		    o ? "" : je.text);
		goto out;
	}
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "subject") == 0 && json_is_string(v))
			subject = json_string_value(v);
		else if (with_ttl && strcmp(key, "ttl") == 0) {
			if (!json_is_integer(v) ||
			    json_integer_value(v) < 3600 ||
			    json_integer_value(v) > CA_TTL_MAX) {
				problem(c, 400, "bad-request", NULL,
				    "ttl must be a number of seconds from "
				    "3600 (1 hour) to %d (20 years)",
				    CA_TTL_MAX);
				goto out;
			}
			*ttlp = (int64_t)json_integer_value(v);
		} else {
			problem(c, 400, "bad-request", NULL,
			    "%s'%.64s': the members are subject (a string)%s",
			    strcmp(key, "subject") == 0 ? ""
							: "unknown member ",
			    key,
			    with_ttl ? " and ttl (seconds, 3600 to 20 years)"
				     : "");
			goto out;
		}
	}
	if (subject == NULL) {
		char def[64];

		snprintf(def, sizeof(def), "CN=custody CA %s",
		    c->key != NULL ? c->key->rec->id : "");
		r = cert_name_parse(def, namep, why, sizeof(why));
	} else
		r = cert_name_parse(subject, namep, why, sizeof(why));
	if (r != 0) {
		problem(c, 400, "bad-request", NULL, "subject: %s", why);
		r = -1;
	}
out:
	json_decref(o);
	return r;
}

/* POST /v1/keys/ID/ca/self-signed and POST /v1/keys/ID/ca/csr */
static void
handle_ca_make(struct call *c, const char *id, int self)
{
	const char *event = self ? "ca.init" : "ca.csr";
	const struct store_key *k;
	struct x509_job *x;
	X509_NAME *name = NULL;
	uint8_t sha[32], tbs_sha[32];
	enum custody_alg alg;
	int64_t now = util_now(), ttl = CA_TTL_DEFAULT, left;
	json_t *detail;
	int r;

	/* the key first, for the default subject; its checks after the body */
	if (keyring_get(c->lp->api->kr, id, &c->key) != 0) {
		problem(c, 404, "not-found", NULL, "no key %.64s", id);
		goto answer;
	}
	if (ca_body(c, self, sha, &name, &ttl) != 0)
		goto answer;
	keyring_put(c->key);
	c->key = NULL;
	if ((k = ca_manage_key(c, id, event, sha)) == NULL)
		goto out;
	if (k->ttl > 0 && (left = k->created_at + k->ttl - now) < ttl) {
		if (left <= 0) {
			refuse(c, 409, event, k, sha, "(state)",
			    "key %s reached the end of its ttl: it signs "
			    "nothing more",
			    k->id);
			goto out;
		}
		ttl = left;
	}
	if ((x = c->x509 = calloc(1, sizeof(*x))) == NULL ||
	    (x->pub = key_pub(k)) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto answer;
	}
	x->kind = self ? X_CA_SELF : X_CA_CSR;
	snprintf(x->key_id, sizeof(x->key_id), "%s", k->id);
	if ((r = alg_from_name(k->alg, &alg)) != 0 ||
	    (r = self ? cert_ca_tbs(
			    name, now, ttl, x->pub, alg, &x->tbs, &x->tbslen)
		      : cert_csr_tbs(name, x->pub, &x->tbs, &x->tbslen)) != 0 ||
	    !EVP_Digest(x->tbs, x->tbslen, tbs_sha, NULL, EVP_sha256(), NULL)) {
		problem(c, 500, "internal", NULL, "the %s could not be built",
		    self ? "certificate" : "request");
		goto answer;
	}
	{
		char *subject = X509_NAME_oneline(name, NULL, 0);

		detail =
		    self
			? json_pack("{s:s, s:I}", "subject",
			      subject ? subject : "", "ttl", (json_int_t)ttl)
			: json_pack("{s:s}", "subject", subject ? subject : "");
		OPENSSL_free(subject);
	}
	atomic_fetch_add(&c->lp->api->m.decisions[1], 1);
	c->work = self ? ca_self_work : ca_csr_work;
	log_then(c, decision_leaf(c, event, k, sha, tbs_sha, 1, NULL, detail));
	goto out;
answer:
	send_answer(c);
out:
	X509_NAME_free(name);
}

/* The install leaf of an import is durable: answer (writer thread). */
static void
ca_installed(void *arg, int r, uint64_t seq)
{
	struct call *c = arg;
	struct api *a = c->lp->api;
	struct x509_job *x = c->x509;

	if (r == CUSTODY_E_LOG_FAILED)
		problem(c, 503, "log-failed", NULL,
		    "the audit log could not record the CA certificate: it "
		    "was not installed");
	else if (r != 0)
		problem(c, 503, "unavailable", NULL,
		    "the CA certificate was not installed (%s)",
		    custody_strerror(r));
	else
		set_json(c, 201,
		    ca_json(x->key_id, x->der, x->derlen, x->chain, x->chainlen,
			(int64_t)seq));
	atomic_fetch_sub(&a->pipeline, 1);
	post_answer(c);
}

/* PUT /v1/keys/ID/ca {"certificates": PEM}: an external CA's answer. */
static void
handle_ca_import(struct call *c, const char *id)
{
	struct api *a = c->lp->api;
	const struct store_key *k;
	STACK_OF(X509) *certs = NULL;
	struct x509_job *x;
	const uint8_t *body;
	EVP_PKEY *pub = NULL;
	json_error_t je;
	json_t *o = NULL, *v, *leaf;
	uint8_t sha[32], *d = NULL;
	char why[256];
	size_t len, off;
	int r, i, n, dl;

	if ((body = json_body(c, &len)) == NULL)
		goto answer;
	if (!EVP_Digest(body, len, sha, NULL, EVP_sha256(), NULL)) {
		problem(c, 500, "internal", NULL, "SHA-256 failed");
		goto answer;
	}
	if ((o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
		 &je)) == NULL ||
	    !json_is_object(o) || json_object_size(o) != 1 ||
	    !json_is_string(v = json_object_get(o, "certificates"))) {
		problem(c, 400, "bad-request", NULL,
		    "the body must be {\"certificates\": PEM}: the external "
		    "CA's certificate for this key, then its issuers");
		goto answer;
	}
	if ((k = ca_manage_key(c, id, "ca.install", sha)) == NULL)
		goto out;
	if ((pub = key_pub(k)) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto answer;
	}
	r = cert_ca_check((const uint8_t *)json_string_value(v),
	    json_string_length(v), pub, util_now(), &certs, why, sizeof(why));
	if (r == CUSTODY_E_NOMEM) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto answer;
	}
	if (r != 0) {
		refuse_as(c, 400, "bad-certificate", "ca.install", k, sha,
		    "(certificate)", "the certificates are refused: %s", why);
		goto out;
	}
	if ((x = c->x509 = calloc(1, sizeof(*x))) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto answer;
	}
	x->kind = X_CA_IMPORT;
	snprintf(x->key_id, sizeof(x->key_id), "%s", k->id);
	n = sk_X509_num(certs);
	/* the certificate, then its issuers one after the other, in DER */
	for (i = 0; i < n; i++) {
		d = NULL;
		if ((dl = i2d_X509(sk_X509_value(certs, i), &d)) <= 0) {
			problem(c, 503, "unavailable", NULL, "out of memory");
			goto answer;
		}
		if (i == 0) {
			x->der = malloc((size_t)dl);
			x->derlen = (size_t)dl;
			if (x->der != NULL)
				memcpy(x->der, d, (size_t)dl);
		} else {
			uint8_t *nc =
			    realloc(x->chain, x->chainlen + (size_t)dl);

			if (nc != NULL) {
				off = x->chainlen;
				memcpy(nc + off, d, (size_t)dl);
				x->chain = nc;
				x->chainlen += (size_t)dl;
			} else {
				OPENSSL_free(d);
				d = NULL;
				problem(c, 503, "unavailable", NULL,
				    "out of memory");
				goto answer;
			}
		}
		OPENSSL_free(d);
		d = NULL;
		if (x->der == NULL) {
			problem(c, 503, "unavailable", NULL, "out of memory");
			goto answer;
		}
	}
	if ((leaf = install_leaf(c, k, sha, sk_X509_value(certs, 0), x->der,
		 x->derlen, 0, (size_t)n - 1)) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto answer;
	}
	atomic_fetch_add(&a->m.decisions[1], 1);
	atomic_fetch_add(&a->pipeline, 1);
	r = audit_append_async(a->audit, leaf, ca_put_op, x, ca_installed, c);
	json_decref(leaf);
	if (r != 0) {
		atomic_fetch_sub(&a->pipeline, 1);
		problem(c, 503, "log-failed", NULL,
		    "the audit log refuses to record (%s): nothing is "
		    "installed until custodyd is restarted",
		    custody_strerror(r));
		goto answer;
	}
	goto out;
answer:
	send_answer(c);
out:
	EVP_PKEY_free(pub);
	sk_X509_pop_free(certs, X509_free);
	json_decref(o);
}

/* GET /v1/keys/ID/ca: the key's CA certificate and its issuers. */
static void
handle_ca_show(struct call *c, const char *id)
{
	struct store_key *k;
	struct store *st;
	uint8_t *der = NULL, *chain = NULL;
	size_t derlen = 0, chainlen = 0;
	json_t *o;
	int r;

	if ((k = readable_key(c, id, &st)) == NULL)
		return;
	if ((r = store_ca_get(st, id, &der, &derlen, &chain, &chainlen)) ==
	    CUSTODY_E_NOT_FOUND) {
		problem(c, 404, "not-found", NULL,
		    "key %s has no CA certificate", k->id);
		goto answer;
	}
	if (r != 0 ||
	    (o = ca_json(k->id, der, derlen, chain, chainlen, -1)) == NULL) {
		problem(c, 503, "unavailable", NULL,
		    "the CA certificate cannot be read (%s)",
		    custody_strerror(r));
		goto answer;
	}
	set_json(c, 200, o);
answer:
	send_answer(c);
	free(der);
	free(chain);
	store_key_free(k);
}
/* ---- the lifecycle: rotate, destroy, events, attestations --------------- */

/* Queue c for the lifecycle thread (one step at a time, off the loops and
 * the signers: a key generation or a destruction takes milliseconds to
 * seconds). */
static void
lc_submit(struct call *c)
{
	struct api *a = c->lp->api;

	c->work = NULL;
	atomic_fetch_add(&a->pipeline, 1);
	pthread_mutex_lock(&a->lmu);
	c->next = NULL;
	if (a->ltail != NULL)
		a->ltail->next = c;
	else
		a->lhead = c;
	a->ltail = c;
	pthread_cond_signal(&a->lcv);
	pthread_mutex_unlock(&a->lmu);
}

/* The keys_env of the lifecycle thread acting for c (principal, rule and
 * policy as decided); st is the thread's store. */
static struct keys_env
lc_env(struct call *c, struct store *st)
{
	struct api *a = c->lp->api;

	return (struct keys_env){a->tok, st, a->audit, c->principal, c->rule,
	    c->policy_hex[0] ? c->policy_hex : NULL};
}

/* A lifecycle step's error as an answer. */
static void
lc_failed(struct call *c, int r, const char *what)
{
	switch (r) {
	case CUSTODY_E_KEY_NOT_FOUND:
		problem(c, 404, "not-found", NULL, "no key %s", c->key_id);
		break;
	case CUSTODY_E_STATE:
		problem(c, 409, "conflict", NULL,
		    "key %s cannot be %s in its state (or a step of its "
		    "lifecycle is under way)",
		    c->key_id, what);
		break;
	case CUSTODY_E_INVALID_ARG:
		problem(c, 400, "bad-request", NULL, "the request is invalid");
		break;
	case CUSTODY_E_LOG_FAILED:
		problem(c, 503, "log-failed", NULL,
		    "the audit log has failed: nothing changes until custodyd "
		    "is restarted");
		break;
	default:
		problem(c, 503, "unavailable", NULL, "key %s was not %s (%s)",
		    c->key_id, what, custody_strerror(r));
	}
}

static json_t *
lc_answer(const struct lc_result *res)
{
	json_t *o =
	    json_pack("{s:s, s:I, s:b}", "key", res->key_id, "log_index",
		(json_int_t)res->decision_seq, "attested", res->attested);

	if (o == NULL)
		return NULL;
	if (res->new_key_id[0] != '\0')
		json_object_set_new(o, "new_key", json_string(res->new_key_id));
	if (res->attested)
		json_object_set_new(o, "attestation_log_index",
		    json_integer((json_int_t)res->attestation_seq));
	return o;
}

static void
lc_step_work(struct call *c, struct store *st)
{
	struct api *a = c->lp->api;
	struct keys_env env = lc_env(c, st);
	struct lc_result res;
	const char *reason =
	    json_string_value(json_object_get(c->args, "reason"));
	json_t *o;
	int rotate = c->rotate;
	int r;

	r = rotate ? lifecycle_rotate(a->lc, &env, c->key_id, "manual", reason,
			 NULL, util_now(), &res)
		   : lifecycle_destroy(a->lc, &env, c->key_id, "manual", reason,
			 util_now(), &res);
	if (r != 0) {
		lc_failed(c, r, rotate ? "rotated" : "destroyed");
		return;
	}
	atomic_fetch_add(&a->m.decisions[1], 1);
	o = lc_answer(&res);
	if (o != NULL && !rotate)
		json_object_set_new(o, "evidence",
		    json_pack("{s:I, s:I}", "objects_destroyed",
			(json_int_t)res.ev.destroyed, "objects_found_after",
			(json_int_t)res.ev.remaining));
	set_json(c, 200, o);
}

static void
lc_event_work(struct call *c, struct store *st)
{
	struct api *a = c->lp->api;
	struct keys_env env = lc_env(c, st);
	struct policy *p = service_policy(a->sv);
	struct lc_event ev;
	json_t *result = NULL;
	char msg[320];
	int r, status = 500;

	memset(&ev, 0, sizeof(ev));
#define ARG(name) json_string_value(json_object_get(c->args, name))
	ev.id = ARG("id");
	ev.type = ARG("type");
	ev.agent = ARG("agent");
	ev.owner = ARG("owner");
	ev.task = ARG("task");
	ev.key = ARG("key");
	ev.new_owner = ARG("new_owner");
#undef ARG
	memcpy(ev.request_sha256, c->body_sha256, 32);
	if (p != NULL)
		hex32(policy_sha256(p), c->policy_hex);
	env.policy_sha256 = p != NULL ? c->policy_hex : NULL;
	r = lifecycle_event(a->lc, &env, p, &ev, util_now(), &result, &status,
	    msg, sizeof(msg));
	policy_free(p);
	if (r == 0) {
		atomic_fetch_add(&a->m.decisions[1], 1);
		set_json(c, 200, result);
		return;
	}
	if (status == 403 || status == 429 || status == 409 || status == 400) {
		if (status == 403)
			atomic_fetch_add(&a->m.decisions[0], 1);
		problem(c, status,
		    status == 403   ? "forbidden"
		    : status == 429 ? "rate-limited"
		    : status == 409 ? "conflict"
				    : "bad-request",
		    NULL, "%s", msg[0] ? msg : custody_strerror(r));
		return;
	}
	lc_failed(c, r, "acted on");
}

/* The lifecycle thread: queued requests, and the scheduler every second. */
static void *
lc_main(void *arg)
{
	struct api *a = arg;
	struct store *st = NULL;
	struct keys_env env;
	struct policy *p;
	struct timespec ts;
	struct call *c;
	int64_t last = 0;
	int r;

	if ((r = store_open(service_store_path(a->sv), &st)) != 0)
		log_error_fr(r, "lifecycle: the store cannot be opened: no "
				"scheduler and no lifecycle requests");
	for (;;) {
		pthread_mutex_lock(&a->lmu);
		while (a->lhead == NULL && !a->lstop) {
			clock_gettime(CLOCK_REALTIME, &ts);
			if (util_now() - last < 1) {
				ts.tv_sec += 1;
				if (pthread_cond_timedwait(
					&a->lcv, &a->lmu, &ts) != ETIMEDOUT)
					continue;
			}
			break;
		}
		if ((c = a->lhead) != NULL && (a->lhead = c->next) == NULL)
			a->ltail = NULL;
		if (c == NULL && a->lstop) {
			pthread_mutex_unlock(&a->lmu);
			break;
		}
		pthread_mutex_unlock(&a->lmu);
		if (c != NULL) {
			if (st == NULL)
				problem(c, 503, "unavailable", NULL,
				    "the lifecycle has no store");
			else if (c->route == R_EVENTS)
				lc_event_work(c, st);
			else
				lc_step_work(c, st);
			atomic_fetch_sub(&a->pipeline, 1);
			post_answer(c);
			continue;
		}
		last = util_now();
		if (st == NULL || audit_failed(a->audit))
			continue;
		env = (struct keys_env){a->tok, st, a->audit,
		    LC_PRINCIPAL_SCHEDULER, "(scheduler)", NULL};
		p = service_policy(a->sv);
		(void)lifecycle_tick(a->lc, &env, p, last, NULL);
		policy_free(p);
	}
	store_close(st);
	return NULL;
}

/* The JSON object body of c, or NULL (answered). */
static json_t *
object_body(struct call *c, uint8_t sha[32])
{
	const uint8_t *body;
	json_error_t je;
	json_t *o;
	size_t len;

	if ((body = json_body(c, &len)) == NULL)
		return NULL;
	if (sha != NULL)
		SHA256(body, len, sha);
	if ((o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
		 &je)) == NULL) {
		problem(c, 400, "bad-request", NULL,
		    "the body is not valid JSON: %s", je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		problem(c, 400, "bad-request", NULL,
		    "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* Are the members of o among names[] and all strings? A message if not. */
static int
only_strings(struct call *c, json_t *o, const char *const *names)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(o, k, v)
	{
		for (i = 0; names[i] != NULL; i++)
			if (strcmp(k, names[i]) == 0)
				break;
		if (names[i] == NULL) {
			problem(c, 400, "bad-request", NULL,
			    "unknown member '%.64s'", k);
			return 0;
		}
		if (!json_is_string(v)) {
			problem(c, 400, "bad-request", NULL,
			    "'%s' must be a string", k);
			return 0;
		}
	}
	return 1;
}

/* POST /v1/keys/ID/rotate and /destroy {"reason": "..."} */
static void
handle_key_step(struct call *c, const char *id, int rotate)
{
	static const char *const names[] = {"reason", NULL};
	struct policy_request pq;
	struct policy_decision d;
	struct policy_key pk;
	struct store_key *k = NULL;
	struct store *st;
	const char *reason, *why;
	const char *event = rotate ? "key.rotate" : "key.destroy";
	int r;

	if ((c->args = object_body(c, NULL)) == NULL)
		goto answer;
	if (!only_strings(c, c->args, names))
		goto answer;
	reason = json_string_value(json_object_get(c->args, "reason"));
	if (reason == NULL) {
		problem(c, 400, "bad-request", NULL, "a reason is required");
		goto answer;
	}
	if ((why = util_text_problem(reason, 256)) != NULL) {
		problem(c, 400, "bad-request", NULL, "reason %s", why);
		goto answer;
	}
	if ((st = loop_store(c)) == NULL)
		goto answer;
	if (store_key_id_parse(id, (uint8_t[STORE_CKA_ID_LEN]){0}) != 0 ||
	    (r = store_key_get(st, id, &k)) == CUSTODY_E_KEY_NOT_FOUND) {
		problem(c, 404, "not-found", NULL, "no key %.64s", id);
		goto answer;
	}
	if (r != 0) {
		problem(c, 503, "unavailable", NULL, "the store failed (%s)",
		    custody_strerror(r));
		goto answer;
	}
	snprintf(c->key_id, sizeof(c->key_id), "%s", k->id);
	keys_policy_key(k, &pk);
	memset(&pq, 0, sizeof(pq));
	pq.principal = c->principal;
	pq.action = rotate ? POLICY_KEY_ROTATE : POLICY_KEY_DESTROY;
	pq.key = &pk;
	pq.now_ms = util_now_ms();
	decide(c, &pq, &d);
	if (!d.allow) {
		refuse_decision(c, event, k, NULL, &d);
		goto out;
	}
	if (strcmp(k->state, "destroyed") == 0 ||
	    (rotate && strcmp(k->state, "active") != 0)) {
		refuse(c, 409, event, k, NULL, "(state)",
		    "key %s is %s: it cannot be %s", k->id, k->state,
		    rotate ? "rotated" : "destroyed");
		goto out;
	}
	c->rotate = rotate;
	lc_submit(c);
	goto out;
answer:
	send_answer(c);
out:
	store_key_free(k);
}

/* POST /v1/events */
static void
handle_events(struct call *c)
{
	static const char *const names[] = {
	    "id", "type", "agent", "owner", "task", "key", "new_owner", NULL};

	if ((c->args = object_body(c, c->body_sha256)) == NULL ||
	    !only_strings(c, c->args, names)) {
		send_answer(c);
		return;
	}
	/* the policy decides per key on the lifecycle thread, which knows
	 * which keys the event acts on */
	lc_submit(c);
}

static int audit_readable(struct call *c);

/* GET /v1/attestations?key=ID */
static void
handle_attestations(struct call *c)
{
	struct store_attestation *list = NULL;
	struct evkeyvalq qs;
	struct store *st;
	const char *q, *id = NULL;
	json_t *arr = NULL, *o;
	size_t n = 0, i;
	int r;

	TAILQ_INIT(&qs);
	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(c->req));
	if (q == NULL || evhttp_parse_query_str(q, &qs) != 0 ||
	    (id = evhttp_find_header(&qs, "key")) == NULL ||
	    store_key_id_parse(id, (uint8_t[STORE_CKA_ID_LEN]){0}) != 0) {
		problem(c, 400, "bad-request", NULL,
		    "name the key: ?key=k_ and 16 hex digits");
		goto answer;
	}
	if (!audit_readable(c))
		goto out;
	if ((st = loop_store(c)) == NULL)
		goto answer;
	if ((r = store_attestation_list(st, id, &list, &n)) != 0) {
		problem(c, 503, "unavailable", NULL, "the store failed (%s)",
		    custody_strerror(r));
		goto answer;
	}
	if ((arr = json_array()) == NULL)
		goto answer;
	for (i = 0; i < n; i++) {
		char t[32];

		util_format_time(list[i].created_at, t, sizeof(t));
		o = json_pack("{s:s, s:s, s:I, s:s, s:s%}", "kind",
		    list[i].kind, "key", list[i].key_id, "decision_seq",
		    (json_int_t)list[i].decision_seq, "created_at", t,
		    "envelope", (const char *)list[i].envelope, list[i].len);
		if (o != NULL && list[i].other_key_id[0] != '\0')
			json_object_set_new(o, "previous_key",
			    json_string(list[i].other_key_id));
		json_array_append_new(arr, o);
	}
	set_json(
	    c, 200, json_pack("{s:s, s:o}", "key", id, "attestations", arr));
answer:
	send_answer(c);
out:
	evhttp_clear_headers(&qs);
	store_attestation_list_free(list, n);
}

/* ---- JWKS ----------------------------------------------------------------
 */

static void
handle_jwks(struct call *c)
{
	struct api *a = c->lp->api;
	struct keyring_key **keys = NULL;
	struct policy_decision d;
	int64_t now = util_now();
	size_t n = 0, i;
	json_t *arr;
	int r;

	if ((r = keyring_list(a->kr, "jwt", &keys, &n)) != 0) {
		problem(c, 503, "unavailable", NULL, "%s", custody_strerror(r));
		goto answer;
	}
	/* the keys the principal may read (key.read); the others are left
	 * out, as keys that do not exist would be */
	if ((arr = json_array()) == NULL)
		goto answer;
	for (i = 0; i < n; i++) {
		/* a retired key, until the last JWT it signed expires */
		if (strcmp(keys[i]->rec->state, "active") != 0 &&
		    keyring_last_exp(keys[i]) <= now)
			continue;
		if (keys[i]->jwk != NULL && key_readable(c, keys[i]->rec, &d))
			json_array_append(arr, keys[i]->jwk);
	}
	set_json(c, 200, json_pack("{s:o}", "keys", arr));
answer:
	keyring_list_free(keys, n);
	send_answer(c);
}

/* ---- the log -------------------------------------------------------------
 */

static int
audit_readable(struct call *c)
{
	struct policy_request pq;
	struct policy_decision d;

	memset(&pq, 0, sizeof(pq));
	pq.principal = c->principal;
	pq.action = POLICY_AUDIT_READ;
	pq.now_ms = util_now_ms();
	decide(c, &pq, &d);
	if (!d.allow)
		refuse_decision(c, "audit.read", NULL, NULL, &d);
	return d.allow;
}

/* A decimal uint64 without sign, spaces or leading zeros. */
static int
parse_u64(const char *s, uint64_t *vp)
{
	uint64_t v = 0;
	size_t i;

	if (s == NULL || s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 19)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*vp = v;
	return 0;
}

static void
handle_checkpoint(struct call *c, const char *size_s)
{
	uint8_t root[32];
	uint64_t want = 0, size;
	struct store *st;
	char *note = NULL;
	size_t len;
	int r;

	if (size_s != NULL && (parse_u64(size_s, &want) != 0 || want == 0)) {
		problem(
		    c, 404, "not-found", NULL, "no checkpoint %.32s", size_s);
		goto answer;
	}
	if ((st = loop_store(c)) == NULL)
		goto answer;
	if ((r = proof_checkpoint(st, want, &size, root, &note, &len)) != 0) {
		if (r == CUSTODY_E_NOT_FOUND && want != 0)
			problem(c, 404, "not-found", NULL,
			    "no checkpoint was signed at size %llu",
			    (unsigned long long)want);
		else if (r == CUSTODY_E_NOT_FOUND)
			problem(c, 404, "not-found", NULL,
			    "no checkpoint was signed yet");
		else
			problem(c, 503, "unavailable", NULL,
			    "the store failed (%s)", custody_strerror(r));
		goto answer;
	}
	set_body(c, 200, "text/plain; charset=utf-8", note, len);
answer:
	send_answer(c);
}

static void
handle_tile(struct call *c, const char *path)
{
	struct tiles_tile t;
	uint8_t root[32], *data = NULL;
	uint64_t size;
	struct store *st;
	char *note = NULL;
	size_t len, nlen;
	int r;

	if (tiles_parse_path(path, &t) != 0) {
		problem(c, 404, "not-found", NULL, "no tile %.80s", path);
		goto answer;
	}
	if ((st = loop_store(c)) == NULL)
		goto answer;
	/* tiles of the tree the last checkpoint signed */
	if ((r = proof_checkpoint(st, 0, &size, root, &note, &nlen)) != 0 ||
	    (r = logdir_tile(st, size, &t, &data, &len)) != 0) {
		if (r == CUSTODY_E_NOT_FOUND || r == CUSTODY_E_INVALID_ARG)
			problem(c, 404, "not-found", NULL,
			    "%.80s is not a tile of the last checkpoint", path);
		else
			problem(c, 503, "unavailable", NULL,
			    "the tile cannot be read (%s)",
			    custody_strerror(r));
		goto answer;
	}
	set_body(c, 200, "application/octet-stream", (char *)data, len);
answer:
	free(note);
	send_answer(c);
}

static void
handle_proof(struct call *c, const char *kind)
{
	struct evkeyvalq qs;
	struct proof p;
	struct store *st;
	const char *q, *a_name, *a_s, *size_s;
	uint64_t a = 0, size = 0;
	int r, inclusion = strcmp(kind, "inclusion") == 0;

	memset(&p, 0, sizeof(p));
	TAILQ_INIT(&qs);
	a_name = inclusion ? "index" : "from";
	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(c->req));
	if (q == NULL || evhttp_parse_query_str(q, &qs) != 0 ||
	    (a_s = evhttp_find_header(&qs, a_name)) == NULL ||
	    parse_u64(a_s, &a) != 0 ||
	    ((size_s = evhttp_find_header(&qs, inclusion ? "size" : "to")) !=
		    NULL &&
		(parse_u64(size_s, &size) != 0 || size == 0))) {
		problem(c, 400, "bad-request", NULL, "%s",
		    inclusion ? "give index=N and optionally size=S "
				"(a signed checkpoint's size)"
			      : "give from=M and optionally to=S "
				"(a signed checkpoint's size)");
		goto answer;
	}
	if ((st = loop_store(c)) == NULL)
		goto answer;
	r = inclusion ? proof_inclusion(st, a, size, &p)
		      : proof_consistency(st, a, size, &p);
	if (r == CUSTODY_E_NOT_FOUND && p.note == NULL && size != 0)
		problem(c, 404, "not-found", NULL,
		    "no checkpoint was signed at size %llu",
		    (unsigned long long)size);
	else if (r == CUSTODY_E_NOT_FOUND && p.note == NULL)
		problem(
		    c, 404, "not-found", NULL, "no checkpoint was signed yet");
	else if (r == CUSTODY_E_INVALID_ARG && inclusion)
		problem(c, 400, "bad-request", NULL,
		    "leaf %llu is not in the tree of size %llu",
		    (unsigned long long)a, (unsigned long long)p.size);
	else if (r == CUSTODY_E_INVALID_ARG)
		problem(c, 400, "bad-request", NULL,
		    "from=%llu must be between 1 and %llu",
		    (unsigned long long)a, (unsigned long long)p.size);
	else if (r != 0)
		problem(c, 503, "unavailable", NULL,
		    "the proof cannot be made (%s)", custody_strerror(r));
	else
		set_json(c, 200, proof_json(&p));
answer:
	proof_cleanup(&p);
	evhttp_clear_headers(&qs);
	send_answer(c);
}

/* ---- health and metrics --------------------------------------------------
 */

static void
handle_health(struct call *c)
{
	struct api *a = c->lp->api;
	struct service_checkpoints cp;
	int failed = audit_failed(a->audit);

	service_checkpoints(a->sv, &cp);
	set_json(c, failed ? 503 : 200,
	    json_pack("{s:s, s:s, s:I, s:I, s:I}", "status",
		failed ? "failing" : "ok", "detail",
		failed ? "the audit log failed: nothing is signed until "
			 "custodyd is restarted"
		       : "serving",
		"log_size", (json_int_t)audit_size(a->audit), "checkpoint_size",
		(json_int_t)cp.size, "keys", (json_int_t)keyring_size(a->kr)));
	send_answer(c);
}

static void
handle_metrics(struct call *c)
{
	struct api *a = c->lp->api;
	struct service_checkpoints cp;
	struct evbuffer *b = evbuffer_new();
	unsigned long v, cum = 0;
	size_t i, j, len;
	char *s;

	if (b == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto answer;
	}
	service_checkpoints(a->sv, &cp);
	evbuffer_add_printf(b,
	    "# HELP custody_requests_total HTTP requests answered.\n"
	    "# TYPE custody_requests_total counter\n");
	for (i = 0; i < R_COUNT; i++)
		for (j = 0; j < NSTATUS; j++)
			if ((v = atomic_load(&a->m.requests[i][j])) != 0)
				evbuffer_add_printf(b,
				    "custody_requests_total{route=\"%s\","
				    "code=\"%d\"} %lu\n",
				    route_names[i], statuses[j], v);
	evbuffer_add_printf(b,
	    "# HELP custody_credentials_issued_total Credentials signed.\n"
	    "# TYPE custody_credentials_issued_total counter\n");
	for (i = 0; i < CUSTODY_ALG_COUNT; i++)
		evbuffer_add_printf(b,
		    "custody_credentials_issued_total{type=\"jwt\","
		    "alg=\"%s\"} %lu\n",
		    alg_name((enum custody_alg)i),
		    atomic_load(&a->m.issued[i]));
	for (i = 0; i < CUSTODY_ALG_COUNT; i++)
		evbuffer_add_printf(b,
		    "custody_credentials_issued_total{type=\"x509\","
		    "alg=\"%s\"} %lu\n",
		    alg_name((enum custody_alg)i),
		    atomic_load(&a->m.issued_x509[i]));
	evbuffer_add_printf(b,
	    "# HELP custody_decisions_total Policy decisions.\n"
	    "# TYPE custody_decisions_total counter\n"
	    "custody_decisions_total{decision=\"deny\"} %lu\n"
	    "custody_decisions_total{decision=\"allow\"} %lu\n"
	    "# HELP custody_sign_failures_total Signatures the token did not "
	    "make or that failed verification.\n"
	    "# TYPE custody_sign_failures_total counter\n"
	    "custody_sign_failures_total %lu\n"
	    "# HELP custody_connections_open Connections open now.\n"
	    "# TYPE custody_connections_open gauge\n"
	    "custody_connections_open %d\n"
	    "# HELP custody_connections_total Connections accepted.\n"
	    "# TYPE custody_connections_total counter\n"
	    "custody_connections_total %lu\n"
	    "# HELP custody_connections_refused_total Connections closed at "
	    "once: over max-connections.\n"
	    "# TYPE custody_connections_refused_total counter\n"
	    "custody_connections_refused_total %lu\n"
	    "# HELP custody_slow_clients_total Connections closed: no "
	    "complete request within request-timeout.\n"
	    "# TYPE custody_slow_clients_total counter\n"
	    "custody_slow_clients_total %lu\n",
	    atomic_load(&a->m.decisions[0]), atomic_load(&a->m.decisions[1]),
	    atomic_load(&a->m.sign_failures), atomic_load(&a->conns),
	    atomic_load(&a->m.conns_total), atomic_load(&a->m.conns_refused),
	    atomic_load(&a->m.slow_closed));
	evbuffer_add_printf(b,
	    "# HELP custody_audit_log_size Leaves in the audit log.\n"
	    "# TYPE custody_audit_log_size gauge\n"
	    "custody_audit_log_size %llu\n"
	    "# HELP custody_audit_commits_total Transactions of the audit "
	    "log (group commit).\n"
	    "# TYPE custody_audit_commits_total counter\n"
	    "custody_audit_commits_total %llu\n"
	    "# HELP custody_audit_failed 1 once the audit log failed (fail "
	    "closed).\n"
	    "# TYPE custody_audit_failed gauge\n"
	    "custody_audit_failed %d\n"
	    "# HELP custody_checkpoint_size Tree size of the last signed "
	    "checkpoint.\n"
	    "# TYPE custody_checkpoint_size gauge\n"
	    "custody_checkpoint_size %llu\n"
	    "# HELP custody_checkpoints_signed_total Checkpoints signed by "
	    "this run.\n"
	    "# TYPE custody_checkpoints_signed_total counter\n"
	    "custody_checkpoints_signed_total %llu\n"
	    "# HELP custody_checkpoint_failures Checkpoint attempts that "
	    "failed in a row.\n"
	    "# TYPE custody_checkpoint_failures gauge\n"
	    "custody_checkpoint_failures %llu\n",
	    (unsigned long long)audit_size(a->audit),
	    (unsigned long long)audit_commits(a->audit), audit_failed(a->audit),
	    (unsigned long long)cp.size, (unsigned long long)cp.made,
	    (unsigned long long)cp.failures);
	evbuffer_add_printf(b,
	    "# HELP custody_jwt_seconds Time to answer a JWT request that "
	    "was signed.\n"
	    "# TYPE custody_jwt_seconds histogram\n");
	for (i = 0; i <= NBUCKETS; i++) {
		cum += atomic_load(&a->m.jwt_hist[i]);
		if (i < NBUCKETS)
			evbuffer_add_printf(b,
			    "custody_jwt_seconds_bucket{le=\"%g\"} %lu\n",
			    buckets[i], cum);
		else
			evbuffer_add_printf(b,
			    "custody_jwt_seconds_bucket{le=\"+Inf\"} %lu\n",
			    cum);
	}
	evbuffer_add_printf(b,
	    "custody_jwt_seconds_sum %.6f\ncustody_jwt_seconds_count %lu\n",
	    (double)atomic_load(&a->m.jwt_sum_us) / 1e6,
	    atomic_load(&a->m.jwt_count));
	len = evbuffer_get_length(b);
	if ((s = malloc(len + 1)) == NULL) {
		problem(c, 503, "unavailable", NULL, "out of memory");
		goto answer;
	}
	evbuffer_remove(b, s, len);
	set_body(c, 200, "text/plain; version=0.0.4; charset=utf-8", s, len);
answer:
	if (b != NULL)
		evbuffer_free(b);
	send_answer(c);
}

/* ---- routing -------------------------------------------------------------
 */

static size_t
headers_size(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	size_t n = 0;

	for (kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next)
		n += strlen(kv->key) + strlen(kv->value) + 4;
	return n;
}

static struct conn *conn_of(struct loop *lp, struct evhttp_connection *evcon);
static int tls_principal(SSL *ssl, char *out, size_t outsz);
static int tls_still_valid(SSL *ssl);

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct loop *lp = arg;
	struct call *c;
	struct conn *k;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const char *path =
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	int get = m == EVHTTP_REQ_GET; /* HEAD: 405 (libevent 2.1 sends
					* a body with it) */
	int post = m == EVHTTP_REQ_POST;
	int put = m == EVHTTP_REQ_PUT;
	const char *allow = NULL, *sub;
	char id[STORE_KEY_ID_LEN + 2];

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evhttp_send_error(req, 503, "out of memory");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
	c->lp = lp;
	c->req = req;
	c->route = R_OTHER;
	if ((k = conn_of(lp, evhttp_request_get_connection(req))) != NULL) {
		c->conn = k;
		k->busy = 1;
		if (k->deadline != NULL)
			event_del(k->deadline);
		/* a keep-alive connection outliving its certificate: no
		 * principal from then on */
		if (k->tls && k->principal[0] != '\0' &&
		    !tls_still_valid(bufferevent_openssl_get_ssl(
			evhttp_connection_get_bufferevent(k->evcon))))
			k->principal[0] = '\0';
		if (k->tls && k->principal[0] == '\0' &&
		    tls_principal(
			bufferevent_openssl_get_ssl(
			    evhttp_connection_get_bufferevent(k->evcon)),
			k->principal, sizeof(k->principal)) != 0)
			k->principal[0] = '\0';
		snprintf(
		    c->principal, sizeof(c->principal), "%s", k->principal);
	}
	if (path == NULL)
		path = "";
	if (c->principal[0] == '\0') {
		problem(c, 401, "unauthenticated", NULL,
		    k != NULL && k->tls
			? "the client certificate names no principal custody "
			  "can use (one spiffe:// URI SAN, or a subject)"
			: "the peer's credentials (SO_PEERCRED) are unknown");
		send_answer(c);
		return;
	}
	if (headers_size(req) > API_HEADERS_MAX) {
		problem(c, 400, "headers-too-large", NULL,
		    "the headers take more than %d bytes", API_HEADERS_MAX);
		send_answer(c);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		c->route = R_HEALTH;
		if (get)
			return handle_health(c);
		allow = "GET";
	} else if (strcmp(path, "/metrics") == 0) {
		c->route = R_METRICS;
		if (get)
			return handle_metrics(c);
		allow = "GET";
	} else if (strcmp(path, "/v1/credentials/jwt") == 0) {
		c->route = R_JWT;
		if (post)
			return handle_jwt(c);
		allow = "POST";
	} else if (strcmp(path, "/v1/keys") == 0) {
		c->route = R_KEYS;
		if (get)
			return handle_key_list(c);
		if (post)
			return handle_key_create(c);
		allow = "GET, POST";
	} else if (strcmp(path, "/v1/credentials/x509") == 0) {
		c->route = R_X509;
		if (post)
			return handle_x509(c);
		allow = "POST";
	} else if (strncmp(path, "/v1/keys/", 9) == 0 &&
		   (sub = strchr(path + 9, '/')) != NULL &&
		   (size_t)(sub - (path + 9)) < sizeof(id) &&
		   strncmp(sub, "/ca", 3) == 0) {
		c->route = R_CA;
		snprintf(
		    id, sizeof(id), "%.*s", (int)(sub - (path + 9)), path + 9);
		if (strcmp(sub, "/ca") == 0) {
			if (get)
				return handle_ca_show(c, id);
			if (put)
				return handle_ca_import(c, id);
			allow = "GET, PUT";
		} else if (strcmp(sub, "/ca/self-signed") == 0 ||
			   strcmp(sub, "/ca/csr") == 0) {
			if (post)
				return handle_ca_make(c, id, sub[4] == 's');
			allow = "POST";
		}
	} else if (strncmp(path, "/v1/keys/", 9) == 0 &&
		   (sub = strchr(path + 9, '/')) != NULL &&
		   (size_t)(sub - (path + 9)) < sizeof(id) &&
		   (strcmp(sub, "/rotate") == 0 ||
		       strcmp(sub, "/destroy") == 0)) {
		c->route = R_LIFECYCLE;
		snprintf(
		    id, sizeof(id), "%.*s", (int)(sub - (path + 9)), path + 9);
		if (post)
			return handle_key_step(c, id, sub[1] == 'r');
		allow = "POST";
	} else if (strcmp(path, "/v1/events") == 0) {
		c->route = R_EVENTS;
		if (post)
			return handle_events(c);
		allow = "POST";
	} else if (strcmp(path, "/v1/attestations") == 0) {
		c->route = R_ATTESTATIONS;
		if (get)
			return handle_attestations(c);
		allow = "GET";
	} else if (strncmp(path, "/v1/keys/", 9) == 0 &&
		   strchr(path + 9, '/') == NULL) {
		c->route = R_KEY;
		if (get)
			return handle_key_show(c, path + 9);
		allow = "GET";
	} else if (strcmp(path, "/v1/jwks") == 0 ||
		   strcmp(path, "/.well-known/jwks.json") == 0) {
		c->route = R_JWKS;
		if (get)
			return handle_jwks(c);
		allow = "GET";
	} else if (strcmp(path, "/v1/log/checkpoint") == 0 ||
		   strncmp(path, "/v1/log/checkpoints/", 20) == 0) {
		c->route = R_CHECKPOINT;
		if (get) {
			if (audit_readable(c))
				handle_checkpoint(
				    c, path[18] == 's' ? path + 20 : NULL);
			return;
		}
		allow = "GET";
	} else if (strncmp(path, "/v1/log/tile/", 13) == 0) {
		c->route = R_TILE;
		if (get) {
			if (audit_readable(c))
				handle_tile(c, path + 8);
			return;
		}
		allow = "GET";
	} else if (strcmp(path, "/v1/log/proof/inclusion") == 0 ||
		   strcmp(path, "/v1/log/proof/consistency") == 0) {
		c->route = R_PROOF;
		if (get) {
			if (audit_readable(c))
				handle_proof(c, path + 14);
			return;
		}
		allow = "GET";
	}
	if (allow != NULL) {
		evhttp_add_header(
		    evhttp_request_get_output_headers(req), "Allow", allow);
		problem(c, 405, "method-not-allowed", NULL, "%s takes %s", path,
		    allow);
	} else
		problem(c, 404, "not-found", NULL, "no such resource: %.128s",
		    path);
	send_answer(c);
}

/* ---- connections ---------------------------------------------------------
 */

static size_t
slot_of(const struct loop *lp, const struct evhttp_connection *evcon)
{
	uintptr_t p = (uintptr_t)evcon;

	return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ull) & (lp->nslots - 1);
}

static struct conn *
conn_of(struct loop *lp, struct evhttp_connection *evcon)
{
	size_t j;

	if (lp->nslots == 0)
		return NULL;
	for (j = slot_of(lp, evcon); lp->conns[j] != NULL;
	     j = (j + 1) & (lp->nslots - 1))
		if (lp->conns[j]->evcon == evcon)
			return lp->conns[j];
	return NULL;
}

static int
map_put(struct loop *lp, struct conn *k)
{
	struct conn **old = lp->conns, **v;
	size_t n = lp->nslots, i, j;

	if ((lp->nconns + 1) * 2 > lp->nslots) {
		size_t slots = lp->nslots ? lp->nslots * 2 : 64;

		if ((v = calloc(slots, sizeof(*v))) == NULL)
			return -1;
		lp->conns = v;
		lp->nslots = slots;
		for (i = 0; i < n; i++)
			if (old[i] != NULL) {
				for (j = slot_of(lp, old[i]->evcon);
				     v[j] != NULL; j = (j + 1) & (slots - 1))
					;
				v[j] = old[i];
			}
		free(old);
	}
	for (j = slot_of(lp, k->evcon); lp->conns[j] != NULL;
	     j = (j + 1) & (lp->nslots - 1))
		;
	lp->conns[j] = k;
	lp->nconns++;
	return 0;
}

static void
map_del(struct loop *lp, struct conn *k)
{
	size_t mask = lp->nslots - 1, j, i, h;
	struct conn *e;

	for (j = slot_of(lp, k->evcon); lp->conns[j] != NULL;
	     j = (j + 1) & mask)
		if (lp->conns[j] == k)
			break;
	if (lp->conns[j] == NULL)
		return;
	/* backward-shift deletion keeps every probe chain whole */
	lp->conns[j] = NULL;
	lp->nconns--;
	for (i = (j + 1) & mask; (e = lp->conns[i]) != NULL;
	     i = (i + 1) & mask) {
		h = slot_of(lp, e->evcon);
		if ((i > j && (h <= j || h > i)) ||
		    (i < j && h <= j && h > i)) {
			lp->conns[j] = e;
			lp->conns[i] = NULL;
			j = i;
		}
	}
}

static void
conn_free(struct conn *k)
{
	if (k->adopt != NULL)
		event_free(k->adopt);
	if (k->deadline != NULL)
		event_free(k->deadline);
	free(k);
}

/* The request of k was answered: wait for the next one, within the
 * deadline; free k if libevent closed it meanwhile. */
static void
conn_release(struct conn *k)
{
	struct timeval tv;

	if (k == NULL)
		return;
	k->busy = 0;
	if (k->closed) {
		conn_free(k);
		return;
	}
	tv.tv_sec =
	    k->lp->draining ? 1 : (time_t)k->lp->api->cfg->request_timeout;
	tv.tv_usec = 0;
	if (k->deadline != NULL)
		event_add(k->deadline, &tv);
}

static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct conn *k = arg;
	struct api *a = k->lp->api;

	(void)evcon;
	atomic_fetch_sub(&a->conns, 1);
	map_del(k->lp, k);
	if (k->deadline != NULL)
		event_del(k->deadline);
	k->closed = 1;
	if (!k->busy)
		conn_free(k);
}

/*
 * Close k's connection (no request of it in progress) and free k. libevent
 * calls closecb only for a connection it deems connected: if it did not,
 * do what conn_closed() does here, so that k and its slot are never lost.
 */
static void
conn_kill(struct conn *k)
{
	k->busy = 1; /* k lives through the call */
	evhttp_connection_free(k->evcon);
	if (!k->closed)
		conn_closed(k->evcon, k);
	conn_free(k);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *k = arg;

	(void)fd;
	(void)what;
	if (k->busy || k->closed)
		return;
	if (!k->lp->draining) {
		atomic_fetch_add(&k->lp->api->m.slow_closed, 1);
		log_info_f("%s: no complete request within %llds: closed",
		    k->principal[0] ? k->principal : "a client",
		    (long long)k->lp->api->cfg->request_timeout);
	}
	conn_kill(k);
}

/*
 * Right after evhttp made the connection of k->bev (a zero timeout at the
 * highest priority, so before any of its I/O): find the evhttp_connection
 * (the bufferevent's callback argument), take its peer credentials and
 * watch its close. A bufferevent already freed has no callbacks left.
 */
static void
adopt_cb(evutil_socket_t fd_, short what, void *arg)
{
	struct conn *k = arg, **kp;
	struct loop *lp = k->lp;
	struct api *a = lp->api;
	bufferevent_data_cb rcb;
	void *cbarg = NULL;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct timeval tv;
	int fd;

	(void)fd_;
	(void)what;
	for (kp = &lp->pending; *kp != NULL; kp = &(*kp)->next_pending)
		if (*kp == k) {
			*kp = k->next_pending;
			break;
		}
	bufferevent_getcb(k->bev, &rcb, NULL, NULL, &cbarg);
	fd = bufferevent_getfd(k->bev);
	bufferevent_decref(k->bev);
	k->bev = NULL;
	if (rcb == NULL || cbarg == NULL) {
		atomic_fetch_sub(&a->conns, 1);
		conn_free(k);
		return;
	}
	k->evcon = cbarg;
	if (map_put(lp, k) != 0) {
		atomic_fetch_sub(&a->conns, 1);
		evhttp_connection_free(k->evcon);
		conn_free(k);
		return;
	}
	evhttp_connection_set_closecb(k->evcon, conn_closed, k);
	if (k->refused) {
		/* over the limit: closed before a byte is read */
		conn_kill(k);
		return;
	}
	/* TLS writes an answer as several records: without TCP_NODELAY the
	 * last one waits for the client's delayed ACK (40 ms) */
	if (k->tls && fd >= 0)
		(void)setsockopt(
		    fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	if (!k->tls && fd >= 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 &&
	    clen == sizeof(cred))
		snprintf(k->principal, sizeof(k->principal), "unix:uid=%lu",
		    (unsigned long)cred.uid);
	tv.tv_sec = lp->draining ? 1 : (time_t)a->cfg->request_timeout;
	tv.tv_usec = 0;
	if ((k->deadline = evtimer_new(lp->base, deadline_cb, k)) != NULL)
		event_add(k->deadline, &tv);
}

/* Count and track a new connection's bufferevent; adopted at once. */
static struct bufferevent *
track_conn(struct loop *lp, struct bufferevent *bev, int tls)
{
	struct api *a = lp->api;
	struct event_base *base = lp->base;
	struct timeval zero = {0, 0};
	struct conn *k;

	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->adopt = evtimer_new(base, adopt_cb, k)) == NULL) {
		free(k);
		return bev; /* untracked, as evhttp alone would do */
	}
	event_priority_set(k->adopt, 0);
	k->lp = lp;
	k->bev = bev;
	k->tls = tls;
	bufferevent_incref(bev);
	k->next_pending = lp->pending;
	lp->pending = k;
	atomic_fetch_add(&a->m.conns_total, 1);
	if (atomic_fetch_add(&a->conns, 1) >= a->cfg->max_connections) {
		k->refused = 1;
		atomic_fetch_add(&a->m.conns_refused, 1);
		log_notice_f("more than %d connections: one refused",
		    a->cfg->max_connections);
	}
	event_add(k->adopt, &zero);
	return bev;
}

/* evhttp's hook for a new connection's bufferevent: the Unix socket. */
static struct bufferevent *
new_conn(struct event_base *base, void *arg)
{
	struct bufferevent *bev;

	/* what evhttp makes itself (no BEV_OPT_CLOSE_ON_FREE: evhttp
	 * shuts the socket down and closes it after freeing this) */
	if ((bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		return NULL;
	return track_conn(arg, bev, 0);
}

/* The same for the mutual-TLS listener: the handshake comes first (the
 * deadline of adoption bounds it too). */
static struct bufferevent *
new_tls_conn(struct event_base *base, void *arg)
{
	struct loop *lp = arg;
	struct bufferevent *bev;
	SSL *ssl;

	/* BEV_OPT_CLOSE_ON_FREE: the SSL and the socket go with it (evhttp
	 * then leaves the socket alone) */
	if ((ssl = SSL_new(lp->api->tls)) != NULL &&
	    (bev = bufferevent_openssl_socket_new(base, -1, ssl,
		 BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)) != NULL)
		return track_conn(lp, bev, 1);
	SSL_free(ssl);
	/* without TLS: a plain connection (evhttp would make one itself if
	 * given none), closed at adoption before a byte is read */
	if ((bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		return NULL;
	bev = track_conn(lp, bev, 1);
	if (lp->pending != NULL && lp->pending->bev == bev)
		lp->pending->refused = 1;
	return bev;
}

/* Is the TLS client's certificate still within its validity? */
static int
tls_still_valid(SSL *ssl)
{
	X509 *x = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;

	return x != NULL && X509_cmp_current_time(X509_get0_notAfter(x)) > 0 &&
	       X509_cmp_current_time(X509_get0_notBefore(x)) < 0;
}

/*
 * The principal of a TLS client, from its certificate (verified during the
 * handshake against tls-client-ca): the SPIFFE ID of its one spiffe:// URI
 * SAN, else x509: and its subject as RFC 4514 writes it. 0, or -1 when
 * there is none that fits (two SPIFFE IDs, characters outside printable
 * ASCII, longer than out).
 */
static int
tls_principal(SSL *ssl, char *out, size_t outsz)
{
	X509 *x = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
	GENERAL_NAMES *gens;
	const GENERAL_NAME *g;
	const unsigned char *u;
	int i, n, len, found = 0, bad = 0;
	BIO *b;
	char *data;
	long blen;

	if (x == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
	    !tls_still_valid(ssl))
		return -1;
	if ((gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) !=
	    NULL) {
		n = sk_GENERAL_NAME_num(gens);
		for (i = 0; i < n; i++) {
			g = sk_GENERAL_NAME_value(gens, i);
			if (g->type != GEN_URI)
				continue;
			u = ASN1_STRING_get0_data(
			    g->d.uniformResourceIdentifier);
			len =
			    ASN1_STRING_length(g->d.uniformResourceIdentifier);
			if (len < 9 || strncmp((const char *)u, "spiffe://", 9))
				continue;
			if (found++ > 0 || (size_t)len >= outsz)
				bad = 1;
			for (int j = 0; !bad && j < len; j++)
				bad = u[j] <= 0x20 || u[j] >= 0x7f;
			if (!bad)
				snprintf(out, outsz, "%.*s", len, u);
		}
		GENERAL_NAMES_free(gens);
	}
	ERR_clear_error();
	if (found)
		return bad ? -1 : 0;
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return -1;
	bad = BIO_puts(b, "x509:") != 5 ||
	      X509_NAME_print_ex(
		  b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) < 0 ||
	      (blen = BIO_get_mem_data(b, &data)) <= 5 || (size_t)blen >= outsz;
	if (!bad)
		snprintf(out, outsz, "%.*s", (int)blen, data);
	BIO_free(b);
	return bad ? -1 : 0;
}

/* ---- the loops -----------------------------------------------------------
 */

/*
 * Draining: a connection without a request in progress has one second more
 * to deliver one (it may be sending it now); then it is closed. One that is
 * answered gets Connection: close.
 */
static void
shorten_deadlines(struct loop *lp)
{
	struct timeval tv = {1, 0};
	size_t i;
	struct conn *k;

	for (i = 0; i < lp->nslots; i++)
		if ((k = lp->conns[i]) != NULL && !k->busy &&
		    k->deadline != NULL)
			event_add(k->deadline, &tv);
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop *lp = arg;
	struct call *c, *next;
	int drain, stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&lp->mu);
	c = lp->done;
	lp->done = lp->done_tail = NULL;
	drain = lp->cmd_drain;
	stop = lp->cmd_stop;
	lp->cmd_drain = 0;
	pthread_mutex_unlock(&lp->mu);
	for (; c != NULL; c = next) {
		next = c->next;
		send_answer(c);
	}
	if (drain && !lp->draining) {
		/* the listener stays: the socket is gone from the file system
		 * (api_drain), so what it still accepts was queued before; TCP
		 * clients can still connect, so that listener stops */
		lp->draining = 1;
		if (lp->tlst != NULL)
			evconnlistener_disable(lp->tlst);
		shorten_deadlines(lp);
	}
	if (stop)
		event_base_loopbreak(lp->base);
}

static void *
loop_main(void *arg)
{
	struct loop *lp = arg;

	/* until told to stop, also with nothing to wait for */
	event_base_loop(lp->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void
command(struct loop *lp, int drain, int stop)
{
	pthread_mutex_lock(&lp->mu);
	lp->cmd_drain |= drain;
	lp->cmd_stop |= stop;
	pthread_mutex_unlock(&lp->mu);
	event_active(lp->wake, 0, 0);
}

/* An evhttp of loop lp on a descriptor of its own for listening socket
 * lfd, whose connections bevcb makes. */
static int
loop_http(struct loop *lp, int lfd,
    struct bufferevent *(*bevcb)(struct event_base *, void *),
    struct evhttp **httpp, struct evconnlistener **lstp)
{
	struct api *a = lp->api;
	struct evhttp *http;
	int fd;

	if ((http = *httpp = evhttp_new(lp->base)) == NULL)
		return CUSTODY_E_NOMEM;
	evhttp_set_max_body_size(http, API_BODY_BACKSTOP);
	evhttp_set_max_headers_size(http, API_HEADERS_BACKSTOP);
	/* a backstop: custody's own deadline (request-timeout from the
	 * connection or the last answer) closes a slow client first */
	evhttp_set_timeout(http, (int)a->cfg->request_timeout * 2 + 1);
	evhttp_set_allowed_methods(
	    http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
		      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_default_content_type(http, "application/json");
	evhttp_set_gencb(http, on_request, lp);
	evhttp_set_bevcb(http, bevcb, lp);
	/* each loop accepts on a descriptor of its own for the socket */
	if ((fd = fcntl(lfd, F_DUPFD_CLOEXEC, 3)) < 0) {
		log_error_f("dup: %s", strerror(errno));
		return CUSTODY_E_IO;
	}
	if ((*lstp = evconnlistener_new(lp->base, NULL, NULL,
		 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd)) ==
	    NULL) {
		close(fd);
		return CUSTODY_E_NOMEM;
	}
	if (evhttp_bind_listener(http, *lstp) == NULL)
		return CUSTODY_E_NOMEM;
	return 0;
}

static int
loop_init(struct api *a, struct loop *lp, int idx)
{
	int r;

	lp->api = a;
	lp->idx = idx;
	pthread_mutex_init(&lp->mu, NULL);
	if ((lp->base = event_base_new()) == NULL ||
	    event_base_priority_init(lp->base, 2) != 0 ||
	    (lp->wake = event_new(lp->base, -1, 0, wake_cb, lp)) == NULL)
		return CUSTODY_E_NOMEM;
	if ((r = loop_http(lp, a->lfd, new_conn, &lp->http, &lp->lst)) != 0)
		return r;
	/* a separate evhttp: the bufferevent hook is per instance */
	if (a->tfd >= 0 && (r = loop_http(lp, a->tfd, new_tls_conn, &lp->https,
				&lp->tlst)) != 0)
		return r;
	return 0;
}

static void
loop_cleanup(struct loop *lp)
{
	struct call *c, *next;
	struct conn *k;
	size_t i;

	/* answers that were never sent: their requests die with evhttp */
	for (c = lp->done; c != NULL; c = next) {
		next = c->next;
		c->req = NULL;
		call_free(c);
	}
	if (lp->http != NULL)
		evhttp_free(lp->http); /* also the listener and connections */
	if (lp->https != NULL)
		evhttp_free(lp->https);
	while ((k = lp->pending) != NULL) {
		/* accepted as the loop stopped: never adopted */
		lp->pending = k->next_pending;
		bufferevent_decref(k->bev);
		conn_free(k);
	}
	for (i = 0; i < lp->nslots; i++)
		if (lp->conns[i] != NULL)
			conn_free(lp->conns[i]);
	free(lp->conns);
	if (lp->wake != NULL)
		event_free(lp->wake);
	if (lp->base != NULL)
		event_base_free(lp->base);
	store_close(lp->st);
	pthread_mutex_destroy(&lp->mu);
}

/* ---- the socket --------------------------------------------------------- */

static int
bind_socket(struct api *a)
{
	const struct config *cfg = a->cfg;
	struct sockaddr_un sa;
	struct stat sb;
	struct group *gr;
	gid_t gid = (gid_t)-1;
	int fd = -1, probe, r = CUSTODY_E_IO;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(cfg->listen_unix) >= sizeof(sa.sun_path)) {
		log_error_f("listen-unix: %s is longer than a socket path may "
			    "be (%zu bytes)",
		    cfg->listen_unix, sizeof(sa.sun_path) - 1);
		return CUSTODY_E_CONFIG;
	}
	memcpy(sa.sun_path, cfg->listen_unix, strlen(cfg->listen_unix));
	if (cfg->listen_unix_group != NULL) {
		if ((gr = getgrnam(cfg->listen_unix_group)) == NULL) {
			log_error_f("listen-unix-group: no group %s",
			    cfg->listen_unix_group);
			return CUSTODY_E_CONFIG;
		}
		gid = gr->gr_gid;
	}
	/* a socket left by a custodyd that died is replaced; one that
	 * answers belongs to a running server and is left alone */
	if (lstat(cfg->listen_unix, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			log_error_f("listen-unix: %s exists and is not a "
				    "socket",
			    cfg->listen_unix);
			return CUSTODY_E_EXISTS;
		}
		if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >=
			0 &&
		    connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			log_error_f("listen-unix: a server already answers on "
				    "%s",
			    cfg->listen_unix);
			return CUSTODY_E_EXISTS;
		}
		if (probe >= 0)
			close(probe);
		if (unlink(cfg->listen_unix) != 0) {
			log_error_f(
			    "%s: %s", cfg->listen_unix, strerror(errno));
			return CUSTODY_E_IO;
		}
	}
	if ((fd = socket(
		 AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		log_error_f("socket: %s", strerror(errno));
		return CUSTODY_E_IO;
	}
	/* bound under a umask that lets nobody in, then opened to the
	 * configured mode: never a moment with wider access */
	{
		mode_t old = umask(0777);

		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		umask(old);
	}
	if (r != 0) {
		log_error_f("listen-unix: bind %s: %s", cfg->listen_unix,
		    strerror(errno));
		goto fail;
	}
	if ((gid != (gid_t)-1 &&
		chown(cfg->listen_unix, (uid_t)-1, gid) != 0) ||
	    chmod(cfg->listen_unix, (mode_t)cfg->listen_unix_mode) != 0 ||
	    listen(fd, 1024) != 0 || lstat(cfg->listen_unix, &sb) != 0) {
		log_error_f(
		    "listen-unix: %s: %s", cfg->listen_unix, strerror(errno));
		(void)unlink(cfg->listen_unix);
		goto fail;
	}
	a->lfd = fd;
	a->sock_dev = sb.st_dev;
	a->sock_ino = sb.st_ino;
	return 0;
fail:
	close(fd);
	return CUSTODY_E_IO;
}

/* ---- listen-tcp: mutual TLS ---------------------------------------------- */

static int
tls_fail(const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	const char *why = "failed";

	/* OpenSSL 3 has no reason string for a system error (a file that
	 * cannot be opened): errno is in the code */
	if (e != 0 && ERR_SYSTEM_ERROR(e))
		why = strerror(ERR_GET_REASON(e));
	else if (e != 0 && ERR_reason_error_string(e) != NULL)
		why = ERR_reason_error_string(e);
	log_error_f("%s%s%s: %s", what, path[0] ? " " : "", path, why);
	ERR_clear_error();
	return CUSTODY_E_CRYPTO;
}

/*
 * The TLS context of listen-tcp: tls-cert (the server's chain, PEM) and
 * tls-key (its key, a file of mode 0600 or stricter), TLS 1.2 at least, and
 * a client certificate required, verified against tls-client-ca for
 * clientAuth.
 */
static int
tls_setup(struct api *a)
{
	const struct config *cfg = a->cfg;
	STACK_OF(X509_NAME) * names;
	struct stat sb;

	if (stat(cfg->tls_key, &sb) != 0) {
		log_error_f("tls-key %s: %s", cfg->tls_key, strerror(errno));
		return CUSTODY_E_IO;
	}
	if ((sb.st_mode & 077) != 0) {
		log_error_f("tls-key %s: mode %04o lets others read the key; "
			    "chmod 600 it",
		    cfg->tls_key, (unsigned)(sb.st_mode & 07777));
		return CUSTODY_E_INVALID_ARG;
	}
	if ((a->tls = SSL_CTX_new(TLS_server_method())) == NULL)
		return tls_fail("TLS context", "");
	if (SSL_CTX_set_min_proto_version(a->tls, TLS1_2_VERSION) != 1)
		return tls_fail("TLS 1.2 minimum", "");
	/* no resumption: a resumed session would skip the verification of
	 * the client's chain (its certificate could have expired since) */
	SSL_CTX_set_options(
	    a->tls, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(a->tls, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(a->tls, cfg->tls_cert) != 1)
		return tls_fail("tls-cert", cfg->tls_cert);
	if (SSL_CTX_use_PrivateKey_file(
		a->tls, cfg->tls_key, SSL_FILETYPE_PEM) != 1)
		return tls_fail("tls-key", cfg->tls_key);
	if (SSL_CTX_check_private_key(a->tls) != 1)
		return tls_fail(
		    "tls-key does not match tls-cert", cfg->tls_key);
	if (SSL_CTX_load_verify_locations(a->tls, cfg->tls_client_ca, NULL) !=
		1 ||
	    (names = SSL_load_client_CA_file(cfg->tls_client_ca)) == NULL)
		return tls_fail("tls-client-ca", cfg->tls_client_ca);
	SSL_CTX_set_client_CA_list(a->tls, names);
	SSL_CTX_set_verify(
	    a->tls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	if (X509_VERIFY_PARAM_set_purpose(
		SSL_CTX_get0_param(a->tls), X509_PURPOSE_SSL_CLIENT) != 1 ||
	    SSL_CTX_set_session_id_context(
		a->tls, (const unsigned char *)"custodyd", 8) != 1)
		return tls_fail("TLS client verification", "");
	return 0;
}

/* The listen-tcp socket, HOST:PORT as the configuration checked it. */
static int
bind_tcp(struct api *a)
{
	const char *v = a->cfg->listen_tcp, *colon;
	char host[256], port[8];
	struct addrinfo hints, *res = NULL;
	int fd = -1, one = 1, rc;
	size_t hl;

	if (v[0] == '[') {
		colon = strchr(v, ']') + 1;
		hl = (size_t)(colon - v) - 2;
		v++;
	} else {
		colon = strrchr(v, ':');
		hl = (size_t)(colon - v);
	}
	if (hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port))
		return CUSTODY_E_CONFIG;
	memcpy(host, v, hl);
	host[hl] = '\0';
	snprintf(port, sizeof(port), "%s", colon + 1);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		log_error_f(
		    "listen-tcp %s: %s", a->cfg->listen_tcp, gai_strerror(rc));
		return CUSTODY_E_CONFIG;
	}
	if ((fd = socket(res->ai_family,
		 SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(fd, 1024) != 0) {
		log_error_f(
		    "listen-tcp %s: %s", a->cfg->listen_tcp, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return CUSTODY_E_IO;
	}
	freeaddrinfo(res);
	a->tfd = fd;
	return 0;
}

/* ---- the api -------------------------------------------------------------
 */

static int threads_ok;

static void
use_threads(void)
{
	threads_ok = evthread_use_pthreads() == 0;
}

int
api_open(struct service *sv, const struct config *cfg, struct api **ap)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct api *a;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(sv != NULL && cfg != NULL && ap != NULL &&
				       service_audit(sv) != NULL,
	    CUSTODY_E_INVALID_ARG);
	/* locks in libevent, so that other threads can wake a loop */
	pthread_once(&once, use_threads);
	if (!threads_ok) {
		log_error_f("libevent cannot use pthreads");
		return CUSTODY_E_INTERNAL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return CUSTODY_E_NOMEM;
	a->sv = sv;
	a->cfg = cfg;
	a->audit = service_audit(sv);
	a->tok = service_token(sv);
	a->lfd = -1;
	a->tfd = -1;
	pthread_mutex_init(&a->jmu, NULL);
	pthread_cond_init(&a->jcv, NULL);
	pthread_mutex_init(&a->rmu, NULL);
	pthread_mutex_init(&a->lmu, NULL);
	pthread_cond_init(&a->lcv, NULL);
	a->refused_since = util_now();
	if ((r = keyring_open(a->tok, service_store(sv), cfg->jwt_ed25519_alg,
		 &a->kr)) != 0 ||
	    (r = lifecycle_open(a->kr, cfg->checkpoint_overlap, &a->lc)) != 0)
		goto fail;
	if ((r = bind_socket(a)) != 0)
		goto fail;
	if (cfg->listen_tcp != NULL &&
	    ((r = tls_setup(a)) != 0 || (r = bind_tcp(a)) != 0))
		goto fail;
	if ((a->sock_path = strdup(cfg->listen_unix)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto fail;
	}
	*ap = a;
	return 0;
fail:
	api_close(a);
	return r;
}

int
api_run(struct api *a)
{
	struct timeval tv;
	int i, r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    a != NULL && a->loops == NULL, CUSTODY_E_INVALID_ARG);
	/* start-up reconciliation first: nothing is served before the
	 * registry, the token and the log agree */
	{
		struct store *st = NULL;
		struct keys_env env;
		size_t found = 0;

		if ((r = store_open(service_store_path(a->sv), &st)) != 0)
			return r;
		env = (struct keys_env){a->tok, st, a->audit,
		    LC_PRINCIPAL_SCHEDULER, "(recovery)", NULL};
		r = lifecycle_recover(a->lc, &env, util_now(), &found);
		store_close(st);
		if (r == CUSTODY_E_LOG_FAILED)
			return r;
		if (r != 0)
			log_error_fr(r,
			    "start-up reconciliation did not finish; "
			    "the scheduler retries what is pending");
		else if (found > 0)
			log_warn_f("start-up reconciliation: %zu actions, "
				   "logged in a recovery leaf",
			    found);
	}
	a->nloops = a->cfg->workers;
	if ((a->loops = calloc((size_t)a->nloops, sizeof(*a->loops))) == NULL ||
	    (a->signers = calloc(
		 (size_t)a->cfg->workers, sizeof(*a->signers))) == NULL)
		return CUSTODY_E_NOMEM;
	for (i = 0; i < a->nloops; i++)
		if ((r = loop_init(a, &a->loops[i], i)) != 0)
			return r;
	/* refusals are logged once per checkpoint-interval (G4) */
	if ((a->flush = event_new(
		 a->loops[0].base, -1, EV_PERSIST, flush_cb, a)) == NULL)
		return CUSTODY_E_NOMEM;
	tv.tv_sec = (time_t)a->cfg->checkpoint_interval;
	tv.tv_usec = 0;
	event_add(a->flush, &tv);
	for (i = 0; i < a->cfg->workers; i++) {
		if (pthread_create(&a->signers[i], NULL, signer_main, a) != 0)
			return CUSTODY_E_NOMEM;
		a->nsigners++;
	}
	if (pthread_create(&a->lcth, NULL, lc_main, a) != 0)
		return CUSTODY_E_NOMEM;
	a->lc_running = 1;
	for (i = 0; i < a->nloops; i++) {
		if (pthread_create(
			&a->loops[i].th, NULL, loop_main, &a->loops[i]) != 0)
			return CUSTODY_E_NOMEM;
		a->loops[i].running = 1;
	}
	a->started = util_now();
	return 0;
}

/* Requests between their arrival and their answer, in all loops. */
static long
in_progress(struct api *a)
{
	long n = atomic_load(&a->pipeline);
	int i;

	for (i = 0; i < a->nloops; i++) {
		pthread_mutex_lock(&a->loops[i].mu);
		n += a->loops[i].done != NULL;
		pthread_mutex_unlock(&a->loops[i].mu);
	}
	return n;
}

/* Remove the socket's name, if it is still ours. */
static void
unlink_socket(struct api *a)
{
	struct stat sb;

	if (a->sock_path != NULL && lstat(a->sock_path, &sb) == 0 &&
	    sb.st_dev == a->sock_dev && sb.st_ino == a->sock_ino)
		(void)unlink(a->sock_path);
}

/* Has the kernel no connection queued on the socket (not accepted yet)? */
static int
backlog_empty(struct api *a)
{
	struct pollfd p = {a->lfd, POLLIN, 0};

	return a->lfd < 0 || poll(&p, 1, 0) == 0;
}

long
api_drain(struct api *a, int64_t timeout_ms)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	int64_t waited = 0;
	long n;
	int i;

	if (a == NULL || a->loops == NULL)
		return 0;
	/*
	 * No new client from here on: the socket's name goes first, so that
	 * connect() fails at once (ENOENT), while the connections the kernel
	 * queued before are still accepted and answered, not reset.
	 */
	unlink_socket(a);
	for (i = 0; i < a->nloops; i++)
		if (a->loops[i].running)
			command(&a->loops[i], 1, 0);
	/* requests in progress answered, and every connection closed (each
	 * has a second to deliver a request it was sending) */
	while (((n = in_progress(a)) > 0 || atomic_load(&a->conns) > 0 ||
		   !backlog_empty(a)) &&
	       waited < timeout_ms) {
		nanosleep(&ts, NULL);
		waited += 10;
	}
	flush_refused(a);
	return n;
}

void
api_close(struct api *a)
{
	struct timespec ts = {0, 5 * 1000 * 1000};
	int i;

	if (a == NULL)
		return;
	/* calls inside the log or a signer come back to a loop: let them
	 * (a log commit or a signature takes milliseconds) */
	while (atomic_load(&a->pipeline) > 0)
		nanosleep(&ts, NULL);
	pthread_mutex_lock(&a->jmu);
	a->jstop = 1;
	pthread_cond_broadcast(&a->jcv);
	pthread_mutex_unlock(&a->jmu);
	for (i = 0; i < a->nsigners; i++)
		pthread_join(a->signers[i], NULL);
	pthread_mutex_lock(&a->lmu);
	a->lstop = 1;
	pthread_cond_broadcast(&a->lcv);
	pthread_mutex_unlock(&a->lmu);
	if (a->lc_running)
		pthread_join(a->lcth, NULL);
	for (i = 0; i < a->nloops; i++)
		if (a->loops[i].running) {
			command(&a->loops[i], 0, 1);
			pthread_join(a->loops[i].th, NULL);
		}
	if (a->flush != NULL)
		event_free(a->flush);
	for (i = 0; a->loops != NULL && i < a->nloops; i++)
		loop_cleanup(&a->loops[i]);
	free(a->loops);
	free(a->signers);
	if (a->lfd >= 0)
		close(a->lfd);
	if (a->tfd >= 0)
		close(a->tfd);
	SSL_CTX_free(a->tls);
	unlink_socket(a);
	free(a->sock_path);
	lifecycle_close(a->lc);
	keyring_close(a->kr);
	pthread_mutex_destroy(&a->lmu);
	pthread_cond_destroy(&a->lcv);
	pthread_mutex_destroy(&a->jmu);
	pthread_cond_destroy(&a->jcv);
	pthread_mutex_destroy(&a->rmu);
	free(a);
}
