import type { Result } from 'ioredis';
import { CanonicalDecimalError, canonicalMantissa, formatCanonical, toCanonical } from '../events/canonical';
import { formatDecimal } from '../sbe/decimal';
import { levelCount } from '../sbe/decoder';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
} from '../sbe/messages';
import { classifyFailure, type ContainedCode, type HasDeadLetterCode } from './errors';
import type { Keys } from './keys';
import type { RedisClient } from './redis';

// The order-book hot state: the full diff-based book per symbol (Binance's sync procedure) and the live hash
// ob:<SYMBOL>, kept by three Lua scripts, one call per symbol per batch:
//   lua/apply-depth-batch-12.lua   a depth-stream batch: depth20 snapshots and depth diffs
//   lua/apply-best-bid-ask-5.lua   a bestBidAsk-stream batch
//   lua/anchor-book-11.lua         anchoring on a REST depth snapshot plus the diffs buffered while out of sync
// Their headers (and lua/includes/order-book.lua) hold the KEYS/ARGV layouts, the rules and the return codes.
// Each script ends with refresh_trade_windows (lua/includes/trade-windows.lua): the two batch scripts with the
// batch's newest event time, so the windows decay with the symbol's event time; the anchor without a time (a REST
// snapshot is no event), so vwap_minus_mid follows the new mid at once.
//
// ob:<SYMBOL> fields written here (prices, quantities and ids are exact decimal strings):
//   best_bid, best_bid_qty, best_ask, best_ask_qty   the newest best bid/ask of any source (bestBidAsk, depth20
//                                                    level 1, full book level 1), by book update id
//   spread = best_ask - best_bid, exact at the prices' scale
//   mid_price = (best_bid + best_ask) / 2, exact: one more decimal when needed ("60000.005")
//   ts_us, best_update_id                            event time (us) and book update id of those fields
//   bid1_p..bidN_p, bid1_q..bidN_q, ask1_p..askN_p, ask1_q..askN_q   top N levels (N = processing.order_book_levels)
//                                                    of the newest of: the full book (when in sync), the newest
//                                                    depth20 snapshot; "" where the source has fewer levels
//   book_update_id, book_ts_us                       book update id and event time of those levels
//   ob_imbalance = (sum of top-N bid qty - sum of top-N ask qty) / (sum of both), 0 when both are empty
//   bid_strength = sum over i = 1..N of bid_q_i / i,   ask_strength = sum over i = 1..N of ask_q_i / i
//                                                    (metrics: doubles written with %.17g, never NaN/inf;
//                                                    computed with the levels, from the same source)
//   bba_update_id, depth20_update_id, depth20_ts_us  the last bestBidAsk / depth20 snapshot applied
// (last_trade_price and the trade fields belong to the trades module.)
//
// The full book: book:<S>:bids / :asks (hash price -> qty), :bids:idx / :asks:idx (zset price by value),
// book:<S>:state (status in_sync | out_of_sync, reason no_snapshot | gap | crossed, book_update_id, counters) and
// book:<S>:buffer (diffs kept while out of sync, and while in sync when reanchor:<S> exists so that the re-anchor
// swap can replay them; bounded). Every script is idempotent: a redelivered batch, or
// any older one, leaves every key byte-identical (so diffs ignored as old are counted in the reply, not in Redis).
// Ids are compared as decimal strings in Lua (any int64); the zset scores and the crossed check use doubles,
// exact for prices of at most 15 significant digits (8 decimals below 10^7).
//
// Prices and quantities are written in their canonical form (src/events/canonical.ts: exactly 8 fraction digits)
// whatever exponent a message carries, so one price is one hash field and one sorted-set member, and a quantity-0
// diff at any exponent removes the level.
//
// Bounded calls: a symbol's depth batch is split into calls of at most MAX_DIFFS_PER_CALL diffs and
// MAX_LEVELS_PER_CALL levels (planDepthCalls), so no call holds Redis long whatever the batch size; the calls are
// sent one after the other in u order. A chunk whose diffs chain is first sent as its net effect alone ("net"
// form: a coalesced diff, U of the first, u of the last, last write per level wins); the script applies it only when
// the book is in sync, no re-anchor keeps diffs and the chunk bridges the book, else it writes nothing and asks for
// the "full" form (every diff's string too), which the writer then sends. A symbol whose book is out of sync or
// being re-anchored is sent the full form directly until a reply shows it in sync again.

declare module 'ioredis' {
  interface RedisCommander<Context> {
    applyDepthBatch(
      obKey: string,
      bidsKey: string,
      asksKey: string,
      bidsIndexKey: string,
      asksIndexKey: string,
      stateKey: string,
      bufferKey: string,
      tradeWindow1sKey: string,
      tradeWindow5sKey: string,
      tradeBucketsKey: string,
      tradeStateKey: string,
      reanchorFlagKey: string,
      ...args: string[]
    ): Result<unknown[], Context>;
    applyBestBidAsk(
      obKey: string,
      tradeWindow1sKey: string,
      tradeWindow5sKey: string,
      tradeBucketsKey: string,
      tradeStateKey: string,
      ...args: string[]
    ): Result<unknown[], Context>;
    anchorBook(
      obKey: string,
      bidsKey: string,
      asksKey: string,
      bidsIndexKey: string,
      asksIndexKey: string,
      stateKey: string,
      bufferKey: string,
      tradeWindow1sKey: string,
      tradeWindow5sKey: string,
      tradeBucketsKey: string,
      tradeStateKey: string,
      ...args: string[]
    ): Result<unknown[], Context>;
  }
}

