import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { expect } from 'chai';
import { applicationName, STREAM_KINDS } from '../../src/config/config';
import { findFreePort } from '../../src/dev/localstack/ports';
import { createDynamoClient, readLeases } from '../../src/ops/leases';
import {
  createKinesisClient,
  publishEvents,
  putRecordsWith,
  type PublishSummary,
} from '../../src/replay/producer';
import type { SimulatedEvent } from '../../src/replay/simulator';
import {
  SimulatedExchange,
  startSimExchangeServer,
  type SimExchangeServer,
} from '../../src/dev/rest/sim-server';
import { Keys } from '../../src/state/keys';
import { parseExposition, type Sample } from '../helpers/exposition';
import { spawnSidecar, type SidecarProcess } from '../helpers/sidecar-process';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';

// Prometheus metrics after a replay through the real parts: kinesis-mock, the real KCL daemons (two trade shards)
// and their processor children publishing telemetry to Redis, and a real `aggregator sidecar` serving /metrics
// (its own feature and re-anchor metrics merged with the processors'). Checks the seed's metric names, their
// labels (stream, shard, symbol) and that the record counts add up to what was published.

const S = 'BTCUSDT';
const keys = new Keys({ clusterMode: false });

describe('metrics after a replay: real daemons, processors and sidecar /metrics', function () {
  this.timeout(300_000);
  let rest: SimExchangeServer | undefined;
  let pipeline: Pipeline | undefined;
  let sidecar: SidecarProcess | undefined;

  after(async function () {
    await sidecar?.stop();
    await rest?.stop();
    await pipeline?.stop();
  });

  it('exposes the seed metric names with stream, shard and symbol labels, and counts every record', async function () {
    const exchange = new SimulatedExchange({ seed: 5, symbols: [S], startTimeUs: 1_766_000_000_000_000n });
    rest = await startSimExchangeServer({ port: 0, exchange });
    const metricsPort = await findFreePort();
    const healthPort = await findFreePort();
    pipeline = await startPipeline({
      shards: { trade: 2, bestbidask: 1, depth: 1 },
      symbols: [S],
      label: 'metrics',
      extraYaml:
        `reanchor:\n  rest:\n    base_url: '${rest.url}'\n  stale_after_seconds: 3600\n  request_interval_seconds: 2\n` +
        `health:\n  host: '127.0.0.1'\n  port: ${healthPort}\n` +
        `metrics:\n  enable_prometheus: true\n  prometheus_port: ${metricsPort}\n`,
    });
    const p = pipeline;
    for (const kind of STREAM_KINDS) p.startDaemon(kind);
    const kinesis = createKinesisClient({
      region: p.config.aws.region,
      endpoint: p.config.aws.kinesis.endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const events: SimulatedEvent[] = [];
    for (let i = 0; i < 3000; i++) events.push(exchange.next());
    const summary: PublishSummary = await publishEvents(events, {
      streams: p.config.aws.kinesis.streams,
      putRecords: putRecordsWith(kinesis),
      recordMode: 'single',
    });
    const tradeStream = p.config.aws.kinesis.streams.trade;
    const poison = await kinesis.send(
      new PutRecordCommand({
        StreamName: tradeStream,
        PartitionKey: S,
        Data: Buffer.from('not an SBE frame'),
      }),
    );
    const lastSequence: Record<string, Record<string, string>> = {};
    for (const [stream, shards] of Object.entries(summary.shards)) {
      lastSequence[stream] = {};
      for (const [shard, report] of Object.entries(shards))
        lastSequence[stream][shard] = report.lastSequenceNumber;
    }
    const poisonShard = poison.ShardId!;
    const last = lastSequence[tradeStream]![poisonShard];
    if (last === undefined || BigInt(poison.SequenceNumber!) > BigInt(last)) {
      lastSequence[tradeStream]![poisonShard] = poison.SequenceNumber!;
    }

    sidecar = spawnSidecar(p.configFile, 'sc-metrics');

    const dynamo = createDynamoClient(p.config.aws.region, p.config.aws.dynamodb.endpoint);
    try {
      const missing = async (): Promise<string[]> => {
        const out: string[] = [];
        for (const kind of STREAM_KINDS) {
          const stream = p.config.aws.kinesis.streams[kind];
          const leases = await readLeases(dynamo, applicationName(p.config, kind)).catch(() => []);
          for (const [shardId, sequence] of Object.entries(lastSequence[stream] ?? {})) {
            if (leases.find((l) => l.shardId === shardId)?.checkpoint !== sequence)
              out.push(`${stream}/${shardId}`);
          }
        }
        return out;
      };
      await waitUntil(
        async () => (await missing()).length === 0,
        150_000,
        'every checkpoint',
        async () => (await missing()).join(', '),
      );
    } finally {
      dynamo.destroy();
    }

    const published: Record<string, number> = {};
    for (const [stream, shards] of Object.entries(summary.shards)) {
      published[stream] = Object.values(shards).reduce((n, r) => n + r.records, 0);
    }
    published[tradeStream] = (published[tradeStream] ?? 0) + 1;

    const url = `http://127.0.0.1:${metricsPort}/metrics`;
    let scraped = { samples: [] as Sample[], types: new Map<string, string>() };
    const recordsOf = (stream: string): number =>
      scraped.samples
        .filter((s) => s.name === 'aggregator_kinesis_records_processed_total' && s.labels.stream === stream)
        .reduce((n, s) => n + s.value, 0);
    const complete = async (): Promise<boolean> => {
      try {
        const response = await fetch(url);
        if (response.status !== 200) return false;
        scraped = parseExposition(await response.text());
      } catch {
        return false;
      }
      const swapped = scraped.samples.some(
        (s) =>
          s.name === 'aggregator_reanchor_operations_total' && s.labels.outcome === 'swapped' && s.value >= 1,
      );
      return swapped && Object.entries(published).every(([stream, n]) => recordsOf(stream) === n);
    };
    await waitUntil(complete, 60_000, 'metrics with every record counted and a re-anchor', async () =>
      JSON.stringify({
        published,
        counted: Object.fromEntries(Object.keys(published).map((s) => [s, recordsOf(s)])),
        state: await p.redis.hgetall(keys.bookState(S)),
        stderr: (sidecar?.stderr() ?? '').slice(-1500),
      }),
    );

    const { samples, types } = scraped;
    // A declared metric appears as its # TYPE line even before its first sample (e.g. no checkpoint failed).
    const names = new Set([...types.keys()]);
    for (const name of [
      'aggregator_kinesis_records_processed_total',
      'aggregator_redis_operations_total',
      'aggregator_feature_updates_total',
      'aggregator_feature_computation_duration_seconds',
      'aggregator_reanchor_operations_total',
      'aggregator_reanchor_duration_seconds',
      'aggregator_kinesis_lag_seconds',
      'aggregator_dead_letters_total',
      'aggregator_checkpoint_failures_total',
      'aggregator_redis_operation_duration_seconds',
      'process_resident_memory_bytes',
    ]) {
      expect(names, name).to.include(name);
    }
    expect(types.get('aggregator_feature_computation_duration_seconds')).to.equal('histogram');
    expect(types.get('aggregator_reanchor_duration_seconds')).to.equal('histogram');
    expect(types.get('aggregator_redis_operation_duration_seconds')).to.equal('histogram');
    expect(types.get('aggregator_kinesis_records_processed_total')).to.equal('counter');

    // One series per stream and shard, with the published shards exactly.
    for (const [stream, shards] of Object.entries(summary.shards)) {
      const seen = samples
        .filter((s) => s.name === 'aggregator_kinesis_records_processed_total' && s.labels.stream === stream)
        .map((s) => s.labels.shard);
      expect(seen.sort(), stream).to.deep.equal(Object.keys(shards).sort());
    }
    const dead = samples.filter((s) => s.name === 'aggregator_dead_letters_total');
    expect(dead.map((s) => [s.labels.stream, s.labels.shard, s.value])).to.deep.equal([
      [tradeStream, poisonShard, 1],
    ]);
    expect(dead[0]!.labels.code).to.be.a('string').and.not.equal('');
    const ops = samples.filter((s) => s.name === 'aggregator_redis_operations_total');
    expect([...new Set(ops.map((s) => s.labels.operation))]).to.include.members([
      'trades',
      'best_bid_ask',
      'depth',
    ]);
    // The replayed events are old (event time), so the vectors are served as degraded: either result counts a tick.
    const features = samples.filter((s) => s.name === 'aggregator_feature_updates_total');
    const ticks = features.filter(
      (s) => s.labels.symbol === S && ['written', 'degraded'].includes(s.labels.result!),
    );
    expect(ticks.reduce((n, s) => n + s.value, 0)).to.be.at.least(1);
    const reanchorCount = samples.find(
      (s) => s.name === 'aggregator_reanchor_duration_seconds_count' && s.labels.symbol === S,
    );
    expect(reanchorCount?.value).to.be.at.least(1);
    process.stdout.write(
      `      metrics: ${samples.length} samples, ${names.size} metric names; records ${JSON.stringify(published)}\n`,
    );
  });
});
