import fs from 'node:fs';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { expect } from 'chai';
import { readServedVectors } from '../../src/app/features-verify';
import { createArchiveReader } from '../../src/archive/reader';
import { datasetColumns } from '../../src/dataset/output';
import { findFreePort } from '../../src/dev/localstack/ports';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../../src/dev/localstack/s3rver';
import { decodeFrame } from '../../src/sbe/decoder';
import type { SbeMessage } from '../../src/sbe/messages';
import { Keys } from '../../src/state/keys';
import { ReferenceBook } from '../helpers/book-reference';
import { canonical8 } from '../helpers/canonical';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';
import { spawnSidecar, type SidecarProcess } from '../helpers/sidecar-process';
import { runCli } from '../helpers/cli';
import { filesUnder } from '../helpers/archive-files';

// Issue 16, done means: through the real pipeline (kinesis-mock, dynalite, redis, the KCL daemons) and a real
// sidecar, `aggregator replay --archive` publishes simulated events on the clock; `aggregator dataset build` from
// the archive directory and from the same objects in s3rver give the same rows; `aggregator dataset verify` finds
// no mismatch against the served history (and names the field of a tampered served vector); the labels equal an
// independent model of the archived events; DuckDB reads the Parquet with the expected schema and row count.

const S = 'BTCUSDT';
const HORIZON_MS = 10_000;

/** Independent label model: the mid of ReferenceBook and the price of the highest trade id, events <= x ms. */
function referenceMarks(events: readonly SbeMessage[], points: readonly number[]) {
  const sorted = [...events].sort((a, b) => Number(a.eventTime - b.eventTime));
  const book = new ReferenceBook({ levels: 10, bufferMax: 1000 });
  let best: { id: bigint; price: string } | undefined;
  const out = new Map<number, { mid: string; last: string }>();
  let i = 0;
  for (const p of [...new Set(points)].sort((a, b) => a - b)) {
    while (i < sorted.length && sorted[i]!.eventTime <= BigInt(p) * 1000n) {
      const m = sorted[i++]!;
      if (m.message === 'TradesStreamEvent') {
        for (const t of m.trades)
          if (best === undefined || t.id > best.id)
            best = { id: t.id, price: canonical8(t.priceMantissa, m.priceExponent) };
      } else if (m.message === 'BestBidAskStreamEvent') book.applyBestBidAskBatch([m]);
      else book.applyDepthBatch([m]);
    }
    out.set(p, { mid: book.ob.get('mid_price') ?? '', last: best?.price ?? '' });
  }
  return out;
}

