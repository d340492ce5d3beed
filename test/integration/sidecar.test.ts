import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import Redis from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { computeFeatures } from '../../src/features/compute';
import { readSnapshot } from '../../src/features/snapshot';
import { silentLogger } from '../../src/logging/logger';
import { FeatureSidecar, type TickResult } from '../../src/sidecar/sidecar';
import { FEATURE_TTL_MS } from '../../src/sidecar/store';
import { Keys } from '../../src/state/keys';
import { repoRoot } from '../helpers/paths';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// A fleet of three FeatureSidecars (the real readSnapshot and computeFeatures, real timers) against one real
// redis-server: every tick of every symbol is written exactly once, a crashed or stopped lease holder is
// replaced within the bound, readers never see a partial vector, and the write script refuses non-holders and
// old ticks.

const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const INTERVAL = 300; // lease TTL 450 ms: a 150 ms margin on each side for timer lateness on a loaded machine
const keys = new Keys({ clusterMode: false });

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** History entry ids of a symbol as tick times (ms). */
async function historyTicks(redis: Redis, symbol: string): Promise<number[]> {
  const entries = await redis.xrange(keys.featureHistory(symbol), '-', '+');
  return entries.map(([id]) => {
    expect(id).to.match(/^\d+-0$/);
    return Number(id.split('-')[0]);
  });
}

