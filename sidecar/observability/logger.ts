// The sidecar's structured log: one JSON object per line, so a log shipper needs no parser config.
import winston from 'winston';
import type { LogHandler, LogLevel } from '../../native/index.js';

/** `timestamp`, `level`, `member` and `message` belong to the line itself: fields of those names are dropped. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  level: LogLevel;
  /** The member writing (a sidecar); absent for a process that is no member (the operator). */
  member?: number;
  /** Default: process.stdout. */
  stream?: NodeJS.WritableStream;
}

/**
 * JSON.stringify throws on bigints (store versions and times are bigints) and writes an Error as
 * `{}`; a log call must do neither.
 */
function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}

export function createLogger(opts: LoggerOptions): Logger {
  // The identifying keys first, so a line reads the same way whatever fields it carries. `member`
  // is always the writer's: a line about another member must not pass for one of its own.
  const leadingKeys = winston.format((info) => {
    const { timestamp, level, message, ...fields } = info;
    delete fields.member;
    return opts.member === undefined ? { timestamp, level, message, ...fields } : { timestamp, level, member: opts.member, message, ...fields };
  });
  const logger = winston.createLogger({
    level: opts.level,
    format: winston.format.combine(
      winston.format.timestamp(),
      leadingKeys(),
      // Not deterministic: that would sort the keys alphabetically and undo leadingKeys.
      winston.format.json({ replacer: jsonSafe, deterministic: false }),
    ),
    transports: [new winston.transports.Stream({ stream: opts.stream ?? process.stdout, eol: '\n' })],
  });
  const at =
    (level: LogLevel) =>
    (message: string, fields?: LogFields): void => {
      // As one object: logger.log(level, message, fields) reads printf tokens in the message
      // ('%s', '%d', ...) and then drops the fields.
      logger.log({ ...fields, level, message });
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A LogHandler for createMember that writes the engine's lines into `logger`, tagged with their component. */
export function engineLogHandler(logger: Logger): LogHandler {
  return (level, component, message) => {
    logger[level](message, { component });
  };
}
