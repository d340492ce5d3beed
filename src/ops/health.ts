import type { AppConfig } from '../config/config';
import { readRestBan } from '../reanchor/rest-gate';
import type { RestBan } from '../rest/client';
import type { Keys } from '../state/keys';
import type { RedisOutage } from '../state/outage';
import type { RedisClient } from '../state/redis';
import { readReports, REPORT_TTL_SECONDS, type ProcessorReport } from './telemetry';

/**
 * The sidecar's `GET /health`: Redis-wide data, so any sidecar of the fleet answers the same (except the PING
 * latency, measured from the one answering); read by collectHealthInputs, judged by the pure evaluateHealth with
 * the thresholds of HEALTH_POLICY. Rules (a component that is not healthy carries a `reason`):
 * - consumers: a stream without any processor report in the last 30 s -> unhealthy.
 * - consumers: a shard's report older than 10 s (published every 2 s) -> unhealthy (its child stopped).
 * - consumers: a shard's lag (millisBehindLatest) above 30 s -> unhealthy; above 5 s -> degraded.
 * - redis: PING failed or slower than its timeout (1 s) -> unhealthy, and every other component unhealthy (unknown).
 * - redis: PING latency averaged over the last 10 probes above 50 ms -> degraded.
 * - redis: connected_clients / maxclients (redis.max_connections if CONFIG is refused) above 0.9 -> degraded.
 * - features: a symbol without feat:<S>, or its feature_ts older than 3 feature intervals -> unhealthy.
 * - features: a symbol's completeness below 0.5 -> degraded.
 * - re-anchor: a symbol's last outcome `failed`, finished within the last 5 min -> unhealthy.
 * - re-anchor: a book out_of_sync for longer than 2 x reanchor.stale_after_seconds -> unhealthy (since the newer of
 *   book_ts_us, the event time of its last in-sync diff, and last_ok_ms, its last successful re-anchor).
 * - re-anchor: a book out_of_sync that was never anchored (neither time exists) -> degraded.
 * - re-anchor: a re-anchor running (lock held) for longer than 60 s -> degraded.
 * - re-anchor: the exchange bans the fleet's REST calls (reanchor:rest:ban, a 429/418 Retry-After) -> degraded,
 *   with rest_banned_until (null when none).
 * - overall: the worst component. HTTP 200 only when the overall status is healthy, else 503.
 */

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export const HEALTH_POLICY = {
  /** A stream with no report this recent has no live processor. */
  reportMaxAgeMs: REPORT_TTL_SECONDS * 1000,
  /** A shard's report older than this: its child stopped publishing (every 2 s normally). */
  reportStaleAfterMs: 10_000,
  lagDegradedSeconds: 5,
  lagUnhealthySeconds: 30,
  /** Average PING latency over the last latencySamples probes. */
  latencySamples: 10,
  latencyDegradedMs: 50,
  poolUsageDegraded: 0.9,
  /** feat:<S> older than this many feature intervals is stale. */
  featureStaleIntervals: 3,
  completenessDegraded: 0.5,
  /** A failed re-anchor outcome counts for this long. */
  reanchorFailureWindowMs: 5 * 60_000,
  /** An out-of-sync book for longer than this factor x reanchor.stale_after_seconds. */
  outOfSyncFactor: 2,
  reanchorRunningDegradedMs: 60_000,
} as const;

export type HealthPolicy = { readonly [K in keyof typeof HEALTH_POLICY]: number };

/** What collectHealthInputs read; the input of evaluateHealth. */
export interface HealthInputs {
  readonly service: string;
  readonly sidecarId: string;
  /** The configured Kinesis stream names (each always listed). */
  readonly streams: readonly string[];
  readonly redis: RedisInputs;
  /** undefined when Redis is unreachable; a string when the read failed. */
  readonly reports: readonly ProcessorReport[] | string | undefined;
  readonly features: FeatureInputs | string | undefined;
  readonly reanchor: ReanchorInputs | string | undefined;
  /** This sidecar's own counters (informational, never part of the status). */
  readonly local?: Readonly<Record<string, unknown>>;
}

