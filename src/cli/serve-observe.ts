// What `serve` adds around the application: the status and ping pages (--status-path, --ping-path), answered
// before the application sees the request, and the access log (--access-log). Both follow each request from
// the moment the server hands it over to its end.
import { createWriteStream, type WriteStream } from 'node:fs';
import { basename, extname } from 'node:path';
import type { Server } from '../index';
import type { RequestSocket } from '../server/request-socket';
import { buildReport, type ProcessEntry, type ProcessSample, type StatusReport } from '../status/report';
import { CONTENT_TYPES, clfDate, parseStatusQuery, render } from '../status/render';
import type { ServeSettings } from './serve-settings';

/** One finished request, as the access log writes it. */
export interface FinishedRequest {
  time: number;
  remoteAddress: string;
  method: string;
  uri: string;
  protocol: string;
  status: number;
  bytes: number;
  durationMs: number;
  aborted: boolean;
}

/** The access log's line formats: the common log format plus the duration in seconds (nginx's $request_time), or JSON. */
export function formatAccessLine(entry: FinishedRequest, format: 'common' | 'json'): string {
  if (format === 'json') {
    return `${JSON.stringify({
      time: new Date(entry.time).toISOString(),
      remote: entry.remoteAddress,
      method: entry.method,
      uri: entry.uri,
      protocol: entry.protocol,
      status: entry.status,
      bytes: entry.bytes,
      duration_ms: Number(entry.durationMs.toFixed(3)),
      aborted: entry.aborted,
    })}\n`;
  }
  const request = `${entry.method} ${entry.uri} ${entry.protocol}`.replace(/["\\]/g, (c) => `\\${c}`);
  return `${entry.remoteAddress} - - [${clfDate(entry.time)}] "${request}" ${entry.status} ${entry.bytes} ${(entry.durationMs / 1000).toFixed(3)}\n`;
}

/** The pool name the status page shows: the module's file name without its extension. */
export function poolName(settings: ServeSettings): string {
  return basename(settings.module, extname(settings.module));
}

/** Where the status page's report comes from: this process alone, or the primary's sum over the workers. */
export type ReportSource = (local: () => ProcessSample, full: boolean) => Promise<StatusReport>;

export interface Observer {
  /** This process's sample for the pool's report. */
  sample(): ProcessSample;
  /** Flushes the access log; call after the server has drained. */
  close(): Promise<void>;
}

function pathOf(params: Record<string, string>): { path: string; query: string } {
  const uri = params.REQUEST_URI ?? '';
  const q = uri.indexOf('?');
  const path = q === -1 ? uri : uri.slice(0, q);
  return {
    path: path === '' ? (params.SCRIPT_NAME ?? '') : path,
    query: params.QUERY_STRING ?? (q === -1 ? '' : uri.slice(q + 1)),
  };
}

function answer(request: RequestSocket, contentType: string, body: string): void {
  if (request.isEnded || request.writableEnded) return;
  const bytes = Buffer.from(body, 'utf8');
  const head = `Status: 200 OK\r\nContent-Type: ${contentType}\r\nContent-Length: ${bytes.length}\r\nCache-Control: no-store\r\n\r\n`;
  request.end(
    Buffer.concat([
      Buffer.from(head, 'latin1'),
      request.rawParams.get('REQUEST_METHOD') === 'HEAD' ? Buffer.alloc(0) : bytes,
    ]),
  );
}

/**
 * observe wraps the server's dispatch: every request is followed to its end (for the access log and this
 * process's last request), and the status and ping paths are answered here, as php-fpm answers
 * pm.status_path and ping.path before its script runs. Matched on the path of REQUEST_URI, or SCRIPT_NAME when
 * there is no REQUEST_URI (php-fpm matches SCRIPT_NAME; nginx sends both).
 */
export function observe(server: Server, settings: ServeSettings, source: ReportSource): Observer {
  const startTime = Date.now();
  let served = 0;
  let lastRequest: ProcessEntry['lastRequest'];
  let log: WriteStream | NodeJS.WriteStream | null = null;
  if (settings.accessLog !== undefined)
    log = settings.accessLog === '-' ? process.stdout : createWriteStream(settings.accessLog, { flags: 'a' });
  const format = settings.accessLogFormat ?? 'common';
  const pool = poolName(settings);

  const sample = (): ProcessSample => {
    const stats = server.stats();
    return {
      entry: {
        pid: process.pid,
        state: stats.requests.inFlight > 0 ? 'Running' : 'Idle',
        startTime,
        requests: served,
        lastRequest,
      },
      stats,
    };
  };

  const follow = (request: RequestSocket): void => {
    const started = performance.now();
    const params = request.rawParams;
    const method = params.get('REQUEST_METHOD') ?? 'GET';
    const uri = params.get('REQUEST_URI') ?? `${params.get('SCRIPT_NAME') ?? ''}${params.get('PATH_INFO') ?? ''}`;
    served++;
    lastRequest = { durationMs: 0, method, uri };
    let done = false;
    const end = (aborted: boolean): void => {
      if (done) return;
      done = true;
      const durationMs = performance.now() - started;
      lastRequest = { durationMs, method, uri };
      log?.write(
        formatAccessLine(
          {
            time: Date.now(),
            remoteAddress: params.get('REMOTE_ADDR') ?? '-',
            method,
            uri,
            protocol: params.get('SERVER_PROTOCOL') ?? 'HTTP/1.1',
            // nginx logs 499 for a request its client gave up on.
            status: aborted ? 499 : request.status,
            bytes: request.bytesOut,
            durationMs,
            aborted,
          },
          format,
        ),
      );
    };
    request.once('abort', (reason: string) => {
      if (reason !== 'timeout') end(true);
    });
    request.once('finish', () => end(false));
    request.once('close', () => end(false));
  };

  const close = (): Promise<void> =>
    new Promise<void>((resolvePromise) => {
      if (log === null || log === process.stdout) return resolvePromise();
      (log as WriteStream).end(() => resolvePromise());
    });
  // Nothing asked for: the app's requests are not followed at all (following costs listeners per request).
  if (log === null && settings.statusPath === undefined && settings.pingPath === undefined) return { sample, close };

  const dispatch = server.dispatch.bind(server);
  server.dispatch = (request: RequestSocket): void => {
    follow(request);
    if (settings.statusPath !== undefined || settings.pingPath !== undefined) {
      const { path, query } = pathOf(request.params);
      if (path === settings.pingPath)
        return answer(request, 'text/plain; charset=utf-8', `${settings.pingResponse ?? 'pong'}\n`);
      if (path === settings.statusPath) {
        const { format: pageFormat, full } = parseStatusQuery(query);
        source(sample, full).then(
          (report) => answer(request, CONTENT_TYPES[pageFormat], render({ ...report, pool }, pageFormat, full)),
          (error: unknown) => {
            if (!request.isEnded && !request.writableEnded)
              request.end(
                `Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe status report failed: ${(error as Error).message}\n`,
              );
          },
        );
        return;
      }
    }
    dispatch(request);
  };

  return { sample, close };
}

/** The report of a process serving alone. */
export const singleProcess: ReportSource = async (local) => buildReport('', 'static', [local()]);
