import { expect } from 'chai';
import { validateMessage, type ValidationClock } from '../../../src/events/validate';
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
