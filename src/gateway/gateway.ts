// Gateway: a node:http / Express handler that serves requests from a FastCGI backend, as nginx's fastcgi_pass
// does: CGI params from the request, the upload buffered first, the response streamed back with backpressure,
// and backend failures answered 502 / 504 with the reason logged.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { BadPathError, cgiParamsFor, type ScriptMapping } from '../cgi/params';
import { isHopByHop } from '../cgi/http-names';
import { Client, type AttachedRequest, type RequestOptions, type RequestOwner } from '../client/client';
import { toLogSink, type LogSink } from '../diagnostics/logger';
import type { BodySink, ClientResponse } from '../client/client-response';
import type { ClientOptions } from '../client/options';
import type { BackendAddress } from '../wire/address';
import { spoolBody, type SpooledBody } from './body-spool';

/** Where the gateway reports failures and the backend's STDERR. */
export interface GatewayLogger {
  warn(message: string): void;
  error(message: string): void;
}

/** Request buffering: memory first, then an unlinked temp file, up to a cap. */
export interface BufferRequestsOptions {
  /** Bytes kept in memory per request. Default 1 MiB. */
  memory?: number;
  /** Largest upload accepted; bigger ones get 413. Default 100 MiB. */
  maxBytes?: number;
  /** Where temp files go. Default os.tmpdir(). */
  tmpDir?: string;
}

/** Options of createGateway. */
export interface GatewayOptions extends ScriptMapping {
  /** The backend: a Client (shared, not closed by the gateway), client options (`address` or `upstreams`), or an address. */
  upstream: Client | ClientOptions | BackendAddress;
  /** Params added to (or, when undefined, removed from) those the gateway builds; a function sees the request. */
  params?:
    | Readonly<Record<string, string | undefined>>
    | ((req: IncomingMessage) => Readonly<Record<string, string | undefined>>);
  /**
   * Read the whole upload before taking a backend worker (nginx's default), so slow clients cannot pin php-fpm
   * workers and CONTENT_LENGTH is always known. Default on; `false` streams uploads that declare Content-Length.
   */
  bufferRequests?: BufferRequestsOptions | false;
  /** Client timeouts in ms (connect, response header block, body stall). For a Client passed in, request and body apply per request. */
  timeouts?: { connect?: number; request?: number; body?: number };
  /** Default: console, prefixed `fastcgi-engine gateway:`. */
  logger?: GatewayLogger;
  /**
   * Sees the backend's response before its head is written; returning true takes the answer over (the body is
   * then read and dropped by the gateway). For X-Accel-Redirect / X-Sendfile in createPhpFrontEnd.
   */
  interceptResponse?: (response: ClientResponse, req: IncomingMessage, res: ServerResponse) => boolean;
}

/** A request handler for node:http and Express, with the client it uses. */
export interface Gateway {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  /** The FastCGI client the gateway sends requests with. */
  readonly client: Client;
  /** Closes the client if the gateway created it. */
  close(): Promise<void>;
}

const consoleLogger: GatewayLogger = {
  warn: (message) => console.warn(`fastcgi-engine gateway: ${message}`),
  error: (message) => console.error(`fastcgi-engine gateway: ${message}`),
};

/** Settings resolved once per gateway. */
interface GatewaySettings {
  readonly client: Client;
  readonly mapping: ScriptMapping;
  readonly extra: GatewayOptions['params'];
  readonly buffer: { memoryLimit: number; maxBytes: number; tmpDir: string } | null;
  readonly requestTimeout: number | undefined;
  readonly bodyTimeout: number | undefined;
  readonly logger: LogSink;
  readonly intercept: GatewayOptions['interceptResponse'];
}

/**
 * createGateway returns a `(req, res)` handler that forwards each request to a FastCGI backend (php-fpm, a
 * fastcgi-engine server) and streams its response back. The script is `documentRoot` + the request path (split
 * at `.php` for PATH_INFO, `index` for directories). Backend refused, closed or malformed: 502; timed out: 504;
 * queue full: 503; upload over the cap: 413. Each failure is logged with its reason and code, and STDERR from
 * the backend is logged as a warning.
 */
