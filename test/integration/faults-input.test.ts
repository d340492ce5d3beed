import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import Redis from 'ioredis';
import { parseReport, type ProcessorReport } from '../../src/ops/telemetry';
import { deaggregate, encodeAggregatedRecord } from '../../src/replay/kpl';
import { publishEvents, type RecordMode } from '../../src/replay/producer';
import { Prng, simulate, type SimulatedEvent, type SimulatedStream } from '../../src/replay/simulator';
import { Keys } from '../../src/state/keys';
import { referenceState } from '../helpers/exactness';
import {
  countByCode,
  generateBadRecords,
  simulatedBaseFrames,
  type BadRecord,
} from '../helpers/frame-mutations';
import { MultiLangDriver, kinesisRecord, type Json } from '../helpers/multilang-driver';
import { snapshotStateKeys, type KeySnapshot } from '../helpers/redis-snapshot';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// Issue 7, input faults: 100,000 mutated or random records fed to the real record-processor children
// (`node dist/src/cli/main.js --config <yaml> process --stream <kind>`) over the MultiLang protocol, interleaved
// with the valid records of a simulated market, encoded as the producer encodes them and handed over as the
// daemon hands them over (KPL aggregates de-aggregated into user records with subSequenceNumbers).
//
// What the processor does with a record (src/kcl/shard-processor.ts prepare, src/sbe/decoder.ts walkFrames,
// src/events/validate.ts, src/state/lua/dead-letter-3.lua): the record it receives holds one or more SBE frames back
// to back, walked frame by frame. The valid frames before a damaged frame are decoded; a damaged frame whose extent
// is known (INVALID_ENUM, INVALID_SYMBOL) is dead-lettered alone and the frames after it are decoded too; any other
// decode error dead-letters the bytes from the damaged frame to the end of the record. A decoded frame that breaks
// a validation rule is dead-lettered alone under its code. Each dead letter is written once per (shard, sequence
// number, sub-sequence number, frame index), and dlq:{<stream>}:counts counts them per error code. Every bad record
// of the generator has exactly one bad frame, so one expected dead letter (code, frame index, bytes), and its valid
// frames belong to symbols outside processing.symbols: they are skipped and counted
// (aggregator_unlisted_symbol_events_total in each child's telemetry report), and had any been applied, that
// symbol's keys would show up in the state.

const SHARD = 'shardId-000000000000';
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
/** Symbols of the frames the bad records are made from (one non-ASCII, as Binance has). */
const BASE_SYMBOLS = ['SOLUSDT', 'BNBUSDT', 'ÄÖÜUSDT'];
const BAD_RECORDS = 100_000;
const VALID_EVENTS = 30_000;
const SEED = 20261125;
const KINDS: readonly SimulatedStream[] = ['trade', 'bestbidask', 'depth'];
/** How the producer packs each stream here: all three record modes are exercised. */
const MODES: Readonly<Record<SimulatedStream, RecordMode>> = {
  trade: 'kpl',
  bestbidask: 'single',
  depth: 'concat',
};
const STREAM_NAMES: Readonly<Record<SimulatedStream, string>> = {
  trade: 'market-sbe-trade',
  bestbidask: 'market-sbe-bestbidask',
  depth: 'market-sbe-depth',
};
/** Per processRecords action, generous for a loaded 2-core machine: a timeout here is a hang, not slowness. */
const ACTION_TIMEOUT_MS = 120_000;

interface KinesisRecordData {
  readonly data: Buffer;
  readonly partitionKey: string;
  /** The bad user records it holds (several when poison records were KPL-aggregated), none for valid ones. */
  readonly bad: readonly BadRecord[];
}

interface Batch {
  readonly records: Json[];
  /** Sequence number of the batch's last record: what the child must checkpoint. */
  readonly lastSequenceNumber: string;
  readonly badRecords: number;
}

interface Expectation {
  readonly code: string;
  readonly dataBase64: string;
  readonly partitionKey: string;
  /** The symbol the entry names (decoded frames failing validation, except INVALID_SYMBOL). */
  readonly symbol: string | undefined;
}

interface StreamFeed {
  readonly kind: SimulatedStream;
  readonly stream: string;
  readonly batches: Batch[];
  /** `<sequence number>:<sub-sequence number>:<frame index>` of every bad frame -> what its dead letter must say. */
  readonly expected: Map<string, Expectation>;
  readonly counts: Record<string, number>;
  /** Valid frames of the bad records, decoded and skipped (their symbols are not listed). */
  readonly skipped: number;
  readonly kinesisRecords: number;
  readonly userRecords: number;
  readonly badRecords: number;
}

