import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { StreamKind } from '../../config/config';

// One real KCL MultiLangDaemon started the way operators start it (scripts/kcl-daemon.sh renders its properties
// from the config and execs Java), for the soak run and the tests.

const repoRoot = path.resolve(__dirname, '..', '..', '..', '..');

export interface KclDaemonOptions {
  readonly kind: StreamKind;
  readonly configFile: string;
  readonly workerId: string;
  /** Where the rendered properties file goes. */
  readonly stateDir: string;
  /** stdout and stderr of the daemon, appended. */
  readonly logFile: string;
  /** The environment (default: this process's); CONFIG_FILE and KCL_WORKER_ID are set on top. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Spawns the daemon in a process group of its own (detached), so the caller can signal the daemon and its
 * processor children together, and a Ctrl-C of the caller reaches them only through its own graceful stop.
 */
export function spawnKclDaemon(options: KclDaemonOptions): ChildProcess {
  const out = fs.openSync(options.logFile, 'a');
  try {
    return spawn('bash', [path.join(repoRoot, 'scripts', 'kcl-daemon.sh'), options.kind, options.stateDir], {
      env: {
        ...(options.env ?? process.env),
        CONFIG_FILE: options.configFile,
        KCL_WORKER_ID: options.workerId,
      },
      stdio: ['ignore', out, out],
      detached: true,
    });
  } finally {
    fs.closeSync(out);
  }
}
