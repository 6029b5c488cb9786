// Closed-loop load generator for bench/server.bench.ts: C connections, each sending one pre-encoded request and
// waiting for its whole reply before sending the next (as nginx does with `fastcgi_keep_conn on` and one
// request per upstream connection at a time). No dependencies, no per-request allocation beyond what the
// socket hands over.
//
// Replies are framed by small state machines fed with each socket chunk: FastCGIReplyParser walks record
// headers (content is skipped by arithmetic, never copied) and counts END_REQUEST records; HttpReplyParser,
// for the node:http reference row, counts responses by their Content-Length. Only the first reply of a run is
// captured, to check that the server ran the expected handler.
//
// A run is a warmup (replies not recorded) then a measured window: the replies completed inside it give
// req/s, and each one's latency (send to last byte, performance.now(), µs) goes into a typed array for the
// percentiles. Errors (socket errors, unexpected closes, malformed or failed replies) and timeouts are counted
// over the whole run, warmup included; a failed connection is reopened after a short pause.
import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** Where the server listens. */
export type Address = { readonly path: string } | { readonly port: number; readonly host: string };

/** Frames replies out of socket chunks. One parser per connection; a new one for each new connection. */
export interface ReplyParser {
  /** Consumes one chunk; returns how many replies it completed. Sets `error` on malformed input (stop feeding). */
  feed(chunk: Buffer): number;
  /** Why the byte stream cannot be framed; the connection must be dropped. */
  error: string | null;
  /** Well-framed replies that report failure (non-zero appStatus or protocolStatus, or an HTTP status ≥ 400). */
  failedReplies: number;
  /** While true, the body bytes of the current reply are kept in `captured`; turned off when that reply ends. */
  capture: boolean;
  readonly captured: Buffer[];
}

// FastCGI 1.0 §8.
const FCGI_VERSION_1 = 1;
const FCGI_END_REQUEST = 3;
const FCGI_STDOUT = 6;
const HEADER_LENGTH = 8;

/** FastCGI replies: STDOUT/STDERR records, then END_REQUEST. One reply = one END_REQUEST. */
export class FastCGIReplyParser implements ReplyParser {
  error: string | null = null;
  failedReplies = 0;
  capture = false;
  readonly captured: Buffer[] = [];
  // A header split across chunks is assembled here.
  readonly #header = new Uint8Array(HEADER_LENGTH);
  #headerFill = 0;
  #inRecord = false;
  #type = 0;
  #contentLeft = 0;
  #paddingLeft = 0;
  // END_REQUEST's body: appStatus (4 bytes), protocolStatus, 3 reserved.
  readonly #endBody = new Uint8Array(8);
  #endFill = 0;

