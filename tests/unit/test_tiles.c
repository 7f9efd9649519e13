/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of tiles.c. The vectors under tests/data/tiles come from C2SP
 * tlog-tiles and transparency-dev/merkle (each file names its source). Tile
 * contents are checked against an in-memory store built with merkle_append,
 * and the hashes of full tiles against RFC 6962 recomputed here over an
 * independent SHA-256 call.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "err.h"
#include "merkle.h"
#include "tiles.h"
#include "util.h"
#include "testutil.h"

#define H	 MERKLE_HASH_LEN
#define DATA_DIR CUSTODY_TEST_DATA "/tiles"
#define BIG	 70000 /* the spec's example size */

/* ---- helpers ---------------------------------------------------------- */

/* SHA-256(prefix || a || b) without merkle.c. */
static void
ref_sha256(uint8_t prefix, const uint8_t *a, size_t alen, const uint8_t *b,
    size_t blen, uint8_t out[H])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, &prefix, 1), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, a, alen), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, b, blen), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, out, &len), 1);
	assert_int_equal(len, H);
	EVP_MD_CTX_free(ctx);
}

/* RFC 6962 MTH over n >= 1 given hashes (the naive recursion). */
static void
ref_mth(const uint8_t *h, size_t n, uint8_t out[H])
{
	uint8_t l[H], r[H];
	size_t k = 1;

	if (n == 1) {
		memcpy(out, h, H);
		return;
	}
	while (2 * k < n)
		k *= 2;
	ref_mth(h, k, l);
	ref_mth(h + k * H, n - k, r);
	ref_sha256(0x01, l, H, r, H, out);
}

static char *
read_text(const char *name)
{
	char path[512], *buf;

	snprintf(path, sizeof(path), "%s/%s", DATA_DIR, name);
	assert_non_null(buf = testutil_read_file(path, NULL));
	return buf;
}

/* ---- an in-memory store of complete subtrees -------------------------- */

struct memstore {
	uint8_t (*lv[64])[H];
	uint64_t n[64];
	uint64_t cap[64];
	uint64_t size;
};

static int
mem_get(void *arg, unsigned level, uint64_t index, uint8_t out[H])
{
	struct memstore *m = arg;

	if (level >= 64 || index >= m->n[level])
		return CUSTODY_E_NOT_FOUND;
	memcpy(out, m->lv[level][index], H);
	return 0;
}

static void
mem_append(struct memstore *m, const uint8_t leaf[H])
{
	struct merkle_store s = {mem_get, m};
	struct merkle_node nodes[MERKLE_MAX_NEW_NODES];
	size_t i, n = 0;
	unsigned l;

	assert_int_equal(merkle_append(&s, m->size, leaf, nodes, &n), 0);
	for (i = 0; i < n; i++) {
		l = nodes[i].level;
		assert_true(l < 64 && nodes[i].index == m->n[l]);
		if (m->n[l] == m->cap[l]) {
			m->cap[l] = m->cap[l] ? 2 * m->cap[l] : 64;
			m->lv[l] = realloc(m->lv[l], m->cap[l] * H);
			assert_non_null(m->lv[l]);
		}
		memcpy(m->lv[l][m->n[l]++], nodes[i].hash, H);
	}
	m->size++;
}

static void
mem_free(struct memstore *m)
{
	unsigned i;

	for (i = 0; i < 64; i++)
		free(m->lv[i]);
	free(m);
}

/* A tree of n leaves, leaf i = the 8 bytes of i, big-endian. */
static struct memstore *
mem_synthetic(uint64_t n)
{
	struct memstore *m = calloc(1, sizeof(*m));
	uint8_t data[8], leaf[H];
	uint64_t i;
	unsigned b;

	assert_non_null(m);
	for (i = 0; i < n; i++) {
		for (b = 0; b < 8; b++)
			data[b] = (uint8_t)(i >> (56 - 8 * b));
		merkle_leaf_hash(data, sizeof(data), leaf);
		mem_append(m, leaf);
	}
	return m;
}

/* The leaves of the RFC 6962 8-leaf tree, from the vector file. */
struct leaves8 {
	uint8_t data[8][32];
	size_t len[8];
	uint8_t hash[8][H];
};

static void
load_leaves8(struct leaves8 *lv)
{
	char *text = read_text("rfc6962_8leaf_tree.txt"), *line, *save = NULL;
	char data[80], hash[80];
	unsigned i, seen = 0;

	memset(lv, 0, sizeof(*lv));
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "leaf %u data %79s leaf_hash %79s", &i, data,
			hash) != 3)
			continue;
		assert_true(i < 8);
		if (strcmp(data, "(empty)") == 0)
			lv->len[i] = 0;
		else {
			lv->len[i] = strlen(data) / 2;
			assert_int_equal(
			    util_hex_decode(data, lv->data[i], lv->len[i]), 0);
		}
		assert_int_equal(util_hex_decode(hash, lv->hash[i], H), 0);
		seen |= 1u << i;
	}
	assert_int_equal(seen, 0xff);
	free(text);
}

