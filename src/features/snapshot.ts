import type { Result } from 'ioredis';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';
import type { StateSnapshot } from './types';

// Reads a symbol's StateSnapshot with ONE call of lua/read-feature-inputs-6.lua (read-only): the six input
// hashes come from a single consistent state, whatever the processors write meanwhile. Cluster-safe: every key
// carries the symbol's hash tag.

declare module 'ioredis' {
  interface RedisCommander<Context> {
    readFeatureInputs(
      obKey: string,
      tr1Key: string,
      tr5Key: string,
      tradeStateKey: string,
      priceHistoryKey: string,
      bookStateKey: string,
    ): Result<Array<Array<string | Buffer>>, Context>;
  }
}

/** A flat HGETALL reply (field, value, ...) as a record. */
export function flatToRecord(flat: readonly unknown[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!flat) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

export async function readSnapshot(client: RedisClient, keys: Keys, symbol: string): Promise<StateSnapshot> {
  const reply = await client.readFeatureInputs(
    keys.orderBook(symbol),
    keys.tradeWindow(symbol, 1),
    keys.tradeWindow(symbol, 5),
    keys.tradeState(symbol),
    keys.priceHistory(symbol),
    keys.bookState(symbol),
  );
  return {
    symbol,
    orderBook: flatToRecord(reply[0]),
    trades1s: flatToRecord(reply[1]),
    trades5s: flatToRecord(reply[2]),
    tradeState: flatToRecord(reply[3]),
    priceHistory: flatToRecord(reply[4]),
    bookState: flatToRecord(reply[5]),
  };
}
