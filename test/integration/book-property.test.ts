import { expect } from 'chai';
import { MarketSimulator, Prng } from '../../src/replay/simulator';
import { formatDecimal } from '../../src/sbe/decimal';
import type { PriceLevel, SbeMessage } from '../../src/sbe/messages';
import { anchorBook, applyBestBidAskBatch, type RestDepthSnapshot } from '../../src/state/book';
import type { RedisClient } from '../../src/state/redis';
import { ReferenceBook } from '../helpers/book-reference';
import { messagesBySymbol } from '../helpers/messages';
import {
  LEVELS,
  START_US,
  keys,
  dumpAll,
  expectSameDump,
  readBook,
  expectReference,
  useBookRedis,
  depthBoth as depthBothIn,
  type DepthBoth,
} from '../helpers/book-scripts';

// The order-book scripts (apply-depth-batch-12, apply-best-bid-ask-5, anchor-book-11) on simulated streams with
// duplicates, redeliveries, reordering and gaps, compared with the in-memory reference
// (test/helpers/book-reference.ts) and, where the simulator knows it, with the true book.

describe('order book against a real Redis', function () {
  this.timeout(120000);
  let redis: RedisClient;
  useBookRedis('book-property', (client) => (redis = client));

  /** depthBoth (test/helpers/book-scripts.ts) on this file's Redis. */
  const depthBoth: DepthBoth = (...args) => depthBothIn(redis, ...args);

  describe('property: simulated streams with duplicates, redeliveries, reordering and gaps equal the reference', () => {
    const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
    const coverage = { anchors: 0, rejected: 0, redeliveries: 0, gaps: 0, overflow: 0, truth: 0 };

    for (let seed = 1; seed <= 24; seed++) {
      const gapMode = seed % 3 === 0;
      it(`seed ${seed}${gapMode ? ' (diffs lost: gaps and re-anchors)' : ''}`, async () => {
        const rng = new Prng(seed * 7919);
        const sim = new MarketSimulator({
          seed,
          symbols: SYMBOLS,
          startTimeUs: START_US,
          actionsPerSecond: 200 + rng.int(800),
          diffIntervalMs: [20, 25, 50, 100][rng.int(4)]!,
          snapshotIntervalMs: [50, 100][rng.int(2)]!,
        });
        // Small bounds in some seeds: the buffer overflows while out of sync and a newer snapshot is needed.
        const bufferMax = gapMode && seed % 2 === 0 ? 2 + rng.int(8) : 30 + rng.int(300);
        // The streams, a REST snapshot per symbol every ~300 events, and the true book at each symbol's last diff.
        const depth: Array<{ index: number; message: SbeMessage }> = [];
        const bbaStream: Array<{ index: number; message: SbeMessage }> = [];
        const snapshots = new Map<string, Array<{ index: number; snapshot: RestDepthSnapshot }>>();
        const truth = new Map<string, { u: bigint; snapshot: RestDepthSnapshot }>();
        const events = 2500 + rng.int(2000);
        for (let i = 0; i < events; i++) {
          const event = sim.next();
          const m = event.message;
          if (event.stream === 'depth') {
            if (gapMode && m.message === 'DepthDiffStreamEvent' && rng.float() < 0.04) continue; // lost
            depth.push({ index: i, message: m });
          } else if (event.stream === 'bestbidask') bbaStream.push({ index: i, message: m });
          if (m.message === 'DepthDiffStreamEvent' && sim.pending === 0) {
            const snap = sim.depthSnapshot(m.symbol, 5000);
            truth.set(m.symbol, {
              u: m.lastBookUpdateId,
              snapshot: {
                ...snap,
                priceExponent: sim.priceExponent,
                qtyExponent: sim.qtyExponent,
                timeUs: m.eventTime,
              },
            });
          }
          if (rng.float() < 1 / 300) {
            for (const symbol of SYMBOLS) {
              const list = snapshots.get(symbol) ?? [];
              list.push({
                index: i,
                snapshot: {
                  ...sim.depthSnapshot(symbol, 5000),
                  priceExponent: sim.priceExponent,
                  qtyExponent: sim.qtyExponent,
                  timeUs: sim.currentTimeUs,
                },
              });
              snapshots.set(symbol, list);
            }
          }
        }

        // Batches per stream (each with both symbols), duplicates inside, delivered in generation order with
        // adjacent batches sometimes swapped.
        type Batch = { stream: 'depth' | 'bba'; last: number; messages: SbeMessage[] };
        const batches: Batch[] = [];
        for (const [stream, list] of [
          ['depth', depth],
          ['bba', bbaStream],
        ] as const) {
          for (let i = 0; i < list.length;) {
            const size = 1 + rng.int(rng.float() < 0.2 ? 120 : 40);
            const slice = list.slice(i, i + size);
            const messages = slice.map((e) => e.message);
            if (rng.float() < 0.2)
              for (let k = 0; k < 3; k++)
                messages.splice(rng.int(messages.length + 1), 0, messages[rng.int(messages.length)]!);
            batches.push({ stream, last: slice[slice.length - 1]!.index, messages });
            i += size;
          }
        }
        batches.sort((a, b) => a.last - b.last);
        for (let i = 0; i + 1 < batches.length; i++) {
          if (rng.float() < 0.08) [batches[i], batches[i + 1]] = [batches[i + 1]!, batches[i]!];
        }

        const refs = new Map(SYMBOLS.map((s) => [s, new ReferenceBook({ levels: LEVELS, bufferMax })]));
        const used = new Map<string, number>(); // index of the last snapshot tried per symbol
        const delivered: Batch[] = [];
        let position = 0;
        let anchors = 0;
        let rejected = 0;
        let redeliveries = 0;

        const deliver = async (batch: Batch, label: string) => {
          for (const [symbol, messages] of messagesBySymbol(batch.messages)) {
            const ref = refs.get(symbol)!;
            if (batch.stream === 'depth') {
              await depthBoth(symbol, messages, ref, label, bufferMax);
            } else {
              const actual = await applyBestBidAskBatch(redis, keys, symbol, messages);
              const [applied, bestWritten] = ref.applyBestBidAskBatch(messages);
              expect(actual, label).to.deep.equal({ applied, bestWritten });
            }
          }
        };

        for (const [b, batch] of batches.entries()) {
          await deliver(batch, `seed ${seed} batch ${b}`);
          delivered.push(batch);
          position = Math.max(position, batch.last);

          // The re-anchor: an out-of-sync symbol takes the newest snapshot taken by now, once.
          for (const symbol of SYMBOLS) {
            const ref = refs.get(symbol)!;
            const list = snapshots.get(symbol) ?? [];
            let k = -1;
            for (let j = 0; j < list.length; j++) if (list[j]!.index <= position) k = j;
            if (ref.status === 'in_sync' || k < 0 || k === used.get(symbol)) continue;
            used.set(symbol, k);
            const snapshot = list[k]!.snapshot;
            const before = await dumpAll(redis);
            const result = await anchorBook(redis, keys, symbol, snapshot, { levels: LEVELS });
            const expected = ref.anchor(snapshot);
            expect(
              { code: result.code, needed: result.neededLastUpdateId },
              `seed ${seed} anchor ${symbol}`,
            ).to.deep.equal(expected);
            if (result.code === 1) anchors++;
            else {
              rejected++;
              expectSameDump(await dumpAll(redis), before, 'a rejected anchor changes nothing');
            }
            await expectReference(redis, symbol, ref, `seed ${seed} after anchor ${symbol}`);
          }

          // A redelivery of earlier batches (a restarted worker) leaves every key byte-identical.
          if (rng.float() < 0.1) {
            redeliveries++;
            const before = await dumpAll(redis);

            const from = Math.max(0, delivered.length - 1 - rng.int(6));
            for (const again of delivered.slice(from)) await deliver(again, `seed ${seed} redelivery`);
            expectSameDump(await dumpAll(redis), before, `seed ${seed}: redelivery after batch ${b}`);
          }
          if (b % 25 === 0)
            for (const s of SYMBOLS) await expectReference(redis, s, refs.get(s)!, `seed ${seed} batch ${b}`);
        }

        for (const symbol of SYMBOLS) {
          const ref = refs.get(symbol)!;
          await expectReference(redis, symbol, ref, `seed ${seed} end`);
          // Still out of sync (its last snapshot was tried already): a snapshot at the last diff's id anchors it.
          if (ref.status === 'out_of_sync') {
            const t = truth.get(symbol)!;
            const result = await anchorBook(redis, keys, symbol, t.snapshot, { levels: LEVELS });
            expect({ code: result.code, needed: result.neededLastUpdateId }).to.deep.equal(
              ref.anchor(t.snapshot),
            );
            expect(result.code, `${symbol}: final anchor`).to.equal(1);
            await expectReference(redis, symbol, ref, `seed ${seed} final anchor`);
          }
          // In sync at the id of the true book (the simulator's, taken at the symbol's last diff): equal to it.
          const t = truth.get(symbol)!;
          if (ref.status === 'in_sync' && ref.bookId === t.u) {
            const fmt = (levels: readonly PriceLevel[]): Record<string, string> => {
              const pairs: Array<[string, string]> = levels.map((l) => [
                formatDecimal(l.priceMantissa, sim.priceExponent),
                formatDecimal(l.qtyMantissa, sim.qtyExponent),
              ]);
              return Object.fromEntries(pairs.sort(([a], [b]) => a.localeCompare(b)));
            };
            const book = await readBook(redis, symbol);
            expect(book.bids, `${symbol} = true book`).to.deep.equal(fmt(t.snapshot.bids));
            expect(book.asks, `${symbol} = true book`).to.deep.equal(fmt(t.snapshot.asks));
          }
        }
        expect(anchors, 'anchors').to.be.greaterThan(0);
        coverage.anchors += anchors;
        coverage.rejected += rejected;
        coverage.redeliveries += redeliveries;
        for (const s of SYMBOLS) {
          const r = refs.get(s)!;
          coverage.gaps += r.gaps;
          coverage.overflow += r.overflow;
          if (truth.get(s)!.u === r.bookId) coverage.truth++;
        }

        // Redelivery of any prefix of everything delivered leaves every key byte-identical.
        const final = await dumpAll(redis);
        const cut = 1 + rng.int(delivered.length);
        for (const again of delivered.slice(0, cut)) await deliver(again, `seed ${seed} prefix`);
        expectSameDump(await dumpAll(redis), final, `seed ${seed}: prefix of ${cut} batches`);
      });
    }

    it('the seeds above exercised gaps, buffer overflow, rejected anchors, redeliveries and the true book', () => {
      expect(coverage.gaps).to.be.greaterThan(10);
      expect(coverage.overflow).to.be.greaterThan(10);
      expect(coverage.rejected).to.be.greaterThan(5);
      expect(coverage.redeliveries).to.be.greaterThan(50);
      expect(coverage.anchors).to.be.greaterThan(48);
      expect(
        coverage.truth,
        'symbols in sync at their last diff, compared with the true book',
      ).to.be.greaterThan(30);
    });
  });
});
