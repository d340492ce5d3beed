import { formatDecimal } from '../../src/sbe/decimal';
import { canonical8 } from './canonical';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
} from '../../src/sbe/messages';

// An independent in-memory model of the order-book contract (Binance's rules), written from the specification
// and sharing no code with src/state/book.ts or the Lua scripts: Maps of exact strings, BigInt comparisons.
// Tests drive it with the same inputs as Redis and compare every level, ob: field and state field.

export interface ReferenceOptions {
  readonly levels: number;
  readonly bufferMax: number;
}

export interface ReferenceSnapshot {
  readonly lastUpdateId: bigint;
  readonly priceExponent: number;
  readonly qtyExponent: number;
  readonly bids: readonly PriceLevel[];
  readonly asks: readonly PriceLevel[];
  readonly timeUs: bigint;
}

export interface ReferenceBatchResult {
  applied: number;
  ignored: number;
  buffered: number;
  gap: boolean;
  crossed: boolean;
  overflow: number;
}

export interface ReferenceAnchorResult {
  code: number;
  needed: bigint | undefined;
}

/** Exact decimal string -> [mantissa, scale]. */
function parse(text: string): [bigint, number] {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (m === null) throw new Error(`reference: not a decimal ${text}`);
  return [BigInt((m[1] ?? '') + (m[2] ?? '')), (m[2] ?? '').length];
}

/** Exact comparison of two non-negative decimal strings. */
export function compareDecimal(a: string, b: string): number {
  const [x, sx] = parse(a);
  const [y, sy] = parse(b);
  const s = Math.max(sx, sy);
  const xs = x * 10n ** BigInt(s - sx);
  const ys = y * 10n ** BigInt(s - sy);
  return xs < ys ? -1 : xs > ys ? 1 : 0;
}

function isZero(text: string): boolean {
  return parse(text)[0] === 0n;
}

export function referenceSpread(bid: string, ask: string): string {
  const [b, sb] = parse(bid);
  const [a, sa] = parse(ask);
  const s = Math.max(sa, sb);
  return formatDecimal(a * 10n ** BigInt(s - sa) - b * 10n ** BigInt(s - sb), -s);
}

export function referenceMid(bid: string, ask: string): string {
  const [b, sb] = parse(bid);
  const [a, sa] = parse(ask);
  const s = Math.max(sa, sb);
  const twice = a * 10n ** BigInt(s - sa) + b * 10n ** BigInt(s - sb);
  return twice % 2n === 0n ? formatDecimal(twice / 2n, -s) : formatDecimal(twice * 5n, -(s + 1));
}

interface Levels {
  readonly bids: Array<[string, string]>;
  readonly asks: Array<[string, string]>;
}

/** ob: fields of the contract and their doubles, as the model expects them. */
export type ObFields = Map<string, string>;

export class ReferenceBook {
  readonly bids = new Map<string, string>();
  readonly asks = new Map<string, string>();
  status: 'in_sync' | 'out_of_sync' = 'out_of_sync';
  reason: '' | 'no_snapshot' | 'gap' | 'crossed' = 'no_snapshot';
  bookId: bigint | undefined;
  lastSeen: bigint | undefined;
  bookTs: bigint | undefined;
  buffer: DepthDiffStreamEvent[] = [];
  gaps = 0;
  crossedCount = 0;
  overflow = 0;
  /** ob:<S> as the model expects it. */
  readonly ob: ObFields = new Map();
  private levelsId: bigint | undefined;
  private bestId: bigint | undefined;
  private bestTs: bigint | undefined;
  private bbaId: bigint | undefined;
  private d20Id: bigint | undefined;

  constructor(private readonly options: ReferenceOptions) {}

  private static fmtLevels(levels: readonly PriceLevel[], pe: number, qe: number): Array<[string, string]> {
    return levels.map((l) => [canonical8(l.priceMantissa, pe), canonical8(l.qtyMantissa, qe)]);
  }

