import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Command } from 'commander';
import { loadConfig, STREAM_KINDS, type AppConfig, type StreamKind } from '../../config/config';
import {
  checkRedrive,
  DlqUsageError,
  formatLetterTable,
  isEntryId,
  isFiltering,
  letterJson,
  listOption,
  parseLimit,
  parseTimeOption,
  type DeadLetterEntry,
  type LetterFilter,
  type RedriveCheckContext,
} from '../../dlq/letters';
import { outcomeJson, outcomeLine, redriveExitCode, redriveLetters, summaryLine } from '../../dlq/redrive';
import { readLetter, readLetters, readLetterTotals, redisRedriveStore } from '../../dlq/store';
import { createKinesisClient, putRecordsWith } from '../../kinesis/put-records';
import { bytesToJson } from '../../sbe';
import { Keys } from '../../state/keys';
import { createRedisClient, type RedisClient } from '../../state/redis';

// `aggregator dlq list | show | redrive`: the dead letters of one stream (dlq:{<stream name>}) for an operator:
// listed and filtered, one shown decoded as far as it decodes, and re-driven to their Kinesis stream once the cause
// is fixed (src/dlq/). Results go to stdout, diagnostics and summaries to stderr.

/** Exit codes (also in --help and docs/dead-letters.md). */
export const DLQ_EXIT = {
  ok: 0,
  notAll: 1,
  usage: 2,
  redis: 3,
} as const;

/** `dlq list` prints at most this many letters unless --limit says otherwise. */
export const DEFAULT_LIST_LIMIT = 100;

const EXIT_HELP = `
Exit codes:
  0  done (list/show: printed; redrive: every selected letter re-driven and trimmed, or none selected;
     redrive --dry-run: every selected letter would be re-driven)
  1  show: no such letter; redrive: some selected letter was not re-driven: refused by the check (use --force),
     its put failed (kept), put but not trimmed, held by another re-drive, or an id not in the stream
  2  bad option or argument, or a config error
  3  Redis unreachable or refused a command (nothing was re-driven)
`;

interface CommonOptions {
  readonly stream: string;
}

interface FilterOptions extends CommonOptions {
  readonly code?: string[];
  readonly symbol?: string[];
  readonly since?: string;
  readonly until?: string;
  readonly limit?: string;
  readonly json?: boolean;
}

interface RedriveOptions extends FilterOptions {
  readonly all?: boolean;
  readonly dryRun?: boolean;
  readonly force?: boolean;
}

