import type { Command } from 'commander';
import { exportServedVectors } from '../../app/features-export';
import { PartialFile } from '../../common/partial-file';
import { loadConfig } from '../../config/config';
import { Keys } from '../../state/keys';
import { createRedisClient } from '../../state/redis';

// `aggregator features export <SYMBOL...> [--out FILE]`: the served vectors (feat:<S>:history) as JSON lines, the
// file `dataset verify --served` reads. The history keeps two hours: export it to verify a dataset later.

export function registerFeaturesExport(featuresCommand: Command): void {
  featuresCommand
    .command('export')
    .description(
      'write the served vectors of feat:<SYMBOL>:history, oldest first, as JSON lines {"symbol","id","fields"} ' +
        '(the file dataset verify --served reads); exit 1 when a symbol has none',
    )
    .argument('<SYMBOL...>', 'symbols, e.g. BTCUSDT ETHUSDT')
    .option('--out <file>', 'write to this file (FILE.partial, renamed when done) instead of stdout')
    .action(async (symbolArgs: string[], options: { out?: string }, command: Command) => {
      const config = loadConfig(command.optsWithGlobals<{ config?: string }>().config, process.env);
      const keys = new Keys({ clusterMode: config.redis.clusterMode });
      const symbols = [...new Set(symbolArgs.map((s) => s.toUpperCase()))];
      const file = options.out === undefined ? undefined : new PartialFile(options.out);
      const write = (text: string): void => {
        if (file === undefined) process.stdout.write(text);
        else file.write(text);
      };
      const redis = createRedisClient(config.redis, { connectionName: 'features-export' });
      redis.on('error', () => undefined);
      try {
        const counts = await exportServedVectors(redis, keys, symbols, write);
        file?.commit();
        for (const [symbol, n] of counts) {
          process.stderr.write(`${symbol}: ${n} served vectors (${keys.featureHistory(symbol)})\n`);
          if (n === 0) process.exitCode = 1;
        }
      } finally {
        redis.disconnect();
        file?.abort();
      }
    });
}
