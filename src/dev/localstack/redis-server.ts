import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pingRedis } from '../../dataset/scratch-redis';
import { spawnService, tailOf, type ServiceHandle } from './service';

// A redis-server on loopback. By default throw-away (no persistence), so every stack and every test starts
// empty. With `appendOnlyDir` it keeps an append-only file fsynced before every reply (appendfsync always):
// whatever it acknowledged survives a crash, and a server restarted on the same dir reloads it. Fault tests
// need that; without it a restarted Redis would come back empty and no pipeline could converge.

export interface RedisServerOptions {
  readonly port: number;
  readonly logFile: string;
  readonly detached?: boolean;
  readonly extraArgs?: readonly string[];
  /** Keep an AOF (appendfsync always) in this directory and reload it at start. */
  readonly appendOnlyDir?: string;
}

/** The persistence arguments: none at all, or an AOF fsynced on every write. Pure. */
export function persistenceArgs(appendOnlyDir: string | undefined): string[] {
  if (appendOnlyDir === undefined) return ['--save', '', '--appendonly', 'no'];
  return ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', appendOnlyDir];
}

export function redisServerAvailable(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// The PING probe is the scratch server's of the dataset builder (one implementation).
export { pingRedis };

export async function startRedisServer(
  options: RedisServerOptions,
): Promise<ServiceHandle & { url: string }> {
  if (!redisServerAvailable()) {
    throw new Error('redis-server is not installed (scripts/setup.sh installs it with apt-get)');
  }
  if (options.appendOnlyDir !== undefined) fs.mkdirSync(options.appendOnlyDir, { recursive: true });
  const handle = spawnService({
    name: 'redis',
    command: 'redis-server',
    args: [
      '--port',
      String(options.port),
      '--bind',
      '127.0.0.1',
      ...persistenceArgs(options.appendOnlyDir),
      // Where a replica writes the RDB it receives in a full sync (even with --save ''): the log's throw-away
      // directory, never the caller's working directory.
      ...(options.appendOnlyDir === undefined ? ['--dir', path.dirname(options.logFile)] : []),
      '--daemonize',
      'no',
      ...(options.extraArgs ?? []),
    ],
    logFile: options.logFile,
    detached: options.detached,
  });
  // PING answers -LOADING while an AOF is replayed: this waits for the data too.
  const deadline = Date.now() + 15000;
  while (!(await pingRedis(options.port))) {
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`redis-server did not answer PING on port ${options.port}\n${tailOf(options.logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ...handle, url: `redis://127.0.0.1:${options.port}` };
}
