import type { SbeMessage } from '../sbe/messages';
import { bookScriptError, type BookScript } from './errors';
import type { Keys } from './keys';
import type { RedisClient } from './redis';
import { anchorArgs, bestBidAskArgs, depthChunkArgs, type DepthCallForm } from './book/args';
import { checkOptions } from './book/checks';
import { planDepthCalls, type DepthCallLimits, type DepthChunk } from './book/plan';
import {
  isResendReply,
  readAnchorReply,
  readBestBidAskReply,
  readDepthReply,
  type DepthReply,
} from './book/reply';
import { anchorKeys, bestBidAskKeys, depthBatchKeys } from './book/scripts';
import type {
  AnchorResult,
  BestBidAskResult,
  BookOptions,
  DepthBatchResult,
  RestDepthSnapshot,
} from './book/types';

// The order-book hot state: the full diff-based book per symbol (Binance's sync procedure) and the live hash
// ob:<SYMBOL>, kept by three Lua scripts, one call per symbol per batch:
//   lua/apply-depth-batch-12.lua   a depth-stream batch: depth20 snapshots and depth diffs
//   lua/apply-best-bid-ask-5.lua   a bestBidAsk-stream batch
//   lua/anchor-book-11.lua         anchoring on a REST depth snapshot plus the diffs buffered while out of sync
// Their headers (and lua/includes/order-book.lua) hold the KEYS/ARGV layouts, the rules and the return codes.
// Each script ends with refresh_trade_windows (lua/includes/trade-windows.lua): the two batch scripts with the
// batch's newest event time, so the windows decay with the symbol's event time; the anchor without a time (a REST
// snapshot is no event), so vwap_minus_mid follows the new mid at once.
//
// ob:<SYMBOL> fields written here (prices, quantities and ids are exact decimal strings):
//   best_bid, best_bid_qty, best_ask, best_ask_qty   the newest best bid/ask of any source (bestBidAsk, depth20
//                                                    level 1, full book level 1), by book update id
//   spread = best_ask - best_bid, exact at the prices' scale
//   mid_price = (best_bid + best_ask) / 2, exact: one more decimal when needed ("60000.005")
//   ts_us, best_update_id                            event time (us) and book update id of those fields
//   bid1_p..bidN_p, bid1_q..bidN_q, ask1_p..askN_p, ask1_q..askN_q   top N levels (N = processing.order_book_levels)
//                                                    of the newest of: the full book (when in sync), the newest
//                                                    depth20 snapshot; "" where the source has fewer levels
//   book_update_id, book_ts_us                       book update id and event time of those levels
//   ob_imbalance = (sum of top-N bid qty - sum of top-N ask qty) / (sum of both), 0 when both are empty
//   bid_strength = sum over i = 1..N of bid_q_i / i,   ask_strength = sum over i = 1..N of ask_q_i / i
//                                                    (metrics: doubles written with %.17g, never NaN/inf;
//                                                    computed with the levels, from the same source)
//   bba_update_id, depth20_update_id, depth20_ts_us  the last bestBidAsk / depth20 snapshot applied
// (last_trade_price and the trade fields belong to the trades module.)
//
// The full book: book:<S>:bids / :asks (hash price -> qty), :bids:idx / :asks:idx (zset price by value),
// book:<S>:state (status in_sync | out_of_sync, reason no_snapshot | gap | crossed, book_update_id, counters) and
// book:<S>:buffer (diffs kept while out of sync, and while in sync when reanchor:<S> exists so that the re-anchor
// swap can replay them; bounded). Every script is idempotent: a redelivered batch, or
// any older one, leaves every key byte-identical (so diffs ignored as old are counted in the reply, not in Redis).
// Ids are compared as decimal strings in Lua (any int64); the zset scores and the crossed check use doubles,
// exact for prices of at most 15 significant digits (8 decimals below 10^7).
//
// Prices and quantities are written in their canonical form (src/events/canonical.ts: exactly 8 fraction digits)
// whatever exponent a message carries, so one price is one hash field and one sorted-set member, and a quantity-0
// diff at any exponent removes the level.
//
// Bounded calls: a symbol's depth batch is split into calls of at most MAX_DIFFS_PER_CALL diffs and
// MAX_LEVELS_PER_CALL levels (planDepthCalls), so no call holds Redis long whatever the batch size; the calls are
// sent one after the other in u order. A chunk whose diffs chain is first sent as its net effect alone ("net"
// form: a coalesced diff, U of the first, u of the last, last write per level wins); the script applies it only when
// the book is in sync, no re-anchor keeps diffs and the chunk bridges the book, else it writes nothing and asks for
// the "full" form (every diff's string too), which the writer then sends. A symbol whose book is out of sync or
// being re-anchored is sent the full form directly until a reply shows it in sync again.
//
// One concern per file under book/: types.ts (options and results), scripts.ts (the scripts' typed commands and
// KEYS), checks.ts and args.ts (ARGV, pure), plan.ts (bounded calls, pure), reply.ts (replies read into results),
// metrics.ts (the ob: derived fields as pure definitions); errors in ../errors.ts. This file makes the calls and is
// the module's public face: what callers use is exported here.

