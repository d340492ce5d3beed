import { expect } from 'chai';
import { encodeFrames, encodeMessage } from '../../../src/sbe/encoder';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  TradesStreamEvent,
} from '../../../src/sbe/messages';
import { MarketSimulator, Prng, SimulatorOptionsError, simulate } from '../../../src/replay/simulator';
import type { SimulatedEvent, SimulatorOptions } from '../../../src/replay/simulator';
import { SimulatedExchange } from '../../../src/dev/rest/sim-server';

const START = 1_700_000_000_000_000n;
const OPTS: SimulatorOptions = { seed: 7, symbols: ['BTCUSDT', 'ETHUSDT'], startTimeUs: START };

/** A local book keyed by price mantissa, as a consumer would keep it. */
class LocalBook {
  readonly bids = new Map<bigint, bigint>();
  readonly asks = new Map<bigint, bigint>();
  id: bigint;

  constructor(snapshot: { lastUpdateId: bigint; bids: readonly PriceLevel[]; asks: readonly PriceLevel[] }) {
    this.id = snapshot.lastUpdateId;
    for (const l of snapshot.bids) this.bids.set(l.priceMantissa, l.qtyMantissa);
    for (const l of snapshot.asks) this.asks.set(l.priceMantissa, l.qtyMantissa);
  }

  apply(diff: DepthDiffStreamEvent): void {
    for (const [side, levels] of [
      [this.bids, diff.bids],
      [this.asks, diff.asks],
    ] as const) {
      for (const l of levels) {
        if (l.qtyMantissa === 0n) side.delete(l.priceMantissa);
        else side.set(l.priceMantissa, l.qtyMantissa);
      }
    }
    this.id = diff.lastBookUpdateId;
  }

  top(n: number): { bids: PriceLevel[]; asks: PriceLevel[] } {
    const sorted = (m: Map<bigint, bigint>, desc: boolean): PriceLevel[] =>
      [...m.entries()]
        .sort(([a], [b]) => (a === b ? 0 : a < b !== desc ? -1 : 1))
        .slice(0, n)
        .map(([priceMantissa, qtyMantissa]) => ({ priceMantissa, qtyMantissa }));
    return { bids: sorted(this.bids, true), asks: sorted(this.asks, false) };
  }
}

function ofType<T extends SimulatedEvent['message']['message']>(
  events: readonly SimulatedEvent[],
  type: T,
  symbol?: string,
): Extract<SimulatedEvent['message'], { message: T }>[] {
  return events
    .map((e) => e.message)
    .filter((m): m is Extract<SimulatedEvent['message'], { message: T }> => m.message === type)
    .filter((m) => symbol === undefined || m.symbol === symbol);
}

