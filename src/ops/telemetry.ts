import {
  Registry,
  type Counter,
  type Gauge,
  type Histogram,
  type MetricObjectWithValues,
  type MetricValue,
} from 'prom-client';
import type { BatchReport } from '../kcl/shard-processor';
import type { Keys } from '../state/keys';
import type { RedisOutage } from '../state/outage';
import type { RedisClient } from '../state/redis';
import { counterOf, gaugeOf, histogramOf, METRICS } from './metric-catalog';

// Processor telemetry. The daemon starts one processor child per shard and a child has no port of its own, so each
// child keeps its Prometheus metrics in a private registry and publishes, every publishEveryMs, one report to Redis
// (ops:processor:<stream>:<shard>, JSON, expiring after REPORT_TTL_SECONDS, indexed in the sorted set
// ops:processors by update time). Each report names the child's task (src/config/task.ts). Every sidecar reads
// all the reports for /health (a fleet-wide view), but merges into its /metrics only those of its own task
// (ownReports; prom-client's AggregatorRegistry.aggregate, the stream and shard labels keep the children apart):
// each child's metrics are exported by exactly one scrape target.

/** A report not refreshed for this long is gone (its child exited); the index entry is then stale. */
export const REPORT_TTL_SECONDS = 30;

export type ProcessorMetrics = MetricObjectWithValues<MetricValue<string>>[];

export interface ProcessorReport {
  readonly stream: string;
  readonly shardId: string;
  /** The task the child belongs to (its daemon's, inherited). Absent from reports of versions before it: such a
   * report is in /health but no sidecar's /metrics. */
  readonly task?: string;
  readonly pid: number;
  readonly startedMs: number;
  readonly updatedMs: number;
  readonly recordsTotal: number;
  readonly eventsTotal: number;
  readonly batchesTotal: number;
  readonly deadLettersTotal: number;
  /** Events of symbols outside processing.symbols skipped (policy skip). */
  readonly unlistedSkippedTotal?: number;
  readonly integrityIssuesTotal: number;
  readonly checkpointFailuresTotal: number;
  readonly redisRetriesTotal: number;
  /** Redis outages this child waited out (or is waiting out), their summed duration once ended, and since when
   * it has been waiting now (null: Redis answers). Kept in memory, so the first report after an outage shows it. */
  readonly redisOutagesTotal?: number;
  readonly redisOutageSecondsTotal?: number;
  readonly waitingForRedisSinceMs?: number | null;
  /** Records per second over the last publish interval. */
  readonly recordsPerSecond: number;
  /** millisBehindLatest of the last batch (null before the first). */
  readonly lagMs: number | null;
  /** Wall time of the last batch (null before the first). */
  readonly lastProcessedMs: number | null;
  readonly lastSequenceNumber: string | null;
  readonly rssBytes: number;
  readonly metrics: ProcessorMetrics;
}

export class ProcessorTelemetry {
  readonly registry = new Registry();
  private readonly records: Counter<'stream' | 'shard'>;
  private readonly events: Counter<'stream' | 'shard' | 'symbol'>;
  private readonly operations: Counter<'stream' | 'shard' | 'operation' | 'result'>;
  private readonly writeDuration: Histogram<'stream' | 'shard'>;
  private readonly lag: Gauge<'stream' | 'shard'>;
  private readonly deadLetters: Counter<'stream' | 'shard' | 'code'>;
  private readonly integrity: Counter<'stream' | 'shard' | 'symbol' | 'kind'>;
  private readonly checkpointFailures: Counter<'stream' | 'shard'>;
  private readonly unlisted: Counter<'stream' | 'shard' | 'action'>;
  private readonly rss: Gauge<'stream' | 'shard'>;
  private readonly outages: Counter<'stream' | 'shard'>;
  private readonly outageSeconds: Counter<'stream' | 'shard'>;
  private outage: RedisOutage | undefined;
  private readonly startedMs: number;
  private shardId = 'unknown-shard';
  private totals = {
    records: 0,
    events: 0,
    batches: 0,
    deadLetters: 0,
    integrity: 0,
    checkpointFailures: 0,
    redisRetries: 0,
    unlistedSkipped: 0,
  };
  private lagMs: number | null = null;
  private lastProcessedMs: number | null = null;
  private lastSequenceNumber: string | null = null;
  private recordsAtLastPublish = 0;
  private lastPublishMs: number;

  private readonly task: string;
  private readonly now: () => number;

