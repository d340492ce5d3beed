import { AggregatorError, errorContext, isRetryable, type ErrorContext } from '../common/errors';

// Typed errors of the state layer, the one table of the Lua scripts' error codes, and the one classification of a
// failed write: can trying again help, does the failure belong to one symbol's call (contain it: dead-letter that
// call's events, the batch goes on), or is the whole process unable to write (stop, nothing acknowledged)?

/** The dead-letter codes of a contained failure: arguments not built or refused, another error reply, a bad reply. */
export type ContainedCode = 'SCRIPT_ARGS' | 'SCRIPT_ERROR' | 'SCRIPT_REPLY';

/**
 * The error replies the service's own scripts (src/state/lua) raise, by the code their message starts with. Each is
 * raised before the script's first write, when it refuses its arguments; the reply reads "<CODE> <what>". The
 * strings are a contract of the scripts (their headers say them); this table is the one place that reads them.
 */
export const SCRIPT_ERROR_CODES = {
  BOOKARGS: {
    scripts: 'apply-depth-batch, apply-best-bid-ask, anchor-book, reanchor-replay, reanchor-swap',
    deadLetterCode: 'SCRIPT_ARGS',
  },
  ERR_TRADE_ARGS: { scripts: 'apply-trade-batch, repair-trades', deadLetterCode: 'SCRIPT_ARGS' },
  BADARGS: {
    scripts: 'reanchor-acquire, reanchor-rest-ban, reanchor-rest-weight, reanchor-copy-trades',
    deadLetterCode: 'SCRIPT_ARGS',
  },
} as const satisfies Record<string, { readonly scripts: string; readonly deadLetterCode: ContainedCode }>;

export type ScriptErrorCode = keyof typeof SCRIPT_ERROR_CODES;

/** The code of one of our scripts' error replies that `err` carries (its message's first word), if any. Pure. */
export function scriptErrorCode(err: unknown): ScriptErrorCode | undefined {
  if (!(err instanceof Error)) return undefined;
  const word = /^[A-Z_]+\b/.exec(err.message)?.[0];
  return word !== undefined && Object.hasOwn(SCRIPT_ERROR_CODES, word)
    ? (word as ScriptErrorCode)
    : undefined;
}

/** A Redis write that did not succeed within its retry policy (state/retry.ts), wrapping the last failure. */
export class StateWriteError extends AggregatorError {
  constructor(
    message: string,
    readonly attempts: number,
    override readonly cause: unknown,
  ) {
    super(message, { code: 'STATE_WRITE', retryable: isRetryable(cause), cause });
    this.name = 'StateWriteError';
  }
}

/**
 * A script call of one symbol that cannot succeed whatever the connection does: its arguments could not be built
 * or were refused, Redis answered with an error reply of that call (a Lua error, CROSSSLOT, WRONGTYPE), or the
 * reply had an unexpected shape. The writer dead-letters the events of that call and writes the rest.
 */
export class ContainedWriteError extends AggregatorError {
  constructor(
    /** SCRIPT_ARGS (arguments not built or refused), SCRIPT_ERROR (another error reply), SCRIPT_REPLY. */
    override readonly code: ContainedCode,
    message: string,
    override readonly cause?: unknown,
    context: ErrorContext = {},
  ) {
    super(message, { code, cause, context });
    this.name = 'ContainedWriteError';
  }
}

/** An error that knows its dead-letter code (the state layer's typed errors implement it). */
export interface HasDeadLetterCode {
  readonly deadLetterCode: ContainedCode;
}

/**
 * A script answered with a reply its caller cannot read: an unexpected shape or an unknown code (the script and its
 * caller disagree about the contract). The message names the script and shows the reply.
 */
export class ScriptReplyError extends AggregatorError implements HasDeadLetterCode {
  readonly deadLetterCode = 'SCRIPT_REPLY';
  constructor(
    readonly script: string,
    message: string,
    context: ErrorContext = {},
  ) {
    super(message, { code: 'SCRIPT_REPLY', context: { ...context, script } });
    this.name = 'ScriptReplyError';
  }
}

