import { expect } from 'chai';
import {
  COMPLETENESS_INPUTS,
  DATA_AGE_UNKNOWN,
  FEATURE_DEFINITIONS,
  FEATURE_NAMES,
  STALE_AFTER_MS,
  computeFeatures,
  parseNumber,
  priceAtOrBefore,
} from '../../../src/features/compute';
import { DEFAULT_MAX_FUTURE_SKEW_MS } from '../../../src/events/validate';
import { FEATURE_SCHEMA_VERSION, type StateSnapshot } from '../../../src/features/types';
import { Prng } from '../../../src/replay/simulator';

// Hand-computed expectations for every feature of computeFeatures.

const T = 1_700_000_000_900_000; // event time, us
const AS_OF = 1_700_000_001_000; // ms: 100 ms after T
const N = COMPLETENESS_INPUTS.length;
const HOUR_US = 3_600_000_000;

function base(): StateSnapshot {
  return {
    symbol: 'BTCUSDT',
    orderBook: {
      last_trade_price: '100.00000000',
      last_trade_id: '77',
      last_trade_ts_us: String(T),
      best_bid: '99.00000000',
      best_bid_qty: '1',
      best_ask: '101.00000000',
      best_ask_qty: '1',
      mid_price: '100',
      ts_us: String(T),
      best_update_id: '50',
      book_update_id: '48',
      book_ts_us: String(T),
      bid1_p: '99.00000000',
      ask1_p: '101.00000000',
      ob_imbalance: '0.2',
      bid_strength: '3',
      ask_strength: '2',
    },
    trades1s: {
      count: '5',
      volume: '4',
      signed_volume: '2',
      trade_intensity: '5',
      avg_trade_size: '0.8',
      notional: '400',
      vwap_minus_mid: '0.5',
      price_std: '0.25',
      last_ts_us: String(T - 50_000),
    },
    trades5s: { volume: '10', signed_volume: '-5', vwap_minus_mid: '-1', price_momentum: '0.01' },
    tradeState: { event_time_us: String(T), last_trade_id: '77', px_time_us: String(T) },
    priceHistory: {
      [String(T - 1_000_000)]: '80', // exactly at T - 1 s: ret_1s = 100/80 - 1
      [String(T - 5_100_000)]: '50', // newest at or before T - 5 s: ret_5s = 1
      [String(T - 4_900_000)]: '1', // after T - 5 s: not used by ret_5s
      [String(T - 10_000_000)]: '200', // ret_10s = -0.5
    },
    bookState: { status: 'in_sync', book_update_id: '48' },
  };
}

function withOb(patch: Record<string, string | undefined>): StateSnapshot {
  const s = base();
  const ob: Record<string, string> = { ...s.orderBook };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete ob[k];
    else ob[k] = v;
  }
  return { ...s, orderBook: ob };
}

function withTradeState(patch: Record<string, string | undefined>): StateSnapshot {
  const s = base();
  const state: Record<string, string> = { ...s.tradeState };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete state[k];
    else state[k] = v;
  }
  return { ...s, tradeState: state };
}

function num(v: number | string | undefined): number {
  expect(v).to.be.a('number');
  return v as number;
}

