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
 * checkpoint is kept in the store and, as the same note, outside it: in a
 * file, and as a private CKO_DATA object in the token where the token
 * allows it (labelled "custody checkpoint " + the first 8 bytes of
 * SHA-256(origin) in hex, one per log). A database smaller than, or
 * inconsistent with, either copy is refused (a rolled-back database); the
 * token's copy also catches one restored together with the file.
 */

/*
 * The checkpoint keys hand over (docs/LIFECYCLE.md): a checkpoint is signed
 * by every active checkpoint key and by each retired one during its overlap
 * (until its last_exp, set at its rotation) and after it until a checkpoint
 * signed by its successor exists. Auditors follow the handover from the
 * rotation's leaves (custody audit verify).
 *
 * Has the last checkpoint a signature by the successor of retired
 * checkpoint key k? 1 (or for a key that is not a rotated checkpoint key),
 * else 0: k must then not be destroyed yet.
 */
int checkpoint_handed_over(struct store *st, const struct store_key *k);

/*
 * Sign a checkpoint of the log in st under origin, store it, and write it to
 * outside_path (atomically: a temporary file, fsync, rename, fsync of the
 * directory) and to the token. If the log has not grown since the last
 * checkpoint, that one is returned and *newp is 0. *notep is the note, new and
 * NUL-terminated. Errors: CUSTODY_E_INVALID_ARG (empty log), CUSTODY_E_STATE
 * (the log is smaller than a signed checkpoint), CUSTODY_E_PROOF (inconsistent
 * with one), CUSTODY_E_KEY_NOT_FOUND (no active checkpoint key), and the
 * token's.
 */
int checkpoint_make(struct token *t, struct store *st, const char *origin,
    const char *outside_path, int64_t now, char **notep, size_t *lenp,
    int *newp);

/*
 * Refuse a store that a rolled-back or forked database would show: its tree
 * smaller than, or not consistent with, the last checkpoint it holds, the
 * copy at outside_path or, when t and origin are not NULL, the copy in the
 * token (CUSTODY_E_STATE, CUSTODY_E_PROOF). Also rewrites a copy that is
 * older than the store's last checkpoint. Run at start, with the token
 * before anything is written.
 */
int checkpoint_check(struct store *st, struct token *t, const char *origin,
    const char *outside_path);

/*
 * The verifier keys (vkeys) of the checkpoint keys that sign under origin
 * (active ones, and retired ones in their overlap), one per line, for
 * auditors. *outp is new.
 */
int checkpoint_vkeys(struct store *st, const char *origin, char **outp);

#endif
