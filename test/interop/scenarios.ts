// Scenarios shared by the per-server suites: each sends real HTTP through a real web server to the app fixture
// and asserts what the engine guarantees (exact bytes, bounded memory, aborts seen, ...). What differs between
// servers (limits, merged headers, reason phrases) is asserted by the suites themselves.
import { expect } from 'vitest';
import { setTimeout as delay } from 'node:timers/promises';
import { bodySha256 } from '../fixtures/interop/data';
import { getJson, httpRequest, rawHttp, type EnvAnswer, type Events, type HttpResult } from './harness';

export const MiB = 1 << 20;

let tags = 0;
/** A tag unique in this worker, to find one request's events. */
export function tag(name: string): string {
  return `${name}-${process.pid}-${++tags}`;
}

/** `path` with `do=action` and more query parameters appended. */
export function withQuery(path: string, query: Record<string, string | number>): string {
  const q = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString();
  return `${path}${path.includes('?') ? '&' : '?'}${q}`;
}

export async function env(port: number, path: string, headers?: Parameters<typeof getJson>[2]): Promise<EnvAnswer> {
  const { result, json } = await getJson<EnvAnswer>(port, withQuery(path, { do: 'env' }), headers);
  expect(result.status, result.body.toString('latin1').slice(0, 300)).toBe(200);
  return json;
}

/** Downloads `size` deterministic bytes; asserts status, length and sha256. */
export async function download(
  port: number,
  path: string,
  size: number,
  options: { cl?: boolean; seed?: number } = {},
): Promise<HttpResult> {
  const seed = options.seed ?? size % 1000;
  const result = await httpRequest({
    port,
    path: withQuery(path, { do: 'download', size, seed, cl: options.cl === false ? 0 : 1, tag: tag('download') }),
    hashOnly: true,
    timeoutMs: 120_000,
  });
  expect(result.status).toBe(200);
  expect(result.length).toBe(size);
  expect(result.sha256).toBe(bodySha256(size, seed));
  return result;
}

export interface UploadAnswer {
  bytes: number;
  sha256: string;
  contentLength: string | null;
  transferEncoding: string | null;
  rss: number;
  base: number;
}

/** Uploads `size` deterministic bytes (chunked or with Content-Length); asserts the app hashed them exactly. */
export async function upload(
  port: number,
  path: string,
  size: number,
  options: { chunked?: boolean; pauseMs?: number; tag?: string } = {},
): Promise<UploadAnswer> {
  const seed = (size + 17) % 1000;
  const query: Record<string, string | number> = { do: 'upload', tag: options.tag ?? tag('upload') };
  if (options.pauseMs !== undefined) query.pause = options.pauseMs;
  const result = await httpRequest({
    port,
    path: withQuery(path, query),
    body: { size, seed },
    chunked: options.chunked === true,
    timeoutMs: 120_000,
  });
  expect(result.status, result.body.toString('latin1').slice(0, 300)).toBe(200);
  const answer = JSON.parse(result.body.toString('utf8')) as UploadAnswer;
  expect(answer.bytes).toBe(size);
  expect(answer.sha256).toBe(bodySha256(size, seed));
  return answer;
}

/** Sends `size` bytes to the echo action (the app writes each chunk back as it reads); asserts the bytes. */
export async function echo(
  port: number,
  path: string,
  size: number,
  options: { chunked?: boolean; timeoutMs?: number } = {},
): Promise<HttpResult> {
  const seed = (size + 5) % 1000;
  const result = await httpRequest({
    port,
    path: withQuery(path, { do: 'echo', tag: tag('echo') }),
    body: { size, seed },
    chunked: options.chunked === true,
    hashOnly: true,
    timeoutMs: options.timeoutMs ?? 60_000,
  });
  expect(result.status).toBe(200);
  expect(result.length).toBe(size);
  expect(result.sha256).toBe(bodySha256(size, seed));
  return result;
}

/**
 * A client that stops reading: the app's writes must stall (backpressure through the server) with its memory
 * flat, and the whole body must arrive intact once the client reads again. Returns what was written while
 * stalled and the app's RSS growth.
 */
