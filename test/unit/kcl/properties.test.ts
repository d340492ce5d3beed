import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import sinon from 'sinon';
import { buildProgram } from '../../../src/cli/main';
import { loadConfig, parseConfig, STREAM_KINDS } from '../../../src/config/config';
import type { AppConfig, StreamKind } from '../../../src/config/config';
import { ConfigError } from '../../../src/config/errors';
import {
  defaultProfile,
  PROCESSOR_WRAPPER_ENV,
  propertiesValues,
  renderProperties,
} from '../../../src/kcl/properties';
import type { ProcessorCommand } from '../../../src/kcl/properties';
import { repoRoot } from '../../helpers/paths';

const localConfigFile = path.join(repoRoot, 'config', 'local.yaml');
const productionConfigFile = path.join(repoRoot, 'config', 'aggregator.yaml');

function template(profile: 'local' | 'production'): string {
  return fs.readFileSync(path.join(repoRoot, 'properties', `${profile}.properties.template`), 'utf8');
}

function placeholders(text: string): string[] {
  return [...text.matchAll(/\{\{(\w+)\}\}/g)].map((m) => m[1]!);
}

/** Parses `key = value` lines as java.util.Properties would for this simple format; rejects duplicate keys. */
function parseProperties(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith('!')) continue;
    const match = /^([^\s=:]+)\s*[=:]\s*(.*)$/.exec(trimmed);
    if (match === null) throw new Error(`not a key = value line: ${line}`);
    const [, key, value] = match;
    if (entries.has(key!)) throw new Error(`duplicate key ${key}`);
    entries.set(key!, value!);
  }
  return entries;
}

function command(configFile: string): ProcessorCommand {
  return { node: process.execPath, cli: path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), configFile };
}

function render(
  config: AppConfig,
  profile: 'local' | 'production',
  kind: StreamKind,
  workerId = 'worker-1',
): Map<string, string> {
  return parseProperties(
    renderProperties(template(profile), propertiesValues(config, kind, command(config.sourceFile), workerId)),
  );
}

function expectConfigError(fn: () => unknown, message: string): void {
  expect(fn).to.throw(ConfigError).with.property('message', message);
}

