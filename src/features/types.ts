// The ML feature vector's inputs and output. The pure feature functions (compute.ts) turn a StateSnapshot
// read from Redis at one moment into a FeatureVector; the sidecar serves it as feat:<SYMBOL>, and the offline
// verifier recomputes it from a replayed event log (training/serving parity).

/** Bumped whenever a feature's definition, name or unit changes, so consumers can detect it. */
export const FEATURE_SCHEMA_VERSION = 2;

/** How computeFeatures judges the times of its inputs. */
export interface FeatureOptions {
  /**
   * How far ahead of the time the vector is computed for an input time may be, ms (processing.max_future_skew_ms,
   * default DEFAULT_MAX_FUTURE_SKEW_MS). A time further ahead is a clock error: the input counts as missing.
   */
  readonly maxFutureSkewMs?: number;
}

/** Every Redis hash a feature vector is computed from, as read in one atomic step (strings as stored). */
export interface StateSnapshot {
  readonly symbol: string;
  /** ob:<SYMBOL> */
  readonly orderBook: Readonly<Record<string, string>>;
  /** tr:<SYMBOL>:1s and tr:<SYMBOL>:5s (empty when expired or never written) */
  readonly trades1s: Readonly<Record<string, string>>;
  readonly trades5s: Readonly<Record<string, string>>;
  /** tr:<SYMBOL>:state (event_time_us, last_trade_id, ...) */
  readonly tradeState: Readonly<Record<string, string>>;
  /** px:<SYMBOL>: 100 ms bucket start (us, decimal string) -> last trade price (exact decimal string) */
  readonly priceHistory: Readonly<Record<string, string>>;
  /** book:<SYMBOL>:state (status, reason, book_update_id, ...) */
  readonly bookState: Readonly<Record<string, string>>;
}

/** The served vector: numbers are finite (never NaN/Infinity); see docs/features.md for every definition. */
export type FeatureVector = Readonly<Record<string, number | string>>;