/* The content_hex line after "path: <path>" in tiles_size8.txt. */
static void
load_size8(const char *path, uint8_t *out, size_t *lenp)
{
	char *text = read_text("tiles_size8.txt"), *p, *line, want[128];
	size_t len;

	snprintf(want, sizeof(want), "path: %s\n", path);
	assert_non_null(p = strstr(text, want));
	assert_non_null(p = strstr(p, "content_hex"));
	assert_non_null(p = strchr(p, '\n'));
	line = p + 1;
	*strchr(line, '\n') = '\0';
	len = strlen(line) / 2;
	assert_int_equal(util_hex_decode(line, out, len), 0);
	*lenp = len;
	free(text);
}

/* ---- paths ------------------------------------------------------------ */

static void
check_path(int level, uint64_t index, unsigned width, const char *path)
{
	struct tiles_tile t = {level, index, width}, u;
	char buf[TILES_PATH_MAX];

	assert_int_equal(tiles_path(&t, buf, sizeof(buf)), 0);
	assert_string_equal(buf, path);
	memset(&u, 0xaa, sizeof(u));
	assert_int_equal(tiles_parse_path(path, &u), 0);
	assert_int_equal(u.level, level);
	assert_true(u.index == index);
	assert_int_equal(u.width, width);
}

static void
test_path_vectors(void **state)
{
	char *text = read_text("tlog_tiles_paths.txt"), *line, *save = NULL;
	char enc[64], path[128];
	unsigned long long idx;
	int n = 0;

	(void)state;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "index %llu -> %63s", &idx, enc) != 2)
			continue;
		snprintf(path, sizeof(path), "tile/0/%s", enc);
		check_path(0, idx, TILES_WIDTH, path);
		snprintf(path, sizeof(path), "tile/3/%s.p/17", enc);
		check_path(3, idx, 17, path);
		snprintf(path, sizeof(path), "tile/entries/%s", enc);
		check_path(TILES_LEVEL_ENTRIES, idx, TILES_WIDTH, path);
		snprintf(path, sizeof(path), "tile/entries/%s.p/255", enc);
		check_path(TILES_LEVEL_ENTRIES, idx, 255, path);
		n++;
	}
	assert_int_equal(n, 5);
	free(text);

	/* the spec's size-256, size-8 and size-70000 examples */
	check_path(0, 0, TILES_WIDTH, "tile/0/000");
	check_path(1, 0, 1, "tile/1/000.p/1");
	check_path(0, 0, 8, "tile/0/000.p/8");
	check_path(TILES_LEVEL_ENTRIES, 0, 8, "tile/entries/000.p/8");
	check_path(0, 273, 112, "tile/0/273.p/112");
	check_path(1, 1, 17, "tile/1/001.p/17");
	check_path(2, 0, 1, "tile/2/000.p/1");
	check_path(0, 1234067, TILES_WIDTH, "tile/0/x001/x234/067");
	check_path(63, 1000000, 1, "tile/63/x001/x000/000.p/1");
	check_path(10, 1001, TILES_WIDTH, "tile/10/x001/001");
	check_path(0, UINT64_MAX, 255,
	    "tile/0/x018/x446/x744/x073/x709/x551/615.p/255");
}

