#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Run every test of custody: install what the tests need, build with
# warnings as errors, run the suite with ctest, then build again with
# AddressSanitizer and UndefinedBehaviorSanitizer and run it once more, then
# build the libFuzzer targets with Clang and run each for a bounded number of
# inputs (ctest -L fuzz). Also checks the formatting of the C sources with
# clang-format.
#
# usage: tools/test.sh [--fast]   (--fast: skip the sanitizer and fuzz builds)
set -euo pipefail

cd "$(dirname "$0")/.."
top=$PWD
jobs=$(nproc)
fast=0
[ "${1:-}" = "--fast" ] && fast=1

bash tools/install-deps.sh

echo "== formatting (clang-format --dry-run)"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find module tools tests -name '*.[ch]')
clang-format --dry-run -Werror "${sources[@]}"

run_suite() { # run_suite BUILD_DIR [cmake options...]
	local dir=$1
	shift
	echo "== build $dir $*"
	cmake -S "$top" -B "$dir" -DCUSTODY_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j "$jobs" >/dev/null
	echo "== test $dir"
	(cd "$dir" && ctest --output-on-failure -j "$jobs")
}

run_suite build
if [ $fast -eq 0 ]; then
	# dlopen'ed modules (SoftHSM2) are not built with ASan: let it load them
	ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		run_suite build-asan -DCUSTODY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	# libFuzzer needs Clang; only the fuzz targets are built and run
	echo "== build build-fuzz -DCUSTODY_FUZZ=ON (clang)"
	CC=clang cmake -S "$top" -B build-fuzz -DCUSTODY_FUZZ=ON \
		-DCUSTODY_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-fuzz -j "$jobs" --target fuzz_policy fuzz_jwt >/dev/null
	echo "== test build-fuzz (ctest -L fuzz)"
	(cd build-fuzz && ctest -L fuzz --output-on-failure)
fi
echo "== all tests passed"
