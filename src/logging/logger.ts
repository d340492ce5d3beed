import winston from 'winston';
import type { LogLevel } from '../config/config';

// Structured JSON logs. Processors run under the KCL daemon, whose protocol owns their stdout, so no
// transport here ever writes to stdout: a file when configured, else stderr.

export type Logger = winston.Logger;

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Append JSON lines here; when absent, log to stderr. */
  readonly file: string | undefined;
  /** Fields stamped on every line (service, process role, stream, shard, ...). */
  readonly defaultMeta: Record<string, string | number>;
}

export function createLogger(options: LoggerOptions): Logger {
  const transports: winston.transport[] =
    options.file !== undefined
      ? [new winston.transports.File({ filename: options.file })]
      : [new winston.transports.Stream({ stream: process.stderr })];
  return winston.createLogger({
    level: options.level,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
    defaultMeta: options.defaultMeta,
    transports,
  });
}

/** A logger that drops everything: for unit tests and tools that report through their own output. */
export function silentLogger(): Logger {
  return winston.createLogger({
    silent: true,
    transports: [new winston.transports.Stream({ stream: process.stderr })],
  });
}

/**
 * Ends the logger, then calls `done` once its transports finished. winston's end() alone is not safe under load:
 * Logger._final ends the transports at once, even while entries still wait in the logger's own buffer because a
 * transport (a file after a burst of lines, e.g. thousands of dead letters) applied backpressure; the pipe then
 * writes them to the ended transport and the process dies of an unhandled "write after end" (exit 1), losing the
 * last lines. So the buffer is drained first (for at most `waitMs`), and a late write error can only lose lines.
 */
export function endLogger(logger: Logger, done: () => void, waitMs = 1500): void {
  const deadline = Date.now() + waitMs;
  logger.on('error', () => undefined);
  const end = (): void => {
    // Entries wait on both sides of the logger (a Transform): not yet formatted, and formatted but not piped.
    if (logger.writableLength + logger.readableLength > 0 && Date.now() < deadline) {
      setTimeout(end, 5);
      return;
    }
    logger.once('finish', done);
    logger.end();
  };
  end();
}
