import type { Redis } from 'ioredis';
import { snapshotKeys as snapshot, type KeySnapshot } from '../../src/state/snapshot';

// Test views of src/state/snapshot.ts: every key of a database, or the market state only.

export type { KeySnapshot };

export function snapshotKeys(redis: Redis, match = '*'): Promise<KeySnapshot> {
  return snapshot(redis, { match });
}

/** The market state only: every key but the dead letters (dlq:*) and the processors' telemetry (ops:*). */
export function snapshotStateKeys(redis: Redis): Promise<KeySnapshot> {
  return snapshot(redis, { excludePrefixes: ['dlq:', 'ops:'] });
}
