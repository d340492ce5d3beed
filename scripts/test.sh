#!/usr/bin/env bash
# `npm test`: set-up, then every tier: lint (ESLint + Prettier), unit tests (no I/O), integration tests
# (real redis-server, kinesis-mock, dynalite and KCL daemons started by the tests on free ports).
# Ends with one line "N passed, N failed" (lint checks count as one test each) and writes it to
# .local/test-summary.txt. Exit code 0 only when nothing failed.
#   TEST_TIERS="lint unit integration" (default: all)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tiers="${TEST_TIERS:-lint unit integration}"
mkdir -p .local
summary_file=.local/test-summary.txt
rm -f "$summary_file"
# Every tier runs on the pinned Node.js LTS (.nvmrc), fetched by scripts/node-runtime.sh where the machine's is older.
source scripts/node-runtime.sh || { echo "0 passed, 1 failed" | tee "$summary_file"; exit 1; }
echo "test: node $(node -v)" >&2
started=$(date +%s)

if ! bash scripts/setup.sh; then
  echo "test: set-up failed" >&2
  echo "0 passed, 1 failed" | tee "$summary_file"
  exit 1
fi

passed=0
failed=0
tally() { # <log file>: adds mocha's "N passing" / "N failing" to the totals
  local p f
  p=$(grep -Eo '^ *[0-9]+ passing' "$1" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  f=$(grep -Eo '^ *[0-9]+ failing' "$1" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
}
check() { # <name> <command...>: a check that counts as one test
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "test: $name ok"; else failed=$((failed + 1)); echo "test: $name FAILED"; fi
}

for tier in $tiers; do
  case "$tier" in
    lint)
      check "eslint" npx eslint --max-warnings 0 .
      check "prettier" npx prettier --check --log-level warn .
      ;;
    unit|integration)
      log=".local/test-$tier.log"
      timeout_ms=10000
      [[ $tier == integration ]] && timeout_ms=300000
      npx mocha --timeout "$timeout_ms" "dist/test/$tier/**/*.test.js" 2>&1 | tee "$log"
      rc=${PIPESTATUS[0]}
      before=$failed
      tally "$log"
      # mocha failing before it could report (e.g. a load error) still counts as a failure.
      if ((rc != 0 && failed == before)); then failed=$((failed + 1)); fi
      ;;
    *) echo "test: unknown tier $tier" >&2; failed=$((failed + 1)) ;;
  esac
done

echo "test: finished in $(($(date +%s) - started)) s"
echo "$passed passed, $failed failed" | tee "$summary_file"
((failed == 0))
