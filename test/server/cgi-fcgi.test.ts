// cgi-fcgi (Debian libfcgi-bin) as an independent, strict FastCGI client: libfcgi's own encoder talks to our
// server over TCP and a unix socket. cgi-fcgi turns its whole environment into PARAMS (8184-byte records that
// split pairs), sends CONTENT_LENGTH bytes of its stdin as STDIN, copies STDOUT and STDERR raw, and exits with
// appStatus, or 253 on anything it finds wrong (a management record, another request id, a bad END_REQUEST).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import { createServer, type Server } from '../../src/server/server';
import { findBinary, requireBinary } from '../helpers/binaries';
import { parseCgiResponse } from '../helpers/fcgi-peer';

const CGI_FCGI = findBinary('cgi-fcgi');

/** The binary, or a skip (a failure with FASTCGI_INTEROP_REQUIRED=1) naming the package to install. */
function cgiFcgi(context: TestContext): string {
  return requireBinary(context, CGI_FCGI, 'cgi-fcgi', 'libfcgi-bin');
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `cgi-fcgi -bind -connect ADDRESS` with exactly `env` (like `env -i`) and `stdin`, bounded in time. */
function runCgiFcgi(
  binary: string,
  address: string,
  env: Record<string, string>,
  stdin: Buffer | string = '',
): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(binary, ['-bind', '-connect', address], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 15_000,
      killSignal: 'SIGKILL',
    });
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    // cgi-fcgi may stop reading early (it reads only CONTENT_LENGTH bytes): EPIPE here is not our concern.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(stdout), stderr }));
  });
}

function describeRun(result: RunResult): string {
  return `exit ${result.code} (signal ${result.signal}); stdout ${JSON.stringify(result.stdout.toString('latin1').slice(0, 500))}; stderr ${JSON.stringify(result.stderr.slice(0, 500))}`;
}

/** What the echo app saw, as JSON in the response body. */
interface Echo {
  method: string;
  url: string;
  httpVersion: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  bodyLength: number;
  bodySha256: string;
  params: Record<string, string>;
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** An app that echoes what it received; `/stderr` also writes to STDERR, `/missing` is a 404, `/throw` throws. */
async function echoServer(where: 'tcp' | 'unix'): Promise<{ server: Server; address: string; errors: string[] }> {
  const errors: string[] = [];
  const server = createServer({ logger: { warn: (m) => errors.push(m), error: (m) => errors.push(m) } }, (req, res) => {
    if (req.url === '/throw') throw new Error('the handler blew up on purpose');
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url?.startsWith('/stderr') === true) {
        res.stderr.write('app warning: something to log\n');
        res.stderr.write('second stderr line\n');
      }
      const echo: Echo = {
        method: req.method ?? '',
        url: req.url ?? '',
        httpVersion: req.httpVersion,
        headers: req.headers,
        body: body.length <= 4096 ? body.toString('utf8') : '',
        bodyLength: body.length,
        bodySha256: sha256(body),
        params: req.cgiParams,
      };
      res.statusCode = req.url === '/missing' ? 404 : 200;
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('X-App', 'fastcgi-engine');
      res.end(JSON.stringify(echo));
    });
  });
  let address: string;
  const listening = new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => resolve());
  });
  if (where === 'tcp') {
    server.listen(0, '127.0.0.1');
    await listening;
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  } else {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-cgi-fcgi-'));
    onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
    address = path.join(dir, 'app.sock');
    server.listen(address);
    await listening;
  }
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { server, address, errors };
}

function parseEcho(result: RunResult): { status: number; header(name: string): string | undefined; echo: Echo } {
  expect(result.code, describeRun(result)).toBe(0);
  const cgi = parseCgiResponse(result.stdout);
  return { status: cgi.status, header: cgi.header, echo: JSON.parse(cgi.body.toString('utf8')) as Echo };
}

/** A value that is not one repeated byte, so a shifted or dropped chunk cannot go unnoticed. */
function patterned(length: number, seed: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~';
  let out = '';
  let state = [...seed].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7);
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    out += alphabet[(state >>> 16) % alphabet.length];
  }
  return out;
}

