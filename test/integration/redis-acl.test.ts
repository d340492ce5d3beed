import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { expect } from 'chai';
import { parseConfig, type AppConfig } from '../../src/config/config';
import { readLetters, readLetterTotals, redisRedriveStore } from '../../src/dlq/store';
import { readSnapshot } from '../../src/features/snapshot';
import { silentLogger } from '../../src/logging/logger';
import { collectHealthInputs, LatencyWindow } from '../../src/ops/health';
import { publishReport, readReports, type ProcessorReport } from '../../src/ops/telemetry';
import { ReanchorListener, type HandledOutcome } from '../../src/reanchor/listener';
import { Reanchorer } from '../../src/reanchor/reanchorer';
import { REANCHOR_GROUP, requestReanchor } from '../../src/reanchor/requests';
import { RestClient } from '../../src/rest/client';
import {
  SimulatedExchange,
  startSimExchangeServer,
  type SimExchangeServer,
} from '../../src/dev/rest/sim-server';
import type { SbeMessage } from '../../src/sbe/messages';
import { RedisFeatureStore } from '../../src/sidecar/store';
import { groupBySymbol } from '../../src/state/batch';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { StateWriter } from '../../src/state/writer';
import { repoRoot } from '../helpers/paths';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// The ACL user of deploy/redis/aggregator.acl against a real redis-server: installed through an aclfile (and the
// same rules through ACL SETUSER), then the service's real write and read paths run as that user (state writes,
// dead letters, a re-anchor through the listener, feature snapshot and write, telemetry, health) and the ACL log
// must stay empty: every command issued, including the handshake and the commands inside the Lua scripts, is
// allowed. Commands and keys outside the lists are refused with NOPERM.

const S = 'BTCUSDT';
const LEVELS = 10;
const PASSWORD = 'acl-test-Pa55word!';
const keys = new Keys({ clusterMode: false });

function aclLine(): string {
  const text = fs.readFileSync(path.join(repoRoot, 'deploy', 'redis', 'aggregator.acl'), 'utf8').trim();
  expect(text.split('\n'), 'one aclfile line').to.have.length(1);
  return text;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).message;
  }
  return 'not refused';
}

