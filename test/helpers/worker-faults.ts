import crypto from 'node:crypto';
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { ListShardsCommand } from '@aws-sdk/client-kinesis';
import type Redis from 'ioredis';
import { applicationName, type StreamKind } from '../../src/config/config';
import { createDynamoClient, readLeases, type LeaseRow } from '../../src/ops/leases';
import { createKinesisClient } from '../../src/replay/producer';
import type { Pipeline } from './pipeline';
import { processorLog } from './processor-log';
import type { KeySnapshot } from './redis-snapshot';

// Instruments for killing KCL workers and their processor children at a chosen moment: the process table
// (children of a daemon, members of its process group), the processors' Redis connections (a processor holding
// a batch), the processor log (which child handles which shard) and the lease table.

// ---------------------------------------------------------------------------------------------------------
// Processes

export interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgrp: number;
  /** R, S, D, T (stopped), Z (zombie), ... */
  readonly state: string;
  readonly comm: string;
}

function readStat(pid: number): ProcessInfo | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
  // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses, so split after the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const [state, ppid, pgrp] = text
    .slice(close + 2)
    .split(' ')
    .slice(0, 3);
  return { pid, ppid: Number(ppid), pgrp: Number(pgrp), state: state ?? '?', comm };
}

export function listProcesses(): ProcessInfo[] {
  const out: ProcessInfo[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const info = readStat(Number(entry));
    if (info !== undefined) out.push(info);
  }
  return out;
}

/** Live (not zombie) direct children of a process. */
export function childrenOf(pid: number): number[] {
  return listProcesses()
    .filter((p) => p.ppid === pid && p.state !== 'Z')
    .map((p) => p.pid);
}

/** Live (not zombie) members of a process group. */
export function groupMembers(pgid: number): ProcessInfo[] {
  return listProcesses().filter((p) => p.pgrp === pgid && p.state !== 'Z');
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const info = readStat(pid);
  return info !== undefined && info.state !== 'Z';
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Resolves when the child has exited (at once if it already has); rejects after timeoutMs. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<ExitStatus> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      reject(new Error(`process ${child.pid} still running after ${timeoutMs} ms`));
    }, timeoutMs);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      resolve({ code, signal });
    };
    child.once('exit', onExit);
  });
}

/** Sends a signal, ignoring a process (or group, for a negative pid) that is already gone. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The processors' Redis connections

export interface RedisClientEntry {
  readonly id: string;
  readonly name: string;
  readonly flags: string;
  /** The command being run (or the last one run). */
  readonly cmd: string;
  /** Bytes received but not yet run (commands pipelined behind the current one). */
  readonly qbuf: number;
}

export async function redisClients(redis: Redis): Promise<RedisClientEntry[]> {
  const text = (await redis.call('CLIENT', 'LIST')) as string;
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const fields = new Map<string, string>();
      for (const part of line.trim().split(' ')) {
        const eq = part.indexOf('=');
        if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
      }
      return {
        id: fields.get('id') ?? '',
        name: fields.get('name') ?? '',
        flags: fields.get('flags') ?? '',
        cmd: fields.get('cmd') ?? '',
        qbuf: Number(fields.get('qbuf') ?? '0'),
      };
    });
}

/** The pid in a processor's connection name (`processor:<kind>:<pid>`), if the connection is one. */
export function processorPidOf(entry: RedisClientEntry, kind: StreamKind): number | undefined {
  const match = new RegExp(`^processor:${kind}:(\\d+)$`).exec(entry.name);
  return match === null ? undefined : Number(match[1]);
}

/**
 * A connection held by CLIENT PAUSE WRITE (flag b) with a state script in hand: either the script itself is
 * the held command, or it waits in the query buffer behind a held command. The processors' client
 * auto-pipelines (one pipeline in flight at a time), so a batch usually waits in the processor itself behind a
 * held telemetry SET until that SET times out; the telemetry alone (SET, then ZADD after the SET's reply)
 * never leaves bytes in the buffer.
 */
export function holdsBatch(entry: RedisClientEntry): boolean {
  return entry.flags.includes('b') && (entry.cmd === 'evalsha' || entry.cmd === 'eval' || entry.qbuf > 0);
}

export interface FrozenMidBatch {
  /** The processor child whose batch was caught. */
  readonly pid: number;
  /** Its Redis connection id. */
  readonly clientId: string;
  /** How long Redis writes were paused. */
  readonly pausedMs: number;
  /** From the pause to the batch being caught. */
  readonly caughtAfterMs: number;
  /** From the pause to `publish` resolving. */
  readonly publishedAfterMs: number;
}

/**
 * Catches a processor in the middle of a batch and freezes it there with its batch applied but not
 * checkpointed: pauses every Redis write (CLIENT PAUSE WRITE), runs `publish`, waits until one of
 * `candidates()`'s processors holds a batch at Redis, calls `freeze(pid)` (SIGSTOP of the child or of its
 * worker's process group), lifts the pause and waits until Redis has run every command that processor had
 * sent. The frozen processor never sees the replies, so it neither checkpoints nor logs the batch.
 * Resolves after `publish` has resolved too. The pause is lifted whatever happens.
 */
