// Server settings: the documented options, their defaults, and the resolved form the connection reads.
import { unmapIPv4 } from '../wire/address';
import type { Scanner } from '../codec/scanner';
import { InvalidArgumentError } from '../errors';
import {
  booleanOption,
  byteSizeOption,
  choiceOption,
  countOption,
  durationOption,
  modeOption,
  objectOption,
  optionsObject,
} from '../options/validate';
import { toLogSink, type LogSink, type Logger, type StructuredLogger } from '../diagnostics/logger';

/** Where the server reports what it does not throw: protocol errors, handler failures, refused peers. */
export type { Logger, StructuredLogger } from '../diagnostics/logger';

/**
 * Options of createServer / serve / the node-fastcgi drop-in. Every limit has a default that suits nginx.
 * Counts and byte sizes are integers and durations whole milliseconds (0 turns a timeout off), checked by the
 * rules createClient uses: a value out of range throws InvalidArgumentError (FCGI_ERR_INVALID_ARGUMENT).
 */
export interface ServerOptions {
  /** Accept several requests at once on one connection (FCGI_MPXS_CONNS). Default true. */
  multiplex?: boolean;
  /** Most connections at once (net.Server.maxConnections, and FCGI_MAX_CONNS). Default 1024. */
  maxConnections?: number;
  /** Most requests in flight on one connection; more get END_REQUEST(OVERLOADED). Default 128. */
  maxRequestsPerConnection?: number;
  /** Largest params block of one request, in bytes. Default 1 MiB. */
  maxParamsBytes?: number;
  /** Most params in one request. Default 4096. */
  maxParamsCount?: number;
  /**
   * Close a connection that has had no request in flight for this many ms (0: never). Bytes that do not
   * complete a BEGIN_REQUEST do not restart it. Default 300000.
   */
  idleTimeout?: number;
  /** Close a new connection whose first BEGIN_REQUEST has not arrived this many ms after accept (0: never). Default 10000. */
  beginTimeout?: number;
  /** Close a connection whose request's params have not all arrived this many ms after BEGIN_REQUEST. Default 30000. */
  paramsTimeout?: number;
  /**
   * Close a connection whose request body stalls: each body has this many ms, extended by 1 s per
   * `minBodyRate` bytes received but never beyond this many ms ahead, so a body must keep arriving at
   * `minBodyRate` on average (Apache mod_reqtimeout's body rule). Time the server spends not reading (its
   * own backpressure) does not count. 0: no limit. Default 30000.
   */
  bodyTimeout?: number;
  /** The body rate, in bytes per second, that extends `bodyTimeout`. Default 500. */
  minBodyRate?: number;
  /** Close a connection whose peer has read none of our output for this many ms while it is over connectionHighWaterMark (0: never). Default 60000. */
  sendTimeout?: number;
  /**
   * Bytes of params and unread request bodies one connection may hold. Params that do not fit close the
   * connection (FCGI_ERR_BUFFER_LIMIT); bodies that do not fit stop it reading until the application reads.
   * Default 8 MiB.
   */
  maxConnectionBufferBytes?: number;
  /**
   * Bytes of params and unread request bodies all connections together may hold. When params would go over,
   * the connection holding the most is closed (FCGI_ERR_BUFFER_LIMIT); bodies wait. Default 128 MiB.
   */
  maxBufferBytes?: number;
  /** Abort a request whose handler has not ended its response after this many ms (0: never). Default 0. */
  handlerTimeout?: number;
  /** Response bytes buffered per request before write() returns false. Default 64 KiB. */
  outputHighWaterMark?: number;
  /** Unread request-body bytes buffered per request before the connection stops reading. Default 64 KiB. */
  inputHighWaterMark?: number;
  /** Bytes queued per connection before response streams wait for the socket to drain. Default 256 KiB. */
  connectionHighWaterMark?: number;
  /** Pad records to 8 bytes. Default true. */
  padRecords?: boolean;
  /** Extra or overriding GET_VALUES answers (node-fastcgi's `valueMap`). */
  valueMap?: Record<string, string | number>;
  /** Web server addresses allowed to connect (FCGI_WEB_SERVER_ADDRS); default from the environment. */
  webServerAddrs?: string[] | string | null;
  /** File mode for a unix socket the server creates, e.g. 0o660. */
  socketMode?: number;
  /** How long close() waits for in-flight requests before it destroys their connections, in ms. Default 30000. */
  closeTimeout?: number;
  /**
   * Where the application is mounted, which decides `req.url`, `req.baseUrl` and `req.originalUrl` whatever
   * SCRIPT_NAME / PATH_INFO the web server sends (each sends different ones; docs/deployment.md).
   * Unset (default): `req.url` is REQUEST_URI, the whole path the client asked for.
   * A path such as '/app': `req.baseUrl` is '/app' and `req.url` the rest of REQUEST_URI ('/x?q=1' for
   * '/app/x?q=1'); '/' mounts at the root (`req.url` is the whole path, `req.baseUrl` ''). A path outside the
   * prefix is left whole. Like flup's ScriptNameStripper ('/') and Werkzeug's CGIRootFix (a prefix), built in.
   * 'cgi': trust the server: `req.baseUrl` is SCRIPT_NAME and `req.url` PATH_INFO ('/' when empty) plus the
   * query, taken raw from REQUEST_URI when it agrees (right for nginx with fastcgi_split_path_info, lighttpd with
   * a prefix without trailing slash or fix-root-scriptname, Apache with proxy-fcgi-pathinfo, mod_fcgid).
   */
  mount?: string;
  /**
   * Where warnings and errors go: `{ warn(message), error(message) }`, or a pino logger as it is (pino's
   * methods also take a message alone, so it fits this type; at run time its `level` / `child` mark it, and it
   * is called fields first). Lines about a request carry its requestId and REQUEST_URI (as fields
   * for pino, in the text otherwise). Default: console, prefixed `fastcgi-engine:`.
   */
  logger?: Logger;
  /**
   * Requests taking at least this many ms (BEGIN_REQUEST to END_REQUEST) count as slow in `server.stats()`
   * and are logged as a warning (php-fpm's request_slowlog_timeout). 0 (default): off.
   */
  slowRequestThreshold?: number;
  /** @internal Scanner override for tests. */
  scanner?: Scanner;
  /** @internal How params decode: 'latin1' (bytes, as node:http) or 'utf8' (node-fastcgi's drop-in). */
  paramsEncoding?: 'latin1' | 'utf8';
}