describe('feature sidecar fleet against a real Redis', function () {
  this.timeout(60000);

  let tmpDir: string;
  let server: TestRedis;
  let port: number;
  let redis: Redis;
  let clients: RedisClient[] = [];
  let sidecars: FeatureSidecar[] = [];
  let results: (TickResult & { sidecarId: string })[] = [];
  /** Field count of a served vector (computeFeatures always returns the same fields). */
  const vectorSize = Object.keys(
    computeFeatures(
      {
        symbol: 'BTCUSDT',
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

  before(async () => {
    server = await startTestRedis('sidecar-it');
    tmpDir = server.dir;
    port = server.port;
    redis = new Redis({ port });
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushdb();
    results = [];
  });

  afterEach(async () => {
    await Promise.all(sidecars.map((s) => s.stop()));
    for (const client of clients) client.disconnect();
    sidecars = [];
    clients = [];
  });

  function fleet(count: number, releaseOnStop: boolean): FeatureSidecar[] {
    const config = parseConfig({ redis: { port } });
    for (let i = 0; i < count; i++) {
      const client = createRedisClient(config.redis, { connectionName: `sidecar-it-${i}` });
      clients.push(client);
      const sidecar = new FeatureSidecar({
        client,
        keys,
        symbols: SYMBOLS,
        intervalMs: INTERVAL,
        sidecarId: `sidecar-${i}`,
        historyMaxLen: 10_000,
        readSnapshot,
        computeFeatures,
        logger: silentLogger(),
        releaseOnStop,
      });
      sidecar.on('tick', (r) => results.push({ ...r, sidecarId: sidecar.id }));
      sidecars.push(sidecar);
    }
    return sidecars;
  }

  const isWrite = (r: TickResult) => r.kind === 'written' || r.kind === 'degraded';

  it('three sidecars write every tick of every symbol exactly once; readers never see a partial vector', async () => {
    const all = fleet(3, true);
    let reads = 0;
    let reading = true;
    const partial: number[] = [];
    const ttls: number[] = [];
    const reader = (async () => {
      while (reading) {
        const [hash, ttl] = await Promise.all([
          redis.hgetall(keys.features('BTCUSDT')),
          redis.pttl(keys.features('BTCUSDT')),
        ]);
        const size = Object.keys(hash).length;
        if (size !== 0 && size !== vectorSize) partial.push(size);
        if (size > 0) ttls.push(ttl);
        reads++;
      }
    })();
    for (const s of all) s.start();
    await waitFor('15 ticks written per symbol', () => results.filter(isWrite).length >= 30, 30000);
    await Promise.all(all.map((s) => s.stop()));
    reading = false;
    await reader;

    expect(reads).to.be.greaterThan(50);
    expect(partial, 'partial vectors seen by HGETALL').to.deep.equal([]);
    // Math.max/min of an empty list are -Infinity/Infinity, which pass both bounds: the reads must have found
    // vectors (a reader of the wrong key, or sidecars that never wrote, would leave the list empty).
    expect(ttls.length, 'reads that found a vector').to.be.greaterThan(reads / 2);
    expect(Math.max(...ttls)).to.be.at.most(FEATURE_TTL_MS);
    expect(Math.min(...ttls)).to.be.greaterThan(0);

    const explained =
      all.reduce((n, s) => n + s.stats().skippedTicks, 0) +
      results.filter((r) => r.kind === 'failed' || (r.kind === 'not-holder' && r.reason !== 'lease')).length;
    for (const symbol of SYMBOLS) {
      const writes = results.filter((r) => r.symbol === symbol && isWrite(r)).map((r) => r.tickMs);
      expect(new Set(writes).size, `${symbol}: a tick written twice`).to.equal(writes.length);
      const ticks = await historyTicks(redis, symbol);
      expect([...ticks].sort((a, b) => a - b)).to.deep.equal([...writes].sort((a, b) => a - b));
      for (let i = 1; i < ticks.length; i++) expect(ticks[i]!).to.be.greaterThan(ticks[i - 1]!);
      for (const t of ticks) expect(t % INTERVAL).to.equal(0);
      const missing = (ticks[ticks.length - 1]! - ticks[0]!) / INTERVAL + 1 - ticks.length;
      expect(missing, `${symbol}: ticks missing without a skipped or failed tick`).to.be.at.most(explained);
      // The served vector is the last one in the history, and carries its tick.
      const served = await redis.hgetall(keys.features(symbol));
      expect(Number(served.feature_ts)).to.equal(ticks[ticks.length - 1]);
    }
    // Every sidecar was a candidate at every tick: the non-holders said so.
    expect(results.filter((r) => r.kind === 'not-holder' && r.reason === 'lease').length).to.be.greaterThan(
      0,
    );
  });

  async function handOver(releaseOnStop: boolean): Promise<{ gapMs: number; oldHolder: string }> {
    const all = fleet(3, releaseOnStop);
    for (const s of all) s.start();
    await waitFor(
      '5 ticks of BTCUSDT',
      () => results.filter((r) => isWrite(r) && r.symbol === 'BTCUSDT').length >= 5,
      30000,
    );
    const holderId = await redis.get(keys.featureLease('BTCUSDT'));
    const holder = all.find((s) => s.id === holderId);
    expect(holder, `lease holder ${holderId}`).to.not.equal(undefined);
    await holder!.stop(); // releaseOnStop false: as if the task died (the lease expires by itself)
    const lastOld = Math.max(
      ...results
        .filter((r) => isWrite(r) && r.symbol === 'BTCUSDT' && r.sidecarId === holderId)
        .map((r) => r.tickMs),
    );
    await waitFor(
      'another sidecar to write BTCUSDT',
      () => results.some((r) => isWrite(r) && r.symbol === 'BTCUSDT' && r.sidecarId !== holderId),
      30000,
    );
    const firstNew = Math.min(
      ...results
        .filter((r) => isWrite(r) && r.symbol === 'BTCUSDT' && r.sidecarId !== holderId)
        .map((r) => r.tickMs),
    );
    expect(await redis.get(keys.featureLease('BTCUSDT'))).to.not.equal(holderId);
    await waitFor(
      'two more ticks',
      () => results.filter((r) => isWrite(r) && r.tickMs > firstNew).length >= 4,
      30000,
    );
    for (const s of all) await s.stop();
    const ticks = await historyTicks(redis, 'BTCUSDT');
    expect(new Set(ticks).size).to.equal(ticks.length);
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]!).to.be.greaterThan(ticks[i - 1]!);
    return { gapMs: firstNew - lastOld, oldHolder: holderId! };
  }

  it('a crashed lease holder (lease not released) is replaced within two intervals of its last tick', async () => {
    const { gapMs } = await handOver(false);
    // Bound: the dead holder's lease (TTL 1.5 I) renewed at tick T outlives tick T + I; tick T + 2 I is taken.
    expect(gapMs).to.be.at.most(2 * INTERVAL);
    expect(gapMs).to.be.at.least(INTERVAL);
  });

  it('a cleanly stopped lease holder releases its lease: the next tick is taken over', async () => {
    const { gapMs } = await handOver(true);
    expect(gapMs).to.be.at.most(2 * INTERVAL);
  });

  describe('CLI (registerSidecar, registerFeaturesShow on a bare program)', () => {
    // The commands as main.ts wires them, in a child process: `sidecar` runs until SIGTERM, `features show`.
    const driver =
      "const { Command } = require('commander');" +
      `const m = require(${JSON.stringify(path.join(repoRoot, 'dist/src/cli/commands/sidecar.js'))});` +
      "const p = new Command().option('-c, --config <file>');" +
      "m.registerSidecar(p); m.registerFeaturesShow(p.command('features'));" +
      "p.parseAsync(process.argv.slice(1), { from: 'user' }).catch((e) => { process.stderr.write(String(e)); process.exit(1); });";

    function run(args: string[]) {
      const child = spawn(process.execPath, ['-e', driver, '--', ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, exited, out: () => stdout, err: () => stderr };
    }

    it('sidecar serves feat:<S> until SIGTERM, then releases its lease; features show prints it', async () => {
      const configFile = path.join(tmpDir, 'sidecar.yaml');
      const logFile = path.join(tmpDir, 'sidecar.log');
      fs.writeFileSync(
        configFile,
        `redis:\n  port: ${port}\nprocessing:\n  symbols: [BTCUSDT]\n  feature_update_interval_seconds: 1\n` +
          `logging:\n  level: info\n  file: ${logFile}\n`,
      );
      const sidecar = run(['-c', configFile, 'sidecar', '--id', 'cli-sidecar', '--history-max-len', '50']);
      try {
        await waitFor(
          'feat:BTCUSDT from the CLI sidecar',
          async () => (await redis.exists(keys.features('BTCUSDT'))) === 1,
          20000,
        );
        expect(await redis.get(keys.featureLease('BTCUSDT'))).to.equal('cli-sidecar');

        const json = run(['-c', configFile, 'features', 'show', 'btcusdt', '--json']);
        expect(await json.exited, json.err()).to.equal(0);
        const view = JSON.parse(json.out()) as {
          symbol: string;
          ageMs: number;
          ttlMs: number;
          leaseHolder: string;
          vector: Record<string, string>;
        };
        expect(view).to.include({ symbol: 'BTCUSDT', leaseHolder: 'cli-sidecar' });
        expect(view.ageMs).to.be.within(0, 5000);
        expect(view.ttlMs).to.be.within(1, FEATURE_TTL_MS);
        expect(Object.keys(view.vector)).to.have.length(vectorSize);

        const table = run(['-c', configFile, 'features', 'show', 'BTCUSDT']);
        expect(await table.exited, table.err()).to.equal(0);
        expect(table.out()).to.match(/^feat:BTCUSDT {2}age=\d+ ms {2}ttl=\d+ ms {2}lease=cli-sidecar\n/);
        expect(table.out()).to.match(/\n {2}feature_ts +\d+\n/);

        const missing = run(['-c', configFile, 'features', 'show', 'ETHUSDT']);
        expect(await missing.exited).to.equal(1);
        expect(missing.out()).to.contain('feat:ETHUSDT: no feature vector');
      } finally {
        sidecar.child.kill('SIGTERM');
      }
      expect(await sidecar.exited, sidecar.err()).to.equal(0);
      expect(await redis.exists(keys.featureLease('BTCUSDT'))).to.equal(0);
      expect(fs.readFileSync(logFile, 'utf8')).to.contain('feature sidecar stopped');
    });
  });

  describe('scripts', () => {
    let client: RedisClient;
    const feat = keys.features('BTCUSDT');
    const history = keys.featureHistory('BTCUSDT');
    const lease = keys.featureLease('BTCUSDT');

    beforeEach(() => {
      client = createRedisClient(parseConfig({ redis: { port } }).redis, {
        connectionName: 'sidecar-it-scripts',
      });
      clients.push(client);
    });

    const write = (id: string, tick: number, ...fields: string[]) =>
      client.writeFeatures(feat, history, lease, id, String(tick), String(FEATURE_TTL_MS), '100', ...fields);

    it('lease: acquire, renew by the holder only, release by the holder only', async () => {
      expect(await client.renewFeatureLease(lease, 'a', '450')).to.equal(1);
      expect(await client.renewFeatureLease(lease, 'b', '450')).to.equal(0);
      expect(await client.renewFeatureLease(lease, 'a', '5000')).to.equal(2);
      expect(await redis.pttl(lease)).to.be.within(4000, 5000);
      expect(await client.releaseFeatureLease(lease, 'b')).to.equal(0);
      expect(await client.releaseFeatureLease(lease, 'a')).to.equal(1);
      expect(await redis.exists(lease)).to.equal(0);
      await redis.set(lease, 'a', 'PX', 50);
      await new Promise((r) => setTimeout(r, 120));
      expect(await client.renewFeatureLease(lease, 'b', '450')).to.equal(1);
    });

    it('write: refuses a non-holder and a tick not newer than the served one; replaces the hash whole', async () => {
      await redis.set(lease, 'a', 'PX', 10_000);
      expect(await write('b', 1000, 'price', '1', 'feature_ts', '1000')).to.equal(-1);
      expect(await redis.exists(feat, history)).to.equal(0);
      expect(await write('a', 1000, 'price', '1', 'extra', 'x', 'feature_ts', '1000')).to.equal(1);
      expect(await write('a', 1000, 'price', '2', 'feature_ts', '1000')).to.equal(-2);
      expect(await write('a', 999, 'price', '2', 'feature_ts', '999')).to.equal(-2);
      expect(await redis.hgetall(feat)).to.deep.equal({ price: '1', extra: 'x', feature_ts: '1000' });
      expect(await write('a', 1200, 'price', '3', 'feature_ts', '1200')).to.equal(1);
      expect(await redis.hgetall(feat)).to.deep.equal({ price: '3', feature_ts: '1200' });
      expect(await redis.pttl(feat)).to.be.within(FEATURE_TTL_MS - 5000, FEATURE_TTL_MS);
      expect(await historyTicks(redis, 'BTCUSDT')).to.deep.equal([1000, 1200]);
      // The history alone also guards the tick (the hash may have expired).
      await redis.del(feat);
      expect(await write('a', 1100, 'price', '4', 'feature_ts', '1100')).to.equal(-2);
      expect(await redis.exists(feat)).to.equal(0);
    });

    it('still works after SCRIPT FLUSH (NOSCRIPT fallback)', async () => {
      await redis.script('FLUSH');
      expect(await client.renewFeatureLease(lease, 'a', '450')).to.equal(1);
      expect(await write('a', 1000, 'price', '1', 'feature_ts', '1000')).to.equal(1);
    });
  });
});
