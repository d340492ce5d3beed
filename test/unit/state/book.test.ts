import { expect } from 'chai';
import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  TradesStreamEvent,
} from '../../../src/sbe/messages';
import type { RedisClient } from '../../../src/state/redis';
import {
  anchorArgs,
  anchorBook,
  applyBestBidAskBatch,
  applyBookBatch,
  BookScriptError,
  anchorKeys,
  bestBidAskArgs,
  bestBidAskKeys,
  BookArgumentError,
  bookMetrics,
  decimalMid,
  decimalSpread,
  DEFAULT_BUFFER_MAX_LENGTH,
  depthBatchArgs,
  depthBatchKeys,
  depthChunkArgs,
  planDepthCalls,
  encodeDiff,
  encodeTopLevels,
  netEffect,
} from '../../../src/state/book';
import { Keys } from '../../../src/state/keys';
import { loadScriptSources } from '../../../src/state/redis';

// Pure parts of the order-book module: exact decimal helpers, metrics, argument builders and their layouts.

const S = 'BTCUSDT';

function lv(price: bigint, qty: bigint): PriceLevel {
  return { priceMantissa: price, qtyMantissa: qty };
}

function diff(
  U: bigint,
  u: bigint,
  bids: PriceLevel[],
  asks: PriceLevel[],
  eventTime = u * 10n,
  symbol = S,
): DepthDiffStreamEvent {
  return {
    message: 'DepthDiffStreamEvent',
    eventTime,
    firstBookUpdateId: U,
    lastBookUpdateId: u,
    priceExponent: -2,
    qtyExponent: -3,
    bids,
    asks,
    symbol,
  };
}

function depth20(
  id: bigint,
  bids: PriceLevel[],
  asks: PriceLevel[],
  eventTime = id * 10n,
): DepthSnapshotStreamEvent {
  return {
    message: 'DepthSnapshotStreamEvent',
    eventTime,
    bookUpdateId: id,
    priceExponent: -2,
    qtyExponent: -3,
    bids,
    asks,
    symbol: S,
  };
}

function bba(id: bigint, bid: bigint, ask: bigint, eventTime = id * 10n, symbol = S): BestBidAskStreamEvent {
  return {
    message: 'BestBidAskStreamEvent',
    eventTime,
    bookUpdateId: id,
    priceExponent: -2,
    qtyExponent: -3,
    bidPriceMantissa: bid,
    bidQtyMantissa: 1500n,
    askPriceMantissa: ask,
    askQtyMantissa: 25n,
    symbol,
  };
}

const trade: TradesStreamEvent = {
  message: 'TradesStreamEvent',
  eventTime: 99_999n,
  transactTime: 99_999n,
  priceExponent: -2,
  qtyExponent: -3,
  trades: [{ id: 1n, priceMantissa: 1n, qtyMantissa: 1n, isBuyerMaker: false, isBestMatch: true }],
  symbol: S,
};

describe('order book: exact decimal helpers', () => {
  it('spread = ask - bid at the prices scale, trailing zeros kept', () => {
    expect(decimalSpread('60000.00', '60000.01')).to.equal('0.01');
    expect(decimalSpread('59786.55000000', '59786.56000000')).to.equal('0.01000000');
    expect(decimalSpread('0.35210000', '0.35260000')).to.equal('0.00050000');
    expect(decimalSpread('100', '105')).to.equal('5');
  });

  it('spread of equal prices is an unsigned zero; a crossed book gives a negative spread', () => {
    expect(decimalSpread('60000.00', '60000.00')).to.equal('0.00');
    expect(decimalSpread('60000.02', '60000.01')).to.equal('-0.01');
  });

  it('mid = (bid + ask) / 2, exact, with one more decimal only when needed', () => {
    expect(decimalMid('60000.00', '60000.01')).to.equal('60000.005');
    expect(decimalMid('60000.00', '60000.02')).to.equal('60000.01');
    expect(decimalMid('60000.00000000', '60000.01000000')).to.equal('60000.00500000');
    expect(decimalMid('0.00000001', '0.00000002')).to.equal('0.000000015');
    expect(decimalMid('1', '2')).to.equal('1.5');
    expect(decimalMid('1', '3')).to.equal('2');
  });

  it('aligns different scales', () => {
    expect(decimalSpread('1.5', '1.75')).to.equal('0.25');
    expect(decimalMid('1.5', '1.75')).to.equal('1.625');
    expect(decimalSpread('10', '10.001')).to.equal('0.001');
  });

  it('stays exact far beyond 2^53', () => {
    const bid = '92233720368.54775807';
    const ask = '92233720368.54775810';
    expect(decimalSpread(bid, ask)).to.equal('0.00000003');
    expect(decimalMid(bid, ask)).to.equal('92233720368.547758085');
    expect(decimalMid('123456789012345678901234567890', '123456789012345678901234567891')).to.equal(
      '123456789012345678901234567890.5',
    );
  });

  it('refuses what is not a plain decimal', () => {
    expect(() => decimalMid('1e5', '2')).to.throw(RangeError, 'not a plain decimal: "1e5"');
    expect(() => decimalSpread('', '2')).to.throw(RangeError);
  });
});

