/* SPDX-License-Identifier: Apache-2.0 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datadir.h"
#include "err.h"
#include "log.h"

char *
datadir_path(const char *path, const char *name)
{
	char *s;

	if (asprintf(&s, "%s/%s", path, name) < 0)
		return NULL;
	return s;
}

static int
check_dir(const char *path, const struct stat *st)
{
	if (!S_ISDIR(st->st_mode)) {
		log_error_f("%s is not a directory", path);
		return CUSTODY_E_CONFIG;
	}
	if (st->st_uid != geteuid()) {
		log_error_f("%s is owned by uid %lu, not %lu", path,
		    (unsigned long)st->st_uid, (unsigned long)geteuid());
		return CUSTODY_E_CONFIG;
	}
	/* it holds the store and, with SoftHSM2, the token itself */
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		log_error_f(
		    "%s has mode %03o: it must be private; chmod 700 it", path,
		    (unsigned)(st->st_mode & 0777));
		return CUSTODY_E_CONFIG;
	}
	return 0;
}

int
datadir_prepare(const char *path)
{
	struct stat st;
	char *p, *q;
	int r = 0;

	if (path == NULL || path[0] != '/')
		return CUSTODY_E_INVALID_ARG;
	if (lstat(path, &st) == 0)
		return check_dir(path, &st);
	if ((p = strdup(path)) == NULL)
		return CUSTODY_E_NOMEM;
	/* parents with default permissions, the directory itself private */
	for (q = p + 1; (q = strchr(q, '/')) != NULL; q++) {
		*q = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			log_error_f("mkdir %s: %s", p, strerror(errno));
			r = CUSTODY_E_IO;
			goto out;
		}
		*q = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		log_error_f("mkdir %s: %s", path, strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	if (lstat(path, &st) != 0) {
		log_error_f("stat %s: %s", path, strerror(errno));
		r = CUSTODY_E_IO;
		goto out;
	}
	r = check_dir(path, &st);
out:
	free(p);
	return r;
}

int
datadir_lock(const char *path, int *fdp)
{
	char *lp;
	int fd;

	if ((lp = datadir_path(path, DATADIR_LOCK_FILE)) == NULL)
		return CUSTODY_E_NOMEM;
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;

		log_error_f("open %s: %s", lp, strerror(e));
		free(lp);
		return e == ENOENT ? CUSTODY_E_NOT_INITIALIZED : CUSTODY_E_IO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		close(fd);
		if (e == EWOULDBLOCK) {
			log_error_f("%s is held by another process", lp);
			free(lp);
			return CUSTODY_E_LOCKED;
		}
		log_error_f("flock %s: %s", lp, strerror(e));
		free(lp);
		return CUSTODY_E_IO;
	}
	free(lp);
	*fdp = fd;
	return 0;
}

void
datadir_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}