  feed(chunk: Buffer): number {
    let done = 0;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (!this.#inRecord) {
        let h: Uint8Array;
        let at: number;
        if (this.#headerFill === 0 && n - i >= HEADER_LENGTH) {
          h = chunk;
          at = i;
          i += HEADER_LENGTH;
        } else {
          const take = Math.min(HEADER_LENGTH - this.#headerFill, n - i);
          this.#header.set(chunk.subarray(i, i + take), this.#headerFill);
          this.#headerFill += take;
          i += take;
          if (this.#headerFill < HEADER_LENGTH) break;
          this.#headerFill = 0;
          h = this.#header;
          at = 0;
        }
        if (h[at] !== FCGI_VERSION_1) {
          this.error = `reply record with version byte ${h[at]}`;
          return done;
        }
        this.#type = h[at + 1]!;
        this.#contentLeft = (h[at + 4]! << 8) | h[at + 5]!;
        this.#paddingLeft = h[at + 6]!;
        this.#inRecord = true;
        this.#endFill = 0;
      }
      if (this.#contentLeft > 0) {
        const take = Math.min(this.#contentLeft, n - i);
        if (this.#type === FCGI_STDOUT) {
          if (this.capture) this.captured.push(Buffer.from(chunk.subarray(i, i + take)));
        } else if (this.#type === FCGI_END_REQUEST) {
          const room = Math.min(take, this.#endBody.length - this.#endFill);
          this.#endBody.set(chunk.subarray(i, i + room), this.#endFill);
          this.#endFill += room;
        }
        i += take;
        this.#contentLeft -= take;
        if (this.#contentLeft > 0) break;
      }
      if (this.#paddingLeft > 0) {
        const take = Math.min(this.#paddingLeft, n - i);
        i += take;
        this.#paddingLeft -= take;
        if (this.#paddingLeft > 0) break;
      }
      // The record is complete.
      this.#inRecord = false;
      if (this.#type === FCGI_END_REQUEST) {
        if (this.#endFill < 8) {
          this.error = `END_REQUEST with ${this.#endFill} content bytes`;
          return done;
        }
        const b = this.#endBody;
        const appStatus = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
        if (appStatus !== 0 || b[4] !== 0) this.failedReplies++;
        this.capture = false;
        done++;
      }
    }
    return done;
  }
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const MAX_HEAD = 64 * 1024;

/** HTTP/1.1 responses framed by Content-Length (chunked responses are an error: the reference handler never sends one). */
export class HttpReplyParser implements ReplyParser {
  error: string | null = null;
  failedReplies = 0;
  capture = false;
  readonly captured: Buffer[] = [];
  #carry: Buffer | null = null;
  // -1 while reading the head.
  #bodyLeft = -1;

  feed(chunk: Buffer): number {
    let data = chunk;
    if (this.#carry !== null) {
      data = Buffer.concat([this.#carry, chunk]);
      this.#carry = null;
    }
    let done = 0;
    let i = 0;
    const n = data.length;
    while (i < n) {
      if (this.#bodyLeft < 0) {
        const end = data.indexOf(HEAD_END, i);
        if (end < 0) {
          if (n - i > MAX_HEAD) {
            this.error = 'response head over 64 KB';
            return done;
          }
          this.#carry = data.subarray(i);
          break;
        }
        const head = data.toString('latin1', i, end);
        const length = CONTENT_LENGTH.exec(head);
        if (!head.startsWith('HTTP/1.') || length === null) {
          this.error = `response without Content-Length: ${JSON.stringify(head.slice(0, 80))}`;
          return done;
        }
        if (head.charCodeAt(9) >= 0x34) this.failedReplies++; // status 4xx or 5xx
        this.#bodyLeft = Number(length[1]);
        i = end + HEAD_END.length;
      }
      if (this.#bodyLeft > 0) {
        const take = Math.min(this.#bodyLeft, n - i);
        if (this.capture) this.captured.push(Buffer.from(data.subarray(i, i + take)));
        i += take;
        this.#bodyLeft -= take;
        if (this.#bodyLeft > 0) break;
      }
      this.#bodyLeft = -1;
      this.capture = false;
      done++;
    }
    return done;
  }
}

/** One run's settings. */
export interface LoadOptions {
  readonly address: Address;
  /** The whole request, sent as one write per request. */
  readonly request: Buffer;
  readonly newParser: () => ReplyParser;
  /** Connections, each with one request in flight at a time. */
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /**
   * true: every connection is reused for request after request (the request must ask for it: FCGI_KEEP_CONN,
   * or HTTP/1.1's default). false: a new connection per request, closed after the reply; latency then
   * includes the connect.
   */
  readonly keepConn: boolean;
  /** The first reply's body (FastCGI: its STDOUT, CGI headers included) must contain this. */
  readonly expectBody: string;
  /** A request unanswered for this long counts as a timeout and its connection is dropped. */
  readonly timeoutMs: number;
  /** Called when the measured window opens and closes (to sample the server's CPU time). */
  readonly onMeasureStart?: () => void;
  readonly onMeasureEnd?: () => void;
}

/** What one run measured. */
export interface LoadResult {
  /** Replies completed inside the measured window. */
  readonly requests: number;
  /** Length of the measured window, ms. */
  readonly elapsedMs: number;
  readonly reqPerSec: number;
  /** One latency per counted reply, µs, in completion order. */
  readonly latencyUs: Float64Array;
  /** Socket errors, unexpected closes, malformed or failed replies, a failed body check; warmup included. */
  readonly errors: number;
  /** Requests unanswered after timeoutMs; warmup included. */
  readonly timeouts: number;
  /** The first few error messages. */
  readonly errorSamples: readonly string[];
  /** Whether the first reply contained `expectBody`. */
  readonly verified: boolean;
  /** Connections opened over the run (== connections when keep-conn held up). */
  readonly connectionsOpened: number;
  /** This process's CPU time over the measured window, as a percentage of one core. */
  readonly clientCpuPercent: number;
}

const RECONNECT_DELAY_MS = 20;
const STOP_GRACE_MS = 1000;
const MAX_ERROR_SAMPLES = 5;

type Phase = 'warmup' | 'measure' | 'stop';

/** Runs one closed-loop load: warmup, measured window, then every connection closed. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return new Promise((resolve) => {
    let phase: Phase = 'warmup';
    let latencies = new Float64Array(1 << 16);
    let count = 0;
    let errors = 0;
    let timeouts = 0;
    let opened = 0;
    let verified = false;
    let checked = false;
    const samples: string[] = [];
    let t0 = 0;
    let t1 = 0;
    let cpu0 = process.cpuUsage();
    let cpuUs = 0;

    function noteError(message: string): void {
      errors++;
      if (samples.length < MAX_ERROR_SAMPLES) samples.push(message);
    }

    function record(us: number): void {
      if (count === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[count++] = us;
    }

    class Client {
      socket: Socket | null = null;
      parser: ReplyParser | null = null;
      sentAt = 0;
      inFlight = false;
      closed = false;
      #retry: NodeJS.Timeout | null = null;

      constructor(readonly verifier: boolean) {}

      open(): void {
        if (phase === 'stop') {
          this.finish();
          return;
        }
        const parser = options.newParser();
        if (this.verifier && !checked) parser.capture = true;
        this.parser = parser;
        opened++;
        const socket = connect(options.address as NetConnectOpts);
        this.socket = socket;
        if ('port' in options.address) socket.setNoDelay(true);
        if (options.keepConn) socket.once('connect', () => this.send());
        else {
          // The latency of a request on its own connection starts at the connect.
          this.sentAt = performance.now();
          this.inFlight = true;
          socket.once('connect', () => socket.write(options.request));
        }
        socket.on('data', (chunk: Buffer) => {
          if (socket === this.socket) this.onData(chunk);
        });
        socket.on('error', (error: Error) => {
          if (socket === this.socket) this.fail(`socket error: ${error.message}`);
        });
        socket.on('close', () => {
          if (socket !== this.socket) return;
          if (phase === 'stop' && !this.inFlight) this.finish();
          else this.fail(this.inFlight ? 'connection closed with a request in flight' : 'connection closed by the server');
        });
      }

      send(): void {
        this.sentAt = performance.now();
        this.inFlight = true;
        this.socket!.write(options.request);
      }

      onData(chunk: Buffer): void {
        const parser = this.parser!;
        const failedBefore = parser.failedReplies;
        const replies = parser.feed(chunk);
        if (parser.failedReplies !== failedBefore) noteError(`${parser.failedReplies - failedBefore} failed repl${parser.failedReplies - failedBefore === 1 ? 'y' : 'ies'}`);
        if (parser.error !== null) {
          this.fail(`bad reply: ${parser.error}`);
          return;
        }
        if (replies === 0) return;
        if (replies > 1 || !this.inFlight) {
          this.fail(`${replies} replies to one request`);
          return;
        }
        const now = performance.now();
        this.inFlight = false;
        if (phase === 'measure') record((now - this.sentAt) * 1000);
        if (this.verifier && !checked) this.check(parser);
        if (phase === 'stop') {
          this.socket!.end();
          this.finish();
        } else if (options.keepConn) {
          this.send();
        } else {
          // One request per connection: the server closes it; drop our side too and start the next request.
          const old = this.socket!;
          this.socket = null;
          old.destroy();
          this.open();
        }
      }

      check(parser: ReplyParser): void {
        checked = true;
        const body = Buffer.concat(parser.captured).toString('latin1');
        parser.captured.length = 0;
        verified = body.includes(options.expectBody);
        if (!verified) noteError(`first reply does not contain the expected body; got ${JSON.stringify(body.slice(0, 200))}`);
      }

      /** Drops the connection (a timeout is counted as such, anything else as an error) and reopens it soon. */
      fail(message: string, timeout = false): void {
        const socket = this.socket;
        this.socket = null;
        this.inFlight = false;
        socket?.destroy();
        if (phase === 'stop') {
          this.finish();
          return;
        }
        if (timeout) {
          timeouts++;
          if (samples.length < MAX_ERROR_SAMPLES) samples.push(message);
        } else {
          noteError(message);
        }
        this.#retry = setTimeout(() => {
          this.#retry = null;
          this.open();
        }, RECONNECT_DELAY_MS);
      }

      timedOut(now: number): boolean {
        return this.inFlight && now - this.sentAt > options.timeoutMs;
      }

      stop(): void {
        if (this.#retry !== null) {
          clearTimeout(this.#retry);
          this.#retry = null;
        }
        if (!this.inFlight) {
          this.socket?.end();
          this.finish();
        }
        // In flight: the reply (or the grace timer) finishes it.
      }

      kill(): void {
        this.socket?.destroy();
        this.socket = null;
        this.finish();
      }

      finish(): void {
        if (this.closed) return;
        this.closed = true;
        if (clients.every((c) => c.closed)) done();
      }
    }

    const clients: Client[] = [];
    for (let i = 0; i < options.connections; i++) clients.push(new Client(i === 0));

    const watchdog = setInterval(() => {
      const now = performance.now();
      for (const client of clients) {
        if (client.timedOut(now)) client.fail(`timeout: no reply after ${options.timeoutMs} ms`, true);
      }
    }, Math.max(10, Math.min(250, options.timeoutMs / 4)));

    let grace: NodeJS.Timeout | null = null;
    let resolved = false;
    function done(): void {
      if (resolved) return;
      resolved = true;
      clearInterval(watchdog);
      if (grace !== null) clearTimeout(grace);
      if (!checked) noteError('no reply received: the body was never checked');
      const latencyUs = latencies.slice(0, count);
      const elapsedMs = t1 - t0;
      resolve({
        requests: count,
        elapsedMs,
        reqPerSec: elapsedMs > 0 ? (count * 1000) / elapsedMs : 0,
        latencyUs,
        errors,
        timeouts,
        errorSamples: samples,
        verified,
        connectionsOpened: opened,
        clientCpuPercent: elapsedMs > 0 ? cpuUs / (elapsedMs * 10) : 0,
      });
    }

    setTimeout(() => {
      phase = 'measure';
      options.onMeasureStart?.();
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      setTimeout(() => {
        t1 = performance.now();
        const cpu = process.cpuUsage(cpu0);
        cpuUs = cpu.user + cpu.system;
        phase = 'stop';
        options.onMeasureEnd?.();
        grace = setTimeout(() => {
          for (const client of clients) client.kill();
        }, STOP_GRACE_MS);
        for (const client of clients) client.stop();
      }, options.durationMs);
    }, options.warmupMs);

    for (const client of clients) client.open();
  });
}

/** The value at quantile q (0..1) of sorted values (nearest rank). */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** All latencies of several runs in one sorted array. */
export function pooledSorted(runs: readonly Float64Array[]): Float64Array {
  let total = 0;
  for (const run of runs) total += run.length;
  const all = new Float64Array(total);
  let at = 0;
  for (const run of runs) {
    all.set(run, at);
    at += run.length;
  }
  return all.sort();
}
