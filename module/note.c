/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "err.h"
#include "log.h"
#include "note.h"
#include "util.h"

#define EM_DASH	    "\xe2\x80\x94"
#define EM_DASH_LEN 3
/* SPKI DER of an Ed25519 key is this prefix and the 32-byte key */
static const uint8_t ed25519_spki_prefix[12] = {
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

/*
 * Next code point of s[*ip..len) into *cpp, advancing *ip. -1 for anything
 * that is not shortest-form UTF-8 of a scalar value.
 */
static int
utf8_next(const uint8_t *s, size_t len, size_t *ip, uint32_t *cpp)
{
	size_t i = *ip, n, k;
	uint32_t c = s[i], min;

	if (c < 0x80) {
		*cpp = c;
		*ip = i + 1;
		return 0;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 1;
		c &= 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2;
		c &= 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 3;
		c &= 0x07;
		min = 0x10000;
	} else
		return -1;
	if (len - i - 1 < n)
		return -1;
	for (k = 1; k <= n; k++) {
		if ((s[i + k] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (s[i + k] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*cpp = c;
	*ip = i + n + 1;
	return 0;
}

static int
is_control(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/* Unicode White_Space */
static int
is_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 ||
	       c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
	       c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
	       c == 0x3000;
}

static int
name_check_n(const char *s, size_t len)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0;
	uint32_t c;

	if (len == 0)
		return CUSTODY_E_PARSE;
	while (i < len) {
		if (utf8_next(u, len, &i, &c) != 0 || is_control(c) ||
		    is_space(c) || c == '+')
			return CUSTODY_E_PARSE;
	}
	return 0;
}

/* UTF-8 with no control character but LF (so no NUL either). */
static int
text_check(const char *s, size_t len)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0;
	uint32_t c;

	while (i < len) {
		if (utf8_next(u, len, &i, &c) != 0 ||
		    (is_control(c) && c != '\n'))
			return CUSTODY_E_PARSE;
	}
	return 0;
}

int
note_name_check(const char *name)
{
	size_t n;

	if (name == NULL ||
	    (n = strnlen(name, NOTE_MAX_LINE + 1)) > NOTE_MAX_LINE)
		return CUSTODY_E_PARSE;
	return name_check_n(name, n);
}

int
note_checkpoint_text(const char *origin, uint64_t size,
    const uint8_t root[NOTE_ROOT_LEN], char **textp, size_t *lenp)
{
	char *b64 = NULL, *text = NULL;
	size_t n;
	int r, len;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    origin != NULL && root != NULL && textp != NULL && lenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (note_name_check(origin) != 0) {
		log_error_f("invalid checkpoint origin");
		return CUSTODY_E_INVALID_ARG;
	}
	if ((r = util_base64_encode(root, NOTE_ROOT_LEN, &b64)) != 0)
		goto out;
	n = strlen(origin) + 20 + strlen(b64) + 4;
	if ((text = malloc(n)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	len = snprintf(text, n, "%s\n%" PRIu64 "\n%s\n", origin, size, b64);
	if (len < 0 || (size_t)len >= n) {
		r = CUSTODY_E_INTERNAL;
		goto out;
	}
	*textp = text;
	*lenp = (size_t)len;
	text = NULL;
	r = 0;
out:
	free(b64);
	free(text);
	return r;
}

/* type 0x01: SHA-256(name || 0x0A || 0x01 || key); 0x02: SHA-256(SPKI) */
static int
key_id(uint8_t type, const char *name, size_t namelen, const uint8_t *key,
    size_t keylen, uint8_t id[NOTE_KEY_ID_LEN])
{
	uint8_t md[EVP_MAX_MD_SIZE], sep[2] = {0x0a, type};
	EVP_MD_CTX *c;
	int ok;

	if ((c = EVP_MD_CTX_new()) == NULL)
		return CUSTODY_E_NOMEM;
	ok = EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;
	if (ok && type == NOTE_SIG_ED25519)
		ok = EVP_DigestUpdate(c, name, namelen) == 1 &&
		     EVP_DigestUpdate(c, sep, sizeof(sep)) == 1;
	ok = ok && EVP_DigestUpdate(c, key, keylen) == 1 &&
	     EVP_DigestFinal_ex(c, md, NULL) == 1;
	EVP_MD_CTX_free(c);
	if (!ok) {
		ERR_clear_error();
		log_error_f("SHA-256 failed");
		return CUSTODY_E_CRYPTO;
	}
	memcpy(id, md, NOTE_KEY_ID_LEN);
	return 0;
}

/*
 * The key material of a vkey: the 32-byte Ed25519 key or the SPKI DER.
 * *keyp is new.
 */
static int
vkey_key(
    const struct pubkey *pk, uint8_t *typep, uint8_t **keyp, size_t *keylenp)
{
	uint8_t *spki = NULL;
	size_t len;
	int r;

	if ((r = pubkey_spki(pk, &spki, &len)) != 0)
		return r;
	switch (pubkey_alg(pk)) {
	case CUSTODY_ALG_ED25519:
		if (len != sizeof(ed25519_spki_prefix) + 32 ||
		    memcmp(spki, ed25519_spki_prefix,
			sizeof(ed25519_spki_prefix)) != 0) {
			free(spki);
			return CUSTODY_E_INTERNAL;
		}
		memmove(spki, spki + sizeof(ed25519_spki_prefix), 32);
		*typep = NOTE_SIG_ED25519;
		*keylenp = 32;
		break;
	case CUSTODY_ALG_ECDSA_P256:
		*typep = NOTE_SIG_ECDSA;
		*keylenp = len;
		break;
	default:
		free(spki);
		return CUSTODY_E_UNKNOWN_ALG;
	}
	*keyp = spki;
	return 0;
}

int
note_vkey_new(const char *name, const struct pubkey *pk, struct note_vkey **vkp)
{
	struct note_vkey *vk = NULL;
	uint8_t *key = NULL, *spki = NULL, type;
	size_t keylen, spkilen;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    name != NULL && pk != NULL && vkp != NULL, CUSTODY_E_INVALID_ARG);
	if (note_name_check(name) != 0) {
		log_error_f("invalid key name");
		return CUSTODY_E_INVALID_ARG;
	}
	if ((r = vkey_key(pk, &type, &key, &keylen)) != 0)
		goto out;
	if ((vk = calloc(1, sizeof(*vk))) == NULL ||
	    (vk->name = strdup(name)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	vk->type = type;
	if ((r = key_id(type, name, strlen(name), key, keylen, vk->key_id)) !=
	    0)
		goto out;
	/* a copy of pk, so that the vkey owns what it holds */
	if ((r = pubkey_spki(pk, &spki, &spkilen)) != 0 ||
	    (r = pubkey_from_spki(pubkey_alg(pk), spki, spkilen, &vk->pk)) != 0)
		goto out;
	*vkp = vk;
	vk = NULL;
out:
	free(key);
	free(spki);
	note_vkey_free(vk);
	return r;
}

int
note_vkey_parse(const char *s, struct note_vkey **vkp)
{
	struct note_vkey *vk = NULL;
	const char *p1, *p2;
	char hex[2 * NOTE_KEY_ID_LEN + 1];
	uint8_t *blob = NULL, *spki = NULL, id[NOTE_KEY_ID_LEN];
	size_t len, bloblen, spkilen;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    s != NULL && vkp != NULL, CUSTODY_E_INVALID_ARG);
	if ((len = strnlen(s, NOTE_MAX_LINE + 1)) > NOTE_MAX_LINE)
		return CUSTODY_E_TOO_LARGE;
	/* split at the first two '+': base64 may hold more */
	if ((p1 = memchr(s, '+', len)) == NULL ||
	    (p2 = memchr(p1 + 1, '+', len - (size_t)(p1 + 1 - s))) == NULL ||
	    p2 - p1 - 1 != 2 * NOTE_KEY_ID_LEN)
		return CUSTODY_E_PARSE;
	if ((r = name_check_n(s, (size_t)(p1 - s))) != 0)
		return r;
	memcpy(hex, p1 + 1, 2 * NOTE_KEY_ID_LEN);
	hex[2 * NOTE_KEY_ID_LEN] = '\0';
	if ((r = util_hex_decode(hex, id, sizeof(id))) != 0)
		return r;
	if ((r = util_base64_decode(
		 p2 + 1, len - (size_t)(p2 + 1 - s), &blob, &bloblen)) != 0)
		return r;
	if ((vk = calloc(1, sizeof(*vk))) == NULL ||
	    (vk->name = strndup(s, (size_t)(p1 - s))) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	r = CUSTODY_E_PARSE;
	if (bloblen < 1)
		goto out;
	vk->type = blob[0];
	if (vk->type == NOTE_SIG_ED25519 && bloblen == 33)
		r = pubkey_from_ec_point(
		    CUSTODY_ALG_ED25519, blob + 1, 32, &vk->pk);
	else if (vk->type == NOTE_SIG_ECDSA)
		r = pubkey_from_spki(
		    CUSTODY_ALG_ECDSA_P256, blob + 1, bloblen - 1, &vk->pk);
	if (r != 0) {
		/* the key bytes are the only input: a failure is theirs */
		if (r == CUSTODY_E_CRYPTO)
			r = CUSTODY_E_PARSE;
		goto out;
	}
	/* one encoding per key, so that one key has one key id */
	if (vk->type == NOTE_SIG_ECDSA) {
		if ((r = pubkey_spki(vk->pk, &spki, &spkilen)) != 0)
			goto out;
		if (spkilen != bloblen - 1 ||
		    memcmp(spki, blob + 1, spkilen) != 0) {
			r = CUSTODY_E_PARSE;
			goto out;
		}
	}
	if ((r = key_id(vk->type, vk->name, strlen(vk->name), blob + 1,
		 bloblen - 1, vk->key_id)) != 0)
		goto out;
	if (CRYPTO_memcmp(vk->key_id, id, sizeof(id)) != 0) {
		log_debug_f("vkey %s: key id does not match its key", vk->name);
		r = CUSTODY_E_PARSE;
		goto out;
	}
	*vkp = vk;
	vk = NULL;
	r = 0;
out:
	free(blob);
	free(spki);
	note_vkey_free(vk);
	return r;
}

int
note_vkey_string(const struct note_vkey *vk, char **strp)
{
	uint8_t *key = NULL, *blob = NULL, type;
	char hex[2 * NOTE_KEY_ID_LEN + 1], *b64 = NULL, *s = NULL;
	size_t keylen, n;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    vk != NULL && vk->pk != NULL && vk->name != NULL && strp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = vkey_key(vk->pk, &type, &key, &keylen)) != 0)
		goto out;
	if ((blob = malloc(keylen + 1)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	blob[0] = type;
	memcpy(blob + 1, key, keylen);
	if ((r = util_base64_encode(blob, keylen + 1, &b64)) != 0)
		goto out;
	util_hex_encode(vk->key_id, NOTE_KEY_ID_LEN, hex);
	n = strlen(vk->name) + strlen(hex) + strlen(b64) + 3;
	if ((s = malloc(n)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	snprintf(s, n, "%s+%s+%s", vk->name, hex, b64);
	*strp = s;
	r = 0;
out:
	free(key);
	free(blob);
	free(b64);
	return r;
}

void
note_vkey_free(struct note_vkey *vk)
{
	if (vk == NULL)
		return;
	free(vk->name);
	pubkey_free(vk->pk);
	free(vk);
}

int
note_sig_line(const struct note_vkey *vk, const char *text, size_t textlen,
    const uint8_t *sig, size_t siglen, char **linep)
{
	uint8_t *der = NULL, *blob = NULL;
	const uint8_t *body = sig;
	char *b64 = NULL, *line = NULL;
	size_t bodylen = siglen, n;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(vk != NULL && vk->pk != NULL &&
				       vk->name != NULL && text != NULL &&
				       sig != NULL && linep != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (textlen == 0 || text[textlen - 1] != '\n')
		return CUSTODY_E_INVALID_ARG;
	if ((r = pubkey_verify(
		 vk->pk, (const uint8_t *)text, textlen, sig, siglen)) != 0) {
		log_error_fr(r, "signature by %s over the note", vk->name);
		goto out;
	}
	if (vk->type == NOTE_SIG_ECDSA) {
		if ((r = pubkey_ecdsa_raw_to_der(
			 sig, siglen, &der, &bodylen)) != 0)
			goto out;
		body = der;
	}
	if ((blob = malloc(NOTE_KEY_ID_LEN + bodylen)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	memcpy(blob, vk->key_id, NOTE_KEY_ID_LEN);
	memcpy(blob + NOTE_KEY_ID_LEN, body, bodylen);
	if ((r = util_base64_encode(blob, NOTE_KEY_ID_LEN + bodylen, &b64)) !=
	    0)
		goto out;
	n = EM_DASH_LEN + 1 + strlen(vk->name) + 1 + strlen(b64) + 2;
	if ((line = malloc(n)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	snprintf(line, n, EM_DASH " %s %s\n", vk->name, b64);
	*linep = line;
	r = 0;
out:
	free(der);
	free(blob);
	free(b64);
	return r;
}

int
note_assemble(const char *text, size_t textlen, char *const *lines,
    size_t nlines, char **notep, size_t *lenp)
{
	char *note = NULL, *p;
	size_t i, n, total;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    text != NULL && lines != NULL && notep != NULL && lenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if (textlen == 0 || text[textlen - 1] != '\n' || nlines == 0 ||
	    nlines > NOTE_MAX_SIGS)
		return CUSTODY_E_INVALID_ARG;
	total = textlen + 1;
	for (i = 0; i < nlines; i++) {
		n = strlen(lines[i]);
		if (n < EM_DASH_LEN + 2 ||
		    memcmp(lines[i], EM_DASH " ", EM_DASH_LEN + 1) != 0 ||
		    memchr(lines[i], '\n', n) != lines[i] + n - 1)
			return CUSTODY_E_INVALID_ARG;
		total += n;
	}
	if (total > NOTE_MAX_LEN)
		return CUSTODY_E_TOO_LARGE;
	if ((note = malloc(total + 1)) == NULL)
		return CUSTODY_E_NOMEM;
	memcpy(note, text, textlen);
	p = note + textlen;
	*p++ = '\n';
	for (i = 0; i < nlines; i++) {
		n = strlen(lines[i]);
		memcpy(p, lines[i], n);
		p += n;
	}
	*p = '\0';
	*notep = note;
	*lenp = total;
	return 0;
}

/*
 * Strict DER ECDSA-Sig-Value to raw r || s of a P-256 signature; anything
 * else is CUSTODY_E_SIG_VERIFY (it is a bad signature by a known key).
 */
static int
ecdsa_der_to_raw(const uint8_t *der, size_t len, uint8_t raw[64])
{
	const unsigned char *p = der;
	unsigned char *re = NULL;
	const BIGNUM *br, *bs;
	ECDSA_SIG *es = NULL;
	int n, r = CUSTODY_E_SIG_VERIFY;

	if (len > 80)
		goto out;
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL || p != der + len)
		goto out;
	/* re-encoding must give the same bytes: DER, not BER */
	if ((n = i2d_ECDSA_SIG(es, &re)) <= 0 || (size_t)n != len ||
	    memcmp(re, der, len) != 0)
		goto out;
	ECDSA_SIG_get0(es, &br, &bs);
	if (BN_bn2binpad(br, raw, 32) != 32 ||
	    BN_bn2binpad(bs, raw + 32, 32) != 32)
		goto out;
	r = 0;
out:
	/* malformed input is not an OpenSSL failure: leave no queue behind */
	ERR_clear_error();
	OPENSSL_free(re);
	ECDSA_SIG_free(es);
	return r;
}

static int
verify_one(const struct note_vkey *vk, const char *text, size_t textlen,
    const uint8_t *sig, size_t siglen)
{
	uint8_t raw[64];
	int r;

	if (vk->type == NOTE_SIG_ECDSA) {
		if ((r = ecdsa_der_to_raw(sig, siglen, raw)) != 0)
			return r;
		sig = raw;
		siglen = sizeof(raw);
	}
	return pubkey_verify(
	    vk->pk, (const uint8_t *)text, textlen, sig, siglen);
}

/*
 * One signature line s[0..len) without its LF: "— <name> <base64>". The
 * name is the *namelenp bytes after "— ", the decoded blob (key id ||
 * signature, at least 5 bytes) new in *blobp.
 */
static int
sig_line_parse(const char *s, size_t len, size_t *namelenp, uint8_t **blobp,
    size_t *bloblenp)
{
	const char *name = s + EM_DASH_LEN + 1, *sp;
	size_t namelen;
	uint8_t *blob = NULL;
	size_t bloblen;
	int r;

	if (len < EM_DASH_LEN + 1 ||
	    memcmp(s, EM_DASH " ", EM_DASH_LEN + 1) != 0)
		return CUSTODY_E_PARSE;
	if ((sp = memchr(name, ' ', len - EM_DASH_LEN - 1)) == NULL)
		return CUSTODY_E_PARSE;
	namelen = (size_t)(sp - name);
	if ((r = name_check_n(name, namelen)) != 0)
		return r;
	if ((r = util_base64_decode(
		 sp + 1, len - (size_t)(sp + 1 - s), &blob, &bloblen)) != 0)
		return r;
	if (bloblen < NOTE_KEY_ID_LEN + 1) {
		free(blob);
		return CUSTODY_E_PARSE;
	}
	*namelenp = namelen;
	*blobp = blob;
	*bloblenp = bloblen;
	return 0;
}

/*
 * note_verify(), or with status != NULL note_verify_each(): a line that
 * fails is then recorded in status instead of failing the note.
 */
static int
verify_lines(const char *note, size_t len, struct note_vkey *const *vkeys,
    size_t nvkeys, size_t *textlenp, int *status)
{
	const char *sigs, *line, *eol, *name;
	uint8_t *blob = NULL;
	size_t i, textlen, namelen, bloblen, nsigs = 0, nok = 0;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    note != NULL && (vkeys != NULL || nvkeys == 0) && textlenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	for (i = 0; status != NULL && i < nvkeys; i++)
		status[i] = NOTE_SIG_ABSENT;
	for (i = 0; i < nvkeys; i++)
		CUSTODY_RETURN_VAL_IF_FAIL(vkeys[i] != NULL &&
					       vkeys[i]->name != NULL &&
					       vkeys[i]->pk != NULL,
		    CUSTODY_E_INVALID_ARG);
	if (len > NOTE_MAX_LEN)
		return CUSTODY_E_TOO_LARGE;
	if (len < 2 || note[len - 1] != '\n')
		return CUSTODY_E_PARSE;
	if ((r = text_check(note, len)) != 0)
		return r;
	for (line = note; line < note + len; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(note + len - line));
		if ((size_t)(eol - line) > NOTE_MAX_LINE)
			return CUSTODY_E_TOO_LARGE;
	}
	/* the text ends at the last empty line (signed-note: "\n\n") */
	for (i = len - 1; i > 0 && !(note[i - 1] == '\n' && note[i] == '\n');
	     i--)
		;
	if (i == 0)
		return CUSTODY_E_PARSE;
	textlen = i; /* text includes its final LF, not the empty line */
	/* exactly one empty line before the signatures, after a text line */
	if (textlen == 1 || note[textlen - 2] == '\n')
		return CUSTODY_E_PARSE;
	sigs = note + i + 1;
	if (sigs == note + len)
		return CUSTODY_E_PARSE;
	for (line = sigs; line < note + len; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(note + len - line));
		if (++nsigs > NOTE_MAX_SIGS) {
			r = CUSTODY_E_TOO_LARGE;
			goto out;
		}
		if ((r = sig_line_parse(line, (size_t)(eol - line), &namelen,
			 &blob, &bloblen)) != 0)
			goto out;
		name = line + EM_DASH_LEN + 1;
		for (i = 0; i < nvkeys; i++) {
			if (strlen(vkeys[i]->name) != namelen ||
			    memcmp(vkeys[i]->name, name, namelen) != 0 ||
			    memcmp(vkeys[i]->key_id, blob, NOTE_KEY_ID_LEN) !=
				0)
				continue;
			if ((r = verify_one(vkeys[i], note, textlen,
				 blob + NOTE_KEY_ID_LEN,
				 bloblen - NOTE_KEY_ID_LEN)) != 0) {
				log_error_fr(r,
				    "signature line of %s+%02x%02x%02x%02x",
				    vkeys[i]->name, vkeys[i]->key_id[0],
				    vkeys[i]->key_id[1], vkeys[i]->key_id[2],
				    vkeys[i]->key_id[3]);
				if (status == NULL)
					goto out;
				status[i] = NOTE_SIG_BAD;
				continue;
			}
			if (status != NULL && status[i] == NOTE_SIG_ABSENT)
				status[i] = NOTE_SIG_GOOD;
			nok++;
		}
		free(blob);
		blob = NULL;
	}
	if (nok == 0 && status == NULL) {
		log_error_f("no signature by a known key");
		r = CUSTODY_E_SIG_VERIFY;
		goto out;
	}
	*textlenp = textlen;
	r = 0;
out:
	free(blob);
	return r;
}

int
note_verify(const char *note, size_t len, struct note_vkey *const *vkeys,
    size_t nvkeys, size_t *textlenp)
{
	return verify_lines(note, len, vkeys, nvkeys, textlenp, NULL);
}

int
note_verify_each(const char *note, size_t len, struct note_vkey *const *vkeys,
    size_t nvkeys, int *status)
{
	size_t textlen;

	CUSTODY_RETURN_VAL_IF_FAIL(status != NULL, CUSTODY_E_INVALID_ARG);
	return verify_lines(note, len, vkeys, nvkeys, &textlen, status);
}

static int
size_parse(const char *s, size_t len, uint64_t *sizep)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return CUSTODY_E_PARSE;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return CUSTODY_E_PARSE;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return CUSTODY_E_PARSE;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*sizep = v;
	return 0;
}

int
note_checkpoint_parse(
    const char *text, size_t len, struct note_checkpoint **cpp)
{
	struct note_checkpoint *cp = NULL;
	const char *line[3], *eol;
	size_t linelen[3], n, rootlen;
	uint8_t *root = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    text != NULL && cpp != NULL, CUSTODY_E_INVALID_ARG);
	if (len == 0 || len > NOTE_MAX_LEN || text[len - 1] != '\n')
		return CUSTODY_E_PARSE;
	if ((r = text_check(text, len)) != 0)
		return r;
	/* exactly three lines: no extension lines */
	line[0] = text;
	for (n = 0; n < 3; n++) {
		if (line[n] >= text + len)
			return CUSTODY_E_PARSE;
		eol = memchr(line[n], '\n', (size_t)(text + len - line[n]));
		linelen[n] = (size_t)(eol - line[n]);
		if (n < 2)
			line[n + 1] = eol + 1;
		else if (eol + 1 != text + len)
			return CUSTODY_E_PARSE;
	}
	if ((r = name_check_n(line[0], linelen[0])) != 0)
		return r;
	if ((cp = calloc(1, sizeof(*cp))) == NULL ||
	    (cp->origin = strndup(line[0], linelen[0])) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if ((r = size_parse(line[1], linelen[1], &cp->size)) != 0)
		goto out;
	if ((r = util_base64_decode(line[2], linelen[2], &root, &rootlen)) != 0)
		goto out;
	if (rootlen != NOTE_ROOT_LEN) {
		r = CUSTODY_E_PARSE;
		goto out;
	}
	memcpy(cp->root, root, NOTE_ROOT_LEN);
	*cpp = cp;
	cp = NULL;
out:
	free(root);
	note_checkpoint_free(cp);
	return r;
}

int
note_checkpoint_open(const char *note, size_t len,
    struct note_vkey *const *vkeys, size_t nvkeys, struct note_checkpoint **cpp)
{
	size_t textlen;
	int r;

	if ((r = note_verify(note, len, vkeys, nvkeys, &textlen)) != 0)
		return r;
	return note_checkpoint_parse(note, textlen, cpp);
}

void
note_checkpoint_free(struct note_checkpoint *cp)
{
	if (cp == NULL)
		return;
	free(cp->origin);
	free(cp);
}
