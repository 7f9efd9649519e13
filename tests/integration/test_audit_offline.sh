#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The auditor's side of the audit log, on real SoftHSM2 tokens made here:
# 'custody audit export', 'verify' and 'prove' on a log of several tiles
# whose checkpoint key rotated from Ed25519 to ECDSA P-256; everything is
# checked again by tlog_check.py (python3-cryptography and an RFC 9162
# implementation custody did not write). Then tampering: a flipped byte, a
# deleted leaf, a truncated tail, a forged tile or signature in an export
# are each named by 'audit verify'; the same in the database is refused by
# export or at start-up, as is a rolled-back database. Last, a token
# without EdDSA signs checkpoints with ECDSA P-256 alone.
#
# usage: test_audit_offline.sh CUSTODY_BINARY SOFTHSM2_MODULE AUDIT_CRASH_BINARY
set -euo pipefail

CUSTODY=$1
MODULE=$2
DRIVER=$3
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/custody-audit-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
TLOG() { $PY "$HERE/tlog_check.py" "$@"; }

(umask 077 && printf 'audit-user-pin-41\n' >user.pin && printf 'audit-so-pin-17\n' >so.pin)
C() { "$CUSTODY" -c "$T/log.conf" "$@"; }
fill() { "$DRIVER" fill "$T/log/custody.db" "$1" >/dev/null; }
json() { $PY -c "import json,sys; d=json.load(open('$1')); print($2)"; }

# ---- a log of several tiles, two checkpoint keys -------------------------------
custody_datadir log
expect_fail "export before any checkpoint" 1 "no checkpoint was ever signed" C audit export ex0
C audit vkey >vkey-ed25519
fill 600
C audit checkpoint >/dev/null
fill 300
C audit checkpoint >/dev/null
# rotation: a P-256 checkpoint key joins, then the Ed25519 one is destroyed
C key create --agent custody:checkpoint-p256 --owner security --purpose checkpoint \
	--alg ecdsa-p256 >/dev/null
C audit vkey >vkeys-both
check "two checkpoint keys, two vkeys" test "$(wc -l <vkeys-both)" = 2
grep -v -F -f vkey-ed25519 vkeys-both >vkey-p256
fill 10
C audit checkpoint >ckpt-both
check "  and two signature lines" test "$(grep -c '^— ' ckpt-both)" = 2
old=$(C key list --json | $PY -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["purpose"] == "checkpoint" and k["alg"] == "ed25519"][0])')
C key destroy "$old" --reason rotated >/dev/null
fill 5
C audit checkpoint >ckpt-last
check "after the rotation one line, by the P-256 key" test "$(grep -c '^— ' ckpt-last)" = 1
fill 3 # not under any checkpoint: not exported
size=$(sed -n 2p ckpt-last)

C audit export ex --json >export.json
check "export: the tree of the last checkpoint" test "$(json export.json "d['size']")" = "$size"
check "  3 leaves after it are left out" test "$(json export.json "d['unsigned_leaves']")" = 3
check "  every checkpoint under checkpoints/" test "$(ls ex/checkpoints | wc -l)" = 4
check "  full and partial tiles on two levels" test -f ex/tile/0/001 -a -f ex/tile/entries/001 \
	-a -f "ex/tile/1/000.p/$((size / 256))" -a -f "ex/tile/0/003.p/$((size % 256))"
check "  the checkpoint is the last one" cmp -s ex/checkpoint ckpt-last
expect_fail "export into a non-empty directory" 1 "exists and is not empty" C audit export ex
check "verify with both vkeys" "$CUSTODY" audit verify ex --vkey-file vkeys-both
check "  needs no configuration (a bad one is not read)" env CUSTODY_CONF=/nonexistent \
	"$CUSTODY" audit verify ex --vkey "$(cat vkey-ed25519)" --vkey "$(cat vkey-p256)"
"$CUSTODY" audit verify ex --vkey-file vkeys-both --json >verify.json
check "  --json" test "$(json verify.json "(d['verified'], d['size'], d['checkpoints'])")" = "(True, $size, 4)"
expect_fail "the new key alone cannot vouch for older checkpoints" 1 \
	"checkpoints/602: not signed by any of the given verifier keys" \
	"$CUSTODY" audit verify ex --vkey-file vkey-p256
expect_fail "the old key alone cannot vouch for newer ones (a key created, not handed over to)" 1 \
	"not signed by any of the given verifier keys, nor by a checkpoint key that the leaves before it hand over to" \
	"$CUSTODY" audit verify ex --vkey-file vkey-ed25519
check "python3: the export verifies (tiles, roots, both signature types)" TLOG export ex vkeys-both

