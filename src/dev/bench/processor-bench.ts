import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { parseConfig } from '../../config/config';
import { findFreePort } from '../localstack/ports';
import { startRedisServer } from '../localstack/redis-server';
import {
  MarketSimulator,
  type BookSnapshot,
  type SimulatedEvent,
  type SimulatedStream,
} from '../../replay/simulator';
import { encodeMessage } from '../../sbe/encoder';
import type { PriceLevel, SbeMessage } from '../../sbe/messages';
import { formatDecimal } from '../../sbe/decimal';
import { groupBySymbol } from '../../state/batch';
import { anchorBook, type RestDepthSnapshot } from '../../state/book';
import { Keys } from '../../state/keys';
import { createRedisClient } from '../../state/redis';
import { StateWriter } from '../../state/writer';
import { KclDriver, type DriverRecord } from './kcl-driver';
import { median, summarize, type Summary } from './stats';

// Benchmark of one record processor (decode + Redis), printed, never asserted:
//  1. events/s through the real `aggregator process` child, records arriving over the KCL protocol: each round
//     starts a new child and sends it the events twice, on a freshly anchored Redis each time: the first pass
//     ("cold") pays the child's JIT compilation (V8 compiles the hot code on background threads while it runs),
//     the second ("warm") is the steady state of a processor that has been running, as a leased shard's child is
//     for hours; the warm figure is the one compared with the target, the cold one is printed beside it;
//  2. p50/p99 of one batch's Redis update (StateWriter, 100-event batches), in process;
//  3. the same events written the seed's way (one awaited HSET per field) as the baseline of this run.
// The books are anchored first on snapshots of --book-levels levels per side (default 1000, the shipped
// rest.depth_limit): what a production book holds. The simulator keeps only 60-160 levels near the touch, which
// Redis would store in its compact listpack encoding (up to 128 entries), where every level update scans the
// key; a real book of 1000+ levels is never stored so, so the extra levels (beyond the simulated ones, never
// touched by the run) keep the measure to the encoding production sees.
// Usage: node dist/src/dev/bench/processor-bench.js [--events N] [--batch RECORDS] [--rounds R] [--book-levels L]

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

const cli = path.resolve(__dirname, '..', '..', 'cli', 'main.js');

export interface ProcessorBenchOptions {
  readonly events: number;
  readonly batch: number;
  readonly rounds: number;
  /** Events per stream written the seed's way (default 5000). */
  readonly seedEvents?: number;
  /** Levels per side of the snapshots the books are anchored on (default DEFAULT_BOOK_LEVELS). */
  readonly bookLevels?: number;
}

/** Levels per side of a production book anchored on the shipped rest.depth_limit (config/aggregator.yaml). */
export const DEFAULT_BOOK_LEVELS = 1000;

/**
 * The snapshot with each side extended to `levels` levels beyond its farthest one (bids below, asks above), one
 * smallest step of the side apart, each with the farthest level's quantity: the deeper part of a REST snapshot
 * that a simulated book near the touch lacks. Bids stop above zero. Pure.
 */
export function deepenSnapshot(snapshot: BookSnapshot, levels: number): BookSnapshot {
  const extend = (side: readonly PriceLevel[], direction: 1n | -1n): PriceLevel[] => {
    const out = [...side];
    const farthest = side[side.length - 1];
    if (farthest === undefined) return out;
    let step: bigint | undefined;
    for (let i = 1; i < side.length; i++) {
      const gap = (side[i]!.priceMantissa - side[i - 1]!.priceMantissa) * direction;
      if (gap > 0n && (step === undefined || gap < step)) step = gap;
    }
    step ??= 1n;
    for (
      let price = farthest.priceMantissa + step * direction;
      out.length < levels;
      price += step * direction
    ) {
      if (price <= 0n) break;
      out.push({ priceMantissa: price, qtyMantissa: farthest.qtyMantissa });
    }
    return out;
  };
  return { ...snapshot, bids: extend(snapshot.bids, -1n), asks: extend(snapshot.asks, 1n) };
}

