// `aggregator features verify`: training/serving parity. The served vectors (feat:<S>:history, each entry the
// vector's fields as served) are recomputed from the event log: the events are replayed into a scratch Redis
// with StateWriter up to each vector's input watermarks, the snapshot is read, computeFeatures runs with the
// served feature_ts (and the sidecar's processing.max_future_skew_ms), and every field is compared (strings and schema_version exactly, numbers to 1e-9
// relative).
//
// Replay to watermarks: a vector carries, per input stream, the newest event id its state had applied
// (src_last_trade_id; src_bba_update_id; src_depth20_update_id; src_diff_update_id, the last diff applied or
// buffered). Ids increase in stream order within each stream, so the scratch state gets exactly each stream's
// prefix up to its watermark (a trade event is split when a live call applied only part of it). Every script is
// idempotent and decides by id, and every script that moves the mid refreshes the windows, so the state depends
// on that set of events, not on how the streams interleaved live (property-tested in state.test.ts). Limits: a
// book event live ignored as old is ignored in the replay too; the scratch book is never REST-anchored (as in
// live, until the re-anchor issue). Watermarks that go backwards restart the replay from an empty database.
//
// Event log: a text file, one SBE frame per line in hex (an optional 0x; blank lines and lines starting with #
// skipped), in stream order, e.g. the output of the replay tooling; or the simulator with a seed and a count.

import fs from 'node:fs';
import Redis from 'ioredis';
import type { Command } from 'commander';
import { simulate } from '../replay/simulator';
import { decodeFrame, type SbeMessage, type TradesStreamEvent } from '../sbe';
import { groupBySymbol } from '../state/batch';
import { DEFAULT_MAX_FUTURE_SKEW_MS } from '../events/validate';
import { Keys } from '../state/keys';
import { defineScripts, type RedisClient } from '../state/redis';
import { StateWriter, type StateWriterOptions } from '../state/writer';
import { FEATURE_NAMES, WATERMARK_FIELDS, computeFeatures } from './compute';
import { readSnapshot } from './snapshot';
import type { FeatureOptions, FeatureVector } from './types';

/** One served vector: its stream entry id and fields (strings, as stored). */
export interface ServedVector {
  readonly id: string;
  readonly fields: Readonly<Record<string, string>>;
}

export interface FieldMismatch {
  readonly field: string;
  readonly served: string | undefined;
  readonly recomputed: string;
}

export interface VectorResult {
  readonly id: string;
  readonly ok: boolean;
  readonly mismatches: readonly FieldMismatch[];
}

export interface VerifySummary {
  readonly vectors: number;
  readonly mismatched: number;
  readonly results: readonly VectorResult[];
}

/** Relative tolerance of numeric fields. */
export const RELATIVE_TOLERANCE = 1e-9;

function numbersAgree(a: number, b: number): boolean {
  if (a === b) return true;
  return Math.abs(a - b) <= RELATIVE_TOLERANCE * Math.max(Math.abs(a), Math.abs(b));
}

/**
 * Field-by-field comparison of a served vector (strings) with a recomputed one. Watermarks and schema_version
 * must be equal exactly, other numbers within RELATIVE_TOLERANCE. Fields served but unknown are ignored.
 */
export function compareVectors(
  served: Readonly<Record<string, string>>,
  recomputed: FeatureVector,
): FieldMismatch[] {
  const mismatches: FieldMismatch[] = [];
  for (const [field, value] of Object.entries(recomputed)) {
    const s = served[field];
    let ok: boolean;
    if (typeof value === 'string' || field === 'schema_version') ok = s === String(value);
    else ok = s !== undefined && s.trim() !== '' && numbersAgree(Number(s), value);
    if (!ok) mismatches.push({ field, served: s, recomputed: String(value) });
  }
  return mismatches;
}

function idOf(raw: string | undefined): bigint {
  return raw !== undefined && /^\d+$/.test(raw) ? BigInt(raw) : -1n;
}

