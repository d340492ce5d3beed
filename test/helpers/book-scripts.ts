import { expect } from 'chai';
import { parseConfig } from '../../src/config/config';
import { canonical8 } from './canonical';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
} from '../../src/sbe/messages';
import { applyBookBatch, type DepthBatchResult, type RestDepthSnapshot } from '../../src/state/book';
import { Keys } from '../../src/state/keys';
import { createRedisClient } from '../../src/state/redis';
import type { RedisClient } from '../../src/state/redis';
import type { ReferenceBook } from './book-reference';
import { startTestRedis, type TestRedis } from './redis';

// The order-book scripts' test kit (test/integration/book-*.test.ts): builders of the stream events and REST
// snapshots, a redis-server per test file, and the comparisons of Redis with the in-memory reference
// (test/helpers/book-reference.ts): the full book, ob:, the state, the buffer, and byte-identical DUMPs.

export const LEVELS = 10;
export const START_US = 1_700_000_000_000_000n;
export const METRICS = new Set(['ob_imbalance', 'bid_strength', 'ask_strength']);
export const keys = new Keys({ clusterMode: false });

export function lv(price: bigint, qty: bigint): PriceLevel {
  return { priceMantissa: price, qtyMantissa: qty };
}

export function diff(
  U: bigint,
  u: bigint,
  bids: PriceLevel[],
  asks: PriceLevel[],
  symbol = 'BTCUSDT',
): DepthDiffStreamEvent {
  return {
    message: 'DepthDiffStreamEvent',
    eventTime: START_US + u,
    firstBookUpdateId: U,
    lastBookUpdateId: u,
    priceExponent: -2,
    qtyExponent: -8,
    bids,
    asks,
    symbol,
  };
}

export function depth20(
  id: bigint,
  bids: PriceLevel[],
  asks: PriceLevel[],
  symbol = 'BTCUSDT',
): DepthSnapshotStreamEvent {
  return {
    message: 'DepthSnapshotStreamEvent',
    eventTime: START_US + id,
    bookUpdateId: id,
    priceExponent: -2,
    qtyExponent: -8,
    bids,
    asks,
    symbol,
  };
}

export function bba(
  id: bigint,
  bid: bigint,
  ask: bigint,
  priceExponent = -2,
  symbol = 'BTCUSDT',
): BestBidAskStreamEvent {
  return {
    message: 'BestBidAskStreamEvent',
    // Ids beyond 2^53 (tested below) keep a time of this century.
    eventTime: START_US + (id % 1_000_000_000n),
    bookUpdateId: id,
    priceExponent,
    qtyExponent: -8,
    bidPriceMantissa: bid,
    bidQtyMantissa: 100_000_000n,
    askPriceMantissa: ask,
    askQtyMantissa: 200_000_000n,
    symbol,
  };
}

export function rest(lastUpdateId: bigint, bids: PriceLevel[], asks: PriceLevel[]): RestDepthSnapshot {
  return { lastUpdateId, priceExponent: -2, qtyExponent: -8, bids, asks, timeUs: START_US + lastUpdateId };
}

/** A ladder of `n` levels per side around 600.00 / 600.01 (mantissas at -2, quantities at -8). */
export function ladder(n: number, lastUpdateId: bigint): RestDepthSnapshot {
  const bids: PriceLevel[] = [];
  const asks: PriceLevel[] = [];
  for (let i = 0n; i < BigInt(n); i++) {
    bids.push(lv(60000n - i, 100_000_000n + i));
    asks.push(lv(60001n + i, 200_000_000n + i));
  }
  return rest(lastUpdateId, bids, asks);
}

export type KeyDump = Record<string, string>;

/** DUMP of every key: byte-for-byte state. */
export async function dumpAll(redis: RedisClient): Promise<KeyDump> {
  const out: KeyDump = {};
  for (const key of (await redis.keys('*')).sort()) {
    const dump = await redis.dumpBuffer(key);
    out[key] = dump === null ? '' : dump.toString('hex');
  }
  return out;
}

/** Byte-identical, naming the keys that differ. */
export function expectSameDump(after: KeyDump, before: KeyDump, label: string): void {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  const changed = names.filter((k) => before[k] !== after[k]);
  expect(changed, `${label}: keys changed`).to.deep.equal([]);
}

/** A script call refused with a BOOKARGS error reply. */
export async function expectBookArgs(call: () => Promise<unknown>, label: string): Promise<void> {
  let error: unknown;
  try {
    await call();
  } catch (err) {
    error = err;
  }
  expect(String(error), label).to.match(/^ReplyError: BOOKARGS /);
}

export interface RedisBook {
  bids: Record<string, string>;
  asks: Record<string, string>;
}

/** The full book in Redis; checks that each side's index holds exactly its prices, scored by their value. */
export async function readBook(redis: RedisClient, symbol: string): Promise<RedisBook> {
  const out: RedisBook = { bids: {}, asks: {} };
  for (const side of ['bids', 'asks'] as const) {
    const levels = await redis.hgetall(keys.bookLevels(symbol, side));
    const index = await redis.zrange(keys.bookIndex(symbol, side), 0, -1, 'WITHSCORES');
    const members: string[] = [];
    for (let i = 0; i < index.length; i += 2) {
      const member = index[i]!;
      members.push(member);
      expect(Number(index[i + 1]), `${side} score of ${member}`).to.equal(Number(member));
    }
    expect(members.slice().sort(), `${symbol} ${side} index = hash fields`).to.deep.equal(
      Object.keys(levels).sort(),
    );
    out[side] = Object.fromEntries(Object.entries(levels).sort(([a], [b]) => a.localeCompare(b)));
  }
  return out;
}

