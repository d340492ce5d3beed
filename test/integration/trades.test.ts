import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import type { Result } from 'ioredis';
import { parseConfig } from '../../src/config/config';
import { readTradesCsv } from '../../src/dev/replay/csv';
import { Prng, simulate } from '../../src/replay/simulator';
import { formatDecimal } from '../../src/sbe/decimal';
import type { TradeEntry, TradesStreamEvent } from '../../src/sbe/messages';
import { Keys } from '../../src/state/keys';
import { createRedisClient, loadScriptSources } from '../../src/state/redis';
import type { RedisClient } from '../../src/state/redis';
import { applyTradeBatch, tradeBatchKeys, tradeWindowKeys } from '../../src/state/trades';
import type { TradeBatchResult } from '../../src/state/trades';
import { repoRoot, sharedDir } from '../helpers/paths';
import { TradeReference, expectWindow } from '../helpers/trade-reference';
import { startTestRedis, type TestRedis } from '../helpers/redis';

// Rolling trade statistics (apply-trade-batch-6.lua + includes/trade-windows.lua) against a real redis-server,
// compared with an independent in-memory reference (test/helpers/trade-reference.ts) over many random seeds.

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** Test-only: refresh_trade_windows called exactly as the book scripts call it. */
    refreshTradeWindowsTest(
      obKey: string,
      tr1Key: string,
      tr5Key: string,
      bucketsKey: string,
      stateKey: string,
      eventTimeUs: string,
    ): Result<number, Context>;
  }
}

const SYMBOL = 'BTCUSDT';
const BUCKET_US = 100_000n;
const CSV_FILE = path.join(
  sharedDir,
  'data',
  'btcusdt-trades',
  'nautilus_tardis_binance-futures_btcusdt_trades.csv',
);

type Snapshot = Record<string, Record<string, Buffer>>;

