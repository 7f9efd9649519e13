# SPDX-License-Identifier: Apache-2.0
# Shared by the shell integration tests (sourced): TAP-like results.
#   check "description" command...       passes if the command succeeds
#   expect_fail "description" EXIT_CODE "text in stderr" command...
#   finish                                prints the counts; fails if any failed
#   custody_datadir NAME [MECHANISMS]     an initialised data directory
#                                         $T/NAME, configured by $T/NAME.conf
#   leaves EXPR... / nleaves              the leaves of $DB (custodyd tests)
#   ckpt_size                             tree size of $T/d/checkpoint
#   wait_for WHAT COMMAND...              poll COMMAND for up to 60 s
# expect_fail leaves the command's output in out.txt and err.txt of the
# current directory.

pass=0
fail=0
not() { ! "$@"; }
ok() { pass=$((pass + 1)); echo "ok - $*"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
expect_fail() {
	local what=$1 code=$2 text=$3 rc=0
	shift 3
	"$@" >out.txt 2>err.txt || rc=$?
	if [ "$rc" -eq "$code" ] && grep -qF -- "$text" err.txt; then
		ok "$what"
	else
		not_ok "$what (exit $rc, stderr: $(tr '\n' ' ' <err.txt))"
	fi
}
finish() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

# custody_datadir NAME [MECHANISMS]: data directory $T/NAME on a SoftHSM2
# token of its own (audit-NAME; its slots.mechanisms limited to MECHANISMS),
# initialised with the PINs in $T/user.pin and $T/so.pin, log origin
# audit-NAME.test/log. Needs $T, $CUSTODY and $MODULE.
custody_datadir() {
	local name=$1 mechs=${2:-ALL}
	mkdir -p "$T/$name/softhsm2/tokens" && chmod -R 700 "$T/$name"
	cat >"$T/$name/softhsm2/softhsm2.conf" <<CONF
directories.tokendir = $T/$name/softhsm2/tokens
objectstore.backend = file
log.level = ERROR
slots.mechanisms = $mechs
CONF
	cat >"$T/$name.conf" <<CONF
data-dir $T/$name
pkcs11-module $MODULE
token pkcs11:token=audit-$name
pin-file $T/user.pin
pkcs11-env SOFTHSM2_CONF=$T/$name/softhsm2/softhsm2.conf
log-origin audit-$name.test/log
CONF
	"$CUSTODY" -c "$T/$name.conf" init --so-pin-file "$T/so.pin" >/dev/null
}

# leaves EXPR...: one line per leaf of the store $DB, read-only (python
# expressions on the leaf l, run by $PY, Debian's interpreter)
leaves() {
	$PY - "$DB" "$@" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
for (data,) in db.execute("SELECT data FROM audit_leaves ORDER BY seq"):
    l = json.loads(data)
    print(" ".join(str(eval(e, {"l": l})) for e in sys.argv[2:]))
PY
}
nleaves() { leaves 1 | wc -l; }
# the tree size of the last checkpoint kept outside the database of $T/d
ckpt_size() { sed -n 2p "$T/d/checkpoint" 2>/dev/null || echo 0; }
# wait_for WHAT COMMAND...: poll for up to 60 s
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < 600; i++)); do
		if "$@"; then return 0; fi
		sleep 0.1
	done
	echo "# timed out waiting for $what" >&2
	return 1
}

# ---- a custodyd under test (needs $DAEMON, $CONF, a pids array, $PY) -----------

# started NAME: custodyd ($pid) said it is ready in NAME.err, or died
started() { grep -q "ready:" "$1.err" || ! kill -0 "$pid" 2>/dev/null; }
# try_start NAME [VAR=VALUE...]: custodyd in the background with that
# environment, its stderr in NAME.err, its pid in $pid and pids[]; 0 once it
# is ready, 1 if it died first
try_start() {
	local name=$1
	shift
	env "$@" "$DAEMON" -c "$CONF" 2>"$name.err" &
	pid=$!
	pids+=("$pid")
	wait_for "custodyd ready" started "$name"
	grep -q "ready:" "$name.err"
}
# start NAME [VAR=VALUE...]: try_start, showing custodyd's stderr if it died
start() {
	try_start "$@" && return 0
	echo "# custodyd did not start:" >&2
	cat "$1.err" >&2
	return 1
}
stop() { # stop SIGNAL: send it and wait; the exit status in $rc
	rc=0
	kill -"$1" "$pid"
	wait "$pid" || rc=$?
}
asan_clean() { # asan_clean FILE: no sanitizer report in custodyd's stderr (else shown)
	if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: " "$1"; then
		sed -n '/Sanitizer\|runtime error:/,$p' "$1" | head -200 | sed 's/^/# /' >&2
		return 1
	fi
}
# jget FILE EXPR: a python expression on the JSON document d of FILE
jget() { $PY -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
# count EVENT DECISION: the number of leaves of that event and decision
count() { leaves 'l["event"]' 'l.get("decision")' | grep -c "^$1 $2\$" || true; }

# ---- the lifecycle tests' data directory d (need $CUSTODY, $CONF, $MODULE,
# $CLOCK and user.pin) ------------------------------------------------------------
C() { "$CUSTODY" -c "$CONF" "$@"; }
P11() { pkcs11-tool --module "$MODULE" --token-label audit-d "$@"; }
# objects ID: the number of token objects with that key's CKA_ID
objects() {
	P11 --login --pin "$(cat user.pin)" --list-objects 2>/dev/null |
		grep -c "ID:  *${1#k_}\$" || true
}
advance() { echo "$1" >"$CLOCK"; } # the clock's offset, in seconds
keystate() { C key show "$1" --json | jget /dev/stdin 'd["state"]'; }
