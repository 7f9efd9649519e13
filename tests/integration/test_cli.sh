#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The custody CLI in direct mode on a real SoftHSM2 token made here, checked
# with tools custody did not write: pkcs11-tool (OpenSC), openssl, and
# Debian's python3-jwcrypto run by /usr/bin/python3.
#
# usage: test_cli.sh CUSTODY_BINARY SOFTHSM2_MODULE
set -euo pipefail

CUSTODY=$1
MODULE=$2
PY=/usr/bin/python3
# shellcheck source=tests/integration/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
T=$(mktemp -d /tmp/custody-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"

USER_PIN=cli-user-pin-7c1e93
SO_PIN=cli-so-pin-2b8d44
(umask 077 && printf '%s\n' "$USER_PIN" >user.pin && printf '%s\n' "$SO_PIN" >so.pin)
cat >custody.conf <<EOF
# written by test_cli.sh
data-dir $T/data
pkcs11-module $MODULE
token pkcs11:token=custody-cli
pin-file $T/user.pin
pkcs11-env SOFTHSM2_CONF=$T/data/softhsm2/softhsm2.conf
log-origin custody-cli.test/log
EOF
export SOFTHSM2_CONF=$T/data/softhsm2/softhsm2.conf
# every output of custody is also kept in all.log, for the PIN check at the end
# (synchronously: a tee in a process substitution could finish after the
# caller has already read the output)
C() {
	local rc=0
	"$CUSTODY" -c "$T/custody.conf" "$@" >"$T/c.out" 2>"$T/c.err" || rc=$?
	cat "$T/c.out" "$T/c.err" >>"$T/all.log"
	cat "$T/c.out"
	cat "$T/c.err" >&2
	return $rc
}
P11() { pkcs11-tool --module "$MODULE" --token-label custody-cli "$@"; }
json() { $PY -c "import json,sys; d=json.load(open('$1')); print($2)"; }

# ---- help and usage --------------------------------------------------------
check "custody --help" "$CUSTODY" --help
for c in "init" "key" "key create" "key list" "key show" "key rotate" "key destroy" "key history"; do
	# shellcheck disable=SC2086
	check "custody $c --help" "$CUSTODY" $c --help
done
expect_fail "no command" 2 "usage:" "$CUSTODY"
expect_fail "unknown command" 2 "unknown command 'frobnicate'" "$CUSTODY" frobnicate
expect_fail "command before init" 1 "run 'custody init' first" C key list

# ---- init ------------------------------------------------------------------
C init --so-pin-file "$T/so.pin" --json >init.json
check "init --json prints JSON" $PY -c "import json; d=json.load(open('init.json')); assert len(d['service_keys']) == 2"
C key list --json >keys.json
check "init made checkpoint and attestation keys" \
	test "$(json keys.json "','.join(sorted(k['purpose'] for k in d))")" = "attestation,checkpoint"
check "data directory is private" test "$(stat -c %a data)" = 700
check "store is private" test "$(stat -c %a data/custody.db)" = 600
check "softhsm2.conf written from the template" grep -q "directories.tokendir = $T/data/softhsm2/tokens" "$SOFTHSM2_CONF"
expect_fail "init twice" 1 "initialised already" C init --so-pin-file "$T/so.pin"
# A second data directory on the same token: custody never reinitialises
# a token, but adopts one that is set up already (an HSM partition).
sed "s#data-dir .*#data-dir $T/data2#" custody.conf >second.conf
expect_fail "init of an existing token is refused" 1 "use --existing-token" \
	"$CUSTODY" -c second.conf init --so-pin-file "$T/so.pin"
check "init --existing-token adopts it" "$CUSTODY" -c second.conf init --existing-token
check "the adopted token got its own service keys" test \
	"$("$CUSTODY" -c second.conf key list --json | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2
expect_fail "--existing-token takes no SO PIN" 2 "takes no SO PIN" \
	"$CUSTODY" -c second.conf init --existing-token --so-pin-file "$T/so.pin"

# ---- keys of every algorithm ---------------------------------------------
for alg in ed25519 ecdsa-p256 ecdsa-p384 rsa-pss-3072; do
	check "key create $alg" C key create --agent "spiffe://example.org/agent/$alg" \
		--owner team-a --purpose jwt --alg "$alg" --max-age 7d --ttl 30d --json
	C key list --json >keys.json
	json keys.json "[k for k in d if k['alg']=='$alg'][0]['id']" >"$alg.id"
done
C key show "$(cat ecdsa-p256.id)" --json >p256.json
check "show: agent, purpose, state, durations" test \
	"$(json p256.json "d['agent'],d['purpose'],d['state'],d['max_age'],d['ttl']")" = \
	"spiffe://example.org/agent/ecdsa-p256 jwt active 604800 2592000"
check "show: URI names the token and the CKA_ID" test \
	"$(json p256.json "d['uri']")" = "pkcs11:token=custody-cli;id=$(sed 's/^k_//; s/../%&/g' ecdsa-p256.id)"

# The token's own view, through OpenSC: every private key sensitive, never
# extractable, local, sign-only.
check "pkcs11-tool lists the private keys" \
	P11 --login --pin "$USER_PIN" --list-objects --type privkey >privkeys.txt 2>p11.err
for alg in ed25519 ecdsa-p256 ecdsa-p384 rsa-pss-3072; do
	id=$(sed 's/^k_//' "$alg.id")
	block=$(grep -A4 "ID:         $id" privkeys.txt || true)
	check "pkcs11-tool: $alg key is sensitive, never extractable, local" \
		grep -q "Access:     sensitive, always sensitive, never extractable, local" <<<"$block"
	check "pkcs11-tool: $alg key usage is sign only" grep -q "Usage:      sign$" <<<"$block"
done

# The registered SPKI is the token's public key (pkcs11-tool reads EC and RSA
# SPKIs itself), and its kid is RFC 7638 as python3-jwcrypto computes it.
for alg in ed25519 ecdsa-p256 ecdsa-p384 rsa-pss-3072; do
	id=$(cat "$alg.id")
	C key show "$id" --json >"$alg.json"
	json "$alg.json" "d['spki']" | base64 -d >"$alg.spki.der"
	case $alg in
	ecdsa-p256 | rsa-pss-3072)
		P11 --read-object --type pubkey --id "${id#k_}" -o "$alg.p11.der" >/dev/null 2>&1 || true
		check "$alg: SPKI equals the token's public key" cmp -s "$alg.spki.der" "$alg.p11.der"
		;;
	*)
		# pkcs11-tool 0.23 cannot write Ed25519 or P-384 SPKIs: compare
		# the token's CKA_EC_POINT (a DER OCTET STRING) with the SPKI's key
		pt=$(P11 --list-objects --type pubkey 2>/dev/null |
			grep -B3 "label:      $id" | awk '/EC_POINT:/{print $2}' | cut -c5-)
		n=$((${#pt} / 2))
		check "$alg: SPKI holds the token's EC_POINT" test -n "$pt" -a \
			"$(tail -c "$n" "$alg.spki.der" | xxd -p -c 256)" = "$pt"
		;;
	esac
	check "$alg: openssl parses the SPKI" openssl pkey -pubin -inform DER -in "$alg.spki.der" -noout
	kid=$($PY - "$alg.spki.der" <<'EOF'
import sys
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk
der = open(sys.argv[1], 'rb').read()
pem = serialization.load_der_public_key(der).public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
print(jwk.JWK.from_pem(pem).thumbprint())
EOF
)
	check "$alg: kid is the RFC 7638 thumbprint (jwcrypto)" test "$kid" = "$(json "$alg.json" "d['kid']")"
done

# ---- uniqueness, bad input, clear errors ------------------------------------
expect_fail "second active key for agent and purpose" 1 "already active" \
	C key create --agent spiffe://example.org/agent/ed25519 --owner team-a --purpose jwt --alg ed25519
check "a task key for the same agent is fine" C key create --agent spiffe://example.org/agent/ed25519 \
	--owner team-a --purpose jwt --alg ed25519 --task build-42 --ttl 15m
expect_fail "a task key without a ttl is refused (it would outlive a lost task.completed)" 1 \
	"needs a ttl" C key create --agent spiffe://example.org/agent/ed25519 --owner team-a \
	--purpose jwt --alg ed25519 --task build-43
expect_fail "unknown algorithm" 2 "unknown algorithm 'ed448'" \
	C key create --agent a --owner o --purpose jwt --alg ed448
expect_fail "unknown purpose" 1 "unknown purpose 'email'" \
	C key create --agent a --owner o --purpose email --alg ed25519
expect_fail "bad duration" 2 "bad --ttl '10 years'" \
	C key create --agent a --owner o --purpose jwt --alg ed25519 --ttl "10 years"
expect_fail "control character in agent" 1 "agent must be UTF-8 text" \
	C key create --agent "$(printf 'a\nb')" --owner o --purpose jwt --alg ed25519
expect_fail "missing options" 2 "are required" C key create --agent a
expect_fail "unknown key" 1 "key not found" C key show k_0123456789abcdef
expect_fail "malformed key id" 2 "is not a key id" C key show 12345

objects_before=$(P11 --login --pin "$USER_PIN" --list-objects 2>/dev/null | grep -c "^[A-Z].*Object" || true)
cp user.pin good.pin
chmod 644 user.pin
expect_fail "PIN file readable by others is refused" 1 "chmod 600" \
	C key create --agent b --owner o --purpose jwt --alg ed25519
rm -f user.pin && (umask 077 && printf 'wrong-pin\n' >user.pin)
expect_fail "wrong PIN: clear message and hint" 1 "never retries" \
	C key create --agent b --owner o --purpose jwt --alg ed25519
cp good.pin user.pin && chmod 600 user.pin
sed 's/token=custody-cli/token=no-such-token/' custody.conf >other.conf
expect_fail "missing token" 1 "token not found" \
	"$CUSTODY" -c other.conf key create --agent b --owner o --purpose jwt --alg ed25519
sed 's#pkcs11-module .*#pkcs11-module /nonexistent/lib.so#' custody.conf >nomod.conf
expect_fail "missing module" 1 "cannot load the PKCS#11 module" \
	"$CUSTODY" -c nomod.conf key create --agent b --owner o --purpose jwt --alg ed25519
printf 'tokn pkcs11:token=x\n' >typo.conf
expect_fail "unknown configuration keyword names file and line" 1 "typo.conf:1: unknown keyword 'tokn'" \
	"$CUSTODY" -c typo.conf key list
objects_after=$(P11 --login --pin "$USER_PIN" --list-objects 2>/dev/null | grep -c "^[A-Z].*Object" || true)
check "failed commands changed nothing on the token" test "$objects_before" = "$objects_after"

# The data directory lock: direct mode refuses while another process holds it.
flock "$T/data/custody.lock" sleep 3 &
sleep 0.5
expect_fail "data directory held by another process" 1 "in use by another process" C key list
wait

# A key is only destroyed through the token its URI names: pointed at
# another token, destroy refuses instead of "finding nothing".
# (labels that are not prefixes of one another: pkcs11-tool --token-label
# matches a prefix, custody matches exactly)
sed -e "s#data-dir .*#data-dir $T/data3#" -e 's/token=custody-cli$/token=third-cli/' custody.conf >third.conf
rm -f so3.pin && (umask 077 && printf 'cli-so-pin-3\n' >so3.pin)
check "init of a third token" "$CUSTODY" -c third.conf init --so-pin-file "$T/so3.pin"
sed 's/token=custody-cli$/token=third-cli/' custody.conf >wrongtok.conf
expect_fail "destroy through another token is refused" 1 "held by pkcs11:token=custody-cli;" \
	"$CUSTODY" -c wrongtok.conf key destroy "$(cat ed25519.id)" --reason test
check "the key is still active" test "$(C key show "$(cat ed25519.id)" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = active

# ---- destroy -----------------------------------------------------------------
id=$(cat ecdsa-p384.id)
check "destroy" C key destroy "$id" --reason "agent retired" --json
C key show "$id" --json >destroyed.json
check "destroyed key: state and reason recorded" test \
	"$(json destroyed.json "d['state'],d['destroy_reason']")" = "destroyed agent retired"
# (the listing must have worked: an empty one would "prove" anything)
check "pkcs11-tool lists the token after destroy" \
	P11 --login --pin "$USER_PIN" --list-objects >after-destroy.txt 2>p11.err
check "pkcs11-tool listing is not empty" grep -q "Private Key Object" after-destroy.txt
check "pkcs11-tool: no object with the destroyed CKA_ID" not grep -q "ID:         ${id#k_}" after-destroy.txt
check "pkcs11-tool: other keys remain" grep -q "ID:         $(sed 's/^k_//' ed25519.id)" after-destroy.txt
expect_fail "destroy twice" 1 "destroyed already" C key destroy "$id" --reason again
expect_fail "destroy needs a reason" 2 "--reason is required" C key destroy "$(cat ed25519.id)"
check "a destroyed key frees its agent and purpose" C key create \
	--agent spiffe://example.org/agent/ecdsa-p384 --owner team-a --purpose jwt --alg ecdsa-p384
check "list --state destroyed" test "$(C key list --state destroyed --json | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1

# ---- a failed init is undone, and can be finished ----------------------------
# A SoftHSM2 without EdDSA and ECDSA: the token is initialised, the service
# keys cannot be made; nothing is left half-done, and once the token is
# fixed, init --existing-token finishes the job.
mkdir -p "$T/data4/softhsm2/tokens" && chmod -R 700 "$T/data4"
cat >"$T/data4/softhsm2/softhsm2.conf" <<CONF
directories.tokendir = $T/data4/softhsm2/tokens
objectstore.backend = file
log.level = ERROR
slots.mechanisms = -,CKM_EC_EDWARDS_KEY_PAIR_GEN,CKM_EDDSA,CKM_ECDSA
CONF
sed -e "s#data-dir .*#data-dir $T/data4#" -e 's/token=custody-cli$/token=fourth-cli/' \
	-e "s#SOFTHSM2_CONF=.*#SOFTHSM2_CONF=$T/data4/softhsm2/softhsm2.conf#" custody.conf >fourth.conf
rm -f so4.pin && (umask 077 && printf 'cli-so-pin-4\n' >so4.pin)
expect_fail "init on a token without the service key algorithms fails" 1 "algorithm not supported" \
	"$CUSTODY" -c fourth.conf init --so-pin-file "$T/so4.pin"
check "  and says how to finish" grep -q "init --existing-token" err.txt
check "  and leaves no store behind" test ! -e "$T/data4/custody.db" -a ! -e "$T/data4/custody.db.init"
sed -i 's/^slots.mechanisms = .*/slots.mechanisms = ALL/' "$T/data4/softhsm2/softhsm2.conf"
check "init --existing-token finishes it" "$CUSTODY" -c fourth.conf init --existing-token
check "  with its two service keys" test \
	"$("$CUSTODY" -c fourth.conf key list --json | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2

# ---- the audit log, read without custody ---------------------------------------
# Every key change left a leaf in the same transaction: Python's sqlite3 and
# hashlib check the leaves (RFC 6962 leaf hash of the exact bytes, seq
# contiguous from 0, v1 shape) and that they match the registry.
cat >audit_check.py <<'PY'
import hashlib, json, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
leaves = db.execute("SELECT seq, data, hash FROM audit_leaves ORDER BY seq").fetchall()
keys = db.execute("SELECT id, state, destroy_reason FROM keys").fetchall()
assert [s for s, _, _ in leaves] == list(range(len(leaves))), "seq not contiguous"
events = {}
for seq, data, h in leaves:
    assert hashlib.sha256(b"\x00" + data).digest() == h, "leaf %d hash" % seq
    o = json.loads(data)
    assert list(o)[:3] == ["v", "seq", "time"] and o["v"] == 1 and o["seq"] == seq
    assert o["decision"] == "allow" and o["policy"]["rule"] == "(direct)"
    assert o["principal"].startswith("unix:uid=")
    events.setdefault(o["event"], []).append(o)
created = {o["key"]["id"] for o in events.get("key.create", [])}
assert created == {k for k, _, _ in keys}, "a key without its key.create leaf"
for k, state, reason in keys:
    if state == "destroyed":
        d = [o for o in events["key.destroy"] if o["key"]["id"] == k]
        assert len(d) == 1 and d[0]["detail"]["reason"] == reason
        assert d[0]["detail"]["evidence"] == {"objects_destroyed": 2, "objects_found_after": 0}
print("%d leaves, %d keys" % (len(leaves), len(keys)))
PY
check "audit log: leaves match the registry (python3 sqlite3 + hashlib)" $PY audit_check.py "$T/data/custody.db"

# ---- signed checkpoints ---------------------------------------------------------
# custody signs the tree in the token; Python checks the note with its own
# RFC 6962 root from the stored leaves and python3-cryptography's Ed25519.
C audit vkey >vkeys.txt
check "audit vkey: one verifier key per checkpoint key" test "$(wc -l <vkeys.txt)" = 1
C audit checkpoint >ckpt1.txt
cat >note_check.py <<'PY'
import base64, hashlib, sqlite3, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
note, vkey, db = open(sys.argv[1], "rb").read(), open(sys.argv[2]).read().split()[0], sys.argv[3]
name, keyid, key = vkey.split("+", 2)  # base64 may hold "+"
key = base64.b64decode(key)
assert key[0] == 1 and len(key) == 33
assert hashlib.sha256(name.encode() + b"\n\x01" + key[1:]).digest()[:4].hex() == keyid
text, sigs = note.split(b"\n\n", 1)
text += b"\n"
origin, size, root = text.decode().splitlines()
assert origin == name
ok = 0
for line in sigs.decode().splitlines():
    dash, n, b = line.split(" ")
    assert dash == "\u2014"
    raw = base64.b64decode(b)
    if n == name and raw[:4].hex() == keyid:
        Ed25519PublicKey.from_public_bytes(key[1:]).verify(raw[4:], text)
        ok += 1
assert ok == 1, "no signature by the vkey"
leaves = [hashlib.sha256(b"\x00" + d).digest() for (d,) in
          sqlite3.connect("file:%s?mode=ro" % db, uri=True).execute("SELECT data FROM audit_leaves ORDER BY seq")]
def mth(h):
    if len(h) == 1:
        return h[0]
    k = 1
    while k * 2 < len(h):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(h[:k]) + mth(h[k:])).digest()
assert int(size) <= len(leaves) and base64.b64decode(root) == mth(leaves[:int(size)]), "root"
print("checkpoint of size", size, "verified")
PY
check "checkpoint verifies (python3-cryptography, own RFC 6962 root)" $PY note_check.py ckpt1.txt vkeys.txt "$T/data/custody.db"
check "the same size is not signed again" test "$(C audit checkpoint --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["new"])')" = False
cp "$T/data/custody.db" "$T/db.before"
C key create --agent spiffe://example.org/agent/late --owner team-a --purpose jwt --alg ed25519 >/dev/null
C audit checkpoint >ckpt2.txt
check "a grown log gets a new checkpoint" test "$(sed -n 2p ckpt2.txt)" -gt "$(sed -n 2p ckpt1.txt)"
check "  which verifies too" $PY note_check.py ckpt2.txt vkeys.txt "$T/data/custody.db"
check "the checkpoint is kept outside the database" cmp -s ckpt2.txt "$T/data/checkpoint"
# roll the database back to before the last checkpoint: refused (G3)
cp "$T/data/custody.db" "$T/db.after"
rm -f "$T/data/custody.db-wal" "$T/data/custody.db-shm"
cp "$T/db.before" "$T/data/custody.db"
expect_fail "a rolled-back database is refused" 1 "rolled back" C audit checkpoint
expect_fail "  by every command, before it changes anything" 1 "rolled back" \
	C key create --agent spiffe://example.org/agent/fork --owner x --purpose jwt --alg ed25519
expect_fail "  even one that only reads" 1 "rolled back" C key list
cp "$T/db.after" "$T/data/custody.db"
check "  and the real one is accepted again" C audit checkpoint
rm "$T/data/checkpoint"
check "a lost copy outside the database is written again" C key list
check "  with the last checkpoint" cmp -s ckpt2.txt "$T/data/checkpoint"

# ---- the PIN never leaks (G8) -------------------------------------------------
leak=0
for f in "$T"/*.txt "$T"/*.json "$T"/all.log data/custody.db data/custody.db-wal; do
	[ -f "$f" ] || continue
	if grep -qaF "$USER_PIN" "$f" || grep -qaF "$SO_PIN" "$f"; then leak=1; echo "PIN found in $f"; fi
done
check "no PIN in any output or in the store" test $leak = 0

finish
