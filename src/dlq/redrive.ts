import { backoffDelay } from '../common/retry';
import { MAX_BYTES_PER_CALL, MAX_RECORDS_PER_CALL, type PutRecordsFn } from '../kinesis/put-records';
import type { DeadLetterEntry, RedriveCheck } from './letters';

// Re-driving dead letters (`aggregator dlq redrive`): each selected letter's bytes are put back on its Kinesis
// stream as one record, and the letter is trimmed from dlq:{<stream>} only after Kinesis acknowledged that record.
// Safe to repeat: the state scripts apply an event once, whoever sends it how often. A letter is claimed in Redis
// before its put (lua/dlq-claim-2.lua), so two re-drives at once never put the same letter twice.

export type ClaimResult = 'claimed' | 'gone' | 'busy';

/** The Redis side of a re-drive (src/dlq/store.ts; fakes in the unit tests). */
export interface RedriveStore {
  /** Claims a letter still in the stream: 'gone' when it is not any more, 'busy' when another re-drive holds it. */
  claim(id: string): Promise<ClaimResult>;
  /** Ends the claim; trims the letter when `trim` (its put was acknowledged). Returns the entries trimmed. */
  release(id: string, trim: boolean): Promise<number>;
}

/** What became of one selected letter. */
export type RedriveOutcome =
  | {
      readonly kind: 'redriven';
      readonly entry: DeadLetterEntry;
      readonly shardId: string;
      readonly sequenceNumber: string;
    }
  | { readonly kind: 'would_redrive'; readonly entry: DeadLetterEntry; readonly frames: number }
  | {
      readonly kind: 'refused';
      readonly entry: DeadLetterEntry;
      readonly code: string;
      readonly reason: string;
    }
  | { readonly kind: 'failed'; readonly entry: DeadLetterEntry; readonly error: string }
  | {
      readonly kind: 'untrimmed';
      readonly entry: DeadLetterEntry;
      readonly shardId: string;
      readonly sequenceNumber: string;
      readonly error: string;
    }
  | { readonly kind: 'busy'; readonly entry: DeadLetterEntry }
  | { readonly kind: 'gone'; readonly entry: DeadLetterEntry }
  | { readonly kind: 'not_found'; readonly id: string };

export type RedriveOutcomeKind = RedriveOutcome['kind'];

/** The outcomes that make `dlq redrive` exit 1: a selected letter that was not re-driven and trimmed. */
export const FAILED_OUTCOMES: ReadonlySet<RedriveOutcomeKind> = new Set([
  'refused',
  'failed',
  'untrimmed',
  'busy',
  'not_found',
]);

export interface RedriveOptions {
  /** The Kinesis stream the letters came from (the dead-letter stream's name). */
  readonly streamName: string;
  readonly store: RedriveStore;
  readonly putRecords: PutRecordsFn;
  /** What the processors would do with the bytes now (letters.checkRedrive with the current config). */
  readonly check: (entry: DeadLetterEntry) => RedriveCheck;
  /** Re-drive letters the check refuses. */
  readonly force?: boolean;
  /** Select and check only: no claim, no put, no trim. */
  readonly dryRun?: boolean;
  /** Attempts of the entries PutRecords refused (throttling, internal failure), including the first (default 3). */
  readonly maxAttempts?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Called with each outcome as soon as it is known (the CLI prints it). */
  readonly onOutcome?: (outcome: RedriveOutcome) => void;
}

/** The partition key of a re-driven record: the original record's (the replay producer's is the symbol), so it
 * lands on the shard that takes that symbol's records now. */
export function redrivePartitionKey(entry: DeadLetterEntry): string {
  if (entry.partitionKey !== '') return entry.partitionKey;
  if (entry.symbol !== undefined) return entry.symbol;
  return 'dlq-redrive';
}

interface Claimed {
  readonly entry: DeadLetterEntry;
  readonly data: Buffer;
  readonly partitionKey: string;
}

type PutResult =
  | { readonly ok: true; readonly shardId: string; readonly sequenceNumber: string }
  | { readonly ok: false; readonly error: string };

function messageOf(err: unknown): string {
  if (err instanceof Error)
    return err.name && err.name !== 'Error' ? `${err.name}: ${err.message}` : err.message;
  return String(err);
}

