import { backoff } from '../common/retry';
import { banDuration, RestBannedError } from '../rest/client';
import type { TradesStreamEvent } from '../sbe/messages';
import type { Logger } from '../logging/logger';
import type { RestDepthSnapshot } from '../state/book';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';
import { flattenTrades, hasOpenTradeGaps, repairTradeGaps, type TradeRepairResult } from '../state/trades';
import { buildTemporaryState, discardTemporaryState, type BuildResult } from './build';
import { recordAttemptFailure, recordRunFinished, recordRunStarted } from './stats';
import { swapReanchor, type SwapOutcome, type SwapResult } from './swap';

// One re-anchor of one symbol, REST -> temporary state -> atomic swap, retried with backoff up to maxAttempts.
// The caller holds reanchor:<S> (lock.ts) for the whole run, so the depth script keeps the diffs the swap needs.
// Two scopes: 'book' (the full re-anchor: it also repairs the open trade-id gaps from the REST trades it fetches,
// on the live trade state before the build copies it) and 'trades' (a trade gap alone: only GET /api/v3/trades and
// the repair, lua/repair-trades-6.lua, one atomic call on the live keys; the book is not rebuilt, see docs/reanchoring.md).
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
  /** A trade repair that could not finish: the REST answer predates open gaps, or the script refused it. */
  | { readonly stage: 'repair'; readonly error: string }
  | { readonly stage: 'lock-lost' };

/** What a run rebuilds: the whole state ('book') or only the trade gaps ('trades'). */
export type ReanchorScope = 'book' | 'trades';

export interface ReanchorReport {
  readonly symbol: string;
  readonly scope: ReanchorScope;
  /** 'repaired': a 'trades' run that ended (each open gap repaired or declared unrepairable). */
  readonly outcome: 'swapped' | 'repaired' | 'failed' | 'lock-lost';
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
  /** The trade-gap repair of the successful attempt (undefined: no open gap, or no success). */
  readonly repair: TradeRepairResult | undefined;
}

type Success = Pick<
  ReanchorReport,
  'restMs' | 'buildMs' | 'swapMs' | 'snapshotRequestedMs' | 'build' | 'swap' | 'repair'
