/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine: strict loading of the JSON policy language
 * (docs/POLICY.md), an index on (action, principal), and evaluation with
 * deny-overrides, first-allow-in-file-order and token-bucket rate limits.
 */
#define _GNU_SOURCE 1 /* timegm, gmtime_r */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "err.h"
#include "log.h"
#include "policy.h"
#include "util.h"

#define MAX_RULES   1000000
#define MAX_DEPTH   32
#define MAX_STRING  1024
#define MAX_LIST    4096
#define MAX_BUCKETS 65536 /* per rate limit; full ones are swept first */
#define POINTER_MAX 256

static const char *const action_names[POLICY_NACTIONS] = {
    [POLICY_CREDENTIAL_JWT] = "credential.jwt",
    [POLICY_CREDENTIAL_X509] = "credential.x509",
    [POLICY_KEY_CREATE] = "key.create",
    [POLICY_KEY_ROTATE] = "key.rotate",
    [POLICY_KEY_DESTROY] = "key.destroy",
    [POLICY_KEY_READ] = "key.read",
    [POLICY_LIFECYCLE_EVENT] = "lifecycle.event",
    [POLICY_AUDIT_READ] = "audit.read",
    [POLICY_CHECKPOINT_SIGN] = "checkpoint.sign",
    [POLICY_CA_MANAGE] = "ca.manage",
};

#define A(x)	     (1u << (x))
#define A_CREDENTIAL (A(POLICY_CREDENTIAL_JWT) | A(POLICY_CREDENTIAL_X509))
#define A_NO_KEY     (A(POLICY_AUDIT_READ) | A(POLICY_CHECKPOINT_SIGN))
#define A_ALL	     ((1u << POLICY_NACTIONS) - 1)
#define A_WITH_KEY   (A_ALL & ~A_NO_KEY)

static const char *const purpose_names[] = {
    "jwt", "x509-ca", "checkpoint", "attestation", NULL};
static const char *const alg_names[] = {
    "ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-pss-3072", NULL};
static const char *const csr_key_names[] = {"ecdsa-p256", "ecdsa-p384",
    "ed25519", "rsa-2048", "rsa-3072", "rsa-4096", NULL};
static const char *const eku_names[] = {"clientAuth", "serverAuth", NULL};
static const char *const ku_names[] = {
    "digitalSignature", "keyEncipherment", "keyAgreement", NULL};
static const char *const day_names[] = {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL}; /* tm_wday */
static const char *const event_names[] = {"agent.retired", "task.completed",
    "owner.offboarded", "key.compromised", NULL};
static const char *const lc_action_names[] = {
    "destroy", "retire", "rotate", NULL}; /* enum policy_lifecycle_action */
/* Claims a request can never set: RFC 7519's, and those custody governs. */
static const char *const reserved_claims[] = {"iss", "sub", "aud", "exp", "nbf",
    "iat", "jti", "act", "may_act", "cnf", NULL};

/* Which lifecycle actions each event allows (bits of lc_action_names). */
static const unsigned event_actions[] = {
    (1u << POLICY_LC_DESTROY) | (1u << POLICY_LC_RETIRE),
    1u << POLICY_LC_DESTROY,
    (1u << POLICY_LC_DESTROY) | (1u << POLICY_LC_RETIRE) |
	(1u << POLICY_LC_ROTATE),
    1u << POLICY_LC_DESTROY,
};
#define PURPOSES_AGENT 0x3u /* jwt, x509-ca */
#define NEVENTS	       4

struct glob {
	char *pat;
	size_t prefix; /* literal bytes before the first '*' */
	int literal;   /* no '*' at all */
};

struct globs {
	struct glob *v;
	size_t n;
};

struct bucket {
	struct bucket *next;
	double tokens;
	int64_t at_ms;
	char key[];
};

struct rate {
	int64_t limit, per_ms, burst;
	struct bucket **tab;
	size_t cap, n;
};

struct rule {
	char id[POLICY_RULE_ID_MAX + 1];
	int deny;
	unsigned actions;
	struct globs principals;
	/* keys */
	int has_keys;
	struct globs agents, owners;
	unsigned purposes, algs; /* 0: any */
	int task_sel;		 /* -1 any, 0 no task, 1 a task */
	/* conditions */
	int64_t max_ttl;
	int has_audiences;
	struct globs audiences;
	int sub_any;
	char **claims;
	size_t nclaims;
	int act, has_act, has_claims;
	int has_x509;
	unsigned csr_keys, eku, ku;
	int64_t max_key_age;
	int has_time;
	int has_after, has_before;
	int64_t after, before;
	unsigned days;		  /* bits of tm_wday; 0: any */
	int hours_from, hours_to; /* minutes of the day; -1: any */
	unsigned events;	  /* 0: any */
	int task_required;
	int64_t max_key_ttl;
	struct rate *per_principal, *per_key;
};

/* The index: (action, exact principal) and (action, glob prefix) -> rules. */
struct ientry {
	struct ientry *next;
	uint64_t hash;
	int action;
	size_t len;
	uint32_t *rules;
	size_t n, cap;
	char key[]; /* len bytes, then NUL */
};

struct index {
	struct ientry **tab;
	size_t cap; /* power of two */
	size_t n;
};

struct policy {
	atomic_int refs;
	char *name;
	uint8_t sha256[32];
	struct rule *rules;
	size_t nrules;
	struct index exact, prefix;
	struct policy_lifecycle_rule lifecycle[NEVENTS];
	int64_t retired_keep;
	pthread_mutex_t rate_lock;
};

/* ---- errors with a JSON Pointer ------------------------------------------ */

struct loader {
	const char *name;
	char *err;
	size_t errsz;
	char ptr[POINTER_MAX];
	size_t ptrlen;
	struct policy *p;
};

static int fail(struct loader *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct loader *l, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->err != NULL && l->errsz > 0)
		snprintf(l->err, l->errsz, "%s: %s: %s", l->name,
		    l->ptrlen ? l->ptr : "(top level)", msg);
	return CUSTODY_E_CONFIG;
}

/* Push one reference token (RFC 6901: '~' -> "~0", '/' -> "~1"). */
static size_t
push(struct loader *l, const char *tok)
{
	size_t saved = l->ptrlen;
	const char *c;

	if (l->ptrlen + 1 < sizeof(l->ptr))
		l->ptr[l->ptrlen++] = '/';
	for (c = tok; *c != '\0' && l->ptrlen + 3 < sizeof(l->ptr); c++) {
		if (*c == '~' || *c == '/') {
			l->ptr[l->ptrlen++] = '~';
			l->ptr[l->ptrlen++] = *c == '~' ? '0' : '1';
		} else
			l->ptr[l->ptrlen++] = *c;
	}
	l->ptr[l->ptrlen] = '\0';
	return saved;
}

static size_t
push_index(struct loader *l, size_t i)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%zu", i);
	return push(l, buf);
}

static void
pop(struct loader *l, size_t saved)
{
	l->ptrlen = saved;
	l->ptr[saved] = '\0';
}

/* ---- typed readers --------------------------------------------------------
 */

