import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import kcl from 'aws-kcl';
import { PutRecordCommand, SplitShardCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { applicationName, STREAM_KINDS, type StreamKind } from '../../src/config/config';
import { PROCESSOR_WRAPPER_ENV } from '../../src/kcl/properties';
import { createDynamoClient, readLeases, SHARD_END } from '../../src/ops/leases';
import {
  createKinesisClient,
  publishEvents,
  putRecordsWith,
  type PublishSummary,
  type RecordMode,
} from '../../src/replay/producer';
import { simulate, type SimulatedEvent } from '../../src/replay/simulator';
import { repoRoot } from '../helpers/paths';
import { startPipeline, waitUntil, type DaemonHandle, type Pipeline } from '../helpers/pipeline';

// Issue 6: no processor writes anything but MultiLang protocol lines to stdout during a real end-to-end run.
// Every daemon starts its children through a wrapper (KCL_PROCESSOR_WRAPPER, see src/kcl/properties.ts) that
// runs the real `aggregator process` command and copies every byte the child writes to stdout both to the
// daemon and to a capture file per child. The run covers every action the daemon sends: initialize,
// processRecords (KPL-aggregated, concatenated and single-frame records, a poison record, the same replay
// delivered twice), shardEnded (a bestbidask shard split), shutdownRequested and leaseLost (graceful daemon
// stops). Then every byte of every capture is checked.

const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const START_US = 1_760_000_000_000_000n;

/** The actions a child answers with a status (aws-kcl's KCLManager: status responseFor the action). */
const STATUS_FOR = ['initialize', 'processRecords', 'leaseLost', 'shardEnded', 'shutdownRequested'] as const;
type StatusFor = (typeof STATUS_FOR)[number];

type ProtocolMessage =
  | { readonly action: 'status'; readonly responseFor: StatusFor }
  | { readonly action: 'checkpoint'; readonly sequenceNumber: string | null }
  | { readonly action: 'checkpoint'; readonly sequenceNumber: string; readonly subSequenceNumber: number };

interface CaptureCheck {
  /** Empty when every byte is protocol; otherwise one entry per offending line (1-based line numbers). */
  readonly problems: string[];
  /** The protocol messages, in order. */
  readonly messages: ProtocolMessage[];
}

function clip(text: string, max = 160): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}

/**
 * The one protocol message a line may hold, exactly as aws-kcl serializes it (JSON.stringify of
 * `{action: 'status', responseFor}` or `{action: 'checkpoint', sequenceNumber}`, see
 * node_modules/aws-kcl/lib/kcl/kcl_manager.js, or `{action: 'checkpoint', sequenceNumber, subSequenceNumber}`
 * with a sub-sequence number > 0, which src/kcl/protocol-adapter.ts checkpointAt sends for a sub-record of a KPL
 * aggregate), or a reason why it is not one. The daemon skips a line with an unknown field and deadlocks, so the
 * key set is exact.
 */