describe('order book: metrics', () => {
  it('imbalance and strengths over the top N', () => {
    const m = bookMetrics(['1', '2', '3'], ['4'], 2);
    // top 2: bids 1 + 2 = 3, asks 4; strengths 1/1 + 2/2 = 2 and 4/1 = 4
    expect(m).to.deep.equal({ imbalance: (3 - 4) / 7, bidStrength: 2, askStrength: 4 });
  });

  it('both sides empty: all zero, never NaN', () => {
    expect(bookMetrics([], [], 10)).to.deep.equal({ imbalance: 0, bidStrength: 0, askStrength: 0 });
    expect(bookMetrics(['', ''], ['0.000'], 10)).to.deep.equal({
      imbalance: 0,
      bidStrength: 0,
      askStrength: 0,
    });
  });

  it('one side only: imbalance +-1', () => {
    expect(bookMetrics(['0.5'], [], 10).imbalance).to.equal(1);
    expect(bookMetrics([], ['0.5', '1.5'], 10)).to.deep.equal({
      imbalance: -1,
      bidStrength: 0,
      askStrength: 1.25,
    });
  });
});

describe('order book: argument builders', () => {
  const options = { levels: 2 };

  it('encodes a diff as "U u eventTime nBids bid pairs ask pairs" with exact strings', () => {
    expect(
      encodeDiff(diff(5n, 7n, [lv(6000001n, 0n), lv(6000000n, 1500n)], [lv(6000002n, 25n)], 123n)),
    ).to.equal('5 7 123 2 60000.01000000 0.00000000 60000.00000000 1.50000000 60000.02000000 0.02500000');
    expect(encodeDiff(diff(5n, 5n, [], []))).to.equal('5 5 50 0');
  });

  it('refuses impossible diffs and negative mantissas', () => {
    expect(() => encodeDiff(diff(8n, 7n, [], []))).to.throw(
      BookArgumentError,
      'order book BTCUSDT: depth diff U=8 u=7',
    );
    expect(() => encodeDiff(diff(1n, 2n, [lv(-1n, 1n)], []))).to.throw(BookArgumentError, 'negative price');
  });

  it('depth20 top levels are cut at N per side', () => {
    const snap = depth20(9n, [lv(300n, 1n), lv(200n, 2n), lv(100n, 3n)], [lv(400n, 4n)]);
    expect(encodeTopLevels(snap, 2)).to.equal(
      '2 3.00000000 0.00100000 2.00000000 0.00200000 4.00000000 0.00400000',
    );
    expect(encodeTopLevels(depth20(9n, [], []), 10)).to.equal('0');
  });

  it('depth batch: diffs sorted by u, duplicates dropped, newest depth20, batch time, other kinds skipped', () => {
    const d1 = diff(1n, 2n, [lv(100n, 1n)], []);
    const d2 = diff(3n, 4n, [], [lv(200n, 2n)]);
    const args = depthBatchArgs(
      S,
      [d2, trade, depth20(3n, [lv(100n, 1n)], [], 777n), d1, d2, depth20(2n, [], [], 999n)],
      options,
    );
    expect(args).to.deep.equal([
      '2',
      String(DEFAULT_BUFFER_MAX_LENGTH),
      '999', // newest event time among depth messages (the trade's 99999 is not this script's)
      '3',
      '777',
      '1 1.00000000 0.00100000',
      '2',
      '1 0 1 0',
      '1 2 20 1 1.00000000 0.00100000',
      '3 4 40 0 2.00000000 0.00200000',
      '1.00000000',
      '0.00100000',
      '2.00000000',
      '0.00200000',
    ]);
  });

  it('net effect: final quantities per price in first-seen order, removals apart', () => {
    const diffs = [
      diff(1n, 1n, [lv(100n, 1n), lv(90n, 2n)], [lv(110n, 3n)]),
      diff(2n, 3n, [lv(90n, 0n), lv(80n, 4n)], [lv(110n, 0n)]),
      diff(4n, 4n, [lv(100n, 5n), lv(70n, 0n)], [lv(110n, 6n), lv(120n, 0n)]),
    ];
    expect(netEffect(diffs)).to.deep.equal({
      counts: '2 2 1 1',
      values: [
        '1.00000000',
        '0.00500000',
        '0.80000000',
        '0.00400000',
        '0.90000000',
        '0.70000000',
        '1.10000000',
        '0.00600000',
        '1.20000000',
      ],
    });
  });

  it('no net effect when the diffs do not chain (a gap inside the batch) or there are none', () => {
    const gapped = depthBatchArgs(S, [diff(1n, 2n, [], []), diff(4n, 5n, [], [])], options);
    expect(gapped.slice(6)).to.deep.equal(['2', '', '1 2 20 0', '4 5 50 0']);
    // Overlapping diffs still chain.
    const overlapping = depthBatchArgs(S, [diff(1n, 3n, [], []), diff(2n, 5n, [], [])], options);
    expect(overlapping[7]).to.equal('0 0 0 0');
    expect(depthBatchArgs(S, [], options)).to.deep.equal(['2', '1000', '', '', '', '', '0', '']);
  });

  it('validates options and the symbol with exact messages', () => {
    expect(() => depthBatchArgs(S, [], { levels: 0 })).to.throw(
      BookArgumentError,
      'order book BTCUSDT: levels must be an integer in 1..20, got 0',
    );
    expect(() => depthBatchArgs(S, [], { levels: 10, bufferMaxLength: 0 })).to.throw(
      'bufferMaxLength must be a positive integer, got 0',
    );
    expect(() => depthBatchArgs(S, [diff(1n, 1n, [], [], 1n, 'ETHUSDT')], options)).to.throw(
      BookArgumentError,
      'order book BTCUSDT: a DepthDiffStreamEvent of ETHUSDT in its batch',
    );
  });

  it('best bid/ask batch: the newest event by id, the newest event time of the batch', () => {
    const args = bestBidAskArgs(S, [
      bba(7n, 100n, 101n, 500n),
      bba(9n, 102n, 103n, 400n),
      bba(8n, 1n, 2n, 600n),
    ]);
    expect(args).to.deep.equal(['9', '1.02000000', '1.50000000', '1.03000000', '0.02500000', '400', '600']);
    expect(bestBidAskArgs(S, [trade])).to.deep.equal(['', '', '', '', '', '', '']);
    expect(() => bestBidAskArgs(S, [bba(1n, 1n, 2n, 1n, 'ETHUSDT')])).to.throw(BookArgumentError);
  });

  it('anchor: N, lastUpdateId, time, bid count, bid pairs, ask pairs', () => {
    const snapshot = {
      lastUpdateId: 12345678901n,
      priceExponent: -8,
      qtyExponent: -8,
      bids: [lv(35210000n, 67200000000n), lv(35200000n, 1n)],
      asks: [lv(35260000n, 319900000000n)],
      timeUs: 1633998512320639n,
    };
    expect(anchorArgs(S, snapshot, { levels: 10 })).to.deep.equal([
      '10',
      '12345678901',
      '1633998512320639',
      '2',
      '0.35210000',
      '672.00000000',
      '0.35200000',
      '0.00000001',
      '0.35260000',
      '3199.00000000',
    ]);
  });
});

