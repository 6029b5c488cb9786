// Client settings: the documented options, their defaults, and the resolved form the pool and connections read.
import { InvalidArgumentError } from '../errors';
import { parseAddress, type BackendAddress, type ConnectTarget } from '../wire/address';
import { DEFAULT_MAX_HEADER_BYTES } from '../cgi/response';

/** Options of createClient. Every timeout is in milliseconds; 0 turns it off. */
export interface ClientOptions {
  /** Where the backend listens: '/path.sock', 'unix:/path', 'host:port', 'tcp://host:port', { path } or { host, port }. */
  address: BackendAddress;
  /**
   * Most connections open at once. Default 4. With php-fpm keep this at or below `pm.max_children`: each kept
   * connection holds one worker for as long as it stays open, so requests sent on connections beyond the
   * worker count wait in php's accept queue until another connection closes.
   */
  poolSize?: number;
  /** Most requests waiting for a connection; one more fails with FCGI_ERR_QUEUE_FULL. Default 1024. */
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
  target: ConnectTarget;
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

function count(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < min || Math.floor(value) !== value) {
    throw new InvalidArgumentError(`${name} must be an integer of at least ${min}, got ${value}`);
  }
  return value;
}

/** resolveClientOptions applies defaults and checks ranges; throws InvalidArgumentError. */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('createClient needs an options object with an address');
  const multiplex = options.multiplex ?? 'auto';
  if (multiplex !== 'auto' && typeof multiplex !== 'boolean') throw new InvalidArgumentError(`multiplex must be 'auto', true or false`);
  const buffer = options.bufferUnknownLength ?? 16 * 1024 * 1024;
  if (buffer !== false) count('bufferUnknownLength', buffer, 0, 0);
  const abortWith = options.abortWith ?? null;
  if (abortWith !== null && abortWith !== 'abort-request' && abortWith !== 'close') throw new InvalidArgumentError(`abortWith must be 'abort-request' or 'close'`);
  return {
    target: parseAddress(options.address),
    poolSize: count('poolSize', options.poolSize, 4, 1),
    queueLimit: count('queueLimit', options.queueLimit, 1024, 0),
    connectTimeout: count('connectTimeout', options.connectTimeout, 10_000, 0),
    connectRetryWindow: count('connectRetryWindow', options.connectRetryWindow, 1000, 0),
    requestTimeout: count('requestTimeout', options.requestTimeout, 60_000, 0),
    bodyTimeout: count('bodyTimeout', options.bodyTimeout, 60_000, 0),
    idleTimeout: count('idleTimeout', options.idleTimeout, 4000, 0),
    keepConn: options.keepConn ?? true,
    multiplex,
    probeTimeout: count('probeTimeout', options.probeTimeout, 1000, 1),
    maxRequestsPerConnection: count('maxRequestsPerConnection', options.maxRequestsPerConnection, 128, 1),
    bufferUnknownLength: buffer,
    maxHeaderBytes: count('maxHeaderBytes', options.maxHeaderBytes, DEFAULT_MAX_HEADER_BYTES, 1),
    maxStderrBytes: count('maxStderrBytes', options.maxStderrBytes, 64 * 1024, 0),
    highWaterMark: count('highWaterMark', options.highWaterMark, 64 * 1024, 1),
    connectionHighWaterMark: count('connectionHighWaterMark', options.connectionHighWaterMark, 256 * 1024, 1),
    abortWith,
    padRecords: options.padRecords ?? true,
    retryStaleConnection: options.retryStaleConnection ?? true,
  };
}
