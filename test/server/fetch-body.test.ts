// The fetch API's request.body on the wire: backpressure to the connection, a cancelled body that leaves the
// connection usable, and the bytes exact whatever the record sizes. The test peer plays the web server.
import type * as net from 'node:net';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { serve, type FetchHandler, type ServeOptions } from '../../src/server/fetch';
import { lightBodySupported } from '../../src/server/fetch/light-body';
import { deferred, within } from '../helpers/async';
import { buildRequest, parseCgiResponse, type TestPeer } from '../helpers/fcgi-peer';
import { listenForTest } from './harness';

const POST = { REQUEST_METHOD: 'POST', SCRIPT_NAME: '/upload', REQUEST_URI: '/upload', HTTP_HOST: 'example.test' };

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

// Resolves at the server socket's next pause() (the connection stopped reading).
function nextPause(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const original = socket.pause;
    socket.pause = function (this: net.Socket) {
      socket.pause = original;
      resolve();
      return original.call(this);
    };
  });
}

async function start(
  handler: FetchHandler,
  options: ServeOptions = {},
): Promise<{ peer: TestPeer; socket: net.Socket; server: ReturnType<typeof serve> }> {
  const server = serve(handler, { logger: { warn() {}, error() {} }, ...options });
  const accepted = deferred<net.Socket>();
  server.on('connection', (socket: net.Socket) => accepted.resolve(socket));
  const listening = await listenForTest(server);
  const peer = await listening.connect();
  return { peer, socket: await within(accepted.promise, 2000, 'connection'), server };
}

const EARLY_STOP_TOTAL = 4 * 1024 * 1024;

/**
 * Sends a 4 MB upload on a kept connection to a handler that stops reading it early, checks the first response,
 * then that the rest was read and dropped (not left to stall the connection): a second request on the same
 * connection is answered and no body memory is left held.
 */
async function expectDrainedAfterEarlyStop(
  { peer, server }: { peer: TestPeer; server: ReturnType<typeof serve> },
  seed: number,
  firstBody: string,
): Promise<void> {
  const sending = peer.send(
    buildRequest({
      params: { ...POST, CONTENT_LENGTH: String(EARLY_STOP_TOTAL) },
      stdin: pattern(EARLY_STOP_TOTAL, seed),
      keepConn: true,
    }),
  );
  const first = await peer.waitForEnd(1, 10_000);
  expect(parseCgiResponse(first.stdout).body.toString()).toBe(firstBody);
  await within(sending, 10_000, 'the peer sent the whole body');
  const second = await peer.request({
    params: { ...POST, HTTP_X_STEP: 'second', CONTENT_LENGTH: '5' },
    stdin: 'hello',
    keepConn: true,
  });
  expect(parseCgiResponse(second.stdout).body.toString()).toBe('hello');
  expect(server.bufferedBytes).toBe(0);
}

// request.body read through a reader and with `for await` (both through the real web stream).
const readModes: Record<string, (body: ReadableStream<Uint8Array>) => AsyncIterable<Uint8Array>> = {
  getReader: async function* (body) {
    const reader = body.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) yield r.value;
  },
  'for await': (body) => body,
};

describe('fetch request.body on the wire', () => {
  it.each(Object.keys(readModes))(
    'stops reading the connection while the handler does not read (%s), then delivers every byte',
    async (mode) => {
      const TOTAL = 8 * 1024 * 1024;
      const body = pattern(TOTAL, 3);
      const firstRead = deferred<void>();
      const goOn = deferred<void>();
      const { peer, socket } = await start(
        async (request) => {
          const hash = createHash('sha256');
          let length = 0;
          let chunks = 0;
          for await (const value of readModes[mode]!(request.body!)) {
            hash.update(value);
            length += value.byteLength;
            if (++chunks === 1) {
              firstRead.resolve();
              await goOn.promise;
            }
          }
          return new Response(`${length} ${hash.digest('hex')}`);
        },
        { inputHighWaterMark: 16 * 1024 },
      );
      const paused = nextPause(socket);
      const sending = peer.send(
        buildRequest({ params: { ...POST, CONTENT_LENGTH: String(TOTAL) }, stdin: body, keepConn: true }),
      );
      sending.catch(() => undefined);
      await within(firstRead.promise, 2000, 'first read');
      await within(paused, 2000, 'server paused its socket');
      const atPause = socket.bytesRead;
      // A negative must be observed: give the server time to (wrongly) keep reading; 150 ms is many reads.
      await delay(150);
      expect(socket.bytesRead - atPause).toBeLessThan(128 * 1024);
      expect(socket.bytesRead).toBeLessThan(TOTAL / 16);
      expect(socket.isPaused()).toBe(true);

      goOn.resolve();
      await sending;
      const response = await peer.waitForEnd(1, 10_000);
      expect(parseCgiResponse(response.stdout).body.toString()).toBe(`${TOTAL} ${sha256(body)}`);
    },
  );

  it('a cancelled body is drained: the response goes out, the memory is given back and the connection serves the next request', async () => {
    const started = await start(
      async (request) => {
        if (request.headers.get('x-step') === 'second') return new Response(await request.text());
        const reader = request.body!.getReader();
        const { value } = await reader.read();
        await reader.cancel();
        return new Response(`cancelled after ${value!.byteLength > 0 ? 'some' : 'no'} bytes`);
      },
      { inputHighWaterMark: 16 * 1024 },
    );
    await expectDrainedAfterEarlyStop(started, 5, 'cancelled after some bytes');
  });

  it('hands over exact bytes in few chunks however the web server cuts its records', async () => {
    const TOTAL = 1024 * 1024;
    const body = pattern(TOTAL, 9);
    const seen: number[] = [];
    const { peer } = await start(async (request) => {
      const hash = createHash('sha256');
      for await (const chunk of request.body!) {
        seen.push(chunk.byteLength);
        hash.update(chunk);
      }
      return new Response(hash.digest('hex'));
    });
    // 1,024 records of 1 KiB, sent in 64 KiB writes.
    const records: Buffer[] = [];
    for (let at = 0; at < TOTAL; at += 1024) records.push(body.subarray(at, at + 1024));
    const response = await peer.request({
      params: { ...POST, CONTENT_LENGTH: String(TOTAL) },
      stdin: records,
      timeoutMs: 10_000,
    });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe(sha256(body));
    expect(seen.reduce((a, b) => a + b, 0)).toBe(TOTAL);
    // Pieces that wait are handed over together: far fewer chunks than records.
    expect(seen.length).toBeLessThan(records.length / 4);
  });
});

