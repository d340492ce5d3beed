import { isRetryable } from './errors';

// The one retry/backoff module: capped exponential backoff, optionally jittered, and one loop that retries an
// operation with it, bounded by a number of retries, a deadline and an abort signal. The clock, the sleep and the
// jitter source are injected, so every decision is testable without waiting. Each caller's policy (its base and
// cap, whether it jitters, what it retries) is given as options: see state/retry.ts (Redis writes), rest/client.ts
// (the exchange's REST calls), reanchor/reanchorer.ts (re-anchor attempts), reanchor/listener.ts (its poll loop),
// kcl/shard-processor.ts (checkpoints).

export interface BackoffPolicy {
  /** Delay before the first retry, ms. */
  readonly baseDelayMs: number;
  /** No delay exceeds this, ms. */
  readonly maxDelayMs: number;
  /**
   * Scale each delay by a uniform draw into [50 %, 100 %] of itself, so that the processes of a fleet do not retry
   * in step (default true).
   */
  readonly jitter?: boolean;
}

/**
 * The capped exponential delay before retry `retry` (1 = the first retry, after the first failed attempt):
 * min(max, base x 2^(retry - 1)); retry 0 or below counts as 1. Pure.
 */
export function backoffDelay(retry: number, baseDelayMs: number, maxDelayMs: number): number {
  // The exponent is bounded so that a zero base stays 0 (0 x 2^2000 would be 0 x Infinity = NaN).
  return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(Math.max(0, retry - 1), 1000));
}

/** A delay jittered to [50 %, 100 %] of itself by `random` in [0, 1), rounded to a whole ms. Pure. */
export function jittered(delayMs: number, random: number): number {
  return Math.round(delayMs * (0.5 + random * 0.5));
}

/** The delay before retry `retry` (1-based) under `policy`; draws `random` once when jittering. Pure given random. */
export function backoff(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = backoffDelay(retry, policy.baseDelayMs, policy.maxDelayMs);
  return policy.jitter === false ? ceiling : jittered(ceiling, random());
}

/** Why a retry loop gave up. */
export type GiveUpReason = 'not-retryable' | 'retries' | 'deadline' | 'aborted';

export interface RetryOptions extends BackoffPolicy {
  /** Retries after the first attempt at most (default: no limit). */
  readonly retries?: number;
  /** Absolute time (ms, the `now` clock) after which no new attempt starts: no retry whose delay ends after it. */
  readonly deadline?: number;
  /** Whether a failure may pass if tried again (default isRetryable, src/common/errors.ts). */
  readonly isRetryable?: (err: unknown) => boolean;
  /**
   * The wait before the next attempt after a retryable failure (default: the backoff delay, computed only when
   * `backoffMs` is called). May throw to stop retrying with that error (e.g. a Retry-After beyond a maximum).
   */
  readonly delayFor?: (err: unknown, backoffMs: () => number, retry: number) => number | Promise<number>;
  /** Called before each wait, with the failed attempt's number (1-based). */
  readonly onRetry?: (attempt: number, err: unknown, delayMs: number) => void;
  /** The error thrown when the loop gives up (default: the last failure unchanged). */
  readonly giveUp?: (err: unknown, attempts: number, reason: GiveUpReason) => unknown;
  /** Stops the loop: no new attempt starts once it is aborted (the wait in progress ends early). */
  readonly signal?: AbortSignal;
  readonly now?: () => number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Uniform in [0, 1), for the jitter (default Math.random). */
  readonly random?: () => number;
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Runs `operation` until it succeeds, fails with an error that is not retryable, the retries are used up, the next
 * attempt would start after the deadline, or the signal aborts; waits the backoff delay between attempts. Pass
 * only idempotent operations: a timed-out attempt may have been applied.
 */
export async function retry<T>(
  operation: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const random = options.random ?? Math.random;
  const retryable = options.isRetryable ?? isRetryable;
  const giveUp = (err: unknown, attempts: number, reason: GiveUpReason): unknown =>
    options.giveUp === undefined ? err : options.giveUp(err, attempts, reason);
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (err) {
      if (!retryable(err)) throw giveUp(err, attempt, 'not-retryable');
      const delayMs =
        options.delayFor === undefined
          ? backoff(attempt, options, random)
          : await options.delayFor(err, () => backoff(attempt, options, random), attempt);
      if (attempt > (options.retries ?? Infinity)) throw giveUp(err, attempt, 'retries');
      if (options.deadline !== undefined && now() + delayMs > options.deadline) {
        throw giveUp(err, attempt, 'deadline');
      }
      if (options.signal?.aborted) throw giveUp(err, attempt, 'aborted');
      options.onRetry?.(attempt, err, delayMs);
      await wait(delayMs, options.signal);
      if (options.signal?.aborted) throw giveUp(err, attempt, 'aborted');
    }
  }
}
