/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* gmtime_r */
#endif

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "err.h"
#include "log.h"
#include "util.h"

/*
 * 100 years of 365.25 days. The bound keeps every duration, and any sum of a
 * duration with a present-day Unix time, far away from int64_t overflow.
 */
#define DURATION_MAX ((int64_t)36525 * 86400)

static const char hexdigits[] = "0123456789abcdef";

void
util_hex_encode(const uint8_t *in, size_t len, char *out)
{
	size_t i;

	if (out == NULL)
		return;
	for (i = 0; i < len; i++) {
		out[2 * i] = hexdigits[in[i] >> 4];
		out[2 * i + 1] = hexdigits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
util_hex_decode(const char *in, uint8_t *out, size_t outlen)
{
	size_t i;

	CUSTODY_RETURN_VAL_IF_FAIL(in != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(
	    out != NULL || outlen == 0, CUSTODY_E_INVALID_ARG);
	if (outlen > SIZE_MAX / 2)
		return CUSTODY_E_PARSE;
	/* strnlen: never read past what a well-formed input could hold */
	if (strnlen(in, 2 * outlen + 1) != 2 * outlen)
		return CUSTODY_E_PARSE;
	/* Check every digit first so that out is written only on success. */
	for (i = 0; i < 2 * outlen; i++)
		if (hexval(in[i]) < 0)
			return CUSTODY_E_PARSE;
	for (i = 0; i < outlen; i++)
		out[i] =
		    (uint8_t)(hexval(in[2 * i]) << 4 | hexval(in[2 * i + 1]));
	return 0;
}

static int
base64_any(
    const uint8_t *in, size_t len, const char *alphabet, int pad, char **outp)
{
	char *out = NULL, *p;
	size_t i, olen;
	uint32_t v;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    in != NULL || len == 0, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(outp != NULL, CUSTODY_E_INVALID_ARG);
	if (len / 3 >= (SIZE_MAX - 1) / 4 - 1)
		return CUSTODY_E_TOO_LARGE;
	olen = (len + 2) / 3 * 4;
	if ((out = malloc(olen + 1)) == NULL)
		return CUSTODY_E_NOMEM;
	p = out;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		*p++ = alphabet[v >> 18 & 0x3f];
		*p++ = alphabet[v >> 12 & 0x3f];
		*p++ = alphabet[v >> 6 & 0x3f];
		*p++ = alphabet[v & 0x3f];
	}
	if (len - i == 1) {
		v = (uint32_t)in[i] << 16;
		*p++ = alphabet[v >> 18 & 0x3f];
		*p++ = alphabet[v >> 12 & 0x3f];
		if (pad) {
			*p++ = '=';
			*p++ = '=';
		}
	} else if (len - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*p++ = alphabet[v >> 18 & 0x3f];
		*p++ = alphabet[v >> 12 & 0x3f];
		*p++ = alphabet[v >> 6 & 0x3f];
		if (pad)
			*p++ = '=';
	}
	*p = '\0';
	*outp = out;
	return 0;
}

int
util_base64url_encode(const uint8_t *in, size_t len, char **outp)
{
	return base64_any(in, len,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
	    0, outp);
}

int
util_base64_encode(const uint8_t *in, size_t len, char **outp)
{
	return base64_any(in, len,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
	    1, outp);
}

static int
b64val(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

int
util_base64_decode(const char *s, size_t len, uint8_t **outp, size_t *outlenp)
{
	uint8_t *out = NULL;
	size_t i, o = 0, pad = 0;
	uint32_t v = 0;
	int d;

	if (len == 0 || len % 4 != 0)
		return CUSTODY_E_PARSE;
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	if ((out = malloc(len / 4 * 3)) == NULL)
		return CUSTODY_E_NOMEM;
	for (i = 0; i < len; i++) {
		if (i >= len - pad)
			d = 0;
		else if ((d = b64val(s[i])) < 0) {
			free(out);
			return CUSTODY_E_PARSE;
		}
		v = v << 6 | (uint32_t)d;
		if (i % 4 == 3) {
			out[o++] = (uint8_t)(v >> 16);
			out[o++] = (uint8_t)(v >> 8);
			out[o++] = (uint8_t)v;
			v = 0;
		}
	}
	/* the bits that padding covers must be zero (one encoding per value) */
	if ((pad == 1 && out[o - 1] != 0) ||
	    (pad == 2 && (out[o - 1] != 0 || out[o - 2] != 0))) {
		free(out);
		return CUSTODY_E_PARSE;
	}
	*outp = out;
	*outlenp = o - pad;
	return 0;
}

int
util_parse_duration(const char *s, int64_t *secondsp)
{
	const char *p;
	int64_t n = 0, unit;

	CUSTODY_RETURN_VAL_IF_FAIL(s != NULL, CUSTODY_E_INVALID_ARG);
	CUSTODY_RETURN_VAL_IF_FAIL(secondsp != NULL, CUSTODY_E_INVALID_ARG);
	/* Digits by hand: strtoll would accept a sign and leading spaces. */
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (*p - '0');
		/* Stop before overflow; anything this big is over the cap. */
		if (n > DURATION_MAX)
			return CUSTODY_E_PARSE;
	}
	if (p == s)
		return CUSTODY_E_PARSE;
	switch (*p) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return CUSTODY_E_PARSE;
	}
	if (p[1] != '\0')
		return CUSTODY_E_PARSE;
	if (n < 1 || n > DURATION_MAX / unit)
		return CUSTODY_E_PARSE;
	*secondsp = n * unit;
	return 0;
}

void
util_format_duration(int64_t seconds, char *buf, size_t bufsz)
{
	static const struct {
		int64_t size;
		char unit;
	} units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}};
	size_t i;

	if (buf == NULL || bufsz == 0)
		return;
	if (seconds != 0) {
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (seconds % units[i].size == 0) {
				snprintf(buf, bufsz, "%lld%c",
				    (long long)(seconds / units[i].size),
				    units[i].unit);
				return;
			}
		}
	}
	snprintf(buf, bufsz, "%llds", (long long)seconds);
}

