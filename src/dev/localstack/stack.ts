import fs from 'node:fs';
import path from 'node:path';
import { startDynalite } from './dynalite';
import { startKinesisMock } from './kinesis-mock';
import { startRedisServer } from './redis-server';
import { isAlive, stopPid } from './service';
import { waitForPort } from './ports';
import { AggregatorError } from '../../common/errors';

// The whole local stack: kinesis-mock (streams created), dynalite (lease tables), redis-server.
// Used by `aggregator stack up/down` (detached, with a state file) and by the tests (attached, free ports).

export interface StackOptions {
  readonly kinesisPort: number;
  readonly dynamodbPort: number;
  readonly redisPort: number;
  /** Stream name -> shard count. */
  readonly streams: Readonly<Record<string, number>>;
  readonly logDir: string;
  readonly region: string;
  readonly detached?: boolean;
  /**
   * Keep each service's data under this directory (kinesis/, dynalite/, redis/) so that Stack.restart brings
   * it back: Redis with an AOF fsynced on every write, dynalite in LevelDB, kinesis-mock in its JSON file
   * (written every kinesisPersistIntervalMs only: see KinesisMockOptions.persistDir). Absent: all in memory.
   */
  readonly persistDir?: string;
  readonly kinesisPersistIntervalMs?: number;
}

export type StackServiceName = 'kinesis-mock' | 'dynalite' | 'redis-server';

export interface RunningService {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly logFile: string;
}

export interface RestartOptions {
  /** SIGKILL (a crash: no shutdown work) instead of SIGTERM. Default false. */
  readonly crash?: boolean;
  /** How long the service stays down between the stop and the new start. Default 0. */
  readonly downMs?: number;
}

export interface Stack {
  readonly kinesisEndpoint: string;
  readonly dynamodbEndpoint: string;
  readonly redisPort: number;
  /** The services as they run now (a restart changes the pid). */
  readonly services: readonly RunningService[];
  /** The running process of one service. */
  service(name: StackServiceName): RunningService;
  /**
   * Stops one service and starts it again on the same port with the same data directory; resolves once it
   * answers again (Redis: its AOF loaded; kinesis-mock: its streams ACTIVE). Only with persistDir.
   */
  restart(name: StackServiceName, options?: RestartOptions): Promise<RunningService>;
  stop(): Promise<void>;
}

export class StackRestartError extends AggregatorError {
  constructor(
    message: string,
    readonly service: StackServiceName,
  ) {
    super(message, { code: 'STACK_RESTART', context: { service } });
    this.name = 'StackRestartError';
  }
}

async function assertPortFree(name: string, port: number): Promise<void> {
  const taken = await waitForPort('127.0.0.1', port, 0).then(
    () => true,
    () => false,
  );
  if (taken) {
    throw new Error(
      `port ${port} for ${name} is already in use (a stack still running? try: npm run local:down)`,
    );
  }
}

