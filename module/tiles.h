/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_TILES_H
#define CUSTODY_TILES_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"

/*
 * C2SP tlog-tiles (FORMATS.md 4) with tile height 8: the paths
 * tile/<L>/<N>[.p/<W>] and tile/entries/<N>[.p/<W>], which tiles a tree of
 * a given size has, their contents read from a struct merkle_store, entry
 * bundles, and a verifier that rebuilds a tree's root from its tiles.
 *
 * Tile (L, N) holds, at position i, the hash of the complete subtree at
 * merkle level 8 * L with index N * 256 + i (level 0: the leaf hashes). A
 * tree of size n has, at each level L with c = n >> (8 * L) > 0, the full
 * tiles 0 .. (c >> 8) - 1 and, when c & 255 != 0, the partial tile c >> 8 of
 * width c & 255. Entry bundles follow the level-0 tiles.
 *
 * Nothing here allocates except tiles_bundle_encode; nothing prints.
 */

#define TILES_HEIGHT	    8
#define TILES_WIDTH	    256 /* hashes in a full tile */
#define TILES_MAX_BYTES	    (TILES_WIDTH * MERKLE_HASH_LEN) /* 8192 */
#define TILES_MAX_LEVEL	    63	  /* largest <L> a path may carry */
#define TILES_MAX_ENTRY	    65535 /* longest entry of a bundle */
#define TILES_PATH_MAX	    64	  /* any path, with its NUL */
#define TILES_LEVEL_ENTRIES (-1)  /* tile/entries/... */
#define TILES_LEVEL_ROOT    (-2)  /* only in tiles_verify's *badp */

struct tiles_tile {
	int level;	/* 0..TILES_MAX_LEVEL or TILES_LEVEL_ENTRIES */
	uint64_t index; /* N */
	unsigned width; /* 1..255 for a partial tile, TILES_WIDTH if full */
};

/*
 * Write the path of t ("tile/1/x001/234.p/7", no leading slash, NUL
 * terminated) into buf. CUSTODY_E_INVALID_ARG for a level or width out of
 * range or a buffer too small (TILES_PATH_MAX always suffices).
 */
int tiles_path(const struct tiles_tile *t, char *buf, size_t bufsz);

/*
 * Parse a path as tiles_path writes it, strictly: nothing before "tile/" or
 * after the last digit, <L> and <W> in decimal without leading zeros, every
 * group of <N> exactly three digits, the first group not "x000" when more
 * follow, N below 2^64, W in 1..255. CUSTODY_E_PARSE otherwise.
 */
int tiles_parse_path(const char *path, struct tiles_tile *t);

/*
 * Number of full tiles at `level` (0..TILES_MAX_LEVEL) for a tree of `size`
 * leaves, and the width of its partial tile (0: none). Level 0 also gives
 * the entry bundles.
 */
void tiles_count(
    uint64_t size, unsigned level, uint64_t *nfullp, unsigned *partialp);

/*
 * Every tile of a tree of `size` leaves, in order: the entry bundles first
 * when `entries` is non-zero, then level 0, 1, ... each by increasing N.
 * tiles_iter_next returns 1 and writes *t, or 0 when there are no more.
 */
struct tiles_iter {
	uint64_t size;
	int level;
	uint64_t index;
};

void tiles_iter_init(struct tiles_iter *it, uint64_t size, int entries);
int tiles_iter_next(struct tiles_iter *it, struct tiles_tile *t);

/*
 * Contents of hash tile t of the tree of `size` leaves, read through s: the
 * t->width hashes at merkle level 8 * t->level, 32 bytes each, written into
 * out (TILES_MAX_BYTES) with the length in *lenp. A tile of an older size
 * (N * 256 + W <= size >> (8 * L)) is allowed. CUSTODY_E_INVALID_ARG for an
 * entry tile or one beyond `size`; a store error is returned as is.
 */
int tiles_read(const struct merkle_store *s, uint64_t size,
    const struct tiles_tile *t, uint8_t out[TILES_MAX_BYTES], size_t *lenp);

/* One entry of a bundle: len bytes at data (not owned). */
struct tiles_entry {
	const uint8_t *data;
	size_t len;
};

/*
 * Entry bundle of n (1..TILES_WIDTH) entries: each a big-endian uint16
 * length then the bytes. *outp is new (free(3) it). CUSTODY_E_TOO_LARGE
 * when an entry is longer than TILES_MAX_ENTRY, CUSTODY_E_INVALID_ARG for a
 * bad n.
 */
int tiles_bundle_encode(
    const struct tiles_entry *e, size_t n, uint8_t **outp, size_t *lenp);

/*
 * Split a bundle of exactly `width` (1..TILES_WIDTH) entries into
 * e[0..width); the entries point into buf. CUSTODY_E_PARSE for a truncated
 * entry, fewer entries or trailing bytes.
 */
int tiles_bundle_parse(
    const uint8_t *buf, size_t len, unsigned width, struct tiles_entry *e);

/*
 * Check that a bundle of `width` entries matches the level-0 tile of the
 * same N and width: leaf hash of entry i == hash i of the tile.
 * CUSTODY_E_PARSE for a bad bundle, CUSTODY_E_PROOF for a mismatch or a
 * tile of the wrong length.
 */
int tiles_bundle_check(const uint8_t *bundle, size_t len, unsigned width,
    const uint8_t *tile, size_t tilelen);

/*
 * Where the verifier gets tiles (an export directory, HTTP, memory): copy
 * the bytes of tile t into buf (bufsz == TILES_MAX_BYTES) and set *lenp.
 * Returns 0, CUSTODY_E_NOT_FOUND for a missing tile, or another code.
 */
struct tiles_source {
	int (*fetch)(void *arg, const struct tiles_tile *t, uint8_t *buf,
	    size_t bufsz, size_t *lenp);
	void *arg;
};

/*
 * Root of the tree of `size` leaves (the empty root for 0) from its partial
 * hash tiles, one per level, folded with merkle_node_hash. Nothing is
 * checked against anything: compare the root with a checkpoint, or use
 * tiles_verify. On failure, when badp is not NULL, *badp names the tile:
 * CUSTODY_E_PROOF for a tile of the wrong length, the fetch's code (e.g.
 * CUSTODY_E_NOT_FOUND) when it fails.
 */
int tiles_root(const struct tiles_source *src, uint64_t size,
    uint8_t root[MERKLE_HASH_LEN], struct tiles_tile *badp);

/*
 * Check every hash tile of the tree of `size` leaves against `root` (from a
 * checkpoint the caller verified): the partial tiles must fold into root,
 * and each full tile at level L must hash (RFC 6962, 256 leaves) to the hash
 * at its position in level L + 1. Trust flows down from the root, so a
 * mismatch blames the lower tile: its parent was checked first. Every tile
 * is fetched once. Returns 0, or CUSTODY_E_PROOF, a fetch's code or
 * CUSTODY_E_NOMEM; on failure, when badp is not NULL, *badp names the tile
 * at fault (level TILES_LEVEL_ROOT when the partial tiles fold into another
 * root: they cannot be told apart; nothing for CUSTODY_E_NOMEM).
 */
int tiles_verify(const struct tiles_source *src, uint64_t size,
    const uint8_t root[MERKLE_HASH_LEN], struct tiles_tile *badp);

#endif
