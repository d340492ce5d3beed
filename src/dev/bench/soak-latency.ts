import { summarize, type Summary } from './stats';
import type { SbeMessage } from '../../sbe/messages';

// End-to-end latency bookkeeping of the soak run, pure (times are passed in): every event is registered when the
// PutRecords call carrying it is sent, that call's return time is filled in when it returns, and the Redis poller
// reports the newest id visible per kind of event. Ids only grow per kind (one symbol, one PutRecords in flight
// per stream), so an event is visible as soon as the visible id of its kind reaches its own id: the latency of
// an event = the time the poller first saw an id >= its id - the time its PutRecords call returned.

/** The kinds of events, each with its own visible id in Redis. */
export type EventKind = 'trade' | 'bestbidask' | 'depth_diff' | 'depth20';
export const EVENT_KINDS: readonly EventKind[] = ['trade', 'bestbidask', 'depth_diff', 'depth20'];
/** Kinesis stream of each kind. */
export const STREAM_OF: Readonly<Record<EventKind, 'trade' | 'bestbidask' | 'depth'>> = {
  trade: 'trade',
  bestbidask: 'bestbidask',
  depth_diff: 'depth',
  depth20: 'depth',
};

/**
 * The id an event is tracked by, and the field that shows it in Redis:
 *   trade       the event's highest trade id         ob:<S> last_trade_id
 *   bestbidask  bookUpdateId                         ob:<S> bba_update_id
 *   depth_diff  u (lastBookUpdateId)                 book:<S>:state book_update_id (the book is in sync)
 *   depth20     bookUpdateId                         ob:<S> depth20_update_id
 */
