// An HTTP/1.1 load target for the benchmarks' HTTP rows (the node:http reference row, nginx and the gateway
// in front of php-fpm): C connections, one request in flight on each, one pre-encoded request written per
// request, replies framed by Content-Length (a chunked reply is an error: the handlers measured never send
// one). It reports to the same sink as the FastCGI driver (src/load/driver.ts), so src/load/run.ts drives both.
import { connect, type Socket } from 'node:net';
import { ErrorCode } from '../../src/errors';
import type { LoadSink, LoadTarget } from '../../src/load/target';
import { parseAddress, type BackendAddress, type ConnectTarget } from '../../src/wire/address';

export interface HttpTargetOptions {
  /** Where the server listens, in any spelling parseAddress reads. */
  readonly address: BackendAddress;
  /** The whole request, written once per request. */
  readonly request: Buffer;
  readonly connections: number;
  /** true: connections carry request after request (HTTP/1.1 keep-alive); false: one per request. */
  readonly keepConn: boolean;
  /** A request unanswered this long fails (FCGI_ERR_REQUEST_TIMEOUT) and takes its connection down. */
  readonly timeoutMs: number;
  /** Keep the first answered reply's body (`firstReply`). */
  readonly sampleFirstReply?: boolean;
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const MAX_HEAD = 64 * 1024;
// A dropped connection waits this long before it is opened again, so a dead server is not hammered.
const REOPEN_DELAY_MS = 10;
/** A reply the target cannot frame. */
export const BAD_REPLY = 'HTTP_BAD_REPLY';

/** Frames HTTP/1.1 responses out of socket chunks; calls `onReply` for each whole one. */
export class HttpReplyParser {
  error: string | null = null;
  #carry: Buffer | null = null;
  // -1 while reading the head.
  #bodyLeft = -1;
  #status = 0;
  #bodyBytes = 0;
  /** While set, the body of the current reply is kept here. */
  sample: Buffer[] | null = null;

  constructor(private readonly onReply: (status: number, bodyBytes: number) => void) {}

