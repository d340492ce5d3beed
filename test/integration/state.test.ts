import crypto from 'node:crypto';
import { expect } from 'chai';
import Redis from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { simulate } from '../../src/replay/simulator';
import type { SbeMessage } from '../../src/sbe/messages';
import { groupBySymbol, groupEvents, type FrameOrigin } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, loadScriptSources, type RedisClient } from '../../src/state/redis';
import { StateWriter, type DeadLetter } from '../../src/state/writer';
import { snapshotKeys } from '../helpers/redis-snapshot';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// StateWriter (every state script of a batch, plus dead letters) against a real redis-server on a free port.
// The scripts' semantics are proven against independent references in the book-*.test.ts files and trades.test.ts; here
// the composition: every kind reaches its script, redelivery and re-batching change nothing, dead letters once.

const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];

function letter(sequenceNumber: string): DeadLetter {
  return {
    stream: 'market-sbe-trade',
    shardId: 'shardId-000000000000',
    sequenceNumber,
    subSequenceNumber: 0,
    frameIndex: 0,
    partitionKey: 'BTCUSDT',
    errorCode: 'TRUNCATED',
    error: 'truncated frame: need 8 bytes for header at offset 0, have 3',
    dataBase64: Buffer.from([1, 2, 3]).toString('base64'),
    approximateArrivalTimestamp: 1_700_000_000_000,
  };
}

