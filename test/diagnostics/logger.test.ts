// The logger option takes a pino logger as it is (fields first); lines about a request carry its id and
// REQUEST_URI, as fields for pino and in the text for a `{ warn, error }` logger.
import { describe, expect, it } from 'vitest';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createServer } from '../../src/server/server';
import { createGateway } from '../../src/gateway/gateway';
import { isStructuredLogger, toLogSink } from '../../src/diagnostics/logger';
import { listenForTest } from '../server/harness';
import { waitFor } from '../client/helpers';

/** A real pino logger writing JSON lines into an array. */
function pinoLines(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

const params = (uri: string) => ({
  REQUEST_METHOD: 'GET',
  REQUEST_URI: uri,
  SCRIPT_NAME: uri,
  SCRIPT_FILENAME: `/srv${uri}`,
});

describe('logger', () => {
  it('tells pino (and its children) from a { warn, error } logger', () => {
    const { logger } = pinoLines();
    expect(isStructuredLogger(logger)).toBe(true);
    expect(isStructuredLogger(logger.child({ component: 'fastcgi' }))).toBe(true);
    expect(isStructuredLogger({ warn() {}, error() {} })).toBe(false);
  });

  it('a plain logger gets the fields appended to the text, and is called as a method', () => {
    const seen: string[] = [];
    const plain = {
      seen,
      warn(m: string) {
        this.seen.push(m);
      },
      error(m: string) {
        this.seen.push(m);
      },
    };
    const sink = toLogSink(plain);
    sink.warn('slow', { requestId: 2, uri: '/a?b', skipped: undefined });
    sink.error('failed', { requestId: 2 }, false);
    expect(seen).toEqual(['slow [requestId=2 uri=/a?b]', 'failed']);
  });

  it('a handler failure logs to pino at error with requestId, method and uri as fields', async () => {
    const { logger, lines } = pinoLines();
    const server = createServer({ logger }, (req) => {
      if (req.url === '/boom') throw new Error('kaboom');
    });
    const { connect } = await listenForTest(server);
    const peer = await connect();
    await peer.request({ requestId: 7, params: params('/boom') });
    await waitFor(() => lines.length > 0, 2000, 'a log line');
    expect(lines[0]).toMatchObject({ level: 50, requestId: 7, method: 'GET', uri: '/boom' });
    expect(String(lines[0]!.msg)).toMatch(/^handler failed for GET \/boom: Error: kaboom/);
  });

  it('a slow request logs to pino at warn with its fields', async () => {
    const { logger, lines } = pinoLines();
    const server = createServer(
      { logger: logger.child({ component: 'fastcgi' }), slowRequestThreshold: 20 },
      (_req, res) => {
        setTimeout(() => res.end('late'), 40);
      },
    );
    const { connect } = await listenForTest(server);
    const peer = await connect();
    await peer.request({ requestId: 4, params: params('/late') });
    await waitFor(() => lines.length > 0, 2000, 'a log line');
    expect(lines[0]).toMatchObject({ level: 40, component: 'fastcgi', requestId: 4, uri: '/late' });
    expect(String(lines[0]!.msg)).toMatch(/^slow request: \d+ ms/);
  });

  it("the gateway logs the backend's STDERR to pino at warn with method, uri and upstream", async () => {
    const backend = createServer({ logger: { warn() {}, error() {} } }, (req, res) => {
      req.fastcgi.stderr.write('PHP Notice: something\n');
      res.end('ok');
    });
    const { port } = await listenForTest(backend);
    const { logger, lines } = pinoLines();
    const gateway = createGateway({ upstream: { host: '127.0.0.1', port }, documentRoot: '/srv', logger });
    const front = http.createServer(gateway);
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    try {
      const { port: frontPort } = front.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${frontPort}/page.php?x=1`);
      expect(await response.text()).toBe('ok');
      await waitFor(() => lines.length > 0, 2000, 'stderr logged');
      expect(lines[0]).toMatchObject({
        level: 40,
        method: 'GET',
        uri: '/page.php?x=1',
        upstream: `127.0.0.1:${port}`,
        msg: 'stderr from /srv/page.php: PHP Notice: something',
      });
    } finally {
      front.close();
      await gateway.close();
    }
  });
});