describe('cgi-fcgi (libfcgi-bin) as the web server', () => {
  it('POST over TCP: method, URI, query, CONTENT_TYPE and body reach the app; the CGI response comes back', async (context) => {
    const binary = cgiFcgi(context);
    const { address } = await echoServer('tcp');
    const body = 'name=fastcgi&value=%E2%9C%93&empty=';
    const result = await runCgiFcgi(
      binary,
      address,
      {
        REQUEST_METHOD: 'POST',
        REQUEST_URI: '/submit?x=1&y=two',
        SCRIPT_NAME: '/submit',
        QUERY_STRING: 'x=1&y=two',
        CONTENT_LENGTH: String(Buffer.byteLength(body)),
        CONTENT_TYPE: 'application/x-www-form-urlencoded',
        SERVER_PROTOCOL: 'HTTP/1.1',
        HTTP_HOST: 'example.test',
        HTTP_USER_AGENT: 'cgi-fcgi-test',
      },
      body,
    );
    const { status, header, echo } = parseEcho(result);
    expect(status).toBe(200);
    expect(header('Content-Type')).toBe('application/json');
    expect(header('X-App')).toBe('fastcgi-engine');
    expect(echo.method).toBe('POST');
    expect(echo.url).toBe('/submit?x=1&y=two');
    expect(echo.httpVersion).toBe('1.1');
    expect(echo.body).toBe(body);
    expect(echo.headers.host).toBe('example.test');
    expect(echo.headers['user-agent']).toBe('cgi-fcgi-test');
    expect(echo.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(echo.headers['content-length']).toBe(String(body.length));
    expect(echo.params.QUERY_STRING).toBe('x=1&y=two');
    expect(result.stderr).toBe('');
  });

  it('GET over a unix socket: the URL is built from SCRIPT_NAME + PATH_INFO + QUERY_STRING without REQUEST_URI', async (context) => {
    const binary = cgiFcgi(context);
    const { address } = await echoServer('unix');
    const result = await runCgiFcgi(binary, address, {
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/items/42',
      QUERY_STRING: 'sort=desc',
      CONTENT_LENGTH: '0',
    });
    const { status, echo } = parseEcho(result);
    expect(status).toBe(200);
    expect(echo.method).toBe('GET');
    expect(echo.url).toBe('/app/items/42?sort=desc');
    expect(echo.bodyLength).toBe(0);
  });

  it('a 200 KB body, sent as many 8184-byte STDIN records, arrives intact', async (context) => {
    const binary = cgiFcgi(context);
    const { address } = await echoServer('tcp');
    const body = Buffer.from(patterned(200 * 1024, 'body'));
    const result = await runCgiFcgi(
      binary,
      address,
      {
        REQUEST_METHOD: 'PUT',
        REQUEST_URI: '/upload',
        CONTENT_LENGTH: String(body.length),
        CONTENT_TYPE: 'application/octet-stream',
      },
      body,
    );
    const { echo } = parseEcho(result);
    expect(echo.method).toBe('PUT');
    expect(echo.bodyLength).toBe(body.length);
    expect(echo.bodySha256).toBe(sha256(body));
  });

  it('a big environment (a 20 KB variable and others after it) arrives intact although its pairs straddle PARAMS records', async (context) => {
    const binary = cgiFcgi(context);
    const { address } = await echoServer('tcp');
    const big = patterned(20 * 1024, 'big');
    const medium = patterned(9000, 'medium');
    const longName = `HTTP_X_${'LONG_NAME_'.repeat(20)}END`; // > 127 bytes: a 4-byte name length
    const env: Record<string, string> = {
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/env',
      CONTENT_LENGTH: '0',
      BIG_VALUE: big,
      AFTER_BIG: 'after-big',
      MEDIUM_VALUE: medium,
      [longName]: 'long-name-value',
      HTTP_X_LAST: 'last',
    };
    for (let i = 0; i < 50; i++) env[`SMALL_${i}`] = `value-${i}`;
    const result = await runCgiFcgi(binary, address, env);
    const { status, echo } = parseEcho(result);
    expect(status).toBe(200);
    expect(echo.params.BIG_VALUE?.length).toBe(big.length);
    expect(echo.params.BIG_VALUE).toBe(big);
    expect(echo.params.MEDIUM_VALUE).toBe(medium);
    expect(echo.params.AFTER_BIG).toBe('after-big');
    expect(echo.params[longName]).toBe('long-name-value');
    for (let i = 0; i < 50; i++) expect(echo.params[`SMALL_${i}`]).toBe(`value-${i}`);
    // Exactly the environment cgi-fcgi was given, nothing lost or invented.
    expect(Object.keys(echo.params).sort()).toEqual(Object.keys(env).sort());
    expect(echo.headers['x-last']).toBe('last');
  });

  it("the app's STDERR appears on cgi-fcgi's stderr, its response on stdout", async (context) => {
    const binary = cgiFcgi(context);
    const { address } = await echoServer('tcp');
    const result = await runCgiFcgi(binary, address, {
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/stderr',
      CONTENT_LENGTH: '0',
    });
    const { status, echo } = parseEcho(result);
    expect(status).toBe(200);
    expect(echo.url).toBe('/stderr');
    expect(result.stderr).toBe('app warning: something to log\nsecond stderr line\n');
    expect(result.stdout.toString('latin1')).not.toContain('app warning');
  });

  it('a 404 from the app is a Status header; cgi-fcgi still exits 0', async (context) => {
    const binary = cgiFcgi(context);
    const { address } = await echoServer('unix');
    const result = await runCgiFcgi(binary, address, {
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/missing',
      CONTENT_LENGTH: '0',
    });
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout.toString('latin1')).toMatch(/^Status: 404 Not Found\r?\n/);
    expect(parseEcho(result).status).toBe(404);
  });

  it('a handler that throws: a 500 on stdout and the stack on stderr (the web server error log)', async (context) => {
    const binary = cgiFcgi(context);
    const { address, errors } = await echoServer('tcp');
    const result = await runCgiFcgi(binary, address, {
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/throw',
      CONTENT_LENGTH: '0',
    });
    expect(result.code, describeRun(result)).toBe(0);
    const cgi = parseCgiResponse(result.stdout);
    expect(cgi.status).toBe(500);
    expect(result.stderr).toContain('the handler blew up on purpose');
    expect(errors.join('\n')).toContain('the handler blew up on purpose');
  });

  it('serves several cgi-fcgi clients at once', async (context) => {
    const binary = cgiFcgi(context);
    const { address } = await echoServer('tcp');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => {
        const body = patterned(1000 + i * 3000, `c${i}`);
        return runCgiFcgi(
          binary,
          address,
          { REQUEST_METHOD: 'POST', REQUEST_URI: `/c/${i}`, CONTENT_LENGTH: String(body.length) },
          body,
        ).then((result) => ({ result, body }));
      }),
    );
    results.forEach(({ result, body }, i) => {
      const { echo } = parseEcho(result);
      expect(echo.url).toBe(`/c/${i}`);
      expect(echo.bodySha256).toBe(sha256(body));
    });
  });
});
