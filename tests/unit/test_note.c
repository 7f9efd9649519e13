/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of note.c against the vectors in tests/data/note (golang/mod
 * sumdb/note, transparency-dev/formats, and the derived size-8 checkpoints
 * with TEST-ONLY keys). Signatures are made here with OpenSSL, never by
 * custody; Ed25519 is deterministic, so lines must match byte for byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "err.h"
#include "note.h"
#include "pubkey.h"
#include "util.h"
#include "testutil.h"

#define ORIGIN "audit.example.com/log1"
#define ROOT8  "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="

/* The whole of tests/data/note/<name>, NUL-terminated. */
static char *
slurp(const char *name, size_t *lenp)
{
	char path[512], *buf;

	snprintf(path, sizeof(path), "%s/note/%s", CUSTODY_TEST_DATA, name);
	assert_non_null(buf = testutil_read_file(path, lenp));
	return buf;
}

/*
 * In file, after the line starting with section: the first token after the
 * line that starts with key (and optional spaces and "= "). Static buffer.
 */
static const char *
field(const char *file, const char *section, const char *key)
{
	static char val[4096];
	char *buf = slurp(file, NULL), *p;
	size_t n;

	assert_non_null(p = strstr(buf, section));
	for (;;) {
		assert_non_null(p = strchr(p, '\n'));
		p++;
		if (strncmp(p, key, strlen(key)) == 0 &&
		    (p[strlen(key)] == ' ' || p[strlen(key)] == '='))
			break;
	}
	p += strlen(key);
	p += strspn(p, " ");
	if (*p == '=')
		p += 1 + strspn(p + 1, " ");
	n = strcspn(p, " \n");
	assert_true(n < sizeof(val));
	memcpy(val, p, n);
	val[n] = '\0';
	free(buf);
	return val;
}

/* The signed note between "[signed_note]..." after section and "[end]". */
static char *
signed_note(const char *file, const char *section, size_t *lenp)
{
	char *buf = slurp(file, NULL), *p, *e, *out;

	assert_non_null(p = strstr(buf, section));
	assert_non_null(p = strstr(p, "\n[signed_note]"));
	assert_non_null(p = strchr(p + 1, '\n'));
	p++;
	assert_non_null(e = strstr(p, "\n[end]"));
	e++;
	assert_non_null(out = strndup(p, (size_t)(e - p)));
	*lenp = (size_t)(e - p);
	free(buf);
	return out;
}

static size_t
b64d(const char *s, uint8_t *out, size_t outsz)
{
	uint8_t tmp[4096];
	size_t n = strcspn(s, "\n");
	int len;

	assert_true(n / 4 * 3 <= sizeof(tmp));
	assert_true((len = EVP_DecodeBlock(
			 tmp, (const unsigned char *)s, (int)n)) >= 0);
	while (n > 0 && s[n - 1] == '=') {
		n--;
		len--;
	}
	assert_true((size_t)len <= outsz);
	memcpy(out, tmp, (size_t)len);
	return (size_t)len;
}

static struct note_vkey *
vkey(const char *s)
{
	struct note_vkey *vk = NULL;

	assert_int_equal(note_vkey_parse(s, &vk), 0);
	return vk;
}

static struct note_vkey *
ed_vkey(void)
{
	return vkey(field("keys.txt", "[log Ed25519", "vkey"));
}

static struct note_vkey *
ec_vkey(void)
{
	return vkey(field("keys.txt", "[log ECDSA", "vkey"));
}

/* Ed25519 signature by the 32-byte seed over msg. */
static void
ed_sign(const uint8_t seed[32], const char *msg, size_t len, uint8_t sig[64])
{
	EVP_PKEY *k;
	EVP_MD_CTX *c;
	size_t siglen = 64;

	assert_non_null(
	    k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32));
	assert_non_null(c = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestSignInit(c, NULL, NULL, NULL, k), 1);
	assert_int_equal(
	    EVP_DigestSign(c, sig, &siglen, (const unsigned char *)msg, len),
	    1);
	assert_int_equal(siglen, 64);
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
}

static void
log_seed(uint8_t seed[32])
{
	assert_int_equal(
	    util_hex_decode(
		field("keys.txt", "[log Ed25519", "seed_hex"), seed, 32),
	    0);
}

/* text signed by the TEST-ONLY log Ed25519 key, as a note. */
static char *
ed_note(const char *text, size_t *lenp)
{
	struct note_vkey *vk = ed_vkey();
	uint8_t seed[32], sig[64];
	char *line = NULL, *note = NULL;

	log_seed(seed);
	ed_sign(seed, text, strlen(text), sig);
	assert_int_equal(
	    note_sig_line(vk, text, strlen(text), sig, 64, &line), 0);
	assert_int_equal(
	    note_assemble(text, strlen(text), &line, 1, &note, lenp), 0);
	free(line);
	note_vkey_free(vk);
	return note;
}

static int
open_with(const char *note, size_t len, struct note_vkey **vks, size_t n,
    struct note_checkpoint **cpp)
{
	struct note_checkpoint *cp = NULL;
	int r = note_checkpoint_open(note, len, vks, n, cpp ? cpp : &cp);

	note_checkpoint_free(cp);
	return r;
}

/* Open note (NUL-terminated) with the Ed25519 log vkey. */
static int
open_ed(const char *note)
{
	struct note_vkey *vk = ed_vkey();
	int r = open_with(note, strlen(note), &vk, 1, NULL);

	note_vkey_free(vk);
	return r;
}

