import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

// Every Prometheus metric of the service, once: name, help, labels, buckets. The processor children
// (ops/telemetry.ts) and the sidecar (ops/sidecar-metrics.ts) build their metrics from here, and the deployment
// checks (dashboard, alerts) read the same list.

/** Exponential buckets for Redis round trips, 0.25 ms .. ~4 s. */
export const REDIS_DURATION_BUCKETS = [
  0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
export const FEATURE_DURATION_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
export const REANCHOR_DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

interface MetricSpec<L extends string> {
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly buckets?: readonly number[];
  /** Which process registers it: a processor child (published to Redis, exported by its task's sidecar) or the
   * sidecar itself. */
  readonly exportedBy: 'processor' | 'sidecar';
}

function spec<L extends string>(s: MetricSpec<L>): MetricSpec<L> {
  return s;
}

const SHARD = ['stream', 'shard'] as const;

export const METRICS = {
  // Processor children: one series set per stream and shard.
  recordsProcessed: spec({
    type: 'counter',
    name: 'aggregator_kinesis_records_processed_total',
    help: 'Kinesis records processed (stored in Redis), per stream and shard',
    labelNames: SHARD,
    exportedBy: 'processor',
  }),
  eventsProcessed: spec({
    type: 'counter',
    name: 'aggregator_kinesis_events_processed_total',
    help: 'SBE events decoded from the records and written, per symbol',
    labelNames: [...SHARD, 'symbol'],
    exportedBy: 'processor',
  }),
  redisOperations: spec({
    type: 'counter',
    name: 'aggregator_redis_operations_total',
    help: 'Redis script calls of the processors (one per symbol and kind of event per batch), by result',
    labelNames: [...SHARD, 'operation', 'result'],
    exportedBy: 'processor',
  }),
  redisOperationDuration: spec({
    type: 'histogram',
    name: 'aggregator_redis_operation_duration_seconds',
    help: "Redis write of one processRecords batch (every symbol's script calls, retries included)",
    // Per shard like every processor metric: a sidecar exports the children of its task only, and a shard's
    // series must go stale when its lease moves to another task (a sum over the task's children would drop).
    labelNames: SHARD,
    buckets: REDIS_DURATION_BUCKETS,
    exportedBy: 'processor',
  }),
  kinesisLag: spec({
    type: 'gauge',
    name: 'aggregator_kinesis_lag_seconds',
    help: 'millisBehindLatest of the last batch, in seconds',
    labelNames: SHARD,
    exportedBy: 'processor',
  }),
  deadLetters: spec({
    type: 'counter',
    name: 'aggregator_dead_letters_total',
    help: 'Undecodable records kept in the dead-letter stream, by error code',
    labelNames: [...SHARD, 'code'],
    exportedBy: 'processor',
  }),
  integrityIssues: spec({
    type: 'counter',
    name: 'aggregator_integrity_issues_total',
    help: 'Trade-id gaps, depth gaps and crossed books detected (each queues a re-anchor request)',
    labelNames: [...SHARD, 'symbol', 'kind'],
    exportedBy: 'processor',
  }),
  checkpointFailures: spec({
    type: 'counter',
    name: 'aggregator_checkpoint_failures_total',
    help: 'Batches whose checkpoint was not recorded (the batch is redelivered; state is idempotent)',
    labelNames: SHARD,
    exportedBy: 'processor',
  }),
  unlistedSymbolEvents: spec({
    type: 'counter',
    name: 'aggregator_unlisted_symbol_events_total',
    help: 'Events of symbols outside processing.symbols: skipped or applied, as processing.unlisted_symbols says',
    labelNames: [...SHARD, 'action'],
    exportedBy: 'processor',
  }),
  processorResidentMemory: spec({
    type: 'gauge',
    name: 'aggregator_processor_resident_memory_bytes',
    help: 'Resident memory of the processor child',
    labelNames: SHARD,
    exportedBy: 'processor',
  }),
  processorRedisOutages: spec({
    type: 'counter',
    name: 'aggregator_redis_outages_total',
    help: 'Redis outages this process waited out (counted when they end)',
    labelNames: SHARD,
    exportedBy: 'processor',
  }),
  processorRedisOutageSeconds: spec({
    type: 'counter',
    name: 'aggregator_redis_outage_seconds_total',
    help: 'Summed duration of the Redis outages this process waited out',
    labelNames: SHARD,
    exportedBy: 'processor',
  }),

  // The sidecar's own.
  featureUpdates: spec({
    type: 'counter',
    name: 'aggregator_feature_updates_total',
    help: 'Feature ticks of this sidecar per symbol, by result (written, degraded, not_holder, failed)',
    labelNames: ['symbol', 'result'],
    exportedBy: 'sidecar',
  }),
  featureComputationDuration: spec({
    type: 'histogram',
    name: 'aggregator_feature_computation_duration_seconds',
    help: 'Reading the state snapshot and computing the feature vector (the write excluded)',
    labelNames: ['symbol'],
    buckets: FEATURE_DURATION_BUCKETS,
    exportedBy: 'sidecar',
  }),
  featureCompleteness: spec({
    type: 'gauge',
    name: 'aggregator_feature_completeness',
    help: 'Share of features computed from fresh inputs in the last vector this sidecar wrote (only while it holds the symbol)',
    labelNames: ['symbol'],
    exportedBy: 'sidecar',
  }),
  reanchorOperations: spec({
    type: 'counter',
    name: 'aggregator_reanchor_operations_total',
    help: 'Re-anchor requests handled by this sidecar by outcome (swapped, repaired, failed, lock_lost, coalesced, invalid, not_owned, unknown_symbol)',
    labelNames: ['symbol', 'outcome'],
    exportedBy: 'sidecar',
  }),
  reanchorDuration: spec({
    type: 'histogram',
    name: 'aggregator_reanchor_duration_seconds',
    help: 'Duration of one re-anchor run (REST, build, swap, retries included)',
    labelNames: ['symbol'],
    buckets: REANCHOR_DURATION_BUCKETS,
    exportedBy: 'sidecar',
  }),
  reanchorAttemptFailures: spec({
    type: 'counter',
    name: 'aggregator_reanchor_attempt_failures_total',
    help: 'Failed re-anchor attempts (retried with backoff) by stage: rest, banned, build, swap, swap-error, repair, lock-lost',
    labelNames: ['symbol', 'stage'],
    exportedBy: 'sidecar',
  }),
  tradeGapRepairs: spec({
    type: 'counter',
    name: 'aggregator_trade_gap_repairs_total',
    help:
      'Open trade-id gaps examined by repairs from REST trades, by outcome: repaired, before_rest and not_whole ' +
      '(unrepairable), after_rest (still open)',
    labelNames: ['symbol', 'outcome'],
    exportedBy: 'sidecar',
  }),
  sidecarRedisOutages: spec({
    type: 'counter',
    name: 'aggregator_sidecar_redis_outages_total',
    help: 'Redis outages this sidecar waited out (counted when they end)',
    labelNames: [],
    exportedBy: 'sidecar',
  }),
  sidecarRedisOutageSeconds: spec({
    type: 'counter',
    name: 'aggregator_sidecar_redis_outage_seconds_total',
    help: 'Summed duration of the Redis outages this sidecar waited out',
    labelNames: [],
    exportedBy: 'sidecar',
  }),
  reanchorRequests: spec({
    type: 'counter',
    name: 'aggregator_reanchor_requests_total',
    help: 'Re-anchor requests received by this sidecar, by reason and source',
    labelNames: ['symbol', 'reason', 'source'],
    exportedBy: 'sidecar',
  }),
  healthStatus: spec({
    type: 'gauge',
    name: 'aggregator_health_status',
    help: 'Last /health evaluation per component: 1 healthy, 0.5 degraded, 0 unhealthy',
    labelNames: ['component'],
    exportedBy: 'sidecar',
  }),
  restBanRemaining: spec({
    type: 'gauge',
    name: 'aggregator_reanchor_rest_ban_remaining_seconds',
    help: "Seconds left of the exchange's ban of the fleet's REST calls (a 429/418 Retry-After; 0: none)",
    labelNames: [],
    exportedBy: 'sidecar',
  }),
  processorReportAge: spec({
    type: 'gauge',
    name: 'aggregator_processor_report_age_seconds',
    help: "Age of the last telemetry report of each processor child of this sidecar's task seen in Redis",
    labelNames: SHARD,
    exportedBy: 'sidecar',
  }),
} as const;

type LabelsOf<S> = S extends MetricSpec<infer L> ? L : never;

function common<L extends string>(s: MetricSpec<L>, registry: Registry, type: MetricSpec<L>['type']) {
  if (s.type !== type) throw new Error(`metric ${s.name} is a ${s.type}, not a ${type}`);
  return { name: s.name, help: s.help, labelNames: s.labelNames, registers: [registry] };
}

/** The counter of a catalogue entry, registered in `registry`. */
export function counterOf<S extends MetricSpec<string>>(s: S, registry: Registry): Counter<LabelsOf<S>> {
  return new Counter(common(s, registry, 'counter') as ConstructorParameters<typeof Counter<LabelsOf<S>>>[0]);
}

export function gaugeOf<S extends MetricSpec<string>>(s: S, registry: Registry): Gauge<LabelsOf<S>> {
  return new Gauge(common(s, registry, 'gauge') as ConstructorParameters<typeof Gauge<LabelsOf<S>>>[0]);
}

export function histogramOf<S extends MetricSpec<string>>(s: S, registry: Registry): Histogram<LabelsOf<S>> {
  return new Histogram({
    ...(common(s, registry, 'histogram') as ConstructorParameters<typeof Histogram<LabelsOf<S>>>[0]),
    ...(s.buckets === undefined ? {} : { buckets: [...s.buckets] }),
  });
}
