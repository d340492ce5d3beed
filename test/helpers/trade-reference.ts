import { expect } from 'chai';
import { canonical8 } from './canonical';
import type { TradesStreamEvent } from '../../src/sbe/messages';

// An independent in-memory model of the rolling trade statistics, for the tests: it keeps every applied trade and
// computes each window from the raw trades (two-pass standard deviation, exact decimal sums), with nothing of the
// bucket merging the Lua script does. Only the definitions are shared (documented in src/state/trades.ts).

const BUCKET_US = 100_000n;
const PX_BUCKETS = 150n;

export interface RefTrade {
  readonly id: bigint;
  readonly timeUs: bigint;
  /** value = mantissa x 10^-18, exact. */
  readonly price18: bigint;
  readonly qty18: bigint;
  readonly priceText: string;
  readonly isBuyerMaker: boolean;
}

export interface RefGap {
  readonly from: bigint;
  readonly to: bigint;
}

export interface RefBatchResult {
  readonly applied: number;
  readonly duplicates: number;
  readonly gaps: RefGap[];
  readonly eventTimeUs: bigint | undefined;
  readonly lastTradeId: bigint | undefined;
}

function to18(mantissa: bigint, exponent: number): bigint {
  const shift = exponent + 18;
  if (shift < 0) throw new Error(`exponent ${exponent} below -18`);
  return mantissa * 10n ** BigInt(shift);
}

/** An exact value at scale 10^-scale as the nearest double. */
function toNumber(value: bigint, scale: number): number {
  const negative = value < 0n;
  let digits = (negative ? -value : value).toString().padStart(scale + 1, '0');
  digits = `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`;
  return Number(`${negative ? '-' : ''}${digits}`);
}

export type WindowValues = Record<string, number>;

export class TradeReference {
  lastId: bigint | undefined;
  eventTimeUs: bigint | undefined;
  readonly applied: RefTrade[] = [];
  gapCount = 0;
  gapMissing = 0n;
  lastGap: RefGap | undefined;
  /** px:<S> as the script keeps it: bucket start -> price text. */
  readonly px = new Map<bigint, string>();
  /** The newest applied trade time: the price history's horizon is 15 s before it. */
  pxTimeUs: bigint | undefined;

  private advance(t: bigint | undefined): void {
    if (t !== undefined && (this.eventTimeUs === undefined || t > this.eventTimeUs)) this.eventTimeUs = t;
  }

  applyBatch(messages: readonly TradesStreamEvent[], extraEventTimeUs?: bigint): RefBatchResult {
    const all: Array<RefTrade> = [];
    let batchTime: bigint | undefined = extraEventTimeUs;
    for (const m of messages) {
      // T follows trade times (transactTime) only; a message's eventTime never moves it.
      if (m.trades.length > 0 && (batchTime === undefined || m.transactTime > batchTime))
        batchTime = m.transactTime;
      for (const trade of m.trades) {
        all.push({
          id: trade.id,
          timeUs: m.transactTime,
          price18: to18(trade.priceMantissa, m.priceExponent),
          qty18: to18(trade.qtyMantissa, m.qtyExponent),
          priceText: canonical8(trade.priceMantissa, m.priceExponent),
          isBuyerMaker: trade.isBuyerMaker,
        });
      }
    }
    // First occurrence of an id wins; ids in ascending order.
    const byId = new Map<bigint, RefTrade>();
    for (const t of all) if (!byId.has(t.id)) byId.set(t.id, t);
    const sorted = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const gaps: RefGap[] = [];
    const fresh: RefTrade[] = [];
    for (const t of sorted) {
      if (this.lastId !== undefined && t.id <= this.lastId) continue;
      if (this.lastId !== undefined && t.id > this.lastId + 1n) {
        const gap = { from: this.lastId + 1n, to: t.id - 1n };
        gaps.push(gap);
        this.gapCount++;
        this.gapMissing += gap.to - gap.from + 1n;
        this.lastGap = gap;
      }
      fresh.push(t);
      this.lastId = t.id;
    }
    this.advance(batchTime);
    for (const t of fresh) {
      this.advance(t.timeUs);
      if (this.pxTimeUs === undefined || t.timeUs > this.pxTimeUs) this.pxTimeUs = t.timeUs;
    }
    this.applied.push(...fresh);
    if (fresh.length > 0 && this.pxTimeUs !== undefined) {
      // The history's clock is the newest trade time, not T (which book events move too).
      const low = this.pxTimeUs / BUCKET_US - PX_BUCKETS + 1n;
      for (const t of fresh) {
        const b = t.timeUs / BUCKET_US;
        if (b >= low) this.px.set(b * BUCKET_US, t.priceText);
      }
      for (const start of [...this.px.keys()]) if (start < low * BUCKET_US) this.px.delete(start);
    }
    return {
      applied: fresh.length,
      duplicates: all.length - fresh.length,
      gaps,
      eventTimeUs: this.eventTimeUs,
      lastTradeId: this.lastId,
    };
  }

  refresh(eventTimeUs: bigint): void {
    this.advance(eventTimeUs);
  }

