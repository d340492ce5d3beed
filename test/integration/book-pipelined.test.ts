import { expect } from 'chai';
import Redis from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { MarketSimulator } from '../../src/replay/simulator';
import type { DepthDiffStreamEvent, SbeMessage } from '../../src/sbe/messages';
import {
  anchorBook,
  applyBookBatch,
  type DepthBatchResult,
  type DepthCallLimits,
  type RestDepthSnapshot,
} from '../../src/state/book';
import { Keys } from '../../src/state/keys';
import { createRedisClient, type RedisClient } from '../../src/state/redis';
import { snapshotStateKeys, type KeySnapshot } from '../helpers/redis-snapshot';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// applyBookBatch sends a symbol's bounded calls together (src/state/book.ts). Against a real redis-server, each
// scenario runs twice from the same anchored book: split into calls of 3 diffs sent at once, and as one unsplit
// call; the state keys must end identical, and the split run must have re-sent exactly the net forms the script
// refused (a redelivered prefix, a re-anchor keeping diffs, a gap).

const S = 'BTCUSDT';
const LEVELS = 10;
const START_US = 1_700_000_000_000_000n;
const keys = new Keys({ clusterMode: false });
const SPLIT: DepthCallLimits = { maxDiffs: 3, maxLevels: 10_000 };
const UNSPLIT: DepthCallLimits = { maxDiffs: 1_000_000, maxLevels: 1_000_000 };

describe('depth calls of one batch sent together: the same state as one call', function () {
  this.timeout(60_000);
  let server: TestRedis;
  let redis: RedisClient;
  /** A plain client for the state snapshots. */
  let reader: Redis;
  let snapshot: RestDepthSnapshot;
  let diffs: DepthDiffStreamEvent[];

  before(async () => {
    server = await startTestRedis('book-pipelined');
    const port = server.port;
    redis = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: 'book-pipelined' });
    reader = new Redis({ port, host: '127.0.0.1' });
    const sim = new MarketSimulator({ seed: 11, symbols: [S], startTimeUs: START_US });
    snapshot = { ...sim.depthSnapshot(S, 5000), priceExponent: -8, qtyExponent: -8, timeUs: START_US };
    diffs = [];
    while (diffs.length < 40) {
      const m = sim.next().message;
      if (m.message === 'DepthDiffStreamEvent') diffs.push(m);
    }
  });

  after(async () => {
    redis.disconnect();
    reader.disconnect();
    await server.stop();
  });

  /** From an anchored book (and `setup`), each batch with `limits`: the state keys after them and the results. */
  async function run(
    batches: readonly SbeMessage[][],
    limits: DepthCallLimits,
    setup: () => Promise<void> = () => Promise.resolve(),
  ): Promise<{ state: KeySnapshot; results: DepthBatchResult[] }> {
    await redis.flushall();
    const anchored = await anchorBook(redis, keys, S, snapshot, { levels: LEVELS });
    expect(anchored.outcome).to.equal('anchored');
    await setup();
    const results: DepthBatchResult[] = [];
    for (const batch of batches) {
      results.push(await applyBookBatch(redis, keys, S, batch, { levels: LEVELS, limits }));
    }
    return { state: await snapshotStateKeys(reader), results };
  }

  it('a redelivered prefix: its calls are refused and re-sent in full (ignored), the new calls apply in the same round', async () => {
    const batches = [diffs.slice(0, 9), diffs.slice(3, 15)];
    const split = await run(batches, SPLIT);
    const whole = await run(batches, UNSPLIT);
    expect(split.state).to.deep.equal(whole.state);
    const last = split.results[1]!;
    expect(last).to.include({ applied: 6, ignored: 6, resent: 2, calls: 6, status: 'in_sync' });
    expect(last.bookUpdateId).to.equal(diffs[14]!.lastBookUpdateId);
  });

  it('a re-anchor keeping diffs: every net form is refused, the full forms apply and keep every diff, in order', async () => {
    const flag = () => redis.set(keys.reanchorFlag(S), 'test|1', 'EX', 300).then(() => undefined);
    const batches = [diffs.slice(0, 12)];
    const split = await run(batches, SPLIT, flag);
    const whole = await run(batches, UNSPLIT, flag);
    expect(split.state).to.deep.equal(whole.state);
    expect(split.results[0]).to.include({ applied: 12, kept: 12, resent: 4, status: 'in_sync' });
    const buffered = await redis.lrange(keys.diffBuffer(S), 0, -1);
    expect(buffered.map((entry) => entry.split(' ')[1])).to.deep.equal(
      diffs.slice(0, 12).map((d) => d.lastBookUpdateId.toString()),
    );
  });

  it('a gap inside the batch: the calls go one at a time, the book goes out of sync and buffers from the gap on', async () => {
    const batches = [[...diffs.slice(0, 7), ...diffs.slice(8, 14)]];
    const split = await run(batches, SPLIT);
    const whole = await run(batches, UNSPLIT);
    expect(split.state).to.deep.equal(whole.state);
    expect(split.results[0]).to.include({ applied: 7, buffered: 6, gap: true, status: 'out_of_sync' });
  });

  it('a re-anchor keeping diffs and a gap inside a later call: one call at a time, nothing lost from the buffer', async () => {
    // Calls [d0 d1 d2] (net, refused while the re-anchor keeps diffs) and [d3 d4 d6] (full: d5 is missing). Sent
    // together, the full form would run before the refused call is re-sent and open a gap at d3.
    const flag = () => redis.set(keys.reanchorFlag(S), 'test|1', 'EX', 300).then(() => undefined);
    const batches = [[...diffs.slice(0, 5), ...diffs.slice(6, 11)]];
    const split = await run(batches, SPLIT, flag);
    const whole = await run(batches, UNSPLIT, flag);
    expect(split.state).to.deep.equal(whole.state);
    expect(split.results[0]).to.include({
      applied: 5,
      kept: 5,
      buffered: 5,
      gap: true,
      status: 'out_of_sync',
    });
  });

  it('a book out of sync from the start: every call refused once, then buffered in order; redelivered, nothing changes', async () => {
    const batches = [diffs.slice(20, 32)];
    const split = await run(batches, SPLIT);
    const whole = await run(batches, UNSPLIT);
    expect(split.state).to.deep.equal(whole.state);
    expect(split.results[0]).to.include({ gap: true, status: 'out_of_sync' });
    const again = await applyBookBatch(redis, keys, S, diffs.slice(20, 32), {
      levels: LEVELS,
      limits: SPLIT,
    });
    expect(again).to.include({ applied: 0, buffered: 0, ignored: 12 });
    expect(await snapshotStateKeys(reader)).to.deep.equal(whole.state);
  });
});
