#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Install the Debian 12 packages custody needs to build, run and test.
# Used by quickstart.sh and test.sh; does nothing when all are present.
set -euo pipefail

PACKAGES=(
	# build
	build-essential cmake pkg-config
	libssl-dev libp11-kit-dev libjansson-dev libsqlite3-dev libevent-dev
	libp11-dev libcmocka-dev
	# run: the embedded token
	softhsm2
	# the quick start and the tests talk to custodyd with curl
	curl
	# tests: tools custody did not write
	opensc openssl xxd util-linux python3 python3-cryptography python3-jwcrypto
	# the benchmark's baseline: a p11-kit server/client pair
	p11-kit p11-kit-modules
	clang-format
	# tests: the libFuzzer targets (tests/fuzz) need Clang
	clang
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "custody: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
