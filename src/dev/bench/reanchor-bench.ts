import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import Redis from 'ioredis';
import { parseConfig } from '../../config/config';
import { findFreePort } from '../localstack/ports';
import { startRedisServer } from '../localstack/redis-server';
import { silentLogger } from '../../logging/logger';
import { DEFAULT_CHUNK_LEVELS } from '../../reanchor/build';
import { Reanchorer, describeFailure, type SnapshotSource } from '../../reanchor/reanchorer';
import { SimulatedExchange } from '../rest/sim-server';
import type { SbeMessage, TradesStreamEvent } from '../../sbe/messages';
import { groupBySymbol } from '../../state/batch';
import type { RestDepthSnapshot } from '../../state/book';
import { Keys } from '../../state/keys';
import { createRedisClient } from '../../state/redis';
import { StateWriter } from '../../state/writer';
import { summarize, type Summary } from './stats';

// Benchmark of re-anchoring (printed, never asserted), on its own redis-server:
//  1. the duration of one re-anchor WITHOUT the REST fetches (buildMs + swapMs of the Reanchorer's report), p50/p99,
//     for REST depth limits of 1000 and 5000 levels per side (the simulated book is ~60-160 levels deep: the
//     snapshot is padded with far levels, as a deep GET /api/v3/depth has them), target p99 < 1 s;
//  2. how long live writes are delayed by it (target < 5 ms): a processor-like writer (worker thread, own
//     connection, 50-event StateWriter batches at a fixed rate) records each batch's round trip, first without
//     re-anchors (baseline), then while re-anchors run back to back, in the same run; the batches overlapping a
//     swap call are reported apart; and the swap script's own execution time in Redis (SLOWLOG, every command
//     logged during the re-anchor phase).
// Usage: node dist/src/dev/bench/reanchor-bench.js [--runs N] [--baseline-seconds S] [--rate BATCHES_PER_S]

const S = 'BTCUSDT';
const LEVELS = 10;
const BATCH = 50;
const START_US = 1_760_000_000_000_000n;

interface WriterData {
  readonly port: number;
}
type ToWriter =
  | { readonly kind: 'batch'; readonly phase: string; readonly messages: SbeMessage[] }
  | { readonly kind: 'done' };
interface WriteSample {
  readonly phase: string;
  /** performance.timeOrigin + now(), ms: comparable across threads. */
  readonly startMs: number;
  readonly endMs: number;
}
type FromWriter =
  | { readonly kind: 'ready' }
  | { readonly kind: 'samples'; readonly samples: WriteSample[]; readonly backlogMax: number };

const wallMs = (): number => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------------------------
// The writer thread: one processor's writes, in order, one batch at a time.

async function writerThread(data: WriterData): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('writer: no parent port');
  const keys = new Keys({ clusterMode: false });
  const client = createRedisClient(parseConfig({ redis: { host: '127.0.0.1', port: data.port } }).redis, {
    connectionName: 'bench-writer',
  });
  const writer = new StateWriter(client, keys, {
    orderBookLevels: LEVELS,
    diffBufferMaxLength: 5000,
    deadLetterMaxLen: 1000,
  });
  const queue: ToWriter[] = [];
  const samples: WriteSample[] = [];
  let backlogMax = 0;
  let wake: (() => void) | undefined;
  port.on('message', (m: ToWriter) => {
    queue.push(m);
    backlogMax = Math.max(backlogMax, queue.length);
    wake?.();
  });
  port.postMessage({ kind: 'ready' } satisfies FromWriter);
  for (;;) {
    const m = queue.shift();
    if (m === undefined) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      continue;
    }
    if (m.kind === 'done') break;
    const startMs = wallMs();
    await writer.write(groupBySymbol(m.messages).values(), []);
    samples.push({ phase: m.phase, startMs, endMs: wallMs() });
  }
  port.postMessage({ kind: 'samples', samples, backlogMax } satisfies FromWriter);
  client.disconnect();
}

// ---------------------------------------------------------------------------------------------------------------
// The main thread: the exchange, the paced stream, the re-anchors.

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

export interface ReanchorBenchOptions {
  readonly runs: number;
  readonly baselineSeconds: number;
  /** Live write batches per second (of 50 events). */
  readonly rate: number;
  /** REST depth limits measured (default 1000 and 5000). */
  readonly depthLimits?: readonly number[];
}

