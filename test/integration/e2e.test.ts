import { expect } from 'chai';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { simulate, type SimulatedEvent } from '../../src/replay/simulator';
import {
  createKinesisClient,
  publishEvents,
  putRecordsWith,
  type PublishSummary,
  type RecordMode,
} from '../../src/replay/producer';
import { applicationName, STREAM_KINDS } from '../../src/config/config';
import { snapshotStateKeys, type KeySnapshot } from '../helpers/redis-snapshot';
import { referenceState, waitForCheckpoints as waitForShardCheckpoints } from '../helpers/exactness';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { createDynamoClient, readLeases } from '../../src/ops/leases';
import { startPipeline, type Pipeline } from '../helpers/pipeline';
import {
  framesStored,
  processorLogSize,
  waitForProcessorLog,
  type ProcessorLogEntry,
} from '../helpers/processor-log';

// The whole ingest path with real parts: replay producer -> kinesis-mock -> the real KCL MultiLangDaemon
// (one per stream, leases in dynalite) -> `aggregator process` children -> Redis.

const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];

describe('end to end: replay -> kinesis-mock -> real KCL daemon -> processor -> Redis', function () {
  this.timeout(300_000);
  let pipeline: Pipeline;
  let events: SimulatedEvent[];
  let publish: (evs: readonly SimulatedEvent[], mode: RecordMode) => Promise<PublishSummary>;
  /** Every shard's last published sequence number over all publishes so far. */
  const latest: PublishSummary['shards'] = {};
  let tradeEventsPublished = 0;

  function waitForCheckpoints(summary: Pick<PublishSummary, 'shards'>, timeoutMs: number): Promise<void> {
    return waitForShardCheckpoints(pipeline, summary.shards, timeoutMs);
  }

  /** Every key but the dead letters and the telemetry (which only the pipeline has). */
  async function obState(): Promise<KeySnapshot> {
    return snapshotStateKeys(pipeline.redis);
  }

  before(async function () {
    pipeline = await startPipeline({
      shards: { trade: 2, bestbidask: 1, depth: 1 },
      symbols: SYMBOLS,
      label: 'e2e',
      // The real path: KCL finds its lease tables empty and creates the leases itself.
      kclCreatesLeases: true,
    });
    for (const kind of STREAM_KINDS) pipeline.startDaemon(kind);
    const kinesis = createKinesisClient({
      region: pipeline.config.aws.region,
      endpoint: pipeline.config.aws.kinesis.endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    publish = async (evs, mode) => {
      const summary = await publishEvents(evs, {
        streams: pipeline.config.aws.kinesis.streams,
        putRecords: putRecordsWith(kinesis),
        recordMode: mode,
      });
      tradeEventsPublished += summary.eventsPerStream.trade;
      for (const [stream, shards] of Object.entries(summary.shards)) {
        latest[stream] = { ...latest[stream], ...shards };
      }
      return summary;
    };
    events = [...simulate({ seed: 42, symbols: SYMBOLS, startTimeUs: 1_760_000_000_000_000n }, 6000)];
  });

  /**
   * A measurement, not a test: events/s through the processors once the daemons are warm, printed after the tests
   * (when they all passed) and before the stack stops. E2E_MEASURE=0 skips it. A failure here is printed, not
   * reported as a test failure: it is a figure for the closing note, with nothing to assert.
   */
  async function measureThroughput(): Promise<void> {
    const logOffset = processorLogSize(pipeline);
    const burst = [...simulate({ seed: 7, symbols: SYMBOLS, startTimeUs: 1_770_000_000_000_000n }, 40_000)];
    const started = Date.now();
    const summary = await publish(burst, 'kpl');
    const published = Date.now();
    await waitForCheckpoints(summary, 180_000);
    const seconds = (Date.now() - started) / 1000;
    process.stderr.write(
      `      e2e throughput: ${summary.events} events (${summary.records} Kinesis records) published in ` +
        `${((published - started) / 1000).toFixed(1)} s, all checkpointed after ${seconds.toFixed(1)} s ` +
        `(${Math.round(burst.length / seconds)} events/s end to end, bounded by kinesis-mock's PutRecords)\n`,
    );
    // The processors' own rate: frames per second of time spent handling batches (decode + Redis write).
    const log = await waitForProcessorLog(
      pipeline,
      logOffset,
      (entries) => framesStored(entries) >= burst.length,
      10_000,
    );
    const perStream = new Map<string, { frames: number; handleMs: number; batches: number }>();
    for (const entry of log) {
      if (entry.message !== 'batch stored' || entry.stream === undefined) continue;
      const acc = perStream.get(entry.stream) ?? { frames: 0, handleMs: 0, batches: 0 };
      acc.frames += entry.frames ?? 0;
      acc.handleMs += entry.handleMs ?? 0;
      acc.batches += 1;
      perStream.set(entry.stream, acc);
    }
    for (const [stream, acc] of perStream) {
      process.stderr.write(
        `      processor ${stream}: ${acc.frames} events in ${acc.batches} batches, ` +
          `${Math.round(acc.frames / (acc.handleMs / 1000))} events/s while handling batches\n`,
      );
    }
  }

  let allPassed = true;
  afterEach(function () {
    if (this.currentTest?.state !== 'passed') allPassed = false;
  });

  after(async function () {
    if (pipeline && allPassed && process.env.E2E_MEASURE !== '0') {
      await measureThroughput().catch((err: unknown) =>
        process.stderr.write(`      e2e throughput not measured: ${(err as Error).message}\n`),
      );
    }
    if (pipeline) await pipeline.stop();
  });

  it('applies a known replay exactly and checkpoints every shard', async function () {
    const started = Date.now();
    const summary = await publish(events, 'kpl');
    expect(summary.events).to.equal(events.length);
    await waitForCheckpoints(summary, 150_000);
    const elapsed = (Date.now() - started) / 1000;
    const expected = await referenceState(pipeline.stack.redisPort, events);
    expect(Object.keys(expected)).to.include.members(SYMBOLS.map((s) => `ob:${s}`));
    expect(await obState()).to.deep.equal(expected);
    // Not an assertion: the figure for the closing note (includes daemon start-up and lease taking).
    process.stderr.write(
      `      e2e: ${events.length} events in ${summary.records} records, all checkpointed ${elapsed.toFixed(1)} s after publishing began\n`,
    );
  });

  it('leaves Redis unchanged when the same replay is delivered again', async function () {
    const before = await obState();
    const summary = await publish(events, 'concat');
    await waitForCheckpoints(summary, 120_000);
    expect(await obState()).to.deep.equal(before);
  });

  it('dead-letters a poison record with its sequence number and keeps the shard moving', async function () {
    const kinesis = createKinesisClient({
      region: pipeline.config.aws.region,
      endpoint: pipeline.config.aws.kinesis.endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const stream = pipeline.config.aws.kinesis.streams.trade;
    const poison = await kinesis.send(
      new PutRecordCommand({
        StreamName: stream,
        PartitionKey: 'BTCUSDT',
        Data: Buffer.from('definitely not an SBE frame'),
      }),
    );
    const more = [...simulate({ seed: 42, symbols: SYMBOLS, startTimeUs: 1_760_000_000_000_000n }, 7000)];
    const summary = await publish(more.slice(events.length), 'single');
    await waitForCheckpoints(summary, 120_000);
    const letters = await pipeline.redis.xrange(`dlq:{${stream}}`, '-', '+');
    expect(letters).to.have.length(1);
    const flat = letters[0]![1];
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
    expect(fields.sequence_number).to.equal(poison.SequenceNumber);
    expect(fields.shard).to.equal(poison.ShardId);
    expect(fields.error_code).to.equal('SCHEMA_MISMATCH');
    expect(await pipeline.redis.hgetall(`dlq:{${stream}}:counts`)).to.deep.equal({ SCHEMA_MISMATCH: '1' });
    expect(await obState()).to.deep.equal(await referenceState(pipeline.stack.redisPort, more));
  });

  it('leaves Redis unchanged when a restarted daemon redelivers everything from TRIM_HORIZON', async function () {
    const before = await obState();
    const deadLetters = await pipeline.redis.xlen(`dlq:{${pipeline.config.aws.kinesis.streams.trade}}`);
    await pipeline.daemon('trade').stop();
    // Rewind every trade shard's checkpoint as if nothing had been processed: the restarted daemon delivers
    // all records again, KPL sub-records included.
    const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint);
    const table = applicationName(pipeline.config, 'trade');
    for (const lease of await readLeases(dynamo, table)) {
      await dynamo.send(
        new UpdateItemCommand({
          TableName: table,
          Key: { leaseKey: { S: lease.shardId } },
          UpdateExpression: 'SET #c = :c, checkpointSubSequenceNumber = :z REMOVE leaseOwner',
          ExpressionAttributeNames: { '#c': 'checkpoint' },
          ExpressionAttributeValues: { ':c': { S: 'TRIM_HORIZON' }, ':z': { N: '0' } },
        }),
      );
    }
    // The old worker is gone: nothing may write the checkpoints back before the new one starts.
    const rewound = (await readLeases(dynamo, table)).map((l) => l.checkpoint);
    dynamo.destroy();
    expect(rewound).to.deep.equal(['TRIM_HORIZON', 'TRIM_HORIZON']);
    const logOffset = processorLogSize(pipeline);
    pipeline.startDaemon('trade', 'worker-trade-2');
    await waitForCheckpoints({ shards: latest }, 150_000);
    // The redelivery really happened: the new processors handled every trade frame published so far again.
    // ('batch stored' is logged after the checkpoint was recorded, hence the wait for the log.)
    const tradeStream = pipeline.config.aws.kinesis.streams.trade;
    const isTrade = (e: ProcessorLogEntry) => e.stream === tradeStream;
    const log = await waitForProcessorLog(
      pipeline,
      logOffset,
      (entries) => framesStored(entries, isTrade) >= tradeEventsPublished,
      10_000,
    );
    expect(framesStored(log, isTrade)).to.equal(tradeEventsPublished);
    expect(await obState()).to.deep.equal(before);
    expect(await pipeline.redis.xlen(`dlq:{${pipeline.config.aws.kinesis.streams.trade}}`)).to.equal(
      deadLetters,
    );
  });
});
