#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# custodyd's HTTP API, black box, on a real SoftHSM2 token made here, with
# curl on its Unix socket as two principals (root, and nobody through
# setpriv) under a policy written here:
#   1. JWTs of Ed25519, P-256, P-384 and RSA-PSS keys verified by
#      python3-jwcrypto against the daemon's JWKS (alg pinned) and by hand
#      with python3-cryptography; header {alg, kid, typ}; exp - iat from the
#      TTL asked, the policy's max_ttl and the key's remaining life; each
#      token's decision leaf found by the SHA-256 of its signing input.
#   2. Refusals that sign nothing: header fields, alg none, duplicate members
#      (escaped too), reserved claims, bad TTLs, bodies that are not JSON,
#      not UTF-8, too deep or too large, other media types, another broker's
#      agent, the checkpoint key, rate limits; slow clients; max-connections.
#   3. Deny leaves (principal, rule, reason) and the requests.refused leaves
#      that count the rest.
#   4. Keys over the API: create, 409, list, show, 404, 403; the JWKS.
#   5. Log endpoints: checkpoints, tiles, inclusion and consistency proofs,
#      checked with RFC 6962 hashing of jwt_check.py and by tlog_check.py.
#   6. Fail closed (tests/failsync.c): once fsync fails every JWT request is
#      503, also after fsync works again; the log is intact after a restart.
#   7. SIGTERM with requests in flight: complete answers, exit 0,
#      service.stop and a final checkpoint over it.
#
# Needs root (broker B runs as uid 65534 through setpriv).
#
# usage: test_api.sh CUSTODYD CUSTODY SOFTHSM2_MODULE FAILSYNC_SO
#
# Compound checks are strings run by 'check NAME eval ...' (SC2016), with
# locals they alone read (SC2034); $MODULE is read by lib.sh.
# shellcheck disable=SC2016,SC2034
set -euo pipefail

DAEMON=$1
CUSTODY=$2
MODULE=$3
FAILSYNC=$4
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1 # tlog_check.py is imported: no __pycache__ in the sources
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
if [ "$(id -u)" != 0 ]; then
	echo "not ok - test_api.sh needs root: broker B is uid 65534 through setpriv"
	exit 1
fi
T=$(mktemp -d /tmp/custody-api-XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
# nobody must reach the socket (sock/, 0755) and the request bodies (b/),
# and write the answers (pub/, r/)
chmod 711 "$T"
umask 022
cd "$T"
mkdir -m 755 sock b
mkdir -m 777 pub r
mkdir prob

(umask 077 && printf 'api-user-pin-29\n' >user.pin && printf 'api-so-pin-83\n' >so.pin)
CONF=$T/d.conf
DB=$T/d/custody.db
SOCK=$T/sock/api.sock
POL=$T/pol.json
ISS=https://custody.test/issuer
AUD=https://api.example.org
AUD2=https://other.example.org
ROOT=unix:uid=0
NOBODY=unix:uid=65534
AG=spiffe://example.org/agent
C() { "$CUSTODY" -c "$CONF" "$@"; }
J() { "$PY" "$HERE/jwt_check.py" "$@"; }

# ---- helpers ---------------------------------------------------------------------

# decisions: leaves other than the periodic requests.refused ones
decisions() { leaves 'l["event"]' | grep -vc '^requests.refused$' || true; }

# req [-u] METHOD PATH CURL-ARGS...: one request on the socket (-u: as uid
# 65534); sets $code and $ctype, and $ans, the file of the answer's body
# ($OUT, else pub/body). Counts the refusals that get no leaf of their own,
# by principal and status, in refused[] (section 3).
declare -A refused=()
req() {
	local as=() who=$ROOT w slot
	if [ "$1" = -u ]; then
		as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		who=$NOBODY
		shift
	fi
	local method=$1 path=$2
	shift 2
	last="$who $method $path ${body_name:-}"
	ans=${OUT:-pub/body}
	if [ -e "$ans" ]; then rm -f "$ans"; fi
	w=$("${as[@]}" curl -sS --max-time 30 --unix-socket "$SOCK" -o "$T/$ans" \
		-w '%{http_code} %{content_type}' -X "$method" "$@" "http://custody$path" \
		2>pub/curl.err) || true
	code=${w%% *}
	ctype=${w#* }
	if [ ! -e "$ans" ]; then : >"$ans"; fi
	case $code in
	400 | 404 | 405 | 413 | 415 | 429) slot=$code ;;
	*) slot= ;;
	esac
	if [ -n "$slot" ]; then
		refused[$who $slot]=$((${refused[$who $slot]:-0} + 1))
		refused[$who all]=$((${refused[$who all]:-0} + 1))
	fi
}
GET() {
	local u=()
	if [ "$1" = -u ]; then u=(-u) && shift; fi
	req "${u[@]}" GET "$@"
}
# post [-u] PATH NAME BODY [CURL-ARGS...]: the body in b/NAME, the answer in
# r/NAME; Content-Type: application/json, or $CT ("": none)
post() {
	local u=()
	if [ "$1" = -u ]; then u=(-u) && shift; fi
	local path=$1 name=$2 body=$3
	shift 3
	printf '%s' "$body" >"b/$name"
	OUT=r/$name body_name=b/$name req "${u[@]}" POST "$path" -H "Content-Type:${CT- application/json}" --data-binary "@$T/b/$name" "$@"
}
jwt() { # jwt [-u] NAME BODY [CURL-ARGS...]
	local u=()
	if [ "$1" = -u ]; then u=(-u) && shift; fi
	post "${u[@]}" /v1/credentials/jwt "$@"
}
# problem STATUS [TEXT]: the last answer has that status and is a problem
# (application/problem+json); its body is kept for problems_ok, which checks
# it is an RFC 9457 problem of that status whose detail mentions TEXT (one
# python for many answers)
nprob=0
problem() {
	test "$code" = "$1" && test "$ctype" = "application/problem+json" || return 1
	nprob=$((nprob + 1))
	local text=''
	IFS= read -r -d '' text <"$ans" || true
	printf '%s' "$text" >"prob/$nprob"
	if [ -n "${2:-}" ]; then printf '%s' "$2" >"prob/$nprob.text"; fi
	echo "prob/$nprob $1 $last" >>prob/list
}
problems_ok() { # the problems kept since the last call
	test -s prob/list || return 0
	J problems prob/list >/dev/null
	local r=$?
	: >prob/list
	return $r
}
# rule_is RULE: the last problem names that rule
rule_is() { test "$(jget "$ans" 'd.get("rule")')" = "$1"; }
# is STATUS: the last answer has that status and is JSON
is() { test "$code" = "$1" && test "${ctype%%;*}" = "application/json"; }
is_text() { test "$code" = 200 && test "${ctype%%;*}" = "text/plain"; }
status_is() { is "$1" && test "$(jget "$ans" 'd["status"]')" = "$2"; }
metric() { # metric NAME: the sum of a metric's series
	curl -sS --unix-socket "$SOCK" http://custody/metrics |
		awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}
