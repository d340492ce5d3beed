#!/usr/bin/env node
// The single entry point of every process of the service: `aggregator <command>`.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { registerCheckpoints } from './commands/checkpoints';
import { createArchiveReader } from '../archive/reader';
import { registerDataset } from './commands/dataset';
import { registerDecode } from './commands/decode';
import { registerDlq } from './commands/dlq';
import { registerFeaturesExport } from './commands/features-export';
import { registerFeaturesVerify } from './commands/features-verify';
import { registerKcl } from './commands/kcl';
import { registerProcess } from './commands/process';
import { registerReanchor } from './commands/reanchor';
import { registerFeaturesShow, registerSidecar } from './commands/sidecar';
import { registerWatch } from './commands/watch';

/**
 * The shape of src/cli/dev/index.ts. Declared here rather than imported: even a type-only import would pull the
 * development-only modules into the production build (tsconfig.build.json).
 */
interface DevCommands {
  registerDevCommands(program: Command): void;
}

/** The version in package.json (dist/src/cli/main.js and src/cli/main.ts both sit three folders down). */
export function packageVersion(): string {
  const file = path.join(__dirname, '..', '..', '..', 'package.json');
  const fallback = path.join(__dirname, '..', '..', 'package.json');
  const text = fs.readFileSync(fs.existsSync(file) ? file : fallback, 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/**
 * The development-only commands (replay, stack), registered when their module is present: the production build
 * (tsconfig.build.json) leaves out src/cli/dev with src/dev.
 */
function registerDevCommandsIfPresent(program: Command): void {
  if (!fs.existsSync(path.join(__dirname, 'dev', `index${path.extname(__filename)}`))) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dev = require('./dev') as DevCommands;
  dev.registerDevCommands(program);
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('aggregator')
    .description('Bitcoin Aggregator Service: Kinesis SBE events -> Redis hot state')
    .version(packageVersion(), '-V, --version', "print the service's version")
    .option('-c, --config <file>', 'config file (default: $CONFIG_FILE or config/aggregator.yaml)')
    .showHelpAfterError();
  registerDecode(program);
  registerDevCommandsIfPresent(program);
  registerKcl(program);
  registerProcess(program);
  registerCheckpoints(program);
  registerWatch(program);
  registerSidecar(program);
  registerReanchor(program);
  registerDlq(program);
  registerDataset(program, {
    createArchiveReader: (location, options) =>
      createArchiveReader(location, {
        region: options.region,
        ...(options.s3Endpoint === undefined ? {} : { endpoint: options.s3Endpoint }),
      }),
  });
  const features = program
    .command('features')
    .description('the ML feature vectors: show the served one, export the served history, verify parity');
  registerFeaturesShow(features);
  registerFeaturesExport(features);
  registerFeaturesVerify(features);
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`aggregator: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
