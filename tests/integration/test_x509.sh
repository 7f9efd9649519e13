#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# X.509 through custodyd, black box, on a real SoftHSM2 token made here,
# with the custody CLI and curl on the API socket as two principals (root,
# and nobody through setpriv) under a policy written here; what custody
# makes is checked by openssl verify -x509_strict and by x509_check.py
# (python3-cryptography, signatures verified by hand):
#   1. A self-signed CA certificate (custody ca init) for each algorithm of
#      x509-ca keys (P-256, P-384, Ed25519, RSA-PSS-3072), and leaf
#      certificates for P-256 and Ed25519 CSRs: exactly the extensions
#      custody grants, an empty subject and the agent's URI SAN, the CSR's
#      key and nothing else of it, a serial of 64 bits or more, notAfter
#      the smallest of the TTL asked, the policy's max_ttl, the key's life
#      and the CA's; the usages from the policy.
#   2. Each certificate's credential.x509 decision leaf, found by the
#      SHA-256 of its TBSCertificate; the ca.init, ca.csr and ca.install
#      leaves.
#   3. Adversarial CSRs (CA asks, usages, SANs, other and duplicate
#      extensions, no proof of possession, weak or unusual keys, Ed25519
#      keys of small order with forged signatures, SHA-1, BER, bad PEM):
#      each refused with 400 bad-csr and a deny leaf, nothing signed; the
#      request's own limits (16 KiB, members).
#   4. An external CA: custody ca csr, signed by an openssl root, custody ca
#      import, a leaf verified up to that root; imports refused (another
#      key, reversed, CA:FALSE, another issuer, expired); name constraints
#      and path lengths of the CA certificate and of its root: no
#      certificate that fails the path validation of its own chain.
#   5. Refusals by purpose, missing CA certificate, the policy's CSR key
#      types and an unknown principal: 403/409 and their deny leaves.
#   6. The log after the run: custody audit export and verify.
#
# Needs root (the unknown principal is uid 65534 through setpriv).
#
# usage: test_x509.sh CUSTODYD CUSTODY SOFTHSM2_MODULE
#
# Compound checks are strings run by 'check NAME eval ...' (SC2016); $MODULE
# is read by lib.sh.
# shellcheck disable=SC2016,SC2034
set -euo pipefail

# absolute: the test runs in its own directory
DAEMON=$(readlink -f "$1")
CUSTODY=$(readlink -f "$2")
MODULE=$(readlink -f "$3")
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
if [ "$(id -u)" != 0 ]; then
	echo "not ok - test_x509.sh needs root: the unknown principal is uid 65534 through setpriv"
	exit 1
