import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
  TradesStreamEvent,
} from '../sbe/messages';
import { levelBlockOf, type LevelBlock, type LevelRun } from '../sbe/decoder';
import { canonicalMantissa, exactCanonicalAt as exactCanonical, CANONICAL_SCALE } from './canonical';

// Semantic validation of decoded events (pure): a frame can decode and still carry values no exchange sends.
// Every event passes here before it is grouped and written; one that fails is dead-lettered under its code and
// never reaches a script, so it can neither stop a shard nor move the symbol's clock.
//
// Rules (docs/architecture.md repeats them in its table under "No record can stop a shard"):
//   INVALID_SYMBOL  the symbol is empty, longer than 32 characters, or has a character that is neither a letter
//                   nor a digit (any script: Binance lists non-ASCII symbols)
//   BAD_EXPONENT    priceExponent or qtyExponent outside -18..18
//   BAD_PRICE       a price <= 0, with more than 8 fraction digits, or above (2^63 - 1) / 10^8
//   BAD_QTY         a quantity < 0, with more than 8 fraction digits, or above (2^63 - 1) / 10^8
//   BAD_TRADE_ID    a trade id < 0, or the ids of one message not strictly increasing
//   BAD_UPDATE_ID   a bookUpdateId < 0, a diff's U < 0 or U > u
//   BAD_TIME        an eventTime or transactTime < 0
//   FUTURE_TIME     an eventTime or transactTime further ahead of the processor's clock than the allowed skew
//                   (processing.max_future_skew_ms). Old events are never rejected for their age: catch-ups,
//                   Kinesis retention and replays of history are legitimate.
//   BAD_LEVELS      a price twice on one side of a message; a depth20 side out of order (bids descending, asks
//                   ascending, strictly) or a crossed depth20 (best bid >= best ask)

export const VALIDATION_CODES = [
  'INVALID_SYMBOL',
  'BAD_EXPONENT',
  'BAD_PRICE',
  'BAD_QTY',
  'BAD_TRADE_ID',
  'BAD_UPDATE_ID',
  'BAD_TIME',
  'FUTURE_TIME',
  'BAD_LEVELS',
] as const;
export type ValidationCode = (typeof VALIDATION_CODES)[number];

export const MIN_EXPONENT = -18;
export const MAX_EXPONENT = 18;
export const MAX_SYMBOL_LENGTH = 32;
/** Default of processing.max_future_skew_ms. */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 5000;

export interface ValidationClock {
  /** The processor's clock, microseconds since the epoch. */
  readonly nowUs: bigint;
  /** How far ahead of nowUs an event or trade time may be, microseconds. */
  readonly maxFutureSkewUs: bigint;
}

/** Why an event was rejected: a code, the field (e.g. "trades[3].price") and a sentence naming the value. */
export interface ValidationFailure {
  readonly code: ValidationCode;
  readonly field: string;
  readonly message: string;
}

const SYMBOL = /^[\p{L}\p{N}]+$/u;

function fail(code: ValidationCode, field: string, message: string): ValidationFailure {
  return { code, field, message: `${field}: ${message}` };
}

/** The symbol rule alone (also used for configured symbols). */
export function symbolProblem(symbol: string): string | undefined {
  if (symbol.length === 0) return 'empty';
  if ([...symbol].length > MAX_SYMBOL_LENGTH) return `longer than ${MAX_SYMBOL_LENGTH} characters`;
  if (!SYMBOL.test(symbol)) return `${JSON.stringify(symbol)} has a character other than letters and digits`;
  return undefined;
}

function checkTime(field: string, value: bigint, clock: ValidationClock): ValidationFailure | undefined {
  if (value < 0n) return fail('BAD_TIME', field, `negative (${value})`);
  const ahead = value - clock.nowUs;
  if (ahead > clock.maxFutureSkewUs) {
    return fail(
      'FUTURE_TIME',
      field,
      `${value} us is ${Number(ahead) / 1e6} s ahead of the processor's clock (allowed: ` +
        `${Number(clock.maxFutureSkewUs) / 1e6} s)`,
    );
  }
  return undefined;
}

function checkExponent(field: string, exponent: number): ValidationFailure | undefined {
  if (exponent < MIN_EXPONENT || exponent > MAX_EXPONENT) {
    return fail('BAD_EXPONENT', field, `${exponent} is outside ${MIN_EXPONENT}..${MAX_EXPONENT}`);
  }
  return undefined;
}

/**
 * The value at scale 8 when the mantissa keeps the rule (price > 0, quantity >= 0, at most 8 decimals, within
 * int64 at scale 8), else undefined: the caller then builds the failure with scaledFailure. Split so that the
 * field name, a string, is only built for a failure (this runs for every level of every depth message).
 */
function scaledValue(mantissa: bigint, exponent: number, positive: boolean): bigint | undefined {
  if (positive ? mantissa <= 0n : mantissa < 0n) return undefined;
  return canonicalMantissa(mantissa, exponent);
}