/** Diffs kept while out of sync, per symbol, unless the options say otherwise (20 s of 20 ms diffs). */
export const DEFAULT_BUFFER_MAX_LENGTH = 1000;

export interface BookOptions {
  /** Levels per side written to ob:<SYMBOL> (processing.order_book_levels), 1..20. */
  readonly levels: number;
  /** Bound of book:<S>:buffer in diffs (default DEFAULT_BUFFER_MAX_LENGTH). */
  readonly bufferMaxLength?: number;
}

export type BookStatus = 'in_sync' | 'out_of_sync';
export type BookReason = '' | 'no_snapshot' | 'gap' | 'crossed';

export interface DepthBatchResult {
  /** Diffs of this call applied to the full book. */
  readonly applied: number;
  /** Diffs ignored: already applied or buffered (u <= book id, or <= the last buffered u), e.g. redeliveries. */
  readonly ignored: number;
  /** Diffs appended to the buffer without being applied (the book was, or went, out of sync). */
  readonly buffered: number;
  /** Diffs applied AND appended to the buffer, for the swap to replay (in sync while reanchor:<S> exists). */
  readonly kept: number;
  /** This call detected a gap (U > book id + 1) and took the book out of sync. */
  readonly gap: boolean;
  /** This call left the book crossed (best bid >= best ask) and took it out of sync. */
  readonly crossed: boolean;
  /** Buffered or kept diffs dropped by the bound in this call (a re-anchor then needs a newer snapshot). */
  readonly overflow: number;
  readonly status: BookStatus;
  readonly reason: BookReason;
  /** Id of the full book; undefined before the first anchor. */
  readonly bookUpdateId: bigint | undefined;
  readonly bufferLength: number;
  /** Where the ob: levels written by this call came from (undefined: levels unchanged). */
  readonly levelsSource: 'book' | 'depth20' | undefined;
  /** The batch's newest depth20 snapshot was newer than the last one applied. */
  readonly depth20Applied: boolean;
  /** best_bid/best_ask/spread/mid_price were rewritten. */
  readonly bestWritten: boolean;
  /** Script calls issued (bounded chunks, plus the full-form resends of refused net-form calls). */
  readonly calls: number;
  /** Net-form calls the script refused and that were sent again in the full form. */
  readonly resent: number;
  /** The next batch of this symbol should go in the full form (the book is out of sync or being re-anchored). */
  readonly fullFormNext: boolean;
}

export interface BestBidAskResult {
  /** The batch's newest bestBidAsk was newer than the last one applied (0 events: false). */
  readonly applied: boolean;
  /** ...and newer than the best bid/ask in ob: (which a depth source may have set from a newer update id). */
  readonly bestWritten: boolean;
}

export type AnchorOutcome = 'anchored' | 'noop' | 'too_old' | 'buffer_gap' | 'crossed';

export interface AnchorResult {
  /** The script's code: 1 anchored, 0 no-op, -1 too old, -2 buffer gap, -3 crossed (see anchor-book-11.lua). */
  readonly code: 1 | 0 | -1 | -2 | -3;
  readonly outcome: AnchorOutcome;
  /** Book id after the call (undefined: never anchored). */
  readonly bookUpdateId: bigint | undefined;
  /** Buffered diffs replayed on the snapshot / dropped as covered by it (u <= lastUpdateId). */
  readonly diffsApplied: number;
  readonly diffsDropped: number;
  /** For too_old and buffer_gap: the smallest lastUpdateId of a snapshot that would anchor. */
  readonly neededLastUpdateId: bigint | undefined;
}

/** A REST depth snapshot (GET /api/v3/depth) as exact mantissas, like MarketSimulator.depthSnapshot(). */
export interface RestDepthSnapshot {
  readonly lastUpdateId: bigint;
  readonly priceExponent: number;
  readonly qtyExponent: number;
  /** Best first, as the exchange sends them (any order is accepted). */
  readonly bids: readonly PriceLevel[];
  readonly asks: readonly PriceLevel[];
  /** When it was taken or received, microseconds: book_ts_us / ts_us if no buffered diff follows it. */
  readonly timeUs: bigint;
}

/** Input the scripts cannot take (a programming error upstream, or an impossible event): nothing was sent. */
export class BookArgumentError extends Error implements HasDeadLetterCode {
  readonly deadLetterCode = 'SCRIPT_ARGS';
  constructor(
    readonly symbol: string,
    message: string,
  ) {
    super(`order book ${symbol}: ${message}`);
    this.name = 'BookArgumentError';
  }
}

/**
 * A script call failed for a reason other than an outage (those are rethrown unchanged so that classifyFailure()
 * sees them): code BOOKARGS (the script refused its arguments, before writing anything), SCRIPT (another
 * error reply, e.g. a Lua bug) or REPLY (a reply of an unexpected shape).
 */
