import type { SbeMessage } from '../../src/sbe/messages';

/** Messages per symbol, in order (unlike src/state/batch.ts groupBySymbol, kinds stay mixed). */
export function messagesBySymbol(messages: readonly SbeMessage[]): Map<string, SbeMessage[]> {
  const out = new Map<string, SbeMessage[]>();
  for (const m of messages) {
    const list = out.get(m.symbol) ?? [];
    list.push(m);
    out.set(m.symbol, list);
  }
  return out;
}