/** One started service: what the state file records, and how to stop or crash it. */
interface Started {
  readonly service: RunningService;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/** The data directory of one service, or undefined when the stack keeps everything in memory. Pure. */
export function serviceDataDir(persistDir: string | undefined, name: StackServiceName): string | undefined {
  if (persistDir === undefined) return undefined;
  const sub: Record<StackServiceName, string> = {
    'kinesis-mock': 'kinesis',
    dynalite: 'dynalite',
    'redis-server': 'redis',
  };
  return path.join(persistDir, sub[name]);
}

/** Starts one service of the stack (the same way at first start and at a restart). */
async function startService(
  name: StackServiceName,
  options: StackOptions,
  restarting = false,
): Promise<Started> {
  const detached = options.detached ?? false;
  const dataDir = serviceDataDir(options.persistDir, name);
  switch (name) {
    case 'kinesis-mock': {
      const logFile = path.join(options.logDir, 'kinesis-mock.log');
      const h = await startKinesisMock({
        plainPort: options.kinesisPort,
        streams: options.streams,
        logFile,
        region: options.region,
        detached,
        persistDir: dataDir,
        persistIntervalMs: options.kinesisPersistIntervalMs,
        // Reloading its file while the daemons already poll again takes kinesis-mock much longer.
        startTimeoutMs: restarting ? 180000 : undefined,
      });
      return {
        service: { name, pid: h.pid, port: options.kinesisPort, logFile },
        stop: () => h.stop(),
        kill: () => h.kill(),
      };
    }
    case 'dynalite': {
      const h = await startDynalite({
        port: options.dynamodbPort,
        logFile: path.join(options.logDir, 'dynalite.log'),
        detached,
        dataDir,
      });
      return { service: { name, pid: h.pid, port: options.dynamodbPort, logFile: h.logFile }, ...h };
    }
    case 'redis-server': {
      const h = await startRedisServer({
        port: options.redisPort,
        logFile: path.join(options.logDir, 'redis.log'),
        detached,
        appendOnlyDir: dataDir,
      });
      return { service: { name, pid: h.pid, port: options.redisPort, logFile: h.logFile }, ...h };
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function startStack(options: StackOptions): Promise<Stack> {
  await assertPortFree('kinesis-mock', options.kinesisPort);
  await assertPortFree('dynalite', options.dynamodbPort);
  await assertPortFree('redis-server', options.redisPort);
  const started = new Map<StackServiceName, Started>();
  const stopAll = async () => {
    await Promise.all([...started.values()].map((s) => s.stop()));
  };
  const names: readonly StackServiceName[] = ['kinesis-mock', 'dynalite', 'redis-server'];
  try {
    // Started together: kinesis-mock takes the longest (several seconds on this machine).
    await Promise.all(
      names.map(async (name) => {
        started.set(name, await startService(name, options));
      }),
    );
  } catch (err) {
    await stopAll();
    throw err;
  }
  const current = (name: StackServiceName): Started => {
    const s = started.get(name);
    if (s === undefined) throw new StackRestartError(`${name} is not part of this stack`, name);
    return s;
  };
  return {
    kinesisEndpoint: `http://127.0.0.1:${options.kinesisPort}`,
    dynamodbEndpoint: `http://127.0.0.1:${options.dynamodbPort}`,
    redisPort: options.redisPort,
    get services() {
      return names.filter((n) => started.has(n)).map((n) => current(n).service);
    },
    service: (name) => current(name).service,
    async restart(name, restartOptions = {}) {
      // In memory, a restart is a fresh empty service: no caller wants that silently.
      if (options.persistDir === undefined)
        throw new StackRestartError(`cannot restart ${name}: the stack was started without persistDir`, name);
      const old = current(name);
      await (restartOptions.crash === true ? old.kill() : old.stop());
      if ((restartOptions.downMs ?? 0) > 0) await sleep(restartOptions.downMs ?? 0);
      const again = await startService(name, options, true);
      started.set(name, again);
      return again.service;
    },
    stop: stopAll,
  };
}

/** The state file a detached stack leaves so `stack down` can stop it from another process. */
export interface StackState {
  readonly startedAt: string;
  readonly services: readonly RunningService[];
}

export function writeStackState(file: string, services: readonly RunningService[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const state: StackState = { startedAt: new Date().toISOString(), services };
  fs.writeFileSync(file, `${JSON.stringify(state, null, 2)}\n`);
}

export function readStackState(file: string): StackState | undefined {
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as StackState;
}

export async function stopStackFromState(file: string): Promise<string[]> {
  const state = readStackState(file);
  if (state === undefined) return [];
  const stopped: string[] = [];
  await Promise.all(
    state.services.map(async (service) => {
      if (isAlive(service.pid)) {
        await stopPid(service.pid);
        stopped.push(`${service.name} (pid ${service.pid})`);
      }
    }),
  );
  fs.rmSync(file, { force: true });
  return stopped;
}
