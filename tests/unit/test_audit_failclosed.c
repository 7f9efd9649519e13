/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fail closed (G2): run with tests/failsync.c preloaded. Once an fsync
 * fails, the commit fails, the log accepts no append again, the sync is
 * never retried, and what was durable before is all a restart finds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit.h"
#include "err.h"
#include "testutil.h"

static long
file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

static void
test_fsync_failure_stops_the_log(void **state)
{
	char dir[64], db[96], flag[96], count[96];
	struct audit *a = NULL;
	json_t *e = json_pack("{s:s}", "event", "credential.jwt");
	uint64_t seq = 0;
	long failed_syncs;
	FILE *fl;
	int i;

	(void)state;
	assert_int_equal(
	    testutil_mkdtemp("custody-failsync", dir, sizeof(dir)), 0);
	snprintf(db, sizeof(db), "%s/custody.db", dir);
	snprintf(flag, sizeof(flag), "%s/fail", dir);
	snprintf(count, sizeof(count), "%s/count", dir);
	setenv("CUSTODY_FAILSYNC_FLAG", flag, 1);
	setenv("CUSTODY_FAILSYNC_COUNT", count, 1);

	assert_int_equal(audit_open(db, &a), 0);
	assert_int_equal(audit_append(a, e, NULL, NULL, &seq, NULL, NULL), 0);
	assert_int_equal(seq, 0);
	assert_int_equal(file_size(count), 0);

	/* the disk starts failing: the append is not reported durable */
	assert_non_null(fl = fopen(flag, "w"));
	fclose(fl);
	assert_int_equal(audit_append(a, e, NULL, NULL, &seq, NULL, NULL),
	    CUSTODY_E_LOG_FAILED);
	assert_true(audit_failed(a));
	failed_syncs = file_size(count);
	if (failed_syncs < 1)
		fail_msg("the shim saw no fsync: is it preloaded?");

	/* the disk recovers: the log still refuses, and syncs nothing */
	unlink(flag);
	for (i = 0; i < 5; i++)
		assert_int_equal(
		    audit_append(a, e, NULL, NULL, &seq, NULL, NULL),
		    CUSTODY_E_LOG_FAILED);
	assert_true(audit_failed(a));
	assert_int_equal(audit_size(a), 1);
	audit_close(a);
	assert_int_equal(file_size(count), failed_syncs);

	/* a restart finds the durable prefix and goes on from it */
	assert_int_equal(audit_open(db, &a), 0);
	assert_int_equal(audit_size(a), 1);
	assert_int_equal(audit_append(a, e, NULL, NULL, &seq, NULL, NULL), 0);
	assert_int_equal(seq, 1);
	audit_close(a);
	json_decref(e);
	testutil_rmtree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fsync_failure_stops_the_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
