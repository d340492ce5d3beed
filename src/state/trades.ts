import { AggregatorError } from '../common/errors';
import type { Result } from 'ioredis';
import { toCanonical } from '../events/canonical';
import type { TradesStreamEvent } from '../sbe/messages';
import type { ContainedCode, HasDeadLetterCode } from './errors';
import type { Keys } from './keys';
import type { RedisClient } from './redis';

// Rolling trade statistics of one symbol: the trades of a processRecords batch are flattened, sorted by id and
// applied with ONE call of lua/apply-trade-batch-6.lua, which keeps 100 ms buckets of the last 5 s in Redis and
// recomputes tr:<S>:1s and tr:<S>:5s from them (true sliding windows over event time: a restart or a lease moving
// to another worker loses nothing). Idempotent: only ids above the last applied one are applied; a jump in ids
// is reported as a gap.
//
// The symbol's event time T is the newest time seen for it: trade times (each trade's transactTime; a trade
// message's own eventTime does not move T) and the event times the book scripts pass to refresh_trade_windows
// (lua/includes/trade-windows.lua). With B the 100 ms
// bucket holding T, the window of W seconds holds the trades of buckets B - 10W + 1 .. B (bucket start > T - W).
//
// Statistics of a window (doubles; written with %.17g; an empty window gives zeros, never NaN or infinity):
//   count               number of trades in the window
//   buy_volume          sum of qty of trades whose buyer was the taker (isBuyerMaker = false)
//   sell_volume         sum of qty of the others (isBuyerMaker = true)
//   volume              buy_volume + sell_volume
//   notional            sum of price x qty
//   vwap                notional / volume                                  (0 if volume = 0)
//   price_std           population standard deviation of trade prices, unweighted (0 if no trade)
//   trade_intensity     count / W
//   avg_trade_size      volume / count                                     (0 if no trade)
//   last_ts_us          newest trade time in the window, integer us        (0 if no trade)
//   signed_volume       buy_volume - sell_volume
//   vwap_minus_mid      vwap - ob:<S> mid_price                            (0 if volume = 0 or no finite mid > 0)
// 5 s window only:
//   price_momentum      (last - first) / first; first = price of the lowest-id trade of the oldest non-empty bucket,
//                       last = price of the highest-id trade of the newest non-empty bucket (0 if count < 2)
//   volume_acceleration (V_new - V_old) / 2.5 s; V_new = volume of buckets B-24..B, V_old of B-49..B-25
// Trade time is the message's transactTime; price and qty are canonical decimal strings (exactly 8 fraction
// digits, src/events/canonical.ts), whatever exponent the message carried.

/** KEYS of apply-trade-batch and repair-trades. */
type TradeScriptKeys = [
  obKey: string,
  tr1Key: string,
  tr5Key: string,
  bucketsKey: string,
  stateKey: string,
  pxKey: string,
];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    applyTradeBatch(
      ...keysAndArgs: [...TradeScriptKeys, ...args: string[]]
    ): Result<Array<string | number>, Context>;
    repairTrades(
      ...keysAndArgs: [...TradeScriptKeys, ...args: string[]]
    ): Result<Array<string | number>, Context>;
  }
}

/** Bucket size of the windows and the price history, microseconds. */
export const TRADE_BUCKET_US = 100_000n;
/** The windows kept (tr:<S>:1s, tr:<S>:5s). */
export const TRADE_WINDOW_SECONDS = [1, 5] as const;
/** TTL of tr:<S>:1s and tr:<S>:5s, set on every rewrite. */
export const TRADE_WINDOW_TTL_SECONDS = 300;
/** Buckets kept in px:<S> (15 s). */
export const PRICE_HISTORY_BUCKETS = 150;
/** Contract fields of tr:<S>:1s, in the order the script writes them. */
export const TRADE_WINDOW_FIELDS = [
  'count',
  'volume',
  'notional',
  'buy_volume',
  'sell_volume',
  'vwap',
  'price_std',
  'trade_intensity',
  'avg_trade_size',
  'last_ts_us',
  'signed_volume',
  'vwap_minus_mid',
] as const;
/** Contract fields of tr:<S>:5s. */
export const TRADE_WINDOW_5S_FIELDS = [
  ...TRADE_WINDOW_FIELDS,
  'price_momentum',
  'volume_acceleration',
] as const;

/** Fields per trade in the script's ARGV. */
export const ARGS_PER_TRADE = 5;

/** One trade, flattened out of its TradesStreamEvent. */
export interface FlatTrade {
  readonly id: bigint;
  /** Trade time (the message's transactTime), microseconds. */
  readonly timeUs: bigint;
  /** Canonical decimal strings (toCanonical of the mantissas at the message's exponents). */
  readonly price: string;
  readonly qty: string;
  readonly isBuyerMaker: boolean;
}

