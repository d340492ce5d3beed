import { expect } from 'chai';
import { levelBlockValid, validateMessage, type ValidationClock } from '../../../src/events/validate';
import { decodeFrame, levelBlockOf } from '../../../src/sbe/decoder';
import { encodeMessage } from '../../../src/sbe/encoder';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  SbeMessage,
  TradesStreamEvent,
} from '../../../src/sbe/messages';

// The semantic rules of a decoded event: each impossible value under its code, every legitimate one accepted.

const NOW_US = 1_765_000_000_000_000n;
const CLOCK: ValidationClock = { nowUs: NOW_US, maxFutureSkewUs: 5_000_000n };

const trade: TradesStreamEvent = {
  message: 'TradesStreamEvent',
  eventTime: NOW_US - 1000n,
  transactTime: NOW_US - 2000n,
  priceExponent: -2,
  qtyExponent: -5,
  trades: [
    { id: 10n, priceMantissa: 6_000_000n, qtyMantissa: 100n, isBuyerMaker: true, isBestMatch: true },
    { id: 11n, priceMantissa: 6_000_001n, qtyMantissa: 0n, isBuyerMaker: false, isBestMatch: true },
  ],
  symbol: 'BTCUSDT',
};
const bba: BestBidAskStreamEvent = {
  message: 'BestBidAskStreamEvent',
  eventTime: NOW_US,
  bookUpdateId: 0n,
  priceExponent: -8,
  qtyExponent: -8,
  bidPriceMantissa: 6_000_000_000_000n,
  bidQtyMantissa: 1n,
  askPriceMantissa: 6_000_000_000_001n,
  askQtyMantissa: 0n,
  symbol: 'BTCUSDT',
};
const snapshot: DepthSnapshotStreamEvent = {
  message: 'DepthSnapshotStreamEvent',
  eventTime: NOW_US,
  bookUpdateId: 7n,
  priceExponent: -2,
  qtyExponent: -3,
  bids: [
    { priceMantissa: 300n, qtyMantissa: 1n },
    { priceMantissa: 200n, qtyMantissa: 1n },
  ],
  asks: [
    { priceMantissa: 400n, qtyMantissa: 1n },
    { priceMantissa: 500n, qtyMantissa: 1n },
  ],
  symbol: 'BTCUSDT',
};
const diff: DepthDiffStreamEvent = {
  message: 'DepthDiffStreamEvent',
  eventTime: NOW_US,
  firstBookUpdateId: 8n,
  lastBookUpdateId: 8n,
  priceExponent: -2,
  qtyExponent: -3,
  bids: [{ priceMantissa: 300n, qtyMantissa: 0n }],
  asks: [{ priceMantissa: 300n, qtyMantissa: 2n }],
  symbol: 'BTCUSDT',
};

function code(message: SbeMessage, clock = CLOCK): string | undefined {
  return validateMessage(message, clock)?.code;
}

