/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only LD_PRELOAD shim: while the file named by $CUSTODY_FAILSYNC_FLAG
 * exists, fsync() and fdatasync() fail with EIO, as on a dying disk; each
 * failed call appends one byte to $CUSTODY_FAILSYNC_COUNT (if set), so that
 * a test can show that nothing retried the sync.
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);

static int
failing(void)
{
	const char *flag = getenv("CUSTODY_FAILSYNC_FLAG");
	const char *count = getenv("CUSTODY_FAILSYNC_COUNT");
	int fd;

	if (flag == NULL || access(flag, F_OK) != 0)
		return 0;
	if (count != NULL &&
	    (fd = open(count, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		 0600)) >= 0) {
		if (write(fd, "x", 1) != 1)
			errno = 0; /* the count is best effort */
		close(fd);
	}
	errno = EIO;
	return 1;
}

int
fsync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

	return failing() ? -1 : real(fd);
}

int
fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	return failing() ? -1 : real(fd);
}
