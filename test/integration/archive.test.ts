import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import sinon from 'sinon';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createArchiveReader } from '../../src/archive/reader';
import type { ArchiveDamage, ArchiveItem } from '../../src/archive/types';
import { ArchiveWriter } from '../../src/archive/writer';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../../src/dev/localstack/s3rver';
import { simulate } from '../../src/replay/simulator';
import { encodeMessage } from '../../src/sbe/encoder';
import { repoRoot } from '../helpers/paths';
import { filesUnder, readAll } from '../helpers/archive-files';

// Issue 16, the archive: what the writer leaves in a directory (the layout a Firehose delivery stream leaves in S3)
// reads back as the same frames in the same order from the directory and from S3 (s3rver); a truncated object, bad
// bytes in an object and a corrupt gzip are reported with their key and offset, and every other frame is read.

const REGION = 'us-east-1';
const START_MS = Date.UTC(2026, 11, 6, 13, 57, 0);
const logDir = path.join(repoRoot, '.local', 'test-logs');

const framesIn = (items: readonly ArchiveItem[]): Buffer[] =>
  items.flatMap((i) => (i.kind === 'frame' ? [i.frame.bytes] : []));
const damageIn = (items: readonly ArchiveItem[]): ArchiveDamage[] =>
  items.flatMap((i) => (i.kind === 'damage' ? [i.damage] : []));

