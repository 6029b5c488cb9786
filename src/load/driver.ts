// The load generator's FastCGI target: C connections, K request ids on each, carrying one pre-encoded request
// over and over, and replies read with the engine's Decoder. It exists because a load generator must cost less
// than what it loads: the public client's per-request promise, response object and body stream cost about
// twice the CPU of the engine server answering a hello world, so `bench` through it measured itself. Here a
// request is one socket write of bytes encoded at start-up, and a reply is counted from its records: status
// from the CGI header block (read by the client's own parser), body bytes, END_REQUEST's statuses.
import { connect, type Socket } from 'node:net';
import { CgiHeaderParser } from '../cgi/response';
import { ErrorCode, type FastCGIError } from '../errors';
import { parseAddress, type BackendAddress, type ConnectTarget } from '../wire/address';
import { ProtocolStatus, RecordType } from '../wire/constants';
import { Decoder } from '../wire/decoder';
import { refusalOf } from '../wire/names';
import type { PairInput } from '../wire/pairs';
import { encodeRequest } from '../wire/request-records';
import type { LoadSink, LoadTarget } from './target';

export type { LoadSink } from './target';

export interface LoadDriverOptions {
  /** Where the backend listens, in any spelling parseAddress reads. */
  readonly address: BackendAddress;
  readonly connections: number;
  /** Requests in flight per connection (request ids 1..K); 1 without keepConn. */
  readonly perConnection: number;
  /** FCGI_KEEP_CONN and reuse; false: a new connection per request, closed after END_REQUEST. */
  readonly keepConn: boolean;
  /** PARAMS, in order (CONTENT_LENGTH is set from `body`). */
  readonly params: readonly (readonly [PairInput, PairInput])[];
  readonly body: Buffer | null;
  /**
   * A request unanswered this long after it was sent, or still waiting for a free id this long after its start,
   * fails with FCGI_ERR_REQUEST_TIMEOUT; a sent one takes its connection down with it (a late reply must not be
   * taken for the next request on its id). Connecting is given min(timeoutMs, 10 s).
   */
  readonly timeoutMs: number;
  /** Keep the body of the first answered request (`firstReply`), to check what the backend runs. Default false. */
  readonly sampleFirstReply?: boolean;
}

const EMPTY = Buffer.alloc(0);

// After a failed connection, wait before the next one so a dead backend is not hammered in a tight loop.
const RECONNECT_DELAY_MS = 10;

/** One request id on a connection. */
class Slot {
  busy = false;
  startedAt = 0;
  /** When it was written (µs): the request timeout runs from here, not from a wait in the queue. */
  sentAt = 0;
  // The client's header-block parser, so the tool and the client agree on what a response says (status rules,
  // malformed and oversized blocks); null once the block is parsed.
  parser: CgiHeaderParser | null = null;
  status = 0;
  bodyBytes = 0;
  /** Why the response is unusable (a malformed header block): reported at END_REQUEST. */
  error: string | null = null;
  /** The body so far, while this request is the one sampled (LoadDriverOptions.sampleFirstReply). */
  sample: Buffer[] | null = null;

  constructor(readonly id: number) {}

  reset(startedAt: number, now: number): void {
    this.busy = true;
    this.startedAt = startedAt;
    this.sentAt = now;
    this.parser = new CgiHeaderParser();
    this.status = 0;
    this.bodyBytes = 0;
    this.error = null;
    this.sample = null;
  }
}

class LoadConnection {
  socket: Socket | null = null;
  decoder: Decoder | null = null;
  ready = false;
  /** When the current connect began (µs), for the connect timeout. */
  connectingSince = 0;
  readonly slots: Slot[];
  readonly #free: Slot[];
  readonly #driver: LoadDriver;

  constructor(driver: LoadDriver, perConnection: number) {
    this.#driver = driver;
    this.slots = Array.from({ length: perConnection }, (_, i) => new Slot(i + 1));
    this.#free = [...this.slots].reverse();
  }

