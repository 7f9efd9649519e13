/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "alg.h"
#include "dsse.h"
#include "err.h"
#include "lcaudit.h"
#include "log.h"
#include "logdir.h"
#include "note.h"
#include "pubkey.h"
#include "util.h"

#define NOKEY		 SIZE_MAX
#define MAX_AGE_LIMIT	 (100LL * 365 * 86400) /* as util_parse_duration */
#define MSG_LEN		 512
#define ROTATION_SUFFIX	 "/key-rotation/v1"
#define DESTRUCTION_SUFF "/key-destruction/v1"
#define STATEMENT_V1	 "https://in-toto.io/Statement/v1"
#define MAX_SIGNER_TRIES 64 /* attestation keys tried for a bare signature */
#define SUMMARY_ACTIONS	 8  /* actions named in an event's summary */

/* A decision leaf that a later leaf refers to (attestation, outcome). */
enum dkind { D_ROTATE, D_DESTROY, D_JWT, D_X509 };

struct decision {
	int64_t seq;
	int64_t exp;   /* credentials: Unix seconds, INT64_MIN if not given */
	size_t key;    /* the key named (rotate: the old one), or NOKEY */
	size_t newkey; /* rotate: the new key, or NOKEY */
	uint8_t tbs[SHA256_DIGEST_LENGTH];
	uint8_t kind, has_tbs, failed, attested;
};

/* A lifecycle.event or recovery leaf, for the report. */
struct event {
	int64_t seq, ms;
	char *event;
	char *summary;
};

/* Open addressing, key index + 1 per slot (0: empty). */
struct smap {
	size_t *slot;
	size_t cap, n;
};

struct lcaudit {
	int64_t tol_ms;
	struct lcaudit_key *keys;
	size_t nkeys, capkeys;
	size_t *spki_next; /* per key: next key of the same SPKI digest + 1 */
	struct smap byid, byspki;
	size_t *att; /* keys of purpose "attestation" */
	size_t natt, capatt;
	struct decision *dec; /* by increasing seq */
	size_t ndec, capdec;
	struct event *ev;
	size_t nev, capev;
	uint64_t ev_omitted;
	struct lcaudit_violation *v;
	size_t *vkey; /* per violation: its key's index, or NOKEY */
	size_t nv, capv;
	struct lcaudit_counts c;
	int64_t last_seq; /* -1 before the first leaf */
	int64_t first_ms, last_ms;
	int have_time;
	int limit_said;
	int finished;
	int err; /* sticky: CUSTODY_E_NOMEM */
	/* the checkpoint keys handed over to (handover_keys()) */
	struct note_vkey **hv;
	size_t nhv;
};

static const char *const kind_names[LCAUDIT_V_COUNT] = {
    [LCAUDIT_V_MALFORMED] = "malformed",
    [LCAUDIT_V_SEQUENCE] = "sequence",
    [LCAUDIT_V_UNKNOWN_KEY] = "unknown-key",
    [LCAUDIT_V_DUPLICATE_KEY] = "duplicate-key",
    [LCAUDIT_V_STATE] = "state",
    [LCAUDIT_V_CREDENTIAL] = "credential",
    [LCAUDIT_V_ATTESTATION] = "attestation",
    [LCAUDIT_V_UNATTESTED] = "unattested",
    [LCAUDIT_V_MAX_AGE] = "max-age",
    [LCAUDIT_V_TTL] = "ttl",
    [LCAUDIT_V_LIMIT] = "limit",
};

const char *
lcaudit_kind_name(enum lcaudit_kind kind)
{
	if ((unsigned)kind >= LCAUDIT_V_COUNT)
		return "unknown";
	return kind_names[kind];
}

/* ---- small helpers ------------------------------------------------------ */

static void *
grow(void *p, size_t *capp, size_t n, size_t size)
{
	size_t cap = *capp ? *capp : 16;
	void *q;

	if (n < *capp)
		return p;
	while (cap <= n) {
		if (cap > SIZE_MAX / 2 / size)
			return NULL;
		cap *= 2;
	}
	if ((q = realloc(p, cap * size)) == NULL)
		return NULL;
	*capp = cap;
	return q;
}

static char *
dup_or_null(struct lcaudit *la, const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		la->err = CUSTODY_E_NOMEM;
	return d;
}

