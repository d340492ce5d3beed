import { expect } from 'chai';
import { isRetryable } from '../../src/common/errors';
import { findFreePort } from '../../src/dev/localstack/ports';
import { RestClient, RestHttpError, RestTimeoutError, RestValidationError } from '../../src/rest/client';
import type { RestClientOptions } from '../../src/rest/client';
import { SimFaults, SimulatedExchange, startSimExchangeServer } from '../../src/dev/rest/sim-server';
import type { SimExchangeServer } from '../../src/dev/rest/sim-server';
import type { DepthDiffStreamEvent, DepthSnapshotStreamEvent, TradeEntry } from '../../src/sbe/messages';

const SYMBOL = 'BTCUSDT';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('rest client against the simulated exchange server', () => {
  let exchange: SimulatedExchange;
  let server: SimExchangeServer;

  beforeEach(async () => {
    exchange = new SimulatedExchange({
      seed: 7,
      symbols: [SYMBOL, 'ETHUSDT'],
      startTimeUs: 1_700_000_000_000_000n,
    });
    for (let attempt = 0; ; attempt++) {
      try {
        server = await startSimExchangeServer({
          port: await findFreePort(),
          exchange,
          faults: new SimFaults(),
        });
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  });

  afterEach(async () => {
    await server.stop();
  });

  const client = (opts: Partial<RestClientOptions> = {}): RestClient =>
    new RestClient({ baseUrl: server.url, timeoutMs: 2000, backoffBaseMs: 10, ...opts });

  function advance(n: number): void {
    for (let i = 0; i < n; i++) exchange.next();
  }

  it('fetches depth: exact, sorted, uncrossed, equal to the simulator book', async () => {
    advance(5000);
    const snap = await client().getDepth(SYMBOL, 100);
    const book = exchange.depth(SYMBOL, 100);
    expect(snap.lastUpdateId).to.equal(book.lastUpdateId);
    expect(snap.bids).to.deep.equal(book.bids);
    expect(snap.asks).to.deep.equal(book.asks);
    expect(snap.bids.length).to.be.at.least(60); // the simulator keeps 60..160 levels per side
    expect(server.requests[0]?.timeUnit).to.equal('MICROSECOND');
  });

  it('a snapshot taken mid-stream bridges the diffs that follow, and the diffs rebuild the streamed book', async () => {
    const c = client();
    for (const warmup of [1000, 3777, 10_001]) {
      advance(warmup);
      const snap = await c.getDepth(SYMBOL, 5000);
      const bids = new Map(snap.bids.map((l) => [l.priceMantissa, l.qtyMantissa]));
      const asks = new Map(snap.asks.map((l) => [l.priceMantissa, l.qtyMantissa]));
      let bookId = snap.lastUpdateId;
      let bridged = false;
      let compared = 0;
      for (let i = 0; i < 20_000 && compared < 5; i++) {
        const ev = exchange.next().message;
        if (ev.symbol !== SYMBOL) continue;
        if (ev.message === 'DepthDiffStreamEvent') {
          const diff: DepthDiffStreamEvent = ev;
          if (diff.lastBookUpdateId <= bookId) continue; // older than the snapshot: dropped
          if (!bridged) {
            expect(diff.firstBookUpdateId <= snap.lastUpdateId + 1n).to.equal(true, 'U <= lastUpdateId+1');
            expect(snap.lastUpdateId + 1n <= diff.lastBookUpdateId).to.equal(true, 'lastUpdateId+1 <= u');
            bridged = true;
          } else {
            expect(diff.firstBookUpdateId).to.equal(bookId + 1n, 'no gap between diffs');
          }
          for (const [side, levels] of [
            [bids, diff.bids],
            [asks, diff.asks],
          ] as const) {
            for (const l of levels) {
              if (l.qtyMantissa === 0n) side.delete(l.priceMantissa);
              else side.set(l.priceMantissa, l.qtyMantissa);
            }
          }
          bookId = diff.lastBookUpdateId;
        } else if (ev.message === 'DepthSnapshotStreamEvent' && bridged && ev.bookUpdateId === bookId) {
          const top: DepthSnapshotStreamEvent = ev;
          const sorted = (
            m: Map<bigint, bigint>,
            desc: boolean,
          ): { priceMantissa: bigint; qtyMantissa: bigint }[] =>
            [...m.entries()]
              .sort((a, b) => (a[0] === b[0] ? 0 : a[0] < b[0] === desc ? 1 : -1))
              .slice(0, top.bids.length)
              .map(([priceMantissa, qtyMantissa]) => ({ priceMantissa, qtyMantissa }));
          expect(sorted(bids, true)).to.deep.equal(top.bids);
          expect(sorted(asks, false).slice(0, top.asks.length)).to.deep.equal(top.asks);
          compared++;
        }
      }
      expect(bridged).to.equal(true);
      expect(compared).to.equal(5);
    }
  });

  it('fetches trades: the most recent ones, exact, in microseconds, matching the stream', async () => {
    const streamed = new Map<bigint, TradeEntry & { time: bigint }>();
    const read = (): bigint | undefined => {
      const ev = exchange.next().message;
      if (ev.message !== 'TradesStreamEvent' || ev.symbol !== SYMBOL) return undefined;
      for (const t of ev.trades) streamed.set(t.id, { ...t, time: ev.transactTime });
      return ev.trades[ev.trades.length - 1]?.id;
    };
    for (let i = 0; i < 20_000; i++) read();
    const events = await client().getTrades(SYMBOL, 200);
    const rest = events.flatMap((e) => e.trades.map((t) => ({ ...t, time: e.transactTime })));
    expect(rest).to.have.length(200);
    const lastId = rest[rest.length - 1]!.id;
    // The stream may lag the REST state (events generated but not yet handed out): read on to the last REST trade.
    for (let i = 0; i < 100_000 && !streamed.has(lastId); i++) read();
    for (let i = 1; i < rest.length; i++) expect(rest[i]!.id).to.equal(rest[i - 1]!.id + 1n);
    for (const t of rest) expect(t, `trade ${t.id}`).to.deep.equal(streamed.get(t.id));
    expect(rest[0]!.time > 1_000_000_000_000_000n).to.equal(true);
  });

  it('an unknown symbol is a non-retryable HTTP 400', async () => {
    const err = await rejection(client().getDepth('XRPUSDT', 5));
    expect(err).to.be.instanceOf(RestHttpError);
    expect((err as RestHttpError).status).to.equal(400);
    expect(err.message).to.contain('Invalid symbol.');
    expect(server.requests).to.have.length(1);
  });

  describe('faults', () => {
    it('500s for the next 2 requests are retried and succeed', async () => {
      server.faults.add({ kind: 'status', status: 500 }, 2);
      const snap = await client().getDepth(SYMBOL, 10);
      expect(snap.bids).to.have.length(10);
      expect(server.requests).to.have.length(3);
    });

    it('500s beyond maxRetries end in a retryable RestHttpError', async () => {
      server.faults.add({ kind: 'status', status: 503 }, 5);
      const err = await rejection(client({ maxRetries: 2 }).getTrades(SYMBOL, 10));
      expect(err).to.be.instanceOf(RestHttpError);
      expect((err as RestHttpError).status).to.equal(503);
      expect(isRetryable(err)).to.equal(true);
      expect(server.requests).to.have.length(3);
    });

    it('429 with Retry-After: 1 is waited for (>= 1 s) and then succeeds', async () => {
      server.faults.add({ kind: 'status', status: 429, retryAfterSeconds: 1 });
      const started = Date.now();
      const snap = await client().getDepth(SYMBOL, 5);
      expect(Date.now() - started).to.be.at.least(1000);
      expect(snap.asks).to.have.length(5);
      expect(server.requests).to.have.length(2);
    });

    it('429 with a Retry-After above the maximum wait fails at once', async () => {
      server.faults.add({ kind: 'status', status: 429, retryAfterSeconds: 30 });
      const started = Date.now();
      const err = await rejection(client({ maxRetryAfterMs: 5000 }).getDepth(SYMBOL, 5));
      // Far below the 30 s asked for: the client did not wait (a generous bound for a loaded machine).
      expect(Date.now() - started).to.be.lessThan(10_000);
      expect(err).to.be.instanceOf(RestHttpError);
      expect((err as RestHttpError).retryAfterMs).to.equal(30_000);
    });

    it('a slow response times out and the retry succeeds', async () => {
      server.faults.add({ kind: 'slow', delayMs: 4000 });
      const snap = await client({ timeoutMs: 1000 }).getDepth(SYMBOL, 5);
      expect(snap.bids).to.have.length(5);
      expect(server.requests).to.have.length(2);
    });

    it('slow responses on every attempt end in RestTimeoutError', async () => {
      server.faults.add({ kind: 'slow', delayMs: 1500 }, 2);
      const err = await rejection(client({ timeoutMs: 100, maxRetries: 1 }).getTrades(SYMBOL, 5));
      expect(err).to.be.instanceOf(RestTimeoutError);
    });

    const invalid: [string, Parameters<SimFaults['add']>[0], 'depth' | 'trades', string, RegExp][] = [
      ['garbage JSON', { kind: 'garbage' }, 'depth', 'body', /not JSON/],
      ['a crossed book', { kind: 'crossed' }, 'depth', 'book', /crossed/],
      ['unsorted bids', { kind: 'unsorted' }, 'depth', 'bids[1].price', /not strictly descending/],
      ['a duplicated level', { kind: 'duplicate' }, 'depth', 'bids[1].price', /duplicated price/],
      ['more levels than asked', { kind: 'tooMany' }, 'depth', 'bids', /more than the 10 asked for/],
      ['no lastUpdateId', { kind: 'missingLastUpdateId' }, 'depth', 'lastUpdateId', /missing/],
      ['unsorted trades', { kind: 'unsorted' }, 'trades', 'trades[1].id', /not strictly increasing/],
      ['millisecond trade times', { kind: 'millisecondTimes' }, 'trades', 'trades[0].time', /microseconds/],
      ['garbage trades JSON', { kind: 'garbage' }, 'trades', 'body', /not JSON/],
    ];
    for (const [name, fault, endpoint, field, problem] of invalid) {
      it(`${name} (${endpoint}) is a RestValidationError naming ${field}, not retried`, async () => {
        advance(3000);
        server.faults.add(fault, 1, endpoint);
        const c = client();
        const err = await rejection(endpoint === 'depth' ? c.getDepth(SYMBOL, 10) : c.getTrades(SYMBOL, 10));
        expect(err).to.be.instanceOf(RestValidationError);
        expect((err as RestValidationError).field).to.equal(field);
        expect((err as RestValidationError).problem).to.match(problem);
        expect(server.requests).to.have.length(1);
        // the fault was for one request only
        if (endpoint === 'depth') await c.getDepth(SYMBOL, 10);
        else await c.getTrades(SYMBOL, 10);
      });
    }
  });
});
