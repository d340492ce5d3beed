// A log line per key (e.g. error code and symbol) at most once per interval: the first occurrence is logged at
// once, later ones are counted and the count rides on the next line logged for that key. A flood of bad records
// costs a few lines a minute, never one per record, and nothing goes unreported.

export interface RateLimitedLine {
  /** Occurrences of this key since its last line, this one included. */
  readonly occurrences: number;
}

export class LogRateLimiter {
  private readonly keys = new Map<string, { lastMs: number; pending: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
    /** Keys remembered at most (the oldest is forgotten first), so arbitrary keys cannot grow memory. */
    private readonly maxKeys = 10_000,
  ) {}

  /** Counts one occurrence; returns the line to log now, or undefined while the key's interval runs. */
  hit(key: string): RateLimitedLine | undefined {
    const t = this.now();
    const entry = this.keys.get(key);
    if (entry === undefined) {
      if (this.keys.size >= this.maxKeys) {
        const oldest = this.keys.keys().next().value;
        if (oldest !== undefined) this.keys.delete(oldest);
      }
      this.keys.set(key, { lastMs: t, pending: 0 });
      return { occurrences: 1 };
    }
    entry.pending++;
    if (t - entry.lastMs < this.intervalMs) return undefined;
    const occurrences = entry.pending;
    entry.lastMs = t;
    entry.pending = 0;
    return { occurrences };
  }
}
