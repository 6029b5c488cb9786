// serve(): the fetch-style API, `(Request) => Response`, served straight from the FastCGI request: no
// http.IncomingMessage or ServerResponse in between. The Request is light (src/server/fetch/light-request.ts)
// and a light Response's body is written at once (src/server/fetch/response-writer.ts). Bodies stream both ways
// with backpressure, and request.signal aborts when the web server goes away.
import { requestFields } from './connection';
import { channels, tracingActive, tracingChannels } from '../diagnostics/channels';
import { traceHandler } from '../diagnostics/trace-handler';
import { build } from '../diagnostics/messages';
import type { Params } from '../wire/params';
import { ErrorCode, FastCGIError } from '../errors';
import { Server } from './server';
import type { ServerOptions } from './options';
import type { RequestSocket } from './request-socket';
import { GlobalRequest, LightRequest, NativeRequest, realRequest, requestOrigin } from './fetch/light-request';
import { LightResponse, NativeResponse } from './fetch/light-response';
import { headWritten, writeFetchResponse } from './fetch/response-writer';

export { requestOrigin };

/** What a fetch handler gets besides the Request. */
export interface FetchContext {
  /** The CGI params, decoded lazily. */
  params: Params;
  /** The FastCGI request (role, STDERR, the Filter role's DATA stream). */
  fastcgi: RequestSocket;
}

/** A fetch handler: a function, or an object with a `fetch` method (`export default { fetch }`). */
export type FetchHandler =
  | ((request: Request, context: FetchContext) => Response | Promise<Response>)
  | { fetch(request: Request, context: FetchContext): Response | Promise<Response> };

/** serve()'s options: the server's, and whether the light Request and Response become the globals. */
export interface ServeOptions extends ServerOptions {
  /**
   * Install the light Response and a Request that accepts light requests as `globalThis.Response` and
   * `globalThis.Request` (default true), so a handler's `new Response('text')` costs almost nothing and is
   * written in one piece. With false the globals stay as they are and the handler gets a native Request.
   */
  overrideGlobalObjects?: boolean;
}

/**
 * installLightFetch makes `Response` and `Request` the light ones (idempotent). Both keep `instanceof`, the
 * static methods and every member of the native classes; what differs is when the native object is made.
 */
export function installLightFetch(): void {
  globalThis.Response = LightResponse as unknown as typeof Response;
  globalThis.Request = GlobalRequest as unknown as typeof Request;
}

/** @internal Puts back the native Response and Request (tests). */
export function uninstallLightFetch(): void {
  globalThis.Response = NativeResponse;
  globalThis.Request = NativeRequest;
}

// What a fetch handler returned instead of a Response, for the error message ("a plain object", "a Buffer").
function describeResult(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value !== 'object') return `a ${typeof value}`;
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? `a ${name}` : 'a plain object';
}

// A whole CGI response with a plain-text body, its Content-Length counted from the body.
function textResponse(status: string, body: string): string {
  return `Status: ${status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

// The same answers the http API gives (Server.handlerError, the handler timeout).
const SERVER_ERROR = textResponse('500 Internal Server Error', 'Internal Server Error\n');
const TIMED_OUT = textResponse('503 Service Unavailable', 'Service Unavailable: the application timed out\n');

/** A Server whose requests go to a fetch handler. */
export class FetchServer extends Server {
  readonly #fetch: (request: Request, context: FetchContext) => Response | Promise<Response>;
  readonly #light: boolean;

  constructor(handler: FetchHandler, options: ServeOptions) {
    super(options);
    this.#fetch = typeof handler === 'function' ? handler : handler.fetch.bind(handler);
    this.#light = options.overrideGlobalObjects !== false;
    if (this.#light) installLightFetch();
  }

  /** @internal */
  override dispatch(request: RequestSocket): void {
    // The connection emits 'timeout' only under a handlerTimeout: no listener (and no closure) per request otherwise.
    if (this.settings.handlerTimeout > 0) request.once('timeout', () => this.#answerOnce(request, TIMED_OUT));
    if (tracingActive(tracingChannels.serverHandler)) traceHandler(request, () => this.#call(request));
    else this.#call(request);
  }

  // Runs the handler and writes what it returns; returns the handler's promise (its rejection handled) for the
  // handler tracing channel, or undefined when it answered synchronously.
  #call(request: RequestSocket): Promise<void> | undefined {
    let result: Response | Promise<Response>;
    const light = new LightRequest(request);
    try {
      result = this.#fetch(this.#light ? (light as unknown as Request) : realRequest(light), {
        params: request.rawParams,
        fastcgi: request,
      });
    } catch (error) {
      this.fetchFailed(error, request);
      return undefined;
    }
    const head = light.method === 'HEAD';
    if (result instanceof Response) {
      this.#write(result, request, head);
      return undefined;
    }
    return Promise.resolve(result).then(
      (response) => this.#write(response, request, head),
      (error: unknown) => this.fetchFailed(error, request),
    );
  }

  #write(response: unknown, request: RequestSocket, head: boolean): void {
    if (request.isEnded || request.writableEnded) return;
    if (!(response instanceof Response))
      return this.fetchFailed(
        new FastCGIError(
          ErrorCode.HANDLER_RESULT,
          `the fetch handler must return a Response, got ${describeResult(response)}`,
        ),
        request,
      );
    let streamed: Promise<void> | undefined;
    try {
      streamed = writeFetchResponse(response, request, head);
    } catch (error) {
      return this.fetchFailed(error, request);
    }
    // fetchFailed ignores a failure that an abort caused (nobody is left to answer).
    streamed?.catch((error: unknown) => this.fetchFailed(error, request));
  }

  // A handler that throws or rejects: the stack goes to STDERR (the web server's error log) and the logger;
  // the client gets a 500 if nothing was sent yet, else the response is cut off with a non-zero appStatus.
  /** @internal */
  fetchFailed(error: unknown, request: RequestSocket): void {
    // The web server went away (ABORT_REQUEST, a closed connection, the handler timeout): a body read or a
    // write that fails because of it is not the application's failure, and there is no one left to answer.
    if (request.abortReason !== null) return;
    const stack = error instanceof Error ? (error.stack ?? String(error)) : String(error);
    const params = request.rawParams;
    this.settings.logger.error(
      `handler failed for ${params.get('REQUEST_METHOD') ?? 'GET'} ${params.get('REQUEST_URI') ?? ''}: ${stack}`,
      requestFields(request),
    );
    if (channels.serverRequestError.hasSubscribers)
      channels.serverRequestError.publish(build.serverRequestError(request, error));
    if (!request.isEnded) request.stderr.write(`${stack}\n`);
    this.#answerOnce(request, SERVER_ERROR);
  }

  #answerOnce(request: RequestSocket, block: string): void {
    if (request.isEnded || request.writableEnded) return;
    if (!headWritten(request)) {
      // A Response whose body failed before anything went out set its status; the block's own counts.
      request.status = 0;
      request.end(block, 'latin1');
    } else {
      request.appStatus = 1;
      request.destroy();
    }
  }
}

/**
 * serve returns a FastCGI server whose requests go to a fetch handler. The handler's Request streams the
 * body (STDIN) and its signal aborts when the web server aborts or the connection closes; the Response body
 * streams to STDOUT with backpressure. A handler that throws or rejects gets a 500, as with createServer.
 */
export function serve(handler: FetchHandler, options: ServeOptions = {}): FetchServer {
  return new FetchServer(handler, options);
}