static int
name_index(const char *const *names, const char *s)
{
	int i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

int
policy_claim_reserved(const char *name)
{
	return name != NULL && name_index(reserved_claims, name) >= 0;
}

/* Every member of o must be one of the NULL-terminated names. */
static int
only_fields(struct loader *l, json_t *o, const char *const *names)
{
	const char *k;
	json_t *v;
	size_t saved;

	json_object_foreach(o, k, v)
	{
		if (name_index(names, k) < 0) {
			saved = push(l, k);
			(void)saved;
			return fail(l, "unknown field");
		}
	}
	return 0;
}

static int
get_string(struct loader *l, json_t *v, const char **sp)
{
	if (!json_is_string(v))
		return fail(l, "must be a string");
	if (json_string_length(v) == 0)
		return fail(l, "must not be empty");
	if (json_string_length(v) > MAX_STRING)
		return fail(l, "longer than %d bytes", MAX_STRING);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return fail(l, "contains a NUL character");
	*sp = json_string_value(v);
	return 0;
}

static int
get_duration(struct loader *l, json_t *v, int64_t *dp)
{
	const char *s = NULL;
	int r;

	if ((r = get_string(l, v, &s)) != 0)
		return r;
	if (util_parse_duration(s, dp) != 0)
		return fail(
		    l, "'%.64s' is not a duration (30s, 15m, 24h, 7d)", s);
	return 0;
}

static int
get_bool(struct loader *l, json_t *v, int *bp)
{
	if (!json_is_boolean(v))
		return fail(l, "must be true or false");
	*bp = json_is_true(v);
	return 0;
}

/* A non-empty array of at most MAX_LIST items. */
static int
get_list(struct loader *l, json_t *v)
{
	if (!json_is_array(v))
		return fail(l, "must be an array");
	if (json_array_size(v) == 0)
		return fail(l, "must not be empty");
	if (json_array_size(v) > MAX_LIST)
		return fail(l, "more than %d items", MAX_LIST);
	return 0;
}

/* A list of names from the table: a bit mask. */
static int
get_names(struct loader *l, json_t *v, const char *const *names,
    const char *what, unsigned *maskp)
{
	const char *s = NULL;
	size_t i, saved;
	json_t *e;
	int r, k;

	if ((r = get_list(l, v)) != 0)
		return r;
	*maskp = 0;
	json_array_foreach(v, i, e)
	{
		saved = push_index(l, i);
		if ((r = get_string(l, e, &s)) != 0)
			return r;
		if ((k = name_index(names, s)) < 0)
			return fail(l, "unknown %s '%.64s'", what, s);
		if (*maskp & (1u << k))
			return fail(l, "'%.64s' is listed twice", s);
		*maskp |= 1u << k;
		pop(l, saved);
	}
	return 0;
}

/* ---- globs ------------------------------------------------------------------
 */

static int
glob_check(const char *pat, const char **whyp)
{
	const char *c;

	if (*pat == '\0') {
		*whyp = "an empty pattern";
		return -1;
	}
	for (c = pat; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			*whyp = "a control character";
			return -1;
		}
		if (c[0] == '*' && c[1] == '*' && c[2] == '*') {
			*whyp = "'***' (use '*' or '**')";
			return -1;
		}
	}
	return 0;
}

/*
 * Does s match pat? '*' matches a run without '/', '**' any run. Dynamic
 * programming over the pattern: O(|pat| * |s|), never exponential.
 * m[j] says whether the pattern so far matches the first j bytes of s.
 */
static int
glob_match(const char *pat, const char *s)
{
	size_t n = strlen(s), j;
	unsigned char m[MAX_STRING + 2], nx[MAX_STRING + 2];
	const char *p;
	/* '*' never crosses '/'; in an x509: subject not ',', '+' or '\\'
	 * either, so that it stays inside one attribute value (an escaped
	 * "\\,O=Example" is part of a value, not a second attribute) */
	const char *stop = strncmp(s, "x509:", 5) == 0 ? "/,+\\" : "/";
	int any;

	if (n > MAX_STRING)
		return 0;
	memset(m, 0, n + 1);
	m[0] = 1;
	for (p = pat; *p != '\0'; p++) {
		if (*p == '*') {
			any = p[1] == '*';
			if (any)
				p++;
			/* '*': one or more bytes, none of stop; '**': any
			 * run */
			nx[0] = any && m[0];
			for (j = 1; j <= n; j++)
				nx[j] = (any && m[j]) ||
					((m[j - 1] || nx[j - 1]) &&
					    (any || strchr(stop, s[j - 1]) ==
							NULL));
		} else {
			nx[0] = 0;
			for (j = 1; j <= n; j++)
				nx[j] = m[j - 1] && s[j - 1] == *p;
		}
		memcpy(m, nx, n + 1);
	}
	return m[n];
}

static int
globs_match(const struct globs *g, const char *s)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		if (glob_match(g->v[i].pat, s))
			return 1;
	return 0;
}

static void
globs_free(struct globs *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		free(g->v[i].pat);
	free(g->v);
	g->v = NULL;
	g->n = 0;
}

/* A principal pattern: unix:uid=N, spiffe://TD/PATH, x509:..., or
 * custody:scheduler. */
static int
principal_check(struct loader *l, const char *s)
{
	const char *c, *path;

	if (strncmp(s, "unix:uid=", 9) == 0) {
		if (s[9] == '\0' || strlen(s + 9) > 10)
			return fail(l, "'%.64s': unix:uid= takes a number", s);
		for (c = s + 9; *c != '\0'; c++)
			if (*c < '0' || *c > '9')
				return fail(l,
				    "'%.64s': unix:uid= takes a number "
				    "(no globs)",
				    s);
		return 0;
	}
	if (strncmp(s, "spiffe://", 9) == 0) {
		path = strchr(s + 9, '/');
		if (path == s + 9 || s[9] == '\0')
			return fail(l, "'%.64s': no trust domain", s);
		for (c = s + 9; *c != '\0' && c != path; c++)
			if (*c == '*')
				return fail(l,
				    "'%.64s': no glob in a SPIFFE trust "
				    "domain",
				    s);
		return 0;
	}
	if (strncmp(s, "x509:", 5) == 0) {
		if (s[5] == '\0')
			return fail(l, "'%.64s': an empty subject", s);
		return 0;
	}
	if (strcmp(s, "custody:scheduler") == 0)
		return 0;
	return fail(l,
	    "'%.64s' is not a principal (unix:uid=N, spiffe://..., "
	    "x509:..., custody:scheduler)",
	    s);
}

/* A list of globs; principals are checked as principals too. */
static int
get_globs(struct loader *l, json_t *v, int principals, struct globs *g)
{
	const char *s = NULL, *why = NULL;
	size_t i, saved;
	json_t *e;
	int r;

	if ((r = get_list(l, v)) != 0)
		return r;
	if ((g->v = calloc(json_array_size(v), sizeof(*g->v))) == NULL)
		return CUSTODY_E_NOMEM;
	json_array_foreach(v, i, e)
	{
		saved = push_index(l, i);
		if ((r = get_string(l, e, &s)) != 0)
			return r;
		if (glob_check(s, &why) != 0)
			return fail(l, "'%.64s': %s", s, why);
		if (principals && (r = principal_check(l, s)) != 0)
			return r;
		if ((g->v[i].pat = strdup(s)) == NULL)
			return CUSTODY_E_NOMEM;
		g->v[i].prefix = strcspn(s, "*");
		g->v[i].literal = s[g->v[i].prefix] == '\0';
		g->n++;
		pop(l, saved);
	}
	return 0;
}

/* Member field of o, if present, as a list of names (get_names()). */
static int
opt_names(struct loader *l, json_t *o, const char *field,
    const char *const *names, const char *what, unsigned *maskp)
{
	json_t *v = json_object_get(o, field);
	size_t saved;
	int r;

	if (v == NULL)
		return 0;
	saved = push(l, field);
	if ((r = get_names(l, v, names, what, maskp)) == 0)
		pop(l, saved);
	return r;
}

/* Member field of o, if present, as a list of globs (get_globs()). */
static int
opt_globs(struct loader *l, json_t *o, const char *field, struct globs *g)
{
	json_t *v = json_object_get(o, field);
	size_t saved;
	int r;

	if (v == NULL)
		return 0;
	saved = push(l, field);
	if ((r = get_globs(l, v, 0, g)) == 0)
		pop(l, saved);
	return r;
}

/* ---- the index
 * ---------------------------------------------------------------- */

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME  1099511628211ull

static uint64_t
hash_seed(int action)
{
	return (FNV_OFFSET ^ (uint64_t)(action + 1)) * FNV_PRIME;
}

static uint64_t
hash_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * FNV_PRIME;
}

