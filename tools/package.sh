#!/usr/bin/env bash
# Builds samordna's Debian package: a Release build installed under /usr by CPack, with the
# shared-library dependencies worked out by dpkg-shlibdeps, the systemd units (none enabled),
# the samordna system user (sysusers.d) and its folders (tmpfiles.d), made by the package's
# postinst. Prints the path of the .deb.
#
#   tools/package.sh                 build/package/samordna_<version>_<arch>.deb
#   SAMORDNA_PACKAGE_BUILD=DIR tools/package.sh    package an existing build tree instead
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh dpkg-dev >&2
build=${SAMORDNA_PACKAGE_BUILD:-build/package}
if [ -z "${SAMORDNA_PACKAGE_BUILD:-}" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
out=$(cd "$build" && cpack -G DEB -B "$PWD/deb" 2>&1) || { echo "$out" >&2; exit 1; }
deb=$(ls -t "$build"/deb/samordna_*.deb | head -1)
echo "$deb"