export async function stalledDownload(
  port: number,
  path: string,
  events: Events,
  size: number,
  stallMs = 1500,
): Promise<{ stalledAt: number; rssGrowth: number }> {
  const t = tag('stall');
  const seed = 3;
  let stalledAt = -1;
  let rssGrowth = -1;
  const result = await httpRequest({
    port,
    path: withQuery(path, { do: 'download', size, seed, tag: t }),
    hashOnly: true,
    timeoutMs: 120_000,
    onResponse: async () => {
      await delay(stallMs);
      const samples = events.find((e) => e.ev === 'progress' && e.tag === t);
      expect(samples.length, 'progress events while stalled').toBeGreaterThan(5);
      // The last 400 ms of samples: nothing more written, and not the whole body.
      const recent = samples.slice(-4).map((e) => e.written as number);
      stalledAt = recent[recent.length - 1]!;
      expect(new Set(recent).size, `app writes stalled (last samples ${recent.join(', ')})`).toBe(1);
      const last = samples[samples.length - 1]!;
      rssGrowth = (last.rss as number) - (last.base as number);
    },
  });
  expect(result.length).toBe(size);
  expect(result.sha256).toBe(bodySha256(size, seed));
  expect(stalledAt).toBeLessThan(size / 2);
  return { stalledAt, rssGrowth };
}

/**
 * Starts a trickling response (or a silent long-poll) and goes away: after the first body bytes, or, with
 * `leaveEarly` (and always for a long-poll), 200 ms after the app got the request. Returns the tag.
 */
export async function leave(
  port: number,
  path: string,
  events: Events,
  options: {
    chunk?: number;
    interval?: number;
    max?: number;
    action?: 'trickle' | 'longpoll';
    ms?: number;
    leaveEarly?: boolean;
  } = {},
): Promise<string> {
  const t = tag('abort');
  const action = options.action ?? 'trickle';
  const query: Record<string, string | number> =
    action === 'trickle'
      ? {
          do: action,
          chunk: options.chunk ?? 16384,
          interval: options.interval ?? 20,
          max: options.max ?? 64 * MiB,
          tag: t,
        }
      : { do: action, ms: options.ms ?? 30_000, tag: t };
  let request: import('node:http').ClientRequest | undefined;
  const done = httpRequest({
    port,
    path: withQuery(path, query),
    timeoutMs: 30_000,
    onRequest: (req) => (request = req),
    onResponse: async (res, req) => {
      await new Promise((r) => res.once('readable', r));
      req.destroy();
    },
  }).catch(() => undefined);
  if (action === 'longpoll' || options.leaveEarly === true) {
    await events.waitFor((e) => e.ev === 'request' && e.tag === t, `request ${t}`);
    await delay(200);
    request?.destroy();
  }
  await done;
  return t;
}

/** leave(), then wait for the app to report the abort; returns how long that took (ms). */
export async function clientAbort(
  port: number,
  path: string,
  events: Events,
  options: Parameters<typeof leave>[3] & { timeoutMs?: number } = {},
): Promise<number> {
  const started = Date.now();
  const t = await leave(port, path, events, options);
  const aborted = await events.waitFor(
    (e) => e.ev === 'aborted' && e.tag === t,
    `aborted ${t}`,
    options.timeoutMs ?? 10_000,
  );
  return aborted.t - started;
}

/** Status codes with reason phrases: what the client sees for each. */
export async function statuses(
  port: number,
  path: string,
  codes: readonly [number, string][],
): Promise<Map<number, HttpResult>> {
  const out = new Map<number, HttpResult>();
  for (const [code, reason] of codes) {
    const result = await httpRequest({ port, path: withQuery(path, { do: 'status', code, reason }) });
    expect(result.status).toBe(code);
    if (code === 204 || code === 304) expect(result.length).toBe(0);
    else expect(result.body.toString()).toBe(`status ${code}\n`);
    out.set(code, result);
  }
  return out;
}

/** `count` request headers of `size` bytes each. */
export function manyHeaders(count: number, size: number): [string, string][] {
  const headers: [string, string][] = [];
  for (let i = 0; i < count; i++)
    headers.push([`X-Many-${i}`, `${i}:`.padEnd(size, String.fromCharCode(97 + (i % 26)))]);
  return headers;
}

