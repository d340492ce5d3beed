import type { Logger } from '../logging/logger';
import { LogRateLimiter } from '../logging/rate-limit';
import type { SbeMessage } from '../sbe/messages';
import { walkFrames, type FrameWalkItem } from '../sbe/decoder';
import { SbeDecodeError } from '../sbe/errors';
import {
  DEFAULT_MAX_FUTURE_SKEW_MS,
  validateMessage,
  type ValidationClock,
  type ValidationFailure,
} from '../events/validate';
import { groupEvents, type FrameOrigin, type SourcedEvent, type SymbolEvents } from '../state/batch';
import { deadLetterOf, type ContainedFailure, type DeadLetter, type WriteResult } from '../state/writer';
import { backoffDelay } from '../common/retry';

// The per-shard record processor, free of the MultiLang protocol so it can be tested directly. For each batch:
//   1. walk every record's frames (src/sbe walkFrames): a frame that does not decode is dead-lettered, alone when
//      its extent is known, else with the rest of its record; the frames before it (and after it) still count;
//   2. validate every decoded event (src/events/validate.ts): an impossible one is dead-lettered under its code;
//   3. events of symbols outside processing.symbols are skipped and counted (policy `skip`) or kept (`apply`);
//   4. write the rest to Redis (the writer contains a failure of one symbol's calls: it dead-letters those events);
//   5. only then checkpoint the batch's last record.
// No record, however impossible, stops the shard: only a Redis that never acknowledges does (no checkpoint).

export interface InputRecord {
  readonly data: string;
  readonly partitionKey: string;
  readonly sequenceNumber: string;
  readonly subSequenceNumber?: number | undefined;
  readonly approximateArrivalTimestamp?: number | undefined;
}

/**
 * Sends a checkpoint and resolves with the daemon's error name, or null when it was recorded. The sub-sequence
 * number (> 0 for a user record of a KPL aggregate) makes KCL skip the aggregate's sub-records up to it when the
 * shard is picked up again; without it KCL redelivers sub-records 1..n of the checkpointed aggregate.
 */
export type CheckpointFn = (
  sequenceNumber: string | null,
  subSequenceNumber?: number,
) => Promise<string | null>;

/** The position of a record in its shard: the sequence number and, inside a KPL aggregate, the sub-record. */
export interface RecordPosition {
  readonly sequenceNumber: string;
  readonly subSequenceNumber: number;
}

export interface BatchWriter {
  write(groups: Iterable<SymbolEvents>, deadLetters: readonly DeadLetter[]): Promise<WriteResult>;
}

export interface BatchReport {
  readonly shardId: string;
  readonly records: number;
  /** Frames decoded (valid or not). */
  readonly frames: number;
  /** Dead letters of the batch: undecodable frames, events failing validation, contained failures. */
  readonly deadLetters: number;
  /** Dead letters of the batch per error code. */
  readonly deadLetterCodes: Readonly<Record<string, number>>;
  /** Events of symbols outside processing.symbols, per symbol: skipped (policy `skip`) or applied (`apply`). */
  readonly unlistedSymbols: Readonly<Record<string, number>>;
  readonly unlistedAction: 'skipped' | 'applied';
  /** Events written, per symbol (after validation and the symbol policy). */
  readonly eventsBySymbol: Readonly<Record<string, number>>;
  readonly millisBehindLatest: number | undefined;
  /** Redis write of the batch, retries included. */
  readonly writeMs: number;
  /** Decode + validate + group + write: the processor's own time for the batch (checkpoint excluded). */
  readonly handleMs: number;
  readonly result: WriteResult;
  readonly checkpointed: string | undefined;
}

/** What happens to events of symbols outside processing.symbols. */
export interface SymbolPolicy {
  readonly listed: ReadonlySet<string>;
  readonly unlisted: 'skip' | 'apply';
}

