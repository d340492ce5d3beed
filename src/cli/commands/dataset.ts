import type { Command } from 'commander';
import fs from 'node:fs';
import { runDatasetBuild } from '../../app/dataset';
import { formatMismatch, runDatasetVerify } from '../../app/dataset-verify';
import type { ArchiveReader } from '../../archive/types';
import { loadConfig, STREAM_KINDS } from '../../config/config';
import type { BuildProgress, BuildSummary } from '../../dataset/builder';
import { readDatasetFile } from '../../dataset/read';
import { parseDurationMs } from '../../dataset/ticks';
import { readServedVectors } from '../../app/features-verify';
import { parseServedLines, ServedLinesError } from '../../features/served-lines';
import type { ServedVector } from '../../features/verify';
import { Keys } from '../../state/keys';
import { createRedisClient } from '../../state/redis';

// `aggregator dataset build` (issue 16): a training dataset from the event archive (src/app/dataset.ts). The
// archive reader comes from an injected factory (the archive readers live in src/archive/). Progress on stderr:
// one line rewritten in place on a terminal, a line every 10 s otherwise; the summary on stdout; every rejected
// archive item on stderr with its object key and byte offset. Exit 0; 2 when bad archive data was skipped (the
// file is written); 1 when the build failed.

/** Opens an archive (a directory or s3://bucket/prefix). */
/** Where an s3:// archive is read from: the config's region, and an S3-compatible endpoint when one is given. */
export interface ArchiveLocationOptions {
  readonly region: string;
  readonly s3Endpoint: string | undefined;
}

export type ArchiveReaderFactory = (
  location: string,
  options: ArchiveLocationOptions,
) => ArchiveReader | Promise<ArchiveReader>;

export interface DatasetCommandDeps {
  readonly createArchiveReader: ArchiveReaderFactory;
  /** Where progress and rejected items go (default process.stderr) and the summary (default process.stdout). */
  readonly stderr?: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stdout?: NodeJS.WritableStream;
  readonly argv?: readonly string[];
}

interface BuildCliOptions {
  archive: string;
  symbol: string;
  from: string;
  to: string;
  interval: string;
  horizon: string;
  latency: string;
  out: string;
  format: string;
  s3Endpoint?: string;
}

const RELATIVE = /^(\d+)(s|m|h|d)$/;
const RELATIVE_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * --from/--to: ms since the epoch, an ISO 8601 time with its zone (Z or +hh:mm), `now`, or a duration before
 * `nowMs` as `aggregator dlq --since` reads it: `<n>s`, `<n>m`, `<n>h`, `<n>d` (e.g. `90s`).
 */
export function parseTimeOption(name: string, text: string, nowMs: number = Date.now()): number {
  if (/^\d+$/.test(text)) return Number(text);
  if (text === 'now') return nowMs;
  const relative = RELATIVE.exec(text);
  if (relative !== null) return nowMs - Number(relative[1]) * RELATIVE_MS[relative[2]!]!;
  const zoned = /^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/.test(text);
  const ms = Date.parse(text);
  if (!zoned || !Number.isFinite(ms)) {
    throw new Error(
      `${name} must be ms since the epoch, an ISO 8601 time with a zone, now or a duration before now ` +
        `(e.g. 90s, 5m, 2h, 1d), got ${JSON.stringify(text)}`,
    );
  }
  return ms;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`
    : `${Math.floor(s / 60)}m${s % 60}s`;
}

/** The progress line: events and ticks done, the event rate, the ETA from the ticks' fraction. Pure. */
export function formatProgress(p: BuildProgress): string {
  const seconds = p.elapsedMs / 1000;
  const rate = seconds > 0 ? Math.round(p.events / seconds) : 0;
  const eta = p.ticksDone > 0 ? duration((p.elapsedMs * (p.ticksTotal - p.ticksDone)) / p.ticksDone) : '?';
  const pct = p.ticksTotal > 0 ? Math.floor((100 * p.ticksDone) / p.ticksTotal) : 100;
  return `events ${p.events} | ticks ${p.ticksDone}/${p.ticksTotal} (${pct}%) | ${rate} events/s | ETA ${eta}`;
}

/** The summary lines: events per stream, rejected (dead-lettered) frames per code, late, ticks, rows, seconds. */
export function formatSummary(s: BuildSummary, out: string): string[] {
  const byCode = new Map<string, number>();
  for (const r of s.rejected)
    byCode.set(`${r.source}:${r.code}`, (byCode.get(`${r.source}:${r.code}`) ?? 0) + 1);
  const containedEvents = s.contained.reduce((n, c) => n + c.events, 0);
  return [
    `events per stream: ${Object.entries(s.eventsByStream)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `applied ${s.applied}, other symbols ${s.otherSymbols}, late ${s.late} (max ${s.maxLatenessUs} us behind)`,
    `dead-lettered frames: ${s.rejected.length}${
      byCode.size > 0 ? ` (${[...byCode].map(([k, v]) => `${k} ${v}`).join(', ')})` : ''
    }; events of failed script calls: ${containedEvents}`,
    `ticks ${s.ticks}, rows ${s.rows} -> ${out}, ${s.seconds.toFixed(1)} s`,
  ];
}