function bookId(m: SbeMessage): bigint | undefined {
  switch (m.message) {
    case 'BestBidAskStreamEvent':
    case 'DepthSnapshotStreamEvent':
      return m.bookUpdateId;
    case 'DepthDiffStreamEvent':
      return m.lastBookUpdateId;
    default:
      return undefined;
  }
}

/** Replays one symbol's events into a scratch database up to watermarks; restartable. */
interface BookWatermarks {
  readonly bba: bigint;
  readonly depth20: bigint;
  readonly diff: bigint;
}

/** One input stream's events and how far the replay has applied them. */
class StreamCursor<T extends SbeMessage> {
  private at = 0;
  constructor(
    private readonly events: readonly T[],
    private readonly idOf: (event: T) => bigint,
  ) {}

  reset(): void {
    this.at = 0;
  }

  /** The next events whose id is <= watermark (stream order = id order). */
  take(watermark: bigint, into: SbeMessage[]): void {
    while (this.at < this.events.length) {
      const event = this.events[this.at]!;
      if (this.idOf(event) > watermark) break;
      into.push(event);
      this.at++;
    }
  }
}

/** Replays one symbol's events into a scratch database up to per-stream watermarks; restartable. */
class WatermarkReplay {
  private trades: TradesStreamEvent[] = [];
  private readonly bba: StreamCursor<SbeMessage>;
  private readonly depth20: StreamCursor<SbeMessage>;
  private readonly diffs: StreamCursor<SbeMessage>;
  private tradeAt = 0;
  /** Trades of the event at tradeAt already applied (a live call may have applied part of an event). */
  private tradePartial = 0;
  private last: { trade: bigint; book: BookWatermarks } | undefined;

  constructor(
    events: Iterable<SbeMessage>,
    symbol: string,
    private readonly client: RedisClient,
    private readonly writer: StateWriter,
  ) {
    const bba: SbeMessage[] = [];
    const depth20: SbeMessage[] = [];
    const diffs: SbeMessage[] = [];
    for (const m of events) {
      if (m.symbol !== symbol) continue;
      if (m.message === 'TradesStreamEvent') this.trades.push(m);
      else if (m.message === 'BestBidAskStreamEvent') bba.push(m);
      else if (m.message === 'DepthSnapshotStreamEvent') depth20.push(m);
      else diffs.push(m);
    }
    this.bba = new StreamCursor(bba, (m) => bookId(m) ?? 0n);
    this.depth20 = new StreamCursor(depth20, (m) => bookId(m) ?? 0n);
    this.diffs = new StreamCursor(diffs, (m) => bookId(m) ?? 0n);
  }

  private async reset(): Promise<void> {
    await this.client.flushdb();
    this.tradeAt = 0;
    this.tradePartial = 0;
    this.bba.reset();
    this.depth20.reset();
    this.diffs.reset();
  }

  async advanceTo(tradeWatermark: bigint, book: BookWatermarks): Promise<void> {
    const last = this.last;
    if (
      last !== undefined &&
      (tradeWatermark < last.trade ||
        book.bba < last.book.bba ||
        book.depth20 < last.book.depth20 ||
        book.diff < last.book.diff)
    ) {
      await this.reset();
    }
    this.last = { trade: tradeWatermark, book };
    const batch: SbeMessage[] = [];
    this.bba.take(book.bba, batch);
    this.depth20.take(book.depth20, batch);
    this.diffs.take(book.diff, batch);
    while (this.tradeAt < this.trades.length) {
      const m = this.trades[this.tradeAt];
      if (m === undefined) break;
      const rest = m.trades.slice(this.tradePartial);
      const take = rest.filter((t) => t.id <= tradeWatermark);
      if (take.length > 0) batch.push({ ...m, trades: take });
      if (take.length < rest.length) {
        this.tradePartial += take.length;
        break;
      }
      this.tradeAt++;
      this.tradePartial = 0;
    }
    if (batch.length > 0) await this.writer.write(groupBySymbol(batch).values(), []);
  }
}

