import { expect } from 'chai';
import type { ArchiveItem } from '../../../src/archive/types';
import {
  decodeItem,
  decodeStream,
  mergeByEventTime,
  validationClock,
  type DatasetEvent,
  type DatasetItem,
  type MergeStats,
} from '../../../src/dataset/events';
import { simulate } from '../../../src/replay/simulator';
import { encodeMessage } from '../../../src/sbe/encoder';
import type { SbeMessage } from '../../../src/sbe/messages';

// Issue 16: the dataset builder's input, decoded and validated as the processors do, then merged by event time.

const START_US = 1_760_000_000_000_000n;
const NOW_MS = Number(START_US / 1000n) + 3_600_000;
const clock = validationClock(NOW_MS);

function messages(count: number): SbeMessage[] {
  return [...simulate({ seed: 3, symbols: ['BTCUSDT'], startTimeUs: START_US }, count)].map((e) => e.message);
}

function frame(bytes: Buffer, offset = 0, key = 'trade/obj-0'): ArchiveItem {
  return { kind: 'frame', frame: { stream: 'trade', key, offset, bytes } };
}

function event(stream: string, timeUs: number, n: number): DatasetEvent {
  const message = { ...messages(1)[0]!, eventTime: BigInt(timeUs) };
  return { kind: 'event', stream, key: `${stream}/o`, offset: n, message, eventTimeUs: timeUs };
}

async function* items<T>(list: readonly T[]): AsyncGenerator<T> {
  for (const x of list) {
    await Promise.resolve();
    yield x;
  }
}

async function collect(gen: AsyncIterable<DatasetItem>): Promise<DatasetItem[]> {
  const out: DatasetItem[] = [];
  for await (const x of gen) out.push(x);
  return out;
}

describe('dataset events: decode and validate archive frames (issue 16)', () => {
  it('a valid frame is an event with its key, offset and event time', () => {
    const m = messages(1)[0]!;
    const [item] = decodeItem(frame(encodeMessage(m), 120), clock);
    expect(item).to.deep.include({ kind: 'event', stream: 'trade', key: 'trade/obj-0', offset: 120 });
    expect((item as DatasetEvent).eventTimeUs).to.equal(Number(m.eventTime));
    expect((item as DatasetEvent).message).to.deep.equal(m);
  });

  it('frames back to back in one item: each at its own offset', () => {
    const [a, b] = messages(2);
    const first = encodeMessage(a!);
    const out = decodeItem(frame(Buffer.concat([first, encodeMessage(b!)]), 10), clock);
    expect(out.map((x) => x.offset)).to.deep.equal([10, 10 + first.length]);
  });

  it('archive damage is a rejected item with its key, offset, code and the bytes skipped', () => {
    const out = decodeItem(
      {
        kind: 'damage',
        damage: {
          stream: 'depth',
          key: 'depth/x.gz',
          offset: 77,
          code: 'CORRUPT_GZIP',
          error: 'bad gzip',
          bytes: 9,
        },
      },
      clock,
    );
    expect(out).to.deep.equal([
      {
        kind: 'rejected',
        stream: 'depth',
        key: 'depth/x.gz',
        offset: 77,
        source: 'damage',
        code: 'CORRUPT_GZIP',
        error: 'bad gzip (9 bytes skipped)',
      },
    ]);
  });

  it('a truncated frame is rejected by the decoder with its key and offset', () => {
    const bytes = encodeMessage(messages(1)[0]!);
    const [item] = decodeItem(frame(bytes.subarray(0, bytes.length - 3), 500), clock);
    expect(item).to.deep.include({ kind: 'rejected', source: 'decode', key: 'trade/obj-0', offset: 500 });
  });

  it('an event failing validation (an event time beyond the skew ahead of the clock) is rejected with its code', () => {
    const m = messages(1)[0]!;
    const future = { ...m, eventTime: BigInt(NOW_MS + 60_000) * 1000n } as SbeMessage;
    const [item] = decodeItem(frame(encodeMessage(future), 4), clock);
    expect(item).to.deep.include({ kind: 'rejected', source: 'validation', code: 'FUTURE_TIME', offset: 4 });
  });

  it('decodeStream passes every item of a stream through, in order', async () => {
    const [a, b] = messages(2);
    const out = await collect(
      decodeStream(items([frame(encodeMessage(a!)), frame(encodeMessage(b!), 99)]), clock),
    );
    expect(out.map((x) => x.offset)).to.deep.equal([0, 99]);
  });
});

