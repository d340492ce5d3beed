import { isRetryable } from './errors';
import { StateWriteError } from './errors';

export interface RetryOptions {
  /** Absolute time (ms since epoch) after which no new attempt starts. */
  readonly deadline: number;
  /** Attempts after the first one at most (default: no limit, the deadline alone ends the loop). */
  readonly retries?: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1), for the jitter (default Math.random). */
  readonly rng?: () => number;
  readonly onRetry?: (attempt: number, err: unknown, delayMs: number) => void;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Exponential backoff delay for an attempt (1-based), capped. Pure. */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number): number {
  return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempt - 1));
}

/** A backoff delay jittered to [50 %, 100 %] of itself, so that the processes of a fleet do not retry in step. Pure. */
export function jittered(delayMs: number, random: number): number {
  return Math.round(delayMs * (0.5 + random * 0.5));
}

/**
 * Runs an idempotent operation until it succeeds, a non-retryable error occurs, the retries are used up or
 * the deadline passes (capped, jittered exponential backoff between attempts). Only idempotent operations may be
 * passed: a timed-out attempt may have been applied.
 */
export async function withRetry<T>(operation: () => Promise<T>, options: RetryOptions): Promise<T> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      if (!isRetryable(err)) {
        throw new StateWriteError(`Redis rejected the update: ${(err as Error).message}`, attempt, err);
      }
      const delay = jittered(
        backoffDelay(attempt, options.baseDelayMs, options.maxDelayMs),
        (options.rng ?? Math.random)(),
      );
      if (attempt > (options.retries ?? Infinity) || now() + delay > options.deadline) {
        throw new StateWriteError(
          `Redis update failed after ${attempt} attempt(s): ${(err as Error).message}`,
          attempt,
          err,
        );
      }
      options.onRetry?.(attempt, err, delay);
      await sleep(delay);
    }
  }
}