static void
test_path_malformed(void **state)
{
	static const char *bad[] = {
	    "",
	    "tile/",
	    "tile/0",
	    "tile/0/",
	    "/tile/0/000",
	    " tile/0/000",
	    "xtile/0/000",
	    "tiles/0/000",
	    "Tile/0/000",
	    "tile/0/000/",
	    "tile/0/000 ",
	    "tile/0/000\n",
	    "tile/0/0",
	    "tile/0/00",
	    "tile/0/0000",
	    "tile/0/1",
	    "tile/0/x000/001", /* leading zero group */
	    "tile/0/x000/x001/000",
	    "tile/0/x1/000",
	    "tile/0/x001", /* x on the last group */
	    "tile/0/x001/",
	    "tile/0/x001000",
	    "tile/0/001/000", /* a group without x */
	    "tile/0/X001/000",
	    "tile/0/x001/x234/067/",
	    "tile/0/-01",
	    "tile/0/+01",
	    "tile/0/x018/x446/x744/x073/x709/x551/616", /* 2^64 */
	    "tile/0/x999/x999/x999/x999/x999/x999/999",
	    "tile/0/x001/x000/x000/x000/x000/x000/x000/000",
	    "tile/00/000",
	    "tile/01/000",
	    "tile/64/000",
	    "tile/100/000",
	    "tile/-1/000",
	    "tile/+1/000",
	    "tile/ 1/000",
	    "tile/1a/000",
	    "tile/x/000",
	    "tile/8/0/000", /* the old sumdb layout */
	    "tile/entries/",
	    "tile/entries/0",
	    "tile/entries/000/",
	    "tile/entries/1/000",
	    "tile/entry/000",
	    "tile/Entries/000",
	    "tile/entries000",
	    "tile/0/000.p/",
	    "tile/0/000.p/0",
	    "tile/0/000.p/00",
	    "tile/0/000.p/08",
	    "tile/0/000.p/256",
	    "tile/0/000.p/1000",
	    "tile/0/000.p/99999999999999999999",
	    "tile/0/000.p/-1",
	    "tile/0/000.p/+1",
	    "tile/0/000.p/8/",
	    "tile/0/000.p/8x",
	    "tile/0/000.p/8 ",
	    "tile/0/000.p8",
	    "tile/0/000.P/8",
	    "tile/0/000.q/8",
	    "tile/0/000p/8",
	    "tile/0/000.p/8.p/8",
	    "tile/entries/000.p/0",
	    "tile/entries/000.p/256",
	};
	struct tiles_tile t = {5, 5, 5};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (tiles_parse_path(bad[i], &t) != CUSTODY_E_PARSE)
			fail_msg("accepted \"%s\"", bad[i]);
		/* outputs only on success */
		assert_int_equal(t.level, 5);
		assert_true(t.index == 5);
		assert_int_equal(t.width, 5);
	}
}

static void
test_path_encode_errors(void **state)
{
	struct tiles_tile t;
	char buf[TILES_PATH_MAX];

	(void)state;
	t = (struct tiles_tile){0, 0, 0};
	assert_int_equal(
	    tiles_path(&t, buf, sizeof(buf)), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){0, 0, 257};
	assert_int_equal(
	    tiles_path(&t, buf, sizeof(buf)), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){64, 0, 1};
	assert_int_equal(
	    tiles_path(&t, buf, sizeof(buf)), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){-2, 0, 1};
	assert_int_equal(
	    tiles_path(&t, buf, sizeof(buf)), CUSTODY_E_INVALID_ARG);
	/* "tile/0/000" needs 11 bytes */
	t = (struct tiles_tile){0, 0, TILES_WIDTH};
	strcpy(buf, "unchanged");
	assert_int_equal(tiles_path(&t, buf, 10), CUSTODY_E_INVALID_ARG);
	assert_string_equal(buf, "unchanged");
	assert_int_equal(tiles_path(&t, buf, 11), 0);
	assert_string_equal(buf, "tile/0/000");
	/* the longest path fits TILES_PATH_MAX */
	t = (struct tiles_tile){TILES_LEVEL_ENTRIES, UINT64_MAX, 255};
	assert_int_equal(tiles_path(&t, buf, sizeof(buf)), 0);
	t = (struct tiles_tile){TILES_MAX_LEVEL, UINT64_MAX, 255};
	assert_int_equal(tiles_path(&t, buf, sizeof(buf)), 0);
}

/* ---- which tiles exist ------------------------------------------------ */

/* The paths tiles_iter gives for size, joined with spaces. */
static char *
list_paths(uint64_t size, int entries, size_t *np)
{
	struct tiles_iter it;
	struct tiles_tile t;
	char path[TILES_PATH_MAX], *out = NULL;
	size_t n = 0, len = 0;

	tiles_iter_init(&it, size, entries);
	while (tiles_iter_next(&it, &t)) {
		assert_int_equal(tiles_path(&t, path, sizeof(path)), 0);
		assert_non_null(out = realloc(out, len + strlen(path) + 2));
		if (len > 0)
			out[len++] = ' ';
		memcpy(out + len, path, strlen(path) + 1);
		len += strlen(path);
		n++;
	}
	/* stays at the end */
	assert_int_equal(tiles_iter_next(&it, &t), 0);
	if (out == NULL)
		out = strdup("");
	*np = n;
	return out;
}

static void
expect_list(uint64_t size, int entries, const char *want)
{
	size_t n;
	char *got = list_paths(size, entries, &n);

	assert_string_equal(got, want);
	free(got);
}

