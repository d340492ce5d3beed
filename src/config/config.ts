import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigError } from './errors';
import { ConfigReader } from './reader';
import { DEFAULT_MAX_FUTURE_SKEW_MS } from '../events/validate';

// The service configuration, parsed and validated once at the edge (the CLI). Nothing below the CLI reads
// process.env or a file: it receives an AppConfig. The YAML shape follows the seed's config/aggregator.yaml.

export type StreamKind = 'trade' | 'bestbidask' | 'depth';
export const STREAM_KINDS: readonly StreamKind[] = ['trade', 'bestbidask', 'depth'];

export interface KinesisConfig {
  /** Absent for real AWS; set to the emulator's URL locally (http://127.0.0.1:4568). */
  readonly endpoint: string | undefined;
  readonly streams: Readonly<Record<StreamKind, string>>;
  readonly initialPosition: 'LATEST' | 'TRIM_HORIZON';
  readonly maxRecordsPerPoll: number;
  readonly pollIntervalMs: number;
}

export interface AwsConfig {
  readonly region: string;
  readonly kinesis: KinesisConfig;
  readonly dynamodb: { readonly endpoint: string | undefined };
}

export interface KclConfig {
  /** Lease table / application name of a stream = `${applicationNamePrefix}-${kind}`. */
  readonly applicationNamePrefix: string;
  /** Stable per task so a restarted worker re-claims its own leases at once. */
  readonly workerId: string | undefined;
  readonly failoverTimeMillis: number;
  readonly shardSyncIntervalMillis: number;
  readonly shutdownGraceMillis: number;
  readonly timeoutInSeconds: number;
  readonly metricsLevel: 'NONE' | 'SUMMARY' | 'DETAILED';
}

export interface RedisConfig {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly clusterMode: boolean;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
  readonly maxConnections: number;
  readonly socketTimeoutSeconds: number;
  readonly socketConnectTimeoutSeconds: number;
}

export interface ProcessingConfig {
  readonly symbols: readonly string[];
  readonly featureUpdateIntervalSeconds: number;
  readonly orderBookLevels: number;
  /**
   * The ride-through bound: how long a processRecords batch waits out a Redis outage (connection failures,
   * timeouts, LOADING, a failover's READONLY/MASTERDOWN/CLUSTERDOWN/TRYAGAIN), retrying with capped jittered
   * backoff, before the child exits without acknowledging it. Default 3 min: an ElastiCache failover or node
   * replacement takes tens of seconds, sometimes minutes; kcl.timeout_in_seconds must exceed it.
   */
  readonly batchDeadlineMs: number;
  /** At most this many retries of one batch within the deadline (default 1000: the deadline ends the wait first). */
  readonly redisRetries: number;
  readonly deadLetterMaxLen: number;
  /** Depth diffs kept per symbol while its book is out of sync (for the re-anchor to replay). */
  readonly diffBufferMaxLength: number;
  /** Approximate cap of each feat:<SYMBOL>:history stream (vectors as served). */
  readonly featureHistoryMaxLen: number;
  /**
   * How far an event or trade time may be ahead of the processor's clock (further: dead-lettered FUTURE_TIME), and
   * how far ahead of the sidecar's clock an input time may be and still count as known.
   */
  readonly maxFutureSkewMs: number;
  /** Events of symbols outside `symbols`: skipped and counted (default), or applied like the listed ones. */
  readonly unlistedSymbols: UnlistedSymbolPolicy;
}

export type UnlistedSymbolPolicy = 'skip' | 'apply';
export const UNLISTED_SYMBOL_POLICIES: readonly UnlistedSymbolPolicy[] = ['skip', 'apply'];

/**
 * The most diffs a symbol's buffer may keep: the re-anchor swap replays the whole buffer in one script call, which
 * must stay short (docs/architecture.md, "Bounded script calls": the measured cost per buffered diff).
 */
export const MAX_DIFF_BUFFER_LENGTH = 5000;

/**
 * kcl.timeout_in_seconds must exceed processing.batch_deadline_ms (rounded up to seconds) by more than this: after
 * its last Redis attempt a child still checkpoints and answers the daemon, which halts the JVM when a child misses
 * the timeout.
 */
export const KCL_TIMEOUT_MARGIN_SECONDS = 5;

