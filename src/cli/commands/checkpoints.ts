import type { Command } from 'commander';
import { applicationName, loadConfig, STREAM_KINDS } from '../../config/config';
import { createDynamoClient, readLeases, type LeaseRow } from '../../ops/leases';

// `aggregator checkpoints`: the KCL lease tables of the three streams, one row per shard.

export function registerCheckpoints(program: Command): void {
  program
    .command('checkpoints')
    .description('show owner and checkpoint of every shard from the KCL lease tables (DynamoDB)')
    .option('--json', 'one JSON object per line instead of a table')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig(program.opts<{ config?: string }>().config, process.env);
      const client = createDynamoClient(config.aws.region, config.aws.dynamodb.endpoint);
      try {
        for (const kind of STREAM_KINDS) {
          const table = applicationName(config, kind);
          let rows: LeaseRow[];
          try {
            rows = await readLeases(client, table);
          } catch (err) {
            const name = (err as Error).name;
            if (name === 'ResourceNotFoundException') {
              process.stderr.write(
                `lease table ${table} does not exist yet (no daemon has run for ${kind})\n`,
              );
              continue;
            }
            throw err;
          }
          for (const row of rows) {
            if (options.json) {
              process.stdout.write(
                `${JSON.stringify({ stream: config.aws.kinesis.streams[kind], table, ...row })}\n`,
              );
            } else {
              process.stdout.write(
                `${config.aws.kinesis.streams[kind].padEnd(22)} ${row.shardId.padEnd(22)} owner=${row.owner ?? '-'} ` +
                  `checkpoint=${row.checkpoint ?? '-'} counter=${row.leaseCounter ?? '-'}\n`,
              );
            }
          }
        }
      } finally {
        client.destroy();
      }
    });
}
