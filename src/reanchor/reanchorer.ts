import { banDuration, RestBannedError } from '../rest/client';
import type { TradesStreamEvent } from '../sbe/messages';
import type { Logger } from '../logging/logger';
import type { RestDepthSnapshot } from '../state/book';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';
import { flattenTrades } from '../state/trades';
import { buildTemporaryState, discardTemporaryState, type BuildResult } from './build';
import { swapReanchor, type SwapOutcome, type SwapResult } from './swap';

// One re-anchor of one symbol, REST -> temporary state -> atomic swap, retried with backoff up to maxAttempts.
// The caller holds reanchor:<S> (lock.ts) for the whole run, so the depth script keeps the diffs the swap needs.
// Every attempt and the final outcome are counted in reanchor:<S>:stats and logged; a failed attempt leaves the
// live state untouched (the swap checks everything before its first write and removes the temporary keys).

/** What the re-anchor needs from the exchange (RestClient implements it). */
export interface SnapshotSource {
  getDepth(symbol: string, limit: number): Promise<RestDepthSnapshot>;
  getTrades(symbol: string, limit: number): Promise<TradesStreamEvent[]>;
}

export interface ReanchorerOptions {
  readonly client: RedisClient;
  readonly keys: Keys;
  readonly source: SnapshotSource;
  readonly logger: Logger;
  readonly depthLimit: number;
  readonly tradesLimit: number;
  /** Levels written to ob:<S> (processing.order_book_levels). */
  readonly levels: number;
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /**
   * An exchange ban (429/418 with Retry-After, src/rest/client.ts) ending within this is waited for, without
   * counting the attempt or sending anything meanwhile; a longer one ends the run at once (default 300000 ms).
   */
  readonly maxBanWaitMs?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1), for the backoff jitter. */
  readonly rng?: () => number;
}

/** The caller's hold on reanchor:<S> (lock.ts): its token, and whether its last renewal still had it. */
export interface HeldLock {
  readonly token: string;
  held(): boolean;
}

export type AttemptFailure =
  | { readonly stage: 'rest'; readonly error: string }
  /** The exchange asked to wait (a 429/418 with Retry-After, now or earlier, by this or another listener). */
  | { readonly stage: 'banned'; readonly untilMs: number; readonly error: string }
  | { readonly stage: 'build'; readonly error: string }
  | {
      readonly stage: 'swap';
      readonly outcome: Exclude<SwapOutcome, 'swapped' | 'lock_lost'>;
      readonly neededLastUpdateId: bigint | undefined;
    }
  | { readonly stage: 'swap-error'; readonly error: string }
  | { readonly stage: 'lock-lost' };

export interface ReanchorReport {
  readonly symbol: string;
  readonly outcome: 'swapped' | 'failed' | 'lock-lost';
  readonly attempts: number;
  readonly failures: readonly AttemptFailure[];
  /** Wall time of the whole run, ms. */
  readonly durationMs: number;
  /** Of the successful attempt: its REST fetches, its build and its swap call (round trip), ms. */
  readonly restMs: number | undefined;
  readonly buildMs: number | undefined;
  readonly swapMs: number | undefined;
  /** When the successful attempt's REST fetch started (Redis TIME, ms): requests before it are covered. */
  readonly snapshotRequestedMs: number | undefined;
  readonly build: BuildResult | undefined;
  readonly swap: SwapResult | undefined;
}

/** Default of ReanchorerOptions.maxBanWaitMs (reanchor.rest.max_ban_wait_seconds). */
export const DEFAULT_MAX_BAN_WAIT_MS = 300_000;

export class Reanchorer {
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly rng: () => number;

  constructor(private readonly options: ReanchorerOptions) {
    if (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1) {
      throw new RangeError(`maxAttempts must be a positive integer, got ${options.maxAttempts}`);
    }
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.rng = options.rng ?? Math.random;
  }

  /** Backoff before attempt n + 1 (n >= 1 failed attempts): min(max, base x 2^(n-1)), jittered to [50 %, 100 %]. */
  backoffMs(failedAttempts: number): number {
    const ceiling = Math.min(
      this.options.backoffMaxMs,
      this.options.backoffBaseMs * 2 ** (failedAttempts - 1),
    );
    return Math.round(ceiling * (0.5 + this.rng() * 0.5));
  }

