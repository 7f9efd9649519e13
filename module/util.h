/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_UTIL_H
#define CUSTODY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Small encoders and parsers shared by the modules. All return 0 or a
 * negative CUSTODY_E_* code and write their outputs only on success.
 */

/* Lower-case hex of in[0..len) into out, which holds 2 * len + 1 bytes. */
void util_hex_encode(const uint8_t *in, size_t len, char *out);

/*
 * Decode exactly outlen bytes from the hex string in (upper or lower case,
 * exactly 2 * outlen digits, nothing else). CUSTODY_E_PARSE otherwise.
 */
int util_hex_decode(const char *in, uint8_t *out, size_t outlen);

/*
 * base64url without padding (RFC 4648 section 5, as JOSE uses it) or standard
 * base64 with padding. *outp is a new NUL-terminated string (free(3) it).
 */
int util_base64url_encode(const uint8_t *in, size_t len, char **outp);
int util_base64_encode(const uint8_t *in, size_t len, char **outp);

/*
 * Standard base64 with padding (RFC 4648 section 4) in canonical form only:
 * a length that is a multiple of 4, at most two '=' at the end and zero
 * unused bits; CUSTODY_E_PARSE otherwise. *outp is new (free(3) it).
 */
int util_base64_decode(
    const char *s, size_t len, uint8_t **outp, size_t *outlenp);

/*
 * Parse a duration: a decimal number followed by one unit, s, m, h or d
 * ("30s", "15m", "24h", "7d"). No sign, no spaces, no other units; the
 * result in seconds must be at least 1 and at most 100 years.
 */
int util_parse_duration(const char *s, int64_t *secondsp);

/*
 * Format seconds as the shortest exact duration in the same syntax ("90s",
 * "15m", "2h", "7d") into buf (at least 24 bytes).
 */
void util_format_duration(int64_t seconds, char *buf, size_t bufsz);

/*
 * Parse an RFC 3339 date-time ("2026-11-23T10:00:00Z", with optional
 * fractional seconds, dropped, and a "Z" or "+HH:MM" offset) into Unix
 * seconds. No leap seconds (":60" is refused). CUSTODY_E_PARSE if malformed.
 */
int util_parse_time(const char *s, int64_t *tp);

/* Unix seconds to RFC 3339 UTC ("2026-11-23T10:00:00Z"); buf >= 21 bytes. */
void util_format_time(int64_t t, char *buf, size_t bufsz);

/*
 * The service's clock: CLOCK_REALTIME, plus an offset that only a test
 * build sets (custodyd-test, CUSTODY_TEST_CLOCK), so that tests can move a
 * running daemon through days of key lifetimes. Everything that dates a
 * leaf, a credential or a lifecycle step reads it; nothing else may set it.
 */
int64_t util_now(void);	   /* Unix seconds */
int64_t util_now_ms(void); /* Unix milliseconds */
void util_now_ts(struct timespec *ts);
void util_clock_set_offset(int64_t ms);

/*
 * A named step of a multi-step protocol (a rotation, a destruction) where a
 * test build may kill the process (CUSTODY_FAILPOINT=name in
 * custodyd-test): raise(SIGKILL) when name is the armed one. Nothing arms a
 * failpoint in the production programs.
 */
void util_failpoint(const char *name);
void util_failpoint_arm(const char *name);

/* Fill buf with len bytes from OpenSSL's CSPRNG; CUSTODY_E_CRYPTO on failure.
 */
int util_random(uint8_t *buf, size_t len);

/*
 * Read the whole file at path, at most max bytes: *bufp is new (free(3) it)
 * and NUL-terminated after its *lenp bytes. CUSTODY_E_NOT_FOUND if it does
 * not exist, CUSTODY_E_TOO_LARGE if it holds more than max bytes,
 * CUSTODY_E_IO (logged) for another failure. Symbolic links are followed;
 * anything but a regular file is CUSTODY_E_IO.
 */
int util_read_file(const char *path, size_t max, uint8_t **bufp, size_t *lenp);

/* write(2) all of buf to fd, retrying short writes and EINTR; CUSTODY_E_IO
 * (errno kept) on failure. */
int util_write_all(int fd, const void *buf, size_t len);

/* fsync the directory holding path, so that a new name in it is durable;
 * CUSTODY_E_IO (logged) on failure. */
int util_sync_parent(const char *path);

/*
 * For a process that holds a PIN (G8): no core dumps, no ptrace by other
 * processes of the same user, and files created private (umask 077).
 */
void util_harden(void);

/*
 * Is s text custody accepts in a name or reason (an agent, owner, task,
 * audience): 1..maxlen bytes of UTF-8 without C0 or C1 control characters?
 * NULL if so, else what is wrong ("is empty", UTIL_TEXT_TOO_LONG, "must be
 * UTF-8 text without control characters"), to follow the field's name.
 */
#define UTIL_TEXT_TOO_LONG "is too long"
const char *util_text_problem(const char *s, size_t maxlen);

#endif