issued() { metric custody_credentials_issued_total; }
allow_leaves() { count credential.jwt allow; }
# deny_leaf EVENT PRINCIPAL RULE KEY_ID|- BODY_FILE|-: the last leaf of EVENT
# is a deny by PRINCIPAL and RULE with a reason, about KEY_ID, of that body
deny_leaf() {
	$PY - "$DB" "$@" "$(sha256sum "$POL" | cut -d' ' -f1)" <<'PY'
import hashlib, json, sqlite3, sys
db, event, principal, rule, key, body, polsha = sys.argv[1:]
c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
ls = [json.loads(d) for (d,) in c.execute("SELECT data FROM audit_leaves ORDER BY seq")]
l = [l for l in ls if l["event"] == event][-1]
assert l["decision"] == "deny", l
assert l["principal"] == principal, l
assert l["policy"].get("rule") == rule, l
if rule == "(purpose)" and "sha256" not in l["policy"]:
    print("# note: the %s deny leaf has no policy sha256: %s" % (rule, l["policy"]), file=sys.stderr)
else:
    assert l["policy"] == {"sha256": polsha, "rule": rule}, l
assert isinstance(l.get("reason"), str) and l["reason"], l
assert "tbs_sha256" not in l, l
if key != "-":
    assert l["key"]["id"] == key, l
if body != "-":
    assert l["request_sha256"] == hashlib.sha256(open(body, "rb").read()).hexdigest(), l
PY
}
export_ok() { # export_ok DIR: a fresh export verified by custody and by tlog_check.py
	rm -rf "$1"
	C audit export "$1" >/dev/null && "$CUSTODY" audit verify "$1" --vkey-file vkeys >/dev/null &&
		$PY "$HERE/tlog_check.py" export "$1" vkeys >/dev/null
}

# ---- the data directory, the policy, the configuration -------------------------------
echo "# ${SECONDS}s: the data directory, the policy, the configuration"
custody_datadir d
cat >"$POL" <<JSON
{
  "version": 1,
  "description": "test_api.sh: root administers and issues; nobody (65534) issues for agent b only",
  "rules": [
    {"id": "root-admin", "effect": "allow", "principals": ["$ROOT"],
     "actions": ["key.create", "key.rotate", "key.destroy", "key.read",
                 "lifecycle.event", "audit.read", "checkpoint.sign"]},
    {"id": "deny-locked", "effect": "deny", "principals": ["$ROOT"],
     "actions": ["credential.jwt"], "keys": {"agent": ["$AG/locked"]}},
    {"id": "root-issue-rl", "effect": "allow", "principals": ["$ROOT"],
     "actions": ["credential.jwt"], "keys": {"agent": ["$AG/rl"], "purpose": ["jwt"]},
     "conditions": {"max_ttl": "15m", "audiences": ["$AUD"],
                    "rate": {"per_key": {"limit": 1, "per": "1h", "burst": 2}}}},
    {"id": "root-issue-jwt", "effect": "allow", "principals": ["$ROOT"],
     "actions": ["credential.jwt"], "keys": {"agent": ["$AG/*"], "purpose": ["jwt"]},
     "conditions": {"max_ttl": "15m", "audiences": ["$AUD", "$AUD2"],
                    "claims": ["scope", "roles", "deep"], "act": true}},
    {"id": "nobody-issue-b", "effect": "allow", "principals": ["$NOBODY"],
     "actions": ["credential.jwt"], "keys": {"agent": ["$AG/b"], "purpose": ["jwt"]},
     "conditions": {"max_ttl": "5m", "audiences": ["$AUD"]}},
    {"id": "nobody-read-b", "effect": "allow", "principals": ["$NOBODY"],
     "actions": ["key.read"], "keys": {"agent": ["$AG/b"]}}
  ]
}
JSON
check "the test policy is valid" eval '"$CUSTODY" policy check "$POL" >/dev/null'
cat >>"$CONF" <<CONF
policy $POL
issuer $ISS
listen-unix $SOCK
listen-unix-mode 0666
request-timeout 2s
workers 2
CONF
C audit vkey >vkeys
C key list --json >servicekeys.json
CKPT_KEY=$(jget servicekeys.json '[k["id"] for k in d if k["purpose"] == "checkpoint"][0]')
CKPT_KID=$(jget servicekeys.json '[k["kid"] for k in d if k["purpose"] == "checkpoint"][0]')

start run1
check "the socket has mode 0666" test "$(stat -c %a "$SOCK")" = 666
GET /healthz
check "GET /healthz: 200 {status: ok}" status_is 200 ok

# ---- 4. keys over the API ----------------------------------------------------------
echo "# ${SECONDS}s: 4. keys over the API"
key_ok() { # key_ok FILE AGENT ALG: a key as POST /v1/keys answers it
	$PY - "$@" <<'PY'
import json, re, sys
k = json.load(open(sys.argv[1]))
assert re.fullmatch(r"k_[0-9a-f]{16}", k["id"]), k
assert re.fullmatch(r"[A-Za-z0-9_-]{43}", k["kid"]), k
assert (k["agent"], k["owner"], k["purpose"], k["alg"], k["state"]) == \
    (sys.argv[2], "team-a", "jwt", sys.argv[3], "active"), k
assert k["spki"], k
PY
}
# mkkey NAME AGENT ALG [MORE-MEMBERS]: POST /v1/keys as root; the key in key-NAME.json, its id in $ID_NAME
mkkey() {
	local kn=$1 ka=$2 kalg=$3
	post /v1/keys "key-$kn" "{\"agent\":\"$ka\",\"owner\":\"team-a\",\"purpose\":\"jwt\",\"alg\":\"$kalg\"${4:-}}"
	cp "r/key-$kn" "key-$kn.json"
	check "POST /v1/keys $kn ($kalg): 201 with id, kid, spki, state active" eval \
		'is 201 && key_ok "key-$kn.json" "$ka" "$kalg"'
	eval "ID_$kn=\$(jget key-$kn.json 'd[\"id\"]' 2>/dev/null || echo none)"
}
ID_ed='' ID_p256='' ID_p384='' ID_rsa='' ID_b='' ID_locked='' ID_x='' ID_rl='' ID_short=''
n=$(nleaves)
mkkey ed "$AG/ed" ed25519
mkkey p256 "$AG/p256" ecdsa-p256
mkkey p384 "$AG/p384" ecdsa-p384
mkkey rsa "$AG/rsa" rsa-pss-3072
mkkey b "$AG/b" ed25519
mkkey locked "$AG/locked" ecdsa-p256
mkkey x spiffe://other.org/agent/x ed25519
mkkey rl "$AG/rl" ed25519
mkkey short "$AG/short" ed25519 ',"ttl":120,"max_age":86400'
post /v1/keys ca "{\"agent\":\"$AG/ca\",\"owner\":\"team-a\",\"purpose\":\"x509-ca\",\"alg\":\"ecdsa-p256\"}"
check "POST /v1/keys an x509-ca key: 201" is 201
ID_ca=$(jget r/ca 'd["id"]' 2>/dev/null || echo none)
check "each is a key.create leaf: allow, by root, with the key's id" test \
	"$(leaves 'l["event"]' 'l.get("decision")' 'l["principal"]' 'l.get("key", {}).get("id", l["detail"].get("id"))' |
		tail -n +$((n + 1)) | grep -c "^key.create allow $ROOT k_")" = 10
