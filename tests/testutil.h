/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_TESTUTIL_H
#define CUSTODY_TESTUTIL_H

#include <stddef.h>

/* Helpers shared by the tests (not part of libcustody). */

/*
 * Make a private directory /tmp/<prefix>-XXXXXX and write its path into buf
 * (bufsz >= strlen(prefix) + 13). Returns 0, or -1 with errno set.
 */
int testutil_mkdtemp(const char *prefix, char *buf, size_t bufsz);

/*
 * The whole file at path, NUL-terminated, in a new buffer (free(3) it), its
 * length in *lenp if lenp is not NULL; NULL if it cannot be read.
 */
char *testutil_read_file(const char *path, size_t *lenp);

/* Remove dir and everything below it (symlinks are removed, not followed). */
void testutil_rmtree(const char *dir);

#endif
