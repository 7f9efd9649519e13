#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Run a libFuzzer target for a bounded number of inputs (ctest fuzz.*).
# The seeds are copied into a fresh corpus under WORKDIR, which the fuzzer
# may add to; the source tree is never written. Crash, leak and timeout
# inputs are saved in WORKDIR/artifacts. Exits non-zero on any finding.
#
# usage: run.sh FUZZER WORKDIR SEEDDIR... -- [libFuzzer options]
#   (the *.json files under each SEEDDIR except *.cases.json are the seeds)
set -eu

usage() {
	echo "usage: $0 FUZZER WORKDIR SEEDDIR... -- [libFuzzer options]" >&2
	exit 2
}
[ $# -ge 4 ] || usage
fuzzer=$1
work=$2
shift 2

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
n=0
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	for f in $(find "$1" -name '*.json' ! -name '*.cases.json' | sort); do
		n=$((n + 1))
		cp "$f" "$work/corpus/seed-$n-$(basename "$f")"
	done
	shift
done
[ $# -gt 0 ] || usage
shift
if [ $n -eq 0 ]; then
	echo "$0: no seeds" >&2
	exit 1
fi
echo "$0: $n seeds"
exec "$fuzzer" -artifact_prefix="$work/artifacts/" "$@" "$work/corpus"
