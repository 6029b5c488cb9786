// ClientRequest: one request from client.request() to END_REQUEST. It owns the request's timers, abort
// signal, CGI header parsing and response streams; the connection carrying it feeds it records and the pool
// queues it. It never touches a socket.
import { channels } from '../diagnostics/channels';
import { build } from '../diagnostics/messages';
import type { ParamsInput } from './params-input';
import { ProtocolStatus } from '../wire/constants';
import { ErrorCode, InvalidArgumentError, RequestAbortedError, TimeoutError } from '../errors';
import { CgiHeaderParser } from '../cgi/response';
import {
  ClientResponse,
  ResponseBody,
  type BodySink,
  type ClientCompletion,
  type ResponseSource,
} from './client-response';
import { BackendClosedError, BackendError } from './errors';
import type { PreparedBody } from './body';

/** @internal What a request needs from the connection carrying it. */
export interface RequestCarrier {
  /** Stop the request on the backend: ABORT_REQUEST, or close the connection. */
  cancel(request: ClientRequest): void;
  /** The response body is full: stop reading the socket. */
  pauseFor(request: ClientRequest): void;
  /** The response body has room again (or is gone). */
  resumeFor(request: ClientRequest): void;
  /** The backend it is connected to (a connection has one; for log lines). */
  readonly target?: { readonly label: string };
}

/** @internal What a request needs from the queue holding it. */
export interface RequestQueue {
  remove(request: ClientRequest): void;
}

/** @internal Told once when a request ends, however it ends (the balancer counts each upstream's requests). */
export interface RequestTracker {
  onRequestEnd(request: ClientRequest, error: Error | null): void;
}

/** @internal Per-request settings (client defaults, overridable per call). */
export interface RequestSettings {
  requestTimeout: number;
  bodyTimeout: number;
  maxHeaderBytes: number;
  maxStderrBytes: number;
  highWaterMark: number;
}

/** @internal What the request was built from. */
export interface RequestSpec {
  /** The whole PARAMS stream, encoded with request id 0 (stamped when the request starts). */
  params: Buffer;
  role: number;
  body: PreparedBody;
  /** The Filter role's DATA stream, else null. */
  data: PreparedBody | null;
  signal: AbortSignal | null;
  onStderr: ((chunk: Buffer) => void) | null;
  /** Safe to send again when a reused connection closes before answering (see retryStaleConnection). */
  replayable: boolean;
  /** The params as given to client.request(), for diagnostics messages; absent for the client's own probes, which publish none. */
  input?: ParamsInput | undefined;
  /** Whether the request publishes on the fastcgi:client:request:* channels (not health probes). */
  observed?: boolean;
}

const enum Phase {
  /** Not on a connection yet (queued, or about to be). */
  Waiting,
  /** On a connection; the header block is not complete. */
  Sent,
  /** The response resolved; the body is streaming. */
  Streaming,
  /** Ended (END_REQUEST) or failed; records still arriving for its id are dropped. */
  Done,
}

/** @internal */
export class ClientRequest implements ResponseSource {
  readonly spec: RequestSpec;
  readonly #settings: RequestSettings;
  readonly #resolve: (response: ClientResponse) => void;
  readonly #reject: (error: Error) => void;
  /** The connection carrying the request, once started. */
  carrier: RequestCarrier | null = null;
  /** The queue holding the request while it waits. */
  queue: RequestQueue | null = null;
  /** Told when the request ends; null unless a balancer sent it. */
  tracker: RequestTracker | null = null;
  /** The id on its connection, once started. */
  requestId = 0;
  /** Response bytes (STDOUT and STDERR) received, for error messages. */
  received = 0;
  appStatus: number | null = null;
  protocolStatus: number | null = null;
  #phase = Phase.Waiting;
  #parser: CgiHeaderParser | null = null;
  // Created when the caller first asks for `response.body`; until then chunks wait in #pending, so a response
  // taken whole (takeCompleteBody, the gateway's common case) never builds a stream.
  #body: ResponseBody | null = null;
  // Set instead of #body when the caller takes the body piece by piece (ClientResponse.sendBodyTo).
  #sink: BodySink | null = null;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  // The error that ended the body before its stream existed; the stream is created destroyed with it.
  #bodyError: Error | null = null;
  #bodyEnded = false;
  #paused = false;
  #replayed = false;
  #onReusedConnection = false;
  #timer: NodeJS.Timeout | null = null;
  #stderr: Buffer[] | null = null;
  #stderrBytes = 0;
  #error: Error | null = null;
  #completion: Promise<ClientCompletion> | null = null;
  #settle: ((error: Error | null) => void) | null = null;