fi
T=$(mktemp -d /tmp/custody-x509-XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
# nobody must reach the socket (sock/) and the request bodies (b/), and
# write the answers (r/)
chmod 711 "$T"
umask 022
cd "$T"
mkdir -m 755 sock b
mkdir -m 777 r
mkdir k csr

(umask 077 && printf 'x509-user-pin-29\n' >user.pin && printf 'x509-so-pin-83\n' >so.pin)
CONF=$T/d.conf
DB=$T/d/custody.db
SOCK=$T/sock/api.sock
POL=$T/pol.json
ROOT=unix:uid=0
NOBODY=unix:uid=65534
AG=spiffe://example.org/agent
C() { "$CUSTODY" -c "$CONF" "$@"; }
X() { "$PY" "$HERE/x509_check.py" "$@"; }
# q COMMAND...: the command, silent when it succeeds; its output as comments
# when it fails (openssl verify, x509_check.py)
q() {
	if "$@" >q.out 2>&1; then return 0; fi
	sed 's/^/# /' q.out >&2
	return 1
}

# ---- helpers ---------------------------------------------------------------------

allow_leaves() { count credential.x509 allow; }
metric() { # metric PREFIX: the sum of the series whose name{labels} starts with PREFIX
	curl -sS --unix-socket "$SOCK" http://custody/metrics |
		awk -v n="$1" 'index($1, n) == 1 { s += $2 } END { print s + 0 }'
}
issued() { metric 'custody_credentials_issued_total{type="x509"'; }
# call [-u] METHOD PATH NAME [BODY]: a request on the socket (-u: as uid
# 65534), the body from b/BODY (JSON); sets $code, $ctype and $ans, the file
# of the answer (r/NAME)
call() {
	local as=() data=() w
	if [ "$1" = -u ]; then
		as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		shift
	fi
	local method=$1 path=$2 name=$3
	if [ -n "${4:-}" ]; then
		data=(-H 'Content-Type: application/json' --data-binary "@$T/b/$4")
	fi
	ans=r/$name
	rm -f "$ans"
	w=$("${as[@]}" curl -sS --max-time 30 --unix-socket "$SOCK" -o "$T/$ans" \
		-w '%{http_code} %{content_type}' -X "$method" "${data[@]}" \
		"http://custody$path" 2>r/curl.err) || true
	code=${w%% *}
	ctype=${w#* }
	if [ ! -e "$ans" ]; then : >"$ans"; fi
}
# jstr FILE: the file's text as a JSON string
jstr() { awk 'BEGIN { printf "\"" } { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "%s\\n", $0 } END { printf "\"" }' "$1"; }
# x509 [-u] NAME WHO CSR-FILE [MORE-MEMBERS]: POST /v1/credentials/x509 with
# {WHO, "csr": the file's text, MORE}, WHO being "agent":"..." or "key":"..."
x509() {
	local u=()
	if [ "$1" = -u ]; then u=(-u) && shift; fi
	printf '{%s,"csr":%s%s}' "$2" "$(jstr "$3")" "${4:-}" >"b/$1"
	call "${u[@]}" POST /v1/credentials/x509 "$1" "$1"
	if [ "$code" = 200 ]; then n_issued=$((n_issued + 1)); fi
}
# prob STATUS TYPE: the last answer is an RFC 9457 problem of that status and
# type (urn:custody:problem:TYPE) with a detail (read with grep: a python per
# answer would double the test's time)
prob() {
	test "$code" = "$1" && test "$ctype" = application/problem+json &&
		grep -Eq "\"status\": ?$1[,}]" "$ans" &&
		grep -Eq "\"type\": ?\"urn:custody:problem:$2\"" "$ans" &&
		grep -Eq '"detail": ?"[^"]' "$ans"
}
rule_is() { grep -Fq "\"rule\":\"$1\"" "$ans" || grep -Fq "\"rule\": \"$1\"" "$ans"; }
# deny NAME EVENT PRINCIPAL RULE KEY_ID: the request b/NAME must have its deny
# leaf; checked in a batch by deny_leaves
: >denies.txt
deny() { echo "$1|$2|$3|$4|$5|$T/b/$1" >>denies.txt; }
tap() { # tap: the "ok - " and "not ok - " lines of a batch, counted here
	local line
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "${line#ok - }" ;;
		"not ok - "*) not_ok "${line#not ok - }" ;;
		*) echo "# $line" ;;
		esac
	done
}
deny_leaves() {
	tap < <(X denies "$DB" "$POL" denies.txt 2>&1 || echo "not ok - the deny leaves: x509_check.py failed")
	: >denies.txt
}
# mkkey NAME AGENT ALG [MORE-OPTIONS]: custody key create (through custodyd):
# key-NAME.json, its id in $ID_NAME
mkkey() {
	local n=$1 agent=$2 alg=$3
	shift 3
	C key create --agent "$agent" --owner team-x --purpose x509-ca --alg "$alg" --json "$@" \
		>"key-$n.json" 2>"key-$n.err" || true
	eval "ID_$n=\$(jget key-$n.json 'd[\"id\"]' 2>/dev/null || echo none)"
	check "custody key create $n: an x509-ca $alg key for $agent" eval \
		'test "$(jget key-$n.json "\" \".join((d[\"purpose\"], d[\"alg\"], d[\"agent\"]))" 2>/dev/null)" = "x509-ca $alg $agent"'
}
# req NAME KEY [OPENSSL-REQ-ARGS]: csr/NAME.csr, signed by k/KEY.key, with
# the subject CN=evil,O=Victim
req() {
	local n=$1 key=$2
	shift 2
	openssl req -new -key "k/$key.key" -subj /CN=evil/O=Victim "$@" -out "csr/$n.csr" 2>>openssl.err ||
		echo "# openssl req could not make csr/$n.csr" >&2
}
genkey() { # genkey NAME OPENSSL-GENPKEY-ARGS: k/NAME.key
	local n=$1
	shift
	openssl genpkey "$@" -out "k/$n.key" 2>>openssl.err ||
		echo "# openssl genpkey could not make k/$n.key" >&2
}
# issue NAME (--agent A | --key ID) CSR TTL: custody x509 issue --json, the
# answer in r/NAME.json, the certificate in NAME.pem
issue() {
	local n=$1
	C x509 issue "$2" "$3" --csr "csr/$4.csr" --ttl "$5" --json >"r/$n.json" 2>"r/$n.err" || true
	jget "r/$n.json" 'd["certificate"]' >"$n.pem" 2>/dev/null || : >"$n.pem"
	check "custody x509 issue $n: a certificate" test -s "$n.pem"
	if [ -s "$n.pem" ]; then n_issued=$((n_issued + 1)); fi
}
n_issued=0 # the certificates custody gave

# ---- the data directory, the policy, the configuration ------------------------------
echo "# ${SECONDS}s: the data directory, the policy, the configuration"
custody_datadir d
cat >"$POL" <<JSON
{
  "version": 1,
  "description": "test_x509.sh: root administers and issues; nobody (65534) has no rule",
  "rules": [
    {"id": "root-admin", "effect": "allow", "principals": ["$ROOT"],
     "actions": ["key.create", "key.read", "ca.manage", "audit.read", "checkpoint.sign"]},
    {"id": "root-issue-srv", "effect": "allow", "principals": ["$ROOT"],
     "actions": ["credential.x509"], "keys": {"agent": ["$AG/srv"], "purpose": ["x509-ca"]},
     "conditions": {"max_ttl": "10m",
                    "x509": {"csr_keys": ["rsa-2048", "ecdsa-p256"], "eku": ["serverAuth", "clientAuth"],
                             "key_usage": ["digitalSignature", "keyEncipherment"]}}},
    {"id": "root-issue", "effect": "allow", "principals": ["$ROOT"],
     "actions": ["credential.x509"],
     "keys": {"agent": ["$AG/ca-*", "$AG/ext", "$AG/ext2", "$AG/noca", "$AG/short"], "purpose": ["x509-ca"]},
     "conditions": {"max_ttl": "1h",
                    "x509": {"csr_keys": ["ecdsa-p256", "ed25519"], "eku": ["clientAuth"]}}}
  ]
}
JSON
check "the test policy is valid" eval '"$CUSTODY" policy check "$POL" >/dev/null'
cat >>"$CONF" <<CONF
policy $POL
listen-unix $SOCK
listen-unix-mode 0666
CONF
C audit vkey >vkeys

