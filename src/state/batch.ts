import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  SbeMessage,
  TradesStreamEvent,
} from '../sbe/messages';

// Pure grouping of a processRecords batch: every symbol's events of each kind, in arrival order, so that each
// symbol's state is updated by one script call per kind (a batch comes from one stream, so in practice one
// kind). The scripts decide what is new (by trade id or book update id), so order and duplicates are theirs.

export interface SymbolEvents {
  readonly symbol: string;
  readonly trades: TradesStreamEvent[];
  readonly bestBidAsks: BestBidAskStreamEvent[];
  /** depth20 snapshots and depth diffs, in arrival order. */
  readonly depth: Array<DepthSnapshotStreamEvent | DepthDiffStreamEvent>;
}

export function groupBySymbol(messages: readonly SbeMessage[]): Map<string, SymbolEvents> {
  const bySymbol = new Map<string, SymbolEvents>();
  for (const message of messages) {
    let group = bySymbol.get(message.symbol);
    if (group === undefined) {
      group = { symbol: message.symbol, trades: [], bestBidAsks: [], depth: [] };
      bySymbol.set(message.symbol, group);
    }
    switch (message.message) {
      case 'TradesStreamEvent':
        group.trades.push(message);
        break;
      case 'BestBidAskStreamEvent':
        group.bestBidAsks.push(message);
        break;
      case 'DepthSnapshotStreamEvent':
      case 'DepthDiffStreamEvent':
        group.depth.push(message);
        break;
    }
  }
  return bySymbol;
}
