/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of p11uri.c (RFC 7512 token URIs). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "p11uri.h"

static void
test_parse_good(void **state)
{
	struct p11uri u;
	char err[256];

	(void)state;
	assert_int_equal(
	    p11uri_parse("pkcs11:token=custody", &u, err, sizeof(err)), 0);
	assert_string_equal(u.token, "custody");
	assert_string_equal(u.manufacturer, "");
	assert_int_equal(p11uri_parse("pkcs11:", &u, err, sizeof(err)), 0);
	assert_string_equal(u.token, "");
	assert_int_equal(p11uri_parse("pkcs11:token=My%20Token;manufacturer="
				      "SoftHSM%20project;model=SoftHSM%20v2;"
				      "serial=0123abcd",
			     &u, err, sizeof(err)),
	    0);
	assert_string_equal(u.token, "My Token");
	assert_string_equal(u.manufacturer, "SoftHSM project");
	assert_string_equal(u.model, "SoftHSM v2");
	assert_string_equal(u.serial, "0123abcd");
	/* exactly 32 bytes of label fit */
	assert_int_equal(p11uri_parse("pkcs11:token="
				      "0123456789abcdef0123456789abcdef",
			     &u, err, sizeof(err)),
	    0);
}

static void
expect_bad(const char *uri, const char *needle)
{
	struct p11uri u;
	char err[256];

	assert_int_equal(
	    p11uri_parse(uri, &u, err, sizeof(err)), CUSTODY_E_PARSE);
	if (strstr(err, needle) == NULL)
		fail_msg("'%s': message '%s' lacks '%s'", uri, err, needle);
}

static void
test_parse_bad(void **state)
{
	(void)state;
	expect_bad("token=custody", "pkcs11:");
	expect_bad("PKCS11:token=x", "pkcs11:");
	expect_bad("pkcs11:slot-id=3", "slot-id");
	expect_bad("pkcs11:token=x?pin-value=1234", "pin-value");
	expect_bad("pkcs11:token=x;token=y", "twice");
	expect_bad("pkcs11:label=x", "unknown attribute 'label'");
	expect_bad("pkcs11:token", "no value");
	expect_bad("pkcs11:token=x;;model=y", "empty");
	expect_bad("pkcs11:token=a%2", "percent");
	expect_bad("pkcs11:token=a%zz", "percent");
	expect_bad("pkcs11:token=a%00b", "NUL");
	expect_bad(
	    "pkcs11:token=0123456789abcdef0123456789abcdefX", "longer than 32");
	expect_bad("pkcs11:serial=0123456789abcdefX", "longer than 16");
}

static void
test_field_eq(void **state)
{
	const unsigned char f[8] = {'a', 'b', 'c', ' ', ' ', ' ', ' ', ' '};

	(void)state;
	assert_true(p11uri_field_eq(f, 8, "abc"));
	assert_true(p11uri_field_eq(f, 8, ""));
	assert_false(p11uri_field_eq(f, 8, "ab"));
	assert_false(p11uri_field_eq(f, 8, "abcd"));
	assert_false(p11uri_field_eq(f, 8, "abc      "));
}

static void
test_format_key(void **state)
{
	const uint8_t id[4] = {0xa1, 0x00, 0xff, 0x3b};
	struct p11uri u;
	char *s = NULL;

	(void)state;
	assert_int_equal(p11uri_format_key("custody", id, 4, &s), 0);
	assert_string_equal(s, "pkcs11:token=custody;id=%a1%00%ff%3b");
	free(s);
	assert_int_equal(p11uri_format_key("a b;c", id, 1, &s), 0);
	assert_string_equal(s, "pkcs11:token=a%20b%3bc;id=%a1");
	free(s);
	/* what is printed for a token parses back to the same label */
	assert_int_equal(p11uri_format_key("x y", id, 0, &s), 0);
	s[strlen(s) - 4] = '\0'; /* drop ";id=" */
	assert_int_equal(p11uri_parse(s, &u, NULL, 0), 0);
	assert_string_equal(u.token, "x y");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_field_eq),
	    cmocka_unit_test(test_format_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
