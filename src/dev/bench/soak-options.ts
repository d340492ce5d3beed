import { RECORD_MODES, type RecordMode } from '../../replay/producer';
import { AggregatorError } from '../../common/errors';

// Options of the load and soak run (`npm run soak`, src/dev/bench/soak.ts): flags win over environment variables,
// which win over the defaults. Pure, so the parsing is unit-tested (the simulator calibration is in
// src/replay/wall-clock.ts).

export interface MemoryBound {
  /** A process fails when its end RSS exceeds start RSS x factor + slackMiB. */
  readonly factor: number;
  readonly slackMiB: number;
}

export interface SoakOptions {
  /** Events per second published (all three streams together). */
  readonly rate: number;
  /** Seconds of publishing, warm-up included. */
  readonly durationSeconds: number;
  /** The first seconds of publishing: their events count for "applied" and exactness, not for latency; RSS
   * "start" is sampled when it ends. */
  readonly warmupSeconds: number;
  readonly seed: number;
  readonly symbol: string;
  readonly recordMode: RecordMode;
  /** aws.kinesis.consumer_config.poll_interval_ms of the daemons (idleTimeBetweenReadsInMillis). */
  readonly kinesisPollMs: number;
  readonly maxRecordsPerPoll: number;
  /** Interval of the Redis visibility poller. */
  readonly redisPollMs: number;
  /** How long to wait after the last PutRecords for every event to be visible. */
  readonly settleSeconds: number;
  readonly memory: MemoryBound;
  /** Where the JSON report goes. */
  readonly reportFile: string;
  /** Keep the run directory (config, logs) even when every check passed. */
  readonly keepLogs: boolean;
  /** Seconds between progress lines and RSS samples. */
  readonly sampleSeconds: number;
}

export class SoakUsageError extends AggregatorError {
  constructor(message: string) {
    super(message, { code: 'USAGE' });
    this.name = 'SoakUsageError';
  }
}

/**
 * Default rate: Binance-like BTCUSDT on the SBE streams (see docs/development.md, "Load and soak"): depth diffs every 20 ms
 * (50/s) and depth20 every 50 ms (20/s) as the SBE streams publish them, ~80 trade events/s (~100 trades/s, a
 * busy hour) and ~150 bestBidAsk/s (real-time best bid/ask).
 */
export const DEFAULT_RATE = 300;
export const DEFAULT_DURATION_SECONDS = 600;
export const SHORT_DURATION_SECONDS = 45;
/** The simulator's cadences: Binance SBE `<symbol>@depth` (20 ms) and `<symbol>@depth20` (50 ms). */
export const DIFF_INTERVAL_MS = 20;
export const SNAPSHOT_INTERVAL_MS = 50;
export const DEFAULT_MEMORY_BOUND: MemoryBound = { factor: 1.5, slackMiB: 64 };

/** Default warm-up: 20 % of the run, at most 30 s. */
export function defaultWarmupSeconds(durationSeconds: number): number {
  return Math.min(30, Math.round(durationSeconds * 0.2 * 10) / 10);
}

const FLAGS: Readonly<Record<string, { env: string; key: string; boolean?: boolean }>> = {
  '--rate': { env: 'SOAK_RATE', key: 'rate' },
  '--duration': { env: 'SOAK_DURATION', key: 'duration' },
  '--warmup': { env: 'SOAK_WARMUP', key: 'warmup' },
  '--seed': { env: 'SOAK_SEED', key: 'seed' },
  '--symbol': { env: 'SOAK_SYMBOL', key: 'symbol' },
  '--record-mode': { env: 'SOAK_RECORD_MODE', key: 'recordMode' },
  '--kinesis-poll-ms': { env: 'SOAK_KINESIS_POLL_MS', key: 'kinesisPollMs' },
  '--max-records-per-poll': { env: 'SOAK_MAX_RECORDS_PER_POLL', key: 'maxRecordsPerPoll' },
  '--redis-poll-ms': { env: 'SOAK_REDIS_POLL_MS', key: 'redisPollMs' },
  '--settle': { env: 'SOAK_SETTLE', key: 'settle' },
  '--rss-factor': { env: 'SOAK_RSS_FACTOR', key: 'rssFactor' },
  '--rss-slack-mib': { env: 'SOAK_RSS_SLACK_MIB', key: 'rssSlackMiB' },
  '--report': { env: 'SOAK_REPORT', key: 'report' },
  '--sample': { env: 'SOAK_SAMPLE', key: 'sample' },
  '--keep-logs': { env: 'SOAK_KEEP_LOGS', key: 'keepLogs', boolean: true },
};

