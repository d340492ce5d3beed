import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
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

/** Sends PING and resolves true on +PONG (a loading or protected server answers otherwise). */
export function pingRedis(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let reply = '';
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}

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
