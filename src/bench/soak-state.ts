import type Redis from 'ioredis';

// The exactness check of the soak run: the market state the pipeline left in Redis (database 0) against a
// reference computed in process (another database), key by key, with type-aware values. Not compared: the
// feature sidecar's vectors (feat:*), the processors' telemetry (ops:*), dead letters (dlq:*, counted
// separately) and re-anchor bookkeeping (reanchor:*): none of them is a function of the events alone.

export const EXCLUDED_PREFIXES: readonly string[] = ['feat:', 'ops:', 'dlq:', 'reanchor:'];

export interface KeyValue {
  readonly type: string;
  readonly value: unknown;
  readonly expires: boolean;
}
export type DbSnapshot = Record<string, KeyValue>;

export async function snapshotDb(
  redis: Redis,
  excluded: readonly string[] = EXCLUDED_PREFIXES,
): Promise<DbSnapshot> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const k of batch) if (!excluded.some((p) => k.startsWith(p))) keys.push(k);
  } while (cursor !== '0');
  const out: DbSnapshot = {};
  for (const key of keys.sort()) {
    const type = await redis.type(key);
    let value: unknown;
    switch (type) {
      case 'hash':
        value = await redis.hgetall(key);
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

function show(v: unknown): string {
  const text = JSON.stringify(v) ?? 'undefined';
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/**
 * The differences between the pipeline's state and the reference, one line each (hash fields one by one),
 * at most `max` lines; empty when they are equal.
 */
export function diffSnapshots(actual: DbSnapshot, expected: DbSnapshot, max = 20): string[] {
  const out: string[] = [];
  const add = (line: string): boolean => {
    out.push(line);
    return out.length >= max;
  };
  const keys = [...new Set([...Object.keys(actual), ...Object.keys(expected)])].sort();
  for (const key of keys) {
    const a = actual[key];
    const e = expected[key];
    if (a === undefined) {
      if (add(`${key}: missing in the pipeline (reference ${e?.type})`)) break;
      continue;
    }
    if (e === undefined) {
      if (add(`${key}: only in the pipeline (${a.type})`)) break;
      continue;
    }
    if (a.type !== e.type) {
      if (add(`${key}: type ${a.type}, reference ${e.type}`)) break;
      continue;
    }
    if (a.expires !== e.expires) {
      if (add(`${key}: ${a.expires ? 'has' : 'has no'} TTL, reference ${e.expires ? 'has' : 'has none'}`))
        break;
    }
    if (a.type === 'hash') {
      const av = a.value as Record<string, string>;
      const ev = e.value as Record<string, string>;
      const fields = [...new Set([...Object.keys(av), ...Object.keys(ev)])].sort();
      let stop = false;
      for (const f of fields) {
        if (av[f] !== ev[f]) {
          stop = add(`${key} ${f}: ${show(av[f])}, reference ${show(ev[f])}`);
          if (stop) break;
        }
      }
      if (stop) break;
    } else if (JSON.stringify(a.value) !== JSON.stringify(e.value)) {
      if (add(`${key}: ${show(a.value)}, reference ${show(e.value)}`)) break;
    }
  }
  return out;
}
