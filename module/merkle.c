/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "err.h"
#include "log.h"
#include "merkle.h"

/*
 * The largest tree this module builds or proves in: 2^63 leaves. It keeps
 * every leaf offset index << level below 2^64, bounds an inclusion proof at
 * 63 elements and a consistency proof at 64 (MERKLE_MAX_PROOF), and an append
 * at 64 new nodes (MERKLE_MAX_NEW_NODES). The verifiers accept any uint64_t
 * size: they only shift sizes right.
 */
#define TREE_MAX ((uint64_t)1 << 63)

#define PREFIX_LEAF 0x00
#define PREFIX_NODE 0x01

/*
 * SHA-256(prefix || a || b), prefix omitted when < 0. The only OpenSSL call
 * site of this file: a failure (in practice out of memory) is logged here and
 * becomes CUSTODY_E_CRYPTO.
 */
static int
digest(int prefix, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
    uint8_t out[MERKLE_HASH_LEN])
{
	EVP_MD_CTX *ctx = NULL;
	uint8_t p = (uint8_t)prefix, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const char *why;
	int r = CUSTODY_E_CRYPTO;

	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    (prefix >= 0 && EVP_DigestUpdate(ctx, &p, 1) != 1) ||
	    (alen > 0 && EVP_DigestUpdate(ctx, a, alen) != 1) ||
	    (blen > 0 && EVP_DigestUpdate(ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 ||
	    mdlen != MERKLE_HASH_LEN) {
		if ((why = ERR_reason_error_string(ERR_peek_last_error())) ==
		    NULL)
			why = "no reason given";
		log_error_f("SHA-256 failed: %s", why);
		ERR_clear_error();
		goto out;
	}
	memcpy(out, md, MERKLE_HASH_LEN);
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

static int
hash_leaf(const uint8_t *data, size_t len, uint8_t out[MERKLE_HASH_LEN])
{
	return digest(PREFIX_LEAF, data, len, NULL, 0, out);
}

/* out may alias left or right: digest() writes it after reading both. */
static int
hash_node(const uint8_t left[MERKLE_HASH_LEN],
    const uint8_t right[MERKLE_HASH_LEN], uint8_t out[MERKLE_HASH_LEN])
{
	return digest(
	    PREFIX_NODE, left, MERKLE_HASH_LEN, right, MERKLE_HASH_LEN, out);
}

/*
 * The public hashers cannot return an error (merkle.h declares them void).
 * If OpenSSL fails, the failure is logged and out is set to all zeros rather
 * than left as stack garbage; every function below uses the int-returning
 * helpers instead, so a proof or root is never built on such a value.
 */
void
merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[MERKLE_HASH_LEN])
{
	if (hash_leaf(data, len, out) != 0)
		memset(out, 0, MERKLE_HASH_LEN);
}

void
merkle_node_hash(const uint8_t left[MERKLE_HASH_LEN],
    const uint8_t right[MERKLE_HASH_LEN], uint8_t out[MERKLE_HASH_LEN])
{
	if (hash_node(left, right, out) != 0)
		memset(out, 0, MERKLE_HASH_LEN);
}

void
merkle_empty_root(uint8_t out[MERKLE_HASH_LEN])
{
	if (digest(-1, NULL, 0, NULL, 0, out) != 0)
		memset(out, 0, MERKLE_HASH_LEN);
}

/* Number of significant bits of x (0 for 0). */
static unsigned
bit_len(uint64_t x)
{
	unsigned n = 0;

	while (x != 0) {
		n++;
		x >>= 1;
	}
	return n;
}

static unsigned
pop_count(uint64_t x)
{
	unsigned n = 0;

	for (; x != 0; x &= x - 1)
		n++;
	return n;
}

/* Largest power of two strictly below n (n >= 2): RFC 9162's split k. */
static uint64_t
split_point(uint64_t n)
{
	return (uint64_t)1 << (bit_len(n - 1) - 1);
}

/*
 * Read complete subtree (level, index) through the store. The store's code is
 * passed on; a positive one is a broken store, not a success.
 */
static int
store_get(const struct merkle_store *s, unsigned level, uint64_t index,
    uint8_t out[MERKLE_HASH_LEN])
{
	int r;

	if ((r = s->get(s->arg, level, index, out)) > 0) {
		log_error_f("store returned %d for (%u, %llu)", r, level,
		    (unsigned long long)index);
		return CUSTODY_E_INTERNAL;
	}
	return r;
}

/*
 * MTH(D[a:b]) for a range of the RFC 9162 recursion: 0 <= a < b <= TREE_MAX
 * and a a multiple of the smallest power of two >= b - a. Such a range is
 * split at its largest power of two into a complete left subtree and a right
 * remainder of the same kind, so its hash is the right fold
 * node(T1, node(T2, ... Tk)) of the complete subtrees T1 > T2 > ... > Tk that
 * the binary digits of b - a name: popcount(b - a) store reads. It is built
 * from the right end, lowest digit first, so no list is kept.
 */
static int
range_hash(const struct merkle_store *s, uint64_t a, uint64_t b,
    uint8_t out[MERKLE_HASH_LEN])
{
	uint8_t acc[MERKLE_HASH_LEN], h[MERKLE_HASH_LEN];
	uint64_t len, end, start, width;
	unsigned level;
	int r, first = 1;

	if (a >= b || b > TREE_MAX) {
		log_error_f("bad range [%llu, %llu)", (unsigned long long)a,
		    (unsigned long long)b);
		return CUSTODY_E_INTERNAL;
	}
	len = b - a;
	end = b;
	for (level = 0; level < 64 && (len >> level) != 0; level++) {
		if (((len >> level) & 1) == 0)
			continue;
		width = (uint64_t)1 << level;
		start = end - width;
		/* not a range of the recursion: a bug in the caller */
		if ((start & (width - 1)) != 0) {
			log_error_f("unaligned range [%llu, %llu)",
			    (unsigned long long)a, (unsigned long long)b);
			r = CUSTODY_E_INTERNAL;
			goto out;
		}
		if ((r = store_get(
			 s, level, start >> level, first ? acc : h)) != 0)
			goto out;
		if (!first && (r = hash_node(h, acc, acc)) != 0)
			goto out;
		first = 0;
		end = start;
	}
	memcpy(out, acc, MERKLE_HASH_LEN);
	r = 0;
out:
	return r;
}

static void
reverse(uint8_t (*p)[MERKLE_HASH_LEN], size_t n)
{
	uint8_t t[MERKLE_HASH_LEN];
	size_t i;

	for (i = 0; i < n / 2; i++) {
		memcpy(t, p[i], MERKLE_HASH_LEN);
		memcpy(p[i], p[n - 1 - i], MERKLE_HASH_LEN);
		memcpy(p[n - 1 - i], t, MERKLE_HASH_LEN);
	}
}

int
merkle_append(const struct merkle_store *s, uint64_t size,
    const uint8_t leaf_hash[MERKLE_HASH_LEN],
    struct merkle_node out[MERKLE_MAX_NEW_NODES], size_t *nout)
{
	struct merkle_node nodes[MERKLE_MAX_NEW_NODES];
	uint8_t left[MERKLE_HASH_LEN];
	uint64_t index = size;
	unsigned level = 0;
	size_t n;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    s != NULL && s->get != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(leaf_hash != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    out != NULL && nout != NULL, CUSTODY_E_INVALID_ARG);
	if (size >= TREE_MAX) {
		log_error_f(
		    "tree of %llu leaves is full", (unsigned long long)size);
		return CUSTODY_E_TOO_LARGE;
	}

	nodes[0].level = 0;
	nodes[0].index = size;
	memcpy(nodes[0].hash, leaf_hash, MERKLE_HASH_LEN);
	/*
	 * A node with an odd index is a right child, so it completes its
	 * parent; the left sibling is complete and already stored. size has at
	 * most 63 trailing one bits, hence at most 64 nodes.
	 */
	for (n = 1; (index & 1) != 0; n++) {
		if (n == MERKLE_MAX_NEW_NODES) {
			r = CUSTODY_E_INTERNAL;
			goto out;
		}
		if ((r = store_get(s, level, index - 1, left)) != 0)
			goto out;
		if ((r = hash_node(left, nodes[n - 1].hash, nodes[n].hash)) !=
		    0)
			goto out;
		level++;
		index >>= 1;
		nodes[n].level = level;
		nodes[n].index = index;
	}
	memcpy(out, nodes, n * sizeof(nodes[0]));
	*nout = n;
	r = 0;
out:
	return r;
}

int
merkle_root(
    const struct merkle_store *s, uint64_t size, uint8_t root[MERKLE_HASH_LEN])
{
	uint8_t h[MERKLE_HASH_LEN];
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    s != NULL && s->get != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(root != NULL, CUSTODY_E_INVALID_ARG);
	if (size > TREE_MAX)
		return CUSTODY_E_INVALID_ARG;
	if (size == 0)
		r = digest(-1, NULL, 0, NULL, 0, h);
	else
		r = range_hash(s, 0, size, h);
	if (r == 0)
		memcpy(root, h, MERKLE_HASH_LEN);
	return r;
}

/*
 * RFC 9162 2.1.3.1 PATH(m, D[n]), unrolled: walk down from the root; each
 * step records the sibling of the side holding the leaf. Only the first
 * sibling met on the right can be incomplete (after it, the walk stays inside
 * a complete subtree), so this is O(log n) reads. The list is collected from
 * the top and reversed to the RFC's order, leaf upward.
 */
int
merkle_inclusion_proof(const struct merkle_store *s, uint64_t index,
    uint64_t size, uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN],
    size_t *lenp)
{
	uint8_t p[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	uint64_t a = 0, b = size, k;
	size_t n = 0;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    s != NULL && s->get != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    proof != NULL && lenp != NULL, CUSTODY_E_INVALID_ARG);
	if (index >= size || size > TREE_MAX)
		return CUSTODY_E_INVALID_ARG;

	while (b - a > 1) {
		if (n == MERKLE_MAX_PROOF) {
			r = CUSTODY_E_INTERNAL;
			goto out;
		}
		k = split_point(b - a);
		if (index - a < k) {
			if ((r = range_hash(s, a + k, b, p[n++])) != 0)
				goto out;
			b = a + k;
		} else {
			if ((r = range_hash(s, a, a + k, p[n++])) != 0)
				goto out;
			a += k;
		}
	}
	reverse(p, n);
	memcpy(proof, p, n * MERKLE_HASH_LEN);
	*lenp = n;
	r = 0;
out:
	return r;
}