export interface ShardProcessorOptions {
  readonly stream: string;
  /** Walks one record's frames (default: src/sbe walkFrames). */
  readonly walk?: (data: Buffer) => FrameWalkItem[];
  readonly writer: BatchWriter;
  /** Writes the batch, retrying as the writer's policy allows; rejects when the batch cannot be stored. */
  readonly writeWithRetry: (write: () => Promise<WriteResult>) => Promise<WriteResult>;
  readonly logger: Logger;
  /** processing.max_future_skew_ms (default 5000) and the clock validation compares event times with. */
  readonly maxFutureSkewMs?: number;
  readonly nowMs?: () => number;
  /** processing.symbols and processing.unlisted_symbols (default: every symbol applied). */
  readonly symbols?: SymbolPolicy;
  /** Interval of the rate-limited log lines (dead letters, skipped symbols), per code and symbol. */
  readonly logIntervalMs?: number;
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

/** The events of a batch that passed decoding, validation and the symbol policy, and what did not. */
export interface PreparedBatch {
  readonly events: SourcedEvent[];
  readonly deadLetters: DeadLetter[];
  readonly frames: number;
  /** Events of unlisted symbols per symbol (skipped or kept, as the policy says). */
  readonly unlistedSymbols: Record<string, number>;
}

/** Error names of a checkpoint reply that mean "try again"; ShutdownException means the lease is gone. */
const RETRYABLE_CHECKPOINT_ERRORS = new Set([
  'ThrottlingException',
  'InvalidStateException',
  'KinesisClientLibDependencyException',
]);

/** What the frames of one record share (one object per record, not per frame: this runs for every event). */
interface RecordSource {
  readonly stream: string;
  readonly shardId: string;
  readonly record: InputRecord;
  readonly data: Buffer;
}

/** The origin of a frame: its record and its bytes [start, end) in it. */
class RecordFrame implements FrameOrigin {
  constructor(
    private readonly source: RecordSource,
    readonly frameIndex: number,
    private readonly start: number,
    private readonly end: number,
  ) {}

  get stream(): string {
    return this.source.stream;
  }
  get shardId(): string {
    return this.source.shardId;
  }
  get sequenceNumber(): string {
    return this.source.record.sequenceNumber;
  }
  get subSequenceNumber(): number {
    return this.source.record.subSequenceNumber ?? 0;
  }
  get partitionKey(): string {
    return this.source.record.partitionKey;
  }
  get approximateArrivalTimestamp(): number | undefined {
    return this.source.record.approximateArrivalTimestamp;
  }

  frameBase64(): string {
    const { record, data } = this.source;
    if (this.start === 0 && this.end === data.length) return record.data;
    return data.subarray(this.start, this.end).toString('base64');
  }
}

/** An error of our own code met while reading a record, as a decode error coded UNEXPECTED. */
function unexpected(err: unknown): SbeDecodeError {
  const message = err instanceof Error ? err.message : String(err);
  return new SbeDecodeError('UNEXPECTED', 0, 'record', message);
}

/** The symbol a dead letter names: unknown when the symbol itself was the problem. */
function symbolOf(message: SbeMessage, failure: ValidationFailure): string | undefined {
  return failure.code === 'INVALID_SYMBOL' ? undefined : message.symbol;
}

export class ShardProcessor {
  private shardId = 'unknown-shard';
  private leaseLost = false;
  /** The last record of the last batch Redis acknowledged, and whether the daemon recorded it as checkpoint. */
  private stored: RecordPosition | undefined;
  private storedCheckpointed = true;

  private readonly logLimiter: LogRateLimiter;

  constructor(private readonly options: ShardProcessorOptions) {
    this.logLimiter = new LogRateLimiter(options.logIntervalMs ?? 60_000);
  }

  initialize(shardId: string, startingSequenceNumber: string | undefined): void {
    this.shardId = shardId;
    this.options.onInitialize?.(shardId);
    this.options.logger.info('shard processor initialized', { shard: shardId, startingSequenceNumber });
  }

