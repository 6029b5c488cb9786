// The fetch API's light Request and Response (src/server/fetch/): they must behave as the native classes do
// wherever a handler can tell, and the response writer must put the same bytes on the wire either way.
import { afterEach, describe, expect, it } from 'vitest';
import { installLightFetch, serve, uninstallLightFetch } from '../../src/server/fetch';
import { LightResponse, NativeResponse } from '../../src/server/fetch/light-response';
import { NativeRequest } from '../../src/server/fetch/light-request';
import { parseCgiResponse } from '../helpers/fcgi-peer';
import { recordingLogger, start } from './harness';

afterEach(() => uninstallLightFetch());

const quiet = { logger: { warn() {}, error() {} } };

describe('LightResponse', () => {
  it('is a Response to instanceof and keeps status, statusText, ok and the default text type of a string body', async () => {
    const r = new LightResponse('hi', { status: 201, statusText: 'Made' }) as unknown as Response;
    expect(r instanceof NativeResponse).toBe(true);
    expect([r.status, r.statusText, r.ok]).toEqual([201, 'Made', true]);
    expect(r.headers.get('content-type')).toBe(new NativeResponse('hi').headers.get('content-type'));
    expect(await r.text()).toBe('hi');
    expect(r.bodyUsed).toBe(true);
    const bytes = new LightResponse(new Uint8Array([1, 2]), { headers: [['X-A', '1']] }) as unknown as Response;
    expect([bytes.headers.get('content-type'), bytes.headers.get('x-a')]).toEqual([null, '1']);
    expect(new Uint8Array(await bytes.arrayBuffer())).toEqual(new Uint8Array([1, 2]));
  });

  it('throws what the native Response throws for a bad status, header or a body on a null-body status', () => {
    const cases: [unknown, unknown][] = [
      ['x', { status: 99 }],
      ['x', { status: 600 }],
      ['x', { headers: { 'bad name': 'v' } }],
      ['x', { headers: { ok: 'a\nb' } }],
      ['x', { status: 204 }],
      ['x', { statusText: 'bad\nreason' }],
    ];
    for (const [body, init] of cases) {
      let native: unknown = null;
      let light: unknown = null;
      try {
        new NativeResponse(body as string, init as ResponseInit);
      } catch (error) {
        native = (error as Error).constructor;
      }
      try {
        new LightResponse(body as string, init as ResponseInit);
      } catch (error) {
        light = (error as Error).constructor;
      }
      expect(native, JSON.stringify(init)).not.toBeNull();
      expect(light, JSON.stringify(init)).toBe(native);
    }
  });

  it('keeps the static methods (json, redirect, error) once installed', async () => {
    installLightFetch();
    const json = Response.json({ a: 1 });
    expect(json instanceof Response).toBe(true);
    expect(await json.json()).toEqual({ a: 1 });
    expect(Response.redirect('http://x.test/', 302).headers.get('location')).toBe('http://x.test/');
    expect(Response.error().type).toBe('error');
  });
});