export interface ProcessorStreamFigures {
  readonly stream: SimulatedStream;
  readonly events: number;
  /** Median over the rounds, through the child over the KCL protocol, its second pass (steady state). */
  readonly eventsPerSecond: number;
  /** Median over the rounds of the first pass of a new child (JIT warm-up included). */
  readonly coldEventsPerSecond: number;
  /** processRecords calls of the second pass. */
  readonly processRecordsMs: Summary;
  /** Largest child RSS seen (MB). */
  readonly childRssMb: number;
  /** One 100-event batch's Redis update (StateWriter), client round trip. */
  readonly batchRoundTripMs: Summary;
  /** Redis server time per script call (SLOWLOG), microseconds. */
  readonly scriptServerUs: Summary;
  readonly scriptServerMeanUs: number;
  readonly seedEventsPerSecond: number;
  readonly seedEventsMeasured: number;
}

export interface ProcessorBenchResult {
  readonly options: ProcessorBenchOptions;
  readonly streams: ProcessorStreamFigures[];
}

/** The seed's per-event writes (the original design: process_trade_event, process_bestbidask_event, process_depth_event). */
async function seedWay(redis: Redis, message: SbeMessage): Promise<void> {
  const key = `ob:${message.symbol}`;
  switch (message.message) {
    case 'TradesStreamEvent':
      for (const t of message.trades) {
        await redis.hset(key, 'last_trade_price', formatDecimal(t.priceMantissa, message.priceExponent));
        for (const window of ['1s', '5s']) {
          await redis.hset(`tr:${message.symbol}:${window}`, {
            count: 1,
            volume: formatDecimal(t.qtyMantissa, message.qtyExponent),
          });
          await redis.expire(`tr:${message.symbol}:${window}`, 300);
        }
      }
      break;
    case 'BestBidAskStreamEvent': {
      const p = redis.pipeline();
      p.hset(key, 'best_bid', formatDecimal(message.bidPriceMantissa, message.priceExponent));
      p.hset(key, 'best_ask', formatDecimal(message.askPriceMantissa, message.priceExponent));
      p.hset(
        key,
        'spread',
        formatDecimal(message.askPriceMantissa - message.bidPriceMantissa, message.priceExponent),
      );
      p.hset(key, 'ts_us', message.eventTime.toString());
      await p.exec();
      break;
    }
    case 'DepthSnapshotStreamEvent':
    case 'DepthDiffStreamEvent':
      for (const [side, levels] of [
        ['bid', message.bids],
        ['ask', message.asks],
      ] as const) {
        for (let i = 0; i < Math.min(10, levels.length); i++) {
          await redis.hset(
            key,
            `${side}${i + 1}_p`,
            formatDecimal(levels[i]!.priceMantissa, message.priceExponent),
          );
          await redis.hset(
            key,
            `${side}${i + 1}_q`,
            formatDecimal(levels[i]!.qtyMantissa, message.qtyExponent),
          );
        }
      }
      break;
  }
}

