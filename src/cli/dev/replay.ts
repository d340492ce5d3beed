import { AggregatorError } from '../../common/errors';
import fs from 'node:fs';
import { ArchiveWriter } from '../../archive/writer';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { loadConfig } from '../../config/config';
import type { AppConfig } from '../../config/config';
import { ConfigError } from '../../config/errors';
import { CsvParseError, readTradesCsv } from '../../dev/replay/csv';
import type { TradesCsvFormat } from '../../dev/replay/csv';
import {
  PublishAbortedError,
  RECORD_MODES,
  createKinesisClient,
  publishEvents,
  putRecordsWith,
} from '../../replay/producer';
import type { PublishSummary, RecordMode } from '../../replay/producer';
import { DEFAULT_ACTIONS_PER_SECOND, MarketSimulator } from '../../replay/simulator';
import type { SimulatedEvent, SimulatorOptions } from '../../replay/simulator';
import { MAX_ACTIONS_PER_SECOND, MIN_ACTIONS_PER_SECOND, startOnWallClock } from '../../replay/wall-clock';
import { SimulatedExchange, startSimExchangeServer } from '../../dev/rest/sim-server';
import type { SimExchangeServer } from '../../dev/rest/sim-server';

// `aggregator replay`: publishes simulated or recorded (CSV) market events to the configured Kinesis streams.
// stdout carries exactly one line, the final summary as JSON; progress and errors go to stderr.
// With --rest-port the simulator runs inside a SimulatedExchange whose Binance-compatible REST endpoints
// (/api/v3/depth, /api/v3/trades) are served for as long as the replay runs, plus --rest-linger seconds after the
// last event was published (the summary is printed before lingering). The exchange is what produces the published
// events, and its REST state covers every event handed out, so a snapshot bridges the published diffs that follow.
// Exit codes: 0 done; 2 bad options or config, or the REST port cannot be served (nothing published); 1 publishing
// stopped on an error. A bad CSV row stops the replay at that row (exit 1) instead of being skipped: a skipped trade
// would leave a trade-id gap that downstream reads as data loss. Rows before it have been published; the count is
// reported on stderr.
// Simulated event time: with --start-time-us the simulator replays exactly that sequence, published as it comes.
// Without it, event time is kept on the wall clock, since processors dead-letter events dated ahead of their clock
// (startOnWallClock in src/replay/wall-clock.ts places the start and scales the activity to --rate), and no event
// is published before its time.

export class ReplayUsageError extends AggregatorError {
  constructor(message: string) {
    super(message, { code: 'REPLAY_USAGE' });
    this.name = 'ReplayUsageError';
  }
}

/** What commander hands us (every value a string; absent when not given). */
export interface RawReplayOptions {
  source?: string;
  file?: string;
  format?: string;
  symbol?: string;
  symbols?: string;
  seed?: string;
  events?: string;
  duration?: string;
  rate?: string;
  recordMode?: string;
  endpoint?: string;
  startTimeUs?: string;
  restPort?: string;
  restHost?: string;
  restLinger?: string;
  archive?: string;
  archiveGzip?: boolean;
}

/** Where the replay archives what Kinesis acknowledged (--archive), in the Firehose layout. */
export interface ArchiveTarget {
  readonly dir: string;
  readonly gzip: boolean;
}

/** Where the simulated exchange's REST API is served (--rest-port). */
export interface RestServing {
  /** 0 = a free port chosen by the kernel. */
  readonly port: number;
  readonly host: string;
  /** How long to keep serving after the last event was published. */
  readonly lingerMs: number;
}

export interface SimulatorSource {
  readonly kind: 'simulator';
  readonly symbols: readonly string[];
  readonly seed: number;
  readonly startTimeUs: bigint;
  /** Book actions per simulated second per symbol; undefined = the simulator's DEFAULT_ACTIONS_PER_SECOND. */
  readonly actionsPerSecond: number | undefined;
  /** Serve the simulated exchange's REST API while replaying; undefined = no REST server. */
  readonly rest: RestServing | undefined;
}

export interface CsvSource {
  readonly kind: 'csv';
  readonly file: string;
  readonly format: TradesCsvFormat | 'auto';
  readonly symbol: string | undefined;
}

export interface ReplayPlan {
  readonly source: SimulatorSource | CsvSource;
  readonly maxEvents: number | undefined;
  readonly durationMs: number | undefined;
  readonly eventsPerSecond: number;
  /** Hold each event until the wall clock reaches its time (the producer's option of that name). */
  readonly notBeforeEventTime: boolean;
  readonly recordMode: RecordMode;
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly streams: AppConfig['aws']['kinesis']['streams'];
  /** Archive the published frames there; undefined = no archive. */
  readonly archive: ArchiveTarget | undefined;
}

