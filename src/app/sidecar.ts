import type { AppConfig } from '../config/config';
import { computeFeatures } from '../features/compute';
import { readSnapshot } from '../features/snapshot';
import { createLogger, endLogger, type Logger } from '../logging/logger';
import { healthHandler, type HealthResult } from '../ops/health';
import { startHealthServer, type HealthServer } from '../ops/health-server';
import { startMetricsServer, type MetricsServer } from '../ops/metrics-server';
import { SidecarMetrics, type HealthLevel } from '../ops/sidecar-metrics';
import { readReports } from '../ops/telemetry';
import { readRestBan } from '../reanchor/rest-gate';
import { startReanchorService, type ReanchorService } from './reanchor';
import { FeatureSidecar } from '../sidecar/sidecar';
import { Keys } from '../state/keys';
import { RedisOutage } from '../state/outage';
import { createRedisClient } from '../state/redis';

// The feature sidecar process (`aggregator sidecar`, src/cli/commands/sidecar.ts; one per ECS task, the tasks
// share the symbols through per-symbol leases in Redis): the feature timer, the re-anchor listener and monitor,
// GET /health and /live, the Prometheus /metrics. Runs until SIGTERM/SIGINT, then finishes its in-flight tick
// and releases its leases.

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

export interface SidecarProcessOptions {
  readonly config: AppConfig;
  /** The task whose processors' reports /metrics exports. */
  readonly task: string;
  /** The sidecar id, the lease value. */
  readonly sidecarId: string;
  /** Approximate length cap of feat:<SYMBOL>:history. */
  readonly historyMaxLen: number;
}

/** Assembles and runs the sidecar until SIGTERM/SIGINT; resolves once it has stopped. */
export async function runSidecar({
  config,
  task,
  sidecarId,
  historyMaxLen,
}: SidecarProcessOptions): Promise<void> {
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
}
