import fs from 'node:fs';
import path from 'node:path';
import { startDynalite } from './dynalite';
import { startKinesisMock } from './kinesis-mock';
import { startRedisServer } from './redis-server';
import { isAlive, stopPid } from './service';
import { waitForPort } from './ports';

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
}

export interface RunningService {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  readonly logFile: string;
}

export interface Stack {
  readonly kinesisEndpoint: string;
  readonly dynamodbEndpoint: string;
  readonly redisPort: number;
  readonly services: readonly RunningService[];
  stop(): Promise<void>;
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

export async function startStack(options: StackOptions): Promise<Stack> {
  await assertPortFree('kinesis-mock', options.kinesisPort);
  await assertPortFree('dynalite', options.dynamodbPort);
  await assertPortFree('redis-server', options.redisPort);
  const detached = options.detached ?? false;
  const started: Array<{ service: RunningService; stop: () => Promise<void> }> = [];
  const stopAll = async () => {
    await Promise.all(started.map((s) => s.stop()));
  };
  try {
    // Started together: kinesis-mock takes the longest (several seconds on this machine).
    const [kinesis, dynalite] = await Promise.all([
      startKinesisMock({
        plainPort: options.kinesisPort,
        streams: options.streams,
        logFile: path.join(options.logDir, 'kinesis-mock.log'),
        region: options.region,
        detached,
      }).then((h) => {
        started.push({
          service: {
            name: 'kinesis-mock',
            pid: h.pid,
            port: options.kinesisPort,
            logFile: path.join(options.logDir, 'kinesis-mock.log'),
          },
          stop: () => h.stop(),
        });
        return h;
      }),
      startDynalite({
        port: options.dynamodbPort,
        logFile: path.join(options.logDir, 'dynalite.log'),
        detached,
      }).then((h) => {
        started.push({
          service: { name: 'dynalite', pid: h.pid, port: options.dynamodbPort, logFile: h.logFile },
          stop: () => h.stop(),
        });
        return h;
      }),
      startRedisServer({
        port: options.redisPort,
        logFile: path.join(options.logDir, 'redis.log'),
        detached,
      }).then((h) => {
        started.push({
          service: { name: 'redis-server', pid: h.pid, port: options.redisPort, logFile: h.logFile },
          stop: () => h.stop(),
        });
        return h;
      }),
    ]);
    return {
      kinesisEndpoint: kinesis.endpoint,
      dynamodbEndpoint: dynalite.endpoint,
      redisPort: options.redisPort,
      services: started.map((s) => s.service),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
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