export function createGateway(options: GatewayOptions): Gateway {
  const upstream = options.upstream;
  const owned = !(upstream instanceof Client);
  const timeouts = options.timeouts ?? {};
  let client: Client;
  if (upstream instanceof Client) client = upstream;
  else {
    const clientOptions: ClientOptions = isClientOptions(upstream) ? { ...upstream } : { address: upstream };
    if (timeouts.connect !== undefined) clientOptions.connectTimeout = timeouts.connect;
    if (timeouts.request !== undefined) clientOptions.requestTimeout = timeouts.request;
    if (timeouts.body !== undefined) clientOptions.bodyTimeout = timeouts.body;
    client = new Client(clientOptions);
  }
  const buffer = options.bufferRequests === false ? null : (options.bufferRequests ?? {});
  const settings: GatewaySettings = {
    client,
    mapping: {
      documentRoot: options.documentRoot,
      index: options.index,
      splitPath: options.splitPath,
      frontController: options.frontController,
    },
    extra: options.params,
    buffer:
      buffer === null
        ? null
        : {
            memoryLimit: buffer.memory ?? 1024 * 1024,
            maxBytes: buffer.maxBytes ?? 100 * 1024 * 1024,
            tmpDir: buffer.tmpDir ?? tmpdir(),
          },
    requestTimeout: owned ? undefined : timeouts.request,
    bodyTimeout: owned ? undefined : timeouts.body,
    logger: toLogSink(options.logger ?? consoleLogger),
    intercept: options.interceptResponse,
  };
  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    void serve(settings, req, res);
  }) as Gateway;
  Object.defineProperty(handler, 'client', { value: client, enumerable: true });
  Object.defineProperty(handler, 'close', { value: () => (owned ? client.close() : Promise.resolve()) });
  return handler;
}

async function serve(settings: GatewaySettings, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let params: Record<string, string>;
  try {
    params = cgiParamsFor(req, settings.mapping);
  } catch (error) {
    if (!(error instanceof BadPathError)) throw error;
    return fail(settings, req, res, 400, error.message, 'bad path');
  }
  applyExtra(params, settings.extra, req);
  const exchange = new Exchange(settings, req, res);
  const request: RequestOptions = { params, onStderr: (chunk) => logStderr(settings, exchange, params, chunk) };
  if (settings.requestTimeout !== undefined) request.requestTimeout = settings.requestTimeout;
  if (settings.bodyTimeout !== undefined) request.bodyTimeout = settings.bodyTimeout;
  try {
    if (hasBody(req)) {
      const declared = Number(req.headers['content-length']);
      if (settings.buffer !== null && declared > settings.buffer.maxBytes) {
        // Refused from its Content-Length, before a byte is read (fail() closes the connection after it).
        return fail(
          settings,
          req,
          res,
          413,
          `request body of ${declared} bytes exceeds ${settings.buffer.maxBytes} bytes (bufferRequests.maxBytes)`,
          'FCGI_ERR_BODY_TOO_LARGE',
        );
      }
      if (settings.buffer !== null) {
        exchange.spooled = await spoolBody(req, settings.buffer);
        request.body = exchange.spooled.body;
        request.contentLength = exchange.spooled.length;
      } else {
        request.body = req;
        const declared = Number(req.headers['content-length']);
        // A chunked upload has no length: the client buffers it (bufferUnknownLength) for CONTENT_LENGTH.
        if (Number.isSafeInteger(declared) && req.headers['transfer-encoding'] === undefined)
          request.contentLength = declared;
      }
    }
    if (exchange.isAborted) return exchange.release();
    exchange.respond(await settings.client.requestFor(request, exchange));
  } catch (error) {
    exchange.release();
    if (exchange.isAborted) return; // the caller left: nobody to answer
    const failure = error as Error & { code?: string };
    fail(settings, req, res, statusFor(failure.code), failure.message, failure.code ?? 'unknown');
  }
}

const kExchange = Symbol('fastcgi.gateway.exchange');
type Tagged<T> = T & { [kExchange]: Exchange };

/**
 * One HTTP request on its way through the gateway. Its listeners are module-level functions that find it on
 * the ServerResponse (no closures per request), it takes the backend's body piece by piece (BodySink), and the
 * HTTP client leaving aborts the FastCGI request directly: an AbortController per request cost a quarter of the
 * gateway's throughput.
 */
