import type { ArchiveReader } from '../archive/types';
import { computeFeatures } from '../features/compute';
import { readSnapshot } from '../features/snapshot';
import type { FeatureOptions, FeatureVector } from '../features/types';
import type { SbeMessage } from '../sbe/messages';
import { groupBySymbol } from '../state/batch';
import type { Keys } from '../state/keys';
import type { RedisClient } from '../state/redis';
import { StateWriter, type ContainedFailure, type StateWriterOptions } from '../state/writer';
import {
  decodeStream,
  mergeByEventTime,
  validationClock,
  DEFAULT_REORDER_WINDOW,
  type MergeStats,
  type RejectedItem,
} from './events';
import { labelsFor, priceMarkOf, type LabelValue, type PriceMark } from './labels';
import { featureCutMs, readPoints, tickTimes } from './ticks';

// The dataset builder (issue 16): replays archived events in event-time order into a scratch Redis through the
// processors' StateWriter and Lua scripts, and at every tick computes the feature vector exactly as the sidecar
// does (readSnapshot, one atomic Lua read, then computeFeatures(snapshot, tick)) from the state holding the
// events with event time <= tick - latency, plus the labels of each horizon (labels.ts). A row holds the vector
// as computed, not the sidecar's degraded-mode re-serve of an older vector (src/sidecar/degraded.ts), so a model
// sees the state's own completeness.
//
// Order of work: the read points (ticks.ts readPoints) are visited in ascending time; before the first event with
// a time > p is applied, every pending event is written and the state is read at p, once per symbol. A point
// past the newest event time read (the archive's end) is not a state of the archive: its labels are empty.
// The reader is asked for [from - warmup, to + the longest horizon]; every event it yields up to the last read
// point is applied (objects are whole arrival hours, so the state is warm well before `from`).

/** What a dataset is made of: the streams replayed, the symbols, the ticks and the label horizons. */
export interface DatasetRange {
  /** The archive's stream names to replay (the trade, bestbidask and depth streams). */
  readonly streams: readonly string[];
  readonly symbols: readonly string[];
  readonly fromMs: number;
  readonly toMs: number;
  readonly intervalMs: number;
  readonly horizonsMs: readonly number[];
  readonly latencyMs: number;
}

/** The StateWriter options of a scratch replay: the served book depth, bounds that a replay never reaches. */
export function replayWriterOptions(orderBookLevels: number): StateWriterOptions {
  return { orderBookLevels, diffBufferMaxLength: 1000, deadLetterMaxLen: 1000 };
}

export interface DatasetBuildOptions extends DatasetRange {
  readonly reader: ArchiveReader;
  /** The scratch Redis (scripts defined): its current database is FLUSHED first. */
  readonly client: RedisClient;
  readonly keys: Keys;
  readonly writerOptions: StateWriterOptions;
  /** What the sidecar passes to computeFeatures (processing.max_future_skew_ms). */
  readonly featureOptions?: FeatureOptions;
  /** Read this much before `from` (default 15 s: the longest return and window of the features). */
  readonly warmupMs?: number;
  /** Events per stream held to restore event-time order (events.ts mergeByEventTime). */
  readonly reorderWindow?: number;
  /** Events per StateWriter.write call at most (default 1000; a read point flushes earlier). */
  readonly maxEventsPerWrite?: number;
  /** The validation clock's "now" (default Date.now()). */
  readonly nowMs?: number;
  /** Called after every read point and every 10,000 events. */
  readonly onProgress?: (progress: BuildProgress) => void;
  /** Receives every row, in order (tick, then symbol). */
  readonly onRow: (row: DatasetRow) => void;
}

export interface BuildProgress {
  readonly events: number;
  readonly ticksDone: number;
  readonly ticksTotal: number;
  readonly elapsedMs: number;
}

export interface DatasetRow {
  readonly symbol: string;
  readonly tickMs: number;
  /** computeFeatures' vector: FEATURE_NAMES then WATERMARK_FIELDS. */
  readonly vector: FeatureVector;
  /** labels.ts labelColumns order. */
  readonly labels: readonly LabelValue[];
}

export interface BuildSummary {
  /** Valid events read, per stream (all symbols). */
  readonly eventsByStream: Readonly<Record<string, number>>;
  /** Events applied (of the requested symbols). */
  readonly applied: number;
  /** Valid events of symbols not requested (not applied). */
  readonly otherSymbols: number;
  /** Damage, undecodable frames and invalid events, with key and offset (every one). */
  readonly rejected: readonly RejectedItem[];
  /** Events of the requested symbols whose script call failed (contained by the writer, not in the state). */
  readonly contained: readonly ContainedFailure[];
  readonly late: number;
  readonly maxLatenessUs: number;
  readonly ticks: number;
  readonly rows: number;
  /** Event time of the oldest and newest event read, us (undefined when none). */
  readonly firstEventUs: number | undefined;
  readonly lastEventUs: number | undefined;
  readonly seconds: number;
}

