import type { Result } from 'ioredis';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';
import { matchesFilter, parseEntry, type DeadLetterEntry, type LetterFilter } from './letters';
import type { ClaimResult, RedriveStore } from './redrive';

// Reading and trimming a dead-letter stream (dlq:{<stream>}) for `aggregator dlq`.

declare module 'ioredis' {
  interface RedisCommander<Context> {
    dlqClaim(
      streamKey: string,
      claimKey: string,
      entryId: string,
      token: string,
      ttlSeconds: string,
    ): Result<number, Context>;
    dlqRelease(
      streamKey: string,
      claimKey: string,
      entryId: string,
      token: string,
      trim: '1' | '0',
    ): Result<number, Context>;
  }
}

/** Entries per XRANGE call while scanning a stream. */
export const XRANGE_PAGE = 500;

/** How long a re-drive's claim of a letter lives if the re-drive dies before releasing it. */
export const REDRIVE_CLAIM_TTL_SECONDS = 300;

type XRangeReply = Array<[string, string[]]>;

/**
 * The letters of a stream that match the filter, oldest first, read in pages of XRANGE_PAGE (the time bounds
 * become the id range). Stops after `limit` matches when given.
 */
export async function readLetters(
  client: RedisClient,
  keys: Keys,
  stream: string,
  filter: LetterFilter,
  limit?: number,
): Promise<DeadLetterEntry[]> {
  const key = keys.deadLetters(stream);
  let start = filter.sinceMs === undefined ? '-' : `${Math.max(0, Math.ceil(filter.sinceMs))}-0`;
  const end = filter.untilMs === undefined ? '+' : String(Math.max(0, Math.floor(filter.untilMs)));
  const out: DeadLetterEntry[] = [];
  for (;;) {
    const page = (await client.xrange(key, start, end, 'COUNT', XRANGE_PAGE)) as XRangeReply;
    for (const [id, fields] of page) {
      const entry = parseEntry(id, fields);
      if (!matchesFilter(entry, filter)) continue;
      out.push(entry);
      if (limit !== undefined && out.length >= limit) return out;
    }
    const last = page[page.length - 1];
    if (page.length < XRANGE_PAGE || last === undefined) return out;
    start = `(${last[0]}`;
  }
}

/** One letter by its entry id, or undefined when the stream does not hold it. */
export async function readLetter(
  client: RedisClient,
  keys: Keys,
  stream: string,
  id: string,
): Promise<DeadLetterEntry | undefined> {
  const page = (await client.xrange(keys.deadLetters(stream), id, id)) as XRangeReply;
  const first = page[0];
  return first === undefined ? undefined : parseEntry(first[0], first[1]);
}

/** The stream's length and its per-code counts (counted since the first letter; never trimmed). */
export async function readLetterTotals(
  client: RedisClient,
  keys: Keys,
  stream: string,
): Promise<{ readonly length: number; readonly counts: Record<string, string> }> {
  const [length, counts] = await Promise.all([
    client.xlen(keys.deadLetters(stream)),
    client.hgetall(keys.deadLetterCounts(stream)),
  ]);
  return { length, counts };
}

/** Claims and releases letters through lua/dlq-claim-2.lua and lua/dlq-release-2.lua. */
export function redisRedriveStore(
  client: RedisClient,
  keys: Keys,
  stream: string,
  token: string,
): RedriveStore {
  const streamKey = keys.deadLetters(stream);
  return {
    async claim(id: string): Promise<ClaimResult> {
      const reply = await client.dlqClaim(
        streamKey,
        keys.deadLetterRedriveClaim(stream, id),
        id,
        token,
        String(REDRIVE_CLAIM_TTL_SECONDS),
      );
      return reply === 1 ? 'claimed' : reply === 0 ? 'gone' : 'busy';
    },
    async release(id: string, trim: boolean): Promise<number> {
      return client.dlqRelease(
        streamKey,
        keys.deadLetterRedriveClaim(stream, id),
        id,
        token,
        trim ? '1' : '0',
      );
    },
  };
}
