#!/usr/bin/env bash
# Fails when a C file of the project is not formatted as the committed .clang-format says:
# names each file that drifts and how to fix it. A test (tests/list/common.txt) runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed"; exit 1; }
drift=()
while IFS= read -r f; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || drift+=("$f")
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find common services tools tests fuzz -name '*.[ch]')
if [ ${#drift[@]} -gt 0 ]; then
  printf 'check-format: not formatted: %s\n' "${drift[@]}"
  echo "check-format: run  clang-format -i FILE  (the repository's .clang-format)"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "check-format: $(git ls-files '*.c' '*.h' | wc -l) files formatted"
echo "1 passed, 0 failed"
