// Drop-in for node-fastcgi 2.x: `require('fastcgi-engine/node-fastcgi')` offers its API on this engine, so an
// existing app switches by changing the require line. Differences are fixes: multiplex:false is enforced,
// unknown record types are answered instead of crashing the process, request bodies have backpressure.
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { Server as EngineServer, type RequestListener } from './server';
import { FastCGIIncomingMessage, FastCGIServerResponse, installStreamAccessors } from './http-message';
import type { RequestSocket } from './request-socket';
import { isSocketFd } from './listen';
import type { ServerOptions } from './options';
import { TimeoutError, type FastCGIError } from '../errors';
import { NameCache } from '../cgi/name-cache';
import { LISTENSOCK_FILENO } from '../wire/constants';

/** node-fastcgi's config object. */
export interface NodeFastCGIConfig {
  /** Reported as FCGI_MAX_CONNS and enforced as the connection limit. Default 2000. */
  maxConns?: number;
  /**
   * Reported as FCGI_MAX_REQS and, with multiplexing, enforced per connection (unless
   * `maxRequestsPerConnection` is given): peers that multiplex read FCGI_MAX_REQS as a per-connection limit.
   * Default 2000.
   */
  maxReqs?: number;
  /** Allow several requests per connection (FCGI_MPXS_CONNS). Default true. */
  multiplex?: boolean;
  /** Extra GET_VALUES answers: variable name → key of this config object holding the value. */
  valueMap?: Record<string, string>;
  /** Any other key: a value valueMap may point at, or one of this engine's ServerOptions. */
  [key: string]: unknown;
}

type Handler = RequestListener;

/** node-fastcgi's Server: an engine Server that also emits 'protocolError' and 'timeout' as node-fastcgi did. */
export class Server extends EngineServer {
  /** The config as node-fastcgi kept it. */
  readonly config: NodeFastCGIConfig;

  constructor(
    responder?: Handler | NodeFastCGIConfig,
    authorizer?: Handler | NodeFastCGIConfig,
    filter?: Handler | NodeFastCGIConfig,
    config?: NodeFastCGIConfig,
  ) {
    // Any argument may be omitted: the config is the first non-function argument.
    const args = [responder, authorizer, filter, config];
    const found = args.find((a): a is NodeFastCGIConfig => a !== undefined && a !== null && typeof a !== 'function');
    const cfg: NodeFastCGIConfig = { ...(found ?? {}) };
    cfg.maxConns = Number(cfg.maxConns) || 2000;
    cfg.maxReqs = Number(cfg.maxReqs) || 2000;
    cfg.multiplex = cfg.multiplex === undefined ? true : Boolean(cfg.multiplex);
    const valueMap: Record<string, string | number> = { FCGI_MAX_REQS: cfg.maxReqs };
    for (const [name, key] of Object.entries(cfg.valueMap ?? {})) {
      const value = cfg[key];
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
        valueMap[name] = typeof value === 'boolean' ? Number(value) : value;
    }
    const options: ServerOptions = {
      maxRequestsPerConnection: cfg.maxReqs,
      ...(cfg as ServerOptions),
      multiplex: cfg.multiplex,
      maxConnections: cfg.maxConns,
      valueMap,
      paramsEncoding: 'utf8',
    };
    super(options);
    this.config = cfg;
    const [r, a, f] = [responder, authorizer, filter];
    if (typeof r === 'function') this.on('request', r);
    if (typeof a === 'function') this.on('authorize', a);
    if (typeof f === 'function') this.on('filter', f);
  }

  // Typed as the base classes: the drop-in's own classes stay out of the published declarations, where the
  // field over a getter would not compile for a consumer that checks them (skipLibCheck: false).
  /** @internal */
  protected override readonly requestClass: typeof FastCGIIncomingMessage = DropInRequest;
  /** @internal */
  protected override readonly responseClass: typeof FastCGIServerResponse = DropInResponse;

  /** @internal node-fastcgi apps read req.data and res.stderr even after Express swapped prototypes. */
  override decorate(req: FastCGIIncomingMessage, res: FastCGIServerResponse): void {
    installStreamAccessors(req, res);
  }