n=$(count key.create deny)
post /v1/keys dup "{\"agent\":\"$AG/ed\",\"owner\":\"team-a\",\"purpose\":\"jwt\",\"alg\":\"ecdsa-p256\"}"
check "a second active jwt key of the same agent: 409, rule (exists)" eval 'problem 409 && rule_is "(exists)"'
check "  logged: a key.create deny leaf, rule (exists)" eval \
	'test "$(count key.create deny)" = $((n + 1)) && deny_leaf key.create "$ROOT" "(exists)" - -'
post /v1/keys task1 "{\"agent\":\"$AG/ed\",\"owner\":\"team-a\",\"purpose\":\"jwt\",\"alg\":\"ed25519\",\"task\":\"t-1\",\"ttl\":3600}"
check "  one with a task is another key: 201" is 201
ID_task1=$(jget r/task1 'd["id"]' 2>/dev/null || echo none)
post /v1/keys task1b "{\"agent\":\"$AG/ed\",\"owner\":\"team-a\",\"purpose\":\"jwt\",\"alg\":\"ed25519\",\"task\":\"t-1\",\"ttl\":3600}"
check "  and the same task again: 409" problem 409
post /v1/keys task2 "{\"agent\":\"$AG/ed\",\"owner\":\"team-a\",\"purpose\":\"jwt\",\"alg\":\"ed25519\",\"task\":\"t-2\"}"
check "  one with a task and no ttl: 400" problem 400
for bad in '"purpose":"checkpoint"' '"purpose":"attestation"' '"purpose":"email"' \
	'"alg":"ed448"' '"ttl":"1h"' '"ttl":1.5' '"ttl":-5' '"colour":"blue"'; do
	body=$($PY -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])))' \
		"{\"agent\":\"$AG/k\",\"owner\":\"team-a\",\"purpose\":\"jwt\",\"alg\":\"ed25519\",$bad}")
	post /v1/keys badkey "$body"
	check "POST /v1/keys with $bad: 400" problem 400
done
post /v1/keys noowner "{\"agent\":\"$AG/k\",\"purpose\":\"jwt\",\"alg\":\"ed25519\"}"
check "POST /v1/keys without owner: 400" problem 400
post /v1/keys dupmember "{\"agent\":\"$AG/k\",\"\\u0061gent\":\"$AG/k2\",\"owner\":\"o\",\"purpose\":\"jwt\",\"alg\":\"ed25519\"}"
check "POST /v1/keys with an escaped duplicate member: 400" problem 400
n=$(count key.create deny)
post -u /v1/keys bykey "{\"agent\":\"$AG/b\",\"owner\":\"team-a\",\"purpose\":\"jwt\",\"alg\":\"ed25519\",\"task\":\"nobody\",\"ttl\":3600}"
check "nobody may not create keys: 403" problem 403
check "  logged: a key.create deny leaf by $NOBODY" eval \
	'test "$(count key.create deny)" = $((n + 1)) && deny_leaf key.create "$NOBODY" "(default)" - -'

GET /v1/keys
cp pub/body keys-all.json
check "GET /v1/keys: every key created, and the service keys" $PY - keys-all.json \
	"$ID_ed" "$ID_p256" "$ID_p384" "$ID_rsa" "$ID_b" "$ID_locked" "$ID_x" "$ID_rl" "$ID_short" \
	"$ID_task1" "$CKPT_KEY" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert list(d) == ["keys"], d
ids = [k["id"] for k in d["keys"]]
assert len(ids) == len(set(ids)), ids
assert set(sys.argv[2:]) <= set(ids), ids
PY
GET '/v1/keys?state=active'
check "GET /v1/keys?state=active: the same keys" $PY -c '
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert sorted(k["id"] for k in a["keys"]) == sorted(k["id"] for k in b["keys"])
assert all(k["state"] == "active" for k in b["keys"])' keys-all.json pub/body
GET '/v1/keys?state=destroyed'
check "GET /v1/keys?state=destroyed: none" test "$(jget pub/body 'len(d["keys"])')" = 0
GET '/v1/keys?state=bogus'
check "GET /v1/keys?state=bogus: 400" problem 400
GET "/v1/keys/$ID_p256"
check "GET /v1/keys/ID: the key as created (less the token attributes read back then)" eval 'is 200 && $PY -c "
import json, sys
made, shown = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
made.pop(\"token_attributes\", None)
assert made == shown, (made, shown)" key-p256.json pub/body'
GET /v1/keys/k_0123456789abcdef
check "GET /v1/keys/UNKNOWN: 404" problem 404
n=$(count key.read deny)
GET -u "/v1/keys/$ID_ed"
check "nobody reads a key it has no key.read rule for: 403" problem 403
check "  logged: a key.read deny leaf by $NOBODY about that key" eval \
	'test "$(count key.read deny)" = $((n + 1)) && deny_leaf key.read "$NOBODY" "(default)" "$ID_ed" -'
GET -u "/v1/keys/$ID_b"
check "  but reads agent b's key: 200" is 200
GET -u /v1/keys
check "  and GET /v1/keys lists that one only" test "$(jget pub/body '[k["id"] for k in d["keys"]]')" = "['$ID_b']"
req PUT /v1/keys -D pub/headers
check "PUT /v1/keys: 405 with Allow" eval 'problem 405 && grep -qi "^Allow: " pub/headers'
req DELETE "/v1/keys/$ID_ed" -D pub/headers
check "DELETE /v1/keys/ID: 405, Allow: GET" eval 'problem 405 && grep -qi "^Allow: GET" pub/headers'
GET /v1/nothing-here
check "an unknown path: 404" problem 404
rm -f pub/body
w=$(curl -sS --max-time 10 --unix-socket "$SOCK" -I -o pub/body -w '%{http_code}' http://custody/healthz) || true
refused[$ROOT 405]=$((${refused[$ROOT 405]:-0} + 1)) refused[$ROOT all]=$((${refused[$ROOT all]:-0} + 1))
check "HEAD /healthz: 405, Allow: GET, Connection: close" eval \
	'test "$w" = 405 && grep -qi "^Allow: GET" pub/body && grep -qi "^Connection: close" pub/body'
check "the refusals above: RFC 9457 problems of their status, the detail naming what is wrong" problems_ok

# the JWKS: both paths, every active jwt key, no service key
req GET /v1/jwks -D pub/headers
cp pub/body jwks.json
check "GET /v1/jwks: 200 JSON, Cache-Control: private, max-age=60" eval \
	'is 200 && grep -qi "^Cache-Control: private, max-age=60" pub/headers'
GET /.well-known/jwks.json
check "GET /.well-known/jwks.json: the same document" cmp -s jwks.json pub/body
check "jwcrypto: each new key is in the JWKS, kid its RFC 7638 thumbprint, its alg and SPKI" \
	J jwks jwks.json key-ed.json key-p256.json key-p384.json key-rsa.json key-b.json \
	key-locked.json key-x.json key-rl.json key-short.json
check "  the checkpoint key and the x509-ca key are not" eval \
	'! grep -q "$CKPT_KID" jwks.json && ! grep -q "$(jget r/ca "d[\"kid\"]")" jwks.json'
GET -u /v1/jwks
check "  nobody's JWKS has agent b's key only" test \
	"$(jget pub/body '[k["kid"] for k in d["keys"]]')" = "['$(jget key-b.json 'd["kid"]')']"

# ---- 1. JWTs -----------------------------------------------------------------------------
echo "# ${SECONDS}s: 1. JWTs"
# issue [-u] NAME KEYNAME ALG BODY [CURL-ARGS]: a JWT that must be issued;
# checks the answer and jwcrypto's verification; NAME.jwt, NAME.payload
n_issued=0
issue() {
	local u=() name kname alg body kid
	if [ "$1" = -u ]; then u=(-u) && shift; fi
	name=$1 kname=$2 alg=$3 body=$4
	shift 4
	jwt "${u[@]}" "$name" "$body" "$@"
	if test "$code" = 200 && $PY - "r/$name" "key-$kname.json" "$name.jwt" <<'PY'; then
import json, re, sys
d = json.load(open(sys.argv[1]))
assert sorted(d) == ["expires_at", "kid", "log_index", "token"], d
assert d["kid"] == json.load(open(sys.argv[2]))["kid"], d
open(sys.argv[3], "w").write(d["token"])
assert isinstance(d["log_index"], int) and d["log_index"] >= 0, d
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["expires_at"]), d
PY
		ok "JWT $name: 200 {token, kid, expires_at, log_index}"
		n_issued=$((n_issued + 1))
	else
		not_ok "JWT $name: 200 {token, kid, expires_at, log_index} (HTTP $code: $(head -c 300 "r/$name"))"
		: >"$name.jwt"
		echo '{}' >"$name.payload"
		return 0
	fi
	check "  jwcrypto verifies it ($alg pinned; iss, aud, exp, nbf; header exactly {alg, kid, typ})" \
		eval 'J verify jwks.json "$(cat "$name.jwt")" "$alg" "$ISS" "$AUD" >"$name.payload"'
	check "  payload: iss, nbf = iat = now, jti of 22 base64url chars, expires_at = exp" $PY - \
		"$name.payload" "r/$name" "$ISS" <<'PY'
import json, re, sys, time
p, a = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert p["iss"] == sys.argv[3], p
assert p["nbf"] == p["iat"] and abs(p["iat"] - time.time()) < 60, p
assert re.fullmatch(r"[A-Za-z0-9_-]{22}", p["jti"]), p
assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(p["exp"])) == a["expires_at"], (p, a)
assert not set(p) & {"alg", "kid", "typ", "jku", "jwk", "x5u", "x5c", "crit"}, p
PY
}
ttl_is() { test "$(jget "$1.payload" 'd["exp"] - d["iat"]')" = "$2"; }
sub_is() { test "$(jget "$1.payload" 'd["sub"]')" = "$2"; }
leaf_ok() { # leaf_ok NAME KEYNAME PRINCIPAL RULE: the token's leaf (jwt_check.py leaf)
	local id_var=ID_$2
	J leaf "$DB" "r/$1" "b/$1" "$POL" "$3" "$4" "${!id_var}" >/dev/null
}
issued0=$(issued)
allow0=$(allow_leaves)
issue ed ed EdDSA "{\"agent\":\"$AG/ed\",\"audience\":\"$AUD\",\"ttl\":60}" -D pub/headers
check "  Cache-Control: no-store" grep -qi "^Cache-Control: no-store" pub/headers
issue p256 p256 ES256 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\",\"ttl\":60}"
issue p384 p384 ES384 "{\"agent\":\"$AG/p384\",\"audience\":\"$AUD\",\"ttl\":60}"
issue rsa rsa PS256 "{\"agent\":\"$AG/rsa\",\"audience\":\"$AUD\",\"ttl\":60}"
for k in ed p256 p384 rsa; do
	check "JWT $k: sub is the agent, exp - iat = 60 (asked, under max_ttl)" eval 'sub_is $k "$AG/$k" && ttl_is $k 60'
	check "  its leaf: seq = log_index, principal, key, tbs/request/policy SHA-256, rule, detail" \
		leaf_ok "$k" "$k" "$ROOT" root-issue-jwt
