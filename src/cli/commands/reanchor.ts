import type { Command } from 'commander';
import { loadConfig } from '../../config/config';
import { Keys } from '../../state/keys';
import { isRetryable } from '../../common/errors';
import { createRedisClient } from '../../state/redis';
import { ensureRequestGroup, REANCHOR_GROUP, requestReanchor } from '../../reanchor/requests';
import {
  readOutcomeCounts,
  readReanchorStatus,
  readRequestHolder,
  streamIdAtMost,
  type ReanchorStatus,
} from '../../reanchor/status';

// `aggregator reanchor <SYMBOL>`: an operator's re-anchor request (queued on reanchor:requests; a sidecar's
// listener runs it). --wait follows it to its end; --status only prints the symbol's re-anchor state.
// Exit codes: 0 queued (or swapped with --wait), 1 failed or timed out with --wait, 2 bad arguments. The command
// creates the listeners' consumer group when it is missing, so a request made before any sidecar waits for one.

/** Where an operator's request stands, as `--wait` follows it. */
export type RequestPhase =
  | { readonly kind: 'no-listener' }
  | { readonly kind: 'queued'; readonly listeners: number }
  | { readonly kind: 'taken'; readonly consumer: string }
  | { readonly kind: 'running'; readonly token: string }
  | { readonly kind: 'finished'; readonly stats: Readonly<Record<string, string>> };

/** One line of words for a phase (stderr of `reanchor --wait`). Pure. */
export function describePhase(symbol: string, phase: RequestPhase): string {
  switch (phase.kind) {
    case 'no-listener':
      return (
        `no listener has joined ${REANCHOR_GROUP} yet: the request stays queued, and the first sidecar to start ` +
        `(aggregator sidecar) runs it`
      );
    case 'queued':
      return `queued; ${phase.listeners} listener(s) in ${REANCHOR_GROUP}, none has taken it yet`;
    case 'taken':
      return `taken by listener ${phase.consumer}`;
    case 'running':
      return `re-anchor of ${symbol} running (attempt ${phase.token})`;
    case 'finished': {
      const { stats } = phase;
      const took = `after ${stats.last_duration_ms ?? '?'} ms, ${stats.last_attempts ?? '?'} attempt(s)`;
      if (stats.last_outcome === 'swapped') {
        return `re-anchor of ${symbol} swapped in ${took}; book at update id ${stats.last_update_id ?? '?'}`;
      }
      const why = stats.last_failure === undefined ? '' : `; last failure: ${stats.last_failure}`;
      return `re-anchor of ${symbol} ended without a swap (${stats.last_outcome ?? 'unknown'}) ${took}${why}`;
    }
  }
}

/** Whether two phases read the same to an operator (so a line is printed only when it changes). */
function samePhase(a: RequestPhase | undefined, b: RequestPhase): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
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
          // The group first: a request queued before any sidecar started waits in it for the first listener, and
          // --wait can read its place (XPENDING on a stream without the group is an error, NOGROUP).
          await ensureRequestGroup(redis, keys);
          const before = await readOutcomeCounts(redis, keys, symbol);
          const id = await requestReanchor(redis, keys, { symbol, reason: 'operator', source: 'operator' });
          process.stderr.write(`reanchor: request ${id} queued for ${symbol}\n`);
          if (!options.wait) {
            process.stdout.write(`${JSON.stringify({ symbol, requestId: id })}\n`);
            return;
          }
          // Done when the stats count one more outcome after the request was acknowledged by a listener. Every
          // change of phase is one line of words on stderr; the final state is JSON on stdout.
          const deadline = Date.now() + timeoutS * 1000;
          let shown: RequestPhase | undefined;
          const takenBy = new Set<string>();
          let away = false;
          for (;;) {
            let status: ReanchorStatus;
            let consumer: string | undefined;
            try {
              status = await readReanchorStatus(redis, keys, symbol);
              consumer = await readRequestHolder(redis, keys, id);
            } catch (err) {
              // An outage or a failover: the request is kept in Redis; wait for it (said once) until --timeout.
              if (!isRetryable(err)) throw err;
              if (!away)
                process.stderr.write(`reanchor: redis unavailable (${(err as Error).message}); waiting\n`);
              away = true;
              if (Date.now() > deadline) {
                process.stderr.write(`reanchor: no outcome within ${timeoutS} s; redis still unavailable\n`);
                process.exitCode = 1;
                return;
              }
              await new Promise((resolve) => setTimeout(resolve, 500));
              continue;
            }
            if (away) process.stderr.write('reanchor: redis available again\n');
            away = false;
            const { running } = status;
            const counted =
              (status.stats.swapped ?? null) !== before[0] || (status.stats.failed ?? null) !== before[1];
            // Acknowledged: handed to a listener (at or before the group's last delivered id) and no longer pending.
            const acknowledged = consumer === undefined && streamIdAtMost(id, status.lastDeliveredId);
            const finished = acknowledged && running === null && counted;
            const phase: RequestPhase = finished
              ? { kind: 'finished', stats: status.stats }
              : running !== null
                ? { kind: 'running', token: running }
                : consumer !== undefined
                  ? { kind: 'taken', consumer }
                  : status.listeners === 0
                    ? { kind: 'no-listener' }
                    : { kind: 'queued', listeners: status.listeners };
            // A listener between its lock's release and its acknowledgement reads as "taken" again: said once.
            const retaken = phase.kind === 'taken' && takenBy.has(phase.consumer);
            if (!samePhase(shown, phase) && !retaken) {
              process.stderr.write(`reanchor: ${describePhase(symbol, phase)}\n`);
            }
            if (phase.kind === 'taken') takenBy.add(phase.consumer);
            shown = phase;
            if (finished) {
              process.stdout.write(`${JSON.stringify({ requestId: id, ...status })}\n`);
              if (status.stats.last_outcome !== 'swapped') process.exitCode = 1;
              return;
            }
            if (Date.now() > deadline) {
              process.stdout.write(`${JSON.stringify({ requestId: id, timedOut: true, ...status })}\n`);
              process.stderr.write(
                `reanchor: no outcome within ${timeoutS} s; the request stays queued (${describePhase(symbol, phase)})\n`,
              );
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