describe('rolling trade statistics against a real Redis', function () {
  this.timeout(120000);

  let tmpDir: string;
  let server: TestRedis;
  let port: number;
  let redis: RedisClient;
  const keys = new Keys({ clusterMode: false });
  const [obKey, tr1Key, tr5Key, bucketsKey, stateKey, pxKey] = tradeBatchKeys(keys, SYMBOL);

  function connect(name: string): RedisClient {
    const client = createRedisClient(parseConfig({ redis: { port } }).redis, { connectionName: name });
    // The include through a script of its own, as a book script uses it.
    const dir = path.join(tmpDir, 'lua');
    fs.mkdirSync(path.join(dir, 'includes'), { recursive: true });
    fs.copyFileSync(
      path.join(repoRoot, 'src', 'state', 'lua', 'includes', 'trade-windows.lua'),
      path.join(dir, 'includes', 'trade-windows.lua'),
    );
    fs.writeFileSync(
      path.join(dir, 'refresh-trade-windows-test-5.lua'),
      '--@include trade-windows\n' +
        'return refresh_trade_windows(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1])\n',
    );
    for (const script of loadScriptSources(dir)) {
      client.defineCommand(script.command, { numberOfKeys: script.numberOfKeys, lua: script.lua });
    }
    return client;
  }

  before(async () => {
    server = await startTestRedis('trades-it');
    tmpDir = server.dir;
    port = server.port;
    redis = connect('trades-integration-test');
  });

  after(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    await redis.flushdb();
  });

  // ------------------------------------------------------------------------------------------------------------
  // Helpers: apply to Redis and to the reference together, and compare.

  async function applyBoth(
    ref: TradeReference,
    messages: readonly TradesStreamEvent[],
    context: string,
    eventTimeUs?: bigint,
  ): Promise<TradeBatchResult> {
    const result = await applyTradeBatch(
      redis,
      keys,
      SYMBOL,
      messages,
      eventTimeUs === undefined ? {} : { eventTimeUs },
    );
    expect(result, context).to.deep.equal(ref.applyBatch(messages, eventTimeUs));
    return result;
  }

  async function refreshBoth(ref: TradeReference, eventTimeUs: bigint): Promise<number> {
    ref.refresh(eventTimeUs);
    return redis.refreshTradeWindowsTest(...tradeWindowKeys(keys, SYMBOL), eventTimeUs.toString());
  }

  async function snapshot(): Promise<Snapshot> {
    const out: Snapshot = {};
    for (const key of (await redis.keys('*')).sort()) {
      expect(await redis.type(key), key).to.equal('hash');
      out[key] = await redis.hgetallBuffer(key);
    }
    return out;
  }

  /** Every key of the symbol against the reference. */
  async function expectState(ref: TradeReference, context: string): Promise<void> {
    const mid = (await redis.hget(obKey, 'mid_price')) ?? undefined;
    if (ref.eventTimeUs === undefined) {
      expect(await redis.exists(tr1Key, tr5Key), context).to.equal(0);
      return;
    }
    expectWindow(await redis.hgetall(tr1Key), ref, 1, mid, context);
    expectWindow(await redis.hgetall(tr5Key), ref, 5, mid, context);
    for (const key of [tr1Key, tr5Key])
      expect(await redis.ttl(key), `${context}: TTL ${key}`).to.be.within(1, 300);

    const state = await redis.hgetall(stateKey);
    expect(state.event_time_us, `${context}: event time`).to.equal(ref.eventTimeUs.toString());
    const last = ref.applied[ref.applied.length - 1];
    if (last !== undefined) {
      expect(state, context).to.include({
        last_trade_id: last.id.toString(),
        trades_applied: String(ref.applied.length),
      });
      expect(
        await redis.hmget(obKey, 'last_trade_id', 'last_trade_price', 'last_trade_ts_us'),
        context,
      ).to.deep.equal([last.id.toString(), last.priceText, last.timeUs.toString()]);
    }
    if (ref.lastGap === undefined) {
      expect(state.gap_count, `${context}: no gap`).to.equal(undefined);
    } else {
      expect(state, context).to.include({
        gap_count: String(ref.gapCount),
        gap_missing: ref.gapMissing.toString(),
        last_gap_from: ref.lastGap.from.toString(),
        last_gap_to: ref.lastGap.to.toString(),
      });
    }
    expect(await redis.hgetall(pxKey), `${context}: px`).to.deep.equal(
      Object.fromEntries([...ref.px].map(([start, price]) => [start.toString(), price])),
    );

    // Bounded: only the 5 s window's buckets are kept.
    const newest = (ref.eventTimeUs / BUCKET_US) * BUCKET_US;
    const starts = (await redis.hkeys(bucketsKey)).map((f) => BigInt(f));
    expect(starts.length, `${context}: bucket count`).to.be.at.most(50);
    for (const start of starts)
      expect(start > newest - 50n * BUCKET_US && start <= newest, context).to.equal(true);
  }

  /** Time steps after the end: the windows decay to zeros as the event time moves on without trades. */
  async function expectDecay(ref: TradeReference, rng: Prng, context: string): Promise<void> {
    const end = ref.eventTimeUs!;
    let t = end;
    while (t < end + 6_000_000n) {
      t += BigInt(1 + rng.int(700_000));
      await refreshBoth(ref, t);
      await expectState(ref, `${context} decay +${t - end}us`);
    }
    for (const key of [tr1Key, tr5Key]) {
      const fields = await redis.hgetall(key);
      for (const [field, value] of Object.entries(fields)) expect(value, `${key} ${field}`).to.equal('0');
    }
    expect(await redis.hlen(bucketsKey)).to.equal(0);
  }

  async function rejection(promise: Promise<unknown>): Promise<string> {
    try {
      await promise;
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('expected a rejection');
  }

  // ------------------------------------------------------------------------------------------------------------
  // Random trade sequences.

  function shuffle<T>(items: T[], rng: Prng): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  const KINDS = ['burst', 'sparse', 'equal', 'one', 'extreme', 'mixed'] as const;
  type Kind = (typeof KINDS)[number];

  /** Hand-made sequences: bursts in one microsecond, empty seconds, equal prices, one trade, huge and tiny sizes,
   * exponents varying per message, id gaps. Trade ids are increasing; times do not decrease. */
  function handMade(seed: number, kind: Kind): TradesStreamEvent[] {
    const rng = new Prng(seed);
    let id = BigInt(1 + rng.int(1_000_000_000));
    let t = 1_600_000_000_000_000n + BigInt(rng.int(1_000_000_000));
    let cents = 100 + rng.int(10_000_000);
    const messages: TradesStreamEvent[] = [];
    const count = kind === 'one' ? 1 : 50 + rng.int(250);
    for (let m = 0; m < count; m++) {
      if (kind === 'burst') t += rng.float() < 0.8 ? 0n : BigInt(rng.int(80_000));
      else if (kind === 'sparse')
        t += rng.float() < 0.3 ? BigInt(1_000_000 + rng.int(11_000_000)) : BigInt(rng.int(150_000));
      else t += BigInt(rng.int(rng.float() < 0.1 ? 3_000_000 : 60_000));
      const priceExponent = kind === 'extreme' ? -8 : [-2, -4, -8][rng.int(3)]!;
      const qtyExponent = kind === 'extreme' ? -8 : [-3, -5, -8][rng.int(3)]!;
      const trades: TradeEntry[] = [];
      const n = kind === 'one' ? 1 : kind === 'burst' ? 1 + rng.int(30) : 1 + rng.int(5);
      for (let k = 0; k < n; k++) {
        if (rng.float() < 0.03) id += BigInt(1 + rng.int(1000)); // missed trades
        if (kind !== 'equal') cents = Math.max(1, cents + rng.int(21) - 10);
        let priceMantissa = BigInt(cents) * 10n ** BigInt(-2 - priceExponent);
        let qtyMantissa = BigInt(1 + rng.int(100_000)) * 10n ** BigInt(-3 - qtyExponent); // 0.001 .. 100
        if (kind === 'extreme') {
          priceMantissa = rng.float() < 0.5 ? BigInt(1 + rng.int(10)) : priceMantissa;
          qtyMantissa = rng.float() < 0.5 ? 1n : 9_000_000_000_000_000_000n - BigInt(rng.int(1_000_000));
        }
        trades.push({
          id: id++,
          priceMantissa,
          qtyMantissa,
          isBuyerMaker: rng.float() < 0.5,
          isBestMatch: true,
        });
      }
      messages.push({
        message: 'TradesStreamEvent',
        eventTime: t + BigInt(rng.int(3000)),
        transactTime: t,
        priceExponent,
        qtyExponent,
        trades,
        symbol: SYMBOL,
      });
    }
    return messages;
  }

  /**
   * Applies a stream in random batches (shuffled inside, with repeated messages and overlaps with earlier ones),
   * redelivers earlier batches and stream slices (every key must stay byte-identical), refreshes with later and
   * older book times, changes the mid, and compares everything with the reference at sampled points and at the end.
   */
  async function runStream(
    messages: readonly TradesStreamEvent[],
    seed: number,
    context: string,
    options: { maxBatch: number; sample: number; midAt?: (i: number) => string | undefined },
  ): Promise<TradeReference> {
    const rng = new Prng(seed ^ 0x5bd1e995);
    const ref = new TradeReference();
    const batches: TradesStreamEvent[][] = [];
    let i = 0;
    let step = 0;
    while (i < messages.length) {
      step++;
      const where = `${context} step ${step}`;
      const start = i;
      i = Math.min(messages.length, i + 1 + rng.int(options.maxBatch));
      let batch = messages.slice(start, i);
      if (start > 0 && rng.float() < 0.15)
        batch = [...messages.slice(Math.max(0, start - 1 - rng.int(5)), start), ...batch];
      if (rng.float() < 0.1) batch.push(batch[rng.int(batch.length)]!);
      batch = shuffle(batch, rng);
      await applyBoth(ref, batch, where);
      batches.push(batch);

      if (rng.float() < 0.2) {
        // Redelivery of an earlier batch or of a slice of the stream already applied: nothing may change.
        const before = await snapshot();
        const from = rng.int(i);
        const again =
          rng.float() < 0.5
            ? batches[rng.int(batches.length)]!
            : messages.slice(from, Math.min(i, from + 300));
        const result = await applyBoth(ref, again, `${where} redelivery`);
        expect(result.applied, where).to.equal(0);
        expect(await snapshot(), `${where}: redelivery changed Redis`).to.deep.equal(before);
      }
      if (rng.float() < 0.1 && ref.eventTimeUs !== undefined) {
        // A book event: older ones change nothing, newer ones move the windows.
        const current = ref.eventTimeUs;
        const t = current + BigInt(rng.int(3_000_000)) - 1_500_000n;
        const before = await snapshot();
        await refreshBoth(ref, t);
        if (t <= current) expect(await snapshot(), `${where}: older refresh`).to.deep.equal(before);
      }
      const mid = options.midAt?.(i);
      if (mid !== undefined && rng.float() < 0.1) {
        await redis.hset(obKey, 'mid_price', mid);
        await refreshBoth(ref, ref.eventTimeUs ?? 0n);
      }
      if (rng.float() < options.sample) await expectState(ref, where);
    }
    await expectState(ref, `${context} end`);
    return ref;
  }

  describe('property: random sequences equal the reference', () => {
    for (let seed = 1; seed <= 36; seed++) {
      const kind = KINDS[seed % KINDS.length]!;
      it(`hand-made ${kind}, seed ${seed}`, async () => {
        const messages = handMade(seed, kind);
        if (seed % 3 === 0) await redis.hset(obKey, 'mid_price', formatDecimal(BigInt(100 + seed * 997), -2));
        const ref = await runStream(messages, seed, `${kind} seed ${seed}`, {
          maxBatch: kind === 'one' ? 1 : 1 + (seed % 4) * 10,
          sample: 0.3,
          midAt: seed % 2 === 0 ? (i) => formatDecimal(BigInt(100_000 + i * 37), -2) : undefined,
        });
        await expectDecay(ref, new Prng(seed), `${kind} seed ${seed}`);
      });
    }

    for (let seed = 1; seed <= 8; seed++) {
      it(`simulator, seed ${seed}: trades with the book's mid and bestBidAsk times`, async () => {
        const events = [
          ...simulate({ seed, symbols: [SYMBOL], startTimeUs: 1_700_000_000_000_000n }, 20_000),
        ];
        const trades = events
          .filter((e) => e.message.message === 'TradesStreamEvent')
          .map((e) => e.message as TradesStreamEvent);
        // The mid of the latest bestBidAsk before each point of the trade stream.
        const mids: string[] = [];
        let mid = '';
        let tradeIndex = 0;
        for (const e of events) {
          if (e.message.message === 'BestBidAskStreamEvent') {
            const m = e.message;
            mid = formatDecimal(m.bidPriceMantissa + m.askPriceMantissa, m.priceExponent);
            mid = String(Number(mid) / 2);
          } else if (e.message.message === 'TradesStreamEvent') {
            mids[tradeIndex++] = mid;
          }
        }
        expect(trades.length).to.be.greaterThan(500);
        const ref = await runStream(trades, seed, `simulator seed ${seed}`, {
          maxBatch: 60,
          sample: 0.15,
          midAt: (i) => mids[i - 1],
        });
        expect(ref.gapCount).to.equal(0);
        await expectDecay(ref, new Prng(seed), `simulator seed ${seed}`);
      });
    }
  });

  // ------------------------------------------------------------------------------------------------------------

  describe('the 9,999 real BTCUSDT trades', () => {
    let messages: TradesStreamEvent[];

    before(async () => {
      messages = [];
      for await (const m of readTradesCsv(CSV_FILE)) messages.push(m);
      expect(messages).to.have.length(9999);
    });

    async function replay(sizes: (i: number) => number, context: string, mid?: string): Promise<Snapshot> {
      if (mid !== undefined) await redis.hset(obKey, 'mid_price', mid);
      const ref = new TradeReference();
      const boundaries: number[] = [];
      for (let i = 0; i < messages.length;) {
        i = Math.min(messages.length, i + sizes(i));
        boundaries.push(i);
      }
      // 20 sampled batch ends, spread over the file.
      const sampled = new Set(
        Array.from({ length: 20 }, (_, k) => boundaries[Math.floor((k * boundaries.length) / 20)]),
      );
      let start = 0;
      let gaps = 0;
      for (const end of boundaries) {
        const result = await applyBoth(ref, messages.slice(start, end), `${context} ${start}..${end}`);
        gaps += result.gaps.length;
        if (sampled.has(end)) await expectState(ref, `${context} after ${end} trades`);
        start = end;
      }
      expect(gaps).to.equal(0);
      expect(ref.applied).to.have.length(9999);
      await expectState(ref, `${context} end`);
      expect(await redis.hmget(stateKey, 'last_trade_id', 'trades_applied')).to.deep.equal([
        '42387942',
        '9999',
      ]);
      const snap = await snapshot();
      delete snap[stateKey]; // its lower bounds of stored buckets depend on the batching
      return snap;
    }

    it('in batches of 100, then in random sizes: the reference at 20 points and at the end, no gaps, same keys', async () => {
      const hundreds = await replay(() => 100, 'batches of 100', '9680.00');
      await redis.flushdb();
      const rng = new Prng(99);
      const random = await replay(
        () => 1 + rng.int(rng.float() < 0.2 ? 1000 : 50),
        'random batches',
        '9680.00',
      );
      // The buckets, windows and price history do not depend on how the stream was cut into batches.
      expect(random).to.deep.equal(hundreds);
    });

    it('maxTradesPerCall: chunked calls end in the same state and report the same result as one call', async () => {
      const slice = messages.slice(0, 4000);
      const whole = await applyTradeBatch(redis, keys, SYMBOL, slice);
      const one = await snapshot();
      await redis.flushdb();
      const chunked = await applyTradeBatch(redis, keys, SYMBOL, slice, { maxTradesPerCall: 7 });
      expect(chunked).to.deep.equal(whole);
      const many = await snapshot();
      delete one[stateKey];
      delete many[stateKey];
      expect(many).to.deep.equal(one);
      const ref = new TradeReference();
      ref.applyBatch(slice);
      await expectState(ref, 'chunked');
    });

    it('one trade per call, through two connections (a restart in the middle loses nothing)', async () => {
      const ref = new TradeReference();
      for (let i = 0; i < 3000; i++) await applyBoth(ref, [messages[i]!], `trade ${i}`);
      const other = connect('trades-integration-test-2');
      try {
        const result = await applyTradeBatch(other, keys, SYMBOL, messages.slice(3000));
        expect(result).to.deep.equal(ref.applyBatch(messages.slice(3000)));
      } finally {
        other.disconnect();
      }
      await expectState(ref, 'after the restart');
    });
  });

  // ------------------------------------------------------------------------------------------------------------

  describe('cases', () => {
    function trade(
      id: bigint,
      timeUs: bigint,
      price: bigint,
      qty = 100n,
      isBuyerMaker = false,
    ): TradesStreamEvent {
      return {
        message: 'TradesStreamEvent',
        eventTime: timeUs,
        transactTime: timeUs,
        priceExponent: -2,
        qtyExponent: -3,
        trades: [{ id, priceMantissa: price, qtyMantissa: qty, isBuyerMaker, isBestMatch: true }],
        symbol: SYMBOL,
      };
    }

    it('exact window boundaries: a bucket is in the window while its start is > T - W', async () => {
      const ref = new TradeReference();
      const t0 = 1_000_000_000n; // a bucket start
      await applyBoth(ref, [trade(1n, t0, 10000n), trade(2n, t0 + 99_999n, 10100n)], 'first bucket');
      // T in the bucket starting at t0 + 0.9 s: the first bucket still in the 1 s window.
      await refreshBoth(ref, t0 + 999_999n);
      expect(await redis.hget(tr1Key, 'count')).to.equal('2');
      // T at the start of the bucket t0 + 1 s: bucket start t0 = T - 1 s is out of the 1 s window.
      await refreshBoth(ref, t0 + 1_000_000n);
      expect(await redis.hget(tr1Key, 'count')).to.equal('0');
      expect(await redis.hget(tr5Key, 'count')).to.equal('2');
      await refreshBoth(ref, t0 + 4_999_999n);
      expect(await redis.hget(tr5Key, 'count')).to.equal('2');
      await refreshBoth(ref, t0 + 5_000_000n);
      expect(await redis.hget(tr5Key, 'count')).to.equal('0');
      await expectState(ref, 'after 5 s');
    });

    it('an empty window is all zeros with every contract field, TTL 300', async () => {
      const ref = new TradeReference();
      await applyBoth(ref, [], 'no trades', 5_000_000n);
      await expectState(ref, 'empty');
      expect(Object.values(await redis.hgetall(tr5Key)).every((v) => v === '0')).to.equal(true);
      expect(await redis.ttl(tr1Key)).to.be.within(299, 300);
      // Nothing at all known yet: nothing is written.
      await redis.flushdb();
      expect(await applyTradeBatch(redis, keys, SYMBOL, [])).to.deep.equal({
        applied: 0,
        duplicates: 0,
        gaps: [],
        eventTimeUs: undefined,
        lastTradeId: undefined,
      });
      expect(await redis.dbsize()).to.equal(0);
    });

    it('one trade; equal prices give price_std 0 exactly', async () => {
      const ref = new TradeReference();
      await applyBoth(ref, [trade(7n, 10_000_000n, 968219n, 5n, true)], 'one trade');
      await expectState(ref, 'one trade');
      expect(await redis.hmget(tr5Key, 'count', 'price_std', 'price_momentum')).to.deep.equal([
        '1',
        '0',
        '0',
      ]);
      const same = Array.from({ length: 40 }, (_, k) =>
        trade(8n + BigInt(k), 10_000_000n + BigInt(k * 7919), 968219n, BigInt(1 + k)),
      );
      await applyBoth(ref, same, 'equal prices');
      expect(await redis.hget(tr5Key, 'price_std')).to.equal('0');
      await expectState(ref, 'equal prices');
    });

    it('gaps: counted, ranged and returned exactly, also beyond 2^53 and at 19 digits; trades still applied', async () => {
      const ref = new TradeReference();
      const t = 50_000_000n;
      let r = await applyBoth(
        ref,
        [trade(10n, t, 100n), trade(11n, t, 100n), trade(15n, t, 100n), trade(20n, t, 100n)],
        'small ids',
      );
      expect(r.gaps).to.deep.equal([
        { from: 12n, to: 14n },
        { from: 16n, to: 19n },
      ]);
      const b = 2n ** 53n;
      r = await applyBoth(
        ref,
        [trade(b - 2n, t, 1n), trade(b + 1n, t, 1n), trade(b + 5n, t, 1n)],
        'around 2^53',
      );
      expect(r.gaps).to.deep.equal([
        { from: 21n, to: b - 3n },
        { from: b - 1n, to: b },
        { from: b + 2n, to: b + 4n },
      ]);
      const max = 2n ** 63n - 1n;
      r = await applyBoth(
        ref,
        [trade(max - 1000n, t, 1n), trade(max - 999n, t, 1n), trade(max, t, 1n)],
        '19 digits',
      );
      expect(r.gaps).to.deep.equal([
        { from: b + 6n, to: max - 1001n },
        { from: max - 998n, to: max - 1n },
      ]);
      expect(r.applied).to.equal(3);
      await expectState(ref, 'gaps');
      // 999999999999999 -> 1000000000000000: crossing a digit count is consecutive, not a gap.
      await redis.flushdb();
      const ref2 = new TradeReference();
      await applyBoth(ref2, [trade(10n ** 15n - 1n, t, 1n)], 'before 10^15');
      r = await applyBoth(ref2, [trade(10n ** 15n, t, 1n), trade(10n ** 15n + 1n, t, 1n)], 'at 10^15');
      expect(r.gaps).to.deep.equal([]);
      r = await applyBoth(
        ref2,
        [trade(10n ** 15n + 1n, t, 1n), trade(10n ** 16n - 1n, t, 1n), trade(10n ** 16n, t, 1n)],
        'at 10^16',
      );
      expect(r.gaps).to.deep.equal([{ from: 10n ** 15n + 2n, to: 10n ** 16n - 2n }]);
      expect(r.duplicates).to.equal(1);
      await expectState(ref2, 'big ids');
    });

    it('late trades (older than the 5 s window after a book event moved T) advance ids but stay out of windows', async () => {
      const ref = new TradeReference();
      await applyBoth(ref, [trade(1n, 10_000_000n, 100n)], 'first');
      await refreshBoth(ref, 30_000_000n);
      const r = await applyBoth(ref, [trade(2n, 20_000_000n, 200n), trade(3n, 29_000_000n, 300n)], 'late');
      expect(r.applied).to.equal(2);
      await expectState(ref, 'late');
      expect(await redis.hget(tr5Key, 'count')).to.equal('1');
      expect(await redis.hget(obKey, 'last_trade_price')).to.equal('3.00000000');
    });

    it('refresh_trade_windows: an older time writes nothing; a new mid alone recomputes vwap_minus_mid', async () => {
      const ref = new TradeReference();
      await applyBoth(
        ref,
        [trade(1n, 10_000_000n, 10000n, 100n), trade(2n, 10_050_000n, 10200n, 300n)],
        'trades',
      );
      expect(await redis.hget(tr1Key, 'vwap_minus_mid')).to.equal('0');
      const before = await snapshot();
      expect(await refreshBoth(ref, 9_000_000n)).to.equal(0);
      expect(await refreshBoth(ref, 10_050_000n)).to.equal(0);
      expect(await snapshot()).to.deep.equal(before);
      // The same bucket: only the event time moves.
      expect(await refreshBoth(ref, 10_099_999n)).to.equal(0);
      expect(await redis.hget(stateKey, 'event_time_us')).to.equal('10099999');
      await redis.hset(obKey, 'mid_price', '101.00');
      expect(await refreshBoth(ref, 1n)).to.equal(1);
      expect(await redis.hget(tr1Key, 'vwap_minus_mid')).to.match(/^0\.49999|^0\.5/);
      await expectState(ref, 'new mid');
      for (const bad of ['', 'abc', '-5', 'nan', 'inf']) {
        await redis.hset(obKey, 'mid_price', bad);
        await refreshBoth(ref, 1n);
        expect(await redis.hget(tr5Key, 'vwap_minus_mid'), `mid ${JSON.stringify(bad)}`).to.equal('0');
        await expectState(ref, `mid ${JSON.stringify(bad)}`);
      }
      // Before any trade, a book event alone writes zero windows.
      await redis.flushdb();
      const fresh = new TradeReference();
      expect(await refreshBoth(fresh, 5_000_000n)).to.equal(1);
      await expectState(fresh, 'book event first');
    });

    it('price history: the highest-id price of each 100 ms bucket of the last 15 s, pruned', async () => {
      const ref = new TradeReference();
      const batch: TradesStreamEvent[] = [];
      for (let k = 0; k < 400; k++)
        batch.push(trade(BigInt(k + 1), 1_000_000_000n + BigInt(k) * 50_000n, 10000n + BigInt(k)));
      for (let k = 0; k < 400; k += 40) await applyBoth(ref, batch.slice(k, k + 40), `px ${k}`);
      await expectState(ref, 'px');
      const px = await redis.hgetall(pxKey);
      expect(Object.keys(px)).to.have.length(150);
      expect(px['1019900000']).to.equal('103.99000000'); // trades 398 and 399 share the newest bucket; 399 wins
    });

    it('price history: the same px:<S> whether a book event moved T before or after the trades', async () => {
      // 20 trades from 10.0 s to 11.9 s; a book event at 26 s puts T - 15 s in the middle of them.
      const trades: TradesStreamEvent[] = [];
      for (let k = 0; k < 20; k++)
        trades.push(trade(BigInt(k + 1), 10_000_000n + BigInt(k) * 100_000n, 10000n + BigInt(k)));
      const tradesFirst = new TradeReference();
      await applyBoth(tradesFirst, trades, 'trades first');
      await refreshBoth(tradesFirst, 26_000_000n);
      await expectState(tradesFirst, 'trades first');
      const px = await redis.hgetall(pxKey);
      expect(Object.keys(px)).to.have.length(20);

      await redis.flushdb();
      const bookFirst = new TradeReference();
      await refreshBoth(bookFirst, 26_000_000n);
      await applyBoth(bookFirst, trades, 'book event first');
      await expectState(bookFirst, 'book event first');
      expect(await redis.hgetall(pxKey)).to.deep.equal(px);
    });

    it('rejects malformed arguments with ERR_TRADE_ARGS and writes nothing', async () => {
      const k = tradeBatchKeys(keys, SYMBOL);
      expect(await rejection(redis.applyTradeBatch(...k, '1000', '1', '1000', '1.0', '1.0'))).to.match(
        /ERR_TRADE_ARGS expected 1 \+ 5 x trades arguments, got 5/,
      );
      const ok = ['1', '1000', '1.00000000', '1.00000000', '0'];
      expect(await rejection(redis.applyTradeBatch(...k, '1000', '1', '1000', 'x', '1.0', '0'))).to.match(
        /ERR_TRADE_ARGS trade 1: price and qty must be canonical decimals/,
      );
      expect(await rejection(redis.applyTradeBatch(...k, 'soon'))).to.match(/ERR_TRADE_ARGS event time/);
      // Every trade is checked before the first write: a bad last trade leaves nothing of the good first one.
      for (const [bad, pattern] of [
        [['-5', '1000', '1.00000000', '1.00000000', '0'], /trade id is not a decimal id: -5/],
        [['012', '1000', '1.00000000', '1.00000000', '0'], /trade id is not a decimal id: 012/],
        [
          ['2', '9223372036854775807', '1.00000000', '1.00000000', '0'],
          /trade 2: time is not an integer below 2\^53/,
        ],
        [['2', '1000', '59999.98', '1.00000000', '0'], /trade 2: price and qty must be canonical decimals/],
        [['2', '1000', '1.00000000', '1.00000000', 'x'], /trade 2: isBuyerMaker must be "0" or "1"/],
      ] as const) {
        expect(await rejection(redis.applyTradeBatch(...k, '', ...ok, ...bad))).to.match(pattern);
      }
      expect(await rejection(redis.applyTradeBatch(...k, '9223372036854775807', ...ok))).to.match(
        /ERR_TRADE_ARGS event time is not an integer below 2\^53/,
      );
      expect(await redis.dbsize()).to.equal(0);
    });

    it('after SCRIPT FLUSH the next batch still applies (NOSCRIPT falls back to EVAL)', async () => {
      const ref = new TradeReference();
      await applyBoth(ref, [trade(1n, 1_000_000n, 100n)], 'before flush');
      expect(await redis.script('FLUSH')).to.equal('OK');
      await applyBoth(ref, [trade(2n, 1_100_000n, 200n)], 'after flush');
      await refreshBoth(ref, 1_500_000n);
      await expectState(ref, 'after flush');
    });

    it('cluster-mode key names: every key carries the hash tag', async () => {
      const tagged = new Keys({ clusterMode: true });
      await applyTradeBatch(redis, tagged, SYMBOL, [trade(1n, 1_000_000n, 100n)]);
      expect((await redis.keys('*')).sort()).to.deep.equal([
        'ob:{BTCUSDT}',
        'px:{BTCUSDT}',
        'tr:{BTCUSDT}:1s',
        'tr:{BTCUSDT}:5s',
        'tr:{BTCUSDT}:buckets',
        'tr:{BTCUSDT}:state',
      ]);
    });
  });
});