describe('events/validate', () => {
  it('accepts legitimate events, however old (catch-ups, replays of history)', () => {
    for (const m of [trade, bba, snapshot, diff]) expect(code(m), m.message).to.equal(undefined);
    expect(code({ ...trade, eventTime: 0n, transactTime: 1n })).to.equal(undefined);
    expect(code({ ...bba, symbol: '币安人生USDT' }), 'non-ASCII symbols exist').to.equal(undefined);
    expect(code({ ...diff, firstBookUpdateId: 3n, lastBookUpdateId: 9n })).to.equal(undefined);
    expect(code({ ...snapshot, bids: [], asks: [] })).to.equal(undefined);
    expect(code({ ...trade, trades: [] })).to.equal(undefined);
  });

  it('symbols: non-empty, letters and digits, at most 32 characters', () => {
    expect(code({ ...bba, symbol: '' })).to.equal('INVALID_SYMBOL');
    expect(code({ ...bba, symbol: 'BTC USDT' })).to.equal('INVALID_SYMBOL');
    expect(code({ ...bba, symbol: 'BTC}USDT' })).to.equal('INVALID_SYMBOL');
    expect(code({ ...bba, symbol: 'A'.repeat(33) })).to.equal('INVALID_SYMBOL');
    expect(code({ ...bba, symbol: 'A'.repeat(32) })).to.equal(undefined);
  });

  it('exponents within -18..18', () => {
    expect(code({ ...bba, priceExponent: -19 })).to.equal('BAD_EXPONENT');
    expect(code({ ...diff, qtyExponent: 19 })).to.equal('BAD_EXPONENT');
    expect(code({ ...trade, priceExponent: 127 })).to.equal('BAD_EXPONENT');
  });

  it('prices > 0 and quantities >= 0, exact at 8 decimals, within int64 at that scale', () => {
    const t0 = trade.trades[0]!;
    expect(code({ ...trade, trades: [{ ...t0, priceMantissa: -1n }] })).to.equal('BAD_PRICE');
    expect(code({ ...trade, trades: [{ ...t0, priceMantissa: 0n }] })).to.equal('BAD_PRICE');
    expect(code({ ...trade, trades: [{ ...t0, qtyMantissa: -1n }] })).to.equal('BAD_QTY');
    expect(code({ ...bba, askPriceMantissa: 0n })).to.equal('BAD_PRICE');
    expect(code({ ...bba, bidQtyMantissa: -3n })).to.equal('BAD_QTY');
    expect(code({ ...bba, priceExponent: -10, bidPriceMantissa: 123n, askPriceMantissa: 200n })).to.equal(
      'BAD_PRICE',
    );
    expect(code({ ...diff, priceExponent: 18 })).to.equal('BAD_PRICE');
    expect(code({ ...diff, bids: [{ priceMantissa: -300n, qtyMantissa: 1n }] })).to.equal('BAD_PRICE');
  });

  it('ids: trade ids >= 0 and increasing within a message; update ids >= 0; U <= u', () => {
    const [a, b] = trade.trades as [TradesStreamEvent['trades'][0], TradesStreamEvent['trades'][0]];
    expect(code({ ...trade, trades: [{ ...a, id: -5n }] })).to.equal('BAD_TRADE_ID');
    expect(code({ ...trade, trades: [b, a] })).to.equal('BAD_TRADE_ID');
    expect(code({ ...trade, trades: [a, a] })).to.equal('BAD_TRADE_ID');
    expect(code({ ...bba, bookUpdateId: -1n })).to.equal('BAD_UPDATE_ID');
    expect(code({ ...snapshot, bookUpdateId: -1n })).to.equal('BAD_UPDATE_ID');
    expect(code({ ...diff, firstBookUpdateId: 9n, lastBookUpdateId: 8n })).to.equal('BAD_UPDATE_ID');
    expect(code({ ...diff, firstBookUpdateId: -1n })).to.equal('BAD_UPDATE_ID');
  });

  it('times: never negative, never further ahead of the clock than the skew', () => {
    expect(code({ ...bba, eventTime: -1n })).to.equal('BAD_TIME');
    expect(code({ ...trade, transactTime: -1n })).to.equal('BAD_TIME');
    expect(code({ ...trade, transactTime: (1n << 63n) - 1n })).to.equal('FUTURE_TIME');
    expect(code({ ...bba, eventTime: NOW_US + 3_600_000_000n })).to.equal('FUTURE_TIME');
    expect(code({ ...bba, eventTime: NOW_US + 5_000_000n }), 'at the bound').to.equal(undefined);
    expect(code({ ...bba, eventTime: NOW_US + 5_000_001n })).to.equal('FUTURE_TIME');
    expect(
      code({ ...bba, eventTime: NOW_US + 5_000_001n }, { ...CLOCK, maxFutureSkewUs: 10_000_000n }),
    ).to.equal(undefined);
    const failure = validateMessage({ ...bba, eventTime: NOW_US + 3_600_000_000n }, CLOCK);
    expect(failure?.field).to.equal('eventTime');
    expect(failure?.message).to.equal(
      "eventTime: 1765003600000000 us is 3600 s ahead of the processor's clock (allowed: 5 s)",
    );
  });

  it('levels: no price twice on a side; depth20 sides ordered and not crossed', () => {
    const twice = { ...diff, bids: [diff.asks[0]!, diff.asks[0]!] };
    expect(code(twice)).to.equal('BAD_LEVELS');
    expect(code({ ...snapshot, bids: [...snapshot.bids].reverse() })).to.equal('BAD_LEVELS');
    expect(code({ ...snapshot, asks: [...snapshot.asks].reverse() })).to.equal('BAD_LEVELS');
    expect(code({ ...snapshot, asks: [{ priceMantissa: 300n, qtyMantissa: 1n }] })).to.equal('BAD_LEVELS');
    // The same price on both sides of a diff is not a duplicate (a level can move side).
    expect(code(diff)).to.equal(undefined);
  });

  it('levels of a diff in any order: a repeated price is found before, at and after the first level out of order', () => {
    const side = (...prices: bigint[]) => prices.map((priceMantissa) => ({ priceMantissa, qtyMantissa: 1n }));
    const bidsOf = (...prices: bigint[]) => validateMessage({ ...diff, bids: side(...prices) }, CLOCK);
    const asksOf = (...prices: bigint[]) => validateMessage({ ...diff, asks: side(...prices) }, CLOCK);
    expect(bidsOf(300n, 200n, 100n)).to.equal(undefined);
    expect(bidsOf(100n, 300n, 200n), 'out of order, no repeat').to.equal(undefined);
    expect(asksOf(300n, 100n, 200n), 'out of order, no repeat').to.equal(undefined);
    expect(bidsOf(300n, 200n, 300n)?.field, 'repeats a price before the break').to.equal('bids[2].price');
    expect(bidsOf(300n, 200n, 250n, 200n)?.field, 'repeats after the break').to.equal('bids[3].price');
    expect(asksOf(100n, 200n, 200n)?.field, 'adjacent repeat').to.equal('asks[2].price');
    expect(asksOf(100n, 200n, 150n, 100n)?.code).to.equal('BAD_LEVELS');
  });
});