export interface ReanchorRestConfig {
  /** A Binance-compatible REST base URL (https://data-api.binance.vision; the simulated exchange locally). */
  readonly baseUrl: string;
  /** Levels per side of GET /api/v3/depth (1..5000). */
  readonly depthLimit: number;
  /** Trades of GET /api/v3/trades (1..1000). */
  readonly tradesLimit: number;
  readonly timeoutMs: number;
  /** Retries of one REST request inside the client (timeouts, 5xx, 429 with a short Retry-After). */
  readonly maxRetries: number;
  readonly weightPerMinute: number;
  /** A ban (429/418 Retry-After) ending within this is waited for by a running re-anchor; a longer one ends it. */
  readonly maxBanWaitSeconds: number;
}

export interface ReanchorConfig {
  /** Run a re-anchor listener in each sidecar and let processors and sidecars request re-anchors. */
  readonly enabled: boolean;
  readonly rest: ReanchorRestConfig;
  /** Attempts (REST, build, swap) of one re-anchor before it is given up and counted as failed. */
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** A request a listener left unacknowledged this long (it died) is claimed by another listener. */
  readonly claimIdleMs: number;
  /** The sidecar requests a re-anchor when a symbol's book data is older than this, or out of sync this long. */
  readonly staleAfterSeconds: number;
  /** Automatic requests (processor, sidecar) for one symbol are at most one per this interval per process. */
  readonly requestIntervalSeconds: number;
}

export interface AppConfig {
  readonly serviceName: string;
  /** Absolute path of the file this config came from ('' when built from defaults only). */
  readonly sourceFile: string;
  readonly aws: AwsConfig;
  readonly kcl: KclConfig;
  readonly redis: RedisConfig;
  readonly processing: ProcessingConfig;
  readonly reanchor: ReanchorConfig;
  readonly health: { readonly host: string; readonly port: number };
  readonly metrics: { readonly enablePrometheus: boolean; readonly prometheusPort: number };
  readonly logging: { readonly level: LogLevel; readonly file: string | undefined };
}

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

/**
 * The environment variables that override the file (docs/configuration.md): what a deployment injects, secrets
 * included (ECS `secrets` from Secrets Manager or SSM). REDIS_URL replaces the file's redis.url and its parts win
 * over the file's keys; each single variable wins over both. No value of REDIS_URL or REDIS_PASSWORD is ever shown
 * in an error.
 */
export interface ConfigEnv {
  readonly CONFIG_FILE?: string | undefined;
  readonly REDIS_URL?: string | undefined;
  readonly REDIS_HOST?: string | undefined;
  readonly REDIS_PORT?: string | undefined;
  readonly REDIS_USERNAME?: string | undefined;
  readonly REDIS_PASSWORD?: string | undefined;
  readonly REDIS_TLS?: string | undefined;
  readonly REDIS_CLUSTER_MODE?: string | undefined;
  readonly AWS_REGION?: string | undefined;
}

/** "true"/"false" (also 1/0, yes/no) of an environment variable; anything else is an error naming it. */
function envBoolean(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined || value === '') return undefined;
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(v)) return true;
  if (['false', '0', 'no'].includes(v)) return false;
  throw new ConfigError(name, `expected true or false, got ${JSON.stringify(value)}`);
}

const SYMBOL_PATTERN = /^[A-Z0-9]{2,20}$/;

interface RedisUrlParts {
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly db: number;
  readonly tls: boolean;
}

function decodeUserInfo(text: string, what: 'user' | 'password'): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ConfigError('redis.url', `the ${what} is not valid percent-encoding (value not shown)`);
  }
}

/**
 * A setting that may hold a secret: the reader's type error would echo a non-string value (`password: 123456`
 * gives "got number 123456"), so the error is rethrown with the value's type only.
 */
function secretString(section: ConfigReader, key: string): string | undefined {
  try {
    return section.optionalString(key);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const problem = err.problem.replace(
      /^(.* got (?:number|boolean|string|bigint)) .*$/s,
      '$1 (value not shown)',
    );
    throw new ConfigError(err.key, problem);
  }
}

/**
 * redis://[user[:password]@]host[:port][/db] or rediss://... (TLS). Errors never show the URL or any part of it
 * that may hold the password.
 */
export function parseRedisUrl(text: string | undefined, key = 'redis.url'): RedisUrlParts | undefined {
  if (text === undefined) return undefined;
  try {
    return parseRedisUrlText(text);
  } catch (err) {
    if (err instanceof ConfigError && key !== 'redis.url') throw new ConfigError(key, err.problem);
    throw err;
  }
}

