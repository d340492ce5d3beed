import { Cluster } from 'ioredis';
import type { AppConfig } from '../config/config';
import type { Logger } from '../logging/logger';
import { RestClient, type RestGate } from '../rest/client';
import type { Keys } from '../state/keys';
import { logRedisFailure, type RedisOutage } from '../state/outage';
import type { RedisClient } from '../state/redis';
import { ReanchorListener } from '../reanchor/listener';
import { ReanchorMonitor } from '../reanchor/monitor';
import { Reanchorer, type SnapshotSource } from '../reanchor/reanchorer';
import { RedisRestGate } from '../reanchor/rest-gate';

// The sidecar's re-anchor half (src/app/sidecar.ts), built from the config: the listener (consumer of
// reanchor:requests) and the monitor that requests re-anchors for the symbols this sidecar serves (checked every
// monitorEveryMs).

export interface ReanchorService {
  readonly listener: ReanchorListener;
  readonly monitor: ReanchorMonitor;
  stop(): Promise<void>;
}

export interface ReanchorServiceOptions {
  readonly config: AppConfig;
  readonly client: RedisClient;
  readonly keys: Keys;
  readonly logger: Logger;
  readonly listenerId: string;
  /** Symbols the monitor watches (the sidecar's feature leases). */
  readonly watchedSymbols: () => readonly string[];
  readonly monitorEveryMs?: number;
  /** Default: a RestClient on reanchor.rest. */
  readonly source?: SnapshotSource;
  /** The process's Redis outage tracker (one line per outage instead of one per failed poll). */
  readonly outage?: RedisOutage;
}

/** The REST client of reanchor.rest; with a gate, its bans and weight budget are the fleet's (RedisRestGate). */
export function restClientFor(config: AppConfig, gate?: RestGate): RestClient {
  const rest = config.reanchor.rest;
  return new RestClient({
    baseUrl: rest.baseUrl,
    timeoutMs: rest.timeoutMs,
    maxRetries: rest.maxRetries,
    weightPerMinute: rest.weightPerMinute,
    gate,
  });
}

export function startReanchorService(options: ReanchorServiceOptions): ReanchorService {
  const { config, client, keys, logger } = options;
  const reanchorer = new Reanchorer({
    client,
    keys,
    source: options.source ?? restClientFor(config, new RedisRestGate(client, keys, options.listenerId)),
    logger,
    depthLimit: config.reanchor.rest.depthLimit,
    tradesLimit: config.reanchor.rest.tradesLimit,
    levels: config.processing.orderBookLevels,
    maxAttempts: config.reanchor.maxAttempts,
    backoffBaseMs: config.reanchor.backoffBaseMs,
    backoffMaxMs: config.reanchor.backoffMaxMs,
    maxBanWaitMs: config.reanchor.rest.maxBanWaitSeconds * 1000,
  });
  // Same options, own connection (a blocking read must not hold up the listener's other commands).
  const blockingClient: RedisClient = client instanceof Cluster ? client.duplicate() : client.duplicate();
  blockingClient.on('error', (err: Error) =>
    logRedisFailure(options.outage, logger, 'warn', 'redis connection error (re-anchor listener)', err),
  );
  const listener = new ReanchorListener({
    client,
    blockingClient,
    keys,
    symbols: config.processing.symbols,
    listenerId: options.listenerId,
    reanchorer,
    logger,
    claimIdleMs: config.reanchor.claimIdleMs,
    // A blocking read must end before the connection's command timeout (redis.socket_timeout_seconds).
    blockMs: Math.max(100, Math.floor((config.redis.socketTimeoutSeconds * 1000) / 2)),
    ...(options.outage === undefined ? {} : { outage: options.outage }),
  });
  const monitor = new ReanchorMonitor({
    client,
    keys,
    symbols: options.watchedSymbols,
    staleAfterMs: config.reanchor.staleAfterSeconds * 1000,
    requestIntervalMs: config.reanchor.requestIntervalSeconds * 1000,
    logger,
  });
  listener.start();
  let checking: Promise<unknown> | undefined;
  const timer = setInterval(() => {
    if (checking) return;
    checking = monitor
      .checkOnce()
      .catch((err: unknown) =>
        logRedisFailure(options.outage, logger, 'warn', 're-anchor monitor: redis call failed', err),
      )
      .finally(() => {
        checking = undefined;
      });
  }, options.monitorEveryMs ?? 1000);
  return {
    listener,
    monitor,
    async stop() {
      clearInterval(timer);
      await checking;
      await listener.stop();
      blockingClient.disconnect();
    },
  };
}
