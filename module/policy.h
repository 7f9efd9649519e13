/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_POLICY_H
#define CUSTODY_POLICY_H

#include <stddef.h>
#include <stdint.h>

/*
 * The policy engine (docs/POLICY.md, custody-policy(5)): one JSON policy,
 * loaded strictly, deny by default, evaluated per request before any key is
 * touched. A loaded policy is immutable except for its rate-limit buckets,
 * which are locked: policy_eval() may run in any number of threads at once.
 * Evaluation uses an index on (action, principal) and does not scan every
 * rule.
 */
struct policy;

enum policy_action {
	POLICY_CREDENTIAL_JWT,
	POLICY_CREDENTIAL_X509,
	POLICY_KEY_CREATE,
	POLICY_KEY_ROTATE,
	POLICY_KEY_DESTROY,
	POLICY_KEY_READ,
	POLICY_LIFECYCLE_EVENT,
	POLICY_AUDIT_READ,
	POLICY_CHECKPOINT_SIGN,
	POLICY_CA_MANAGE,
	POLICY_NACTIONS
};

/* "credential.jwt" <-> POLICY_CREDENTIAL_JWT; -1 / NULL when unknown. */
int policy_action_parse(const char *name);
const char *policy_action_name(int action);

#define POLICY_FILE_MAX	   (32u << 20)
#define POLICY_RULE_ID_MAX 64

/* The key a request is about (or, for key.create, would create). */
struct policy_key {
	const char *agent, *owner, *purpose, *alg; /* as in the registry */
	const char *task;			   /* NULL: none */
	int64_t created_at; /* Unix seconds; 0: not created yet */
	int64_t ttl;	    /* key.create: the TTL asked for, 0 = none */
	const char *id;	    /* rate limits per key; NULL: agent/purpose */
};

struct policy_request {
	const char *principal;
	int action;		      /* enum policy_action */
	const struct policy_key *key; /* NULL for audit.read, ... */
	int64_t now_ms;		      /* Unix time in milliseconds */
	/* credentials */
	int64_t ttl; /* seconds asked for; 0: none */
	const char *const *audiences;
	size_t naudiences;
	const char *sub;	   /* NULL: the agent */
	const char *const *claims; /* custom claim names */
	size_t nclaims;
	int act; /* an RFC 8693 act claim is asked for */
	const char
	    *csr_key;	   /* credential.x509: "ecdsa-p256", "rsa-2048", ... */
	const char *event; /* lifecycle.event: "agent.retired", ... */
};

/* X.509 template bits (policy_decision.eku, .key_usage). */
#define POLICY_EKU_CLIENT_AUTH	    0x1u
#define POLICY_EKU_SERVER_AUTH	    0x2u
#define POLICY_KU_DIGITAL_SIGNATURE 0x1u
#define POLICY_KU_KEY_ENCIPHERMENT  0x2u
#define POLICY_KU_KEY_AGREEMENT	    0x4u

struct policy_decision {
	int allow;
	int rate_limited;		   /* refused by a rate limit (429) */
	char rule[POLICY_RULE_ID_MAX + 1]; /* the rule, or "(default)" */
	char reason[256];		   /* one line, for people */
	int64_t ttl;	    /* credential.*: the TTL granted (0: none) */
	unsigned eku;	    /* credential.x509: POLICY_EKU_* */
	unsigned key_usage; /* credential.x509: POLICY_KU_* */
};

/*
 * Parse and check a policy; name is used in messages. On error returns
 * CUSTODY_E_PARSE (syntax: "name:LINE:COL: ..."), CUSTODY_E_CONFIG (any
 * other problem: "name: /json/pointer: ..."), CUSTODY_E_TOO_LARGE or
 * CUSTODY_E_NOMEM, with the message in err (if not NULL). *pp is new.
 */
int policy_parse(const char *name, const uint8_t *buf, size_t len,
    struct policy **pp, char *err, size_t errsz);

/* policy_parse() of the file at path (at most POLICY_FILE_MAX bytes). */
int policy_load(const char *path, struct policy **pp, char *err, size_t errsz);

/* Another reference to p (for a reload that swaps the policy in force while
 * requests still hold the old one); policy_free() drops one. NULL-safe. */
struct policy *policy_ref(struct policy *p);
void policy_free(struct policy *p);

/*
 * Decide req. Never fails: anything wrong with the request (an unknown
 * action, a missing key) is a refusal that says why. With p NULL every
 * request is refused by "(no policy)".
 */
void policy_eval(struct policy *p, const struct policy_request *req,
    struct policy_decision *d);

/* Is name a claim no request may set (iss, sub, aud, exp, nbf, iat, jti,
 * act, may_act, cnf)? Custody sets them, or governs them itself. */
int policy_claim_reserved(const char *name);

/* SHA-256 of the file's bytes, its name (as given) and its rule count. */
const uint8_t *policy_sha256(const struct policy *p);
const char *policy_name(const struct policy *p);
size_t policy_nrules(const struct policy *p);

/* What a lifecycle event does (docs/POLICY.md, Lifecycle). */
enum policy_lifecycle_action {
	POLICY_LC_DESTROY,
	POLICY_LC_RETIRE,
	POLICY_LC_ROTATE,
};

struct policy_lifecycle_rule {
	int action;	   /* enum policy_lifecycle_action */
	unsigned purposes; /* bit (1 << i) for purpose i of jwt, x509-ca,
			    * checkpoint, attestation */
};

/* The rule of event ("agent.retired", ...): 0, or CUSTODY_E_INVALID_ARG for
 * an unknown event. */
int policy_lifecycle(const struct policy *p, const char *event,
    struct policy_lifecycle_rule *out);

/* How long a retired key is kept after the last credential it signed has
 * expired (seconds). */
int64_t policy_retired_keep(const struct policy *p);

#endif
