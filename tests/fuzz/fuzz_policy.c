/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the policy loader (policy.c, docs/POLICY.md).
 *
 * Each input is parsed with policy_parse(). A refusal must return one of the
 * documented codes, leave the output alone and say why in the error buffer
 * (a NUL-terminated, non-empty string). A policy that loads must answer its
 * accessors (name, SHA-256 of the input, rule count, lifecycle) consistently
 * and is then asked a fixed set of requests, every action for a few
 * principals, so that the index, the glob matcher, the conditions and the
 * rate limits run on whatever the fuzzer made of the rules. Any broken
 * expectation aborts; ASan, UBSan and LeakSanitizer report the rest.
 *
 * Built and run by tests/fuzz/CMakeLists.txt (cmake -DCUSTODY_FUZZ=ON).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "err.h"
#include "log.h"
#include "policy.h"

#define NAME	    "fuzz.json"
#define NOW_MS	    (1795428000LL * 1000) /* 2026-11-23T10:00:00Z, a Monday */
#define REQUEST_TTL 3600

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr,                                        \
			    "fuzz_policy: %s:%d: check failed: %s\n",          \
			    __FILE__, __LINE__, #x);                           \
			abort();                                               \
		}                                                              \
	} while (0)

/* The principals of the seed policies (policies/), so that mutated rules
 * still match some requests, and one that no seed names. */
static const char *const principals[] = {
    "spiffe://example.org/broker/team-a",
    "spiffe://example.org/orchestrator",
    "spiffe://example.org/auditor",
    "unix:uid=0",
    "x509:CN=admin,O=Example",
    "custody:scheduler",
    "spiffe://other.example/a/b/c",
};

static const char *const events[] = {
    "agent.retired", "task.completed", "owner.offboarded", "key.compromised"};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	custody_log_set(NULL, 0, NULL);
	return 0;
}

static int
is_string(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

static void
check_decision(const struct policy_request *q, const struct policy_decision *d)
{
	CHECK(is_string(d->rule, sizeof(d->rule)));
	CHECK(is_string(d->reason, sizeof(d->reason)));
	CHECK(d->rule[0] != '\0');
	CHECK(d->allow == 0 || d->allow == 1);
	if (!d->allow)
		return;
	CHECK(!d->rate_limited);
	CHECK(strcmp(d->rule, "(default)") != 0);
	CHECK(strcmp(d->rule, "(no policy)") != 0);
	if (q->action == POLICY_CREDENTIAL_JWT ||
	    q->action == POLICY_CREDENTIAL_X509) {
		/* every allow rule for credentials has a max_ttl */
		CHECK(d->ttl > 0 && d->ttl <= q->ttl);
	}
}

static void
evaluate(struct policy *p)
{
	static const char *const audiences[] = {"https://api.example.org"};
	static const char *const claims[] = {"scope"};
	struct policy_key key = {
	    .agent = "spiffe://example.org/agent/team-a/a",
	    .owner = "team-a",
	    .purpose = "jwt",
	    .alg = "ecdsa-p256",
	    .task = NULL,
	    .created_at = NOW_MS / 1000 - 86400,
	    .ttl = 0,
	    .id = NULL,
	};
	struct policy_request q;
	struct policy_decision d;
	size_t i;
	int a;

	for (i = 0; i < sizeof(principals) / sizeof(principals[0]); i++) {
		for (a = 0; a < POLICY_NACTIONS; a++) {
			memset(&q, 0, sizeof(q));
			q.principal = principals[i];
			q.action = a;
			q.now_ms = NOW_MS;
			q.key = &key;
			key.purpose = "jwt";
			key.task = NULL;
			key.ttl = 0;
			key.created_at = NOW_MS / 1000 - 86400;
			switch (a) {
			case POLICY_CREDENTIAL_JWT:
				q.ttl = REQUEST_TTL;
				/* every other principal asks for more */
				if (i % 2 == 1) {
					q.audiences = audiences;
					q.naudiences = 1;
					q.claims = claims;
					q.nclaims = 1;
				}
				break;
			case POLICY_CREDENTIAL_X509:
				q.ttl = REQUEST_TTL;
				q.csr_key = "ecdsa-p256";
				key.purpose = "x509-ca";
				break;
			case POLICY_KEY_CREATE:
				key.task = "task-1";
				key.ttl = 1800;
				key.created_at = 0;
				break;
			case POLICY_LIFECYCLE_EVENT:
				q.event = events[i % 4];
				key.task = "task-1";
				break;
			case POLICY_AUDIT_READ:
			case POLICY_CHECKPOINT_SIGN:
				q.key = NULL;
				break;
			default:
				break;
			}
			policy_eval(p, &q, &d);
			check_decision(&q, &d);
		}
	}
	/* malformed requests are refused whatever the policy says */
	memset(&q, 0, sizeof(q));
	q.principal = principals[0];
	q.action = POLICY_NACTIONS;
	q.now_ms = NOW_MS;
	policy_eval(p, &q, &d);
	check_decision(&q, &d);
	CHECK(!d.allow);
	q.action = POLICY_KEY_READ; /* a keyed action without a key */
	policy_eval(p, &q, &d);
	check_decision(&q, &d);
	CHECK(!d.allow);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char sentinel;
	struct policy *const unset = (struct policy *)(void *)&sentinel;
	struct policy *p = unset;
	struct policy_lifecycle_rule lc;
	uint8_t md[SHA256_DIGEST_LENGTH];
	char err[512];
	size_t i;
	int r;

	memset(err, 'X', sizeof(err));
	r = policy_parse(NAME, data, size, &p, err, sizeof(err));
	if (r != 0) {
		CHECK(r == CUSTODY_E_PARSE || r == CUSTODY_E_CONFIG ||
		      r == CUSTODY_E_TOO_LARGE || r == CUSTODY_E_NOMEM);
		CHECK(p == unset); /* outputs are written only on success */
		CHECK(is_string(err, sizeof(err)));
		/* (policy.c has no message for CUSTODY_E_NOMEM, which cannot
		 * happen here: the ASan allocator aborts rather than fail) */
		CHECK(err[0] != '\0' || r == CUSTODY_E_NOMEM);
		CHECK(strncmp(err, NAME, strlen(NAME)) == 0 ||
		      r == CUSTODY_E_NOMEM);
		return 0;
	}
	CHECK(p != NULL && p != unset);
	CHECK(strcmp(policy_name(p), NAME) == 0);
	CHECK(SHA256(data, size, md) != NULL);
	CHECK(memcmp(policy_sha256(p), md, sizeof(md)) == 0);
	CHECK(policy_nrules(p) <= size); /* a rule takes more than a byte */
	CHECK(policy_retired_keep(p) >= 0);
	for (i = 0; i < sizeof(events) / sizeof(events[0]); i++)
		CHECK(policy_lifecycle(p, events[i], &lc) == 0);
	CHECK(
	    policy_lifecycle(p, "no.such.event", &lc) == CUSTODY_E_INVALID_ARG);

	/* a second reference outlives the first, as during a reload */
	CHECK(policy_ref(p) == p);
	policy_free(p);
	evaluate(p);
	policy_free(p);
	return 0;
}
