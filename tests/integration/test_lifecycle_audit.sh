#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The auditor's side of the lifecycle, through custodyd-test (a movable
# clock, failpoints) on a real SoftHSM2 token made here:
#   1. The checkpoint key rotates: the old key co-signs beside the new one
#      for checkpoint-overlap, stops, and is destroyed by the scheduler;
#      'custody audit verify' given only the first key's vkey follows the
#      handover, python3 (tlog_check.py) verifies the same export with both
#      vkeys, and the new vkey alone cannot vouch for the older checkpoints.
#   2. 'custody audit report' prints every key's life (text, JSON, HTML).
#   3. Logs that verify as Merkle trees but break the lifecycle are
#      rejected: a rotation without its attestation (custodyd killed
#      between the leaf and the attestation, the log exported before the
#      restart that recovers it), and a credential signed after its key's
#      destruction (a leaf forged into the database, as an insider could).
#
# usage: test_lifecycle_audit.sh CUSTODYD-TEST CUSTODY SOFTHSM2_MODULE AUDIT_CRASH
# shellcheck disable=SC2016,SC2034
set -euo pipefail

DAEMON=$(readlink -f "$1")
CUSTODY=$(readlink -f "$2")
MODULE=$(readlink -f "$3")
FORGE=$(readlink -f "$4")
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/custody-lcaudit-XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
cd "$T"
(umask 077 && printf 'la-user-pin-52\n' >user.pin && printf 'la-so-pin-17\n' >so.pin)
custody_datadir d
CONF=$T/d.conf
DB=$T/d/custody.db
CLOCK=$T/clock
AG=spiffe://example.org/agent
cat >pol.json <<'JSON'
{"version": 1, "rules": [
  {"id": "scheduler", "effect": "allow", "principals": ["custody:scheduler"],
   "actions": ["key.rotate", "key.destroy"]},
  {"id": "root-admin", "effect": "allow", "principals": ["unix:uid=0"],
   "actions": ["key.create", "key.rotate", "key.destroy", "key.read",
               "audit.read", "checkpoint.sign"]},
  {"id": "root-jwt", "effect": "allow", "principals": ["unix:uid=0"],
   "actions": ["credential.jwt"],
   "conditions": {"max_ttl": "15m", "audiences": ["https://api.test"]}}
]}
JSON
cat >>"$CONF" <<CONF
policy $T/pol.json
issuer https://custody.test
checkpoint-overlap 60s
CONF
echo 0 >"$CLOCK"
export SOFTHSM2_CONF=$T/d/softhsm2/softhsm2.conf
TLOG() { $PY "$HERE/tlog_check.py" "$@" >tlog.out 2>&1; }
jwt() { C jwt issue --agent "$AG/$1" --aud https://api.test --ttl 5m >/dev/null; }
# sigs: the signature lines of the last checkpoint kept outside the database
sigs() { grep -c $'^\xe2\x80\x94 ' "$T/d/checkpoint" || true; }
# signed_by VKEY: the last checkpoint carries a line of that key
signed_by() { grep -qF -- "— ${1%%+*} $($PY -c 'import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1].split("+")[1])).decode()[:5])' "$1")" "$T/d/checkpoint"; }

C audit vkey >vkeys-first
start d CUSTODY_TEST_CLOCK="$CLOCK"
CP1=$(C key list --json | jget /dev/stdin '" ".join(k["id"] for k in d if k["purpose"] == "checkpoint")')
check "one checkpoint key at first" test "$(wc -w <<<"$CP1")" = 1
C key create --agent "$AG/a" --owner team-a --purpose jwt --alg ecdsa-p256 --json >a.json
A1=$(jget a.json 'd["id"]')
jwt a
check "a checkpoint signed by the first key" wait_for checkpoint eval 'test "$(sigs)" = 1'

# ---- 1. the checkpoint key's handover -----------------------------------------------
C key rotate "$CP1" --reason "yearly rotation" --json >cprot.json
CP2=$(jget cprot.json 'd["new_key"]')
check "the checkpoint key rotates through custodyd" test "$(keystate "$CP1")" = retired
check "  its successor is an active checkpoint key" test "$(keystate "$CP2")" = active
check "  the rotation is attested" test "$(jget cprot.json 'd["attested"]')" = True
stop TERM
C audit vkey >vkeys-overlap
start d1 CUSTODY_TEST_CLOCK="$CLOCK"
check "during the overlap 'audit vkey' lists both keys" test "$(wc -l <vkeys-overlap)" = 2
grep -vxF -f vkeys-first vkeys-overlap >vkey-new
check "  the new one among them" test "$(wc -l <vkey-new)" = 1
jwt a
check "the next checkpoint is signed by both keys" wait_for cosign eval 'test "$(sigs)" = 2'
check "  by the new key" signed_by "$(cat vkey-new)"
check "  and by the old one" signed_by "$(cat vkeys-first)"
advance 30
jwt a
sleep 2
check "within the overlap the old key still signs" test "$(sigs)" = 2
check "  and is kept" test "$(keystate "$CP1")" = retired
advance 70
jwt a
check "after the overlap the new key signs alone" wait_for handover eval 'test "$(sigs)" = 1'
check "  the new key, that is" signed_by "$(cat vkey-new)"
check "the scheduler then destroys the old key" wait_for destroy eval 'test "$(keystate "$CP1")" = destroyed'
check "  the token holds no object of it (pkcs11-tool)" test "$(objects "$CP1")" = 0
jwt a
sleep 2
check "the log goes on: a checkpoint by the new key" signed_by "$(cat vkey-new)"
stop TERM
C audit checkpoint >/dev/null
C audit export ex1 >/dev/null
"$CUSTODY" audit verify ex1 --vkey-file vkeys-first >verify.out 2>verify.err || true
check "audit verify with the first vkey only follows the handover" grep -q "1 checkpoint key handed over to in the log" verify.out
check "  and runs the lifecycle checks" grep -q "lifecycle: .* 1 rotations, 1 destructions" verify.out
"$CUSTODY" audit verify ex1 --vkey-file vkeys-first --json >verify.json
check "  --json: verified, handed over 1, no violation" test \
	"$(jget verify.json '(d["verified"], d["handed_over"], d["lifecycle"]["violations"])')" = "(True, 1, 0)"
cat vkeys-first vkey-new >vkeys-both
check "python3 verifies the export with both vkeys (tlog_check.py)" TLOG export ex1 vkeys-both
expect_fail "the new vkey alone cannot vouch for the older checkpoints" 1 \
	"give the key of the log's first checkpoints" "$CUSTODY" audit verify ex1 --vkey-file vkey-new

# ---- 2. the report -----------------------------------------------------------------
"$CUSTODY" audit report ex1 --vkey-file vkeys-first --json >report.json
check "audit report --json: ok, with the old and the new checkpoint key" test \
	"$(jget report.json '(d["ok"], sorted(k["state"] for k in d["keys"] if k["purpose"] == "checkpoint"))')" = \
	"(True, ['active', 'destroyed'])"
check "  the rotation's attestation proved at a leaf" test \
	"$(jget report.json '[a["seq"] >= 0 for k in d["keys"] if k["id"] == "'"$CP1"'" for a in k["attestations"] if a["kind"] == "rotation"]')" = "[True]"
"$CUSTODY" audit report ex1 --vkey-file vkeys-first >report.txt
check "audit report (text) names every key" eval 'grep -q "$A1" report.txt && grep -q "$CP1" report.txt && grep -q "$CP2" report.txt'
"$CUSTODY" audit report ex1 --vkey-file vkeys-first --html >report.html
check "audit report --html is one page without script" eval 'grep -qi "<html" report.html && ! grep -qi "<script" report.html && grep -q "$CP1" report.html'
expect_fail "--json and --html together are refused" 2 "not both" \
	"$CUSTODY" audit report ex1 --vkey-file vkeys-first --json --html
expect_fail "a bad --tolerance is refused" 2 "--tolerance wants a number" \
	"$CUSTODY" audit verify ex1 --vkey-file vkeys-first --tolerance -5

expect_fail "the last active checkpoint key is not destroyed" 1 "only checkpoint key" \
	C key destroy "$CP2" --reason "oops"
check "  and stays active" test "$(keystate "$CP2")" = active

# ---- 3. logs that break the lifecycle -------------------------------------------------
# a rotation whose attestation never came: custodyd dies between the two leaves
try_start kill CUSTODY_TEST_CLOCK="$CLOCK" CUSTODY_FAILPOINT=rotate_after_leaf || true
code=$(curl -sS --max-time 60 --unix-socket "$T/d/custody.sock" -o /dev/null -w '%{http_code}' \
	-X POST -H 'Content-Type: application/json' --data-binary '{"reason":"drill"}' \
	"http://custody/v1/keys/$A1/rotate" 2>/dev/null) || true
wait "$pid" 2>/dev/null || true
check "custodyd died after the rotation's leaf" not kill -0 "$pid"
C audit checkpoint >/dev/null
C audit export ex2 >/dev/null
expect_fail "audit verify rejects a rotation without its attestation" 1 "unattested $A1" \
	"$CUSTODY" audit verify ex2 --vkey-file vkeys-first
check "  and says the lifecycle checks failed" grep -q "the log verifies, but 1 lifecycle check failed" err.txt
start d2 CUSTODY_TEST_CLOCK="$CLOCK"
A2=$(C key show "$A1" --json | jget /dev/stdin 'd["successor"]')
jwt a
stop TERM
C audit checkpoint >/dev/null
C audit export ex3 >/dev/null
check "after the restart's recovery attested it, the log verifies" "$CUSTODY" audit verify ex3 --vkey-file vkeys-first

# a credential after its key's destruction, forged into the database
$PY - "$DB" "$A2" >cred.json <<'PY'
import json, sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
last = None
for (data,) in db.execute("SELECT data FROM audit_leaves ORDER BY seq"):
    l = json.loads(data)
    if l["event"] == "credential.jwt" and l.get("key", {}).get("id") == sys.argv[2]:
        last = {k: v for k, v in l.items() if k not in ("v", "seq", "time")}
if last:
    print(json.dumps(last))
PY
check "a credential leaf of the successor to copy" test -s cred.json
C key destroy "$A2" --reason "task done" >/dev/null
check "  the successor is destroyed" test "$(keystate "$A2")" = destroyed
C audit checkpoint >/dev/null
C audit export ex4 >/dev/null
check "  the log verifies before the forgery" "$CUSTODY" audit verify ex4 --vkey-file vkeys-first
"$FORGE" forge "$DB" <cred.json >forged.seq
C audit checkpoint >/dev/null
C audit export ex5 >/dev/null
check "the forged log is a valid Merkle tree (python3, tlog_check.py)" TLOG export ex5 vkeys-both
expect_fail "audit verify rejects a credential signed after its key's destruction" 1 \
	"leaf $(cat forged.seq): credential $A2" "$CUSTODY" audit verify ex5 --vkey-file vkeys-first
"$CUSTODY" audit report ex5 --vkey-file vkeys-first --json >bad.json || true
check "audit report --json lists it as a credential violation" test \
	"$(jget bad.json '(d["ok"], [(v["kind"], v.get("seq")) for v in d["violations"]])')" = \
	"(False, [('credential', $(cat forged.seq))])"
check "custodyd's stderr is clean" asan_clean d.err
finish