describe('order book: bounded calls', () => {
  const options = { levels: 2 };
  const keys = new Keys({ clusterMode: false });
  const chain = (n: number, levelsEach: number) =>
    Array.from({ length: n }, (_, i) =>
      diff(
        BigInt(i + 1),
        BigInt(i + 1),
        Array.from({ length: levelsEach }, (_v, k) => lv(BigInt(1000 + k), BigInt(i + 1))),
        [],
      ),
    );

  it('cuts at maxDiffs or before maxLevels would be exceeded; the newest depth20 rides on the last chunk', () => {
    const snap = depth20(99n, [lv(300n, 1n)], [lv(400n, 1n)], 5n);
    const chunks = planDepthCalls(S, [...chain(7, 3), snap], { maxDiffs: 3, maxLevels: 100 });
    expect(chunks.map((c) => c.diffs.map((d) => d.lastBookUpdateId))).to.deep.equal([
      [1n, 2n, 3n],
      [4n, 5n, 6n],
      [7n],
    ]);
    expect(chunks.map((c) => c.snapshot?.bookUpdateId)).to.deep.equal([undefined, undefined, 99n]);
    expect(chunks.every((c) => c.chained)).to.equal(true);
    // The last chunk carries the batch's newest event time and does the once-per-batch work; the others are parts.
    expect(chunks.map((c) => c.eventTimeUs)).to.deep.equal([undefined, undefined, 70n]);
    expect(chunks.map((c) => c.part)).to.deep.equal([true, true, false]);
    expect(depthChunkArgs(S, chunks[0]!, options, 'net')[2]).to.equal('part');
    expect(depthChunkArgs(S, chunks[2]!, options, 'net')[2]).to.equal('70');
    const byLevels = planDepthCalls(S, chain(5, 4), { maxDiffs: 100, maxLevels: 10 });
    expect(byLevels.map((c) => c.diffs.length)).to.deep.equal([2, 2, 1]);
    // A diff larger than the bound is a chunk of its own (a diff is applied whole).
    const big = planDepthCalls(S, chain(2, 30), { maxDiffs: 100, maxLevels: 10 });
    expect(big.map((c) => c.diffs.length)).to.deep.equal([1, 1]);
  });

  it('a gap inside a chunk makes it unchained (full form only); duplicates of a u are dropped', () => {
    const chunks = planDepthCalls(S, [diff(1n, 2n, [], []), diff(1n, 2n, [], []), diff(5n, 6n, [], [])]);
    expect(chunks).to.have.length(1);
    expect(chunks[0]!.diffs).to.have.length(2);
    expect(chunks[0]!.chained).to.equal(false);
    expect(() => depthChunkArgs(S, chunks[0]!, options, 'net')).to.throw(BookArgumentError, 'net form');
  });

  it('the net form is one coalesced diff: U and u of the first, u and time of the last, last write wins', () => {
    const [chunk] = planDepthCalls(S, [
      diff(5n, 6n, [lv(100n, 1n), lv(90n, 2n)], [], 60n),
      diff(7n, 9n, [lv(100n, 0n)], [lv(110n, 3n)], 90n),
    ]);
    expect(depthChunkArgs(S, chunk!, options, 'net')).to.deep.equal([
      '2',
      String(DEFAULT_BUFFER_MAX_LENGTH),
      '90',
      '',
      '',
      '',
      '2',
      'net 5 6 9 90 1 1 1 0',
      '0.90000000',
      '0.00200000',
      '1.00000000',
      '1.10000000',
      '0.00300000',
    ]);
    expect(depthChunkArgs(S, chunk!, options, 'full').slice(7, 10)).to.deep.equal([
      '1 1 1 0',
      '5 6 60 2 1.00000000 0.00100000 0.90000000 0.00200000',
      '7 9 90 1 1.00000000 0.00000000 1.10000000 0.00300000',
    ]);
  });

  it('a refused net-form call is sent again in the full form; fullForm sends the full form at once', async () => {
    const ok = [1, 0, 0, 0, 0, 0, 'in_sync', '', '6', 0, 'book', 0, 1, 0];
    const sent: string[][] = [];
    const fake = (replies: unknown[][]) =>
      ({
        applyDepthBatch: (...argv: string[]) => {
          sent.push(argv.slice(12));
          return Promise.resolve(replies.shift());
        },
      }) as unknown as RedisClient;
    const diffs = chain(2, 1);
    const result = await applyBookBatch(fake([[-1], ok]), keys, S, diffs, { levels: 2 });
    expect(sent.map((argv) => argv[7]!.split(' ')[0])).to.deep.equal(['net', '1']);
    expect(result).to.include({ calls: 2, resent: 1, applied: 1, fullFormNext: false });
    sent.length = 0;
    await applyBookBatch(fake([ok]), keys, S, diffs, { levels: 2, fullForm: true });
    expect(sent.map((argv) => argv[7])).to.deep.equal(['1 0 0 0']);
  });

  it('sums the calls of a split batch and keeps the book state of the last one', async () => {
    const replies = [
      [2, 0, 0, 0, 0, 0, 'in_sync', '', '2', 0, 'book', 0, 1, 0],
      [1, 1, 1, 1, 0, 3, 'out_of_sync', 'gap', '2', 4, '', 1, 0, 0],
    ];
    const client = {
      applyDepthBatch: () => Promise.resolve(replies.shift()),
    } as unknown as RedisClient;
    const result = await applyBookBatch(client, keys, S, chain(4, 1), {
      levels: 2,
      limits: { maxDiffs: 2, maxLevels: 100 },
    });
    expect(result).to.deep.include({
      applied: 3,
      ignored: 1,
      buffered: 1,
      gap: true,
      overflow: 3,
      status: 'out_of_sync',
      reason: 'gap',
      bufferLength: 4,
      levelsSource: 'book',
      depth20Applied: true,
      bestWritten: true,
      calls: 2,
      fullFormNext: true,
    });
  });
});