const SYMBOL_PATTERN = /^[A-Z0-9]{2,20}$/;
const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function positiveInteger(option: string, text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new ReplayUsageError(`${option} expects a positive integer, got "${text}"`);
  }
  return Number(text);
}

function nonNegativeNumber(option: string, text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text))
    throw new ReplayUsageError(`${option} expects a number >= 0, got "${text}"`);
  return Number(text);
}

function restServing(raw: RawReplayOptions): RestServing | undefined {
  if (raw.restPort === undefined) {
    if (raw.restHost !== undefined) throw new ReplayUsageError('--rest-host needs --rest-port');
    if (raw.restLinger !== undefined) throw new ReplayUsageError('--rest-linger needs --rest-port');
    return undefined;
  }
  if (!/^\d{1,5}$/.test(raw.restPort) || Number(raw.restPort) > 65535) {
    throw new ReplayUsageError(
      `--rest-port expects a port number 0..65535 (0 = a free port), got "${raw.restPort}"`,
    );
  }
  const host = raw.restHost ?? '127.0.0.1';
  if (net.isIP(host) === 0 && !HOSTNAME_PATTERN.test(host)) {
    throw new ReplayUsageError(`--rest-host expects a host name or IP address, got "${host}"`);
  }
  const lingerSeconds = raw.restLinger === undefined ? 0 : nonNegativeNumber('--rest-linger', raw.restLinger);
  return { port: Number(raw.restPort), host, lingerMs: lingerSeconds * 1000 };
}

function symbolList(option: string, text: string): string[] {
  const symbols = text.split(',').map((s) => s.trim());
  for (const s of symbols) {
    if (!SYMBOL_PATTERN.test(s))
      throw new ReplayUsageError(`${option}: "${s}" is not an upper-case symbol like BTCUSDT`);
  }
  if (new Set(symbols).size !== symbols.length)
    throw new ReplayUsageError(`${option}: duplicate symbol in "${text}"`);
  return symbols;
}

