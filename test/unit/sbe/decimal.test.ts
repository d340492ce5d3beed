import { expect } from 'chai';
import { DecimalParseError, formatDecimal, parseDecimal } from '../../../src/sbe';
import { parseScaledDecimal } from '../../../src/sbe/decimal';
import { INT64_MAX, INT64_MIN, Rng } from './fixtures';

describe('sbe decimal', () => {
  describe('formatDecimal', () => {
    const cases: [bigint, number, string][] = [
      [5978655n, -2, '59786.55'],
      [0n, -5, '0.00000'],
      [7000n, -5, '0.07000'],
      [-5n, -2, '-0.05'],
      [-12345n, -2, '-123.45'],
      [12346629000000n, -8, '123466.29000000'],
      [1n, -8, '0.00000001'],
      [100n, -2, '1.00'],
      [9682n, 0, '9682'],
      [-9682n, 0, '-9682'],
      [12n, 2, '1200'],
      [-3n, 3, '-3000'],
      [0n, 0, '0'],
      [0n, 4, '0'],
      [INT64_MIN, -8, '-92233720368.54775808'],
      [INT64_MAX, -19, '0.9223372036854775807'],
      [INT64_MAX, -20, '0.09223372036854775807'],
      [1n, -128, `0.${'0'.repeat(127)}1`],
      [1n, 127, `1${'0'.repeat(127)}`],
    ];
    for (const [m, e, s] of cases) {
      it(`(${m}, ${e}) -> ${s.length > 40 ? s.slice(0, 40) + '...' : s}`, () => {
        expect(formatDecimal(m, e)).to.equal(s);
      });
    }
    it('rejects a non-integer exponent', () => {
      expect(() => formatDecimal(1n, 0.5)).to.throw(RangeError);
    });
  });

  describe('parseDecimal', () => {
    const ok: [string, number, bigint][] = [
      ['9682', 0, 9682n],
      ['9682', -2, 968200n],
      ['9682.19', -2, 968219n],
      ['9682.1', -2, 968210n],
      ['0.001', -8, 100000n],
      ['-1.5', -1, -15n],
      ['-0', -2, 0n],
      ['1.2300', -2, 123n],
      ['007', 0, 7n],
      ['1200', 2, 12n],
      ['1200.00', 2, 12n],
      ['0', 3, 0n],
      ['0.000', 3, 0n],
      ['-92233720368.54775808', -8, INT64_MIN],
      ['92233720368.54775807', -8, INT64_MAX],
    ];
    for (const [text, e, m] of ok) {
      it(`"${text}" at ${e} -> ${m}`, () => {
        expect(parseDecimal(text, e)).to.equal(m);
      });
    }

    const bad: [string, number, RegExp][] = [
      ['1.234', -2, /more than 2 fraction digits/],
      ['1e-3', -8, /exponent notation/],
      ['1E5', 0, /exponent notation/],
      ['1.5e2', 0, /exponent notation/],
      ['', -2, /not a plain decimal/],
      ['abc', -2, /not a plain decimal/],
      ['+1', -2, /not a plain decimal/],
      [' 1', -2, /not a plain decimal/],
      ['1.', -2, /not a plain decimal/],
      ['.5', -2, /not a plain decimal/],
      ['1,5', -2, /not a plain decimal/],
      ['--1', -2, /not a plain decimal/],
      ['NaN', 0, /not a plain decimal/],
      ['Infinity', 0, /not a plain decimal/],
      ['0x10', 0, /not a plain decimal/],
      ['1250', 2, /multiple of 10\^2/],
      ['12', 2, /multiple of 10\^2/],
      ['100.5', 2, /multiple of 10\^2/],
      ['92233720368.54775808', -8, /overflows int64/],
      ['-92233720368.54775809', -8, /overflows int64/],
      ['1' + '0'.repeat(30), 0, /overflows int64/],
    ];
    for (const [text, e, reason] of bad) {
      it(`rejects "${text}" at ${e}`, () => {
        try {
          parseDecimal(text, e);
        } catch (err) {
          expect(err).to.be.instanceOf(DecimalParseError);
          const pe = err as DecimalParseError;
          expect(pe.text).to.equal(text);
          expect(pe.exponent).to.equal(e);
          expect(pe.message).to.match(reason);
          expect(pe.message).to.contain(JSON.stringify(text));
          return;
        }
        expect.fail('no error');
      });
    }

    it('inverts formatDecimal for random mantissas and exponents', () => {
      const rng = new Rng(99);
      for (let i = 0; i < 5000; i++) {
        const m = rng.int64();
        const e = rng.int(-30, 0);
        expect(parseDecimal(formatDecimal(m, e), e)).to.equal(m);
      }
      for (let i = 0; i < 500; i++) {
        const m = BigInt(rng.int(-1_000_000, 1_000_000));
        const e = rng.int(1, 5);
        expect(parseDecimal(formatDecimal(m, e), e)).to.equal(m);
      }
    });
  });

  describe('parseScaledDecimal', () => {
    it('reads a plain decimal at its own scale, exactly and beyond int64', () => {
      expect(parseScaledDecimal('60000.010')).to.deep.equal({ mantissa: 60000010n, scale: 3 });
      expect(parseScaledDecimal('-1.5')).to.deep.equal({ mantissa: -15n, scale: 1 });
      expect(parseScaledDecimal('100')).to.deep.equal({ mantissa: 100n, scale: 0 });
      expect(parseScaledDecimal('123456789012345678901234567890.5')).to.deep.equal({
        mantissa: 1234567890123456789012345678905n,
        scale: 1,
      });
    });

    it('refuses what parseDecimal refuses as syntax', () => {
      for (const bad of ['', '1e5', '+1', ' 1', '1.', '.5', '1,5']) {
        expect(() => parseScaledDecimal(bad), bad).to.throw(RangeError, 'not a plain decimal');
      }
    });
  });
});