static struct ientry *
index_find(
    const struct index *ix, int action, uint64_t h, const char *key, size_t len)
{
	struct ientry *e;

	if (ix->cap == 0)
		return NULL;
	for (e = ix->tab[h & (ix->cap - 1)]; e != NULL; e = e->next)
		if (e->hash == h && e->action == action && e->len == len &&
		    memcmp(e->key, key, len) == 0)
			return e;
	return NULL;
}

static int
index_grow(struct index *ix)
{
	struct ientry **tab, *e, *next;
	size_t cap = ix->cap ? ix->cap * 2 : 64, i;

	if ((tab = calloc(cap, sizeof(*tab))) == NULL)
		return CUSTODY_E_NOMEM;
	for (i = 0; i < ix->cap; i++)
		for (e = ix->tab[i]; e != NULL; e = next) {
			next = e->next;
			e->next = tab[e->hash & (cap - 1)];
			tab[e->hash & (cap - 1)] = e;
		}
	free(ix->tab);
	ix->tab = tab;
	ix->cap = cap;
	return 0;
}

static int
index_add(
    struct index *ix, int action, const char *key, size_t len, uint32_t rule)
{
	struct ientry *e;
	uint64_t h = hash_seed(action);
	uint32_t *v;
	size_t i;

	for (i = 0; i < len; i++)
		h = hash_step(h, (unsigned char)key[i]);
	if ((e = index_find(ix, action, h, key, len)) == NULL) {
		if (ix->n + 1 > ix->cap / 2 && index_grow(ix) != 0)
			return CUSTODY_E_NOMEM;
		if ((e = calloc(1, sizeof(*e) + len + 1)) == NULL)
			return CUSTODY_E_NOMEM;
		e->hash = h;
		e->action = action;
		e->len = len;
		memcpy(e->key, key, len);
		e->next = ix->tab[h & (ix->cap - 1)];
		ix->tab[h & (ix->cap - 1)] = e;
		ix->n++;
	}
	/* a rule listed twice under one key (two patterns, same prefix) */
	if (e->n > 0 && e->rules[e->n - 1] == rule)
		return 0;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 4;

		if ((v = realloc(e->rules, cap * sizeof(*v))) == NULL)
			return CUSTODY_E_NOMEM;
		e->rules = v;
		e->cap = cap;
	}
	e->rules[e->n++] = rule;
	return 0;
}

static void
index_free(struct index *ix)
{
	struct ientry *e, *next;
	size_t i;

	for (i = 0; i < ix->cap; i++)
		for (e = ix->tab[i]; e != NULL; e = next) {
			next = e->next;
			free(e->rules);
			free(e);
		}
	free(ix->tab);
}

/* ---- rules
 * ------------------------------------------------------------------------ */

static int
rule_id_ok(const char *s)
{
	const char *c;

	if (strlen(s) > POLICY_RULE_ID_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (c = s; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
			*c == '.' || *c == '_' || *c == '-'))
			return 0;
	return 1;
}

static int
parse_hhmm(const char *s, int *minp)
{
	if (s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9' ||
	    s[2] != ':' || s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
		return -1;
	*minp = ((s[0] - '0') * 10 + (s[1] - '0')) * 60 + (s[3] - '0') * 10 +
		(s[4] - '0');
	return *minp < 24 * 60 ? 0 : -1;
}

static int
parse_time_window(struct loader *l, json_t *o, struct rule *ru)
{
	static const char *const fields[] = {
	    "after", "before", "days", "hours", NULL};
	const char *s = NULL;
	size_t saved;
	json_t *v;
	int r;

	if (!json_is_object(o))
		return fail(l, "must be an object");
	if ((r = only_fields(l, o, fields)) != 0)
		return r;
	if (json_object_size(o) == 0)
		return fail(l, "names no window (after, before, days, hours)");
	ru->has_time = 1;
	ru->hours_from = ru->hours_to = -1;
	if ((v = json_object_get(o, "after")) != NULL) {
		saved = push(l, "after");
		if ((r = get_string(l, v, &s)) != 0)
			return r;
		if (util_parse_time(s, &ru->after) != 0)
			return fail(l, "not an RFC 3339 time");
		ru->has_after = 1;
		pop(l, saved);
	}
	if ((v = json_object_get(o, "before")) != NULL) {
		saved = push(l, "before");
		if ((r = get_string(l, v, &s)) != 0)
			return r;
		if (util_parse_time(s, &ru->before) != 0)
			return fail(l, "not an RFC 3339 time");
		ru->has_before = 1;
		if (json_object_get(o, "after") != NULL &&
		    ru->before <= ru->after)
			return fail(l, "not after 'after'");
		pop(l, saved);
	}
	if ((r = opt_names(
		 l, o, "days", day_names, "day (mon ... sun)", &ru->days)) != 0)
		return r;
	if ((v = json_object_get(o, "hours")) != NULL) {
		saved = push(l, "hours");
		if ((r = get_string(l, v, &s)) != 0)
			return r;
		if (strlen(s) != 11 || s[5] != '-' ||
		    parse_hhmm(s, &ru->hours_from) != 0 ||
		    parse_hhmm(s + 6, &ru->hours_to) != 0)
			return fail(l, "'%.32s' is not HH:MM-HH:MM", s);
		if (ru->hours_from == ru->hours_to)
			return fail(l, "an empty window");
		pop(l, saved);
	}
	return 0;
}

static int
parse_rate_one(struct loader *l, json_t *o, struct rate **rp)
{
	static const char *const fields[] = {"limit", "per", "burst", NULL};
	struct rate *ra;
	json_t *v;
	size_t saved;
	int64_t per;
	int r;

	if (!json_is_object(o))
		return fail(l, "must be an object");
	if ((r = only_fields(l, o, fields)) != 0)
		return r;
	if ((ra = calloc(1, sizeof(*ra))) == NULL)
		return CUSTODY_E_NOMEM;
	*rp = ra;
	saved = push(l, "limit");
	v = json_object_get(o, "limit");
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > 1000000000)
		return fail(l, "required: a whole number from 1");
	ra->limit = json_integer_value(v);
	pop(l, saved);
	saved = push(l, "per");
	if ((v = json_object_get(o, "per")) == NULL)
		return fail(l, "required: a duration");
	if ((r = get_duration(l, v, &per)) != 0)
		return r;
	ra->per_ms = per * 1000;
	pop(l, saved);
	ra->burst = ra->limit;
	if ((v = json_object_get(o, "burst")) != NULL) {
		saved = push(l, "burst");
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 1000000000)
			return fail(l, "a whole number from 1");
		ra->burst = json_integer_value(v);
		pop(l, saved);
	}
	return 0;
}

static int
parse_rate(struct loader *l, json_t *o, struct rule *ru)
{
	static const char *const fields[] = {"per_principal", "per_key", NULL};
	size_t saved;
	json_t *v;
	int r;

	if (!json_is_object(o))
		return fail(l, "must be an object");
	if ((r = only_fields(l, o, fields)) != 0)
		return r;
	if (json_object_size(o) == 0)
		return fail(l, "names no limit (per_principal, per_key)");
	if ((v = json_object_get(o, "per_principal")) != NULL) {
		saved = push(l, "per_principal");
		if ((r = parse_rate_one(l, v, &ru->per_principal)) != 0)
			return r;
		pop(l, saved);
	}
	if ((v = json_object_get(o, "per_key")) != NULL) {
		saved = push(l, "per_key");
		if (!(ru->actions & A_WITH_KEY))
			return fail(l, "none of the rule's actions has a key");
		if ((r = parse_rate_one(l, v, &ru->per_key)) != 0)
			return r;
		pop(l, saved);
	}
	return 0;
}

