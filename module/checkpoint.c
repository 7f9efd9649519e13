/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "checkpoint.h"
#include "err.h"
#include "keys.h"
#include "log.h"
#include "merkle.h"
#include "note.h"
#include "pubkey.h"
#include "util.h"

#define MAX_SIGNERS 8

static int
vkey_of(const struct store_key *k, const char *origin, struct note_vkey **vkp)
{
	struct pubkey *pk = NULL;
	enum custody_alg alg;
	int r;

	if ((r = alg_from_name(k->alg, &alg)) != 0 ||
	    (r = pubkey_from_spki(alg, k->spki, k->spki_len, &pk)) != 0)
		return r;
	r = note_vkey_new(origin, pk, vkp);
	pubkey_free(pk);
	return r;
}

/* A checkpoint key that signs (alg Ed25519 or ECDSA P-256)? */
static int
is_cp_key(const struct store_key *k)
{
	return strcmp(k->purpose, "checkpoint") == 0 &&
	       (strcmp(k->alg, "ed25519") == 0 ||
		   strcmp(k->alg, "ecdsa-p256") == 0);
}

/* Does the note last[0..lastlen) carry a good signature by key k? */
static int
signed_by(const struct store_key *k, const char *last, size_t lastlen)
{
	struct note_vkey *vk = NULL;
	const char *nl;
	char origin[NOTE_MAX_LINE + 1];
	int status = NOTE_SIG_ABSENT;

	if (last == NULL || (nl = memchr(last, '\n', lastlen)) == NULL ||
	    (size_t)(nl - last) >= sizeof(origin))
		return 0;
	memcpy(origin, last, (size_t)(nl - last));
	origin[nl - last] = '\0';
	if (vkey_of(k, origin, &vk) == 0)
		(void)note_verify_each(last, lastlen, &vk, 1, &status);
	note_vkey_free(vk);
	return status == NOTE_SIG_GOOD;
}

/*
 * Does retired checkpoint key k still sign (docs/LIFECYCLE.md, "The
 * checkpoint key's handover")? During its overlap (until its last_exp),
 * and after it until a checkpoint that its successor signed exists, so
 * that one checkpoint signed by both covers the rotation's leaves.
 */
static int
overlaps(const struct store_key *k, struct store_key *const *all, size_t n,
    const char *last, size_t lastlen, int64_t now)
{
	size_t i;

	if (strcmp(k->state, "retired") != 0 || !is_cp_key(k))
		return 0;
	if (now < k->last_exp || k->successor == NULL)
		return 1;
	for (i = 0; i < n; i++)
		if (strcmp(all[i]->id, k->successor) == 0)
			return !signed_by(all[i], last, lastlen);
	return 1;
}

/*
 * The keys that sign a checkpoint, from all[0..n) (taken from the array,
 * oldest first, at most MAX_SIGNERS): the active checkpoint keys, and the
 * retired ones that overlap() with their successors. Moved to the front of
 * all; *np of them. CUSTODY_E_KEY_NOT_FOUND without an active one.
 */
static int
signers(struct store_key **all, size_t n, const char *last, size_t lastlen,
    int64_t now, size_t *np)
{
	size_t i, k = 0, active = 0;

	for (i = 0; i < n && k < MAX_SIGNERS; i++) {
		int a =
		    strcmp(all[i]->state, "active") == 0 && is_cp_key(all[i]);

		if (a || overlaps(all[i], all, n, last, lastlen, now)) {
			struct store_key *tmp = all[k];

			all[k++] = all[i];
			all[i] = tmp;
			active += a;
		}
	}
	if (active == 0) {
		log_error_f("no active checkpoint key");
		return CUSTODY_E_KEY_NOT_FOUND;
	}
	*np = k;
	return 0;
}

/* Size and root of a checkpoint note (the text ends at the first blank
 * line; a checkpoint body has none). */
static int
note_size_root(const char *note, size_t len, uint64_t *sizep, uint8_t root[32])
{
	struct note_checkpoint *cp = NULL;
	const char *end;
	int r;

	if ((end = memmem(note, len, "\n\n", 2)) == NULL)
		return CUSTODY_E_PARSE;
	if ((r = note_checkpoint_parse(note, (size_t)(end - note) + 1, &cp)) !=
	    0)
		return r;
	*sizep = cp->size;
	memcpy(root, cp->root, 32);
	note_checkpoint_free(cp);
	return 0;
}

