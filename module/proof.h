/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_PROOF_H
#define CUSTODY_PROOF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "merkle.h"
#include "store.h"

/*
 * Merkle proofs (RFC 9162 sections 2.1.3 and 2.1.4) against a signed
 * checkpoint of the audit log in a store, for `custody audit prove` and
 * custodyd's /v1/log/proof/... Each proof is verified against the signed
 * root before it is returned, so a damaged store gives an error, never a
 * wrong proof.
 */

struct proof {
	uint64_t index; /* inclusion: the leaf */
	uint64_t from;	/* consistency: the older size */
	uint64_t size;	/* of the signed checkpoint */
	uint8_t *leaf;	/* inclusion: the leaf's exact bytes */
	size_t leaf_len;
	uint8_t leaf_hash[MERKLE_HASH_LEN];
	uint8_t hashes[MERKLE_MAX_PROOF][MERKLE_HASH_LEN]; /* leaf upward */
	size_t n;
	char *note; /* the checkpoint of size */
	size_t note_len;
	char *from_note; /* consistency: the checkpoint of from, if signed */
	size_t from_note_len;
};

/*
 * The signed checkpoint of tree size size (0: the last one). *notep is new
 * and NUL-terminated. CUSTODY_E_NOT_FOUND if there is none of that size
 * (or none at all).
 */
int proof_checkpoint(struct store *st, uint64_t size, uint64_t *sizep,
    uint8_t root[MERKLE_HASH_LEN], char **notep, size_t *lenp);

/*
 * Inclusion of leaf index in the signed checkpoint of size (0: the last).
 * CUSTODY_E_NOT_FOUND (no such checkpoint), CUSTODY_E_INVALID_ARG (index not
 * below its size), CUSTODY_E_PROOF (the stored leaf or tree does not match
 * the signed root). Clean up *p with proof_cleanup(), also on error.
 */
int proof_inclusion(
    struct store *st, uint64_t index, uint64_t size, struct proof *p);

/* Consistency of the tree of size from (1..size) with the signed checkpoint
 * of size (0: the last); errors as proof_inclusion(). */
int proof_consistency(
    struct store *st, uint64_t from, uint64_t size, struct proof *p);

/*
 * As JSON: {"index","size","leaf","leaf_hash","inclusion":[...],
 * "checkpoint"} or {"from","size","consistency":[...],"checkpoint",
 * "from_checkpoint"}; hashes in standard base64, as in checkpoints.
 */
json_t *proof_json(const struct proof *p);

void proof_cleanup(struct proof *p);

#endif
