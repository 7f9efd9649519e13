#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Every policy in policies/ loads ('custody policy check') and decides each
# of its cases as expected ('custody policy test'); every policy has cases.
# Then the runner itself: a case expecting the wrong decision, rule, TTL or
# reason makes it fail, and a bad cases file is refused with its place.
#
# usage: test_policies.sh CUSTODY_BINARY POLICIES_DIR
set -euo pipefail

CUSTODY=$1
DIR=$2
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/custody-policies-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"

n=0
while IFS= read -r policy; do
	cases=${policy%.json}.cases.json
	name=${policy#"$DIR"/}
	check "$name: has its cases" test -f "$cases"
	check "$name: policy check" "$CUSTODY" policy check "$policy"
	check "$name: every case as expected" \
		sh -c '"$0" policy test "$1" "$2" >out.txt || { cat out.txt; exit 1; }' \
		"$CUSTODY" "$policy" "$cases"
	n=$((n + 1))
done < <(find "$DIR" -name '*.json' ! -name '*.cases.json' | sort)
check "policies found: the default, the quick start's and five examples" test "$n" -ge 7

# ---- the runner can fail -----------------------------------------------------------
P=$DIR/quickstart.json
case_with() { # case_with EXPECT_JSON: one quick-start JWT case
	cat <<CASES
{"cases": [{"name": "probe", "request": {"principal": "unix:uid=0",
  "action": "credential.jwt", "time": "2026-11-23T10:00:00Z",
  "key": {"agent": "spiffe://example.org/agent/demo", "owner": "quickstart",
          "purpose": "jwt", "alg": "ecdsa-p256"},
  "ttl": "1h", "audiences": ["https://api.example.org"]},
  "expect": $1}]}
CASES
}
# mismatch WHAT CASES: 'policy test' exits 1 and its table says 1 failed
mismatch() {
	local rc=0
	"$CUSTODY" policy test "$P" "$2" >out.txt 2>err.txt || rc=$?
	check "$1" sh -c 'test "$0" = 1 && grep -q "^1 cases, 1 failed" out.txt' "$rc"
}
case_with '{"decision": "allow", "rule": "root-issue-jwt", "ttl": "15m"}' >good.json
check "the probe passes as written" "$CUSTODY" policy test "$P" good.json
case_with '{"decision": "deny"}' >c1.json
mismatch "a wrong decision fails" c1.json
check "  and says so in the table" grep -q "^FAIL" out.txt
case_with '{"decision": "allow", "rule": "root-admin"}' >c2.json
mismatch "a wrong rule fails" c2.json
case_with '{"decision": "allow", "ttl": "1h"}' >c3.json
mismatch "a wrong TTL fails" c3.json
check "  naming both TTLs" grep -q "ttl: expected 1h, got 15m" out.txt
case_with '{"decision": "allow", "reason": "no such words"}' >c4.json
mismatch "a wrong reason fails" c4.json
case_with '{"decision": "allow", "colour": "blue"}' >c5.json
expect_fail "an unknown field in a case is refused, with its place" 1 "/cases/0/expect" \
	"$CUSTODY" policy test "$P" c5.json
sed 's/credential.jwt/credential.jwtt/' good.json >c6.json
expect_fail "an unknown action in a case is refused" 1 "unknown action 'credential.jwtt'" \
	"$CUSTODY" policy test "$P" c6.json
printf '{"cases": [' >c7.json
expect_fail "a cases file that is not JSON: line and column" 1 "c7.json:1:" \
	"$CUSTODY" policy test "$P" c7.json
printf '{"version": 1, "rules": [], "rules": []}' >dup.json
expect_fail "policy check: a duplicate key, with line and column" 1 "dup.json:1:" \
	"$CUSTODY" policy check dup.json
printf '{"version": 1, "rules": [{"id": "a", "effect": "allow", "principals": ["unix:uid=0"], "actions": ["key.read"], "conditions": {"max_ttl": "1h"}}]}' >na.json
expect_fail "policy check: a condition for none of the actions, by JSON Pointer" 1 \
	"na.json: /rules/0/conditions/max_ttl: applies to none of the rule's actions" \
	"$CUSTODY" policy check na.json
check "policy check --json" sh -c '"$0" policy check --json "$1" | grep -q "\"sha256\": \"$(sha256sum "$1" | cut -d" " -f1)\""' \
	"$CUSTODY" "$P"

finish