done
check "by hand (python3-cryptography): the EdDSA token" J byhand jwks.json "$(cat ed.jwt)"
check "by hand (python3-cryptography): the ES256 token, raw r||s made DER" J byhand jwks.json "$(cat p256.jwt)"
issue long p256 ES256 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\",\"ttl\":3600}"
check "ttl 3600 asked, max_ttl 15m: exp - iat = 900" ttl_is long 900
check "  its leaf (detail ttl 900)" leaf_ok long p256 "$ROOT" root-issue-jwt
issue nottl p256 ES256 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\"}"
check "no ttl asked: exp - iat = max_ttl (900)" ttl_is nottl 900
check "  its leaf" leaf_ok nottl p256 "$ROOT" root-issue-jwt
issue bykey ed EdDSA "{\"key\":\"$ID_ed\",\"audience\":[\"$AUD\"],\"ttl\":30}"
check "by key id, audience as a list: aud stays a list, ttl 30" eval \
	'test "$(jget bykey.payload "d[\"aud\"]")" = "['"'"'$AUD'"'"']" && ttl_is bykey 30'
check "  its leaf" leaf_ok bykey ed "$ROOT" root-issue-jwt
issue short short EdDSA "{\"agent\":\"$AG/short\",\"audience\":\"$AUD\"}"
check "a key with 120 s to live: exp - iat is its remaining life, not max_ttl" eval \
	't=$(jget short.payload "d[\"exp\"] - d[\"iat\"]") && test "$t" -le 120 && test "$t" -ge 90'
check "  its leaf" leaf_ok short short "$ROOT" root-issue-jwt
CT=' application/json; charset=utf-8' issue charset p256 ES256 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\",\"ttl\":61}"
check "Content-Type application/json; charset=utf-8 is accepted" ttl_is charset 61
CT='' issue noctype p256 ES256 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\",\"ttl\":62}"
check "no Content-Type: read as JSON (docs/api.yaml)" ttl_is noctype 62
check "  its leaf" leaf_ok noctype p256 "$ROOT" root-issue-jwt
# custom claims, two audiences, sub given, act: their values never reach the log
issue claims ed EdDSA "{\"agent\":\"$AG/ed\",\"audience\":[\"$AUD\",\"$AUD2\"],\"sub\":\"$AG/ed\",\"ttl\":120,\"claims\":{\"scope\":\"read:value-s3cr3t-1\",\"roles\":[\"value-s3cr3t-2\",{\"n\":7}],\"deep\":{\"a\":{\"b\":\"value-s3cr3t-3\"}}},\"act\":{\"sub\":\"value-s3cr3t-user\",\"act\":{\"sub\":\"value-s3cr3t-svc\"}}}"
check "custom claims, two audiences and act are in the token as asked" $PY - claims.payload "$AUD" "$AUD2" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["aud"] == [sys.argv[2], sys.argv[3]], p
assert p["scope"] == "read:value-s3cr3t-1" and p["roles"] == ["value-s3cr3t-2", {"n": 7}], p
assert p["deep"] == {"a": {"b": "value-s3cr3t-3"}}, p
assert p["act"] == {"sub": "value-s3cr3t-user", "act": {"sub": "value-s3cr3t-svc"}}, p
PY
check "  its leaf: claims_sha256 (SHA-256 of each value's compact JSON), act_sha256" \
	leaf_ok claims ed "$ROOT" root-issue-jwt
