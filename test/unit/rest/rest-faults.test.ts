import { expect } from 'chai';
import {
  RestBannedError,
  RestClient,
  RestHttpError,
  RestTimeoutError,
  RestValidationError,
} from '../../../src/rest/client';
import {
  SimulatedExchange,
  startSimExchangeServer,
  type SimExchangeServer,
} from '../../../src/dev/rest/sim-server';
import { startRestFaultFront, type RestFaultFront } from '../../helpers/rest-faults';

// The fault-injecting REST front of the fault tests (test/helpers/rest-faults.ts) against the real RestClient: each
// scripted fault reaches the client as the failure it stands for, in script order, and then answers are good again.

const S = 'BTCUSDT';

describe('rest-faults: a scripted fault-injecting front for the REST client', function () {
  this.timeout(20_000);
  let exchange: SimulatedExchange;
  let rest: SimExchangeServer;
  let front: RestFaultFront;
  let hooked: Array<[string, string | undefined]>;

  beforeEach(async () => {
    exchange = new SimulatedExchange({ seed: 3, symbols: [S], startTimeUs: 1_700_000_000_000_000n });
    for (let i = 0; i < 500; i++) exchange.next();
    rest = await startSimExchangeServer({ port: 0, exchange });
    hooked = [];
    front = await startRestFaultFront({
      upstream: rest.url,
      onRequest: (endpoint, fault) => {
        hooked.push([endpoint, fault?.kind]);
        return Promise.resolve(true);
      },
    });
  });

  afterEach(async () => {
    await front.stop();
    await rest.stop();
  });

  const client = (maxRetries = 0, timeoutMs = 5000) =>
    new RestClient({ baseUrl: front.url, maxRetries, timeoutMs, backoffBaseMs: 1, backoffMaxMs: 2 });

  async function failure(p: Promise<unknown>): Promise<Error> {
    try {
      await p;
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected a failure');
  }

  it('passes good answers through unchanged', async () => {
    const depth = await client().getDepth(S, 100);
    expect(depth).to.deep.include({ lastUpdateId: exchange.depth(S, 100).lastUpdateId });
    expect(depth.bids).to.deep.equal(exchange.depth(S, 100).bids);
    const trades = await client().getTrades(S, 50);
    expect(trades.flatMap((t) => t.trades.map((x) => x.id))).to.deep.equal(
      exchange.recentTrades(S, 50).map((t) => t.id),
    );
    expect(front.log.map((r) => [r.endpoint, r.status, r.fault])).to.deep.equal([
      ['depth', 200, undefined],
      ['trades', 200, undefined],
    ]);
    expect(front.seen.maxLastUpdateId).to.equal(depth.lastUpdateId);
  });

  it('serves the depth script in order, each fault as its failure, then good answers', async () => {
    const staleId = await front.captureStale(S, 100);
    for (let i = 0; i < 300; i++) exchange.next();
    front.script(
      'depth',
      { kind: 'status', status: 503 },
      { kind: 'status', status: 429, retryAfterSeconds: 7 },
      { kind: 'hang' },
      { kind: 'garbage' },
      { kind: 'crossed' },
      { kind: 'missingLastUpdateId' },
      { kind: 'lastUpdateIdString' },
      { kind: 'bidsNotArray' },
      { kind: 'stale' },
    );
    expect(front.pending('depth')).to.equal(9);
    const banned = client();
    const e503 = await failure(banned.getDepth(S, 100));
    expect(e503).to.be.instanceOf(RestHttpError).and.to.have.property('status', 503);
    const e429 = await failure(banned.getDepth(S, 100));
    expect(e429).to.be.instanceOf(RestHttpError).and.to.include({ status: 429, retryAfterMs: 7000 });
    // The 429's Retry-After is remembered: that client sends nothing for 7 s.
    const requests = hooked.length;
    expect(await failure(banned.getDepth(S, 100))).to.be.instanceOf(RestBannedError);
    expect(hooked.length, 'a request was sent during the ban').to.equal(requests);
    const c = client();
    expect(await failure(client(0, 300).getDepth(S, 100))).to.be.instanceOf(RestTimeoutError);
    for (const field of ['body', 'book', 'lastUpdateId', 'lastUpdateId', 'bids']) {
      const err = await failure(c.getDepth(S, 100));
      expect(err).to.be.instanceOf(RestValidationError).and.to.have.property('field', field);
    }
    const stale = await c.getDepth(S, 100);
    expect(stale.lastUpdateId).to.equal(staleId);
    expect(staleId < exchange.depth(S, 100).lastUpdateId, 'the stale answer is older').to.equal(true);
    expect(front.pending()).to.equal(0);
    expect((await c.getDepth(S, 100)).lastUpdateId).to.equal(exchange.depth(S, 100).lastUpdateId);
    expect(hooked.filter(([, k]) => k !== undefined)).to.have.length(9);
  });

  it('a client with retries sees a 500 then a good answer as one success', async () => {
    front.script('depth', { kind: 'status', status: 500 });
    const depth = await client(1).getDepth(S, 10);
    expect(depth.bids).to.have.length(10);
    expect(front.log.map((r) => r.status)).to.deep.equal([500, 200]);
  });

  it('trade faults: a missing trade and millisecond times are refused', async () => {
    front.script('trades', { kind: 'tradeGap' }, { kind: 'millisecondTimes' }, { kind: 'garbage' });
    const gap = await failure(client().getTrades(S, 100));
    expect(gap).to.be.instanceOf(RestValidationError);
    expect(gap.message).to.match(/not consecutive \(1 trade\(s\) missing\)/);
    const ms = await failure(client().getTrades(S, 100));
    expect(ms).to.be.instanceOf(RestValidationError).and.to.have.property('field', 'trades[0].time');
    expect(await failure(client().getTrades(S, 100))).to.be.instanceOf(RestValidationError);
    expect(front.pending()).to.equal(0);
  });
});