static void
test_listing(void **state)
{
	uint64_t nfull;
	unsigned partial;
	size_t n;
	char *got;

	(void)state;
	expect_list(0, 0, "");
	expect_list(0, 1, "");
	expect_list(1, 0, "tile/0/000.p/1");
	expect_list(1, 1, "tile/entries/000.p/1 tile/0/000.p/1");
	expect_list(8, 1, "tile/entries/000.p/8 tile/0/000.p/8");
	expect_list(255, 1, "tile/entries/000.p/255 tile/0/000.p/255");
	expect_list(256, 0, "tile/0/000 tile/1/000.p/1");
	expect_list(256, 1, "tile/entries/000 tile/0/000 tile/1/000.p/1");
	expect_list(257, 1,
	    "tile/entries/000 tile/entries/001.p/1 "
	    "tile/0/000 tile/0/001.p/1 tile/1/000.p/1");
	expect_list(512, 0, "tile/0/000 tile/0/001 tile/1/000.p/2");

	/* 65536: 256 full level-0 tiles, one full level-1, level 2 .p/1 */
	got = list_paths(65536, 0, &n);
	assert_int_equal(n, 256 + 1 + 1);
	assert_non_null(strstr(got, "tile/0/000 tile/0/001 tile/0/002 "));
	assert_non_null(strstr(got, " tile/0/255 tile/1/000 tile/2/000.p/1"));
	assert_null(strstr(got, ".p/0"));
	assert_null(strstr(got, "tile/0/256"));
	free(got);
	got = list_paths(65537, 1, &n);
	assert_int_equal(n, 257 + 257 + 1 + 1);
	assert_non_null(strstr(got, " tile/entries/255 tile/entries/256.p/1 "
				    "tile/0/000 "));
	assert_non_null(strstr(got, " tile/0/255 tile/0/256.p/1 tile/1/000 "
				    "tile/2/000.p/1"));
	assert_true(strlen(got) > strlen("tile/2/000.p/1") &&
		    strcmp(got + strlen(got) - strlen("tile/2/000.p/1"),
			"tile/2/000.p/1") == 0);
	free(got);

	/* the spec's example: size 70000 */
	tiles_count(BIG, 0, &nfull, &partial);
	assert_true(nfull == 273 && partial == 112);
	tiles_count(BIG, 1, &nfull, &partial);
	assert_true(nfull == 1 && partial == 17);
	tiles_count(BIG, 2, &nfull, &partial);
	assert_true(nfull == 0 && partial == 1);
	tiles_count(BIG, 3, &nfull, &partial);
	assert_true(nfull == 0 && partial == 0);
	got = list_paths(BIG, 0, &n);
	assert_int_equal(n, 273 + 1 + 1 + 1 + 1);
	assert_non_null(strstr(got, " tile/0/272 tile/0/273.p/112 tile/1/000 "
				    "tile/1/001.p/17 tile/2/000.p/1"));
	free(got);

	/* the largest sizes: 8 levels, no shift out of range */
	tiles_count(UINT64_MAX, 7, &nfull, &partial);
	assert_true(nfull == 0 && partial == 255);
	tiles_count(UINT64_MAX, 8, &nfull, &partial);
	assert_true(nfull == 0 && partial == 0);
	tiles_count(UINT64_MAX, 63, &nfull, &partial);
	assert_true(nfull == 0 && partial == 0);
	tiles_count(UINT64_MAX, 0, &nfull, &partial);
	assert_true(nfull == UINT64_MAX >> 8 && partial == 255);
}

/* ---- contents --------------------------------------------------------- */

