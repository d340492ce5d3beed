import { expect } from 'chai';
import {
  evaluateHealth,
  tradeGapDetail,
  HEALTH_POLICY,
  infoField,
  LatencyWindow,
  type HealthInputs,
  type ReanchorInputs,
  type SymbolReanchorInput,
} from '../../../src/ops/health';
import type { ProcessorReport } from '../../../src/ops/telemetry';

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const STREAMS = ['market-sbe-trade', 'market-sbe-bestbidask', 'market-sbe-depth'];

function report(stream: string, shardId: string, overrides: Partial<ProcessorReport> = {}): ProcessorReport {
  return {
    stream,
    shardId,
    pid: 4242,
    startedMs: NOW - 60_000,
    updatedMs: NOW - 1000,
    recordsTotal: 1000,
    eventsTotal: 5000,
    batchesTotal: 10,
    deadLettersTotal: 0,
    integrityIssuesTotal: 0,
    checkpointFailuresTotal: 0,
    redisRetriesTotal: 0,
    recordsPerSecond: 50,
    lagMs: 200,
    lastProcessedMs: NOW - 1500,
    lastSequenceNumber: '49',
    rssBytes: 80e6,
    metrics: [],
    ...overrides,
  };
}

function reanchorSymbol(overrides: Partial<SymbolReanchorInput> = {}): SymbolReanchorInput {
  return {
    symbol: 'BTCUSDT',
    active: false,
    stats: { swapped: '3', failed: '1', last_outcome: 'swapped', last_finished_ms: String(NOW - 600_000) },
    bookStatus: 'in_sync',
    bookReason: '',
    bookTsMs: NOW - 100,
    ...overrides,
  };
}

function healthy(): HealthInputs {
  return {
    service: 'bitcoin-aggregator',
    sidecarId: 'sc-1',
    streams: STREAMS,
    redis: {
      reachable: true,
      latenciesMs: [0.4, 0.6],
      opsPerSecond: 1200,
      connectedClients: 12,
      maxClients: 10000,
    },
    reports: [
      report(STREAMS[0]!, 'shardId-000000000000', { recordsPerSecond: 40, lagMs: 100 }),
      report(STREAMS[0]!, 'shardId-000000000001', {
        recordsPerSecond: 60,
        lagMs: 700,
        lastProcessedMs: NOW - 200,
      }),
      report(STREAMS[1]!, 'shardId-000000000000'),
      report(STREAMS[2]!, 'shardId-000000000000'),
    ],
    features: {
      intervalMs: 2000,
      symbols: [
        { symbol: 'BTCUSDT', featureTsMs: NOW - 1000, completeness: 1, lastMinute: 30 },
        { symbol: 'ETHUSDT', featureTsMs: NOW - 1200, completeness: 0.9, lastMinute: 29 },
      ],
    },
    reanchor: {
      staleAfterMs: 30_000,
      symbols: [reanchorSymbol(), reanchorSymbol({ symbol: 'ETHUSDT', stats: {} })],
    },
  };
}

type Component = { status: string; reason?: string } & Record<string, unknown>;

function component(inputs: HealthInputs, name: 'redis' | 'feature_pipeline' | 'reanchor_system'): Component {
  return evaluateHealth(inputs, NOW).body.components[name];
}

function stream(inputs: HealthInputs, name: string): Component {
  return evaluateHealth(inputs, NOW).body.components.kinesis_consumers[name] as Component;
}

