import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { applyMarketBatchArgs, exactSpread, reduceBatch } from '../../../src/state/batch';
import type { SymbolBatch } from '../../../src/state/batch';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
  TradesStreamEvent,
} from '../../../src/sbe/messages';
import { repoRoot } from '../../helpers/paths';

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

/** All orderings of a small list. */
function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  const out: T[][] = [];
  items.forEach((item, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([item, ...rest]);
  });
  return out;
}

function only(map: Map<string, SymbolBatch>, symbol: string): SymbolBatch {
  const batch = map.get(symbol);
  expect(batch, `batch for ${symbol}`).not.to.equal(undefined);
  return batch!;
}

describe('state/batch', () => {
  describe('reduceBatch', () => {
    it('keeps the trade with the highest id, whatever the order of events and of trades inside them', () => {
      const a = trades('BTCUSDT', 1_000n, [
        [5n, 6_000_000n],
        [9n, 6_000_900n],
        [7n, 6_000_700n],
      ]);
      const b = trades('BTCUSDT', 2_000n, [
        [3n, 5_999_000n],
        [8n, 6_000_800n],
      ]);
      for (const order of permutations([a, b])) {
        const batch = only(reduceBatch(order, 10), 'BTCUSDT');
        expect(batch.trade).to.deep.equal({ id: 9n, price: '60009.00', timeUs: 1_000n });
      }
    });

    it('compares trade ids as int64s, not as text or doubles', () => {
      const big = 2n ** 53n + 1n; // not representable as a double
      const events = [
        trades('BTCUSDT', 1n, [[big, 1n]]),
        trades('BTCUSDT', 2n, [[2n ** 53n, 2n]]),
        trades('BTCUSDT', 3n, [[999n, 3n]]),
      ];
      for (const order of permutations(events)) {
        expect(only(reduceBatch(order, 10), 'BTCUSDT').trade?.id).to.equal(big);
      }
    });

    it('keeps the best bid/ask with the highest bookUpdateId, whatever the order', () => {
      const events = [
        bba('BTCUSDT', 100n, 6_000_000_000_000n, 6_000_001_000_000n, 10n),
        bba('BTCUSDT', 1000n, 6_100_000_000_000n, 6_100_000_000_001n, 30n),
        bba('BTCUSDT', 999n, 6_200_000_000_000n, 6_200_000_000_001n, 20n),
      ];
      for (const order of permutations(events)) {
        expect(only(reduceBatch(order, 10), 'BTCUSDT').bestBidAsk).to.deep.equal({
          bookUpdateId: 1000n,
          bid: '61000.00000000',
          bidQty: '1.50000000',
          ask: '61000.00000001',
          askQty: '0.00002500',
          spread: '0.00000001',
          eventTimeUs: 30n,
        });
      }
    });

    it('keeps the depth20 snapshot with the highest bookUpdateId, whatever the order', () => {
      const older = snapshot('BTCUSDT', 50n, [level(1n, 1n)], [level(2n, 1n)], 5n);
      const newer = snapshot('BTCUSDT', 51n, [level(6_000_000n, 1_500n)], [level(6_000_100n, 20n)], 6n);
      for (const order of permutations([older, newer])) {
        const depth = only(reduceBatch(order, 1), 'BTCUSDT').depth;
        expect(depth).to.deep.equal({
          bookUpdateId: 51n,
          eventTimeUs: 6n,
          levels: [
            ['bid1_p', '60000.00'],
            ['bid1_q', '1.500'],
            ['ask1_p', '60001.00'],
            ['ask1_q', '0.020'],
          ],
        });
      }
    });

    it('fills the configured number of levels and blanks the ones the snapshot lacks', () => {
      const snap = snapshot(
        'BTCUSDT',
        7n,
        [level(6_000_000n, 1_000n), level(5_999_999n, 2n)],
        [level(6_000_001n, 3n), level(6_000_002n, 4n), level(6_000_003n, 5n), level(6_000_004n, 6n)],
      );
      expect(only(reduceBatch([snap], 3), 'BTCUSDT').depth?.levels).to.deep.equal([
        ['bid1_p', '60000.00'],
        ['bid1_q', '1.000'],
        ['bid2_p', '59999.99'],
        ['bid2_q', '0.002'],
        ['bid3_p', ''],
        ['bid3_q', ''],
        ['ask1_p', '60000.01'],
        ['ask1_q', '0.003'],
        ['ask2_p', '60000.02'],
        ['ask2_q', '0.004'],
        ['ask3_p', '60000.03'],
        ['ask3_q', '0.005'],
      ]);
      const empty = snapshot('BTCUSDT', 8n, [], []);
      const levels = only(reduceBatch([empty], 20), 'BTCUSDT').depth!.levels;
      expect(levels).to.have.length(80);
      expect(levels.every(([, value]) => value === '')).to.equal(true);
      expect(levels[78]).to.deep.equal(['ask20_p', '']);
    });

    it('groups by symbol and counts every message kind; diffs are only counted', () => {
      const messages: SbeMessage[] = [
        trades('BTCUSDT', 1n, [[1n, 1n]]),
        bba('ETHUSDT', 1n, 1n, 2n),
        diff('BTCUSDT', 1n, 2n),
        diff('BTCUSDT', 3n, 4n),
        trades('BTCUSDT', 2n, [[2n, 2n]]),
        snapshot('ETHUSDT', 4n, [], []),
      ];
      const map = reduceBatch(messages, 5);
      expect([...map.keys()]).to.deep.equal(['BTCUSDT', 'ETHUSDT']);
      const btc = only(map, 'BTCUSDT');
      expect(btc.counts).to.deep.equal({
        TradesStreamEvent: 2,
        BestBidAskStreamEvent: 0,
        DepthSnapshotStreamEvent: 0,
        DepthDiffStreamEvent: 2,
      });
      expect(btc.trade?.id).to.equal(2n);
      expect(btc.bestBidAsk).to.equal(undefined);
      expect(btc.depth).to.equal(undefined);
      const eth = only(map, 'ETHUSDT');
      expect(eth.counts).to.deep.equal({
        TradesStreamEvent: 0,
        BestBidAskStreamEvent: 1,
        DepthSnapshotStreamEvent: 1,
        DepthDiffStreamEvent: 0,
      });
      expect(eth.trade).to.equal(undefined);
      expect(eth.bestBidAsk?.bookUpdateId).to.equal(1n);
      expect(eth.depth?.bookUpdateId).to.equal(4n);
    });

    it('an empty batch reduces to nothing', () => {
      expect(reduceBatch([], 10).size).to.equal(0);
    });
  });

  describe('exactSpread', () => {
    it('is ask - bid at the price exponent, exact beyond double precision', () => {
      expect(exactSpread(bba('BTCUSDT', 1n, 6_500_012_000_000n, 6_500_013_000_000n))).to.equal('0.01000000');
      // Mantissas near int64 scale: a double subtraction would not give 1 unit.
      expect(exactSpread(bba('BTCUSDT', 1n, 123_456_789_012_345_678n, 123_456_789_012_345_679n))).to.equal(
        '0.00000001',
      );
      expect(exactSpread(bba('BTCUSDT', 1n, 5n, 5n))).to.equal('0.00000000');
      // A crossed book keeps its sign.
      expect(exactSpread(bba('BTCUSDT', 1n, 200n, 100n))).to.equal('-0.00000100');
    });
  });

  describe('applyMarketBatchArgs', () => {
    const luaHeader = fs.readFileSync(
      path.join(repoRoot, 'src', 'state', 'lua', 'apply-market-batch-1.lua'),
      'utf8',
    );

    it('the Lua header documents the layout asserted here', () => {
      const documented = [
        /ARGV\[1\]\s+trade id of the newest trade/,
        /ARGV\[2\]\s+its price/,
        /ARGV\[3\]\s+its trade time, microseconds/,
        /ARGV\[4\]\s+bookUpdateId of the newest best bid\/ask/,
        /ARGV\[5\]\s+best_bid\s+ARGV\[6\] best_bid_qty\s+ARGV\[7\] best_ask\s+ARGV\[8\] best_ask_qty/,
        /ARGV\[9\]\s+spread/,
        /ARGV\[10\] its event time, microseconds/,
        /ARGV\[11\] bookUpdateId of the newest depth20 snapshot/,
        /ARGV\[12\] its event time, microseconds/,
        /ARGV\[13\.\.\] field, value pairs of the snapshot's levels/,
      ];
      for (const line of documented) expect(luaHeader).to.match(line);
      // And the script body reads them at those positions.
      expect(luaHeader).to.match(
        /'last_trade_id', ARGV\[1\], 'last_trade_price', ARGV\[2\], 'last_trade_ts_us', ARGV\[3\]/,
      );
      expect(luaHeader).to.match(/'spread', ARGV\[9\], 'ts_us', ARGV\[10\]/);
      expect(luaHeader).to.match(/'depth20_update_id', ARGV\[11\], 'depth20_ts_us', ARGV\[12\]/);
      expect(luaHeader).to.match(/for i = 13, #ARGV/);
    });

    it('lays out a full batch as the header says (1-based ARGV = index + 1)', () => {
      const batch = only(
        reduceBatch(
          [
            trades('BTCUSDT', 111n, [[42n, 6_000_012n]]),
            bba('BTCUSDT', 77n, 6_000_000_000_000n, 6_000_010_000_000n, 222n),
            snapshot('BTCUSDT', 78n, [level(6_000_000n, 1_000n)], [], 333n),
          ],
          2,
        ),
        'BTCUSDT',
      );
      expect(applyMarketBatchArgs(batch)).to.deep.equal([
        '42', // ARGV[1] trade id
        '60000.12', // ARGV[2] price
        '111', // ARGV[3] trade time (transactTime)
        '77', // ARGV[4] bba bookUpdateId
        '60000.00000000', // ARGV[5] best_bid
        '1.50000000', // ARGV[6] best_bid_qty
        '60000.10000000', // ARGV[7] best_ask
        '0.00002500', // ARGV[8] best_ask_qty
        '0.10000000', // ARGV[9] spread
        '222', // ARGV[10] bba event time
        '78', // ARGV[11] depth bookUpdateId
        '333', // ARGV[12] depth event time
        'bid1_p',
        '60000.00',
        'bid1_q',
        '1.000',
        'bid2_p',
        '',
        'bid2_q',
        '',
        'ask1_p',
        '',
        'ask1_q',
        '',
        'ask2_p',
        '',
        'ask2_q',
        '',
      ]);
    });

    it('leaves the id of an absent part empty so the script skips it', () => {
      const tradeOnly = only(reduceBatch([trades('ETHUSDT', 9n, [[1n, 300_000n]])], 10), 'ETHUSDT');
      expect(applyMarketBatchArgs(tradeOnly)).to.deep.equal([
        '1',
        '3000.00',
        '9',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
        '',
      ]);
      const bbaOnly = only(reduceBatch([bba('ETHUSDT', 5n, 1n, 3n, 4n)], 10), 'ETHUSDT');
      expect(applyMarketBatchArgs(bbaOnly)).to.deep.equal([
        '',
        '',
        '',
        '5',
        '0.00000001',
        '1.50000000',
        '0.00000003',
        '0.00002500',
        '0.00000002',
        '4',
        '',
        '',
      ]);
      const diffsOnly = only(reduceBatch([diff('ETHUSDT', 1n, 2n)], 10), 'ETHUSDT');
      expect(applyMarketBatchArgs(diffsOnly)).to.deep.equal(['', '', '', '', '', '', '', '', '', '', '', '']);
    });
  });
});
