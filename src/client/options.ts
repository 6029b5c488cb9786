// Client settings: the documented options, their defaults, and the resolved form the pool and connections read.
import { InvalidArgumentError } from '../errors';
import { booleanOption, byteSizeOption, choiceOption, countOption, durationOption } from '../options/validate';
import { parseAddress, type BackendAddress, type ConnectTarget } from '../wire/address';
import type { BalancerOptions } from './balancer-options';
import { DEFAULT_MAX_HEADER_BYTES } from '../cgi/response';

/**
 * Options of createClient: `address` (one backend) or `upstreams` (several, see BalancerOptions). Every timeout
 * is in whole milliseconds; 0 turns it off. Counts and byte sizes are integers, checked by the rules createServer
 * uses: a value out of range throws InvalidArgumentError.
 */
export interface ClientOptions extends BalancerOptions {
  /** Where the backend listens: '/path.sock', 'unix:/path', 'host:port', 'tcp://host:port', { path } or { host, port }. */
  address?: BackendAddress;
  /**
   * Most connections open at once (with `upstreams`: to each one without a maxConcurrent). Default 4. With
   * php-fpm keep this at or below `pm.max_children`: each kept connection holds one worker for as long as it
   * stays open, so requests sent on connections beyond the worker count wait in php's accept queue until
   * another connection closes.
   */
  poolSize?: number;
  /** Most requests waiting for a connection (with `upstreams`: for a free slot); one more fails with FCGI_ERR_QUEUE_FULL. Default 1024. */
  queueLimit?: number;
  /** Give up connecting after this long (FCGI_ERR_CONNECT_TIMEOUT). Default 10000. */
  connectTimeout?: number;
  /**
   * While connecting fails, keep retrying (with backoff) for this long before failing the waiting requests with
   * the connect error, so a backend restart costs only the requests it had in flight. Default 1000; 0 fails at once.
   */
  connectRetryWindow?: number;
  /** Fail a request whose response header block is not complete this long after request() (queueing included). Default 60000. */
  requestTimeout?: number;
  /** Fail a response whose body makes no progress for this long, unless the reader is the one holding it back. Default 60000. */
  bodyTimeout?: number;
  /**
   * Close a connection idle for this long. Default 4000: below php-fpm's 5 s close of accepted-but-silent
   * connections and php-fpm `ondemand`'s 10 s idle worker timeout, so the backend never closes first.
   */
  idleTimeout?: number;
  /** Keep connections open across requests (FCGI_KEEP_CONN). Default true; false opens one connection per request. */
  keepConn?: boolean;
  /**
   * Several requests per connection: `'auto'` (default) asks the backend with GET_VALUES on a separate connection
   * and uses the answer (FCGI_MPXS_CONNS); `true` / `false` force it. php-fpm and fcgiwrap never multiplex.
   */
  multiplex?: 'auto' | boolean;
  /** How long the `'auto'` probe waits for GET_VALUES_RESULT (fcgiwrap answers only after a BEGIN_REQUEST). Default 1000. */
  probeTimeout?: number;
  /** Most requests in flight on one multiplexed connection (also capped by the backend's FCGI_MAX_REQS). Default 128. */
  maxRequestsPerConnection?: number;
  /**
   * A stream body of unknown length is read into memory first so CONTENT_LENGTH is exact (php-fpm ignores a
   * body without it); this caps it, in bytes (FCGI_ERR_BODY_TOO_LARGE). `false` refuses such bodies. Default 16 MiB.
   */
  bufferUnknownLength?: number | false;
  /** Largest CGI header block accepted in a response, in bytes (FCGI_ERR_CGI_HEADER_TOO_LARGE). Default 64 KiB. */
  maxHeaderBytes?: number;
  /** STDERR kept per response for `response.stderr`, in bytes; the rest is counted but dropped. Default 64 KiB. */
  maxStderrBytes?: number;
  /** Bytes of response body buffered before the connection stops reading (backpressure). Default 64 KiB. */
  highWaterMark?: number;
  /** Bytes queued for the socket before request bodies wait for it to drain. Default 256 KiB. */
  connectionHighWaterMark?: number;
  /** How an aborted request is stopped: ABORT_REQUEST, or closing its connection. Default: ABORT_REQUEST on multiplexed connections, close otherwise. */
  abortWith?: 'abort-request' | 'close';
  /** Pad records to 8 bytes (FastCGI 1.0 §3.3 recommends it; php-fpm and nginx do). Default true. */
  padRecords?: boolean;
  /**
   * Send a request again, on another connection, when the backend closed the kept connection it went out on
   * before answering a byte: a backend closing an idle connection (php-fpm recycling a worker, a fastcgi-engine
   * worker retiring on reload) races the next request sent on it. Only for requests safe to repeat: an
   * idempotent REQUEST_METHOD (GET, HEAD, OPTIONS, TRACE, PUT, DELETE; RFC 9110 §9.2.2) and a body held in
   * memory, as nginx does for its cached upstream connections. Default true.
   */
  retryStaleConnection?: boolean;
}

