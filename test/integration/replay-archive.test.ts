import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { createArchiveReader } from '../../src/archive/reader';
import { createStreams, startKinesisMock } from '../../src/dev/localstack/kinesis-mock';
import { findFreePort } from '../../src/dev/localstack/ports';
import { deaggregate } from '../../src/replay/kpl';
import { createKinesisClient } from '../../src/replay/producer';
import { decodeFrames } from '../../src/sbe/decoder';
import { repoRoot } from '../helpers/paths';
import { runCli } from '../helpers/cli';
import { readAll } from '../helpers/archive-files';

// Issue 16: `aggregator replay --archive DIR` (the built CLI, against kinesis-mock) leaves objects in the Firehose
// layout whose frames are what Kinesis acknowledged, stream by stream, in order (what `npm run local` leaves in
// .local/archive).

const REGION = 'us-east-1';
const logDir = path.join(repoRoot, '.local', 'test-logs');

describe('aggregator replay --archive (built CLI, kinesis-mock)', function () {
  this.timeout(180000);

  it('leaves objects whose frames are what Kinesis acknowledged, stream by stream, in order', async function () {
    fs.mkdirSync(logDir, { recursive: true });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-replay-archive-'));
    const names = { trade: 'arch-trade', bestbidask: 'arch-bestbidask', depth: 'arch-depth' };
    const mock = await startKinesisMock({
      plainPort: await findFreePort(),
      tlsPort: await findFreePort(),
      streams: { [names.trade]: 1, [names.bestbidask]: 1, [names.depth]: 1 },
      logFile: path.join(logDir, `kinesis-mock-archive-${process.pid}.log`),
      region: REGION,
    });
    const client = createKinesisClient({
      region: REGION,
      endpoint: mock.endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    try {
      await createStreams(mock.endpoint, REGION, {
        [names.trade]: 1,
        [names.bestbidask]: 1,
        [names.depth]: 1,
      });
      const configFile = path.join(dir, 'config.yaml');
      fs.writeFileSync(
        configFile,
        `aws:\n  region: ${REGION}\n  kinesis:\n    endpoint: "${mock.endpoint}"\n    streams:\n` +
          `      trade: ${names.trade}\n      bestbidask: ${names.bestbidask}\n      depth: ${names.depth}\n`,
      );
      const archive = path.join(dir, 'archive');
      const startedMs = Date.now();
      const out = await runCli([
        '--config',
        configFile,
        'replay',
        '--symbols',
        'BTCUSDT,ETHUSDT',
        '--seed',
        '5',
        '--start-time-us',
        '1700000000000000',
        '--events',
        '6000',
        '--archive',
        archive,
        '--archive-gzip',
      ]);
      expect(out.code, out.stderr).to.equal(0);
      const summary = JSON.parse(out.stdout) as {
        events: number;
        archive: { dir: string; objects: number; frames: number };
      };
      expect(summary.archive).to.deep.include({ dir: archive, frames: 6000 });
      expect(out.stderr).to.contain(
        `replay: archive ${archive}: ${summary.archive.objects} objects, 6000 frames`,
      );
      const reader = createArchiveReader(archive);
      expect(await reader.streams()).to.deep.equal(Object.values(names).sort());
      let total = 0;
      for (const stream of Object.values(names)) {
        const items = await readAll(reader, stream, startedMs, Date.now());
        expect(items.filter((i) => i.kind === 'damage')).to.deep.equal([]);
        expect(items.every((i) => i.kind === 'frame' && i.frame.key.endsWith('.gz'))).to.equal(true);
        const archived = items.flatMap((i) => (i.kind === 'frame' ? [i.frame.bytes] : []));
        expect(archived, stream).to.deep.equal(await kinesisFrames(client, stream));
        total += archived.length;
      }
      expect(total).to.equal(6000);
    } finally {
      client.destroy();
      await mock.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The SBE frames a one-shard stream holds, in order (KPL records de-aggregated, as Firehose does). */
async function kinesisFrames(
  client: ReturnType<typeof createKinesisClient>,
  stream: string,
): Promise<Buffer[]> {
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  expect(shards).to.have.length(1);
  let iterator = (
    await client.send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: shards[0]!.ShardId!,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    )
  ).ShardIterator;
  const frames: Buffer[] = [];
  while (iterator !== undefined) {
    const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10000 }));
    for (const r of page.Records ?? []) {
      for (const user of deaggregate(Buffer.from(r.Data!), r.PartitionKey!)) {
        let pos = 0;
        for (const f of decodeFrames(user.data)) {
          frames.push(user.data.subarray(pos, pos + f.frameLength));
          pos += f.frameLength;
        }
      }
    }
    if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
    iterator = page.NextShardIterator;
  }
  return frames;
}