/* n decimal digits at s, exactly; -1 if any is not a digit. */
static int
digits(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int
util_parse_time(const char *s, int64_t *tp)
{
	static const int mdays[] = {
	    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	struct tm tm;
	const char *p;
	int y, mo, d, h, mi, sec, leap, off = 0, oh, om;
	time_t t;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    s != NULL && tp != NULL, CUSTODY_E_INVALID_ARG);
	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return CUSTODY_E_PARSE;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	sec = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 ||
	    mi > 59 || sec < 0 || sec > 59)
		return CUSTODY_E_PARSE;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mo - 1] + (mo == 2 && leap))
		return CUSTODY_E_PARSE;
	p = s + 19;
	if (*p == '.') /* fractions are allowed and dropped */
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		off = 0;
	else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
		 (oh = digits(p + 1, 2)) >= 0 && oh <= 23 &&
		 (om = digits(p + 4, 2)) >= 0 && om <= 59)
		off = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
	else
		return CUSTODY_E_PARSE;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1 && y != 1969)
		return CUSTODY_E_PARSE;
	*tp = (int64_t)t - off;
	return 0;
}

void
util_format_time(int64_t t, char *buf, size_t bufsz)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (buf == NULL || bufsz == 0)
		return;
	/*
	 * RFC 3339 has four-digit years; outside 0000..9999 there is no
	 * right answer, so the caller gets an empty string, not a wrong one.
	 */
	if ((int64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
	    tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
		log_error_f("time %lld out of range", (long long)t);
		buf[0] = '\0';
		return;
	}
	snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec);
}

int
util_random(uint8_t *buf, size_t len)
{
	const char *why;
	size_t off, n;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    buf != NULL || len == 0, CUSTODY_E_INVALID_ARG);
	/* RAND_bytes takes an int */
	for (off = 0; off < len; off += n) {
		n = len - off > INT_MAX ? INT_MAX : len - off;
		if (RAND_bytes(buf + off, (int)n) != 1) {
			if ((why = ERR_reason_error_string(
				 ERR_peek_last_error())) == NULL)
				why = "no reason given";
			log_error_f("RAND_bytes failed: %s", why);
			ERR_clear_error();
			/* do not hand back a half-random buffer */
			OPENSSL_cleanse(buf, len);
			return CUSTODY_E_CRYPTO;
		}
	}
	return 0;
}

