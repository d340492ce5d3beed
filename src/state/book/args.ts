import { CanonicalDecimalError, canonicalMantissa, formatCanonical } from '../../events/canonical';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
} from '../../sbe/messages';
import { BookArgumentError } from '../errors';
import { canonicalLevelString, checkId, checkLevel, checkOptions, checkSymbol } from './checks';
import { planDepthCalls, type DepthChunk } from './plan';
import type { BookOptions, RestDepthSnapshot } from './types';

// The ARGV of the book scripts (layouts in their headers), built from decoded messages (pure). A value the scripts
// cannot take is refused here (BookArgumentError), so nothing is sent.

/** Appends " price qty" of each level (canonical strings; negative mantissas are refused). */
function pushLevels(
  out: string[],
  symbol: string,
  levels: readonly PriceLevel[],
  priceExponent: number,
  qtyExponent: number,
): void {
  for (const level of levels) {
    checkLevel(symbol, level);
    out.push(
      canonicalLevelString(symbol, level.priceMantissa, priceExponent),
      canonicalLevelString(symbol, level.qtyMantissa, qtyExponent),
    );
  }
}

/**
 * One diff as the scripts' string: "U u eventTimeUs nBids bidPrice bidQty ... askPrice askQty ..."
 * (the ARGV of apply-depth-batch-12.lua and the entries of book:<S>:buffer).
 */
export function encodeDiff(diff: DepthDiffStreamEvent): string {
  if (diff.firstBookUpdateId > diff.lastBookUpdateId || diff.firstBookUpdateId < 0n || diff.eventTime < 0n) {
    throw new BookArgumentError(
      diff.symbol,
      `depth diff U=${diff.firstBookUpdateId} u=${diff.lastBookUpdateId} eventTime=${diff.eventTime}`,
    );
  }
  const parts = [
    diff.firstBookUpdateId.toString(),
    diff.lastBookUpdateId.toString(),
    diff.eventTime.toString(),
    String(diff.bids.length),
  ];
  pushLevels(parts, diff.symbol, diff.bids, diff.priceExponent, diff.qtyExponent);
  pushLevels(parts, diff.symbol, diff.asks, diff.priceExponent, diff.qtyExponent);
  return parts.join(' ');
}

/**
 * The U, u and number of levels of an encoded diff (encodeDiff's string, the entries of book:<S>:buffer), or
 * undefined when the entry does not start like one. Pure.
 */
export function diffIds(entry: string): { U: bigint; u: bigint; levels: number } | undefined {
  const m = /^(\d+) (\d+) \d+ \d+/.exec(entry);
  if (m === null) return undefined;
  let spaces = 0;
  for (let i = 0; i < entry.length; i++) if (entry.charCodeAt(i) === 32) spaces++;
  return { U: BigInt(m[1]!), u: BigInt(m[2]!), levels: Math.max(0, (spaces - 3) / 2) };
}

/** "nBids bidPrice bidQty ... askPrice askQty ..." of a depth20 snapshot's top `levels` levels per side. */
export function encodeTopLevels(snapshot: DepthSnapshotStreamEvent, levels: number): string {
  const bids = snapshot.bids.slice(0, levels);
  const parts = [String(bids.length)];
  pushLevels(parts, snapshot.symbol, bids, snapshot.priceExponent, snapshot.qtyExponent);
  pushLevels(
    parts,
    snapshot.symbol,
    snapshot.asks.slice(0, levels),
    snapshot.priceExponent,
    snapshot.qtyExponent,
  );
  return parts.join(' ');
}

/** The net effect of a chunk's diffs: "nBidSet nBidDel nAskSet nAskDel" and the values in that layout. */
export interface NetEffect {
  readonly counts: string;
  readonly values: string[];
}

/**
 * The net effect of diffs applied in order, per side: the final quantity of every price they touch, in first-seen
 * order, split into levels set (non-zero) and prices removed. Flat: [nBidSet nBidDel nAskSet nAskDel] and the
 * values (bid price, qty pairs, bid prices, ask pairs, ask prices).
 */
export function netEffect(diffs: readonly DepthDiffStreamEvent[]): NetEffect {
  const values: string[] = [];
  const counts: number[] = [];
  for (const side of ['bids', 'asks'] as const) {
    // price (canonical mantissa) -> the last level of it; only the survivors are formatted.
    const final = new Map<bigint, { readonly qty: bigint; readonly exponent: number }>();
    for (const diff of diffs) {
      const levels = diff[side];
      for (let i = 0; i < levels.length; i++) {
        const level = levels[i]!;
        checkLevel(diff.symbol, level);
        const price = canonicalMantissa(level.priceMantissa, diff.priceExponent);
        if (price === undefined) {
          throw new BookArgumentError(
            diff.symbol,
            new CanonicalDecimalError(level.priceMantissa, diff.priceExponent).message,
          );
        }
        final.set(price, { qty: level.qtyMantissa, exponent: diff.qtyExponent });
      }
    }
    const removed: string[] = [];
    let set = 0;
    for (const [price, level] of final) {
      if (level.qty === 0n) removed.push(formatCanonical(price));
      else {
        values.push(
          formatCanonical(price),
          canonicalLevelString(diffs[0]!.symbol, level.qty, level.exponent),
        );
        set++;
      }
    }
    for (const price of removed) values.push(price);
    counts.push(set, removed.length);
  }
  // values holds bid pairs, bid removals, ask pairs, ask removals.
  return { counts: counts.join(' '), values };
}