function parseProtocolLine(line: string): ProtocolMessage | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  const keys = Object.keys(v).join(',');
  let message: ProtocolMessage;
  if (v.action === 'status') {
    if (keys !== 'action,responseFor') return `status with fields ${keys}`;
    if (!(STATUS_FOR as readonly unknown[]).includes(v.responseFor))
      return `status for an unknown action ${JSON.stringify(v.responseFor)}`;
    message = { action: 'status', responseFor: v.responseFor as StatusFor };
  } else if (v.action === 'checkpoint' && keys === 'action,sequenceNumber,subSequenceNumber') {
    if (!(typeof v.sequenceNumber === 'string' && /^\d+$/.test(v.sequenceNumber)))
      return `checkpoint of ${JSON.stringify(v.sequenceNumber)} with a sub-sequence number`;
    if (!(typeof v.subSequenceNumber === 'number' && Number.isSafeInteger(v.subSequenceNumber)))
      return `sub-sequence number ${JSON.stringify(v.subSequenceNumber)}`;
    if (v.subSequenceNumber <= 0) return 'sub-sequence number 0 (sent without it)';
    message = {
      action: 'checkpoint',
      sequenceNumber: v.sequenceNumber,
      subSequenceNumber: v.subSequenceNumber,
    };
  } else if (v.action === 'checkpoint') {
    if (keys !== 'action,sequenceNumber') return `checkpoint with fields ${keys}`;
    if (
      v.sequenceNumber !== null &&
      !(typeof v.sequenceNumber === 'string' && /^\d+$/.test(v.sequenceNumber))
    )
      return `checkpoint of ${JSON.stringify(v.sequenceNumber)} (a sequence number or null = SHARD_END)`;
    message = { action: 'checkpoint', sequenceNumber: v.sequenceNumber };
  } else {
    return `action ${JSON.stringify(v.action)} is not one a child sends (status, checkpoint)`;
  }
  // Byte for byte what aws-kcl writes: no whitespace, no key order or escaping of another serializer.
  if (JSON.stringify(message) !== line) return 'not serialized as aws-kcl serializes it';
  return message;
}

/**
 * Checks bytes a processor wrote to stdout. aws-kcl's IOHandler.writeLine writes every message as
 * `\n<json>\n`, so the whole output is exactly `(\n<protocol json>\n)*`: UTF-8, ends with a newline, every
 * odd line blank and every even line one protocol message. Anything else (a log line, a stray byte, a
 * partial line) is a problem.
 */
function checkProtocolCapture(bytes: Buffer): CaptureCheck {
  const problems: string[] = [];
  const messages: ProtocolMessage[] = [];
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { problems: ['not valid UTF-8'], messages };
  }
  if (text === '') return { problems, messages };
  if (!text.endsWith('\n')) {
    problems.push(
      `does not end with a newline: partial last line ${clip(text.slice(text.lastIndexOf('\n') + 1))}`,
    );
  }
  const lines = (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n');
  let framingReported = false;
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`;
    const shouldBeBlank = index % 2 === 0;
    if (line === '') {
      if (!shouldBeBlank && !framingReported) {
        problems.push(`${where}: an extra blank line (aws-kcl writes "\\n<json>\\n" per message)`);
        framingReported = true;
      }
      return;
    }
    const parsed = parseProtocolLine(line);
    if (typeof parsed === 'string') {
      problems.push(`${where}: ${parsed}: ${clip(line)}`);
      return;
    }
    messages.push(parsed);
    if (shouldBeBlank && !framingReported) {
      problems.push(`${where}: a message without the blank line aws-kcl writes before it: ${clip(line)}`);
      framingReported = true;
    }
  });
  if (lines.length % 2 === 1 && !framingReported) {
    problems.push(
      `line ${lines.length}: an extra blank line at the end (aws-kcl writes "\\n<json>\\n" per message)`,
    );
  }
  return { problems, messages };
}

/**
 * The wrapper the daemon runs in front of each processor (plain Node, generated into the test's directory):
 * `node stdout-recorder.js <capture dir> <processor command...>`. It spawns the processor with stdin and
 * stderr inherited (the daemon's own pipes) and stdout piped; every chunk goes unchanged to the daemon and to
 * `<capture dir>/<kind>-<pid>.stdout`. SIGINT/SIGTERM/SIGHUP are forwarded (the processor ignores them and
 * exits on stdin EOF, and so does the wrapper through it); the processor's exit code or signal becomes the
 * wrapper's, recorded in `<kind>-<pid>.exit`. It writes nothing of its own to stdout.
 */
const RECORDER_SOURCE = String.raw`'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [captureDir, command, ...args] = process.argv.slice(2);
const streamAt = args.indexOf('--stream');
const kind = streamAt >= 0 && args[streamAt + 1] ? args[streamAt + 1] : 'unknown';
const base = path.join(captureDir, kind + '-' + process.pid);
const capture = fs.openSync(base + '.stdout', 'w');
fs.writeFileSync(base + '.argv', JSON.stringify([command, ...args]));

const child = spawn(command, args, { stdio: ['inherit', 'pipe', 'inherit'] });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    try {
      child.kill(signal);
    } catch (err) {
      process.stderr.write('stdout-recorder: could not forward ' + signal + ': ' + err.message + '\n');
    }
  });
}
// The daemon went away: keep recording; the processor sees stdin EOF and exits.
process.stdout.on('error', (err) => process.stderr.write('stdout-recorder: stdout: ' + err.message + '\n'));

