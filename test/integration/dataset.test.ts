import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { DuckDBInstance } from '@duckdb/node-api';
import { Command } from 'commander';
import { expect } from 'chai';
import { runDatasetBuild, type DatasetBuildRun } from '../../src/app/dataset';
import { registerDataset } from '../../src/cli/commands/dataset';
import type { DatasetRow } from '../../src/dataset/builder';
import { buildDataset } from '../../src/dataset/builder';
import { csvText, datasetColumns, DatasetOutputError, openDatasetSink } from '../../src/dataset/output';
import { partialPath } from '../../src/common/partial-file';
import { startScratchRedis, type ScratchRedis } from '../../src/dataset/scratch-redis';
import { parseConfig } from '../../src/config/config';
import { computeFeatures, FEATURE_NAMES, WATERMARK_FIELDS } from '../../src/features/compute';
import { readSnapshot } from '../../src/features/snapshot';
import { FEATURE_SCHEMA_VERSION } from '../../src/features/types';
import { compareVectors } from '../../src/features/verify';
import type { ArchiveReader } from '../../src/archive/types';
import type { SimulatedEvent } from '../../src/replay/simulator';
import { encodeMessage } from '../../src/sbe/encoder';
import type { SbeMessage } from '../../src/sbe/messages';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';
import { ReferenceBook } from '../helpers/book-reference';
import { canonical8 } from '../helpers/canonical';
import { memoryArchive, simulateUntil, STREAM_NAMES } from '../helpers/memory-archive';

// Issue 16, the dataset builder against a real redis-server (its own scratch server, as the command starts it):
// simulated events archived in memory, rows built at every tick, each vector recomputed from a state replayed
// independently up to the tick's point-in-time cut, labels recomputed from the events by independent models
// (ReferenceBook for the mid, the highest trade id for the last price), the Parquet file read back by DuckDB.

const SYMBOL = 'BTCUSDT';
const START_US = 1_760_000_000_000_000n; // aligned to 2 s
const START_MS = Number(START_US / 1000n);
const END_US = START_US + 30_000_000n; // 30 s of events
const FROM_MS = START_MS + 12_000;
const TO_MS = START_MS + 24_000;
const INTERVAL_MS = 2000;
const HORIZONS_MS = [2000, 10_000];
const LATENCY_MS = 150;
const WRITER = { orderBookLevels: 10, diffBufferMaxLength: 1000, deadLetterMaxLen: 1000 };
const STREAMS = Object.values(STREAM_NAMES);

/** The command-path build (runDatasetBuild: its own redis-server and file) of the test's range. */
function commandRun(
  run: Pick<DatasetBuildRun, 'reader' | 'out' | 'format' | 'commandLine' | 'redisServerCommand'>,
): DatasetBuildRun {
  return {
    archive: 'memory://test',
    streams: STREAMS,
    symbols: [SYMBOL],
    fromMs: FROM_MS,
    toMs: TO_MS,
    intervalMs: INTERVAL_MS,
    horizonsMs: HORIZONS_MS,
    latencyMs: LATENCY_MS,
    orderBookLevels: 10,
    maxFutureSkewMs: 5000,
    ...run,
  };
}

/** The independent label model: the mid of ReferenceBook and the price of the highest trade id up to x. */
function referenceMarks(events: readonly SimulatedEvent[], points: readonly number[]) {
  const sorted = [...events].sort((a, b) => Number(a.message.eventTime - b.message.eventTime));
  const book = new ReferenceBook({ levels: 10, bufferMax: 1000 });
  let bestTrade: { id: bigint; price: string } | undefined;
  const out = new Map<number, { mid: string; last: string }>();
  let i = 0;
  for (const p of [...points].sort((a, b) => a - b)) {
    while (i < sorted.length && sorted[i]!.message.eventTime <= BigInt(p) * 1000n) {
      const m: SbeMessage = sorted[i++]!.message;
      if (m.message === 'TradesStreamEvent') {
        for (const t of m.trades) {
          if (bestTrade === undefined || t.id > bestTrade.id)
            bestTrade = { id: t.id, price: canonical8(t.priceMantissa, m.priceExponent) };
        }
      } else if (m.message === 'BestBidAskStreamEvent') book.applyBestBidAskBatch([m]);
      else book.applyDepthBatch([m]);
    }
    out.set(p, { mid: book.ob.get('mid_price') ?? '', last: bestTrade?.price ?? '' });
  }
  return out;
}