  /**
   * Walks, validates and filters the records' frames (steps 1-3). Every frame ends as an event to write, a dead
   * letter, or a skipped event of an unlisted symbol: nothing is dropped silently.
   */
  prepare(records: readonly InputRecord[]): PreparedBatch {
    const walk = this.options.walk ?? walkFrames;
    const clock: ValidationClock = {
      nowUs: BigInt(Math.trunc((this.options.nowMs ?? Date.now)())) * 1000n,
      maxFutureSkewUs: BigInt(this.options.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS) * 1000n,
    };
    const policy = this.options.symbols;
    const events: SourcedEvent[] = [];
    const deadLetters: DeadLetter[] = [];
    const unlistedSymbols: Record<string, number> = {};
    const reject = (
      origin: RecordFrame,
      code: string,
      error: string,
      symbol: string | undefined,
      failure?: ValidationFailure,
    ): void => {
      const letter = deadLetterOf(origin, code, error, symbol);
      deadLetters.push(letter);
      this.logRejected(letter, failure);
    };
    let frames = 0;
    for (const record of records) {
      const data = Buffer.from(record.data, 'base64');
      const source: RecordSource = { stream: this.options.stream, shardId: this.shardId, record, data };
      let items: FrameWalkItem[];
      try {
        items = walk(data);
      } catch (err) {
        // Not a decode error but a bug of the walk itself: the record is kept whole, the shard goes on.
        items = [{ ok: false, error: unexpected(err), start: 0, end: data.length }];
      }
      for (const [frameIndex, item] of items.entries()) {
        const origin = new RecordFrame(source, frameIndex, item.start, item.end);
        if (!item.ok) {
          reject(origin, item.error.code, item.error.message, undefined);
          continue;
        }
        frames++;
        const message = item.frame.message;
        let failure: ValidationFailure | undefined;
        try {
          failure = validateMessage(message, clock);
        } catch (err) {
          reject(origin, 'UNEXPECTED', unexpected(err).message, undefined);
          continue;
        }
        if (failure !== undefined) {
          reject(origin, failure.code, failure.message, symbolOf(message, failure), failure);
          continue;
        }
        if (policy !== undefined && !policy.listed.has(message.symbol)) {
          unlistedSymbols[message.symbol] = (unlistedSymbols[message.symbol] ?? 0) + 1;
          this.logUnlisted(message.symbol, policy.unlisted);
          if (policy.unlisted === 'skip') continue;
        }
        events.push({ message, origin });
      }
    }
    return { events, deadLetters, frames, unlistedSymbols };
  }

  /** One warn line per error code and symbol per interval, with the count of the ones not logged. */
  private logRejected(letter: DeadLetter, failure?: ValidationFailure): void {
    const line = this.logLimiter.hit(`dead:${letter.errorCode}:${letter.symbol ?? ''}`);
    if (line === undefined) return;
    this.options.logger.warn('frame dead-lettered', {
      shard: this.shardId,
      errorCode: letter.errorCode,
      symbol: letter.symbol,
      field: failure?.field,
      error: letter.error,
      sequenceNumber: letter.sequenceNumber,
      subSequenceNumber: letter.subSequenceNumber,
      frameIndex: letter.frameIndex,
      occurrences: line.occurrences,
    });
  }

  private logUnlisted(symbol: string, policy: 'skip' | 'apply'): void {
    const line = this.logLimiter.hit(`unlisted:${symbol}`);
    if (line === undefined) return;
    this.options.logger.warn(
      policy === 'skip'
        ? 'events of a symbol outside processing.symbols skipped'
        : 'events of a symbol outside processing.symbols applied',
      { shard: this.shardId, symbol, occurrences: line.occurrences },
    );
  }

  private logContained(failures: readonly ContainedFailure[]): void {
    for (const f of failures) {
      // Never rate-limited away entirely: one line per code and symbol per interval, at error (a bug or a
      // broken key, not bad data).
      const line = this.logLimiter.hit(`contained:${f.code}:${f.symbol}:${f.kind}`);
      if (line === undefined) continue;
      this.options.logger.error("a symbol's script call failed; its events of the batch were dead-lettered", {
        shard: this.shardId,
        symbol: f.symbol,
        kind: f.kind,
        errorCode: f.code,
        error: f.error,
        events: f.events,
        firstSequenceNumber: f.context?.sequenceNumber,
        lastSequenceNumber: f.context?.lastSequenceNumber,
        occurrences: line.occurrences,
      });
    }
  }

