import os from 'node:os';
import type { Command } from 'commander';
import { runSidecar } from '../../app/sidecar';
import { loadConfig } from '../../config/config';
import { taskIdOfThisProcess } from '../../config/task';
import { FEATURE_NAMES } from '../../features/compute';
import { Keys } from '../../state/keys';
import { createRedisClient } from '../../state/redis';
import { readServedFeatures, type ServedFeatures } from '../../sidecar/store';
import { positiveInteger } from './options';

// `aggregator sidecar`: the feature sidecar (src/app/sidecar.ts; one per ECS task, the tasks share the symbols
// through per-symbol leases in Redis). Runs until SIGTERM/SIGINT, then finishes its in-flight tick and releases
// its leases.
// `aggregator features show <SYMBOL>`: the served vector feat:<SYMBOL>, its age and the lease holder.

export const DEFAULT_HISTORY_MAX_LEN = 3600;

export function registerSidecar(program: Command): void {
  program
    .command('sidecar')
    .description('compute the feature vector feat:<SYMBOL> of every symbol every interval (fleet-safe)')
    .option('--id <id>', 'sidecar id, the lease value (default: <hostname>-<pid>)')
    .option(
      '--history-max-len <n>',
      `approximate length cap of feat:<SYMBOL>:history (default: processing.feature_history_max_len, ${DEFAULT_HISTORY_MAX_LEN})`,
    )
    .action(async (options: { id?: string; historyMaxLen?: string }, command: Command) => {
      const config = loadConfig(command.optsWithGlobals<{ config?: string }>().config, process.env);
      const task = taskIdOfThisProcess();
      const sidecarId = options.id ?? `${os.hostname()}-${process.pid}`;
      const historyMaxLen =
        options.historyMaxLen === undefined
          ? config.processing.featureHistoryMaxLen
          : positiveInteger('--history-max-len', options.historyMaxLen);
      await runSidecar({ config, task, sidecarId, historyMaxLen });
    });
}

/** What `features show` reads: the served vector, its TTL and the lease holder. */
export type FeaturesView = ServedFeatures;

/** Vector fields in the documented order, unknown ones after them in name order. */
function orderedFields(vector: Readonly<Record<string, string>>): string[] {
  const known = FEATURE_NAMES.filter((name) => name in vector);
  const rest = Object.keys(vector)
    .filter((name) => !FEATURE_NAMES.includes(name))
    .sort();
  return [...known, ...rest];
}

/** Age of the served vector at nowMs (now - feature_ts), undefined when feature_ts is missing. */
export function vectorAgeMs(vector: Readonly<Record<string, string>>, nowMs: number): number | undefined {
  const ts = Number(vector.feature_ts);
  return vector.feature_ts === undefined || vector.feature_ts === '' || !Number.isFinite(ts)
    ? undefined
    : nowMs - ts;
}

/** The view as one JSON object (values as stored: exact strings). Pure. */
export function renderFeaturesJson(view: FeaturesView, nowMs: number): string {
  const vector: Record<string, string> = {};
  for (const field of orderedFields(view.vector)) vector[field] = view.vector[field] ?? '';
  return JSON.stringify({
    symbol: view.symbol,
    key: view.key,
    ageMs: vectorAgeMs(view.vector, nowMs) ?? null,
    ttlMs: view.ttlMs,
    leaseHolder: view.leaseHolder,
    vector,
  });
}

/** The view as a two-column table under a header line. Pure. */
export function renderFeaturesTable(view: FeaturesView, nowMs: number): string {
  const fields = orderedFields(view.vector);
  const holder = view.leaseHolder ?? '-';
  if (fields.length === 0) {
    return `${view.key}: no feature vector (never written or expired)  lease=${holder}\n`;
  }
  const age = vectorAgeMs(view.vector, nowMs);
  const lines = [
    `${view.key}  age=${age === undefined ? '-' : `${age} ms`}  ttl=${view.ttlMs >= 0 ? `${view.ttlMs} ms` : '-'}  lease=${holder}`,
  ];
  const width = Math.max(...fields.map((f) => f.length));
  for (const field of fields) lines.push(`  ${field.padEnd(width)}  ${view.vector[field] ?? ''}`);
  return `${lines.join('\n')}\n`;
}

export function registerFeaturesShow(featuresCommand: Command): void {
  featuresCommand
    .command('show')
    .description(
      'print the served feature vector feat:<SYMBOL>, its age (now - feature_ts) and the lease holder',
    )
    .argument('<SYMBOL>', 'symbol, e.g. BTCUSDT')
    .option('--json', 'one JSON object instead of a table')
    .action(async (symbolArg: string, options: { json?: boolean }, command: Command) => {
      const config = loadConfig(command.optsWithGlobals<{ config?: string }>().config, process.env);
      const keys = new Keys({ clusterMode: config.redis.clusterMode });
      const symbol = symbolArg.toUpperCase();
      const redis = createRedisClient(config.redis, { connectionName: 'features-show' });
      redis.on('error', () => undefined);
      try {
        const view = await readServedFeatures(redis, keys, symbol);
        const now = Date.now();
        process.stdout.write(
          options.json ? `${renderFeaturesJson(view, now)}\n` : renderFeaturesTable(view, now),
        );
        if (Object.keys(view.vector).length === 0) process.exitCode = 1;
      } finally {
        redis.disconnect();
      }
    });
}
