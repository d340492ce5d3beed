import { AggregatorError } from '../common/errors';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';

// Re-anchor requests: entries of the durable stream reanchor:requests, consumed by the consumer group
// `reanchor-listeners` (one listener per sidecar, src/reanchor/listener.ts). An entry stays pending in the group
// until a listener acknowledges it after the re-anchor ended, so a request survives a listener restart and
// another listener claims it when its listener died.

export const REANCHOR_GROUP = 'reanchor-listeners';
/** Approximate cap of the request stream (acknowledged entries are history only). */
export const REQUEST_STREAM_MAX_LEN = 10_000;

export type RequestSource = 'processor' | 'sidecar' | 'operator' | 'listener';
const SOURCES: readonly RequestSource[] = ['processor', 'sidecar', 'operator', 'listener'];

export interface ReanchorRequest {
  readonly symbol: string;
  /** Why: trade_gap, depth_gap, crossed, stale, out_of_sync, operator, coalesced. */
  readonly reason: string;
  readonly source: RequestSource;
  /** Free text for the logs (e.g. the gap's ids). */
  readonly detail?: string;
}

/**
 * What a request needs: a trade gap alone is settled by a trade repair ('trades': REST trades merged into the live
 * trade state, no book rebuild; docs/reanchoring.md); every other reason rebuilds the whole state ('book', which
 * repairs trade gaps too). lua/reanchor-acquire-3.lua applies the same rule to coalesced requests. Pure.
 */
export function scopeOf(reason: string): 'book' | 'trades' {
  return reason === 'trade_gap' ? 'trades' : 'book';
}

export interface ReceivedRequest extends ReanchorRequest {
  /** The stream entry id (ms-seq). */
  readonly id: string;
  /** The entry's time, from its id. */
  readonly requestedMs: number;
}

export class ReanchorRequestError extends AggregatorError {
  constructor(
    readonly entryId: string,
    message: string,
  ) {
    super(`re-anchor request ${entryId}: ${message}`, { code: 'REANCHOR_REQUEST', context: { entryId } });
    this.name = 'ReanchorRequestError';
  }
}

const SYMBOL = /^[A-Z0-9]{2,20}$/;

/** The XADD field list of a request. Pure. */
export function requestFields(request: ReanchorRequest): string[] {
  if (!SYMBOL.test(request.symbol)) {
    throw new RangeError(`re-anchor request: not a symbol: ${JSON.stringify(request.symbol)}`);
  }
  const fields = ['symbol', request.symbol, 'reason', request.reason, 'source', request.source];
  if (request.detail !== undefined && request.detail !== '') fields.push('detail', request.detail);
  return fields;
}

/** Parses one stream entry (id and its flat field list). Pure; a malformed entry throws ReanchorRequestError. */
export function parseRequest(id: string, fields: readonly string[]): ReceivedRequest {
  const match = /^(\d+)-(\d+)$/.exec(id);
  if (!match) throw new ReanchorRequestError(id, 'not a stream entry id');
  const values = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) values.set(fields[i] as string, fields[i + 1] as string);
  const symbol = values.get('symbol') ?? '';
  if (!SYMBOL.test(symbol)) throw new ReanchorRequestError(id, `not a symbol: ${JSON.stringify(symbol)}`);
  const source = values.get('source') ?? '';
  if (!(SOURCES as readonly string[]).includes(source)) {
    throw new ReanchorRequestError(id, `unknown source ${JSON.stringify(source)}`);
  }
  const detail = values.get('detail');
  return {
    id,
    requestedMs: Number(match[1]),
    symbol,
    reason: values.get('reason') ?? '',
    source: source as RequestSource,
    ...(detail === undefined ? {} : { detail }),
  };
}

/** Queues a re-anchor request; returns its entry id. */
export async function requestReanchor(
  client: RedisClient,
  keys: Keys,
  request: ReanchorRequest,
): Promise<string> {
  const id = await client.xadd(
    keys.reanchorRequests(),
    'MAXLEN',
    '~',
    String(REQUEST_STREAM_MAX_LEN),
    '*',
    ...requestFields(request),
  );
  return id as string;
}

/** Creates the consumer group (and the stream) if absent; from the stream's start, so no request is skipped. */
export async function ensureRequestGroup(client: RedisClient, keys: Keys): Promise<void> {
  try {
    await client.xgroup('CREATE', keys.reanchorRequests(), REANCHOR_GROUP, '0', 'MKSTREAM');
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err;
  }
}

/**
 * At most one automatic request per symbol per interval from one process: a gap or a stale book is reported
 * by every batch or tick until the re-anchor ends, and one request (coalesced if a re-anchor runs) is enough.
 */
export class RequestThrottle {
  private readonly last = new Map<string, number>();

  constructor(private readonly intervalMs: number) {}

  /** True (and remembers `nowMs`) when a request for the symbol may go out now. */
  allow(symbol: string, nowMs: number): boolean {
    const previous = this.last.get(symbol);
    if (previous !== undefined && nowMs - previous < this.intervalMs) return false;
    this.last.set(symbol, nowMs);
    return true;
  }
}
