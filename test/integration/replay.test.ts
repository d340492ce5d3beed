import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand } from '@aws-sdk/client-kinesis';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { KinesisMockError, createStreams, startKinesisMock } from '../../src/localstack/kinesis-mock';
import type { KinesisMockHandle } from '../../src/localstack/kinesis-mock';
import { findFreePort } from '../../src/localstack/ports';
import { deaggregate } from '../../src/replay/kpl';
import { createKinesisClient, publishEvents, putRecordsWith } from '../../src/replay/producer';
import type { PublishSummary, RecordMode } from '../../src/replay/producer';
import { simulate } from '../../src/replay/simulator';
import type { SimulatedEvent, SimulatedStream } from '../../src/replay/simulator';
import { decodeFrames } from '../../src/sbe/decoder';
import type { SbeMessage } from '../../src/sbe/messages';
import { repoRoot } from '../helpers/paths';
import { messagesBySymbol } from '../helpers/messages';

// Publishes simulated events into kinesis-mock in each record mode and reads every shard back with GetRecords:
// exactly the published events must arrive, each symbol on one shard, in publication order.

const REGION = 'us-east-1';
const EVENTS = 3000;
const SIM = { seed: 2024, symbols: ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'], startTimeUs: 1_700_000_000_000_000n };
const SHARDS: Record<SimulatedStream, number> = { trade: 1, bestbidask: 1, depth: 2 };

function streamNames(mode: RecordMode): Record<SimulatedStream, string> {
  return {
    trade: `replay-${mode}-trade`,
    bestbidask: `replay-${mode}-bestbidask`,
    depth: `replay-${mode}-depth`,
  };
}

function shardMap(mode: RecordMode): Record<string, number> {
  const names = streamNames(mode);
  return { [names.trade]: SHARDS.trade, [names.bestbidask]: SHARDS.bestbidask, [names.depth]: SHARDS.depth };
}

interface ShardContent {
  readonly shardId: string;
  readonly records: number;
  /** Decoded messages in the shard's order (user records in aggregate order). */
  readonly messages: SbeMessage[];
}

/** Reads a whole stream from TRIM_HORIZON, de-aggregating KPL records like the KCL daemon does. */
async function readStream(client: KinesisClient, stream: string): Promise<ShardContent[]> {
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  const out: ShardContent[] = [];
  for (const shard of shards) {
    const shardId = shard.ShardId!;
    let iterator = (
      await client.send(
        new GetShardIteratorCommand({
          StreamName: stream,
          ShardId: shardId,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    const messages: SbeMessage[] = [];
    let records = 0;
    let lastSeq = '';
    while (iterator !== undefined) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10000 }));
      for (const r of page.Records ?? []) {
        records++;
        // Sequence numbers grow within a shard: the order we read is the order Kinesis stored.
        expect(BigInt(r.SequenceNumber!) > BigInt(lastSeq === '' ? '-1' : lastSeq)).to.equal(true);
        lastSeq = r.SequenceNumber!;
        for (const user of deaggregate(Buffer.from(r.Data!), r.PartitionKey!)) {
          for (const frame of decodeFrames(user.data)) messages.push(frame.message);
        }
      }
      if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
      iterator = page.NextShardIterator;
    }
    out.push({ shardId, records, messages });
  }
  return out;
}

describe('replay into kinesis-mock (integration)', function () {
  this.timeout(180000);
  let mock: KinesisMockHandle | undefined;
  let client: KinesisClient | undefined;
  const logDir = path.join(repoRoot, '.local', 'test-logs');
  const logFile = path.join(logDir, `kinesis-mock-replay-${process.pid}.log`);
  const figures: string[] = [];

  before(async function () {
    fs.mkdirSync(logDir, { recursive: true });
    mock = await startKinesisMock({
      plainPort: await findFreePort(),
      tlsPort: await findFreePort(),
      streams: shardMap('kpl'),
      logFile,
      region: REGION,
    });
    client = createKinesisClient({
      region: REGION,
      endpoint: mock.endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
  });

  after(async function () {
    client?.destroy();
    await mock?.stop();
    if (figures.length > 0) process.stderr.write(`      ${figures.join('\n      ')}\n`);
  });

  it('createStreams is idempotent on a running emulator', async function () {
    await createStreams(mock!.endpoint, REGION, shardMap('kpl'));
    await createStreams(mock!.endpoint, REGION, { ...shardMap('concat'), ...shardMap('single') });
    await createStreams(mock!.endpoint, REGION, shardMap('single'));
  });

  for (const mode of ['kpl', 'concat', 'single'] as RecordMode[]) {
    it(`delivers exactly the published events, in order per shard (${mode})`, async function () {
      const events: SimulatedEvent[] = [...simulate(SIM, EVENTS)];
      const names = streamNames(mode);
      const summary: PublishSummary = await publishEvents(events, {
        streams: names,
        putRecords: putRecordsWith(client!),
        recordMode: mode,
      });
      figures.push(
        `${mode}: ${summary.events} events in ${summary.records} records, ${summary.putRecordsCalls} calls, ` +
          `${summary.elapsedMs} ms = ${summary.eventsPerSecond} events/s`,
      );
      expect(summary.events).to.equal(EVENTS);
      expect(summary.retriedEntries).to.equal(0);

      for (const stream of ['trade', 'bestbidask', 'depth'] as SimulatedStream[]) {
        const shards = await readStream(client!, names[stream]);
        expect(shards).to.have.length(SHARDS[stream]);
        const published = messagesBySymbol(events.filter((e) => e.stream === stream).map((e) => e.message));
        const seen = new Set<string>();
        let total = 0;
        for (const shard of shards) {
          total += shard.messages.length;
          expect(shard.records).to.equal(summary.shards[names[stream]]?.[shard.shardId]?.records ?? 0);
          for (const [symbol, got] of messagesBySymbol(shard.messages)) {
            expect(seen.has(symbol), `${symbol} on two shards of ${names[stream]}`).to.equal(false);
            seen.add(symbol);
            expect(got, `${names[stream]} ${shard.shardId} ${symbol}`).to.deep.equal(published.get(symbol));
          }
        }
        expect(total).to.equal(summary.eventsPerStream[stream]);
        // The symbols' key hashes spread over both depth shards (MD5: ETHUSDT -> 0, BTCUSDT and SOLUSDT -> 1).
        for (const shard of shards) expect(shard.messages.length, shard.shardId).to.be.greaterThan(0);
        expect([...seen].sort()).to.deep.equal([...published.keys()].sort());
        if (mode === 'single') {
          expect(shards.reduce((n, s) => n + s.records, 0)).to.equal(summary.eventsPerStream[stream]);
        }
      }
    });
  }

  it('fails fast and names the log when a port is taken', async function () {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    const failure = async (plainPort: number, tlsPort: number): Promise<KinesisMockError> => {
      try {
        const h = await startKinesisMock({
          plainPort,
          tlsPort,
          streams: { x: 1 },
          logFile,
          startTimeoutMs: 20000,
        });
        await h.stop();
      } catch (err) {
        expect(err).to.be.instanceOf(KinesisMockError);
        return err as KinesisMockError;
      }
      throw new Error('kinesis-mock started on a taken port');
    };
    try {
      const plain = await failure(taken, await findFreePort());
      expect(plain.message).to.equal(`port ${taken} is already in use: cannot start kinesis-mock there`);
      const tls = await failure(await findFreePort(), taken);
      expect(tls.message).to.match(
        /^kinesis-mock exited \(code \d+, signal null\) before it was ready; see .*kinesis-mock-replay/,
      );
      expect(tls.message).to.match(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  it('reports a missing stream clearly', async function () {
    let caught: unknown;
    try {
      await publishEvents(simulate(SIM, 10), {
        streams: { trade: 'no-such-stream', bestbidask: 'no-such-stream', depth: 'no-such-stream' },
        putRecords: putRecordsWith(client!),
      });
    } catch (err) {
      caught = err;
    }
    expect((caught as Error).message).to.match(
      /PutRecords to stream no-such-stream failed .*ResourceNotFound/,
    );
  });
});