export interface VerifyOptions {
  /** The scratch Redis (scripts defined): its current database is FLUSHED. */
  readonly scratch: RedisClient;
  readonly keys: Keys;
  readonly symbol: string;
  /** The event log, in stream order (other symbols are skipped). */
  readonly events: Iterable<SbeMessage>;
  /** The served vectors, oldest first. */
  readonly served: readonly ServedVector[];
  readonly writerOptions: StateWriterOptions;
  /** The serving sidecar's options (maxFutureSkewMs: its processing.max_future_skew_ms). */
  readonly featureOptions?: FeatureOptions;
  /** Called once per vector as it is verified. */
  readonly onResult?: (result: VectorResult) => void;
}

/** Recomputes every served vector from the replayed events and compares them. */
export async function verifyServedVectors(options: VerifyOptions): Promise<VerifySummary> {
  await options.scratch.flushdb();
  const writer = new StateWriter(options.scratch, options.keys, options.writerOptions);
  const replay = new WatermarkReplay(options.events, options.symbol, options.scratch, writer);
  const results: VectorResult[] = [];
  for (const vector of options.served) {
    await replay.advanceTo(idOf(vector.fields.src_last_trade_id), {
      bba: idOf(vector.fields.src_bba_update_id),
      depth20: idOf(vector.fields.src_depth20_update_id),
      diff: idOf(vector.fields.src_diff_update_id),
    });
    const snapshot = await readSnapshot(options.scratch, options.keys, options.symbol);
    const asOf = Number(vector.fields.feature_ts);
    const recomputed = computeFeatures(snapshot, Number.isFinite(asOf) ? asOf : 0, options.featureOptions);
    const mismatches = compareVectors(vector.fields, recomputed);
    const result = { id: vector.id, ok: mismatches.length === 0, mismatches };
    results.push(result);
    options.onResult?.(result);
  }
  return {
    vectors: results.length,
    mismatched: results.filter((r) => !r.ok).length,
    results,
  };
}

/** The served vectors of a symbol from its history stream, oldest first. */
export async function readServedVectors(
  client: RedisClient,
  keys: Keys,
  symbol: string,
  count?: number,
): Promise<ServedVector[]> {
  const entries =
    count === undefined
      ? await client.xrange(keys.featureHistory(symbol), '-', '+')
      : await client.xrange(keys.featureHistory(symbol), '-', '+', 'COUNT', count);
  return entries.map(([id, flat]) => {
    const fields: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] ?? ''] = flat[i + 1] ?? '';
    return { id, fields };
  });
}

/** Parses an event log: one hex SBE frame per line; blank lines and # comments skipped. */
export function parseEventLog(text: string): SbeMessage[] {
  const out: SbeMessage[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const hex = line.replace(/^0[xX]/, '');
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex))
      throw new Error(`event log line ${i + 1}: not an even number of hex digits`);
    out.push(decodeFrame(Buffer.from(hex, 'hex')).message);
  });
  return out;
}

export function formatResult(result: VectorResult): string {
  if (result.ok) return `${result.id} ok`;
  const parts = result.mismatches.map(
    (m) => `${m.field} served=${m.served ?? '(missing)'} recomputed=${m.recomputed}`,
  );
  return `${result.id} MISMATCH ${parts.join(' ')}`;
}

interface VerifyCliOptions {
  symbol: string;
  redisUrl: string;
  scratchUrl: string;
  events?: string;
  simSeed?: string;
  simCount?: string;
  simSymbols?: string;
  simStartUs?: string;
  count?: string;
  clusterMode?: boolean;
  levels: string;
  maxFutureSkewMs: string;
}