child.stdout.on('data', (chunk) => {
  for (let done = 0; done < chunk.length; ) done += fs.writeSync(capture, chunk, done, chunk.length - done);
  if (!process.stdout.write(chunk)) {
    child.stdout.pause();
    process.stdout.once('drain', () => child.stdout.resume());
  }
});
child.on('error', (err) => {
  process.stderr.write('stdout-recorder: could not start ' + command + ': ' + err.message + '\n');
  fs.writeFileSync(base + '.exit', JSON.stringify({ code: 127, signal: null, error: err.message }));
  process.exit(127);
});
child.on('close', (code, signal) => {
  fs.closeSync(capture);
  fs.writeFileSync(base + '.exit', JSON.stringify({ code, signal }));
  const finish = () => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code === null ? 1 : code);
    }
  };
  if (process.stdout.writableLength === 0) finish();
  else process.stdout.once('drain', finish);
});
`;

interface Capture {
  readonly kind: string;
  readonly file: string;
  readonly bytes: Buffer;
  readonly exit: { code: number | null; signal: string | null } | undefined;
}

function readCaptures(dir: string): Capture[] {
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.stdout'))
    .sort()
    .map((name) => {
      const base = path.join(dir, name.slice(0, -'.stdout'.length));
      const exitFile = `${base}.exit`;
      return {
        kind: name.slice(0, name.indexOf('-')),
        file: path.join(dir, name),
        bytes: fs.readFileSync(path.join(dir, name)),
        exit: fs.existsSync(exitFile)
          ? (JSON.parse(fs.readFileSync(exitFile, 'utf8')) as Capture['exit'])
          : undefined,
      };
    });
}

/** The exact bytes the real aws-kcl writes for a short exchange, driven in process over in-memory streams. */
async function awsKclOutput(): Promise<Buffer> {
  const input = new PassThrough();
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on('data', (chunk: Buffer) => chunks.push(chunk));
  const send = (message: object) => input.write(`${JSON.stringify(message)}\n`);
  const statusSeen = () => {
    const text = Buffer.concat(chunks).toString('utf8');
    return (text.match(/"action":"status"/g) ?? []).length;
  };
  const waitForStatuses = async (count: number) => {
    for (let i = 0; i < 200 && statusSeen() < count; i++) await new Promise((r) => setTimeout(r, 5));
    expect(statusSeen(), 'aws-kcl answered').to.equal(count);
  };
  kcl(
    {
      initialize: (_input, done) => done(),
      processRecords: (input, done) => {
        const last = input.records[input.records.length - 1]!.sequenceNumber;
        input.checkpointer.checkpoint(last, () => done());
        setImmediate(() => send({ action: 'checkpoint', sequenceNumber: last, error: null }));
      },
      leaseLost: (_input, done) => done(),
      shardEnded: (input, done) => {
        input.checkpointer.checkpoint(null, () => done());
        setImmediate(() => send({ action: 'checkpoint', sequenceNumber: null, error: null }));
      },
      shutdownRequested: (_input, done) => done(),
    },
    input,
    output,
    new PassThrough(),
  ).run();
  send({ action: 'initialize', shardId: 'shardId-000000000000', sequenceNumber: 'TRIM_HORIZON' });
  await waitForStatuses(1);
  send({
    action: 'processRecords',
    records: [{ data: 'AA==', partitionKey: 'k', sequenceNumber: '49650000000000000000000000000001' }],
  });
  await waitForStatuses(2);
  send({ action: 'shutdownRequested' });
  await waitForStatuses(3);
  send({ action: 'shardEnded' });
  await waitForStatuses(4);
  input.end();
  return Buffer.concat(chunks);
}

describe('stdout carries the MultiLang protocol only', function () {
  describe('the capture check (it can fail)', () => {
    const status = (responseFor: string) => JSON.stringify({ action: 'status', responseFor });
    const checkpoint = (sequenceNumber: string | null) =>
      JSON.stringify({ action: 'checkpoint', sequenceNumber });
    const frame = (...lines: string[]) => Buffer.from(lines.map((l) => `\n${l}\n`).join(''), 'utf8');
    const valid = () => frame(status('initialize'), checkpoint('4965'), status('processRecords'));

    it('accepts exactly what the real aws-kcl writes, and nothing at all', async () => {
      const bytes = await awsKclOutput();
      const result = checkProtocolCapture(bytes);
      expect(result.problems).to.deep.equal([]);
      expect(result.messages).to.deep.equal([
        { action: 'status', responseFor: 'initialize' },
        { action: 'checkpoint', sequenceNumber: '49650000000000000000000000000001' },
        { action: 'status', responseFor: 'processRecords' },
        { action: 'status', responseFor: 'shutdownRequested' },
        { action: 'checkpoint', sequenceNumber: null },
        { action: 'status', responseFor: 'shardEnded' },
      ]);
      expect(checkProtocolCapture(valid()).problems).to.deep.equal([]);
      expect(checkProtocolCapture(Buffer.alloc(0))).to.deep.equal({ problems: [], messages: [] });
    });

    const broken: Array<[string, Buffer, RegExp]> = [
      [
        'a log line',
        Buffer.concat([valid(), Buffer.from('{"level":"info","message":"batch stored"}\n')]),
        /line 7: action undefined is not one a child sends/,
      ],
      ['a plain text line', Buffer.concat([valid(), Buffer.from('\nhello\n')]), /line 8: not JSON: "hello"/],
      ['one stray byte at the end', Buffer.concat([valid(), Buffer.from('x')]), /partial last line "x"/],
      ['one stray byte at the start', Buffer.concat([Buffer.from(' '), valid()]), /line 1: not JSON/],
      [
        'a stray newline',
        Buffer.concat([valid(), Buffer.from('\n')]),
        /line 7: an extra blank line at the end/,
      ],
      [
        'a missing final newline',
        Buffer.from(`\n${status('initialize')}`),
        /does not end with a newline: partial last line/,
      ],
      [
        'a message without its blank line',
        Buffer.from(`${status('initialize')}\n`),
        /line 1: a message without/,
      ],
      ['invalid UTF-8', Buffer.concat([valid(), Buffer.from([0xff, 0x0a])]), /not valid UTF-8/],
      [
        'an extra field',
        frame('{"action":"status","responseFor":"initialize","pid":1}'),
        /line 2: status with fields action,responseFor,pid/,
      ],
      [
        'a sub-sequence number 0 (checkpointAt sends none then)',
        frame('{"action":"checkpoint","sequenceNumber":"1","subSequenceNumber":0}'),
        /sub-sequence number 0/,
      ],
      [
        'a sub-sequence number on a SHARD_END checkpoint',
        frame('{"action":"checkpoint","sequenceNumber":null,"subSequenceNumber":3}'),
        /checkpoint of null with a sub-sequence number/,
      ],
      [
        'an unknown checkpoint field',
        frame('{"action":"checkpoint","sequenceNumber":"1","error":null}'),
        /checkpoint with fields action,sequenceNumber,error/,
      ],
      ['a status for no action', frame(status('record')), /status for an unknown action "record"/],
      ['a checkpoint of garbage', frame(checkpoint('TRIM_HORIZON')), /checkpoint of "TRIM_HORIZON"/],
      ['an action a child does not send', frame('{"action":"initialize"}'), /action "initialize" is not one/],
      [
        'another serializer',
        frame('{"action": "status", "responseFor": "initialize"}'),
        /not serialized as aws-kcl serializes it/,
      ],
      ['a JSON array', frame('[1]'), /not a JSON object/],
    ];
    for (const [what, bytes, problem] of broken) {
      it(`rejects ${what}`, () => {
        const { problems } = checkProtocolCapture(bytes);
        expect(problems.join('\n')).to.match(problem);
      });
    }
  });

  describe('end to end: every byte each processor wrote to stdout under the real KCL daemon', function () {
    this.timeout(240_000);
    let pipeline: Pipeline;
    let captureDir: string;
    let kinesis: KinesisClient;
    /** Every shard's last published sequence number, over every publish. */
    const latest: PublishSummary['shards'] = {};
    /** Shards that were split: their checkpoint must end at SHARD_END. */
    const ended = new Set<string>();

    const startDaemon = (kind: StreamKind, workerId?: string): DaemonHandle => {
      // The daemon's launch script renders executableName with the wrapper from this variable; the spawned
      // daemon keeps its own copy of the environment, so it is set only around the spawn.
      const saved = process.env[PROCESSOR_WRAPPER_ENV];
      process.env[PROCESSOR_WRAPPER_ENV] =
        `${process.execPath} ${path.join(pipeline.dir, 'stdout-recorder.js')} ${captureDir}`;
      try {
        return pipeline.startDaemon(kind, workerId);
      } finally {
        if (saved === undefined) delete process.env[PROCESSOR_WRAPPER_ENV];
        else process.env[PROCESSOR_WRAPPER_ENV] = saved;
      }
    };

    /** SIGTERM and wait for the daemon's own exit (the graceful lease hand-off), then for every wrapper. */
    async function stopGracefully(handle: DaemonHandle): Promise<void> {
      const { child } = handle;
      // The children this daemon started (one daemon per stream runs at a time here).
      const ofDaemon = () => readCaptures(captureDir).filter((c) => c.kind === handle.kind);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => setTimeout(() => r(true), 30_000)),
        ]);
        if (timedOut) await handle.stop(0);
      }
      await waitUntil(
        () => Promise.resolve(ofDaemon().every((c) => c.exit !== undefined)),
        15_000,
        `every processor of the ${handle.kind} daemon to exit`,
        () =>
          Promise.resolve(
            ofDaemon()
              .filter((c) => c.exit === undefined)
              .map((c) => path.basename(c.file))
              .join(', '),
          ),
      );
    }

    async function publish(events: readonly SimulatedEvent[], mode: RecordMode): Promise<PublishSummary> {
      const summary = await publishEvents(events, {
        streams: pipeline.config.aws.kinesis.streams,
        putRecords: putRecordsWith(kinesis),
        recordMode: mode,
      });
      for (const [stream, shards] of Object.entries(summary.shards)) {
        latest[stream] = { ...latest[stream], ...shards };
      }
      return summary;
    }

    /** Every shard published to is checkpointed at its last record (SHARD_END once split). */
    async function waitForCheckpoints(timeoutMs: number): Promise<void> {
      const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint);
      try {
        const pending = async () => {
          const missing: string[] = [];
          for (const kind of STREAM_KINDS) {
            const stream = pipeline.config.aws.kinesis.streams[kind];
            const leases = await readLeases(dynamo, applicationName(pipeline.config, kind)).catch(() => []);
            for (const [shardId, report] of Object.entries(latest[stream] ?? {})) {
              const want = ended.has(`${stream}/${shardId}`) ? SHARD_END : report.lastSequenceNumber;
              const lease = leases.find((l) => l.shardId === shardId);
              if (lease?.checkpoint !== want)
                missing.push(`${stream}/${shardId}: ${lease?.checkpoint ?? 'no lease'}`);
            }
          }
          return missing;
        };
        await waitUntil(
          async () => (await pending()).length === 0,
          timeoutMs,
          'checkpoints at the last published records',
          async () => (await pending()).join('; '),
        );
      } finally {
        dynamo.destroy();
      }
    }

    async function waitForLeaseOwner(kind: StreamKind, shardId: string, timeoutMs: number): Promise<void> {
      const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint);
      try {
        const table = applicationName(pipeline.config, kind);
        await waitUntil(
          async () =>
            (await readLeases(dynamo, table).catch(() => [])).some(
              (l) => l.shardId === shardId && l.owner !== undefined,
            ),
          timeoutMs,
          `a ${kind} daemon to hold the lease of ${shardId}`,
        );
      } finally {
        dynamo.destroy();
      }
    }

    before(async function () {
      const started = Date.now();
      pipeline = await startPipeline({
        shards: { trade: 2, bestbidask: 1, depth: 1 },
        symbols: SYMBOLS,
        label: 'stdout',
      });
      captureDir = path.join(pipeline.dir, 'stdout-captures');
      fs.mkdirSync(captureDir);
      fs.writeFileSync(path.join(pipeline.dir, 'stdout-recorder.js'), RECORDER_SOURCE);
      kinesis = createKinesisClient({
        region: pipeline.config.aws.region,
        endpoint: pipeline.config.aws.kinesis.endpoint,
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      });
      for (const kind of STREAM_KINDS) startDaemon(kind);
      process.stderr.write(`      stdout-protocol: stack up in ${(Date.now() - started) / 1000} s\n`);
    });

    after(async function () {
      kinesis?.destroy();
      if (pipeline) await pipeline.stop();
    });

    it('runs a replay with a poison record, a redelivery, a shard split and graceful stops', async function () {
      const started = Date.now();
      const phases: string[] = [];
      const phase = (name: string) => phases.push(`${name} ${((Date.now() - started) / 1000).toFixed(1)} s`);
      const events = [...simulate({ seed: 42, symbols: SYMBOLS, startTimeUs: START_US }, 3000)];
      const more = [...simulate({ seed: 42, symbols: SYMBOLS, startTimeUs: START_US }, 3600)];
      const first = await publish(events, 'kpl');
      expect(first.eventsPerStream.trade).to.be.greaterThan(0);
      expect(first.eventsPerStream.bestbidask).to.be.greaterThan(0);
      expect(first.eventsPerStream.depth).to.be.greaterThan(0);
      const tradeStream = pipeline.config.aws.kinesis.streams.trade;
      await kinesis.send(
        new PutRecordCommand({
          StreamName: tradeStream,
          PartitionKey: 'BTCUSDT',
          Data: Buffer.from('definitely not an SBE frame'),
        }),
      );
      // The same replay again (every event a duplicate), as concatenated frames.
      await publish(events, 'concat');
      // Split the one bestbidask shard: its processor reads to the end, gets shardEnded and checkpoints
      // SHARD_END (null); processors of the two child shards take the events published after the split.
      // Only once the daemon holds the shard's lease: a daemon whose first shard sync sees a split stream
      // fails it ("Hash range of shards ... was incomplete", kinesis-mock) and retries forever.
      const bbaStream = pipeline.config.aws.kinesis.streams.bestbidask;
      const [parent] = Object.keys(latest[bbaStream] ?? {});
      expect(parent, 'the bestbidask shard that received records').not.to.equal(undefined);
      await waitForLeaseOwner('bestbidask', parent!, 90_000);
      phase('bestbidask lease taken');
      await kinesis.send(
        new SplitShardCommand({
          StreamName: bbaStream,
          ShardToSplit: parent,
          NewStartingHashKey: (2n ** 127n).toString(),
        }),
      );
      ended.add(`${bbaStream}/${parent}`);
      await publish(more.slice(events.length), 'single');
      phase('published');
      await waitForCheckpoints(120_000);
      phase('checkpointed');
      expect(await pipeline.redis.hgetall(`dlq:{${tradeStream}}:counts`)).to.deep.equal({
        SCHEMA_MISMATCH: '1',
      });

      // Graceful stops: shutdownRequested, then leaseLost, then stdin EOF for every processor.
      await Promise.all(STREAM_KINDS.map((kind) => stopGracefully(pipeline.daemon(kind))));
      phase('all stopped');
      process.stderr.write(`      stdout-protocol: ${phases.join(', ')}\n`);
    });

    it('every capture holds protocol messages only, each child exited cleanly', function () {
      const captures = readCaptures(captureDir);
      const problems: string[] = [];
      for (const capture of captures) {
        const check = checkProtocolCapture(capture.bytes);
        for (const problem of check.problems) problems.push(`${path.basename(capture.file)}: ${problem}`);
        if (check.messages.length > 0)
          expect(check.messages[0], `${capture.file} starts by answering initialize`).to.deep.equal({
            action: 'status',
            responseFor: 'initialize',
          });
        expect(capture.exit, `${capture.file}: the processor's exit`).to.deep.equal({
          code: 0,
          signal: null,
        });
      }
      expect(problems, 'non-protocol bytes on a processor stdout').to.deep.equal([]);
    });

    it('covers every stream and every action the daemon sends', function () {
      const captures = readCaptures(captureDir);
      const responses = new Set<string>();
      for (const kind of STREAM_KINDS) {
        const ofKind = captures.filter((c) => c.kind === kind);
        expect(ofKind.length, `captures of ${kind} processors`).to.be.greaterThan(0);
        const messages = ofKind.flatMap((c) => checkProtocolCapture(c.bytes).messages);
        const checkpoints = messages.filter((m) => m.action === 'checkpoint');
        expect(checkpoints.length, `checkpoints written by ${kind} processors`).to.be.greaterThan(0);
        for (const m of messages) if (m.action === 'status') responses.add(m.responseFor);
      }
      expect([...responses].sort()).to.deep.equal([...STATUS_FOR].sort());
      // The split shard's processor checkpointed SHARD_END before answering shardEnded.
      const shardEnd = captures
        .map((c) => checkProtocolCapture(c.bytes).messages)
        .find((ms) => ms.some((m) => m.action === 'status' && m.responseFor === 'shardEnded'));
      expect(shardEnd, 'a capture with shardEnded').not.to.equal(undefined);
      const at = shardEnd!.findIndex((m) => m.action === 'status' && m.responseFor === 'shardEnded');
      expect(shardEnd![at - 1]).to.deep.equal({ action: 'checkpoint', sequenceNumber: null });
      // A processor stopped gracefully after storing records checkpointed again before answering
      // shutdownRequested, at its last checkpoint of a batch (the last stored record).
      let graceful = 0;
      for (const capture of captures) {
        const ms = checkProtocolCapture(capture.bytes).messages;
        const stop = ms.findIndex((m) => m.action === 'status' && m.responseFor === 'shutdownRequested');
        if (stop < 0 || !ms.some((m) => m.action === 'status' && m.responseFor === 'processRecords'))
          continue;
        graceful++;
        const lastBatch = ms.slice(0, stop).findLastIndex((m) => m.action === 'status');
        expect(
          ms[stop - 1],
          `${capture.file}: the message before the shutdownRequested status`,
        ).to.deep.equal(ms.slice(0, lastBatch).findLast((m) => m.action === 'checkpoint'));
      }
      expect(graceful, 'processors stopped gracefully after storing records').to.be.greaterThan(0);
      // Each child was the wrapper around the real processor command of its stream.
      const argvFiles = fs.readdirSync(captureDir).filter((name) => name.endsWith('.argv'));
      expect(argvFiles).to.have.length(captures.length);
      for (const name of argvFiles) {
        const argv = JSON.parse(fs.readFileSync(path.join(captureDir, name), 'utf8')) as string[];
        expect(path.basename(argv[0]!)).to.match(/^node/);
        expect(argv.slice(1)).to.deep.equal([
          path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
          '--config',
          pipeline.configFile,
          'process',
          '--stream',
          name.slice(0, name.indexOf('-')),
        ]);
      }
    });
  });
});
