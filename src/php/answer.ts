// The front end's own short answers (403, 404, 405, redirects): plain text, and an unread upload closes the
// connection after it, as the gateway's errors do.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** answer writes a short plain-text response (no body for HEAD). */
export function answer(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  text: string | undefined,
  headers: Record<string, string> = {},
): void {
  const body = `${text ?? 'Error'}\n`;
  const all: Record<string, string | number> = {
    ...headers,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  };
  if (!req.complete) all.Connection = 'close';
  res.writeHead(status, all);
  res.end(req.method === 'HEAD' ? undefined : body);
  if (!req.complete) req.resume();
}
