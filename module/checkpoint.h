/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_CHECKPOINT_H
#define CUSTODY_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "token.h"

/*
 * Signed checkpoints of the audit log (FORMATS.md section 3): the C2SP
 * tlog-checkpoint of the tree as it is, in a C2SP signed note with one
 * signature line per active key of purpose "checkpoint" (Ed25519 and/or
 * ECDSA P-256), signed in the token. Those keys sign nothing else (G5).
 *
 * A checkpoint is never smaller than the last one signed, never a second
 * root for a size already signed, and never a tree that is not consistent
 * (RFC 9162 consistency proof, verified) with the last one (G3). The last
 * checkpoint is kept in the store and, as the same note, in a file outside
 * it: a database smaller than, or inconsistent with, that file is refused
 * (a rolled-back database).
 */

/*
 * Sign a checkpoint of the log in st under origin, store it, and write it to
 * outside_path (atomically: a temporary file, fsync, rename, fsync of the
 * directory). If the log has not grown since the last checkpoint, that one
 * is returned and *newp is 0. *notep is the note, new and NUL-terminated.
 * Errors: CUSTODY_E_INVALID_ARG (empty log), CUSTODY_E_STATE (the log is
 * smaller than a signed checkpoint), CUSTODY_E_PROOF (inconsistent with
 * one), CUSTODY_E_KEY_NOT_FOUND (no active checkpoint key), and the token's.
 */
int checkpoint_make(struct token *t, struct store *st, const char *origin,
    const char *outside_path, int64_t now, char **notep, size_t *lenp,
    int *newp);

/*
 * Refuse a store that a rolled-back or forked database would show: its tree
 * smaller than, or not consistent with, the last checkpoint it holds or the
 * copy at outside_path (CUSTODY_E_STATE, CUSTODY_E_PROOF). Also rewrites
 * that copy if it is older than the store's last checkpoint. Run at start.
 */
int checkpoint_check(struct store *st, const char *outside_path);

/*
 * The verifier keys (vkeys) of the active checkpoint keys under origin,
 * one per line, for auditors. *outp is new.
 */
int checkpoint_vkeys(struct store *st, const char *origin, char **outp);

#endif
