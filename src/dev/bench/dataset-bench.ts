import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import { runDatasetBuild } from '../../app/dataset';
import { createArchiveReader } from '../../archive/reader';
import { ArchiveWriter } from '../../archive/writer';
import { parseConfig, STREAM_KINDS } from '../../config/config';
import { decodeStream, mergeByEventTime, validationClock } from '../../dataset/events';
import { MarketSimulator } from '../../replay/simulator';
import { chooseActionsPerSecond, measureNaturalRates } from '../../replay/wall-clock';
import { encodeMessage } from '../../sbe/encoder';
import { DEFAULT_RATE, DIFF_INTERVAL_MS, SNAPSHOT_INTERVAL_MS } from './soak-options';
import { summarize } from './stats';

// Benchmark of `aggregator dataset build` (issue 16), printed, never asserted. Writes a simulated archive with
// the archive writer (one symbol, BTCUSDT-like: the soak's Binance-like rate and SBE cadences, arrival time =
// event time, so objects fall in the simulated hours; uncompressed unless --gzip), then in the same run:
//  1. baseline: the archive read + decode + validate + event-time merge of the same frames, without Redis;
//  2. the build itself (runDatasetBuild: scratch redis-server, StateWriter scripts, features at every 2 s tick,
//     labels at 10 s, a Parquet file), with the process RSS and the scratch Redis's used_memory sampled.
// Prints events/s and ticks/s, the build's rate as a ratio of the baseline, the wall time per tick (p50/p99), and
// the time one day of the soak's default rate (DEFAULT_RATE events/s) would take at the measured rate.
// Usage: node dist/src/dev/bench/dataset-bench.js [--events N] [--gzip] [--keep]

const S = 'BTCUSDT';
const INTERVAL_MS = 2000;
const HORIZON_MS = 10_000;
const DAY_S = 86_400;

function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
  return value;
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const rate = (n: number, seconds: number): string => `${Math.round(n / seconds).toLocaleString('en-US')}`;

/** The process RSS, sampled every 250 ms until stopped; the maximum. */
function rssSampler(): { stop: () => number } {
  let max = process.memoryUsage().rss;
  const timer = setInterval(() => (max = Math.max(max, process.memoryUsage().rss)), 250);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(max, process.memoryUsage().rss);
    },
  };
}