describe('archive: writer, directory and S3 readers, damage (integration)', function () {
  this.timeout(180000);
  let dir = '';
  let s3: S3rverHandle | undefined;
  /** Stream -> frames written, in order. */
  const written = new Map<string, Buffer[]>();
  let endMs = 0;

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-archive-'));
    fs.mkdirSync(logDir, { recursive: true });
    s3 = await startS3rver({
      logFile: path.join(logDir, `s3rver-archive-${process.pid}.log`),
      buckets: ['archive'],
    });
    // Two streams: plain objects and gzip ones, 150 ms of arrival time per frame across the 14:00 hour boundary;
    // objects roll over on size (16 KiB), on the 60 s interval and at the hour.
    let clock = START_MS;
    const writers = {
      trade: new ArchiveWriter({
        dir,
        stream: 'sim-trade',
        maxBytes: 16384,
        timer: false,
        nowMs: () => clock,
      }),
      depth: new ArchiveWriter({
        dir,
        stream: 'sim-depth',
        gzip: true,
        maxBytes: 16384,
        timer: false,
        nowMs: () => clock,
      }),
    };
    const sim = simulate(
      { seed: 11, symbols: ['BTCUSDT', 'ETHUSDT'], startTimeUs: BigInt(START_MS) * 1000n },
      4000,
    );
    for (const ev of sim) {
      if (ev.stream === 'bestbidask') continue;
      const writer = ev.stream === 'trade' ? writers.trade : writers.depth;
      const frame = encodeMessage(ev.message);
      writer.append(frame);
      const list = written.get(writer === writers.trade ? 'sim-trade' : 'sim-depth') ?? [];
      list.push(frame);
      written.set(writer === writers.trade ? 'sim-trade' : 'sim-depth', list);
      clock += 150;
    }
    writers.trade.close();
    writers.depth.close();
    endMs = clock;
    expect(writers.trade.written.some((k) => k.includes('/2026/12/06/13/'))).to.equal(true);
    expect(writers.trade.written.some((k) => k.includes('/2026/12/06/14/'))).to.equal(true);
    expect(writers.depth.written.every((k) => k.endsWith('.gz'))).to.equal(true);
    expect(writers.trade.stats.objects).to.be.greaterThan(5);
  });

  after(async function () {
    await s3?.stop();
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads back every frame written, in order, from the directory, with no damage', async function () {
    const reader = createArchiveReader(dir);
    expect(await reader.streams()).to.deep.equal(['sim-depth', 'sim-trade']);
    for (const [stream, frames] of written) {
      const items = await readAll(reader, stream, START_MS, endMs);
      expect(damageIn(items), stream).to.deep.equal([]);
      expect(framesIn(items), stream).to.deep.equal(frames);
    }
    // A range of the second hour only: objects of the first hour are still listed (one hour of padding).
    const late = await readAll(
      reader,
      'sim-trade',
      Date.UTC(2026, 11, 6, 14, 30),
      Date.UTC(2026, 11, 6, 14, 40),
    );
    expect(framesIn(late)).to.deep.equal(written.get('sim-trade'));
    // Far outside the archive's hours: nothing.
    expect(await readAll(reader, 'sim-trade', START_MS + 86_400_000, START_MS + 90_000_000)).to.deep.equal(
      [],
    );
  });

  it('damaged objects: reported with key and offset, from the directory and from s3://, and the rest is read', async function () {
    const reader = createArchiveReader(dir);
    const before = new Map<string, ArchiveItem[]>();
    for (const stream of written.keys()) before.set(stream, await readAll(reader, stream, START_MS, endMs));
    const framesOfKey = (stream: string, key: string) =>
      before.get(stream)!.flatMap((i) => (i.kind === 'frame' && i.frame.key === key ? [i.frame] : []));
    // The keys of objects holding at least 5 frames, in order.
    const keysOf = (stream: string): string[] =>
      [...new Set(before.get(stream)!.flatMap((i) => (i.kind === 'frame' ? [i.frame.key] : [])))].filter(
        (key) => framesOfKey(stream, key).length >= 5,
      );

    // sim-trade: one object truncated in the middle of its 4th frame, one with a bad schema id in its 3rd frame.
    const [, truncatedKey, , badKey] = keysOf('sim-trade');
    const truncFrames = framesOfKey('sim-trade', truncatedKey!);
    const cutAt = truncFrames[3]!.offset + 7;
    fs.truncateSync(path.join(dir, truncatedKey!), cutAt);
    const badFrames = framesOfKey('sim-trade', badKey!);
    const badFile = path.join(dir, badKey!);
    const bad = fs.readFileSync(badFile);
    bad.writeUInt16LE(77, badFrames[2]!.offset + 4);
    fs.writeFileSync(badFile, bad);
    // sim-depth: one gzip object with its deflate data overwritten half-way.
    const [, gzKey] = keysOf('sim-depth');
    const gzFile = path.join(dir, gzKey!);
    const gz = fs.readFileSync(gzFile);
    gz.fill(0xff, Math.floor(gz.length / 2), Math.floor(gz.length / 2) + 64);
    fs.writeFileSync(gzFile, gz);

    // Upload the damaged archive as it is to s3://archive/raw/.
    const client = new S3Client({
      region: REGION,
      endpoint: s3!.endpoint,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    try {
      for (const file of filesUnder(dir)) {
        await client.send(
          new PutObjectCommand({
            Bucket: 'archive',
            Key: `raw/${file}`,
            Body: fs.readFileSync(path.join(dir, file)),
          }),
        );
      }
    } finally {
      client.destroy();
    }
    const fromS3 = createArchiveReader('s3://archive/raw', {
      region: REGION,
      endpoint: s3!.endpoint,
      credentials: S3RVER_CREDENTIALS,
    });
    expect(await fromS3.streams()).to.deep.equal(['sim-depth', 'sim-trade']);

    for (const [name, source] of [
      ['directory', reader],
      ['s3', fromS3],
    ] as const) {
      const trade = await readAll(source, 'sim-trade', START_MS, endMs);
      const tradeDamage = damageIn(trade);
      expect(
        tradeDamage.map((d) => [d.key, d.offset, d.code]),
        name,
      ).to.deep.equal([
        [truncatedKey, truncFrames[3]!.offset, 'TRUNCATED'],
        [badKey, badFrames[2]!.offset, 'SCHEMA_MISMATCH'],
      ]);
      expect(tradeDamage[0]!.bytes).to.equal(7);
      expect(tradeDamage[1]!.bytes).to.equal(bad.length - badFrames[2]!.offset);
      // Every other frame: all of them but those from the damage on in the two objects.
      const lost = new Set([
        ...truncFrames.slice(3).map((f) => `${f.key}@${f.offset}`),
        ...badFrames.slice(2).map((f) => `${f.key}@${f.offset}`),
      ]);
      const expected = before
        .get('sim-trade')!
        .flatMap((i) => (i.kind === 'frame' && !lost.has(`${i.frame.key}@${i.frame.offset}`) ? [i] : []));
      expect(
        trade.filter((i) => i.kind === 'frame'),
        name,
      ).to.deep.equal(expected);
      // Damage where it was found: right after the last good frame of its object.
      expect(trade.findIndex((i) => i.kind === 'damage')).to.equal(
        expected.findIndex((i) => i.kind === 'frame' && i.frame.key === truncatedKey) + 3,
      );

      const depth = await readAll(source, 'sim-depth', START_MS, endMs);
      const depthDamage = damageIn(depth);
      expect(depthDamage, name).to.have.length(1);
      const gzFramesRead = depth.flatMap((i) =>
        i.kind === 'frame' && i.frame.key === gzKey ? [i.frame] : [],
      );
      const gzFramesBefore = framesOfKey('sim-depth', gzKey!);
      // What zlib gave before the bad bytes: a prefix of the object's frames, and the damage where it stops.
      expect(gzFramesRead.length).to.be.below(gzFramesBefore.length);
      expect(gzFramesRead).to.deep.equal(gzFramesBefore.slice(0, gzFramesRead.length));
      const readable = gzFramesRead.reduce((n, f) => n + f.bytes.length, 0);
      expect(depthDamage[0]).to.include({
        key: gzKey,
        offset: readable,
        code: 'CORRUPT_GZIP',
        bytes: gz.length,
      });
      expect(depth.filter((i) => i.kind === 'frame' && i.frame.key !== gzKey)).to.deep.equal(
        before.get('sim-depth')!.filter((i) => i.kind === 'frame' && i.frame.key !== gzKey),
      );
    }
  });

  it('s3://: an hour of more than 1,000 objects is read across listing pages, in key order', async function () {
    // 1,100 one-frame objects of one stream in one hour: ListObjectsV2 answers 1,000 keys a page.
    const all = [...written.get('sim-trade')!, ...written.get('sim-depth')!];
    expect(all.length).to.be.greaterThan(1100);
    const frames = all.slice(0, 1100);
    const client = new S3Client({
      region: REGION,
      endpoint: s3!.endpoint,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    const keys = frames.map(
      (_, i) => `paged/2026/12/06/13/paged-archive-1-2026-12-06-13-20-00-${String(i).padStart(6, '0')}`,
    );
    try {
      for (let i = 0; i < frames.length; i += 50) {
        await Promise.all(
          keys
            .slice(i, i + 50)
            .map((key, j) =>
              client.send(
                new PutObjectCommand({ Bucket: 'archive', Key: `pages/${key}`, Body: frames[i + j] }),
              ),
            ),
        );
      }
    } finally {
      client.destroy();
    }
    const reader = createArchiveReader('s3://archive/pages/', {
      region: REGION,
      endpoint: s3!.endpoint,
      credentials: S3RVER_CREDENTIALS,
    });
    expect(await reader.streams()).to.deep.equal(['paged']);
    const items = await readAll(
      reader,
      'paged',
      Date.UTC(2026, 11, 6, 13, 20),
      Date.UTC(2026, 11, 6, 13, 21),
    );
    expect(damageIn(items)).to.deep.equal([]);
    expect(items.map((i) => (i.kind === 'frame' ? i.frame.key : ''))).to.deep.equal(keys);
    expect(framesIn(items)).to.deep.equal(frames);
  });

  it('a range of years lists only the hours that exist (a pruned walk, one S3 listing), and selects by hour', async function () {
    // Five one-frame objects years apart, and names outside the layout that the readers skip.
    const hours = [
      Date.UTC(2019, 2, 1, 5),
      Date.UTC(2026, 11, 6, 13),
      Date.UTC(2026, 11, 6, 15),
      Date.UTC(2026, 11, 7, 0),
      Date.UTC(2031, 0, 1, 0),
    ];
    const frames = written.get('sim-trade')!.slice(0, hours.length);
    const keyOf = (h: number, i: number) => {
      const d = new Date(h + 600_000).toISOString(); // 10 minutes into the hour
      const [ymd, hms] = [d.slice(0, 10), d.slice(11, 19).replace(/:/g, '-')];
      return `spread/${ymd.replace(/-/g, '/')}/${d.slice(11, 13)}/spread-archive-1-${ymd}-${hms}-obj${i}`;
    };
    const keys = hours.map(keyOf);
    const other = ['spread/notes/readme.txt', 'spread/2026/12/06/13/.tmp-partial', 'spread/20266/01/01/00/x'];
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-archive-spread-'));
    const client = new S3Client({
      region: REGION,
      endpoint: s3!.endpoint,
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    try {
      for (const [key, body] of [
        ...keys.map((k, i) => [k, frames[i]!] as const),
        ...other.map((k) => [k, Buffer.from('not a frame')] as const),
      ]) {
        fs.mkdirSync(path.join(root, path.dirname(key)), { recursive: true });
        fs.writeFileSync(path.join(root, key), body);
        await client.send(new PutObjectCommand({ Bucket: 'archive', Key: `spread/${key}`, Body: body }));
      }
      const readers = {
        dir: createArchiveReader(root),
        s3: createArchiveReader('s3://archive/spread/', {
          region: REGION,
          endpoint: s3!.endpoint,
          credentials: S3RVER_CREDENTIALS,
        }),
      };
      for (const [name, reader] of Object.entries(readers)) {
        const readdir = sinon.spy(fs.promises, 'readdir');
        const send = sinon.spy(S3Client.prototype, 'send');
        let items: ArchiveItem[];
        try {
          items = await readAll(reader, 'spread', 0, Date.UTC(2100, 0, 1));
        } finally {
          readdir.restore();
          send.restore();
        }
        const keysRead = items.map((i) => (i.kind === 'frame' ? i.frame.key : `damage ${i.damage.key}`));
        expect(keysRead, name).to.deep.equal(keys);
        expect(framesIn(items), name).to.deep.equal(frames);
        // A listing per hour of 130 years would be over a million calls.
        if (name === 'dir') expect(readdir.callCount, name).to.be.at.most(30);
        else expect(send.callCount, name).to.equal(1 + keys.length);

        // One hour of padding on each side of the range.
        const between = await readAll(
          reader,
          'spread',
          Date.UTC(2026, 11, 6, 14, 30),
          Date.UTC(2026, 11, 6, 14, 40),
        );
        expect(framesIn(between), name).to.deep.equal([frames[1], frames[2]]);
        const midnight = await readAll(
          reader,
          'spread',
          Date.UTC(2026, 11, 6, 23, 5),
          Date.UTC(2026, 11, 6, 23, 6),
        );
        expect(framesIn(midnight), name).to.deep.equal([frames[3]]);
        expect(
          await readAll(reader, 'spread', Date.UTC(2020, 0, 1), Date.UTC(2025, 0, 1)),
          name,
        ).to.deep.equal([]);
      }
    } finally {
      client.destroy();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
