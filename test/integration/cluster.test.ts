import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { Cluster, Redis } from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { findFreePort } from '../../src/dev/localstack/ports';
import { startRedisCluster, type RedisCluster } from '../../src/dev/localstack/redis-cluster';
import { simulate } from '../../src/replay/simulator';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { withRetry } from '../../src/state/retry';
import { StateWriter } from '../../src/state/writer';
import { waitUntil } from '../helpers/pipeline';
import { startTestRedis, type TestRedis } from '../helpers/redis';

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

// Issue 13: a failover inside the cluster (the master of a symbol's slot hands over to its replica, as ElastiCache
// does in maintenance): the client follows the new slot map (MOVED), retried writes go on, the state is exact.
describe('Redis Cluster failover (three masters, one replica each)', function () {
  this.timeout(120_000);
  let dir: string;
  let cluster: RedisCluster;
  let client: RedisClient;
  let reader: Cluster;
  let reference: TestRedis;
  let referencePort: number;
  const keys = new Keys({ clusterMode: true });

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-cluster-failover-'));
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) ports.push(await findFreePort());
    cluster = await startRedisCluster({ ports, dir, replicas: 1 });
    const config = parseConfig({ redis: { host: '127.0.0.1', port: ports[0], cluster_mode: true } });
    client = createRedisClient(config.redis, { connectionName: 'cluster-failover-test' });
    reader = new Cluster([{ host: '127.0.0.1', port: ports[0]! }]);
    reference = await startTestRedis('cluster-reference', { dir, logName: 'reference.log' });
    referencePort = reference.port;
  });

  after(async function () {
    client?.disconnect();
    reader?.disconnect();
    await cluster?.stop();
    await reference?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** CLUSTER NODES of any node: port -> { id, role flags, master id }. */
  async function nodes(): Promise<Array<{ id: string; port: number; master: boolean; masterId: string }>> {
    const text = (await reader.cluster('NODES')) as string;
    return text
      .trim()
      .split('\n')
      .map((line) => {
        const [id, address, flags, masterId] = line.split(' ');
        return {
          id: id!,
          port: Number(/:(\d+)@/.exec(address!)?.[1]),
          master: flags!.includes('master'),
          masterId: masterId!,
        };
      });
  }

  it("a failover of the master of a symbol's slot: writes go on through the new master, the state exact", async function () {
    const events = [
      ...simulate({ seed: 13, symbols: SYMBOLS, startTimeUs: 1_761_000_000_000_000n }, 6000),
    ].map((e) => e.message);
    const batches: (typeof events)[] = [];
    for (let i = 0; i < events.length; i += 200) batches.push(events.slice(i, i + 200));
    const writer = new StateWriter(client, keys, {
      orderBookLevels: 10,
      diffBufferMaxLength: 1000,
      deadLetterMaxLen: 1000,
    });
    let retries = 0;
    const contained: string[] = [];
    const write = async (batch: (typeof events)[number][]) => {
      const result = await withRetry(() => writer.write(groupBySymbol(batch).values(), []), {
        deadline: Date.now() + 60_000,
        baseDelayMs: 50,
        maxDelayMs: 1000,
        onRetry: () => retries++,
      });
      contained.push(...result.contained.map((c) => c.error));
    };
    for (const batch of batches.slice(0, 10)) await write(batch);

    // The master of BTCUSDT's slot and its replica, in sync.
    const slot = Number(await reader.cluster('KEYSLOT', keys.orderBook('BTCUSDT')));
    const slots = (await reader.cluster('SLOTS')) as unknown as Array<
      [number, number, [string, number, string]]
    >;
    const owner = slots.find(([from, to]) => slot >= from && slot <= to)![2];
    const all = await nodes();
    const master = all.find((n) => n.id === owner[2])!;
    const replica = all.find((n) => !n.master && n.masterId === master.id)!;
    const toReplica = new Redis({ port: replica.port });
    try {
      await waitUntil(
        async () => /master_link_status:up/.test(await toReplica.info('replication')),
        30_000,
        'the replica linked',
      );
      // Writes go on while the replica takes over.
      let failedOver = false;
      const failover = (async () => {
        await new Promise((r) => setTimeout(r, 200));
        await toReplica.cluster('FAILOVER');
        await waitUntil(
          async () => /role:master/.test(await toReplica.info('replication')),
          30_000,
          'the replica promoted',
        );
        failedOver = true;
      })();
      for (const batch of batches.slice(10)) {
        await write(batch);
        await new Promise((r) => setTimeout(r, 20));
      }
      await failover;
      expect(failedOver).to.equal(true);
      expect(contained, 'writes dead-lettered during the failover').to.deep.equal([]);
      // The client writes to the new master: a redelivery of the last batch goes there without an error.
      await write(batches[batches.length - 1]!);
      expect(
        (await nodes()).find((n) => n.id === replica.id)?.master,
        'the replica is the master now',
      ).to.equal(true);
    } finally {
      toReplica.disconnect();
    }

    // The reference: the same batches on a standalone Redis.
    const standalone = createRedisClient(parseConfig({ redis: { port: referencePort } }).redis, {
      connectionName: 'cluster-failover-reference',
    });
    const plain = new Redis({ port: referencePort });
    try {
      const refWriter = new StateWriter(standalone, keys, {
        orderBookLevels: 10,
        diffBufferMaxLength: 1000,
        deadLetterMaxLen: 1000,
      });
      for (const batch of batches) await refWriter.write(groupBySymbol(batch).values(), []);
      const read = async (r: Redis | Cluster) =>
        Promise.all(
          SYMBOLS.map(async (s) => ({
            ob: await r.hgetall(keys.orderBook(s)),
            tr1: await r.hgetall(keys.tradeWindow(s, 1)),
            tr5: await r.hgetall(keys.tradeWindow(s, 5)),
            buckets: await r.hgetall(keys.tradeBuckets(s)),
            trades: await r.hgetall(keys.tradeState(s)),
            px: await r.hgetall(keys.priceHistory(s)),
            book: await r.hgetall(keys.bookState(s)),
            buffer: await r.lrange(keys.diffBuffer(s), 0, -1),
          })),
        );
      expect(await read(reader)).to.deep.equal(await read(plain));
    } finally {
      standalone.disconnect();
      plain.disconnect();
    }
    process.stderr.write(
      `      cluster failover: ${batches.length} batches, ${retries} retried writes, state exact\n`,
    );
  });
});
