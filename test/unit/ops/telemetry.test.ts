import { expect } from 'chai';
import type { BatchReport } from '../../../src/kcl/shard-processor';
import type { TickResult } from '../../../src/sidecar/sidecar';
import { SidecarMetrics } from '../../../src/ops/sidecar-metrics';
import {
  ownReports,
  parseReport,
  ProcessorTelemetry,
  type ProcessorReport,
} from '../../../src/ops/telemetry';
import type { DepthBatchResult } from '../../../src/state/book';
import type { TradeBatchResult } from '../../../src/state/trades';

const trades: TradeBatchResult = {
  applied: 7,
  duplicates: 1,
  gaps: [{ from: 10n, to: 11n }],
  eventTimeUs: 1n,
  lastTradeId: 20n,
};
const depth: DepthBatchResult = {
  applied: 3,
  ignored: 0,
  buffered: 1,
  kept: 0,
  gap: true,
  crossed: false,
  overflow: 0,
  status: 'out_of_sync',
  reason: 'gap',
  bookUpdateId: 5n,
  bufferLength: 1,
  levelsSource: undefined,
  depth20Applied: false,
  bestWritten: false,
  calls: 1,
  resent: 0,
  fullFormNext: true,
};

function batch(overrides: Partial<BatchReport> = {}): BatchReport {
  return {
    shardId: 'shardId-000000000001',
    records: 4,
    frames: 6,
    deadLetters: 1,
    deadLetterCodes: { TRUNCATED: 1 },
    unlistedSymbols: {},
    unlistedAction: 'skipped',
    eventsBySymbol: { BTCUSDT: 12 },
    millisBehindLatest: 1500,
    writeMs: 2.5,
    handleMs: 3,
    result: {
      symbols: [{ symbol: 'BTCUSDT', trades, bestBidAsk: undefined, depth }],
      deadLettersAdded: 1,
      contained: [],
      containedDeadLetters: [],
    },
    checkpointed: '49590000000000000001',
    ...overrides,
  };
}