  get hasRoom(): boolean {
    return this.#free.length > 0;
  }

  get freeIds(): number {
    return this.#free.length;
  }

  open(): void {
    const target = this.#driver.target;
    const socket =
      'path' in target ? connect({ path: target.path }) : connect({ host: target.host, port: target.port });
    if ('port' in target) socket.setNoDelay(true);
    this.#driver.onOpened();
    this.socket = socket;
    this.decoder = new Decoder(this, { collectParams: false });
    this.ready = false;
    this.connectingSince = performance.now() * 1000;
    socket.on('connect', () => {
      if (socket !== this.socket) return;
      this.ready = true;
      this.#driver.onReady(this);
    });
    socket.on('data', (chunk: Buffer) => {
      if (socket === this.socket) this.decoder!.push(chunk);
    });
    socket.on('error', () => {
      if (socket === this.socket) this.drop(this.ready ? ErrorCode.BACKEND_CLOSED : ErrorCode.CONNECT);
    });
    socket.on('close', () => {
      if (socket !== this.socket) return;
      this.drop(this.ready ? ErrorCode.BACKEND_CLOSED : ErrorCode.CONNECT);
    });
  }

  /** Sends one request on a free id. */
  send(startedAt: number): void {
    const slot = this.#free.pop()!;
    slot.reset(startedAt, performance.now() * 1000);
    if (this.#driver.takeSampleTurn()) slot.sample = [];
    this.socket!.write(this.#driver.requestBytes[slot.id - 1]!);
  }

  /**
   * Ends the connection: what is in flight fails with `code`, the `timedOut` ones with FCGI_ERR_REQUEST_TIMEOUT;
   * reopened later by the driver if it needs it.
   */
  drop(code: string, timedOut: readonly Slot[] = []): void {
    const socket = this.socket;
    const connecting = !this.ready;
    this.socket = null;
    this.ready = false;
    this.decoder?.stop();
    socket?.destroy();
    const lost = this.slots.filter((s) => s.busy);
    for (const slot of lost) {
      if (slot.sample !== null) this.#driver.onSampleLost();
      this.#release(slot);
    }
    this.#driver.onDropped(this, lost, code, connecting, timedOut);
  }

  #release(slot: Slot): void {
    slot.busy = false;
    this.#free.push(slot);
  }

  // ---- Decoder handler ----

  onRecord(type: number, requestId: number, content: Buffer): void {
    const slot = this.slots[requestId - 1];
    if (slot === undefined || !slot.busy) return;
    if (type === RecordType.STDOUT) return this.#stdout(slot, content);
    if (type !== RecordType.END_REQUEST) return;
    if (content.length < 8) return this.drop(ErrorCode.BAD_END_REQUEST);
    const protocolStatus = content[4]!;
    this.#release(slot);
    const driver = this.#driver;
    if (!driver.keepConn) {
      // One request per connection: close ours (php-fpm half-closes and waits for us, pitfall 9), before the
      // sink hears of it and submits the next request.
      const socket = this.socket;
      this.socket = null;
      this.ready = false;
      this.decoder?.stop();
      socket?.destroy();
    }
    const answered = protocolStatus === ProtocolStatus.REQUEST_COMPLETE && slot.error === null && slot.parser === null;
    if (slot.sample !== null) driver.onSampled(answered ? Buffer.concat(slot.sample) : null);
    if (protocolStatus !== ProtocolStatus.REQUEST_COMPLETE) {
      driver.sink.failed(slot.startedAt, refusalOf(protocolStatus).code, protocolStatus);
    } else if (!answered) {
      driver.sink.failed(slot.startedAt, slot.error ?? ErrorCode.CGI_HEADER_INCOMPLETE, null);
    } else {
      driver.sink.completed(slot.startedAt, slot.status, slot.bodyBytes);
    }
    driver.onFreed(this);
  }

  #stdout(slot: Slot, content: Buffer): void {
    const parser = slot.parser;
    if (parser === null) {
      slot.bodyBytes += content.length;
      slot.sample?.push(Buffer.from(content));
      return;
    }
    if (slot.error !== null) return; // the rest of a response already counted as failed
    let bodyStart: number;
    try {
      bodyStart = parser.push(content);
    } catch (error) {
      // The request has failed; its connection stays: the records up to END_REQUEST are read and dropped.
      slot.error = (error as FastCGIError).code;
      return;
    }
    if (bodyStart === -1) return;
    slot.parser = null;
    slot.status = parser.head!.status;
    slot.bodyBytes = content.length - bodyStart;
    slot.sample?.push(Buffer.from(content.subarray(bodyStart)));
  }

