import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';

// reanchor:<S>:stats (Keys.reanchorStats), a symbol's re-anchor counters and last outcomes: what health's
// reanchor_system, `aggregator reanchor --status/--wait` and `aggregator watch` read. Its writers, with disjoint
// fields:
//   - a re-anchor run (reanchorer.ts), through the functions of this module only: RUN_FIELDS of its scope and,
//     after a swap, SWAP_FIELDS;
//   - the lock, lua/reanchor-acquire-3.lua (lock.ts acquireLock), atomically with taking the lock: LOCK_COUNTERS.
//     The script stays the writer of those three counters (they count what the lock decided, in the same call);
//     nothing in TypeScript writes them.

/** A run's scope: the full re-anchor ('book') or a trade-gap repair alone ('trades'). */
export type StatsScope = 'book' | 'trades';

/**
 * The fields a run writes, per scope: a trade repair keeps counters of its own, so that `swapped`/`failed`/
 * `last_outcome` (health's success rate, `reanchor --wait`) stay about book re-anchors.
 */
export const RUN_FIELDS = {
  book: {
    running: 'running',
    started: 'last_started_ms',
    outcome: 'last_outcome',
    finished: 'last_finished_ms',
    duration: 'last_duration_ms',
    attempts: 'last_attempts',
    failures: 'attempt_failures',
    lastFailure: 'last_failure',
    lastFailureMs: 'last_failure_ms',
    ok: 'swapped',
    failed: 'failed',
  },
  trades: {
    running: 'repair_running',
    started: 'last_repair_started_ms',
    outcome: 'last_repair_outcome',
    finished: 'last_repair_finished_ms',
    duration: 'last_repair_duration_ms',
    attempts: 'last_repair_attempts',
    failures: 'repair_attempt_failures',
    lastFailure: 'last_repair_failure',
    lastFailureMs: 'last_repair_failure_ms',
    ok: 'repaired',
    failed: 'repair_failed',
  },
} as const;

/** What a book run that swapped also records. */
export const SWAP_FIELDS = ['last_ok_ms', 'last_swap_ms', 'last_update_id'] as const;

/** The counters lua/reanchor-acquire-3.lua increments (KEYS[3]): lock taken, taken over, request coalesced. */
export const LOCK_COUNTERS = ['started', 'takeovers', 'coalesced'] as const;

/** A run began: running = 1 and its start time. */
export async function recordRunStarted(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  scope: StatsScope,
  startedMs: number,
): Promise<void> {
  const f = RUN_FIELDS[scope];
  await client.hset(keys.reanchorStats(symbol), f.started, String(startedMs), f.running, '1');
}

/** One failed attempt of a run: counted, and described as the last failure. */
export async function recordAttemptFailure(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  scope: StatsScope,
  description: string,
  atMs: number,
): Promise<void> {
  const stats = keys.reanchorStats(symbol);
  const f = RUN_FIELDS[scope];
  await client.hincrby(stats, f.failures, 1);
  await client.hset(stats, f.lastFailure, description, f.lastFailureMs, String(atMs));
}

/** How a run ended, as recordRunFinished stores it. */
export interface RunEnd {
  readonly outcome: string;
  /** Whether the outcome counts as ok ('swapped', 'repaired') or failed (anything else). */
  readonly ok: boolean;
  readonly finishedMs: number;
  readonly durationMs: number;
  readonly attempts: number;
  /** A swapped book run: when it ended ok, the swap's duration and the book update id swapped in. */
  readonly swap?: {
    readonly okMs: number;
    readonly swapMs: number | undefined;
    readonly bookUpdateId: bigint | undefined;
  };
}

/** A run ended: running = 0, its outcome, times and attempts; then the ok or failed counter. */
export async function recordRunFinished(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  scope: StatsScope,
  end: RunEnd,
): Promise<void> {
  const stats = keys.reanchorStats(symbol);
  const f = RUN_FIELDS[scope];
  const fields = [
    f.running,
    '0',
    f.outcome,
    end.outcome,
    f.finished,
    String(end.finishedMs),
    f.duration,
    String(end.durationMs),
    f.attempts,
    String(end.attempts),
  ];
  if (end.swap !== undefined) {
    const [okMs, swapMs, updateId] = SWAP_FIELDS;
    fields.push(okMs, String(end.swap.okMs), swapMs, String(end.swap.swapMs ?? ''));
    fields.push(updateId, end.swap.bookUpdateId?.toString() ?? '');
  }
  await client.hset(stats, ...fields);
  await client.hincrby(stats, end.ok ? f.ok : f.failed, 1);
}
