#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# custodyd's HTTP API over mutual TLS (listen-tcp, tls-cert, tls-key,
# tls-client-ca), black box, on a real SoftHSM2 token made here, with curl
# as the TLS client and a test PKI made here by openssl (and
# python3-cryptography for an expired certificate):
#   1. a client whose certificate carries a SPIFFE ID issues a JWT for the
#      agent its rule allows; python3-jwcrypto verifies it against the JWKS
#      read over TCP; its decision leaf names the SPIFFE ID.
#   2. the same client for another agent: 403, a deny leaf naming it.
#   3. a certificate without a SPIFFE ID is x509:SUBJECT (RFC 4514), by an
#      exact rule and by a glob; a comma inside a CN is escaped, so it cannot
#      pose as another subject; a spiffe:// URI SAN among other names wins.
#   4. refused in the handshake, no decision made: no client certificate, one
#      of another CA, an expired one, one for serverAuth only, TLS 1.1.
#   5. two spiffe:// URI SANs: 401, nothing signed.
#   6. the Unix socket serves alongside; the key list over TCP is filtered
#      by key.read, and 403 (with its deny leaf) for a principal without it.
#   7. SIGTERM: a request on an open TLS connection is answered, a new
#      connection is not served while draining, exit 0, then refused.
#   8. custodyd refuses to start with a tls-key readable by others, a
#      tls-key that is not tls-cert's, listen-tcp without tls-client-ca, a
#      tls-cert or tls-client-ca that does not exist (saying why).
#
# Needs root (the Unix socket's principal is unix:uid=0).
#
# usage: test_mtls.sh CUSTODYD CUSTODY SOFTHSM2_MODULE
#
# Compound checks are strings run by 'check NAME eval ...' (SC2016); $MODULE
# is read by lib.sh (SC2034).
# shellcheck disable=SC2016,SC2034
set -euo pipefail

# the paths given may be relative to the directory the test is run from
abspath() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
DAEMON=$(abspath "$1")
CUSTODY=$(abspath "$2")
MODULE=$(abspath "$3")
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
if [ "$(id -u)" != 0 ]; then
	echo "not ok - test_mtls.sh needs root: the Unix socket's principal is unix:uid=0"
	exit 1
