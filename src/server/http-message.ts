// http.IncomingMessage and http.ServerResponse over a FastCGI request, so Express, Koa and Fastify run
// unchanged: the request is built from CGI params, the response's header block is emitted CGI-style
// (`Status: NNN Reason`, no Transfer-Encoding, Content-Length only when Node knows it exactly).
import { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Params } from '../wire/params';
import { KNOWN_NAMES } from '../codec/known-names';
import { NAME_UNKNOWN } from '../codec/layout';
import { headerNameOf } from '../cgi/http-names';
import type { RequestSocket } from './request-socket';
import { ErrorCode, FastCGIError } from '../errors';

/** requestUrl builds `req.url`: REQUEST_URI when the web server sends it, else SCRIPT_NAME + PATH_INFO + ?QUERY_STRING. */
export function requestUrl(params: Params): string {
  const uri = params.get('REQUEST_URI');
  if (uri !== undefined && uri !== '') return uri;
  const query = params.get('QUERY_STRING');
  const path = `${params.get('SCRIPT_NAME') ?? ''}${params.get('PATH_INFO') ?? ''}` || '/';
  return query !== undefined && query !== '' ? `${path}?${query}` : path;
}

/** `req.url` with its mount prefix taken off (the `mount` option), and what was taken off. */
export interface RequestPath {
  /** The path under the mount, with the query: what the application routes on. */
  url: string;
  /** The mount prefix ('' at the root); what the application prefixes to the links it makes. */
  baseUrl: string;
  /** The whole path and query the client asked for. */
  originalUrl: string;
}

// Params are byte strings (latin1), so percent-escapes decode to bytes too, never through UTF-8.
function decodePath(path: string): string {
  return path.includes('%')
    ? path.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    : path;
}

