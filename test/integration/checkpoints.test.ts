import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CreateTableCommand, PutItemCommand, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import { ListShardsCommand } from '@aws-sdk/client-kinesis';
import { applicationName, STREAM_KINDS, type StreamKind } from '../../src/config/config';
import { findFreePort } from '../../src/dev/localstack/ports';
import { createDynamoClient, readLeases, type CheckpointRow } from '../../src/ops/leases';
import {
  createKinesisClient,
  publishEvents,
  putRecordsWith,
  type PublishSummary,
} from '../../src/replay/producer';
import { simulate } from '../../src/replay/simulator';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';
import { runCli, type CliResult, type RunCliOptions } from '../helpers/cli';

// `aggregator checkpoints` (the built CLI) against the lease tables of a real local run: kinesis-mock,
// dynalite, Redis and one real KCL daemon per stream; then a daemon killed hard, a missing table, an
// unreachable endpoint and missing credentials.

/** The checkpoints command never takes a minute: a hung one is killed. */
const runCliBounded = (args: readonly string[], options: RunCliOptions = {}): Promise<CliResult> =>
  runCli(args, { timeoutMs: 60_000, ...options });

function jsonRows(out: CliResult): CheckpointRow[] {
  return out.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as CheckpointRow);
}

describe('aggregator checkpoints', function () {
  this.timeout(240_000);

  describe('against the lease tables of a real local run', function () {
    let pipeline: Pipeline;
    /** Every shard id of every stream, from Kinesis itself. */
    const shardIds = new Map<StreamKind, string[]>();
    /** Per stream and shard, the last sequence number the producer wrote. */
    let published: PublishSummary['shards'];

    before(async function () {
      const started = Date.now();
      pipeline = await startPipeline({
        shards: { trade: 2, bestbidask: 1, depth: 1 },
        symbols: ['BTCUSDT', 'ETHUSDT'],
        label: 'ckpt',
      });
      for (const kind of STREAM_KINDS) pipeline.startDaemon(kind);
      const { config } = pipeline;
      const kinesis = createKinesisClient({
        region: config.aws.region,
        endpoint: config.aws.kinesis.endpoint,
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      });
      try {
        for (const kind of STREAM_KINDS) {
          const listed = await kinesis.send(
            new ListShardsCommand({ StreamName: config.aws.kinesis.streams[kind] }),
          );
          shardIds.set(kind, (listed.Shards ?? []).map((s) => s.ShardId!).sort());
        }
        const events = [
          ...simulate(
            { seed: 11, symbols: ['BTCUSDT', 'ETHUSDT'], startTimeUs: 1_760_000_000_000_000n },
            800,
          ),
        ];
        const summary = await publishEvents(events, {
          streams: config.aws.kinesis.streams,
          putRecords: putRecordsWith(kinesis),
          recordMode: 'concat',
        });
        published = summary.shards;
      } finally {
        kinesis.destroy();
      }
      // Wait until every shard that got records is checkpointed at its last record.
      const dynamo = createDynamoClient(config.aws.region, config.aws.dynamodb.endpoint);
      try {
        const pending = async () => {
          const missing: string[] = [];
          for (const kind of STREAM_KINDS) {
            const stream = config.aws.kinesis.streams[kind];
            const leases = await readLeases(dynamo, applicationName(config, kind)).catch(() => []);
            for (const shardId of shardIds.get(kind) ?? []) {
              const lease = leases.find((l) => l.shardId === shardId);
              const expected = published[stream]?.[shardId]?.lastSequenceNumber;
              if (lease === undefined || lease.owner === undefined)
                missing.push(`${stream}/${shardId}: no lease`);
              else if (expected !== undefined && lease.checkpoint !== expected)
                missing.push(`${stream}/${shardId}: ${lease.checkpoint ?? '-'}`);
            }
          }
          return missing;
        };
        await waitUntil(
          async () => (await pending()).length === 0,
          150_000,
          'checkpoints at the last published record',
          async () => (await pending()).join('; '),
        );
      } finally {
        dynamo.destroy();
      }
      process.stderr.write(
        `      (stack, daemons, replay and checkpoints ready after ${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
      );
    });

    after(async function () {
      if (pipeline) await pipeline.stop();
    });

    /** For failure messages: whether each daemon still runs, and the end of its log. */
    function daemonStates(): string {
      return STREAM_KINDS.map((kind) => {
        const { child, logFile } = pipeline.daemon(kind);
        const state = child.exitCode ?? child.signalCode ?? 'running';
        const tail = fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-3).join(' | ');
        return `${kind} daemon ${state}: ${tail}`;
      }).join('\n');
    }

    function expectedCheckpoint(kind: StreamKind, shardId: string): string {
      // A shard that got no record keeps the initial position the daemon checkpointed.
      return (
        published[pipeline.config.aws.kinesis.streams[kind]]?.[shardId]?.lastSequenceNumber ?? 'TRIM_HORIZON'
      );
    }

    describe('while every daemon runs', function () {
      /** The three forms run at once (each sampling run waits the default 4000 ms). */
      let whileRunning: { json: Promise<CliResult>; table: Promise<CliResult>; noSample: Promise<CliResult> };

      before(function () {
        whileRunning = {
          json: runCliBounded(['--config', pipeline.configFile, 'checkpoints', '--json']),
          table: runCliBounded(['--config', pipeline.configFile, 'checkpoints']),
          noSample: runCliBounded(['--config', pipeline.configFile, 'checkpoints', '--json', '--no-sample']),
        };
      });

      it('--json: every shard of every stream, owner = worker id, checkpoint = last published, alive', async function () {
        const out = await whileRunning.json;
        expect(out.code, out.stderr).to.equal(0);
        const rows = jsonRows(out);
        const expected = STREAM_KINDS.flatMap((kind) =>
          (shardIds.get(kind) ?? []).map((shardId) => ({
            stream: pipeline.config.aws.kinesis.streams[kind],
            kind,
            table: applicationName(pipeline.config, kind),
            shardId,
            owner: `worker-${kind}-1`,
            checkpoint: expectedCheckpoint(kind, shardId),
            alive: 'alive',
          })),
        );
        expect(expected).to.have.length(4);
        expect(
          rows.map(({ stream, kind, table, shardId, owner, checkpoint, alive }) => ({
            stream,
            kind,
            table,
            shardId,
            owner,
            checkpoint,
            alive,
          })),
          daemonStates(),
        ).to.deep.equal(expected);
        // At least one shard per stream got records (else the checkpoint check above proves little).
        for (const kind of STREAM_KINDS) {
          expect(
            rows.some((r) => r.kind === kind && /^\d+$/.test(r.checkpoint ?? '')),
            kind,
          ).to.equal(true);
        }
        for (const row of rows) {
          expect(row.checkpointSubSequenceNumber).to.equal(0);
          expect(row.leaseCounterDelta).to.be.greaterThan(0);
          expect(row.sampleMs).to.equal(4000); // 2 x failover_time_millis (6000) / 3
          expect(row.ownerSwitchesSinceCheckpoint).to.be.a('number');
        }
      });

      it('table form: a header and one aligned line per shard', async function () {
        const out = await whileRunning.table;
        expect(out.code, out.stderr).to.equal(0);
        process.stderr.write(`${out.stdout.replace(/^/gm, '      | ')}\n`);
        const lines = out.stdout.trimEnd().split('\n');
        expect(lines[0]).to.match(/^STREAM +SHARD +OWNER +CHECKPOINT +SUBSEQ +COUNTER +SWITCHES +ALIVE$/);
        const body = lines.slice(1, -1);
        expect(lines.at(-1)).to.contain('alive = leaseCounter moved within 4000 ms');
        expect(body).to.have.length(4);
        const aliveAt = lines[0]!.indexOf('ALIVE');
        for (const kind of STREAM_KINDS) {
          for (const shardId of shardIds.get(kind) ?? []) {
            const line = body.find(
              (l) => l.includes(pipeline.config.aws.kinesis.streams[kind]) && l.includes(shardId),
            );
            expect(line, `${kind} ${shardId}`).to.not.equal(undefined);
            const cells = line!.split(/ +/);
            expect(cells.slice(0, 4)).to.deep.equal([
              pipeline.config.aws.kinesis.streams[kind],
              shardId,
              `worker-${kind}-1`,
              expectedCheckpoint(kind, shardId),
            ]);
            expect(line!.slice(aliveAt), daemonStates()).to.equal('alive');
          }
        }
      });

      it('--no-sample reads once: owned leases are "unknown"', async function () {
        const out = await whileRunning.noSample;
        expect(out.code, out.stderr).to.equal(0);
        const rows = jsonRows(out);
        expect(rows).to.have.length(4);
        expect(rows.map((r) => r.alive)).to.deep.equal(['unknown', 'unknown', 'unknown', 'unknown']);
        expect(rows.every((r) => r.sampleMs === null && r.leaseCounterDelta === null)).to.equal(true);
      });
    });

    // Nested, so that mocha runs it after 'while every daemon runs' (a suite's own tests run before its
    // nested suites).
    describe('after the trade daemon was killed hard', function () {
      it('reports the leases of a daemon killed hard as stale, the others alive', async function () {
        const daemon = pipeline.daemon('trade');
        const exited = new Promise<void>((resolve) => daemon.child.once('exit', () => resolve()));
        process.kill(-daemon.child.pid!, 'SIGKILL');
        await exited;
        // A renewal already sent to dynalite when the daemon died may still land: let it.
        await new Promise((resolve) => setTimeout(resolve, 500));
        // No other trade worker runs, so nobody takes the leases over: the counter stays still for good.
        const [out, table] = await Promise.all([
          runCliBounded(['--config', pipeline.configFile, 'checkpoints', '--json']),
          runCliBounded(['--config', pipeline.configFile, 'checkpoints', '--sample-ms', '6000']),
        ]);
        expect(out.code, out.stderr).to.equal(0);
        const rows = jsonRows(out);
        expect(
          rows.filter((r) => r.kind === 'trade').map((r) => [r.owner, r.alive, r.leaseCounterDelta]),
        ).to.deep.equal([
          ['worker-trade-1', 'stale', 0],
          ['worker-trade-1', 'stale', 0],
        ]);
        expect(rows.every((r) => r.sampleMs === 4000)).to.equal(true); // the default: 2 x 6000 / 3
        // The daemons still running: alive (over the failover time, KCL's own expiry criterion).
        expect(table.code, table.stderr).to.equal(0);
        const lines = table.stdout.split('\n');
        const tradeLines = lines.filter((l) => l.startsWith(pipeline.config.aws.kinesis.streams.trade));
        expect(tradeLines).to.have.length(2);
        for (const line of tradeLines) expect(line).to.match(/ stale \(owner may be dead\)$/);
        const others = lines.filter((l) => /^market-sbe-(bestbidask|depth) /.test(l));
        expect(others).to.have.length(2);
        for (const line of others) expect(line).to.match(/ alive$/);
      });

      it('names a missing table and its stream, still shows the others, and exits 1', async function () {
        // Another application prefix: only its trade table exists (created here, with one finished shard).
        const prefix = 'agg-ckpt-other';
        const otherConfig = path.join(pipeline.dir, 'other.yaml');
        fs.writeFileSync(
          otherConfig,
          fs
            .readFileSync(pipeline.configFile, 'utf8')
            .replace(/application_name_prefix: .*/, `application_name_prefix: "${prefix}"`),
        );
        const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint);
        try {
          await dynamo.send(
            new CreateTableCommand({
              TableName: `${prefix}-trade`,
              AttributeDefinitions: [{ AttributeName: 'leaseKey', AttributeType: 'S' }],
              KeySchema: [{ AttributeName: 'leaseKey', KeyType: 'HASH' }],
              BillingMode: 'PAY_PER_REQUEST',
            }),
          );
          // dynalite creates tables asynchronously (even with --createTableMs 0): a PutItem sent at once can
          // still get ResourceNotFoundException.
          await waitUntilTableExists(
            { client: dynamo, maxWaitTime: 20, minDelay: 1, maxDelay: 1 },
            { TableName: `${prefix}-trade` },
          );
          await dynamo.send(
            new PutItemCommand({
              TableName: `${prefix}-trade`,
              Item: {
                leaseKey: { S: 'shardId-000000000000' },
                leaseOwner: { S: 'gone-worker' },
                leaseCounter: { N: '7' },
                checkpoint: { S: 'SHARD_END' },
                checkpointSubSequenceNumber: { N: '0' },
                ownerSwitchesSinceCheckpoint: { N: '0' },
              },
            }),
          );
        } finally {
          dynamo.destroy();
        }
        const [out, table] = await Promise.all([
          runCliBounded(['--config', otherConfig, 'checkpoints', '--json', '--sample-ms', '200']),
          runCliBounded(['--config', otherConfig, 'checkpoints', '--no-sample']),
        ]);
        expect(out.code).to.equal(1);
        for (const kind of ['bestbidask', 'depth'] as const) {
          expect(out.stderr).to.contain(
            `lease table ${prefix}-${kind} of stream ${pipeline.config.aws.kinesis.streams[kind]} does not exist at ` +
              `${pipeline.config.aws.dynamodb.endpoint}`,
          );
        }
        expect(out.stderr.trim().split('\n')).to.have.length(2);
        expect(jsonRows(out).map((r) => [r.table, r.shardId, r.owner, r.alive])).to.deep.equal([
          [`${prefix}-trade`, 'shardId-000000000000', 'gone-worker', 'ended'],
        ]);
        expect(table.code).to.equal(1);
        expect(table.stdout).to.match(/^STREAM /);
        expect(table.stdout).to.match(/shardId-000000000000 +gone-worker +SHARD_END +0 +7 +0 +ended\n/);
      });
    });
  });

  describe('without a reachable, authorised DynamoDB', function () {
    let dir: string;

    before(function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-ckpt-errors-'));
    });

    after(function () {
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('names the unreachable endpoint and exits 3', async function () {
      const port = await findFreePort(); // nothing listens there
      const file = path.join(dir, 'unreachable.yaml');
      fs.writeFileSync(
        file,
        `aws:\n  region: "us-east-1"\n  dynamodb:\n    endpoint: "http://127.0.0.1:${port}"\n`,
      );
      const out = await runCliBounded(['--config', file, 'checkpoints', '--no-sample']);
      expect(out.code, out.stderr).to.equal(3);
      expect(out.stdout).to.equal('');
      expect(out.stderr).to.equal(
        `checkpoints: cannot reach DynamoDB at http://127.0.0.1:${port} (ECONNREFUSED): check ` +
          'aws.dynamodb.endpoint and aws.region in the config, and that the local stack is up (aggregator stack status)\n',
      );
    });

    it('says how to provide missing AWS credentials and exits 2 (no network call)', async function () {
      const file = path.join(dir, 'aws.yaml');
      fs.writeFileSync(file, 'aws:\n  region: "eu-west-1"\n');
      // No AWS_* variables, an empty home (no ~/.aws), no instance metadata: no credentials anywhere.
      const env: NodeJS.ProcessEnv = { HOME: dir, AWS_EC2_METADATA_DISABLED: 'true' };
      for (const [name, value] of Object.entries(process.env)) {
        if (!name.startsWith('AWS_') && name !== 'HOME') env[name] = value;
      }
      env.AWS_EC2_METADATA_DISABLED = 'true';
      env.AWS_CONFIG_FILE = path.join(dir, 'none-config');
      env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'none-credentials');
      const out = await runCliBounded(['--config', file, 'checkpoints', '--no-sample'], { env });
      expect(out.code, out.stderr).to.equal(2);
      expect(out.stdout).to.equal('');
      const lines = out.stderr.trim().split('\n');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(
        /^checkpoints: no AWS credentials found \(CredentialsProviderError: .*\): set AWS_PROFILE/,
      );
    });
  });
});