/*
 * RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b), unrolled like PATH: m stays an
 * absolute leaf count and [a, b) is the current subtree; `complete` is the
 * RFC's flag b (the subtree is still the old tree's left edge, whose hash
 * the verifier already has).
 */
int
merkle_consistency_proof(const struct merkle_store *s, uint64_t m, uint64_t n,
    uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN], size_t *lenp)
{
	uint8_t p[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	uint64_t a = 0, b = n, k;
	size_t len = 0;
	int r, complete = 1;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    s != NULL && s->get != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    proof != NULL && lenp != NULL, CUSTODY_E_INVALID_ARG);
	if (m == 0 || m > n || n > TREE_MAX)
		return CUSTODY_E_INVALID_ARG;

	/* invariant: a < m <= b */
	while (m != n) {
		if (len == MERKLE_MAX_PROOF) {
			r = CUSTODY_E_INTERNAL;
			goto out;
		}
		if (m == b) {
			if (!complete &&
			    (r = range_hash(s, a, b, p[len++])) != 0)
				goto out;
			break;
		}
		k = split_point(b - a);
		if (m - a <= k) {
			if ((r = range_hash(s, a + k, b, p[len++])) != 0)
				goto out;
			b = a + k;
		} else {
			if ((r = range_hash(s, a, a + k, p[len++])) != 0)
				goto out;
			a += k;
			complete = 0;
		}
	}
	reverse(p, len);
	memcpy(proof, p, len * MERKLE_HASH_LEN);
	*lenp = len;
	r = 0;
out:
	return r;
}

