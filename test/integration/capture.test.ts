import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parseConfig } from '../../src/config/config';
import { formatDecimal, parseDecimal } from '../../src/sbe/decimal';
import { decodeFrames } from '../../src/sbe/decoder';
import { encodeFrames } from '../../src/sbe/encoder';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  PriceLevel,
  SbeMessage,
} from '../../src/sbe/messages';
import {
  anchorBook,
  applyBestBidAskBatch,
  applyBookBatch,
  type RestDepthSnapshot,
} from '../../src/state/book';
import { Keys } from '../../src/state/keys';
import { createRedisClient } from '../../src/state/redis';
import type { RedisClient } from '../../src/state/redis';
import { sharedDir } from '../helpers/paths';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// The real Binance capture (../shared/data/binance-spot-capture, from cryptofeed's sample data): REST depth
// snapshots (limit=1000) and the combined ws stream of 4 symbols (@depth@100ms diffs, @bookTicker). The JSON is
// turned into SBE messages (exponent -8, microseconds), encoded into frames and decoded again, delivered in
// batches through src/state/book.ts with the snapshot anchored when it was received, as Binance's procedure goes
// (diffs received before it are buffered). Redis must hold exactly the snapshot with the diffs applied in memory.

const DIR = path.join(sharedDir, 'data', 'binance-spot-capture');
const EXPONENT = -8;
const LEVELS = 10;
const keys = new Keys({ clusterMode: false });

/** "1633998514.6462898" (seconds) -> microseconds, exactly (digits past the sixth are dropped). */
function recvUs(text: string): bigint {
  const [int, frac = ''] = text.split('.');
  return BigInt(int!) * 1_000_000n + BigInt((frac + '000000').slice(0, 6));
}

type Pair = [string, string];

interface Snapshot {
  readonly symbol: string;
  readonly recvUs: bigint;
  readonly lastUpdateId: bigint;
  readonly bids: Pair[];
  readonly asks: Pair[];
}

interface WsEvent {
  readonly recvUs: bigint;
  readonly stream: 'depth' | 'bestbidask';
  readonly message: SbeMessage;
}

function levels(pairs: readonly Pair[]): PriceLevel[] {
  return pairs.map(([p, q]) => ({
    priceMantissa: parseDecimal(p, EXPONENT),
    qtyMantissa: parseDecimal(q, EXPONENT),
  }));
}

