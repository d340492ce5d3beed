import kcl from 'aws-kcl';
import type { AppConfig, StreamKind } from '../config/config';
import { createLogger, endLogger } from '../logging/logger';
import { ShardProcessor } from '../kcl/shard-processor';
import { toKclRecordProcessor } from '../kcl/protocol-adapter';
import { claimStdoutForProtocol } from '../kcl/stdout-guard';
import { Keys } from '../state/keys';
import { RedisOutage } from '../state/outage';
import { createRedisClient } from '../state/redis';
import { withRetry } from '../state/retry';
import { StateWriter } from '../state/writer';
import { requestReanchor, RequestThrottle } from '../reanchor/requests';
import { ProcessorTelemetry, publishReport } from '../ops/telemetry';

// The record-processor process: the child the KCL MultiLangDaemon starts for each shard lease (`aggregator process
// --stream <kind>`, src/cli/commands/process.ts). Speaks the MultiLang protocol on stdin/stdout and nothing else
// on stdout; logs go to the configured file or stderr. Ends only when the daemon closes its stdin (exit 0) or on
// a fatal protocol error (exit 1).

/** How often a processor publishes its telemetry report for the sidecar. */
const PUBLISH_EVERY_MS = 2000;

export interface RecordProcessorOptions {
  readonly config: AppConfig;
  readonly kind: StreamKind;
  /** The task whose sidecar exports this child's metrics (inherited from the daemon's environment). */
  readonly task: string;
}

/** Claims stdout for the protocol, assembles the shard processor and runs it on stdin/stdout. */
export function runRecordProcessor({ config, kind, task }: RecordProcessorOptions): void {
  const protocolOut = claimStdoutForProtocol();
  // SIGINT/SIGTERM sent to the process group would kill the child before the daemon's graceful shutdown;
  // the child ends when the daemon closes its stdin instead.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);

  const stream = config.aws.kinesis.streams[kind];
  const logger = createLogger({
    level: config.logging.level,
    file: config.logging.file,
    defaultMeta: { service: config.serviceName, role: 'processor', stream, pid: process.pid },
  });
  const redis = createRedisClient(config.redis, { connectionName: `processor:${kind}:${process.pid}` });
  const keys = new Keys({ clusterMode: config.redis.clusterMode });
  const telemetry = new ProcessorTelemetry(stream, { task });
  // One line when Redis goes away, one when it answers again; the batch in hand waits (ride-through) meanwhile.
  const outage = new RedisOutage({
    logger,
    rideThrough: `${config.processing.batchDeadlineMs / 1000} s per batch (processing.batch_deadline_ms)`,
    onEnd: (ms) => telemetry.recordRedisOutageEnd(ms),
  });
  outage.watch(redis);
  telemetry.watchOutage(outage);
  let publishing = false;
  // Declared before publish(): a report in flight when the child exits must neither log (the logger has ended:
  // winston would raise "write after end") nor use the closed connection.
  let exiting = false;
  const publish = (): void => {
    if (publishing || exiting) return;
    publishing = true;
    telemetry
      .report()
      .then((report) => publishReport(redis, keys, report))
      .then(() => outage.recovered())
      .catch((err: unknown) => {
        if (!exiting)
          logger.debug('could not publish the telemetry report', { error: (err as Error).message });
      })
      .finally(() => {
        publishing = false;
      });
  };
  const publishTimer = setInterval(publish, PUBLISH_EVERY_MS);
  publishTimer.unref();
  const throttle = new RequestThrottle(config.reanchor.requestIntervalSeconds * 1000);
  const writer = new StateWriter(redis, keys, {
    orderBookLevels: config.processing.orderBookLevels,
    diffBufferMaxLength: config.processing.diffBufferMaxLength,
    deadLetterMaxLen: config.processing.deadLetterMaxLen,
  });

  const exit = (code: number) => {
    if (exiting) return;
    exiting = true;
    clearInterval(publishTimer);
    redis.disconnect();
    // Not logger.end(): under a backlog of log lines it crashes the child (see endLogger). A backlog drains at
    // ~25,000 lines/s (e.g. after a burst of dead letters): give it a few seconds, then exit anyway.
    endLogger(logger, () => process.exit(code), 3500);
    setTimeout(() => process.exit(code), 4000).unref();
  };

  const processor = new ShardProcessor({
    stream,
    writer,
    logger,
    maxFutureSkewMs: config.processing.maxFutureSkewMs,
    symbols: {
      listed: new Set(config.processing.symbols),
      unlisted: config.processing.unlistedSymbols,
    },
    // Ride-through: a batch that meets an outage keeps retrying (capped at 1 s between attempts, so ingestion
    // resumes within about a second of Redis answering) until processing.batch_deadline_ms, unacknowledged.
    writeWithRetry: async (write) => {
      const result = await withRetry(write, {
        deadline: Date.now() + config.processing.batchDeadlineMs,
        retries: config.processing.redisRetries,
        baseDelayMs: 50,
        maxDelayMs: 1000,
        onRetry: (attempt, err, delayMs) => {
          telemetry.recordRedisRetry();
          outage.failed(err);
          logger.debug('redis write failed; retrying', { attempt, delayMs, error: (err as Error).message });
        },
      });
      outage.recovered();
      return result;
    },
    onInitialize: (shardId) => {
      // Every later log line of this child names its shard (correlation with the lease table and metrics).
      logger.defaultMeta = { ...(logger.defaultMeta as Record<string, unknown>), shard: shardId };
      telemetry.setShard(shardId);
      publish();
    },
    onBatch: (report) => {
      telemetry.recordBatch(report, report.deadLetterCodes);
      logger.debug('batch stored', {
        shard: report.shardId,
        records: report.records,
        frames: report.frames,
        deadLetters: report.deadLetters,
        writeMs: report.writeMs,
        handleMs: report.handleMs,
        checkpoint: report.checkpointed,
      });
    },
    onIntegrityIssue: (issue) => {
      if (!config.reanchor.enabled || !throttle.allow(issue.symbol, Date.now())) return;
      requestReanchor(redis, keys, { ...issue, source: 'processor' }).then(
        (id) => logger.info('re-anchor requested', { ...issue, requestId: id }),
        (err: unknown) =>
          // The sidecar's monitor requests it too (the book stays out of sync), so this is not the only chance.
          logger.error('could not queue a re-anchor request', { ...issue, error: (err as Error).message }),
      );
    },
  });

  const recordProcessor = toKclRecordProcessor(processor, { logger, fatal: () => exit(1) });
  kcl(recordProcessor, process.stdin, protocolOut, process.stderr).run();
  // The daemon closes stdin after leaseLost/shardEnded (or when it dies): that is the only way out.
  process.stdin.on('end', () => {
    logger.info('stdin closed; exiting');
    exit(0);
  });
}
