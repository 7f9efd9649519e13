/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_LOG_H
#define CUSTODY_LOG_H

#include <stdarg.h>

/*
 * Diagnostic log of the library (not the audit log). The library never prints:
 * it hands each message to the handler the program installed, and drops it
 * when none is installed. Levels are syslog's (LOG_ERR ... LOG_DEBUG).
 * Messages never contain a PIN or key material.
 */
typedef void (*custody_log_fn)(
    int level, const char *func, const char *msg, void *arg);

/* Install fn (NULL: drop everything) with the most verbose level passed. */
void custody_log_set(custody_log_fn fn, int max_level, void *arg);

/*
 * Handlers for programs. custody_log_stderr: "PROG: msg" on stderr, with
 * "warning: ", "error: " or "debug: FUNC: " before msg; arg is PROG (a
 * string that outlives the handler). custody_log_syslog: syslog(3) at the
 * message's level (openlog() first).
 */
void custody_log_stderr(
    int level, const char *func, const char *msg, void *arg);
void custody_log_syslog(
    int level, const char *func, const char *msg, void *arg);

void custody_log(int level, const char *func, const char *errstr,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* _f adds the function name; _fr also appends custody_strerror(r). */
#define log_error_f(...) custody_log(3, __func__, NULL, __VA_ARGS__)
#define log_error_fr(r, ...)                                                   \
	custody_log(3, __func__, custody_strerror(r), __VA_ARGS__)
#define log_warn_f(...)	  custody_log(4, __func__, NULL, __VA_ARGS__)
#define log_notice_f(...) custody_log(5, __func__, NULL, __VA_ARGS__)
#define log_info_f(...)	  custody_log(6, __func__, NULL, __VA_ARGS__)
#define log_debug_f(...)  custody_log(7, __func__, NULL, __VA_ARGS__)

/*
 * Precondition check in the style of p11-kit's return_val_if_fail: a
 * programmer error is logged and the function returns; it never aborts.
 */
#define CUSTODY_RETURN_VAL_IF_FAIL(x, v)                                       \
	do {                                                                   \
		if (!(x)) {                                                    \
			custody_log(                                           \
			    3, __func__, NULL, "precondition failed: %s", #x); \
			return (v);                                            \
		}                                                              \
	} while (0)

#endif