fi
T=$(mktemp -d /tmp/custody-mtls-XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
mkdir b r

(umask 077 && printf 'mtls-user-pin-29\n' >user.pin && printf 'mtls-so-pin-83\n' >so.pin)
DB=$T/d/custody.db
SOCK=$T/api.sock
POL=$T/pol.json
ISS=https://custody.test
AUD=https://api.example.org
AG=spiffe://example.org/agent
BA=spiffe://example.org/broker/a
XB='x509:CN=broker-b,O=Example'
XGLOB='x509:CN=broker-*,O=Example'
C() { "$CUSTODY" -c "$CONF" "$@"; }
J() { "$PY" "$HERE/jwt_check.py" "$@"; }

# ---- helpers ---------------------------------------------------------------------

# decisions: leaves other than the periodic requests.refused ones
decisions() { leaves 'l["event"]' | grep -vc '^requests.refused$' || true; }
free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# start NAME: custodyd on $CONF.in with @PORT@ a free port, as $CONF; its
# stderr in NAME.err; returns once it is ready (another port when that one
# was taken meanwhile), fails if it died
start() {
	local name=$1 try
	for try in 1 2 3 4 5; do
		PORT=$(free_port)
		sed "s/@PORT@/$PORT/" "$CONF.in" >"$CONF"
		if try_start "$name"; then
			U=https://127.0.0.1:$PORT
			return 0
		fi
		wait "$pid" || true
		grep -q "Address already in use" "$name.err" || break
		echo "# port $PORT taken (try $try), another" >&2
	done
	echo "# custodyd did not start:" >&2
	cat "$name.err" >&2
	return 1
}

# treq CLIENT METHOD PATH [CURL-ARGS...]: one request over TLS to $U with the
# certificate CLIENT.pem and its key ("-": none); sets $crc (curl's exit
# status), $code, $ctype, and $ans (the body: $OUT, else r/body); curl's
# stderr in r/curl.err
treq() {
	local cl=$1 method=$2 path=$3 w
	shift 3
	local certs=()
	if [ "$cl" != - ]; then certs=(--cert "$T/$cl.pem" --key "$T/$cl.key"); fi
	ans=${OUT:-r/body}
	rm -f "$ans"
	crc=0
	w=$(curl -sS --max-time 10 --cacert "$T/ca.pem" "${certs[@]}" -o "$T/$ans" \
		-w '%{http_code} %{content_type}' -X "$method" "$@" "$U$path" 2>r/curl.err) || crc=$?
	code=${w%% *}
	ctype=${w#* }
	if [ ! -e "$ans" ]; then : >"$ans"; fi
}
# tjwt CLIENT NAME BODY [CURL-ARGS...]: POST /v1/credentials/jwt over TLS,
# the body in b/NAME, the answer in r/NAME
tjwt() {
	local cl=$1 name=$2
	printf '%s' "$3" >"b/$name"
	shift 3
	OUT=r/$name treq "$cl" POST /v1/credentials/jwt -H 'Content-Type: application/json' \
		--data-binary "@$T/b/$name" "$@"
}
is() { test "$crc" = 0 && test "$code" = "$1" && test "${ctype%%;*}" = application/json; }
problem() { test "$crc" = 0 && test "$code" = "$1" && test "$ctype" = application/problem+json; }
# refused_tls CLIENT NAME ALERT [CURL-ARGS...]: a JWT request (body b/NAME,
# its own ttl so that its SHA-256 is its own) gets no HTTP answer, in TLS
# 1.3 (unless CURL-ARGS say otherwise) and again in TLS 1.2 at most, where
# the client waits for the server's Finished: there curl -v must report the
# server's TLS alert ALERT (the refusal is the server's, not curl's, and for
# that reason). In TLS 1.3 the server checks the client's certificate after
# the client has finished, and its alert may be lost to a reset (curl exit
# 55 or 56), so only "no answer" is checked there.
nref=0
refused_tls() {
	local cl=$1 name=$2 alert=$3 c13 r13
	shift 3
	nref=$((nref + 1))
	tjwt "$cl" "$name" "{\"agent\":\"$AG/x\",\"audience\":\"$AUD\",\"ttl\":$((100 + nref))}" "$@"
	c13=$code r13=$crc
	cp r/curl.err "r/$name.err13"
	OUT=r/$name.12 treq "$cl" POST /v1/credentials/jwt -H 'Content-Type: application/json' \
		--data-binary "@$T/b/$name" -v --tls-max 1.2 "$@"
	if test "$r13" != 0 && test "$c13" = 000 && test "$crc" != 0 && test "$code" = 000 &&
		grep -qi "(IN), TLS alert, $alert (" r/curl.err; then
		return 0
	fi
	echo "# TLS 1.3: curl exit $r13, HTTP $c13: $(cat "r/$name.err13")" >&2
	echo "# TLS 1.2: curl exit $crc, HTTP $code: $(grep -i "alert\|curl:" r/curl.err)" >&2
	return 1
}
# leaf_ok NAME PRINCIPAL RULE KEY_ID: the allow leaf of the JWT answer r/NAME
leaf_ok() { J leaf "$DB" "r/$1" "b/$1" "$POL" "$2" "$3" "$4" >/dev/null; }
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
assert l["policy"] == {"sha256": polsha, "rule": rule}, l
assert isinstance(l.get("reason"), str) and l["reason"], l
assert "tbs_sha256" not in l, l
if key != "-":
    assert l["key"]["id"] == key, l
if body != "-":
    assert l["request_sha256"] == hashlib.sha256(open(body, "rb").read()).hexdigest(), l
PY
}
# principals: the principals of all decision leaves, sorted, unique
principals() { leaves 'l["event"]' 'l["principal"]' | grep -v '^requests.refused ' | cut -d' ' -f2- | LC_ALL=C sort -u; }

# ---- the test PKI ------------------------------------------------------------------
echo "# ${SECONDS}s: the test PKI"
q() { "$@" 2>/dev/null >/dev/null; }
newkey() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
mkca() { # mkca NAME CN: a self-signed CA, NAME.pem and NAME.key
	q openssl req -x509 -new -key "$1.key" -out "$1.pem" -subj "/CN=$2" -days 2 \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
}
# mkcert NAME CA SUBJECT EXTENSIONS [KEY]: NAME.pem issued by CA for the key
# KEY (default cli; NAME.key made a link to it)
mkcert() {
	local name=$1 ca=$2 subj=$3 ext=$4 key=${5:-cli}
	q openssl req -new -key "$key.key" -out "$name.csr" -subj "$subj"
	printf '%b\n' "$ext" >"$name.ext"
	q openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -days 2 \
		-out "$name.pem" -extfile "$name.ext"
	if [ "$key" != "$name" ]; then ln -sf "$key.key" "$name.key"; fi
}
newkey ca.key
newkey ca2.key
newkey srv.key
newkey cli.key
newkey other.key
mkca ca test-ca
mkca ca2 other-ca
CLI='extendedKeyUsage=clientAuth'
mkcert srv ca /CN=localhost 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth' srv
mkcert a ca /CN=broker-a "subjectAltName=URI:$BA\n$CLI"
mkcert bx ca /O=Example/CN=broker-b "$CLI"
mkcert cx ca /O=Example/CN=broker-c "$CLI"
# one CN whose value is "broker-b,O=Example": RFC 4514 escapes its comma
mkcert comma ca '/CN=broker-b,O=Example' "$CLI"
mkcert mixed ca /CN=broker-m "subjectAltName=URI:https://example.org/m,DNS:broker.example,URI:$BA\n$CLI"
mkcert two ca /CN=broker-two "subjectAltName=URI:$BA,URI:spiffe://example.org/broker/evil\n$CLI"
mkcert foreign ca2 /CN=broker-a "subjectAltName=URI:$BA\n$CLI"
mkcert srvonly ca /CN=broker-a "subjectAltName=URI:$BA\nextendedKeyUsage=serverAuth"
$PY - <<PY
import datetime
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
load = lambda p: serialization.load_pem_private_key(open(p, "rb").read(), None)
ca = x509.load_pem_x509_certificate(open("ca.pem", "rb").read())
now = datetime.datetime.utcnow()
c = (x509.CertificateBuilder()
     .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker-a")]))
     .issuer_name(ca.subject).public_key(load("cli.key").public_key())
     .serial_number(x509.random_serial_number())
     .not_valid_before(now - datetime.timedelta(days=2))
     .not_valid_after(now - datetime.timedelta(days=1))
     .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier("$BA")]), False)
     .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
     .sign(load("ca.key"), hashes.SHA256()))