describe('dataset build (issue 16): replay of an archive into rows, point in time', function () {
  this.timeout(180_000);
  let events: SimulatedEvent[];
  let scratch: ScratchRedis;
  let client: RedisClient;
  let dir: string;

  before(async () => {
    events = simulateUntil(5, [SYMBOL], START_US, END_US);
    scratch = await startScratchRedis();
    client = createRedisClient(parseConfig({ redis: { port: scratch.port } }).redis, {
      connectionName: 'ref',
    });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dataset-it-'));
  });

  after(async () => {
    client?.disconnect();
    await scratch?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a row at every tick; vectors equal to the sidecar code on an independent replay to each cut; labels equal to independent models; Parquet read back by DuckDB', async () => {
    const archive = memoryArchive(events, { framesPerObject: 300 });
    const out = path.join(dir, 'ds.parquet');
    const rows: DatasetRow[] = [];
    const summary = await buildDataset({
      reader: archive,
      streams: STREAMS,
      symbols: [SYMBOL],
      fromMs: FROM_MS,
      toMs: TO_MS,
      intervalMs: INTERVAL_MS,
      horizonsMs: HORIZONS_MS,
      latencyMs: LATENCY_MS,
      client,
      keys: new Keys({ clusterMode: false }),
      writerOptions: WRITER,
      onRow: (row) => rows.push(row),
    });
    // (a) every tick in range, once.
    const ticks = [12, 14, 16, 18, 20, 22, 24].map((s) => START_MS + s * 1000);
    expect(rows.map((r) => r.tickMs)).to.deep.equal(ticks);
    expect(summary).to.include({ ticks: 7, rows: 7, late: 0, otherSymbols: 0 });
    expect(summary.rejected).to.deep.equal([]);
    const read = Object.values(summary.eventsByStream).reduce((a, b) => a + b, 0);
    expect(read).to.be.greaterThan(1000);

    // (b) the same vector as the sidecar's code on a state replayed independently to t - latency.
    const sorted = [...events].sort((a, b) => Number(a.message.eventTime - b.message.eventTime));
    const keys = new Keys({ clusterMode: false });
    await client.flushdb();
    const writer = new StateWriter(client, keys, WRITER);
    let at = 0;
    for (const row of rows) {
      const cutUs = BigInt(row.tickMs - LATENCY_MS) * 1000n;
      const batch: SbeMessage[] = [];
      while (at < sorted.length && sorted[at]!.message.eventTime <= cutUs) batch.push(sorted[at++]!.message);
      if (batch.length > 0) await writer.write(groupBySymbol(batch).values(), []);
      const expected = computeFeatures(await readSnapshot(client, keys, SYMBOL), row.tickMs);
      expect(
        compareVectors(
          Object.fromEntries(Object.entries(row.vector).map(([k, v]) => [k, String(v)])),
          expected,
        ),
      ).to.deep.equal([]);
      expect(row.vector.feature_ts).to.equal(row.tickMs);
      expect(Number(row.vector.completeness)).to.be.greaterThan(0.5);
    }

    // (c) labels from the independent models; empty past the archive's end (never another horizon's value).
    const lastUs = Number(sorted.at(-1)!.message.eventTime);
    const marks = referenceMarks(
      events,
      rows.flatMap((r) => [r.tickMs, ...HORIZONS_MS.map((h) => r.tickMs + h)]),
    );
    let empty = 0;
    for (const row of rows) {
      const base = marks.get(row.tickMs)!;
      const expected = HORIZONS_MS.flatMap((h) => {
        if ((row.tickMs + h) * 1000 > lastUs) return [null, null, null];
        const m = marks.get(row.tickMs + h)!;
        return [m.mid, m.last, Number(m.mid) / Number(base.mid) - 1];
      });
      expect(row.labels.length).to.equal(6);
      row.labels.forEach((v, i) => {
        const e = expected[i];
        if (typeof e === 'number') expect(v).to.be.closeTo(e, 1e-12);
        else expect(v).to.equal(e);
      });
      if (row.labels[3] === null) empty++;
    }
    // Events up to just before 30 s: t + 10 s is past the end for t = 20, 22 and 24 s; t + 2 s never is.
    expect(empty).to.equal(3);
    expect(rows.every((r) => r.labels[0] !== null)).to.equal(true);

    // (d) the whole command path (own redis-server, Parquet), read back by DuckDB.
    const built = await runDatasetBuild(
      commandRun({ reader: archive, out, format: 'parquet', commandLine: 'aggregator dataset build --test' }),
    );
    expect(built.rows).to.equal(7);
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    const described = (
      await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${out}')`)
    ).getRowObjects();
    const duckType = { string: 'VARCHAR', int64: 'BIGINT', int32: 'INTEGER', double: 'DOUBLE' } as const;
    expect(described.map((d) => [d.column_name, d.column_type])).to.deep.equal(
      datasetColumns(HORIZONS_MS).map((c) => [c.name, duckType[c.type]]),
    );
    const data = (
      await conn.runAndReadAll(`SELECT * FROM read_parquet('${out}') ORDER BY tick_ms`)
    ).getRowObjects();
    expect(data).to.have.length(7);
    data.forEach((r, i) => {
      const row = rows[i]!;
      expect(r.symbol).to.equal(SYMBOL);
      expect(r.tick_ms).to.equal(BigInt(row.tickMs));
      expect(r.feature_ts).to.equal(BigInt(row.tickMs));
      expect(r.schema_version).to.equal(FEATURE_SCHEMA_VERSION);
      for (const name of FEATURE_NAMES) {
        if (name === 'feature_ts' || name === 'schema_version') continue;
        expect(r[name], name).to.equal(row.vector[name]);
      }
      for (const name of WATERMARK_FIELDS) expect(r[name], name).to.equal(row.vector[name]);
      expect([
        r.label_mid_2s,
        r.label_price_2s,
        r.label_ret_2s,
        r.label_mid_10s,
        r.label_price_10s,
        r.label_ret_10s,
      ]).to.deep.equal(row.labels);
    });
    const meta = (await conn.runAndReadAll(`SELECT * FROM parquet_kv_metadata('${out}')`)).getRowObjects();
    const kv = new Map(
      meta.map((m) => [
        Buffer.from((m.key as { bytes: Uint8Array }).bytes).toString(),
        Buffer.from((m.value as { bytes: Uint8Array }).bytes).toString(),
      ]),
    );
    expect(kv.get('schema_version')).to.equal(String(FEATURE_SCHEMA_VERSION));
    expect(kv.get('command_line')).to.equal('aggregator dataset build --test');
    expect(JSON.parse(kv.get('input_range')!)).to.include({
      from_ms: FROM_MS,
      to_ms: TO_MS,
      latency_ms: LATENCY_MS,
    });
    conn.closeSync();
  });

  const build = async (
    reader: ArchiveReader,
    reorderWindow?: number,
    symbols: readonly string[] = [SYMBOL],
  ) => {
    const rows: DatasetRow[] = [];
    const summary = await buildDataset({
      reader,
      streams: STREAMS,
      symbols,
      fromMs: FROM_MS,
      toMs: TO_MS,
      intervalMs: INTERVAL_MS,
      horizonsMs: HORIZONS_MS,
      latencyMs: LATENCY_MS,
      client,
      keys: new Keys({ clusterMode: false }),
      writerOptions: WRITER,
      ...(reorderWindow === undefined ? {} : { reorderWindow }),
      onRow: (row) => rows.push(row),
    });
    return { rows, summary };
  };

  it('bad archive data (damage, an undecodable frame, an invalid event) is reported with key and offset and skipped; the rows are built', async () => {
    const clean = await build(memoryArchive(events, { framesPerObject: 300 }));
    const good = encodeMessage(events.find((e) => e.stream === 'trade')!.message);
    const bba = events.find((e) => e.stream === 'bestbidask')!.message;
    const invalid = encodeMessage({ ...bba, symbol: 'BTC-USDT' });
    const archive = memoryArchive(events, {
      framesPerObject: 300,
      extra: [
        {
          stream: STREAM_NAMES.depth,
          after: 10,
          item: {
            kind: 'damage',
            damage: {
              stream: STREAM_NAMES.depth,
              key: 'depth/bad.gz',
              offset: 4096,
              code: 'CORRUPT_GZIP',
              error: 'invalid gzip data',
              bytes: 100,
            },
          },
        },
        {
          stream: STREAM_NAMES.trade,
          after: 5,
          item: {
            kind: 'frame',
            frame: {
              stream: STREAM_NAMES.trade,
              key: 'trade/t.bin',
              offset: 64,
              bytes: good.subarray(0, 20),
            },
          },
        },
        {
          stream: STREAM_NAMES.bestbidask,
          after: 7,
          item: {
            kind: 'frame',
            frame: { stream: STREAM_NAMES.bestbidask, key: 'bba/b.bin', offset: 128, bytes: invalid },
          },
        },
      ],
    });
    const dirty = await build(archive);
    expect(dirty.summary.rejected.map((r) => [r.source, r.key, r.offset])).to.have.deep.members([
      ['damage', 'depth/bad.gz', 4096],
      ['decode', 'trade/t.bin', 64],
      ['validation', 'bba/b.bin', 128],
    ]);
    expect(dirty.summary.rejected.find((r) => r.source === 'validation')!.code).to.equal('INVALID_SYMBOL');
    expect(dirty.summary.eventsByStream).to.deep.equal(clean.summary.eventsByStream);
    expect(dirty.rows).to.deep.equal(clean.rows);
  });

  it('arrival order shuffled within the reorder window gives the same rows, nothing late; beyond it, late events are counted and applied', async () => {
    const clean = await build(memoryArchive(events, { framesPerObject: 300 }));
    // Swap neighbouring events of each stream: the archive's arrival order is no longer event-time order.
    const shuffled = [...events];
    for (let i = 0; i + 3 < shuffled.length; i += 7)
      [shuffled[i], shuffled[i + 3]] = [shuffled[i + 3]!, shuffled[i]!];
    const repaired = await build(memoryArchive(shuffled, { framesPerObject: 300 }), 64);
    expect(repaired.summary.late).to.equal(0);
    expect(repaired.rows).to.deep.equal(clean.rows);
    const late = await build(memoryArchive(shuffled, { framesPerObject: 300 }), 1);
    expect(late.summary.late).to.be.greaterThan(0);
    expect(late.summary.applied).to.equal(clean.summary.applied);
    expect(late.rows).to.have.length(7);
  });

  it('every frame archived twice (Firehose delivers at least once) gives the same rows', async () => {
    const clean = await build(memoryArchive(events, { framesPerObject: 300 }));
    const twice = await build(
      memoryArchive(
        events.flatMap((e) => [e, e]),
        { framesPerObject: 300 },
      ),
    );
    expect(twice.rows).to.deep.equal(clean.rows);
    expect(twice.summary.rejected).to.deep.equal([]);
  });

  it('rows are written as they come: several row groups and CSV writes read back equal; a failed build leaves no file; a bad --out fails before the build', async () => {
    const { rows } = await build(memoryArchive(events));
    expect(rows).to.have.length(7);
    const metadata = { schemaVersion: FEATURE_SCHEMA_VERSION, commandLine: 'sink', inputRange: {} };
    const pq = path.join(dir, 'groups.parquet');
    const csv = path.join(dir, 'groups.csv');
    for (const [out, format] of [
      [pq, 'parquet'],
      [csv, 'csv'],
    ] as const) {
      const sink = openDatasetSink(out, format, HORIZONS_MS, 3);
      for (const row of rows) sink.append(row);
      expect(fs.existsSync(out), 'nothing under the name before finish').to.equal(false);
      sink.finish(metadata);
      sink.abort(); // after finish: a no-op
      expect(fs.existsSync(out)).to.equal(true);
      expect(fs.existsSync(partialPath(out))).to.equal(false);
    }
    expect(fs.readFileSync(csv, 'utf8')).to.equal(csvText(rows, HORIZONS_MS));
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    const groups = (
      await conn.runAndReadAll(`SELECT DISTINCT row_group_id FROM parquet_metadata('${pq}')`)
    ).getRowObjects();
    expect(groups).to.have.length(3); // 3 + 3 + 1 rows
    const data = (
      await conn.runAndReadAll(`SELECT symbol, tick_ms, label_mid_10s FROM read_parquet('${pq}')`)
    ).getRowObjects();
    conn.closeSync();
    expect(data.map((r) => [r.symbol, Number(r.tick_ms), r.label_mid_10s])).to.deep.equal(
      rows.map((r) => [r.symbol, r.tickMs, r.labels[3]]),
    );

    // A build that fails half-way (the archive read throws) leaves neither the file nor its partial.
    const failing: ArchiveReader = {
      streams: () => Promise.resolve(STREAMS),
      read: async function* (stream: string) {
        yield* memoryArchive(events).items.get(stream)!.slice(0, 50);
        await Promise.resolve();
        throw new Error('connection reset while reading the archive');
      },
    };
    const run = (out: string, reader: ArchiveReader, redisServerCommand?: string) =>
      runDatasetBuild(
        commandRun({
          reader,
          out,
          format: 'parquet',
          commandLine: 'aggregator dataset build',
          ...(redisServerCommand === undefined ? {} : { redisServerCommand }),
        }),
      );
    const failed = path.join(dir, 'failed.parquet');
    const err = await run(failed, failing).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).to.contain('connection reset');
    expect(fs.existsSync(failed)).to.equal(false);
    expect(fs.existsSync(partialPath(failed))).to.equal(false);

    // An --out in a directory that does not exist fails at once: no redis-server is started (its command would
    // fail with another error), nothing is read.
    const bad = await run(path.join(dir, 'no-such-dir', 'x.parquet'), failing, '/no/such/redis-server').then(
      () => undefined,
      (e: unknown) => e as DatasetOutputError,
    );
    expect(bad).to.be.instanceOf(DatasetOutputError);
    expect(bad?.code).to.equal('DATASET_OUTPUT');
    expect(bad?.message).to.match(/^cannot write the dataset to .*no-such-dir.*ENOENT/);
  });

  it('CSV on request: a header and a line per row', async () => {
    const out = path.join(dir, 'ds.csv');
    const built = await runDatasetBuild(
      commandRun({
        reader: memoryArchive(events),
        out,
        format: 'csv',
        commandLine: 'aggregator dataset build --format csv',
      }),
    );
    const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n');
    expect(lines).to.have.length(1 + built.rows);
    expect(lines[0]).to.equal(
      datasetColumns(HORIZONS_MS)
        .map((c) => c.name)
        .join(','),
    );
    expect(lines[1]!.startsWith(`${SYMBOL},${FROM_MS},`)).to.equal(true);
  });

  it('aggregator dataset build (commander, injected archive factory): Parquet written, progress on stderr, rejected items with key and offset, summary, exit code 2', async () => {
    const out = path.join(dir, 'cli.parquet');
    const archive = memoryArchive(events, {
      extra: [
        {
          stream: STREAM_NAMES.trade,
          after: 3,
          item: {
            kind: 'damage',
            damage: {
              stream: STREAM_NAMES.trade,
              key: 'trade/x.gz',
              offset: 10,
              code: 'TRUNCATED',
              error: 'cut',
              bytes: 5,
            },
          },
        },
      ],
    });
    const stderr = new PassThrough();
    const stdout = new PassThrough();
    let errText = '';
    let outText = '';
    stderr.on('data', (c: Buffer) => (errText += c.toString()));
    stdout.on('data', (c: Buffer) => (outText += c.toString()));
    const locations: string[] = [];
    const program = new Command().exitOverride();
    const argv = [
      'dataset',
      'build',
      '--archive',
      '/archive/root',
      '--symbol',
      SYMBOL,
      '--from',
      String(FROM_MS),
      '--to',
      new Date(TO_MS).toISOString(),
      '--interval',
      '2s',
      '--horizon',
      '2s,10s',
      '--latency',
      String(LATENCY_MS),
      '--out',
      out,
    ];
    registerDataset(program, {
      createArchiveReader: (location) => {
        locations.push(location);
        return archive;
      },
      stderr,
      stdout,
      argv: ['node', 'aggregator', ...argv],
    });
    const before = process.exitCode;
    try {
      await program.parseAsync(argv, { from: 'user' });
      expect(process.exitCode).to.equal(2);
    } finally {
      process.exitCode = before;
    }
    expect(locations).to.deep.equal(['/archive/root']);
    expect(errText).to.include('ticks 7/7 (100%)');
    expect(errText).to.include(
      'rejected market-sbe-trade trade/x.gz @10: damage TRUNCATED: cut (5 bytes skipped)',
    );
    expect(outText).to.include('dead-lettered frames: 1 (damage:TRUNCATED 1)');
    expect(outText).to.include(`ticks 7, rows 7 -> ${out}`);
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    const count = (
      await conn.runAndReadAll(`SELECT count(*) AS n FROM read_parquet('${out}')`)
    ).getRowObjects();
    expect(count[0]!.n).to.equal(7n);
    const meta = (
      await conn.runAndReadAll(`SELECT value FROM parquet_kv_metadata('${out}') WHERE key = 'command_line'`)
    ).getRowObjects();
    expect(Buffer.from((meta[0]!.value as { bytes: Uint8Array }).bytes).toString()).to.equal(
      `aggregator ${argv.join(' ')}`,
    );
    conn.closeSync();
  });

  it('several symbols: one row per symbol and tick (tick, then symbol order), each equal to the build of that symbol alone', async () => {
    const both = simulateUntil(8, [SYMBOL, 'ETHUSDT'], START_US, END_US);
    const archive = memoryArchive(both);
    const all = await build(archive, undefined, [SYMBOL, 'ETHUSDT']);
    expect(all.rows.map((r) => r.symbol)).to.deep.equal(
      Array.from({ length: 7 }, () => [SYMBOL, 'ETHUSDT']).flat(),
    );
    expect(all.summary).to.include({ rows: 14, otherSymbols: 0 });
    const eth = await build(archive, undefined, ['ETHUSDT']);
    expect(eth.summary.otherSymbols).to.be.greaterThan(0);
    expect(all.rows.filter((r) => r.symbol === 'ETHUSDT')).to.deep.equal(eth.rows);
  });
});
