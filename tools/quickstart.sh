#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# custody quick start: install what custody needs (Debian 12), build it,
# initialise a private SoftHSM2 token under a data directory, start the
# custodyd service on it (its API on a Unix socket under the data
# directory, the policy of policies/quickstart.json), create a key for a
# demo agent, issue JWTs with custody and with curl, verify them against
# the JWKS with python3-jwcrypto, verify the audit log as an auditor would,
# and leave custodyd running.
#
# usage: tools/quickstart.sh [DATA_DIR]      (default: var/quickstart)
#
# PINs are generated into files of mode 0600 in DATA_DIR; they never appear
# on a command line. Run it again to see the same token (it is not
# reinitialised); delete DATA_DIR to start over.
set -euo pipefail

cd "$(dirname "$0")/.."
top=$PWD
data=$(realpath -m "${1:-var/quickstart}")
module=/usr/lib/softhsm/libsofthsm2.so

bash tools/install-deps.sh
echo "== building custody"
cmake -S "$top" -B build >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
custody=$top/build/tools/custody
custodyd=$top/build/module/custodyd

mkdir -p "$data"
chmod 700 "$data"
conf=$data/custody.conf
if [ ! -f "$conf" ]; then
	echo "== writing $conf"
	cat >"$conf" <<CONF
# custody configuration written by tools/quickstart.sh
data-dir $data
pkcs11-module $module
token pkcs11:token=custody
pin-file $data/user.pin
# SoftHSM2 reads its configuration from this variable; custody init
# creates the file, with a private token directory beside it.
pkcs11-env SOFTHSM2_CONF=$data/softhsm2/softhsm2.conf
# the audit log's checkpoint origin: a name unique to this log
log-origin custody-quickstart.example/log
# who may do what (custody-policy(5)); custodyd reloads it on SIGHUP
policy $top/policies/quickstart.json
# the iss of the JWTs custodyd issues
issuer https://custody-quickstart.example
# custodyd's API listens on $data/custody.sock (listen-unix)
CONF
fi
# configurations written by older quick starts
grep -q '^policy ' "$conf" || echo "policy $top/policies/quickstart.json" >>"$conf"
grep -q '^issuer ' "$conf" || echo "issuer https://custody-quickstart.example" >>"$conf"
for f in user.pin so.pin; do
	if [ ! -f "$data/$f" ]; then
		# a random PIN straight into a private file
		(umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$data/$f")
	fi
done

C() { "$custody" -c "$conf" "$@"; }
sock=$data/custody.sock
pidfile=$data/custodyd.pid
agent=spiffe://example.org/agent/demo

stop_custodyd() {
	[ -e "$pidfile" ] || return 0
	kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
	for _ in $(seq 200); do [ -e "$pidfile" ] || return 0; sleep 0.1; done
	echo "custodyd did not stop; see the system log (journalctl -t custodyd)" >&2
	exit 1
}
# a custodyd left running by an earlier run of this script
stop_custodyd

if [ ! -f "$data/custody.db" ]; then
	echo "== custody init"
	C init
else
	echo "== $data is initialised already"
fi
echo "== custody policy check and test (the policy custodyd will enforce, offline)"
C policy check "$top/policies/quickstart.json"
C policy test "$top/policies/quickstart.json" "$top/policies/quickstart.cases.json" | tail -1

echo "== custodyd --daemon (returns once its service.start leaf is durable)"
"$custodyd" -c "$conf" --daemon --pid-file "$pidfile"
echo "custodyd runs as pid $(cat "$pidfile"), its API on $sock"
curl -sS --unix-socket "$sock" http://localhost/healthz
echo

if ! C key list --json | grep -q "\"agent\": \"$agent\""; then
	echo "== custody key create (through custodyd: its policy decides, the key is made in the token)"
	C key create --agent "$agent" --owner quickstart --purpose jwt \
		--alg ecdsa-p256 --max-age 7d
fi
echo "== custody key list"
C key list

echo "== custody jwt issue (policy allows 15 minutes at most, audience https://api.example.org)"
jwt1=$(C jwt issue --agent "$agent" --aud https://api.example.org --ttl 5m --claim scope=read)
echo "$jwt1"
echo "== the same with curl, straight to the API"
curl -sS --unix-socket "$sock" --json \
	"{\"agent\":\"$agent\",\"audience\":\"https://api.example.org\",\"ttl\":300,\"claims\":{\"scope\":\"read\"}}" \
	http://localhost/v1/credentials/jwt | tee "$data/jwt2.json"
echo
echo "== a request the policy refuses (another audience): 403, and logged"
curl -sS --unix-socket "$sock" --json \
	"{\"agent\":\"$agent\",\"audience\":\"https://elsewhere.example\"}" \
	http://localhost/v1/credentials/jwt
echo
echo "== both JWTs verified with python3-jwcrypto against custodyd's JWKS"
curl -sS --unix-socket "$sock" http://localhost/v1/jwks >"$data/jwks.json"
jwt2=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$data/jwt2.json")
/usr/bin/python3 - "$data/jwks.json" "$jwt1" "$jwt2" <<'PY'
import hashlib, json, sys
from jwcrypto import jwk, jwt
keys = jwk.JWKSet.from_json(open(sys.argv[1]).read())
for tok in sys.argv[2:]:
    t = jwt.JWT(jwt=tok, key=keys, algs=["ES256"],
                check_claims={"iss": "https://custody-quickstart.example",
                              "aud": "https://api.example.org", "exp": None})
    c = json.loads(t.claims)
    signing_input = tok.rsplit(".", 1)[0].encode()
    print("verified: sub %s, exp %s, jti %s; in the audit log as tbs_sha256 %s"
          % (c["sub"], c["exp"], c["jti"], hashlib.sha256(signing_input).hexdigest()[:16] + "..."))
PY

echo "== stopping custodyd (SIGTERM: answers what is in progress, service.stop, a final checkpoint)"
stop_custodyd
cat "$data/checkpoint"
echo "== custody audit vkey (what an auditor verifies it with)"
C audit vkey | tee "$data/vkeys"
echo "== custody audit export and verify (an auditor's check, offline)"
rm -rf "$data/export"
C audit export "$data/export"
"$custody" audit verify "$data/export" --vkey-file "$data/vkeys"
echo "== the token's own view (pkcs11-tool, OpenSC, no login: public objects only)"
# pkcs11-tool takes a PIN only on its command line, which custody never uses;
# 'custody key create' printed the private key's attributes read back.
SOFTHSM2_CONF=$data/softhsm2/softhsm2.conf pkcs11-tool --module "$module" \
	--token-label custody --list-objects --type pubkey 2>/dev/null

echo "== custodyd --daemon, left running"
"$custodyd" -c "$conf" --daemon --pid-file "$pidfile"
cat <<MSG

custody is set up in $data, and custodyd runs (pid $(cat "$pidfile")).
  configuration: $conf
  the API:       curl --unix-socket $sock http://localhost/healthz
                 (docs/api.yaml; custody jwt issue --help)
  the CLI:       $custody -c $conf key --help
  stop it:       kill \$(cat $pidfile)
  tests:         tools/test.sh
MSG
