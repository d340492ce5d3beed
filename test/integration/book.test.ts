import crypto from 'node:crypto';
import { expect } from 'chai';
import { parseConfig } from '../../src/config/config';
import { buildTemporaryState } from '../../src/reanchor/build';
import { swapReanchor } from '../../src/reanchor/swap';
import { MarketSimulator, Prng } from '../../src/replay/simulator';
import { formatDecimal, parseDecimal } from '../../src/sbe/decimal';
import { canonical8 } from '../helpers/canonical';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
} from '../../src/sbe/messages';
import {
  anchorBook,
  anchorKeys,
  applyBestBidAskBatch,
  applyBookBatch,
  BookScriptError,
  depthBatchArgs,
  depthBatchKeys,
  type DepthBatchResult,
  type RestDepthSnapshot,
} from '../../src/state/book';
import { Keys } from '../../src/state/keys';
import { createRedisClient, loadScriptSources } from '../../src/state/redis';
import type { RedisClient } from '../../src/state/redis';
import { ReferenceBook, referenceMid, referenceSpread } from '../helpers/book-reference';
import { messagesBySymbol } from '../helpers/messages';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// The order-book scripts (apply-depth-batch-12, apply-best-bid-ask-5, anchor-book-11) against a real redis-server,
// compared with an independent in-memory reference (test/helpers/book-reference.ts), and, where the simulator
// knows it, with the true book.

const LEVELS = 10;
const START_US = 1_700_000_000_000_000n;
const METRICS = new Set(['ob_imbalance', 'bid_strength', 'ask_strength']);
const keys = new Keys({ clusterMode: false });

function lv(price: bigint, qty: bigint): PriceLevel {
  return { priceMantissa: price, qtyMantissa: qty };
}

function diff(
  U: bigint,
  u: bigint,
  bids: PriceLevel[],
  asks: PriceLevel[],
  symbol = 'BTCUSDT',
): DepthDiffStreamEvent {
  return {
    message: 'DepthDiffStreamEvent',
    eventTime: START_US + u,
    firstBookUpdateId: U,
    lastBookUpdateId: u,
    priceExponent: -2,
    qtyExponent: -8,
    bids,
    asks,
    symbol,
  };
}

function depth20(
  id: bigint,
  bids: PriceLevel[],
  asks: PriceLevel[],
  symbol = 'BTCUSDT',
): DepthSnapshotStreamEvent {
  return {
    message: 'DepthSnapshotStreamEvent',
    eventTime: START_US + id,
    bookUpdateId: id,
    priceExponent: -2,
    qtyExponent: -8,
    bids,
    asks,
    symbol,
  };
}

function bba(
  id: bigint,
  bid: bigint,
  ask: bigint,
  priceExponent = -2,
  symbol = 'BTCUSDT',
): BestBidAskStreamEvent {
  return {
    message: 'BestBidAskStreamEvent',
    // Ids beyond 2^53 (tested below) keep a time of this century.
    eventTime: START_US + (id % 1_000_000_000n),
    bookUpdateId: id,
    priceExponent,
    qtyExponent: -8,
    bidPriceMantissa: bid,
    bidQtyMantissa: 100_000_000n,
    askPriceMantissa: ask,
    askQtyMantissa: 200_000_000n,
    symbol,
  };
}

function rest(lastUpdateId: bigint, bids: PriceLevel[], asks: PriceLevel[]): RestDepthSnapshot {
  return { lastUpdateId, priceExponent: -2, qtyExponent: -8, bids, asks, timeUs: START_US + lastUpdateId };
}

/** A ladder of `n` levels per side around 600.00 / 600.01 (mantissas at -2, quantities at -8). */
function ladder(n: number, lastUpdateId: bigint): RestDepthSnapshot {
  const bids: PriceLevel[] = [];
  const asks: PriceLevel[] = [];
  for (let i = 0n; i < BigInt(n); i++) {
    bids.push(lv(60000n - i, 100_000_000n + i));
    asks.push(lv(60001n + i, 200_000_000n + i));
  }
  return rest(lastUpdateId, bids, asks);
}

type KeyDump = Record<string, string>;

/** DUMP of every key: byte-for-byte state. */
async function dumpAll(redis: RedisClient): Promise<KeyDump> {
  const out: KeyDump = {};
  for (const key of (await redis.keys('*')).sort()) {
    const dump = await redis.dumpBuffer(key);
    out[key] = dump === null ? '' : dump.toString('hex');
  }
  return out;
}

/** Byte-identical, naming the keys that differ. */
function expectSameDump(after: KeyDump, before: KeyDump, label: string): void {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const changed = names.filter((k) => before[k] !== after[k]);
  expect(changed, `${label}: keys changed`).to.deep.equal([]);
}

/** A script call refused with a BOOKARGS error reply. */
async function expectBookArgs(call: () => Promise<unknown>, label: string): Promise<void> {
  let error: unknown;
  try {
    await call();
  } catch (err) {
    error = err;
  }
  expect(String(error), label).to.match(/^ReplyError: BOOKARGS /);
}

interface RedisBook {
  bids: Record<string, string>;
  asks: Record<string, string>;
}

