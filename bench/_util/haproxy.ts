// HAProxy for the end-to-end benchmark: one thread (as nginx's one worker), started in the foreground (-db)
// from a config written to a temp dir, one frontend port per backend. A FastCGI backend gets an fcgi-app that
// asks the app whether it multiplexes (option get-values, mpxs-conns) and shares connections across clients
// (http-reuse always); an HTTP backend gets a plain server with the same connection reuse.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, freePort, track, waitUntil } from './processes';

export interface HaproxyRoute {
  /** A name for the frontend and backend sections: letters, digits, '-' and '_'. */
  readonly name: string;
  readonly protocol: 'fastcgi' | 'http';
  /** The backend: `127.0.0.1:9000`. */
  readonly server: string;
}

/** haproxy.cfg for `routes`, the i-th route's frontend on 127.0.0.1:ports[i]. */
export function haproxyConfig(dir: string, routes: readonly HaproxyRoute[], ports: readonly number[]): string {
  const sections = routes.map((route, i) => {
    const fcgi = route.protocol === 'fastcgi';
    return [
      ...(fcgi
        ? [
            `fcgi-app fcgi_${route.name}`,
            `  docroot ${join(dir, 'www')}`,
            '  option get-values',
            '  option mpxs-conns',
            '  option keep-conn',
            '',
          ]
        : []),
      `frontend fe_${route.name}`,
      `  bind 127.0.0.1:${ports[i]}`,
      `  default_backend be_${route.name}`,
      '',
      `backend be_${route.name}`,
      ...(fcgi ? [`  use-fcgi-app fcgi_${route.name}`] : []),
      '  http-reuse always',
      `  server s_${route.name} ${route.server}${fcgi ? ' proto fcgi' : ''}`,
      '',
    ].join('\n');
  });
  return `global
  nbthread 1
  maxconn 8192
  pidfile ${join(dir, 'haproxy.pid')}

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s

${sections.join('\n')}`;
}

/** HAProxy in the foreground; resolves with the frontend port of each route once all of them accept connections. */
export async function startHaproxy(
  binary: string,
  dir: string,
  routes: readonly HaproxyRoute[],
): Promise<{ child: ChildProcess; ports: number[] }> {
  const ports: number[] = [];
  while (ports.length < routes.length) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  mkdirSync(join(dir, 'www'), { recursive: true });
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(conf, haproxyConfig(dir, routes, ports));
  const child = track(spawn(binary, ['-db', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  for (const port of ports)
    await waitUntil(
      'haproxy',
      () => canConnect({ port, host: '127.0.0.1' }),
      child,
      () => log,
    );
  return { child, ports };
}
