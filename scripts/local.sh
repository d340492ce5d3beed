#!/usr/bin/env bash
# `npm run local`: the whole pipeline on this machine, on simulated market data.
#   set-up (packages, npm, build, KCL jars) -> local stack (kinesis-mock, dynalite, redis-server)
#   -> one real KCL MultiLangDaemon per stream -> replay of the built-in market simulator
#   -> the feature sidecar -> a live view of Redis, the feature vectors and the shard checkpoints. Ctrl-C stops everything it started.
#   The replay also archives what Kinesis acknowledged under .local/archive, in the layout Firehose leaves in S3.
#
# Environment: LOCAL_DURATION (seconds; default: run until Ctrl-C), LOCAL_RATE (events/s, default 2000),
# STACK_SHARDS (e.g. trade:2,depth:1), CONFIG_FILE (default config/local.yaml), LOCAL_REST_PORT (the replay's simulated
# exchange REST API, default 8091 = reanchor.rest.base_url of config/local.yaml; 0 = a free port).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# The pinned Node.js LTS (.nvmrc), fetched into .cache/node where the machine's node is older.
source "$root/scripts/node-runtime.sh"
export CONFIG_FILE="${CONFIG_FILE:-$root/config/local.yaml}"
rate="${LOCAL_RATE:-2000}"
duration="${LOCAL_DURATION:-}"
rest_port="${LOCAL_REST_PORT:-8091}"
logs="$root/.local/logs"
cli=(node "$root/dist/src/cli/main.js" --config "$CONFIG_FILE")
started_at=$(date +%s.%N)
started_ms=$(date +%s%3N)

bash "$root/scripts/setup.sh"
echo "local: set-up done in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $started_at}") s"
mkdir -p "$logs"

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo "local: stopping" >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  "${cli[@]}" stack down >&2 || true
}
trap cleanup EXIT INT TERM

"${cli[@]}" stack down >/dev/null 2>&1 || true
"${cli[@]}" stack up

for kind in trade bestbidask depth; do
  # setsid: the daemon gets its own process group, so Ctrl-C here reaches it only through cleanup's
  # SIGTERM (graceful lease hand-off) and never hits its children directly.
  setsid bash "$root/scripts/kcl-daemon.sh" "$kind" > "$logs/kcl-$kind.log" 2>&1 &
  pids+=($!)
  echo "local: KCL daemon for $kind started (pid $!, log .local/logs/kcl-$kind.log)"
done

# The feature sidecar (one per ECS task in production): feat:<SYMBOL> every 2 s, fleet-safe.
"${cli[@]}" sidecar --id local-sidecar-1 > "$logs/sidecar.out" 2>&1 &
pids+=($!)
echo "local: feature sidecar started (pid $!); aggregator features show BTCUSDT prints the vector"
echo "local: sidecar health http://127.0.0.1:8082/health, metrics http://127.0.0.1:9091/metrics"

# The replay also serves the simulated exchange's REST API (snapshots consistent with what it published); a bounded
# run keeps it up a few seconds after the last event so that late re-anchors still get an answer.
replay_args=(replay --source simulator --rate "$rate" --rest-port "$rest_port" --archive "$root/.local/archive")
[[ -n "$duration" ]] && replay_args+=(--duration "$duration" --rest-linger 5)
: > "$logs/replay.log" # emptied before the start, so that the URL read below is this run's
"${cli[@]}" "${replay_args[@]}" > "$logs/replay-summary.json" 2> "$logs/replay.log" &
replay_pid=$!
pids+=("$replay_pid")
echo "local: replaying the market simulator at $rate events/s (log .local/logs/replay.log)"
echo "local: the replay archives what it published under .local/archive (<stream>/YYYY/MM/DD/HH/, objects every 60 s)"
rest_url=""
for _ in $(seq 1 100); do
  rest_url=$(sed -n 's/^replay: serving the simulated exchange REST API at //p' "$logs/replay.log" 2>/dev/null | head -1)
  [[ -n "$rest_url" ]] && break
  kill -0 "$replay_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -n "$rest_url" ]]; then
  echo "local: simulated exchange REST API at $rest_url (e.g. curl '$rest_url/api/v3/depth?symbol=BTCUSDT&limit=5')"
else
  echo "local: the simulated exchange REST API is not up (port $rest_port); see .local/logs/replay.log" >&2
fi
echo "local: processor logs .local/logs/processor.log; Redis: redis-cli -p $(grep -A3 '^redis:' "$CONFIG_FILE" | awk '/port:/{print $2}')"

watch_args=(watch --interval 2 --since "$started_ms")
[[ -n "$duration" ]] && watch_args+=(--duration "$duration")
"${cli[@]}" "${watch_args[@]}" &
watcher=$!
wait "$watcher" || true
echo "local: ran for $(awk "BEGIN{printf \"%.0f\", $(date +%s.%N) - $started_at}") s; replay summary: $(cat "$logs/replay-summary.json" 2>/dev/null || echo '(none yet)')"
