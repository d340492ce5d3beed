import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HandledOutcome } from '../reanchor/listener';
import type { ReceivedRequest } from '../reanchor/requests';
import type { TickResult } from '../sidecar/sidecar';
import { ownReports, type ProcessorReport } from './telemetry';

// The sidecar's Prometheus metrics: its own (feature ticks, re-anchors, health, process_*) plus, at every scrape,
// the metrics that the processor children of its own task published to Redis (src/ops/telemetry.ts), merged by
// prom-client's AggregatorRegistry (their stream/shard labels keep them apart). One scrape target per task, and
// each child's metrics in exactly one of them: a sidecar exporting the reports of the whole fleet would make
// Prometheus ingest N copies with N tasks. When a shard's lease moves to another task, its series goes stale on
// the old target and starts from 0 on the new one; a sum over targets of each series' rate stays right.

export const FEATURE_DURATION_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
export const REANCHOR_DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

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
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.featureUpdates = new Counter({
      name: 'aggregator_feature_updates_total',
      help: 'Feature ticks of this sidecar per symbol, by result (written, degraded, not_holder, failed)',
      labelNames: ['symbol', 'result'],
      registers,
    });
    this.featureDuration = new Histogram({
      name: 'aggregator_feature_computation_duration_seconds',
      help: 'Reading the state snapshot and computing the feature vector (the write excluded)',
      labelNames: ['symbol'],
      buckets: FEATURE_DURATION_BUCKETS,
      registers,
    });
    this.completeness = new Gauge({
      name: 'aggregator_feature_completeness',
      help: 'Share of features computed from fresh inputs in the last vector this sidecar wrote (only while it holds the symbol)',
      labelNames: ['symbol'],
      registers,
    });
    this.reanchorOperations = new Counter({
      name: 'aggregator_reanchor_operations_total',
      help: 'Re-anchor requests handled by this sidecar by outcome (swapped, repaired, failed, lock_lost, coalesced, invalid, not_owned, unknown_symbol)',
      labelNames: ['symbol', 'outcome'],
      registers,
    });
    this.reanchorDuration = new Histogram({
      name: 'aggregator_reanchor_duration_seconds',
      help: 'Duration of one re-anchor run (REST, build, swap, retries included)',
      labelNames: ['symbol'],
      buckets: REANCHOR_DURATION_BUCKETS,
      registers,
    });
    this.reanchorAttemptFailures = new Counter({
      name: 'aggregator_reanchor_attempt_failures_total',
      help: 'Failed re-anchor attempts (retried with backoff) by stage: rest, banned, build, swap, swap-error, repair, lock-lost',
      labelNames: ['symbol', 'stage'],
      registers,
    });
    this.tradeGapRepairs = new Counter({
      name: 'aggregator_trade_gap_repairs_total',
      help:
        'Open trade-id gaps examined by repairs from REST trades, by outcome: repaired, before_rest and not_whole ' +
        '(unrepairable), after_rest (still open)',
      labelNames: ['symbol', 'outcome'],
      registers,
    });
    this.redisOutages = new Counter({
      name: 'aggregator_sidecar_redis_outages_total',
      help: 'Redis outages this sidecar waited out (counted when they end)',
      registers,
    });
    this.redisOutageSeconds = new Counter({
      name: 'aggregator_sidecar_redis_outage_seconds_total',
      help: 'Summed duration of the Redis outages this sidecar waited out',
      registers,
    });
    this.reanchorRequests = new Counter({
      name: 'aggregator_reanchor_requests_total',
      help: 'Re-anchor requests received by this sidecar, by reason and source',
      labelNames: ['symbol', 'reason', 'source'],
      registers,
    });
    this.health = new Gauge({
      name: 'aggregator_health_status',
      help: 'Last /health evaluation per component: 1 healthy, 0.5 degraded, 0 unhealthy',
      labelNames: ['component'],
      registers,
    });
    this.restBan = new Gauge({
      name: 'aggregator_reanchor_rest_ban_remaining_seconds',
      help: "Seconds left of the exchange's ban of the fleet's REST calls (a 429/418 Retry-After; 0: none)",
      registers,
    });
    this.reportAge = new Gauge({
      name: 'aggregator_processor_report_age_seconds',
      help: "Age of the last telemetry report of each processor child of this sidecar's task seen in Redis",
      labelNames: ['stream', 'shard'],
      registers,
    });
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
