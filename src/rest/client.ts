import { AggregatorError, isRetryable } from '../common/errors';
import { backoff, retry } from '../common/retry';
import { DecimalParseError, parseDecimal } from '../sbe/decimal';
import type { PriceLevel, TradeEntry, TradesStreamEvent } from '../sbe/messages';
import type { RestDepthSnapshot } from '../state/book';

// A REST client for the two Binance spot market-data endpoints used to (re)build state:
//   GET /api/v3/depth?symbol=&limit=    -> RestDepthSnapshot (exact mantissas at the configured exponents)
//   GET /api/v3/trades?symbol=&limit=   -> TradesStreamEvent[] (microsecond times, like the SBE streams)
// Every attempt has a deadline; failures that can pass (timeouts, network errors, 5xx, 429) are retried a bounded
// number of times with exponential backoff and jitter; 429/418 Retry-After is honoured up to a maximum wait and
// remembered as a ban (every request fails fast with RestBannedError until it ends, shared with the fleet through a
// RestGate when one is given); the exchange's request-weight budget is enforced here, before sending, over a
// sliding one-minute window (shared through the gate too). Every
// response is validated strictly: anything malformed or inconsistent is a RestValidationError naming the field.
// Nothing is ambient: fetch, sleep, the clock and the jitter source are injected.

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** The exchange answered with a non-2xx status. `retryAfterMs` is the parsed Retry-After header, if any. */
export class RestHttpError extends AggregatorError {
  constructor(
    readonly status: number,
    readonly bodyExcerpt: string,
    readonly retryAfterMs: number | undefined,
    readonly path: string,
    detail = '',
  ) {
    super(
      `GET ${path}: HTTP ${status}${retryAfterMs !== undefined ? ` (Retry-After ${retryAfterMs / 1000} s)` : ''}` +
        `${detail !== '' ? `, ${detail}` : ''}: ${bodyExcerpt}`,
      // 5xx and 429 can pass; 418 (an IP ban) and other 4xx cannot.
      { code: 'REST_HTTP', retryable: status >= 500 || status === 429, context: { path, status } },
    );
    this.name = 'RestHttpError';
  }
}

/** No complete response within the per-request deadline. */
export class RestTimeoutError extends AggregatorError {
  constructor(
    readonly path: string,
    readonly timeoutMs: number,
  ) {
    super(`GET ${path}: no complete response within ${timeoutMs} ms`, {
      code: 'REST_TIMEOUT',
      retryable: true,
      context: { path },
    });
    this.name = 'RestTimeoutError';
  }
}

/** The connection failed before any response (refused, reset, DNS). */
export class RestNetworkError extends AggregatorError {
  constructor(
    readonly path: string,
    override readonly cause: unknown,
  ) {
    super(`GET ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      code: 'REST_NETWORK',
      retryable: true,
      context: { path },
      cause,
    });
    this.name = 'RestNetworkError';
  }
}

/** A response that is malformed or inconsistent. `field` is e.g. 'body', 'lastUpdateId', 'bids[3].price', 'book'. */
export class RestValidationError extends AggregatorError {
  constructor(
    readonly path: string,
    readonly field: string,
    readonly problem: string,
  ) {
    // Not retryable here: the caller decides whether to fetch again.
    super(`GET ${path}: invalid response, ${field}: ${problem}`, {
      code: 'REST_VALIDATION',
      context: { path, field },
    });
    this.name = 'RestValidationError';
  }
}

/** The request-weight budget cannot take this request (fail-fast mode, or the wait would exceed the maximum). */
export class RestBudgetError extends AggregatorError {
  constructor(
    readonly weight: number,
    /** Weight used in the last minute; undefined for the fleet's budget (a RestGate: it tells only the wait). */
    readonly used: number | undefined,
    readonly limit: number,
    readonly waitMs: number,
  ) {
    super(
      `request weight ${weight} does not fit the budget: ` +
        (used === undefined
          ? `the fleet's ${limit} per minute are spent`
          : `${used}/${limit} used in the last minute`) +
        (Number.isFinite(waitMs) ? `, room in ${waitMs} ms` : ', never fits'),
      { code: 'REST_BUDGET', context: { weight, limit, waitMs } },
    );
    this.name = 'RestBudgetError';
  }
}

