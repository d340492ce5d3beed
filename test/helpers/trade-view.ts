import type { KeySnapshot } from './redis-snapshot';

// The trade state compared with a reference (tests against a control run or the reference over every event).

/**
 * The tr:<S>:state fields a trade-gap repair keeps for itself (lua/repair-trades-6.lua, trade-gaps.lua) and that a
 * state which never lost a trade does not have.
 */
export const REPAIR_BOOKKEEPING_FIELDS: readonly string[] = [
  'open_gaps',
  'gaps_repaired',
  'trades_repaired',
  'gaps_unrepairable',
  'trades_unrepairable',
  'last_unrepairable_from',
  'last_unrepairable_to',
  'last_gap_from',
  'last_gap_to',
];

/**
 * A tr:<S>:state hash without the repair's bookkeeping, and with gap_count / gap_missing at zero dropped (a
 * counter at zero reads the same written or absent: a control never wrote one). A copy.
 */
export function withoutRepairBookkeeping(state: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(state)) {
    if (REPAIR_BOOKKEEPING_FIELDS.includes(field)) continue;
    if ((field === 'gap_count' || field === 'gap_missing') && value === '0') continue;
    out[field] = value;
  }
  return out;
}

export interface TradeViewOptions {
  /** Compare as if no trade had been lost: drop the repair's bookkeeping (withoutRepairBookkeeping). */
  readonly repaired?: boolean;
}

/**
 * The trade state a re-anchor may not change: every trade key and field but the ones derived from the book's mid
 * (the windows' vwap_minus_mid and window_mid use ob:<S> mid_price, which a reference that is never anchored,
 * depth20 levels only, cannot share with an anchored book) and px_min_us (the script's own lower bound of the
 * stored history, not a value readers see); plus ob:<S>'s last trade fields.
 */
export function tradeView(
  snapshot: KeySnapshot,
  symbol: string,
  options: TradeViewOptions = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const stateKey = `tr:${symbol}:state`;
  for (const key of [
    `tr:${symbol}:1s`,
    `tr:${symbol}:5s`,
    `tr:${symbol}:buckets`,
    stateKey,
    `px:${symbol}`,
  ]) {
    let v = snapshot[key]?.value as Record<string, string> | undefined;
    if (v === undefined) {
      out[key] = undefined;
      continue;
    }
    if (options.repaired === true && key === stateKey) v = withoutRepairBookkeeping(v);
    out[key] = Object.fromEntries(
      Object.entries(v).filter(([f]) => f !== 'vwap_minus_mid' && f !== 'window_mid' && f !== 'px_min_us'),
    );
  }
  const ob = (snapshot[`ob:${symbol}`]?.value ?? {}) as Record<string, string>;
  out.ob = {
    last_trade_id: ob.last_trade_id,
    last_trade_price: ob.last_trade_price,
    last_trade_ts_us: ob.last_trade_ts_us,
  };
  return out;
}

/** Field-level differences of two trade views, for messages. */
export function viewDiff(live: Record<string, unknown>, ref: Record<string, unknown>): string {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(live), ...Object.keys(ref)])) {
    const a = (live[key] ?? {}) as Record<string, unknown>;
    const b = (ref[key] ?? {}) as Record<string, unknown>;
    for (const field of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (JSON.stringify(a[field]) !== JSON.stringify(b[field]))
        out.push(`${key} ${field}: live ${JSON.stringify(a[field])}, reference ${JSON.stringify(b[field])}`);
    }
  }
  return `trade state differs from the reference (${out.length} fields): ${out.slice(0, 30).join('; ')}`;
}