/** The order-book scripts (src/state/book.ts). */
export type BookScript = 'applyDepthBatch' | 'applyBestBidAsk' | 'anchorBook';

/** Input the book scripts cannot take (a programming error upstream, or an impossible event): nothing was sent. */
export class BookArgumentError extends AggregatorError implements HasDeadLetterCode {
  readonly deadLetterCode = 'SCRIPT_ARGS';
  constructor(
    readonly symbol: string,
    message: string,
  ) {
    super(`order book ${symbol}: ${message}`, { code: 'SCRIPT_ARGS', context: { symbol } });
    this.name = 'BookArgumentError';
  }
}

/**
 * A book script call failed for a reason other than an outage (those are rethrown unchanged so that
 * classifyFailure() sees them): code BOOKARGS (the script refused its arguments, before writing anything; any code
 * of SCRIPT_ERROR_CODES), SCRIPT (another error reply, e.g. a Lua bug) or REPLY (a reply of an unexpected shape).
 */
export class BookScriptError extends AggregatorError implements HasDeadLetterCode {
  constructor(
    readonly script: BookScript,
    readonly symbol: string,
    override readonly code: ScriptErrorCode | 'SCRIPT' | 'REPLY',
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`${script} ${symbol}: ${message}`, { code, cause, context: { symbol, script } });
    this.name = 'BookScriptError';
  }

  get deadLetterCode(): ContainedCode {
    if (this.code === 'REPLY') return 'SCRIPT_REPLY';
    if (this.code === 'SCRIPT') return 'SCRIPT_ERROR';
    return SCRIPT_ERROR_CODES[this.code].deadLetterCode;
  }
}

/**
 * A failed call of a book script as a typed error: outages and failures of the connection itself stay as they are
 * (classifyFailure must see them); an error reply becomes BookScriptError with its script error code, or SCRIPT.
 */
export function bookScriptError(script: BookScript, symbol: string, err: unknown): unknown {
  if (classifyFailure(err) !== 'contained') return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BookScriptError(script, symbol, scriptErrorCode(err) ?? 'SCRIPT', message, err);
}

/** How a failed write is handled: retry (outage), fatal (no write can succeed: stop), contained (one call). */
export type FailureClass = 'retry' | 'fatal' | 'contained';

/** The connection's identity or rights: every call fails alike, so no event is to blame. */
const FATAL_REPLY = /^(NOAUTH|WRONGPASS|NOPERM)\b|^ERR unknown command\b/;

/** The one decision for a failed state write (see FailureClass). */
export function classifyFailure(err: unknown): FailureClass {
  if (isRetryable(err)) return 'retry';
  if (err instanceof Error && FATAL_REPLY.test(err.message)) return 'fatal';
  return 'contained';
}

function deadLetterCodeOf(err: unknown): ContainedCode | undefined {
  const code = (err as Partial<HasDeadLetterCode> | null | undefined)?.deadLetterCode;
  return code === 'SCRIPT_ARGS' || code === 'SCRIPT_ERROR' || code === 'SCRIPT_REPLY' ? code : undefined;
}

/**
 * A contained failure as a typed error with its dead-letter code: the state layer's own errors say theirs; an error
 * reply of Redis has its script error code's (SCRIPT_ERROR_CODES) when one of our scripts refused its arguments,
 * else SCRIPT_ERROR; anything else (the arguments could not be built) SCRIPT_ARGS. A ContainedWriteError stays as
 * it is. `context` (e.g. the symbol) is carried by the new error.
 */
export function toContained(err: unknown, what: string, context: ErrorContext = {}): ContainedWriteError {
  if (err instanceof ContainedWriteError) return err;
  const message = err instanceof Error ? err.message : String(err);
  let code = deadLetterCodeOf(err);
  if (code === undefined) {
    const reply = err instanceof Error && err.name === 'ReplyError';
    const scriptCode = scriptErrorCode(err);
    code = !reply
      ? 'SCRIPT_ARGS'
      : scriptCode === undefined
        ? 'SCRIPT_ERROR'
        : SCRIPT_ERROR_CODES[scriptCode].deadLetterCode;
  }
  return new ContainedWriteError(code, `${what}: ${message}`, err, errorContext(context));
}
