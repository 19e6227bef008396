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
#   SAMORDNA_NO_CHAOS=1 tools/test.sh  skip the chaos pass: tools/chaos for 60 s (two brokers,
#                                       two instances of every service, two gateways, SIGKILLs
#                                       every 1-3 s;
#                                       SAMORDNA_CHAOS_SECONDS changes it) on the RelWithDebInfo
#                                       build, then the same on the sanitizer build
#
# Rounds: the same passes several times in a row, optionally with CPU hogs beside them, to
# find tests that depend on timing. Every argument that is not one of these goes to CTest
# (CTest's own --repeat, which repeats each test, is not touched: hence --rounds).
#
#   tools/test.sh --rounds N     run the passes N times in a row (default 1)
#   tools/test.sh --hogs N       with N CPU hogs (stress-ng --cpu N, installed when missing)
#                                running from the first round to the last
#   tools/test.sh --ctest-only   each round is the RelWithDebInfo CTest pass alone: no
#                                sanitizer build, no fuzzing
#
#   tools/test.sh --rounds 5 --hogs 2                   the whole suite five times, two hogs
#   tools/test.sh --rounds 10 --hogs 2 --ctest-only     the CTest suite alone ten times
#   SAMORDNA_NO_ASAN=1 tools/test.sh --rounds 2 --hogs 2 -L registry
#
# Everything is built before the first round (and before the hogs start). A round does not
# stop at the first failure: every pass of it runs, prints its number and what failed, and
# keeps its whole output in build/repeat/round-N.log (build/repeat/ is emptied first). The
# last lines count the rounds passed and failed, with the failing tests of each round (NAME for the
# RelWithDebInfo pass, NAME[asan] for the sanitizer pass, fuzz:TARGET for fuzzing); the exit
# code is 1 when any round failed. The hogs are stopped on every way out, failure and
# Ctrl-C included. Without any of these three options nothing changes: one run that stops at
# the first failing pass, as CI calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds='' hogs='' ctest_only=0
CTEST_ARGS=()
count() { # option value: a whole number, at least 1 for --rounds and 0 for --hogs
  local least=1
  [ "$1" = --hogs ] && least=0
  if ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt $least ]; then
    echo "tools/test.sh: $1 wants a whole number of at least $least, not '$2'" >&2
    exit 2
  fi
}
while [ $# -gt 0 ]; do
  case $1 in
    --rounds | --hogs)
      [ $# -ge 2 ] || { echo "tools/test.sh: $1 wants a number" >&2; exit 2; }
      count "$1" "$2"
      if [ "$1" = --rounds ]; then rounds=$2; else hogs=$2; fi
      shift 2 ;;
    --rounds=* | --hogs=*)
      count "${1%%=*}" "${1#*=}"
      if [ "${1%%=*}" = --rounds ]; then rounds=${1#*=}; else hogs=${1#*=}; fi
      shift ;;
    --ctest-only) ctest_only=1; shift ;;
    *) CTEST_ARGS+=("$1"); shift ;;
  esac
done

tools/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
build_tree() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DSAMORDNA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}
ctest_in() {
  (cd "$1" && ctest --output-on-failure --timeout 600 "${CTEST_ARGS[@]}")
}
run_suite() {
  local dir=$1; shift
  build_tree "$dir" "$@"
  ctest_in "$dir"
}
# The sanitizer pass's environment; the scale stretches waits only, never assertions.
ASAN_ENV=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
  SAMORDNA_TIMEOUT_SCALE="${SAMORDNA_TIMEOUT_SCALE:-4}")
asan_env() { export "${ASAN_ENV[@]}"; }

