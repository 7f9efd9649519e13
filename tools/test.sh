#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Run every test of custody: install what the tests need, build with
# warnings as errors, run the suite with ctest, then build again with
# AddressSanitizer and UndefinedBehaviorSanitizer and run it once more.
# Also checks the formatting of the C sources with clang-format.
#
# usage: tools/test.sh [--fast]   (--fast: skip the sanitizer build)
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
fi
echo "== all tests passed"
