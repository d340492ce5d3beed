// Typed errors of the state layer and the one classification of a failed write: can trying again help, does the
// failure belong to one symbol's call (contain it: dead-letter that call's events, the batch goes on), or is the
// whole process unable to write (stop, nothing acknowledged)?

export class StateWriteError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
    override readonly cause: unknown,
  ) {
    super(message);
    this.name = 'StateWriteError';
  }
}

/**
 * A script call of one symbol that cannot succeed whatever the connection does: its arguments could not be built
 * or were refused, Redis answered with an error reply of that call (a Lua error, CROSSSLOT, WRONGTYPE), or the
 * reply had an unexpected shape. The writer dead-letters the events of that call and writes the rest.
 */
export class ContainedWriteError extends Error {
  constructor(
    /** SCRIPT_ARGS (arguments not built or refused), SCRIPT_ERROR (another error reply), SCRIPT_REPLY. */
    readonly code: ContainedCode,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'ContainedWriteError';
  }
}

export type ContainedCode = 'SCRIPT_ARGS' | 'SCRIPT_ERROR' | 'SCRIPT_REPLY';

/** How a failed write is handled: retry (outage), fatal (no write can succeed: stop), contained (one call). */
export type FailureClass = 'retry' | 'fatal' | 'contained';

/** MOVED/ASK reach the caller only from a cluster pipeline whose replies mixed redirections and successes (ioredis
 * follows a redirection only when every command of the pipeline got it): a failover moved the slot; the client's
 * slot map is refreshed (createRedisClient) and the retry goes to the new owner. */
const RETRYABLE_REPLY =
  /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS|OOM|MISCONF|MOVED|ASK)\b/;
const RETRYABLE_MESSAGE =
  /(Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|Stream isn't writeable|Reached the max retries per request limit|Failed to refresh slots cache|None of startup nodes is available)/;
/** The connection's identity or rights: every call fails alike, so no event is to blame. */
const FATAL_REPLY = /^(NOAUTH|WRONGPASS|NOPERM)\b|^ERR unknown command\b/;
/** Error replies raised by our own scripts when they refuse their arguments (before any write). */
const SCRIPT_ARGS_REPLY = /^(BOOKARGS|ERR_TRADE_ARGS|BADARGS)\b/;

/** True for outages and transient server states (a failover, a full or saving Redis); false for everything else. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return RETRYABLE_REPLY.test(err.message) || RETRYABLE_MESSAGE.test(err.message);
}

/** The one decision for a failed state write (see FailureClass). */
export function classifyFailure(err: unknown): FailureClass {
  if (isRetryable(err)) return 'retry';
  if (err instanceof Error && FATAL_REPLY.test(err.message)) return 'fatal';
  return 'contained';
}

/** An error that knows its dead-letter code (the state layer's typed errors implement it). */
export interface HasDeadLetterCode {
  readonly deadLetterCode: ContainedCode;
}

function deadLetterCodeOf(err: unknown): ContainedCode | undefined {
  const code = (err as Partial<HasDeadLetterCode> | null | undefined)?.deadLetterCode;
  return code === 'SCRIPT_ARGS' || code === 'SCRIPT_ERROR' || code === 'SCRIPT_REPLY' ? code : undefined;
}

/**
 * A contained failure as a typed error with its dead-letter code: the state layer's own errors say theirs; an error
 * reply of Redis is SCRIPT_ARGS when one of our scripts refused its arguments, else SCRIPT_ERROR; anything else
 * (the arguments could not be built) SCRIPT_ARGS. A ContainedWriteError stays as it is.
 */
export function toContained(err: unknown, what: string): ContainedWriteError {
  if (err instanceof ContainedWriteError) return err;
  const message = err instanceof Error ? err.message : String(err);
  let code = deadLetterCodeOf(err);
  if (code === undefined) {
    const reply = err instanceof Error && err.name === 'ReplyError';
    code = reply && !SCRIPT_ARGS_REPLY.test(message) ? 'SCRIPT_ERROR' : 'SCRIPT_ARGS';
  }
  return new ContainedWriteError(code, `${what}: ${message}`, err);
}
