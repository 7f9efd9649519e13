/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_LOGDIR_H
#define CUSTODY_LOGDIR_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"
#include "note.h"
#include "store.h"

/*
 * An exported audit log: a directory in the C2SP tlog-tiles layout
 * (FORMATS.md section 4) for the tree of the last signed checkpoint:
 *
 *   checkpoint              the last signed checkpoint (a signed note)
 *   checkpoints/<size>      every signed checkpoint, by tree size
 *   tile/entries/<N>[.p/W]  the leaves, exact bytes (uint16 length + bytes)
 *   tile/<L>/<N>[.p/W]      the hash tiles
 *
 * logdir_verify() is the auditor's side: it trusts nothing in the directory
 * but the verifier keys it is given, and needs neither a token nor a store.
 */

/* What an export wrote. */
struct logdir_export_stats {
	uint64_t size;		  /* leaves exported: the last checkpoint's */
	uint64_t unsigned_leaves; /* leaves after it, not exported */
	uint64_t tiles;		  /* tile files written (entries included) */
	size_t checkpoints;	  /* files under checkpoints/ */
};

/*
 * The bytes of tile t (a hash tile or an entry bundle) of the tree of size
 * leaves in st, as the export writes them and custodyd serves them under
 * /v1/log/: a tile beyond size is CUSTODY_E_INVALID_ARG; a leaf whose bytes
 * do not match the tree is CUSTODY_E_PROOF (logged). *datap is new.
 */
struct tiles_tile;
int logdir_tile(struct store *st, uint64_t size, const struct tiles_tile *t,
    uint8_t **datap, size_t *lenp);

/*
 * Export the log in st up to its last signed checkpoint into dir, which
 * must not exist or be an empty directory (CUSTODY_E_EXISTS otherwise). The
 * files are written under a temporary sibling name and renamed into place
 * when all is done, so dir is either complete or absent. Every leaf's bytes
 * are checked against its stored hash on the way (CUSTODY_E_PROOF, logged
 * with the leaf, if the database was altered). CUSTODY_E_NOT_FOUND when no
 * checkpoint was ever signed.
 */
int logdir_export(
    struct store *st, const char *dir, struct logdir_export_stats *statsp);

/* What a verification established. */
struct logdir_result {
	uint64_t size;		       /* leaves verified */
	uint8_t root[MERKLE_HASH_LEN]; /* their root, as signed */
	size_t checkpoints;	       /* signed checkpoints checked */
	uint64_t first_size;	       /* the smallest of them */
	uint64_t tiles;		       /* tile files recomputed and compared */
	size_t handed_over; /* checkpoint keys the log handed over to */
};

/*
 * Verify the export in dir against the verifier keys vkeys[0..nvkeys):
 * every checkpoint (checkpoint and checkpoints/<size>) carries a valid
 * signature by one of them and names the size of its file; the entries of
 * the largest tree are read, every leaf is an audit leaf whose seq is its
 * index, every hash tile and every checkpoint's root are recomputed from
 * the entries and compared, and every pair of successive checkpoints is
 * checked with a consistency proof. Returns 0 and fills *resp, or an error
 * with a sentence in msg[0..msgsz) naming the file, leaf or signature that
 * is wrong: CUSTODY_E_SIG_VERIFY (a signature), CUSTODY_E_PROOF (a leaf, a
 * tile or a root that does not match), CUSTODY_E_PARSE (a malformed file),
 * CUSTODY_E_NOT_FOUND (a missing file), another code for other failures.
 * Memory: about 64 bytes per leaf.
 */
int logdir_verify(const char *dir, struct note_vkey *const *vkeys,
    size_t nvkeys, struct logdir_result *resp, char *msg, size_t msgsz);

/*
 * A leaf of a verified log, in seq order: leaf[0..len) are its exact bytes,
 * valid during the call only. Returns 0 to go on, or a negative CUSTODY_E_*
 * code that stops the walk.
 */
typedef int (*logdir_leaf_fn)(
    void *arg, uint64_t seq, const uint8_t *leaf, size_t len);

/*
 * logdir_verify(), then, once everything verified and only then, fn(arg,
 * seq, leaf, len) for each leaf of the largest signed tree in seq order.
 * The entries are read a second time and each leaf's hash compared with
 * the verified one, so fn only ever sees the bytes the checkpoints sign
 * (CUSTODY_E_PROOF if the directory changed in between). fn's error stops
 * the walk and is returned, *resp then unwritten. fn NULL: logdir_verify().
 */
int logdir_verify_leaves(const char *dir, struct note_vkey *const *vkeys,
    size_t nvkeys, logdir_leaf_fn fn, void *arg, struct logdir_result *resp,
    char *msg, size_t msgsz);

/*
 * The verifier keys that the leaves handed to the logdir_leaf_fn so far
 * hand the log's checkpoints over to (docs/LIFECYCLE.md, "The checkpoint
 * key's handover"), given the keys the auditor trusts, vkeys[0..nvkeys),
 * and the log's origin: *vksp[0..*np) (borrowed from arg, valid until the
 * next call). 0 or an error that stops the verification.
 */
typedef int (*logdir_keys_fn)(void *arg, const char *origin,
    struct note_vkey *const *vkeys, size_t nvkeys,
    struct note_vkey *const **vksp, size_t *np);

/*
 * logdir_verify_leaves() that follows a handover of the checkpoint keys: a
 * checkpoint that none of vkeys signs is, once everything else verified,
 * checked again with vkeys and the keys that keys() names after fn has seen
 * every leaf of the largest checkpoint before it that verified (in size
 * order, so a key announced under one checkpoint verifies the next). The
 * first checkpoint must verify with vkeys. fn sees each leaf once, in seq
 * order, and only leaves under a checkpoint that verified. keys NULL:
 * logdir_verify_leaves().
 */
int logdir_verify_follow(const char *dir, struct note_vkey *const *vkeys,
    size_t nvkeys, logdir_leaf_fn fn, logdir_keys_fn keys, void *arg,
    struct logdir_result *resp, char *msg, size_t msgsz);

#endif
