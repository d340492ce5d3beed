import { expect } from 'chai';
import sinon from 'sinon';
import type { FeatureVector, StateSnapshot } from '../../../src/features/types';
import { silentLogger } from '../../../src/logging/logger';
import { chooseVector } from '../../../src/sidecar/degraded';
import { FeatureSidecar, type FeatureSidecarOptions, type TickResult } from '../../../src/sidecar/sidecar';
import type { FeatureStore, FeatureWrite, LeaseOutcome, WriteOutcome } from '../../../src/sidecar/store';
import { Keys } from '../../../src/state/keys';
import type { RedisClient } from '../../../src/state/redis';

// FeatureSidecar with sinon fake timers and fake read / compute / store: no Redis, no real time.

const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);
const INTERVAL = 2000;

/** An in-memory FeatureStore with the scripts' semantics, plus injectable failures and delays. */
class FakeStore implements FeatureStore {
  readonly leases = new Map<string, { id: string; expiresAt: number }>();
  readonly served = new Map<string, number>();
  readonly writes: (FeatureWrite & { at: number })[] = [];
  readonly leaseCalls: { symbol: string; id: string; at: number }[] = [];
  /** Each call of the named operation shifts one entry: an Error is thrown, a number is a delay (ms). */
  readonly script: Record<'lease' | 'write', (Error | number)[]> = { lease: [], write: [] };

  private async step(op: 'lease' | 'write'): Promise<void> {
    const next = this.script[op].shift();
    if (next instanceof Error) throw next;
    if (typeof next === 'number') await new Promise((r) => setTimeout(r, next));
  }

  async renewLease(symbol: string, id: string, ttlMs: number): Promise<LeaseOutcome> {
    this.leaseCalls.push({ symbol, id, at: Date.now() });
    await this.step('lease');
    const lease = this.leases.get(symbol);
    if (lease && lease.expiresAt > Date.now()) {
      if (lease.id !== id) return 'held-by-other';
      lease.expiresAt = Date.now() + ttlMs;
      return 'renewed';
    }
    this.leases.set(symbol, { id, expiresAt: Date.now() + ttlMs });
    return 'acquired';
  }

  releaseLease(symbol: string, id: string): Promise<boolean> {
    const lease = this.leases.get(symbol);
    if (lease?.id !== id) return Promise.resolve(false);
    this.leases.delete(symbol);
    return Promise.resolve(true);
  }

  async write(write: FeatureWrite): Promise<WriteOutcome> {
    await this.step('write');
    const lease = this.leases.get(write.symbol);
    if (!lease || lease.id !== write.sidecarId || lease.expiresAt <= Date.now()) return 'not-holder';
    if ((this.served.get(write.symbol) ?? -Infinity) >= write.tickMs) return 'stale-tick';
    this.served.set(write.symbol, write.tickMs);
    this.writes.push({ ...write, at: Date.now() });
    return 'written';
  }
}

function snapshot(symbol: string): StateSnapshot {
  return {
    symbol,
    orderBook: {},
    trades1s: {},
    trades5s: {},
    tradeState: {},
    priceHistory: {},
    bookState: {},
  };
}

