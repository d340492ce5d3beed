import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import {
  applicationName,
  loadConfig,
  STREAM_KINDS,
  type AppConfig,
  type StreamKind,
} from '../../config/config';
import { spawnKclDaemon } from '../localstack/kcl-daemon';
import { findFreePort } from '../localstack/ports';
import { tailOf } from '../localstack/service';
import { startStack, type Stack } from '../localstack/stack';
import { createDynamoClient, readLeases } from '../../ops/leases';
import { deaggregate } from '../../replay/kpl';
import {
  createKinesisClient,
  publishEvents,
  putRecordsWith,
  type PublishSummary,
  type PutRecordsFn,
} from '../../replay/producer';
import { MarketSimulator, type SimulatedEvent, type SimulatorOptions } from '../../replay/simulator';
import { chooseActionsPerSecond, eventTimeUs, measureNaturalRates } from '../../replay/wall-clock';
import { SimulatedExchange, startSimExchangeServer, type SimExchangeServer } from '../rest/sim-server';
import { decodeFrames } from '../../sbe/decoder';
import { groupBySymbol } from '../../state/batch';
import { anchorBook, type RestDepthSnapshot } from '../../state/book';
import { Keys } from '../../state/keys';
import { createRedisClient } from '../../state/redis';
import { StateWriter } from '../../state/writer';
import { LatencyTracker, trackedId, type EventKind } from './soak-latency';
import {
  checkMemory,
  readProcTable,
  sampleRoles,
  isProcessorChild,
  descendants,
  type RoleSample,
  type RoleSpec,
} from './soak-memory';
import {
  DIFF_INTERVAL_MS,
  parseSoakOptions,
  SNAPSHOT_INTERVAL_MS,
  SOAK_USAGE,
  SoakUsageError,
  type SoakOptions,
} from './soak-options';
import { monoMs, startPoller, type PollerStats } from './soak-poller';
import { allChecksPass, formatSoakReport, type SoakReport } from './soak-report';
import { diffSnapshots, snapshotDb } from './soak-state';
import { summarize } from './stats';

// `npm run soak` / `npm run soak:short`: load and soak of the whole pipeline on this machine.
//
// The local stack on free ports (kinesis-mock, dynalite, a private redis-server), one real KCL MultiLangDaemon per
// stream (scripts/kcl-daemon.sh, their `aggregator process` children), the feature sidecar, and the simulated
// exchange's REST API; the symbol's book is anchored first (on the simulator's initial full book, the same call in
// the reference), so depth diffs are applied to the full book all along. Then simulated market data is published
// at the given rate for the given duration with the project's producer (KPL records, PutRecords) while:
//   - every event is registered when the PutRecords call carrying it is sent, with the time that call returned;
//     a poller thread reads the ids the state scripts write last (ob:<S> last_trade_id / bba_update_id /
//     depth20_update_id, book:<S>:state book_update_id) every ~1 ms: latency = first poll reply showing an id
//     >= the event's - its PutRecords return (src/dev/bench/soak-latency.ts);
//   - the RSS of every process is sampled (after the warm-up = start, after the last event was applied = end);
// then the market state is compared with a reference (StateWriter over every published event, regenerated from
// the seed, in Redis db 1). Prints a table, writes the JSON report; exit 0 only when every event was applied, the
// state is exact, no process grew beyond the bound and nothing was dead-lettered. 2 = bad options, 3 = the
// pipeline could not be started, 130 = interrupted.

const repoRoot = path.resolve(__dirname, '..', '..', '..', '..');
const t0 = Date.now();
const write = (text: string): void =>
  void process.stderr.write(`[+${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}\n`);

