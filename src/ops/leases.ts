import { DynamoDBClient, ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';

// Reads a KCL lease table (one per stream/application): who owns each shard and where it checkpointed.
// Also the pure parts of `aggregator checkpoints`: the liveness decision, the rows it prints (JSON and an
// aligned table) and the one-line explanation of a DynamoDB failure.

export interface LeaseRow {
  readonly shardId: string;
  readonly owner: string | undefined;
  readonly checkpoint: string | undefined;
  readonly checkpointSubSequenceNumber: number | undefined;
  readonly leaseCounter: number | undefined;
  readonly ownerSwitchesSinceCheckpoint: number | undefined;
}

export interface DynamoClientOptions {
  /** Give up connecting after this long (an unreachable endpoint fails instead of hanging). */
  readonly connectionTimeoutMs?: number;
  /** Fail a request (TimeoutError) that has not completed after this long. */
  readonly requestTimeoutMs?: number;
}

export function createDynamoClient(
  region: string,
  endpoint: string | undefined,
  options: DynamoClientOptions = {},
): DynamoDBClient {
  const timeouts = {
    ...(options.connectionTimeoutMs !== undefined ? { connectionTimeout: options.connectionTimeoutMs } : {}),
    ...(options.requestTimeoutMs !== undefined
      ? { requestTimeout: options.requestTimeoutMs, throwOnRequestTimeout: true }
      : {}),
  };
  const customHandler = Object.keys(timeouts).length > 0;
  return new DynamoDBClient({
    region,
    ...(endpoint !== undefined
      ? {
          endpoint,
          requestHandler: new NodeHttpHandler(timeouts),
          credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        }
      : customHandler
        ? { requestHandler: new NodeHttpHandler(timeouts) }
        : {}),
  });
}

function str(value: AttributeValue | undefined): string | undefined {
  return value?.S;
}
function num(value: AttributeValue | undefined): number | undefined {
  return value?.N === undefined ? undefined : Number(value.N);
}

export function toLeaseRow(item: Record<string, AttributeValue>): LeaseRow {
  return {
    shardId: str(item.leaseKey) ?? '?',
    owner: str(item.leaseOwner),
    checkpoint: str(item.checkpoint),
    checkpointSubSequenceNumber: num(item.checkpointSubSequenceNumber),
    leaseCounter: num(item.leaseCounter),
    ownerSwitchesSinceCheckpoint: num(item.ownerSwitchesSinceCheckpoint),
  };
}

export async function readLeases(client: DynamoDBClient, table: string): Promise<LeaseRow[]> {
  const rows: LeaseRow[] = [];
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: table, ExclusiveStartKey: startKey, ConsistentRead: true }),
    );
    for (const item of page.Items ?? []) rows.push(toLeaseRow(item));
    startKey = page.LastEvaluatedKey;
  } while (startKey !== undefined);
  return rows.sort((a, b) => a.shardId.localeCompare(b.shardId));
}

// ---------------------------------------------------------------------------------------------------------
// Liveness

/**
 * alive: the owner renewed the lease between the two reads (its leaseCounter moved);
 * stale: owned, but the counter did not move (the owner may be dead; another worker takes the lease after
 * failover_time_millis); unowned: no leaseOwner; ended: checkpoint SHARD_END (the shard is closed and fully
 * processed); unknown: not sampled (--no-sample), or the lease was not in both reads.
 */
export type Liveness = 'alive' | 'stale' | 'unowned' | 'ended' | 'unknown';

export const LIVENESS_TEXT: Readonly<Record<Liveness, string>> = {
  alive: 'alive',
  stale: 'stale (owner may be dead)',
  unowned: 'unowned',
  ended: 'ended',
  unknown: 'unknown',
};

export const SHARD_END = 'SHARD_END';

/** The decision from the latest read and, when sampled, the same lease read `sampleMs` earlier. */
export function leaseLiveness(latest: LeaseRow, earlier: LeaseRow | undefined): Liveness {
  if (latest.checkpoint === SHARD_END) return 'ended';
  if (latest.owner === undefined || latest.owner === '') return 'unowned';
  if (earlier === undefined || latest.leaseCounter === undefined || earlier.leaseCounter === undefined) {
    return 'unknown';
  }
  return latest.leaseCounter !== earlier.leaseCounter ? 'alive' : 'stale';
}

/** The longest default sample: with a large failover time, waiting a third of it would keep people waiting. */
export const MAX_DEFAULT_SAMPLE_MS = 15_000;