# ---- proofs ----------------------------------------------------------------------
for i in 0 255 256 700 $((size - 1)); do
	C audit prove --index "$i" --json >"prove-$i.json"
	check "prove --index $i verifies in python3" TLOG prove "prove-$i.json" vkeys-both
done
C audit prove --from 602 --json >from.json
check "prove --from 602 verifies in python3" TLOG prove from.json vkeys-both
C audit prove --from 700 --json >from700.json
check "prove --from a size never signed (no older checkpoint shown)" \
	$PY -c "import json; d = json.load(open('from700.json')); assert d['from'] == 700 and 'from_checkpoint' not in d"
C audit prove --index 10 --size 902 --json >old.json
check "prove --size: against an older checkpoint" TLOG prove old.json vkeys-both
sed 's/"inclusion": \[/"inclusion": ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",/' old.json >bad.json
check "  and python3 rejects a padded proof" not TLOG prove bad.json vkeys-both
C audit prove --index 3 >text.txt
check "prove prints text too" grep -q "^leaf-hash " text.txt
expect_fail "prove --index past the tree" 2 "is not in the tree of size $size" C audit prove --index "$size"
expect_fail "prove --from 0" 2 "--from must be between 1" C audit prove --from 0
expect_fail "prove at a size never signed" 1 "no checkpoint was signed at size 5" C audit prove --index 1 --size 5
expect_fail "prove needs --index or --from" 2 "give either --index or --from" C audit prove

# ---- tampering with an export ----------------------------------------------------
tamper() { rm -rf t && cp -r ex t; }
flip() { # flip FILE OFFSET: invert one byte
	$PY -c "import sys; p, o = sys.argv[1], int(sys.argv[2]); b = bytearray(open(p, 'rb').read()); b[o] ^= 0xff; open(p, 'wb').write(b)" "$@"
}
V="--vkey-file vkeys-both"
tamper && flip t/tile/entries/001 20
# shellcheck disable=SC2086
expect_fail "a flipped byte: the leaf is named" 1 "leaf 256 (tile/entries/001, entry 0) was altered" \
	"$CUSTODY" audit verify t $V
check "  and python3 fails too" not TLOG export t vkeys-both
tamper && $PY - t/tile/entries/001 <<'PY'
import sys
p = sys.argv[1]
b = open(p, "rb").read()
n = int.from_bytes(b[:2], "big") + 2
# drop leaf 256 (the first entry) and keep the rest
open(p, "wb").write(b[n:])
PY
# shellcheck disable=SC2086
expect_fail "a deleted leaf" 1 "tile/entries/001: malformed: 255 entries where 256 are due: leaves are missing" \
	"$CUSTODY" audit verify t $V
last=$(ls ex/tile/entries/003.p)
tamper && truncate -s -7 "t/tile/entries/003.p/$last"
# shellcheck disable=SC2086
expect_fail "a truncated tail" 1 "tile/entries/003.p/$last: malformed: entry $((last - 1)) is cut short" \
	"$CUSTODY" audit verify t $V
tamper && rm "t/tile/entries/003.p/$last"
# shellcheck disable=SC2086
expect_fail "a missing tail" 1 "tile/entries/003.p/$last: missing (leaves 768 to $((size - 1)))" \
	"$CUSTODY" audit verify t $V
tamper && flip t/tile/0/002 $((32 * 9 + 5))
# shellcheck disable=SC2086
expect_fail "a forged hash tile" 1 "tile/0/002: hash 9 differs from the one recomputed from the entries" \
	"$CUSTODY" audit verify t $V
# another base64 character, so that the line still parses
tamper && $PY -c "import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[-10] = ord('B') if b[-10] != ord('B') else ord('C'); open(p, 'wb').write(b)" t/checkpoints/902
# shellcheck disable=SC2086
expect_fail "a forged signature" 1 "checkpoints/902: the signature by audit-log.test/log+" \
	"$CUSTODY" audit verify t $V
tamper && cp t/checkpoints/902 t/checkpoint
# shellcheck disable=SC2086
expect_fail "an older checkpoint passed off as the last" 1 "checkpoint (size 902) is older than checkpoints/$size" \
	"$CUSTODY" audit verify t $V
tamper && cp t/checkpoints/602 t/checkpoints/912
# shellcheck disable=SC2086
expect_fail "a checkpoint under another size" 1 "checkpoints/912: holds the checkpoint of size 602" \
	"$CUSTODY" audit verify t $V
tamper && rm -r t/checkpoints
check "an export without checkpoints/ verifies against its checkpoint" "$CUSTODY" audit verify t $V
tamper && rm t/checkpoints/602 && mkfifo t/checkpoints/602
# shellcheck disable=SC2086
expect_fail "a FIFO in place of a file does not hang verify" 1 "checkpoints/602: cannot be read" \
	timeout 20 "$CUSTODY" audit verify t $V
