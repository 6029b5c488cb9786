// `fastcgi-engine php-server --root DIR`: a PHP site served in one line, as FrankenPHP's `php-server` or
// `caddy php-fastcgi`: createPhpFrontEnd on HTTP, in front of --upstream or of a php-fpm it runs itself.
import * as fs from 'node:fs';
import { createServer } from 'node:http';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createPhpFrontEnd } from '../php/front-end';
import { PhpFpmSupervisor } from '../php/php-fpm-supervisor';
import { UsageError, parseAddress, parseCount } from './args';

const HELP = `Usage: fastcgi-engine php-server --root DIR [options]

Serves the PHP site in DIR over HTTP: static files from DIR, *.php through php-fpm, directories through
index.php / index.html, other paths to the front controller /index.php (WordPress, Laravel, Symfony pretty
URLs). Dotfiles (.git, .env, .htaccess) get 403, PHP source is never sent.

Options:
  --root DIR             the document root (required)
  --listen ADDR          HTTP address: a port, host:port or [::1]:port (default 127.0.0.1:8080)
  --upstream ADDR        php-fpm's address (unix:/run/php/php8.2-fpm.sock, 127.0.0.1:9000); without it
                         a private php-fpm (php-fpm8.2 or php-fpm from PATH or /usr/sbin) is started in a
                         temp dir, restarted with backoff if it dies, stopped on exit
  --workers N            with no --upstream: php-fpm's pm.max_children (default 5)
  --front-controller P   the script for paths naming no file (default /index.php); 'none' answers 404
  --deny PREFIX          also refuse paths starting with PREFIX (repeatable, e.g. --deny /vendor/)
  --max-body BYTES       largest request body (default 104857600)
  -h, --help             this text

SIGTERM/SIGINT close the HTTP server and stop php-fpm.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      root: { type: 'string' },
      listen: { type: 'string' },
      upstream: { type: 'string' },
      workers: { type: 'string' },
      'front-controller': { type: 'string' },
      deny: { type: 'string', multiple: true },
      'max-body': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (values.root === undefined) throw new UsageError('--root DIR is required');
  const root = resolve(values.root);
  if (!fs.statSync(root, { throwIfNoEntry: false })?.isDirectory())
    throw new UsageError(`--root ${values.root} is not a directory`);
  const listen = parseListen(values.listen ?? '8080');
  const maxBodySize = parseCount('max-body', values['max-body'], 1);
  const workers = parseCount('workers', values.workers, 1);
  const controller = values['front-controller'];
  if (controller !== undefined && controller !== 'none' && !controller.startsWith('/'))
    throw new UsageError(`--front-controller expects a path starting with '/' or 'none', got '${controller}'`);

  const fpm =
    values.upstream === undefined
      ? new PhpFpmSupervisor({
          ...(workers === undefined ? {} : { maxChildren: workers }),
          ...(maxBodySize === undefined ? {} : { maxBodySize }),
        })
      : null;
  const upstream = values.upstream === undefined ? fpm!.address : describe(parseAddress(values.upstream));
  if (fpm !== null) await fpm.start();
  const frontEnd = createPhpFrontEnd({
    root,
    upstream,
    ...(controller === undefined ? {} : { frontController: controller === 'none' ? false : controller }),
    ...(values.deny === undefined ? {} : { deny: values.deny }),
    ...(maxBodySize === undefined ? {} : { maxBodySize }),
  });
  const server = createServer((req, res) => frontEnd(req, res));
  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => resolveListen());
    });
  } catch (error) {
    await fpm?.stop();
    await frontEnd.close();
    throw error;
  }
  process.stderr.write(
    `fastcgi-engine php-server: http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}/ serving ${root} through ${upstream}\n`,
  );
  await new Promise<void>((done) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      server.close();
      server.closeAllConnections();
      done();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await frontEnd.close();
  await fpm?.stop();
  return 0;
}

function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]:|([^:[\]]+):)?(\d+)$/.exec(value);
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || port < 1 || port > 65535)
    throw new UsageError(`--listen expects a port, host:port or [v6]:port, got '${value}'`);
  return { host: match[1] ?? match[2] ?? '127.0.0.1', port };
}

function describe(address: { path: string } | { host: string; port: number }): string {
  return 'path' in address
    ? `unix:${address.path}`
    : `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
}