function encodePath(path: string): string {
  return path.replace(
    /[^A-Za-z0-9\-._~!$&'()*+,;=:@/]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/**
 * rawRest returns what follows the part of the raw (percent-encoded) `path` that decodes to `prefix`, split
 * at a segment boundary; null when `path` does not start with `prefix`.
 */
function rawRest(path: string, prefix: string): string | null {
  if (prefix === '') return path;
  if (path.startsWith(prefix) && (path.length === prefix.length || path[prefix.length] === '/'))
    return path.slice(prefix.length);
  for (let end = path.indexOf('/', 1); ; end = path.indexOf('/', end + 1)) {
    const cut = end === -1 ? path.length : end;
    if (decodePath(path.slice(0, cut)) === prefix) return path.slice(cut);
    if (end === -1) return null;
  }
}

/**
 * resolveRequestPath applies the `mount` option (see ServerOptions.mount) to a request's params: null keeps
 * REQUEST_URI whole; a prefix ('' for the root) is cut off REQUEST_URI; 'cgi' takes SCRIPT_NAME as the prefix
 * and PATH_INFO as the rest, raw from REQUEST_URI when it agrees with them.
 */
export function resolveRequestPath(params: Params, mount: string | null): RequestPath {
  const originalUrl = requestUrl(params);
  if (mount === null) return { url: originalUrl, baseUrl: '', originalUrl };
  const q = originalUrl.indexOf('?');
  const path = q === -1 ? originalUrl : originalUrl.slice(0, q);
  const query = q === -1 ? '' : originalUrl.slice(q);
  if (mount !== 'cgi') {
    const rest = rawRest(path, /[^\x00-\x7f]/.test(mount) ? Buffer.from(mount, 'utf8').toString('latin1') : mount);
    if (rest === null) return { url: originalUrl, baseUrl: '', originalUrl };
    return { url: `${rest === '' ? '/' : rest}${query}`, baseUrl: mount, originalUrl };
  }
  const scriptName = params.get('SCRIPT_NAME') ?? '';
  const pathInfo = params.get('PATH_INFO') ?? '';
  let rest = rawRest(path, scriptName);
  // REQUEST_URI disagrees with SCRIPT_NAME (a rewrite): PATH_INFO is all there is, re-encoded.
  if (rest === null || decodePath(rest) !== pathInfo) rest = encodePath(pathInfo);
  return { url: `${rest === '' ? '/' : rest}${query}`, baseUrl: scriptName, originalUrl };
}

const CONTENT_TYPE = KNOWN_NAMES.indexOf('CONTENT_TYPE');
const CONTENT_LENGTH = KNOWN_NAMES.indexOf('CONTENT_LENGTH');

// For each known param id, the header it carries ('' for none) and that header's key in `headers`, worked out
// once: the same twenty-odd names arrive on every request, and a lookup and a toLowerCase per header were a
// third of what building the headers cost (bench/headers profile). HTTP_CONTENT_TYPE and HTTP_CONTENT_LENGTH
// carry none: CONTENT_* is authoritative.
const KNOWN_RAW: readonly string[] = KNOWN_NAMES.map((name, id) => {
  if (id === CONTENT_TYPE) return 'Content-Type';
  if (id === CONTENT_LENGTH) return 'Content-Length';
  if (!name.startsWith('HTTP_') || name.length === 5) return '';
  if (name === 'HTTP_CONTENT_TYPE' || name === 'HTTP_CONTENT_LENGTH') return '';
  return headerNameOf(name);
});
const KNOWN_KEY: readonly string[] = KNOWN_RAW.map((raw) => raw.toLowerCase());

/**
 * headersFromParams turns CGI params into Node's `headers` and `rawHeaders`: HTTP_* variables plus
 * CONTENT_TYPE and CONTENT_LENGTH (RFC 3875 §4.1.18, §4.1.2-3). Duplicates (nginx and h2o send them) are
 * joined with ', ', cookies with '; ' as RFC 6265 §5.4 joins them. `headers` is a plain object like
 * node:http's; a header named after an Object.prototype member (`constructor`) is still just a header.
 */
export function headersFromParams(params: Params): { headers: Record<string, string>; rawHeaders: string[] } {
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  for (let i = 0; i < params.size; i++) {
    const id = params.nameIdAt(i);
    let raw: string;
    let key: string;
    if (id !== NAME_UNKNOWN) {
      raw = KNOWN_RAW[id]!;
      if (raw === '') continue;
      key = KNOWN_KEY[id]!;
      if (id === CONTENT_LENGTH || id === CONTENT_TYPE) {
        const value = params.valueAt(i);
        // nginx sends CONTENT_LENGTH "" for chunked uploads and Caddy 2.6 sends -1: neither is a length.
        if (id === CONTENT_LENGTH && !/^\d+$/.test(value)) continue;
        // nginx's fastcgi_params send CONTENT_TYPE "" on every request without a body type: no header at all.
        if (id === CONTENT_TYPE && value === '') continue;
      }
    } else {
      const name = params.nameAt(i);
      if (!name.startsWith('HTTP_') || name.length === 5) continue;
      raw = headerNameOf(name);
      key = raw.toLowerCase();
      // HTTP_CONTENT-LENGTH and other spellings some clients send beside CONTENT_LENGTH: CONTENT_* counts.
      if (key === 'content-length' || key === 'content-type') continue;
    }
    const value = params.valueAt(i);
    const previous = headers[key];
    // Object.prototype holds no strings: an inherited `constructor` is not a previous value.
    headers[key] = typeof previous === 'string' ? `${previous}${key === 'cookie' ? '; ' : ', '}${value}` : value;
    rawHeaders.push(raw, value);
  }
  return { headers, rawHeaders };
}

/** What `req.socket` offers beyond net.Socket's address fields (node-fastcgi's names). */
export interface FastCGISocketExtras {
  /** The CGI params as a plain object. */
  readonly params: Record<string, string>;
  /** The Filter role's DATA stream. */
  readonly dataStream: Readable;
  /** STDERR. */
  readonly errorStream: Writable;
}

/** The request: a real http.IncomingMessage whose body is the FastCGI STDIN stream. */
export class FastCGIIncomingMessage extends IncomingMessage {
  /** The FastCGI request this message belongs to (also `req.socket`). */
  readonly fastcgi: RequestSocket;
  /** `req.socket` is the FastCGI request: address fields from params, plus node-fastcgi's extras. */
  declare socket: Socket & FastCGISocketExtras;
  /** With the `mount` option: the mount prefix cut off `req.url` (Express's name; its router keeps it). */
  declare baseUrl?: string;
  /** With the `mount` option: the whole path and query the client asked for (Express's name). */
  declare originalUrl?: string;

  constructor(request: RequestSocket, mount: string | null = null) {
    super(request as unknown as Socket);
    this.fastcgi = request;
    const params = request.rawParams;
    this.method = params.get('REQUEST_METHOD') ?? 'GET';
    if (mount === null) this.url = requestUrl(params);
    else {
      const path = resolveRequestPath(params, mount);
      this.url = path.url;
      this.baseUrl = path.baseUrl;
      this.originalUrl = path.originalUrl;
    }
    const serverProtocol = params.get('SERVER_PROTOCOL');
    if (serverProtocol === 'HTTP/1.1' || serverProtocol === undefined) {
      // What nearly every request carries: no regex, no match array.
      this.httpVersionMajor = 1;
      this.httpVersionMinor = 1;
      this.httpVersion = '1.1';
    } else {
      const protocol = /^HTTP\/(\d+)\.(\d+)$/i.exec(serverProtocol);
      this.httpVersionMajor = protocol === null ? 1 : Number(protocol[1]);
      this.httpVersionMinor = protocol === null ? 1 : Number(protocol[2]);
      this.httpVersion = `${this.httpVersionMajor}.${this.httpVersionMinor}`;
    }
    const { headers, rawHeaders } = this.headersOf(request);
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    // See installOwnMethods below: these survive a framework swapping this object's prototype.
    this._read = FastCGIIncomingMessage.prototype._read;
    this.push = FastCGIIncomingMessage.prototype.push;
    request.setBodySink(this);
  }

  override _read(): void {
    this.fastcgi.resumeInput();
  }

  /** @internal `headers` and `rawHeaders` from the params (the node-fastcgi drop-in builds its own). */
  protected headersOf(request: RequestSocket): { headers: Record<string, string>; rawHeaders: string[] } {
    return headersFromParams(request.rawParams);
  }

  /** The CGI params as a plain object (node-fastcgi's `req.cgiParams`); `req.fastcgi.rawParams` is the lazy view. */
  get cgiParams(): Record<string, string> {
    return this.fastcgi.params;
  }

  /** The Filter role's DATA stream (node-fastcgi's `req.data`). */
  get data(): Readable {
    return this.fastcgi.dataStream;
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) this.complete = true;
    return super.push(chunk, encoding);
  }
}

// Node internals that shape the header block; stable since Node 0.x and what node-fastcgi relied on too.
interface OutgoingInternals {
  _removedConnection: boolean;
  _removedTE: boolean;
  _header: string | null;
  chunkedEncoding: boolean;
  _storeHeader(firstLine: string, headers: OutgoingHttpHeaders | null): void;
}

const nodeStoreHeader = (ServerResponse.prototype as unknown as OutgoingInternals)._storeHeader;
const TRANSFER_ENCODING_LINE = /^transfer-encoding:[^\r\n]*\r\n/gim;
const HAS_TRANSFER_ENCODING = /^transfer-encoding:/im;

/** The response: a real http.ServerResponse that writes CGI headers and body to the request's STDOUT. */
export class FastCGIServerResponse extends ServerResponse<FastCGIIncomingMessage> {
  constructor(req: FastCGIIncomingMessage) {
    super(req);
    const internals = this as unknown as OutgoingInternals;
    // CGI output: the web server owns Date, Connection and framing. With chunked encoding "allowed" but
    // Transfer-Encoding marked removed, Node adds Content-Length exactly when end(body) tells it the size,
    // and otherwise sends the body raw: the end of STDOUT ends it.
    this.sendDate = false;
    this.useChunkedEncodingByDefault = true;
    this.shouldKeepAlive = true;
    internals._removedConnection = true;
    internals._removedTE = true;
    installOwnMethods(this as unknown as OwnMethods);
    this.assignSocket(req.fastcgi as unknown as Socket);
    // http.Server relays socket 'drain' to the response in its connection listener; here the socket is ours.
    req.fastcgi.on('drain', relayDrain);
  }

  /** @internal CGI status line instead of the HTTP one (RFC 3875 §6.3.3): `Status: 404 Not Found`. */
  _storeHeader(firstLine: string, headers: OutgoingHttpHeaders | null): void {
    const internals = this as unknown as OutgoingInternals;
    // Node's line is `HTTP/1.1 404 Not Found\r\n`: the 9-byte version prefix becomes `Status: `.
    const status = firstLine.startsWith('HTTP/') ? `Status: ${firstLine.slice(9)}` : firstLine;
    this.req.fastcgi.status = this.statusCode;
    nodeStoreHeader.call(this, status, headers);
    // A handler-set Transfer-Encoding would make Node chunk the body; behind FastCGI that is the web server's job.
    if (internals.chunkedEncoding || HAS_TRANSFER_ENCODING.test(internals._header ?? '')) {
      internals._header = (internals._header ?? '').replace(TRANSFER_ENCODING_LINE, '');
      internals.chunkedEncoding = false;
    }
  }

  /** @internal Node calls this once the whole response is written to the socket: end the FastCGI request. */
  _finish(): void {
    (Object.getPrototypeOf(FastCGIServerResponse.prototype) as { _finish(this: ServerResponse): void })._finish.call(
      this,
    );
    this.req.fastcgi.end();
  }

  /** STDERR of this request: lines written here land in the web server's error log. */
  get stderr(): Writable {
    return this.req.fastcgi.stderr;
  }

  /** The raw STDOUT stream under the CGI header block (node-fastcgi's `res.stdout`). */
  get stdout(): Writable {
    return this.req.fastcgi;
  }

  /**
   * Authorizer role (FastCGI 1.0 §6.3): passes `name` to the web server as a request variable. Sent as a
   * `Variable-NAME` header, which lighttpd and Apache turn into an environment variable for the next handler.
   */
  setVariable(name: string, value: string): this {
    this.setHeader(`Variable-${name}`, value);
    return this;
  }

  /** Authorizer role: grant access (200, no body). */
  allow(): void {
    this.statusCode = 200;
    this.end();
  }

  /** Authorizer role: refuse access (403 unless a status was set; the web server sends this response). */
  deny(statusCode = 403): void {
    this.statusCode = statusCode;
    this.end();
  }

  // Interim responses are the web server's business; written to STDOUT they would corrupt the header block.
  override writeContinue(): void {}
  override writeProcessing(): void {}
  override writeEarlyHints(): void {}
}

function relayDrain(this: RequestSocket & { _httpMessage?: ServerResponse | null }): void {
  const res = this._httpMessage;
  if (res != null && !res.writableEnded) res.emit('drain');
}

// Express (and others) swap the prototype of req and res for their own, which inherit from
// http.IncomingMessage / http.ServerResponse, not from these classes (node-fastcgi learned this the hard way,
// expressjs/express#2805). The methods that make FastCGI work are therefore also assigned to each instance.
// Plain assignments, in a fixed order, keep the objects' hidden classes shared and fast; defining accessors
// per instance cost ~2 µs a response (bench:server profile). The getters (cgiParams, data, stderr, stdout)
// stay on the prototype; `req.fastcgi` always reaches them. The node-fastcgi drop-in, whose users expect them
// under Express too, has cgiParams and stdout as own fields of its subclasses and installs the two lazy
// streams' getters per instance (installStreamAccessors).
type OwnMethods = Record<(typeof RESPONSE_OWN)[number], unknown>;
const RESPONSE_OWN = [
  '_storeHeader',
  '_finish',
  'setVariable',
  'allow',
  'deny',
  'writeContinue',
  'writeProcessing',
  'writeEarlyHints',
] as const;
const METHODS = {} as OwnMethods;
for (const name of RESPONSE_OWN) {
  const method = (FastCGIServerResponse.prototype as unknown as Record<string, unknown>)[name];
  if (typeof method !== 'function')
    throw new FastCGIError(ErrorCode.INVALID_STATE, `${name} is not a method of FastCGIServerResponse`);
  METHODS[name] = method;
}

// One named store per method, in RESPONSE_OWN's order: the same stores in a loop over the names were keyed,
// megamorphic stores, about 1 % of a hello-world request's CPU behind nginx (perf, KeyedStoreIC_Megamorphic).
function installOwnMethods(res: OwnMethods): void {
  res._storeHeader = METHODS._storeHeader;
  res._finish = METHODS._finish;
  res.setVariable = METHODS.setVariable;
  res.allow = METHODS.allow;
  res.deny = METHODS.deny;
  res.writeContinue = METHODS.writeContinue;
  res.writeProcessing = METHODS.writeProcessing;
  res.writeEarlyHints = METHODS.writeEarlyHints;
}
// installOwnMethods lists the names by hand: a name added to RESPONSE_OWN alone must fail at load, not go missing.
{
  const probe = {} as OwnMethods;
  installOwnMethods(probe);
  const missing = RESPONSE_OWN.filter((name) => probe[name] !== METHODS[name]);
  if (missing.length > 0)
    throw new FastCGIError(ErrorCode.INVALID_STATE, `installOwnMethods does not install ${missing.join(', ')}`);
}

// A getter of the prototype, as an own non-enumerable property's descriptor.
function accessor(prototype: object, name: string): PropertyDescriptor {
  return { ...Object.getOwnPropertyDescriptor(prototype, name), enumerable: false };
}
const DATA_ACCESSOR = accessor(FastCGIIncomingMessage.prototype, 'data');
const STDERR_ACCESSOR = accessor(FastCGIServerResponse.prototype, 'stderr');

/**
 * installStreamAccessors copies the getters of the two lazy streams (`req.data`, `res.stderr`) onto the
 * instances, for code that reads them after a prototype swap; one defineProperty each (defineProperties with
 * a map of descriptors took twice as long).
 */
export function installStreamAccessors(req: FastCGIIncomingMessage, res: FastCGIServerResponse): void {
  Object.defineProperty(req, 'data', DATA_ACCESSOR);
  Object.defineProperty(res, 'stderr', STDERR_ACCESSOR);
}
