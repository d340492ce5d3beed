import { expect } from 'chai';
import { parseConfig } from '../../src/config/config';
import { buildTemporaryState } from '../../src/reanchor/build';
import { swapReanchor } from '../../src/reanchor/swap';
import { MarketSimulator, type BookSnapshot } from '../../src/replay/simulator';
import { parseDecimal } from '../../src/sbe/decimal';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
} from '../../src/sbe/messages';
import {
  applyBestBidAskBatch,
  applyBookBatch,
  anchorBook,
  depthBatchArgs,
  depthBatchKeys,
  type RestDepthSnapshot,
} from '../../src/state/book';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { ReferenceBook } from '../helpers/book-reference';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// One price, one spelling, whatever exponent carried it: books anchored on a REST snapshot (exponent -8, as
// src/rest/client.ts parses it) through the re-anchor build + swap, then fed diffs at -2/-5, at -8/-8, and switching
// exponents mid-stream, against a real redis-server. Redis is read BY VALUE (exact decimals at scale 8, BigInt) and
// compared with the independent reference book (test/helpers/book-reference.ts) and with the simulator's true book;
// separately, every hash field, zset member and quantity must have exactly 8 fraction digits and every price one
// field. Each case runs through the three ways the depth script applies diffs (see apply()).

const S = 'BTCUSDT';
const LEVELS = 10;
const START_US = 1_700_000_000_000_000n;
const CANONICAL = /^\d+\.\d{8}$/;
const METRICS = new Set(['ob_imbalance', 'bid_strength', 'ask_strength']);
const keys = new Keys({ clusterMode: false });
const FORMS = ['net', 'full', 'diff-by-diff'] as const;
type Form = (typeof FORMS)[number];
type Exponents = readonly [price: number, qty: number];

/** mantissa x 10^from as a mantissa at `to`, exactly (throws when the value needs more digits). */
function rescale(mantissa: bigint, from: number, to: number): bigint {
  if (to <= from) return mantissa * 10n ** BigInt(from - to);
  const divisor = 10n ** BigInt(to - from);
  if (mantissa % divisor !== 0n) throw new Error(`${mantissa}e${from} is not exact at e${to}`);
  return mantissa / divisor;
}

function levelsAt(levels: readonly PriceLevel[], from: Exponents, to: Exponents): PriceLevel[] {
  return levels.map((l) => ({
    priceMantissa: rescale(l.priceMantissa, from[0], to[0]),
    qtyMantissa: rescale(l.qtyMantissa, from[1], to[1]),
  }));
}

/** The same depth event, its values unchanged, carried at other exponents. */
function atExponents<T extends DepthDiffStreamEvent | DepthSnapshotStreamEvent>(m: T, to: Exponents): T {
  const from: Exponents = [m.priceExponent, m.qtyExponent];
  return {
    ...m,
    priceExponent: to[0],
    qtyExponent: to[1],
    bids: levelsAt(m.bids, from, to),
    asks: levelsAt(m.asks, from, to),
  };
}

/** An exact decimal string as its value at `scale` fraction digits (throws when it has more). */
function valueAt(text: string, scale = 8): bigint {
  return parseDecimal(text, -scale);
}

function level(price: string, qty: string, [pe, qe]: Exponents): PriceLevel {
  return { priceMantissa: parseDecimal(price, pe), qtyMantissa: parseDecimal(qty, qe) };
}

type ValueSide = Map<bigint, bigint>;
interface ValueBook {
  readonly bids: ValueSide;
  readonly asks: ValueSide;
}

function sideValues(entries: Iterable<[string, string]>): ValueSide {
  return new Map([...entries].map(([p, q]) => [valueAt(p), valueAt(q)]));
}

function sortedEntries(side: ValueSide): Array<[string, string]> {
  return [...side]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([p, q]) => [p.toString(), q.toString()]);
}

function simulatorBook(snapshot: BookSnapshot): ValueBook {
  // The simulator works at -8/-8: its mantissas are the values at scale 8.
  const side = (levels: readonly PriceLevel[]) =>
    new Map(levels.map((l) => [l.priceMantissa, l.qtyMantissa] as [bigint, bigint]));
  return { bids: side(snapshot.bids), asks: side(snapshot.asks) };
}

