import fs from 'node:fs';
import { GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-kinesis';
import { applicationName, STREAM_KINDS, type StreamKind } from '../../src/config/config';
import { emulatorClient } from '../../src/dev/localstack/kinesis-mock';
import { createDynamoClient, readLeases } from '../../src/ops/leases';
import type { KeySnapshot } from './redis-snapshot';
import type { DaemonHandle, Pipeline } from './pipeline';
import type { ShardPositions } from './exactness';

// Tools of the stack fault tests: a supervisor that restarts a daemon that died (as ECS restarts an essential
// container), lease checkpoints compared with sequence numbers, the kinesis-mock data file checked for
// acknowledged records, and the processor log read from an offset.

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** "stream/shard" -> checkpoint (sequence number, TRIM_HORIZON, SHARD_END...) of every lease of the pipeline. */
export async function leaseCheckpoints(pipeline: Pipeline): Promise<Map<string, string | undefined>> {
  const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint);
  try {
    const out = new Map<string, string | undefined>();
    for (const kind of STREAM_KINDS) {
      const stream = pipeline.config.aws.kinesis.streams[kind];
      for (const lease of await readLeases(dynamo, applicationName(pipeline.config, kind)))
        out.set(`${stream}/${lease.shardId}`, lease.checkpoint);
    }
    return out;
  } finally {
    dynamo.destroy();
  }
}

/** True when a checkpoint is a sequence number at or past `sequenceNumber` (sentinels are not). Pure. */
export function checkpointReaches(checkpoint: string | undefined, sequenceNumber: string): boolean {
  if (checkpoint === undefined || !/^\d+$/.test(checkpoint)) return false;
  return BigInt(checkpoint) >= BigInt(sequenceNumber);
}

/**
 * Shards whose checkpoint reached the first record of `batch` (`stream/shard: checkpoint`). Used while a
 * dependency is down: a checkpoint there would claim records Redis never acknowledged. Pure.
 */
export function checkpointsInto(
  checkpoints: ReadonlyMap<string, string | undefined>,
  batch: Readonly<Record<string, Readonly<Record<string, { firstSequenceNumber: string }>>>>,
): string[] {
  const out: string[] = [];
  for (const [stream, shards] of Object.entries(batch)) {
    for (const [shardId, report] of Object.entries(shards)) {
      const checkpoint = checkpoints.get(`${stream}/${shardId}`);
      if (checkpointReaches(checkpoint, report.firstSequenceNumber))
        out.push(`${stream}/${shardId}: ${checkpoint ?? ''}`);
    }
  }
  return out;
}

/** Drops the keys only the sidecar writes (feature vectors and their leases, re-anchor state). Pure. */
export function withoutSidecarKeys(snapshot: KeySnapshot): KeySnapshot {
  return Object.fromEntries(
    Object.entries(snapshot).filter(([key]) => !key.startsWith('feat:') && !key.startsWith('reanchor:')),
  );
}

/**
 * Waits until kinesis-mock's data file parses and holds every shard's last acknowledged sequence number:
 * only then does a crash-restart keep every record (the emulator writes the file every few hundred ms).
 */
export async function waitForKinesisPersisted(
  dataFile: string,
  published: ShardPositions,
  timeoutMs: number,
): Promise<void> {
  const wanted = Object.values(published).flatMap((shards) =>
    Object.values(shards).map((r) => r.lastSequenceNumber),
  );
  const deadline = Date.now() + timeoutMs;
  let missing = wanted;
  for (;;) {
    try {
      const text = fs.readFileSync(dataFile, 'utf8');
      JSON.parse(text); // a file caught mid-write does not count
      missing = wanted.filter((seq) => !text.includes(`"SequenceNumber":"${seq}"`));
      if (missing.length === 0) return;
    } catch {
      // absent or being written
    }
    if (Date.now() > deadline) {
      throw new Error(
        `kinesis-mock did not persist ${missing.length} of ${wanted.length} records in ${timeoutMs} ms`,
      );
    }
    await sleep(50);
  }
}

/**
 * Shards of `published` whose last acknowledged record the emulator no longer serves (`stream/shard: why`):
 * read AT_SEQUENCE_NUMBER of that record. The file is a snapshot of the whole cache, so the last record
 * being there means every earlier one is too.
 */
export async function missingLastRecords(
  endpoint: string,
  region: string,
  published: ShardPositions,
): Promise<string[]> {
  const client = emulatorClient(endpoint, region);
  const missing: string[] = [];
  try {
    for (const [stream, shards] of Object.entries(published)) {
      for (const [shardId, report] of Object.entries(shards)) {
        try {
          const iterator = await client.send(
            new GetShardIteratorCommand({
              StreamName: stream,
              ShardId: shardId,
              ShardIteratorType: 'AT_SEQUENCE_NUMBER',
              StartingSequenceNumber: report.lastSequenceNumber,
            }),
          );
          const page = await client.send(
            new GetRecordsCommand({ ShardIterator: iterator.ShardIterator, Limit: 1 }),
          );
          const got = page.Records?.[0]?.SequenceNumber;
          if (got !== report.lastSequenceNumber)
            missing.push(`${stream}/${shardId}: got ${got ?? 'nothing'}`);
        } catch (err) {
          missing.push(`${stream}/${shardId}: ${(err as Error).name} ${(err as Error).message}`);
        }
      }
    }
    return missing;
  } finally {
    client.destroy();
  }
}

/** The last lines of a file, for failure messages. */
export function tailFile(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no file)';
  }
}

/**
 * Restarts a stream's daemon when it exits on its own, with the same worker id (it re-claims its leases at
 * once), after `delayMs` — what the container runtime does with an essential container. A processor that
 * cannot store a batch exits without acknowledging it, and the daemon then stops every shard: that is the
 * designed answer to a long Redis outage, and this is the restart it relies on.
 */
export class DaemonSupervisor {
  private stopped = false;
  private readonly restarts: Array<{ kind: StreamKind; atMs: number; code: number | null }> = [];
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly pipeline: Pipeline,
    private readonly delayMs = 1000,
  ) {}

  start(kind: StreamKind): DaemonHandle {
    const handle = this.pipeline.startDaemon(kind);
    handle.child.once('exit', (code) => {
      if (this.stopped) return;
      this.restarts.push({ kind, atMs: Date.now(), code });
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.stopped) this.start(kind);
      }, this.delayMs);
      this.timers.add(timer);
    });
    return handle;
  }

  /** Restarts since `sinceMs` (all when absent). */
  restartsSince(sinceMs = 0): Array<{ kind: StreamKind; atMs: number; code: number | null }> {
    return this.restarts.filter((r) => r.atMs >= sinceMs);
  }

  /** No more restarts (call before stopping the pipeline). */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
