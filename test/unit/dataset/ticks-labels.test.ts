import { expect } from 'chai';
import { labelColumns, labelsFor, priceMarkOf, type PriceMark } from '../../../src/dataset/labels';
import {
  featureCutMs,
  horizonName,
  parseDurationMs,
  readPoints,
  tickTimes,
} from '../../../src/dataset/ticks';

// Issue 16: the dataset's ticks (aligned like the sidecar's), point-in-time cuts and labels. Pure.

const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);

describe('dataset ticks (issue 16)', () => {
  it('ticks are the interval multiples of [from, to], both ends included when aligned', () => {
    expect(tickTimes(T0, T0 + 6000, 2000)).to.deep.equal([T0, T0 + 2000, T0 + 4000, T0 + 6000]);
    expect(tickTimes(T0 + 1, T0 + 5999, 2000)).to.deep.equal([T0 + 2000, T0 + 4000]);
    expect(tickTimes(T0 + 1, T0 + 1999, 2000)).to.deep.equal([]);
    expect(() => tickTimes(T0, T0, 0)).to.throw(RangeError);
  });

  it('a tick reads the state at t - latency; labels read t and t + H; points ascending and unique', () => {
    expect(featureCutMs(T0, 150)).to.equal(T0 - 150);
    expect(readPoints([T0, T0 + 2000], 150, [2000, 10_000])).to.deep.equal([
      T0 - 150,
      T0,
      T0 + 1850,
      T0 + 2000,
      T0 + 4000,
      T0 + 10_000,
      T0 + 12_000,
    ]);
    expect(readPoints([T0, T0 + 2000], 0, [])).to.deep.equal([T0, T0 + 2000]);
  });

  it('durations: ms, s, m, h; anything else names the option', () => {
    expect(['500ms', '2s', '1m', '1h'].map((d) => parseDurationMs(d, '--interval'))).to.deep.equal([
      500, 2000, 60_000, 3_600_000,
    ]);
    expect(() => parseDurationMs('2', '--interval')).to.throw(
      '--interval: expected a duration such as 500ms, 2s, 1m or 1h, got "2"',
    );
    expect(() => parseDurationMs('-1s', '--horizon')).to.throw(/--horizon/);
  });

  it('horizon names: whole seconds in s, else ms', () => {
    expect([10_000, 1500].map(horizonName)).to.deep.equal(['10s', '1500ms']);
  });
});

describe('dataset labels (issue 16)', () => {
  const marks = new Map<number, PriceMark>([
    [T0, { mid: '100.00000000', last: '99.50000000' }],
    [T0 + 2000, { mid: '101.00000000', last: '101.50000000' }],
  ]);

  it('columns per horizon: mid, last price (strings), return (double)', () => {
    expect(labelColumns([2000, 10_000]).map((c) => `${c.name}:${c.type}`)).to.deep.equal([
      'label_mid_2s:string',
      'label_price_2s:string',
      'label_ret_2s:double',
      'label_mid_10s:string',
      'label_price_10s:string',
      'label_ret_10s:double',
    ]);
  });

  it('prices at t + H as stored, the mid return from t; empty past the end, never another horizon', () => {
    const labels = labelsFor(T0, [2000, 10_000], (ms) => marks.get(ms));
    expect(labels.slice(0, 2)).to.deep.equal(['101.00000000', '101.50000000']);
    expect(labels[2]).to.be.closeTo(0.01, 1e-15);
    expect(labels.slice(3)).to.deep.equal([null, null, null]);
  });

  it('a missing mid gives an empty mid and return; mid(t) of 0 gives no return', () => {
    const m = new Map<number, PriceMark>([
      [T0, { mid: '0', last: undefined }],
      [T0 + 1000, { mid: undefined, last: '5.00000000' }],
      [T0 + 2000, { mid: '3.00000000', last: undefined }],
    ]);
    expect(labelsFor(T0, [1000, 2000], (ms) => m.get(ms))).to.deep.equal([
      null,
      '5.00000000',
      null,
      '3.00000000',
      null,
      null,
    ]);
  });

  it('a price mark reads ob:<S> mid_price and last_trade_price, "" as missing', () => {
    expect(priceMarkOf({ mid_price: '1.5', last_trade_price: '' })).to.deep.equal({
      mid: '1.5',
      last: undefined,
    });
    expect(priceMarkOf({})).to.deep.equal({ mid: undefined, last: undefined });
  });
});
