// nginx for the end-to-end benchmarks: one worker, no access log, keep-alive on both sides, started in the
// foreground from a config written to a temp dir, with one upstream per backend.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, freePort, track, waitUntil } from './processes';

/** One backend behind nginx. */
export interface NginxRoute {
  /** The location's argument: a prefix (`/engine/`) or a regex (`~ \.php$`). */
  readonly location: string;
  /** fastcgi_pass (with `include fastcgi_params` and fastcgi_keep_conn) or proxy_pass over HTTP/1.1. */
  readonly protocol: 'fastcgi' | 'http';
  /** The upstream server (`unix:/path/to.sock` or `127.0.0.1:9000`), or several, balanced by nginx's default round robin. */
  readonly server: string | readonly string[];
  /** Idle connections nginx keeps to the backend (upstream keepalive). */
  readonly keepalive: number;
}

export interface NginxSettings {
  /** Document root (SCRIPT_FILENAME = root + script name, for php-fpm). */
  readonly root: string;
  /**
   * Largest request body, bytes. Bodies up to it are kept in memory rather than in a temp file
   * (client_body_buffer_size), so that a POST measures the backends and not the disk. Default: nginx's own
   * limits (1 MB, a 16 KB buffer).
   */
  readonly maxBodyBytes?: number;
  /** Response bytes buffered in memory per request, with no temp file past them (default: nginx's 8 × 4 KB). */
  readonly responseBufferBytes?: number;
}

const BUFFER_BYTES = 16 * 1024;

function passDirectives(route: NginxRoute, upstream: string, settings: NginxSettings): string[] {
  const prefix = route.protocol === 'fastcgi' ? 'fastcgi' : 'proxy';
  const lines =
    route.protocol === 'fastcgi'
      ? [
          'include /etc/nginx/fastcgi_params;',
          'fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;',
          'fastcgi_keep_conn on;',
          `fastcgi_pass ${upstream};`,
        ]
      : [`proxy_pass http://${upstream};`, 'proxy_http_version 1.1;', 'proxy_set_header Connection "";'];
  if (settings.responseBufferBytes !== undefined) {
    lines.push(
      `${prefix}_buffers ${Math.max(2, Math.ceil(settings.responseBufferBytes / BUFFER_BYTES))} ${BUFFER_BYTES / 1024}k;`,
      `${prefix}_max_temp_file_size 0;`,
    );
  }
  return lines;
}

/** The nginx.conf for `routes`, listening on 127.0.0.1:`port`, with its files under `dir`. */
export function nginxConfig(dir: string, port: number, routes: readonly NginxRoute[], settings: NginxSettings): string {
  const temp = join(dir, 'nginx-temp');
  const asRoot = process.getuid?.() === 0;
  const body =
    settings.maxBodyBytes === undefined
      ? []
      : [`client_max_body_size ${settings.maxBodyBytes};`, `client_body_buffer_size ${settings.maxBodyBytes};`];
  const upstreams = routes.map((route, i) => {
    const servers = (typeof route.server === 'string' ? [route.server] : route.server).map((s) => `server ${s}; `);
    return `  upstream backend${i} { ${servers.join('')}keepalive ${route.keepalive}; keepalive_timeout 1s; }`;
  });
  const locations = routes.map((route, i) =>
    [
      `    location ${route.location} {`,
      ...passDirectives(route, `backend${i}`, settings).map((line) => `      ${line}`),
      '    }',
    ].join('\n'),
  );
  return `${asRoot ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'nginx-error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${temp}/body;
  fastcgi_temp_path ${temp}/fastcgi;
  proxy_temp_path ${temp}/proxy;
  scgi_temp_path ${temp}/scgi;
  uwsgi_temp_path ${temp}/uwsgi;
  keepalive_requests 1000000;
${body.map((line) => `  ${line}\n`).join('')}${upstreams.join('\n')}
  server {
    listen 127.0.0.1:${port};
    root ${settings.root};
${locations.join('\n')}
  }
}
`;
}

/** nginx in the foreground with one upstream per route; resolves once it accepts connections. */
export async function startNginxRoutes(
  binary: string,
  dir: string,
  routes: readonly NginxRoute[],
  settings: NginxSettings,
): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  mkdirSync(join(dir, 'nginx-temp'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(dir, port, routes, settings));
  const child = track(spawn(binary, ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  await waitUntil(
    'nginx',
    () => canConnect({ port, host: '127.0.0.1' }),
    child,
    () => {
      let file = '';
      try {
        file = readFileSync(join(dir, 'nginx-error.log'), 'utf8');
      } catch {
        // none yet
      }
      return log + file;
    },
  );
  return { child, port };
}

/** How nginx passes requests on: to a FastCGI backend on a unix socket, keeping `keepalive` idle connections. */
export interface NginxUpstream {
  readonly socket: string;
  readonly keepalive: number;
  /** Document root (SCRIPT_FILENAME = root + script name, for php-fpm). */
  readonly root: string;
  /** nginx location regex for what goes to the backend. */
  readonly location: string;
}

/** nginx in front of one FastCGI backend on a unix socket. */
export function startNginx(
  binary: string,
  dir: string,
  upstream: NginxUpstream,
): Promise<{ child: ChildProcess; port: number }> {
  const route: NginxRoute = {
    location: `~ ${upstream.location}`,
    protocol: 'fastcgi',
    server: `unix:${upstream.socket}`,
    keepalive: upstream.keepalive,
  };
  return startNginxRoutes(binary, dir, [route], { root: upstream.root });
}
