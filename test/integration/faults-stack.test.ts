import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { STREAM_KINDS } from '../../src/config/config';
import { kinesisMockDataFile } from '../../src/dev/localstack/kinesis-mock';
import { findFreePort } from '../../src/dev/localstack/ports';
import { serviceDataDir } from '../../src/dev/localstack/stack';
import type { HealthBody } from '../../src/ops/health';
import { readReports, type ProcessorReport } from '../../src/ops/telemetry';
import { Keys } from '../../src/state/keys';
import type { PublishSummary } from '../../src/replay/producer';
import { simulate, type SimulatedEvent } from '../../src/replay/simulator';
import { checkpointsBehind, PipelinePublisher } from '../helpers/exactness';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';
import { processorLog, processorLogSize } from '../helpers/processor-log';
import { spawnSidecar, type SidecarProcess } from '../helpers/sidecar-process';
import {
  checkpointsInto,
  DaemonSupervisor,
  leaseCheckpoints,
  missingLastRecords,
  sleep,
  tailFile,
  waitForKinesisPersisted,
  withoutSidecarKeys,
} from '../helpers/stack-faults';

// Faults of the stack under the real pipeline (kinesis-mock -> real KCL daemons -> processors -> Redis):
// Redis hung for 10 s, Redis crashed and restarted, kinesis-mock and dynalite crashed and restarted. Every case
// ends with the market state equal to the reference over every event published so far: nothing lost, nothing
// applied twice. One pipeline for all cases, its services keeping their data on disk (Redis AOF fsynced on
// every write, dynalite in LevelDB, kinesis-mock's JSON file) so that a restart brings them back.
//
// Redis outages within the ride-through bound (processing.batch_deadline_ms) are waited out: no process exits.
// A daemon that exits anyway (a processor that could not store a batch within the bound exits without
// acknowledging it, and the daemon then stops every shard) is restarted by DaemonSupervisor with the same worker
// id, as the container runtime would; the Redis cases assert that none did.

const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const SHARDS = { trade: 2, bestbidask: 1, depth: 1 };
/** Redis hung (SIGSTOP) this long: within the ride-through bound below, so every process waits it out. */
const OUTAGE_MS = 45_000;
/** processing.batch_deadline_ms of this pipeline (the ride-through bound), and the daemon's timeout above it. */
const RIDE_THROUGH_MS = 90_000;
const KCL_TIMEOUT_SECONDS = 120;