  /** The trades of the W-second window: bucket start > T - W, i.e. bucket index > B - 10W. */
  windowTrades(seconds: number): RefTrade[] {
    if (this.eventTimeUs === undefined) return [];
    const last = this.eventTimeUs / BUCKET_US;
    const first = last - BigInt(seconds * 10) + 1n;
    return this.applied.filter((t) => t.timeUs / BUCKET_US >= first);
  }

  /** Every contract field of tr:<S>:<W>s, computed from the raw trades. */
  window(seconds: 1 | 5, midText: string | undefined): WindowValues {
    const trades = this.windowTrades(seconds);
    const n = trades.length;
    let volume = 0n;
    let buy = 0n;
    let notional = 0n;
    let lastTs = 0n;
    for (const t of trades) {
      volume += t.qty18;
      if (!t.isBuyerMaker) buy += t.qty18;
      notional += t.price18 * t.qty18;
      if (t.timeUs > lastTs) lastTs = t.timeUs;
    }
    const sell = volume - buy;
    const prices = trades.map((t) => toNumber(t.price18, 18));
    const mean = n === 0 ? 0 : prices.reduce((a, b) => a + b, 0) / n;
    const variance = n === 0 ? 0 : prices.reduce((a, p) => a + (p - mean) * (p - mean), 0) / n;
    const volumeN = toNumber(volume, 18);
    const vwap = volume === 0n ? 0 : toNumber(notional, 36) / volumeN;
    const mid = midText === undefined ? NaN : Number(midText);
    const hasMid = Number.isFinite(mid) && mid > 0;
    const values: WindowValues = {
      count: n,
      volume: volumeN,
      notional: toNumber(notional, 36),
      buy_volume: toNumber(buy, 18),
      sell_volume: toNumber(sell, 18),
      vwap,
      price_std: Math.sqrt(variance),
      trade_intensity: n / seconds,
      avg_trade_size: n === 0 ? 0 : volumeN / n,
      last_ts_us: Number(lastTs),
      signed_volume: toNumber(buy - sell, 18),
      vwap_minus_mid: volume !== 0n && hasMid ? vwap - mid : 0,
    };
    if (seconds === 5) {
      // First: lowest id of the oldest non-empty bucket; last: highest id of the newest one.
      const ordered = [...trades].sort((a, b) => {
        const ba = a.timeUs / BUCKET_US;
        const bb = b.timeUs / BUCKET_US;
        if (ba !== bb) return ba < bb ? -1 : 1;
        return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
      });
      const first = ordered[0];
      const lastTrade = ordered[ordered.length - 1];
      values.price_momentum =
        n >= 2 && first && lastTrade
          ? (toNumber(lastTrade.price18, 18) - toNumber(first.price18, 18)) / toNumber(first.price18, 18)
          : 0;
      const newest = this.eventTimeUs === undefined ? 0n : this.eventTimeUs / BUCKET_US;
      let newer = 0n;
      let older = 0n;
      for (const t of trades) {
        if (t.timeUs / BUCKET_US > newest - 25n) newer += t.qty18;
        else older += t.qty18;
      }
      values.volume_acceleration = (toNumber(newer, 18) - toNumber(older, 18)) / 2.5;
    }
    return values;
  }
}

/** Magnitudes the absolute tolerance of each field is scaled by (values near 0 after cancellation). */
function scales(expected: WindowValues, trades: RefTrade[], mid: number): Record<string, number> {
  const maxPrice = trades.reduce(
    (a, t) => Math.max(a, toNumber(t.price18, 18)),
    Number.isFinite(mid) ? mid : 0,
  );
  const volume = expected.volume ?? 0;
  return {
    volume,
    notional: expected.notional ?? 0,
    buy_volume: volume,
    sell_volume: volume,
    vwap: maxPrice,
    price_std: maxPrice,
    trade_intensity: 0,
    avg_trade_size: volume,
    signed_volume: volume,
    vwap_minus_mid: maxPrice,
    price_momentum: 1e-3,
    volume_acceleration: volume,
  };
}

/**
 * Asserts a tr:<S>:<W>s hash equals the reference: count and last_ts_us exactly, the rest within 1e-9 relative
 * plus 1e-12 of the field's input magnitude (sums of doubles vs exact sums; Welford/Chan vs two-pass).
 */
export function expectWindow(
  actual: Record<string, string>,
  reference: TradeReference,
  seconds: 1 | 5,
  midText: string | undefined,
  context: string,
): void {
  const expected = reference.window(seconds, midText);
  expect(Object.keys(actual).sort(), `${context}: fields of the ${seconds}s window`).to.deep.equal(
    Object.keys(expected).sort(),
  );
  const scale = scales(expected, reference.windowTrades(seconds), Number(midText));
  for (const [field, want] of Object.entries(expected)) {
    const text = actual[field] ?? '';
    const got = Number(text);
    const where = `${context}: ${seconds}s ${field} = ${text}, expected ${want}`;
    expect(text, where).to.match(/^-?\d+(\.\d+)?(e[-+]\d+)?$/);
    if (field === 'count' || field === 'last_ts_us') {
      expect(got, where).to.equal(want);
      continue;
    }
    const tolerance = 1e-9 * Math.abs(want) + 1e-12 * (scale[field] ?? 0);
    expect(Math.abs(got - want), where).to.be.at.most(tolerance);
  }
}