describe('computeFeatures', () => {
  it('computes every feature of a complete, fresh snapshot', () => {
    const f = computeFeatures(base(), AS_OF);
    expect(f.price).to.equal(100);
    expect(f.mid_price).to.equal(100);
    expect(f.ret_1s).to.equal(0.25);
    expect(f.ret_5s).to.equal(1);
    expect(f.ret_10s).to.equal(-0.5);
    expect(f.volume_1s).to.equal(4);
    expect(f.volume_5s).to.equal(10);
    expect(f.vol_imbalance_1s).to.equal(0.5);
    expect(f.vol_imbalance_5s).to.equal(-0.5);
    expect(num(f.spread_bp)).to.be.closeTo(200, 1e-9);
    expect(f.ob_imbalance).to.equal(0.2);
    expect(f.bid_strength).to.equal(3);
    expect(f.ask_strength).to.equal(2);
    expect(f.trade_intensity_1s).to.equal(5);
    expect(f.avg_trade_size_1s).to.equal(0.8);
    expect(f.dollar_volume_1s).to.equal(400);
    expect(f.vwap_dev_1s).to.equal(0.5);
    expect(f.vwap_dev_5s).to.equal(-1);
    expect(f.price_volatility).to.equal(0.25);
    expect(f.momentum).to.equal(0.01);
    expect(f.feature_ts).to.equal(AS_OF);
    expect(f.data_age_ms).to.equal(100);
    expect(f.completeness).to.equal(1);
    expect(f.schema_version).to.equal(FEATURE_SCHEMA_VERSION);
    expect(f.src_event_time_us).to.equal(String(T));
    expect(f.src_last_trade_id).to.equal('77');
    expect(f.src_book_update_id).to.equal('50');
  });

  it('serves FEATURE_NAMES in order, then the watermarks, and defines every name once', () => {
    const f = computeFeatures(base(), AS_OF);
    expect(Object.keys(f)).to.deep.equal([
      ...FEATURE_NAMES,
      'src_event_time_us',
      'src_last_trade_id',
      'src_book_update_id',
      'src_bba_update_id',
      'src_depth20_update_id',
      'src_diff_update_id',
    ]);
    expect(new Set(FEATURE_NAMES).size).to.equal(FEATURE_DEFINITIONS.length);
    expect(FEATURE_NAMES).to.include.members(['ret_1s', 'ret_5s', 'ret_10s', 'feature_ts', 'completeness']);
  });

  it('is deterministic', () => {
    expect(computeFeatures(base(), AS_OF)).to.deep.equal(computeFeatures(base(), AS_OF));
  });

  it('an empty snapshot: zeros, data_age_ms sentinel, completeness 0, empty watermarks', () => {
    const empty: StateSnapshot = {
      symbol: 'X',
      orderBook: {},
      trades1s: {},
      trades5s: {},
      tradeState: {},
      priceHistory: {},
      bookState: {},
    };
    const f = computeFeatures(empty, AS_OF);
    for (const name of FEATURE_NAMES) {
      if (name === 'feature_ts') expect(f[name]).to.equal(AS_OF);
      else if (name === 'data_age_ms') expect(f[name]).to.equal(DATA_AGE_UNKNOWN);
      else if (name === 'schema_version') expect(f[name]).to.equal(FEATURE_SCHEMA_VERSION);
      else expect(f[name], name).to.equal(0);
    }
    expect(f.src_event_time_us).to.equal('');
    expect(f.src_last_trade_id).to.equal('');
    expect(f.src_book_update_id).to.equal('');
  });

  it('empty windows (count 0, all zeros) are present: zero features, no division by zero', () => {
    const zeros = {
      volume: '0',
      signed_volume: '0',
      trade_intensity: '0',
      avg_trade_size: '0',
      notional: '0',
    };
    const s = {
      ...base(),
      trades1s: { ...zeros, vwap_minus_mid: '0', price_std: '0' },
      trades5s: { volume: '0', signed_volume: '0', vwap_minus_mid: '0', price_momentum: '0' },
    };
    const f = computeFeatures(s, AS_OF);
    expect(f.vol_imbalance_1s).to.equal(0);
    expect(f.vol_imbalance_5s).to.equal(0);
    expect(f.volume_1s).to.equal(0);
    expect(f.completeness).to.equal(1);
  });

  it('expired windows (missing hashes) lower completeness by two inputs', () => {
    const f = computeFeatures({ ...base(), trades1s: {}, trades5s: {} }, AS_OF);
    expect(f.volume_1s).to.equal(0);
    expect(f.momentum).to.equal(0);
    expect(f.completeness).to.equal((N - 2) / N);
    // data_age_ms still from ob ts_us / event time
    expect(f.data_age_ms).to.equal(100);
  });

  it('missing px history: returns 0, one input less per horizon', () => {
    const f = computeFeatures({ ...base(), priceHistory: {} }, AS_OF);
    expect([f.ret_1s, f.ret_5s, f.ret_10s]).to.deep.equal([0, 0, 0]);
    expect(f.completeness).to.equal((N - 3) / N);
    const only1 = computeFeatures({ ...base(), priceHistory: { [String(T - 2_000_000)]: '200' } }, AS_OF);
    expect(only1.ret_1s).to.equal(-0.5);
    expect(only1.ret_5s).to.equal(0);
    expect(only1.ret_10s).to.equal(0);
    expect(only1.completeness).to.equal((N - 2) / N);
  });

  it('priceAtOrBefore picks the newest bucket starting at or before the time, skipping garbage', () => {
    const h = { '100': '1', '200': '2', '300': '3', '250': 'x', abc: '9', '150': '-1' };
    expect(priceAtOrBefore(h, 99)).to.equal(undefined);
    expect(priceAtOrBefore(h, 100)).to.equal(1);
    expect(priceAtOrBefore(h, 260)).to.equal(2);
    expect(priceAtOrBefore(h, 1000)).to.equal(3);
  });

  it('no last trade price: price and returns 0', () => {
    const f = computeFeatures(withOb({ last_trade_price: undefined }), AS_OF);
    expect(f.price).to.equal(0);
    expect([f.ret_1s, f.ret_5s, f.ret_10s]).to.deep.equal([0, 0, 0]);
    expect(f.completeness).to.equal((N - 1) / N);
  });

  it('one-sided book: spread 0, mid missing', () => {
    const f = computeFeatures(withOb({ best_ask: undefined, mid_price: undefined, ask1_p: '' }), AS_OF);
    expect(f.spread_bp).to.equal(0);
    expect(f.mid_price).to.equal(0);
    // best_ask, mid_price and book_levels (ask1_p empty) missing
    expect(f.completeness).to.equal((N - 3) / N);
  });

  it('crossed book: negative spread', () => {
    const f = computeFeatures(withOb({ best_bid: '101', best_ask: '99' }), AS_OF);
    expect(num(f.spread_bp)).to.be.closeTo(-200, 1e-9);
  });

  it('missing ob: book features 0, watermark from book:state', () => {
    const f = computeFeatures({ ...base(), orderBook: {} }, AS_OF);
    for (const name of ['price', 'mid_price', 'spread_bp', 'ob_imbalance', 'bid_strength', 'ask_strength'])
      expect(f[name], name).to.equal(0);
    expect(f.src_book_update_id).to.equal('48');
    // last_trade_price, best_bid, best_ask, mid_price, book_levels
    expect(f.completeness).to.equal((N - 5) / N);
    expect(f.data_age_ms).to.equal(100);
  });

  it('garbage strings read as 0 and lower completeness', () => {
    const f = computeFeatures(
      withOb({ last_trade_price: 'NaN', best_bid: 'inf', ob_imbalance: '0x10', bid_strength: '1e999' }),
      AS_OF,
    );
    expect(f.price).to.equal(0);
    expect(f.spread_bp).to.equal(0);
    expect(f.ob_imbalance).to.equal(0);
    expect(f.bid_strength).to.equal(0);
    expect(f.ask_strength).to.equal(2);
    // last_trade_price, best_bid, book_levels
    expect(f.completeness).to.equal((N - 3) / N);
    const g = computeFeatures(
      { ...base(), trades5s: { ...base().trades5s, volume: 'abc' }, tradeState: { event_time_us: '1.5' } },
      AS_OF,
    );
    expect(g.volume_5s).to.equal(0);
    expect(g.vol_imbalance_5s).to.equal(0);
    expect(g.src_event_time_us).to.equal('');
    expect(g.src_last_trade_id).to.equal('');
    // without T: event_time, both windows (not fresh), three past prices, and window_5s garbage
    expect(g.completeness).to.equal((N - 6) / N);
    expect([g.ret_1s, g.ret_5s, g.ret_10s]).to.deep.equal([0, 0, 0]);
  });

  it('zero or negative prices are missing', () => {
    const f = computeFeatures(withOb({ last_trade_price: '0', mid_price: '-1' }), AS_OF);
    expect(f.price).to.equal(0);
    expect(f.mid_price).to.equal(0);
    expect(f.ret_1s).to.equal(0);
  });

  it('stale inputs: data_age_ms grows, completeness drops past the threshold', () => {
    const atLimit = computeFeatures(base(), AS_OF - 100 + STALE_AFTER_MS);
    expect(atLimit.data_age_ms).to.equal(STALE_AFTER_MS);
    expect(atLimit.completeness).to.equal(1);
    const stale = computeFeatures(base(), AS_OF - 100 + STALE_AFTER_MS + 1);
    expect(stale.data_age_ms).to.equal(STALE_AFTER_MS + 1);
    expect(stale.completeness).to.equal(0);
    // only the trade side stale: the book inputs still count
    const s = base();
    const trStale = computeFeatures(
      {
        ...s,
        orderBook: { ...s.orderBook, ts_us: String(T + 10_000_000), book_ts_us: String(T + 10_000_000) },
      },
      AS_OF + 10_000,
    );
    // fresh: best_bid, best_ask, mid_price, book_levels
    expect(trStale.completeness).to.equal(4 / N);
    expect(trStale.data_age_ms).to.equal(100);
  });

  it('trade-stream outage (book events keep T fresh, trades 10 s old): the six trade-derived inputs are missing', () => {
    // As the state stands 10 s after the last trade: book events moved T and the book times, the windows emptied.
    const s = base();
    const later = String(T + 10_000_000);
    const emptyWindow = { ...s.trades1s, count: '0', volume: '0', signed_volume: '0', last_ts_us: '0' };
    const outage: StateSnapshot = {
      ...s,
      orderBook: { ...s.orderBook, ts_us: later, book_ts_us: later },
      trades1s: emptyWindow,
      trades5s: { ...s.trades5s, volume: '0', signed_volume: '0' },
      tradeState: { ...s.tradeState, event_time_us: later },
    };
    const f = computeFeatures(outage, AS_OF + 10_000);
    // missing: last_trade_price, window_1s, window_5s, price_1s_ago, price_5s_ago, price_10s_ago
    expect(f.completeness).to.equal(5 / N);
    expect(num(f.completeness)).to.be.below(0.5);
    expect(f.volume_1s).to.equal(0);
    expect(f.data_age_ms).to.equal(100);
    // The returns keep their formula relative to T (newest px bucket at or before T + 10 s - h: T - 1 s, 80).
    expect([f.ret_1s, f.ret_5s, f.ret_10s]).to.deep.equal([0.25, 0.25, 0.25]);
    // Trades exactly 5 s old still count; 1 us older they do not.
    const tradesAt = (timeUs: number): StateSnapshot => ({
      ...outage,
      orderBook: { ...outage.orderBook, last_trade_ts_us: String(timeUs) },
      tradeState: { ...outage.tradeState, px_time_us: String(timeUs) },
    });
    expect(computeFeatures(tradesAt(T + 5_100_000), AS_OF + 10_000).completeness).to.equal(1);
    expect(computeFeatures(tradesAt(T + 5_099_999), AS_OF + 10_000).completeness).to.equal(5 / N);
  });

  it('T one hour ahead (a clock error): event_time, windows and past prices missing, data_age_ms from the rest', () => {
    const future = String(T + HOUR_US);
    const f = computeFeatures(withTradeState({ event_time_us: future }), AS_OF);
    // missing: event_time, window_1s, window_5s, price_1s_ago, price_5s_ago, price_10s_ago
    expect(f.completeness).to.equal(5 / N);
    expect(f.data_age_ms).to.equal(100);
    // The watermark is the state as read; the returns keep their formula relative to T.
    expect(f.src_event_time_us).to.equal(future);
    expect(f.ret_1s).to.equal(0.25);
    // The book's time one hour ahead: best_bid, best_ask, mid_price missing too; data_age_ms not 0 from it.
    const g = computeFeatures(
      { ...withTradeState({ event_time_us: future }), orderBook: withOb({ ts_us: future }).orderBook },
      AS_OF,
    );
    expect(g.completeness).to.equal(2 / N);
    expect(g.data_age_ms).to.equal(100);
    // Every time one hour ahead: none is known.
    const all = computeFeatures(
      {
        ...withTradeState({ event_time_us: future, px_time_us: future }),
        orderBook: withOb({ ts_us: future, book_ts_us: future, last_trade_ts_us: future }).orderBook,
        trades1s: { ...base().trades1s, last_ts_us: future },
      },
      AS_OF,
    );
    expect(all.completeness).to.equal(0);
    expect(all.data_age_ms).to.equal(DATA_AGE_UNKNOWN);
  });

  it('a time exactly max_future_skew_ms ahead counts; 1 us further does not', () => {
    const boundUs = (AS_OF + DEFAULT_MAX_FUTURE_SKEW_MS) * 1000;
    const at = computeFeatures(withTradeState({ event_time_us: String(boundUs) }), AS_OF);
    expect(at.completeness).to.equal(1);
    expect(at.data_age_ms).to.equal(0);
    const beyond = computeFeatures(withTradeState({ event_time_us: String(boundUs + 1) }), AS_OF);
    expect(beyond.completeness).to.equal(5 / N);
    expect(beyond.data_age_ms).to.equal(100);
    // The option moves the bound: with 0, nothing ahead of asOf counts.
    const zero = { maxFutureSkewMs: 0 };
    expect(
      computeFeatures(withTradeState({ event_time_us: String(AS_OF * 1000) }), AS_OF, zero).completeness,
    ).to.equal(1);
    expect(
      computeFeatures(withTradeState({ event_time_us: String(AS_OF * 1000 + 1) }), AS_OF, zero).completeness,
    ).to.equal(5 / N);
    // The default is processing.max_future_skew_ms' default.
    expect(computeFeatures(base(), AS_OF, {})).to.deep.equal(
      computeFeatures(base(), AS_OF, { maxFutureSkewMs: DEFAULT_MAX_FUTURE_SKEW_MS }),
    );
    expect(() => computeFeatures(base(), AS_OF, { maxFutureSkewMs: -1 })).to.throw(
      RangeError,
      'maxFutureSkewMs must be >= 0, got -1',
    );
    expect(() => computeFeatures(base(), AS_OF, { maxFutureSkewMs: NaN })).to.throw(RangeError);
  });

  it('the newest trade time is px_time_us, else ob last_trade_ts_us', () => {
    const old = String(T - 10_000_000);
    // px_time_us absent: last_trade_ts_us judges the windows and past prices.
    expect(computeFeatures(withTradeState({ px_time_us: undefined }), AS_OF).completeness).to.equal(1);
    expect(computeFeatures(withTradeState({ px_time_us: '' }), AS_OF).completeness).to.equal(1);
    const fallbackOld = {
      ...withTradeState({ px_time_us: undefined }),
      orderBook: withOb({ last_trade_ts_us: old }).orderBook,
    };
    // missing: last_trade_price, window_1s, window_5s, the three past prices
    expect(computeFeatures(fallbackOld, AS_OF).completeness).to.equal(5 / N);
    // px_time_us present: it wins over last_trade_ts_us (which judges last_trade_price alone).
    expect(computeFeatures(withOb({ last_trade_ts_us: old }), AS_OF).completeness).to.equal((N - 1) / N);
    expect(computeFeatures(withTradeState({ px_time_us: old }), AS_OF).completeness).to.equal(6 / N);
    // A malformed px_time_us is no time (not a reason to fall back).
    expect(computeFeatures(withTradeState({ px_time_us: 'x' }), AS_OF).completeness).to.equal(6 / N);
  });

  it('data_age_ms is floored at 0 when inputs are newer than asOf', () => {
    const f = computeFeatures(base(), AS_OF - 1000);
    expect(f.data_age_ms).to.equal(0);
    expect(f.completeness).to.equal(1);
  });

  it('book watermark is the highest update id, compared as integers', () => {
    const f = computeFeatures(
      withOb({ best_update_id: '9', book_update_id: '10', bba_update_id: 'x' }),
      AS_OF,
    );
    expect(f.src_book_update_id).to.equal('48');
    const g = computeFeatures(withOb({ depth20_update_id: '123456789012345678901' }), AS_OF);
    expect(g.src_book_update_id).to.equal('123456789012345678901');
  });

  it('parseNumber accepts decimals and %.17g, rejects the rest', () => {
    expect(parseNumber('59786.55000000')).to.equal(59786.55);
    expect(parseNumber('-1.5e-07')).to.equal(-1.5e-7);
    expect(parseNumber('1.')).to.equal(1);
    for (const bad of [undefined, '', ' ', 'nan', 'inf', '-inf', '1e400', '0x1f', '1,5', '1 2'])
      expect(parseNumber(bad), String(bad)).to.equal(undefined);
  });

  it('never NaN or Infinity over random snapshots', () => {
    const rng = new Prng(42);
    const pool = [
      '',
      '0',
      '-0',
      '1',
      '-1',
      '1e308',
      '-1e308',
      '5e-324',
      'NaN',
      'abc',
      '99.5',
      '1e999',
      String(T),
    ];
    const pick = (): string => pool[rng.int(pool.length)] ?? '';
    const hash = (fields: string[]): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const f of fields) if (rng.float() < 0.8) out[f] = pick();
      return out;
    };
    const obFields = Object.keys(base().orderBook);
    const trFields = Object.keys(base().trades1s).concat(['price_momentum']);
    for (let i = 0; i < 2000; i++) {
      const px: Record<string, string> = {};
      for (let k = 0; k < rng.int(5); k++) px[pick()] = pick();
      const s: StateSnapshot = {
        symbol: 'R',
        orderBook: hash(obFields),
        trades1s: hash(trFields),
        trades5s: hash(trFields),
        tradeState: hash(['event_time_us', 'last_trade_id', 'px_time_us']),
        priceHistory: px,
        bookState: hash(['book_update_id']),
      };
      const asOf = [AS_OF, 0, -1, 1e300][rng.int(4)] ?? AS_OF;
      const f = computeFeatures(s, asOf);
      for (const name of FEATURE_NAMES) {
        const v = f[name];
        expect(Number.isFinite(v), `${name}=${String(v)}`).to.equal(true);
      }
      expect(num(f.completeness)).to.be.within(0, 1);
    }
  });
});
