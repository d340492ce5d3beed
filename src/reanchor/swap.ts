import type { Result } from 'ioredis';
import { AggregatorError, isRetryable } from '../common/errors';
import { anchorKeys } from '../state/book';
import type { Keys } from '../state/keys';
import { temporaryKeyList } from './build';
import type { RedisClient } from '../state/redis';

// Re-anchoring, step 2: the ONE atomic swap of the temporary state (src/reanchor/build.ts) into the live state,
// lua/reanchor-swap-26.lua (its header holds the checks, the writes and the decision on the trade windows).
// All or nothing: a failed check leaves every live key as it was and deletes the temporary keys.

declare module 'ioredis' {
  interface RedisCommander<Context> {
    reanchorSwap(...keysAndArgs: string[]): Result<unknown[], Context>;
  }
}

export type SwapOutcome =
  | 'swapped'
  | 'nothing_to_swap'
  | 'temporary_missing'
  | 'temporary_incomplete'
  | 'other_attempt'
  | 'too_old'
  | 'buffer_gap'
  | 'crossed'
  | 'lock_lost';

export type SwapCode = 1 | 0 | -1 | -2 | -3 | -4 | -5 | -6 | -7;

const OUTCOMES: Readonly<Record<SwapCode, SwapOutcome>> = {
  1: 'swapped',
  0: 'nothing_to_swap',
  [-1]: 'temporary_missing',
  [-2]: 'temporary_incomplete',
  [-3]: 'other_attempt',
  [-4]: 'too_old',
  [-5]: 'buffer_gap',
  [-6]: 'crossed',
  [-7]: 'lock_lost',
};

export interface SwapResult {
  readonly code: SwapCode;
  readonly outcome: SwapOutcome;
  /** The live book id after the call (undefined: none). */
  readonly bookUpdateId: bigint | undefined;
  readonly diffsApplied: number;
  readonly diffsDropped: number;
  /** Which trade state is live after a swap: the temporary one ("rest") or the live one kept ("live"). */
  readonly trades: 'rest' | 'live' | undefined;
  /** For too_old and buffer_gap: the smallest lastUpdateId of a snapshot that would bridge. */
  readonly neededLastUpdateId: bigint | undefined;
}

export interface SwapOptions {
  /** Levels per side written to ob:<S> (processing.order_book_levels), 1..20. */
  readonly levels: number;
  /** The lastUpdateId the temporary state was built from: another attempt's state is refused (-3). */
  readonly expectedLastUpdateId?: bigint;
  /**
   * The caller's token in reanchor:<S>: the swap is refused (lock_lost, nothing changed) unless the lock still
   * holds it, so a listener that stalled past a take-over cannot swap. Without it, no lock is checked.
   */
  readonly lockToken?: string;
}

/** The swap script failed for another reason than an outage (a Lua error, a reply of an unexpected shape). */
export class ReanchorSwapError extends AggregatorError {
  constructor(
    readonly symbol: string,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`reanchorSwap ${symbol}: ${message}`, { code: 'REANCHOR_SWAP', context: { symbol }, cause });
    this.name = 'ReanchorSwapError';
  }
}

/** KEYS of reanchor-swap-26.lua, in its header's order. Pure. */
export function swapKeys(keys: Keys, symbol: string): string[] {
  return [
    // KEYS[1..11]: the live book and trade-window keys, as anchor-book-11.lua takes them.
    ...anchorKeys(keys, symbol),
    keys.priceHistory(symbol),
    keys.features(symbol),
    keys.reanchorFlag(symbol),
    ...temporaryKeyList(keys.temporary(symbol)),
  ];
}

/** ARGV of reanchor-swap-26.lua. Pure. */
export function swapArgs(symbol: string, options: SwapOptions): string[] {
  if (!Number.isInteger(options.levels) || options.levels < 1 || options.levels > 20) {
    throw new RangeError(`reanchorSwap ${symbol}: levels must be an integer in 1..20, got ${options.levels}`);
  }
  const expected = options.expectedLastUpdateId;
  if (expected !== undefined && expected < 0n) {
    throw new RangeError(`reanchorSwap ${symbol}: negative expectedLastUpdateId ${expected}`);
  }
  if (options.lockToken === '') throw new RangeError(`reanchorSwap ${symbol}: empty lockToken`);
  return [String(options.levels), expected === undefined ? '' : expected.toString(), options.lockToken ?? ''];
}

function optionalId(symbol: string, value: unknown): bigint | undefined {
  if (value === '') return undefined;
  if (typeof value !== 'string' || !/^\d+$/.test(value)) {
    throw new ReanchorSwapError(symbol, `not an id in the reply: ${JSON.stringify(value)}`);
  }
  return BigInt(value);
}

/** Turns the script's reply into a typed result. Pure. */
export function parseSwapReply(symbol: string, reply: unknown): SwapResult {
  if (
    !Array.isArray(reply) ||
    reply.length !== 6 ||
    typeof reply[0] !== 'number' ||
    !(reply[0] in OUTCOMES) ||
    typeof reply[2] !== 'number' ||
    typeof reply[3] !== 'number' ||
    !['rest', 'live', ''].includes(reply[4] as string)
  ) {
    throw new ReanchorSwapError(symbol, `unexpected reply ${JSON.stringify(reply)}`);
  }
  const code = reply[0] as SwapCode;
  const trades = reply[4] as 'rest' | 'live' | '';
  return {
    code,
    outcome: OUTCOMES[code],
    bookUpdateId: optionalId(symbol, reply[1]),
    diffsApplied: reply[2],
    diffsDropped: reply[3],
    trades: trades === '' ? undefined : trades,
    neededLastUpdateId: optionalId(symbol, reply[5]),
  };
}

/**
 * Swaps the symbol's temporary state in (one script call), or, when a check fails, deletes it and changes no live
 * key (lock_lost: leaves it to the lock's holder). Outages are rethrown unchanged (isRetryable); a second call
 * after a swap is a no-op (nothing_to_swap).
 */
export async function swapReanchor(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  options: SwapOptions,
): Promise<SwapResult> {
  const args = [...swapKeys(keys, symbol), ...swapArgs(symbol, options)];
  let reply: unknown;
  try {
    reply = await client.reanchorSwap(...args);
  } catch (err) {
    if (isRetryable(err)) throw err;
    throw new ReanchorSwapError(symbol, err instanceof Error ? err.message : String(err), err);
  }
  return parseSwapReply(symbol, reply);
}
