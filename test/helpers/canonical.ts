import { formatDecimal } from '../../src/sbe/decimal';

// The README's string form of prices and quantities, written independently of src/events/canonical.ts for the
// references: the exact value with exactly 8 fraction digits.

export function canonical8(mantissa: bigint, exponent: number): string {
  if (exponent >= -8) return formatDecimal(mantissa * 10n ** BigInt(exponent + 8), -8);
  const divisor = 10n ** BigInt(-8 - exponent);
  if (mantissa % divisor !== 0n) throw new Error(`${mantissa}e${exponent} has more than 8 decimals`);
  return formatDecimal(mantissa / divisor, -8);
}
