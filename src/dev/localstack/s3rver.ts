import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findFreePort, waitForPort } from './ports';
import { spawnService, tailOf, type ServiceHandle } from './service';

// s3rver (npm, an S3 emulator run by node) for the archive's tests and local runs: the objects live as files in a
// data directory (a fresh temporary one unless given), the buckets are created at start-up. Path-style URLs only
// (vhost buckets off): clients use forcePathStyle and the one key pair s3rver knows (S3RVER_CREDENTIALS).

/** The only access key s3rver accepts (any other is InvalidAccessKeyId). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface S3rverOptions {
  /** A free port is picked when absent. */
  readonly port?: number;
  /** stdout and stderr of the emulator are appended here. */
  readonly logFile: string;
  /** Buckets created at start-up. */
  readonly buckets: readonly string[];
  /** Where the objects are kept; a temporary directory (removed at stop) when absent. */
  readonly dataDir?: string;
}

export interface S3rverHandle extends ServiceHandle {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  readonly dataDir: string;
}

export async function startS3rver(options: S3rverOptions): Promise<S3rverHandle> {
  const port = options.port ?? (await findFreePort());
  const temporary = options.dataDir === undefined;
  const dataDir = options.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'));
  fs.mkdirSync(dataDir, { recursive: true });
  const cli = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const handle = spawnService({
    name: 's3rver',
    command: process.execPath,
    // s3rver ciphers its ListObjectsV2 continuation tokens with DES, which OpenSSL 3 (Node >= 17) only has in its
    // legacy provider: without it every truncated listing is an InternalError.
    args: [
      '--openssl-legacy-provider',
      cli,
      '--directory',
      dataDir,
      '--address',
      '127.0.0.1',
      '--port',
      String(port),
      '--silent',
      '--no-vhost-buckets',
      ...options.buckets.flatMap((b) => ['--configure-bucket', b]),
    ],
    logFile: options.logFile,
  });
  const removeData = (): void => {
    if (temporary) fs.rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitForPort('127.0.0.1', port, 20000);
  } catch (err) {
    await handle.stop();
    removeData();
    throw new Error(
      `s3rver did not start on port ${port}: ${(err as Error).message}\n${tailOf(options.logFile)}`,
      {
        cause: err,
      },
    );
  }
  return {
    ...handle,
    endpoint: `http://127.0.0.1:${port}`,
    dataDir,
    stop: async () => {
      await handle.stop();
      removeData();
    },
    kill: async () => {
      await handle.kill();
      removeData();
    },
  };
}
