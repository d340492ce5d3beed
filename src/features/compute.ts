import { DEFAULT_MAX_FUTURE_SKEW_MS } from '../events/validate';
import { FEATURE_SCHEMA_VERSION, type FeatureOptions, type FeatureVector, type StateSnapshot } from './types';

// The pure feature functions: one StateSnapshot (every input hash, read in one atomic step) and the time the
// vector is computed for (asOfMs) -> one FeatureVector. No I/O, no clock, no randomness: the sidecar serves the
// result and the offline verifier recomputes it from a replayed event log, and both must agree to the bit.
//
// Parsing: every field is an exact decimal string (prices, quantities), a %.17g double (derived metrics) or an
// integer string (times in us, ids). A missing, empty or malformed field (anything but an optionally signed
// decimal number, finite) reads as 0 and marks its input as missing, which lowers `completeness`. Every division
// is guarded, so every number of the vector is finite.
//
// Times: T = tr:<S>:state event_time_us (the symbol's event time, microseconds), advanced by trades and book
// events alike; P = tr:<S>:state px_time_us (the newest trade time applied). A px:<S> field is the start of a
// 100 ms bucket (us) -> the price of the highest-id trade in it.
//
// Freshness: each input is judged by its own time against asOfMs (the sidecar's clock), never by T alone: book
// events keep T moving during a trade-stream outage, and a single clock error can push T (a maximum) far ahead.
// A time more than maxFutureSkewMs ahead of asOfMs is not data but a clock error: it counts as unknown.

/** Horizons of the returns, seconds. */
export const RETURN_HORIZONS_S = [1, 5, 10] as const;

/** An input older than this (asOfMs minus its own time) counts as missing in `completeness`. */
export const STALE_AFTER_MS = 5000;

/** data_age_ms when no input carries a time at all (completeness is then 0 too). */
export const DATA_AGE_UNKNOWN = -1;

/** The inputs `completeness` counts, in order; each is present (valid) and fresh, or not. */
export const COMPLETENESS_INPUTS = [
  'last_trade_price',
  'best_bid',
  'best_ask',
  'mid_price',
  'book_levels',
  'window_1s',
  'window_5s',
  'price_1s_ago',
  'price_5s_ago',
  'price_10s_ago',
  'event_time',
] as const;
export type CompletenessInput = (typeof COMPLETENESS_INPUTS)[number];

export interface FeatureDefinition {
  readonly name: string;
  readonly formula: string;
  readonly unit: string;
  /** The value when an input is missing. */
  readonly whenMissing: string;
}

