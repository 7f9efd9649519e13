/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_SECRET_H
#define CUSTODY_SECRET_H

#include <stddef.h>

/*
 * A secret (a PIN) in memory that is locked (mlock), excluded from core dumps
 * (MADV_DONTDUMP) and wiped when freed. Secrets are only ever read from files
 * (never argv or the environment) and never logged.
 */
struct secret {
	char *data; /* NUL-terminated for convenience; len excludes it */
	size_t len;
	size_t alloc; /* size of the mapping */
};

#define SECRET_MAX_LEN 255 /* PKCS#11 tokens cap PINs at 255 bytes */

/*
 * Read a secret from path. The file must be a regular file (a symlink is
 * refused), owned by the effective uid, with no group or other permission bits
 * (mode 0600 or 0400), hold 1..SECRET_MAX_LEN bytes after one trailing "\n"
 * (or "\r\n") is removed, and contain no NUL or other newline. Returns
 * CUSTODY_E_PIN_FILE (the reason is logged, the content never is) or
 * CUSTODY_E_IO; *outp is new, free it with secret_free().
 */
int secret_read_file(const char *path, struct secret **outp);

/* A new secret holding a copy of buf[0..len) (used by tests). */
int secret_from_bytes(const void *buf, size_t len, struct secret **outp);

/* Wipe and free; NULL-safe. */
void secret_free(struct secret *s);

#endif