/** Asserts the app received every one of `headers` intact. */
export function expectHeaders(answer: EnvAnswer, headers: [string, string][]): void {
  for (const [name, value] of headers) expect(answer.headers[name.toLowerCase()], name).toBe(value);
}

/** UTF-8 text as the latin1 string Node's HTTP APIs use for raw header bytes. */
export function latin1(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** Statuses with the reason phrases the app sends (standard ones and two of its own). */
export const REASON_PHRASES: readonly [number, string][] = [
  [200, 'OK'],
  [201, 'Created'],
  [204, 'No Content'],
  [304, 'Not Modified'],
  [404, 'Nope Not Here'],
  [500, 'Broken On Purpose'],
];

/** Statuses whose reason phrase the server passes on: each reaches the client with the phrase the engine sent. */
export async function expectReasonPhrasesKept(
  port: number,
  path: string,
  codes: readonly [number, string][],
): Promise<void> {
  const results = await statuses(port, path, codes);
  for (const [code, reason] of codes) expect(results.get(code)!.statusMessage).toBe(reason);
}

/** Statuses with reason phrases of the app's own, so a server that puts the standard ones in their place shows it. */
export const OWN_REASON_PHRASES: readonly [number, string][] = [
  [200, 'Fine'],
  [201, 'Made'],
  [204, 'Nothing'],
  [304, 'Same'],
  [404, 'Nope Not Here'],
  [500, 'Broken On Purpose'],
];

/** The server sends its standard reason phrases, not the app's; the results, for what else a suite checks. */
export async function expectReasonPhrasesReplaced(port: number, path: string): Promise<Map<number, HttpResult>> {
  const results = await statuses(port, path, OWN_REASON_PHRASES);
  expect(results.get(404)!.statusMessage).toBe('Not Found');
  expect(results.get(201)!.statusMessage).toBe('Created');
  return results;
}

/** Redirects most suites check: an absolute URL and two local paths. */
export const REDIRECTS: readonly (readonly [number, string])[] = [
  [302, 'http://example.test/elsewhere?x=1'],
  [301, '/moved/here'],
  [303, '/see/other'],
];

/** Each redirect reaches the client with the status and Location the app set. */
export async function expectRedirects(
  port: number,
  path: string,
  redirects: readonly (readonly [number, string])[] = REDIRECTS,
): Promise<void> {
  for (const [code, to] of redirects) {
    const r = await httpRequest({ port, path: withQuery(path, { do: 'redirect', code, to }) });
    expect(r.status).toBe(code);
    expect(r.headers.location).toBe(to);
  }
}

/**
 * Duplicate headers both ways: sends X-Dup and Cookie twice to the app's dupheaders action and asserts the two
 * Set-Cookie lines stay separate. Returns the response and what the app saw, for the server's own merging.
 */
export async function dupHeaders(port: number, path: string): Promise<{ r: HttpResult; a: EnvAnswer }> {
  const r = await httpRequest({
    port,
    path: withQuery(path, { do: 'dupheaders' }),
    headers: [
      ['X-Dup', 'a'],
      ['X-Dup', 'b'],
      ['Cookie', 'c1=1'],
      ['Cookie', 'c2=2'],
    ],
  });
  expect(r.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
  return { r, a: JSON.parse(r.body.toString()) as EnvAnswer };
}

/**
 * UTF-8 bytes in a header both ways: GETs `path` (which carries do=utf8) with a UTF-8 X-Utf8 header and asserts
 * 200 and the bytes intact in the response header and in what the app saw. Returns what the app saw.
 */
export async function utf8RoundTrip(port: number, path: string): Promise<EnvAnswer> {
  const text = 'héllo ✓ 日本';
  const r = await httpRequest({ port, path, headers: { 'X-Utf8': latin1(text) } });
  expect(r.status).toBe(200);
  expect(Buffer.from(r.headers['x-utf8'] as string, 'latin1').toString('utf8')).toBe(text);
  const a = JSON.parse(r.body.toString()) as EnvAnswer;
  expect(Buffer.from(a.headers['x-utf8']!, 'latin1').toString('utf8')).toBe(text);
  return a;
}

/** A control byte in a request header value: the server answers 400 itself. */
export async function expectControlByteRejected(port: number, path: string): Promise<void> {
  const raw = await rawHttp(
    port,
    `GET ${path}?do=env HTTP/1.1\r\nHost: x\r\nX-Ctl: a\x01b\r\nConnection: close\r\n\r\n`,
  );
  expect(raw.statusLine).toMatch(/^HTTP\/1\.1 400/);
}

/** HEAD: the app sees HEAD, the client gets no body. */
export async function expectHead(port: number, path: string): Promise<void> {
  const r = await httpRequest({ port, path: withQuery(path, { do: 'head' }), method: 'HEAD' });
  expect(r.status).toBe(200);
  expect(r.headers['x-method']).toBe('HEAD');
  expect(r.length).toBe(0);
}

/** 50 concurrent 200 ms requests to `${path}c/<i>`: all answered 200. */
export async function expectConcurrentAnswered(port: number, path: string): Promise<void> {
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      httpRequest({ port, path: withQuery(`${path}c/${i}`, { do: 'slow', ms: 200 }) }),
    ),
  );
  expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
}

