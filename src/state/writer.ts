import type { Keys } from './keys';
import type { RedisClient } from './redis';
import type { SymbolEvents } from './batch';
import { applyBestBidAskBatch, applyBookBatch, type BestBidAskResult, type DepthBatchResult } from './book';
import { applyTradeBatch, type TradeBatchResult } from './trades';

// Writes one processRecords batch: per symbol one script call per kind of event (trades, best bid/ask,
// depth), plus the batch's dead letters, all issued together (ioredis auto-pipelining sends them in one
// round trip per node). Every call is idempotent, so the whole write may be retried after a partial failure.

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

export interface SymbolWriteResult {
  readonly symbol: string;
  readonly trades: TradeBatchResult | undefined;
  readonly bestBidAsk: BestBidAskResult | undefined;
  readonly depth: DepthBatchResult | undefined;
}

export interface WriteResult {
  readonly symbols: readonly SymbolWriteResult[];
  readonly deadLettersAdded: number;
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

export class StateWriter {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: Keys,
    private readonly options: StateWriterOptions,
  ) {}

  private async writeSymbol(group: SymbolEvents): Promise<SymbolWriteResult> {
    const bookOptions = {
      levels: this.options.orderBookLevels,
      bufferMaxLength: this.options.diffBufferMaxLength,
    };
    const [trades, bestBidAsk, depth] = await Promise.all([
      group.trades.length > 0
        ? applyTradeBatch(this.client, this.keys, group.symbol, group.trades, {
            maxTradesPerCall: MAX_TRADES_PER_CALL,
          })
        : undefined,
      group.bestBidAsks.length > 0
        ? applyBestBidAskBatch(this.client, this.keys, group.symbol, group.bestBidAsks)
        : undefined,
      group.depth.length > 0
        ? applyBookBatch(this.client, this.keys, group.symbol, group.depth, bookOptions)
        : undefined,
    ]);
    return { symbol: group.symbol, trades, bestBidAsk, depth };
  }

  private deadLetter(letter: DeadLetter): Promise<number> {
    return this.client.deadLetter(
      this.keys.deadLetters(letter.stream),
      this.keys.deadLetterSeen(
        letter.stream,
        letter.shardId,
        letter.sequenceNumber,
        letter.subSequenceNumber,
      ),
      this.keys.deadLetterCounts(letter.stream),
      String(this.options.deadLetterMaxLen),
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
    );
  }

  async write(groups: Iterable<SymbolEvents>, deadLetters: readonly DeadLetter[]): Promise<WriteResult> {
    const [symbols, added] = await Promise.all([
      Promise.all([...groups].map((group) => this.writeSymbol(group))),
      Promise.all(deadLetters.map((letter) => this.deadLetter(letter))),
    ]);
    return { symbols, deadLettersAdded: added.reduce((a, b) => a + b, 0) };
  }
}
