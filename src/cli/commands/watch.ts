import type { Command } from 'commander';
import { applicationName, loadConfig, STREAM_KINDS } from '../../config/config';
import { createDynamoClient, readLeases } from '../../ops/leases';
import { Keys } from '../../state/keys';
import { createRedisClient } from '../../state/redis';

// `aggregator watch`: a live view for people running the local stack: what the processors have written to
// Redis per symbol, dead letters, and the checkpoints in the lease tables. Read-only.

export function registerWatch(program: Command): void {
  program
    .command('watch')
    .description('print the Redis state per symbol and the shard checkpoints every few seconds')
    .option('--interval <seconds>', 'seconds between prints', '2')
    .option('--duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)')
    .option('--since <epochMs>', 'time origin for "first state in Redis" (default: when watch starts)')
    .action(async (options: { interval: string; duration?: string; since?: string }) => {
      const config = loadConfig(program.opts<{ config?: string }>().config, process.env);
      const keys = new Keys({ clusterMode: config.redis.clusterMode });
      const redis = createRedisClient(config.redis, { connectionName: 'watch', maxRetriesPerRequest: 1 });
      redis.on('error', () => undefined);
      const dynamo = createDynamoClient(config.aws.region, config.aws.dynamodb.endpoint);
      const started = options.since === undefined ? Date.now() : Number(options.since);
      const intervalMs = Math.max(0.2, Number(options.interval)) * 1000;
      const endAt = options.duration === undefined ? Infinity : Date.now() + Number(options.duration) * 1000;
      let firstSeen: number | undefined;
      let firstReported = false;
      let stop = false;
      process.once('SIGINT', () => {
        stop = true;
      });
      try {
        while (!stop && Date.now() < endAt) {
          const elapsed = ((Date.now() - started) / 1000).toFixed(1);
          const lines: string[] = [`--- ${new Date().toISOString()} (+${elapsed} s)`];
          for (const symbol of config.processing.symbols) {
            const [trade, tradeId, bid, ask, spread, bookId] = await redis
              .hmget(
                keys.orderBook(symbol),
                'last_trade_price',
                'last_trade_id',
                'best_bid',
                'best_ask',
                'spread',
                'bba_update_id',
              )
              .catch(() => [] as Array<string | null>);
            if (trade != null || bid != null) firstSeen ??= Date.now();
            lines.push(
              `  ${keys.orderBook(symbol).padEnd(14)} last_trade_price=${trade ?? '-'} (id ${tradeId ?? '-'})  ` +
                `best_bid=${bid ?? '-'} best_ask=${ask ?? '-'} spread=${spread ?? '-'} (update ${bookId ?? '-'})`,
            );
            const [featureTs, completeness, dataAge, ret1s, spreadBp] = await redis
              .hmget(
                keys.features(symbol),
                'feature_ts',
                'completeness',
                'data_age_ms',
                'ret_1s',
                'spread_bp',
              )
              .catch(() => [] as Array<string | null>);
            const [status, reason, reanchors] = await redis
              .hmget(keys.bookState(symbol), 'status', 'reason', 'reanchors')
              .catch(() => [] as Array<string | null>);
            const [outcome, finishedMs, durationMs, failed] = await redis
              .hmget(
                keys.reanchorStats(symbol),
                'last_outcome',
                'last_finished_ms',
                'last_duration_ms',
                'failed',
              )
              .catch(() => [] as Array<string | null>);
            const running = await redis.exists(keys.reanchorFlag(symbol)).catch(() => 0);
            lines.push(
              `  ${''.padEnd(14)} book: ${status ?? '-'}${reason ? ` (${reason})` : ''}  re-anchors: ${reanchors ?? 0}` +
                (running === 1 ? ' (one running)' : '') +
                (outcome
                  ? `, last ${outcome} in ${durationMs} ms, ${((Date.now() - Number(finishedMs)) / 1000).toFixed(0)} s ago` +
                    `, failed ${failed ?? 0}`
                  : ''),
            );
            const [tr1Count, tr1Volume] = await redis
              .hmget(keys.tradeWindow(symbol, 1), 'count', 'volume')
              .catch(() => [] as Array<string | null>);
            lines.push(
              `  ${''.padEnd(14)} tr 1s: count=${tr1Count ?? '-'} volume=${tr1Volume ?? '-'}   ` +
                (featureTs == null
                  ? 'feat: (no vector yet)'
                  : `feat: age ${Date.now() - Number(featureTs)} ms completeness=${completeness} data_age_ms=${dataAge} ret_1s=${ret1s} spread_bp=${spreadBp}`),
            );
          }
          for (const kind of STREAM_KINDS) {
            const stream = config.aws.kinesis.streams[kind];
            const dead = await redis.hgetall(keys.deadLetterCounts(stream)).catch(() => ({}));
            const leases = await readLeases(dynamo, applicationName(config, kind)).catch(() => []);
            const shards = leases
              .map((l) => `${l.shardId.replace('shardId-', '')}@${(l.checkpoint ?? '-').slice(-12)}`)
              .join(' ');
            const deadText = Object.keys(dead).length === 0 ? '0' : JSON.stringify(dead);
            lines.push(
              `  ${stream.padEnd(22)} checkpoints: ${shards || '(no leases yet)'}  dead letters: ${deadText}`,
            );
          }
          if (firstSeen !== undefined && !firstReported) {
            firstReported = true;
            lines.push(`  first state in Redis ${((firstSeen - started) / 1000).toFixed(1)} s after start`);
          }
          process.stdout.write(`${lines.join('\n')}\n`);
          await new Promise((r) => setTimeout(r, intervalMs));
        }
      } finally {
        redis.disconnect();
        dynamo.destroy();
      }
    });
}
