#!/usr/bin/env bash
# Launches the real KCL MultiLangDaemon for ONE stream: renders its .properties from the service config,
# then execs Java (so SIGTERM reaches the daemon itself, which hands leases off within shutdownGraceMillis).
#
#   scripts/kcl-daemon.sh <trade|bestbidask|depth> [properties-dir]
#
# Environment: CONFIG_FILE (service config), KCL_JAR_DIR, KCL_PROFILE (local|production), KCL_WORKER_ID,
# AGGREGATOR_TASK_ID (the task identity, default the hostname; the default worker id is <task id>-<kind>, and the
# daemon's processor children inherit it), JAVA_OPTS. Locally the emulators accept any credentials; dummies are
# set when none are present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The pinned Node.js LTS (.nvmrc), fetched into .cache/node where the machine's node is older.
source "$root/scripts/node-runtime.sh"
kind="${1:?usage: kcl-daemon.sh <trade|bestbidask|depth> [properties-dir]}"
props_dir="${2:-$root/.local/kcl}"
config="${CONFIG_FILE:-$root/config/aggregator.yaml}"

[[ -f "$root/dist/src/cli/main.js" ]] || { echo "kcl-daemon: build first (npm run build)" >&2; exit 1; }
jar_dir="$("$root/scripts/kcl-jars.sh")"
mkdir -p "$props_dir"
props="$props_dir/$kind.properties"
args=(--config "$config" kcl properties --stream "$kind" --out "$props")
[[ -n "${KCL_PROFILE:-}" ]] && args+=(--profile "$KCL_PROFILE")
[[ -n "${KCL_WORKER_ID:-}" ]] && args+=(--worker-id "$KCL_WORKER_ID")
node "$root/dist/src/cli/main.js" "${args[@]}"

if [[ "${KCL_PROFILE:-}" != "production" ]] && grep -q '^kinesisEndpoint' "$props"; then
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
  export AWS_EC2_METADATA_DISABLED=true
fi
# shellcheck disable=SC2086
exec java ${JAVA_OPTS:--Xms64m -Xmx512m} -cp "$jar_dir/*" software.amazon.kinesis.multilang.MultiLangDaemon \
  --properties-file "$props" --log-configuration "$root/properties/logback.xml"
