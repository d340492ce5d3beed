import type { PriceLevel } from '../../sbe/messages';

// The order book's options and the typed results of its script calls (src/state/book.ts).

/** Diffs kept while out of sync, per symbol, unless the options say otherwise (20 s of 20 ms diffs). */
export const DEFAULT_BUFFER_MAX_LENGTH = 1000;

export interface BookOptions {
  /** Levels per side written to ob:<SYMBOL> (processing.order_book_levels), 1..20. */
  readonly levels: number;
  /** Bound of book:<S>:buffer in diffs (default DEFAULT_BUFFER_MAX_LENGTH). */
  readonly bufferMaxLength?: number;
}

export type BookStatus = 'in_sync' | 'out_of_sync';
export type BookReason = '' | 'no_snapshot' | 'gap' | 'crossed';

export interface DepthBatchResult {
  /** Diffs of this call applied to the full book. */
  readonly applied: number;
  /** Diffs ignored: already applied or buffered (u <= book id, or <= the last buffered u), e.g. redeliveries. */
  readonly ignored: number;
  /** Diffs appended to the buffer without being applied (the book was, or went, out of sync). */
  readonly buffered: number;
  /** Diffs applied AND appended to the buffer, for the swap to replay (in sync while reanchor:<S> exists). */
  readonly kept: number;
  /** This call detected a gap (U > book id + 1) and took the book out of sync. */
  readonly gap: boolean;
  /** This call left the book crossed (best bid >= best ask) and took it out of sync. */
  readonly crossed: boolean;
  /** Buffered or kept diffs dropped by the bound in this call (a re-anchor then needs a newer snapshot). */
  readonly overflow: number;
  readonly status: BookStatus;
  readonly reason: BookReason;
  /** Id of the full book; undefined before the first anchor. */
  readonly bookUpdateId: bigint | undefined;
  readonly bufferLength: number;
  /** Where the ob: levels written by this call came from (undefined: levels unchanged). */
  readonly levelsSource: 'book' | 'depth20' | undefined;
  /** The batch's newest depth20 snapshot was newer than the last one applied. */
  readonly depth20Applied: boolean;
  /** best_bid/best_ask/spread/mid_price were rewritten. */
  readonly bestWritten: boolean;
  /** Script calls issued (bounded chunks, plus the full-form resends of refused net-form calls). */
  readonly calls: number;
  /** Net-form calls the script refused and that were sent again in the full form. */
  readonly resent: number;
  /** The next batch of this symbol should go in the full form (the book is out of sync or being re-anchored). */
  readonly fullFormNext: boolean;
}

export interface BestBidAskResult {
  /** The batch's newest bestBidAsk was newer than the last one applied (0 events: false). */
  readonly applied: boolean;
  /** ...and newer than the best bid/ask in ob: (which a depth source may have set from a newer update id). */
  readonly bestWritten: boolean;
}

export type AnchorOutcome = 'anchored' | 'noop' | 'too_old' | 'buffer_gap' | 'crossed';

export interface AnchorResult {
  /** The script's code: 1 anchored, 0 no-op, -1 too old, -2 buffer gap, -3 crossed (see anchor-book-11.lua). */
  readonly code: 1 | 0 | -1 | -2 | -3;
  readonly outcome: AnchorOutcome;
  /** Book id after the call (undefined: never anchored). */
  readonly bookUpdateId: bigint | undefined;
  /** Buffered diffs replayed on the snapshot / dropped as covered by it (u <= lastUpdateId). */
  readonly diffsApplied: number;
  readonly diffsDropped: number;
  /** For too_old and buffer_gap: the smallest lastUpdateId of a snapshot that would anchor. */
  readonly neededLastUpdateId: bigint | undefined;
}

/** A REST depth snapshot (GET /api/v3/depth) as exact mantissas, like MarketSimulator.depthSnapshot(). */
export interface RestDepthSnapshot {
  readonly lastUpdateId: bigint;
  readonly priceExponent: number;
  readonly qtyExponent: number;
  /** Best first, as the exchange sends them (any order is accepted). */
  readonly bids: readonly PriceLevel[];
  readonly asks: readonly PriceLevel[];
  /** When it was taken or received, microseconds: book_ts_us / ts_us if no buffered diff follows it. */
  readonly timeUs: bigint;
}
