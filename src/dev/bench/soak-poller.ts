import path from 'node:path';
import { parentPort, Worker, workerData } from 'node:worker_threads';
import Redis from 'ioredis';
import type { EventKind } from './soak-latency';

// The soak run's visibility poller, in a worker thread so that the driver's own work (simulating, encoding,
// PutRecords) does not delay the polls: every `intervalMs` one pipelined round trip reads the ids the state
// scripts write last, HMGET ob:<S> last_trade_id bba_update_id depth20_update_id and HGET book:<S>:state
// book_update_id, and posts each id that changed with the time the reply arrived (monotonic clock, shared
// with the main thread). That time is at most one interval plus one round trip after the write.

export interface PollerConfig {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly orderBookKey: string;
  readonly bookStateKey: string;
  readonly intervalMs: number;
}

export interface VisibleMessage {
  readonly type: 'visible';
  readonly t: number;
  readonly ids: readonly { kind: EventKind; id: number }[];
}

export interface PollerStats {
  readonly type: 'stats';
  readonly polls: number;
  readonly errors: number;
  /** Round trip of one poll, ms. */
  readonly rttP50: number;
  readonly rttP99: number;
  readonly rttMax: number;
  /** Mean time between polls, ms. */
  readonly meanPeriodMs: number;
}

/** Monotonic milliseconds (CLOCK_MONOTONIC: the same in every thread of the process). */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

function idOf(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

async function runPoller(config: PollerConfig): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const redis = new Redis({
    host: config.host,
    port: config.port,
    db: config.db,
    connectionName: 'soak-poller',
    maxRetriesPerRequest: 1,
  });
  let stop = false;
  port.on('message', (m: unknown) => {
    if (m === 'stop') stop = true;
  });
  const last = new Map<EventKind, number>();
  const rtts: number[] = [];
  let polls = 0;
  let errors = 0;
  const started = monoMs();
  while (!stop) {
    const t0 = monoMs();
    try {
      const replies = await redis
        .pipeline()
        .hmget(config.orderBookKey, 'last_trade_id', 'bba_update_id', 'depth20_update_id')
        .hget(config.bookStateKey, 'book_update_id')
        .exec();
      const t = monoMs();
      polls++;
      rtts.push(t - t0);
      const ob = (replies?.[0]?.[1] ?? []) as (string | null)[];
      const book = replies?.[1]?.[1] as string | null | undefined;
      const seen: [EventKind, number | undefined][] = [
        ['trade', idOf(ob[0])],
        ['bestbidask', idOf(ob[1])],
        ['depth20', idOf(ob[2])],
        ['depth_diff', idOf(book)],
      ];
      const ids: { kind: EventKind; id: number }[] = [];
      for (const [kind, id] of seen) {
        if (id !== undefined && id > (last.get(kind) ?? -1)) {
          last.set(kind, id);
          ids.push({ kind, id });
        }
      }
      if (ids.length > 0) port.postMessage({ type: 'visible', t, ids } satisfies VisibleMessage);
    } catch {
      errors++;
    }
    const wait = config.intervalMs - (monoMs() - t0);
    await new Promise((r) => setTimeout(r, Math.max(0, wait)));
  }
  rtts.sort((a, b) => a - b);
  const at = (p: number): number =>
    rtts.length === 0 ? 0 : (rtts[Math.min(rtts.length - 1, Math.ceil(p * rtts.length) - 1)] as number);
  const stats: PollerStats = {
    type: 'stats',
    polls,
    errors,
    rttP50: at(0.5),
    rttP99: at(0.99),
    rttMax: rtts[rtts.length - 1] ?? 0,
    meanPeriodMs: polls === 0 ? 0 : (monoMs() - started) / polls,
  };
  port.postMessage(stats);
  redis.disconnect();
  port.removeAllListeners('message'); // nothing keeps the thread alive now: it exits
}

export interface PollerHandle {
  /** Stops polling; resolves with the poller's statistics. */
  stop(): Promise<PollerStats | undefined>;
}

/** Starts the poller thread; `onVisible` gets every change of a visible id. */
export function startPoller(config: PollerConfig, onVisible: (m: VisibleMessage) => void): PollerHandle {
  const worker = new Worker(path.join(__dirname, 'soak-poller.js'), { workerData: config });
  let stats: PollerStats | undefined;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('message', (m: VisibleMessage | PollerStats) => {
    if (m.type === 'visible') onVisible(m);
    else stats = m;
  });
  worker.on('error', (err: Error) => {
    process.stderr.write(`soak: the Redis poller failed: ${err.message}\n`);
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const timer = setTimeout(() => void worker.terminate(), 5000);
      await exited;
      clearTimeout(timer);
      return stats;
    },
  };
}

if (parentPort !== null && (workerData as PollerConfig | undefined)?.orderBookKey !== undefined) {
  void runPoller(workerData as PollerConfig);
}
