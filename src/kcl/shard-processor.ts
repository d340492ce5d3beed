import type { Logger } from '../logging/logger';
import type { DecodedFrame, SbeMessage } from '../sbe/messages';
import { SbeDecodeError } from '../sbe/errors';
import { groupBySymbol, type SymbolEvents } from '../state/batch';
import type { DeadLetter, WriteResult } from '../state/writer';
import { backoffDelay } from '../state/retry';

// The per-shard record processor, free of the MultiLang protocol so it can be tested directly:
// decode every record (one or more SBE frames), write the batch to Redis, and only then checkpoint.
// A record that does not decode is dead-lettered in the same write and skipped; it never blocks the shard.

export interface InputRecord {
  readonly data: string;
  readonly partitionKey: string;
  readonly sequenceNumber: string;
  readonly subSequenceNumber?: number | undefined;
  readonly approximateArrivalTimestamp?: number | undefined;
}

/** Sends a checkpoint and resolves with the daemon's error name, or null when it was recorded. */
export type CheckpointFn = (sequenceNumber: string | null) => Promise<string | null>;

export interface BatchWriter {
  write(groups: Iterable<SymbolEvents>, deadLetters: readonly DeadLetter[]): Promise<WriteResult>;
}

export interface BatchReport {
  readonly shardId: string;
  readonly records: number;
  readonly frames: number;
  readonly deadLetters: number;
  /** Dead letters of the batch per error code. */
  readonly deadLetterCodes: Readonly<Record<string, number>>;
  readonly millisBehindLatest: number | undefined;
  /** Redis write of the batch, retries included. */
  readonly writeMs: number;
  /** Decode + group + write: the processor's own time for the batch (checkpoint excluded). */
  readonly handleMs: number;
  readonly result: WriteResult;
  readonly checkpointed: string | undefined;
}

export interface ShardProcessorOptions {
  readonly stream: string;
  readonly decode: (data: Buffer) => DecodedFrame[];
  readonly writer: BatchWriter;
  /** Writes the batch, retrying as the writer's policy allows; rejects when the batch cannot be stored. */
  readonly writeWithRetry: (write: () => Promise<WriteResult>) => Promise<WriteResult>;
  readonly logger: Logger;
  readonly checkpointRetries?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly onBatch?: (report: BatchReport) => void;
  readonly onInitialize?: (shardId: string) => void;
  /**
   * A symbol's state can no longer be trusted (trade-id gap, depth gap, crossed book): the caller queues a
   * re-anchor request. Called after the batch was stored; must not throw (the batch is checkpointed anyway).
   */
  readonly onIntegrityIssue?: (issue: IntegrityIssue) => void;
}

export interface IntegrityIssue {
  readonly symbol: string;
  readonly reason: 'trade_gap' | 'depth_gap' | 'crossed';
  readonly detail: string;
}

function countCodes(deadLetters: readonly DeadLetter[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const letter of deadLetters) counts[letter.errorCode] = (counts[letter.errorCode] ?? 0) + 1;
  return counts;
}

/** Error names of a checkpoint reply that mean "try again"; ShutdownException means the lease is gone. */
const RETRYABLE_CHECKPOINT_ERRORS = new Set([
  'ThrottlingException',
  'InvalidStateException',
  'KinesisClientLibDependencyException',
]);

export class ShardProcessor {
  private shardId = 'unknown-shard';
  private leaseLost = false;

  constructor(private readonly options: ShardProcessorOptions) {}

  initialize(shardId: string, startingSequenceNumber: string | undefined): void {
    this.shardId = shardId;
    this.options.onInitialize?.(shardId);
    this.options.logger.info('shard processor initialized', { shard: shardId, startingSequenceNumber });
  }

  /** Decodes records; undecodable ones become dead letters carrying their sequence number and the error. */
  decodeRecords(records: readonly InputRecord[]): {
    messages: SbeMessage[];
    deadLetters: DeadLetter[];
    frames: number;
  } {
    const messages: SbeMessage[] = [];
    const deadLetters: DeadLetter[] = [];
    for (const record of records) {
      try {
        const frames = this.options.decode(Buffer.from(record.data, 'base64'));
        for (const frame of frames) messages.push(frame.message);
      } catch (err) {
        const code = err instanceof SbeDecodeError ? err.code : 'UNEXPECTED';
        const letter: DeadLetter = {
          stream: this.options.stream,
          shardId: this.shardId,
          sequenceNumber: record.sequenceNumber,
          subSequenceNumber: record.subSequenceNumber ?? 0,
          partitionKey: record.partitionKey,
          errorCode: code,
          error: err instanceof Error ? err.message : String(err),
          dataBase64: record.data,
          approximateArrivalTimestamp: record.approximateArrivalTimestamp,
        };
        deadLetters.push(letter);
        this.options.logger.warn('poison record dead-lettered', {
          shard: this.shardId,
          sequenceNumber: record.sequenceNumber,
          subSequenceNumber: letter.subSequenceNumber,
          errorCode: code,
          error: letter.error,
        });
      }
    }
    return { messages, deadLetters, frames: messages.length };
  }