  /** Stores the batch, then checkpoints its last record. Rejects (no checkpoint) if Redis never acknowledged. */
  async processRecords(
    records: readonly InputRecord[],
    millisBehindLatest: number | undefined,
    checkpoint: CheckpointFn,
  ): Promise<BatchReport> {
    const received = process.hrtime.bigint();
    const prepared = this.prepare(records);
    const groups = [...groupEvents(prepared.events).values()];
    const started = process.hrtime.bigint();
    const result = await this.options.writeWithRetry(() =>
      this.options.writer.write(groups, prepared.deadLetters),
    );
    this.logContained(result.contained);
    this.reportIntegrity(result);
    const written = process.hrtime.bigint();
    const writeMs = Number(written - started) / 1e6;
    const handleMs = Number(written - received) / 1e6;

    const last = records[records.length - 1];
    let checkpointed: string | undefined;
    if (last !== undefined) {
      this.stored = { sequenceNumber: last.sequenceNumber, subSequenceNumber: last.subSequenceNumber ?? 0 };
      this.storedCheckpointed = false;
      if (!this.leaseLost && (await this.checkpointWithRetry(checkpoint, this.stored))) {
        checkpointed = last.sequenceNumber;
        this.storedCheckpointed = true;
      }
    }
    const allDeadLetters = [...prepared.deadLetters, ...result.containedDeadLetters];
    const eventsBySymbol: Record<string, number> = {};
    for (const group of groups) {
      const failed = new Set(result.contained.filter((f) => f.symbol === group.symbol).map((f) => f.kind));
      const written =
        (failed.has('trades') ? 0 : group.trades.length) +
        (failed.has('bestBidAsks') ? 0 : group.bestBidAsks.length) +
        (failed.has('depth') ? 0 : group.depth.length);
      if (written > 0) eventsBySymbol[group.symbol] = written;
    }
    const report: BatchReport = {
      shardId: this.shardId,
      records: records.length,
      frames: prepared.frames,
      deadLetters: allDeadLetters.length,
      deadLetterCodes: countCodes(allDeadLetters),
      unlistedSymbols: prepared.unlistedSymbols,
      unlistedAction: this.options.symbols?.unlisted === 'skip' ? 'skipped' : 'applied',
      eventsBySymbol,
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

  /**
   * A planned hand-off (deploy, scale-in, Ctrl-C): the daemon asks before it gives the lease up. Every batch it
   * delivered was stored before its status (else the child exited), so checkpointing the last stored record here
   * means the next owner starts exactly after it: nothing is redelivered. That checkpoint normally exists already
   * (each batch checkpoints); it is sent again because a batch's checkpoint may have failed (throttled past its
   * retries), and because KCL's graceful lease hand-off waits for a checkpoint in this call.
   */
  async onShutdownRequested(checkpoint: CheckpointFn): Promise<void> {
    const stored = this.stored;
    if (this.leaseLost || stored === undefined) {
      this.options.logger.info('shutdown requested; no record delivered to checkpoint', {
        shard: this.shardId,
      });
      return;
    }
    const wasPending = !this.storedCheckpointed;
    const recorded = await this.checkpointWithRetry(checkpoint, stored);
    if (recorded) this.storedCheckpointed = true;
    this.options.logger.info('shutdown requested; checkpointed the last stored record', {
      shard: this.shardId,
      sequenceNumber: stored.sequenceNumber,
      subSequenceNumber: stored.subSequenceNumber,
      recorded,
      wasPending,
    });
  }

  /** Everything already written was checkpointed after its batch; nothing is pending here. */
  onLeaseLost(): void {
    this.leaseLost = true;
    this.options.logger.info('lease lost', { shard: this.shardId });
  }

  /** Returns true when the checkpoint was recorded. Failures are not fatal: the state is idempotent. */
  private async checkpointWithRetry(
    checkpoint: CheckpointFn,
    position: RecordPosition | null,
  ): Promise<boolean> {
    const retries = this.options.checkpointRetries ?? 5;
    const sleep = this.options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const sequenceNumber = position?.sequenceNumber ?? null;
    const subSequenceNumber = position?.subSequenceNumber;
    for (let attempt = 1; ; attempt++) {
      const error =
        position === null ? await checkpoint(null) : await checkpoint(sequenceNumber, subSequenceNumber);
      if (error === null) return true;
      const context = { shard: this.shardId, sequenceNumber, subSequenceNumber, error, attempt };
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
