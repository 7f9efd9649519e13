/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the policy engine (policy.c) against its contract,
 * docs/POLICY.md: every condition at its boundaries, principal and key
 * matching, deny-overrides and first-allow-in-file-order, token-bucket rate
 * limits, malformed policies (return code and message), the lifecycle
 * section, the SHA-256 of the file, the (action, principal) index on a large
 * generated policy, and reference counting.
 *
 * Policies are written with single quotes for readability; load() and
 * expect_bad() turn them into double quotes before parsing (no policy here
 * needs a literal single quote).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* timegm */
#endif

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "err.h"
#include "policy.h"

#define NAME   "t"
#define BROKER "spiffe://example.org/broker/a"
#define AGENT  "spiffe://example.org/agent/a"
#define NOW    "2026-11-23T10:00:00Z" /* a Monday */

/* ---- helpers --------------------------------------------------------- */

/* A copy of s with every ' turned into ". */
static char *
dq(const char *s)
{
	char *d = strdup(s), *c;

	assert_non_null(d);
	for (c = d; *c != '\0'; c++)
		if (*c == '\'')
			*c = '"';
	return d;
}

/* Parse json (single-quoted), which must be accepted. */
static struct policy *
load(const char *json)
{
	struct policy *p = NULL;
	char err[512] = "";
	char *s = dq(json);
	int r;

	r = policy_parse(
	    NAME, (const uint8_t *)s, strlen(s), &p, err, sizeof(err));
	if (r != 0)
		fail_msg("policy refused (%d): %s\n%s", r, err, s);
	free(s);
	assert_non_null(p);
	return p;
}

/* buf is refused with rc and a message that names the file and contains
 * want (and want2, if not NULL); *pp is left alone. */
static void
expect_bad_buf(
    const uint8_t *buf, size_t len, int rc, const char *want, const char *want2)
{
	struct policy *p = (struct policy *)0x1;
	char err[512];
	int r;

	memset(err, 'X', sizeof(err));
	r = policy_parse(NAME, buf, len, &p, err, sizeof(err));
	if (r != rc)
		fail_msg("got %d, want %d (%s) for: %.300s", r, rc,
		    r == 0 ? "accepted" : err, (const char *)buf);
	assert_ptr_equal(p, (struct policy *)0x1);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	if (strncmp(err, NAME ":", strlen(NAME ":")) != 0)
		fail_msg("message '%s' does not start with the name", err);
	if (strstr(err, want) == NULL)
		fail_msg("message '%s' lacks '%s'", err, want);
	if (want2 != NULL && strstr(err, want2) == NULL)
		fail_msg("message '%s' lacks '%s'", err, want2);
}

static void
expect_bad2(const char *json, int rc, const char *want, const char *want2)
{
	char *s = dq(json);

	expect_bad_buf((const uint8_t *)s, strlen(s), rc, want, want2);
	free(s);
}

static void
expect_bad(const char *json, int rc, const char *want)
{
	expect_bad2(json, rc, want, NULL);
}

/* "YYYY-MM-DDTHH:MM:SSZ" -> Unix seconds (independent of util.c). */
static int64_t
tsec(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon,
		&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		fail_msg("bad time '%s'", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* A request, as a table row; zero fields take the defaults. */
struct rcase {
	const char *what;
	const char *principal; /* NULL: BROKER */
	int action;	       /* 0: credential.jwt */
	const char *at;	       /* NULL: NOW */
	int64_t dms;	       /* added to at (milliseconds) */
	int nokey;
	const char *agent, *owner, *purpose, *alg, *task; /* NULL: defaults */
	const char *created;				  /* NULL: 0 */
	int64_t key_ttl;
	const char *key_id;
	int64_t ttl;
	const char *aud[4]; /* NULL-terminated */
	const char *sub;
	const char *claims[4]; /* NULL-terminated */
	int act;
	const char *csr_key;
	const char *event;
	/* expected */
	int allow;
	const char *rule;   /* NULL: "(default)" */
	int64_t want_ttl;   /* checked when not 0 */
	unsigned eku, ku;   /* checked when not 0 */
	const char *reason; /* a substring of the reason, or NULL */
};

static size_t
nstr(const char *const *v, size_t max)
{
	size_t n = 0;

	while (n < max && v[n] != NULL)
		n++;
	return n;
}

static void
eval_case(struct policy *p, const struct rcase *c, struct policy_decision *d)
{
	struct policy_key k = {
	    .agent = c->agent ? c->agent : AGENT,
	    .owner = c->owner ? c->owner : "team-a",
	    .purpose = c->purpose ? c->purpose : "jwt",
	    .alg = c->alg ? c->alg : "ecdsa-p256",
	    .task = c->task,
	    .created_at = c->created ? tsec(c->created) : 0,
	    .ttl = c->key_ttl,
	    .id = c->key_id,
	};
	struct policy_request q = {
	    .principal = c->principal ? c->principal : BROKER,
	    .action = c->action,
	    .key = c->nokey ? NULL : &k,
	    .now_ms = tsec(c->at ? c->at : NOW) * 1000 + c->dms,
	    .ttl = c->ttl,
	    .audiences = c->aud,
	    .naudiences = nstr(c->aud, 4),
	    .sub = c->sub,
	    .claims = c->claims,
	    .nclaims = nstr(c->claims, 4),
	    .act = c->act,
	    .csr_key = c->csr_key,
	    .event = c->event,
	};

	memset(d, 0x5a, sizeof(*d));
	policy_eval(p, &q, d);
}

/* Does the decision on c match what c expects? If not, says why (with
 * print_error) and returns 0. */
static int
case_ok(struct policy *p, const struct rcase *c)
{
	struct policy_decision d;
	const char *rule = c->rule ? c->rule : "(default)";

	eval_case(p, c, &d);
	if (memchr(d.rule, '\0', sizeof(d.rule)) == NULL ||
	    memchr(d.reason, '\0', sizeof(d.reason)) == NULL) {
		print_error("%s: unterminated rule or reason\n", c->what);
		return 0;
	}
	if (d.allow != c->allow || strcmp(d.rule, rule) != 0) {
		print_error("%s: got %s by '%s' (%s), want %s by '%s'\n",
		    c->what, d.allow ? "allow" : "refusal", d.rule, d.reason,
		    c->allow ? "allow" : "refusal", rule);
		return 0;
	}
	if (d.rate_limited) {
		print_error("%s: rate_limited set (%s)\n", c->what, d.reason);
		return 0;
	}
	if (d.reason[0] == '\0') {
		print_error("%s: no reason\n", c->what);
		return 0;
	}
	if (c->reason != NULL && strstr(d.reason, c->reason) == NULL) {
		print_error("%s: reason '%s' lacks '%s'\n", c->what, d.reason,
		    c->reason);
		return 0;
	}
	if (c->want_ttl != 0 && d.ttl != c->want_ttl) {
		print_error("%s: ttl %lld, want %lld\n", c->what,
		    (long long)d.ttl, (long long)c->want_ttl);
		return 0;
	}
	if (c->eku != 0 && d.eku != c->eku) {
		print_error("%s: eku %#x, want %#x\n", c->what, d.eku, c->eku);
		return 0;
	}
	if (c->ku != 0 && d.key_usage != c->ku) {
		print_error("%s: key_usage %#x, want %#x\n", c->what,
		    d.key_usage, c->ku);
		return 0;
	}
	return 1;
}

static void
check_case(struct policy *p, const struct rcase *c)
{
	if (!case_ok(p, c))
		fail_msg("case '%s' failed", c->what);
}

/* Every case of the table against one policy (rate-limit free). */
static void
run_cases(const char *json, const struct rcase *c, size_t n)
{
	struct policy *p = load(json);
	size_t i, bad = 0;

	/* every row is tried, and every failing one reported */
	for (i = 0; i < n; i++)
		bad += !case_ok(p, &c[i]);
	policy_free(p);
	if (bad != 0)
		fail_msg("%zu of %zu cases failed", bad, n);
}

#define RUN(json, cases)                                                       \
	run_cases(json, cases, sizeof(cases) / sizeof(cases[0]))

/* A growing buffer for generated policies. */
struct buf {
	char *s;
	size_t len, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if ((size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n + 64;
		b->s = realloc(b->s, b->cap);
		assert_non_null(b->s);
	}
	b->len += (size_t)n;
}

/* ---- conditions ------------------------------------------------------ */

static void
test_max_ttl(void **state)
{
	static const struct rcase cases[] = {
	    {"ttl equal to max_ttl", .ttl = 900, .allow = 1, .rule = "jwt",
		.want_ttl = 900},
	    {"ttl below max_ttl", .ttl = 60, .allow = 1, .rule = "jwt",
		.want_ttl = 60},
	    {"ttl one past max_ttl is clamped", .ttl = 901, .allow = 1,
		.rule = "jwt", .want_ttl = 900},
	    {"ttl far past max_ttl is clamped", .ttl = 86400 * 365, .allow = 1,
		.rule = "jwt", .want_ttl = 900},
	    {"no ttl gets max_ttl", .ttl = 0, .allow = 1, .rule = "jwt",
		.want_ttl = 900},
	    {"x509: ttl equal", .action = POLICY_CREDENTIAL_X509,
		.purpose = "x509-ca", .csr_key = "ecdsa-p256", .ttl = 3600,
		.allow = 1, .rule = "x509", .want_ttl = 3600},
	    {"x509: ttl clamped", .action = POLICY_CREDENTIAL_X509,
		.purpose = "x509-ca", .csr_key = "ecdsa-p256", .ttl = 3601,
		.allow = 1, .rule = "x509", .want_ttl = 3600},
	    {"x509: no ttl", .action = POLICY_CREDENTIAL_X509,
		.purpose = "x509-ca", .csr_key = "ecdsa-p256", .allow = 1,
		.rule = "x509", .want_ttl = 3600},
	};
	struct policy_decision d;
	struct rcase c = {"key.read decision has no ttl",
	    .action = POLICY_KEY_READ, .ttl = 60};
	struct policy *p;

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'jwt','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'15m'}},"
	    "{'id':'x509','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	    "'x509':{'csr_keys':['ecdsa-p256']}}}]}",
	    cases);

	/* a decision about no credential grants no TTL */
	p = load("{'version':1,'rules':[{'id':'read','effect':'allow',"
		 "'principals':['" BROKER "'],'actions':['key.read']}]}");
	eval_case(p, &c, &d);
	assert_int_equal(d.allow, 1);
	assert_string_equal(d.rule, "read");
	assert_int_equal(d.ttl, 0);
	policy_free(p);
}

static void
test_audiences(void **state)
{
	static const struct rcase cases[] = {
	    {"exact audience", .aud = {"https://api.example.org"}, .allow = 1,
		.rule = "aud"},
	    {"glob audience", .aud = {"https://x.example.com"}, .allow = 1,
		.rule = "aud"},
	    {"'*' does not cross '/'", .aud = {"https://a/b.example.com"},
		.reason = "audience"},
	    {"two audiences, both listed",
		.aud = {"https://api.example.org", "https://y.example.com"},
		.allow = 1, .rule = "aud"},
	    {"two audiences, one not listed",
		.aud = {"https://api.example.org", "https://evil.example"},
		.reason = "https://evil.example"},
	    {"audience not listed", .aud = {"https://api.example.org/x"},
		.reason = "audience"},
	    {"no audience asked", .allow = 1, .rule = "aud"},
	    {"rule without audiences refuses a JWT with one",
		.principal = "spiffe://example.org/broker/b",
		.aud = {"https://api.example.org"}, .reason = "rule noaud"},
	    {"rule without audiences, no audience asked",
		.principal = "spiffe://example.org/broker/b", .allow = 1,
		.rule = "noaud"},
	};

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'aud','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'15m',"
	    "'audiences':['https://api.example.org','https://*.example.com']}},"
	    "{'id':'noaud','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'15m'}}]}",
	    cases);
}

static void
test_sub(void **state)
{
	static const struct rcase cases[] = {
	    {"default: no sub", .allow = 1, .rule = "agent"},
	    {"default: sub is the agent", .sub = AGENT, .allow = 1,
		.rule = "agent"},
	    {"default: another sub", .sub = "spiffe://example.org/agent/b",
		.reason = "sub"},
	    {"explicit agent: another sub",
		.principal = "spiffe://example.org/broker/c",
		.sub = "spiffe://example.org/agent/b", .reason = "sub"},
	    {"explicit agent: the agent",
		.principal = "spiffe://example.org/broker/c", .sub = AGENT,
		.allow = 1, .rule = "explicit"},
	    {"any: another sub", .principal = "spiffe://example.org/broker/b",
		.sub = "user@example.org", .allow = 1, .rule = "any"},
	    {"any: no sub", .principal = "spiffe://example.org/broker/b",
		.allow = 1, .rule = "any"},
	};

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'agent','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'15m'}},"
	    "{'id':'any','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['credential.jwt'],"
	    "'conditions':{'max_ttl':'15m','sub':'any'}},"
	    "{'id':'explicit','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/c'],"
	    "'actions':['credential.jwt'],"
	    "'conditions':{'max_ttl':'15m','sub':'agent'}}]}",
	    cases);
}