class Exchange implements RequestOwner, BodySink {
  readonly #settings: GatewaySettings;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  spooled: SpooledBody | null = null;
  #request: AttachedRequest | null = null;
  // The request as attached, kept after #request is let go: STDERR may still arrive and names its upstream.
  #sent: AttachedRequest | null = null;
  // The response whose body is being written, for resuming it when the HTTP client drains.
  #response: ClientResponse | null = null;
  #drainListener = false;
  isAborted = false;

  constructor(settings: GatewaySettings, req: IncomingMessage, res: ServerResponse) {
    this.#settings = settings;
    this.req = req;
    this.res = res;
    (res as Tagged<ServerResponse>)[kExchange] = this;
    // 'close' comes once per response: on(), not once(), spares once()'s wrapper and its removal.
    res.on('close', onResponseClose);
  }

  /** @internal RequestOwner */
  attach(request: AttachedRequest): void {
    this.#request = request;
    this.#sent = request;
    if (this.isAborted) request.abort('the HTTP client went away');
  }

  /** The backend the request went to, once it is on a connection. */
  get upstream(): string | undefined {
    return this.#sent?.upstream;
  }

  /** The HTTP client went away (or the response ended: then nothing is left to do). */
  onClose(): void {
    if (this.res.writableFinished) return this.release();
    this.isAborted = true;
    // Stops it on the backend, whether its headers are awaited or its body is on its way.
    this.#request?.abort('the HTTP client went away');
    this.release();
  }

  respond(response: ClientResponse): void {
    const { req, res } = this;
    if (this.#settings.intercept?.(response, req, res) === true) {
      // Drained, not destroyed: the request ends normally and its backend connection is kept.
      this.#request = null;
      response.body.resume();
      return;
    }
    const raw = response.rawHeaders;
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (!isHopByHop(raw[i]!)) headers.push(raw[i]!, raw[i + 1]!);
    }
    try {
      writeHead(res, response.status, response.statusText, headers);
    } catch (error) {
      response.body.destroy();
      this.release();
      return fail(
        this.#settings,
        req,
        res,
        502,
        `the backend sent a response node:http refuses: ${(error as Error).message}`,
        'bad response',
      );
    }
    const whole = response.takeCompleteBody();
    if (whole !== null) {
      // Nothing left to stop on the backend: a client leaving now must not abort a request that is over but
      // for its END_REQUEST (that would cost the kept connection).
      this.#request = null;
      res.end(whole);
      return;
    }
    // Piece by piece into res, no Readable and no pipe(): backpressure both ways all the same (a slow HTTP
    // client holds the backend connection's reading until res drains), at the pieces' own cost (README,
    // "Client and gateway").
    this.#response = response;
    if (response.sendBodyTo(this)) return;
    // An interceptResponse that read `body` and then declined: that stream it is.
    const body = response.body;
    body.on('error', (error: Error) => this.fail(error));
    body.pipe(res);
  }

  /** @internal BodySink: a piece of the backend's body. */
  write(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    // One listener for the exchange, not one per stall: middleware that wraps res.on (compression hands 'drain'
    // listeners to its zlib stream) would keep every once-wrapper.
    if (!this.#drainListener) {
      this.#drainListener = true;
      this.res.on('drain', onResponseDrain);
    }
    return false;
  }

  /** @internal BodySink: the body is complete. */
  end(): void {
    // Over but for its END_REQUEST: a client leaving now must not abort it (that would cost the connection).
    this.#request = null;
    this.res.end();
  }

  /** The HTTP client took what was written: let the backend's body flow again. */
  onDrain(): void {
    this.#response?.resumeBody();
  }

  /** @internal BodySink: the body failed after the head went out; the only signal left is a cut-off response. */
  fail(error: Error & { code?: string }): void {
    if (!this.isAborted && error.code !== 'FCGI_ERR_REQUEST_ABORTED') {
      this.#settings.logger.error(
        `${this.req.method} ${this.req.url}: response cut off after the headers: ${error.message} [${error.code ?? 'unknown'}]`,
        {
          method: this.req.method,
          uri: this.req.url,
          upstream: this.upstream,
          code: error.code,
        },
        false,
      );
    }
    this.res.destroy();
  }

  release(): void {
    const spooled = this.spooled;
    this.spooled = null;
    spooled?.release();
  }
}

function onResponseClose(this: ServerResponse): void {
  (this as Tagged<ServerResponse>)[kExchange].onClose();
}

function onResponseDrain(this: ServerResponse): void {
  (this as Tagged<ServerResponse>)[kExchange].onDrain();
}

