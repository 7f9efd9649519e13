/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CUSTODY_LCAUDIT_H
#define CUSTODY_LCAUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/*
 * The offline auditor's lifecycle checks (LIFECYCLE.md, "The auditor's
 * checks"), from the leaves of an audit log alone:
 *
 *   1. every key.rotate names a key active at that leaf and is completed by
 *      an attestation leaf (detail.decision_seq == its seq) whose envelope's
 *      PAE hashes to its tbs_sha256, whose statement names the new key (the
 *      subject) and both keys (previousKey, newKey) by their SPKI digests,
 *      and which verifies with both SPKIs;
 *   2. every allowed credential.jwt / credential.x509 names a key active at
 *      that leaf (created before it, not yet retired or destroyed); an
 *      outcome leaf with result "error" means it was not issued (not
 *      counted), but its key still had to be active;
 *   3. no key stayed active more than the tolerance past created + max_age,
 *      none lived (was not destroyed) more than the tolerance past created +
 *      ttl, judged at the leaf that ended it or, for a key still active or
 *      alive, at the log's last leaf (the latest leaf time seen);
 *   4. every key.destroy is completed by an attestation leaf whose PAE hash
 *      is its tbs_sha256, whose subject is the destroyed key's SPKI digest
 *      and which verifies with the SPKI of a key of purpose "attestation"
 *      active at the destroy leaf or at the attestation leaf.
 *
 * Only leaves with "decision":"allow" change a key's state; deny leaves are
 * counted. attestation and outcome leaves (which carry no decision) are
 * used unless they say "deny". lifecycle.event and recovery leaves are
 * listed; other events are ignored. A leaf that is not JSON, or a lifecycle
 * leaf that lacks a field, is a violation, never a crash: everything read
 * from a leaf is bounded (LCAUDIT_MAX_* below), nothing recurses on input.
 *
 * Use: lcaudit_new(), lcaudit_leaf() for each leaf in seq order (or
 * lcaudit_dir() for an exported log directory), lcaudit_finish(), then
 * lcaudit_ok() and the reports. Times are kept in Unix milliseconds.
 */

#define LCAUDIT_TOLERANCE      60      /* seconds (LIFECYCLE.md) */
#define LCAUDIT_MAX_KEYS       1000000 /* then LCAUDIT_V_LIMIT */
#define LCAUDIT_MAX_VIOLATIONS 10000   /* listed; the rest only counted */
#define LCAUDIT_MAX_EVENTS     10000   /* lifecycle.event/recovery listed */

/* What a violation is about (the check of the list above, or the input). */
enum lcaudit_kind {
	LCAUDIT_V_MALFORMED,   /* not a JSON leaf, or a lifecycle leaf lacks
				  or mistypes a field */
	LCAUDIT_V_SEQUENCE,    /* a leaf out of order, or its seq not its own */
	LCAUDIT_V_UNKNOWN_KEY, /* a rotate/retire/destroy names a key no leaf
				  created */
	LCAUDIT_V_DUPLICATE_KEY, /* a key created twice */
	LCAUDIT_V_STATE,       /* rotate/retire of a key not active, destroy of
				  a destroyed key (1) */
	LCAUDIT_V_CREDENTIAL,  /* a credential by a key not active (2) */
	LCAUDIT_V_ATTESTATION, /* an attestation leaf that does not prove
				  the decision it names (1, 4) */
	LCAUDIT_V_UNATTESTED,  /* a rotate or destroy without a valid
				  attestation by the end of the log (1, 4) */
	LCAUDIT_V_MAX_AGE,     /* active past max_age + tolerance (3) */
	LCAUDIT_V_TTL,	       /* alive past ttl + tolerance (3) */
	LCAUDIT_V_LIMIT,       /* more keys than LCAUDIT_MAX_KEYS */
	LCAUDIT_V_COUNT
};

/* "malformed", "sequence", ... (the JSON report's "kind"). */
const char *lcaudit_kind_name(enum lcaudit_kind kind);

struct lcaudit_violation {
	int64_t seq; /* the leaf, or -1 (a check at the end of the log) */
	enum lcaudit_kind kind;
	char *key; /* the key id, or NULL */
	char *msg; /* one line, no final period */
};

enum lcaudit_state { LCAUDIT_ACTIVE, LCAUDIT_RETIRED, LCAUDIT_DESTROYED };
enum lcaudit_end {
	LCAUDIT_END_NONE, /* still active */
	LCAUDIT_END_ROTATE,
	LCAUDIT_END_RETIRE,
	LCAUDIT_END_DESTROY
};

/* The attestation of a key's rotation (its own) or of its destruction. */
struct lcaudit_attest {
	int64_t decision_seq; /* the key.rotate / key.destroy leaf, or -1 */
	int64_t seq;	      /* the attestation leaf that proved it, or -1 */
	char *signer;	      /* destruction: the attestation key that signed */
	unsigned bad;	      /* attestation leaves for it that failed */
	char *problem;	      /* what the first one lacked, or NULL */
	char *outcome;	      /* an outcome leaf's error for the decision */
};

