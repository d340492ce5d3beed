import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../localstack/ports';
import { startRedisServer } from '../localstack/redis-server';
import { runFeaturesBench, type FeaturesBenchResult } from './features-bench';
import { runProcessorBench, type ProcessorBenchResult } from './processor-bench';
import { runReanchorBench, type ReanchorBenchResult } from './reanchor-bench';
import type { Summary } from './stats';

// `npm run bench`: the performance table measured in one run on this machine, never asserted: printed, written
// as the dated report docs/performance.md (performanceMarkdown) and as JSON to .local/bench-report.json. It runs
// the three benchmarks in sequence (their detailed lines go to stderr) and the raw Redis limit (`redis-benchmark`,
// pipelined) on its own redis-server, so every figure can be read as a ratio on the machine that produced it.
// Usage: node dist/src/dev/bench/report.js [--quick] [--markdown FILE]   (--quick writes no markdown unless --markdown)

/** The targets of the original specification (issue 7; docs/performance.md prints them beside each figure). */
export const TARGETS = {
  redisWriteP99Ms: 1,
  eventsPerSecond: 50_000,
  /** Atomic snapshot read + computeFeatures, p99 < 2 ms (docs/architecture.md, the sidecar). */
  featureP99Ms: 2,
  reanchorP99Ms: 1000,
  swapDelayMs: 5,
  /** Assumed bound: one processor child's RSS under 256 MB. */
  processorRssMb: 256,
} as const;

export interface TableRow {
  readonly area: string;
  readonly metric: string;
  readonly target: string;
  readonly p50: string;
  readonly p99: string;
  /** measured / target (target / measured for throughput): <= 1 means met. */
  readonly ratio: number;
  readonly met: boolean;
}

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly node: string;
  readonly loadAverageStart: readonly number[];
  readonly loadAverageEnd?: readonly number[];
}

export interface RawRedisLimit {
  readonly measured: boolean;
  readonly reason?: string;
  readonly command?: string;
  /** requests/s per test name (SET, HSET). */
  readonly rps: Record<string, number>;
}

/** Parses `redis-benchmark --csv` output: a header line, then `"NAME","rps",...` (Redis 6 prints no header). */
export function parseRedisBenchmarkCsv(text: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (const raw of text.split(/\r?\n/)) {
    const cells = raw.split(',').map((c) => c.trim().replace(/^"|"$/g, ''));
    const [name, rps] = cells;
    if (name === undefined || rps === undefined || name === 'test') continue;
    const value = Number(rps);
    if (name !== '' && Number.isFinite(value) && value > 0) found[name.split(' ')[0]!.toUpperCase()] = value;
  }
  return found;
}

const ms = (x: number): string => `${x.toFixed(2)} ms`;
const rate = (x: number): string => `${Math.round(x).toLocaleString('en-US')}/s`;

function latencyRow(area: string, metric: string, s: Summary, targetMs: number): TableRow {
  return {
    area,
    metric,
    target: `p99 < ${targetMs} ms`,
    p50: ms(s.p50),
    p99: ms(s.p99),
    ratio: s.p99 / targetMs,
    met: s.p99 < targetMs,
  };
}

/** The performance table from the three benchmarks' figures (pure). */
export function buildTable(
  processor: ProcessorBenchResult,
  features: FeaturesBenchResult,
  reanchor: ReanchorBenchResult,
): TableRow[] {
  const rows: TableRow[] = [];
  for (const s of processor.streams) {
    rows.push(
      latencyRow(
        'Redis writes',
        `${s.stream}: 100-event batch round trip`,
        s.batchRoundTripMs,
        TARGETS.redisWriteP99Ms,
      ),
    );
  }
  for (const s of processor.streams) {
    const us = s.scriptServerUs;
    rows.push(
      latencyRow(
        'Redis writes',
        `${s.stream}: server time per script call`,
        { ...us, p50: us.p50 / 1000, p99: us.p99 / 1000, max: us.max / 1000, mean: us.mean / 1000 },
        TARGETS.redisWriteP99Ms,
      ),
    );
  }
  rows.push(
    latencyRow(
      'Features',
      'snapshot read + computeFeatures',
      features.readAndComputeMs,
      TARGETS.featureP99Ms,
    ),
  );
  rows.push(latencyRow('Features', 'computeFeatures alone', features.computeOnlyMs, TARGETS.featureP99Ms));
  for (const s of processor.streams) {
    rows.push({
      area: 'Kinesis records',
      metric: `${s.stream}: events/s, one processor (KCL), warm; a new child's first pass: ${rate(s.coldEventsPerSecond)}`,
      target: `>= ${rate(TARGETS.eventsPerSecond)}`,
      p50: rate(s.eventsPerSecond),
      p99: '-',
      ratio: TARGETS.eventsPerSecond / s.eventsPerSecond,
      met: s.eventsPerSecond >= TARGETS.eventsPerSecond,
    });
  }
  for (const l of reanchor.limits) {
    rows.push(
      latencyRow('Re-anchor', `${l.depthLimit} levels: build + swap`, l.reanchorMs, TARGETS.reanchorP99Ms),
    );
  }
  for (const l of reanchor.limits) {
    rows.push(
      latencyRow(
        'Re-anchor',
        `${l.depthLimit} levels: swap script in Redis (live-write delay)`,
        l.swapScriptServerMs,
        TARGETS.swapDelayMs,
      ),
    );
  }
  const rss = Math.max(...processor.streams.map((s) => s.childRssMb));
  rows.push({
    area: 'Memory',
    metric: 'processor child RSS (max over streams)',
    target: `< ${TARGETS.processorRssMb} MB`,
    p50: '-',
    p99: `${rss.toFixed(0)} MB max`,
    ratio: rss / TARGETS.processorRssMb,
    met: rss < TARGETS.processorRssMb,
  });
  return rows;
}

