/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "keys.h"
#include "log.h"
#include "p11uri.h"
#include "util.h"

/* Valid UTF-8 (no overlongs, no surrogates) without control characters. */
int
keys_check_text(const char *what, const char *s, size_t maxlen)
{
	const char *why = util_text_problem(s, maxlen);

	if (why == NULL)
		return 0;
	if (strcmp(why, UTIL_TEXT_TOO_LONG) == 0)
		log_error_f("%s is longer than %zu bytes", what, maxlen);
	else
		log_error_f("%s %s", what, why);
	return CUSTODY_E_INVALID_ARG;
}

static int
check_req(const struct keys_create_req *req)
{
	static const char *purposes[] = {
	    "jwt", "x509-ca", "checkpoint", "attestation"};
	size_t i;
	int r;

	if ((r = keys_check_text("agent", req->agent, 256)) != 0 ||
	    (r = keys_check_text("owner", req->owner, 256)) != 0)
		return r;
	if (req->task != NULL &&
	    (r = keys_check_text("task", req->task, 128)) != 0)
		return r;
	for (i = 0; i < sizeof(purposes) / sizeof(purposes[0]); i++)
		if (req->purpose != NULL &&
		    strcmp(req->purpose, purposes[i]) == 0)
			break;
	if (i == sizeof(purposes) / sizeof(purposes[0])) {
		log_error_f("unknown purpose '%s' (jwt, x509-ca, checkpoint, "
			    "attestation)",
		    req->purpose ? req->purpose : "");
		return CUSTODY_E_INVALID_ARG;
	}
	if ((unsigned)req->alg >= CUSTODY_ALG_COUNT)
		return CUSTODY_E_UNKNOWN_ALG;
	/* a signed note has lines for Ed25519 and ECDSA P-256 only */
	if (strcmp(req->purpose, "checkpoint") == 0 &&
	    req->alg != CUSTODY_ALG_ED25519 &&
	    req->alg != CUSTODY_ALG_ECDSA_P256) {
		log_error_f("a checkpoint key is ed25519 or ecdsa-p256");
		return CUSTODY_E_INVALID_ARG;
	}
	if (req->max_age < 0 || req->ttl < 0)
		return CUSTODY_E_INVALID_ARG;
	/* a just-in-time key dies with its task or at its ttl, whichever
	 * comes first: without a ttl, a lost task.completed would keep it */
	if (req->task != NULL && req->ttl == 0) {
		log_error_f("a key for task '%s' needs a ttl (it is destroyed "
			    "when the task completes or its ttl passes, "
			    "whichever is first)",
		    req->task);
		return CUSTODY_E_INVALID_ARG;
	}
	return 0;
}

static int
same_slot(const struct store_key *k, const struct keys_create_req *req)
{
	if (strcmp(k->agent, req->agent) != 0 ||
	    strcmp(k->purpose, req->purpose) != 0)
		return 0;
	if (k->task == NULL || req->task == NULL)
		return k->task == req->task;
	return strcmp(k->task, req->task) == 0;
}

/* Would req conflict with an active key? Checked before a slow keygen. */
static int
check_unique(struct store *st, const struct keys_create_req *req)
{
	struct store_key **keys = NULL;
	size_t n = 0, i;
	int r;

	if ((r = store_key_list(st, "active", &keys, &n)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		if (same_slot(keys[i], req)) {
			log_error_f("key %s is already active for agent '%s', "
				    "purpose %s%s%s",
			    keys[i]->id, req->agent, req->purpose,
			    req->task ? ", task " : "",
			    req->task ? req->task : "");
			r = CUSTODY_E_EXISTS;
			break;
		}
	}
	store_key_list_free(keys, n);
	return r;
}

json_t *
keys_leaf_start(
    const struct keys_env *env, const char *event, const struct store_key *k)
{
	if (env->policy_sha256 != NULL)
		return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:s}",
		    "event", event, "principal", env->principal, "key", "id",
		    k->id, "kid", k->kid, "policy", "sha256",
		    env->policy_sha256, "rule", env->rule, "decision", "allow");
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}, s:s}", "event",
	    event, "principal", env->principal, "key", "id", k->id, "kid",
	    k->kid, "policy", "rule", env->rule, "decision", "allow");
}

