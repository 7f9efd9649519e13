/* SPDX-License-Identifier: Apache-2.0 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "p11uri.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode in[0..len) into out (outsz bytes including the NUL). */
static int
pct_decode(const char *in, size_t len, char *out, size_t outsz)
{
	size_t i, o = 0;
	int hi, lo;

	for (i = 0; i < len; i++) {
		int c = (unsigned char)in[i];

		if (c == '%') {
			if (i + 2 >= len ||
			    (hi = hexval((unsigned char)in[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)in[i + 2])) < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		}
		if (c == 0 || o + 1 >= outsz)
			return -2;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

int
p11uri_parse(const char *uri, struct p11uri *u, char *errbuf, size_t errbufsz)
{
	static const struct {
		const char *name;
		size_t off;
		size_t size;
	} attrs[] = {
	    {"token", offsetof(struct p11uri, token), 33},
	    {"manufacturer", offsetof(struct p11uri, manufacturer), 33},
	    {"model", offsetof(struct p11uri, model), 17},
	    {"serial", offsetof(struct p11uri, serial), 17},
	};
	unsigned seen = 0;
	const char *p, *end, *eq;
	size_t i, nlen;

	if (errbuf != NULL && errbufsz > 0)
		errbuf[0] = '\0';
#define FAIL(...)                                                              \
	do {                                                                   \
		if (errbuf != NULL)                                            \
			snprintf(errbuf, errbufsz, __VA_ARGS__);               \
		return CUSTODY_E_PARSE;                                        \
	} while (0)
	if (uri == NULL || strncmp(uri, "pkcs11:", 7) != 0)
		FAIL("a token URI must start with 'pkcs11:'");
	if (strlen(uri) > 1024)
		FAIL("token URI too long");
	memset(u, 0, sizeof(*u));
	if (strchr(uri, '?') != NULL)
		FAIL("token URI: query attributes (pin-value, pin-source, "
		     "module-path) are not accepted; the PIN comes from "
		     "pin-file and the module from pkcs11-module");
	for (p = uri + 7; *p != '\0'; p = *end == ';' ? end + 1 : end) {
		end = p + strcspn(p, ";");
		if (end == p)
			FAIL("token URI: empty attribute");
		if ((eq = memchr(p, '=', (size_t)(end - p))) == NULL)
			FAIL("token URI: attribute '%.*s' has no value",
			    (int)(end - p), p);
		nlen = (size_t)(eq - p);
		for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
			if (strlen(attrs[i].name) == nlen &&
			    memcmp(attrs[i].name, p, nlen) == 0)
				break;
		if (i == sizeof(attrs) / sizeof(attrs[0])) {
			if (nlen == 7 && memcmp(p, "slot-id", 7) == 0)
				FAIL("token URI: slot-id is not accepted: slot "
				     "numbers change; name the token by its "
				     "label (token=...)");
			FAIL("token URI: unknown attribute '%.*s' (custody "
			     "accepts token, manufacturer, model, serial)",
			    (int)nlen, p);
		}
		if (seen & (1u << i))
			FAIL("token URI: attribute '%s' given twice",
			    attrs[i].name);
		seen |= 1u << i;
		switch (pct_decode(eq + 1, (size_t)(end - eq - 1),
		    (char *)u + attrs[i].off, attrs[i].size)) {
		case 0:
			break;
		case -1:
			FAIL("token URI: bad percent escape in '%s'",
			    attrs[i].name);
		default:
			FAIL("token URI: '%s' is longer than %zu bytes or "
			     "holds a NUL",
			    attrs[i].name, attrs[i].size - 1);
		}
	}
#undef FAIL
	return 0;
}

int
p11uri_field_eq(const unsigned char *field, size_t fieldlen, const char *want)
{
	size_t n = strlen(want), i;

	if (n == 0)
		return 1;
	if (n > fieldlen || memcmp(field, want, n) != 0)
		return 0;
	for (i = n; i < fieldlen; i++)
		if (field[i] != ' ')
			return 0;
	return 1;
}

/* RFC 7512 section 2.3: unreserved and pk11-res-avail characters are left
 * as they are in the path; everything else ('&' included) is encoded. */
static int
unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("-._~:[]@!$'()*+,=", c) != NULL;
}

int
p11uri_format_key(
    const char *label, const uint8_t *id, size_t idlen, char **outp)
{
	size_t n = 7 + 6 + 3 * strlen(label) + 4 + 3 * idlen + 1, o, i;
	char *s;

	if ((s = malloc(n)) == NULL)
		return CUSTODY_E_NOMEM;
	o = (size_t)snprintf(s, n, "pkcs11:token=");
	for (i = 0; label[i] != '\0'; i++) {
		unsigned char c = (unsigned char)label[i];

		if (c != 0 && unreserved(c))
			s[o++] = (char)c;
		else
			o += (size_t)snprintf(s + o, n - o, "%%%02x", c);
	}
	o += (size_t)snprintf(s + o, n - o, ";id=");
	for (i = 0; i < idlen; i++)
		o += (size_t)snprintf(s + o, n - o, "%%%02x", id[i]);
	*outp = s;
	return 0;
}