/** ServerOptions with every default applied. */
export interface ResolvedOptions {
  multiplex: boolean;
  maxConnections: number;
  maxRequestsPerConnection: number;
  maxParamsBytes: number;
  maxParamsCount: number;
  idleTimeout: number;
  beginTimeout: number;
  paramsTimeout: number;
  bodyTimeout: number;
  minBodyRate: number;
  sendTimeout: number;
  maxConnectionBufferBytes: number;
  maxBufferBytes: number;
  handlerTimeout: number;
  outputHighWaterMark: number;
  inputHighWaterMark: number;
  connectionHighWaterMark: number;
  padRecords: boolean;
  valueMap: Record<string, string | number>;
  webServerAddrs: Set<string> | null;
  socketMode: number | null;
  closeTimeout: number;
  /** null (REQUEST_URI), 'cgi', or a prefix without trailing slash ('' for the root). */
  mount: string | null;
  logger: LogSink;
  slowRequestThreshold: number;
  scanner: Scanner | undefined;
  paramsEncoding: 'latin1' | 'utf8';
}

export const consoleLogger: LogSink = {
  warn: (message) => console.warn(`fastcgi-engine: ${message}`),
  error: (message) => console.error(`fastcgi-engine: ${message}`),
};

/**
 * parseWebServerAddrs reads FCGI_WEB_SERVER_ADDRS (FastCGI 1.0 §3.2: comma-separated IP addresses); null when
 * unset, meaning every peer is allowed.
 */
export function parseWebServerAddrs(value: string[] | string | null | undefined): Set<string> | null {
  if (value === null || value === undefined) return null;
  const list = Array.isArray(value) ? value : value.split(',');
  const addresses = list.map((a) => normalizeAddress(a.trim())).filter((a) => a !== '');
  return addresses.length === 0 ? null : new Set(addresses);
}

/** normalizeAddress folds IPv4-mapped IPv6 (::ffff:127.0.0.1) to IPv4 and lower-cases, so spellings match. */
export function normalizeAddress(address: string): string {
  return unmapIPv4(address).toLowerCase();
}

