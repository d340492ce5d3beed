import fs from 'node:fs';
import path from 'node:path';
import Redis, { Cluster } from 'ioredis';
import type { Result, RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/config';

// Redis connections with the service's Lua scripts defined once per connection (ioredis sends EVALSHA and
// falls back to EVAL on NOSCRIPT, so a SCRIPT FLUSH or a failover to a fresh node is harmless).

declare module 'ioredis' {
  interface RedisCommander<Context> {
    deadLetter(
      streamKey: string,
      seenKey: string,
      countsKey: string,
      ...args: string[]
    ): Result<number, Context>;
  }
}

export type RedisClient = Redis | Cluster;

/**
 * Every `lua/<name>-<numberOfKeys>.lua` becomes the command `<camelCaseName>` on each connection (bullmq's
 * convention). A line `--@include <file>` is replaced by `lua/includes/<file>.lua`, so helpers shared by several
 * scripts live once. Each module that calls a script declares its typed signature by merging into
 * ioredis' RedisCommander, as the command above does.
 */
export interface ScriptSource {
  readonly command: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

const SCRIPT_FILE = /^([a-z0-9-]+)-(\d+)\.lua$/;

function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function expandIncludes(lua: string, includeDir: string, seen: Set<string>): string {
  return lua.replace(/^--@include ([a-z0-9-]+)\s*$/gm, (_line, name: string) => {
    if (seen.has(name)) return `-- (${name} already included)`;
    seen.add(name);
    const body = fs.readFileSync(path.join(includeDir, `${name}.lua`), 'utf8');
    return expandIncludes(body, includeDir, seen);
  });
}

/** Reads and expands every script of a directory. Pure apart from the reads; cached per directory. */
export function loadScriptSources(dir: string = path.join(__dirname, 'lua')): ScriptSource[] {
  const cached = scriptCache.get(dir);
  if (cached) return cached;
  const sources: ScriptSource[] = [];
  for (const file of fs.readdirSync(dir).sort()) {
    const match = SCRIPT_FILE.exec(file);
    if (!match?.[1] || !match[2]) continue;
    const lua = expandIncludes(
      fs.readFileSync(path.join(dir, file), 'utf8'),
      path.join(dir, 'includes'),
      new Set(),
    );
    sources.push({ command: camelCase(match[1]), numberOfKeys: Number(match[2]), lua });
  }
  scriptCache.set(dir, sources);
  return sources;
}
const scriptCache = new Map<string, ScriptSource[]>();

export function defineScripts(client: RedisClient): void {
  for (const script of loadScriptSources()) {
    client.defineCommand(script.command, { numberOfKeys: script.numberOfKeys, lua: script.lua });
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
    // RESP2, as with ioredis 5 (ioredis 6 defaults to RESP3): the scripts' replies and every reader's reply shapes
    // stay what they were, and it works on any Redis (RESP3 needs Redis 6+ and HELLO).
    protocol: 2,
    db: config.db,
    username: config.username,
    password: config.password,
    tls: config.tls ? {} : undefined,
    connectionName: options.connectionName,
    connectTimeout: config.socketConnectTimeoutSeconds * 1000,
    commandTimeout: config.socketTimeoutSeconds * 1000,
    maxRetriesPerRequest: options.maxRetriesPerRequest ?? 1,
    enableAutoPipelining: true,
    // Reconnect forever with a capped backoff (1 s: back within about a second of Redis answering again); callers
    // bound their own waiting with deadlines. Each reconnect resolves the host name again (a failover's DNS change).
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 1000),
    // A demoted primary answers READONLY (MASTERDOWN: a replica that lost its primary): reconnect, so the endpoint
    // is resolved again and the caller's retry reaches the new primary. The failed command is not resent here:
    // the caller's retry policy owns retries. Scripts are reloaded on the new node on demand (EVALSHA -> NOSCRIPT
    // -> EVAL, ioredis' defineCommand).
    reconnectOnError: (err: Error) => (/^(READONLY|MASTERDOWN)\b/.test(err.message) ? 1 : false),
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
      // The slot map, refreshed every second (and on every redirection ioredis follows itself): after a failover,
      // a retried call reaches the slot's new master within about a second.
      slotsRefreshInterval: 1000,
    });
  } else {
    client = new Redis({ host: config.host, port: config.port, ...baseOptions(config, options) });
  }
  defineScripts(client);
  return client;
}