/**
 * Writes the backend's status and headers. With nothing set on `res` yet, the flat list goes to writeHead as it
 * is. Once middleware has set a header (Express's X-Powered-By, helmet, cors), Node 20's writeHead merges a flat
 * list through setHeader one pair at a time, and every repeated name but the last is lost: a PHP session's
 * second Set-Cookie with it. So each name is set once, with all its values (test/gateway/gateway.test.ts).
 */
function writeHead(res: ServerResponse, status: number, statusText: string, headers: string[]): void {
  if (res.getHeaderNames().length === 0) {
    res.writeHead(status, statusText, headers);
    return;
  }
  const byName = new Map<string, { name: string; values: string[] }>();
  for (let i = 0; i < headers.length; i += 2) {
    const key = headers[i]!.toLowerCase();
    const entry = byName.get(key);
    if (entry === undefined) byName.set(key, { name: headers[i]!, values: [headers[i + 1]!] });
    else entry.values.push(headers[i + 1]!);
  }
  // The backend's value wins over one middleware set, as nginx shows only what the application sent.
  for (const { name, values } of byName.values()) res.setHeader(name, values.length === 1 ? values[0]! : values);
  res.writeHead(status, statusText);
}

function fail(
  settings: GatewaySettings,
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  reason: string,
  code: string,
): void {
  settings.logger.error(
    `${status} for ${req.method} ${req.url}: ${reason} [${code}]`,
    { method: req.method, uri: req.url, status, code },
    false,
  );
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${status === 504 ? 'Gateway Timeout' : status === 502 ? 'Bad Gateway' : (STATUS_TEXT[status] ?? 'Error')}\n`;
  const headers: Record<string, string | number> = {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  };
  // The rest of the upload will not be read: the client must not send its next request on this connection,
  // where it would meet the unread bytes (or a reset). Meanwhile what arrives is read and dropped, so the
  // close is a FIN after the answer, not a reset that could take the answer with it.
  if (!req.complete) headers.Connection = 'close';
  res.writeHead(status, headers);
  res.end(body);
  if (!req.complete) req.resume();
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  413: 'Payload Too Large',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
};

/** statusFor maps a client error code to the HTTP status a gateway answers with. */
export function statusFor(code: string | undefined): number {
  switch (code) {
    case 'FCGI_ERR_CONNECT_TIMEOUT':
    case 'FCGI_ERR_REQUEST_TIMEOUT':
    case 'FCGI_ERR_BODY_TIMEOUT':
      return 504;
    case 'FCGI_ERR_QUEUE_FULL':
    case 'FCGI_ERR_QUEUE_TIMEOUT':
    case 'FCGI_ERR_NO_UPSTREAM':
    case 'FCGI_ERR_CLIENT_CLOSED':
      return 503;
    case 'FCGI_ERR_BODY_TOO_LARGE':
      return 413;
    case 'FCGI_ERR_PAIR_TOO_LARGE':
      return 431;
    case 'FCGI_ERR_BODY_SOURCE':
    case 'FCGI_ERR_BODY_LENGTH_MISMATCH':
      return 400;
    default:
      // Refused, closed, malformed records or header block, OVERLOADED and the other backend refusals.
      return 502;
  }
}

function isClientOptions(upstream: ClientOptions | BackendAddress): upstream is ClientOptions {
  return typeof upstream === 'object' && ('address' in upstream || 'upstreams' in upstream);
}

function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

function applyExtra(params: Record<string, string>, extra: GatewayOptions['params'], req: IncomingMessage): void {
  if (extra === undefined) return;
  const values = typeof extra === 'function' ? extra(req) : extra;
  for (const name of Object.keys(values)) {
    const value = values[name];
    if (value === undefined) delete params[name];
    else params[name] = value;
  }
}

// The backend's STDERR, at warn, with the request it belongs to (fields for pino, appended text otherwise).
function logStderr(settings: GatewaySettings, exchange: Exchange, params: Record<string, string>, chunk: Buffer): void {
  const text = chunk.toString('utf8').trimEnd();
  if (text === '') return;
  settings.logger.warn(`stderr from ${params.SCRIPT_FILENAME}: ${text}`, {
    method: exchange.req.method,
    uri: exchange.req.url,
    upstream: exchange.upstream ?? settings.client.settings.target?.label,
  });
}
