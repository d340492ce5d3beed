import { formatDecimal } from '../sbe/decimal';
import type { PriceLevel } from '../sbe/messages';
import { BookArgumentError, type RestDepthSnapshot } from '../state/book';
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
// - The trade windows: the live trade state (tr:<S>:1s/:5s/:buckets/:state, px:<S>) is copied, then the REST
//   trades are applied on the copy with the live trade script (apply-trade-batch-6.lua on the temporary keys, in
//   calls of at most 250 trades): ids not above the copied last_trade_id are skipped, so the result is the live
//   state merged with the newer REST trades, deduplicated by trade id. Only REST trades that continue the copied
//   last_trade_id without a hole are applied (contiguousTrades): when the stream lags further behind than the REST
//   answer reaches, the trades in the hole are still to come from the stream, and the swap would otherwise mark
//   them as applied (ids below the new last_trade_id) without ever counting them.
// - Every temporary key expires TEMPORARY_TTL_SECONDS after the build: an abandoned attempt cleans up.

/** TTL of every temporary key. */
export const TEMPORARY_TTL_SECONDS = 600;
/** Levels per side written by one call (HSET + ZADD). */
export const DEFAULT_CHUNK_LEVELS = 200;
/** REST trades per call of the trade script (as the processors' MAX_TRADES_PER_CALL). */
export const DEFAULT_TRADES_PER_CALL = 250;

export interface BuildOptions {
  readonly chunkLevels?: number;
  readonly tradesPerCall?: number;
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

/** One side of a snapshot as exact price -> qty, zero quantities dropped, the last of a repeated price kept. Pure. */
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
    const price = formatDecimal(level.priceMantissa, priceExponent);
    if (level.qtyMantissa === 0n) side.delete(price);
    else side.set(price, formatDecimal(level.qtyMantissa, qtyExponent));
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

  // The trade windows: a copy of the live trade state, then the REST trades on top.
  const live: Array<[string, string]> = [
    [keys.tradeWindow(symbol, 1), t.tradeWindow1s],
    [keys.tradeWindow(symbol, 5), t.tradeWindow5s],
    [keys.tradeBuckets(symbol), t.tradeBuckets],
    [keys.tradeState(symbol), t.tradeState],
    [keys.priceHistory(symbol), t.priceHistory],
  ];
  for (const [from, to] of live) await client.copy(from, to, 'REPLACE');
  const copiedLast = await client.hget(t.tradeState, 'last_trade_id');
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

  // Last: the state that marks the temporary book complete, and the TTL of every temporary key.
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
    'complete',
    '1',
  );
  await Promise.all(all.map((key) => client.expire(key, ttl)));
  return {
    lastUpdateId: depth.lastUpdateId,
    bids: bids.size,
    asks: asks.size,
    bookCalls,
    tradesApplied,
    tradesSkipped,
    lastTradeId,
    tradesWithheld,
  };
}
