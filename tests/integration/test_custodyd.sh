#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# custodyd on a real SoftHSM2 token made here: its run in the audit log
# (service.start and service.stop, with unclean_shutdown after a SIGKILL),
# the checkpoints it signs (every checkpoint-interval when the log grew, and
# a final one over the stop leaf), the data directory it holds against the
# CLI and a second daemon, --daemon with a pid file, and the refusals that
# write nothing (no log-origin, an unsafe PIN file, a rolled-back database).
# Every export is checked by 'custody audit verify' and by tlog_check.py.
#
# usage: test_custodyd.sh CUSTODYD CUSTODY SOFTHSM2_MODULE
set -euo pipefail

DAEMON=$1
CUSTODY=$2
MODULE=$3
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib.sh
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/custody-daemon-XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T"

(umask 077 && printf 'daemon-user-pin-29\n' >user.pin && printf 'daemon-so-pin-83\n' >so.pin)
CONF=$T/d.conf
DB=$T/d/custody.db
C() { "$CUSTODY" -c "$CONF" "$@"; }

# gone PID: exited (a zombie has an empty cmdline; the daemon is not our child)
gone() { ! grep -q custodyd "/proc/$1/cmdline" 2>/dev/null; }
ckpt_at_least() { test "$(ckpt_size)" -ge "$1"; }
# start NAME: custodyd in the foreground, in the background; its stderr in NAME.err
start() {
	"$DAEMON" -c "$CONF" 2>"$1.err" &
	pid=$!
	pids+=("$pid")
	wait_for "custodyd ready" grep -q "ready:" "$1.err"
}
# stop SIGNAL: send it and wait; the exit status in $rc
stop() {
	rc=0
	kill -"$1" "$pid"
	wait "$pid" || rc=$?
}
export_verify() { # export_verify DIR: both verifiers on a fresh export
	rm -rf "$1"
	C audit export "$1" >/dev/null &&
		"$CUSTODY" audit verify "$1" --vkey-file "$T/vkeys" >/dev/null &&
		$PY "$HERE/tlog_check.py" export "$1" "$T/vkeys" >/dev/null
}

# ---- usage ---------------------------------------------------------------------
check "--help" sh -c '"$0" --help | grep -q "usage: custodyd"' "$DAEMON"
check "--version" sh -c '"$0" --version | grep -q "^custodyd [0-9]"' "$DAEMON"
expect_fail "an unknown option" 2 "usage: custodyd" "$DAEMON" --bogus
expect_fail "--pid-file needs --daemon" 2 "--pid-file needs --daemon" \
	"$DAEMON" --pid-file "$T/x.pid"
expect_fail "a missing configuration" 1 "nowhere.conf" "$DAEMON" -c "$T/nowhere.conf"

# ---- refusals that write nothing -------------------------------------------------
custody_datadir d
mv "$T/d.conf" "$CONF.full"
grep -v '^log-origin' "$CONF.full" >"$CONF"
sed "s|^data-dir .*|data-dir $T/none|" "$CONF" >none.conf
expect_fail "not initialised" 1 "is not initialised" "$DAEMON" -c none.conf
before=$(nleaves)
expect_fail "no log-origin: refused" 1 "log-origin is not set" "$DAEMON" -c "$CONF"
check "  and nothing was logged" test "$(nleaves)" = "$before"
cp "$CONF.full" "$CONF"
chmod 644 user.pin
expect_fail "a PIN file readable by others: refused" 1 "user.pin" "$DAEMON" -c "$CONF"
chmod 600 user.pin
check "  and nothing was logged" test "$(nleaves)" = "$before"
C audit vkey >vkeys

# ---- a clean run -------------------------------------------------------------------
start run1
start_seq=$before
check "service.start is leaf $start_seq" \
	test "$(leaves 'l["seq"]' 'l["event"]' | tail -1)" = "$start_seq service.start"
wait_for "the first checkpoint" ckpt_at_least $((start_seq + 1))
check "the checkpointer signed one over the start leaf" \
	test "$(ckpt_size)" = $((start_seq + 1))
expect_fail "the CLI's direct mode refuses while custodyd runs" 1 "in use by another process" \
	C audit export "$T/export-refused"
expect_fail "so does a second custodyd" 1 "in use by another process" "$DAEMON" -c "$CONF"
kill -HUP "$pid"
sleep 1.5
check "SIGHUP does not stop it" kill -0 "$pid"
check "  and the log did not grow while idle" test "$(nleaves)" = $((start_seq + 1))
stop TERM
check "SIGTERM: exit 0" test "$rc" = 0
check "  it says so" grep -q "stopped: final checkpoint at $((start_seq + 2)) leaves" run1.err
check "the last leaf is service.stop" \
	test "$(leaves 'l["seq"]' 'l["event"]' | tail -1)" = "$((start_seq + 1)) service.stop"
check "the final checkpoint covers it" test "$(ckpt_size)" = $((start_seq + 2))
digest=$(sha256sum "$CONF" | cut -d' ' -f1)
check "start and stop name the version, the configuration's SHA-256 and the pid" \
	test "$(leaves 'l["detail"].get("version")' 'l["detail"].get("config_sha256")' \
		'l["detail"].get("pid")' 'l["detail"].get("unclean_shutdown")' | tail -2 | sort -u)" \
	= "$("$DAEMON" --version | cut -d' ' -f2) $digest $pid None"
check "export: verified by custody and by tlog_check.py" export_verify ex1
check "  checkpoints: the periodic one and the final one" \
	test "$(ls ex1/checkpoints | sort -n | tr '\n' ' ')" = "$((start_seq + 1)) $((start_seq + 2)) "
