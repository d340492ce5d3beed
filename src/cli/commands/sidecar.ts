import os from 'node:os';
import type { Command } from 'commander';
import { loadConfig } from '../../config/config';
import { taskIdOfThisProcess } from '../../config/task';
import { computeFeatures, FEATURE_NAMES } from '../../features/compute';
import { readSnapshot } from '../../features/snapshot';
import { createLogger, endLogger, type Logger } from '../../logging/logger';
import { healthHandler, type HealthResult } from '../../ops/health';
import { startMetricsServer, type MetricsServer } from '../../ops/metrics-server';
import { SidecarMetrics, type HealthLevel } from '../../ops/sidecar-metrics';
import { readReports } from '../../ops/telemetry';
import { startHealthServer, type HealthServer } from '../../ops/health-server';
import { FeatureSidecar } from '../../sidecar/sidecar';
import { Keys } from '../../state/keys';
import { RedisOutage } from '../../state/outage';
import { createRedisClient } from '../../state/redis';
import { readRestBan } from '../../reanchor/rest-gate';
import { startReanchorService, type ReanchorService } from '../../reanchor/service';
import type { AppConfig } from '../../config/config';

// `aggregator sidecar`: the feature sidecar (one per ECS task; the tasks share the symbols through per-symbol
// leases in Redis). Runs until SIGTERM/SIGINT, then finishes its in-flight tick and releases its leases.
// `aggregator features show <SYMBOL>`: the served vector feat:<SYMBOL>, its age and the lease holder.

export const DEFAULT_HISTORY_MAX_LEN = 3600;

/** What the operations endpoints read of this sidecar (informational in /health; never its status). */
export interface OpsSources {
  readonly sidecar: FeatureSidecar;
  readonly reanchor: ReanchorService | undefined;
  readonly metrics: SidecarMetrics;
  readonly outage?: RedisOutage;
}

/** Every component status of a /health evaluation as aggregator_health_status gauges. */
function recordHealth(metrics: SidecarMetrics, result: HealthResult): void {
  const { components } = result.body;
  metrics.recordHealth('overall', result.body.status);
  metrics.recordHealth('redis', components.redis.status);
  metrics.recordHealth('feature_pipeline', components.feature_pipeline.status);
  metrics.recordHealth('reanchor_system', components.reanchor_system.status);
  for (const [stream, consumer] of Object.entries(components.kinesis_consumers)) {
    const status = (consumer as { status?: HealthLevel }).status;
    if (status !== undefined) metrics.recordHealth(`kinesis_consumer:${stream}`, status);
  }
}

/**
 * The sidecar's operations endpoints: GET /health and /live on health.host:health.port, with a Redis connection of
 * their own (short timeouts, no retries, so a Redis outage answers 503 at once). Returns what stop() must close.
 */
