/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"

static void
test_hex_round_trip(void **state)
{
	const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
	uint8_t out[sizeof(in)];
	char hex[2 * sizeof(in) + 1];

	(void)state;
	util_hex_encode(in, sizeof(in), hex);
	assert_string_equal(hex, "00017f80abcdefff");
	assert_int_equal(util_hex_decode(hex, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));
	/* upper case decodes too */
	memset(out, 0, sizeof(out));
	assert_int_equal(
	    util_hex_decode("00017F80ABCDEFFF", out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));
	/* empty */
	util_hex_encode(in, 0, hex);
	assert_string_equal(hex, "");
	assert_int_equal(util_hex_decode("", out, 0), 0);
}

static void
test_hex_bad_input(void **state)
{
	uint8_t out[4] = {0x55, 0x55, 0x55, 0x55};
	const uint8_t untouched[4] = {0x55, 0x55, 0x55, 0x55};

	(void)state;
	assert_int_equal(util_hex_decode("0011223", out, 4), CUSTODY_E_PARSE);
	assert_int_equal(util_hex_decode("001122334", out, 4), CUSTODY_E_PARSE);
	assert_int_equal(util_hex_decode("0011223g", out, 4), CUSTODY_E_PARSE);
	assert_int_equal(util_hex_decode("g0112233", out, 4), CUSTODY_E_PARSE);
	assert_int_equal(util_hex_decode(" 0112233", out, 4), CUSTODY_E_PARSE);
	assert_int_equal(util_hex_decode("0x112233", out, 4), CUSTODY_E_PARSE);
	assert_int_equal(util_hex_decode("", out, 4), CUSTODY_E_PARSE);
	assert_int_equal(util_hex_decode("00", out, 0), CUSTODY_E_PARSE);
	/* outputs are written only on success */
	assert_memory_equal(out, untouched, sizeof(out));
	assert_int_equal(util_hex_decode(NULL, out, 4), CUSTODY_E_INVALID_ARG);
}

static void
check_b64(int (*fn)(const uint8_t *, size_t, char **), const char *in,
    size_t len, const char *want)
{
	char *out = NULL;

	assert_int_equal(fn((const uint8_t *)in, len, &out), 0);
	assert_non_null(out);
	assert_string_equal(out, want);
	free(out);
}

/* RFC 4648 section 10, without padding for base64url. */
static void
test_base64url_rfc4648(void **state)
{
	(void)state;
	check_b64(util_base64url_encode, "", 0, "");
	check_b64(util_base64url_encode, "f", 1, "Zg");
	check_b64(util_base64url_encode, "fo", 2, "Zm8");
	check_b64(util_base64url_encode, "foo", 3, "Zm9v");
	check_b64(util_base64url_encode, "foob", 4, "Zm9vYg");
	check_b64(util_base64url_encode, "fooba", 5, "Zm9vYmE");
	check_b64(util_base64url_encode, "foobar", 6, "Zm9vYmFy");
}

/* The two characters that differ from standard base64. */
static void
test_base64url_alphabet(void **state)
{
	(void)state;
	check_b64(util_base64url_encode, "\xfb\xff", 2, "-_8");
	check_b64(util_base64url_encode, "\xfb\xef\xbe", 3, "----");
	check_b64(util_base64url_encode, "\xff\xff\xff", 3, "____");
	check_b64(util_base64url_encode,
	    "\x00\x10\x83\x10\x51\x87\x20\x92"
	    "\x8b\x30\xd3\x8f\x41\x14\x93\x51\x55\x97\x61\x96\x9b\x71\xd7\x9f"
	    "\x82\x18\xa3\x92\x59\xa7\xa2\x9a\xab\xb2\xdb\xaf\xc3\x1c\xb3\xd3"
	    "\x5d\xb7\xe3\x9e\xbb\xf3\xdf\xbf",
	    48,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
	check_b64(util_base64_encode, "\xfb\xff", 2, "+/8=");
	check_b64(util_base64_encode, "\xff\xff\xff", 3, "////");
}

static void
test_base64_rfc4648(void **state)
{
	(void)state;
	check_b64(util_base64_encode, "", 0, "");
	check_b64(util_base64_encode, "f", 1, "Zg==");
	check_b64(util_base64_encode, "fo", 2, "Zm8=");
	check_b64(util_base64_encode, "foo", 3, "Zm9v");
	check_b64(util_base64_encode, "foob", 4, "Zm9vYg==");
	check_b64(util_base64_encode, "fooba", 5, "Zm9vYmE=");
	check_b64(util_base64_encode, "foobar", 6, "Zm9vYmFy");
}

static void
test_duration_good(void **state)
{
	int64_t s = 0;

	(void)state;
	assert_int_equal(util_parse_duration("30s", &s), 0);
	assert_int_equal(s, 30);
	assert_int_equal(util_parse_duration("15m", &s), 0);
	assert_int_equal(s, 900);
	assert_int_equal(util_parse_duration("24h", &s), 0);
	assert_int_equal(s, 86400);
	assert_int_equal(util_parse_duration("7d", &s), 0);
	assert_int_equal(s, 604800);
	assert_int_equal(util_parse_duration("1s", &s), 0);
	assert_int_equal(s, 1);
	/* 100 years of 365.25 days is the largest accepted */
	assert_int_equal(util_parse_duration("36525d", &s), 0);
	assert_int_equal(s, (int64_t)36525 * 86400);
	assert_int_equal(util_parse_duration("3155760000s", &s), 0);
	assert_int_equal(s, (int64_t)3155760000);
}

static void
test_duration_bad(void **state)
{
	static const char *bad[] = {
	    "",
	    "0s",
	    "-1s",
	    "+1s",
	    "1",
	    "s",
	    "1w",
	    "1.5h",
	    " 1s",
	    "1s ",
	    "1 s",
	    "1ss",
	    "1S",
	    "1m1s",
	    "0x10s",
	    "0d",
	    "99999999999999999999d",
	    "9223372036854775807s",
	    "36526d",
	    "3155760001s",
	    "876601h",
	    "52596001m",
	};
	int64_t s = 42;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (util_parse_duration(bad[i], &s) != CUSTODY_E_PARSE)
			fail_msg("duration '%s' accepted", bad[i]);
		assert_int_equal(s, 42);
	}
	assert_int_equal(util_parse_duration(NULL, &s), CUSTODY_E_INVALID_ARG);
}