  constructor(
    spec: RequestSpec,
    settings: RequestSettings,
    resolve: (response: ClientResponse) => void,
    reject: (error: Error) => void,
  ) {
    this.spec = spec;
    this.#settings = settings;
    this.#resolve = resolve;
    this.#reject = reject;
    if (settings.requestTimeout > 0) {
      this.#timer = setTimeout(onTimer, settings.requestTimeout, this);
      this.#timer.unref();
    }
    // An object listener (handleEvent) instead of a closure per request.
    spec.signal?.addEventListener('abort', this, { once: true });
    if (spec.signal?.aborted === true) this.handleEvent();
  }

  /** The backend the request was sent to (`host:port`, `unix:path`), once it is on a connection. */
  get upstream(): string | undefined {
    return this.carrier?.target?.label;
  }

  /** Whether the request is over for its caller (its id may still be held until END_REQUEST). */
  get isDone(): boolean {
    return this.#phase === Phase.Done;
  }

  /** Whether the response header block is still awaited. */
  get isAwaitingHeaders(): boolean {
    return this.#phase === Phase.Sent;
  }

  /** The connection starts the request; `reused`: it had already answered a request before this one. */
  assign(carrier: RequestCarrier, requestId: number, reused: boolean): void {
    this.carrier = carrier;
    this.queue = null;
    this.requestId = requestId;
    this.#onReusedConnection = reused;
    this.#phase = Phase.Sent;
  }

  // ---- Records from the connection ------------------------------------------------------------------------

