import { expect } from 'chai';
import {
  newestConsecutiveRun,
  parseOpenGaps,
  parseTradeRepairReply,
  TradeBatchError,
  type FlatTrade,
} from '../../../src/state/trades';

function trade(id: bigint): FlatTrade {
  return { id, timeUs: 1_000_000n + id, price: '100.00000000', qty: '1.00000000', isBuyerMaker: false };
}

describe('state/trades: trade-gap repair (pure parts)', () => {
  describe('newestConsecutiveRun', () => {
    it('keeps a consecutive answer whole, sorted', () => {
      const run = newestConsecutiveRun([trade(12n), trade(10n), trade(11n)]);
      expect(run.map((t) => t.id)).to.deep.equal([10n, 11n, 12n]);
    });

    it('drops repeated ids and keeps the newest run after a hole', () => {
      const run = newestConsecutiveRun([trade(1n), trade(2n), trade(5n), trade(6n), trade(6n), trade(7n)]);
      expect(run.map((t) => t.id)).to.deep.equal([5n, 6n, 7n]);
    });

    it('an empty answer stays empty; one trade is a run', () => {
      expect(newestConsecutiveRun([])).to.deep.equal([]);
      expect(newestConsecutiveRun([trade(3n)]).map((t) => t.id)).to.deep.equal([3n]);
    });
  });

  describe('parseOpenGaps', () => {
    it('reads "from-to,..." oldest first; empty or absent is none', () => {
      expect(parseOpenGaps('5-7,10-10')).to.deep.equal([
        { from: 5n, to: 7n },
        { from: 10n, to: 10n },
      ]);
      expect(parseOpenGaps('')).to.deep.equal([]);
      expect(parseOpenGaps(null)).to.deep.equal([]);
      expect(parseOpenGaps(undefined)).to.deep.equal([]);
    });

    it('ids beyond 2^53 stay exact', () => {
      expect(parseOpenGaps('9223372036854775800-9223372036854775806')).to.deep.equal([
        { from: 9_223_372_036_854_775_800n, to: 9_223_372_036_854_775_806n },
      ]);
    });
  });

  describe('parseTradeRepairReply', () => {
    it('types the counts and each gap with its outcome', () => {
      const reply = [
        1,
        '3',
        1,
        '2',
        1,
        '10',
        '12',
        'repaired',
        '3',
        '4',
        'before_rest',
        '20',
        '20',
        'after_rest',
      ];
      expect(parseTradeRepairReply('BTCUSDT', reply)).to.deep.equal({
        repairedGaps: 1,
        repairedTrades: 3n,
        unrepairableGaps: 1,
        unrepairableTrades: 2n,
        openGapsLeft: 1,
        gaps: [
          { from: 10n, to: 12n, outcome: 'repaired' },
          { from: 3n, to: 4n, outcome: 'before_rest' },
          { from: 20n, to: 20n, outcome: 'after_rest' },
        ],
      });
    });

    it('nothing open: zeros and no gap', () => {
      expect(parseTradeRepairReply('BTCUSDT', [0, '0', 0, '0', 0]).gaps).to.deep.equal([]);
    });

    it('refuses another shape with SCRIPT_REPLY, quoting it', () => {
      for (const reply of [
        null,
        'OK',
        [],
        [0, '0', 0, '0'],
        [0, 0, 0, '0', 0],
        [0, '0', 0, '0', '0'],
        [1, '1', 0, '0', 0, '1', '1'],
        [1, '1', 0, '0', 0, '1', '1', 'fixed'],
        [1, '1', 0, '0', 0, '-1', '1', 'repaired'],
      ]) {
        expect(() => parseTradeRepairReply('BTCUSDT', reply), JSON.stringify(reply))
          .to.throw(TradeBatchError, /unexpected reply of repairTrades/)
          .with.property('deadLetterCode', 'SCRIPT_REPLY');
      }
    });
  });
});
