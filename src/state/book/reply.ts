import { BookScriptError, type BookScript } from '../errors';
import type { AnchorOutcome, AnchorResult, BestBidAskResult, DepthBatchResult } from './types';

// The book scripts' replies, read into typed results; a reply of another shape is a BookScriptError REPLY.

export class ReplyReader {
  private index = 0;
  constructor(
    private readonly script: BookScript,
    private readonly symbol: string,
    private readonly reply: unknown[],
  ) {}

  private fail(what: string): never {
    throw new BookScriptError(
      this.script,
      this.symbol,
      'REPLY',
      `reply item ${this.index} is not ${what}: ${JSON.stringify(this.reply)}`,
    );
  }

  number(): number {
    const v = this.reply[this.index];
    if (typeof v !== 'number') this.fail('an integer');
    this.index++;
    return v;
  }

  flag(): boolean {
    return this.number() === 1;
  }

  string(): string {
    const v = this.reply[this.index];
    if (typeof v !== 'string') this.fail('a string');
    this.index++;
    return v;
  }

  id(): bigint | undefined {
    const v = this.string();
    if (v === '') return undefined;
    if (!/^\d+$/.test(v)) this.fail('an id');
    return BigInt(v);
  }

  oneOf<T extends string>(values: readonly T[]): T {
    const v = this.string();
    if (!(values as readonly string[]).includes(v)) this.fail(`one of ${values.join('|')}`);
    return v as T;
  }
}

/** A refused net-form call (reply -1): it wrote nothing and is to be sent again in the full form. */
export function isResendReply(reply: unknown[]): boolean {
  return reply.length === 1 && reply[0] === -1;
}

/** One apply-depth-batch call's reply (the batch's sums and totals are applyBookBatch's). */
export type DepthReply = Omit<DepthBatchResult, 'calls' | 'resent' | 'fullFormNext'>;

export function readDepthReply(symbol: string, reply: unknown[]): DepthReply {
  const r = new ReplyReader('applyDepthBatch', symbol, reply);
  const applied = r.number();
  const ignored = r.number();
  const buffered = r.number();
  const gap = r.flag();
  const crossed = r.flag();
  const overflow = r.number();
  const status = r.oneOf(['in_sync', 'out_of_sync'] as const);
  const reason = r.oneOf(['', 'no_snapshot', 'gap', 'crossed'] as const);
  const bookUpdateId = r.id();
  const bufferLength = r.number();
  const source = r.oneOf(['', 'book', 'depth20'] as const);
  const depth20Applied = r.flag();
  const bestWritten = r.flag();
  const kept = r.number();
  return {
    applied,
    ignored,
    buffered,
    kept,
    gap,
    crossed,
    overflow,
    status,
    reason,
    bookUpdateId,
    bufferLength,
    levelsSource: source === '' ? undefined : source,
    depth20Applied,
    bestWritten,
  };
}

/** anchor-book-11.lua's codes (see its header). */
const ANCHOR_OUTCOMES: Readonly<Record<AnchorResult['code'], AnchorOutcome>> = {
  1: 'anchored',
  0: 'noop',
  [-1]: 'too_old',
  [-2]: 'buffer_gap',
  [-3]: 'crossed',
};

export function readBestBidAskReply(symbol: string, reply: unknown[]): BestBidAskResult {
  const r = new ReplyReader('applyBestBidAsk', symbol, reply);
  return { applied: r.flag(), bestWritten: r.flag() };
}

export function readAnchorReply(symbol: string, reply: unknown[]): AnchorResult {
  const r = new ReplyReader('anchorBook', symbol, reply);
  const code = r.number();
  if (!(code in ANCHOR_OUTCOMES)) {
    throw new BookScriptError('anchorBook', symbol, 'REPLY', `unknown code ${code}`);
  }
  const known = code as AnchorResult['code'];
  return {
    code: known,
    outcome: ANCHOR_OUTCOMES[known],
    bookUpdateId: r.id(),
    diffsApplied: r.number(),
    diffsDropped: r.number(),
    neededLastUpdateId: r.id(),
  };
}