export * from './book/types';
export { anchorKeys, bestBidAskKeys, depthBatchKeys } from './book/scripts';
export { canonicalLevelString } from './book/checks';
export {
  anchorArgs,
  bestBidAskArgs,
  depthBatchArgs,
  depthChunkArgs,
  diffIds,
  encodeDiff,
  encodeTopLevels,
  netEffect,
  type DepthCallForm,
  type NetEffect,
} from './book/args';
export {
  callIsFull,
  DEFAULT_DEPTH_CALL_LIMITS,
  MAX_DIFFS_PER_CALL,
  MAX_LEVELS_PER_CALL,
  planDepthCalls,
  type DepthCallLimits,
  type DepthChunk,
} from './book/plan';
export { bookMetrics, decimalMid, decimalSpread, type BookMetrics } from './book/metrics';
export { BookArgumentError, BookScriptError } from './errors';

async function call(script: BookScript, symbol: string, run: () => Promise<unknown[]>): Promise<unknown[]> {
  try {
    return await run();
  } catch (err) {
    throw bookScriptError(script, symbol, err);
  }
}

/** Options of one symbol's depth batch (applyBookBatch). */
export interface BookBatchOptions extends BookOptions {
  /** Bounds of one call (default DEFAULT_DEPTH_CALL_LIMITS). */
  readonly limits?: DepthCallLimits;
  /**
   * Send every chunk in the full form at once: the caller knows the book was out of sync, or a re-anchor was keeping
   * diffs, at its last call (DepthBatchResult.fullFormNext), so the net form would only be refused.
   */
  readonly fullForm?: boolean;
}

/**
 * Applies one symbol's messages of a depth-stream batch (depth20 snapshots and depth diffs; other kinds are
 * skipped) in bounded calls (planDepthCalls), run by Redis in u order; the last call refreshes the symbol's trade
 * windows with the batch's newest event time. Chained chunks go in the net form first unless options.fullForm says
 * the book is out of sync or being re-anchored. The calls are sent together, and the refused net calls again in
 * the full form once they answered; only a batch with a full form of diffs behind a net form goes one call at a
 * time (a refused net call is then sent again in the full form, and every call after it in the full form at once).
 * The result sums the calls (applied, ignored, buffered, kept, overflow), ORs their flags and carries the book
 * state after the last call.
 */