static void
test_size8_vectors(void **state)
{
	struct leaves8 lv;
	struct memstore *m = calloc(1, sizeof(*m));
	struct merkle_store s = {mem_get, m};
	struct tiles_tile t;
	struct tiles_entry e[8], back[8];
	uint8_t want[TILES_MAX_BYTES], got[TILES_MAX_BYTES], *bundle = NULL;
	size_t wantlen, gotlen, blen = 0;
	unsigned i;

	(void)state;
	assert_non_null(m);
	load_leaves8(&lv);
	for (i = 0; i < 8; i++) {
		mem_append(m, lv.hash[i]);
		e[i].data = lv.data[i];
		e[i].len = lv.len[i];
	}

	load_size8("tile/0/000.p/8", want, &wantlen);
	assert_int_equal(wantlen, 8 * H);
	assert_int_equal(tiles_parse_path("tile/0/000.p/8", &t), 0);
	assert_int_equal(tiles_read(&s, 8, &t, got, &gotlen), 0);
	assert_int_equal(gotlen, wantlen);
	assert_memory_equal(got, want, wantlen);

	load_size8("tile/entries/000.p/8", want, &wantlen);
	assert_int_equal(wantlen, 50);
	assert_int_equal(tiles_bundle_encode(e, 8, &bundle, &blen), 0);
	assert_int_equal(blen, wantlen);
	assert_memory_equal(bundle, want, wantlen);
	assert_int_equal(tiles_bundle_parse(want, wantlen, 8, back), 0);
	for (i = 0; i < 8; i++) {
		assert_int_equal(back[i].len, lv.len[i]);
		assert_memory_equal(back[i].data, lv.data[i], lv.len[i]);
	}
	assert_int_equal(tiles_bundle_check(want, wantlen, 8, got, gotlen), 0);
	/* a changed entry, a tile of the wrong width */
	bundle[blen - 1] ^= 1;
	assert_int_equal(
	    tiles_bundle_check(bundle, blen, 8, got, gotlen), CUSTODY_E_PROOF);
	assert_int_equal(tiles_bundle_check(want, wantlen, 8, got, gotlen - H),
	    CUSTODY_E_PROOF);
	assert_int_equal(tiles_bundle_check(want, wantlen - 1, 8, got, gotlen),
	    CUSTODY_E_PARSE);
	free(bundle);

	/* smaller partial tiles of the same tree, and tiles it lacks */
	t = (struct tiles_tile){0, 0, 3};
	assert_int_equal(tiles_read(&s, 8, &t, got, &gotlen), 0);
	assert_int_equal(gotlen, 3 * H);
	for (i = 0; i < 3; i++)
		assert_memory_equal(got + i * H, lv.hash[i], H);
	t = (struct tiles_tile){0, 0, 9};
	assert_int_equal(
	    tiles_read(&s, 8, &t, got, &gotlen), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){0, 0, 8};
	assert_int_equal(
	    tiles_read(&s, 7, &t, got, &gotlen), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){0, 0, TILES_WIDTH};
	assert_int_equal(
	    tiles_read(&s, 8, &t, got, &gotlen), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){1, 0, 1};
	assert_int_equal(
	    tiles_read(&s, 8, &t, got, &gotlen), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){TILES_LEVEL_ENTRIES, 0, 8};
	assert_int_equal(
	    tiles_read(&s, 8, &t, got, &gotlen), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){0, UINT64_MAX, 8};
	assert_int_equal(tiles_read(&s, UINT64_MAX, &t, got, &gotlen),
	    CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){0, UINT64_MAX >> 8, 255};
	assert_int_equal(
	    tiles_read(&s, UINT64_MAX, &t, got, &gotlen), CUSTODY_E_NOT_FOUND);
	t = (struct tiles_tile){0, UINT64_MAX >> 8, TILES_WIDTH};
	assert_int_equal(tiles_read(&s, UINT64_MAX, &t, got, &gotlen),
	    CUSTODY_E_INVALID_ARG);
	/* a store error is returned, nothing written */
	t = (struct tiles_tile){0, 0, 9};
	gotlen = 77;
	assert_int_equal(
	    tiles_read(&s, 9, &t, got, &gotlen), CUSTODY_E_NOT_FOUND);
	assert_int_equal(gotlen, 77);
	mem_free(m);
}

