import { expect } from 'chai';
import { parseConfig } from '../../src/config/config';
import { computeFeatures } from '../../src/features/compute';
import { readSnapshot } from '../../src/features/snapshot';
import { silentLogger } from '../../src/logging/logger';
import { Reanchorer, describeFailure, type SnapshotSource } from '../../src/reanchor/reanchorer';
import { RestClient } from '../../src/rest/client';
import {
  SimulatedExchange,
  startSimExchangeServer,
  type SimExchangeServer,
} from '../../src/dev/rest/sim-server';
import { formatDecimal } from '../../src/sbe/decimal';
import type { PriceLevel, SbeMessage, TradesStreamEvent } from '../../src/sbe/messages';
import { FeatureSidecar } from '../../src/sidecar/sidecar';
import { groupBySymbol } from '../../src/state/batch';
import type { RestDepthSnapshot } from '../../src/state/book';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { TRADE_WINDOW_5S_FIELDS, TRADE_WINDOW_FIELDS } from '../../src/state/trades';
import { StateWriter } from '../../src/state/writer';
import { compareDecimal, referenceMid, referenceSpread } from '../helpers/book-reference';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// Readers in tight loops (HGETALL ob:, tr:1s, tr:5s, feat:, and the same keys in one MULTI) while >= 200
// re-anchors run one after the other (lock, REST from the simulated exchange over HTTP, build, atomic swap), live
// writes of the simulated market going on all the time and a feature sidecar ticking. No read may see a missing key
// or a hash mixing two states:
//  - ob: levels must equal the simulator's true book at the read's book_update_id (the book at a given update id is
//    unique whatever path built it: diffs, depth20 or a REST snapshot; the truth is recorded from the simulator as
//    each diff, depth20, bestBidAsk and REST snapshot is produced, before Redis can hold it), best bid/ask the true
//    touch at best_update_id, the last trade the true trade of last_trade_id; plus the internal invariants (spread,
//    mid, sorted sides, uncrossed, book metrics over the levels) and ids never going back on one connection;
//  - tr: windows every relation their fields allow (volume = buy + sell, vwap = notional / volume, ...), and in a
//    MULTI read the cross-key ones (1 s window inside the 5 s one, computed with ob:'s current mid);
//  - feat: every field of a vector, feature_ts never going back.
// Timing is printed, never asserted.

const S = 'BTCUSDT';
const LEVELS = 10;
const BUFFER_MAX = 1000;
const REANCHORS = 200;
const START_US = 1_700_000_000_000_000n;
const keys = new Keys({ clusterMode: false });

type Side = readonly (readonly [string, string])[];
interface Truth {
  /** Top LEVELS levels per side at this update id (undefined: only the touch is known, from a bestBidAsk). */
  levels?: { readonly bids: Side; readonly asks: Side };
  /** best bid price, qty, best ask price, qty. */
  touch: readonly [string, string, string, string];
}