async function main(): Promise<void> {
  const events = numberArg('events', 5_000_000);
  const gzip = process.argv.includes('--gzip');
  const keep = process.argv.includes('--keep');
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-dataset-bench-'));
  const archive = path.join(dir, 'archive');
  const streams = parseConfig({}).aws.kinesis.streams;
  out(
    `machine: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
  );

  // ---- the archive
  const cadence = { diffIntervalMs: DIFF_INTERVAL_MS, snapshotIntervalMs: SNAPSHOT_INTERVAL_MS };
  const actionsPerSecond = chooseActionsPerSecond(DEFAULT_RATE, (aps) =>
    measureNaturalRates({ seed: 1, symbols: [S], actionsPerSecond: aps, ...cadence }),
  );
  // A whole hour, a day before now: the events pass the validation clock and the objects start an hour.
  const startMs = Math.floor((Date.now() - DAY_S * 1000) / 3_600_000) * 3_600_000;
  const sim = new MarketSimulator({
    seed: 1,
    symbols: [S],
    actionsPerSecond,
    ...cadence,
    startTimeUs: BigInt(startMs) * 1000n,
  });
  let arrivalMs = startMs;
  const writers = new Map(
    STREAM_KINDS.map((k) => [
      k,
      new ArchiveWriter({ dir: archive, stream: streams[k], gzip, timer: false, nowMs: () => arrivalMs }),
    ]),
  );
  let t = performance.now();
  let lastUs = 0n;
  for (let i = 0; i < events; i++) {
    const ev = sim.next();
    lastUs = ev.message.eventTime;
    arrivalMs = Number(lastUs / 1000n);
    writers.get(ev.stream)!.append(encodeMessage(ev.message));
  }
  let objects = 0;
  let bytes = 0;
  for (const w of writers.values()) {
    w.close();
    objects += w.stats.objects;
    bytes += w.stats.bytes;
  }
  const genSeconds = (performance.now() - t) / 1000;
  const spanS = Number(lastUs / 1000n - BigInt(startMs)) / 1000;
  const perSimSecond = events / spanS;
  out(
    `archive: ${events.toLocaleString('en-US')} events (${actionsPerSecond} book actions/s, ${perSimSecond.toFixed(0)} ` +
      `events per simulated second, ${(spanS / 3600).toFixed(2)} simulated hours), ${objects} objects, ` +
      `${mib(bytes)} of frames, ${gzip ? 'gzip' : 'uncompressed'}, in ${archive}; written in ${genSeconds.toFixed(1)} s`,
  );

  const fromMs = Math.ceil((startMs + 15_000) / INTERVAL_MS) * INTERVAL_MS;
  const toMs = Math.floor((Number(lastUs / 1000n) - HORIZON_MS) / INTERVAL_MS) * INTERVAL_MS;
  const streamNames = STREAM_KINDS.map((k) => streams[k]);

  // ---- baseline: read + decode + validate + merge, no Redis
  let rss = rssSampler();
  t = performance.now();
  const reader = createArchiveReader(archive);
  const clock = validationClock(Date.now());
  let decoded = 0;
  for await (const item of mergeByEventTime(
    streamNames.map((s) => decodeStream(reader.read(s, startMs - 60_000, toMs + HORIZON_MS), clock)),
    { late: 0, maxLatenessUs: 0 },
  )) {
    if (item.kind === 'event') decoded++;
  }
  const baseSeconds = (performance.now() - t) / 1000;
  const baseRss = rss.stop();
  out(
    `\nbaseline (read + decode + validate + merge, no Redis): ${decoded.toLocaleString('en-US')} events in ` +
      `${baseSeconds.toFixed(1)} s, ${rate(decoded, baseSeconds)} events/s, peak RSS ${mib(baseRss)}`,
  );

  // ---- the build
  const tickTimes: number[] = [];
  let lastTicks = 0;
  let lastTickAt = performance.now();
  let redisMax = 0;
  let redisPeak = 0;
  let admin: Redis | undefined;
  const poll = setInterval(() => {
    admin
      ?.info('memory')
      .then((info) => {
        const used = /used_memory:(\d+)/.exec(info);
        const peak = /used_memory_peak:(\d+)/.exec(info);
        if (used) redisMax = Math.max(redisMax, Number(used[1]));
        if (peak) redisPeak = Math.max(redisPeak, Number(peak[1]));
      })
      .catch(() => undefined);
  }, 500);
  rss = rssSampler();
  t = performance.now();
  const file = path.join(dir, 'bench.parquet');
  const summary = await runDatasetBuild({
    reader: createArchiveReader(archive),
    archive,
    streams: streamNames,
    symbols: [S],
    fromMs,
    toMs,
    intervalMs: INTERVAL_MS,
    horizonsMs: [HORIZON_MS],
    latencyMs: 0,
    out: file,
    format: 'parquet',
    commandLine: 'dataset-bench',
    orderBookLevels: 10,
    maxFutureSkewMs: 2000,
    onScratchRedis: (port) => (admin = new Redis({ port, host: '127.0.0.1', lazyConnect: false })),
    onProgress: (p) => {
      if (p.ticksDone > lastTicks) {
        const now = performance.now();
        tickTimes.push((now - lastTickAt) / (p.ticksDone - lastTicks));
        lastTicks = p.ticksDone;
        lastTickAt = now;
      }
    },
  });
  const buildSeconds = (performance.now() - t) / 1000;
  const buildRss = rss.stop();
  clearInterval(poll);
  admin?.disconnect();
  const read = Object.values(summary.eventsByStream).reduce((a, b) => a + b, 0);
  const perTick = summarize(tickTimes);
  const buildRate = read / buildSeconds;
  out(
    `\nbuild (${S}, ticks every ${INTERVAL_MS / 1000} s, horizon ${HORIZON_MS / 1000} s, Parquet): ` +
      `${read.toLocaleString('en-US')} events (${summary.applied.toLocaleString('en-US')} applied), ` +
      `${summary.ticks} ticks, ${summary.rows} rows, ${summary.rejected.length} rejected, in ${buildSeconds.toFixed(1)} s ` +
      `(file ${mib(fs.statSync(file).size)})`,
  );
  out(
    `   ${rate(read, buildSeconds)} events/s, ${rate(summary.ticks, buildSeconds)} ticks/s; ` +
      `wall time per tick p50 ${perTick.p50.toFixed(2)} ms, p99 ${perTick.p99.toFixed(2)} ms`,
  );
  out(
    `   ratio to the baseline: ${(buildRate / (decoded / baseSeconds)).toFixed(3)}x the events/s ` +
      `(${(buildSeconds / baseSeconds).toFixed(1)}x the time)`,
  );
  out(
    `   peak RSS ${mib(buildRss)} (baseline ${mib(baseRss)}); scratch Redis used_memory max ${mib(redisMax)}, ` +
      `used_memory_peak ${mib(redisPeak)}`,
  );
  const dayEvents = DEFAULT_RATE * DAY_S;
  const daySeconds = dayEvents / buildRate;
  out(
    `\none day at the soak's Binance-like ${DEFAULT_RATE} events/s = ${(dayEvents / 1e6).toFixed(1)} M events, ` +
      `${DAY_S / (INTERVAL_MS / 1000)} ticks: ~${(daySeconds / 60).toFixed(1)} min at this run's rate ` +
      `(goal < 10 min: ${daySeconds < 600 ? 'met' : 'MISSED'})`,
  );
  if (keep) out(`kept ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