check "  no claim value appears in any leaf" J absent "$DB" value-s3cr3t
# broker B, for its own agent b
issue -u nob b EdDSA "{\"agent\":\"$AG/b\",\"audience\":\"$AUD\",\"ttl\":3600}"
check "broker B (uid 65534) gets a JWT for its agent b, ttl clamped to its rule's 5m" ttl_is nob 300
check "  its leaf: principal $NOBODY, rule nobody-issue-b" leaf_ok nob b "$NOBODY" nobody-issue-b
check "$n_issued issued: the metric and the allow leaves both say so" \
	test "$(($(issued) - issued0)) $(($(allow_leaves) - allow0))" = "$n_issued $n_issued"
GET /metrics
check "/metrics: text, custody_requests_total{route,code} counts the JWTs" eval \
	'is_text && grep -q "^custody_requests_total{route=\"credentials_jwt\",code=\"200\"} $n_issued\$" pub/body'

# ---- 2. adversarial: each refused, nothing signed ----------------------------------
echo "# ${SECONDS}s: 2. adversarial: each refused, nothing signed"
issued0=$(issued)
allow0=$(allow_leaves)
leaves0=$(decisions)
OKB="\"agent\":\"$AG/ed\",\"audience\":\"$AUD\""
# bad NAME STATUS TEXT BODY: refused with STATUS, the detail naming TEXT
bad() {
	jwt "adv-$1" "$4"
	check "JWT refused: $1 -> $2" problem "$2" "$3"
}
for h in alg kid typ jku jwk x5u x5c x5t 'x5t#S256' crit cty b64 zip enc; do
	bad "header field $h" 400 "$h" "{$OKB,\"$h\":\"x\"}"
done
bad "kid as a path" 400 kid "{$OKB,\"kid\":\"../../dev/null\"}"
bad 'alg none' 400 alg "{$OKB,\"alg\":\"none\"}"
bad 'alg HS256' 400 alg "{$OKB,\"alg\":\"HS256\"}"
bad 'every header field at once' 400 "" "{$OKB,\"alg\":\"none\",\"kid\":\"k\",\"typ\":\"x\",\"jku\":\"https://e\",\"jwk\":{},\"x5u\":\"https://e\",\"x5c\":[],\"crit\":[\"exp\"]}"
bad 'a header object' 400 "" "{$OKB,\"header\":{\"alg\":\"none\"}}"
bad 'duplicate audience' 400 "" "{$OKB,\"audience\":\"$AUD2\"}"
bad 'duplicate audience, escaped' 400 "" "{$OKB,\"\\u0061udience\":\"$AUD2\"}"
bad 'duplicate agent, escaped' 400 "" "{\"agent\":\"spiffe://other.org/agent/x\",\"audience\":\"$AUD\",\"\\u0061\\u0067ent\":\"$AG/ed\"}"
bad 'duplicate ttl' 400 "" "{$OKB,\"ttl\":60,\"ttl\":600000}"
bad 'duplicate claim' 400 "" "{$OKB,\"claims\":{\"scope\":\"a\",\"scope\":\"b\"}}"
bad 'duplicate claim, escaped' 400 "" "{$OKB,\"claims\":{\"scope\":\"a\",\"\\u0073cope\":\"b\"}}"
bad 'duplicate inside a claim' 400 "" "{$OKB,\"claims\":{\"deep\":{\"a\":1,\"\\u0061\":2}}}"
bad 'duplicate inside act' 400 "" "{$OKB,\"act\":{\"sub\":\"u\",\"sub\":\"admin\"}}"
for c in iss sub aud exp nbf iat jti act may_act cnf; do
	bad "reserved claim $c" 400 "$c" "{$OKB,\"claims\":{\"$c\":\"x\"}}"
done
bad 'reserved claim exp as 1e300' 400 exp "{$OKB,\"claims\":{\"exp\":1e300}}"
for c in iss exp nbf iat jti; do
	bad "top-level $c" 400 "$c" "{$OKB,\"$c\":9999999999}"
done
bad 'an unknown member' 400 colour "{$OKB,\"colour\":\"blue\"}"
for t in 0 -1 1.5 '"60"' 31622401 1e3 1e300 null true; do
	bad "ttl $t" 400 ttl "{$OKB,\"ttl\":$t}"
done
bad "ttl 2^63" 400 "" "{$OKB,\"ttl\":9223372036854775808}"
bad 'audience missing' 400 "" "{\"agent\":\"$AG/ed\"}"
bad 'audience an empty list' 400 "" "{\"agent\":\"$AG/ed\",\"audience\":[]}"
bad 'audience a number' 400 "" "{\"agent\":\"$AG/ed\",\"audience\":5}"
bad 'agent and key' 400 "" "{$OKB,\"key\":\"$ID_ed\"}"
bad 'neither agent nor key' 400 "" "{\"audience\":\"$AUD\"}"
bad 'claims not an object' 400 "" "{$OKB,\"claims\":[\"scope\"]}"
bad 'act without sub' 400 "" "{$OKB,\"act\":{\"iss\":\"x\"}}"
bad 'act nested 6 deep' 400 "" "{$OKB,\"act\":{\"sub\":\"1\",\"act\":{\"sub\":\"2\",\"act\":{\"sub\":\"3\",\"act\":{\"sub\":\"4\",\"act\":{\"sub\":\"5\",\"act\":{\"sub\":\"6\"}}}}}}}"
bad 'a claim nested 20 deep' 400 "" "{$OKB,\"claims\":{\"deep\":$($PY -c 'print("[" * 20 + "]" * 20)')}}"
bad 'an array' 400 "" '[]'
bad 'a string' 400 "" '"x"'
bad 'null' 400 "" 'null'
bad 'an empty body' 400 "" ''
bad 'truncated JSON' 400 "" "{$OKB,\"ttl\":6"
bad 'truncated inside a string' 400 "" "{\"agent\":\"$AG/e"
bad 'two documents' 400 "" "{$OKB}{$OKB}"
bad 'trailing garbage' 400 "" "{$OKB} x"
bad 'a lone surrogate escape' 400 "" "{$OKB,\"sub\":\"\\ud800\"}"
bad 'a NUL escape in sub' 400 "" "{$OKB,\"sub\":\"$AG/ed\\u0000admin\"}"
# rawbad NAME STATUS FILE [CURL-ARGS]: a body made by hand, refused with STATUS
rawbad() {
	local name=$1 st=$2 f=$3
	shift 3
	req POST /v1/credentials/jwt -H 'Content-Type: application/json' --data-binary "@$f" "$@"
	check "JWT refused: $name -> $st" problem "$st"
}
printf '{"agent":"%s/ed","audience":"%s","sub":"\xff\xfe"}' "$AG" "$AUD" >b/adv-nonutf8
rawbad "bytes ff fe (not UTF-8)" 400 b/adv-nonutf8
printf '{"agent":"%s/ed","audience":"%s","sub":"\xc0\xaf"}' "$AG" "$AUD" >b/adv-overlong
rawbad "an overlong UTF-8 sequence" 400 b/adv-overlong
$PY -c 'print("[" * 30000 + "]" * 30000, end="")' >b/adv-deep30k
rawbad "a 30000-deep array (60 KB)" 400 b/adv-deep30k
$PY -c 'print("{\"a\":" * 10000 + "1" + "}" * 10000, end="")' >b/adv-deepobj
rawbad "a 10000-deep object" 400 b/adv-deepobj
$PY -c 'print("[" * 100000 + "]" * 100000, end="")' >b/adv-deep100k
rawbad "a 100000-deep array (200 KB)" 413 b/adv-deep100k
$PY -c 'import sys; sys.stdout.write("{\"agent\":\"%s/ed\",\"audience\":\"%s\",\"sub\":\"%s\"}" % (sys.argv[1], sys.argv[2], "a" * 66560))' "$AG" "$AUD" >b/adv-65k
rawbad "a 65 KiB body" 413 b/adv-65k
CT=' text/plain' jwt adv-textplain "{$OKB}"
check "JWT refused: Content-Type text/plain -> 415" problem 415
CT=' text/plain' jwt adv-textplain-bad "{$OKB"
check "JWT refused: Content-Type text/plain and a bad body -> 415 (the type first)" problem 415
CT='' jwt adv-noctype-bad "{$OKB,\"alg\":\"none\"}"
check "JWT refused: no Content-Type (read as JSON), alg none -> 400" problem 400
CT=' application/x-www-form-urlencoded' jwt adv-form "{$OKB}"
check "JWT refused: a form -> 415" problem 415
CT=' application/jsonx' jwt adv-jsonx "{$OKB}"
check "JWT refused: application/jsonx -> 415" problem 415
req GET /v1/credentials/jwt -D pub/headers
check "GET /v1/credentials/jwt -> 405, Allow: POST" eval 'problem 405 && grep -qi "^Allow: POST" pub/headers'
bad 'an unknown key id' 404 "" "{\"key\":\"k_0123456789abcdef\",\"audience\":\"$AUD\"}"
bad 'an agent without a jwt key' 404 "" "{\"agent\":\"$AG/nokey\",\"audience\":\"$AUD\"}"
check "the adversarial requests signed nothing: issued metric unchanged" test "$(issued)" = "$issued0"
check "  no credential.jwt allow leaf" test "$(allow_leaves)" = "$allow0"
check "  and no leaf but requests.refused (refusals before the policy are only counted)" \
	test "$(decisions)" = "$leaves0"

