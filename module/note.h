/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_NOTE_H
#define CUSTODY_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "pubkey.h"

/*
 * C2SP tlog-checkpoint v1.0.0 inside a C2SP signed note v1.0.0 (FORMATS.md
 * section 3): the checkpoint text, verifier keys (vkeys) of signature types
 * 0x01 (Ed25519) and 0x02 (ECDSA P-256, key id = SHA-256(SPKI DER)[:4]),
 * signature lines, and the parsing and verification of a signed checkpoint.
 *
 * Key names and origins: non-empty UTF-8, no control character, no Unicode
 * white space, no '+'. The module never signs: a token does, and
 * note_sig_line() turns its signature into a line.
 */

#define NOTE_SIG_ED25519 0x01
#define NOTE_SIG_ECDSA	 0x02
#define NOTE_KEY_ID_LEN	 4
#define NOTE_ROOT_LEN	 32
#define NOTE_MAX_LEN	 (1024 * 1024) /* a whole signed note */
#define NOTE_MAX_SIGS	 100	       /* signature lines, as Go's note.Open */
#define NOTE_MAX_LINE	 8192 /* any line (an ML-DSA-44 cosignature fits) */

/* A verifier key. All members are owned by it; treat as read-only. */
struct note_vkey {
	char *name;
	uint8_t key_id[NOTE_KEY_ID_LEN];
	uint8_t type; /* NOTE_SIG_ED25519 or NOTE_SIG_ECDSA */
	struct pubkey *pk;
};

/* A parsed checkpoint body. */
struct note_checkpoint {
	char *origin;
	uint64_t size;
	uint8_t root[NOTE_ROOT_LEN];
};

/*
 * 0 if name is a valid key name or origin (see above), CUSTODY_E_PARSE
 * otherwise.
 */
int note_name_check(const char *name);

/*
 * The checkpoint text "<origin>\n<size>\n<base64 root>\n" (no extension
 * lines). *textp is a new NUL-terminated string (free(3) it), *lenp its
 * length. CUSTODY_E_INVALID_ARG for an invalid origin.
 */
int note_checkpoint_text(const char *origin, uint64_t size,
    const uint8_t root[NOTE_ROOT_LEN], char **textp, size_t *lenp);

/*
 * A vkey for key name `name` and pk, which must be Ed25519 (type 0x01) or
 * ECDSA P-256 (type 0x02); the key id is computed as FORMATS.md section 3
 * says. pk is not taken: the vkey holds its own copy. CUSTODY_E_INVALID_ARG
 * for a bad name, CUSTODY_E_UNKNOWN_ALG for another kind of key.
 */
int note_vkey_new(
    const char *name, const struct pubkey *pk, struct note_vkey **vkp);

/*
 * Parse "<name>+<hex key id>+<base64(type || key)>": a valid name, exactly 8
 * hex digits, canonical padded base64 of type 0x01 with a 32-byte Ed25519
 * key or type 0x02 with a P-256 SPKI DER in its canonical encoding, and a
 * key id that matches the one computed from name and key. CUSTODY_E_PARSE
 * otherwise (CUSTODY_E_TOO_LARGE beyond NOTE_MAX_LINE bytes).
 */
int note_vkey_parse(const char *s, struct note_vkey **vkp);

/* The vkey string of vk; *strp is new (free(3) it). */
int note_vkey_string(const struct note_vkey *vk, char **strp);

void note_vkey_free(struct note_vkey *vk);

/*
 * The signature line "— <name> <base64(key id || sig)>\n" (U+2014) for sig,
 * a signature by vk's key over text[0..textlen) in custody's form (64-byte
 * Ed25519, or ECDSA raw r || s, which becomes ASN.1 DER in the line). The
 * signature is verified first (a token's fault never gets published):
 * CUSTODY_E_SIG_VERIFY if it does not verify. *linep is new (free(3) it).
 */
int note_sig_line(const struct note_vkey *vk, const char *text, size_t textlen,
    const uint8_t *sig, size_t siglen, char **linep);

/*
 * The signed note text || "\n" || lines[0] || ... || lines[nlines - 1].
 * text must end in "\n", 1 <= nlines <= NOTE_MAX_SIGS, and each line must be
 * one from note_sig_line(); CUSTODY_E_INVALID_ARG otherwise. *notep is a new
 * NUL-terminated string (free(3) it), *lenp its length.
 */
int note_assemble(const char *text, size_t textlen, char *const *lines,
    size_t nlines, char **notep, size_t *lenp);

/*
 * Verify the signed note note[0..len) against vkeys[0..nvkeys): the text
 * (whose last line is not empty), exactly one empty line, then
 * 1..NOTE_MAX_SIGS well-formed signature lines, all UTF-8 without control
 * characters except LF. Lines whose name and key
 * id match no vkey are ignored; every line that matches a vkey must verify.
 * On success *textlenp is the length of the signed text (a prefix of note).
 * CUSTODY_E_TOO_LARGE over NOTE_MAX_LEN bytes, NOTE_MAX_SIGS lines or
 * NOTE_MAX_LINE bytes in a line; CUSTODY_E_PARSE for any malformed line;
 * CUSTODY_E_SIG_VERIFY if a matching line fails or no line matches.
 */
int note_verify(const char *note, size_t len, struct note_vkey *const *vkeys,
    size_t nvkeys, size_t *textlenp);

/*
 * What a signed note says of each verifier key, for a precise error: like
 * note_verify(), but a line that fails is recorded in status[i] instead of
 * failing, and a note without any known signature is no error. Returns 0
 * for a well-formed note (look at status), or the parse errors of
 * note_verify().
 */
#define NOTE_SIG_ABSENT 0 /* no signature line names the key */
#define NOTE_SIG_GOOD	1 /* a line names it and verifies */
#define NOTE_SIG_BAD	2 /* a line names it and does not verify */
int note_verify_each(const char *note, size_t len,
    struct note_vkey *const *vkeys, size_t nvkeys, int *status);

/*
 * Parse a checkpoint text: exactly the three lines origin (a valid name),
 * size (decimal, no leading zeros except "0", fits uint64_t) and root
 * (canonical padded base64 of exactly 32 bytes); no extension lines.
 * CUSTODY_E_PARSE otherwise. *cpp is new (note_checkpoint_free() it).
 */
int note_checkpoint_parse(
    const char *text, size_t len, struct note_checkpoint **cpp);

/*
 * note_verify() then note_checkpoint_parse() of the verified text. The
 * origin is returned, not compared with the key names (Rekor's differ).
 */
int note_checkpoint_open(const char *note, size_t len,
    struct note_vkey *const *vkeys, size_t nvkeys,
    struct note_checkpoint **cpp);

void note_checkpoint_free(struct note_checkpoint *cp);

#endif
