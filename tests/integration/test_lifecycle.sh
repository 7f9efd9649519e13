#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The key lifecycle through custodyd-test (custodyd with a movable clock and
# failpoints), black box, on a real SoftHSM2 token made here:
#   1. Rotation at max_age by the scheduler, exactly once, across a restart
#      in the middle; the retired key stays in the JWKS while a JWT it
#      signed is valid, then is destroyed (trigger expiry); TTL destruction.
#   2. Manual rotation and destruction (custody key rotate/destroy, the
#      API), lifecycle events (task.completed, key.compromised,
#      agent.retired) with idempotency ids; a destroyed key signs nothing
#      and the token holds no object with its CKA_ID (pkcs11-tool).
#   3. Attestations verified by dsse_check.py (python3-cryptography): the
#      PAE recomputed and hashed to the decision leaf's tbs_sha256, rotation
#      signed by the old and the new key, destruction by the attestation key.
#   4. A SIGKILL at each step of rotation and destruction (failpoints), then
#      a restart: the registry, the token and the log agree, one active key
#      per agent, every step attested, the recovery logged.
#
# usage: test_lifecycle.sh CUSTODYD-TEST CUSTODY SOFTHSM2_MODULE
# shellcheck disable=SC2016,SC2034
set -euo pipefail

DAEMON=$(readlink -f "$1")
CUSTODY=$(readlink -f "$2")
MODULE=$(readlink -f "$3")
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/custody-lifecycle-XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
(umask 077 && printf 'lc-user-pin-71\n' >user.pin && printf 'lc-so-pin-29\n' >so.pin)
custody_datadir d
CONF=$T/d.conf
DB=$T/d/custody.db
SOCK=$T/d/custody.sock
CLOCK=$T/clock
AG=spiffe://example.org/agent
cat >pol.json <<'JSON'
{"version": 1, "rules": [
  {"id": "scheduler", "effect": "allow", "principals": ["custody:scheduler"],
   "actions": ["key.rotate", "key.destroy"]},
  {"id": "root-admin", "effect": "allow", "principals": ["unix:uid=0"],
   "actions": ["key.create", "key.rotate", "key.destroy", "key.read",
               "lifecycle.event", "audit.read", "checkpoint.sign"]},
  {"id": "root-jwt", "effect": "allow", "principals": ["unix:uid=0"],
   "actions": ["credential.jwt"],
   "conditions": {"max_ttl": "15m", "audiences": ["https://api.test"]}}
]}
JSON
cat >>"$CONF" <<CONF
policy $T/pol.json
issuer https://custody.test
CONF
echo 0 >"$CLOCK"
export SOFTHSM2_CONF=$T/d/softhsm2/softhsm2.conf
# call METHOD PATH [BODY]: $code and the answer in r.json
call() {
	local data=()
	if [ -n "${3:-}" ]; then data=(-H 'Content-Type: application/json' --data-binary "$3"); fi
	code=$(curl -sS --max-time 60 --unix-socket "$SOCK" -o r.json -w '%{http_code}' \
		-X "$1" "${data[@]}" "http://custody$2" 2>curl.err) || code=000
}
succ() { C key show "$1" --json | jget /dev/stdin 'd.get("successor", "")'; }
spki() { C key show "$1" --json | jget /dev/stdin 'd["spki"]'; }
# attested DECISION_SEQ TYPE SPKI...: the attestation leaf of that decision
# verifies with dsse_check.py
attested() {
	local seq=$1 type=$2 tbs
	shift 2
	leaves "l['detail']['envelope'] if l['event'] == 'attestation' and l['detail']['decision_seq'] == $seq else ''" |
		grep -v '^$' | head -1 | base64 -d >env.json
	tbs=$(leaves "l.get('tbs_sha256', '') if l['seq'] == $seq else ''" | grep -v '^$')
	$PY "$HERE/dsse_check.py" env.json "$type" "$tbs" "$@" >dsse.out
}
# one active key per (agent, purpose, task), every live key in the token,
# no custody object in the token without a live key, every rotation and
# destruction attested
consistent() {
	$PY - "$DB" <<'PY' || return 1
import json, sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
act = {}
for agent, purpose, task in db.execute("SELECT agent, purpose, task FROM keys WHERE state='active'"):
    k = (agent, purpose, task)
    if k in act: sys.exit("two active keys for %r" % (k,))
    act[k] = 1
leaves = [json.loads(d) for (d,) in db.execute("SELECT data FROM audit_leaves ORDER BY seq")]
att = {l["detail"]["decision_seq"] for l in leaves if l["event"] == "attestation"}
for l in leaves:
    if l["event"] in ("key.rotate", "key.destroy") and l.get("decision") == "allow" and l["seq"] not in att:
        sys.exit("leaf %d (%s) has no attestation" % (l["seq"], l["event"]))
if db.execute("SELECT count(*) FROM lifecycle_jobs").fetchone()[0]:
    sys.exit("a lifecycle job is left")
PY
	local id n
	for id in $($PY -c "import sqlite3,sys; [print(r[0]) for r in sqlite3.connect('file:$DB?mode=ro', uri=True).execute(\"SELECT id FROM keys WHERE state <> 'destroyed'\")]"); do
		n=$(objects "$id")
		if [ "$n" != 2 ]; then echo "# $id has $n objects" >&2; return 1; fi
	done
	for id in $(P11 --login --pin "$(cat user.pin)" --list-objects 2>/dev/null |
		sed -n 's/^ *label: *\(k_[0-9a-f]\{16\}\)$/\1/p' | sort -u); do
		case $($PY -c "import sqlite3; r=sqlite3.connect('file:$DB?mode=ro', uri=True).execute(\"SELECT state FROM keys WHERE id='$id'\").fetchone(); print(r[0] if r else 'none')") in
		active | retired) continue ;;
		esac
		echo "# token object $id has no live key" >&2
		return 1
	done
}

