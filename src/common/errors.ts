// The one error taxonomy of the service: every error class of src/ extends AggregatorError (a stable `code`, whether
// trying again can help, and the context it happened in), and isRetryable(err) is the one predicate that says
// whether an operation that failed with `err` may succeed if tried again. Nothing here imports from other src
// folders; each layer's own errors and their codes live with the layer (state/errors.ts, state/script-errors.ts,
// rest/client.ts, ...).

/** Where an error happened, for logs and dead letters. Every field is optional; layers add their own. */
export interface ErrorContext {
  readonly symbol?: string;
  readonly shard?: string;
  readonly sequenceNumber?: string;
  readonly [key: string]: string | number | bigint | boolean | undefined;
}

export interface AggregatorErrorOptions {
  /** Stable, machine-readable code (upper snake case), e.g. REST_TIMEOUT, SCRIPT_ARGS, CONFIG. */
  readonly code: string;
  /** Whether trying the same operation again later can help (default false). */
  readonly retryable?: boolean;
  readonly context?: ErrorContext;
  readonly cause?: unknown;
}

/** The base of every error class of the service. `name` and `message` stay each subclass's own (default 'Error'). */
export class AggregatorError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly context: ErrorContext;

  constructor(message: string, options: AggregatorErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    this.retryable = options.retryable ?? false;
    this.context = options.context ?? {};
  }
}

/** Copies the defined fields of a context (so that `{ symbol: undefined }` adds nothing). Pure. */
export function errorContext(fields: Readonly<Record<string, ErrorContext[string]>>): ErrorContext {
  const out: Record<string, ErrorContext[string]> = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return out;
}

// Errors of other libraries (ioredis, node:net, fetch) are recognised by their messages.

/**
 * Transient Redis server states (a failover, a full or saving Redis). MOVED/ASK reach the caller only from a cluster
 * pipeline whose replies mixed redirections and successes (ioredis follows a redirection only when every command of
 * the pipeline got it): a failover moved the slot; the client's slot map is refreshed (createRedisClient) and the
 * retry goes to the new owner.
 */
const RETRYABLE_REPLY =
  /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS|OOM|MISCONF|MOVED|ASK)\b/;
/** Failures of the connection itself (ioredis and node:net). */
const RETRYABLE_MESSAGE =
  /(Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|Stream isn't writeable|Reached the max retries per request limit|Failed to refresh slots cache|None of startup nodes is available)/;

/**
 * The one retry predicate. An AggregatorError says it itself (`retryable`: a REST timeout, network error, HTTP 5xx or
 * 429; a Redis write that gave up on an outage); any other Error is retryable when it is an outage or a transient
 * server state of Redis, or a failure of the connection. Anything else (a non-Error value included) is not.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof AggregatorError) return err.retryable;
  if (!(err instanceof Error)) return false;
  return RETRYABLE_REPLY.test(err.message) || RETRYABLE_MESSAGE.test(err.message);
}

/** The message of anything thrown. Pure. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
