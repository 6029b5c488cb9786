// The handlers of the end-to-end benchmark (bench/e2e.bench.ts), for the Node backends: one (req, res) handler
// for node:http and the FastCGI servers with node:http's API, one fetch handler for `fastcgi-engine serve`.
// bench/apps/e2e.go and bench/apps/e2e.c answer the very same bytes; bench/e2e/workloads.ts checks every
// backend's answers before measuring it.
//
// Routes, by the last path segment (the prefix before it names the backend in nginx's config):
//   GET  …/hello  12 bytes, "hello world\n"
//   GET  …/4k     4096 bytes
//   GET  …/64k    65536 bytes
//   POST …/echo   the body's sha256, 64 hex digits
// Anything else: 404.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** `n` bytes of 'a'…'z' repeated: the fixed bodies (the same pattern in e2e.go and e2e.c). */
export function letters(n: number): Buffer {
  const body = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) body[i] = 0x61 + (i % 26);
  return body;
}

const FIXED: ReadonlyMap<string, Buffer> = new Map([
  ['hello', Buffer.from('hello world\n')],
  ['4k', letters(4096)],
  ['64k', letters(65536)],
]);

/** The route: what follows the last '/' of the path, without the query. */
export function routeOf(url: string): string {
  const path = url.split('?', 1)[0]!;
  return path.slice(path.lastIndexOf('/') + 1);
}

function reply(res: ServerResponse, status: number, body: Buffer | string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** The (req, res) handler: node:http, createServer, the node-fastcgi drop-in and node-fastcgi itself. */
export function nodeHandler(req: IncomingMessage, res: ServerResponse): void {
  const route = routeOf(req.url ?? '');
  if (route === 'echo' && req.method === 'POST') {
    const hash = createHash('sha256');
    req.on('data', (chunk: Buffer) => hash.update(chunk));
    req.on('end', () => reply(res, 200, hash.digest('hex')));
    return;
  }
  const body = req.method === 'GET' ? FIXED.get(route) : undefined;
  if (body === undefined) {
    req.resume();
    reply(res, 404, 'not found\n');
    return;
  }
  reply(res, 200, body);
}

function response(status: number, body: Uint8Array | string): Response {
  const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  return new Response(body, { status, headers: { 'Content-Type': 'text/plain', 'Content-Length': String(length) } });
}

/** The fetch handler (`fastcgi-engine serve bench/apps/e2e-fetch.ts`). */
export async function fetchHandler(request: Request): Promise<Response> {
  const route = routeOf(request.url);
  if (route === 'echo' && request.method === 'POST') {
    const hash = createHash('sha256');
    // Chunk by chunk, as the (req, res) handler does: no copy of the whole body.
    if (request.body !== null) for await (const chunk of request.body) hash.update(chunk);
    return response(200, hash.digest('hex'));
  }
  const body = request.method === 'GET' ? FIXED.get(route) : undefined;
  return body === undefined ? response(404, 'not found\n') : response(200, body);
}