export type RedisInputs =
  | {
      readonly reachable: true;
      /** The last PING latencies (ms), newest last. */
      readonly latenciesMs: readonly number[];
      readonly opsPerSecond: number | null;
      readonly connectedClients: number | null;
      readonly maxClients: number | null;
      /** INFO memory maxmemory_policy (null: unknown). Anything but noeviction may evict one key of a symbol's
       * state alone (e.g. tr:<S>:state), after which a redelivery double-counts: degraded. */
      readonly maxmemoryPolicy?: string | null;
      /** INFO failed (the PING answered). */
      readonly statsError?: string;
    }
  | {
      readonly reachable: false;
      readonly error: string;
      /** When this process first found Redis unavailable in the outage going on (ms since the epoch). */
      readonly sinceMs?: number;
    };

export interface SymbolFeatureInput {
  readonly symbol: string;
  /** feature_ts of feat:<S> (ms), null when the vector is missing. */
  readonly featureTsMs: number | null;
  readonly completeness: number | null;
  /** Entries of feat:<S>:history in the last 60 s. */
  readonly lastMinute: number;
}

export interface FeatureInputs {
  readonly intervalMs: number;
  readonly symbols: readonly SymbolFeatureInput[];
}

export interface SymbolReanchorInput {
  readonly symbol: string;
  /** The lock reanchor:<S> exists. */
  readonly active: boolean;
  /** reanchor:<S>:stats as stored. */
  readonly stats: Readonly<Record<string, string>>;
  /** book:<S>:state status/reason ('' when absent). */
  readonly bookStatus: string;
  readonly bookReason: string;
  /** book:<S>:state book_ts_us / 1000, null when absent. */
  readonly bookTsMs: number | null;
  /** tr:<S>:state's trade-gap fields ('' when absent): open_gaps, gaps_repaired, gaps_unrepairable,
   * trades_unrepairable, last_unrepairable_from, last_unrepairable_to. */
  readonly tradeGaps?: Readonly<Record<string, string>>;
}

export interface ReanchorInputs {
  readonly staleAfterMs: number;
  readonly symbols: readonly SymbolReanchorInput[];
  /** reanchor:rest:ban: the exchange's ban of the fleet's REST calls, when one is recorded. */
  readonly restBan?: RestBan;
}

interface Judged {
  status: HealthStatus;
  reasons: string[];
}

const RANK: Readonly<Record<HealthStatus, number>> = { healthy: 0, degraded: 1, unhealthy: 2 };

function worst(...statuses: HealthStatus[]): HealthStatus {
  return statuses.reduce<HealthStatus>((a, b) => (RANK[b] > RANK[a] ? b : a), 'healthy');
}

function judge(): Judged {
  return { status: 'healthy', reasons: [] };
}

function flag(j: Judged, status: HealthStatus, reason: string): void {
  j.status = worst(j.status, status);
  j.reasons.push(reason);
}

function withReason<T extends object>(j: Judged, fields: T): T & { status: HealthStatus; reason?: string } {
  return j.status === 'healthy'
    ? { status: j.status, ...fields }
    : { status: j.status, ...fields, reason: j.reasons.join('; ') };
}

