#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# custody quick start: install what custody needs (Debian 12), build it,
# initialise a private SoftHSM2 token under a data directory and show
# custody keeping keys in it.
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
CONF
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
echo "== custody audit checkpoint (the audit log's state, signed in the token)"
C audit checkpoint
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
  tests:         tools/test.sh
MSG