static void
test_bundles(void **state)
{
	static uint8_t big[TILES_MAX_ENTRY + 1];
	struct tiles_entry e[TILES_WIDTH], back[TILES_WIDTH];
	uint8_t *b = NULL, bad[8];
	size_t len = 0, i;

	(void)state;
	memset(big, 0x5a, sizeof(big));
	for (i = 0; i < TILES_WIDTH; i++) {
		e[i].data = big;
		e[i].len = i;
	}
	e[7].len = TILES_MAX_ENTRY;
	assert_int_equal(tiles_bundle_encode(e, TILES_WIDTH, &b, &len), 0);
	assert_int_equal(
	    len, 2 * TILES_WIDTH + 255 * 256 / 2 - 7 + TILES_MAX_ENTRY);
	assert_int_equal(b[0], 0);
	assert_int_equal(b[1], 0);
	assert_int_equal(b[2], 0);
	assert_int_equal(b[3], 1);
	assert_int_equal(tiles_bundle_parse(b, len, TILES_WIDTH, back), 0);
	for (i = 0; i < TILES_WIDTH; i++) {
		assert_int_equal(back[i].len, e[i].len);
		assert_memory_equal(back[i].data, big, e[i].len);
	}
	/* wrong count: fewer entries, or trailing bytes */
	assert_int_equal(
	    tiles_bundle_parse(b, len, TILES_WIDTH - 1, back), CUSTODY_E_PARSE);
	assert_int_equal(
	    tiles_bundle_parse(b, len - 1, TILES_WIDTH, back), CUSTODY_E_PARSE);
	free(b);

	/* 65536 bytes is too long */
	e[7].len = TILES_MAX_ENTRY + 1;
	b = NULL;
	assert_int_equal(
	    tiles_bundle_encode(e, TILES_WIDTH, &b, &len), CUSTODY_E_TOO_LARGE);
	assert_null(b);
	assert_int_equal(
	    tiles_bundle_encode(e, 0, &b, &len), CUSTODY_E_INVALID_ARG);
	assert_int_equal(tiles_bundle_encode(e, TILES_WIDTH + 1, &b, &len),
	    CUSTODY_E_INVALID_ARG);

	/* len without data */
	e[0].data = NULL;
	e[0].len = 1;
	assert_int_equal(
	    tiles_bundle_encode(e, 1, &b, &len), CUSTODY_E_INVALID_ARG);

	/* an empty entry, then malformed bundles */
	e[0].data = NULL;
	e[0].len = 0;
	assert_int_equal(tiles_bundle_encode(e, 1, &b, &len), 0);
	assert_int_equal(len, 2);
	assert_int_equal(tiles_bundle_parse(b, len, 1, back), 0);
	assert_int_equal(back[0].len, 0);
	free(b);
	memcpy(bad,
	    "\x00\x03"
	    "abc"
	    "\x00",
	    6);
	assert_int_equal(tiles_bundle_parse(bad, 5, 1, back), 0);
	assert_int_equal(tiles_bundle_parse(bad, 6, 1, back), CUSTODY_E_PARSE);
	assert_int_equal(tiles_bundle_parse(bad, 6, 2, back), CUSTODY_E_PARSE);
	assert_int_equal(tiles_bundle_parse(bad, 4, 1, back), CUSTODY_E_PARSE);
	assert_int_equal(tiles_bundle_parse(bad, 1, 1, back), CUSTODY_E_PARSE);
	assert_int_equal(tiles_bundle_parse(bad, 0, 1, back), CUSTODY_E_PARSE);
	assert_int_equal(tiles_bundle_parse(NULL, 0, 1, back), CUSTODY_E_PARSE);
	assert_int_equal(
	    tiles_bundle_parse(bad, 5, 0, back), CUSTODY_E_INVALID_ARG);
	assert_int_equal(tiles_bundle_parse(bad, 5, TILES_WIDTH + 1, back),
	    CUSTODY_E_INVALID_ARG);
}

/* One tree of BIG leaves shared by the tests below. */
static struct memstore *big_tree;

static int
setup_big(void **state)
{
	(void)state;
	big_tree = mem_synthetic(BIG);
	return 0;
}

static int
teardown_big(void **state)
{
	(void)state;
	mem_free(big_tree);
	big_tree = NULL;
	return 0;
}

static void
test_level1_contents(void **state)
{
	struct merkle_store s = {mem_get, big_tree};
	struct tiles_tile t;
	uint8_t l1[TILES_MAX_BYTES], l0[TILES_MAX_BYTES], h[H], node[H];
	size_t len, len0;
	unsigned i;

	(void)state;
	/* tile/1/000: hash i = level-8 subtree i = MTH of tile/0/i */
	t = (struct tiles_tile){1, 0, TILES_WIDTH};
	assert_int_equal(tiles_read(&s, BIG, &t, l1, &len), 0);
	assert_int_equal(len, TILES_MAX_BYTES);
	for (i = 0; i < TILES_WIDTH; i++) {
		assert_int_equal(mem_get(big_tree, 8, i, node), 0);
		assert_memory_equal(l1 + i * H, node, H);
		t = (struct tiles_tile){0, i, TILES_WIDTH};
		assert_int_equal(tiles_read(&s, BIG, &t, l0, &len0), 0);
		assert_int_equal(len0, TILES_MAX_BYTES);
		ref_mth(l0, TILES_WIDTH, h);
		assert_memory_equal(l1 + i * H, h, H);
	}
	/* tile/1/001.p/17 and tile/2/000.p/1 */
	t = (struct tiles_tile){1, 1, 17};
	assert_int_equal(tiles_read(&s, BIG, &t, l1, &len), 0);
	assert_int_equal(len, 17 * H);
	for (i = 0; i < 17; i++) {
		t = (struct tiles_tile){0, 256 + i, TILES_WIDTH};
		assert_int_equal(tiles_read(&s, BIG, &t, l0, &len0), 0);
		ref_mth(l0, TILES_WIDTH, h);
		assert_memory_equal(l1 + i * H, h, H);
	}
	t = (struct tiles_tile){2, 0, 1};
	assert_int_equal(tiles_read(&s, BIG, &t, l1, &len), 0);
	assert_int_equal(len, H);
	assert_int_equal(mem_get(big_tree, 16, 0, node), 0);
	assert_memory_equal(l1, node, H);
	/* beyond the tree */
	t = (struct tiles_tile){1, 1, 18};
	assert_int_equal(
	    tiles_read(&s, BIG, &t, l1, &len), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){1, 1, TILES_WIDTH};
	assert_int_equal(
	    tiles_read(&s, BIG, &t, l1, &len), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){2, 0, 2};
	assert_int_equal(
	    tiles_read(&s, BIG, &t, l1, &len), CUSTODY_E_INVALID_ARG);
	t = (struct tiles_tile){3, 0, 1};
	assert_int_equal(
	    tiles_read(&s, BIG, &t, l1, &len), CUSTODY_E_INVALID_ARG);
}