export function registerDataset(program: Command, deps: DatasetCommandDeps): void {
  const stderr = deps.stderr ?? process.stderr;
  const stdout = deps.stdout ?? process.stdout;
  const dataset = program.command('dataset').description('training datasets built from the event archive');
  dataset
    .command('build')
    .description(
      'replay the archived events into a scratch redis-server of its own and write one row per symbol and tick: ' +
        'the feature vector at the tick (events up to tick - latency) and labels per horizon; ' +
        'exit 2 when bad archive data was skipped',
    )
    .requiredOption('--archive <dir|s3://bucket/prefix>', 'the event archive')
    .requiredOption('--symbol <list>', 'symbols, comma separated')
    .requiredOption(
      '--from <time>',
      'first tick: ms since the epoch, ISO 8601 with a zone, now, or a duration before now (90s, 5m, 2h, 1d)',
    )
    .requiredOption('--to <time>', 'last tick (included)')
    .option('--interval <duration>', 'tick interval (as the sidecar)', '2s')
    .option('--horizon <list>', 'label horizons, comma separated', '10s')
    .option('--latency <ms>', 'the features see the events up to tick - latency', '0')
    .requiredOption('--out <file>', 'the dataset file')
    .option('--format <format>', 'parquet or csv', 'parquet')
    .option(
      '--s3-endpoint <url>',
      'an S3-compatible endpoint for an s3:// archive (an emulator); default: AWS',
    )
    .action(async (opts: BuildCliOptions, command: Command) => {
      const config = loadConfig(command.optsWithGlobals<{ config?: string }>().config, process.env);
      if (opts.format !== 'parquet' && opts.format !== 'csv')
        throw new Error(`--format must be parquet or csv, got ${JSON.stringify(opts.format)}`);
      const latencyMs = Number(opts.latency);
      if (!/^\d+$/.test(opts.latency))
        throw new Error(`--latency must be a non-negative integer of ms, got "${opts.latency}"`);
      const nowMs = Date.now();
      const fromMs = parseTimeOption('--from', opts.from, nowMs);
      const toMs = parseTimeOption('--to', opts.to, nowMs);
      if (toMs < fromMs) throw new Error('--to must not be before --from');
      const intervalMs = parseDurationMs(opts.interval, '--interval');
      if (intervalMs <= 0) throw new Error('--interval must be positive');
      const horizonsMs =
        opts.horizon === '' ? [] : opts.horizon.split(',').map((h) => parseDurationMs(h, '--horizon'));
      const symbols = opts.symbol.split(',').filter((s) => s !== '');
      if (symbols.length === 0) throw new Error('--symbol names no symbol');
      const reader = await deps.createArchiveReader(opts.archive, {
        region: config.aws.region,
        s3Endpoint: opts.s3Endpoint,
      });
      const tty = stderr.isTTY === true;
      let lastDraw = 0;
      let completeDrawn = false;
      const summary = await runDatasetBuild({
        reader,
        archive: opts.archive,
        streams: STREAM_KINDS.map((k) => config.aws.kinesis.streams[k]),
        symbols,
        fromMs,
        toMs,
        intervalMs,
        horizonsMs,
        latencyMs,
        out: opts.out,
        format: opts.format,
        commandLine: ['aggregator', ...(deps.argv ?? process.argv).slice(2)].join(' '),
        orderBookLevels: config.processing.orderBookLevels,
        maxFutureSkewMs: config.processing.maxFutureSkewMs,
        onProgress: (p) => {
          const now = Date.now();
          const complete = p.ticksDone >= p.ticksTotal;
          // The complete line once; before it, one line per interval.
          if (complete ? completeDrawn : now - lastDraw < (tty ? 200 : 10_000)) return;
          completeDrawn = complete;
          lastDraw = now;
          stderr.write(tty ? `\r${formatProgress(p)}\u001b[K` : `${formatProgress(p)}\n`);
        },
      });
      if (tty) stderr.write('\n');
      for (const r of summary.rejected) {
        stderr.write(`rejected ${r.stream} ${r.key} @${r.offset}: ${r.source} ${r.code}: ${r.error}\n`);
      }
      for (const line of formatSummary(summary, opts.out)) stdout.write(`${line}\n`);
      if (summary.rejected.length > 0 || summary.contained.length > 0) process.exitCode = 2;
    });
  registerDatasetVerify(dataset, deps);
}