static void
test_claims(void **state)
{
	static const struct rcase cases[] = {
	    {"listed claim", .claims = {"scope"}, .allow = 1, .rule = "cl"},
	    {"two listed claims", .claims = {"scope", "tenant"}, .allow = 1,
		.rule = "cl"},
	    {"unlisted claim", .claims = {"role"}, .reason = "role"},
	    {"one listed, one not", .claims = {"scope", "role"},
		.reason = "role"},
	    {"no claims", .allow = 1, .rule = "cl"},
	    {"rule without claims refuses any",
		.principal = "spiffe://example.org/broker/b",
		.claims = {"scope"}, .reason = "scope"},
	    {"rule without claims, none asked",
		.principal = "spiffe://example.org/broker/b", .allow = 1,
		.rule = "nocl"},
	};

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'cl','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],"
	    "'conditions':{'max_ttl':'15m','claims':['scope','tenant']}},"
	    "{'id':'nocl','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'15m'}}]}",
	    cases);
}

/* Reserved claims: refused in every request, even by an allow-all rule, and
 * rejected at load. */
static void
test_reserved_claims(void **state)
{
	static const char *const reserved[] = {"iss", "sub", "aud", "exp",
	    "nbf", "iat", "jti", "act", "may_act", "cnf"};
	struct policy *p;
	struct policy_decision d;
	char json[512];
	size_t i;

	(void)state;
	p = load("{'version':1,'rules':[{'id':'all','effect':'allow',"
		 "'principals':['spiffe://example.org/**'],"
		 "'actions':['credential.jwt'],'conditions':{'max_ttl':'1h',"
		 "'sub':'any','act':true,'claims':['scope'],"
		 "'audiences':['**']}}]}");
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		struct rcase c = {
		    reserved[i], .claims = {"scope", reserved[i]}};

		eval_case(p, &c, &d);
		if (d.allow)
			fail_msg("reserved claim '%s' allowed", reserved[i]);
		assert_int_equal(d.rate_limited, 0);
		if (strstr(d.reason, reserved[i]) == NULL ||
		    strstr(d.reason, "reserved") == NULL)
			fail_msg("'%s': reason '%s'", reserved[i], d.reason);

		snprintf(json, sizeof(json),
		    "{'version':1,'rules':[{'id':'r','effect':'allow',"
		    "'principals':['" BROKER "'],'actions':['credential.jwt'],"
		    "'conditions':{'max_ttl':'1h','claims':['scope','%s']}}]}",
		    reserved[i]);
		expect_bad2(json, CUSTODY_E_CONFIG,
		    "/rules/0/conditions/claims/1", "reserved");
	}
	/* the allow-all rule does allow an ordinary request */
	{
		struct rcase c = {"ordinary", .claims = {"scope"},
		    .aud = {"https://x"}, .act = 1, .sub = "someone",
		    .allow = 1, .rule = "all"};

		check_case(p, &c);
	}
	policy_free(p);
}

static void
test_act(void **state)
{
	static const struct rcase cases[] = {
	    {"default: no act", .allow = 1, .rule = "noact"},
	    {"default: act refused", .act = 1, .reason = "act"},
	    {"explicit false: act refused",
		.principal = "spiffe://example.org/broker/c", .act = 1,
		.reason = "act"},
	    {"true: act allowed", .principal = "spiffe://example.org/broker/b",
		.act = 1, .allow = 1, .rule = "act"},
	    {"true: no act is fine too",
		.principal = "spiffe://example.org/broker/b", .allow = 1,
		.rule = "act"},
	};

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'noact','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'15m'}},"
	    "{'id':'act','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['credential.jwt'],"
	    "'conditions':{'max_ttl':'15m','act':true}},"
	    "{'id':'false','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/c'],"
	    "'actions':['credential.jwt'],"
	    "'conditions':{'max_ttl':'15m','act':false}}]}",
	    cases);
}

static void
test_x509(void **state)
{
#define X509_ .action = POLICY_CREDENTIAL_X509, .purpose = "x509-ca"
	static const struct rcase cases[] = {
	    {"allowed CSR key, default template", X509_,
		.csr_key = "ecdsa-p256", .allow = 1, .rule = "def",
		.eku = POLICY_EKU_CLIENT_AUTH,
		.ku = POLICY_KU_DIGITAL_SIGNATURE, .want_ttl = 3600},
	    {"other allowed CSR key", X509_, .csr_key = "rsa-3072", .allow = 1,
		.rule = "def", .eku = POLICY_EKU_CLIENT_AUTH,
		.ku = POLICY_KU_DIGITAL_SIGNATURE},
	    {"CSR key not listed", X509_, .csr_key = "ed25519",
		.reason = "ed25519"},
	    {"unknown CSR key", X509_, .csr_key = "dsa-1024", .reason = "CSR"},
	    {"no CSR key", X509_, .reason = "CSR"},
	    {"every bit", X509_, .principal = "spiffe://example.org/broker/b",
		.csr_key = "rsa-4096", .allow = 1, .rule = "all",
		.eku = POLICY_EKU_CLIENT_AUTH | POLICY_EKU_SERVER_AUTH,
		.ku = POLICY_KU_DIGITAL_SIGNATURE | POLICY_KU_KEY_ENCIPHERMENT |
		      POLICY_KU_KEY_AGREEMENT},
	    {"server only", X509_, .principal = "spiffe://example.org/broker/c",
		.csr_key = "ecdsa-p384", .allow = 1, .rule = "server",
		.eku = POLICY_EKU_SERVER_AUTH, .ku = POLICY_KU_KEY_AGREEMENT},
	};
#undef X509_

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'def','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	    "'x509':{'csr_keys':['ecdsa-p256','rsa-3072']}}},"
	    "{'id':'all','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	    "'x509':{'csr_keys':['rsa-4096'],'eku':['clientAuth','serverAuth'],"
	    "'key_usage':['digitalSignature','keyEncipherment',"
	    "'keyAgreement']}}},"
	    "{'id':'server','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/c'],"
	    "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	    "'x509':{'csr_keys':['ecdsa-p384'],'eku':['serverAuth'],"
	    "'key_usage':['keyAgreement']}}}]}",
	    cases);
}

static void
test_max_key_age(void **state)
{
	static const struct rcase cases[] = {
	    {"exactly max_key_age old", .action = POLICY_KEY_READ,
		.created = "2026-11-23T09:00:00Z", .allow = 1, .rule = "age"},
	    {"younger", .action = POLICY_KEY_READ,
		.created = "2026-11-23T09:59:00Z", .allow = 1, .rule = "age"},
	    {"one second past max_key_age", .action = POLICY_KEY_READ,
		.created = "2026-11-23T08:59:59Z", .reason = "max_key_age"},
	    {"rotate: one second past", .action = POLICY_KEY_ROTATE,
		.created = "2026-11-23T08:59:59Z", .reason = "max_key_age"},
	    {"rotate: at the limit", .action = POLICY_KEY_ROTATE,
		.created = "2026-11-23T09:00:00Z", .allow = 1, .rule = "age"},
	    {"key.create ignores max_key_age", .action = POLICY_KEY_CREATE,
		.created = "2020-01-01T00:00:00Z", .allow = 1, .rule = "age"},
	    {"key.create, not created yet", .action = POLICY_KEY_CREATE,
		.allow = 1, .rule = "age"},
	};

	(void)state;
	RUN("{'version':1,'rules':[{'id':'age','effect':'allow',"
	    "'principals':['" BROKER "'],"
	    "'actions':['key.read','key.rotate','key.create'],"
	    "'conditions':{'max_key_age':'1h'}}]}",
	    cases);
}

static void
test_time_window(void **state)
{
#define P(x) .principal = "spiffe://example.org/broker/" x
#define KR   .action = POLICY_KEY_READ
#define AR   .action = POLICY_AUDIT_READ, .nokey = 1
	static const struct rcase cases[] = {
	    /* after: inclusive, to the millisecond */
	    {"after: at the instant", P("after"), KR,
		.at = "2026-11-23T09:00:00Z", .allow = 1, .rule = "after"},
	    {"after: one ms before", P("after"), KR,
		.at = "2026-11-23T09:00:00Z", .dms = -1, .reason = "window"},
	    {"after: one ms after", P("after"), KR,
		.at = "2026-11-23T09:00:00Z", .dms = 1, .allow = 1,
		.rule = "after"},
	    /* before: exclusive */
	    {"before: one ms before", P("before"), KR,
		.at = "2026-11-23T11:00:00Z", .dms = -1, .allow = 1,
		.rule = "before"},
	    {"before: at the instant", P("before"), KR,
		.at = "2026-11-23T11:00:00Z", .reason = "window"},
	    /* both */
	    {"after+before: inside", P("both"), AR,
		.at = "2026-11-23T10:30:00Z", .allow = 1, .rule = "both"},
	    {"after+before: before it opens", P("both"), AR,
		.at = "2026-11-23T08:00:00Z"},
	    {"after+before: after it closed", P("both"), AR,
		.at = "2026-11-23T12:00:00Z"},
	    /* days, with known dates */
	    {"days: Monday 2026-11-23", P("days"), AR,
		.at = "2026-11-23T10:00:00Z", .allow = 1, .rule = "days"},
	    {"days: Tuesday 2026-11-24", P("days"), AR,
		.at = "2026-11-24T23:59:59Z", .allow = 1, .rule = "days"},
	    {"days: Saturday 2026-11-21", P("days"), AR,
		.at = "2026-11-21T10:00:00Z", .reason = "days"},
	    {"days: Sunday 2026-11-22, last ms", P("days"), AR,
		.at = "2026-11-22T23:59:59Z", .dms = 999, .reason = "days"},
	    {"days: Monday 00:00 UTC", P("days"), AR,
		.at = "2026-11-23T00:00:00Z", .allow = 1, .rule = "days"},
	    {"weekend: Saturday", P("weekend"), AR,
		.at = "2026-11-21T03:00:00Z", .allow = 1, .rule = "weekend"},
	    {"weekend: Monday", P("weekend"), AR, .at = "2026-11-23T03:00:00Z"},
	    /* hours: start inclusive, end exclusive */
	    {"hours: at the start", P("hours"), AR,
		.at = "2026-11-23T09:00:00Z", .allow = 1, .rule = "hours"},
	    {"hours: one ms before the start", P("hours"), AR,
		.at = "2026-11-23T09:00:00Z", .dms = -1, .reason = "hours"},
	    {"hours: last second", P("hours"), AR, .at = "2026-11-23T16:59:59Z",
		.allow = 1, .rule = "hours"},
	    {"hours: at the end", P("hours"), AR, .at = "2026-11-23T17:00:00Z",
		.reason = "hours"},
	    /* a window wrapping midnight */
	    {"night: at the start", P("night"), AR,
		.at = "2026-11-23T22:00:00Z", .allow = 1, .rule = "night"},
	    {"night: just before the start", P("night"), AR,
		.at = "2026-11-23T21:59:59Z", .reason = "hours"},
	    {"night: before midnight", P("night"), AR,
		.at = "2026-11-23T23:59:59Z", .allow = 1, .rule = "night"},
	    {"night: midnight", P("night"), AR, .at = "2026-11-24T00:00:00Z",
		.allow = 1, .rule = "night"},
	    {"night: just before the end", P("night"), AR,
		.at = "2026-11-24T05:59:59Z", .allow = 1, .rule = "night"},
	    {"night: at the end", P("night"), AR, .at = "2026-11-24T06:00:00Z",
		.reason = "hours"},
	    {"night: noon", P("night"), AR, .at = "2026-11-24T12:00:00Z",
		.reason = "hours"},
	    /* days and hours together */
	    {"office: Monday 10:00", P("office"), AR,
		.at = "2026-11-23T10:00:00Z", .allow = 1, .rule = "office"},
	    {"office: Saturday 10:00", P("office"), AR,
		.at = "2026-11-21T10:00:00Z"},
	    {"office: Monday 18:00", P("office"), AR,
		.at = "2026-11-23T18:00:00Z"},
	    /* an expired window never opens again */
	    {"expired: now", P("expired"), KR, .reason = "window"},
	    {"expired: years later", P("expired"), KR,
		.at = "2030-06-03T10:00:00Z", .reason = "window"},
	    {"expired: its last second", P("expired"), KR,
		.at = "2020-12-31T23:59:59Z", .allow = 1, .rule = "expired"},
	};
#undef P
#undef KR
#undef AR

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'after','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/after'],"
	    "'actions':['key.read'],"
	    "'conditions':{'time':{'after':'2026-11-23T09:00:00Z'}}},"
	    "{'id':'before','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/before'],"
	    "'actions':['key.read'],"
	    "'conditions':{'time':{'before':'2026-11-23T11:00:00Z'}}},"
	    "{'id':'both','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/both'],"
	    "'actions':['audit.read'],"
	    "'conditions':{'time':{'after':'2026-11-23T09:00:00Z',"
	    "'before':'2026-11-23T11:00:00Z'}}},"
	    "{'id':'days','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/days'],"
	    "'actions':['audit.read'],"
	    "'conditions':{'time':{'days':['mon','tue']}}},"
	    "{'id':'weekend','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/weekend'],"
	    "'actions':['audit.read'],"
	    "'conditions':{'time':{'days':['sat','sun']}}},"
	    "{'id':'hours','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/hours'],"
	    "'actions':['audit.read'],"
	    "'conditions':{'time':{'hours':'09:00-17:00'}}},"
	    "{'id':'night','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/night'],"
	    "'actions':['audit.read'],"
	    "'conditions':{'time':{'hours':'22:00-06:00'}}},"
	    "{'id':'office','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/office'],"
	    "'actions':['audit.read'],'conditions':{'time':{"
	    "'days':['mon','tue','wed','thu','fri'],'hours':'09:00-17:00'}}},"
	    "{'id':'expired','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/expired'],"
	    "'actions':['key.read'],'conditions':{'time':{"
	    "'after':'2020-01-01T00:00:00Z','before':'2021-01-01T00:00:00Z'}}}"
	    "]}",
	    cases);
}