describe('order book: keys and scripts', () => {
  it('every key of a script shares the symbol hash tag in cluster mode', () => {
    const keys = new Keys({ clusterMode: true });
    for (const list of [depthBatchKeys(keys, S), bestBidAskKeys(keys, S), anchorKeys(keys, S)]) {
      for (const key of list) expect(key).to.contain('{BTCUSDT}');
    }
    expect(depthBatchKeys(new Keys({ clusterMode: false }), S)).to.deep.equal([
      'ob:BTCUSDT',
      'book:BTCUSDT:bids',
      'book:BTCUSDT:asks',
      'book:BTCUSDT:bids:idx',
      'book:BTCUSDT:asks:idx',
      'book:BTCUSDT:state',
      'book:BTCUSDT:buffer',
      'tr:BTCUSDT:1s',
      'tr:BTCUSDT:5s',
      'tr:BTCUSDT:buckets',
      'tr:BTCUSDT:state',
      'reanchor:BTCUSDT',
    ]);
    expect(anchorKeys(new Keys({ clusterMode: false }), S)).to.deep.equal(
      depthBatchKeys(new Keys({ clusterMode: false }), S).slice(0, 11),
    );
  });

  it('the scripts are discovered with as many keys as the builders give, includes expanded', () => {
    const keys = new Keys({ clusterMode: false });
    const byCommand = new Map(loadScriptSources().map((s) => [s.command, s]));
    const expected: Array<[string, number]> = [
      ['applyDepthBatch', depthBatchKeys(keys, S).length],
      ['applyBestBidAsk', bestBidAskKeys(keys, S).length],
      ['anchorBook', anchorKeys(keys, S).length],
    ];
    for (const [command, numberOfKeys] of expected) {
      const script = byCommand.get(command);
      expect(script, command).to.not.equal(undefined);
      expect(script!.numberOfKeys, command).to.equal(numberOfKeys);
      expect(script!.lua).to.contain('local Book = {}');
      expect(script!.lua).to.not.match(/^--@include/m);
      expect(script!.lua).to.not.match(/\bTIME\b|math\.random/);
    }
  });
});

