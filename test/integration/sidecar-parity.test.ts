import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import Redis from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { computeFeatures } from '../../src/features/compute';
import { readSnapshot } from '../../src/features/snapshot';
import { readServedVectors, verifyServedVectors } from '../../src/app/features-verify';
import { silentLogger } from '../../src/logging/logger';
import { simulate } from '../../src/replay/simulator';
import { FeatureSidecar } from '../../src/sidecar/sidecar';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';
import { encodeMessage } from '../../src/sbe/encoder';
import { repoRoot } from '../helpers/paths';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// Training/serving parity: known events replayed into Redis, the sidecar ticking between chunks, and every
// served vector (feat:<S>:history) recomputed offline from the event log by the verifier: they agree.

const SYMBOL = 'BTCUSDT';
const INTERVAL_MS = 2000;
const WRITER = { orderBookLevels: 10, diffBufferMaxLength: 1000, deadLetterMaxLen: 1000 };

function makeEvents() {
  return [...simulate({ seed: 21, symbols: [SYMBOL], startTimeUs: 1_760_000_000_000_000n }, 6000)].map(
    (e) => e.message,
  );
}

describe('feature parity: sidecar vectors = offline recomputation from the event log', function () {
  this.timeout(60_000);
  let dir: string;
  let server: TestRedis;
  let live: RedisClient;
  let scratch: RedisClient;
  let reader: Redis;
  let port: number;
  let events: ReturnType<typeof makeEvents>;

  before(async function () {
    server = await startTestRedis('agg-parity');
    dir = server.dir;
    port = server.port;
    live = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: 'live' });
    scratch = createRedisClient(parseConfig({ redis: { port, db: 1 } }).redis, { connectionName: 'scratch' });
    reader = new Redis({ port });
  });

  after(async function () {
    live?.disconnect();
    scratch?.disconnect();
    reader?.disconnect();
    await server?.stop();
  });

  it('every served vector is reproduced field by field', async function () {
    const keys = new Keys({ clusterMode: false });
    events = makeEvents();
    const writer = new StateWriter(live, keys, WRITER);
    let tickMs = 0;
    const sidecar = new FeatureSidecar({
      client: live,
      keys,
      symbols: [SYMBOL],
      intervalMs: INTERVAL_MS,
      sidecarId: 'parity-sidecar',
      historyMaxLen: 1000,
      readSnapshot,
      computeFeatures,
      logger: silentLogger(),
      now: () => tickMs,
    });
    const written: string[] = [];
    for (let i = 0; i < events.length; i += 500) {
      const chunk = events.slice(i, i + 500);
      await writer.write(groupBySymbol(chunk).values(), []);
      // The next tick of the simulated clock after the chunk's newest event.
      const newestUs = chunk.reduce((t, m) => (m.eventTime > t ? m.eventTime : t), 0n);
      tickMs = Math.max(
        tickMs + INTERVAL_MS,
        Math.ceil(Number(newestUs / 1000n) / INTERVAL_MS) * INTERVAL_MS,
      );
      const [result] = await sidecar.runTick(tickMs);
      written.push(result!.kind);
    }
    expect(written.filter((k) => k === 'written').length, written.join(',')).to.be.greaterThan(5);

    const served = await readServedVectors(live, keys, SYMBOL);
    expect(served).to.have.length(written.filter((k) => k === 'written' || k === 'degraded').length);
    // The live vector is the last one of the history, whole.
    expect(await reader.hgetall(`feat:${SYMBOL}`)).to.deep.equal(served[served.length - 1]!.fields);

    const summary = await verifyServedVectors({
      scratch,
      keys,
      symbol: SYMBOL,
      events,
      served,
      writerOptions: WRITER,
    });
    const problems = summary.results
      .filter((r) => !r.ok)
      .map((r) => `${r.id}: ${JSON.stringify(r.mismatches)}`);
    expect(problems, problems.join('\n')).to.deep.equal([]);
    expect(summary.vectors).to.equal(served.length);
  });

  it('aggregator features verify: exit 0 on the served history, exit 1 naming the field of a tampered vector', function () {
    const log = path.join(dir, 'events.hex');
    fs.writeFileSync(log, events.map((m) => encodeMessage(m).toString('hex')).join('\n') + '\n');
    const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
    const verify = (...extra: string[]) =>
      spawnSync(
        process.execPath,
        [
          cli,
          'features',
          'verify',
          '--symbol',
          SYMBOL,
          '--redis-url',
          `redis://127.0.0.1:${port}/0`,
          '--scratch-url',
          `redis://127.0.0.1:${port}/2`,
          '--events',
          log,
          ...extra,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
    const ok = verify();
    expect(ok.status, ok.stderr + ok.stdout).to.equal(0);
    const badSkew = verify('--max-future-skew-ms', '-5');
    expect(badSkew.status).to.equal(1);
    expect(badSkew.stderr).to.contain('--max-future-skew-ms must be a non-negative integer, got "-5"');
    return (async () => {
      const [last] = await reader.xrevrange(`feat:${SYMBOL}:history`, '+', '-', 'COUNT', 1);
      const fields = last![1];
      const tampered: string[] = [];
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const name = fields[i]!;
        let value = fields[i + 1]!;
        if (name === 'feature_ts') value = String(Number(value) + INTERVAL_MS);
        if (name === 'volume_1s') value = String(Number(value) + 1);
        tampered.push(name, value);
      }
      const nextTs = tampered[tampered.indexOf('feature_ts') + 1]!;
      await reader.xadd(`feat:${SYMBOL}:history`, `${nextTs}-0`, ...tampered);
      const bad = verify();
      expect(bad.status, bad.stderr + bad.stdout).to.equal(1);
      expect(bad.stdout).to.contain('volume_1s');
    })();
  });
});
