import { AggregatorError } from '../../common/errors';
import type { Command } from 'commander';
import {
  applicationName,
  loadConfig,
  STREAM_KINDS,
  type AppConfig,
  type StreamKind,
} from '../../config/config';
import {
  CHECKPOINT_FIELDS,
  checkpointJsonLine,
  classifyDynamoError,
  createDynamoClient,
  defaultSampleMs,
  dynamoEndpointText,
  formatCheckpointTable,
  readLeases,
  toCheckpointRows,
  type CheckpointRow,
  type DynamoFailure,
  type LeaseRow,
} from '../../ops/leases';

// `aggregator checkpoints`: the KCL lease tables of the three streams, one row per shard, with whether each
// lease looks alive (its leaseCounter read twice --sample-ms apart).

/** Exit codes (also in --help). */
export const CHECKPOINTS_EXIT = {
  ok: 0,
  missingTable: 1,
  credentials: 2,
  unreachable: 3,
  other: 4,
} as const;

const MAX_SAMPLE_MS = 300_000;

const HELP = `
Alive (ALIVE column, "alive" field): the tables are read twice --sample-ms apart (default 2 x
kcl.failover_time_millis / 3, at most 15000 ms: a live owner renews its lease, bumping leaseCounter,
about every failover_time_millis / 3; KCL itself lets another worker take a lease whose counter did not
move for failover_time_millis, so --sample-ms <failover_time_millis> is the strictest test):
  alive     owned and leaseCounter moved between the reads
  stale     owned but leaseCounter did not move: the owner may be dead (the table form prints
            "stale (owner may be dead)"); another worker takes it after failover_time_millis
  unowned   no leaseOwner
  ended     checkpoint SHARD_END (closed shard, fully processed)
  unknown   --no-sample (one read only), or the lease appeared between the reads

--json prints one object per shard and line with these fields (absent values are null):
  ${CHECKPOINT_FIELDS.slice(0, 7).join(', ')},
  ${CHECKPOINT_FIELDS.slice(7).join(', ')}
  stream/kind/table: the Kinesis stream, its kind (trade|bestbidask|depth) and lease table;
  owner: leaseOwner (KCL worker id); checkpoint: sequence number or TRIM_HORIZON/LATEST/SHARD_END;
  leaseCounterDelta: leaseCounter change between the two reads; sampleMs: time between them.
Diagnostics (missing tables, errors) go to stderr only.

Exit codes:
  0  every lease table was read
  1  some lease table does not exist (named with its stream on stderr; the others are shown)
  2  AWS credentials missing, invalid or expired, or access denied (one line on stderr naming the fix)
  3  the DynamoDB endpoint is unreachable
  4  any other error (bad option, config error, unexpected DynamoDB error)
`;

class FatalRead extends AggregatorError {
  constructor(readonly failure: DynamoFailure) {
    super(failure.message, { code: 'CHECKPOINTS_READ' });
  }
}

interface Target {
  readonly kind: StreamKind;
  readonly stream: string;
  readonly table: string;
}

export function registerCheckpoints(program: Command): void {
  program
    .command('checkpoints')
    .description(
      'show owner, checkpoint, lease counter and liveness of every shard from the KCL lease tables (DynamoDB)',
    )
    .option('--json', 'one JSON object per shard and line instead of a table (fields below)')
    .option('--sample-ms <ms>', 'time between the two reads that decide liveness (default: from the config)')
    .option('--no-sample', 'read once; liveness of owned leases is "unknown"')
    .addHelpText('after', HELP)
    .action(async (options: { json?: boolean; sampleMs?: string; sample: boolean }, command: Command) => {
      process.exitCode = await runCheckpoints(command.optsWithGlobals<{ config?: string }>().config, options);
    });
}