/* Sign text with the Ed25519 log key, then open it. */
static int
open_signed_text(const char *text)
{
	size_t len;
	char *note = ed_note(text, &len);
	int r = open_ed(note);

	free(note);
	return r;
}

static void
check_vkey_roundtrip(const char *s, uint8_t type, const char *idhex)
{
	struct note_vkey *vk = vkey(s);
	char hex[9], *out = NULL;

	assert_int_equal(vk->type, type);
	util_hex_encode(vk->key_id, 4, hex);
	assert_string_equal(hex, idhex);
	assert_int_equal(note_vkey_string(vk, &out), 0);
	assert_string_equal(out, s);
	free(out);
	note_vkey_free(vk);
}

/* The vectors' vkeys parse, have their key ids and print back the same. */
static void
test_vkey_vectors(void **state)
{
	char *s;

	(void)state;
	check_vkey_roundtrip(
	    field("keys.txt", "[log Ed25519", "vkey"), 0x01, "2c0190c0");
	assert_string_equal(
	    field("keys.txt", "[log Ed25519", "key_id_hex"), "2c0190c0");
	check_vkey_roundtrip(
	    field("keys.txt", "[log ECDSA", "vkey"), 0x02, "ec7d86c7");
	check_vkey_roundtrip(
	    field("golang_sumdb_note_ed25519.txt", "[PeterNeumann]", "vkey"),
	    0x01, "c74f20a3");
	check_vkey_roundtrip(
	    field("golang_sumdb_note_ed25519.txt", "[EnochRoot]", "vkey"), 0x01,
	    "af0cfe78");
	check_vkey_roundtrip(
	    field("ecdsa_type02_rekor_pixel.txt", "[rekor]", "vkey"), 0x02,
	    "c0d23d6a");
	s = strdup(field("ecdsa_type02_rekor_pixel.txt", "[pixel6]", "vkey"));
	check_vkey_roundtrip(s, 0x02, "91c16e30");
	free(s);
}

/* note_vkey_new from a struct pubkey gives the vectors' vkeys. */
static void
test_vkey_new(void **state)
{
	struct pubkey *pk = NULL;
	struct note_vkey *vk = NULL;
	uint8_t raw[32], spki[128];
	size_t n;
	char *s = NULL;

	(void)state;
	assert_int_equal(
	    util_hex_decode(
		field("keys.txt", "[log Ed25519", "public_key_hex"), raw, 32),
	    0);
	assert_int_equal(
	    pubkey_from_ec_point(CUSTODY_ALG_ED25519, raw, 32, &pk), 0);
	assert_int_equal(note_vkey_new(ORIGIN, pk, &vk), 0);
	assert_int_equal(note_vkey_string(vk, &s), 0);
	assert_string_equal(s, field("keys.txt", "[log Ed25519", "vkey"));
	free(s);
	note_vkey_free(vk);
	vk = NULL;
	/* the name is in an Ed25519 key id */
	assert_int_equal(note_vkey_new("other.example/log", pk, &vk), 0);
	assert_memory_not_equal(vk->key_id, "\x2c\x01\x90\xc0", 4);
	note_vkey_free(vk);
	vk = NULL;
	assert_int_equal(
	    note_vkey_new("bad name", pk, &vk), CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_vkey_new("", pk, &vk), CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_vkey_new("a+b", pk, &vk), CUSTODY_E_INVALID_ARG);
	assert_null(vk);
	pubkey_free(pk);
	pk = NULL;

	n = b64d(field("keys.txt", "[log ECDSA", "spki_der_b64"), spki,
	    sizeof(spki));
	assert_int_equal(
	    pubkey_from_spki(CUSTODY_ALG_ECDSA_P256, spki, n, &pk), 0);
	/* the name is not in an ECDSA key id */
	assert_int_equal(note_vkey_new("any.name/x", pk, &vk), 0);
	assert_memory_equal(vk->key_id, "\xec\x7d\x86\xc7", 4);
	note_vkey_free(vk);
	vk = NULL;
	assert_int_equal(note_vkey_new(ORIGIN, pk, &vk), 0);
	assert_int_equal(note_vkey_string(vk, &s), 0);
	assert_string_equal(s, field("keys.txt", "[log ECDSA", "vkey"));
	free(s);
	note_vkey_free(vk);
	pubkey_free(pk);
}

static void
check_vkey_bad(const char *s, int want)
{
	struct note_vkey *vk = NULL;

	assert_int_equal(note_vkey_parse(s, &vk), want);
	assert_null(vk);
}

