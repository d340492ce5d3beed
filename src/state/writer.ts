import type { Keys } from './keys';
import type { RedisClient } from './redis';
import type { EventKind, FrameOrigin, SymbolEvents } from './batch';
import { applyBestBidAskBatch, applyBookBatch, type BestBidAskResult, type DepthBatchResult } from './book';
import { classifyFailure, toContained, type ContainedCode } from './errors';
import type { ErrorContext } from '../common/errors';
import { applyTradeBatch, type TradeBatchResult } from './trades';

// Writes one processRecords batch: per symbol the bounded script calls of each kind of event (trades, best
// bid/ask, depth), plus the batch's dead letters, all issued together (ioredis auto-pipelining sends them in one
// round trip per node). Every call is idempotent, so the whole write may be retried after a partial failure.
//
// Containment: a failure that belongs to one symbol's calls of one kind (arguments refused, an error reply of the
// script such as CROSSSLOT or WRONGTYPE, an unreadable reply) dead-letters that symbol's events of that kind in the
// batch, each frame once, and the rest of the batch is written. Only failures of the connection (classifyFailure:
// retry or fatal) make write() reject, for the caller's retry policy.

export interface DeadLetter {
  readonly stream: string;
  readonly shardId: string;
  readonly sequenceNumber: string;
  readonly subSequenceNumber: number;
  /** Index of the frame in its record; a record that did not decode from its first frame on has index 0. */
  readonly frameIndex: number;
  readonly partitionKey: string;
  /** The event's symbol, when the frame decoded far enough to know it. */
  readonly symbol?: string | undefined;
  readonly errorCode: string;
  readonly error: string;
  /** The bytes dead-lettered: the frame (or, when the rest of the record could not be walked, the rest of it). */
  readonly dataBase64: string;
  readonly approximateArrivalTimestamp: number | undefined;
}

/** The dead letter of an event's frame. */
export function deadLetterOf(
  origin: FrameOrigin,
  errorCode: string,
  error: string,
  symbol: string | undefined,
): DeadLetter {
  return {
    stream: origin.stream,
    shardId: origin.shardId,
    sequenceNumber: origin.sequenceNumber,
    subSequenceNumber: origin.subSequenceNumber,
    frameIndex: origin.frameIndex,
    partitionKey: origin.partitionKey,
    symbol,
    errorCode,
    error,
    dataBase64: origin.frameBase64(),
    approximateArrivalTimestamp: origin.approximateArrivalTimestamp,
  };
}

/** One symbol's calls of one kind that could not succeed; their events were dead-lettered. */
export interface ContainedFailure {
  readonly symbol: string;
  readonly kind: EventKind;
  readonly code: ContainedCode;
  readonly error: string;
  /** Events of the batch of that symbol and kind. */
  readonly events: number;
  /** Where: symbol, kind, shard and the sequence numbers of the first and last record whose events the call had. */
  readonly context?: ErrorContext;
}

export interface SymbolWriteResult {
  readonly symbol: string;
  readonly trades: TradeBatchResult | undefined;
  readonly bestBidAsk: BestBidAskResult | undefined;
  readonly depth: DepthBatchResult | undefined;
}

export interface WriteResult {
  readonly symbols: readonly SymbolWriteResult[];
  /** Dead letters added to the streams (given and contained; redelivered ones are not added again). */
  readonly deadLettersAdded: number;
  readonly contained: readonly ContainedFailure[];
  /** The dead letters written for the contained failures (one per frame). */
  readonly containedDeadLetters: readonly DeadLetter[];
}

export interface StateWriterOptions {
  /** processing.order_book_levels */
  readonly orderBookLevels: number;
  /** Bound of each symbol's diff buffer (kept while its book is out of sync or a re-anchor of it runs). */
  readonly diffBufferMaxLength: number;
  /** Approximate cap of each dead-letter stream. */
  readonly deadLetterMaxLen: number;
}

/**
 * Trades per script call: a call holds Redis for ~2 us per trade plus ~100 us, so a 10,000-record poll is split
 * to keep every call well under a millisecond and inference reads unblocked (~0.6 ms at 250).
 */
export const MAX_TRADES_PER_CALL = 250;

/** Dead-letter markers outlive any redelivery window (Kinesis retention is at most 365 days; 7 is ours). */
const DEAD_LETTER_MARKER_TTL_SECONDS = 7 * 24 * 3600;

type Settled<T> = { readonly value: T | undefined } | { readonly failure: ContainedFailure };

export class StateWriter {
  /** Symbols whose last depth call found the book out of sync or a re-anchor keeping diffs. */
  private readonly depthFullForm = new Set<string>();

  constructor(
    private readonly client: RedisClient,
    private readonly keys: Keys,
    private readonly options: StateWriterOptions,
  ) {}

