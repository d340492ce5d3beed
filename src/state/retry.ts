import { isRetryable } from './errors';
import { StateWriteError } from './errors';

export interface RetryOptions {
  /** Absolute time (ms since epoch) after which no new attempt starts. */
  readonly deadline: number;
  /** Attempts after the first one; the deadline may end the loop sooner. */
  readonly retries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly onRetry?: (attempt: number, err: unknown, delayMs: number) => void;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Exponential backoff delay for an attempt (1-based), capped. Pure. */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number): number {
  return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * Runs an idempotent operation until it succeeds, a non-retryable error occurs, the retries are used up or
 * the deadline passes. Only idempotent operations may be passed: a timed-out attempt may have been applied.
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
      const delay = backoffDelay(attempt, options.baseDelayMs, options.maxDelayMs);
      if (attempt > options.retries || now() + delay > options.deadline) {
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
