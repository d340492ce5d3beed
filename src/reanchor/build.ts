import type { PriceLevel } from '../sbe/messages';
import type { Result } from 'ioredis';
import {
  BookArgumentError,
  callIsFull,
  canonicalLevelString,
  diffIds,
  MAX_DIFFS_PER_CALL,
  type DepthCallLimits,
  type RestDepthSnapshot,
} from '../state/book';
import type { Keys, TemporaryKeys } from '../state/keys';
import type { RedisClient } from '../state/redis';
import { parseTradeBatchReply, tradeBatchArgs, type FlatTrade } from '../state/trades';

// Re-anchoring, step 1: the symbol's temporary state (Keys.temporary: ob:new:<S>, book:new:<S>:*, tr:new:<S>:*,
// px:new:<S>), built from REST snapshots while the live state keeps serving readers. Nothing here touches a live
// key; lua/reanchor-swap-26.lua (src/reanchor/swap.ts) swaps the result in. The caller holds reanchor:<S>
// (src/reanchor/coordination.ts) from before the REST snapshot until the swap, so the depth script keeps the diffs
// the swap must replay.
//
// - The full book: the REST depth snapshot's levels written in chunks (HSET + ZADD of at most `chunkLevels` levels
//   each, 200 by default: a few hundred us per call), so no call blocks Redis (and the live writes queued behind
//   it) for long even for 5000 levels per side. The state hash
//   book:new:<S>:state (last_update_id, snapshot_ts_us, level counts, complete = 1) is written LAST: the swap
//   refuses a state without it, or with level counts the temporary book does not hold.
// - The trade windows (the re-anchorer has already repaired the live state's open trade gaps from the same REST
//   trades, lua/repair-trades-6.lua): the live trade state (tr:<S>:1s/:5s/:buckets/:state, px:<S>) is copied in one script call
//   (reanchor-copy-trades-10.lua, so a stream batch is in all of the copy or in none of it), then the REST
//   trades are applied on the copy with the live trade script (apply-trade-batch-6.lua on the temporary keys, in
//   calls of at most 250 trades): ids not above the copied last_trade_id are skipped, so the result is the live
//   state merged with the newer REST trades, deduplicated by trade id. Only REST trades that continue the copied
//   last_trade_id without a hole are applied (contiguousTrades): when the stream lags further behind than the REST
//   answer reaches, the trades in the hole are still to come from the stream, and the swap would otherwise mark
//   them as applied (ids below the new last_trade_id) without ever counting them.
// - The diffs buffered after the snapshot (book:<S>:buffer, kept while reanchor:<S> exists) that chain from it are
//   applied to the temporary book in bounded chunks (reanchor-replay-5.lua, like the processors' depth calls), and
//   book:new:<S>:state replayed_u records how far: the swap, one atomic call, then replays only the diffs buffered
//   after this step, so it stays short however full the buffer is.
// - Every temporary key expires TEMPORARY_TTL_SECONDS after the build: an abandoned attempt cleans up.

/**
 * Levels per replay call: fewer than a processor's depth call, because the replay parses every level of every diff
 * in Lua (the processors' net form does not): ~1 ms per call on the development machine (docs/reanchoring.md).
 */
export const REPLAY_LEVELS_PER_CALL = 500;

/** Buffer entries read per LRANGE by the build. */
const BUFFER_PAGE = 500;

/** TTL of every temporary key. */
export const TEMPORARY_TTL_SECONDS = 600;
/** Levels per side written by one call (HSET + ZADD). */
export const DEFAULT_CHUNK_LEVELS = 200;
/** REST trades per call of the trade script (as the processors' MAX_TRADES_PER_CALL). */
export const DEFAULT_TRADES_PER_CALL = 250;

export interface BuildOptions {
  readonly chunkLevels?: number;
  readonly tradesPerCall?: number;
  /** Bounds of one call replaying buffered diffs on the temporary book (default: MAX_DIFFS_PER_CALL diffs,
   * REPLAY_LEVELS_PER_CALL levels). */
  readonly replayDiffsPerCall?: number;
  readonly replayLevelsPerCall?: number;
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    reanchorReplay(
      bidsKey: string,
      asksKey: string,
      bidsIndexKey: string,
      asksIndexKey: string,
      stateKey: string,
      ...args: string[]
    ): Result<unknown[], Context>;
    reanchorCopyTrades(...keysThenTtl: string[]): Result<unknown[], Context>;
  }
}