export async function freezeMidBatch(options: {
  readonly redis: Redis;
  readonly kind: StreamKind;
  readonly candidates: () => readonly number[];
  readonly publish: () => Promise<unknown>;
  readonly freeze: (pid: number) => void;
  readonly timeoutMs: number;
}): Promise<FrozenMidBatch> {
  const { redis, kind } = options;
  // The safety net: Redis lifts the pause by itself if this test process dies before CLIENT UNPAUSE.
  await redis.call('CLIENT', 'PAUSE', String(options.timeoutMs + 30_000), 'WRITE');
  const pausedAt = Date.now();
  let unpausedAt: number | undefined;
  const unpause = async () => {
    if (unpausedAt !== undefined) return;
    unpausedAt = Date.now();
    await redis.call('CLIENT', 'UNPAUSE');
  };
  let publishedAt: number | undefined;
  const published = options.publish().then((value) => {
    publishedAt = Date.now();
    return value;
  });
  published.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  try {
    const deadline = Date.now() + options.timeoutMs;
    let caught: RedisClientEntry | undefined;
    let pid: number | undefined;
    let last: RedisClientEntry[] = [];
    while (caught === undefined) {
      const candidates = new Set(options.candidates());
      last = await redisClients(redis);
      caught = last.find((entry) => {
        const owner = processorPidOf(entry, kind);
        return owner !== undefined && candidates.has(owner) && holdsBatch(entry);
      });
      if (caught !== undefined) {
        pid = processorPidOf(caught, kind)!;
        break;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `no processor among [${[...candidates].join(', ')}] held a batch within ${options.timeoutMs} ms; ` +
            `processor connections: ${last
              .filter((e) => processorPidOf(e, kind) !== undefined)
              .map((e) => `${e.name} flags=${e.flags} cmd=${e.cmd} qbuf=${e.qbuf}`)
              .join('; ')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const clientId = caught.id;
    const caughtAt = Date.now();
    options.freeze(pid!);
    await unpause();
    // Redis now runs what the frozen processor had sent; wait until nothing of it is held or buffered.
    const drainDeadline = Date.now() + 30_000;
    for (;;) {
      const entry = (await redisClients(redis)).find((e) => e.id === clientId);
      if (entry === undefined) throw new Error(`the frozen processor ${pid}'s Redis connection vanished`);
      if (!entry.flags.includes('b') && entry.qbuf === 0) break;
      if (Date.now() > drainDeadline) {
        throw new Error(`Redis did not run the frozen processor's commands: flags=${entry.flags}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await published;
    return {
      pid: pid!,
      clientId,
      pausedMs: unpausedAt! - pausedAt,
      caughtAfterMs: caughtAt - pausedAt,
      publishedAfterMs: publishedAt! - pausedAt,
    };
  } finally {
    await unpause().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The processor log

/** The shard a processor child was initialized for (from its 'shard processor initialized' line). */
export function shardOfProcessor(pipeline: Pipeline, pid: number): string | undefined {
  return processorLog(pipeline).find((e) => e.message === 'shard processor initialized' && e.pid === pid)
    ?.shard;
}

/** The last lines of a file, for failure messages. */
export function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(cannot read ${file}: ${(err as Error).message})`;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Shards, leases, state

/** Which shard each partition key (symbol) lands on: MD5 of the key against the shards' hash key ranges. */
export async function shardsOfSymbols(
  pipeline: Pipeline,
  kind: StreamKind,
  symbols: readonly string[],
): Promise<Map<string, string>> {
  const kinesis = createKinesisClient({
    region: pipeline.config.aws.region,
    endpoint: pipeline.config.aws.kinesis.endpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    const listed = await kinesis.send(
      new ListShardsCommand({ StreamName: pipeline.config.aws.kinesis.streams[kind] }),
    );
    const shards = (listed.Shards ?? []).map((s) => ({
      id: s.ShardId!,
      from: BigInt(s.HashKeyRange!.StartingHashKey!),
      to: BigInt(s.HashKeyRange!.EndingHashKey!),
    }));
    const out = new Map<string, string>();
    for (const symbol of symbols) {
      const hash = BigInt(`0x${crypto.createHash('md5').update(symbol, 'utf8').digest('hex')}`);
      const shard = shards.find((s) => s.from <= hash && hash <= s.to);
      if (shard === undefined) throw new Error(`no shard covers the hash key of ${symbol}`);
      out.set(symbol, shard.id);
    }
    return out;
  } finally {
    kinesis.destroy();
  }
}

export async function leases(pipeline: Pipeline, kind: StreamKind): Promise<LeaseRow[]> {
  const dynamo = createDynamoClient(pipeline.config.aws.region, pipeline.config.aws.dynamodb.endpoint, {
    requestTimeoutMs: 10_000,
  });
  try {
    return await readLeases(dynamo, applicationName(pipeline.config, kind));
  } finally {
    dynamo.destroy();
  }
}

export function describeLeases(rows: readonly LeaseRow[]): string {
  return rows.map((l) => `${l.shardId}=${l.owner ?? '-'}@${l.checkpoint ?? '-'}`).join(' ');
}

/** The keys of the given symbols only (every key is `<prefix>:<symbol>[:...]`). */
export function symbolKeys(snapshot: KeySnapshot, symbols: readonly string[]): KeySnapshot {
  const out: KeySnapshot = {};
  for (const [key, value] of Object.entries(snapshot)) {
    if (symbols.includes(key.split(':')[1] ?? '')) out[key] = value;
  }
  return out;
}
