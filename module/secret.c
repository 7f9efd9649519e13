/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* MAP_ANONYMOUS, MADV_DONTDUMP, O_NOFOLLOW */
#endif

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "err.h"
#include "log.h"
#include "secret.h"

/*
 * The longest file accepted: the PIN and "\r\n". One more byte is read so
 * that a longer file is seen as such rather than cut short.
 */
#define SECRET_FILE_MAX (SECRET_MAX_LEN + 2)

/*
 * A new secret with room for len bytes and a NUL, in its own anonymous
 * mapping so that it can be locked and kept out of core dumps without
 * touching the malloc heap.
 */
static int
secret_alloc(size_t len, struct secret **outp)
{
	struct secret *s = NULL;
	long pagesz;
	size_t alloc;
	void *p;
	int r;

	if ((pagesz = sysconf(_SC_PAGESIZE)) <= 0)
		pagesz = 4096;
	if (len > SIZE_MAX - (size_t)pagesz)
		return CUSTODY_E_TOO_LARGE;
	alloc =
	    (len + 1 + (size_t)pagesz - 1) / (size_t)pagesz * (size_t)pagesz;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return CUSTODY_E_NOMEM;
	p = mmap(NULL, alloc, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		log_error_f("mmap %zu bytes: %s", alloc, strerror(errno));
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	s->data = p;
	s->alloc = alloc;
	/* A core dump must never hold the PIN (G8): this is not optional. */
	if (madvise(p, alloc, MADV_DONTDUMP) != 0) {
		log_error_f("madvise MADV_DONTDUMP: %s", strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	/*
	 * Keep it out of swap where we can. Containers often run with
	 * RLIMIT_MEMLOCK 0, so a refusal is expected and is not an error.
	 */
	if (mlock(p, alloc) != 0)
		log_debug_f(
		    "mlock: %s (continuing without it)", strerror(errno));
	*outp = s;
	s = NULL;
	r = 0;
out:
	secret_free(s);
	return r;
}

void
secret_free(struct secret *s)
{
	if (s == NULL)
		return;
	if (s->data != NULL) {
		OPENSSL_cleanse(s->data, s->alloc);
		/* munlock fails harmlessly if mlock was refused */
		(void)munlock(s->data, s->alloc);
		(void)munmap(s->data, s->alloc);
	}
	free(s);
}

int
secret_from_bytes(const void *buf, size_t len, struct secret **outp)
{
	struct secret *s = NULL;
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    buf != NULL || len == 0, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(outp != NULL, CUSTODY_E_INVALID_ARG);
	if ((r = secret_alloc(len, &s)) != 0)
		return r;
	if (len > 0)
		memcpy(s->data, buf, len);
	s->data[len] = '\0';
	s->len = len;
	*outp = s;
	return 0;
}

/* Why an open file may not hold a PIN, or 0 if it may. */
static int
secret_check_stat(const char *path, const struct stat *st)
{
	uid_t euid = geteuid();

	if (S_ISDIR(st->st_mode)) {
		log_error_f(
		    "pin file %s: is a directory, not a regular file", path);
		return CUSTODY_E_PIN_FILE;
	}
	if (!S_ISREG(st->st_mode)) {
		log_error_f("pin file %s: is not a regular file", path);
		return CUSTODY_E_PIN_FILE;
	}
	/* Another user could have written the PIN, or can still read it. */
	if (st->st_uid != euid) {
		log_error_f("pin file %s: owned by uid %lu, not %lu; chown it "
			    "to the user custody runs as",
		    path, (unsigned long)st->st_uid, (unsigned long)euid);
		return CUSTODY_E_PIN_FILE;
	}
	if ((st->st_mode & 077) != 0) {
		log_error_f("pin file %s: mode %04o allows group/other access; "
			    "chmod 600 it",
		    path, (unsigned int)(st->st_mode & 07777));
		return CUSTODY_E_PIN_FILE;
	}
	if (st->st_size > SECRET_FILE_MAX) {
		log_error_f("pin file %s: is %lld bytes; a PIN is at most %d "
			    "bytes on one line",
		    path, (long long)st->st_size, SECRET_MAX_LEN);
		return CUSTODY_E_PIN_FILE;
	}
	return 0;
}

/* Read the whole (tiny) file into buf; *lenp == bufsz means "too big". */
static int
secret_read_fd(const char *path, int fd, char *buf, size_t bufsz, size_t *lenp)
{
	size_t off = 0;
	ssize_t n;

	while (off < bufsz) {
		n = read(fd, buf + off, bufsz - off);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error_f(
			    "pin file %s: read: %s", path, strerror(errno));
			return CUSTODY_E_IO;
		}
		off += (size_t)n;
	}
	*lenp = off;
	return 0;
}

int
secret_read_file(const char *path, struct secret **outp)
{
	char buf[SECRET_FILE_MAX + 1];
	struct secret *s = NULL;
	struct stat st;
	size_t len = 0;
	int fd = -1, r;

	CUSTODY_RETURN_VAL_IF_FAIL(path != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(outp != NULL, CUSTODY_E_INVALID_ARG);
	/*
	 * O_NOFOLLOW refuses a symlink as the last component; O_NONBLOCK
	 * keeps a FIFO planted at the path from blocking us before fstat
	 * can refuse it. Every check is then on the open file (no TOCTOU).
	 */
	fd = open(
	    path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP) {
			log_error_f("pin file %s: is a symbolic link; name "
				    "the file itself in pin-file",
			    path);
			r = CUSTODY_E_PIN_FILE;
		} else {
			log_error_f("pin file %s: %s", path, strerror(errno));
			r = CUSTODY_E_IO;
		}
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		log_error_f("pin file %s: fstat: %s", path, strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	if ((r = secret_check_stat(path, &st)) != 0)
		goto out;
	if ((r = secret_read_fd(path, fd, buf, sizeof(buf), &len)) != 0)
		goto out;
	/* The file grew after fstat. */
	if (len > SECRET_FILE_MAX) {
		log_error_f(
		    "pin file %s: longer than %d bytes", path, SECRET_FILE_MAX);
		r = CUSTODY_E_PIN_FILE;
		goto out;
	}
	/* Exactly one line terminator is allowed, and only at the end. */
	if (len >= 2 && buf[len - 2] == '\r' && buf[len - 1] == '\n')
		len -= 2;
	else if (len >= 1 && buf[len - 1] == '\n')
		len -= 1;
	if (len == 0) {
		log_error_f("pin file %s: is empty", path);
		r = CUSTODY_E_PIN_FILE;
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		log_error_f("pin file %s: contains a NUL byte", path);
		r = CUSTODY_E_PIN_FILE;
		goto out;
	}
	if (memchr(buf, '\n', len) != NULL || memchr(buf, '\r', len) != NULL) {
		log_error_f("pin file %s: holds more than one line (or a stray "
			    "carriage return); the PIN must be on one line",
		    path);
		r = CUSTODY_E_PIN_FILE;
		goto out;
	}
	if (len > SECRET_MAX_LEN) {
		log_error_f("pin file %s: PIN is %zu bytes; at most %d", path,
		    len, SECRET_MAX_LEN);
		r = CUSTODY_E_PIN_FILE;
		goto out;
	}
	if ((r = secret_from_bytes(buf, len, &s)) != 0)
		goto out;
	*outp = s;
	s = NULL;
	r = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	secret_free(s);
	if (fd >= 0)
		close(fd);
	return r;
}
