import { AggregatorError } from '../common/errors';
import { validateMessage, type ValidationClock } from '../events/validate';
import { walkFrames } from '../sbe';

// Dead letters as an operator works with them (`aggregator dlq`): the entries of dlq:{<stream>} parsed, filtered,
// printed, and checked before a re-drive. Pure: no I/O here (src/dlq/store.ts reads and trims the stream).

/** One entry of dlq:{<stream>} (fields written by StateWriter.deadLetter, lua/dead-letter-3.lua). */
export interface DeadLetterEntry {
  /** The stream entry id, `<ms>-<seq>`: the ms is when the letter was written (Redis' clock). */
  readonly id: string;
  readonly timeMs: number;
  readonly errorCode: string;
  readonly error: string;
  /** Known when the frame decoded far enough (and the symbol itself was not the problem). */
  readonly symbol: string | undefined;
  readonly shard: string;
  readonly sequenceNumber: string;
  readonly subSequenceNumber: number;
  readonly frameIndex: number;
  readonly partitionKey: string;
  /** The dead-lettered bytes: one frame, or the undecodable rest of a record. */
  readonly dataBase64: string;
  /** Kinesis' approximate arrival time of the record, ms (absent when the daemon did not give it). */
  readonly arrivalMs: number | undefined;
}

/** A bad option value of `aggregator dlq` (exit 2), with a sentence naming the option and the value. */
export class DlqUsageError extends AggregatorError {
  override readonly name = 'DlqUsageError';
  constructor(message: string) {
    super(message, { code: 'DLQ_USAGE' });
  }
}

const STREAM_ID = /^(\d{1,15})-(\d{1,20})$/;

/** Whether `text` is a stream entry id `<ms>-<seq>`. */
export function isEntryId(text: string): boolean {
  return STREAM_ID.test(text);
}

function integerOr(text: string | undefined, fallback: number): number {
  if (text === undefined || !/^-?\d+$/.test(text)) return fallback;
  return Number(text);
}

/** An entry from XRANGE's reply (id, flat field/value list). Never throws: missing fields read as empty. */
export function parseEntry(id: string, flat: readonly string[]): DeadLetterEntry {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) f.set(flat[i]!, flat[i + 1]!);
  const arrival = f.get('arrival_ms');
  return {
    id,
    timeMs: Number(STREAM_ID.exec(id)?.[1] ?? 0),
    errorCode: f.get('error_code') ?? '',
    error: f.get('error') ?? '',
    symbol: f.get('symbol') || undefined,
    shard: f.get('shard') ?? '',
    sequenceNumber: f.get('sequence_number') ?? '',
    subSequenceNumber: integerOr(f.get('sub_sequence_number'), 0),
    frameIndex: integerOr(f.get('frame_index'), 0),
    partitionKey: f.get('partition_key') ?? '',
    dataBase64: f.get('data_base64') ?? '',
    arrivalMs: arrival === undefined || arrival === '' ? undefined : integerOr(arrival, 0),
  };
}

/** Which letters a list or a re-drive selects; every given part must match (codes and symbols: any of them). */
export interface LetterFilter {
  readonly codes?: ReadonlySet<string> | undefined;
  readonly symbols?: ReadonlySet<string> | undefined;
  /** Written at or after this time (ms since the epoch). */
  readonly sinceMs?: number | undefined;
  /** Written at or before this time (ms since the epoch). */
  readonly untilMs?: number | undefined;
}

export function matchesFilter(entry: DeadLetterEntry, filter: LetterFilter): boolean {
  if (filter.codes !== undefined && !filter.codes.has(entry.errorCode)) return false;
  if (filter.symbols !== undefined && (entry.symbol === undefined || !filter.symbols.has(entry.symbol)))
    return false;
  if (filter.sinceMs !== undefined && entry.timeMs < filter.sinceMs) return false;
  if (filter.untilMs !== undefined && entry.timeMs > filter.untilMs) return false;
  return true;
}

/** Whether the filter selects anything narrower than "every letter". */
export function isFiltering(filter: LetterFilter): boolean {
  return (
    filter.codes !== undefined ||
    filter.symbols !== undefined ||
    filter.sinceMs !== undefined ||
    filter.untilMs !== undefined
  );
}

/** Values of a repeatable, comma-separable option (`--code A,B --code C`), upper-cased; undefined when none. */
export function listOption(values: readonly string[] | undefined): Set<string> | undefined {
  if (values === undefined) return undefined;
  const out = new Set<string>();
  for (const value of values) {
    for (const part of value.split(',')) {
      const item = part.trim().toUpperCase();
      if (item !== '') out.add(item);
    }
  }
  return out.size === 0 ? undefined : out;
}

const RELATIVE = /^(\d+)(s|m|h|d)$/;
const UNIT_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * A time option (`--since`, `--until`): milliseconds since the epoch (digits), an ISO 8601 date or date-time (UTC
 * unless it names an offset), or a duration before `nowMs`: `<n>s`, `<n>m`, `<n>h`, `<n>d` (e.g. `30m`).
 */