  /** The book's best `n` levels per side, best first (exact ordering). */
  top(n: number): Levels {
    const bids = [...this.bids.entries()].sort((a, b) => compareDecimal(b[0], a[0])).slice(0, n);
    const asks = [...this.asks.entries()].sort((a, b) => compareDecimal(a[0], b[0])).slice(0, n);
    return { bids, asks };
  }

  private isCrossed(): boolean {
    const { bids, asks } = this.top(1);
    const bid = bids[0];
    const ask = asks[0];
    return bid !== undefined && ask !== undefined && compareDecimal(bid[0], ask[0]) >= 0;
  }

  private static setLevel(side: Map<string, string>, price: string, qty: string): void {
    if (isZero(qty)) side.delete(price);
    else side.set(price, qty);
  }

  private applyDiff(diff: DepthDiffStreamEvent, bids: Map<string, string>, asks: Map<string, string>): void {
    for (const [p, q] of ReferenceBook.fmtLevels(diff.bids, diff.priceExponent, diff.qtyExponent)) {
      ReferenceBook.setLevel(bids, p, q);
    }
    for (const [p, q] of ReferenceBook.fmtLevels(diff.asks, diff.priceExponent, diff.qtyExponent)) {
      ReferenceBook.setLevel(asks, p, q);
    }
  }

  private writeLevels(levels: Levels, id: bigint, ts: bigint): void {
    const n = this.options.levels;
    let sumBid = 0;
    let sumAsk = 0;
    let bidStrength = 0;
    let askStrength = 0;
    for (let i = 1; i <= n; i++) {
      const bid = levels.bids[i - 1];
      const ask = levels.asks[i - 1];
      this.ob.set(`bid${i}_p`, bid ? bid[0] : '');
      this.ob.set(`bid${i}_q`, bid ? bid[1] : '');
      this.ob.set(`ask${i}_p`, ask ? ask[0] : '');
      this.ob.set(`ask${i}_q`, ask ? ask[1] : '');
      if (bid) {
        sumBid += Number(bid[1]);
        bidStrength += Number(bid[1]) / i;
      }
      if (ask) {
        sumAsk += Number(ask[1]);
        askStrength += Number(ask[1]) / i;
      }
    }
    const total = sumBid + sumAsk;
    this.ob.set('ob_imbalance', String(total > 0 ? (sumBid - sumAsk) / total : 0));
    this.ob.set('bid_strength', String(bidStrength));
    this.ob.set('ask_strength', String(askStrength));
    this.ob.set('book_update_id', id.toString());
    this.ob.set('book_ts_us', ts.toString());
    this.levelsId = id;
  }

  private writeBest(
    bid: [string, string] | undefined,
    ask: [string, string] | undefined,
    id: bigint,
    ts: bigint,
  ): void {
    this.ob.set('best_bid', bid ? bid[0] : '');
    this.ob.set('best_bid_qty', bid ? bid[1] : '');
    this.ob.set('best_ask', ask ? ask[0] : '');
    this.ob.set('best_ask_qty', ask ? ask[1] : '');
    this.ob.set('spread', bid && ask ? referenceSpread(bid[0], ask[0]) : '');
    this.ob.set('mid_price', bid && ask ? referenceMid(bid[0], ask[0]) : '');
    this.ob.set('best_update_id', id.toString());
    this.ob.set('ts_us', ts.toString());
    this.bestId = id;
    this.bestTs = ts;
  }

  /** A newer id, or the same id with a later event time (the later time wins a tie: order-independent). */
  private replacesBest(id: bigint, ts: bigint): boolean {
    return this.bestId === undefined || id > this.bestId || (id === this.bestId && ts > (this.bestTs ?? -1n));
  }

  private writeFromSource(levels: Levels, id: bigint, ts: bigint): void {
    this.writeLevels(levels, id, ts);
    if (this.replacesBest(id, ts)) this.writeBest(levels.bids[0], levels.asks[0], id, ts);
  }