export class BookScriptError extends Error implements HasDeadLetterCode {
  constructor(
    readonly script: 'applyDepthBatch' | 'applyBestBidAsk' | 'anchorBook',
    readonly symbol: string,
    readonly code: 'BOOKARGS' | 'SCRIPT' | 'REPLY',
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`${script} ${symbol}: ${message}`);
    this.name = 'BookScriptError';
  }

  get deadLetterCode(): ContainedCode {
    return this.code === 'BOOKARGS' ? 'SCRIPT_ARGS' : this.code === 'REPLY' ? 'SCRIPT_REPLY' : 'SCRIPT_ERROR';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Exact decimal helpers (the definitions the Lua scripts implement digit by digit).

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

function scaled(text: string): { mantissa: bigint; scale: number } {
  const m = DECIMAL.exec(text);
  if (m === null) throw new RangeError(`not a plain decimal: ${JSON.stringify(text)}`);
  const fraction = m[3] ?? '';
  const magnitude = BigInt((m[2] ?? '') + fraction);
  return { mantissa: m[1] === '-' ? -magnitude : magnitude, scale: fraction.length };
}

function aligned(a: string, b: string): [bigint, bigint, number] {
  const x = scaled(a);
  const y = scaled(b);
  const scale = Math.max(x.scale, y.scale);
  return [x.mantissa * 10n ** BigInt(scale - x.scale), y.mantissa * 10n ** BigInt(scale - y.scale), scale];
}

/** ask - bid, exact, at the larger scale of the two ("60000.01" - "60000.00" = "0.01"; negative when crossed). */
export function decimalSpread(bid: string, ask: string): string {
  const [b, a, scale] = aligned(bid, ask);
  return formatDecimal(a - b, -scale);
}

/** (bid + ask) / 2, exact: at the larger scale of the two, or with one more decimal when needed ("60000.005"). */
export function decimalMid(bid: string, ask: string): string {
  const [b, a, scale] = aligned(bid, ask);
  const sum = a + b;
  if (sum % 2n === 0n) return formatDecimal(sum / 2n, -scale);
  return formatDecimal(sum * 5n, -(scale + 1));
}

export interface BookMetrics {
  readonly imbalance: number;
  readonly bidStrength: number;
  readonly askStrength: number;
}

/**
 * The book metrics over the top `levels` quantities of each side (best first; missing levels count nothing):
 * imbalance = (sum bid qty - sum ask qty) / (sum of both), 0 when both are 0; strength = sum of qty_i / i.
 */
export function bookMetrics(
  bidQtys: readonly string[],
  askQtys: readonly string[],
  levels: number,
): BookMetrics {
  let sumBid = 0;
  let sumAsk = 0;
  let bidStrength = 0;
  let askStrength = 0;
  for (let i = 1; i <= levels; i++) {
    const b = bidQtys[i - 1];
    if (b !== undefined && b !== '') {
      sumBid += Number(b);
      bidStrength += Number(b) / i;
    }
    const a = askQtys[i - 1];
    if (a !== undefined && a !== '') {
      sumAsk += Number(a);
      askStrength += Number(a) / i;
    }
  }
  const total = sumBid + sumAsk;
  return {
    imbalance: total > 0 ? (sumBid - sumAsk) / total : 0,
    bidStrength,
    askStrength,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Argument builders (pure).

/** The keys of a symbol's full book: ob:, bids, asks, their indexes, state, buffer. */
type BookKeys = [string, string, string, string, string, string, string];
/** The trade-window keys: tr:<S>:1s, :5s, :buckets, :state. */
type WindowKeys = [string, string, string, string];

function bookKeys(keys: Keys, symbol: string): BookKeys {
  return [
    keys.orderBook(symbol),
    keys.bookLevels(symbol, 'bids'),
    keys.bookLevels(symbol, 'asks'),
    keys.bookIndex(symbol, 'bids'),
    keys.bookIndex(symbol, 'asks'),
    keys.bookState(symbol),
    keys.diffBuffer(symbol),
  ];
}

/** The trade-window keys refresh_trade_windows takes after ob:. */
function windowKeys(keys: Keys, symbol: string): WindowKeys {
  return [
    keys.tradeWindow(symbol, 1),
    keys.tradeWindow(symbol, 5),
    keys.tradeBuckets(symbol),
    keys.tradeState(symbol),
  ];
}

/**
 * KEYS of apply-depth-batch-12.lua (the book keys, the trade-window keys, then the re-anchor flag reanchor:<S>), all
 * of one hash slot.
 */
export function depthBatchKeys(keys: Keys, symbol: string): [...BookKeys, ...WindowKeys, string] {
  return [...bookKeys(keys, symbol), ...windowKeys(keys, symbol), keys.reanchorFlag(symbol)];
}

/** KEYS of apply-best-bid-ask-5.lua. */
export function bestBidAskKeys(keys: Keys, symbol: string): [string, ...WindowKeys] {
  return [keys.orderBook(symbol), ...windowKeys(keys, symbol)];
}

/** KEYS of anchor-book-11.lua (apply-depth-batch-12.lua's first 11: no re-anchor flag). */
export function anchorKeys(keys: Keys, symbol: string): [...BookKeys, ...WindowKeys] {
  return [...bookKeys(keys, symbol), ...windowKeys(keys, symbol)];
}

function checkOptions(symbol: string, options: BookOptions): number {
  if (!Number.isInteger(options.levels) || options.levels < 1 || options.levels > 20) {
    throw new BookArgumentError(symbol, `levels must be an integer in 1..20, got ${options.levels}`);
  }
  const bound = options.bufferMaxLength ?? DEFAULT_BUFFER_MAX_LENGTH;
  if (!Number.isInteger(bound) || bound < 1) {
    throw new BookArgumentError(symbol, `bufferMaxLength must be a positive integer, got ${bound}`);
  }
  return bound;
}

function checkSymbol(symbol: string, message: SbeMessage): void {
  if (message.symbol !== symbol) {
    throw new BookArgumentError(symbol, `a ${message.message} of ${message.symbol} in its batch`);
  }
}

/**
 * A price or quantity as its canonical string; a value without one is refused (BookArgumentError: nothing is sent).
 * Every writer of the book goes through it (the stream's levels here, the REST snapshot in src/reanchor/build.ts).
 */
export function canonicalLevelString(symbol: string, mantissa: bigint, exponent: number): string {
  try {
    return toCanonical(mantissa, exponent);
  } catch (err) {
    throw new BookArgumentError(symbol, (err as Error).message);
  }
}

/** Refuses a level with a negative price or quantity (the scripts only parse unsigned decimals). */
function checkLevel(symbol: string, level: PriceLevel): void {
  if (level.priceMantissa < 0n || level.qtyMantissa < 0n) {
    throw new BookArgumentError(
      symbol,
      `negative price or quantity (${level.priceMantissa}, ${level.qtyMantissa})`,
    );
  }
}

/** Appends " price qty" of each level (canonical strings; negative mantissas are refused). */
function pushLevels(
  out: string[],
  symbol: string,
  levels: readonly PriceLevel[],
  priceExponent: number,
  qtyExponent: number,
): void {
  for (const level of levels) {
    checkLevel(symbol, level);
    out.push(
      canonicalLevelString(symbol, level.priceMantissa, priceExponent),
      canonicalLevelString(symbol, level.qtyMantissa, qtyExponent),
    );
  }
}

/**
 * One diff as the scripts' string: "U u eventTimeUs nBids bidPrice bidQty ... askPrice askQty ..."
 * (the ARGV of apply-depth-batch-12.lua and the entries of book:<S>:buffer).
 */
export function encodeDiff(diff: DepthDiffStreamEvent): string {
  if (diff.firstBookUpdateId > diff.lastBookUpdateId || diff.firstBookUpdateId < 0n || diff.eventTime < 0n) {
    throw new BookArgumentError(
      diff.symbol,
      `depth diff U=${diff.firstBookUpdateId} u=${diff.lastBookUpdateId} eventTime=${diff.eventTime}`,
    );
  }
  const parts = [
    diff.firstBookUpdateId.toString(),
    diff.lastBookUpdateId.toString(),
    diff.eventTime.toString(),
    String(diff.bids.length),
  ];
  pushLevels(parts, diff.symbol, diff.bids, diff.priceExponent, diff.qtyExponent);
  pushLevels(parts, diff.symbol, diff.asks, diff.priceExponent, diff.qtyExponent);
  return parts.join(' ');
}

/**
 * The U, u and number of levels of an encoded diff (encodeDiff's string, the entries of book:<S>:buffer), or
 * undefined when the entry does not start like one. Pure.
 */
export function diffIds(entry: string): { U: bigint; u: bigint; levels: number } | undefined {
  const m = /^(\d+) (\d+) \d+ \d+/.exec(entry);
  if (m === null) return undefined;
  let spaces = 0;
  for (let i = 0; i < entry.length; i++) if (entry.charCodeAt(i) === 32) spaces++;
  return { U: BigInt(m[1]!), u: BigInt(m[2]!), levels: Math.max(0, (spaces - 3) / 2) };
}

/** "nBids bidPrice bidQty ... askPrice askQty ..." of a depth20 snapshot's top `levels` levels per side. */
export function encodeTopLevels(snapshot: DepthSnapshotStreamEvent, levels: number): string {
  const bids = snapshot.bids.slice(0, levels);
  const parts = [String(bids.length)];
  pushLevels(parts, snapshot.symbol, bids, snapshot.priceExponent, snapshot.qtyExponent);
  pushLevels(
    parts,
    snapshot.symbol,
    snapshot.asks.slice(0, levels),
    snapshot.priceExponent,
    snapshot.qtyExponent,
  );
  return parts.join(' ');
}

function checkId(symbol: string, what: string, value: bigint): string {
  if (value < 0n) throw new BookArgumentError(symbol, `negative ${what} ${value}`);
  return value.toString();
}

function compareDiffs(a: DepthDiffStreamEvent, b: DepthDiffStreamEvent): number {
  if (a.lastBookUpdateId !== b.lastBookUpdateId) return a.lastBookUpdateId < b.lastBookUpdateId ? -1 : 1;
  if (a.firstBookUpdateId !== b.firstBookUpdateId) return a.firstBookUpdateId < b.firstBookUpdateId ? -1 : 1;
  return 0;
}

/** The net effect of a chunk's diffs: "nBidSet nBidDel nAskSet nAskDel" and the values in that layout. */
export interface NetEffect {
  readonly counts: string;
  readonly values: string[];
}

/**
 * The net effect of diffs applied in order, per side: the final quantity of every price they touch, in first-seen
 * order, split into levels set (non-zero) and prices removed. Flat: [nBidSet nBidDel nAskSet nAskDel] and the
 * values (bid price, qty pairs, bid prices, ask pairs, ask prices).
 */
export function netEffect(diffs: readonly DepthDiffStreamEvent[]): NetEffect {
  const values: string[] = [];
  const counts: number[] = [];
  for (const side of ['bids', 'asks'] as const) {
    // price (canonical mantissa) -> the last level of it; only the survivors are formatted.
    const final = new Map<bigint, { readonly qty: bigint; readonly exponent: number }>();
    for (const diff of diffs) {
      const levels = diff[side];
      for (let i = 0; i < levels.length; i++) {
        const level = levels[i]!;
        checkLevel(diff.symbol, level);
        const price = canonicalMantissa(level.priceMantissa, diff.priceExponent);
        if (price === undefined) {
          throw new BookArgumentError(
            diff.symbol,
            new CanonicalDecimalError(level.priceMantissa, diff.priceExponent).message,
          );
        }
        final.set(price, { qty: level.qtyMantissa, exponent: diff.qtyExponent });
      }
    }
    const removed: string[] = [];
    let set = 0;
    for (const [price, level] of final) {
      if (level.qty === 0n) removed.push(formatCanonical(price));
      else {
        values.push(
          formatCanonical(price),
          canonicalLevelString(diffs[0]!.symbol, level.qty, level.exponent),
        );
        set++;
      }
    }
    for (const price of removed) values.push(price);
    counts.push(set, removed.length);
  }
  // values holds bid pairs, bid removals, ask pairs, ask removals.
  return { counts: counts.join(' '), values };
}

/** Most diffs one apply-depth-batch call carries (measured: README, "Bounded script calls"). */
export const MAX_DIFFS_PER_CALL = 200;
/** Most levels (summed over a call's diffs and its depth20 snapshot) one call carries. */
export const MAX_LEVELS_PER_CALL = 1200;

export interface DepthCallLimits {
  readonly maxDiffs: number;
  readonly maxLevels: number;
}

export const DEFAULT_DEPTH_CALL_LIMITS: DepthCallLimits = {
  maxDiffs: MAX_DIFFS_PER_CALL,
  maxLevels: MAX_LEVELS_PER_CALL,
};

/**
 * Whether a call holding `diffs` diffs and `levels` levels must be cut before one more item of `size` levels: it
 * is full, or the item would carry it past the levels bound. An empty call takes any item (a diff is applied whole).
 * The one rule of every bounded depth call (planDepthCalls here, the re-anchor replay in src/reanchor/build.ts).
 */
export function callIsFull(diffs: number, levels: number, size: number, limits: DepthCallLimits): boolean {
  return diffs > 0 && (diffs >= limits.maxDiffs || levels + size > limits.maxLevels);
}

/** One call's share of a symbol's depth batch (see planDepthCalls). */
export interface DepthChunk {
  /** Sorted by u strictly ascending (duplicates of a u dropped). */
  readonly diffs: readonly DepthDiffStreamEvent[];
  /** The batch's newest depth20 snapshot, carried by the last chunk only. */
  readonly snapshot: DepthSnapshotStreamEvent | undefined;
  /** The batch's newest event time (diffs and depth20 snapshots), carried by its last chunk only. */
  readonly eventTimeUs: bigint | undefined;
  /**
   * An intermediate chunk of a batch split in several calls: the script applies or buffers its diffs and writes the
   * book state; ob:<S>, the crossed check and the trade windows are the last chunk's (once per batch, as unsplit).
   */
  readonly part: boolean;
  /** Each diff's U <= the previous u + 1: the chunk can be sent as its net effect. */
  readonly chained: boolean;
}

/**
 * Splits one symbol's depth messages (depth20 snapshots and diffs; other kinds are skipped) into the chunks of
 * bounded calls: diffs sorted by u ascending with repeated u dropped, cut after at most limits.maxDiffs diffs or
 * before the levels would exceed limits.maxLevels (a single larger diff is a chunk of its own: a diff is applied
 * whole). The last chunk carries the newest depth20 snapshot and the batch's newest event time and does what is
 * done once per batch (ob:<S>, the crossed check, the trade windows); the others are parts. No messages give one
 * empty chunk (it refreshes the windows with no time, as an empty batch always did). Pure.
 */
export function planDepthCalls(
  symbol: string,
  messages: readonly SbeMessage[],
  limits: DepthCallLimits = DEFAULT_DEPTH_CALL_LIMITS,
): DepthChunk[] {
  let newestSnapshot: DepthSnapshotStreamEvent | undefined;
  let snapshotsTime: bigint | undefined;
  const all: DepthDiffStreamEvent[] = [];
  for (const message of messages) {
    if (message.message !== 'DepthSnapshotStreamEvent' && message.message !== 'DepthDiffStreamEvent')
      continue;
    checkSymbol(symbol, message);
    if (message.message === 'DepthDiffStreamEvent') {
      all.push(message);
    } else {
      if (snapshotsTime === undefined || message.eventTime > snapshotsTime) snapshotsTime = message.eventTime;
      if (newestSnapshot === undefined || message.bookUpdateId > newestSnapshot.bookUpdateId) {
        newestSnapshot = message;
      }
    }
  }
  all.sort(compareDiffs);
  const runs: Array<{ diffs: DepthDiffStreamEvent[]; chained: boolean }> = [];
  let current: DepthDiffStreamEvent[] = [];
  let levels = 0;
  let chained = true;
  let batchTime = snapshotsTime;
  const cut = () => {
    runs.push({ diffs: current, chained });
    current = [];
    levels = 0;
    chained = true;
  };
  let previous: DepthDiffStreamEvent | undefined;
  for (const diff of all) {
    if (previous !== undefined && diff.lastBookUpdateId === previous.lastBookUpdateId) continue;
    const size = levelCount(diff);
    if (callIsFull(current.length, levels, size, limits)) cut();
    const last = current[current.length - 1];
    if (last !== undefined && diff.firstBookUpdateId > last.lastBookUpdateId + 1n) chained = false;
    current.push(diff);
    levels += size;
    if (batchTime === undefined || diff.eventTime > batchTime) batchTime = diff.eventTime;
    previous = diff;
  }
  if (newestSnapshot !== undefined) {
    const size = levelCount(newestSnapshot);
    if (current.length > 0 && levels + size > limits.maxLevels) cut();
  }
  cut();
  return runs.map((run, i) => {
    const last = i === runs.length - 1;
    return {
      diffs: run.diffs,
      chained: run.chained,
      snapshot: last ? newestSnapshot : undefined,
      eventTimeUs: last ? batchTime : undefined,
      part: !last,
    };
  });
}

/** How a chunk is sent: its net effect alone (in-sync fast path only) or every diff's string as well. */
export type DepthCallForm = 'net' | 'full';

/**
 * ARGV of apply-depth-batch-12.lua for one chunk (layout in the script's header). The "net" form needs a chained
 * chunk with at least one diff.
 */
export function depthChunkArgs(
  symbol: string,
  chunk: DepthChunk,
  options: BookOptions,
  form: DepthCallForm,
): string[] {
  const bound = checkOptions(symbol, options);
  const { diffs, snapshot } = chunk;
  const prefix = [
    String(options.levels),
    String(bound),
    chunk.part
      ? 'part'
      : chunk.eventTimeUs === undefined
        ? ''
        : checkId(symbol, 'event time', chunk.eventTimeUs),
    snapshot ? checkId(symbol, 'depth20 bookUpdateId', snapshot.bookUpdateId) : '',
    snapshot ? checkId(symbol, 'depth20 event time', snapshot.eventTime) : '',
    snapshot ? encodeTopLevels(snapshot, options.levels) : '',
    String(diffs.length),
  ];
  const net = chunk.chained && diffs.length > 0 ? netEffect(diffs) : undefined;
  if (form === 'net') {
    const first = diffs[0];
    const last = diffs[diffs.length - 1];
    if (net === undefined || first === undefined || last === undefined) {
      throw new BookArgumentError(symbol, 'the net form needs a chained chunk with diffs');
    }
    const header = [
      'net',
      checkId(symbol, 'U', first.firstBookUpdateId),
      checkId(symbol, 'u', first.lastBookUpdateId),
      checkId(symbol, 'u', last.lastBookUpdateId),
      checkId(symbol, 'event time', last.eventTime),
      net.counts,
    ].join(' ');
    return [...prefix, header, ...net.values];
  }
  return [...prefix, net ? net.counts : '', ...diffs.map(encodeDiff), ...(net ? net.values : [])];
}

/**
 * ARGV of apply-depth-batch-12.lua ("full" form) for one symbol's messages of a depth-stream batch as ONE call: the
 * newest depth20 snapshot (top `levels`), the diffs sorted by u ascending with duplicates (same u) removed, and,
 * when they chain (each U <= previous u + 1), their net effect for the script's fast path. Messages of other kinds
 * are skipped. (applyBookBatch splits a batch into bounded calls; this is the unsplit form.)
 */
export function depthBatchArgs(
  symbol: string,
  messages: readonly SbeMessage[],
  options: BookOptions,
): string[] {
  checkOptions(symbol, options);
  const unbounded = { maxDiffs: Number.MAX_SAFE_INTEGER, maxLevels: Number.MAX_SAFE_INTEGER };
  const [chunk] = planDepthCalls(symbol, messages, unbounded);
  if (chunk === undefined) throw new Error('internal: planDepthCalls returned no chunk');
  return depthChunkArgs(symbol, chunk, options, 'full');
}

/** ARGV of apply-best-bid-ask-5.lua: the newest bestBidAsk of one symbol's batch (other kinds are skipped). */
export function bestBidAskArgs(symbol: string, messages: readonly SbeMessage[]): string[] {
  let newest: BestBidAskStreamEvent | undefined;
  let batchTime: bigint | undefined;
  for (const message of messages) {
    if (message.message !== 'BestBidAskStreamEvent') continue;
    checkSymbol(symbol, message);
    if (batchTime === undefined || message.eventTime > batchTime) batchTime = message.eventTime;
    if (newest === undefined || message.bookUpdateId > newest.bookUpdateId) newest = message;
  }
  const time = batchTime === undefined ? '' : checkId(symbol, 'event time', batchTime);
  if (newest === undefined) return ['', '', '', '', '', '', time];
  const levels: string[] = [];
  pushLevels(
    levels,
    symbol,
    [
      { priceMantissa: newest.bidPriceMantissa, qtyMantissa: newest.bidQtyMantissa },
      { priceMantissa: newest.askPriceMantissa, qtyMantissa: newest.askQtyMantissa },
    ],
    newest.priceExponent,
    newest.qtyExponent,
  );
  return [
    checkId(symbol, 'bookUpdateId', newest.bookUpdateId),
    ...levels,
    checkId(symbol, 'event time', newest.eventTime),
    time,
  ];
}

/** ARGV of anchor-book-11.lua: N, lastUpdateId, time, bid count, bid pairs, ask pairs. */
export function anchorArgs(symbol: string, snapshot: RestDepthSnapshot, options: BookOptions): string[] {
  checkOptions(symbol, options);
  const args = [
    String(options.levels),
    checkId(symbol, 'lastUpdateId', snapshot.lastUpdateId),
    checkId(symbol, 'snapshot time', snapshot.timeUs),
    String(snapshot.bids.length),
  ];
  pushLevels(args, symbol, snapshot.bids, snapshot.priceExponent, snapshot.qtyExponent);
  pushLevels(args, symbol, snapshot.asks, snapshot.priceExponent, snapshot.qtyExponent);
  return args;
}

// ---------------------------------------------------------------------------------------------------------------
// Script calls.

type ScriptName = BookScriptError['script'];

function scriptError(script: ScriptName, symbol: string, err: unknown): unknown {
  // Outages and failures of the connection itself stay as they are: classifyFailure must see them.
  if (classifyFailure(err) !== 'contained') return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = message.startsWith('BOOKARGS ') ? 'BOOKARGS' : 'SCRIPT';
  return new BookScriptError(script, symbol, code, message, err);
}

async function call(script: ScriptName, symbol: string, run: () => Promise<unknown[]>): Promise<unknown[]> {
  try {
    return await run();
  } catch (err) {
    throw scriptError(script, symbol, err);
  }
}

class ReplyReader {
  private index = 0;
  constructor(
    private readonly script: ScriptName,
    private readonly symbol: string,
    private readonly reply: unknown[],
  ) {}

  private fail(what: string): never {
    throw new BookScriptError(
      this.script,
      this.symbol,
      'REPLY',
      `reply item ${this.index} is not ${what}: ${JSON.stringify(this.reply)}`,
    );
  }

  number(): number {
    const v = this.reply[this.index];
    if (typeof v !== 'number') this.fail('an integer');
    this.index++;
    return v;
  }

  flag(): boolean {
    return this.number() === 1;
  }

  string(): string {
    const v = this.reply[this.index];
    if (typeof v !== 'string') this.fail('a string');
    this.index++;
    return v;
  }

  id(): bigint | undefined {
    const v = this.string();
    if (v === '') return undefined;
    if (!/^\d+$/.test(v)) this.fail('an id');
    return BigInt(v);
  }

  oneOf<T extends string>(values: readonly T[]): T {
    const v = this.string();
    if (!(values as readonly string[]).includes(v)) this.fail(`one of ${values.join('|')}`);
    return v as T;
  }
}

/** Options of one symbol's depth batch (applyBookBatch). */
export interface BookBatchOptions extends BookOptions {
  /** Bounds of one call (default DEFAULT_DEPTH_CALL_LIMITS). */
  readonly limits?: DepthCallLimits;
  /**
   * Send every chunk in the full form at once: the caller knows the book was out of sync, or a re-anchor was keeping
   * diffs, at its last call (DepthBatchResult.fullFormNext), so the net form would only be refused.
   */
  readonly fullForm?: boolean;
}

function isResendReply(reply: unknown[]): boolean {
  return reply.length === 1 && reply[0] === -1;
}

function readDepthReply(
  symbol: string,
  reply: unknown[],
): Omit<DepthBatchResult, 'calls' | 'resent' | 'fullFormNext'> {
  const r = new ReplyReader('applyDepthBatch', symbol, reply);
  const applied = r.number();
  const ignored = r.number();
  const buffered = r.number();
  const gap = r.flag();
  const crossed = r.flag();
  const overflow = r.number();
  const status = r.oneOf(['in_sync', 'out_of_sync'] as const);
  const reason = r.oneOf(['', 'no_snapshot', 'gap', 'crossed'] as const);
  const bookUpdateId = r.id();
  const bufferLength = r.number();
  const source = r.oneOf(['', 'book', 'depth20'] as const);
  const depth20Applied = r.flag();
  const bestWritten = r.flag();
  const kept = r.number();
  return {
    applied,
    ignored,
    buffered,
    kept,
    gap,
    crossed,
    overflow,
    status,
    reason,
    bookUpdateId,
    bufferLength,
    levelsSource: source === '' ? undefined : source,
    depth20Applied,
    bestWritten,
  };
}

/**
 * Applies one symbol's messages of a depth-stream batch (depth20 snapshots and depth diffs; other kinds are
 * skipped) in bounded calls (planDepthCalls), run by Redis in u order; the last call refreshes the symbol's trade
 * windows with the batch's newest event time. Chained chunks go in the net form first unless options.fullForm says
 * the book is out of sync or being re-anchored. The calls are sent together, and the refused net calls again in
 * the full form once they answered; only a batch with a full form of diffs behind a net form goes one call at a
 * time (a refused net call is then sent again in the full form, and every call after it in the full form at once).
 * The result sums the calls (applied, ignored, buffered, kept, overflow), ORs their flags and carries the book
 * state after the last call.
 */
export async function applyBookBatch(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  messages: readonly SbeMessage[],
  options: BookBatchOptions,
): Promise<DepthBatchResult> {
  checkOptions(symbol, options);
  const chunks = planDepthCalls(symbol, messages, options.limits);
  const scriptKeys = depthBatchKeys(keys, symbol);
  // Every call's first form is built before the first is sent: a chunk that cannot be encoded sends nothing. A full
  // form built later (after a refused net form) encodes diffs src/events/validate.ts accepted, which encode.
  let full = options.fullForm === true;
  const argsOf = (chunk: DepthChunk, form: DepthCallForm) => depthChunkArgs(symbol, chunk, options, form);
  const formOf = (chunk: DepthChunk): DepthCallForm =>
    !full && chunk.chained && chunk.diffs.length > 0 ? 'net' : 'full';
  const forms = chunks.map(formOf);
  const args = chunks.map((chunk, i) => argsOf(chunk, forms[i]!));
  const send = (argv: string[]) =>
    call('applyDepthBatch', symbol, () => client.applyDepthBatch(...scriptKeys, ...argv));
  const replies: unknown[][] = [];
  let resent = 0;
  const firstNet = forms.indexOf('net');
  const fullAfterNet =
    firstNet >= 0 && chunks.some((c, i) => i > firstNet && forms[i] === 'full' && c.diffs.length > 0);
  if (!fullAfterNet) {
    // All calls are sent at once (one round trip; the connection keeps their order and Redis runs them in it).
    // Full forms are applied by the script's rules exactly as if sent one by one. A refused net form (reply -1:
    // the book was not in sync, did not bridge, or a re-anchor keeps diffs) wrote nothing, and a later net form
    // applies only when it bridges the book's id, i.e. only when the refused call held nothing the book lacked;
    // so the refused calls, sent again in the full form in order, are applied, buffered or ignored as if every
    // call had gone one by one.
    replies.push(...(await Promise.all(args.map((argv) => send(argv)))));
    for (const [i, chunk] of chunks.entries()) {
      if (!isResendReply(replies[i]!)) continue;
      resent++;
      replies[i] = await send(argsOf(chunk, 'full'));
    }
  } else {
    // A full form with diffs behind a net form (a batch whose diffs do not chain): one call at a time, in u order.
    // Sent behind a refused net form, the full form would find the book short of the refused diffs: a false gap.
    for (const [i, chunk] of chunks.entries()) {
      let reply = await send(full && forms[i] === 'net' ? argsOf(chunk, 'full') : args[i]!);
      if (isResendReply(reply)) {
        full = true;
        resent++;
        reply = await send(argsOf(chunk, 'full'));
      }
      replies.push(reply);
    }
  }
  let total: Omit<DepthBatchResult, 'calls' | 'resent' | 'fullFormNext'> | undefined;
  for (const reply of replies) {
    const r = readDepthReply(symbol, reply);
    total =
      total === undefined
        ? r
        : {
            ...r,
            applied: total.applied + r.applied,
            ignored: total.ignored + r.ignored,
            buffered: total.buffered + r.buffered,
            kept: total.kept + r.kept,
            overflow: total.overflow + r.overflow,
            gap: total.gap || r.gap,
            crossed: total.crossed || r.crossed,
            levelsSource: r.levelsSource ?? total.levelsSource,
            depth20Applied: total.depth20Applied || r.depth20Applied,
            bestWritten: total.bestWritten || r.bestWritten,
          };
  }
  if (total === undefined) throw new Error('internal: a depth batch without a call');
  return {
    ...total,
    calls: replies.length + resent,
    resent,
    fullFormNext: total.status !== 'in_sync' || total.kept > 0,
  };
}

/** Applies the newest bestBidAsk of one symbol's batch and refreshes its trade windows (one script call). */
export async function applyBestBidAskBatch(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  messages: readonly SbeMessage[],
): Promise<BestBidAskResult> {
  const args = bestBidAskArgs(symbol, messages);
  const reply = await call('applyBestBidAsk', symbol, () =>
    client.applyBestBidAsk(...bestBidAskKeys(keys, symbol), ...args),
  );
  const r = new ReplyReader('applyBestBidAsk', symbol, reply);
  return { applied: r.flag(), bestWritten: r.flag() };
}

const OUTCOMES: Readonly<Record<AnchorResult['code'], AnchorOutcome>> = {
  1: 'anchored',
  0: 'noop',
  [-1]: 'too_old',
  [-2]: 'buffer_gap',
  [-3]: 'crossed',
};

/**
 * Anchors the symbol's full book on a REST snapshot and the diffs buffered while it was out of sync (Binance's
 * procedure). A rejected snapshot (too old, a gap in the buffer after it, a crossed result) changes nothing.
 */
export async function anchorBook(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  snapshot: RestDepthSnapshot,
  options: BookOptions,
): Promise<AnchorResult> {
  const args = anchorArgs(symbol, snapshot, options);
  const reply = await call('anchorBook', symbol, () =>
    client.anchorBook(...anchorKeys(keys, symbol), ...args),
  );
  const r = new ReplyReader('anchorBook', symbol, reply);
  const code = r.number();
  if (!(code in OUTCOMES)) {
    throw new BookScriptError('anchorBook', symbol, 'REPLY', `unknown code ${code}`);
  }
  const known = code as AnchorResult['code'];
  return {
    code: known,
    outcome: OUTCOMES[known],
    bookUpdateId: r.id(),
    diffsApplied: r.number(),
    diffsDropped: r.number(),
    neededLastUpdateId: r.id(),
  };
}
