import { expect } from 'chai';
import type { PutRecordsCommandInput, PutRecordsResultEntry } from '@aws-sdk/client-kinesis';
import { deaggregate } from '../../../src/replay/kpl';
import {
  MAX_BYTES_PER_CALL,
  MAX_RECORDS_PER_CALL,
  PublishAbortedError,
  PutRecordsError,
  publishEvents,
} from '../../../src/replay/producer';
import type { PutRecordsFn, RecordMode } from '../../../src/replay/producer';
import { simulate } from '../../../src/replay/simulator';
import type { SimulatedEvent } from '../../../src/replay/simulator';
import { eventTimeUs } from '../../../src/replay/wall-clock';
import { decodeFrames } from '../../../src/sbe/decoder';
import type { SbeMessage } from '../../../src/sbe/messages';

const STREAMS = { trade: 's-trade', bestbidask: 's-bba', depth: 's-depth' } as const;
const SIM = { seed: 4, symbols: ['BTCUSDT', 'ETHUSDT'], startTimeUs: 1_700_000_000_000_000n };

interface Stored {
  stream: string;
  partitionKey: string;
  data: Buffer;
}

/** An in-memory Kinesis: records every accepted entry in order; `fail` decides per entry whether to reject it. */
function fakeKinesis(fail: (call: number, index: number) => string | undefined = () => undefined): {
  put: PutRecordsFn;
  stored: Stored[];
  calls: PutRecordsCommandInput[];
} {
  const stored: Stored[] = [];
  const calls: PutRecordsCommandInput[] = [];
  let seq = 0;
  const put: PutRecordsFn = (input) => {
    const call = calls.length;
    calls.push(input);
    const records: PutRecordsResultEntry[] = (input.Records ?? []).map((r, i) => {
      const code = fail(call, i);
      if (code !== undefined) return { ErrorCode: code, ErrorMessage: `Rate exceeded (${code})` };
      stored.push({ stream: input.StreamName!, partitionKey: r.PartitionKey!, data: Buffer.from(r.Data!) });
      return {
        ShardId: `shardId-00000000000${r.PartitionKey === 'BTCUSDT' ? 0 : 1}`,
        SequenceNumber: String(++seq),
      };
    });
    const failed = records.filter((r) => r.ErrorCode !== undefined).length;
    return new Promise((resolve) =>
      setImmediate(() => resolve({ Records: records, FailedRecordCount: failed })),
    );
  };
  return { put, stored, calls };
}

/** What arrived, decoded back to messages, grouped by stream name and partition key, in arrival order. */
function arrived(stored: readonly Stored[]): Map<string, SbeMessage[]> {
  const out = new Map<string, SbeMessage[]>();
  for (const s of stored) {
    for (const user of deaggregate(s.data, s.partitionKey)) {
      const key = `${s.stream}/${user.partitionKey}`;
      const list = out.get(key) ?? [];
      for (const f of decodeFrames(user.data)) list.push(f.message);
      out.set(key, list);
    }
  }
  return out;
}

function expected(events: readonly SimulatedEvent[]): Map<string, SbeMessage[]> {
  const out = new Map<string, SbeMessage[]>();
  for (const e of events) {
    const key = `${STREAMS[e.stream]}/${e.message.symbol}`;
    const list = out.get(key) ?? [];
    list.push(e.message);
    out.set(key, list);
  }
  return out;
}

