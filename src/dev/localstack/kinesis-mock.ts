import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
  ListStreamsCommand,
  ResourceInUseException,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { findFreePort } from './ports';
import { AggregatorError } from '../../common/errors';

// Starts and stops kinesis-mock (npm `kinesis-local`, a Scala.js build run by node) for local runs and tests, and
// creates streams on an emulator that is already running. Only the plain-HTTP port is meant to be used: the
// bundled TLS certificate is not trusted by clients, but the emulator insists on binding a TLS port too.

export interface KinesisMockOptions {
  readonly plainPort: number;
  /** A free port is picked when absent (the emulator always opens one). */
  readonly tlsPort?: number;
  /** Stream name -> shard count, created at start-up (INITIALIZE_STREAMS). */
  readonly streams: Readonly<Record<string, number>>;
  /** stdout and stderr of the emulator are appended here. */
  readonly logFile: string;
  /** Default us-east-1: the region streams are created in and clients must use. */
  readonly region?: string;
  /** Leave the emulator running after this process exits (for a CLI that starts a local stack). */
  readonly detached?: boolean;
  /** How long to wait for the API and ACTIVE streams (default 60 s). */
  readonly startTimeoutMs?: number;
  /** kinesis-mock's LOG_LEVEL (default WARN: its INFO logs one line per request). */
  readonly logLevel?: 'ERROR' | 'WARN' | 'INFO' | 'DEBUG' | 'TRACE';
  /**
   * Keep streams and records in `<dir>/kinesis-data.json` and reload them at start. kinesis-mock only writes
   * that file every `persistIntervalMs` (whole cache, not atomically) and at a graceful exit, which never
   * completes while a client holds a connection open (the KCL daemon always does): records acknowledged since
   * the last write are lost by a restart. See kinesisMockDataFile and persistedSequenceNumbers.
   */
  readonly persistDir?: string;
  /** Default 500 ms. */
  readonly persistIntervalMs?: number;
}

export interface KinesisMockHandle {
  /** http://127.0.0.1:<plainPort> */
  readonly endpoint: string;
  readonly pid: number;
  readonly region: string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL at once, as a crash would (nothing is persisted on the way out). */
  kill(): Promise<void>;
}

export class KinesisMockError extends AggregatorError {
  constructor(
    message: string,
    readonly logFile: string | undefined,
  ) {
    super(message, { code: 'KINESIS_MOCK', context: logFile === undefined ? {} : { logFile } });
    this.name = 'KinesisMockError';
  }
}

/** The emulator ignores credentials, but the SDK refuses to sign without some. */
const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

/**
 * A client for an emulator: HTTP/1.1 (kinesis-mock's plain port rejects the SDK's default HTTP/2 handler), and a
 * request timeout that really fails the call (by default the SDK only logs a warning and keeps waiting).
 */
