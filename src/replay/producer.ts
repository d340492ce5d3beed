import { AggregatorError } from '../common/errors';
import { backoffDelay } from '../common/retry';
import { MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL, type PutRecordsFn } from '../kinesis/put-records';
import { encodeMessage } from '../sbe/encoder';
import type { SbeMessage } from '../sbe/messages';
import { Aggregator, DEFAULT_AGGREGATE_BYTES, KINESIS_MAX_RECORD_BYTES } from './kpl';
import type { SimulatedEvent, SimulatedStream } from './simulator';
import { eventTimeUs } from './wall-clock';

// Publishes SBE events to the three Kinesis streams with PutRecords.
//
// Each event is encoded to one SBE frame and packed per (stream, symbol) according to the record mode:
//   kpl    (default) KPL aggregated records, one frame per user record: the KCL daemon de-aggregates them;
//   concat several frames back to back in one plain record (the consumer walks frames by their lengths);
//   single one frame per record (the most Kinesis records, for comparison).
// The partition key is the symbol, so one symbol's events stay on one shard, in order. Each stream has one
// PutRecords in flight at a time (that keeps the per-shard order); the three streams proceed in parallel.
// A partial failure retries only the failed entries, with bounded exponential backoff. Kinesis does not keep the
// order of a retried entry relative to later entries of the same call that succeeded: consumers detect that by
// ids (trade id, book update id), as they must for any gap. Call-level errors are retried by the SDK client.
// With notBeforeEventTime an event is held until the wall clock reaches its time: processors dead-letter events
// dated too far ahead of their clock (FUTURE_TIME), so a simulated source must never get ahead of it.

export type RecordMode = 'kpl' | 'concat' | 'single';
export const RECORD_MODES: readonly RecordMode[] = ['kpl', 'concat', 'single'];
export const STREAMS: readonly SimulatedStream[] = ['trade', 'bestbidask', 'depth'];

// The PutRecords primitives (limits, client) are the service's (src/kinesis/put-records.ts): the dead-letter
// re-drive uses them too.
export {
  createKinesisClient,
  MAX_BYTES_PER_CALL,
  MAX_RECORDS_PER_CALL,
  putRecordsWith,
  type KinesisTarget,
  type PutRecordsFn,
} from '../kinesis/put-records';

export interface RetryOptions {
  /** Attempts per batch including the first (default 8). */
  readonly maxAttempts?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

export interface ProducerOptions {
  /** Kinesis stream name per event stream. */
  readonly streams: Readonly<Record<SimulatedStream, string>>;
  readonly putRecords: PutRecordsFn;
  readonly recordMode?: RecordMode;
  /** Budget of one Kinesis record in kpl/concat mode (default 100 KiB; at most 1 MiB). */
  readonly maxRecordBytes?: number;
  /** Longest wall time an event waits for its record/batch to fill before it is sent anyway (default 200 ms). */
  readonly lingerMs?: number;
  /** Events per second; 0 or absent = as fast as possible. */
  readonly eventsPerSecond?: number;
  readonly maxEvents?: number;
  readonly durationMs?: number;
  readonly retry?: RetryOptions;
  /** Where the progress line goes (at most once per progressIntervalMs); none when absent. */
  readonly progress?: { write(text: string): unknown };
  readonly progressIntervalMs?: number;
  /** Stops publishing (what was accepted is still flushed). */
  readonly signal?: AbortSignal;
  /**
   * Never publish an event before its own time (see eventTimeUs): an event ahead of the wall clock is held until
   * the clock reaches it, and publishing pauses meanwhile. One held when publishing stops is not published.
   */
  readonly notBeforeEventTime?: boolean;
  /** The wall clock event times are held to, ms since the epoch (default Date.now). Injected for tests. */
  readonly wallClockMs?: () => number;
  /** Injected for tests (a monotonic clock, ms). */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly encode?: (message: SbeMessage) => Buffer;
  /**
   * Called with the SBE frames of each record PutRecords acknowledged (in the order the acknowledgements come), per
   * Kinesis stream name: what a Firehose delivery stream reading that stream would deliver (the archive).
   */
  readonly onAcknowledged?: (streamName: string, frames: readonly Buffer[]) => void;
}

export interface ShardReport {
  records: number;
  firstSequenceNumber: string;
  lastSequenceNumber: string;
}

export type StopReason = 'source-end' | 'max-events' | 'duration' | 'signal' | 'error';

export interface PublishSummary {
  recordMode: RecordMode;
  /** Events accepted and sent. */
  events: number;
  eventsPerStream: Record<SimulatedStream, number>;
  /** Sum of the SBE frame sizes. */
  frameBytes: number;
  /** Kinesis records written (after retries). */
  records: number;
  recordsPerStream: Record<SimulatedStream, number>;
  /** Sum of the Kinesis records' data sizes. */
  recordBytes: number;
  putRecordsCalls: number;
  /** Entries re-sent after a partial failure. */
  retriedEntries: number;
  elapsedMs: number;
  eventsPerSecond: number;
  stoppedBy: StopReason;
  /** Kinesis stream name -> shard id -> what it received. */
  shards: Record<string, Record<string, ShardReport>>;
}

/** A PutRecords batch that kept failing, or a call that failed outright. */
export class PutRecordsError extends AggregatorError {
  constructor(
    readonly streamName: string,
    readonly failedRecords: number,
    readonly attempts: number,
    message: string,
  ) {
    super(message, { code: 'PUT_RECORDS', context: { streamName, failedRecords, attempts } });
    this.name = 'PutRecordsError';
  }
}

/** Publishing stopped on an error; `summary` tells what had been sent (everything before the failing event). */
export class PublishAbortedError extends AggregatorError {
  constructor(
    override readonly cause: unknown,
    readonly summary: PublishSummary,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { code: 'PUBLISH_ABORTED', cause });
    this.name = 'PublishAbortedError';
  }
}

