import type { ArchiveItem } from '../archive/types';
import { DEFAULT_MAX_FUTURE_SKEW_MS, validateMessage, type ValidationClock } from '../events/validate';
import { walkFrames } from '../sbe/decoder';
import type { SbeMessage } from '../sbe/messages';

// The dataset builder's input (issue 16): the archived frames of each stream decoded and validated exactly as the
// record processors do (src/kcl/shard-processor.ts: walkFrames, then validateMessage), then the streams merged
// into one event-time-ordered sequence. Nothing is dropped silently: unreadable archive bytes, frames that do not
// decode and events that fail validation all come out as `rejected` items carrying the object key and byte offset.

/** A decoded, valid event and where it was in the archive. */
export interface DatasetEvent {
  readonly kind: 'event';
  readonly stream: string;
  readonly key: string;
  /** Byte offset of the frame in the object's (decompressed) content. */
  readonly offset: number;
  readonly message: SbeMessage;
  /** The event's eventTime, microseconds since the epoch (as a number: exact below 2^53 us, year 2255). */
  readonly eventTimeUs: number;
}

/** Archive bytes that are not a usable event: archive damage, a frame that fails to decode or to validate. */
export interface RejectedItem {
  readonly kind: 'rejected';
  readonly stream: string;
  readonly key: string;
  readonly offset: number;
  /** 'damage' (the archive reader's), 'decode' (src/sbe) or 'validation' (src/events/validate.ts). */
  readonly source: 'damage' | 'decode' | 'validation';
  readonly code: string;
  readonly error: string;
}

export type DatasetItem = DatasetEvent | RejectedItem;

/** The validation clock of a build: "now" is the build's wall clock (archived events are in the past). */
export function validationClock(
  nowMs: number,
  maxFutureSkewMs = DEFAULT_MAX_FUTURE_SKEW_MS,
): ValidationClock {
  return { nowUs: BigInt(Math.trunc(nowMs)) * 1000n, maxFutureSkewUs: BigInt(maxFutureSkewMs) * 1000n };
}

/** Decodes and validates one archive item (a frame may hold several SBE frames back to back, as a record may). */
export function decodeItem(item: ArchiveItem, clock: ValidationClock): DatasetItem[] {
  if (item.kind === 'damage') {
    const d = item.damage;
    return [
      {
        kind: 'rejected',
        stream: d.stream,
        key: d.key,
        offset: d.offset,
        source: 'damage',
        code: d.code,
        error: `${d.error} (${d.bytes} bytes skipped)`,
      },
    ];
  }
  const f = item.frame;
  const out: DatasetItem[] = [];
  for (const walked of walkFrames(f.bytes)) {
    const where = { stream: f.stream, key: f.key, offset: f.offset + walked.start };
    if (!walked.ok) {
      out.push({
        kind: 'rejected',
        ...where,
        source: 'decode',
        code: walked.error.code,
        error: walked.error.message,
      });
      continue;
    }
    const message = walked.frame.message;
    const failure = validateMessage(message, clock);
    if (failure !== undefined) {
      out.push({
        kind: 'rejected',
        ...where,
        source: 'validation',
        code: failure.code,
        error: failure.message,
      });
      continue;
    }
    out.push({ kind: 'event', ...where, message, eventTimeUs: Number(message.eventTime) });
  }
  return out;
}

/** One stream's archive items decoded; rejected items are passed on in place. */
export async function* decodeStream(
  items: AsyncIterable<ArchiveItem>,
  clock: ValidationClock,
): AsyncGenerator<DatasetItem> {
  for await (const item of items) yield* decodeItem(item, clock);
}

/** What the merge saw: events out of event-time order beyond the reorder window (still applied). */
export interface MergeStats {
  /** Events emitted with an event time below one already emitted (applied late, after later events). */
  late: number;
  /** The largest amount by which an emitted event's time was behind the newest emitted time, microseconds. */
  maxLatenessUs: number;
}

/** A small binary min-heap on (eventTimeUs, arrival index): stable for equal times. */
class ReorderBuffer {
  private readonly heap: Array<{ event: DatasetEvent; seq: number }> = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  peek(): DatasetEvent | undefined {
    return this.heap[0]?.event;
  }

  private less(i: number, j: number): boolean {
    const a = this.heap[i]!;
    const b = this.heap[j]!;
    return (
      a.event.eventTimeUs < b.event.eventTimeUs ||
      (a.event.eventTimeUs === b.event.eventTimeUs && a.seq < b.seq)
    );
  }

  private swap(i: number, j: number): void {
    const t = this.heap[i]!;
    this.heap[i] = this.heap[j]!;
    this.heap[j] = t;
  }

  push(event: DatasetEvent): void {
    this.heap.push({ event, seq: this.seq++ });
    let i = this.heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): DatasetEvent | undefined {
    const top = this.heap[0];
    const last = this.heap.pop();
    if (top === undefined || last === undefined) return undefined;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.heap.length && this.less(l, m)) m = l;
        if (r < this.heap.length && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top.event;
  }
}

/** Default reorder window: events per stream held back to restore event-time order. */
export const DEFAULT_REORDER_WINDOW = 1024;

/**
 * Merges decoded streams into one sequence ordered by event time: a k-way merge over the streams, each read
 * through a reorder buffer of `window` events (a min-heap on event time). Within a stream, archive order is
 * arrival order, nearly but not exactly event-time order; the bound: an event is put back in its place when it
 * arrives at most `window` events after the first event of its stream with a later time. An event displaced
 * further is still emitted (and applied), counted in `stats.late` (and its lateness in maxLatenessUs).
 * Rejected items are yielded as soon as they are read (they carry no trustworthy time).
 */
export async function* mergeByEventTime(
  streams: ReadonlyArray<AsyncIterable<DatasetItem>>,
  stats: MergeStats,
  window = DEFAULT_REORDER_WINDOW,
): AsyncGenerator<DatasetItem> {
  if (!Number.isInteger(window) || window < 1)
    throw new RangeError(`the reorder window must be >= 1, got ${window}`);
  const sources = streams.map((s) => ({
    it: s[Symbol.asyncIterator](),
    buffer: new ReorderBuffer(),
    done: false,
    rejected: [] as RejectedItem[],
  }));
  const fill = async (src: (typeof sources)[number]): Promise<void> => {
    while (!src.done && src.buffer.size < window) {
      const next = await src.it.next();
      if (next.done === true) {
        src.done = true;
        break;
      }
      if (next.value.kind === 'rejected') src.rejected.push(next.value);
      else src.buffer.push(next.value);
    }
  };
  let newestUs = -Infinity;
  try {
    await Promise.all(sources.map(fill));
    for (;;) {
      for (const src of sources) if (src.rejected.length > 0) yield* src.rejected.splice(0);
      let best: (typeof sources)[number] | undefined;
      for (const src of sources) {
        const head = src.buffer.peek();
        if (head === undefined) continue;
        if (best === undefined || head.eventTimeUs < best.buffer.peek()!.eventTimeUs) best = src;
      }
      if (best === undefined) return;
      const event = best.buffer.pop()!;
      if (event.eventTimeUs < newestUs) {
        stats.late++;
        stats.maxLatenessUs = Math.max(stats.maxLatenessUs, newestUs - event.eventTimeUs);
      } else {
        newestUs = event.eventTimeUs;
      }
      yield event;
      await fill(best);
    }
  } finally {
    // A consumer that stops early (every read point done) closes the readers (open objects, S3 bodies).
    for (const src of sources) if (!src.done && src.it.return !== undefined) await src.it.return();
  }
}