/* Everything the leaves say of one key. Strings NULL when not given. */
struct lcaudit_key {
	char *id, *kid, *agent, *owner, *purpose, *alg, *task;
	uint8_t *spki; /* DER */
	size_t spki_len;
	char spki_sha256[65]; /* hex, "" without an SPKI */
	int64_t max_age, ttl; /* seconds, 0 for none */
	enum lcaudit_state state;
	int64_t created_seq, created_ms; /* key.create or key.rotate */
	char *predecessor, *successor;
	/* the end of its active life: seq -1 while active */
	int64_t ended_seq, ended_ms;
	enum lcaudit_end ended_how;
	char *end_trigger, *end_reason;
	/* destruction: seq -1 while alive */
	int64_t destroyed_seq, destroyed_ms;
	char *destroy_trigger, *destroy_reason;
	int64_t objects_destroyed, objects_found_after; /* -1: not said */
	/* credentials (allowed decisions naming the key) */
	uint64_t issued;	/* not followed by an outcome error */
	uint64_t failed;	/* followed by one */
	uint64_t denied;	/* deny leaves naming the key */
	int64_t cred_first_seq; /* of the issued ones, -1 for none */
	int64_t cred_last_seq;
	int64_t cred_max_exp; /* Unix seconds: JWT exp, X.509 not_after;
				 INT64_MIN for none */
	struct lcaudit_attest rotation;	   /* of its rotation (if rotated) */
	struct lcaudit_attest destruction; /* of its destruction */
	/* check 3, set by lcaudit_finish(): by how many ms the end of its
	 * active life / life came after created + max_age / ttl (negative:
	 * before), or INT64_MIN without a max_age / ttl */
	int64_t max_age_late_ms, ttl_late_ms;
	size_t violations; /* of the list, about this key */
};

struct lcaudit_counts {
	uint64_t leaves, allow, deny, ignored; /* ignored: other events */
	uint64_t keys, active, retired, destroyed;
	uint64_t credentials, credentials_failed;
	uint64_t rotations, retirements, destructions;
	uint64_t attestations, attestations_verified;
	uint64_t violations; /* listed or not */
};

struct lcaudit_opts {
	int64_t tolerance; /* seconds >= 0; < 0 for LCAUDIT_TOLERANCE */
};

struct lcaudit;

/* New checker; opts NULL for the defaults. *lap is new (lcaudit_free). */
int lcaudit_new(const struct lcaudit_opts *opts, struct lcaudit **lap);
void lcaudit_free(struct lcaudit *la);

/*
 * Feed the leaf of index seq, leaf[0..len) its exact bytes (not kept).
 * Leaves must come in increasing seq order; what is wrong with a leaf is a
 * violation, not an error. Returns 0, CUSTODY_E_NOMEM, CUSTODY_E_STATE
 * after lcaudit_finish() or CUSTODY_E_INVALID_ARG.
 */
int lcaudit_leaf(
    struct lcaudit *la, uint64_t seq, const uint8_t *leaf, size_t len);

/*
 * The end of the log: the checks that wait for it (unattested rotations
 * and destructions, max_age and ttl of the keys still alive). Idempotent.
 * 0 or CUSTODY_E_NOMEM.
 */
int lcaudit_finish(struct lcaudit *la);

/* Finished, with no violation? 1 or 0. */
int lcaudit_ok(const struct lcaudit *la);

/* Read-only views, valid until the next lcaudit_leaf() / lcaudit_free(). */
const struct lcaudit_key *lcaudit_keys(const struct lcaudit *la, size_t *np);
const struct lcaudit_key *lcaudit_key_get(
    const struct lcaudit *la, const char *id);
const struct lcaudit_violation *lcaudit_violations(
    const struct lcaudit *la, size_t *np);
const struct lcaudit_counts *lcaudit_counts(const struct lcaudit *la);
int64_t lcaudit_tolerance(const struct lcaudit *la);

/*
 * Verify the exported log in dir (logdir_verify_follow() with vkeys,
 * following the checkpoint keys' handover: a checkpoint key is handed over
 * to by the attested rotation of a trusted one, and stops being so once
 * destroyed), feed each verified leaf to la and finish it. Returns 0 when the
 * log verified (then look at lcaudit_ok()), or the log's error with a sentence
 * in msg[0..msgsz) (la is then not finished). resp may be NULL.
 */
struct note_vkey;
struct logdir_result;
int lcaudit_dir(struct lcaudit *la, const char *dir,
    struct note_vkey *const *vkeys, size_t nvkeys, struct logdir_result *resp,
    char *msg, size_t msgsz);

/*
 * The report as JSON: {"ok", "tolerance", "first_time", "last_time",
 * "counts" {...}, "keys" [per key: its facts, "credentials",
 * "attestations", "deadlines", "violations"], "events" [lifecycle.event and
 * recovery leaves], "violations" [{"seq"?, "kind", "key"?, "message"}],
 * "violations_omitted"}. New reference, NULL on NOMEM.
 */
json_t *lcaudit_report_json(const struct lcaudit *la);

/*
 * The report for people: one block per key with its timeline, the events,
 * the violations, then one summary line. 0, or CUSTODY_E_IO.
 */
int lcaudit_report_text(const struct lcaudit *la, FILE *out);

/*
 * The same as one self-contained HTML page (no script, no external
 * resource; every string from the log escaped). 0, or CUSTODY_E_IO.
 */
int lcaudit_report_html(const struct lcaudit *la, FILE *out);

#endif
