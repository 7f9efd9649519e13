/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static custody_log_fn log_fn;
static int log_max = 3;
static void *log_arg;

void
custody_log_set(custody_log_fn fn, int max_level, void *arg)
{
	log_fn = fn;
	log_max = max_level;
	log_arg = arg;
}

void
custody_log(
    int level, const char *func, const char *errstr, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (log_fn == NULL || level > log_max)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && errstr != NULL && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", errstr);
	log_fn(level, func, msg, log_arg);
}

void
custody_log_stderr(int level, const char *func, const char *msg, void *arg)
{
	const char *prog = arg != NULL ? arg : "custody";

	if (level >= LOG_DEBUG)
		fprintf(stderr, "%s: debug: %s: %s\n", prog, func, msg);
	else if (level >= LOG_NOTICE)
		fprintf(stderr, "%s: %s\n", prog, msg);
	else if (level >= LOG_WARNING)
		fprintf(stderr, "%s: warning: %s\n", prog, msg);
	else
		fprintf(stderr, "%s: error: %s\n", prog, msg);
}

void
custody_log_syslog(int level, const char *func, const char *msg, void *arg)
{
	(void)arg;
	if (level >= LOG_DEBUG)
		syslog(LOG_DEBUG, "%s: %s", func, msg);
	else
		syslog(level, "%s", msg);
}
