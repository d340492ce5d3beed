import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import Redis from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { computeFeatures } from '../../src/features/compute';
import { readSnapshot } from '../../src/features/snapshot';
import { readServedVectors, verifyServedVectors } from '../../src/features/verify';
import { findFreePort } from '../../src/localstack/ports';
import { startRedisServer } from '../../src/localstack/redis-server';
import { silentLogger } from '../../src/logging/logger';
import { simulate } from '../../src/replay/simulator';
import { FeatureSidecar } from '../../src/sidecar/sidecar';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';

// Training/serving parity: known events replayed into Redis, the sidecar ticking between chunks, and every
// served vector (feat:<S>:history) recomputed offline from the event log by the verifier: they agree.

const SYMBOL = 'BTCUSDT';
const INTERVAL_MS = 2000;
const WRITER = { orderBookLevels: 10, diffBufferMaxLength: 1000, deadLetterMaxLen: 1000 };

describe('feature parity: sidecar vectors = offline recomputation from the event log', function () {
  this.timeout(60_000);
  let dir: string;
  let server: Awaited<ReturnType<typeof startRedisServer>>;
  let live: RedisClient;
  let scratch: RedisClient;
  let reader: Redis;

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-parity-'));
    const port = await findFreePort();
    server = await startRedisServer({ port, logFile: path.join(dir, 'redis.log') });
    live = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: 'live' });
    scratch = createRedisClient(parseConfig({ redis: { port, db: 1 } }).redis, { connectionName: 'scratch' });
    reader = new Redis({ port });
  });

  after(async function () {
    live?.disconnect();
    scratch?.disconnect();
    reader?.disconnect();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('every served vector is reproduced field by field', async function () {
    const keys = new Keys({ clusterMode: false });
    const events = [
      ...simulate({ seed: 21, symbols: [SYMBOL], startTimeUs: 1_760_000_000_000_000n }, 6000),
    ].map((e) => e.message);
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
});
