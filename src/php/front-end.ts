// createPhpFrontEnd: a PHP site's whole front end in one handler, as nginx's usual PHP server block or Caddy's
// `php_fastcgi` + `file_server`: static files from the document root, scripts to php-fpm through the gateway,
// index files, a front controller, PATH_INFO, dotfiles denied, and X-Accel-Redirect / X-Sendfile answered.
import type { IncomingMessage, ServerResponse } from 'node:http';
import send from 'send';
import { InvalidArgumentError } from '../errors';
import type { BackendAddress } from '../wire/address';
import type { Client } from '../client/client';
import {
  createGateway,
  type BufferRequestsOptions,
  type Gateway,
  type GatewayLogger,
  type GatewayOptions,
} from '../gateway/gateway';
import type { ClientOptions } from '../client/options';
import { answer } from './answer';
import { DEFAULT_SPLIT_PATH, encodePath, routeFor, type RouteSettings } from './route';
import { createSendfile, type SendfileRoots } from './sendfile';

/** The static-file settings passed to `send` (ranges, ETag and 304s are always on unless turned off here). */
export interface StaticOptions {
  /** Cache-Control max-age in ms or a `ms` string ('1d'). Default 0. */
  maxAge?: number | string;
  immutable?: boolean;
  etag?: boolean;
  lastModified?: boolean;
  acceptRanges?: boolean;
  cacheControl?: boolean;
}

/** Options of createPhpFrontEnd. */
export interface PhpFrontEndOptions {
  /** The document root: static files are served from it, scripts are looked up in it. */
  root: string;
  /** The backend, as createGateway takes it: a Client, client options, or an address ('unix:/run/php/php8.2-fpm.sock'). */
  upstream: Client | ClientOptions | BackendAddress;
  /** The root as the backend sees it (php-fpm in a container). Default `root`. */
  documentRoot?: string;
  /** Index files tried in order for a directory. Default ['index.php', 'index.html']. */
  index?: readonly string[];
  /** Script for paths that name no file, with the query kept (nginx's `try_files $uri $uri/ /index.php?$args`). Default '/index.php'; false answers 404. */
  frontController?: string | false;
  /** Script / PATH_INFO split (nginx's fastcgi_split_path_info). Default `^(.+?\.php)(/.*)?$`. */
  splitPath?: RegExp;
  /** More refused paths (403): a string is a decoded-path prefix ('/vendor/'), a RegExp is tested against the decoded path. */
  deny?: readonly (string | RegExp)[];
  /** Refuse any path with a segment starting with '.' (.git, .env, .htaccess), `.well-known` excepted. Default true. */
  denyDotfiles?: boolean;
  /** Static file settings. */
  staticOptions?: StaticOptions;
  /** Largest request body; bigger ones are refused with 413 from their Content-Length. Default 100 MiB. */
  maxBodySize?: number;
  /** Request buffering other than its cap (memory kept per request, temp dir). */
  bufferRequests?: Omit<BufferRequestsOptions, 'maxBytes'>;
  /**
   * Where X-Accel-Redirect / X-Sendfile from the backend may point. A list of directories: the header holds a
   * file path inside one. A map of URI prefix → directory (nginx's `internal` location with `alias`): the
   * header holds a URI. Unset: the headers are passed on untouched.
   */
  sendfileRoots?: SendfileRoots;
  params?: GatewayOptions['params'];
  timeouts?: GatewayOptions['timeouts'];
  logger?: GatewayLogger;
}

/** A request handler for node:http (`(req, res)`) and Express (`(req, res, next)`). */
export interface PhpFrontEnd {
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  /** The gateway PHP requests go through. */
  readonly gateway: Gateway;
  /** Closes the gateway's client if it created it. */
  close(): Promise<void>;
}

type Next = (error?: unknown) => void;

interface FrontEndSettings {
  readonly route: RouteSettings;
  readonly gateway: Gateway;
  readonly staticOptions: StaticOptions;
  readonly logger: GatewayLogger;
}

const consoleLogger: GatewayLogger = {
  warn: (message) => console.warn(`fastcgi-engine php: ${message}`),
  error: (message) => console.error(`fastcgi-engine php: ${message}`),
};

/**
 * createPhpFrontEnd returns a handler that serves a PHP site from `root`: existing files as static files (never
 * PHP source), `*.php` paths (and PATH_INFO after them) to the backend when the script exists, directories
 * through their index file, and everything else to the front controller. Dotfiles and `deny` paths get 403.
 * With `next` (Express), a 404 falls through to the next handler and errors go to `next(error)`.
 */