describe('order book: script replies and errors (fake client)', () => {
  const keys = new Keys({ clusterMode: false });

  function client(reply: () => Promise<unknown>): RedisClient {
    return { applyDepthBatch: reply, applyBestBidAsk: reply, anchorBook: reply } as unknown as RedisClient;
  }

  async function rejection(run: () => Promise<unknown>): Promise<unknown> {
    try {
      await run();
    } catch (err) {
      return err;
    }
    throw new Error('expected a rejection');
  }

  it('an outage is rethrown unchanged (isRetryable must see it)', async () => {
    const outage = new Error('Connection is closed.');
    const err = await rejection(() =>
      applyBookBatch(
        client(() => Promise.reject(outage)),
        keys,
        S,
        [],
        { levels: 10 },
      ),
    );
    expect(err).to.equal(outage);
  });

  it('a refused argument becomes BookScriptError BOOKARGS, another error reply SCRIPT', async () => {
    const refused = await rejection(() =>
      anchorBook(
        client(() => Promise.reject(new Error('BOOKARGS lastUpdateId is not a decimal id: x'))),
        keys,
        S,
        { lastUpdateId: 1n, priceExponent: -2, qtyExponent: -2, bids: [], asks: [], timeUs: 1n },
        { levels: 10 },
      ),
    );
    expect(refused).to.be.instanceOf(BookScriptError);
    expect(refused).to.include({ script: 'anchorBook', symbol: S, code: 'BOOKARGS' });
    expect((refused as Error).message).to.equal(
      'anchorBook BTCUSDT: BOOKARGS lastUpdateId is not a decimal id: x',
    );
    const other = await rejection(() =>
      applyBestBidAskBatch(
        client(() => Promise.reject(new Error('ERR user_script:1: boom'))),
        keys,
        S,
        [],
      ),
    );
    expect(other).to.include({ script: 'applyBestBidAsk', code: 'SCRIPT' });
  });

  it('replies are typed; an unexpected shape is BookScriptError REPLY', async () => {
    const reply = [3, 1, 0, 0, 1, 0, 'out_of_sync', 'crossed', '9007199254740993', 2, '', 1, 0, 2];
    expect(
      await applyBookBatch(
        client(() => Promise.resolve(reply)),
        keys,
        S,
        [],
        { levels: 10 },
      ),
    ).to.deep.equal({
      applied: 3,
      ignored: 1,
      buffered: 0,
      kept: 2,
      gap: false,
      crossed: true,
      overflow: 0,
      status: 'out_of_sync',
      reason: 'crossed',
      bookUpdateId: 9007199254740993n,
      bufferLength: 2,
      levelsSource: undefined,
      depth20Applied: true,
      bestWritten: false,
      calls: 1,
      resent: 0,
      fullFormNext: true,
    });
    const bad = await rejection(() =>
      applyBookBatch(
        client(() => Promise.resolve([1, 2])),
        keys,
        S,
        [],
        { levels: 10 },
      ),
    );
    expect(bad).to.include({ code: 'REPLY' });
    const anchored = await anchorBook(
      client(() => Promise.resolve([-1, '', 0, 0, '41'])),
      keys,
      S,
      { lastUpdateId: 1n, priceExponent: -2, qtyExponent: -2, bids: [], asks: [], timeUs: 1n },
      { levels: 10 },
    );
    expect(anchored).to.deep.equal({
      code: -1,
      outcome: 'too_old',
      bookUpdateId: undefined,
      diffsApplied: 0,
      diffsDropped: 0,
      neededLastUpdateId: 41n,
    });
    const unknown = await rejection(() =>
      anchorBook(
        client(() => Promise.resolve([7, '', 0, 0, ''])),
        keys,
        S,
        { lastUpdateId: 1n, priceExponent: -2, qtyExponent: -2, bids: [], asks: [], timeUs: 1n },
        { levels: 10 },
      ),
    );
    expect(unknown).to.include({ code: 'REPLY' });
  });
});
