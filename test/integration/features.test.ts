import { expect } from 'chai';
import Redis from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { computeFeatures } from '../../src/features/compute';
import { readSnapshot } from '../../src/features/snapshot';
import { verifyServedVectors } from '../../src/app/features-verify';
import type { ServedVector } from '../../src/features/verify';
import { simulate } from '../../src/replay/simulator';
import type { SbeMessage } from '../../src/sbe/messages';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// readSnapshot + computeFeatures against a real redis-server fed by the simulator through StateWriter, and the
// verify core (replay to watermarks in a scratch database).

const SYMBOL = 'BTCUSDT';
const WRITER = { orderBookLevels: 10, diffBufferMaxLength: 1000, deadLetterMaxLen: 1000 };

describe('features against a real Redis', function () {
  this.timeout(60000);
  let server: TestRedis;
  let client: RedisClient;
  let scratch: RedisClient;
  let redis: Redis;
  let writer: StateWriter;
  const keys = new Keys({ clusterMode: false });
  let events: SbeMessage[];

  before(async () => {
    server = await startTestRedis('features-it');
    const port = server.port;
    client = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: 'features-it' });
    scratch = createRedisClient(parseConfig({ redis: { port, db: 5 } }).redis, {
      connectionName: 'features-it-scratch',
    });
    redis = new Redis({ port });
    writer = new StateWriter(client, keys, WRITER);
    events = [...simulate({ seed: 7, symbols: [SYMBOL], startTimeUs: 1_700_000_000_000_000n }, 3000)].map(
      (e) => e.message,
    );
  });

  after(async () => {
    client?.disconnect();
    scratch?.disconnect();
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushdb();
  });

  async function apply(messages: readonly SbeMessage[]): Promise<void> {
    await writer.write(groupBySymbol(messages).values(), []);
  }

  it('readSnapshot returns the six hashes and computeFeatures matches a recomputation from them', async () => {
    await apply(events);
    const snap = await readSnapshot(client, keys, SYMBOL);
    const ob = await redis.hgetall(keys.orderBook(SYMBOL));
    const tr1 = await redis.hgetall(keys.tradeWindow(SYMBOL, 1));
    const tr5 = await redis.hgetall(keys.tradeWindow(SYMBOL, 5));
    const st = await redis.hgetall(keys.tradeState(SYMBOL));
    const px = await redis.hgetall(keys.priceHistory(SYMBOL));
    expect(snap.orderBook).to.deep.equal(ob);
    expect(snap.trades1s).to.deep.equal(tr1);
    expect(snap.trades5s).to.deep.equal(tr5);
    expect(snap.tradeState).to.deep.equal(st);
    expect(snap.priceHistory).to.deep.equal(px);
    expect(snap.bookState).to.deep.equal(await redis.hgetall(keys.bookState(SYMBOL)));
    expect(Object.keys(px).length).to.be.greaterThan(0);

    const T = Number(st.event_time_us);
    const asOf = Math.floor(T / 1000) + 250;
    const f = computeFeatures(snap, asOf);
    const n = (s: string | undefined): number => Number(s);
    const at = (h: number): number | undefined => {
      const starts = Object.keys(px)
        .map(Number)
        .filter((b) => b <= T - h * 1e6);
      return starts.length === 0 ? undefined : n(px[String(Math.max(...starts))]);
    };
    const price = n(ob.last_trade_price);
    expect(f.price).to.equal(price);
    expect(f.mid_price).to.equal(n(ob.mid_price));
    for (const h of [1, 5, 10]) {
      const then = at(h);
      expect(f[`ret_${h}s`]).to.equal(then === undefined ? 0 : price / then - 1);
    }
    expect(f.volume_1s).to.equal(n(tr1.volume));
    expect(f.volume_5s).to.equal(n(tr5.volume));
    expect(f.vol_imbalance_1s).to.equal(n(tr1.volume) === 0 ? 0 : n(tr1.signed_volume) / n(tr1.volume));
    expect(f.vol_imbalance_5s).to.equal(n(tr5.volume) === 0 ? 0 : n(tr5.signed_volume) / n(tr5.volume));
    const bid = n(ob.best_bid);
    const ask = n(ob.best_ask);
    expect(f.spread_bp).to.equal(((ask - bid) / ((bid + ask) / 2)) * 10_000);
    expect(f.ob_imbalance).to.equal(n(ob.ob_imbalance));
    expect(f.bid_strength).to.equal(n(ob.bid_strength));
    expect(f.ask_strength).to.equal(n(ob.ask_strength));
    expect(f.trade_intensity_1s).to.equal(n(tr1.trade_intensity));
    expect(f.avg_trade_size_1s).to.equal(n(tr1.avg_trade_size));
    expect(f.dollar_volume_1s).to.equal(n(tr1.notional));
    expect(f.vwap_dev_1s).to.equal(n(tr1.vwap_minus_mid));
    expect(f.vwap_dev_5s).to.equal(n(tr5.vwap_minus_mid));
    expect(f.price_volatility).to.equal(n(tr1.price_std));
    expect(f.momentum).to.equal(n(tr5.price_momentum));
    expect(f.feature_ts).to.equal(asOf);
    const newest = Math.max(n(ob.ts_us), n(tr1.last_ts_us), T);
    expect(f.data_age_ms).to.equal(Math.max(0, asOf - newest / 1000));
    expect(f.src_event_time_us).to.equal(st.event_time_us);
    expect(f.src_last_trade_id).to.equal(st.last_trade_id);
    expect(f.completeness).to.be.greaterThan(0.5);
  });

  it('readSnapshot is atomic under concurrent writes: ob and tr:state come from one batch', async () => {
    // Each batch moves ob last_trade_id and tr:state last_trade_id together; a torn read would differ.
    const trades = events.filter((m) => m.message === 'TradesStreamEvent');
    expect(trades.length).to.be.greaterThan(20);
    const writes = (async () => {
      for (const m of trades) await apply([m]);
    })();
    let reads = 0;
    let done = false;
    void writes.then(() => (done = true));
    while (!done) {
      const s = await readSnapshot(client, keys, SYMBOL);
      expect(s.orderBook.last_trade_id ?? '').to.equal(s.tradeState.last_trade_id ?? '');
      reads++;
    }
    await writes;
    expect(reads).to.be.greaterThan(0);
  });

  it('verify core: agrees with vectors served from the same state and detects a tampered vector', async () => {
    // Serve vectors at several points of the log, as the sidecar would.
    const served: ServedVector[] = [];
    const cuts = [500, 1200, 2000, events.length];
    let from = 0;
    for (const cut of cuts) {
      await apply(events.slice(from, cut));
      from = cut;
      const snap = await readSnapshot(client, keys, SYMBOL);
      const asOf = Math.floor(Number(snap.tradeState.event_time_us) / 1000) + 100;
      const v = computeFeatures(snap, asOf);
      const fields: Record<string, string> = {};
      for (const [k, val] of Object.entries(v)) fields[k] = String(val);
      served.push({ id: `${cut}-0`, fields });
    }
    const ok = await verifyServedVectors({
      scratch,
      keys,
      symbol: SYMBOL,
      events,
      served,
      writerOptions: WRITER,
    });
    expect(ok.results.map((r) => r.mismatches)).to.deep.equal(served.map(() => []));
    expect(ok.mismatched).to.equal(0);

    const tampered = served.map((s, i) =>
      i === 1 ? { ...s, fields: { ...s.fields, volume_1s: String(Number(s.fields.volume_1s) + 1e-6) } } : s,
    );
    const bad = await verifyServedVectors({
      scratch,
      keys,
      symbol: SYMBOL,
      events,
      served: tampered,
      writerOptions: WRITER,
    });
    expect(bad.mismatched).to.equal(1);
    expect(bad.results[1]?.mismatches.map((m) => m.field)).to.deep.equal(['volume_1s']);
  });
});