export interface FlattenedTrades {
  /** Ascending ids, each once. */
  readonly trades: readonly FlatTrade[];
  /** Newest transactTime of the messages that carry trades (undefined when there are none). */
  readonly eventTimeUs: bigint | undefined;
  /** Trades dropped because their id was already in the batch (the first occurrence is kept). */
  readonly duplicatesInBatch: number;
}

export interface TradeGap {
  /** First missing id. */
  readonly from: bigint;
  /** Last missing id (inclusive). */
  readonly to: bigint;
}

export interface TradeBatchResult {
  readonly applied: number;
  /** Trades not applied: not newer than the last applied id, or repeated within the batch. */
  readonly duplicates: number;
  /** Missing id ranges found in this batch, in id order. */
  readonly gaps: readonly TradeGap[];
  /** The symbol's event time after the call (undefined while nothing is known). */
  readonly eventTimeUs: bigint | undefined;
  /** The last applied trade id after the call (undefined while none was applied). */
  readonly lastTradeId: bigint | undefined;
}

export interface ApplyTradeBatchOptions {
  /** A further event time (us) to advance the symbol's event time to, e.g. the batch's newest non-trade event. */
  readonly eventTimeUs?: bigint;
  /**
   * Split a large batch into calls of at most this many trades, applied one after the other (default: one call).
   * Each call blocks Redis for about 100 us + 2-3 us per trade, so a cap of a few hundred keeps readers' latency
   * low when a poll brings thousands of trades. The end state is the same as with one call.
   */
  readonly maxTradesPerCall?: number;
}

/** Messages the script cannot take (another symbol's, a value without a canonical form), or a reply of the wrong
 * shape (deadLetterCode SCRIPT_REPLY). */
export class TradeBatchError extends AggregatorError implements HasDeadLetterCode {
  constructor(
    message: string,
    readonly symbol: string,
    readonly deadLetterCode: ContainedCode = 'SCRIPT_ARGS',
  ) {
    super(message, { code: deadLetterCode, context: { symbol } });
    this.name = 'TradeBatchError';
  }
}

/** KEYS of apply-trade-batch-6.lua, in order: ob, tr 1s, tr 5s, buckets, state, px. */
export function tradeBatchKeys(keys: Keys, symbol: string): [string, string, string, string, string, string] {
  return [...tradeWindowKeys(keys, symbol), keys.priceHistory(symbol)];
}

/**
 * The keys refresh_trade_windows(ob_key, tr1_key, tr5_key, buckets_key, state_key, event_time_us) takes, in that
 * order, for scripts that include lua/includes/trade-windows.lua (the book scripts).
 */
export function tradeWindowKeys(keys: Keys, symbol: string): [string, string, string, string, string] {
  return [
    keys.orderBook(symbol),
    keys.tradeWindow(symbol, 1),
    keys.tradeWindow(symbol, 5),
    keys.tradeBuckets(symbol),
    keys.tradeState(symbol),
  ];
}

/** Flattens the trades of one symbol's messages, sorted by id, each id once. Pure. */
export function flattenTrades(symbol: string, messages: readonly TradesStreamEvent[]): FlattenedTrades {
  const all: FlatTrade[] = [];
  let eventTimeUs: bigint | undefined;
  for (const message of messages) {
    if (message.symbol !== symbol) {
      throw new TradeBatchError(
        `trade batch of ${symbol} holds a message of ${JSON.stringify(message.symbol)}`,
        symbol,
      );
    }
    // T follows trade times only: the message's eventTime is when it was sent, not when the trades happened.
    if (message.trades.length > 0 && (eventTimeUs === undefined || message.transactTime > eventTimeUs)) {
      eventTimeUs = message.transactTime;
    }
    for (const trade of message.trades) {
      let price: string;
      let qty: string;
      try {
        price = toCanonical(trade.priceMantissa, message.priceExponent);
        qty = toCanonical(trade.qtyMantissa, message.qtyExponent);
      } catch (err) {
        throw new TradeBatchError(`trade ${trade.id} of ${symbol}: ${(err as Error).message}`, symbol);
      }
      all.push({ id: trade.id, timeUs: message.transactTime, price, qty, isBuyerMaker: trade.isBuyerMaker });
    }
  }
  // A stable sort keeps the first occurrence of a repeated id first.
  all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const trades: FlatTrade[] = [];
  for (const trade of all) {
    const previous = trades[trades.length - 1];
    if (previous === undefined || trade.id !== previous.id) trades.push(trade);
  }
  return { trades, eventTimeUs, duplicatesInBatch: all.length - trades.length };
}

