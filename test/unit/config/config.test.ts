import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { applicationName, loadConfig, parseConfig } from '../../../src/config/config';
import type { AppConfig, ConfigEnv } from '../../../src/config/config';
import { ConfigError } from '../../../src/config/errors';
import { repoRoot } from '../../helpers/paths';

const productionFile = path.join(repoRoot, 'config', 'aggregator.yaml');
const localFile = path.join(repoRoot, 'config', 'local.yaml');

/** Runs `fn`, which must throw a ConfigError; returns it. */
function catchConfigError(fn: () => unknown): ConfigError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, 'expected a ConfigError').to.be.instanceOf(ConfigError);
  return thrown as ConfigError;
}

/** Runs `fn`, which must throw a ConfigError with exactly `message`; returns it for further checks. */
function expectConfigError(fn: () => unknown, message: string): ConfigError {
  const error = catchConfigError(fn);
  expect(error.message).to.equal(message);
  expect(error.name).to.equal('ConfigError');
  return error;
}

/** A one-section YAML-shaped document: { section: { key: value } }. */
function doc(section: string, key: string, value: unknown): Record<string, unknown> {
  return { [section]: { [key]: value } };
}

describe('config', () => {
  let tmpDir: string;

  before(() => {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'config-test-'));
  });

  after(() => {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  function writeTmp(name: string, text: string): string {
    const file = path.join(tmpDir, name);
    fs.writeFileSync(file, text);
    return file;
  }

  describe('defaults', () => {
    it('an empty document gives every documented default', () => {
      const config = parseConfig({});
      const expected: AppConfig = {
        serviceName: 'bitcoin-aggregator',
        sourceFile: '',
        aws: {
          region: 'us-east-1',
          kinesis: {
            endpoint: undefined,
            streams: {
              trade: 'market-sbe-trade',
              bestbidask: 'market-sbe-bestbidask',
              depth: 'market-sbe-depth',
            },
            initialPosition: 'LATEST',
            maxRecordsPerPoll: 1000,
            pollIntervalMs: 200,
          },
          dynamodb: { endpoint: undefined },
        },
        kcl: {
          applicationNamePrefix: 'bitcoin-aggregator',
          workerId: undefined,
          failoverTimeMillis: 10000,
          shardSyncIntervalMillis: 60000,
          shutdownGraceMillis: 30000,
          timeoutInSeconds: 240,
          metricsLevel: 'NONE',
        },
        redis: {
          host: '127.0.0.1',
          port: 6379,
          db: 0,
          clusterMode: false,
          username: undefined,
          password: undefined,
          tls: false,
          maxConnections: 50,
          socketTimeoutSeconds: 1,
          socketConnectTimeoutSeconds: 1,
        },
        processing: {
          symbols: ['BTCUSDT'],
          featureUpdateIntervalSeconds: 2,
          orderBookLevels: 10,
          batchDeadlineMs: 180000,
          redisRetries: 1000,
          deadLetterMaxLen: 100000,
          diffBufferMaxLength: 1000,
          featureHistoryMaxLen: 3600,
          maxFutureSkewMs: 5000,
          unlistedSymbols: 'skip',
        },
        reanchor: {
          enabled: true,
          rest: {
            baseUrl: 'https://data-api.binance.vision',
            depthLimit: 1000,
            tradesLimit: 1000,
            timeoutMs: 5000,
            maxRetries: 3,
            weightPerMinute: 6000,
            maxBanWaitSeconds: 300,
          },
          maxAttempts: 5,
          backoffBaseMs: 500,
          backoffMaxMs: 10000,
          claimIdleMs: 30000,
          staleAfterSeconds: 30,
          requestIntervalSeconds: 30,
        },
        health: { host: '0.0.0.0', port: 8082 },
        metrics: { enablePrometheus: true, prometheusPort: 9091 },
        logging: { level: 'info', file: undefined },
      };
      expect(config).to.deep.equal(expected);
    });

    it('an empty file (null document) and null values fall back to the defaults too', () => {
      expect(parseConfig(null)).to.deep.equal(parseConfig({}));
      const withNulls = parseConfig({
        redis: { port: null, host: null },
        processing: null,
        aws: { kinesis: null },
      });
      expect(withNulls).to.deep.equal(parseConfig({}));
    });

    it('the application name prefix defaults to the service name', () => {
      const config = parseConfig({ service_name: 'svc' });
      expect(config.kcl.applicationNamePrefix).to.equal('svc');
      expect(applicationName(config, 'depth')).to.equal('svc-depth');
    });

    it('accepts integers and booleans written as strings', () => {
      const config = parseConfig({ redis: { port: '6380', cluster_mode: 'true', tls: 'false' } });
      expect(config.redis.port).to.equal(6380);
      expect(config.redis.clusterMode).to.equal(true);
      expect(config.redis.tls).to.equal(false);
    });
  });

  describe('shipped files', () => {
    it('config/aggregator.yaml parses to the production settings', () => {
      const config = loadConfig(productionFile, {});
      expect(config.sourceFile).to.equal(productionFile);
      expect(config.aws.region).to.equal('us-east-1');
      expect(config.aws.kinesis.endpoint).to.equal(undefined);
      expect(config.aws.dynamodb.endpoint).to.equal(undefined);
      expect(config.aws.kinesis.streams).to.deep.equal({
        trade: 'market-sbe-trade',
        bestbidask: 'market-sbe-bestbidask',
        depth: 'market-sbe-depth',
      });
      expect(config.aws.kinesis.initialPosition).to.equal('LATEST');
      // Kinesis allows 5 GetRecords/s per shard: 200 ms is the floor in production.
      expect(config.aws.kinesis.pollIntervalMs).to.be.at.least(200);
      expect(config.kcl.metricsLevel).not.to.equal('NONE');
      expect(config.kcl.workerId).to.equal(undefined);
      expect(applicationName(config, 'trade')).to.equal('bitcoin-aggregator-trade');
      expect(config.redis).to.include({ host: 'localhost', port: 6379, clusterMode: false });
      expect(config.processing.symbols).to.deep.equal(['BTCUSDT']);
      expect(config.health).to.deep.equal({ host: '0.0.0.0', port: 8082 });
      expect(config.metrics).to.deep.equal({ enablePrometheus: true, prometheusPort: 9091 });
      expect(config.logging).to.deep.equal({ level: 'info', file: undefined });
    });

    it('config/local.yaml parses to the local-stack settings', () => {
      const config = loadConfig(localFile, {});
      expect(config.sourceFile).to.equal(localFile);
      expect(config.aws.kinesis.endpoint).to.equal('http://127.0.0.1:4568');
      expect(config.aws.dynamodb.endpoint).to.equal('http://127.0.0.1:8000');
      expect(config.aws.kinesis.initialPosition).to.equal('TRIM_HORIZON');
      expect(config.kcl.workerId).to.equal('local-worker-1');
      expect(config.kcl.metricsLevel).to.equal('NONE');
      expect(applicationName(config, 'bestbidask')).to.equal('bitcoin-aggregator-local-bestbidask');
      expect(config.redis).to.include({ host: '127.0.0.1', port: 6390, clusterMode: false });
      expect(config.processing.symbols).to.deep.equal(['BTCUSDT', 'ETHUSDT']);
      expect(config.reanchor.rest.baseUrl).to.equal('http://127.0.0.1:8091');
      // A relative log file is resolved against the config file's directory, not the working directory.
      expect(config.logging.file).to.equal(path.join(repoRoot, '.local', 'logs', 'processor.log'));
    });

    it('both leave the KCL timeout well above the batch deadline (else the daemon halts mid-retry)', () => {
      for (const file of [productionFile, localFile]) {
        const config = loadConfig(file, {});
        expect(config.kcl.timeoutInSeconds, file).to.be.greaterThan(
          Math.ceil(config.processing.batchDeadlineMs / 1000) + 5,
        );
        // A graceful shutdown needs a grace period (0 = none, and no shutdownRequested).
        expect(config.kcl.shutdownGraceMillis, file).to.be.greaterThan(0);
      }
    });

    it('without a file argument, CONFIG_FILE names the file, else config/aggregator.yaml (relative to cwd)', () => {
      expect(loadConfig(undefined, { CONFIG_FILE: localFile }).sourceFile).to.equal(localFile);
      expect(loadConfig(productionFile, { CONFIG_FILE: localFile }).sourceFile).to.equal(productionFile);
      const cwd = process.cwd();
      try {
        process.chdir(repoRoot);
        expect(loadConfig(undefined, {}).sourceFile).to.equal(productionFile);
        expect(loadConfig('config/local.yaml', {}).sourceFile).to.equal(localFile);
      } finally {
        process.chdir(cwd);
      }
    });
  });

  describe('environment overrides', () => {
    it('REDIS_HOST, REDIS_PORT and AWS_REGION win over the file', () => {
      const env: ConfigEnv = { REDIS_HOST: 'redis.internal', REDIS_PORT: '6391', AWS_REGION: 'eu-west-1' };
      const config = loadConfig(localFile, env);
      expect(config.redis.host).to.equal('redis.internal');
      expect(config.redis.port).to.equal(6391);
      expect(config.aws.region).to.equal('eu-west-1');
      // Everything else still comes from the file.
      expect(config.aws.kinesis.endpoint).to.equal('http://127.0.0.1:4568');
      expect(config.processing.symbols).to.deep.equal(['BTCUSDT', 'ETHUSDT']);
    });

    it('each override alone works with both shipped files (the file sets every overridden key)', () => {
      for (const file of [productionFile, localFile]) {
        expect(loadConfig(file, { AWS_REGION: 'ap-south-1' }).aws.region).to.equal('ap-south-1');
        expect(loadConfig(file, { REDIS_HOST: '10.0.0.5' }).redis.host).to.equal('10.0.0.5');
        expect(loadConfig(file, { REDIS_PORT: '7000' }).redis.port).to.equal(7000);
      }
    });

    it('REDIS_URL, REDIS_USERNAME, REDIS_PASSWORD, REDIS_TLS and REDIS_CLUSTER_MODE: the deployment injects the connection', () => {
      const file = { redis: { host: 'file-host', port: 6390, username: 'file-user', password: 'file-pass' } };
      const fromUrl = parseConfig(file, { REDIS_URL: 'rediss://svc:url-pass@cache.internal:6380/3' }).redis;
      expect(fromUrl).to.include({
        host: 'cache.internal',
        port: 6380,
        db: 3,
        username: 'svc',
        password: 'url-pass',
        tls: true,
      });
      const singles = parseConfig(file, {
        REDIS_URL: 'redis://svc:url-pass@cache.internal:6380',
        REDIS_HOST: 'override-host',
        REDIS_USERNAME: 'aggregator',
        REDIS_PASSWORD: 'env-pass',
        REDIS_TLS: 'true',
        REDIS_CLUSTER_MODE: 'yes',
      }).redis;
      expect(singles).to.include({
        host: 'override-host',
        port: 6380,
        username: 'aggregator',
        password: 'env-pass',
        tls: true,
        clusterMode: true,
      });
      // Without REDIS_URL the file's keys stay, the single variables win.
      expect(parseConfig(file, { REDIS_PASSWORD: 'env-pass' }).redis).to.include({
        host: 'file-host',
        username: 'file-user',
        password: 'env-pass',
        tls: false,
      });
      expect(parseConfig(file, { REDIS_TLS: 'false', REDIS_CLUSTER_MODE: '0' }).redis).to.include({
        tls: false,
        clusterMode: false,
      });
      expectConfigError(
        () => parseConfig({}, { REDIS_TLS: 'maybe' }),
        'config key REDIS_TLS: expected true or false, got "maybe"',
      );
      expectConfigError(
        () => parseConfig({}, { REDIS_URL: 'http://h:1' }),
        'config key REDIS_URL: must start with redis:// or rediss://, got "http:"',
      );
    });

    it('an overridden key is still validated in the file', () => {
      expectConfigError(
        () => parseConfig({ aws: { region: 5 } }, { AWS_REGION: 'eu-west-1' }),
        'config key aws.region: expected a string, got number 5',
      );
      expectConfigError(
        () => parseConfig({ redis: { host: false } }, { REDIS_HOST: 'h' }),
        'config key redis.host: expected a string, got boolean false',
      );
      expectConfigError(
        () => parseConfig({ redis: { port: 'abc' } }, { REDIS_PORT: '6380' }),
        'config key redis.port: expected an integer in 1..65535, got string "abc"',
      );
    });

    it('REDIS_PORT at the range limits is accepted', () => {
      expect(parseConfig({}, { REDIS_PORT: '1' }).redis.port).to.equal(1);
      expect(parseConfig({}, { REDIS_PORT: '65535' }).redis.port).to.equal(65535);
    });

    it('a bad REDIS_PORT names the variable', () => {
      expectConfigError(
        () => parseConfig({}, { REDIS_PORT: 'abc' }),
        'config key REDIS_PORT: expected an integer in 1..65535, got "abc"',
      );
      expectConfigError(
        () => parseConfig({}, { REDIS_PORT: '' }),
        'config key REDIS_PORT: expected an integer in 1..65535, got ""',
      );
      expectConfigError(
        () => parseConfig({}, { REDIS_PORT: ' 6380' }),
        'config key REDIS_PORT: expected an integer in 1..65535, got " 6380"',
      );
      expectConfigError(
        () => parseConfig({}, { REDIS_PORT: '-1' }),
        'config key REDIS_PORT: expected an integer in 1..65535, got "-1"',
      );
      expectConfigError(
        () => parseConfig({}, { REDIS_PORT: '0' }),
        'config key REDIS_PORT: expected an integer in 1..65535, got 0',
      );
      const error = expectConfigError(
        () => parseConfig({}, { REDIS_PORT: '65536' }),
        'config key REDIS_PORT: expected an integer in 1..65535, got 65536',
      );
      expect(error.key).to.equal('REDIS_PORT');
    });

    it('an empty AWS_REGION is rejected', () => {
      expectConfigError(
        () => parseConfig({}, { AWS_REGION: '' }),
        'config key aws.region: must not be empty',
      );
      expectConfigError(
        () => parseConfig({ aws: { region: '  ' } }),
        'config key aws.region: must not be empty',
      );
    });
  });

  describe('bad values name the key exactly', () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      [
        'redis.port as text',
        doc('redis', 'port', 'abc'),
        'config key redis.port: expected an integer in 1..65535, got string "abc"',
      ],
      [
        'redis.port too large',
        doc('redis', 'port', 70000),
        'config key redis.port: expected an integer in 1..65535, got number 70000',
      ],
      [
        'redis.port zero',
        doc('redis', 'port', 0),
        'config key redis.port: expected an integer in 1..65535, got number 0',
      ],
      [
        'redis.port fractional',
        doc('redis', 'port', 6379.5),
        'config key redis.port: expected an integer in 1..65535, got number 6379.5',
      ],
      [
        'redis.port as a list',
        doc('redis', 'port', [6379]),
        'config key redis.port: expected an integer in 1..65535, got a list',
      ],
      [
        'redis.db out of range',
        doc('redis', 'db', 16),
        'config key redis.db: expected an integer in 0..15, got number 16',
      ],
      [
        'redis.cluster_mode yes',
        doc('redis', 'cluster_mode', 'yes'),
        'config key redis.cluster_mode: expected true or false, got string "yes"',
      ],
      [
        'redis.tls as 1',
        doc('redis', 'tls', 1),
        'config key redis.tls: expected true or false, got number 1',
      ],
      [
        'redis.host as a number',
        doc('redis', 'host', 42),
        'config key redis.host: expected a string, got number 42',
      ],
      [
        'redis.password as a mapping',
        doc('redis', 'password', { a: 1 }),
        'config key redis.password: expected a string, got a mapping',
      ],
      [
        // A secret is never echoed, not even a mistyped one (YAML reads an all-digit password as a number).
        'redis.password as a number',
        doc('redis', 'password', 123456789),
        'config key redis.password: expected a string, got number (value not shown)',
      ],
      [
        'redis.url as a boolean',
        doc('redis', 'url', true),
        'config key redis.url: expected a string, got boolean (value not shown)',
      ],
      [
        'service_name as a boolean',
        { service_name: true },
        'config key service_name: expected a string, got boolean true',
      ],
      ['aws as text', { aws: 'x' }, 'config key aws: expected a mapping, got string "x"'],
      [
        'aws.kinesis.streams as a list',
        { aws: { kinesis: { streams: ['a'] } } },
        'config key aws.kinesis.streams: expected a mapping, got a list',
      ],
      [
        'aws.kinesis.streams.trade as a number',
        { aws: { kinesis: { streams: { trade: 5 } } } },
        'config key aws.kinesis.streams.trade: expected a string, got number 5',
      ],
      [
        'shard_iterator_type lower case',
        { aws: { kinesis: { consumer_config: { shard_iterator_type: 'latest' } } } },
        'config key aws.kinesis.consumer_config.shard_iterator_type: expected one of LATEST, TRIM_HORIZON, got string "latest"',
      ],
      [
        'max_records_per_poll above the Kinesis limit',
        { aws: { kinesis: { consumer_config: { max_records_per_poll: 10001 } } } },
        'config key aws.kinesis.consumer_config.max_records_per_poll: expected an integer in 1..10000, got number 10001',
      ],
      [
        'aws.dynamodb.endpoint as a number',
        { aws: { dynamodb: { endpoint: 8000 } } },
        'config key aws.dynamodb.endpoint: expected a string, got number 8000',
      ],
      [
        'kcl.metrics_level',
        doc('kcl', 'metrics_level', 'ALL'),
        'config key kcl.metrics_level: expected one of NONE, SUMMARY, DETAILED, got string "ALL"',
      ],
      [
        'kcl.timeout_in_seconds zero',
        doc('kcl', 'timeout_in_seconds', 0),
        'config key kcl.timeout_in_seconds: expected an integer in 1..3600, got number 0',
      ],
      [
        'kcl.worker_id as a number',
        doc('kcl', 'worker_id', 7),
        'config key kcl.worker_id: expected a string, got number 7',
      ],
      [
        'processing.symbols as text',
        doc('processing', 'symbols', 'BTCUSDT'),
        'config key processing.symbols: expected a list of non-empty strings, got string "BTCUSDT"',
      ],
      [
        'processing.symbols with an empty entry',
        doc('processing', 'symbols', ['BTCUSDT', '']),
        'config key processing.symbols: expected a list of non-empty strings, got a list',
      ],
      [
        'processing.symbols lower case',
        doc('processing', 'symbols', ['BTCUSDT', 'ethusdt']),
        'config key processing.symbols[1]: expected an upper-case symbol like BTCUSDT, got "ethusdt"',
      ],
      [
        'processing.trade_window_sizes with a zero',
        doc('processing', 'trade_window_sizes', [1, 0]),
        'config key processing.trade_window_sizes: expected a list of integers in 1..3600, got a list',
      ],
      [
        'processing.trade_window_sizes other than [1, 5]',
        doc('processing', 'trade_window_sizes', [1, 10]),
        'config key processing.trade_window_sizes: only [1, 5] is supported (the windows tr:<S>:1s and tr:<S>:5s are the contract with the readers), got [1,10]',
      ],
      [
        'processing.batch_size (not supported)',
        doc('processing', 'batch_size', 500),
        'config key processing.batch_size: is not supported: a batch is what the daemon delivers: set aws.kinesis.consumer_config.max_records_per_poll (remove the key)',
      ],
      [
        'processing.flush_interval_ms (not supported)',
        doc('processing', 'flush_interval_ms', 100),
        'config key processing.flush_interval_ms: is not supported: a batch is written as soon as the daemon delivers it: set aws.kinesis.consumer_config.poll_interval_ms (remove the key)',
      ],
      [
        'redis.connection_pool_size (not supported)',
        doc('redis', 'connection_pool_size', 20),
        'config key redis.connection_pool_size: is not supported: a processor uses one connection with auto-pipelining, a Redis Cluster client one per node (remove the key)',
      ],
      [
        'processing.order_book_levels above depth20',
        doc('processing', 'order_book_levels', 21),
        'config key processing.order_book_levels: expected an integer in 1..20, got number 21',
      ],
      [
        'processing.batch_deadline_ms too small',
        doc('processing', 'batch_deadline_ms', 99),
        'config key processing.batch_deadline_ms: expected an integer in 100..600000, got number 99',
      ],
      [
        'processing.redis_retries negative (as text)',
        doc('processing', 'redis_retries', '-1'),
        'config key processing.redis_retries: expected an integer in 0..100000, got string "-1"',
      ],
      [
        'health.port',
        doc('health', 'port', 65536),
        'config key health.port: expected an integer in 0..65535, got number 65536',
      ],
      [
        'metrics.enable_prometheus',
        doc('metrics', 'enable_prometheus', 'on'),
        'config key metrics.enable_prometheus: expected true or false, got string "on"',
      ],
      [
        'logging.level',
        doc('logging', 'level', 'trace'),
        'config key logging.level: expected one of error, warn, info, debug, got string "trace"',
      ],
      [
        'reanchor.rest.base_url',
        { reanchor: { rest: { base_url: 'ftp://example.com' } } },
        'config key reanchor.rest.base_url: expected http(s)://host[:port], got "ftp://example.com"',
      ],
      [
        'reanchor.rest.depth_limit',
        { reanchor: { rest: { depth_limit: 5001 } } },
        'config key reanchor.rest.depth_limit: expected an integer in 1..5000, got number 5001',
      ],
      [
        'reanchor.max_attempts',
        { reanchor: { max_attempts: 0 } },
        'config key reanchor.max_attempts: expected an integer in 1..100, got number 0',
      ],
    ];
    for (const [name, document, message] of cases) {
      it(name, () => {
        expectConfigError(() => parseConfig(document), message);
      });
    }

    it('the error carries the key and the problem separately', () => {
      const error = expectConfigError(
        () => parseConfig(doc('redis', 'port', 'abc')),
        'config key redis.port: expected an integer in 1..65535, got string "abc"',
      );
      expect(error.key).to.equal('redis.port');
      expect(error.problem).to.equal('expected an integer in 1..65535, got string "abc"');
    });

    it('a top level that is not a mapping is rejected', () => {
      expectConfigError(
        () => parseConfig(['a']),
        'the config file must hold a mapping at the top level, got a list',
      );
      expectConfigError(
        () => parseConfig('text'),
        'the config file must hold a mapping at the top level, got string "text"',
      );
    });
  });

  describe('unknown keys', () => {
    it('a misspelt key is rejected with its full path', () => {
      expectConfigError(
        () => parseConfig({ redis: { hots: 'x' } }),
        'config key redis.hots: is not a known setting',
      );
      expectConfigError(
        () => parseConfig({ servce_name: 'x' }),
        'config key servce_name: is not a known setting',
      );
      expectConfigError(
        () => parseConfig({ aws: { kinesis: { consumer_config: { poll_interval: 200 } } } }),
        'config key aws.kinesis.consumer_config.poll_interval: is not a known setting',
      );
      expectConfigError(
        () => parseConfig({ aws: { kinesis: { streams: { trades: 'x' } } } }),
        'config key aws.kinesis.streams.trades: is not a known setting',
      );
    });

    it('an unknown key in a file is rejected too', () => {
      const file = writeTmp('unknown.yaml', 'redis:\n  host: 127.0.0.1\n  prot: 6379\n');
      expectConfigError(() => loadConfig(file, {}), 'config key redis.prot: is not a known setting');
    });
  });

  describe('file errors name the file', () => {
    it('a missing file', () => {
      const file = path.join(tmpDir, 'does-not-exist.yaml');
      const error = expectConfigError(
        () => loadConfig(file, {}),
        `cannot read config file ${file}: ENOENT: no such file or directory, open '${file}'`,
      );
      expect(error.key).to.equal('');
    });

    it('a relative missing file is named by its absolute path', () => {
      const absolute = path.resolve('no-such-dir/config.yaml');
      expectConfigError(
        () => loadConfig('no-such-dir/config.yaml', {}),
        `cannot read config file ${absolute}: ENOENT: no such file or directory, open '${absolute}'`,
      );
    });

    it('a directory instead of a file', () => {
      expectConfigError(
        () => loadConfig(tmpDir, {}),
        `cannot read config file ${tmpDir}: EISDIR: illegal operation on a directory, read`,
      );
    });

    it('invalid YAML', () => {
      const file = writeTmp('broken.yaml', 'redis:\n  port: [6379\n');
      const error = catchConfigError(() => loadConfig(file, {}));
      // The parser's own description (with line and column) follows the file name.
      const prefix = `config file ${file} is not valid YAML: `;
      expect(error.message.startsWith(prefix), error.message).to.equal(true);
      expect(error.message.length).to.be.greaterThan(prefix.length);
      expect(error.key).to.equal('');
    });

    it('duplicate keys are invalid YAML', () => {
      const file = writeTmp('duplicate.yaml', 'redis:\n  port: 6379\n  port: 6380\n');
      const error = catchConfigError(() => loadConfig(file, {}));
      expect(error.message.startsWith(`config file ${file} is not valid YAML: `), error.message).to.equal(
        true,
      );
      expect(error.message).to.match(/unique/);
    });

    it('a scalar document is rejected as not a mapping', () => {
      const file = writeTmp('scalar.yaml', 'just text\n');
      expectConfigError(
        () => loadConfig(file, {}),
        'the config file must hold a mapping at the top level, got string "just text"',
      );
    });

    it('an empty file gives the defaults with the file recorded', () => {
      const file = writeTmp('empty.yaml', '');
      const config = loadConfig(file, {});
      expect(config.sourceFile).to.equal(file);
      expect(config.redis.port).to.equal(6379);
    });

    it('bad values in a file name the key', () => {
      const file = writeTmp('bad-port.yaml', 'redis:\n  port: abc\n');
      expectConfigError(
        () => loadConfig(file, {}),
        'config key redis.port: expected an integer in 1..65535, got string "abc"',
      );
      const yes = writeTmp('bad-bool.yaml', 'redis:\n  cluster_mode: yes\n');
      expectConfigError(
        () => loadConfig(yes, {}),
        'config key redis.cluster_mode: expected true or false, got string "yes"',
      );
    });
  });
});
