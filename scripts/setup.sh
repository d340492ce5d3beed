#!/usr/bin/env bash
# Prepares a fresh machine: system packages (redis-server, Java, Maven) when missing, npm dependencies,
# the TypeScript build and the KCL daemon's jars. Idempotent and quick when everything is there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { echo "setup: $*" >&2; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
if ((${#missing[@]})); then
  log "installing ${missing[*]} with apt-get"
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
command -v node >/dev/null || { log "Node.js 20+ is required (https://nodejs.org)"; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || { log "Node.js 20+ is required, found $(node -v)"; exit 1; }

# npm ci only when the lockfile changed since the last install.
stamp="node_modules/.package-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund >&2
  echo "$want" > "$stamp"
fi

log "building"
npm run -s build >&2
"$root/scripts/kcl-jars.sh" >/dev/null
log "ready"