function readSnapshots(): Snapshot[] {
  const out: Snapshot[] = [];
  for (const line of fs.readFileSync(path.join(DIR, 'cryptofeed_BINANCE.http.0.0'), 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const m = /^(\S+) -> (\d+\.\d+): (.*)$/.exec(line);
    if (m === null) throw new Error(`unexpected http line ${line.slice(0, 80)}`);
    const url = new URL(m[1]!);
    if (!url.pathname.endsWith('/api/v3/depth')) continue;
    const body = JSON.parse(m[3]!) as { lastUpdateId: number; bids: Pair[]; asks: Pair[] };
    expect(Number.isSafeInteger(body.lastUpdateId)).to.equal(true);
    out.push({
      symbol: url.searchParams.get('symbol')!,
      recvUs: recvUs(m[2]!),
      lastUpdateId: BigInt(body.lastUpdateId),
      bids: body.bids,
      asks: body.asks,
    });
  }
  return out;
}

interface DepthUpdate {
  e: 'depthUpdate';
  E: number;
  s: string;
  U: number;
  u: number;
  b: Pair[];
  a: Pair[];
}

interface BookTicker {
  u: number;
  s: string;
  b: string;
  B: string;
  a: string;
  A: string;
}

function readWs(): WsEvent[] {
  const lines = fs.readFileSync(path.join(DIR, 'cryptofeed_BINANCE.ws.1.0'), 'utf8').split('\n');
  expect(lines[0]).to.match(/^wss:\/\/stream\.binance\.com/);
  const out: WsEvent[] = [];
  for (const line of lines.slice(1)) {
    if (line.trim() === '') continue;
    const m = /^(\d+\.\d+): (.*)$/.exec(line);
    if (m === null) throw new Error(`unexpected ws line ${line.slice(0, 80)}`);
    const { stream, data } = JSON.parse(m[2]!) as { stream: string; data: unknown };
    const recv = recvUs(m[1]!);
    if (stream.endsWith('@depth@100ms')) {
      const d = data as DepthUpdate;
      out.push({
        recvUs: recv,
        stream: 'depth',
        message: {
          message: 'DepthDiffStreamEvent',
          eventTime: BigInt(d.E) * 1000n,
          firstBookUpdateId: BigInt(d.U),
          lastBookUpdateId: BigInt(d.u),
          priceExponent: EXPONENT,
          qtyExponent: EXPONENT,
          bids: levels(d.b),
          asks: levels(d.a),
          symbol: d.s,
        },
      });
    } else if (stream.endsWith('@bookTicker')) {
      // bookTicker carries no event time: the receive time stands in for it.
      const t = data as BookTicker;
      out.push({
        recvUs: recv,
        stream: 'bestbidask',
        message: {
          message: 'BestBidAskStreamEvent',
          eventTime: recv,
          bookUpdateId: BigInt(t.u),
          priceExponent: EXPONENT,
          qtyExponent: EXPONENT,
          bidPriceMantissa: parseDecimal(t.b, EXPONENT),
          bidQtyMantissa: parseDecimal(t.B, EXPONENT),
          askPriceMantissa: parseDecimal(t.a, EXPONENT),
          askQtyMantissa: parseDecimal(t.A, EXPONENT),
          symbol: t.s,
        },
      });
    }
  }
  return out;
}

/** Through the codec: one record of concatenated frames, decoded back. */
function viaSbe(messages: readonly SbeMessage[]): SbeMessage[] {
  const decoded = decodeFrames(encodeFrames(messages)).map((f) => f.message);
  expect(decoded).to.deep.equal(messages);
  return decoded;
}

function restSnapshot(s: Snapshot): RestDepthSnapshot {
  return {
    lastUpdateId: s.lastUpdateId,
    priceExponent: EXPONENT,
    qtyExponent: EXPONENT,
    bids: levels(s.bids),
    asks: levels(s.asks),
    timeUs: s.recvUs,
  };
}

/**
 * The independent reference: Binance's steps 3-4 in memory. Drops diffs with u <= lastUpdateId, requires the
 * first one left to bridge and every next one to chain, applies them (qty 0 removes). Returns the book and its id.
 */
function replay(snapshot: Snapshot, diffs: readonly DepthDiffStreamEvent[]) {
  const bids = new Map(snapshot.bids);
  const asks = new Map(snapshot.asks);
  let id = snapshot.lastUpdateId;
  let first = true;
  for (const d of diffs) {
    if (d.lastBookUpdateId <= id) continue;
    if (first) expect(d.firstBookUpdateId <= id + 1n, 'first diff bridges the snapshot').to.equal(true);
    else expect(d.firstBookUpdateId, 'diffs chain').to.equal(id + 1n);
    first = false;
    for (const [side, list] of [
      [bids, d.bids],
      [asks, d.asks],
    ] as const) {
      for (const l of list) {
        const p = formatDecimal(l.priceMantissa, d.priceExponent);
        if (l.qtyMantissa === 0n) side.delete(p);
        else side.set(p, formatDecimal(l.qtyMantissa, d.qtyExponent));
      }
    }
    id = d.lastBookUpdateId;
  }
  return { bids, asks, id };
}

function sortedObject(map: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries([...map.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

/** Exact order of two decimal strings with 8 decimals (the capture's): by mantissa. */
function byPrice(descending: boolean) {
  return (a: [string, string], b: [string, string]) => {
    const x = parseDecimal(a[0], EXPONENT);
    const y = parseDecimal(b[0], EXPONENT);
    return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
  };
}

describe('order book on the real Binance capture', function () {
  this.timeout(120000);
  let server: TestRedis;
  let redis: RedisClient;
  let snapshots: Snapshot[];
  let events: WsEvent[];

  before(async () => {
    server = await startTestRedis('capture-it');
    const port = server.port;
    redis = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: 'capture-test' });
    snapshots = readSnapshots();
    events = readWs();
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushdb();
  });

  it('reads 4 REST snapshots and the ws diffs and bookTickers of the same 4 symbols', () => {
    expect(snapshots.map((s) => s.symbol).sort()).to.deep.equal(['BLZETH', 'LRCBTC', 'NKNUSDT', 'RUNEEUR']);
    expect(snapshots.find((s) => s.symbol === 'NKNUSDT')!.lastUpdateId).to.equal(499869752n);
    expect(events.filter((e) => e.stream === 'depth')).to.have.length(177);
    expect(events.filter((e) => e.stream === 'bestbidask')).to.have.length(84);
    // In each symbol, diffs arrive before its snapshot: they must be buffered, then dropped or replayed.
    for (const s of snapshots) {
      const first = events.find((e) => e.stream === 'depth' && e.message.symbol === s.symbol)!;
      expect(first.recvUs < s.recvUs, s.symbol).to.equal(true);
    }
  });

  /**
   * Delivers the ws events in batches of `size` per stream (in receive order, through the SBE codec), anchoring
   * each symbol on its REST snapshot once every event received before it was delivered. `drop` removes diffs.
   */
  async function deliver(size: number, drop: (d: DepthDiffStreamEvent) => boolean = () => false) {
    const anchored = new Set<string>();
    const pending: Record<'depth' | 'bestbidask', SbeMessage[]> = { depth: [], bestbidask: [] };
    const flush = async (stream: 'depth' | 'bestbidask') => {
      if (pending[stream].length === 0) return;
      const decoded = viaSbe(pending[stream]);
      pending[stream] = [];
      const bySymbol = new Map<string, SbeMessage[]>();
      for (const m of decoded) bySymbol.set(m.symbol, [...(bySymbol.get(m.symbol) ?? []), m]);
      for (const [symbol, messages] of bySymbol) {
        if (stream === 'depth') await applyBookBatch(redis, keys, symbol, messages, { levels: LEVELS });
        else await applyBestBidAskBatch(redis, keys, symbol, messages);
      }
    };
    const anchorDue = async (now: bigint | undefined) => {
      for (const s of snapshots) {
        if (anchored.has(s.symbol) || (now !== undefined && now < s.recvUs)) continue;
        await flush('depth');
        await flush('bestbidask');
        const result = await anchorBook(redis, keys, s.symbol, restSnapshot(s), { levels: LEVELS });
        expect(result, `${s.symbol} anchor`).to.include({ code: 1, outcome: 'anchored' });
        anchored.add(s.symbol);
      }
    };
    for (const e of events) {
      await anchorDue(e.recvUs);
      if (e.message.message === 'DepthDiffStreamEvent' && drop(e.message)) continue;
      pending[e.stream].push(e.message);
      if (pending[e.stream].length >= size) await flush(e.stream);
    }
    await flush('depth');
    await flush('bestbidask');
    await anchorDue(undefined);
  }

  function diffsOf(symbol: string): DepthDiffStreamEvent[] {
    return events
      .map((e) => e.message)
      .filter((m): m is DepthDiffStreamEvent => m.message === 'DepthDiffStreamEvent' && m.symbol === symbol);
  }

  for (const size of [1, 7, 60]) {
    it(`batches of ${size}: each symbol's full book equals its snapshot with the diffs applied, and ob: its top`, async () => {
      await deliver(size);
      for (const s of snapshots) {
        const ref = replay(s, diffsOf(s.symbol));
        expect(ref.id > s.lastUpdateId, `${s.symbol}: live diffs after the snapshot`).to.equal(true);
        const bids = await redis.hgetall(keys.bookLevels(s.symbol, 'bids'));
        const asks = await redis.hgetall(keys.bookLevels(s.symbol, 'asks'));
        expect(sortedObject(new Map(Object.entries(bids))), `${s.symbol} bids`).to.deep.equal(
          sortedObject(ref.bids),
        );
        expect(sortedObject(new Map(Object.entries(asks))), `${s.symbol} asks`).to.deep.equal(
          sortedObject(ref.asks),
        );
        expect(await redis.zcard(keys.bookIndex(s.symbol, 'bids'))).to.equal(ref.bids.size);
        expect(await redis.zcard(keys.bookIndex(s.symbol, 'asks'))).to.equal(ref.asks.size);
        expect(await redis.hgetall(keys.bookState(s.symbol)), s.symbol).to.include({
          status: 'in_sync',
          reason: '',
          book_update_id: ref.id.toString(),
          buffered: '0',
        });

        // ob: the top 10 of the reference, in exact price order.
        const ob = await redis.hgetall(keys.orderBook(s.symbol));
        const topBids = [...ref.bids.entries()].sort(byPrice(true)).slice(0, LEVELS);
        const topAsks = [...ref.asks.entries()].sort(byPrice(false)).slice(0, LEVELS);
        for (let i = 0; i < LEVELS; i++) {
          expect([ob[`bid${i + 1}_p`], ob[`bid${i + 1}_q`]], `${s.symbol} bid${i + 1}`).to.deep.equal(
            topBids[i] ?? ['', ''],
          );
          expect([ob[`ask${i + 1}_p`], ob[`ask${i + 1}_q`]], `${s.symbol} ask${i + 1}`).to.deep.equal(
            topAsks[i] ?? ['', ''],
          );
        }
        expect(ob.book_update_id).to.equal(ref.id.toString());
        const sum = (l: Array<[string, string]>) => l.reduce((acc, [, q]) => acc + Number(q), 0);
        const strength = (l: Array<[string, string]>) =>
          l.reduce((acc, [, q], i) => acc + Number(q) / (i + 1), 0);
        const total = sum(topBids) + sum(topAsks);
        expect(Number(ob.ob_imbalance)).to.equal((sum(topBids) - sum(topAsks)) / total);
        expect(Number(ob.bid_strength)).to.equal(strength(topBids));
        expect(Number(ob.ask_strength)).to.equal(strength(topAsks));

        // Best bid/ask: from the newest source, the full book or the last bookTicker (same id sequence).
        const tickers = events
          .map((e) => e.message)
          .filter(
            (m): m is BestBidAskStreamEvent => m.message === 'BestBidAskStreamEvent' && m.symbol === s.symbol,
          );
        const lastTicker = tickers.reduce<BestBidAskStreamEvent | undefined>(
          (a, t) => (a === undefined || t.bookUpdateId > a.bookUpdateId ? t : a),
          undefined,
        );
        const fromTicker = lastTicker !== undefined && lastTicker.bookUpdateId > ref.id;
        const bid = fromTicker ? formatDecimal(lastTicker.bidPriceMantissa, EXPONENT) : topBids[0]![0];
        const ask = fromTicker ? formatDecimal(lastTicker.askPriceMantissa, EXPONENT) : topAsks[0]![0];
        const b = parseDecimal(bid, EXPONENT);
        const a = parseDecimal(ask, EXPONENT);
        expect(ob, s.symbol).to.include({
          best_bid: bid,
          best_ask: ask,
          spread: formatDecimal(a - b, EXPONENT),
          mid_price:
            (a + b) % 2n === 0n
              ? formatDecimal((a + b) / 2n, EXPONENT)
              : formatDecimal((a + b) * 5n, EXPONENT - 1),
          best_update_id: (fromTicker ? lastTicker.bookUpdateId : ref.id).toString(),
        });
      }
    });
  }

  it('one diff removed: the gap is detected (out_of_sync, reason gap), later diffs are buffered, a snapshot at the gap recovers', async () => {
    const nkn = diffsOf('NKNUSDT');
    const lost = nkn[40]!;
    await deliver(5, (d) => d === lost);
    const state = await redis.hgetall(keys.bookState('NKNUSDT'));
    const before = nkn[39]!;
    expect(state).to.include({
      status: 'out_of_sync',
      reason: 'gap',
      gaps: '1',
      book_update_id: before.lastBookUpdateId.toString(),
      gap_from: before.lastBookUpdateId.toString(),
      gap_to: nkn[41]!.firstBookUpdateId.toString(),
      buffered: String(nkn.length - 41),
    });
    expect(await redis.llen(keys.diffBuffer('NKNUSDT'))).to.equal(nkn.length - 41);
    // The other symbols lost nothing.
    for (const symbol of ['BLZETH', 'LRCBTC', 'RUNEEUR']) {
      expect(await redis.hget(keys.bookState(symbol), 'status'), symbol).to.equal('in_sync');
    }
    // The original snapshot does not bridge the buffered diffs; one at the lost diff's u (built from the
    // reference) does, and the book ends equal to the full capture.
    const snap = snapshots.find((s) => s.symbol === 'NKNUSDT')!;
    const refused = await anchorBook(redis, keys, 'NKNUSDT', restSnapshot(snap), { levels: LEVELS });
    expect(refused).to.include({ code: -1, neededLastUpdateId: nkn[41]!.firstBookUpdateId - 1n });
    const atLost = replay(snap, nkn.slice(0, 41));
    expect(atLost.id).to.equal(lost.lastBookUpdateId);
    const ok = await anchorBook(
      redis,
      keys,
      'NKNUSDT',
      {
        lastUpdateId: atLost.id,
        priceExponent: EXPONENT,
        qtyExponent: EXPONENT,
        bids: levels([...atLost.bids.entries()]),
        asks: levels([...atLost.asks.entries()]),
        timeUs: lost.eventTime,
      },
      { levels: LEVELS },
    );
    expect(ok).to.include({ code: 1, diffsApplied: nkn.length - 41 });
    const full = replay(snap, nkn);
    expect(
      sortedObject(new Map(Object.entries(await redis.hgetall(keys.bookLevels('NKNUSDT', 'bids'))))),
    ).to.deep.equal(sortedObject(full.bids));
    expect(
      sortedObject(new Map(Object.entries(await redis.hgetall(keys.bookLevels('NKNUSDT', 'asks'))))),
    ).to.deep.equal(sortedObject(full.asks));
    expect(await redis.hget(keys.bookState('NKNUSDT'), 'book_update_id')).to.equal(full.id.toString());
  });

  it('a diff removed in each symbol that has a diff after it: every one of them is out of sync with reason gap', async () => {
    const lost = new Set<DepthDiffStreamEvent>();
    for (const s of snapshots) {
      const live = diffsOf(s.symbol).filter((d) => d.lastBookUpdateId > s.lastUpdateId);
      if (live.length >= 3) lost.add(live[1]!);
    }
    expect(lost.size).to.equal(3); // RUNEEUR has a single diff after its snapshot
    await deliver(3, (d) => lost.has(d));
    for (const d of lost) {
      expect(await redis.hgetall(keys.bookState(d.symbol)), d.symbol).to.include({
        status: 'out_of_sync',
        reason: 'gap',
      });
    }
    expect(await redis.hget(keys.bookState('RUNEEUR'), 'status')).to.equal('in_sync');
  });
});
