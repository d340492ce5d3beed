import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { parseConfig } from '../../src/config/config';
import { findFreePort } from '../../src/localstack/ports';
import { startRedisServer } from '../../src/localstack/redis-server';
import { simulate } from '../../src/replay/simulator';
import type { SbeMessage } from '../../src/sbe/messages';
import { reduceBatch } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient } from '../../src/state/redis';
import type { RedisClient } from '../../src/state/redis';
import type { DeadLetter } from '../../src/state/writer';
import { StateWriter } from '../../src/state/writer';
import { expectedFields } from '../helpers/ob-fields';
import { repoRoot } from '../helpers/paths';

// StateWriter and its Lua scripts against a real redis-server started here on a free port.

const LEVELS = 10;
const SYMBOLS = ['BTCUSDT', 'ETHUSDT'];

function trade(symbol: string, id: bigint, priceMantissa: bigint): SbeMessage {
  return {
    message: 'TradesStreamEvent',
    eventTime: 1n,
    transactTime: id * 10n,
    priceExponent: -2,
    qtyExponent: -5,
    trades: [{ id, priceMantissa, qtyMantissa: 1n, isBuyerMaker: false, isBestMatch: true }],
    symbol,
  };
}

function bba(symbol: string, bookUpdateId: bigint, bid: bigint): SbeMessage {
  return {
    message: 'BestBidAskStreamEvent',
    eventTime: bookUpdateId * 10n,
    bookUpdateId,
    priceExponent: -2,
    qtyExponent: -5,
    bidPriceMantissa: bid,
    bidQtyMantissa: 3n,
    askPriceMantissa: bid + 1n,
    askQtyMantissa: 4n,
    symbol,
  };
}

function letter(sequenceNumber: string): DeadLetter {
  return {
    stream: 'market-sbe-trade',
    shardId: 'shardId-000000000000',
    sequenceNumber,
    subSequenceNumber: 0,
    partitionKey: 'BTCUSDT',
    errorCode: 'TRUNCATED',
    error: 'truncated frame: need 8 bytes for header at offset 0, have 3',
    dataBase64: Buffer.from([1, 2, 3]).toString('base64'),
    approximateArrivalTimestamp: 1_700_000_000_000,
  };
}