static void
test_events(void **state)
{
#define LC .principal = "custody:scheduler", .action = POLICY_LIFECYCLE_EVENT
	static const struct rcase cases[] = {
	    {"listed event", LC, .event = "agent.retired", .allow = 1,
		.rule = "ev"},
	    {"other listed event", LC, .event = "task.completed", .allow = 1,
		.rule = "ev"},
	    {"unlisted event", LC, .event = "owner.offboarded",
		.reason = "owner.offboarded"},
	    {"unknown event", LC, .event = "agent.born", .reason = "event"},
	    {"no event", LC, .reason = "event"},
	    {"rule without events: any event", .action = POLICY_LIFECYCLE_EVENT,
		.principal = "unix:uid=0", .event = "key.compromised",
		.allow = 1, .rule = "any"},
	};
#undef LC

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'ev','effect':'allow','principals':['custody:scheduler'],"
	    "'actions':['lifecycle.event'],"
	    "'conditions':{'events':['agent.retired','task.completed']}},"
	    "{'id':'any','effect':'allow','principals':['unix:uid=0'],"
	    "'actions':['lifecycle.event']}]}",
	    cases);
}

static void
test_key_create_conditions(void **state)
{
#define KC   .action = POLICY_KEY_CREATE
#define P(x) .principal = "spiffe://example.org/broker/" x
	static const struct rcase cases[] = {
	    /* task: "required" (and max_key_ttl 1d) */
	    {"task and ttl", KC, .task = "t-1", .key_ttl = 3600, .allow = 1,
		.rule = "jit"},
	    {"no task", KC, .key_ttl = 3600, .reason = "task"},
	    {"task, no ttl", KC, .task = "t-1", .reason = "ttl"},
	    {"task, ttl equal to max_key_ttl", KC, .task = "t-1",
		.key_ttl = 86400, .allow = 1, .rule = "jit"},
	    {"task, ttl one past", KC, .task = "t-1", .key_ttl = 86401,
		.reason = "max_key_ttl"},
	    /* max_key_ttl alone */
	    {"ttl only: no task is fine", KC, P("b"), .key_ttl = 60, .allow = 1,
		.rule = "ttl"},
	    {"ttl only: no ttl", KC, P("b"), .reason = "ttl"},
	    {"ttl only: at the max", KC, P("b"), .key_ttl = 600, .allow = 1,
		.rule = "ttl"},
	    {"ttl only: past the max", KC, P("b"), .key_ttl = 601,
		.reason = "max_key_ttl"},
	    /* task alone */
	    {"task only: task, no ttl", KC, P("c"), .task = "t-2", .allow = 1,
		.rule = "task"},
	    {"task only: no task", KC, P("c"), .reason = "task"},
	};
#undef KC
#undef P

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'jit','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['key.create'],"
	    "'conditions':{'task':'required','max_key_ttl':'1d'}},"
	    "{'id':'ttl','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['key.create'],'conditions':{'max_key_ttl':'10m'}},"
	    "{'id':'task','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/c'],"
	    "'actions':['key.create'],'conditions':{'task':'required'}}]}",
	    cases);
}

/* A window that closes at the Unix epoch is closed now: 1970-01-01T00:00:00Z
 * is a time like any other, not "no bound". */
static void
test_time_epoch(void **state)
{
	static const struct rcase cases[] = {
	    {"before the epoch: closed long ago", .action = POLICY_KEY_READ,
		.reason = "window"},
	    {"after the epoch: open", .action = POLICY_KEY_READ,
		.principal = "spiffe://example.org/broker/b", .allow = 1,
		.rule = "since-epoch"},
	};

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'until-epoch','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['key.read'],"
	    "'conditions':{'time':{'before':'1970-01-01T00:00:00Z'}}},"
	    "{'id':'since-epoch','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['key.read'],"
	    "'conditions':{'time':{'after':'1970-01-01T00:00:00Z'}}}]}",
	    cases);
}

/* ---- rate limits ----------------------------------------------------- */

/* Evaluate c at t (ms) and check allow / rate_limited / rule. */
static void
rate_step(struct policy *p, struct rcase c, int64_t t, int allow, int limited,
    const char *rule, int line)
{
	struct policy_decision d;

	c.at = "1970-01-01T00:00:00Z";
	c.dms = t;
	eval_case(p, &c, &d);
	if (d.allow != allow || d.rate_limited != limited ||
	    strcmp(d.rule, rule) != 0)
		fail_msg("line %d (%s, t=%lld): got allow=%d rate_limited=%d "
			 "rule '%s' (%s), want allow=%d rate_limited=%d "
			 "rule '%s'",
		    line, c.what ? c.what : "", (long long)t, d.allow,
		    d.rate_limited, d.rule, d.reason, allow, limited, rule);
	if (limited && strstr(d.reason, "rate limited") == NULL)
		fail_msg("line %d: reason '%s'", line, d.reason);
}

#define OK(c, t, rule)	  rate_step(p, c, t, 1, 0, rule, __LINE__)
#define LIMIT(c, t, rule) rate_step(p, c, t, 0, 1, rule, __LINE__)
#define T0		  1795428000000ll /* 2026-11-23T10:00:00Z in ms */

static void
test_rate_bucket(void **state)
{
	struct policy *p;
	struct rcase c = {"burst", .action = POLICY_KEY_READ};
	int i;

	(void)state;
	assert_int_equal(T0, tsec(NOW) * 1000);
	/* 2 per minute, burst 2 */
	p = load("{'version':1,'rules':[{'id':'limited','effect':'allow',"
		 "'principals':['" BROKER "'],'actions':['key.read'],"
		 "'conditions':{'rate':{'per_principal':"
		 "{'limit':2,'per':'1m'}}}}]}");
	OK(c, T0, "limited");
	OK(c, T0, "limited");
	LIMIT(c, T0, "limited");
	LIMIT(c, T0 + 1000, "limited");
	/* one token every 30 s, counted in milliseconds */
	LIMIT(c, T0 + 29999, "limited");
	OK(c, T0 + 30000, "limited");
	LIMIT(c, T0 + 30000, "limited");
	OK(c, T0 + 60000, "limited");
	LIMIT(c, T0 + 60001, "limited");
	/* a long pause fills the bucket up to the burst, no more */
	OK(c, T0 + 3600000, "limited");
	OK(c, T0 + 3600000, "limited");
	LIMIT(c, T0 + 3600000, "limited");
	policy_free(p);

	/* an explicit burst larger than the limit */
	p = load("{'version':1,'rules':[{'id':'bursty','effect':'allow',"
		 "'principals':['" BROKER "'],'actions':['key.read'],"
		 "'conditions':{'rate':{'per_principal':"
		 "{'limit':1,'per':'1h','burst':5}}}}]}");
	for (i = 0; i < 5; i++)
		OK(c, T0, "bursty");
	LIMIT(c, T0, "bursty");
	LIMIT(c, T0 + 3599999, "bursty");
	OK(c, T0 + 3600000, "bursty");
	LIMIT(c, T0 + 3600000, "bursty");
	policy_free(p);

	/* a reload fills the buckets again */
	p = load("{'version':1,'rules':[{'id':'one','effect':'allow',"
		 "'principals':['" BROKER "'],'actions':['key.read'],"
		 "'conditions':{'rate':{'per_principal':"
		 "{'limit':1,'per':'1d'}}}}]}");
	OK(c, T0, "one");
	LIMIT(c, T0, "one");
	policy_free(p);
	p = load("{'version':1,'rules':[{'id':'one','effect':'allow',"
		 "'principals':['" BROKER "'],'actions':['key.read'],"
		 "'conditions':{'rate':{'per_principal':"
		 "{'limit':1,'per':'1d'}}}}]}");
	OK(c, T0, "one");
	policy_free(p);
}

static void
test_rate_separate_buckets(void **state)
{
	struct policy *p;
	struct rcase a = {"a", .action = POLICY_KEY_READ};
	struct rcase b = {"b", .action = POLICY_KEY_READ,
	    .principal = "spiffe://example.org/broker/b"};
	struct rcase k1 = {"k1", .action = POLICY_KEY_READ, .key_id = "k1"};
	struct rcase k2 = {"k2", .action = POLICY_KEY_READ, .key_id = "k2"};
	struct rcase k1b = {"k1 from b", .action = POLICY_KEY_READ,
	    .key_id = "k1", .principal = "spiffe://example.org/broker/b"};
	struct rcase ag1 = {"agent a", .action = POLICY_KEY_READ};
	struct rcase ag2 = {"agent b", .action = POLICY_KEY_READ,
	    .agent = "spiffe://example.org/agent/b"};
	struct rcase ag1x = {"agent a, x509-ca", .action = POLICY_KEY_READ,
	    .purpose = "x509-ca"};

	(void)state;
	/* per_principal: one bucket per principal */
	p = load("{'version':1,'rules':[{'id':'pp','effect':'allow',"
		 "'principals':['spiffe://example.org/broker/*'],"
		 "'actions':['key.read'],'conditions':{'rate':{"
		 "'per_principal':{'limit':1,'per':'1h'}}}}]}");
	OK(a, T0, "pp");
	LIMIT(a, T0, "pp");
	OK(b, T0, "pp");
	LIMIT(b, T0, "pp");
	LIMIT(a, T0 + 1000, "pp");
	policy_free(p);

	/* per_key: one bucket per key id, whoever asks */
	p = load("{'version':1,'rules':[{'id':'pk','effect':'allow',"
		 "'principals':['spiffe://example.org/broker/*'],"
		 "'actions':['key.read'],'conditions':{'rate':{"
		 "'per_key':{'limit':1,'per':'1h'}}}}]}");
	OK(k1, T0, "pk");
	LIMIT(k1, T0, "pk");
	LIMIT(k1b, T0, "pk");
	OK(k2, T0, "pk");
	LIMIT(k2, T0, "pk");
	/* without an id: agent and purpose */
	OK(ag1, T0, "pk");
	LIMIT(ag1, T0, "pk");
	OK(ag2, T0, "pk");
	OK(ag1x, T0, "pk");
	LIMIT(ag1x, T0, "pk");
	policy_free(p);

	/* buckets are per rule: two rules, two buckets */
	p = load("{'version':1,'rules':["
		 "{'id':'r1','effect':'allow','principals':['" BROKER "'],"
		 "'actions':['key.read'],'conditions':{'rate':{"
		 "'per_principal':{'limit':1,'per':'1h'}}}},"
		 "{'id':'r2','effect':'allow','principals':['" BROKER "'],"
		 "'actions':['audit.read'],'conditions':{'rate':{"
		 "'per_principal':{'limit':1,'per':'1h'}}}}]}");
	{
		struct rcase ar = {
		    "audit", .action = POLICY_AUDIT_READ, .nokey = 1};

		OK(a, T0, "r1");
		LIMIT(a, T0, "r1");
		OK(ar, T0, "r2");
		LIMIT(ar, T0, "r2");
	}
	policy_free(p);
}

