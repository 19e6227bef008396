#!/usr/bin/env bash
# Runs the samordna suite on this machine: installs missing Debian packages, builds, starts
# the broker and every service on loopback with their stores under ./var, loads the Østfold
# pilot fixture, and stays in the foreground until Ctrl-C (which stops everything cleanly).
#
# Environment: SAMORDNA_DATA (store folder, default ./var), SAMORDNA_PORT (broker port,
# default 5555), SAMORDNA_FIXTURE (default ../shared/fixtures/ostfold-2019.json).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh

build=build/release
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=$PWD/$build/bin

data=${SAMORDNA_DATA:-var}
port=${SAMORDNA_PORT:-5555}
fixture=${SAMORDNA_FIXTURE:-../shared/fixtures/ostfold-2019.json}
endpoint="tcp://127.0.0.1:$port"
mkdir -p "$data/log"

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "samordna: stopping" >&2
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

"$bin/samordna-broker" --bind "$endpoint" --insecure 2>>"$data/log/broker.log" &
pids+=($!)
services=()
for svc in registry status grants notify; do
  [ -x "$bin/samordna-$svc" ] || continue
  "$bin/samordna-$svc" --broker "$endpoint" --data-dir "$data" --insecure \
    2>>"$data/log/$svc.log" &
  pids+=($!)
  services+=("$svc")
done
for svc in "${services[@]}"; do
  for _ in $(seq 100); do
    "$bin/samctl" --broker "$endpoint" --timeout-ms 200 ping "$svc" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$bin/samctl" --broker "$endpoint" ping "$svc"
done

if [ ! -f "$fixture" ]; then
  echo "samordna: fixture $fixture not found (set SAMORDNA_FIXTURE)" >&2
  exit 1
fi
"$bin/samctl" --broker "$endpoint" import "$fixture"

cat <<TXT

samordna runs on $endpoint with its stores under $data/ (logs in $data/log/).
Try:  $build/bin/samctl --broker $endpoint pilots
      $build/bin/samctl --broker $endpoint --help
Ctrl-C stops it.
TXT
wait
