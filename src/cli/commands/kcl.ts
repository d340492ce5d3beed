import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { renderDaemonProperties } from '../../app/kcl';
import { loadConfig, STREAM_KINDS } from '../../config/config';
import { taskIdOfThisProcess } from '../../config/task';
import { defaultProfile, type PropertiesProfile } from '../../kcl/properties';
import { parseStreamKind } from './options';

// `aggregator kcl properties`: renders the daemon's .properties for one stream from the service config
// (src/app/kcl.ts). scripts/kcl-daemon.sh calls it and then execs the Java daemon with the result.

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
      const kind = parseStreamKind(options.stream);
      const profile = (options.profile ?? defaultProfile(config)) as PropertiesProfile;
      if (profile !== 'local' && profile !== 'production') {
        throw new Error(`--profile must be local or production, got "${String(options.profile)}"`);
      }
      const workerId = options.workerId ?? config.kcl.workerId ?? `${taskIdOfThisProcess()}-${kind}`;
      const rendered = renderDaemonProperties({ config, kind, profile, workerId, env: process.env });
      if (options.out === undefined) {
        process.stdout.write(rendered);
      } else {
        fs.mkdirSync(path.dirname(options.out), { recursive: true });
        fs.writeFileSync(options.out, rendered);
      }
    });
}
