import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startRedisServer } from './redis-server';
import type { ServiceHandle } from './service';

// A real Redis Cluster on loopback for tests: N masters (`redis-server --cluster-enabled yes`), optionally R
// replicas of each (for failover tests), slots spread by `redis-cli --cluster create`. Throw-away: no persistence,
// its own dir.

const execFileAsync = promisify(execFile);

export interface RedisClusterOptions {
  /** One port per node: masters x (1 + replicas). */
  readonly ports: readonly number[];
  /** Replicas of each master (default 0). */
  readonly replicas?: number;
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
  const replicas = options.replicas ?? 0;
  if (options.ports.length < 3 * (1 + replicas) || options.ports.length % (1 + replicas) !== 0) {
    throw new Error(`a Redis Cluster needs at least 3 masters and ${replicas} replica(s) of each`);
  }
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
      String(replicas),
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
    // Replicas: linked to their masters (known as such by the cluster, and in sync) before anyone fails over.
    const wanted = (options.ports.length / (1 + replicas)) * replicas;
    while (wanted > 0) {
      const { stdout } = await execFileAsync('redis-cli', [
        '-p',
        String(options.ports[0]),
        'cluster',
        'nodes',
      ]);
      const linked = await Promise.all(
        stdout
          .split('\n')
          .filter((line) => / (myself,)?slave /.test(line))
          .map(async (line) => {
            const port = /:(\d+)@/.exec(line)?.[1];
            const info = await execFileAsync('redis-cli', ['-p', String(port), 'info', 'replication']);
            return /master_link_status:up/.test(info.stdout);
          }),
      );
      if (linked.length === wanted && linked.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error(`Redis Cluster replicas not linked: ${stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { ports: options.ports, nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