open("expired.pem", "wb").write(c.public_bytes(serialization.Encoding.PEM))
PY
ln -sf cli.key expired.key
chmod 600 srv.key ca.key ca2.key cli.key other.key
check "the test PKI: every client certificate but the foreign and expired ones verifies for clientAuth" eval \
	'for c in a bx cx comma mixed two; do openssl verify -purpose sslclient -CAfile ca.pem $c.pem >/dev/null || exit 1; done &&
	! openssl verify -purpose sslclient -CAfile ca.pem expired.pem >/dev/null 2>&1 &&
	! openssl verify -purpose sslclient -CAfile ca.pem srvonly.pem >/dev/null 2>&1 &&
	! openssl verify -CAfile ca.pem foreign.pem >/dev/null 2>&1'

# ---- the data directory, the policy, the configuration -------------------------------
echo "# ${SECONDS}s: the data directory, the policy, the configuration"
custody_datadir d
cat >"$POL" <<JSON
{
  "version": 1,
  "description": "test_mtls.sh: root administers; TLS clients issue JWTs for their agents",
  "rules": [
    {"id": "root-admin", "effect": "allow", "principals": ["unix:uid=0"],
     "actions": ["key.create", "key.read", "audit.read", "checkpoint.sign"]},
    {"id": "broker-a-jwt", "effect": "allow", "principals": ["$BA"],
     "actions": ["credential.jwt"], "keys": {"agent": ["$AG/x"]},
     "conditions": {"max_ttl": "5m", "audiences": ["$AUD"]}},
    {"id": "broker-a-read", "effect": "allow", "principals": ["$BA"],
     "actions": ["key.read"], "keys": {"agent": ["$AG/x"]}},
    {"id": "broker-b-jwt", "effect": "allow", "principals": ["$XB"],
     "actions": ["credential.jwt"], "keys": {"agent": ["$AG/b"]},
     "conditions": {"max_ttl": "5m", "audiences": ["$AUD"]}},
    {"id": "brokers-glob-jwt", "effect": "allow", "principals": ["$XGLOB"],
     "actions": ["credential.jwt"], "keys": {"agent": ["$AG/c"]},
     "conditions": {"max_ttl": "5m", "audiences": ["$AUD"]}}
  ]
}
JSON
check "the test policy is valid (x509: globs included)" eval '"$CUSTODY" policy check "$POL" >/dev/null'
CONF=$T/run.conf
{
	cat "$T/d.conf"
	cat <<CONF
policy $POL
issuer $ISS
listen-unix $SOCK
listen-tcp 127.0.0.1:@PORT@
tls-cert $T/srv.pem
tls-key $T/srv.key
tls-client-ca $T/ca.pem
workers 2
CONF
} >"$CONF.in"