jwt -u nob-bad "{\"agent\":\"$AG/b\",\"audience\":\"$AUD\",\"alg\":\"none\"}"
check "broker B: a header field -> 400" problem 400 alg
jwt -u nob-bad2 "{\"agent\":\"$AG/b\",\"audience\":\"$AUD\",\"ttl\":0}"
check "broker B: ttl 0 -> 400" problem 400 ttl
jwt -u nob-404 "{\"agent\":\"$AG/nokey\",\"audience\":\"$AUD\"}"
check "broker B: an agent without a key -> 404" problem 404

# policy refusals: 403 naming the rule, and a deny leaf each (G4)
# denied NAME RULE PRINCIPAL KEY_ID BODY [-u]
denied() {
	local name=$1 rule=$2 who=$3 key=$4 body=$5 n
	shift 5
	n=$(count credential.jwt deny)
	jwt "$@" "deny-$name" "$body"
	check "403: $name, rule $rule" eval 'problem 403 && rule_is "$rule"'
	check "  a credential.jwt deny leaf: $who, $rule, a reason, key, the body's SHA-256" eval \
		'test "$(count credential.jwt deny)" = $((n + 1)) && deny_leaf credential.jwt "$who" "$rule" "$key" "b/deny-$name"'
}
denied "root asks for an agent outside its rules" "(default)" "$ROOT" "$ID_x" \
	"{\"agent\":\"spiffe://other.org/agent/x\",\"audience\":\"$AUD\"}"
denied "root asks for a deny rule's agent" deny-locked "$ROOT" "$ID_locked" \
	"{\"agent\":\"$AG/locked\",\"audience\":\"$AUD\"}"
denied "root asks for an audience not allowed" "(default)" "$ROOT" "$ID_ed" \
	"{\"agent\":\"$AG/ed\",\"audience\":\"https://evil.example\"}"
denied "root asks for a claim not allowed" "(default)" "$ROOT" "$ID_ed" \
	"{$OKB,\"claims\":{\"admin\":true}}"
denied "root asks for a sub that is not the agent" "(default)" "$ROOT" "$ID_ed" \
	"{$OKB,\"sub\":\"admin\"}"
denied "broker B asks for agent A's key" "(default)" "$NOBODY" "$ID_ed" \
	"{\"agent\":\"$AG/ed\",\"audience\":\"$AUD\"}" -u
denied "broker B asks by key id" "(default)" "$NOBODY" "$ID_p256" \
	"{\"key\":\"$ID_p256\",\"audience\":\"$AUD\"}" -u
denied "the checkpoint key asked to sign a JWT" "(purpose)" "$ROOT" "$CKPT_KEY" \
	"{\"key\":\"$CKPT_KEY\",\"audience\":\"$AUD\"}"
denied "an x509-ca key asked to sign a JWT" "(purpose)" "$ROOT" "$ID_ca" \
	"{\"key\":\"$ID_ca\",\"audience\":\"$AUD\"}"
check "the policy refusals signed nothing" test "$(issued) $(allow_leaves)" = "$issued0 $allow0"
# a rate limit: 2 tokens, then 429 without a leaf
n=$(decisions)
jwt rl1 "{\"agent\":\"$AG/rl\",\"audience\":\"$AUD\"}"
c1=$code
jwt rl2 "{\"agent\":\"$AG/rl\",\"audience\":\"$AUD\"}"
check "rate limit: two JWTs of agent rl (burst 2)" test "$c1 $code" = "200 200"
jwt rl3 "{\"agent\":\"$AG/rl\",\"audience\":\"$AUD\"}"
check "  the third: 429" problem 429
check "  not a leaf of its own" test "$(decisions)" = $((n + 2))
check "  only the two were signed" test "$(issued) $(allow_leaves)" = "$((issued0 + 2)) $((allow0 + 2))"
check "the refusals above: RFC 9457 problems of their status, the detail naming what is wrong" problems_ok
issue after ed EdDSA "{$OKB,\"ttl\":45}"
check "the service still issues after the refusals" ttl_is after 45

# ---- slow clients -------------------------------------------------------------------
echo "# ${SECONDS}s: slow clients"
check "slow clients (half the headers, half a body, a trickle, idle keep-alive) closed after request-timeout 2s" \
	J slow "$SOCK" 2
GET /healthz
check "  and the daemon keeps serving" is 200
n=$(metric custody_slow_clients_total)
check "  custody_slow_clients_total counts them ($n)" test "$n" -ge 4

# ---- 5. the log endpoints -------------------------------------------------------------
echo "# ${SECONDS}s: 5. the log endpoints"
idx=$(jget r/p256 'd["log_index"]' 2>/dev/null) || idx=0
ck_covers() { GET /v1/log/checkpoint && test "$(sed -n 2p pub/body)" -gt "$1"; }
check "a checkpoint covers the JWTs (within 60 s)" \
	wait_for "a checkpoint over the JWTs" ck_covers "$(jget r/after 'd["log_index"]' 2>/dev/null || echo 0)"
