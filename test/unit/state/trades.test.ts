import { expect } from 'chai';
import type { TradesStreamEvent } from '../../../src/sbe/messages';
import { Keys } from '../../../src/state/keys';
import {
  ARGS_PER_TRADE,
  TRADE_WINDOW_5S_FIELDS,
  TRADE_WINDOW_FIELDS,
  TradeBatchError,
  applyTradeBatch,
  flattenTrades,
  parseTradeBatchReply,
  tradeBatchArgs,
  tradeBatchKeys,
  tradeWindowKeys,
} from '../../../src/state/trades';
import type { FlatTrade } from '../../../src/state/trades';
import type { RedisClient } from '../../../src/state/redis';

function message(
  transactTime: bigint,
  entries: Array<[id: bigint, price: bigint, qty: bigint, isBuyerMaker: boolean]>,
  options: { eventTime?: bigint; priceExponent?: number; qtyExponent?: number; symbol?: string } = {},
): TradesStreamEvent {
  return {
    message: 'TradesStreamEvent',
    eventTime: options.eventTime ?? transactTime,
    transactTime,
    priceExponent: options.priceExponent ?? -2,
    qtyExponent: options.qtyExponent ?? -5,
    trades: entries.map(([id, priceMantissa, qtyMantissa, isBuyerMaker]) => ({
      id,
      priceMantissa,
      qtyMantissa,
      isBuyerMaker,
      isBestMatch: true,
    })),
    symbol: options.symbol ?? 'BTCUSDT',
  };
}

