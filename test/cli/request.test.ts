// `fastcgi-engine request` as a process: against the engine, and against raw servers that misbehave on purpose.
import * as net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ProtocolStatus, RecordType, encodeEndRequest, encodeStream } from '../../src/index';
import { PHP_FIXTURES, PhpFpm, phpFpmBinary } from '../client/php-fpm-harness';
import { runCli, startServe, tempDir } from './helpers';

/** A raw unix-socket server that answers the first bytes it reads with `reply` (then closes if asked). */
async function rawServer(reply: (socket: net.Socket) => void): Promise<string> {
  const path = join(tempDir(), 'raw.sock');
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => reply(socket));
  });
  await new Promise<void>((r) => server.listen(path, r));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return path;
}

function stdout(text: string): Buffer {
  return encodeStream(RecordType.STDOUT, 1, Buffer.from(text), { end: true });
}

describe('request against the engine', () => {
  it('prints status, headers and body; exit 0; --trace shows the records', async () => {
    const server = await startServe('node-handler.mjs');
    const result = await runCli(['request', server.socket, '--uri', '/hi?x=1', '--trace']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Status: 200 OK\r\n/);
    expect(result.stdout).toContain('Content-Type: text/plain');
    expect(result.stdout).toMatch(/\r\n\r\nnode GET \/hi pid=\d+$/);
    expect(result.stderr).toMatch(/> BEGIN_REQUEST +id=1 len=8 pad=0/);
    expect(result.stderr).toMatch(/> PARAMS +id=1 len=\d+ pad=\d+ \| [0-9a-f ]+/);
    expect(result.stderr).toMatch(/< STDOUT +id=1 len=\d+ pad=\d+ \| .*Status: 200/);
    expect(result.stderr).toMatch(/< END_REQUEST +id=1 len=8 pad=0/);
  });

  it('sends --body (literal and @file), --method, --param; 4xx and 5xx have their own exit codes', async () => {
    const server = await startServe('fetch-object.mjs');
    const posted = await runCli(['request', `unix:${server.socket}`, '--uri', '/p', '--body', 'abc']);
    expect(posted.code).toBe(0);
    expect(posted.stdout).toMatch(/fetch POST \/p body=abc$/);
    const file = join(server.dir, 'body.txt');
    (await import('node:fs')).writeFileSync(file, 'from-file');
    const put = await runCli([
      'request',
      server.socket,
      '--method',
      'put',
      '--uri',
      '/f',
      '--body',
      `@${file}`,
      '--param',
      'HTTP_X_A=1',
    ]);
    expect(put.stdout).toMatch(/fetch PUT \/f body=from-file$/);
    const missing = await runCli(['request', server.socket, '--uri', '/missing']);
    expect(missing.code).toBe(4);
    expect(missing.stdout).toMatch(/^Status: 404/);
    const failing = await startServe('fetch-function.mjs');
    const unavailable = await runCli(['request', failing.socket]);
    expect(unavailable.code).toBe(5);
  });
});

describe('request diagnoses', () => {
  it('nothing listening: a missing socket file and a refused port, exit 3', async () => {
    const missing = await runCli(['request', join(tempDir(), 'none.sock')]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('nothing is listening');
    expect(missing.stderr).toContain('does not exist');
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const refused = await runCli(['request', `127.0.0.1:${port}`]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('connection refused');
  });

  it.skipIf(process.getuid?.() === 0)('permission denied on the socket, exit 3', async () => {
    const path = await rawServer((s) => s.end());
    (await import('node:fs')).chmodSync(path, 0o000);
    const result = await runCli(['request', path]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('permission denied');
  });

  it('the peer speaks HTTP, exit 6', async () => {
    const path = await rawServer((s) => s.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'));
    const result = await runCli(['request', path]);
    expect(result.code).toBe(6);
    expect(result.stderr).toContain('speaks HTTP, not FastCGI');
  });

  it('output before the headers, and headers with no blank line, exit 6', async () => {
    const before = await rawServer((s) => s.end(Buffer.concat([stdout('hello world\n'), encodeEndRequest(1)])));
    const r1 = await runCli(['request', before]);
    expect(r1.code).toBe(6);
    expect(r1.stderr).toContain('wrote output before its headers');
    const noBlank = await rawServer((s) =>
      s.end(Buffer.concat([stdout('Content-Type: text/plain\r\nX-A: 1\r\n'), encodeEndRequest(1)])),
    );
    const r2 = await runCli(['request', noBlank]);
    expect(r2.code).toBe(6);
    expect(r2.stderr).toContain('no blank line');
  });

  it('the connection closed before END_REQUEST, exit 6', async () => {
    const path = await rawServer((s) =>
      s.end(encodeStream(RecordType.STDOUT, 1, Buffer.from('Status: 200\r\n\r\npartial'))),
    );
    const result = await runCli(['request', path]);
    expect(result.code).toBe(6);
    expect(result.stderr).toContain('before END_REQUEST');
  });

  it('STDERR goes to stderr; a refused request (OVERLOADED) exits 7', async () => {
    const withStderr = await rawServer((s) =>
      s.end(
        Buffer.concat([
          encodeStream(RecordType.STDERR, 1, Buffer.from('a warning\n'), { end: true }),
          stdout('Status: 200 OK\r\n\r\nok'),
          encodeEndRequest(1),
        ]),
      ),
    );
    const ok = await runCli(['request', withStderr]);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain('a warning');
    expect(ok.stdout).not.toContain('a warning');
    const overloaded = await rawServer((s) => s.end(encodeEndRequest(1, 0, ProtocolStatus.OVERLOADED)));
    const rejected = await runCli(['request', overloaded]);
    expect(rejected.code).toBe(7);
    expect(rejected.stderr).toContain('OVERLOADED');
  });

  it.each([
    [['request'], 'missing <address>'],
    [['request', '/x.sock', '--param', 'novalue'], '--param expects K=V'],
    [['request', 'not an address'], 'cannot read address'],
    [['request', '/x.sock', '--body', '@/nonexistent/file'], '--body @/nonexistent/file'],
  ])('bad arguments %j: exit 2', async (args, message) => {
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });
});

describe('request against php-fpm (php8.2-fpm)', () => {
  it(
    'runs a script: status, duplicate headers and cookies, STDERR apart, exit codes by status',
    { timeout: 20_000 },
    async (context) => {
      const php = new PhpFpm(phpFpmBinary(context));
      await php.start();
      onTestFinished(() => php.stop());
      const script = (name: string): string[] => [
        'request',
        php.socketPath,
        '--script-filename',
        join(PHP_FIXTURES, name),
      ];
      const hello = await runCli([...script('hello.php'), '--trace']);
      expect(hello.code).toBe(0);
      expect(hello.stdout).toMatch(/^Status: 200 OK\r\n/);
      // php-fpm sends no empty STDOUT record: END_REQUEST ends the response.
      expect(hello.stderr).toMatch(/< END_REQUEST +id=1 len=8 pad=0/);
      const notFound = await runCli(script('status.php'));
      expect(notFound.code).toBe(4);
      expect(notFound.stdout).toMatch(/^Status: 404 Not Found\r\n/);
      expect(notFound.stdout).toContain('X-Dup: one\r\nX-Dup: two\r\n');
      expect(notFound.stdout.match(/Set-Cookie: /g)).toHaveLength(2);
      const noisy = await runCli(script('stderr.php'));
      expect(noisy.code).toBe(0);
      expect(noisy.stdout).toMatch(/\r\n\r\nbody after stderr\n$/);
      expect(noisy.stdout).not.toContain('first message');
      expect(noisy.stderr).toContain('first message to stderr');
    },
  );
});
