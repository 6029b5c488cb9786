// Connection: one web-server connection on the application side. It owns the request table and applies the
// protocol's rules (roles, multiplexing, KEEP_CONN, ABORT_REQUEST, GET_VALUES, unknown types), the limits and
// timeouts, and both directions of backpressure; it knows nothing of http objects (adapters build on the
// RequestSocket it hands out).
import type { Socket } from 'node:net';
import { Decoder } from '../wire/decoder';
import { RecordWriter } from '../wire/record-writer';
import { IdTable } from '../wire/id-table';
import type { Params } from '../wire/params';
import {
  ManagementVariable,
  ProtocolStatus,
  RecordType,
  Role,
  type ProtocolStatusValue,
  type RoleValue,
} from '../wire/constants';
import { encodeGetValuesResult, encodeUnknownType } from '../wire/records';
import { readPairBlock } from '../wire/pair-block';
import { ErrorCode, FastCGIError, LimitError, ProtocolError, TimeoutError } from '../errors';
import { RequestSocket, type AbortReason, type RequestOwner } from './request-socket';
import { BufferBudget, type BudgetOwner } from './buffer-budget';
import type { ResolvedOptions } from './options';
import { StatsRecorder } from './stats';
import { channels } from '../diagnostics/channels';
import { build } from '../diagnostics/messages';

/** What a Connection reports to its server. */
export interface ConnectionEvents {
  /** A request's params are complete: hand it to the application. */
  onRequest(request: RequestSocket, connection: Connection): void;
  /** Malformed input, a limit or a timeout closed the connection. */
  onClientError(error: FastCGIError, connection: Connection): void;
  /** The socket closed. */
  onClose(connection: Connection): void;
}

/** How long a connection ended by server.close() waits for the web server's FIN before it is destroyed. */
const DRAIN_LINGER_MS = 1000;

/**
 * How long any connection we ended (FIN sent, output all handed to the kernel) waits for the web server to close
 * its side before it is destroyed; checked by the idle timer, so at the latest when that next fires.
 */
const CLOSE_LINGER_MS = 5000;

function destroyLingering(socket: Socket): void {
  if (!socket.destroyed) socket.destroy();
}

/** One connection from a web server. */
export class Connection implements RequestOwner, BudgetOwner {
  readonly socket: Socket;
  /** When the connection was accepted (ms since the epoch); the oldest idle ones make room at maxConnections. */
  readonly acceptedAt = Date.now();
  readonly #options: ResolvedOptions;
  readonly #events: ConnectionEvents;
  readonly #decoder: Decoder;
  readonly #writer: RecordWriter;
  readonly #active = new IdTable<RequestSocket>();
  readonly #paused = new Set<RequestSocket>();
  // Reading also stops while the buffer budget is spent or the peer is not reading our output.
  #budgetPaused = false;
  #outputBlocked = false;
  #pausedSince = 0;
  readonly #budget: BufferBudget;
  #budgetClosed = false;
  // Requests whose params are complete but whose handler waits for the output queue to drain.
  readonly #deferred: RequestSocket[] = [];
  // The receive deadlines (paramsTimeout, bodyTimeout) are fields of each request, paramsSince and
  // bodyDeadline, not Maps of their own: a Map entry per request cost more than the rest of its bookkeeping
  // (src/wire/id-table.ts says by how much).
  #receiveTimer: NodeJS.Timeout | null = null;
  #receiveDue = 0;
  // No request in flight since: the first BEGIN_REQUEST (beginTimeout) or the next one (idleTimeout) is due.
  #idleSince = Date.now();
  #idleTimer: NodeJS.Timeout | null = null;
  // When we sent our FIN (#closeSending).
  #closedAt = 0;
  #closeWhenIdle = false;
  #draining = false;
  // server.close() on a connection that has not started a request yet: the wait for its first BEGIN_REQUEST.
  #firstRequestGrace: NodeJS.Timeout | null = null;
  #begun = false;
  #peerEnded = false;
  #closed = false;
  #handled = 0;
  readonly #stats: StatsRecorder;

