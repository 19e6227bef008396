#!/usr/bin/env bash
# Writes the option reference of docs/configuration.md from each program's own option table
# (`PROGRAM --help --help-format markdown`), so the reference and --help cannot drift apart.
# Everything after the marker line of docs/configuration.md is replaced; the text before it
# is kept. tests/deploy_test.py fails when the committed file differs from what this writes.
#
#   tools/config-doc.sh [BIN]     BIN: the folder of the built programs (default build/dev/bin)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/dev/bin}
doc=docs/configuration.md
marker='<!-- Below this line: made by tools/config-doc.sh from the option tables. Do not edit. -->'
grep -qxF "$marker" "$doc" || { echo "config-doc: $doc has no marker line" >&2; exit 1; }
{
  sed "/^$(printf '%s' "$marker" | sed 's/[][\.*^$/]/\\&/g')\$/q" "$doc"
  for p in samordna-broker samordna-registry samordna-status samordna-grants samordna-notify \
    samordna-gateway; do
    echo
    "$bin/$p" --help --help-format markdown
  done
} >"$doc.new"
mv "$doc.new" "$doc"