start d CUSTODY_TEST_CLOCK="$CLOCK"
ATT=$(C key list --json | jget /dev/stdin '[k["id"] for k in d if k["purpose"] == "attestation"][0]')

# ---- 1. the scheduler: rotation at max_age, JWKS overlap, expiry, ttl ------------
C key create --agent "$AG/a" --owner team-a --purpose jwt --alg ecdsa-p256 \
	--max-age 1h --json >a.json
A1=$(jget a.json 'd["id"]')
advance 3000
sleep 2
check "before max_age the key is still active" test "$(keystate "$A1")" = active
call POST /v1/credentials/jwt "{\"agent\":\"$AG/a\",\"audience\":\"https://api.test\",\"ttl\":900}"
check "a JWT is signed by the first key" test "$code" = 200
advance 3605
check "at max_age the scheduler rotates the key" wait_for rotation eval 'test "$(keystate "$A1")" = retired'
A2=$(succ "$A1")
check "the successor is active" test "$(keystate "$A2")" = active
check "one key.rotate leaf, by custody:scheduler with trigger age" test \
	"$(leaves '(l["principal"], l["detail"]["trigger"]) if l["event"] == "key.rotate" else ""' | grep -c "^('custody:scheduler', 'age')$")" = 1
ROT=$(leaves 'l["seq"] if l["event"] == "key.rotate" else ""' | grep -v '^$' | head -1)
check "the rotation attestation verifies with both keys (python3-cryptography)" \
	attested "$ROT" /key-rotation/v1 "$(spki "$A1")" "$(spki "$A2")"
check "its subject is the new key" grep -q "^$A2 " dsse.out
check "a forged tbs_sha256 is caught" not attested "$ROT" /key-rotation/v1x "$(spki "$A1")"
call GET /v1/jwks
check "the JWKS still lists the retired key while its JWT is valid" test \
	"$(jget r.json 'len(d["keys"])')" = 2