  constructor(
    socket: Socket,
    events: ConnectionEvents,
    options: ResolvedOptions,
    serverBudget: BufferBudget | null = null,
    stats: StatsRecorder | null = null,
  ) {
    this.socket = socket;
    this.#options = options;
    this.#events = events;
    this.#stats = stats ?? new StatsRecorder(options.slowRequestThreshold);
    this.#budget = new BufferBudget(options.maxConnectionBufferBytes, serverBudget, this);
    this.#writer = new RecordWriter(socket, {
      pad: options.padRecords,
      highWaterMark: options.connectionHighWaterMark,
      sendTimeout: options.sendTimeout,
      onSendTimeout: () => this.#sendTimedOut(),
      counter: this.#stats,
    });
    this.#decoder = new Decoder(this, {
      scanner: options.scanner,
      maxParamsBytes: options.maxParamsBytes,
      maxParamsCount: options.maxParamsCount,
      budget: this.#budget,
    });
    socket.on('data', onSocketData);
    socket.on('end', onSocketEnd);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    (socket as SocketWithConnection)[kConnection] = this;
    const wait = this.#idleLimit();
    if (wait > 0) this.#armIdleTimer(wait);
  }

  /** Requests in flight. */
  get activeRequests(): number {
    return this.#active.size;
  }

  /** Output not yet taken by the kernel: records queued here and bytes the socket holds. */
  get unsentBytes(): number {
    return this.#writer.bufferedBytes;
  }

  /** Requests this connection has handed to the application. */
  get handledRequests(): number {
    return this.#handled;
  }

  // ---- Decoder events -------------------------------------------------------------------------------------

  /** @internal */
  onRecord(type: number, requestId: number, content: Buffer): void {
    if (requestId === 0) return this.#management(type, content);
    switch (type) {
      case RecordType.BEGIN_REQUEST:
        return this.#begin(requestId, content);
      case RecordType.ABORT_REQUEST:
        return this.#abort(requestId);
      case RecordType.STDIN: {
        const request = this.#active.get(requestId);
        if (request === undefined) return; // FastCGI 1.0 §3.3: records for inactive ids are ignored.
        if (!request.hasParams) {
          // libfcgi treats this as a protocol error too (ProcessHeader): the body cannot precede its params.
          return this.#fail(
            new ProtocolError(
              ErrorCode.STDIN_BEFORE_PARAMS_END,
              `STDIN for request ${requestId} arrived before its params ended`,
              { requestId, recordType: type },
            ),
          );
        }
        return request.onStdin(content);
      }
      case RecordType.DATA: {
        const request = this.#active.get(requestId);
        if (request !== undefined && request.hasParams) request.onData(content);
        return;
      }
      default:
        // PARAMS after the stream ended, records only an application sends, unknown types with an id:
        // the spec is silent; ignoring them keeps a confused peer from taking the process down.
        return;
    }
  }

  /** @internal */
  onParams(requestId: number, params: Params): void {
    const request = this.#active.get(requestId);
    if (request === undefined) {
      this.#budget.release(params.retainedBytes);
      return;
    }
    request.paramsSince = -1;
    if (this.#options.paramsEncoding === 'utf8') params.decodeUtf8();
    request.setParams(params);
    if (this.#options.bodyTimeout > 0 && !request.bodyEnded) {
      const deadline = Date.now() + this.#options.bodyTimeout;
      request.bodyDeadline = deadline;
      // Armed at BEGIN_REQUEST for paramsTimeout; a shorter bodyTimeout needs it sooner.
      if (this.#receiveTimer === null || this.#receiveDue > deadline) {
        if (this.#receiveTimer !== null) clearTimeout(this.#receiveTimer);
        this.#armReceiveTimer(this.#options.bodyTimeout);
      }
    }
    // The peer is not reading what we already owe it: its next handlers wait (node:http stops parsing
    // pipelined requests the same way), so a peer that never reads cannot make responses pile up.
    this.#checkOutput();
    if (this.#outputBlocked || this.#deferred.length > 0) {
      this.#deferred.push(request);
      return;
    }
    this.#start(request);
  }

  #start(request: RequestSocket): void {
    this.#handled++;
    if (this.#options.handlerTimeout > 0) startHandlerTimer(request, this.#options.handlerTimeout, this);
    if (channels.serverRequestStart.hasSubscribers) channels.serverRequestStart.publish(build.serverRequest(request));
    try {
      this.#events.onRequest(request, this);
    } catch (error) {
      // Adapters catch handler errors themselves; this is the last line that keeps the connection alive.
      this.#options.logger.error(
        `request handler failed outside its adapter: ${(error as Error)?.stack ?? String(error)}`,
        requestFields(request),
      );
      request.appStatus = 1;
      if (!request.writableEnded) request.end();
    }
  }

  /** @internal */
  onError(error: FastCGIError): void {
    this.#fail(error);
  }

  // ---- Records ----------------------------------------------------------------------------------------------

  #begin(requestId: number, content: Buffer): void {
    this.#begun = true;
    // Draining: the request the grace waited for is here; served (or refused) like any other, then we close.
    if (this.#firstRequestGrace !== null) this.#endFirstRequestGrace();
    if (this.#active.has(requestId)) {
      return this.#fail(
        new ProtocolError(
          ErrorCode.DUPLICATE_REQUEST_ID,
          `BEGIN_REQUEST for request ${requestId}, which is still in flight`,
          { requestId, recordType: RecordType.BEGIN_REQUEST },
        ),
      );
    }
    if (content.length < 3) {
      return this.#fail(
        new ProtocolError(ErrorCode.BAD_BEGIN_REQUEST, `BEGIN_REQUEST body is ${content.length} bytes; it must be 8`, {
          requestId,
          recordType: RecordType.BEGIN_REQUEST,
        }),
      );
    }
    const role = (content[0]! << 8) | content[1]!;
    const keepConn = (content[2]! & 1) !== 0;
    let refusal: ProtocolStatusValue | null = null;
    if (role !== Role.RESPONDER && role !== Role.AUTHORIZER && role !== Role.FILTER)
      refusal = ProtocolStatus.UNKNOWN_ROLE;
    else if (!this.#options.multiplex && this.#active.size > 0) refusal = ProtocolStatus.CANT_MPX_CONN;
    else if (this.#active.size >= this.#options.maxRequestsPerConnection) refusal = ProtocolStatus.OVERLOADED;
    if (refusal !== null) {
      this.#decoder.discardParams(requestId);
      this.#writer.endRequest(requestId, 0, refusal, false);
      this.#stats.protocolStatus(refusal);
      if (channels.serverRequestReject.hasSubscribers)
        channels.serverRequestReject.publish(build.serverRequestReject(this.socket, requestId, role, refusal));
      if (!keepConn) this.#closeWhenIdle = true;
      this.#maybeClose();
      return;
    }
    const request = new RequestSocket(this, requestId, role as RoleValue, keepConn, this.#options);
    this.#active.set(requestId, request);
    this.#stats.requestBegan();
    request.paramsSince = Date.now();
    if (this.#receiveTimer === null) {
      const first = this.#options.paramsTimeout > 0 ? this.#options.paramsTimeout : this.#options.bodyTimeout;
      if (first > 0) this.#armReceiveTimer(first);
    }
  }

  #abort(requestId: number): void {
    const request = this.#active.get(requestId);
    if (request === undefined) return;
    // FastCGI 1.0 §5.4: answer ABORT_REQUEST with END_REQUEST (the same terminators as a finished response);
    // the application then sees the abort, and its later output is dropped.
    this.#complete(request, request.appStatus, 'abort-request');
    request.abortFromPeer('abort-request');
  }

  #management(type: number, content: Buffer): void {
    if (type !== RecordType.GET_VALUES) {
      // FastCGI 1.0 §4.2: an unknown management record gets UNKNOWN_TYPE (libfcgi does this; php-fpm resets).
      this.#writer.raw(encodeUnknownType(type));
      return;
    }
    const { params: query, failure } = readPairBlock(content, this.#options.scanner);
    if (failure !== null) {
      return this.#fail(
        new ProtocolError(ErrorCode.PAIR_DATA_TRUNCATED, 'malformed GET_VALUES query', {
          recordType: type,
          requestId: 0,
        }),
      );
    }
    const answers: [string, string | number][] = [];
    for (let i = 0; i < query.size; i++) {
      const name = query.nameAt(i);
      const value = this.#managementValue(name);
      if (value !== undefined) answers.push([name, value]); // FastCGI 1.0 §4.1: unknown names are omitted.
    }
    this.#writer.raw(encodeGetValuesResult(answers));
  }

  #managementValue(name: string): string | number | undefined {
    // Own keys only: a query naming `toString` or `__proto__` must not read Object.prototype.
    const override = Object.hasOwn(this.#options.valueMap, name) ? this.#options.valueMap[name] : undefined;
    if (override !== undefined) return override;
    switch (name) {
      case ManagementVariable.MAX_CONNS:
        return this.#options.maxConnections;
      case ManagementVariable.MAX_REQS:
        // FastCGI 1.0 §4.1 means the whole application's limit, but multiplexing peers read it per connection
        // (HAProxy's fcgi-app puts that many streams on one connection), so answer what one connection takes.
        return this.#options.multiplex ? this.#options.maxRequestsPerConnection : this.#options.maxConnections;
      case ManagementVariable.MPXS_CONNS:
        return this.#options.multiplex ? 1 : 0;
      default:
        return undefined;
    }
  }

  // ---- RequestOwner ----------------------------------------------------------------------------------------

  /** @internal */
  writeStream(request: RequestSocket, type: number, chunk: Uint8Array): void {
    if (this.#active.get(request.requestId) !== request) return;
    this.#writer.stream(type, request.requestId, chunk);
  }

  /** @internal */
  writeText(request: RequestSocket, type: number, text: string, encoding: BufferEncoding, length: number): void {
    if (this.#active.get(request.requestId) !== request) return;
    this.#writer.streamText(type, request.requestId, text, encoding, length);
  }

  /** @internal */
  whenWritable(callback: () => void): void {
    if (this.#closed) callback();
    else this.#writer.whenWritable(callback);
  }

  /** @internal The response ended: terminators and END_REQUEST, then the KEEP_CONN rule. */
  complete(request: RequestSocket, appStatus: number): void {
    this.#complete(request, appStatus, null);
  }

  #complete(request: RequestSocket, appStatus: number, aborted: AbortReason | null): void {
    if (this.#active.get(request.requestId) !== request) return;
    this.#release(request);
    if (request.stderrWritten) this.#writer.endStream(RecordType.STDERR, request.requestId);
    this.#writer.endRequest(request.requestId, appStatus, ProtocolStatus.REQUEST_COMPLETE);
    this.#stats.protocolStatus(ProtocolStatus.REQUEST_COMPLETE);
    this.#ended(request, ProtocolStatus.REQUEST_COMPLETE, aborted);
    // FastCGI 1.0 §5.1: without FCGI_KEEP_CONN the application closes the connection after END_REQUEST.
    if (!request.keepConn) this.#closeWhenIdle = true;
    this.#maybeClose();
  }

  /** @internal */
  pauseInput(request: RequestSocket): void {
    if (this.#closed || this.#active.get(request.requestId) !== request) return;
    // One full body stops the whole connection: with several requests multiplexed on it, the others wait too
    // (head-of-line blocking), which is the price of bounded memory; web servers rarely multiplex.
    this.#paused.add(request);
    this.#updateReading();
  }

  /** @internal */
  resumeInput(request: RequestSocket): void {
    if (this.#paused.delete(request)) this.#updateReading();
  }

  /** @internal Body bytes held (or given back) by one of this connection's requests. */
  chargeBody(bytes: number): void {
    if (bytes > 0) {
      if (this.#budgetClosed) return;
      this.#budget.charge(bytes);
    } else this.#budget.release(-bytes);
    const exhausted = this.#budget.exhausted;
    if (exhausted !== this.#budgetPaused) {
      this.#budgetPaused = exhausted;
      if (exhausted) this.#budget.waitForRoom();
      this.#updateReading();
    }
  }

  /** @internal The server's budget has room again. */
  budgetAvailable(): void {
    this.chargeBody(0);
  }

  /** @internal The server's budget is spent and this connection holds the most of it. */
  evict(used: number, limit: number): void {
    this.#fail(
      new LimitError(
        ErrorCode.BUFFER_LIMIT,
        `the server holds ${used} bytes of params and bodies, over its budget of ${limit} (maxBufferBytes); closed the connection holding the most (${this.#budget.used} bytes)`,
        limit,
        used,
      ),
    );
  }

  /** @internal Body bytes arrived: the body timer wants a minimum rate (minBodyRate), not only a deadline. */
  bodyProgress(request: RequestSocket, bytes: number, ended: boolean): void {
    if (ended) {
      request.bodyDeadline = 0;
      return;
    }
    const deadline = request.bodyDeadline;
    if (deadline === 0) return;
    const rate = this.#options.minBodyRate;
    const extended = rate > 0 ? deadline + (bytes * 1000) / rate : deadline;
    request.bodyDeadline = Math.min(extended, Date.now() + this.#options.bodyTimeout);
  }

  // Reads while nothing holds it back; time spent not reading does not count against the peer's deadlines.
  #updateReading(): void {
    if (this.#closed) return;
    const pause = this.#paused.size > 0 || this.#budgetPaused || this.#outputBlocked;
    if (pause === this.socket.isPaused()) return;
    if (pause) {
      this.#pausedSince = Date.now();
      this.socket.pause();
    } else {
      const paused = Date.now() - this.#pausedSince;
      for (const request of this.#active.values()) {
        if (request.bodyDeadline !== 0) request.bodyDeadline += paused;
        if (request.paramsSince !== -1) request.paramsSince += paused;
      }
      this.socket.resume();
    }
  }

  // Output the peer has not read is over connectionHighWaterMark: stop reading (and starting handlers) until
  // it drains; the writer's sendTimeout closes the connection if it never does.
  #checkOutput(): void {
    if (this.#outputBlocked || this.#closed || this.#writer.bufferedBytes < this.#options.connectionHighWaterMark)
      return;
    this.#outputBlocked = true;
    this.#updateReading();
    this.#writer.whenWritable(() => this.#outputDrained());
  }

  #outputDrained(): void {
    this.#outputBlocked = false;
    if (this.#closed) return;
    while (this.#deferred.length > 0 && !this.#outputBlocked) {
      const request = this.#deferred.shift()!;
      if (this.#active.get(request.requestId) === request) this.#start(request);
      this.#checkOutput();
    }
    this.#updateReading();
  }

  #sendTimedOut(): void {
    this.#fail(
      new TimeoutError(
        ErrorCode.SEND_TIMEOUT,
        `the web server read none of the response for ${this.#options.sendTimeout} ms (sendTimeout)`,
        'send',
      ),
    );
  }

  // Takes a request out of the table; its unread body no longer holds the connection back.
  #release(request: RequestSocket): void {
    this.#active.delete(request.requestId);
    request.paramsSince = -1;
    request.bodyDeadline = 0;
    this.#decoder.discardParams(request.requestId);
    if (request.hasParams) this.#budget.release(request.rawParams.retainedBytes);
    request.markEnded();
    request.releaseBody();
    clearHandlerTimer(request);
    this.resumeInput(request);
    if (this.#active.size === 0) this.#idleSince = Date.now();
  }

  // A request the server took is over: stats, the slow-request warning, and the finish (and abort) messages.
  // `protocolStatus` is null when no END_REQUEST went out (the connection closed first).
  #ended(request: RequestSocket, protocolStatus: number | null, aborted: AbortReason | null): void {
    const duration = performance.now() - request.startTime;
    if (aborted !== null) this.#stats.aborted++;
    if (this.#stats.requestEnded(request.status, duration)) {
      this.#options.logger.warn(
        `slow request: ${Math.round(duration)} ms (slowRequestThreshold ${this.#options.slowRequestThreshold} ms)`,
        requestFields(request),
      );
    }
    if (aborted !== null && channels.serverRequestAbort.hasSubscribers)
      channels.serverRequestAbort.publish(build.serverRequestAbort(request, aborted));
    if (channels.serverRequestFinish.hasSubscribers)
      channels.serverRequestFinish.publish(build.serverRequestFinish(request, protocolStatus, duration, aborted));
  }

  /** @internal The handler ran past handlerTimeout. */
  handlerTimedOut(request: RequestSocket): void {
    this.#stats.timedOut++;
    if (channels.serverRequestError.hasSubscribers) {
      channels.serverRequestError.publish(
        build.serverRequestError(
          request,
          new TimeoutError(
            ErrorCode.HANDLER_TIMEOUT,
            `the request handler did not finish within ${this.#options.handlerTimeout} ms (handlerTimeout)`,
            'handler',
          ),
        ),
      );
    }
  }

  // ---- Lifecycle ---------------------------------------------------------------------------------------------

  /**
   * Ends the connection once no request is in flight (server.close(), closeIdleConnections()); KEEP_CONN no
   * longer keeps it: after the last END_REQUEST it is closed. With `firstRequestGraceMs` > 0, a connection
   * that has not started a request yet (nothing, or only part of its first record, has arrived) or is in the
   * middle of receiving a record waits up to that long for a BEGIN_REQUEST, which is then served: a web
   * server connects to send a request, and one accepted just before close() would otherwise be closed
   * unanswered. A connection idle between records after serving requests is closed at once (its web server
   * retries a failed kept connection on a fresh one).
   */
  drain(firstRequestGraceMs = 0): void {
    this.#closeWhenIdle = true;
    this.#draining = true;
    if (
      firstRequestGraceMs > 0 &&
      this.#firstRequestGrace === null &&
      !this.#closed &&
      !this.#peerEnded &&
      this.#active.size === 0 &&
      (!this.#begun || this.#decoder.midRecord)
    ) {
      this.#firstRequestGrace = setTimeout(onFirstRequestGrace, firstRequestGraceMs, this);
      this.#firstRequestGrace.unref();
    }
    this.#maybeClose();
  }

  /** @internal The grace given by drain() ended (timer, or a BEGIN_REQUEST arrived): close if nothing is in flight. */
  endFirstRequestGrace(): void {
    this.#endFirstRequestGrace();
    this.#maybeClose();
  }

  #endFirstRequestGrace(): void {
    if (this.#firstRequestGrace !== null) clearTimeout(this.#firstRequestGrace);
    this.#firstRequestGrace = null;
  }

  /** Closes at once: in-flight requests are aborted. */
  destroy(): void {
    this.socket.destroy();
  }

  #maybeClose(): void {
    if (this.#closed || this.#active.size > 0) return;
    if ((this.#closeWhenIdle && this.#firstRequestGrace === null) || this.#peerEnded) {
      this.#endFirstRequestGrace();
      this.#closeSending();
      // server.close(): a web server that pools idle connections without reading them (Apache enablereuse=on)
      // never answers our FIN, and the half-open socket would hold the shutdown until closeTimeout.
      if (this.#draining && !this.#peerEnded) setTimeout(destroyLingering, DRAIN_LINGER_MS, this.socket).unref();
    }
  }

  /**
   * Our side is done: FIN after what is queued. A BEGIN_REQUEST racing our FIN could never get its response
   * out, so the decoder stops; but the socket is read on (and what comes dropped) even if backpressure had
   * paused it, or the web server's FIN would never be seen and the connection would stay open for good
   * (bench/dos.ts half-closed-unread: a 1 MiB answer to a request whose body was not all read). A web server
   * that never closes its side is destroyed by the idle timer (CLOSE_LINGER_MS).
   */
  #closeSending(): void {
    this.#closed = true;
    this.#closedAt = Date.now();
    this.#decoder.stop();
    this.#writer.flush(true);
    if (this.socket.isPaused()) this.socket.resume();
    if (this.#idleTimer === null) this.#armIdleTimer(CLOSE_LINGER_MS);
  }

  #fail(error: FastCGIError): void {
    if (this.#closed || this.#budgetClosed) return;
    this.#decoder.stop();
    // What it held is given back now, not at 'close': a server over its budget evicts synchronously.
    this.#budgetClosed = true;
    this.#budget.releaseAll();
    this.#events.onClientError(error, this);
    this.#writer.flush();
    this.socket.destroy();
  }

  #armReceiveTimer(ms: number): void {
    this.#receiveDue = Date.now() + ms;
    this.#receiveTimer = setTimeout(onReceiveTimer, Math.max(1, ms), this);
    this.#receiveTimer.unref();
  }

  /** @internal paramsTimeout and bodyTimeout: one timer per connection, re-armed for the nearest deadline. */
  checkReceiveDeadlines(): void {
    this.#receiveTimer = null;
    if (this.#closed) return;
    const now = Date.now();
    let next = Infinity;
    // A connection we stopped reading is not the peer's fault: check again once it reads.
    const reading = !this.socket.isPaused();
    const paramsTimeout = this.#options.paramsTimeout;
    if (paramsTimeout > 0) {
      for (const request of this.#active.values()) {
        const began = request.paramsSince;
        if (began === -1) continue;
        if (reading && now - began >= paramsTimeout) {
          return this.#fail(
            new TimeoutError(
              ErrorCode.PARAMS_TIMEOUT,
              `params of request ${request.requestId} did not arrive within ${paramsTimeout} ms (paramsTimeout)`,
              'params',
            ),
          );
        }
        next = Math.min(next, began + paramsTimeout);
      }
    }
    for (const request of this.#active.values()) {
      const deadline = request.bodyDeadline;
      if (deadline === 0) continue;
      if (reading && now >= deadline) {
        return this.#fail(
          new TimeoutError(
            ErrorCode.BODY_TIMEOUT,
            `the body of request ${request.requestId} arrived slower than ${this.#options.minBodyRate} bytes/s or stalled for ${this.#options.bodyTimeout} ms (bodyTimeout, minBodyRate)`,
            'body',
          ),
        );
      }
      next = Math.min(next, deadline);
    }
    if (next !== Infinity) this.#armReceiveTimer(reading ? next - now : Math.max(1000, next - now));
  }

  // How long this connection may go with no request in flight before it is closed (0: no limit).
  #idleLimit(): number {
    const { beginTimeout, idleTimeout } = this.#options;
    if (this.#begun || beginTimeout <= 0) return idleTimeout;
    // A new connection that sends nothing is idle too: whichever limit is shorter applies.
    return idleTimeout > 0 ? Math.min(beginTimeout, idleTimeout) : beginTimeout;
  }

  #armIdleTimer(ms: number): void {
    this.#idleTimer = setTimeout(onIdleTimer, Math.max(1, ms), this);
    this.#idleTimer.unref();
  }

  /**
   * @internal beginTimeout and idleTimeout. Bytes do not restart them: a connection that trickles a record
   * and never completes a BEGIN_REQUEST is closed like a silent one. One timer per connection, re-armed when
   * it fires early rather than on every request.
   */
  checkIdle(): void {
    this.#idleTimer = null;
    if (this.#closed) return this.#checkLinger();
    const limit = this.#idleLimit();
    if (limit <= 0) return;
    // Never close with a request in flight: the web server may be waiting on it (pitfall: keep-alive races).
    if (this.#active.size > 0) return this.#armIdleTimer(limit);
    const idle = Date.now() - this.#idleSince;
    if (idle < limit) return this.#armIdleTimer(limit - idle);
    if (!this.#begun && limit === this.#options.beginTimeout) {
      this.#events.onClientError(
        new TimeoutError(
          ErrorCode.BEGIN_TIMEOUT,
          `no request began within ${limit} ms of connecting (beginTimeout)`,
          'begin',
        ),
        this,
      );
      this.destroy();
      return;
    }
    this.#events.onClientError(
      new TimeoutError(ErrorCode.IDLE_TIMEOUT, `connection idle for ${limit} ms (idleTimeout)`, 'idle'),
      this,
    );
    this.#closeSending();
  }

  // We ended our side: destroy the socket once the web server has had CLOSE_LINGER_MS to close its own after
  // our output went to the kernel (output still queued here is the peer not reading: sendTimeout's time).
  #checkLinger(): void {
    if (this.socket.destroyed || this.#closedAt === 0) return;
    const since = Date.now() - this.#closedAt;
    const queued = this.socket.writableLength > 0;
    const limit = queued ? (this.#options.sendTimeout > 0 ? this.#options.sendTimeout : Infinity) : CLOSE_LINGER_MS;
    if (since >= limit) {
      this.socket.destroy();
      return;
    }
    this.#armIdleTimer(Math.min(CLOSE_LINGER_MS, limit - since));
  }

  /** @internal */
  onSocketData(chunk: Buffer): void {
    this.#stats.bytesIn += chunk.length;
    this.#decoder.push(chunk);
    this.#checkOutput();
  }

  /**
   * @internal The web server closed its side. FastCGI ends requests with records, not with a half-close, and
   * web servers abort a request by closing (they never send ABORT_REQUEST): so EOF aborts what is in flight.
   */
  onSocketEnd(): void {
    this.#peerEnded = true;
    if (this.#decoder.midRecord && !this.#decoder.stopped) {
      this.#events.onClientError(
        new ProtocolError(ErrorCode.UNEXPECTED_EOF, 'the web server closed the connection inside a record'),
        this,
      );
    }
    for (const request of this.#active.values()) {
      this.#release(request);
      this.#ended(request, null, 'connection-closed');
      request.abortFromPeer('connection-closed');
    }
    this.#maybeClose();
  }

  /** @internal */
  onSocketClose(): void {
    this.#closed = true;
    this.#decoder.stop();
    this.#writer.discard();
    if (this.#receiveTimer !== null) clearTimeout(this.#receiveTimer);
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#endFirstRequestGrace();
    const requests = this.#active.values();
    this.#active.clear();
    this.#deferred.length = 0;
    for (const request of requests) {
      request.markEnded();
      clearHandlerTimer(request);
      this.#ended(request, null, 'connection-closed');
      request.abortFromPeer('connection-closed');
    }
    this.#budgetClosed = true;
    this.#budget.releaseAll();
    this.#events.onClose(this);
  }
}

// ---- Module-level listeners (no closure per connection) --------------------------------------------------

const kConnection = Symbol('fastcgi.connection');
interface SocketWithConnection extends Socket {
  [kConnection]: Connection;
}

function onSocketData(this: Socket, chunk: Buffer): void {
  (this as SocketWithConnection)[kConnection].onSocketData(chunk);
}
function onSocketEnd(this: Socket): void {
  (this as SocketWithConnection)[kConnection].onSocketEnd();
}
function onSocketError(this: Socket): void {
  // EPIPE / ECONNRESET: the web server went away. 'close' follows and aborts what was in flight.
}
function onSocketClose(this: Socket): void {
  (this as SocketWithConnection)[kConnection].onSocketClose();
}
function onReceiveTimer(connection: Connection): void {
  connection.checkReceiveDeadlines();
}
function onIdleTimer(connection: Connection): void {
  connection.checkIdle();
}
function onFirstRequestGrace(connection: Connection): void {
  connection.endFirstRequestGrace();
}

const kHandlerTimer = Symbol('fastcgi.handlerTimer');
interface TimedRequest extends RequestSocket {
  [kHandlerTimer]?: NodeJS.Timeout;
}
function startHandlerTimer(request: RequestSocket, ms: number, connection: Connection): void {
  const timer = setTimeout(onHandlerTimeout, ms, request, connection);
  timer.unref();
  (request as TimedRequest)[kHandlerTimer] = timer;
}
function clearHandlerTimer(request: RequestSocket): void {
  const timer = (request as TimedRequest)[kHandlerTimer];
  if (timer !== undefined) clearTimeout(timer);
}
function onHandlerTimeout(request: RequestSocket, connection: Connection): void {
  connection.handlerTimedOut(request);
  // Adapters answer 'timeout' (503 if nothing was sent); the signal tells the handler to stop.
  request.abortFromPeer('timeout');
  request.emit('timeout');
}

/** @internal The fields a log line about a request carries: its id and REQUEST_URI (and method, when known). */
export function requestFields(request: RequestSocket): { requestId: number; method?: string; uri?: string } {
  if (!request.hasParams) return { requestId: request.requestId };
  const params = request.rawParams;
  return { requestId: request.requestId, method: params.get('REQUEST_METHOD'), uri: params.get('REQUEST_URI') };
}
