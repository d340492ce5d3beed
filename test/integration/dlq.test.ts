import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { applicationName } from '../../src/config/config';
import { createDynamoClient, readLeases } from '../../src/ops/leases';
import { createKinesisClient } from '../../src/replay/producer';
import { simulate } from '../../src/replay/simulator';
import { encodeMessage } from '../../src/sbe/encoder';
import type { TradesStreamEvent } from '../../src/sbe/messages';
import { PipelinePublisher, pipelineState, referenceState, waitForCheckpoints } from '../helpers/exactness';
import { repoRoot } from '../helpers/paths';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';

// Issue 14, dead letters an operator can work with: through the real KCL daemon, a trade dated 10 minutes ahead is
// dead-lettered FUTURE_TIME (processing.max_future_skew_ms 5000) next to an undecodable record. `aggregator dlq`
// (the built CLI, as a child process) lists both, shows the undecodable one decoded as far as it goes, and refuses
// to re-drive either while the cause stands. The operator's fix: the skew raised in the config and the pipeline
// restarted. Re-driven then, the trade is applied exactly once (the market state equals the reference over every
// valid event plus that trade), the letter is trimmed, the undecodable one stays, and a second re-drive does nothing.

const execFileAsync = promisify(execFile);
const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const S = 'BTCUSDT';

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('aggregator dlq through the real daemon: a letter re-driven after the fix is applied exactly once', function () {
  this.timeout(180_000);
  let pipeline: Pipeline;
  let publisher: PipelinePublisher | undefined;

  const dlq = async (...args: string[]): Promise<CliResult> => {
    try {
      const { stdout, stderr } = await execFileAsync(
        process.execPath,
        [cli, '-c', pipeline.configFile, 'dlq', ...args],
        { env: { ...process.env, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' } },
      );
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      if (typeof e.code !== 'number') throw err;
      return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };

  before(async function () {
    pipeline = await startPipeline({
      shards: { trade: 2, bestbidask: 1, depth: 1 },
      symbols: [S],
      label: 'dlq',
      extraYaml: 'reanchor:\n  enabled: false\n',
      logging: { level: 'info' },
    });
    pipeline.startDaemon('trade');
  });

  after(async function () {
    publisher?.close();
    if (pipeline) await pipeline.stop();
  });

  it('lists, shows, refuses while the cause stands, then re-drives once after the config fix; a second re-drive does nothing', async function () {
    const started = Date.now();
    const stream = pipeline.config.aws.kinesis.streams.trade;
    const dlqKey = `dlq:{${stream}}`;
    publisher = new PipelinePublisher(pipeline);
    const events = [
      ...simulate({ seed: 14, symbols: [S], startTimeUs: 1_764_000_000_000_000n }, 1500),
    ].filter((e) => e.stream === 'trade');
    await publisher.publish(events);
    const trades = events.map((e) => e.message as TradesStreamEvent);
    const lastId = trades.flatMap((m) => m.trades.map((t) => t.id)).reduce((a, b) => (a > b ? a : b));

    // The next trade, dated 10 minutes ahead of the clocks; and a record that is no SBE frame at all.
    const futureUs = BigInt(Date.now() + 600_000) * 1000n;
    const future: TradesStreamEvent = {
      message: 'TradesStreamEvent',
      eventTime: futureUs,
      transactTime: futureUs,
      priceExponent: -8,
      qtyExponent: -8,
      trades: [
        {
          id: lastId + 1n,
          priceMantissa: 6_000_000_000_000n,
          qtyMantissa: 25_000_000n,
          isBuyerMaker: false,
          isBestMatch: true,
        },
      ],
      symbol: S,
    };
    const kinesis = createKinesisClient({
      region: pipeline.config.aws.region,
      endpoint: pipeline.config.aws.kinesis.endpoint,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const put = async (data: Buffer): Promise<{ shardId: string; sequenceNumber: string }> => {
      const out = await kinesis.send(
        new PutRecordCommand({ StreamName: stream, Data: data, PartitionKey: S }),
      );
      const position = { shardId: out.ShardId!, sequenceNumber: out.SequenceNumber! };
      publisher!.latest[stream] = {
        ...publisher!.latest[stream],
        [position.shardId]: {
          records: 0,
          firstSequenceNumber: '',
          lastSequenceNumber: position.sequenceNumber,
        },
      };
      return position;
    };
    const original = await put(encodeMessage(future));
    const garbage = Buffer.from('not an SBE frame at all, only text', 'utf8');
    await put(garbage);
    kinesis.destroy();
    await waitForCheckpoints(pipeline, publisher.latest, 120_000);
    await waitUntil(async () => (await pipeline.redis.xlen(dlqKey)) === 2, 10_000, 'two dead letters');
    const stateKey = `tr:${S}:state`;
    const before = await pipeline.redis.hgetall(stateKey);
    expect(before.last_trade_id).to.equal(String(lastId));
    const reached = Date.now();

    // list: both letters, JSON Lines, oldest first; filters.
    const listed = await dlq('list', '--stream', 'trade', '--json');
    expect(listed.code, listed.stderr).to.equal(0);
    const letters = jsonLines(listed.stdout);
    expect(letters.map((l) => l.error_code)).to.deep.equal(['FUTURE_TIME', 'SCHEMA_MISMATCH']);
    const [futureLetter, garbageLetter] = letters as [Record<string, unknown>, Record<string, unknown>];
    expect(futureLetter.symbol).to.equal(S);
    expect(futureLetter.shard).to.equal(original.shardId);
    expect(futureLetter.sequence_number).to.equal(original.sequenceNumber);
    expect(futureLetter.data_base64).to.equal(encodeMessage(future).toString('base64'));
    expect(garbageLetter.data_base64).to.equal(garbage.toString('base64'));
    const bySymbol = await dlq('list', '--stream', stream, '--symbol', S, '--json');
    expect(jsonLines(bySymbol.stdout).map((l) => l.id)).to.deep.equal([futureLetter.id]);
    const table = await dlq('list', '--stream', 'trade', '--code', 'SCHEMA_MISMATCH');
    expect(table.code).to.equal(0);
    expect(table.stdout.split('\n')[0]).to.match(/^ID\s+TIME\s+CODE\s+SYMBOL\s+SHARD\s+SEQ\s+MESSAGE$/);
    expect(table.stdout).to.contain(String(garbageLetter.id)).and.not.contain(String(futureLetter.id));

    // show: the undecodable letter, decoded as far as it goes, with its error and the re-drive check.
    const shown = await dlq('show', String(garbageLetter.id), '--stream', 'trade');
    expect(shown.code, shown.stderr).to.equal(0);
    const view = JSON.parse(shown.stdout) as {
      error_code: string;
      decoded: Array<{ error?: { code: string }; header?: unknown }>;
      redrive_check: { ok: boolean; code?: string };
    };
    expect(view.error_code).to.equal('SCHEMA_MISMATCH');
    expect(view.decoded[0]!.error!.code).to.equal('SCHEMA_MISMATCH');
    expect(view.decoded[0]!.header).to.be.an('object');
    expect(view.redrive_check).to.include({ ok: false, code: 'SCHEMA_MISMATCH' });

    // While the cause stands, nothing is re-driven: both refused (exit 1), both kept.
    const refused = await dlq('redrive', '--stream', 'trade', '--all');
    expect(refused.code).to.equal(1);
    expect(refused.stdout)
      .to.match(/^refused .*FUTURE_TIME/m)
      .and.match(/^refused .*SCHEMA_MISMATCH/m);
    expect(await pipeline.redis.xlen(dlqKey)).to.equal(2);

    // The fix: the skew raised in the config, the pipeline restarted with it.
    const stoppedAt = Date.now();
    await pipeline.daemon('trade').stop();
    // The stopped worker's leases are released (REMOVE leaseOwner, the checkpoints kept), as a hand-off would,
    // so the restarted worker takes them at once instead of after failover_time_millis.
    const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint);
    const leaseTable = applicationName(pipeline.config, 'trade');
    for (const lease of await readLeases(dynamo, leaseTable)) {
      await dynamo.send(
        new UpdateItemCommand({
          TableName: leaseTable,
          Key: { leaseKey: { S: lease.shardId } },
          UpdateExpression: 'REMOVE leaseOwner',
        }),
      );
    }
    dynamo.destroy();
    const yaml = fs.readFileSync(pipeline.configFile, 'utf8');
    fs.writeFileSync(
      pipeline.configFile,
      yaml.replace(/^processing:\n/m, 'processing:\n  max_future_skew_ms: 3600000\n'),
    );
    pipeline.startDaemon('trade', 'worker-trade-2');
    const restarted = Date.now();
    const stopMs = restarted - stoppedAt;

    const dry = await dlq('redrive', '--stream', 'trade', '--code', 'FUTURE_TIME', '--dry-run', '--json');
    expect(dry.code, dry.stderr).to.equal(0);
    expect(jsonLines(dry.stdout)).to.deep.equal([
      { id: futureLetter.id, outcome: 'would_redrive', error_code: 'FUTURE_TIME', symbol: S, frames: 1 },
    ]);
    expect(await pipeline.redis.xlen(dlqKey)).to.equal(2);

    const redriven = await dlq('redrive', '--stream', 'trade', '--code', 'FUTURE_TIME', '--json');
    expect(redriven.code, redriven.stderr).to.equal(0);
    const [outcome] = jsonLines(redriven.stdout) as [Record<string, unknown>];
    expect(outcome).to.include({ id: futureLetter.id, outcome: 'redriven', error_code: 'FUTURE_TIME' });
    // The original partition key (the symbol): the same shard as the symbol's records.
    expect(outcome.shard_id).to.equal(original.shardId);
    expect(outcome.sequence_number).to.not.equal(original.sequenceNumber);
    publisher.latest[stream] = {
      ...publisher.latest[stream],
      [String(outcome.shard_id)]: {
        records: 0,
        firstSequenceNumber: '',
        lastSequenceNumber: String(outcome.sequence_number),
      },
    };
    // Trimmed at once; the undecodable letter stays.
    expect(await pipeline.redis.xrange(dlqKey, '-', '+')).to.have.length(1);
    expect((await pipeline.redis.xrange(dlqKey, '-', '+'))[0]![0]).to.equal(garbageLetter.id);

    await waitForCheckpoints(pipeline, publisher.latest, 120_000);
    const after = await pipeline.redis.hgetall(stateKey);
    expect(after.last_trade_id).to.equal(String(lastId + 1n));
    expect(Number(after.trades_applied)).to.equal(Number(before.trades_applied) + 1);
    // Exactly once, and nothing else changed: the market state is the reference over every valid event plus it.
    expect(await pipelineState(pipeline)).to.deep.equal(
      await referenceState(pipeline.stack.redisPort, [
        ...publisher.events,
        { stream: 'trade', message: future },
      ]),
    );
    // Not dead-lettered again; the counts keep the history.
    expect(await pipeline.redis.xlen(dlqKey)).to.equal(1);
    expect(await pipeline.redis.hgetall(`${dlqKey}:counts`)).to.deep.equal({
      FUTURE_TIME: '1',
      SCHEMA_MISMATCH: '1',
    });

    // A second re-drive (say, a second operator) finds nothing; by id, the id is reported not found (exit 1).
    const again = await dlq('redrive', '--stream', 'trade', '--code', 'FUTURE_TIME');
    expect(again.code, again.stderr).to.equal(0);
    expect(again.stdout).to.equal('');
    expect(again.stderr).to.contain('0 selected');
    const byId = await dlq('redrive', '--stream', 'trade', String(futureLetter.id));
    expect(byId.code).to.equal(1);
    expect(byId.stdout).to.match(/^not found/);
    expect(await pipeline.redis.hgetall(stateKey)).to.deep.equal(after);
    process.stderr.write(
      `      dlq: letters in place ${((reached - started) / 1000).toFixed(1)} s after publishing; ` +
        `daemon stopped in ${(stopMs / 1000).toFixed(1)} s; restart to re-driven record applied ` +
        `${((Date.now() - restarted) / 1000).toFixed(1)} s\n`,
    );
  });
});