export function emulatorClient(endpoint: string, region: string, requestTimeoutMs = 30000): KinesisClient {
  return new KinesisClient({
    endpoint,
    region,
    credentials: LOCAL_CREDENTIALS,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 2000,
      requestTimeout: requestTimeoutMs,
      throwOnRequestTimeout: true,
    }),
    maxAttempts: 1,
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function kinesisMockPackageDir(): string {
  return path.dirname(require.resolve('kinesis-local/package.json'));
}

/** Where kinesis-mock keeps its data when started with persistDir. */
export function kinesisMockDataFile(persistDir: string): string {
  return path.join(persistDir, 'kinesis-data.json');
}

/**
 * The environment that decides persistence. Without persistDir nothing is written and nothing is loaded (by
 * default kinesis-mock would load `data/kinesis-data.json` under its package dir if someone left one there).
 * With persisted data present, INITIALIZE_STREAMS is left out: the streams come back from the file, and
 * asking to create them again only logs a ResourceInUseException stack trace (checked on 0.6.2); any stream
 * the file lacks is created through the API instead (createStreams). Pure apart from the existence check.
 */
export function persistenceEnv(
  opts: Pick<KinesisMockOptions, 'persistDir' | 'persistIntervalMs' | 'streams'>,
): Partial<Record<string, string>> {
  const initialize = Object.entries(opts.streams)
    .map(([name, shards]) => `${name}:${shards}`)
    .join(',');
  if (opts.persistDir === undefined) {
    return { SHOULD_PERSIST_DATA: 'false', LOAD_DATA_IF_EXISTS: 'false', INITIALIZE_STREAMS: initialize };
  }
  const reloading = fs.existsSync(kinesisMockDataFile(opts.persistDir));
  return {
    SHOULD_PERSIST_DATA: 'true',
    LOAD_DATA_IF_EXISTS: 'true',
    PERSIST_PATH: path.resolve(opts.persistDir),
    PERSIST_FILE_NAME: path.basename(kinesisMockDataFile(opts.persistDir)),
    PERSIST_INTERVAL: `${opts.persistIntervalMs ?? 500}ms`,
    ...(reloading ? {} : { INITIALIZE_STREAMS: initialize }),
  };
}

const START_MARKER = '--- kinesis-mock start';

/** The last lines the emulator wrote since our start marker (the log is appended to across runs). */
function tail(file: string, lines: number): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const ours = text.slice(Math.max(0, text.lastIndexOf(START_MARKER)));
    return ours.trimEnd().split('\n').slice(1).slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function validateStreams(streams: Readonly<Record<string, number>>): void {
  for (const [name, shards] of Object.entries(streams)) {
    if (!/^[a-zA-Z0-9_.-]{1,128}$/.test(name))
      throw new KinesisMockError(`invalid stream name "${name}"`, undefined);
    if (!Number.isInteger(shards) || shards < 1) {
      throw new KinesisMockError(
        `stream ${name}: shard count must be a positive integer, got ${shards}`,
        undefined,
      );
    }
  }
}

export async function startKinesisMock(opts: KinesisMockOptions): Promise<KinesisMockHandle> {
  validateStreams(opts.streams);
  const region = opts.region ?? 'us-east-1';
  // Otherwise the readiness check could talk to someone else's emulator and report success.
  if (await portAnswers(opts.plainPort)) {
    throw new KinesisMockError(
      `port ${opts.plainPort} is already in use: cannot start kinesis-mock there`,
      undefined,
    );
  }
  const tlsPort = opts.tlsPort ?? (await findFreePort());
  const pkgDir = kinesisMockPackageDir();
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const logFd = fs.openSync(opts.logFile, 'a');
  fs.writeSync(logFd, `${START_MARKER} plain port ${opts.plainPort}, tls port ${tlsPort} ---\n`);
  const detached = opts.detached ?? false;
  const persistence = persistenceEnv(opts);
  if (opts.persistDir !== undefined) fs.mkdirSync(opts.persistDir, { recursive: true });
  const child = spawn(process.execPath, [path.join(pkgDir, 'main.js')], {
    cwd: pkgDir,
    env: {
      PATH: process.env.PATH ?? '',
      KINESIS_MOCK_CERT_PATH: path.join(pkgDir, 'server.json'),
      KINESIS_MOCK_PLAIN_PORT: String(opts.plainPort),
      KINESIS_MOCK_TLS_PORT: String(tlsPort),
      AWS_REGION: region,
      CREATE_STREAM_DURATION: '0ms',
      DELETE_STREAM_DURATION: '0ms',
      UPDATE_SHARD_COUNT_DURATION: '0ms',
      SPLIT_SHARD_DURATION: '0ms',
      MERGE_SHARDS_DURATION: '0ms',
      LOG_LEVEL: opts.logLevel ?? 'WARN',
      ...persistence,
    },
    stdio: ['ignore', logFd, logFd],
    detached,
  });
  fs.closeSync(logFd);
  const pid = child.pid;
  if (pid === undefined) {
    throw new KinesisMockError(`could not spawn kinesis-mock (see ${opts.logFile})`, opts.logFile);
  }

  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  if (detached) child.unref();

  const kill = async (): Promise<void> => {
    if (exited !== undefined) return;
    child.kill('SIGKILL');
    await exitedPromise;
  };
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exited !== undefined) return;
      child.kill('SIGTERM');
      const killed = await Promise.race([exitedPromise.then(() => true), sleep(5000).then(() => false)]);
      if (!killed && exited === undefined) {
        child.kill('SIGKILL');
        await exitedPromise;
      }
    })();
    return stopping;
  };

  const endpoint = `http://127.0.0.1:${opts.plainPort}`;
  try {
    const timeoutMs = opts.startTimeoutMs ?? 60000;
    const started = Date.now();
    await waitUntilReady(endpoint, region, Object.keys(opts.streams), timeoutMs, persistence, () => {
      if (exited === undefined) return undefined;
      return `kinesis-mock exited (code ${exited.code}, signal ${exited.signal}) before it was ready`;
    });
    // Reloaded from a file: streams the file lacked were not initialized at start.
    if (persistence.INITIALIZE_STREAMS === undefined) {
      await createStreams(endpoint, region, opts.streams, Math.max(1000, timeoutMs - (Date.now() - started)));
    }
  } catch (err) {
    await stop();
    const logTail = tail(opts.logFile, 15);
    throw new KinesisMockError(
      `${(err as Error).message}; see ${opts.logFile}${logTail === '' ? '' : `:\n${logTail}`}`,
      opts.logFile,
    );
  }
  return { endpoint, pid, region, stop, kill };
}

