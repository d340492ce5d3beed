import type { Redis } from 'ioredis';

// Every key of a Redis database with its type-aware content, for "nothing changed" comparisons.
// Stream entry ids embed the server clock, so streams are compared by their fields only.

export type KeySnapshot = Record<string, { type: string; value: unknown; expires: boolean }>;

export async function snapshotKeys(redis: Redis, match = '*'): Promise<KeySnapshot> {
  const out: KeySnapshot = {};
  let cursor = '0';
  const keys: string[] = [];
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  for (const key of keys.sort()) {
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

/** The market state only: every key but the dead letters (dlq:*) and the processors' telemetry (ops:*). */
export async function snapshotStateKeys(redis: Redis): Promise<KeySnapshot> {
  const all = await snapshotKeys(redis);
  for (const key of Object.keys(all)) if (key.startsWith('dlq:') || key.startsWith('ops:')) delete all[key];
  return all;
}
