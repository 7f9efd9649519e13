/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_CREDENTIAL_H
#define CUSTODY_CREDENTIAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "alg.h"

/*
 * Credentials (ARCHITECTURE.md section 5, FORMATS.md section 6): the exact
 * bytes a key signs for a JWT, built by the server from the key and a
 * checked request, and the JWKS that verifiers fetch.
 *
 * A request can never choose a header field: the header is {"alg", "kid",
 * "typ":"JWT"} from the key alone. iss, iat, nbf, exp and jti are the
 * server's; reserved claims, header fields, unknown members and duplicate
 * members (also when spelled with escapes) are refused when the request is
 * parsed, with a message that names what is wrong.
 */

#define CREDENTIAL_TTL_MAX	  (366 * 86400) /* seconds a request may ask */
#define CREDENTIAL_AUD_MAX	  16		/* audiences in one request */
#define CREDENTIAL_TEXT_MAX	  1024 /* bytes of an audience or sub */
#define CREDENTIAL_CLAIMS_MAX	  64   /* custom claims in one request */
#define CREDENTIAL_CLAIM_NAME_MAX 128
#define CREDENTIAL_CLAIMS_BYTES	  16384 /* custom claims, serialised */
#define CREDENTIAL_CLAIM_DEPTH	  8	/* nesting inside a claim's value */
#define CREDENTIAL_ACT_DEPTH	  4	/* nested RFC 8693 act claims */

/* A JWT request (POST /v1/credentials/jwt), parsed and checked. */
struct credential_jwt_req {
	char *agent; /* the agent's task-less jwt key, or NULL */
	char *key;   /* a key id, or NULL (exactly one of the two) */
	char **aud;  /* 1..CREDENTIAL_AUD_MAX audiences */
	size_t naud;
	int aud_array;	/* asked as an array (kept so in the token) */
	int64_t ttl;	/* seconds asked, 0: not asked (policy's maximum) */
	char *sub;	/* NULL: the key's agent */
	json_t *claims; /* custom claims (an object), or NULL */
	const char **claim_names; /* their names, for the policy */
	size_t nclaims;
	json_t *act;		    /* RFC 8693 act claim, or NULL */
	uint8_t request_sha256[32]; /* of the body's bytes */
};

/*
 * Parse and check a JWT request body (UTF-8 JSON, at most the caller's
 * limit). Errors: CUSTODY_E_PARSE (not JSON, not UTF-8, a duplicate member,
 * too deeply nested) or CUSTODY_E_INVALID_ARG (a member that is unknown, a
 * header field, of the wrong type or out of bounds, a reserved claim), with
 * a one-line message in err that names the member. *reqp is new.
 */
int credential_jwt_parse(const uint8_t *body, size_t len,
    struct credential_jwt_req **reqp, char *err, size_t errsz);
void credential_jwt_req_free(struct credential_jwt_req *req);

/* A request for an X.509 certificate (POST /v1/credentials/x509). */
struct credential_x509_req {
	char *agent; /* the agent's task-less x509-ca key, or NULL */
	char *key;   /* a key id, or NULL (exactly one of the two) */
	char *csr;   /* the PKCS#10 request as sent (PEM), NUL-terminated */
	size_t csrlen;
	int64_t ttl;		    /* seconds asked, 0: the policy's maximum */
	uint8_t request_sha256[32]; /* of the body's bytes */
};

/*
 * Parse {"agent" or "key", "csr", "ttl"?} as credential_jwt_parse parses a
 * JWT request (duplicate and unknown members refused, ttl 1 s to 366 d);
 * the CSR is a string of at most csr_max bytes, checked later by cert.
 */
int credential_x509_parse(const uint8_t *body, size_t len, size_t csr_max,
    struct credential_x509_req **reqp, char *err, size_t errsz);

void credential_x509_req_free(struct credential_x509_req *req);

/* The key a JWT is signed with. */
struct credential_key {
	const char *id;	   /* k_... */
	const char *kid;   /* its JWK thumbprint */
	const char *agent; /* the default sub */
	enum custody_alg alg;
};

/* A JWT ready to sign. */
struct credential_jwt {
	char *signing_input; /* base64url(header) "." base64url(payload) */
	size_t len;
	uint8_t tbs_sha256[32]; /* SHA-256 of signing_input */
	const char *alg;	/* JWS alg */
	char jti[23];		/* 128 random bits, base64url */
	int64_t iat, exp;
	json_t *detail; /* the decision leaf's detail (FORMATS.md section 2) */
};

/*
 * The JWS alg of a key: EdDSA (or ed25519_alg, "EdDSA" or "Ed25519", for
 * Ed25519 keys), ES256, ES384, PS256. NULL for an unknown alg.
 */
const char *credential_jwt_alg(enum custody_alg alg, const char *ed25519_alg);

/*
 * Build the JWT for req signed by k: header {"alg","kid","typ":"JWT"},
 * payload {"iss","sub","aud","iat","nbf","exp","jti", custom claims...,
 * "act"} with iat = nbf = now and exp = now + ttl (ttl > 0: what policy and
 * the key's remaining life grant). The detail for the decision leaf holds
 * sub, aud, iat, exp, jti, ttl and the SHA-256 of each custom claim's value
 * (and of act), never a value. *jwtp is new.
 */
int credential_jwt_build(const struct credential_jwt_req *req,
    const struct credential_key *k, const char *iss, const char *ed25519_alg,
    int64_t now, int64_t ttl, struct credential_jwt **jwtp);

/* The compact JWS: signing input "." base64url(sig). *tokenp is new. */
int credential_jwt_finish(const struct credential_jwt *jwt, const uint8_t *sig,
    size_t siglen, char **tokenp);
void credential_jwt_free(struct credential_jwt *jwt);

/*
 * The JWK of a public key (SPKI DER of alg): its required members, then
 * "kid", "use":"sig" and "alg" (the JWS alg above). *jwkp is new.
 */
int credential_jwk(enum custody_alg alg, const uint8_t *spki, size_t spki_len,
    const char *kid, const char *ed25519_alg, json_t **jwkp);

#endif