/** Why scaledValue refused a mantissa. */
function scaledFailure(
  code: 'BAD_PRICE' | 'BAD_QTY',
  field: string,
  mantissa: bigint,
  exponent: number,
): ValidationFailure {
  if (code === 'BAD_PRICE' ? mantissa <= 0n : mantissa < 0n) {
    return fail(code, field, `mantissa ${mantissa} is ${code === 'BAD_PRICE' ? 'not positive' : 'negative'}`);
  }
  return fail(
    code,
    field,
    `${mantissa} x 10^${exponent} needs more than ${CANONICAL_SCALE} fraction digits or exceeds ` +
      `(2^63 - 1) / 10^${CANONICAL_SCALE}`,
  );
}

// symbolProblem's answers for the symbols seen lately: a stream repeats a handful of symbols, and the rule walks
// every character. Bounded: cleared when full, so a stream of ever-new symbols cannot grow it.
const symbolAnswers = new Map<string, string | undefined>();
const SYMBOL_ANSWERS_MAX = 1024;

function knownSymbolProblem(symbol: string): string | undefined {
  if (symbolAnswers.has(symbol)) return symbolAnswers.get(symbol);
  const problem = symbolProblem(symbol);
  if (symbolAnswers.size >= SYMBOL_ANSWERS_MAX) symbolAnswers.clear();
  symbolAnswers.set(symbol, problem);
  return problem;
}

function checkCommon(message: SbeMessage, clock: ValidationClock): ValidationFailure | undefined {
  const problem = knownSymbolProblem(message.symbol);
  if (problem !== undefined) return fail('INVALID_SYMBOL', 'symbol', problem);
  return (
    checkExponent('priceExponent', message.priceExponent) ??
    checkExponent('qtyExponent', message.qtyExponent) ??
    checkTime('eventTime', message.eventTime, clock)
  );
}

function validateTrades(m: TradesStreamEvent, clock: ValidationClock): ValidationFailure | undefined {
  const time = checkTime('transactTime', m.transactTime, clock);
  if (time !== undefined) return time;
  let previous: bigint | undefined;
  for (let i = 0; i < m.trades.length; i++) {
    const t = m.trades[i]!;
    if (t.id < 0n) return fail('BAD_TRADE_ID', `trades[${i}].id`, `negative (${t.id})`);
    if (previous !== undefined && t.id <= previous) {
      return fail(
        'BAD_TRADE_ID',
        `trades[${i}].id`,
        `${t.id} does not follow ${previous} (ids must increase)`,
      );
    }
    previous = t.id;
    if (scaledValue(t.priceMantissa, m.priceExponent, true) === undefined) {
      return scaledFailure('BAD_PRICE', `trades[${i}].price`, t.priceMantissa, m.priceExponent);
    }
    if (scaledValue(t.qtyMantissa, m.qtyExponent, false) === undefined) {
      return scaledFailure('BAD_QTY', `trades[${i}].qty`, t.qtyMantissa, m.qtyExponent);
    }
  }
  return undefined;
}

function validateBestBidAsk(m: BestBidAskStreamEvent): ValidationFailure | undefined {
  if (m.bookUpdateId < 0n) return fail('BAD_UPDATE_ID', 'bookUpdateId', `negative (${m.bookUpdateId})`);
  for (const [field, code, mantissa, exponent] of [
    ['bidPrice', 'BAD_PRICE', m.bidPriceMantissa, m.priceExponent],
    ['bidQty', 'BAD_QTY', m.bidQtyMantissa, m.qtyExponent],
    ['askPrice', 'BAD_PRICE', m.askPriceMantissa, m.priceExponent],
    ['askQty', 'BAD_QTY', m.askQtyMantissa, m.qtyExponent],
  ] as const) {
    if (scaledValue(mantissa, exponent, code === 'BAD_PRICE') === undefined) {
      return scaledFailure(code, field, mantissa, exponent);
    }
  }
  return undefined;
}

/**
 * The levels of one side: prices > 0, quantities >= 0, no price twice; with `ordered`, strictly descending (bids)
 * or ascending (asks). Returns the first (best) canonical price, or a failure. Without `ordered` a side that
 * happens to be in that order (as Binance sends them) cannot repeat a price, so the set of prices seen is only
 * built from the first level out of order on.
 */
