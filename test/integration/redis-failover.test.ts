import fs from 'node:fs';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { STREAM_KINDS } from '../../src/config/config';
import { findFreePort } from '../../src/dev/localstack/ports';
import type { HealthBody } from '../../src/ops/health';
import { simulate, type SimulatedEvent } from '../../src/replay/simulator';
import { PipelinePublisher, referenceState, waitForCheckpoints } from '../helpers/exactness';
import { startPipeline, waitUntil, type Pipeline } from '../helpers/pipeline';
import { processorLog, processorLogSize } from '../helpers/processor-log';
import { startTestRedis, type TestRedis } from '../helpers/redis';
import { snapshotStateKeys } from '../helpers/redis-snapshot';
import { spawnSidecar, type SidecarProcess } from '../helpers/sidecar-process';
import { DaemonSupervisor, sleep, withoutSidecarKeys } from '../helpers/stack-faults';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

// Issue 13 with the real parts (kinesis-mock, the real KCL daemons and their processors, a real sidecar):
// - a failover: the service's endpoint is a TCP proxy (standing in for the DNS name of a managed Redis) in front
//   of a primary with a replica; the primary is demoted (its writes answer READONLY), the replica promoted, and the
//   proxy switched to it. No process exits, writes go on on the new primary (its script cache empty: NOSCRIPT),
//   the state is exact, the sidecar writes features again and /health is healthy again on its own;
// - an outage longer than the ride-through bound (processing.batch_deadline_ms) still ends as before: the
//   processors exit without acknowledging, their daemons stop, a restarted daemon redelivers, the state is exact.

const SYMBOLS = ['BTCUSDT'];

