import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parseConfig } from '../../src/config/config';
import { COMPLETENESS_INPUTS, STALE_AFTER_MS } from '../../src/features/compute';
import { readServedVectors } from '../../src/app/features-verify';
import type { ServedVector } from '../../src/features/verify';
import { findFreePort } from '../../src/dev/localstack/ports';
import { MarketSimulator } from '../../src/replay/simulator';
import type { SbeMessage } from '../../src/sbe/messages';
import { DEFAULT_DEGRADED_POLICY } from '../../src/sidecar/degraded';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';
import { waitUntil } from '../helpers/pipeline';
import { spawnSidecar, type SidecarProcess } from '../helpers/sidecar-process';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// A real `aggregator sidecar` process and a real redis-server, the state written through StateWriter from the
// simulator at wall-clock pace (each event once the clock passes its time plus a feed latency). Two losses the
// served vector must show, as docs/features.md ("What an outage does") describes: a trade-stream outage while
// the book streams keep flowing, and an event time one hour ahead already in Redis.

const S = 'BTCUSDT';
const keys = new Keys({ clusterMode: false });
const WRITER = { orderBookLevels: 10, diffBufferMaxLength: 1000, deadLetterMaxLen: 1000 };
/** Events reach Redis this long after their time, like a live feed's latency (so data_age_ms is never 0). */
const FEED_LATENCY_MS = 1000;
/** Written at once before the feed paces itself, so that the price 10 s ago exists from the first tick. */
const BACKLOG_MS = 12_000;
const N = COMPLETENESS_INPUTS.length;
const { minCompleteness, maxReserveAgeMs } = DEFAULT_DEGRADED_POLICY;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const field = (vector: ServedVector, name: string): number => Number(vector.fields[name]);

/** The simulator's events written as the wall clock reaches them; trades can be cut off (a stream outage). */
class WallClockFeed {
  tradesFlowing = true;
  private held: SbeMessage | undefined;

  constructor(
    private readonly simulator: MarketSimulator,
    private readonly writer: StateWriter,
  ) {}

  /** Writes every event whose time is <= untilUs, in one StateWriter call. */
  async writeUntil(untilUs: bigint): Promise<void> {
    const batch: SbeMessage[] = [];
    for (;;) {
      const message = this.held ?? this.simulator.next().message;
      if (message.eventTime > untilUs) {
        this.held = message;
        break;
      }
      this.held = undefined;
      if (message.message !== 'TradesStreamEvent' || this.tradesFlowing) batch.push(message);
    }
    if (batch.length > 0) await this.writer.write(groupBySymbol(batch).values(), []);
  }
}

