import type {
  BestBidAskStreamEvent,
  DepthSnapshotStreamEvent,
  PriceLevel,
  SbeMessage,
  TradesStreamEvent,
} from '../sbe/messages';
import { formatDecimal } from '../sbe/decimal';

// Pure reduction of a processRecords batch into one script call per symbol: only the newest event of each
// kind can change the minimal live state, so the rest need not cross the network. Order inside the batch
// does not matter (Kinesis may redeliver), "newest" is decided by ids, exactly as the Lua script does.

export interface NewestTrade {
  readonly id: bigint;
  readonly price: string;
  readonly timeUs: bigint;
}

export interface NewestBestBidAsk {
  readonly bookUpdateId: bigint;
  readonly bid: string;
  readonly bidQty: string;
  readonly ask: string;
  readonly askQty: string;
  readonly spread: string;
  readonly eventTimeUs: bigint;
}

export interface NewestDepth {
  readonly bookUpdateId: bigint;
  readonly eventTimeUs: bigint;
  /** field -> value for the top levels (bid1_p, bid1_q, ..., askN_q); missing levels are "". */
  readonly levels: ReadonlyArray<readonly [string, string]>;
}

export interface SymbolBatch {
  readonly symbol: string;
  trade: NewestTrade | undefined;
  bestBidAsk: NewestBestBidAsk | undefined;
  depth: NewestDepth | undefined;
  /** Events seen for this symbol in the batch, by message name (for counters). */
  readonly counts: Record<SbeMessage['message'], number>;
}

function emptyBatch(symbol: string): SymbolBatch {
  return {
    symbol,
    trade: undefined,
    bestBidAsk: undefined,
    depth: undefined,
    counts: {
      TradesStreamEvent: 0,
      BestBidAskStreamEvent: 0,
      DepthSnapshotStreamEvent: 0,
      DepthDiffStreamEvent: 0,
    },
  };
}

/** bid - ask difference at one exponent, kept exact. */
export function exactSpread(event: BestBidAskStreamEvent): string {
  return formatDecimal(event.askPriceMantissa - event.bidPriceMantissa, event.priceExponent);
}

function newestTrade(event: TradesStreamEvent, current: NewestTrade | undefined): NewestTrade | undefined {
  let best = current;
  for (const trade of event.trades) {
    if (best === undefined || trade.id > best.id) {
      best = {
        id: trade.id,
        price: formatDecimal(trade.priceMantissa, event.priceExponent),
        timeUs: event.transactTime,
      };
    }
  }
  return best;
}

function levelFields(
  side: 'bid' | 'ask',
  levels: readonly PriceLevel[],
  count: number,
  event: DepthSnapshotStreamEvent,
) {
  const fields: Array<readonly [string, string]> = [];
  for (let i = 0; i < count; i++) {
    const level = levels[i];
    fields.push([`${side}${i + 1}_p`, level ? formatDecimal(level.priceMantissa, event.priceExponent) : '']);
    fields.push([`${side}${i + 1}_q`, level ? formatDecimal(level.qtyMantissa, event.qtyExponent) : '']);
  }
  return fields;
}

/** Groups decoded messages by symbol, keeping the newest trade, best bid/ask and depth20 snapshot of each. */
export function reduceBatch(
  messages: readonly SbeMessage[],
  orderBookLevels: number,
): Map<string, SymbolBatch> {
  const bySymbol = new Map<string, SymbolBatch>();
  for (const message of messages) {
    let batch = bySymbol.get(message.symbol);
    if (batch === undefined) {
      batch = emptyBatch(message.symbol);
      bySymbol.set(message.symbol, batch);
    }
    batch.counts[message.message] += 1;
    switch (message.message) {
      case 'TradesStreamEvent':
        batch.trade = newestTrade(message, batch.trade);
        break;
      case 'BestBidAskStreamEvent':
        if (batch.bestBidAsk === undefined || message.bookUpdateId > batch.bestBidAsk.bookUpdateId) {
          batch.bestBidAsk = {
            bookUpdateId: message.bookUpdateId,
            bid: formatDecimal(message.bidPriceMantissa, message.priceExponent),
            bidQty: formatDecimal(message.bidQtyMantissa, message.qtyExponent),
            ask: formatDecimal(message.askPriceMantissa, message.priceExponent),
            askQty: formatDecimal(message.askQtyMantissa, message.qtyExponent),
            spread: exactSpread(message),
            eventTimeUs: message.eventTime,
          };
        }
        break;
      case 'DepthSnapshotStreamEvent':
        if (batch.depth === undefined || message.bookUpdateId > batch.depth.bookUpdateId) {
          batch.depth = {
            bookUpdateId: message.bookUpdateId,
            eventTimeUs: message.eventTime,
            levels: [
              ...levelFields('bid', message.bids, orderBookLevels, message),
              ...levelFields('ask', message.asks, orderBookLevels, message),
            ],
          };
        }
        break;
      case 'DepthDiffStreamEvent':
        // The full diff-based book is built by the hot-state layer (issue 3); here diffs are only counted.
        break;
    }
  }
  return bySymbol;
}

/** ARGV of apply-market-batch-1.lua for one symbol (see the script's header for the layout). */
export function applyMarketBatchArgs(batch: SymbolBatch): string[] {
  const { trade, bestBidAsk: bba, depth } = batch;
  const args = [
    trade ? trade.id.toString() : '',
    trade ? trade.price : '',
    trade ? trade.timeUs.toString() : '',
    bba ? bba.bookUpdateId.toString() : '',
    bba ? bba.bid : '',
    bba ? bba.bidQty : '',
    bba ? bba.ask : '',
    bba ? bba.askQty : '',
    bba ? bba.spread : '',
    bba ? bba.eventTimeUs.toString() : '',
    depth ? depth.bookUpdateId.toString() : '',
    depth ? depth.eventTimeUs.toString() : '',
  ];
  if (depth) for (const [field, value] of depth.levels) args.push(field, value);
  return args;
}