/*
 * May the tree (size, root) follow the checkpoint (osize, oroot)? Never
 * smaller, never another root for the same size, always consistent.
 */
static int
follows(const struct merkle_store *ms, uint64_t osize, const uint8_t oroot[32],
    uint64_t size, const uint8_t root[32], const char *what)
{
	uint8_t proof[MERKLE_MAX_PROOF][MERKLE_HASH_LEN];
	size_t plen = 0;
	int r;

	if (size < osize) {
		log_error_f("the log has %llu leaves but %s was signed at "
			    "%llu: the database was rolled back or truncated",
		    (unsigned long long)size, what, (unsigned long long)osize);
		return CUSTODY_E_STATE;
	}
	if ((r = merkle_consistency_proof(ms, osize, size, proof, &plen)) != 0)
		return r;
	if ((r = merkle_verify_consistency(osize, size, oroot, root,
		 (const uint8_t(*)[MERKLE_HASH_LEN])proof, plen)) != 0) {
		log_error_f("the log is not consistent with %s (size %llu)",
		    what, (unsigned long long)osize);
		return CUSTODY_E_PROOF;
	}
	return 0;
}

/* Replace path by buf, durably. */
static int
write_atomic(const char *path, const char *buf, size_t len)
{
	char tmp[4096];
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return CUSTODY_E_INVALID_ARG;
	(void)unlink(tmp);
	fd = open(
	    tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || util_write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
		log_error_f("writing %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CUSTODY_E_IO;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		log_error_f("writing %s: %s", path, strerror(errno));
		return CUSTODY_E_IO;
	}
	return util_sync_parent(path);
}

/* The checkpoint kept outside the store, if there is one. */
static int
read_outside(const char *path, uint64_t *sizep, uint8_t root[32], int *havep)
{
	uint8_t *buf = NULL;
	size_t n;
	int r;

	*havep = 0;
	if ((r = util_read_file(path, NOTE_MAX_LEN, &buf, &n)) != 0)
		return r == CUSTODY_E_NOT_FOUND ? 0 : r;
	if ((r = note_size_root((const char *)buf, n, sizep, root)) != 0)
		log_error_f("%s is not a checkpoint", path);
	else
		*havep = 1;
	free(buf);
	return r;
}

/* The label of the token's copy for origin: one per log on a token. */
static int
token_copy_label(const char *origin, char label[40])
{
	uint8_t h[32];
	char hex[17];

	if (SHA256((const uint8_t *)origin, strlen(origin), h) == NULL)
		return CUSTODY_E_CRYPTO;
	util_hex_encode(h, 8, hex);
	snprintf(label, 40, "custody checkpoint %.16s", hex);
	return 0;
}

/*
 * The largest checkpoint kept in the token t (two after an interrupted
 * replace); *havep = 0 when there is none, or t keeps no data objects.
 */
static int
read_token_copy(struct token *t, const char *origin, uint64_t *sizep,
    uint8_t root[32], int *havep)
{
	struct token_blob *b = NULL;
	char label[40];
	uint8_t r1[32];
	uint64_t s1;
	size_t n = 0, i;
	int r;

	*havep = 0;
	if (t == NULL || origin == NULL)
		return 0;
	if ((r = token_copy_label(origin, label)) != 0)
		return r;
	if ((r = token_data_get(t, label, &b, &n)) != 0)
		return r == CUSTODY_E_UNSUPPORTED ? 0 : r;
	for (i = 0; i < n; i++) {
		if ((r = note_size_root(
			 (const char *)b[i].data, b[i].len, &s1, r1)) != 0) {
			log_error_f(
			    "the token object '%s' is not a checkpoint", label);
			break;
		}
		if (!*havep || s1 > *sizep) {
			*sizep = s1;
			memcpy(root, r1, 32);
			*havep = 1;
		}
	}
	token_blobs_free(b, n);
	return r;
}

/* Keep note in the token too, where it allows data objects. */
static int
write_token_copy(
    struct token *t, const char *origin, const char *note, size_t len)
{
	char label[40];
	int r;

	if (t == NULL || origin == NULL)
		return 0;
	if ((r = token_copy_label(origin, label)) != 0)
		return r;
	r = token_data_put(t, label, (const uint8_t *)note, len);
	if (r == CUSTODY_E_UNSUPPORTED) {
		log_info_f("the token keeps no data objects: the checkpoint "
			   "copy is a file only");
		return 0;
	}
	return r;
}

/*
 * The tree (size, root) against the last checkpoint in the store and the
 * copy outside it; repairs the outside copy when it lags behind the store.
 * *lastp (if not NULL) gets the last note, new, or NULL if none.
 */
static int
check(struct store *st, struct token *t, const char *origin,
    const char *outside_path, uint64_t *sizep, uint8_t root[32], char **lastp,
    size_t *lastlenp, uint64_t *lsizep)
{
	struct merkle_store ms;
	uint8_t lroot[32], oroot[32], troot[32];
	uint64_t size, lsize = 0, osize = 0, tsize = 0;
	char *last = NULL;
	size_t lastlen = 0;
	int r, have_last, have_out, have_tok;

	store_merkle(st, &ms);
	if ((r = store_leaf_count(st, &size)) != 0 ||
	    (r = merkle_root(&ms, size, root)) != 0)
		return r;
	r = store_checkpoint_last(st, &lsize, lroot, &last, &lastlen);
	if (r != 0 && r != CUSTODY_E_NOT_FOUND)
		return r;
	have_last = r == 0;
	if ((r = read_outside(outside_path, &osize, oroot, &have_out)) != 0 ||
	    (r = read_token_copy(t, origin, &tsize, troot, &have_tok)) != 0 ||
	    (have_out &&
		(r = follows(&ms, osize, oroot, size, root,
		     "the checkpoint kept outside the database")) != 0) ||
	    (have_tok && (r = follows(&ms, tsize, troot, size, root,
			      "the checkpoint kept in the token")) != 0) ||
	    (have_last && (r = follows(&ms, lsize, lroot, size, root,
			       "the last checkpoint")) != 0))
		goto out;
	if (have_out && (!have_last || lsize < osize)) {
		log_error_f("the database lacks the checkpoint of size %llu "
			    "kept in %s: it was rolled back",
		    (unsigned long long)osize, outside_path);
		r = CUSTODY_E_STATE;
		goto out;
	}
	if (have_tok && (!have_last || lsize < tsize)) {
		log_error_f("the database lacks the checkpoint of size %llu "
			    "kept in the token: it was rolled back",
		    (unsigned long long)tsize);
		r = CUSTODY_E_STATE;
		goto out;
	}
	/* a write of an outside copy that failed once is redone now */
	if (have_last && (!have_out || osize < lsize) &&
	    (r = write_atomic(outside_path, last, lastlen)) != 0)
		goto out;
	if (have_last && (!have_tok || tsize < lsize) &&
	    (r = write_token_copy(t, origin, last, lastlen)) != 0)
		goto out;
	*sizep = size;
	if (lsizep != NULL)
		*lsizep = have_last ? lsize : 0;
	if (lastp != NULL) {
		*lastp = last;
		*lastlenp = lastlen;
		last = NULL;
	}
out:
	free(last);
	return r;
}

int
checkpoint_check(struct store *st, struct token *t, const char *origin,
    const char *outside_path)
{
	uint8_t root[32];
	uint64_t size;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    st != NULL && outside_path != NULL, CUSTODY_E_INVALID_ARG);
	return check(
	    st, t, origin, outside_path, &size, root, NULL, NULL, NULL);
}