function configYaml(
  o: SoakOptions,
  ports: { kinesis: number; dynamodb: number; redis: number; health: number; metrics: number },
  restUrl: string,
  dir: string,
  label: string,
): string {
  return `service_name: "bitcoin-aggregator-soak"
aws:
  region: "us-east-1"
  kinesis:
    endpoint: "http://127.0.0.1:${ports.kinesis}"
    consumer_config:
      shard_iterator_type: "TRIM_HORIZON"
      max_records_per_poll: ${o.maxRecordsPerPoll}
      poll_interval_ms: ${o.kinesisPollMs}
  dynamodb:
    endpoint: "http://127.0.0.1:${ports.dynamodb}"
kcl:
  application_name_prefix: "${label}"
  failover_time_millis: 5000
  shard_sync_interval_millis: 1000
  shutdown_grace_millis: 5000
  timeout_in_seconds: 60
  metrics_level: "NONE"
redis:
  host: "127.0.0.1"
  port: ${ports.redis}
processing:
  symbols: ["${o.symbol}"]
  order_book_levels: 10
  batch_deadline_ms: 20000
reanchor:
  rest:
    base_url: "${restUrl}"
    depth_limit: 1000
  stale_after_seconds: 3600
  request_interval_seconds: 30
health:
  host: "127.0.0.1"
  port: ${ports.health}
metrics:
  enable_prometheus: true
  prometheus_port: ${ports.metrics}
logging:
  level: "info"
  file: "${path.join(dir, 'processor.log')}"
`;
}

/** The environment of the children: the generated config only (no overrides from the caller's shell). */
function childEnv(configFile: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONFIG_FILE: configFile,
    ...extra,
  };
  for (const name of ['REDIS_HOST', 'REDIS_PORT', 'AWS_REGION', 'KCL_PROFILE', 'JAVA_OPTS']) delete env[name];
  return env;
}

interface Daemon {
  readonly kind: StreamKind;
  readonly child: ChildProcess;
  readonly logFile: string;
}

function startDaemon(kind: StreamKind, dir: string, configFile: string): Daemon {
  const logFile = path.join(dir, `kcl-${kind}.log`);
  const child = spawnKclDaemon({
    kind,
    configFile,
    workerId: `soak-${kind}-1`,
    stateDir: path.join(dir, 'kcl'),
    logFile,
    env: childEnv(configFile),
  });
  return { kind, child, logFile };
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM (the daemon hands its leases off), then SIGKILL to its whole group after graceMs. */
async function stopGroup(child: ChildProcess, graceMs: number): Promise<void> {
  if (!exited(child)) {
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, graceMs))]);
  }
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