/** Puts one chunk (at most MAX_RECORDS_PER_CALL records, MAX_BYTES_PER_CALL bytes); retries refused entries. */
async function putChunk(chunk: readonly Claimed[], options: RedriveOptions): Promise<PutResult[]> {
  const maxAttempts = options.maxAttempts ?? 3;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const results: PutResult[] = chunk.map(() => ({ ok: false, error: 'not sent' }));
  let pending = chunk.map((_, i) => i);
  for (let attempt = 1; attempt <= maxAttempts && pending.length > 0; attempt++) {
    if (attempt > 1) await sleep(backoffDelay(attempt - 1, 100, Infinity)); // 100, 200, 400 ms ...
    let reply;
    try {
      reply = await options.putRecords({
        StreamName: options.streamName,
        Records: pending.map((i) => ({ Data: chunk[i]!.data, PartitionKey: chunk[i]!.partitionKey })),
      });
    } catch (err) {
      // The SDK client already retried the call itself: give up on these entries.
      for (const i of pending) results[i] = { ok: false, error: messageOf(err) };
      return results;
    }
    const next: number[] = [];
    for (const [j, i] of pending.entries()) {
      const record = reply.Records?.[j];
      if (record?.SequenceNumber !== undefined && record.ShardId !== undefined && !record.ErrorCode) {
        results[i] = { ok: true, shardId: record.ShardId, sequenceNumber: record.SequenceNumber };
      } else {
        results[i] = {
          ok: false,
          error: record?.ErrorCode
            ? `${record.ErrorCode}: ${record.ErrorMessage ?? ''}`.trim()
            : 'no result for the record in the PutRecords reply',
        };
        next.push(i);
      }
    }
    pending = next;
  }
  return results;
}

