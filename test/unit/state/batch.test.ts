import { expect } from 'chai';
import { groupBySymbol, groupEvents } from '../../../src/state/batch';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  TradesStreamEvent,
} from '../../../src/sbe/messages';

function trades(
  symbol: string,
  transactTime: bigint,
  entries: Array<[bigint, bigint]>,
  priceExponent = -2,
): TradesStreamEvent {
  return {
    message: 'TradesStreamEvent',
    eventTime: transactTime + 5n,
    transactTime,
    priceExponent,
    qtyExponent: -5,
    trades: entries.map(([id, priceMantissa]) => ({
      id,
      priceMantissa,
      qtyMantissa: 100n,
      isBuyerMaker: false,
      isBestMatch: true,
    })),
    symbol,
  };
}

function bba(
  symbol: string,
  bookUpdateId: bigint,
  bid: bigint,
  ask: bigint,
  eventTime = 1_000n,
): BestBidAskStreamEvent {
  return {
    message: 'BestBidAskStreamEvent',
    eventTime,
    bookUpdateId,
    priceExponent: -8,
    qtyExponent: -8,
    bidPriceMantissa: bid,
    bidQtyMantissa: 150_000_000n,
    askPriceMantissa: ask,
    askQtyMantissa: 2_500n,
    symbol,
  };
}

function level(price: bigint, qty: bigint): PriceLevel {
  return { priceMantissa: price, qtyMantissa: qty };
}

function snapshot(
  symbol: string,
  bookUpdateId: bigint,
  bids: PriceLevel[],
  asks: PriceLevel[],
  eventTime = 2_000n,
): DepthSnapshotStreamEvent {
  return {
    message: 'DepthSnapshotStreamEvent',
    eventTime,
    bookUpdateId,
    priceExponent: -2,
    qtyExponent: -3,
    bids,
    asks,
    symbol,
  };
}

function diff(symbol: string, first: bigint, last: bigint): DepthDiffStreamEvent {
  return {
    message: 'DepthDiffStreamEvent',
    eventTime: 3_000n,
    firstBookUpdateId: first,
    lastBookUpdateId: last,
    priceExponent: -2,
    qtyExponent: -3,
    bids: [level(100n, 0n)],
    asks: [],
    symbol,
  };
}

describe('groupBySymbol', () => {
  it('groups every event by symbol and kind, keeping arrival order within each group', () => {
    const t1 = trades('BTCUSDT', 10n, [[2n, 100n]]);
    const t2 = trades('BTCUSDT', 11n, [[1n, 101n]]);
    const b1 = bba('ETHUSDT', 7n, 1n, 2n);
    const s1 = snapshot('BTCUSDT', 5n, [level(1n, 1n)], [level(2n, 1n)]);
    const d1 = diff('BTCUSDT', 6n, 6n);
    const b2 = bba('BTCUSDT', 3n, 1n, 2n);
    const groups = groupBySymbol([t1, b1, s1, t2, d1, b2]);
    expect([...groups.keys()]).to.deep.equal(['BTCUSDT', 'ETHUSDT']);
    const btc = groups.get('BTCUSDT')!;
    expect(btc.trades).to.deep.equal([t1, t2]);
    expect(btc.bestBidAsks).to.deep.equal([b2]);
    expect(btc.depth).to.deep.equal([s1, d1]);
    expect(groups.get('ETHUSDT')).to.deep.equal({
      symbol: 'ETHUSDT',
      trades: [],
      bestBidAsks: [b1],
      depth: [],
      origins: { trades: [], bestBidAsks: [], depth: [] },
    });
  });

  it('groupEvents keeps the origin of each event beside it, per kind', () => {
    const origin = (frameIndex: number) => ({
      stream: 's',
      shardId: 'shard',
      sequenceNumber: '1',
      subSequenceNumber: 0,
      partitionKey: 'pk',
      approximateArrivalTimestamp: undefined,
      frameIndex,
      frameBase64: () => '',
    });
    const t1 = trades('BTCUSDT', 10n, [[2n, 100n]]);
    const b1 = bba('BTCUSDT', 7n, 1n, 2n);
    const d1 = diff('BTCUSDT', 6n, 6n);
    const group = groupEvents([
      { message: t1, origin: origin(0) },
      { message: b1, origin: origin(1) },
      { message: d1, origin: origin(2) },
    ]).get('BTCUSDT')!;
    expect(group.origins.trades.map((o) => o.frameIndex)).to.deep.equal([0]);
    expect(group.origins.bestBidAsks.map((o) => o.frameIndex)).to.deep.equal([1]);
    expect(group.origins.depth.map((o) => o.frameIndex)).to.deep.equal([2]);
  });

  it('keeps duplicates (the scripts decide what is new)', () => {
    const t = trades('BTCUSDT', 10n, [[2n, 100n]]);
    expect(groupBySymbol([t, t]).get('BTCUSDT')!.trades).to.have.length(2);
  });

  it('returns an empty map for an empty batch', () => {
    expect(groupBySymbol([]).size).to.equal(0);
  });
});
