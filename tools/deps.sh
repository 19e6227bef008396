#!/usr/bin/env bash
# Installs the Debian packages samordna needs to build, run and test, when any is missing,
# and the tests' npm packages (npm ci, tests/package-lock.json). Used by tools/run.sh and
# tools/test.sh; safe to run again (it installs nothing when all are there). Needs root or
# sudo only when something is missing. Packages named as arguments are wanted too
# (tools/test.sh --hogs asks for stress-ng this way).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev
  liblmdb-dev lmdb-utils libjansson-dev libcurl4-openssl-dev libsodium-dev libsystemd-dev
  libmicrohttpd-dev   # the operator's HTTP port: /metrics, /healthz, /readyz
  python3 python3-zmq python3-protobuf
  clang libclang-rt-dev clang-format
  dpkg-dev            # tools/package.sh: dpkg-shlibdeps works out the package's dependencies
  libfuse3-dev fuse3  # powercut_fs, the file system of the power-cut test
  tzdata              # the programme's time zone (sam_clock knows Europe/Oslo without it too)
  buildah             # container_test.py: the image built from scratch, and run
  prometheus          # metrics_test.py: a real Prometheus scrapes the suite; promtool checks it
  libssl-dev          # the gateway: JWT signatures (RS256, ES256) checked against a JWKS
  chromium            # gateway_board_test.py: a real browser loads the web board
  wrk                 # samordna-bench gateway: HTTP load from a standard tool
  weasyprint          # samctl notify briefing --format pdf: the briefing page as a PDF
  curl                # tools/run.sh waits for the gateway; gateway_test.py runs the README curl examples
  poppler-utils       # the briefing's PDF read back as text (pdftotext)
  python3-icalendar   # the meetings calendar parsed by a real iCalendar parser
  etcd-server         # sam_elect_selftest, multihost_test.py: leadership across hosts, a real etcd
  iproute2            # multihost_test.py: the hosts are network namespaces (ip netns, veth, bridge)
  "$@"
)

# node and npm run tests/tools/k8s_validate.js (kubernetes_test.py); Debian's, unless some
# node is already there (another one's npm must not be replaced by Debian's).
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

# The tests' npm packages (tests/package-lock.json), installed before any test runs so that
# the tests need no network; again whenever the lock file is newer than what is installed.
npm_tools() {
  local tests
  tests="$(dirname "$0")/../tests"
  [ -f "$tests/node_modules/.package-lock.json" ] &&
    [ ! "$tests/package-lock.json" -nt "$tests/node_modules/.package-lock.json" ] && return 0
  echo "samordna: installing the tests' npm packages (npm ci --prefix tests)" >&2
  npm ci --prefix "$tests" --no-audit --no-fund >/dev/null
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && { npm_tools; exit 0; }

echo "samordna: installing missing Debian packages: ${missing[*]}" >&2
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "samordna: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
npm_tools
