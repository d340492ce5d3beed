import type { Command } from 'commander';
import { runFeaturesVerify, type EventSource } from '../../app/features-verify';
import { DEFAULT_MAX_FUTURE_SKEW_MS } from '../../events/validate';
import { formatResult } from '../../features/verify';

// `aggregator features verify`: training/serving parity (src/app/features-verify.ts). Prints one line per served
// vector and a summary; exit 1 on any mismatch.

interface VerifyCliOptions {
  symbol: string;
  redisUrl: string;
  scratchUrl: string;
  events?: string;
  simSeed?: string;
  simCount?: string;
  simSymbols?: string;
  simStartUs?: string;
  count?: string;
  clusterMode?: boolean;
  levels: string;
  maxFutureSkewMs: string;
}

/** The event source the options name: --events, else the simulator with --sim-seed. */
function eventSource(opts: VerifyCliOptions): EventSource {
  if (opts.events !== undefined) return { kind: 'file', path: opts.events };
  if (opts.simSeed !== undefined)
    return {
      kind: 'simulator',
      seed: Number(opts.simSeed),
      symbols: (opts.simSymbols ?? opts.symbol).split(','),
      startTimeUs: BigInt(opts.simStartUs ?? '1700000000000000'),
      count: Number(opts.simCount ?? '10000'),
    };
  throw new Error('give --events <file> or --sim-seed <n>');
}

export function registerFeaturesVerify(featuresCommand: Command): void {
  featuresCommand
    .command('verify')
    .description(
      'training/serving parity: replay an event log into a scratch Redis up to each served vector watermarks, ' +
        'recompute and compare; exit 1 on any mismatch',
    )
    .requiredOption('--symbol <symbol>', 'symbol whose served vectors are verified')
    .requiredOption('--redis-url <url>', 'Redis holding feat:<S>:history (read only)')
    .requiredOption(
      '--scratch-url <url>',
      'scratch Redis URL with a database (redis://host:port/15): FLUSHED',
    )
    .option('--events <file>', 'event log: one hex SBE frame per line, stream order')
    .option('--sim-seed <n>', 'replay the simulator with this seed instead of a file')
    .option('--sim-count <n>', 'simulator events', '10000')
    .option('--sim-symbols <list>', 'simulator symbols, comma separated (default: --symbol)')
    .option('--sim-start-us <us>', 'simulator start time, us since the epoch', '1700000000000000')
    .option('--count <n>', 'verify only the oldest n served vectors')
    .option('--cluster-mode', 'hash-tagged key names (redis.cluster_mode)')
    .option('--levels <n>', 'processing.order_book_levels of the served state', '10')
    .option(
      '--max-future-skew-ms <ms>',
      'processing.max_future_skew_ms of the serving sidecar',
      String(DEFAULT_MAX_FUTURE_SKEW_MS),
    )
    .action(async (opts: VerifyCliOptions) => {
      if (opts.scratchUrl === opts.redisUrl)
        throw new Error('--scratch-url must differ from --redis-url (the scratch database is flushed)');
      const maxFutureSkewMs = Number(opts.maxFutureSkewMs);
      if (opts.maxFutureSkewMs.trim() === '' || !Number.isInteger(maxFutureSkewMs) || maxFutureSkewMs < 0)
        throw new Error(
          `--max-future-skew-ms must be a non-negative integer, got ${JSON.stringify(opts.maxFutureSkewMs)}`,
        );
      const summary = await runFeaturesVerify({
        symbol: opts.symbol,
        redisUrl: opts.redisUrl,
        scratchUrl: opts.scratchUrl,
        events: eventSource(opts),
        ...(opts.count === undefined ? {} : { count: Number(opts.count) }),
        clusterMode: opts.clusterMode === true,
        orderBookLevels: Number(opts.levels),
        maxFutureSkewMs,
        onResult: (r) => process.stdout.write(`${formatResult(r)}\n`),
      });
      process.stdout.write(
        `verified ${summary.vectors} vectors of ${opts.symbol}: ${summary.vectors - summary.mismatched} ok, ` +
          `${summary.mismatched} mismatched\n`,
      );
      if (summary.mismatched > 0) process.exitCode = 1;
    });
}
