// What `fastcgi-engine serve` was asked to do, as the primary hands it to its workers (JSON in the
// environment), and how its log lines name things.

export type AppKind = 'fetch' | 'node';

/** Where the application listens: a unix socket path, TCP, or a socket the parent passed in (fd 0 or systemd's). */
export type Where =
  { kind: 'socket'; path: string } | { kind: 'port'; port: number; host: string } | { kind: 'inherited'; fd?: number };

export interface ServeSettings {
  module: string;
  where: Where;
  socketMode: number | undefined;
  workers: number;
  maxRequests: number | undefined;
  drainTimeout: number;
  http: number | undefined;
  documentRoot: string;
  kind: AppKind | undefined;
  /** The status page (--status-path), ping page (--ping-path, --ping-response) and access log (--access-log). */
  statusPath?: string;
  pingPath?: string;
  pingResponse?: string;
  accessLog?: string;
  accessLogFormat?: 'common' | 'json';
  slowRequestThreshold?: number;
}

/** The environment variable that carries the settings to the workers. */
export const SETTINGS_ENV = 'FASTCGI_ENGINE_SERVE';

export const CLI_HOW_TO_RUN = `With fastcgi-engine serve: --socket /run/app.sock, --port 9000 [--host 127.0.0.1], or no address when a web
server, process manager or systemd starts it with the listening socket (see 'fastcgi-engine serve --help').`;

export function describeWhere(where: Where): string {
  return where.kind === 'socket'
    ? `unix:${where.path}`
    : where.kind === 'port'
      ? `${where.host}:${where.port}`
      : `inherited fd ${where.fd ?? 0}`;
}

/** One line on stderr, prefixed with the process id: the primary and its workers share the stream. */
export function log(message: string): void {
  process.stderr.write(`fastcgi-engine serve[${process.pid}]: ${message}\n`);
}
