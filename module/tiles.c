/* SPDX-License-Identifier: Apache-2.0 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "merkle.h"
#include "tiles.h"

/*
 * Levels a tree of fewer than 2^64 leaves can have: level 8 would need
 * 256^8 = 2^64 leaves. Also keeps every shift below 64.
 */
#define LEVELS 8

/* ---- paths ------------------------------------------------------------- */

int
tiles_path(const struct tiles_tile *t, char *buf, size_t bufsz)
{
	char tmp[TILES_PATH_MAX], *p = tmp;
	unsigned groups[7];
	uint64_t n;
	size_t ng = 0, i, len;

	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(buf != NULL, CUSTODY_E_INVALID_ARG);
	if (t->level != TILES_LEVEL_ENTRIES &&
	    (t->level < 0 || t->level > TILES_MAX_LEVEL))
		return CUSTODY_E_INVALID_ARG;
	if (t->width < 1 || t->width > TILES_WIDTH)
		return CUSTODY_E_INVALID_ARG;

	/* 2^64 - 1 has 20 digits: at most 7 groups */
	n = t->index;
	do {
		groups[ng++] = (unsigned)(n % 1000);
		n /= 1000;
	} while (n != 0);

	if (t->level == TILES_LEVEL_ENTRIES)
		p += sprintf(p, "tile/entries/");
	else
		p += sprintf(p, "tile/%d/", t->level);
	for (i = ng; i > 1; i--)
		p += sprintf(p, "x%03u/", groups[i - 1]);
	p += sprintf(p, "%03u", groups[0]);
	if (t->width != TILES_WIDTH)
		p += sprintf(p, ".p/%u", t->width);

	len = (size_t)(p - tmp);
	if (len >= bufsz)
		return CUSTODY_E_INVALID_ARG;
	memcpy(buf, tmp, len + 1);
	return 0;
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A decimal number without leading zeros, at most max; advances *pp. */
static int
parse_dec(const char **pp, unsigned max, unsigned *out)
{
	const char *p = *pp;
	unsigned v = 0;

	if (!is_digit(*p) || (p[0] == '0' && is_digit(p[1])))
		return CUSTODY_E_PARSE;
	for (; is_digit(*p); p++) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > max)
			return CUSTODY_E_PARSE;
	}
	*pp = p;
	*out = v;
	return 0;
}

/* <N>: ("x" ddd "/")* ddd, canonical, below 2^64; advances *pp. */
static int
parse_index(const char **pp, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;
	unsigned g;
	int more, first = 1;

	for (;;) {
		if ((more = (*p == 'x')) != 0)
			p++;
		if (!is_digit(p[0]) || !is_digit(p[1]) || !is_digit(p[2]))
			return CUSTODY_E_PARSE;
		g = (unsigned)((p[0] - '0') * 100 + (p[1] - '0') * 10 +
			       (p[2] - '0'));
		p += 3;
		/* a leading zero group would give a second spelling of N */
		if (first && more && g == 0)
			return CUSTODY_E_PARSE;
		if (v > (UINT64_MAX - g) / 1000)
			return CUSTODY_E_PARSE;
		v = v * 1000 + g;
		first = 0;
		if (!more)
			break;
		if (*p++ != '/')
			return CUSTODY_E_PARSE;
	}
	*pp = p;
	*out = v;
	return 0;
}

int
tiles_parse_path(const char *path, struct tiles_tile *t)
{
	struct tiles_tile tt;
	const char *p = path;
	unsigned v;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(path != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL, CUSTODY_E_INVALID_ARG);
	memset(&tt, 0, sizeof(tt));
	if (strncmp(p, "tile/", 5) != 0)
		return CUSTODY_E_PARSE;
	p += 5;
	if (strncmp(p, "entries/", 8) == 0) {
		tt.level = TILES_LEVEL_ENTRIES;
		p += 8;
	} else {
		if ((r = parse_dec(&p, TILES_MAX_LEVEL, &v)) != 0)
			return r;
		tt.level = (int)v;
		if (*p++ != '/')
			return CUSTODY_E_PARSE;
	}
	if ((r = parse_index(&p, &tt.index)) != 0)
		return r;
	tt.width = TILES_WIDTH;
	if (*p != '\0') {
		if (strncmp(p, ".p/", 3) != 0)
			return CUSTODY_E_PARSE;
		p += 3;
		if ((r = parse_dec(&p, TILES_WIDTH - 1, &v)) != 0)
			return r;
		if (v == 0 || *p != '\0')
			return CUSTODY_E_PARSE;
		tt.width = v;
	}
	*t = tt;
	return 0;
}