  onStdout(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.#phase === Phase.Streaming) {
      this.#timer?.refresh();
      return this.#push(chunk);
    }
    if (this.#phase !== Phase.Sent) return;
    const parser = (this.#parser ??= new CgiHeaderParser(this.#settings.maxHeaderBytes));
    let bodyStart: number;
    try {
      bodyStart = parser.push(chunk);
    } catch (error) {
      return this.#finish(error as Error, true);
    }
    if (bodyStart === -1) return;
    this.#phase = Phase.Streaming;
    this.#parser = null;
    this.#armBodyTimer();
    const response = new ClientResponse(parser.head!, this);
    if (channels.clientRequestHeaders.hasSubscribers && this.spec.observed === true)
      channels.clientRequestHeaders.publish(build.clientRequestHeaders(this, response));
    this.#resolve(response);
    if (bodyStart < chunk.length) this.#push(chunk.subarray(bodyStart));
  }

  // The request's timer becomes the body's: with both timeouts alike (the defaults) the same Timeout restarts,
  // since a second one per request (made, inserted, unref'd, then cleared) is a cost every response pays.
  #armBodyTimer(): void {
    const timeout = this.#settings.bodyTimeout;
    if (this.#timer !== null) {
      if (timeout === this.#settings.requestTimeout) {
        this.#timer.refresh();
        return;
      }
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (timeout > 0) {
      this.#timer = setTimeout(onTimer, timeout, this);
      this.#timer.unref();
    }
  }

  /** The empty STDOUT record: the body is complete (END_REQUEST still brings the statuses). */
  onStdoutEnd(): void {
    if (this.#phase === Phase.Sent) return this.#failHeaders();
    if (this.#phase !== Phase.Streaming || this.#bodyEnded) return;
    this.#bodyEnded = true;
    this.#body?.push(null);
    this.#sink?.end();
    // Nothing more to stall on: the body is complete.
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    // No more body can come, so there is nothing left to hold back: reading must go on for END_REQUEST (which
    // may come in a later read), and an ended stream never calls _read() to resume it.
    this.#resumeReading();
  }

  // The reader is full: stop reading the connection until #resumeReading.
  #holdReading(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.carrier?.pauseFor(this);
  }

  #resumeReading(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.carrier?.resumeFor(this);
  }

  onStderr(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.#phase === Phase.Done) return;
    this.#timer?.refresh();
    const room = this.#settings.maxStderrBytes - this.#stderrBytes;
    if (room > 0) {
      // Copied: the piece is a view into a socket chunk.
      (this.#stderr ??= []).push(Buffer.from(chunk.subarray(0, room)));
    }
    this.#stderrBytes += chunk.length;
    this.spec.onStderr?.(chunk);
  }

  /** END_REQUEST: the request is over on the backend, whatever its state here. */
  onEnd(appStatus: number, protocolStatus: number): void {
    this.appStatus = appStatus;
    this.protocolStatus = protocolStatus;
    if (this.#phase === Phase.Done) return;
    if (protocolStatus !== ProtocolStatus.REQUEST_COMPLETE)
      return this.#finish(new BackendError(protocolStatus, appStatus, this.requestId), false);
    // php-fpm never sends the empty STDOUT record: END_REQUEST ends every stream (protocol.md §5).
    if (this.#phase === Phase.Sent) return this.#failHeaders();
    this.#finish(null, false);
  }

  /**
   * Whether the request can go out again after the connection it was sent on closed: nothing of its response
   * arrived, it is safe to repeat, and that connection had already carried a request (so the close is the
   * backend retiring an idle connection, not a reaction to this request). `anyConnection` drops the last
   * condition: a balancer sends the request to another upstream, as nginx's next upstream does.
   */
  canReplay(anyConnection = false): boolean {
    // Once only: a request whose every attempt kills its connection may be what kills it.
    return (
      (this.#onReusedConnection || anyConnection) &&
      !this.#replayed &&
      this.spec.replayable &&
      this.#phase === Phase.Sent &&
      this.received === 0
    );
  }

  /** Back to waiting for a connection, for the pool to start it again. */
  rewind(): void {
    this.#replayed = true;
    this.carrier = null;
    this.requestId = 0;
    this.#phase = Phase.Waiting;
    this.#parser = null;
  }

  /** The connection closed, reset, or met malformed input before this request's END_REQUEST. */
  onConnectionLost(error: Error | null): void {
    this.#finish(
      error ??
        new BackendClosedError(
          `the backend closed the connection before ending request ${this.requestId}` +
            (this.#phase === Phase.Sent
              ? ' (no complete response header block)'
              : ` (after ${this.received} bytes of response)`),
        ),
      false,
    );
  }

  /** The request could not be started or sent (queue full, connect failure, body source failure). */
  fail(error: Error, cancel = true): void {
    this.#finish(error, cancel);
  }

  #failHeaders(): void {
    try {
      (this.#parser ??= new CgiHeaderParser(this.#settings.maxHeaderBytes)).end();
    } catch (error) {
      return this.#finish(error as Error, false);
    }
  }

  #push(chunk: Buffer): void {
    if (this.#bodyEnded) return;
    const sink = this.#sink;
    if (sink !== null) {
      if (!sink.write(chunk)) this.#holdReading();
      return;
    }
    const body = this.#body;
    if (body === null) {
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      // Nobody reads yet: past highWaterMark the connection stops reading, as a full stream would make it.
      if (this.#pendingBytes >= this.#settings.highWaterMark) this.#holdReading();
      return;
    }
    if (body.destroyed) return;
    if (!body.push(chunk)) this.#holdReading();
  }

  // ---- ResponseSource ---------------------------------------------------------------------------------------

  /** @internal */
  onBodyRead(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.carrier?.resumeFor(this);
  }

  /** @internal The caller destroyed the body: abort the request unless it is already over. */
  onBodyDestroyed(error: Error | null): void {
    // A body read to its end is destroyed too (autoDestroy) while END_REQUEST may still be on its way.
    if (this.#phase === Phase.Done || (error === null && this.#bodyEnded)) return;
    this.#bodyEnded = true;
    this.#finish(error ?? new RequestAbortedError('the response body was destroyed before the request ended'), true);
  }

  /** @internal The body stream, created on first use with what has arrived so far. */
  openBody(): ResponseBody {
    if (this.#body !== null) return this.#body;
    const body = new ResponseBody(this, this.#settings.highWaterMark);
    this.#body = body;
    if (this.#sink !== null) {
      // The pieces go to the sink: a stream asked for too would wait for data that never comes.
      body.destroy(new InvalidArgumentError('the response body was already given to a sink (sendBodyTo)'));
      return body;
    }
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#bodyError !== null) {
      body.destroy(this.#bodyError);
      return body;
    }
    for (const chunk of pending) body.push(chunk);
    if (this.#bodyEnded) body.push(null);
    return body;
  }

  /**
   * @internal The body piece by piece to `sink`: what has arrived now, the rest as it comes. False, and nothing
   * done, when the body is already being read (its stream was asked for, or a sink took it).
   */
  sinkBody(sink: BodySink): boolean {
    if (this.#body !== null || this.#sink !== null) return false;
    this.#sink = sink;
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    // Reading was held while nobody read (#push); from here the sink's answers decide.
    this.#resumeReading();
    if (this.#bodyError !== null) {
      sink.fail(this.#bodyError);
      return true;
    }
    for (const chunk of pending) {
      // An ended body has nothing left to hold back, and END_REQUEST must still be read (onStdoutEnd).
      if (!sink.write(chunk) && !this.#bodyEnded) this.#holdReading();
    }
    if (this.#bodyEnded) sink.end();
    return true;
  }

  /**
   * @internal The whole body when all of it has arrived and its stream was never asked for, else null. Without
   * `copy` the bytes may be views into socket chunks: use them at once. A later `body` is empty.
   */
  takeCompleteBody(copy: boolean): Buffer | null {
    if (this.#body !== null || !this.#bodyEnded || this.#bodyError !== null || this.#phase === Phase.Sent) return null;
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#resumeReading();
    if (pending.length === 1) return copy ? Buffer.from(pending[0]!) : pending[0]!;
    return Buffer.concat(pending);
  }

  /** @internal */
  get stderrText(): string {
    if (this.#stderr === null) return '';
    return Buffer.concat(this.#stderr).toString('utf8');
  }

  /** @internal */
  completion(): Promise<ClientCompletion> {
    if (this.#completion === null) {
      if (this.#phase === Phase.Done)
        this.#completion = this.#error === null ? Promise.resolve(this.#completed()) : Promise.reject(this.#error);
      else {
        this.#completion = new Promise<ClientCompletion>((resolve, reject) => {
          this.#settle = (error) => (error === null ? resolve(this.#completed()) : reject(error));
        });
      }
    }
    return this.#completion;
  }

  #completed(): ClientCompletion {
    return { appStatus: this.appStatus ?? 0, protocolStatus: this.protocolStatus ?? 0, stderr: this.stderrText };
  }

  // ---- Abort and timers -----------------------------------------------------------------------------------

  /** @internal AbortSignal listener. */
  handleEvent(): void {
    const reason: unknown = this.spec.signal?.reason;
    const detail = reason instanceof Error ? `: ${reason.message}` : '';
    this.abort(`request aborted by its signal${detail}`);
  }

  /** Aborts the request as its signal would (the gateway's way: no AbortController per request). */
  abort(message = 'request aborted'): void {
    this.#finish(new RequestAbortedError(message), true);
  }

  /** @internal The request's one timer fired: requestTimeout until the header block, bodyTimeout after it. */
  onTimer(): void {
    if (this.#phase === Phase.Streaming) return this.#onBodyTimer();
    this.#timer = null;
    if (this.#phase === Phase.Waiting || this.#phase === Phase.Sent) {
      const where =
        this.#phase === Phase.Waiting ? 'while waiting for a connection' : 'waiting for the response header block';
      this.#finish(
        new TimeoutError(
          ErrorCode.REQUEST_TIMEOUT,
          `request timed out after ${this.#settings.requestTimeout} ms ${where} (requestTimeout)`,
          'request',
        ),
        true,
      );
    }
  }

  #onBodyTimer(): void {
    // A reader holding the body back is not a stalled backend: wait for it.
    if (this.#paused) {
      this.#timer!.refresh();
      return;
    }
    this.#timer = null;
    this.#finish(
      new TimeoutError(
        ErrorCode.BODY_TIMEOUT,
        `response body stalled for ${this.#settings.bodyTimeout} ms (bodyTimeout)`,
        'body',
      ),
      true,
    );
  }

  // Ends the request once: success (error null) ends the body; failure rejects or destroys the body, and with
  // `cancel` stops the request where it is (dequeue, or ABORT_REQUEST / close on its connection).
  #finish(error: Error | null, cancel: boolean): void {
    if (this.#phase === Phase.Done) return;
    const phase = this.#phase;
    this.#phase = Phase.Done;
    this.#error = error;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.spec.signal?.removeEventListener('abort', this);
    if (this.#paused) {
      this.#paused = false;
      this.carrier?.resumeFor(this);
    }
    if (error === null) {
      if (!this.#bodyEnded) {
        this.#bodyEnded = true;
        this.#body?.push(null);
        this.#sink?.end();
      }
    } else {
      if (phase === Phase.Waiting || phase === Phase.Sent) this.#reject(error);
      else if (!this.#bodyEnded) {
        this.#bodyEnded = true;
        if (this.#body !== null) this.#body.destroy(error);
        else if (this.#sink !== null) this.#sink.fail(error);
        else {
          this.#bodyError = error;
          this.#pending = [];
          this.#pendingBytes = 0;
        }
      }
      if (cancel) {
        if (phase === Phase.Waiting) this.queue?.remove(this);
        else this.carrier?.cancel(this);
      }
    }
    this.#settle?.(error);
    this.#settle = null;
    if (this.spec.observed === true) {
      if (error === null) {
        if (channels.clientRequestFinish.hasSubscribers)
          channels.clientRequestFinish.publish(build.clientRequestFinish(this));
      } else if (channels.clientRequestError.hasSubscribers)
        channels.clientRequestError.publish(build.clientRequestError(this, error));
    }
    const tracker = this.tracker;
    if (tracker !== null) {
      this.tracker = null;
      tracker.onRequestEnd(this, error);
    }
  }
}

function onTimer(request: ClientRequest): void {
  request.onTimer();
}