export interface ReanchorLimitFigures {
  readonly depthLimit: number;
  readonly swapped: number;
  readonly failedAttempts: number;
  /** build + swap, without REST, ms. */
  readonly reanchorMs: Summary;
  readonly buildMs: Summary;
  readonly swapCallMs: Summary;
  /** The swap script's execution time in Redis (SLOWLOG), ms. */
  readonly swapScriptServerMs: Summary;
  readonly liveWriteBaselineMs: Summary;
  readonly liveWriteDuringMs: Summary;
  readonly liveWriteOverlappingSwapMs: Summary;
}

export interface ReanchorBenchResult {
  readonly options: ReanchorBenchOptions;
  readonly eventsPerSecond: number;
  readonly limits: ReanchorLimitFigures[];
}

const ms = (x: number): string => x.toFixed(2);
const line = (s: Summary, unit = 'ms'): string =>
  `p50 ${ms(s.p50)} ${unit}, p99 ${ms(s.p99)} ${unit}, max ${ms(s.max)} ${unit} (n=${s.count})`;

/** The exchange as a SnapshotSource, the book padded to `limit` levels per side with far levels (1 tick = 0.01). */
function paddedSource(exchange: SimulatedExchange): SnapshotSource {
  const sim = exchange.simulator;
  return {
    getDepth(symbol: string, limit: number): Promise<RestDepthSnapshot> {
      const book = exchange.depth(symbol, limit);
      const tick = 10n ** BigInt(-sim.priceExponent - 2);
      const bids = [...book.bids];
      const asks = [...book.asks];
      while (bids.length < limit) {
        bids.push({ priceMantissa: bids[bids.length - 1]!.priceMantissa - tick, qtyMantissa: 1_000_000n });
      }
      while (asks.length < limit) {
        asks.push({ priceMantissa: asks[asks.length - 1]!.priceMantissa + tick, qtyMantissa: 1_000_000n });
      }
      return Promise.resolve({
        lastUpdateId: book.lastUpdateId,
        bids,
        asks,
        priceExponent: sim.priceExponent,
        qtyExponent: sim.qtyExponent,
        timeUs: sim.currentTimeUs,
      });
    },
    getTrades(symbol: string, limit: number): Promise<TradesStreamEvent[]> {
      return Promise.resolve(
        exchange.recentTrades(symbol, limit).map((t) => ({
          message: 'TradesStreamEvent' as const,
          eventTime: t.timeUs,
          transactTime: t.timeUs,
          priceExponent: sim.priceExponent,
          qtyExponent: sim.qtyExponent,
          trades: [
            {
              id: t.id,
              priceMantissa: t.priceMantissa,
              qtyMantissa: t.qtyMantissa,
              isBuyerMaker: t.isBuyerMaker,
              isBestMatch: t.isBestMatch,
            },
          ],
          symbol,
        })),
      );
    },
  };
}

/** Durations (us) of the swap script's calls in a SLOWLOG GET reply (EVALSHA <sha> 26 ...: the only 26-key script). */
function swapDurations(entries: readonly unknown[]): number[] {
  const found: number[] = [];
  for (const entry of entries) {
    if (!Array.isArray(entry)) continue;
    const [, , duration, args] = entry as [unknown, unknown, unknown, unknown];
    if (!Array.isArray(args) || typeof duration !== 'number') continue;
    const command = String(args[0]).toLowerCase();
    if ((command === 'evalsha' || command === 'eval') && String(args[2]) === '26') found.push(duration);
  }
  return found;
}

/** The longest server time (us) of any other command of the SLOWLOG reply (what else could block a write). */
function otherDurations(entries: readonly unknown[]): { command: string; us: number }[] {
  const found: { command: string; us: number }[] = [];
  for (const entry of entries) {
    if (!Array.isArray(entry)) continue;
    const [, , duration, args] = entry as [unknown, unknown, unknown, unknown];
    if (!Array.isArray(args) || typeof duration !== 'number') continue;
    const command = `${String(args[0]).toLowerCase()}${String(args[0]).toLowerCase().startsWith('eval') ? `/${String(args[2])}keys` : ''}`;
    if (command !== 'evalsha/26keys' && command !== 'eval/26keys' && command !== 'slowlog')
      found.push({ command, us: duration });
  }
  return found;
}