/** Runs the benchmark, printing its lines through `out`, and returns its figures. */
export async function runProcessorBench(
  options: ProcessorBenchOptions,
  out: (line: string) => void = () => undefined,
): Promise<ProcessorBenchResult> {
  const { events: totalEvents, batch: recordsPerBatch, rounds } = options;
  const figures = new Map<
    SimulatedStream,
    Partial<Omit<ProcessorStreamFigures, 'stream'>> & { stream: SimulatedStream }
  >();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-bench-'));
  const port = await findFreePort();
  const server = await startRedisServer({ port, logFile: path.join(dir, 'redis.log') });
  const configFile = path.join(dir, 'config.yaml');
  fs.writeFileSync(
    configFile,
    `redis:\n  host: "127.0.0.1"\n  port: ${port}\nprocessing:\n  symbols: ["BTCUSDT", "ETHUSDT"]\nlogging:\n  level: "warn"\n  file: "${path.join(dir, 'processor.log')}"\n`,
  );
  const redis = new Redis({ port, host: '127.0.0.1' });
  try {
    const symbols = ['BTCUSDT', 'ETHUSDT'];
    const startTimeUs = 1_760_000_000_000_000n;
    const simulator = new MarketSimulator({ seed: 3, symbols, startTimeUs });
    // The REST snapshots the books are anchored on before the run, so depth diffs take the in-sync path; as deep
    // as a production book (see the header).
    const bookLevels = options.bookLevels ?? DEFAULT_BOOK_LEVELS;
    const snapshots: RestDepthSnapshot[] = symbols.map((symbol) => ({
      ...deepenSnapshot(simulator.depthSnapshot(symbol, 5000), bookLevels),
      priceExponent: -8,
      qtyExponent: -8,
      timeUs: startTimeUs,
    }));
    const events: SimulatedEvent[] = [];
    for (let i = 0; i < totalEvents; i++) events.push(simulator.next());
    const keys = new Keys({ clusterMode: false });
    const anchorClient = createRedisClient(parseConfig({ redis: { host: '127.0.0.1', port } }).redis, {
      connectionName: 'bench-anchor',
    });
    const anchorAll = async () => {
      for (const [i, symbol] of symbols.entries()) {
        const result = await anchorBook(anchorClient, keys, symbol, snapshots[i]!, { levels: 10 });
        if (result.outcome !== 'anchored') throw new Error(`anchoring ${symbol} failed: ${result.outcome}`);
      }
    };
    const byStream = new Map<SimulatedStream, SimulatedEvent[]>();
    for (const e of events) byStream.set(e.stream, [...(byStream.get(e.stream) ?? []), e]);
    for (const [stream, streamEvents] of byStream)
      figures.set(stream, { stream, events: streamEvents.length });
    out(
      `machine: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
    );
    out(
      `workload: ${totalEvents} simulated events (${[...byStream].map(([s, e]) => `${s} ${e.length}`).join(', ')}), ${recordsPerBatch} records per processRecords, ${rounds} rounds (medians quoted); books anchored on ${bookLevels} levels per side`,
    );

    // 1. Through the real child over the KCL protocol.
    out(
      '\n1. events/s through one `aggregator process` child (KCL protocol, decode + Redis + checkpoint); each round a new child, ' +
        'the events twice: cold (its first pass, JIT warm-up included), then warm (steady state)',
    );
    for (const [stream, streamEvents] of byStream) {
      const rates: number[] = [];
      const batchMs: number[] = [];
      let rss = 0;
      const coldRates: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const driver = new KclDriver(cli, configFile, stream);
        await driver.initialize('shardId-000000000000');
        const records: DriverRecord[] = streamEvents.map((e, i) => ({
          data: encodeMessage(e.message).toString('base64'),
          partitionKey: e.message.symbol,
          sequenceNumber: String(1_000_000 + i),
          subSequenceNumber: 0,
          approximateArrivalTimestamp: Date.now(),
        }));
        for (const pass of ['cold', 'warm'] as const) {
          await redis.flushall();
          await anchorAll();
          const started = process.hrtime.bigint();
          for (let i = 0; i < records.length; i += recordsPerBatch) {
            const t0 = process.hrtime.bigint();
            await driver.processRecords(records.slice(i, i + recordsPerBatch));
            if (pass === 'warm') batchMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
          }
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          (pass === 'warm' ? rates : coldRates).push(records.length / seconds);
        }
        rss = Math.max(rss, readRssMb(driver.pid));
        await driver.close();
      }
      const b = summarize(batchMs);
      Object.assign(figures.get(stream)!, {
        eventsPerSecond: median(rates),
        coldEventsPerSecond: median(coldRates),
        processRecordsMs: b,
        childRssMb: rss,
      });
      out(
        `   ${stream.padEnd(11)} ${Math.round(median(rates)).toString().padStart(8)} events/s warm, ` +
          `${Math.round(median(coldRates)).toString().padStart(8)} cold  ` +
          `(warm, per processRecords of ${recordsPerBatch}: p50 ${b.p50.toFixed(2)} ms, p99 ${b.p99.toFixed(2)} ms; child RSS ${rss.toFixed(0)} MB)`,
      );
    }

    // 2. One batch's Redis update, in process.
    out(
      '\n2. Redis update of one 100-event batch, two symbols (StateWriter: one script call per symbol, pipelined; after a warm-up pass)',
    );
    const config = parseConfig({ redis: { host: '127.0.0.1', port } });
    const client = createRedisClient(config.redis, { connectionName: 'bench' });
    const writer = new StateWriter(client, keys, {
      orderBookLevels: 10,
      diffBufferMaxLength: 1000,
      deadLetterMaxLen: 1000,
    });
    // Every command into the slow log, to read the server time of each script call (p50/p99); it is reset after
    // the books are anchored and read after the pass, so only the measured calls are counted (the anchors are not).
    await redis.config('SET', 'slowlog-log-slower-than', '0');
    await redis.config('SET', 'slowlog-max-len', '1000000');
    for (const [stream, streamEvents] of byStream) {
      const samples: number[] = [];
      const durations: number[] = [];
      // Pass 0 warms up (script loading, JIT) and is not measured; then `rounds` measured passes.
      for (let pass = 0; pass <= rounds; pass++) {
        await redis.flushall();
        await anchorAll();
        await redis.slowlog('RESET');
        for (let i = 0; i + 100 <= streamEvents.length; i += 100) {
          const batches = [...groupBySymbol(streamEvents.slice(i, i + 100).map((e) => e.message)).values()];
          const t0 = process.hrtime.bigint();
          await writer.write(batches, []);
          if (pass > 0) samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        if (pass > 0) durations.push(...scriptDurations((await redis.slowlog('GET', -1)) as unknown[]));
      }
      const s = summarize(samples);
      const calls = summarize(durations);
      Object.assign(figures.get(stream)!, {
        batchRoundTripMs: s,
        scriptServerUs: calls,
        scriptServerMeanUs: calls.mean,
      });
      out(
        `   ${stream.padEnd(11)} round trip p50 ${s.p50.toFixed(3)} ms  p99 ${s.p99.toFixed(3)} ms  (${s.count} batches); ` +
          `Redis server time per script call p50 ${calls.p50} us, p99 ${calls.p99} us (${calls.count} calls, SLOWLOG; mean ${calls.mean.toFixed(0)} us)`,
      );
    }
    await redis.config('SET', 'slowlog-log-slower-than', '10000');
    client.disconnect();
    anchorClient.disconnect();

    // 3. The seed's way, same events, same Redis, same run.
    out("\n3. baseline: the seed's way (one awaited HSET per field), same events");
    for (const [stream, streamEvents] of byStream) {
      await redis.flushall();
      const sample = streamEvents.slice(0, Math.min(streamEvents.length, options.seedEvents ?? 5000));
      const started = process.hrtime.bigint();
      for (const e of sample) await seedWay(redis, e.message);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      Object.assign(figures.get(stream)!, {
        seedEventsPerSecond: sample.length / seconds,
        seedEventsMeasured: sample.length,
      });
      out(
        `   ${stream.padEnd(11)} ${Math.round(sample.length / seconds)
          .toString()
          .padStart(8)} events/s  (${sample.length} events)`,
      );
    }
  } finally {
    redis.disconnect();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { options, streams: [...figures.values()] as ProcessorStreamFigures[] };
}

async function main(): Promise<void> {
  await runProcessorBench(
    {
      events: arg('events', 60000),
      batch: arg('batch', 500),
      rounds: arg('rounds', 3),
      bookLevels: arg('book-levels', DEFAULT_BOOK_LEVELS),
    },
    (line) => process.stdout.write(`${line}\n`),
  );
}

/** Durations (us) of the EVALSHA/EVAL entries of a SLOWLOG GET reply: [id, time, duration, [command, ...], ...]. */
function scriptDurations(entries: readonly unknown[]): number[] {
  const out: number[] = [];
  for (const entry of entries) {
    if (!Array.isArray(entry)) continue;
    const [, , duration, args] = entry as [unknown, unknown, unknown, unknown];
    const command = Array.isArray(args) ? String(args[0]).toLowerCase() : '';
    if ((command === 'evalsha' || command === 'eval') && typeof duration === 'number') out.push(duration);
  }
  return out;
}

function readRssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return kb / 1024;
  } catch {
    return 0;
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
