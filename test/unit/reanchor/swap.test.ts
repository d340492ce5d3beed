import { expect } from 'chai';
import { parseSwapReply, ReanchorSwapError, swapArgs, swapKeys } from '../../../src/reanchor/swap';
import { Keys } from '../../../src/state/keys';

describe('reanchor swap arguments and replies (pure)', () => {
  describe('swapArgs', () => {
    it('levels, the expected lastUpdateId and the lock token, "" for the ones not given', () => {
      expect(swapArgs('BTCUSDT', { levels: 10 })).to.deep.equal(['10', '', '']);
      expect(
        swapArgs('BTCUSDT', { levels: 20, expectedLastUpdateId: 123n, lockToken: 'listener-a|1-0' }),
      ).to.deep.equal(['20', '123', 'listener-a|1-0']);
    });

    it('rejects levels outside 1..20, a negative id and an empty token (which would disable the fence)', () => {
      for (const levels of [0, 21, 1.5])
        expect(() => swapArgs('BTCUSDT', { levels }), String(levels)).to.throw(RangeError, /levels/);
      expect(() => swapArgs('BTCUSDT', { levels: 10, expectedLastUpdateId: -1n })).to.throw(
        RangeError,
        /negative expectedLastUpdateId/,
      );
      expect(() => swapArgs('BTCUSDT', { levels: 10, lockToken: '' })).to.throw(
        RangeError,
        /empty lockToken/,
      );
    });
  });

  it('swapKeys: 26 keys, the lock reanchor:<S> as KEYS[14]', () => {
    const keys = swapKeys(new Keys({ clusterMode: false }), 'BTCUSDT');
    expect(keys).to.have.length(26);
    expect(keys[13]).to.equal('reanchor:BTCUSDT');
  });

  describe('parseSwapReply', () => {
    it('every code to its outcome', () => {
      const outcomes: Array<[number, string]> = [
        [1, 'swapped'],
        [0, 'nothing_to_swap'],
        [-1, 'temporary_missing'],
        [-2, 'temporary_incomplete'],
        [-3, 'other_attempt'],
        [-4, 'too_old'],
        [-5, 'buffer_gap'],
        [-6, 'crossed'],
        [-7, 'lock_lost'],
      ];
      for (const [code, outcome] of outcomes) {
        expect(parseSwapReply('BTCUSDT', [code, '', 0, 0, '', '']).outcome).to.equal(outcome);
      }
    });

    it('ids as bigints, trades "rest" | "live" | undefined', () => {
      expect(parseSwapReply('BTCUSDT', [1, '90071992547409931', 3, 2, 'rest', ''])).to.deep.equal({
        code: 1,
        outcome: 'swapped',
        bookUpdateId: 90071992547409931n,
        diffsApplied: 3,
        diffsDropped: 2,
        trades: 'rest',
        neededLastUpdateId: undefined,
      });
      expect(parseSwapReply('BTCUSDT', [-4, '5', 0, 0, '', '7']).neededLastUpdateId).to.equal(7n);
    });

    it('an unknown code or a reply of another shape is a ReanchorSwapError naming the symbol', () => {
      for (const reply of [[-8, '', 0, 0, '', ''], [1, '', 0, 0, 'x', ''], [1, '', 0, 0, ''], 'OK', null]) {
        expect(() => parseSwapReply('ETHUSDT', reply), JSON.stringify(reply)).to.throw(
          ReanchorSwapError,
          /reanchorSwap ETHUSDT: unexpected reply/,
        );
      }
      expect(() => parseSwapReply('ETHUSDT', [1, 'abc', 0, 0, '', ''])).to.throw(
        ReanchorSwapError,
        /not an id/,
      );
    });
  });
});
