// The one module that names Redis keys. Nothing else builds a key string.
//
// Without cluster mode the names are exactly the seed's (`ob:BTCUSDT`), the contract with the inference
// service. In cluster mode the symbol becomes a hash tag (`ob:{BTCUSDT}`) so every key of a symbol lands in
// one slot and a Lua script may touch them together.

export interface KeyOptions {
  readonly clusterMode: boolean;
}

export class Keys {
  constructor(private readonly options: KeyOptions) {}

  private tag(symbol: string): string {
    return this.options.clusterMode ? `{${symbol}}` : symbol;
  }

  /** Live order-book hash: last trade price, best bid/ask, top levels. No TTL. */
  orderBook(symbol: string): string {
    return `ob:${this.tag(symbol)}`;
  }

  /** Full local order book built from depth diffs, one side: hash price -> quantity (exact decimal strings). */
  bookLevels(symbol: string, side: 'bids' | 'asks'): string {
    return `book:${this.tag(symbol)}:${side}`;
  }

  /** Price index of one side of the full book: sorted set, member = exact price string, score = its value. */
  bookIndex(symbol: string, side: 'bids' | 'asks'): string {
    return `book:${this.tag(symbol)}:${side}:idx`;
  }

  /** Sync state of the full book: book_update_id, status (in_sync | out_of_sync), counters. */
  bookState(symbol: string): string {
    return `book:${this.tag(symbol)}:state`;
  }

  /** Depth diffs kept while the book is out of sync, for the re-anchor to replay (bounded list). */
  diffBuffer(symbol: string): string {
    return `book:${this.tag(symbol)}:buffer`;
  }

  /** Rolling trade statistics of one window (seed contract: tr:<SYMBOL>:1s, tr:<SYMBOL>:5s). TTL 300 s. */
  tradeWindow(symbol: string, seconds: number): string {
    return `tr:${this.tag(symbol)}:${seconds}s`;
  }

  /** Per-bucket trade aggregates (event time) from which the windows are computed: bounded hash. */
  tradeBuckets(symbol: string): string {
    return `tr:${this.tag(symbol)}:buckets`;
  }

  /** Trade stream state: last applied trade id, event time, gap counters and the open gaps awaiting repair. */
  tradeState(symbol: string): string {
    return `tr:${this.tag(symbol)}:state`;
  }

  /** Short price history (>= 10 s at sub-second resolution) for returns: hash bucket start -> last price. */
  priceHistory(symbol: string): string {
    return `px:${this.tag(symbol)}`;
  }

  /** The served ML feature vector (seed contract: feat:<SYMBOL>), TTL 120 s, written whole in one step. */
  features(symbol: string): string {
    return `feat:${this.tag(symbol)}`;
  }

  /** Capped stream of every feature vector written, exactly as served. */
  featureHistory(symbol: string): string {
    return `feat:${this.tag(symbol)}:history`;
  }

  /** Per-symbol lease of the feature writer: which sidecar computes the symbol's ticks (value = sidecar id). */
  featureLease(symbol: string): string {
    return `feat:${this.tag(symbol)}:lease`;
  }

  /** Dead-letter stream of a Kinesis stream: poison frames kept with their sequence number, frame and error. */
  deadLetters(stream: string): string {
    return `dlq:{${stream}}`;
  }

  /** Marker that a frame (or the undecodable rest of a record) was already dead-lettered: a redelivery must not
   * add it twice. */
  deadLetterSeen(
    stream: string,
    shardId: string,
    sequenceNumber: string,
    subSequenceNumber: number,
    frameIndex: number,
  ): string {
    return `dlq:{${stream}}:seen:${shardId}:${sequenceNumber}:${subSequenceNumber}:${frameIndex}`;
  }

  /** Per-error-code counts of dead letters of a stream (never trimmed, unlike the stream). */
  deadLetterCounts(stream: string): string {
    return `dlq:{${stream}}:counts`;
  }