async function runCheckpoints(
  configFile: string | undefined,
  options: { json?: boolean; sampleMs?: string; sample: boolean },
): Promise<number> {
  let config: AppConfig;
  try {
    config = loadConfig(configFile, process.env);
  } catch (err) {
    process.stderr.write(`checkpoints: ${(err as Error).message}\n`);
    return CHECKPOINTS_EXIT.other;
  }
  let sampleMs: number | undefined;
  if (options.sample) {
    sampleMs =
      options.sampleMs === undefined
        ? defaultSampleMs(config.kcl.failoverTimeMillis)
        : Number(options.sampleMs);
    if (!Number.isInteger(sampleMs) || sampleMs < 1 || sampleMs > MAX_SAMPLE_MS) {
      process.stderr.write(
        `checkpoints: --sample-ms must be an integer in 1..${MAX_SAMPLE_MS}, got ${options.sampleMs}\n`,
      );
      return CHECKPOINTS_EXIT.other;
    }
  }
  const targets: Target[] = STREAM_KINDS.map((kind) => ({
    kind,
    stream: config.aws.kinesis.streams[kind],
    table: applicationName(config, kind),
  }));
  const client = createDynamoClient(config.aws.region, config.aws.dynamodb.endpoint, {
    connectionTimeoutMs: 5000,
    requestTimeoutMs: 15000,
  });
  const missing = new Set<string>();
  /** Reads one table; undefined when it does not exist (reported once); throws FatalRead otherwise. */
  const read = async (target: Target): Promise<LeaseRow[] | undefined> => {
    try {
      return await readLeases(client, target.table);
    } catch (err) {
      const failure = classifyDynamoError(err, {
        table: target.table,
        stream: target.stream,
        region: config.aws.region,
        endpoint: config.aws.dynamodb.endpoint,
      });
      if (failure.kind !== 'missing-table') throw new FatalRead(failure);
      if (!missing.has(target.table)) process.stderr.write(`checkpoints: ${failure.message}\n`);
      missing.add(target.table);
      return undefined;
    }
  };
  try {
    const first = new Map<Target, LeaseRow[]>();
    for (const target of targets) {
      const rows = await read(target);
      if (rows !== undefined) first.set(target, rows);
    }
    let latest = first;
    if (sampleMs !== undefined && first.size > 0) {
      await new Promise((resolve) => setTimeout(resolve, sampleMs));
      latest = new Map();
      for (const target of first.keys()) {
        const rows = await read(target);
        if (rows !== undefined) latest.set(target, rows);
      }
    }
    const rows: CheckpointRow[] = [];
    for (const [target, leases] of latest) {
      if (leases.length === 0) {
        process.stderr.write(
          `checkpoints: lease table ${target.table} of stream ${target.stream} has no leases yet\n`,
        );
      }
      rows.push(
        ...toCheckpointRows({
          ...target,
          latest: leases,
          earlier: sampleMs === undefined ? undefined : first.get(target),
          sampleMs,
        }),
      );
    }
    if (options.json) {
      for (const row of rows) process.stdout.write(`${checkpointJsonLine(row)}\n`);
    } else if (latest.size > 0) {
      process.stdout.write(formatCheckpointTable(rows));
      process.stdout.write(
        sampleMs === undefined
          ? '(read once: liveness of owned leases unknown)\n'
          : `(alive = leaseCounter moved within ${sampleMs} ms; failover_time_millis ${config.kcl.failoverTimeMillis})\n`,
      );
    }
    return missing.size > 0 ? CHECKPOINTS_EXIT.missingTable : CHECKPOINTS_EXIT.ok;
  } catch (err) {
    if (err instanceof FatalRead) {
      process.stderr.write(`checkpoints: ${err.message}\n`);
      const kind = err.failure.kind;
      return kind === 'credentials'
        ? CHECKPOINTS_EXIT.credentials
        : kind === 'unreachable'
          ? CHECKPOINTS_EXIT.unreachable
          : CHECKPOINTS_EXIT.other;
    }
    process.stderr.write(
      `checkpoints: reading the lease tables at ${dynamoEndpointText(config.aws.region, config.aws.dynamodb.endpoint)} failed: ${(err as Error).message}\n`,
    );
    return CHECKPOINTS_EXIT.other;
  } finally {
    client.destroy();
  }
}