cp pub/body ckpt1
check "GET /v1/log/checkpoint: text/plain" is_text
note_size() { # note_size FILE: a note signed by the log's verifier keys; prints its size
	$PY -c 'import sys; sys.path.insert(0, sys.argv[1]); import tlog_check as t
print(t.open_note(open(sys.argv[2], "rb").read(), t.load_vkeys(sys.argv[3]), "checkpoint")[1])' \
		"$HERE" "$1" "$T/vkeys"
}
S1=$(sed -n 2p ckpt1)
check "  signed by the keys 'custody audit vkey' printed (tlog_check.py)" test "$(note_size ckpt1)" = "$S1"
GET "/v1/log/checkpoints/$S1"
check "GET /v1/log/checkpoints/$S1: the same note" cmp -s ckpt1 pub/body
GET /v1/log/checkpoints/1
check "GET /v1/log/checkpoints/1 (never signed): 404" problem 404
GET "/v1/log/proof/inclusion?index=$idx"
cp pub/body incl.json
check "GET /v1/log/proof/inclusion?index=$idx (the ES256 JWT's leaf): 200" is 200
check "  RFC 6962 in jwt_check.py: leaf, audit path and the checkpoint's root agree" J inclusion incl.json "$DB"
check "  tlog_check.py verifies it and the checkpoint's signature" $PY "$HERE/tlog_check.py" prove incl.json vkeys
check "  the proven leaf is that JWT's (tbs_sha256 of its signing input)" test \
	"$(jget incl.json 'json.loads(d["leaf"])["tbs_sha256"]')" = \
	"$(printf '%s' "$(cut -d. -f1,2 p256.jwt)" | sha256sum | cut -d' ' -f1)"
# more leaves, a newer checkpoint: proofs against the older one, and consistency
issue more ed EdDSA "{$OKB,\"ttl\":46}"
check "  and a newer one" wait_for "a newer checkpoint" ck_covers "$(jget r/more 'd["log_index"]' 2>/dev/null || echo 0)"
cp pub/body ckpt2
S2=$(sed -n 2p ckpt2)
GET "/v1/log/proof/inclusion?index=$idx&size=$S1"
cp pub/body incl-old.json
check "inclusion against the older checkpoint (size=$S1) verifies" eval '
	test "$(jget incl-old.json "d[\"size\"]")" = "$S1" && J inclusion incl-old.json "$DB" >/dev/null &&
	$PY "$HERE/tlog_check.py" prove incl-old.json vkeys >/dev/null'
GET "/v1/log/proof/consistency?from=$S1&to=$S2"
cp pub/body cons.json
check "GET /v1/log/proof/consistency?from=$S1&to=$S2 verifies (tlog_check.py)" eval \
	'is 200 && $PY "$HERE/tlog_check.py" prove cons.json vkeys >/dev/null'
GET "/v1/log/proof/inclusion?index=$((S2 + 1000))"
check "an inclusion proof past the checkpoint's tree: 400" problem 400
GET "/v1/log/proof/inclusion?index=abc"
check "index=abc: 400" problem 400
tiles_ok() {
	GET /v1/log/checkpoint && cp pub/body ckpt3 && S3=$(sed -n 2p ckpt3) &&
		GET "/v1/log/tile/0/000.p/$S3" && test "$code" = 200 && cp pub/body tile0 &&
		GET "/v1/log/tile/entries/000.p/$S3" && test "$code" = 200 && cp pub/body entries0 &&
		J tiles "$DB" "$S3" tile0 entries0 >/dev/null
}
check "tile/0/000.p/N and tile/entries/000.p/N of the last checkpoint match the log" \
	wait_for "tiles of a stable checkpoint" tiles_ok
n=$(count audit.read deny)
GET -u /v1/log/checkpoint
check "nobody (no audit.read rule) GET /v1/log/checkpoint: 403" problem 403
GET -u "/v1/log/proof/inclusion?index=$idx"
check "  and the proofs: 403" problem 403
GET -u "/v1/log/tile/0/000.p/$S1"
check "  and the tiles: 403" problem 403
check "  each logged: an audit.read deny leaf by $NOBODY" eval \
	'test "$(count audit.read deny)" = $((n + 3)) && deny_leaf audit.read "$NOBODY" "(default)" - -'

check "the log refusals are RFC 9457 problems of their status" problems_ok

# ---- health, metrics ---------------------------------------------------------------
echo "# ${SECONDS}s: health, metrics"
GET /healthz
check "/healthz: ok" status_is 200 ok
check "/metrics: custody_audit_failed 0" test "$(metric custody_audit_failed)" = 0
check "/metrics: custody_credentials_issued_total is the number of allow leaves" \
	test "$(issued)" = "$(allow_leaves)"
check "custodyd reported nothing of ASan/UBSan so far" asan_clean run1.err

# ---- SIGHUP: the policy again -------------------------------------------------------
echo "# ${SECONDS}s: SIGHUP: the policy again"
$PY - "$POL" "$NOBODY" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
p["rules"].append({"id": "nobody-audit", "effect": "allow", "principals": [sys.argv[2]],
                   "actions": ["audit.read"]})
open(sys.argv[1], "w").write(json.dumps(p, indent=1) + "\n")
PY
n=$(count policy.load None)
kill -HUP "$pid"
loaded() { test "$(count policy.load None)" -gt "$n"; }
check "SIGHUP: a policy.load leaf for the new policy" eval \
	'wait_for "the policy.load leaf" loaded && test "$(leaves "l[\"event\"]" "l.get(\"detail\", {}).get(\"sha256\")" | grep "^policy.load" | tail -1)" = "policy.load $(sha256sum "$POL" | cut -d" " -f1)"'
GET -u /v1/log/checkpoint
check "  in force: nobody may read the checkpoint now" is_text
jwt -u nob2 "{\"agent\":\"$AG/b\",\"audience\":\"$AUD\"}"
check "  and its next JWT's leaf names the new policy's SHA-256" leaf_ok nob2 b "$NOBODY" nobody-issue-b

# ---- 3. requests.refused: the other refusals, counted per principal ------------------
echo "# ${SECONDS}s: 3. requests.refused: the other refusals, counted per principal"
stop TERM
check "run 1: SIGTERM, exit 0" test "$rc" = 0
refused_ok() { # refused_ok PRINCIPAL: the leaves' counts are the requests' counts
	$PY - "$DB" "$1" "${refused[$1 400]:-0}" "${refused[$1 404]:-0}" "${refused[$1 405]:-0}" \
		"${refused[$1 413]:-0}" "${refused[$1 415]:-0}" "${refused[$1 429]:-0}" "${refused[$1 all]:-0}" <<'PY'
import json, sqlite3, sys
db, who = sys.argv[1:3]
n400, n404, n405, n413, n415, n429, nall = map(int, sys.argv[3:])
c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
got = {}
for (d,) in c.execute("SELECT data FROM audit_leaves ORDER BY seq"):
    l = json.loads(d)
    if l["event"] != "requests.refused":
        continue
    assert l["principal"] == "custody:api" and "decision" not in l, l
    for k, v in l["detail"]["by_principal"].get(who, {}).items():
        got[k] = got.get(k, 0) + v
sent = {"400": n400, "404": n404, "405": n405, "413": n413, "415": n415, "429": n429}
print("# %s: sent %s, counted %s" % (who, sent, got), file=sys.stderr)
assert got.get("400", 0) >= n400, "400s"
assert got.get("404", 0) == n404 and got.get("413", 0) == n413 and got.get("429", 0) == n429, got
assert sum(got.values()) == nall, "the sum"
PY
}
check "requests.refused leaves count root's ${refused[$ROOT all]:-0} refusals" refused_ok "$ROOT"
check "  and nobody's ${refused[$NOBODY all]:-0}" refused_ok "$NOBODY"
check "export: verified by custody and tlog_check.py" export_ok ex1