function sample(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe('ops/telemetry: processor reports and the sidecar exposition', () => {
  it('counts a batch into totals and labelled metrics', async () => {
    let now = 1_000_000;
    const t = new ProcessorTelemetry('market-sbe-trade', { task: 'task-a', now: () => now });
    t.setShard('shardId-000000000001');
    t.recordBatch(batch(), { TRUNCATED: 1 });
    t.recordRedisRetry();
    now += 2000;
    const report = await t.report();
    expect(report).to.include({
      stream: 'market-sbe-trade',
      shardId: 'shardId-000000000001',
      recordsTotal: 4,
      eventsTotal: 12,
      batchesTotal: 1,
      deadLettersTotal: 1,
      integrityIssuesTotal: 2,
      checkpointFailuresTotal: 0,
      redisRetriesTotal: 1,
      recordsPerSecond: 2,
      lagMs: 1500,
      lastSequenceNumber: '49590000000000000001',
    });
    const names = report.metrics.map((m) => m.name);
    expect(names).to.include.members([
      'aggregator_kinesis_records_processed_total',
      'aggregator_redis_operations_total',
      'aggregator_redis_operation_duration_seconds',
      'aggregator_kinesis_lag_seconds',
      'aggregator_dead_letters_total',
      'aggregator_integrity_issues_total',
      'aggregator_checkpoint_failures_total',
    ]);
    const integrity = report.metrics.find((m) => m.name === 'aggregator_integrity_issues_total');
    expect(integrity?.values.map((v) => v.labels.kind).sort()).to.deep.equal(['depth_gap', 'trade_gap']);
    // The records/s window restarts at each report.
    now += 1000;
    expect((await t.report()).recordsPerSecond).to.equal(0);
  });

  it('a batch with records but no checkpoint recorded is a checkpoint failure', async () => {
    const t = new ProcessorTelemetry('market-sbe-depth', { task: 'task-a' });
    t.recordBatch(batch({ checkpointed: undefined }), {});
    expect((await t.report()).checkpointFailuresTotal).to.equal(1);
  });

  it('parseReport accepts a published report and rejects anything else', async () => {
    const t = new ProcessorTelemetry('market-sbe-trade', { task: 'task-a' });
    const text = JSON.stringify(await t.report());
    expect(parseReport(text).stream).to.equal('market-sbe-trade');
    expect(() => parseReport('{"stream":1}')).to.throw(/not a processor report/);
    expect(() => parseReport('nope')).to.throw();
  });

  it('the sidecar exposition merges two shards of processors with its own metrics', async () => {
    const a = new ProcessorTelemetry('market-sbe-trade', { task: 'task-a' });
    const b = new ProcessorTelemetry('market-sbe-trade', { task: 'task-a' });
    a.recordBatch(batch({ shardId: 'shardId-000000000000', records: 5 }), {});
    b.recordBatch(batch({ shardId: 'shardId-000000000001', records: 7 }), {});
    const metrics = new SidecarMetrics({ task: 'task-a', defaultMetrics: false });
    metrics.recordTick({
      kind: 'written',
      symbol: 'BTCUSDT',
      tickMs: 2000,
      retries: 0,
      completeness: 0.75,
      computeMs: 1.2,
    });
    metrics.recordHealth('redis', 'degraded');
    const reports = [await a.report(), await b.report()];
    const text = await metrics.exposition(reports, Date.now());
    expect(sample(text, 'aggregator_kinesis_records_processed_total')).to.have.members([
      'aggregator_kinesis_records_processed_total{stream="market-sbe-trade",shard="shardId-000000000000"} 5',
      'aggregator_kinesis_records_processed_total{stream="market-sbe-trade",shard="shardId-000000000001"} 7',
    ]);
    expect(sample(text, 'aggregator_feature_updates_total')).to.deep.equal([
      'aggregator_feature_updates_total{symbol="BTCUSDT",result="written"} 1',
    ]);
    expect(sample(text, 'aggregator_feature_completeness')).to.deep.equal([
      'aggregator_feature_completeness{symbol="BTCUSDT"} 0.75',
    ]);
    expect(sample(text, 'aggregator_health_status')).to.deep.equal([
      'aggregator_health_status{component="redis"} 0.5',
    ]);
    expect(text).to.match(/^# TYPE aggregator_redis_operation_duration_seconds histogram$/m);
    expect(sample(text, 'aggregator_processor_report_age_seconds')).to.have.length(2);
  });

  it('a report names its task; the Redis write duration is per shard', async () => {
    const t = new ProcessorTelemetry('market-sbe-trade', { task: 'task-b' });
    t.recordBatch(batch({ shardId: 'shardId-000000000003' }), {});
    const report = await t.report();
    expect(report.task).to.equal('task-b');
    expect(parseReport(JSON.stringify(report)).task).to.equal('task-b');
    const duration = report.metrics.find((m) => m.name === 'aggregator_redis_operation_duration_seconds');
    const labels = new Set(duration?.values.map((v) => JSON.stringify(v.labels)));
    expect([...labels].some((l) => l.includes('"shard":"shardId-000000000003"'))).to.equal(true);
    expect(() => parseReport(JSON.stringify({ ...report, task: 7 }))).to.throw(/not a processor report/);
  });

  it('ownReports keeps the reports of one task; a report without a task belongs to none', async () => {
    const a = await new ProcessorTelemetry('market-sbe-trade', { task: 'task-a' }).report();
    const b = await new ProcessorTelemetry('market-sbe-trade', { task: 'task-b' }).report();
    const untagged: ProcessorReport = { ...a };
    delete (untagged as { task?: string }).task;
    expect(ownReports([a, b, untagged], 'task-a')).to.deep.equal([a]);
    expect(ownReports([a, b, untagged], 'task-b')).to.deep.equal([b]);
    expect(ownReports([a, b, untagged], 'task-c')).to.deep.equal([]);
  });

  it("two tasks' sidecars export each processor once: every series in exactly one exposition", async () => {
    // Task A runs shards 0 and 1 of the trade stream, task B shard 2 and the depth stream's shard 0; each sidecar
    // reads every report in Redis (the fleet's), as the real one does.
    const children = [
      { task: 'task-a', stream: 'market-sbe-trade', shard: 'shardId-000000000000', records: 5 },
      { task: 'task-a', stream: 'market-sbe-trade', shard: 'shardId-000000000001', records: 7 },
      { task: 'task-b', stream: 'market-sbe-trade', shard: 'shardId-000000000002', records: 11 },
      { task: 'task-b', stream: 'market-sbe-depth', shard: 'shardId-000000000000', records: 13 },
    ];
    const reports: ProcessorReport[] = [];
    for (const c of children) {
      const t = new ProcessorTelemetry(c.stream, { task: c.task });
      t.recordBatch(batch({ shardId: c.shard, records: c.records }), {});
      reports.push(await t.report());
    }
    const scrape = async (task: string): Promise<string[]> => {
      const metrics = new SidecarMetrics({ task, defaultMetrics: false });
      return sample(
        await metrics.exposition(reports, Date.now()),
        'aggregator_kinesis_records_processed_total',
      );
    };
    const a = await scrape('task-a');
    const b = await scrape('task-b');
    expect(a).to.have.members([
      'aggregator_kinesis_records_processed_total{stream="market-sbe-trade",shard="shardId-000000000000"} 5',
      'aggregator_kinesis_records_processed_total{stream="market-sbe-trade",shard="shardId-000000000001"} 7',
    ]);
    expect(b).to.have.members([
      'aggregator_kinesis_records_processed_total{stream="market-sbe-trade",shard="shardId-000000000002"} 11',
      'aggregator_kinesis_records_processed_total{stream="market-sbe-depth",shard="shardId-000000000000"} 13',
    ]);
    const total = [...a, ...b].reduce((n, line) => n + Number(line.split(' ').pop()), 0);
    expect(total).to.equal(5 + 7 + 11 + 13);
    // A sidecar of a task without processors exports none of them (only the declarations of its own metrics).
    expect(await scrape('task-c')).to.deep.equal([]);
    const metrics = new SidecarMetrics({ task: 'task-a', defaultMetrics: false });
    const text = await metrics.exposition(reports, Date.now());
    expect(sample(text, 'aggregator_processor_report_age_seconds')).to.have.length(2);
    expect(sample(text, 'aggregator_redis_operation_duration_seconds_count')).to.have.members([
      'aggregator_redis_operation_duration_seconds_count{stream="market-sbe-trade",shard="shardId-000000000000"} 1',
      'aggregator_redis_operation_duration_seconds_count{stream="market-sbe-trade",shard="shardId-000000000001"} 1',
    ]);
  });

  it('a sidecar that is not the holder of a symbol drops its completeness series (no stale copy)', async () => {
    const metrics = new SidecarMetrics({ task: 'task-a', defaultMetrics: false });
    metrics.recordTick({
      kind: 'written',
      symbol: 'BTCUSDT',
      tickMs: 2000,
      retries: 0,
      completeness: 0.75,
      computeMs: 1.2,
    });
    expect(
      sample(await metrics.exposition([], Date.now()), 'aggregator_feature_completeness'),
    ).to.have.length(1);
    const lost: TickResult = {
      kind: 'not-holder',
      reason: 'lost-lease',
      symbol: 'BTCUSDT',
      tickMs: 4000,
      retries: 0,
    };
    metrics.recordTick(lost);
    expect(sample(await metrics.exposition([], Date.now()), 'aggregator_feature_completeness')).to.deep.equal(
      [],
    );
  });
});