/** ClientOptions with defaults applied and the address parsed. */
export interface ResolvedClientOptions {
  /** The backend; null when the client spans `upstreams` (each has its own). */
  target: ConnectTarget | null;
  poolSize: number;
  queueLimit: number;
  connectTimeout: number;
  connectRetryWindow: number;
  requestTimeout: number;
  bodyTimeout: number;
  idleTimeout: number;
  keepConn: boolean;
  multiplex: 'auto' | boolean;
  probeTimeout: number;
  maxRequestsPerConnection: number;
  bufferUnknownLength: number | false;
  maxHeaderBytes: number;
  maxStderrBytes: number;
  highWaterMark: number;
  connectionHighWaterMark: number;
  abortWith: 'abort-request' | 'close' | null;
  padRecords: boolean;
  retryStaleConnection: boolean;
}

/** resolveClientOptions applies defaults and checks each option; throws InvalidArgumentError (FCGI_ERR_INVALID_ARGUMENT). */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new InvalidArgumentError('createClient needs an options object with an address or upstreams');
  const spans = options.upstreams !== undefined;
  if (spans === (options.address !== undefined))
    throw new InvalidArgumentError('createClient needs an address or upstreams (one of the two)');
  const buffer =
    options.bufferUnknownLength === false
      ? false
      : byteSizeOption('bufferUnknownLength', options.bufferUnknownLength, 16 * 1024 * 1024);
  return {
    target: spans ? null : parseAddress(options.address!),
    poolSize: countOption('poolSize', options.poolSize, 4),
    queueLimit: countOption('queueLimit', options.queueLimit, 1024, 0),
    connectTimeout: durationOption('connectTimeout', options.connectTimeout, 10_000),
    connectRetryWindow: durationOption('connectRetryWindow', options.connectRetryWindow, 1000),
    requestTimeout: durationOption('requestTimeout', options.requestTimeout, 60_000),
    bodyTimeout: durationOption('bodyTimeout', options.bodyTimeout, 60_000),
    idleTimeout: durationOption('idleTimeout', options.idleTimeout, 4000),
    keepConn: booleanOption('keepConn', options.keepConn, true),
    multiplex: choiceOption('multiplex', options.multiplex, ['auto', true, false] as const, 'auto'),
    probeTimeout: durationOption('probeTimeout', options.probeTimeout, 1000, 1),
    maxRequestsPerConnection: countOption('maxRequestsPerConnection', options.maxRequestsPerConnection, 128),
    bufferUnknownLength: buffer,
    maxHeaderBytes: byteSizeOption('maxHeaderBytes', options.maxHeaderBytes, DEFAULT_MAX_HEADER_BYTES, 1),
    maxStderrBytes: byteSizeOption('maxStderrBytes', options.maxStderrBytes, 64 * 1024),
    highWaterMark: byteSizeOption('highWaterMark', options.highWaterMark, 64 * 1024, 1),
    connectionHighWaterMark: byteSizeOption('connectionHighWaterMark', options.connectionHighWaterMark, 256 * 1024, 1),
    abortWith: choiceOption('abortWith', options.abortWith, ['abort-request', 'close'] as const, null),
    padRecords: booleanOption('padRecords', options.padRecords, true),
    retryStaleConnection: booleanOption('retryStaleConnection', options.retryStaleConnection, true),
  };
}
