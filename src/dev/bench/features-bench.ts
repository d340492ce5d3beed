import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { parseConfig } from '../../config/config';
import { computeFeatures } from '../../features/compute';
import { readSnapshot } from '../../features/snapshot';
import { findFreePort } from '../localstack/ports';
import { startRedisServer } from '../localstack/redis-server';
import { silentLogger } from '../../logging/logger';
import { MarketSimulator, type SimulatedEvent } from '../../replay/simulator';
import { encodeMessage } from '../../sbe/encoder';
import { FeatureSidecar } from '../../sidecar/sidecar';
import { groupBySymbol } from '../../state/batch';
import { Keys } from '../../state/keys';
import { createRedisClient } from '../../state/redis';
import { StateWriter } from '../../state/writer';
import { KclDriver, type DriverRecord } from './kcl-driver';
import { summarize, type Summary } from './stats';

// Benchmark of the feature side, printed, never asserted:
//  1. feature computation per symbol: the atomic snapshot read + computeFeatures (p50/p99), and the whole
//     sidecar tick (lease renewal + read + compute + conditional write + history) for comparison;
//  2. an inference read (HGETALL feat:<SYMBOL>) p50/p99 while a processor child runs at full write load over the
//     KCL protocol, and the same reads with no write load, measured in the same run.
// Usage: node dist/src/dev/bench/features-bench.js [--reads N] [--computations N]

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

export interface FeaturesBenchOptions {
  readonly reads: number;
  readonly computations: number;
}

export interface FeaturesBenchResult {
  readonly options: FeaturesBenchOptions;
  /** The atomic snapshot read + computeFeatures, ms. */
  readonly readAndComputeMs: Summary;
  readonly computeOnlyMs: Summary;
  readonly sidecarTickMs: Summary;
  readonly inferenceReadIdleMs: Summary;
  readonly inferenceReadLoadedMs: Summary;
  /** Events/s of the processor child writing during the loaded reads. */
  readonly writeLoadEventsPerSecond: number;
}
const fmt = (s: Summary, unit = 'ms') =>
  `p50 ${s.p50.toFixed(3)} ${unit}  p99 ${s.p99.toFixed(3)} ${unit}  (n=${s.count})`;
const cli = path.resolve(__dirname, '..', '..', 'cli', 'main.js');
const SYMBOL = 'BTCUSDT';

async function timeReads(redis: Redis, key: string, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await redis.hgetall(key);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return samples;
}

