import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parseConfig, type AppConfig } from '../../src/config/config';
import { findFreePort } from '../../src/dev/localstack/ports';
import { healthHandler, type HealthBody } from '../../src/ops/health';
import { startHealthServer, type HealthServer } from '../../src/ops/health-server';
import { publishReport, type ProcessorReport } from '../../src/ops/telemetry';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { repoRoot } from '../helpers/paths';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// GET /health against a real redis-server: processor reports published as the processors do, feature vectors and
// re-anchor state written directly, the inputs collected and served over HTTP; then the real `aggregator sidecar`.

const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const keys = new Keys({ clusterMode: false });

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function get(url: string): Promise<{ status: number; body: unknown; ms: number }> {
  const started = Date.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const body = await res.json();
  return { status: res.status, body, ms: Date.now() - started };
}

function report(stream: string, nowMs: number, overrides: Partial<ProcessorReport> = {}): ProcessorReport {
  return {
    stream,
    shardId: 'shardId-000000000000',
    pid: 1234,
    startedMs: nowMs - 60_000,
    updatedMs: nowMs,
    recordsTotal: 500,
    eventsTotal: 2000,
    batchesTotal: 20,
    deadLettersTotal: 0,
    integrityIssuesTotal: 0,
    checkpointFailuresTotal: 0,
    redisRetriesTotal: 0,
    recordsPerSecond: 25,
    lagMs: 300,
    lastProcessedMs: nowMs - 100,
    lastSequenceNumber: '4960',
    rssBytes: 90e6,
    metrics: [],
    ...overrides,
  };
}

