#!/usr/bin/env bash
# Prepares a fresh machine: system packages (redis-server, Java, Maven) when missing, the pinned Node.js LTS
# (scripts/node-runtime.sh), npm dependencies, the TypeScript build and the KCL daemon's jars. Idempotent and quick when everything is there.
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
command -v npm >/dev/null || { log "Node.js with npm is required (https://nodejs.org)"; exit 1; }
# The pinned Node.js LTS (.nvmrc): the machine's own when it is of that line, else fetched into .cache/node.
# npm ci and the build below run on it.
source "$root/scripts/node-runtime.sh"
log "node $(node -v) ($(command -v node))"

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
