// `aggregator dataset verify` (issue 16): a dataset against what the service served, for the dataset's ticks.
// Three comparisons, each field by field with compareVectors (src/features/verify.ts: watermarks and
// schema_version exactly, other numbers to 1e-9 relative), on the served vectors whose feature_ts is a tick of
// the dataset for their symbol:
//   served-vs-archive   each served vector against what the sidecar serves from the vector recomputed from the
//                       archive at the served vector's watermarks (the replay of `aggregator features verify`,
//                       src/app/features-verify.ts, with the archive's events as the event log: the served vector's
//                       point in time), through the degraded-mode rule (src/sidecar/degraded.ts chooseVector, its
//                       default policy) applied to every served vector in order, so a re-serve of the last good
//                       vector is reproduced too;
//   dataset-vs-builder  each dataset row at those ticks against the dataset builder's row (src/dataset/builder.ts,
//                       events up to tick - latency) rebuilt from the same archive with the file's parameters;
//   dataset-vs-served   the dataset row against the served vector directly, when all their watermarks are equal
//                       (both computed from the same inputs) and the served vector is not a re-serve (a dataset
//                       row holds the vector as computed, builder.ts).
// A dataset row the builder does not produce is a mismatch (field "row"). served-vs-archive replays the archive
// from an empty state, from the arrival hour of `sinceMs` on: the served state must have begun there.

import type { ArchiveReader } from '../archive/types';
import { parseConfig } from '../config/config';
import { buildDataset, replayWriterOptions, type DatasetRange, type DatasetRow } from '../dataset/builder';
import { decodeStream, validationClock } from '../dataset/events';
import type { DatasetFileRow } from '../dataset/read';
import { startScratchRedis } from '../dataset/scratch-redis';
import { computeFeatures, WATERMARK_FIELDS } from '../features/compute';
import { readSnapshot } from '../features/snapshot';
import type { FeatureVector } from '../features/types';
import { compareVectors, type ServedVector } from '../features/verify';
import type { SbeMessage } from '../sbe/messages';
import { chooseVector, DEFAULT_DEGRADED_POLICY } from '../sidecar/degraded';
import { Keys } from '../state/keys';
import { createRedisClient } from '../state/redis';
import { StateWriter } from '../state/writer';
import { WatermarkReplay } from './features-verify';

export type VerifyCheck = 'served-vs-archive' | 'dataset-vs-builder' | 'dataset-vs-served';

export interface DatasetMismatch {
  readonly check: VerifyCheck;
  readonly symbol: string;
  readonly tickMs: number;
  readonly field: string;
  /** The two values compared, named by the check (e.g. dataset and served). */
  readonly left: string | undefined;
  readonly right: string | undefined;
}

export interface DatasetVerifyRun {
  readonly rows: readonly DatasetFileRow[];
  /** The served vectors per symbol, oldest first. */
  readonly served: ReadonlyMap<string, readonly ServedVector[]>;
  readonly reader: ArchiveReader;
  /** The build's parameters (`streams` and the ticks): from the Parquet metadata, else the options. */
  readonly range: Omit<DatasetRange, 'symbols'>;
  readonly orderBookLevels: number;
  readonly maxFutureSkewMs: number;
  /** Where the served state began: the archive is replayed from an empty state from this arrival hour on. */
  readonly sinceMs: number;
  readonly onMismatch?: (m: DatasetMismatch) => void;
}

export interface DatasetVerifySummary {
  /** Served vectors at a tick of the dataset (verified). */
  readonly ticks: number;
  /** Served vectors outside the dataset's ticks (not verified). */
  readonly outside: number;
  /** Of the verified, those whose watermarks equal the dataset row's (dataset-vs-served ran). */
  readonly sameInputs: number;
  /** Of the verified, the sidecar's re-serves of its last good vector (degraded mode): no dataset-vs-served. */
  readonly reserved: number;
  readonly mismatches: number;
  readonly mismatchesByCheck: Readonly<Record<VerifyCheck, number>>;
}

function sameWatermarks(served: Readonly<Record<string, string>>, row: DatasetFileRow): boolean {
  return WATERMARK_FIELDS.every((f) => served[f] === String(row.vector[f]));
}

/** The rows compared as strings (the dataset side of compareVectors is a FeatureVector). */
function asStrings(v: Readonly<Record<string, string | number>>): Record<string, string> {
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]));
}

async function archiveEvents(
  reader: ArchiveReader,
  streams: readonly string[],
  fromMs: number,
  toMs: number,
) {
  const clock = validationClock(Date.now());
  const events: SbeMessage[] = [];
  for (const stream of streams) {
    for await (const item of decodeStream(reader.read(stream, fromMs, toMs), clock)) {
      if (item.kind !== 'rejected') events.push(item.message);
    }
  }
  return events;
}

