import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig, STREAM_KINDS, type StreamKind } from '../../config/config';
import { taskIdOfThisProcess } from '../../config/task';
import {
  defaultProfile,
  propertiesValues,
  renderProperties,
  type PropertiesProfile,
} from '../../kcl/properties';

// `aggregator kcl properties`: renders the daemon's .properties for one stream from the service config.
// scripts/kcl-daemon.sh calls it and then execs the Java daemon with the result.

const repoRoot = path.resolve(__dirname, '..', '..', '..', '..');

function parseKind(value: string): StreamKind {
  if (!(STREAM_KINDS as readonly string[]).includes(value)) {
    throw new Error(`--stream must be one of ${STREAM_KINDS.join(', ')}, got "${value}"`);
  }
  return value as StreamKind;
}

export function registerKcl(program: Command): void {
  const kclCommand = program.command('kcl').description('KCL MultiLangDaemon helpers');
  kclCommand
    .command('properties')
    .description('render the daemon .properties file of one stream from the config')
    .requiredOption('--stream <kind>', `stream kind: ${STREAM_KINDS.join(', ')}`)
    .option(
      '--profile <profile>',
      'local | production (default: local when an emulator endpoint is configured)',
    )
    .option(
      '--worker-id <id>',
      'KCL worker id (default: config kcl.worker_id, else <task id>-<kind>; task id: AGGREGATOR_TASK_ID, else hostname)',
    )
    .option('--out <file>', 'write here instead of stdout')
    .action((options: { stream: string; profile?: string; workerId?: string; out?: string }) => {
      const configFile = program.opts<{ config?: string }>().config;
      const config = loadConfig(configFile, process.env);
      const kind = parseKind(options.stream);
      const profile = (options.profile ?? defaultProfile(config)) as PropertiesProfile;
      if (profile !== 'local' && profile !== 'production') {
        throw new Error(`--profile must be local or production, got "${String(options.profile)}"`);
      }
      const template = fs.readFileSync(
        path.join(repoRoot, 'properties', `${profile}.properties.template`),
        'utf8',
      );
      const workerId = options.workerId ?? config.kcl.workerId ?? `${taskIdOfThisProcess()}-${kind}`;
      const rendered = renderProperties(
        template,
        propertiesValues(
          config,
          kind,
          {
            node: process.execPath,
            cli: path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'),
            configFile: config.sourceFile,
          },
          workerId,
          process.env,
        ),
      );
      if (options.out === undefined) {
        process.stdout.write(rendered);
      } else {
        fs.mkdirSync(path.dirname(options.out), { recursive: true });
        fs.writeFileSync(options.out, rendered);
      }
    });
}