/**
 * The exchange told this client, or another one sharing its RestGate, to stop until `untilMs` (a 429 or 418 with
 * Retry-After): nothing was sent. Binance answers requests during a ban with longer bans (418, 2 minutes to 3 days,
 * per IP), so every request fails fast here until then.
 */
export class RestBannedError extends AggregatorError {
  constructor(
    readonly path: string,
    readonly untilMs: number,
    readonly status: number | undefined,
  ) {
    super(
      `GET ${path}: not sent, the exchange asked to wait until ${new Date(untilMs).toISOString()}` +
        (status === undefined ? '' : ` (HTTP ${status})`),
      { code: 'REST_BANNED', context: { path, untilMs, status } },
    );
    this.name = 'RestBannedError';
  }
}

/** The ban a 418 without Retry-After sets: Binance's shortest IP ban. */
export const DEFAULT_BAN_MS = 120_000;

/** A ban of the exchange's REST calls: until when (ms since the epoch), and the HTTP status that set it. */
export interface RestBan {
  readonly untilMs: number;
  readonly status: number | undefined;
}

/**
 * How long an error bans the REST calls: a 429 or 418 with Retry-After for that long, a 418 without one for
 * DEFAULT_BAN_MS; undefined for any other error. The one rule of the client and the re-anchorer.
 */
export function banDuration(err: unknown): number | undefined {
  if (!(err instanceof RestHttpError) || (err.status !== 429 && err.status !== 418)) return undefined;
  return err.retryAfterMs ?? (err.status === 418 ? DEFAULT_BAN_MS : undefined);
}

/**
 * Admission shared with the other clients of the fleet (one IP's limits), e.g. through Redis
 * (src/reanchor/rest-gate.ts). A client without one keeps both in its own memory.
 */
export interface RestGate {
  /** The end of the current ban (ms since the epoch), if any. */
  bannedUntil(): Promise<RestBan | undefined>;
  /** Records a ban until `untilMs` for every client (a later end replaces an earlier one, never the reverse). */
  ban(untilMs: number, status: number): Promise<void>;
  /** Charges `weight` when it fits `limit` per sliding minute: 0; else the ms until it may fit (Infinity: never). */
  reserve(weight: number, limit: number): Promise<number>;
}

// ---------------------------------------------------------------------------------------------------------------
// Options

/** The subset of the WHATWG fetch Response the client reads (global fetch satisfies it). */
export interface FetchResponseLike {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}

export type FetchLike = (
  url: string,
  init: { method: 'GET'; headers: Record<string, string>; signal: AbortSignal },
) => Promise<FetchResponseLike>;

export interface RestClientOptions {
  /** e.g. https://data-api.binance.vision or http://127.0.0.1:PORT (no trailing path). */
  readonly baseUrl: string;
  /** Exponent of the price mantissas produced (default -8); a price needing more digits is rejected. */
  readonly priceExponent?: number;
  /** Exponent of the quantity mantissas produced (default -8). */
  readonly qtyExponent?: number;
  /** Deadline of one attempt, headers and body (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Retries after the first attempt (default 3). */
  readonly maxRetries?: number;
  /** Backoff before retry n (0-based): min(max, base x 2^n), jittered to [50 %, 100 %] (defaults 200, 5000 ms). */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** A Retry-After longer than this is not waited for: the RestHttpError is thrown (default 10000 ms). */
  readonly maxRetryAfterMs?: number;
  /** Request weight per sliding minute (default 6000, Binance's per-IP limit). */
  readonly weightPerMinute?: number;
  /** When a request does not fit the budget: wait for room (default) or throw RestBudgetError at once. */
  readonly onBudgetExhausted?: 'wait' | 'fail';
  /** In 'wait' mode, a wait longer than this throws RestBudgetError instead (default 60000 ms). */
  readonly maxBudgetWaitMs?: number;
  /** Bans and the weight budget shared with other clients (default: this client's own memory). */
  readonly gate?: RestGate;
  readonly fetch?: FetchLike;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Wall clock, milliseconds since the epoch (default Date.now); also gives snapshot timeUs. */
  readonly now?: () => number;
  /** Uniform in [0, 1), for the backoff jitter (default Math.random). */
  readonly rng?: () => number;
}