# the keys of the CSRs, made once
genkey p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
genkey p256b -algorithm EC -pkeyopt ec_paramgen_curve:P-256
genkey ed -algorithm ED25519
genkey p384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
genkey p521 -algorithm EC -pkeyopt ec_paramgen_curve:P-521
genkey k1 -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1
genkey bp256 -algorithm EC -pkeyopt ec_paramgen_curve:brainpoolP256r1
genkey ed448 -algorithm ED448
genkey rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
genkey rsa1024 -algorithm RSA -pkeyopt rsa_keygen_bits:1024
genkey rsae3 -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_pubexp:3
genkey rsapss -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048
# P-256 written with explicit curve parameters (RFC 5480: namedCurve only)
openssl ec -in k/p256b.key -param_enc explicit -out k/p256x.key 2>>openssl.err || true

start run1

# ---- 1. CA certificates and leaves for each CA algorithm --------------------------------
echo "# ${SECONDS}s: 1. and 2. CA certificates and leaves for each CA algorithm, their leaves"
declare -A ALG=([p256]=ecdsa-p256 [p384]=ecdsa-p384 [ed]=ed25519 [rsa]=rsa-pss-3072)
# the Ed25519 CA lives an hour: a leaf asked for an hour a second later ends with it
declare -A CATTL=([p256]=30d [p384]=30d [ed]=1h [rsa]=30d)
declare -A CASECS=([p256]=2592000 [p384]=2592000 [ed]=3600 [rsa]=2592000)
ID_p256='' ID_p384='' ID_ed='' ID_rsa=''
for n in p256 p384 ed rsa; do
	alg=${ALG[$n]}
	agent=$AG/ca-$n
	mkkey "$n" "$agent" "$alg"
	id_var=ID_$n
	id=${!id_var}
	subject="CN=custody test CA $n,O=Example,C=DE"
	C ca init --key "$id" --subject "$subject" --ttl "${CATTL[$n]}" >"ca-$n.pem" 2>"ca-$n.err" || true
	check "custody ca init ($alg): openssl verify -x509_strict of the self-signed certificate" \
		q openssl verify -x509_strict -CAfile "ca-$n.pem" "ca-$n.pem"
	check "  python3-cryptography: the key's SPKI, subject, ${CASECS[$n]} s, its signature by hand, CA:TRUE pathlen 0, keyCertSign cRLSign, SKI/AKI, nothing else" \
		q X ca "ca-$n.pem" "key-$n.json" "$alg" "$subject" "${CASECS[$n]}"
	check "  its ca.init leaf: tbs_sha256 of its TBSCertificate, rule root-admin" \
		q X caleaf "$DB" ca.init "ca-$n.pem" "$id" root-admin "$POL"
	check "  its ca.install leaf: cert_sha256, self-signed, no chain" \
		q X caleaf "$DB" ca.install "ca-$n.pem" "$id" root-admin "$POL"
	C ca show --key "$id" --json >"show-$n.json" 2>/dev/null || true
	check "  custody ca show: that certificate, an empty chain" eval \
		'test "$(jget show-$n.json "d[\"key\"] + \" \" + str(d[\"chain\"])")" = "$id []" &&
		jget show-$n.json "d[\"certificate\"]" >show-$n.pem &&
		cmp -s <(openssl x509 -in show-$n.pem -outform DER) <(openssl x509 -in ca-$n.pem -outform DER)'
	# a P-256 CSR that asks for what custody grants anyway, an Ed25519 one that asks nothing
	req "$n-p256" p256 -addext "subjectAltName=critical,URI:$agent" \
		-addext extendedKeyUsage=clientAuth -addext keyUsage=critical,digitalSignature
	req "$n-ed" ed
	issue "$n-p256" --agent "$agent" "$n-p256" 30m
	issue "$n-ed" --key "$id" "$n-ed" 30m
	for c in p256 ed; do
		check "  $alg CA, $c CSR: openssl verify -x509_strict -purpose sslclient" \
			q openssl verify -x509_strict -purpose sslclient -CAfile "ca-$n.pem" "$n-$c.pem"
		check "  python3-cryptography: signature by hand, exactly the extensions, empty subject, the SAN, the CSR's key, serial, 1800 s" \
			q X leaf "r/$n-$c.json" "csr/$n-$c.csr" "ca-$n.pem" "$alg" "$agent" =1800 \
			clientAuth digitalSignature "ca-$n.pem"
		check "  its credential.x509 leaf, found by the SHA-256 of its TBSCertificate" \
			q X record "$DB" "r/$n-$c.json" "csr/$n-$c.csr" "$agent" "$id" "$ROOT" root-issue \
			"$POL" "$([ $c = ed ] && echo ed25519 || echo ecdsa-p256)"
	done
	check "  the CSR's subject (CN=evil, O=Victim) is in neither certificate" \
		not grep -q 'evil\|Victim' <(openssl x509 -in "$n-p256.pem" -noout -text) <(openssl x509 -in "$n-ed.pem" -noout -text)
done
# the lifetime: the policy's max_ttl, the CA's end, the key's
sleep 1.1
issue ed-clamp --key "$ID_ed" ed-ed 1h
check "Ed25519 CA of 1 h, a leaf asked for 1 h a second later: it ends with the CA" \
	q X leaf r/ed-clamp.json csr/ed-ed.csr ca-ed.pem ed25519 "$AG/ca-ed" ca clientAuth digitalSignature ca-ed.pem
check "  its leaf" q X record "$DB" r/ed-clamp.json csr/ed-ed.csr "$AG/ca-ed" "$ID_ed" "$ROOT" root-issue "$POL" ed25519
issue p256-max --agent "$AG/ca-p256" p256-ed 24h
check "asked 24h, max_ttl 1h: 3600 s" \
	q X leaf r/p256-max.json csr/p256-ed.csr ca-p256.pem ecdsa-p256 "$AG/ca-p256" =3600 clientAuth digitalSignature ca-p256.pem
