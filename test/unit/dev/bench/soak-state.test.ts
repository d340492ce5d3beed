import { expect } from 'chai';
import { diffSnapshots, type DbSnapshot } from '../../../../src/dev/bench/soak-state';

describe('soak exactness diff', function () {
  const base: DbSnapshot = {
    'ob:BTCUSDT': { type: 'hash', value: { best_bid: '1.00', best_ask: '2.00' }, expires: false },
    'book:BTCUSDT:bids:idx': { type: 'zset', value: ['1.00', '1'], expires: false },
    'tr:BTCUSDT:1s': { type: 'hash', value: { count: '3' }, expires: true },
  };

  it('is empty for equal states', function () {
    expect(diffSnapshots(base, structuredClone(base))).to.deep.equal([]);
  });

  it('names missing and extra keys, hash fields, other values, types and TTLs', function () {
    const actual = structuredClone(base);
    (actual['ob:BTCUSDT']!.value as Record<string, string>).best_bid = '1.01';
    (actual['ob:BTCUSDT']!.value as Record<string, string>).extra = 'x';
    actual['book:BTCUSDT:bids:idx'] = { type: 'zset', value: ['1.00', '1', '0.99', '0.99'], expires: false };
    delete actual['tr:BTCUSDT:1s'];
    actual['px:BTCUSDT'] = { type: 'hash', value: {}, expires: false };
    const expected = structuredClone(base);
    expected['px:BTCUSDT'] = { type: 'hash', value: {}, expires: true };
    const diff = diffSnapshots(actual, expected);
    expect(diff).to.deep.equal([
      'book:BTCUSDT:bids:idx: ["1.00","1","0.99","0.99"], reference ["1.00","1"]',
      'ob:BTCUSDT best_bid: "1.01", reference "1.00"',
      'ob:BTCUSDT extra: "x", reference undefined',
      'px:BTCUSDT: has no TTL, reference has',
      'tr:BTCUSDT:1s: missing in the pipeline (reference hash)',
    ]);
    expect(diffSnapshots(actual, expected, 2)).to.have.length(2);
  });
});
