import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Cluster } from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { findFreePort } from '../../src/localstack/ports';
import { startRedisCluster, type RedisCluster } from '../../src/localstack/redis-cluster';
import { simulate } from '../../src/replay/simulator';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';

// cluster_mode: true against a real three-master Redis Cluster on loopback.

const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT'];

describe('Redis Cluster mode (three real cluster nodes)', function () {
  this.timeout(60_000);
  let dir: string;
  let cluster: RedisCluster;
  let client: RedisClient;
  let reader: Cluster;
  const keys = new Keys({ clusterMode: true });

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-cluster-'));
    const ports = [await findFreePort(), await findFreePort(), await findFreePort()];
    cluster = await startRedisCluster({ ports, dir });
    const config = parseConfig({ redis: { host: '127.0.0.1', port: ports[0], cluster_mode: true } });
    client = createRedisClient(config.redis, { connectionName: 'cluster-test' });
    reader = new Cluster([{ host: '127.0.0.1', port: ports[0]! }]);
  });

  after(async function () {
    client?.disconnect();
    reader?.disconnect();
    await cluster?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('hash-tags every key of a symbol into one slot', async function () {
    for (const symbol of SYMBOLS) {
      const symbolKeys = [
        keys.orderBook(symbol),
        keys.bookLevels(symbol, 'bids'),
        keys.bookLevels(symbol, 'asks'),
        keys.bookIndex(symbol, 'bids'),
        keys.bookIndex(symbol, 'asks'),
        keys.bookState(symbol),
        keys.diffBuffer(symbol),
        keys.tradeWindow(symbol, 1),
        keys.tradeWindow(symbol, 5),
        keys.tradeBuckets(symbol),
        keys.tradeState(symbol),
        keys.priceHistory(symbol),
      ];
      for (const key of symbolKeys) expect(key).to.contain(`{${symbol}}`);
      const slots = new Set(await Promise.all(symbolKeys.map((k) => reader.cluster('KEYSLOT', k))));
      expect(slots.size, symbol).to.equal(1);
    }
    // The symbols themselves spread over the cluster (not all in one slot).
    const symbolSlots = await Promise.all(SYMBOLS.map((s) => reader.cluster('KEYSLOT', keys.orderBook(s))));
    expect(new Set(symbolSlots).size).to.be.greaterThan(1);
  });

  it('applies batches for symbols on different nodes with every state script, idempotently', async function () {
    const writer = new StateWriter(client, keys, {
      orderBookLevels: 10,
      diffBufferMaxLength: 1000,
      deadLetterMaxLen: 1000,
    });
    const events = [
      ...simulate({ seed: 11, symbols: SYMBOLS, startTimeUs: 1_760_000_000_000_000n }, 3000),
    ].map((e) => e.message);
    const result = await writer.write(groupBySymbol(events).values(), []);
    expect(result.symbols).to.have.length(SYMBOLS.length);
    const state = async () =>
      Promise.all(
        SYMBOLS.map(async (s) => [
          await reader.hgetall(keys.orderBook(s)),
          await reader.hgetall(keys.tradeWindow(s, 1)),
          await reader.hgetall(keys.tradeWindow(s, 5)),
          await reader.hgetall(keys.bookState(s)),
          await reader.lrange(keys.diffBuffer(s), 0, -1),
        ]),
      );
    const first = await state();
    for (const [i, symbol] of SYMBOLS.entries()) {
      const [ob, tr1, , bookState] = first[i]!;
      expect(ob!, symbol).to.include.keys('last_trade_price', 'best_bid', 'best_ask', 'mid_price', 'bid1_p');
      expect(tr1!, symbol).to.include.keys('count', 'vwap', 'price_std');
      expect(bookState!, symbol).to.include({ status: 'out_of_sync' });
    }
    await writer.write(groupBySymbol(events).values(), []); // redelivery
    expect(await state()).to.deep.equal(first);
  });
});