// ---------------------------------------------------------------------------------------------------------------

interface Entry {
  readonly data: Buffer;
  /** The SBE frames the record carries, in order. */
  readonly frames: readonly Buffer[];
  readonly partitionKey: string;
  /** data + partition key bytes: what counts toward the 5 MiB per call. */
  readonly size: number;
}

function entry(payload: Payload, partitionKey: string): Entry {
  return {
    data: payload.data,
    frames: payload.frames,
    partitionKey,
    size: payload.data.length + Buffer.byteLength(partitionKey, 'utf8'),
  };
}

/** A Kinesis record's data and the frames in it. */
interface Payload {
  readonly data: Buffer;
  readonly frames: readonly Buffer[];
}

/** Turns frames of one (stream, symbol) into Kinesis record payloads according to the mode. */
interface Packer {
  /** Returns a payload that had to be closed (kpl/concat) or the frame's own record (single). */
  add(frame: Buffer): Payload | undefined;
  flush(): Payload | undefined;
}

function makePacker(mode: RecordMode, partitionKey: string, maxBytes: number): Packer {
  switch (mode) {
    case 'single':
      return { add: (frame) => ({ data: frame, frames: [frame] }), flush: () => undefined };
    case 'kpl': {
      const agg = new Aggregator({ maxBytes });
      // The frames in the aggregate being built (the Aggregator closes it before adding the frame that overflows).
      let inAggregate: Buffer[] = [];
      return {
        add: (frame) => {
          const closed = agg.add({ partitionKey, data: frame });
          let out: Payload | undefined;
          if (closed !== undefined) {
            out = { data: closed.data, frames: inAggregate };
            inAggregate = [];
          }
          inAggregate.push(frame);
          return out;
        },
        flush: () => {
          const closed = agg.flush();
          const frames = inAggregate;
          inAggregate = [];
          return closed === undefined ? undefined : { data: closed.data, frames };
        },
      };
    }
    case 'concat': {
      let frames: Buffer[] = [];
      let size = 0;
      const flush = (): Payload | undefined => {
        if (frames.length === 0) return undefined;
        const out = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames, size);
        const payload = { data: out, frames };
        frames = [];
        size = 0;
        return payload;
      };
      return {
        add: (frame) => {
          if (frame.length > KINESIS_MAX_RECORD_BYTES)
            throw new RangeError(`an SBE frame of ${frame.length} bytes`);
          const closed = size + frame.length > maxBytes ? flush() : undefined;
          frames.push(frame);
          size += frame.length;
          return closed;
        },
        flush,
      };
    }
  }
}

/** Sends one stream's records in PutRecords batches, one call in flight, retrying failed entries. */
class StreamSender {
  private pending: Entry[] = [];
  private pendingBytes = 0;
  private running: Promise<void> | undefined;
  private forced = false;
  private failure: Error | undefined;
  records = 0;
  recordBytes = 0;
  calls = 0;
  retried = 0;
  readonly shards: Record<string, ShardReport> = {};

  constructor(
    readonly streamName: string,
    private readonly put: PutRecordsFn,
    private readonly retry: Required<RetryOptions>,
    private readonly sleep: (ms: number) => Promise<void>,
    private readonly onAcknowledged?: (streamName: string, frames: readonly Buffer[]) => void,
  ) {}