describe('state/trades', () => {
  describe('flattenTrades', () => {
    it('flattens every message, sorts by id and takes each trade time from its message', () => {
      const a = message(2_000n, [
        [12n, 6_000_100n, 150n, false],
        [10n, 6_000_000n, 100n, true],
      ]);
      const b = message(1_000n, [[11n, 5_999_900n, 5n, false]], { eventTime: 1_500n });
      const flat = flattenTrades('BTCUSDT', [a, b]);
      expect(flat.trades).to.deep.equal([
        { id: 10n, timeUs: 2_000n, price: '60000.00000000', qty: '0.00100000', isBuyerMaker: true },
        { id: 11n, timeUs: 1_000n, price: '59999.00000000', qty: '0.00005000', isBuyerMaker: false },
        { id: 12n, timeUs: 2_000n, price: '60001.00000000', qty: '0.00150000', isBuyerMaker: false },
      ]);
      expect(flat.duplicatesInBatch).to.equal(0);
    });

    it('writes price and qty in the one canonical form (8 decimals) whatever the message’s exponents', () => {
      const flat = flattenTrades('BTCUSDT', [
        message(1n, [[1n, 968219000000n, 1_000n, false]], { priceExponent: -8, qtyExponent: -8 }),
        message(2n, [[2n, 968219n, 1n, false]], { priceExponent: -2, qtyExponent: 0 }),
        message(3n, [[3n, 97n, 3n, true]], { priceExponent: 2, qtyExponent: 1 }),
      ]);
      expect(flat.trades.map((t) => [t.price, t.qty])).to.deep.equal([
        ['9682.19000000', '0.00001000'],
        ['9682.19000000', '1.00000000'],
        ['9700.00000000', '30.00000000'],
      ]);
    });

    it('refuses a value with more than 8 decimals (no canonical form): nothing is sent', () => {
      expect(() => flattenTrades('BTCUSDT', [message(1n, [[1n, 123n, 1n, false]], { priceExponent: -10 })]))
        .to.throw(TradeBatchError, 'no canonical form')
        .with.property('deadLetterCode', 'SCRIPT_ARGS');
    });

    it('keeps the first occurrence of an id repeated within the batch and counts the others', () => {
      const first = message(1_000n, [
        [7n, 100n, 1n, false],
        [8n, 200n, 1n, false],
      ]);
      const again = message(9_000n, [
        [8n, 999n, 9n, true],
        [9n, 300n, 1n, false],
      ]);
      const flat = flattenTrades('BTCUSDT', [first, again, first]);
      expect(flat.trades.map((t) => [t.id, t.price, t.timeUs])).to.deep.equal([
        [7n, '1.00000000', 1_000n],
        [8n, '2.00000000', 1_000n],
        [9n, '3.00000000', 9_000n],
      ]);
      expect(flat.duplicatesInBatch).to.equal(3);
    });

    it('the batch event time is the newest trade time (transactTime); eventTime never moves it', () => {
      expect(flattenTrades('BTCUSDT', []).eventTimeUs).to.equal(undefined);
      expect(
        flattenTrades('BTCUSDT', [
          message(5_000n, [[1n, 1n, 1n, false]], { eventTime: 5_003n }),
          message(4_000n, [[2n, 1n, 1n, false]], { eventTime: 9_001n }),
        ]).eventTimeUs,
      ).to.equal(5_000n);
      // A message with no trades carries no trade time.
      expect(flattenTrades('BTCUSDT', [message(7_000n, [], { eventTime: 6_000n })]).eventTimeUs).to.equal(
        undefined,
      );
    });

    it('sorts ids as int64s (beyond 2^53, across digit counts)', () => {
      const big = 2n ** 63n - 1n;
      const flat = flattenTrades('BTCUSDT', [
        message(1n, [
          [big, 1n, 1n, false],
          [2n ** 53n + 1n, 1n, 1n, false],
          [2n ** 53n, 1n, 1n, false],
          [99n, 1n, 1n, false],
          [100n, 1n, 1n, false],
        ]),
      ]);
      expect(flat.trades.map((t) => t.id)).to.deep.equal([99n, 100n, 2n ** 53n, 2n ** 53n + 1n, big]);
    });

    it('rejects a message of another symbol, naming both', () => {
      expect(() => flattenTrades('BTCUSDT', [message(1n, [[1n, 1n, 1n, false]], { symbol: 'ETHUSDT' })]))
        .to.throw(TradeBatchError, 'trade batch of BTCUSDT holds a message of "ETHUSDT"')
        .with.property('symbol', 'BTCUSDT');
    });
  });

  describe('tradeBatchArgs', () => {
    const trades: FlatTrade[] = [
      { id: 41n, timeUs: 1_700_000_000_000_001n, price: '60000.01', qty: '0.5', isBuyerMaker: false },
      {
        id: 2n ** 63n - 1n,
        timeUs: 1_700_000_000_000_002n,
        price: '0.00000001',
        qty: '2',
        isBuyerMaker: true,
      },
    ];

    it('event time first, then id, time, price, qty, isBuyerMaker (1/0) per trade, as exact text', () => {
      expect(tradeBatchArgs(trades, 1_700_000_000_000_009n)).to.deep.equal([
        '1700000000000009',
        '41',
        '1700000000000001',
        '60000.01',
        '0.5',
        '0',
        '9223372036854775807',
        '1700000000000002',
        '0.00000001',
        '2',
        '1',
      ]);
      expect(tradeBatchArgs(trades, undefined).length).to.equal(1 + 2 * ARGS_PER_TRADE);
    });

    it('no trades and no time: one empty argument', () => {
      expect(tradeBatchArgs([], undefined)).to.deep.equal(['']);
      expect(tradeBatchArgs([], 5n)).to.deep.equal(['5']);
    });
  });

  describe('keys', () => {
    it('script KEYS in order: ob, tr 1s, tr 5s, buckets, state, px (seed names without cluster mode)', () => {
      expect(tradeBatchKeys(new Keys({ clusterMode: false }), 'BTCUSDT')).to.deep.equal([
        'ob:BTCUSDT',
        'tr:BTCUSDT:1s',
        'tr:BTCUSDT:5s',
        'tr:BTCUSDT:buckets',
        'tr:BTCUSDT:state',
        'px:BTCUSDT',
      ]);
    });

    it('cluster mode: every key carries the symbol hash tag; refresh keys are the first five', () => {
      const keys = new Keys({ clusterMode: true });
      const all = tradeBatchKeys(keys, 'ETHUSDT');
      for (const key of all) expect(key).to.contain('{ETHUSDT}');
      expect(tradeWindowKeys(keys, 'ETHUSDT')).to.deep.equal(all.slice(0, 5));
    });
  });

  describe('parseTradeBatchReply', () => {
    it('reads counts, event time, last id and the gaps as int64s', () => {
      expect(
        parseTradeBatchReply('BTCUSDT', [
          3,
          1,
          '1700000000000000',
          '9223372036854775807',
          '5',
          '6',
          '9007199254740993',
          '9007199254740999',
        ]),
      ).to.deep.equal({
        applied: 3,
        duplicates: 1,
        gaps: [
          { from: 5n, to: 6n },
          { from: 9007199254740993n, to: 9007199254740999n },
        ],
        eventTimeUs: 1_700_000_000_000_000n,
        lastTradeId: 2n ** 63n - 1n,
      });
    });

    it('empty event time and last id are undefined', () => {
      expect(parseTradeBatchReply('BTCUSDT', [0, 0, '', ''])).to.deep.equal({
        applied: 0,
        duplicates: 0,
        gaps: [],
        eventTimeUs: undefined,
        lastTradeId: undefined,
      });
    });

    for (const bad of [null, 'OK', [0, 0, ''], [0, 0, '', '', '5'], ['0', 0, '', ''], [0, 0, '1.5', '']]) {
      it(`rejects the reply ${JSON.stringify(bad)}`, () => {
        expect(() => parseTradeBatchReply('BTCUSDT', bad)).to.throw(
          TradeBatchError,
          'unexpected reply of applyTradeBatch',
        );
      });
    }
  });

  it('applyTradeBatch rejects a maxTradesPerCall that is not a positive integer before calling Redis', async () => {
    for (const bad of [0, -1, 1.5, NaN]) {
      let error: unknown;
      try {
        await applyTradeBatch({} as RedisClient, new Keys({ clusterMode: false }), 'BTCUSDT', [], {
          maxTradesPerCall: bad,
        });
      } catch (err) {
        error = err;
      }
      expect(error, String(bad)).to.be.instanceOf(RangeError);
      expect((error as Error).message).to.equal(`maxTradesPerCall must be a positive integer, got ${bad}`);
    }
  });

  it('the contract fields: twelve per window, the 5 s window adds momentum and acceleration', () => {
    expect(TRADE_WINDOW_FIELDS).to.have.length(12);
    expect(TRADE_WINDOW_5S_FIELDS).to.deep.equal([
      ...TRADE_WINDOW_FIELDS,
      'price_momentum',
      'volume_acceleration',
    ]);
  });
});
