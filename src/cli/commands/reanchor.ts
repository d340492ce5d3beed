import type { Command } from 'commander';
import { loadConfig } from '../../config/config';
import { Keys } from '../../state/keys';
import { createRedisClient, type RedisClient } from '../../state/redis';
import { REANCHOR_GROUP, requestReanchor } from '../../reanchor/requests';

// `aggregator reanchor <SYMBOL>`: an operator's re-anchor request (queued on reanchor:requests; a sidecar's
// listener runs it). --wait follows it to its end; --status only prints the symbol's re-anchor state.
// Exit codes: 0 queued (or swapped with --wait), 1 failed or timed out with --wait, 2 bad arguments.

export interface ReanchorStatus {
  readonly symbol: string;
  /** The lock's attempt token while a re-anchor runs. */
  readonly running: string | null;
  readonly pending: Record<string, string>;
  readonly stats: Record<string, string>;
  /** Entries of the request stream not acknowledged yet by any listener (all symbols). */
  readonly unacknowledged: number;
  readonly listeners: number;
}

export async function readReanchorStatus(
  client: RedisClient,
  keys: Keys,
  symbol: string,
): Promise<ReanchorStatus> {
  const [running, pending, stats] = await Promise.all([
    client.get(keys.reanchorFlag(symbol)),
    client.hgetall(keys.reanchorPending(symbol)),
    client.hgetall(keys.reanchorStats(symbol)),
  ]);
  let unacknowledged = 0;
  let listeners = 0;
  try {
    const groups = (await client.xinfo('GROUPS', keys.reanchorRequests())) as unknown[][];
    for (const group of groups) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < group.length; i += 2) info.set(String(group[i]), group[i + 1]);
      if (info.get('name') === REANCHOR_GROUP) {
        unacknowledged = Number(info.get('pending') ?? 0);
        listeners = Number(info.get('consumers') ?? 0);
      }
    }
  } catch (err) {
    if (!(err instanceof Error) || !/no such key/i.test(err.message)) throw err;
  }
  return { symbol, running, pending, stats, unacknowledged, listeners };
}

export function registerReanchor(program: Command): void {
  program
    .command('reanchor')
    .description(
      'request a re-anchor of a symbol (rebuild from REST snapshots, atomic swap), or show its state',
    )
    .argument('<symbol>', 'e.g. BTCUSDT')
    .option('--status', 'print the symbol re-anchor state as JSON and exit')
    .option('--wait', 'wait until the re-anchor ends; exit 1 if it failed')
    .option('--timeout <seconds>', 'with --wait: give up after this long', '120')
    .action(
      async (
        symbolArg: string,
        options: { status?: boolean; wait?: boolean; timeout: string },
        command: Command,
      ) => {
        const config = loadConfig(command.optsWithGlobals<{ config?: string }>().config, process.env);
        const symbol = symbolArg.toUpperCase();
        const timeoutS = Number(options.timeout);
        if (!config.processing.symbols.includes(symbol)) {
          process.stderr.write(
            `reanchor: ${symbol} is not one of the configured symbols (${config.processing.symbols.join(', ')})\n`,
          );
          process.exitCode = 2;
          return;
        }
        if (!Number.isFinite(timeoutS) || timeoutS <= 0) {
          process.stderr.write(`reanchor: --timeout must be a positive number, got ${options.timeout}\n`);
          process.exitCode = 2;
          return;
        }
        const keys = new Keys({ clusterMode: config.redis.clusterMode });
        const redis = createRedisClient(config.redis, { connectionName: 'reanchor-cli' });
        try {
          if (options.status) {
            process.stdout.write(`${JSON.stringify(await readReanchorStatus(redis, keys, symbol))}\n`);
            return;
          }
          const before = await redis.hmget(keys.reanchorStats(symbol), 'swapped', 'failed');
          const id = await requestReanchor(redis, keys, { symbol, reason: 'operator', source: 'operator' });
          process.stderr.write(`reanchor: request ${id} queued for ${symbol}\n`);
          if (!options.wait) {
            process.stdout.write(`${JSON.stringify({ symbol, requestId: id })}\n`);
            return;
          }
          // Done when the stats count one more outcome after the request was acknowledged by a listener.
          const deadline = Date.now() + timeoutS * 1000;
          for (;;) {
            const [swapped, failed] = await redis.hmget(keys.reanchorStats(symbol), 'swapped', 'failed');
            const pendingIds = await redis.xpending(keys.reanchorRequests(), REANCHOR_GROUP, id, id, 1);
            const acked = pendingIds.length === 0 && (await redis.exists(keys.reanchorFlag(symbol))) === 0;
            const status = await readReanchorStatus(redis, keys, symbol);
            if (acked && (swapped !== before[0] || failed !== before[1])) {
              process.stdout.write(`${JSON.stringify({ requestId: id, ...status })}\n`);
              if (status.stats.last_outcome !== 'swapped') process.exitCode = 1;
              return;
            }
            if (Date.now() > deadline) {
              process.stdout.write(`${JSON.stringify({ requestId: id, timedOut: true, ...status })}\n`);
              process.stderr.write(`reanchor: no outcome within ${timeoutS} s (is a sidecar running?)\n`);
              process.exitCode = 1;
              return;
            }
            await new Promise((resolve) => setTimeout(resolve, 200));
          }
        } finally {
          redis.disconnect();
        }
      },
    );
}