describe('redis ACL user "aggregator" (deploy/redis/aggregator.acl, real redis-server)', function () {
  this.timeout(30_000);
  let port: number;
  let server: TestRedis;
  let admin: RedisClient;
  let config: AppConfig;
  const clients: RedisClient[] = [];

  function serviceClient(name: string): RedisClient {
    const c = createRedisClient(config.redis, { connectionName: name });
    clients.push(c);
    return c;
  }

  async function aclLog(): Promise<string[]> {
    const entries = (await admin.call('ACL', 'LOG')) as unknown[][];
    return entries.map((entry) => {
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < entry.length; i += 2) fields[String(entry[i])] = String(entry[i + 1]);
      return `${fields.username ?? '?'} ${fields.reason ?? '?'} ${fields.object ?? '?'}`;
    });
  }

  before(async () => {
    // The aclfile route: the file's line plus the password's SHA-256. The default user stays open here only so
    // that the harness' readiness PING and this test's admin connection work (production: `user default off`).
    const hash = createHash('sha256').update(PASSWORD).digest('hex');
    server = await startTestRedis('redis-acl', {
      extraArgs: (dir) => {
        const aclFile = path.join(dir, 'users.acl');
        fs.writeFileSync(aclFile, `user default on nopass ~* &* +@all\n${aclLine()} #${hash}\n`);
        return ['--aclfile', aclFile];
      },
    });
    port = server.port;
    admin = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: 'acl-admin' });
    clients.push(admin);
    config = parseConfig({ redis: { port, username: 'aggregator', password: PASSWORD } });
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await admin.flushall();
    await admin.call('ACL', 'LOG', 'RESET');
  });

  it('ACL SETUSER with the same rules gives the same user as the aclfile', async () => {
    const rules = aclLine().split(/\s+/).slice(2);
    await admin.call('ACL', 'SETUSER', 'aggregator-copy', ...rules, '>another-password');
    const list = (await admin.call('ACL', 'LIST')) as string[];
    const normalized = (name: string) =>
      list
        .find((line) => line.startsWith(`user ${name} `))
        ?.replace(`user ${name} `, '')
        .replace(/#[0-9a-f]{64}/, '#<hash>');
    expect(normalized('aggregator')).to.be.a('string');
    expect(normalized('aggregator-copy')).to.equal(normalized('aggregator'));
    await admin.call('ACL', 'DELUSER', 'aggregator-copy');
  });

  it('the service paths run as the user with nothing refused: writes, dead letters, re-anchor, features, telemetry, health', async () => {
    const redis = serviceClient('acl-processor');

    // A processor: the simulated exchange's events in batches, plus a poison record dead-lettered (redelivered
    // with the next batch: idempotent).
    const exchange = new SimulatedExchange({ seed: 7, symbols: [S], startTimeUs: 1_700_000_000_000_000n });
    const writer = new StateWriter(redis, keys, {
      orderBookLevels: LEVELS,
      diffBufferMaxLength: 1000,
      deadLetterMaxLen: 1000,
    });
    const poison = {
      stream: 'market-sbe-depth',
      shardId: 'shardId-000000000000',
      sequenceNumber: '49590338271490256608559692538361571095921575989136588898',
      subSequenceNumber: 0,
      frameIndex: 0,
      partitionKey: S,
      errorCode: 'SBE_DECODE',
      error: 'bad template',
      dataBase64: 'AAAA',
      approximateArrivalTimestamp: 1_700_000_000_000,
    };
    const feed = async (count: number): Promise<void> => {
      for (let done = 0; done < count; done += 50) {
        const batch: SbeMessage[] = [];
        for (let i = 0; i < 50; i++) batch.push(exchange.next().message);
        await writer.write(groupBySymbol(batch).values(), done < 100 ? [poison] : []);
      }
    };
    await feed(400);
    expect(await admin.xlen(keys.deadLetters(poison.stream))).to.equal(1);

    // `aggregator dlq`: list (XRANGE, XLEN, the counts), then a re-drive's claim and trim (XDEL).
    const [letter] = await readLetters(redis, keys, poison.stream, {});
    expect(letter?.errorCode).to.equal('SBE_DECODE');
    expect((await readLetterTotals(redis, keys, poison.stream)).length).to.equal(1);
    const redrive = redisRedriveStore(redis, keys, poison.stream, 'acl-test');
    expect(await redrive.claim(letter!.id)).to.equal('claimed');
    // A second operator's re-drive finds the letter held, then gone once the first trimmed it.
    const other = redisRedriveStore(redis, keys, poison.stream, 'acl-test-other');
    expect(await other.claim(letter!.id)).to.equal('busy');
    expect(await redrive.release(letter!.id, true)).to.equal(1);
    expect(await other.claim(letter!.id)).to.equal('gone');
    expect(await admin.exists(keys.deadLetterRedriveClaim(poison.stream, letter!.id))).to.equal(0);
    expect(await admin.xlen(keys.deadLetters(poison.stream))).to.equal(0);

    // A sidecar's listener re-anchors the book from the simulated exchange's REST API (request stream, group,
    // lock, temporary keys, COPY, the swap script, stats).
    const rest: SimExchangeServer = await startSimExchangeServer({ port: 0, exchange });
    const listener = new ReanchorListener({
      client: serviceClient('acl-sidecar'),
      blockingClient: serviceClient('acl-sidecar-blocking'),
      keys,
      symbols: [S],
      listenerId: 'L1',
      reanchorer: new Reanchorer({
        client: serviceClient('acl-reanchorer'),
        keys,
        source: new RestClient({
          baseUrl: rest.url,
          maxRetries: 2,
          backoffBaseMs: 20,
          backoffMaxMs: 200,
          timeoutMs: 3000,
        }),
        logger: silentLogger(),
        depthLimit: 1000,
        tradesLimit: 1000,
        levels: LEVELS,
        maxAttempts: 3,
        backoffBaseMs: 10,
        backoffMaxMs: 50,
      }),
      logger: silentLogger(),
      claimIdleMs: 60_000,
      blockMs: 100,
    });
    const outcomes: HandledOutcome[] = [];
    listener.onHandled((_r, o) => outcomes.push(o));
    listener.start();
    try {
      await requestReanchor(redis, keys, {
        symbol: S,
        reason: 'out_of_sync:no_snapshot',
        source: 'operator',
      });
      const deadline = Date.now() + 15_000;
      while (!outcomes.some((o) => o.kind === 'ran') && Date.now() < deadline) {
        await feed(50);
        await sleep(20);
      }
    } finally {
      await listener.stop();
      await rest.stop();
    }
    const ran = outcomes.find((o) => o.kind === 'ran');
    expect(ran?.kind === 'ran' && ran.report.outcome, inspect(outcomes, { depth: 4 })).to.equal('swapped');
    expect(await redis.hget(keys.bookState(S), 'status')).to.equal('in_sync');
    // What `aggregator reanchor --status` reads.
    expect(await redis.xinfo('GROUPS', keys.reanchorRequests())).to.have.length(1);
    expect(await redis.xpending(keys.reanchorRequests(), REANCHOR_GROUP)).to.be.an('array');

    // The sidecar's feature tick: the snapshot read, the lease and the write (vector + history stream).
    const sidecar = serviceClient('acl-features');
    const snapshot = await readSnapshot(sidecar, keys, S);
    expect(snapshot.orderBook).to.not.deep.equal({});
    const store = new RedisFeatureStore(sidecar, keys);
    const tickMs = Date.now();
    expect(await store.renewLease(S, 'sidecar-1', 10_000)).to.equal('acquired');
    expect(
      await store.write({
        symbol: S,
        sidecarId: 'sidecar-1',
        tickMs,
        vector: { feature_ts: tickMs, completeness: 1, mid_price: '100.5' },
        historyMaxLen: 100,
      }),
    ).to.equal('written');
    expect(await sidecar.pttl(keys.features(S))).to.be.greaterThan(0);
    expect(await store.releaseLease(S, 'sidecar-1')).to.equal(true);

    // Telemetry and health.
    const report: ProcessorReport = {
      stream: 'market-sbe-trade',
      shardId: 'shardId-000000000000',
      pid: process.pid,
      startedMs: tickMs - 1000,
      updatedMs: tickMs,
      recordsTotal: 1,
      eventsTotal: 1,
      batchesTotal: 1,
      deadLettersTotal: 0,
      integrityIssuesTotal: 0,
      checkpointFailuresTotal: 0,
      redisRetriesTotal: 0,
      recordsPerSecond: 1,
      lagMs: 0,
      lastProcessedMs: tickMs,
      lastSequenceNumber: '1',
      rssBytes: 1,
      metrics: [],
    };
    await publishReport(redis, keys, report);
    expect((await readReports(sidecar, keys, Date.now())).reports).to.have.length(1);
    const health = await collectHealthInputs(sidecar, keys, config, {
      sidecarId: 'sidecar-1',
      latency: new LatencyWindow(),
    });
    expect(health.redis.reachable).to.equal(true);
    if (!health.redis.reachable) return;
    expect(health.redis).to.not.have.property('statsError');
    expect(health.redis.opsPerSecond).to.be.a('number');
    // CONFIG GET maxclients is refused to this user: the configured cap stands in (as on managed Redis).
    expect(health.redis.maxClients).to.equal(config.redis.maxConnections);
    expect(health.reports).to.have.length(1);
    expect(
      typeof health.features === 'string' ? health.features : health.features?.symbols[0]?.lastMinute,
    ).to.equal(1);
    expect(
      typeof health.reanchor === 'string' ? health.reanchor : health.reanchor?.symbols[0]?.active,
    ).to.equal(false);

    // The only refusal logged is health's CONFIG GET (the fallback above); nothing else was refused. (ioredis'
    // CLIENT SETINFO, which it sends and ignores the failure of, exists from Redis 7.2 on and is not granted.)
    const log = (await aclLog()).filter((entry) => entry !== 'aggregator command client|setinfo');
    expect(log).to.deep.equal(['aggregator command config|get']);
  });

  it('commands outside the list and keys outside the patterns are refused with NOPERM', async () => {
    const redis = serviceClient('acl-refused');
    await redis.ping();
    const refused = [
      await refusal(redis.flushall()),
      await refusal(redis.flushdb()),
      await refusal(redis.keys('*')),
      await refusal(redis.config('SET', 'maxmemory', '1')),
      await refusal(redis.config('GET', 'requirepass')),
      await refusal(redis.call('ACL', 'LIST')),
      await refusal(redis.call('SCRIPT', 'FLUSH')),
      await refusal(redis.set('other:x', '1')),
      await refusal(redis.get('other:x')),
      await refusal(redis.hset('feat', 'a', '1')),
      // Inside a script too: the key and the command of every redis.call are checked.
      await refusal(redis.eval("return redis.call('SET', KEYS[1], '1')", 1, 'other:y')),
      await refusal(redis.eval("return redis.call('FLUSHALL')", 0)),
      await refusal(redis.eval("return redis.call('SET', 'other:z', '1')", 1, 'ob:x')),
    ];
    // Redis 7.0 words a refusal inside a script "ERR The user executing the script can't run this command or
    // subcommand" / "... no permissions to access ... key"; outside scripts (and in 7.2 also inside) NOPERM.
    for (const message of refused) expect(message).to.match(/NOPERM|user executing the script/);
    expect(await admin.exists('other:x', 'other:y', 'other:z', 'feat')).to.equal(0);
    // The same user may write inside its patterns, also through EVAL.
    expect(await redis.set('ob:acl-test', '1')).to.equal('OK');
    expect(await redis.eval("return redis.call('SET', KEYS[1], '1')", 1, 'feat:acl-test')).to.equal('OK');
  });

  it('a wrong password is refused without the password in the error', async () => {
    const bad = createRedisClient(
      parseConfig({ redis: { port, username: 'aggregator', password: 'wrong-Secret-123' } }).redis,
      { connectionName: 'acl-bad', maxRetriesPerRequest: 0 },
    );
    clients.push(bad);
    const errors: string[] = [];
    bad.on('error', (err: Error) => errors.push(err.message));
    const message = await refusal(bad.ping());
    bad.disconnect();
    for (const m of [message, ...errors]) expect(m).to.not.include('wrong-Secret-123');
    expect([message, ...errors].join('\n')).to.match(
      /WRONGPASS|invalid username-password|max retries|Connection/i,
    );
  });
});
