/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "credential.h"
#include "err.h"
#include "keyring.h"
#include "keys.h"
#include "log.h"

/* One key; the public part first, so that a keyring_key is an entry. */
struct entry {
	struct keyring_key pub;
	struct store_key *rec;
	atomic_int refs; /* the ring's and the callers' */
	pthread_mutex_t bind;
	struct token_key *tk; /* bound on first use, under bind */
	struct token *t;
	/* signing: a signature holds use shared and needs live; keyring_stop()
	 * takes it exclusive, so once it returns nothing signs any more */
	pthread_rwlock_t use;
	int live;
	atomic_llong last_exp;	 /* latest expiry of what it signed */
	atomic_llong exp_logged; /* the last one handed to the store */
};

struct keyring {
	struct token *t;
	char *ed25519_alg;
	pthread_rwlock_t lock; /* everything below */
	struct entry **all;    /* in creation order */
	size_t n, cap;
	/* open addressing, capacity a power of two at least twice n */
	struct entry **by_id, **by_owner_of; /* the latter: active keys */
	size_t slots;
};

static uint64_t
fnv(uint64_t h, const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return (h ^ 0xff) * 0x100000001b3ull; /* a separator between parts */
}

static uint64_t
hash_id(const char *id)
{
	return fnv(0xcbf29ce484222325ull, id);
}

static uint64_t
hash_use(const char *agent, const char *purpose, const char *task)
{
	return fnv(fnv(fnv(0xcbf29ce484222325ull, agent), purpose), task);
}

static int
same(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static int
is_active(const struct entry *e)
{
	return strcmp(e->rec->state, "active") == 0;
}

/* Put e in both indexes, which have room (write lock held). */
static void
index_one(
    struct entry **by_id, struct entry **by_use, size_t slots, struct entry *e)
{
	size_t mask = slots - 1, j;

	for (j = hash_id(e->rec->id) & mask; by_id[j] != NULL;
	     j = (j + 1) & mask)
		;
	by_id[j] = e;
	if (!is_active(e))
		return;
	for (j = hash_use(e->rec->agent, e->rec->purpose, e->rec->task) & mask;
	     by_use[j] != NULL; j = (j + 1) & mask)
		;
	by_use[j] = e;
}

/* Rebuild both indexes for at least want entries (write lock held). */
static int
reindex(struct keyring *kr, size_t want)
{
	struct entry **id, **use;
	size_t slots = 16, i;

	while (slots < want * 2)
		slots *= 2;
	if ((id = calloc(slots, sizeof(*id))) == NULL ||
	    (use = calloc(slots, sizeof(*use))) == NULL) {
		free(id);
		return CUSTODY_E_NOMEM;
	}
	for (i = 0; i < kr->n; i++)
		index_one(id, use, slots, kr->all[i]);
	free(kr->by_id);
	free(kr->by_owner_of);
	kr->by_id = id;
	kr->by_owner_of = use;
	kr->slots = slots;
	return 0;
}

static void
entry_free(struct entry *e)
{
	token_key_free(e->tk);
	json_decref(e->pub.jwk);
	store_key_free(e->rec);
	pthread_mutex_destroy(&e->bind);
	pthread_rwlock_destroy(&e->use);
	free(e);
}

void
keyring_put(struct keyring_key *k)
{
	struct entry *e = (struct entry *)k;

	if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
		entry_free(e);
}

static struct keyring_key *
ref(struct entry *e)
{
	atomic_fetch_add(&e->refs, 1);
	return &e->pub;
}

/* A new entry for rec (taken over, also on error). */
static int
entry_new(struct keyring *kr, struct store_key *rec, struct entry **ep)
{
	struct entry *e;
	enum custody_alg alg;
	int r;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		store_key_free(rec);
		return CUSTODY_E_NOMEM;
	}
	e->rec = rec;
	e->pub.rec = rec;
	e->t = kr->t;
	atomic_init(&e->refs, 1);
	pthread_mutex_init(&e->bind, NULL);
	pthread_rwlock_init(&e->use, NULL);
	e->live = is_active(e);
	atomic_init(&e->last_exp, rec->last_exp);
	atomic_init(&e->exp_logged, rec->last_exp);
	if (strcmp(rec->purpose, "jwt") == 0) {
		if ((r = alg_from_name(rec->alg, &alg)) != 0 ||
		    (r = credential_jwk(alg, rec->spki, rec->spki_len, rec->kid,
			 kr->ed25519_alg, &e->pub.jwk)) != 0) {
			log_error_fr(r, "key %s: its public key", rec->id);
			entry_free(e);
			return r;
		}
	}
	*ep = e;
	return 0;
}

