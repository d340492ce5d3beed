import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { silentLogger } from '../../src/logging/logger';
import { ReanchorListener, type HandledOutcome } from '../../src/reanchor/listener';
import { ReanchorMonitor } from '../../src/reanchor/monitor';
import { Reanchorer, type SnapshotSource } from '../../src/reanchor/reanchorer';
import { REANCHOR_GROUP, requestReanchor } from '../../src/reanchor/requests';
import { RestBannedError, RestClient } from '../../src/rest/client';
import { RedisRestGate } from '../../src/reanchor/rest-gate';
import {
  SimulatedExchange,
  startSimExchangeServer,
  type SimExchangeServer,
} from '../../src/dev/rest/sim-server';
import type { DepthDiffStreamEvent, SbeMessage } from '../../src/sbe/messages';
import { groupBySymbol } from '../../src/state/batch';
import type { RestDepthSnapshot } from '../../src/state/book';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';
import { ReferenceBook } from '../helpers/book-reference';
import { repoRoot } from '../helpers/paths';
import { snapshotKeys } from '../helpers/redis-snapshot';
import { withoutRepairBookkeeping } from '../helpers/trade-view';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// Re-anchoring end to end against a real redis-server and the simulated exchange's REST API over HTTP: requests on
// the durable stream, listeners in a consumer group, the fleet lock and coalescing, the orchestration with its
// retries, a listener process killed mid-re-anchor, and REST failures. Live writes go on while re-anchors run.

const S = 'BTCUSDT';
const LEVELS = 10;
const keys = new Keys({ clusterMode: false });