static const char *
jstr(json_t *o, const char *k)
{
	json_t *v = json_is_object(o) ? json_object_get(o, k) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* 1 and *vp for an integer member, 0 otherwise. */
static int
jint(json_t *o, const char *k, int64_t *vp)
{
	json_t *v = json_is_object(o) ? json_object_get(o, k) : NULL;

	if (!json_is_integer(v))
		return 0;
	*vp = (int64_t)json_integer_value(v);
	return 1;
}

static json_t *
jobj(json_t *o, const char *k)
{
	json_t *v = json_is_object(o) ? json_object_get(o, k) : NULL;

	return json_is_object(v) ? v : NULL;
}

/* RFC 3339 to Unix milliseconds (util_parse_time() drops the fraction). */
static int
parse_ms(const char *s, int64_t *msp)
{
	const char *p;
	int64_t t, frac = 0;
	int digits = 0;

	if (s == NULL || util_parse_time(s, &t) != 0)
		return CUSTODY_E_PARSE;
	if ((p = strchr(s, 'T')) == NULL && (p = strchr(s, 't')) == NULL)
		return CUSTODY_E_PARSE;
	if ((p = strchr(p, '.')) != NULL)
		for (p++; isdigit((unsigned char)*p); p++)
			if (digits < 3) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
	while (digits > 0 && digits < 3) {
		frac *= 10;
		digits++;
	}
	if (t > INT64_MAX / 1000 - 1 || t < INT64_MIN / 1000 + 1)
		return CUSTODY_E_PARSE;
	*msp = t * 1000 + frac;
	return 0;
}

/* "2026-11-23T10:00:00.123Z" (buf >= 32 bytes). */
static void
fmt_ms(int64_t ms, char *buf, size_t bufsz)
{
	int64_t s = ms / 1000, f = ms % 1000;
	char t[32];
	size_t n;

	if (f < 0) {
		f += 1000;
		s--;
	}
	util_format_time(s, t, sizeof(t));
	n = strlen(t);
	if (n > 0 && t[n - 1] == 'Z')
		t[n - 1] = '\0';
	snprintf(buf, bufsz, "%s.%03dZ", t, (int)f);
}

/* "1d 2h 3m 4s" of a number of seconds (buf >= 48 bytes). */
static void
fmt_dur(int64_t s, char *buf, size_t bufsz)
{
	static const struct {
		int64_t n;
		char u;
	} units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
	size_t off = 0, i;
	const char *sign = "";
	int n;

	if (s < 0) {
		sign = "-";
		s = s == INT64_MIN ? INT64_MAX : -s;
	}
	buf[0] = '\0';
	for (i = 0; i < 4 && off < bufsz; i++) {
		if (s < units[i].n && !(i == 3 && off == 0))
			continue;
		n = snprintf(buf + off, bufsz - off, "%s%s%" PRId64 "%c",
		    off ? " " : "", off ? "" : sign, s / units[i].n,
		    units[i].u);
		if (n < 0)
			break;
		off += (size_t)n;
		s %= units[i].n;
	}
}

/* The same of milliseconds: "1m 0.001s" (buf >= 48 bytes). */
static void
fmt_dur_ms(int64_t ms, char *buf, size_t bufsz)
{
	int64_t a = ms < 0 ? (ms == INT64_MIN ? INT64_MAX : -ms) : ms;
	size_t n;

	if (a % 1000 == 0) {
		fmt_dur(ms / 1000, buf, bufsz);
		return;
	}
	if (a < 60000) {
		snprintf(buf, bufsz, "%s%" PRId64 ".%03ds", ms < 0 ? "-" : "",
		    a / 1000, (int)(a % 1000));
		return;
	}
	fmt_dur((ms < 0 ? -1 : 1) * (a / 60000 * 60), buf, bufsz);
	n = strlen(buf);
	if (n < bufsz)
		snprintf(buf + n, bufsz - n, " %" PRId64 ".%03ds",
		    a % 60000 / 1000, (int)(a % 1000));
}

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static const char *
key_name(const struct lcaudit *la, size_t i, int spki)
{
	return spki ? la->keys[i].spki_sha256 : la->keys[i].id;
}

/* The slot of name in m (its content: 0, or a key index + 1). */
static size_t *
smap_find(
    const struct lcaudit *la, const struct smap *m, const char *name, int spki)
{
	size_t i;

	if (m->cap == 0)
		return NULL;
	for (i = hash_str(name) & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
		if (m->slot[i] == 0 ||
		    strcmp(key_name(la, m->slot[i] - 1, spki), name) == 0)
			return &m->slot[i];
}

/* Put key idx in m (spki: at the head of the chain of its digest). */
static int
smap_put(struct lcaudit *la, struct smap *m, size_t idx, int spki)
{
	size_t *s, *old, i, cap;

	if ((m->n + 1) * 2 > m->cap) {
		cap = m->cap ? m->cap * 2 : 64;
		old = m->slot;
		if ((m->slot = calloc(cap, sizeof(*m->slot))) == NULL) {
			m->slot = old;
			return CUSTODY_E_NOMEM;
		}
		m->cap = cap;
		m->n = 0;
		free(old);
		/* in index order, which rebuilds each chain as it was */
		for (i = 0; i < la->nkeys; i++)
			if (i != idx &&
			    (spki ? la->keys[i].spki_sha256[0] != '\0'
				  : la->keys[i].id != NULL) &&
			    smap_put(la, m, i, spki) != 0)
				return CUSTODY_E_NOMEM;
	}
	s = smap_find(la, m, key_name(la, idx, spki), spki);
	if (*s == 0)
		m->n++;
	if (spki)
		la->spki_next[idx] = *s;
	*s = idx + 1;
	return 0;
}

static size_t
key_index(const struct lcaudit *la, const char *id)
{
	size_t *s;

	if (id == NULL || (s = smap_find(la, &la->byid, id, 0)) == NULL ||
	    *s == 0)
		return NOKEY;
	return *s - 1;
}

static struct lcaudit_key *
key_at(struct lcaudit *la, size_t i)
{
	return i == NOKEY ? NULL : &la->keys[i];
}

/* Was k active at leaf seq (created at or before it, not ended by then)? */
static int
active_at(const struct lcaudit_key *k, int64_t seq)
{
	return k->created_seq <= seq &&
	       (k->ended_seq < 0 || k->ended_seq > seq);
}

static const char *
state_name(enum lcaudit_state s)
{
	return s == LCAUDIT_ACTIVE    ? "active"
	       : s == LCAUDIT_RETIRED ? "retired"
				      : "destroyed";
}

static const char *
end_name(enum lcaudit_end e)
{
	return e == LCAUDIT_END_ROTATE	  ? "rotate"
	       : e == LCAUDIT_END_RETIRE  ? "retire"
	       : e == LCAUDIT_END_DESTROY ? "destroy"
					  : "none";
}

/* ---- violations --------------------------------------------------------- */

static void viol(struct lcaudit *la, int64_t seq, enum lcaudit_kind kind,
    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
viol(struct lcaudit *la, int64_t seq, enum lcaudit_kind kind, const char *key,
    const char *fmt, ...)
{
	struct lcaudit_violation *v;
	size_t *vk, ki = key_index(la, key);
	char msg[MSG_LEN];
	va_list ap;

	la->c.violations++;
	if (ki != NOKEY)
		la->keys[ki].violations++;
	if (la->nv >= LCAUDIT_MAX_VIOLATIONS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((v = grow(la->v, &la->capv, la->nv, sizeof(*v))) == NULL) {
		la->err = CUSTODY_E_NOMEM;
		return;
	}
	la->v = v;
	if ((vk = realloc(la->vkey, la->capv * sizeof(*vk))) == NULL) {
		la->err = CUSTODY_E_NOMEM;
		return;
	}
	la->vkey = vk;
	v = &la->v[la->nv];
	v->seq = seq;
	v->kind = kind;
	v->key = dup_or_null(la, key);
	if ((v->msg = dup_or_null(la, msg)) == NULL) {
		free(v->key);
		return;
	}
	la->vkey[la->nv++] = ki;
}

/* ---- keys --------------------------------------------------------------- */

/*
 * A new key from its facts (a key.create leaf's detail, or a key.rotate
 * leaf's new_key): its index, or NOKEY if it cannot be one.
 */
static size_t
key_new(struct lcaudit *la, int64_t seq, int64_t ms, const char *id,
    const char *kid, json_t *facts, const char *what)
{
	static const char *const need[] = {
	    "agent", "owner", "purpose", "alg", "spki"};
	struct lcaudit_key *k;
	const char *spki;
	char missing[128] = "";
	uint8_t h[SHA256_DIGEST_LENGTH];
	size_t i, idx, *nx;
	int64_t n;

	if (id == NULL || id[0] == '\0') {
		viol(la, seq, LCAUDIT_V_MALFORMED, NULL,
		    "%s lacks the key's id", what);
		return NOKEY;
	}
	if ((idx = key_index(la, id)) != NOKEY) {
		viol(la, seq, LCAUDIT_V_DUPLICATE_KEY, id,
		    "%s creates key %.80s, created before at leaf %" PRId64,
		    what, id, la->keys[idx].created_seq);
		return NOKEY;
	}
	if (la->nkeys >= LCAUDIT_MAX_KEYS) {
		if (!la->limit_said)
			viol(la, seq, LCAUDIT_V_LIMIT, NULL,
			    "more than %d keys: the rest are not checked",
			    LCAUDIT_MAX_KEYS);
		la->limit_said = 1;
		return NOKEY;
	}
	if ((k = grow(la->keys, &la->capkeys, la->nkeys, sizeof(*k))) == NULL)
		goto nomem;
	la->keys = k;
	if ((nx = realloc(la->spki_next, la->capkeys * sizeof(*nx))) == NULL)
		goto nomem;
	la->spki_next = nx;
	idx = la->nkeys;
	k = &la->keys[idx];
	memset(k, 0, sizeof(*k));
	la->spki_next[idx] = 0;
	k->id = dup_or_null(la, id);
	k->kid = dup_or_null(la, kid);
	k->agent = dup_or_null(la, jstr(facts, "agent"));
	k->owner = dup_or_null(la, jstr(facts, "owner"));
	k->purpose = dup_or_null(la, jstr(facts, "purpose"));
	k->alg = dup_or_null(la, jstr(facts, "alg"));
	k->task = dup_or_null(la, jstr(facts, "task"));
	k->state = LCAUDIT_ACTIVE;
	k->created_seq = seq;
	k->created_ms = ms;
	k->ended_seq = k->destroyed_seq = -1;
	k->objects_destroyed = k->objects_found_after = -1;
	k->cred_first_seq = k->cred_last_seq = -1;
	k->cred_max_exp = INT64_MIN;
	k->rotation.decision_seq = k->rotation.seq = -1;
	k->destruction.decision_seq = k->destruction.seq = -1;
	k->max_age_late_ms = k->ttl_late_ms = INT64_MIN;
	la->nkeys++;
	if (la->err != 0 || k->id == NULL)
		goto nomem;
	if (smap_put(la, &la->byid, idx, 0) != 0)
		goto nomem;
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (jstr(facts, need[i]) == NULL)
			snprintf(missing + strlen(missing),
			    sizeof(missing) - strlen(missing), "%s%s",
			    missing[0] ? ", " : "", need[i]);
	if (kid == NULL)
		snprintf(missing + strlen(missing),
		    sizeof(missing) - strlen(missing), "%skid",
		    missing[0] ? ", " : "");
	if (missing[0] != '\0')
		viol(la, seq, LCAUDIT_V_MALFORMED, id,
		    "%s of key %.80s lacks %s", what, id, missing);
	if ((spki = jstr(facts, "spki")) != NULL) {
		if (util_base64_decode(
			spki, strlen(spki), &k->spki, &k->spki_len) != 0 ||
		    k->spki_len == 0) {
			free(k->spki);
			k->spki = NULL;
			k->spki_len = 0;
			viol(la, seq, LCAUDIT_V_MALFORMED, id,
			    "%s of key %.80s: its spki is not base64", what,
			    id);
		} else {
			SHA256(k->spki, k->spki_len, h);
			util_hex_encode(h, sizeof(h), k->spki_sha256);
			if (smap_put(la, &la->byspki, idx, 1) != 0)
				goto nomem;
		}
	}
	if (json_object_get(facts, "max_age") != NULL &&
	    (!jint(facts, "max_age", &n) || n < 1 || n > MAX_AGE_LIMIT))
		viol(la, seq, LCAUDIT_V_MALFORMED, id,
		    "%s of key %.80s: max_age is not a number of seconds", what,
		    id);
	else if (jint(facts, "max_age", &n))
		k->max_age = n;
	if (json_object_get(facts, "ttl") != NULL &&
	    (!jint(facts, "ttl", &n) || n < 1 || n > MAX_AGE_LIMIT))
		viol(la, seq, LCAUDIT_V_MALFORMED, id,
		    "%s of key %.80s: ttl is not a number of seconds", what,
		    id);
	else if (jint(facts, "ttl", &n))
		k->ttl = n;
	if (k->purpose != NULL && strcmp(k->purpose, "attestation") == 0) {
		size_t *a = grow(la->att, &la->capatt, la->natt, sizeof(*a));

		if (a == NULL)
			goto nomem;
		la->att = a;
		la->att[la->natt++] = idx;
	}
	return idx;
nomem:
	la->err = CUSTODY_E_NOMEM;
	return NOKEY;
}

static void
key_clear(struct lcaudit_key *k)
{
	free(k->id);
	free(k->kid);
	free(k->agent);
	free(k->owner);
	free(k->purpose);
	free(k->alg);
	free(k->task);
	free(k->spki);
	free(k->predecessor);
	free(k->successor);
	free(k->end_trigger);
	free(k->end_reason);
	free(k->destroy_trigger);
	free(k->destroy_reason);
	free(k->rotation.signer);
	free(k->rotation.problem);
	free(k->rotation.outcome);
	free(k->destruction.signer);
	free(k->destruction.problem);
	free(k->destruction.outcome);
}

/* End k's active life at leaf seq. */
static void
key_end(struct lcaudit *la, struct lcaudit_key *k, int64_t seq, int64_t ms,
    enum lcaudit_end how, json_t *detail)
{
	k->ended_seq = seq;
	k->ended_ms = ms;
	k->ended_how = how;
	k->end_trigger = dup_or_null(la, jstr(detail, "trigger"));
	k->end_reason = dup_or_null(la, jstr(detail, "reason"));
}

/* ---- decisions ---------------------------------------------------------- */

static struct decision *
decision_add(struct lcaudit *la, int64_t seq, enum dkind kind, size_t key)
{
	struct decision *d;

	if ((d = grow(la->dec, &la->capdec, la->ndec, sizeof(*d))) == NULL) {
		la->err = CUSTODY_E_NOMEM;
		return NULL;
	}
	la->dec = d;
	d = &la->dec[la->ndec++];
	memset(d, 0, sizeof(*d));
	d->seq = seq;
	d->kind = (uint8_t)kind;
	d->key = key;
	d->newkey = NOKEY;
	d->exp = INT64_MIN;
	return d;
}

static struct decision *
decision_find(struct lcaudit *la, int64_t seq)
{
	size_t lo = 0, hi = la->ndec, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (la->dec[mid].seq == seq)
			return &la->dec[mid];
		if (la->dec[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* tbs_sha256 of a decision leaf; 1 if present and well-formed. */
static int
tbs_of(json_t *o, uint8_t out[SHA256_DIGEST_LENGTH])
{
	const char *s = jstr(o, "tbs_sha256");

	return s != NULL && util_hex_decode(s, out, SHA256_DIGEST_LENGTH) == 0;
}

/* ---- the lifecycle leaves ----------------------------------------------- */

struct leafctx {
	int64_t seq, ms;
	const char *event;
	json_t *o, *detail;
	const char *id; /* key.id */
	const char *kid;
};

static void
on_create(struct lcaudit *la, const struct leafctx *l)
{
	if (l->detail == NULL) {
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.create lacks its detail");
		return;
	}
	(void)key_new(
	    la, l->seq, l->ms, l->id, l->kid, l->detail, "key.create");
}

/* The key a step names, if it may take that step (else a violation). */
static struct lcaudit_key *
step_key(struct lcaudit *la, const struct leafctx *l, int need_active)
{
	struct lcaudit_key *k;

	if (l->id == NULL) {
		viol(la, l->seq, LCAUDIT_V_MALFORMED, NULL, "%s lacks key.id",
		    l->event);
		return NULL;
	}
	if ((k = key_at(la, key_index(la, l->id))) == NULL) {
		viol(la, l->seq, LCAUDIT_V_UNKNOWN_KEY, NULL,
		    "%s of key %.80s, which no leaf created", l->event, l->id);
		return NULL;
	}
	if (k->state == LCAUDIT_DESTROYED ||
	    (need_active && k->state != LCAUDIT_ACTIVE)) {
		viol(la, l->seq, LCAUDIT_V_STATE, k->id,
		    "%s of key %.80s, which was %s at leaf %" PRId64, l->event,
		    k->id, state_name(k->state),
		    k->state == LCAUDIT_DESTROYED ? k->destroyed_seq
						  : k->ended_seq);
		return NULL;
	}
	return k;
}

static void
on_rotate(struct lcaudit *la, const struct leafctx *l)
{
	struct lcaudit_key *old, *nk;
	struct decision *d;
	json_t *nkf = jobj(l->detail, "new_key");
	const char *nid = jstr(nkf, "id"), *s;
	size_t oi, ni;
	uint8_t tbs[SHA256_DIGEST_LENGTH];
	int has_tbs;

	la->c.rotations++;
	if (l->detail == NULL || nkf == NULL || nid == NULL) {
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.rotate lacks its detail.new_key");
		return;
	}
	if ((s = jstr(l->detail, "old")) != NULL &&
	    (l->id == NULL || strcmp(s, l->id) != 0))
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.rotate: detail.old %.80s is not key.id", s);
	if ((s = jstr(l->detail, "new")) != NULL && strcmp(s, nid) != 0)
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.rotate: detail.new %.80s is not new_key.id", s);
	if (jstr(l->detail, "trigger") == NULL)
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.rotate lacks its trigger");
	if (!(has_tbs = tbs_of(l->o, tbs)))
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.rotate lacks a tbs_sha256 of 64 hex digits");
	/* the decision keeps the old key even if it could not rotate, so
	 * that its attestation is still checked */
	oi = key_index(la, l->id);
	old = step_key(la, l, 1);
	ni = key_new(
	    la, l->seq, l->ms, nid, jstr(nkf, "kid"), nkf, "key.rotate");
	/* key_new() may have moved the keys */
	old = old != NULL ? key_at(la, oi) : NULL;
	nk = key_at(la, ni);
	if (old != NULL) {
		old->state = LCAUDIT_RETIRED;
		key_end(la, old, l->seq, l->ms, LCAUDIT_END_ROTATE, l->detail);
		old->successor = dup_or_null(la, nid);
		old->rotation.decision_seq = l->seq;
	}
	if (nk != NULL && l->id != NULL)
		nk->predecessor = dup_or_null(la, l->id);
	if ((d = decision_add(la, l->seq, D_ROTATE, oi)) == NULL)
		return;
	d->newkey = ni;
	d->has_tbs = (uint8_t)has_tbs;
	memcpy(d->tbs, tbs, sizeof(tbs));
}

static void
on_retire(struct lcaudit *la, const struct leafctx *l)
{
	struct lcaudit_key *k;

	la->c.retirements++;
	if (jstr(l->detail, "trigger") == NULL)
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.retire lacks its trigger");
	if ((k = step_key(la, l, 1)) == NULL)
		return;
	k->state = LCAUDIT_RETIRED;
	key_end(la, k, l->seq, l->ms, LCAUDIT_END_RETIRE, l->detail);
}

static void
on_destroy(struct lcaudit *la, const struct leafctx *l)
{
	struct lcaudit_key *k;
	struct decision *d;
	json_t *ev = jobj(l->detail, "evidence");
	uint8_t tbs[SHA256_DIGEST_LENGTH];
	int has_tbs;

	la->c.destructions++;
	if (jstr(l->detail, "trigger") == NULL)
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.destroy lacks its trigger");
	if (ev == NULL)
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.destroy lacks its evidence");
	if (!(has_tbs = tbs_of(l->o, tbs)))
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "key.destroy lacks a tbs_sha256 of 64 hex digits");
	if ((k = step_key(la, l, 0)) == NULL)
		return;
	if (k->state == LCAUDIT_ACTIVE)
		key_end(la, k, l->seq, l->ms, LCAUDIT_END_DESTROY, l->detail);
	k->state = LCAUDIT_DESTROYED;
	k->destroyed_seq = l->seq;
	k->destroyed_ms = l->ms;
	k->destroy_trigger = dup_or_null(la, jstr(l->detail, "trigger"));
	k->destroy_reason = dup_or_null(la, jstr(l->detail, "reason"));
	(void)jint(ev, "objects_destroyed", &k->objects_destroyed);
	(void)jint(ev, "objects_found_after", &k->objects_found_after);
	k->destruction.decision_seq = l->seq;
	if ((d = decision_add(la, l->seq, D_DESTROY, (size_t)(k - la->keys))) ==
	    NULL)
		return;
	d->has_tbs = (uint8_t)has_tbs;
	memcpy(d->tbs, tbs, sizeof(tbs));
}

static void
on_credential(struct lcaudit *la, const struct leafctx *l, int x509)
{
	struct lcaudit_key *k;
	struct decision *d;
	int64_t exp = INT64_MIN, ms;

	la->c.credentials++;
	if (x509) {
		if (parse_ms(jstr(l->detail, "not_after"), &ms) == 0)
			exp = ms / 1000;
		else
			viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
			    "credential.x509 lacks an RFC 3339 "
			    "detail.not_after");
	} else if (!jint(l->detail, "exp", &exp)) {
		exp = INT64_MIN;
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "credential.jwt lacks an integer detail.exp");
	}
	if (l->id == NULL) {
		viol(la, l->seq, LCAUDIT_V_CREDENTIAL, NULL, "%s names no key",
		    l->event);
		return;
	}
	if ((k = key_at(la, key_index(la, l->id))) == NULL)
		viol(la, l->seq, LCAUDIT_V_CREDENTIAL, NULL,
		    "%s by key %.80s, which no leaf created", l->event, l->id);
	else if (k->state == LCAUDIT_DESTROYED)
		viol(la, l->seq, LCAUDIT_V_CREDENTIAL, k->id,
		    "%s by key %.80s after its destruction at leaf %" PRId64,
		    l->event, k->id, k->destroyed_seq);
	else if (k->state == LCAUDIT_RETIRED)
		viol(la, l->seq, LCAUDIT_V_CREDENTIAL, k->id,
		    "%s by key %.80s after its %s at leaf %" PRId64, l->event,
		    k->id,
		    k->ended_how == LCAUDIT_END_ROTATE ? "rotation"
						       : "retirement",
		    k->ended_seq);
	d = decision_add(la, l->seq, x509 ? D_X509 : D_JWT,
	    k ? (size_t)(k - la->keys) : NOKEY);
	if (d != NULL)
		d->exp = exp;
}

static void
on_outcome(struct lcaudit *la, const struct leafctx *l)
{
	struct lcaudit_key *k;
	struct decision *d;
	struct lcaudit_attest *at;
	const char *res = jstr(l->detail, "result"), *e;
	char buf[MSG_LEN];
	int64_t ds;

	if (!jint(l->detail, "decision_seq", &ds) || res == NULL) {
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "outcome lacks detail.decision_seq or detail.result");
		return;
	}
	if (strcmp(res, "error") != 0 || (d = decision_find(la, ds)) == NULL)
		return;
	if (d->kind == D_JWT || d->kind == D_X509) {
		if (!d->failed)
			la->c.credentials_failed++;
		d->failed = 1;
		return;
	}
	d->failed = 1;
	if ((k = key_at(la, d->key)) == NULL)
		return;
	at = d->kind == D_ROTATE ? &k->rotation : &k->destruction;
	if (at->decision_seq != d->seq || at->outcome != NULL)
		return;
	e = jstr(l->detail, "error");
	snprintf(
	    buf, sizeof(buf), "leaf %" PRId64 ": %s", l->seq, e ? e : "error");
	at->outcome = dup_or_null(la, buf);
}

/* ---- attestations -------------------------------------------------------- */

/* SPKI digests in hex, compared without regard to case. */
static int
same_digest(const char *a, const char *b)
{
	return a != NULL && b != NULL && strlen(a) == 64 &&
	       strcasecmp(a, b) == 0;
}

/*
 * The attestation key (index) whose SPKI verifies p, active at the
 * decision's leaf or the attestation's; else NOKEY and why.
 */
static size_t
att_signer(struct lcaudit *la, const struct dsse_parsed *p,
    const struct decision *d, int64_t seq, char *why, size_t whysz)
{
	const struct lcaudit_key *k;
	char kid[65], seen[MSG_LEN] = "";
	size_t i, j, *s, idx, tries = 0;

	for (i = 0; i < p->nsigs; i++) {
		if (p->sigs[i].keyid[0] == '\0') {
			/* no keyid: try the attestation keys of the time */
			for (j = 0; j < la->natt && tries < MAX_SIGNER_TRIES;
			     j++) {
				k = &la->keys[la->att[j]];
				if (!active_at(k, d->seq) && !active_at(k, seq))
					continue;
				tries++;
				if (k->spki != NULL &&
				    dsse_verify(p, k->spki, k->spki_len) == 0)
					return la->att[j];
			}
			continue;
		}
		for (j = 0; j < 64 && p->sigs[i].keyid[j]; j++)
			kid[j] =
			    (char)tolower((unsigned char)p->sigs[i].keyid[j]);
		kid[j] = '\0';
		s = smap_find(la, &la->byspki, kid, 1);
		for (idx = s ? *s : 0; idx != 0; idx = la->spki_next[idx - 1]) {
			k = &la->keys[idx - 1];
			if (k->purpose == NULL ||
			    strcmp(k->purpose, "attestation") != 0) {
				snprintf(seen, sizeof(seen),
				    "signed by key %.80s of purpose %.40s, not "
				    "an attestation key",
				    k->id, k->purpose ? k->purpose : "(none)");
				continue;
			}
			if (!active_at(k, d->seq) && !active_at(k, seq)) {
				snprintf(seen, sizeof(seen),
				    "signed by attestation key %.80s, which "
				    "was not active then",
				    k->id);
				continue;
			}
			if (dsse_verify(p, k->spki, k->spki_len) == 0)
				return idx - 1;
			snprintf(seen, sizeof(seen),
			    "its signature by attestation key %.80s does not "
			    "verify",
			    k->id);
		}
	}
	snprintf(why, whysz, "%s",
	    seen[0] ? seen
		    : "no signature verifies with an attestation key active "
		      "at that point");
	return NOKEY;
}

/*
 * Does the attestation leaf (l) prove decision d? 0, or 1 with why; *signerp
 * the attestation key of a destruction.
 */
static int
att_check(struct lcaudit *la, const struct leafctx *l, const struct decision *d,
    char *why, size_t whysz, size_t *signerp)
{
	const int rot = d->kind == D_ROTATE;
	const struct lcaudit_key *about, *old = NULL;
	struct dsse_parsed *p = NULL;
	const char *ptype, *env64, *s;
	uint8_t *env = NULL, *pae = NULL, h[SHA256_DIGEST_LENGTH];
	size_t envlen, paelen, n;
	json_t *st = NULL, *subj, *pred, *v;
	char err[256];
	int bad = 1;

#define WHY(...)                                                               \
	do {                                                                   \
		snprintf(why, whysz, __VA_ARGS__);                             \
		goto out;                                                      \
	} while (0)
	*signerp = NOKEY;
	about = key_at(la, rot ? d->newkey : d->key);
	if (rot)
		old = key_at(la, d->key);
	if (about == NULL || (rot && old == NULL))
		WHY("the %s it completes names a key no leaf created",
		    rot ? "rotation" : "destruction");
	ptype = jstr(l->detail, "predicate_type");
	n = ptype ? strlen(ptype) : 0;
	s = rot ? ROTATION_SUFFIX : DESTRUCTION_SUFF;
	if (ptype == NULL || n < strlen(s) ||
	    strcmp(ptype + n - strlen(s), s) != 0)
		WHY("its predicate_type does not end in %s", s);
	if (l->id == NULL || strcmp(l->id, about->id) != 0)
		WHY("it is about key %.80s, not %.80s",
		    l->id ? l->id : "(none)", about->id);
	if ((env64 = jstr(l->detail, "envelope")) == NULL ||
	    util_base64_decode(env64, strlen(env64), &env, &envlen) != 0)
		WHY("its envelope is not base64");
	if (!d->has_tbs)
		WHY("the decision leaf has no tbs_sha256 to compare");
	if (dsse_parse(env, envlen, &p, err, sizeof(err)) != 0)
		WHY("its envelope: %s", err);
	if (strcmp(p->type, DSSE_INTOTO) != 0)
		WHY("its payloadType is not %s", DSSE_INTOTO);
	if (dsse_pae(p->type, p->body, p->len, &pae, &paelen) != 0) {
		la->err = CUSTODY_E_NOMEM;
		WHY("out of memory");
	}
	SHA256(pae, paelen, h);
	if (memcmp(h, d->tbs, sizeof(h)) != 0)
		WHY("its PAE's SHA-256 is not the tbs_sha256 of leaf %" PRId64,
		    d->seq);
	st = json_loadb(
	    (const char *)p->body, p->len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(st) || (s = jstr(st, "_type")) == NULL ||
	    strcmp(s, STATEMENT_V1) != 0)
		WHY("its payload is not an in-toto Statement v1");
	if ((s = jstr(st, "predicateType")) == NULL || strcmp(s, ptype) != 0)
		WHY("its statement's predicateType is not the leaf's");
	subj = json_object_get(st, "subject");
	if (!json_is_array(subj) || json_array_size(subj) != 1)
		WHY("its statement has not exactly one subject");
	v = json_array_get(subj, 0);
	if (!same_digest(jstr(jobj(v, "digest"), "sha256"), about->spki_sha256))
		WHY("its subject's digest is not the SHA-256 of key "
		    "%.80s's SPKI",
		    about->id);
	if ((s = jstr(v, "name")) != NULL && strcmp(s, about->id) != 0)
		WHY("its subject is named %.80s, not %.80s", s, about->id);
	pred = jobj(st, "predicate");
	if (rot && !same_digest(jstr(jobj(pred, "previousKey"), "spkiSha256"),
		       old->spki_sha256))
		WHY("its predicate's previousKey.spkiSha256 is not that of "
		    "%.80s",
		    old->id);
	if (rot && !same_digest(jstr(jobj(pred, "newKey"), "spkiSha256"),
		       about->spki_sha256))
		WHY("its predicate's newKey.spkiSha256 is not that of %.80s",
		    about->id);
	if (!rot && (s = jstr(jobj(pred, "key"), "spkiSha256")) != NULL &&
	    !same_digest(s, about->spki_sha256))
		WHY("its predicate's key.spkiSha256 is not that of %.80s",
		    about->id);
	if (rot) {
		if (old->spki == NULL ||
		    dsse_verify(p, old->spki, old->spki_len) != 0)
			WHY("it does not verify with the old key %.80s",
			    old->id);
		if (about->spki == NULL ||
		    dsse_verify(p, about->spki, about->spki_len) != 0)
			WHY("it does not verify with the new key %.80s",
			    about->id);
	} else if ((*signerp = att_signer(la, p, d, l->seq, why, whysz)) ==
		   NOKEY)
		goto out;
#undef WHY
	bad = 0;
out:
	json_decref(st);
	free(pae);
	free(env);
	dsse_parsed_free(p);
	return bad;
}

static void
on_attestation(struct lcaudit *la, const struct leafctx *l)
{
	struct lcaudit_key *k;
	struct lcaudit_attest *at;
	struct decision *d;
	char why[MSG_LEN];
	size_t signer;
	int64_t ds;

	la->c.attestations++;
	if (!jint(l->detail, "decision_seq", &ds)) {
		viol(la, l->seq, LCAUDIT_V_MALFORMED, l->id,
		    "attestation lacks an integer detail.decision_seq");
		return;
	}
	if ((d = decision_find(la, ds)) == NULL ||
	    (d->kind != D_ROTATE && d->kind != D_DESTROY)) {
		viol(la, l->seq, LCAUDIT_V_ATTESTATION,
		    key_at(la, key_index(la, l->id)) ? l->id : NULL,
		    "attestation of leaf %" PRId64
		    ", which is no earlier allowed key.rotate or key.destroy",
		    ds);
		return;
	}
	k = key_at(la, d->key);
	at = k == NULL		   ? NULL
	     : d->kind == D_ROTATE ? &k->rotation
				   : &k->destruction;
	if (at != NULL && at->decision_seq != d->seq)
		at = NULL; /* a step the key could not take */
	if (att_check(la, l, d, why, sizeof(why), &signer) != 0) {
		viol(la, l->seq, LCAUDIT_V_ATTESTATION, k ? k->id : NULL,
		    "attestation of the %s at leaf %" PRId64 ": %s",
		    d->kind == D_ROTATE ? "rotation" : "destruction", d->seq,
		    why);
		if (at != NULL) {
			at->bad++;
			if (at->problem == NULL)
				at->problem = dup_or_null(la, why);
		}
		return;
	}
	if (d->attested)
		return; /* a second copy proves nothing more */
	d->attested = 1;
	la->c.attestations_verified++;
	if (at != NULL) {
		at->seq = l->seq;
		if (signer != NOKEY)
			at->signer = dup_or_null(la, la->keys[signer].id);
	}
}

static void
on_event(struct lcaudit *la, const struct leafctx *l)
{
	struct event *e;
	json_t *acts = json_object_get(l->detail, "actions"), *a;
	char sum[MSG_LEN];
	size_t off = 0, i;
	int n;

	if (la->nev >= LCAUDIT_MAX_EVENTS) {
		la->ev_omitted++;
		return;
	}
	sum[0] = '\0';
	if (strcmp(l->event, "lifecycle.event") == 0)
		off = (size_t)snprintf(sum, sizeof(sum), "%.40s %.80s: ",
		    jstr(l->detail, "type") ? jstr(l->detail, "type") : "?",
		    jstr(l->detail, "id") ? jstr(l->detail, "id") : "?");
	n = snprintf(sum + off, sizeof(sum) - off, "%zu action%s",
	    json_array_size(acts), json_array_size(acts) == 1 ? "" : "s");
	off += n > 0 ? (size_t)n : 0;
	json_array_foreach(acts, i, a)
	{
		if (i >= SUMMARY_ACTIONS || off >= sizeof(sum))
			break;
		n = snprintf(sum + off, sizeof(sum) - off, "%s%.80s %.20s",
		    i ? ", " : ": ", jstr(a, "key") ? jstr(a, "key") : "?",
		    jstr(a, "action") ? jstr(a, "action") : "?");
		off += n > 0 ? (size_t)n : 0;
	}
	if (off < sizeof(sum) && json_array_size(acts) > SUMMARY_ACTIONS)
		snprintf(sum + off, sizeof(sum) - off, ", ...");
	if ((e = grow(la->ev, &la->capev, la->nev, sizeof(*e))) == NULL) {
		la->err = CUSTODY_E_NOMEM;
		return;
	}
	la->ev = e;
	e = &la->ev[la->nev];
	e->seq = l->seq;
	e->ms = l->ms;
	e->event = dup_or_null(la, l->event);
	e->summary = dup_or_null(la, sum);
	if (e->event == NULL || e->summary == NULL) {
		free(e->event);
		free(e->summary);
		return;
	}
	la->nev++;
}

/* ---- the checker -------------------------------------------------------- */

int
lcaudit_new(const struct lcaudit_opts *opts, struct lcaudit **lap)
{
	struct lcaudit *la;

	CUSTODY_RETURN_VAL_IF_FAIL(lap != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(opts == NULL || opts->tolerance < 0 ||
				       opts->tolerance <= MAX_AGE_LIMIT,
	    CUSTODY_E_INVALID_ARG);
	if ((la = calloc(1, sizeof(*la))) == NULL)
		return CUSTODY_E_NOMEM;
	la->tol_ms = (opts == NULL || opts->tolerance < 0 ? LCAUDIT_TOLERANCE
							  : opts->tolerance) *
		     1000;
	la->last_seq = -1;
	*lap = la;
	return 0;
}

void
lcaudit_free(struct lcaudit *la)
{
	size_t i;

	if (la == NULL)
		return;
	for (i = 0; i < la->nkeys; i++)
		key_clear(&la->keys[i]);
	for (i = 0; i < la->nv; i++) {
		free(la->v[i].key);
		free(la->v[i].msg);
	}
	for (i = 0; i < la->nev; i++) {
		free(la->ev[i].event);
		free(la->ev[i].summary);
	}
	free(la->keys);
	free(la->spki_next);
	free(la->byid.slot);
	free(la->byspki.slot);
	free(la->att);
	free(la->dec);
	free(la->ev);
	free(la->v);
	free(la->vkey);
	for (i = 0; i < la->nhv; i++)
		note_vkey_free(la->hv[i]);
	free(la->hv);
	free(la);
}

/* Is event one whose leaves are decisions on keys (or complete them)? */
static int
is_lifecycle(const char *event)
{
	static const char *const ev[] = {"key.create", "key.rotate",
	    "key.retire", "key.destroy", "credential.jwt", "credential.x509",
	    "attestation", "outcome", "lifecycle.event", "recovery"};
	size_t i;

	for (i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
		if (strcmp(event, ev[i]) == 0)
			return 1;
	return 0;
}

int
lcaudit_leaf(struct lcaudit *la, uint64_t seq, const uint8_t *leaf, size_t len)
{
	struct leafctx l;
	struct lcaudit_key *k;
	json_t *o = NULL, *v, *key;
	const char *decision, *time;
	int64_t n;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    la != NULL && (leaf != NULL || len == 0), CUSTODY_E_INVALID_ARG);
	if (la->finished)
		return CUSTODY_E_STATE;
	if (la->err != 0)
		return la->err;
	la->c.leaves++;
	if (seq >= INT64_MAX || (int64_t)seq <= la->last_seq) {
		viol(la, seq >= INT64_MAX ? -1 : (int64_t)seq,
		    LCAUDIT_V_SEQUENCE, NULL,
		    "leaf %" PRIu64 " comes after leaf %" PRId64
		    ": out of order, not read",
		    seq, la->last_seq);
		goto out;
	}
	if ((int64_t)seq != la->last_seq + 1)
		viol(la, (int64_t)seq, LCAUDIT_V_SEQUENCE, NULL,
		    "leaves %" PRId64 " to %" PRIu64 " are missing",
		    la->last_seq + 1, seq - 1);
	la->last_seq = (int64_t)seq;
	memset(&l, 0, sizeof(l));
	l.seq = (int64_t)seq;
	if (len == 0 ||
	    (o = json_loadb((const char *)leaf, len, JSON_REJECT_DUPLICATES,
		 NULL)) == NULL ||
	    !json_is_object(o)) {
		viol(la, l.seq, LCAUDIT_V_MALFORMED, NULL,
		    "leaf %" PRId64 " is not one JSON object", l.seq);
		goto out;
	}
	if (!jint(o, "v", &n) || n != 1) {
		viol(la, l.seq, LCAUDIT_V_MALFORMED, NULL,
		    "leaf %" PRId64 " is not a version 1 leaf", l.seq);
		goto out;
	}
	if (!jint(o, "seq", &n)) {
		viol(la, l.seq, LCAUDIT_V_MALFORMED, NULL,
		    "leaf %" PRId64 " lacks its seq", l.seq);
		goto out;
	}
	if (n != l.seq) {
		viol(la, l.seq, LCAUDIT_V_SEQUENCE, NULL,
		    "leaf %" PRId64 " says it is another seq", l.seq);
		goto out;
	}
	if ((l.event = jstr(o, "event")) == NULL) {
		viol(la, l.seq, LCAUDIT_V_MALFORMED, NULL,
		    "leaf %" PRId64 " lacks its event", l.seq);
		goto out;
	}
	time = jstr(o, "time");
	if (time == NULL || parse_ms(time, &l.ms) != 0) {
		if (is_lifecycle(l.event))
			viol(la, l.seq, LCAUDIT_V_MALFORMED, NULL,
			    "%.40s leaf %" PRId64 " lacks an RFC 3339 time",
			    l.event, l.seq);
		else
			la->c.ignored++;
		goto out;
	}
	if (!la->have_time || l.ms > la->last_ms)
		la->last_ms = l.ms;
	if (!la->have_time)
		la->first_ms = l.ms;
	la->have_time = 1;
	if (!is_lifecycle(l.event)) {
		la->c.ignored++;
		goto out;
	}
	l.o = o;
	l.detail = jobj(o, "detail");
	key = jobj(o, "key");
	l.id = jstr(key, "id");
	l.kid = jstr(key, "kid");
	v = json_object_get(o, "decision");
	decision = json_is_string(v) ? json_string_value(v) : NULL;
	if (v != NULL && decision == NULL) {
		viol(la, l.seq, LCAUDIT_V_MALFORMED, l.id,
		    "%.40s leaf %" PRId64 ": its decision is not a string",
		    l.event, l.seq);
		goto out;
	}
	if (decision != NULL && strcmp(decision, "allow") != 0) {
		la->c.deny++;
		if ((k = key_at(la, key_index(la, l.id))) != NULL)
			k->denied++;
		goto out;
	}
	if (strcmp(l.event, "attestation") == 0)
		on_attestation(la, &l);
	else if (strcmp(l.event, "outcome") == 0)
		on_outcome(la, &l);
	else if (strcmp(l.event, "lifecycle.event") == 0 ||
		 strcmp(l.event, "recovery") == 0)
		on_event(la, &l);
	else if (decision == NULL)
		viol(la, l.seq, LCAUDIT_V_MALFORMED, l.id,
		    "%.40s leaf %" PRId64 " lacks its decision", l.event,
		    l.seq);
	else {
		la->c.allow++;
		if (strcmp(l.event, "key.create") == 0)
			on_create(la, &l);
		else if (strcmp(l.event, "key.rotate") == 0)
			on_rotate(la, &l);
		else if (strcmp(l.event, "key.retire") == 0)
			on_retire(la, &l);
		else if (strcmp(l.event, "key.destroy") == 0)
			on_destroy(la, &l);
		else
			on_credential(
			    la, &l, strcmp(l.event, "credential.x509") == 0);
	}
out:
	json_decref(o);
	return la->err;
}

/* Check 3 for one key. */
static void
check_deadlines(struct lcaudit *la, struct lcaudit_key *k)
{
	char late[48], lim[48], tol[48], at[32];
	int64_t end, seq;

	fmt_dur(la->tol_ms / 1000, tol, sizeof(tol));
	if (k->max_age > 0) {
		end = k->ended_seq >= 0 ? k->ended_ms : la->last_ms;
		seq = k->ended_seq;
		k->max_age_late_ms = end - (k->created_ms + k->max_age * 1000);
		if (k->max_age_late_ms > la->tol_ms) {
			fmt_dur_ms(k->max_age_late_ms, late, sizeof(late));
			fmt_dur(k->max_age, lim, sizeof(lim));
			fmt_ms(end, at, sizeof(at));
			viol(la, seq, LCAUDIT_V_MAX_AGE, k->id,
			    "key %.80s was active %s past its max_age of %s "
			    "(%s %s), over the tolerance of %s",
			    k->id, late, lim,
			    seq >= 0 ? "until"
				     : "still active at the log's last leaf,",
			    at, tol);
		}
	}
	if (k->ttl > 0) {
		end = k->destroyed_seq >= 0 ? k->destroyed_ms : la->last_ms;
		seq = k->destroyed_seq;
		k->ttl_late_ms = end - (k->created_ms + k->ttl * 1000);
		if (k->ttl_late_ms > la->tol_ms) {
			fmt_dur_ms(k->ttl_late_ms, late, sizeof(late));
			fmt_dur(k->ttl, lim, sizeof(lim));
			fmt_ms(end, at, sizeof(at));
			viol(la, seq, LCAUDIT_V_TTL, k->id,
			    "key %.80s lived %s past its ttl of %s (%s %s), "
			    "over the tolerance of %s",
			    k->id, late, lim,
			    seq >= 0 ? "destroyed"
				     : "still alive at the log's last leaf,",
			    at, tol);
		}
	}
}

int
lcaudit_finish(struct lcaudit *la)
{
	struct lcaudit_key *k, *nk;
	struct lcaudit_attest *at;
	struct decision *d;
	char more[MSG_LEN];
	size_t i;

	CUSTODY_RETURN_VAL_IF_FAIL(la != NULL, CUSTODY_E_INVALID_ARG);
	if (la->finished || la->err != 0)
		return la->err;
	for (i = 0; i < la->ndec; i++) {
		d = &la->dec[i];
		k = key_at(la, d->key);
		if (d->kind == D_JWT || d->kind == D_X509) {
			if (k == NULL)
				continue;
			if (d->failed) {
				k->failed++;
				continue;
			}
			k->issued++;
			if (k->cred_first_seq < 0)
				k->cred_first_seq = d->seq;
			k->cred_last_seq = d->seq;
			if (d->exp > k->cred_max_exp)
				k->cred_max_exp = d->exp;
			continue;
		}
		if (d->attested)
			continue;
		at = k == NULL		   ? NULL
		     : d->kind == D_ROTATE ? &k->rotation
					   : &k->destruction;
		if (at != NULL && at->decision_seq != d->seq)
			at = NULL;
		more[0] = '\0';
		if (at != NULL && at->bad > 0)
			snprintf(more, sizeof(more),
			    " (%u attestation %s failed: %s)", at->bad,
			    at->bad == 1 ? "leaf" : "leaves", at->problem);
		else if (at != NULL && at->outcome != NULL)
			snprintf(more, sizeof(more), " (outcome at %s)",
			    at->outcome);
		nk = key_at(la, d->newkey);
		if (d->kind == D_ROTATE)
			viol(la, d->seq, LCAUDIT_V_UNATTESTED, k ? k->id : NULL,
			    "the rotation of key %.80s to %.80s at leaf "
			    "%" PRId64 " has no valid attestation%s",
			    k ? k->id : "(unknown)", nk ? nk->id : "(unknown)",
			    d->seq, more);
		else
			viol(la, d->seq, LCAUDIT_V_UNATTESTED, k ? k->id : NULL,
			    "the destruction of key %.80s at leaf %" PRId64
			    " has no valid attestation%s",
			    k ? k->id : "(unknown)", d->seq, more);
	}
	la->c.keys = la->nkeys;
	for (i = 0; i < la->nkeys; i++) {
		k = &la->keys[i];
		check_deadlines(la, k);
		if (k->state == LCAUDIT_ACTIVE)
			la->c.active++;
		else if (k->state == LCAUDIT_RETIRED)
			la->c.retired++;
		else
			la->c.destroyed++;
	}
	la->finished = 1;
	return la->err;
}

int
lcaudit_ok(const struct lcaudit *la)
{
	return la != NULL && la->finished && la->err == 0 &&
	       la->c.violations == 0;
}

const struct lcaudit_key *
lcaudit_keys(const struct lcaudit *la, size_t *np)
{
	CUSTODY_RETURN_VAL_IF_FAIL(la != NULL && np != NULL, NULL);
	*np = la->nkeys;
	return la->keys;
}

const struct lcaudit_key *
lcaudit_key_get(const struct lcaudit *la, const char *id)
{
	size_t i;

	CUSTODY_RETURN_VAL_IF_FAIL(la != NULL && id != NULL, NULL);
	i = key_index(la, id);
	return i == NOKEY ? NULL : &la->keys[i];
}

const struct lcaudit_violation *
lcaudit_violations(const struct lcaudit *la, size_t *np)
{
	CUSTODY_RETURN_VAL_IF_FAIL(la != NULL && np != NULL, NULL);
	*np = la->nv;
	return la->v;
}

const struct lcaudit_counts *
lcaudit_counts(const struct lcaudit *la)
{
	CUSTODY_RETURN_VAL_IF_FAIL(la != NULL, NULL);
	return &la->c;
}

int64_t
lcaudit_tolerance(const struct lcaudit *la)
{
	CUSTODY_RETURN_VAL_IF_FAIL(la != NULL, 0);
	return la->tol_ms / 1000;
}

static int
feed(void *arg, uint64_t seq, const uint8_t *leaf, size_t len)
{
	return lcaudit_leaf(arg, seq, leaf, len);
}

/* The verifier key of checkpoint key k under origin, or NULL. */
static struct note_vkey *
vkey_of(const struct lcaudit_key *k, const char *origin)
{
	struct note_vkey *vk = NULL;
	struct pubkey *pk = NULL;
	enum custody_alg alg;

	if (k->alg == NULL || k->spki == NULL ||
	    alg_from_name(k->alg, &alg) != 0 ||
	    pubkey_from_spki(alg, k->spki, k->spki_len, &pk) != 0)
		return NULL;
	(void)note_vkey_new(origin, pk, &vk);
	pubkey_free(pk);
	return vk;
}

/* Is vk one of vks[0..n) (the same name, type and key)? */
static int
vkey_among(const struct note_vkey *vk, struct note_vkey *const *vks, size_t n)
{
	char *a = NULL, *b = NULL;
	size_t i;
	int same = 0;

	if (note_vkey_string(vk, &a) != 0)
		return 0;
	for (i = 0; i < n && !same; i++) {
		if (note_vkey_string(vks[i], &b) == 0)
			same = strcmp(a, b) == 0;
		free(b);
		b = NULL;
	}
	free(a);
	return same;
}

/*
 * logdir_keys_fn: the checkpoint keys that the leaves seen so far hand over
 * to. A key of purpose "checkpoint" is trusted if its verifier key is one
 * the auditor gave, or if it succeeds a trusted one by a rotation that an
 * attestation leaf proved (signed by both keys, LIFECYCLE.md); it is handed
 * over to if trusted that way and not destroyed.
 */
static int
handover_keys(void *arg, const char *origin, struct note_vkey *const *given,
    size_t ngiven, struct note_vkey *const **vksp, size_t *np)
{
	struct lcaudit *la = arg;
	struct note_vkey *vk, **nhv;
	unsigned char *trusted;
	size_t i, p, n = 0;

	for (i = 0; i < la->nhv; i++)
		note_vkey_free(la->hv[i]);
	la->nhv = 0;
	if (la->nkeys == 0)
		goto out;
	if ((trusted = calloc(la->nkeys, 1)) == NULL ||
	    (nhv = reallocarray(la->hv, la->nkeys, sizeof(*nhv))) == NULL) {
		free(trusted);
		return CUSTODY_E_NOMEM;
	}
	la->hv = nhv;
	/* keys come in the order the log created them: a predecessor first */
	for (i = 0; i < la->nkeys; i++) {
		const struct lcaudit_key *k = &la->keys[i];

		if (k->purpose == NULL ||
		    strcmp(k->purpose, "checkpoint") != 0 ||
		    (vk = vkey_of(k, origin)) == NULL)
			continue;
		if (vkey_among(vk, given, ngiven)) {
			trusted[i] = 1;
			note_vkey_free(vk);
			continue;
		}
		p = k->predecessor != NULL ? key_index(la, k->predecessor)
					   : NOKEY;
		if (p != NOKEY && p < i && trusted[p] &&
		    la->keys[p].rotation.seq >= 0 &&
		    la->keys[p].successor != NULL &&
		    strcmp(la->keys[p].successor, k->id) == 0) {
			trusted[i] = 1;
			if (k->destroyed_seq < 0) {
				la->hv[n++] = vk;
				continue;
			}
		}
		note_vkey_free(vk);
	}
	free(trusted);
	la->nhv = n;
out:
	*vksp = la->hv;
	*np = la->nhv;
	return 0;
}

int
lcaudit_dir(struct lcaudit *la, const char *dir, struct note_vkey *const *vkeys,
    size_t nvkeys, struct logdir_result *resp, char *msg, size_t msgsz)
{
	struct logdir_result res;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    la != NULL && dir != NULL && msg != NULL && msgsz > 0,
	    CUSTODY_E_INVALID_ARG);
	if ((r = logdir_verify_follow(dir, vkeys, nvkeys, feed, handover_keys,
		 la, resp ? resp : &res, msg, msgsz)) != 0)
		return r;
	if ((r = lcaudit_finish(la)) != 0)
		snprintf(msg, msgsz, "%s", custody_strerror(r));
	return r;
}

/* ---- reports ------------------------------------------------------------ */

static int
jset(json_t *o, const char *k, json_t *v)
{
	return v == NULL || json_object_set_new(o, k, v) != 0;
}

/* Set k to the string s unless it is NULL. */
static int
jset_str(json_t *o, const char *k, const char *s)
{
	return s != NULL && jset(o, k, json_string(s));
}

static int
jset_time(json_t *o, const char *k, int64_t ms)
{
	char t[32];

	fmt_ms(ms, t, sizeof(t));
	return jset(o, k, json_string(t));
}

static json_t *
viol_json(const struct lcaudit_violation *v)
{
	json_t *o = json_object();

	if (o == NULL ||
	    (v->seq >= 0 && jset(o, "seq", json_integer(v->seq))) ||
	    jset(o, "kind", json_string(lcaudit_kind_name(v->kind))) ||
	    jset_str(o, "key", v->key) ||
	    jset(o, "message", json_string(v->msg))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
attest_json(const char *kind, const struct lcaudit_attest *a)
{
	json_t *o = json_object();

	if (o == NULL || jset(o, "kind", json_string(kind)) ||
	    jset(o, "decision_seq", json_integer(a->decision_seq)) ||
	    jset(o, "verified", json_boolean(a->seq >= 0)) ||
	    (a->seq >= 0 && jset(o, "seq", json_integer(a->seq))) ||
	    jset_str(o, "signer", a->signer) ||
	    (a->bad > 0 && jset(o, "failed", json_integer(a->bad))) ||
	    jset_str(o, "problem", a->problem) ||
	    jset_str(o, "outcome", a->outcome)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
key_json(const struct lcaudit *la, size_t idx)
{
	const struct lcaudit_key *k = &la->keys[idx];
	json_t *o = json_object(), *x, *arr;
	char *spki = NULL;
	size_t i;

	if (o == NULL)
		return NULL;
	if (k->spki != NULL && util_base64_encode(k->spki, k->spki_len, &spki))
		goto fail;
	if (jset_str(o, "id", k->id) || jset_str(o, "kid", k->kid) ||
	    jset_str(o, "agent", k->agent) || jset_str(o, "owner", k->owner) ||
	    jset_str(o, "purpose", k->purpose) || jset_str(o, "alg", k->alg) ||
	    jset_str(o, "task", k->task) || jset_str(o, "spki", spki) ||
	    (k->spki_sha256[0] &&
		jset(o, "spki_sha256", json_string(k->spki_sha256))) ||
	    (k->max_age && jset(o, "max_age", json_integer(k->max_age))) ||
	    (k->ttl && jset(o, "ttl", json_integer(k->ttl))) ||
	    jset(o, "state", json_string(state_name(k->state))) ||
	    jset_str(o, "predecessor", k->predecessor) ||
	    jset_str(o, "successor", k->successor))
		goto fail;
	free(spki);
	spki = NULL;
	if ((x = json_object()) == NULL || jset(o, "created", x) ||
	    jset(x, "seq", json_integer(k->created_seq)) ||
	    jset_time(x, "time", k->created_ms) ||
	    jset(x, "how", json_string(k->predecessor ? "rotate" : "create")))
		goto fail;
	if (k->ended_seq >= 0 &&
	    ((x = json_object()) == NULL || jset(o, "ended", x) ||
		jset(x, "seq", json_integer(k->ended_seq)) ||
		jset_time(x, "time", k->ended_ms) ||
		jset(x, "how", json_string(end_name(k->ended_how))) ||
		jset_str(x, "trigger", k->end_trigger) ||
		jset_str(x, "reason", k->end_reason)))
		goto fail;
	if (k->destroyed_seq >= 0 &&
	    ((x = json_object()) == NULL || jset(o, "destroyed", x) ||
		jset(x, "seq", json_integer(k->destroyed_seq)) ||
		jset_time(x, "time", k->destroyed_ms) ||
		jset_str(x, "trigger", k->destroy_trigger) ||
		jset_str(x, "reason", k->destroy_reason) ||
		(k->objects_destroyed >= 0 &&
		    jset(x, "objects_destroyed",
			json_integer(k->objects_destroyed))) ||
		(k->objects_found_after >= 0 &&
		    jset(x, "objects_found_after",
			json_integer(k->objects_found_after)))))
		goto fail;
	if ((x = json_object()) == NULL || jset(o, "credentials", x) ||
	    jset(x, "issued", json_integer((json_int_t)k->issued)) ||
	    jset(x, "failed", json_integer((json_int_t)k->failed)) ||
	    jset(x, "denied", json_integer((json_int_t)k->denied)) ||
	    (k->cred_first_seq >= 0 &&
		(jset(x, "first_seq", json_integer(k->cred_first_seq)) ||
		    jset(x, "last_seq", json_integer(k->cred_last_seq)))) ||
	    (k->cred_max_exp != INT64_MIN &&
		(jset(x, "max_exp", json_integer(k->cred_max_exp)) ||
		    jset_time(x, "max_exp_time", k->cred_max_exp * 1000))))
		goto fail;
	if ((arr = json_array()) == NULL || jset(o, "attestations", arr) ||
	    (k->rotation.decision_seq >= 0 &&
		json_array_append_new(
		    arr, attest_json("rotation", &k->rotation)) != 0) ||
	    (k->destruction.decision_seq >= 0 &&
		json_array_append_new(
		    arr, attest_json("destruction", &k->destruction)) != 0))
		goto fail;
	if ((x = json_object()) == NULL || jset(o, "deadlines", x) ||
	    (k->max_age_late_ms != INT64_MIN &&
		(jset_time(x, "max_age", k->created_ms + k->max_age * 1000) ||
		    jset(x, "max_age_late_ms",
			json_integer(k->max_age_late_ms)))) ||
	    (k->ttl_late_ms != INT64_MIN &&
		(jset_time(x, "ttl", k->created_ms + k->ttl * 1000) ||
		    jset(x, "ttl_late_ms", json_integer(k->ttl_late_ms)))))
		goto fail;
	if ((arr = json_array()) == NULL || jset(o, "violations", arr))
		goto fail;
	for (i = 0; k->violations > 0 && i < la->nv; i++)
		if (la->vkey[i] == idx &&
		    json_array_append_new(arr, viol_json(&la->v[i])) != 0)
			goto fail;
	return o;
fail:
	free(spki);
	json_decref(o);
	return NULL;
}

json_t *
lcaudit_report_json(const struct lcaudit *la)
{
	const struct lcaudit_counts *c;
	json_t *o, *x, *arr;
	size_t i;

	CUSTODY_RETURN_VAL_IF_FAIL(la != NULL, NULL);
	c = &la->c;
	if ((o = json_object()) == NULL)
		return NULL;
	if (jset(o, "ok", json_boolean(lcaudit_ok(la))) ||
	    jset(o, "finished", json_boolean(la->finished)) ||
	    jset(o, "tolerance", json_integer(la->tol_ms / 1000)) ||
	    (la->have_time && (jset_time(o, "first_time", la->first_ms) ||
				  jset_time(o, "last_time", la->last_ms))))
		goto fail;
	if ((x = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			   "s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		 "leaves", (json_int_t)c->leaves, "allow", (json_int_t)c->allow,
		 "deny", (json_int_t)c->deny, "ignored", (json_int_t)c->ignored,
		 "keys", (json_int_t)c->keys, "active", (json_int_t)c->active,
		 "retired", (json_int_t)c->retired, "destroyed",
		 (json_int_t)c->destroyed, "credentials",
		 (json_int_t)c->credentials, "credentials_failed",
		 (json_int_t)c->credentials_failed, "rotations",
		 (json_int_t)c->rotations, "retirements",
		 (json_int_t)c->retirements, "destructions",
		 (json_int_t)c->destructions, "attestations",
		 (json_int_t)c->attestations, "attestations_verified",
		 (json_int_t)c->attestations_verified, "violations",
		 (json_int_t)c->violations)) == NULL ||
	    jset(o, "counts", x))
		goto fail;
	if ((arr = json_array()) == NULL || jset(o, "keys", arr))
		goto fail;
	for (i = 0; i < la->nkeys; i++)
		if (json_array_append_new(arr, key_json(la, i)) != 0)
			goto fail;
	if ((arr = json_array()) == NULL || jset(o, "events", arr))
		goto fail;
	for (i = 0; i < la->nev; i++) {
		if ((x = json_object()) == NULL ||
		    json_array_append_new(arr, x) != 0 ||
		    jset(x, "seq", json_integer(la->ev[i].seq)) ||
		    jset_time(x, "time", la->ev[i].ms) ||
		    jset(x, "event", json_string(la->ev[i].event)) ||
		    jset(x, "summary", json_string(la->ev[i].summary)))
			goto fail;
	}
	if (la->ev_omitted > 0 &&
	    jset(o, "events_omitted", json_integer((json_int_t)la->ev_omitted)))
		goto fail;
	if ((arr = json_array()) == NULL || jset(o, "violations", arr))
		goto fail;
	for (i = 0; i < la->nv; i++)
		if (json_array_append_new(arr, viol_json(&la->v[i])) != 0)
			goto fail;
	if (jset(o, "violations_omitted",
		json_integer((json_int_t)(c->violations - la->nv))))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* Text from the log, with control characters shown as '?' (no escape
 * sequence of a hostile log reaches a terminal) but for a final newline. */
static void
put_safe(FILE *out, const char *s)
{
	for (; s != NULL && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '\n' && s[1] == '\0')
			fputc(ch, out);
		else if (ch < 0x20 || ch == 0x7f)
			fputc('?', out);
		else if (ch == 0xc2 && (unsigned char)s[1] >= 0x80 &&
			 (unsigned char)s[1] < 0xa0) {
			fputc('?', out); /* a C1 control */
			s++;
		} else
			fputc(ch, out);
	}
}

/* printf where every %s is log text: formatted, then made safe. */
static void tprintf(FILE *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
tprintf(FILE *out, const char *fmt, ...)
{
	char buf[2 * MSG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put_safe(out, buf);
}

static void
text_attest(FILE *out, const char *what, const struct lcaudit_attest *a)
{
	tprintf(out, "%38s%s attestation: ", "", what);
	if (a->seq >= 0)
		tprintf(out, "verified (leaf %" PRId64 ", signed by %.80s)\n",
		    a->seq, a->signer ? a->signer : "the old and the new key");
	else if (a->bad > 0)
		tprintf(out, "NOT verified (%u failed: %.300s)\n", a->bad,
		    a->problem);
	else
		tprintf(out, "MISSING%s%.300s\n",
		    a->outcome ? ", outcome at " : "",
		    a->outcome ? a->outcome : "");
}

static void
text_key(const struct lcaudit *la, size_t idx, FILE *out)
{
	const struct lcaudit_key *k = &la->keys[idx];
	char t[32], d1[48], d2[48];
	size_t i;

	tprintf(out, "key %s%s%s%s\n", k->id, k->kid ? " (kid " : "",
	    k->kid ? k->kid : "", k->kid ? ")" : "");
	tprintf(out, "  agent %s, owner %s, purpose %s, alg %s%s%s\n",
	    k->agent ? k->agent : "?", k->owner ? k->owner : "?",
	    k->purpose ? k->purpose : "?", k->alg ? k->alg : "?",
	    k->task ? ", task " : "", k->task ? k->task : "");
	if (k->spki_sha256[0])
		fprintf(out, "  spki sha256 %s\n", k->spki_sha256);
	if (k->max_age || k->ttl) {
		fmt_dur(k->max_age, d1, sizeof(d1));
		fmt_dur(k->ttl, d2, sizeof(d2));
		fprintf(out, "  max_age %s, ttl %s\n", k->max_age ? d1 : "none",
		    k->ttl ? d2 : "none");
	}
	fmt_ms(k->created_ms, t, sizeof(t));
	if (k->predecessor)
		tprintf(out,
		    "  leaf %-6" PRId64 " %s  created by the rotation "
		    "of %s\n",
		    k->created_seq, t, k->predecessor);
	else
		fprintf(out, "  leaf %-6" PRId64 " %s  created\n",
		    k->created_seq, t);
	if (k->issued || k->failed || k->denied) {
		fprintf(out, "  credentials: %" PRIu64 " issued", k->issued);
		if (k->cred_first_seq >= 0 &&
		    k->cred_first_seq == k->cred_last_seq)
			fprintf(out, " (leaf %" PRId64 ")", k->cred_first_seq);
		else if (k->cred_first_seq >= 0)
			fprintf(out, " (leaves %" PRId64 " to %" PRId64 ")",
			    k->cred_first_seq, k->cred_last_seq);
		fprintf(out,
		    ", %" PRIu64 " failed; %" PRIu64 " denied requests",
		    k->failed, k->denied);
		if (k->cred_max_exp != INT64_MIN) {
			fmt_ms(k->cred_max_exp * 1000, t, sizeof(t));
			fprintf(out, "; the last expires %s", t);
		}
		fputc('\n', out);
	}
	if (k->ended_seq >= 0 && k->ended_how != LCAUDIT_END_DESTROY) {
		fmt_ms(k->ended_ms, t, sizeof(t));
		tprintf(out,
		    "  leaf %-6" PRId64
		    " %s  %s (trigger %.40s: %.200s)%s%.80s\n",
		    k->ended_seq, t,
		    k->ended_how == LCAUDIT_END_ROTATE ? "rotated" : "retired",
		    k->end_trigger ? k->end_trigger : "?",
		    k->end_reason ? k->end_reason : "",
		    k->ended_how == LCAUDIT_END_ROTATE ? " -> " : "",
		    k->ended_how == LCAUDIT_END_ROTATE && k->successor
			? k->successor
			: "");
	}
	if (k->rotation.decision_seq >= 0)
		text_attest(out, "rotation", &k->rotation);
	if (k->destroyed_seq >= 0) {
		fmt_ms(k->destroyed_ms, t, sizeof(t));
		tprintf(out,
		    "  leaf %-6" PRId64
		    " %s  destroyed (trigger %.40s: %.200s)",
		    k->destroyed_seq, t,
		    k->destroy_trigger ? k->destroy_trigger : "?",
		    k->destroy_reason ? k->destroy_reason : "");
		if (k->objects_destroyed >= 0)
			fprintf(out, ", objects destroyed %" PRId64,
			    k->objects_destroyed);
		if (k->objects_found_after >= 0)
			fprintf(out, ", found after %" PRId64,
			    k->objects_found_after);
		fputc('\n', out);
	}
	if (k->destruction.decision_seq >= 0)
		text_attest(out, "destruction", &k->destruction);
	if (k->max_age_late_ms != INT64_MIN) {
		fmt_dur((k->max_age_late_ms < 0 ? -k->max_age_late_ms
						: k->max_age_late_ms) /
			    1000,
		    d1, sizeof(d1));
		fprintf(out, "  max_age: %s %s %s its deadline\n",
		    k->ended_seq >= 0 ? "active life ended"
				      : "still active at the log's end,",
		    d1, k->max_age_late_ms > 0 ? "after" : "before");
	}
	if (k->ttl_late_ms != INT64_MIN) {
		fmt_dur(
		    (k->ttl_late_ms < 0 ? -k->ttl_late_ms : k->ttl_late_ms) /
			1000,
		    d1, sizeof(d1));
		fprintf(out, "  ttl: %s %s %s its deadline\n",
		    k->destroyed_seq >= 0 ? "destroyed"
					  : "still alive at the log's end,",
		    d1, k->ttl_late_ms > 0 ? "after" : "before");
	}
	fprintf(out, "  state: %s\n", state_name(k->state));
	for (i = 0; k->violations > 0 && i < la->nv; i++) {
		if (la->vkey[i] != idx)
			continue;
		if (la->v[i].seq >= 0)
			tprintf(out, "  VIOLATION (%s) leaf %" PRId64 ": %s\n",
			    lcaudit_kind_name(la->v[i].kind), la->v[i].seq,
			    la->v[i].msg);
		else
			tprintf(out, "  VIOLATION (%s): %s\n",
			    lcaudit_kind_name(la->v[i].kind), la->v[i].msg);
	}
	fputc('\n', out);
}

static void
text_summary(const struct lcaudit *la, FILE *out)
{
	const struct lcaudit_counts *c = &la->c;

	fprintf(out,
	    "summary: leaves %" PRIu64 ", keys %" PRIu64 " (%" PRIu64
	    " active, %" PRIu64 " retired, %" PRIu64 " destroyed), "
	    "credentials %" PRIu64 " (%" PRIu64 " failed), rotations %" PRIu64
	    ", retirements %" PRIu64 ", destructions %" PRIu64
	    ", attestations verified %" PRIu64 " of %" PRIu64
	    ", tolerance %" PRId64 "s: %" PRIu64 " violation%s, %s\n",
	    c->leaves, c->keys, c->active, c->retired, c->destroyed,
	    c->credentials, c->credentials_failed, c->rotations, c->retirements,
	    c->destructions, c->attestations_verified, c->attestations,
	    la->tol_ms / 1000, c->violations, c->violations == 1 ? "" : "s",
	    lcaudit_ok(la) ? "OK"
	    : la->finished ? "FAILED"
			   : "NOT FINISHED");
}

int
lcaudit_report_text(const struct lcaudit *la, FILE *out)
{
	char t1[32], t2[32];
	size_t i, loose = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    la != NULL && out != NULL, CUSTODY_E_INVALID_ARG);
	fprintf(out, "custody lifecycle audit");
	if (la->have_time) {
		fmt_ms(la->first_ms, t1, sizeof(t1));
		fmt_ms(la->last_ms, t2, sizeof(t2));
		fprintf(out, ": leaves 0 to %" PRId64 ", %s to %s",
		    la->last_seq, t1, t2);
	}
	fprintf(out, "\n\n");
	for (i = 0; i < la->nkeys; i++)
		text_key(la, i, out);
	if (la->nev > 0)
		fprintf(out, "events:\n");
	for (i = 0; i < la->nev; i++) {
		fmt_ms(la->ev[i].ms, t1, sizeof(t1));
		tprintf(out, "  leaf %-6" PRId64 " %s  %s: %s\n", la->ev[i].seq,
		    t1, la->ev[i].event, la->ev[i].summary);
	}
	if (la->ev_omitted > 0)
		fprintf(
		    out, "  (%" PRIu64 " more not listed)\n", la->ev_omitted);
	if (la->nev > 0)
		fputc('\n', out);
	for (i = 0; i < la->nv; i++) {
		if (la->vkey[i] != NOKEY)
			continue;
		if (loose++ == 0)
			fprintf(out, "violations not about a known key:\n");
		if (la->v[i].seq >= 0)
			tprintf(out, "  VIOLATION (%s) leaf %" PRId64 ": %s\n",
			    lcaudit_kind_name(la->v[i].kind), la->v[i].seq,
			    la->v[i].msg);
		else
			tprintf(out, "  VIOLATION (%s): %s\n",
			    lcaudit_kind_name(la->v[i].kind), la->v[i].msg);
	}
	if (la->c.violations > la->nv)
		fprintf(out, "(%" PRIu64 " more violations not listed)\n",
		    la->c.violations - (uint64_t)la->nv);
	if (loose > 0)
		fputc('\n', out);
	text_summary(la, out);
	fflush(out);
	return ferror(out) ? CUSTODY_E_IO : 0;
}

/* ---- HTML ---------------------------------------------------------------- */

static void
put_html(FILE *out, const char *s)
{
	for (; s != NULL && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '<')
			fputs("&lt;", out);
		else if (ch == '>')
			fputs("&gt;", out);
		else if (ch == '&')
			fputs("&amp;", out);
		else if (ch == '"')
			fputs("&quot;", out);
		else if (ch == '\'')
			fputs("&#39;", out);
		else if (ch < 0x20 || ch == 0x7f)
			fputc('?', out);
		else
			fputc(ch, out);
	}
}

/* printf where the result is escaped for HTML. */
static void hprintf(FILE *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
hprintf(FILE *out, const char *fmt, ...)
{
	char buf[2 * MSG_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put_html(out, buf);
}

static void
html_row(FILE *out, int64_t seq, int64_t ms, const char *cls)
{
	char t[32];

	fmt_ms(ms, t, sizeof(t));
	fprintf(out, "<tr class=\"%s\"><td>%" PRId64 "</td><td>%s</td><td>",
	    cls, seq, t);
}

static void
html_attest(FILE *out, const char *what, const struct lcaudit_attest *a)
{
	fprintf(out, "<br><span class=\"%s\">", a->seq >= 0 ? "good" : "bad");
	if (a->seq >= 0)
		hprintf(out,
		    "%s attestation verified (leaf %" PRId64 "%s%.80s)", what,
		    a->seq, a->signer ? ", signed by " : "",
		    a->signer ? a->signer : "");
	else if (a->bad > 0)
		hprintf(out, "%s attestation NOT verified: %.300s", what,
		    a->problem);
	else
		hprintf(out, "%s attestation MISSING", what);
	fputs("</span>", out);
}

static void
html_key(const struct lcaudit *la, size_t idx, FILE *out)
{
	const struct lcaudit_key *k = &la->keys[idx];
	char t[32], d1[48], d2[48];
	size_t i;

	fprintf(out, "<section class=\"key %s\"><h2>",
	    k->violations ? "failed" : "ok");
	hprintf(out, "%s", k->id);
	fprintf(out, " <small>%s</small></h2>\n<p>", state_name(k->state));
	hprintf(out, "kid %s, agent %s, owner %s, purpose %s, alg %s%s%s",
	    k->kid ? k->kid : "?", k->agent ? k->agent : "?",
	    k->owner ? k->owner : "?", k->purpose ? k->purpose : "?",
	    k->alg ? k->alg : "?", k->task ? ", task " : "",
	    k->task ? k->task : "");
	fmt_dur(k->max_age, d1, sizeof(d1));
	fmt_dur(k->ttl, d2, sizeof(d2));
	fprintf(out,
	    "<br>spki sha256 <code>%s</code><br>max_age %s, ttl %s</p>\n",
	    k->spki_sha256[0] ? k->spki_sha256 : "?", k->max_age ? d1 : "none",
	    k->ttl ? d2 : "none");
	fputs("<table><tr><th>leaf</th><th>time</th><th>what</th></tr>\n", out);
	html_row(out, k->created_seq, k->created_ms, "create");
	if (k->predecessor)
		hprintf(out, "created by the rotation of %s", k->predecessor);
	else
		fputs("created", out);
	fputs("</td></tr>\n", out);
	if (k->issued || k->failed) {
		fputs("<tr class=\"cred\"><td>", out);
		if (k->cred_first_seq >= 0)
			fprintf(out, "%" PRId64 "&ndash;%" PRId64,
			    k->cred_first_seq, k->cred_last_seq);
		fprintf(out,
		    "</td><td></td><td>%" PRIu64 " credentials issued, %" PRIu64
		    " failed",
		    k->issued, k->failed);
		if (k->cred_max_exp != INT64_MIN) {
			fmt_ms(k->cred_max_exp * 1000, t, sizeof(t));
			fprintf(out, "; the last expires %s", t);
		}
		fputs("</td></tr>\n", out);
	}
	if (k->ended_seq >= 0 && k->ended_how != LCAUDIT_END_DESTROY) {
		html_row(out, k->ended_seq, k->ended_ms, "end");
		hprintf(out, "%s (trigger %.40s: %.200s)%s%.80s",
		    k->ended_how == LCAUDIT_END_ROTATE ? "rotated" : "retired",
		    k->end_trigger ? k->end_trigger : "?",
		    k->end_reason ? k->end_reason : "",
		    k->ended_how == LCAUDIT_END_ROTATE ? " -> " : "",
		    k->ended_how == LCAUDIT_END_ROTATE && k->successor
			? k->successor
			: "");
		if (k->rotation.decision_seq >= 0)
			html_attest(out, "rotation", &k->rotation);
		fputs("</td></tr>\n", out);
	}
	if (k->destroyed_seq >= 0) {
		html_row(out, k->destroyed_seq, k->destroyed_ms, "destroy");
		hprintf(out, "destroyed (trigger %.40s: %.200s)",
		    k->destroy_trigger ? k->destroy_trigger : "?",
		    k->destroy_reason ? k->destroy_reason : "");
		if (k->destruction.decision_seq >= 0)
			html_attest(out, "destruction", &k->destruction);
		fputs("</td></tr>\n", out);
	}
	fputs("</table>\n", out);
	if (k->violations > 0) {
		fputs("<ul class=\"violations\">\n", out);
		for (i = 0; i < la->nv; i++) {
			if (la->vkey[i] != idx)
				continue;
			fputs("<li>", out);
			if (la->v[i].seq >= 0)
				fprintf(
				    out, "leaf %" PRId64 ": ", la->v[i].seq);
			hprintf(out, "%s", la->v[i].msg);
			fputs("</li>\n", out);
		}
		fputs("</ul>\n", out);
	}
	fputs("</section>\n", out);
}

int
lcaudit_report_html(const struct lcaudit *la, FILE *out)
{
	size_t i;
	char t[32];

	CUSTODY_RETURN_VAL_IF_FAIL(
	    la != NULL && out != NULL, CUSTODY_E_INVALID_ARG);
	fputs(
	    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<title>custody lifecycle audit</title>\n<style>\n"
	    "body{font-family:sans-serif;margin:2em;max-width:70em}\n"
	    "section.key{border-left:6px solid #3a3;padding:0 1em;"
	    "margin:1.5em 0}\n"
	    "section.failed{border-left-color:#c22}\n"
	    "table{border-collapse:collapse}td,th{padding:2px 8px;"
	    "text-align:left;vertical-align:top}\n"
	    "tr.destroy td{color:#733}.good{color:#272}.bad,"
	    ".violations{color:#c22}\n"
	    "code{font-size:90%}\n</style></head><body>\n"
	    "<h1>custody lifecycle audit</h1>\n<p>",
	    out);
	text_summary(la, out);
	fputs("</p>\n", out);
	for (i = 0; i < la->nkeys; i++)
		html_key(la, i, out);
	if (la->nev > 0) {
		fputs("<h2>Events</h2>\n<table>\n", out);
		for (i = 0; i < la->nev; i++) {
			fmt_ms(la->ev[i].ms, t, sizeof(t));
			fprintf(out, "<tr><td>%" PRId64 "</td><td>%s</td><td>",
			    la->ev[i].seq, t);
			hprintf(
			    out, "%s: %s", la->ev[i].event, la->ev[i].summary);
			fputs("</td></tr>\n", out);
		}
		fputs("</table>\n", out);
	}
	fputs("<h2>Violations not about a known key</h2>\n<ul "
	      "class=\"violations\">\n",
	    out);
	for (i = 0; i < la->nv; i++) {
		if (la->vkey[i] != NOKEY)
			continue;
		fputs("<li>", out);
		if (la->v[i].seq >= 0)
			fprintf(out, "leaf %" PRId64 ": ", la->v[i].seq);
		hprintf(out, "%s", la->v[i].msg);
		fputs("</li>\n", out);
	}
	fputs("</ul>\n</body></html>\n", out);
	fflush(out);
	return ferror(out) ? CUSTODY_E_IO : 0;
}