start run1
check "custodyd starts with listen-tcp (port $PORT)" kill -0 "$pid"
mkkey() { # mkkey NAME AGENT: a jwt key over the Unix socket, in key-NAME.json
	C key create --agent "$2" --owner t --purpose jwt --alg ecdsa-p256 --json >"key-$1.json"
}
check "custody key create (Unix socket, root): keys for agents x, y, b, c" eval \
	'mkkey x "$AG/x" && mkkey y "$AG/y" && mkkey b "$AG/b" && mkkey c "$AG/c"'
keyid() { jget "key-$1.json" 'd["id"]' 2>/dev/null || echo none; }
ID_x=$(keyid x) ID_y=$(keyid y) ID_b=$(keyid b) ID_c=$(keyid c)

# ---- 1. a SPIFFE ID issues a JWT over TCP ------------------------------------------------
echo "# ${SECONDS}s: 1. a SPIFFE ID issues a JWT over TCP"
OUT=r/jwks treq a GET /v1/jwks
check "GET /v1/jwks over TLS as $BA: 200, agent x's key alone (key.read on x)" eval \
	'is 200 && test "$(jget r/jwks "[k[\"kid\"] for k in d[\"keys\"]]")" = "['"'"'$(jget key-x.json "d[\"kid\"]")'"'"']"'
tjwt a ax "{\"agent\":\"$AG/x\",\"audience\":\"$AUD\"}"
check "$BA: POST /v1/credentials/jwt for agent x over TLS: 200" is 200
check "  python3-jwcrypto verifies it against that JWKS (ES256 pinned; iss, aud, exp)" eval \
	'J verify r/jwks "$(jget r/ax "d[\"token\"]")" ES256 "$ISS" "$AUD" >ax.payload'
check "  sub is agent x, exp - iat is max_ttl (300)" eval \
	'test "$(jget ax.payload "d[\"sub\"], d[\"exp\"] - d[\"iat\"]")" = "('"'"'$AG/x'"'"', 300)"'
check "  its decision leaf: allow, principal $BA, rule broker-a-jwt, key x" \
	leaf_ok ax "$BA" broker-a-jwt "$ID_x"
# keep-alive: two requests on one connection keep their principal
printf '{"agent":"%s/x","audience":"%s","ttl":60}' "$AG" "$AUD" >b/ka1
printf '{"agent":"%s/x","audience":"%s","ttl":61}' "$AG" "$AUD" >b/ka2
crc=0
curl -sS --max-time 10 --cacert ca.pem --cert a.pem --key a.key -H 'Content-Type: application/json' \
	--data-binary @b/ka1 -o r/ka1 "$U/v1/credentials/jwt" --next \
	--cacert ca.pem --cert a.pem --key a.key -H 'Content-Type: application/json' \
	--data-binary @b/ka2 -o r/ka2 "$U/v1/credentials/jwt" 2>r/curl.err || crc=$?
check "two JWTs on one kept-alive TLS connection: both issued, both leaves name $BA" eval \
	'test "$crc" = 0 && leaf_ok ka1 "$BA" broker-a-jwt "$ID_x" && leaf_ok ka2 "$BA" broker-a-jwt "$ID_x"'

