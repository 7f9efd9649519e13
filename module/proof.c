/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "proof.h"
#include "util.h"

int
proof_checkpoint(struct store *st, uint64_t size, uint64_t *sizep,
    uint8_t root[MERKLE_HASH_LEN], char **notep, size_t *lenp)
{
	int r;

	if (size == 0)
		return store_checkpoint_last(st, sizep, root, notep, lenp);
	if ((r = store_checkpoint_next(
		 st, size - 1, sizep, root, notep, lenp)) == 0 &&
	    *sizep != size) {
		free(*notep);
		*notep = NULL;
		r = CUSTODY_E_NOT_FOUND;
	}
	return r;
}

int
proof_inclusion(
    struct store *st, uint64_t index, uint64_t size, struct proof *p)
{
	struct merkle_store ms;
	uint8_t root[MERKLE_HASH_LEN], again[MERKLE_HASH_LEN];
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && p != NULL, CUSTODY_E_INVALID_ARG);
	memset(p, 0, sizeof(*p));
	p->index = index;
	if ((r = proof_checkpoint(
		 st, size, &p->size, root, &p->note, &p->note_len)) != 0)
		return r;
	if (index >= p->size)
		return CUSTODY_E_INVALID_ARG;
	store_merkle(st, &ms);
	if ((r = store_leaf_get(
		 st, index, &p->leaf, &p->leaf_len, p->leaf_hash)) != 0)
		return r;
	merkle_leaf_hash(p->leaf, p->leaf_len, again);
	if (memcmp(again, p->leaf_hash, sizeof(again)) != 0) {
		log_error_f("leaf %llu: its bytes do not match its hash: the "
			    "database was altered",
		    (unsigned long long)index);
		return CUSTODY_E_PROOF;
	}
	if ((r = merkle_inclusion_proof(
		 &ms, index, p->size, p->hashes, &p->n)) != 0)
		return r;
	return merkle_verify_inclusion(p->leaf_hash, index, p->size,
	    (const uint8_t(*)[MERKLE_HASH_LEN])p->hashes, p->n, root);
}

int
proof_consistency(
    struct store *st, uint64_t from, uint64_t size, struct proof *p)
{
	struct merkle_store ms;
	uint8_t root[MERKLE_HASH_LEN], oroot[MERKLE_HASH_LEN];
	uint64_t osize;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && p != NULL, CUSTODY_E_INVALID_ARG);
	memset(p, 0, sizeof(*p));
	p->from = from;
	if ((r = proof_checkpoint(
		 st, size, &p->size, root, &p->note, &p->note_len)) != 0)
		return r;
	if (from == 0 || from > p->size)
		return CUSTODY_E_INVALID_ARG;
	store_merkle(st, &ms);
	if ((r = merkle_consistency_proof(
		 &ms, from, p->size, p->hashes, &p->n)) != 0 ||
	    (r = merkle_root(&ms, from, oroot)) != 0 ||
	    (r = merkle_verify_consistency(from, p->size, oroot, root,
		 (const uint8_t(*)[MERKLE_HASH_LEN])p->hashes, p->n)) != 0)
		return r;
	/* the checkpoint of the older size, when one was signed */
	r = proof_checkpoint(
	    st, from, &osize, oroot, &p->from_note, &p->from_note_len);
	return r == CUSTODY_E_NOT_FOUND ? 0 : r;
}

static json_t *
b64_json(const uint8_t *h, size_t len)
{
	char *s = NULL;
	json_t *j;

	if (util_base64_encode(h, len, &s) != 0)
		return NULL;
	j = json_string(s);
	free(s);
	return j;
}

json_t *
proof_json(const struct proof *p)
{
	json_t *o, *a;
	size_t i;
	int inclusion = p->leaf != NULL, bad = 0;

	if ((o = json_object()) == NULL || (a = json_array()) == NULL) {
		json_decref(o);
		return NULL;
	}
	if (inclusion)
		bad |= json_object_set_new(
			   o, "index", json_integer((json_int_t)p->index)) |
		       json_object_set_new(
			   o, "size", json_integer((json_int_t)p->size)) |
		       json_object_set_new(o, "leaf",
			   json_stringn((const char *)p->leaf, p->leaf_len)) |
		       json_object_set_new(o, "leaf_hash",
			   b64_json(p->leaf_hash, MERKLE_HASH_LEN));
	else
		bad |= json_object_set_new(
			   o, "from", json_integer((json_int_t)p->from)) |
		       json_object_set_new(
			   o, "size", json_integer((json_int_t)p->size));
	for (i = 0; i < p->n; i++)
		bad |= json_array_append_new(
		    a, b64_json(p->hashes[i], MERKLE_HASH_LEN));
	bad |=
	    json_object_set_new(o, inclusion ? "inclusion" : "consistency", a) |
	    json_object_set_new(
		o, "checkpoint", json_stringn(p->note, p->note_len));
	if (p->from_note != NULL)
		bad |= json_object_set_new(o, "from_checkpoint",
		    json_stringn(p->from_note, p->from_note_len));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void
proof_cleanup(struct proof *p)
{
	if (p == NULL)
		return;
	free(p->leaf);
	free(p->note);
	free(p->from_note);
	memset(p, 0, sizeof(*p));
}