  /**
   * Runs the re-anchor. `lock.held()` is asked before each attempt and before each swap, and the swap itself
   * refuses to run unless reanchor:<S> still holds `lock.token` (a fence: this process may have stalled past a
   * take-over since its last renewal); when the lock was lost the run stops without swapping. Without `lock`
   * (tests, benchmarks) no lock is checked. Redis outages propagate only from the stats writes; REST, build and
   * swap failures are attempts.
   */
  async run(
    symbol: string,
    lock?: HeldLock,
    /** Correlation fields stamped on every log line of this run (e.g. the request id). */
    context: Readonly<Record<string, string>> = {},
  ): Promise<ReanchorReport> {
    const { client, keys } = this.options;
    const logger = this.options.logger.child(context);
    const started = this.now();
    const stats = keys.reanchorStats(symbol);
    await client.hset(stats, 'last_started_ms', String(started), 'running', '1');
    const failures: AttemptFailure[] = [];
    let attempts = 0;
    let bansWaited = 0;
    const finish = async (
      outcome: ReanchorReport['outcome'],
      success?: Pick<
        ReanchorReport,
        'restMs' | 'buildMs' | 'swapMs' | 'snapshotRequestedMs' | 'build' | 'swap'
      >,
    ): Promise<ReanchorReport> => {
      const durationMs = this.now() - started;
      const fields = [
        'running',
        '0',
        'last_outcome',
        outcome,
        'last_finished_ms',
        String(this.now()),
        'last_duration_ms',
        String(durationMs),
        'last_attempts',
        String(attempts),
      ];
      if (outcome === 'swapped' && success?.swap) {
        fields.push('last_ok_ms', String(this.now()), 'last_swap_ms', String(success.swapMs ?? ''));
        fields.push('last_update_id', success.swap.bookUpdateId?.toString() ?? '');
      }
      await client.hset(stats, ...fields);
      await client.hincrby(stats, outcome === 'swapped' ? 'swapped' : 'failed', 1);
      const report: ReanchorReport = {
        symbol,
        outcome,
        attempts,
        failures,
        durationMs,
        restMs: success?.restMs,
        buildMs: success?.buildMs,
        swapMs: success?.swapMs,
        snapshotRequestedMs: success?.snapshotRequestedMs,
        build: success?.build,
        swap: success?.swap,
      };
      const meta = { symbol, attempts, durationMs, failures: failures.map(describeFailure) };
      if (outcome === 'swapped') {
        logger.info('re-anchor swapped in', {
          ...meta,
          restMs: success?.restMs,
          buildMs: success?.buildMs,
          swapMs: success?.swapMs,
          bookUpdateId: success?.swap?.bookUpdateId?.toString(),
          // Buffered diffs replayed on the snapshot: by the build (bounded calls) and by the swap (those since).
          diffsReplayedByBuild: success?.build?.diffsReplayed,
          diffsApplied: success?.swap?.diffsApplied,
          trades: success?.swap?.trades,
        });
      } else logger.error('re-anchor gave up: the live state is unchanged', { ...meta, outcome });
      return report;
    };

    while (attempts < this.options.maxAttempts) {
      if (lock !== undefined && !lock.held()) {
        failures.push({ stage: 'lock-lost' });
        return finish('lock-lost');
      }
      attempts++;
      const failure = await this.attempt(symbol, lock);
      if (!('stage' in failure)) return finish('swapped', failure);
      failures.push(failure);
      await client.hincrby(stats, 'attempt_failures', 1);
      await client.hset(
        stats,
        'last_failure',
        describeFailure(failure),
        'last_failure_ms',
        String(this.now()),
      );
      if (failure.stage === 'lock-lost') return finish('lock-lost');
      if (failure.stage === 'banned') {
        // Waited out without sending anything (more requests during a ban earn longer bans), and not counted
        // as an attempt; but at most maxAttempts waits per run, and a ban beyond maxBanWaitMs ends the run now.
        const waitMs = Math.max(0, failure.untilMs - this.now());
        bansWaited++;
        if (
          waitMs > (this.options.maxBanWaitMs ?? DEFAULT_MAX_BAN_WAIT_MS) ||
          bansWaited > this.options.maxAttempts
        ) {
          logger.error('re-anchor stopped: the exchange bans REST calls for longer than it waits', {
            symbol,
            failure: describeFailure(failure),
            waitMs,
          });
          return finish('failed');
        }
        attempts--;
        logger.warn('re-anchor waits for the exchange ban to end', {
          symbol,
          failure: describeFailure(failure),
          waitMs,
        });
        await this.sleep(waitMs + 50);
        continue;
      }
      if (attempts < this.options.maxAttempts) {
        const delay = this.backoffMs(attempts);
        logger.warn('re-anchor attempt failed; retrying', {
          symbol,
          attempt: attempts,
          failure: describeFailure(failure),
          retryInMs: delay,
        });
        await this.sleep(delay);
      }
    }
    return finish('failed');
  }