export function parseTimeOption(name: string, text: string, nowMs: number): number {
  const value = text.trim();
  if (/^\d+$/.test(value)) return Number(value);
  const relative = RELATIVE.exec(value);
  if (relative) return nowMs - Number(relative[1]) * UNIT_MS[relative[2]!]!;
  if (ISO_DATE.test(value)) {
    const iso = value.replace(' ', 'T');
    // A date alone is UTC midnight (Date.parse's rule); a date-time without an offset is read as UTC too.
    const ms = Date.parse(iso.length === 10 || /(?:Z|[+-]\d{2}:\d{2})$/.test(iso) ? iso : `${iso}Z`);
    if (Number.isFinite(ms)) return ms;
  }
  throw new DlqUsageError(
    `${name}: expected ms since the epoch, an ISO 8601 date or date-time (e.g. 2026-12-06T10:00:00Z) or a duration ` +
      `before now (e.g. 30m, 2h, 7d), got "${text}"`,
  );
}

/** A positive integer option (`--limit`). */
export function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new DlqUsageError(`--limit: expected a positive integer, got "${text}"`);
  }
  return n;
}

/** The JSON view of a letter (`dlq list --json`, one per line; the top of `dlq show`): the Redis field names. */
export function letterJson(entry: DeadLetterEntry): Record<string, unknown> {
  return {
    id: entry.id,
    time: new Date(entry.timeMs).toISOString(),
    error_code: entry.errorCode,
    error: entry.error,
    symbol: entry.symbol ?? null,
    shard: entry.shard,
    sequence_number: entry.sequenceNumber,
    sub_sequence_number: entry.subSequenceNumber,
    frame_index: entry.frameIndex,
    partition_key: entry.partitionKey,
    arrival_ms: entry.arrivalMs ?? null,
    bytes: Buffer.from(entry.dataBase64, 'base64').length,
    data_base64: entry.dataBase64,
  };
}

/** Longest MESSAGE cell of the table (the whole sentence is in --json and `dlq show`). */
export const TABLE_MESSAGE_MAX = 100;

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`;
}

/** The SEQ cell: the record's sequence number, then `/<sub-sequence>` and `#<frame index>` when not 0. */
export function seqCell(entry: DeadLetterEntry): string {
  return (
    entry.sequenceNumber +
    (entry.subSequenceNumber === 0 ? '' : `/${entry.subSequenceNumber}`) +
    (entry.frameIndex === 0 ? '' : `#${entry.frameIndex}`)
  );
}

/** The human table of `dlq list`: a header line, then one line per letter; columns separated by two spaces. */
export function formatLetterTable(entries: readonly DeadLetterEntry[]): string {
  const rows = [
    ['ID', 'TIME', 'CODE', 'SYMBOL', 'SHARD', 'SEQ', 'MESSAGE'],
    ...entries.map((e) => [
      e.id,
      new Date(e.timeMs).toISOString(),
      e.errorCode,
      e.symbol ?? '-',
      e.shard,
      seqCell(e),
      clip(e.error.replace(/\s+/g, ' '), TABLE_MESSAGE_MAX),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => `${r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')}`.trimEnd() + '\n')
    .join('');
}

/** What the processors would do with a letter's bytes if they arrived now: apply them, or not (and why). */
export type RedriveCheck =
  | { readonly ok: true; readonly frames: number }
  | { readonly ok: false; readonly code: string; readonly reason: string };

export interface RedriveCheckContext {
  readonly clock: ValidationClock;
  /** processing.symbols and processing.unlisted_symbols. */
  readonly symbols: ReadonlySet<string>;
  readonly unlisted: 'skip' | 'apply';
}

/**
 * The processors' own decode and validation (walkFrames, validateMessage) run on a letter's bytes with the current
 * config: a letter that does not pass would be dead-lettered again (or skipped, for an unlisted symbol). What only
 * a script can refuse (SCRIPT_*) is not known here: such letters pass.
 */
export function checkRedrive(bytes: Buffer, context: RedriveCheckContext): RedriveCheck {
  const items = walkFrames(bytes);
  let frames = 0;
  for (const [index, item] of items.entries()) {
    const where = items.length > 1 ? `frame ${index}: ` : '';
    if (!item.ok) {
      return {
        ok: false,
        code: item.error.code,
        reason: `${where}the bytes do not decode (${item.error.code}: ${item.error.message})`,
      };
    }
    const failure = validateMessage(item.frame.message, context.clock);
    if (failure !== undefined) {
      return { ok: false, code: failure.code, reason: `${where}${failure.code}: ${failure.message}` };
    }
    const symbol = item.frame.message.symbol;
    if (context.unlisted === 'skip' && !context.symbols.has(symbol)) {
      return {
        ok: false,
        code: 'UNLISTED_SYMBOL',
        reason: `${where}${symbol} is not in processing.symbols and processing.unlisted_symbols is skip: it would be skipped`,
      };
    }
    frames++;
  }
  return { ok: true, frames };
}