describe('validation of a decoded depth20 snapshot: the fast path on its undecoded levels agrees with the exact rules', () => {
  // A deterministic generator (LCG) of snapshots near every edge: zero, negative and huge mantissas (beyond 2^53
  // and int64's range at scale 8), exponents from -18 to 18, sides in order, out of order, repeated, crossed.
  let state = 12345;
  const next = (n: number) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
  const pick = <T>(values: readonly T[]): T => values[next(values.length)]!;
  const mantissa = (): bigint =>
    pick([
      () => BigInt(next(2_000_000)),
      () => BigInt(next(100)) - 3n,
      () => 6_000_000_000_000n + BigInt(next(1000)),
      () => (1n << 53n) - 1n + BigInt(next(3)),
      () => (1n << 63n) - 1n - BigInt(next(2)),
      () => -(1n << 63n),
      () => 10n ** BigInt(next(19)),
    ])();
  const side = (descending: boolean) => {
    const count = next(6);
    const base = mantissa();
    const step = BigInt(next(3));
    return Array.from({ length: count }, (_, i) => ({
      priceMantissa:
        next(5) === 0 ? mantissa() : BigInt.asIntN(64, base + (descending ? -1n : 1n) * step * BigInt(i)),
      qtyMantissa: mantissa(),
    }));
  };

  it('gives the same verdict, code and field on 20,000 generated snapshots (the fast path says valid only when they are)', () => {
    let fastValid = 0;
    let valid = 0;
    for (let i = 0; i < 20_000; i++) {
      const plain: DepthSnapshotStreamEvent = {
        ...snapshot,
        priceExponent: pick([-8, -8, -2, -5, 0, 2, 7, 8, -9, -10, -18, 18]),
        qtyExponent: pick([-8, -5, -8, 0, 3, -12, 18, -18]),
        bids: side(true),
        asks: side(false),
      };
      const decoded = decodeFrame(encodeMessage(plain)).message as DepthSnapshotStreamEvent;
      const block = levelBlockOf(decoded);
      expect(block, 'the decoder keeps the levels undecoded').to.not.equal(undefined);
      const exact = validateMessage(plain, CLOCK);
      if (levelBlockValid(block!, plain.priceExponent, plain.qtyExponent)) {
        fastValid++;
        expect(
          exact,
          `the fast path accepted ${JSON.stringify(plain, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`,
        ).to.equal(undefined);
      }
      if (exact === undefined) valid++;
      expect(validateMessage(decoded, CLOCK)).to.deep.equal(exact);
    }
    expect(fastValid, 'the fast path decides most valid snapshots').to.be.greaterThan(valid / 2);
    expect(valid, 'the generator makes valid snapshots too').to.be.greaterThan(1000);
  });

  it('agrees on each edge: zero and negative values, fractions beyond 8 decimals, 2^53, int64 at scale 8', () => {
    const lv = (priceMantissa: bigint, qtyMantissa = 1n) => ({ priceMantissa, qtyMantissa });
    const cases: Array<[string, Partial<DepthSnapshotStreamEvent>, string | undefined]> = [
      ['valid', { bids: [lv(200n), lv(100n, 0n)], asks: [lv(300n)] }, undefined],
      ['zero price', { bids: [lv(200n), lv(0n)], asks: [lv(300n)] }, 'BAD_PRICE'],
      ['negative qty', { bids: [lv(200n, -1n)], asks: [lv(300n)] }, 'BAD_QTY'],
      ['9 decimals', { priceExponent: -9, bids: [lv(2001n)], asks: [lv(3000n)] }, 'BAD_PRICE'],
      ['9 decimals, whole', { priceExponent: -9, bids: [lv(2000n)], asks: [lv(3000n)] }, undefined],
      ['2^53 - 1', { priceExponent: -8, bids: [lv(2n ** 53n - 1n)], asks: [lv(2n ** 53n)] }, undefined],
      [
        'int64 at scale 8',
        { priceExponent: 0, bids: [lv(92_233_720_368n)], asks: [lv(92_233_720_369n)] },
        'BAD_PRICE',
      ],
      ['equal prices', { bids: [lv(200n), lv(200n)], asks: [lv(300n)] }, 'BAD_LEVELS'],
      ['crossed', { bids: [lv(300n)], asks: [lv(300n)] }, 'BAD_LEVELS'],
      ['empty sides', { bids: [], asks: [] }, undefined],
    ];
    for (const [name, change, code] of cases) {
      const plain = { ...snapshot, ...change };
      const decoded = decodeFrame(encodeMessage(plain)).message;
      expect(validateMessage(plain, CLOCK)?.code, name).to.equal(code);
      expect(validateMessage(decoded, CLOCK), name).to.deep.equal(validateMessage(plain, CLOCK));
    }
  });

  it('reads like a plain message: levels built on first read, compared and serialized as fields', () => {
    for (const message of [snapshot]) {
      const decoded = decodeFrame(encodeMessage(message)).message;
      expect(decoded).to.deep.equal(message);
      expect(
        JSON.parse(JSON.stringify(decoded, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))),
      ).to.have.keys(Object.keys(message));
    }
  });
});
