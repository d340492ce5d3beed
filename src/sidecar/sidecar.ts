import { EventEmitter } from 'node:events';
import type { FeatureOptions, FeatureVector, StateSnapshot } from '../features/types';
import type { Logger } from '../logging/logger';
import type { Keys } from '../state/keys';
import { logRedisFailure, type RedisOutage } from '../state/outage';
import type { RedisClient } from '../state/redis';
import { withRetry } from '../state/retry';
import { chooseVector, DEFAULT_DEGRADED_POLICY, type DegradedPolicy, type ServeMode } from './degraded';
import { missedTicks, nextTickAt } from './schedule';
import { RedisFeatureStore, type FeatureStore } from './store';

// The feature sidecar: every interval, aligned to the wall clock (schedule.ts), for each symbol it holds the
// lease of, it reads one atomic StateSnapshot, computes the FeatureVector and serves it as feat:<SYMBOL>
// through a conditional Lua write (lease holder only, newer tick only, whole hash at once).
//
// Fleet safety: per-symbol lease feat:<SYMBOL>:lease (value = sidecar id, TTL = leaseTtlMs, default 1.5
// intervals), acquired with SET NX PX and renewed by its holder at every tick. A holder that dies after
// renewing at tick T keeps the lease until T + 1.5 I; the others try at every tick, so one of them takes it at
// tick T + 2 I: a dead holder is replaced within 2 intervals of its last renewal, losing exactly one tick
// (T + I), as long as a tick's lease call happens within 0.5 I of the tick. A clean stop releases the leases,
// so the next tick is taken over at once. The write script re-checks the lease and the tick, so even two
// sidecars that both believe they hold the lease at a hand-over cannot both write a tick.
//
// Ticks never overlap: the next tick is scheduled only once the current one has finished, at the next aligned
// time after that (ticks that passed meanwhile are skipped and counted). Redis errors are retried within the
// tick, until its deadline (tickBudget of the interval after the tick time), then the tick of that symbol is
// skipped and reported as failed.

export type ReadSnapshot = (client: RedisClient, keys: Keys, symbol: string) => Promise<StateSnapshot>;
export type ComputeFeatures = (
  snapshot: StateSnapshot,
  asOfMs: number,
  options?: FeatureOptions,
) => FeatureVector;

export interface SidecarTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface FeatureSidecarOptions {
  /** The process's Redis outage tracker: failures of the connection go there (one line per outage), not to one
   * line per retry and tick. */
  readonly outage?: RedisOutage;
  readonly client: RedisClient;
  readonly keys: Keys;
  readonly symbols: readonly string[];
  readonly intervalMs: number;
  readonly sidecarId: string;
  /** Approximate MAXLEN of feat:<SYMBOL>:history. */
  readonly historyMaxLen: number;
  readonly readSnapshot: ReadSnapshot;
  readonly computeFeatures: ComputeFeatures;
  /** Passed to computeFeatures at every tick (the CLI: processing.max_future_skew_ms). */
  readonly featureOptions?: FeatureOptions;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly timers?: SidecarTimers;
  /** Lease operations and the conditional write; default: the Lua scripts on `client`. */
  readonly store?: FeatureStore;
  /** Default 1.5 * intervalMs; must be > intervalMs and < 2 * intervalMs for the takeover bound. */
  readonly leaseTtlMs?: number;
  /** Share of the interval after the tick time within which the tick's Redis calls may be retried (0.8). */
  readonly tickBudget?: number;
  /** Retries per Redis call within a tick (default 5; the tick deadline may end them sooner). */
  readonly retries?: number;
  readonly degraded?: Partial<DegradedPolicy>;
  /** Release held leases on stop() (default true). False simulates a crash in tests. */
  readonly releaseOnStop?: boolean;
}

interface ResultBase {
  readonly symbol: string;
  readonly tickMs: number;
  /** Redis retries spent on this symbol in this tick. */
  readonly retries: number;
}

/** One per symbol per tick: the typed events for metrics. */
export type TickResult =
  | (ResultBase & {
      readonly kind: 'written';
      readonly completeness: number;
      /** Reading the snapshot and computing the vector (the write excluded), ms. */
      readonly computeMs: number;
    })
  | (ResultBase & {
      readonly kind: 'degraded';
      readonly computeMs: number;
      readonly mode: Exclude<ServeMode, 'fresh'>;
      readonly computedCompleteness: number;
    })
  | (ResultBase & { readonly kind: 'not-holder'; readonly reason: 'lease' | 'lost-lease' | 'stale-tick' })
  | (ResultBase & { readonly kind: 'failed'; readonly error: string });

export interface SidecarStats {
  ticks: number;
  written: number;
  degraded: number;
  notHolder: number;
  failed: number;
  redisRetries: number;
  skippedTicks: number;
}