  constructor(
    private readonly stream: string,
    options: {
      /** The task identity the report carries (src/config/task.ts). */
      readonly task: string;
      readonly now?: () => number;
    },
  ) {
    this.task = options.task;
    this.now = options.now ?? Date.now;
    const now = this.now;
    const r = this.registry;
    this.records = counterOf(METRICS.recordsProcessed, r);
    this.events = counterOf(METRICS.eventsProcessed, r);
    this.operations = counterOf(METRICS.redisOperations, r);
    this.writeDuration = histogramOf(METRICS.redisOperationDuration, r);
    this.lag = gaugeOf(METRICS.kinesisLag, r);
    this.deadLetters = counterOf(METRICS.deadLetters, r);
    this.integrity = counterOf(METRICS.integrityIssues, r);
    this.checkpointFailures = counterOf(METRICS.checkpointFailures, r);
    this.unlisted = counterOf(METRICS.unlistedSymbolEvents, r);
    this.rss = gaugeOf(METRICS.processorResidentMemory, r);
    this.outages = counterOf(METRICS.processorRedisOutages, r);
    this.outageSeconds = counterOf(METRICS.processorRedisOutageSeconds, r);
    this.startedMs = now();
    this.lastPublishMs = this.startedMs;
  }

  /** The process's outage tracker, read at each report. */
  watchOutage(outage: RedisOutage): void {
    this.outage = outage;
  }

  /** An outage ended after durationMs (RedisOutage onEnd). */
  recordRedisOutageEnd(durationMs: number): void {
    const base = { stream: this.stream, shard: this.shardId };
    this.outages.inc(base);
    this.outageSeconds.inc(base, durationMs / 1000);
  }

  setShard(shardId: string): void {
    this.shardId = shardId;
  }

  /** One batch stored (from ShardProcessor's onBatch). */
  recordBatch(report: BatchReport, deadLetterCodes: Readonly<Record<string, number>>): void {
    const base = { stream: this.stream, shard: report.shardId };
    this.shardId = report.shardId;
    this.totals.batches++;
    this.totals.records += report.records;
    this.records.inc(base, report.records);
    this.writeDuration.observe(base, report.writeMs / 1000);
    if (report.millisBehindLatest !== undefined) {
      this.lagMs = report.millisBehindLatest;
      this.lag.set(base, report.millisBehindLatest / 1000);
    }
    this.lastProcessedMs = this.now();
    for (const [code, count] of Object.entries(deadLetterCodes)) {
      this.deadLetters.inc({ ...base, code }, count);
      this.totals.deadLetters += count;
    }
    for (const count of Object.values(report.unlistedSymbols)) {
      this.unlisted.inc({ ...base, action: report.unlistedAction }, count);
      if (report.unlistedAction === 'skipped') this.totals.unlistedSkipped += count;
    }
    for (const failure of report.result.contained) {
      const operation = failure.kind === 'bestBidAsks' ? 'best_bid_ask' : failure.kind;
      this.operations.inc({ ...base, operation, result: 'failed' });
    }
    for (const r of report.result.symbols) {
      let events = 0;
      for (const [operation, result] of [
        ['trades', r.trades],
        ['best_bid_ask', r.bestBidAsk],
        ['depth', r.depth],
      ] as const) {
        if (result === undefined) continue;
        this.operations.inc({ ...base, operation, result: 'ok' });
        if (operation === 'trades' && r.trades) events += r.trades.applied + r.trades.duplicates;
        if (operation === 'depth' && r.depth) events += r.depth.applied + r.depth.ignored + r.depth.buffered;
      }
      if (r.bestBidAsk) events += 1;
      this.events.inc({ ...base, symbol: r.symbol }, events);
      this.totals.events += events;
      const issues: Array<'trade_gap' | 'depth_gap' | 'crossed'> = [];
      if ((r.trades?.gaps.length ?? 0) > 0) issues.push('trade_gap');
      if (r.depth?.gap) issues.push('depth_gap');
      if (r.depth?.crossed) issues.push('crossed');
      for (const kind of issues) {
        this.integrity.inc({ ...base, symbol: r.symbol, kind });
        this.totals.integrity++;
      }
    }
    if (report.result.deadLettersAdded > 0) {
      this.operations.inc(
        { ...base, operation: 'dead_letter', result: 'ok' },
        report.result.deadLettersAdded,
      );
    }
    if (report.records > 0 && report.checkpointed === undefined) {
      this.checkpointFailures.inc(base);
      this.totals.checkpointFailures++;
    } else if (report.checkpointed !== undefined) this.lastSequenceNumber = report.checkpointed;
  }