/** Splits the claimed letters into PutRecords calls within Kinesis' limits, in their order. */
function chunksOf(claimed: readonly Claimed[]): Claimed[][] {
  const chunks: Claimed[][] = [];
  let current: Claimed[] = [];
  let bytes = 0;
  for (const item of claimed) {
    const size = item.data.length + Buffer.byteLength(item.partitionKey, 'utf8');
    if (current.length > 0 && (current.length >= MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * Re-drives the selected letters, oldest first (`undefined` entries: ids given that the stream does not hold).
 * Per letter: the check (refused unless `force`), the claim, the put, then the trim once Kinesis acknowledged the
 * record, or the claim released and the letter kept when the put failed. Returns every outcome, in order.
 */
export async function redriveLetters(
  selected: ReadonlyArray<DeadLetterEntry | { readonly notFound: string }>,
  options: RedriveOptions,
): Promise<RedriveOutcome[]> {
  const outcomes: RedriveOutcome[] = [];
  const report = (outcome: RedriveOutcome): void => {
    outcomes.push(outcome);
    options.onOutcome?.(outcome);
  };
  const toPut: Claimed[] = [];
  const flush = async (): Promise<void> => {
    for (const chunk of chunksOf(toPut.splice(0))) {
      const results = await putChunk(chunk, options);
      for (const [i, item] of chunk.entries()) {
        const result = results[i]!;
        if (result.ok) {
          try {
            await options.store.release(item.entry.id, true);
            report({ kind: 'redriven', entry: item.entry, ...pick(result) });
          } catch (err) {
            report({ kind: 'untrimmed', entry: item.entry, ...pick(result), error: messageOf(err) });
          }
        } else {
          // Kept; the claim expires by itself if this release fails too.
          await options.store.release(item.entry.id, false).catch(() => 0);
          report({ kind: 'failed', entry: item.entry, error: result.error });
        }
      }
    }
  };
  for (const item of selected) {
    if ('notFound' in item) {
      report({ kind: 'not_found', id: item.notFound });
      continue;
    }
    const check = options.check(item);
    if (!check.ok && !options.force) {
      report({ kind: 'refused', entry: item, code: check.code, reason: check.reason });
      continue;
    }
    if (options.dryRun) {
      report({ kind: 'would_redrive', entry: item, frames: check.ok ? check.frames : 0 });
      continue;
    }
    let claim: ClaimResult;
    try {
      claim = await options.store.claim(item.id);
    } catch (err) {
      report({ kind: 'failed', entry: item, error: `claiming the letter failed: ${messageOf(err)}` });
      continue;
    }
    if (claim !== 'claimed') {
      report({ kind: claim, entry: item });
      continue;
    }
    toPut.push({
      entry: item,
      data: Buffer.from(item.dataBase64, 'base64'),
      partitionKey: redrivePartitionKey(item),
    });
    if (toPut.length >= MAX_RECORDS_PER_CALL) await flush();
  }
  await flush();
  return outcomes;
}

function pick(result: { readonly shardId: string; readonly sequenceNumber: string }) {
  return { shardId: result.shardId, sequenceNumber: result.sequenceNumber };
}

/** 0 when every selected letter was re-driven and trimmed (or would be, in a dry run), else 1. */
export function redriveExitCode(outcomes: readonly RedriveOutcome[]): 0 | 1 {
  return outcomes.some((o) => FAILED_OUTCOMES.has(o.kind)) ? 1 : 0;
}

/** One line of JSON per outcome (`dlq redrive --json`). */
export function outcomeJson(outcome: RedriveOutcome): Record<string, unknown> {
  if (outcome.kind === 'not_found') return { id: outcome.id, outcome: outcome.kind };
  const base = {
    id: outcome.entry.id,
    outcome: outcome.kind,
    error_code: outcome.entry.errorCode,
    symbol: outcome.entry.symbol ?? null,
  };
  switch (outcome.kind) {
    case 'redriven':
      return { ...base, shard_id: outcome.shardId, sequence_number: outcome.sequenceNumber };
    case 'untrimmed':
      return {
        ...base,
        shard_id: outcome.shardId,
        sequence_number: outcome.sequenceNumber,
        error: outcome.error,
      };
    case 'would_redrive':
      return { ...base, frames: outcome.frames };
    case 'refused':
      return { ...base, check_code: outcome.code, reason: outcome.reason };
    case 'failed':
      return { ...base, error: outcome.error };
    case 'busy':
    case 'gone':
      return base;
  }
}

/** One human line per outcome. */
export function outcomeLine(outcome: RedriveOutcome): string {
  if (outcome.kind === 'not_found') {
    return `not found  ${outcome.id}: not in the stream (re-driven already, trimmed by the cap, or a wrong id)`;
  }
  const head = `${outcome.entry.id}  ${outcome.entry.errorCode}  ${outcome.entry.symbol ?? '-'}`;
  switch (outcome.kind) {
    case 'redriven':
      return `re-driven  ${head}: put as ${outcome.shardId} ${outcome.sequenceNumber}; trimmed`;
    case 'untrimmed':
      return `untrimmed  ${head}: put as ${outcome.shardId} ${outcome.sequenceNumber} but not trimmed (${outcome.error}); a later re-drive puts it again (harmless)`;
    case 'would_redrive':
      return `would re-drive  ${head}: ${outcome.frames} frame(s) pass decoding and validation`;
    case 'refused':
      return `refused    ${head}: would not be applied: ${outcome.reason} (--force sends it anyway)`;
    case 'failed':
      return `failed     ${head}: ${outcome.error}; kept`;
    case 'busy':
      return `busy       ${head}: another re-drive holds it; kept`;
    case 'gone':
      return `gone       ${head}: left the stream meanwhile (re-driven by another operator)`;
  }
}

/** The counts line on stderr after a re-drive. */
export function summaryLine(outcomes: readonly RedriveOutcome[], stream: string, dryRun: boolean): string {
  const counts = new Map<RedriveOutcomeKind, number>();
  for (const o of outcomes) counts.set(o.kind, (counts.get(o.kind) ?? 0) + 1);
  const order: RedriveOutcomeKind[] = dryRun
    ? ['would_redrive', 'refused', 'not_found']
    : ['redriven', 'refused', 'failed', 'untrimmed', 'busy', 'gone', 'not_found'];
  const parts = order.map((kind) => `${counts.get(kind) ?? 0} ${kind.replace('_', ' ')}`);
  return `dlq redrive${dryRun ? ' --dry-run' : ''} (${stream}): ${outcomes.length} selected; ${parts.join(', ')}`;
}
