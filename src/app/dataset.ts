// `aggregator dataset build` (issue 16): composition of the dataset builder (src/dataset/). Starts a scratch
// redis-server of its own, connects with the processors' scripts (createRedisClient), builds the rows
// (src/dataset/builder.ts), writes them as Parquet or CSV (src/dataset/output.ts) and stops the server.

import type { ArchiveReader } from '../archive/types';
import { parseConfig } from '../config/config';
import { FEATURE_SCHEMA_VERSION } from '../features/types';
import {
  buildDataset,
  replayWriterOptions,
  type BuildProgress,
  type BuildSummary,
  type DatasetRange,
} from '../dataset/builder';
import { openDatasetSink } from '../dataset/output';
import { startScratchRedis } from '../dataset/scratch-redis';
import { Keys } from '../state/keys';
import { createRedisClient } from '../state/redis';

export interface DatasetBuildRun extends DatasetRange {
  readonly reader: ArchiveReader;
  /** Where the archive is (recorded in the file's metadata). */
  readonly archive: string;
  readonly out: string;
  readonly format: 'parquet' | 'csv';
  readonly commandLine: string;
  /** processing.order_book_levels and processing.max_future_skew_ms of the served state. */
  readonly orderBookLevels: number;
  readonly maxFutureSkewMs: number;
  readonly redisServerCommand?: string;
  readonly reorderWindow?: number;
  readonly onProgress?: (progress: BuildProgress) => void;
  /** Told the scratch redis-server's port once it is up (the benchmark samples its memory). */
  readonly onScratchRedis?: (port: number) => void;
}

/** Builds the dataset file; resolves with the summary (the caller decides the exit code from it). */
export async function runDatasetBuild(run: DatasetBuildRun): Promise<BuildSummary> {
  // Opened first: a bad --out fails before the build, and rows are written as they come (not held in memory).
  const sink = openDatasetSink(run.out, run.format, run.horizonsMs);
  let server: Awaited<ReturnType<typeof startScratchRedis>> | undefined;
  let client: ReturnType<typeof createRedisClient> | undefined;
  try {
    server = await startScratchRedis(run.redisServerCommand);
    run.onScratchRedis?.(server.port);
    client = createRedisClient(parseConfig({ redis: { port: server.port } }).redis, {
      connectionName: 'dataset-build',
    });
    const summary = await buildDataset({
      reader: run.reader,
      streams: run.streams,
      symbols: run.symbols,
      fromMs: run.fromMs,
      toMs: run.toMs,
      intervalMs: run.intervalMs,
      horizonsMs: run.horizonsMs,
      latencyMs: run.latencyMs,
      client,
      keys: new Keys({ clusterMode: false }),
      writerOptions: replayWriterOptions(run.orderBookLevels),
      featureOptions: { maxFutureSkewMs: run.maxFutureSkewMs },
      ...(run.reorderWindow === undefined ? {} : { reorderWindow: run.reorderWindow }),
      ...(run.onProgress === undefined ? {} : { onProgress: run.onProgress }),
      onRow: (row) => sink.append(row),
    });
    sink.finish({
      schemaVersion: FEATURE_SCHEMA_VERSION,
      commandLine: run.commandLine,
      inputRange: {
        archive: run.archive,
        streams: run.streams,
        symbols: run.symbols,
        from_ms: run.fromMs,
        to_ms: run.toMs,
        interval_ms: run.intervalMs,
        horizons_ms: run.horizonsMs,
        latency_ms: run.latencyMs,
        first_event_us: summary.firstEventUs ?? null,
        last_event_us: summary.lastEventUs ?? null,
      },
    });
    return summary;
  } finally {
    sink.abort();
    client?.disconnect();
    await server?.stop();
  }
}
