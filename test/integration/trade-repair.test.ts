import { expect } from 'chai';
import { parseConfig } from '../../src/config/config';
import { MarketSimulator } from '../../src/replay/simulator';
import type { TradesStreamEvent } from '../../src/sbe/messages';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import {
  applyTradeBatch,
  flattenTrades,
  repairTradeGaps,
  tradeBatchArgs,
  tradeBatchKeys,
  type FlatTrade,
} from '../../src/state/trades';
import { withoutRepairBookkeeping } from '../helpers/trade-view';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// Trade-gap repair (lua/repair-trades-6.lua) against a real redis-server. Each test runs the stream twice: once
// with some trade messages lost and a repair from the exchange's recent trades, once as a control applying every
// trade once; the repaired state must equal the control byte for byte (bucket aggregates, px:, windows, counters),
// or, when the REST answer cannot cover a gap, be reported unrepairable and left as the stream left it.

const S = 'BTCUSDT';
const START_US = 1_700_000_000_000_000n;
const keys = new Keys({ clusterMode: false });
const [obKey, tr1Key, tr5Key, bucketsKey, stateKey, pxKey] = tradeBatchKeys(keys, S);

/** The trade messages of a simulated market, in order (about 100 trades per second). */
function tradeMessages(seed: number, count: number): TradesStreamEvent[] {
  const sim = new MarketSimulator({ seed, symbols: [S], startTimeUs: START_US });
  const out: TradesStreamEvent[] = [];
  while (out.length < count) {
    const m = sim.next().message;
    if (m.message === 'TradesStreamEvent') out.push(m);
  }
  return out;
}

/** The exchange's GET /api/v3/trades?limit=N after the first `upTo` messages: the newest N trades. */
function restTrades(messages: readonly TradesStreamEvent[], upTo: number, limit = 1000): FlatTrade[] {
  return flattenTrades(S, messages.slice(0, upTo)).trades.slice(-limit);
}

function sorted(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
}