function checkSide(
  side: 'bids' | 'asks',
  levels: readonly PriceLevel[],
  priceExponent: number,
  qtyExponent: number,
  ordered: boolean,
): bigint | undefined | ValidationFailure {
  const descending = side === 'bids';
  let first: bigint | undefined;
  let previous: bigint | undefined;
  let seen: Set<bigint> | undefined;
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    const price = scaledValue(level.priceMantissa, priceExponent, true);
    if (price === undefined) {
      return scaledFailure('BAD_PRICE', `${side}[${i}].price`, level.priceMantissa, priceExponent);
    }
    if (scaledValue(level.qtyMantissa, qtyExponent, false) === undefined) {
      return scaledFailure('BAD_QTY', `${side}[${i}].qty`, level.qtyMantissa, qtyExponent);
    }
    const inOrder = previous === undefined || (descending ? price < previous : price > previous);
    if (ordered && !inOrder) {
      return fail(
        'BAD_LEVELS',
        `${side}[${i}].price`,
        `${side} must be strictly ${descending ? 'descending' : 'ascending'} by price`,
      );
    }
    if (seen === undefined && !inOrder) {
      // Out of order from here on: every price before this one is valid (checked above), so its value exists.
      seen = new Set<bigint>();
      for (let j = 0; j < i; j++) seen.add(canonicalMantissa(levels[j]!.priceMantissa, priceExponent)!);
    }
    if (seen !== undefined) {
      if (seen.has(price))
        return fail('BAD_LEVELS', `${side}[${i}].price`, 'the same price twice on one side');
      seen.add(price);
    }
    previous = price;
    if (first === undefined) first = price;
  }
  return first;
}

function validateDepthSnapshot(m: DepthSnapshotStreamEvent): ValidationFailure | undefined {
  if (m.bookUpdateId < 0n) return fail('BAD_UPDATE_ID', 'bookUpdateId', `negative (${m.bookUpdateId})`);
  const block = levelBlockOf(m);
  if (block !== undefined && levelBlockValid(block, m.priceExponent, m.qtyExponent)) return undefined;
  const bid = checkSide('bids', m.bids, m.priceExponent, m.qtyExponent, true);
  if (typeof bid === 'object') return bid;
  const ask = checkSide('asks', m.asks, m.priceExponent, m.qtyExponent, true);
  if (typeof ask === 'object') return ask;
  if (bid !== undefined && ask !== undefined && bid >= ask) {
    return fail('BAD_LEVELS', 'bids[0].price', 'the best bid is not below the best ask (crossed snapshot)');
  }
  return undefined;
}

// The fast path of a depth20 snapshot's levels (src/sbe/decoder.ts keeps them undecoded): the same rules with
// doubles, used only where doubles are exact (exactCanonicalAt: mantissas and canonical values below 2^53, as every
// real price and quantity is). It answers "valid" or "cannot tell"; on the second the exact rules above run on the
// levels and name the failure, so both paths always agree.
/**
 * The side's best (first) canonical price, -1 when empty, or NaN when the fast path cannot tell that its levels are
 * valid and strictly descending (bids) or ascending (asks).
 */
function fastSide(block: LevelBlock, run: LevelRun, descending: boolean, pe: number, qe: number): number {
  let previous = NaN;
  let first = -1;
  for (let i = 0, p = run.first; i < run.count; i++, p += run.stride) {
    const price = exactCanonical(block.bytes, p + block.priceOffset, pe, true);
    if (Number.isNaN(price) || Number.isNaN(exactCanonical(block.bytes, p + block.qtyOffset, qe, false)))
      return NaN;
    if (i === 0) first = price;
    else if (descending ? price >= previous : price <= previous) return NaN;
    previous = price;
  }
  return first;
}

/** Whether the fast path proves every level of a depth20 snapshot valid (false: the exact rules must decide). */
export function levelBlockValid(block: LevelBlock, priceExponent: number, qtyExponent: number): boolean {
  const bid = fastSide(block, block.bids, true, priceExponent, qtyExponent);
  if (Number.isNaN(bid)) return false;
  const ask = fastSide(block, block.asks, false, priceExponent, qtyExponent);
  if (Number.isNaN(ask)) return false;
  return bid < 0 || ask < 0 || bid < ask;
}

function validateDepthDiff(m: DepthDiffStreamEvent): ValidationFailure | undefined {
  if (m.firstBookUpdateId < 0n)
    return fail('BAD_UPDATE_ID', 'firstBookUpdateId', `negative (${m.firstBookUpdateId})`);
  if (m.firstBookUpdateId > m.lastBookUpdateId) {
    return fail(
      'BAD_UPDATE_ID',
      'firstBookUpdateId',
      `U = ${m.firstBookUpdateId} is above u = ${m.lastBookUpdateId}`,
    );
  }
  const bid = checkSide('bids', m.bids, m.priceExponent, m.qtyExponent, false);
  if (typeof bid === 'object') return bid;
  const ask = checkSide('asks', m.asks, m.priceExponent, m.qtyExponent, false);
  if (typeof ask === 'object') return ask;
  return undefined;
}

/** The first rule a decoded event breaks, or undefined when it may be applied. Pure. */
export function validateMessage(message: SbeMessage, clock: ValidationClock): ValidationFailure | undefined {
  const common = checkCommon(message, clock);
  if (common !== undefined) return common;
  switch (message.message) {
    case 'TradesStreamEvent':
      return validateTrades(message, clock);
    case 'BestBidAskStreamEvent':
      return validateBestBidAsk(message);
    case 'DepthSnapshotStreamEvent':
      return validateDepthSnapshot(message);
    case 'DepthDiffStreamEvent':
      return validateDepthDiff(message);
  }
}
