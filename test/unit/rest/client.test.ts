import { expect } from 'chai';
import { isRetryable } from '../../../src/common/errors';
import {
  DEFAULT_BAN_MS,
  RestBannedError,
  RestBudgetError,
  RestClient,
  RestHttpError,
  RestNetworkError,
  RestTimeoutError,
  RestValidationError,
  WeightBudget,
  depthWeight,
  parseRetryAfter,
} from '../../../src/rest/client';
import type { FetchLike, RestClientOptions, RestGate } from '../../../src/rest/client';

type Scripted = { status: number; body: string; headers?: Record<string, string> } | 'hang' | Error;

interface Harness {
  client: RestClient;
  calls: { url: string; headers: Record<string, string> }[];
  sleeps: number[];
  clock: { t: number };
}

function harness(script: Scripted[], opts: Partial<RestClientOptions> = {}): Harness {
  const calls: Harness['calls'] = [];
  const sleeps: number[] = [];
  const clock = { t: 1_700_000_000_000 };
  const fetch: FetchLike = (url, init) => {
    calls.push({ url, headers: init.headers });
    const next = script.shift();
    if (next === undefined) return Promise.reject(new Error('fake fetch: no scripted response left'));
    if (next === 'hang') {
      return new Promise((_resolve, reject) => {
        init.signal.addEventListener('abort', () => reject(new Error('aborted')));
      });
    }
    if (next instanceof Error) return Promise.reject(next);
    const headers = new Map(Object.entries(next.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    return Promise.resolve({
      status: next.status,
      headers: { get: (name: string) => headers.get(name.toLowerCase()) ?? null },
      text: () => Promise.resolve(next.body),
    });
  };
  const client = new RestClient({
    baseUrl: 'http://exchange.test',
    fetch,
    sleep: (ms) => {
      sleeps.push(ms);
      clock.t += ms;
      return Promise.resolve();
    },
    now: () => clock.t,
    rng: () => 0.5,
    ...opts,
  });
  return { client, calls, sleeps, clock };
}

const ok = (body: unknown): Scripted => ({ status: 200, body: JSON.stringify(body) });

const BOOK = {
  lastUpdateId: 1027024,
  bids: [
    ['60000.01000000', '0.12345678'],
    ['59999.99', '2'],
  ],
  asks: [
    ['60000.02', '0.00000001'],
    ['60001', '10.5'],
  ],
};

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

async function validationError(body: unknown, limit = 5, raw = false): Promise<RestValidationError> {
  const h = harness([raw ? { status: 200, body: body as string } : ok(body)]);
  const err = await rejection(h.client.getDepth('BTCUSDT', limit));
  expect(err).to.be.instanceOf(RestValidationError);
  expect(h.calls).to.have.length(1); // validation errors are not retried
  return err as RestValidationError;
}

async function tradesValidationError(body: unknown, limit = 5): Promise<RestValidationError> {
  const h = harness([ok(body)]);
  const err = await rejection(h.client.getTrades('BTCUSDT', limit));
  expect(err).to.be.instanceOf(RestValidationError);
  return err as RestValidationError;
}

const T0 = 1_700_000_000_123_456;
const trade = (id: number, over: Record<string, unknown> = {}): Record<string, unknown> => ({
  id,
  price: '60000.01',
  qty: '0.001',
  quoteQty: '60.00001',
  time: T0 + id,
  isBuyerMaker: false,
  isBestMatch: true,
  ...over,
});

describe('rest/client', () => {
  describe('getDepth', () => {
    it('requests the path with the time-unit header and parses exact mantissas at -8', async () => {
      const h = harness([ok(BOOK)]);
      const snap = await h.client.getDepth('BTCUSDT', 5);
      expect(h.calls[0]?.url).to.equal('http://exchange.test/api/v3/depth?symbol=BTCUSDT&limit=5');
      expect(h.calls[0]?.headers['X-MBX-TIME-UNIT']).to.equal('MICROSECOND');
      expect(snap).to.deep.equal({
        lastUpdateId: 1027024n,
        priceExponent: -8,
        qtyExponent: -8,
        bids: [
          { priceMantissa: 6000001000000n, qtyMantissa: 12345678n },
          { priceMantissa: 5999999000000n, qtyMantissa: 200000000n },
        ],
        asks: [
          { priceMantissa: 6000002000000n, qtyMantissa: 1n },
          { priceMantissa: 6000100000000n, qtyMantissa: 1050000000n },
        ],
        timeUs: 1_700_000_000_000_000n,
      });
    });

    it('uses the configured exponents and rejects a price needing more digits', async () => {
      const h = harness([ok(BOOK)], { priceExponent: -2, qtyExponent: -8 });
      const snap = await h.client.getDepth('BTCUSDT', 5);
      expect(snap.bids[0]?.priceMantissa).to.equal(6000001n);
      const h2 = harness([ok({ ...BOOK, bids: [['60000.001', '1']] })], { priceExponent: -2 });
      const err = await rejection(h2.client.getDepth('BTCUSDT', 5));
      expect((err as RestValidationError).field).to.equal('bids[0].price');
      expect((err as RestValidationError).problem).to.match(/more than 2 fraction digits/);
    });

    it('accepts an empty book', async () => {
      const h = harness([ok({ lastUpdateId: 1, bids: [], asks: [] })]);
      const snap = await h.client.getDepth('BTCUSDT', 5);
      expect(snap.bids).to.deep.equal([]);
    });

    const cases: [string, unknown, string, RegExp][] = [
      ['not an object', [1, 2], 'body', /not a JSON object/],
      ['missing lastUpdateId', { bids: [], asks: [] }, 'lastUpdateId', /missing/],
      ['lastUpdateId as a string', { ...BOOK, lastUpdateId: '5' }, 'lastUpdateId', /not an integer/],
      ['negative lastUpdateId', { ...BOOK, lastUpdateId: -1 }, 'lastUpdateId', /negative/],
      ['lastUpdateId beyond 2^53', { ...BOOK, lastUpdateId: 2 ** 60 }, 'lastUpdateId', /exceeds 2\^53/],
      ['missing bids', { lastUpdateId: 1, asks: [] }, 'bids', /missing/],
      ['asks not an array', { lastUpdateId: 1, bids: [], asks: {} }, 'asks', /not an array/],
      ['a level not a pair', { ...BOOK, asks: [['1', '2', '3']] }, 'asks[0]', /not a \[price, qty\] pair/],
      ['a numeric price', { ...BOOK, bids: [[60000, '1']] }, 'bids[0].price', /not a decimal string/],
      ['a non-decimal price', { ...BOOK, bids: [['6e4', '1']] }, 'bids[0].price', /exponent notation/],
      ['a garbage qty', { ...BOOK, asks: [['60001', 'abc']] }, 'asks[0].qty', /not a plain decimal/],
      ['a negative qty', { ...BOOK, bids: [['60000', '-1']] }, 'bids[0].qty', /negative/],
      ['a negative price', { ...BOOK, bids: [['-60000', '1']] }, 'bids[0].price', /negative/],
      ['a zero qty', { ...BOOK, asks: [['60001', '0.000']] }, 'asks[0].qty', /zero/],
      [
        'bids ascending',
        {
          ...BOOK,
          bids: [
            ['59999', '1'],
            ['60000', '1'],
          ],
        },
        'bids[1].price',
        /not strictly descending/,
      ],
      [
        'asks descending',
        {
          ...BOOK,
          asks: [
            ['60002', '1'],
            ['60001', '1'],
          ],
        },
        'asks[1].price',
        /not strictly ascending/,
      ],
      [
        'a duplicated price (written differently)',
        {
          ...BOOK,
          asks: [
            ['60002', '1'],
            ['60002.000', '2'],
          ],
        },
        'asks[1].price',
        /duplicated price/,
      ],
      [
        'a crossed book',
        { ...BOOK, asks: [['59999.5', '1']] },
        'book',
        /crossed: best bid 60000.01000000 >= best ask 59999.5/,
      ],
      ['a locked book (bid = ask)', { ...BOOK, asks: [['60000.01', '1']] }, 'book', /crossed/],
    ];
    for (const [name, body, field, problem] of cases) {
      it(`rejects ${name}`, async () => {
        const err = await validationError(body);
        expect(err.field).to.equal(field);
        expect(err.problem).to.match(problem);
        expect(err.message).to.contain('/api/v3/depth');
        expect(isRetryable(err)).to.equal(false);
      });
    }

    it('rejects a body that is not JSON, quoting it', async () => {
      const err = await validationError('<html>oops</html>', 5, true);
      expect(err.field).to.equal('body');
      expect(err.problem).to.match(/not JSON .*<html>oops<\/html>/);
    });

    it('rejects more levels than asked for', async () => {
      const err = await validationError(BOOK, 1);
      expect(err.field).to.equal('bids');
      expect(err.problem).to.equal('2 levels, more than the 1 asked for');
    });

    it('rejects bad arguments before sending anything', async () => {
      const h = harness([]);
      for (const limit of [0, 5001, 1.5]) {
        expect(await rejection(h.client.getDepth('BTCUSDT', limit))).to.be.instanceOf(RangeError);
      }
      expect(await rejection(h.client.getDepth('btc usdt', 5))).to.be.instanceOf(RangeError);
      expect(await rejection(h.client.getTrades('BTCUSDT', 1001))).to.be.instanceOf(RangeError);
      expect(h.calls).to.have.length(0);
    });
  });

  describe('getTrades', () => {
    it('parses trades exactly and groups same-time same-side trades into TradesStreamEvents', async () => {
      const h = harness([
        ok([
          trade(10, { time: T0 }),
          trade(11, { time: T0, price: '60000.02', qty: '0.5' }),
          trade(12, { time: T0, isBuyerMaker: true }),
          trade(13, { time: T0 + 7, isBuyerMaker: true }),
        ]),
      ]);
      const events = await h.client.getTrades('BTCUSDT', 10);
      expect(h.calls[0]?.url).to.equal('http://exchange.test/api/v3/trades?symbol=BTCUSDT&limit=10');
      expect(h.calls[0]?.headers['X-MBX-TIME-UNIT']).to.equal('MICROSECOND');
      expect(events.map((e) => e.trades.map((t) => t.id))).to.deep.equal([[10n, 11n], [12n], [13n]]);
      expect(events[0]).to.deep.equal({
        message: 'TradesStreamEvent',
        eventTime: BigInt(T0),
        transactTime: BigInt(T0),
        priceExponent: -8,
        qtyExponent: -8,
        symbol: 'BTCUSDT',
        trades: [
          {
            id: 10n,
            priceMantissa: 6000001000000n,
            qtyMantissa: 100000n,
            isBuyerMaker: false,
            isBestMatch: true,
          },
          {
            id: 11n,
            priceMantissa: 6000002000000n,
            qtyMantissa: 50000000n,
            isBuyerMaker: false,
            isBestMatch: true,
          },
        ],
      });
      expect(events[2]?.transactTime).to.equal(BigInt(T0 + 7));
    });

    const cases: [string, unknown, string, RegExp][] = [
      ['an object body', { id: 1 }, 'body', /not a JSON array/],
      [
        'more trades than asked',
        [1, 2, 3, 4, 5, 6].map((i) => trade(i)),
        'body',
        /6 trades, more than the 5/,
      ],
      ['a missing id', [trade(1, { id: undefined })], 'trades[0].id', /missing/],
      ['a non-increasing id', [trade(5), trade(5)], 'trades[1].id', /not strictly increasing/],
      ['a decreasing id', [trade(5), trade(4, { time: T0 + 6 })], 'trades[1].id', /not strictly increasing/],
      ['a bad price', [trade(1, { price: '1,5' })], 'trades[0].price', /not a plain decimal/],
      ['a negative qty', [trade(1, { qty: '-0.1' })], 'trades[0].qty', /negative/],
      ['a bad quoteQty', [trade(1, { quoteQty: 12 })], 'trades[0].quoteQty', /not a non-negative decimal/],
      ['millisecond times', [trade(1, { time: 1_700_000_000_123 })], 'trades[0].time', /not in microseconds/],
      ['time going backwards', [trade(1), trade(2, { time: T0 })], 'trades[1].time', /goes backwards/],
      [
        'a non-boolean isBuyerMaker',
        [trade(1, { isBuyerMaker: 'true' })],
        'trades[0].isBuyerMaker',
        /not a boolean/,
      ],
      ['a non-object trade', [7], 'trades[0]', /not an object/],
    ];
    for (const [name, body, field, problem] of cases) {
      it(`rejects ${name}`, async () => {
        const err = await tradesValidationError(body);
        expect(err.field).to.equal(field);
        expect(err.problem).to.match(problem);
      });
    }
  });

  describe('retries', () => {
    it('retries 5xx and network errors with exponential backoff and jitter from the rng', async () => {
      const h = harness(
        [{ status: 500, body: 'boom' }, new TypeError('fetch failed'), { status: 503, body: '' }, ok(BOOK)],
        {
          backoffBaseMs: 100,
          rng: () => 0,
        },
      );
      const snap = await h.client.getDepth('BTCUSDT', 5);
      expect(snap.lastUpdateId).to.equal(1027024n);
      // rng 0 -> 50 % of min(max, 100 x 2^n)
      expect(h.sleeps).to.deep.equal([50, 100, 200]);
    });

    it('jitter stays within [50 %, 100 %] of the capped exponential', () => {
      const hi = harness([], { backoffBaseMs: 100, backoffMaxMs: 1000, rng: () => 0.999999 }).client;
      expect([0, 1, 2, 3, 4, 10].map((n) => hi.backoffMs(n))).to.deep.equal([100, 200, 400, 800, 1000, 1000]);
      const mid = harness([], { backoffBaseMs: 100, rng: () => 0.5 }).client;
      expect(mid.backoffMs(1)).to.equal(150);
    });

    it('gives up after maxRetries with the last error', async () => {
      const h = harness(
        [
          { status: 502, body: 'a' },
          { status: 502, body: 'b' },
          { status: 502, body: 'c' },
        ],
        { maxRetries: 2 },
      );
      const err = await rejection(h.client.getDepth('BTCUSDT', 5));
      expect(err).to.be.instanceOf(RestHttpError);
      expect((err as RestHttpError).status).to.equal(502);
      expect((err as RestHttpError).bodyExcerpt).to.equal('c');
      expect(h.calls).to.have.length(3);
      expect(h.sleeps).to.have.length(2);
      expect(isRetryable(err)).to.equal(true);
    });

    it('does not retry a 4xx other than 429', async () => {
      const h = harness([{ status: 400, body: '{"code":-1121,"msg":"Invalid symbol."}' }]);
      const err = await rejection(h.client.getDepth('BTCUSDT', 5));
      expect((err as RestHttpError).status).to.equal(400);
      expect(err.message).to.contain('Invalid symbol.');
      expect(h.calls).to.have.length(1);
      expect(isRetryable(err)).to.equal(false);
    });

    it('truncates a long error body to an excerpt', async () => {
      const h = harness([{ status: 400, body: 'x'.repeat(5000) }]);
      const err = (await rejection(h.client.getDepth('BTCUSDT', 5))) as RestHttpError;
      expect(err.bodyExcerpt.length).to.be.lessThan(220);
    });

    it('honours a 429 Retry-After (seconds) instead of the backoff', async () => {
      const h = harness([{ status: 429, body: 'slow down', headers: { 'Retry-After': '3' } }, ok(BOOK)]);
      await h.client.getDepth('BTCUSDT', 5);
      expect(h.sleeps).to.deep.equal([3000]);
    });

    it('honours a 418 Retry-After within the maximum, and fails on a 418 without one', async () => {
      const h = harness([{ status: 418, body: 'banned', headers: { 'Retry-After': '2' } }, ok(BOOK)]);
      await h.client.getDepth('BTCUSDT', 5);
      expect(h.sleeps).to.deep.equal([2000]);
      const h2 = harness([{ status: 418, body: 'banned' }]);
      const err = await rejection(h2.client.getDepth('BTCUSDT', 5));
      expect((err as RestHttpError).status).to.equal(418);
      expect(isRetryable(err)).to.equal(false);
      expect(h2.calls).to.have.length(1);
    });

    it('does not wait for a Retry-After beyond maxRetryAfterMs: a RestHttpError says so', async () => {
      const h = harness([{ status: 429, body: 'slow down', headers: { 'Retry-After': '120' } }], {
        maxRetryAfterMs: 10_000,
      });
      const err = await rejection(h.client.getDepth('BTCUSDT', 5));
      expect(err).to.be.instanceOf(RestHttpError);
      expect((err as RestHttpError).retryAfterMs).to.equal(120_000);
      expect(err.message).to.match(/Retry-After exceeds the maximum wait of 10000 ms/);
      expect(h.sleeps).to.deep.equal([]);
    });

    it('remembers a 429 Retry-After beyond the maximum wait as a ban: nothing is sent until it ends', async () => {
      const h = harness([{ status: 429, body: 'slow down', headers: { 'Retry-After': '120' } }, ok(BOOK)], {
        maxRetryAfterMs: 10_000,
      });
      await rejection(h.client.getDepth('BTCUSDT', 5));
      const banned = await rejection(h.client.getDepth('BTCUSDT', 5));
      expect(banned).to.be.instanceOf(RestBannedError);
      expect(banned).to.include({ untilMs: h.clock.t + 120_000, status: 429 });
      expect(isRetryable(banned)).to.equal(false);
      expect(h.calls, 'a request during the ban').to.have.length(1);
      h.clock.t += 120_001;
      await h.client.getDepth('BTCUSDT', 5);
      expect(h.calls).to.have.length(2);
    });

    it('a 418 without Retry-After bans for the shortest Binance ban', async () => {
      const h = harness([{ status: 418, body: 'banned' }]);
      await rejection(h.client.getDepth('BTCUSDT', 5));
      const banned = await rejection(h.client.getTrades('BTCUSDT', 5));
      expect(banned)
        .to.be.instanceOf(RestBannedError)
        .and.to.include({ untilMs: h.clock.t + DEFAULT_BAN_MS });
      expect(h.calls).to.have.length(1);
    });

    it('a gate shares bans and the weight budget: a ban set through one client stops another', async () => {
      let sharedBan: { untilMs: number; status: number | undefined } | undefined;
      const reserved: Array<[number, number]> = [];
      const gate: RestGate = {
        bannedUntil: () => Promise.resolve(sharedBan),
        ban: (untilMs, status) => {
          sharedBan = { untilMs, status };
          return Promise.resolve();
        },
        reserve: (weight, limit) => {
          reserved.push([weight, limit]);
          return Promise.resolve(reserved.length > 3 ? 5_000 : 0);
        },
      };
      const a = harness([{ status: 418, body: 'banned', headers: { 'Retry-After': '60' } }], {
        gate,
        maxRetryAfterMs: 1000,
        weightPerMinute: 300,
      });
      const b = harness([ok(BOOK), ok(BOOK), ok(BOOK)], {
        gate,
        weightPerMinute: 300,
        onBudgetExhausted: 'fail',
      });
      b.clock.t = a.clock.t;
      await rejection(a.client.getDepth('BTCUSDT', 5));
      expect(sharedBan).to.deep.equal({ untilMs: a.clock.t + 60_000, status: 418 });
      expect(await rejection(b.client.getDepth('BTCUSDT', 5))).to.be.instanceOf(RestBannedError);
      expect(b.calls, 'the other client sent during the ban').to.have.length(0);
      b.clock.t += 60_001;
      await b.client.getDepth('BTCUSDT', 5);
      await b.client.getDepth('BTCUSDT', 5);
      expect(reserved).to.deep.equal([
        [5, 300],
        [5, 300],
        [5, 300],
      ]);
      expect(b.client.budget.used(), 'charged in the gate, not in the client').to.equal(0);
      const spent = await rejection(b.client.getDepth('BTCUSDT', 5));
      expect(spent).to.be.instanceOf(RestBudgetError).and.to.include({ used: undefined, waitMs: 5_000 });
      expect(spent.message).to.match(/the fleet's 300 per minute are spent, room in 5000 ms/);
      expect(b.calls).to.have.length(2);
    });

    it('backs off on a 429 without Retry-After', async () => {
      const h = harness([{ status: 429, body: '' }, ok(BOOK)], { backoffBaseMs: 100, rng: () => 0 });
      await h.client.getDepth('BTCUSDT', 5);
      expect(h.sleeps).to.deep.equal([50]);
    });

    it('parseRetryAfter reads delta-seconds only', () => {
      expect(parseRetryAfter('1')).to.equal(1000);
      expect(parseRetryAfter(' 0.5 ')).to.equal(500);
      expect(parseRetryAfter(null)).to.equal(undefined);
      expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT')).to.equal(undefined);
      expect(parseRetryAfter('-1')).to.equal(undefined);
    });
  });

  describe('timeouts', () => {
    it('aborts a hanging request after timeoutMs with RestTimeoutError, then retries', async () => {
      const h = harness(['hang', ok(BOOK)], { timeoutMs: 20 });
      const started = Date.now();
      const snap = await h.client.getDepth('BTCUSDT', 5);
      expect(Date.now() - started).to.be.at.least(15);
      expect(snap.lastUpdateId).to.equal(1027024n);
      expect(h.calls).to.have.length(2);
    });

    it('throws RestTimeoutError when every attempt hangs', async () => {
      const h = harness(['hang', 'hang'], { timeoutMs: 10, maxRetries: 1 });
      const err = await rejection(h.client.getTrades('BTCUSDT', 5));
      expect(err).to.be.instanceOf(RestTimeoutError);
      expect((err as RestTimeoutError).timeoutMs).to.equal(10);
      expect(isRetryable(err)).to.equal(true);
    });

    it('wraps a network failure in RestNetworkError', async () => {
      const h = harness([new TypeError('fetch failed')], { maxRetries: 0 });
      const err = await rejection(h.client.getDepth('BTCUSDT', 5));
      expect(err).to.be.instanceOf(RestNetworkError);
      expect(err.message).to.contain('fetch failed');
    });
  });

  describe('weight budget', () => {
    it('weights depth by limit as Binance does', () => {
      expect([1, 100, 101, 500, 501, 1000, 1001, 5000].map(depthWeight)).to.deep.equal([
        5, 5, 25, 25, 50, 50, 250, 250,
      ]);
    });

    it('fail mode: throws RestBudgetError once the minute is spent, without sending', async () => {
      const h = harness([ok([]), ok([])], { weightPerMinute: 60, onBudgetExhausted: 'fail' });
      await h.client.getTrades('BTCUSDT', 5); // 25
      await h.client.getTrades('BTCUSDT', 5); // 50
      const err = await rejection(h.client.getTrades('BTCUSDT', 5));
      expect(err).to.be.instanceOf(RestBudgetError);
      expect((err as RestBudgetError).used).to.equal(50);
      expect((err as RestBudgetError).waitMs).to.equal(60_000);
      expect(isRetryable(err)).to.equal(false);
      expect(h.calls).to.have.length(2);
    });

    it('wait mode: sleeps until the oldest charges leave the sliding window', async () => {
      const h = harness([ok([]), ok([]), ok([])], { weightPerMinute: 60 });
      await h.client.getTrades('BTCUSDT', 5);
      h.clock.t += 10_000;
      await h.client.getTrades('BTCUSDT', 5);
      h.clock.t += 5_000;
      await h.client.getTrades('BTCUSDT', 5);
      expect(h.sleeps).to.deep.equal([45_000]); // first charge (t0) expires at t0 + 60 s; now is t0 + 15 s
      expect(h.client.budget.used()).to.equal(50);
    });

    it('wait mode: a wait beyond maxBudgetWaitMs fails fast', async () => {
      const h = harness([ok([])], { weightPerMinute: 30, maxBudgetWaitMs: 1000 });
      await h.client.getTrades('BTCUSDT', 5);
      const err = await rejection(h.client.getTrades('BTCUSDT', 5));
      expect(err).to.be.instanceOf(RestBudgetError);
    });

    it('a request heavier than the whole budget never fits', async () => {
      const h = harness([], { weightPerMinute: 100 });
      const err = await rejection(h.client.getDepth('BTCUSDT', 5000));
      expect(err).to.be.instanceOf(RestBudgetError);
      expect(err.message).to.match(/never fits/);
    });

    it('every attempt, retried or not, is charged', async () => {
      const h = harness([{ status: 500, body: '' }, ok(BOOK)]);
      await h.client.getDepth('BTCUSDT', 1000);
      expect(h.client.budget.used()).to.equal(100);
    });

    it('WeightBudget slides: charges older than a minute stop counting', () => {
      let t = 0;
      const b = new WeightBudget(100, () => t);
      b.charge(60);
      t = 30_000;
      b.charge(30);
      expect(b.waitFor(20)).to.equal(30_000);
      t = 60_000;
      expect(b.used()).to.equal(30);
      expect(b.waitFor(70)).to.equal(0);
    });
  });

  it('validates options', () => {
    expect(() => new RestClient({ baseUrl: 'ftp://x' })).to.throw(RangeError, /baseUrl/);
    expect(() => new RestClient({ baseUrl: 'http://x/api' })).to.throw(RangeError, /baseUrl/);
    expect(() => new RestClient({ baseUrl: 'http://x', priceExponent: 2 })).to.throw(
      RangeError,
      /priceExponent/,
    );
    expect(() => new RestClient({ baseUrl: 'http://x', timeoutMs: -1 })).to.throw(RangeError, /timeoutMs/);
    expect(() => new RestClient({ baseUrl: 'http://x', weightPerMinute: 0 })).to.throw(
      RangeError,
      /weightPerMinute/,
    );
    expect(new RestClient({ baseUrl: 'http://127.0.0.1:8080/' })).to.be.instanceOf(RestClient);
  });
});
