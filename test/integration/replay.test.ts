import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { expect } from 'chai';
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordCommand,
} from '@aws-sdk/client-kinesis';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { KinesisMockError, createStreams, startKinesisMock } from '../../src/dev/localstack/kinesis-mock';
import type { KinesisMockHandle } from '../../src/dev/localstack/kinesis-mock';
import { findFreePort } from '../../src/dev/localstack/ports';
import { deaggregate } from '../../src/replay/kpl';
import { createKinesisClient, publishEvents, putRecordsWith } from '../../src/replay/producer';
import type { PublishSummary, RecordMode } from '../../src/replay/producer';
import { simulate } from '../../src/replay/simulator';
import { eventTimeUs } from '../../src/replay/wall-clock';
import type { SimulatedEvent, SimulatedStream } from '../../src/replay/simulator';
import { RestClient } from '../../src/rest/client';
import { decodeFrames } from '../../src/sbe/decoder';
import type { PriceLevel, SbeMessage } from '../../src/sbe/messages';
import type { RestDepthSnapshot } from '../../src/state/book';
import { repoRoot } from '../helpers/paths';
import { messagesBySymbol } from '../helpers/messages';
import { runCli } from '../helpers/cli';

// Publishes simulated events into kinesis-mock in each record mode and reads every shard back with GetRecords:
// exactly the published events must arrive, each symbol on one shard, in publication order. Then the built CLI
// replays with --rest-port: the simulated exchange's REST snapshot taken mid-run must bridge the published diffs.

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

/** A valid /api/v3/depth snapshot: bids strictly descending, asks strictly ascending, not crossed. */
function expectValidSnapshot(snap: RestDepthSnapshot, limit: number): void {
  expect(snap.lastUpdateId > 0n).to.equal(true);
  expect(snap.bids.length).to.be.within(1, limit);
  expect(snap.asks.length).to.be.within(1, limit);
  for (let i = 1; i < snap.bids.length; i++)
    expect(snap.bids[i]!.priceMantissa < snap.bids[i - 1]!.priceMantissa, `bids[${i}]`).to.equal(true);
  for (let i = 1; i < snap.asks.length; i++)
    expect(snap.asks[i]!.priceMantissa > snap.asks[i - 1]!.priceMantissa, `asks[${i}]`).to.equal(true);
  expect(snap.bids[0]!.priceMantissa < snap.asks[0]!.priceMantissa, 'best bid < best ask').to.equal(true);
}

/** Price -> qty of one side, with the qty-0 levels of a diff removing a level. */
function applyLevels(side: Map<bigint, bigint>, levels: readonly PriceLevel[]): void {
  for (const l of levels) {
    if (l.qtyMantissa === 0n) side.delete(l.priceMantissa);
    else side.set(l.priceMantissa, l.qtyMantissa);
  }
}

function topLevels(side: Map<bigint, bigint>, n: number, descending: boolean): PriceLevel[] {
  return [...side.entries()]
    .sort((a, b) => (a[0] === b[0] ? 0 : a[0] < b[0] === descending ? 1 : -1))
    .slice(0, n)
    .map(([priceMantissa, qtyMantissa]) => ({ priceMantissa, qtyMantissa }));
}

interface ShardContent {
  readonly shardId: string;
  readonly records: number;
  /** Decoded messages in the shard's order (user records in aggregate order). */
  readonly messages: SbeMessage[];
  /** For each message, the ApproximateArrivalTimestamp of the record that carried it, ms since the epoch. */
  readonly arrivedMs: number[];
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
    const arrivedMs: number[] = [];
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
          for (const frame of decodeFrames(user.data)) {
            messages.push(frame.message);
            arrivedMs.push(r.ApproximateArrivalTimestamp!.getTime());
          }
        }
      }
      if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
      iterator = page.NextShardIterator;
    }
    out.push({ shardId, records, messages, arrivedMs });
  }
  return out;
}