describe('replay/simulator', () => {
  it('is deterministic for a seed, and the seed matters', () => {
    const a = [...simulate(OPTS, 5000)];
    const b = [...simulate(OPTS, 5000)];
    expect(a).to.deep.equal(b);
    expect(encodeFrames(a.map((e) => e.message)).equals(encodeFrames(b.map((e) => e.message)))).to.equal(
      true,
    );
    const c = [...simulate({ ...OPTS, seed: 8 }, 5000)];
    expect(c).to.not.deep.equal(a);
  });

  it('Prng gives the same sequence for a seed, in [0, 1)', () => {
    const p = new Prng(123);
    const q = new Prng(123);
    for (let i = 0; i < 1000; i++) {
      const x = p.float();
      expect(x).to.equal(q.float());
      expect(x).to.be.at.least(0).and.below(1);
    }
  });

  it('emits every stream kind with the right message types, times non-decreasing from the start time', () => {
    const events = [...simulate(OPTS, 20000)];
    const kinds = new Map<string, Set<string>>();
    let last = START;
    for (const e of events) {
      const set = kinds.get(e.stream) ?? new Set<string>();
      set.add(e.message.message);
      kinds.set(e.stream, set);
      expect(e.message.eventTime >= last).to.equal(true);
      last = e.message.eventTime;
      expect(e.message.priceExponent).to.equal(-8);
      expect(e.message.qtyExponent).to.equal(-8);
    }
    expect([...(kinds.get('trade') ?? [])]).to.deep.equal(['TradesStreamEvent']);
    expect([...(kinds.get('bestbidask') ?? [])]).to.deep.equal(['BestBidAskStreamEvent']);
    expect([...(kinds.get('depth') ?? [])].sort()).to.deep.equal([
      'DepthDiffStreamEvent',
      'DepthSnapshotStreamEvent',
    ]);
    expect(new Set(events.map((e) => e.message.symbol))).to.deep.equal(new Set(['BTCUSDT', 'ETHUSDT']));
    // Every message has an SBE encoding.
    for (const e of events.slice(0, 2000)) expect(encodeMessage(e.message).length).to.be.greaterThan(0);
  });

  it('never crosses the book and keeps 50+ levels per side', () => {
    const sim = new MarketSimulator({ ...OPTS, seed: 99 });
    for (let i = 0; i < 30000; i++) {
      const { message: m } = sim.next();
      if (m.message === 'BestBidAskStreamEvent') {
        expect(m.bidPriceMantissa < m.askPriceMantissa, `bba ${i}`).to.equal(true);
        expect(m.bidQtyMantissa > 0n && m.askQtyMantissa > 0n).to.equal(true);
      } else if (m.message === 'DepthSnapshotStreamEvent') {
        expect(m.bids).to.have.length(20);
        expect(m.asks).to.have.length(20);
        for (let j = 1; j < 20; j++) {
          expect(m.bids[j - 1]!.priceMantissa > m.bids[j]!.priceMantissa).to.equal(true);
          expect(m.asks[j - 1]!.priceMantissa < m.asks[j]!.priceMantissa).to.equal(true);
        }
        expect(m.bids[0]!.priceMantissa < m.asks[0]!.priceMantissa).to.equal(true);
      }
      if (i % 1000 === 0) {
        for (const s of OPTS.symbols) {
          const book = sim.depthSnapshot(s, 5000);
          expect(book.bids.length).to.be.at.least(50);
          expect(book.asks.length).to.be.at.least(50);
          expect(book.bids[0]!.priceMantissa < book.asks[0]!.priceMantissa).to.equal(true);
        }
      }
    }
  });

  it('chains diffs (U = previous u + 1, u >= U) from the initial book id; ids increase on every stream', () => {
    const sim = new MarketSimulator(OPTS);
    const initial = new Map(OPTS.symbols.map((s) => [s, sim.depthSnapshot(s, 1).lastUpdateId]));
    const events: SimulatedEvent[] = [];
    for (let i = 0; i < 20000; i++) events.push(sim.next());
    for (const s of OPTS.symbols) {
      const diffs = ofType(events, 'DepthDiffStreamEvent', s);
      expect(diffs.length).to.be.greaterThan(50);
      let prevU = initial.get(s)!;
      for (const d of diffs) {
        expect(d.firstBookUpdateId).to.equal(prevU + 1n);
        expect(d.lastBookUpdateId >= d.firstBookUpdateId).to.equal(true);
        expect(d.bids.length + d.asks.length).to.be.greaterThan(0);
        for (let j = 1; j < d.bids.length; j++) {
          expect(d.bids[j - 1]!.priceMantissa > d.bids[j]!.priceMantissa).to.equal(true);
        }
        for (let j = 1; j < d.asks.length; j++) {
          expect(d.asks[j - 1]!.priceMantissa < d.asks[j]!.priceMantissa).to.equal(true);
        }
        prevU = d.lastBookUpdateId;
      }
      const bba = ofType(events, 'BestBidAskStreamEvent', s);
      for (let j = 1; j < bba.length; j++)
        expect(bba[j]!.bookUpdateId > bba[j - 1]!.bookUpdateId).to.equal(true);
      const snaps = ofType(events, 'DepthSnapshotStreamEvent', s);
      expect(snaps.length).to.be.greaterThan(10);
      for (let j = 1; j < snaps.length; j++) {
        expect(snaps[j]!.bookUpdateId >= snaps[j - 1]!.bookUpdateId).to.equal(true);
      }
    }
  });

  it('diffs applied to an early REST snapshot reproduce every later depth20 snapshot exactly', () => {
    const sim = new MarketSimulator({ ...OPTS, seed: 3 });
    const books = new Map(OPTS.symbols.map((s) => [s, new LocalBook(sim.depthSnapshot(s, 5000))]));
    let compared = 0;
    for (let i = 0; i < 30000; i++) {
      const { message: m } = sim.next();
      const book = books.get(m.symbol)!;
      if (m.message === 'DepthDiffStreamEvent') {
        expect(m.firstBookUpdateId).to.equal(book.id + 1n);
        book.apply(m);
      } else if (m.message === 'DepthSnapshotStreamEvent') {
        // Diffs are emitted before the snapshot of the same instant, so the ids line up.
        expect(m.bookUpdateId).to.equal(book.id);
        expect(book.top(20)).to.deep.equal({ bids: m.bids, asks: m.asks });
        compared++;
      }
    }
    expect(compared).to.be.greaterThan(100);
  });

  it('a REST snapshot taken mid-stream syncs with the diff stream by the Binance procedure', () => {
    const sim = new MarketSimulator({ ...OPTS, seed: 11 });
    for (let i = 0; i < 3000; i++) sim.next();
    const rest = sim.depthSnapshot('BTCUSDT', 5000);
    const book = new LocalBook(rest);
    let first = true;
    let compared = 0;
    for (let i = 0; i < 10000; i++) {
      const { message: m } = sim.next();
      if (m.symbol !== 'BTCUSDT') continue;
      if (m.message === 'DepthDiffStreamEvent') {
        if (m.lastBookUpdateId <= rest.lastUpdateId) continue;
        if (first) {
          expect(m.firstBookUpdateId <= rest.lastUpdateId + 1n).to.equal(true);
          expect(rest.lastUpdateId + 1n <= m.lastBookUpdateId).to.equal(true);
          first = false;
        } else expect(m.firstBookUpdateId).to.equal(book.id + 1n);
        book.apply(m);
      } else if (m.message === 'DepthSnapshotStreamEvent' && !first) {
        expect(book.top(20)).to.deep.equal({ bids: m.bids, asks: m.asks });
        compared++;
      }
    }
    expect(compared).to.be.greaterThan(10);
  });

  it('bestBidAsk matches the book it was taken from', () => {
    const sim = new MarketSimulator(OPTS);
    let checked = 0;
    for (let i = 0; i < 5000; i++) {
      const { message: m } = sim.next();
      if (m.message !== 'BestBidAskStreamEvent' || sim.pending !== 0) continue;
      const book = sim.depthSnapshot(m.symbol, 1);
      expect(book.lastUpdateId).to.equal(m.bookUpdateId);
      expect([m.bidPriceMantissa, m.bidQtyMantissa, m.askPriceMantissa, m.askQtyMantissa]).to.deep.equal([
        book.bids[0]!.priceMantissa,
        book.bids[0]!.qtyMantissa,
        book.asks[0]!.priceMantissa,
        book.asks[0]!.qtyMantissa,
      ]);
      checked++;
    }
    expect(checked).to.be.greaterThan(1000);
  });

  it('trades have consecutive ids per symbol, hit the touch and consume exactly that book quantity', () => {
    const sim = new MarketSimulator({ ...OPTS, seed: 5 });
    const nextId = new Map<string, bigint>();
    let makerBuys = 0;
    let makerSells = 0;
    let multiLevel = 0;
    for (let i = 0; i < 20000; i++) {
      // Books before the next step (only meaningful when nothing generated is pending).
      const before =
        sim.pending === 0 ? new Map(OPTS.symbols.map((s) => [s, sim.depthSnapshot(s, 5000)])) : undefined;
      const { message: m } = sim.next();
      if (m.message !== 'TradesStreamEvent') continue;
      const t: TradesStreamEvent = m;
      expect(t.transactTime <= t.eventTime).to.equal(true);
      for (const trade of t.trades) {
        const expected = nextId.get(t.symbol);
        if (expected !== undefined) expect(trade.id).to.equal(expected);
        nextId.set(t.symbol, trade.id + 1n);
        if (trade.isBuyerMaker) makerBuys++;
        else makerSells++;
        expect(trade.qtyMantissa > 0n).to.equal(true);
        expect(trade.isBestMatch).to.equal(true);
      }
      if (t.trades.length > 1) multiLevel++;
      if (before === undefined) continue;
      const pre = before.get(t.symbol)!;
      const post = sim.depthSnapshot(t.symbol, 5000);
      const takerBuys = !t.trades[0]!.isBuyerMaker;
      const [preSide, postSide] = takerBuys ? [pre.asks, post.asks] : [pre.bids, post.bids];
      // An action that changed the touch would have emitted a bestBidAsk first, so the touch seen before is the
      // touch the taker hit; deeper levels may have changed in between by actions that emit nothing.
      const first = t.trades[0]!;
      expect(first.priceMantissa).to.equal(preSide[0]!.priceMantissa);
      const left = postSide.find((l) => l.priceMantissa === first.priceMantissa)?.qtyMantissa ?? 0n;
      expect(preSide[0]!.qtyMantissa - left).to.equal(first.qtyMantissa);
      t.trades.forEach((trade, k) => {
        expect(trade.isBuyerMaker).to.equal(!takerBuys);
        if (k === 0) return;
        const prev = t.trades[k - 1]!.priceMantissa;
        expect(takerBuys ? trade.priceMantissa > prev : trade.priceMantissa < prev).to.equal(true);
        // Every level but the last one touched was taken completely.
        expect(postSide.some((l) => l.priceMantissa === prev)).to.equal(false);
      });
    }
    expect(makerBuys).to.be.greaterThan(100);
    expect(makerSells).to.be.greaterThan(100);
    expect(multiLevel).to.be.greaterThan(0);
  });

  it('honours exponents, start time and per-symbol instruments', () => {
    const events = [
      ...simulate(
        {
          seed: 1,
          symbols: ['XYZ'],
          startTimeUs: 5_000_000n,
          priceExponent: -2,
          qtyExponent: -3,
          instruments: { XYZ: { initialPriceMantissa: 1_000_000n, tickMantissa: 5n, lotMantissa: 1n } },
        },
        2000,
      ),
    ];
    for (const e of events) {
      expect(e.message.priceExponent).to.equal(-2);
      expect(e.message.qtyExponent).to.equal(-3);
      expect(e.message.eventTime > 5_000_000n).to.equal(true);
    }
    const bba: BestBidAskStreamEvent[] = ofType(events, 'BestBidAskStreamEvent');
    for (const b of bba) expect(b.bidPriceMantissa % 5n).to.equal(0n);
    const snaps: DepthSnapshotStreamEvent[] = ofType(events, 'DepthSnapshotStreamEvent');
    const bestBid = snaps[0]!.bids[0]!.priceMantissa;
    expect(bestBid > 900_000n && bestBid < 1_100_000n, String(bestBid)).to.equal(true);
  });

  it('a SimulatedExchange (replay --rest-port) hands out the same events as the bare simulator', () => {
    const exchange = new SimulatedExchange(OPTS);
    const fromExchange: SimulatedEvent[] = [];
    for (let i = 0; i < 5000; i++) fromExchange.push(exchange.next());
    expect(fromExchange).to.deep.equal([...simulate(OPTS, 5000)]);
  });

  it('rejects options it cannot honour, naming the option', () => {
    expect(() => new MarketSimulator({ ...OPTS, symbols: [] })).to.throw(SimulatorOptionsError, /symbols/);
    expect(() => new MarketSimulator({ ...OPTS, symbols: ['A1', 'A1'] })).to.throw(
      SimulatorOptionsError,
      /duplicate/,
    );
    expect(() => new MarketSimulator({ ...OPTS, priceExponent: 3 })).to.throw(
      SimulatorOptionsError,
      /priceExponent/,
    );
    expect(() => new MarketSimulator({ ...OPTS, diffIntervalMs: 0 })).to.throw(
      SimulatorOptionsError,
      /diffInterval/,
    );
    expect(() => new MarketSimulator({ ...OPTS, seed: 1.5 })).to.throw(SimulatorOptionsError, /seed/);
  });
});
