import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { serve } from '../../src/server/fetch';
import { ErrorCode, FastCGIError } from '../../src/errors';
import { parseCgiResponse } from '../helpers/fcgi-peer';
import { start } from './harness';

describe('serve (fetch handlers)', () => {
  it('gives the handler a Request with the client-facing URL, method, headers and body', async () => {
    let seen: Record<string, unknown> = {};
    const { peer } = await start(
      serve(async (request) => {
        seen = {
          url: request.url,
          method: request.method,
          ua: request.headers.get('user-agent'),
          body: await request.text(),
        };
        return new Response('ok');
      }),
    );
    await (
      await peer()
    ).request({
      params: {
        REQUEST_METHOD: 'PUT',
        REQUEST_URI: '/p?q=1',
        HTTPS: 'on',
        HTTP_HOST: 'site.test',
        HTTP_USER_AGENT: 'ua/1',
        CONTENT_LENGTH: '5',
      },
      stdin: 'hello',
    });
    expect(seen).toEqual({ url: 'https://site.test/p?q=1', method: 'PUT', ua: 'ua/1', body: 'hello' });
  });

  it('accepts `export default { fetch }` objects and writes status, headers and Set-Cookie lists', async () => {
    const { peer } = await start(
      serve({
        fetch() {
          const headers = new Headers({ 'Content-Type': 'text/plain' });
          headers.append('Set-Cookie', 'a=1');
          headers.append('Set-Cookie', 'b=2');
          return new Response('teapot', { status: 418, headers });
        },
      }),
    );
    const r = parseCgiResponse((await (await peer()).request({ params: { REQUEST_URI: '/' } })).stdout);
    expect([r.status, r.reason, r.header('content-type'), r.header('content-length'), r.body.toString()]).toEqual([
      418,
      "I'm a Teapot",
      'text/plain',
      '6',
      'teapot',
    ]);
    expect(r.headers.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v)).toEqual(['a=1', 'b=2']);
  });

  it('streams a large request body and a large response body with exact bytes', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i);
    const { peer } = await start(
      serve(async (request) => {
        const hash = createHash('sha256');
        for await (const chunk of request.body!) hash.update(chunk);
        const digest = hash.digest();
        // Echo the digest and then 4 MiB generated in pieces.
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent === 0) controller.enqueue(new Uint8Array(digest));
            if (sent >= 4 * 1024 * 1024) return controller.close();
            controller.enqueue(new Uint8Array(65536).fill(sent / 65536));
            sent += 65536;
          },
        });
        return new Response(stream);
      }),
    );
    const response = await (
      await peer()
    ).request({
      params: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) },
      stdin: body,
      timeoutMs: 20_000,
    });
    const r = parseCgiResponse(response.stdout);
    expect(r.body.subarray(0, 32).toString('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect(r.body.length).toBe(32 + 4 * 1024 * 1024);
    expect(r.body[32 + 65536 * 5]).toBe(5);
    expect(r.header('content-length')).toBeUndefined();
  });

  it('aborts request.signal when the web server closes the connection', async () => {
    let aborted: Promise<unknown> | null = null;
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const { peer } = await start(
      serve((request) => {
        aborted = once(request.signal, 'abort');
        entered();
        return new Promise<Response>(() => {});
      }),
    );
    const p = await peer();
    void p.request({ params: { REQUEST_URI: '/long' } }).catch(() => {});
    await inside;
    p.destroy();
    await aborted;
    expect(aborted).not.toBeNull();
  });

  it('answers 500 when the handler rejects or returns something that is not a Response', async () => {
    const { peer } = await start(
      serve(
        async (request) => {
          if (new URL(request.url).pathname === '/reject') throw new Error('nope');
          return 'not a response' as unknown as Response;
        },
        { logger: { warn() {}, error() {} } },
      ),
    );
    expect(parseCgiResponse((await (await peer()).request({ params: { REQUEST_URI: '/reject' } })).stdout).status).toBe(
      500,
    );
    expect(parseCgiResponse((await (await peer()).request({ params: { REQUEST_URI: '/other' } })).stdout).status).toBe(
      500,
    );
  });

  it('fails a handler that returns something other than a Response with FCGI_ERR_HANDLER_RESULT', async () => {
    const server = serve(() => ({ status: 200 }) as unknown as Response, { logger: { warn() {}, error() {} } });
    const failures: unknown[] = [];
    const fetchFailed = server.fetchFailed.bind(server);
    server.fetchFailed = (error, request) => {
      failures.push(error);
      fetchFailed(error, request);
    };
    const { peer } = await start(server);
    expect(parseCgiResponse((await (await peer()).request({ params: { REQUEST_URI: '/' } })).stdout).status).toBe(500);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(FastCGIError);
    expect(failures[0]).toMatchObject({
      code: ErrorCode.HANDLER_RESULT,
      message: 'the fetch handler must return a Response, got a plain object',
    });
  });
});
