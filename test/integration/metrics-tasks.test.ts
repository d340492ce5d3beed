import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { findFreePort } from '../../src/dev/localstack/ports';
import type { LeaseRow } from '../../src/ops/leases';
import { simulate } from '../../src/replay/simulator';
import { PipelinePublisher, waitForCheckpoints } from '../helpers/exactness';
import { parseExposition, type Sample } from '../helpers/exposition';
import { startPipeline, waitUntil, type DaemonHandle, type Pipeline } from '../helpers/pipeline';
import { spawnSidecar, type SidecarProcess } from '../helpers/sidecar-process';
import { describeLeases, leases, shardsOfSymbols, tail } from '../helpers/worker-faults';

// Issue 14, "Metrics once": two tasks' worth of processes on one trade stream of 3 shards, against the real
// parts (kinesis-mock, dynalite, Redis, two real KCL MultiLangDaemons and their `aggregator process` children, two
// real `aggregator sidecar` processes). Task A is a daemon started with AGGREGATOR_TASK_ID=task-a (its children
// inherit it) and a sidecar with the same; task B likewise. Every sidecar reads every processor report in Redis,
// but its /metrics must export only its own task's: each shard's counter series appears on exactly one of the two
// scrape targets, on the one whose daemon holds the shard's lease, and the sum over both equals the records put.
// Before the fix each sidecar exported the whole fleet's processors: every series twice, the sum twice the truth.
// /health stays the fleet's view: either sidecar lists every shard.
//
// The split is 2 + 1 leases before anything is published: KCL steals no lease from a worker at its target share
// (ceil(3 / 2) = 2), so no lease moves while the records are counted.

/** Two symbols per shard (MD5 of the partition key against the shards' hash key ranges). */
const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'DOGEUSDT', 'SOLUSDT', 'ADAUSDT', 'LINKUSDT'];
const SHARDS = 3;
const RECORDS = 'aggregator_kinesis_records_processed_total';
const BATCHES_OF = 'aggregator_redis_operation_duration_seconds_count';

interface Task {
  readonly id: string;
  readonly worker: string;
  readonly metricsPort: number;
  readonly healthPort: number;
  daemon?: DaemonHandle;
  sidecar?: SidecarProcess;
}