/** Builds the rows of a dataset; resolves with what was read, rejected and written. */
export async function buildDataset(options: DatasetBuildOptions): Promise<BuildSummary> {
  const started = Date.now();
  const ticks = tickTimes(options.fromMs, options.toMs, options.intervalMs);
  const points = readPoints(ticks, options.latencyMs, options.horizonsMs);
  const maxHorizon = Math.max(0, ...options.horizonsMs);
  const symbols = [...new Set(options.symbols)];
  const wanted = new Set(symbols);
  const warmupMs = options.warmupMs ?? 15_000;
  const maxPerWrite = options.maxEventsPerWrite ?? 1000;

  // Which ticks each read point serves with features.
  const featureTicks = new Map<number, number[]>();
  for (const t of ticks) {
    const cut = featureCutMs(t, options.latencyMs);
    const list = featureTicks.get(cut) ?? [];
    list.push(t);
    featureTicks.set(cut, list);
  }

  await options.client.flushdb();
  const writer = new StateWriter(options.client, options.keys, options.writerOptions);
  const clock = validationClock(options.nowMs ?? Date.now(), options.featureOptions?.maxFutureSkewMs);
  const readFrom = options.fromMs - warmupMs - options.latencyMs;
  const readTo = options.toMs + maxHorizon;
  const mergeStats: MergeStats = { late: 0, maxLatenessUs: 0 };
  const merged = mergeByEventTime(
    options.streams.map((s) => decodeStream(options.reader.read(s, readFrom, readTo), clock)),
    mergeStats,
    options.reorderWindow ?? DEFAULT_REORDER_WINDOW,
  );

  const eventsByStream: Record<string, number> = Object.fromEntries(options.streams.map((s) => [s, 0]));
  const rejected: RejectedItem[] = [];
  const contained: ContainedFailure[] = [];
  let pending: SbeMessage[] = [];
  let events = 0;
  let applied = 0;
  let otherSymbols = 0;
  let firstEventUs: number | undefined;
  let lastEventUs: number | undefined;
  let pointAt = 0;
  let ticksDone = 0;
  let rows = 0;
  // Price marks per read point and symbol, kept until no tick needs them any more.
  const marks = new Map<number, Map<string, PriceMark>>();
  /** Features are computed at cut points; a tick's labels once its longest horizon's point was read. */
  const pendingLabels: Array<{ tickMs: number; vectors: Map<string, FeatureVector> }> = [];

  const progress = () =>
    options.onProgress?.({ events, ticksDone, ticksTotal: ticks.length, elapsedMs: Date.now() - started });

  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    const result = await writer.write(groupBySymbol(batch).values(), []);
    contained.push(...result.contained);
  };

  const emitReady = (pastEnd: boolean): void => {
    while (pendingLabels.length > 0) {
      const head = pendingLabels[0]!;
      const last = head.tickMs + maxHorizon;
      const read = pointAt > 0 && points[pointAt - 1]! >= last;
      if (!pastEnd && options.horizonsMs.length > 0 && !read) return;
      pendingLabels.shift();
      for (const symbol of symbols) {
        const vector = head.vectors.get(symbol);
        if (vector === undefined) continue;
        const labels = labelsFor(head.tickMs, options.horizonsMs, (ms) => marks.get(ms)?.get(symbol));
        options.onRow({ symbol, tickMs: head.tickMs, vector, labels });
        rows++;
      }
      ticksDone++;
      // Later ticks read marks at their own time and later only.
      for (const [ms] of marks) if (ms < head.tickMs + options.intervalMs) marks.delete(ms);
    }
  };

  /** Reads the state at point p (every event <= p applied) when it is a state of the archive. */
  const visit = async (p: number, inArchive: boolean): Promise<void> => {
    await flush();
    const forTicks = featureTicks.get(p) ?? [];
    const perSymbol = new Map<string, PriceMark>();
    for (const symbol of symbols) {
      const snapshot = await readSnapshot(options.client, options.keys, symbol);
      if (inArchive) perSymbol.set(symbol, priceMarkOf(snapshot.orderBook));
      for (const t of forTicks) {
        const vectors = pendingLabels.find((x) => x.tickMs === t)?.vectors;
        const vector = computeFeatures(snapshot, t, options.featureOptions);
        if (vectors !== undefined) vectors.set(symbol, vector);
        else pendingLabels.push({ tickMs: t, vectors: new Map([[symbol, vector]]) });
      }
    }
    if (inArchive) marks.set(p, perSymbol);
    pointAt++;
    emitReady(false);
    progress();
  };

  for await (const item of merged) {
    if (item.kind === 'rejected') {
      rejected.push(item);
      continue;
    }
    events++;
    eventsByStream[item.stream] = (eventsByStream[item.stream] ?? 0) + 1;
    if (events % 10_000 === 0) progress();
    if (firstEventUs === undefined || item.eventTimeUs < firstEventUs) firstEventUs = item.eventTimeUs;
    if (lastEventUs === undefined || item.eventTimeUs > lastEventUs) lastEventUs = item.eventTimeUs;
    while (pointAt < points.length && points[pointAt]! * 1000 < item.eventTimeUs)
      await visit(points[pointAt]!, true);
    if (pointAt >= points.length) break;
    if (!wanted.has(item.message.symbol)) {
      otherSymbols++;
      continue;
    }
    pending.push(item.message);
    applied++;
    if (pending.length >= maxPerWrite) await flush();
  }
  // The archive ended (or every point was read): the rest of the points are states at or past its end.
  while (pointAt < points.length) {
    const p = points[pointAt]!;
    await visit(p, lastEventUs !== undefined && p * 1000 <= lastEventUs);
  }
  emitReady(true);
  progress();
  return {
    eventsByStream,
    applied,
    otherSymbols,
    rejected,
    contained,
    late: mergeStats.late,
    maxLatenessUs: mergeStats.maxLatenessUs,
    ticks: ticks.length,
    rows,
    firstEventUs,
    lastEventUs,
    seconds: (Date.now() - started) / 1000,
  };
}
