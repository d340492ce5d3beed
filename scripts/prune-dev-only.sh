#!/usr/bin/env bash
# Deletes the development-only compiled code (scripts/dev-only.txt) from a dist/src folder: the production
# image runs it after the build. Fails when a listed path is missing (the list went stale).
#   scripts/prune-dev-only.sh <dist/src folder>
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:?usage: prune-dev-only.sh <dist/src folder>}"
[[ -f "$target/cli/main.js" ]] || { echo "prune-dev-only: $target is not a compiled dist/src" >&2; exit 1; }
while read -r entry; do
  [[ -z "$entry" || "$entry" == \#* ]] && continue
  if [[ -d "$target/$entry" ]]; then
    rm -r "${target:?}/$entry"
  elif [[ -f "$target/$entry.js" ]]; then
    rm -f "$target/$entry.js" "$target/$entry.js.map"
  else
    echo "prune-dev-only: $entry (scripts/dev-only.txt) is not in $target" >&2
    exit 1
  fi
done <"$root/scripts/dev-only.txt"