describe('health rules (evaluateHealth)', () => {
  it('healthy: 200, every component and field, aggregates per stream', () => {
    const { httpStatus, body } = evaluateHealth(healthy(), NOW);
    expect(httpStatus).to.equal(200);
    expect(body).to.deep.include({
      status: 'healthy',
      timestamp: new Date(NOW).toISOString(),
      service: 'bitcoin-aggregator',
      sidecar_id: 'sc-1',
    });
    expect(Object.keys(body.components.kinesis_consumers)).to.deep.equal(STREAMS);
    expect(body.components.kinesis_consumers[STREAMS[0]!]).to.deep.equal({
      status: 'healthy',
      records_per_second: 100,
      lag_seconds: 0.7,
      last_processed: new Date(NOW - 200).toISOString(),
      shards: {
        'shardId-000000000000': {
          records_per_second: 40,
          lag_seconds: 0.1,
          last_processed: new Date(NOW - 1500).toISOString(),
          pid: 4242,
          report_age_seconds: 1,
        },
        'shardId-000000000001': {
          records_per_second: 60,
          lag_seconds: 0.7,
          last_processed: new Date(NOW - 200).toISOString(),
          pid: 4242,
          report_age_seconds: 1,
        },
      },
    });
    expect(body.components.redis).to.deep.equal({
      status: 'healthy',
      connection_pool_usage: 0.0012,
      operations_per_second: 1200,
      avg_latency_ms: 0.5,
      maxmemory_policy: null,
      unreachable_since: null,
    });
    expect(body.components.feature_pipeline).to.deep.equal({
      status: 'healthy',
      last_feature_update: new Date(NOW - 1000).toISOString(),
      features_per_minute: 59,
      feature_completeness: 0.9,
    });
    expect(body.components.reanchor_system).to.deep.equal({
      status: 'healthy',
      active_reanchors: 0,
      last_reanchor: new Date(NOW - 600_000).toISOString(),
      reanchor_success_rate: 0.75,
      rest_banned_until: null,
      trade_gaps: {
        BTCUSDT: tradeGapDetail(undefined),
        ETHUSDT: tradeGapDetail(undefined),
      },
    });
  });

  it('trade gaps per symbol in reanchor_system: open, repaired and unrepairable ones (detail, no status)', () => {
    expect(tradeGapDetail(undefined)).to.deep.equal({
      open: 0,
      open_gaps: [],
      repaired: 0,
      unrepairable: 0,
      unrepairable_trades: '0',
      last_unrepairable: null,
    });
    const inputs = healthy();
    const reanchor = inputs.reanchor as ReanchorInputs;
    const withGaps: HealthInputs = {
      ...inputs,
      reanchor: {
        ...reanchor,
        symbols: reanchor.symbols.map((s) => ({
          ...s,
          tradeGaps: {
            open_gaps: '105-107,200-200',
            gaps_repaired: '4',
            gaps_unrepairable: '1',
            trades_unrepairable: '12',
            last_unrepairable_from: '50',
            last_unrepairable_to: '61',
          },
        })),
      },
    };
    const body = component(withGaps, 'reanchor_system');
    expect(body.status).to.equal('healthy');
    expect((body.trade_gaps as Record<string, unknown>).BTCUSDT).to.deep.equal({
      open: 2,
      open_gaps: ['105-107', '200-200'],
      repaired: 4,
      unrepairable: 1,
      unrepairable_trades: '12',
      last_unrepairable: '50-61',
    });
  });

  it('an exchange ban of the REST calls -> reanchor_system degraded with its end; an ended one is no news', () => {
    const inputs = healthy();
    const banned = (untilMs: number): HealthInputs => ({
      ...inputs,
      reanchor: { ...(inputs.reanchor as ReanchorInputs), restBan: { untilMs, status: 429 } },
    });
    const during = component(banned(NOW + 90_000), 'reanchor_system');
    expect(during).to.include({
      status: 'degraded',
      rest_banned_until: new Date(NOW + 90_000).toISOString(),
    });
    expect(String(during.reason)).to.match(/bans REST calls \(HTTP 429\) for 90 s more/);
    expect(component(banned(NOW - 1), 'reanchor_system')).to.include({
      status: 'healthy',
      rest_banned_until: null,
    });
  });

  it('redis slow (average PING latency above the threshold) -> degraded, 503', () => {
    const inputs = healthy();
    const slow = { ...inputs, redis: { ...inputs.redis, latenciesMs: [10, 90, 80] } } as HealthInputs;
    const redis = component(slow, 'redis');
    expect(redis.status).to.equal('degraded');
    expect(redis.avg_latency_ms).to.equal(60);
    expect(redis.reason).to.match(/slow: PING 60 ms on average/);
    const result = evaluateHealth(slow, NOW);
    expect(result.body.status).to.equal('degraded');
    expect(result.httpStatus).to.equal(503);
    // Only the last latencySamples probes count.
    const recovered = {
      ...inputs,
      redis: { ...inputs.redis, latenciesMs: [500, ...Array<number>(HEALTH_POLICY.latencySamples).fill(1)] },
    } as HealthInputs;
    expect(component(recovered, 'redis').status).to.equal('healthy');
  });

  it('redis connections near maxclients -> degraded; INFO failing -> degraded', () => {
    const inputs = healthy();
    const full = {
      ...inputs,
      redis: { ...inputs.redis, connectedClients: 48, maxClients: 50 },
    } as HealthInputs;
    expect(component(full, 'redis')).to.include({ status: 'degraded', connection_pool_usage: 0.96 });
    const noInfo = { ...inputs, redis: { ...inputs.redis, statsError: 'INFO: boom' } } as HealthInputs;
    expect(component(noInfo, 'redis').reason).to.contain('INFO failed: INFO: boom');
  });

  it('a maxmemory-policy other than noeviction -> redis degraded, with the policy named', () => {
    const inputs = healthy();
    const withPolicy = (maxmemoryPolicy: string): HealthInputs =>
      ({ ...inputs, redis: { ...inputs.redis, maxmemoryPolicy } }) as HealthInputs;
    const evicting = evaluateHealth(withPolicy('allkeys-lru'), NOW).body.components.redis;
    expect(evicting).to.include({ status: 'degraded', maxmemory_policy: 'allkeys-lru' });
    expect(String(evicting.reason)).to.match(/^maxmemory-policy is allkeys-lru, not noeviction: /);
    expect(evaluateHealth(withPolicy('noeviction'), NOW).body.components.redis).to.include({
      status: 'healthy',
      maxmemory_policy: 'noeviction',
    });
  });

  it('redis down -> redis unhealthy, every other component unhealthy (unknown), 503', () => {
    const down: HealthInputs = {
      ...healthy(),
      redis: { reachable: false, error: 'PING: no answer within 1000 ms' },
      reports: undefined,
      features: undefined,
      reanchor: undefined,
    };
    const { httpStatus, body } = evaluateHealth(down, NOW);
    expect(httpStatus).to.equal(503);
    expect(body.status).to.equal('unhealthy');
    expect(body.components.redis).to.deep.equal({
      status: 'unhealthy',
      connection_pool_usage: null,
      operations_per_second: null,
      avg_latency_ms: null,
      maxmemory_policy: null,
      unreachable_since: null,
      reason: 'unreachable: PING: no answer within 1000 ms',
    });
    // With the sidecar's outage tracker: since when, in the reason and as a field.
    const since = evaluateHealth(
      { ...down, redis: { ...down.redis, sinceMs: NOW - 42_000 } } as HealthInputs,
      NOW,
    );
    expect(since.body.components.redis).to.include({
      unreachable_since: new Date(NOW - 42_000).toISOString(),
      reason: `unreachable since ${new Date(NOW - 42_000).toISOString()} (42 s): PING: no answer within 1000 ms`,
    });
    for (const name of STREAMS) {
      expect(body.components.kinesis_consumers[name]).to.deep.include({
        status: 'unhealthy',
        reason: 'unknown: redis unreachable',
      });
    }
    expect(body.components.feature_pipeline.status).to.equal('unhealthy');
    expect(body.components.reanchor_system.status).to.equal('unhealthy');
  });

  it('a component whose read failed is unhealthy with the error', () => {
    const failed = { ...healthy(), features: 'feature vectors: no answer within 2000 ms' };
    expect(component(failed, 'feature_pipeline').reason).to.equal(
      'unknown: redis read failed (feature vectors: no answer within 2000 ms)',
    );
  });

  describe('consumers', () => {
    it('no report for a stream -> that stream unhealthy, the others healthy', () => {
      const inputs = { ...healthy(), reports: healthy().reports!.slice(0, 3) } as HealthInputs;
      expect(stream(inputs, STREAMS[2]!)).to.deep.equal({
        status: 'unhealthy',
        records_per_second: null,
        lag_seconds: null,
        last_processed: null,
        shards: {},
        reason: 'no processor reported in the last 30 s',
      });
      expect(stream(inputs, STREAMS[0]!).status).to.equal('healthy');
      expect(evaluateHealth(inputs, NOW)).to.deep.include({ httpStatus: 503 });
      expect(evaluateHealth(inputs, NOW).body.status).to.equal('unhealthy');
    });

    it('a report older than the stale limit -> unhealthy; older than 30 s counts as none', () => {
      const base = healthy().reports as ProcessorReport[];
      const old = [
        ...base.slice(0, 3),
        report(STREAMS[2]!, 'shardId-000000000000', { updatedMs: NOW - 12_000 }),
      ];
      const s = stream({ ...healthy(), reports: old }, STREAMS[2]!);
      expect(s.status).to.equal('unhealthy');
      expect(s.reason).to.equal('shard shardId-000000000000: last report 12 s old (pid 4242)');
      expect((s.shards as Record<string, { report_age_seconds: number }>)['shardId-000000000000']).to.include(
        {
          report_age_seconds: 12,
        },
      );
      const gone = [
        ...base.slice(0, 3),
        report(STREAMS[2]!, 'shardId-000000000000', { updatedMs: NOW - 31_000 }),
      ];
      expect(stream({ ...healthy(), reports: gone }, STREAMS[2]!).reason).to.equal(
        'no processor reported in the last 30 s',
      );
    });

    it('lag above the thresholds -> degraded, then unhealthy; the stream lag is the max of its shards', () => {
      const base = healthy().reports as ProcessorReport[];
      const lagging = (lagMs: number) => ({
        ...healthy(),
        reports: [...base, report(STREAMS[1]!, 'shardId-000000000001', { lagMs })],
      });
      expect(stream(lagging(4000), STREAMS[1]!).status).to.equal('healthy');
      const degraded = stream(lagging(6000), STREAMS[1]!);
      expect(degraded).to.include({ status: 'degraded', lag_seconds: 6 });
      expect(degraded.reason).to.equal('shard shardId-000000000001: 6 s behind the stream');
      expect(stream(lagging(45_000), STREAMS[1]!)).to.include({ status: 'unhealthy', lag_seconds: 45 });
    });

    it('a shard with no batch yet (lag and last_processed null) is healthy', () => {
      const fresh = [
        ...(healthy().reports as ProcessorReport[]).slice(0, 3),
        report(STREAMS[2]!, 'shardId-000000000000', {
          lagMs: null,
          lastProcessedMs: null,
          recordsPerSecond: 0,
        }),
      ];
      expect(stream({ ...healthy(), reports: fresh }, STREAMS[2]!)).to.deep.include({
        status: 'healthy',
        records_per_second: 0,
        lag_seconds: null,
        last_processed: null,
      });
    });
  });

  describe('feature pipeline', () => {
    const withFeatures = (symbols: HealthInputs['features']) => ({ ...healthy(), features: symbols });

    it('a vector older than 3 intervals, or none -> unhealthy', () => {
      const stale = component(
        withFeatures({
          intervalMs: 2000,
          symbols: [
            { symbol: 'BTCUSDT', featureTsMs: NOW - 6500, completeness: 1, lastMinute: 27 },
            { symbol: 'ETHUSDT', featureTsMs: null, completeness: null, lastMinute: 0 },
          ],
        }),
        'feature_pipeline',
      );
      expect(stale).to.deep.equal({
        status: 'unhealthy',
        last_feature_update: new Date(NOW - 6500).toISOString(),
        features_per_minute: 27,
        feature_completeness: 1,
        reason: 'BTCUSDT: last feature vector 6.5 s old; ETHUSDT: no feature vector',
      });
      const justFresh = withFeatures({
        intervalMs: 2000,
        symbols: [{ symbol: 'BTCUSDT', featureTsMs: NOW - 6000, completeness: 1, lastMinute: 30 }],
      });
      expect(component(justFresh, 'feature_pipeline').status).to.equal('healthy');
    });

    it('completeness below 0.5 -> degraded; the component reports the lowest', () => {
      const low = component(
        withFeatures({
          intervalMs: 2000,
          symbols: [
            { symbol: 'BTCUSDT', featureTsMs: NOW - 500, completeness: 0.25, lastMinute: 30 },
            { symbol: 'ETHUSDT', featureTsMs: NOW - 500, completeness: 1, lastMinute: 30 },
          ],
        }),
        'feature_pipeline',
      );
      expect(low).to.include({
        status: 'degraded',
        feature_completeness: 0.25,
        reason: 'BTCUSDT: completeness 0.25',
      });
    });
  });

  describe('re-anchor system', () => {
    const withSymbols = (...symbols: SymbolReanchorInput[]) => ({
      ...healthy(),
      reanchor: { staleAfterMs: 30_000, symbols },
    });

    it('last outcome failed within 5 minutes -> unhealthy "failing re-anchors"; older -> healthy', () => {
      const failing = reanchorSymbol({
        stats: {
          swapped: '1',
          failed: '3',
          last_outcome: 'failed',
          last_finished_ms: String(NOW - 20_000),
          last_failure: 'rest: HTTP 500',
        },
      });
      const c = component(withSymbols(failing), 'reanchor_system');
      expect(c).to.include({ status: 'unhealthy', reanchor_success_rate: 0.25 });
      expect(c.reason).to.equal('failing re-anchors: BTCUSDT gave up 20 s ago (rest: HTTP 500)');
      const old = reanchorSymbol({
        stats: {
          ...failing.stats,
          last_finished_ms: String(NOW - HEALTH_POLICY.reanchorFailureWindowMs - 1),
        },
      });
      expect(component(withSymbols(old), 'reanchor_system').status).to.equal('healthy');
    });

    it('a book out of sync for longer than 2 x stale_after_seconds -> unhealthy; shorter -> healthy', () => {
      const outOfSync = (bookTsMs: number | null, lastOkMs?: number) =>
        reanchorSymbol({
          bookStatus: 'out_of_sync',
          bookReason: 'gap',
          bookTsMs,
          stats: lastOkMs === undefined ? {} : { last_ok_ms: String(lastOkMs) },
        });
      expect(component(withSymbols(outOfSync(NOW - 59_000)), 'reanchor_system').status).to.equal('healthy');
      const c = component(withSymbols(outOfSync(NOW - 61_000)), 'reanchor_system');
      expect(c.status).to.equal('unhealthy');
      expect(c.reason).to.equal('failing re-anchors: BTCUSDT book out of sync (gap) for 61 s');
      // A re-anchor that succeeded since counts as the last time the book was good.
      expect(component(withSymbols(outOfSync(NOW - 61_000, NOW - 5000)), 'reanchor_system').status).to.equal(
        'healthy',
      );
      const never = component(withSymbols(outOfSync(null)), 'reanchor_system');
      expect(never).to.include({ status: 'degraded' });
      expect(never.reason).to.equal('BTCUSDT: book out of sync (gap), never anchored');
    });

    it('a re-anchor running longer than 60 s -> degraded; active_reanchors counts the locks', () => {
      const running = (startedAgoMs: number) =>
        reanchorSymbol({
          active: true,
          stats: { running: '1', last_started_ms: String(NOW - startedAgoMs) },
        });
      const short = component(
        withSymbols(running(5000), reanchorSymbol({ symbol: 'ETHUSDT' })),
        'reanchor_system',
      );
      expect(short).to.include({ status: 'healthy', active_reanchors: 1 });
      const long = component(withSymbols(running(61_000)), 'reanchor_system');
      expect(long).to.include({ status: 'degraded', reason: 'BTCUSDT: re-anchor running for 61 s' });
      // running=1 left behind by a dead listener whose lock expired: not running.
      const leftover = reanchorSymbol({ stats: { running: '1', last_started_ms: String(NOW - 600_000) } });
      expect(component(withSymbols(leftover), 'reanchor_system').status).to.equal('healthy');
    });

    it('success rate null when no re-anchor ever ended', () => {
      const c = component(withSymbols(reanchorSymbol({ stats: {} })), 'reanchor_system');
      expect(c).to.include({ reanchor_success_rate: null, last_reanchor: null, active_reanchors: 0 });
    });
  });

  it('overall = the worst component; 200 only when healthy', () => {
    const inputs = healthy();
    const degradedRedis = { ...inputs, redis: { ...inputs.redis, latenciesMs: [100] } } as HealthInputs;
    expect(evaluateHealth(degradedRedis, NOW).body.status).to.equal('degraded');
    const both: HealthInputs = {
      ...degradedRedis,
      features: {
        intervalMs: 2000,
        symbols: [{ symbol: 'BTCUSDT', featureTsMs: null, completeness: null, lastMinute: 0 }],
      },
    };
    const result = evaluateHealth(both, NOW);
    expect(result.body.status).to.equal('unhealthy');
    expect(result.httpStatus).to.equal(503);
    expect(result.body.components.redis.status).to.equal('degraded');
    for (const status of ['healthy', 'degraded', 'unhealthy'] as const) {
      const r =
        status === 'healthy'
          ? evaluateHealth(inputs, NOW)
          : status === 'degraded'
            ? evaluateHealth(degradedRedis, NOW)
            : result;
      expect(r.httpStatus).to.equal(status === 'healthy' ? 200 : 503);
    }
  });

  it('infoField and LatencyWindow', () => {
    const info = '# Stats\r\ntotal_connections_received:7\r\ninstantaneous_ops_per_sec:42\r\n';
    expect(infoField(info, 'instantaneous_ops_per_sec')).to.equal(42);
    expect(infoField(info, 'missing')).to.equal(null);
    const w = new LatencyWindow(3);
    for (const v of [1, 2, 3, 4]) w.add(v);
    expect(w.values()).to.deep.equal([2, 3, 4]);
  });
});
