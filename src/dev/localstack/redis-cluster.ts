import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { findFreePort } from './ports';
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

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('redis-cli', ['-p', String(port), ...args]);
  return stdout;
}

async function clusterState(port: number): Promise<string> {
  return /cluster_state:(\w+)/.exec(await redisCli(port, 'cluster', 'info'))?.[1] ?? 'unknown';
}

export interface ClusterNodeView {
  readonly id: string;
  readonly port: number;
  readonly role: 'master' | 'slave';
  /** The master's id for a replica, '-' for a master. */
  readonly masterId: string;
  readonly hasSlots: boolean;
}

/** One node's CLUSTER NODES reply as rows (pure). */
export function parseClusterNodes(reply: string): ClusterNodeView[] {
  const rows: ClusterNodeView[] = [];
  for (const line of reply.split('\n')) {
    const [id, address, flags, masterId, ...rest] = line.trim().split(' ');
    if (id === undefined || address === undefined || flags === undefined || masterId === undefined) continue;
    if (rest.length < 4) continue;
    rows.push({
      id,
      port: Number(/:(\d+)@/.exec(address)?.[1]),
      role: flags.split(',').includes('slave') ? 'slave' : 'master',
      masterId,
      hasSlots: rest.length > 4,
    });
  }
  return rows;
}

/** Meets the nodes the first one does not know; makes a slotless master replicate a master short of replicas. */
async function repairTopology(
  ports: readonly number[],
  view: readonly ClusterNodeView[],
  replicas: number,
): Promise<void> {
  const [first] = ports;
  for (const port of ports) {
    if (first !== undefined && !view.some((n) => n.port === port)) {
      await redisCli(first, 'cluster', 'meet', '127.0.0.1', String(port)).catch(() => '');
    }
  }
  const idle = view.filter((n) => n.role === 'master' && !n.hasSlots);
  const short = view.filter(
    (n) =>
      n.role === 'master' &&
      n.hasSlots &&
      view.filter((r) => r.role === 'slave' && r.masterId === n.id).length < replicas,
  );
  for (const [i, master] of short.entries()) {
    const node = idle[i];
    if (node === undefined) break;
    await redisCli(node.port, 'cluster', 'replicate', master.id).catch(() => '');
  }
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
      // The bus port is explicit: port + 10000 (Redis's default) is not checked free and may not even exist.
      const busPort = await findFreePort();
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
            '--cluster-port',
            String(busPort),
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
    const deadline = Date.now() + 60000;
    for (const port of options.ports) {
      while ((await clusterState(port)) !== 'ok') {
        if (Date.now() > deadline)
          throw new Error(`Redis Cluster node ${port} did not reach cluster_state:ok`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    // Replicas: linked to their masters (known as such by the cluster, and in sync) before anyone fails over.
    // `--cluster create` sometimes leaves a node unmet or its CLUSTER REPLICATE refused (the node did not know
    // its master yet) on a loaded machine: meet and replicate again until the topology is whole.
    const first = options.ports[0] ?? 0;
    const wanted = (options.ports.length / (1 + replicas)) * replicas;
    const replicaDeadline = Date.now() + 60000;
    while (wanted > 0) {
      const view = parseClusterNodes(await redisCli(first, 'cluster', 'nodes'));
      await repairTopology(options.ports, view, replicas);
      const slaves = view.filter((n) => n.role === 'slave');
      const linked = await Promise.all(
        slaves.map(async (n) => /master_link_status:up/.test(await redisCli(n.port, 'info', 'replication'))),
      );
      if (linked.length === wanted && linked.every(Boolean)) break;
      if (Date.now() > replicaDeadline) {
        throw new Error(
          `Redis Cluster replicas not linked: ${view.map((n) => `${n.port} ${n.role}`).join(', ')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return { ports: options.ports, nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
