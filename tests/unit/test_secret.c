/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* mkdtemp, nftw, mkfifo */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <sys/types.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "testutil.h"
#include "log.h"
#include "secret.h"

/* What the module logged during the current test. */
static char logged[8192];

static void
log_capture(int level, const char *func, const char *msg, void *arg)
{
	size_t n = strlen(logged);

	(void)level;
	(void)func;
	(void)arg;
	snprintf(logged + n, sizeof(logged) - n, "%s\n", msg);
}

struct fixture {
	char dir[64];
};

static int
setup(void **state)
{
	struct fixture *f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_secret.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	logged[0] = '\0';
	custody_log_set(log_capture, 7, NULL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	custody_log_set(NULL, 0, NULL);
	testutil_rmtree(f->dir);
	free(f);
	return 0;
}

/* Create dir/name holding buf[0..len) with exactly the given mode. */
static const char *
mkfile(struct fixture *f, const char *name, const void *buf, size_t len,
    mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	return path;
}

static void
expect_good(struct fixture *f, const char *name, const char *content,
    size_t clen, mode_t mode, const char *want, size_t wantlen)
{
	struct secret *s = NULL;
	const char *path = mkfile(f, name, content, clen, mode);
	long pagesz = sysconf(_SC_PAGESIZE);

	assert_int_equal(secret_read_file(path, &s), 0);
	assert_non_null(s);
	assert_int_equal(s->len, wantlen);
	assert_memory_equal(s->data, want, wantlen);
	assert_int_equal(s->data[s->len], '\0');
	assert_true(s->alloc > s->len);
	assert_int_equal(s->alloc % (size_t)pagesz, 0);
	secret_free(s);
}

/* Refused with code want, logging why, never the content. */
static void
expect_refused(const char *path, int want, const char *why)
{
	struct secret *s = (struct secret *)0x1;

	logged[0] = '\0';
	assert_int_equal(secret_read_file(path, &s), want);
	assert_ptr_equal(s, (struct secret *)0x1); /* untouched */
	if (strstr(logged, why) == NULL)
		fail_msg("log '%s' lacks '%s'", logged, why);
	assert_non_null(strstr(logged, path));
	assert_null(strstr(logged, "S3cr3t"));
}

static void
test_good_files(void **state)
{
	struct fixture *f = *state;

	expect_good(f, "a", "S3cr3t-1234\n", 12, 0600, "S3cr3t-1234", 11);
	expect_good(f, "b", "S3cr3t-1234", 11, 0600, "S3cr3t-1234", 11);
	expect_good(f, "c", "S3cr3t-1234\r\n", 13, 0600, "S3cr3t-1234", 11);
	expect_good(f, "d", "S3cr3t-1234\n", 12, 0400, "S3cr3t-1234", 11);
	expect_good(f, "e", "S3cr3t-1234", 11, 0400, "S3cr3t-1234", 11);
	expect_good(f, "f", "S3cr3t-1234\r\n", 13, 0400, "S3cr3t-1234", 11);
	/* inner and outer spaces are part of the PIN */
	expect_good(f, "g", " a b \n", 6, 0600, " a b ", 5);
	expect_good(f, "h", "1\n", 2, 0600, "1", 1);
}

static void
test_longest_pin(void **state)
{
	struct fixture *f = *state;
	char buf[SECRET_MAX_LEN + 3];

	memset(buf, 'x', sizeof(buf));
	expect_good(f, "max", buf, SECRET_MAX_LEN, 0600, buf, SECRET_MAX_LEN);
	buf[SECRET_MAX_LEN] = '\r';
	buf[SECRET_MAX_LEN + 1] = '\n';
	expect_good(
	    f, "maxcrlf", buf, SECRET_MAX_LEN + 2, 0600, buf, SECRET_MAX_LEN);
	memset(buf, 'x', sizeof(buf));
	buf[SECRET_MAX_LEN + 1] = '\n';
	expect_refused(mkfile(f, "over", buf, SECRET_MAX_LEN + 2, 0600),
	    CUSTODY_E_PIN_FILE, "at most 255");
	expect_refused(mkfile(f, "over2", buf, SECRET_MAX_LEN + 1, 0600),
	    CUSTODY_E_PIN_FILE, "at most 255");
}

static void
test_refused_mode(void **state)
{
	struct fixture *f = *state;

	expect_refused(mkfile(f, "m644", "S3cr3t\n", 7, 0644),
	    CUSTODY_E_PIN_FILE,
	    "mode 0644 allows group/other access; chmod 600 it");
	expect_refused(mkfile(f, "m640", "S3cr3t\n", 7, 0640),
	    CUSTODY_E_PIN_FILE, "mode 0640 allows group/other access");
	expect_refused(mkfile(f, "m604", "S3cr3t\n", 7, 0604),
	    CUSTODY_E_PIN_FILE, "mode 0604");
	expect_refused(mkfile(f, "m610", "S3cr3t\n", 7, 0610),
	    CUSTODY_E_PIN_FILE, "mode 0610");
}

static void
test_refused_symlink(void **state)
{
	struct fixture *f = *state;
	char link[128], target[128];

	snprintf(target, sizeof(target), "%s",
	    mkfile(f, "target", "S3cr3t\n", 7, 0600));
	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(target, link), 0);
	expect_refused(link, CUSTODY_E_PIN_FILE, "is a symbolic link");
	/* the target itself is fine */
	expect_good(f, "target2", "S3cr3t\n", 7, 0600, "S3cr3t", 6);
}