export function registerFeaturesVerify(featuresCommand: Command): void {
  featuresCommand
    .command('verify')
    .description(
      'training/serving parity: replay an event log into a scratch Redis up to each served vector watermarks, ' +
        'recompute and compare; exit 1 on any mismatch',
    )
    .requiredOption('--symbol <symbol>', 'symbol whose served vectors are verified')
    .requiredOption('--redis-url <url>', 'Redis holding feat:<S>:history (read only)')
    .requiredOption(
      '--scratch-url <url>',
      'scratch Redis URL with a database (redis://host:port/15): FLUSHED',
    )
    .option('--events <file>', 'event log: one hex SBE frame per line, stream order')
    .option('--sim-seed <n>', 'replay the simulator with this seed instead of a file')
    .option('--sim-count <n>', 'simulator events', '10000')
    .option('--sim-symbols <list>', 'simulator symbols, comma separated (default: --symbol)')
    .option('--sim-start-us <us>', 'simulator start time, us since the epoch', '1700000000000000')
    .option('--count <n>', 'verify only the oldest n served vectors')
    .option('--cluster-mode', 'hash-tagged key names (redis.cluster_mode)')
    .option('--levels <n>', 'processing.order_book_levels of the served state', '10')
    .option(
      '--max-future-skew-ms <ms>',
      'processing.max_future_skew_ms of the serving sidecar',
      String(DEFAULT_MAX_FUTURE_SKEW_MS),
    )
    .action(async (opts: VerifyCliOptions) => {
      if (opts.scratchUrl === opts.redisUrl)
        throw new Error('--scratch-url must differ from --redis-url (the scratch database is flushed)');
      const maxFutureSkewMs = Number(opts.maxFutureSkewMs);
      if (opts.maxFutureSkewMs.trim() === '' || !Number.isInteger(maxFutureSkewMs) || maxFutureSkewMs < 0)
        throw new Error(
          `--max-future-skew-ms must be a non-negative integer, got ${JSON.stringify(opts.maxFutureSkewMs)}`,
        );
      let events: Iterable<SbeMessage>;
      if (opts.events !== undefined) events = parseEventLog(fs.readFileSync(opts.events, 'utf8'));
      else if (opts.simSeed !== undefined)
        events = [
          ...simulate(
            {
              seed: Number(opts.simSeed),
              symbols: (opts.simSymbols ?? opts.symbol).split(','),
              startTimeUs: BigInt(opts.simStartUs ?? '1700000000000000'),
            },
            Number(opts.simCount ?? '10000'),
          ),
        ].map((e) => e.message);
      else throw new Error('give --events <file> or --sim-seed <n>');
      const keys = new Keys({ clusterMode: opts.clusterMode === true });
      const source = new Redis(opts.redisUrl);
      const scratch = new Redis(opts.scratchUrl);
      defineScripts(scratch);
      try {
        const served = await readServedVectors(
          source,
          keys,
          opts.symbol,
          opts.count === undefined ? undefined : Number(opts.count),
        );
        const summary = await verifyServedVectors({
          scratch,
          keys,
          symbol: opts.symbol,
          events,
          served,
          writerOptions: {
            orderBookLevels: Number(opts.levels),
            diffBufferMaxLength: 1000,
            deadLetterMaxLen: 1000,
          },
          featureOptions: { maxFutureSkewMs },
          onResult: (r) => process.stdout.write(`${formatResult(r)}\n`),
        });
        process.stdout.write(
          `verified ${summary.vectors} vectors of ${opts.symbol}: ${summary.vectors - summary.mismatched} ok, ` +
            `${summary.mismatched} mismatched\n`,
        );
        if (summary.mismatched > 0) process.exitCode = 1;
      } finally {
        source.disconnect();
        scratch.disconnect();
      }
    });
}

/** The feature names the verifier compares (FEATURE_NAMES and the watermarks). */
export const VERIFIED_FIELDS: readonly string[] = [...FEATURE_NAMES, ...WATERMARK_FIELDS];
