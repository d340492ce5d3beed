// Training/serving parity (`aggregator features verify`, src/cli/commands/features-verify.ts; the comparison
// itself is src/features/verify.ts). The served vectors (feat:<S>:history, each entry the vector's fields as
// served) are recomputed from the event log: the events are replayed into a scratch Redis with StateWriter up
// to each vector's input watermarks, the snapshot is read, computeFeatures runs with the served feature_ts (and
// the sidecar's processing.max_future_skew_ms), and every field is compared (strings and schema_version exactly,
// numbers to 1e-9 relative).
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
import { computeFeatures } from '../features/compute';
import { readSnapshot } from '../features/snapshot';
import type { FeatureOptions } from '../features/types';
import { servedVectorOf } from '../features/served-lines';
import { compareVectors, type ServedVector, type VectorResult, type VerifySummary } from '../features/verify';
import { simulate } from '../replay/simulator';
import { decodeFrame, type SbeMessage, type TradesStreamEvent } from '../sbe';
import { groupBySymbol } from '../state/batch';
import { Keys } from '../state/keys';
import { replayWriterOptions } from '../dataset/builder';
import { defineScripts, type RedisClient } from '../state/redis';
import { StateWriter, type StateWriterOptions } from '../state/writer';

/** A watermark field's id (-1 when empty or not an integer). */
export function idOf(raw: string | undefined): bigint {
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
export class WatermarkReplay {
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

  /** Advances to a served vector's watermarks (src_* fields). */
  async advanceToVector(fields: Readonly<Record<string, string>>): Promise<void> {
    await this.advanceTo(idOf(fields.src_last_trade_id), {
      bba: idOf(fields.src_bba_update_id),
      depth20: idOf(fields.src_depth20_update_id),
      diff: idOf(fields.src_diff_update_id),
    });
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
  return entries.map(([id, flat]) => servedVectorOf(id, flat));
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

/** Where the events come from: an event log file (parseEventLog) or the simulator. */
export type EventSource =
  | { readonly kind: 'file'; readonly path: string }
  | {
      readonly kind: 'simulator';
      readonly seed: number;
      readonly count: number;
      readonly symbols: readonly string[];
      readonly startTimeUs: bigint;
    };

/** The events of a source, in stream order. */
export function loadEvents(source: EventSource): SbeMessage[] {
  if (source.kind === 'file') return parseEventLog(fs.readFileSync(source.path, 'utf8'));
  return [
    ...simulate(
      { seed: source.seed, symbols: source.symbols, startTimeUs: source.startTimeUs },
      source.count,
    ),
  ].map((e) => e.message);
}

export interface FeaturesVerifyOptions {
  readonly symbol: string;
  /** The Redis holding feat:<S>:history (read only). */
  readonly redisUrl: string;
  /** The scratch Redis (URL with a database): FLUSHED. */
  readonly scratchUrl: string;
  readonly events: EventSource;
  /** Verify only the oldest count served vectors. */
  readonly count?: number;
  readonly clusterMode: boolean;
  /** processing.order_book_levels of the served state. */
  readonly orderBookLevels: number;
  /** processing.max_future_skew_ms of the serving sidecar. */
  readonly maxFutureSkewMs: number;
  readonly onResult?: (result: VectorResult) => void;
}

/** Loads the events, connects to both Redis servers and verifies the served vectors of one symbol. */
export async function runFeaturesVerify(options: FeaturesVerifyOptions): Promise<VerifySummary> {
  const events = loadEvents(options.events);
  const keys = new Keys({ clusterMode: options.clusterMode });
  const source = new Redis(options.redisUrl);
  const scratch = new Redis(options.scratchUrl);
  defineScripts(scratch);
  try {
    const served = await readServedVectors(source, keys, options.symbol, options.count);
    return await verifyServedVectors({
      scratch,
      keys,
      symbol: options.symbol,
      events,
      served,
      writerOptions: replayWriterOptions(options.orderBookLevels),
      featureOptions: { maxFutureSkewMs: options.maxFutureSkewMs },
      ...(options.onResult === undefined ? {} : { onResult: options.onResult }),
    });
  } finally {
    source.disconnect();
    scratch.disconnect();
  }
}