export const SOAK_USAGE = `usage: node dist/src/dev/bench/soak.js [options]   (each also as an environment variable)
  --rate N               events/s published, all streams (SOAK_RATE, default ${DEFAULT_RATE})
  --duration S           seconds of publishing (SOAK_DURATION, default ${DEFAULT_DURATION_SECONDS})
  --warmup S             seconds excluded from latency, RSS start sampled after (SOAK_WARMUP, default min(30, 20 %))
  --seed N               simulator seed (SOAK_SEED, default 1)
  --symbol SYM           (SOAK_SYMBOL, default BTCUSDT)
  --record-mode M        kpl | concat | single (SOAK_RECORD_MODE, default kpl)
  --kinesis-poll-ms N    daemons' poll interval (SOAK_KINESIS_POLL_MS, default 200)
  --max-records-per-poll N  (SOAK_MAX_RECORDS_PER_POLL, default 1000)
  --redis-poll-ms N      visibility poller interval (SOAK_REDIS_POLL_MS, default 1)
  --settle S             wait for the last events to be visible (SOAK_SETTLE, default 120)
  --rss-factor F         memory bound: end <= start x F + slack (SOAK_RSS_FACTOR, default 1.5)
  --rss-slack-mib N      (SOAK_RSS_SLACK_MIB, default 64)
  --sample S             progress / RSS sample interval (SOAK_SAMPLE, default 10)
  --report FILE          JSON report (SOAK_REPORT, default .local/soak-report.json)
  --keep-logs            keep the run directory when every check passed (SOAK_KEEP_LOGS=1)`;

function positiveNumber(name: string, text: string, min = 0): number {
  if (!/^\d+(\.\d+)?$/.test(text) || !(Number(text) > min)) {
    throw new SoakUsageError(`${name} expects a number > ${min}, got "${text}"`);
  }
  return Number(text);
}

function integerIn(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new SoakUsageError(`${name} expects an integer in ${min}..${max}, got "${text}"`);
  }
  return n;
}

/** Parses flags (`--rate 500` or `--rate=500`) over environment variables over defaults. */
export function parseSoakOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  defaultReportFile: string,
): SoakOptions {
  const raw: Record<string, string> = {};
  for (const spec of Object.values(FLAGS)) {
    const value = env[spec.env];
    if (value !== undefined && value !== '') raw[spec.key] = value;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS[flag];
    if (spec === undefined) throw new SoakUsageError(`unknown option ${arg}\n${SOAK_USAGE}`);
    if (spec.boolean === true) {
      raw[spec.key] = eq > 0 ? arg.slice(eq + 1) : '1';
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new SoakUsageError(`${flag} needs a value`);
    raw[spec.key] = value;
  }
  const rate = raw.rate === undefined ? DEFAULT_RATE : positiveNumber('--rate', raw.rate);
  const durationSeconds =
    raw.duration === undefined ? DEFAULT_DURATION_SECONDS : positiveNumber('--duration', raw.duration);
  const warmupSeconds = raw.warmup === undefined ? defaultWarmupSeconds(durationSeconds) : Number(raw.warmup);
  if (!/^\d+(\.\d+)?$/.test(raw.warmup ?? '0') || !(warmupSeconds < durationSeconds)) {
    throw new SoakUsageError(
      `--warmup expects a number >= 0 below the duration (${durationSeconds}), got "${raw.warmup}"`,
    );
  }
  const recordMode = raw.recordMode ?? 'kpl';
  if (!(RECORD_MODES as readonly string[]).includes(recordMode)) {
    throw new SoakUsageError(`--record-mode expects ${RECORD_MODES.join(', ')}, got "${recordMode}"`);
  }
  const symbol = raw.symbol ?? 'BTCUSDT';
  if (!/^[A-Z0-9]{2,20}$/.test(symbol)) {
    throw new SoakUsageError(`--symbol: "${symbol}" is not an upper-case symbol like BTCUSDT`);
  }
  const keep = raw.keepLogs;
  return {
    rate,
    durationSeconds,
    warmupSeconds,
    seed: raw.seed === undefined ? 1 : integerIn('--seed', raw.seed, 0, 2 ** 31 - 1),
    symbol,
    recordMode: recordMode as RecordMode,
    kinesisPollMs:
      raw.kinesisPollMs === undefined ? 200 : integerIn('--kinesis-poll-ms', raw.kinesisPollMs, 1, 60000),
    maxRecordsPerPoll:
      raw.maxRecordsPerPoll === undefined
        ? 1000
        : integerIn('--max-records-per-poll', raw.maxRecordsPerPoll, 1, 10000),
    redisPollMs: raw.redisPollMs === undefined ? 1 : integerIn('--redis-poll-ms', raw.redisPollMs, 1, 1000),
    settleSeconds: raw.settle === undefined ? 120 : positiveNumber('--settle', raw.settle),
    memory: {
      factor:
        raw.rssFactor === undefined
          ? DEFAULT_MEMORY_BOUND.factor
          : positiveNumber('--rss-factor', raw.rssFactor, 1 - 1e-9),
      slackMiB:
        raw.rssSlackMiB === undefined
          ? DEFAULT_MEMORY_BOUND.slackMiB
          : integerIn('--rss-slack-mib', raw.rssSlackMiB, 0, 1_000_000),
    },
    reportFile: raw.report ?? defaultReportFile,
    keepLogs: keep !== undefined && keep !== '0' && keep !== 'false',
    sampleSeconds: raw.sample === undefined ? 10 : positiveNumber('--sample', raw.sample),
  };
}