/* ---- which tiles exist ------------------------------------------------ */

void
tiles_count(uint64_t size, unsigned level, uint64_t *nfullp, unsigned *partialp)
{
	uint64_t c = level < LEVELS ? size >> (TILES_HEIGHT * level) : 0;

	if (nfullp != NULL)
		*nfullp = c >> TILES_HEIGHT;
	if (partialp != NULL)
		*partialp = (unsigned)(c & (TILES_WIDTH - 1));
}

void
tiles_iter_init(struct tiles_iter *it, uint64_t size, int entries)
{
	it->size = size;
	it->level = entries ? TILES_LEVEL_ENTRIES : 0;
	it->index = 0;
}

int
tiles_iter_next(struct tiles_iter *it, struct tiles_tile *t)
{
	uint64_t nfull;
	unsigned partial, level;

	for (;;) {
		level = it->level < 0 ? 0 : (unsigned)it->level;
		if (it->level >= LEVELS)
			return 0;
		if (it->level >= 0 && (it->size >> (TILES_HEIGHT * level)) == 0)
			return 0;
		tiles_count(it->size, level, &nfull, &partial);
		if (it->index < nfull || (it->index == nfull && partial)) {
			t->level = it->level;
			t->index = it->index;
			t->width = it->index < nfull ? TILES_WIDTH : partial;
			it->index++;
			return 1;
		}
		it->level++;
		it->index = 0;
	}
}

/* ---- contents --------------------------------------------------------- */