describe('KCL properties', () => {
  const local = loadConfig(localConfigFile, {});
  const production = loadConfig(productionConfigFile, {});

  describe('templates', () => {
    it('together use exactly the values propertiesValues provides', () => {
      const values = propertiesValues(local, 'trade', command(local.sourceFile), 'w');
      const used = new Set([...placeholders(template('local')), ...placeholders(template('production'))]);
      expect([...used].sort()).to.deep.equal(Object.keys(values).sort());
    });

    it('the default profile follows the Kinesis endpoint', () => {
      expect(defaultProfile(local)).to.equal('local');
      expect(defaultProfile(production)).to.equal('production');
    });
  });

  describe('local render (config/local.yaml)', () => {
    it('has exactly the bean names the daemon knows, every placeholder filled', () => {
      const text = renderProperties(
        template('local'),
        propertiesValues(local, 'trade', command(local.sourceFile), 'local-worker-1'),
      );
      expect(text).not.to.match(/\{\{|\}\}/);
      const props = parseProperties(text);
      expect([...props.keys()].sort()).to.deep.equal(
        [
          'executableName',
          'streamName',
          'applicationName',
          'workerId',
          'regionName',
          'kinesisEndpoint',
          'dynamoDBEndpoint',
          'AwsCredentialsProvider',
          'metricsLevel',
          'initialPositionInStream',
          'retrievalMode',
          'maxRecords',
          'idleTimeBetweenReadsInMillis',
          'failoverTimeMillis',
          'shardSyncIntervalMillis',
          'shutdownGraceMillis',
          'timeoutInSeconds',
          'leaseTablePitrEnabled',
        ].sort(),
      );
      for (const [key, value] of props) expect(value, key).not.to.equal('');
    });

    it('holds the values of the config', () => {
      const props = render(local, 'local', 'trade', 'local-worker-1');
      expect(Object.fromEntries(props)).to.deep.equal({
        executableName: `${process.execPath} ${path.join(repoRoot, 'dist', 'src', 'cli', 'main.js')} --config ${localConfigFile} process --stream trade`,
        streamName: local.aws.kinesis.streams.trade,
        applicationName: `${local.kcl.applicationNamePrefix}-trade`,
        workerId: 'local-worker-1',
        regionName: local.aws.region,
        kinesisEndpoint: 'http://127.0.0.1:4568',
        dynamoDBEndpoint: 'http://127.0.0.1:8000',
        AwsCredentialsProvider: 'EnvironmentVariableCredentialsProvider',
        metricsLevel: 'NONE',
        initialPositionInStream: 'TRIM_HORIZON',
        retrievalMode: 'POLLING',
        maxRecords: String(local.aws.kinesis.maxRecordsPerPoll),
        idleTimeBetweenReadsInMillis: String(local.aws.kinesis.pollIntervalMs),
        failoverTimeMillis: String(local.kcl.failoverTimeMillis),
        shardSyncIntervalMillis: String(local.kcl.shardSyncIntervalMillis),
        shutdownGraceMillis: String(local.kcl.shutdownGraceMillis),
        timeoutInSeconds: String(local.kcl.timeoutInSeconds),
        leaseTablePitrEnabled: 'false',
      });
    });

    it('maps every config key to its own property (distinct values, so a swap shows)', () => {
      const config = parseConfig(
        {
          service_name: 'svc',
          aws: {
            region: 'eu-north-1',
            kinesis: {
              endpoint: 'http://127.0.0.1:14568',
              streams: { trade: 't-stream', bestbidask: 'b-stream', depth: 'd-stream' },
              consumer_config: {
                shard_iterator_type: 'TRIM_HORIZON',
                max_records_per_poll: 1234,
                poll_interval_ms: 321,
              },
            },
            dynamodb: { endpoint: 'http://127.0.0.1:18000' },
          },
          kcl: {
            application_name_prefix: 'app',
            failover_time_millis: 7001,
            shard_sync_interval_millis: 7002,
            shutdown_grace_millis: 7003,
            timeout_in_seconds: 704,
            metrics_level: 'DETAILED',
          },
        },
        {},
        '/etc/svc/agg.yaml',
      );
      const props = render(config, 'local', 'bestbidask', 'w-9');
      expect(Object.fromEntries(props)).to.deep.include({
        executableName: `${process.execPath} ${path.join(repoRoot, 'dist', 'src', 'cli', 'main.js')} --config /etc/svc/agg.yaml process --stream bestbidask`,
        streamName: 'b-stream',
        applicationName: 'app-bestbidask',
        workerId: 'w-9',
        regionName: 'eu-north-1',
        kinesisEndpoint: 'http://127.0.0.1:14568',
        dynamoDBEndpoint: 'http://127.0.0.1:18000',
        initialPositionInStream: 'TRIM_HORIZON',
        maxRecords: '1234',
        idleTimeBetweenReadsInMillis: '321',
        failoverTimeMillis: '7001',
        shardSyncIntervalMillis: '7002',
        shutdownGraceMillis: '7003',
        timeoutInSeconds: '704',
        // The local template pins these: no CloudWatch locally.
        metricsLevel: 'NONE',
      });
      expect(render(config, 'production', 'depth').get('metricsLevel')).to.equal('DETAILED');
      expect(render(config, 'production', 'depth').get('streamName')).to.equal('d-stream');
    });

    it('names the stream and lease table of each kind', () => {
      for (const kind of STREAM_KINDS) {
        const props = render(local, 'local', kind);
        expect(props.get('streamName')).to.equal(`market-sbe-${kind}`);
        expect(props.get('applicationName')).to.equal(`bitcoin-aggregator-local-${kind}`);
        expect(props.get('executableName')!.endsWith(` process --stream ${kind}`)).to.equal(true);
      }
    });
  });

  describe('production render (config/aggregator.yaml)', () => {
    it('has no emulator endpoints and uses the task role', () => {
      const text = renderProperties(
        template('production'),
        propertiesValues(production, 'depth', command(production.sourceFile), 'task-1'),
      );
      expect(text).not.to.match(/\{\{|\}\}/);
      expect(Object.fromEntries(parseProperties(text))).to.deep.equal({
        executableName: `${process.execPath} ${path.join(repoRoot, 'dist', 'src', 'cli', 'main.js')} --config ${productionConfigFile} process --stream depth`,
        streamName: 'market-sbe-depth',
        applicationName: 'bitcoin-aggregator-depth',
        workerId: 'task-1',
        regionName: production.aws.region,
        AwsCredentialsProvider: 'DefaultCredentialsProvider',
        metricsLevel: production.kcl.metricsLevel,
        initialPositionInStream: 'LATEST',
        retrievalMode: 'POLLING',
        maxRecords: String(production.aws.kinesis.maxRecordsPerPoll),
        idleTimeBetweenReadsInMillis: String(production.aws.kinesis.pollIntervalMs),
        failoverTimeMillis: String(production.kcl.failoverTimeMillis),
        shardSyncIntervalMillis: String(production.kcl.shardSyncIntervalMillis),
        shutdownGraceMillis: String(production.kcl.shutdownGraceMillis),
        timeoutInSeconds: String(production.kcl.timeoutInSeconds),
      });
    });

    it('an AWS_REGION override reaches regionName', () => {
      const config = loadConfig(productionConfigFile, { AWS_REGION: 'eu-central-1' });
      expect(render(config, 'production', 'trade').get('regionName')).to.equal('eu-central-1');
    });
  });

  describe('executableName', () => {
    afterEach(() => sinon.restore());

    for (const kind of STREAM_KINDS) {
      it(`runs \`process --stream ${kind}\` with the absolute config path (${kind})`, async () => {
        const executable = render(local, 'local', kind).get('executableName')!;
        // The daemon splits on spaces with no quoting.
        const argv = executable.split(' ');
        expect(argv).to.deep.equal([
          process.execPath,
          path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
          '--config',
          localConfigFile,
          'process',
          '--stream',
          kind,
        ]);
        expect(path.isAbsolute(argv[0]!)).to.equal(true);
        expect(path.isAbsolute(argv[3]!)).to.equal(true);
        expect(fs.existsSync(argv[1]!), argv[1]).to.equal(true);
        expect(fs.existsSync(argv[3]!), argv[3]).to.equal(true);

        // The real CLI parses that command line into the process command with that config and kind.
        const program = buildProgram().exitOverride();
        const processCommand = program.commands.find((c) => c.name() === 'process');
        expect(processCommand, 'the CLI has a process command').not.to.equal(undefined);
        const action = sinon.spy();
        processCommand!.action(action);
        await program.parseAsync(argv, { from: 'node' });
        expect(action.calledOnce).to.equal(true);
        expect(action.firstCall.args[0]).to.deep.equal({ stream: kind });
        expect(program.opts()).to.deep.equal({ config: localConfigFile });
      });
    }
  });

  describe(`${PROCESSOR_WRAPPER_ENV} (a wrapper in front of the processor command)`, () => {
    const cmd = command(local.sourceFile);
    const plain = `${cmd.node} ${cmd.cli} --config ${cmd.configFile} process --stream depth`;
    const executable = (env: Record<string, string | undefined>) =>
      propertiesValues(local, 'depth', cmd, 'w', env).executableName;

    it('is named KCL_PROCESSOR_WRAPPER', () => {
      expect(PROCESSOR_WRAPPER_ENV).to.equal('KCL_PROCESSOR_WRAPPER');
    });

    it('prefixes the words of the wrapper to the unchanged processor command', () => {
      expect(executable({ KCL_PROCESSOR_WRAPPER: '/usr/bin/node /tmp/tee.js /tmp/captures' })).to.equal(
        `/usr/bin/node /tmp/tee.js /tmp/captures ${plain}`,
      );
      // Whitespace runs and line breaks only separate words: nothing can reach another property.
      expect(executable({ KCL_PROCESSOR_WRAPPER: '  /opt/w\t--flag\n x ' })).to.equal(
        `/opt/w --flag x ${plain}`,
      );
      const rendered = parseProperties(
        renderProperties(
          template('local'),
          propertiesValues(local, 'depth', cmd, 'w', { KCL_PROCESSOR_WRAPPER: '/opt/w\nmetricsLevel = X' }),
        ),
      );
      expect(rendered.get('executableName')).to.equal(`/opt/w metricsLevel = X ${plain}`);
      expect(rendered.get('metricsLevel')).to.equal('NONE');
    });

    it('unset or blank leaves the command as it is; nothing else changes', () => {
      expect(executable({})).to.equal(plain);
      expect(executable({ KCL_PROCESSOR_WRAPPER: '' })).to.equal(plain);
      expect(executable({ KCL_PROCESSOR_WRAPPER: ' \t ' })).to.equal(plain);
      const without = propertiesValues(local, 'depth', cmd, 'w', {});
      const withWrapper = propertiesValues(local, 'depth', cmd, 'w', { KCL_PROCESSOR_WRAPPER: '/opt/w' });
      expect({ ...withWrapper, executableName: plain }).to.deep.equal(without);
    });

    it('is taken only from the environment handed in (the CLI passes its own), never read from process.env', () => {
      const saved = process.env[PROCESSOR_WRAPPER_ENV];
      try {
        process.env[PROCESSOR_WRAPPER_ENV] = '/opt/from-env';
        expect(propertiesValues(local, 'depth', cmd, 'w').executableName).to.equal(plain);
        expect(propertiesValues(local, 'depth', cmd, 'w', process.env).executableName).to.equal(
          `/opt/from-env ${plain}`,
        );
      } finally {
        if (saved === undefined) delete process.env[PROCESSOR_WRAPPER_ENV];
        else process.env[PROCESSOR_WRAPPER_ENV] = saved;
      }
    });
  });

  describe('errors', () => {
    it('a placeholder without a value names it', () => {
      expectConfigError(
        () => renderProperties('a = {{nope}}\n', {}),
        'properties template needs a value for {{nope}}',
      );
      expectConfigError(
        () => renderProperties('a = {{empty}}\n', { empty: '' }),
        'properties template needs a value for {{empty}}',
      );
    });

    it('the local template with a config that has no emulator endpoints fails on the first missing one', () => {
      const values = propertiesValues(production, 'trade', command(production.sourceFile), 'w');
      expectConfigError(
        () => renderProperties(template('local'), values),
        'properties template needs a value for {{kinesisEndpoint}}',
      );
      const onlyKinesis = parseConfig({ aws: { kinesis: { endpoint: 'http://127.0.0.1:4568' } } });
      expectConfigError(
        () =>
          renderProperties(
            template('local'),
            propertiesValues(onlyKinesis, 'trade', command('/etc/agg.yaml'), 'w'),
          ),
        'properties template needs a value for {{dynamoDBEndpoint}}',
      );
    });

    it('a value with a line break is rejected (it would inject a property)', () => {
      expectConfigError(
        () => renderProperties('workerId = {{workerId}}\n', { workerId: 'w\nmetricsLevel = DETAILED' }),
        'properties value for {{workerId}} contains a line break',
      );
      expectConfigError(
        () =>
          renderProperties(
            template('local'),
            propertiesValues(local, 'trade', command(local.sourceFile), 'a\rb'),
          ),
        'properties value for {{workerId}} contains a line break',
      );
    });

    it('whitespace in any path of the command is rejected, naming the part', () => {
      const good = command(local.sourceFile);
      expectConfigError(
        () => propertiesValues(local, 'trade', { ...good, node: '/opt/my node/bin/node' }, 'w'),
        'the processor node path "/opt/my node/bin/node" contains whitespace, which the KCL daemon cannot quote',
      );
      expectConfigError(
        () => propertiesValues(local, 'trade', { ...good, cli: '/srv/app\tdir/main.js' }, 'w'),
        'the processor cli path "/srv/app\tdir/main.js" contains whitespace, which the KCL daemon cannot quote',
      );
      expectConfigError(
        () => propertiesValues(local, 'trade', { ...good, configFile: '/etc/My Configs/agg.yaml' }, 'w'),
        'the processor configFile path "/etc/My Configs/agg.yaml" contains whitespace, which the KCL daemon cannot quote',
      );
    });

    it('timeout_in_seconds must exceed the batch deadline (rounded up to seconds) by more than 5 s', () => {
      const cmd = command('/etc/agg.yaml');
      const at = (timeout: number, deadlineMs: number) =>
        parseConfig({ kcl: { timeout_in_seconds: timeout }, processing: { batch_deadline_ms: deadlineMs } });
      const message = (seconds: number) =>
        `config key kcl.timeout_in_seconds: must exceed processing.batch_deadline_ms (${seconds} s) by more than 5 s, or the daemon halts while a batch is still retrying`;

      expectConfigError(() => propertiesValues(at(25, 20000), 'trade', cmd, 'w'), message(20));
      expect(propertiesValues(at(26, 20000), 'trade', cmd, 'w').timeoutInSeconds).to.equal('26');
      // 20001 ms rounds up to 21 s, so 26 is no longer enough.
      expectConfigError(() => propertiesValues(at(26, 20001), 'trade', cmd, 'w'), message(21));
      expect(propertiesValues(at(27, 20001), 'trade', cmd, 'w').timeoutInSeconds).to.equal('27');
      expectConfigError(() => propertiesValues(at(1, 100), 'trade', cmd, 'w'), message(1));
      expect(propertiesValues(at(7, 100), 'trade', cmd, 'w').timeoutInSeconds).to.equal('7');
    });
  });
});