static int
parse_x509(struct loader *l, json_t *o, struct rule *ru)
{
	static const char *const fields[] = {
	    "csr_keys", "eku", "key_usage", NULL};
	size_t saved;
	json_t *v;
	int r;

	if (!json_is_object(o))
		return fail(l, "must be an object");
	if ((r = only_fields(l, o, fields)) != 0)
		return r;
	ru->has_x509 = 1;
	ru->eku = POLICY_EKU_CLIENT_AUTH;
	ru->ku = POLICY_KU_DIGITAL_SIGNATURE;
	saved = push(l, "csr_keys");
	if ((v = json_object_get(o, "csr_keys")) == NULL)
		return fail(l, "required: the CSR key types allowed");
	if ((r = get_names(
		 l, v, csr_key_names, "CSR key type", &ru->csr_keys)) != 0)
		return r;
	pop(l, saved);
	if ((r = opt_names(l, o, "eku", eku_names, "extended key usage",
		 &ru->eku)) != 0 ||
	    (r = opt_names(
		 l, o, "key_usage", ku_names, "key usage", &ru->ku)) != 0)
		return r;
	return 0;
}

static int
parse_claims(struct loader *l, json_t *v, struct rule *ru)
{
	const char *s = NULL;
	size_t i, j, saved;
	json_t *e;
	int r;

	if ((r = get_list(l, v)) != 0)
		return r;
	if ((ru->claims = calloc(json_array_size(v), sizeof(char *))) == NULL)
		return CUSTODY_E_NOMEM;
	json_array_foreach(v, i, e)
	{
		saved = push_index(l, i);
		if ((r = get_string(l, e, &s)) != 0)
			return r;
		if (name_index(reserved_claims, s) >= 0)
			return fail(l,
			    "'%.64s' is reserved: custody sets it, or "
			    "a condition governs it",
			    s);
		for (j = 0; j < ru->nclaims; j++)
			if (strcmp(ru->claims[j], s) == 0)
				return fail(l, "'%.64s' is listed twice", s);
		if ((ru->claims[ru->nclaims] = strdup(s)) == NULL)
			return CUSTODY_E_NOMEM;
		ru->nclaims++;
		pop(l, saved);
	}
	return 0;
}

/* Each condition: its name and the actions it applies to. */
static const struct {
	const char *name;
	unsigned actions;
	int on_deny; /* has a meaning on a deny rule (deny_holds()) */
} condition_table[] = {
    {"max_ttl", A_CREDENTIAL, 0},
    {"audiences", A(POLICY_CREDENTIAL_JWT), 1},
    {"sub", A(POLICY_CREDENTIAL_JWT), 0},
    {"claims", A(POLICY_CREDENTIAL_JWT), 1},
    {"act", A(POLICY_CREDENTIAL_JWT), 1},
    {"x509", A(POLICY_CREDENTIAL_X509), 0},
    {"max_key_age", A_WITH_KEY & ~A(POLICY_KEY_CREATE), 0},
    {"time", A_ALL, 1},
    {"events", A(POLICY_LIFECYCLE_EVENT), 1},
    {"task", A(POLICY_KEY_CREATE), 0},
    {"max_key_ttl", A(POLICY_KEY_CREATE), 0},
    {"rate", A_ALL, 0},
};
#define NCONDITIONS (sizeof(condition_table) / sizeof(condition_table[0]))

static int
parse_conditions(struct loader *l, json_t *o, struct rule *ru)
{
	const char *k, *s = NULL;
	size_t saved, i;
	json_t *v;
	int r;

	if (!json_is_object(o))
		return fail(l, "must be an object");
	json_object_foreach(o, k, v)
	{
		saved = push(l, k);
		for (i = 0; i < NCONDITIONS; i++)
			if (strcmp(condition_table[i].name, k) == 0)
				break;
		if (i == NCONDITIONS)
			return fail(l, "unknown condition");
		if (!(condition_table[i].actions & ru->actions))
			return fail(l, "applies to none of the rule's actions");
		if (ru->deny && !condition_table[i].on_deny)
			return fail(l,
			    "not a condition of deny rules (time, events, "
			    "audiences, claims, act)");
		if (strcmp(k, "max_ttl") == 0)
			r = get_duration(l, v, &ru->max_ttl);
		else if (strcmp(k, "audiences") == 0) {
			ru->has_audiences = 1;
			r = get_globs(l, v, 0, &ru->audiences);
		} else if (strcmp(k, "sub") == 0) {
			if ((r = get_string(l, v, &s)) == 0) {
				if (strcmp(s, "any") == 0)
					ru->sub_any = 1;
				else if (strcmp(s, "agent") != 0)
					r = fail(l, "\"agent\" or \"any\"");
			}
		} else if (strcmp(k, "claims") == 0) {
			r = parse_claims(l, v, ru);
			ru->has_claims = 1;
		} else if (strcmp(k, "act") == 0) {
			r = get_bool(l, v, &ru->act);
			ru->has_act = 1;
		} else if (strcmp(k, "x509") == 0)
			r = parse_x509(l, v, ru);
		else if (strcmp(k, "max_key_age") == 0)
			r = get_duration(l, v, &ru->max_key_age);
		else if (strcmp(k, "time") == 0)
			r = parse_time_window(l, v, ru);
		else if (strcmp(k, "events") == 0)
			r = get_names(l, v, event_names, "event", &ru->events);
		else if (strcmp(k, "task") == 0) {
			if ((r = get_string(l, v, &s)) == 0 &&
			    strcmp(s, "required") != 0)
				r = fail(l, "the only value is \"required\"");
			ru->task_required = r == 0;
		} else if (strcmp(k, "max_key_ttl") == 0)
			r = get_duration(l, v, &ru->max_key_ttl);
		else
			r = parse_rate(l, v, ru);
		if (r != 0)
			return r;
		pop(l, saved);
	}
	return 0;
}

static int
parse_keys(struct loader *l, json_t *o, struct rule *ru)
{
	static const char *const fields[] = {
	    "agent", "owner", "purpose", "alg", "task", NULL};
	size_t saved;
	json_t *v;
	int r;

	if (!json_is_object(o))
		return fail(l, "must be an object");
	if ((r = only_fields(l, o, fields)) != 0)
		return r;
	if (!(ru->actions & A_WITH_KEY))
		return fail(l, "none of the rule's actions is about a key");
	ru->has_keys = 1;
	ru->task_sel = -1;
	if ((r = opt_globs(l, o, "agent", &ru->agents)) != 0 ||
	    (r = opt_globs(l, o, "owner", &ru->owners)) != 0 ||
	    (r = opt_names(l, o, "purpose", purpose_names, "purpose",
		 &ru->purposes)) != 0 ||
	    (r = opt_names(l, o, "alg", alg_names, "algorithm", &ru->algs)) !=
		0)
		return r;
	if ((v = json_object_get(o, "task")) != NULL) {
		saved = push(l, "task");
		if ((r = get_bool(l, v, &ru->task_sel)) != 0)
			return r;
		pop(l, saved);
	}
	return 0;
}