# ---- 2. the same client, another agent ---------------------------------------------------
echo "# ${SECONDS}s: 2. the same client, another agent"
tjwt a ay "{\"agent\":\"$AG/y\",\"audience\":\"$AUD\"}"
check "$BA for agent y (no rule): 403 problem" problem 403
check "  a credential.jwt deny leaf: principal $BA, rule (default), key y, this body" \
	deny_leaf credential.jwt "$BA" "(default)" "$ID_y" b/ay

# ---- 3. x509: principals -----------------------------------------------------------------
echo "# ${SECONDS}s: 3. x509: principals"
tjwt bx bx "{\"agent\":\"$AG/b\",\"audience\":\"$AUD\"}"
check "CN=broker-b,O=Example without URI SAN: 200 for agent b (rule for $XB)" is 200
check "  its leaf names $XB, rule broker-b-jwt" leaf_ok bx "$XB" broker-b-jwt "$ID_b"
tjwt bx bxc "{\"agent\":\"$AG/c\",\"audience\":\"$AUD\"}"
check "  and for agent c, by the glob $XGLOB: 200" is 200
check "  its leaf names $XB, rule brokers-glob-jwt" leaf_ok bxc "$XB" brokers-glob-jwt "$ID_c"
tjwt cx cx "{\"agent\":\"$AG/c\",\"audience\":\"$AUD\"}"
check "CN=broker-c,O=Example: 200 for agent c by the glob" is 200
check "  its leaf names x509:CN=broker-c,O=Example, rule brokers-glob-jwt" \
	leaf_ok cx 'x509:CN=broker-c,O=Example' brokers-glob-jwt "$ID_c"
tjwt cx cxb "{\"agent\":\"$AG/b\",\"audience\":\"$AUD\"}"
check "  but not for agent b (the exact rule is broker-b's): 403" problem 403
check "  its deny leaf names x509:CN=broker-c,O=Example" \
	deny_leaf credential.jwt 'x509:CN=broker-c,O=Example' "(default)" "$ID_b" b/cxb
tjwt comma comma "{\"agent\":\"$AG/b\",\"audience\":\"$AUD\"}"
check "a CN of 'broker-b,O=Example' does not pose as $XB: 403 for agent b" problem 403
check "  its deny leaf names x509:CN=broker-b\\,O=Example (RFC 4514 escape)" \
	deny_leaf credential.jwt 'x509:CN=broker-b\,O=Example' "(default)" "$ID_b" b/comma
tjwt mixed mixed "{\"agent\":\"$AG/x\",\"audience\":\"$AUD\"}"
check "an https:// URI and a DNS SAN before the spiffe:// one: the principal is $BA (200)" eval \
	'is 200 && leaf_ok mixed "$BA" broker-a-jwt "$ID_x"'

# ---- 4. refused in the handshake -----------------------------------------------------------
echo "# ${SECONDS}s: 4. refused in the handshake"
d0=$(decisions)
check "no client certificate: no answer; in TLS 1.2 the server's alert 'handshake failure'" \
	refused_tls - nocert "handshake failure"
check "$BA's certificate from another CA: no answer; the server's alert 'unknown CA'" \
	refused_tls foreign foreign "unknown CA"
check "an expired certificate (python3-cryptography): no answer; the server's alert 'certificate expired'" \
	refused_tls expired expired "certificate expired"
check "a certificate with serverAuth EKU only: no answer; the server's alert 'unsupported certificate'" \
	refused_tls srvonly srvonly "unsupported certificate"
check "TLS 1.1 (curl --tls-max 1.1): no answer; the server's alert 'protocol version'" \
	refused_tls a tls11 "protocol version" --tls-max 1.1
tjwt a tls12 "{\"agent\":\"$AG/x\",\"audience\":\"$AUD\",\"ttl\":120}" --tls-max 1.2
check "TLS 1.2 (curl --tls-max 1.2) is served: 200" eval 'is 200 && leaf_ok tls12 "$BA" broker-a-jwt "$ID_x"'
check "the refused handshakes made no decision (one leaf more: the TLS 1.2 JWT's)" \
	test "$(decisions)" = $((d0 + 1))
