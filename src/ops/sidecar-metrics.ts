import {
  AggregatorRegistry,
  collectDefaultMetrics,
  Registry,
  type Counter,
  type Gauge,
  type Histogram,
} from 'prom-client';
import type { HandledOutcome } from '../reanchor/listener';
import type { ReceivedRequest } from '../reanchor/requests';
import type { TickResult } from '../sidecar/sidecar';
import { counterOf, gaugeOf, histogramOf, METRICS } from './metric-catalog';
import { ownReports, type ProcessorReport } from './telemetry';

// The sidecar's Prometheus metrics: its own (feature ticks, re-anchors, health, process_*) plus, at every scrape,
// the metrics that the processor children of its own task published to Redis (src/ops/telemetry.ts), merged by
// prom-client's AggregatorRegistry (their stream/shard labels keep them apart). One scrape target per task, and
// each child's metrics in exactly one of them: a sidecar exporting the reports of the whole fleet would make
// Prometheus ingest N copies with N tasks. When a shard's lease moves to another task, its series goes stale on
// the old target and starts from 0 on the new one; a sum over targets of each series' rate stays right.

export type HealthLevel = 'healthy' | 'degraded' | 'unhealthy';
const HEALTH_VALUE: Record<HealthLevel, number> = { healthy: 1, degraded: 0.5, unhealthy: 0 };

export class SidecarMetrics {
  readonly registry = new Registry();
  private readonly featureUpdates: Counter<'symbol' | 'result'>;
  private readonly featureDuration: Histogram<'symbol'>;
  private readonly completeness: Gauge<'symbol'>;
  private readonly reanchorOperations: Counter<'symbol' | 'outcome'>;
  private readonly tradeGapRepairs: Counter<'symbol' | 'outcome'>;
  private readonly redisOutages: Counter;
  private readonly redisOutageSeconds: Counter;
  private readonly reanchorDuration: Histogram<'symbol'>;
  private readonly reanchorAttemptFailures: Counter<'symbol' | 'stage'>;
  private readonly reanchorRequests: Counter<'symbol' | 'reason' | 'source'>;
  private readonly health: Gauge<'component'>;
  private readonly reportAge: Gauge<'stream' | 'shard'>;
  private readonly restBan: Gauge;

  /** The task whose processors this sidecar exports (src/config/task.ts). */
  readonly task: string;

  constructor(options: { readonly task: string; readonly defaultMetrics?: boolean }) {
    this.task = options.task;
    const r = this.registry;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: r });
    this.featureUpdates = counterOf(METRICS.featureUpdates, r);
    this.featureDuration = histogramOf(METRICS.featureComputationDuration, r);
    this.completeness = gaugeOf(METRICS.featureCompleteness, r);
    this.reanchorOperations = counterOf(METRICS.reanchorOperations, r);
    this.reanchorDuration = histogramOf(METRICS.reanchorDuration, r);
    this.reanchorAttemptFailures = counterOf(METRICS.reanchorAttemptFailures, r);
    this.tradeGapRepairs = counterOf(METRICS.tradeGapRepairs, r);
    this.redisOutages = counterOf(METRICS.sidecarRedisOutages, r);
    this.redisOutageSeconds = counterOf(METRICS.sidecarRedisOutageSeconds, r);
    this.reanchorRequests = counterOf(METRICS.reanchorRequests, r);
    this.health = gaugeOf(METRICS.healthStatus, r);
    this.restBan = gaugeOf(METRICS.restBanRemaining, r);
    this.reportAge = gaugeOf(METRICS.processorReportAge, r);
  }

  /** FeatureSidecar 'tick' listener. */
  recordTick(result: TickResult): void {
    const result_ =
      result.kind === 'not-holder' ? 'not_holder' : result.kind === 'written' ? 'written' : result.kind;
    this.featureUpdates.inc({ symbol: result.symbol, result: result_ });
    // Only the lease holder's completeness is current: a sidecar that lost (or never had) the symbol's lease
    // drops its series instead of exporting a stale copy next to the holder's.
    if (result.kind === 'not-holder') this.completeness.remove({ symbol: result.symbol });
    if (result.kind === 'written' || result.kind === 'degraded') {
      this.featureDuration.observe({ symbol: result.symbol }, result.computeMs / 1000);
      this.completeness.set(
        { symbol: result.symbol },
        result.kind === 'written' ? result.completeness : result.computedCompleteness,
      );
    }
  }

  /** ReanchorListener onHandled listener. */
  recordReanchor(request: ReceivedRequest, outcome: HandledOutcome): void {
    const symbol = request.symbol;
    this.reanchorRequests.inc({ symbol, reason: request.reason, source: request.source });
    if (outcome.kind !== 'ran') {
      this.reanchorOperations.inc({ symbol, outcome: outcome.kind.replace('-', '_') });
      return;
    }
    const report = outcome.report;
    this.reanchorOperations.inc({ symbol, outcome: report.outcome.replace('-', '_') });
    this.reanchorDuration.observe({ symbol }, report.durationMs / 1000);
    for (const failure of report.failures) this.reanchorAttemptFailures.inc({ symbol, stage: failure.stage });
    for (const gap of report.repair?.gaps ?? []) this.tradeGapRepairs.inc({ symbol, outcome: gap.outcome });
  }

  /** A Redis outage of this sidecar ended after durationMs. */
  recordRedisOutage(durationMs: number): void {
    this.redisOutages.inc();
    this.redisOutageSeconds.inc(durationMs / 1000);
  }

  recordHealth(component: string, status: HealthLevel): void {
    this.health.set({ component }, HEALTH_VALUE[status]);
  }

  /** reanchor:rest:ban's end (ms since the epoch), read at each scrape; undefined when none is recorded. */
  recordRestBan(untilMs: number | undefined, nowMs: number): void {
    this.restBan.set(untilMs === undefined ? 0 : Math.max(0, (untilMs - nowMs) / 1000));
  }

  /**
   * The exposition text: this registry plus the published metrics of the processors of this sidecar's task
   * (`reports` may be the whole fleet's: the others are left to their own task's sidecar).
   */
  async exposition(allReports: readonly ProcessorReport[], nowMs: number): Promise<string> {
    const reports = ownReports(allReports, this.task);
    this.reportAge.reset();
    for (const r of reports) {
      this.reportAge.set({ stream: r.stream, shard: r.shardId }, Math.max(0, (nowMs - r.updatedMs) / 1000));
    }
    const own = await this.registry.metrics();
    if (reports.length === 0) return own;
    const processors = AggregatorRegistry.aggregate(reports.map((r) => r.metrics));
    return `${own}\n${await processors.metrics()}`;
  }
}
