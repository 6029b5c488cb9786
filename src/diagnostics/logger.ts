// One log interface over the two logger shapes the options accept: `{ warn(message), error(message) }`, and a
// structured logger such as pino (`warn(fields, message)`), told apart by pino's `child` / `level`. Lines
// about a request carry its fields (request id, REQUEST_URI, ...): as fields for a structured logger, appended
// to the text for a plain one.

/** A logger taking text: where warnings and errors go. */
export interface Logger {
  warn(message: string): void;
  error(message: string): void;
}

/**
 * A structured logger, pino's shape: fields first, the message second. Recognised by its `level` property (or
 * a `child` function), so a pino logger (or a child of one) can be passed as it is.
 */
export interface StructuredLogger {
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
  /** pino's level name; a `level` string or a `child` function is what marks a structured logger. */
  level?: string;
  child?(bindings: object): unknown;
}

/** Fields a log line carries (request id, REQUEST_URI, upstream...). */
export type LogFields = Readonly<Record<string, string | number | undefined>>;

/**
 * What the engine logs through: text, with optional fields. `inText` false: the message already
 * says what the fields say, so a plain logger gets the message alone.
 */
export interface LogSink {
  warn(message: string, fields?: LogFields, inText?: boolean): void;
  error(message: string, fields?: LogFields, inText?: boolean): void;
}

/** Whether `logger` takes fields first (pino, or a logger of its shape). */
export function isStructuredLogger(logger: Logger | StructuredLogger): logger is StructuredLogger {
  const candidate = logger as { child?: unknown; level?: unknown };
  return typeof candidate.child === 'function' || typeof candidate.level === 'string';
}

/** @internal Wraps either logger shape as a LogSink (the methods are called on the logger, keeping `this`). */
export function toLogSink(logger: Logger | StructuredLogger): LogSink {
  if (isStructuredLogger(logger)) {
    return {
      warn: (message, fields) => logger.warn(fields ?? {}, message),
      error: (message, fields) => logger.error(fields ?? {}, message),
    };
  }
  return {
    warn: (message, fields, inText = true) =>
      logger.warn(fields === undefined || !inText ? message : `${message} ${formatFields(fields)}`),
    error: (message, fields, inText = true) =>
      logger.error(fields === undefined || !inText ? message : `${message} ${formatFields(fields)}`),
  };
}

/** Fields as text for a plain logger: `[requestId=1 uri=/x]`. */
export function formatFields(fields: LogFields): string {
  const parts: string[] = [];
  for (const name of Object.keys(fields)) {
    const value = fields[name];
    if (value !== undefined) parts.push(`${name}=${value}`);
  }
  return `[${parts.join(' ')}]`;
}
