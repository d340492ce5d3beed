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

  /** Dead-letter stream of a Kinesis stream: poison records kept with their sequence number and error. */
  deadLetters(stream: string): string {
    return `dlq:{${stream}}`;
  }

  /** Marker that a poison record was already dead-lettered (redelivery must not add it twice). */
  deadLetterSeen(stream: string, shardId: string, sequenceNumber: string, subSequenceNumber: number): string {
    return `dlq:{${stream}}:seen:${shardId}:${sequenceNumber}:${subSequenceNumber}`;
  }

  /** Per-error-code counts of dead-lettered records of a stream (never trimmed, unlike the stream). */
  deadLetterCounts(stream: string): string {
    return `dlq:{${stream}}:counts`;
  }
}