/**
 * The default time between the two reads: KCL renews every held lease about every failoverTimeMillis / 3,
 * so two renewal intervals contain a renewal of a live owner even when that renewal comes a whole interval
 * late (measured locally: up to 2.35 s between renewals for a 1.98 s interval on a loaded 2-core machine, so
 * 1.5 intervals would leave little margin). Capped at 15 s.
 */
export function defaultSampleMs(failoverTimeMillis: number): number {
  return Math.min(MAX_DEFAULT_SAMPLE_MS, Math.ceil((2 * failoverTimeMillis) / 3));
}

// ---------------------------------------------------------------------------------------------------------
// Rows

/** One shard as `aggregator checkpoints` reports it; the JSON form uses these field names, absent = null. */
export interface CheckpointRow {
  readonly stream: string;
  readonly kind: string;
  readonly table: string;
  readonly shardId: string;
  readonly owner: string | null;
  readonly checkpoint: string | null;
  readonly checkpointSubSequenceNumber: number | null;
  readonly leaseCounter: number | null;
  /** latest leaseCounter - the earlier one; null when not sampled or unknown. */
  readonly leaseCounterDelta: number | null;
  readonly ownerSwitchesSinceCheckpoint: number | null;
  readonly alive: Liveness;
  /** Time between the two reads; null with --no-sample. */
  readonly sampleMs: number | null;
}

/** The JSON field names, in output order (the command's --help lists them). */
export const CHECKPOINT_FIELDS: readonly (keyof CheckpointRow)[] = [
  'stream',
  'kind',
  'table',
  'shardId',
  'owner',
  'checkpoint',
  'checkpointSubSequenceNumber',
  'leaseCounter',
  'leaseCounterDelta',
  'ownerSwitchesSinceCheckpoint',
  'alive',
  'sampleMs',
];

export interface TableRead {
  readonly stream: string;
  readonly kind: string;
  readonly table: string;
  /** The latest read. */
  readonly latest: readonly LeaseRow[];
  /** The read `sampleMs` before it; undefined when not sampled. */
  readonly earlier: readonly LeaseRow[] | undefined;
  readonly sampleMs: number | undefined;
}

export function toCheckpointRows(read: TableRead): CheckpointRow[] {
  const before = new Map((read.earlier ?? []).map((row) => [row.shardId, row]));
  return read.latest.map((lease) => {
    const earlier = before.get(lease.shardId);
    const delta =
      earlier?.leaseCounter !== undefined && lease.leaseCounter !== undefined
        ? lease.leaseCounter - earlier.leaseCounter
        : null;
    return {
      stream: read.stream,
      kind: read.kind,
      table: read.table,
      shardId: lease.shardId,
      owner: lease.owner ?? null,
      checkpoint: lease.checkpoint ?? null,
      checkpointSubSequenceNumber: lease.checkpointSubSequenceNumber ?? null,
      leaseCounter: lease.leaseCounter ?? null,
      leaseCounterDelta: read.earlier === undefined ? null : delta,
      ownerSwitchesSinceCheckpoint: lease.ownerSwitchesSinceCheckpoint ?? null,
      alive: leaseLiveness(lease, read.earlier === undefined ? undefined : earlier),
      sampleMs: read.sampleMs ?? null,
    };
  });
}

/** One line of `--json`: every field of CHECKPOINT_FIELDS, in that order. */
export function checkpointJsonLine(row: CheckpointRow): string {
  const ordered: Record<string, unknown> = {};
  for (const field of CHECKPOINT_FIELDS) ordered[field] = row[field];
  return JSON.stringify(ordered);
}

interface Column {
  readonly header: string;
  readonly value: (row: CheckpointRow) => string;
  readonly right?: boolean;
}

const dash = (value: string | number | null): string => (value === null ? '-' : String(value));

const COLUMNS: readonly Column[] = [
  { header: 'STREAM', value: (r) => r.stream },
  { header: 'SHARD', value: (r) => r.shardId },
  { header: 'OWNER', value: (r) => dash(r.owner) },
  { header: 'CHECKPOINT', value: (r) => dash(r.checkpoint) },
  { header: 'SUBSEQ', value: (r) => dash(r.checkpointSubSequenceNumber), right: true },
  { header: 'COUNTER', value: (r) => dash(r.leaseCounter), right: true },
  { header: 'SWITCHES', value: (r) => dash(r.ownerSwitchesSinceCheckpoint), right: true },
  { header: 'ALIVE', value: (r) => LIVENESS_TEXT[r.alive] },
];