  /** Claim of one dead letter by an `aggregator dlq redrive` while its put to Kinesis is in flight (value: the
   * redrive's token; short TTL), so two operators never put the same letter twice. */
  deadLetterRedriveClaim(stream: string, entryId: string): string {
    return `dlq:{${stream}}:redrive:${entryId}`;
  }

  /**
   * The per-symbol re-anchor lock, fleet-wide: SET NX EX 300 by the listener that runs the re-anchor (value: its
   * attempt token `<listener>|<request id>`), renewed while it runs, deleted by the swap or on release. While it
   * exists the depth script keeps the diffs it applies in book:<S>:buffer, so the swap can replay them.
   */
  reanchorFlag(symbol: string): string {
    return `reanchor:${this.tag(symbol)}`;
  }

  /** A request that arrived while the symbol's re-anchor was running (coalesced): hash, see reanchor-acquire. */
  reanchorPending(symbol: string): string {
    return `reanchor:${this.tag(symbol)}:pending`;
  }

  /** Re-anchor counters and the last outcome of a symbol (hash; what `aggregator reanchor --status` shows). */
  reanchorStats(symbol: string): string {
    return `reanchor:${this.tag(symbol)}:stats`;
  }

  /**
   * The exchange's ban of the fleet's REST calls (a 429/418 with Retry-After), shared by every listener: hash
   * until_ms, status, set_ms; it expires when the ban ends (lua/reanchor-rest-ban-1.lua). One per fleet.
   */
  restBan(): string {
    return 'reanchor:rest:ban';
  }

  /** The fleet's REST request-weight charges of the last minute (sorted set, lua/reanchor-rest-weight-1.lua). */
  restWeight(): string {
    return 'reanchor:rest:weight';
  }

  /** The durable stream of re-anchor requests, consumed by the listeners' consumer group (one per fleet). */
  reanchorRequests(): string {
    return 'reanchor:requests';
  }

  /** A processor child's telemetry report (JSON, short TTL): what the sidecar's /health and /metrics read. */
  processorReport(stream: string, shardId: string): string {
    return `ops:processor:{${stream}}:${shardId}`;
  }

  /** Index of the processor reports: sorted set, member `<stream>/<shardId>`, score = last update (ms). */
  processorReports(): string {
    return 'ops:processors';
  }

  /**
   * The temporary state of a re-anchor, built from REST snapshots and swapped in by lua/reanchor-swap-26.lua:
   * the seed's names with `new:` after the prefix (`ob:new:<S>`, `book:new:<S>:bids`, ...), same hash tag and so
   * the same slot as the live keys. Every one expires 600 s after the build, so an abandoned attempt cleans up.
   */
  temporary(symbol: string): TemporaryKeys {
    const t = `new:${this.tag(symbol)}`;
    return {
      orderBook: `ob:${t}`,
      bids: `book:${t}:bids`,
      asks: `book:${t}:asks`,
      bidsIndex: `book:${t}:bids:idx`,
      asksIndex: `book:${t}:asks:idx`,
      bookState: `book:${t}:state`,
      tradeWindow1s: `tr:${t}:1s`,
      tradeWindow5s: `tr:${t}:5s`,
      tradeBuckets: `tr:${t}:buckets`,
      tradeState: `tr:${t}:state`,
      priceHistory: `px:${t}`,
      features: `feat:${t}`,
    };
  }
}

/** The names of a symbol's temporary re-anchor state (Keys.temporary). */
export interface TemporaryKeys {
  /** ob:new:<S>: last_trade_* of the REST trades (written by the trade script); never renamed over ob:<S>. */
  readonly orderBook: string;
  readonly bids: string;
  readonly asks: string;
  readonly bidsIndex: string;
  readonly asksIndex: string;
  /** book:new:<S>:state: last_update_id, snapshot_ts_us, bids, asks (level counts), complete = 1 (written last). */
  readonly bookState: string;
  readonly tradeWindow1s: string;
  readonly tradeWindow5s: string;
  readonly tradeBuckets: string;
  readonly tradeState: string;
  readonly priceHistory: string;
  /** feat:new:<S>: optional; swapped over feat:<S> when present. */
  readonly features: string;
}