ID_short=''
mkkey short "$AG/short" ed25519 --ttl 5m
C ca init --key "$ID_short" >ca-short.pem 2>ca-short.err || true
check "a key with 5 min to live: its CA certificate ends with it (ca init without --ttl)" eval \
	'! openssl x509 -in ca-short.pem -noout -checkend 300 >/dev/null && openssl x509 -in ca-short.pem -noout -checkend 200 >/dev/null'

req short-p256 p256
issue short --agent "$AG/short" short-p256 1h
check "  a leaf asked for 1 h: at most the key's 300 s" \
	q X leaf r/short.json csr/short-p256.csr ca-short.pem ed25519 "$AG/short" '<=300' clientAuth digitalSignature ca-short.pem
# the usages of the policy: serverAuth and clientAuth, keyEncipherment, max_ttl 10m; an RSA CSR
ID_srv=''
mkkey srv "$AG/srv" ecdsa-p256
C ca init --key "$ID_srv" --subject "CN=custody test CA srv" >ca-srv.pem 2>ca-srv.err || true
req srv-rsa rsa2048
issue srv --agent "$AG/srv" srv-rsa 1h
check "rule root-issue-srv: an RSA-2048 CSR; openssl verify -purpose sslserver" \
	q openssl verify -x509_strict -purpose sslserver -CAfile ca-srv.pem srv.pem
check "  serverAuth+clientAuth, digitalSignature+keyEncipherment, max_ttl 600 s" \
	q X leaf r/srv.json csr/srv-rsa.csr ca-srv.pem ecdsa-p256 "$AG/srv" =600 \
	serverAuth,clientAuth digitalSignature,keyEncipherment ca-srv.pem
check "  its leaf: rule root-issue-srv, csr_key rsa-2048" \
	q X record "$DB" r/srv.json csr/srv-rsa.csr "$AG/srv" "$ID_srv" "$ROOT" root-issue-srv "$POL" rsa-2048
req srv-p256 p256
issue srv-ec --agent "$AG/srv" srv-p256 5m
check "  a P-256 CSR under the same rule: digitalSignature only (no keyEncipherment for an EC key, RFC 5480)" \
	q X leaf r/srv-ec.json csr/srv-p256.csr ca-srv.pem ecdsa-p256 "$AG/srv" =300 \
	serverAuth,clientAuth digitalSignature ca-srv.pem
check "x509_check.py mkcsrs: requests made by hand (DER), signed by python3-cryptography" \
	q X mkcsrs csr "$AG/ca-p256" k/p256.key k/p256b.key
x509 byhand "\"agent\":\"$AG/ca-p256\"" csr/good.csr ',"ttl":600'
cp r/byhand r/byhand.json
check "a CSR made by hand here (x509_check.py mkcsrs 'good'): issued, 600 s" \
	q X leaf r/byhand.json csr/good.csr ca-p256.pem ecdsa-p256 "$AG/ca-p256" =600 clientAuth digitalSignature ca-p256.pem
check "  its leaf" q X record "$DB" r/byhand.json csr/good.csr "$AG/ca-p256" "$ID_p256" "$ROOT" root-issue "$POL" ecdsa-p256

