// Well-formed traffic beside an attack or a fuzz run, checked byte for byte: the figure that matters is how
// many of these fail while the server is under abuse (the answer must be 0).
//
// Each request is what nginx sends (BEGIN_REQUEST, PARAMS, STDIN, built with the package's encoders); replies
// are framed with the package's Decoder and their CGI head read with the client's parser. A "fresh" loop opens a connection per request (nginx's default); a
// "kept" loop keeps one (fastcgi_keep_conn), and when the server closed it while idle (idleTimeout, or to make
// room at maxConnections) opens a new one before the next request, as nginx's upstream keepalive does: that is
// not a failure. A request that the server answers wrongly, late, or not at all is.
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { toolParams } from '../../src/cgi/params';
import { CgiHeaderParser } from '../../src/cgi/response';
import { RecordType } from '../../src/wire/constants';
import { Decoder } from '../../src/wire/decoder';
import { encodeRequest } from '../../src/wire/request-records';
import { createLatencyHistogram, percentileMs, recordLatency } from '../../src/load/latency';
import { liveBytes } from '../../test/fixtures/apps/live-app';

/** mulberry32: small and seedable; a run is reproduced from its printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type LegitKind = 'hello' | 'bytes64k' | 'echo';

interface Spec {
  readonly kind: LegitKind;
  readonly method: string;
  readonly uri: string;
  readonly body: Buffer;
  readonly expected: Buffer;
}

const BYTES_64K = liveBytes(64 * 1024);
// A few bodies made once (hashing one per request would cost the load generator more than the server).
const ECHO_BODIES = [0, 1, 1000, 16 * 1024, 65_535, 65_536, 200_000].map((n, i) => {
  const body = Buffer.alloc(n);
  const random = prng(0xb0d1 + i);
  for (let j = 0; j < n; j++) body[j] = (random() * 256) | 0;
  return { body, expected: Buffer.from(`${createHash('sha256').update(body).digest('hex')} ${n}`) };
});

function spec(kind: LegitKind, random: () => number): Spec {
  if (kind === 'hello')
    return { kind, method: 'GET', uri: '/hello', body: Buffer.alloc(0), expected: Buffer.from('hello world') };
  if (kind === 'bytes64k')
    return { kind, method: 'GET', uri: '/bytes?n=65536', body: Buffer.alloc(0), expected: BYTES_64K };
  const echo = ECHO_BODIES[Math.floor(random() * ECHO_BODIES.length)]!;
  return { kind, method: 'POST', uri: '/echo', body: echo.body, expected: echo.expected };
}

function requestBytes(spec: Spec, keepConn: boolean): Buffer {
  const params = toolParams({
    software: 'fastcgi-engine-legit',
    method: spec.method,
    uri: spec.uri,
    contentLength: spec.method === 'POST' ? spec.body.length : undefined,
  });
  return encodeRequest({ keepConn, params, stdin: spec.body });
}

/** What was wrong with a reply, or null when it is the expected one. */
function check(spec: Spec, stdout: Buffer, appStatus: number, protocolStatus: number): string | null {
  if (protocolStatus !== 0) return `protocolStatus ${protocolStatus}`;
  if (appStatus !== 0) return `appStatus ${appStatus}`;
  const parser = new CgiHeaderParser(Number.POSITIVE_INFINITY);
  let bodyStart: number;
  try {
    bodyStart = parser.push(stdout);
  } catch (error) {
    return `malformed CGI header block: ${(error as Error).message}`;
  }
  if (bodyStart === -1) return `no CGI header block in ${stdout.length} bytes`;
  if (parser.head!.status !== 200) return `status ${parser.head!.status}`;
  const body = stdout.subarray(bodyStart);
  if (!body.equals(spec.expected))
    return `body of ${body.length} bytes differs from the ${spec.expected.length} expected`;
  return null;
}

/** One FastCGI connection that runs one request at a time. */
class Connection {
  readonly socket: Socket;
  closed = false;
  #stdout: Buffer[] = [];
  #onEnd: ((appStatus: number, protocolStatus: number) => void) | null = null;
  #onFail: ((reason: string) => void) | null = null;