  /** @internal */
  override reportClientError(error: FastCGIError, socket: Socket): void {
    if (error instanceof TimeoutError && this.listenerCount('timeout') > 0) this.emit('timeout', socket);
    if (this.listenerCount('protocolError') > 0) this.emit('protocolError', error);
    super.reportClientError(error, socket);
  }
}

// node-fastcgi set req.cgiParams and res.stdout as plain properties of each request; here they are own fields of
// the drop-in's classes, so Express's prototype swap keeps them (test/server/node-fastcgi.test.ts). The base
// classes have them as lazy getters, which a field shadows without calling them; TypeScript objects to a field
// over an accessor, which is the point.
class DropInRequest extends FastCGIIncomingMessage {
  // @ts-expect-error -- an own data property over the prototype's getter, on purpose (see above)
  readonly cgiParams: Record<string, string> = this.fastcgi.params;

  /**
   * @internal node-fastcgi's headers, from its params object: a plain one, Object.prototype behind it, so that
   * `req.cgiParams.hasOwnProperty(name)` works as it did there (see nodeFastcgiHeaders).
   */
  protected override headersOf(request: RequestSocket): { headers: Record<string, string>; rawHeaders: string[] } {
    const params = request.rawParams.toObject('plain');
    request.useParamsObject(params);
    return nodeFastcgiHeaders(params);
  }
}

class DropInResponse extends FastCGIServerResponse {
  // @ts-expect-error -- an own data property over the prototype's getter, on purpose (see above)
  readonly stdout: Writable = this.req.fastcgi;
}

/**
 * The headers node-fastcgi 2.x built: from the params object (a repeated param: the last one), every HTTP_*
 * param and CONTENT_TYPE / CONTENT_LENGTH as sent (empty ones included), the raw name being the param's name
 * without HTTP_ and with '-' for '_' (`USER-AGENT`). An HTTP_* param that names Content-Type or
 * Content-Length, in any spelling (`HTTP_CONTENT-LENGTH`), is skipped: CONTENT_* is the one that counts.
 */
function nodeFastcgiHeaders(params: Record<string, string>): { headers: Record<string, string>; rawHeaders: string[] } {
  const headers: Record<string, string> = {};
  const rawHeaders: string[] = [];
  for (const param of Object.keys(params)) {
    if (!param.startsWith('HTTP_') && param !== 'CONTENT_LENGTH' && param !== 'CONTENT_TYPE') continue;
    const names = headerNames.get(param);
    if (names === null) continue;
    const value = params[param]!;
    rawHeaders.push(names.raw, value);
    headers[names.key] = value;
  }
  return { headers, rawHeaders };
}

// A param's raw header name and key (null: it carries no header), worked out once per name.
const headerNames = new NameCache((param): { raw: string; key: string } | null => {
  const http = param.startsWith('HTTP_');
  const raw = (http ? param.slice(5) : param).replace(/_/g, '-');
  const key = raw.toLowerCase();
  return http && (key === 'content-type' || key === 'content-length') ? null : { raw, key };
});

/**
 * createServer([responder], [authorizer], [filter], [config]) as in node-fastcgi: responder requests go to
 * 'request', authorizer ones to 'authorize', filter ones to 'filter'. `listen()` with no arguments listens on
 * the socket the web server passed as fd 0.
 */
export function createServer(
  responder?: Handler | NodeFastCGIConfig,
  authorizer?: Handler | NodeFastCGIConfig,
  filter?: Handler | NodeFastCGIConfig,
  config?: NodeFastCGIConfig,
): Server {
  return new Server(responder, authorizer, filter, config);
}

/** isService tells whether this process was spawned as a FastCGI application (fd 0 is a socket). */
export function isService(): boolean {
  return isSocketFd(LISTENSOCK_FILENO);
}

export { FastCGIIncomingMessage as Request, FastCGIIncomingMessage as IncomingMessage };
export { FastCGIServerResponse as Response, FastCGIServerResponse as ServerResponse };
export { FastCGIServerResponse as AuthorizerResponse, FastCGIServerResponse as FilterResponse };