/* With both limits, a refusal by one must not take a token from the other. */
static void
test_rate_both_limits(void **state)
{
	struct policy *p;
	struct rcase k[4] = {
	    {"k1", .action = POLICY_KEY_READ, .key_id = "k1"},
	    {"k2", .action = POLICY_KEY_READ, .key_id = "k2"},
	    {"k3", .action = POLICY_KEY_READ, .key_id = "k3"},
	    {"k4", .action = POLICY_KEY_READ, .key_id = "k4"},
	};
	struct rcase bk2 = {"b, k2", .action = POLICY_KEY_READ, .key_id = "k2",
	    .principal = "spiffe://example.org/broker/b"};
	struct policy_decision d;

	(void)state;
	/* per_key refuses: the principal's token stays */
	p = load("{'version':1,'rules':[{'id':'both','effect':'allow',"
		 "'principals':['spiffe://example.org/broker/*'],"
		 "'actions':['key.read'],'conditions':{'rate':{"
		 "'per_principal':{'limit':2,'per':'1h'},"
		 "'per_key':{'limit':1,'per':'1h'}}}}]}");
	OK(k[0], T0, "both");	 /* principal 1 left, k1 0 */
	LIMIT(k[0], T0, "both"); /* by per_key */
	LIMIT(k[0], T0, "both"); /* by per_key, again */
	OK(k[1], T0, "both");	 /* the principal still had one */
	LIMIT(k[2], T0, "both"); /* now by per_principal */
	eval_case(p, &k[2], &d);
	assert_non_null(strstr(d.reason, "per principal"));
	eval_case(p, &k[0], &d);
	assert_int_equal(d.rate_limited, 1);
	policy_free(p);

	/* per_principal refuses: the key's token stays */
	p = load("{'version':1,'rules':[{'id':'both','effect':'allow',"
		 "'principals':['spiffe://example.org/broker/*'],"
		 "'actions':['key.read'],'conditions':{'rate':{"
		 "'per_principal':{'limit':1,'per':'1h'},"
		 "'per_key':{'limit':1,'per':'1h'}}}}]}");
	OK(k[0], T0, "both");	 /* a: 0 left; k1: 0 left */
	LIMIT(k[1], T0, "both"); /* by per_principal; k2 untouched */
	LIMIT(k[3], T0, "both");
	OK(bk2, T0, "both"); /* b takes k2's token */
	LIMIT(bk2, T0, "both");
	eval_case(p, &bk2, &d);
	assert_non_null(strstr(d.reason, "per principal"));
	policy_free(p);
}

/* The rule id of a rate-limited refusal is that of the limiting rule; only
 * allowed requests take tokens. */
static void
test_rate_rule_and_tokens(void **state)
{
	struct policy *p;
	struct rcase good = {"good", .aud = {"https://api.example.org"}};
	struct rcase bad = {"bad audience", .aud = {"https://evil.example"}};
	struct rcase denied = {
	    "denied", .aud = {"https://api.example.org"}, .purpose = "x509-ca"};

	(void)state;
	/* the first rule fails a condition; the second allows, limited */
	p = load(
	    "{'version':1,'rules':["
	    "{'id':'first','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'1m',"
	    "'audiences':['https://other.example.org']}},"
	    "{'id':'limited','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'1m',"
	    "'audiences':['https://api.example.org'],"
	    "'rate':{'per_principal':{'limit':1,'per':'1h'}}}},"
	    "{'id':'fallback','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'1m',"
	    "'audiences':['https://api.example.org']}},"
	    "{'id':'no-x509-ca','effect':'deny','principals':['" BROKER "'],"
	    "'actions':['credential.jwt'],'keys':{'purpose':['x509-ca']},"
	    "'conditions':{'audiences':['https://api.example.org']}}]}");
	/* refused by a condition or by a deny rule: no token taken */
	rate_step(p, bad, T0, 0, 0, "(default)", __LINE__);
	rate_step(p, denied, T0, 0, 0, "no-x509-ca", __LINE__);
	OK(good, T0, "limited");
	/* refused by the limiting rule even though "fallback" would allow */
	LIMIT(good, T0, "limited");
	LIMIT(good, T0 + 1, "limited");
	policy_free(p);
}

/* ---- matching -------------------------------------------------------- */

static void
test_principals(void **state)
{
#define KR .action = POLICY_KEY_READ
	static const struct rcase cases[] = {
	    /* unix:uid=N, exact */
	    {"uid exact", KR, .principal = "unix:uid=1000", .allow = 1,
		.rule = "uid"},
	    {"uid longer", KR, .principal = "unix:uid=10000"},
	    {"uid shorter", KR, .principal = "unix:uid=100"},
	    {"uid 0", KR, .principal = "unix:uid=0", .allow = 1,
		.rule = "root"},
	    /* spiffe: '*' is one segment */
	    {"one segment", KR, .principal = "spiffe://example.org/broker/a",
		.allow = 1, .rule = "brokers"},
	    {"two segments", KR,
		.principal = "spiffe://example.org/broker/a/b"},
	    {"empty segment", KR, .principal = "spiffe://example.org/broker/",
		.reason = "no rule"},
	    {"no trailing slash", KR,
		.principal = "spiffe://example.org/broker"},
	    {"other path", KR, .principal = "spiffe://example.org/brokers/a"},
	    {"other trust domain", KR,
		.principal = "spiffe://example.com/broker/a"},
	    {"trust domain suffix", KR,
		.principal = "spiffe://example.org.evil/broker/a"},
	    /* '*' as part of a segment */
	    {"part of a segment", KR,
		.principal = "spiffe://example.org/worker/w-17", .allow = 1,
		.rule = "workers"},
	    {"part of a segment, other prefix", KR,
		.principal = "spiffe://example.org/worker/x-17"},
	    {"part of a segment, crossing '/'", KR,
		.principal = "spiffe://example.org/worker/w-1/7"},
	    /* '**' crosses '/' */
	    {"** one level", KR, .principal = "spiffe://example.org/team/a",
		.allow = 1, .rule = "team"},
	    {"** deep", KR, .principal = "spiffe://example.org/team/a/b/c",
		.allow = 1, .rule = "team"},
	    {"** in the middle", KR,
		.principal = "spiffe://example.org/ns/a/b/sa/x", .allow = 1,
		.rule = "ns"},
	    {"** in the middle, wrong tail", KR,
		.principal = "spiffe://example.org/ns/a/b/sb/x"},
	    /* x509 subjects */
	    {"x509 exact", KR, .principal = "x509:CN=broker,O=Example",
		.allow = 1, .rule = "x509"},
	    {"x509 glob", KR, .principal = "x509:CN=svc-7,O=Example",
		.allow = 1, .rule = "x509"},
	    {"x509 other O", KR, .principal = "x509:CN=broker,O=Other"},
	    {"x509 trailing RDN", KR,
		.principal = "x509:CN=svc-7,O=Example,C=X"},
	    /* '*' stays inside one attribute value of a subject */
	    {"x509 glob over an escaped comma", KR,
		.principal = "x509:CN=svc-7\\,O=Example,O=Example"},
	    {"x509 glob over an escaped comma, alone", KR,
		.principal = "x509:CN=svc-7\\,O=Example"},
	    {"x509 glob over another RDN", KR,
		.principal = "x509:CN=svc-7,OU=Evil,O=Example"},
	    {"x509 glob over a multi-valued RDN", KR,
		.principal = "x509:CN=svc-7+OU=x,O=Example"},
	    /* the scheduler */
	    {"scheduler", .action = POLICY_LIFECYCLE_EVENT,
		.principal = "custody:scheduler", .event = "agent.retired",
		.allow = 1, .rule = "sched"},
	    {"scheduler cannot read keys", KR,
		.principal = "custody:scheduler"},
	    {"not the scheduler", .action = POLICY_LIFECYCLE_EVENT,
		.principal = "custody:scheduler2", .event = "agent.retired"},
	};
#undef KR

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'uid','effect':'allow','principals':['unix:uid=1000'],"
	    "'actions':['key.read']},"
	    "{'id':'root','effect':'allow','principals':['unix:uid=0'],"
	    "'actions':['key.read']},"
	    "{'id':'brokers','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/*'],"
	    "'actions':['key.read']},"
	    "{'id':'workers','effect':'allow',"
	    "'principals':['spiffe://example.org/worker/w-*'],"
	    "'actions':['key.read']},"
	    "{'id':'team','effect':'allow',"
	    "'principals':['spiffe://example.org/team/**'],"
	    "'actions':['key.read']},"
	    "{'id':'ns','effect':'allow',"
	    "'principals':['spiffe://example.org/ns/**/sa/*'],"
	    "'actions':['key.read']},"
	    "{'id':'x509','effect':'allow',"
	    "'principals':['x509:CN=broker,O=Example','x509:CN=svc-*,O=Example'"
	    "],"
	    "'actions':['key.read']},"
	    "{'id':'sched','effect':'allow','principals':['custody:scheduler'],"
	    "'actions':['lifecycle.event']}]}",
	    cases);
}

static void
test_key_selectors(void **state)
{
#define KR .action = POLICY_KEY_READ
#define B  .principal = "spiffe://example.org/broker/b"
	static const struct rcase cases[] = {
	    {"every field matches", KR, .allow = 1, .rule = "sel"},
	    {"other owner glob match", KR, .owner = "team-zeta", .allow = 1,
		.rule = "sel"},
	    {"other alg listed", KR, .alg = "ed25519", .allow = 1,
		.rule = "sel"},
	    {"agent two segments", KR,
		.agent = "spiffe://example.org/agent/a/b"},
	    {"agent other", KR, .agent = "spiffe://example.org/robot/a"},
	    {"agent: '*' needs a segment", KR,
		.agent = "spiffe://example.org/agent/"},
	    {"owner other", KR, .owner = "ops"},
	    {"purpose other", KR, .purpose = "x509-ca"},
	    {"purpose unknown", KR, .purpose = "signing"},
	    {"alg other", KR, .alg = "rsa-pss-3072"},
	    {"task: false refuses a task key", KR, .task = "t-1"},
	    {"task: true wants a task key", KR, B, .task = "t-1", .allow = 1,
		.rule = "tasks"},
	    {"task: true refuses a plain key", KR, B},
	    {"selectors are per rule", KR, B, .task = "t-1", .owner = "ops",
		.purpose = "checkpoint", .allow = 1, .rule = "tasks"},
	    {"owner only: matches", KR,
		.principal = "spiffe://example.org/broker/c", .owner = "ops",
		.allow = 1, .rule = "owner"},
	    {"owner only: other owner", KR,
		.principal = "spiffe://example.org/broker/c", .owner = "ops-2"},
	};
#undef KR
#undef B

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'sel','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['key.read'],'keys':{"
	    "'agent':['spiffe://example.org/agent/*'],'owner':['team-*'],"
	    "'purpose':['jwt'],'alg':['ed25519','ecdsa-p256'],'task':false}},"
	    "{'id':'tasks','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['key.read'],'keys':{'task':true}},"
	    "{'id':'owner','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/c'],"
	    "'actions':['key.read'],'keys':{'owner':['ops']}}]}",
	    cases);
}

/* A rule with keys never matches a request about no key. */
static void
test_keys_never_match_keyless(void **state)
{
	static const struct rcase cases[] = {
	    {"audit.read, no key", .action = POLICY_AUDIT_READ, .nokey = 1},
	    {"checkpoint.sign, no key", .action = POLICY_CHECKPOINT_SIGN,
		.nokey = 1},
	    {"key.read with a matching key", .action = POLICY_KEY_READ,
		.allow = 1, .rule = "keyed"},
	    {"keyless rule for b", .action = POLICY_AUDIT_READ, .nokey = 1,
		.principal = "spiffe://example.org/broker/b", .allow = 1,
		.rule = "plain"},
	};
	/* a caller that passes a key with a keyless action anyway */
	static const struct rcase stray[] = {
	    {"audit.read with a stray key", .action = POLICY_AUDIT_READ},
	    {"checkpoint.sign with a stray key",
		.action = POLICY_CHECKPOINT_SIGN},
	};
	static const char json[] =
	    "{'version':1,'rules':["
	    "{'id':'keyed','effect':'allow','principals':['" BROKER "'],"
	    "'actions':['key.read','audit.read','checkpoint.sign'],"
	    "'keys':{'purpose':['jwt']}},"
	    "{'id':'plain','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['audit.read']}]}";

	(void)state;
	RUN(json, cases);
	RUN(json, stray);
}

