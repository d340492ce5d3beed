import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../../src/dev/localstack/ports';
import { startRedisServer } from '../../src/dev/localstack/redis-server';

// One throw-away redis-server for a test file: a scratch directory (its log, and whatever else the test keeps
// there), a free port on loopback, no persistence. Every integration test that needs its own Redis starts it here:
//
//   let redis: TestRedis;
//   before(async () => { redis = await startTestRedis('state-it'); });
//   after(async () => { await redis?.stop(); });
//
// The log stays at <dir>/redis.log while the test runs (startRedisServer prints its tail when the server does not
// come up); stop() removes the directory unless the test passed one of its own.

export interface TestRedisOptions {
  /** Keep the log in this directory (created by the test, left to it) instead of a new scratch directory. */
  readonly dir?: string;
  /** The log's file name in the directory (default redis.log). */
  readonly logName?: string;
  /** More redis-server arguments, given the directory (e.g. an ACL file written there first). */
  readonly extraArgs?: (dir: string) => readonly string[];
}

export interface TestRedis {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** The scratch directory: the log, and the test's own files (configs, logs of its children). */
  readonly dir: string;
  readonly pid: number;
  readonly logFile: string;
  /** Stops redis-server, then removes the scratch directory (not a directory the test passed). Idempotent. */
  stop(): Promise<void>;
  /** Stops redis-server only, as when Redis goes away mid-test (the directory stays until stop()). */
  stopServer(): Promise<void>;
  /** SIGKILL, as a crash would (the directory stays until stop()). */
  kill(): Promise<void>;
}

/** Starts a throw-away redis-server on a free port; `name` prefixes its scratch directory. */
export async function startTestRedis(name: string, options: TestRedisOptions = {}): Promise<TestRedis> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const removeDir = () => {
    if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
  };
  let server: Awaited<ReturnType<typeof startRedisServer>>;
  const logFile = path.join(dir, options.logName ?? 'redis.log');
  let port: number;
  try {
    port = await findFreePort();
    // --dir: whatever the server writes (a replica's full-sync RDB, a SAVE) lands in the scratch directory, not in
    // the working directory (the repository).
    server = await startRedisServer({
      port,
      logFile,
      extraArgs: ['--dir', dir, ...(options.extraArgs?.(dir) ?? [])],
    });
  } catch (err) {
    removeDir();
    throw err;
  }
  let stopped = false;
  let serverStopped = false;
  const stopServer = async () => {
    if (serverStopped) return;
    serverStopped = true;
    await server.stop();
  };
  return {
    port,
    url: server.url,
    dir,
    pid: server.pid,
    logFile,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        await stopServer();
      } finally {
        removeDir();
      }
    },
    stopServer,
    kill: () => server.kill(),
  };
}