/** Every shard of every stream leased, and a processor child under each daemon. */
async function waitForReady(config: AppConfig, daemons: readonly Daemon[], timeoutMs: number): Promise<void> {
  const dynamo = createDynamoClient(config.aws.region, config.aws.dynamodb.endpoint, {
    connectionTimeoutMs: 2000,
    requestTimeoutMs: 5000,
  });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const missing: string[] = [];
      for (const d of daemons) {
        if (exited(d.child)) {
          throw new Error(`the ${d.kind} daemon exited (${d.child.exitCode}):\n${tailOf(d.logFile, 20)}`);
        }
        const leases = await readLeases(dynamo, applicationName(config, d.kind)).catch(() => []);
        if (leases.length === 0 || leases.some((l) => l.owner === undefined)) {
          missing.push(`${d.kind}: no lease owned`);
          continue;
        }
        const children = descendants(readProcTable(), d.child.pid as number).filter(isProcessorChild);
        if (children.length < leases.length) missing.push(`${d.kind}: no processor child yet`);
      }
      if (missing.length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(`the daemons were not ready after ${timeoutMs / 1000} s: ${missing.join('; ')}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    dynamo.destroy();
  }
}

function initialSnapshot(
  book: { lastUpdateId: bigint; bids: RestDepthSnapshot['bids']; asks: RestDepthSnapshot['asks'] },
  sim: { priceExponent: number; qtyExponent: number },
  timeUs: bigint,
): RestDepthSnapshot {
  return {
    lastUpdateId: book.lastUpdateId,
    priceExponent: sim.priceExponent,
    qtyExponent: sim.qtyExponent,
    bids: book.bids,
    asks: book.asks,
    timeUs,
  };
}

/**
 * The reference: the same anchor, then every published event (regenerated from the seed) written once, in
 * chunks, by StateWriter into `db` of the pipeline's redis-server (flushed first).
 */
async function writeReference(
  config: AppConfig,
  db: number,
  simOptions: SimulatorOptions,
  events: number,
  symbol: string,
  anchorTimeUs: bigint,
): Promise<void> {
  const client = createRedisClient({ ...config.redis, db }, { connectionName: 'soak-reference' });
  try {
    await client.flushdb();
    const keys = new Keys({ clusterMode: false });
    const sim = new MarketSimulator(simOptions);
    const anchored = await anchorBook(
      client,
      keys,
      symbol,
      initialSnapshot(sim.depthSnapshot(symbol, 5000), sim, anchorTimeUs),
      { levels: config.processing.orderBookLevels },
    );
    if (anchored.code !== 1) throw new Error(`reference anchor refused: ${anchored.outcome}`);
    const writer = new StateWriter(client, keys, {
      orderBookLevels: config.processing.orderBookLevels,
      diffBufferMaxLength: config.processing.diffBufferMaxLength,
      deadLetterMaxLen: 1000,
    });
    const CHUNK = 5000;
    for (let done = 0; done < events;) {
      const n = Math.min(CHUNK, events - done);
      const chunk: SimulatedEvent[] = [];
      for (let i = 0; i < n; i++) chunk.push(sim.next());
      for (const stream of ['trade', 'bestbidask', 'depth'] as const) {
        const messages = chunk.filter((e) => e.stream === stream).map((e) => e.message);
        if (messages.length > 0) await writer.write(groupBySymbol(messages).values(), []);
      }
      done += n;
    }
  } finally {
    client.disconnect();
  }
}

class Cleanup {
  private readonly steps: { name: string; run: () => Promise<void> }[] = [];
  private running: Promise<void> | undefined;
  /** Pids to SIGKILL if the process exits without cleaning up (negative = a process group). */
  readonly lastResort = new Set<number>();

  add(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }

  /** Runs every step once, last added first; the daemons stop in parallel within their step. */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of [...this.steps].reverse()) {
        try {
          await step.run();
        } catch (err) {
          write(`soak: stopping ${step.name}: ${(err as Error).message}`);
        }
      }
      this.lastResort.clear();
    })();
    return this.running;
  }
}

export async function runSoak(
  options: SoakOptions,
): Promise<{ report: SoakReport | undefined; code: number }> {
  const startedAt = new Date();
  const loadStart = os.loadavg();
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-soak-'));
  const cleanup = new Cleanup();
  const abort = new AbortController();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      for (const pid of cleanup.lastResort) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      process.exit(130);
    }
    interrupted = true;
    write(`soak: ${signal}: stopping everything (again to kill at once)`);
    abort.abort();
    void cleanup.run().then(() => {
      write(`soak: stopped; logs in ${runDir}`);
      process.exit(130);
    });
  };
  const onExit = (): void => {
    for (const pid of cleanup.lastResort) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);

  const S = options.symbol;
  const keys = new Keys({ clusterMode: false });
  const errors: string[] = [];
  write(`soak: run directory ${runDir}`);

  // The simulator: Binance SBE cadences, book actions chosen so that event time follows the wall clock.
  const cadence = { diffIntervalMs: DIFF_INTERVAL_MS, snapshotIntervalMs: SNAPSHOT_INTERVAL_MS };
  const actionsPerSecond = chooseActionsPerSecond(options.rate, (aps) =>
    measureNaturalRates({ seed: options.seed, symbols: [S], actionsPerSecond: aps, ...cadence }),
  );
  // The simulator's initial book does not depend on its start time: the book is anchored on it at set-up, the
  // exchange itself is created when publishing starts, so that event times follow the clock from there.
  const simBase = { seed: options.seed, symbols: [S], actionsPerSecond, ...cadence };
  const anchorTimeUs = BigInt(Date.now()) * 1000n;
  const initialSim = new MarketSimulator({ ...simBase, startTimeUs: anchorTimeUs });
  const initial = initialSim.depthSnapshot(S, 5000);
  const natural = measureNaturalRates(simBase);
  write(
    `soak: simulator ${actionsPerSecond} book actions/s: trade ${natural.trade.toFixed(0)}, bestBidAsk ` +
      `${natural.bestbidask.toFixed(0)}, depth ${natural.depth.toFixed(0)} events per simulated second; ` +
      `publishing ${options.rate} events/s for ${options.durationSeconds} s`,
  );

  let stack: Stack | undefined;
  const daemons: Daemon[] = [];
  let sidecar: ChildProcess | undefined;
  let config: AppConfig;
  const restPort = await findFreePort();

  // ---- start-up
  try {
    const ports = {
      kinesis: await findFreePort(),
      dynamodb: await findFreePort(),
      redis: await findFreePort(),
      health: await findFreePort(),
      metrics: await findFreePort(),
    };
    const label = `agg-soak-${process.pid}`;
    const configFile = path.join(runDir, 'config.yaml');
    fs.writeFileSync(configFile, configYaml(options, ports, `http://127.0.0.1:${restPort}`, runDir, label));
    config = loadConfig(configFile, {});
    write('soak: starting the local stack (kinesis-mock, dynalite, redis-server)');
    stack = await startStack({
      kinesisPort: ports.kinesis,
      dynamodbPort: ports.dynamodb,
      redisPort: ports.redis,
      streams: {
        [config.aws.kinesis.streams.trade]: 1,
        [config.aws.kinesis.streams.bestbidask]: 1,
        [config.aws.kinesis.streams.depth]: 1,
      },
      logDir: runDir,
      region: config.aws.region,
    });
    const st = stack;
    for (const s of st.services) cleanup.lastResort.add(s.pid);
    cleanup.add('the local stack', () => st.stop());

    // The book anchored on the simulator's initial full book, before any event.
    const anchorClient = createRedisClient(config.redis, { connectionName: 'soak-anchor' });
    try {
      const anchored = await anchorBook(
        anchorClient,
        keys,
        S,
        initialSnapshot(initial, initialSim, anchorTimeUs),
        { levels: config.processing.orderBookLevels },
      );
      if (anchored.code !== 1) throw new Error(`anchoring the book was refused: ${anchored.outcome}`);
    } finally {
      anchorClient.disconnect();
    }

    write('soak: starting one KCL daemon per stream and the sidecar');
    for (const kind of STREAM_KINDS) {
      const d = startDaemon(kind, runDir, configFile);
      daemons.push(d);
      if (d.child.pid !== undefined) cleanup.lastResort.add(-d.child.pid);
    }
    cleanup.add('the KCL daemons', async () => {
      await Promise.all(daemons.map((d) => stopGroup(d.child, 15_000)));
    });
    const sidecarLog = fs.openSync(path.join(runDir, 'sidecar.log'), 'a');
    sidecar = spawn(
      process.execPath,
      [
        path.join(repoRoot, 'dist/src/cli/main.js'),
        '--config',
        configFile,
        'sidecar',
        '--id',
        'soak-sidecar-1',
      ],
      { env: childEnv(configFile), stdio: ['ignore', sidecarLog, sidecarLog] },
    );
    fs.closeSync(sidecarLog);
    const sc = sidecar;
    if (sc.pid !== undefined) cleanup.lastResort.add(sc.pid);
    cleanup.add('the sidecar', () => stopChild(sc, 10_000));
    await waitForReady(config, daemons, 180_000);
    write('soak: every shard leased, processors running');
  } catch (err) {
    if (!interrupted) {
      write(`soak: could not start the pipeline: ${(err as Error).message} (logs in ${runDir})`);
      await cleanup.run();
    }
    return { report: undefined, code: interrupted ? 130 : 3 };
  }

  // ---- the run
  const roles: RoleSpec[] = [
    ...stack.services.map((s) => ({ name: s.name, kind: s.name, pid: s.pid, withDescendants: true })),
    ...daemons.map((d) => ({
      name: `kcl-${d.kind}`,
      kind: 'kcl-daemon',
      pid: d.child.pid as number,
      withDescendants: false,
    })),
    { name: 'sidecar', kind: 'sidecar', pid: sidecar.pid as number, withDescendants: true },
    { name: 'soak-driver', kind: 'driver', pid: process.pid, withDescendants: false },
  ];
  // The exchange: its events are what is published, its REST API (the sidecar's reanchor.rest.base_url) answers
  // consistently with them. Not expected to be asked: the book is anchored and stays in sync.
  const simOptions: SimulatorOptions = { ...simBase, startTimeUs: BigInt(Date.now()) * 1000n };
  const exchange = new SimulatedExchange(simOptions);
  if (exchange.depth(S, 5000).lastUpdateId !== initial.lastUpdateId) {
    errors.push('the exchange does not start from the anchored book');
  }
  try {
    const rest: SimExchangeServer = await startSimExchangeServer({ port: restPort, exchange });
    cleanup.add('the REST API', () => rest.stop());
  } catch (err) {
    errors.push(`the simulated exchange's REST API could not be served: ${(err as Error).message}`);
  }
  const tracker = new LatencyTracker();
  const poller = startPoller(
    {
      host: '127.0.0.1',
      port: stack.redisPort,
      db: 0,
      orderBookKey: keys.orderBook(S),
      bookStateKey: keys.bookState(S),
      intervalMs: options.redisPollMs,
    },
    (m) => {
      for (const { kind, id } of m.ids) tracker.visible(kind, id, m.t);
    },
  );
  cleanup.add('the poller', async () => {
    await poller.stop();
  });

  const kinesis = createKinesisClient({
    region: config.aws.region,
    endpoint: config.aws.kinesis.endpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const put = putRecordsWith(kinesis);
  const putDurations: number[] = [];
  // A partial failure re-sends the same entry objects: their events were registered with the first call.
  const registered = new WeakSet<Uint8Array>();
  const tracked: PutRecordsFn = async (input) => {
    const events: { kind: EventKind; id: number }[] = [];
    for (const record of input.Records ?? []) {
      const data = record.Data as Uint8Array;
      if (registered.has(data)) continue;
      registered.add(data);
      const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      for (const user of deaggregate(buf, record.PartitionKey ?? '')) {
        for (const frame of decodeFrames(user.data)) events.push(trackedId(frame.message));
      }
    }
    const call = tracker.sent(events, monoMs());
    const out = await put(input);
    const t = monoMs();
    tracker.returned(call, t);
    putDurations.push(t - call.sentMs);
    return out;
  };

  // The producer publishes every event it takes but, when it stops, possibly one held for its time (not yet due):
  // the times of the last two taken give the last published.
  let generated = 0;
  let lastTakenTimeUs = simOptions.startTimeUs;
  let beforeLastTakenTimeUs = simOptions.startTimeUs;
  let lastPublishedTimeUs = simOptions.startTimeUs;
  function* source(): Generator<SimulatedEvent, void, undefined> {
    for (;;) {
      const ev = exchange.next();
      generated++;
      beforeLastTakenTimeUs = lastTakenTimeUs;
      lastTakenTimeUs = eventTimeUs(ev.message);
      yield ev;
    }
  }

  const series: { t: number; rssMiB: Record<string, number> }[] = [];
  const publishStart = monoMs();
  const sample = (): RoleSample[] => {
    const samples = sampleRoles(readProcTable(), roles);
    series.push({
      t: Math.round((monoMs() - publishStart) / 100) / 10,
      rssMiB: Object.fromEntries(samples.map((s) => [s.name, Math.round(s.rssMiB * 10) / 10])),
    });
    return samples;
  };
  let startSample: RoleSample[] = [];
  let startSampleAt = 0;
  tracker.setWarmupEnd(publishStart + options.warmupSeconds * 1000);
  const warmupTimer = setTimeout(() => {
    startSample = sample();
    startSampleAt = (monoMs() - publishStart) / 1000;
    write(`soak: warm-up over; RSS start sampled`);
  }, options.warmupSeconds * 1000);
  const progress = setInterval(() => {
    const s = sample();
    const t = (monoMs() - publishStart) / 1000;
    write(
      `soak: ${t.toFixed(0)} s: published ${tracker.publishedTotal}, applied ${tracker.visibleTotal}, pending ` +
        `${tracker.pending}; RSS ${s.map((x) => `${x.name} ${x.rssMiB.toFixed(0)}`).join(', ')} MiB`,
    );
  }, options.sampleSeconds * 1000);

  let summary: PublishSummary | undefined;
  let publishEnd = publishStart;
  try {
    write('soak: publishing');
    summary = await publishEvents(source(), {
      streams: config.aws.kinesis.streams,
      putRecords: tracked,
      recordMode: options.recordMode,
      eventsPerSecond: options.rate,
      // However the simulator's rate drifts from the publishing rate, event times never get ahead of the clock.
      notBeforeEventTime: true,
      durationMs: options.durationSeconds * 1000,
      signal: abort.signal,
    });
    publishEnd = monoMs();
    const heldBack = generated - summary.events;
    if (heldBack !== 0 && heldBack !== 1)
      errors.push(`producer accepted ${summary.events} events, ${generated} generated`);
    lastPublishedTimeUs = heldBack === 1 ? beforeLastTakenTimeUs : lastTakenTimeUs;
    write(`soak: published ${summary.events} events; waiting for the last to be applied`);
    const settleDeadline = Date.now() + options.settleSeconds * 1000;
    while (tracker.pending > 0 && Date.now() < settleDeadline && !interrupted) {
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    errors.push(`publishing failed: ${(err as Error).message}`);
  } finally {
    kinesis.destroy();
    clearTimeout(warmupTimer);
    clearInterval(progress);
  }
  if (interrupted) return { report: undefined, code: 130 };
  const endSample = sample();
  const endSampleAt = (monoMs() - publishStart) / 1000;
  if (startSample.length === 0) {
    startSample = endSample;
    startSampleAt = endSampleAt;
    errors.push('the run ended before the warm-up: RSS start = end');
  }
  const pollerStats: PollerStats | undefined = await poller.stop();
  const pending = tracker.pending;
  const drainMs = tracker.lastVisibleMs === undefined ? 0 : Math.max(0, tracker.lastVisibleMs - publishEnd);

  // ---- dead letters, re-anchors, exactness
  const reader = new Redis({ host: '127.0.0.1', port: stack.redisPort, db: 0, lazyConnect: false });
  let deadLetters = 0;
  let reanchorRequests = 0;
  let keysCompared = 0;
  let differences: string[] = [];
  let exactChecked = false;
  const referenceStart = Date.now();
  try {
    for (const kind of STREAM_KINDS) {
      const counts = await reader.hgetall(keys.deadLetterCounts(config.aws.kinesis.streams[kind]));
      deadLetters += Object.values(counts).reduce((a, v) => a + Number(v), 0);
    }
    reanchorRequests = (await reader.exists(keys.reanchorRequests()))
      ? await reader.xlen(keys.reanchorRequests())
      : 0;
    if (summary !== undefined) {
      write(`soak: computing the reference over ${summary.events} events`);
      const actual = await snapshotDb(reader);
      await writeReference(config, 1, simOptions, summary.events, S, anchorTimeUs);
      const refReader = new Redis({ host: '127.0.0.1', port: stack.redisPort, db: 1 });
      try {
        const expected = await snapshotDb(refReader);
        keysCompared = Object.keys(expected).length;
        differences = diffSnapshots(actual, expected);
        exactChecked = true;
      } finally {
        refReader.disconnect();
      }
    }
  } catch (err) {
    errors.push(`exactness check failed: ${(err as Error).message}`);
  } finally {
    reader.disconnect();
  }
  const referenceMs = Date.now() - referenceStart;

  write('soak: stopping the pipeline');
  await cleanup.run();
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  process.removeListener('exit', onExit);

  // ---- the report
  const memory = checkMemory(startSample, endSample, options.memory);
  const lat = tracker.summary();
  const elapsedMs = summary?.elapsedMs ?? publishEnd - publishStart;
  const appliedSpan =
    tracker.lastVisibleMs === undefined || tracker.firstSentMs === undefined
      ? 0
      : tracker.lastVisibleMs - tracker.firstSentMs;
  const checks = {
    allApplied: summary !== undefined && pending === 0 && tracker.visibleTotal === summary.events,
    exact: exactChecked && differences.length === 0,
    memory: memory.every((m) => m.ok),
    noDeadLetters: deadLetters === 0,
  };
  const cpus = os.cpus();
  const report: SoakReport = {
    version: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      cores: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
      loadAverageStart: loadStart,
      loadAverageEnd: os.loadavg(),
    },
    options,
    simulator: {
      seed: options.seed,
      symbol: S,
      actionsPerSecond,
      diffIntervalMs: DIFF_INTERVAL_MS,
      snapshotIntervalMs: SNAPSHOT_INTERVAL_MS,
      naturalRates: natural,
      simTimeRatio:
        elapsedMs > 0 ? Number(lastPublishedTimeUs - simOptions.startTimeUs) / 1000 / elapsedMs : 0,
    },
    published: {
      events: summary?.events ?? tracker.publishedTotal,
      perStream: summary?.eventsPerStream ?? {},
      records: summary?.records ?? 0,
      putRecordsCalls: summary?.putRecordsCalls ?? putDurations.length,
      retriedEntries: summary?.retriedEntries ?? 0,
      elapsedMs,
      eventsPerSecond: elapsedMs > 0 ? ((summary?.events ?? 0) * 1000) / elapsedMs : 0,
      putRecordsMs: summarize(putDurations),
    },
    applied: {
      events: tracker.visibleTotal,
      pendingAtEnd: pending,
      eventsPerSecond: appliedSpan > 0 ? (tracker.visibleTotal * 1000) / appliedSpan : 0,
      drainMs,
    },
    latency: {
      measuredFrom: 'PutRecords returned',
      measuredTo: 'first poll reply showing the event id in Redis',
      warmupSeconds: options.warmupSeconds,
      byKind: lat,
      visibleBeforeReturn: tracker.visibleBeforeReturn,
      outOfOrder: tracker.outOfOrder,
      poller: pollerStats,
    },
    memory: {
      bound: options.memory,
      startSampledAtSeconds: startSampleAt,
      endSampledAtSeconds: endSampleAt,
      processes: memory,
      series,
    },
    exactness: { checked: exactChecked, keysCompared, differences, referenceMs },
    deadLetters,
    reanchorRequests,
    checks,
    ok: allChecksPass(checks) && errors.length === 0,
    runDir,
    errors,
  };
  fs.mkdirSync(path.dirname(options.reportFile), { recursive: true });
  fs.writeFileSync(options.reportFile, `${JSON.stringify(report, null, 2)}\n`);
  if (report.ok && !options.keepLogs) fs.rmSync(runDir, { recursive: true, force: true });
  return { report, code: report.ok ? 0 : 1 };
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${SOAK_USAGE}\n`);
    process.exit(0);
  }
  let options: SoakOptions;
  try {
    options = parseSoakOptions(
      process.argv.slice(2),
      process.env,
      path.join(repoRoot, '.local', 'soak-report.json'),
    );
  } catch (err) {
    if (err instanceof SoakUsageError) {
      write(`soak: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const { report, code } = await runSoak(options);
  if (report !== undefined) {
    process.stdout.write(`${formatSoakReport(report)}\n`);
    process.stdout.write(
      `report: ${options.reportFile}${report.ok && !options.keepLogs ? '' : `; logs: ${report.runDir}`}\n`,
    );
  }
  process.exit(code);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    write(`soak: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}