static void
test_refused_not_regular(void **state)
{
	struct fixture *f = *state;
	char path[128];

	snprintf(path, sizeof(path), "%s/dir", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	expect_refused(path, CUSTODY_E_PIN_FILE, "is a directory");
	/* a FIFO must be refused, not waited on */
	snprintf(path, sizeof(path), "%s/fifo", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	expect_refused(path, CUSTODY_E_PIN_FILE, "not a regular file");
}

static void
test_refused_content(void **state)
{
	struct fixture *f = *state;
	char big[300];

	expect_refused(
	    mkfile(f, "empty", "", 0, 0600), CUSTODY_E_PIN_FILE, "is empty");
	expect_refused(
	    mkfile(f, "nl", "\n", 1, 0600), CUSTODY_E_PIN_FILE, "is empty");
	expect_refused(
	    mkfile(f, "crlf", "\r\n", 2, 0600), CUSTODY_E_PIN_FILE, "is empty");
	expect_refused(mkfile(f, "nul", "S3cr3t\0x\n", 9, 0600),
	    CUSTODY_E_PIN_FILE, "NUL byte");
	expect_refused(mkfile(f, "two", "S3cr3t\nS3cr3t\n", 14, 0600),
	    CUSTODY_E_PIN_FILE, "more than one line");
	expect_refused(mkfile(f, "twonl", "S3cr3t\n\n", 8, 0600),
	    CUSTODY_E_PIN_FILE, "more than one line");
	expect_refused(mkfile(f, "cr", "S3cr3t\r", 7, 0600), CUSTODY_E_PIN_FILE,
	    "carriage return");
	expect_refused(mkfile(f, "midcr", "S3cr3t\rx", 8, 0600),
	    CUSTODY_E_PIN_FILE, "carriage return");
	memset(big, 'S', sizeof(big));
	memcpy(big, "S3cr3t", 6);
	expect_refused(mkfile(f, "big", big, sizeof(big), 0600),
	    CUSTODY_E_PIN_FILE, "is 300 bytes");
}

static void
test_missing_file(void **state)
{
	struct fixture *f = *state;
	char path[128];

	snprintf(path, sizeof(path), "%s/nonexistent", f->dir);
	expect_refused(path, CUSTODY_E_IO, "No such file or directory");
	snprintf(path, sizeof(path), "%s/nonexistent/x", f->dir);
	expect_refused(path, CUSTODY_E_IO, "No such file or directory");
}

static void
test_refused_owner(void **state)
{
	struct fixture *f = *state;
	const char *path;

	if (geteuid() != 0) {
		/* only root can give a file away */
		skip();
	}
	path = mkfile(f, "owner", "S3cr3t\n", 7, 0600);
	assert_int_equal(chown(path, 65534, 65534), 0);
	expect_refused(path, CUSTODY_E_PIN_FILE, "owned by uid 65534, not 0");
}

static void
test_from_bytes(void **state)
{
	struct secret *s = NULL;

	(void)state;
	assert_int_equal(secret_from_bytes("abc", 3, &s), 0);
	assert_int_equal(s->len, 3);
	assert_string_equal(s->data, "abc");
	secret_free(s);
	s = NULL;
	assert_int_equal(secret_from_bytes(NULL, 0, &s), 0);
	assert_int_equal(s->len, 0);
	assert_string_equal(s->data, "");
	secret_free(s);
	secret_free(NULL);
	assert_int_equal(secret_from_bytes(NULL, 1, &s), CUSTODY_E_INVALID_ARG);
	assert_int_equal(secret_read_file(NULL, &s), CUSTODY_E_INVALID_ARG);
}

/*
 * G8: the mapping that holds a secret is excluded from core dumps. The
 * kernel shows MADV_DONTDUMP as "dd" in the VmFlags of /proc/self/smaps.
 */
static void
test_not_dumpable(void **state)
{
	struct secret *s = NULL;
	unsigned long lo, hi, addr;
	char line[512];
	int inside = 0, found = 0;
	FILE *fp;

	(void)state;
	if ((fp = fopen("/proc/self/smaps", "re")) == NULL) {
		skip();
	}
	assert_int_equal(secret_from_bytes("S3cr3t", 6, &s), 0);
	addr = (unsigned long)(uintptr_t)s->data;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = addr >= lo && addr < hi;
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			found = 1;
			assert_non_null(strstr(line, " dd"));
		}
	}
	fclose(fp);
	assert_true(found);
	secret_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_good_files, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_longest_pin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refused_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refused_not_regular, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refused_content, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_refused_owner, setup, teardown),
	    cmocka_unit_test(test_from_bytes),
	    cmocka_unit_test(test_not_dumpable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
