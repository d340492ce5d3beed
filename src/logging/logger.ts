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