describe('dataset events: merge of the streams by event time (issue 16)', () => {
  const times = (out: DatasetItem[]) => out.map((x) => (x as DatasetEvent).eventTimeUs);

  it('ordered streams merge into one event-time order; equal times keep stream order', async () => {
    const stats: MergeStats = { late: 0, maxLatenessUs: 0 };
    const out = await collect(
      mergeByEventTime(
        [
          items([event('a', 1, 0), event('a', 4, 1), event('a', 9, 2)]),
          items([event('b', 2, 0), event('b', 4, 1)]),
          items([event('c', 3, 0), event('c', 10, 1)]),
        ],
        stats,
        4,
      ),
    );
    expect(times(out)).to.deep.equal([1, 2, 3, 4, 4, 9, 10]);
    expect(out.map((x) => x.stream).slice(3, 5)).to.deep.equal(['a', 'b']);
    expect(stats).to.deep.equal({ late: 0, maxLatenessUs: 0 });
  });

  it('disorder within the window is repaired: nothing late', async () => {
    const stats: MergeStats = { late: 0, maxLatenessUs: 0 };
    const out = await collect(
      mergeByEventTime([items([5, 3, 4, 1, 2].map((t, i) => event('a', t, i)))], stats, 5),
    );
    expect(times(out)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(stats.late).to.equal(0);
  });

  it('an event displaced beyond the window is still emitted, counted late with its lateness', async () => {
    const stats: MergeStats = { late: 0, maxLatenessUs: 0 };
    const out = await collect(
      mergeByEventTime([items([10, 20, 30, 40, 5].map((t, i) => event('a', t, i)))], stats, 2),
    );
    expect(times(out)).to.deep.equal([10, 20, 30, 5, 40]);
    expect(stats).to.deep.equal({ late: 1, maxLatenessUs: 25 });
  });

  it('rejected items pass through; a window below 1 is refused', async () => {
    const rejected: DatasetItem = {
      kind: 'rejected',
      stream: 'b',
      key: 'b/o',
      offset: 3,
      source: 'decode',
      code: 'TRUNCATED',
      error: 'x',
    };
    const stats: MergeStats = { late: 0, maxLatenessUs: 0 };
    const out = await collect(mergeByEventTime([items([event('a', 1, 0)]), items([rejected])], stats));
    expect(out).to.have.length(2);
    expect(out.filter((x) => x.kind === 'rejected')).to.deep.equal([rejected]);
    await collect(mergeByEventTime([items([])], stats, 0)).then(
      () => expect.fail('accepted a window of 0'),
      (err: Error) => expect(err.message).to.equal('the reorder window must be >= 1, got 0'),
    );
  });

  it('a consumer that stops early closes every stream still open', async () => {
    const closed: string[] = [];
    async function* stream(name: string): AsyncGenerator<DatasetItem> {
      try {
        for (let i = 0; i < 100; i++) {
          await Promise.resolve();
          yield event(name, i, i);
        }
      } finally {
        closed.push(name);
      }
    }
    const stats: MergeStats = { late: 0, maxLatenessUs: 0 };
    for await (const item of mergeByEventTime([stream('a'), stream('b')], stats, 4)) {
      if (item.kind === 'event') break;
    }
    expect(closed.sort()).to.deep.equal(['a', 'b']);
  });
});