  /** A batch of the depth stream for this symbol: depth20 snapshots and diffs, in any order. */
  applyDepthBatch(messages: readonly SbeMessage[]): ReferenceBatchResult {
    const result: ReferenceBatchResult = {
      applied: 0,
      ignored: 0,
      buffered: 0,
      gap: false,
      crossed: false,
      overflow: 0,
    };
    const diffs = messages
      .filter((m): m is DepthDiffStreamEvent => m.message === 'DepthDiffStreamEvent')
      .sort((a, b) =>
        a.lastBookUpdateId !== b.lastBookUpdateId
          ? Number(a.lastBookUpdateId - b.lastBookUpdateId)
          : Number(a.firstBookUpdateId - b.firstBookUpdateId),
      )
      .filter((d, i, all) => i === 0 || all[i - 1]!.lastBookUpdateId !== d.lastBookUpdateId);
    let newest: DepthSnapshotStreamEvent | undefined;
    for (const m of messages) {
      if (
        m.message === 'DepthSnapshotStreamEvent' &&
        (newest === undefined || m.bookUpdateId > newest.bookUpdateId)
      ) {
        newest = m;
      }
    }
    let applied = false;
    for (const d of diffs) {
      if (this.status === 'in_sync') {
        const id = this.bookId!;
        if (d.lastBookUpdateId <= id) result.ignored++;
        else if (d.firstBookUpdateId > id + 1n) {
          this.status = 'out_of_sync';
          this.reason = 'gap';
          this.gaps++;
          result.gap = true;
          this.buffer.push(d);
          result.buffered++;
          this.lastSeen = d.lastBookUpdateId;
        } else {
          this.applyDiff(d, this.bids, this.asks);
          this.bookId = d.lastBookUpdateId;
          this.lastSeen = d.lastBookUpdateId;
          this.bookTs = d.eventTime;
          result.applied++;
          applied = true;
        }
      } else if (this.lastSeen === undefined || d.lastBookUpdateId > this.lastSeen) {
        this.buffer.push(d);
        result.buffered++;
        this.lastSeen = d.lastBookUpdateId;
      } else {
        result.ignored++;
      }
    }
    if (applied && this.isCrossed()) {
      this.status = 'out_of_sync';
      this.reason = 'crossed';
      this.crossedCount++;
      result.crossed = true;
    }
    if (this.buffer.length > this.options.bufferMax) {
      result.overflow = this.buffer.length - this.options.bufferMax;
      this.overflow += result.overflow;
      this.buffer = this.buffer.slice(result.overflow);
    }
    // ob: levels from the newer of the in-sync full book and a newer depth20 snapshot.
    let d20: DepthSnapshotStreamEvent | undefined;
    if (newest !== undefined && (this.d20Id === undefined || newest.bookUpdateId > this.d20Id)) {
      d20 = newest;
      this.d20Id = newest.bookUpdateId;
      this.ob.set('depth20_update_id', newest.bookUpdateId.toString());
      this.ob.set('depth20_ts_us', newest.eventTime.toString());
    }
    const newerThanLevels = (id: bigint) => this.levelsId === undefined || id > this.levelsId;
    const bookCandidate = this.status === 'in_sync' && newerThanLevels(this.bookId!);
    const d20Candidate = d20 !== undefined && newerThanLevels(d20.bookUpdateId);
    if (bookCandidate && (!d20Candidate || this.bookId! >= d20!.bookUpdateId)) {
      this.writeFromSource(this.top(this.options.levels), this.bookId!, this.bookTs!);
    } else if (d20Candidate) {
      const n = this.options.levels;
      this.writeFromSource(
        {
          bids: ReferenceBook.fmtLevels(d20!.bids.slice(0, n), d20!.priceExponent, d20!.qtyExponent),
          asks: ReferenceBook.fmtLevels(d20!.asks.slice(0, n), d20!.priceExponent, d20!.qtyExponent),
        },
        d20!.bookUpdateId,
        d20!.eventTime,
      );
    }
    return result;
  }

