// `aggregator features export` (composition): the served vectors of feat:<S>:history as JSON lines
// (src/features/served-lines.ts), read in pages so that a long history never arrives as one reply.

import { formatServedLine, servedVectorOf } from '../features/served-lines';
import type { ServedVector } from '../features/verify';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';

/** Entries per XRANGE call. */
export const EXPORT_PAGE = 1000;

/** A symbol's history entries, oldest first, page by page (each page after the last id of the previous one). */
export async function* servedVectorPages(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  pageSize = EXPORT_PAGE,
): AsyncIterable<ServedVector[]> {
  let start = '-';
  for (;;) {
    const entries = await client.xrange(keys.featureHistory(symbol), start, '+', 'COUNT', pageSize);
    if (entries.length === 0) return;
    yield entries.map(([id, flat]) => servedVectorOf(id, flat));
    if (entries.length < pageSize) return;
    start = `(${entries[entries.length - 1]![0]}`;
  }
}

/** Writes every served vector of the symbols, symbol by symbol, as lines; resolves with the count per symbol. */
export async function exportServedVectors(
  client: RedisClient,
  keys: Keys,
  symbols: readonly string[],
  write: (text: string) => void,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const symbol of symbols) {
    let n = 0;
    for await (const page of servedVectorPages(client, keys, symbol)) {
      write(page.map((v) => `${formatServedLine(symbol, v)}\n`).join(''));
      n += page.length;
    }
    counts.set(symbol, n);
  }
  return counts;
}