/* Append e (write lock held); e is the ring's, also on error. */
static int
append(struct keyring *kr, struct entry *e)
{
	struct entry **all;
	size_t cap;
	int r;

	if (kr->n == kr->cap) {
		cap = kr->cap ? kr->cap * 2 : 64;
		if ((all = realloc(kr->all, cap * sizeof(*all))) == NULL) {
			keyring_put(&e->pub);
			return CUSTODY_E_NOMEM;
		}
		kr->all = all;
		kr->cap = cap;
	}
	kr->all[kr->n++] = e;
	if (kr->n * 2 <= kr->slots) {
		index_one(kr->by_id, kr->by_owner_of, kr->slots, e);
		return 0;
	}
	if ((r = reindex(kr, kr->n)) != 0) {
		kr->n--;
		keyring_put(&e->pub);
	}
	return r;
}

static struct entry *
lookup_id(struct keyring *kr, const char *id)
{
	size_t mask, j;

	if (kr->slots == 0)
		return NULL;
	mask = kr->slots - 1;
	for (j = hash_id(id) & mask; kr->by_id[j] != NULL; j = (j + 1) & mask)
		if (strcmp(kr->by_id[j]->rec->id, id) == 0)
			return kr->by_id[j];
	return NULL;
}

int
keyring_open(struct token *t, struct store *st, const char *ed25519_alg,
    struct keyring **krp)
{
	struct keyring *kr;
	struct store_key **keys = NULL;
	struct entry *e;
	size_t n = 0, i;
	int r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && krp != NULL, CUSTODY_E_INVALID_ARG);
	if ((kr = calloc(1, sizeof(*kr))) == NULL)
		return CUSTODY_E_NOMEM;
	kr->t = t;
	pthread_rwlock_init(&kr->lock, NULL);
	if ((kr->ed25519_alg = strdup(ed25519_alg ? ed25519_alg : "EdDSA")) ==
	    NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	/* every key but the destroyed ones, oldest first */
	if ((r = store_key_list(st, NULL, &keys, &n)) != 0)
		goto out;
	for (i = 0; i < n && r == 0; i++) {
		if (strcmp(keys[i]->state, "destroyed") == 0)
			continue;
		if ((r = entry_new(kr, keys[i], &e)) == 0)
			r = append(kr, e);
		keys[i] = NULL; /* the ring's now */
	}
	store_key_list_free(keys, n);
out:
	if (r != 0) {
		keyring_close(kr);
		return r;
	}
	*krp = kr;
	return 0;
}

void
keyring_close(struct keyring *kr)
{
	size_t i;

	if (kr == NULL)
		return;
	for (i = 0; i < kr->n; i++)
		keyring_put(&kr->all[i]->pub);
	free(kr->all);
	free(kr->by_id);
	free(kr->by_owner_of);
	free(kr->ed25519_alg);
	pthread_rwlock_destroy(&kr->lock);
	free(kr);
}

