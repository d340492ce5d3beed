import type { Result } from 'ioredis';
import type { Keys } from '../keys';

// The interface of the three order-book scripts: their typed commands (declaration merging into ioredis'
// RedisCommander; src/state/redis.ts defines them on every connection) and their KEYS, all of one hash slot.
//   lua/apply-depth-batch-12.lua   a depth-stream batch: depth20 snapshots and depth diffs
//   lua/apply-best-bid-ask-5.lua   a bestBidAsk-stream batch
//   lua/anchor-book-11.lua         anchoring on a REST depth snapshot plus the diffs buffered while out of sync

/** KEYS of apply-depth-batch and anchor-book up to the trade windows (the depth batch adds the re-anchor flag). */
type DepthScriptKeys = [
  obKey: string,
  bidsKey: string,
  asksKey: string,
  bidsIndexKey: string,
  asksIndexKey: string,
  stateKey: string,
  bufferKey: string,
  tradeWindow1sKey: string,
  tradeWindow5sKey: string,
  tradeBucketsKey: string,
  tradeStateKey: string,
];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    applyDepthBatch(
      ...keysAndArgs: [...DepthScriptKeys, reanchorFlagKey: string, ...args: string[]]
    ): Result<unknown[], Context>;
    applyBestBidAsk(
      obKey: string,
      tradeWindow1sKey: string,
      tradeWindow5sKey: string,
      tradeBucketsKey: string,
      tradeStateKey: string,
      ...args: string[]
    ): Result<unknown[], Context>;
    anchorBook(...keysAndArgs: [...DepthScriptKeys, ...args: string[]]): Result<unknown[], Context>;
  }
}

/** The keys of a symbol's full book: ob:, bids, asks, their indexes, state, buffer. */
type BookKeys = [string, string, string, string, string, string, string];
/** The trade-window keys: tr:<S>:1s, :5s, :buckets, :state. */
type WindowKeys = [string, string, string, string];

function bookKeys(keys: Keys, symbol: string): BookKeys {
  return [
    keys.orderBook(symbol),
    keys.bookLevels(symbol, 'bids'),
    keys.bookLevels(symbol, 'asks'),
    keys.bookIndex(symbol, 'bids'),
    keys.bookIndex(symbol, 'asks'),
    keys.bookState(symbol),
    keys.diffBuffer(symbol),
  ];
}

/** The trade-window keys refresh_trade_windows takes after ob:. */
function windowKeys(keys: Keys, symbol: string): WindowKeys {
  return [
    keys.tradeWindow(symbol, 1),
    keys.tradeWindow(symbol, 5),
    keys.tradeBuckets(symbol),
    keys.tradeState(symbol),
  ];
}

/**
 * KEYS of apply-depth-batch-12.lua (the book keys, the trade-window keys, then the re-anchor flag reanchor:<S>), all
 * of one hash slot.
 */
export function depthBatchKeys(keys: Keys, symbol: string): [...BookKeys, ...WindowKeys, string] {
  return [...bookKeys(keys, symbol), ...windowKeys(keys, symbol), keys.reanchorFlag(symbol)];
}

/** KEYS of apply-best-bid-ask-5.lua. */
export function bestBidAskKeys(keys: Keys, symbol: string): [string, ...WindowKeys] {
  return [keys.orderBook(symbol), ...windowKeys(keys, symbol)];
}

/** KEYS of anchor-book-11.lua (apply-depth-batch-12.lua's first 11: no re-anchor flag). */
export function anchorKeys(keys: Keys, symbol: string): [...BookKeys, ...WindowKeys] {
  return [...bookKeys(keys, symbol), ...windowKeys(keys, symbol)];
}