describe('metrics once: two tasks, two sidecars, each processor exported by its own task only', function () {
  this.timeout(180_000);
  let pipeline: Pipeline | undefined;
  let publisher: PipelinePublisher | undefined;
  const tasks: Task[] = [];

  after(async function () {
    publisher?.close();
    await Promise.all(tasks.map((t) => t.sidecar?.stop() ?? Promise.resolve()));
    await pipeline?.stop();
  });

  it("each shard's counters appear on exactly one task's /metrics, the one holding its lease; the sum is the truth", async function () {
    for (const id of ['task-a', 'task-b']) {
      tasks.push({
        id,
        worker: `worker-trade-${id}`,
        metricsPort: await findFreePort(),
        healthPort: await findFreePort(),
      });
    }
    const [a, b] = tasks as [Task, Task];
    const ports = (t: Task): string =>
      `health:\n  host: '127.0.0.1'\n  port: ${t.healthPort}\n` +
      `metrics:\n  enable_prometheus: true\n  prometheus_port: ${t.metricsPort}\n`;
    pipeline = await startPipeline({
      shards: { trade: SHARDS, bestbidask: 1, depth: 1 },
      symbols: SYMBOLS,
      label: 'metrics-tasks',
      logging: { level: 'info' },
      extraYaml: `reanchor:\n  enabled: false\n${ports(a)}`,
    });
    const p = pipeline;
    // Task B's sidecar: the same config but its own ports (two sidecars on one host).
    const configB = path.join(p.dir, 'config-b.yaml');
    fs.writeFileSync(configB, fs.readFileSync(p.configFile, 'utf8').replace(ports(a), ports(b)));
    const shardOf = await shardsOfSymbols(p, 'trade', SYMBOLS);
    expect(new Set(shardOf.values()).size, JSON.stringify([...shardOf])).to.equal(SHARDS);

    for (const t of tasks) {
      t.daemon = p.startDaemon('trade', t.worker, { ...process.env, AGGREGATOR_TASK_ID: t.id });
      t.sidecar = spawnSidecar(t === a ? p.configFile : configB, `sc-${t.id}`, {
        ...process.env,
        AGGREGATOR_TASK_ID: t.id,
      });
    }

    let rows: LeaseRow[] = [];
    const owned = (t: Task): string[] =>
      rows
        .filter((l) => l.owner === t.worker)
        .map((l) => l.shardId)
        .sort();
    const diagnostics = async (): Promise<string> =>
      [
        `leases: ${describeLeases(await leases(p, 'trade').catch(() => []))}`,
        ...tasks.map(
          (t) => `--- ${t.id} daemon:\n${t.daemon === undefined ? '' : tail(t.daemon.logFile, 8)}`,
        ),
        ...tasks.map((t) => `--- ${t.id} sidecar:\n${(t.sidecar?.stderr() ?? '').slice(-800)}`),
      ].join('\n');
    await waitUntil(
      async () => {
        rows = await leases(p, 'trade').catch(() => []);
        const counts = tasks.map((t) => owned(t).length).sort();
        return rows.length === SHARDS && counts[0] === 1 && counts[1] === 2;
      },
      90_000,
      'the trade leases split 2 + 1 between the two tasks',
      diagnostics,
    );
    const before = describeLeases(rows.map((l) => ({ ...l, checkpoint: undefined })));

    publisher = new PipelinePublisher(p);
    const events = [
      ...simulate({ seed: 1414, symbols: SYMBOLS, startTimeUs: 1_766_000_000_000_000n }, 20_000),
    ]
      .filter((e) => e.stream === 'trade')
      .slice(0, 1200);
    const summary = await publisher.publish(events, 'single');
    const stream = p.config.aws.kinesis.streams.trade;
    const published = summary.shards[stream] ?? {};
    expect(Object.keys(published), 'every shard gets records').to.have.length(SHARDS);
    await waitForCheckpoints(p, publisher.latest, 60_000);

    // Scrape both targets until each one's counters are those of the last reports (published every 2 s).
    const scrapes = new Map<string, Sample[]>();
    const scrape = async (t: Task): Promise<Sample[]> => {
      const response = await fetch(`http://127.0.0.1:${t.metricsPort}/metrics`);
      expect(response.status, `${t.id} /metrics`).to.equal(200);
      return parseExposition(await response.text()).samples.filter(
        (s) => s.labels.stream === stream && (s.name === RECORDS || s.name === BATCHES_OF),
      );
    };
    const seriesOf = (samples: Sample[], name: string): Map<string, number> =>
      new Map(samples.filter((s) => s.name === name).map((s) => [s.labels.shard!, s.value]));
    /** Per shard, the largest value either target shows: what a correct fleet total must equal. */
    const settled = (): boolean =>
      Object.entries(published).every(([shard, report]) =>
        tasks.some((t) => seriesOf(scrapes.get(t.id) ?? [], RECORDS).get(shard) === report.records),
      );
    await waitUntil(
      async () => {
        for (const t of tasks) scrapes.set(t.id, await scrape(t).catch(() => []));
        return settled();
      },
      20_000,
      'every shard counting every record on some /metrics',
      async () => `${JSON.stringify([...scrapes])}\n${await diagnostics()}`,
    );
    rows = await leases(p, 'trade');
    expect(describeLeases(rows.map((l) => ({ ...l, checkpoint: undefined }))), 'no lease moved').to.equal(
      before,
    );

    for (const name of [RECORDS, BATCHES_OF]) {
      const perTask = tasks.map((t) => seriesOf(scrapes.get(t.id)!, name));
      // Exactly once: each shard's series on one target only, the one of the task holding its lease.
      for (const [i, t] of tasks.entries()) {
        expect([...perTask[i]!.keys()].sort(), `${name} shards on ${t.id}'s /metrics`).to.deep.equal(
          owned(t),
        );
      }
      const shards = perTask.flatMap((m) => [...m.keys()]);
      expect(shards, `${name}: a shard on both targets`).to.have.length(new Set(shards).size);
      expect(new Set(shards).size, name).to.equal(SHARDS);
    }
    // The sum over both targets is the true total: the records put, per shard and in all.
    const records = tasks.map((t) => seriesOf(scrapes.get(t.id)!, RECORDS));
    for (const [shard, report] of Object.entries(published)) {
      const sum = records.reduce((n, m) => n + (m.get(shard) ?? 0), 0);
      expect(sum, `records of ${shard} summed over both targets`).to.equal(report.records);
    }
    const total = records.reduce((n, m) => n + [...m.values()].reduce((x, v) => x + v, 0), 0);
    expect(total).to.equal(events.length);

    // /health stays the fleet's view: task B's sidecar lists the shards of both tasks.
    const health = (await (await fetch(`http://127.0.0.1:${b.healthPort}/health`)).json()) as {
      components: { kinesis_consumers: Record<string, { shards: Record<string, unknown> }> };
    };
    expect(Object.keys(health.components.kinesis_consumers[stream]?.shards ?? {}).sort()).to.deep.equal(
      Object.keys(published).sort(),
    );
  });
});