json_t *
keys_create_detail(const struct store_key *k, const struct token_attrs *attrs)
{
	json_t *d = NULL;
	char *spki = NULL;

	if (util_base64_encode(k->spki, k->spki_len, &spki) != 0)
		return NULL;
	d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "agent", k->agent,
	    "owner", k->owner, "purpose", k->purpose, "alg", k->alg, "spki",
	    spki, "token", k->token, "attributes", keys_attrs_json(attrs));
	free(spki);
	if (d == NULL)
		return NULL;
	/* members that do not apply are left out, not null */
	if ((k->task != NULL &&
		json_object_set_new(d, "task", json_string(k->task)) != 0) ||
	    (k->max_age != 0 && json_object_set_new(d, "max_age",
				    json_integer(k->max_age)) != 0) ||
	    (k->ttl != 0 &&
		json_object_set_new(d, "ttl", json_integer(k->ttl)) != 0)) {
		json_decref(d);
		return NULL;
	}
	return d;
}

static json_t *
create_leaf(const struct keys_env *env, const struct store_key *k,
    const struct token_generated *g)
{
	json_t *o = keys_leaf_start(env, "key.create", k), *d;

	if (o == NULL || (d = keys_create_detail(k, &g->attrs)) == NULL ||
	    json_object_set_new(o, "detail", d) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int
insert_op(struct store *st, void *arg)
{
	return store_key_insert(st, arg);
}

int
keys_create(const struct keys_env *env, const struct keys_create_req *req,
    int64_t now, struct store_key **kp, struct token_generated **genp)
{
	struct token *t;
	struct store *st;
	json_t *leaf = NULL;
	uint64_t seq;
	struct token_destroy_evidence ev;
	struct token_generated *g = NULL;
	struct store_key *k = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(env != NULL && env->t != NULL &&
				       env->st != NULL && env->a != NULL &&
				       req != NULL && kp != NULL,
	    CUSTODY_E_INVALID_ARG);
	t = env->t;
	st = env->st;
	if ((r = check_req(req)) != 0 || (r = check_unique(st, req)) != 0)
		return r;
	/* CKA_LABEL = the key id, so that token listings match the registry */
	if ((r = token_generate(t, req->alg, "k_", &g)) != 0)
		return r;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	memcpy(k->id, "k_", 2);
	util_hex_encode(g->id, TOKEN_ID_LEN, k->id + 2);
	k->created_at = now;
	k->max_age = req->max_age;
	k->ttl = req->ttl;
	k->spki_len = g->spki_len;
	if ((k->agent = strdup(req->agent)) == NULL ||
	    (k->owner = strdup(req->owner)) == NULL ||
	    (k->purpose = strdup(req->purpose)) == NULL ||
	    (k->alg = strdup(alg_name(req->alg))) == NULL ||
	    (k->state = strdup("active")) == NULL ||
	    (req->task != NULL && (k->task = strdup(req->task)) == NULL) ||
	    (k->kid = strdup(g->kid)) == NULL ||
	    (k->spki = malloc(g->spki_len)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	memcpy(k->spki, g->spki, g->spki_len);
	if ((r = p11uri_format_key(
		 token_label(t), g->id, TOKEN_ID_LEN, &k->token)) != 0)
		goto out;
	/* the record and its key.create leaf commit together */
	if ((leaf = create_leaf(env, k, g)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if ((r = audit_append(env->a, leaf, insert_op, k, &seq, NULL, NULL)) !=
	    0)
		goto out;
	*kp = k;
	k = NULL;
	if (genp != NULL) {
		*genp = g;
		g = NULL;
	}
out:
	if (r != 0 && g != NULL) {
		/* never leave a key in the token that the registry lacks */
		if (token_destroy(t, g->id, &ev) != 0)
			log_error_f("orphan key left on the token: %lu objects",
			    ev.remaining);
	}
	json_decref(leaf);
	store_key_free(k);
	token_generated_free(g);
	return r;
}

/*
 * Is k held by the token t is connected to? Its URI names the token's label;
 * without this check a key of another token would be "destroyed" by a
 * search that cannot see it.
 */
static int
check_token(struct token *t, const struct store_key *k,
    const uint8_t cka_id[TOKEN_ID_LEN])
{
	char *uri = NULL;
	int r;

	if ((r = p11uri_format_key(
		 token_label(t), cka_id, TOKEN_ID_LEN, &uri)) != 0)
		return r;
	if (strcmp(uri, k->token) != 0) {
		log_error_f("key %s is held by %s, not by token '%s'", k->id,
		    k->token, token_label(t));
		r = CUSTODY_E_WRONG_TOKEN;
	}
	free(uri);
	return r;
}

void
keys_policy_key(const struct store_key *k, struct policy_key *pk)
{
	memset(pk, 0, sizeof(*pk));
	pk->agent = k->agent;
	pk->owner = k->owner;
	pk->purpose = k->purpose;
	pk->alg = k->alg;
	pk->task = k->task;
	pk->created_at = k->created_at;
	pk->ttl = k->ttl;
	pk->id = k->id;
}

static int
open_key(struct token *t, const struct store_key *k, int retired_ok,
    struct token_key **tkp)
{
	uint8_t cka_id[TOKEN_ID_LEN];
	enum custody_alg alg;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    t != NULL && k != NULL && tkp != NULL, CUSTODY_E_INVALID_ARG);
	if (strcmp(k->state, "active") != 0 &&
	    !(retired_ok && strcmp(k->state, "retired") == 0 &&
		strcmp(k->purpose, "checkpoint") == 0)) {
		log_error_f("key %s is %s and cannot sign", k->id, k->state);
		return CUSTODY_E_STATE;
	}
	if ((r = store_key_id_parse(k->id, cka_id)) != 0 ||
	    (r = alg_from_name(k->alg, &alg)) != 0 ||
	    (r = check_token(t, k, cka_id)) != 0)
		return r;
	return token_key_open(t, cka_id, alg, k->spki, k->spki_len, tkp);
}

int
keys_open(struct token *t, const struct store_key *k, struct token_key **tkp)
{
	return open_key(t, k, 0, tkp);
}

int
keys_open_signer(
    struct token *t, const struct store_key *k, struct token_key **tkp)
{
	return open_key(t, k, 1, tkp);
}

json_t *
keys_json(const struct store_key *k)
{
	char t[32], *spki = NULL;
	json_t *o = json_object();

	json_object_set_new(o, "id", json_string(k->id));
	json_object_set_new(o, "uri", json_string(k->token));
	json_object_set_new(o, "agent", json_string(k->agent));
	json_object_set_new(o, "owner", json_string(k->owner));
	json_object_set_new(o, "purpose", json_string(k->purpose));
	json_object_set_new(o, "alg", json_string(k->alg));
	json_object_set_new(o, "state", json_string(k->state));
	if (k->task != NULL)
		json_object_set_new(o, "task", json_string(k->task));
	util_format_time(k->created_at, t, sizeof(t));
	json_object_set_new(o, "created_at", json_string(t));
	if (k->retired_at) {
		util_format_time(k->retired_at, t, sizeof(t));
		json_object_set_new(o, "retired_at", json_string(t));
	}
	if (k->destroyed_at) {
		util_format_time(k->destroyed_at, t, sizeof(t));
		json_object_set_new(o, "destroyed_at", json_string(t));
	}
	if (k->max_age)
		json_object_set_new(o, "max_age", json_integer(k->max_age));
	if (k->ttl)
		json_object_set_new(o, "ttl", json_integer(k->ttl));
	if (k->predecessor != NULL)
		json_object_set_new(
		    o, "predecessor", json_string(k->predecessor));
	if (k->successor != NULL)
		json_object_set_new(o, "successor", json_string(k->successor));
	json_object_set_new(o, "kid", json_string(k->kid));
	if (util_base64_encode(k->spki, k->spki_len, &spki) == 0)
		json_object_set_new(o, "spki", json_string(spki));
	free(spki);
	if (k->destroy_reason != NULL)
		json_object_set_new(
		    o, "destroy_reason", json_string(k->destroy_reason));
	return o;
}

json_t *
keys_attrs_json(const struct token_attrs *a)
{
	return json_pack("{s:b, s:b, s:b, s:b, s:b}", "sensitive", a->sensitive,
	    "always_sensitive", a->always_sensitive, "extractable",
	    a->extractable, "never_extractable", a->never_extractable, "local",
	    a->local);
}