export interface BuildInput {
  /** GET /api/v3/depth (limit up to 5000). */
  readonly depth: RestDepthSnapshot;
  /** GET /api/v3/trades, any order, duplicates allowed (flattened like the stream's trades; ids deduplicate). */
  readonly trades: readonly FlatTrade[];
}

export interface BuildResult {
  readonly lastUpdateId: bigint;
  /** Distinct non-zero levels written per side. */
  readonly bids: number;
  readonly asks: number;
  /** Script calls and plain commands issued for the book levels (chunks x 2). */
  readonly bookCalls: number;
  /** REST trades applied on the copied live trade state / skipped as not newer. */
  readonly tradesApplied: number;
  readonly tradesSkipped: number;
  /** The temporary last_trade_id after the build (undefined: no trade known). */
  readonly lastTradeId: bigint | undefined;
  /** REST trades left out because they do not continue the live last_trade_id (a hole the stream must fill). */
  readonly tradesWithheld: number;
  /** Buffered diffs after the snapshot applied to the temporary book here (the swap replays only later ones). */
  readonly diffsReplayed: number;
}

/**
 * The buffered diffs to replay on a snapshot at lastUpdateId: those after it, as long as they chain from it (the
 * first U <= lastUpdateId + 1, each next U <= the previous u + 1). At the first break it stops: the swap judges the
 * rest. Cut into chunks of bounded size, like the processors' depth calls. Pure.
 */
