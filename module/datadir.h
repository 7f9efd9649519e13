/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_DATADIR_H
#define CUSTODY_DATADIR_H

/*
 * The data directory: private (mode 0700, owned by the service user) and
 * locked while a process uses it in direct mode, so that the CLI and the
 * daemon never write the store or the token at the same time.
 */

#define DATADIR_LOCK_FILE  "custody.lock"
#define DATADIR_STORE_FILE "custody.db"

/*
 * Create path (and missing parents) with mode 0700, or check an existing one:
 * it must be a directory owned by the effective uid with no group or other
 * permission at all. CUSTODY_E_IO or CUSTODY_E_CONFIG (reason logged).
 */
int datadir_prepare(const char *path);

/*
 * Take an exclusive, non-blocking lock on path/custody.lock (created 0600).
 * CUSTODY_E_LOCKED if another process holds it; *fdp is the lock's fd,
 * released by datadir_unlock() or at exit.
 */
int datadir_lock(const char *path, int *fdp);
void datadir_unlock(int fd);

/* path "/" name, new string; NULL on allocation failure. */
char *datadir_path(const char *path, const char *name);

#endif