int
checkpoint_make(struct token *t, struct store *st, const char *origin,
    const char *outside_path, int64_t now, char **notep, size_t *lenp,
    int *newp)
{
	struct store_key **keys = NULL;
	struct note_vkey *vk = NULL;
	struct token_key *tk = NULL;
	char *text = NULL, *lines[MAX_SIGNERS] = {0}, *note = NULL;
	char *last = NULL;
	uint8_t root[32], *sig = NULL;
	size_t textlen, lastlen = 0, nall = 0, nkeys = 0, siglen, i, k, len;
	uint64_t size, lsize = 0;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(t != NULL && st != NULL && origin != NULL &&
				       outside_path != NULL && notep != NULL &&
				       lenp != NULL && newp != NULL,
	    CUSTODY_E_INVALID_ARG);
	/* the keys before the size: a successor read here was registered
	 * by a leaf that the tree read next covers */
	if ((r = store_key_list(st, NULL, &keys, &nall)) != 0)
		return r;
	if ((r = check(st, t, origin, outside_path, &size, root, &last,
		 &lastlen, &lsize)) != 0)
		goto out;
	if (size == 0) {
		log_error_f("the log is empty: nothing to checkpoint");
		r = CUSTODY_E_INVALID_ARG;
		goto out;
	}
	if (last != NULL && lsize == size) {
		/* nothing new: the same size is never signed twice */
		*notep = last;
		*lenp = lastlen;
		*newp = 0;
		last = NULL;
		goto out;
	}
	if ((r = note_checkpoint_text(origin, size, root, &text, &textlen)) !=
		0 ||
	    (r = signers(keys, nall, last, lastlen, now, &nkeys)) != 0)
		goto out;
	for (i = k = 0; i < nkeys; i++) {
		int retired = strcmp(keys[i]->state, "retired") == 0;

		if ((r = vkey_of(keys[i], origin, &vk)) != 0 ||
		    (r = keys_open_signer(t, keys[i], &tk)) != 0 ||
		    (r = token_sign(t, tk, (const uint8_t *)text, textlen, &sig,
			 &siglen)) != 0 ||
		    (r = note_sig_line(
			 vk, text, textlen, sig, siglen, &lines[k])) != 0) {
			if (!retired)
				goto out;
			/* one being destroyed: the active ones sign */
			log_error_fr(r,
			    "retired checkpoint key %s did not sign",
			    keys[i]->id);
			r = 0;
		} else
			k++;
		free(sig);
		sig = NULL;
		token_key_free(tk);
		tk = NULL;
		note_vkey_free(vk);
		vk = NULL;
	}
	if ((r = note_assemble(text, textlen, lines, k, &note, &len)) != 0)
		goto out;
	/* durable in the store, then outside it, before anyone sees it; if
	 * the outside write fails, the next check() redoes it */
	if ((r = store_checkpoint_put(st, size, root, note, len, now)) != 0 ||
	    (r = write_atomic(outside_path, note, len)) != 0 ||
	    (r = write_token_copy(t, origin, note, len)) != 0)
		goto out;
	*notep = note;
	*lenp = len;
	*newp = 1;
	note = NULL;
out:
	free(note);
	free(last);
	free(text);
	free(sig);
	for (i = 0; i < MAX_SIGNERS; i++)
		free(lines[i]);
	token_key_free(tk);
	note_vkey_free(vk);
	store_key_list_free(keys, nall);
	return r;
}