describe('GET /health (real redis-server)', function () {
  this.timeout(60_000);
  let tmpDir: string;
  let redisPort: number;
  let server: TestRedis;
  let config: AppConfig;
  let redis: RedisClient;
  let healthClient: RedisClient;
  let health: HealthServer;

  /** Everything a healthy fleet keeps fresh: reports of every stream, feature vectors, re-anchor state. */
  async function writeHealthyState(except?: string): Promise<void> {
    const now = Date.now();
    for (const stream of Object.values(config.aws.kinesis.streams)) {
      if (stream !== except) await publishReport(redis, keys, report(stream, now));
    }
    for (const [i, symbol] of SYMBOLS.entries()) {
      await redis.hset(keys.features(symbol), 'feature_ts', String(now - 500), 'completeness', '1');
      for (let k = 4; k >= 0; k--) {
        await redis.xadd(keys.featureHistory(symbol), `${now - 500 - 2000 * k - i}-0`, 'feature_ts', 'x');
      }
      await redis.hset(
        keys.reanchorStats(symbol),
        'swapped',
        '2',
        'failed',
        '0',
        'last_outcome',
        'swapped',
        'last_finished_ms',
        String(now - 10_000 - i),
        'last_ok_ms',
        String(now - 10_000 - i),
        'running',
        '0',
      );
      await redis.hset(
        keys.bookState(symbol),
        'status',
        'in_sync',
        'reason',
        '',
        'book_ts_us',
        `${now * 1000}`,
      );
    }
  }

  before(async () => {
    server = await startTestRedis('health-it');
    tmpDir = server.dir;
    redisPort = server.port;
    config = parseConfig({
      service_name: 'health-it',
      redis: { port: redisPort },
      processing: { symbols: SYMBOLS },
    });
    redis = createRedisClient(config.redis, { connectionName: 'health-it' });
    redis.on('error', () => undefined);
    healthClient = createRedisClient(config.redis, {
      connectionName: 'health-it-probe',
      maxRetriesPerRequest: 0,
    });
    healthClient.on('error', () => undefined);
    health = await startHealthServer({
      host: '127.0.0.1',
      port: 0,
      handler: healthHandler(healthClient, keys, config, {
        sidecarId: 'it-1',
        pingTimeoutMs: 500,
        readTimeoutMs: 1000,
      }),
    });
  });

  after(async () => {
    await health?.stop();
    redis?.disconnect();
    healthClient?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushall();
    await writeHealthyState();
  });

  it('healthy: 200 with every field', async () => {
    const { status, body } = await get(`${health.url}/health`);
    expect(status, JSON.stringify(body)).to.equal(200);
    const b = body as HealthBody;
    expect(b).to.include({ status: 'healthy', service: 'health-it', sidecar_id: 'it-1' });
    expect(Date.parse(b.timestamp)).to.be.closeTo(Date.now(), 5000);
    const streams = b.components.kinesis_consumers as Record<string, Record<string, unknown>>;
    expect(Object.keys(streams).sort()).to.deep.equal(
      ['market-sbe-bestbidask', 'market-sbe-depth', 'market-sbe-trade'].sort(),
    );
    for (const s of Object.values(streams)) {
      expect(s).to.include({ status: 'healthy', records_per_second: 25, lag_seconds: 0.3 });
      expect(s.last_processed).to.be.a('string');
      const shard = (s.shards as Record<string, Record<string, unknown>>)['shardId-000000000000'];
      expect(shard).to.have.all.keys(
        'records_per_second',
        'lag_seconds',
        'last_processed',
        'pid',
        'report_age_seconds',
      );
      expect(shard).to.include({ pid: 1234, records_per_second: 25, lag_seconds: 0.3 });
    }
    const r = b.components.redis;
    expect(r).to.have.all.keys(
      'status',
      'connection_pool_usage',
      'operations_per_second',
      'avg_latency_ms',
      'maxmemory_policy',
      'unreachable_since',
    );
    expect(r).to.include({ status: 'healthy', maxmemory_policy: 'noeviction', unreachable_since: null });
    expect(r.connection_pool_usage).to.be.within(0.0001, 0.01); // a few clients of maxclients 10000
    expect(r.operations_per_second).to.be.a('number');
    expect(r.avg_latency_ms).to.be.within(0, 50);
    expect(b.components.feature_pipeline).to.deep.include({
      status: 'healthy',
      features_per_minute: 10,
      feature_completeness: 1,
    });
    expect(b.components.feature_pipeline.last_feature_update).to.be.a('string');
    expect(b.components.reanchor_system).to.deep.include({
      status: 'healthy',
      active_reanchors: 0,
      reanchor_success_rate: 1,
    });
    expect(b.components.reanchor_system.last_reanchor).to.be.a('string');

    const live = await get(`${health.url}/live`);
    expect(live.status).to.equal(200);
    expect(live.body).to.include({ status: 'alive' });
    const missing = await fetch(`${health.url}/metricz`);
    expect(missing.status).to.equal(404);
  });

  it('a Redis that may evict keys (maxmemory-policy allkeys-lru) -> redis degraded, the policy named', async () => {
    await redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const { status, body } = await get(`${health.url}/health`);
      expect(status).to.equal(503);
      const r = (body as HealthBody).components.redis;
      expect(r).to.include({ status: 'degraded', maxmemory_policy: 'allkeys-lru' });
      expect(String(r.reason)).to.match(/^maxmemory-policy is allkeys-lru, not noeviction: /);
    } finally {
      await redis.config('SET', 'maxmemory-policy', 'noeviction');
    }
    const after = (await get(`${health.url}/health`)).body as HealthBody;
    expect(after.components.redis).to.include({ status: 'healthy', maxmemory_policy: 'noeviction' });
  });

  it('a stream whose processor stopped publishing -> 503, that consumer stale', async () => {
    await redis.flushall();
    await writeHealthyState('market-sbe-depth');
    await publishReport(
      redis,
      keys,
      report('market-sbe-depth', Date.now() - 15_000, { shardId: 'shardId-000000000003' }),
    );
    const { status, body } = await get(`${health.url}/health`);
    expect(status).to.equal(503);
    const b = body as HealthBody;
    expect(b.status).to.equal('unhealthy');
    const depth = b.components.kinesis_consumers['market-sbe-depth'] as Record<string, unknown>;
    expect(depth.status).to.equal('unhealthy');
    expect(depth.reason).to.match(
      /^shard shardId-000000000003: last report 1[5-9](\.\d)? s old \(pid 1234\)$/,
    );
    expect((b.components.kinesis_consumers['market-sbe-trade'] as { status: string }).status).to.equal(
      'healthy',
    );

    // No report at all for the stream.
    await redis.del(keys.processorReport('market-sbe-depth', 'shardId-000000000003'));
    const none = (await get(`${health.url}/health`)).body as HealthBody;
    expect(none.components.kinesis_consumers['market-sbe-depth']).to.deep.include({
      status: 'unhealthy',
      reason: 'no processor reported in the last 30 s',
    });
  });

  it('reanchor:<S>:stats last_outcome failed -> 503 failing re-anchors', async () => {
    await redis.hset(
      keys.reanchorStats('ETHUSDT'),
      'failed',
      '1',
      'last_outcome',
      'failed',
      'last_finished_ms',
      String(Date.now() - 3000),
      'last_failure',
      'attempt 5 rest: HTTP 500',
    );
    await redis.set(keys.reanchorFlag('BTCUSDT'), 'l1|1-0', 'EX', 60);
    const { status, body } = await get(`${health.url}/health`);
    expect(status).to.equal(503);
    const reanchor = (body as HealthBody).components.reanchor_system;
    expect(reanchor).to.include({ status: 'unhealthy', active_reanchors: 1, reanchor_success_rate: 0.8 });
    expect(reanchor.reason).to.match(
      /^failing re-anchors: ETHUSDT gave up 3(\.\d)? s ago \(attempt 5 rest: HTTP 500\)$/,
    );
  });

  it('the real `aggregator sidecar` serves /health and /live on health.port, stops on SIGTERM', async () => {
    await redis.flushall();
    const healthPort = await findFreePort();
    const configFile = path.join(tmpDir, 'sidecar.yaml');
    fs.writeFileSync(
      configFile,
      `service_name: health-it\nredis:\n  port: ${redisPort}\nprocessing:\n  symbols: [BTCUSDT]\n` +
        `  feature_update_interval_seconds: 1\nreanchor:\n  enabled: false\n` +
        `health:\n  host: 127.0.0.1\n  port: ${healthPort}\n` +
        `logging:\n  level: info\n  file: ${path.join(tmpDir, 'sidecar.log')}\n`,
    );
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'dist/src/cli/main.js'), '--config', configFile, 'sidecar', '--id', 'it-real'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = `http://127.0.0.1:${healthPort}`;
    try {
      let answer: { status: number; body: unknown } | undefined;
      const deadline = Date.now() + 20_000;
      while (answer === undefined) {
        try {
          const a = await get(`${url}/health`);
          // Wait for the first feature vector: then every component has data.
          if ((a.body as HealthBody).components.feature_pipeline.last_feature_update !== null) answer = a;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`no /health answer from the sidecar\n${stderr}`);
        if (answer === undefined) await sleep(200);
      }
      const body = answer.body as HealthBody & { sidecar: Record<string, unknown> };
      // No processor publishes here and nothing feeds the book: the consumers are unhealthy.
      expect(answer.status).to.equal(503);
      expect(body).to.include({ status: 'unhealthy', service: 'health-it', sidecar_id: 'it-real' });
      expect(Object.keys(body.components)).to.deep.equal([
        'kinesis_consumers',
        'redis',
        'feature_pipeline',
        'reanchor_system',
      ]);
      expect(body.components.kinesis_consumers['market-sbe-trade']).to.deep.include({
        status: 'unhealthy',
        reason: 'no processor reported in the last 30 s',
      });
      expect(body.components.redis.status).to.equal('healthy');
      // With no market data the vector's completeness is 0: degraded.
      expect(body.components.feature_pipeline).to.include({ status: 'degraded', feature_completeness: 0 });
      expect(body.components.reanchor_system).to.include({ status: 'healthy', active_reanchors: 0 });
      expect(body.sidecar.held_symbols).to.deep.equal(['BTCUSDT']);
      process.stdout.write(`      real /health body: ${JSON.stringify(body)}\n`);

      const live = await get(`${url}/live`);
      expect(live.status).to.equal(200);
      expect(live.body).to.include({ status: 'alive', pid: child.pid });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).to.equal(0);
  });

  it('redis-server stopped -> 503 redis unhealthy, answered quickly', async () => {
    await get(`${health.url}/health`); // connected and healthy first
    await server.stopServer();
    for (let i = 0; i < 3; i++) {
      const { status, body, ms } = await get(`${health.url}/health`);
      expect(status).to.equal(503);
      const b = body as HealthBody;
      expect(b.status).to.equal('unhealthy');
      expect(b.components.redis).to.include({ status: 'unhealthy', avg_latency_ms: null });
      expect(b.components.redis.reason).to.match(/^unreachable: /);
      expect(b.components.feature_pipeline.reason).to.equal('unknown: redis unreachable');
      expect(ms).to.be.below(1500);
    }
    const live = await get(`${health.url}/live`);
    expect(live.status).to.equal(200);
  });
});
