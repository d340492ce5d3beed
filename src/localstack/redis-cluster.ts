import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startRedisServer } from './redis-server';
import type { ServiceHandle } from './service';

// A real Redis Cluster on loopback for tests: N masters (`redis-server --cluster-enabled yes`), no
// replicas, slots spread by `redis-cli --cluster create`. Throw-away: no persistence, its own dir.

const execFileAsync = promisify(execFile);

export interface RedisClusterOptions {
  readonly ports: readonly number[];
  /** Logs and nodes-<port>.conf files go here. */
  readonly dir: string;
}

export interface RedisCluster {
  readonly ports: readonly number[];
  readonly nodes: readonly ServiceHandle[];
  stop(): Promise<void>;
}

async function clusterState(port: number): Promise<string> {
  const { stdout } = await execFileAsync('redis-cli', ['-p', String(port), 'cluster', 'info']);
  return /cluster_state:(\w+)/.exec(stdout)?.[1] ?? 'unknown';
}

export async function startRedisCluster(options: RedisClusterOptions): Promise<RedisCluster> {
  if (options.ports.length < 3) throw new Error('a Redis Cluster needs at least 3 masters');
  const nodes: ServiceHandle[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (const port of options.ports) {
      nodes.push(
        await startRedisServer({
          port,
          logFile: path.join(options.dir, `redis-cluster-${port}.log`),
          extraArgs: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            path.join(options.dir, `nodes-${port}.conf`),
            '--cluster-node-timeout',
            '5000',
            '--dir',
            options.dir,
          ],
        }),
      );
    }
    await execFileAsync('redis-cli', [
      '--cluster',
      'create',
      ...options.ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    const deadline = Date.now() + 20000;
    for (const port of options.ports) {
      while ((await clusterState(port)) !== 'ok') {
        if (Date.now() > deadline)
          throw new Error(`Redis Cluster node ${port} did not reach cluster_state:ok`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { ports: options.ports, nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