/* ---- the verifier ----------------------------------------------------- */

/* A source that breaks its contract: a positive return. */
static int
positive_fetch(void *arg, const struct tiles_tile *t, uint8_t *buf,
    size_t bufsz, size_t *lenp)
{
	(void)arg;
	(void)t;
	(void)buf;
	(void)bufsz;
	(void)lenp;
	return 1;
}

static void
test_preconditions(void **state)
{
	struct tiles_source bad = {positive_fetch, NULL}, none = {NULL, NULL};
	struct merkle_store s = {mem_get, big_tree};
	struct tiles_tile t = {0, 0, 1}, b;
	uint8_t root[H], *out, buf[TILES_MAX_BYTES];
	size_t len;
	char path[TILES_PATH_MAX];

	(void)state;
	assert_int_equal(tiles_root(&bad, 1, root, &b), CUSTODY_E_INTERNAL);
	assert_int_equal(b.level, 0);
	assert_int_equal(tiles_verify(&bad, 1, root, NULL), CUSTODY_E_INTERNAL);
	assert_int_equal(
	    tiles_root(&none, 1, root, NULL), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    tiles_verify(NULL, 1, root, NULL), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    tiles_verify(&bad, 1, NULL, NULL), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    tiles_path(NULL, path, sizeof(path)), CUSTODY_E_INVALID_ARG);
	assert_int_equal(tiles_parse_path(NULL, &t), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    tiles_parse_path("tile/0/000", NULL), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    tiles_read(NULL, 1, &t, buf, &len), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    tiles_read(&s, 1, NULL, buf, &len), CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    tiles_bundle_encode(NULL, 1, &out, &len), CUSTODY_E_INVALID_ARG);
	assert_int_equal(tiles_bundle_parse((const uint8_t *)"", 0, 1, NULL),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    tiles_bundle_check((const uint8_t *)"\0\0", 2, 1, NULL, 0),
	    CUSTODY_E_INVALID_ARG);
}

/* Tiles of big_tree at `size`, with one of them damaged on request. */
struct src {
	uint64_t size;
	const char *flip;    /* path of the tile with a flipped byte */
	size_t flip_at;	     /* which byte */
	const char *missing; /* path of a tile to refuse */
	const char *shorten; /* path of a tile to cut one byte from */
	long fetches;
};

static int
src_fetch(void *arg, const struct tiles_tile *t, uint8_t *buf, size_t bufsz,
    size_t *lenp)
{
	struct src *x = arg;
	struct merkle_store s = {mem_get, big_tree};
	char path[TILES_PATH_MAX];
	size_t len;
	int r;

	assert_int_equal(bufsz, TILES_MAX_BYTES);
	assert_int_equal(tiles_path(t, path, sizeof(path)), 0);
	x->fetches++;
	if (x->missing != NULL && strcmp(path, x->missing) == 0)
		return CUSTODY_E_NOT_FOUND;
	if ((r = tiles_read(&s, x->size, t, buf, &len)) != 0)
		return r;
	if (x->flip != NULL && strcmp(path, x->flip) == 0)
		buf[x->flip_at] ^= 0x01;
	if (x->shorten != NULL && strcmp(path, x->shorten) == 0)
		len--;
	*lenp = len;
	return 0;
}

static void
expect_fault(struct src *x, int code, const char *path)
{
	struct tiles_source src = {src_fetch, x};
	struct merkle_store s = {mem_get, big_tree};
	struct tiles_tile bad = {99, 99, 99};
	uint8_t root[H];
	char got[TILES_PATH_MAX];

	assert_int_equal(merkle_root(&s, x->size, root), 0);
	assert_int_equal(tiles_verify(&src, x->size, root, &bad), code);
	if (path == NULL) {
		assert_int_equal(bad.level, TILES_LEVEL_ROOT);
		return;
	}
	assert_int_equal(tiles_path(&bad, got, sizeof(got)), 0);
	assert_string_equal(got, path);
}

