#!/usr/bin/env bash
# Fuzzes every decoder of samordna with libFuzzer (Debian's clang), under AddressSanitizer
# and UndefinedBehaviorSanitizer: the broker's frame handling, each service's whole request
# path (envelope, caller, queries, every event type's payload), the fixture importer, the
# configuration parser and the proto3 JSON mapping.
#
#   tools/fuzz.sh                 every target for SAMORDNA_FUZZ_SECONDS (default 20) each
#   tools/fuzz.sh fuzz_broker     one target
#   SAMORDNA_FUZZ_SECONDS=3600 tools/fuzz.sh fuzz_service_grants    a long run
#
# Each target starts from tests/fuzz-corpus/ and tests/fuzz-regressions/ and keeps what it
# learns in build/fuzzing/corpus/<target>/. A crash, leak or timeout stops that target, leaves
# its input in build/fuzzing/artifacts/<target>/ and makes the script exit 1: fix the bug, then
# copy the input into tests/fuzz-regressions/<area>/ so every test run replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SAMORDNA_FUZZ_SECONDS:-20}
build=build/fuzzing # not build/fuzz: that is the fuzz/ folder of a build in build/
CC=clang cmake -S . -B "$build" -DSAMORDNA_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

area() { # the tests/ folder of a target's inputs
  case $1 in
    fuzz_service_*) echo service ;;
    *) echo "${1#fuzz_}" ;;
  esac
}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_broker fuzz_config fuzz_import fuzz_check fuzz_pbjson fuzz_jwt)
  for t in "$build"/bin/fuzz_service_*; do targets+=("$(basename "$t")"); done
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
export SAMORDNA_TESTDATA=$PWD/$build/scratch
failed=0
for t in "${targets[@]}"; do
  a=$(area "$t")
  corpus=$build/corpus/$t artifacts=$build/artifacts/$t
  mkdir -p "$corpus" "$artifacts" "$SAMORDNA_TESTDATA"
  seeds=()
  extra=()
  [ "$a" = import ] && extra=(deploy/examples) # the Østfold pilot, the real fixture file
  for d in tests/fuzz-corpus/$a tests/fuzz-regressions/$a tests/fuzz-regressions/$t "${extra[@]}"; do
    [ -d "$d" ] && seeds+=("$d")
  done
  echo "== $t: ${seconds}s"
  if "$build/bin/$t" "$corpus" "${seeds[@]}" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=4096 -artifact_prefix="$artifacts/" -print_final_stats=1 \
      >"$build/$t.log" 2>&1; then
    grep -E "^(stat::number_of_executed_units|Done)" "$build/$t.log" | tr '\n' ' '; echo
  else
    failed=1
    echo "!! $t found a problem; its input is in $artifacts/ (log: $build/$t.log)"
    grep -E "ERROR|SUMMARY|runtime error" "$build/$t.log" | head -5
  fi
done
exit $failed
