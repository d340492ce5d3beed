import type Redis from 'ioredis';
import { snapshotKeys, type KeySnapshot } from '../../state/snapshot';

// The exactness check of the soak run: the market state the pipeline left in Redis (database 0) against a
// reference computed in process (another database), key by key, with type-aware values. Not compared: the
// feature sidecar's vectors (feat:*), the processors' telemetry (ops:*), dead letters (dlq:*, counted
// separately) and re-anchor bookkeeping (reanchor:*): none of them is a function of the events alone.

export const EXCLUDED_PREFIXES: readonly string[] = ['feat:', 'ops:', 'dlq:', 'reanchor:'];

export type DbSnapshot = KeySnapshot;

/** The state compared: every key of the database but the excluded prefixes. */
export function snapshotDb(
  redis: Redis,
  excluded: readonly string[] = EXCLUDED_PREFIXES,
): Promise<DbSnapshot> {
  return snapshotKeys(redis, { excludePrefixes: excluded });
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