describe('FeatureSidecar (fake timers)', () => {
  let clock: sinon.SinonFakeTimers;
  let store: FakeStore;
  let results: TickResult[];
  let completeness: number[];
  let readDelayMs: number;
  let reads: number;
  let concurrentReads: number;
  let maxConcurrentReads: number;
  let sidecar: FeatureSidecar | undefined;

  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: T0 + 123, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    store = new FakeStore();
    results = [];
    completeness = [];
    readDelayMs = 0;
    reads = 0;
    concurrentReads = 0;
    maxConcurrentReads = 0;
    sidecar = undefined;
  });

  afterEach(async () => {
    const stopping = sidecar?.stop();
    await clock.tickAsync(10 * INTERVAL); // lets an in-flight tick finish
    await stopping;
    clock.restore();
  });

  function make(overrides: Partial<FeatureSidecarOptions> = {}): FeatureSidecar {
    const created = new FeatureSidecar({
      client: {} as RedisClient,
      keys: new Keys({ clusterMode: false }),
      symbols: ['BTCUSDT'],
      intervalMs: INTERVAL,
      sidecarId: 'a',
      historyMaxLen: 100,
      store,
      logger: silentLogger(),
      readSnapshot: async (_client, _keys, symbol) => {
        reads++;
        concurrentReads++;
        maxConcurrentReads = Math.max(maxConcurrentReads, concurrentReads);
        if (readDelayMs > 0) await new Promise((r) => setTimeout(r, readDelayMs));
        concurrentReads--;
        return snapshot(symbol);
      },
      computeFeatures: (snap, asOfMs): FeatureVector => ({
        symbol: snap.symbol,
        price: 100 + (asOfMs - T0) / 1000,
        feature_ts: asOfMs,
        data_age_ms: 40,
        completeness: completeness.shift() ?? 1,
      }),
      ...overrides,
    });
    created.on('tick', (r) => results.push(r));
    return created;
  }

  it('runs ticks on the aligned grid, from the first multiple of the interval after start', async () => {
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(5 * INTERVAL);
    expect(store.writes.map((w) => w.tickMs - T0)).to.deep.equal([2000, 4000, 6000, 8000, 10000]);
    for (const w of store.writes) {
      expect(w.at).to.equal(w.tickMs);
      expect(w.vector.feature_ts).to.equal(w.tickMs);
    }
    expect(results.every((r) => r.kind === 'written')).to.equal(true);
    expect(sidecar.heldSymbols()).to.deep.equal(['BTCUSDT']);
  });

  it('passes featureOptions to computeFeatures at every tick', async () => {
    const seen: unknown[] = [];
    sidecar = make({
      featureOptions: { maxFutureSkewMs: 1234 },
      computeFeatures: (snap, asOfMs, options): FeatureVector => {
        seen.push(options);
        return { symbol: snap.symbol, feature_ts: asOfMs, completeness: 1 };
      },
    });
    sidecar.start();
    await clock.tickAsync(2 * INTERVAL);
    expect(seen).to.deep.equal([{ maxFutureSkewMs: 1234 }, { maxFutureSkewMs: 1234 }]);
  });

  it('stays on the grid over many ticks even when every tick takes a while (no drift)', async () => {
    readDelayMs = 733;
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(200 * INTERVAL + 1000);
    expect(store.writes).to.have.length(200);
    store.writes.forEach((w, i) => {
      expect(w.tickMs).to.equal(T0 + (i + 1) * INTERVAL);
      expect(w.at).to.equal(w.tickMs + 733);
    });
    expect(sidecar.stats().skippedTicks).to.equal(0);
  });

  it('never overlaps a slow tick with the next: the ticks it covered are skipped and counted', async () => {
    readDelayMs = 2500; // 1.25 intervals (still shorter than the 1.5-interval lease)
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(6 * INTERVAL);
    expect(maxConcurrentReads).to.equal(1);
    // Tick +2000 ends at +4500, so +4000 is skipped; +6000 ends at +8500, +8000 skipped; +10000 ends after
    // the window.
    expect(store.writes.map((w) => w.tickMs - T0)).to.deep.equal([2000, 6000]);
    expect(sidecar.stats().skippedTicks).to.equal(2);
    expect(results.map((r) => r.kind)).to.deep.equal(['written', 'written']);
  });

  it('stop() waits for the in-flight tick, releases the lease and schedules nothing more', async () => {
    readDelayMs = 1000;
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(INTERVAL - 123 + 10); // tick +2000 is reading
    expect(reads).to.equal(1);
    let stopped = false;
    const stopping = sidecar.stop().then(() => (stopped = true));
    await clock.tickAsync(500);
    expect(stopped).to.equal(false);
    await clock.tickAsync(600);
    await stopping;
    expect(stopped).to.equal(true);
    expect(store.writes.map((w) => w.tickMs - T0)).to.deep.equal([2000]);
    expect(store.leases.has('BTCUSDT')).to.equal(false);
    await clock.tickAsync(5 * INTERVAL);
    expect(reads).to.equal(1);
  });

  it('a sidecar that does not hold the lease reads and writes nothing and reports not-holder', async () => {
    store.leases.set('BTCUSDT', { id: 'b', expiresAt: T0 + 1_000_000 });
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(3 * INTERVAL);
    expect(reads).to.equal(0);
    expect(store.writes).to.have.length(0);
    expect(results.map((r) => r.kind === 'not-holder' && r.reason)).to.deep.equal([
      'lease',
      'lease',
      'lease',
    ]);
  });

  it('takes a crashed holder over within two intervals of its last renewal (lease TTL 1.5 intervals)', async () => {
    const a = make({ sidecarId: 'a', releaseOnStop: false });
    const b = make({ sidecarId: 'b' });
    sidecar = b;
    a.start();
    await clock.tickAsync(1); // a ticks first only because its timer was armed first; give it the lease
    b.start();
    await clock.tickAsync(2 * INTERVAL);
    expect(store.writes.map((w) => w.sidecarId)).to.deep.equal(['a', 'a']);
    await a.stop(); // a "crashes": its lease (renewed at +4000) expires at +7000
    await clock.tickAsync(3 * INTERVAL);
    const byTick = store.writes.map((w) => `${w.tickMs - T0}:${w.sidecarId}`);
    // +6000 has no writer (the dead lease still holds), b writes from +8000 on: one tick lost.
    expect(byTick).to.deep.equal(['2000:a', '4000:a', '8000:b', '10000:b']);
  });

  it('re-serves the last good vector when completeness drops below the threshold', async () => {
    completeness = [1, 0.2, 0.2];
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(3 * INTERVAL);
    const [good, degraded1, degraded2] = store.writes.map((w) => w.vector);
    expect(good).to.include({ price: 102, feature_ts: T0 + 2000, completeness: 1, data_age_ms: 40 });
    expect(degraded1).to.include({
      price: 102,
      feature_ts: T0 + 4000,
      completeness: 0.25,
      data_age_ms: 2040,
    });
    expect(degraded2).to.include({
      price: 102,
      feature_ts: T0 + 6000,
      completeness: 0.25,
      data_age_ms: 4040,
    });
    expect(results.map((r) => (r.kind === 'degraded' ? r.mode : r.kind))).to.deep.equal([
      'written',
      'reserved-last-good',
      'reserved-last-good',
    ]);
  });

  it('serves the computed vector as is when there is no last good vector, or it is too old', async () => {
    completeness = [0.2, 1, 0.1, 0.1, 0.1];
    sidecar = make({ degraded: { maxReserveAgeMs: 4000 } });
    sidecar.start();
    await clock.tickAsync(5 * INTERVAL);
    const vectors = store.writes.map((w) => w.vector);
    expect(vectors.map((v) => v.completeness)).to.deep.equal([0.2, 1, 0.25, 0.25, 0.1]);
    expect(vectors.map((v) => v.price)).to.deep.equal([102, 104, 104, 104, 110]);
    expect(results.map((r) => (r.kind === 'degraded' ? r.mode : r.kind))).to.deep.equal([
      'low-completeness',
      'written',
      'reserved-last-good',
      'reserved-last-good',
      'low-completeness',
    ]);
  });

  it('retries a transient Redis error within the tick', async () => {
    store.script.write = [new Error('Connection is closed.'), new Error('read ECONNRESET')];
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(INTERVAL + 500);
    expect(store.writes).to.have.length(1);
    expect(store.writes[0]!.at).to.be.within(T0 + 2000, T0 + 2000 + 0.8 * INTERVAL);
    expect(results[0]).to.include({ kind: 'written', retries: 2 });
    expect(sidecar.stats().redisRetries).to.equal(2);
  });

  it('skips the tick when Redis stays down until its deadline, and the next tick runs on time', async () => {
    store.script.lease = Array.from({ length: 50 }, () => new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    sidecar = make({ retries: 100 });
    sidecar.start();
    await clock.tickAsync(INTERVAL + 1700); // past the tick's deadline (+3600)
    expect(results).to.have.length(1);
    expect(results[0]!.kind).to.equal('failed');
    const attempts = store.leaseCalls.filter((c) => c.at < T0 + 4000);
    expect(attempts.length).to.be.greaterThan(2);
    // No attempt starts after the tick's deadline (tick + 0.8 interval).
    expect(Math.max(...attempts.map((c) => c.at))).to.be.at.most(T0 + 2000 + 0.8 * INTERVAL);
    store.script.lease = [];
    await clock.tickAsync(INTERVAL);
    expect(store.writes.map((w) => w.tickMs - T0)).to.deep.equal([4000]);
    expect(sidecar.stats()).to.include({ failed: 1, written: 1, skippedTicks: 0 });
  });

  it('does not retry a non-retryable error', async () => {
    store.script.write = [new Error('ERR Error running script: bad argument')];
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(INTERVAL);
    expect(results[0]).to.include({ kind: 'failed', retries: 0 });
    expect(store.writes).to.have.length(0);
  });

  it('reports a lease lost between renewal and write as not-holder (lost-lease)', async () => {
    store.script.write = [3000]; // the write is delayed past the lease's 3000 ms TTL
    sidecar = make();
    sidecar.start();
    await clock.tickAsync(3 * INTERVAL);
    const first = results[0]!;
    expect(first.kind === 'not-holder' && first.reason).to.equal('lost-lease');
  });

  it('validates its options with exact messages', () => {
    expect(() => make({ leaseTtlMs: 2000 })).to.throw(
      'leaseTtlMs must be between intervalMs and 2 * intervalMs (exclusive), got 2000',
    );
    expect(() => make({ intervalMs: 0 })).to.throw('intervalMs must be a positive integer, got 0');
    expect(() => make({ symbols: [] })).to.throw('symbols must not be empty');
    expect(() => make({ historyMaxLen: 0 })).to.throw('historyMaxLen must be a positive integer, got 0');
  });
});