  private async attempt(
    symbol: string,
    lock: HeldLock | undefined,
  ): Promise<
    | AttemptFailure
    | Pick<ReanchorReport, 'restMs' | 'buildMs' | 'swapMs' | 'snapshotRequestedMs' | 'build' | 'swap'>
  > {
    const { client, keys, source } = this.options;
    // In Redis' clock, like the request ids it is compared with (the listener's host clock may be skewed).
    let snapshotRequestedMs: number;
    try {
      const [seconds, micros] = await client.time();
      snapshotRequestedMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    } catch (err) {
      return { stage: 'build', error: errorText(err) };
    }
    const restStarted = this.now();
    let depth: RestDepthSnapshot;
    let trades: TradesStreamEvent[];
    try {
      [depth, trades] = await Promise.all([
        source.getDepth(symbol, this.options.depthLimit),
        source.getTrades(symbol, this.options.tradesLimit),
      ]);
    } catch (err) {
      const untilMs = banEnd(err, restStarted);
      if (untilMs !== undefined) return { stage: 'banned', untilMs, error: errorText(err) };
      return { stage: 'rest', error: errorText(err) };
    }
    const restDone = this.now();
    let build: BuildResult;
    try {
      build = await buildTemporaryState(client, keys, symbol, {
        depth,
        trades: flattenTrades(symbol, trades).trades,
      });
    } catch (err) {
      await discardTemporaryState(client, keys, symbol).catch(() => undefined);
      return { stage: 'build', error: errorText(err) };
    }
    const buildDone = this.now();
    // Lock lost: the temporary keys are the new holder's to rebuild (and expire on their own), so they stay.
    if (lock !== undefined && !lock.held()) return { stage: 'lock-lost' };
    let swap: SwapResult;
    const swapStarted = process.hrtime.bigint();
    try {
      swap = await swapReanchor(client, keys, symbol, {
        levels: this.options.levels,
        expectedLastUpdateId: depth.lastUpdateId,
        lockToken: lock?.token,
      });
    } catch (err) {
      await discardTemporaryState(client, keys, symbol).catch(() => undefined);
      return { stage: 'swap-error', error: errorText(err) };
    }
    const swapMs = Number(process.hrtime.bigint() - swapStarted) / 1e6;
    if (swap.outcome === 'lock_lost') return { stage: 'lock-lost' };
    if (swap.outcome !== 'swapped') {
      return { stage: 'swap', outcome: swap.outcome, neededLastUpdateId: swap.neededLastUpdateId };
    }
    return {
      restMs: restDone - restStarted,
      buildMs: buildDone - restDone,
      swapMs,
      snapshotRequestedMs,
      build,
      swap,
    };
  }
}

/** When a REST failure is the exchange asking to wait, the end of that wait (ms since the epoch). */
function banEnd(err: unknown, sentMs: number): number | undefined {
  if (err instanceof RestBannedError) return err.untilMs;
  const ms = banDuration(err);
  return ms === undefined ? undefined : sentMs + ms;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** One line per failed attempt, for logs and reanchor:<S>:stats last_failure. Pure. */
export function describeFailure(failure: AttemptFailure): string {
  switch (failure.stage) {
    case 'rest':
    case 'build':
    case 'swap-error':
      return `${failure.stage}: ${failure.error}`;
    case 'banned':
      return `banned by the exchange until ${new Date(failure.untilMs).toISOString()}: ${failure.error}`;
    case 'swap':
      return failure.neededLastUpdateId === undefined
        ? `swap refused: ${failure.outcome}`
        : `swap refused: ${failure.outcome} (needs lastUpdateId >= ${failure.neededLastUpdateId})`;
    case 'lock-lost':
      return 'lock lost to another listener';
  }
}
