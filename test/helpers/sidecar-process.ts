import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './paths';

// A real `aggregator sidecar` process for integration tests: its stderr kept for failure messages, and a stop that
// lets it finish gracefully (SIGTERM) before killing it.

export interface SidecarProcess {
  readonly child: ChildProcess;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after graceMs; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** `env`: the sidecar's environment (default: this process's), e.g. AGGREGATOR_TASK_ID. */
export function spawnSidecar(configFile: string, id: string, env?: NodeJS.ProcessEnv): SidecarProcess {
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, 'dist/src/cli/main.js'), '--config', configFile, 'sidecar', '--id', id],
    { stdio: ['ignore', 'ignore', 'pipe'], ...(env === undefined ? {} : { env }) },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    child,
    stderr: () => stderr,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