describe('state writer against a real Redis', function () {
  this.timeout(20000);

  let tmpDir: string;
  let server: Awaited<ReturnType<typeof startRedisServer>>;
  let redis: RedisClient;
  let writer: StateWriter;
  /** 400 simulated events on two symbols, in stream order. */
  let events: SbeMessage[];

  before(async () => {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'state-it-'));
    const port = await findFreePort();
    server = await startRedisServer({ port, logFile: path.join(tmpDir, 'redis.log') });
    const config = parseConfig({ redis: { port } });
    redis = createRedisClient(config.redis, { connectionName: 'state-integration-test' });
    writer = new StateWriter(redis, new Keys({ clusterMode: false }), 1000);
    events = [...simulate({ seed: 11, symbols: SYMBOLS, startTimeUs: 1_700_000_000_000_000n }, 400)].map(
      (e) => e.message,
    );
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
    fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    await redis.flushdb();
  });

  async function apply(messages: readonly SbeMessage[], deadLetters: readonly DeadLetter[] = []) {
    return writer.write(reduceBatch(messages, LEVELS).values(), deadLetters);
  }

  it('applies a batch: ob:<SYMBOL> holds the newest trade, best bid/ask and depth20 of each symbol', async () => {
    const result = await apply(events);
    const reduced = reduceBatch(events, LEVELS);
    for (const symbol of SYMBOLS) {
      const batch = reduced.get(symbol)!;
      // The simulated data holds every kind for every symbol, so all three parts are exercised.
      expect([batch.trade, batch.bestBidAsk, batch.depth].includes(undefined), symbol).to.equal(false);
      expect(await redis.hgetall(`ob:${symbol}`)).to.deep.equal(expectedFields(batch));
    }
    expect(result).to.deep.equal({
      tradesApplied: 2,
      bestBidAsksApplied: 2,
      depthSnapshotsApplied: 2,
      deadLettersAdded: 0,
    });
  });

  it('re-applying the batch (redelivery) or any older batch leaves every hash byte-identical', async () => {
    await apply(events);
    const before = await Promise.all(SYMBOLS.map((s) => redis.hgetallBuffer(`ob:${s}`)));

    const again = await apply(events);
    expect(again).to.deep.equal({
      tradesApplied: 0,
      bestBidAsksApplied: 0,
      depthSnapshotsApplied: 0,
      deadLettersAdded: 0,
    });
    // Older batches: prefixes of the stream, and the first half reversed.
    for (const older of [events.slice(0, 100), events.slice(0, 250), events.slice(0, 200).reverse()]) {
      const result = await apply(older);
      expect(result).to.deep.equal({
        tradesApplied: 0,
        bestBidAsksApplied: 0,
        depthSnapshotsApplied: 0,
        deadLettersAdded: 0,
      });
    }
    const after = await Promise.all(SYMBOLS.map((s) => redis.hgetallBuffer(`ob:${s}`)));
    expect(after).to.deep.equal(before);
  });

  it('batches applied in stream order end where one big batch ends', async () => {
    for (let i = 0; i < events.length; i += 37) await apply(events.slice(i, i + 37));
    const stepwise = await Promise.all(SYMBOLS.map((s) => redis.hgetall(`ob:${s}`)));
    await redis.flushdb();
    await apply(events);
    const whole = await Promise.all(SYMBOLS.map((s) => redis.hgetall(`ob:${s}`)));
    expect(stepwise).to.deep.equal(whole);
  });

  it('newer ids win, per part, compared as integers (9 < 10, and beyond 2^53)', async () => {
    await apply([trade('BTCUSDT', 9n, 100n), bba('BTCUSDT', 50n, 1000n)]);
    // A newer trade with an older best bid/ask: only the trade moves.
    let result = await apply([trade('BTCUSDT', 10n, 200n), bba('BTCUSDT', 49n, 9999n)]);
    expect(result).to.include({ tradesApplied: 1, bestBidAsksApplied: 0 });
    expect(await redis.hgetall('ob:BTCUSDT')).to.deep.include({
      last_trade_id: '10',
      last_trade_price: '2.00',
      last_trade_ts_us: '100',
      bba_update_id: '50',
      best_bid: '10.00',
      spread: '0.01',
    });
    // An older trade and a newer best bid/ask.
    result = await apply([trade('BTCUSDT', 9n, 300n), bba('BTCUSDT', 51n, 2000n)]);
    expect(result).to.include({ tradesApplied: 0, bestBidAsksApplied: 1 });
    expect(await redis.hgetall('ob:BTCUSDT')).to.deep.include({
      last_trade_id: '10',
      bba_update_id: '51',
      best_bid: '20.00',
    });

    const big = 2n ** 53n; // 9007199254740992: 2^53 + 1 rounds to this as a double
    await apply([trade('BTCUSDT', big + 1n, 1n)]);
    result = await apply([trade('BTCUSDT', big, 2n)]);
    expect(result.tradesApplied).to.equal(0);
    expect(await redis.hget('ob:BTCUSDT', 'last_trade_id')).to.equal('9007199254740993');
    result = await apply([trade('BTCUSDT', big + 2n, 3n)]);
    expect(result.tradesApplied).to.equal(1);
    expect(await redis.hget('ob:BTCUSDT', 'last_trade_id')).to.equal('9007199254740994');
  });

  it('a newer depth20 snapshot replaces the levels; an older one does not', async () => {
    const snapshots = events.filter(
      (e) => e.message === 'DepthSnapshotStreamEvent' && e.symbol === 'BTCUSDT',
    );
    expect(snapshots.length).to.be.greaterThan(1);
    const [first, second] = [snapshots[0]!, snapshots[1]!];
    await apply([second]);
    const afterSecond = await redis.hgetall('ob:BTCUSDT');
    expect(await apply([first])).to.include({ depthSnapshotsApplied: 0 });
    expect(await redis.hgetall('ob:BTCUSDT')).to.deep.equal(afterSecond);
    expect(afterSecond).to.deep.equal(expectedFields(reduceBatch([second], LEVELS).get('BTCUSDT')!));
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
      'partition_key',
      'BTCUSDT',
      'error',
      'truncated frame: need 8 bytes for header at offset 0, have 3',
      'data_base64',
      'AQID',
      'arrival_ms',
      '1700000000000',
    ]);
    const ttl = await redis.ttl('dlq:{market-sbe-trade}:seen:shardId-000000000000:100:0');
    expect(ttl).to.be.within(7 * 24 * 3600 - 60, 7 * 24 * 3600);

    // A different record is a different dead letter.
    expect((await apply([], [letter('101')])).deadLettersAdded).to.equal(1);
    expect(await redis.xlen('dlq:{market-sbe-trade}')).to.equal(2);
    expect(await redis.hgetall('dlq:{market-sbe-trade}:counts')).to.deep.equal({ TRUNCATED: '2' });
  });

  it('cluster_mode false: key names are exactly the seed contract (ob:BTCUSDT, no hash tag)', async () => {
    await apply(events, [letter('7')]);
    const keys = (await redis.keys('*')).sort();
    expect(keys).to.deep.equal([
      'dlq:{market-sbe-trade}',
      'dlq:{market-sbe-trade}:counts',
      'dlq:{market-sbe-trade}:seen:shardId-000000000000:7:0',
      'ob:BTCUSDT',
      'ob:ETHUSDT',
    ]);
    expect(await redis.type('ob:BTCUSDT')).to.equal('hash');
    expect(await redis.ttl('ob:BTCUSDT')).to.equal(-1);
  });

  it('after SCRIPT FLUSH a write still works (NOSCRIPT falls back to EVAL)', async () => {
    const sha = (file: string) =>
      crypto
        .createHash('sha1')
        .update(fs.readFileSync(path.join(repoRoot, 'src', 'state', 'lua', file), 'utf8'))
        .digest('hex');
    const shas = [sha('apply-market-batch-1.lua'), sha('dead-letter-3.lua')];
    await apply(events.slice(0, 200), [letter('0')]);
    expect(await redis.script('EXISTS', ...shas)).to.deep.equal([1, 1]);

    expect(await redis.script('FLUSH')).to.equal('OK');
    expect(await redis.script('EXISTS', ...shas)).to.deep.equal([0, 0]);
    const result = await apply(events, [letter('1')]);
    expect(result.deadLettersAdded).to.equal(1);
    expect(result.tradesApplied + result.bestBidAsksApplied + result.depthSnapshotsApplied).to.be.greaterThan(
      0,
    );
    const reduced = reduceBatch(events, LEVELS);
    for (const symbol of SYMBOLS) {
      expect(await redis.hgetall(`ob:${symbol}`)).to.deep.equal(expectedFields(reduced.get(symbol)!));
    }
    expect(await redis.xlen('dlq:{market-sbe-trade}')).to.equal(2);
    // The fallback loaded the scripts again.
    expect(await redis.script('EXISTS', ...shas)).to.deep.equal([1, 1]);
  });
});
