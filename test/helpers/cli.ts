import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './paths';

/** The built CLI (npm run build). */
export const cliPath = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunCliOptions {
  /** The child's environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** SIGKILL after this long (default: none; mocha's timeout applies). */
  readonly timeoutMs?: number;
}

/** Runs the built CLI as a child process to its end (asynchronously: the test process keeps serving its own clients). */
export function runCli(args: readonly string[], options: RunCliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      if (timer !== undefined) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