static void
test_deny_wins(void **state)
{
	static const char *const policies[] = {
	    /* deny last */
	    "{'version':1,'rules':["
	    "{'id':'allow-all','effect':'allow',"
	    "'principals':['spiffe://example.org/**'],"
	    "'actions':['key.read','key.destroy']},"
	    "{'id':'no-destroy','effect':'deny',"
	    "'principals':['spiffe://example.org/broker/*'],"
	    "'actions':['key.destroy']},"
	    "{'id':'no-b','effect':'deny',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['key.read'],'keys':{'purpose':['jwt']}},"
	    "{'id':'closed','effect':'deny',"
	    "'principals':['spiffe://example.org/broker/c'],"
	    "'actions':['key.read'],"
	    "'conditions':{'time':{'before':'2020-01-01T00:00:00Z'}}}]}",
	    /* deny first */
	    "{'version':1,'rules':["
	    "{'id':'closed','effect':'deny',"
	    "'principals':['spiffe://example.org/broker/c'],"
	    "'actions':['key.read'],"
	    "'conditions':{'time':{'before':'2020-01-01T00:00:00Z'}}},"
	    "{'id':'no-b','effect':'deny',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['key.read'],'keys':{'purpose':['jwt']}},"
	    "{'id':'no-destroy','effect':'deny',"
	    "'principals':['spiffe://example.org/broker/*'],"
	    "'actions':['key.destroy']},"
	    "{'id':'allow-all','effect':'allow',"
	    "'principals':['spiffe://example.org/**'],"
	    "'actions':['key.read','key.destroy']}]}",
	};
	static const struct rcase cases[] = {
	    {"read allowed", .action = POLICY_KEY_READ, .allow = 1,
		.rule = "allow-all"},
	    {"destroy denied", .action = POLICY_KEY_DESTROY,
		.rule = "no-destroy", .reason = "no-destroy"},
	    {"destroy by a non-broker", .action = POLICY_KEY_DESTROY,
		.principal = "spiffe://example.org/admin/x", .allow = 1,
		.rule = "allow-all"},
	    {"deny with a key selector: matching key",
		.action = POLICY_KEY_READ,
		.principal = "spiffe://example.org/broker/b", .rule = "no-b"},
	    {"deny with a key selector: other key", .action = POLICY_KEY_READ,
		.principal = "spiffe://example.org/broker/b",
		.purpose = "x509-ca", .allow = 1, .rule = "allow-all"},
	    {"deny whose conditions do not hold", .action = POLICY_KEY_READ,
		.principal = "spiffe://example.org/broker/c", .allow = 1,
		.rule = "allow-all"},
	    {"deny whose conditions hold", .action = POLICY_KEY_READ,
		.principal = "spiffe://example.org/broker/c",
		.at = "2019-06-01T00:00:00Z", .rule = "closed"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(policies) / sizeof(policies[0]); i++)
		RUN(policies[i], cases);
}

/*
 * A deny rule without conditions denies every request it matches: "All
 * conditions given must hold" and it gives none. The JWT request fields
 * that an allow rule must permit explicitly (an audience, a custom claim, a
 * sub other than the agent, an act claim) must not let a request slip past
 * it.
 */
static void
test_deny_without_conditions(void **state)
{
#define BB .principal = "spiffe://example.org/broker/b"
	static const struct rcase cases[] = {
	    {"plain request", BB, .rule = "deny-b"},
	    {"request with an audience", BB, .aud = {"https://api.example.org"},
		.rule = "deny-b"},
	    {"request with a custom claim", BB, .claims = {"scope"},
		.rule = "deny-b"},
	    {"request with another sub", BB, .sub = "user@example.org",
		.rule = "deny-b"},
	    {"request with act", BB, .act = 1, .rule = "deny-b"},
	    {"request with everything", BB, .aud = {"https://api.example.org"},
		.claims = {"scope"}, .sub = "user@example.org", .act = 1,
		.rule = "deny-b"},
	    {"deny-aud: listed audience", .aud = {"https://evil.example.org"},
		.rule = "deny-aud"},
	    {"deny-aud: other audience", .aud = {"https://api.example.org"},
		.allow = 1, .rule = "all"},
	    {"others: allowed with everything",
		.aud = {"https://api.example.org"}, .claims = {"scope"},
		.sub = "user@example.org", .act = 1, .allow = 1, .rule = "all"},
	};
#undef BB

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'all','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/*'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'1h',"
	    "'audiences':['**'],'claims':['scope'],'sub':'any','act':true}},"
	    "{'id':'deny-b','effect':'deny',"
	    "'principals':['spiffe://example.org/broker/b'],"
	    "'actions':['credential.jwt']},"
	    "{'id':'deny-aud','effect':'deny',"
	    "'principals':['spiffe://example.org/broker/*'],"
	    "'actions':['credential.jwt'],"
	    "'conditions':{'audiences':['https://evil.example.org']}}]}",
	    cases);
}

static void
test_first_allow_and_reasons(void **state)
{
	static const struct rcase cases[] = {
	    {"first of two", .aud = {"https://api.example.org"}, .allow = 1,
		.rule = "first", .want_ttl = 60},
	    {"first fails, second decides", .aud = {"https://b.example.org"},
		.allow = 1, .rule = "second", .want_ttl = 120},
	    {"both fail: first failing rule named",
		.aud = {"https://c.example.org"}, .reason = "rule first"},
	    {"both fail: its condition named", .aud = {"https://c.example.org"},
		.reason = "audience"},
	    {"key selector matches: that rule is named first",
		.principal = "spiffe://example.org/broker/k",
		.aud = {"https://c.example.org"}, .reason = "rule selected"},
	    {"key selector does not match: that rule is not named",
		.principal = "spiffe://example.org/broker/k",
		.agent = "spiffe://example.org/agent/zz",
		.aud = {"https://c.example.org"}, .reason = "rule first"},
	    {"a matching rule's other condition is named",
		.principal = "spiffe://example.org/broker/k",
		.agent = "spiffe://example.org/agent/zz",
		.aud = {"https://k.example.org"}, .at = "2025-06-01T00:00:00Z",
		.reason = "rule first: before"},
	    {"no rule matches", .principal = "spiffe://example.org/nobody",
		.reason = "no rule"},
	};

	(void)state;
	RUN("{'version':1,'rules':["
	    "{'id':'selected','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/k'],"
	    "'actions':['credential.jwt'],"
	    "'keys':{'agent':['spiffe://example.org/agent/a']},"
	    "'conditions':{'max_ttl':'1m','audiences':['https://nothing']}},"
	    "{'id':'first','effect':'allow','principals':['" BROKER "',"
	    "'spiffe://example.org/broker/k'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'1m',"
	    "'audiences':['https://api.example.org','https://k.example.org'],"
	    "'time':{'after':'2026-01-01T00:00:00Z'}}},"
	    "{'id':'second','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/*'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'2m',"
	    "'audiences':['https://api.example.org','https://b.example.org']}},"
	    "{'id':'later','effect':'allow',"
	    "'principals':['spiffe://example.org/broker/k'],"
	    "'actions':['credential.jwt'],'conditions':{'max_ttl':'2m',"
	    "'time':{'before':'2020-01-01T00:00:00Z'}}}]}",
	    cases);
}

