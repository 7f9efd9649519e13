/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/sha.h>

#include "dsse.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "util.h"

int
dsse_pae(const char *type, const uint8_t *body, size_t len, uint8_t **outp,
    size_t *lenp)
{
	char head[96];
	size_t tlen, hlen;
	uint8_t *out;
	int n;

	CUSTODY_RETURN_VAL_IF_FAIL(type != NULL && (body != NULL || len == 0) &&
				       outp != NULL && lenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	tlen = strlen(type);
	n = snprintf(head, sizeof(head), "DSSEv1 %zu ", tlen);
	if (n < 0 || (size_t)n >= sizeof(head))
		return CUSTODY_E_INVALID_ARG;
	hlen = (size_t)n;
	if ((out = malloc(hlen + tlen + 32 + len)) == NULL)
		return CUSTODY_E_NOMEM;
	memcpy(out, head, hlen);
	memcpy(out + hlen, type, tlen);
	hlen += tlen;
	n = snprintf((char *)out + hlen, 32, " %zu ", len);
	hlen += (size_t)n;
	if (len > 0)
		memcpy(out + hlen, body, len);
	*outp = out;
	*lenp = hlen + len;
	return 0;
}

void
dsse_keyid(const uint8_t *spki, size_t len, char out[65])
{
	uint8_t h[SHA256_DIGEST_LENGTH];

	SHA256(spki, len, h);
	util_hex_encode(h, sizeof(h), out);
}

void
dsse_sig_clear(struct dsse_sig *s)
{
	if (s == NULL)
		return;
	free(s->sig);
	memset(s, 0, sizeof(*s));
}

static int
is_ecdsa(enum custody_alg alg)
{
	return alg == CUSTODY_ALG_ECDSA_P256 || alg == CUSTODY_ALG_ECDSA_P384;
}

int
dsse_sig_from_raw(enum custody_alg alg, const uint8_t *spki, size_t spkilen,
    const uint8_t *sig, size_t siglen, struct dsse_sig *s)
{
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    spki != NULL && sig != NULL && s != NULL, CUSTODY_E_INVALID_ARG);
	memset(s, 0, sizeof(*s));
	dsse_keyid(spki, spkilen, s->keyid);
	if (is_ecdsa(alg))
		return pubkey_ecdsa_raw_to_der(sig, siglen, &s->sig, &s->len);
	if ((s->sig = malloc(siglen)) == NULL)
		return CUSTODY_E_NOMEM;
	memcpy(s->sig, sig, siglen);
	s->len = siglen;
	r = 0;
	return r;
}

