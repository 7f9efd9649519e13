/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_DSSE_H
#define CUSTODY_DSSE_H

#include <stddef.h>
#include <stdint.h>

#include "alg.h"

/*
 * DSSE v1.0.2 envelopes (FORMATS.md section 5), as the lifecycle's
 * attestations use them: the pre-authentication encoding that is signed,
 * the JSON envelope, and its parsing and verification for auditors. DSSE
 * signs bytes, so the payload is serialised once and never re-encoded.
 * ECDSA signatures in an envelope are DER (as go-securesystemslib writes
 * them), Ed25519 and RSA-PSS signatures their plain bytes.
 */

/* The envelope's payload type; at most this many signatures; at most this
 * many bytes, so that an attestation leaf stays under 64 KiB. */
#define DSSE_INTOTO	  "application/vnd.in-toto+json"
#define DSSE_MAX_SIGS	  4
#define DSSE_ENVELOPE_MAX 49152

/* "DSSEv1" SP len(type) SP type SP len(body) SP body; *outp is new. */
int dsse_pae(const char *type, const uint8_t *body, size_t len, uint8_t **outp,
    size_t *lenp);

/* keyid of a signer: lower-case hex SHA-256 of its SPKI DER. */
void dsse_keyid(const uint8_t *spki, size_t len, char out[65]);

struct dsse_sig {
	char keyid[65];
	uint8_t *sig; /* as in the envelope (ECDSA: DER) */
	size_t len;
};

/*
 * The signature of the envelope from a signature in custody's form
 * (alg_sig_len(): ECDSA raw r || s, converted to DER here): s->sig is new.
 */
int dsse_sig_from_raw(enum custody_alg alg, const uint8_t *spki, size_t spkilen,
    const uint8_t *sig, size_t siglen, struct dsse_sig *s);

/*
 * The envelope {"payloadType","payload","signatures":[{"keyid","sig"}]},
 * compact, members in that order; *outp is new and NUL-terminated.
 */
int dsse_envelope(const char *type, const uint8_t *body, size_t len,
    const struct dsse_sig *sigs, size_t nsigs, char **outp, size_t *lenp);

struct dsse_parsed {
	char *type;
	uint8_t *body;
	size_t len;
	struct dsse_sig sigs[DSSE_MAX_SIGS];
	size_t nsigs;
};

/*
 * Parse an envelope (at most DSSE_ENVELOPE_MAX bytes; standard or URL-safe
 * base64, as DSSE verifiers must accept; unknown members ignored).
 * CUSTODY_E_PARSE with the reason in err. *pp is new.
 */
int dsse_parse(const uint8_t *env, size_t len, struct dsse_parsed **pp,
    char *err, size_t errsz);
void dsse_parsed_free(struct dsse_parsed *p);

/*
 * Is one of p's signatures, by the key of SPKI spki (matched by keyid, or
 * tried when its keyid is empty), valid over p's PAE? 0, or
 * CUSTODY_E_SIG_VERIFY (none verifies), CUSTODY_E_PARSE (spki is not a key
 * custody knows).
 */
int dsse_verify(
    const struct dsse_parsed *p, const uint8_t *spki, size_t spkilen);

void dsse_sig_clear(struct dsse_sig *s);

#endif