# ---- 3. adversarial CSRs: each refused, nothing signed --------------------------------------
echo "# ${SECONDS}s: 3. adversarial CSRs: each refused, nothing signed"
allow0=$(allow_leaves)
issued0=$(issued)
WHO="\"agent\":\"$AG/ca-p256\""
# badcsr NAME CSR-FILE: refused, 400 bad-csr, a deny leaf of rule (csr)
badcsr() {
	x509 "adv-$1" "$WHO" "$2"
	check "CSR refused: $1 -> 400 bad-csr, rule (csr)" eval 'prob 400 bad-csr && rule_is "(csr)"'
	deny "adv-$1" credential.x509 "$ROOT" "(csr)" "$ID_p256"
}
A=$AG/ca-p256
req bc-ca p256 -addext basicConstraints=critical,CA:TRUE
badcsr "basicConstraints CA:TRUE" csr/bc-ca.csr
req bc-ca-nc p256 -addext basicConstraints=CA:TRUE
badcsr "basicConstraints CA:TRUE, not critical" csr/bc-ca-nc.csr
req bc-ca-pl p256 -addext basicConstraints=critical,CA:TRUE,pathlen:0
badcsr "basicConstraints CA:TRUE pathlen 0" csr/bc-ca-pl.csr
badcsr "basicConstraints CA:FALSE with pathlen 0 (by hand)" csr/bc-pathlen.csr
req ku-certsign p256 -addext keyUsage=critical,digitalSignature,keyCertSign
badcsr "keyUsage keyCertSign" csr/ku-certsign.csr
req ku-crlsign p256 -addext keyUsage=cRLSign
badcsr "keyUsage cRLSign" csr/ku-crlsign.csr
req eku-code p256 -addext extendedKeyUsage=clientAuth,codeSigning
badcsr "extKeyUsage clientAuth and codeSigning" csr/eku-code.csr
req eku-any p256 -addext extendedKeyUsage=anyExtendedKeyUsage
badcsr "extKeyUsage anyExtendedKeyUsage" csr/eku-any.csr
req eku-ocsp p256 -addext extendedKeyUsage=OCSPSigning
badcsr "extKeyUsage OCSPSigning" csr/eku-ocsp.csr
req san-other p256 -addext "subjectAltName=URI:$AG/other"
badcsr "SAN: another agent's SPIFFE ID" csr/san-other.csr
req san-ca-p384 p256 -addext "subjectAltName=URI:$AG/ca-p384"
badcsr "SAN: the SPIFFE ID of another CA key's agent" csr/san-ca-p384.csr
req san-dns p256 -addext "subjectAltName=URI:$A,DNS:evil.example"
badcsr "SAN: the agent and a DNS name" csr/san-dns.csr
req san-dnsonly p256 -addext "subjectAltName=DNS:ca-p256.example.org"
badcsr "SAN: a DNS name only" csr/san-dnsonly.csr
req san-twice p256 -addext "subjectAltName=URI:$A,URI:$A"
badcsr "SAN: the agent's URI twice" csr/san-twice.csr
req san-upper p256 -addext "subjectAltName=URI:SPIFFE://example.org/agent/ca-p256"
badcsr "SAN: the agent's URI in capitals" csr/san-upper.csr
req san-prefix p256 -addext "subjectAltName=URI:$A/x"
badcsr "SAN: a path under the agent's" csr/san-prefix.csr
req san-email p256 -addext "subjectAltName=email:agent@example.org"
badcsr "SAN: an email address" csr/san-email.csr
req oid p256 -addext 1.2.3.4.5=ASN1:UTF8String:hello
badcsr "extension 1.2.3.4.5, not critical" csr/oid.csr
req oid-crit p256 -addext 1.2.3.4.5=critical,ASN1:UTF8String:hello
badcsr "extension 1.2.3.4.5, critical" csr/oid-crit.csr
req nc p256 -addext "nameConstraints=critical,permitted;DNS:example.org"
badcsr "nameConstraints" csr/nc.csr
req ski p256 -addext subjectKeyIdentifier=hash
badcsr "subjectKeyIdentifier" csr/ski.csr
req aia p256 -addext "authorityInfoAccess=OCSP;URI:http://ocsp.example"
badcsr "authorityInfoAccess" csr/aia.csr
badcsr "keyUsage twice (by hand)" csr/dup-ku.csr
badcsr "subjectAltName twice (by hand)" csr/dup-san.csr
badcsr "a second extensionRequest attribute asking CA:TRUE (by hand)" csr/two-extreq.csr
badcsr "Microsoft's extensionRequest asking CA:TRUE (by hand)" csr/ms-extreq.csr
badcsr "signed by another key (no proof of possession)" csr/other-key-sig.csr
badcsr "a bit of the signature flipped" csr/flipped-sig.csr
req rsa1024 rsa1024
badcsr "RSA-1024" csr/rsa1024.csr
req rsae3 rsae3
badcsr "RSA-2048 with e = 3" csr/rsae3.csr
req rsapss rsapss -sigopt rsa_padding_mode:pss
badcsr "an RSA-PSS (id-RSASSA-PSS) key" csr/rsapss.csr
req p521 p521
badcsr "P-521" csr/p521.csr
req k1 k1
badcsr "secp256k1" csr/k1.csr
req bp256 bp256
badcsr "brainpoolP256r1" csr/bp256.csr
req ed448 ed448
badcsr "Ed448" csr/ed448.csr
req p256x p256x
badcsr "P-256 with explicit curve parameters (RFC 5480: namedCurve only)" csr/p256x.csr
req sha1 p256 -sha1
badcsr "signed with ecdsa-with-SHA1" csr/sha1.csr
openssl ec -in k/p256.key -conv_form compressed -out k/p256c.key 2>>openssl.err || true
req compressed p256c
badcsr "a compressed P-256 point" csr/compressed.csr
badcsr "a BER length on the outer SEQUENCE (by hand; the signature still verifies)" csr/ber-length.csr
printf -- '-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!\n-----END CERTIFICATE REQUEST-----\n' >csr/garbage.csr
badcsr "garbage between PEM lines" csr/garbage.csr
head -c 300 csr/p256-p256.csr >csr/trunc.csr
badcsr "a PEM block cut in the middle" csr/trunc.csr
$PY -c 'import base64, sys
d = base64.b64decode("".join(l for l in open(sys.argv[1]) if not l.startswith("-----")))
b = base64.encodebytes(d[:-20]).decode()
sys.stdout.write("-----BEGIN CERTIFICATE REQUEST-----\n%s-----END CERTIFICATE REQUEST-----\n" % b)' \
	csr/p256-p256.csr >csr/trunc-der.csr
badcsr "a whole PEM block of a truncated DER request" csr/trunc-der.csr
cat csr/p256-p256.csr csr/p256-ed.csr >csr/two.csr
badcsr "two requests in one string" csr/two.csr
{ cat csr/p256-p256.csr && echo junk; } >csr/trailing.csr
badcsr "text after the request" csr/trailing.csr
sed '1a Proc-Type: 4,ENCRYPTED' csr/p256-p256.csr >csr/headers.csr
badcsr "PEM headers" csr/headers.csr
sed 's/CERTIFICATE REQUEST/CERTIFICATE/' csr/p256-p256.csr >csr/label.csr
badcsr "a request under a CERTIFICATE label" csr/label.csr
badcsr "a certificate instead of a request" ca-p256.pem
grep -v -- ----- csr/p256-p256.csr >csr/nopem.csr
badcsr "base64 without the PEM lines" csr/nopem.csr
: >csr/empty.csr
x509 adv-empty "$WHO" csr/empty.csr
check "CSR refused: an empty string -> 400 bad-csr" prob 400 bad-csr
deny adv-empty credential.x509 "$ROOT" "(csr)" "$ID_p256"
check "the adversarial CSRs signed nothing: no credential.x509 allow leaf" test "$(allow_leaves)" = "$allow0"
check "  custody_credentials_issued_total{type=\"x509\"} unchanged" test "$(issued)" = "$issued0"
deny_leaves
# Ed25519 keys of small order: OpenSSL verifies the forged signature of each
# request, custody must refuse the key itself (a certificate for a key
# whose signatures anyone can make)
for o in 1 2 4 8; do
	check "an Ed25519 CSR key of order $o: its forged signature verifies (openssl req -verify)" \
		q openssl req -in "csr/ed25519-order$o.csr" -verify -noout
	badcsr "an Ed25519 key of order $o (its signature forged)" "csr/ed25519-order$o.csr"
	if [ "$code" = 200 ]; then
		echo "# ed25519-order$o was certified: $(jget "$ans" 'd["serial"]')" >&2
	fi