int
keyring_get(struct keyring *kr, const char *id, struct keyring_key **kp)
{
	struct entry *e;
	int r = CUSTODY_E_KEY_NOT_FOUND;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    kr != NULL && id != NULL && kp != NULL, CUSTODY_E_INVALID_ARG);
	pthread_rwlock_rdlock(&kr->lock);
	if ((e = lookup_id(kr, id)) != NULL) {
		*kp = ref(e);
		r = 0;
	}
	pthread_rwlock_unlock(&kr->lock);
	return r;
}

int
keyring_find(struct keyring *kr, const char *agent, const char *purpose,
    const char *task, struct keyring_key **kp)
{
	struct entry *e;
	size_t mask, j;
	int r = CUSTODY_E_KEY_NOT_FOUND;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    kr != NULL && agent != NULL && purpose != NULL && kp != NULL,
	    CUSTODY_E_INVALID_ARG);
	pthread_rwlock_rdlock(&kr->lock);
	if (kr->slots > 0) {
		mask = kr->slots - 1;
		for (j = hash_use(agent, purpose, task) & mask;
		     (e = kr->by_owner_of[j]) != NULL; j = (j + 1) & mask)
			if (strcmp(e->rec->agent, agent) == 0 &&
			    strcmp(e->rec->purpose, purpose) == 0 &&
			    same(e->rec->task, task)) {
				*kp = ref(e);
				r = 0;
				break;
			}
	}
	pthread_rwlock_unlock(&kr->lock);
	return r;
}

int
keyring_add(struct keyring *kr, struct store_key *rec)
{
	struct entry *e;
	int r;

	if (kr == NULL || rec == NULL) {
		store_key_free(rec);
		return CUSTODY_E_INVALID_ARG;
	}
	if ((r = entry_new(kr, rec, &e)) != 0)
		return r;
	pthread_rwlock_wrlock(&kr->lock);
	if (lookup_id(kr, rec->id) != NULL) {
		keyring_put(&e->pub);
		r = CUSTODY_E_EXISTS;
	} else
		r = append(kr, e);
	pthread_rwlock_unlock(&kr->lock);
	return r;
}

int
keyring_list(struct keyring *kr, const char *purpose,
    struct keyring_key ***keysp, size_t *np)
{
	struct keyring_key **v;
	size_t i, n = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    kr != NULL && keysp != NULL && np != NULL, CUSTODY_E_INVALID_ARG);
	pthread_rwlock_rdlock(&kr->lock);
	if ((v = calloc(kr->n + 1, sizeof(*v))) == NULL) {
		pthread_rwlock_unlock(&kr->lock);
		return CUSTODY_E_NOMEM;
	}
	for (i = 0; i < kr->n; i++)
		if (purpose == NULL ||
		    strcmp(kr->all[i]->rec->purpose, purpose) == 0)
			v[n++] = ref(kr->all[i]);
	pthread_rwlock_unlock(&kr->lock);
	*keysp = v;
	*np = n;
	return 0;
}

void
keyring_list_free(struct keyring_key **keys, size_t n)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < n; i++)
		keyring_put(keys[i]);
	free(keys);
}

int
keyring_sign(struct keyring *kr, struct keyring_key *k, const uint8_t *msg,
    size_t len, uint8_t **sigp, size_t *siglenp)
{
	struct entry *e = (struct entry *)k;
	struct token_key *tk;
	int r = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    kr != NULL && e != NULL && e->t != NULL, CUSTODY_E_INVALID_ARG);
	pthread_rwlock_rdlock(&e->use);
	if (!e->live) {
		pthread_rwlock_unlock(&e->use);
		return CUSTODY_E_STATE;
	}
	pthread_mutex_lock(&e->bind);
	if (e->tk == NULL)
		r = keys_open(e->t, e->rec, &e->tk);
	tk = e->tk;
	pthread_mutex_unlock(&e->bind);
	if (r == 0)
		r = token_sign(e->t, tk, msg, len, sigp, siglenp);
	pthread_rwlock_unlock(&e->use);
	return r;
}

