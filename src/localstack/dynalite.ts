import path from 'node:path';
import { spawnService, tailOf, type ServiceHandle } from './service';
import { waitForPort } from './ports';

// dynalite (DynamoDB emulator) for the KCL lease tables. --createTableMs 0: otherwise KCL waits ~10 s for
// a new lease table (it polls DescribeTable every 10 s). In memory: the stack starts clean every time.

export interface DynaliteOptions {
  readonly port: number;
  readonly logFile: string;
  readonly detached?: boolean;
}

export async function startDynalite(options: DynaliteOptions): Promise<ServiceHandle & { endpoint: string }> {
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
    );
  }
  return { ...handle, endpoint: `http://127.0.0.1:${options.port}` };
}
