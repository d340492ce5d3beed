import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig, STREAM_KINDS, type AppConfig, type StreamKind } from '../../config/config';
import { readStackState, startStack, stopStackFromState, writeStackState } from '../../dev/localstack/stack';
import { isAlive } from '../../dev/localstack/service';

// `aggregator stack up|down|status`: the local emulators and Redis, on the ports the config names.

const repoRoot = path.resolve(__dirname, '..', '..', '..', '..');
const defaultStateFile = path.join(repoRoot, '.local', 'stack.json');

function portOf(url: string | undefined, key: string): number {
  if (url === undefined)
    throw new Error(`config key ${key} must name the local emulator (e.g. http://127.0.0.1:4568)`);
  const parsed = new URL(url);
  if (parsed.hostname !== '127.0.0.1' && parsed.hostname !== 'localhost') {
    throw new Error(`config key ${key}: the local stack only runs on loopback, got ${url}`);
  }
  return Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80));
}

/** "trade:2,depth:1" -> per-kind shard counts (1 for kinds not named). */
export function parseShards(text: string | undefined): Record<StreamKind, number> {
  const shards: Record<StreamKind, number> = { trade: 1, bestbidask: 1, depth: 1 };
  if (text === undefined || text.trim() === '') return shards;
  for (const part of text.split(',')) {
    const [kind, count] = part.split(':').map((s) => s.trim());
    if (
      !(STREAM_KINDS as readonly string[]).includes(kind ?? '') ||
      !/^\d+$/.test(count ?? '') ||
      Number(count) < 1
    ) {
      throw new Error(
        `--shards expects kind:count pairs like trade:2,depth:1 (kinds ${STREAM_KINDS.join(', ')}), got "${part}"`,
      );
    }
    shards[kind as StreamKind] = Number(count);
  }
  return shards;
}

function streamShards(config: AppConfig, shards: Record<StreamKind, number>): Record<string, number> {
  return Object.fromEntries(STREAM_KINDS.map((kind) => [config.aws.kinesis.streams[kind], shards[kind]]));
}

export function registerStack(program: Command): void {
  const stack = program.command('stack').description('local stack: kinesis-mock, dynalite, redis-server');
  stack
    .command('up')
    .description('start the local stack in the background on the ports of the config')
    .option(
      '--shards <list>',
      'shards per stream, e.g. trade:2,bestbidask:1,depth:1',
      process.env.STACK_SHARDS,
    )
    .option('--state-file <file>', 'where the running stack is recorded', defaultStateFile)
    .option('--log-dir <dir>', 'emulator logs', path.join(repoRoot, '.local', 'logs'))
    .action(async (options: { shards?: string; stateFile: string; logDir: string }) => {
      const config = loadConfig(program.opts<{ config?: string }>().config, process.env);
      const existing = readStackState(options.stateFile);
      if (existing && existing.services.some((s) => isAlive(s.pid))) {
        throw new Error(
          `a local stack is already running (${options.stateFile}); stop it with: aggregator stack down`,
        );
      }
      const started = Date.now();
      const running = await startStack({
        kinesisPort: portOf(config.aws.kinesis.endpoint, 'aws.kinesis.endpoint'),
        dynamodbPort: portOf(config.aws.dynamodb.endpoint, 'aws.dynamodb.endpoint'),
        redisPort: config.redis.port,
        streams: streamShards(config, parseShards(options.shards)),
        logDir: options.logDir,
        region: config.aws.region,
        detached: true,
      });
      writeStackState(options.stateFile, running.services);
      for (const service of running.services) {
        process.stdout.write(
          `  ${service.name.padEnd(13)} pid ${service.pid}  127.0.0.1:${service.port}  log ${service.logFile}\n`,
        );
      }
      process.stdout.write(`local stack up in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    });
  stack
    .command('down')
    .description('stop the local stack started by `stack up`')
    .option('--state-file <file>', 'where the running stack is recorded', defaultStateFile)
    .action(async (options: { stateFile: string }) => {
      const stopped = await stopStackFromState(options.stateFile);
      process.stdout.write(
        stopped.length === 0 ? 'no local stack running\n' : `stopped ${stopped.join(', ')}\n`,
      );
    });
  stack
    .command('status')
    .description('show the processes of the local stack')
    .option('--state-file <file>', 'where the running stack is recorded', defaultStateFile)
    .action((options: { stateFile: string }) => {
      const state = readStackState(options.stateFile);
      if (state === undefined) {
        process.stdout.write('no local stack recorded\n');
        return;
      }
      for (const service of state.services) {
        const status = isAlive(service.pid) ? 'running' : 'gone';
        process.stdout.write(
          `  ${service.name.padEnd(13)} ${status.padEnd(8)} pid ${service.pid}  127.0.0.1:${service.port}\n`,
        );
      }
    });
}
