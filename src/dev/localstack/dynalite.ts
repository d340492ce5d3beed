import fs from 'node:fs';
import path from 'node:path';
import { spawnService, tailOf, type ServiceHandle } from './service';
import { waitForPort } from './ports';

// dynalite (DynamoDB emulator) for the KCL lease tables. --createTableMs 0: otherwise KCL waits ~10 s for
// a new lease table (it polls DescribeTable every 10 s). In memory by default: the stack starts clean every
// time. With `dataDir` the tables live in LevelDB there: an acknowledged write has reached the OS (not fsynced)
// before the reply, so lease checkpoints survive a process crash (SIGKILL) and a restart on the same dir.

export interface DynaliteOptions {
  readonly port: number;
  readonly logFile: string;
  readonly detached?: boolean;
  /** Keep the tables in LevelDB in this directory (created when absent). */
  readonly dataDir?: string;
}

export async function startDynalite(options: DynaliteOptions): Promise<ServiceHandle & { endpoint: string }> {
  if (options.dataDir !== undefined) fs.mkdirSync(options.dataDir, { recursive: true });
  const cli = path.join(path.dirname(require.resolve('dynalite/package.json')), 'cli.js');
  const handle = spawnService({
    name: 'dynalite',
    command: process.execPath,
    args: [
      cli,
      '--host',
      '127.0.0.1',
      '--port',
      String(options.port),
      '--createTableMs',
      '0',
      '--deleteTableMs',
      '0',
      '--updateTableMs',
      '0',
      ...(options.dataDir === undefined ? [] : ['--path', options.dataDir]),
    ],
    logFile: options.logFile,
    detached: options.detached,
  });
  try {
    await waitForPort('127.0.0.1', options.port, 20000);
  } catch (err) {
    await handle.stop();
    throw new Error(
      `dynalite did not start on port ${options.port}: ${(err as Error).message}\n${tailOf(options.logFile)}`,
      { cause: err },
    );
  }
  return { ...handle, endpoint: `http://127.0.0.1:${options.port}` };
}
