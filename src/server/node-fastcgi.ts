// Drop-in for node-fastcgi 2.x: `require('fastcgi-engine/node-fastcgi')` offers its API on this engine, so an
// existing app switches by changing the require line. Differences are fixes: multiplex:false is enforced,
// unknown record types are answered instead of crashing the process, request bodies have backpressure.
import type { Socket } from 'node:net';
import { Server as EngineServer, type RequestListener } from './server';
import { FastCGIIncomingMessage, FastCGIServerResponse, installAccessors } from './http-message';
import { isSocketFd } from './listen';
import type { ServerOptions } from './options';
import { TimeoutError, type FastCGIError } from '../errors';
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

  /** @internal node-fastcgi apps read req.cgiParams, req.data and res.stderr even after Express swapped prototypes. */
  override decorate(req: FastCGIIncomingMessage, res: FastCGIServerResponse): void {
    installAccessors(req, res);
    const { headers, rawHeaders } = nodeFastcgiHeaders(req.fastcgi.params);
    req.headers = headers;
    req.rawHeaders = rawHeaders;
  }

  /** @internal */
  override reportClientError(error: FastCGIError, socket: Socket): void {
    if (error instanceof TimeoutError && this.listenerCount('timeout') > 0) this.emit('timeout', socket);
    if (this.listenerCount('protocolError') > 0) this.emit('protocolError', error);
    super.reportClientError(error, socket);
  }
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
    const http = param.startsWith('HTTP_');
    if (!http && param !== 'CONTENT_LENGTH' && param !== 'CONTENT_TYPE') continue;
    const raw = (http ? param.slice(5) : param).replace(/_/g, '-');
    const key = raw.toLowerCase();
    if (http && (key === 'content-type' || key === 'content-length')) continue;
    const value = params[param]!;
    rawHeaders.push(raw, value);
    headers[key] = value;
  }
  return { headers, rawHeaders };
}

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