>;

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
    const { backoffBaseMs, backoffMaxMs } = this.options;
    return backoff(failedAttempts, { baseDelayMs: backoffBaseMs, maxDelayMs: backoffMaxMs }, this.rng);
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
    scope: ReanchorScope = 'book',
  ): Promise<ReanchorReport> {
    const { client, keys } = this.options;
    const logger = this.options.logger.child(context);
    const started = this.now();
    await recordRunStarted(client, keys, symbol, scope, started);
    const failures: AttemptFailure[] = [];
    let attempts = 0;
    let bansWaited = 0;
    const finish = async (outcome: ReanchorReport['outcome'], success?: Success): Promise<ReanchorReport> => {
      const durationMs = this.now() - started;
      const finishedMs = this.now();
      await recordRunFinished(client, keys, symbol, scope, {
        outcome,
        ok: outcome === 'swapped' || outcome === 'repaired',
        finishedMs,
        durationMs,
        attempts,
        ...(outcome === 'swapped' && success?.swap
          ? {
              swap: {
                okMs: this.now(),
                swapMs: success.swapMs,
                bookUpdateId: success.swap.bookUpdateId,
              },
            }
          : {}),
      });
      const report: ReanchorReport = {
        symbol,
        scope,
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
        repair: success?.repair,
      };
      const meta = { symbol, scope, attempts, durationMs, failures: failures.map(describeFailure) };
      if (outcome === 'repaired') {
        logger.info('trade gaps repair ended', {
          ...meta,
          restMs: success?.restMs,
          repairedGaps: success?.repair?.repairedGaps ?? 0,
          repairedTrades: (success?.repair?.repairedTrades ?? 0n).toString(),
          unrepairableGaps: success?.repair?.unrepairableGaps ?? 0,
        });
      } else if (outcome === 'swapped') {
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
      } else if (scope === 'trades') {
        logger.error('trade gaps repair gave up: the gaps stay open', { ...meta, outcome });
      } else logger.error('re-anchor gave up: the live state is unchanged', { ...meta, outcome });
      return report;
    };

    while (attempts < this.options.maxAttempts) {
      if (lock !== undefined && !lock.held()) {
        failures.push({ stage: 'lock-lost' });
        return finish('lock-lost');
      }
      attempts++;
      const failure = scope === 'book' ? await this.attempt(symbol, lock) : await this.repairAttempt(symbol);
      if (!('stage' in failure)) return finish(scope === 'book' ? 'swapped' : 'repaired', failure);
      failures.push(failure);
      await recordAttemptFailure(client, keys, symbol, scope, describeFailure(failure), this.now());
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

  /** Redis' clock now, ms: the clock request ids are in (the listener's host clock may be skewed). */
  private async redisNowMs(): Promise<number> {
    const [seconds, micros] = await this.options.client.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }

  /** One attempt of a 'trades' run: GET /api/v3/trades, then the repair in one atomic call on the live keys. */
  private async repairAttempt(symbol: string): Promise<AttemptFailure | Success> {
    const { client, keys, source } = this.options;
    let snapshotRequestedMs: number;
    try {
      snapshotRequestedMs = await this.redisNowMs();
      // Nothing open (repaired by an earlier run, or a duplicate request): no REST weight spent.
      if (!(await hasOpenTradeGaps(client, keys.tradeState(symbol)))) {
        return {
          restMs: undefined,
          buildMs: undefined,
          swapMs: undefined,
          snapshotRequestedMs,
          build: undefined,
          swap: undefined,
          repair: undefined,
        };
      }
    } catch (err) {
      return { stage: 'repair', error: errorText(err) };
    }
    const restStarted = this.now();
    let trades: TradesStreamEvent[];
    try {
      trades = await source.getTrades(symbol, this.options.tradesLimit);
    } catch (err) {
      const untilMs = banEnd(err, restStarted);
      if (untilMs !== undefined) return { stage: 'banned', untilMs, error: errorText(err) };
      return { stage: 'rest', error: errorText(err) };
    }
    const restDone = this.now();
    let repair: TradeRepairResult;
    try {
      repair = await repairTradeGaps(client, keys, symbol, flattenTrades(symbol, trades).trades);
    } catch (err) {
      return { stage: 'repair', error: errorText(err) };
    }
    logRepair(this.options.logger, symbol, repair);
    if (repair.openGapsLeft > 0) {
      // Retried with a newer answer; the gaps this one settled stay settled.
      return {
        stage: 'repair',
        error: `${repair.openGapsLeft} trade gap(s) newer than the REST answer (it ends at id ${lastId(trades)})`,
      };
    }
    return {
      restMs: restDone - restStarted,
      buildMs: this.now() - restDone,
      swapMs: undefined,
      snapshotRequestedMs,
      build: undefined,
      swap: undefined,
      repair,
    };
  }

  private async attempt(symbol: string, lock: HeldLock | undefined): Promise<AttemptFailure | Success> {
    const { client, keys, source } = this.options;
    let snapshotRequestedMs: number;
    try {
      snapshotRequestedMs = await this.redisNowMs();
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
    const restTrades = flattenTrades(symbol, trades).trades;
    let build: BuildResult;
    let repair: TradeRepairResult | undefined;
    try {
      // The trade gaps first, on the live keys (atomic, like a stream batch): the build then copies a repaired
      // state, and the repair stands even when the swap keeps the live trade state.
      const repaired = await repairTradeGaps(client, keys, symbol, restTrades);
      if (repaired.gaps.length > 0) {
        repair = repaired;
        logRepair(this.options.logger, symbol, repaired);
      }
      build = await buildTemporaryState(client, keys, symbol, { depth, trades: restTrades });
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
      repair,
    };
  }
}

/** A repair's gaps in the log: each unrepairable one at error (the windows miss its trades for good). */
function logRepair(logger: Logger, symbol: string, repair: TradeRepairResult): void {
  for (const gap of repair.gaps) {
    const meta = {
      symbol,
      missingFrom: gap.from.toString(),
      missingTo: gap.to.toString(),
      outcome: gap.outcome,
    };
    if (gap.outcome === 'repaired') logger.info('trade gap repaired from REST trades', meta);
    else if (gap.outcome === 'after_rest')
      logger.warn('trade gap newer than the REST answer: still open', meta);
    else logger.error('trade gap unrepairable: REST trades do not cover it', meta);
  }
}

function lastId(trades: readonly TradesStreamEvent[]): string {
  let last: bigint | undefined;
  for (const m of trades) for (const t of m.trades) if (last === undefined || t.id > last) last = t.id;
  return last?.toString() ?? 'none';
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
    case 'repair':
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