  get backlog(): number {
    return this.pending.length;
  }

  get backlogBytes(): number {
    return this.pendingBytes;
  }

  /** Waits for the call in flight (if any) to settle; never throws. */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }

  enqueue(e: Entry): void {
    this.pending.push(e);
    this.pendingBytes += e.size;
    this.kick();
  }

  /** Also send a partial batch (linger expired or the end). */
  force(): void {
    this.forced = true;
    this.kick();
  }

  private batchReady(): boolean {
    if (this.pending.length === 0) return false;
    return (
      this.forced || this.pending.length >= MAX_RECORDS_PER_CALL || this.pendingBytes >= MAX_BYTES_PER_CALL
    );
  }

  private kick(): void {
    if (this.running !== undefined || this.failure !== undefined || !this.batchReady()) return;
    this.running = this.drain()
      .catch((err: unknown) => {
        this.failure = err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  private async drain(): Promise<void> {
    while (this.batchReady()) {
      let bytes = 0;
      let n = 0;
      while (n < this.pending.length && n < MAX_RECORDS_PER_CALL) {
        const size = (this.pending[n] as Entry).size;
        if (n > 0 && bytes + size > MAX_BYTES_PER_CALL) break;
        bytes += size;
        n++;
      }
      const batch = this.pending.splice(0, n);
      this.pendingBytes -= bytes;
      if (this.pending.length === 0) this.forced = false;
      await this.send(batch);
    }
  }

  /** Throws a stored failure; waits while the backlog exceeds `records` records or `bytes` bytes. */
  async waitBelow(records: number, bytes: number): Promise<void> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if ((this.pending.length <= records && this.pendingBytes <= bytes) || this.running === undefined)
        return;
      await this.running;
    }
  }

  throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Sends everything pending and waits for it. */
  async finish(): Promise<void> {
    this.force();
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.running === undefined) {
        if (this.pending.length === 0) return;
        this.force();
        if (this.running === undefined) return;
      }
      await this.running;
    }
  }

  private async send(batch: Entry[]): Promise<void> {
    let todo = batch;
    for (let attempt = 1; ; attempt++) {
      this.calls++;
      let out: Awaited<ReturnType<PutRecordsFn>>;
      try {
        out = await this.put({
          StreamName: this.streamName,
          Records: todo.map((e) => ({ Data: e.data, PartitionKey: e.partitionKey })),
        });
      } catch (err) {
        const e = err as Error;
        throw new PutRecordsError(
          this.streamName,
          todo.length,
          attempt,
          `PutRecords to stream ${this.streamName} failed (${todo.length} records): ${e.name}: ${e.message}`,
        );
      }
      const results = out.Records ?? [];
      if (results.length !== todo.length) {
        throw new PutRecordsError(
          this.streamName,
          todo.length,
          attempt,
          `PutRecords to stream ${this.streamName}: ${results.length} results for ${todo.length} records`,
        );
      }
      const failed: Entry[] = [];
      const codes = new Map<string, number>();
      let sample = '';
      results.forEach((r, i) => {
        const e = todo[i] as Entry;
        if (r.ErrorCode !== undefined && r.ErrorCode !== null && r.ErrorCode !== '') {
          failed.push(e);
          codes.set(r.ErrorCode, (codes.get(r.ErrorCode) ?? 0) + 1);
          if (sample === '') sample = r.ErrorMessage ?? '';
          return;
        }
        this.records++;
        this.recordBytes += e.data.length;
        this.onAcknowledged?.(this.streamName, e.frames);
        const shardId = r.ShardId ?? 'unknown';
        const seq = r.SequenceNumber ?? '';
        const shard = this.shards[shardId];
        if (shard === undefined)
          this.shards[shardId] = { records: 1, firstSequenceNumber: seq, lastSequenceNumber: seq };
        else {
          shard.records++;
          shard.lastSequenceNumber = seq;
        }
      });
      if (failed.length === 0) return;
      if (attempt >= this.retry.maxAttempts) {
        const summary = [...codes].map(([code, n]) => `${code} x${n}`).join(', ');
        throw new PutRecordsError(
          this.streamName,
          failed.length,
          attempt,
          `PutRecords to stream ${this.streamName}: ${failed.length} of ${batch.length} records still failing after ` +
            `${attempt} attempts (${summary}${sample === '' ? '' : `; e.g. ${sample}`})`,
        );
      }
      this.retried += failed.length;
      await this.sleep(backoffDelay(attempt, this.retry.baseDelayMs, this.retry.maxDelayMs));
      todo = failed;
    }
  }
}

function isPromise<T>(value: unknown): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const defaultNow = (): number => performance.now();