describe('chooseVector (degraded-mode rules)', () => {
  const policy = { minCompleteness: 0.5, maxReserveAgeMs: 10_000 };
  const good = { price: 1, feature_ts: 1000, data_age_ms: 30, completeness: 0.8 };

  it('keeps a vector at or above the threshold', () => {
    const served = chooseVector({ ...good, completeness: 0.5 }, undefined, 3000, policy);
    expect(served.mode).to.equal('fresh');
    expect(served.vector).to.include({ feature_ts: 3000, completeness: 0.5 });
  });

  it('re-serves the last good features with the tick, raised age and completeness below the threshold', () => {
    const served = chooseVector({ price: 9, completeness: 0.1, data_age_ms: 9 }, good, 5000, policy);
    expect(served.mode).to.equal('reserved-last-good');
    expect(served.vector).to.deep.equal({
      price: 1,
      feature_ts: 5000,
      data_age_ms: 4030,
      completeness: 0.25,
    });
    expect(served.computedCompleteness).to.equal(0.1);
  });

  it('serves the computed vector once the last good one is older than maxReserveAgeMs', () => {
    const served = chooseVector({ price: 9, completeness: 0.1 }, good, 11_001, policy);
    expect(served.mode).to.equal('low-completeness');
    expect(served.vector).to.deep.equal({ price: 9, completeness: 0.1, feature_ts: 11_001 });
  });
});