static int
parse_rule(struct loader *l, json_t *o, struct rule *ru)
{
	static const char *const fields[] = {"id", "description", "effect",
	    "principals", "actions", "keys", "conditions", NULL};
	const char *s = NULL;
	size_t saved, i;
	json_t *v, *e;
	int r, a;

	if (!json_is_object(o))
		return fail(l, "a rule must be an object");
	if ((r = only_fields(l, o, fields)) != 0)
		return r;
	ru->task_sel = -1;
	ru->hours_from = ru->hours_to = -1;
	saved = push(l, "id");
	if ((v = json_object_get(o, "id")) == NULL)
		return fail(l, "required");
	if ((r = get_string(l, v, &s)) != 0)
		return r;
	if (!rule_id_ok(s))
		return fail(l,
		    "'%.64s': an id is [a-z0-9][a-z0-9._-]*, at most %d "
		    "bytes",
		    s, POLICY_RULE_ID_MAX);
	memcpy(ru->id, s, strlen(s) + 1);
	pop(l, saved);
	if ((v = json_object_get(o, "description")) != NULL) {
		saved = push(l, "description");
		if ((r = get_string(l, v, &s)) != 0)
			return r;
		pop(l, saved);
	}
	saved = push(l, "effect");
	if ((v = json_object_get(o, "effect")) == NULL)
		return fail(l, "required: \"allow\" or \"deny\"");
	if ((r = get_string(l, v, &s)) != 0)
		return r;
	if (strcmp(s, "deny") == 0)
		ru->deny = 1;
	else if (strcmp(s, "allow") != 0)
		return fail(l, "\"allow\" or \"deny\"");
	pop(l, saved);
	saved = push(l, "actions");
	if ((v = json_object_get(o, "actions")) == NULL)
		return fail(l, "required");
	if ((r = get_list(l, v)) != 0)
		return r;
	json_array_foreach(v, i, e)
	{
		size_t s2 = push_index(l, i);

		if ((r = get_string(l, e, &s)) != 0)
			return r;
		if ((a = policy_action_parse(s)) < 0)
			return fail(l, "unknown action '%.64s'", s);
		if (ru->actions & A(a))
			return fail(l, "'%s' is listed twice", s);
		ru->actions |= A(a);
		pop(l, s2);
	}
	pop(l, saved);
	saved = push(l, "principals");
	if ((v = json_object_get(o, "principals")) == NULL)
		return fail(l, "required");
	if ((r = get_globs(l, v, 1, &ru->principals)) != 0)
		return r;
	pop(l, saved);
	if ((v = json_object_get(o, "keys")) != NULL) {
		saved = push(l, "keys");
		if ((r = parse_keys(l, v, ru)) != 0)
			return r;
		pop(l, saved);
	}
	if ((v = json_object_get(o, "conditions")) != NULL) {
		saved = push(l, "conditions");
		if ((r = parse_conditions(l, v, ru)) != 0)
			return r;
		pop(l, saved);
	}
	/* short-lived by construction: no credential without a maximum */
	if (!ru->deny && (ru->actions & A_CREDENTIAL) && ru->max_ttl == 0)
		return fail(l, "a rule that allows credentials needs "
			       "conditions/max_ttl");
	if (!ru->deny && (ru->actions & A(POLICY_CREDENTIAL_X509)) &&
	    !ru->has_x509)
		return fail(l, "a rule that allows credential.x509 needs "
			       "conditions/x509");
	return 0;
}

static void
rate_free(struct rate *ra)
{
	struct bucket *b, *next;
	size_t i;

	if (ra == NULL)
		return;
	for (i = 0; i < ra->cap; i++)
		for (b = ra->tab[i]; b != NULL; b = next) {
			next = b->next;
			free(b);
		}
	free(ra->tab);
	free(ra);
}

static void
rule_cleanup(struct rule *ru)
{
	size_t i;

	globs_free(&ru->principals);
	globs_free(&ru->agents);
	globs_free(&ru->owners);
	globs_free(&ru->audiences);
	for (i = 0; i < ru->nclaims; i++)
		free(ru->claims[i]);
	free(ru->claims);
	rate_free(ru->per_principal);
	rate_free(ru->per_key);
}

/* ---- lifecycle
 * ------------------------------------------------------------------- */

static void
lifecycle_defaults(struct policy *p)
{
	p->lifecycle[0] =
	    (struct policy_lifecycle_rule){POLICY_LC_DESTROY, PURPOSES_AGENT};
	p->lifecycle[1] =
	    (struct policy_lifecycle_rule){POLICY_LC_DESTROY, PURPOSES_AGENT};
	p->lifecycle[2] =
	    (struct policy_lifecycle_rule){POLICY_LC_ROTATE, PURPOSES_AGENT};
	p->lifecycle[3] =
	    (struct policy_lifecycle_rule){POLICY_LC_DESTROY, PURPOSES_AGENT};
	p->retired_keep = 0;
}

static int
parse_lifecycle(struct loader *l, json_t *o)
{
	static const char *const fields[] = {"events", "retired_keep", NULL};
	static const char *const efields[] = {"action", "purposes", NULL};
	const char *k, *s = NULL;
	size_t saved, s2, s3;
	json_t *v, *ev, *a;
	int r, e, act;

	if (!json_is_object(o))
		return fail(l, "must be an object");
	if ((r = only_fields(l, o, fields)) != 0)
		return r;
	if ((v = json_object_get(o, "retired_keep")) != NULL) {
		saved = push(l, "retired_keep");
		if ((r = get_string(l, v, &s)) != 0)
			return r;
		if (strspn(s, "0") > 0 && strspn(s, "0") == strlen(s) - 1 &&
		    strchr("smhd", s[strlen(s) - 1]) != NULL)
			l->p->retired_keep = 0; /* "0s", "0d": keep none */
		else if ((r = get_duration(l, v, &l->p->retired_keep)) != 0)
			return r;
		pop(l, saved);
	}
	if ((v = json_object_get(o, "events")) == NULL)
		return 0;
	saved = push(l, "events");
	if (!json_is_object(v))
		return fail(l, "must be an object");
	json_object_foreach(v, k, ev)
	{
		s2 = push(l, k);
		if ((e = name_index(event_names, k)) < 0)
			return fail(l, "unknown event");
		if (!json_is_object(ev))
			return fail(l, "must be an object");
		if ((r = only_fields(l, ev, efields)) != 0)
			return r;
		s3 = push(l, "action");
		if ((a = json_object_get(ev, "action")) == NULL)
			return fail(l, "required");
		if ((r = get_string(l, a, &s)) != 0)
			return r;
		if ((act = name_index(lc_action_names, s)) < 0 ||
		    !(event_actions[e] & (1u << act)))
			return fail(l, "'%.32s' is not an action of %s", s, k);
		l->p->lifecycle[e].action = act;
		pop(l, s3);
		if ((a = json_object_get(ev, "purposes")) != NULL) {
			s3 = push(l, "purposes");
			if ((r = get_names(l, a, purpose_names, "purpose",
				 &l->p->lifecycle[e].purposes)) != 0)
				return r;
			if ((l->p->lifecycle[e].purposes & ~PURPOSES_AGENT) &&
			    strcmp(k, "key.compromised") != 0)
				return fail(l,
				    "the service's own keys (checkpoint, "
				    "attestation) answer to key.compromised "
				    "only");
			pop(l, s3);
		}
		pop(l, s2);
	}
	pop(l, saved);
	return 0;
}

/* ---- loading
 * ---------------------------------------------------------------------- */

