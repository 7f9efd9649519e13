/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_MERKLE_H
#define CUSTODY_MERKLE_H

#include <stddef.h>
#include <stdint.h>

/*
 * RFC 6962 / RFC 9162 Merkle trees over SHA-256: hashes, incremental
 * appends, inclusion and consistency proofs and their verification.
 *
 * A tree of size n is kept as the hashes of its complete subtrees: (level,
 * index) names the subtree of 2^level leaves that starts at leaf
 * index * 2^level (level 0 holds the leaf hashes). Those hashes never change
 * once the subtree is complete, so they can be stored once (FORMATS.md 1:
 * interior nodes stored, O(log n) work per append and per proof, nothing
 * recomputed at start-up). Where they are stored is the caller's business:
 * the functions read them through a struct merkle_store.
 */

#define MERKLE_HASH_LEN	     32
#define MERKLE_MAX_PROOF     64 /* proof elements for any size < 2^63 */
#define MERKLE_MAX_NEW_NODES 64 /* complete subtrees one append creates */

struct merkle_store {
	/* Hash of complete subtree (level, index): 0 or a CUSTODY_E_* code. */
	int (*get)(void *arg, unsigned level, uint64_t index,
	    uint8_t out[MERKLE_HASH_LEN]);
	void *arg;
};

struct merkle_node {
	unsigned level;
	uint64_t index;
	uint8_t hash[MERKLE_HASH_LEN];
};

/* SHA-256(0x00 || data), SHA-256(0x01 || left || right), SHA-256(""). */
void merkle_leaf_hash(
    const uint8_t *data, size_t len, uint8_t out[MERKLE_HASH_LEN]);
void merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN],
    const uint8_t right[MERKLE_HASH_LEN], uint8_t out[MERKLE_HASH_LEN]);
void merkle_empty_root(uint8_t out[MERKLE_HASH_LEN]);

/*
 * Append the leaf with hash leaf_hash to a tree of size `size` (it becomes
 * leaf number `size`). Writes into out[0..*nout) the complete subtrees the
 * append creates, lowest level first (the leaf itself, then each parent
 * completed by it), reading the left siblings it needs through s. Nothing is
 * stored: the caller stores the nodes (in the same transaction as the leaf).
 */
int merkle_append(const struct merkle_store *s, uint64_t size,
    const uint8_t leaf_hash[MERKLE_HASH_LEN],
    struct merkle_node out[MERKLE_MAX_NEW_NODES], size_t *nout);

/* Root hash of the first `size` leaves (the empty root for 0). */
int merkle_root(
    const struct merkle_store *s, uint64_t size, uint8_t root[MERKLE_HASH_LEN]);

/*
 * RFC 9162 2.1.3 inclusion proof of leaf `index` in the tree of size `size`,
 * ordered from the leaf upward; CUSTODY_E_INVALID_ARG unless index < size.
 */
int merkle_inclusion_proof(const struct merkle_store *s, uint64_t index,
    uint64_t size, uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN],
    size_t *lenp);

/*
 * RFC 9162 2.1.4 consistency proof between sizes m and n; CUSTODY_E_INVALID_ARG
 * unless 0 < m <= n (m == n gives an empty proof).
 */
int merkle_consistency_proof(const struct merkle_store *s, uint64_t m,
    uint64_t n, uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN], size_t *lenp);

/*
 * Verify an inclusion proof (RFC 9162 2.1.3.2) or a consistency proof
 * (2.1.4.2). Returns 0, or CUSTODY_E_PROOF for a proof that does not
 * verify, has the wrong length for index/size or m/n, or impossible
 * arguments. They read nothing but their arguments, for offline auditors.
 */
int merkle_verify_inclusion(const uint8_t leaf_hash[MERKLE_HASH_LEN],
    uint64_t index, uint64_t size, const uint8_t (*proof)[MERKLE_HASH_LEN],
    size_t len, const uint8_t root[MERKLE_HASH_LEN]);
int merkle_verify_consistency(uint64_t m, uint64_t n,
    const uint8_t root_m[MERKLE_HASH_LEN],
    const uint8_t root_n[MERKLE_HASH_LEN],
    const uint8_t (*proof)[MERKLE_HASH_LEN], size_t len);

#endif