function parseRedisUrlText(text: string): RedisUrlParts {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Never echoed: the text may hold a password.
    throw new ConfigError(
      'redis.url',
      'is not a URL (redis://[user[:password]@]host[:port][/db]; value not shown)',
    );
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(
      'redis.url',
      `must start with redis:// or rediss://, got ${JSON.stringify(url.protocol)}`,
    );
  }
  const dbText = url.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) {
    // Not echoed: an unencoded '/' in a password ends the authority, putting the rest of it in the path.
    throw new ConfigError('redis.url', 'the path must be a database number (value not shown)');
  }
  const port = url.port === '' ? 6379 : Number(url.port);
  return {
    host: url.hostname,
    port,
    username: url.username === '' ? undefined : decodeUserInfo(url.username, 'user'),
    password: url.password === '' ? undefined : decodeUserInfo(url.password, 'password'),
    db: dbText === '' ? 0 : Number(dbText),
    tls: url.protocol === 'rediss:',
  };
}

/** Builds a validated AppConfig from an already-parsed YAML document and env overrides. Pure. */
export function parseConfig(document: unknown, env: ConfigEnv = {}, sourceFile = ''): AppConfig {
  const root = ConfigReader.root(document);
  const baseDir = sourceFile === '' ? process.cwd() : path.dirname(sourceFile);

  const serviceName = root.string('service_name', 'bitcoin-aggregator');

  const awsSection = root.section('aws');
  // Read (and validate) the file's value even when the env overrides it, so done() does not reject it as unknown.
  const fileRegion = awsSection.string('region', 'us-east-1');
  const region = env.AWS_REGION ?? fileRegion;
  const kinesisSection = awsSection.section('kinesis');
  const kinesisEndpoint = kinesisSection.optionalString('endpoint');
  const streamsSection = kinesisSection.section('streams');
  const streams = {
    trade: streamsSection.string('trade', 'market-sbe-trade'),
    bestbidask: streamsSection.string('bestbidask', 'market-sbe-bestbidask'),
    depth: streamsSection.string('depth', 'market-sbe-depth'),
  };
  streamsSection.done();
  const consumer = kinesisSection.section('consumer_config');
  const kinesis: KinesisConfig = {
    endpoint: kinesisEndpoint,
    streams,
    initialPosition: consumer.oneOf('shard_iterator_type', ['LATEST', 'TRIM_HORIZON'] as const, 'LATEST'),
    maxRecordsPerPoll: consumer.integer('max_records_per_poll', 1000, 1, 10000),
    pollIntervalMs: consumer.integer('poll_interval_ms', 200, 1, 60000),
  };
  consumer.done();
  kinesisSection.done();
  const dynamoSection = awsSection.section('dynamodb');
  const dynamodb = { endpoint: dynamoSection.optionalString('endpoint') };
  dynamoSection.done();
  awsSection.done();
  if (region.trim() === '') throw new ConfigError('aws.region', 'must not be empty');

  const kclSection = root.section('kcl');
  const kcl: KclConfig = {
    applicationNamePrefix: kclSection.string('application_name_prefix', serviceName),
    workerId: kclSection.optionalString('worker_id'),
    failoverTimeMillis: kclSection.integer('failover_time_millis', 10000, 1000, 600000),
    shardSyncIntervalMillis: kclSection.integer('shard_sync_interval_millis', 60000, 1000, 3600000),
    shutdownGraceMillis: kclSection.integer('shutdown_grace_millis', 30000, 0, 600000),
    timeoutInSeconds: kclSection.integer('timeout_in_seconds', 240, 1, 3600),
    metricsLevel: kclSection.oneOf('metrics_level', ['NONE', 'SUMMARY', 'DETAILED'] as const, 'NONE'),
  };
  kclSection.done();

  const redisSection = root.section('redis');
  const redisPortRaw = env.REDIS_PORT;
  if (redisPortRaw !== undefined && !/^\d+$/.test(redisPortRaw)) {
    throw new ConfigError(
      'REDIS_PORT',
      `expected an integer in 1..65535, got ${JSON.stringify(redisPortRaw)}`,
    );
  }
  const filePort = redisSection.integer('port', 6379, 1, 65535);
  const port = redisPortRaw !== undefined ? Number(redisPortRaw) : filePort;
  const fileHost = redisSection.string('host', '127.0.0.1');
  if (port < 1 || port > 65535)
    throw new ConfigError('REDIS_PORT', `expected an integer in 1..65535, got ${port}`);
  // A URL (redis:// or rediss:// for TLS) may carry host, port, user, password and db in one setting;
  // the separate keys and the env overrides still win where they are given.
  const fileUrl = parseRedisUrl(secretString(redisSection, 'url'));
  const envUrl = parseRedisUrl(env.REDIS_URL === '' ? undefined : env.REDIS_URL, 'REDIS_URL');
  const url = envUrl ?? fileUrl;
  // REDIS_URL's parts win over the file's keys; a single variable over both.
  const explicitPort = redisPortRaw !== undefined || (envUrl === undefined && redisSection.has('port'));
  const fileHostGiven = envUrl === undefined && redisSection.has('host');
  const fileDb = redisSection.integer('db', url?.db ?? 0, 0, 15);
  const fileUsername = redisSection.optionalString('username');
  const filePassword = secretString(redisSection, 'password');
  const fileTls = redisSection.boolean('tls', url?.tls ?? false);
  const redis: RedisConfig = {
    host: env.REDIS_HOST || (fileHostGiven || url === undefined ? fileHost : url.host),
    port: explicitPort || url === undefined ? port : url.port,
    db: envUrl !== undefined ? envUrl.db : fileDb,
    clusterMode:
      envBoolean('REDIS_CLUSTER_MODE', env.REDIS_CLUSTER_MODE) ?? redisSection.boolean('cluster_mode', false),
    username:
      env.REDIS_USERNAME || (envUrl !== undefined ? envUrl.username : (fileUsername ?? url?.username)),
    password:
      env.REDIS_PASSWORD || (envUrl !== undefined ? envUrl.password : (filePassword ?? url?.password)),
    tls: envBoolean('REDIS_TLS', env.REDIS_TLS) ?? (envUrl !== undefined ? envUrl.tls : fileTls),
    maxConnections: redisSection.integer('max_connections', 50, 1, 10000),
    socketTimeoutSeconds: redisSection.integer('socket_timeout_seconds', 1, 1, 600),
    socketConnectTimeoutSeconds: redisSection.integer('socket_connect_timeout_seconds', 1, 1, 600),
  };
  redisSection.unsupported(
    'connection_pool_size',
    'a processor uses one connection with auto-pipelining, a Redis Cluster client one per node (remove the key)',
  );
  redisSection.done();

  const processingSection = root.section('processing');
  const symbols = processingSection.stringList('symbols', ['BTCUSDT']);
  for (const [i, symbol] of symbols.entries()) {
    if (!SYMBOL_PATTERN.test(symbol)) {
      throw new ConfigError(
        `processing.symbols[${i}]`,
        `expected an upper-case symbol like BTCUSDT, got "${symbol}"`,
      );
    }
  }
  const processing: ProcessingConfig = {
    symbols,
    featureUpdateIntervalSeconds: processingSection.integer('feature_update_interval_seconds', 2, 1, 3600),
    orderBookLevels: processingSection.integer('order_book_levels', 10, 1, 20),
    batchDeadlineMs: processingSection.integer('batch_deadline_ms', 180000, 100, 600000),
    redisRetries: processingSection.integer('redis_retries', 1000, 0, 100000),
    deadLetterMaxLen: processingSection.integer('dead_letter_max_len', 100000, 100, 100000000),
    diffBufferMaxLength: processingSection.integer(
      'diff_buffer_max_length',
      1000,
      10,
      MAX_DIFF_BUFFER_LENGTH,
    ),
    featureHistoryMaxLen: processingSection.integer('feature_history_max_len', 3600, 10, 10000000),
    maxFutureSkewMs: processingSection.integer('max_future_skew_ms', DEFAULT_MAX_FUTURE_SKEW_MS, 0, 3600000),
    unlistedSymbols: processingSection.oneOf('unlisted_symbols', UNLISTED_SYMBOL_POLICIES, 'skip'),
  };
  // The windows are the contract's tr:<S>:1s and tr:<S>:5s (key names and the features depend on them).
  const windows = processingSection.integerList('trade_window_sizes', [1, 5], 1, 3600);
  if (windows.length !== 2 || windows[0] !== 1 || windows[1] !== 5) {
    throw new ConfigError(
      'processing.trade_window_sizes',
      `only [1, 5] is supported (the windows tr:<S>:1s and tr:<S>:5s are the contract with the readers), got ${JSON.stringify(windows)}`,
    );
  }
  processingSection.unsupported(
    'batch_size',
    'a batch is what the daemon delivers: set aws.kinesis.consumer_config.max_records_per_poll (remove the key)',
  );
  processingSection.unsupported(
    'flush_interval_ms',
    'a batch is written as soon as the daemon delivers it: set aws.kinesis.consumer_config.poll_interval_ms (remove the key)',
  );
  processingSection.done();
  const deadlineSeconds = Math.ceil(processing.batchDeadlineMs / 1000);
  if (kcl.timeoutInSeconds <= deadlineSeconds + KCL_TIMEOUT_MARGIN_SECONDS) {
    throw new ConfigError(
      'kcl.timeout_in_seconds',
      `must exceed processing.batch_deadline_ms (${deadlineSeconds} s) by more than ` +
        `${KCL_TIMEOUT_MARGIN_SECONDS} s, or the daemon halts while a batch is still retrying`,
    );
  }

  const reanchorSection = root.section('reanchor');
  const restSection = reanchorSection.section('rest');
  const rest: ReanchorRestConfig = {
    baseUrl: restSection.string('base_url', 'https://data-api.binance.vision'),
    depthLimit: restSection.integer('depth_limit', 1000, 1, 5000),
    tradesLimit: restSection.integer('trades_limit', 1000, 1, 1000),
    timeoutMs: restSection.integer('timeout_ms', 5000, 100, 120000),
    maxRetries: restSection.integer('max_retries', 3, 0, 20),
    weightPerMinute: restSection.integer('weight_per_minute', 6000, 1, 1000000),
    maxBanWaitSeconds: restSection.integer('max_ban_wait_seconds', 300, 0, 86400),
  };
  restSection.done();
  if (!/^https?:\/\/[^/]+\/?$/.test(rest.baseUrl)) {
    throw new ConfigError(
      'reanchor.rest.base_url',
      `expected http(s)://host[:port], got ${JSON.stringify(rest.baseUrl)}`,
    );
  }
  const reanchor: ReanchorConfig = {
    enabled: reanchorSection.boolean('enabled', true),
    rest,
    maxAttempts: reanchorSection.integer('max_attempts', 5, 1, 100),
    backoffBaseMs: reanchorSection.integer('backoff_base_ms', 500, 0, 600000),
    backoffMaxMs: reanchorSection.integer('backoff_max_ms', 10000, 0, 600000),
    claimIdleMs: reanchorSection.integer('claim_idle_ms', 30000, 100, 3600000),
    staleAfterSeconds: reanchorSection.integer('stale_after_seconds', 30, 1, 86400),
    requestIntervalSeconds: reanchorSection.integer('request_interval_seconds', 30, 1, 86400),
  };
  reanchorSection.done();

  const healthSection = root.section('health');
  const health = {
    host: healthSection.string('host', '0.0.0.0'),
    port: healthSection.integer('port', 8082, 0, 65535),
  };
  healthSection.done();

  const metricsSection = root.section('metrics');
  const metrics = {
    enablePrometheus: metricsSection.boolean('enable_prometheus', true),
    prometheusPort: metricsSection.integer('prometheus_port', 9091, 0, 65535),
  };
  metricsSection.done();

  const loggingSection = root.section('logging');
  const loggingFile = loggingSection.optionalString('file');
  const logging = {
    level: loggingSection.oneOf('level', LOG_LEVELS, 'info'),
    file: loggingFile === undefined ? undefined : path.resolve(baseDir, loggingFile),
  };
  loggingSection.done();

  root.done();
  return {
    serviceName,
    sourceFile,
    aws: { region, kinesis, dynamodb },
    kcl,
    redis,
    processing,
    reanchor,
    health,
    metrics,
    logging,
  };
}

/**
 * Loads the config file named by `file`, else CONFIG_FILE, else config/aggregator.yaml, applies the env
 * overrides and validates. Errors are ConfigErrors with the key (or the file) named.
 */
export function loadConfig(file: string | undefined, env: ConfigEnv): AppConfig {
  const chosen = path.resolve(file ?? env.CONFIG_FILE ?? 'config/aggregator.yaml');
  let text: string;
  try {
    text = fs.readFileSync(chosen, 'utf8');
  } catch (err) {
    throw new ConfigError('', `cannot read config file ${chosen}: ${(err as Error).message}`);
  }
  let document: unknown;
  try {
    document = YAML.parse(text);
  } catch (err) {
    // The parser's first line only ("... at line 3, column 13"): the excerpt after it quotes the file's text,
    // which may be a password.
    const reason = ((err as Error).message.split('\n')[0] ?? '').replace(/:\s*$/, '');
    throw new ConfigError('', `config file ${chosen} is not valid YAML: ${reason}`);
  }
  return parseConfig(document, env, chosen);
}

/** The KCL application (and lease table) name of one stream. */
export function applicationName(config: AppConfig, kind: StreamKind): string {
  return `${config.kcl.applicationNamePrefix}-${kind}`;
}
