import type { Result } from 'ioredis';
import { formatDecimal } from '../sbe/decimal';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
} from '../sbe/messages';
import { isRetryable } from './errors';
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
// Exponents: one symbol's prices must always be formatted at the same exponent (Binance sends -8 for all spot
// symbols), since the full book is keyed by the exact price string ("1.5" and "1.50" would be two levels).

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
export class BookArgumentError extends Error {
  constructor(
    readonly symbol: string,
    message: string,
  ) {
    super(`order book ${symbol}: ${message}`);
    this.name = 'BookArgumentError';
  }
}

/**
 * A script call failed for a reason other than an outage (those are rethrown unchanged so that isRetryable()
 * sees them): code BOOKARGS (the script refused its arguments, before writing anything), SCRIPT (another
 * error reply, e.g. a Lua bug) or REPLY (a reply of an unexpected shape).
 */
export class BookScriptError extends Error {
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
function bookKeys(keys: Keys, symbol: string): string[] {
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

/** The trade-window keys refresh_trade_windows takes after ob: (tr:<S>:1s, :5s, :buckets, :state). */
function windowKeys(keys: Keys, symbol: string): string[] {
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
export function depthBatchKeys(keys: Keys, symbol: string): string[] {
  return [...bookKeys(keys, symbol), ...windowKeys(keys, symbol), keys.reanchorFlag(symbol)];
}

/** KEYS of apply-best-bid-ask-5.lua. */
export function bestBidAskKeys(keys: Keys, symbol: string): string[] {
  return [keys.orderBook(symbol), ...windowKeys(keys, symbol)];
}

/** KEYS of anchor-book-11.lua (apply-depth-batch-12.lua's first 11: no re-anchor flag). */
export function anchorKeys(keys: Keys, symbol: string): string[] {
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

/** Appends " price qty" of each level (exact decimal strings; negative mantissas are refused). */
function pushLevels(
  out: string[],
  symbol: string,
  levels: readonly PriceLevel[],
  priceExponent: number,
  qtyExponent: number,
): void {
  for (const level of levels) {
    if (level.priceMantissa < 0n || level.qtyMantissa < 0n) {
      throw new BookArgumentError(
        symbol,
        `negative price or quantity (${level.priceMantissa}, ${level.qtyMantissa})`,
      );
    }
    out.push(
      formatDecimal(level.priceMantissa, priceExponent),
      formatDecimal(level.qtyMantissa, qtyExponent),
    );
  }
}

/** A diff's levels as exact strings [price, qty, price, qty, ...] per side, formatted once per diff (both the
 * diff's script string and the batch's net effect need them). */
const formatted = new WeakMap<DepthDiffStreamEvent, { bids: string[]; asks: string[] }>();
function formattedLevels(diff: DepthDiffStreamEvent): { bids: string[]; asks: string[] } {
  let levels = formatted.get(diff);
  if (levels === undefined) {
    const bids: string[] = [];
    const asks: string[] = [];
    pushLevels(bids, diff.symbol, diff.bids, diff.priceExponent, diff.qtyExponent);
    pushLevels(asks, diff.symbol, diff.asks, diff.priceExponent, diff.qtyExponent);
    levels = { bids, asks };
    formatted.set(diff, levels);
  }
  return levels;
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
  const levels = formattedLevels(diff);
  return [
    diff.firstBookUpdateId.toString(),
    diff.lastBookUpdateId.toString(),
    diff.eventTime.toString(),
    String(diff.bids.length),
    ...levels.bids,
    ...levels.asks,
  ].join(' ');
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

/**
 * The net effect of diffs applied in order, per side: the final quantity of every price they touch, in first-seen
 * order, split into levels set (non-zero) and prices removed. Flat: [nBidSet nBidDel nAskSet nAskDel] and the
 * values (bid price, qty pairs, bid prices, ask pairs, ask prices).
 */
export function netEffect(diffs: readonly DepthDiffStreamEvent[]): { counts: string; values: string[] } {
  const values: string[] = [];
  const counts: number[] = [];
  for (const side of ['bids', 'asks'] as const) {
    const final = new Map<string, string | undefined>(); // price -> qty, undefined = removed
    for (const diff of diffs) {
      const strings = formattedLevels(diff)[side];
      const levels = diff[side];
      for (let i = 0; i < levels.length; i++) {
        final.set(strings[2 * i]!, levels[i]!.qtyMantissa === 0n ? undefined : strings[2 * i + 1]!);
      }
    }
    const removed: string[] = [];
    let set = 0;
    for (const [price, qty] of final) {
      if (qty === undefined) removed.push(price);
      else {
        values.push(price, qty);
        set++;
      }
    }
    values.push(...removed);
    counts.push(set, removed.length);
  }
  // values holds bid pairs, bid removals, ask pairs, ask removals.
  return { counts: counts.join(' '), values };
}

/**
 * ARGV of apply-depth-batch-12.lua for one symbol's messages of a depth-stream batch: the newest depth20 snapshot
 * (top `levels`), the diffs sorted by u ascending with duplicates (same u) removed, and, when they chain
 * (each U <= previous u + 1), their net effect for the script's fast path. Messages of other kinds are not this
 * script's and are skipped.
 */
export function depthBatchArgs(
  symbol: string,
  messages: readonly SbeMessage[],
  options: BookOptions,
): string[] {
  const bound = checkOptions(symbol, options);
  let newestSnapshot: DepthSnapshotStreamEvent | undefined;
  const all: DepthDiffStreamEvent[] = [];
  let batchTime: bigint | undefined;
  for (const message of messages) {
    if (message.message !== 'DepthSnapshotStreamEvent' && message.message !== 'DepthDiffStreamEvent')
      continue;
    checkSymbol(symbol, message);
    if (batchTime === undefined || message.eventTime > batchTime) batchTime = message.eventTime;
    if (message.message === 'DepthDiffStreamEvent') all.push(message);
    else if (newestSnapshot === undefined || message.bookUpdateId > newestSnapshot.bookUpdateId) {
      newestSnapshot = message;
    }
  }
  all.sort(compareDiffs);
  const diffs: DepthDiffStreamEvent[] = [];
  let chained = true;
  for (const diff of all) {
    const previous = diffs[diffs.length - 1];
    if (previous !== undefined) {
      if (diff.lastBookUpdateId === previous.lastBookUpdateId) continue;
      if (diff.firstBookUpdateId > previous.lastBookUpdateId + 1n) chained = false;
    }
    diffs.push(diff);
  }
  const net = chained && diffs.length > 0 ? netEffect(diffs) : undefined;
  return [
    String(options.levels),
    String(bound),
    batchTime === undefined ? '' : checkId(symbol, 'event time', batchTime),
    newestSnapshot ? checkId(symbol, 'depth20 bookUpdateId', newestSnapshot.bookUpdateId) : '',
    newestSnapshot ? checkId(symbol, 'depth20 event time', newestSnapshot.eventTime) : '',
    newestSnapshot ? encodeTopLevels(newestSnapshot, options.levels) : '',
    String(diffs.length),
    net ? net.counts : '',
    ...diffs.map(encodeDiff),
    ...(net ? net.values : []),
  ];
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
  if (isRetryable(err)) return err;
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

/**
 * Applies one symbol's messages of a depth-stream batch (depth20 snapshots and depth diffs; other kinds are
 * skipped) with one script call, and refreshes the symbol's trade windows with the batch's newest event time.
 */
export async function applyBookBatch(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  messages: readonly SbeMessage[],
  options: BookOptions,
): Promise<DepthBatchResult> {
  const args = depthBatchArgs(symbol, messages, options);
  const [ob, bids, asks, bidsIdx, asksIdx, state, buffer, tr1, tr5, buckets, trState, flag] = depthBatchKeys(
    keys,
    symbol,
  ) as [string, string, string, string, string, string, string, string, string, string, string, string];
  const reply = await call('applyDepthBatch', symbol, () =>
    client.applyDepthBatch(
      ob,
      bids,
      asks,
      bidsIdx,
      asksIdx,
      state,
      buffer,
      tr1,
      tr5,
      buckets,
      trState,
      flag,
      ...args,
    ),
  );
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

/** Applies the newest bestBidAsk of one symbol's batch and refreshes its trade windows (one script call). */
export async function applyBestBidAskBatch(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  messages: readonly SbeMessage[],
): Promise<BestBidAskResult> {
  const args = bestBidAskArgs(symbol, messages);
  const [ob, tr1, tr5, buckets, trState] = bestBidAskKeys(keys, symbol) as [
    string,
    string,
    string,
    string,
    string,
  ];
  const reply = await call('applyBestBidAsk', symbol, () =>
    client.applyBestBidAsk(ob, tr1, tr5, buckets, trState, ...args),
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
  const [ob, bids, asks, bidsIdx, asksIdx, state, buffer, tr1, tr5, buckets, trState] = anchorKeys(
    keys,
    symbol,
  ) as [string, string, string, string, string, string, string, string, string, string, string];
  const reply = await call('anchorBook', symbol, () =>
    client.anchorBook(ob, bids, asks, bidsIdx, asksIdx, state, buffer, tr1, tr5, buckets, trState, ...args),
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