/* Requests that are wrong in themselves are refused, whatever the policy. */
static void
test_bad_requests(void **state)
{
	static const int keyed[] = {POLICY_CREDENTIAL_JWT,
	    POLICY_CREDENTIAL_X509, POLICY_KEY_CREATE, POLICY_KEY_ROTATE,
	    POLICY_KEY_DESTROY, POLICY_KEY_READ, POLICY_LIFECYCLE_EVENT};
	struct policy *p;
	struct policy_decision d;
	struct rcase c;
	size_t i;

	(void)state;
	p = load("{'version':1,'rules':[{'id':'all','effect':'allow',"
		 "'principals':['" BROKER "','custody:scheduler'],"
		 "'actions':['credential.jwt','credential.x509','key.create',"
		 "'key.rotate','key.destroy','key.read','lifecycle.event',"
		 "'audit.read','checkpoint.sign'],"
		 "'conditions':{'max_ttl':'1h','x509':{'csr_keys':['ed25519']}}"
		 "}]}");
	/* no policy in force */
	memset(&c, 0, sizeof(c));
	c.what = "no policy";
	c.action = POLICY_AUDIT_READ;
	c.nokey = 1;
	eval_case(NULL, &c, &d);
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.rule, "(no policy)");
	assert_true(d.reason[0] != '\0');
	/* sanity: the policy allows that one */
	eval_case(p, &c, &d);
	assert_int_equal(d.allow, 1);
	/* unknown actions */
	c.what = "action -1";
	c.action = -1;
	check_case(p, &c);
	c.what = "action POLICY_NACTIONS";
	c.action = POLICY_NACTIONS;
	check_case(p, &c);
	c.what = "action 1000";
	c.action = 1000;
	check_case(p, &c);
	/* no principal */
	c.action = POLICY_AUDIT_READ;
	c.what = "empty principal";
	c.principal = "";
	check_case(p, &c);
	{
		struct policy_request q = {.principal = NULL,
		    .action = POLICY_AUDIT_READ,
		    .now_ms = T0};

		policy_eval(p, &q, &d);
		assert_int_equal(d.allow, 0);
		assert_string_equal(d.rule, "(default)");
	}
	/* keyed actions without a key */
	for (i = 0; i < sizeof(keyed) / sizeof(keyed[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.what = policy_action_name(keyed[i]);
		c.action = keyed[i];
		c.nokey = 1;
		c.csr_key = "ed25519";
		c.event = "agent.retired";
		check_case(p, &c);
		/* and with the key: allowed */
		c.nokey = 0;
		c.allow = 1;
		c.rule = "all";
		check_case(p, &c);
	}
	policy_free(p);
}

static void
test_action_names(void **state)
{
	static const char *const names[POLICY_NACTIONS] = {"credential.jwt",
	    "credential.x509", "key.create", "key.rotate", "key.destroy",
	    "key.read", "lifecycle.event", "audit.read", "checkpoint.sign",
	    "ca.manage"};
	int a;

	(void)state;
	for (a = 0; a < POLICY_NACTIONS; a++) {
		assert_string_equal(policy_action_name(a), names[a]);
		assert_int_equal(policy_action_parse(names[a]), a);
	}
	assert_null(policy_action_name(-1));
	assert_null(policy_action_name(POLICY_NACTIONS));
	assert_int_equal(policy_action_parse("credential"), -1);
	assert_int_equal(policy_action_parse("Key.Read"), -1);
	assert_int_equal(policy_action_parse(""), -1);
	assert_int_equal(policy_action_parse(NULL), -1);
}

/* ---- malformed policies ---------------------------------------------- */

#define V1 "{'version':1,"
#define RS V1 "'rules':["
#define RE "]}"
/* the start of a rule, up to its actions */
#define RH  "{'id':'r','effect':'allow','principals':['spiffe://example.org/b'],"
#define RHD "{'id':'r','effect':'deny','principals':['spiffe://example.org/b'],"
#define JWT "'actions':['credential.jwt'],"

struct bad {
	const char *json;
	int rc;
	const char *want, *want2;
};

static const struct bad bad_policies[] = {
    /* syntax */
    {"{'version':1,'rules':[]", CUSTODY_E_PARSE, "t:1:", NULL},
    {"{'version':1,'rules':[]} x", CUSTODY_E_PARSE, "t:1:", NULL},
    {"{'version':1,'rules':[]}{}", CUSTODY_E_PARSE, "t:1:", NULL},
    {"{'version':1,'rules':[],}", CUSTODY_E_PARSE, "t:1:", NULL},
    {"", CUSTODY_E_PARSE, "t:", NULL},
    {"{'version':1,\n'rules':[\n{'id':'r',,}]}", CUSTODY_E_PARSE, "t:3:", NULL},
    /* duplicate keys (found by the parser, with line and column) */
    {"{'version':1,'rules':[],'version':1}", CUSTODY_E_PARSE,
	"t:1:", "duplicate"},
    {RS RH "'actions':['key.read'],'effect':'deny'}" RE, CUSTODY_E_PARSE,
	"t:1:", "duplicate"},
    {RS RH "'actions':['key.read'],'keys':{'owner':['a'],'owner':['b']}}" RE,
	CUSTODY_E_PARSE, "t:1:", "duplicate"},
    /* top level */
    {"[]", CUSTODY_E_CONFIG, "a policy is a JSON object", NULL},
    {"{'version':1,'rules':[],'extra':true}", CUSTODY_E_CONFIG, "/extra",
	"unknown field"},
    {"{'version':1,'rules':[],'a/b~':1}", CUSTODY_E_CONFIG, "/a~1b~0",
	"unknown field"},
    {"{'rules':[]}", CUSTODY_E_CONFIG, "/version", "required"},
    {"{'version':2,'rules':[]}", CUSTODY_E_CONFIG, "/version", "version 1"},
    {"{'version':'1','rules':[]}", CUSTODY_E_CONFIG, "/version", NULL},
    {"{'version':1.0,'rules':[]}", CUSTODY_E_CONFIG, "/version", NULL},
    {"{'version':1}", CUSTODY_E_CONFIG, "/rules", "required"},
    {"{'version':1,'rules':{}}", CUSTODY_E_CONFIG, "/rules",
	"must be an array"},
    {"{'version':1,'rules':'none'}", CUSTODY_E_CONFIG, "/rules",
	"must be an array"},
    {"{'version':1,'rules':[],'description':7}", CUSTODY_E_CONFIG,
	"/description", "must be a string"},
    /* rules */
    {RS "'r'" RE, CUSTODY_E_CONFIG, "/rules/0", "must be an object"},
    {RS RH "'actions':['key.read'],'priority':1}" RE, CUSTODY_E_CONFIG,
	"/rules/0/priority", "unknown field"},
    {RS "{'effect':'allow','principals':['unix:uid=1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/id", "required"},
    {RS "{'id':7,'effect':'allow','principals':['unix:uid=1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/id", "must be a string"},
    {RS "{'id':'Bad','effect':'allow','principals':['unix:uid=1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/id", "[a-z0-9][a-z0-9._-]*"},
    {RS "{'id':'-r','effect':'allow','principals':['unix:uid=1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/id", "[a-z0-9]"},
    {RS "{'id':'a b','effect':'allow','principals':['unix:uid=1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/id", "[a-z0-9]"},
    {RS "{'id':'r/1','effect':'allow','principals':['unix:uid=1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/id", "[a-z0-9]"},
    {RS "{'id':'"
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
	"'effect':'allow','principals':['unix:uid=1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/id", "64"},
    {RS RH "'actions':['key.read']}," RH "'actions':['audit.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/1/id", "earlier rule"},
    {RS "{'id':'r','principals':['unix:uid=1'],'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/effect", "required"},
    {RS "{'id':'r','effect':'permit','principals':['unix:uid=1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/effect", "allow"},
    {RS RH "'description':5,'actions':['key.read']}" RE, CUSTODY_E_CONFIG,
	"/rules/0/description", "must be a string"},
    /* actions */
    {RS RH "'actions':['key.steal']}" RE, CUSTODY_E_CONFIG,
	"/rules/0/actions/0", "unknown action"},
    {RS RH "'actions':['key.read','key.*']}" RE, CUSTODY_E_CONFIG,
	"/rules/0/actions/1", "unknown action"},
    {RS RH "'actions':[]}" RE, CUSTODY_E_CONFIG, "/rules/0/actions",
	"must not be empty"},
    {RS RH "'actions':'key.read'}" RE, CUSTODY_E_CONFIG, "/rules/0/actions",
	"must be an array"},
    {RS RH "'actions':['key.read',3]}" RE, CUSTODY_E_CONFIG,
	"/rules/0/actions/1", "must be a string"},
    {RS RH "'actions':['key.read','key.read']}" RE, CUSTODY_E_CONFIG,
	"/rules/0/actions/1", "twice"},
    {RS "{'id':'r','effect':'allow','principals':['unix:uid=1']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/actions", "required"},
    /* principals */
    {RS "{'id':'r','effect':'allow','actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals", "required"},
    {RS "{'id':'r','effect':'allow','principals':[],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals", "must not be empty"},
    {RS "{'id':'r','effect':'allow','principals':'unix:uid=1',"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals", "must be an array"},
    {RS "{'id':'r','effect':'allow','principals':[1000],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "must be a string"},
    {RS "{'id':'r','effect':'allow','principals':['root'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "not a principal"},
    {RS "{'id':'r','effect':'allow','principals':['https://example.org/a'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "not a principal"},
    {RS "{'id':'r','effect':'allow',"
	"'principals':['unix:uid=1','custody:cron'],'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/1", "not a principal"},
    {RS "{'id':'r','effect':'allow','principals':['unix:uid=abc'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "unix:uid="},
    {RS "{'id':'r','effect':'allow','principals':['unix:uid='],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "unix:uid="},
    {RS "{'id':'r','effect':'allow','principals':['unix:uid=10*'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "unix:uid="},
    {RS "{'id':'r','effect':'allow','principals':['unix:uid=-1'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "unix:uid="},
    {RS "{'id':'r','effect':'allow',"
	"'principals':['spiffe://*.example.org/a'],'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "trust domain"},
    {RS "{'id':'r','effect':'allow',"
	"'principals':['spiffe://example.*/a'],'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "trust domain"},
    {RS "{'id':'r','effect':'allow','principals':['spiffe://**'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "trust domain"},
    {RS "{'id':'r','effect':'allow','principals':['spiffe:///a'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "trust domain"},
    {RS "{'id':'r','effect':'allow',"
	"'principals':['spiffe://example.org/***'],'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "***"},
    {RS "{'id':'r','effect':'allow',"
	"'principals':['x509:CN=a***'],'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "***"},
    {RS "{'id':'r','effect':'allow','principals':[''],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "empty"},
    {RS "{'id':'r','effect':'allow','principals':['x509:'],"
	"'actions':['key.read']}" RE,
	CUSTODY_E_CONFIG, "/rules/0/principals/0", "empty"},
    /* keys */
    {RS RH "'actions':['audit.read'],'keys':{'purpose':['jwt']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/keys", "about a key"},
    {RS RH "'actions':['audit.read','checkpoint.sign'],"
	   "'keys':{'owner':['a']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/keys", "about a key"},
    {RS RH "'actions':['key.read'],'keys':{'name':['a']}}" RE, CUSTODY_E_CONFIG,
	"/rules/0/keys/name", "unknown field"},
    {RS RH "'actions':['key.read'],'keys':{'purpose':['signing']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/keys/purpose/0", "signing"},
    {RS RH "'actions':['key.read'],'keys':{'alg':['rsa-1024']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/keys/alg/0", "rsa-1024"},
    {RS RH "'actions':['key.read'],'keys':{'task':'yes'}}" RE, CUSTODY_E_CONFIG,
	"/rules/0/keys/task", "true or false"},
    {RS RH "'actions':['key.read'],'keys':{'agent':'spiffe://x/a'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/keys/agent", "must be an array"},
    {RS RH "'actions':['key.read'],'keys':{'agent':['a/***']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/keys/agent/0", "***"},
    {RS RH "'actions':['key.read'],'keys':[]}" RE, CUSTODY_E_CONFIG,
	"/rules/0/keys", "must be an object"},
    /* conditions */
    {RS RH "'actions':['key.read'],'conditions':{'mfa':true}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/mfa", "unknown condition"},
    {RS RH "'actions':['key.read'],'conditions':[]}" RE, CUSTODY_E_CONFIG,
	"/rules/0/conditions", "must be an object"},
    {RS RH JWT "'conditions':{'audiences':['a']}}" RE, CUSTODY_E_CONFIG,
	"/rules/0", "max_ttl"},
    {RS RH "'actions':['credential.x509'],'conditions':{'max_ttl':'1h'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0", "x509"},
    {RS RH JWT "'conditions':{'max_ttl':'15 minutes'}}" RE, CUSTODY_E_CONFIG,
	"/rules/0/conditions/max_ttl", "not a duration"},
    {RS RH JWT "'conditions':{'max_ttl':'0s'}}" RE, CUSTODY_E_CONFIG,
	"/rules/0/conditions/max_ttl", "not a duration"},
    {RS RH JWT "'conditions':{'max_ttl':'-5m'}}" RE, CUSTODY_E_CONFIG,
	"/rules/0/conditions/max_ttl", "not a duration"},
    {RS RH JWT "'conditions':{'max_ttl':'1w'}}" RE, CUSTODY_E_CONFIG,
	"/rules/0/conditions/max_ttl", "not a duration"},
    {RS RH JWT "'conditions':{'max_ttl':900}}" RE, CUSTODY_E_CONFIG,
	"/rules/0/conditions/max_ttl", "must be a string"},
    {RS RH JWT "'conditions':{'max_ttl':''}}" RE, CUSTODY_E_CONFIG,
	"/rules/0/conditions/max_ttl", "empty"},
    {RS RH "'actions':['key.create'],'conditions':{'audiences':['a']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/audiences",
	"none of the rule's actions"},
    {RS RH "'actions':['key.read'],'conditions':{'max_ttl':'1h'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/max_ttl",
	"none of the rule's actions"},
    {RS RH "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	   "'x509':{'csr_keys':['ed25519']},'sub':'any'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/sub", "none of the rule's"},
    {RS RH JWT
	"'conditions':{'max_ttl':'1h','x509':{'csr_keys':['ed25519']}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/x509", "none of the rule's"},
    {RS RH "'actions':['audit.read'],'conditions':{'max_key_age':'1d'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/max_key_age",
	"none of the rule's"},
    {RS RH
	"'actions':['key.read'],'conditions':{'events':['agent.retired']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/events", "none of the rule's"},
    {RS RH "'actions':['key.read'],'conditions':{'task':'required'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/task", "none of the rule's"},
    {RS RH "'actions':['key.rotate'],'conditions':{'max_key_ttl':'1h'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/max_key_ttl",
	"none of the rule's"},
    {RS RH JWT "'conditions':{'max_ttl':'1h','audiences':'a'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/audiences", "must be an array"},
    {RS RH JWT "'conditions':{'max_ttl':'1h','audiences':['']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/audiences/0", "empty"},
    {RS RH JWT "'conditions':{'max_ttl':'1h','sub':'self'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/sub", "any"},
    {RS RH JWT "'conditions':{'max_ttl':'1h','act':'yes'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/act", "true or false"},
    {RS RH JWT "'conditions':{'max_ttl':'1h','claims':['a','a']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/claims/1", "twice"},
    {RS RH JWT "'conditions':{'max_ttl':'1h','claims':'scope'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/claims", "must be an array"},
    {RS RH "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	   "'x509':{'eku':['clientAuth']}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/x509/csr_keys", "required"},
    {RS RH "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	   "'x509':{'csr_keys':['dsa-1024']}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/x509/csr_keys/0", "dsa-1024"},
    {RS RH "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	   "'x509':{'csr_keys':['ed25519'],'eku':['codeSigning']}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/x509/eku/0", "codeSigning"},
    {RS RH "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	   "'x509':{'csr_keys':['ed25519'],'key_usage':['keyCertSign']}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/x509/key_usage/0",
	"keyCertSign"},
    {RS RH "'actions':['credential.x509'],'conditions':{'max_ttl':'1h',"
	   "'x509':{'csr_keys':['ed25519'],'san':['a']}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/x509/san", "unknown field"},
    {RS RH "'actions':['key.read'],'conditions':{'max_key_age':'old'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/max_key_age", "not a duration"},
    /* time */
    {RS RH "'actions':['key.read'],'conditions':{'time':{}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time", NULL},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'after':'2026-13-01T00:00:00Z'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/after", "RFC 3339"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'after':'2026-02-30T00:00:00Z'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/after", "RFC 3339"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'before':'tomorrow'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/before", "RFC 3339"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'before':'2026-11-23 10:00:00'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/before", "RFC 3339"},
    {RS RH
	"'actions':['key.read'],'conditions':{'time':"
	"{'after':'2026-11-23T10:00:00Z','before':'2026-11-23T10:00:00Z'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/before", "after"},
    {RS RH
	"'actions':['key.read'],'conditions':{'time':"
	"{'after':'2026-11-23T10:00:00Z','before':'2026-11-23T09:00:00Z'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/before", "after"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'days':['monday']}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/days/0", "monday"},
    {RS RH "'actions':['key.read'],'conditions':{'time':{'days':[]}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/days", "empty"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'hours':'25:00-06:00'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/hours", "HH:MM-HH:MM"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'hours':'09:60-10:00'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/hours", "HH:MM-HH:MM"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'hours':'9:00-17:00'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/hours", "HH:MM-HH:MM"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'hours':'09:00-24:00'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/hours", "HH:MM-HH:MM"},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'hours':'09:00-09:00'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/hours", NULL},
    {RS RH "'actions':['key.read'],'conditions':{'time':"
	   "{'hours':'09:00-17:00','tz':'CET'}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/time/tz", "unknown field"},
    /* events, task, max_key_ttl */
    {RS RH "'actions':['lifecycle.event'],'conditions':"
	   "{'events':['agent.born']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/events/0", "agent.born"},
    {RS RH "'actions':['key.create'],'conditions':{'task':'optional'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/task", "required"},
    {RS RH "'actions':['key.create'],'conditions':{'task':true}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/task", "must be a string"},
    {RS RH "'actions':['key.create'],'conditions':{'max_key_ttl':'1y'}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/max_key_ttl", "not a duration"},
    /* rate */
    {RS RH "'actions':['key.read'],'conditions':{'rate':"
	   "{'per_principal':{'per':'1m'}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/per_principal/limit",
	"required"},
    {RS RH "'actions':['key.read'],'conditions':{'rate':"
	   "{'per_principal':{'limit':0,'per':'1m'}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/per_principal/limit", NULL},
    {RS RH "'actions':['key.read'],'conditions':{'rate':"
	   "{'per_principal':{'limit':'10','per':'1m'}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/per_principal/limit", NULL},
    {RS RH "'actions':['key.read'],'conditions':{'rate':"
	   "{'per_principal':{'limit':10}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/per_principal/per",
	"required"},
    {RS RH "'actions':['key.read'],'conditions':{'rate':"
	   "{'per_key':{'limit':10,'per':'0s'}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/per_key/per",
	"not a duration"},
    {RS RH "'actions':['key.read'],'conditions':{'rate':"
	   "{'per_key':{'limit':10,'per':'1m','burst':0}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/per_key/burst", NULL},
    {RS RH "'actions':['key.read'],'conditions':{'rate':"
	   "{'per_key':{'limit':10,'per':'1m','window':'1m'}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/per_key/window",
	"unknown field"},
    {RS RH "'actions':['key.read'],'conditions':{'rate':{}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate", NULL},
    {RS RH "'actions':['key.read'],'conditions':{'rate':"
	   "{'global':{'limit':10,'per':'1m'}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/global", "unknown field"},
    {RS RH "'actions':['audit.read'],'conditions':{'rate':"
	   "{'per_key':{'limit':10,'per':'1m'}}}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/rate/per_key", "key"},
    /* a deny rule is held to the same checks */
    {RS RHD "'actions':['key.create'],'conditions':{'audiences':['a']}}" RE,
	CUSTODY_E_CONFIG, "/rules/0/conditions/audiences",
	"none of the rule's"},
    /* the error is in the second rule */
    {RS RH "'actions':['key.read']},{'id':'s','effect':'allow',"
	   "'principals':['unix:uid=1'],'actions':['key.read'],"
	   "'conditions':{'max_key_age':'forever'}}" RE,
	CUSTODY_E_CONFIG, "/rules/1/conditions/max_key_age", "not a duration"},
    /* lifecycle */
    {V1 "'rules':[],'lifecycle':[]}", CUSTODY_E_CONFIG, "/lifecycle",
	"must be an object"},
    {V1 "'rules':[],'lifecycle':{'on':{}}}", CUSTODY_E_CONFIG, "/lifecycle/on",
	"unknown field"},
    {V1 "'rules':[],'lifecycle':{'events':{'agent.born':"
	"{'action':'destroy'}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/agent.born", "unknown event"},
    {V1 "'rules':[],'lifecycle':{'events':{'task.completed':"
	"{'action':'rotate'}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/task.completed/action", "rotate"},
    {V1 "'rules':[],'lifecycle':{'events':{'key.compromised':"
	"{'action':'retire'}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/key.compromised/action", "retire"},
    {V1 "'rules':[],'lifecycle':{'events':{'agent.retired':"
	"{'action':'rotate'}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/agent.retired/action", "rotate"},
    {V1 "'rules':[],'lifecycle':{'events':{'agent.retired':"
	"{'action':'shred'}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/agent.retired/action", "shred"},
    {V1 "'rules':[],'lifecycle':{'events':{'agent.retired':{}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/agent.retired/action", "required"},
    {V1 "'rules':[],'lifecycle':{'events':{'agent.retired':"
	"{'action':'destroy','purposes':['jwt','checkpoint']}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/agent.retired/purposes",
	"key.compromised"},
    {V1 "'rules':[],'lifecycle':{'events':{'owner.offboarded':"
	"{'action':'rotate','purposes':['attestation']}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/owner.offboarded/purposes",
	"key.compromised"},
    {V1 "'rules':[],'lifecycle':{'events':{'agent.retired':"
	"{'action':'destroy','purposes':['signing']}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/agent.retired/purposes/0",
	"signing"},
    {V1 "'rules':[],'lifecycle':{'events':{'agent.retired':"
	"{'action':'destroy','when':'now'}}}}",
	CUSTODY_E_CONFIG, "/lifecycle/events/agent.retired/when",
	"unknown field"},
    {V1 "'rules':[],'lifecycle':{'retired_keep':'forever'}}", CUSTODY_E_CONFIG,
	"/lifecycle/retired_keep", "not a duration"},
    {V1 "'rules':[],'lifecycle':{'retired_keep':0}}", CUSTODY_E_CONFIG,
	"/lifecycle/retired_keep", "must be a string"},
    {V1 "'rules':[],'lifecycle':{'events':[]}}", CUSTODY_E_CONFIG,
	"/lifecycle/events", "must be an object"},
};

static void
test_malformed(void **state)
{
	size_t i;

	(void)state;
	assert_true(sizeof(bad_policies) / sizeof(bad_policies[0]) >= 25);
	for (i = 0; i < sizeof(bad_policies) / sizeof(bad_policies[0]); i++)
		if (bad_policies[i].want2 == NULL)
			expect_bad(bad_policies[i].json, bad_policies[i].rc,
			    bad_policies[i].want);
		else
			expect_bad2(bad_policies[i].json, bad_policies[i].rc,
			    bad_policies[i].want, bad_policies[i].want2);
}

/* A syntax error names the line and the column, as numbers. */
static void
test_syntax_position(void **state)
{
	static const char json[] = "{\n  \"version\": 1,\n  \"rules\": [\n"
				   "    {\"id\": \"r\" \"effect\": \"allow\"}\n"
				   "  ]\n}\n";
	struct policy *p = NULL;
	char err[256];
	int line = 0, col = 0;

	(void)state;
	assert_int_equal(policy_parse("policy.json", (const uint8_t *)json,
			     strlen(json), &p, err, sizeof(err)),
	    CUSTODY_E_PARSE);
	assert_null(p);
	if (sscanf(err, "policy.json:%d:%d: ", &line, &col) != 2)
		fail_msg("message '%s'", err);
	assert_int_equal(line, 4);
	assert_true(col > 0);
	/* err may be NULL */
	assert_int_equal(
	    policy_parse("x", (const uint8_t *)json, strlen(json), &p, NULL, 0),
	    CUSTODY_E_PARSE);
	assert_int_equal(policy_parse("x", (const uint8_t *)"{\"version\":3}",
			     13, &p, NULL, 0),
	    CUSTODY_E_CONFIG);
}

/* Limits: nesting, string and list lengths, the file size. */
static void
test_limits(void **state)
{
	struct buf b = {0};
	struct policy *p = NULL;
	char *big;
	size_t i, len;
	static const char head[] = "{\"version\":1,\"rules\":[]}";

	(void)state;
	/* 40 nested arrays inside description */
	bprintf(&b, "{\"version\":1,\"rules\":[],\"description\":");
	for (i = 0; i < 40; i++)
		bprintf(&b, "[");
	for (i = 0; i < 40; i++)
		bprintf(&b, "]");
	bprintf(&b, "}");
	expect_bad_buf((const uint8_t *)b.s, b.len, CUSTODY_E_CONFIG,
	    "nested deeper", NULL);
	/* 20 levels are within the limit: then it is just not a string */
	b.len = 0;
	bprintf(&b, "{\"version\":1,\"rules\":[],\"description\":");
	for (i = 0; i < 20; i++)
		bprintf(&b, "[");
	for (i = 0; i < 20; i++)
		bprintf(&b, "]");
	bprintf(&b, "}");
	expect_bad_buf((const uint8_t *)b.s, b.len, CUSTODY_E_CONFIG,
	    "/description", "must be a string");
	/* deep objects inside a rule */
	b.len = 0;
	bprintf(&b, "{\"version\":1,\"rules\":[{\"id\":\"r\",\"x\":");
	for (i = 0; i < 40; i++)
		bprintf(&b, "{\"a\":");
	bprintf(&b, "1");
	for (i = 0; i < 40; i++)
		bprintf(&b, "}");
	bprintf(&b, "}]}");
	expect_bad_buf((const uint8_t *)b.s, b.len, CUSTODY_E_CONFIG,
	    "nested deeper", NULL);

	/* strings of at most 1,024 bytes */
	b.len = 0;
	bprintf(&b, "{\"version\":1,\"rules\":[],\"description\":\"");
	for (i = 0; i < 1024; i++)
		bprintf(&b, "d");
	bprintf(&b, "\"}");
	assert_int_equal(
	    policy_parse(NAME, (const uint8_t *)b.s, b.len, &p, NULL, 0), 0);
	policy_free(p);
	p = NULL;
	b.len = 0;
	bprintf(&b, "{\"version\":1,\"rules\":[],\"description\":\"");
	for (i = 0; i < 1025; i++)
		bprintf(&b, "d");
	bprintf(&b, "\"}");
	expect_bad_buf((const uint8_t *)b.s, b.len, CUSTODY_E_CONFIG,
	    "/description", "1024");

	/* lists of at most 4,096 items */
	for (len = 4096; len <= 4097; len++) {
		b.len = 0;
		bprintf(&b, "{\"version\":1,\"rules\":[{\"id\":\"r\","
			    "\"effect\":\"allow\",\"actions\":[\"key.read\"],"
			    "\"principals\":[");
		for (i = 0; i < len; i++)
			bprintf(&b, "%s\"unix:uid=%zu\"", i ? "," : "", i);
		bprintf(&b, "]}]}");
		if (len == 4096) {
			assert_int_equal(
			    policy_parse(
				NAME, (const uint8_t *)b.s, b.len, &p, NULL, 0),
			    0);
			policy_free(p);
			p = NULL;
		} else
			expect_bad_buf((const uint8_t *)b.s, b.len,
			    CUSTODY_E_CONFIG, "/rules/0/principals", "4096");
	}
	free(b.s);

	/* 32 MiB: exactly is fine (a policy padded with spaces), one more
	 * byte is too large */
	len = POLICY_FILE_MAX + 1;
	big = malloc(len);
	assert_non_null(big);
	memset(big, ' ', len);
	memcpy(big, head, strlen(head));
	assert_int_equal(policy_parse(NAME, (const uint8_t *)big,
			     POLICY_FILE_MAX, &p, NULL, 0),
	    0);
	assert_int_equal(policy_nrules(p), 0);
	policy_free(p);
	p = NULL;
	expect_bad_buf(
	    (const uint8_t *)big, len, CUSTODY_E_TOO_LARGE, "32 MiB", NULL);
	free(big);
}

/* ---- lifecycle ------------------------------------------------------- */

#define PURP_JWT	 0x1u
#define PURP_X509_CA	 0x2u
#define PURP_CHECKPOINT	 0x4u
#define PURP_ATTESTATION 0x8u

static void
expect_lifecycle(
    struct policy *p, const char *event, int action, unsigned purposes)
{
	struct policy_lifecycle_rule lr;

	memset(&lr, 0x5a, sizeof(lr));
	assert_int_equal(policy_lifecycle(p, event, &lr), 0);
	if (lr.action != action || lr.purposes != purposes)
		fail_msg("%s: action %d purposes %#x, want %d %#x", event,
		    lr.action, lr.purposes, action, purposes);
}

static void
test_lifecycle_defaults(void **state)
{
	struct policy *p;
	struct policy_lifecycle_rule lr;
	const unsigned agent = PURP_JWT | PURP_X509_CA;

	(void)state;
	p = load("{'version':1,'rules':[]}");
	expect_lifecycle(p, "agent.retired", POLICY_LC_DESTROY, agent);
	expect_lifecycle(p, "task.completed", POLICY_LC_DESTROY, agent);
	expect_lifecycle(p, "owner.offboarded", POLICY_LC_ROTATE, agent);
	expect_lifecycle(p, "key.compromised", POLICY_LC_DESTROY, agent);
	assert_int_equal(policy_retired_keep(p), 0);
	assert_int_equal(
	    policy_lifecycle(p, "agent.born", &lr), CUSTODY_E_INVALID_ARG);
	assert_int_equal(policy_lifecycle(p, "", &lr), CUSTODY_E_INVALID_ARG);
	policy_free(p);

	/* an empty lifecycle section is all defaults too */
	p = load("{'version':1,'rules':[],'lifecycle':{}}");
	expect_lifecycle(p, "agent.retired", POLICY_LC_DESTROY, agent);
	expect_lifecycle(p, "owner.offboarded", POLICY_LC_ROTATE, agent);
	assert_int_equal(policy_retired_keep(p), 0);
	policy_free(p);
}

static void
test_lifecycle_overrides(void **state)
{
	struct policy *p;
	const unsigned agent = PURP_JWT | PURP_X509_CA;

	(void)state;
	p = load("{'version':1,'rules':[],'lifecycle':{'events':{"
		 "'agent.retired':{'action':'retire'},"
		 "'owner.offboarded':{'action':'destroy','purposes':['jwt']},"
		 "'key.compromised':{'action':'destroy','purposes':"
		 "['jwt','x509-ca','checkpoint','attestation']}},"
		 "'retired_keep':'1d'}}");
	expect_lifecycle(p, "agent.retired", POLICY_LC_RETIRE, agent);
	expect_lifecycle(p, "task.completed", POLICY_LC_DESTROY, agent);
	expect_lifecycle(p, "owner.offboarded", POLICY_LC_DESTROY, PURP_JWT);
	expect_lifecycle(p, "key.compromised", POLICY_LC_DESTROY,
	    agent | PURP_CHECKPOINT | PURP_ATTESTATION);
	assert_int_equal(policy_retired_keep(p), 86400);
	policy_free(p);

	p = load(
	    "{'version':1,'rules':[],'lifecycle':{'events':{"
	    "'owner.offboarded':{'action':'retire','purposes':['x509-ca']},"
	    "'task.completed':{'action':'destroy'},"
	    "'key.compromised':{'action':'destroy','purposes':"
	    "['checkpoint']}},'retired_keep':'0s'}}");
	expect_lifecycle(p, "agent.retired", POLICY_LC_DESTROY, agent);
	expect_lifecycle(p, "task.completed", POLICY_LC_DESTROY, agent);
	expect_lifecycle(p, "owner.offboarded", POLICY_LC_RETIRE, PURP_X509_CA);
	expect_lifecycle(
	    p, "key.compromised", POLICY_LC_DESTROY, PURP_CHECKPOINT);
	assert_int_equal(policy_retired_keep(p), 0);
	policy_free(p);

	p = load("{'version':1,'rules':[],'lifecycle':{'retired_keep':'90m'}}");
	assert_int_equal(policy_retired_keep(p), 5400);
	expect_lifecycle(p, "owner.offboarded", POLICY_LC_ROTATE, agent);
	policy_free(p);
}

/* retired_keep takes a duration or a "0s"-like zero (docs/POLICY.md). */
static void
test_lifecycle_zero_keep(void **state)
{
	static const char *const zeros[] = {"0s", "0m", "0h", "0d"};
	struct policy *p;
	char json[128];
	size_t i, bad = 0;
	char err[256];

	(void)state;
	for (i = 0; i < sizeof(zeros) / sizeof(zeros[0]); i++) {
		snprintf(json, sizeof(json),
		    "{\"version\":1,\"rules\":[],"
		    "\"lifecycle\":{\"retired_keep\":\"%s\"}}",
		    zeros[i]);
		p = NULL;
		if (policy_parse(NAME, (const uint8_t *)json, strlen(json), &p,
			err, sizeof(err)) != 0) {
			print_error(
			    "retired_keep '%s' refused: %s\n", zeros[i], err);
			bad++;
			continue;
		}
		assert_int_equal(policy_retired_keep(p), 0);
		policy_free(p);
	}
	if (bad != 0)
		fail_msg("%zu zero retired_keep values refused", bad);
}

/* ---- hash, name, count ------------------------------------------------ */

static void
test_sha256_and_count(void **state)
{
	static const char *const texts[] = {
	    "{'version':1,'rules':[]}",
	    "{'version':1,'description':'two rules','rules':["
	    "{'id':'a','effect':'allow','principals':['unix:uid=1'],"
	    "'actions':['key.read']},"
	    "{'id':'b','effect':'deny','principals':['unix:uid=2'],"
	    "'actions':['key.read','audit.read']}]}\n",
	    /* the same policy with other whitespace: another hash */
	    "{'version':1, 'description':'two rules','rules':["
	    "{'id':'a','effect':'allow','principals':['unix:uid=1'],"
	    "'actions':['key.read']},"
	    "{'id':'b','effect':'deny','principals':['unix:uid=2'],"
	    "'actions':['key.read','audit.read']}]}\n",
	};
	static const size_t nrules[] = {0, 2, 2};
	uint8_t md[3][SHA256_DIGEST_LENGTH];
	struct policy *p;
	char *s;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		s = dq(texts[i]);
		SHA256((const uint8_t *)s, strlen(s), md[i]);
		p = NULL;
		assert_int_equal(
		    policy_parse("dir/policy.json", (const uint8_t *)s,
			strlen(s), &p, NULL, 0),
		    0);
		assert_memory_equal(policy_sha256(p), md[i], sizeof(md[i]));
		assert_int_equal(policy_nrules(p), nrules[i]);
		assert_string_equal(policy_name(p), "dir/policy.json");
		policy_free(p);
		free(s);
	}
	assert_memory_not_equal(md[1], md[2], sizeof(md[1]));
}

static void
test_load_file(void **state)
{
	char path[] = "/tmp/custody-test-policy-XXXXXX";
	static const char text[] =
	    "{\"version\":1,\"rules\":[{\"id\":\"a\",\"effect\":\"allow\","
	    "\"principals\":[\"unix:uid=1\"],\"actions\":[\"key.read\"]}]}";
	uint8_t md[SHA256_DIGEST_LENGTH];
	struct policy *p = NULL;
	char err[256];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), 0);
	SHA256((const uint8_t *)text, strlen(text), md);
	assert_memory_equal(policy_sha256(p), md, sizeof(md));
	assert_string_equal(policy_name(p), path);
	assert_int_equal(policy_nrules(p), 1);
	policy_free(p);
	/* a bad file: the message names the path */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"version\":1}", 13), 13);
	close(fd);
	p = NULL;
	assert_int_equal(
	    policy_load(path, &p, err, sizeof(err)), CUSTODY_E_CONFIG);
	assert_null(p);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "/rules"));
	unlink(path);
	/* no file */
	assert_true(policy_load(path, &p, err, sizeof(err)) != 0);
	assert_null(p);
}

/* ---- the index ------------------------------------------------------- */

#define NBIG 20000

static void
test_index_large(void **state)
{
	static const struct rcase cases[] = {
	    {"b0", .principal = "spiffe://example.org/broker/b0", .allow = 1,
		.rule = "b0", .want_ttl = 60},
	    {"b5", .principal = "spiffe://example.org/broker/b5", .allow = 1,
		.rule = "b5", .want_ttl = 6 * 60},
	    {"b12345", .principal = "spiffe://example.org/broker/b12345",
		.allow = 1, .rule = "b12345"},
	    {"b19998", .principal = "spiffe://example.org/broker/b19998",
		.allow = 1, .rule = "b19998"},
	    {"b7 is denied by a later rule",
		.principal = "spiffe://example.org/broker/b7",
		.rule = "deny-b7"},
	    {"b999 is a glob rule's number: the catch-all",
		.principal = "spiffe://example.org/broker/b999", .allow = 1,
		.rule = "catch-all"},
	    {"b20000 does not exist: the catch-all",
		.principal = "spiffe://example.org/broker/b20000", .allow = 1,
		.rule = "catch-all"},
	    {"b1 prefix of b12345 etc",
		.principal = "spiffe://example.org/broker/b1", .allow = 1,
		.rule = "b1"},
	    {"fleet glob", .principal = "spiffe://example.org/fleet999/x",
		.allow = 1, .rule = "g999"},
	    {"fleet glob, deep",
		.principal = "spiffe://example.org/fleet999/x/y", .allow = 1,
		.rule = "catch-all"},
	    {"another fleet glob",
		.principal = "spiffe://example.org/fleet19999/node-1",
		.allow = 1, .rule = "g19999"},
	    {"fleet prefix of another",
		.principal = "spiffe://example.org/fleet1999/n", .allow = 1,
		.rule = "g1999"},
	    {"other trust domain", .principal = "spiffe://other.org/broker/b5"},
	    {"other action: key.read for b5", .action = POLICY_KEY_READ,
		.principal = "spiffe://example.org/broker/b5"},
	    {"uid", .action = POLICY_KEY_READ, .principal = "unix:uid=4242",
		.allow = 1, .rule = "uid"},
	};
	struct buf b = {0};
	struct policy *p = NULL;
	char err[256] = "";
	size_t i;

	(void)state;
	bprintf(&b, "{\"version\":1,\"rules\":[");
	for (i = 0; i < NBIG; i++) {
		if (i % 1000 == 999)
			bprintf(&b,
			    "{\"id\":\"g%zu\",\"effect\":\"allow\","
			    "\"principals\":[\"spiffe://example.org/"
			    "fleet%zu/*\"],",
			    i, i);
		else
			bprintf(&b,
			    "{\"id\":\"b%zu\",\"effect\":\"allow\","
			    "\"principals\":[\"spiffe://example.org/broker/"
			    "b%zu\"],",
			    i, i);
		bprintf(&b,
		    "\"actions\":[\"credential.jwt\"],"
		    "\"conditions\":{\"max_ttl\":\"%zum\"}},",
		    i % 1000 + 1);
	}
	bprintf(&b, "{\"id\":\"catch-all\",\"effect\":\"allow\","
		    "\"principals\":[\"spiffe://example.org/**\"],"
		    "\"actions\":[\"credential.jwt\"],"
		    "\"conditions\":{\"max_ttl\":\"1m\"}},"
		    "{\"id\":\"deny-b7\",\"effect\":\"deny\","
		    "\"principals\":[\"spiffe://example.org/broker/b7\"],"
		    "\"actions\":[\"credential.jwt\"]},"
		    "{\"id\":\"uid\",\"effect\":\"allow\","
		    "\"principals\":[\"unix:uid=4242\"],"
		    "\"actions\":[\"key.read\"]}]}");
	if (policy_parse(
		NAME, (const uint8_t *)b.s, b.len, &p, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(policy_nrules(p), NBIG + 3);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(p, &cases[i]);
	policy_free(p);
	free(b.s);
}

/* ---- reference counting ---------------------------------------------- */

static void
test_refcount(void **state)
{
	struct policy *p, *q;
	struct rcase c = {
	    "read", .action = POLICY_KEY_READ, .allow = 1, .rule = "r"};

	(void)state;
	p = load("{'version':1,'rules':[{'id':'r','effect':'allow',"
		 "'principals':['" BROKER "'],'actions':['key.read'],"
		 "'conditions':{'rate':{'per_principal':"
		 "{'limit':100,'per':'1m'}}}}]}");
	q = policy_ref(p);
	assert_ptr_equal(q, p);
	check_case(p, &c);
	policy_free(p); /* q still holds it */
	check_case(q, &c);
	assert_int_equal(policy_nrules(q), 1);
	assert_string_equal(policy_name(q), NAME);
	/* two more references, dropped in turn */
	assert_ptr_equal(policy_ref(policy_ref(q)), q);
	policy_free(q);
	policy_free(q);
	check_case(q, &c);
	policy_free(q); /* the last one */
	assert_null(policy_ref(NULL));
	policy_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_max_ttl),
	    cmocka_unit_test(test_audiences),
	    cmocka_unit_test(test_sub),
	    cmocka_unit_test(test_claims),
	    cmocka_unit_test(test_reserved_claims),
	    cmocka_unit_test(test_act),
	    cmocka_unit_test(test_x509),
	    cmocka_unit_test(test_max_key_age),
	    cmocka_unit_test(test_time_window),
	    cmocka_unit_test(test_time_epoch),
	    cmocka_unit_test(test_events),
	    cmocka_unit_test(test_key_create_conditions),
	    cmocka_unit_test(test_rate_bucket),
	    cmocka_unit_test(test_rate_separate_buckets),
	    cmocka_unit_test(test_rate_both_limits),
	    cmocka_unit_test(test_rate_rule_and_tokens),
	    cmocka_unit_test(test_principals),
	    cmocka_unit_test(test_key_selectors),
	    cmocka_unit_test(test_keys_never_match_keyless),
	    cmocka_unit_test(test_deny_wins),
	    cmocka_unit_test(test_deny_without_conditions),
	    cmocka_unit_test(test_first_allow_and_reasons),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_action_names),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_syntax_position),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_lifecycle_defaults),
	    cmocka_unit_test(test_lifecycle_overrides),
	    cmocka_unit_test(test_lifecycle_zero_keep),
	    cmocka_unit_test(test_sha256_and_count),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_index_large),
	    cmocka_unit_test(test_refcount),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