// A global ReadableStream that counts how many streams are made while a test runs.
function countStreams(): { count: () => number; restore: () => void } {
  const Original = globalThis.ReadableStream;
  let made = 0;
  class Counting<R> extends Original<R> {
    constructor(...args: ConstructorParameters<typeof Original<R>>) {
      super(...args);
      made++;
    }
  }
  globalThis.ReadableStream = Counting as typeof Original;
  return { count: () => made, restore: () => (globalThis.ReadableStream = Original) };
}

describe('fetch request.body: a web stream made only when the body is read (light-body.ts)', () => {
  it('is used on this Node (its streams keep their state in a kState slot LightBody can forward)', () => {
    expect(lightBodySupported).toBe(true);
  });

  it('makes a ReadableStream for a body that is read (`for await`, getReader), none for one only looked at', async () => {
    const body = pattern(1024 * 1024, 11);
    const NativeReadableStream = globalThis.ReadableStream;
    const streams = countStreams();
    try {
      const { peer } = await start(async (request) => {
        const hash = createHash('sha256');
        const isStream = request.body instanceof NativeReadableStream;
        const read = request.headers.get('x-read');
        if (read === 'reader') {
          const reader = request.body!.getReader();
          for (let r = await reader.read(); !r.done; r = await reader.read()) hash.update(r.value);
        } else if (read === 'iterate') for await (const chunk of request.body!) hash.update(chunk);
        return new Response(`${isStream} ${hash.digest('hex')}`);
      });
      const ask = async (read: string | null): Promise<string> => {
        const response = await peer.request({
          params: { ...POST, ...(read === null ? {} : { HTTP_X_READ: read }), CONTENT_LENGTH: String(body.length) },
          stdin: body,
          keepConn: true,
          timeoutMs: 10_000,
        });
        return parseCgiResponse(response.stdout).body.toString();
      };
      expect(await ask(null)).toBe(`true ${sha256(Buffer.alloc(0))}`);
      expect(streams.count(), 'request.body looked at, not read').toBe(0);
      expect(await ask('iterate')).toBe(`true ${sha256(body)}`);
      expect(streams.count()).toBe(1);
      expect(await ask('reader')).toBe(`true ${sha256(body)}`);
      expect(streams.count()).toBe(2);
    } finally {
      streams.restore();
    }
  });

  const body = pattern(200_000, 12);
  const readers: Record<string, (request: Request) => Promise<Uint8Array>> = {
    fromWeb: async (request) => {
      const chunks: Buffer[] = [];
      for await (const chunk of Readable.fromWeb(request.body! as never)) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },
    response: async (request) => new Uint8Array(await new Response(request.body).arrayBuffer()),
    pipeTo: async (request) => {
      const chunks: Uint8Array[] = [];
      await request.body!.pipeTo(new WritableStream({ write: (chunk: Uint8Array) => void chunks.push(chunk) }));
      return Buffer.concat(chunks);
    },
    pipeThrough: async (request) => {
      const chunks: Uint8Array[] = [];
      for await (const chunk of request.body!.pipeThrough(new TransformStream<Uint8Array, Uint8Array>()))
        chunks.push(chunk);
      return Buffer.concat(chunks);
    },
    tee: async (request) => {
      const [a, b] = request.body!.tee();
      const chunks: Uint8Array[] = [];
      void b.cancel();
      for await (const chunk of a) chunks.push(chunk);
      return Buffer.concat(chunks);
    },
    arrayBuffer: async (request) => new Uint8Array(await request.arrayBuffer()),
  };
  it.each(Object.keys(readers))('works where a real stream is needed: %s', async (read) => {
    const { peer } = await start(async (request) => new Response(sha256(await readers[read]!(request))));
    const response = await peer.request({
      params: { ...POST, CONTENT_LENGTH: String(body.length) },
      stdin: body,
      timeoutMs: 5_000,
    });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe(sha256(body));
  });

  it('is locked while a `for await` reads it, as a stream is; a break drains the rest and the connection goes on', async () => {
    const started = await start(
      async (request) => {
        if (request.headers.get('x-step') === 'second') return new Response(await request.text());
        let lockedInside = false;
        let readerError = '';
        for await (const chunk of request.body!) {
          lockedInside = request.body!.locked;
          try {
            request.body!.getReader();
          } catch (error) {
            readerError = (error as Error).name;
          }
          if (chunk.byteLength > 0) break;
        }
        return new Response(`${lockedInside} ${readerError} ${request.bodyUsed}`);
      },
      { inputHighWaterMark: 16 * 1024 },
    );
    await expectDrainedAfterEarlyStop(started, 13, 'true TypeError true');
  });

  // What a handler may do with a request whose body it read, each answered as a native Request answers it.
  const afterReading: Record<string, (request: Request) => Promise<string>> = {
    'for await, then its other fields, clone() and new Request()': async (request) => {
      for await (const chunk of request.body!) void chunk;
      const out = [request.mode, String(request.bodyUsed), String(request.body!.locked)];
      for (const attempt of [() => request.clone(), () => new Request(request)]) {
        try {
          attempt();
          out.push('ok');
        } catch (error) {
          out.push((error as Error).name);
        }
      }
      return out.join(' ');
    },
    'request.body looked at, text(), then for await': async (request) => {
      void request.body;
      const text = await request.text();
      try {
        for await (const chunk of request.body!) void chunk;
        return `${text} iterated`;
      } catch (error) {
        return `${text} ${(error as Error).name}`;
      }
    },
  };
  it.each(Object.keys(afterReading))('after reading the body, as a native Request: %s', async (what) => {
    const probe = afterReading[what]!;
    const native = await probe(new Request('http://localhost/', { method: 'POST', body: 'hello' }));
    const { peer } = await start(async (request) => new Response(await probe(request)));
    const response = await peer.request({ params: { ...POST, CONTENT_LENGTH: '5' }, stdin: 'hello' });
    expect(parseCgiResponse(response.stdout).body.toString()).toBe(native);
  });

  // A chunk that arrived before the first read is in the reader's queue already: that read must still count.
  const firstReads: Record<string, (body: ReadableStream<Uint8Array>) => () => Promise<unknown>> = {
    getReader: (body) => {
      const reader = body.getReader();
      return () => reader.read();
    },
    'for await': (body) => {
      const chunks = body[Symbol.asyncIterator]();
      return () => chunks.next();
    },
  };
  it.each(Object.keys(firstReads))(
    'counts the body as used once a read (%s) took a chunk that arrived before it',
    async (mode) => {
      const { peer } = await start(async (request) => {
        const read = firstReads[mode]!(request.body!);
        await delay(50);
        const before = request.bodyUsed;
        await read();
        return new Response(`${before} ${request.bodyUsed}`);
      });
      const response = await peer.request({ params: { ...POST, CONTENT_LENGTH: '5' }, stdin: 'hello' });
      expect(parseCgiResponse(response.stdout).body.toString()).toBe('false true');
    },
  );

  it('fails the `for await` when the web server aborts the request (ABORT_REQUEST)', async () => {
    const firstChunk = deferred<void>();
    const goOn = deferred<void>();
    const failure = deferred<string>();
    const { peer } = await start(async (request) => {
      try {
        for await (const chunk of request.body!) {
          void chunk;
          firstChunk.resolve();
          await goOn.promise;
        }
        failure.resolve('no error');
      } catch (error) {
        failure.resolve((error as Error).message);
      }
      return new Response('over');
    });
    // Part of a body, its end never sent: the loop waits for more.
    await peer.send(
      buildRequest({
        params: { ...POST, CONTENT_LENGTH: '100000' },
        stdin: 'x'.repeat(5000),
        noStdinEnd: true,
        keepConn: true,
      }),
    );
    await within(firstChunk.promise, 2000, 'first chunk');
    await peer.abort(1);
    await peer.waitForEnd(1, 2000);
    goOn.resolve();
    expect(await within(failure.promise, 2000, 'the loop failed')).toMatch(/aborted/);
  });
});
