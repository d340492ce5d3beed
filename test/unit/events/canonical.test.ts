import { expect } from 'chai';
import {
  CanonicalDecimalError,
  canonicalDecimal,
  canonicalMantissa,
  formatCanonical,
  MAX_CANONICAL_MANTISSA,
  toCanonical,
} from '../../../src/events/canonical';

// The one string form of prices and quantities: exactly 8 fraction digits, whatever the exponent.

describe('events/canonical', () => {
  it('one value, one string, at any exponent', () => {
    const spellings: Array<[bigint, number]> = [
      [5999998n, -2],
      [5999998000n, -5],
      [5999998000000n, -8],
      [59999980000000000n, -12],
    ];
    for (const [m, e] of spellings) expect(canonicalDecimal(m, e), `${m}e${e}`).to.equal('59999.98000000');
    expect(canonicalDecimal(6n, 4)).to.equal('60000.00000000');
    expect(canonicalDecimal(0n, -3)).to.equal('0.00000000');
    expect(canonicalDecimal(1n, -8)).to.equal('0.00000001');
    expect(canonicalDecimal(-15n, -1)).to.equal('-1.50000000');
  });

  it('no canonical form for more than 8 fraction digits or beyond int64 at scale 8', () => {
    expect(canonicalDecimal(123n, -10)).to.equal(undefined);
    expect(canonicalDecimal(12300n, -10)).to.equal('0.00000123');
    expect(canonicalMantissa(MAX_CANONICAL_MANTISSA, -8)).to.equal(MAX_CANONICAL_MANTISSA);
    expect(canonicalMantissa(MAX_CANONICAL_MANTISSA, -7)).to.equal(undefined);
    expect(canonicalMantissa(1n, 60)).to.equal(undefined);
    expect(canonicalMantissa(0n, 60)).to.equal(0n);
    expect(canonicalMantissa(1n, -60)).to.equal(undefined);
    expect(() => toCanonical(123n, -10)).to.throw(CanonicalDecimalError, 'no canonical form');
  });

  it('formats a canonical mantissa with at least one integer digit', () => {
    expect(formatCanonical(5n)).to.equal('0.00000005');
    expect(formatCanonical(100000000n)).to.equal('1.00000000');
    expect(formatCanonical(-100000000n)).to.equal('-1.00000000');
  });
});