static void
test_verify_roots(void **state)
{
	static const uint64_t sizes[] = {0, 1, 2, 3, 7, 8, 255, 256, 257, 511,
	    512, 1000, 65535, 65536, 65537, 65792, 69999, BIG};
	struct merkle_store s = {mem_get, big_tree};
	struct src x;
	struct tiles_source src = {src_fetch, &x};
	struct tiles_iter it;
	struct tiles_tile t;
	uint8_t want[H], got[H];
	long ntiles;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(&x, 0, sizeof(x));
		x.size = sizes[i];
		assert_int_equal(merkle_root(&s, x.size, want), 0);
		assert_int_equal(tiles_root(&src, x.size, got, NULL), 0);
		assert_memory_equal(got, want, H);
		x.fetches = 0;
		assert_int_equal(tiles_verify(&src, x.size, want, NULL), 0);
		/* every hash tile, each once */
		ntiles = 0;
		tiles_iter_init(&it, x.size, 0);
		while (tiles_iter_next(&it, &t))
			ntiles++;
		assert_int_equal(x.fetches, ntiles);
		/* a wrong root */
		want[0] ^= 1;
		assert_int_equal(
		    tiles_verify(&src, x.size, want, NULL), CUSTODY_E_PROOF);
	}
}

static void
test_verify_faults(void **state)
{
	struct src x;
	uint8_t root[H];
	struct tiles_tile bad;
	struct tiles_source src = {src_fetch, &x};

	(void)state;
	/* a full level-0 tile */
	memset(&x, 0, sizeof(x));
	x.size = BIG;
	x.flip = "tile/0/005";
	x.flip_at = 4000;
	expect_fault(&x, CUSTODY_E_PROOF, "tile/0/005");
	x.flip = "tile/0/272";
	x.flip_at = TILES_MAX_BYTES - 1;
	expect_fault(&x, CUSTODY_E_PROOF, "tile/0/272");
	x.flip = "tile/0/000";
	x.flip_at = 0;
	expect_fault(&x, CUSTODY_E_PROOF, "tile/0/000");
	/* a full level-1 tile: blamed, not the level-0 tile below it */
	x.flip = "tile/1/000";
	x.flip_at = 31 * H + 5;
	expect_fault(&x, CUSTODY_E_PROOF, "tile/1/000");
	/* a partial tile only the root vouches for */
	x.flip = "tile/1/001.p/17";
	x.flip_at = 3;
	expect_fault(&x, CUSTODY_E_PROOF, NULL);
	x.flip = "tile/0/273.p/112";
	x.flip_at = 111 * H;
	expect_fault(&x, CUSTODY_E_PROOF, NULL);
	x.flip = "tile/2/000.p/1";
	x.flip_at = 0;
	expect_fault(&x, CUSTODY_E_PROOF, NULL);
	x.flip = NULL;

	/* a missing tile: full or partial */
	x.missing = "tile/0/100";
	expect_fault(&x, CUSTODY_E_NOT_FOUND, "tile/0/100");
	x.missing = "tile/1/000";
	expect_fault(&x, CUSTODY_E_NOT_FOUND, "tile/1/000");
	x.missing = "tile/1/001.p/17";
	expect_fault(&x, CUSTODY_E_NOT_FOUND, "tile/1/001.p/17");
	x.missing = NULL;

	/* a short tile */
	x.shorten = "tile/0/200";
	expect_fault(&x, CUSTODY_E_PROOF, "tile/0/200");
	x.shorten = "tile/0/273.p/112";
	expect_fault(&x, CUSTODY_E_PROOF, "tile/0/273.p/112");
	x.shorten = NULL;

	/* size 65537: level 1 is one full tile under tile/2/000.p/1 */
	x.size = 65537;
	x.flip = "tile/1/000";
	x.flip_at = 255 * H;
	expect_fault(&x, CUSTODY_E_PROOF, "tile/1/000");
	x.flip = "tile/0/255";
	x.flip_at = 100;
	expect_fault(&x, CUSTODY_E_PROOF, "tile/0/255");
	x.flip = NULL;

	/* tiles_root names the tile too; outputs untouched on failure */
	x.size = BIG;
	x.missing = "tile/2/000.p/1";
	memset(root, 0x77, sizeof(root));
	assert_int_equal(
	    tiles_root(&src, x.size, root, &bad), CUSTODY_E_NOT_FOUND);
	assert_int_equal(bad.level, 2);
	assert_true(bad.index == 0);
	assert_int_equal(bad.width, 1);
	assert_int_equal(root[0], 0x77);
	assert_int_equal(root[H - 1], 0x77);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_vectors),
	    cmocka_unit_test(test_path_malformed),
	    cmocka_unit_test(test_path_encode_errors),
	    cmocka_unit_test(test_listing),
	    cmocka_unit_test(test_size8_vectors),
	    cmocka_unit_test(test_bundles),
	    cmocka_unit_test(test_level1_contents),
	    cmocka_unit_test(test_verify_roots),
	    cmocka_unit_test(test_verify_faults),
	    cmocka_unit_test(test_preconditions),
	};

	return cmocka_run_group_tests(tests, setup_big, teardown_big);
}
