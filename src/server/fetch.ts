// serve(): the fetch-style API, `(Request) => Response`, on top of the http-compatible server. Bodies stream
// both ways with backpressure, and request.signal aborts when the web server goes away.
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { Params } from '../wire/params';
import { Server } from './server';
import type { FastCGIIncomingMessage, FastCGIServerResponse } from './http-message';
import type { ServerOptions } from './options';
import type { RequestSocket } from './request-socket';

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

/** requestOrigin rebuilds the client-facing origin from CGI params (REQUEST_SCHEME or HTTPS, then Host). */
export function requestOrigin(params: Params): string {
  const https = params.get('HTTPS');
  const scheme = params.get('REQUEST_SCHEME') ?? (https !== undefined && https !== '' && https.toLowerCase() !== 'off' ? 'https' : 'http');
  let host = params.get('HTTP_HOST');
  if (host === undefined || host === '') {
    const name = params.get('SERVER_NAME') ?? 'localhost';
    const port = params.get('SERVER_PORT');
    host = port === undefined || port === '' || (scheme === 'https' ? port === '443' : port === '80') ? name : `${name}:${port}`;
  }
  return `${scheme}://${host}`;
}

function toRequest(req: FastCGIIncomingMessage): Request {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    try {
      headers.append(raw[i]!, raw[i + 1]!);
    } catch {
      // A header value fetch refuses (control bytes): the web server let it through; skip it, keep the request.
    }
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const init: RequestInit & { duplex?: 'half' } = { method, headers, signal: req.fastcgi.signal };
  if (hasBody) {
    init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>;
    init.duplex = 'half';
  }
  return new Request(new URL(req.url ?? '/', requestOrigin(req.fastcgi.rawParams)), init);
}

async function writeResponse(response: Response, res: FastCGIServerResponse, signal: AbortSignal): Promise<void> {
  res.statusCode = response.status;
  res.statusMessage = response.statusText !== '' ? response.statusText : (STATUS_CODES[response.status] ?? 'Unknown');
  const cookies = response.headers.getSetCookie();
  for (const [name, value] of response.headers) if (name !== 'set-cookie') res.setHeader(name, value);
  if (cookies.length > 0) res.setHeader('Set-Cookie', cookies);
  if (response.body === null) {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    // A body that fits one chunk goes out as one write with an exact Content-Length.
    const first = await reader.read();
    if (first.done) return void res.end();
    const second = await reader.read();
    if (second.done) return void res.end(first.value);
    res.write(first.value);
    let chunk: Uint8Array | undefined = second.value;
    while (chunk !== undefined) {
      if (signal.aborted) throw signal.reason;
      if (!res.write(chunk)) await once(res, 'drain', { signal });
      const next = await reader.read();
      chunk = next.done ? undefined : (next.value as Uint8Array);
    }
    res.end();
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    if (!signal.aborted) throw error;
  }
}

/**
 * serve returns a FastCGI server whose requests go to a fetch handler. The handler's Request streams the
 * body (STDIN) and its signal aborts when the web server aborts or the connection closes; the Response body
 * streams to STDOUT with backpressure. A handler that throws or rejects gets a 500, as with createServer.
 */
export function serve(handler: FetchHandler, options: ServerOptions = {}): Server {
  const fetch = typeof handler === 'function' ? handler : handler.fetch.bind(handler);
  return new Server(options, async (req, res) => {
    const fastcgi = req.fastcgi;
    const response = await fetch(toRequest(req), { params: fastcgi.rawParams, fastcgi });
    if (!(response instanceof Response)) throw new TypeError('the fetch handler must return a Response');
    await writeResponse(response, res, fastcgi.signal);
  });
}