/*
 * Proof lengths are fully determined by the sizes (transparency-dev/merkle's
 * decompInclProof): `inner` levels below the point where the paths to index
 * and to size - 1 diverge, plus one left sibling per set bit above it.
 * Checking the length first rejects padded and truncated proofs before any
 * hashing.
 */
static uint64_t
inclusion_len(uint64_t index, uint64_t size)
{
	unsigned inner = bit_len(index ^ (size - 1));

	return inner + (inner < 64 ? pop_count(index >> inner) : 0);
}

/* For 0 < m < n; the seed is dropped when m is a power of two. */
static uint64_t
consistency_len(uint64_t m, uint64_t n)
{
	unsigned inner = bit_len((m - 1) ^ (n - 1)), shift = 0;
	uint64_t border = inner < 64 ? pop_count((m - 1) >> inner) : 0;

	while (((m >> shift) & 1) == 0)
		shift++;
	/* inner > shift: m - 1 and n - 1 differ at a bit >= shift */
	return ((m & (m - 1)) != 0) + (inner - shift) + border;
}

int
merkle_verify_inclusion(const uint8_t leaf_hash[MERKLE_HASH_LEN],
    uint64_t index, uint64_t size, const uint8_t (*proof)[MERKLE_HASH_LEN],
    size_t len, const uint8_t root[MERKLE_HASH_LEN])
{
	uint8_t h[MERKLE_HASH_LEN];
	uint64_t fn, sn;
	size_t i;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    leaf_hash != NULL && root != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    proof != NULL || len == 0, CUSTODY_E_INVALID_ARG);
	if (index >= size) {
		log_debug_f("index %llu not below size %llu",
		    (unsigned long long)index, (unsigned long long)size);
		return CUSTODY_E_PROOF;
	}
	if (len != inclusion_len(index, size)) {
		log_debug_f("%zu elements for index %llu of %llu", len,
		    (unsigned long long)index, (unsigned long long)size);
		return CUSTODY_E_PROOF;
	}

	/* RFC 9162 section 2.1.3.2, step by step */
	fn = index;
	sn = size - 1;
	memcpy(h, leaf_hash, MERKLE_HASH_LEN);
	for (i = 0; i < len; i++) {
		if (sn == 0) {
			r = CUSTODY_E_PROOF;
			goto out;
		}
		if ((fn & 1) != 0 || fn == sn) {
			if ((r = hash_node(proof[i], h, h)) != 0)
				goto out;
			/* skip the levels where the node has no right sibling
			 */
			if ((fn & 1) == 0) {
				while ((fn & 1) == 0 && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
			}
		} else {
			if ((r = hash_node(h, proof[i], h)) != 0)
				goto out;
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || CRYPTO_memcmp(h, root, MERKLE_HASH_LEN) != 0) {
		log_debug_f("root mismatch for index %llu of %llu",
		    (unsigned long long)index, (unsigned long long)size);
		r = CUSTODY_E_PROOF;
		goto out;
	}
	r = 0;
out:
	return r;
}

int
merkle_verify_consistency(uint64_t m, uint64_t n,
    const uint8_t root_m[MERKLE_HASH_LEN],
    const uint8_t root_n[MERKLE_HASH_LEN],
    const uint8_t (*proof)[MERKLE_HASH_LEN], size_t len)
{
	uint8_t fr[MERKLE_HASH_LEN], sr[MERKLE_HASH_LEN];
	const uint8_t *c;
	uint64_t fn, sn;
	size_t i, seeded;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    root_m != NULL && root_n != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    proof != NULL || len == 0, CUSTODY_E_INVALID_ARG);
	/*
	 * The strict rule of transparency-dev/merkle: nothing is proved from
	 * an empty tree, not even with an empty proof. C2SP tlog-witness's
	 * "size 0 is consistent with everything" belongs to the protocol
	 * layer, which knows the size-0 root.
	 */
	if (m == 0 || m > n) {
		log_debug_f("impossible sizes %llu -> %llu",
		    (unsigned long long)m, (unsigned long long)n);
		return CUSTODY_E_PROOF;
	}
	if (m == n) {
		if (len != 0 ||
		    CRYPTO_memcmp(root_m, root_n, MERKLE_HASH_LEN) != 0)
			return CUSTODY_E_PROOF;
		return 0;
	}
	if (len == 0 || len != consistency_len(m, n)) {
		log_debug_f("%zu elements for sizes %llu -> %llu", len,
		    (unsigned long long)m, (unsigned long long)n);
		return CUSTODY_E_PROOF;
	}

	/*
	 * RFC 9162 section 2.1.4.2. When m is a power of two the proof leaves
	 * out the old root, which the RFC prepends: element 0 of the extended
	 * path is then root_m and element i is proof[i - 1] (seeded == 1).
	 */
	seeded = (m & (m - 1)) == 0;
	fn = m - 1;
	sn = n - 1;
	while ((fn & 1) != 0) {
		fn >>= 1;
		sn >>= 1;
	}
	memcpy(fr, seeded ? root_m : proof[0], MERKLE_HASH_LEN);
	memcpy(sr, fr, MERKLE_HASH_LEN);
	for (i = 1; i < len + seeded; i++) {
		c = proof[i - seeded];
		if (sn == 0) {
			r = CUSTODY_E_PROOF;
			goto out;
		}
		if ((fn & 1) != 0 || fn == sn) {
			if ((r = hash_node(c, fr, fr)) != 0 ||
			    (r = hash_node(c, sr, sr)) != 0)
				goto out;
			if ((fn & 1) == 0) {
				while ((fn & 1) == 0 && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
			}
		} else {
			if ((r = hash_node(sr, c, sr)) != 0)
				goto out;
		}
		fn >>= 1;
		sn >>= 1;
	}
	if (sn != 0 || CRYPTO_memcmp(fr, root_m, MERKLE_HASH_LEN) != 0 ||
	    CRYPTO_memcmp(sr, root_n, MERKLE_HASH_LEN) != 0) {
		log_debug_f("roots do not match for sizes %llu -> %llu",
		    (unsigned long long)m, (unsigned long long)n);
		r = CUSTODY_E_PROOF;
		goto out;
	}
	r = 0;
out:
	return r;
}
