// `serve --status-path/--ping-path/--access-log` and `fastcgi-engine status`, against serve (alone and with
// --workers 2, whose primary sums the workers) and against php-fpm's own status page (pm.status_path).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/index';
import { PhpFpm, phpFpmBinary } from '../client/php-fpm-harness';
import { runCli, startServe, tempDir } from './helpers';

async function get(socket: string, uri: string): Promise<{ status: number; type: string | undefined; body: string }> {
  const client = createClient({ address: socket });
  try {
    const q = uri.indexOf('?');
    const res = await client.request({
      params: {
        REQUEST_METHOD: 'GET',
        REQUEST_URI: uri,
        QUERY_STRING: q === -1 ? '' : uri.slice(q + 1),
        SERVER_PROTOCOL: 'HTTP/1.1',
        REMOTE_ADDR: '127.0.0.1',
      },
    });
    const type = res.headers['content-type'];
    return { status: res.status, type: Array.isArray(type) ? type[0] : type, body: await res.text() };
  } finally {
    await client.close();
  }
}

/** A text status page as label → value. */
function fields(text: string): Map<string, string> {
  return new Map(
    text
      .split('\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

describe('serve --status-path', () => {
  it('answers the status and ping paths before the app, in each format; status prints it; the access log has every request', async () => {
    const accessLog = join(tempDir(), 'access.log');
    const server = await startServe('fetch-object.mjs', [
      '--status-path',
      '/fcgi-status',
      '--ping-path',
      '/ping',
      '--ping-response',
      'alive',
      '--access-log',
      accessLog,
    ]);
    expect((await get(server.socket, '/a')).status).toBe(200);
    expect((await get(server.socket, '/missing')).status).toBe(404);
    const ping = await get(server.socket, '/ping');
    expect(ping).toEqual({ status: 200, type: 'text/plain; charset=utf-8', body: 'alive\n' });

    const out = await runCli(['status', server.socket]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const text = fields(out.stdout);
    expect(text.get('pool')).toBe('fetch-object');
    expect(text.get('process manager')).toBe('static');
    expect(text.get('total processes')).toBe('1');
    // The two app requests and the ping answered; the status request itself is in flight.
    expect(text.get('requests 2xx')).toBe('2');
    expect(text.get('requests 4xx')).toBe('1');
    expect(text.get('requests in flight')).toBe('1');
    expect(text.get('active processes')).toBe('1');
    expect(Number(text.get('accepted conn'))).toBeGreaterThanOrEqual(4);

    const json = JSON.parse((await runCli(['status', server.socket, '--json', '--full'])).stdout) as Record<
      string,
      unknown
    >;
    expect(json.pool).toBe('fetch-object');
    expect((json.processes as Array<{ pid: number; requests: number }>)[0]!.pid).toBe(server.child.pid);
    const metrics = await get(server.socket, '/fcgi-status?openmetrics');
    expect(metrics.type).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(metrics.body).toMatch(/^fastcgi_engine_requests_total\{pool="fetch-object",status_class="4xx"\} 1$/m);
    expect(metrics.body.endsWith('# EOF\n')).toBe(true);

    // The access log is written as requests end, flushed at exit.
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const lines = readFileSync(accessLog, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[0]).toMatch(
      /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/a HTTP\/1\.1" 200 \d+ \d+\.\d{3}$/,
    );
    expect(lines[1]).toContain('"GET /missing HTTP/1.1" 404 ');
  });

  it('with --workers 2 the page sums the workers, whichever of them answers it', async () => {
    const server = await startServe('fetch-object.mjs', [
      '--workers',
      '2',
      '--status-path',
      '/fcgi-status',
      '--access-log-format',
      'json',
      '--access-log',
      '-',
    ]);
    for (let i = 0; i < 10; i++) expect((await get(server.socket, `/n${i}`)).status).toBe(200);
    const json = JSON.parse((await runCli(['status', server.socket, '--json', '--full'])).stdout) as Record<
      string,
      unknown
    >;
    expect(json['total processes']).toBe(2);
    expect((json['requests by status class'] as Record<string, number>)['2xx']).toBe(10);
    const processes = json.processes as Array<{ pid: number; state: string; requests: number }>;
    expect(processes).toHaveLength(2);
    expect(processes.every((p) => p.state === 'Idle' || p.state === 'Running')).toBe(true);
    // Each worker's count includes the status request it answered, if it was the one.
    expect(processes.reduce((n, p) => n + p.requests, 0)).toBe(11);
    expect(new Set(processes.map((p) => p.pid)).size).toBe(2);
    // --access-log - : one JSON line per request on stdout, from both workers.
    expect(
      server
        .stdout()
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { uri: string }).uri)
        .filter((u) => u.startsWith('/n'))
        .sort(),
    ).toEqual(Array.from({ length: 10 }, (_, i) => `/n${i}`).sort());
  });
});

describe('status flags', () => {
  it('refuses flags that cannot work, with exit 2', async () => {
    const cases: [string[], string][] = [
      [['serve', 'app.mjs', '--ping-response', 'x'], '--ping-response needs --ping-path'],
      [['serve', 'app.mjs', '--status-path', 'status'], '--status-path expects a path starting with /'],
      [
        ['serve', 'app.mjs', '--access-log', '-', '--access-log-format', 'xml'],
        '--access-log-format expects common or json',
      ],
      [['status', '/tmp/x.sock', '--json', '--openmetrics'], 'give --json or --openmetrics, not both'],
      [['status'], 'missing <address>'],
    ];
    for (const [args, message] of cases) {
      const out = await runCli(args);
      expect(out.stderr).toContain(message);
      expect(out.code).toBe(2);
    }
  });

  it('status exits 3 when nothing listens', async () => {
    const out = await runCli(['status', join(tempDir(), 'none.sock'), '--timeout', '2s']);
    expect(out.code).toBe(3);
    expect(out.stderr).toContain('fastcgi-engine status: unix:');
  });
});

describe('fastcgi-engine status against php-fpm (pm.status_path)', () => {
  let fpm: PhpFpm | null = null;
  afterAll(async () => {
    await fpm?.dispose();
  });

  it('prints php-fpm’s page, whose fields ours share', async (context) => {
    fpm = new PhpFpm(phpFpmBinary(context), {
      maxChildren: 2,
      extra: ['pm.status_path = /status', 'ping.path = /ping'],
    });
    await fpm.start();
    const out = await runCli(['status', fpm.socketPath, '--path', '/status']);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    const theirs = fields(out.stdout);
    expect(theirs.get('pool')).toBe('test');
    expect(theirs.get('process manager')).toBe('static');
    // php-fpm's own count: 8.2 may list a worker being replaced beside the pool's 2 (it printed 3 here once).
    expect(Number(theirs.get('total processes'))).toBeGreaterThanOrEqual(2);

    const json = JSON.parse(
      (await runCli(['status', fpm.socketPath, '--path', '/status', '--json', '--full'])).stdout,
    ) as Record<string, unknown>;
    expect((json.processes as unknown[]).length).toBeGreaterThanOrEqual(2);
    expect((await runCli(['status', fpm.socketPath, '--path', '/status', '--openmetrics'])).stdout).toContain(
      'phpfpm_accepted_connections',
    );

    // Every pool field php-fpm prints, ours prints too, under the same label.
    const server = await startServe('fetch-object.mjs', ['--status-path', '/status']);
    const ours = fields((await runCli(['status', server.socket, '--path', '/status'])).stdout);
    const missing = [...theirs.keys()].filter((label) => !ours.has(label) && label !== 'memory peak');
    expect(missing).toEqual([]);
    const oursJson = JSON.parse(
      (await runCli(['status', server.socket, '--path', '/status', '--json'])).stdout,
    ) as Record<string, unknown>;
    expect(
      Object.keys(json).filter((key) => !(key in oursJson) && key !== 'processes' && key !== 'memory peak'),
    ).toEqual([]);
  });
});