/** Every numeric feature, in the served order, with its definition (quoted by docs/features.md). */
export const FEATURE_DEFINITIONS: readonly FeatureDefinition[] = [
  {
    name: 'price',
    formula: 'ob:<S> last_trade_price (the highest-id trade)',
    unit: 'quote currency',
    whenMissing: '0',
  },
  {
    name: 'mid_price',
    formula: 'ob:<S> mid_price = (best_bid + best_ask) / 2',
    unit: 'quote currency',
    whenMissing: '0',
  },
  ...RETURN_HORIZONS_S.map((h) => ({
    name: `ret_${h}s`,
    formula:
      `price / p(T - ${h} s) - 1, p(t) = px:<S> price of the newest 100 ms bucket whose start is <= t ` +
      `(T = tr:<S>:state event_time_us); that bucket may hold trades up to 100 ms after t`,
    unit: 'fraction',
    whenMissing: '0 (no price, no T, or no px bucket at or before T - h)',
  })),
  { name: 'volume_1s', formula: 'tr:<S>:1s volume', unit: 'base currency', whenMissing: '0' },
  { name: 'volume_5s', formula: 'tr:<S>:5s volume', unit: 'base currency', whenMissing: '0' },
  {
    name: 'vol_imbalance_1s',
    formula: 'tr:<S>:1s signed_volume / volume (buy - sell taker volume, over total)',
    unit: 'fraction in [-1, 1]',
    whenMissing: '0 (also when volume = 0)',
  },
  {
    name: 'vol_imbalance_5s',
    formula: 'tr:<S>:5s signed_volume / volume',
    unit: 'fraction in [-1, 1]',
    whenMissing: '0 (also when volume = 0)',
  },
  {
    name: 'spread_bp',
    formula:
      '(best_ask - best_bid) / mid x 10,000, mid = (best_bid + best_ask) / 2: the quoted spread relative to ' +
      'the mid, symmetric in bid and ask (neither side is the reference); negative when the book is crossed',
    unit: 'basis points',
    whenMissing: '0 (no bid, no ask, or mid <= 0)',
  },
  {
    name: 'ob_imbalance',
    formula: 'ob:<S> ob_imbalance = (sum top-N bid qty - sum top-N ask qty) / (sum of both)',
    unit: 'fraction in [-1, 1]',
    whenMissing: '0',
  },
  {
    name: 'bid_strength',
    formula: 'ob:<S> bid_strength = sum over i = 1..N of bid_q_i / i',
    unit: 'base currency',
    whenMissing: '0',
  },
  {
    name: 'ask_strength',
    formula: 'ob:<S> ask_strength = sum over i = 1..N of ask_q_i / i',
    unit: 'base currency',
    whenMissing: '0',
  },
  {
    name: 'trade_intensity_1s',
    formula: 'tr:<S>:1s trade_intensity = count / 1 s',
    unit: 'trades per second',
    whenMissing: '0',
  },
  {
    name: 'avg_trade_size_1s',
    formula: 'tr:<S>:1s avg_trade_size = volume / count',
    unit: 'base currency',
    whenMissing: '0',
  },
  {
    name: 'dollar_volume_1s',
    formula: 'tr:<S>:1s notional = sum of price x qty',
    unit: 'quote currency',
    whenMissing: '0',
  },
  {
    name: 'vwap_dev_1s',
    formula: 'tr:<S>:1s vwap_minus_mid = vwap - mid_price (the mid when the window was last computed)',
    unit: 'quote currency',
    whenMissing: '0',
  },
  {
    name: 'vwap_dev_5s',
    formula: 'tr:<S>:5s vwap_minus_mid',
    unit: 'quote currency',
    whenMissing: '0',
  },
  {
    name: 'price_volatility',
    formula: 'tr:<S>:1s price_std (population std of trade prices, unweighted)',
    unit: 'quote currency',
    whenMissing: '0',
  },
  {
    name: 'momentum',
    formula: 'tr:<S>:5s price_momentum = (last - first) / first',
    unit: 'fraction',
    whenMissing: '0',
  },
  {
    name: 'feature_ts',
    formula: 'asOfMs: the time the vector is computed for',
    unit: 'ms since the epoch',
    whenMissing: 'never missing',
  },
  {
    name: 'data_age_ms',
    formula:
      'max(0, feature_ts - newest / 1000), newest = the newest known time among ob:<S> ts_us, ' +
      'tr:<S>:1s last_ts_us, tr:<S>:state event_time_us and px_time_us; known = well-formed and at most ' +
      `processing.max_future_skew_ms (default ${DEFAULT_MAX_FUTURE_SKEW_MS} ms) ahead of feature_ts (a time ` +
      'further ahead is a clock error)',
    unit: 'ms',
    whenMissing: `${DATA_AGE_UNKNOWN} when none of these times is known`,
  },
  {
    name: 'completeness',
    formula:
      `fraction of the ${COMPLETENESS_INPUTS.length} inputs present, well-formed and fresh: ` +
      `${COMPLETENESS_INPUTS.join(', ')}; fresh = the input's own time is known (as for data_age_ms) and ` +
      `feature_ts - time <= ${STALE_AFTER_MS} ms (each input's time: "Freshness in completeness")`,
    unit: 'fraction in [0, 1]',
    whenMissing: '0 when no input is present and fresh',
  },
  {
    name: 'schema_version',
    formula: 'FEATURE_SCHEMA_VERSION',
    unit: 'integer',
    whenMissing: 'never missing',
  },
];

/** The numeric features in served order (FEATURE_DEFINITIONS' names). */
export const FEATURE_NAMES: readonly string[] = FEATURE_DEFINITIONS.map((d) => d.name);

/** Input watermarks (decimal strings, "" when unknown): the exact state the vector was computed from. */
export const WATERMARK_FIELDS = [
  'src_event_time_us',
  'src_last_trade_id',
  'src_book_update_id',
  'src_bba_update_id',
  'src_depth20_update_id',
  'src_diff_update_id',
] as const;

const DECIMAL = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;
const UNSIGNED_INTEGER = /^\d+$/;

/** A finite number from a decimal string, or undefined for a missing, empty or malformed one. */
export function parseNumber(raw: string | undefined): number | undefined {
  if (raw === undefined || !DECIMAL.test(raw)) return undefined;
  const value = Number(raw);
  return Number.isFinite(value) ? value : undefined;
}

function parsePositive(raw: string | undefined): number | undefined {
  const value = parseNumber(raw);
  return value !== undefined && value > 0 ? value : undefined;
}

/** A time in us (non-negative integer string below 2^53), or undefined. */
function parseTimeUs(raw: string | undefined): number | undefined {
  if (raw === undefined || !UNSIGNED_INTEGER.test(raw)) return undefined;
  const value = Number(raw);
  return Number.isSafeInteger(value) ? value : undefined;
}