static int
depth_ok(json_t *v, int depth)
{
	const char *k;
	json_t *e;
	size_t i;

	if (depth > MAX_DEPTH)
		return 0;
	if (json_is_object(v)) {
		json_object_foreach(v, k, e)
		{
			if (!depth_ok(e, depth + 1))
				return 0;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
		{
			if (!depth_ok(e, depth + 1))
				return 0;
		}
	}
	return 1;
}

static int
build_index(struct policy *p)
{
	const struct rule *ru;
	const struct glob *g;
	size_t i, j;
	int a, r;

	for (i = 0; i < p->nrules; i++) {
		ru = &p->rules[i];
		for (a = 0; a < POLICY_NACTIONS; a++) {
			if (!(ru->actions & A(a)))
				continue;
			for (j = 0; j < ru->principals.n; j++) {
				g = &ru->principals.v[j];
				r = index_add(
				    g->literal ? &p->exact : &p->prefix, a,
				    g->pat, g->prefix, (uint32_t)i);
				if (r != 0)
					return r;
			}
		}
	}
	return 0;
}

int
policy_parse(const char *name, const uint8_t *buf, size_t len,
    struct policy **pp, char *err, size_t errsz)
{
	struct loader l;
	struct policy *p = NULL;
	json_error_t jerr;
	json_t *root = NULL, *v, *e;
	const char *s = NULL;
	size_t i, j, saved;
	static const char *const fields[] = {
	    "version", "description", "rules", "lifecycle", NULL};
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    buf != NULL || len == 0, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(pp != NULL, CUSTODY_E_INVALID_ARG);
	memset(&l, 0, sizeof(l));
	l.name = name != NULL ? name : "(policy)";
	l.err = err;
	l.errsz = errsz;
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	if (len > POLICY_FILE_MAX) {
		if (err != NULL)
			snprintf(err, errsz, "%s: larger than %u MiB", l.name,
			    POLICY_FILE_MAX >> 20);
		return CUSTODY_E_TOO_LARGE;
	}
	root =
	    json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		if (err != NULL)
			snprintf(err, errsz, "%s:%d:%d: %s", l.name, jerr.line,
			    jerr.column, jerr.text);
		return CUSTODY_E_PARSE;
	}
	if (!depth_ok(root, 0)) {
		r = fail(&l, "nested deeper than %d levels", MAX_DEPTH);
		goto out;
	}
	if (!json_is_object(root)) {
		r = fail(&l, "a policy is a JSON object");
		goto out;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->name = strdup(l.name)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	atomic_init(&p->refs, 1);
	pthread_mutex_init(&p->rate_lock, NULL);
	lifecycle_defaults(p);
	l.p = p;
	if ((r = only_fields(&l, root, fields)) != 0)
		goto out;
	saved = push(&l, "version");
	v = json_object_get(root, "version");
	if (v == NULL) {
		r = fail(&l, "required (1)");
		goto out;
	}
	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		r = fail(&l, "this custody reads policy version 1 only");
		goto out;
	}
	pop(&l, saved);
	if ((v = json_object_get(root, "description")) != NULL) {
		saved = push(&l, "description");
		if ((r = get_string(&l, v, &s)) != 0)
			goto out;
		pop(&l, saved);
	}
	saved = push(&l, "rules");
	if ((v = json_object_get(root, "rules")) == NULL) {
		r = fail(&l, "required (an array, possibly empty)");
		goto out;
	}
	if (!json_is_array(v)) {
		r = fail(&l, "must be an array");
		goto out;
	}
	if (json_array_size(v) > MAX_RULES) {
		r = fail(&l, "more than %d rules", MAX_RULES);
		goto out;
	}
	if (json_array_size(v) > 0 && (p->rules = calloc(json_array_size(v),
					   sizeof(*p->rules))) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	json_array_foreach(v, i, e)
	{
		size_t s2 = push_index(&l, i);

		p->nrules = i + 1;
		if ((r = parse_rule(&l, e, &p->rules[i])) != 0)
			goto out;
		pop(&l, s2);
	}
	pop(&l, saved);
	if ((v = json_object_get(root, "lifecycle")) != NULL) {
		saved = push(&l, "lifecycle");
		if ((r = parse_lifecycle(&l, v)) != 0)
			goto out;
		pop(&l, saved);
	}
	if ((r = build_index(p)) != 0)
		goto out;
	/* unique ids: sorted copies would cost as much as this for the
	 * sizes that matter; the exact index is reused as a set */
	{
		struct index ids = {0};

		for (i = 0; i < p->nrules && r == 0; i++) {
			uint64_t h = hash_seed(-1);
			const char *id = p->rules[i].id;

			for (j = 0; id[j] != '\0'; j++)
				h = hash_step(h, (unsigned char)id[j]);
			if (index_find(&ids, -1, h, id, j) != NULL) {
				saved = push(&l, "rules");
				push_index(&l, i);
				push(&l, "id");
				r = fail(&l,
				    "'%s' is the id of an earlier rule", id);
			} else
				r = index_add(&ids, -1, id, j, (uint32_t)i);
		}
		index_free(&ids);
		if (r != 0)
			goto out;
	}
	if (SHA256(buf, len, p->sha256) == NULL) {
		r = CUSTODY_E_CRYPTO;
		goto out;
	}
	*pp = p;
	p = NULL;
	r = 0;
out:
	if (r == CUSTODY_E_NOMEM && err != NULL && errsz > 0)
		snprintf(err, errsz, "%s: out of memory", l.name);
	policy_free(p);
	json_decref(root);
	return r;
}

int
policy_load(const char *path, struct policy **pp, char *err, size_t errsz)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    path != NULL && pp != NULL, CUSTODY_E_INVALID_ARG);
	r = util_read_file(path, POLICY_FILE_MAX, &buf, &len);
	if (r != 0) {
		if (err != NULL && errsz > 0)
			snprintf(err, errsz, "%s: %s", path,
			    r == CUSTODY_E_TOO_LARGE ? "larger than 32 MiB"
						     : custody_strerror(r));
		return r;
	}
	r = policy_parse(path, buf, len, pp, err, errsz);
	free(buf);
	return r;
}

struct policy *
policy_ref(struct policy *p)
{
	if (p != NULL)
		atomic_fetch_add(&p->refs, 1);
	return p;
}

void
policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL || atomic_fetch_sub(&p->refs, 1) > 1)
		return;
	for (i = 0; i < p->nrules; i++)
		rule_cleanup(&p->rules[i]);
	free(p->rules);
	index_free(&p->exact);
	index_free(&p->prefix);
	pthread_mutex_destroy(&p->rate_lock);
	free(p->name);
	free(p);
}

const uint8_t *
policy_sha256(const struct policy *p)
{
	return p->sha256;
}

const char *
policy_name(const struct policy *p)
{
	return p->name;
}

size_t
policy_nrules(const struct policy *p)
{
	return p->nrules;
}

int
policy_lifecycle(const struct policy *p, const char *event,
    struct policy_lifecycle_rule *out)
{
	int e;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    p != NULL && event != NULL && out != NULL, CUSTODY_E_INVALID_ARG);
	if ((e = name_index(event_names, event)) < 0)
		return CUSTODY_E_INVALID_ARG;
	*out = p->lifecycle[e];
	return 0;
}

int64_t
policy_retired_keep(const struct policy *p)
{
	return p->retired_keep;
}

int
policy_action_parse(const char *name)
{
	int a;

	if (name == NULL)
		return -1;
	for (a = 0; a < POLICY_NACTIONS; a++)
		if (strcmp(action_names[a], name) == 0)
			return a;
	return -1;
}

const char *
policy_action_name(int action)
{
	if (action < 0 || action >= POLICY_NACTIONS)
		return NULL;
	return action_names[action];
}

/* ---- evaluation
 * ------------------------------------------------------------------- */

struct cands {
	uint32_t *v;
	size_t n, cap;
	uint32_t stack[64];
};

