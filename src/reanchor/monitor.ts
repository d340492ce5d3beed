import type { Logger } from '../logging/logger';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';
import { requestReanchor, RequestThrottle } from './requests';

// The sidecar's re-anchor monitor: for each symbol this sidecar serves (its feature leases), it requests a
// re-anchor when the book is out of sync (never anchored, a gap or a crossed book: the processor requests those
// too, this is the backstop when that request was lost or the re-anchor failed) or when the book data has not
// changed for staleAfterMs (stale), and a trade repair when an in-sync symbol has open trade-id gaps (tr:<S>:state
// open_gaps: the backstop when the processor's trade_gap request was throttled or lost, or its repair failed).
// Nothing is requested while the symbol's re-anchor runs, and at most one request per symbol per throttle interval
// goes out.

/** What the monitor reads of a symbol. */
export interface BookObservation {
  /** book:<S>:state status, undefined when the symbol has no book state at all (no data yet). */
  readonly status: string | undefined;
  readonly reason: string;
  /** A value that changes whenever book data arrives: last_seen_u and the ob: ids. */
  readonly progress: string;
  readonly reanchorRunning: boolean;
  /** tr:<S>:state open_gaps is not empty (optional: false when absent). */
  readonly openTradeGaps?: boolean;
}

/** Per-symbol memory of when the book data last changed (wall clock). */
export interface ProgressMemory {
  progress: string;
  changedMs: number;
}

/**
 * Decides whether to request a re-anchor now; updates `memory`. Pure apart from `memory`.
 * Returns the request reason, or undefined.
 */
export function monitorDecision(
  observation: BookObservation,
  memory: ProgressMemory | undefined,
  nowMs: number,
  staleAfterMs: number,
): { reason: string | undefined; memory: ProgressMemory | undefined } {
  if (observation.status === undefined) {
    // No book data (yet): only the trades can need anything.
    const reason =
      observation.openTradeGaps === true && !observation.reanchorRunning ? 'trade_gap' : undefined;
    return { reason, memory: undefined };
  }
  const next: ProgressMemory =
    memory === undefined || memory.progress !== observation.progress
      ? { progress: observation.progress, changedMs: nowMs }
      : memory;
  if (observation.reanchorRunning) return { reason: undefined, memory: next };
  if (observation.status !== 'in_sync') {
    return {
      reason: `out_of_sync:${observation.reason === '' ? 'unknown' : observation.reason}`,
      memory: next,
    };
  }
  if (nowMs - next.changedMs >= staleAfterMs) return { reason: 'stale', memory: next };
  if (observation.openTradeGaps === true) return { reason: 'trade_gap', memory: next };
  return { reason: undefined, memory: next };
}

export interface MonitorOptions {
  readonly client: RedisClient;
  readonly keys: Keys;
  /** The symbols to watch now (the sidecar's held feature leases). */
  readonly symbols: () => readonly string[];
  readonly staleAfterMs: number;
  readonly requestIntervalMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

export class ReanchorMonitor {
  private readonly memory = new Map<string, ProgressMemory>();
  private readonly throttle: RequestThrottle;
  private readonly now: () => number;
  requested = 0;

  constructor(private readonly options: MonitorOptions) {
    this.throttle = new RequestThrottle(options.requestIntervalMs);
    this.now = options.now ?? Date.now;
  }

  async observe(symbol: string): Promise<BookObservation> {
    const { client, keys } = this.options;
    const [state, ob, flag, gaps] = await Promise.all([
      client.hmget(keys.bookState(symbol), 'status', 'reason', 'last_seen_u'),
      client.hmget(keys.orderBook(symbol), 'depth20_update_id', 'best_update_id'),
      client.exists(keys.reanchorFlag(symbol)),
      client.hget(keys.tradeState(symbol), 'open_gaps'),
    ]);
    return {
      status: state[0] ?? undefined,
      reason: state[1] ?? '',
      progress: `${state[2] ?? ''}/${ob[0] ?? ''}/${ob[1] ?? ''}`,
      reanchorRunning: flag === 1,
      openTradeGaps: gaps !== null && gaps !== '',
    };
  }

  /** One pass over the watched symbols; returns the symbols a request was queued for. */
  async checkOnce(): Promise<string[]> {
    const queued: string[] = [];
    for (const symbol of this.options.symbols()) {
      const now = this.now();
      const observation = await this.observe(symbol);
      const { reason, memory } = monitorDecision(
        observation,
        this.memory.get(symbol),
        now,
        this.options.staleAfterMs,
      );
      if (memory === undefined) this.memory.delete(symbol);
      else this.memory.set(symbol, memory);
      if (reason === undefined || !this.throttle.allow(symbol, now)) continue;
      const id = await requestReanchor(this.options.client, this.options.keys, {
        symbol,
        reason,
        source: 'sidecar',
      });
      this.requested++;
      queued.push(symbol);
      this.options.logger.warn('re-anchor requested by the sidecar', { symbol, reason, requestId: id });
    }
    return queued;
  }
}
