import type { AppConfig, StreamKind } from '../config/config';
import { applicationName } from '../config/config';
import { ConfigError } from '../config/errors';

// Renders a KCL MultiLangDaemon .properties file from a template in properties/ and the service config.
// Pure: the caller reads the template and writes the result. The one exception: propertiesValues reads
// KCL_PROCESSOR_WRAPPER from the environment the CLI hands it.

export type PropertiesProfile = 'local' | 'production';

export interface ProcessorCommand {
  /** Absolute path of the node binary that runs the processor. */
  readonly node: string;
  /** Absolute path of the compiled CLI (dist/src/cli/main.js). */
  readonly cli: string;
  /** Absolute path of the config file the processor loads. */
  readonly configFile: string;
}

/**
 * A command the daemon runs in front of the processor's own command line (test instrumentation, e.g. a
 * wrapper that records every byte the processor writes to stdout): `executableName` becomes
 * `<wrapper words> <node> <cli> --config <file> process --stream <kind>`. Split on whitespace like
 * executableName itself, so no word may contain a space. Unset or blank: no wrapper.
 */
export const PROCESSOR_WRAPPER_ENV = 'KCL_PROCESSOR_WRAPPER';

/** Local stacks use their endpoints; without an endpoint the config targets real AWS. */
export function defaultProfile(config: AppConfig): PropertiesProfile {
  return config.aws.kinesis.endpoint !== undefined ? 'local' : 'production';
}

export function propertiesValues(
  config: AppConfig,
  kind: StreamKind,
  command: ProcessorCommand,
  workerId: string,
  /** The environment of the CLI (config stays at the edge: nothing below it reads process.env). */
  env: Readonly<Record<string, string | undefined>> = {},
): Record<string, string> {
  // The daemon splits executableName on spaces with no quoting, so no part may contain one.
  for (const [name, value] of Object.entries(command) as Array<[string, string]>) {
    if (/\s/.test(value)) {
      throw new ConfigError(
        '',
        `the processor ${name} path "${value}" contains whitespace, which the KCL daemon cannot quote`,
      );
    }
  }
  // kcl.timeout_in_seconds against processing.batch_deadline_ms: checked once, when the config is parsed.
  const wrapper = (env[PROCESSOR_WRAPPER_ENV] ?? '')
    .trim()
    .split(/\s+/)
    .filter((word) => word !== '');
  const processor = `${command.node} ${command.cli} --config ${command.configFile} process --stream ${kind}`;
  return {
    executableName: [...wrapper, processor].join(' '),
    streamName: config.aws.kinesis.streams[kind],
    applicationName: applicationName(config, kind),
    workerId,
    regionName: config.aws.region,
    kinesisEndpoint: config.aws.kinesis.endpoint ?? '',
    dynamoDBEndpoint: config.aws.dynamodb.endpoint ?? '',
    metricsLevel: config.kcl.metricsLevel,
    initialPositionInStream: config.aws.kinesis.initialPosition,
    maxRecords: String(config.aws.kinesis.maxRecordsPerPoll),
    idleTimeBetweenReadsInMillis: String(config.aws.kinesis.pollIntervalMs),
    failoverTimeMillis: String(config.kcl.failoverTimeMillis),
    shardSyncIntervalMillis: String(config.kcl.shardSyncIntervalMillis),
    shutdownGraceMillis: String(config.kcl.shutdownGraceMillis),
    timeoutInSeconds: String(config.kcl.timeoutInSeconds),
  };
}

/** Fills every {{name}}; a placeholder without a value, or an empty value, is an error naming it. */
export function renderProperties(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
    const value = values[name];
    if (value === undefined || value === '') {
      throw new ConfigError('', `properties template needs a value for {{${name}}}`);
    }
    if (/[\r\n]/.test(value))
      throw new ConfigError('', `properties value for {{${name}}} contains a line break`);
    return value;
  });
}