  /** Runs one symbol's calls of one kind; a contained failure becomes a value, anything else rejects. */
  private async settle<T>(group: SymbolEvents, kind: EventKind, run: () => Promise<T>): Promise<Settled<T>> {
    if (group[kind].length === 0) return { value: undefined };
    try {
      return { value: await run() };
    } catch (err) {
      if (classifyFailure(err) !== 'contained') throw err;
      // The call carried the events of several records: the first and last sequence numbers bound them.
      const origins = group.origins[kind];
      const contained = toContained(err, `${kind} of ${group.symbol}`, {
        symbol: group.symbol,
        kind,
        shard: origins[0]?.shardId,
        sequenceNumber: origins[0]?.sequenceNumber,
        lastSequenceNumber: origins.at(-1)?.sequenceNumber,
      });
      return {
        failure: {
          symbol: group.symbol,
          kind,
          code: contained.code,
          error: contained.message,
          events: group[kind].length,
          context: contained.context,
        },
      };
    }
  }

  private writeSymbol(group: SymbolEvents): Array<Promise<Settled<unknown>>> {
    const symbol = group.symbol;
    return [
      this.settle(group, 'trades', () =>
        applyTradeBatch(this.client, this.keys, symbol, group.trades, {
          maxTradesPerCall: MAX_TRADES_PER_CALL,
        }),
      ),
      this.settle(group, 'bestBidAsks', () =>
        applyBestBidAskBatch(this.client, this.keys, symbol, group.bestBidAsks),
      ),
      this.settle(group, 'depth', async () => {
        const result = await applyBookBatch(this.client, this.keys, symbol, group.depth, {
          levels: this.options.orderBookLevels,
          bufferMaxLength: this.options.diffBufferMaxLength,
          fullForm: this.depthFullForm.has(symbol),
        });
        if (result.fullFormNext) this.depthFullForm.add(symbol);
        else this.depthFullForm.delete(symbol);
        return result;
      }),
    ];
  }

  private deadLetter(letter: DeadLetter): Promise<number> {
    const fields = [
      'shard',
      letter.shardId,
      'sequence_number',
      letter.sequenceNumber,
      'sub_sequence_number',
      String(letter.subSequenceNumber),
      'frame_index',
      String(letter.frameIndex),
      'partition_key',
      letter.partitionKey,
      ...(letter.symbol === undefined ? [] : ['symbol', letter.symbol]),
      'error',
      letter.error,
      'data_base64',
      letter.dataBase64,
      'arrival_ms',
      letter.approximateArrivalTimestamp === undefined ? '' : String(letter.approximateArrivalTimestamp),
    ];
    return this.client.deadLetter(
      this.keys.deadLetters(letter.stream),
      this.keys.deadLetterSeen(
        letter.stream,
        letter.shardId,
        letter.sequenceNumber,
        letter.subSequenceNumber,
        letter.frameIndex,
      ),
      this.keys.deadLetterCounts(letter.stream),
      String(this.options.deadLetterMaxLen),
      String(DEAD_LETTER_MARKER_TTL_SECONDS),
      letter.errorCode,
      ...fields,
    );
  }

  /**
   * Writes the groups and the given dead letters; then dead-letters the events of every contained failure. Rejects
   * only with a failure of the connection (after every call of the attempt settled, so a retry never overlaps it).
   */
  async write(groups: Iterable<SymbolEvents>, deadLetters: readonly DeadLetter[]): Promise<WriteResult> {
    const list = [...groups];
    const calls = list.map((group) => this.writeSymbol(group));
    const letters = deadLetters.map((letter) => this.deadLetter(letter));
    const settled = await Promise.allSettled([...calls.flat(), ...letters]);
    const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (rejected !== undefined) throw rejected.reason;
    const values = settled.map((s) => (s as PromiseFulfilledResult<unknown>).value);

    const symbols: SymbolWriteResult[] = [];
    const contained: ContainedFailure[] = [];
    const containedDeadLetters: DeadLetter[] = [];
    list.forEach((group, i) => {
      const [trades, bestBidAsk, depth] = values.slice(3 * i, 3 * i + 3) as [
        Settled<TradeBatchResult>,
        Settled<BestBidAskResult>,
        Settled<DepthBatchResult>,
      ];
      for (const s of [trades, bestBidAsk, depth]) {
        if (!('failure' in s)) continue;
        contained.push(s.failure);
        for (const origin of group.origins[s.failure.kind]) {
          containedDeadLetters.push(deadLetterOf(origin, s.failure.code, s.failure.error, group.symbol));
        }
      }
      symbols.push({
        symbol: group.symbol,
        trades: 'value' in trades ? trades.value : undefined,
        bestBidAsk: 'value' in bestBidAsk ? bestBidAsk.value : undefined,
        depth: 'value' in depth ? depth.value : undefined,
      });
    });
    const given = values.slice(3 * list.length) as number[];
    const added = await Promise.all(containedDeadLetters.map((letter) => this.deadLetter(letter)));
    return {
      symbols,
      deadLettersAdded: [...given, ...added].reduce((a, b) => a + b, 0),
      contained,
      containedDeadLetters,
    };
  }
}