/** commander's usage errors (an unknown option, a missing --stream) exit 1; ours are 2 like every bad option. */
function usageExit(err: { readonly exitCode: number }): never {
  process.exit(err.exitCode === 0 ? 0 : DLQ_EXIT.usage);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The Kinesis stream named by --stream: a kind (trade, bestbidask, depth) or one of the configured names. */
export function resolveStream(config: AppConfig, text: string): string {
  const streams = config.aws.kinesis.streams;
  if ((STREAM_KINDS as readonly string[]).includes(text)) return streams[text as StreamKind];
  if (Object.values(streams).includes(text)) return text;
  throw new DlqUsageError(
    `--stream: expected a stream kind (${STREAM_KINDS.join(', ')}) or a configured stream name ` +
      `(${Object.values(streams).join(', ')}), got "${text}"`,
  );
}

function filterOf(options: FilterOptions, nowMs: number): LetterFilter {
  return {
    codes: listOption(options.code),
    symbols: listOption(options.symbol),
    sinceMs: options.since === undefined ? undefined : parseTimeOption('--since', options.since, nowMs),
    untilMs: options.until === undefined ? undefined : parseTimeOption('--until', options.until, nowMs),
  };
}

function withFilterOptions(command: Command): Command {
  return command
    .requiredOption('--stream <stream>', `stream kind (${STREAM_KINDS.join(', ')}) or configured stream name`)
    .option('--code <code>', 'only these error codes (repeatable, or comma-separated)', collect)
    .option('--symbol <symbol>', 'only these symbols (repeatable, or comma-separated)', collect)
    .option(
      '--since <time>',
      'dead-lettered at or after: ms since the epoch, ISO 8601, or a duration ago (30m, 2h, 7d)',
    )
    .option('--until <time>', 'dead-lettered at or before (same forms as --since)');
}

/** Runs one subcommand with the config, the keys and a Redis connection; maps errors to exit codes. */
async function withRedis(
  name: string,
  command: Command,
  run: (context: { config: AppConfig; keys: Keys; redis: RedisClient }) => Promise<number>,
): Promise<number> {
  let config: AppConfig;
  try {
    config = loadConfig(command.optsWithGlobals<{ config?: string }>().config, process.env);
  } catch (err) {
    process.stderr.write(`dlq ${name}: ${(err as Error).message}\n`);
    return DLQ_EXIT.usage;
  }
  const keys = new Keys({ clusterMode: config.redis.clusterMode });
  // Connects in the background; nothing is sent before the options are checked.
  const redis = createRedisClient(config.redis, { connectionName: `dlq-${name}` });
  // Connection errors surface as the commands' rejections (exit 3), not as ioredis' "Unhandled error event" lines.
  redis.on('error', () => undefined);
  try {
    return await run({ config, keys, redis });
  } catch (err) {
    if (err instanceof DlqUsageError) {
      process.stderr.write(`dlq ${name}: ${err.message}\n`);
      return DLQ_EXIT.usage;
    }
    process.stderr.write(
      `dlq ${name}: Redis at ${config.redis.host}:${config.redis.port}: ${(err as Error).message}\n`,
    );
    return DLQ_EXIT.redis;
  } finally {
    redis.disconnect();
  }
}

export function registerDlq(program: Command): void {
  const dlq = program
    .command('dlq')
    .description('dead letters of a stream (dlq:{<stream>}): list, show one decoded, re-drive to Kinesis')
    .addHelpText('after', EXIT_HELP)
    .exitOverride(usageExit);

  withFilterOptions(
    dlq
      .command('list')
      .description('list the dead letters of a stream, oldest first (a table, or JSON lines with --json)'),
  )
    .option('--limit <n>', `at most n letters (default ${DEFAULT_LIST_LIMIT})`)
    .option('--json', 'one JSON object per letter and line (JSON Lines) instead of the table')
    .addHelpText('after', EXIT_HELP)
    .exitOverride(usageExit)
    .action(async (options: FilterOptions, command: Command) => {
      process.exitCode = await withRedis('list', command, async ({ config, keys, redis }) => {
        const stream = resolveStream(config, options.stream);
        const filter = filterOf(options, Date.now());
        const limit = options.limit === undefined ? DEFAULT_LIST_LIMIT : parseLimit(options.limit);
        // One more than the limit says whether more match.
        const letters = await readLetters(redis, keys, stream, filter, limit + 1);
        const shown = letters.slice(0, limit);
        if (options.json) {
          for (const letter of shown) process.stdout.write(`${JSON.stringify(letterJson(letter))}\n`);
        } else {
          process.stdout.write(formatLetterTable(shown));
        }
        const totals = await readLetterTotals(redis, keys, stream);
        const counts = Object.entries(totals.counts)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([code, n]) => `${code}=${n}`)
          .join(' ');
        process.stderr.write(
          `dlq list (${stream}): ${shown.length} shown${letters.length > limit ? ` (limit ${limit}; more match)` : ''}; ` +
            `${totals.length} in ${keys.deadLetters(stream)} (cap ~${config.processing.deadLetterMaxLen}); ` +
            `dead-lettered since counting began: ${counts === '' ? 'none' : counts}\n`,
        );
        return DLQ_EXIT.ok;
      });
    });

  dlq
    .command('show')
    .description(
      'one dead letter as JSON: its fields, its bytes decoded as far as they decode, the re-drive check',
    )
    .argument('<id>', 'the entry id (first column of dlq list)')
    .requiredOption('--stream <stream>', `stream kind (${STREAM_KINDS.join(', ')}) or configured stream name`)
    .addHelpText('after', EXIT_HELP)
    .exitOverride(usageExit)
    .action(async (id: string, options: CommonOptions, command: Command) => {
      process.exitCode = await withRedis('show', command, async ({ config, keys, redis }) => {
        const stream = resolveStream(config, options.stream);
        if (!isEntryId(id))
          throw new DlqUsageError(`<id>: expected a stream entry id <ms>-<seq>, got "${id}"`);
        const letter = await readLetter(redis, keys, stream, id);
        if (letter === undefined) {
          process.stderr.write(`dlq show: ${id} is not in ${keys.deadLetters(stream)}\n`);
          return DLQ_EXIT.notAll;
        }
        const bytes = Buffer.from(letter.dataBase64, 'base64');
        const check = checkRedrive(bytes, checkContext(config));
        const view = {
          stream,
          ...letterJson(letter),
          decoded: bytesToJson(bytes),
          redrive_check: check.ok
            ? { ok: true, frames: check.frames }
            : { ok: false, code: check.code, reason: check.reason },
        };
        process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
        return DLQ_EXIT.ok;
      });
    });

  withFilterOptions(
    dlq
      .command('redrive')
      .description(
        "put selected dead letters' bytes back on their Kinesis stream, trimming each once Kinesis acknowledged it",
      )
      .argument('[ids...]', 'entry ids to re-drive (else the letters the filters select)'),
  )
    .option('--all', 'select every letter of the stream (needed when neither ids nor filters are given)')
    .option('--limit <n>', 'at most n letters (default: every selected one)')
    .option('--dry-run', 'select and check only: nothing is put or trimmed')
    .option('--force', 're-drive letters the check refuses (they will be dead-lettered or skipped again)')
    .option('--json', 'one JSON object per letter and line (JSON Lines)')
    .addHelpText('after', EXIT_HELP)
    .exitOverride(usageExit)
    .action(async (ids: string[], options: RedriveOptions, command: Command) => {
      process.exitCode = await withRedis('redrive', command, async ({ config, keys, redis }) => {
        const stream = resolveStream(config, options.stream);
        const filter = filterOf(options, Date.now());
        const limit = options.limit === undefined ? undefined : parseLimit(options.limit);
        for (const id of ids) {
          if (!isEntryId(id))
            throw new DlqUsageError(`<ids>: expected stream entry ids <ms>-<seq>, got "${id}"`);
        }
        if (ids.length > 0 && (isFiltering(filter) || options.all)) {
          throw new DlqUsageError(
            'give entry ids or filters (--code, --symbol, --since, --until, --all), not both',
          );
        }
        if (ids.length === 0 && !isFiltering(filter) && !options.all) {
          throw new DlqUsageError(
            'nothing selected: give entry ids, a filter (--code, --symbol, --since, --until) or --all',
          );
        }
        let selected: Array<DeadLetterEntry | { notFound: string }>;
        if (ids.length > 0) {
          selected = [];
          for (const id of [...new Set(ids)]) {
            selected.push((await readLetter(redis, keys, stream, id)) ?? { notFound: id });
          }
          if (limit !== undefined) selected = selected.slice(0, limit);
        } else {
          selected = await readLetters(redis, keys, stream, filter, limit);
        }
        const context = checkContext(config);
        const kinesis = options.dryRun ? undefined : kinesisClient(config);
        try {
          const outcomes = await redriveLetters(selected, {
            streamName: stream,
            store: redisRedriveStore(redis, keys, stream, `${os.hostname()}:${process.pid}:${randomUUID()}`),
            putRecords: kinesis
              ? putRecordsWith(kinesis)
              : () => Promise.reject(new Error('dry run: nothing is put')),
            check: (entry) => checkRedrive(Buffer.from(entry.dataBase64, 'base64'), context),
            force: options.force === true,
            dryRun: options.dryRun === true,
            onOutcome: (outcome) =>
              process.stdout.write(
                `${options.json ? JSON.stringify(outcomeJson(outcome)) : outcomeLine(outcome)}\n`,
              ),
          });
          process.stderr.write(`${summaryLine(outcomes, stream, options.dryRun === true)}\n`);
          return redriveExitCode(outcomes);
        } finally {
          kinesis?.destroy();
        }
      });
    });
}

/** The processors' view for the re-drive check: their clock is this machine's, their config the one given. */
function checkContext(config: AppConfig): RedriveCheckContext {
  return {
    clock: {
      nowUs: BigInt(Date.now()) * 1000n,
      maxFutureSkewUs: BigInt(config.processing.maxFutureSkewMs) * 1000n,
    },
    symbols: new Set(config.processing.symbols),
    unlisted: config.processing.unlistedSymbols,
  };
}

/** The replay's Kinesis client (HTTP/1.1, timeouts); dummy credentials only for an emulator endpoint. */
function kinesisClient(config: AppConfig) {
  const endpoint = config.aws.kinesis.endpoint;
  const credentials =
    endpoint !== undefined &&
    process.env.AWS_ACCESS_KEY_ID === undefined &&
    process.env.AWS_PROFILE === undefined
      ? { accessKeyId: 'local', secretAccessKey: 'local' }
      : undefined;
  return createKinesisClient({ region: config.aws.region, endpoint, credentials });
}