/** The data of every record of a stream, as UTF-8 text, shard by shard from TRIM_HORIZON. */
async function readRawRecords(client: KinesisClient, stream: string): Promise<string[]> {
  const out: string[] = [];
  const shards = (await client.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  for (const shard of shards) {
    let iterator = (
      await client.send(
        new GetShardIteratorCommand({
          StreamName: stream,
          ShardId: shard.ShardId!,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    while (iterator !== undefined) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
      for (const r of page.Records ?? []) out.push(Buffer.from(r.Data!).toString('utf8'));
      if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}

/** A config file for the built CLI: the emulator's endpoint and these stream names. */
function writeReplayConfig(dir: string, endpoint: string, names: Record<SimulatedStream, string>): string {
  const configFile = path.join(dir, 'config.yaml');
  fs.writeFileSync(
    configFile,
    `aws:\n  region: ${REGION}\n  kinesis:\n    endpoint: "${endpoint}"\n    streams:\n` +
      `      trade: ${names.trade}\n      bestbidask: ${names.bestbidask}\n      depth: ${names.depth}\n`,
  );
  return configFile;
}

/** Lag of each event's record behind the event's time (arrival - event time, ms; negative = ahead of the clock). */
function lagsMs(shards: readonly ShardContent[]): number[] {
  return shards.flatMap((s) => s.messages.map((m, i) => s.arrivedMs[i]! - Number(eventTimeUs(m)) / 1000));
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
    // Streams that exist already (made by startKinesisMock) and a stream holding a record: created again, each
    // keeps its shards and its records, and the call succeeds.
    const stream = 'replay-idempotent';
    await createStreams(mock!.endpoint, REGION, { [stream]: 2 });
    await client!.send(
      new PutRecordCommand({ StreamName: stream, PartitionKey: 'BTCUSDT', Data: Buffer.from('kept') }),
    );
    await createStreams(mock!.endpoint, REGION, shardMap('kpl'));
    await createStreams(mock!.endpoint, REGION, {
      ...shardMap('concat'),
      ...shardMap('single'),
      [stream]: 2,
    });
    await createStreams(mock!.endpoint, REGION, shardMap('single'));
    const expected = { ...shardMap('kpl'), ...shardMap('concat'), ...shardMap('single'), [stream]: 2 };
    for (const [name, shards] of Object.entries(expected)) {
      const summary = (await client!.send(new DescribeStreamSummaryCommand({ StreamName: name })))
        .StreamDescriptionSummary!;
      expect(summary.StreamStatus, name).to.equal('ACTIVE');
      expect(summary.OpenShardCount, `${name} shards`).to.equal(shards);
    }
    const kept = await readRawRecords(client!, stream);
    expect(kept, 'the record put before the second createStreams').to.deep.equal(['kept']);
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

  it('replay --rest-port serves a REST snapshot that bridges the published depth diffs (built CLI)', async function () {
    const names = {
      trade: 'replay-rest-trade',
      bestbidask: 'replay-rest-bestbidask',
      depth: 'replay-rest-depth',
    };
    await createStreams(mock!.endpoint, REGION, {
      [names.trade]: 1,
      [names.bestbidask]: 1,
      [names.depth]: 1,
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-replay-rest-'));
    const configFile = writeReplayConfig(dir, mock!.endpoint, names);
    const child = spawn(
      process.execPath,
      [
        path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
        '--config',
        configFile,
        'replay',
        '--source',
        'simulator',
        '--symbols',
        'BTCUSDT,ETHUSDT',
        '--seed',
        '7',
        '--rate',
        '3000',
        '--duration',
        '4',
        '--rest-port',
        '0',
        '--rest-linger',
        '3',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines = readline.createInterface({ input: child.stderr });
    const waitFor = (what: string, test: () => boolean, timeoutMs: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const started = Date.now();
        const poll = (): void => {
          if (test()) resolve();
          else if (Date.now() - started > timeoutMs || child.exitCode !== null)
            reject(new Error(`no ${what} after ${Date.now() - started} ms; stderr:\n${stderr}`));
          else setTimeout(poll, 20);
        };
        poll();
      });
    lines.on('line', (line) => (stderr += `${line}\n`));
    try {
      // The summary only comes at the end: the URL is read from stderr while the replay runs.
      const urlPattern = /^replay: serving the simulated exchange REST API at (http:\/\/127\.0\.0\.1:\d+)$/m;
      await waitFor('REST URL on stderr', () => urlPattern.test(stderr), 30_000);
      const restUrl = urlPattern.exec(stderr)![1]!;
      await new Promise((r) => setTimeout(r, 1000));
      expect(child.exitCode, 'still replaying').to.equal(null);
      const rest = new RestClient({ baseUrl: restUrl, maxRetries: 0 });
      const top = await rest.getDepth('BTCUSDT', 100);
      expectValidSnapshot(top, 100);
      // The whole book (the simulator keeps at most 160 levels a side), to replay the published diffs onto it.
      const full = await rest.getDepth('BTCUSDT', 1000);
      expectValidSnapshot(full, 1000);
      expect(full.lastUpdateId >= top.lastUpdateId).to.equal(true);
      expect(child.exitCode, 'still replaying after the snapshots').to.equal(null);

      // Publishing ends (summary on stdout); the REST API stays up for the linger, its state frozen.
      await waitFor('summary on stdout', () => stdout.endsWith('\n'), 30_000);
      const summary = JSON.parse(stdout) as PublishSummary & { restUrl: string };
      expect(summary.restUrl).to.equal(restUrl);
      expect(summary.stoppedBy).to.equal('duration');
      expect(child.exitCode, 'lingering').to.equal(null);
      const lingering = await rest.getDepth('BTCUSDT', 1000);
      expectValidSnapshot(lingering, 1000);
      expect((await rest.getDepth('BTCUSDT', 1000)).lastUpdateId).to.equal(lingering.lastUpdateId);
      expect((await rest.getTrades('ETHUSDT', 10)).length).to.be.greaterThan(0);

      expect(await exited, stderr).to.equal(0);
      expect(stderr).to.match(/replay: REST API closed/);
      expect(stdout.split('\n'), 'stdout: the summary line only').to.deep.equal([stdout.trimEnd(), '']);
      let refused: unknown;
      await fetch(`${restUrl}/api/v3/depth?symbol=BTCUSDT&limit=5`).catch((err: unknown) => (refused = err));
      expect(refused, 'the REST server is closed at the end').to.be.instanceOf(Error);

      // Consistency with what was published: the mid-run snapshot bridges the BTCUSDT diffs that follow it, and
      // the book built from it matches every later depth20 event of the stream.
      const depth = (await readStream(client!, names.depth)).flatMap((s) => s.messages);
      const btc = depth.filter((m) => m.symbol === 'BTCUSDT');
      const bids = new Map<bigint, bigint>(full.bids.map((l) => [l.priceMantissa, l.qtyMantissa]));
      const asks = new Map<bigint, bigint>(full.asks.map((l) => [l.priceMantissa, l.qtyMantissa]));
      let bookId = full.lastUpdateId;
      let bridged = false;
      let compared = 0;
      for (const m of btc) {
        if (m.message === 'DepthDiffStreamEvent') {
          if (m.lastBookUpdateId <= full.lastUpdateId) continue;
          if (!bridged) {
            expect(m.firstBookUpdateId <= full.lastUpdateId + 1n, 'first diff after the snapshot').to.equal(
              true,
            );
            bridged = true;
          } else {
            expect(m.firstBookUpdateId, 'contiguous diffs').to.equal(bookId + 1n);
          }
          applyLevels(bids, m.bids);
          applyLevels(asks, m.asks);
          bookId = m.lastBookUpdateId;
        } else if (m.message === 'DepthSnapshotStreamEvent' && bridged && m.bookUpdateId === bookId) {
          expect(topLevels(bids, m.bids.length, true), `bids at ${bookId}`).to.deep.equal(m.bids);
          expect(topLevels(asks, m.asks.length, false), `asks at ${bookId}`).to.deep.equal(m.asks);
          compared++;
        }
      }
      expect(bridged, 'a published diff follows the snapshot').to.equal(true);
      expect(compared).to.be.greaterThan(10);
      // Everything published is covered by the REST state served afterwards.
      expect(lingering.lastUpdateId >= bookId).to.equal(true);
      figures.push(
        `replay --rest-port: ${summary.events} events, snapshot at ${full.lastUpdateId} bridged, ` +
          `${compared} depth20 events matched`,
      );
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('without --start-time-us, event time follows the clock (built CLI)', function () {
    let names: Record<SimulatedStream, string>;
    let dir = '';
    let configFile = '';
    let streamSet = 0;

    beforeEach(async function () {
      // Fresh streams for each test: what they hold is read back from TRIM_HORIZON.
      const prefix = `replay-clock-${++streamSet}`;
      names = { trade: `${prefix}-trade`, bestbidask: `${prefix}-bestbidask`, depth: `${prefix}-depth` };
      await createStreams(mock!.endpoint, REGION, {
        [names.trade]: 1,
        [names.bestbidask]: 1,
        [names.depth]: 1,
      });
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-replay-clock-'));
      configFile = writeReplayConfig(dir, mock!.endpoint, names);
    });

    afterEach(function () {
      fs.rmSync(dir, { recursive: true, force: true });
    });

    async function readAll(): Promise<ShardContent[]> {
      const out: ShardContent[] = [];
      for (const stream of Object.values(names)) out.push(...(await readStream(client!, stream)));
      return out;
    }

    it('--rate 2000, two symbols: published at ~2000 events/s, each event after its time and soon after', async function () {
      const startedMs = Date.now();
      const args = ['--config', configFile, 'replay', '--symbols', 'BTCUSDT,ETHUSDT', '--seed', '3'];
      const out = await runCli([...args, '--rate', '2000', '--duration', '5']);
      expect(out.code, out.stderr).to.equal(0);
      expect(out.stderr).to.match(/event time follows the clock, no event is published before its time/);
      const summary = JSON.parse(out.stdout) as PublishSummary & {
        startTimeUs: string;
        actionsPerSecond: number;
      };
      // Starts at the time of the start; scaled up from the default 500 book actions/s to make 2000 events/s.
      expect(Number(summary.startTimeUs) / 1000).to.be.within(startedMs, Date.now());
      expect(summary.actionsPerSecond).to.be.greaterThan(1000);
      expect(summary.stoppedBy).to.equal('duration');
      expect(summary.eventsPerSecond).to.be.within(1000, 2050);
      const lags = lagsMs(await readAll()).sort((a, b) => a - b);
      expect(lags).to.have.length(summary.events);
      // Never ahead of the clock: the producer holds each event until the clock (ms) reaches its time, and the
      // record arrives later still.
      expect(lags[0], 'the earliest arrival relative to its event time').to.be.at.least(0);
      // And not far behind: the producer's linger (200 ms), the set-up before publishing and the PutRecords call.
      const median = lags[Math.floor(lags.length / 2)]!;
      expect(median, 'median lag, ms').to.be.below(2000);
      figures.push(
        `replay --rate 2000 (default start): ${summary.events} events at ${summary.eventsPerSecond}/s, ` +
          `${summary.actionsPerSecond} book actions/s; arrival - event time min ${lags[0]!.toFixed(1)} / median ` +
          `${median.toFixed(1)} / max ${lags[lags.length - 1]!.toFixed(1)} ms`,
      );
    });

    it('--events N unpaced: the events lead up to the time of the start, none ahead of the clock', async function () {
      const startedMs = Date.now();
      const out = await runCli([
        '--config',
        configFile,
        'replay',
        '--symbols',
        'BTCUSDT',
        '--events',
        '20000',
      ]);
      expect(out.code, out.stderr).to.equal(0);
      const summary = JSON.parse(out.stdout) as PublishSummary & { startTimeUs: string };
      expect(summary.events).to.equal(20000);
      const shards = await readAll();
      const times = shards.flatMap((s) => s.messages.map((m) => Number(eventTimeUs(m)) / 1000));
      const last = Math.max(...times);
      // The last event is dated when the replay planned it: after the spawn, before the end.
      expect(last).to.be.within(startedMs, Date.now());
      expect(last - Number(summary.startTimeUs) / 1000, 'simulated span, ms').to.be.greaterThan(10_000);
      const lags = lagsMs(shards);
      expect(Math.min(...lags)).to.be.at.least(0);
      figures.push(
        `replay --events 20000 (default start): the last event ${(Date.now() - last).toFixed(0)} ms before the ` +
          `check, span ${((last - Number(summary.startTimeUs) / 1000) / 1000).toFixed(1)} s`,
      );
    });
  });

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
      // kinesis-mock usually exits on the bind error; now and then it logs it and hangs without answering, which
      // the start-up deadline turns into the same error. Either way the message names the log and shows the cause.
      expect(tls.message).to.match(
        /^kinesis-mock (exited \(code \d+, signal null\) before it was ready|did not answer ListStreams in \d+ ms .*); see .*kinesis-mock-replay/,
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