function sortedSide(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).sort(([a], [b]) => a.localeCompare(b)));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('re-anchor: requests, listeners, lock and orchestration (real redis-server, simulated exchange REST)', function () {
  this.timeout(120_000);
  let tmpDir: string;
  let redisPort: number;
  let server: TestRedis;
  let redis: RedisClient;
  let exchange: SimulatedExchange;
  let rest: SimExchangeServer;
  const running: Array<{ stop(): Promise<void> }> = [];
  const clients: RedisClient[] = [];

  before(async () => {
    server = await startTestRedis('reanchor-flow');
    tmpDir = server.dir;
    redisPort = server.port;
    redis = client('reanchor-flow');
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushall();
    exchange = new SimulatedExchange({ seed: 7, symbols: [S], startTimeUs: 1_700_000_000_000_000n });
    rest = await startSimExchangeServer({ port: 0, exchange });
  });

  afterEach(async () => {
    for (const r of running.splice(0)) await r.stop();
    await rest.stop();
  });

  function client(name: string): RedisClient {
    const c = createRedisClient(parseConfig({ redis: { port: redisPort } }).redis, { connectionName: name });
    clients.push(c);
    return c;
  }

  function restClient(maxRetries = 2): RestClient {
    return new RestClient({
      baseUrl: rest.url,
      maxRetries,
      backoffBaseMs: 20,
      backoffMaxMs: 200,
      timeoutMs: 3000,
    });
  }

  /** A SnapshotSource that records every depth snapshot handed to the re-anchor, and how many fetches overlap. */
  function recording(source: SnapshotSource): SnapshotSource & {
    snapshots: RestDepthSnapshot[];
    maxInFlight: number;
  } {
    let inFlight = 0;
    const out = {
      snapshots: [] as RestDepthSnapshot[],
      maxInFlight: 0,
      async getDepth(symbol: string, limit: number) {
        inFlight++;
        out.maxInFlight = Math.max(out.maxInFlight, inFlight);
        try {
          const depth = await source.getDepth(symbol, limit);
          out.snapshots.push(depth);
          return depth;
        } finally {
          inFlight--;
        }
      },
      getTrades: (symbol: string, limit: number) => source.getTrades(symbol, limit),
    };
    return out;
  }

  function reanchorer(source: SnapshotSource, maxAttempts = 5, maxBanWaitMs?: number): Reanchorer {
    return new Reanchorer({
      client: redis,
      keys,
      source,
      logger: silentLogger(),
      depthLimit: 1000,
      tradesLimit: 1000,
      levels: LEVELS,
      maxAttempts,
      backoffBaseMs: 10,
      backoffMaxMs: 50,
      maxBanWaitMs,
    });
  }

  /** Live writes paced like a busy market (a few thousand events/s) until the returned stop() is awaited. */
  function pacedWrites(m: ReturnType<typeof market>): () => Promise<void> {
    let live = true;
    const writes = (async () => {
      while (live) {
        await m.feed(25);
        await sleep(5);
      }
    })();
    return async () => {
      live = false;
      await writes;
    };
  }

  function listener(id: string, source: SnapshotSource, claimIdleMs = 60_000): ReanchorListener {
    const l = new ReanchorListener({
      client: redis,
      blockingClient: client(`blocking-${id}`),
      keys,
      symbols: [S],
      listenerId: id,
      reanchorer: reanchorer(source),
      logger: silentLogger(),
      claimIdleMs,
      blockMs: 100,
    });
    l.start();
    running.push(l);
    return l;
  }

  /** The processors' part: exchange events written in batches; `dropDiff` drops one depth diff (a lost record). */
  function market(writer: StateWriter) {
    const delivered: SbeMessage[] = [];
    let dropNext = false;
    return {
      delivered,
      dropOneDiff() {
        dropNext = true;
      },
      async feed(count: number, batch = 25): Promise<{ gaps: number }> {
        let gaps = 0;
        for (let done = 0; done < count; done += batch) {
          const messages: SbeMessage[] = [];
          for (let i = 0; i < batch; i++) {
            const m = exchange.next().message;
            if (dropNext && m.message === 'DepthDiffStreamEvent') {
              dropNext = false;
              continue;
            }
            messages.push(m);
          }
          delivered.push(...messages);
          const result = await writer.write(groupBySymbol(messages).values(), []);
          for (const r of result.symbols) {
            if (r.depth?.gap) {
              gaps++;
              // What the processor does on a gap (src/app/processor.ts, onIntegrityIssue).
              await requestReanchor(redis, keys, {
                symbol: r.symbol,
                reason: 'depth_gap',
                source: 'processor',
              });
            }
          }
        }
        return { gaps };
      },
    };
  }

  function newWriter(): StateWriter {
    return new StateWriter(client('writer'), keys, {
      orderBookLevels: LEVELS,
      diffBufferMaxLength: 1000,
      deadLetterMaxLen: 1000,
    });
  }

  async function unacknowledged(): Promise<number> {
    const summary = (await redis.xpending(keys.reanchorRequests(), REANCHOR_GROUP)) as [number, ...unknown[]];
    return summary[0];
  }

  it('an injected depth gap: the processor requests, a listener re-anchors under live writes, and the book equals the snapshot plus the later diffs', async () => {
    const source = recording(restClient());
    const outcomes: HandledOutcome[] = [];
    listener('L1', source).onHandled((_r, o) => outcomes.push(o));
    const m = market(newWriter());

    // First anchor (the book starts out of sync: no snapshot), with live writes during it.
    await m.feed(300);
    await requestReanchor(redis, keys, { symbol: S, reason: 'out_of_sync:no_snapshot', source: 'sidecar' });
    let live = true;
    const writes = (async () => {
      while (live) await m.feed(25);
    })();
    await until('the first swap', () => (outcomes.some((o) => o.kind === 'ran') ? true : undefined));
    live = false;
    await writes;
    expect(await redis.hget(keys.bookState(S), 'status')).to.equal('in_sync');

    // A lost diff: the book goes out of sync, the processor's request re-anchors it while writes go on.
    await m.feed(200);
    m.dropOneDiff();
    const { gaps } = await m.feed(50);
    expect(gaps).to.equal(1);
    expect(await redis.hget(keys.bookState(S), 'reason')).to.equal('gap');
    live = true;
    const writes2 = (async () => {
      while (live) await m.feed(25);
    })();
    await until('the second swap', () =>
      outcomes.filter((o) => o.kind === 'ran').length >= 2 ? true : undefined,
    );
    await m.feed(100);
    live = false;
    await writes2;
    await m.feed(200);

    const second = outcomes.filter((o) => o.kind === 'ran')[1];
    expect(second?.kind === 'ran' && second.report.outcome).to.equal('swapped');
    const report = second?.kind === 'ran' ? second.report : undefined;
    const used = source.snapshots.find((s) => s.lastUpdateId === report?.build?.lastUpdateId);
    expect(used, 'the snapshot of the successful attempt').to.not.equal(undefined);

    // The reference: that snapshot, then every diff delivered after it (older ones are ignored by id).
    const ref = new ReferenceBook({ levels: LEVELS, bufferMax: 1000 });
    expect(ref.anchor({ ...used! }).code).to.equal(1);
    ref.applyDepthBatch(
      m.delivered.filter((x): x is DepthDiffStreamEvent => x.message === 'DepthDiffStreamEvent'),
    );
    const state = await redis.hgetall(keys.bookState(S));
    expect(state.status).to.equal('in_sync');
    expect(state.book_update_id).to.equal(String(ref.bookId));
    expect(state.reanchors).to.equal('2');
    expect(sortedSide(await redis.hgetall(keys.bookLevels(S, 'bids')))).to.deep.equal(
      Object.fromEntries([...ref.bids].sort(([a], [b]) => a.localeCompare(b))),
    );
    expect(sortedSide(await redis.hgetall(keys.bookLevels(S, 'asks')))).to.deep.equal(
      Object.fromEntries([...ref.asks].sort(([a], [b]) => a.localeCompare(b))),
    );
    expect(await unacknowledged()).to.equal(0);
    const stats = await redis.hgetall(keys.reanchorStats(S));
    expect(stats).to.include({ swapped: '2', last_outcome: 'swapped', running: '0' });
    expect(await redis.exists(keys.reanchorFlag(S))).to.equal(0);
  });

  it('concurrent requests for one symbol: one re-anchor at a time across two listeners, the others coalesced, none lost', async () => {
    const source = recording(restClient());
    // Every depth answer takes 300 ms, so the requests all arrive while the first re-anchor runs.
    rest.faults.add({ kind: 'slow', delayMs: 300 }, 50, 'depth');
    const outcomes: Array<[string, HandledOutcome]> = [];
    for (const id of ['A', 'B']) listener(id, source).onHandled((r, o) => outcomes.push([r.id, o]));
    const m = market(newWriter());
    await m.feed(300);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push(await requestReanchor(redis, keys, { symbol: S, reason: 'operator', source: 'operator' }));
    }
    // Paced like a busy market: an unpaced loop here outruns the diff buffer (1000) during the slow snapshots, and
    // a buffer that dropped diffs can no longer be bridged by any snapshot.
    const stopWrites = pacedWrites(m);
    // All six handled, and the follow-ups they caused, until nothing is left.
    await until('every request handled', async () => {
      const handled = new Set(outcomes.map(([id]) => id));
      const quiet =
        ids.every((id) => handled.has(id)) &&
        (await unacknowledged()) === 0 &&
        (await redis.exists(keys.reanchorFlag(S))) === 0 &&
        (await redis.xlen(keys.reanchorRequests())) === outcomes.length;
      return quiet ? true : undefined;
    });
    await stopWrites();

    expect(source.maxInFlight, 'REST fetches of two re-anchors overlapped').to.equal(1);
    const ran = outcomes.filter(([, o]) => o.kind === 'ran');
    const coalesced = outcomes.filter(([, o]) => o.kind === 'coalesced');
    expect(coalesced.length).to.be.greaterThan(0);
    expect(ran.length + coalesced.length).to.equal(outcomes.length);
    for (const [, o] of ran) expect(o.kind === 'ran' && o.report.outcome).to.equal('swapped');
    // Requests queued while the first ran came after its snapshot was requested... or before: either way exactly
    // one follow-up per run that had coalesced requests newer than its snapshot, and the last run leaves none.
    const followUps = ran.filter(([, o]) => o.kind === 'ran' && o.followUp).length;
    expect(await redis.xlen(keys.reanchorRequests())).to.equal(6 + followUps);
    const stats = await redis.hgetall(keys.reanchorStats(S));
    expect(Number(stats.started)).to.equal(ran.length);
    expect(Number(stats.coalesced)).to.equal(coalesced.length);
    expect(Number(stats.swapped)).to.equal(ran.length);
    expect(await redis.exists(keys.reanchorPending(S))).to.equal(0);
    expect(await redis.hget(keys.bookState(S), 'status')).to.equal('in_sync');
  });

  for (const count of [2, 3]) {
    it(`${count} listeners and a slow exchange: every request is handled once, none is run twice or taken over`, async () => {
      // Each depth answer takes 600 ms, twice the claim idle time: a request that waited in a listener's hands while
      // it ran another was claimed by a second listener and run there too, then run again by the first.
      rest.faults.add({ kind: 'slow', delayMs: 600 }, 50, 'depth');
      const source = recording(restClient());
      const handled: Array<[string, string, HandledOutcome]> = [];
      const m = market(newWriter());
      await m.feed(300);
      // The requests wait in the stream before any listener reads: the first read takes as many as it may.
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        ids.push(await requestReanchor(redis, keys, { symbol: S, reason: 'operator', source: 'operator' }));
      }
      const fleet = Array.from({ length: count }, (_, i) => {
        const id = `L${i + 1}`;
        const l = listener(id, source, 300);
        l.onHandled((r, o) => handled.push([r.id, id, o]));
        return l;
      });
      const stopWrites = pacedWrites(m);
      await until('every request handled and the fleet quiet', async () => {
        const seen = new Set(handled.map(([id]) => id));
        const all = await redis.xlen(keys.reanchorRequests());
        const quiet =
          ids.every((id) => seen.has(id)) &&
          seen.size === all &&
          (await unacknowledged()) === 0 &&
          (await redis.exists(keys.reanchorFlag(S))) === 0;
        return quiet ? true : undefined;
      });
      await sleep(1000); // a duplicate run, if any, would start within a claim period
      await stopWrites();
      const byId = new Map<string, number>();
      for (const [id, , o] of handled) if (o.kind !== 'not-owned') byId.set(id, (byId.get(id) ?? 0) + 1);
      const twice = [...byId].filter(([, n]) => n > 1);
      expect(twice, JSON.stringify(handled.map(([id, by, o]) => [id, by, o.kind]))).to.deep.equal([]);
      expect(fleet.map((l) => l.stats().takenOver)).to.deep.equal(fleet.map(() => 0));
      expect(source.maxInFlight, 'REST fetches of two re-anchors overlapped').to.equal(1);
      for (const [, , o] of handled) if (o.kind === 'ran') expect(o.report.outcome).to.equal('swapped');
      expect((await redis.hgetall(keys.reanchorStats(S))).takeovers ?? '0').to.equal('0');
      expect(await redis.hget(keys.bookState(S), 'status')).to.equal('in_sync');
    });
  }

  it('a lock lost while running: the renewals stop, the entry stays with the listener that claimed it, unacknowledged', async () => {
    rest.faults.add({ kind: 'slow', delayMs: 1500 }, 1, 'depth');
    const outcomes: HandledOutcome[] = [];
    const a = listener('A', restClient(), 300);
    a.onHandled((_r, o) => outcomes.push(o));
    const m = market(newWriter());
    await m.feed(300);
    const id = await requestReanchor(redis, keys, { symbol: S, reason: 'operator', source: 'operator' });
    await until('A to take the lock', async () =>
      (await redis.get(keys.reanchorFlag(S))) === `A|${id}` ? true : undefined,
    );
    // Another listener took the re-anchor over: the lock and the entry are its own now, and it keeps the entry
    // claimed as a live listener does (else A would rightly claim it back from a dead B).
    await redis.set(keys.reanchorFlag(S), `B|${id}`, 'EX', 300);
    const bRenews = setInterval(
      () => void redis.call('XCLAIM', keys.reanchorRequests(), REANCHOR_GROUP, 'B', '0', id, 'JUSTID'),
      100,
    );
    running.push({ stop: () => Promise.resolve(clearInterval(bRenews)) });
    await redis.call('XCLAIM', keys.reanchorRequests(), REANCHOR_GROUP, 'B', '0', id, 'JUSTID');
    const owner = async () => {
      const entry = (await redis.xpending(keys.reanchorRequests(), REANCHOR_GROUP, id, id, 1)) as unknown[][];
      return entry[0] === undefined ? undefined : String(entry[0][1]);
    };
    await sleep(700); // seven of A's renewal periods
    expect(await owner(), 'A re-claimed the entry after losing the lock').to.equal('B');
    await until('A to end its run', () => (outcomes.length > 0 ? true : undefined));
    const outcome = outcomes[0]!;
    expect(outcome.kind === 'ran' && outcome.report.outcome).to.equal('lock-lost');
    expect(await owner(), 'A acknowledged an entry B holds').to.equal('B');
    expect(await redis.get(keys.reanchorFlag(S)), "B's lock is left alone").to.equal(`B|${id}`);
  });

  it('a listener process killed mid-re-anchor: its request is claimed by another listener, which takes the lock over and re-anchors', async () => {
    const m = market(newWriter());
    await m.feed(300);
    // Anchored first, so the sidecar's own monitor has nothing to request (in sync, not stale).
    await redis.set(keys.reanchorFlag(S), 'test|0-1', 'EX', 300);
    expect((await reanchorer(restClient()).run(S)).outcome).to.equal('swapped');
    await redis.del(keys.reanchorStats(S));
    // The sidecar process (its listener) gets a depth answer only after 20 s: it is killed while waiting for it.
    rest.faults.add({ kind: 'slow', delayMs: 20_000 }, 1, 'depth');
    const configFile = path.join(tmpDir, 'sidecar.yaml');
    fs.writeFileSync(
      configFile,
      `redis:\n  port: ${redisPort}\nprocessing:\n  symbols: ['${S}']\n` +
        `reanchor:\n  rest:\n    base_url: '${rest.url}'\n    timeout_ms: 30000\n  claim_idle_ms: 1500\n` +
        `  stale_after_seconds: 3600\n  request_interval_seconds: 3600\n` +
        `logging:\n  level: 'debug'\n  file: '${path.join(tmpDir, 'sidecar-a.log')}'\n`,
    );
    const child: ChildProcess = spawn(
      process.execPath,
      [path.join(repoRoot, 'dist/src/cli/main.js'), '--config', configFile, 'sidecar', '--id', 'sidecar-A'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const id = await requestReanchor(redis, keys, { symbol: S, reason: 'operator', source: 'operator' });
      const token = await until(
        'sidecar A to take the lock',
        async () => {
          const v = await redis.get(keys.reanchorFlag(S));
          return v?.startsWith('sidecar-A|') ? v : undefined;
        },
        20_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; sidecar stderr: ${stderr}`);
      });
      expect(token).to.equal(`sidecar-A|${id}`);
      await sleep(600); // mid-re-anchor: the REST depth call is in flight
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      const consumers = (await redis.xpending(
        keys.reanchorRequests(),
        REANCHOR_GROUP,
        '-',
        '+',
        10,
      )) as Array<[string, string, number, number]>;
      expect(consumers.map((c) => [c[0], c[1]])).to.deep.include([id, 'sidecar-A']);

      const outcomes: HandledOutcome[] = [];
      const b = listener('B', restClient(), 1500);
      b.onHandled((_r, o) => outcomes.push(o));
      await until('listener B to finish the re-anchor', () => (outcomes.length > 0 ? true : undefined));
      const o = outcomes[0]!;
      expect(o.kind === 'ran' && o.report.outcome).to.equal('swapped');
      expect(b.stats()).to.include({ claimed: 1, takenOver: 1, swapped: 1 });
      expect(await unacknowledged()).to.equal(0);
      expect(await redis.exists(keys.reanchorFlag(S))).to.equal(0);
      const stats = await redis.hgetall(keys.reanchorStats(S));
      expect(stats).to.include({ started: '1', takeovers: '1', swapped: '1' });
      expect(await redis.hget(keys.bookState(S), 'status')).to.equal('in_sync');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  describe('trade gaps: repaired from REST trades, without a book rebuild', () => {
    /** Trade messages only, in batches of 10; the messages at `lost` indices never arrive (a lost record). */
    function tradeFeed(writer: StateWriter, lost: ReadonlySet<number>, request = true) {
      const all: SbeMessage[] = [];
      let index = 0;
      return {
        all,
        async feed(count: number): Promise<number> {
          let gaps = 0;
          for (let done = 0; done < count; done += 10) {
            const batch: SbeMessage[] = [];
            const kept: SbeMessage[] = [];
            while (batch.length < 10) {
              const m = exchange.next().message;
              if (m.message !== 'TradesStreamEvent') continue;
              batch.push(m);
              if (!lost.has(index++)) kept.push(m);
            }
            all.push(...batch);
            const result = await writer.write(groupBySymbol(kept).values(), []);
            for (const r of result.symbols) {
              if (request && (r.trades?.gaps.length ?? 0) > 0) {
                gaps++;
                // What the processor does on a trade gap (src/kcl/shard-processor.ts, reportIntegrity).
                await requestReanchor(redis, keys, {
                  symbol: r.symbol,
                  reason: 'trade_gap',
                  source: 'processor',
                });
              }
            }
          }
          return gaps;
        },
      };
    }

    /** Every trade key of the symbol, bucket aggregates as hex; the repair's own bookkeeping left out. */
    async function tradeKeys(): Promise<Record<string, unknown>> {
      const state = withoutRepairBookkeeping(await redis.hgetall(keys.tradeState(S)));
      const buckets = await redis.hgetallBuffer(keys.tradeBuckets(S));
      return {
        state: sortedSide(state),
        buckets: sortedSide(
          Object.fromEntries(Object.entries(buckets).map(([k, v]) => [k, v.toString('hex')])),
        ),
        px: sortedSide(await redis.hgetall(keys.priceHistory(S))),
        tr1: sortedSide(await redis.hgetall(keys.tradeWindow(S, 1))),
        tr5: sortedSide(await redis.hgetall(keys.tradeWindow(S, 5))),
      };
    }

    /** The control: every trade message once, in the same batches, on an empty Redis. */
    async function control(all: readonly SbeMessage[]): Promise<Record<string, unknown>> {
      await redis.flushall();
      const writer = newWriter();
      for (let i = 0; i < all.length; i += 10)
        await writer.write(groupBySymbol(all.slice(i, i + 10)).values(), []);
      return tradeKeys();
    }

    it('a trade_gap request repairs the windows, px: and counters to the control, fetching trades only', async () => {
      const outcomes: HandledOutcome[] = [];
      listener('L1', restClient()).onHandled((_r, o) => outcomes.push(o));
      const feed = tradeFeed(newWriter(), new Set([600, 601, 602, 640]));
      expect(await feed.feed(700)).to.equal(2);
      await until('the repair', () => (outcomes.some((o) => o.kind === 'ran') ? true : undefined));
      await feed.feed(100);
      const ran = outcomes.filter((o): o is Extract<HandledOutcome, { kind: 'ran' }> => o.kind === 'ran');
      expect(ran[0]!.report.scope).to.equal('trades');
      expect(ran[0]!.report.outcome).to.equal('repaired');
      await until('both requests handled', async () => ((await unacknowledged()) === 0 ? true : undefined));
      const paths = rest.requests.map((r) => r.path.split('?')[0]);
      expect(paths.length).to.be.at.least(1);
      expect(
        paths.every((p) => p === '/api/v3/trades'),
        paths.join(' '),
      ).to.equal(true);
      const state = await redis.hgetall(keys.tradeState(S));
      expect(state).to.include({ open_gaps: '', gaps_repaired: '2', trades_repaired: '4' });
      const stats = await redis.hgetall(keys.reanchorStats(S));
      expect(stats.last_repair_outcome).to.equal('repaired');
      expect(stats.swapped, 'no book rebuild').to.equal(undefined);
      expect(await redis.exists(keys.bookState(S))).to.equal(0);
      const repaired = await tradeKeys();
      expect(repaired).to.deep.equal(await control(feed.all));
    });

    it('a gap the exchange no longer reaches is reported unrepairable: counted, no book rebuilt, no depth request', async () => {
      exchange = new SimulatedExchange({
        seed: 7,
        symbols: [S],
        startTimeUs: 1_700_000_000_000_000n,
        tradeHistory: 30,
      });
      await rest.stop();
      rest = await startSimExchangeServer({ port: 0, exchange });
      const outcomes: HandledOutcome[] = [];
      // The stream lags: the gap is reported only once the exchange's 30 recent trades are past it.
      const feed = tradeFeed(newWriter(), new Set([100]));
      await feed.feed(200);
      const before = await tradeKeys();
      listener('L1', restClient()).onHandled((_r, o) => outcomes.push(o));
      await until('the repair run', () => (outcomes.some((o) => o.kind === 'ran') ? true : undefined));
      const ran = outcomes.find((o): o is Extract<HandledOutcome, { kind: 'ran' }> => o.kind === 'ran')!;
      expect(ran.report.outcome).to.equal('repaired');
      expect(ran.report.repair?.gaps.map((g) => g.outcome)).to.deep.equal(['before_rest']);
      expect(await tradeKeys()).to.deep.equal(before);
      const state = await redis.hgetall(keys.tradeState(S));
      expect(state).to.include({ open_gaps: '', gaps_unrepairable: '1', gap_count: '1' });
      expect(rest.requests.every((r) => r.path.startsWith('/api/v3/trades'))).to.equal(true);
      expect(await redis.exists(keys.bookState(S))).to.equal(0);
    });

    it('a book re-anchor repairs the open trade gaps too, with the REST trades it fetches anyway', async () => {
      const m = market(newWriter());
      await m.feed(300);
      await redis.set(keys.reanchorFlag(S), 'test|0-1', 'EX', 300);
      expect((await reanchorer(restClient()).run(S)).outcome).to.equal('swapped');
      await redis.del(keys.reanchorFlag(S));
      const feed = tradeFeed(newWriter(), new Set([300]));
      await feed.feed(400);
      expect(await redis.hget(keys.tradeState(S), 'open_gaps')).to.not.equal('');
      await redis.set(keys.reanchorFlag(S), 'test|0-2', 'EX', 300);
      const report = await reanchorer(restClient()).run(S);
      expect(report.outcome).to.equal('swapped');
      expect(report.repair?.gaps.map((g) => g.outcome)).to.deep.equal(['repaired']);
      const state = await redis.hgetall(keys.tradeState(S));
      expect(state).to.include({ open_gaps: '', gaps_repaired: '1' });
      expect(state.gap_count ?? '0').to.equal('0');
    });

    it("a gap whose request was lost (throttled): the sidecar's monitor requests its repair (backstop)", async () => {
      const outcomes: HandledOutcome[] = [];
      listener('L1', restClient()).onHandled((_r, o) => outcomes.push(o));
      const feed = tradeFeed(newWriter(), new Set([300]), false);
      await feed.feed(400);
      const monitor = new ReanchorMonitor({
        client: redis,
        keys,
        symbols: () => [S],
        staleAfterMs: 3_600_000,
        requestIntervalMs: 1000,
        logger: silentLogger(),
      });
      expect(await monitor.checkOnce()).to.deep.equal([S]);
      await until('the repair', () => (outcomes.some((o) => o.kind === 'ran') ? true : undefined));
      const request = (await redis.xrange(keys.reanchorRequests(), '-', '+')).map(([, f]) => f.join(' '));
      expect(request).to.deep.equal([`symbol ${S} reason trade_gap source sidecar`]);
      expect(await redis.hget(keys.tradeState(S), 'gaps_repaired')).to.equal('1');
      // Nothing open any more: the monitor asks for nothing.
      await sleep(1100);
      expect(await monitor.checkOnce()).to.deep.equal([]);
    });

    it('a book request coalesced into a trade repair is not covered by it: a book follow-up is queued', async () => {
      const outcomes: Array<{ reason: string; outcome: HandledOutcome }> = [];
      rest.faults.add({ kind: 'slow', delayMs: 800 }, 1, 'trades');
      // Two listeners: while one runs the repair, the other takes the book request and finds the lock held.
      for (const id of ['L1', 'L2']) {
        listener(id, restClient()).onHandled((r, o) => outcomes.push({ reason: r.reason, outcome: o }));
      }
      const feed = tradeFeed(newWriter(), new Set([50]));
      await feed.feed(100);
      await until('the repair running', async () =>
        (await redis.exists(keys.reanchorFlag(S))) ? true : undefined,
      );
      await requestReanchor(redis, keys, { symbol: S, reason: 'stale', source: 'sidecar' });
      await until('the follow-up run', () =>
        outcomes.some((o) => o.reason === 'coalesced' && o.outcome.kind === 'ran') ? true : undefined,
      );
      const kinds = outcomes.map((o) => [
        o.reason,
        o.outcome.kind === 'ran' ? o.outcome.report.scope : o.outcome.kind,
      ]);
      // In the order they ended: the coalesced request first, then the repair that held the lock, then the follow-up.
      expect(kinds).to.deep.equal([
        ['stale', 'coalesced'],
        ['trade_gap', 'trades'],
        ['coalesced', 'book'],
      ]);
    });
  });

  describe('REST failures: counted, retried with backoff, never applied', () => {
    async function liveState(): Promise<Awaited<ReturnType<typeof snapshotKeys>>> {
      const all = await snapshotKeys(redis as Redis);
      for (const key of Object.keys(all)) if (key.startsWith('reanchor:')) delete all[key];
      return all;
    }

    async function anchoredMarket(): Promise<void> {
      const m = market(newWriter());
      await m.feed(300);
      await redis.set(keys.reanchorFlag(S), 'test|0-1', 'EX', 300);
      expect((await reanchorer(restClient()).run(S)).outcome).to.equal('swapped');
      await m.feed(200);
      await redis.set(keys.reanchorFlag(S), 'test|0-2', 'EX', 300);
    }

    it('a garbage body, a 500 and a crossed snapshot are failed attempts; the next good answer is swapped in', async () => {
      await anchoredMarket();
      rest.faults.add({ kind: 'garbage' }, 1, 'depth');
      rest.faults.add({ kind: 'status', status: 500 }, 1, 'depth');
      rest.faults.add({ kind: 'crossed' }, 1, 'depth');
      const report = await reanchorer(restClient(0)).run(S);
      expect(report.outcome).to.equal('swapped');
      expect(report.attempts).to.equal(4);
      expect(report.failures.map((f) => f.stage)).to.deep.equal(['rest', 'rest', 'rest']);
      expect(report.failures.map((f) => ('error' in f ? f.error : ''))).to.satisfy(
        (errors: string[]) =>
          errors.some((e) => /RestValidationError/.test(e)) && errors.some((e) => /500/.test(e)),
      );
      const stats = await redis.hgetall(keys.reanchorStats(S));
      expect(stats).to.include({ attempt_failures: '3', last_outcome: 'swapped' });
    });

    it('429 with Retry-After is waited for by the client, then the re-anchor succeeds at its first attempt', async () => {
      await anchoredMarket();
      rest.faults.add({ kind: 'status', status: 429, retryAfterSeconds: 1 }, 1, 'depth');
      const started = Date.now();
      const report = await reanchorer(restClient(1)).run(S);
      expect(report.outcome).to.equal('swapped');
      expect(report.attempts).to.equal(1);
      expect(Date.now() - started).to.be.at.least(900);
    });

    it('a 429 with a long Retry-After is a ban of the fleet: no listener sends until it ends, the run waits it out without burning attempts', async () => {
      await anchoredMarket();
      rest.faults.add({ kind: 'status', status: 429, retryAfterSeconds: 3 }, 1, 'depth');
      // Two listeners' clients sharing the fleet's gate in Redis; 3 s is beyond what a client waits in place.
      const clientOf = (owner: string) =>
        new RestClient({
          baseUrl: rest.url,
          maxRetries: 2,
          backoffBaseMs: 20,
          maxRetryAfterMs: 1000,
          gate: new RedisRestGate(redis, keys, owner),
        });
      const a = clientOf('listener-a');
      const b = clientOf('listener-b');
      const run = reanchorer(a, 5, 10_000).run(S);
      const ban = await until('the ban in Redis', async () => {
        const until = await redis.hget(keys.restBan(), 'until_ms');
        return until === null ? undefined : Number(until);
      });
      expect(ban - Date.now()).to.be.within(1500, 3100);
      const sent = rest.requests.length;
      expect(await b.getDepth(S, 100).catch((err: unknown) => err)).to.be.instanceOf(RestBannedError);
      expect(await a.getTrades(S, 100).catch((err: unknown) => err)).to.be.instanceOf(RestBannedError);
      while (Date.now() < ban - 200) {
        expect(rest.requests.length, 'a request during the ban').to.equal(sent);
        await sleep(100);
      }
      const report = await run;
      expect(report.outcome).to.equal('swapped');
      expect(report.attempts, 'the banned attempt is not counted').to.equal(1);
      expect(report.failures.map((f) => f.stage)).to.deep.equal(['banned']);
      expect(await redis.exists(keys.restBan()), 'the ban key expires with the ban').to.equal(0);
    });

    it('a ban longer than the run waits ends it at once: failed, nothing more sent', async () => {
      await anchoredMarket();
      const gate = new RedisRestGate(redis, keys, 'listener-a');
      await gate.ban(Date.now() + 600_000, 418);
      const sent = rest.requests.length;
      const report = await reanchorer(new RestClient({ baseUrl: rest.url, gate }), 5, 10_000).run(S);
      expect(report.outcome).to.equal('failed');
      expect(report.failures.map((f) => f.stage)).to.deep.equal(['banned']);
      expect(rest.requests.length).to.equal(sent);
      expect((await redis.hgetall(keys.reanchorStats(S))).last_failure).to.match(
        /^banned by the exchange until /,
      );
    });

    it('a 418 without Retry-After is a ban of the shortest Binance length: the run ends at its first answer', async () => {
      await anchoredMarket();
      rest.faults.add({ kind: 'status', status: 418 }, 1, 'depth');
      const gate = new RedisRestGate(redis, keys, 'listener-a');
      const report = await reanchorer(new RestClient({ baseUrl: rest.url, gate }), 5, 10_000).run(S);
      expect(report.outcome).to.equal('failed');
      expect(
        report.failures.map((f) => f.stage),
        'no attempt spent before the ban',
      ).to.deep.equal(['banned']);
      const ban = await gate.bannedUntil();
      expect(ban?.status).to.equal(418);
      expect(ban!.untilMs - Date.now()).to.be.within(110_000, 120_000);
    });

    it("the fleet's weight budget: clients of two listeners share one sliding minute in Redis", async () => {
      // 120 weight per minute: two depth calls of weight 50 fit, the third waits (fails here, fail mode).
      const clientOf = (owner: string) =>
        new RestClient({
          baseUrl: rest.url,
          weightPerMinute: 120,
          onBudgetExhausted: 'fail',
          gate: new RedisRestGate(redis, keys, owner),
        });
      const a = clientOf('listener-a');
      const b = clientOf('listener-b');
      await a.getDepth(S, 1000);
      await b.getDepth(S, 1000);
      const sent = rest.requests.length;
      const err = await a.getDepth(S, 1000).catch((e: unknown) => e);
      expect(err).to.have.property('name', 'RestBudgetError');
      expect((err as { waitMs: number }).waitMs).to.be.within(55_000, 60_000);
      // Heavier than the whole minute (depth 5000: weight 250): never fits, never sent.
      const heavy = await b.getDepth(S, 5000).catch((e: unknown) => e);
      expect(heavy).to.have.property('waitMs', Infinity);
      expect(rest.requests.length).to.equal(sent);
      expect(await redis.zcard(keys.restWeight())).to.equal(2);
    });

    it('a REST answer so slow that the lock was taken over meanwhile: the stalled run is fenced off, nothing swapped', async () => {
      await anchoredMarket();
      const before = await liveState();
      const rest = restClient();
      // The listener stalls in the REST call past its lock's life; another listener takes the lock over.
      // The stalled one has not renewed since, so it still believes it holds the lock: only the swap's fence
      // (the token in reanchor:<S>) stops it.
      const stalled: SnapshotSource = {
        async getDepth(symbol, limit) {
          const depth = await rest.getDepth(symbol, limit);
          await redis.set(keys.reanchorFlag(S), 'other|0-3', 'EX', 300);
          return depth;
        },
        getTrades: (symbol, limit) => rest.getTrades(symbol, limit),
      };
      const report = await reanchorer(stalled).run(S, { token: 'test|0-2', held: () => true });
      expect(report.outcome).to.equal('lock-lost');
      expect(report.attempts).to.equal(1);
      const after = await liveState();
      for (const key of Object.keys(after)) if (key.includes('new:')) delete after[key];
      expect(after).to.deep.equal(before);
      expect(await redis.get(keys.reanchorFlag(S))).to.equal('other|0-3');
      expect(await redis.hgetall(keys.reanchorStats(S))).to.include({ last_outcome: 'lock-lost' });
    });

    it('when every attempt fails the re-anchor gives up: live state byte-identical, temporary keys gone, failure counted', async () => {
      await anchoredMarket();
      const before = await liveState();
      rest.faults.add({ kind: 'status', status: 503 }, 100, 'depth');
      const report = await reanchorer(restClient(0), 3).run(S);
      expect(report.outcome).to.equal('failed');
      expect(report.attempts).to.equal(3);
      expect(await liveState()).to.deep.equal(before);
      expect(await redis.keys('*new:*')).to.deep.equal([]);
      const stats = await redis.hgetall(keys.reanchorStats(S));
      expect(stats).to.include({ failed: '1', attempt_failures: '3', last_outcome: 'failed', running: '0' });
      expect(stats.last_failure).to.match(/503/);
    });
  });
});