static void
test_duration_format(void **state)
{
	static const struct {
		int64_t s;
		const char *want;
	} v[] = {
	    {1, "1s"},
	    {30, "30s"},
	    {59, "59s"},
	    {60, "1m"},
	    {90, "90s"},
	    {900, "15m"},
	    {3600, "1h"},
	    {5400, "90m"},
	    {7200, "2h"},
	    {86400, "1d"},
	    {90000, "25h"},
	    {604800, "7d"},
	    {86401, "86401s"},
	    {(int64_t)36525 * 86400, "36525d"},
	};
	char buf[24];
	int64_t back;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		util_format_duration(v[i].s, buf, sizeof(buf));
		assert_string_equal(buf, v[i].want);
		assert_int_equal(util_parse_duration(buf, &back), 0);
		assert_int_equal(back, v[i].s);
	}
	util_format_duration(0, buf, sizeof(buf));
	assert_string_equal(buf, "0s");
	/* a short buffer is truncated, never overrun */
	util_format_duration(604800, buf, 2);
	assert_string_equal(buf, "7");
}

static void
test_format_time(void **state)
{
	char buf[21];

	(void)state;
	util_format_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	util_format_time(1795428000, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-23T10:00:00Z");
	util_format_time(951782400, buf, sizeof(buf)); /* leap day */
	assert_string_equal(buf, "2000-02-29T00:00:00Z");
	util_format_time(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59Z");
	util_format_time(253402300799, buf, sizeof(buf));
	assert_string_equal(buf, "9999-12-31T23:59:59Z");
	/* no four-digit year: empty, not wrong */
	util_format_time(253402300800, buf, sizeof(buf));
	assert_string_equal(buf, "");
	util_format_time(INT64_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static void
test_random(void **state)
{
	uint8_t a[32], b[32], zero[32];

	(void)state;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memset(zero, 0, sizeof(zero));
	assert_int_equal(util_random(a, sizeof(a)), 0);
	assert_int_equal(util_random(b, sizeof(b)), 0);
	/* 2^-256 chance of a false failure */
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(util_random(a, 0), 0);
}

static void
test_parse_time(void **state)
{
	static const struct {
		const char *in;
		int64_t want; /* -1: refused */
	} cases[] = {
	    {"1970-01-01T00:00:00Z", 0},
	    {"2026-11-23T10:00:00Z", 1795428000},
	    {"2026-11-23t10:00:00z", 1795428000},
	    {"2026-11-23T10:00:00.999Z", 1795428000},
	    {"2026-11-23T11:30:00+01:30", 1795428000},
	    {"2026-11-23T08:00:00-02:00", 1795428000},
	    {"2024-02-29T00:00:00Z", 1709164800},
	    {"2025-02-29T00:00:00Z", -1}, /* not a leap year */
	    {"2100-02-29T00:00:00Z", -1}, /* nor is 2100 */
	    {"2026-11-31T00:00:00Z", -1},
	    {"2026-13-01T00:00:00Z", -1},
	    {"2026-11-23T24:00:00Z", -1},
	    {"2026-11-23T10:60:00Z", -1},
	    {"2026-11-23T10:00:60Z", -1}, /* no leap seconds */
	    {"2026-11-23T10:00:00", -1},  /* no zone */
	    {"2026-11-23 10:00:00Z", -1},
	    {"2026-11-23T10:00:00+0100", -1},
	    {"2026-11-23T10:00:00Z ", -1},
	    {"+026-11-23T10:00:00Z", -1},
	    {"", -1},
	};
	size_t i;
	int64_t t;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = -42;
		if (cases[i].want < 0) {
			if (util_parse_time(cases[i].in, &t) != CUSTODY_E_PARSE)
				fail_msg("'%s' was accepted", cases[i].in);
			assert_int_equal(t, -42);
		} else {
			if (util_parse_time(cases[i].in, &t) != 0)
				fail_msg("'%s' was refused", cases[i].in);
			if (t != cases[i].want)
				fail_msg("'%s': %lld, not %lld", cases[i].in,
				    (long long)t, (long long)cases[i].want);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hex_round_trip),
	    cmocka_unit_test(test_hex_bad_input),
	    cmocka_unit_test(test_base64url_rfc4648),
	    cmocka_unit_test(test_base64url_alphabet),
	    cmocka_unit_test(test_base64_rfc4648),
	    cmocka_unit_test(test_duration_good),
	    cmocka_unit_test(test_duration_bad),
	    cmocka_unit_test(test_duration_format),
	    cmocka_unit_test(test_format_time),
	    cmocka_unit_test(test_parse_time),
	    cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