/** Runs the benchmark, printing its lines through `out`, and returns its figures. */
export async function runFeaturesBench(
  options: FeaturesBenchOptions,
  out: (line: string) => void = () => undefined,
): Promise<FeaturesBenchResult> {
  const { reads, computations } = options;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-feat-bench-'));
  const port = await findFreePort();
  const server = await startRedisServer({ port, logFile: path.join(dir, 'redis.log') });
  const config = parseConfig({ redis: { host: '127.0.0.1', port } });
  const client = createRedisClient(config.redis, { connectionName: 'feature-bench' });
  const reader = new Redis({ port });
  const keys = new Keys({ clusterMode: false });
  try {
    out(
      `machine: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
    );
    const simulator = new MarketSimulator({
      seed: 5,
      symbols: [SYMBOL],
      startTimeUs: 1_760_000_000_000_000n,
    });
    const warm: SimulatedEvent[] = [];
    for (let i = 0; i < 20000; i++) warm.push(simulator.next());
    await new StateWriter(client, keys, {
      orderBookLevels: 10,
      diffBufferMaxLength: 1000,
      deadLetterMaxLen: 1000,
    }).write(groupBySymbol(warm.map((e) => e.message)).values(), []);
    const asOf = Number(simulator.currentTimeUs / 1000n);

    out('\n1. feature computation for one symbol (state of 20,000 simulated events)');
    const readCompute: number[] = [];
    for (let i = 0; i < computations; i++) {
      const t0 = process.hrtime.bigint();
      computeFeatures(await readSnapshot(client, keys, SYMBOL), asOf);
      readCompute.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const readAndComputeMs = summarize(readCompute.slice(100));
    out(`   atomic snapshot read + computeFeatures   ${fmt(readAndComputeMs)}`);
    const snapshot = await readSnapshot(client, keys, SYMBOL);
    const computeOnly: number[] = [];
    for (let i = 0; i < computations; i++) {
      const t0 = process.hrtime.bigint();
      computeFeatures(snapshot, asOf);
      computeOnly.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const computeOnlyMs = summarize(computeOnly.slice(100));
    out(`   computeFeatures alone                    ${fmt(computeOnlyMs)}`);
    let tick = Math.ceil(asOf / 2000) * 2000;
    const sidecar = new FeatureSidecar({
      client,
      keys,
      symbols: [SYMBOL],
      intervalMs: 2000,
      sidecarId: 'bench',
      historyMaxLen: 1000,
      readSnapshot,
      computeFeatures,
      logger: silentLogger(),
      now: () => tick,
    });
    const tickTimes: number[] = [];
    for (let i = 0; i < Math.min(computations, 2000); i++) {
      tick += 2000;
      const t0 = process.hrtime.bigint();
      await sidecar.runTick(tick);
      tickTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const sidecarTickMs = summarize(tickTimes.slice(50));
    out(`   whole sidecar tick (lease, read, compute, write, history)  ${fmt(sidecarTickMs)}`);

    out('\n2. inference read HGETALL feat:BTCUSDT');
    const idle = summarize((await timeReads(reader, keys.features(SYMBOL), reads)).slice(500));
    out(`   no write load                            ${fmt(idle)}`);
    // Full write load: a processor child fed trades and book events over the KCL protocol, back to back.
    const configFile = path.join(dir, 'config.yaml');
    fs.writeFileSync(
      configFile,
      `redis:\n  host: "127.0.0.1"\n  port: ${port}\nlogging:\n  level: "warn"\n  file: "${path.join(dir, 'p.log')}"\n`,
    );
    const load: SimulatedEvent[] = [];
    for (let i = 0; i < 200000; i++) load.push(simulator.next());
    const records: DriverRecord[] = load.map((e, i) => ({
      data: encodeMessage(e.message).toString('base64'),
      partitionKey: SYMBOL,
      sequenceNumber: String(2_000_000 + i),
      subSequenceNumber: 0,
      approximateArrivalTimestamp: Date.now(),
    }));
    const driver = new KclDriver(cli, configFile, 'trade');
    await driver.initialize('shardId-000000000000');
    let written = 0;
    let writing = true;
    const started = process.hrtime.bigint();
    const feeder = (async () => {
      for (let i = 0; i < records.length && writing; i += 500) {
        await driver.processRecords(records.slice(i, i + 500));
        written += Math.min(500, records.length - i);
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const loaded = summarize((await timeReads(reader, keys.features(SYMBOL), reads)).slice(500));
    writing = false;
    await feeder;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await driver.close();
    out(`   under write load                         ${fmt(loaded)}`);
    out(
      `   (write load: ${Math.round(written / seconds)} events/s through one processor child during the reads)`,
    );
    out(
      `   ratio loaded/idle: p50 ${(loaded.p50 / idle.p50).toFixed(2)}x, p99 ${(loaded.p99 / idle.p99).toFixed(2)}x`,
    );
    return {
      options,
      readAndComputeMs,
      computeOnlyMs,
      sidecarTickMs,
      inferenceReadIdleMs: idle,
      inferenceReadLoadedMs: loaded,
      writeLoadEventsPerSecond: written / seconds,
    };
  } finally {
    client.disconnect();
    reader.disconnect();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  await runFeaturesBench({ reads: arg('reads', 20000), computations: arg('computations', 5000) }, (line) =>
    process.stdout.write(`${line}\n`),
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