function fmtLevels(levels: readonly PriceLevel[], pe: number, qe: number): Side {
  return levels
    .slice(0, LEVELS)
    .map((l) => [formatDecimal(l.priceMantissa, pe), formatDecimal(l.qtyMantissa, qe)] as const);
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

describe('re-anchor: readers never see a missing key or a mixed state during 200 re-anchors with live writes', function () {
  this.timeout(180_000);
  let server: TestRedis;
  let rest: SimExchangeServer | undefined;
  const clients: RedisClient[] = [];

  before(async () => {
    server = await startTestRedis('reanchor-readers');
    const port = server.port;
    const config = parseConfig({ redis: { port } }).redis;
    for (const name of ['writer', 'reanchor', 'sidecar', 'reader-a', 'reader-b', 'reader-multi']) {
      clients.push(createRedisClient(config, { connectionName: `reanchor-readers-${name}` }));
    }
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    await rest?.stop();
    await server?.stop();
  });

  it('ob:, tr: and feat: are always present and each read is one true state', async () => {
    const [writerClient, reanchorClient, sidecarClient, readerA, readerB, readerMulti] = clients as [
      RedisClient,
      RedisClient,
      RedisClient,
      RedisClient,
      RedisClient,
      RedisClient,
    ];
    const exchange = new SimulatedExchange({ seed: 77, symbols: [S], startTimeUs: START_US });
    const sim = exchange.simulator;
    const pe = sim.priceExponent;
    const qe = sim.qtyExponent;
    rest = await startSimExchangeServer({ port: 0, exchange });

    // --- Truth, recorded before Redis can hold the state it describes.
    const truth = new Map<string, Truth>();
    const tradeTruth = new Map<string, { price: string; timeUs: string }>();
    const recordTruth = (id: bigint, levels: Truth['levels'], touch?: Truth['touch']): void => {
      const key = id.toString();
      const known = truth.get(key);
      const t: Truth = {
        levels: levels ?? known?.levels,
        touch: touch ?? known?.touch ?? ['', '', '', ''],
      };
      if (levels !== undefined) {
        const [b, a] = [levels.bids[0], levels.asks[0]];
        t.touch = [b?.[0] ?? '', b?.[1] ?? '', a?.[0] ?? '', a?.[1] ?? ''];
      }
      truth.set(key, t);
    };
    const recordTrades = (m: TradesStreamEvent): void => {
      for (const t of m.trades) {
        tradeTruth.set(t.id.toString(), {
          price: formatDecimal(t.priceMantissa, m.priceExponent),
          timeUs: m.transactTime.toString(),
        });
      }
    };
    let truthGaps = 0;
    const nextEvent = (): SbeMessage => {
      const { message: m } = exchange.next();
      switch (m.message) {
        case 'DepthDiffStreamEvent': {
          // The exchange pulls one simulator step at a time: a diff step is alone, the book is at its u.
          const book = sim.depthSnapshot(S, LEVELS);
          if (book.lastUpdateId === m.lastBookUpdateId) {
            recordTruth(book.lastUpdateId, {
              bids: fmtLevels(book.bids, pe, qe),
              asks: fmtLevels(book.asks, pe, qe),
            });
          } else truthGaps++;
          break;
        }
        case 'DepthSnapshotStreamEvent':
          recordTruth(m.bookUpdateId, {
            bids: fmtLevels(m.bids, m.priceExponent, m.qtyExponent),
            asks: fmtLevels(m.asks, m.priceExponent, m.qtyExponent),
          });
          break;
        case 'BestBidAskStreamEvent':
          recordTruth(m.bookUpdateId, undefined, [
            formatDecimal(m.bidPriceMantissa, m.priceExponent),
            formatDecimal(m.bidQtyMantissa, m.qtyExponent),
            formatDecimal(m.askPriceMantissa, m.priceExponent),
            formatDecimal(m.askQtyMantissa, m.qtyExponent),
          ]);
          break;
        case 'TradesStreamEvent':
          recordTrades(m);
          break;
      }
      return m;
    };

    const backlog: SbeMessage[] = [];
    let backlogHead = 0;
    let restCalls = 0;
    let stalled = false;
    // REST through HTTP; every snapshot and trade list recorded as truth as soon as it arrives.
    const client = new RestClient({
      baseUrl: rest.url,
      timeoutMs: 5000,
      backoffBaseMs: 10,
      weightPerMinute: 100_000_000,
      now: () => Number(sim.currentTimeUs / 1000n),
    });
    const source: SnapshotSource = {
      async getDepth(symbol: string, limit: number): Promise<RestDepthSnapshot> {
        // Every other attempt, the stream lags the exchange by up to 200 events (generated, not yet written), so
        // the snapshot and the REST trades are ahead of the live state; every fourth, the writer stalls on them
        // until the run ends (a processor stall), so the swap finds the REST trades newer than the live ones.
        if (restCalls++ % 2 === 1) {
          for (let i = 20 + ((restCalls * 37) % 180); i > 0; i--) backlog.push(nextEvent());
          if (restCalls % 4 === 0) stalled = true;
        }
        const snap = await client.getDepth(symbol, limit);
        recordTruth(snap.lastUpdateId, {
          bids: fmtLevels(snap.bids, snap.priceExponent, snap.qtyExponent),
          asks: fmtLevels(snap.asks, snap.priceExponent, snap.qtyExponent),
        });
        return snap;
      },
      async getTrades(symbol: string, limit: number): Promise<TradesStreamEvent[]> {
        const trades = await client.getTrades(symbol, limit);
        for (const m of trades) recordTrades(m);
        return trades;
      },
    };

    // --- Failures, counted per kind, the first few kept with their read.
    const failures = new Map<string, number>();
    const examples: string[] = [];
    const fail = (kind: string, detail: string): void => {
      failures.set(kind, (failures.get(kind) ?? 0) + 1);
      if (examples.length < 15) examples.push(`${kind}: ${detail}`);
    };

    // --- Live writes, like the processors: batches of 20..50 events, one StateWriter.write each.
    const writer = new StateWriter(writerClient, keys, {
      orderBookLevels: LEVELS,
      diffBufferMaxLength: BUFFER_MAX,
      deadLetterMaxLen: 1000,
    });
    let running = true;
    let writes = 0;
    let eventsWritten = 0;
    let batchSize = 20;
    const writeBatch = async (): Promise<void> => {
      if (stalled && backlogHead < backlog.length) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        return;
      }
      const batch: SbeMessage[] = [];
      batchSize = batchSize >= 50 ? 20 : batchSize + 7;
      for (let i = 0; i < batchSize; i++) {
        if (backlogHead < backlog.length) batch.push(backlog[backlogHead++]!);
        else batch.push(nextEvent());
      }
      if (backlogHead === backlog.length) {
        backlog.length = 0;
        backlogHead = 0;
      }
      await writer.write(groupBySymbol(batch).values(), []);
      writes++;
      eventsWritten += batch.length;
    };
    for (let i = 0; i < 60; i++) await writeBatch();

    // --- The re-anchors: lock, run, swapped (the swap deletes the lock) or released.
    const reanchorer = new Reanchorer({
      client: reanchorClient,
      keys,
      source,
      logger: silentLogger(),
      depthLimit: 1000,
      tradesLimit: 1000,
      levels: LEVELS,
      maxAttempts: 3,
      backoffBaseMs: 5,
      backoffMaxMs: 50,
    });
    const reanchorFailures: string[] = [];
    let reanchorRuns = 0;
    let swapped = 0;
    const swapMs: number[] = [];
    const swapTrades = { rest: 0, live: 0 };
    let diffsReplayed = 0;
    const reanchorOnce = async (): Promise<void> => {
      const flag = keys.reanchorFlag(S);
      const token = `readers-test|${reanchorRuns}`;
      const locked = await reanchorClient.set(flag, token, 'EX', 300, 'NX');
      if (locked !== 'OK') throw new Error(`${flag} already held: ${await reanchorClient.get(flag)}`);
      const report = await reanchorer.run(S);
      stalled = false;
      reanchorRuns++;
      if (report.outcome === 'swapped') {
        swapped++;
        swapMs.push(report.swapMs ?? 0);
        if (report.swap?.trades !== undefined) swapTrades[report.swap.trades]++;
        diffsReplayed += report.swap?.diffsApplied ?? 0;
        if (report.attempts > 1) {
          reanchorFailures.push(
            `run ${reanchorRuns}: swapped after ${report.failures.map(describeFailure).join('; ')}`,
          );
        }
      } else {
        reanchorFailures.push(
          `run ${reanchorRuns}: ${report.outcome}: ${report.failures.map(describeFailure).join('; ')}`,
        );
        if ((await reanchorClient.get(flag)) === token) await reanchorClient.del(flag);
      }
    };
    await reanchorOnce(); // the first anchor: the book goes in sync

    // --- The feature sidecar, ticking every ~200 ms on the simulated clock.
    let simNowMs = Number(sim.currentTimeUs / 1000n);
    const sidecar = new FeatureSidecar({
      client: sidecarClient,
      keys,
      symbols: [S],
      intervalMs: 200,
      sidecarId: 'readers-test',
      historyMaxLen: 1000,
      readSnapshot,
      computeFeatures,
      logger: silentLogger(),
      now: () => simNowMs,
    });
    let lastTickMs = 0;
    let ticks = 0;
    const tick = async (): Promise<void> => {
      simNowMs = Math.max(lastTickMs + 1, Number(sim.currentTimeUs / 1000n));
      lastTickMs = simNowMs;
      const results = await sidecar.runTick(simNowMs);
      for (const r of results) if (r.kind === 'written' || r.kind === 'degraded') ticks++;
    };
    await tick();
    for (let i = 0; i < 20; i++) await writeBatch();

    const vectorSize = Object.keys(
      computeFeatures(
        {
          symbol: S,
          orderBook: {},
          trades1s: {},
          trades5s: {},
          tradeState: {},
          priceHistory: {},
          bookState: {},
        },
        0,
      ),
    ).length;

    // --- Checks of one read.
    interface Seen {
      bookId: bigint;
      bestId: bigint;
      tradeId: bigint;
      featTs: number;
    }
    const obFieldsChecked = { levels: 0, touch: 0, trade: 0 };
    const checkOb = (h: Record<string, string>, seen: Seen, who: string): void => {
      if (Object.keys(h).length === 0) return fail('ob missing', who);
      const need = [
        'best_bid',
        'best_ask',
        'spread',
        'mid_price',
        'best_update_id',
        'book_update_id',
        'bid1_p',
      ];
      for (const f of need) if (!h[f]) return fail('ob field missing', `${who} ${f} in ${JSON.stringify(h)}`);
      const bookId = BigInt(h.book_update_id!);
      const bestId = BigInt(h.best_update_id!);
      if (bookId < seen.bookId) fail('ob book_update_id went back', `${who} ${seen.bookId} -> ${bookId}`);
      if (bestId < seen.bestId) fail('ob best_update_id went back', `${who} ${seen.bestId} -> ${bestId}`);
      seen.bookId = bookId;
      seen.bestId = bestId;
      // Levels: sorted, uncrossed, metrics over them, equal to the truth at book_update_id.
      const bids: [string, string][] = [];
      const asks: [string, string][] = [];
      for (let i = 1; i <= LEVELS; i++) {
        for (const [side, out] of [
          ['bid', bids],
          ['ask', asks],
        ] as const) {
          const p = h[`${side}${i}_p`];
          const q = h[`${side}${i}_q`];
          if (p === undefined || q === undefined) return fail('ob level field missing', `${who} ${side}${i}`);
          if (p !== '') out.push([p, q]);
        }
      }
      for (let i = 1; i < bids.length; i++) {
        if (compareDecimal(bids[i - 1]![0], bids[i]![0]) <= 0)
          fail('ob bids not descending', `${who} ${bookId}`);
      }
      for (let i = 1; i < asks.length; i++) {
        if (compareDecimal(asks[i - 1]![0], asks[i]![0]) >= 0)
          fail('ob asks not ascending', `${who} ${bookId}`);
      }
      if (bids[0] && asks[0] && compareDecimal(bids[0][0], asks[0][0]) >= 0) {
        fail('ob levels crossed', `${who} ${bookId} ${bids[0][0]} >= ${asks[0][0]}`);
      }
      const bidSum = bids.reduce((s, [, q]) => s + Number(q), 0);
      const askSum = asks.reduce((s, [, q]) => s + Number(q), 0);
      const imbalance = bidSum + askSum === 0 ? 0 : (bidSum - askSum) / (bidSum + askSum);
      if (!close(Number(h.ob_imbalance), imbalance)) {
        fail('ob_imbalance not of these levels', `${who} ${bookId} ${h.ob_imbalance} vs ${imbalance}`);
      }
      const strength = (side: [string, string][]): number =>
        side.reduce((s, [, q], i) => s + Number(q) / (i + 1), 0);
      if (!close(Number(h.bid_strength), strength(bids)) || !close(Number(h.ask_strength), strength(asks))) {
        fail('bid/ask_strength not of these levels', `${who} ${bookId}`);
      }
      const atBook = truth.get(bookId.toString())?.levels;
      if (atBook === undefined) fail('ob book_update_id without truth', `${who} ${bookId}`);
      else {
        obFieldsChecked.levels++;
        const got = JSON.stringify({ bids, asks });
        const want = JSON.stringify(atBook);
        if (got !== want)
          fail('ob levels differ from the book at book_update_id', `${who} ${bookId}: ${got} vs ${want}`);
      }
      // Best bid/ask: the touch at best_update_id; spread and mid of it.
      const touch = truth.get(bestId.toString())?.touch;
      const gotTouch = [h.best_bid, h.best_bid_qty, h.best_ask, h.best_ask_qty];
      if (touch === undefined || touch[0] === '') fail('ob best_update_id without truth', `${who} ${bestId}`);
      else {
        obFieldsChecked.touch++;
        if (JSON.stringify(gotTouch) !== JSON.stringify(touch)) {
          fail(
            'ob best bid/ask differ from the touch at best_update_id',
            `${who} ${bestId}: ${gotTouch.join(' ')} vs ${touch.join(' ')}`,
          );
        }
      }
      if (compareDecimal(h.best_bid!, h.best_ask!) >= 0) fail('ob best bid >= best ask', `${who} ${bestId}`);
      if (h.spread !== referenceSpread(h.best_bid!, h.best_ask!)) {
        fail('ob spread != best_ask - best_bid', `${who} ${bestId} ${h.spread}`);
      }
      if (h.mid_price !== referenceMid(h.best_bid!, h.best_ask!)) {
        fail('ob mid_price != (best_bid + best_ask) / 2', `${who} ${bestId} ${h.mid_price}`);
      }
      // The last trade: the true trade of last_trade_id, ids never going back.
      if (h.last_trade_id) {
        const tradeId = BigInt(h.last_trade_id);
        if (tradeId < seen.tradeId)
          fail('ob last_trade_id went back', `${who} ${seen.tradeId} -> ${tradeId}`);
        seen.tradeId = tradeId;
        const t = tradeTruth.get(h.last_trade_id);
        if (t === undefined) fail('ob last_trade_id unknown', `${who} ${tradeId}`);
        else {
          obFieldsChecked.trade++;
          if (t.price !== h.last_trade_price || t.timeUs !== h.last_trade_ts_us) {
            fail(
              'ob last trade fields of two trades',
              `${who} ${tradeId}: ${h.last_trade_price} @ ${h.last_trade_ts_us} vs ${t.price} @ ${t.timeUs}`,
            );
          }
        }
      }
    };

    const checkWindow = (h: Record<string, string>, seconds: 1 | 5, who: string): void => {
      if (Object.keys(h).length === 0) return fail(`tr:${seconds}s missing`, who);
      const fields = seconds === 1 ? TRADE_WINDOW_FIELDS : TRADE_WINDOW_5S_FIELDS;
      const v: Record<string, number> = {};
      for (const f of fields) {
        const raw = h[f];
        const n = raw === undefined ? NaN : Number(raw);
        if (!Number.isFinite(n))
          return fail(`tr:${seconds}s field missing or not finite`, `${who} ${f}=${raw}`);
        v[f] = n;
      }
      const w = (f: string): number => v[f]!;
      const bad = (what: string): void => fail(`tr:${seconds}s ${what}`, `${who} ${JSON.stringify(h)}`);
      if (!Number.isInteger(w('count')) || w('count') < 0) bad('count not a count');
      if (w('count') === 0) {
        for (const f of fields)
          if (f !== 'volume_acceleration' && w(f) !== 0) bad(`empty window with ${f} != 0`);
        return;
      }
      if (!close(w('volume'), w('buy_volume') + w('sell_volume'))) bad('volume != buy + sell');
      if (!close(w('signed_volume'), w('buy_volume') - w('sell_volume'))) bad('signed_volume != buy - sell');
      if (!close(w('vwap'), w('notional') / w('volume'))) bad('vwap != notional / volume');
      if (!close(w('avg_trade_size'), w('volume') / w('count'))) bad('avg_trade_size != volume / count');
      if (!close(w('trade_intensity'), w('count') / seconds)) bad('trade_intensity != count / W');
      if (w('price_std') < 0 || w('buy_volume') < 0 || w('sell_volume') < 0 || w('volume') <= 0)
        bad('negative');
      if (!Number.isInteger(w('last_ts_us')) || w('last_ts_us') <= 0) bad('last_ts_us');
      if (seconds === 5 && w('count') < 2 && w('price_momentum') !== 0) bad('price_momentum with < 2 trades');
    };

    const checkFeat = (h: Record<string, string>, seen: Seen, who: string): void => {
      if (Object.keys(h).length === 0) return fail('feat missing', who);
      if (Object.keys(h).length !== vectorSize) {
        return fail('feat partial', `${who} ${Object.keys(h).length} of ${vectorSize} fields`);
      }
      const ts = Number(h.feature_ts);
      const completeness = Number(h.completeness);
      if (!(completeness >= 0 && completeness <= 1)) fail('feat completeness', `${who} ${h.completeness}`);
      if (ts < seen.featTs) fail('feat feature_ts went back', `${who} ${seen.featTs} -> ${ts}`);
      seen.featTs = ts;
    };

    // --- Readers.
    let reads = 0;
    let multiReads = 0;
    const seens: Seen[] = [];
    const newSeen = (): Seen => {
      const seen = { bookId: 0n, bestId: 0n, tradeId: 0n, featTs: 0 };
      seens.push(seen);
      return seen;
    };
    const plainReader = async (reader: RedisClient, name: string): Promise<void> => {
      const seen = newSeen();
      while (running) {
        checkOb(await reader.hgetall(keys.orderBook(S)), seen, name);
        checkWindow(await reader.hgetall(keys.tradeWindow(S, 1)), 1, name);
        checkWindow(await reader.hgetall(keys.tradeWindow(S, 5)), 5, name);
        checkFeat(await reader.hgetall(keys.features(S)), seen, name);
        reads += 4;
      }
    };
    const multiReader = async (reader: RedisClient): Promise<void> => {
      const seen = newSeen();
      const who = 'multi';
      while (running) {
        const replies = await reader
          .multi()
          .hgetall(keys.orderBook(S))
          .hgetall(keys.tradeWindow(S, 1))
          .hgetall(keys.tradeWindow(S, 5))
          .hgetall(keys.tradeState(S))
          .hgetall(keys.features(S))
          .exec();
        if (replies === null) throw new Error('MULTI aborted');
        const [ob, tr1, tr5, trState, feat] = replies.map(([err, value]) => {
          if (err) throw err;
          return value as Record<string, string>;
        }) as [
          Record<string, string>,
          Record<string, string>,
          Record<string, string>,
          Record<string, string>,
          Record<string, string>,
        ];
        multiReads++;
        checkOb(ob, seen, who);
        checkWindow(tr1, 1, who);
        checkWindow(tr5, 5, who);
        checkFeat(feat, seen, who);
        // One state across the keys: the windows were computed with ob:'s current mid; 1 s inside 5 s.
        if (trState.window_mid !== ob.mid_price) {
          fail(
            'tr: windows of another mid than ob:',
            `window_mid ${trState.window_mid} vs mid_price ${ob.mid_price}`,
          );
        }
        const n1 = Number(tr1.count);
        const n5 = Number(tr5.count);
        if (n1 > n5 || Number(tr1.volume) > Number(tr5.volume) * (1 + 1e-9)) {
          fail('tr:1s not inside tr:5s', `count ${n1} / ${n5}, volume ${tr1.volume} / ${tr5.volume}`);
        }
        if (n1 > 0 && tr1.last_ts_us !== tr5.last_ts_us) {
          fail('tr:1s and tr:5s newest trade differ', `${tr1.last_ts_us} vs ${tr5.last_ts_us}`);
        }
        const mid = Number(ob.mid_price);
        for (const [w, tr] of [
          [1, tr1],
          [5, tr5],
        ] as const) {
          if (Number(tr.count) > 0 && !close(Number(tr.vwap_minus_mid), Number(tr.vwap) - mid)) {
            fail(`tr:${w}s vwap_minus_mid of another mid`, `${tr.vwap_minus_mid} vs ${tr.vwap} - ${mid}`);
          }
        }
        if (trState.last_trade_id !== ob.last_trade_id) {
          fail('tr:state and ob: last_trade_id differ', `${trState.last_trade_id} vs ${ob.last_trade_id}`);
        }
      }
    };

    const started = Date.now();
    const loops = [
      (async () => {
        while (running) await writeBatch();
      })(),
      (async () => {
        while (running) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          await tick();
        }
      })(),
      plainReader(readerA, 'reader-a'),
      plainReader(readerB, 'reader-b'),
      multiReader(readerMulti),
    ];
    // Keep the truth map small: a connection's ids never go back (checked), so no reader needs an id below the
    // smallest one every reader has already seen.
    const prune = setInterval(() => {
      if (seens.length < 3) return;
      let floor = seens[0]!.bookId;
      for (const seen of seens) for (const id of [seen.bookId, seen.bestId]) if (id < floor) floor = id;
      for (const id of truth.keys()) if (BigInt(id) < floor) truth.delete(id);
    }, 2000);
    try {
      for (let i = 0; i < REANCHORS; i++) await reanchorOnce();
    } finally {
      running = false;
      clearInterval(prune);
      await Promise.allSettled(loops);
    }
    await Promise.all(loops);
    const seconds = (Date.now() - started) / 1000;

    const state = await writerClient.hgetall(keys.bookState(S));
    swapMs.sort((a, b) => a - b);
    process.stdout.write(
      `      ${reanchorRuns} re-anchors in ${seconds.toFixed(1)} s, ${swapped} swapped (swap round trip p50 ` +
        `${(swapMs[Math.floor(swapMs.length / 2)] ?? 0).toFixed(2)} ms, ${diffsReplayed} buffered diffs replayed, ` +
        `trade state from REST ${swapTrades.rest}x, live kept ${swapTrades.live}x); ${writes} writes (${eventsWritten} events); ` +
        `${reads} HGETALL + ${multiReads} MULTI reads; ${ticks} sidecar ticks; book reanchors=${state.reanchors} ` +
        `gaps=${state.gaps ?? 0} crossed=${state.crossed ?? 0} overflow=${state.buffer_overflow ?? 0}\n` +
        `      checked against the truth: ${obFieldsChecked.levels} level sets, ${obFieldsChecked.touch} touches, ` +
        `${obFieldsChecked.trade} last trades (${truth.size} update ids, ${tradeTruth.size} trades recorded)\n`,
    );
    for (const f of reanchorFailures.slice(0, 20)) process.stdout.write(`      re-anchor: ${f}\n`);
    for (const [kind, count] of failures) process.stdout.write(`      FAILED ${count}x ${kind}\n`);
    for (const e of examples) process.stdout.write(`        e.g. ${e}\n`);

    expect(truthGaps, 'diffs whose book state the simulator no longer held (test assumption)').to.equal(0);
    expect(reanchorRuns).to.equal(REANCHORS + 1);
    expect(swapped, `re-anchors swapped in: ${reanchorFailures.join(' | ')}`).to.be.at.least(REANCHORS - 5);
    expect(reads + multiReads).to.be.greaterThan(REANCHORS * 10);
    expect(ticks).to.be.greaterThan(0);
    expect(
      [...failures].map(([k, n]) => `${n}x ${k}`),
      `reads that saw a missing key or a mixed state; e.g. ${examples.slice(0, 3).join(' || ')}`,
    ).to.deep.equal([]);
    expect(state.status).to.equal('in_sync');
  });
});