  onParams(): void {}

  onError(error: FastCGIError): void {
    this.drop(error.code);
  }
}

/**
 * LoadDriver keeps `connections` connections and starts each submitted request on a free request id, or queues
 * it until one frees up (the open loop's backlog: its wait counts in the latency, measured from `startedAt`).
 */
export class LoadDriver implements LoadTarget {
  /** Where the connections go. */
  readonly target: ConnectTarget;
  readonly keepConn: boolean;
  readonly sink: LoadSink;
  /** The whole request for id i + 1: BEGIN_REQUEST, PARAMS, STDIN, each stream ended. */
  readonly requestBytes: Buffer[];
  readonly #connections: LoadConnection[];
  readonly #timeoutMs: number;
  readonly #connectTimeoutUs: number;
  // Start times of requests waiting for a free id (the closed loop never queues; the open loop does when behind).
  readonly #queue: number[] = [];
  #queueHead = 0;
  #closed = false;
  readonly #watchdog: NodeJS.Timeout;
  readonly #reopen = new Set<LoadConnection>();
  #reopenTimer: NodeJS.Timeout | null = null;
  #opened = 0;
  // Sampling the first reply: 'wanted' until a request carries the sample, 'pending' while it does, then done.
  #sampling: 'off' | 'wanted' | 'pending' | 'done';
  #firstReply: Buffer | null = null;

  constructor(options: LoadDriverOptions, sink: LoadSink) {
    this.target = parseAddress(options.address);
    this.#sampling = options.sampleFirstReply === true ? 'wanted' : 'off';
    this.keepConn = options.keepConn;
    this.sink = sink;
    this.#timeoutMs = options.timeoutMs;
    this.#connectTimeoutUs = Math.min(options.timeoutMs, 10_000) * 1000;
    const perConnection = options.keepConn ? options.perConnection : 1;
    const pairs =
      options.body === null
        ? options.params
        : [...options.params, ['CONTENT_LENGTH', String(options.body.length)] as const];
    this.requestBytes = Array.from({ length: perConnection }, (_, i) =>
      encodeRequest({ requestId: i + 1, keepConn: options.keepConn, params: pairs, stdin: options.body ?? EMPTY }),
    );
    this.#connections = Array.from({ length: options.connections }, () => new LoadConnection(this, perConnection));
    // One timer for every request: a timer per request would cost more than the request.
    this.#watchdog = setInterval(() => this.#checkTimeouts(), Math.max(10, Math.min(250, options.timeoutMs / 4)));
  }

  /** Connections opened so far. */
  get connectionsOpened(): number {
    return this.#opened;
  }

  /** The body of the first answered request, with sampleFirstReply; else null. */
  get firstReply(): Buffer | null {
    return this.#firstReply;
  }

  /** @internal */
  onOpened(): void {
    this.#opened++;
  }

