import type {
  BestBidAskStreamEvent,
  DepthDiffStreamEvent,
  DepthSnapshotStreamEvent,
  SbeMessage,
  TradesStreamEvent,
} from '../sbe/messages';

// Pure grouping of a processRecords batch: every symbol's events of each kind, in arrival order, so that each
// symbol's state is updated by bounded script calls per kind (a batch comes from one stream, so in practice one
// kind). The scripts decide what is new (by trade id or book update id), so order and duplicates are theirs.

/** Where an event came from: what a dead letter of it needs (the state layer's writer fills the rest). */
export interface FrameOrigin {
  readonly stream: string;
  readonly shardId: string;
  readonly sequenceNumber: string;
  readonly subSequenceNumber: number;
  readonly partitionKey: string;
  readonly approximateArrivalTimestamp: number | undefined;
  /** Index of the frame in its record (records may hold several frames back to back). */
  readonly frameIndex: number;
  /** The frame's bytes as base64, computed only when a dead letter needs them. */
  readonly frameBase64: () => string;
}

/** A decoded, validated event and, when it came from a Kinesis record, its origin. */
export interface SourcedEvent {
  readonly message: SbeMessage;
  readonly origin?: FrameOrigin;
}

export interface SymbolEvents {
  readonly symbol: string;
  readonly trades: TradesStreamEvent[];
  readonly bestBidAsks: BestBidAskStreamEvent[];
  /** depth20 snapshots and depth diffs, in arrival order. */
  readonly depth: Array<DepthSnapshotStreamEvent | DepthDiffStreamEvent>;
  /** The origins of the events of each kind, when known (what a contained failure dead-letters). */
  readonly origins: { trades: FrameOrigin[]; bestBidAsks: FrameOrigin[]; depth: FrameOrigin[] };
}

export type EventKind = 'trades' | 'bestBidAsks' | 'depth';

function kindOf(message: SbeMessage): EventKind {
  switch (message.message) {
    case 'TradesStreamEvent':
      return 'trades';
    case 'BestBidAskStreamEvent':
      return 'bestBidAsks';
    case 'DepthSnapshotStreamEvent':
    case 'DepthDiffStreamEvent':
      return 'depth';
  }
}

/** Groups events (with their origins, when they have one) per symbol and kind, in arrival order. */
export function groupEvents(events: Iterable<SourcedEvent>): Map<string, SymbolEvents> {
  const bySymbol = new Map<string, SymbolEvents>();
  for (const { message, origin } of events) {
    let group = bySymbol.get(message.symbol);
    if (group === undefined) {
      group = {
        symbol: message.symbol,
        trades: [],
        bestBidAsks: [],
        depth: [],
        origins: { trades: [], bestBidAsks: [], depth: [] },
      };
      bySymbol.set(message.symbol, group);
    }
    const kind = kindOf(message);
    (group[kind] as SbeMessage[]).push(message);
    if (origin !== undefined) group.origins[kind].push(origin);
  }
  return bySymbol;
}

/** Groups bare messages (no origins: a failure of their calls cannot be dead-lettered, only reported). */
export function groupBySymbol(messages: readonly SbeMessage[]): Map<string, SymbolEvents> {
  return groupEvents(messages.map((message) => ({ message })));
}