  /** A Redis write attempt failed and is retried. */
  recordRedisRetry(): void {
    this.totals.redisRetries++;
    this.operations.inc({
      stream: this.stream,
      shard: this.shardId,
      operation: 'batch_write',
      result: 'retry',
    });
  }

  /** The report as published now (also resets the records/s window). */
  async report(): Promise<ProcessorReport> {
    const now = this.now();
    const rssBytes = process.memoryUsage().rss;
    this.rss.set({ stream: this.stream, shard: this.shardId }, rssBytes);
    const seconds = Math.max(0.001, (now - this.lastPublishMs) / 1000);
    const recordsPerSecond = (this.totals.records - this.recordsAtLastPublish) / seconds;
    this.recordsAtLastPublish = this.totals.records;
    this.lastPublishMs = now;
    return {
      stream: this.stream,
      shardId: this.shardId,
      task: this.task,
      pid: process.pid,
      startedMs: this.startedMs,
      updatedMs: now,
      recordsTotal: this.totals.records,
      eventsTotal: this.totals.events,
      batchesTotal: this.totals.batches,
      deadLettersTotal: this.totals.deadLetters,
      unlistedSkippedTotal: this.totals.unlistedSkipped,
      integrityIssuesTotal: this.totals.integrity,
      checkpointFailuresTotal: this.totals.checkpointFailures,
      redisRetriesTotal: this.totals.redisRetries,
      redisOutagesTotal: this.outage?.outages ?? 0,
      redisOutageSecondsTotal: (this.outage?.totalMs ?? 0) / 1000,
      waitingForRedisSinceMs: this.outage?.waitingSinceMs ?? null,
      recordsPerSecond,
      lagMs: this.lagMs,
      lastProcessedMs: this.lastProcessedMs,
      lastSequenceNumber: this.lastSequenceNumber,
      rssBytes,
      metrics: await this.registry.getMetricsAsJSON(),
    };
  }
}

/**
 * The reports of one task: what its sidecar's /metrics exports (each child's metrics once across the fleet). A
 * report without a task (an older child) belongs to none. Pure.
 */
export function ownReports(reports: readonly ProcessorReport[], task: string): ProcessorReport[] {
  return reports.filter((r) => r.task === task);
}

/** Publishes a report (SET with expiry + index). */
export async function publishReport(client: RedisClient, keys: Keys, report: ProcessorReport): Promise<void> {
  await client.set(
    keys.processorReport(report.stream, report.shardId),
    JSON.stringify(report),
    'EX',
    REPORT_TTL_SECONDS,
  );
  await client.zadd(keys.processorReports(), report.updatedMs, `${report.stream}/${report.shardId}`);
}

/** Parses a published report; throws on anything else. Pure. */
export function parseReport(text: string): ProcessorReport {
  const value = JSON.parse(text) as Partial<ProcessorReport>;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof value.stream !== 'string' ||
    typeof value.shardId !== 'string' ||
    typeof value.updatedMs !== 'number' ||
    typeof value.recordsTotal !== 'number' ||
    (value.task !== undefined && typeof value.task !== 'string') ||
    !Array.isArray(value.metrics)
  ) {
    throw new Error(`not a processor report: ${text.slice(0, 120)}`);
  }
  return value as ProcessorReport;
}

/**
 * Every report published within maxAgeMs (stale index entries older than REPORT_TTL_SECONDS are pruned). A report
 * that does not parse is skipped and counted in `invalid`.
 */
export async function readReports(
  client: RedisClient,
  keys: Keys,
  nowMs: number,
  maxAgeMs: number = REPORT_TTL_SECONDS * 1000,
): Promise<{ reports: ProcessorReport[]; invalid: number }> {
  await client.zremrangebyscore(keys.processorReports(), '-inf', String(nowMs - REPORT_TTL_SECONDS * 1000));
  const members = await client.zrangebyscore(keys.processorReports(), String(nowMs - maxAgeMs), '+inf');
  const reports: ProcessorReport[] = [];
  let invalid = 0;
  const texts = await Promise.all(
    members.map((member) => {
      const slash = member.indexOf('/');
      return client.get(keys.processorReport(member.slice(0, slash), member.slice(slash + 1)));
    }),
  );
  for (const text of texts) {
    if (text === null) continue;
    try {
      reports.push(parseReport(text));
    } catch {
      invalid++;
    }
  }
  return { reports, invalid };
}
