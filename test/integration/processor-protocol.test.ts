import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import Redis from 'ioredis';
import { findFreePort } from '../../src/dev/localstack/ports';
import { simulate } from '../../src/replay/simulator';
import { encodeFrames } from '../../src/sbe/encoder';
import type { SbeMessage } from '../../src/sbe/messages';
import { parseConfig } from '../../src/config/config';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';
import { snapshotKeys, snapshotStateKeys } from '../helpers/redis-snapshot';
import { MultiLangDriver, kinesisRecord } from '../helpers/multilang-driver';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// The real record-processor child (`node dist/src/cli/main.js --config <yaml> process --stream trade`) driven over
// stdin/stdout exactly as the KCL MultiLangDaemon drives it (see ../shared/docs/kcl-multilang.md; the daemon's side
// is ../helpers/multilang-driver.ts), against a real redis-server started here.

const SHARD = 'shardId-000000000000';
const STREAM = 'market-sbe-trade';
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];
const LEVELS = 10;

describe('record processor child over the MultiLang protocol', function () {
  this.timeout(30000);

  let tmpDir: string;
  let server: TestRedis;
  let redisPort: number;
  let redis: Redis;
  const children: MultiLangDriver[] = [];

  function writeConfig(name: string, port: number, batchDeadlineMs: number): string {
    const file = path.join(tmpDir, name);
    fs.writeFileSync(
      file,
      [
        'redis:',
        '  host: "127.0.0.1"',
        `  port: ${port}`,
        '  cluster_mode: false',
        'processing:',
        `  symbols: [${SYMBOLS.join(', ')}]`,
        `  order_book_levels: ${LEVELS}`,
        `  batch_deadline_ms: ${batchDeadlineMs}`,
        '  redis_retries: 5',
        'logging:',
        '  level: "debug"',
        `  file: "${name}.log"`,
        '',
      ].join('\n'),
    );
    return file;
  }

  function startChild(configFile: string): MultiLangDriver {
    const child = new MultiLangDriver(configFile, tmpDir);
    children.push(child);
    return child;
  }

  before(async () => {
    server = await startTestRedis('processor-protocol');
    tmpDir = server.dir;
    redisPort = server.port;
    redis = new Redis({ host: '127.0.0.1', port: redisPort, lazyConnect: false });
  });

  afterEach(() => {
    for (const child of children.splice(0)) child.kill();
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it('initialize, processRecords (frames + a poison record), redelivery, shardEnded, EOF: the full exchange', async () => {
    await redis.flushdb();
    const configFile = writeConfig('happy.yaml', redisPort, 5000);
    const daemon = startChild(configFile);

    daemon.send({
      action: 'initialize',
      shardId: SHARD,
      sequenceNumber: 'TRIM_HORIZON',
      subSequenceNumber: 0,
    });
    expect(await daemon.next()).to.deep.equal({ action: 'status', responseFor: 'initialize' });

    // SIGTERM (as sent to the daemon's process group) must not kill the child: it ends only on stdin EOF.
    daemon.child.kill('SIGTERM');
    daemon.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    expect(daemon.running, 'the child survived SIGTERM and SIGINT').to.equal(true);

    // Several SBE frames concatenated per record, two symbols, and a garbage record in the middle.
    const events: SbeMessage[] = [
      ...simulate({ seed: 3, symbols: SYMBOLS, startTimeUs: 1_700_000_000_000_000n }, 300),
    ].map((e) => e.message);
    const seq = [
      '49650000000000000000000000000000000000000000000000000001',
      '49650000000000000000000000000000000000000000000000000002',
      '49650000000000000000000000000000000000000000000000000003',
    ];
    const garbage = Buffer.from('not an sbe frame at all');
    const records = [
      kinesisRecord(seq[0]!, encodeFrames(events.slice(0, 140)), 'BTCUSDT'),
      kinesisRecord(seq[1]!, garbage, 'ETHUSDT'),
      kinesisRecord(seq[2]!, encodeFrames(events.slice(140)), 'BTCUSDT'),
    ];
    const processRecords = { action: 'processRecords', records, millisBehindLatest: 0 };
    daemon.send(processRecords);

    expect(await daemon.next()).to.deep.equal({ action: 'checkpoint', sequenceNumber: seq[2] });
    // The checkpoint comes only after Redis acknowledged: the state is already there.
    // Differential check: the child left exactly the state the same events leave when written in process
    // (db 1 of the same server); the scripts themselves are proven against references elsewhere.
    const client = createRedisClient(parseConfig({ redis: { port: redisPort, db: 1 } }).redis, {
      connectionName: 'reference-writer',
    });
    await new StateWriter(client, new Keys({ clusterMode: false }), {
      orderBookLevels: LEVELS,
      diffBufferMaxLength: 1000,
      deadLetterMaxLen: 1000,
    }).write(groupBySymbol(events).values(), []);
    client.disconnect();
    const reference = new Redis({ host: '127.0.0.1', port: redisPort, db: 1 });
    const expected = await snapshotKeys(reference);
    reference.disconnect();
    expect(Object.keys(expected)).to.include.members(SYMBOLS.map((s) => `ob:${s}`));
    expect(await snapshotStateKeys(redis), 'state outside the dead letters and telemetry').to.deep.equal(
      expected,
    );
    daemon.send({ action: 'checkpoint', sequenceNumber: seq[2], subSequenceNumber: 0, error: null });
    expect(await daemon.next()).to.deep.equal({ action: 'status', responseFor: 'processRecords' });

    // The poison record is in the dead-letter stream with its sequence number and error code.
    const letters = await redis.xrange(`dlq:{${STREAM}}`, '-', '+');
    expect(letters).to.have.length(1);
    const fields = letters[0]![1];
    const entry: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) entry[fields[i]!] = fields[i + 1]!;
    expect(entry).to.deep.include({
      error_code: 'SCHEMA_MISMATCH',
      shard: SHARD,
      sequence_number: seq[1],
      sub_sequence_number: '0',
      frame_index: '0',
      partition_key: 'ETHUSDT',
      data_base64: garbage.toString('base64'),
      arrival_ms: '1700000000000',
    });
    expect(entry.error).to.match(/schema/);
    expect(await redis.hgetall(`dlq:{${STREAM}}:counts`)).to.deep.equal({ SCHEMA_MISMATCH: '1' });
    const stateAfterFirst = await snapshotKeys(redis);

    // Redelivery of the same batch (e.g. after a restart); the first checkpoint is throttled and retried.
    daemon.send(processRecords);
    expect(await daemon.next()).to.deep.equal({ action: 'checkpoint', sequenceNumber: seq[2] });
    daemon.send({
      action: 'checkpoint',
      sequenceNumber: seq[2],
      subSequenceNumber: 0,
      error: 'ThrottlingException',
    });
    expect(await daemon.next()).to.deep.equal({ action: 'checkpoint', sequenceNumber: seq[2] });
    daemon.send({ action: 'checkpoint', sequenceNumber: seq[2], subSequenceNumber: 0, error: null });
    expect(await daemon.next()).to.deep.equal({ action: 'status', responseFor: 'processRecords' });
    expect(await snapshotKeys(redis)).to.deep.equal(stateAfterFirst);
    expect(await redis.xlen(`dlq:{${STREAM}}`)).to.equal(1);
    expect(await redis.hgetall(`dlq:{${STREAM}}:counts`)).to.deep.equal({ SCHEMA_MISMATCH: '1' });

    // Shard end: the child must checkpoint SHARD_END (null) before its status.
    daemon.send({ action: 'shardEnded' });
    expect(await daemon.next()).to.deep.equal({ action: 'checkpoint', sequenceNumber: null });
    daemon.send({ action: 'checkpoint', sequenceNumber: null, subSequenceNumber: 0, error: null });
    expect(await daemon.next()).to.deep.equal({ action: 'status', responseFor: 'shardEnded' });

    // The daemon closes stdin: the child exits 0 promptly.
    daemon.child.stdin.end();
    const started = Date.now();
    expect(await daemon.exit(5000)).to.deep.equal({ code: 0, signal: null });
    expect(Date.now() - started).to.be.lessThan(5000);

    daemon.expectOnlyProtocolOnStdout();
    // The whole transcript, in order: nothing more was written.
    expect(daemon.rawLines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown)).to.deep.equal(
      [
        { action: 'status', responseFor: 'initialize' },
        { action: 'checkpoint', sequenceNumber: seq[2] },
        { action: 'status', responseFor: 'processRecords' },
        { action: 'checkpoint', sequenceNumber: seq[2] },
        { action: 'checkpoint', sequenceNumber: seq[2] },
        { action: 'status', responseFor: 'processRecords' },
        { action: 'checkpoint', sequenceNumber: null },
        { action: 'status', responseFor: 'shardEnded' },
      ],
    );
    expect(daemon.stderr, 'logs go to the configured file, not stderr').to.equal('');
    const log = fs.readFileSync(path.join(tmpDir, 'happy.yaml.log'), 'utf8');
    expect(log).to.contain('frame dead-lettered');
    expect(log).to.contain('stdin closed; exiting');
  });

  it('leaseLost: status without a checkpoint, then exit 0 on stdin EOF', async () => {
    const daemon = startChild(writeConfig('lease.yaml', redisPort, 5000));
    daemon.send({
      action: 'initialize',
      shardId: 'shardId-000000000001',
      sequenceNumber: 'LATEST',
      subSequenceNumber: 0,
    });
    expect(await daemon.next()).to.deep.equal({ action: 'status', responseFor: 'initialize' });
    daemon.send({ action: 'leaseLost' });
    expect(await daemon.next()).to.deep.equal({ action: 'status', responseFor: 'leaseLost' });
    daemon.child.stdin.end();
    expect(await daemon.exit(5000)).to.deep.equal({ code: 0, signal: null });
    daemon.expectOnlyProtocolOnStdout();
    expect(daemon.rawLines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown)).to.deep.equal(
      [
        { action: 'status', responseFor: 'initialize' },
        { action: 'status', responseFor: 'leaseLost' },
      ],
    );
  });

  it('Redis unreachable: the batch is never checkpointed nor acknowledged and the child exits non-zero', async () => {
    const closedPort = await findFreePort();
    const configFile = writeConfig('unreachable.yaml', closedPort, 300);
    const daemon = startChild(configFile);
    daemon.send({
      action: 'initialize',
      shardId: SHARD,
      sequenceNumber: 'TRIM_HORIZON',
      subSequenceNumber: 0,
    });
    expect(await daemon.next()).to.deep.equal({ action: 'status', responseFor: 'initialize' });

    const events = [
      ...simulate({ seed: 5, symbols: ['BTCUSDT'], startTimeUs: 1_700_000_000_000_000n }, 20),
    ].map((e) => e.message);
    daemon.send({
      action: 'processRecords',
      records: [
        kinesisRecord(
          '49650000000000000000000000000000000000000000000000000009',
          encodeFrames(events),
          'BTCUSDT',
        ),
      ],
      millisBehindLatest: 0,
    });
    expect(await daemon.exit(15000)).to.deep.equal({ code: 1, signal: null });

    daemon.expectOnlyProtocolOnStdout();
    const lines = daemon.rawLines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown);
    expect(
      lines,
      'nothing after the initialize status: no checkpoint, no processRecords status',
    ).to.deep.equal([{ action: 'status', responseFor: 'initialize' }]);
    const log = fs.readFileSync(path.join(tmpDir, 'unreachable.yaml.log'), 'utf8');
    expect(log).to.contain('processRecords failed; exiting without acknowledging it');
  });
});
