import { AggregatorError } from '../common/errors';

// The one string form of every price and quantity in Redis: the exact decimal with exactly CANONICAL_SCALE (8)
// fraction digits, "59999.98000000", whatever exponent the message carried and whenever it changes. Binance's
// spot precision is 8 decimals (its REST answers are written that way), so every value it can send has exactly
// one such string; a value that needs more digits, or one too large for an int64 at that scale, has none.
// Book levels are keyed by these strings, so one price can never live under two hash fields.

/** Fraction digits of every price and quantity string written to Redis. */
export const CANONICAL_SCALE = 8;

/** The largest canonical mantissa (value x 10^8): an int64, so every value fits Lua, ioredis and SBE alike. */
export const MAX_CANONICAL_MANTISSA = (1n << 63n) - 1n;

const POW10: readonly bigint[] = Array.from({ length: 40 }, (_, i) => 10n ** BigInt(i));
const ZEROS = '000000000';

/**
 * mantissa x 10^exponent at scale 8 (the canonical mantissa), or undefined when the value needs more than 8
 * fraction digits or its canonical mantissa leaves int64. Exponents beyond +-39 are out of range (undefined). Pure.
 */
export function canonicalMantissa(mantissa: bigint, exponent: number): bigint | undefined {
  let scaled: bigint;
  if (exponent === -CANONICAL_SCALE) {
    scaled = mantissa;
  } else if (exponent > -CANONICAL_SCALE) {
    const factor = POW10[exponent + CANONICAL_SCALE];
    if (factor === undefined) return mantissa === 0n ? 0n : undefined;
    scaled = mantissa * factor;
  } else {
    const divisor = POW10[-CANONICAL_SCALE - exponent];
    if (divisor === undefined) return mantissa === 0n ? 0n : undefined;
    if (mantissa % divisor !== 0n) return undefined;
    scaled = mantissa / divisor;
  }
  if (scaled > MAX_CANONICAL_MANTISSA || scaled < -MAX_CANONICAL_MANTISSA) return undefined;
  return scaled;
}

/** The canonical string of a canonical mantissa: "-"? digits "." 8 digits ("0.00000001", "60000.00000000"). */
export function formatCanonical(canonical: bigint): string {
  const negative = canonical < 0n;
  let digits = (negative ? -canonical : canonical).toString();
  if (digits.length <= CANONICAL_SCALE) digits = ZEROS.slice(0, CANONICAL_SCALE + 1 - digits.length) + digits;
  const cut = digits.length - CANONICAL_SCALE;
  return `${negative ? '-' : ''}${digits.slice(0, cut)}.${digits.slice(cut)}`;
}

const TWO_POW_32 = 0x100000000;
const EXACT_POW10: readonly number[] = Array.from({ length: 23 }, (_, i) => 10 ** i); // exact up to 10^22

/**
 * canonicalMantissa of the int64 (little-endian) at `pos`, as a double, for the fast paths over undecoded levels
 * (src/sbe/decoder.ts levelBlockOf): NaN unless the mantissa is positive (`positive`, else non-negative) and its
 * canonical value an integer below 2^53, where doubles are exact (every real price and quantity is). Exact: each
 * operand and result is an integer double below 2^53; an inexact product is at least 2^53 and refused. Pure.
 */
export function exactCanonicalAt(
  bytes: Uint8Array,
  pos: number,
  exponent: number,
  positive: boolean,
): number {
  // The two halves read byte by byte (Buffer's readers check their arguments on every call); the caller
  // guarantees 8 bytes at pos.
  const hi = bytes[pos + 4]! | (bytes[pos + 5]! << 8) | (bytes[pos + 6]! << 16) | (bytes[pos + 7]! << 24);
  if (hi < 0 || hi >= 0x200000) return NaN;
  const lo = (bytes[pos]! | (bytes[pos + 1]! << 8) | (bytes[pos + 2]! << 16)) + bytes[pos + 3]! * 0x1000000;
  const mantissa = hi * TWO_POW_32 + lo;
  if (mantissa === 0) return positive ? NaN : 0;
  const shift = exponent + CANONICAL_SCALE;
  if (shift === 0) return mantissa;
  if (shift > 0) {
    const factor = EXACT_POW10[shift];
    if (factor === undefined) return NaN;
    const value = mantissa * factor;
    return value <= Number.MAX_SAFE_INTEGER ? value : NaN;
  }
  const divisor = EXACT_POW10[-shift];
  if (divisor === undefined || mantissa % divisor !== 0) return NaN;
  return mantissa / divisor;
}

/** The canonical string of mantissa x 10^exponent, or undefined when it has none (see canonicalMantissa). Pure. */
export function canonicalDecimal(mantissa: bigint, exponent: number): string | undefined {
  const scaled = canonicalMantissa(mantissa, exponent);
  return scaled === undefined ? undefined : formatCanonical(scaled);
}

/** A value that has no canonical string (more than 8 fraction digits, or too large). */
export class CanonicalDecimalError extends AggregatorError {
  constructor(
    readonly mantissa: bigint,
    readonly exponent: number,
  ) {
    super(
      `${mantissa} x 10^${exponent} has no canonical form: more than ${CANONICAL_SCALE} fraction digits ` +
        `or beyond int64 at that scale`,
      { code: 'NO_CANONICAL_FORM', context: { exponent } },
    );
    this.name = 'CanonicalDecimalError';
  }
}

/** canonicalDecimal, throwing CanonicalDecimalError for a value without a canonical string. */
export function toCanonical(mantissa: bigint, exponent: number): string {
  const text = canonicalDecimal(mantissa, exponent);
  if (text === undefined) throw new CanonicalDecimalError(mantissa, exponent);
  return text;
}

/** A canonical string as Redis and the Lua scripts expect it: digits, ".", exactly 8 digits, no sign. */
export const CANONICAL_UNSIGNED = /^\d+\.\d{8}$/;