static int
cands_add(struct cands *c, const uint32_t *rules, size_t n)
{
	uint32_t *v;
	size_t cap;

	if (c->n + n > c->cap) {
		cap = c->cap * 2 > c->n + n ? c->cap * 2 : c->n + n;
		if (c->v == c->stack) {
			if ((v = malloc(cap * sizeof(*v))) == NULL)
				return -1;
			memcpy(v, c->stack, c->n * sizeof(*v));
		} else if ((v = realloc(c->v, cap * sizeof(*v))) == NULL)
			return -1;
		c->v = v;
		c->cap = cap;
	}
	memcpy(c->v + c->n, rules, n * sizeof(*rules));
	c->n += n;
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The rules whose principals match, in file order, each once. */
static int
candidates(
    const struct policy *p, int action, const char *principal, struct cands *c)
{
	const struct ientry *e;
	uint64_t h = hash_seed(action);
	size_t len = strlen(principal), i, j, k;
	const struct rule *ru;

	for (i = 0;; i++) {
		/* every prefix of the principal, the empty one included */
		if ((e = index_find(&p->prefix, action, h, principal, i)) !=
		    NULL) {
			for (j = 0; j < e->n; j++) {
				ru = &p->rules[e->rules[j]];
				for (k = 0; k < ru->principals.n; k++)
					if (!ru->principals.v[k].literal &&
					    glob_match(ru->principals.v[k].pat,
						principal))
						break;
				if (k < ru->principals.n &&
				    cands_add(c, &e->rules[j], 1) != 0)
					return -1;
			}
		}
		if (i == len)
			break;
		h = hash_step(h, (unsigned char)principal[i]);
	}
	/* h is now the hash of the whole principal */
	if ((e = index_find(&p->exact, action, h, principal, len)) != NULL &&
	    cands_add(c, e->rules, e->n) != 0)
		return -1;
	qsort(c->v, c->n, sizeof(*c->v), cmp_u32);
	for (i = j = 0; i < c->n; i++)
		if (j == 0 || c->v[j - 1] != c->v[i])
			c->v[j++] = c->v[i];
	c->n = j;
	return 0;
}

static int
key_match(const struct rule *ru, int action, const struct policy_key *k)
{
	int i;

	if (!ru->has_keys)
		return 1;
	if (k == NULL || !(A(action) & A_WITH_KEY))
		return 0;
	if (ru->agents.n > 0 &&
	    (k->agent == NULL || !globs_match(&ru->agents, k->agent)))
		return 0;
	if (ru->owners.n > 0 &&
	    (k->owner == NULL || !globs_match(&ru->owners, k->owner)))
		return 0;
	if (ru->purposes != 0 &&
	    (k->purpose == NULL ||
		(i = name_index(purpose_names, k->purpose)) < 0 ||
		!(ru->purposes & (1u << i))))
		return 0;
	if (ru->algs != 0 &&
	    (k->alg == NULL || (i = name_index(alg_names, k->alg)) < 0 ||
		!(ru->algs & (1u << i))))
		return 0;
	if (ru->task_sel >= 0 && (k->task != NULL) != ru->task_sel)
		return 0;
	return 1;
}

static int
in_window(const struct rule *ru, int64_t now_ms, char *why, size_t whysz)
{
	int64_t now = now_ms / 1000 - (now_ms % 1000 < 0);
	time_t t = (time_t)now;
	struct tm tm;
	int min;

	if (ru->has_after && now < ru->after) {
		snprintf(why, whysz, "before the rule's time window opens");
		return 0;
	}
	if (ru->has_before && now >= ru->before) {
		snprintf(why, whysz, "after the rule's time window closed");
		return 0;
	}
	if (ru->days == 0 && ru->hours_from < 0)
		return 1;
	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(why, whysz, "the time is out of range");
		return 0;
	}
	if (ru->days != 0 && !(ru->days & (1u << tm.tm_wday))) {
		snprintf(why, whysz, "not on the rule's days (UTC)");
		return 0;
	}
	if (ru->hours_from >= 0) {
		min = tm.tm_hour * 60 + tm.tm_min;
		if (ru->hours_from < ru->hours_to
			? (min < ru->hours_from || min >= ru->hours_to)
			: (min < ru->hours_from && min >= ru->hours_to)) {
			snprintf(why, whysz, "outside the rule's hours (UTC)");
			return 0;
		}
	}
	return 1;
}

/* Do the rule's conditions that apply to this action hold? */
static int
conditions_hold(const struct rule *ru, const struct policy_request *q,
    char *why, size_t whysz)
{
	const struct policy_key *k = q->key;
	unsigned a = A(q->action);
	size_t i, j;
	int x;

	if (ru->has_audiences || (a & A(POLICY_CREDENTIAL_JWT))) {
		if ((a & A(POLICY_CREDENTIAL_JWT)) && q->naudiences > 0 &&
		    !ru->has_audiences) {
			snprintf(why, whysz, "it lists no audience");
			return 0;
		}
		for (i = 0; (a & A(POLICY_CREDENTIAL_JWT)) && i < q->naudiences;
		     i++)
			if (q->audiences[i] == NULL ||
			    !globs_match(&ru->audiences, q->audiences[i])) {
				snprintf(why, whysz,
				    "audience '%.64s' is not allowed",
				    q->audiences[i] ? q->audiences[i] : "");
				return 0;
			}
	}
	if (a & A(POLICY_CREDENTIAL_JWT)) {
		if (!ru->sub_any && q->sub != NULL &&
		    (k == NULL || k->agent == NULL ||
			strcmp(q->sub, k->agent) != 0)) {
			snprintf(why, whysz, "sub must be the key's agent");
			return 0;
		}
		for (i = 0; i < q->nclaims; i++) {
			for (j = 0; j < ru->nclaims; j++)
				if (q->claims[i] != NULL &&
				    strcmp(q->claims[i], ru->claims[j]) == 0)
					break;
			if (j == ru->nclaims) {
				snprintf(why, whysz,
				    "claim '%.64s' is not allowed",
				    q->claims[i] ? q->claims[i] : "");
				return 0;
			}
		}
		if (q->act && !ru->act) {
			snprintf(why, whysz, "an act claim is not allowed");
			return 0;
		}
	}
	if ((a & A(POLICY_CREDENTIAL_X509)) && ru->has_x509 &&
	    (q->csr_key == NULL ||
		(x = name_index(csr_key_names, q->csr_key)) < 0 ||
		!(ru->csr_keys & (1u << x)))) {
		snprintf(why, whysz, "CSR key type '%.32s' is not allowed",
		    q->csr_key ? q->csr_key : "(none)");
		return 0;
	}
	if (ru->max_key_age != 0 && k != NULL && k->created_at > 0 &&
	    !(a & A(POLICY_KEY_CREATE)) &&
	    q->now_ms / 1000 - k->created_at > ru->max_key_age) {
		snprintf(why, whysz, "the key is older than max_key_age");
		return 0;
	}
	if (ru->has_time && !in_window(ru, q->now_ms, why, whysz))
		return 0;
	if (ru->events != 0 && (a & A(POLICY_LIFECYCLE_EVENT)) &&
	    (q->event == NULL || (x = name_index(event_names, q->event)) < 0 ||
		!(ru->events & (1u << x)))) {
		snprintf(why, whysz, "event '%.32s' is not allowed",
		    q->event ? q->event : "(none)");
		return 0;
	}
	if (a & A(POLICY_KEY_CREATE)) {
		if (ru->task_required && (k == NULL || k->task == NULL)) {
			snprintf(why, whysz, "the key must have a task");
			return 0;
		}
		if (ru->max_key_ttl != 0 &&
		    (k == NULL || k->ttl <= 0 || k->ttl > ru->max_key_ttl)) {
			snprintf(why, whysz,
			    "the key's ttl must be set and at most "
			    "max_key_ttl");
			return 0;
		}
	}
	return 1;
}