done
check "the small-order keys signed nothing" test "$(allow_leaves) $(issued)" = "$allow0 $issued0"
deny_leaves
# the request's own limits: refused before any key or policy is looked at
deny0=$(count credential.x509 deny)
allow0=$(allow_leaves)
issued0=$(issued)
$PY -c 'import sys; sys.stdout.write("-----BEGIN CERTIFICATE REQUEST-----\n" + ("A" * 64 + "\n") * 253 + "-----END CERTIFICATE REQUEST-----\n")' >csr/big.csr
x509 big "$WHO" csr/big.csr
check "a csr of more than 16 KiB: 413 ($(wc -c <csr/big.csr) bytes)" prob 413 too-large
x509 unknown "$WHO" csr/p256-p256.csr ',"subject":"CN=x"'
check "an unknown member (subject): 400 bad-request" prob 400 bad-request
x509 both "$WHO" csr/p256-p256.csr ",\"key\":\"$ID_p256\""
check "both agent and key: 400 bad-request" prob 400 bad-request
x509 neither '"ttl":60' csr/p256-p256.csr
check "neither agent nor key: 400 bad-request" prob 400 bad-request
x509 ttl0 "$WHO" csr/p256-p256.csr ',"ttl":0'
check "ttl 0: 400 bad-request" prob 400 bad-request
x509 dupcsr "$WHO" csr/p256-p256.csr ",\"csr\":$(jstr csr/p256-ed.csr)"
check "csr twice: 400 bad-request" prob 400 bad-request
x509 nokey '"agent":"spiffe://example.org/agent/none"' csr/p256-p256.csr
check "an agent without an x509-ca key: 404" prob 404 not-found
x509 unknownkey '"key":"k_0123456789abcdef"' csr/p256-p256.csr
check "an unknown key: 404" prob 404 not-found
call GET /v1/credentials/x509 get
check "GET /v1/credentials/x509: 405 method-not-allowed" prob 405 method-not-allowed
check "  none of them is a decision leaf" test "$(count credential.x509 deny)" = "$deny0"
check "  nothing signed" test "$(allow_leaves) $(issued)" = "$allow0 $issued0"

# ---- 4. an external CA ------------------------------------------------------------------
echo "# ${SECONDS}s: 4. an external CA"
ID_ext=''
mkkey ext "$AG/ext" ecdsa-p384
SUBJ="CN=custody intermediate,O=Example"
C ca csr --key "$ID_ext" --subject "$SUBJ" >ext.csr 2>ext.err || true
check "custody ca csr: openssl req -verify" q openssl req -in ext.csr -verify -noout
check "  the key's SPKI, the subject, asks CA:TRUE pathlen 0, keyCertSign cRLSign, SKI" \
	q X cacsr ext.csr key-ext.json "$SUBJ"
check "  its ca.csr leaf: tbs_sha256 of its CertificationRequestInfo" \
	q X caleaf "$DB" ca.csr ext.csr "$ID_ext" root-admin "$POL"
cat >root.cnf <<'CNF'
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no
[dn]
CN = test root
O = Elsewhere
[v3]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
openssl req -x509 -config root.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout root.key -days 2 -out root.pem 2>>openssl.err || true
sed 's/test root/another root/' root.cnf >root2.cnf
openssl req -x509 -config root2.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout root2.key -days 2 -out root2.pem 2>>openssl.err || true
openssl x509 -req -in ext.csr -CA root.pem -CAkey root.key -copy_extensions copyall -days 1 \
	-out int.pem 2>>openssl.err || true
check "openssl signs it as the root (copy_extensions copyall): a CA:TRUE intermediate" \
	eval 'q openssl verify -x509_strict -CAfile root.pem int.pem &&
	openssl x509 -in int.pem -noout -ext basicConstraints | grep -q "CA:TRUE, pathlen:0"'
check "  no CA certificate yet: GET /v1/keys/ID/ca 404" eval \
	'call GET "/v1/keys/$ID_ext/ca" show0 && prob 404 not-found'
# imports refused: certificates for another key, reversed, not a CA, not by the next, expired
printf 'basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n' >noca.ext
openssl x509 -req -in ext.csr -CA root.pem -CAkey root.key -extfile noca.ext -days 1 \
	-out int-noca.pem 2>>openssl.err || true
check "python3-cryptography: an expired certificate for the key, signed by the root" \
	q X expired ext.csr root.pem root.key int-old.pem
# badimport NAME FILE: PUT /v1/keys/ID/ca refused, 400 bad-certificate, a ca.install deny leaf
badimport() {
	printf '{"certificates":%s}' "$(jstr "$2")" >"b/imp-$1"
	call PUT "/v1/keys/$ID_ext/ca" "imp-$1" "imp-$1"
	check "ca import refused: $1 -> 400 bad-certificate, rule (certificate)" eval \
		'prob 400 bad-certificate && rule_is "(certificate)"'
	deny "imp-$1" ca.install "$ROOT" "(certificate)" "$ID_ext"
}
cat ca-p256.pem root.pem >imp-other.pem
badimport "the certificate of another key" imp-other.pem
cat root.pem int.pem >imp-reversed.pem
badimport "the chain reversed (root first)" imp-reversed.pem
cat int-noca.pem root.pem >imp-noca.pem
badimport "a CA:FALSE certificate for the key" imp-noca.pem
cat int.pem root2.pem >imp-wrongroot.pem
badimport "an issuer that did not sign it" imp-wrongroot.pem
cat int-old.pem root.pem >imp-old.pem
badimport "an expired certificate" imp-old.pem
printf 'not a certificate\n' >imp-garbage.pem
badimport "no PEM certificate" imp-garbage.pem
deny_leaves
check "  nothing installed: GET /v1/keys/ID/ca still 404" eval \
	'call GET "/v1/keys/$ID_ext/ca" show1 && prob 404 not-found'
