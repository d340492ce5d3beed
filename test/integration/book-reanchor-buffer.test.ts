import { expect } from 'chai';
import { buildTemporaryState } from '../../src/reanchor/build';
import { swapReanchor } from '../../src/reanchor/swap';
import { MarketSimulator } from '../../src/replay/simulator';
import { parseDecimal } from '../../src/sbe/decimal';
import type { SbeMessage } from '../../src/sbe/messages';
import {
  anchorBook,
  applyBookBatch,
  depthBatchArgs,
  depthBatchKeys,
  type RestDepthSnapshot,
} from '../../src/state/book';
import type { RedisClient } from '../../src/state/redis';
import { ReferenceBook } from '../helpers/book-reference';
import {
  LEVELS,
  START_US,
  keys,
  lv,
  diff,
  depth20,
  ladder,
  dumpAll,
  expectSameDump,
  readBook,
  sorted,
  useBookRedis,
} from '../helpers/book-scripts';

// The order book while a re-anchor runs (reanchor:<S> exists): the in-sync book also keeps the diffs it applies,
// so that the swap's buffer bridges the snapshot (reanchor-swap-26.lua).

describe('order book against a real Redis', function () {
  this.timeout(120000);
  let redis: RedisClient;
  useBookRedis('book-reanchor-buffer', (client) => (redis = client));

  describe('a re-anchor running (reanchor:<S> exists): the in-sync book keeps the diffs it applies', () => {
    const S = 'BTCUSDT';
    const flag = keys.reanchorFlag(S);

    /** "U u" of every buffered entry, in list order. */
    async function bufferIds(): Promise<string[]> {
      const entries = await redis.lrange(keys.diffBuffer(S), 0, -1);
      return entries.map((e) => e.split(' ').slice(0, 2).join(' '));
    }

    /**
     * The swap's check (reanchor-swap-26.lua) of the buffer against a snapshot at L: the entries with u > L, the
     * first with U <= L + 1, each next one with U <= previous u + 1. Returns the ids of the remaining entries.
     */
    async function bridge(L: bigint): Promise<string[]> {
      const remaining = (await bufferIds())
        .map((e) => e.split(' ').map(BigInt) as [bigint, bigint])
        .filter(([, u]) => u > L);
      let previous = L;
      for (const [U, u] of remaining) {
        expect(U <= previous + 1n, `U ${U} bridges ${previous}`).to.equal(true);
        previous = u;
      }
      return remaining.map(([U, u]) => `${U} ${u}`);
    }

    async function anchored(ref: ReferenceBook, id: bigint, levels = 20): Promise<void> {
      expect(await anchorBook(redis, keys, S, ladder(levels, id), { levels: LEVELS })).to.include({
        code: 1,
      });
      ref.anchor(ladder(levels, id));
    }

    /** Applies a batch to Redis and to the reference (which models no keeping: only the book is compared). */
    async function apply(ref: ReferenceBook, messages: SbeMessage[], bufferMaxLength = 1000) {
      const result = await applyBookBatch(redis, keys, S, messages, { levels: LEVELS, bufferMaxLength });
      ref.applyDepthBatch(messages);
      const book = await readBook(redis, S);
      expect(book.bids, 'bids').to.deep.equal(sorted(ref.bids));
      expect(book.asks, 'asks').to.deep.equal(sorted(ref.asks));
      expect({ status: result.status, bookUpdateId: result.bookUpdateId }).to.deep.equal({
        status: ref.status,
        bookUpdateId: ref.bookId,
      });
      return result;
    }

    it('in sync with the flag: every applied diff (fast and slow path) is also buffered in u order; the buffer bridges the id at the flag; a gap follows them', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
      await anchored(ref, 100n);
      // No flag: applied, nothing kept.
      expect(await apply(ref, [diff(101n, 102n, [lv(60000n, 2n)], [])])).to.include({ applied: 1, kept: 0 });
      expect(await redis.exists(keys.diffBuffer(S))).to.equal(0);

      await redis.set(flag, 'x', 'EX', 300);
      const L = ref.bookId!; // the book id when the flag was taken: a snapshot taken after it has lastUpdateId >= L
      // A chained batch: the fast path.
      const fast = await apply(ref, [
        diff(103n, 105n, [lv(59999n, 3n)], [lv(60001n, 0n)]),
        diff(106n, 106n, [], [lv(60003n, 4n)]),
        diff(107n, 110n, [lv(60000n, 0n)], []),
      ]);
      expect(fast).to.include({
        applied: 3,
        kept: 3,
        buffered: 0,
        ignored: 0,
        status: 'in_sync',
        bufferLength: 3,
      });
      // A partly redelivered batch: the slow path; only the new diffs are applied and kept.
      const slow = await apply(ref, [
        diff(106n, 106n, [], [lv(60003n, 4n)]),
        diff(111n, 112n, [lv(59998n, 5n)], []),
        diff(113n, 113n, [], [lv(60002n, 6n)]),
      ]);
      expect(slow).to.include({
        applied: 2,
        kept: 2,
        buffered: 0,
        ignored: 1,
        status: 'in_sync',
        bufferLength: 5,
      });
      expect(await bufferIds()).to.deep.equal(['103 105', '106 106', '107 110', '111 112', '113 113']);
      // The entries are the diffs' own encoded strings (the same as ARGV).
      expect((await redis.lrange(keys.diffBuffer(S), 0, 0))[0]).to.equal(
        '103 105 1700000000000105 1 599.99000000 0.00000003 600.01000000 0.00000000',
      );
      expect(await bridge(L)).to.have.length(5);
      expect(await bridge(108n)).to.deep.equal(['107 110', '111 112', '113 113']); // a snapshot taken later
      expect(await redis.hgetall(keys.bookState(S))).to.include({
        status: 'in_sync',
        book_update_id: '113',
        last_seen_u: '113',
        buffered: '5',
      });
      // The flag is only read.
      expect(await redis.get(flag)).to.equal('x');

      // A diff opening a gap in the batch: the applied ones are kept first, the gap and the rest follow (order kept).
      const gap = await apply(ref, [
        diff(114n, 115n, [lv(59997n, 7n)], []),
        diff(118n, 119n, [lv(59996n, 8n)], []),
        diff(120n, 120n, [], []),
      ]);
      expect(gap).to.include({
        applied: 1,
        kept: 1,
        buffered: 2,
        gap: true,
        status: 'out_of_sync',
        bufferLength: 8,
      });
      expect(await bufferIds()).to.deep.equal([
        '103 105',
        '106 106',
        '107 110',
        '111 112',
        '113 113',
        '114 115',
        '118 119',
        '120 120',
      ]);
      expect(await redis.hgetall(keys.bookState(S))).to.include({
        reason: 'gap',
        book_update_id: '115',
        last_seen_u: '120',
        buffered: '8',
      });
      // Out of sync: buffered as before, flag or not.
      expect(await apply(ref, [diff(121n, 121n, [], [])])).to.include({
        buffered: 1,
        kept: 0,
        bufferLength: 9,
      });
    });

    it('with the flag, the fast path and the diff-by-diff path keep byte-identical buffers', async () => {
      const sim = new MarketSimulator({ seed: 9, symbols: [S], startTimeUs: START_US });
      const snapshot = {
        ...sim.depthSnapshot(S, 5000),
        priceExponent: -8,
        qtyExponent: -8,
        timeUs: START_US,
      };
      const messages: SbeMessage[] = [];
      while (messages.length < 200) {
        const m = sim.next().message;
        if (m.message === 'DepthDiffStreamEvent' || m.message === 'DepthSnapshotStreamEvent')
          messages.push(m);
      }
      const k = depthBatchKeys(keys, S);
      const run = async (slow: boolean) => {
        await redis.flushdb();
        await anchorBook(redis, keys, S, snapshot, { levels: LEVELS });
        await redis.set(flag, 'x');
        for (let i = 0; i < messages.length; i += 40) {
          const args = depthBatchArgs(S, messages.slice(i, i + 40), { levels: LEVELS });
          const count = Number(args[6]);
          const reply = await redis.applyDepthBatch(
            ...k,
            ...(slow ? [...args.slice(0, 7), '', ...args.slice(8, 8 + count)] : args),
          );
          expect(reply[13], 'kept').to.equal(count);
        }
        return dumpAll(redis);
      };
      const fast = await run(false);
      const slow = await run(true);
      expectSameDump(fast, slow, 'fast vs slow path, keeping');
      expect(await redis.hget(keys.bookState(S), 'status')).to.equal('in_sync');
      expect(await redis.llen(keys.diffBuffer(S))).to.be.greaterThan(50);
    });

    it('flag gone again: the next in-sync batch deletes the kept buffer (before a gap of its own is buffered)', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
      await anchored(ref, 100n);
      await redis.set(flag, 'x', 'EX', 300);
      await apply(ref, [diff(101n, 102n, [lv(60000n, 2n)], []), diff(103n, 103n, [], [])]);
      expect(await redis.llen(keys.diffBuffer(S))).to.equal(2);

      // The attempt is abandoned (flag released or expired): the next batch, even one applying nothing, cleans up.
      await redis.del(flag);
      const r = await apply(ref, [diff(102n, 103n, [], [])]);
      expect(r).to.include({ applied: 0, ignored: 1, kept: 0, bufferLength: 0, status: 'in_sync' });
      expect(await redis.exists(keys.diffBuffer(S))).to.equal(0);
      expect(await redis.hget(keys.bookState(S), 'buffered')).to.equal('0');
      // Then nothing is kept, and a redelivery writes nothing.
      expect(await apply(ref, [diff(104n, 105n, [lv(59990n, 1n)], [])])).to.include({ applied: 1, kept: 0 });
      expect(await redis.exists(keys.diffBuffer(S))).to.equal(0);
      const before = await dumpAll(redis);
      await apply(ref, [diff(104n, 105n, [lv(59990n, 1n)], [])]);
      expectSameDump(await dumpAll(redis), before, 'redelivery, no flag');

      // A left buffer the state does not count, or a count without a list: both cleaned up.
      await redis.rpush(keys.diffBuffer(S), '90 91 1 0');
      await apply(ref, [diff(106n, 106n, [], [])]);
      expect(await redis.exists(keys.diffBuffer(S))).to.equal(0);
      await redis.hset(keys.bookState(S), 'buffered', '7');
      expect(await apply(ref, [diff(107n, 107n, [], [])])).to.include({ bufferLength: 0 });
      expect(await redis.hget(keys.bookState(S), 'buffered')).to.equal('0');

      // A kept buffer, then the flag gone and a batch with a gap: only the gap's diffs are buffered.
      await redis.set(flag, 'x', 'EX', 300);
      await apply(ref, [diff(108n, 109n, [], [])]);
      expect(await bufferIds()).to.deep.equal(['108 109']);
      await redis.del(flag);
      const gap = await apply(ref, [diff(110n, 110n, [], []), diff(113n, 114n, [], [])]);
      expect(gap).to.include({ applied: 1, kept: 0, buffered: 1, gap: true, bufferLength: 1 });
      expect(await bufferIds()).to.deep.equal(['113 114']);
      expect(await redis.hget(keys.bookState(S), 'buffered')).to.equal('1');
      // Out of sync the buffer stays, flag or not.
      expect(await apply(ref, [diff(115n, 115n, [], [])])).to.include({ buffered: 1, bufferLength: 2 });
    });

    it('with the flag, a redelivered batch keeps nothing twice and writes nothing; one EXISTS per in-sync call', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
      await anchored(ref, 100n);
      await redis.set(flag, 'x', 'EX', 300);
      const batch = [
        diff(101n, 102n, [lv(60000n, 2n)], []),
        diff(103n, 104n, [], [lv(60001n, 5n)]),
        depth20(104n, [lv(60000n, 2n)], [lv(60001n, 5n)]),
      ];
      expect(await apply(ref, batch)).to.include({ applied: 2, kept: 2 });
      const before = await dumpAll(redis);
      for (const again of [batch, batch.slice(1), batch.slice(0, 1), [...batch, ...batch]]) {
        const r = await apply(ref, again);
        expect(r).to.include({ applied: 0, kept: 0, buffered: 0, bufferLength: 2 });
        expectSameDump(await dumpAll(redis), before, 'redelivery with the flag');
      }
      expect(await bufferIds()).to.deep.equal(['101 102', '103 104']);

      // The cost: one EXISTS per call in sync that bridges the book (flag or not), none out of sync. A chunk goes
      // first in the net form: with the flag it is refused after its EXISTS and sent again in the full form (two);
      // one that does not bridge (the gap) is refused before any EXISTS, and its full form counts one.
      await redis.config('RESETSTAT');
      await apply(ref, [diff(105n, 105n, [], [])]);
      await redis.del(flag);
      await apply(ref, [diff(106n, 106n, [], [])]);
      await apply(ref, [diff(107n, 107n, [], [])]);
      await apply(ref, [diff(110n, 110n, [], [])]); // gap
      await apply(ref, [diff(111n, 111n, [], [])]); // out of sync
      const stats = (await redis.info('commandstats'))
        .split('\r\n')
        .find((line) => line.startsWith('cmdstat_exists:'));
      expect(stats, 'EXISTS calls').to.match(/^cmdstat_exists:calls=5,/);
    });

    it('with the flag, the buffer bound holds: the newest diffs are kept, the dropped ones counted', async () => {
      const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 3 });
      await anchored(ref, 100n);
      await redis.set(flag, 'x', 'EX', 300);
      const diffs = [1n, 2n, 3n, 4n, 5n].map((k) =>
        diff(99n + 2n * k, 100n + 2n * k, [lv(59990n + k, k)], []),
      );
      expect(await apply(ref, diffs.slice(0, 2), 3)).to.include({ kept: 2, overflow: 0, bufferLength: 2 });
      expect(await apply(ref, diffs.slice(2), 3)).to.include({
        applied: 3,
        kept: 3,
        overflow: 2,
        bufferLength: 3,
        status: 'in_sync',
      });
      expect(await bufferIds()).to.deep.equal(['105 106', '107 108', '109 110']);
      expect(await redis.hgetall(keys.bookState(S))).to.include({
        buffered: '3',
        buffer_overflow: '2',
        book_update_id: '110',
      });
      // A snapshot at the flag's id (100) no longer bridges; one at 104 does.
      expect((await bufferIds())[0]!.startsWith('105 ')).to.equal(true);
      expect(await bridge(104n)).to.have.length(3);
    });

    /** A REST depth snapshot of the reference book as it is (exponents -8). */
    function snapshotOf(ref: ReferenceBook, timeUs: bigint): RestDepthSnapshot {
      const side = (m: ReadonlyMap<string, string>) =>
        [...m].map(([p, q]) => lv(parseDecimal(p, -8), parseDecimal(q, -8)));
      return {
        lastUpdateId: ref.bookId!,
        priceExponent: -8,
        qtyExponent: -8,
        bids: side(ref.bids),
        asks: side(ref.asks),
        timeUs,
      };
    }

    for (const mode of ['reference', 'simulator'] as const) {
      it(`end to end (${mode} snapshot): flag, snapshot, more in-sync diffs, build, swap -> the live book equals the reference`, async () => {
        const sim = new MarketSimulator({ seed: 21, symbols: [S], startTimeUs: START_US });
        const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
        const restSnapshot = (): RestDepthSnapshot => ({
          ...sim.depthSnapshot(S, 5000),
          priceExponent: sim.priceExponent,
          qtyExponent: sim.qtyExponent,
          timeUs: sim.currentTimeUs,
        });
        const feed = async (events: number) => {
          let batch: SbeMessage[] = [];
          for (let i = 0; i < events; i++) {
            const event = sim.next();
            if (event.stream === 'depth') batch.push(event.message);
            if (batch.length === 30 || (i === events - 1 && batch.length > 0)) {
              const r = await applyBookBatch(redis, keys, S, batch, { levels: LEVELS });
              ref.applyDepthBatch(batch);
              expect(r.status).to.equal('in_sync');
              batch = [];
            }
          }
        };
        const first = restSnapshot();
        expect(await anchorBook(redis, keys, S, first, { levels: LEVELS })).to.include({ code: 1 });
        ref.anchor(first);
        await feed(400);
        expect(await redis.exists(keys.diffBuffer(S))).to.equal(0);

        await redis.set(flag, 'x', 'EX', 300); // the listener takes the flag, then fetches the snapshot
        const snapshot = mode === 'reference' ? snapshotOf(ref, ref.bookTs!) : restSnapshot();
        await feed(400);
        const kept = await redis.llen(keys.diffBuffer(S));
        expect(kept, 'diffs kept since the flag').to.be.greaterThan(10);
        expect(await redis.hget(keys.bookState(S), 'status')).to.equal('in_sync');

        const built = await buildTemporaryState(redis, keys, S, { depth: snapshot, trades: [] });
        const result = await swapReanchor(redis, keys, S, {
          levels: LEVELS,
          expectedLastUpdateId: snapshot.lastUpdateId,
        });
        expect(result.outcome).to.equal('swapped');
        // Every kept diff: replayed by the swap, or left behind (covered by the snapshot or replayed by the build).
        expect(result.diffsApplied + result.diffsDropped).to.equal(kept);
        expect(built.diffsReplayed + result.diffsApplied).to.be.greaterThan(0);
        expect(result.bookUpdateId).to.equal(ref.bookId);
        const book = await readBook(redis, S);
        expect(book.bids, 'bids after the swap').to.deep.equal(sorted(ref.bids));
        expect(book.asks, 'asks after the swap').to.deep.equal(sorted(ref.asks));
        expect(await redis.hgetall(keys.bookState(S))).to.include({
          status: 'in_sync',
          book_update_id: String(ref.bookId),
          buffered: '0',
        });
        expect(await redis.exists(keys.diffBuffer(S), flag)).to.equal(0);

        // The stream continues on the swapped book, in sync, keeping nothing.
        await feed(200);
        expect(await redis.exists(keys.diffBuffer(S))).to.equal(0);
        const after = await readBook(redis, S);
        expect(after.bids).to.deep.equal(sorted(ref.bids));
        expect(after.asks).to.deep.equal(sorted(ref.asks));
      });
    }
  });
});