/** The producer's records for one stream (src/replay/producer.ts), captured instead of put to Kinesis. */
async function producerRecords(events: readonly SimulatedEvent[], kind: SimulatedStream) {
  const out: KinesisRecordData[] = [];
  let seq = 0;
  await publishEvents(
    events.filter((e) => e.stream === kind),
    {
      streams: STREAM_NAMES,
      recordMode: MODES[kind],
      maxRecordBytes: 4096,
      // Records close on size only, so the packing does not depend on the machine's speed.
      lingerMs: 1e9,
      putRecords: (input) => {
        const records = (input.Records ?? []).map((r) => {
          out.push({ data: Buffer.from(r.Data ?? []), partitionKey: r.PartitionKey ?? '', bad: [] });
          return { ShardId: SHARD, SequenceNumber: String(++seq) };
        });
        return Promise.resolve({ Records: records, FailedRecordCount: 0 });
      },
    },
  );
  return out;
}

/** Packs a stream's bad user records into Kinesis records: mostly one each, some KPL-aggregated by 2..6. */
function badKinesisRecords(bad: readonly BadRecord[], rng: Prng): KinesisRecordData[] {
  const out: KinesisRecordData[] = [];
  for (let i = 0; i < bad.length;) {
    const n = rng.float() < 0.1 ? Math.min(2 + rng.int(5), bad.length - i) : 1;
    const group = bad.slice(i, i + n);
    i += n;
    const first = group[0] as BadRecord;
    out.push(
      n === 1
        ? { data: first.data, partitionKey: first.partitionKey, bad: group }
        : {
            data: encodeAggregatedRecord(group.map((r) => ({ partitionKey: r.partitionKey, data: r.data }))),
            partitionKey: first.partitionKey,
            bad: group,
          },
    );
  }
  return out;
}

/** Interleaves both lists at random (each keeps its order), numbers the records, de-aggregates them as the
 * daemon does and cuts them into processRecords batches of 1,000-5,000 user records. */
function buildFeed(
  kind: SimulatedStream,
  valid: readonly KinesisRecordData[],
  bad: readonly KinesisRecordData[],
  rng: Prng,
): StreamFeed {
  const merged: KinesisRecordData[] = [];
  let v = 0;
  let b = 0;
  while (v < valid.length || b < bad.length) {
    const takeValid = rng.int(valid.length - v + bad.length - b) < valid.length - v;
    merged.push(takeValid ? (valid[v++] as KinesisRecordData) : (bad[b++] as KinesisRecordData));
  }
  const expected = new Map<string, Expectation>();
  let skipped = 0;
  const batches: Batch[] = [];
  let current: Json[] = [];
  let currentBad = 0;
  let target = 1000 + rng.int(4001);
  let sequence = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000n;
  let userRecords = 0;
  let badRecords = 0;
  for (const record of merged) {
    sequence += 1n + BigInt(rng.int(1000)) * 1_000_000n;
    const seq = sequence.toString();
    // What the KCL hands the child: the user records of a (valid-MD5) KPL aggregate, else the record itself.
    const users = deaggregate(record.data, record.partitionKey);
    if (record.bad.length > 0) {
      // The generator's records are never KPL aggregates themselves: they reach the child as generated.
      expect(users.map((u) => u.data.toString('hex'))).to.deep.equal(
        record.bad.map((r) => r.data.toString('hex')),
      );
    }
    users.forEach((user, sub) => {
      const json = kinesisRecord(seq, user.data, user.partitionKey, sub);
      current.push(json);
      const poison = record.bad[sub];
      if (poison !== undefined) {
        expected.set(`${seq}:${sub}:${poison.frameIndex}`, {
          code: poison.expected,
          dataBase64: poison.deadLetterData.toString('base64'),
          partitionKey: user.partitionKey,
          symbol: poison.deadLetterSymbol,
        });
        skipped += poison.skipped;
        currentBad++;
      }
    });
    userRecords += users.length;
    badRecords += record.bad.length;
    if (current.length >= target) {
      batches.push({ records: current, lastSequenceNumber: seq, badRecords: currentBad });
      current = [];
      currentBad = 0;
      target = 1000 + rng.int(4001);
    }
  }
  if (current.length > 0) {
    const last = current[current.length - 1] as Json;
    batches.push({
      records: current,
      lastSequenceNumber: last.sequenceNumber as string,
      badRecords: currentBad,
    });
  }
  const counts = countByCode(
    [...expected.values()].map((e) => ({ expected: e.code as BadRecord['expected'] })),
  );
  return {
    kind,
    stream: STREAM_NAMES[kind],
    batches,
    expected,
    counts,
    skipped,
    kinesisRecords: merged.length,
    userRecords,
    badRecords,
  };
}

