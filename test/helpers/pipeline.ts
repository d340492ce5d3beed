import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { spawnKclDaemon } from '../../src/dev/localstack/kcl-daemon';
import { findFreePort } from '../../src/dev/localstack/ports';
import { startStack, type Stack, type StackOptions } from '../../src/dev/localstack/stack';
import { seedLeaseTables } from './leases';
import { loadConfig, type AppConfig, type StreamKind } from '../../src/config/config';

// The real pipeline for integration tests: the local stack on free ports, a config file pointing at it,
// and one real KCL MultiLangDaemon per stream started by the project's launch script.

export interface PipelineOptions {
  readonly shards: Readonly<Record<StreamKind, number>>;
  readonly symbols: readonly string[];
  readonly label: string;
  /** YAML appended verbatim at the end of the generated config (top-level sections, e.g. `reanchor:`). */
  readonly extraYaml?: string;
  /** Passed to startStack (e.g. persistDir, so that services can be restarted with their data). */
  readonly stackOptions?: Pick<StackOptions, 'persistDir' | 'kinesisPersistIntervalMs'>;
  /** processing.batch_deadline_ms, the ride-through bound (default 20000). */
  readonly batchDeadlineMs?: number;
  /** kcl.timeout_in_seconds (default 60; must exceed the deadline by more than 5 s). */
  readonly kclTimeoutSeconds?: number;
  /** The processors' and sidecars' log: level (default debug), to <dir>/processor.log unless `toFile` is false
   * (then stderr, the production shape). */
  readonly logging?: { readonly level?: 'error' | 'warn' | 'info' | 'debug'; readonly toFile?: boolean };
  /** Leave the lease tables to KCL (created after its random 1-30 s wait) instead of seeding them (leases.ts). */
  readonly kclCreatesLeases?: boolean;
}

export interface Pipeline {
  readonly dir: string;
  readonly config: AppConfig;
  readonly configFile: string;
  readonly stack: Stack;
  readonly redis: Redis;
  /** `env` (default: this process's) is the daemon's environment, which its processor children inherit. */
  startDaemon(kind: StreamKind, workerId?: string, env?: NodeJS.ProcessEnv): DaemonHandle;
  /** The most recently started daemon of a stream. */
  daemon(kind: StreamKind): DaemonHandle;
  stop(): Promise<void>;
}

export interface DaemonHandle {
  readonly kind: StreamKind;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** SIGTERM to the daemon (graceful lease hand-off), SIGKILL to its process group after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

function configYaml(
  ports: { kinesis: number; dynamodb: number; redis: number },
  options: PipelineOptions,
  dir: string,
) {
  return `service_name: "bitcoin-aggregator-test"
aws:
  region: "us-east-1"
  kinesis:
    endpoint: "http://127.0.0.1:${ports.kinesis}"
    consumer_config:
      shard_iterator_type: "TRIM_HORIZON"
      max_records_per_poll: 10000
      poll_interval_ms: 100
  dynamodb:
    endpoint: "http://127.0.0.1:${ports.dynamodb}"
kcl:
  application_name_prefix: "agg-${options.label}"
  failover_time_millis: 6000
  shard_sync_interval_millis: 1000
  shutdown_grace_millis: 5000
  timeout_in_seconds: ${options.kclTimeoutSeconds ?? 60}
  metrics_level: "NONE"
redis:
  host: "127.0.0.1"
  port: ${ports.redis}
processing:
  symbols: [${options.symbols.map((s) => `"${s}"`).join(', ')}]
  batch_deadline_ms: ${options.batchDeadlineMs ?? 20000}
logging:
  level: "${options.logging?.level ?? 'debug'}"
${options.logging?.toFile === false ? '' : `  file: "${path.join(dir, 'processor.log')}"\n`}${options.extraYaml ?? ''}`;
}

export async function startPipeline(options: PipelineOptions): Promise<Pipeline> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `agg-${options.label}-`));
  const ports = {
    kinesis: await findFreePort(),
    dynamodb: await findFreePort(),
    redis: await findFreePort(),
  };
  const configFile = path.join(dir, 'config.yaml');
  fs.writeFileSync(configFile, configYaml(ports, options, dir));
  const config = loadConfig(configFile, {});
  const stack = await startStack({
    kinesisPort: ports.kinesis,
    dynamodbPort: ports.dynamodb,
    redisPort: ports.redis,
    streams: {
      [config.aws.kinesis.streams.trade]: options.shards.trade,
      [config.aws.kinesis.streams.bestbidask]: options.shards.bestbidask,
      [config.aws.kinesis.streams.depth]: options.shards.depth,
    },
    logDir: dir,
    region: config.aws.region,
    ...options.stackOptions,
  });
  if (options.kclCreatesLeases !== true) {
    try {
      await seedLeaseTables(config);
    } catch (err) {
      await stack.stop();
      throw err;
    }
  }
  const redis = new Redis({ host: '127.0.0.1', port: ports.redis, lazyConnect: false });
  const daemons: DaemonHandle[] = [];

  const startDaemon = (
    kind: StreamKind,
    workerId = `worker-${kind}-1`,
    env?: NodeJS.ProcessEnv,
  ): DaemonHandle => {
    const logFile = path.join(dir, `kcl-${kind}-${workerId}.log`);
    // Its own process group: the test can kill the daemon and its children together.
    const child = spawnKclDaemon({
      kind,
      configFile,
      workerId,
      stateDir: path.join(dir, `kcl-${workerId}`),
      logFile,
      ...(env === undefined ? {} : { env }),
    });
    const handle: DaemonHandle = {
      kind,
      child,
      logFile,
      async stop(graceMs = 15000) {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timedOut = await Promise.race([
          exited.then(() => false),
          new Promise<boolean>((r) => setTimeout(() => r(true), graceMs)),
        ]);
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // group already gone
        }
        if (timedOut) await exited;
      },
    };
    daemons.push(handle);
    return handle;
  };

  return {
    dir,
    config,
    configFile,
    stack,
    redis,
    startDaemon,
    daemon(kind) {
      const handle = [...daemons].reverse().find((d) => d.kind === kind);
      if (handle === undefined) throw new Error(`no daemon was started for ${kind}`);
      return handle;
    },
    async stop() {
      await Promise.all(daemons.map((d) => d.stop()));
      redis.disconnect();
      await stack.stop();
      if (process.env.KEEP_TEST_DIRS === undefined) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until check() returns true or timeoutMs passes; returns the last value of describe() on timeout. */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  describe?: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${describe ? `: ${await describe()}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
