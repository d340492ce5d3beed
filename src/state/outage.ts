import type { Logger } from '../logging/logger';
import { isRetryable } from '../common/errors';
import type { RedisClient } from './redis';

// One Redis outage as one process sees it: from the first failure of the connection (an error event, a reconnect,
// a write failing with a retryable error: isRetryable in errors.ts) to the first success after it. Exactly one log
// line starts an outage and one ends it (with its duration), however many commands fail or reconnects happen in
// between; the counts feed the process's metrics and /health. A process rides an outage through (it waits and
// retries) up to its own bound: the processors' processing.batch_deadline_ms, the sidecar's ticks forever.

export interface OutageOptions {
  readonly logger: Pick<Logger, 'warn'>;
  /** Said in the first line: how long this process waits before it gives up ("" when it never does). */
  readonly rideThrough?: string;
  readonly now?: () => number;
  /** Called when an outage ends, with its duration (metrics). */
  readonly onEnd?: (durationMs: number) => void;
}

export class RedisOutage {
  private sinceMs: number | undefined;
  private lastError = '';
  private readonly now: () => number;
  /** Outages started in this process, and their summed duration (ms) once ended. */
  outages = 0;
  totalMs = 0;

  constructor(private readonly options: OutageOptions) {
    this.now = options.now ?? Date.now;
  }

  /** When the current outage started (ms since the epoch), undefined while Redis answers. */
  get waitingSinceMs(): number | undefined {
    return this.sinceMs;
  }

  /** A failure of the connection: starts an outage unless one is going on. */
  failed(error: unknown): void {
    this.lastError = error instanceof Error ? error.message : String(error);
    if (this.sinceMs !== undefined) return;
    this.sinceMs = this.now();
    this.outages++;
    this.options.logger.warn('redis unavailable: waiting for it', {
      error: this.lastError,
      ...(this.options.rideThrough ? { rideThrough: this.options.rideThrough } : {}),
    });
  }

  /** A success: ends the outage going on, if any. */
  recovered(): void {
    if (this.sinceMs === undefined) return;
    const durationMs = Math.max(0, this.now() - this.sinceMs);
    this.sinceMs = undefined;
    this.totalMs += durationMs;
    this.options.logger.warn('redis available again', { outageMs: durationMs, lastError: this.lastError });
    this.options.onEnd?.(durationMs);
  }

  /**
   * Follows a client's connection: an error or a reconnect starts an outage. Only a success reported by the
   * process (recovered(): a write, a tick, a published report) ends it: a connection that comes back but is refused
   * writes (READONLY during a failover) is still an outage, and a flapping connection is still one outage.
   */
  watch(client: RedisClient): void {
    client.on('error', (err: Error) => this.failed(err));
    client.on('reconnecting', () =>
      this.failed(new Error(this.lastError || 'connection lost; reconnecting')),
    );
  }
}

/**
 * Logs a failed Redis call of a long-running loop (a tick, a poll, a check): a failure of the connection
 * (isRetryable) belongs to the outage (one line when it starts, through `outage`; this call at debug), anything
 * else is logged at `level` as it is. Without a tracker every failure is logged at `level`.
 */
export function logRedisFailure(
  outage: RedisOutage | undefined,
  logger: Pick<Logger, 'log'>,
  level: 'warn' | 'error',
  message: string,
  err: unknown,
  meta: Readonly<Record<string, unknown>> = {},
): void {
  const error = err instanceof Error ? err.message : String(err);
  if (outage !== undefined && isRetryable(err)) {
    outage.failed(err);
    logger.log('debug', message, { ...meta, error });
    return;
  }
  logger.log(level, message, { ...meta, error });
}