int
util_read_file(const char *path, size_t max, uint8_t **bufp, size_t *lenp)
{
	struct stat sb;
	uint8_t *buf = NULL;
	size_t len = 0, cap;
	ssize_t n;
	int fd, r = CUSTODY_E_IO;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    path != NULL && max < SIZE_MAX && bufp != NULL && lenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	/* O_NONBLOCK: a FIFO put in place of a file must not hang us */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) <
	    0) {
		if (errno == ENOENT)
			return CUSTODY_E_NOT_FOUND;
		log_error_f("%s: %s", path, strerror(errno));
		return CUSTODY_E_IO;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		log_error_f("%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)sb.st_size > max) {
		r = CUSTODY_E_TOO_LARGE;
		goto out;
	}
	/* one byte more than its size shows a file that grew meanwhile */
	cap = (size_t)sb.st_size + 1;
	if ((buf = malloc(cap + 1)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	while (len < cap) {
		if ((n = read(fd, buf + len, cap - len)) < 0) {
			if (errno == EINTR)
				continue;
			log_error_f("%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == cap) {
		log_error_f("%s: changed while it was read", path);
		goto out;
	}
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int
util_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t w;

	while (len > 0) {
		if ((w = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return CUSTODY_E_IO;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
util_sync_parent(const char *path)
{
	char *copy = NULL;
	int fd = -1, r;

	CUSTODY_RETURN_VAL_IF_FAIL(path != NULL, CUSTODY_E_INVALID_ARG);
	if ((copy = strdup(path)) == NULL)
		return CUSTODY_E_NOMEM;
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
		-1 ||
	    fsync(fd) == -1) {
		log_error_f("sync directory of %s: %s", path, strerror(errno));
		r = CUSTODY_E_IO;
	} else
		r = 0;
	if (fd != -1)
		close(fd);
	free(copy);
	return r;
}

void
util_harden(void)
{
	struct rlimit rl = {0, 0};

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	umask(077);
}

const char *
util_text_problem(const char *s, size_t maxlen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len, i, n;

	if (s == NULL || (len = strlen(s)) == 0)
		return "is empty";
	if (len > maxlen)
		return UTIL_TEXT_TOO_LONG;
	for (i = 0; i < len; i += n) {
		unsigned c = p[i];
		unsigned long cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				goto bad;
			n = 1;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 4, cp = c & 0x07;
		else
			goto bad;
		if (i + n > len)
			goto bad;
		for (size_t j = 1; j < n; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				goto bad;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if ((n == 3 &&
			(cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0x80 && cp <= 0x9f))
			goto bad;
	}
	return NULL;
bad:
	return "must be UTF-8 text without control characters";
}

static atomic_llong clock_offset_ms;

void
util_now_ts(struct timespec *ts)
{
	int64_t off =
	    atomic_load_explicit(&clock_offset_ms, memory_order_relaxed);

	clock_gettime(CLOCK_REALTIME, ts);
	if (off != 0) {
		int64_t ns = (int64_t)ts->tv_nsec + off % 1000 * 1000000;

		ts->tv_sec += off / 1000 + ns / 1000000000;
		ts->tv_nsec = ns % 1000000000;
		if (ts->tv_nsec < 0) {
			ts->tv_nsec += 1000000000;
			ts->tv_sec--;
		}
	}
}

int64_t
util_now_ms(void)
{
	struct timespec ts;

	util_now_ts(&ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
util_now(void)
{
	struct timespec ts;

	util_now_ts(&ts);
	return (int64_t)ts.tv_sec;
}

void
util_clock_set_offset(int64_t ms)
{
	atomic_store(&clock_offset_ms, ms);
}

static _Atomic(const char *) failpoint_armed;

void
util_failpoint_arm(const char *name)
{
	atomic_store(&failpoint_armed, name);
}

void
util_failpoint(const char *name)
{
	const char *armed = atomic_load(&failpoint_armed);

	if (armed != NULL && strcmp(armed, name) == 0) {
		log_warn_f("failpoint %s: killing the process", name);
		raise(SIGKILL);
	}
}