export function sorted(map: ReadonlyMap<string, string>): Record<string, string> {
  return Object.fromEntries([...map.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

/** Redis equals the reference: both sides of the full book, ob:, the state, the buffer. */
export async function expectReference(redis: RedisClient, symbol: string, ref: ReferenceBook, label: string) {
  const book = await readBook(redis, symbol);
  expect(book.bids, `${label}: bids`).to.deep.equal(sorted(ref.bids));
  expect(book.asks, `${label}: asks`).to.deep.equal(sorted(ref.asks));

  const ob = await redis.hgetall(keys.orderBook(symbol));
  const expected = Object.fromEntries(ref.ob);
  expect(Object.keys(ob).sort(), `${label}: ob fields`).to.deep.equal(Object.keys(expected).sort());
  for (const [field, value] of Object.entries(expected)) {
    if (METRICS.has(field)) {
      expect(Number(ob[field]), `${label}: ${field} ${ob[field]}`).to.equal(Number(value));
      expect(Number.isFinite(Number(ob[field]))).to.equal(true);
    } else expect(ob[field], `${label}: ob ${field}`).to.equal(value);
  }

  const state = await redis.hgetall(keys.bookState(symbol));
  const view = ref.stateView();
  const defaults: Record<string, string> = { gaps: '0', crossed: '0', buffer_overflow: '0', buffered: '0' };
  const actual = Object.fromEntries(Object.keys(view).map((k) => [k, state[k] ?? defaults[k] ?? '']));
  if (Object.keys(state).length === 0)
    Object.assign(actual, { status: 'out_of_sync', reason: 'no_snapshot' });
  expect(actual, `${label}: state`).to.deep.equal(view);

  const buffer = await redis.lrange(keys.diffBuffer(symbol), 0, -1);
  expect(
    buffer.map((entry) => entry.split(' ').slice(0, 3).join(' ')),
    `${label}: buffer`,
  ).to.deep.equal(ref.buffer.map((d) => `${d.firstBookUpdateId} ${d.lastBookUpdateId} ${d.eventTime}`));
  // Each entry's levels, parsed here independently of the encoder.
  buffer.forEach((entry, i) => {
    const d = ref.buffer[i]!;
    const parts = entry.split(' ');
    const nBids = Number(parts[3]);
    const pairs: string[][] = [];
    for (let k = 4; k < parts.length; k += 2) pairs.push([parts[k]!, parts[k + 1]!]);
    const fmt = (l: PriceLevel) => [
      canonical8(l.priceMantissa, d.priceExponent),
      canonical8(l.qtyMantissa, d.qtyExponent),
    ];
    expect(pairs.slice(0, nBids)).to.deep.equal(d.bids.map(fmt));
    expect(pairs.slice(nBids)).to.deep.equal(d.asks.map(fmt));
  });
}

export function expectBatchResult(
  actual: DepthBatchResult,
  ref: ReferenceBook,
  expected: ReturnType<ReferenceBook['applyDepthBatch']>,
  label: string,
) {
  expect(
    {
      applied: actual.applied,
      ignored: actual.ignored,
      buffered: actual.buffered,
      gap: actual.gap,
      crossed: actual.crossed,
      overflow: actual.overflow,
      status: actual.status,
      reason: actual.reason,
      bookUpdateId: actual.bookUpdateId,
      bufferLength: actual.bufferLength,
    },
    label,
  ).to.deep.equal({
    ...expected,
    status: ref.status,
    reason: ref.reason,
    bookUpdateId: ref.bookId,
    bufferLength: ref.buffer.length,
  });
}

/** A redis-server for one test file and a client of it (flushed by the file before each test). */
export async function startBookRedis(name: string): Promise<{ server: TestRedis; redis: RedisClient }> {
  const server = await startTestRedis(name);
  const redis = createRedisClient(parseConfig({ redis: { port: server.port } }).redis, {
    connectionName: name,
  });
  return { server, redis };
}

/**
 * Registers a test file's hooks: a redis-server with the scripts before all (`onReady` gets its client), the
 * database flushed before each test, the client and server stopped after all.
 */
export function useBookRedis(name: string, onReady: (redis: RedisClient) => void): void {
  let started: { server: TestRedis; redis: RedisClient } | undefined;
  before(async () => {
    started = await startBookRedis(name);
    onReady(started.redis);
  });
  after(async () => {
    started?.redis.disconnect();
    await started?.server.stop();
  });
  beforeEach(async () => {
    await started?.redis.flushdb();
  });
}

/** depthBoth on a given client: what a test file calls (its client is made in its before hook). */
export type DepthBoth = (
  symbol: string,
  messages: SbeMessage[],
  ref: ReferenceBook,
  label: string,
  bufferMaxLength?: number,
) => Promise<DepthBatchResult>;

/** Applies one depth batch of one symbol to Redis and the reference and compares the replies. */
export async function depthBoth(
  redis: RedisClient,
  symbol: string,
  messages: SbeMessage[],
  ref: ReferenceBook,
  label: string,
  bufferMaxLength?: number,
): Promise<DepthBatchResult> {
  const options = { levels: LEVELS, ...(bufferMaxLength === undefined ? {} : { bufferMaxLength }) };
  const actual = await applyBookBatch(redis, keys, symbol, messages, options);
  const expected = ref.applyDepthBatch(messages);
  expectBatchResult(actual, ref, expected, label);
  return actual;
}