/* Set the live flag of key id; CUSTODY_E_KEY_NOT_FOUND if not in the ring. */
static int
set_live(struct keyring *kr, const char *id, int live)
{
	struct keyring_key *k;
	struct entry *e;
	int r;

	if ((r = keyring_get(kr, id, &k)) != 0)
		return r;
	e = (struct entry *)k;
	pthread_rwlock_wrlock(&e->use);
	e->live = live && is_active(e);
	pthread_rwlock_unlock(&e->use);
	keyring_put(k);
	return 0;
}

int
keyring_stop(struct keyring *kr, const char *id)
{
	CUSTODY_RETURN_VAL_IF_FAIL(
	    kr != NULL && id != NULL, CUSTODY_E_INVALID_ARG);
	return set_live(kr, id, 0);
}

int
keyring_resume(struct keyring *kr, const char *id)
{
	CUSTODY_RETURN_VAL_IF_FAIL(
	    kr != NULL && id != NULL, CUSTODY_E_INVALID_ARG);
	return set_live(kr, id, 1);
}

int
keyring_update(struct keyring *kr, struct store_key *rec)
{
	struct entry *e = NULL, *old = NULL;
	size_t i;
	int r = 0, gone;

	if (kr == NULL || rec == NULL) {
		store_key_free(rec);
		return CUSTODY_E_INVALID_ARG;
	}
	gone = strcmp(rec->state, "destroyed") == 0;
	if (!gone && (r = entry_new(kr, rec, &e)) != 0)
		return r;
	pthread_rwlock_wrlock(&kr->lock);
	for (i = 0; i < kr->n; i++)
		if (strcmp(kr->all[i]->rec->id, rec->id) == 0)
			break;
	if (i == kr->n) {
		r = CUSTODY_E_KEY_NOT_FOUND;
		goto out;
	}
	old = kr->all[i];
	if (gone) {
		memmove(&kr->all[i], &kr->all[i + 1],
		    (kr->n - i - 1) * sizeof(*kr->all));
		kr->n--;
	} else {
		/* what the old entry learnt about its credentials stays */
		if (atomic_load(&old->last_exp) > atomic_load(&e->last_exp))
			atomic_store(&e->last_exp, atomic_load(&old->last_exp));
		if (atomic_load(&old->exp_logged) > atomic_load(&e->exp_logged))
			atomic_store(
			    &e->exp_logged, atomic_load(&old->exp_logged));
		kr->all[i] = e;
		e = NULL;
	}
	/* the indexes are rebuilt from all[]: the old entry leaves them */
	if ((r = reindex(kr, kr->n > 0 ? kr->n : 1)) != 0)
		log_error_fr(r, "keyring: reindex");
out:
	pthread_rwlock_unlock(&kr->lock);
	if (old != NULL) {
		pthread_rwlock_wrlock(&old->use);
		old->live = 0;
		pthread_rwlock_unlock(&old->use);
		keyring_put(&old->pub);
	}
	if (e != NULL)
		keyring_put(&e->pub);
	if (gone)
		store_key_free(rec);
	return r;
}

int
keyring_note_exp(struct keyring_key *k, int64_t exp)
{
	struct entry *e = (struct entry *)k;
	long long cur;

	cur = atomic_load(&e->last_exp);
	while (
	    exp > cur && !atomic_compare_exchange_weak(&e->last_exp, &cur, exp))
		;
	cur = atomic_load(&e->exp_logged);
	while (exp > cur) {
		if (atomic_compare_exchange_weak(&e->exp_logged, &cur, exp))
			return 1;
	}
	return 0;
}

int64_t
keyring_last_exp(const struct keyring_key *k)
{
	struct entry *e = (struct entry *)k;

	return atomic_load(&e->last_exp);
}

size_t
keyring_size(struct keyring *kr)
{
	size_t n;

	pthread_rwlock_rdlock(&kr->lock);
	n = kr->n;
	pthread_rwlock_unlock(&kr->lock);
	return n;
}
