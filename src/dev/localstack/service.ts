import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

// A local emulator or server as a child process with its output in a log file. `detached` ones outlive the
// CLI that started them (the stack's pid file lets a later `stack down` stop them).

export interface ServiceHandle {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  stop(): Promise<void>;
  /** SIGKILL, as a crash would: no shutdown work (flushes, persistence) runs. Resolves once it is gone. */
  kill(): Promise<void>;
}

export interface SpawnOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly detached?: boolean;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after graceMs if the process is still there. */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (isAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function spawnService(options: SpawnOptions): ServiceHandle {
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const out = fs.openSync(options.logFile, 'a');
  const child = spawn(options.command, [...options.args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', out, out],
    detached: options.detached ?? false,
  });
  fs.closeSync(out);
  if (child.pid === undefined) throw new Error(`${options.name}: could not start ${options.command}`);
  if (options.detached) child.unref();
  const pid = child.pid;
  let exited = false;
  const gone = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  return {
    name: options.name,
    pid,
    logFile: options.logFile,
    async stop() {
      if (exited) return;
      await stopPid(pid);
      if (!options.detached) await Promise.race([gone, new Promise((r) => setTimeout(r, 1000))]);
    },
    async kill() {
      if (exited) return;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return; // already gone
      }
      // A detached child may not be ours to reap: poll the pid as stopPid does.
      if (options.detached) await stopPid(pid, 5000);
      else await gone;
    },
  };
}

/** The last lines of a log file, for error messages that point at what went wrong. */
export function tailOf(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