interface VerifyCliOptions {
  dataset?: string;
  archive?: string;
  served?: string;
  interval?: string;
  latency?: string;
  s3Endpoint?: string;
  since?: string;
}

/** A usage error: exit 2. */
class UsageError extends Error {}

function rangeNumber(range: Readonly<Record<string, unknown>> | undefined, key: string): number | undefined {
  const v = range?.[key];
  return typeof v === 'number' ? v : undefined;
}

function registerDatasetVerify(dataset: Command, deps: DatasetCommandDeps): void {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  dataset
    .command('verify')
    .description(
      "compare a dataset with the vectors the service served at its ticks (feat:<S>:history of the config's redis, " +
        'or --served): each served vector against its recomputation from the archive at its own watermarks ' +
        "(with the sidecar's degraded-mode re-serve); " +
        "each dataset row at those ticks against the builder's row rebuilt from the archive (events up to " +
        'tick - latency); and the dataset row against the served vector when their watermarks are equal ' +
        '(not for a re-serve). ' +
        'Every mismatch printed (check, symbol, tick, field, both values); exit 0 none, 1 mismatches, 2 usage',
    )
    .option('--dataset <file>', 'the dataset (Parquet or CSV of `dataset build`)')
    .option('--archive <dir|s3://bucket/prefix>', 'the event archive the dataset was built from')
    .option('--served <file>', 'served vectors as JSON lines {"symbol","id","fields"} instead of Redis')
    .option('--interval <duration>', 'tick interval of a CSV dataset (Parquet: its metadata)', '2s')
    .option('--latency <ms>', 'latency of a CSV dataset (Parquet: its metadata)', '0')
    .option('--s3-endpoint <url>', 'an S3-compatible endpoint for an s3:// archive')
    .option(
      '--since <time>',
      'where the served state began (empty Redis): the archive is replayed from there to recompute the served ' +
        'vectors; default: 24 hours before the first tick of the dataset',
    )
    .exitOverride((err) => {
      // commander's usage errors exit 1; a usage error of this command exits 2. Help stays 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    })
    .action(async (opts: VerifyCliOptions, command: Command) => {
      try {
        await verifyAction(opts, command, deps, stdout, stderr);
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        stderr.write(`aggregator dataset verify: ${err.message}\n`);
        process.exitCode = 2;
      }
    });
}

async function verifyAction(
  opts: VerifyCliOptions,
  command: Command,
  deps: DatasetCommandDeps,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
): Promise<void> {
  if (opts.dataset === undefined) throw new UsageError('--dataset <file> is required');
  if (opts.archive === undefined) throw new UsageError('--archive <dir|s3://bucket/prefix> is required');
  if (!fs.existsSync(opts.dataset)) throw new UsageError(`--dataset ${opts.dataset}: no such file`);
  if (opts.served !== undefined && !fs.existsSync(opts.served))
    throw new UsageError(`--served ${opts.served}: no such file`);
  let config;
  try {
    config = loadConfig(command.optsWithGlobals<{ config?: string }>().config, process.env);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const file = await readDatasetFile(opts.dataset).catch((err: Error) => {
    throw new UsageError(err.message);
  });
  if (file.rows.length === 0) throw new UsageError(`--dataset ${opts.dataset} has no rows`);
  const range = file.inputRange;
  const ticks = file.rows.map((r) => r.tickMs);
  let intervalMs: number;
  let latencyMs: number;
  try {
    intervalMs = rangeNumber(range, 'interval_ms') ?? parseDurationMs(opts.interval ?? '2s', '--interval');
    if (!/^\d+$/.test(opts.latency ?? '0'))
      throw new Error(`--latency must be a non-negative integer of ms, got "${opts.latency}"`);
    latencyMs = rangeNumber(range, 'latency_ms') ?? Number(opts.latency ?? '0');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let sinceMs: number;
  try {
    sinceMs =
      opts.since === undefined ? Math.min(...ticks) - 24 * 3_600_000 : parseTimeOption('--since', opts.since);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const horizons = range?.['horizons_ms'];
  const horizonsMs = Array.isArray(horizons)
    ? horizons.filter((h): h is number => typeof h === 'number')
    : [];
  const symbols = [...new Set(file.rows.map((r) => r.symbol))];
  let served: Map<string, ServedVector[]>;
  if (opts.served !== undefined) {
    try {
      served = parseServedLines(fs.readFileSync(opts.served, 'utf8'), opts.served);
    } catch (err) {
      if (err instanceof ServedLinesError) throw new UsageError(err.message);
      throw err;
    }
  } else {
    const client = createRedisClient(config.redis, { connectionName: 'dataset-verify' });
    try {
      const keys = new Keys({ clusterMode: config.redis.clusterMode });
      served = new Map();
      for (const s of symbols) served.set(s, await readServedVectors(client, keys, s));
    } finally {
      client.disconnect();
    }
  }
  const reader = await deps.createArchiveReader(opts.archive, {
    region: config.aws.region,
    s3Endpoint: opts.s3Endpoint,
  });
  const summary = await runDatasetVerify({
    rows: file.rows,
    served,
    reader,
    range: {
      streams: STREAM_KINDS.map((k) => config.aws.kinesis.streams[k]),
      fromMs: rangeNumber(range, 'from_ms') ?? Math.min(...ticks),
      toMs: rangeNumber(range, 'to_ms') ?? Math.max(...ticks),
      intervalMs,
      horizonsMs,
      latencyMs,
    },
    orderBookLevels: config.processing.orderBookLevels,
    maxFutureSkewMs: config.processing.maxFutureSkewMs,
    sinceMs,
    onMismatch: (m) => stdout.write(`${formatMismatch(m)}\n`),
  });
  const c = summary.mismatchesByCheck;
  stdout.write(
    `verified ${summary.ticks} served vectors at dataset ticks (${summary.outside} served outside them, ` +
      `${summary.sameInputs} with the dataset row's watermarks, ${summary.reserved} re-served): ${summary.mismatches} mismatches ` +
      `(served-vs-archive ${c['served-vs-archive']}, dataset-vs-builder ${c['dataset-vs-builder']}, ` +
      `dataset-vs-served ${c['dataset-vs-served']})\n`,
  );
  if (summary.ticks === 0) stderr.write('no served vector at a tick of the dataset\n');
  if (summary.mismatches > 0) process.exitCode = 1;
}