cat int.pem root.pem >chain.pem
C ca import --key "$ID_ext" chain.pem --json >r/import.json 2>r/import.err || true
check "custody ca import int.pem + root.pem: the intermediate, the chain [root]" \
	$PY - r/import.json int.pem root.pem "$ID_ext" <<'PY'
import json, sys
from cryptography import x509
a = json.load(open(sys.argv[1]))
der = lambda p: x509.load_pem_x509_certificate(p.encode() if isinstance(p, str) else p).public_bytes(
    x509.base.serialization.Encoding.DER)
assert sorted(a) == ["certificate", "chain", "key", "log_index"], a
assert a["key"] == sys.argv[4], a
assert der(a["certificate"]) == der(open(sys.argv[2], "rb").read())
assert [der(c) for c in a["chain"]] == [der(open(sys.argv[3], "rb").read())]
PY
check "  its ca.install leaf: cert_sha256 of the intermediate, chain_length 1, not self-signed" \
	q X caleaf "$DB" ca.install chain.pem "$ID_ext" root-admin "$POL"
C ca show --key "$ID_ext" --json >show-ext.json 2>/dev/null || true
check "  custody ca show: the same" eval \
	'test "$(jget show-ext.json "(d[\"certificate\"], d[\"chain\"])")" = "$(jget r/import.json "(d[\"certificate\"], d[\"chain\"])")"'
req ext-p256 p256
issue ext --agent "$AG/ext" ext-p256 30m
check "a leaf of the intermediate: openssl verify -x509_strict -CAfile root.pem -untrusted int.pem" \
	q openssl verify -x509_strict -purpose sslclient -CAfile root.pem -untrusted int.pem ext.pem
check "  its chain: the intermediate then the root; signature by hand, the extensions, 1800 s" \
	q X leaf r/ext.json csr/ext-p256.csr int.pem ecdsa-p384 "$AG/ext" =1800 clientAuth digitalSignature \
	int.pem root.pem
check "  its leaf" q X record "$DB" r/ext.json csr/ext-p256.csr "$AG/ext" "$ID_ext" "$ROOT" root-issue "$POL" ecdsa-p256

# name constraints: the CA certificate's own, and its root's
ID_ext2=''
mkkey ext2 "$AG/ext2" ecdsa-p256
C ca csr --key "$ID_ext2" --subject "CN=custody intermediate 2,O=Example" >ext2.csr 2>ext2.err || true
cat >nc.ext <<'EXT'
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
nameConstraints = critical,permitted;URI:other.org
EXT
openssl x509 -req -in ext2.csr -CA root.pem -CAkey root.key -extfile nc.ext -days 1 \
	-out int-nc.pem 2>>openssl.err || true
cat int-nc.pem root.pem >chain-nc.pem
check "an intermediate whose nameConstraints permit only URIs of other.org: imported" \
	eval 'C ca import --key "$ID_ext2" chain-nc.pem >/dev/null'
req ext2-p256 p256
x509 nc-own "\"agent\":\"$AG/ext2\"" csr/ext2-p256.csr ',"ttl":601'
check "  a certificate for $AG/ext2 under it: 409, rule (ca)" eval 'prob 409 conflict && rule_is "(ca)"'
deny nc-own credential.x509 "$ROOT" "(ca)" "$ID_ext2"
# roots that constrain what is under them: the intermediate is refused at
# import, or its leaves at issuance, or they verify; custody never returns a
# certificate that fails the path validation of the chain it returns with it
# constrained NAME WHAT TTL LINE...: a root whose v3 section has the LINEs
# (WHAT says what), an intermediate for the key ext2 under it (openssl x509
# -req -copy_extensions copyall), imported; then a leaf asked for TTL
constrained() {
	local n=$1 what=$2 ttl=$3 imp
	shift 3
	printf '%s\n' '[req]' 'distinguished_name = dn' 'x509_extensions = v3' 'prompt = no' '[dn]' \
		"CN = root $n" '[v3]' 'keyUsage = critical,keyCertSign,cRLSign' \
		'subjectKeyIdentifier = hash' "$@" >"root-$n.cnf"
	openssl req -x509 -config "root-$n.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "root-$n.key" -days 2 -out "root-$n.pem" 2>>openssl.err || true
	openssl x509 -req -in ext2.csr -CA "root-$n.pem" -CAkey "root-$n.key" -copy_extensions copyall \
		-days 1 -out "int-$n.pem" 2>>openssl.err || true
	cat "int-$n.pem" "root-$n.pem" >"chain-$n.pem"
	printf '{"certificates":%s}' "$(jstr "chain-$n.pem")" >"b/imp-$n"
	call PUT "/v1/keys/$ID_ext2/ca" "imp-$n" "imp-$n"
	imp=$code
	if [ "$imp" = 400 ]; then
		check "a root with $what: the intermediate under it is refused at import (400)" \
			prob 400 bad-certificate
		return 0
	fi
	x509 "leaf-$n" "\"agent\":\"$AG/ext2\"" csr/ext2-p256.csr ",\"ttl\":$ttl"
	jget "$ans" 'd["certificate"]' >"leaf-$n.pem" 2>/dev/null || : >"leaf-$n.pem"
	check "a root with $what, the intermediate imported (HTTP $imp): its leaf is refused (409), or verifies" eval \
		'prob 409 conflict || { echo "# HTTP $code: certified; openssl verify -x509_strict -CAfile root-$n.pem -untrusted int-$n.pem:" >&2;
		openssl verify -x509_strict -CAfile "root-$n.pem" -untrusted "int-$n.pem" "leaf-$n.pem" 2>&1 | sed "s/^/# /" >&2; false; }'
}
constrained nc "nameConstraints permitting only URIs of other.org" 602 \
	'basicConstraints = critical,CA:TRUE' 'nameConstraints = critical,permitted;URI:other.org'