/** How a chunk is sent: its net effect alone (in-sync fast path only) or every diff's string as well. */
export type DepthCallForm = 'net' | 'full';

/**
 * ARGV of apply-depth-batch-12.lua for one chunk (layout in the script's header). The "net" form needs a chained
 * chunk with at least one diff.
 */
export function depthChunkArgs(
  symbol: string,
  chunk: DepthChunk,
  options: BookOptions,
  form: DepthCallForm,
): string[] {
  const bound = checkOptions(symbol, options);
  const { diffs, snapshot } = chunk;
  const prefix = [
    String(options.levels),
    String(bound),
    chunk.part
      ? 'part'
      : chunk.eventTimeUs === undefined
        ? ''
        : checkId(symbol, 'event time', chunk.eventTimeUs),
    snapshot ? checkId(symbol, 'depth20 bookUpdateId', snapshot.bookUpdateId) : '',
    snapshot ? checkId(symbol, 'depth20 event time', snapshot.eventTime) : '',
    snapshot ? encodeTopLevels(snapshot, options.levels) : '',
    String(diffs.length),
  ];
  const net = chunk.chained && diffs.length > 0 ? netEffect(diffs) : undefined;
  if (form === 'net') {
    const first = diffs[0];
    const last = diffs[diffs.length - 1];
    if (net === undefined || first === undefined || last === undefined) {
      throw new BookArgumentError(symbol, 'the net form needs a chained chunk with diffs');
    }
    const header = [
      'net',
      checkId(symbol, 'U', first.firstBookUpdateId),
      checkId(symbol, 'u', first.lastBookUpdateId),
      checkId(symbol, 'u', last.lastBookUpdateId),
      checkId(symbol, 'event time', last.eventTime),
      net.counts,
    ].join(' ');
    return [...prefix, header, ...net.values];
  }
  return [...prefix, net ? net.counts : '', ...diffs.map(encodeDiff), ...(net ? net.values : [])];
}

/**
 * ARGV of apply-depth-batch-12.lua ("full" form) for one symbol's messages of a depth-stream batch as ONE call: the
 * newest depth20 snapshot (top `levels`), the diffs sorted by u ascending with duplicates (same u) removed, and,
 * when they chain (each U <= previous u + 1), their net effect for the script's fast path. Messages of other kinds
 * are skipped. (applyBookBatch splits a batch into bounded calls; this is the unsplit form.)
 */
export function depthBatchArgs(
  symbol: string,
  messages: readonly SbeMessage[],
  options: BookOptions,
): string[] {
  checkOptions(symbol, options);
  const unbounded = { maxDiffs: Number.MAX_SAFE_INTEGER, maxLevels: Number.MAX_SAFE_INTEGER };
  const [chunk] = planDepthCalls(symbol, messages, unbounded);
  if (chunk === undefined) throw new Error('internal: planDepthCalls returned no chunk');
  return depthChunkArgs(symbol, chunk, options, 'full');
}

/** ARGV of apply-best-bid-ask-5.lua: the newest bestBidAsk of one symbol's batch (other kinds are skipped). */
export function bestBidAskArgs(symbol: string, messages: readonly SbeMessage[]): string[] {
  let newest: BestBidAskStreamEvent | undefined;
  let batchTime: bigint | undefined;
  for (const message of messages) {
    if (message.message !== 'BestBidAskStreamEvent') continue;
    checkSymbol(symbol, message);
    if (batchTime === undefined || message.eventTime > batchTime) batchTime = message.eventTime;
    if (newest === undefined || message.bookUpdateId > newest.bookUpdateId) newest = message;
  }
  const time = batchTime === undefined ? '' : checkId(symbol, 'event time', batchTime);
  if (newest === undefined) return ['', '', '', '', '', '', time];
  const levels: string[] = [];
  pushLevels(
    levels,
    symbol,
    [
      { priceMantissa: newest.bidPriceMantissa, qtyMantissa: newest.bidQtyMantissa },
      { priceMantissa: newest.askPriceMantissa, qtyMantissa: newest.askQtyMantissa },
    ],
    newest.priceExponent,
    newest.qtyExponent,
  );
  return [
    checkId(symbol, 'bookUpdateId', newest.bookUpdateId),
    ...levels,
    checkId(symbol, 'event time', newest.eventTime),
    time,
  ];
}

/** ARGV of anchor-book-11.lua: N, lastUpdateId, time, bid count, bid pairs, ask pairs. */
export function anchorArgs(symbol: string, snapshot: RestDepthSnapshot, options: BookOptions): string[] {
  checkOptions(symbol, options);
  const args = [
    String(options.levels),
    checkId(symbol, 'lastUpdateId', snapshot.lastUpdateId),
    checkId(symbol, 'snapshot time', snapshot.timeUs),
    String(snapshot.bids.length),
  ];
  pushLevels(args, symbol, snapshot.bids, snapshot.priceExponent, snapshot.qtyExponent);
  pushLevels(args, symbol, snapshot.asks, snapshot.priceExponent, snapshot.qtyExponent);
  return args;
}
