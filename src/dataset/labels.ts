import { parseNumber } from '../features/compute';
import { horizonName } from './ticks';

// Labels of a dataset row (issue 16). Pure. For each horizon H, from the state at t + H (the events with event
// time <= t + H): the mid price (ob:<S> mid_price) and the last trade price (ob:<S> last_trade_price), exact
// decimal strings as stored, and the return of the mid from t to t + H, mid(t + H) / mid(t) - 1 (a double;
// mid(t) from the state at t, without the features' latency). A label whose t + H is past the archive's end (the
// newest event time read) is empty (null), never a value of another horizon or time; so is a price the state
// does not have, and a return whose mids are missing or mid(t) is not > 0.

/** The prices a state shows at one read point ("" fields read as missing). */
export interface PriceMark {
  readonly mid: string | undefined;
  readonly last: string | undefined;
}

/** A price mark from ob:<S> (the snapshot's orderBook hash). */
export function priceMarkOf(orderBook: Readonly<Record<string, string>>): PriceMark {
  const value = (raw: string | undefined) => (raw === undefined || raw === '' ? undefined : raw);
  return { mid: value(orderBook.mid_price), last: value(orderBook.last_trade_price) };
}

export type LabelValue = string | number | null;

/** The label columns of the horizons, in row order: per horizon mid, last price, return. */
export function labelColumns(
  horizonsMs: readonly number[],
): Array<{ name: string; type: 'string' | 'double' }> {
  return horizonsMs.flatMap((h) => {
    const n = horizonName(h);
    return [
      { name: `label_mid_${n}`, type: 'string' as const },
      { name: `label_price_${n}`, type: 'string' as const },
      { name: `label_ret_${n}`, type: 'double' as const },
    ];
  });
}

/**
 * The labels of tick t. `markAt(ms)` is the price mark of the state at that read point, or undefined when the
 * point is past the archive's end (then every label of that horizon is null).
 */
export function labelsFor(
  tickMs: number,
  horizonsMs: readonly number[],
  markAt: (ms: number) => PriceMark | undefined,
): LabelValue[] {
  const base = markAt(tickMs);
  const baseMid = parseNumber(base?.mid);
  return horizonsMs.flatMap((h) => {
    const mark = markAt(tickMs + h);
    if (mark === undefined) return [null, null, null];
    const mid = parseNumber(mark.mid);
    const ret = mid !== undefined && baseMid !== undefined && baseMid > 0 ? mid / baseMid - 1 : null;
    return [mark.mid ?? null, mark.last ?? null, ret];
  });
}
