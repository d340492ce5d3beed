import { formatDecimal, parseScaledDecimal } from '../../sbe/decimal';

// The derived fields of ob:<SYMBOL> as pure functions: the definitions the Lua scripts implement digit by digit
// (lua/includes/order-book.lua), used by tests and verification tools to check what the scripts wrote.

function aligned(a: string, b: string): [bigint, bigint, number] {
  const x = parseScaledDecimal(a);
  const y = parseScaledDecimal(b);
  const scale = Math.max(x.scale, y.scale);
  return [x.mantissa * 10n ** BigInt(scale - x.scale), y.mantissa * 10n ** BigInt(scale - y.scale), scale];
}

/** ask - bid, exact, at the larger scale of the two ("60000.01" - "60000.00" = "0.01"; negative when crossed). */
export function decimalSpread(bid: string, ask: string): string {
  const [b, a, scale] = aligned(bid, ask);
  return formatDecimal(a - b, -scale);
}

/** (bid + ask) / 2, exact: at the larger scale of the two, or with one more decimal when needed ("60000.005"). */
export function decimalMid(bid: string, ask: string): string {
  const [b, a, scale] = aligned(bid, ask);
  const sum = a + b;
  if (sum % 2n === 0n) return formatDecimal(sum / 2n, -scale);
  return formatDecimal(sum * 5n, -(scale + 1));
}

export interface BookMetrics {
  readonly imbalance: number;
  readonly bidStrength: number;
  readonly askStrength: number;
}

/**
 * The book metrics over the top `levels` quantities of each side (best first; missing levels count nothing):
 * imbalance = (sum bid qty - sum ask qty) / (sum of both), 0 when both are 0; strength = sum of qty_i / i.
 */
export function bookMetrics(
  bidQtys: readonly string[],
  askQtys: readonly string[],
  levels: number,
): BookMetrics {
  let sumBid = 0;
  let sumAsk = 0;
  let bidStrength = 0;
  let askStrength = 0;
  for (let i = 1; i <= levels; i++) {
    const b = bidQtys[i - 1];
    if (b !== undefined && b !== '') {
      sumBid += Number(b);
      bidStrength += Number(b) / i;
    }
    const a = askQtys[i - 1];
    if (a !== undefined && a !== '') {
      sumAsk += Number(a);
      askStrength += Number(a) / i;
    }
  }
  const total = sumBid + sumAsk;
  return {
    imbalance: total > 0 ? (sumBid - sumAsk) / total : 0,
    bidStrength,
    askStrength,
  };
}