/** A stalled client stalls the app's 100 MB download: under 48 MiB written while stalled, RSS growth under 64 MiB. */
export async function expectStalledDownloadBounded(port: number, path: string, events: Events): Promise<void> {
  const { stalledAt, rssGrowth } = await stalledDownload(port, path, events, 100 * MiB);
  expect(stalledAt).toBeLessThan(48 * MiB);
  expect(rssGrowth).toBeLessThan(64 * MiB);
}

/** An app that reads its 100 MB body 1.5 s late: its RSS grows by under 64 MiB. */
export async function expectLateReadBounded(port: number, path: string): Promise<void> {
  const answer = await upload(port, path, 100 * MiB, { pauseMs: 1500 });
  expect(answer.rss - answer.base).toBeLessThan(64 * MiB);
}

/** A client that leaves a silent 1.5 s long-poll: the server does not pass the abort on, the poll runs to its end. */
export async function expectLongPollNotAborted(port: number, path: string, events: Events): Promise<void> {
  const poll = await leave(port, path, events, { action: 'longpoll', ms: 1500 });
  const polled = await events.waitFor(
    (e) => e.ev === 'longpoll-done' && e.tag === poll,
    'the long-poll runs to its end',
  );
  expect(polled.aborted).toBe(false);
}

/** A request routed to the listener whose FCGI_WEB_SERVER_ADDRS refuses the server: `status`, and the app logs the refusal. */
export async function expectPeerRefused(port: number, path: string, events: Events, status: number): Promise<void> {
  const r = await httpRequest({ port, path });
  expect(r.status).toBe(status);
  await events.waitFor(
    (e) => e.ev === 'log' && e.listener === 'deny' && String(e.message).includes('FCGI_ERR_PEER_NOT_ALLOWED'),
    'refused peer logged',
  );
}

/**
 * A server that does not read the response while it still sends the request body (half-duplex): the app echoes a
 * 32 MB upload chunk by chunk, its reads stall once the socket buffers are full, and when the server's timeout
 * gives up the handler sees the connection closed. Returns the request's tag and the client's outcome (a cut
 * response or an error), for the suite to check the server's own log and status.
 */
export async function expectHalfDuplexStall(
  port: number,
  path: string,
  events: Events,
  who: string,
): Promise<{ tag: string; done: Promise<HttpResult | Error> }> {
  const t = tag('halfduplex');
  const done = httpRequest({
    port,
    path: withQuery(path, { do: 'echo', tag: t }),
    body: { size: 32 * MiB, seed: 1 },
    hashOnly: true,
    timeoutMs: 30_000,
  }).catch((e: Error) => e);
  await events.waitFor((e) => e.ev === 'progress' && e.tag === t && (e.read as number) > 0, 'echo progress');
  await delay(1000);
  const read = events
    .find((e) => e.ev === 'progress' && e.tag === t)
    .slice(-5)
    .map((e) => e.read as number);
  expect(new Set(read).size, `reads stalled: ${read.join(', ')}`).toBe(1);
  expect(read[0]).toBeLessThan(32 * MiB);
  const failed = await events.waitFor(
    (e) => e.ev === 'echo-error' && e.tag === t,
    `the echo aborted by ${who}`,
    10_000,
  );
  expect(failed.message).toMatch(/closed the connection/);
  return { tag: t, done };
}