/** resolveMount checks the `mount` option: 'cgi', or a path starting with '/' (trailing slashes dropped). */
export function resolveMount(mount: string | undefined): string | null {
  if (mount === undefined) return null;
  if (mount === 'cgi') return mount;
  if (typeof mount !== 'string' || !mount.startsWith('/') || /[?#]/.test(mount)) {
    throw new InvalidArgumentError(`mount must be 'cgi' or a path starting with '/', got ${JSON.stringify(mount)}`);
  }
  return mount.replace(/\/+$/, '');
}

/** resolveLogger checks a `logger` option (either shape) and wraps it; undefined gives `fallback`. */
export function resolveLogger(logger: unknown, fallback: LogSink = consoleLogger): LogSink {
  const given = objectOption<Partial<Logger>>('logger', logger);
  if (given === undefined) return fallback;
  if (typeof given.warn !== 'function' || typeof given.error !== 'function')
    throw new InvalidArgumentError('logger must have warn(message) and error(message) methods');
  return toLogSink(given as Logger | StructuredLogger);
}

function checkWebServerAddrs(value: unknown): string[] | string | null | undefined {
  if (value === undefined || value === null || typeof value === 'string') return value;
  if (Array.isArray(value) && value.every((a) => typeof a === 'string')) return value as string[];
  throw new InvalidArgumentError('webServerAddrs must be a comma-separated string, an array of addresses, or null');
}

/** resolveOptions applies defaults and checks each option; throws InvalidArgumentError (FCGI_ERR_INVALID_ARGUMENT). */
export function resolveOptions(given?: ServerOptions): ResolvedOptions {
  const options = optionsObject<ServerOptions>('createServer', given);
  return {
    multiplex: booleanOption('multiplex', options.multiplex, true),
    maxConnections: countOption('maxConnections', options.maxConnections, 1024),
    maxRequestsPerConnection: countOption('maxRequestsPerConnection', options.maxRequestsPerConnection, 128),
    maxParamsBytes: byteSizeOption('maxParamsBytes', options.maxParamsBytes, 1024 * 1024),
    maxParamsCount: countOption('maxParamsCount', options.maxParamsCount, 4096, 0),
    idleTimeout: durationOption('idleTimeout', options.idleTimeout, 300_000),
    beginTimeout: durationOption('beginTimeout', options.beginTimeout, 10_000),
    paramsTimeout: durationOption('paramsTimeout', options.paramsTimeout, 30_000),
    bodyTimeout: durationOption('bodyTimeout', options.bodyTimeout, 30_000),
    minBodyRate: byteSizeOption('minBodyRate', options.minBodyRate, 500),
    sendTimeout: durationOption('sendTimeout', options.sendTimeout, 60_000),
    maxConnectionBufferBytes: byteSizeOption(
      'maxConnectionBufferBytes',
      options.maxConnectionBufferBytes,
      8 * 1024 * 1024,
    ),
    maxBufferBytes: byteSizeOption('maxBufferBytes', options.maxBufferBytes, 128 * 1024 * 1024),
    handlerTimeout: durationOption('handlerTimeout', options.handlerTimeout, 0),
    outputHighWaterMark: byteSizeOption('outputHighWaterMark', options.outputHighWaterMark, 64 * 1024),
    inputHighWaterMark: byteSizeOption('inputHighWaterMark', options.inputHighWaterMark, 64 * 1024),
    connectionHighWaterMark: byteSizeOption('connectionHighWaterMark', options.connectionHighWaterMark, 256 * 1024, 1),
    padRecords: booleanOption('padRecords', options.padRecords, true),
    valueMap: objectOption<Record<string, string | number>>('valueMap', options.valueMap) ?? {},
    webServerAddrs: parseWebServerAddrs(
      options.webServerAddrs === undefined
        ? process.env.FCGI_WEB_SERVER_ADDRS
        : checkWebServerAddrs(options.webServerAddrs),
    ),
    socketMode: modeOption('socketMode', options.socketMode),
    closeTimeout: durationOption('closeTimeout', options.closeTimeout, 30_000),
    mount: resolveMount(options.mount),
    logger: resolveLogger(options.logger),
    slowRequestThreshold: durationOption('slowRequestThreshold', options.slowRequestThreshold, 0),
    scanner: options.scanner,
    paramsEncoding: choiceOption('paramsEncoding', options.paramsEncoding, ['latin1', 'utf8'] as const, 'latin1'),
  };
}