/** The full book in Redis; checks that each side's index holds exactly its prices, scored by their value. */
async function readBook(redis: RedisClient, symbol: string): Promise<RedisBook> {
  const out: RedisBook = { bids: {}, asks: {} };
  for (const side of ['bids', 'asks'] as const) {
    const levels = await redis.hgetall(keys.bookLevels(symbol, side));
    const index = await redis.zrange(keys.bookIndex(symbol, side), 0, -1, 'WITHSCORES');
    const members: string[] = [];
    for (let i = 0; i < index.length; i += 2) {
      const member = index[i]!;
      members.push(member);
      expect(Number(index[i + 1]), `${side} score of ${member}`).to.equal(Number(member));
    }
    expect(members.slice().sort(), `${symbol} ${side} index = hash fields`).to.deep.equal(
      Object.keys(levels).sort(),
    );
    out[side] = Object.fromEntries(Object.entries(levels).sort(([a], [b]) => a.localeCompare(b)));
  }
  return out;
}

function sorted(map: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries([...map.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

/** Redis equals the reference: both sides of the full book, ob:, the state, the buffer. */
async function expectReference(redis: RedisClient, symbol: string, ref: ReferenceBook, label: string) {
  const book = await readBook(redis, symbol);
  expect(book.bids, `${label}: bids`).to.deep.equal(sorted(ref.bids));
  expect(book.asks, `${label}: asks`).to.deep.equal(sorted(ref.asks));

  const ob = await redis.hgetall(keys.orderBook(symbol));
  const expected = Object.fromEntries(ref.ob);
  expect(Object.keys(ob).sort(), `${label}: ob fields`).to.deep.equal(Object.keys(expected).sort());
  for (const [field, value] of Object.entries(expected)) {
    if (METRICS.has(field)) {
      expect(Number(ob[field]), `${label}: ${field} ${ob[field]}`).to.equal(Number(value));
      expect(Number.isFinite(Number(ob[field]))).to.equal(true);
    } else expect(ob[field], `${label}: ob ${field}`).to.equal(value);
  }

  const state = await redis.hgetall(keys.bookState(symbol));
  const view = ref.stateView();
  const defaults: Record<string, string> = { gaps: '0', crossed: '0', buffer_overflow: '0', buffered: '0' };
  const actual = Object.fromEntries(Object.keys(view).map((k) => [k, state[k] ?? defaults[k] ?? '']));
  if (Object.keys(state).length === 0)
    Object.assign(actual, { status: 'out_of_sync', reason: 'no_snapshot' });
  expect(actual, `${label}: state`).to.deep.equal(view);

  const buffer = await redis.lrange(keys.diffBuffer(symbol), 0, -1);
  expect(
    buffer.map((entry) => entry.split(' ').slice(0, 3).join(' ')),
    `${label}: buffer`,
  ).to.deep.equal(ref.buffer.map((d) => `${d.firstBookUpdateId} ${d.lastBookUpdateId} ${d.eventTime}`));
  // Each entry's levels, parsed here independently of the encoder.
  buffer.forEach((entry, i) => {
    const d = ref.buffer[i]!;
    const parts = entry.split(' ');
    const nBids = Number(parts[3]);
    const pairs: string[][] = [];
    for (let k = 4; k < parts.length; k += 2) pairs.push([parts[k]!, parts[k + 1]!]);
    const fmt = (l: PriceLevel) => [
      canonical8(l.priceMantissa, d.priceExponent),
      canonical8(l.qtyMantissa, d.qtyExponent),
    ];
    expect(pairs.slice(0, nBids)).to.deep.equal(d.bids.map(fmt));
    expect(pairs.slice(nBids)).to.deep.equal(d.asks.map(fmt));
  });
}

function expectBatchResult(
  actual: DepthBatchResult,
  ref: ReferenceBook,
  expected: ReturnType<ReferenceBook['applyDepthBatch']>,
  label: string,
) {
  expect(
    {
      applied: actual.applied,
      ignored: actual.ignored,
      buffered: actual.buffered,
      gap: actual.gap,
      crossed: actual.crossed,
      overflow: actual.overflow,
      status: actual.status,
      reason: actual.reason,
      bookUpdateId: actual.bookUpdateId,
      bufferLength: actual.bufferLength,
    },
    label,
  ).to.deep.equal({
    ...expected,
    status: ref.status,
    reason: ref.reason,
    bookUpdateId: ref.bookId,
    bufferLength: ref.buffer.length,
  });
}

describe('order book against a real Redis', function () {
  this.timeout(120000);
  let server: TestRedis;
  let redis: RedisClient;

  before(async () => {
    server = await startTestRedis('book-it');
    const port = server.port;
    redis = createRedisClient(parseConfig({ redis: { port } }).redis, {
      connectionName: 'book-integration-test',
    });
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushdb();
  });

  /** Applies one depth batch of one symbol to Redis and the reference and compares the replies. */
  async function depthBoth(
    symbol: string,
    messages: SbeMessage[],
    ref: ReferenceBook,
    label: string,
    bufferMaxLength?: number,
  ) {
    const options = { levels: LEVELS, ...(bufferMaxLength === undefined ? {} : { bufferMaxLength }) };
    const actual = await applyBookBatch(redis, keys, symbol, messages, options);
    const expected = ref.applyDepthBatch(messages);
    expectBatchResult(actual, ref, expected, label);
    return actual;
  }

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