# ---- max-connections, and no issuer ------------------------------------------------------
echo "# ${SECONDS}s: max-connections, and no issuer"
cp "$CONF" "$CONF.main"
grep -v '^issuer ' "$CONF.main" >"$CONF"
echo "max-connections 4" >>"$CONF"
start run2
check "max-connections 4: extra connections are closed, the first 4 served, slots freed" \
	J maxconn "$SOCK" 4
GET /healthz
check "  the daemon serves on" is 200
issued0=$(issued)
jwt noiss "{$OKB}"
check "no issuer configured: POST /v1/credentials/jwt is 503" problem 503
check "  nothing signed" test "$(issued)" = "$issued0"
stop TERM
check "run 2: exit 0" test "$rc" = 0
check "  no ASan/UBSan report" asan_clean run2.err
cp "$CONF.main" "$CONF"

# ---- 6. fail closed -------------------------------------------------------------------
echo "# ${SECONDS}s: 6. fail closed"
preload=$FAILSYNC
if [ -n "${LD_PRELOAD:-}" ]; then preload=$LD_PRELOAD:$FAILSYNC; fi
asan=${ASAN_OPTIONS:-}
case $asan in *verify_asan_link_order=0*) ;; *) asan=${asan:+$asan:}verify_asan_link_order=0 ;; esac
start run3 LD_PRELOAD="$preload" ASAN_OPTIONS="$asan" \
	CUSTODY_FAILSYNC_FLAG="$T/failflag" CUSTODY_FAILSYNC_COUNT="$T/failcount"
issue pre p256 ES256 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\",\"ttl\":70}"
check "with the shim loaded and no flag, JWTs are issued" ttl_is pre 70
allow_before=$(allow_leaves)
issued0=$(issued)
touch failflag
jwt fail1 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\",\"ttl\":71}"
check "fsync fails: the next JWT request is 503" problem 503
check "  fsync was called, and failed" test -s failcount
GET /healthz
check "  /healthz: 503 {status: failing}" status_is 503 failing
check "  custody_audit_failed 1" test "$(metric custody_audit_failed)" = 1
jwt fail2 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\",\"ttl\":72}"
check "  again: 503" problem 503
rm -f failflag
jwt fail3 "{\"agent\":\"$AG/p256\",\"audience\":\"$AUD\",\"ttl\":73}"
check "fsync works again: still 503 (a failed log is never retried)" problem 503
jwt fail4 "{\"key\":\"$ID_ed\",\"audience\":\"$AUD\",\"ttl\":74}"
check "  for every key" problem 503
GET /healthz
check "  /healthz: still failing" status_is 503 failing
check "  nothing was signed" test "$(issued)" = "$issued0"
stop TERM
check "run 3 exits on SIGTERM with status 1 (its stop leaf cannot be written)" test "$rc" = 1
check "  no ASan/UBSan report" asan_clean run3.err

# ---- restart without the shim ------------------------------------------------------------
echo "# ${SECONDS}s: restart without the shim"
start run4
check "restart without the shim: the start leaf says unclean_shutdown" test \
	"$(leaves 'l["event"]' 'l.get("detail", {}).get("unclean_shutdown")' | grep '^service.start' | tail -1)" = "service.start True"
check "  no credential.jwt allow leaf for the refused requests" test "$(allow_leaves)" = "$allow_before"
check "  no leaf holds the request SHA-256 of any of them" $PY - "$DB" b/fail1 b/fail2 b/fail3 b/fail4 <<'PY'
import hashlib, json, sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
want = {hashlib.sha256(open(f, "rb").read()).hexdigest() for f in sys.argv[2:]}
for (d,) in c.execute("SELECT data FROM audit_leaves"):
    l = json.loads(d)
    assert l.get("request_sha256") not in want, l
PY
check "  the JWT issued before the failure is in the log" leaf_ok pre p256 "$ROOT" root-issue-jwt
GET /healthz
check "  /healthz: ok again" status_is 200 ok

# ---- 7. SIGTERM with requests in flight -------------------------------------------------
echo "# ${SECONDS}s: 7. SIGTERM with requests in flight"
cpids=()
for i in $(seq 1 20); do
	printf '{"agent":"%s/rsa","audience":"%s","ttl":%d}' "$AG" "$AUD" $((300 + i)) >"b/term$i"
	curl -sS --max-time 30 --unix-socket "$SOCK" -o "r/term$i" -w '%{http_code}' \
		-H 'Content-Type: application/json' --data-binary "@b/term$i" \
		http://custody/v1/credentials/jwt >"r/term$i.code" 2>"r/term$i.err" &
	cpids+=($!)
	pids+=($!)
done
sleep 0.05
kill -TERM "$pid"
for i in $(seq 1 20); do
	rc=0
	wait "${cpids[$((i - 1))]}" || rc=$?
	echo "$rc" >"r/term$i.rc"
done
rc=0
wait "$pid" || rc=$?
check "SIGTERM with 20 JWT requests in flight: custodyd exits 0" test "$rc" = 0
check "  it answered every request in progress within the drain time" not grep "still in progress" run4.err
term_ok() { # each curl: 200 with a token whose leaf exists, a 503 problem, or no connection
	local i c n200=0 n503=0 nconn=0 nbad=0
	for i in $(seq 1 20); do
		c=$(cat "r/term$i.code")
		case "$(cat "r/term$i.rc") $c" in
		"0 200")
			if J leaf "$DB" "r/term$i" "b/term$i" "$POL" "$ROOT" root-issue-jwt "$ID_rsa" >/dev/null; then
				n200=$((n200 + 1))
			else
				echo "# term$i: 200 without its leaf" >&2
				nbad=$((nbad + 1))
			fi
			;;
		"0 503")
			if ans=r/term$i code=503 ctype=application/problem+json problem 503; then
				n503=$((n503 + 1))
			else
				echo "# term$i: a 503 that is not a problem" >&2
				nbad=$((nbad + 1))
			fi
			;;
		"7 000") nconn=$((nconn + 1)) ;; # not connected: the socket was closed
		*)
			echo "# term$i: curl exit $(cat "r/term$i.rc"), HTTP $c: $(cat "r/term$i.err")" >&2
			nbad=$((nbad + 1))
			;;
		esac
	done
	echo "# $n200 answered 200, $n503 503, $nconn not connected, $nbad without a complete answer" >&2
	test "$nbad" = 0 && test "$n200" -ge 1
}
check "  every curl got a complete answer (200 and its leaf, or a clean refusal)" term_ok
check "  the last leaf is service.stop" test "$(leaves 'l["event"]' | tail -1)" = service.stop
check "  the final checkpoint covers it" test "$(ckpt_size)" = "$(nleaves)"
check "  no ASan/UBSan report" asan_clean run4.err
check "export after all runs: verified by custody and tlog_check.py" export_ok ex2

check "the refusals since run 1 are RFC 9457 problems of their status" problems_ok

finish