/** Each stream/symbol's messages as one JSON text (bigints as strings). */
function asJson(bySymbol: Map<string, SbeMessage[]>): Array<[string, string]> {
  return [...bySymbol].map(([key, messages]) => [
    key,
    JSON.stringify(messages, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
  ]);
}

/** A fake clock whose sleep advances time at once; its wall clock reads EPOCH_MS + the monotonic time. */
const EPOCH_MS = 1_700_000_000_000;
function fakeClock(): {
  now: () => number;
  wallClockMs: () => number;
  sleep: (ms: number) => Promise<void>;
  slept: number[];
} {
  let t = 0;
  const slept: number[] = [];
  return {
    now: () => t,
    wallClockMs: () => EPOCH_MS + t,
    sleep: (ms) => {
      slept.push(ms);
      t += ms;
      // Like a real timer, let pending I/O (the fake Kinesis answers) run.
      return new Promise((resolve) => setImmediate(resolve));
    },
    slept,
  };
}

describe('replay/producer', () => {
  for (const mode of ['kpl', 'concat', 'single'] as RecordMode[]) {
    it(`delivers every event once, in order per stream and symbol (${mode})`, async () => {
      const events = [...simulate(SIM, 6000)];
      const kinesis = fakeKinesis();
      const summary = await publishEvents(events, {
        streams: STREAMS,
        putRecords: kinesis.put,
        recordMode: mode,
        maxRecordBytes: 8192,
      });
      expect(arrived(kinesis.stored)).to.deep.equal(expected(events));
      expect(summary.events).to.equal(6000);
      expect(summary.recordMode).to.equal(mode);
      expect(summary.stoppedBy).to.equal('source-end');
      expect(summary.records).to.equal(kinesis.stored.length);
      expect(summary.putRecordsCalls).to.equal(kinesis.calls.length);
      const perStream = { trade: 0, bestbidask: 0, depth: 0 };
      for (const e of events) perStream[e.stream]++;
      expect(summary.eventsPerStream).to.deep.equal(perStream);
      expect(summary.recordBytes).to.equal(kinesis.stored.reduce((n, s) => n + s.data.length, 0));
      if (mode === 'single') expect(summary.records).to.equal(6000);
      else expect(summary.records).to.be.lessThan(200);
      for (const s of kinesis.stored) expect(s.data.length).to.be.at.most(8192);
      const shards = summary.shards[STREAMS.trade]!;
      expect(Object.keys(shards).sort()).to.deep.equal(['shardId-000000000000', 'shardId-000000000001']);
      expect(shards['shardId-000000000000']!.records).to.be.greaterThan(0);
    });
  }

  it('keeps each PutRecords call within 500 records', async () => {
    const events = [...simulate(SIM, 3000)];
    const kinesis = fakeKinesis();
    await publishEvents(events, { streams: STREAMS, putRecords: kinesis.put, recordMode: 'single' });
    expect(kinesis.calls.some((c) => c.Records!.length === MAX_RECORDS_PER_CALL)).to.equal(true);
    for (const c of kinesis.calls) expect(c.Records!.length).to.be.at.most(MAX_RECORDS_PER_CALL);
    expect(arrived(kinesis.stored)).to.deep.equal(expected(events));
  });

  it('keeps each PutRecords call within 5 MiB: the byte bound splits a publication of more than 5 MiB', async function () {
    this.timeout(30000);
    // Big records: 1 MiB aggregates of 60-level depth snapshots, about 10 MB in all and a few records per call, so
    // the 5 MiB bound (not the 500-record one) is the one that binds.
    const big = fakeKinesis();
    const maxRecordBytes = 1024 * 1024;
    const bigEvents = [...simulate({ ...SIM, symbols: ['BTCUSDT'], snapshotLevels: 60 }, 60000)].filter(
      (e) => e.stream === 'depth',
    );
    await publishEvents(bigEvents, {
      streams: STREAMS,
      putRecords: big.put,
      recordMode: 'concat',
      maxRecordBytes,
      lingerMs: 1e9,
    });
    const bytesOf = (c: PutRecordsCommandInput) =>
      c.Records!.reduce((n, r) => n + r.Data!.length + r.PartitionKey!.length, 0);
    const total = big.calls.reduce((n, c) => n + bytesOf(c), 0);
    expect(total, 'bytes published').to.be.greaterThan(MAX_BYTES_PER_CALL);
    expect(big.calls.length, 'PutRecords calls').to.be.at.least(2);
    for (const [i, c] of big.calls.entries()) {
      expect(bytesOf(c), `call ${i}`).to.be.at.most(MAX_BYTES_PER_CALL);
      expect(c.Records!.length, `call ${i}: records`).to.be.below(MAX_RECORDS_PER_CALL);
      // Every call but the last was cut by the byte bound: one more record would have crossed it.
      if (i < big.calls.length - 1) {
        expect(bytesOf(c) + maxRecordBytes, `call ${i} cut early`).to.be.greaterThan(MAX_BYTES_PER_CALL);
      }
    }
    // Compared as JSON per stream and symbol: chai's deep equality takes seconds on 13,000 big messages.
    expect(asJson(arrived(big.stored))).to.deep.equal(asJson(expected(bigEvents)));
  });

  for (const mode of ['kpl', 'concat', 'single'] as RecordMode[]) {
    it(`onAcknowledged: the frames of every acknowledged record, per stream, in the order stored (${mode}, retries)`, async () => {
      const events = [...simulate(SIM, 3000)];
      // Some entries of the first calls fail: they are acknowledged (and handed over) only when their retry is.
      const kinesis = fakeKinesis((call, i) => (call < 4 && i % 3 === 1 ? 'InternalFailure' : undefined));
      const clock = fakeClock();
      const acked = new Map<string, Buffer[]>();
      await publishEvents(events, {
        streams: STREAMS,
        putRecords: kinesis.put,
        recordMode: mode,
        maxRecordBytes: 4096,
        now: clock.now,
        sleep: clock.sleep,
        onAcknowledged: (stream, frames) => acked.set(stream, [...(acked.get(stream) ?? []), ...frames]),
      });
      // What a Firehose delivery stream would deliver: the stored records' user records, frame by frame.
      const stored = new Map<string, Buffer[]>();
      for (const r of kinesis.stored) {
        const frames = stored.get(r.stream) ?? [];
        for (const user of deaggregate(r.data, r.partitionKey)) {
          let pos = 0;
          for (const f of decodeFrames(user.data)) {
            frames.push(user.data.subarray(pos, pos + f.frameLength));
            pos += f.frameLength;
          }
        }
        stored.set(r.stream, frames);
      }
      expect([...acked.keys()].sort()).to.deep.equal(Object.values(STREAMS).sort());
      for (const [stream, frames] of stored) expect(acked.get(stream), stream).to.deep.equal(frames);
      expect([...acked.values()].flat()).to.have.length(3000);
    });
  }

  it('retries only the failed entries of a partial failure, with exponential backoff', async () => {
    const events = [...simulate(SIM, 2000)];
    // Every other entry of the first three calls fails.
    const kinesis = fakeKinesis((call, i) =>
      call < 3 && i % 2 === 1 ? 'ProvisionedThroughputExceededException' : undefined,
    );
    const clock = fakeClock();
    const summary = await publishEvents(events, {
      streams: STREAMS,
      putRecords: kinesis.put,
      recordMode: 'single',
      now: clock.now,
      sleep: clock.sleep,
      retry: { baseDelayMs: 50, maxDelayMs: 400 },
    });
    expect(summary.retriedEntries).to.be.greaterThan(0);
    expect(summary.records).to.equal(2000);
    expect(kinesis.stored).to.have.length(2000); // nothing written twice
    const retryCall = kinesis.calls.find((c, i) => i > 0 && c.Records!.length < MAX_RECORDS_PER_CALL / 2 + 1);
    expect(retryCall, 'a call carrying only the failed half').to.not.equal(undefined);
    expect(clock.slept.filter((ms) => ms === 50).length).to.be.greaterThan(0);
    // Same multiset of events arrived (a retried entry may land after later ones, as on Kinesis).
    const got = [...arrived(kinesis.stored).values()].flat().length;
    expect(got).to.equal(2000);
  });

  it('throws a clear error when the retries are exhausted, with a summary of what was sent', async () => {
    const events = [...simulate(SIM, 3000)].filter((e) => e.stream === 'trade');
    const kinesis = fakeKinesis((_call, i) =>
      i === 0 ? 'ProvisionedThroughputExceededException' : undefined,
    );
    const clock = fakeClock();
    let caught: unknown;
    try {
      await publishEvents(events, {
        streams: STREAMS,
        putRecords: kinesis.put,
        recordMode: 'single',
        now: clock.now,
        sleep: clock.sleep,
        retry: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 250 },
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(PublishAbortedError);
    const err = caught as PublishAbortedError;
    expect(err.cause).to.be.instanceOf(PutRecordsError);
    expect(err.message).to.match(
      /^PutRecords to stream s-trade: 1 of \d+ records still failing after 4 attempts \(ProvisionedThroughputExceededException x1; e\.g\. Rate exceeded/,
    );
    expect(clock.slept.slice(0, 3)).to.deep.equal([100, 200, 250]);
    expect(err.summary.stoppedBy).to.equal('error');
  });

  it('wraps a failing call with the stream name', async () => {
    const put: PutRecordsFn = () =>
      Promise.reject(Object.assign(new Error('Stream x not found'), { name: 'ResourceNotFoundException' }));
    const events = [...simulate(SIM, 10)];
    let caught: unknown;
    try {
      await publishEvents(events, { streams: STREAMS, putRecords: put });
    } catch (err) {
      caught = err;
    }
    expect((caught as Error).message).to.match(
      /PutRecords to stream s-\w+ failed \(\d+ records\): ResourceNotFoundException: Stream x not found/,
    );
  });

  it('stops at maxEvents and closes the source', async () => {
    const kinesis = fakeKinesis();
    let closed = false;
    function* endless(): Generator<SimulatedEvent> {
      try {
        yield* simulate(SIM, Number.MAX_SAFE_INTEGER);
      } finally {
        closed = true;
      }
    }
    const summary = await publishEvents(endless(), {
      streams: STREAMS,
      putRecords: kinesis.put,
      maxEvents: 1234,
    });
    expect(summary.events).to.equal(1234);
    expect(summary.stoppedBy).to.equal('max-events');
    expect(closed).to.equal(true);
    expect([...arrived(kinesis.stored).values()].flat()).to.have.length(1234);
  });

  it('paces events at the requested rate and honours the duration', async () => {
    const kinesis = fakeKinesis();
    const clock = fakeClock();
    const summary = await publishEvents(simulate(SIM, 1_000_000), {
      streams: STREAMS,
      putRecords: kinesis.put,
      eventsPerSecond: 1000,
      durationMs: 2000,
      now: clock.now,
      sleep: clock.sleep,
    });
    expect(summary.stoppedBy).to.equal('duration');
    expect(summary.events).to.be.within(1999, 2001);
    expect(summary.elapsedMs).to.equal(2000);
    expect(summary.eventsPerSecond).to.be.within(999, 1001);
  });

  it('sends each event within the linger time at a slow rate', async () => {
    const clock = fakeClock();
    const kinesis = fakeKinesis();
    const sentAt: number[] = [];
    const put: PutRecordsFn = (input) => {
      sentAt.push(clock.now());
      return kinesis.put(input);
    };
    const events = [...simulate(SIM, 10)];
    await publishEvents(events, {
      streams: STREAMS,
      putRecords: put,
      eventsPerSecond: 2,
      lingerMs: 200,
      now: clock.now,
      sleep: clock.sleep,
    });
    // Event i is due at 500 i ms and must be on its way by 500 i + 200 ms: one call per event.
    expect(sentAt).to.have.length(10);
    sentAt.forEach((t, i) => expect(t).to.be.within(500 * i, 500 * i + 200));
    expect(arrived(kinesis.stored)).to.deep.equal(expected(events));
  });

  it('notBeforeEventTime: holds every event until the wall clock reaches its time, then publishes it soon', async () => {
    const clock = fakeClock();
    const kinesis = fakeKinesis();
    // Calls with the wall time they were made at, to compare with the event times they carry.
    const calls: { wallMs: number; input: PutRecordsCommandInput }[] = [];
    const put: PutRecordsFn = (input) => {
      calls.push({ wallMs: clock.wallClockMs(), input });
      return kinesis.put(input);
    };
    // Starts 1 s in the past and runs ~2 s ahead of the clock when published as fast as possible.
    const events = [...simulate({ ...SIM, startTimeUs: BigInt(EPOCH_MS - 1000) * 1000n }, 3000)];
    const lastTimeUs = eventTimeUs(events[events.length - 1]!.message);
    expect(lastTimeUs > BigInt(EPOCH_MS + 1000) * 1000n, 'the source runs ahead').to.equal(true);
    const lingerMs = 100;
    const summary = await publishEvents(events, {
      streams: STREAMS,
      putRecords: put,
      notBeforeEventTime: true,
      lingerMs,
      now: clock.now,
      sleep: clock.sleep,
      wallClockMs: clock.wallClockMs,
    });
    expect(arrived(kinesis.stored)).to.deep.equal(expected(events));
    // Publishing waited for the clock: it ended at the last event's time.
    expect(summary.events).to.equal(3000);
    expect(clock.wallClockMs()).to.be.within(
      Number(lastTimeUs) / 1000,
      Number(lastTimeUs) / 1000 + 2 * lingerMs,
    );
    let held = 0;
    for (const { wallMs, input } of calls) {
      for (const r of input.Records!) {
        for (const user of deaggregate(Buffer.from(r.Data!), r.PartitionKey!)) {
          for (const f of decodeFrames(user.data)) {
            const timeUs = eventTimeUs(f.message);
            expect(Number(timeUs), 'never ahead of the clock').to.be.at.most(wallMs * 1000);
            // A held event leaves at the latest two lingers after its time (a flush is checked at least once a
            // linger after the one it missed).
            if (timeUs > BigInt(EPOCH_MS) * 1000n) {
              held++;
              expect(wallMs * 1000 - Number(timeUs), 'published soon after its time').to.be.at.most(
                2 * lingerMs * 1000,
              );
            }
          }
        }
      }
    }
    expect(held).to.be.greaterThan(1000);
  });

  it('notBeforeEventTime: an event still held when the duration ends is neither published nor counted', async () => {
    const clock = fakeClock();
    const kinesis = fakeKinesis();
    let closed = false;
    function* source(): Generator<SimulatedEvent> {
      try {
        // The first event is due 10 s from now, after the 2 s duration.
        yield* simulate({ ...SIM, startTimeUs: BigInt(EPOCH_MS + 10_000) * 1000n }, 100);
      } finally {
        closed = true;
      }
    }
    const summary = await publishEvents(source(), {
      streams: STREAMS,
      putRecords: kinesis.put,
      notBeforeEventTime: true,
      durationMs: 2000,
      now: clock.now,
      sleep: clock.sleep,
      wallClockMs: clock.wallClockMs,
    });
    expect(summary).to.include({ events: 0, stoppedBy: 'duration', elapsedMs: 2000 });
    expect(kinesis.stored).to.have.length(0);
    expect(closed).to.equal(true);
    // Without the option the same source is published at once.
    const eager = await publishEvents(
      simulate({ ...SIM, startTimeUs: BigInt(EPOCH_MS + 10_000) * 1000n }, 100),
      {
        streams: STREAMS,
        putRecords: fakeKinesis().put,
        now: clock.now,
        sleep: clock.sleep,
        wallClockMs: clock.wallClockMs,
      },
    );
    expect(eager).to.include({ events: 100, elapsedMs: 0 });
  });

  it('writes a progress line at most once per interval, to the given stream only', async () => {
    const clock = fakeClock();
    const lines: string[] = [];
    await publishEvents(simulate(SIM, 5000), {
      streams: STREAMS,
      putRecords: fakeKinesis().put,
      eventsPerSecond: 1000,
      now: clock.now,
      sleep: clock.sleep,
      progress: { write: (t: string) => lines.push(t) },
    });
    // 5 s of simulated wall time: ~5 periodic lines plus the final one.
    expect(lines.length).to.be.within(5, 7);
    expect(lines[0]).to.match(
      /^replay: \d+ events \(trade \d+, bestbidask \d+, depth \d+\), \d+ records, \d+ events\/s\n$/,
    );
  });

  it('publishes what came before a source error, then rejects with it', async () => {
    const kinesis = fakeKinesis();
    const events = [...simulate(SIM, 300)];
    async function* failing(): AsyncGenerator<SimulatedEvent> {
      for (const e of events) yield await Promise.resolve(e);
      throw new Error('bad row 301');
    }
    let caught: unknown;
    try {
      await publishEvents(failing(), { streams: STREAMS, putRecords: kinesis.put });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(PublishAbortedError);
    const err = caught as PublishAbortedError;
    expect(err.message).to.equal('bad row 301');
    expect(err.summary.events).to.equal(300);
    expect(arrived(kinesis.stored)).to.deep.equal(expected(events));
  });

  it('stops on the abort signal and still flushes', async () => {
    const kinesis = fakeKinesis();
    const abort = new AbortController();
    let n = 0;
    function* source(): Generator<SimulatedEvent> {
      for (const e of simulate(SIM, 100000)) {
        if (++n === 500) abort.abort();
        yield e;
      }
    }
    const summary = await publishEvents(source(), {
      streams: STREAMS,
      putRecords: kinesis.put,
      signal: abort.signal,
    });
    expect(summary.stoppedBy).to.equal('signal');
    expect(summary.events).to.equal(500);
    expect([...arrived(kinesis.stored).values()].flat()).to.have.length(500);
  });

  it('rejects bad options', async () => {
    const base = { streams: STREAMS, putRecords: fakeKinesis().put };
    for (const bad of [
      { recordMode: 'zip' as RecordMode },
      { maxRecordBytes: 2 * 1024 * 1024 },
      { eventsPerSecond: -1 },
      { maxEvents: 1.5 },
      { durationMs: 0 },
    ]) {
      let caught: unknown;
      try {
        await publishEvents([], { ...base, ...bad });
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(bad)).to.be.instanceOf(RangeError);
    }
  });
});