function parseId(raw: string | undefined): bigint | undefined {
  return raw !== undefined && UNSIGNED_INTEGER.test(raw) ? BigInt(raw) : undefined;
}

/** The price at or before `atUs`: the newest px bucket whose start is <= atUs (undefined if none is valid). */
export function priceAtOrBefore(history: Readonly<Record<string, string>>, atUs: number): number | undefined {
  let bestStart = -1;
  let best: number | undefined;
  for (const [field, value] of Object.entries(history)) {
    const start = parseTimeUs(field);
    if (start === undefined || start > atUs || start <= bestStart) continue;
    const price = parsePositive(value);
    if (price === undefined) continue;
    bestStart = start;
    best = price;
  }
  return best;
}

/** Reads the fields of one hash; `ok` stays true only while every field read is well-formed. */
class FieldReader {
  ok = true;
  constructor(private readonly hash: Readonly<Record<string, string>>) {}

  num(field: string): number {
    const value = parseNumber(this.hash[field]);
    if (value === undefined) {
      this.ok = false;
      return 0;
    }
    return value;
  }
}

function ratio(numerator: number, denominator: number): number {
  if (denominator === 0) return 0;
  const value = numerator / denominator;
  return Number.isFinite(value) ? value : 0;
}

function finite(value: number): number {
  return Number.isFinite(value) ? value : 0;
}

/** Maximum of the ids present, as a decimal string ("" when none). */
function maxId(...raws: Array<string | undefined>): string {
  let best: bigint | undefined;
  for (const raw of raws) {
    const id = parseId(raw);
    if (id !== undefined && (best === undefined || id > best)) best = id;
  }
  return best === undefined ? '' : best.toString();
}

/**
 * The feature vector of one snapshot as of `asOfMs` (ms since the epoch). Pure and deterministic; every number
 * finite. Keys: FEATURE_NAMES in order, then the watermarks (WATERMARK_FIELDS).
 */
