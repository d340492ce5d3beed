import { retry } from '../common/retry';
import { StateWriteError } from './errors';

// The retry policy of Redis writes (the processors' batches, the sidecar's ticks): the backoff loop of
// src/common/retry.ts with a deadline, jittered delays and the failure wrapped in a StateWriteError.

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

/**
 * Runs an idempotent Redis operation until it succeeds, a non-retryable error occurs, the retries are used up or
 * the deadline passes (capped, jittered exponential backoff between attempts); a failure is a StateWriteError
 * wrapping the last error. Only idempotent operations may be passed: a timed-out attempt may have been applied.
 */
export function withRetry<T>(operation: () => Promise<T>, options: RetryOptions): Promise<T> {
  return retry(() => operation(), {
    deadline: options.deadline,
    retries: options.retries,
    baseDelayMs: options.baseDelayMs,
    maxDelayMs: options.maxDelayMs,
    now: options.now,
    sleep: options.sleep,
    random: options.rng,
    onRetry: options.onRetry,
    giveUp: (err, attempts, reason) =>
      new StateWriteError(
        reason === 'not-retryable'
          ? `Redis rejected the update: ${(err as Error).message}`
          : `Redis update failed after ${attempts} attempt(s): ${(err as Error).message}`,
        attempts,
        err,
      ),
  });
}