const globalTimers: SidecarTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class FeatureSidecar {
  private readonly events = new EventEmitter();
  private readonly now: () => number;
  private readonly timers: SidecarTimers;
  private readonly store: FeatureStore;
  private readonly leaseTtlMs: number;
  private readonly tickBudget: number;
  private readonly retries: number;
  private readonly policy: DegradedPolicy;
  private readonly lastGood = new Map<string, FeatureVector>();
  private readonly held = new Set<string>();
  private readonly counters: SidecarStats = {
    ticks: 0,
    written: 0,
    degraded: 0,
    notHolder: 0,
    failed: 0,
    redisRetries: 0,
    skippedTicks: 0,
  };
  private running = false;
  private timer: unknown;
  private inFlight: Promise<void> | undefined;
  private lastTickMs: number | undefined;

  constructor(private readonly options: FeatureSidecarOptions) {
    const { intervalMs } = options;
    if (!Number.isInteger(intervalMs) || intervalMs <= 0) {
      throw new RangeError(`intervalMs must be a positive integer, got ${intervalMs}`);
    }
    if (options.symbols.length === 0) throw new RangeError('symbols must not be empty');
    if (options.sidecarId === '') throw new RangeError('sidecarId must not be empty');
    if (!Number.isInteger(options.historyMaxLen) || options.historyMaxLen <= 0) {
      throw new RangeError(`historyMaxLen must be a positive integer, got ${options.historyMaxLen}`);
    }
    this.leaseTtlMs = options.leaseTtlMs ?? Math.round(1.5 * intervalMs);
    if (this.leaseTtlMs <= intervalMs || this.leaseTtlMs >= 2 * intervalMs) {
      throw new RangeError(
        `leaseTtlMs must be between intervalMs and 2 * intervalMs (exclusive), got ${this.leaseTtlMs}`,
      );
    }
    this.tickBudget = options.tickBudget ?? 0.8;
    if (!(this.tickBudget > 0 && this.tickBudget <= 1)) {
      throw new RangeError(`tickBudget must be in (0, 1], got ${this.tickBudget}`);
    }
    this.now = options.now ?? (() => Date.now());
    this.timers = options.timers ?? globalTimers;
    this.store = options.store ?? new RedisFeatureStore(options.client, options.keys);
    this.retries = options.retries ?? 5;
    this.policy = { ...DEFAULT_DEGRADED_POLICY, ...options.degraded };
  }

  get id(): string {
    return this.options.sidecarId;
  }

  /** Symbols whose lease this sidecar held at its last tick. */
  heldSymbols(): string[] {
    return [...this.held].sort();
  }

  stats(): Readonly<SidecarStats> {
    return { ...this.counters };
  }

  on(event: 'tick', listener: (result: TickResult) => void): this {
    this.events.on(event, listener);
    return this;
  }

  off(event: 'tick', listener: (result: TickResult) => void): this {
    this.events.off(event, listener);
    return this;
  }

  start(): void {
    if (this.running) throw new Error('the sidecar is already running');
    this.running = true;
    this.options.logger.info('feature sidecar started', {
      sidecarId: this.id,
      symbols: this.options.symbols,
      intervalMs: this.options.intervalMs,
      leaseTtlMs: this.leaseTtlMs,
    });
    this.scheduleNext();
  }

  /** Stops scheduling, waits for an in-flight tick, then (by default) releases the held leases. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.inFlight;
    if (this.options.releaseOnStop ?? true) {
      const symbols = [...this.held];
      this.held.clear();
      await Promise.all(
        symbols.map(async (symbol) => {
          try {
            await this.store.releaseLease(symbol, this.id);
          } catch (err) {
            // The lease then expires by itself within leaseTtlMs.
            this.options.logger.warn('could not release the feature lease', {
              symbol,
              error: (err as Error).message,
            });
          }
        }),
      );
    }
    this.options.logger.info('feature sidecar stopped', { sidecarId: this.id, ...this.counters });
  }

  private scheduleNext(): void {
    if (!this.running) return;
    const { intervalMs } = this.options;
    const now = this.now();
    let tickMs = nextTickAt(now, intervalMs);
    if (this.lastTickMs !== undefined) {
      // A timer that fired a little early must not run the same tick twice.
      tickMs = Math.max(tickMs, this.lastTickMs + intervalMs);
      const missed = missedTicks(this.lastTickMs, tickMs, intervalMs);
      if (missed > 0) {
        this.counters.skippedTicks += missed;
        // During a Redis outage every tick waits out its calls' timeouts: part of the outage (logged once), not news.
        const level = this.options.outage?.waitingSinceMs === undefined ? 'warn' : 'debug';
        this.options.logger.log(level, 'tick overran its interval; skipping ticks', {
          missed,
          lastTickMs: this.lastTickMs,
          nextTickMs: tickMs,
        });
      }
    }
    this.timer = this.timers.setTimeout(() => this.fire(tickMs), Math.max(0, tickMs - now));
  }

  private fire(tickMs: number): void {
    this.timer = undefined;
    if (!this.running) return;
    this.inFlight = this.runTick(tickMs)
      .then(
        () => undefined,
        (err: unknown) => {
          this.options.logger.error('feature tick crashed', { tickMs, error: (err as Error).message });
        },
      )
      .finally(() => {
        this.inFlight = undefined;
        this.lastTickMs = tickMs;
        this.scheduleNext();
      });
  }

  /** Runs one tick for every symbol (exposed for tests and tools; start() drives it on the schedule). */
  async runTick(tickMs: number): Promise<TickResult[]> {
    this.counters.ticks++;
    const deadline = tickMs + Math.floor(this.options.intervalMs * this.tickBudget);
    const results = await Promise.all(
      this.options.symbols.map((symbol) => this.tickSymbol(symbol, tickMs, deadline)),
    );
    for (const result of results) {
      this.count(result);
      this.events.emit('tick', result);
    }
    return results;
  }

  private count(result: TickResult): void {
    if (result.kind === 'written') this.counters.written++;
    else if (result.kind === 'degraded') this.counters.degraded++;
    else if (result.kind === 'not-holder') this.counters.notHolder++;
    else this.counters.failed++;
  }

  private sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      this.timers.setTimeout(resolve, ms);
    });

  private async tickSymbol(symbol: string, tickMs: number, deadline: number): Promise<TickResult> {
    const { logger, intervalMs } = this.options;
    let retries = 0;
    const retry = <T>(step: string, operation: () => Promise<T>): Promise<T> =>
      withRetry(operation, {
        deadline,
        retries: this.retries,
        baseDelayMs: Math.max(1, Math.min(50, Math.floor(intervalMs / 20))),
        maxDelayMs: Math.max(1, Math.floor(intervalMs / 4)),
        now: this.now,
        sleep: this.sleep,
        rng: () => 1, // retries within one tick of the lease holder: nothing to spread
        onRetry: (attempt, err, delayMs) => {
          retries++;
          this.counters.redisRetries++;
          logRedisFailure(
            this.options.outage,
            logger,
            'warn',
            'feature sidecar redis call failed; retrying within the tick',
            err,
            { symbol, tickMs, step, attempt, delayMs },
          );
        },
      });

    try {
      const lease = await retry('lease', () => this.store.renewLease(symbol, this.id, this.leaseTtlMs));
      if (lease === 'held-by-other') {
        if (this.held.delete(symbol))
          logger.info('feature lease lost', { symbol, tickMs, sidecarId: this.id });
        return { kind: 'not-holder', reason: 'lease', symbol, tickMs, retries };
      }
      if (lease === 'acquired') {
        this.held.add(symbol);
        logger.info('feature lease acquired', { symbol, tickMs, sidecarId: this.id });
      }
      const computeStarted = process.hrtime.bigint();
      const snapshot = await retry('read', () =>
        this.options.readSnapshot(this.options.client, this.options.keys, symbol),
      );
      const computed = this.options.computeFeatures(snapshot, tickMs, this.options.featureOptions);
      const computeMs = Number(process.hrtime.bigint() - computeStarted) / 1e6;
      const served = chooseVector(computed, this.lastGood.get(symbol), tickMs, this.policy);
      const writeRetriesBefore = retries;
      const outcome = await retry('write', () =>
        this.store.write({
          symbol,
          sidecarId: this.id,
          tickMs,
          vector: served.vector,
          historyMaxLen: this.options.historyMaxLen,
        }),
      );
      if (outcome === 'not-holder') {
        this.held.delete(symbol);
        logger.info('feature lease lost before the write', { symbol, tickMs, sidecarId: this.id });
        return { kind: 'not-holder', reason: 'lost-lease', symbol, tickMs, retries };
      }
      if (outcome === 'stale-tick' && retries === writeRetriesBefore) {
        logger.warn('feature write refused: tick not newer than the served one', { symbol, tickMs });
        return { kind: 'not-holder', reason: 'stale-tick', symbol, tickMs, retries };
      }
      // 'written', or 'stale-tick' after a retry: an earlier attempt whose reply was lost (almost surely) wrote it.
      if (served.mode === 'fresh') {
        this.lastGood.set(symbol, served.vector);
        return {
          kind: 'written',
          completeness: served.computedCompleteness,
          computeMs,
          symbol,
          tickMs,
          retries,
        };
      }
      logger.warn('serving a degraded feature vector', {
        symbol,
        tickMs,
        mode: served.mode,
        computedCompleteness: served.computedCompleteness,
      });
      return {
        kind: 'degraded',
        mode: served.mode,
        computedCompleteness: served.computedCompleteness,
        computeMs,
        symbol,
        tickMs,
        retries,
      };
    } catch (err) {
      // A StateWriteError wraps the last failure: an outage is the tracker's (one line), anything else an error.
      const cause = (err as { cause?: unknown }).cause ?? err;
      logRedisFailure(this.options.outage, logger, 'error', 'feature tick skipped', cause, {
        symbol,
        tickMs,
        retries,
      });
      return { kind: 'failed', error: (err as Error).message, symbol, tickMs, retries };
    }
  }
}
