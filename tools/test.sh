#!/usr/bin/env bash
# Runs every test of samordna, the way CI does: installs missing Debian packages, builds
# with warnings as errors, runs the whole suite (unit selftests and integration tests that
# start the real processes on loopback), then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the suite once more, and fuzzes every decoder for a
# short bounded time (tools/fuzz.sh).
#
#   tools/test.sh            everything
#   tools/test.sh -L broker  only tests with that CTest label (both builds)
#   SAMORDNA_NO_ASAN=1 tools/test.sh   skip the sanitizer pass (quicker local runs)
#   SAMORDNA_NO_FUZZ=1 tools/test.sh   skip the bounded fuzzing pass (tools/fuzz.sh, 20 s a
#                                       target; SAMORDNA_FUZZ_SECONDS changes it)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
run_suite() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DSAMORDNA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  (cd "$dir" && ctest --output-on-failure --timeout 600 "${CTEST_ARGS[@]}")
}

CTEST_ARGS=("$@")
echo "== build and test (RelWithDebInfo)"
run_suite build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${SAMORDNA_NO_ASAN:-0}" != 1 ]; then
  echo "== build and test under AddressSanitizer and UndefinedBehaviorSanitizer"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
  export SAMORDNA_TIMEOUT_SCALE=${SAMORDNA_TIMEOUT_SCALE:-4}  # waits only, never assertions
  run_suite build/asan -DCMAKE_BUILD_TYPE=Debug -DSAMORDNA_SANITIZE=ON
fi
if [ "${SAMORDNA_NO_FUZZ:-0}" != 1 ] && [ ${#CTEST_ARGS[@]} -eq 0 ]; then
  echo "== fuzz every decoder for ${SAMORDNA_FUZZ_SECONDS:-20} s each (libFuzzer)"
  tools/fuzz.sh
fi