  /** Stores the batch, then checkpoints its last record. Rejects (no checkpoint) if Redis never acknowledged. */
  async processRecords(
    records: readonly InputRecord[],
    millisBehindLatest: number | undefined,
    checkpoint: CheckpointFn,
  ): Promise<BatchReport> {
    const received = process.hrtime.bigint();
    const { messages, deadLetters, frames } = this.decodeRecords(records);
    const groups = [...groupBySymbol(messages).values()];
    const started = process.hrtime.bigint();
    const result = await this.options.writeWithRetry(() => this.options.writer.write(groups, deadLetters));
    this.reportIntegrity(result);
    const written = process.hrtime.bigint();
    const writeMs = Number(written - started) / 1e6;
    const handleMs = Number(written - received) / 1e6;

    const last = records[records.length - 1];
    let checkpointed: string | undefined;
    if (last !== undefined && !this.leaseLost) {
      checkpointed = (await this.checkpointWithRetry(checkpoint, last.sequenceNumber))
        ? last.sequenceNumber
        : undefined;
    }
    const report: BatchReport = {
      shardId: this.shardId,
      records: records.length,
      frames,
      deadLetters: deadLetters.length,
      deadLetterCodes: countCodes(deadLetters),
      millisBehindLatest,
      writeMs,
      handleMs,
      result,
      checkpointed,
    };
    this.options.onBatch?.(report);
    return report;
  }

  /** Trade-id gaps, depth gaps, crossed books and buffer overflows are logged with their symbol (and counted
   * in the symbol's state keys by the scripts); the first three are handed to onIntegrityIssue (re-anchor). */
  private reportIntegrity(result: WriteResult): void {
    const logger = this.options.logger;
    const issue = (value: IntegrityIssue): void => {
      try {
        this.options.onIntegrityIssue?.(value);
      } catch (err) {
        logger.error('could not report an integrity issue', {
          ...value,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    };
    for (const r of result.symbols) {
      for (const gap of r.trades?.gaps ?? []) {
        logger.warn('trade id gap', {
          shard: this.shardId,
          symbol: r.symbol,
          missingFrom: gap.from.toString(),
          missingTo: gap.to.toString(),
        });
      }
      const firstGap = r.trades?.gaps[0];
      if (firstGap !== undefined) {
        issue({
          symbol: r.symbol,
          reason: 'trade_gap',
          detail: `trade ids ${firstGap.from}..${firstGap.to} missing`,
        });
      }
      const depth = r.depth;
      if (depth?.gap) {
        logger.warn('depth update id gap: book out of sync', {
          shard: this.shardId,
          symbol: r.symbol,
          bookUpdateId: depth.bookUpdateId?.toString(),
        });
        issue({ symbol: r.symbol, reason: 'depth_gap', detail: `book id ${depth.bookUpdateId ?? ''}` });
      }
      if (depth?.crossed) {
        logger.warn('crossed book after update: book out of sync', { shard: this.shardId, symbol: r.symbol });
        issue({ symbol: r.symbol, reason: 'crossed', detail: `book id ${depth.bookUpdateId ?? ''}` });
      }
      if (depth !== undefined && depth.overflow > 0) {
        // A book never anchored overflows its buffer continuously until a re-anchor runs: not news.
        const level = depth.reason === 'no_snapshot' ? 'debug' : 'warn';
        logger.log(level, 'diff buffer full: oldest buffered diffs dropped', {
          shard: this.shardId,
          symbol: r.symbol,
          dropped: depth.overflow,
        });
      }
    }
  }

  /** At shard end the daemon requires a checkpoint at SHARD_END (null) before the status. */
  async shardEnded(checkpoint: CheckpointFn): Promise<void> {
    this.options.logger.info('shard ended', { shard: this.shardId });
    await this.checkpointWithRetry(checkpoint, null);
  }

  /** Everything already written was checkpointed after its batch; nothing is pending here. */
  onLeaseLost(): void {
    this.leaseLost = true;
    this.options.logger.info('lease lost', { shard: this.shardId });
  }

  onShutdownRequested(): void {
    this.options.logger.info('shutdown requested', { shard: this.shardId });
  }

  /** Returns true when the checkpoint was recorded. Failures are not fatal: the state is idempotent. */
  private async checkpointWithRetry(
    checkpoint: CheckpointFn,
    sequenceNumber: string | null,
  ): Promise<boolean> {
    const retries = this.options.checkpointRetries ?? 5;
    const sleep = this.options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    for (let attempt = 1; ; attempt++) {
      const error = await checkpoint(sequenceNumber);
      if (error === null) return true;
      const context = { shard: this.shardId, sequenceNumber, error, attempt };
      if (error === 'ShutdownException') {
        this.leaseLost = true;
        this.options.logger.warn('checkpoint refused: lease no longer held', context);
        return false;
      }
      if (!RETRYABLE_CHECKPOINT_ERRORS.has(error) || attempt > retries) {
        this.options.logger.error('checkpoint failed; the next batch will checkpoint past it', context);
        return false;
      }
      this.options.logger.warn('checkpoint failed; retrying', context);
      await sleep(backoffDelay(attempt, 100, 2000));
    }
  }
}
