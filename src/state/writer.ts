import type { Keys } from './keys';
import type { RedisClient } from './redis';
import { applyMarketBatchArgs, type SymbolBatch } from './batch';

// Writes one processRecords batch: one script call per symbol plus the batch's dead letters, issued
// together (ioredis auto-pipelining puts them in one round trip per node). Every call is idempotent, so the
// whole write may be retried after a partial failure.

export interface DeadLetter {
  readonly stream: string;
  readonly shardId: string;
  readonly sequenceNumber: string;
  readonly subSequenceNumber: number;
  readonly partitionKey: string;
  readonly errorCode: string;
  readonly error: string;
  readonly dataBase64: string;
  readonly approximateArrivalTimestamp: number | undefined;
}

export interface WriteResult {
  readonly tradesApplied: number;
  readonly bestBidAsksApplied: number;
  readonly depthSnapshotsApplied: number;
  readonly deadLettersAdded: number;
}

/** Dead-letter markers outlive any redelivery window (Kinesis retention is at most 365 days; 7 is ours). */
const DEAD_LETTER_MARKER_TTL_SECONDS = 7 * 24 * 3600;

export class StateWriter {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: Keys,
    private readonly deadLetterMaxLen: number,
  ) {}

  async write(batches: Iterable<SymbolBatch>, deadLetters: readonly DeadLetter[]): Promise<WriteResult> {
    const applies = [...batches].map((batch) =>
      this.client.applyMarketBatch(this.keys.orderBook(batch.symbol), ...applyMarketBatchArgs(batch)),
    );
    const letters = deadLetters.map((letter) =>
      this.client.deadLetter(
        this.keys.deadLetters(letter.stream),
        this.keys.deadLetterSeen(
          letter.stream,
          letter.shardId,
          letter.sequenceNumber,
          letter.subSequenceNumber,
        ),
        this.keys.deadLetterCounts(letter.stream),
        String(this.deadLetterMaxLen),
        String(DEAD_LETTER_MARKER_TTL_SECONDS),
        letter.errorCode,
        'shard',
        letter.shardId,
        'sequence_number',
        letter.sequenceNumber,
        'sub_sequence_number',
        String(letter.subSequenceNumber),
        'partition_key',
        letter.partitionKey,
        'error',
        letter.error,
        'data_base64',
        letter.dataBase64,
        'arrival_ms',
        letter.approximateArrivalTimestamp === undefined ? '' : String(letter.approximateArrivalTimestamp),
      ),
    );
    const [applied, added] = await Promise.all([Promise.all(applies), Promise.all(letters)]);
    let tradesApplied = 0;
    let bestBidAsksApplied = 0;
    let depthSnapshotsApplied = 0;
    for (const [trade, bba, depth] of applied) {
      tradesApplied += trade;
      bestBidAsksApplied += bba;
      depthSnapshotsApplied += depth;
    }
    return {
      tradesApplied,
      bestBidAsksApplied,
      depthSnapshotsApplied,
      deadLettersAdded: added.reduce((a, b) => a + b, 0),
    };
  }
}
