import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';
import { REANCHOR_GROUP } from './requests';

// What an operator sees of a symbol's re-anchor (`aggregator reanchor --status`, and what `--wait` follows): the
// lock, the coalesced requests, reanchor:<S>:stats (written by stats.ts and the acquire script) and the
// listeners' consumer group of reanchor:requests. Reads only.

export interface ReanchorStatus {
  readonly symbol: string;
  /** The lock's attempt token while a re-anchor runs. */
  readonly running: string | null;
  readonly pending: Record<string, string>;
  readonly stats: Record<string, string>;
  /** Entries of the request stream not acknowledged yet by any listener (all symbols). */
  readonly unacknowledged: number;
  readonly listeners: number;
  /** The newest request handed to a listener ("" when the group does not exist yet). */
  readonly lastDeliveredId: string;
}

/** Whether stream entry id `a` is at or before `b` ("ms-seq"; "" is before every id). Pure. */
export function streamIdAtMost(a: string, b: string): boolean {
  if (b === '') return false;
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am < bm || (am === bm && as <= bs);
}

export async function readReanchorStatus(
  client: RedisClient,
  keys: Keys,
  symbol: string,
): Promise<ReanchorStatus> {
  const [running, pending, stats] = await Promise.all([
    client.get(keys.reanchorFlag(symbol)),
    client.hgetall(keys.reanchorPending(symbol)),
    client.hgetall(keys.reanchorStats(symbol)),
  ]);
  let unacknowledged = 0;
  let listeners = 0;
  let lastDeliveredId = '';
  try {
    const groups = (await client.xinfo('GROUPS', keys.reanchorRequests())) as unknown[][];
    for (const group of groups) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < group.length; i += 2) info.set(String(group[i]), group[i + 1]);
      if (info.get('name') === REANCHOR_GROUP) {
        unacknowledged = Number(info.get('pending') ?? 0);
        listeners = Number(info.get('consumers') ?? 0);
        const delivered = info.get('last-delivered-id');
        lastDeliveredId = typeof delivered === 'string' ? delivered : '';
      }
    }
  } catch (err) {
    if (!(err instanceof Error) || !/no such key/i.test(err.message)) throw err;
  }
  return { symbol, running, pending, stats, unacknowledged, listeners, lastDeliveredId };
}

/** The book re-anchor outcome counters of reanchor:<S>:stats (swapped, failed; null when never counted). */
export async function readOutcomeCounts(
  client: RedisClient,
  keys: Keys,
  symbol: string,
): Promise<Array<string | null>> {
  return client.hmget(keys.reanchorStats(symbol), 'swapped', 'failed');
}

/** The listener (consumer) holding request `id` unacknowledged, undefined when none does. */
export async function readRequestHolder(
  client: RedisClient,
  keys: Keys,
  id: string,
): Promise<string | undefined> {
  const entry = (await client.xpending(keys.reanchorRequests(), REANCHOR_GROUP, id, id, 1)) as unknown[][];
  return entry[0] === undefined ? undefined : String(entry[0][1]);
}