/** ARGV of apply-trade-batch-6.lua (layout in its header). `trades` must be in ascending id order. */
export function tradeBatchArgs(trades: readonly FlatTrade[], eventTimeUs: bigint | undefined): string[] {
  const args = new Array<string>(1 + trades.length * ARGS_PER_TRADE);
  args[0] = eventTimeUs === undefined ? '' : eventTimeUs.toString();
  let i = 1;
  for (const trade of trades) {
    args[i++] = trade.id.toString();
    args[i++] = trade.timeUs.toString();
    args[i++] = trade.price;
    args[i++] = trade.qty;
    args[i++] = trade.isBuyerMaker ? '1' : '0';
  }
  return args;
}

function maxTime(a: bigint | undefined, b: bigint | undefined): bigint | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}

function optionalBigInt(value: unknown): bigint | undefined {
  return value === '' ? undefined : BigInt(value as string);
}

/** Turns the script's reply into a typed result (without the batch's own in-batch duplicates). */
export function parseTradeBatchReply(symbol: string, reply: unknown): TradeBatchResult {
  if (
    !Array.isArray(reply) ||
    reply.length < 4 ||
    reply.length % 2 !== 0 ||
    typeof reply[0] !== 'number' ||
    typeof reply[1] !== 'number' ||
    !reply.slice(2).every((v) => typeof v === 'string' && /^\d*$/.test(v))
  ) {
    throw new TradeBatchError(
      `unexpected reply of applyTradeBatch: ${JSON.stringify(reply)}`,
      symbol,
      'SCRIPT_REPLY',
    );
  }
  const values = reply as [number, number, ...string[]];
  const gaps: TradeGap[] = [];
  for (let i = 4; i < values.length; i += 2) {
    gaps.push({ from: BigInt(values[i] as string), to: BigInt(values[i + 1] as string) });
  }
  return {
    applied: values[0],
    duplicates: values[1],
    gaps,
    eventTimeUs: optionalBigInt(values[2]),
    lastTradeId: optionalBigInt(values[3]),
  };
}

/**
 * Applies one batch of a symbol's trade messages with one script call. Safe to retry and to redeliver: trades
 * not newer than the last applied id change nothing.
 */
export async function applyTradeBatch(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  messages: readonly TradesStreamEvent[],
  options: ApplyTradeBatchOptions = {},
): Promise<TradeBatchResult> {
  const limit = options.maxTradesPerCall ?? Infinity;
  if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 1))) {
    throw new RangeError(`maxTradesPerCall must be a positive integer, got ${limit}`);
  }
  const flat = flattenTrades(symbol, messages);
  const eventTimeUs = maxTime(flat.eventTimeUs, options.eventTimeUs);
  const scriptKeys = tradeBatchKeys(keys, symbol);
  let applied = 0;
  let duplicates = flat.duplicatesInBatch;
  const gaps: TradeGap[] = [];
  let last: TradeBatchResult | undefined;
  // In order, one call at a time: a later chunk must never land before an earlier one (its ids would hide them).
  for (let start = 0; last === undefined || start < flat.trades.length; start += limit) {
    const chunk = flat.trades.slice(start, start + limit);
    const final = start + limit >= flat.trades.length;
    // Earlier chunks advance the event time only through their own trade times; the last one carries the batch's.
    const reply = await client.applyTradeBatch(
      ...scriptKeys,
      ...tradeBatchArgs(chunk, final ? eventTimeUs : undefined),
    );
    last = parseTradeBatchReply(symbol, reply);
    applied += last.applied;
    duplicates += last.duplicates;
    gaps.push(...last.gaps);
  }
  return { applied, duplicates, gaps, eventTimeUs: last.eventTimeUs, lastTradeId: last.lastTradeId };
}

// ---------------------------------------------------------------------------------------------------------------
// Repair of trade-id gaps from REST trades (lua/repair-trades-6.lua)

/** What became of one open gap (the script's outcomes). */
export type GapRepairOutcome = 'repaired' | 'before_rest' | 'after_rest' | 'not_whole';
const GAP_OUTCOMES: readonly string[] = ['repaired', 'before_rest', 'after_rest', 'not_whole'];

export interface GapRepair extends TradeGap {
  readonly outcome: GapRepairOutcome;
}

export interface TradeRepairResult {
  readonly repairedGaps: number;
  readonly repairedTrades: bigint;
  /** Gaps declared unrepairable by this call (before_rest, not_whole) and their trades. */
  readonly unrepairableGaps: number;
  readonly unrepairableTrades: bigint;
  /** Gaps still open after the call (after_rest: the REST answer predates them). */
  readonly openGapsLeft: number;
  /** Every open gap the call examined, oldest first. */
  readonly gaps: readonly GapRepair[];
}