call POST /v1/credentials/jwt "{\"key\":\"$A1\",\"audience\":\"https://api.test\",\"ttl\":60}"
check "the retired key signs nothing (409)" test "$code" = 409
call POST /v1/credentials/jwt "{\"agent\":\"$AG/a\",\"audience\":\"https://api.test\",\"ttl\":60}"
check "the agent's JWTs come from the new key" eval 'test "$code" = 200 && test "$(jget r.json "d[\"kid\"]")" = "$(C key show "$A2" --json | jget /dev/stdin "d[\"kid\"]")"'
# restart in the middle: the expiry of the retired key happens once, after
stop TERM
advance 4300
start d2 CUSTODY_TEST_CLOCK="$CLOCK"
check "once its JWTs expired the retired key is destroyed" wait_for expiry eval 'test "$(keystate "$A1")" = destroyed'
check "by the scheduler, trigger expiry" test \
	"$(leaves '(l["key"]["id"], l["detail"]["trigger"]) if l["event"] == "key.destroy" and l.get("decision") == "allow" else ""' | grep -c "^('$A1', 'expiry')$")" = 1
check "the token holds no object of it (pkcs11-tool)" test "$(objects "$A1")" = 0
call GET /v1/jwks
check "the JWKS lists the new key only" test "$(jget r.json 'len(d["keys"])')" = 1
check "no second rotation of the new key" test "$(keystate "$A2")" = active
# ttl destruction of a per-task key
C key create --agent "$AG/b" --owner team-b --purpose jwt --alg ed25519 --task t-9 \
	--ttl 2h --json >b.json
B1=$(jget b.json 'd["id"]')
advance $((4300 + 7205))
check "at the end of its ttl a task key is destroyed" wait_for ttl eval 'test "$(keystate "$B1")" = destroyed'
check "trigger ttl, exactly once" test \
	"$(leaves '(l["key"]["id"], l["detail"]["trigger"]) if l["event"] == "key.destroy" and l.get("decision") == "allow" else ""' | grep -c "^('$B1', 'ttl')$")" = 1
DSEQ=$(leaves "l['seq'] if l['event'] == 'key.destroy' and l.get('decision') == 'allow' and l['key']['id'] == '$B1' else ''" | grep -v '^$')
check "its destruction attestation verifies with the attestation key" \
	attested "$DSEQ" /key-destruction/v1 "$(spki "$ATT")"
check "and names the destroyed key" grep -q "^$B1 " dsse.out

# ---- 2. manual steps and events ----------------------------------------------------
call POST /v1/keys '{"agent":"'$AG/j'","owner":"team-j","purpose":"jwt","alg":"ed25519","task":"j-1"}'
check "the API refuses a task key without a ttl (400)" eval 'test "$code" = 400 && grep -q "needs a ttl" r.json'

C key create --agent "$AG/c" --owner team-c --purpose jwt --alg ecdsa-p256 --json >c.json
C1=$(jget c.json 'd["id"]')
check "custody key rotate (through custodyd)" C key rotate "$C1" --reason "drill" --json
C2=$(succ "$C1")
check "the manual rotation is attested" test "$(C key history "$C2" --json | jget /dev/stdin 'len(d["attestations"])')" = 1
check "custody key history shows the chain" eval 'C key history "$C2" | grep -q "$C1"'
check "a reason is required" not C key rotate "$C2"
call POST "/v1/keys/$C2/rotate" '{"reason":"x","extra":1}'
check "unknown members are refused (400)" test "$code" = 400
call POST "/v1/keys/$C1/rotate" '{"reason":"again"}'
check "a retired key does not rotate (409)" test "$code" = 409
C key create --agent "$AG/c" --owner team-c --purpose jwt --alg ecdsa-p256 --task job-1 \
	--ttl 1h --json >t.json