  /** A batch of the bestBidAsk stream for this symbol. Returns [applied, bestWritten]. */
  applyBestBidAskBatch(messages: readonly SbeMessage[]): [boolean, boolean] {
    let newest: BestBidAskStreamEvent | undefined;
    for (const m of messages) {
      if (
        m.message === 'BestBidAskStreamEvent' &&
        (newest === undefined || m.bookUpdateId > newest.bookUpdateId)
      ) {
        newest = m;
      }
    }
    if (newest === undefined || (this.bbaId !== undefined && newest.bookUpdateId <= this.bbaId))
      return [false, false];
    this.bbaId = newest.bookUpdateId;
    this.ob.set('bba_update_id', newest.bookUpdateId.toString());
    if (!this.replacesBest(newest.bookUpdateId, newest.eventTime)) return [true, false];
    const pe = newest.priceExponent;
    const qe = newest.qtyExponent;
    this.writeBest(
      [canonical8(newest.bidPriceMantissa, pe), canonical8(newest.bidQtyMantissa, qe)],
      [canonical8(newest.askPriceMantissa, pe), canonical8(newest.askQtyMantissa, qe)],
      newest.bookUpdateId,
      newest.eventTime,
    );
    return [true, true];
  }

  /** Binance's steps 3-4 on a REST snapshot and the buffered diffs. */
  anchor(snapshot: ReferenceSnapshot): ReferenceAnchorResult {
    const L = snapshot.lastUpdateId;
    if (this.status === 'in_sync' && L <= this.bookId!) return { code: 0, needed: undefined };
    const remaining = this.buffer.filter((d) => d.lastBookUpdateId > L);
    const first = remaining[0];
    if (first !== undefined) {
      if (first.firstBookUpdateId > L + 1n) return { code: -1, needed: first.firstBookUpdateId - 1n };
      for (let i = 1; i < remaining.length; i++) {
        if (remaining[i]!.firstBookUpdateId > remaining[i - 1]!.lastBookUpdateId + 1n) {
          return { code: -2, needed: remaining[i]!.firstBookUpdateId - 1n };
        }
      }
    } else if (this.status === 'out_of_sync' && this.lastSeen !== undefined && this.lastSeen > L) {
      return { code: -1, needed: this.lastSeen };
    }
    const bids = new Map<string, string>();
    const asks = new Map<string, string>();
    for (const [p, q] of ReferenceBook.fmtLevels(
      snapshot.bids,
      snapshot.priceExponent,
      snapshot.qtyExponent,
    )) {
      ReferenceBook.setLevel(bids, p, q);
    }
    for (const [p, q] of ReferenceBook.fmtLevels(
      snapshot.asks,
      snapshot.priceExponent,
      snapshot.qtyExponent,
    )) {
      ReferenceBook.setLevel(asks, p, q);
    }
    for (const d of remaining) this.applyDiff(d, bids, asks);
    const probe = new ReferenceBook(this.options);
    for (const [p, q] of bids) probe.bids.set(p, q);
    for (const [p, q] of asks) probe.asks.set(p, q);
    if (probe.isCrossed()) return { code: -3, needed: undefined };
    this.bids.clear();
    this.asks.clear();
    for (const [p, q] of bids) this.bids.set(p, q);
    for (const [p, q] of asks) this.asks.set(p, q);
    const last = remaining[remaining.length - 1];
    this.bookId = last ? last.lastBookUpdateId : L;
    this.bookTs = last ? last.eventTime : snapshot.timeUs;
    this.lastSeen = this.bookId;
    this.status = 'in_sync';
    this.reason = '';
    this.buffer = [];
    if (this.levelsId === undefined || this.bookId > this.levelsId) {
      this.writeFromSource(this.top(this.options.levels), this.bookId, this.bookTs);
    }
    return { code: 1, needed: undefined };
  }

  /** The state fields the contract names, as Redis should hold them. */
  stateView(): Record<string, string> {
    return {
      status: this.status,
      reason: this.reason,
      book_update_id: this.bookId?.toString() ?? '',
      last_seen_u: this.lastSeen?.toString() ?? '',
      buffered: String(this.buffer.length),
      gaps: String(this.gaps),
      crossed: String(this.crossedCount),
      buffer_overflow: String(this.overflow),
    };
  }
}