function validate(opts: ProducerOptions): void {
  const mode = opts.recordMode ?? 'kpl';
  if (!RECORD_MODES.includes(mode))
    throw new RangeError(`recordMode must be one of ${RECORD_MODES.join('|')}`);
  const budget = opts.maxRecordBytes ?? DEFAULT_AGGREGATE_BYTES;
  if (!(Number.isInteger(budget) && budget >= 1024 && budget <= KINESIS_MAX_RECORD_BYTES)) {
    throw new RangeError(
      `maxRecordBytes must be an integer in 1024..${KINESIS_MAX_RECORD_BYTES}, got ${budget}`,
    );
  }
  const rate = opts.eventsPerSecond ?? 0;
  if (!(rate >= 0 && Number.isFinite(rate)))
    throw new RangeError(`eventsPerSecond must be >= 0, got ${rate}`);
  if (opts.maxEvents !== undefined && !(Number.isInteger(opts.maxEvents) && opts.maxEvents >= 0)) {
    throw new RangeError(`maxEvents must be a non-negative integer, got ${opts.maxEvents}`);
  }
  if (opts.durationMs !== undefined && !(opts.durationMs > 0)) {
    throw new RangeError(`durationMs must be > 0, got ${opts.durationMs}`);
  }
}

/**
 * Publishes events from `source` (sync or async iterable) until it ends, maxEvents, durationMs or the signal.
 * Resolves with the summary; rejects with PublishAbortedError (carrying the summary of what was sent) when the
 * source throws or Kinesis keeps failing. Writes nothing but the progress line (to opts.progress).
 */
