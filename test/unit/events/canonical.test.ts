import { expect } from 'chai';
import {
  CanonicalDecimalError,
  canonicalDecimal,
  canonicalMantissa,
  exactCanonicalAt,
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

  it('exactCanonicalAt: canonicalMantissa as a double where doubles are exact, NaN elsewhere', () => {
    const at = (mantissa: bigint, exponent: number, positive = false) => {
      const bytes = Buffer.alloc(8);
      bytes.writeBigInt64LE(mantissa);
      return exactCanonicalAt(bytes, 0, exponent, positive);
    };
    const cases: Array<[bigint, number]> = [
      [5999998n, -2],
      [0n, 5],
      [1n, -8],
      [12300n, -10],
      [123n, -10],
      [2n ** 53n - 1n, -8],
      [2n ** 53n, -8],
      [9_007_199_254n, -2],
      [9_007_199_255n, -2],
      [7n, 7],
      [7n, 8],
      [1n, 18],
      [10n ** 10n, -18],
      [(1n << 63n) - 1n, -8],
      [-1n, -8],
      [-(1n << 63n), 0],
    ];
    for (const [m, e] of cases) {
      const exact = canonicalMantissa(m, e);
      const expected = exact !== undefined && exact >= 0n && exact < 2n ** 53n ? Number(exact) : NaN;
      expect(at(m, e), `${m}e${e}`).to.deep.equal(expected);
    }
    expect(at(0n, -8, true), 'zero is not a positive price').to.deep.equal(NaN);
    expect(at(0n, -8, false)).to.equal(0);
  });
});