export function createPhpFrontEnd(options: PhpFrontEndOptions): PhpFrontEnd {
  if (typeof options.root !== 'string' || options.root === '')
    throw new InvalidArgumentError('root must be a non-empty directory path');
  const root = options.root.replace(/\/+$/, '');
  const frontController = options.frontController === false ? null : (options.frontController ?? '/index.php');
  if (frontController !== null && !frontController.startsWith('/'))
    throw new InvalidArgumentError(`frontController must start with '/', got ${JSON.stringify(frontController)}`);
  const splitPath = options.splitPath ?? DEFAULT_SPLIT_PATH;
  const logger = options.logger ?? consoleLogger;
  const sendfile = options.sendfileRoots === undefined ? null : createSendfile(options.sendfileRoots, logger);
  const gatewayOptions: GatewayOptions = {
    upstream: options.upstream,
    documentRoot: options.documentRoot ?? root,
    splitPath,
    bufferRequests: {
      ...options.bufferRequests,
      ...(options.maxBodySize === undefined ? {} : { maxBytes: options.maxBodySize }),
    },
    logger,
  };
  if (options.params !== undefined) gatewayOptions.params = options.params;
  if (options.timeouts !== undefined) gatewayOptions.timeouts = options.timeouts;
  if (sendfile !== null) gatewayOptions.interceptResponse = sendfile;
  const gateway = createGateway(gatewayOptions);
  const settings: FrontEndSettings = {
    route: {
      root,
      index: options.index ?? ['index.php', 'index.html'],
      frontController,
      splitPath,
      deny: options.deny ?? [],
      denyDotfiles: options.denyDotfiles ?? true,
    },
    gateway,
    staticOptions: options.staticOptions ?? {},
    logger,
  };
  const handler = ((req: IncomingMessage, res: ServerResponse, next?: Next) => {
    handle(settings, req, res, next).catch((error: unknown) => failed(settings, req, res, next, error));
  }) as PhpFrontEnd;
  Object.defineProperty(handler, 'gateway', { value: gateway, enumerable: true });
  Object.defineProperty(handler, 'close', { value: () => gateway.close() });
  return handler;
}

/** Express adds these to req; plain node:http does not. */
interface MountedRequest {
  originalUrl?: string;
}

async function handle(
  settings: FrontEndSettings,
  req: IncomingMessage,
  res: ServerResponse,
  next: Next | undefined,
): Promise<void> {
  const mounted = req as IncomingMessage & MountedRequest;
  const url = req.url ?? '/';
  const original = mounted.originalUrl ?? url;
  const queryAt = original.indexOf('?');
  const route = await routeFor(url, queryAt === -1 ? original : original.slice(0, queryAt), settings.route);
  switch (route.kind) {
    case 'php':
      return toBackend(settings, mounted, res, route.url, next);
    case 'static':
      return serveStatic(settings, req, res, route.path, next);
    case 'redirect':
      // nginx's answer to a directory named without its slash.
      return answer(req, res, 301, 'Moved Permanently', { Location: route.location });
    case 'status':
      if (route.status === 404 && next !== undefined) return next();
      if (route.status !== 404) settings.logger.warn(`${route.status} for ${req.method} ${req.url}: ${route.reason}`);
      return answer(req, res, route.status, STATUS_TEXT[route.status]);
  }
}

/**
 * Hands the request to the gateway as if it had asked for `url` (the front controller or an index script):
 * the gateway reads req.url synchronously for the script, and REQUEST_URI from originalUrl, which keeps what
 * the client asked for, as nginx's REQUEST_URI does after try_files.
 */
function toBackend(
  settings: FrontEndSettings,
  req: IncomingMessage & MountedRequest,
  res: ServerResponse,
  url: string,
  next: Next | undefined,
): void {
  const asked = req.url;
  if (req.originalUrl === undefined) req.originalUrl = asked;
  req.url = url;
  try {
    settings.gateway(req, res, next);
  } finally {
    req.url = asked;
  }
}

function serveStatic(
  settings: FrontEndSettings,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  next: Next | undefined,
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    // nginx's static module: 405 for other methods on a file.
    return answer(req, res, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
  }
  const stream = send(req, encodePath(path), {
    ...settings.staticOptions,
    root: settings.route.root,
    index: false,
    dotfiles: 'allow',
  });
  stream.on('error', (error: Error & { status?: number }) => {
    const status = error.status ?? 500;
    if (status === 404 && next !== undefined) return next();
    if (status >= 500 && next !== undefined) return next(error);
    if (status >= 500) settings.logger.error(`${status} for ${req.method} ${req.url}: ${error.message}`);
    answer(req, res, status, STATUS_TEXT[status] ?? 'Error');
  });
  stream.pipe(res);
}

function failed(
  settings: FrontEndSettings,
  req: IncomingMessage,
  res: ServerResponse,
  next: Next | undefined,
  error: unknown,
): void {
  if (next !== undefined) return next(error);
  settings.logger.error(`500 for ${req.method} ${req.url}: ${(error as Error).message}`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  answer(req, res, 500, 'Internal Server Error');
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  412: 'Precondition Failed',
  416: 'Range Not Satisfiable',
  500: 'Internal Server Error',
};