check "  no leaf holds the request SHA-256 of any of their bodies" $PY - "$DB" b/nocert b/foreign \
	b/expired b/srvonly b/tls11 <<'PY'
import hashlib, json, sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
want = {hashlib.sha256(open(f, "rb").read()).hexdigest() for f in sys.argv[2:]}
for (d,) in c.execute("SELECT data FROM audit_leaves"):
    l = json.loads(d)
    assert l.get("request_sha256") not in want, l
PY

# ---- 5. two SPIFFE IDs ---------------------------------------------------------------------
echo "# ${SECONDS}s: 5. two SPIFFE IDs"
d0=$(decisions)
tjwt two two "{\"agent\":\"$AG/x\",\"audience\":\"$AUD\"}"
check "two spiffe:// URI SANs ($BA first): 401 problem" problem 401
check "  its detail says why" grep -q "spiffe://" r/two
OUT=r/twokeys treq two GET /v1/keys
check "  GET /v1/keys with it: 401 too" problem 401
check "  no decision was made, nothing signed" test "$(decisions)" = "$d0"

# ---- 6. the Unix socket alongside; key.read over TCP -----------------------------------
echo "# ${SECONDS}s: 6. the Unix socket alongside; key.read over TCP"
w=$(curl -sS --max-time 10 --unix-socket "$SOCK" -o r/ukeys -w '%{http_code}' http://custody/v1/keys) || w=fail
check "GET /v1/keys on the Unix socket as root: 200, every key" eval \
	'test "$w" = 200 && test "$(jget r/ukeys "len(d[\"keys\"])")" -ge 6'
OUT=r/akeys treq a GET /v1/keys
check "GET /v1/keys over TLS as $BA (key.read on agent x only): 200, key x alone" eval \
	'is 200 && test "$(jget r/akeys "[k[\"id\"] for k in d[\"keys\"]]")" = "['"'"'$ID_x'"'"']"'
OUT=r/bkeys treq bx GET /v1/keys
check "GET /v1/keys over TLS as $XB (no key.read): 403 problem" problem 403
check "  a key.read deny leaf naming $XB" deny_leaf key.read "$XB" "(default)" - -
check "the leaves name these principals and no other: root, $BA, $XB, broker-c's, the comma CN's" eval \
	'test "$(principals)" = "$(printf "%s\n" unix:uid=0 "$BA" "$XB" "x509:CN=broker-c,O=Example" \
		"x509:CN=broker-b\\,O=Example" | LC_ALL=C sort)" || { principals | sed "s/^/# principal: /" >&2; false; }'
GET_h() { curl -sS --max-time 10 --unix-socket "$SOCK" http://custody/healthz >/dev/null; }
check "the Unix socket still serves" GET_h

# ---- 7. SIGTERM --------------------------------------------------------------------------
echo "# ${SECONDS}s: 7. SIGTERM"
# A client holds a TLS connection open, idle: on SIGTERM custodyd gives it
# one second more to send a request, so it drains that long. Meanwhile a new
# TCP connection is made (the kernel may still complete it, but custodyd no
# longer accepts it: no answer, reset at exit), then the held client sends
# its request: answered, with Connection: close.
$PY - "$PORT" <<'PY' >hold.out 2>hold.err &
import os, socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations("ca.pem")
ctx.load_cert_chain("a.pem", "a.key")
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="127.0.0.1")
open("hold.ready", "w").close()
t = time.time()
while not os.path.exists("hold.go") and time.time() - t < 20:
    time.sleep(0.01)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: custody\r\n\r\n")
data = b""
s.settimeout(10)
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head = data.split(b"\r\n\r\n", 1)[0].decode()
print(head.split("\r\n")[0])
print("close" if "\r\nconnection: close" in head.lower() else "keep-alive")
PY
hold=$!
pids+=("$hold")
check "a TLS connection held open ($BA)" wait_for "the held connection" test -e hold.ready
kill -TERM "$pid"
sleep 0.2
alive=no
if kill -0 "$pid" 2>/dev/null; then alive=yes; fi
(
	rc=0
	curl -sS --max-time 10 --cacert ca.pem --cert a.pem --key a.key -o r/drain -w '%{http_code}' \
		"$U/healthz" >r/drain.code 2>r/drain.err || rc=$?
	echo "$rc" >r/drain.rc
) &
newc=$!
pids+=("$newc")
sleep 0.2
touch hold.go
wait "$newc" || true
drain_ok() {
	if test "$alive" = yes && test "$(cat r/drain.rc)" != 0 && test "$(cat r/drain.code)" = 000; then
		echo "# the new connection: curl exit $(cat r/drain.rc): $(cat r/drain.err)" >&2
		return 0
	fi
	echo "# custodyd alive: $alive; curl exit $(cat r/drain.rc), HTTP $(cat r/drain.code): $(cat r/drain.err)" >&2
	return 1
}
check "while custodyd drains, a new TLS connection is not served" drain_ok
rc=0
wait "$pid" || rc=$?
check "SIGTERM: custodyd exits 0" test "$rc" = 0
hrc=0
wait "$hold" || hrc=$?
check "  the request sent on the held connection after SIGTERM was answered: 200, Connection: close" eval \
	'test "$hrc" = 0 && test "$(tr "\n" " " <hold.out)" = "HTTP/1.1 200 OK close " ||
	{ sed "s/^/# held: /" hold.out hold.err >&2; false; }'
crc=0
curl -sS --max-time 5 --cacert ca.pem --cert a.pem --key a.key -o /dev/null "$U/healthz" 2>r/curl.err || crc=$?
check "after exit, a new TCP connection is refused (curl exit 7)" test "$crc" = 7
check "  the last leaf is service.stop" test "$(leaves 'l["event"]' | tail -1)" = service.stop
check "  no ASan/UBSan report" asan_clean run1.err

# ---- 8. refusals to start ----------------------------------------------------------------
echo "# ${SECONDS}s: 8. refusals to start"
# refuse_start WHAT TEXT SED-EXPR [NOT-TEXT]: custodyd on $CONF.in edited by
# SED-EXPR exits 1 at once, TEXT in its stderr (and NOT-TEXT not), without
# getting ready
refuse_start() {
	local what=$1 text=$2 ex=$3 nottext=${4:-} rc=0
	PORT=$(free_port)
	sed -e "s/@PORT@/$PORT/" -e "$ex" "$CONF.in" >"$T/bad.conf"
	timeout 20 "$DAEMON" -c "$T/bad.conf" >out.txt 2>err.txt || rc=$?
	if [ "$rc" = 1 ] && grep -qF -- "$text" err.txt && ! grep -q "ready:" err.txt &&
		{ [ -z "$nottext" ] || ! grep -qF -- "$nottext" err.txt; }; then
		ok "$what"
	else
		not_ok "$what (exit $rc, stderr: $(tr '\n' ' ' <err.txt))"
	fi
}
cp srv.key srv644.key
chmod 644 srv644.key
refuse_start "tls-key of mode 0644: refused, the message names tls-key and its mode" \
	"tls-key $T/srv644.key: mode 0644" "s|^tls-key .*|tls-key $T/srv644.key|"
refuse_start "a tls-key that is not tls-cert's (mode 0600): refused, naming tls-key" \
	"tls-key $T/other.key:" "s|^tls-key .*|tls-key $T/other.key|"
refuse_start "listen-tcp without tls-client-ca: a configuration error naming it" \
	"listen-tcp needs tls-cert, tls-key and tls-client-ca" "/^tls-client-ca /d"
refuse_start "a tls-client-ca that does not exist: refused, saying why (not '(null)')" \
	"tls-client-ca $T/nowhere.pem: " "s|^tls-client-ca .*|tls-client-ca $T/nowhere.pem|" "(null)"
refuse_start "a tls-cert that does not exist: refused, saying why (not '(null)')" \
	"tls-cert $T/nowhere.pem: " "s|^tls-cert .*|tls-cert $T/nowhere.pem|" "(null)"
check "the configuration they differ from still starts" start run2
stop TERM
check "  and stops: exit 0" test "$rc" = 0
check "  no ASan/UBSan report" asan_clean run2.err

echo "# ${SECONDS}s: done"
finish