describe('Redis failover and an outage past the ride-through bound, under the real pipeline', function () {
  this.timeout(600_000);
  const source = simulate({ seed: 91, symbols: SYMBOLS, startTimeUs: 1_766_000_000_000_000n }, 1_000_000);
  function take(count: number): SimulatedEvent[] {
    const out: SimulatedEvent[] = [];
    for (let i = 0; i < count; i++) {
      const next = source.next();
      if (next.done === true) break;
      out.push(next.value);
    }
    return out;
  }

  describe('failover to a promoted replica behind the same endpoint', () => {
    let pipeline: Pipeline | undefined;
    let replica: TestRedis | undefined;
    let scratch: TestRedis | undefined;
    let proxy: TcpProxy | undefined;
    let sidecar: SidecarProcess | undefined;
    let publisher: PipelinePublisher | undefined;
    let supervisor: DaemonSupervisor | undefined;

    after(async () => {
      supervisor?.stop();
      await sidecar?.stop();
      publisher?.close();
      await proxy?.stop();
      await pipeline?.stop();
      await replica?.stop();
      await scratch?.stop();
    });

    it('no process exits, writes continue on the new primary, the state is exact and /health healthy again', async () => {
      const healthPort = await findFreePort();
      pipeline = await startPipeline({
        shards: { trade: 1, bestbidask: 1, depth: 1 },
        symbols: SYMBOLS,
        label: 'redis-failover',
        extraYaml: `reanchor:\n  enabled: false\nhealth:\n  host: '127.0.0.1'\n  port: ${healthPort}\n`,
      });
      const p = pipeline;
      const primaryPort = p.stack.redisPort;
      // The replica, in sync with the primary before anything is written.
      replica = await startTestRedis('redis-replica', { dir: p.dir, logName: 'redis-replica.log' });
      const replicaPort = replica.port;
      const toReplica = new Redis({ port: replicaPort, lazyConnect: false });
      const toPrimary = new Redis({ port: primaryPort, lazyConnect: false });
      try {
        await toReplica.replicaof('127.0.0.1', primaryPort);
        const linkUp = async (node: Redis) => /master_link_status:up/.test(await node.info('replication'));
        await waitUntil(() => linkUp(toReplica), 30_000, 'the replica linked to the primary');
        // The service's endpoint: the proxy, in front of the primary.
        proxy = await startTcpProxy(primaryPort);
        const text = fs.readFileSync(p.configFile, 'utf8');
        fs.writeFileSync(p.configFile, text.replace(`port: ${primaryPort}\n`, `port: ${proxy.port}\n`));
        supervisor = new DaemonSupervisor(p);
        for (const kind of STREAM_KINDS) supervisor.start(kind);
        sidecar = spawnSidecar(p.configFile, 'sc-failover');
        publisher = new PipelinePublisher(p);
        const pub = publisher;
        await pub.publish(take(3000));
        await waitForCheckpoints(p, pub.latest, 150_000);
        const logOffset = processorLogSize(p);
        const started = Date.now();

        // Steady publishing through the failover.
        let live = true;
        let loopError: unknown;
        const publishing = (async () => {
          while (live) {
            await pub.publish(take(200));
            await sleep(250);
          }
        })().catch((err: unknown) => (loopError = err));
        await sleep(1500);

        // The failover, as a managed service does it: writes paused on the primary, the replica caught up and
        // promoted, the old primary demoted (its paused writes then answer READONLY), the endpoint moved.
        await toPrimary.call('CLIENT', 'PAUSE', '10000', 'WRITE');
        const offset = async (node: Redis, field: string) =>
          Number(new RegExp(`${field}:(\\d+)`).exec(await node.info('replication'))?.[1] ?? -1);
        await waitUntil(
          async () =>
            (await offset(toReplica, 'slave_repl_offset')) >= (await offset(toPrimary, 'master_repl_offset')),
          10_000,
          'the replica caught up',
        );
        await toReplica.replicaof('NO', 'ONE');
        await toPrimary.replicaof('127.0.0.1', replicaPort);
        await toPrimary.call('CLIENT', 'UNPAUSE');
        const demotedAt = Date.now();
        // Clients meet READONLY for a while before the name moves; their connections to the demoted node stay open
        // (as after a DNS change): only a reconnect on READONLY brings them to the new primary.
        await sleep(3000);
        proxy.switchTo(replicaPort);
        const switchedAt = Date.now();
        await sleep(4000);
        live = false;
        await publishing;
        if (loopError !== undefined) throw loopError as Error;
        await pub.publish(take(500));

        // Everything published is stored on the new primary, exactly.
        await waitForCheckpoints(p, pub.latest, 150_000);
        scratch = await startTestRedis('redis-scratch', { dir: p.dir, logName: 'redis-scratch.log' });
        const scratchPort = scratch.port;
        const reference = withoutSidecarKeys(await referenceState(scratchPort, pub.events, { db: 1 }));
        const actual = withoutSidecarKeys(await snapshotStateKeys(toReplica));
        expect(actual, 'the state on the new primary differs from the reference').to.deep.equal(reference);

        expect(supervisor.restartsSince(started), 'a daemon exited').to.deep.equal([]);
        const log = processorLog(p, logOffset);
        expect(log.filter((l) => String(l.message).startsWith('processRecords failed'))).to.deep.equal([]);
        const readonlySeen = log.some(
          (l) => l.message === 'redis unavailable: waiting for it' && /READONLY/.test(String(l.error)),
        );
        expect(readonlySeen, 'a processor met READONLY and waited').to.equal(true);
        const starts = log.filter((l) => l.message === 'redis unavailable: waiting for it').length;
        const ends = log.filter((l) => l.message === 'redis available again').length;
        expect(starts, 'one line per outage and process, no flood').to.be.at.most(3 * 4);
        expect(ends).to.be.at.least(1);

        // The sidecar writes features on the new primary, and /health is healthy again without a restart.
        const featureTs = async () => Number((await toReplica.hget('feat:BTCUSDT', 'feature_ts')) ?? 0);
        const before = await featureTs();
        await waitUntil(
          async () => (await featureTs()) > before,
          30_000,
          'a feature vector on the new primary',
        );
        let body: HealthBody | undefined;
        await waitUntil(
          async () => {
            const res = await fetch(`http://127.0.0.1:${healthPort}/health`).catch(() => undefined);
            body = res === undefined ? undefined : ((await res.json()) as HealthBody);
            return body?.components.redis.status === 'healthy';
          },
          30_000,
          '/health redis healthy on the new primary',
          () => Promise.resolve(JSON.stringify(body?.components.redis)),
        );
        expect(sidecar.child.exitCode).to.equal(null);
        process.stderr.write(
          `      failover: demoted ${((switchedAt - demotedAt) / 1000).toFixed(1)} s before the endpoint moved; ` +
            `${pub.events.length} events exact on the new primary; ${starts} outage start lines\n`,
        );
      } finally {
        toReplica.disconnect();
        toPrimary.disconnect();
      }
    });
  });

  describe('an outage longer than processing.batch_deadline_ms', () => {
    let pipeline: Pipeline | undefined;
    let publisher: PipelinePublisher | undefined;
    let supervisor: DaemonSupervisor | undefined;
    let redisPid: number | undefined;

    after(async () => {
      supervisor?.stop();
      publisher?.close();
      if (redisPid !== undefined) {
        try {
          process.kill(redisPid, 'SIGCONT');
        } catch {
          // gone
        }
      }
      await pipeline?.stop();
    });

    it('ends as before: the processors exit unacknowledged, a restarted daemon redelivers, the state is exact', async () => {
      pipeline = await startPipeline({
        shards: { trade: 1, bestbidask: 1, depth: 1 },
        symbols: SYMBOLS,
        label: 'redis-past-bound',
        extraYaml: `reanchor:\n  enabled: false\n`,
        // A short bound for the test (the pipeline's default is 20 s): 4 s, the daemon's timeout above it.
        batchDeadlineMs: 4000,
        kclTimeoutSeconds: 20,
      });
      const p = pipeline;
      p.redis.on('error', () => undefined);
      supervisor = new DaemonSupervisor(p);
      for (const kind of STREAM_KINDS) supervisor.start(kind);
      publisher = new PipelinePublisher(p);
      const pub = publisher;
      await pub.publish(take(2000));
      await waitForCheckpoints(p, pub.latest, 150_000);
      const logOffset = processorLogSize(p);
      redisPid = p.stack.service('redis-server').pid;
      process.kill(redisPid, 'SIGSTOP');
      const stoppedAt = Date.now();
      try {
        await pub.publish(take(1000));
        await waitUntil(
          () => Promise.resolve(supervisor!.restartsSince(stoppedAt).length > 0),
          60_000,
          'a daemon to exit after its processor gave up',
        );
      } finally {
        process.kill(redisPid, 'SIGCONT');
      }
      await pub.publish(take(500));
      const [actual, expected] = (await pub.settle(240_000)).map(withoutSidecarKeys);
      expect(actual, 'the state differs from the reference').to.deep.equal(expected);
      const log = processorLog(p, logOffset);
      expect(log.some((l) => String(l.message).startsWith('processRecords failed'))).to.equal(true);
      process.stderr.write(
        `      past the bound: ${supervisor.restartsSince(stoppedAt).length} daemon restart(s), state exact\n`,
      );
    });
  });
});