expect_fail "a bad vkey is a usage error" 2 "bad verifier key" "$CUSTODY" audit verify ex --vkey nonsense
expect_fail "verify needs a vkey" 2 "give the verifier keys" "$CUSTODY" audit verify ex

# ---- tampering with the database ---------------------------------------------------
DB=$T/log/custody.db
cp "$DB" db.good
sql() { $PY -c "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.executescript(sys.argv[2]); db.commit()" "$DB" "$1"; }
sql "UPDATE audit_leaves SET data = CAST(replace(CAST(data AS TEXT), '\"seq\":300', '\"seq\":301') AS BLOB) WHERE seq = 300"
expect_fail "a flipped byte in a stored leaf: export names it" 1 "leaf 300: its bytes do not match its stored hash" \
	C audit export ex2
check "  and writes nothing" test ! -e ex2
cp db.good "$DB"
$PY - "$DB" <<'PY'
import hashlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
d = db.execute("SELECT data FROM audit_leaves WHERE seq = 300").fetchone()[0].replace(b"test.fill", b"test.fil1")
db.execute("UPDATE audit_leaves SET data = ?, hash = ? WHERE seq = 300", (d, hashlib.sha256(b"\0" + d).digest()))
db.commit()
PY
expect_fail "  and one altered with its hash: export names it too" 1 "leaf 300: its bytes and hash are not the tree's" \
	C audit export ex2
cp db.good "$DB"
sql "UPDATE audit_leaves SET data = CAST(replace(CAST(data AS TEXT), '\"seq\":5', '\"seq\":6') AS BLOB) WHERE seq = 5"
expect_fail "  prove refuses an altered leaf" 1 "its bytes do not match its hash: the database was altered" C audit prove --index 5
cp db.good "$DB"
check "export into DIR/ (a trailing slash)" C audit export ex3/
check "  makes DIR" test -f ex3/checkpoint
sql "DELETE FROM audit_leaves WHERE seq = 17"
expect_fail "a deleted leaf: export names it" 1 "leaf 17 is missing from the database" C audit export ex2
cp db.good "$DB"
sql "DELETE FROM audit_leaves WHERE seq >= 700"
expect_fail "a truncated tail is refused at start-up" 1 "its tail was deleted" C key list
cp db.good "$DB"
sql "DELETE FROM audit_leaves WHERE seq >= 700; DELETE FROM merkle_nodes WHERE (idx << level) + (1 << level) > 700"
expect_fail "  even with the tree cut to match" 1 "the database was rolled back or truncated" C key list
cp db.good "$DB"
cp "$DB" db.old
C key create --agent spiffe://example.org/agent/late --owner team --purpose jwt --alg ed25519 >/dev/null
C audit checkpoint >/dev/null
cp "$DB" db.after
cp db.old "$DB"
expect_fail "a rolled-back database is refused at start-up" 1 "refusing to use it" C key list
check "  and says why" grep -q "rolled back" err.txt
# restored together with the file copy: the token keeps one too
cp db.old "$DB"
rm -f "$T/log/checkpoint"
expect_fail "restored with the file copy: the token's copy refuses it" 1 \
	"the checkpoint kept in the token was signed at" \
	C key create --agent spiffe://example.org/agent/fork --owner team --purpose jwt --alg ed25519
cp db.after "$DB"
check "  and the real database is accepted again" C key list

# ---- a token without EdDSA: checkpoints signed with ECDSA P-256 alone -------------
custody_datadir p256 "-,CKM_EC_EDWARDS_KEY_PAIR_GEN,CKM_EDDSA"
P() { "$CUSTODY" -c "$T/p256.conf" "$@"; }
check "the checkpoint key is ECDSA P-256" test "$(P key list --json | $PY -c 'import json,sys; print([k["alg"] for k in json.load(sys.stdin) if k["purpose"] == "checkpoint"])')" = "['ecdsa-p256']"
P key create --agent spiffe://example.org/agent/a --owner team --purpose jwt --alg ecdsa-p256 >/dev/null
P audit checkpoint >/dev/null
P audit vkey >vkey-tpmlike
check "  its vkey is of type 0x02" $PY -c "import base64,sys; assert base64.b64decode(open('vkey-tpmlike').read().split('+', 2)[2])[0] == 2"
P audit export ex-p256 >/dev/null
check "  custody verifies its export" "$CUSTODY" audit verify ex-p256 --vkey-file vkey-tpmlike
check "  and so does python3-cryptography" TLOG export ex-p256 vkey-tpmlike

finish