describe('dataset end to end (issue 16): real pipeline and sidecar, archive, build, verify', function () {
  this.timeout(300_000);
  let pipeline: Pipeline | undefined;
  let sidecar: SidecarProcess | undefined;
  let s3: S3rverHandle | undefined;

  after(async () => {
    await sidecar?.stop();
    await pipeline?.stop();
    await s3?.stop();
  });

  it('builds the same dataset from a directory and from S3, verified against the served history with no mismatch', async function () {
    pipeline = await startPipeline({
      shards: { trade: 1, bestbidask: 1, depth: 1 },
      symbols: [S],
      label: 'dataset-e2e',
      logging: { level: 'info' },
      extraYaml:
        `reanchor:\n  enabled: false\nhealth:\n  host: '127.0.0.1'\n  port: ${await findFreePort()}\n` +
        `metrics:\n  enable_prometheus: false\n`,
    });
    const p = pipeline;
    const keys = new Keys({ clusterMode: false });
    p.startDaemon('trade');
    p.startDaemon('bestbidask');
    p.startDaemon('depth');
    sidecar = spawnSidecar(p.configFile, 'sc-dataset-e2e');
    const archive = path.join(p.dir, 'archive');

    // ~40 s of simulated events on the clock, archived as published.
    const replay = await runCli([
      '--config',
      p.configFile,
      'replay',
      '--symbols',
      S,
      '--seed',
      '16',
      '--rate',
      '150',
      '--duration',
      '40',
      '--archive',
      archive,
    ]);
    expect(replay.code, replay.stderr).to.equal(0);

    // The archived events, and the processors caught up with them (the last trade served).
    const reader = createArchiveReader(archive);
    const events: SbeMessage[] = [];
    for (const stream of await reader.streams()) {
      for await (const item of reader.read(stream, 0, Date.now() + 3_600_000)) {
        expect(item.kind).to.equal('frame');
        if (item.kind === 'frame') events.push(decodeFrame(item.frame.bytes).message);
      }
    }
    expect(events.length).to.be.greaterThan(3000);
    const lastTradeId = events.reduce(
      (m, e) => (e.message === 'TradesStreamEvent' ? e.trades.reduce((x, t) => (t.id > x ? t.id : x), m) : m),
      0n,
    );
    await waitUntil(
      async () => (await p.redis.hget(keys.features(S), 'src_last_trade_id')) === String(lastTradeId),
      60_000,
      'a served vector with the last archived trade',
      async () => `${JSON.stringify(await p.redis.hgetall(keys.features(S)))}\n${sidecar?.stderr()}`,
    );
    await sidecar.stop();

    // The dataset's range: the served ticks from the first complete vector on.
    const served = await readServedVectors(p.redis, keys, S);
    const firstGood = served.findIndex((v) => v.fields['completeness'] === '1');
    expect(firstGood).to.be.greaterThan(-1);
    const fromMs = Number(served[firstGood]!.fields['feature_ts']);
    const toMs = Number(served.at(-1)!.fields['feature_ts']);
    const ticks = served.slice(firstGood).length;
    expect(ticks).to.be.greaterThan(10);

    const build = (archiveArg: string, out: string, extra: string[] = [], env?: NodeJS.ProcessEnv) =>
      runCli(
        [
          '--config',
          p.configFile,
          'dataset',
          'build',
          '--archive',
          archiveArg,
          '--symbol',
          S,
          '--from',
          String(fromMs),
          '--to',
          String(toMs),
          '--out',
          out,
          ...extra,
        ],
        env === undefined ? {} : { env },
      );
    const fromDir = path.join(p.dir, 'from-dir.parquet');
    const dirBuild = await build(archive, fromDir);
    expect(dirBuild.code, dirBuild.stderr + dirBuild.stdout).to.equal(0);

    // The same objects in s3rver.
    s3 = await startS3rver({ logFile: path.join(p.dir, 's3rver.log'), buckets: ['archive'] });
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    try {
      for (const file of filesUnder(archive)) {
        await client.send(
          new PutObjectCommand({
            Bucket: 'archive',
            Key: `e2e/${file}`,
            Body: fs.readFileSync(path.join(archive, file)),
          }),
        );
      }
    } finally {
      client.destroy();
    }
    const fromS3 = path.join(p.dir, 'from-s3.parquet');
    const s3Build = await build('s3://archive/e2e', fromS3, ['--s3-endpoint', s3.endpoint], {
      ...process.env,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    });
    expect(s3Build.code, s3Build.stderr + s3Build.stdout).to.equal(0);

    // DuckDB: the schema, the row count, both files' rows equal.
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    const described = (
      await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${fromDir}')`)
    ).getRowObjects();
    const duckType = { string: 'VARCHAR', int64: 'BIGINT', int32: 'INTEGER', double: 'DOUBLE' } as const;
    expect(described.map((d) => [d.column_name, d.column_type])).to.deep.equal(
      datasetColumns([HORIZON_MS]).map((c) => [c.name, duckType[c.type]]),
    );
    const rowsOf = async (file: string) =>
      (await conn.runAndReadAll(`SELECT * FROM read_parquet('${file}') ORDER BY tick_ms`)).getRowObjects();
    const rows = await rowsOf(fromDir);
    expect(rows).to.have.length(ticks);
    expect(await rowsOf(fromS3)).to.deep.equal(rows);
    conn.closeSync();

    // Labels: the independent model on the archived events; empty past the archive's end.
    const lastUs = events.reduce((m, e) => (e.eventTime > m ? e.eventTime : m), 0n);
    const tickList = rows.map((r) => Number(r.tick_ms));
    const marks = referenceMarks(events, [...tickList, ...tickList.map((t) => t + HORIZON_MS)]);
    let labelled = 0;
    for (const r of rows) {
      const t = Number(r.tick_ms);
      if (BigInt(t + HORIZON_MS) * 1000n > lastUs) {
        expect([r.label_mid_10s, r.label_price_10s, r.label_ret_10s]).to.deep.equal([null, null, null]);
        continue;
      }
      const m = marks.get(t + HORIZON_MS)!;
      expect([r.label_mid_10s, r.label_price_10s], `tick ${t}`).to.deep.equal([m.mid, m.last]);
      expect(r.label_ret_10s).to.be.closeTo(Number(m.mid) / Number(marks.get(t)!.mid) - 1, 1e-12);
      labelled++;
    }
    expect(labelled).to.be.greaterThan(5);

    // dataset verify against the served history (the config's redis): no mismatch.
    const verify = (...extra: string[]) =>
      runCli(['--config', p.configFile, 'dataset', 'verify', '--archive', archive, ...extra]);
    const ok = await verify('--dataset', fromDir);
    expect(ok.code, ok.stderr + ok.stdout).to.equal(0);
    process.stderr.write(`      rows ${rows.length}, labelled ${labelled}; ${ok.stdout.trim()}\n`);
    expect(ok.stdout).to.match(
      new RegExp(`^verified ${ticks} served vectors at dataset ticks .*: 0 mismatches`, 'm'),
    );

    // The same from a CSV dataset (its ticks, --interval and --latency in place of the Parquet metadata).
    const csv = path.join(p.dir, 'from-dir.csv');
    const csvBuild = await build(archive, csv, ['--format', 'csv']);
    expect(csvBuild.code, csvBuild.stderr + csvBuild.stdout).to.equal(0);
    const okCsv = await verify('--dataset', csv);
    expect(okCsv.code, okCsv.stderr + okCsv.stdout).to.equal(0);
    expect(okCsv.stdout).to.match(
      new RegExp(`^verified ${ticks} served vectors at dataset ticks .*: 0 mismatches`, 'm'),
    );

    // The history exported by `features export` (the service's Redis) verifies like the history itself; with one
    // value changed: exit 1, the mismatch named.
    const servedFile = path.join(p.dir, 'served.jsonl');
    const exported = await runCli(['--config', p.configFile, 'features', 'export', S, '--out', servedFile]);
    expect(exported.code, exported.stderr).to.equal(0);
    const lines = fs.readFileSync(servedFile, 'utf8').trimEnd().split('\n');
    expect(lines).to.have.length(served.length);
    const okExport = await verify('--dataset', fromDir, '--served', servedFile);
    expect(okExport.code, okExport.stderr + okExport.stdout).to.equal(0);
    expect(okExport.stdout).to.equal(ok.stdout);
    const last = JSON.parse(lines.at(-1)!) as { fields: Record<string, string> };
    last.fields['volume_1s'] = String(Number(last.fields['volume_1s']) + 1);
    lines[lines.length - 1] = JSON.stringify(last);
    fs.writeFileSync(servedFile, `${lines.join('\n')}\n`);
    const bad = await verify('--dataset', fromDir, '--served', servedFile);
    expect(bad.code, bad.stderr + bad.stdout).to.equal(1);
    expect(bad.stdout).to.contain(`mismatch served-vs-archive ${S} tick ${toMs} volume_1s: served=`);
    const usage = await runCli(['--config', p.configFile, 'dataset', 'verify', '--archive', archive]);
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.contain('--dataset <file> is required');
  });
});
