import { expect } from 'chai';
import {
  parseRequest,
  ReanchorRequestError,
  RequestThrottle,
  requestFields,
  scopeOf,
  type ReanchorRequest,
} from '../../../src/reanchor/requests';

/** Runs `fn` and returns what it threw (fails the test when it did not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  expect.fail('expected a throw');
}

describe('reanchor/requests', () => {
  describe('scopeOf', () => {
    it('a trade gap alone is a trade repair; every other reason rebuilds the book', () => {
      expect(scopeOf('trade_gap')).to.equal('trades');
      for (const reason of [
        'depth_gap',
        'crossed',
        'stale',
        'out_of_sync:gap',
        'operator',
        'coalesced',
        '',
      ]) {
        expect(scopeOf(reason), reason).to.equal('book');
      }
    });
  });

  describe('requestFields', () => {
    it('lists symbol, reason and source in that order', () => {
      expect(requestFields({ symbol: 'BTCUSDT', reason: 'depth_gap', source: 'processor' })).to.deep.equal([
        'symbol',
        'BTCUSDT',
        'reason',
        'depth_gap',
        'source',
        'processor',
      ]);
    });

    it('appends detail when present and non-empty, omits it when empty', () => {
      expect(
        requestFields({ symbol: 'ETHUSDT', reason: 'trade_gap', source: 'processor', detail: 'ids 5..9' }),
      ).to.deep.equal([
        'symbol',
        'ETHUSDT',
        'reason',
        'trade_gap',
        'source',
        'processor',
        'detail',
        'ids 5..9',
      ]);
      expect(
        requestFields({ symbol: 'ETHUSDT', reason: 'stale', source: 'sidecar', detail: '' }),
      ).to.deep.equal(['symbol', 'ETHUSDT', 'reason', 'stale', 'source', 'sidecar']);
    });

    it('rejects a value that is not a symbol with a RangeError naming it', () => {
      for (const symbol of ['', 'btcusdt', 'B', 'BTC-USDT', 'BTC USDT', `${'A'.repeat(21)}`, 'BTCUSDT\n']) {
        const err = thrown(() => requestFields({ symbol, reason: 'operator', source: 'operator' }));
        expect(err, symbol).to.be.instanceOf(RangeError);
        expect((err as Error).message).to.equal(`re-anchor request: not a symbol: ${JSON.stringify(symbol)}`);
      }
    });

    it('accepts symbols of 2 to 20 upper-case letters and digits', () => {
      for (const symbol of ['BT', '1INCHUSDT', 'A'.repeat(20)]) {
        expect(requestFields({ symbol, reason: 'operator', source: 'operator' })[1]).to.equal(symbol);
      }
    });
  });

  describe('parseRequest', () => {
    it('parses a valid entry: fields, id and the request time from the id', () => {
      const request = parseRequest('1700000000123-4', [
        'symbol',
        'BTCUSDT',
        'reason',
        'crossed',
        'source',
        'processor',
        'detail',
        'book id 42',
      ]);
      expect(request).to.deep.equal({
        id: '1700000000123-4',
        requestedMs: 1_700_000_000_123,
        symbol: 'BTCUSDT',
        reason: 'crossed',
        source: 'processor',
        detail: 'book id 42',
      });
    });

    it('round-trips requestFields for every source, with and without detail', () => {
      const requests: ReanchorRequest[] = [
        { symbol: 'BTCUSDT', reason: 'trade_gap', source: 'processor', detail: 'trade ids 3..4 missing' },
        { symbol: 'ETHUSDT', reason: 'out_of_sync:gap', source: 'sidecar' },
        { symbol: 'SOLUSDT', reason: 'operator', source: 'operator', detail: 'by hand' },
        { symbol: 'BNBUSDT', reason: 'coalesced', source: 'listener' },
      ];
      for (const request of requests) {
        const parsed = parseRequest('5-0', requestFields(request));
        expect(parsed).to.deep.equal({ id: '5-0', requestedMs: 5, ...request });
      }
    });

    it('detail is optional: absent in the entry, absent (not undefined-valued) in the result', () => {
      const request = parseRequest('1-1', ['symbol', 'BTCUSDT', 'reason', 'stale', 'source', 'sidecar']);
      expect(request).to.not.have.property('detail');
      expect(request).to.deep.equal({
        id: '1-1',
        requestedMs: 1,
        symbol: 'BTCUSDT',
        reason: 'stale',
        source: 'sidecar',
      });
    });

    it('field order does not matter', () => {
      const request = parseRequest('2-0', [
        'source',
        'operator',
        'detail',
        'x',
        'reason',
        'operator',
        'symbol',
        'BTCUSDT',
      ]);
      expect(request).to.deep.include({
        symbol: 'BTCUSDT',
        reason: 'operator',
        source: 'operator',
        detail: 'x',
      });
    });

    it('a missing reason parses as the empty string', () => {
      expect(parseRequest('3-0', ['symbol', 'BTCUSDT', 'source', 'sidecar']).reason).to.equal('');
    });

    it('rejects a malformed entry id', () => {
      for (const id of ['', '123', '123-', '-1', 'abc-1', '1-2-3', '1.5-0', ' 1-0', '1-0 ']) {
        const err = thrown(() =>
          parseRequest(id, ['symbol', 'BTCUSDT', 'reason', 'stale', 'source', 'sidecar']),
        );
        expect(err, id).to.be.instanceOf(ReanchorRequestError);
        const e = err as ReanchorRequestError;
        expect(e.name).to.equal('ReanchorRequestError');
        expect(e.entryId).to.equal(id);
        expect(e.message).to.equal(`re-anchor request ${id}: not a stream entry id`);
      }
    });

    it('rejects a missing or malformed symbol', () => {
      const cases: [readonly string[], string][] = [
        [['reason', 'stale', 'source', 'sidecar'], '""'],
        [['symbol', 'btcusdt', 'reason', 'stale', 'source', 'sidecar'], '"btcusdt"'],
        [['symbol', 'X', 'reason', 'stale', 'source', 'sidecar'], '"X"'],
        [['symbol', 'BTC/USDT', 'reason', 'stale', 'source', 'sidecar'], '"BTC/USDT"'],
      ];
      for (const [fields, shown] of cases) {
        const err = thrown(() => parseRequest('9-9', fields));
        expect(err).to.be.instanceOf(ReanchorRequestError);
        expect((err as Error).message).to.equal(`re-anchor request 9-9: not a symbol: ${shown}`);
        expect((err as ReanchorRequestError).entryId).to.equal('9-9');
      }
    });

    it('rejects a missing or unknown source', () => {
      const cases: [readonly string[], string][] = [
        [['symbol', 'BTCUSDT', 'reason', 'stale'], '""'],
        [['symbol', 'BTCUSDT', 'reason', 'stale', 'source', 'cron'], '"cron"'],
        [['symbol', 'BTCUSDT', 'reason', 'stale', 'source', 'Processor'], '"Processor"'],
      ];
      for (const [fields, shown] of cases) {
        const err = thrown(() => parseRequest('9-9', fields));
        expect(err).to.be.instanceOf(ReanchorRequestError);
        expect((err as Error).message).to.equal(`re-anchor request 9-9: unknown source ${shown}`);
      }
    });

    it('checks the id before the fields', () => {
      const err = thrown(() => parseRequest('nope', []));
      expect((err as Error).message).to.equal('re-anchor request nope: not a stream entry id');
    });

    it('ignores a trailing field without a value', () => {
      const request = parseRequest('1-0', [
        'symbol',
        'BTCUSDT',
        'source',
        'sidecar',
        'reason',
        'stale',
        'detail',
      ]);
      expect(request).to.not.have.property('detail');
    });
  });

  describe('RequestThrottle', () => {
    it('allows the first request of a symbol, then none until the interval has passed', () => {
      const throttle = new RequestThrottle(10_000);
      expect(throttle.allow('BTCUSDT', 1_000)).to.equal(true);
      expect(throttle.allow('BTCUSDT', 1_000)).to.equal(false);
      expect(throttle.allow('BTCUSDT', 10_999)).to.equal(false);
      expect(throttle.allow('BTCUSDT', 11_000)).to.equal(true);
      expect(throttle.allow('BTCUSDT', 20_999)).to.equal(false);
      expect(throttle.allow('BTCUSDT', 21_000)).to.equal(true);
    });

    it('a refused request does not restart the interval', () => {
      const throttle = new RequestThrottle(1_000);
      expect(throttle.allow('BTCUSDT', 0)).to.equal(true);
      for (let t = 100; t < 1_000; t += 100) expect(throttle.allow('BTCUSDT', t)).to.equal(false);
      expect(throttle.allow('BTCUSDT', 1_000)).to.equal(true);
    });

    it('throttles each symbol independently', () => {
      const throttle = new RequestThrottle(1_000);
      expect(throttle.allow('BTCUSDT', 0)).to.equal(true);
      expect(throttle.allow('ETHUSDT', 1)).to.equal(true);
      expect(throttle.allow('BTCUSDT', 2)).to.equal(false);
      expect(throttle.allow('ETHUSDT', 3)).to.equal(false);
      expect(throttle.allow('SOLUSDT', 4)).to.equal(true);
      expect(throttle.allow('BTCUSDT', 1_000)).to.equal(true);
      expect(throttle.allow('ETHUSDT', 1_000)).to.equal(false);
      expect(throttle.allow('ETHUSDT', 1_001)).to.equal(true);
    });

    it('an interval of 0 allows every request', () => {
      const throttle = new RequestThrottle(0);
      for (let i = 0; i < 5; i++) expect(throttle.allow('BTCUSDT', 42)).to.equal(true);
    });
  });
});
