import { expect } from 'chai';
import { anchorBook } from '../../src/state/book';
import type { RedisClient } from '../../src/state/redis';
import { ReferenceBook } from '../helpers/book-reference';
import {
  LEVELS,
  keys,
  lv,
  diff,
  rest,
  ladder,
  dumpAll,
  expectSameDump,
  expectReference,
  useBookRedis,
  depthBoth as depthBothIn,
  type DepthBoth,
} from '../helpers/book-scripts';

// Order-book cases, anchoring and sync: diffs buffered before the first anchor, gaps, crossed books, the buffer's
// bound, and which REST snapshots anchor (apply-depth-batch-12, anchor-book-11 against a real redis-server).

describe('order book against a real Redis', function () {
  this.timeout(120000);
  let redis: RedisClient;
  useBookRedis('book-sync', (client) => (redis = client));

  /** depthBoth (test/helpers/book-scripts.ts) on this file's Redis. */
  const depthBoth: DepthBoth = (...args) => depthBothIn(redis, ...args);

  describe('cases', () => {
    const S = 'BTCUSDT';

    it('before the first anchor diffs are buffered (no_snapshot); a snapshot older than them is refused, a bridging one replays them', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
      const r = await depthBoth(
        S,
        [
          diff(101n, 103n, [lv(59990n, 5n)], []),
          diff(104n, 106n, [], [lv(60001n, 0n)]),
          diff(107n, 110n, [lv(60000n, 7n)], []),
        ],
        ref,
        'buffered',
      );
      expect(r).to.include({
        applied: 0,
        buffered: 3,
        status: 'out_of_sync',
        reason: 'no_snapshot',
        bufferLength: 3,
      });
      expect(r.bookUpdateId).to.equal(undefined);
      await expectReference(redis, S, ref, 'buffered');

      const before = await dumpAll(redis);
      const old = await anchorBook(redis, keys, S, ladder(30, 99n), { levels: LEVELS });
      expect(old).to.deep.equal({
        code: -1,
        outcome: 'too_old',
        bookUpdateId: undefined,
        diffsApplied: 0,
        diffsDropped: 0,
        neededLastUpdateId: 100n,
      });
      expect(ref.anchor(ladder(30, 99n))).to.deep.equal({ code: -1, needed: 100n });
      expectSameDump(await dumpAll(redis), before, 'refused');

      const ok = await anchorBook(redis, keys, S, ladder(30, 105n), { levels: LEVELS });
      expect(ok).to.deep.equal({
        code: 1,
        outcome: 'anchored',
        bookUpdateId: 110n,
        diffsApplied: 2,
        diffsDropped: 1,
        neededLastUpdateId: undefined,
      });
      expect(ref.anchor(ladder(30, 105n)).code).to.equal(1);
      await expectReference(redis, S, ref, 'anchored');
      expect(await redis.hget(keys.bookLevels(S, 'asks'), '600.01000000')).to.equal(null); // removed by the replayed diff
      expect(await redis.hget(keys.bookLevels(S, 'bids'), '600.00000000')).to.equal('0.00000007');
      // 101-103 is covered by the snapshot: its level stays the snapshot's.
      expect(await redis.hget(keys.bookLevels(S, 'bids'), '599.90000000')).to.equal('1.00000010');
      expect(await redis.hgetall(keys.bookState(S))).to.include({
        status: 'in_sync',
        reason: '',
        book_update_id: '110',
        anchors: '1',
        anchor_update_id: '105',
        buffered: '0',
      });
      expect(await redis.exists(keys.diffBuffer(S))).to.equal(0);
    });

    it('a gap takes the book out of sync (reason gap, counted, range kept) and buffers the rest; redelivery adds nothing', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
      await anchorBook(redis, keys, S, ladder(20, 100n), { levels: LEVELS });
      ref.anchor(ladder(20, 100n));
      const batch = [
        diff(101n, 102n, [lv(60000n, 9n)], []),
        diff(105n, 106n, [lv(59999n, 1n)], []),
        diff(107n, 107n, [], [lv(60002n, 0n)]),
      ];
      const r = await depthBoth(S, batch, ref, 'gap');
      expect(r).to.include({
        applied: 1,
        buffered: 2,
        gap: true,
        status: 'out_of_sync',
        reason: 'gap',
        bufferLength: 2,
      });
      expect(r.bookUpdateId).to.equal(102n);
      expect(await redis.hgetall(keys.bookState(S))).to.include({
        gaps: '1',
        gap_from: '102',
        gap_to: '105',
        last_seen_u: '107',
      });
      await expectReference(redis, S, ref, 'gap');
      // The ob: levels stay those of the anchored book (the book went out of sync in this batch).
      expect(await redis.hget(keys.orderBook(S), 'book_update_id')).to.equal('100');

      const before = await dumpAll(redis);
      const again = await depthBoth(S, batch, ref, 'redelivered');
      expect(again).to.include({ applied: 0, ignored: 3, buffered: 0, gap: false });
      expectSameDump(await dumpAll(redis), before, 'redelivery while out of sync');

      // The re-anchor: a snapshot at 104 bridges the buffered 105-106.
      const ok = await anchorBook(redis, keys, S, ladder(20, 104n), { levels: LEVELS });
      expect(ok).to.include({ code: 1, bookUpdateId: 107n, diffsApplied: 2 });
      ref.anchor(ladder(20, 104n));
      await expectReference(redis, S, ref, 're-anchored');
    });

    it('a crossed book (bid >= best ask) is detected and reported, taken out of sync; a crossed snapshot is refused', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
      await anchorBook(redis, keys, S, ladder(20, 100n), { levels: LEVELS });
      ref.anchor(ladder(20, 100n));
      const r = await depthBoth(S, [diff(101n, 101n, [lv(60001n, 1n)], [])], ref, 'crossed');
      expect(r).to.include({
        applied: 1,
        crossed: true,
        status: 'out_of_sync',
        reason: 'crossed',
        levelsSource: undefined,
      });
      expect(await redis.hgetall(keys.bookState(S))).to.include({ crossed: '1', book_update_id: '101' });
      expect(await redis.hget(keys.orderBook(S), 'book_update_id')).to.equal('100');
      await expectReference(redis, S, ref, 'crossed');
      // Later diffs are buffered; redelivering the crossing diff changes nothing.
      await depthBoth(S, [diff(102n, 103n, [lv(59000n, 1n)], [])], ref, 'after crossed');
      const before = await dumpAll(redis);
      await depthBoth(S, [diff(101n, 101n, [lv(60001n, 1n)], [])], ref, 'crossing diff again');
      expectSameDump(await dumpAll(redis), before, 'crossing diff redelivered');

      const crossedSnapshot = rest(101n, [lv(60005n, 1n)], [lv(60004n, 1n)]);
      const refused = await anchorBook(redis, keys, S, crossedSnapshot, { levels: LEVELS });
      expect(refused).to.include({ code: -3, outcome: 'crossed' });
      expect(ref.anchor(crossedSnapshot).code).to.equal(-3);
      expectSameDump(await dumpAll(redis), before, 'crossed snapshot refused');
      const ok = await anchorBook(redis, keys, S, ladder(20, 101n), { levels: LEVELS });
      expect(ok).to.include({ code: 1, bookUpdateId: 103n, diffsApplied: 1 });
      ref.anchor(ladder(20, 101n));
      await expectReference(redis, S, ref, 'recovered');
    });

    it('the buffer keeps the newest diffs up to its bound, counts what it drops; the re-anchor then needs a newer snapshot', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 3 });
      const diffs = [1n, 2n, 3n, 4n, 5n].map((k) =>
        diff(100n + 2n * k - 1n, 100n + 2n * k, [lv(59990n + k, k)], []),
      );
      const r1 = await depthBoth(S, diffs.slice(0, 2), ref, 'two', 3);
      expect(r1).to.include({ buffered: 2, overflow: 0, bufferLength: 2 });
      const r2 = await depthBoth(S, diffs.slice(2), ref, 'three more', 3);
      expect(r2).to.include({ buffered: 3, overflow: 2, bufferLength: 3 });
      expect(await redis.llen(keys.diffBuffer(S))).to.equal(3);
      expect(await redis.hget(keys.bookState(S), 'buffer_overflow')).to.equal('2');
      await expectReference(redis, S, ref, 'overflowed');
      // The oldest kept diff starts at 105: a snapshot at 102 no longer bridges.
      const old = await anchorBook(redis, keys, S, ladder(10, 102n), { levels: LEVELS });
      expect(old).to.include({ code: -1, neededLastUpdateId: 104n });
      const ok = await anchorBook(redis, keys, S, ladder(10, 104n), { levels: LEVELS });
      expect(ok).to.include({ code: 1, bookUpdateId: 110n, diffsApplied: 3 });
      ref.anchor(ladder(10, 104n));
      await expectReference(redis, S, ref, 'anchored after overflow');
    });

    it('a gap inside the buffer after the snapshot is refused (-2) and changes nothing; a snapshot past it anchors', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 100 });
      await depthBoth(S, [diff(101n, 102n, [], []), diff(105n, 106n, [lv(59000n, 1n)], [])], ref, 'holed');
      const before = await dumpAll(redis);
      const refused = await anchorBook(redis, keys, S, ladder(10, 100n), { levels: LEVELS });
      expect(refused).to.include({ code: -2, outcome: 'buffer_gap', neededLastUpdateId: 104n });
      expect(ref.anchor(ladder(10, 100n))).to.deep.equal({ code: -2, needed: 104n });
      expectSameDump(await dumpAll(redis), before, 'buffer gap refused');
      // A snapshot at the newest buffered diff covers them all and anchors alone.
      const covering = await anchorBook(redis, keys, S, ladder(10, 107n), { levels: LEVELS });
      expect(covering).to.include({ code: 1, bookUpdateId: 107n, diffsDropped: 2 });
      ref.anchor(ladder(10, 107n));
      await expectReference(redis, S, ref, 'past the gap');
    });

    it('with an empty buffer, a snapshot older than the newest diff consumed is refused', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 100 });
      await anchorBook(redis, keys, S, ladder(10, 100n), { levels: LEVELS });
      ref.anchor(ladder(10, 100n));
      await depthBoth(S, [diff(101n, 110n, [lv(60001n, 1n)], [])], ref, 'crossing'); // out of sync at 110, nothing buffered
      expect(await anchorBook(redis, keys, S, ladder(10, 105n), { levels: LEVELS })).to.include({
        code: -1,
        neededLastUpdateId: 110n,
      });
      expect(ref.anchor(ladder(10, 105n))).to.deep.equal({ code: -1, needed: 110n });
    });

    it('anchoring with the same or an older snapshot is a no-op (0); a newer one replaces the book', async () => {
      await anchorBook(redis, keys, S, ladder(30, 100n), { levels: LEVELS });
      const before = await dumpAll(redis);
      for (const id of [100n, 99n, 1n]) {
        expect(await anchorBook(redis, keys, S, ladder(5, id), { levels: LEVELS })).to.deep.equal({
          code: 0,
          outcome: 'noop',
          bookUpdateId: 100n,
          diffsApplied: 0,
          diffsDropped: 0,
          neededLastUpdateId: undefined,
        });
      }
      expectSameDump(await dumpAll(redis), before, 'no-op anchors');
      expect(await anchorBook(redis, keys, S, ladder(5, 200n), { levels: LEVELS })).to.include({
        code: 1,
        bookUpdateId: 200n,
      });
      expect(await redis.hlen(keys.bookLevels(S, 'bids'))).to.equal(5);
      expect(await redis.zcard(keys.bookIndex(S, 'asks'))).to.equal(5);
    });
  });
});