export const WEIGHT_WINDOW_MS = 60_000;
export const TRADES_WEIGHT = 25;
export const MAX_DEPTH_LIMIT = 5000;
export const MAX_TRADES_LIMIT = 1000;
/** A REST time below this is not microseconds (1e14 us is 1973; a millisecond time today is ~1.7e12). */
const MIN_TIME_US = 100_000_000_000_000;
const BODY_EXCERPT_CHARS = 200;
const SYMBOL = /^[A-Z0-9_.-]{1,20}$/;

/** Binance's weight of GET /api/v3/depth by limit. */
export function depthWeight(limit: number): number {
  if (limit <= 100) return 5;
  if (limit <= 500) return 25;
  if (limit <= 1000) return 50;
  return 250;
}

function checkLimit(name: string, limit: number, max: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new RangeError(`${name} limit must be an integer in 1..${max}, got ${limit}`);
  }
}

function checkSymbol(symbol: string): void {
  if (!SYMBOL.test(symbol)) throw new RangeError(`invalid symbol ${JSON.stringify(symbol)}`);
}

/** Retry-After in seconds (delta-seconds only) to ms; undefined when absent or not a non-negative number. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (!/^\d+(\.\d+)?$/.test(text)) return undefined;
  return Math.round(Number(text) * 1000);
}

// ---------------------------------------------------------------------------------------------------------------
// The weight budget: a sliding window of (time, weight) charges.

export class WeightBudget {
  private readonly charges: { at: number; weight: number }[] = [];

  constructor(
    readonly limit: number,
    private readonly now: () => number,
  ) {
    if (!(Number.isInteger(limit) && limit > 0))
      throw new RangeError(`weightPerMinute must be a positive integer, got ${limit}`);
  }

  /** Weight charged in the last minute. */
  used(): number {
    this.expire();
    let sum = 0;
    for (const c of this.charges) sum += c.weight;
    return sum;
  }

  /** Milliseconds until `weight` fits (0: it fits now; Infinity: never). */
  waitFor(weight: number): number {
    if (weight > this.limit) return Infinity;
    let used = this.used();
    if (used + weight <= this.limit) return 0;
    const t = this.now();
    for (const c of this.charges) {
      used -= c.weight;
      if (used + weight <= this.limit) return Math.max(1, c.at + WEIGHT_WINDOW_MS - t);
    }
    return Infinity; // unreachable: weight <= limit
  }

  charge(weight: number): void {
    this.charges.push({ at: this.now(), weight });
  }

  private expire(): void {
    const cutoff = this.now() - WEIGHT_WINDOW_MS;
    let n = 0;
    while (n < this.charges.length && (this.charges[n] as { at: number }).at <= cutoff) n++;
    if (n > 0) this.charges.splice(0, n);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Validation (pure): raw JSON text -> typed values, or RestValidationError.

function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new RestValidationError(path, 'body', `not JSON (${(err as Error).message}): ${excerpt(text)}`);
  }
}