describe('serve with the light Request and Response', () => {
  it('gives request.url exactly as new URL(REQUEST_URI, origin).href would, for plain and tricky paths', async () => {
    const seen: string[] = [];
    const { peer } = await start(serve((request) => (seen.push(request.url), new Response('')), quiet));
    const paths = [
      '/',
      '/a/b?x=1&y=2',
      '/a/./b',
      '/a/../b',
      '/..',
      '/a//b',
      '/%7e%41',
      '/a b',
      '/ü',
      '/a?q=a b',
      '/a#frag',
      '/a\\b',
      '/.hidden',
      '/a.',
      '/a/.',
      '/a/..?x',
      '/x:y@z',
      "/!$&'()*+,;=",
    ];
    const p = await peer();
    for (const path of paths)
      await p.request({ keepConn: true, params: { REQUEST_URI: path, HTTP_HOST: 'site.test:8080' } });
    expect(seen).toEqual(paths.map((path) => new URL(path, 'http://site.test:8080').href));
  });

  it('reads the body once with text(), json(), arrayBuffer() or bytes(), then refuses as the native Request does', async () => {
    const results: unknown[] = [];
    const { peer } = await start(
      serve(async (request) => {
        const kind = new URL(request.url).pathname.slice(1);
        const value =
          kind === 'json'
            ? await request.json()
            : kind === 'bytes'
              ? [...(await (request as unknown as { bytes(): Promise<Uint8Array> }).bytes())]
              : kind === 'buffer'
                ? (await request.arrayBuffer()).byteLength
                : await request.text();
        const again = await request.text().then(
          () => 'read twice',
          (error: unknown) => (error as Error).constructor.name,
        );
        results.push([kind, value, request.bodyUsed, again]);
        return new Response(null, { status: 204 });
      }, quiet),
    );
    const p = await peer();
    const post = (uri: string, body: string) =>
      p.request({
        keepConn: true,
        params: { REQUEST_METHOD: 'POST', REQUEST_URI: uri, CONTENT_LENGTH: String(body.length) },
        stdin: body,
      });
    await post('/json', '{"a":[1,2]}');
    await post('/bytes', 'ab');
    await post('/buffer', 'abcd');
    await post('/text', 'héllo');
    expect(results).toEqual([
      ['json', { a: [1, 2] }, true, 'TypeError'],
      ['bytes', [97, 98], true, 'TypeError'],
      ['buffer', 4, true, 'TypeError'],
      ['text', 'héllo', true, 'TypeError'],
    ]);
  });

  it('turns into a native Request when asked: new Request(request, init), clone(), body streams and cache fields', async () => {
    const seen: unknown[] = [];
    const { peer } = await start(
      serve(async (request) => {
        const copy = new Request(request, { headers: { 'x-copy': '1' } });
        seen.push(
          copy instanceof Request,
          request instanceof Request,
          copy.url,
          copy.method,
          copy.headers.get('x-copy'),
          request.mode,
          await copy.text(),
        );
        return new Response('ok');
      }, quiet),
    );
    await (
      await peer()
    ).request({
      params: { REQUEST_METHOD: 'PUT', REQUEST_URI: '/c', HTTP_HOST: 'h.test', CONTENT_LENGTH: '3' },
      stdin: 'abc',
    });
    expect(seen).toEqual([true, true, 'http://h.test/c', 'PUT', '1', 'cors', 'abc']);
  });

  it('writes headers set on response.headers after construction, each Set-Cookie on its own line, and the default type', async () => {
    const { peer } = await start(
      serve(() => {
        const response = new Response('body');
        response.headers.set('X-Late', 'yes');
        response.headers.append('Set-Cookie', 'a=1');
        response.headers.append('Set-Cookie', 'b=2');
        return response;
      }, quiet),
    );
    const r = parseCgiResponse((await (await peer()).request({ params: { REQUEST_URI: '/' } })).stdout);
    expect([
      r.status,
      r.header('x-late'),
      r.header('content-type'),
      r.header('content-length'),
      r.body.toString(),
    ]).toEqual([200, 'yes', 'text/plain;charset=UTF-8', '4', 'body']);
    expect(r.headers.filter(([n]) => n.toLowerCase() === 'set-cookie').map(([, v]) => v)).toEqual(['a=1', 'b=2']);
  });

  it('answers HEAD with the length and no body, keeps a streamed body its own Content-Length, and gives a one-chunk stream an exact one', async () => {
    const { peer } = await start(
      serve((request) => {
        const path = new URL(request.url).pathname;
        const chunks = path === '/one' ? ['abc'] : ['ab', 'cd', 'ef'];
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
            controller.close();
          },
        });
        if (path === '/head') return new Response('hello', { headers: { 'content-type': 'text/x' } });
        return new Response(stream, path === '/given' ? { headers: { 'content-length': '6' } } : {});
      }, quiet),
    );
    const p = await peer();
    const head = parseCgiResponse(
      (await p.request({ keepConn: true, params: { REQUEST_METHOD: 'HEAD', REQUEST_URI: '/head' } })).stdout,
    );
    expect([head.header('content-length'), head.header('content-type'), head.body.length]).toEqual(['5', 'text/x', 0]);
    const given = parseCgiResponse((await p.request({ keepConn: true, params: { REQUEST_URI: '/given' } })).stdout);
    expect([given.header('content-length'), given.body.toString()]).toEqual(['6', 'abcdef']);
    const one = parseCgiResponse((await p.request({ keepConn: true, params: { REQUEST_URI: '/one' } })).stdout);
    expect([one.header('content-length'), one.body.toString()]).toEqual(['3', 'abc']);
    const none = parseCgiResponse((await p.request({ keepConn: true, params: { REQUEST_URI: '/many' } })).stdout);
    expect([none.header('content-length'), none.body.toString()]).toEqual([undefined, 'abcdef']);
  });

  it('cuts a response whose body stream fails midway (appStatus 1) and answers 503 when the handler times out', async () => {
    const { peer } = await start(
      serve(
        (request) => {
          if (new URL(request.url).pathname === '/slow') return new Promise<Response>(() => {});
          let n = 0;
          const stream = new ReadableStream<Uint8Array>({
            pull(controller) {
              if (n++ < 3) controller.enqueue(new Uint8Array(10));
              else controller.error(new Error('disk gone'));
            },
          });
          return new Response(stream);
        },
        { ...quiet, handlerTimeout: 200 },
      ),
    );
    const p = await peer();
    const cut = await p.request({ keepConn: true, params: { REQUEST_URI: '/fail' } });
    expect(cut.appStatus).toBe(1);
    expect(parseCgiResponse(cut.stdout).status).toBe(200);
    const slow = await p.request({ keepConn: true, params: { REQUEST_URI: '/slow' } });
    expect(parseCgiResponse(slow.stdout).status).toBe(503);
  });

  it('with overrideGlobalObjects: false leaves the globals alone and gives the handler a native Request', async () => {
    let proto: unknown = null;
    const { peer } = await start(
      serve(
        (request) => {
          proto = Object.getPrototypeOf(request);
          return new Response('x');
        },
        { ...quiet, overrideGlobalObjects: false },
      ),
    );
    expect(globalThis.Response).toBe(NativeResponse);
    const r = parseCgiResponse((await (await peer()).request({ params: { REQUEST_URI: '/' } })).stdout);
    expect([r.status, r.body.toString(), proto === NativeRequest.prototype]).toEqual([200, 'x', true]);
  });
});

