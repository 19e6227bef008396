#!/usr/bin/env bash
# Runs the samordna suite on this machine: installs missing Debian packages, builds, starts
# the broker and every service on loopback with their stores under ./var, loads the Østfold
# pilot fixture, and stays in the foreground until Ctrl-C (which stops everything cleanly).
#
# It runs with CURVE, like a deployment: on first run it makes the certificates under
# ./var/keys (the broker's pair; one service certificate per service; an admin certificate
# for the pilot owner, fmov) and trusts the public halves in ./var/keys/trusted. samctl finds
# its broker, certificate and the broker's key in ./var/samctl.cfg.
#
# samordna-gateway serves HTTP on 127.0.0.1:$SAMORDNA_HTTP_PORT (default 8080) in front of the
# broker, connected with a certificate of its own (var/keys/gateway.cert_secret).
#
# Environment: SAMORDNA_DATA (store folder, default ./var), SAMORDNA_PORT (broker port,
# default 5555), SAMORDNA_HTTP_PORT (the gateway's port, default 8080), SAMORDNA_FIXTURE (the file to import, default the project's own sample of
# the Østfold pilot, deploy/examples/ostfold-2019.json).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh

build=build/release
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=$PWD/$build/bin

data=${SAMORDNA_DATA:-var}
port=${SAMORDNA_PORT:-5555}
http_port=${SAMORDNA_HTTP_PORT:-8080}
fixture=${SAMORDNA_FIXTURE:-deploy/examples/ostfold-2019.json}
endpoint="tcp://127.0.0.1:$port"
mkdir -p "$data/log"

# Certificates, made once and kept with the data (docs/security.md).
keys=$data/keys
trusted=$keys/trusted
mkdir -p "$trusted"
newkey() { # name agency role [service]
  if [ -f "$keys/$1.cert_secret" ]; then
    # a service certificate names the services it may offer; one made before that is remade
    [ "$3" != service ] || grep -q '^ *services = ' "$keys/$1.cert" && return 0
    echo "samordna: remaking $keys/$1.cert: a service certificate now names its service" >&2
    rm -f "$keys/$1.cert" "$keys/$1.cert_secret" "$trusted/$1.cert"
  fi
  "$bin/samctl" keys new --agency "$2" --role "$3" --name "$1" --out "$keys" \
    ${4:+--service "$4"} >/dev/null
  [ "$3" = broker ] || cp "$keys/$1.cert" "$trusted/$1.cert"
}
newkey broker broker broker
newkey admin fmov admin
for svc in registry status grants notify; do newkey "$svc" fmov service "$svc"; done
# the gateway publishes what its HTTP callers send; it answers on loopback only (docs/gateway.md)
newkey gateway fmov admin
cat >"$data/samctl.cfg" <<CFG
broker = "$endpoint"
cert = "$keys/admin.cert_secret"
server-key = "$keys/broker.cert"
CFG
ctl=("$bin/samctl" --config "$data/samctl.cfg")

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "samordna: stopping" >&2
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

"$bin/samordna-broker" --bind "$endpoint" --curve-dir "$trusted" \
  --cert "$keys/broker.cert_secret" 2>>"$data/log/broker.log" &
pids+=($!)
services=()
for svc in registry status grants notify; do
  [ -x "$bin/samordna-$svc" ] || continue
  "$bin/samordna-$svc" --broker "$endpoint" --data-dir "$data" \
    --cert "$keys/$svc.cert_secret" --server-key "$keys/broker.cert" \
    2>>"$data/log/$svc.log" &
  pids+=($!)
  services+=("$svc")
done
for svc in "${services[@]}"; do
  for _ in $(seq 100); do
    "${ctl[@]}" --timeout-ms 200 ping "$svc" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "${ctl[@]}" ping "$svc"
done

gateway_url="http://127.0.0.1:$http_port"
if [ -x "$bin/samordna-gateway" ]; then
  "$bin/samordna-gateway" --broker "$endpoint" --listen "127.0.0.1:$http_port" \
    --cert "$keys/gateway.cert_secret" --server-key "$keys/broker.cert" \
    2>>"$data/log/gateway.log" &
  pids+=($!)
  for _ in $(seq 100); do
    curl -sf "$gateway_url/v1/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "$gateway_url/v1/healthz" >/dev/null ||
    { echo "samordna: the gateway does not answer on $gateway_url (see $data/log/gateway.log)" >&2; exit 1; }
fi

if [ ! -f "$fixture" ]; then
  echo "samordna: fixture $fixture not found (set SAMORDNA_FIXTURE)" >&2
  exit 1
fi
"${ctl[@]}" import "$fixture"

cat <<TXT

samordna runs on $endpoint with CURVE, its stores under $data/ (logs in $data/log/,
certificates in $keys/, trusted public halves in $trusted/).
The HTTP gateway answers on $gateway_url (POST /v1/events; README "Publishing over HTTP").
The status board: open $gateway_url/ in a browser (docs/gateway.md, "The web board").
Try:  $build/bin/samctl --config $data/samctl.cfg pilots
      $build/bin/samctl --config $data/samctl.cfg --help
      $build/bin/samctl keys new --agency nav-ost-viken --role publisher --out $keys
        (then copy its .cert into $trusted/ to let it in; remove it to revoke)
Ctrl-C stops it.
TXT
wait