int
checkpoint_vkeys(struct store *st, const char *origin, char **outp)
{
	struct store_key **keys = NULL;
	struct note_vkey *vk = NULL;
	char *s = NULL, *out = NULL, *tmp, *last = NULL;
	uint8_t lroot[32];
	uint64_t lsize;
	size_t n = 0, nall = 0, i, lastlen = 0;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(st != NULL && origin != NULL && outp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = store_key_list(st, NULL, &keys, &nall)) != 0)
		return r;
	r = store_checkpoint_last(st, &lsize, lroot, &last, &lastlen);
	if ((r != 0 && r != CUSTODY_E_NOT_FOUND) ||
	    (r = signers(keys, nall, last, lastlen, util_now(), &n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = vkey_of(keys[i], origin, &vk)) != 0 ||
		    (r = note_vkey_string(vk, &s)) != 0)
			goto out;
		if (asprintf(&tmp, "%s%s\n", out ? out : "", s) < 0) {
			r = CUSTODY_E_NOMEM;
			goto out;
		}
		free(out);
		out = tmp;
		free(s);
		s = NULL;
		note_vkey_free(vk);
		vk = NULL;
	}
	*outp = out;
	out = NULL;
out:
	free(s);
	free(out);
	free(last);
	note_vkey_free(vk);
	store_key_list_free(keys, nall);
	return r;
}

int
checkpoint_handed_over(struct store *st, const struct store_key *k)
{
	struct store_key *succ = NULL;
	char *last = NULL;
	uint8_t lroot[32];
	uint64_t lsize;
	size_t lastlen = 0;
	int done = 0;

	if (st == NULL || k == NULL || !is_cp_key(k))
		return 1;
	if (k->successor == NULL)
		return 1;
	if (store_key_get(st, k->successor, &succ) == 0 &&
	    store_checkpoint_last(st, &lsize, lroot, &last, &lastlen) == 0)
		done = signed_by(succ, last, lastlen);
	free(last);
	store_key_free(succ);
	return done;
}
