import type { Result } from 'ioredis';
import { ScriptReplyError } from '../state/errors';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';

// The fleet-wide per-symbol re-anchor lock reanchor:<S> (lua/reanchor-acquire-3, -release-2, -renew-1).

declare module 'ioredis' {
  interface RedisCommander<Context> {
    reanchorAcquire(...keysAndArgs: string[]): Result<[number, string], Context>;
    reanchorRelease(
      ...keysAndArgs: string[]
    ): Result<[number, number, string, string, number, string], Context>;
    reanchorRenew(...keysAndArgs: string[]): Result<number, Context>;
  }
}

/** TTL of reanchor:<S>; the holder renews it while it runs, so only a dead holder's lock expires. */
export const LOCK_TTL_SECONDS = 300;

export type AcquireOutcome = 'acquired' | 'taken-over' | 'coalesced';

export interface AcquireResult {
  readonly outcome: AcquireOutcome;
  /** For taken-over and coalesced: the token that held the lock. */
  readonly holder: string;
}

export interface ReleaseResult {
  readonly released: boolean;
  /** Requests coalesced while the lock was held. */
  readonly pendingCount: number;
  /** The newest of them (undefined when none). */
  readonly pendingLatestMs: number | undefined;
  readonly pendingReason: string;
  /** Of them, those that need the book rebuilt (every reason but trade_gap), and the newest's time. */
  readonly pendingBookCount: number;
  readonly pendingBookLatestMs: number | undefined;
}

/** The attempt token stored in the lock: which listener runs which request. Pure. */
export function attemptToken(listenerId: string, requestId: string): string {
  return `${listenerId}|${requestId}`;
}

/** Pure. */
export function parseAcquireReply(reply: unknown): AcquireResult {
  if (!Array.isArray(reply) || reply.length !== 2 || ![0, 1, 2].includes(reply[0] as number)) {
    throw new ScriptReplyError(
      'reanchorAcquire',
      `reanchorAcquire: unexpected reply ${JSON.stringify(reply)}`,
    );
  }
  const outcome: AcquireOutcome = reply[0] === 1 ? 'acquired' : reply[0] === 2 ? 'taken-over' : 'coalesced';
  return { outcome, holder: String(reply[1]) };
}

/** Pure. */
export function parseReleaseReply(reply: unknown): ReleaseResult {
  if (
    !Array.isArray(reply) ||
    reply.length !== 6 ||
    typeof reply[1] !== 'number' ||
    typeof reply[4] !== 'number'
  ) {
    throw new ScriptReplyError(
      'reanchorRelease',
      `reanchorRelease: unexpected reply ${JSON.stringify(reply)}`,
    );
  }
  const latest = String(reply[2]);
  const bookLatest = String(reply[5]);
  return {
    released: reply[0] === 1,
    pendingCount: reply[1],
    pendingLatestMs: latest === '' ? undefined : Number(latest),
    pendingReason: String(reply[3]),
    pendingBookCount: reply[4],
    pendingBookLatestMs: bookLatest === '' ? undefined : Number(bookLatest),
  };
}

export async function acquireLock(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  token: string,
  request: { readonly id: string; readonly requestedMs: number; readonly reason: string },
  ttlSeconds = LOCK_TTL_SECONDS,
): Promise<AcquireResult> {
  const reply = await client.reanchorAcquire(
    keys.reanchorFlag(symbol),
    keys.reanchorPending(symbol),
    keys.reanchorStats(symbol),
    token,
    String(ttlSeconds),
    request.id,
    String(request.requestedMs),
    request.reason,
  );
  return parseAcquireReply(reply);
}

export async function renewLock(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  token: string,
  ttlSeconds = LOCK_TTL_SECONDS,
): Promise<boolean> {
  return (await client.reanchorRenew(keys.reanchorFlag(symbol), token, String(ttlSeconds))) === 1;
}

export async function releaseLock(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  token: string,
): Promise<ReleaseResult> {
  const reply = await client.reanchorRelease(keys.reanchorFlag(symbol), keys.reanchorPending(symbol), token);
  return parseReleaseReply(reply);
}