check "the CLI works again once it stopped" sh -c '"$@" >/dev/null' _ "$CUSTODY" -c "$CONF" key list

# ---- SIGKILL, then an unclean start -------------------------------------------------
start run2
killed=$pid
stop KILL
n=$(nleaves)
start run3
check "the next start says unclean_shutdown, with the killed run's pid" \
	test "$(leaves 'l["event"]' 'l["detail"].get("unclean_shutdown")' \
		'l["detail"].get("previous_pid")' | tail -1)" = "service.start True $killed"
check "  and logs it" grep -q "did not stop cleanly" run3.err
stop TERM
check "  then a clean stop" test "$rc" = 0
check "seq $n is that start, $((n + 1)) its stop" \
	test "$(leaves 'l["seq"]' 'l["event"]' | tail -2 | tr '\n' ' ')" = "$n service.start $((n + 1)) service.stop "
check "export after the crash: verified" export_verify ex2
start run4
stop TERM
check "a start after a clean stop is clean again" \
	test "$(leaves 'l["detail"].get("unclean_shutdown")' | tail -2 | tr '\n' ' ')" = "None None "

# ---- --daemon ---------------------------------------------------------------------
rc=0
"$DAEMON" -c "$CONF" --daemon --pid-file "$T/custodyd.pid" 2>daemon.err || rc=$?
check "--daemon returns 0 once ready" test "$rc" = 0
check "  when its start leaf is durable already" \
	test "$(leaves 'l["event"]' | tail -1)" = "service.start"
pid=$(cat "$T/custodyd.pid" 2>/dev/null || echo 0)
pids+=("$pid")
check "  the pid file names a running custodyd" \
	sh -c 'test "$1" -gt 0 && kill -0 "$1" && grep -q custodyd /proc/$1/cmdline' _ "$pid"
check "  in a session of its own" \
	sh -c 'test "$(cut -d" " -f6 /proc/$1/stat)" != "$(cut -d" " -f6 /proc/$$/stat)"' _ "$pid"
rc=0
"$DAEMON" -c "$CONF" --daemon 2>daemon2.err || rc=$?
check "a second --daemon fails, and says why on stderr" \
	sh -c 'test "$0" = 1 && grep -q "in use by another process" daemon2.err' "$rc"
kill -TERM "$pid"
check "SIGTERM stops the daemon" wait_for "the daemon to exit" gone "$pid"
check "  and removes its pid file" test ! -e "$T/custodyd.pid"
check "  after service.stop and a final checkpoint over it" \
	test "$(leaves 'l["event"]' | tail -1) $(ckpt_size)" = "service.stop $(nleaves)"

before=$(nleaves)
expect_fail "a pid file that cannot be written: refused" 1 "/nonexistent/dir/x.pid" \
	"$DAEMON" -c "$CONF" --daemon --pid-file /nonexistent/dir/x.pid
check "  before anything is logged" test "$(nleaves)" = "$before"

# ---- the policy: loaded at start, reloaded on SIGHUP ------------------------------
POLICIES=$HERE/../../policies
cp "$CONF" "$CONF.nopolicy"
echo "policy $T/pol.json" >>"$CONF"
printf '{"version": 1, "rules": [\n  {"id": "x",}\n]}\n' >pol.json
before=$(nleaves)
expect_fail "a policy that does not load: refused at start" 1 "pol.json:2:" "$DAEMON" -c "$CONF"
check "  before anything is logged" test "$(nleaves)" = "$before"
cp "$POLICIES/default.json" pol.json
start run6
check "start, then policy.load with the file's SHA-256, rule count and name" \
	test "$(leaves 'l["event"]' 'l.get("policy", {}).get("sha256")' \
		'l["detail"].get("sha256")' 'l["detail"].get("rules")' 'l["detail"].get("file")' |
		tail -2 | tr '\n' ' ')" = \
	"service.start None None None None policy.load $(sha256sum pol.json | cut -d' ' -f1) $(sha256sum pol.json | cut -d' ' -f1) 2 $T/pol.json "
n=$(nleaves)
printf '{"version": 1, "rules": [], "colour": "blue"}\n' >pol.json
kill -HUP "$pid"
wait_for "the refusal of the bad policy" grep -q "the policy in force stays" run6.err
check "SIGHUP with a bad policy: refused, naming the place" grep -q "pol.json: /colour: unknown field" run6.err
check "  nothing logged" test "$(nleaves)" = "$n"
check "  and the service still runs" kill -0 "$pid"
cp "$POLICIES/quickstart.json" pol.json
kill -HUP "$pid"
has_leaves() { test "$(nleaves)" -ge "$1"; }
wait_for "the new policy's leaf" has_leaves $((n + 1))
check "SIGHUP with a good policy: a policy.load leaf for it" \
	test "$(leaves 'l["event"]' 'l["detail"].get("sha256")' | tail -1)" = \
	"policy.load $(sha256sum pol.json | cut -d' ' -f1)"
check "  and it says so" grep -q "policy $T/pol.json in force: 2 rules" run6.err
stop TERM
check "  then a clean stop" test "$rc" = 0
check "export with policy leaves: verified" export_verify ex3
cp "$CONF.nopolicy" "$CONF"

# ---- a rolled-back database ------------------------------------------------------
cp "$DB" old.db
start run5
stop TERM
rm -f "$DB-wal" "$DB-shm"
cp old.db "$DB"
expect_fail "a rolled-back database: refused at start" 1 \
	"older than, or not consistent with, a checkpoint" "$DAEMON" -c "$CONF"
check "  and left as it was" cmp -s old.db "$DB"

finish