int
dsse_envelope(const char *type, const uint8_t *body, size_t len,
    const struct dsse_sig *sigs, size_t nsigs, char **outp, size_t *lenp)
{
	json_t *o = NULL, *arr = NULL;
	char *b = NULL, *sb = NULL, *s = NULL;
	size_t i;
	int r = CUSTODY_E_NOMEM;

	CUSTODY_RETURN_VAL_IF_FAIL(type != NULL && body != NULL &&
				       (sigs != NULL || nsigs == 0) &&
				       outp != NULL && lenp != NULL,
	    CUSTODY_E_INVALID_ARG);
	if ((r = util_base64_encode(body, len, &b)) != 0)
		return r;
	r = CUSTODY_E_NOMEM;
	if ((arr = json_array()) == NULL)
		goto out;
	for (i = 0; i < nsigs; i++) {
		if (util_base64_encode(sigs[i].sig, sigs[i].len, &sb) != 0 ||
		    json_array_append_new(arr, json_pack("{s:s, s:s}", "keyid",
						   sigs[i].keyid, "sig", sb)) !=
			0)
			goto out;
		free(sb);
		sb = NULL;
	}
	if ((o = json_pack("{s:s, s:s, s:O}", "payloadType", type, "payload", b,
		 "signatures", arr)) == NULL ||
	    (s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto out;
	if (strlen(s) > DSSE_ENVELOPE_MAX) {
		r = CUSTODY_E_TOO_LARGE;
		goto out;
	}
	*lenp = strlen(s);
	*outp = s;
	s = NULL;
	r = 0;
out:
	free(s);
	free(sb);
	free(b);
	json_decref(arr);
	json_decref(o);
	return r;
}

/* Standard or URL-safe base64, padded or not. */
static int
b64_any(const char *in, uint8_t **outp, size_t *lenp)
{
	size_t n = strlen(in), i;
	char *s;
	int r;

	if (n > DSSE_ENVELOPE_MAX || (s = malloc(n + 4)) == NULL)
		return CUSTODY_E_PARSE;
	for (i = 0; i < n; i++)
		s[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (i % 4 != 0)
		s[i++] = '=';
	s[i] = '\0';
	r = util_base64_decode(s, i, outp, lenp);
	free(s);
	return r;
}

void
dsse_parsed_free(struct dsse_parsed *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nsigs; i++)
		dsse_sig_clear(&p->sigs[i]);
	free(p->type);
	free(p->body);
	free(p);
}

int
dsse_parse(const uint8_t *env, size_t len, struct dsse_parsed **pp, char *err,
    size_t errsz)
{
	struct dsse_parsed *p = NULL;
	json_error_t je;
	json_t *o = NULL, *sigs, *v;
	const char *type, *payload, *keyid, *sig;
	size_t i;
	int r = CUSTODY_E_PARSE;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    env != NULL && pp != NULL, CUSTODY_E_INVALID_ARG);
	if (err != NULL && errsz > 0)
		err[0] = '\0';
#define FAIL(...)                                                              \
	do {                                                                   \
		if (err != NULL)                                               \
			snprintf(err, errsz, __VA_ARGS__);                     \
		goto out;                                                      \
	} while (0)
	if (len > DSSE_ENVELOPE_MAX)
		FAIL("the envelope has %zu bytes, over %d", len,
		    DSSE_ENVELOPE_MAX);
	if ((o = json_loadb(
		 (const char *)env, len, JSON_REJECT_DUPLICATES, &je)) == NULL)
		FAIL("not JSON: %s", je.text);
	if (json_unpack(o, "{s:s, s:s, s:o}", "payloadType", &type, "payload",
		&payload, "signatures", &sigs) != 0 ||
	    !json_is_array(sigs))
		FAIL("not a DSSE envelope (payloadType, payload, signatures)");
	if (json_array_size(sigs) == 0 || json_array_size(sigs) > DSSE_MAX_SIGS)
		FAIL("%zu signatures (1 to %d)", json_array_size(sigs),
		    DSSE_MAX_SIGS);
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->type = strdup(type)) == NULL) {
		r = CUSTODY_E_NOMEM;
		goto out;
	}
	if (b64_any(payload, &p->body, &p->len) != 0)
		FAIL("the payload is not base64");
	json_array_foreach(sigs, i, v)
	{
		struct dsse_sig *s = &p->sigs[p->nsigs];

		keyid = "";
		if (json_unpack(
			v, "{s:s, s?s}", "sig", &sig, "keyid", &keyid) != 0)
			FAIL("signature %zu has no sig", i);
		if (strlen(keyid) >= sizeof(s->keyid))
			FAIL("signature %zu: its keyid is too long", i);
		memcpy(s->keyid, keyid, strlen(keyid) + 1);
		if (b64_any(sig, &s->sig, &s->len) != 0)
			FAIL("signature %zu is not base64", i);
		p->nsigs++;
	}
#undef FAIL
	*pp = p;
	p = NULL;
	r = 0;
out:
	dsse_parsed_free(p);
	json_decref(o);
	return r;
}

/* ECDSA DER to raw r || s of len bytes. */
static int
der_to_raw(const uint8_t *der, size_t derlen, uint8_t *raw, size_t len)
{
	const unsigned char *q = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)derlen);
	const BIGNUM *br, *bs;
	int r = CUSTODY_E_SIG_VERIFY;

	if (es == NULL || q != der + derlen)
		goto out;
	ECDSA_SIG_get0(es, &br, &bs);
	if (BN_bn2binpad(br, raw, (int)(len / 2)) < 0 ||
	    BN_bn2binpad(bs, raw + len / 2, (int)(len / 2)) < 0)
		goto out;
	r = 0;
out:
	ECDSA_SIG_free(es);
	ERR_clear_error();
	return r;
}

int
dsse_verify(const struct dsse_parsed *p, const uint8_t *spki, size_t spkilen)
{
	struct pubkey *pk = NULL;
	enum custody_alg alg;
	uint8_t *pae = NULL, raw[132];
	const uint8_t *sig;
	size_t paelen, siglen, i;
	char keyid[65];
	int r;

	CUSTODY_RETURN_VAL_IF_FAIL(
	    p != NULL && spki != NULL, CUSTODY_E_INVALID_ARG);
	if (pubkey_from_spki_any(spki, spkilen, &pk) != 0)
		return CUSTODY_E_PARSE;
	alg = pubkey_alg(pk);
	dsse_keyid(spki, spkilen, keyid);
	if ((r = dsse_pae(p->type, p->body, p->len, &pae, &paelen)) != 0)
		goto out;
	r = CUSTODY_E_SIG_VERIFY;
	for (i = 0; i < p->nsigs && r != 0; i++) {
		if (p->sigs[i].keyid[0] != '\0' &&
		    strcmp(p->sigs[i].keyid, keyid) != 0)
			continue;
		sig = p->sigs[i].sig;
		siglen = p->sigs[i].len;
		if (is_ecdsa(alg)) {
			if (alg_sig_len(alg) > sizeof(raw) ||
			    der_to_raw(sig, siglen, raw, alg_sig_len(alg)) != 0)
				continue;
			sig = raw;
			siglen = alg_sig_len(alg);
		}
		if (pubkey_verify(pk, pae, paelen, sig, siglen) == 0)
			r = 0;
	}
out:
	free(pae);
	pubkey_free(pk);
	return r;
}