describe('serve when the web server goes away', () => {
  it('does not log a body read that failed because the connection closed: no one to answer, not an app failure', async () => {
    const logger = recordingLogger();
    let reading!: () => void;
    const started = new Promise<void>((resolve) => (reading = resolve));
    let settled!: (outcome: string) => void;
    const outcome = new Promise<string>((resolve) => (settled = resolve));
    const { peer } = await start(
      serve(
        async (request) => {
          reading();
          try {
            await request.text();
            settled('read');
          } catch (error) {
            settled('failed');
            throw error;
          }
          return new Response('late');
        },
        { logger },
      ),
    );
    const p = await peer();
    void p
      .request({
        params: { REQUEST_METHOD: 'POST', REQUEST_URI: '/upload', CONTENT_LENGTH: '100000' },
        stdin: Buffer.alloc(1000),
        noStdinEnd: true,
      })
      .catch(() => {});
    await started;
    p.destroy();
    expect(await outcome).toBe('failed');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(logger.messages.filter((m) => m.startsWith('error'))).toEqual([]);
  });
});

describe('request.body of the light Request', () => {
  it('streams the exact bytes as Uint8Array, is null for GET, marks the body used, and refuses text() after a read', async () => {
    const seen: unknown[] = [];
    const { peer } = await start(
      serve(async (request) => {
        if (request.method === 'GET') {
          seen.push(['get', request.body]);
          return new Response('');
        }
        const body = request.body!;
        seen.push(['before', request.bodyUsed, body === request.body]);
        const chunks: Uint8Array[] = [];
        for await (const chunk of body) {
          if (!(chunk instanceof Uint8Array)) throw new Error('not a Uint8Array');
          chunks.push(chunk);
        }
        const all = Buffer.concat(chunks);
        const again = await request.text().then(
          () => 'read twice',
          (error: unknown) => (error as Error).constructor.name,
        );
        seen.push(['after', request.bodyUsed, all.length, all.readUInt32LE(4096), again]);
        return new Response(null, { status: 204 });
      }, quiet),
    );
    const body = Buffer.alloc(300_000);
    for (let i = 0; i + 4 <= body.length; i += 4) body.writeUInt32LE(i, i);
    const p = await peer();
    await p.request({ keepConn: true, params: { REQUEST_METHOD: 'GET', REQUEST_URI: '/' } });
    await p.request({
      keepConn: true,
      params: { REQUEST_METHOD: 'POST', REQUEST_URI: '/', CONTENT_LENGTH: String(body.length) },
      stdin: body,
      timeoutMs: 10_000,
    });
    expect(seen).toEqual([
      ['get', null],
      ['before', false, true],
      ['after', true, 300_000, 4096, 'TypeError'],
    ]);
  });

  it('text() after request.body was only looked at reads the whole body through it', async () => {
    let text = '';
    const { peer } = await start(
      serve(async (request) => {
        void request.body;
        text = await request.text();
        return new Response('');
      }, quiet),
    );
    await (
      await peer()
    ).request({ params: { REQUEST_METHOD: 'PUT', REQUEST_URI: '/', CONTENT_LENGTH: '5' }, stdin: 'hello' });
    expect(text).toBe('hello');
  });
});