constrained pl0 "pathlen 0" 603 'basicConstraints = critical,CA:TRUE,pathlen:0'
deny_leaves

# ---- 5. refusals by purpose, CA, policy and principal ------------------------------------
echo "# ${SECONDS}s: 5. refusals by purpose, CA, policy and principal"
allow0=$(allow_leaves)
issued0=$(issued)
C key create --agent "$AG/jwt" --owner team-x --purpose jwt --alg ed25519 --json >key-jwt.json 2>/dev/null || true
ID_jwt=$(jget key-jwt.json 'd["id"]' 2>/dev/null || echo none)
x509 jwtkey "\"key\":\"$ID_jwt\"" csr/p256-p256.csr
check "a jwt key asked for a certificate: 403, rule (purpose)" eval 'prob 403 forbidden && rule_is "(purpose)"'
deny jwtkey credential.x509 "$ROOT" "(purpose)" "$ID_jwt"
ID_noca=''
mkkey noca "$AG/noca" ecdsa-p256
req noca-p256 p256
x509 noca "\"agent\":\"$AG/noca\"" csr/noca-p256.csr
check "an x509-ca key without a CA certificate: 409, rule (ca)" eval 'prob 409 conflict && rule_is "(ca)"'
deny noca credential.x509 "$ROOT" "(ca)" "$ID_noca"
req p384 p384
x509 csrp384 "$WHO" csr/p384.csr
check "a P-384 CSR, not in the rule's csr_keys: 403, rule (default)" eval 'prob 403 forbidden && rule_is "(default)"'
deny csrp384 credential.x509 "$ROOT" "(default)" "$ID_p256"
x509 srved "\"agent\":\"$AG/srv\"" csr/p256-ed.csr
check "an Ed25519 CSR for agent srv (rule root-issue-srv: rsa-2048, ecdsa-p256): 403" eval \
	'prob 403 forbidden && rule_is "(default)"'
deny srved credential.x509 "$ROOT" "(default)" "$ID_srv"
x509 -u nobody "$WHO" csr/p256-p256.csr
check "nobody (uid 65534, no rule) asks for a certificate: 403, rule (default)" eval \
	'prob 403 forbidden && rule_is "(default)"'
deny nobody credential.x509 "$NOBODY" "(default)" "$ID_p256"
echo '{"subject":"CN=nobody CA"}' >b/nobody-ca
call -u POST "/v1/keys/$ID_noca/ca/self-signed" nobody-ca nobody-ca
check "nobody asks for a CA certificate: 403 (ca.manage)" eval 'prob 403 forbidden && rule_is "(default)"'
deny nobody-ca ca.init "$NOBODY" "(default)" "$ID_noca"
echo '{}' >b/jwt-ca
call POST "/v1/keys/$ID_jwt/ca/self-signed" jwt-ca jwt-ca
check "a CA certificate for a jwt key: 403, rule (purpose)" eval 'prob 403 forbidden && rule_is "(purpose)"'
deny jwt-ca ca.init "$ROOT" "(purpose)" "$ID_jwt"
deny_leaves
check "the refusals signed nothing: no credential.x509 allow leaf, the metric unchanged" \
	test "$(allow_leaves) $(issued)" = "$allow0 $issued0"
call GET "/v1/keys/$ID_noca/ca" show-noca
check "GET /v1/keys/ID/ca of a key without one: 404" prob 404 not-found
call -u GET "/v1/keys/$ID_p256/ca" show-nobody
check "nobody reads a CA certificate (no key.read rule): 403" prob 403 forbidden
# ca init's body: a subject of the restricted RFC 4514 form, a ttl of 1 h to 20 years
for bad in '{"ttl":60}' '{"ttl":"30d"}' '{"subject":"CN=a+O=b"}' '{"subject":"CN=a\\,O=b"}' \
	'{"subject":"CN=a,UID=root"}' '{"subject":""}' '{"colour":"blue"}' '{"subject":"CN=a","subject":"CN=b"}'; do
	printf '%s' "$bad" >b/cabody
	call POST "/v1/keys/$ID_noca/ca/self-signed" cabody cabody
	check "POST /v1/keys/ID/ca/self-signed $bad: 400 bad-request" prob 400 bad-request
done
call GET "/v1/keys/$ID_noca/ca" show-noca2
check "  still no CA certificate" prob 404 not-found

# ---- 6. the log after the run --------------------------------------------------------------
echo "# ${SECONDS}s: 6. the log after the run"
n=$(($(count credential.x509 allow)))
stop TERM
check "custodyd: SIGTERM, exit 0" test "$rc" = 0
check "$n credential.x509 allow leaves: one for each of the $n_issued certificates issued" test "$n" = "$n_issued"
rm -rf ex
check "custody audit export, then custody audit verify with the log's verifier keys" eval \
	'C audit export ex >/dev/null && "$CUSTODY" audit verify ex --vkey-file vkeys >/dev/null'
check "  and tlog_check.py" q $PY "$HERE/tlog_check.py" export ex vkeys

echo "# ${SECONDS}s: done"
finish