/** Key-by-key comparison with a short message (a deep-equal diff of thousands of keys is unreadable). */
function expectSameState(actual: KeySnapshot, expected: KeySnapshot, context: string): void {
  const missing = Object.keys(expected).filter((k) => !(k in actual));
  const extra = Object.keys(actual).filter((k) => !(k in expected));
  expect(extra, `${context}: keys that must not exist`).to.deep.equal([]);
  expect(missing, `${context}: keys missing`).to.deep.equal([]);
  const differing = Object.keys(expected).filter(
    (k) => JSON.stringify(actual[k]) !== JSON.stringify(expected[k]),
  );
  expect(differing, `${context}: keys whose content differs from the reference`).to.deep.equal([]);
}

function fields(flat: readonly string[]): Record<string, string> {
  const entry: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) entry[flat[i] as string] = flat[i + 1] as string;
  return entry;
}

/** Events of unlisted symbols a report counts as skipped (aggregator_unlisted_symbol_events_total). */
function skippedIn(report: ProcessorReport): number {
  let skipped = 0;
  for (const metric of report.metrics) {
    if (metric.name !== 'aggregator_unlisted_symbol_events_total') continue;
    for (const v of metric.values) {
      if (v.labels.action === 'skipped' && v.labels.stream === report.stream && v.labels.shard === SHARD) {
        skipped += v.value;
      }
    }
  }
  return skipped;
}

function log(line: string): void {
  process.stderr.write(`      [faults-input] ${line}\n`);
}

