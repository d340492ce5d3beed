import crypto from 'node:crypto';
import { expect } from 'chai';
import { MarketSimulator } from '../../src/replay/simulator';
import type { SbeMessage } from '../../src/sbe/messages';
import {
  anchorBook,
  anchorKeys,
  applyBestBidAskBatch,
  applyBookBatch,
  BookScriptError,
  depthBatchArgs,
  depthBatchKeys,
} from '../../src/state/book';
import { Keys } from '../../src/state/keys';
import { loadScriptSources } from '../../src/state/redis';
import type { RedisClient } from '../../src/state/redis';
import {
  LEVELS,
  START_US,
  keys,
  lv,
  diff,
  depth20,
  bba,
  ladder,
  dumpAll,
  expectSameDump,
  expectBookArgs,
  useBookRedis,
} from '../helpers/book-scripts';

// Order-book cases, the scripts as programs: the fast path against the diff-by-diff path, argument checks
// (BOOKARGS before any write), NOSCRIPT fallback, cluster-mode key names, and how a script failure surfaces.

describe('order book against a real Redis', function () {
  this.timeout(120000);
  let redis: RedisClient;
  useBookRedis('book-scripts', (client) => (redis = client));

  describe('cases', () => {
    const S = 'BTCUSDT';

    it('the fast path (net effect) and the diff-by-diff path leave byte-identical keys', async () => {
      const sim = new MarketSimulator({ seed: 5, symbols: [S], startTimeUs: START_US });
      const snapshot = {
        ...sim.depthSnapshot(S, 5000),
        priceExponent: -8,
        qtyExponent: -8,
        timeUs: START_US,
      };
      const diffs: SbeMessage[] = [];
      while (diffs.length < 300) {
        const m = sim.next().message;
        if (m.message === 'DepthDiffStreamEvent' || m.message === 'DepthSnapshotStreamEvent') diffs.push(m);
      }
      const run = async (slow: boolean) => {
        await redis.flushdb();
        await anchorBook(redis, keys, S, snapshot, { levels: LEVELS });
        for (let i = 0; i < diffs.length; i += 60) {
          const args = depthBatchArgs(S, diffs.slice(i, i + 60), { levels: LEVELS });
          const count = Number(args[6]);
          const used = slow ? [...args.slice(0, 7), '', ...args.slice(8, 8 + count)] : args;
          if (!slow) expect(args[7], 'a chained batch carries its net effect').to.not.equal('');
          const reply = await redis.applyDepthBatch(...depthBatchKeys(keys, S), ...used);
          expect(reply[0]).to.be.greaterThan(0);
        }
        return dumpAll(redis);
      };
      const fast = await run(false);
      const slow = await run(true);
      expectSameDump(fast, slow, 'fast vs slow path');
      expect(await redis.hget(keys.bookState(S), 'status')).to.equal('in_sync');
    });

    it('malformed arguments are refused with BOOKARGS before any write', async () => {
      const k = depthBatchKeys(keys, S);
      await anchorBook(redis, keys, S, ladder(5, 100n), { levels: LEVELS });
      const before = await dumpAll(redis);
      const bad: string[][] = [
        ['10', '1000', '', '', '', '', '1', '', '101 101 5 1 600.00'], // a bid announced, half a level sent
        ['10', '1000', '', '', '', '', '2', '', '101 102 5 0', '101 101 5 0'], // not sorted by u
        ['10', '1000', '', '', '', '', '1', '', '102 101 5 0'], // U > u
        ['0', '1000', '', '', '', '', '0', ''], // N
        ['10', '1000', 'x', '', '', '', '0', ''], // batch time
        ['10', '1000', '', '', '', '', '1', '1 0 0 0', '101 101 5 0', '600.00'], // net effect counts
        ['10', '1000', '', '', '', '', '1', '', '101 101 5 0 600.00 -1'], // negative quantity
        // A net value that is not canonical (8 decimals): refused before the first write of the fast path.
        ['10', '1000', '', '', '', '', '1', '1 0 0 0', '101 101 5 1 600.00 1', '600.00', '1.00000000'],
        [
          '10',
          '1000',
          '',
          '',
          '',
          '',
          '1',
          '1 0 1 0',
          '101 101 5 1 600.00 1',
          '599.99000000',
          '1.00000000',
          '601',
          '1.00000000',
        ],
        ['10', '1000', '', '', '', '', '1', 'net 101 101 101 5 1 0 0 0', '600.00', '1.00000000'], // net form
        ['10', '1000', '', '', '', '', '1', 'net 101 102 101 5 0 0 0 0'], // net form: u1 > u
        ['10', '1000', '', '105', '5', '1 600.00 1.00000000', '0', ''], // depth20 level not canonical
        ['10', '1000', '99999999999999999', '', '', '', '0', ''], // batch time beyond 2^53
      ];
      for (const args of bad)
        await expectBookArgs(() => redis.applyDepthBatch(...k, ...args), args.join('|'));
      expectSameDump(await dumpAll(redis), before, 'refused arguments');
    });

    it('the anchor script refuses non-canonical snapshot levels and times beyond 2^53 with BOOKARGS before any write', async () => {
      const k = anchorKeys(keys, S);
      await anchorBook(redis, keys, S, ladder(5, 100n), { levels: LEVELS });
      const before = await dumpAll(redis);
      const bad: string[][] = [
        ['10', '200', '5', '1', '600.00', '1.00000000'], // a price that is not canonical ("600" spelled twice)
        ['10', '200', '5', '1', '600.00000000', '1.5'], // a quantity that is not canonical
        ['10', '200', '5', '0', '601.00000000', '-1.00000000'], // negative
        ['10', '200', '99999999999999999', '0'], // snapshot time beyond 2^53 us
      ];
      for (const args of bad) await expectBookArgs(() => redis.anchorBook(...k, ...args), args.join('|'));
      expectSameDump(await dumpAll(redis), before, 'refused arguments');
    });

    it('after SCRIPT FLUSH the next calls still apply (NOSCRIPT falls back to EVAL)', async () => {
      const sha = (name: string) =>
        crypto
          .createHash('sha1')
          .update(loadScriptSources().find((s) => s.command === name)!.lua)
          .digest('hex');
      const shas = ['applyDepthBatch', 'applyBestBidAsk', 'anchorBook'].map(sha);
      await anchorBook(redis, keys, S, ladder(5, 100n), { levels: LEVELS });
      await applyBookBatch(redis, keys, S, [diff(101n, 101n, [lv(60000n, 3n)], [])], { levels: LEVELS });
      await applyBestBidAskBatch(redis, keys, S, [bba(102n, 60000n, 60001n)]);
      expect(await redis.script('EXISTS', ...shas)).to.deep.equal([1, 1, 1]);
      expect(await redis.script('FLUSH')).to.equal('OK');
      expect(await redis.script('EXISTS', ...shas)).to.deep.equal([0, 0, 0]);
      expect(
        await applyBookBatch(redis, keys, S, [diff(102n, 103n, [lv(60000n, 4n)], [])], { levels: LEVELS }),
      ).to.include({ applied: 1, status: 'in_sync' });
      expect(await applyBestBidAskBatch(redis, keys, S, [bba(104n, 60000n, 60001n)])).to.deep.equal({
        applied: true,
        bestWritten: true,
      });
      expect(await anchorBook(redis, keys, S, ladder(5, 200n), { levels: LEVELS })).to.include({ code: 1 });
      expect(await redis.script('EXISTS', ...shas)).to.deep.equal([1, 1, 1]);
    });

    it('cluster-mode key names: every key written carries the symbol hash tag', async () => {
      const tagged = new Keys({ clusterMode: true });
      await applyBookBatch(redis, tagged, S, [diff(90n, 95n, [], [])], { levels: LEVELS });
      await anchorBook(redis, tagged, S, ladder(5, 100n), { levels: LEVELS });
      await applyBookBatch(
        redis,
        tagged,
        S,
        [diff(101n, 101n, [lv(60000n, 3n)], []), depth20(101n, [], [])],
        { levels: LEVELS },
      );
      await applyBestBidAskBatch(redis, tagged, S, [bba(102n, 60000n, 60001n)]);
      const names = (await redis.keys('*')).sort();
      expect(names).to.include.members([
        'ob:{BTCUSDT}',
        'book:{BTCUSDT}:bids',
        'book:{BTCUSDT}:asks:idx',
        'book:{BTCUSDT}:state',
      ]);
      for (const name of names) expect(name).to.contain('{BTCUSDT}');
    });

    it('a script failure surfaces as BookScriptError with the script, symbol and code', async () => {
      // A wrong type under a book key: the script's error reply is not an outage, so it is wrapped.
      await redis.set(keys.bookState(S), 'not a hash');
      let error: unknown;
      try {
        await applyBookBatch(redis, keys, S, [diff(1n, 1n, [], [])], { levels: LEVELS });
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(BookScriptError);
      expect(error).to.include({ script: 'applyDepthBatch', symbol: S, code: 'SCRIPT' });
      expect((error as Error).message).to.match(/^applyDepthBatch BTCUSDT: WRONGTYPE/);
    });
  });
});
