import Redis from 'ioredis';
import { applicationName, parseConfig, STREAM_KINDS } from '../../src/config/config';
import { createDynamoClient, readLeases } from '../../src/ops/leases';
import {
  createKinesisClient,
  publishEvents,
  putRecordsWith,
  type PublishSummary,
  type RecordMode,
} from '../../src/replay/producer';
import type { SimulatedEvent } from '../../src/replay/simulator';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';
import type { Pipeline } from './pipeline';
import { waitUntil } from './pipeline';
import { snapshotKeys, snapshotStateKeys, type KeySnapshot } from './redis-snapshot';

// "Nothing lost, nothing applied twice" for tests against the real pipeline: what every published event
// should leave in Redis (computed in process, in another database of the same server), the pipeline's
// market state to compare it with, and a wait for every shard's checkpoint to reach the last record
// published to it.

export interface ReferenceOptions {
  /** processing.order_book_levels of the pipeline (the test pipeline's default is 10). */
  readonly orderBookLevels?: number;
  /** processing.diff_buffer_max_length (default 1000). */
  readonly diffBufferMaxLength?: number;
  /** The database the reference is written to (flushed first); must not be the pipeline's (0). */
  readonly db?: number;
}

/**
 * The state the given events leave when written once, in order, by StateWriter. The pipeline (daemons,
 * batching, KPL, redelivery, restarts) must not change what the state scripts compute; the scripts
 * themselves are proven against independent references in the book-*.test.ts files and trades.test.ts.
 */
export async function referenceState(
  port: number,
  events: readonly SimulatedEvent[],
  options: ReferenceOptions = {},
): Promise<KeySnapshot> {
  const db = options.db ?? 1;
  if (db === 0) throw new Error('the reference must not be written to the pipeline database 0');
  const client = createRedisClient(parseConfig({ redis: { port, db } }).redis, {
    connectionName: 'reference',
  });
  const reader = new Redis({ port, db });
  try {
    await reader.flushdb();
    // Stream by stream, as the daemons deliver them (each stream is in order on its shards).
    for (const stream of ['trade', 'bestbidask', 'depth'] as const) {
      const messages = events.filter((e) => e.stream === stream).map((e) => e.message);
      await new StateWriter(client, new Keys({ clusterMode: false }), {
        orderBookLevels: options.orderBookLevels ?? 10,
        diffBufferMaxLength: options.diffBufferMaxLength ?? 1000,
        deadLetterMaxLen: 1000,
      }).write(groupBySymbol(messages).values(), []);
    }
    return await snapshotKeys(reader);
  } finally {
    client.disconnect();
    reader.disconnect();
  }
}

/** The pipeline's market state: every key of database 0 but the dead letters and the telemetry. */
export function pipelineState(pipeline: Pipeline): Promise<KeySnapshot> {
  return snapshotStateKeys(pipeline.redis);
}

export type ShardPositions = PublishSummary['shards'];

/** Shards whose lease checkpoint is not yet the last sequence number published to them ("" when none). */
export async function checkpointsBehind(pipeline: Pipeline, published: ShardPositions): Promise<string[]> {
  const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint);
  try {
    const missing: string[] = [];
    for (const kind of STREAM_KINDS) {
      const stream = pipeline.config.aws.kinesis.streams[kind];
      const shards = Object.entries(published[stream] ?? {});
      if (shards.length === 0) continue;
      const leases = await readLeases(dynamo, applicationName(pipeline.config, kind)).catch(() => []);
      for (const [shardId, report] of shards) {
        const lease = leases.find((l) => l.shardId === shardId);
        if (lease?.checkpoint !== report.lastSequenceNumber)
          missing.push(`${stream}/${shardId}: ${lease?.checkpoint ?? 'no lease'}`);
      }
    }
    return missing;
  } finally {
    dynamo.destroy();
  }
}

/** Waits until every shard's lease checkpoint is the last sequence number published to it. */
export async function waitForCheckpoints(
  pipeline: Pipeline,
  published: ShardPositions,
  timeoutMs: number,
): Promise<void> {
  await waitUntil(
    async () => (await checkpointsBehind(pipeline, published)).length === 0,
    timeoutMs,
    'checkpoints at the last published record',
    async () => (await checkpointsBehind(pipeline, published)).join('; '),
  );
}

/** Publishes to the pipeline's streams and remembers every event and every shard's last sequence number. */
export class PipelinePublisher {
  readonly events: SimulatedEvent[] = [];
  readonly latest: ShardPositions = {};
  private readonly kinesis;

  constructor(private readonly pipeline: Pipeline) {
    this.kinesis = createKinesisClient({
      region: pipeline.config.aws.region,
      endpoint: pipeline.config.aws.kinesis.endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
  }

  async publish(events: readonly SimulatedEvent[], mode: RecordMode = 'kpl'): Promise<PublishSummary> {
    const summary = await publishEvents(events, {
      streams: this.pipeline.config.aws.kinesis.streams,
      putRecords: putRecordsWith(this.kinesis),
      recordMode: mode,
    });
    this.events.push(...events);
    for (const [stream, shards] of Object.entries(summary.shards)) {
      this.latest[stream] = { ...this.latest[stream], ...shards };
    }
    return summary;
  }

  /** Waits for every checkpoint, then returns [pipeline state, reference over every event published]. */
  async settle(timeoutMs: number, options?: ReferenceOptions): Promise<[KeySnapshot, KeySnapshot]> {
    await waitForCheckpoints(this.pipeline, this.latest, timeoutMs);
    return [
      await pipelineState(this.pipeline),
      await referenceState(this.pipeline.stack.redisPort, this.events, options),
    ];
  }

  close(): void {
    this.kinesis.destroy();
  }
}