export function computeFeatures(
  snapshot: StateSnapshot,
  asOfMs: number,
  options: FeatureOptions = {},
): FeatureVector {
  const maxFutureSkewMs = options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
  if (!(maxFutureSkewMs >= 0)) throw new RangeError(`maxFutureSkewMs must be >= 0, got ${maxFutureSkewMs}`);
  const ob = snapshot.orderBook;
  const tradeState = snapshot.tradeState;
  const present = new Set<CompletenessInput>();
  /** A well-formed time not beyond the skew ahead of asOfMs, else undefined (a clock error is no time). */
  const known = (raw: string | undefined): number | undefined => {
    const timeUs = parseTimeUs(raw);
    return timeUs !== undefined && timeUs / 1000 <= asOfMs + maxFutureSkewMs ? timeUs : undefined;
  };
  const fresh = (timeUs: number | undefined): boolean =>
    timeUs !== undefined && asOfMs - timeUs / 1000 <= STALE_AFTER_MS;

  const obTsUs = known(ob.ts_us);
  // T as stored drives the windows, the returns and the watermark; T known is whether they can be trusted.
  const eventTimeUs = parseTimeUs(tradeState.event_time_us);
  const eventTimeKnownUs = known(tradeState.event_time_us);
  if (fresh(eventTimeKnownUs)) present.add('event_time');
  const lastTradeUs = known(ob.last_trade_ts_us);
  // P: the newest trade applied (older states lack px_time_us: the last trade's time then). Only trades move it,
  // so a trade-stream outage shows here while book events keep T fresh.
  const pxTimeRaw = tradeState.px_time_us;
  const pxTimeUs = known(pxTimeRaw);
  const newestTradeUs = pxTimeRaw === undefined || pxTimeRaw === '' ? lastTradeUs : pxTimeUs;
  // The windows and past prices are taken relative to T: fresh trades and a trustworthy T.
  const tradeDerivedFresh = fresh(newestTradeUs) && eventTimeKnownUs !== undefined;

  const price = parsePositive(ob.last_trade_price);
  if (price !== undefined && fresh(lastTradeUs)) present.add('last_trade_price');
  const bid = parsePositive(ob.best_bid);
  const ask = parsePositive(ob.best_ask);
  const mid = parsePositive(ob.mid_price);
  const bookFresh = fresh(obTsUs);
  if (bid !== undefined && bookFresh) present.add('best_bid');
  if (ask !== undefined && bookFresh) present.add('best_ask');
  if (mid !== undefined && bookFresh) present.add('mid_price');

  const levels = new FieldReader(ob);
  const obImbalance = levels.num('ob_imbalance');
  const bidStrength = levels.num('bid_strength');
  const askStrength = levels.num('ask_strength');
  const levelsValid =
    levels.ok && parsePositive(ob.bid1_p) !== undefined && parsePositive(ob.ask1_p) !== undefined;
  if (levelsValid && fresh(known(ob.book_ts_us))) present.add('book_levels');

  const w1 = new FieldReader(snapshot.trades1s);
  const volume1 = w1.num('volume');
  const signed1 = w1.num('signed_volume');
  const intensity1 = w1.num('trade_intensity');
  const avgSize1 = w1.num('avg_trade_size');
  const notional1 = w1.num('notional');
  const vwapDev1 = w1.num('vwap_minus_mid');
  const std1 = w1.num('price_std');
  if (w1.ok && tradeDerivedFresh) present.add('window_1s');

  const w5 = new FieldReader(snapshot.trades5s);
  const volume5 = w5.num('volume');
  const signed5 = w5.num('signed_volume');
  const vwapDev5 = w5.num('vwap_minus_mid');
  const momentum = w5.num('price_momentum');
  if (w5.ok && tradeDerivedFresh) present.add('window_5s');

  const returns: Record<string, number> = {};
  for (const h of RETURN_HORIZONS_S) {
    const then =
      eventTimeUs === undefined ? undefined : priceAtOrBefore(snapshot.priceHistory, eventTimeUs - h * 1e6);
    if (then !== undefined && tradeDerivedFresh) present.add(`price_${h}s_ago` as CompletenessInput);
    returns[`ret_${h}s`] = price !== undefined && then !== undefined ? finite(price / then - 1) : 0;
  }

  const spreadBp =
    bid !== undefined && ask !== undefined ? finite(ratio(ask - bid, (bid + ask) / 2) * 10_000) : 0;

  const times = [obTsUs, known(snapshot.trades1s.last_ts_us), eventTimeKnownUs, pxTimeUs].filter(
    (t): t is number => t !== undefined && t > 0,
  );
  const newestUs = times.length > 0 ? Math.max(...times) : undefined;
  const dataAgeMs = newestUs === undefined ? DATA_AGE_UNKNOWN : Math.max(0, finite(asOfMs - newestUs / 1000));

  const values: Record<string, number> = {
    price: price ?? 0,
    mid_price: mid ?? 0,
    ...returns,
    volume_1s: volume1,
    volume_5s: volume5,
    vol_imbalance_1s: ratio(signed1, volume1),
    vol_imbalance_5s: ratio(signed5, volume5),
    spread_bp: spreadBp,
    ob_imbalance: obImbalance,
    bid_strength: bidStrength,
    ask_strength: askStrength,
    trade_intensity_1s: intensity1,
    avg_trade_size_1s: avgSize1,
    dollar_volume_1s: notional1,
    vwap_dev_1s: vwapDev1,
    vwap_dev_5s: vwapDev5,
    price_volatility: std1,
    momentum,
    feature_ts: finite(asOfMs),
    data_age_ms: dataAgeMs,
    completeness: present.size / COMPLETENESS_INPUTS.length,
    schema_version: FEATURE_SCHEMA_VERSION,
  };
  const vector: Record<string, number | string> = {};
  for (const name of FEATURE_NAMES) vector[name] = values[name] ?? 0;
  vector.src_event_time_us = eventTimeUs === undefined ? '' : String(eventTimeUs);
  vector.src_last_trade_id = maxId(snapshot.tradeState.last_trade_id);
  vector.src_book_update_id = maxId(
    ob.best_update_id,
    ob.book_update_id,
    ob.bba_update_id,
    ob.depth20_update_id,
    snapshot.bookState.book_update_id,
  );
  // Per input stream, the newest event applied (each stream's ids increase in stream order), so a replay of the
  // event log can reach exactly this state: bestBidAsk, depth20 snapshots, depth diffs (applied or buffered).
  vector.src_bba_update_id = maxId(ob.bba_update_id);
  vector.src_depth20_update_id = maxId(ob.depth20_update_id);
  vector.src_diff_update_id = maxId(snapshot.bookState.last_seen_u, snapshot.bookState.book_update_id);
  return vector;
}

/** FEATURE_DEFINITIONS as a markdown table (docs/features.md). */
export function featureDefinitionsMarkdown(): string {
  const escape = (s: string): string => s.replace(/\|/g, '\\|');
  const rows = FEATURE_DEFINITIONS.map(
    (d) => `| \`${d.name}\` | ${escape(d.formula)} | ${escape(d.unit)} | ${escape(d.whenMissing)} |`,
  );
  return ['| feature | definition | unit | when inputs are missing |', '|---|---|---|---|', ...rows].join(
    '\n',
  );
}