describe('input faults: 100,000 poison records through the record-processor children', function () {
  this.timeout(600_000);

  let tmpDir: string;
  let server: TestRedis;
  let redisPort: number;
  let redis: Redis;
  const children: MultiLangDriver[] = [];
  let validEvents: SimulatedEvent[];
  let feeds: StreamFeed[];
  let reference: KeySnapshot;
  let fedOk = false;

  function configFor(kind: SimulatedStream): string {
    const file = path.join(tmpDir, `${kind}.yaml`);
    fs.writeFileSync(
      file,
      [
        'redis:',
        '  host: "127.0.0.1"',
        `  port: ${redisPort}`,
        '  cluster_mode: false',
        'processing:',
        `  symbols: [${SYMBOLS.join(', ')}]`,
        '  order_book_levels: 10',
        '  diff_buffer_max_length: 1000',
        // Above the number of poison records, so the dead-letter streams keep every one of them.
        `  dead_letter_max_len: ${2 * BAD_RECORDS}`,
        '  batch_deadline_ms: 60000',
        '  redis_retries: 5',
        'logging:',
        '  level: "info"',
        `  file: "${kind}.log"`,
        '',
      ].join('\n'),
    );
    return file;
  }

  async function startChild(kind: SimulatedStream): Promise<MultiLangDriver> {
    const child = new MultiLangDriver(configFor(kind), tmpDir, kind);
    children.push(child);
    await child.initialize(SHARD, 'TRIM_HORIZON', 30_000);
    return child;
  }

  /** Closes stdin as the daemon does after shardEnded/leaseLost: the child exits 0, having spoken only protocol. */
  async function stopChild(child: MultiLangDriver): Promise<void> {
    child.child.stdin.end();
    const exit = await child.exit(30_000);
    expect(exit, `the child's exit; stderr: ${child.stderr}`).to.deep.equal({ code: 0, signal: null });
    child.expectOnlyProtocolOnStdout();
    expect(child.stderr, 'nothing on stderr (logs go to the file)').to.equal('');
  }

  async function feed(child: MultiLangDriver, batches: readonly Batch[]): Promise<void> {
    for (const batch of batches) {
      const { checkpoints } = await child.processRecords(batch.records, ACTION_TIMEOUT_MS);
      expect(checkpoints, 'one checkpoint at the batch’s last sequence number').to.deep.equal([
        batch.lastSequenceNumber,
      ]);
    }
  }

  /**
   * The child's telemetry report once it counts every record fed: the child publishes one on initialize and every
   * 2 s (src/app/processor.ts), so the report read here is the one after the last batch.
   */
  async function reportAfterFeed(stream: string, records: number): Promise<ProcessorReport> {
    const key = new Keys({ clusterMode: false }).processorReport(stream, SHARD);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const text = await redis.get(key);
      const report = text === null ? undefined : parseReport(text);
      if (report !== undefined && report.recordsTotal === records) return report;
      if (Date.now() > deadline) {
        throw new Error(
          `${key}: no report of ${records} records within 15 s (last: ${report?.recordsTotal})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function deadLetterCounts(stream: string): Promise<Record<string, number>> {
    const raw = await redis.hgetall(`dlq:{${stream}}:counts`);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }

  before(async () => {
    const started = Date.now();
    server = await startTestRedis('faults-input');
    tmpDir = server.dir;
    redisPort = server.port;
    redis = new Redis({ host: '127.0.0.1', port: redisPort, lazyConnect: false });

    const rng = new Prng(SEED);
    validEvents = [
      ...simulate({ seed: SEED, symbols: SYMBOLS, startTimeUs: 1_700_000_000_000_000n }, VALID_EVENTS),
    ];
    const bad = generateBadRecords(SEED, BAD_RECORDS, simulatedBaseFrames(SEED + 1, BASE_SYMBOLS, 3000));
    const badByKind: Record<SimulatedStream, BadRecord[]> = { trade: [], bestbidask: [], depth: [] };
    for (const r of bad) badByKind[KINDS[rng.int(KINDS.length)] as SimulatedStream].push(r);
    feeds = [];
    for (const kind of KINDS) {
      const valid = await producerRecords(validEvents, kind);
      feeds.push(buildFeed(kind, valid, badKinesisRecords(badByKind[kind], rng), rng));
    }
    expect(feeds.reduce((n, f) => n + f.badRecords, 0)).to.equal(BAD_RECORDS);
    expect(
      feeds.reduce((n, f) => n + f.expected.size, 0),
      'distinct (seq, subseq) per bad record',
    ).to.equal(BAD_RECORDS);
    reference = await referenceState(redisPort, validEvents);
    log(
      `set-up ${Date.now() - started} ms: ${BAD_RECORDS} bad records (${JSON.stringify(countByCode(bad))}), ` +
        `${VALID_EVENTS} valid events`,
    );
  });

  afterEach(() => {
    for (const child of children.splice(0)) child.kill();
  });

  after(async () => {
    for (const child of children.splice(0)) child.kill();
    redis?.disconnect();
    await server?.stop();
  });

  it('dead-letters each bad frame once, under its code, skips the valid frames beside it and applies the valid records exactly', async () => {
    const started = process.hrtime.bigint();
    const perStream = await Promise.all(
      feeds.map(async (f) => {
        const child = await startChild(f.kind);
        const t0 = process.hrtime.bigint();
        await feed(child, f.batches);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const report = await reportAfterFeed(f.stream, f.userRecords);
        await stopChild(child);
        return { ms, report };
      }),
    );
    const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
    feeds.forEach((f, i) => {
      const ms = perStream[i]?.ms ?? 0;
      log(
        `${f.stream}: ${f.batches.length} batches, ${f.kinesisRecords} Kinesis records, ${f.userRecords} user ` +
          `records (${f.badRecords} bad) in ${Math.round(ms)} ms = ${Math.round((f.userRecords * 1000) / ms)} ` +
          `records/s, ${Math.round((f.badRecords * 1000) / ms)} bad records/s`,
      );
    });
    const users = feeds.reduce((n, f) => n + f.userRecords, 0);
    log(
      `all streams in parallel (3 children): ${Math.round(totalMs)} ms; ${Math.round((BAD_RECORDS * 1000) / totalMs)} ` +
        `bad records/s, ${Math.round((users * 1000) / totalMs)} records/s overall`,
    );

    // Counted per code, exactly, and nothing else.
    let total = 0;
    for (const f of feeds) {
      const counts = await deadLetterCounts(f.stream);
      expect(counts, `${f.stream} dead-letter counts`).to.deep.equal(f.counts);
      total += Object.values(counts).reduce((a, b) => a + b, 0);
    }
    expect(total).to.equal(BAD_RECORDS);

    // The valid frames beside the bad ones were decoded and skipped (their symbols are not listed), each once.
    feeds.forEach((f, i) => {
      const report = perStream[i]?.report as ProcessorReport;
      expect(skippedIn(report), `${f.stream}: aggregator_unlisted_symbol_events_total`).to.equal(f.skipped);
      expect(report.unlistedSkippedTotal, `${f.stream}: unlistedSkippedTotal`).to.equal(f.skipped);
      expect(report.deadLettersTotal, `${f.stream}: deadLettersTotal`).to.equal(f.badRecords);
    });
    log(`valid frames of bad records skipped: ${feeds.map((f) => `${f.stream} ${f.skipped}`).join(', ')}`);

    // Every bad frame is in its stream's dead-letter stream once, with its own code, frame index and bytes.
    const checkStarted = Date.now();
    for (const f of feeds) {
      const key = `dlq:{${f.stream}}`;
      expect(await redis.xlen(key), key).to.equal(f.badRecords);
      const seen = new Set<string>();
      const wrong: string[] = [];
      let from = '-';
      for (;;) {
        const page = await redis.xrange(key, from, '+', 'COUNT', 10000);
        for (const [, flat] of page) {
          const e = fields(flat);
          const id = `${e.sequence_number}:${e.sub_sequence_number}:${e.frame_index}`;
          const want = f.expected.get(id);
          if (seen.has(id)) wrong.push(`${id} twice`);
          seen.add(id);
          if (
            want === undefined ||
            e.error_code !== want.code ||
            e.data_base64 !== want.dataBase64 ||
            e.partition_key !== want.partitionKey ||
            e.symbol !== want.symbol ||
            e.shard !== SHARD
          ) {
            wrong.push(
              `${id}: ${e.error_code} symbol ${e.symbol} data ${e.data_base64} (expected ` +
                (want === undefined
                  ? 'no dead letter'
                  : `${want.code} symbol ${want.symbol} data ${want.dataBase64}`) +
                ')',
            );
          }
        }
        if (page.length < 10000) break;
        from = `(${page[page.length - 1]?.[0] ?? ''}`;
      }
      expect(wrong.slice(0, 10), `${key}: wrong entries (${wrong.length})`).to.deep.equal([]);
      expect(seen.size, key).to.equal(f.expected.size);
    }
    log(`dead-letter streams checked entry by entry in ${Date.now() - checkStarted} ms`);

    // The valid records around them: the state is what they leave when written once, in order.
    const stateStarted = Date.now();
    const state = await snapshotStateKeys(redis);
    log(`state snapshot (db 0, ${Object.keys(state).length} state keys) in ${Date.now() - stateStarted} ms`);
    expect(Object.keys(reference)).to.include.members(SYMBOLS.map((s) => `ob:${s}`));
    expectSameState(state, reference, 'after the feed');
    fedOk = true;
  });

  it('a redelivery of part of the stream (same sequence numbers, a restarted child) changes nothing', async function () {
    if (!fedOk) this.skip();
    const rng = new Prng(SEED ^ 0x5bd1e995);
    const countsBefore = await Promise.all(feeds.map((f) => deadLetterCounts(f.stream)));
    const lengths = await Promise.all(feeds.map((f) => redis.xlen(`dlq:{${f.stream}}`)));
    let redelivered = 0;
    let redeliveredBad = 0;
    await Promise.all(
      feeds.map(async (f) => {
        // From an earlier checkpoint on, as after a crash before the next checkpoint: two consecutive batches.
        const first = rng.int(f.batches.length - 1);
        const again = f.batches.slice(first, first + 2);
        redelivered += again.reduce((n, b) => n + b.records.length, 0);
        redeliveredBad += again.reduce((n, b) => n + b.badRecords, 0);
        const child = await startChild(f.kind);
        await feed(child, again);
        await stopChild(child);
      }),
    );
    log(`redelivered ${redelivered} records (${redeliveredBad} bad)`);
    expect(redeliveredBad).to.be.greaterThan(0);
    expect(await Promise.all(feeds.map((f) => deadLetterCounts(f.stream)))).to.deep.equal(countsBefore);
    expect(await Promise.all(feeds.map((f) => redis.xlen(`dlq:{${f.stream}}`)))).to.deep.equal(lengths);
    expectSameState(await snapshotStateKeys(redis), reference, 'after the redelivery');
  });
});