  feed(chunk: Buffer): void {
    let data = chunk;
    if (this.#carry !== null) {
      data = Buffer.concat([this.#carry, chunk]);
      this.#carry = null;
    }
    let i = 0;
    const n = data.length;
    while (i < n) {
      if (this.#bodyLeft < 0) {
        const end = data.indexOf(HEAD_END, i);
        if (end < 0) {
          if (n - i > MAX_HEAD) this.error = 'response head over 64 KB';
          else this.#carry = data.subarray(i);
          return;
        }
        const head = data.toString('latin1', i, end);
        const length = CONTENT_LENGTH.exec(head);
        if (!head.startsWith('HTTP/1.') || length === null) {
          this.error = `response without Content-Length: ${JSON.stringify(head.slice(0, 80))}`;
          return;
        }
        this.#status = Number(head.slice(9, 12));
        this.#bodyLeft = this.#bodyBytes = Number(length[1]);
        i = end + HEAD_END.length;
      }
      const take = Math.min(this.#bodyLeft, n - i);
      this.sample?.push(Buffer.from(data.subarray(i, i + take)));
      i += take;
      this.#bodyLeft -= take;
      if (this.#bodyLeft > 0) return;
      this.#bodyLeft = -1;
      this.onReply(this.#status, this.#bodyBytes);
    }
  }
}

class HttpConnection {
  socket: Socket | null = null;
  ready = false;
  busy = false;
  startedAt = 0;
  sentAt = 0;
  parser: HttpReplyParser | null = null;
  /** After a drop, not reopened before this time (performance.now() ms). */
  holdUntil = 0;

  constructor(readonly target: HttpTarget) {}

  open(): void {
    const address = this.target.address;
    const socket =
      'path' in address ? connect({ path: address.path }) : connect({ host: address.host, port: address.port });
    if ('port' in address) socket.setNoDelay(true);
    this.socket = socket;
    this.ready = false;
    this.parser = new HttpReplyParser((status, bodyBytes) => this.target.onReply(this, status, bodyBytes));
    this.target.connectionsOpened++;
    socket.on('connect', () => {
      if (socket !== this.socket) return;
      this.ready = true;
      this.target.onReady(this);
    });
    socket.on('data', (chunk: Buffer) => {
      if (socket !== this.socket) return;
      this.parser!.feed(chunk);
      if (this.parser!.error !== null && socket === this.socket) this.drop(BAD_REPLY);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (socket === this.socket) this.drop(this.ready ? ErrorCode.BACKEND_CLOSED : ErrorCode.CONNECT);
    });
  }

  send(startedAt: number, sample: boolean): void {
    this.busy = true;
    this.startedAt = startedAt;
    this.sentAt = performance.now();
    this.parser!.sample = sample ? [] : null;
    this.socket!.write(this.target.options.request);
  }

  /** Ends the connection; a request in flight fails with `code`. */
  drop(code: string): void {
    const socket = this.socket;
    const connecting = !this.ready;
    this.socket = null;
    this.ready = false;
    socket?.destroy();
    const wasBusy = this.busy;
    this.busy = false;
    this.holdUntil = performance.now() + REOPEN_DELAY_MS;
    this.target.onDropped(this, wasBusy ? code : null, connecting ? code : null);
  }
}

/** HttpTarget: a LoadTarget speaking HTTP/1.1 (see the file comment). */
export class HttpTarget implements LoadTarget {
  readonly address: ConnectTarget;
  connectionsOpened = 0;
  #firstReply: Buffer | null = null;
  #sampling: boolean;
  readonly #connections: HttpConnection[];
  readonly #queue: number[] = [];
  readonly #watchdog: NodeJS.Timeout;
  #closed = false;

  constructor(
    readonly options: HttpTargetOptions,
    readonly sink: LoadSink,
  ) {
    this.address = parseAddress(options.address);
    this.#sampling = options.sampleFirstReply === true;
    this.#connections = Array.from({ length: options.connections }, () => new HttpConnection(this));
    this.#watchdog = setInterval(
      () => {
        const late = performance.now() - options.timeoutMs;
        for (const c of this.#connections) if (c.busy && c.sentAt < late) c.drop(ErrorCode.REQUEST_TIMEOUT);
      },
      Math.max(10, Math.min(250, options.timeoutMs / 4)),
    );
  }

  get firstReply(): Buffer | null {
    return this.#firstReply;
  }

  submit(startedAt: number): void {
    if (this.#closed) return;
    this.#queue.push(startedAt);
    this.#pump();
  }

  // Gives queued requests to idle connections, opening connections (lazily, up to the count) for the rest.
  #pump(): void {
    const now = performance.now();
    for (const c of this.#connections) {
      if (this.#queue.length === 0) return;
      if (c.socket === null) {
        if (now >= c.holdUntil) c.open();
      } else if (c.ready && !c.busy) c.send(this.#queue.shift()!, this.#takeSample());
    }
  }

  #takeSample(): boolean {
    const take = this.#sampling;
    this.#sampling = false;
    return take;
  }

  /** @internal */
  onReady(_connection: HttpConnection): void {
    this.#pump();
  }

  /** @internal */
  onReply(connection: HttpConnection, status: number, bodyBytes: number): void {
    if (!connection.busy) return connection.drop(BAD_REPLY);
    const sample = connection.parser!.sample;
    if (sample !== null) {
      this.#firstReply = Buffer.concat(sample);
      connection.parser!.sample = null;
    }
    connection.busy = false;
    const startedAt = connection.startedAt;
    if (!this.options.keepConn) {
      const socket = connection.socket;
      connection.socket = null;
      socket?.destroy();
    }
    this.sink.completed(startedAt, status, bodyBytes);
    if (!this.#closed) this.#pump();
  }

  /** @internal */
  onDropped(connection: HttpConnection, inFlight: string | null, connectFailure: string | null): void {
    if (connection.parser?.sample != null && this.#firstReply === null) this.#sampling = true;
    if (inFlight !== null) this.sink.failed(connection.startedAt, inFlight, null);
    // A connection that never came up fails a queued request rather than leave it waiting for ever.
    if (connectFailure !== null && !this.#closed && this.#queue.length > 0)
      this.sink.failed(this.#queue.shift()!, connectFailure, null);
    if (!this.#closed) setTimeout(() => this.#closed || this.#pump(), REOPEN_DELAY_MS);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#watchdog);
    this.#queue.length = 0;
    for (const c of this.#connections) {
      const socket = c.socket;
      c.socket = null;
      socket?.destroy();
    }
  }
}
