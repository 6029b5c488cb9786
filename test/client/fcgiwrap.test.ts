// The client against Debian's fcgiwrap (package fcgiwrap), the CGI-script backend nginx users run for git,
// cgit and shell scripts: it answers GET_VALUES only after a BEGIN_REQUEST (libfcgi reads management records
// while waiting for a request), so `multiplex: 'auto'` must never wait on its probe; it streams a CGI script's
// stdin and stdout and passes stderr with -f. Started in a temp dir on a unix socket, stopped by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway } from '../../src/gateway/gateway';
import { findBinary, requireBinary } from '../helpers/binaries';
import { testClient, waitFor } from './helpers';

const FCGIWRAP = findBinary(['fcgiwrap']);

let dir = '';
let socketPath = '';
let child: ChildProcess | null = null;

const SCRIPTS: Record<string, string> = {
  // Echoes the method, the query and the body (cat reads exactly CONTENT_LENGTH bytes: fcgiwrap ends stdin there).
  'echo.sh':
    '#!/bin/sh\nprintf "Content-Type: application/octet-stream\\r\\nX-Method: %s\\r\\nX-Query: %s\\r\\n\\r\\n" "$REQUEST_METHOD" "$QUERY_STRING"\ncat\n',
  // fcgiwrap copies the whole request body into the script before it reads the script's output, so a script
  // that writes while the body is still coming (cat of a large body) deadlocks once the pipes fill; these read
  // all of the body first, or send a large reply of their own.
  'sha256.sh': '#!/bin/sh\nsum=$(sha256sum | cut -d" " -f1)\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s" "$sum"\n',
  'bytes.sh':
    '#!/bin/sh\nprintf "Content-Type: application/octet-stream\\r\\n\\r\\n"\nhead -c "$QUERY_STRING" /dev/zero | tr "\\\\000" "\\\\377"\n',
  'status.sh': '#!/bin/sh\nprintf "Status: 418 Short And Stout\\r\\nContent-Type: text/plain\\r\\n\\r\\nteapot"\n',
  'stderr.sh': '#!/bin/sh\necho "warning from the script" >&2\nprintf "Content-Type: text/plain\\r\\n\\r\\nok"\n',
};

beforeAll(async () => {
  if (FCGIWRAP === null) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-fcgiwrap-'));
  socketPath = path.join(dir, 'fcgiwrap.sock');
  for (const [name, text] of Object.entries(SCRIPTS)) fs.writeFileSync(path.join(dir, name), text, { mode: 0o755 });
  // -c 2: two preforked workers; -f: the scripts' stderr goes over FastCGI.
  // Its own process group: the preforked workers go with the master when the group is signalled.
  child = spawn(FCGIWRAP, ['-c', '2', '-f', '-s', `unix:${socketPath}`], { stdio: 'ignore', detached: true });
  await waitFor(() => fs.existsSync(socketPath), 5000, 'fcgiwrap to bind its socket');
});

afterAll(async () => {
  if (child !== null && child.exitCode === null) {
    const group = -child.pid!;
    process.kill(group, 'SIGTERM');
    await Promise.race([new Promise((r) => child!.once('exit', r)), delay(2000)]);
    try {
      process.kill(group, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
});

function params(script: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_FILENAME: path.join(dir, script),
    SCRIPT_NAME: `/${script}`,
    QUERY_STRING: '',
    ...extra,
  };
}

describe('client against fcgiwrap (fcgiwrap package)', () => {
  it("multiplex 'auto' never waits on the probe fcgiwrap leaves unanswered", async (context) => {
    requireBinary(context, FCGIWRAP, 'fcgiwrap', 'fcgiwrap');
    // A long probe timeout: a client that waited for the answer would take 5 s here.
    const client = testClient({ address: socketPath, probeTimeout: 5000 });
    const started = Date.now();
    const response = await client.request({ params: params('echo.sh', { QUERY_STRING: 'a=1' }) });
    expect(await response.text()).toBe('');
    expect(Date.now() - started).toBeLessThan(2500);
    expect(response.status).toBe(200);
    expect(response.headers['x-method']).toBe('GET');
    expect(response.headers['x-query']).toBe('a=1');
    expect(client.stats.multiplexing).toBe(false);
  });

  it('sends a 1 MB binary body to a script and reads a 1 MB reply, exact bytes', async (context) => {
    requireBinary(context, FCGIWRAP, 'fcgiwrap', 'fcgiwrap');
    const client = testClient({ address: socketPath, multiplex: false });
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 9)) & 0xff;
    const upload = await client.request({ params: params('sha256.sh', { REQUEST_METHOD: 'POST' }), body });
    expect(await upload.text()).toBe(createHash('sha256').update(body).digest('hex'));
    const download = await client.request({ params: params('bytes.sh', { QUERY_STRING: String(1024 * 1024) }) });
    const bytes = await download.buffer();
    expect(bytes.length).toBe(1024 * 1024);
    expect(bytes.every((b) => b === 0xff)).toBe(true);
    expect((await download.completed).appStatus).toBe(0);
  });

  it('passes Status with its reason, and the script stderr (fcgiwrap -f) as STDERR', async (context) => {
    requireBinary(context, FCGIWRAP, 'fcgiwrap', 'fcgiwrap');
    const client = testClient({ address: socketPath, multiplex: false });
    const teapot = await client.request({ params: params('status.sh') });
    expect([teapot.status, teapot.statusText, await teapot.text()]).toEqual([418, 'Short And Stout', 'teapot']);
    const warned = await client.request({ params: params('stderr.sh') });
    expect(await warned.text()).toBe('ok');
    await warned.completed;
    expect(warned.stderr).toContain('warning from the script');
  });

  it('serves 40 concurrent requests through a pool of 2 kept connections', async (context) => {
    requireBinary(context, FCGIWRAP, 'fcgiwrap', 'fcgiwrap');
    const client = testClient({ address: socketPath, multiplex: false, poolSize: 2 });
    const replies = await Promise.all(
      Array.from({ length: 40 }, async (_, i) =>
        (await client.request({ params: params('echo.sh', { REQUEST_METHOD: 'PUT' }), body: `request ${i}` })).text(),
      ),
    );
    expect(replies).toEqual(Array.from({ length: 40 }, (_, i) => `request ${i}`));
    expect(client.stats.connections).toBeLessThanOrEqual(2);
  });

  it('the gateway runs a CGI script through fcgiwrap', async (context) => {
    requireBinary(context, FCGIWRAP, 'fcgiwrap', 'fcgiwrap');
    const { createServer, request } = await import('node:http');
    const gateway = createGateway({
      upstream: { address: socketPath, multiplex: false },
      documentRoot: dir,
      splitPath: /^(.+?\.sh)(\/.*)?$/,
      logger: { warn: () => {}, error: () => {} },
    });
    const server = createServer(gateway).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const port = (server.address() as { port: number }).port;
      const reply = await new Promise<{ status: number; method: string | undefined; body: string }>(
        (resolve, reject) => {
          const req = request({ port, host: '127.0.0.1', path: '/echo.sh?x=2', method: 'POST' }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () =>
              resolve({ status: res.statusCode!, method: res.headers['x-method'] as string | undefined, body }),
            );
          });
          req.on('error', reject);
          req.end('posted through node:http');
        },
      );
      expect(reply).toEqual({ status: 200, method: 'POST', body: 'posted through node:http' });
    } finally {
      server.close();
      await gateway.close();
    }
  });
});