  /** @internal Whether the request being sent should carry the sample. */
  takeSampleTurn(): boolean {
    if (this.#sampling !== 'wanted') return false;
    this.#sampling = 'pending';
    return true;
  }

  /** @internal The sampled request ended: its body, or null when it was not answered (the next one tries). */
  onSampled(body: Buffer | null): void {
    this.#firstReply = body;
    this.#sampling = body === null ? 'wanted' : 'done';
  }

  /** @internal The sampled request went down with its connection. */
  onSampleLost(): void {
    this.#sampling = 'wanted';
  }

  /** Requests waiting for a free request id. */
  get queued(): number {
    return this.#queue.length - this.#queueHead;
  }

  /** Starts a request now on a free id, or queues it. */
  submit(startedAt: number): void {
    if (this.#closed) return;
    for (const connection of this.#connections) {
      if (connection.ready && connection.hasRoom) return connection.send(startedAt);
    }
    this.#queue.push(startedAt);
    this.#grow();
  }

  // Opens connections for what waits beyond the room of those already opening (connections open lazily).
  #grow(): void {
    let waiting = this.queued;
    for (const connection of this.#connections)
      if (connection.socket !== null && !connection.ready) waiting -= connection.freeIds;
    for (const connection of this.#connections) {
      if (waiting <= 0) return;
      if (connection.socket !== null || this.#reopen.has(connection)) continue;
      connection.open();
      waiting -= connection.freeIds;
    }
  }

  /** @internal A connection is up: give it what waits. */
  onReady(connection: LoadConnection): void {
    this.#feed(connection);
  }

  /** @internal A request ended: its id takes the next queued request. */
  onFreed(connection: LoadConnection): void {
    if (this.queued === 0) return;
    if (connection.ready) this.#feed(connection);
    else this.#grow();
  }

  /** @internal The connection broke: its requests failed; it is reopened shortly if requests wait. */
  onDropped(
    connection: LoadConnection,
    lost: Slot[],
    code: string,
    connecting: boolean,
    timedOut: readonly Slot[],
  ): void {
    // Held out of #grow() until the timer: the failures below make the caller submit again at once.
    if (!this.#closed) {
      this.#reopen.add(connection);
      this.#reopenTimer ??= setTimeout(() => {
        this.#reopenTimer = null;
        this.#reopen.clear();
        if (!this.#closed) this.#grow();
      }, RECONNECT_DELAY_MS);
    }
    for (const slot of lost)
      this.sink.failed(slot.startedAt, timedOut.includes(slot) ? ErrorCode.REQUEST_TIMEOUT : code, null);
    // A connection that never came up fails the queued requests it was opened for, as a refused connect
    // would fail them in any client: otherwise a dead backend would leave them waiting for ever.
    for (let n = connecting ? connection.freeIds : 0; n > 0 && this.queued > 0; n--)
      this.sink.failed(this.#dequeue(), code, null);
  }

  #feed(connection: LoadConnection): void {
    while (connection.ready && connection.hasRoom && this.queued > 0) {
      connection.send(this.#dequeue());
    }
  }

  #dequeue(): number {
    const startedAt = this.#queue[this.#queueHead++]!;
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#queueHead);
      this.#queueHead = 0;
    }
    return startedAt;
  }

  #checkTimeouts(): void {
    const now = performance.now() * 1000;
    const limit = now - this.#timeoutMs * 1000;
    for (const connection of this.#connections) {
      if (connection.socket !== null && !connection.ready) {
        if (now - connection.connectingSince > this.#connectTimeoutUs) connection.drop(ErrorCode.CONNECT_TIMEOUT);
        continue;
      }
      const late = connection.slots.filter((s) => s.busy && s.sentAt < limit);
      // Requests sharing the connection go down with it without having timed out themselves.
      if (late.length > 0) connection.drop(ErrorCode.REQUEST_ABORTED, late);
    }
    // Waiting for a free id is part of a request's time too: past the timeout it fails without being sent.
    while (this.queued > 0 && this.#queue[this.#queueHead]! < limit)
      this.sink.failed(this.#dequeue(), ErrorCode.REQUEST_TIMEOUT, null);
  }

  /** Stops: queued requests are dropped (not counted), connections closed. In-flight ones are the caller's to await. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#watchdog);
    if (this.#reopenTimer !== null) clearTimeout(this.#reopenTimer);
    this.#queue.length = 0;
    this.#queueHead = 0;
    for (const connection of this.#connections) {
      const socket = connection.socket;
      connection.socket = null;
      socket?.destroy();
    }
  }
}