describe('state writer against a real Redis', function () {
  this.timeout(60000);
  let server: TestRedis;
  let client: RedisClient;
  let redis: Redis;
  let writer: StateWriter;
  /** Simulated events on two symbols, in stream order. */
  let events: SbeMessage[];

  before(async () => {
    server = await startTestRedis('state-it');
    const port = server.port;
    const config = parseConfig({ redis: { port } });
    client = createRedisClient(config.redis, { connectionName: 'state-integration-test' });
    redis = new Redis({ port });
    writer = new StateWriter(client, new Keys({ clusterMode: false }), {
      orderBookLevels: 10,
      diffBufferMaxLength: 1000,
      deadLetterMaxLen: 1000,
    });
    events = [...simulate({ seed: 11, symbols: SYMBOLS, startTimeUs: 1_700_000_000_000_000n }, 2000)].map(
      (e) => e.message,
    );
  });

  after(async () => {
    client?.disconnect();
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushdb();
  });

  async function apply(messages: readonly SbeMessage[], deadLetters: readonly DeadLetter[] = []) {
    return writer.write(groupBySymbol(messages).values(), deadLetters);
  }

  /** The streams deliver per stream: apply each stream's events in batches of `size`, streams interleaved. */
  async function applyInBatches(messages: readonly SbeMessage[], size: number) {
    const byKind = new Map<string, SbeMessage[]>();
    for (const m of messages) {
      const kind = m.message === 'DepthDiffStreamEvent' ? 'DepthSnapshotStreamEvent' : m.message;
      byKind.set(kind, [...(byKind.get(kind) ?? []), m]);
    }
    const queues = [...byKind.values()];
    for (let offset = 0; queues.some((q) => offset < q.length); offset += size) {
      for (const q of queues) if (offset < q.length) await apply(q.slice(offset, offset + size));
    }
  }

  it('sends every kind of event to its script and reports per symbol', async () => {
    const result = await apply(events);
    expect(result.symbols.map((r) => r.symbol).sort()).to.deep.equal(SYMBOLS);
    for (const r of result.symbols) {
      expect(r.trades?.applied, r.symbol).to.be.greaterThan(0);
      expect(r.bestBidAsk?.applied, r.symbol).to.equal(true);
      expect(r.depth?.depth20Applied, r.symbol).to.equal(true);
      // No snapshot anchored the full book yet: its diffs wait in the buffer.
      expect(r.depth?.status, r.symbol).to.equal('out_of_sync');
      expect(r.depth?.reason, r.symbol).to.equal('no_snapshot');
      expect(r.depth?.buffered, r.symbol).to.be.greaterThan(0);
      const ob = await redis.hgetall(`ob:${r.symbol}`);
      for (const field of [
        'last_trade_price',
        'best_bid',
        'best_ask',
        'spread',
        'mid_price',
        'bid1_p',
        'ask10_q',
      ]) {
        expect(ob[field], `${r.symbol} ${field}`).to.be.a('string').and.not.equal('');
      }
      expect(await redis.exists(`tr:${r.symbol}:1s`, `tr:${r.symbol}:5s`)).to.equal(2);
    }
    expect(result.deadLettersAdded).to.equal(0);
  });

  it('redelivering the batch, or any prefix of it, leaves every key identical', async () => {
    await apply(events);
    const before = await snapshotKeys(redis);
    await apply(events);
    expect(await snapshotKeys(redis)).to.deep.equal(before);
    for (const cut of [1, 100, 777, 1500]) {
      await apply(events.slice(0, cut));
      expect(await snapshotKeys(redis), `prefix ${cut}`).to.deep.equal(before);
    }
  });

  it('the same events in batches of 1, 7 or 100 per stream end in the state of one big batch', async () => {
    await applyInBatches(events, 100000);
    const reference = await snapshotKeys(redis);
    for (const size of [1, 7, 100]) {
      await redis.flushdb();
      await applyInBatches(events, size);
      expect(await snapshotKeys(redis), `batches of ${size}`).to.deep.equal(reference);
    }
  });

  it('a dead letter is added once even when written twice', async () => {
    const first = await apply([], [letter('100')]);
    const second = await apply([], [letter('100')]);
    expect(first.deadLettersAdded).to.equal(1);
    expect(second.deadLettersAdded).to.equal(0);
    expect(await redis.xlen('dlq:{market-sbe-trade}')).to.equal(1);
    expect(await redis.hgetall('dlq:{market-sbe-trade}:counts')).to.deep.equal({ TRUNCATED: '1' });
    const entries = await redis.xrange('dlq:{market-sbe-trade}', '-', '+');
    expect(entries).to.have.length(1);
    expect(entries[0]![1]).to.deep.equal([
      'error_code',
      'TRUNCATED',
      'shard',
      'shardId-000000000000',
      'sequence_number',
      '100',
      'sub_sequence_number',
      '0',
      'frame_index',
      '0',
      'partition_key',
      'BTCUSDT',
      'error',
      'truncated frame: need 8 bytes for header at offset 0, have 3',
      'data_base64',
      'AQID',
      'arrival_ms',
      '1700000000000',
    ]);
    const ttl = await redis.ttl('dlq:{market-sbe-trade}:seen:shardId-000000000000:100:0:0');
    expect(ttl).to.be.within(7 * 24 * 3600 - 60, 7 * 24 * 3600);

    // A different record is a different dead letter.
    expect((await apply([], [letter('101')])).deadLettersAdded).to.equal(1);
    expect(await redis.xlen('dlq:{market-sbe-trade}')).to.equal(2);
    expect(await redis.hgetall('dlq:{market-sbe-trade}:counts')).to.deep.equal({ TRUNCATED: '2' });
  });

  it('cluster_mode false: key names are exactly the seed contract (no hash tags)', async () => {
    await apply(events, [letter('7')]);
    const keys = (await redis.keys('*')).filter((k) => !k.startsWith('dlq:')).sort();
    expect(keys).to.deep.equal(
      SYMBOLS.flatMap((s) => [
        `book:${s}:buffer`,
        `book:${s}:state`,
        `ob:${s}`,
        `px:${s}`,
        `tr:${s}:1s`,
        `tr:${s}:5s`,
        `tr:${s}:buckets`,
        `tr:${s}:state`,
      ]).sort(),
    );
    expect(await redis.ttl('ob:BTCUSDT')).to.equal(-1);
    expect(await redis.ttl('tr:BTCUSDT:1s')).to.be.within(1, 300);
  });

  it('after SCRIPT FLUSH a write still works (NOSCRIPT falls back to EVAL)', async () => {
    const shas = loadScriptSources().map((s) => crypto.createHash('sha1').update(s.lua).digest('hex'));
    await apply(events.slice(0, 1000), [letter('0')]);
    const used = (await redis.script('EXISTS', ...shas)) as number[];
    expect(used.filter((x) => x === 1).length).to.be.greaterThan(3);

    expect(await redis.script('FLUSH')).to.equal('OK');
    expect(await redis.script('EXISTS', ...shas)).to.deep.equal(shas.map(() => 0));
    const result = await apply(events, [letter('1')]);
    expect(result.deadLettersAdded).to.equal(1);
    expect(result.symbols.every((r) => (r.trades?.applied ?? 0) > 0)).to.equal(true);
    const reloaded = (await redis.script('EXISTS', ...shas)) as number[];
    expect(reloaded.filter((x) => x === 1).length).to.be.greaterThan(3);
  });

  it('a contained failure names its symbol, kind, shard and the first and last record of its events', async () => {
    const trades = events
      .filter((m) => m.message === 'TradesStreamEvent' && m.symbol === 'BTCUSDT')
      .slice(0, 3);
    const origin = (i: number): FrameOrigin => ({
      stream: 'market-sbe-trade',
      shardId: 'shardId-000000000007',
      sequenceNumber: `4968000000000000000000000000000000000000000000000000000${i}`,
      subSequenceNumber: 0,
      partitionKey: 'BTCUSDT',
      approximateArrivalTimestamp: undefined,
      frameIndex: 0,
      frameBase64: () => '',
    });
    // A key of the wrong type makes the trade script fail for this symbol only (WRONGTYPE: contained).
    await redis.set('tr:BTCUSDT:1s', 'not a hash');
    const result = await writer.write(
      groupEvents(trades.map((message, i) => ({ message, origin: origin(i + 1) }))).values(),
      [],
    );
    expect(result.contained).to.have.length(1);
    expect(result.contained[0]!.code).to.equal('SCRIPT_ERROR');
    expect(result.contained[0]!.context).to.deep.equal({
      symbol: 'BTCUSDT',
      kind: 'trades',
      shard: 'shardId-000000000007',
      sequenceNumber: origin(1).sequenceNumber,
      lastSequenceNumber: origin(3).sequenceNumber,
    });
    expect(result.containedDeadLetters).to.have.length(3);
  });
});
