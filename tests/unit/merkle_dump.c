/* SPDX-License-Identifier: Apache-2.0 */
/*
 * merkle_dump: build a tree of NLEAVES pseudo-random leaves with merkle.c and
 * print, one JSON object per line, the leaves' data, the root of every size
 * and a selection of inclusion and consistency proofs (hex). The output is
 * checked by tests/integration/merkle_check.py, a second implementation of
 * RFC 9162 in Python that shares no code with merkle.c.
 *
 *	merkle_dump [--tamper]
 *
 * --tamper flips one bit of one inclusion and one consistency proof, so that
 * the checker can be shown to fail.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "merkle.h"
#include "util.h"

#define NLEAVES	  130 /* crosses 64 and 128 */
#define ALL_BELOW 40  /* every (index, size) and (m, n) up to this size */
#define MAXDATA	  48

struct tree {
	uint8_t (*lv[64])[MERKLE_HASH_LEN];
	uint64_t n[64];
};

static int
tree_get(
    void *arg, unsigned level, uint64_t index, uint8_t out[MERKLE_HASH_LEN])
{
	struct tree *t = arg;

	if (level >= 64 || index >= t->n[level])
		return CUSTODY_E_INTERNAL;
	memcpy(out, t->lv[level][index], MERKLE_HASH_LEN);
	return 0;
}

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void
print_hex(const uint8_t *p, size_t len)
{
	char hex[2 * MAXDATA + 1];

	util_hex_encode(p, len, hex);
	printf("\"%s\"", hex);
}

static void
print_proof(uint8_t (*p)[MERKLE_HASH_LEN], size_t len)
{
	size_t i;

	printf("[");
	for (i = 0; i < len; i++) {
		if (i > 0)
			printf(",");
		print_hex(p[i], MERKLE_HASH_LEN);
	}
	printf("]");
}

static int ninclusion, nconsistency, tamper;

static int
dump_inclusion(const struct merkle_store *s, uint64_t i, uint64_t n)
{
	uint8_t p[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	size_t len;
	int r;

	if ((r = merkle_inclusion_proof(s, i, n, p, &len)) != 0)
		return r;
	/* one proof, long enough to have elements, is corrupted on request */
	if (tamper && n == NLEAVES && i == n / 2 && len > 1)
		p[1][5] ^= 0x10;
	printf("{\"type\":\"inclusion\",\"index\":%llu,\"size\":%llu,"
	       "\"proof\":",
	    (unsigned long long)i, (unsigned long long)n);
	print_proof(p, len);
	printf("}\n");
	ninclusion++;
	return 0;
}

static int
dump_consistency(const struct merkle_store *s, uint64_t m, uint64_t n)
{
	uint8_t p[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	size_t len;
	int r;

	if ((r = merkle_consistency_proof(s, m, n, p, &len)) != 0)
		return r;
	if (tamper && n == NLEAVES && m == n / 2 && len > 0)
		p[len - 1][31] ^= 0x01;
	printf("{\"type\":\"consistency\",\"m\":%llu,\"n\":%llu,\"proof\":",
	    (unsigned long long)m, (unsigned long long)n);
	print_proof(p, len);
	printf("}\n");
	nconsistency++;
	return 0;
}

int
main(int argc, char **argv)
{
	struct tree t;
	struct merkle_store s = {tree_get, &t};
	struct merkle_node nodes[MERKLE_MAX_NEW_NODES];
	uint8_t data[MAXDATA], h[MERKLE_HASH_LEN];
	uint64_t i, n, m, k;
	size_t len, j, nn;
	int r = 0;

	if (argc == 2 && strcmp(argv[1], "--tamper") == 0)
		tamper = 1;
	else if (argc != 1) {
		fprintf(stderr, "usage: merkle_dump [--tamper]\n");
		return 2;
	}
	memset(&t, 0, sizeof(t));
	for (j = 0; j < 64; j++)
		if ((t.lv[j] = calloc(NLEAVES, MERKLE_HASH_LEN)) == NULL) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}

	for (i = 0; i < NLEAVES; i++) {
		/* leaf 0 is empty; the others start with their index */
		len = i == 0 ? 0 : 4 + rng() % (MAXDATA - 3);
		for (j = 0; j < len; j++)
			data[j] = j < 4 ? (uint8_t)(i >> (8 * (3 - j)))
					: (uint8_t)(rng() >> 56);
		merkle_leaf_hash(data, len, h);
		if ((r = merkle_append(&s, i, h, nodes, &nn)) != 0)
			goto out;
		for (j = 0; j < nn; j++) {
			if (nodes[j].index != t.n[nodes[j].level]) {
				r = CUSTODY_E_INTERNAL;
				goto out;
			}
			memcpy(t.lv[nodes[j].level][t.n[nodes[j].level]++],
			    nodes[j].hash, MERKLE_HASH_LEN);
		}
		printf("{\"type\":\"leaf\",\"index\":%llu,\"data\":",
		    (unsigned long long)i);
		print_hex(data, len);
		printf("}\n");
	}
	for (n = 0; n <= NLEAVES; n++) {
		if ((r = merkle_root(&s, n, h)) != 0)
			goto out;
		printf("{\"type\":\"root\",\"size\":%llu,\"hash\":",
		    (unsigned long long)n);
		print_hex(h, MERKLE_HASH_LEN);
		printf("}\n");
	}
	for (n = 1; n <= NLEAVES; n++) {
		if (n <= ALL_BELOW) {
			for (i = 0; i < n && r == 0; i++)
				r = dump_inclusion(&s, i, n);
			for (m = 1; m <= n && r == 0; m++)
				r = dump_consistency(&s, m, n);
			if (r != 0)
				goto out;
			continue;
		}
		if ((r = dump_inclusion(&s, 0, n)) != 0 ||
		    (r = dump_inclusion(&s, n / 2, n)) != 0 ||
		    (r = dump_inclusion(&s, n - 1, n)) != 0 ||
		    (r = dump_inclusion(&s, rng() % n, n)) != 0 ||
		    (r = dump_inclusion(&s, rng() % n, n)) != 0)
			goto out;
		if ((r = dump_consistency(&s, 1, n)) != 0 ||
		    (r = dump_consistency(&s, n / 2, n)) != 0 ||
		    (r = dump_consistency(&s, n - 1, n)) != 0 ||
		    (r = dump_consistency(&s, n, n)) != 0 ||
		    (r = dump_consistency(&s, 1 + rng() % n, n)) != 0)
			goto out;
		for (k = 2; k < n; k <<= 1)
			if ((r = dump_consistency(&s, k, n)) != 0)
				goto out;
	}
	/* lets the checker tell a complete dump from a truncated one */
	printf("{\"type\":\"end\",\"leaves\":%d,\"roots\":%d,"
	       "\"inclusion\":%d,\"consistency\":%d}\n",
	    NLEAVES, NLEAVES + 1, ninclusion, nconsistency);
out:
	for (j = 0; j < 64; j++)
		free(t.lv[j]);
	if (r != 0) {
		fprintf(stderr, "merkle_dump: %s\n", custody_strerror(r));
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