function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString();
}

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function maxOf(values: ReadonlyArray<number | null>): number | null {
  let best: number | null = null;
  for (const v of values) if (v !== null && Number.isFinite(v) && (best === null || v > best)) best = v;
  return best;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

function unavailable(what: string | undefined) {
  return `unknown: ${what === undefined ? 'redis unreachable' : `redis read failed (${what})`}`;
}

function evaluateConsumers(inputs: HealthInputs, nowMs: number, policy: HealthPolicy) {
  const streams: Record<string, unknown> = {};
  const overall: HealthStatus[] = [];
  const reports = inputs.reports;
  for (const stream of inputs.streams) {
    const j = judge();
    if (reports === undefined || typeof reports === 'string') {
      flag(j, 'unhealthy', unavailable(reports));
      streams[stream] = withReason(j, {
        records_per_second: null,
        lag_seconds: null,
        last_processed: null,
        shards: {},
      });
      overall.push(j.status);
      continue;
    }
    const mine = reports
      .filter((r) => r.stream === stream && nowMs - r.updatedMs <= policy.reportMaxAgeMs)
      .sort((a, b) => a.shardId.localeCompare(b.shardId));
    const shards: Record<string, unknown> = {};
    let rate = 0;
    for (const r of mine) {
      const age = nowMs - r.updatedMs;
      const lagSeconds = r.lagMs === null ? null : r.lagMs / 1000;
      if (age > policy.reportStaleAfterMs) {
        flag(j, 'unhealthy', `shard ${r.shardId}: last report ${seconds(age)} old (pid ${r.pid})`);
      }
      if (lagSeconds !== null && lagSeconds > policy.lagUnhealthySeconds) {
        flag(j, 'unhealthy', `shard ${r.shardId}: ${lagSeconds} s behind the stream`);
      } else if (lagSeconds !== null && lagSeconds > policy.lagDegradedSeconds) {
        flag(j, 'degraded', `shard ${r.shardId}: ${lagSeconds} s behind the stream`);
      }
      rate += r.recordsPerSecond;
      shards[r.shardId] = {
        records_per_second: round(r.recordsPerSecond),
        lag_seconds: lagSeconds,
        last_processed: iso(r.lastProcessedMs),
        pid: r.pid,
        report_age_seconds: round(age / 1000, 1),
      };
    }
    if (mine.length === 0) {
      flag(j, 'unhealthy', `no processor reported in the last ${policy.reportMaxAgeMs / 1000} s`);
    }
    streams[stream] = withReason(j, {
      records_per_second: mine.length === 0 ? null : round(rate),
      lag_seconds: maxOf(mine.map((r) => (r.lagMs === null ? null : r.lagMs / 1000))),
      last_processed: iso(maxOf(mine.map((r) => r.lastProcessedMs))),
      shards,
    });
    overall.push(j.status);
  }
  return { status: worst(...overall), body: streams };
}

function evaluateRedis(redis: RedisInputs, policy: HealthPolicy, nowMs: number) {
  const j = judge();
  if (!redis.reachable) {
    const since =
      redis.sinceMs === undefined ? '' : ` since ${iso(redis.sinceMs)} (${seconds(nowMs - redis.sinceMs)})`;
    flag(j, 'unhealthy', `unreachable${since}: ${redis.error}`);
    return withReason(j, {
      connection_pool_usage: null,
      operations_per_second: null,
      avg_latency_ms: null,
      maxmemory_policy: null,
      unreachable_since: redis.sinceMs === undefined ? null : iso(redis.sinceMs),
    });
  }
  if (redis.statsError !== undefined) flag(j, 'degraded', `INFO failed: ${redis.statsError}`);
  const samples = redis.latenciesMs.slice(-policy.latencySamples);
  const avg = samples.length === 0 ? null : samples.reduce((a, b) => a + b, 0) / samples.length;
  if (avg !== null && avg > policy.latencyDegradedMs) {
    flag(j, 'degraded', `slow: PING ${round(avg, 1)} ms on average (> ${policy.latencyDegradedMs} ms)`);
  }
  const usage =
    redis.connectedClients === null || redis.maxClients === null || redis.maxClients <= 0
      ? null
      : redis.connectedClients / redis.maxClients;
  if (usage !== null && usage > policy.poolUsageDegraded) {
    flag(j, 'degraded', `${redis.connectedClients} of ${redis.maxClients} connections in use`);
  }
  const evictionPolicy = redis.maxmemoryPolicy ?? null;
  if (evictionPolicy !== null && evictionPolicy !== 'noeviction') {
    flag(
      j,
      'degraded',
      `maxmemory-policy is ${evictionPolicy}, not noeviction: Redis may evict one key of a symbol's state alone ` +
        '(docs/deployment.md, Redis)',
    );
  }
  return withReason(j, {
    connection_pool_usage: usage === null ? null : round(usage, 4),
    operations_per_second: redis.opsPerSecond,
    avg_latency_ms: avg === null ? null : round(avg),
    maxmemory_policy: evictionPolicy,
    unreachable_since: null,
  });
}

function evaluateFeatures(features: HealthInputs['features'], nowMs: number, policy: HealthPolicy) {
  const j = judge();
  if (features === undefined || typeof features === 'string') {
    flag(j, 'unhealthy', unavailable(features));
    return withReason(j, {
      last_feature_update: null,
      features_per_minute: null,
      feature_completeness: null,
    });
  }
  const staleMs = policy.featureStaleIntervals * features.intervalMs;
  for (const s of features.symbols) {
    if (s.featureTsMs === null) flag(j, 'unhealthy', `${s.symbol}: no feature vector`);
    else if (nowMs - s.featureTsMs > staleMs) {
      flag(j, 'unhealthy', `${s.symbol}: last feature vector ${seconds(nowMs - s.featureTsMs)} old`);
    } else if (s.completeness !== null && s.completeness < policy.completenessDegraded) {
      flag(j, 'degraded', `${s.symbol}: completeness ${s.completeness}`);
    }
  }
  const completeness = features.symbols
    .filter((s) => s.featureTsMs !== null && s.completeness !== null)
    .map((s) => s.completeness as number);
  return withReason(j, {
    last_feature_update: iso(maxOf(features.symbols.map((s) => s.featureTsMs))),
    features_per_minute: features.symbols.reduce((a, s) => a + s.lastMinute, 0),
    // The lowest of the symbols (the one that limits the predictions).
    feature_completeness: completeness.length === 0 ? null : Math.min(...completeness),
  });
}

function num(text: string | undefined): number | null {
  if (text === undefined || text === '') return null;
  const v = Number(text);
  return Number.isFinite(v) ? v : null;
}

/** A symbol's trade-id gaps for /health: still open, repaired from REST trades, unrepairable (detail only). Pure. */
export function tradeGapDetail(state: Readonly<Record<string, string>> | undefined): Record<string, unknown> {
  const open = (state?.open_gaps ?? '').split(',').filter((g) => g !== '');
  const from = state?.last_unrepairable_from ?? '';
  return {
    open: open.length,
    open_gaps: open,
    repaired: num(state?.gaps_repaired) ?? 0,
    unrepairable: num(state?.gaps_unrepairable) ?? 0,
    unrepairable_trades: state?.trades_unrepairable || '0',
    last_unrepairable: from === '' ? null : `${from}-${state?.last_unrepairable_to ?? ''}`,
  };
}

function evaluateReanchor(reanchor: HealthInputs['reanchor'], nowMs: number, policy: HealthPolicy) {
  const j = judge();
  if (reanchor === undefined || typeof reanchor === 'string') {
    flag(j, 'unhealthy', unavailable(reanchor));
    return withReason(j, {
      active_reanchors: null,
      trade_gaps: null,
      last_reanchor: null,
      reanchor_success_rate: null,
      rest_banned_until: null,
    });
  }
  const ban =
    reanchor.restBan !== undefined && reanchor.restBan.untilMs > nowMs ? reanchor.restBan : undefined;
  if (ban !== undefined) {
    flag(
      j,
      'degraded',
      `the exchange bans REST calls (HTTP ${ban.status ?? '?'}) for ${seconds(ban.untilMs - nowMs)} more: re-anchors wait`,
    );
  }
  let swapped = 0;
  let failed = 0;
  for (const s of reanchor.symbols) {
    swapped += num(s.stats.swapped) ?? 0;
    failed += num(s.stats.failed) ?? 0;
    const finished = num(s.stats.last_finished_ms);
    if (
      s.stats.last_outcome === 'failed' &&
      finished !== null &&
      nowMs - finished <= policy.reanchorFailureWindowMs
    ) {
      const failure = s.stats.last_failure ? ` (${s.stats.last_failure})` : '';
      flag(
        j,
        'unhealthy',
        `failing re-anchors: ${s.symbol} gave up ${seconds(nowMs - finished)} ago${failure}`,
      );
    }
    if (s.bookStatus === 'out_of_sync') {
      const since = maxOf([s.bookTsMs, num(s.stats.last_ok_ms)]);
      const limit = policy.outOfSyncFactor * reanchor.staleAfterMs;
      const why = s.bookReason === '' ? 'unknown' : s.bookReason;
      if (since === null) flag(j, 'degraded', `${s.symbol}: book out of sync (${why}), never anchored`);
      else if (nowMs - since > limit) {
        flag(
          j,
          'unhealthy',
          `failing re-anchors: ${s.symbol} book out of sync (${why}) for ${seconds(nowMs - since)}`,
        );
      }
    }
    const started = num(s.stats.last_started_ms);
    if (
      s.active &&
      s.stats.running === '1' &&
      started !== null &&
      nowMs - started > policy.reanchorRunningDegradedMs
    ) {
      flag(j, 'degraded', `${s.symbol}: re-anchor running for ${seconds(nowMs - started)}`);
    }
  }
  return withReason(j, {
    active_reanchors: reanchor.symbols.filter((s) => s.active).length,
    trade_gaps: Object.fromEntries(reanchor.symbols.map((s) => [s.symbol, tradeGapDetail(s.tradeGaps)])),
    last_reanchor: iso(maxOf(reanchor.symbols.map((s) => num(s.stats.last_finished_ms)))),
    reanchor_success_rate: swapped + failed === 0 ? null : round(swapped / (swapped + failed), 4),
    rest_banned_until: ban === undefined ? null : iso(ban.untilMs),
  });
}

export interface HealthResult {
  readonly httpStatus: 200 | 503;
  readonly body: HealthBody;
}

export interface HealthBody {
  readonly status: HealthStatus;
  readonly timestamp: string;
  readonly service: string;
  readonly sidecar_id: string;
  readonly components: {
    readonly kinesis_consumers: Record<string, unknown>;
    readonly redis: Record<string, unknown> & { status: HealthStatus };
    readonly feature_pipeline: Record<string, unknown> & { status: HealthStatus };
    readonly reanchor_system: Record<string, unknown> & { status: HealthStatus };
  };
  readonly sidecar?: Readonly<Record<string, unknown>>;
}

/** The /health answer for inputs read at nowMs. Pure. */
export function evaluateHealth(
  inputs: HealthInputs,
  nowMs: number,
  policy: HealthPolicy = HEALTH_POLICY,
): HealthResult {
  const consumers = evaluateConsumers(inputs, nowMs, policy);
  const redis = evaluateRedis(inputs.redis, policy, nowMs);
  const features = evaluateFeatures(inputs.features, nowMs, policy);
  const reanchor = evaluateReanchor(inputs.reanchor, nowMs, policy);
  const status = worst(consumers.status, redis.status, features.status, reanchor.status);
  const body: HealthBody = {
    status,
    timestamp: new Date(nowMs).toISOString(),
    service: inputs.service,
    sidecar_id: inputs.sidecarId,
    components: {
      kinesis_consumers: consumers.body,
      redis,
      feature_pipeline: features,
      reanchor_system: reanchor,
    },
    ...(inputs.local === undefined ? {} : { sidecar: inputs.local }),
  };
  return { httpStatus: status === 'healthy' ? 200 : 503, body };
}

/** The PING latencies of the last probes (the "avg over the last N probes" of the redis component). */
export class LatencyWindow {
  private readonly samples: number[] = [];

  constructor(private readonly size: number = HEALTH_POLICY.latencySamples) {}

  add(ms: number): void {
    this.samples.push(ms);
    if (this.samples.length > this.size) this.samples.shift();
  }

  values(): number[] {
    return [...this.samples];
  }
}

/** The value of `name:` in an INFO reply, or null. Pure. */
export function infoField(info: string, name: string): number | null {
  const text = infoText(info, name);
  return text === null ? null : num(text);
}

/** The text of `name:` in an INFO reply, or null. Pure. */
export function infoText(info: string, name: string): string | null {
  const match = new RegExp(`^${name}:([^\\r\\n]*)`, 'm').exec(info);
  return match?.[1] === undefined ? null : match[1].trim();
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface CollectOptions {
  readonly sidecarId: string;
  readonly latency: LatencyWindow;
  /** PING deadline: past it Redis counts as unreachable. */
  readonly pingTimeoutMs?: number;
  /** Deadline of every other read. */
  readonly readTimeoutMs?: number;
  readonly local?: () => Readonly<Record<string, unknown>>;
  readonly now?: () => number;
  /** The process's outage tracker: a failed PING starts (or continues) an outage, a good one ends it. */
  readonly outage?: RedisOutage;
}

async function readRedisStats(
  client: RedisClient,
  config: AppConfig,
): Promise<Omit<Extract<RedisInputs, { reachable: true }>, 'reachable' | 'latenciesMs'>> {
  const [stats, clients, memory, maxClients] = await Promise.all([
    client.info('stats'),
    client.info('clients'),
    client.info('memory'),
    // Managed Redis (ElastiCache, ...) refuses CONFIG: the configured connection cap stands in.
    client.config('GET', 'maxclients').then(
      (reply) => (Array.isArray(reply) ? num(String(reply[1])) : null),
      () => null,
    ),
  ]);
  return {
    opsPerSecond: infoField(stats, 'instantaneous_ops_per_sec'),
    connectedClients: infoField(clients, 'connected_clients'),
    maxClients: maxClients ?? config.redis.maxConnections,
    maxmemoryPolicy: infoText(memory, 'maxmemory_policy'),
  };
}

async function readFeatures(client: RedisClient, keys: Keys, config: AppConfig, nowMs: number) {
  const symbols = await Promise.all(
    config.processing.symbols.map(async (symbol): Promise<SymbolFeatureInput> => {
      const [vector, recent] = await Promise.all([
        client.hmget(keys.features(symbol), 'feature_ts', 'completeness'),
        // History ids are <feature_ts>-0: the entries of the last minute (bounded: 1 per interval normally).
        client.xrange(keys.featureHistory(symbol), String(nowMs - 60_000), '+', 'COUNT', 10_000),
      ]);
      return {
        symbol,
        featureTsMs: num(vector[0] ?? undefined),
        completeness: num(vector[1] ?? undefined),
        lastMinute: recent.length,
      };
    }),
  );
  return { intervalMs: config.processing.featureUpdateIntervalSeconds * 1000, symbols };
}

const TRADE_GAP_FIELDS = [
  'open_gaps',
  'gaps_repaired',
  'gaps_unrepairable',
  'trades_unrepairable',
  'last_unrepairable_from',
  'last_unrepairable_to',
] as const;

async function readReanchor(client: RedisClient, keys: Keys, config: AppConfig): Promise<ReanchorInputs> {
  const symbols = await Promise.all(
    config.processing.symbols.map(async (symbol): Promise<SymbolReanchorInput> => {
      const [active, stats, book, gaps] = await Promise.all([
        client.exists(keys.reanchorFlag(symbol)),
        client.hgetall(keys.reanchorStats(symbol)),
        client.hmget(keys.bookState(symbol), 'status', 'reason', 'book_ts_us'),
        client.hmget(keys.tradeState(symbol), ...TRADE_GAP_FIELDS),
      ]);
      const bookTsUs = num(book[2] ?? undefined);
      return {
        symbol,
        active: active === 1,
        stats,
        bookStatus: book[0] ?? '',
        bookReason: book[1] ?? '',
        bookTsMs: bookTsUs === null ? null : bookTsUs / 1000,
        tradeGaps: Object.fromEntries(TRADE_GAP_FIELDS.map((f, i) => [f, gaps[i] ?? ''])),
      };
    }),
  );
  const restBan = await readRestBan(client, keys);
  return {
    staleAfterMs: config.reanchor.staleAfterSeconds * 1000,
    symbols,
    ...(restBan === undefined ? {} : { restBan }),
  };
}

/**
 * Reads everything evaluateHealth judges. Never throws and never waits past its deadlines: a PING failure or
 * timeout marks Redis unreachable (the other reads are skipped); a failed read marks its component.
 */
export async function collectHealthInputs(
  client: RedisClient,
  keys: Keys,
  config: AppConfig,
  options: CollectOptions,
): Promise<HealthInputs> {
  const now = options.now ?? Date.now;
  const pingTimeoutMs = options.pingTimeoutMs ?? 1000;
  const readTimeoutMs = options.readTimeoutMs ?? 2000;
  const base = {
    service: config.serviceName,
    sidecarId: options.sidecarId,
    streams: Object.values(config.aws.kinesis.streams),
    ...(options.local === undefined ? {} : { local: options.local() }),
  };
  const started = process.hrtime.bigint();
  try {
    await within(client.ping(), pingTimeoutMs, 'PING');
    options.outage?.recovered();
  } catch (err) {
    options.outage?.failed(err);
    const sinceMs = options.outage?.waitingSinceMs;
    return {
      ...base,
      redis: { reachable: false, error: message(err), ...(sinceMs === undefined ? {} : { sinceMs }) },
      reports: undefined,
      features: undefined,
      reanchor: undefined,
    };
  }
  options.latency.add(Number(process.hrtime.bigint() - started) / 1e6);
  const nowMs = now();
  const settle = <T>(p: Promise<T>, what: string): Promise<T | string> =>
    within(p, readTimeoutMs, what).catch((err: unknown) => message(err));
  const [stats, reports, features, reanchor] = await Promise.all([
    settle(readRedisStats(client, config), 'INFO'),
    settle(
      readReports(client, keys, nowMs, HEALTH_POLICY.reportMaxAgeMs).then((r) => r.reports),
      'processor reports',
    ),
    settle(readFeatures(client, keys, config, nowMs), 'feature vectors'),
    settle(readReanchor(client, keys, config), 're-anchor state'),
  ]);
  const redis: RedisInputs =
    typeof stats === 'string'
      ? {
          reachable: true,
          latenciesMs: options.latency.values(),
          opsPerSecond: null,
          connectedClients: null,
          maxClients: null,
          statsError: stats,
        }
      : { reachable: true, latenciesMs: options.latency.values(), ...stats };
  return { ...base, redis, reports, features, reanchor };
}

/**
 * The /health handler of a sidecar: collects and evaluates; concurrent requests share one collection.
 */
export function healthHandler(
  client: RedisClient,
  keys: Keys,
  config: AppConfig,
  options: Omit<CollectOptions, 'latency'> & {
    readonly policy?: HealthPolicy;
    /** Called with every evaluation (e.g. to export the component statuses as metrics). */
    readonly onResult?: (result: HealthResult) => void;
  },
): () => Promise<HealthResult> {
  const latency = new LatencyWindow(options.policy?.latencySamples ?? HEALTH_POLICY.latencySamples);
  const now = options.now ?? Date.now;
  let inFlight: Promise<HealthResult> | undefined;
  return () => {
    inFlight ??= collectHealthInputs(client, keys, config, { ...options, latency })
      .then((inputs) => {
        const result = evaluateHealth(inputs, now(), options.policy);
        options.onResult?.(result);
        return result;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
}
