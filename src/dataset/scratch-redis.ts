import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../common/ports';

// The dataset builder's own throw-away Redis (issue 16): a redis-server child on a free loopback port, no
// persistence, its directory and log in a temporary directory removed at stop. Production code may not use the
// development stack's launcher (src/dev), hence this minimal one.

export interface ScratchRedis {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its directory. Idempotent. */
  stop(): Promise<void>;
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

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

class PortTakenError extends Error {}

/**
 * Starts redis-server (`command`, default from PATH) and resolves once it answers PING (15 s at most). A port
 * taken between the check and the bind (another process) costs a new port, up to three times.
 */
export async function startScratchRedis(command = 'redis-server'): Promise<ScratchRedis> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(command, await findFreePort());
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt >= 3) throw err;
    }
  }
}

async function startOnce(command: string, port: number): Promise<ScratchRedis> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aggregator-dataset-'));
  const logFile = path.join(dir, 'redis.log');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawn(command, [...args, '--dir', dir, '--logfile', logFile, '--daemonize', 'no'], {
    stdio: 'ignore',
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null && spawnError === undefined) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited(child);
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await pingRedis(port))) {
    const gone = spawnError !== undefined || child.exitCode !== null;
    if (gone || Date.now() > deadline) {
      const log = fs.existsSync(logFile)
        ? fs.readFileSync(logFile, 'utf8').split('\n').slice(-10).join('\n')
        : '';
      await stop();
      if (/Address already in use/i.test(log)) throw new PortTakenError(`port ${port} taken: ${log}`);
      const why = spawnError !== undefined ? `could not start ${command}: ${spawnError.message}` : '';
      throw new Error(why || `the scratch redis-server did not answer PING on port ${port}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, url: `redis://127.0.0.1:${port}`, stop };
}