export async function applyBookBatch(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  messages: readonly SbeMessage[],
  options: BookBatchOptions,
): Promise<DepthBatchResult> {
  checkOptions(symbol, options);
  const chunks = planDepthCalls(symbol, messages, options.limits);
  const scriptKeys = depthBatchKeys(keys, symbol);
  // Every call's first form is built before the first is sent: a chunk that cannot be encoded sends nothing. A full
  // form built later (after a refused net form) encodes diffs src/events/validate.ts accepted, which encode.
  let full = options.fullForm === true;
  const argsOf = (chunk: DepthChunk, form: DepthCallForm) => depthChunkArgs(symbol, chunk, options, form);
  const formOf = (chunk: DepthChunk): DepthCallForm =>
    !full && chunk.chained && chunk.diffs.length > 0 ? 'net' : 'full';
  const forms = chunks.map(formOf);
  const args = chunks.map((chunk, i) => argsOf(chunk, forms[i]!));
  const send = (argv: string[]) =>
    call('applyDepthBatch', symbol, () => client.applyDepthBatch(...scriptKeys, ...argv));
  const replies: unknown[][] = [];
  let resent = 0;
  const firstNet = forms.indexOf('net');
  const fullAfterNet =
    firstNet >= 0 && chunks.some((c, i) => i > firstNet && forms[i] === 'full' && c.diffs.length > 0);
  if (!fullAfterNet) {
    // All calls are sent at once (one round trip; the connection keeps their order and Redis runs them in it).
    // Full forms are applied by the script's rules exactly as if sent one by one. A refused net form (reply -1:
    // the book was not in sync, did not bridge, or a re-anchor keeps diffs) wrote nothing, and a later net form
    // applies only when it bridges the book's id, i.e. only when the refused call held nothing the book lacked;
    // so the refused calls, sent again in the full form in order, are applied, buffered or ignored as if every
    // call had gone one by one.
    replies.push(...(await Promise.all(args.map((argv) => send(argv)))));
    for (const [i, chunk] of chunks.entries()) {
      if (!isResendReply(replies[i]!)) continue;
      resent++;
      replies[i] = await send(argsOf(chunk, 'full'));
    }
  } else {
    // A full form with diffs behind a net form (a batch whose diffs do not chain): one call at a time, in u order.
    // Sent behind a refused net form, the full form would find the book short of the refused diffs: a false gap.
    for (const [i, chunk] of chunks.entries()) {
      let reply = await send(full && forms[i] === 'net' ? argsOf(chunk, 'full') : args[i]!);
      if (isResendReply(reply)) {
        full = true;
        resent++;
        reply = await send(argsOf(chunk, 'full'));
      }
      replies.push(reply);
    }
  }
  let total: DepthReply | undefined;
  for (const reply of replies) {
    const r = readDepthReply(symbol, reply);
    total =
      total === undefined
        ? r
        : {
            ...r,
            applied: total.applied + r.applied,
            ignored: total.ignored + r.ignored,
            buffered: total.buffered + r.buffered,
            kept: total.kept + r.kept,
            overflow: total.overflow + r.overflow,
            gap: total.gap || r.gap,
            crossed: total.crossed || r.crossed,
            levelsSource: r.levelsSource ?? total.levelsSource,
            depth20Applied: total.depth20Applied || r.depth20Applied,
            bestWritten: total.bestWritten || r.bestWritten,
          };
  }
  if (total === undefined) throw new Error('internal: a depth batch without a call');
  return {
    ...total,
    calls: replies.length + resent,
    resent,
    fullFormNext: total.status !== 'in_sync' || total.kept > 0,
  };
}

/** Applies the newest bestBidAsk of one symbol's batch and refreshes its trade windows (one script call). */
export async function applyBestBidAskBatch(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  messages: readonly SbeMessage[],
): Promise<BestBidAskResult> {
  const args = bestBidAskArgs(symbol, messages);
  const reply = await call('applyBestBidAsk', symbol, () =>
    client.applyBestBidAsk(...bestBidAskKeys(keys, symbol), ...args),
  );
  return readBestBidAskReply(symbol, reply);
}

/**
 * Anchors the symbol's full book on a REST snapshot and the diffs buffered while it was out of sync (Binance's
 * procedure). A rejected snapshot (too old, a gap in the buffer after it, a crossed result) changes nothing.
 */
export async function anchorBook(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  snapshot: RestDepthSnapshot,
  options: BookOptions,
): Promise<AnchorResult> {
  const args = anchorArgs(symbol, snapshot, options);
  const reply = await call('anchorBook', symbol, () =>
    client.anchorBook(...anchorKeys(keys, symbol), ...args),
  );
  return readAnchorReply(symbol, reply);
}
