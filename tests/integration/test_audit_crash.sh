#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# SIGKILL while many appends are in flight, three times on the same log:
# every append that had returned success is in the log after the restart,
# the log is a contiguous prefix, its stored tree agrees with one rebuilt
# from the leaves, and it goes on growing. Checked by the driver (custody's
# code) and again by Python's sqlite3 and hashlib. The log is that of a
# real data directory: afterwards custody signs a checkpoint in its token,
# exports the log, and 'custody audit verify' passes on the export, as does
# tlog_check.py.
#
# usage: test_audit_crash.sh AUDIT_CRASH_BINARY CUSTODY_BINARY SOFTHSM2_MODULE
set -euo pipefail

DRIVER=$1
CUSTODY=$2
MODULE=$3
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/custody-crash-XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
cd "$T"
(umask 077 && printf 'crash-user-pin-5\n' >user.pin && printf 'crash-so-pin-9\n' >so.pin)
custody_datadir crash
DB=$T/crash/custody.db

for round in 1 2 3; do
	"$DRIVER" append "$DB" 16 >"$T/acks$round" &
	pid=$!
	# let appends pile up, then kill at an arbitrary moment
	sleep "0.$((RANDOM % 5 + 4))"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	acks=$(grep -c '^ack ' "$T/acks$round" || true)
	if "$DRIVER" verify "$DB" "$T/acks$round"; then
		ok "round $round: $acks acknowledged appends survived SIGKILL"
	else
		not_ok "round $round"
	fi
	if /usr/bin/python3 - "$DB" "$T/acks$round" <<'PY'; then
import hashlib, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
rows = dict((s, (d, h)) for s, d, h in db.execute("SELECT seq, data, hash FROM audit_leaves"))
assert sorted(rows) == list(range(len(rows))), "not a contiguous prefix"
for s, (d, h) in rows.items():
    assert hashlib.sha256(b"\x00" + d).digest() == h, "leaf %d" % s
n = 0
for line in open(sys.argv[2]):
    p = line.split()
    if len(p) != 3 or p[0] != "ack" or len(p[2]) != 64 or not line.endswith("\n"):
        continue
    s = int(p[1])
    assert s in rows and rows[s][1].hex() == p[2], "acknowledged leaf %d lost" % s
    n += 1
assert n > 0
PY
		ok "round $round: python3 finds every acknowledged leaf"
	else
		not_ok "round $round: python3 check"
	fi
done
# the survivor, signed and exported, passes the auditor's checks
C() { "$CUSTODY" -c "$T/crash.conf" "$@"; }
C audit checkpoint >/dev/null
C audit vkey >vkeys
C audit export ex >/dev/null
check "custody audit verify passes on the log after three SIGKILLs" \
	"$CUSTODY" audit verify ex --vkey-file vkeys
check "  and so does tlog_check.py" /usr/bin/python3 "$HERE/tlog_check.py" export ex vkeys
finish