/* Is name one of list? */
static int
listed(const char *name, char *const *list, size_t n)
{
	size_t i;

	for (i = 0; name != NULL && i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return 1;
	return 0;
}

/*
 * Does a deny rule apply? Its conditions scope it: it applies when the
 * request is inside every one it gives (a time window; an event listed;
 * some audience or custom claim asked for listed; "act": true, an act
 * claim asked for). A deny rule without conditions always applies.
 */
static int
deny_holds(const struct rule *ru, const struct policy_request *q)
{
	unsigned a = A(q->action);
	char why[160];
	size_t i;
	int hit, x;

	if (ru->has_time && !in_window(ru, q->now_ms, why, sizeof(why)))
		return 0;
	if (ru->events != 0 && (a & A(POLICY_LIFECYCLE_EVENT)) &&
	    (q->event == NULL || (x = name_index(event_names, q->event)) < 0 ||
		!(ru->events & (1u << x))))
		return 0;
	if (!(a & A(POLICY_CREDENTIAL_JWT)))
		return 1;
	if (ru->has_audiences) {
		for (hit = 0, i = 0; !hit && i < q->naudiences; i++)
			hit = q->audiences[i] != NULL &&
			      globs_match(&ru->audiences, q->audiences[i]);
		if (!hit)
			return 0;
	}
	if (ru->has_claims) {
		for (hit = 0, i = 0; !hit && i < q->nclaims; i++)
			hit = listed(q->claims[i], ru->claims, ru->nclaims);
		if (!hit)
			return 0;
	}
	if (ru->has_act && ru->act && !q->act)
		return 0;
	return 1;
}

/* ---- rate limits
 * -------------------------------------------------------------------- */

static uint64_t
str_hash(const char *s)
{
	uint64_t h = FNV_OFFSET;

	while (*s != '\0')
		h = hash_step(h, (unsigned char)*s++);
	return h;
}

static double
refill(const struct rate *ra, const struct bucket *b, int64_t now_ms)
{
	double t = b->tokens;

	if (now_ms > b->at_ms)
		t += (double)(now_ms - b->at_ms) * (double)ra->limit /
		     (double)ra->per_ms;
	return t > (double)ra->burst ? (double)ra->burst : t;
}

/* Drop buckets that are full again: they hold nothing a new one would not. */
static void
sweep(struct rate *ra, int64_t now_ms)
{
	struct bucket **pb, *b;
	size_t i;

	for (i = 0; i < ra->cap; i++)
		for (pb = &ra->tab[i]; (b = *pb) != NULL;) {
			if (refill(ra, b, now_ms) >= (double)ra->burst) {
				*pb = b->next;
				free(b);
				ra->n--;
			} else
				pb = &b->next;
		}
}

/* The bucket of key (created full); NULL when memory or the cap runs out. */
static struct bucket *
bucket_get(struct rate *ra, const char *key, int64_t now_ms)
{
	struct bucket *b, **tab;
	uint64_t h = str_hash(key);
	size_t i;

	if (ra->cap == 0) {
		if ((ra->tab = calloc(256, sizeof(*ra->tab))) == NULL)
			return NULL;
		ra->cap = 256;
	}
	for (b = ra->tab[h & (ra->cap - 1)]; b != NULL; b = b->next)
		if (strcmp(b->key, key) == 0)
			return b;
	if (ra->n >= MAX_BUCKETS) {
		sweep(ra, now_ms);
		if (ra->n >= MAX_BUCKETS)
			return NULL;
	}
	if (ra->n + 1 > ra->cap && ra->cap < MAX_BUCKETS) {
		struct bucket *next;

		if ((tab = calloc(ra->cap * 2, sizeof(*tab))) == NULL)
			return NULL;
		for (i = 0; i < ra->cap; i++)
			for (b = ra->tab[i]; b != NULL; b = next) {
				next = b->next;
				uint64_t bh = str_hash(b->key);

				b->next = tab[bh & (ra->cap * 2 - 1)];
				tab[bh & (ra->cap * 2 - 1)] = b;
			}
		free(ra->tab);
		ra->tab = tab;
		ra->cap *= 2;
	}
	if ((b = calloc(1, sizeof(*b) + strlen(key) + 1)) == NULL)
		return NULL;
	strcpy(b->key, key);
	b->tokens = (double)ra->burst;
	b->at_ms = now_ms;
	b->next = ra->tab[h & (ra->cap - 1)];
	ra->tab[h & (ra->cap - 1)] = b;
	ra->n++;
	return b;
}

/* Take one token from each limit of the rule, or none if one is empty.
 * Fails closed: a bucket that cannot be made refuses. */
static int
rate_take(struct policy *p, const struct rule *ru,
    const struct policy_request *q, char *why, size_t whysz)
{
	struct bucket *bp = NULL, *bk = NULL;
	char keybuf[2 * MAX_STRING + 8];
	double tp = 0, tk = 0;
	int ok = 1;

	if (ru->per_principal == NULL && ru->per_key == NULL)
		return 1;
	pthread_mutex_lock(&p->rate_lock);
	if (ru->per_principal != NULL) {
		if ((bp = bucket_get(
			 ru->per_principal, q->principal, q->now_ms)) == NULL)
			ok = 0;
		else
			ok = (tp = refill(ru->per_principal, bp, q->now_ms)) >=
			     1.0;
	}
	if (ok && ru->per_key != NULL) {
		const struct policy_key *k = q->key;

		if (k != NULL && k->id != NULL)
			snprintf(keybuf, sizeof(keybuf), "%s", k->id);
		else
			snprintf(keybuf, sizeof(keybuf), "%s\x1f%s",
			    k && k->agent ? k->agent : "",
			    k && k->purpose ? k->purpose : "");
		if ((bk = bucket_get(ru->per_key, keybuf, q->now_ms)) == NULL)
			ok = 0;
		else
			ok = (tk = refill(ru->per_key, bk, q->now_ms)) >= 1.0;
	}
	if (ok) {
		if (bp != NULL) {
			bp->tokens = tp - 1.0;
			bp->at_ms =
			    q->now_ms > bp->at_ms ? q->now_ms : bp->at_ms;
		}
		if (bk != NULL) {
			bk->tokens = tk - 1.0;
			bk->at_ms =
			    q->now_ms > bk->at_ms ? q->now_ms : bk->at_ms;
		}
	} else
		snprintf(why, whysz, "rate limited (%s)",
		    bp != NULL && tp < 1.0 ? "per principal" : "per key");
	pthread_mutex_unlock(&p->rate_lock);
	return ok;
}

/* ---- the decision
 * -------------------------------------------------------------------- */

static void decide(struct policy_decision *d, int allow, const char *rule,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
decide(struct policy_decision *d, int allow, const char *rule, const char *fmt,
    ...)
{
	va_list ap;

	d->allow = allow;
	snprintf(d->rule, sizeof(d->rule), "%s", rule);
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
}

void
policy_eval(
    struct policy *p, const struct policy_request *q, struct policy_decision *d)
{
	struct cands c = {0};
	const struct rule *ru;
	char why[160], first[240] = "";
	size_t i;
	int a;

	memset(d, 0, sizeof(*d));
	if (q == NULL) {
		decide(d, 0, "(default)", "no request");
		return;
	}
	if (p == NULL) {
		decide(d, 0, "(no policy)", "no policy is in force");
		return;
	}
	a = q->action;
	if (a < 0 || a >= POLICY_NACTIONS) {
		decide(d, 0, "(default)", "unknown action");
		return;
	}
	if (q->principal == NULL || q->principal[0] == '\0' ||
	    strlen(q->principal) > MAX_STRING) {
		decide(d, 0, "(default)", "no principal");
		return;
	}
	if ((A(a) & A_WITH_KEY) && q->key == NULL) {
		decide(d, 0, "(default)", "%s needs a key", action_names[a]);
		return;
	}
	for (i = 0; i < q->nclaims; i++)
		if (q->claims[i] == NULL ||
		    name_index(reserved_claims, q->claims[i]) >= 0) {
			decide(d, 0, "(default)",
			    "claim '%.64s' is reserved and cannot be asked "
			    "for",
			    q->claims[i] ? q->claims[i] : "(null)");
			return;
		}
	c.v = c.stack;
	c.cap = sizeof(c.stack) / sizeof(c.stack[0]);
	if (candidates(p, a, q->principal, &c) != 0) {
		decide(d, 0, "(default)", "out of memory (refused)");
		goto out;
	}
	/* deny wins, whatever the order */
	for (i = 0; i < c.n; i++) {
		ru = &p->rules[c.v[i]];
		if (ru->deny && key_match(ru, a, q->key) && deny_holds(ru, q)) {
			decide(d, 0, ru->id, "denied by rule %s", ru->id);
			goto out;
		}
	}
	for (i = 0; i < c.n; i++) {
		ru = &p->rules[c.v[i]];
		if (ru->deny || !key_match(ru, a, q->key))
			continue;
		if (!conditions_hold(ru, q, why, sizeof(why))) {
			if (first[0] == '\0')
				snprintf(first, sizeof(first), "rule %s: %s",
				    ru->id, why);
			continue;
		}
		if (!rate_take(p, ru, q, why, sizeof(why))) {
			decide(d, 0, ru->id, "rule %s: %s", ru->id, why);
			d->rate_limited = 1;
			goto out;
		}
		decide(d, 1, ru->id, "allowed by rule %s", ru->id);
		if (A(a) & A_CREDENTIAL)
			d->ttl = q->ttl > 0 && q->ttl < ru->max_ttl
				     ? q->ttl
				     : ru->max_ttl;
		if (a == POLICY_CREDENTIAL_X509) {
			d->eku = ru->eku;
			d->key_usage = ru->ku;
		}
		goto out;
	}
	if (first[0] != '\0')
		decide(d, 0, "(default)", "no rule allows it; %.200s", first);
	else
		decide(d, 0, "(default)", "no rule allows %.64s to %s",
		    q->principal, action_names[a]);
out:
	if (c.v != c.stack)
		free(c.v);
}