export async function publishEvents(
  source: Iterable<SimulatedEvent> | AsyncIterable<SimulatedEvent>,
  opts: ProducerOptions,
): Promise<PublishSummary> {
  validate(opts);
  const mode = opts.recordMode ?? 'kpl';
  const budget = opts.maxRecordBytes ?? DEFAULT_AGGREGATE_BYTES;
  const rate = opts.eventsPerSecond ?? 0;
  const now = opts.now ?? defaultNow;
  const sleep = opts.sleep ?? defaultSleep;
  const wallClockMs = opts.wallClockMs ?? Date.now;
  const encode = opts.encode ?? encodeMessage;
  const lingerMs = opts.lingerMs ?? 200;
  const progressEvery = opts.progressIntervalMs ?? 1000;
  const retry: Required<RetryOptions> = {
    maxAttempts: opts.retry?.maxAttempts ?? 8,
    baseDelayMs: opts.retry?.baseDelayMs ?? 100,
    maxDelayMs: opts.retry?.maxDelayMs ?? 5000,
  };
  const senders = {
    trade: new StreamSender(opts.streams.trade, opts.putRecords, retry, sleep, opts.onAcknowledged),
    bestbidask: new StreamSender(opts.streams.bestbidask, opts.putRecords, retry, sleep, opts.onAcknowledged),
    depth: new StreamSender(opts.streams.depth, opts.putRecords, retry, sleep, opts.onAcknowledged),
  };
  const packers = new Map<string, { packer: Packer; sender: StreamSender; partitionKey: string }>();
  const eventsPerStream: Record<SimulatedStream, number> = { trade: 0, bestbidask: 0, depth: 0 };
  let events = 0;
  let frameBytes = 0;

  const start = now();
  let lastFlush = start;
  let lastProgress = start;
  let stoppedBy: StopReason = 'source-end';
  // Backpressure: at most ~2 full batches waiting per stream.
  const highWater = 2 * MAX_RECORDS_PER_CALL;
  const highWaterBytes = 2 * MAX_BYTES_PER_CALL;

  const flushPackers = (): void => {
    for (const p of packers.values()) {
      const data = p.packer.flush();
      if (data !== undefined) p.sender.enqueue(entry(data, p.partitionKey));
    }
    for (const s of Object.values(senders)) s.force();
  };

  const summary = (): PublishSummary => {
    const elapsedMs = now() - start;
    const shards: Record<string, Record<string, ShardReport>> = {};
    for (const s of Object.values(senders)) shards[s.streamName] = s.shards;
    return {
      recordMode: mode,
      events,
      eventsPerStream: { ...eventsPerStream },
      frameBytes,
      records: senders.trade.records + senders.bestbidask.records + senders.depth.records,
      recordsPerStream: {
        trade: senders.trade.records,
        bestbidask: senders.bestbidask.records,
        depth: senders.depth.records,
      },
      recordBytes: senders.trade.recordBytes + senders.bestbidask.recordBytes + senders.depth.recordBytes,
      putRecordsCalls: senders.trade.calls + senders.bestbidask.calls + senders.depth.calls,
      retriedEntries: senders.trade.retried + senders.bestbidask.retried + senders.depth.retried,
      elapsedMs: Math.round(elapsedMs),
      eventsPerSecond: elapsedMs > 0 ? Math.round((events * 1000) / elapsedMs) : 0,
      stoppedBy,
      shards,
    };
  };

  const progressLine = (t: number): void => {
    if (opts.progress === undefined) return;
    const s = summary();
    const rateNow = t > start ? Math.round((events * 1000) / (t - start)) : 0;
    opts.progress.write(
      `replay: ${events} events (trade ${eventsPerStream.trade}, bestbidask ${eventsPerStream.bestbidask}, ` +
        `depth ${eventsPerStream.depth}), ${s.records} records, ${rateNow} events/s\n`,
    );
  };

  const iterator: Iterator<SimulatedEvent> | AsyncIterator<SimulatedEvent> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();

  let sourceError: unknown;
  // The event taken from the source and not yet published (it may be waiting for its time).
  let held: SimulatedEvent | undefined;
  try {
    for (;;) {
      if (opts.maxEvents !== undefined && events >= opts.maxEvents) {
        stoppedBy = 'max-events';
        break;
      }
      if (opts.signal?.aborted === true) {
        stoppedBy = 'signal';
        break;
      }
      const t = now();
      // Checked before every event and after every sleep (pacing or holding), so the linger bound holds.
      if (t - lastFlush >= lingerMs) {
        lastFlush = t;
        flushPackers();
      }
      if (t - lastProgress >= progressEvery) {
        lastProgress = t;
        progressLine(t);
      }
      if (opts.durationMs !== undefined && t - start >= opts.durationMs) {
        stoppedBy = 'duration';
        break;
      }
      // Sleeps are capped by the linger so that flushes, limits and the signal are re-checked in time.
      const cap = Math.min(lingerMs, opts.durationMs === undefined ? Infinity : start + opts.durationMs - t);
      if (rate > 0) {
        const due = start + (events * 1000) / rate;
        if (due > t) {
          await sleep(Math.min(due - t, cap));
          continue;
        }
      }
      if (held === undefined) {
        let step: IteratorResult<SimulatedEvent>;
        try {
          const r = iterator.next();
          step = isPromise<IteratorResult<SimulatedEvent>>(r) ? await r : r;
        } catch (err) {
          sourceError = err;
          stoppedBy = 'error';
          break;
        }
        if (step.done === true) break;
        held = step.value;
      }
      if (opts.notBeforeEventTime === true) {
        const aheadMs = Number(eventTimeUs(held.message)) / 1000 - wallClockMs();
        if (aheadMs > 0) {
          await sleep(Math.min(aheadMs, cap));
          continue;
        }
      }
      const ev = held;
      held = undefined;
      const frame = encode(ev.message);
      const key = `${ev.stream}\u0000${ev.message.symbol}`;
      let p = packers.get(key);
      if (p === undefined) {
        p = {
          packer: makePacker(mode, ev.message.symbol, budget),
          sender: senders[ev.stream],
          partitionKey: ev.message.symbol,
        };
        packers.set(key, p);
      }
      const closed = p.packer.add(frame);
      if (closed !== undefined) p.sender.enqueue(entry(closed, p.partitionKey));
      events++;
      eventsPerStream[ev.stream]++;
      frameBytes += frame.length;

      if (p.sender.backlog > highWater || p.sender.backlogBytes > highWaterBytes) {
        await p.sender.waitBelow(MAX_RECORDS_PER_CALL, MAX_BYTES_PER_CALL);
      } else if ((events & 1023) === 0) {
        // A synchronous source never yields: let responses in, and surface a failed stream early.
        await yieldToEventLoop();
        p.sender.throwIfFailed();
      }
    }
    flushPackers();
    await Promise.all(Object.values(senders).map((s) => s.finish()));
  } catch (err) {
    stoppedBy = 'error';
    // Let the other streams' calls in flight settle so the summary is accurate.
    await Promise.all(Object.values(senders).map((s) => s.idle()));
    throw new PublishAbortedError(err, summary());
  } finally {
    if (sourceError === undefined) {
      const ret = (iterator as { return?: () => unknown }).return;
      if (ret !== undefined) {
        try {
          const r = ret.call(iterator);
          if (isPromise(r)) await r;
        } catch {
          // closing the source is best effort
        }
      }
    }
  }
  if (sourceError !== undefined) throw new PublishAbortedError(sourceError, summary());
  const final = summary();
  progressLine(now());
  return final;
}