int
tiles_read(const struct merkle_store *s, uint64_t size,
    const struct tiles_tile *t, uint8_t out[TILES_MAX_BYTES], size_t *lenp)
{
	uint8_t buf[TILES_MAX_BYTES];
	uint64_t c;
	unsigned i, level;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    s != NULL && s->get != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(out != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(lenp != NULL, CUSTODY_E_INVALID_ARG);
	if (t->level < 0 || t->level >= LEVELS || t->width < 1 ||
	    t->width > TILES_WIDTH)
		return CUSTODY_E_INVALID_ARG;
	level = (unsigned)t->level * TILES_HEIGHT;
	c = size >> level;
	/* N * 256 + W <= c, without overflow */
	if (t->index > (c >> TILES_HEIGHT) ||
	    c - (t->index << TILES_HEIGHT) < t->width)
		return CUSTODY_E_INVALID_ARG;
	for (i = 0; i < t->width; i++) {
		if ((r = s->get(s->arg, level, (t->index << TILES_HEIGHT) + i,
			 buf + (size_t)i * MERKLE_HASH_LEN)) != 0) {
			log_error_fr(
			    r, "reading hash %u of level %u", i, level);
			return r;
		}
	}
	memcpy(out, buf, (size_t)t->width * MERKLE_HASH_LEN);
	*lenp = (size_t)t->width * MERKLE_HASH_LEN;
	return 0;
}

/* ---- entry bundles ---------------------------------------------------- */

int
tiles_bundle_encode(
    const struct tiles_entry *e, size_t n, uint8_t **outp, size_t *lenp)
{
	uint8_t *buf, *p;
	size_t i, total = 0;

	CUSTODY_RETURN_VAL_IF_FAIL(e != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(outp != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(lenp != NULL, CUSTODY_E_INVALID_ARG);
	if (n < 1 || n > TILES_WIDTH)
		return CUSTODY_E_INVALID_ARG;
	for (i = 0; i < n; i++) {
		if (e[i].len > TILES_MAX_ENTRY) {
			log_error_f("entry %zu is %zu bytes (at most %u)", i,
			    e[i].len, TILES_MAX_ENTRY);
			return CUSTODY_E_TOO_LARGE;
		}
		if (e[i].len > 0 && e[i].data == NULL)
			return CUSTODY_E_INVALID_ARG;
		total += 2 + e[i].len;
	}
	if ((buf = malloc(total)) == NULL)
		return CUSTODY_E_NOMEM;
	for (p = buf, i = 0; i < n; i++) {
		*p++ = (uint8_t)(e[i].len >> 8);
		*p++ = (uint8_t)e[i].len;
		if (e[i].len > 0)
			memcpy(p, e[i].data, e[i].len);
		p += e[i].len;
	}
	*outp = buf;
	*lenp = total;
	return 0;
}

int
tiles_bundle_parse(
    const uint8_t *buf, size_t len, unsigned width, struct tiles_entry *e)
{
	struct tiles_entry tmp[TILES_WIDTH];
	size_t off = 0, elen;
	unsigned i;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    buf != NULL || len == 0, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(e != NULL, CUSTODY_E_INVALID_ARG);
	if (width < 1 || width > TILES_WIDTH)
		return CUSTODY_E_INVALID_ARG;
	for (i = 0; i < width; i++) {
		if (len - off < 2)
			return CUSTODY_E_PARSE;
		elen = ((size_t)buf[off] << 8) | buf[off + 1];
		off += 2;
		if (len - off < elen)
			return CUSTODY_E_PARSE;
		tmp[i].data = buf + off;
		tmp[i].len = elen;
		off += elen;
	}
	if (off != len)
		return CUSTODY_E_PARSE;
	memcpy(e, tmp, width * sizeof(*e));
	return 0;
}

int
tiles_bundle_check(const uint8_t *bundle, size_t len, unsigned width,
    const uint8_t *tile, size_t tilelen)
{
	struct tiles_entry e[TILES_WIDTH];
	uint8_t h[MERKLE_HASH_LEN];
	unsigned i;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(tile != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = tiles_bundle_parse(bundle, len, width, e)) != 0)
		return r;
	if (tilelen != (size_t)width * MERKLE_HASH_LEN)
		return CUSTODY_E_PROOF;
	for (i = 0; i < width; i++) {
		merkle_leaf_hash(e[i].data, e[i].len, h);
		if (memcmp(h, tile + (size_t)i * MERKLE_HASH_LEN,
			MERKLE_HASH_LEN) != 0) {
			log_warn_f("entry %u does not match its leaf hash", i);
			return CUSTODY_E_PROOF;
		}
	}
	return 0;
}

/* ---- verification ----------------------------------------------------- */

/* RFC 6962 MTH of n >= 1 hashes taken as the leaves' hashes. */
static void
mth(const uint8_t *h, size_t n, uint8_t out[MERKLE_HASH_LEN])
{
	uint8_t l[MERKLE_HASH_LEN], r[MERKLE_HASH_LEN];
	size_t k = 1;

	if (n == 1) {
		memcpy(out, h, MERKLE_HASH_LEN);
		return;
	}
	while (k * 2 < n)
		k *= 2;
	mth(h, k, l);
	mth(h + k * MERKLE_HASH_LEN, n - k, r);
	merkle_node_hash(l, r, out);
}

static void
set_bad(struct tiles_tile *badp, const struct tiles_tile *t)
{
	if (badp != NULL)
		*badp = *t;
}

static void
log_tile(const struct tiles_tile *t, const char *why)
{
	char path[TILES_PATH_MAX];

	if (tiles_path(t, path, sizeof(path)) != 0)
		snprintf(path, sizeof(path), "(level %d)", t->level);
	log_warn_f("%s: %s", path, why);
}

/* Fetch t into buf (TILES_MAX_BYTES) and check its length. */
static int
fetch(const struct tiles_source *src, const struct tiles_tile *t, uint8_t *buf,
    struct tiles_tile *badp)
{
	size_t len = 0;
	int r;

	if ((r = src->fetch(src->arg, t, buf, TILES_MAX_BYTES, &len)) != 0) {
		if (r > 0)
			r = CUSTODY_E_INTERNAL;
		log_tile(t, custody_strerror(r));
		set_bad(badp, t);
		return r;
	}
	if (len != (size_t)t->width * MERKLE_HASH_LEN) {
		log_tile(t, "wrong length");
		set_bad(badp, t);
		return CUSTODY_E_PROOF;
	}
	return 0;
}

/*
 * Fold the partial tiles into the root, from the right: the lowest level's
 * smallest chunk is the rightmost subtree of the tree. Each partial tile is
 * kept in parts[L] when parts is not NULL.
 */
static int
root_from_partials(const struct tiles_source *src, uint64_t size,
    uint8_t (*parts)[TILES_MAX_BYTES], uint8_t root[MERKLE_HASH_LEN],
    struct tiles_tile *badp)
{
	uint8_t local[TILES_MAX_BYTES], acc[MERKLE_HASH_LEN];
	uint8_t chunk[MERKLE_HASH_LEN], tmp[MERKLE_HASH_LEN], *buf;
	struct tiles_tile t;
	uint64_t nfull;
	unsigned level, w, bit, off;
	int r, have = 0;

	if (size == 0) {
		merkle_empty_root(root);
		return 0;
	}
	for (level = 0; level < LEVELS; level++) {
		tiles_count(size, level, &nfull, &w);
		if (w == 0)
			continue;
		buf = parts != NULL ? parts[level] : local;
		t.level = (int)level;
		t.index = nfull;
		t.width = w;
		if ((r = fetch(src, &t, buf, badp)) != 0)
			return r;
		for (bit = 0; bit < TILES_HEIGHT; bit++) {
			if ((w & (1u << bit)) == 0)
				continue;
			/* the chunk of 2^bit hashes after the larger ones */
			off = w & ~((2u << bit) - 1);
			mth(buf + (size_t)off * MERKLE_HASH_LEN,
			    (size_t)1 << bit, chunk);
			if (have) {
				merkle_node_hash(chunk, acc, tmp);
				memcpy(acc, tmp, MERKLE_HASH_LEN);
			} else
				memcpy(acc, chunk, MERKLE_HASH_LEN);
			have = 1;
		}
	}
	memcpy(root, acc, MERKLE_HASH_LEN);
	return 0;
}

int
tiles_root(const struct tiles_source *src, uint64_t size,
    uint8_t root[MERKLE_HASH_LEN], struct tiles_tile *badp)
{
	CUSTODY_RETURN_VAL_IF_FAIL(
	    src != NULL && src->fetch != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(root != NULL, CUSTODY_E_INVALID_ARG);
	return root_from_partials(src, size, NULL, root, badp);
}

/*
 * Check the w full tiles below hash tile (level, index) whose authenticated
 * hashes are in hashes, and recursively theirs. bufs[l] holds the tile of
 * level l being checked.
 */
static int
check_below(const struct tiles_source *src, unsigned level, uint64_t index,
    const uint8_t *hashes, unsigned w, uint8_t (*bufs)[TILES_MAX_BYTES],
    struct tiles_tile *badp)
{
	uint8_t h[MERKLE_HASH_LEN];
	struct tiles_tile child;
	unsigned i;
	int r;

	for (i = 0; i < w; i++) {
		child.level = (int)level - 1;
		child.index = (index << TILES_HEIGHT) + i;
		child.width = TILES_WIDTH;
		if ((r = fetch(src, &child, bufs[level - 1], badp)) != 0)
			return r;
		mth(bufs[level - 1], TILES_WIDTH, h);
		if (memcmp(h, hashes + (size_t)i * MERKLE_HASH_LEN,
			MERKLE_HASH_LEN) != 0) {
			log_tile(&child, "does not match the level above");
			set_bad(badp, &child);
			return CUSTODY_E_PROOF;
		}
		if (level - 1 > 0 &&
		    (r = check_below(src, level - 1, child.index,
			 bufs[level - 1], TILES_WIDTH, bufs, badp)) != 0)
			return r;
	}
	return 0;
}

int
tiles_verify(const struct tiles_source *src, uint64_t size,
    const uint8_t root[MERKLE_HASH_LEN], struct tiles_tile *badp)
{
	uint8_t(*parts)[TILES_MAX_BYTES] = NULL, (*bufs)[TILES_MAX_BYTES];
	uint8_t got[MERKLE_HASH_LEN];
	struct tiles_tile rt = {TILES_LEVEL_ROOT, 0, 0};
	uint64_t nfull;
	unsigned level, w;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    src != NULL && src->fetch != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(root != NULL, CUSTODY_E_INVALID_ARG);
	if ((parts = calloc(2 * LEVELS, TILES_MAX_BYTES)) == NULL)
		return CUSTODY_E_NOMEM;
	bufs = parts + LEVELS;
	if ((r = root_from_partials(src, size, parts, got, badp)) != 0)
		goto out;
	if (memcmp(got, root, MERKLE_HASH_LEN) != 0) {
		log_warn_f("the partial tiles of size %llu give another root",
		    (unsigned long long)size);
		set_bad(badp, &rt);
		r = CUSTODY_E_PROOF;
		goto out;
	}
	/* top down: each partial tile vouches for the full tiles below it */
	for (level = LEVELS - 1; level > 0; level--) {
		tiles_count(size, level, &nfull, &w);
		if (w == 0)
			continue;
		if ((r = check_below(
			 src, level, nfull, parts[level], w, bufs, badp)) != 0)
			goto out;
	}
	r = 0;
out:
	free(parts);
	return r;
}