/** Runs the benchmark, printing its lines through `out`, and returns its figures. */
export async function runReanchorBench(
  options: ReanchorBenchOptions,
  out: (line: string) => void = () => undefined,
): Promise<ReanchorBenchResult> {
  const { runs, baselineSeconds, rate } = options;
  const figures: ReanchorLimitFigures[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-reanchor-bench-'));
  const port = await findFreePort();
  const server = await startRedisServer({ port, logFile: path.join(dir, 'redis.log') });
  const admin = new Redis({ port, host: '127.0.0.1' });
  const worker = new Worker(__filename, { workerData: { port } satisfies WriterData });
  const fromWriter: FromWriter[] = [];
  let wakeMain: (() => void) | undefined;
  worker.on('message', (m: FromWriter) => {
    fromWriter.push(m);
    wakeMain?.();
  });
  const nextFromWriter = async (): Promise<FromWriter> => {
    while (fromWriter.length === 0) await new Promise<void>((resolve) => (wakeMain = resolve));
    return fromWriter.shift()!;
  };
  try {
    if ((await nextFromWriter()).kind !== 'ready') throw new Error('writer did not start');
    const keys = new Keys({ clusterMode: false });
    const client = createRedisClient(parseConfig({ redis: { host: '127.0.0.1', port } }).redis, {
      connectionName: 'bench-reanchor',
    });
    out(
      `machine: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
    );
    out(
      `workload: one symbol, live writes of ${BATCH}-event StateWriter batches at ${rate} batches/s (${rate * BATCH} events/s) ` +
        `from a writer thread; per depth limit: ${baselineSeconds} s without re-anchors, then ${runs} re-anchors back to back ` +
        `(REST from a local simulated exchange, padded to the limit; build in ${DEFAULT_CHUNK_LEVELS}-level chunks; one swap script)`,
    );

    const exchange = new SimulatedExchange({ seed: 5, symbols: [S], startTimeUs: START_US });
    let phase = 'warm-up';
    let sent = 0;
    const pace = setInterval(() => {
      const messages: SbeMessage[] = [];
      for (let i = 0; i < BATCH; i++) messages.push(exchange.next().message);
      worker.postMessage({ kind: 'batch', phase, messages } satisfies ToWriter);
      sent++;
    }, 1000 / rate);
    const sleep = (t: number) => new Promise((resolve) => setTimeout(resolve, t));

    // Approximate client-side intervals of the swap calls (wall ms), to find the writes that overlapped one: the
    // swap is the run's last Redis call but the two stats writes; the interval ends when run() resolves and starts
    // swapMs + 2 ms earlier (a margin for those writes).
    const swaps: { startMs: number; endMs: number }[] = [];
    const results: {
      limit: number;
      total: number[];
      build: number[];
      swap: number[];
      rest: number[];
      failed: string[];
      serverSwapUs: number[];
      other: { command: string; us: number }[];
      swapIntervals: { startMs: number; endMs: number }[];
    }[] = [];
    await sleep(1000);
    for (const limit of options.depthLimits ?? [1000, 5000]) {
      const reanchorer = new Reanchorer({
        client,
        keys,
        source: paddedSource(exchange),
        logger: silentLogger(),
        depthLimit: limit,
        tradesLimit: 1000,
        levels: LEVELS,
        maxAttempts: 3,
        backoffBaseMs: 10,
        backoffMaxMs: 100,
      });
      // One re-anchor first, so the book is in sync (and this limit's book depth in place) for the baseline.
      await client.set(keys.reanchorFlag(S), 'bench|warm', 'EX', 300, 'NX');
      const warm = await reanchorer.run(S);
      if (warm.outcome !== 'swapped')
        throw new Error(`warm-up re-anchor: ${warm.failures.map(describeFailure).join('; ')}`);
      phase = `baseline-${limit}`;
      await sleep(baselineSeconds * 1000);
      phase = `reanchor-${limit}`;
      await admin.config('SET', 'slowlog-log-slower-than', '0');
      await admin.config('SET', 'slowlog-max-len', '1000000');
      await admin.slowlog('RESET');
      swaps.length = 0;
      const r = {
        limit,
        total: [] as number[],
        build: [] as number[],
        swap: [] as number[],
        rest: [] as number[],
        failed: [] as string[],
      };
      for (let i = 0; i < runs; i++) {
        if ((await client.set(keys.reanchorFlag(S), `bench|${limit}|${i}`, 'EX', 300, 'NX')) !== 'OK') {
          throw new Error('reanchor flag already held');
        }
        const report = await reanchorer.run(S);
        const endMs = wallMs();
        if (report.outcome !== 'swapped') {
          r.failed.push(report.failures.map(describeFailure).join('; '));
          await client.del(keys.reanchorFlag(S));
          continue;
        }
        if (report.attempts > 1)
          r.failed.push(
            `swapped at attempt ${report.attempts}: ${report.failures.map(describeFailure).join('; ')}`,
          );
        swaps.push({ startMs: endMs - (report.swapMs ?? 0) - 2, endMs });
        r.build.push(report.buildMs ?? 0);
        r.swap.push(report.swapMs ?? 0);
        r.rest.push(report.restMs ?? 0);
        r.total.push((report.buildMs ?? 0) + (report.swapMs ?? 0));
      }
      const log = (await admin.slowlog('GET', -1)) as unknown[];
      await admin.config('SET', 'slowlog-log-slower-than', '10000');
      phase = `after-${limit}`;
      results.push({
        ...r,
        serverSwapUs: swapDurations(log),
        other: otherDurations(log),
        swapIntervals: [...swaps],
      });
      await sleep(500);
    }
    clearInterval(pace);
    worker.postMessage({ kind: 'done' } satisfies ToWriter);
    const reply = await nextFromWriter();
    if (reply.kind !== 'samples') throw new Error('writer: no samples');
    const state = await admin.hgetall(keys.bookState(S));
    client.disconnect();

    const rt = (ph: string, filter: (s: WriteSample) => boolean = () => true): number[] =>
      reply.samples.filter((s) => s.phase === ph && filter(s)).map((s) => s.endMs - s.startMs);
    out(
      `\nstream: ${sent} batches sent, ${reply.samples.length} written (writer backlog max ${reply.backlogMax} batches); book ${state.status}, ${state.reanchors} re-anchors, gaps ${state.gaps ?? 0}, overflow ${state.buffer_overflow ?? 0}`,
    );
    for (const r of results) {
      const total = summarize(r.total);
      out(
        `\ndepth limit ${r.limit} levels per side (${r.total.length} swapped of ${runs}${r.failed.length ? `; ${r.failed.length} failed attempts: ${r.failed.slice(0, 3).join(' | ')}` : ''})`,
      );
      out(
        `   re-anchor without REST (build + swap)  ${line(total)}   target p99 < 1000 ms: ${total.p99 < 1000 ? 'met' : 'MISSED'}`,
      );
      out(`     build (temporary state, chunked)      ${line(summarize(r.build))}`);
      out(`     swap call (round trip)                ${line(summarize(r.swap))}`);
      out(`     (REST, local, not counted)            ${line(summarize(r.rest))}`);
      const server = summarize(r.serverSwapUs.map((us) => us / 1000));
      out(
        `   swap script execution in Redis (SLOWLOG) ${line(server)}   target < 5 ms: ${server.max < 5 ? 'met' : server.p99 < 5 ? 'met at p99' : 'MISSED'}`,
      );
      const others = [...r.other].sort((a, b) => b.us - a.us).slice(0, 3);
      out(
        `     longest other commands in the window:  ${others.map((o) => `${o.command} ${ms(o.us / 1000)} ms`).join(', ')}`,
      );
      const base = summarize(rt(`baseline-${r.limit}`));
      const during = summarize(rt(`reanchor-${r.limit}`));
      const overlapping = summarize(
        rt(`reanchor-${r.limit}`, (s) =>
          r.swapIntervals.some((w) => s.startMs < w.endMs && s.endMs > w.startMs),
        ),
      );
      out(`   live write round trip, ${BATCH}-event batch:`);
      out(`     baseline (no re-anchor)               ${line(base)}`);
      out(
        `     during re-anchors                     ${line(during)}   ratio p50 ${(during.p50 / base.p50).toFixed(2)}x, p99 ${(during.p99 / base.p99).toFixed(2)}x`,
      );
      out(
        `     overlapping a swap call               ${line(overlapping)}   delay vs baseline p50 ${ms(overlapping.p50 - base.p50)} ms, p99 ${ms(overlapping.p99 - base.p99)} ms`,
      );
      figures.push({
        depthLimit: r.limit,
        swapped: r.total.length,
        failedAttempts: r.failed.length,
        reanchorMs: total,
        buildMs: summarize(r.build),
        swapCallMs: summarize(r.swap),
        swapScriptServerMs: server,
        liveWriteBaselineMs: base,
        liveWriteDuringMs: during,
        liveWriteOverlappingSwapMs: overlapping,
      });
    }
  } finally {
    await worker.terminate();
    admin.disconnect();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { options, eventsPerSecond: rate * BATCH, limits: figures };
}

async function main(): Promise<void> {
  await runReanchorBench(
    { runs: arg('runs', 40), baselineSeconds: arg('baseline-seconds', 4), rate: arg('rate', 100) },
    (text) => process.stdout.write(`${text}\n`),
  );
}

if (!isMainThread) {
  writerThread(workerData as WriterData).catch((err: unknown) => {
    process.stderr.write(`bench writer: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
} else if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