/** The repair script's reply, typed. Pure; a reply of another shape throws TradeBatchError (SCRIPT_REPLY). */
export function parseTradeRepairReply(symbol: string, reply: unknown): TradeRepairResult {
  const bad = (): never => {
    throw new TradeBatchError(
      `unexpected reply of repairTrades: ${JSON.stringify(reply)}`,
      symbol,
      'SCRIPT_REPLY',
    );
  };
  if (!Array.isArray(reply) || reply.length < 5 || (reply.length - 5) % 3 !== 0) return bad();
  const [repairedGaps, repairedTrades, unrepairableGaps, unrepairableTrades, openGapsLeft] =
    reply as unknown[];
  if (
    typeof repairedGaps !== 'number' ||
    typeof unrepairableGaps !== 'number' ||
    typeof openGapsLeft !== 'number' ||
    typeof repairedTrades !== 'string' ||
    typeof unrepairableTrades !== 'string' ||
    !/^\d+$/.test(repairedTrades) ||
    !/^\d+$/.test(unrepairableTrades)
  ) {
    return bad();
  }
  const gaps: GapRepair[] = [];
  for (let i = 5; i < reply.length; i += 3) {
    const [from, to, outcome] = reply.slice(i, i + 3) as unknown[];
    if (typeof from !== 'string' || typeof to !== 'string' || !/^\d+$/.test(from) || !/^\d+$/.test(to)) {
      return bad();
    }
    if (typeof outcome !== 'string' || !GAP_OUTCOMES.includes(outcome)) return bad();
    gaps.push({ from: BigInt(from), to: BigInt(to), outcome: outcome as GapRepairOutcome });
  }
  return {
    repairedGaps,
    repairedTrades: BigInt(repairedTrades),
    unrepairableGaps,
    unrepairableTrades: BigInt(unrepairableTrades),
    openGapsLeft,
    gaps,
  };
}

/**
 * The newest run of consecutive ids of a REST answer (sorted by id, each id once): the repair script takes only
 * consecutive ids, and /api/v3/trades answers with one such run (a hole would be the exchange's, not ours). Pure.
 */
export function newestConsecutiveRun(trades: readonly FlatTrade[]): FlatTrade[] {
  const sorted = [...trades].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  let start = sorted.length - 1;
  while (start > 0) {
    const previous = sorted[start - 1] as FlatTrade;
    const current = sorted[start] as FlatTrade;
    if (current.id === previous.id) {
      sorted.splice(start, 1);
      start--;
      continue;
    }
    if (current.id !== previous.id + 1n) break;
    start--;
  }
  return sorted.slice(Math.max(0, start));
}

/** The open trade-id gaps of tr:<S>:state open_gaps ("from-to,..."), oldest first. Pure. */
export function parseOpenGaps(raw: string | null | undefined): TradeGap[] {
  const gaps: TradeGap[] = [];
  for (const part of (raw ?? '').split(',')) {
    const match = /^(\d+)-(\d+)$/.exec(part);
    if (match) gaps.push({ from: BigInt(match[1] as string), to: BigInt(match[2] as string) });
  }
  return gaps;
}

/** Whether the symbol's trade state (the given keys: live or a re-anchor's copy) has open trade-id gaps. */
export async function hasOpenTradeGaps(client: RedisClient, stateKey: string): Promise<boolean> {
  const raw = await client.hget(stateKey, 'open_gaps');
  return raw !== null && raw !== '';
}

/**
 * Fills the symbol's open trade-id gaps from REST trades, or declares them unrepairable, in one atomic call
 * (lua/repair-trades-6.lua: the contract, the outcomes and why a bucket must be covered whole). `scriptKeys`:
 * tradeBatchKeys of the live state (default) or of a re-anchor's temporary copy. No call without open gaps or
 * without trades.
 */
export async function repairTradeGaps(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  restTrades: readonly FlatTrade[],
  scriptKeys: readonly [string, string, string, string, string, string] = tradeBatchKeys(keys, symbol),
): Promise<TradeRepairResult> {
  const run = newestConsecutiveRun(restTrades);
  const none: TradeRepairResult = {
    repairedGaps: 0,
    repairedTrades: 0n,
    unrepairableGaps: 0,
    unrepairableTrades: 0n,
    openGapsLeft: 0,
    gaps: [],
  };
  if (!(await hasOpenTradeGaps(client, scriptKeys[4]))) return none;
  if (run.length === 0) {
    const open = parseOpenGaps(await client.hget(scriptKeys[4], 'open_gaps'));
    return { ...none, openGapsLeft: open.length };
  }
  const reply = await client.repairTrades(...scriptKeys, ...tradeBatchArgs(run, undefined).slice(1));
  return parseTradeRepairReply(symbol, reply);
}