export async function runDatasetVerify(run: DatasetVerifyRun): Promise<DatasetVerifySummary> {
  const byCheck: Record<VerifyCheck, number> = {
    'served-vs-archive': 0,
    'dataset-vs-builder': 0,
    'dataset-vs-served': 0,
  };
  const report = (m: DatasetMismatch): void => {
    byCheck[m.check]++;
    run.onMismatch?.(m);
  };
  const rowAt = new Map<string, DatasetFileRow>();
  const ticksOf = new Map<string, Set<number>>();
  for (const row of run.rows) {
    rowAt.set(`${row.symbol}@${row.tickMs}`, row);
    const set = ticksOf.get(row.symbol) ?? new Set<number>();
    set.add(row.tickMs);
    ticksOf.set(row.symbol, set);
  }
  const verified = new Map<string, ServedVector[]>();
  let outside = 0;
  let maxTick = run.range.toMs;
  for (const [symbol, vectors] of run.served) {
    const ticks = ticksOf.get(symbol);
    for (const v of vectors) {
      const t = Number(v.fields['feature_ts']);
      if (ticks === undefined || !ticks.has(t)) {
        outside++;
        continue;
      }
      const list = verified.get(symbol) ?? [];
      list.push(v);
      verified.set(symbol, list);
      maxTick = Math.max(maxTick, t);
    }
  }

  const server = await startScratchRedis();
  const client = createRedisClient(parseConfig({ redis: { port: server.port } }).redis, {
    connectionName: 'dataset-verify',
  });
  const keys = new Keys({ clusterMode: false });
  const writerOptions = replayWriterOptions(run.orderBookLevels);
  let sameInputs = 0;
  let reservedCount = 0;
  const reserved = new Set<string>();
  try {
    // served-vs-archive: the served vectors' own point in time. The archive read reaches an hour past the last
    // tick: a served vector's watermarks may name events whose event time is after its tick.
    const events = await archiveEvents(run.reader, run.range.streams, run.sinceMs, maxTick + 3_600_000);
    for (const [symbol, all] of run.served) {
      const checked = verified.get(symbol);
      if (checked === undefined) continue;
      const last = Math.max(...checked.map((v) => Number(v.fields['feature_ts'])));
      const rowTicks = ticksOf.get(symbol)!;
      const replay = new WatermarkReplay(
        events,
        symbol,
        client,
        new StateWriter(client, keys, writerOptions),
      );
      await client.flushdb();
      // Every served vector up to the last checked one, in order: the sidecar's last good vector (degraded mode)
      // is the newest fresh one before a tick, whether or not that tick is in the dataset.
      let lastGood: FeatureVector | undefined;
      for (const v of all) {
        const tickMs = Number(v.fields['feature_ts']);
        if (!(tickMs <= last)) continue;
        await replay.advanceToVector(v.fields);
        const snapshot = await readSnapshot(client, keys, symbol);
        const computed = computeFeatures(snapshot, tickMs, { maxFutureSkewMs: run.maxFutureSkewMs });
        const chosen = chooseVector(computed, lastGood, tickMs, DEFAULT_DEGRADED_POLICY);
        if (chosen.mode === 'fresh') lastGood = chosen.vector;
        if (!rowTicks.has(tickMs)) continue;
        if (chosen.mode === 'reserved-last-good') reserved.add(`${symbol}@${tickMs}`);
        for (const m of compareVectors(v.fields, chosen.vector))
          report({
            check: 'served-vs-archive',
            symbol,
            tickMs,
            field: m.field,
            left: m.served,
            right: m.recomputed,
          });
      }
    }

    // dataset-vs-builder: the builder's rows with the dataset's parameters.
    const built = new Map<string, DatasetRow>();
    await buildDataset({
      reader: run.reader,
      ...run.range,
      symbols: [...verified.keys()],
      client,
      keys,
      writerOptions,
      featureOptions: { maxFutureSkewMs: run.maxFutureSkewMs },
      onRow: (row) => built.set(`${row.symbol}@${row.tickMs}`, row),
    });

    for (const [symbol, vectors] of verified) {
      for (const v of vectors) {
        const tickMs = Number(v.fields['feature_ts']);
        const row = rowAt.get(`${symbol}@${tickMs}`)!;
        const rebuilt = built.get(`${symbol}@${tickMs}`);
        if (rebuilt === undefined) {
          report({
            check: 'dataset-vs-builder',
            symbol,
            tickMs,
            field: 'row',
            left: 'present',
            right: undefined,
          });
        } else {
          for (const m of compareVectors(asStrings(row.vector), rebuilt.vector))
            report({
              check: 'dataset-vs-builder',
              symbol,
              tickMs,
              field: m.field,
              left: m.served,
              right: m.recomputed,
            });
        }
        if (reserved.has(`${symbol}@${tickMs}`)) reservedCount++;
        else if (sameWatermarks(v.fields, row)) {
          sameInputs++;
          for (const m of compareVectors(v.fields, row.vector))
            report({
              check: 'dataset-vs-served',
              symbol,
              tickMs,
              field: m.field,
              left: m.recomputed,
              right: m.served,
            });
        }
      }
    }
  } finally {
    client.disconnect();
    await server.stop();
  }
  const ticks = [...verified.values()].reduce((n, v) => n + v.length, 0);
  return {
    ticks,
    outside,
    sameInputs,
    reserved: reservedCount,
    mismatches: byCheck['served-vs-archive'] + byCheck['dataset-vs-builder'] + byCheck['dataset-vs-served'],
    mismatchesByCheck: byCheck,
  };
}

/** The names of the two values of a check's mismatch line. */
export const CHECK_SIDES: Readonly<Record<VerifyCheck, readonly [string, string]>> = {
  'served-vs-archive': ['served', 'archive'],
  'dataset-vs-builder': ['dataset', 'builder'],
  'dataset-vs-served': ['dataset', 'served'],
};

export function formatMismatch(m: DatasetMismatch): string {
  const [l, r] = CHECK_SIDES[m.check];
  return (
    `mismatch ${m.check} ${m.symbol} tick ${m.tickMs} ${m.field}: ${l}=${m.left ?? '(missing)'} ` +
    `${r}=${m.right ?? '(missing)'}`
  );
}