describe('books built from a REST snapshot plus diffs at exponents -2/-5, -8/-8 and a change mid-stream equal the reference by value, one field per price', function () {
  this.timeout(120_000);
  let server: TestRedis;
  let redis: RedisClient;

  before(async () => {
    server = await startTestRedis('book-exponents');
    const port = server.port;
    redis = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: 'book-exponents' });
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushdb();
  });

  /**
   * The full book in Redis, by value. Checks the one spelling: every field, quantity and zset member has exactly 8
   * fraction digits, no two fields of a side have the same value, the zset members are the hash fields and each
   * score is its member's value.
   */
  async function readBook(label: string): Promise<ValueBook> {
    const out: Partial<Record<'bids' | 'asks', ValueSide>> = {};
    for (const side of ['bids', 'asks'] as const) {
      const hash = await redis.hgetall(keys.bookLevels(S, side));
      const fields = Object.keys(hash);
      for (const [price, qty] of Object.entries(hash)) {
        expect(price, `${label}: ${side} field`).to.match(CANONICAL);
        expect(qty, `${label}: ${side} ${price} quantity`).to.match(CANONICAL);
      }
      const values = sideValues(Object.entries(hash));
      expect(values.size, `${label}: ${side} has two fields for one price`).to.equal(fields.length);
      const index = await redis.zrange(keys.bookIndex(S, side), 0, -1, 'WITHSCORES');
      const members: string[] = [];
      for (let i = 0; i < index.length; i += 2) {
        members.push(index[i]!);
        expect(Number(index[i + 1]), `${label}: ${side} score of ${index[i]}`).to.equal(Number(index[i]));
      }
      expect(members.slice().sort(), `${label}: ${side} zset members = hash fields`).to.deep.equal(
        fields.slice().sort(),
      );
      out[side] = values;
    }
    return { bids: out.bids!, asks: out.asks! };
  }

  function expectSameBook(actual: ValueBook, expected: ValueBook, label: string): void {
    expect(sortedEntries(actual.bids), `${label}: bids`).to.deep.equal(sortedEntries(expected.bids));
    expect(sortedEntries(actual.asks), `${label}: asks`).to.deep.equal(sortedEntries(expected.asks));
  }

  /** Redis equals the reference by value: the full book, then every ob:<S> field (prices in one spelling). */
  async function expectReference(ref: ReferenceBook, label: string): Promise<ValueBook> {
    const book = await readBook(label);
    expectSameBook(book, { bids: sideValues(ref.bids), asks: sideValues(ref.asks) }, label);
    const ob = await redis.hgetall(keys.orderBook(S));
    const expected = Object.fromEntries(ref.ob);
    expect(Object.keys(ob).sort(), `${label}: ob fields`).to.deep.equal(Object.keys(expected).sort());
    for (const [field, want] of Object.entries(expected)) {
      const got = ob[field]!;
      if (METRICS.has(field)) {
        expect(Number(got), `${label}: ob ${field}`).to.equal(Number(want));
      } else if (/^(bid|ask)\d+_[pq]$|^best_(bid|ask)(_qty)?$|^spread$/.test(field) && want !== '') {
        expect(got, `${label}: ob ${field}`).to.match(CANONICAL);
        expect(valueAt(got), `${label}: ob ${field} = ${got}`).to.equal(valueAt(want));
      } else if (field === 'mid_price' && want !== '') {
        // Exact: 8 fraction digits, or 9 when the sum of the two prices is odd at scale 8.
        expect(got, `${label}: ob mid_price`).to.match(/^\d+\.\d{8}\d?$/);
        expect(valueAt(got, 9), `${label}: ob mid_price = ${got}`).to.equal(valueAt(want, 9));
      } else {
        expect(got, `${label}: ob ${field}`).to.equal(want);
      }
    }
    const top = ref.top(LEVELS);
    expect(valueAt(ob.best_bid!), `${label}: best bid`).to.equal(valueAt(top.bids[0]![0]));
    expect(valueAt(ob.best_ask!), `${label}: best ask`).to.equal(valueAt(top.asks[0]![0]));
    expect(valueAt(ob.spread!), `${label}: spread`).to.equal(
      valueAt(top.asks[0]![0]) - valueAt(top.bids[0]![0]),
    );
    expect(valueAt(ob.mid_price!, 9) * 2n, `${label}: mid`).to.equal(
      (valueAt(top.asks[0]![0]) + valueAt(top.bids[0]![0])) * 10n,
    );
    return book;
  }

  /**
   * A depth batch to Redis and to the reference; returns the book status after it. `net` and `full` are the forms
   * applyBookBatch sends (the script applies a chained full-form chunk through its net effect too); `diff-by-diff`
   * calls the script with the full form minus the net effect, so that it parses and applies every diff's string.
   * Returns the book status after the batch and the net-form calls the script refused.
   */
  async function apply(
    messages: SbeMessage[],
    ref: ReferenceBook,
    form: Form,
  ): Promise<{ status: string; resent: number }> {
    let status: string;
    let resent = 0;
    if (form === 'diff-by-diff') {
      const args = depthBatchArgs(S, messages, { levels: LEVELS });
      const count = Number(args[6]);
      const reply = await redis.applyDepthBatch(
        ...depthBatchKeys(keys, S),
        ...args.slice(0, 7),
        '',
        ...args.slice(8, 8 + count),
      );
      status = String(reply[6]);
    } else {
      const result = await applyBookBatch(redis, keys, S, messages, {
        levels: LEVELS,
        fullForm: form === 'full',
      });
      status = result.status;
      resent = result.resent;
    }
    ref.applyDepthBatch(messages);
    return { status, resent };
  }

  describe('simulated streams anchored on a REST snapshot (-8/-8)', () => {
    interface Case {
      readonly name: string;
      /** Exponents of the n-th depth message of the stream. */
      readonly exponents: (n: number) => Exponents;
    }
    const M25: Exponents = [-2, -5];
    const M88: Exponents = [-8, -8];
    const M46: Exponents = [-4, -6];
    const cases: Case[] = [
      { name: '(a) diffs at -2/-5', exponents: () => M25 },
      { name: '(b) diffs at -8/-8', exponents: () => M88 },
      {
        // Runs of 7 messages: the exponent changes inside batches and inside the chunks of one call.
        name: '(c) diffs switching -2/-5 -> -8/-8 -> -4/-6 mid-stream',
        exponents: (n) => [M25, M88, M46][Math.floor(n / 7) % 3]!,
      },
    ];
    const ANCHORS = ['build+swap', 'anchorBook'] as const;

    for (const c of cases) {
      for (const anchor of ANCHORS) {
        for (const form of FORMS) {
          it(`${c.name}, ${anchor}, ${form} form: equal to the reference and to the true book by value, one field per price`, async () => {
            const sim = new MarketSimulator({ seed: 77, symbols: [S], startTimeUs: START_US });
            const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
            let truth: { u: bigint; book: ValueBook } | undefined;
            let n = 0;
            /** Exponents each price was carried at, over every diff. */
            const spellings = new Map<bigint, Set<number>>();
            /** About `count` events' depth messages, ending with a diff after which nothing is pending (so the
             * simulator's book is the truth at that diff's u). */
            const nextBatch = (count: number): SbeMessage[] => {
              const out: SbeMessage[] = [];
              for (let i = 0; ; i++) {
                const m = sim.next().message;
                if (m.message !== 'DepthDiffStreamEvent' && m.message !== 'DepthSnapshotStreamEvent')
                  continue;
                const exps = c.exponents(n++);
                out.push(atExponents(m, exps));
                if (m.message === 'DepthDiffStreamEvent') {
                  for (const l of [...m.bids, ...m.asks]) {
                    const set = spellings.get(l.priceMantissa) ?? new Set<number>();
                    spellings.set(l.priceMantissa, set.add(exps[0]));
                  }
                }
                if (i >= count && m.message === 'DepthDiffStreamEvent' && sim.pending === 0) {
                  truth = { u: m.lastBookUpdateId, book: simulatorBook(sim.depthSnapshot(S, 5000)) };
                  return out;
                }
              }
            };
            // Diffs before the snapshot and while it is fetched: buffered (no snapshot yet). A re-anchor holds
            // its flag from before the snapshot until the swap.
            if (anchor === 'build+swap') await redis.set(keys.reanchorFlag(S), 'test|1', 'EX', 300);
            await apply(nextBatch(300), ref, form);
            const snapshot: RestDepthSnapshot = {
              ...sim.depthSnapshot(S, 5000),
              priceExponent: -8,
              qtyExponent: -8,
              timeUs: sim.currentTimeUs,
            };
            await apply(nextBatch(300), ref, form);
            expect(await redis.hget(keys.bookState(S), 'status')).to.equal('out_of_sync');
            let replayed: number;
            if (anchor === 'build+swap') {
              const built = await buildTemporaryState(redis, keys, S, { depth: snapshot, trades: [] });
              const swap = await swapReanchor(redis, keys, S, {
                levels: LEVELS,
                expectedLastUpdateId: snapshot.lastUpdateId,
              });
              expect(swap.outcome).to.equal('swapped');
              replayed = built.diffsReplayed + swap.diffsApplied;
            } else {
              const anchored = await anchorBook(redis, keys, S, snapshot, { levels: LEVELS });
              expect(anchored.outcome).to.equal('anchored');
              replayed = anchored.diffsApplied;
            }
            expect(replayed, 'buffered diffs replayed on the snapshot').to.be.greaterThan(0);
            expect(ref.anchor(snapshot).code).to.equal(1);
            let book = await expectReference(ref, `${c.name}: anchored`);
            expectSameBook(book, truth!.book, `${c.name}: anchored, the true book`);

            for (let k = 0; k < 12; k++) {
              // In sync: every batch applies, and a net-form call is never refused.
              expect(await apply(nextBatch(100), ref, form), `batch ${k}`).to.deep.equal({
                status: 'in_sync',
                resent: 0,
              });
              const label = `${c.name}: batch ${k}`;
              book = await expectReference(ref, label);
              expect(ref.bookId).to.equal(truth!.u);
              expectSameBook(book, truth!.book, `${label}, the true book`);
            }
            const respelled = [...spellings.values()].filter((set) => set.size === 3).length;
            if (c.name.startsWith('(c)')) {
              expect(respelled, 'prices carried at all three exponents').to.be.greaterThan(10);
            } else {
              expect(respelled).to.equal(0);
            }
          });
        }
      }
    }
  });

  describe('hand-made diffs on a REST snapshot', () => {
    const M25: Exponents = [-2, -5];
    const M88: Exponents = [-8, -8];
    const M46: Exponents = [-4, -6];

    function diffAt(
      U: bigint,
      u: bigint,
      exps: Exponents,
      bids: Array<[string, string]>,
      asks: Array<[string, string]>,
    ): DepthDiffStreamEvent {
      return {
        message: 'DepthDiffStreamEvent',
        eventTime: START_US + u,
        firstBookUpdateId: U,
        lastBookUpdateId: u,
        priceExponent: exps[0],
        qtyExponent: exps[1],
        bids: bids.map(([p, q]) => level(p, q, exps)),
        asks: asks.map(([p, q]) => level(p, q, exps)),
        symbol: S,
      };
    }

    for (const form of FORMS) {
      it(`(d) a quantity-0 diff at another exponent than the one that created the level removes it (${form} form)`, async () => {
        const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
        const snapshot: RestDepthSnapshot = {
          lastUpdateId: 100n,
          priceExponent: -8,
          qtyExponent: -8,
          bids: [level('60000.00', '1.5', M88), level('59999.99', '0.25', M88)],
          asks: [level('60000.01', '2', M88), level('60000.02', '0.125', M88)],
          timeUs: START_US + 100n,
        };
        await buildTemporaryState(redis, keys, S, { depth: snapshot, trades: [] });
        expect((await swapReanchor(redis, keys, S, { levels: LEVELS })).outcome).to.equal('swapped');
        expect(ref.anchor(snapshot).code).to.equal(1);
        await expectReference(ref, 'anchored');
        const bidPrices = async () => Object.keys(await redis.hgetall(keys.bookLevels(S, 'bids'))).sort();
        const askPrices = async () => Object.keys(await redis.hgetall(keys.bookLevels(S, 'asks'))).sort();

        // Created at -2/-5, removed at -8/-8.
        await apply([diffAt(101n, 101n, M25, [['59999.50', '1.23456']], [])], ref, form);
        expect(await bidPrices()).to.include('59999.50000000');
        await apply([diffAt(102n, 102n, M88, [['59999.50', '0']], [])], ref, form);
        expect(await bidPrices()).not.to.include('59999.50000000');
        await expectReference(ref, 'created at -2/-5, removed at -8/-8');

        // Created at -4/-6, removed at -2/-5.
        await apply([diffAt(103n, 103n, M46, [], [['60001.0000', '0.500000']])], ref, form);
        expect(await askPrices()).to.include('60001.00000000');
        await apply([diffAt(104n, 104n, M25, [], [['60001.00', '0']])], ref, form);
        expect(await askPrices()).not.to.include('60001.00000000');
        await expectReference(ref, 'created at -4/-6, removed at -2/-5');

        // Levels of the REST snapshot (-8): one removed at -2/-5, one updated in place at -4/-6.
        await apply([diffAt(105n, 105n, M25, [['59999.99', '0']], [])], ref, form);
        await apply([diffAt(106n, 106n, M46, [['60000.0000', '3.000001']], [])], ref, form);
        expect(await bidPrices()).to.deep.equal(['60000.00000000']);
        expect(await redis.hget(keys.bookLevels(S, 'bids'), '60000.00000000')).to.equal('3.00000100');
        await expectReference(ref, 'snapshot levels removed and updated at other exponents');

        // Within one batch (the net form coalesces by price): created at -2/-5, removed at -8/-8; and one level
        // written at three exponents in turn.
        await apply(
          [
            diffAt(107n, 107n, M25, [['59999.70', '1']], []),
            diffAt(108n, 108n, M88, [['59999.70', '0']], []),
            diffAt(109n, 109n, M88, [], [['60000.50', '0.1']]),
            diffAt(110n, 110n, M46, [], [['60000.5000', '0.200000']]),
            diffAt(111n, 111n, M25, [], [['60000.50', '0.30000']]),
          ],
          ref,
          form,
        );
        expect(await bidPrices()).to.deep.equal(['60000.00000000']);
        expect(await redis.hgetall(keys.bookLevels(S, 'asks'))).to.deep.equal({
          '60000.01000000': '2.00000000',
          '60000.02000000': '0.12500000',
          '60000.50000000': '0.30000000',
        });
        await expectReference(ref, 'one batch, several exponents per price');
        expect(await redis.hget(keys.bookState(S), 'book_update_id')).to.equal('111');
      });
    }
  });

  describe('REST snapshots at other exponents', () => {
    it('a re-anchor on a -2/-5 snapshot writes the canonical strings; a quantity-0 diff at -8 removes its level', async () => {
      const M25: Exponents = [-2, -5];
      const snapshot: RestDepthSnapshot = {
        lastUpdateId: 100n,
        priceExponent: -2,
        qtyExponent: -5,
        bids: [level('60000.00', '1.5', M25)],
        asks: [level('60000.01', '2', M25)],
        timeUs: START_US + 100n,
      };
      await buildTemporaryState(redis, keys, S, { depth: snapshot, trades: [] });
      expect((await swapReanchor(redis, keys, S, { levels: LEVELS })).outcome).to.equal('swapped');
      expect(await redis.hgetall(keys.bookLevels(S, 'bids'))).to.deep.equal({
        '60000.00000000': '1.50000000',
      });
      expect(await redis.hmget(keys.orderBook(S), 'best_bid', 'mid_price', 'spread')).to.deep.equal([
        '60000.00000000',
        '60000.00500000',
        '0.01000000',
      ]);
      const removal: DepthDiffStreamEvent = {
        message: 'DepthDiffStreamEvent',
        eventTime: START_US + 101n,
        firstBookUpdateId: 101n,
        lastBookUpdateId: 101n,
        priceExponent: -8,
        qtyExponent: -8,
        bids: [level('60000.00', '0', [-8, -8])],
        asks: [],
        symbol: S,
      };
      await applyBookBatch(redis, keys, S, [removal], { levels: LEVELS });
      expect(await redis.hgetall(keys.bookLevels(S, 'bids'))).to.deep.equal({});
    });
  });

  describe('depth20 snapshots and bestBidAsk', () => {
    function depth20At(id: bigint, exps: Exponents): DepthSnapshotStreamEvent {
      return {
        message: 'DepthSnapshotStreamEvent',
        eventTime: START_US + id,
        bookUpdateId: id,
        priceExponent: exps[0],
        qtyExponent: exps[1],
        bids: [level('60000.00', '1.5', exps), level('59999.90', '0.12345', exps)],
        asks: [level('60000.10', '2', exps), level('60000.20', '0.00001', exps)],
        symbol: S,
      };
    }

    function bbaAt(id: bigint, exps: Exponents, bid = '60000.00', ask = '60000.10'): BestBidAskStreamEvent {
      return {
        message: 'BestBidAskStreamEvent',
        eventTime: START_US + id,
        bookUpdateId: id,
        priceExponent: exps[0],
        qtyExponent: exps[1],
        bidPriceMantissa: parseDecimal(bid, exps[0]),
        bidQtyMantissa: parseDecimal('1.5', exps[1]),
        askPriceMantissa: parseDecimal(ask, exps[0]),
        askQtyMantissa: parseDecimal('2', exps[1]),
        symbol: S,
      };
    }

    const EXPONENTS: Exponents[] = [
      [-2, -5],
      [-8, -8],
      [-4, -6],
    ];

    it('a depth20 snapshot and a bestBidAsk at -2 and the same prices at -8 give identical ob: strings', async () => {
      const obs: Array<{ exps: string; depth20: Record<string, string>; bba: Record<string, string> }> = [];
      for (const exps of EXPONENTS) {
        await redis.flushdb();
        await applyBookBatch(redis, keys, S, [depth20At(10n, exps)], { levels: LEVELS });
        const depth20 = await redis.hgetall(keys.orderBook(S));
        await redis.flushdb();
        await applyBestBidAskBatch(redis, keys, S, [bbaAt(10n, exps)]);
        const bba = await redis.hgetall(keys.orderBook(S));
        obs.push({ exps: exps.join('/'), depth20, bba });
      }
      const first = obs[0]!;
      for (const ob of obs.slice(1)) {
        expect(ob.depth20, `depth20 at ${ob.exps} vs ${first.exps}`).to.deep.equal(first.depth20);
        expect(ob.bba, `bestBidAsk at ${ob.exps} vs ${first.exps}`).to.deep.equal(first.bba);
      }
      expect(first.depth20).to.include({
        bid1_p: '60000.00000000',
        bid1_q: '1.50000000',
        bid2_p: '59999.90000000',
        bid2_q: '0.12345000',
        ask1_p: '60000.10000000',
        ask2_q: '0.00001000',
        best_bid: '60000.00000000',
        best_ask: '60000.10000000',
        spread: '0.10000000',
        mid_price: '60000.05000000',
      });
      expect(first.bba).to.include({
        best_bid: '60000.00000000',
        best_bid_qty: '1.50000000',
        best_ask: '60000.10000000',
        best_ask_qty: '2.00000000',
        spread: '0.10000000',
        mid_price: '60000.05000000',
      });

      // One after the other at different exponents (newer ids): the same prices keep the same strings.
      await redis.flushdb();
      await applyBookBatch(redis, keys, S, [depth20At(10n, [-2, -5])], { levels: LEVELS });
      const before = await redis.hgetall(keys.orderBook(S));
      await applyBestBidAskBatch(redis, keys, S, [bbaAt(11n, [-8, -8])]);
      await applyBookBatch(redis, keys, S, [depth20At(12n, [-4, -6])], { levels: LEVELS });
      const after = await redis.hgetall(keys.orderBook(S));
      for (const [field, value] of Object.entries(before)) {
        if (/_id$|ts_us$/.test(field)) continue;
        expect(after[field], `ob ${field}`).to.equal(value);
      }
      // The mid is exact: 8 fraction digits, a ninth only when the sum of the prices is odd at scale 8.
      await applyBestBidAskBatch(redis, keys, S, [bbaAt(13n, [-2, -5], '60000.00', '60000.01')]);
      expect(await redis.hget(keys.orderBook(S), 'mid_price')).to.equal('60000.00500000');
      await applyBestBidAskBatch(redis, keys, S, [bbaAt(14n, [-8, -8], '60000.00', '60000.00000001')]);
      expect(await redis.hgetall(keys.orderBook(S))).to.include({
        best_ask: '60000.00000001',
        spread: '0.00000001',
        mid_price: '60000.000000005',
      });
    });
  });
});
