// Typed errors of the state layer and the one predicate that decides whether trying again can help.

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

const RETRYABLE_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS)\b/;
const RETRYABLE_MESSAGE =
  /(Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|Stream isn't writeable|Reached the max retries per request limit|Failed to refresh slots cache|None of startup nodes is available)/;

/** True for outages and transient cluster states; false for script bugs, wrong types, auth failures. */
export function isRetryable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return RETRYABLE_REPLY.test(err.message) || RETRYABLE_MESSAGE.test(err.message);
}