export function trackedId(message: SbeMessage): { kind: EventKind; id: number } {
  let id: bigint;
  let kind: EventKind;
  switch (message.message) {
    case 'TradesStreamEvent': {
      kind = 'trade';
      id = message.trades.reduce((max, t) => (t.id > max ? t.id : max), -1n);
      break;
    }
    case 'BestBidAskStreamEvent':
      kind = 'bestbidask';
      id = message.bookUpdateId;
      break;
    case 'DepthDiffStreamEvent':
      kind = 'depth_diff';
      id = message.lastBookUpdateId;
      break;
    case 'DepthSnapshotStreamEvent':
      kind = 'depth20';
      id = message.bookUpdateId;
      break;
  }
  const n = Number(id);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${kind} id ${id} is not a safe integer`);
  return { kind, id: n };
}

export interface PutCall {
  readonly sentMs: number;
  returnedMs: number | undefined;
  /** Events seen visible before the call returned: resolved when it does. */
  early: { kind: EventKind; visibleMs: number }[];
}

interface Pending {
  readonly id: number;
  readonly call: PutCall;
}

class Queue {
  private items: Pending[] = [];
  private head = 0;
  outOfOrder = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(p: Pending): void {
    const last = this.items[this.items.length - 1];
    if (last === undefined || this.length === 0 || last.id <= p.id) {
      this.items.push(p);
      return;
    }
    // Not expected (ids grow per kind); kept sorted so the head is always the smallest pending id.
    this.outOfOrder++;
    let i = this.items.length;
    while (i > this.head && (this.items[i - 1] as Pending).id > p.id) i--;
    this.items.splice(i, 0, p);
  }

  /** Removes and returns the pending events with id <= visible. */
  popUpTo(visible: number): Pending[] {
    const out: Pending[] = [];
    while (this.head < this.items.length && (this.items[this.head] as Pending).id <= visible) {
      out.push(this.items[this.head++] as Pending);
    }
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }
}

/** Growable Float64 sample store (hundreds of thousands of samples without boxed numbers). */
export class Samples {
  private data = new Float64Array(1024);
  length = 0;

  push(x: number): void {
    if (this.length === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = x;
  }

  values(): number[] {
    return Array.from(this.data.subarray(0, this.length));
  }
}

export interface KindLatency {
  /** Events registered (sent). */
  readonly published: number;
  /** Events seen visible. */
  readonly visible: number;
  /** Events sent during the warm-up (visible, not in the latency figures). */
  readonly warmup: number;
  /** From the PutRecords return (the figure), ms. */
  readonly fromReturn: Summary;
  /** From the PutRecords send, ms. */
  readonly fromSend: Summary;
}

export class LatencyTracker {
  private readonly queues = new Map<EventKind, Queue>();
  private readonly visibleId = new Map<EventKind, number>();
  private readonly fromReturn = new Map<EventKind, Samples>();
  private readonly fromSend = new Map<EventKind, Samples>();
  private readonly published = new Map<EventKind, number>();
  private readonly seen = new Map<EventKind, number>();
  private readonly warm = new Map<EventKind, number>();
  /** Time the last pending event became visible. */
  lastVisibleMs: number | undefined;
  firstSentMs: number | undefined;
  /** Events whose id was already visible when they were sent (ids repeated: not expected). */
  alreadyVisible = 0;
  /** Visible-before-return events (the poller saw them before the PutRecords response arrived; latency 0). */
  visibleBeforeReturn = 0;

  constructor(private warmupEndMs: number = -Infinity) {
    for (const k of EVENT_KINDS) {
      this.queues.set(k, new Queue());
      this.fromReturn.set(k, new Samples());
      this.fromSend.set(k, new Samples());
      this.published.set(k, 0);
      this.seen.set(k, 0);
      this.warm.set(k, 0);
    }
  }

  /** Events sent before this time are warm-up. */
  setWarmupEnd(ms: number): void {
    this.warmupEndMs = ms;
  }

  /** Registers the events of one PutRecords call at the time it is sent. */
  sent(events: readonly { kind: EventKind; id: number }[], sentMs: number): PutCall {
    const call: PutCall = { sentMs, returnedMs: undefined, early: [] };
    this.firstSentMs ??= sentMs;
    for (const e of events) {
      this.published.set(e.kind, (this.published.get(e.kind) ?? 0) + 1);
      if (e.id <= (this.visibleId.get(e.kind) ?? -1)) {
        // e.g. a depth20 repeating the previous one's bookUpdateId (no book change in between)
        this.alreadyVisible++;
        call.early.push({ kind: e.kind, visibleMs: sentMs });
        continue;
      }
      (this.queues.get(e.kind) as Queue).push({ id: e.id, call });
    }
    return call;
  }

  returned(call: PutCall, returnedMs: number): void {
    call.returnedMs = returnedMs;
    const early = call.early;
    call.early = [];
    for (const e of early) this.record(e.kind, call, e.visibleMs);
  }

  /** The poller saw `id` as the newest visible id of `kind` at `visibleMs`. */
  visible(kind: EventKind, id: number, visibleMs: number): void {
    if (id <= (this.visibleId.get(kind) ?? -1)) return;
    this.visibleId.set(kind, id);
    const done = (this.queues.get(kind) as Queue).popUpTo(id);
    for (const p of done) {
      if (p.call.returnedMs === undefined) {
        this.visibleBeforeReturn++;
        p.call.early.push({ kind, visibleMs });
      } else this.record(kind, p.call, visibleMs);
    }
    if (done.length > 0) this.lastVisibleMs = visibleMs;
  }

  private record(kind: EventKind, call: PutCall, visibleMs: number): void {
    this.seen.set(kind, (this.seen.get(kind) ?? 0) + 1);
    if (call.sentMs < this.warmupEndMs) {
      this.warm.set(kind, (this.warm.get(kind) ?? 0) + 1);
      return;
    }
    // Seen before the response arrived (the poller raced it): visible no later than the return, 0.
    (this.fromReturn.get(kind) as Samples).push(Math.max(0, visibleMs - (call.returnedMs as number)));
    (this.fromSend.get(kind) as Samples).push(visibleMs - call.sentMs);
  }

  /** Events sent and not yet seen visible (or visible but their call has not returned). */
  get pending(): number {
    let n = 0;
    for (const k of EVENT_KINDS) n += (this.published.get(k) ?? 0) - (this.seen.get(k) ?? 0);
    return n;
  }

  get publishedTotal(): number {
    return EVENT_KINDS.reduce((a, k) => a + (this.published.get(k) ?? 0), 0);
  }

  get visibleTotal(): number {
    return EVENT_KINDS.reduce((a, k) => a + (this.seen.get(k) ?? 0), 0);
  }

  get outOfOrder(): number {
    return EVENT_KINDS.reduce((a, k) => a + (this.queues.get(k) as Queue).outOfOrder, 0);
  }

  /** Per kind, per stream (its kinds together) and over all events. */
  summary(): Record<EventKind | 'depth' | 'all', KindLatency> {
    const group = (kinds: readonly EventKind[]): KindLatency => {
      const ret: number[] = [];
      const send: number[] = [];
      let published = 0;
      let visible = 0;
      let warmup = 0;
      for (const k of kinds) {
        for (const v of (this.fromReturn.get(k) as Samples).values()) ret.push(v);
        for (const v of (this.fromSend.get(k) as Samples).values()) send.push(v);
        published += this.published.get(k) ?? 0;
        visible += this.seen.get(k) ?? 0;
        warmup += this.warm.get(k) ?? 0;
      }
      return { published, visible, warmup, fromReturn: summarize(ret), fromSend: summarize(send) };
    };
    return {
      trade: group(['trade']),
      bestbidask: group(['bestbidask']),
      depth_diff: group(['depth_diff']),
      depth20: group(['depth20']),
      depth: group(['depth_diff', 'depth20']),
      all: group(EVENT_KINDS),
    };
  }
}
