/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_P11URI_H
#define CUSTODY_P11URI_H

#include <stddef.h>
#include <stdint.h>

/*
 * RFC 7512 PKCS#11 URIs that name a token ("pkcs11:token=custody") and the
 * URIs custody prints for its keys. A token is found by its label and the
 * other token attributes, never by slot id (SoftHSM2 renumbers slots), so
 * slot-id is refused; so is pin-value, since a PIN never travels in a URI
 * (G8). Attribute values are percent-decoded and limited to the sizes of the
 * CK_TOKEN_INFO fields.
 */
struct p11uri {
	char token[33]; /* label; "" = any */
	char manufacturer[33];
	char model[17];
	char serial[17];
};

/*
 * Parse uri. CUSTODY_E_PARSE with a message in errbuf (if not NULL) naming
 * the attribute for: a missing "pkcs11:" scheme, an unknown or repeated
 * attribute, a bad percent escape, a value too long, slot-id or pin-value.
 */
int p11uri_parse(
    const char *uri, struct p11uri *u, char *errbuf, size_t errbufsz);

/*
 * Does a CK_TOKEN_INFO field (blank-padded, not NUL-terminated, fieldlen
 * bytes) equal want (an empty want matches anything)?
 */
int p11uri_field_eq(
    const unsigned char *field, size_t fieldlen, const char *want);

/*
 * "pkcs11:token=<label>;id=%xx%xx..." for a key with CKA_ID id, percent-
 * encoding the label as RFC 7512 requires. *outp is new.
 */
int p11uri_format_key(
    const char *label, const uint8_t *id, size_t idlen, char **outp);

#endif
