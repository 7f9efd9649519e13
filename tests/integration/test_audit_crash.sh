#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# SIGKILL while many appends are in flight, three times on the same log:
# every append that had returned success is in the log after the restart,
# the log is a contiguous prefix, its stored tree agrees with one rebuilt
# from the leaves, and it goes on growing. Checked by the driver (custody's
# code) and again by Python's sqlite3 and hashlib.
#
# usage: test_audit_crash.sh AUDIT_CRASH_BINARY
set -euo pipefail

DRIVER=$1
T=$(mktemp -d /tmp/custody-crash-XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$T"' EXIT
DB=$T/custody.db
pass=0
fail=0

for round in 1 2 3; do
	"$DRIVER" append "$DB" 16 >"$T/acks$round" &
	pid=$!
	# let appends pile up, then kill at an arbitrary moment
	sleep "0.$((RANDOM % 5 + 4))"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	acks=$(grep -c '^ack ' "$T/acks$round" || true)
	if "$DRIVER" verify "$DB" "$T/acks$round"; then
		pass=$((pass + 1)); echo "ok - round $round: $acks acknowledged appends survived SIGKILL"
	else
		fail=$((fail + 1)); echo "not ok - round $round"
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
		pass=$((pass + 1)); echo "ok - round $round: python3 finds every acknowledged leaf"
	else
		fail=$((fail + 1)); echo "not ok - round $round: python3 check"
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
