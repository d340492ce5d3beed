import { AggregatorError } from '../common/errors';

// Exact decimal text <-> (int64 mantissa, exponent). value = mantissa x 10^exponent. No binary floats anywhere:
// prices are book keys and must compare exactly.

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** Text that is not a plain decimal, or not exactly representable as an int64 mantissa at the exponent. */
export class DecimalParseError extends AggregatorError {
  constructor(
    readonly text: string,
    readonly exponent: number,
    readonly reason: string,
  ) {
    super(`cannot parse decimal ${JSON.stringify(text)} at exponent ${exponent}: ${reason}`, {
      code: 'DECIMAL_PARSE',
      context: { exponent },
    });
    this.name = 'DecimalParseError';
  }
}

function checkExponent(exponent: number): void {
  if (!Number.isSafeInteger(exponent)) throw new RangeError(`exponent must be an integer, got ${exponent}`);
}

/**
 * Formats mantissa x 10^exponent exactly. A negative exponent gives exactly -exponent fraction digits (trailing zeros
 * kept: (7000n, -5) -> "0.07000"); a non-negative one gives an integer ((12n, 2) -> "1200").
 */
export function formatDecimal(mantissa: bigint, exponent: number): string {
  checkExponent(exponent);
  if (exponent >= 0) return mantissa === 0n ? '0' : (mantissa * 10n ** BigInt(exponent)).toString();
  const negative = mantissa < 0n;
  let digits = (negative ? -mantissa : mantissa).toString();
  const scale = -exponent;
  if (digits.length <= scale) digits = '0'.repeat(scale - digits.length + 1) + digits;
  const cut = digits.length - scale;
  return `${negative ? '-' : ''}${digits.slice(0, cut)}.${digits.slice(cut)}`;
}

const PLAIN_DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;
const EXPONENT_NOTATION = /^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$/;

/**
 * A plain decimal at its own scale, exactly and of any size: "60000.010" -> { mantissa: 60000010n, scale: 3 },
 * "-1.5" -> { -15n, 1 }, "100" -> { 100n, 0 }. The syntax is parseDecimal's (PLAIN_DECIMAL); unlike it there is no
 * exponent to fit and no int64 bound (the book's exact spread and mid of any two prices). RangeError otherwise.
 */
export function parseScaledDecimal(text: string): { mantissa: bigint; scale: number } {
  const m = PLAIN_DECIMAL.exec(text);
  if (m === null) throw new RangeError(`not a plain decimal: ${JSON.stringify(text)}`);
  const fraction = m[3] ?? '';
  const magnitude = BigInt((m[2] ?? '') + fraction);
  return { mantissa: m[1] === '-' ? -magnitude : magnitude, scale: fraction.length };
}

/**
 * Parses a plain decimal ("9682", "9682.19", "0.001", "-1.5") into the mantissa at `exponent`, exactly.
 * Rejects exponent notation, signs other than a leading '-', surrounding spaces, values needing more precision than
 * the exponent allows ("1.234" at -2) and values outside int64.
 */
export function parseDecimal(text: string, exponent: number): bigint {
  checkExponent(exponent);
  const m = PLAIN_DECIMAL.exec(text);
  if (m === null) {
    const reason = EXPONENT_NOTATION.test(text)
      ? 'exponent notation is not accepted, write the plain decimal'
      : 'not a plain decimal (expected digits, an optional leading "-" and an optional ".digits")';
    throw new DecimalParseError(text, exponent, reason);
  }
  const sign = m[1] ?? '';
  const intPart = m[2] ?? '';
  const fracPart = m[3] ?? '';
  let digits: string;
  if (exponent <= 0) {
    const scale = -exponent;
    if (fracPart.length > scale && !/^0*$/.test(fracPart.slice(scale))) {
      throw new DecimalParseError(text, exponent, `more than ${scale} fraction digits`);
    }
    digits = intPart + fracPart.slice(0, scale).padEnd(scale, '0');
  } else {
    if (!/^0*$/.test(fracPart))
      throw new DecimalParseError(text, exponent, 'not a multiple of 10^' + exponent);
    const trimmed = intPart.replace(/^0+(?=\d)/, '');
    if (trimmed === '0') {
      digits = '0';
    } else {
      if (trimmed.length <= exponent || !/^0*$/.test(trimmed.slice(trimmed.length - exponent))) {
        throw new DecimalParseError(text, exponent, 'not a multiple of 10^' + exponent);
      }
      digits = trimmed.slice(0, trimmed.length - exponent);
    }
  }
  const magnitude = BigInt(digits);
  const mantissa = sign === '-' ? -magnitude : magnitude;
  if (mantissa < INT64_MIN || mantissa > INT64_MAX) {
    throw new DecimalParseError(text, exponent, 'mantissa overflows int64');
  }
  return mantissa;
}