T1=$(jget t.json 'd["id"]')
EV='{"id":"ev-1","type":"task.completed","task":"job-1","agent":"'$AG/c'"}'
call POST /v1/events "$EV"
check "task.completed destroys the task's key" eval 'test "$code" = 200 && test "$(keystate "$T1")" = destroyed'
call POST /v1/events "$EV"
check "the same event id again answers as the first time" eval 'test "$code" = 200 && test "$(jget r.json "d[\"replayed\"]")" = True'
check "and destroys nothing twice" test \
	"$(leaves 'l["key"]["id"] if l["event"] == "key.destroy" and l.get("decision") == "allow" else ""' | grep -c "^$T1$")" = 1
call POST /v1/events '{"id":"ev-1","type":"agent.retired","agent":"x"}'
check "the id with another request is refused (409)" test "$code" = 409
call POST /v1/events '{"id":"ev-2","type":"key.compromised","key":"'"$C2"'"}'
check "key.compromised destroys the key at once" eval 'test "$code" = 200 && test "$(keystate "$C2")" = destroyed'
check "no object with its CKA_ID is left (pkcs11-tool)" test "$(objects "$C2")" = 0
call POST /v1/credentials/jwt "{\"key\":\"$C2\",\"audience\":\"https://api.test\",\"ttl\":60}"
check "the compromised key signs nothing ($code)" test "$code" = 404
call GET /v1/jwks
check "and is gone from the JWKS" not grep -q "$(C key show "$C2" --json | jget /dev/stdin 'd["kid"]')" r.json
DSEQ=$(leaves "l['seq'] if l['event'] == 'key.destroy' and l.get('decision') == 'allow' and l['key']['id'] == '$C2' else ''" | grep -v '^$')
check "its destruction attestation verifies (python3-cryptography)" \
	attested "$DSEQ" /key-destruction/v1 "$(spki "$ATT")"
call POST /v1/events '{"id":"ev-3","type":"agent.retired","agent":"'$AG/a'"}'
check "agent.retired destroys the agent's keys" eval 'test "$code" = 200 && test "$(keystate "$A2")" = destroyed'
call POST /v1/events '{"id":"ev-4","type":"owner.left"}'
check "an unknown event type is refused (400)" test "$code" = 400
call GET "/v1/attestations?key=$A2"
check "GET /v1/attestations lists a key's rotations (in and out) and destruction" test \
	"$(jget r.json 'sorted(a["kind"] for a in d["attestations"])')" = "['destruction', 'rotation', 'rotation']"
check "the state is consistent" wait_for "a consistent state" consistent 2>/dev/null
stop TERM

# ---- 3. a SIGKILL at each step, then a restart -------------------------------------
n=0
for fp in rotate_after_job rotate_after_keygen rotate_after_leaf attest_after_sign \
	destroy_after_job destroy_after_token destroy_after_leaf; do
	n=$((n + 1))
	start "fp$n" CUSTODY_TEST_CLOCK="$CLOCK"
	C key create --agent "$AG/f$n" --owner team-f --purpose jwt --alg ecdsa-p256 --json >f.json
	F=$(jget f.json 'd["id"]')
	stop TERM
	try_start "fpk$n" CUSTODY_TEST_CLOCK="$CLOCK" CUSTODY_FAILPOINT="$fp" || true
	case $fp in
	rotate_* | attest_*) call POST "/v1/keys/$F/rotate" '{"reason":"crash drill"}' ;;
	*) call POST "/v1/keys/$F/destroy" '{"reason":"crash drill"}' ;;
	esac
	wait "$pid" 2>/dev/null || true
	check "$fp: custodyd died at the failpoint" not kill -0 "$pid"
	start "fpr$n" CUSTODY_TEST_CLOCK="$CLOCK"
	# the scheduler may be amid a step of its own (the retired key of an
	# earlier drill is destroyed, then attested): poll, not one look
	check "$fp: after the restart the registry, token and log agree" \
		wait_for "a consistent state" consistent 2>/dev/null
	stop TERM
done
check "the recovery is logged" test "$(count recovery allow)" -ge 1
check "custodyd's stderr is clean" asan_clean d.err
finish
