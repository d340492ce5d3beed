import { expect } from 'chai';
import { Prng } from '../../src/replay/simulator';
import { canonical8 } from '../helpers/canonical';
import type { SbeMessage } from '../../src/sbe/messages';
import { anchorBook, applyBestBidAskBatch } from '../../src/state/book';
import type { RedisClient } from '../../src/state/redis';
import { ReferenceBook, referenceMid, referenceSpread } from '../helpers/book-reference';
import {
  LEVELS,
  START_US,
  keys,
  lv,
  diff,
  depth20,
  bba,
  ladder,
  expectReference,
  useBookRedis,
  depthBoth as depthBothIn,
  type DepthBoth,
} from '../helpers/book-scripts';

// Order-book cases, the other sources of the best bid/ask: the bestBidAsk and depth20 streams (only newer ids
// apply), and mid/spread computed exactly by the Lua decimal arithmetic.

describe('order book against a real Redis', function () {
  this.timeout(120000);
  let redis: RedisClient;
  useBookRedis('book-sources', (client) => (redis = client));

  /** depthBoth (test/helpers/book-scripts.ts) on this file's Redis. */
  const depthBoth: DepthBoth = (...args) => depthBothIn(redis, ...args);

  describe('cases', () => {
    const S = 'BTCUSDT';

    it('bestBidAsk: only a newer id applies; the best bid/ask stays with a newer depth source; ids beyond 2^53', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 100 });
      const both = async (events: SbeMessage[], expected: { applied: boolean; bestWritten: boolean }) => {
        const actual = await applyBestBidAskBatch(redis, keys, S, events);
        expect(actual).to.deep.equal(expected);
        const [applied, bestWritten] = ref.applyBestBidAskBatch(events);
        expect({ applied, bestWritten }).to.deep.equal(expected);
        await expectReference(redis, S, ref, 'bba');
      };
      await both([bba(10n, 60000n, 60001n), bba(8n, 1n, 2n)], { applied: true, bestWritten: true });
      expect(await redis.hgetall(keys.orderBook(S))).to.deep.equal({
        bba_update_id: '10',
        best_bid: '600.00000000',
        best_bid_qty: '1.00000000',
        best_ask: '600.01000000',
        best_ask_qty: '2.00000000',
        spread: '0.01000000',
        mid_price: '600.00500000',
        best_update_id: '10',
        ts_us: String(START_US + 10n),
      });
      await both([bba(9n, 1n, 2n)], { applied: false, bestWritten: false });
      await both([bba(10n, 1n, 2n)], { applied: false, bestWritten: false });
      expect(await anchorBook(redis, keys, S, ladder(10, 20n), { levels: LEVELS })).to.include({ code: 1 });
      ref.anchor(ladder(10, 20n));
      await both([bba(15n, 1n, 2n)], { applied: true, bestWritten: false });
      expect(await redis.hget(keys.orderBook(S), 'best_update_id')).to.equal('20');
      await both([bba(25n, 59999n, 60003n)], { applied: true, bestWritten: true });
      await both([], { applied: false, bestWritten: false });
      const big = 2n ** 53n;
      await both([bba(big + 1n, 59998n, 60004n)], { applied: true, bestWritten: true });
      await both([bba(big, 1n, 2n)], { applied: false, bestWritten: false }); // 2^53 and 2^53 + 1 are one double
      await both([bba(big + 2n, 59997n, 60005n)], { applied: true, bestWritten: true });
      await both([bba(9_223_372_036_854_775_806n, 59996n, 60006n)], { applied: true, bestWritten: true });
      expect(await redis.hget(keys.orderBook(S), 'bba_update_id')).to.equal('9223372036854775806');
    });

    it('depth20: only a newer snapshot applies, blanks missing levels; its best only if newer than best_update_id', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 100 });
      const r1 = await depthBoth(
        S,
        [depth20(50n, [lv(60000n, 1n), lv(59999n, 2n)], [lv(60001n, 3n)]), depth20(40n, [], [])],
        ref,
        'd20',
      );
      expect(r1).to.include({
        depth20Applied: true,
        levelsSource: 'depth20',
        bestWritten: true,
        status: 'out_of_sync',
        reason: 'no_snapshot',
      });
      const ob = await redis.hgetall(keys.orderBook(S));
      expect(ob).to.include({
        bid1_p: '600.00000000',
        bid2_q: '0.00000002',
        bid3_p: '',
        bid3_q: '',
        ask1_p: '600.01000000',
        ask2_p: '',
        book_update_id: '50',
        depth20_update_id: '50',
        mid_price: '600.00500000',
        spread: '0.01000000',
      });
      expect(await depthBoth(S, [depth20(49n, [lv(1n, 1n)], [])], ref, 'older d20')).to.include({
        depth20Applied: false,
        levelsSource: undefined,
      });
      await applyBestBidAskBatch(redis, keys, S, [bba(60n, 59990n, 60010n)]);
      ref.applyBestBidAskBatch([bba(60n, 59990n, 60010n)]);
      expect(
        await depthBoth(S, [depth20(55n, [lv(59995n, 1n)], [lv(60005n, 1n)])], ref, 'd20 older than bba'),
      ).to.include({ depth20Applied: true, levelsSource: 'depth20', bestWritten: false });
      expect(await redis.hget(keys.orderBook(S), 'best_bid')).to.equal('599.90000000');
      expect(await redis.hget(keys.orderBook(S), 'bid1_p')).to.equal('599.95000000');
      // The full book at 70 is newer than the next depth20 (65): that one is recorded but its levels are not used.
      await anchorBook(redis, keys, S, ladder(12, 70n), { levels: LEVELS });
      ref.anchor(ladder(12, 70n));
      expect(
        await depthBoth(S, [depth20(65n, [lv(1n, 1n)], [lv(2n, 1n)])], ref, 'd20 older than book'),
      ).to.include({ depth20Applied: true, levelsSource: undefined });
      // Diffs and a newer depth20 in one batch: the newer source wins, the book on a tie.
      expect(
        await depthBoth(
          S,
          [diff(71n, 72n, [lv(60000n, 5n)], []), depth20(75n, [lv(60000n, 9n)], [lv(60001n, 9n)])],
          ref,
          'd20 newer than book',
        ),
      ).to.include({ levelsSource: 'depth20' });
      expect(
        await depthBoth(
          S,
          [diff(73n, 80n, [lv(60000n, 6n)], []), depth20(80n, [lv(60000n, 9n)], [lv(60001n, 9n)])],
          ref,
          'tie',
        ),
      ).to.include({ levelsSource: 'book' });
      expect(await redis.hget(keys.orderBook(S), 'bid1_q')).to.equal('0.00000006');
      await expectReference(redis, S, ref, 'd20 end');
    });

    it('mid and spread are exact for random prices, exponents and mantissas beyond 2^53 (Lua decimal arithmetic)', async () => {
      const rng = new Prng(42);
      const big = (bits: number) => {
        let v = 0n;
        for (let i = 0; i < bits; i += 16) v = (v << 16n) | BigInt(rng.int(65536));
        return v & ((1n << BigInt(bits)) - 1n);
      };
      for (let i = 1; i <= 300; i++) {
        const exponent = -rng.int(9);
        // Canonical mantissas (value x 10^8) up to 2^62: far beyond 2^53, within int64.
        const bits = 62 - Math.ceil((exponent + 8) * Math.log2(10));
        const bid = 1n + big(8 + rng.int(bits - 28));
        const ask = rng.float() < 0.1 ? bid : bid + big(rng.int(20));
        await applyBestBidAskBatch(redis, keys, S, [bba(BigInt(i), bid, ask, exponent)]);
        const ob = await redis.hgetall(keys.orderBook(S));
        const b = canonical8(bid, exponent);
        const a = canonical8(ask, exponent);
        expect([ob.best_bid, ob.best_ask, ob.spread, ob.mid_price], `${b} ${a}`).to.deep.equal([
          b,
          a,
          referenceSpread(b, a),
          referenceMid(b, a),
        ]);
      }
      // A crossed best bid/ask gives a negative spread, exactly.
      await applyBestBidAskBatch(redis, keys, S, [bba(1000n, 60002n, 60000n)]);
      expect(await redis.hget(keys.orderBook(S), 'spread')).to.equal('-0.02000000');
    });
  });
});