export async function startOpsEndpoints(
  config: AppConfig,
  sidecarId: string,
  sources: OpsSources,
  logger: Logger,
): Promise<{ stop(): Promise<void> }> {
  const keys = new Keys({ clusterMode: config.redis.clusterMode });
  const redis = createRedisClient(
    { ...config.redis, socketTimeoutSeconds: 1, socketConnectTimeoutSeconds: 1 },
    { connectionName: `health:${sidecarId}`, maxRetriesPerRequest: 0 },
  );
  redis.on('error', () => undefined); // reported by /health itself
  let health: HealthServer;
  try {
    health = await startHealthServer({
      host: config.health.host,
      port: config.health.port,
      handler: healthHandler(redis, keys, config, {
        sidecarId,
        local: () => ({
          held_symbols: sources.sidecar.heldSymbols(),
          feature_ticks: sources.sidecar.stats(),
          reanchor_listener: sources.reanchor?.listener.stats() ?? null,
        }),
        onResult: (result) => recordHealth(sources.metrics, result),
        ...(sources.outage === undefined ? {} : { outage: sources.outage }),
      }),
    });
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  logger.info('health endpoint listening', { url: `${health.url}/health`, live: `${health.url}/live` });
  let metricsServer: MetricsServer | undefined;
  if (config.metrics.enablePrometheus) {
    try {
      metricsServer = await startMetricsServer({
        host: config.health.host,
        port: config.metrics.prometheusPort,
        logger,
        exposition: async () => {
          const now = Date.now();
          const { reports } = await readReports(redis, keys, now).catch(() => ({ reports: [] }));
          const ban = await readRestBan(redis, keys).catch(() => undefined);
          sources.metrics.recordRestBan(ban?.untilMs, now);
          return sources.metrics.exposition(reports, now);
        },
      });
      logger.info('metrics endpoint listening', { url: metricsServer.url });
    } catch (err) {
      logger.error('cannot start the metrics endpoint; running without it', {
        error: (err as Error).message,
        port: config.metrics.prometheusPort,
      });
    }
  }
  return {
    async stop() {
      await metricsServer?.stop();
      await health.stop();
      redis.disconnect();
    },
  };
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
  }
  return value;
}

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
      const logger = createLogger({
        level: config.logging.level,
        file: config.logging.file,
        defaultMeta: { service: config.serviceName, role: 'sidecar', sidecarId, pid: process.pid },
      });
      const redis = createRedisClient(config.redis, { connectionName: `sidecar:${sidecarId}` });
      // One line when Redis goes away, one when it is back; meanwhile the ticks fail (counted) and /health says
      // since when. Nothing here gives up: the sidecar serves again on its own when Redis answers.
      // /metrics exports the processors of this task only (their reports name it; /health shows the fleet's).
      const metrics = new SidecarMetrics({ task });
      logger.info('metrics: exporting the processors of this task', { task });
      const outage = new RedisOutage({ logger, onEnd: (ms) => metrics.recordRedisOutage(ms) });
      outage.watch(redis);
      const sidecar = new FeatureSidecar({
        outage,
        client: redis,
        keys: new Keys({ clusterMode: config.redis.clusterMode }),
        symbols: config.processing.symbols,
        intervalMs: Math.round(config.processing.featureUpdateIntervalSeconds * 1000),
        sidecarId,
        historyMaxLen,
        readSnapshot,
        computeFeatures,
        featureOptions: { maxFutureSkewMs: config.processing.maxFutureSkewMs },
        logger,
      });
      sidecar.on('tick', (result) => {
        metrics.recordTick(result);
        if (result.kind !== 'failed') outage.recovered();
      });
      sidecar.start();
      let reanchor: ReanchorService | undefined;
      if (config.reanchor.enabled) {
        reanchor = startReanchorService({
          config,
          client: redis,
          keys: new Keys({ clusterMode: config.redis.clusterMode }),
          logger,
          listenerId: sidecarId.replace(/\|/g, '_'),
          watchedSymbols: () => sidecar.heldSymbols(),
          outage,
        });
        reanchor.listener.onHandled((request, outcome) => metrics.recordReanchor(request, outcome));
      }
      const stopped = new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      // Operations endpoints (health; the Prometheus /metrics server belongs here too). A port that cannot be
      // bound is logged at error and the sidecar keeps serving features (the orchestrator's health check fails).
      const ops = await startOpsEndpoints(
        config,
        sidecarId,
        { sidecar, reanchor, metrics, outage },
        logger,
      ).catch((err: unknown) => {
        logger.error('cannot start the health endpoint; running without it', {
          error: (err as Error).message,
          host: config.health.host,
          port: config.health.port,
        });
        return undefined;
      });
      const signal = await stopped;
      logger.info('stopping the feature sidecar', { signal });
      await ops?.stop();
      await reanchor?.stop();
      await sidecar.stop();
      redis.disconnect();
      await new Promise<void>((resolve) => {
        endLogger(logger, resolve); // not logger.end(): it can crash on a backlog of lines (see endLogger)
        setTimeout(resolve, 2000).unref();
      });
    });
}

/** What `features show` reads: the served vector, its TTL and the lease holder. */
export interface FeaturesView {
  readonly symbol: string;
  readonly key: string;
  readonly vector: Readonly<Record<string, string>>;
  readonly ttlMs: number;
  readonly leaseHolder: string | null;
}

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
        const [vector, ttlMs, leaseHolder] = await Promise.all([
          redis.hgetall(keys.features(symbol)),
          redis.pttl(keys.features(symbol)),
          redis.get(keys.featureLease(symbol)),
        ]);
        const view: FeaturesView = { symbol, key: keys.features(symbol), vector, ttlMs, leaseHolder };
        const now = Date.now();
        process.stdout.write(
          options.json ? `${renderFeaturesJson(view, now)}\n` : renderFeaturesTable(view, now),
        );
        if (Object.keys(vector).length === 0) process.exitCode = 1;
      } finally {
        redis.disconnect();
      }
    });
}