describe('stack faults: Redis, kinesis-mock and dynalite outages under the real pipeline', function () {
  this.timeout(600_000);
  let pipeline: Pipeline;
  let publisher: PipelinePublisher;
  let supervisor: DaemonSupervisor;
  let sidecar: SidecarProcess | undefined;
  let persistDir: string;
  let healthUrl: string;
  const source = simulate({ seed: 77, symbols: SYMBOLS, startTimeUs: 1_764_000_000_000_000n }, 1_000_000);

  function take(count: number): SimulatedEvent[] {
    const out: SimulatedEvent[] = [];
    for (let i = 0; i < count; i++) {
      const next = source.next();
      if (next.done === true) break;
      out.push(next.value);
    }
    return out;
  }

  /** Daemon and processor logs for a failure message. */
  function diagnostics(): string {
    const daemons = STREAM_KINDS.map((k) => {
      try {
        return `--- ${k} daemon:\n${tailFile(pipeline.daemon(k).logFile, 15)}`;
      } catch {
        return `--- ${k}: no daemon`;
      }
    });
    return [
      ...daemons,
      `--- processor.log:\n${tailFile(path.join(pipeline.dir, 'processor.log'), 15)}`,
      `--- redis.log:\n${tailFile(path.join(pipeline.dir, 'redis.log'), 10)}`,
      `--- kinesis-mock.log:\n${tailFile(path.join(pipeline.dir, 'kinesis-mock.log'), 10)}`,
      `--- dynalite.log:\n${tailFile(path.join(pipeline.dir, 'dynalite.log'), 10)}`,
      `--- sidecar stderr:\n${sidecar?.stderr().split('\n').slice(-10).join('\n') ?? ''}`,
    ].join('\n');
  }

  /** Every checkpoint at the last record published, then the market state equal to the reference. */
  async function expectExact(what: string): Promise<void> {
    const started = Date.now();
    let states;
    try {
      states = await publisher.settle(240_000);
    } catch (err) {
      throw new Error(`${what}: ${(err as Error).message}\n${diagnostics()}`, { cause: err });
    }
    const [actual, expected] = states.map(withoutSidecarKeys);
    expect(Object.keys(expected!)).to.include.members(SYMBOLS.map((s) => `ob:${s}`));
    expect(actual, `${what}: market state differs from the reference`).to.deep.equal(expected);
    note(
      `${what}: ${publisher.events.length} events so far exact, settled ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }

  function note(text: string): void {
    process.stderr.write(`      ${text}\n`);
  }

  async function health(): Promise<{ status: number; body: HealthBody } | undefined> {
    try {
      const res = await fetch(`${healthUrl}/health`, { signal: AbortSignal.timeout(8000) });
      return { status: res.status, body: (await res.json()) as HealthBody };
    } catch {
      return undefined;
    }
  }

  async function waitForRedisHealth(status: 'healthy' | 'unhealthy', timeoutMs: number): Promise<void> {
    let last: unknown;
    await waitUntil(
      async () => {
        const answer = await health();
        last = answer?.body.components.redis;
        return answer?.body.components.redis.status === status;
      },
      timeoutMs,
      `/health redis ${status}`,
      () => Promise.resolve(`${JSON.stringify(last)}\n${sidecar?.stderr().slice(-2000) ?? ''}`),
    );
  }

  /** The processors' telemetry reports, by "stream/shard". */
  async function processorReports(): Promise<Map<string, ProcessorReport>> {
    const { reports } = await readReports(pipeline.redis, new Keys({ clusterMode: false }), Date.now());
    return new Map(reports.map((r) => [`${r.stream}/${r.shardId}`, r]));
  }

  /**
   * The reports once every child published one after now (every 2 s): a report read earlier may predate the
   * count of a batch already checkpointed, and a difference of two reports would then count it in the wrong one.
   */
  async function freshProcessorReports(): Promise<Map<string, ProcessorReport>> {
    const since = Date.now();
    let reports = new Map<string, ProcessorReport>();
    await waitUntil(
      async () => {
        reports = await processorReports();
        return reports.size > 0 && [...reports.values()].every((r) => r.updatedMs > since);
      },
      15_000,
      'a telemetry report of every processor published after the last batch',
    );
    return reports;
  }

  async function waitForCheckpointsOf(shards: PublishSummary['shards']): Promise<void> {
    await waitUntil(
      async () => (await checkpointsBehind(pipeline, shards)).length === 0,
      120_000,
      'the checkpoints at the records published during the outage',
    );
  }

  before(async function () {
    persistDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faults-stack-data-'));
    const healthPort = await findFreePort();
    healthUrl = `http://127.0.0.1:${healthPort}`;
    pipeline = await startPipeline({
      shards: SHARDS,
      symbols: SYMBOLS,
      label: 'faults-stack',
      // No re-anchoring: it would rewrite books from REST snapshots (and call the real exchange).
      extraYaml: `reanchor:\n  enabled: false\nhealth:\n  host: '127.0.0.1'\n  port: ${healthPort}\n`,
      stackOptions: { persistDir, kinesisPersistIntervalMs: 500 },
      batchDeadlineMs: RIDE_THROUGH_MS,
      kclTimeoutSeconds: KCL_TIMEOUT_SECONDS,
    });
    // The helper's own client: its reconnection attempts while Redis is down are expected.
    pipeline.redis.on('error', () => undefined);
    supervisor = new DaemonSupervisor(pipeline);
    for (const kind of STREAM_KINDS) supervisor.start(kind);
    publisher = new PipelinePublisher(pipeline);
    await publisher.publish(take(3000));
    await expectExact('warm-up');
  });

  after(async function () {
    supervisor?.stop();
    await sidecar?.stop();
    publisher?.close();
    // Never leave a stopped Redis behind (a failed assertion may end the outage case early).
    try {
      process.kill(pipeline.stack.service('redis-server').pid, 'SIGCONT');
    } catch {
      // gone
    }
    if (pipeline) await pipeline.stop();
    fs.rmSync(persistDir, { recursive: true, force: true });
  });

  it('Redis hung for 45 s: every process waits it out, no checkpoint passes unacknowledged data, /health says since when, ingestion resumes at once, state exact', async function () {
    sidecar = spawnSidecar(pipeline.configFile, 'sc-faults-stack');
    await waitForRedisHealth('healthy', 60_000);
    const redisPid = pipeline.stack.service('redis-server').pid;
    const logOffset = processorLogSize(pipeline);
    const restartsBefore = supervisor.restartsSince().length;
    const reportsBefore = await freshProcessorReports();
    // SIGSTOP: the server keeps its connections and the kernel still accepts new ones, but nothing is
    // answered — a hung or partitioned Redis, the worst case for clients (timeouts, not quick refusals).
    process.kill(redisPid, 'SIGSTOP');
    const stoppedAt = Date.now();
    let resumed = false;
    try {
      // Published while Redis is down, concurrently with the checks (publishing may itself take seconds).
      let outage: PublishSummary | undefined;
      let publishError: unknown;
      const publishing = publisher.publish(take(3000)).then(
        (summary) => (outage = summary),
        (err: unknown) => (publishError = err),
      );
      const answers: Array<{ status: number; redis: string; reason: string; since: unknown }> = [];
      const polling = (async () => {
        while (!resumed) {
          const answer = await health();
          // Only answers given while Redis was down, after the sidecar could have noticed.
          if (answer !== undefined && !resumed && Date.now() - stoppedAt > 1500) {
            answers.push({
              status: answer.status,
              redis: answer.body.components.redis.status,
              reason: JSON.stringify(answer.body.components.redis.reason ?? ''),
              since: answer.body.components.redis.unreachable_since,
            });
          }
          await sleep(500);
        }
      })();
      let checks = 0;
      // At least OUTAGE_MS, and long enough to have the batch published and one /health answer (a loaded
      // machine can be slow at both); a processor that runs out of retries meanwhile exits, as designed.
      while (Date.now() - stoppedAt < OUTAGE_MS || outage === undefined || answers.length === 0) {
        if (publishError !== undefined)
          throw publishError instanceof Error ? publishError : new Error(JSON.stringify(publishError));
        if (Date.now() - stoppedAt > 60_000) {
          throw new Error(
            `outage not observable: published ${outage !== undefined}, ${answers.length} answers`,
          );
        }
        if (outage !== undefined) {
          const into = checkpointsInto(await leaseCheckpoints(pipeline), outage.shards);
          expect(into, 'a checkpoint reached records published while Redis was down').to.deep.equal([]);
          checks += 1;
        }
        await sleep(500);
      }
      await publishing;
      // The last look just before Redis comes back: no shard's checkpoint reached the outage batch, which
      // was therefore still unprocessed (right after SIGCONT the processors finish it within milliseconds).
      expect(Object.keys(outage.shards)).to.not.be.empty;
      expect(checkpointsInto(await leaseCheckpoints(pipeline), outage.shards)).to.deep.equal([]);
      const outageMs = Date.now() - stoppedAt;
      resumed = true;
      process.kill(redisPid, 'SIGCONT');
      const resumedAt = Date.now();
      await polling;
      for (const a of answers) {
        expect(a.status).to.equal(503);
        expect(a.redis).to.equal('unhealthy');
        expect(a.reason).to.match(/^"unreachable since \d{4}-/);
        expect(Date.parse(String(a.since))).to.be.within(stoppedAt - 1000, stoppedAt + 5000);
      }
      await publishing;
      await waitForCheckpointsOf(outage.shards);
      // The processors really met the outage with records in hand, and rode it through: no exit, no redelivery,
      // one line when it started and one when it ended per process, and writes again at once.
      const log = processorLog(pipeline, logOffset);
      const retries = log.filter((l) => l.message === 'redis write failed; retrying').length;
      const gaveUp = log.filter((l) => String(l.message).startsWith('processRecords failed')).length;
      expect(retries, 'no processor retried a Redis write during the outage').to.be.greaterThan(0);
      expect(gaveUp, 'a processor gave up within the ride-through bound').to.equal(0);
      expect(supervisor.restartsSince().length - restartsBefore, 'a daemon exited').to.equal(0);
      const processors = log.filter((l) => l.role === 'processor');
      const starts = processors.filter((l) => l.message === 'redis unavailable: waiting for it');
      const ends = processors.filter((l) => l.message === 'redis available again');
      const pids = new Set(starts.map((l) => l.pid));
      expect(pids.size, 'processors that met the outage').to.be.at.least(1);
      for (const pid of pids) {
        expect(starts.filter((l) => l.pid === pid).length, `outage start lines of ${String(pid)}`).to.equal(
          1,
        );
        expect(ends.filter((l) => l.pid === pid).length, `outage end lines of ${String(pid)}`).to.equal(1);
      }
      // The sidecar too: one line when the outage started and one when it ended, nothing at warn per tick.
      const sidecarLines = log.filter(
        (l) => l.role === 'sidecar' && (l.level === 'warn' || l.level === 'error'),
      );
      process.stderr.write(
        `      sidecar lines at warn or error during the outage: ${JSON.stringify(
          [...new Set(sidecarLines.map((l) => l.message))].map(
            (m) => `${String(m)} x${sidecarLines.filter((l) => l.message === m).length}`,
          ),
        )}\n`,
      );
      expect(sidecarLines.filter((l) => l.message === 'redis unavailable: waiting for it')).to.have.length(1);
      expect(sidecarLines.filter((l) => l.message === 'redis available again')).to.have.length(1);
      expect(sidecarLines.length, 'sidecar lines at warn or error (no flood)').to.be.at.most(6);
      const resumeMs = Math.max(...ends.map((l) => Date.parse(String(l.timestamp)) - resumedAt));
      expect(resumeMs, 'ms from Redis answering to the last processor writing again').to.be.below(2000);
      // The same children (the same pids) processed every record once: none redelivered.
      const reportsAfter = await freshProcessorReports();
      // recordsTotal counts the records the daemon hands over: KPL aggregates de-aggregated, one per event here.
      const published = outage.events;
      // The telemetry kept the outage while Redis was away and published it once Redis was back.
      const counted = [...reportsAfter.values()].filter((r) => (r.redisOutagesTotal ?? 0) >= 1);
      expect(counted.map((r) => r.pid).sort(), 'reports counting the outage').to.deep.equal(
        [...pids].map(Number).sort(),
      );
      for (const r of counted) {
        expect(r.redisOutageSecondsTotal, `${r.stream}/${r.shardId} outage seconds`).to.be.within(30, 60);
        expect(r.waitingForRedisSinceMs).to.equal(null);
      }
      let processed = 0;
      for (const [shard, report] of reportsAfter) {
        expect(report.pid, `${shard}: a new child`).to.equal(reportsBefore.get(shard)?.pid);
        processed += report.recordsTotal - (reportsBefore.get(shard)?.recordsTotal ?? 0);
      }
      expect(processed, 'user records processed since the outage began (none twice)').to.equal(published);
      note(
        `outage: ${(outageMs / 1000).toFixed(1)} s, ${checks} lease checks, ${answers.length} /health answers ` +
          `(503, redis unhealthy since the pause), ${retries} write retries, 0 processors gave up, 0 daemon ` +
          `restarts, ${pids.size} processes logged one start and one end line each, writes again ${resumeMs} ms ` +
          `after Redis answered, ${processed} records processed once`,
      );
    } finally {
      if (!resumed) process.kill(redisPid, 'SIGCONT');
      resumed = true;
    }
    await publisher.publish(take(1000));
    await waitForRedisHealth('healthy', 60_000);
    await expectExact('after the Redis outage');
    await sidecar.stop();
    sidecar = undefined;
  });

  it('Redis killed, down 10 s and restarted with its AOF: no process exits, no batch redelivered, state exact', async function () {
    const logOffset = processorLogSize(pipeline);
    const restartsBefore = supervisor.restartsSince().length;
    const reportsBefore = await freshProcessorReports();
    const eventsBefore = publisher.events.length;
    // The crash comes right after a batch was acknowledged by Kinesis, while the processors are still storing
    // it (checked: some shard's checkpoint is behind), and while the next batch is being published.
    let behind: string[] = [];
    for (let attempt = 1; attempt <= 3 && behind.length === 0; attempt++) {
      const batch = await publisher.publish(take(3000));
      behind = await checkpointsBehind(pipeline, batch.shards);
    }
    expect(behind, 'every record was stored before the crash: nothing in flight').to.not.be.empty;
    const publishing = publisher.publish(take(2000));
    const crashedAt = Date.now();
    // Down for 10 s (connections refused meanwhile), then back on the same port with its AOF.
    await pipeline.stack.restart('redis-server', { crash: true, downMs: 10_000 });
    const downMs = Date.now() - crashedAt;
    await publishing;
    await publisher.publish(take(1000));
    await expectExact('after the Redis restart');
    const log = processorLog(pipeline, logOffset);
    // A processor whose write was in flight may never see it fail (ioredis resends it after reconnecting), but
    // every processor connection is dropped and logs its reconnect.
    const dropped = log.filter(
      (l) =>
        l.message === 'redis unavailable: waiting for it' || l.message === 'redis write failed; retrying',
    ).length;
    expect(dropped, 'no processor noticed the restart').to.be.greaterThan(0);
    expect(supervisor.restartsSince().length - restartsBefore, 'a daemon exited').to.equal(0);
    expect(log.filter((l) => String(l.message).startsWith('processRecords failed'))).to.deep.equal([]);
    // The same children processed every record published since, once: no batch was redelivered.
    const reportsAfter = await freshProcessorReports();
    let processed = 0;
    for (const [shard, report] of reportsAfter) {
      expect(report.pid, `${shard}: a new child`).to.equal(reportsBefore.get(shard)?.pid);
      processed += report.recordsTotal - (reportsBefore.get(shard)?.recordsTotal ?? 0);
    }
    const published = publisher.events.length - eventsBefore;
    expect(processed, 'user records processed since the crash (none twice)').to.equal(published);
    note(
      `redis restart: down ${downMs} ms, ${behind.length} shards behind at the crash, ` +
        `${dropped} connection drops, errors and write retries logged, ` +
        `${supervisor.restartsSince().length - restartsBefore} daemon restarts, ${processed} records processed once`,
    );
  });

  it('kinesis-mock crashed and restarted with its persisted records: the daemons go on, state converges', async function () {
    // kinesis-mock writes its data file every 500 ms and not atomically, and its graceful exit never completes
    // while the daemons hold HTTP/2 connections: records acknowledged after the last write die with it (an
    // emulator limit, not the pipeline's). So the crash comes once the file holds every record acknowledged so
    // far (checked, not assumed), and the restarted emulator must serve all of them again. Whether some were
    // still unconsumed at the crash depends on the machine's speed (the daemons poll every 100 ms): tried up
    // to 3 times, reported, not asserted; the records published after the restart always have to be read by
    // daemons that were polling across it.
    const dataFile = kinesisMockDataFile(serviceDataDir(persistDir, 'kinesis-mock')!);
    const restartsBefore = supervisor.restartsSince().length;
    let behind: string[] = [];
    for (let attempt = 1; attempt <= 3 && behind.length === 0; attempt++) {
      const batch = await publisher.publish(take(3000), 'single');
      await waitForKinesisPersisted(dataFile, publisher.latest, 30_000);
      behind = await checkpointsBehind(pipeline, batch.shards);
    }
    const beforeCrash = structuredClone(publisher.latest);
    const crashedAt = Date.now();
    await pipeline.stack.restart('kinesis-mock', { crash: true });
    const downMs = Date.now() - crashedAt;
    expect(
      await missingLastRecords(pipeline.stack.kinesisEndpoint, pipeline.config.aws.region, beforeCrash),
      'records acknowledged and persisted before the crash are gone',
    ).to.deep.equal([]);
    await publisher.publish(take(1000));
    await expectExact('after the kinesis-mock restart');
    note(
      `kinesis-mock restart: down ${downMs} ms, ${behind.length} shards had unconsumed records at the crash, ` +
        `${supervisor.restartsSince().length - restartsBefore} daemon restarts`,
    );
  });

  it('dynalite crashed and restarted (LevelDB): lease checkpoints survive, state converges', async function () {
    const restartsBefore = supervisor.restartsSince().length;
    const batch = await publisher.publish(take(3000));
    const before = await leaseCheckpoints(pipeline);
    const behind = await checkpointsBehind(pipeline, batch.shards);
    const crashedAt = Date.now();
    await pipeline.stack.restart('dynalite', { crash: true });
    const downMs = Date.now() - crashedAt;
    // The table came back with the checkpoints it had (none reset to TRIM_HORIZON or lost). The loop below says
    // nothing without leases or without a sequence-number checkpoint among them: one lease per shard is required
    // first, and checkpoints to compare.
    const numeric = [...before.values()].filter((c) => c !== undefined && /^\d+$/.test(c));
    expect(before.size, 'leases read before the crash').to.equal(
      Object.values(SHARDS).reduce((n, k) => n + k, 0),
    );
    expect(numeric.length, 'leases with a sequence-number checkpoint before the crash').to.be.greaterThan(0);
    const after = await leaseCheckpoints(pipeline);
    for (const [lease, checkpoint] of before) {
      expect(after.has(lease), `lease ${lease} lost by the restart`).to.equal(true);
      if (checkpoint !== undefined && /^\d+$/.test(checkpoint)) {
        const now = after.get(lease);
        expect(now, `${lease} went back`).to.match(/^\d+$/);
        expect(BigInt(now!) >= BigInt(checkpoint), `${lease}: ${now} < ${checkpoint}`).to.equal(true);
      }
    }
    await publisher.publish(take(1000));
    await expectExact('after the dynalite restart');
    note(
      `dynalite restart: down ${downMs} ms, ${behind.length} shards behind at the crash, ` +
        `${supervisor.restartsSince().length - restartsBefore} daemon restarts`,
    );
  });
});
