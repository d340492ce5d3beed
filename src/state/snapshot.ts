import type Redis from 'ioredis';

// Every key of a Redis database with its type-aware content, for "exactly this state" comparisons (the soak
// run's exactness check, the tests). Stream entry ids embed the server clock, so streams keep their fields only.

export interface KeyValue {
  readonly type: string;
  readonly value: unknown;
  readonly expires: boolean;
}
export type KeySnapshot = Record<string, KeyValue>;

export interface ScanOptions {
  /** SCAN MATCH pattern (default: every key). */
  readonly match?: string;
  /** Keys starting with one of these are left out before anything is read. */
  readonly excludePrefixes?: readonly string[];
}

/** The names of the database's keys (sorted, each once), filtered before their values are read. */
export async function scanKeys(redis: Redis, options: ScanOptions = {}): Promise<string[]> {
  const excluded = options.excludePrefixes ?? [];
  const keys = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', options.match ?? '*', 'COUNT', 1000);
    cursor = next;
    for (const k of batch) if (!excluded.some((p) => k.startsWith(p))) keys.add(k);
  } while (cursor !== '0');
  return [...keys].sort();
}

/** The content of the given keys, one key at a time (hash fields sorted, set members sorted). */
export async function readKeys(redis: Redis, keys: readonly string[]): Promise<KeySnapshot> {
  const out: KeySnapshot = {};
  for (const key of keys) {
    const type = await redis.type(key);
    let value: unknown;
    switch (type) {
      case 'hash':
        value = Object.fromEntries(
          Object.entries(await redis.hgetall(key)).sort(([a], [b]) => a.localeCompare(b)),
        );
        break;
      case 'zset':
        value = await redis.zrange(key, 0, -1, 'WITHSCORES');
        break;
      case 'list':
        value = await redis.lrange(key, 0, -1);
        break;
      case 'set':
        value = (await redis.smembers(key)).sort();
        break;
      case 'stream':
        value = (await redis.xrange(key, '-', '+')).map(([, fields]) => fields);
        break;
      default:
        value = await redis.get(key);
    }
    out[key] = { type, value, expires: (await redis.pttl(key)) > 0 };
  }
  return out;
}

/** scanKeys + readKeys. */
export async function snapshotKeys(redis: Redis, options: ScanOptions = {}): Promise<KeySnapshot> {
  return readKeys(redis, await scanKeys(redis, options));
}