export function replayChunks(
  entries: readonly string[],
  lastUpdateId: bigint,
  limits: DepthCallLimits,
): string[][] {
  const chunks: string[][] = [];
  let chunk: string[] = [];
  let levels = 0;
  let previous = lastUpdateId;
  for (const entry of entries) {
    const ids = diffIds(entry);
    if (ids === undefined) break;
    if (ids.u <= previous) continue;
    if (ids.U > previous + 1n) break;
    if (callIsFull(chunk.length, levels, ids.levels, limits)) {
      chunks.push(chunk);
      chunk = [];
      levels = 0;
    }
    chunk.push(entry);
    levels += ids.levels;
    previous = ids.u;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Applies the live buffer's diffs after the snapshot to the temporary book, chunk by chunk (reanchor-replay-5.lua),
 * so that the swap, one atomic call, replays only what was buffered after this. Returns the diffs applied.
 */
async function replayBufferedDiffs(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  lastUpdateId: bigint,
  options: BuildOptions,
): Promise<number> {
  // Read in pages, so that no single LRANGE of a full buffer holds Redis long. A page shifted by a trim at the
  // head meanwhile shows up as a repeated diff (skipped) or a gap (the replay stops there; the swap judges the rest).
  const entries: string[] = [];
  const length = await client.llen(keys.diffBuffer(symbol));
  for (let from = 0; from < length; from += BUFFER_PAGE) {
    entries.push(...(await client.lrange(keys.diffBuffer(symbol), from, from + BUFFER_PAGE - 1)));
  }
  const limits: DepthCallLimits = {
    maxDiffs: options.replayDiffsPerCall ?? MAX_DIFFS_PER_CALL,
    maxLevels: options.replayLevelsPerCall ?? REPLAY_LEVELS_PER_CALL,
  };
  const t = keys.temporary(symbol);
  let from = lastUpdateId.toString();
  let replayed = 0;
  for (const chunk of replayChunks(entries, lastUpdateId, limits)) {
    const reply = await client.reanchorReplay(
      t.bids,
      t.asks,
      t.bidsIndex,
      t.asksIndex,
      t.bookState,
      from,
      ...chunk,
    );
    if (!Array.isArray(reply) || reply[0] !== 1 || typeof reply[1] !== 'string') {
      throw new BookArgumentError(
        symbol,
        `the temporary book did not take the buffered diffs: ${JSON.stringify(reply)}`,
      );
    }
    from = reply[1];
    replayed += chunk.length;
  }
  return replayed;
}

/**
 * The REST trades (ascending ids) that may be applied on a trade state whose last applied id is `lastTradeId`:
 * those not above it (the script skips them as duplicates) and the run that continues it id by id. Everything from
 * the first hole on is withheld: its trades are still to come from the stream. Without a known last id (nothing
 * applied yet) the REST answer starts the state. Pure.
 */
export function contiguousTrades(
  trades: readonly FlatTrade[],
  lastTradeId: bigint | undefined,
): { readonly apply: FlatTrade[]; readonly withheld: number } {
  const apply: FlatTrade[] = [];
  let last = lastTradeId;
  for (const [i, trade] of trades.entries()) {
    if (last !== undefined && trade.id > last + 1n) return { apply, withheld: trades.length - i };
    apply.push(trade);
    if (last === undefined || trade.id > last) last = trade.id;
  }
  return { apply, withheld: 0 };
}

/** Every temporary key name of a symbol, in Keys.temporary's order. */
export function temporaryKeyList(t: TemporaryKeys): string[] {
  return [
    t.orderBook,
    t.bids,
    t.asks,
    t.bidsIndex,
    t.asksIndex,
    t.bookState,
    t.tradeWindow1s,
    t.tradeWindow5s,
    t.tradeBuckets,
    t.tradeState,
    t.priceHistory,
    t.features,
  ];
}

/** One side of a snapshot as canonical price -> qty, zero quantities dropped, the last of a repeated price kept; a
 * value without a canonical form is refused (BookArgumentError). Pure. */
export function snapshotSide(
  symbol: string,
  levels: readonly PriceLevel[],
  priceExponent: number,
  qtyExponent: number,
): Map<string, string> {
  const side = new Map<string, string>();
  for (const level of levels) {
    if (level.priceMantissa < 0n || level.qtyMantissa < 0n) {
      throw new BookArgumentError(
        symbol,
        `negative price or quantity in the REST snapshot (${level.priceMantissa}, ${level.qtyMantissa})`,
      );
    }
    // The canonical form (8 decimals), as every other writer: one price, one field, whatever the exponent.
    const price = canonicalLevelString(symbol, level.priceMantissa, priceExponent);
    if (level.qtyMantissa === 0n) side.delete(price);
    else side.set(price, canonicalLevelString(symbol, level.qtyMantissa, qtyExponent));
  }
  return side;
}

/** The chunks of HSET and ZADD arguments of one side: [[price, qty, ...], [price, price, ...]] each. Pure. */
export function levelChunks(
  side: ReadonlyMap<string, string>,
  chunkLevels: number,
): Array<[string[], string[]]> {
  const chunks: Array<[string[], string[]]> = [];
  let hset: string[] = [];
  let zadd: string[] = [];
  for (const [price, qty] of side) {
    hset.push(price, qty);
    zadd.push(price, price);
    if (hset.length >= 2 * chunkLevels) {
      chunks.push([hset, zadd]);
      hset = [];
      zadd = [];
    }
  }
  if (hset.length > 0) chunks.push([hset, zadd]);
  return chunks;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** Deletes a symbol's temporary state (an abandoned or superseded attempt). Live keys are not touched. */
export async function discardTemporaryState(client: RedisClient, keys: Keys, symbol: string): Promise<void> {
  await client.del(...temporaryKeyList(keys.temporary(symbol)));
}

/**
 * Builds the symbol's temporary state from a REST depth snapshot and REST trades (replacing any earlier attempt's).
 * Every call is short; readers are never blocked for long.
 */
export async function buildTemporaryState(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  input: BuildInput,
  options: BuildOptions = {},
): Promise<BuildResult> {
  const chunkLevels = positiveInteger('chunkLevels', options.chunkLevels ?? DEFAULT_CHUNK_LEVELS);
  const tradesPerCall = positiveInteger('tradesPerCall', options.tradesPerCall ?? DEFAULT_TRADES_PER_CALL);
  const { depth } = input;
  if (depth.lastUpdateId < 0n || depth.timeUs < 0n) {
    throw new BookArgumentError(
      symbol,
      `REST snapshot lastUpdateId=${depth.lastUpdateId} time=${depth.timeUs}`,
    );
  }
  const bids = snapshotSide(symbol, depth.bids, depth.priceExponent, depth.qtyExponent);
  const asks = snapshotSide(symbol, depth.asks, depth.priceExponent, depth.qtyExponent);
  const t = keys.temporary(symbol);
  const all = temporaryKeyList(t);
  const ttl = String(TEMPORARY_TTL_SECONDS);

  await client.del(...all);

  // The trade windows: a copy of the live trade state, in one step (reanchor-copy-trades-10.lua: a stream batch
  // lands before or after the whole copy, never between two of its keys), then the REST trades on top.
  const copy = await client.reanchorCopyTrades(
    keys.tradeWindow(symbol, 1),
    keys.tradeWindow(symbol, 5),
    keys.tradeBuckets(symbol),
    keys.tradeState(symbol),
    keys.priceHistory(symbol),
    t.tradeWindow1s,
    t.tradeWindow5s,
    t.tradeBuckets,
    t.tradeState,
    t.priceHistory,
    ttl,
  );
  const copiedLast = Array.isArray(copy) && typeof copy[1] === 'string' ? copy[1] : undefined;
  if (copiedLast === undefined) {
    throw new BookArgumentError(symbol, `the live trade state was not copied: ${JSON.stringify(copy)}`);
  }
  const { apply: trades, withheld: tradesWithheld } = contiguousTrades(
    [...input.trades].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    copiedLast ? BigInt(copiedLast) : undefined,
  );
  let tradesApplied = 0;
  let tradesSkipped = 0;
  let lastTradeId: bigint | undefined;
  for (let start = 0; start < trades.length; start += tradesPerCall) {
    const reply = await client.applyTradeBatch(
      t.orderBook,
      t.tradeWindow1s,
      t.tradeWindow5s,
      t.tradeBuckets,
      t.tradeState,
      t.priceHistory,
      ...tradeBatchArgs(trades.slice(start, start + tradesPerCall), undefined),
    );
    const result = parseTradeBatchReply(symbol, reply);
    tradesApplied += result.applied;
    tradesSkipped += result.duplicates;
    lastTradeId = result.lastTradeId;
  }
  if (trades.length === 0) {
    const last = await client.hget(t.tradeState, 'last_trade_id');
    lastTradeId = last ? BigInt(last) : undefined;
  }

  // The full book, chunk by chunk; each chunk refreshes the TTL of the keys it wrote.
  let bookCalls = 0;
  for (const [side, levelsKey, indexKey] of [
    [bids, t.bids, t.bidsIndex],
    [asks, t.asks, t.asksIndex],
  ] as const) {
    for (const [hset, zadd] of levelChunks(side, chunkLevels)) {
      await Promise.all([
        client.zadd(indexKey, ...zadd),
        client.hset(levelsKey, ...hset),
        client.expire(indexKey, ttl),
        client.expire(levelsKey, ttl),
      ]);
      bookCalls += 2;
    }
  }

  // The state: the level counts the swap checks, and replayed_u (the diffs the temporary book holds).
  await client.hset(
    t.bookState,
    'last_update_id',
    depth.lastUpdateId.toString(),
    'snapshot_ts_us',
    depth.timeUs.toString(),
    'bids',
    String(bids.size),
    'asks',
    String(asks.size),
    'replayed_u',
    depth.lastUpdateId.toString(),
  );
  const diffsReplayed = await replayBufferedDiffs(client, keys, symbol, depth.lastUpdateId, options);

  // Last: the mark that the temporary book is complete, and the TTL of every temporary key.
  await client.hset(t.bookState, 'complete', '1');
  await Promise.all(all.map((key) => client.expire(key, ttl)));
  return {
    lastUpdateId: depth.lastUpdateId,
    bids: bids.size,
    asks: asks.size,
    diffsReplayed,
    bookCalls,
    tradesApplied,
    tradesSkipped,
    lastTradeId,
    tradesWithheld,
  };
}