/** The table for people: a header and one line per shard, columns aligned, '-' for an absent value. */
export function formatCheckpointTable(rows: readonly CheckpointRow[]): string {
  const cells = [COLUMNS.map((c) => c.header), ...rows.map((row) => COLUMNS.map((c) => c.value(row)))];
  const widths = COLUMNS.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  return cells
    .map((line) =>
      line
        .map((cell, i) => (COLUMNS[i]!.right ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

// ---------------------------------------------------------------------------------------------------------
// Failures

export type DynamoFailureKind = 'missing-table' | 'credentials' | 'unreachable' | 'other';

export interface DynamoFailure {
  readonly kind: DynamoFailureKind;
  /** One line for people, naming what to fix. */
  readonly message: string;
}

export interface DynamoTarget {
  readonly table: string;
  readonly stream: string;
  readonly region: string;
  readonly endpoint: string | undefined;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function errorFields(err: unknown): { name: string; message: string; code: string | undefined } {
  if (typeof err !== 'object' || err === null)
    return { name: 'Error', message: String(err), code: undefined };
  const e = err as { name?: unknown; message?: unknown; code?: unknown; errors?: unknown };
  let code = typeof e.code === 'string' ? e.code : undefined;
  // Node's happy-eyeballs connect fails with an AggregateError whose parts carry the codes.
  if (code === undefined && Array.isArray(e.errors)) {
    for (const part of e.errors as unknown[]) {
      const partCode = (part as { code?: unknown } | null)?.code;
      if (typeof partCode === 'string') {
        code = partCode;
        break;
      }
    }
  }
  return {
    name: typeof e.name === 'string' ? e.name : 'Error',
    message: oneLine(typeof e.message === 'string' ? e.message : ''),
    code,
  };
}

export function dynamoEndpointText(region: string, endpoint: string | undefined): string {
  return endpoint ?? `https://dynamodb.${region}.amazonaws.com`;
}

/** What a failed read of a lease table means, as one line naming what to fix. */
export function classifyDynamoError(err: unknown, target: DynamoTarget): DynamoFailure {
  const { name, message, code } = errorFields(err);
  const cause = `${name}${message !== '' && message !== name ? `: ${message}` : ''}`;
  const at = dynamoEndpointText(target.region, target.endpoint);
  switch (name) {
    case 'ResourceNotFoundException':
      return {
        kind: 'missing-table',
        message:
          `lease table ${target.table} of stream ${target.stream} does not exist at ${at}: no KCL daemon ` +
          `has run for this stream with this kcl.application_name_prefix (or aws.region / the endpoint is wrong)`,
      };
    case 'CredentialsProviderError':
      return {
        kind: 'credentials',
        message:
          `no AWS credentials found (${cause}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and ` +
          `AWS_SECRET_ACCESS_KEY, or run where a role is available`,
      };
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'InvalidClientTokenId':
    case 'SignatureDoesNotMatch':
    case 'MissingAuthenticationTokenException':
      return {
        kind: 'credentials',
        message:
          `AWS rejected the credentials (${cause}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY ` +
          `(or the AWS_PROFILE in use) and aws.region ${target.region}`,
      };
    case 'ExpiredTokenException':
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
      return {
        kind: 'credentials',
        message:
          `the AWS session token has expired (${cause}): refresh the credentials ` +
          `(e.g. aws sso login, or a new AWS_SESSION_TOKEN)`,
      };
    case 'AccessDeniedException':
    case 'AccessDenied':
      return {
        kind: 'credentials',
        message:
          `access denied to lease table ${target.table} (${cause}): the AWS identity in use needs ` +
          `dynamodb:Scan on arn:aws:dynamodb:${target.region}:<account>:table/${target.table}`,
      };
  }
  if ((code !== undefined && NETWORK_CODES.has(code)) || name === 'TimeoutError') {
    return {
      kind: 'unreachable',
      message:
        `cannot reach DynamoDB at ${at} (${code ?? cause}): check aws.dynamodb.endpoint and aws.region ` +
        `in the config${target.endpoint !== undefined ? ', and that the local stack is up (aggregator stack status)' : ''}`,
    };
  }
  return {
    kind: 'other',
    message: `reading lease table ${target.table} of stream ${target.stream} failed: ${cause}`,
  };
}
