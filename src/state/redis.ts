import fs from 'node:fs';
import path from 'node:path';
import Redis, { Cluster } from 'ioredis';
import type { Result, RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/config';

// Redis connections with the service's Lua scripts defined once per connection (ioredis sends EVALSHA and
// falls back to EVAL on NOSCRIPT, so a SCRIPT FLUSH or a failover to a fresh node is harmless).

declare module 'ioredis' {
  interface RedisCommander<Context> {
    applyMarketBatch(obKey: string, ...args: string[]): Result<[number, number, number], Context>;
    deadLetter(
      streamKey: string,
      seenKey: string,
      countsKey: string,
      ...args: string[]
    ): Result<number, Context>;
  }
}

export type RedisClient = Redis | Cluster;

interface ScriptDefinition {
  readonly name: 'applyMarketBatch' | 'deadLetter';
  readonly file: string;
}

const SCRIPTS: readonly ScriptDefinition[] = [
  { name: 'applyMarketBatch', file: 'apply-market-batch-1.lua' },
  { name: 'deadLetter', file: 'dead-letter-3.lua' },
];

/** Script files are named <name>-<numberOfKeys>.lua, as in bullmq. */
function numberOfKeys(file: string): number {
  const match = /-(\d+)\.lua$/.exec(file);
  if (!match?.[1]) throw new Error(`Lua script file name must end in -<numberOfKeys>.lua: ${file}`);
  return Number(match[1]);
}

let scriptCache: Map<string, string> | undefined;
function loadScripts(): Map<string, string> {
  if (scriptCache === undefined) {
    const dir = path.join(__dirname, 'lua');
    scriptCache = new Map(SCRIPTS.map((s) => [s.file, fs.readFileSync(path.join(dir, s.file), 'utf8')]));
  }
  return scriptCache;
}

export function defineScripts(client: RedisClient): void {
  const sources = loadScripts();
  for (const script of SCRIPTS) {
    client.defineCommand(script.name, {
      numberOfKeys: numberOfKeys(script.file),
      lua: sources.get(script.file) ?? '',
    });
  }
}

export interface ConnectOptions {
  /** Name shown in CLIENT LIST, e.g. "processor:trade:shardId-000000000000". */
  readonly connectionName: string;
  /** Retries per command inside ioredis before the caller's own retry loop takes over. */
  readonly maxRetriesPerRequest?: number;
}

function baseOptions(config: RedisConfig, options: ConnectOptions): RedisOptions {
  return {
    db: config.db,
    username: config.username,
    password: config.password,
    tls: config.tls ? {} : undefined,
    connectionName: options.connectionName,
    connectTimeout: config.socketConnectTimeoutSeconds * 1000,
    commandTimeout: config.socketTimeoutSeconds * 1000,
    maxRetriesPerRequest: options.maxRetriesPerRequest ?? 1,
    enableAutoPipelining: true,
    // Reconnect forever with a capped backoff; callers bound their own waiting with deadlines.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: false,
  };
}

export function createRedisClient(config: RedisConfig, options: ConnectOptions): RedisClient {
  let client: RedisClient;
  if (config.clusterMode) {
    client = new Cluster([{ host: config.host, port: config.port }], {
      redisOptions: baseOptions(config, options),
      enableAutoPipelining: true,
      clusterRetryStrategy: (times: number) => Math.min(100 * times, 2000),
    });
  } else {
    client = new Redis({ host: config.host, port: config.port, ...baseOptions(config, options) });
  }
  defineScripts(client);
  return client;
}
