#!/usr/bin/env bash
# The test command: installs what is missing, builds warning-free, runs every
# test with ctest, then does the same in the ASan+UBSan build.
# Usage: scripts/test.sh [--fast]   (--fast skips the sanitizer build)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

jobs=$(nproc)
run_suite() {
	local dir=$1
	shift
	cmake -S . -B "$dir" -DDC_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j "$jobs"
	(cd "$dir" && ctest --output-on-failure -j "$jobs")
}

echo "== release build (-Werror)"
run_suite build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo

if [ "${1:-}" != "--fast" ]; then
	echo "== ASan+UBSan build"
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DDC_SANITIZE=ON
fi