async function waitUntilReady(
  endpoint: string,
  region: string,
  streams: readonly string[],
  timeoutMs: number,
  persistence: Partial<Record<string, string>>,
  deadReason: () => string | undefined,
): Promise<void> {
  // Bounded requests: a start-up that hangs must not outlive the deadline. Not too short either: an emulator
  // restarted under clients that reconnect at once (KCL daemons polling every shard) answers slowly at first.
  const client = emulatorClient(endpoint, region, Math.min(10000, Math.max(2000, timeoutMs / 6)));
  const deadline = Date.now() + timeoutMs;
  try {
    let lastError = 'no answer';
    for (;;) {
      const dead = deadReason();
      if (dead !== undefined) throw new Error(dead);
      try {
        await client.send(new ListStreamsCommand({}));
        break;
      } catch (err) {
        lastError = (err as Error).message;
      }
      if (Date.now() > deadline)
        throw new Error(`kinesis-mock did not answer ListStreams in ${timeoutMs} ms (${lastError})`);
      await sleep(200);
    }
    // Streams to be created through the API afterwards are not waited for here.
    if (persistence.INITIALIZE_STREAMS !== undefined)
      await waitForStreamsActive(client, streams, Math.max(1000, deadline - Date.now()));
  } finally {
    client.destroy();
  }
}

/** Polls DescribeStreamSummary until every stream is ACTIVE; a stream that does not exist yet is waited for too. */
export async function waitForStreamsActive(
  client: KinesisClient,
  streams: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const waiting = new Set(streams);
  const status = new Map<string, string>();
  while (waiting.size > 0) {
    for (const name of [...waiting]) {
      try {
        const out = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
        const s = out.StreamDescriptionSummary?.StreamStatus ?? 'UNKNOWN';
        status.set(name, s);
        if (s === 'ACTIVE') waiting.delete(name);
      } catch (err) {
        status.set(name, (err as Error).name);
      }
    }
    if (waiting.size === 0) return;
    if (Date.now() > deadline) {
      const states = [...waiting].map((n) => `${n}: ${status.get(n) ?? 'no answer'}`).join(', ');
      throw new Error(`streams not ACTIVE after ${timeoutMs} ms (${states})`);
    }
    await sleep(100);
  }
}

/**
 * Creates the streams (name -> shard count) on a running emulator and waits until all are ACTIVE. Idempotent: an
 * existing stream is left as it is (its shard count is not changed).
 */
export async function createStreams(
  endpoint: string,
  region: string,
  streams: Readonly<Record<string, number>>,
  timeoutMs = 30000,
): Promise<void> {
  validateStreams(streams);
  const client = emulatorClient(endpoint, region);
  try {
    for (const [name, shards] of Object.entries(streams)) {
      try {
        await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
      } catch (err) {
        if (!(err instanceof ResourceInUseException)) {
          throw new KinesisMockError(
            `CreateStream ${name} at ${endpoint} failed: ${(err as Error).message}`,
            undefined,
          );
        }
      }
    }
    await waitForStreamsActive(client, Object.keys(streams), timeoutMs);
  } finally {
    client.destroy();
  }
}