describe('feature freshness with a real sidecar: stream outages and clock errors lower completeness', function () {
  this.timeout(120_000);

  let tmpDir: string;
  let server: TestRedis;
  let port: number;
  let client: RedisClient;
  let configFile: string;
  let sidecar: SidecarProcess | undefined;
  let stopFeed: (() => Promise<void>) | undefined;

  before(async () => {
    server = await startTestRedis('feature-freshness-it');
    tmpDir = server.dir;
    port = server.port;
    client = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: 'freshness-it' });
    configFile = path.join(tmpDir, 'sidecar.yaml');
    fs.writeFileSync(
      configFile,
      `service_name: freshness-it\nredis:\n  port: ${port}\nprocessing:\n  symbols: [${S}]\n` +
        `  feature_update_interval_seconds: 1\nreanchor:\n  enabled: false\n` +
        `health:\n  host: 127.0.0.1\n  port: ${await findFreePort()}\nmetrics:\n  enable_prometheus: false\n` +
        `logging:\n  level: warn\n  file: ${path.join(tmpDir, 'sidecar.log')}\n`,
    );
  });

  after(async () => {
    client?.disconnect();
    await server?.stop();
  });

  afterEach(async () => {
    await stopFeed?.();
    await sidecar?.stop();
    stopFeed = undefined;
    sidecar = undefined;
  });

  /** An empty database, a paced feed (backlog first) and a sidecar serving complete vectors. */
  async function startMarket(seed: number): Promise<WallClockFeed> {
    await client.flushdb();
    const startUs = BigInt(Date.now() - FEED_LATENCY_MS - BACKLOG_MS) * 1000n;
    const simulator = new MarketSimulator({
      seed,
      symbols: [S],
      startTimeUs: startUs,
      actionsPerSecond: 100,
    });
    const feed = new WallClockFeed(simulator, new StateWriter(client, keys, WRITER));
    const feedClock = (): bigint => BigInt(Date.now() - FEED_LATENCY_MS) * 1000n;
    await feed.writeUntil(feedClock());
    let running = true;
    const loop = (async () => {
      while (running) {
        await feed.writeUntil(feedClock());
        await sleep(50);
      }
    })();
    loop.catch(() => undefined); // reported by stopFeed
    stopFeed = async () => {
      running = false;
      await loop;
    };
    sidecar = spawnSidecar(configFile, `freshness-${seed}`);
    await waitUntil(
      async () => (await client.hget(keys.features(S), 'completeness')) === '1',
      20_000,
      'a complete vector served',
      async () => `served ${JSON.stringify(await client.hgetall(keys.features(S)))}\n${sidecar?.stderr()}`,
    );
    return feed;
  }

  /** HGETALL feat:<S> every 200 ms (as an inference reader does) until feature_ts reaches untilMs. */
  async function readServedUntil(untilMs: number, timeoutMs: number): Promise<Record<string, string>[]> {
    const reads: Record<string, string>[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const served = await client.hgetall(keys.features(S));
      reads.push(served);
      if (Number(served.feature_ts) >= untilMs) return reads;
      if (Date.now() > deadline)
        throw new Error(`feature_ts ${served.feature_ts} never reached ${untilMs}\n${sidecar?.stderr()}`);
      await sleep(200);
    }
  }

  it('a trade-stream outage: completeness < 0.5 once trades are 5 s old, then the degraded modes', async () => {
    const feed = await startMarket(31);
    feed.tradesFlowing = false; // bestBidAsk and depth keep flowing, at the current time
    const outageAtMs = Date.now();
    // 5 s until the trades are stale, the 10 s of re-served last good vector, then computed vectors.
    const reads = await readServedUntil(
      outageAtMs + STALE_AFTER_MS + maxReserveAgeMs + 3000,
      STALE_AFTER_MS + maxReserveAgeMs + 15_000,
    );
    await stopFeed?.();
    const state = await client.hgetall(keys.tradeState(S));
    const lastTradeMs = Number(state.px_time_us) / 1000;
    expect(lastTradeMs).to.be.below(outageAtMs);
    expect(Number(state.event_time_us) / 1000, 'book events kept T moving').to.be.above(lastTradeMs + 10_000);

    const tradesStale = (featureTs: number): boolean => featureTs - lastTradeMs > STALE_AFTER_MS;
    for (const served of reads) {
      if (!tradesStale(Number(served.feature_ts))) continue;
      expect(Number(served.completeness), JSON.stringify(served)).to.be.below(minCompleteness);
    }

    // Every vector served (the history), against the degraded rules of docs/features.md.
    const history = await readServedVectors(client, keys, S);
    const outage = history.filter((v) => tradesStale(field(v, 'feature_ts')));
    for (const v of outage) expect(field(v, 'completeness'), v.id).to.be.below(minCompleteness);
    const good = [...history].reverse().find((v) => field(v, 'completeness') >= minCompleteness);
    expect(good, 'a good vector before the outage').to.not.equal(undefined);
    const goodTs = field(good!, 'feature_ts');
    const reserved = outage.filter((v) => field(v, 'feature_ts') - goodTs <= maxReserveAgeMs);
    const computed = outage.filter((v) => field(v, 'feature_ts') - goodTs > maxReserveAgeMs);
    expect(reserved, 'the last good vector re-served').to.not.deep.equal([]);
    expect(computed, 'the computed vector served after 10 s').to.not.deep.equal([]);
    for (const v of reserved) {
      const ts = field(v, 'feature_ts');
      expect(field(v, 'completeness'), v.id).to.equal(
        Math.min(field(good!, 'completeness'), minCompleteness) / 2,
      );
      expect(field(v, 'data_age_ms'), v.id).to.equal(field(good!, 'data_age_ms') + (ts - goodTs));
      for (const name of ['price', 'volume_1s', 'volume_5s', 'src_last_trade_id', 'src_bba_update_id'])
        expect(v.fields[name], `${v.id} ${name}`).to.equal(good!.fields[name]);
    }
    for (const v of computed) {
      // The book inputs and event_time are fresh; the six trade-derived inputs are not.
      expect(field(v, 'completeness'), v.id).to.be.closeTo(5 / N, 1e-12);
      expect(field(v, 'volume_1s'), v.id).to.equal(0);
      expect(field(v, 'volume_5s'), v.id).to.equal(0);
      expect(field(v, 'data_age_ms'), v.id).to.be.within(1, STALE_AFTER_MS);
    }
  });

  it('an event time one hour ahead already in Redis: completeness <= 5/11, data_age_ms not 0 from it', async () => {
    await startMarket(32);
    const futureUs = String((Date.now() + 3_600_000) * 1000);
    // What a processor without the skew check (or a clock error) leaves: T is kept as a maximum.
    await client.hset(keys.tradeState(S), 'event_time_us', futureUs);
    const setAtMs = Date.now();
    const reads = await readServedUntil(setAtMs + maxReserveAgeMs + 3000, maxReserveAgeMs + 15_000);
    await stopFeed?.();
    expect(await client.hget(keys.tradeState(S), 'event_time_us'), 'T still one hour ahead').to.equal(
      futureUs,
    );

    const afterSet = (featureTs: number): boolean => featureTs > setAtMs;
    for (const served of reads) {
      if (!afterSet(Number(served.feature_ts))) continue;
      expect(Number(served.completeness), JSON.stringify(served)).to.be.at.most(5 / N);
      expect(Number(served.data_age_ms), JSON.stringify(served)).to.be.above(0);
    }
    const history = await readServedVectors(client, keys, S);
    const affected = history.filter((v) => afterSet(field(v, 'feature_ts')));
    expect(affected).to.not.deep.equal([]);
    for (const v of affected) {
      expect(field(v, 'completeness'), v.id).to.be.at.most(5 / N);
      expect(field(v, 'data_age_ms'), v.id).to.be.above(0);
    }
    // Past the 10 s of re-served last good vector: the computed one, its age from the fresh book and trades.
    const last = history[history.length - 1]!;
    expect(field(last, 'completeness')).to.be.closeTo(5 / N, 1e-12);
    expect(field(last, 'data_age_ms')).to.be.within(1, STALE_AFTER_MS);
    expect(last.fields.src_event_time_us).to.equal(futureUs);
  });
});