/** Renders rows as an aligned text table (pure). */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  leftAligned = 2,
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const render = (cells: readonly string[]) =>
    cells.map((c, i) => (i < leftAligned ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [render(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(render)];
}

/**
 * The dated report docs/performance.md: when, on what machine, with which command, and the report's lines (the
 * figures beside the baseline and the raw Redis limit measured in the same run) as printed. Pure.
 */
export function performanceMarkdown(
  generatedAt: Date,
  reportLines: readonly string[],
  quick: boolean,
): string {
  const day = generatedAt.toISOString().slice(0, 10);
  return [
    '# Performance report',
    '',
    `Generated by \`npm run bench\`${quick ? ' (`--quick`)' : ''} on ${day} (${generatedAt.toISOString()}); do not edit:`,
    'run `npm run bench` again to replace it. One run, on the machine named below; the figures assert nothing. On a',
    'shared machine read the ratios (to the target, to the baseline and to the raw Redis limit of the same run), not',
    'the absolute times. How each figure is measured: [development.md](development.md#benchmarks).',
    '',
    '```text',
    ...reportLines,
    '```',
    '',
  ].join('\n');
}

function machine(): MachineInfo {
  return {
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    loadAverageStart: os.loadavg(),
  };
}

function run(command: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command}: ${err.message}${stderr ? `\n${stderr}` : ''}`));
      else resolve(stdout);
    });
  });
}

/** The raw Redis limit: redis-benchmark pipelined against a redis-server of its own. */
async function rawRedisLimit(requests: number): Promise<RawRedisLimit> {
  try {
    await run('redis-benchmark', ['--version'], 10_000);
  } catch {
    return { measured: false, reason: 'redis-benchmark not installed', rps: {} };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agg-raw-bench-'));
  const port = await findFreePort();
  const server = await startRedisServer({ port, logFile: path.join(dir, 'redis.log') });
  const args = ['-p', String(port), '-t', 'set,hset', '-P', '16', '-n', String(requests), '-q', '--csv'];
  try {
    const rps = parseRedisBenchmarkCsv(await run('redis-benchmark', args, 120_000));
    return { measured: Object.keys(rps).length > 0, command: `redis-benchmark ${args.join(' ')}`, rps };
  } catch (err) {
    return { measured: false, reason: err instanceof Error ? err.message : String(err), rps: {} };
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const markdownAt = process.argv.indexOf('--markdown');
  const markdownFile =
    markdownAt >= 0
      ? process.argv[markdownAt + 1]
      : quick
        ? undefined
        : path.resolve('docs', 'performance.md');
  const lines: string[] = [];
  const out = (line: string) => {
    lines.push(...line.split('\n'));
    process.stdout.write(`${line}\n`);
  };
  const detail = (name: string) => (line: string) => process.stderr.write(`[${name}] ${line}\n`);
  const info = machine();
  const started = Date.now();
  const options = {
    processor: quick
      ? { events: 10000, batch: 500, rounds: 1, seedEvents: 500 }
      : { events: 60000, batch: 500, rounds: 3, seedEvents: 5000 },
    features: quick ? { reads: 2000, computations: 500 } : { reads: 20000, computations: 5000 },
    reanchor: quick
      ? { runs: 5, baselineSeconds: 1, rate: 100 }
      : { runs: 40, baselineSeconds: 4, rate: 100 },
    rawRequests: quick ? 20000 : 200000,
  };
  process.stderr.write('bench: processor (1/4)\n');
  const processor = await runProcessorBench(options.processor, detail('processor'));
  process.stderr.write('bench: features (2/4)\n');
  const features = await runFeaturesBench(options.features, detail('features'));
  process.stderr.write('bench: re-anchor (3/4)\n');
  const reanchor = await runReanchorBench(options.reanchor, detail('reanchor'));
  process.stderr.write('bench: raw Redis limit (4/4)\n');
  const raw = await rawRedisLimit(options.rawRequests);
  const end = { ...info, loadAverageEnd: os.loadavg() };
  const seconds = (Date.now() - started) / 1000;
  const table = buildTable(processor, features, reanchor);

  const load = (l: readonly number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const generatedAt = new Date();
  out(`bench report ${generatedAt.toISOString()} (${seconds.toFixed(0)} s${quick ? ', --quick' : ''})`);
  out(
    `command: npm run bench${quick ? ' -- --quick' : ''} (node ${path.relative(process.cwd(), __filename)})`,
  );
  out(
    `machine: ${end.cores} cores (${end.cpuModel}), ${end.memoryGiB.toFixed(1)} GiB, node ${end.node}; ` +
      `load average (1/5/15 min) at start ${load(end.loadAverageStart)}, at end ${load(end.loadAverageEnd)}`,
  );
  out(
    `workload: processor ${options.processor.events} simulated events x ${options.processor.rounds} rounds (medians), ` +
      `${options.processor.batch} records per processRecords; features ${options.features.computations} computations; ` +
      `re-anchor ${options.reanchor.runs} runs per depth limit under ${reanchor.eventsPerSecond} events/s of live writes`,
  );
  out(
    `assumptions: feature target = p99 < 2 ms for the atomic snapshot read + computeFeatures; ` +
      `memory bound ${TARGETS.processorRssMb} MB RSS per processor child (assumed); the live-write delay by the swap is ` +
      `the swap script's execution time in Redis (every write arriving meanwhile waits behind it)`,
  );
  out('\nperformance table (ratio = measured / target, target / measured for throughput; <= 1.00 is met)');
  for (const l of renderTable(
    ['area', 'metric', 'target', 'p50', 'p99', 'ratio', 'met'],
    table.map((r) => [
      r.area,
      r.metric,
      r.target,
      r.p50,
      r.p99,
      r.ratio.toFixed(2),
      r.met ? 'met' : 'MISSED',
    ]),
  ))
    out(l);

  out(
    '\nthroughput of one processor, the naive baseline (one awaited HSET per field) and the raw Redis limit (same run, same machine)',
  );
  const hset = raw.rps.HSET;
  const throughput = processor.streams.map((s) => [
    s.stream,
    rate(s.eventsPerSecond),
    rate(s.seedEventsPerSecond),
    `${(s.eventsPerSecond / s.seedEventsPerSecond).toFixed(2)}x`,
    hset === undefined ? 'not measured' : `${(s.eventsPerSecond / hset).toFixed(2)}`,
  ]);
  for (const l of renderTable(
    [
      'stream',
      'processor (KCL)',
      'baseline (awaited HSET per field)',
      'processor / baseline',
      'processor / raw HSET',
    ],
    throughput,
    1,
  ))
    out(l);
  if (raw.measured) {
    out(
      `raw Redis limit: ${Object.entries(raw.rps)
        .map(([name, v]) => `${name} ${rate(v)}`)
        .join(', ')} (${raw.command})`,
    );
  } else {
    out(`raw Redis limit: not measured (${raw.reason ?? 'no figures'})`);
  }
  out(
    `other figures: sidecar tick p50 ${ms(features.sidecarTickMs.p50)} / p99 ${ms(features.sidecarTickMs.p99)}; ` +
      `inference HGETALL feat: p99 ${ms(features.inferenceReadIdleMs.p99)} idle, ${ms(features.inferenceReadLoadedMs.p99)} ` +
      `under ${rate(features.writeLoadEventsPerSecond)} of writes; ` +
      reanchor.limits
        .map(
          (l) =>
            `live 50-event write p99 at ${l.depthLimit} levels: ${ms(l.liveWriteBaselineMs.p99)} baseline, ` +
            `${ms(l.liveWriteDuringMs.p99)} during re-anchors, ${ms(l.liveWriteOverlappingSwapMs.p99)} overlapping a swap`,
        )
        .join('; '),
  );

  const file = path.resolve('.local', 'bench-report.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    `${JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        seconds,
        quick,
        machine: end,
        targets: TARGETS,
        options,
        table,
        rawRedisLimit: raw,
        processor,
        features,
        reanchor,
      },
      null,
      2,
    )}\n`,
  );
  if (markdownFile !== undefined) {
    fs.writeFileSync(markdownFile, performanceMarkdown(generatedAt, lines, quick));
    out(`\nwritten: ${file}, ${markdownFile}`);
  } else {
    out(`\nwritten: ${file}`);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