static void
test_vkey_negative(void **state)
{
	char good[512], buf[600];
	char *big;

	(void)state;
	snprintf(good, sizeof(good), "%s",
	    field("keys.txt", "[log Ed25519", "vkey"));
	/* wrong key id, bad hex, short hex */
	check_vkey_bad(ORIGIN
	    "+2c0190c1+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hxum",
	    CUSTODY_E_PARSE);
	check_vkey_bad(ORIGIN
	    "+2c0190cg+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hxum",
	    CUSTODY_E_PARSE);
	check_vkey_bad(ORIGIN
	    "+2c0190c+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hxum",
	    CUSTODY_E_PARSE);
	/* another name changes an Ed25519 key id */
	check_vkey_bad("audit.example.com/log2+2c0190c0+"
		       "AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hxum",
	    CUSTODY_E_PARSE);
	/* bad names */
	check_vkey_bad("+2c0190c0+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hxum",
	    CUSTODY_E_PARSE);
	check_vkey_bad(
	    "a b+2c0190c0+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hxum",
	    CUSTODY_E_PARSE);
	/* missing parts */
	check_vkey_bad(ORIGIN, CUSTODY_E_PARSE);
	check_vkey_bad(ORIGIN "+2c0190c0", CUSTODY_E_PARSE);
	check_vkey_bad(ORIGIN "+2c0190c0+", CUSTODY_E_PARSE);
	check_vkey_bad("", CUSTODY_E_PARSE);
	/* base64: not canonical, unpadded, bad character, trailing bytes */
	check_vkey_bad(ORIGIN
	    "+2c0190c0+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hxun",
	    CUSTODY_E_PARSE);
	check_vkey_bad(ORIGIN
	    "+2c0190c0+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hx",
	    CUSTODY_E_PARSE);
	check_vkey_bad(ORIGIN
	    "+2c0190c0+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hx!m",
	    CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s ", good);
	check_vkey_bad(buf, CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%sAAAA", good);
	check_vkey_bad(buf, CUSTODY_E_PARSE);
	/* Ed25519 key of 31 and 33 bytes, unknown type */
	check_vkey_bad(ORIGIN
	    "+2c0190c0+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hw==",
	    CUSTODY_E_PARSE);
	check_vkey_bad(ORIGIN
	    "+2c0190c0+AfOJgy51Lajp5UE99OIos9yKblaPDMbbfa2JsUz1hxumAA==",
	    CUSTODY_E_PARSE);
	check_vkey_bad(
	    field("keys.txt", "[witness Ed25519", "vkey"), CUSTODY_E_PARSE);
	/* an ECDSA vkey with the key id of the Ed25519 form is rejected */
	snprintf(
	    buf, sizeof(buf), "%s", field("keys.txt", "[log ECDSA", "vkey"));
	memcpy(buf + strlen(ORIGIN) + 1, "00000000", 8);
	check_vkey_bad(buf, CUSTODY_E_PARSE);
	/* an ECDSA SPKI with a byte changed is no P-256 key */
	buf[strlen(buf) - 10] ^= 1;
	check_vkey_bad(buf, CUSTODY_E_PARSE);
	/* too long */
	assert_non_null(big = malloc(NOTE_MAX_LINE + 10));
	memset(big, 'a', NOTE_MAX_LINE + 9);
	big[NOTE_MAX_LINE + 9] = '\0';
	check_vkey_bad(big, CUSTODY_E_TOO_LARGE);
	free(big);
}

/* Decode the hex note_text of signed_messages_size8.txt. */
static char *
vector_text(void)
{
	char *buf = slurp("signed_messages_size8.txt", NULL), *p, *t;
	size_t n;

	assert_non_null(p = strstr(buf, "\nnote_text"));
	assert_non_null(p = strchr(p + 1, '\n'));
	p++;
	p[strcspn(p, "\n")] = '\0';
	n = strlen(p) / 2;
	assert_non_null(t = calloc(1, n + 1));
	assert_int_equal(util_hex_decode(p, (uint8_t *)t, n), 0);
	free(buf);
	return t;
}

static void
test_checkpoint_text(void **state)
{
	uint8_t root[32];
	char *text = NULL, *want = vector_text();
	size_t len;

	(void)state;
	assert_int_equal(b64d(ROOT8, root, sizeof(root)), 32);
	assert_int_equal(note_checkpoint_text(ORIGIN, 8, root, &text, &len), 0);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);
	free(want);
	text = NULL;
	assert_int_equal(
	    note_checkpoint_text("o", UINT64_MAX, root, &text, &len), 0);
	assert_true(strncmp(text, "o\n18446744073709551615\n", 23) == 0);
	free(text);
	text = NULL;
	assert_int_equal(note_checkpoint_text("", 8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_checkpoint_text("a\nb", 8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_checkpoint_text("a+b", 8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_checkpoint_text("a b", 8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_checkpoint_text("a\tb", 8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_checkpoint_text("a\x7f", 8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	/* U+00A0 and U+3000 are spaces; 0xff and an overlong '/' no UTF-8 */
	assert_int_equal(note_checkpoint_text("a\xc2\xa0"
					      "b",
			     8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_checkpoint_text("a\xe3\x80\x80"
					      "b",
			     8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_checkpoint_text("a\xff", 8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(
	    note_checkpoint_text("a\xc0\xaf", 8, root, &text, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_null(text);
	/* non-ASCII names that are no spaces are fine (signed-note: UTF-8) */
	assert_int_equal(
	    note_checkpoint_text("ex\xc3\xa4mple", 0, root, &text, &len), 0);
	free(text);
}

static void
check_cp8(struct note_checkpoint *cp)
{
	uint8_t root[32];

	assert_non_null(cp);
	assert_string_equal(cp->origin, ORIGIN);
	assert_int_equal(cp->size, 8);
	assert_int_equal(b64d(ROOT8, root, sizeof(root)), 32);
	assert_memory_equal(cp->root, root, 32);
	note_checkpoint_free(cp);
}

/* The derived checkpoints verify with their vkeys, alone or together. */
static void
test_open_vectors(void **state)
{
	const char *files[] = {"checkpoint_size8_ed25519.txt",
	    "checkpoint_size8_ecdsa_only.txt",
	    "checkpoint_size8_ed25519_ecdsa_cosigned.txt"};
	struct note_vkey *vks[2] = {ed_vkey(), ec_vkey()}, *rev[2];
	struct note_checkpoint *cp = NULL;
	char *note;
	size_t len, i;

	(void)state;
	rev[0] = vks[1];
	rev[1] = vks[0];
	note = slurp(files[0], &len);
	assert_int_equal(note_checkpoint_open(note, len, vks, 1, &cp), 0);
	check_cp8(cp);
	cp = NULL;
	assert_int_equal(note_checkpoint_open(note, len, vks + 1, 1, &cp),
	    CUSTODY_E_SIG_VERIFY);
	assert_int_equal(
	    note_checkpoint_open(note, len, vks, 0, &cp), CUSTODY_E_SIG_VERIFY);
	assert_null(cp);
	free(note);

	note = slurp(files[1], &len);
	assert_int_equal(note_checkpoint_open(note, len, vks + 1, 1, &cp), 0);
	check_cp8(cp);
	cp = NULL;
	assert_int_equal(
	    note_checkpoint_open(note, len, vks, 1, &cp), CUSTODY_E_SIG_VERIFY);
	free(note);

	/* both log lines and a witness line (type 0x04, unknown: ignored) */
	note = slurp(files[2], &len);
	for (i = 0; i < 2; i++) {
		assert_int_equal(
		    note_checkpoint_open(note, len, vks + i, 1, &cp), 0);
		check_cp8(cp);
		cp = NULL;
	}
	assert_int_equal(note_checkpoint_open(note, len, vks, 2, &cp), 0);
	check_cp8(cp);
	cp = NULL;
	assert_int_equal(note_checkpoint_open(note, len, rev, 2, &cp), 0);
	check_cp8(cp);
	free(note);
	note_vkey_free(vks[0]);
	note_vkey_free(vks[1]);
}

/* Upstream notes: Go's two-line text (no checkpoint), Rekor and Pixel. */
static void
test_open_upstream(void **state)
{
	struct note_vkey *vks[2];
	struct note_checkpoint *cp = NULL;
	uint8_t root[32];
	char *note, *s;
	size_t len, textlen = 0;

	(void)state;
	note =
	    signed_note("golang_sumdb_note_ed25519.txt", "[note_text]", &len);
	vks[0] = vkey(
	    field("golang_sumdb_note_ed25519.txt", "[PeterNeumann]", "vkey"));
	vks[1] =
	    vkey(field("golang_sumdb_note_ed25519.txt", "[EnochRoot]", "vkey"));
	assert_int_equal(note_verify(note, len, vks, 1, &textlen), 0);
	assert_int_equal(textlen, 99);
	textlen = 0;
	assert_int_equal(note_verify(note, len, vks + 1, 1, &textlen), 0);
	assert_int_equal(note_verify(note, len, vks, 2, &textlen), 0);
	assert_memory_equal(note + textlen - 12, "problem is.\n", 12);
	/* verified, but no checkpoint */
	assert_int_equal(
	    note_checkpoint_open(note, len, vks, 2, &cp), CUSTODY_E_PARSE);
	free(note);
	note_vkey_free(vks[0]);
	note_vkey_free(vks[1]);

	note = signed_note("ecdsa_type02_rekor_pixel.txt", "[rekor]", &len);
	vks[0] = vkey(field("ecdsa_type02_rekor_pixel.txt", "[rekor]", "vkey"));
	assert_int_equal(note_checkpoint_open(note, len, vks, 1, &cp), 0);
	assert_string_equal(cp->origin, "Rekor");
	assert_int_equal(cp->size, 798034);
	assert_int_equal(b64d("f+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=",
			     root, sizeof(root)),
	    32);
	assert_memory_equal(cp->root, root, 32);
	note_checkpoint_free(cp);
	cp = NULL;
	/* a corrupted signature by a known key rejects the note */
	s = strstr(note, "wNI9aj") + 12;
	*s = *s == 'A' ? 'B' : 'A';
	assert_int_equal(
	    note_checkpoint_open(note, len, vks, 1, &cp), CUSTODY_E_SIG_VERIFY);
	free(note);
	note_vkey_free(vks[0]);

	note = signed_note("ecdsa_type02_rekor_pixel.txt", "[pixel6]", &len);
	s = strdup(field("ecdsa_type02_rekor_pixel.txt", "[pixel6]", "vkey"));
	vks[0] = vkey(s);
	free(s);
	assert_int_equal(note_checkpoint_open(note, len, vks, 1, &cp), 0);
	assert_string_equal(cp->origin, "DEFAULT");
	assert_int_equal(cp->size, 10);
	note_checkpoint_free(cp);
	free(note);
	note_vkey_free(vks[0]);
}

/* Deterministic Ed25519: the lines and notes of the vectors, byte for byte. */
static void
test_sign_ed25519_exact(void **state)
{
	struct note_vkey *vk = ed_vkey();
	uint8_t root[32], seed[33], sig[64];
	char *text = NULL, *line = NULL, *note = NULL, *want, *w;
	size_t len, wantlen;

	(void)state;
	assert_int_equal(b64d(ROOT8, root, sizeof(root)), 32);
	assert_int_equal(note_checkpoint_text(ORIGIN, 8, root, &text, &len), 0);
	log_seed(seed);
	ed_sign(seed, text, len, sig);
	assert_int_equal(note_sig_line(vk, text, len, sig, 64, &line), 0);
	assert_int_equal(note_assemble(text, len, &line, 1, &note, &len), 0);
	want = slurp("checkpoint_size8_ed25519.txt", &wantlen);
	assert_int_equal(len, wantlen);
	assert_memory_equal(note, want, len);
	/* a signature that does not verify never becomes a line */
	free(line);
	line = NULL;
	sig[0] ^= 1;
	assert_int_equal(note_sig_line(vk, text, strlen(text), sig, 64, &line),
	    CUSTODY_E_SIG_VERIFY);
	assert_int_equal(note_sig_line(vk, text, strlen(text), sig, 63, &line),
	    CUSTODY_E_SIG_VERIFY);
	assert_null(line);
	free(want);
	free(note);
	free(text);
	note_vkey_free(vk);

	/* golang/mod TestSign: PeterNeumann's line from the skey's seed */
	vk = vkey(
	    field("golang_sumdb_note_ed25519.txt", "[PeterNeumann]", "vkey"));
	assert_int_equal(b64d(field("golang_sumdb_note_ed25519.txt",
				  "[PeterNeumann]", "skey") +
				  strlen("PRIVATE+KEY+PeterNeumann+c74f20a3+"),
			     seed, sizeof(seed)),
	    33);
	assert_int_equal(seed[0], 0x01);
	want = signed_note(
	    "golang_sumdb_note_ed25519.txt", "[note_text]", &wantlen);
	w = strstr(want, "\n\n");
	ed_sign(seed + 1, want, (size_t)(w + 1 - want), sig);
	assert_int_equal(
	    note_sig_line(vk, want, (size_t)(w + 1 - want), sig, 64, &line), 0);
	assert_true(strncmp(w + 2, line, strlen(line)) == 0);
	free(line);
	free(want);
	note_vkey_free(vk);
}

/* ECDSA raw r || s of a DER signature (to feed note_sig_line). */
static void
der_to_raw(const uint8_t *der, size_t len, uint8_t raw[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *es;
	const BIGNUM *r, *s;

	assert_non_null(es = d2i_ECDSA_SIG(NULL, &p, (long)len));
	ECDSA_SIG_get0(es, &r, &s);
	assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
	assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
	ECDSA_SIG_free(es);
}

/* ECDSA P-256 key from the private scalar of keys.txt. */
static EVP_PKEY *
ec_key(void)
{
	OSSL_PARAM_BLD *b;
	OSSL_PARAM *params;
	EVP_PKEY_CTX *c;
	EVP_PKEY *k = NULL;
	BIGNUM *d = NULL;
	EC_GROUP *g;
	EC_POINT *pt;
	uint8_t pub[65];
	char *buf = slurp("keys.txt", NULL), *p;

	/* private_scalar_d = SHA-256("...") mod n = <hex> */
	assert_non_null(p = strstr(buf, "mod n = "));
	p += strlen("mod n = ");
	p[64] = '\0';
	assert_int_not_equal(BN_hex2bn(&d, p), 0);
	assert_non_null(g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
	assert_non_null(pt = EC_POINT_new(g));
	assert_int_equal(EC_POINT_mul(g, pt, d, NULL, NULL, NULL), 1);
	assert_int_equal(EC_POINT_point2oct(g, pt,
			     POINT_CONVERSION_UNCOMPRESSED, pub, 65, NULL),
	    65);
	assert_non_null(b = OSSL_PARAM_BLD_new());
	assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(
			     b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
	    1);
	assert_int_equal(
	    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, d), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_octet_string(
			     b, OSSL_PKEY_PARAM_PUB_KEY, pub, 65),
	    1);
	assert_non_null(params = OSSL_PARAM_BLD_to_param(b));
	assert_non_null(c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL));
	assert_int_equal(EVP_PKEY_fromdata_init(c), 1);
	assert_int_equal(EVP_PKEY_fromdata(c, &k, EVP_PKEY_KEYPAIR, params), 1);
	EVP_PKEY_CTX_free(c);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	BN_free(d);
	free(buf);
	return k;
}

/*
 * ECDSA: the vector's DER signature given as raw r || s becomes the vector's
 * line again; a fresh (random k) signature by the test key verifies.
 */
static void
test_sign_ecdsa(void **state)
{
	struct note_vkey *vks[2] = {ed_vkey(), ec_vkey()};
	struct note_checkpoint *cp = NULL;
	uint8_t blob[128], raw[64], der[80];
	char *text = vector_text(), *want, *lines[2] = {NULL, NULL}, *note,
	     *full, *l;
	size_t n, len, wantlen, derlen = sizeof(der);
	EVP_PKEY *k;
	EVP_MD_CTX *c;

	(void)state;
	want = slurp("checkpoint_size8_ecdsa_only.txt", &wantlen);
	l = strstr(want, "\n\n") + 2;
	n = b64d(strrchr(l, ' ') + 1, blob, sizeof(blob));
	*strrchr(l, '\n') = '\0';
	assert_memory_equal(blob, "\xec\x7d\x86\xc7", 4);
	der_to_raw(blob + 4, n - 4, raw);
	assert_int_equal(
	    note_sig_line(vks[1], text, strlen(text), raw, 64, &lines[1]), 0);
	assert_int_equal(strlen(lines[1]), strlen(l) + 1);
	assert_memory_equal(lines[1], l, strlen(l));
	free(want);

	/* Ed25519 and ECDSA lines: the cosigned vector without its witness */
	{
		uint8_t seed[32], sig[64];

		log_seed(seed);
		ed_sign(seed, text, strlen(text), sig);
		assert_int_equal(note_sig_line(vks[0], text, strlen(text), sig,
				     64, &lines[0]),
		    0);
	}
	assert_int_equal(
	    note_assemble(text, strlen(text), lines, 2, &note, &len), 0);
	full = slurp("checkpoint_size8_ed25519_ecdsa_cosigned.txt", &wantlen);
	assert_true(len < wantlen);
	assert_memory_equal(note, full, len);
	assert_memory_equal(
	    full + len, "\xe2\x80\x94 witness.example.com/w1 ", 26);
	free(full);
	free(note);
	free(lines[1]);
	lines[1] = NULL;

	/* a fresh signature */
	k = ec_key();
	assert_non_null(c = EVP_MD_CTX_new());
	assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(c, der, &derlen,
			     (const unsigned char *)text, strlen(text)),
	    1);
	der_to_raw(der, derlen, raw);
	assert_int_equal(
	    note_sig_line(vks[1], text, strlen(text), raw, 64, &lines[1]), 0);
	assert_int_equal(
	    note_assemble(text, strlen(text), lines + 1, 1, &note, &len), 0);
	assert_int_equal(note_checkpoint_open(note, len, vks + 1, 1, &cp), 0);
	check_cp8(cp);
	free(note);
	free(lines[1]);
	lines[1] = NULL;
	/* not a signature over this text */
	raw[40] ^= 0x10;
	assert_int_equal(
	    note_sig_line(vks[1], text, strlen(text), raw, 64, &lines[1]),
	    CUSTODY_E_SIG_VERIFY);
	assert_null(lines[1]);
	EVP_MD_CTX_free(c);
	EVP_PKEY_free(k);
	free(lines[0]);
	free(text);
	note_vkey_free(vks[0]);
	note_vkey_free(vks[1]);
}

static void
test_assemble_args(void **state)
{
	char *line = "\xe2\x80\x94 a AAAAAAA=\n", *bad = "- a AAAAAAA=\n",
	     *two = "\xe2\x80\x94 a AAAAAAA=\nx\n", *note = NULL;
	char *lines[NOTE_MAX_SIGS + 1];
	size_t len, i;

	(void)state;
	for (i = 0; i <= NOTE_MAX_SIGS; i++)
		lines[i] = line;
	assert_int_equal(
	    note_assemble("t\n", 2, lines, NOTE_MAX_SIGS, &note, &len), 0);
	free(note);
	note = NULL;
	assert_int_equal(
	    note_assemble("t\n", 2, lines, NOTE_MAX_SIGS + 1, &note, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_assemble("t\n", 2, lines, 0, &note, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_assemble("t", 1, lines, 1, &note, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_assemble("t\n", 2, &bad, 1, &note, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_int_equal(note_assemble("t\n", 2, &two, 1, &note, &len),
	    CUSTODY_E_INVALID_ARG);
	assert_null(note);
}

/* A flipped bit anywhere in the text or the signature is rejected. */
static void
test_flipped_bits(void **state)
{
	struct note_vkey *vk = ed_vkey();
	char *note;
	size_t len, i, textlen = 0;
	int bit, r;

	(void)state;
	note = slurp("checkpoint_size8_ed25519.txt", &len);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			note[i] ^= (char)(1 << bit);
			r = note_verify(note, len, &vk, 1, &textlen);
			assert_true(
			    r == CUSTODY_E_PARSE || r == CUSTODY_E_SIG_VERIFY);
			note[i] ^= (char)(1 << bit);
		}
	}
	assert_int_equal(note_verify(note, len, &vk, 1, &textlen), 0);
	/* flipped signature bytes, base64 kept canonical: SIG_VERIFY */
	{
		uint8_t blob[68];
		char *b64 = NULL, *p = strrchr(note, ' ') + 1, *copy;

		assert_int_equal(b64d(p, blob, sizeof(blob)), 68);
		blob[10] ^= 0x80;
		assert_int_equal(util_base64_encode(blob, 68, &b64), 0);
		assert_non_null(copy = strdup(note));
		memcpy(copy + (p - note), b64, strlen(b64));
		assert_int_equal(open_ed(copy), CUSTODY_E_SIG_VERIFY);
		free(copy);
		free(b64);
	}
	free(note);
	note_vkey_free(vk);
}

/* Only a vkey with both the name and the key id of a line is used. */
static void
test_wrong_vkey(void **state)
{
	struct note_vkey *vks[2] = {ed_vkey(), ec_vkey()}, *other = NULL;
	struct note_checkpoint *cp = NULL;
	char *note;
	size_t len;

	(void)state;
	note = slurp("checkpoint_size8_ed25519_ecdsa_cosigned.txt", &len);
	/* same keys, another name: no line matches */
	assert_int_equal(
	    note_vkey_new("audit.example.com/log2", vks[0]->pk, &other), 0);
	assert_int_equal(note_checkpoint_open(note, len, &other, 1, &cp),
	    CUSTODY_E_SIG_VERIFY);
	note_vkey_free(other);
	other = NULL;
	/*
	 * The ECDSA key id does not bind the name: a vkey under another name
	 * matches no line either, since names are compared too.
	 */
	assert_int_equal(
	    note_vkey_new("rekor.sigstore.dev", vks[1]->pk, &other), 0);
	assert_int_equal(note_checkpoint_open(note, len, &other, 1, &cp),
	    CUSTODY_E_SIG_VERIFY);
	note_vkey_free(other);
	other = NULL;
	/*
	 * A known name and key id whose key does not verify the line rejects
	 * the note even though another vkey's line verifies.
	 */
	other = vkey(field("ecdsa_type02_rekor_pixel.txt", "[rekor]", "vkey"));
	free(other->name);
	assert_non_null(other->name = strdup(ORIGIN));
	memcpy(other->key_id, vks[1]->key_id, 4);
	note_vkey_free(vks[1]);
	vks[1] = other;
	assert_int_equal(
	    note_checkpoint_open(note, len, vks, 2, &cp), CUSTODY_E_SIG_VERIFY);
	assert_null(cp);
	note_vkey_free(other);
	/* the Ed25519 key under the ECDSA key id: wrong kind of signature */
	other = ec_vkey();
	memcpy(other->key_id, "\xec\x7d\x86\xc7", 4);
	pubkey_free(other->pk);
	{
		uint8_t raw[32];

		assert_int_equal(
		    util_hex_decode(
			field("keys.txt", "[log Ed25519", "public_key_hex"),
			raw, 32),
		    0);
		assert_int_equal(pubkey_from_ec_point(
				     CUSTODY_ALG_ED25519, raw, 32, &other->pk),
		    0);
	}
	other->type = NOTE_SIG_ED25519;
	assert_int_equal(note_checkpoint_open(note, len, &other, 1, &cp),
	    CUSTODY_E_SIG_VERIFY);
	note_vkey_free(other);
	note_vkey_free(vks[0]);
	free(note);
}

/* Checkpoint bodies, each properly signed: only the exact form is a
 * checkpoint. */
static void
test_checkpoint_body(void **state)
{
	struct note_checkpoint *cp = NULL;
	size_t len;
	char *note;

	(void)state;
	assert_int_equal(open_signed_text(ORIGIN "\n8\n" ROOT8 "\n"), 0);
	assert_int_equal(open_signed_text(ORIGIN "\n0\n" ROOT8 "\n"), 0);
	note = ed_note(ORIGIN "\n18446744073709551615\n" ROOT8 "\n", &len);
	{
		struct note_vkey *vk = ed_vkey();

		assert_int_equal(
		    note_checkpoint_open(note, len, &vk, 1, &cp), 0);
		assert_true(cp->size == UINT64_MAX);
		note_checkpoint_free(cp);
		note_vkey_free(vk);
	}
	free(note);
	/* extension lines, missing or extra lines */
	assert_int_equal(
	    open_signed_text(ORIGIN "\n8\n" ROOT8 "\next\n"), CUSTODY_E_PARSE);
	assert_int_equal(open_signed_text(ORIGIN "\n8\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n8\n" ROOT8 "\n\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text("\n" ORIGIN "\n8\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	/* sizes */
	assert_int_equal(
	    open_signed_text(ORIGIN "\n01\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n00\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n-1\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n+8\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n 8\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n8 \n" ROOT8 "\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n0x8\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n18446744073709551616\n" ROOT8 "\n"),
	    CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n99999999999999999999\n" ROOT8 "\n"),
	    CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n100000000000000000000\n" ROOT8 "\n"),
	    CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text(ORIGIN "\n\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	/* roots: 31 and 33 bytes, bad character, unpadded, not canonical */
	assert_int_equal(open_signed_text(ORIGIN "\n8\n"
						 "XcnaeacGWamtVZy3Ad7ZoqudgjqtL"
						 "0lgz+Nw7/RgQw==\n"),
	    CUSTODY_E_PARSE);
	assert_int_equal(open_signed_text(ORIGIN "\n8\n"
						 "XcnaeacGWamtVZy3Ad7ZoqudgjqtL"
						 "0lgz+Nw7/RgQygA\n"),
	    CUSTODY_E_PARSE);
	assert_int_equal(open_signed_text(ORIGIN "\n8\n"
						 "XcnaeacGWamtVZy3Ad7ZoqudgjqtL"
						 "0lgz+Nw7/RgQy!=\n"),
	    CUSTODY_E_PARSE);
	assert_int_equal(open_signed_text(ORIGIN "\n8\n"
						 "XcnaeacGWamtVZy3Ad7ZoqudgjqtL"
						 "0lgz+Nw7/RgQyg\n"),
	    CUSTODY_E_PARSE);
	assert_int_equal(open_signed_text(ORIGIN "\n8\n"
						 "XcnaeacGWamtVZy3Ad7ZoqudgjqtL"
						 "0lgz+Nw7/RgQyh=\n"),
	    CUSTODY_E_PARSE);
	assert_int_equal(open_signed_text(ORIGIN "\n8\n"
						 "XcnaeacGWamtVZy3Ad7ZoqudgjqtL"
						 "0lgz-Nw7_RgQyg=\n"),
	    CUSTODY_E_PARSE);
	/* origins */
	assert_int_equal(
	    open_signed_text("a b\n8\n" ROOT8 "\n"), CUSTODY_E_PARSE);
	assert_int_equal(
	    open_signed_text("a+b\n8\n" ROOT8 "\n"), CUSTODY_E_PARSE);
}

/* note[] is text8 + "\n" + the Ed25519 vector line: variants of it. */
static void
test_note_structure(void **state)
{
	char *good, buf[2048], *l;
	size_t len;
	const char *text = ORIGIN "\n8\n" ROOT8 "\n";
	struct note_vkey *vk = ed_vkey();
	size_t textlen;

	(void)state;
	good = slurp("checkpoint_size8_ed25519.txt", &len);
	l = good + strlen(text) + 1; /* the signature line */
	assert_int_equal(open_ed(good), 0);

	/* missing blank line, two blank lines, no signature line */
	snprintf(buf, sizeof(buf), "%s%s", text, l);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s\n\n%s", text, l);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s\n", text);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	assert_int_equal(open_ed(text), CUSTODY_E_PARSE);
	assert_int_equal(open_ed(""), CUSTODY_E_PARSE);
	assert_int_equal(open_ed("\n"), CUSTODY_E_PARSE);
	/* a blank line after the signatures, or a trailing non-signature */
	snprintf(buf, sizeof(buf), "%s\n", good);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%sjunk\n", good);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	/* no final newline */
	snprintf(buf, sizeof(buf), "%.*s", (int)(len - 1), good);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	/* dashes other than U+2014: U+2013, ASCII '-', U+2014 without space */
	snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x93%s", text, l + 3);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s\n-%s", text, l + 3);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x94%s", text, l + 4);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	/* two spaces, a name with a space, an empty name */
	snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x94  %s", text, l + 4);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s\n%s\xe2\x80\x94 Bad Name AAAAAAA=\n",
	    text, l);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	/* malformed unknown lines are errors too: short blob, bad base64 */
	snprintf(buf, sizeof(buf), "%s\n%s\xe2\x80\x94 w AAAAAA==\n", text, l);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s\n%s\xe2\x80\x94 w AAAAAAA\n", text, l);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s\n%s\xe2\x80\x94 w AAAA AAA=\n", text, l);
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	/* well-formed unknown lines are ignored, before or after */
	snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x94 w AAAAAAA=\n%s", text, l);
	assert_int_equal(open_ed(buf), 0);
	/* control characters, CR, NUL, invalid UTF-8 */
	snprintf(buf, sizeof(buf), "%s", good);
	buf[strlen(ORIGIN)] = '\r';
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s", good);
	buf[len - 2] = '\r';
	assert_int_equal(
	    note_verify(buf, len, &vk, 1, &textlen), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s", good);
	buf[3] = '\0';
	assert_int_equal(
	    note_verify(buf, len, &vk, 1, &textlen), CUSTODY_E_PARSE);
	snprintf(buf, sizeof(buf), "%s", good);
	buf[3] = (char)0xff;
	assert_int_equal(open_ed(buf), CUSTODY_E_PARSE);
	free(good);
	note_vkey_free(vk);
}

/* Bounds: note size, line length, number of signature lines. */
static void
test_limits(void **state)
{
	const char *text = ORIGIN "\n8\n" ROOT8 "\n";
	const char *unk = "\xe2\x80\x94 w AAAAAAA=\n";
	struct note_vkey *vk = ed_vkey();
	char *good, *big, *p;
	size_t len, i, n, textlen;

	(void)state;
	good = slurp("checkpoint_size8_ed25519.txt", &len);
	assert_non_null(big = malloc(NOTE_MAX_LEN + 4096));
	/* 99 unknown lines and the signature: 100 lines are accepted */
	p = big + sprintf(big, "%s", good);
	for (i = 0; i < NOTE_MAX_SIGS - 1; i++)
		p += sprintf(p, "%s", unk);
	assert_int_equal(
	    note_verify(big, (size_t)(p - big), &vk, 1, &textlen), 0);
	assert_int_equal(textlen, strlen(text));
	p += sprintf(p, "%s", unk);
	assert_int_equal(note_verify(big, (size_t)(p - big), &vk, 1, &textlen),
	    CUSTODY_E_TOO_LARGE);
	/* a line over NOTE_MAX_LINE, even in an unknown signature */
	p = big + sprintf(big, "%s\xe2\x80\x94 w ", good);
	n = (NOTE_MAX_LINE / 4 + 1) * 4;
	memset(p, 'A', n);
	p += n;
	*p++ = '\n';
	assert_int_equal(note_verify(big, (size_t)(p - big), &vk, 1, &textlen),
	    CUSTODY_E_TOO_LARGE);
	/* a note over 1 MiB (text lines, so that no other limit is hit) */
	p = big;
	while ((size_t)(p - big) <= NOTE_MAX_LEN)
		p += sprintf(p, "x\n");
	p += sprintf(p, "%s", good + strlen(text));
	assert_int_equal(note_verify(big, (size_t)(p - big), &vk, 1, &textlen),
	    CUSTODY_E_TOO_LARGE);
	free(big);
	free(good);
	note_vkey_free(vk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vkey_vectors),
	    cmocka_unit_test(test_vkey_new),
	    cmocka_unit_test(test_vkey_negative),
	    cmocka_unit_test(test_checkpoint_text),
	    cmocka_unit_test(test_open_vectors),
	    cmocka_unit_test(test_open_upstream),
	    cmocka_unit_test(test_sign_ed25519_exact),
	    cmocka_unit_test(test_sign_ecdsa),
	    cmocka_unit_test(test_assemble_args),
	    cmocka_unit_test(test_flipped_bits),
	    cmocka_unit_test(test_wrong_vkey),
	    cmocka_unit_test(test_checkpoint_body),
	    cmocka_unit_test(test_note_structure),
	    cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
