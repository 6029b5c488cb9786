// X-Accel-Redirect (nginx) and X-Sendfile (Apache's mod_xsendfile, lighttpd): the application checks access
// and names a file; the front end sends it, with ranges and caching, keeping the application's other headers.
// Only files inside the configured directories are sent, symlinks resolved.
import { promises as fs } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import send from 'send';
import type { ClientResponse } from '../client/client-response';
import type { GatewayLogger } from '../gateway/gateway';
import { answer } from './answer';
import { encodePath, percentDecode } from './route';

/** Directories the headers may name files in, or URI prefix → directory for X-Accel-Redirect URIs. */
export type SendfileRoots = readonly string[] | Readonly<Record<string, string>>;

// The backend's headers that describe its own body or ask for the file: not passed on with the file.
const DROPPED = new Set([
  'x-accel-redirect',
  'x-sendfile',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'status',
  'x-accel-buffering',
  'x-accel-charset',
  'x-accel-expires',
  'x-accel-limit-rate',
]);

/** createSendfile returns the gateway's interceptResponse for `roots`. */
export function createSendfile(
  roots: SendfileRoots,
  logger: GatewayLogger,
): (response: ClientResponse, req: IncomingMessage, res: ServerResponse) => boolean {
  const directories = Array.isArray(roots)
    ? (roots as readonly string[]).map(trimSlash)
    : Object.values(roots).map(trimSlash);
  const prefixes = Array.isArray(roots)
    ? null
    : Object.entries(roots as Record<string, string>).map(([prefix, dir]) => ({ prefix, dir: trimSlash(dir) }));
  const realRoots = Promise.all(directories.map((dir) => fs.realpath(dir).catch(() => dir)));
  return (response, req, res) => {
    const raw = response.rawHeaders;
    let accel: string | null = null;
    let sendfile: string | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (name === 'x-accel-redirect') accel = raw[i + 1]!;
      else if (name === 'x-sendfile') sendfile = raw[i + 1]!;
    }
    if (accel === null && sendfile === null) return false;
    let file: string | null;
    if (sendfile !== null) file = posix.normalize(sendfile);
    else {
      const uri = posix.normalize(percentDecode(accel!.split('?')[0]!));
      file = uri;
      if (prefixes !== null) {
        const match = prefixes.find(({ prefix }) => uri.startsWith(prefix));
        file = match === undefined ? null : `${match.dir}/${uri.slice(match.prefix.length)}`;
      }
    }
    for (let i = 0; i < raw.length; i += 2) {
      if (!DROPPED.has(raw[i]!.toLowerCase())) res.appendHeader(raw[i]!, raw[i + 1]!);
    }
    void deliver(file, realRoots, req, res, logger);
    return true;
  };
}

async function deliver(
  file: string | null,
  realRoots: Promise<string[]>,
  req: IncomingMessage,
  res: ServerResponse,
  logger: GatewayLogger,
): Promise<void> {
  const roots = await realRoots;
  let real: string | null = null;
  if (file !== null && file.startsWith('/')) {
    try {
      real = await fs.realpath(file);
    } catch {
      return refuse(req, res, 404, 'Not Found', logger, `the backend named ${file}, which does not exist`);
    }
  }
  if (real === null || !roots.some((root) => real.startsWith(`${root}/`))) {
    return refuse(req, res, 403, 'Forbidden', logger, `the backend named ${file ?? 'a path'} outside sendfileRoots`);
  }
  const stream = send(req, encodePath(real), { dotfiles: 'allow', index: false });
  stream.on('error', (error: Error & { status?: number }) =>
    refuse(req, res, error.status ?? 500, 'Error', logger, error.message),
  );
  stream.pipe(res);
}

function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  text: string,
  logger: GatewayLogger,
  reason: string,
): void {
  logger.error(`${status} for ${req.method} ${req.url}: ${reason}`);
  if (res.headersSent) return void res.destroy();
  // The application's headers set for the file do not belong to an error.
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  answer(req, res, status, text);
}

function trimSlash(dir: string): string {
  return dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
}