function excerpt(text: string): string {
  return text.length > BODY_EXCERPT_CHARS ? `${text.slice(0, BODY_EXCERPT_CHARS)}...` : text;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function safeId(path: string, field: string, v: unknown): bigint {
  if (v === undefined) throw new RestValidationError(path, field, 'missing');
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new RestValidationError(path, field, `not an integer: ${JSON.stringify(v)}`);
  if (v < 0) throw new RestValidationError(path, field, `negative: ${v}`);
  if (!Number.isSafeInteger(v))
    throw new RestValidationError(path, field, `${v} exceeds 2^53: it cannot be read exactly`);
  return BigInt(v);
}

function positiveDecimal(path: string, field: string, v: unknown, exponent: number): bigint {
  if (typeof v !== 'string')
    throw new RestValidationError(path, field, `not a decimal string: ${JSON.stringify(v)}`);
  let m: bigint;
  try {
    m = parseDecimal(v, exponent);
  } catch (err) {
    if (err instanceof DecimalParseError)
      throw new RestValidationError(path, field, `${JSON.stringify(v)}: ${err.reason}`);
    throw err;
  }
  if (m < 0n) throw new RestValidationError(path, field, `negative: ${v}`);
  if (m === 0n) throw new RestValidationError(path, field, `zero: ${v}`);
  return m;
}

function parseLevels(
  path: string,
  side: 'bids' | 'asks',
  v: unknown,
  limit: number,
  priceExponent: number,
  qtyExponent: number,
): PriceLevel[] {
  if (v === undefined) throw new RestValidationError(path, side, 'missing');
  if (!Array.isArray(v)) throw new RestValidationError(path, side, 'not an array');
  if (v.length > limit)
    throw new RestValidationError(path, side, `${v.length} levels, more than the ${limit} asked for`);
  const out: PriceLevel[] = [];
  for (let i = 0; i < v.length; i++) {
    const level: unknown = v[i];
    if (!Array.isArray(level) || level.length !== 2)
      throw new RestValidationError(path, `${side}[${i}]`, 'not a [price, qty] pair');
    const priceMantissa = positiveDecimal(path, `${side}[${i}].price`, level[0], priceExponent);
    const qtyMantissa = positiveDecimal(path, `${side}[${i}].qty`, level[1], qtyExponent);
    const prev = out[i - 1];
    if (prev !== undefined) {
      if (prev.priceMantissa === priceMantissa)
        throw new RestValidationError(path, `${side}[${i}].price`, `duplicated price ${String(level[0])}`);
      const ordered =
        side === 'bids' ? priceMantissa < prev.priceMantissa : priceMantissa > prev.priceMantissa;
      if (!ordered) {
        throw new RestValidationError(
          path,
          `${side}[${i}].price`,
          `${String(level[0])} after ${String((v[i - 1] as unknown[])[0])}: ${side} not strictly ${side === 'bids' ? 'descending' : 'ascending'}`,
        );
      }
    }
    out.push({ priceMantissa, qtyMantissa });
  }
  return out;
}

/** Parses and validates a /api/v3/depth body. */
export function parseDepthBody(
  path: string,
  text: string,
  limit: number,
  priceExponent: number,
  qtyExponent: number,
  timeUs: bigint,
): RestDepthSnapshot {
  const body = parseJson(path, text);
  if (!isRecord(body)) throw new RestValidationError(path, 'body', 'not a JSON object');
  const lastUpdateId = safeId(path, 'lastUpdateId', body.lastUpdateId);
  const bids = parseLevels(path, 'bids', body.bids, limit, priceExponent, qtyExponent);
  const asks = parseLevels(path, 'asks', body.asks, limit, priceExponent, qtyExponent);
  const bestBid = bids[0];
  const bestAsk = asks[0];
  if (bestBid !== undefined && bestAsk !== undefined && bestBid.priceMantissa >= bestAsk.priceMantissa) {
    throw new RestValidationError(
      path,
      'book',
      `crossed: best bid ${String((body.bids as unknown[][])[0]?.[0])} >= best ask ${String((body.asks as unknown[][])[0]?.[0])}`,
    );
  }
  return { lastUpdateId, priceExponent, qtyExponent, bids, asks, timeUs };
}

/** One trade of /api/v3/trades, validated. */
export interface RestTrade extends TradeEntry {
  readonly timeUs: bigint;
}

/** Parses and validates a /api/v3/trades body (times must be microseconds). */
export function parseTradesBody(
  path: string,
  text: string,
  limit: number,
  priceExponent: number,
  qtyExponent: number,
): RestTrade[] {
  const body = parseJson(path, text);
  if (!Array.isArray(body)) throw new RestValidationError(path, 'body', 'not a JSON array');
  if (body.length > limit)
    throw new RestValidationError(path, 'body', `${body.length} trades, more than the ${limit} asked for`);
  const out: RestTrade[] = [];
  for (let i = 0; i < body.length; i++) {
    const t: unknown = body[i];
    const f = `trades[${i}]`;
    if (!isRecord(t)) throw new RestValidationError(path, f, 'not an object');
    const id = safeId(path, `${f}.id`, t.id);
    const priceMantissa = positiveDecimal(path, `${f}.price`, t.price, priceExponent);
    const qtyMantissa = positiveDecimal(path, `${f}.qty`, t.qty, qtyExponent);
    if (t.quoteQty !== undefined && (typeof t.quoteQty !== 'string' || !/^\d+(\.\d+)?$/.test(t.quoteQty)))
      throw new RestValidationError(
        path,
        `${f}.quoteQty`,
        `not a non-negative decimal: ${JSON.stringify(t.quoteQty)}`,
      );
    const timeUs = safeId(path, `${f}.time`, t.time);
    if (timeUs < BigInt(MIN_TIME_US)) {
      throw new RestValidationError(
        path,
        `${f}.time`,
        `${timeUs} is not in microseconds (X-MBX-TIME-UNIT: MICROSECOND ignored?)`,
      );
    }
    if (typeof t.isBuyerMaker !== 'boolean')
      throw new RestValidationError(
        path,
        `${f}.isBuyerMaker`,
        `not a boolean: ${JSON.stringify(t.isBuyerMaker)}`,
      );
    if (t.isBestMatch !== undefined && typeof t.isBestMatch !== 'boolean')
      throw new RestValidationError(
        path,
        `${f}.isBestMatch`,
        `not a boolean: ${JSON.stringify(t.isBestMatch)}`,
      );
    const prev = out[i - 1];
    if (prev !== undefined) {
      if (id <= prev.id)
        throw new RestValidationError(path, `${f}.id`, `${id} after ${prev.id}: ids not strictly increasing`);
      // A symbol's trade ids are consecutive: a hole is a trade the re-anchor would mark as applied (its id is below
      // the new last_trade_id) without ever counting it, when the stream delivers it later.
      if (id !== prev.id + 1n)
        throw new RestValidationError(
          path,
          `${f}.id`,
          `${id} after ${prev.id}: ids not consecutive (${id - prev.id - 1n} trade(s) missing)`,
        );
      if (timeUs < prev.timeUs)
        throw new RestValidationError(
          path,
          `${f}.time`,
          `${timeUs} before ${prev.timeUs}: time goes backwards`,
        );
    }
    out.push({ id, priceMantissa, qtyMantissa, isBuyerMaker: t.isBuyerMaker, isBestMatch: true, timeUs });
  }
  return out;
}

/**
 * Groups trades like the SBE trade stream: consecutive trades with the same time and the same aggressor side (one
 * taker order) form one TradesStreamEvent, eventTime = transactTime = that time.
 */
export function groupTrades(
  symbol: string,
  trades: readonly RestTrade[],
  priceExponent: number,
  qtyExponent: number,
): TradesStreamEvent[] {
  const out: TradesStreamEvent[] = [];
  let group: TradeEntry[] = [];
  let groupTime = 0n;
  let groupMaker = false;
  const flush = (): void => {
    if (group.length === 0) return;
    out.push({
      message: 'TradesStreamEvent',
      eventTime: groupTime,
      transactTime: groupTime,
      priceExponent,
      qtyExponent,
      trades: group,
      symbol,
    });
    group = [];
  };
  for (const t of trades) {
    if (group.length > 0 && (t.timeUs !== groupTime || t.isBuyerMaker !== groupMaker)) flush();
    groupTime = t.timeUs;
    groupMaker = t.isBuyerMaker;
    group.push({
      id: t.id,
      priceMantissa: t.priceMantissa,
      qtyMantissa: t.qtyMantissa,
      isBuyerMaker: t.isBuyerMaker,
      isBestMatch: true,
    });
  }
  flush();
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The client

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class RestClient {
  readonly priceExponent: number;
  readonly qtyExponent: number;
  readonly budget: WeightBudget;
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly onBudgetExhausted: 'wait' | 'fail';
  private readonly maxBudgetWaitMs: number;
  private readonly fetchFn: FetchLike;
  private readonly gate: RestGate | undefined;
  /** This client's own memory of a ban (also kept with a gate: a Redis outage must not forget it). */
  private ban: RestBan | undefined;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly rng: () => number;

  constructor(opts: RestClientOptions) {
    if (!/^https?:\/\/[^/]+$/.test(opts.baseUrl.replace(/\/$/, '')))
      throw new RangeError(`baseUrl must be http(s)://host[:port], got ${JSON.stringify(opts.baseUrl)}`);
    this.baseUrl = opts.baseUrl.replace(/\/$/, '');
    this.priceExponent = opts.priceExponent ?? -8;
    this.qtyExponent = opts.qtyExponent ?? -8;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.maxRetries = opts.maxRetries ?? 3;
    this.backoffBaseMs = opts.backoffBaseMs ?? 200;
    this.backoffMaxMs = opts.backoffMaxMs ?? 5000;
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? 10_000;
    this.onBudgetExhausted = opts.onBudgetExhausted ?? 'wait';
    this.maxBudgetWaitMs = opts.maxBudgetWaitMs ?? 60_000;
    for (const [name, v] of [
      ['priceExponent', this.priceExponent],
      ['qtyExponent', this.qtyExponent],
    ] as const) {
      if (!Number.isInteger(v) || v < -18 || v > 0) throw new RangeError(`${name} must be -18..0, got ${v}`);
    }
    for (const [name, v] of [
      ['timeoutMs', this.timeoutMs],
      ['maxRetries', this.maxRetries],
      ['backoffBaseMs', this.backoffBaseMs],
      ['backoffMaxMs', this.backoffMaxMs],
      ['maxRetryAfterMs', this.maxRetryAfterMs],
      ['maxBudgetWaitMs', this.maxBudgetWaitMs],
    ] as const) {
      if (!Number.isFinite(v) || v < 0)
        throw new RangeError(`${name} must be a finite number >= 0, got ${v}`);
    }
    this.fetchFn = opts.fetch ?? ((url, init) => fetch(url, init));
    this.gate = opts.gate;
    this.sleep = opts.sleep ?? defaultSleep;
    this.now = opts.now ?? Date.now;
    this.rng = opts.rng ?? Math.random;
    this.budget = new WeightBudget(opts.weightPerMinute ?? 6000, this.now);
  }

  /** The order book now, `limit` levels per side (1..5000), prices and quantities exact at the exponents. */
  async getDepth(symbol: string, limit: number): Promise<RestDepthSnapshot> {
    checkSymbol(symbol);
    checkLimit('depth', limit, MAX_DEPTH_LIMIT);
    const path = `/api/v3/depth?symbol=${symbol}&limit=${limit}`;
    return this.request(path, depthWeight(limit), (text) =>
      parseDepthBody(
        path,
        text,
        limit,
        this.priceExponent,
        this.qtyExponent,
        BigInt(Math.floor(this.now() * 1000)),
      ),
    );
  }

  /** The `limit` (1..1000) most recent trades, oldest first, grouped into TradesStreamEvents (times in us). */
  async getTrades(symbol: string, limit: number): Promise<TradesStreamEvent[]> {
    checkSymbol(symbol);
    checkLimit('trades', limit, MAX_TRADES_LIMIT);
    const path = `/api/v3/trades?symbol=${symbol}&limit=${limit}`;
    return this.request(path, TRADES_WEIGHT, (text) =>
      groupTrades(
        symbol,
        parseTradesBody(path, text, limit, this.priceExponent, this.qtyExponent),
        this.priceExponent,
        this.qtyExponent,
      ),
    );
  }

  /** Backoff before retry `n` (0-based): min(max, base x 2^n) scaled by a jitter in [0.5, 1). */
  backoffMs(n: number): number {
    return backoff(n + 1, { baseDelayMs: this.backoffBaseMs, maxDelayMs: this.backoffMaxMs }, this.rng);
  }

  /** The ban in force now, from this client's memory or the gate, if any. */
  async bannedUntil(): Promise<RestBan | undefined> {
    const shared = await this.gate?.bannedUntil();
    const ban =
      shared !== undefined && (this.ban === undefined || shared.untilMs > this.ban.untilMs)
        ? shared
        : this.ban;
    return ban !== undefined && ban.untilMs > this.now() ? ban : undefined;
  }

  /**
   * One request under the retry policy (src/common/retry.ts): every attempt first checks the ban and reserves its
   * weight (a ban or a budget that does not fit ends the request, unretried); a timeout, a network error, a 5xx or a
   * 429 is retried up to maxRetries times after the backoff, or after Retry-After when the exchange sent one.
   */
  private request<T>(path: string, weight: number, parse: (text: string) => T): Promise<T> {
    return retry(
      async () => {
        const ban = await this.bannedUntil();
        if (ban !== undefined) throw new RestBannedError(path, ban.untilMs, ban.status);
        await this.reserve(weight);
        return parse(await this.attempt(path));
      },
      {
        baseDelayMs: this.backoffBaseMs,
        maxDelayMs: this.backoffMaxMs,
        retries: this.maxRetries,
        sleep: this.sleep,
        random: this.rng,
        // A failure of the request itself that another attempt may pass; a 418 too, for its ban to be recorded
        // (delayFor then ends the request).
        isRetryable: (err) =>
          (err instanceof RestHttpError && err.status === 418) ||
          ((err instanceof RestHttpError ||
            err instanceof RestTimeoutError ||
            err instanceof RestNetworkError) &&
            isRetryable(err)),
        delayFor: async (err, backoffMs) => {
          if (!(err instanceof RestHttpError) || (err.status !== 429 && err.status !== 418))
            return backoffMs();
          // Remembered (and shared) before anything else: no request of this fleet goes out until then.
          const banMs = banDuration(err);
          if (banMs !== undefined) await this.recordBan(this.now() + banMs, err.status);
          if (err.retryAfterMs === undefined) {
            if (err.status === 418) throw err;
            return backoffMs();
          }
          if (err.retryAfterMs > this.maxRetryAfterMs) {
            throw new RestHttpError(
              err.status,
              err.bodyExcerpt,
              err.retryAfterMs,
              path,
              `Retry-After exceeds the maximum wait of ${this.maxRetryAfterMs} ms`,
            );
          }
          return err.retryAfterMs;
        },
      },
    );
  }

  private async recordBan(untilMs: number, status: number): Promise<void> {
    if (this.ban === undefined || untilMs > this.ban.untilMs) this.ban = { untilMs, status };
    await this.gate?.ban(untilMs, status);
  }

  private async reserve(weight: number): Promise<void> {
    for (;;) {
      const waitMs =
        this.gate === undefined
          ? this.budget.waitFor(weight)
          : await this.gate.reserve(weight, this.budget.limit);
      if (waitMs === 0) {
        if (this.gate === undefined) this.budget.charge(weight);
        return;
      }
      if (this.onBudgetExhausted === 'fail' || waitMs > this.maxBudgetWaitMs) {
        const used = this.gate === undefined ? this.budget.used() : undefined;
        throw new RestBudgetError(weight, used, this.budget.limit, waitMs);
      }
      await this.sleep(waitMs);
    }
  }

  /** One GET under a deadline covering headers and body; the body text of a 2xx, else a typed error. */
  private async attempt(path: string): Promise<string> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    try {
      const res = await this.fetchFn(this.baseUrl + path, {
        method: 'GET',
        headers: { 'X-MBX-TIME-UNIT': 'MICROSECOND', Accept: 'application/json' },
        signal: controller.signal,
      });
      const text = await res.text();
      if (res.status < 200 || res.status > 299) {
        throw new RestHttpError(
          res.status,
          excerpt(text),
          parseRetryAfter(res.headers.get('retry-after')),
          path,
        );
      }
      return text;
    } catch (err) {
      if (timedOut) throw new RestTimeoutError(path, this.timeoutMs);
      if (err instanceof RestHttpError) throw err;
      throw new RestNetworkError(path, err);
    } finally {
      clearTimeout(timer);
    }
  }
}