if [ -z "$rounds$hogs" ] && [ $ctest_only = 0 ]; then
  echo "== build and test (RelWithDebInfo)"
  run_suite build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo
  if [ "${SAMORDNA_NO_ASAN:-0}" != 1 ]; then
    echo "== build and test under AddressSanitizer and UndefinedBehaviorSanitizer"
    asan_env
    run_suite build/asan -DCMAKE_BUILD_TYPE=Debug -DSAMORDNA_SANITIZE=ON
  fi
  if [ "${SAMORDNA_NO_CHAOS:-0}" != 1 ] && [ ${#CTEST_ARGS[@]} -eq 0 ]; then
    echo "== chaos for ${SAMORDNA_CHAOS_SECONDS:-60} s (tools/chaos: kills, then nothing lost)"
    tools/chaos --seconds "${SAMORDNA_CHAOS_SECONDS:-60}" --build build/test
    if [ "${SAMORDNA_NO_ASAN:-0}" != 1 ]; then
      echo "== chaos on the sanitizer build"
      tools/chaos --seconds "${SAMORDNA_CHAOS_SECONDS:-60}" --build build/asan
    fi
  fi
  if [ "${SAMORDNA_NO_FUZZ:-0}" != 1 ] && [ ${#CTEST_ARGS[@]} -eq 0 ]; then
    echo "== fuzz every decoder for ${SAMORDNA_FUZZ_SECONDS:-20} s each (libFuzzer)"
    tools/fuzz.sh
  fi
  exit 0
fi

# ---- rounds ----------------------------------------------------------------------------------
rounds=${rounds:-1} hogs=${hogs:-0}
passes=(test)
if [ $ctest_only = 0 ]; then
  [ "${SAMORDNA_NO_ASAN:-0}" != 1 ] && passes+=(asan)
  [ "${SAMORDNA_NO_CHAOS:-0}" != 1 ] && [ ${#CTEST_ARGS[@]} -eq 0 ] && passes+=(chaos)
  [ "${SAMORDNA_NO_FUZZ:-0}" != 1 ] && [ ${#CTEST_ARGS[@]} -eq 0 ] && passes+=(fuzz)
fi
[ "$hogs" -gt 0 ] && tools/deps.sh stress-ng

echo "== build (RelWithDebInfo)"
build_tree build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo
for p in "${passes[@]}"; do
  if [ "$p" = asan ]; then
    echo "== build under AddressSanitizer and UndefinedBehaviorSanitizer"
    build_tree build/asan -DCMAKE_BUILD_TYPE=Debug -DSAMORDNA_SANITIZE=ON
  fi
done

logs=build/repeat
rm -rf "$logs"
mkdir -p "$logs"

# The hogs and each pass run in a process group of their own (setsid), so that stopping one
# reaches every process in it: stress-ng's workers, or CTest, the tests and the services they
# started. Ctrl-C or SIGTERM stops both and ends the script; without this, bash would take a
# Ctrl-C that CTest caught for a failing round and go on with the next one.
hog_pid='' pass_pid=''
stop_group() { # pid: SIGTERM to its process group, then wait for it
  kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_hogs() {
  [ -z "$hog_pid" ] || stop_group "$hog_pid"
  hog_pid=''
}
stopped() { # signal exit-code
  trap - INT TERM
  echo "== stopped by SIG$1${r:+ in round $r}" >&2
  [ -z "$pass_pid" ] || stop_group "$pass_pid"
  pass_pid=''
  stop_hogs
  exit "$2"
}
trap stop_hogs EXIT
trap 'stopped INT 130' INT
trap 'stopped TERM 143' TERM
run_pass() { # log command…: the command in a group of its own, its output to log
  local log=$1 rc=0
  shift
  setsid "$@" >>"$log" 2>&1 &
  pass_pid=$!
  wait "$pass_pid" || rc=$?
  pass_pid=''
  return $rc
}
hog_words="$hogs CPU hogs"
[ "$hogs" = 1 ] && hog_words="1 CPU hog"
[ "$hogs" = 0 ] && hog_words="no CPU hogs"
if [ "$hogs" -gt 0 ]; then
  setsid stress-ng --cpu "$hogs" --timeout 0 >"$logs/hogs.log" 2>&1 &
  hog_pid=$!
  sleep 1
  if ! kill -0 "$hog_pid" 2>/dev/null; then
    echo "tools/test.sh: stress-ng did not start (its output: $logs/hogs.log)" >&2
    hog_pid=''
    exit 1
  fi
  echo "== $hog_words running (stress-ng --cpu $hogs, pid $hog_pid)"
fi

failed_names() { # log first-line pass: the failing tests after that line of the log
  tail -n +"$2" "$1" | case $3 in
    fuzz) sed -n 's/^!! \([^ ]*\) found a problem.*/fuzz:\1/p' ;;
    asan) awk '/The following tests FAILED:/ {f = 1; next} f && $2 == "-" {print $3 "[asan]"}' ;;
    *) awk '/The following tests FAILED:/ {f = 1; next} f && $2 == "-" {print $3}' ;;
  esac
}

passed=0 failed=0 summary=() hog_note=''
[ "$hogs" -gt 0 ] && hog_note=" beside $hog_words"
for ((r = 1; r <= rounds; r++)); do
  log=$logs/round-$r.log
  : >"$log"
  echo "== round $r of $rounds: ${passes[*]}$hog_note"
  start=$SECONDS
  names=()
  for p in "${passes[@]}"; do
    echo "== $p (round $r)" >>"$log"
    from=$(($(wc -l <"$log") + 1))
    rc=0
    case $p in
      test) run_pass "$log" ctest --test-dir build/test --output-on-failure --timeout 600 \
        "${CTEST_ARGS[@]}" || rc=$? ;;
      asan) run_pass "$log" env "${ASAN_ENV[@]}" ctest --test-dir build/asan --output-on-failure \
        --timeout 600 "${CTEST_ARGS[@]}" || rc=$? ;;
      chaos) run_pass "$log" tools/chaos --seconds "${SAMORDNA_CHAOS_SECONDS:-60}" \
        --build build/test || rc=$? ;;
      fuzz) run_pass "$log" tools/fuzz.sh || rc=$? ;;
    esac
    if [ $rc -ne 0 ]; then
      mapfile -t these < <(failed_names "$log" "$from" "$p")
      [ ${#these[@]} -gt 0 ] || these=("$p(exit $rc)")
      names+=("${these[@]}")
    fi
  done
  if [ ${#names[@]} -eq 0 ]; then
    passed=$((passed + 1))
    echo "   round $r: passed in $((SECONDS - start)) s ($log)"
  else
    failed=$((failed + 1))
    summary+=("round $r: ${names[*]}")
    echo "   round $r: FAILED in $((SECONDS - start)) s: ${names[*]} ($log)"
  fi
done
stop_hogs

echo "== $passed of $rounds rounds passed, $failed failed ($hog_words; logs in $logs/)"
for s in "${summary[@]}"; do echo "   $s"; done
[ $failed -eq 0 ]