  constructor(path: string) {
    this.socket = connect(path);
    const decoder = new Decoder(
      {
        onRecord: (type, _id, content) => {
          if (type === RecordType.STDOUT) this.#stdout.push(content);
          else if (type === RecordType.END_REQUEST) this.#onEnd?.(content.readUInt32BE(0), content[4]!);
        },
        onParams: () => undefined,
        onError: (error) => {
          this.#onFail?.(`malformed reply: ${error.code}`);
          this.socket.destroy();
        },
      },
      { collectParams: false },
    );
    this.socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    this.socket.on('error', () => undefined);
    this.socket.once('close', () => {
      this.closed = true;
      this.#onFail?.('connection closed before END_REQUEST');
    });
  }

  /** Sends `spec`; resolves to null on the expected answer, else to what went wrong. */
  run(spec: Spec, keepConn: boolean, timeoutMs: number): Promise<string | null> {
    this.#stdout = [];
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
      const finish = (result: string | null): void => {
        clearTimeout(timer);
        this.#onEnd = null;
        this.#onFail = null;
        resolve(result);
      };
      this.#onEnd = (appStatus, protocolStatus) =>
        finish(check(spec, Buffer.concat(this.#stdout), appStatus, protocolStatus));
      this.#onFail = (reason) => finish(reason);
      if (this.closed) finish('connection closed before the request was sent');
      else this.socket.write(requestBytes(spec, keepConn));
    });
  }
}

export interface LegitOptions {
  readonly path: string;
  /** Loops opening a connection per request. */
  readonly fresh: number;
  /** Loops keeping their connection. */
  readonly kept: number;
  readonly kinds: readonly LegitKind[];
  readonly timeoutMs: number;
  readonly seed: number;
}

/** Closed-loop legitimate traffic until stop(). */
export class LegitTraffic {
  ok = 0;
  failed = 0;
  /** Reconnections of kept loops after the server closed an idle connection (not failures). */
  reconnects = 0;
  /** The first few failures, with what was asked. */
  readonly failures: string[] = [];
  /** Latency of each request, µs. */
  readonly latency = createLatencyHistogram();
  readonly startedAt = Date.now();
  stoppedAt = 0;
  #running = true;
  readonly #loops: Promise<void>[];

  constructor(options: LegitOptions) {
    const random = prng(options.seed);
    this.#loops = [
      ...Array.from({ length: options.fresh }, () => this.#loop(options, false, random)),
      ...Array.from({ length: options.kept }, () => this.#loop(options, true, random)),
    ];
  }

  async #loop(options: LegitOptions, keep: boolean, random: () => number): Promise<void> {
    let connection: Connection | null = null;
    while (this.#running) {
      const request = spec(options.kinds[Math.floor(random() * options.kinds.length)]!, random);
      if (connection !== null && connection.closed) {
        connection = null;
        this.reconnects++;
      }
      connection ??= new Connection(options.path);
      const sent = performance.now();
      const failure = await connection.run(request, keep, options.timeoutMs);
      recordLatency(this.latency, (performance.now() - sent) * 1000);
      if (failure === null) this.ok++;
      else {
        this.failed++;
        if (this.failures.length < 10)
          this.failures.push(`${request.method} ${request.uri} (${keep ? 'kept' : 'fresh'} connection): ${failure}`);
      }
      if (!keep || failure !== null) {
        connection.socket.destroy();
        connection = null;
      }
      // A dead server fails every request at once; no need to count thousands of them.
      if (failure !== null) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    connection?.socket.destroy();
  }

  /** Ends the loops once their current requests are done. */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.stoppedAt = Date.now();
  }

  /** `ok` req/s, p50 / p99 / max latency in ms. */
  summary(): string {
    const at = (p: number): string => (this.latency.totalCount === 0 ? '-' : percentileMs(this.latency, p).toFixed(1));
    const seconds = ((this.stoppedAt || Date.now()) - this.startedAt) / 1000;
    return `${(this.ok / seconds).toFixed(0)} req/s, latency p50 ${at(50)} ms, p99 ${at(99)} ms, max ${at(100)} ms`;
  }
}
