#!/usr/bin/env node
// The single entry point of every process of the service: `aggregator <command>`.
import { Command } from 'commander';
import { registerDecode } from './commands/decode';
import { registerReplay } from './commands/replay';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('aggregator')
    .description('Bitcoin Aggregator Service: Kinesis SBE events -> Redis hot state')
    .option('-c, --config <file>', 'config file (default: $CONFIG_FILE or config/aggregator.yaml)')
    .showHelpAfterError();
  registerDecode(program);
  registerReplay(program);
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