function forbid(raw: RawReplayOptions, source: string, names: readonly (keyof RawReplayOptions)[]): void {
  for (const name of names) {
    if (raw[name] !== undefined) {
      const flag = `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      throw new ReplayUsageError(`${flag} does not apply to --source ${source}`);
    }
  }
}

/**
 * Validates the options against the config. Pure but for `nowUs`, read for the default simulated start time (after
 * the deterministic dry runs that place it: see startOnWallClock).
 */
export function planReplay(raw: RawReplayOptions, config: AppConfig, nowUs: () => bigint): ReplayPlan {
  const sourceKind = raw.source ?? 'simulator';
  // The simulator's start time and activity are placed last, once every option is valid.
  let source: Omit<SimulatorSource, 'startTimeUs' | 'actionsPerSecond'> | CsvSource;
  let explicitStartTimeUs: bigint | undefined;
  if (sourceKind === 'simulator') {
    forbid(raw, 'simulator', ['file', 'format', 'symbol']);
    const seed = raw.seed === undefined ? 1 : Number(raw.seed);
    if (raw.seed !== undefined && (!/^\d+$/.test(raw.seed) || !Number.isSafeInteger(seed))) {
      throw new ReplayUsageError(`--seed expects a non-negative integer, got "${raw.seed}"`);
    }
    if (raw.startTimeUs !== undefined) {
      if (!/^\d{1,18}$/.test(raw.startTimeUs))
        throw new ReplayUsageError(
          `--start-time-us expects microseconds since the epoch, got "${raw.startTimeUs}"`,
        );
      explicitStartTimeUs = BigInt(raw.startTimeUs);
    }
    source = {
      kind: 'simulator',
      symbols: raw.symbols === undefined ? config.processing.symbols : symbolList('--symbols', raw.symbols),
      seed,
      rest: restServing(raw),
    };
  } else if (sourceKind === 'csv') {
    forbid(raw, 'csv', ['symbols', 'seed', 'startTimeUs', 'restPort', 'restHost', 'restLinger']);
    if (raw.file === undefined) throw new ReplayUsageError('--source csv needs --file <path>');
    try {
      fs.accessSync(raw.file, fs.constants.R_OK);
    } catch {
      throw new ReplayUsageError(`--file ${raw.file}: cannot read the file`);
    }
    const format = raw.format ?? 'auto';
    if (format !== 'auto' && format !== 'binance' && format !== 'tardis') {
      throw new ReplayUsageError(`--format expects auto, binance or tardis, got "${format}"`);
    }
    if (raw.symbol !== undefined && !SYMBOL_PATTERN.test(raw.symbol)) {
      throw new ReplayUsageError(`--symbol: "${raw.symbol}" is not an upper-case symbol like BTCUSDT`);
    }
    if (format === 'binance' && raw.symbol === undefined) {
      throw new ReplayUsageError(
        '--format binance needs --symbol (the Binance trades format has no symbol column)',
      );
    }
    source = { kind: 'csv', file: raw.file, format, symbol: raw.symbol };
  } else {
    throw new ReplayUsageError(`--source expects simulator or csv, got "${sourceKind}"`);
  }

  const recordMode = raw.recordMode ?? 'kpl';
  if (!(RECORD_MODES as readonly string[]).includes(recordMode)) {
    throw new ReplayUsageError(`--record-mode expects ${RECORD_MODES.join(', ')}, got "${recordMode}"`);
  }
  const durationSeconds =
    raw.duration === undefined ? undefined : nonNegativeNumber('--duration', raw.duration);
  if (durationSeconds === 0) throw new ReplayUsageError('--duration must be > 0');
  let endpoint = raw.endpoint ?? config.aws.kinesis.endpoint;
  if (endpoint !== undefined) {
    try {
      const url = new URL(endpoint);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
    } catch {
      throw new ReplayUsageError(`--endpoint expects an http(s) URL, got "${endpoint}"`);
    }
    endpoint = endpoint.replace(/\/+$/, '');
  }
  const maxEvents = raw.events === undefined ? undefined : positiveInteger('--events', raw.events);
  if (raw.archiveGzip === true && raw.archive === undefined)
    throw new ReplayUsageError('--archive-gzip needs --archive <dir>');
  if (raw.archive !== undefined && raw.archive.startsWith('s3://'))
    throw new ReplayUsageError(
      `--archive writes a local directory, got "${raw.archive}" (in AWS a Firehose delivery stream archives)`,
    );
  if (raw.archive !== undefined && raw.archive.trim() === '')
    throw new ReplayUsageError('--archive expects a directory');
  const eventsPerSecond = raw.rate === undefined ? 0 : nonNegativeNumber('--rate', raw.rate);

  // An explicit start time replays exactly that sequence, published as it comes; the default keeps event time on
  // the wall clock (processors dead-letter events dated ahead of their clock) and never publishes an event early.
  let placed: SimulatorSource | CsvSource;
  let notBeforeEventTime = false;
  if (source.kind === 'csv') placed = source;
  else if (explicitStartTimeUs !== undefined)
    placed = { ...source, startTimeUs: explicitStartTimeUs, actionsPerSecond: undefined };
  else {
    const activity = { seed: source.seed, symbols: source.symbols };
    placed = { ...source, ...startOnWallClock(activity, { eventsPerSecond, maxEvents }, nowUs) };
    notBeforeEventTime = true;
  }
  return {
    source: placed,
    maxEvents,
    durationMs: durationSeconds === undefined ? undefined : durationSeconds * 1000,
    eventsPerSecond,
    notBeforeEventTime,
    recordMode: recordMode as RecordMode,
    endpoint,
    region: config.aws.region,
    streams: config.aws.kinesis.streams,
    archive: raw.archive === undefined ? undefined : { dir: raw.archive, gzip: raw.archiveGzip === true },
  };
}

/** The options of the simulator (and of the REST exchange wrapping it) for a simulator source. */
export function simulatorOptions(src: SimulatorSource): SimulatorOptions {
  return {
    seed: src.seed,
    symbols: src.symbols,
    startTimeUs: src.startTimeUs,
    ...(src.actionsPerSecond === undefined ? {} : { actionsPerSecond: src.actionsPerSecond }),
  };
}

/** What the replay tells on stderr about its simulated event time (how it relates to the wall clock). */
export function simulatorClockNote(plan: ReplayPlan, src: SimulatorSource): string[] {
  const from = new Date(Number(src.startTimeUs / 1000n)).toISOString();
  if (!plan.notBeforeEventTime)
    return [`replay: simulated events from ${from} (--start-time-us), published as they come`];
  if (plan.eventsPerSecond === 0) {
    const until =
      plan.maxEvents === undefined
        ? 'as fast as possible until they reach the clock, then as they fall due'
        : `as fast as possible: the last of the ${plan.maxEvents} events is at about the time of the start`;
    return [`replay: simulated events from ${from}, ${until}`];
  }
  const aps = src.actionsPerSecond ?? DEFAULT_ACTIONS_PER_SECOND;
  const lines = [
    `replay: simulated events from ${from} at ${aps} book actions/s per symbol, about ${plan.eventsPerSecond} ` +
      'events per simulated second: event time follows the clock, no event is published before its time',
  ];
  if (aps === MIN_ACTIONS_PER_SECOND) {
    lines.push(
      `replay: warning: --rate ${plan.eventsPerSecond} is below the quietest simulated market for ` +
        `${src.symbols.length} symbol(s): event time will fall behind the clock`,
    );
  } else if (aps === MAX_ACTIONS_PER_SECOND) {
    lines.push(
      `replay: warning: --rate ${plan.eventsPerSecond} is above the busiest simulated market: events are held ` +
        'until their time, so fewer are published per second',
    );
  }
  return lines;
}

/** Endless events of a MarketSimulator or of the SimulatedExchange wrapping one (the same sequence). */
function* simulatorEvents(sim: { next(): SimulatedEvent }): Generator<SimulatedEvent, void, undefined> {
  for (;;) yield sim.next();
}

async function* csvEvents(src: CsvSource): AsyncGenerator<SimulatedEvent, void, undefined> {
  for await (const message of readTradesCsv(src.file, { format: src.format, symbol: src.symbol })) {
    yield { stream: 'trade', message };
  }
}

/** Runs a plan: publishes, prints the summary line on stdout. Returns the exit code. */
export async function runReplay(plan: ReplayPlan, env: NodeJS.ProcessEnv): Promise<number> {
  const src = plan.source;
  let source: Iterable<SimulatedEvent> | AsyncIterable<SimulatedEvent>;
  let server: SimExchangeServer | undefined;
  if (src.kind === 'simulator') {
    const options = simulatorOptions(src);
    for (const line of simulatorClockNote(plan, src)) process.stderr.write(`${line}\n`);
    if (src.rest === undefined) {
      source = simulatorEvents(new MarketSimulator(options));
    } else {
      // The exchange produces the published events: its REST state covers everything handed out.
      const exchange = new SimulatedExchange(options);
      source = simulatorEvents(exchange);
      try {
        server = await startSimExchangeServer({ port: src.rest.port, host: src.rest.host, exchange });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        process.stderr.write(
          `aggregator replay: cannot serve the REST API on ${src.rest.host}:${src.rest.port}: ` +
            `${code === 'EADDRINUSE' ? 'the port is already in use' : (err as Error).message}\n`,
        );
        return 2;
      }
      process.stderr.write(`replay: serving the simulated exchange REST API at ${server.url}\n`);
    }
  } else {
    source = csvEvents(src);
  }
  // A local emulator ignores credentials but the SDK needs some: fall back to dummies only for an endpoint.
  const credentials =
    plan.endpoint !== undefined && env.AWS_ACCESS_KEY_ID === undefined && env.AWS_PROFILE === undefined
      ? { accessKeyId: 'local', secretAccessKey: 'local' }
      : undefined;
  const client = createKinesisClient({ region: plan.region, endpoint: plan.endpoint, credentials });
  const abort = new AbortController();
  let published = false;
  const onSignal = (): void => {
    if (abort.signal.aborted) return;
    process.stderr.write(
      published ? 'replay: stopping\n' : 'replay: stopping (flushing what was accepted)\n',
    );
    abort.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // One writer per Kinesis stream, fed the frames of each record PutRecords acknowledged.
  const writers = new Map<string, ArchiveWriter>();
  if (plan.archive !== undefined) {
    for (const stream of new Set(Object.values(plan.streams)))
      writers.set(stream, new ArchiveWriter({ dir: plan.archive.dir, stream, gzip: plan.archive.gzip }));
    process.stderr.write(`replay: archiving what Kinesis acknowledged under ${plan.archive.dir}\n`);
  }
  const closeArchive = (): void => {
    if (plan.archive === undefined || writers.size === 0) return;
    let objects = 0;
    let frames = 0;
    for (const w of writers.values()) {
      w.close();
      objects += w.stats.objects;
      frames += w.stats.frames;
    }
    writers.clear();
    process.stderr.write(`replay: archive ${plan.archive.dir}: ${objects} objects, ${frames} frames\n`);
  };
  try {
    let summary: PublishSummary & {
      startTimeUs?: string;
      actionsPerSecond?: number;
      restUrl?: string;
      archive?: { dir: string; objects: number; frames: number };
    };
    try {
      summary = await publishEvents(source, {
        streams: plan.streams,
        putRecords: putRecordsWith(client),
        recordMode: plan.recordMode,
        eventsPerSecond: plan.eventsPerSecond,
        notBeforeEventTime: plan.notBeforeEventTime,
        maxEvents: plan.maxEvents,
        durationMs: plan.durationMs,
        progress: process.stderr,
        signal: abort.signal,
        ...(writers.size === 0
          ? {}
          : {
              onAcknowledged: (stream: string, frames: readonly Buffer[]): void => {
                const writer = writers.get(stream);
                if (writer !== undefined) for (const frame of frames) writer.append(frame);
              },
            }),
      });
    } finally {
      client.destroy();
    }
    if (plan.archive !== undefined) {
      let objects = 0;
      let frames = 0;
      for (const w of writers.values()) {
        w.flush();
        objects += w.stats.objects;
        frames += w.stats.frames;
      }
      summary = { ...summary, archive: { dir: plan.archive.dir, objects, frames } };
    }
    published = true;
    if (src.kind === 'simulator') {
      // A string: an explicit start time may exceed what a JSON number holds exactly.
      summary = {
        ...summary,
        startTimeUs: String(src.startTimeUs),
        actionsPerSecond: src.actionsPerSecond ?? DEFAULT_ACTIONS_PER_SECOND,
      };
    }
    if (server !== undefined) summary = { ...summary, restUrl: server.url };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    const lingerMs = src.kind === 'simulator' ? (src.rest?.lingerMs ?? 0) : 0;
    if (server !== undefined && lingerMs > 0 && !abort.signal.aborted) {
      process.stderr.write(`replay: serving the REST API for ${lingerMs / 1000} s more\n`);
      await sleep(lingerMs, undefined, { signal: abort.signal }).catch(() => undefined);
    }
    return 0;
  } catch (err) {
    if (err instanceof PublishAbortedError) {
      const what = err.cause instanceof CsvParseError ? 'bad CSV row' : 'publishing failed';
      process.stderr.write(
        `aggregator replay: ${what}: ${err.message}\n` +
          `aggregator replay: stopped after reading ${err.summary.events} events; ` +
          `${err.summary.records} Kinesis records were written\n`,
      );
      return 1;
    }
    throw err;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    closeArchive();
    if (server !== undefined) {
      await server.stop();
      process.stderr.write('replay: REST API closed\n');
    }
  }
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description('publish simulated or recorded (CSV) market events to the Kinesis streams as SBE frames')
    .option('--source <kind>', 'simulator | csv', 'simulator')
    .option('--file <path>', 'trades CSV file (--source csv)')
    .option('--format <format>', 'CSV format: auto | binance | tardis (default: auto)')
    .option('--symbol <SYM>', 'symbol of a Binance-format CSV (it has no symbol column)')
    .option('--symbols <list>', 'simulator symbols, comma-separated (default: processing.symbols)')
    .option('--seed <n>', 'simulator seed (default: 1)')
    .option('--events <n>', 'stop after n events')
    .option('--duration <seconds>', 'stop after this many seconds')
    .option('--rate <events/s>', 'events per second, 0 = as fast as possible (default: 0)')
    .option('--record-mode <mode>', 'kpl | concat | single (default: kpl)')
    .option('--endpoint <url>', 'Kinesis endpoint (overrides aws.kinesis.endpoint)')
    .option(
      '--start-time-us <n>',
      'simulated start time, us since the epoch (default: on the clock, see docs/development.md)',
    )
    .option(
      '--rest-port <port>',
      "serve the simulator's REST API (/api/v3/depth, /api/v3/trades) on this port, 0 = free",
    )
    .option('--rest-host <host>', 'address the REST API listens on (default: 127.0.0.1)')
    .option(
      '--rest-linger <seconds>',
      'keep serving the REST API this long after the last event (default: 0)',
    )
    .option(
      '--archive <dir>',
      'also write what Kinesis acknowledged to this directory in the layout Firehose leaves in S3',
    )
    .option('--archive-gzip', 'gzip the archive objects (.gz)')
    .exitOverride((err) => {
      // commander's usage errors exit 1; ours are 2 like every bad option. Help/version stay 0.
      process.exit(err.exitCode === 0 ? 0 : 2);
    })
    .action(async (raw: RawReplayOptions, command: Command) => {
      let plan: ReplayPlan;
      try {
        const globals = command.parent?.opts<{ config?: string }>() ?? program.opts<{ config?: string }>();
        const config = loadConfig(globals.config, process.env);
        plan = planReplay(raw, config, () => BigInt(Date.now()) * 1000n);
      } catch (err) {
        if (err instanceof ReplayUsageError || err instanceof ConfigError) {
          process.stderr.write(`aggregator replay: ${err.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
      process.exitCode = await runReplay(plan, process.env);
    });
}