describe('trade-gap repair from REST trades (real redis-server)', function () {
  this.timeout(60_000);
  let server: TestRedis;
  let redis: RedisClient;

  before(async () => {
    server = await startTestRedis('trade-repair-it');
    const port = server.port;
    redis = createRedisClient(parseConfig({ redis: { port } }).redis, {
      connectionName: 'trade-repair-test',
    });
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushall();
  });

  /** Every trade key, exactly (bucket aggregates as hex), the repair's bookkeeping left out. */
  async function tradeState(): Promise<Record<string, unknown>> {
    const buckets = await redis.hgetallBuffer(bucketsKey);
    const state = withoutRepairBookkeeping(await redis.hgetall(stateKey));
    return {
      buckets: Object.fromEntries(
        Object.entries(buckets)
          .map(([k, v]) => [k, v.toString('hex')] as const)
          .sort(([a], [b]) => a.localeCompare(b)),
      ),
      px: sorted(await redis.hgetall(pxKey)),
      tr1: sorted(await redis.hgetall(tr1Key)),
      tr5: sorted(await redis.hgetall(tr5Key)),
      state: sorted(state),
      ob: sorted(await redis.hgetall(obKey)),
    };
  }

  /** Applies the messages one batch each, skipping those at the indices in `lost`. */
  async function stream(
    messages: readonly TradesStreamEvent[],
    from: number,
    to: number,
    lost: ReadonlySet<number> = new Set(),
  ): Promise<void> {
    for (let i = from; i < to; i++) {
      if (!lost.has(i)) await applyTradeBatch(redis, keys, S, [messages[i]!]);
    }
  }

  /** The control: every message once, up to `to`. */
  async function control(
    messages: readonly TradesStreamEvent[],
    to: number,
  ): Promise<Record<string, unknown>> {
    await redis.flushall();
    await stream(messages, 0, to);
    return tradeState();
  }

  it('fills a gap inside the 5 s window: buckets, px:, windows and counters equal the control', async () => {
    const messages = tradeMessages(3, 1200);
    // Lost: three messages in a row about 2 s before the end, and one more a little later.
    const lost = new Set([1000, 1001, 1002, 1100]);
    await stream(messages, 0, 1200, lost);
    const gapped = await redis.hgetall(stateKey);
    expect(gapped.gap_count).to.equal('2');
    expect(gapped.open_gaps).to.match(/^\d+-\d+,\d+-\d+$/);
    const before = await redis.hget(tr5Key, 'count');

    const result = await repairTradeGaps(redis, keys, S, restTrades(messages, 1200));
    expect(result.repairedGaps).to.equal(2);
    expect(result.unrepairableGaps).to.equal(0);
    expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['repaired', 'repaired']);
    const missing = [...lost].reduce((n, i) => n + messages[i]!.trades.length, 0);
    expect(result.repairedTrades).to.equal(BigInt(missing));
    expect(Number(await redis.hget(tr5Key, 'count'))).to.equal(Number(before) + missing);
    const state = await redis.hgetall(stateKey);
    expect(state.open_gaps).to.equal('');
    expect(state.gaps_repaired).to.equal('2');
    expect(state.trades_repaired).to.equal(String(missing));
    const repaired = await tradeState();
    expect(repaired).to.deep.equal(await control(messages, 1200));
  });

  it('keeps equal to the control as the stream goes on after the repair, and a second repair changes nothing', async () => {
    const messages = tradeMessages(4, 1400);
    const lost = new Set([950, 951]);
    await stream(messages, 0, 1100, lost);
    await repairTradeGaps(redis, keys, S, restTrades(messages, 1100));
    const once = await tradeState();
    const again = await repairTradeGaps(redis, keys, S, restTrades(messages, 1100));
    expect(again.gaps).to.deep.equal([]);
    expect(await tradeState()).to.deep.equal(once);
    await stream(messages, 1100, 1400);
    const repaired = await tradeState();
    expect(repaired).to.deep.equal(await control(messages, 1400));
  });

  it('fills a gap older than the 5 s window but inside the 15 s price history: px: and the counters', async () => {
    const messages = tradeMessages(5, 1300);
    // About 8 s before the end: out of the windows, inside px:.
    const lost = new Set([700, 701]);
    const end = messages[1299]!.transactTime;
    expect(messages[701]!.transactTime < end - 5_000_000n, 'out of the 5 s window').to.equal(true);
    expect(messages[700]!.transactTime > end - 14_900_000n, 'in the price history').to.equal(true);
    await stream(messages, 0, 1300, lost);
    const result = await repairTradeGaps(redis, keys, S, restTrades(messages, 1300));
    expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['repaired']);
    expect(await tradeState()).to.deep.equal(await control(messages, 1300));
  });

  it('fills a gap at a REST answer that reaches further than the stream (ids above last_trade_id stay for the stream)', async () => {
    const messages = tradeMessages(6, 1200);
    const lost = new Set([1050]);
    await stream(messages, 0, 1100, lost);
    // The exchange is 100 messages ahead of the stream: its newest trades are not the live state's yet.
    const result = await repairTradeGaps(redis, keys, S, restTrades(messages, 1200));
    expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['repaired']);
    expect(await tradeState()).to.deep.equal(await control(messages, 1100));
    await stream(messages, 1100, 1200);
    expect(await tradeState()).to.deep.equal(await control(messages, 1200));
  });

  it('declares a gap the REST answer no longer reaches unrepairable: counted, reported, the state left as the stream left it', async () => {
    const messages = tradeMessages(7, 1200);
    const lost = new Set([1100]);
    await stream(messages, 0, 1200, lost);
    const before = await tradeState();
    // Only the last 50 trades: the gap is older than the answer.
    const result = await repairTradeGaps(redis, keys, S, restTrades(messages, 1200, 50));
    expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['before_rest']);
    expect(result.unrepairableGaps).to.equal(1);
    expect(result.repairedGaps).to.equal(0);
    expect(await tradeState()).to.deep.equal(before);
    const state = await redis.hgetall(stateKey);
    const [from, to] = state.open_gaps === '' ? [] : ['?', '?'];
    expect(from).to.equal(undefined, 'no longer open');
    expect(to).to.equal(undefined);
    expect(state.gaps_unrepairable).to.equal('1');
    expect(state.trades_unrepairable).to.equal(String(messages[1100]!.trades.length));
    expect(state.last_unrepairable_from).to.equal(messages[1100]!.trades[0]!.id.toString());
    expect(state.gap_count).to.equal('1', 'still counted as missing');
  });

  it('declares a gap unrepairable when the REST answer starts inside the bucket of its first trade (not_whole)', async () => {
    const messages = tradeMessages(8, 1200);
    const lost = new Set([1100]);
    await stream(messages, 0, 1200, lost);
    const before = await tradeState();
    const gapFrom = messages[1100]!.trades[0]!.id;
    // The answer starts at the trade right before the gap, in the same 100 ms bucket or a later one.
    const all = restTrades(messages, 1200);
    const answer = all.filter((t) => t.id >= gapFrom - 1n);
    const gapTime = messages[1100]!.transactTime;
    const sameBucket = answer[0]!.timeUs / 100_000n === gapTime / 100_000n;
    const result = await repairTradeGaps(redis, keys, S, answer);
    if (sameBucket) {
      expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['not_whole']);
      expect(await tradeState()).to.deep.equal(before);
    } else {
      // The previous trade is in an earlier bucket: the gap's bucket is whole in the answer.
      expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['repaired']);
    }
    // Constructed so that it is: the answer starts inside the gap's own bucket, after the bucket's first trade.
    await redis.flushall();
    const bucketOf = (t: bigint): bigint => t / 100_000n;
    let i = 1100;
    // Lose a message whose bucket holds an earlier trade too.
    while (bucketOf(messages[i - 1]!.transactTime) !== bucketOf(messages[i]!.transactTime)) i++;
    await stream(messages, 0, 1200, new Set([i]));
    const held = await tradeState();
    const firstOfBucket = all.find((t) => bucketOf(t.timeUs) === bucketOf(messages[i]!.transactTime))!;
    const partial = all.filter((t) => t.id > firstOfBucket.id);
    const r2 = await repairTradeGaps(redis, keys, S, partial);
    expect(r2.gaps.map((g) => g.outcome)).to.deep.equal(['not_whole']);
    expect(await tradeState()).to.deep.equal(held);
    expect(await redis.hget(stateKey, 'gaps_unrepairable')).to.equal('1');
  });

  it('a gap whose bucket also holds trades of a gap that is not repaired is not repaired either (not_whole)', async () => {
    // Gap B in bucket X; gap A from bucket X into X + 1, where the REST answer ends (older than the stream): A is
    // not_whole (X + 1 not held whole), so rebuilding X for B would count A's trades too.
    const messages = tradeMessages(3, 1200);
    const bucketOf = (i: number): bigint => messages[i]!.transactTime / 100_000n;
    let i = 900;
    while (
      i < 1150 &&
      !(
        bucketOf(i) === bucketOf(i + 1) &&
        bucketOf(i + 1) === bucketOf(i + 2) &&
        bucketOf(i + 3) === bucketOf(i) + 1n &&
        bucketOf(i + 4) === bucketOf(i + 3)
      )
    ) {
      i++;
    }
    expect(i, 'three messages in one bucket, two in the next').to.be.below(1150);
    await stream(messages, 0, 1200, new Set([i, i + 2, i + 3]));
    const before = await tradeState();
    const result = await repairTradeGaps(redis, keys, S, restTrades(messages, i + 5));
    expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['not_whole', 'not_whole']);
    expect(await tradeState()).to.deep.equal(before);
    expect(await redis.hget(stateKey, 'gaps_unrepairable')).to.equal('2');
  });

  it('a missing trade dated after the newest trade applied (an impossible REST answer) is not written (not_whole)', async () => {
    const messages = tradeMessages(3, 1200);
    await stream(messages, 0, 1200, new Set([1100]));
    const before = await tradeState();
    const missing = new Set(messages[1100]!.trades.map((t) => t.id));
    // The exchange's answer dates the missing trade 10 s after the stream's newest trade.
    const future = restTrades(messages, 1200).map((t) =>
      missing.has(t.id) ? { ...t, timeUs: messages[1199]!.transactTime + 10_000_000n } : t,
    );
    const result = await repairTradeGaps(redis, keys, S, future);
    expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['not_whole']);
    expect(await tradeState()).to.deep.equal(before);
  });

  it('keeps a gap open when the REST answer predates it (after_rest), and repairs it with a later answer', async () => {
    const messages = tradeMessages(9, 1200);
    const lost = new Set([1150]);
    await stream(messages, 0, 1200, lost);
    const stale = await repairTradeGaps(redis, keys, S, restTrades(messages, 1140));
    expect(stale.gaps.map((g) => g.outcome)).to.deep.equal(['after_rest']);
    expect(stale.openGapsLeft).to.equal(1);
    expect(await redis.hget(stateKey, 'open_gaps')).to.not.equal('');
    const fresh = await repairTradeGaps(redis, keys, S, restTrades(messages, 1200));
    expect(fresh.gaps.map((g) => g.outcome)).to.deep.equal(['repaired']);
    expect(await tradeState()).to.deep.equal(await control(messages, 1200));
  });

  it('repairs one gap and declares another unrepairable in the same call', async () => {
    const messages = tradeMessages(10, 1300);
    const lost = new Set([200, 1200]);
    await stream(messages, 0, 1300, lost);
    const result = await repairTradeGaps(redis, keys, S, restTrades(messages, 1300));
    expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['before_rest', 'repaired']);
    const state = await redis.hgetall(stateKey);
    expect(state.gap_count).to.equal('1');
    expect(state.gap_missing).to.equal(String(messages[200]!.trades.length));
    // Windows and px: equal the control's (the old gap is beyond both); trades_applied lacks the old gap only.
    const repaired = await tradeState();
    const expected = await control(messages, 1300);
    expect(repaired.buckets).to.deep.equal(expected.buckets);
    expect(repaired.px).to.deep.equal(expected.px);
    expect(repaired.tr5).to.deep.equal(expected.tr5);
    expect(repaired.tr1).to.deep.equal(expected.tr1);
  });

  it('bounds the open gaps: beyond 32 the oldest is declared unrepairable', async () => {
    const messages = tradeMessages(11, 400);
    const lost = new Set<number>();
    for (let i = 10; i < 10 + 2 * 34; i += 2) lost.add(i);
    await stream(messages, 0, 400, lost);
    const state = await redis.hgetall(stateKey);
    expect(state.open_gaps!.split(',')).to.have.length(32);
    expect(state.gaps_unrepairable).to.equal('2');
    expect(state.gap_count).to.equal('34');
    expect(state.last_unrepairable_from).to.equal(messages[12]!.trades[0]!.id.toString());
  });

  it('refuses REST trades that are not consecutive or malformed before writing anything', async () => {
    const messages = tradeMessages(12, 300);
    await stream(messages, 0, 300, new Set([250]));
    const before = await tradeState();
    const answer = restTrades(messages, 300);
    const holed = [...answer.slice(0, 10), ...answer.slice(11)];
    const args = tradeBatchArgs(holed, undefined).slice(1);
    let error: Error | undefined;
    try {
      await redis.repairTrades(obKey, tr1Key, tr5Key, bucketsKey, stateKey, pxKey, ...args);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).to.match(/^ERR_TRADE_ARGS REST trade ids must be consecutive/);
    const bad = tradeBatchArgs(answer, undefined).slice(1);
    bad[bad.length - 3] = '1.5';
    error = undefined;
    try {
      await redis.repairTrades(obKey, tr1Key, tr5Key, bucketsKey, stateKey, pxKey, ...bad);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).to.match(/^ERR_TRADE_ARGS trade \d+: price and qty must be canonical decimals/);
    expect(await tradeState()).to.deep.equal(before);
    // repairTradeGaps keeps the newest consecutive run of a holed answer, which here still covers the gap.
    const result = await repairTradeGaps(redis, keys, S, holed);
    expect(result.gaps.map((g) => g.outcome)).to.deep.equal(['repaired']);
  });
});
