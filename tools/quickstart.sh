#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# custody quick start: install what custody needs (Debian 12), build it,
# initialise a private SoftHSM2 token under a data directory, show custody
# keeping keys in it, run the custodyd service (which records its start and
# stop in the audit log and signs checkpoints), and verify the log as an
# auditor would.
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
CONF
fi
if ! grep -q '^policy ' "$conf"; then
	# a configuration written before policies existed
	echo "policy $top/policies/quickstart.json" >>"$conf"
fi
for f in user.pin so.pin; do
	if [ ! -f "$data/$f" ]; then
		# a random PIN straight into a private file
		(umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$data/$f")
	fi
done

C() { "$custody" -c "$conf" "$@"; }
if [ ! -f "$data/custody.db" ]; then
	echo "== custody init"
	C init
	echo "== custody key create (a key for a demo agent, in the token)"
	C key create --agent spiffe://example.org/agent/demo --owner quickstart \
		--purpose jwt --alg ecdsa-p256 --max-age 7d
else
	echo "== $data is initialised already"
fi
echo "== custody key list"
C key list
echo "== custody policy check and test (the policy custodyd will enforce, offline)"
C policy check "$top/policies/quickstart.json"
C policy test "$top/policies/quickstart.json" "$top/policies/quickstart.cases.json" | tail -1
echo "== custodyd --daemon (returns once its service.start leaf is durable)"
pidfile=$data/custodyd.pid
ckpt_size() { sed -n 2p "$data/checkpoint" 2>/dev/null || echo 0; }
size0=$(ckpt_size)
"$custodyd" -c "$conf" --daemon --pid-file "$pidfile"
echo "custodyd is running as pid $(cat "$pidfile"); the CLI's direct mode refuses to run beside it:"
C key list 2>&1 | sed 's/^/  | /' || true
echo "== the checkpoint custodyd signed over its start (DATA/checkpoint)"
for _ in $(seq 100); do
	[ "$(ckpt_size)" -gt "$size0" ] && break
	sleep 0.1
done
cat "$data/checkpoint"
echo "== stopping custodyd (SIGTERM: service.stop, then a final checkpoint)"
kill -TERM "$(cat "$pidfile")"
for _ in $(seq 100); do [ -e "$pidfile" ] || break; sleep 0.1; done
if [ -e "$pidfile" ]; then
	echo "custodyd did not stop; see the system log (journalctl -t custodyd)" >&2
	exit 1
fi
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
cat <<MSG

custody is set up in $data.
  configuration: $conf
  try:           $custody -c $conf key --help
                 $custodyd -c $conf        (foreground; stop it with Ctrl-C)
  tests:         tools/test.sh
MSG
