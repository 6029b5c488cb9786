// ClientResponse: what client.request() resolves to once the CGI header block is parsed; the body streams after.
import { Readable } from 'node:stream';
import type { CgiHead, CgiHeaders } from '../cgi/response';

/** How a request ended, known at END_REQUEST. */
export interface ClientCompletion {
  /** The application's exit status from END_REQUEST (0 = success). */
  readonly appStatus: number;
  /** END_REQUEST's protocolStatus: REQUEST_COMPLETE (0) when the promise resolves. */
  readonly protocolStatus: number;
  /** STDERR collected (up to maxStderrBytes), decoded as UTF-8. */
  readonly stderr: string;
}

/**
 * @internal Where a body goes without a stream (the gateway): each piece in order, then its end or the error
 * that cut it off. A piece may be a view into a socket read; it stays valid. `write` returning false holds the
 * backend connection's reading until ClientResponse.resumeBody().
 */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(): void;
  fail(error: Error): void;
}

/** @internal What a response reads from the request that produced it. */
export interface ResponseSource {
  readonly appStatus: number | null;
  readonly protocolStatus: number | null;
  readonly stderrText: string;
  completion(): Promise<ClientCompletion>;
  openBody(): ResponseBody;
  sinkBody(sink: BodySink): boolean;
  takeCompleteBody(copy: boolean): Buffer | null;
  onBodyRead(): void;
  onBodyDestroyed(error: Error | null): void;
}

function noop(): void {}

/**
 * The response body: a byte stream with backpressure down to the backend's socket. A failure (backend gone,
 * timeout) destroys it with the error; read it with for-await or pipeline() to see that error.
 */
export class ResponseBody extends Readable {
  readonly #source: ResponseSource;

  /** @internal */
  constructor(source: ResponseSource, highWaterMark: number) {
    super({ highWaterMark });
    this.#source = source;
    // The body can fail in the very chunk that completed the headers, before the caller has the response and
    // a chance to listen: without a listener that 'error' would crash the process. The error is kept in
    // `errored` and still reaches for-await, pipeline() and `completed`.
    this.on('error', noop);
  }

  override _read(): void {
    this.#source.onBodyRead();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#source.onBodyDestroyed(error);
    callback(error);
  }
}

/**
 * ClientResponse is a FastCGI response whose CGI header block has arrived. Read `body` (binary-safe, with
 * backpressure: an unread body holds its connection's reading) or destroy it to abort the request.
 */
export class ClientResponse {
  /** HTTP status from the CGI `Status:` header (302 for a bare `Location:`, else 200). */
  readonly status: number;
  /** Reason phrase from `Status:`, else the standard one. */
  readonly statusText: string;
  /** Headers by lower-case name; repeated names (and Set-Cookie) are arrays. */
  readonly headers: CgiHeaders;
  /** `[name, value, …]` as the application sent them, Status removed. */
  readonly rawHeaders: string[];
  readonly #source: ResponseSource;
  #variables: Record<string, string> | null = null;

  /** @internal */
  constructor(head: CgiHead, source: ResponseSource) {
    this.status = head.status;
    this.statusText = head.statusText;
    this.headers = head.headers;
    this.rawHeaders = head.rawHeaders;
    this.#source = source;
  }

  /** The body (STDOUT after the header block). It ends at the STDOUT terminator or END_REQUEST. */
  get body(): ResponseBody {
    return this.#source.openBody();
  }

  /** END_REQUEST's appStatus, or null until it arrives. */
  get appStatus(): number | null {
    return this.#source.appStatus;
  }

  /** END_REQUEST's protocolStatus, or null until it arrives. */
  get protocolStatus(): number | null {
    return this.#source.protocolStatus;
  }

  /** STDERR received so far (complete once `completed` resolves), UTF-8, capped at maxStderrBytes. */
  get stderr(): string {
    return this.#source.stderrText;
  }

  /**
   * Authorizer role (FastCGI 1.0 §6.3): the `Variable-NAME: value` headers, by NAME as sent. A 200 grants
   * access and these become request variables for the next stage.
   */
  get variables(): Record<string, string> {
    if (this.#variables === null) {
      const variables = Object.create(null) as Record<string, string>;
      for (let i = 0; i < this.rawHeaders.length; i += 2) {
        const name = this.rawHeaders[i]!;
        if (name.length > 9 && name.slice(0, 9).toLowerCase() === 'variable-')
          variables[name.slice(9)] = this.rawHeaders[i + 1]!;
      }
      this.#variables = variables;
    }
    return this.#variables;
  }

  /** Resolves at END_REQUEST with appStatus and STDERR; rejects with the error that ended the body early. */
  get completed(): Promise<ClientCompletion> {
    return this.#source.completion();
  }

  /**
   * @internal The whole body at once when all of it has already arrived and nobody has asked for the stream,
   * else null (then read the stream). For the gateway: most responses arrive with their END_REQUEST in one
   * socket read, and writing them with one res.end() skips building a stream and piping it. The bytes may be
   * views into socket chunks: write them at once or copy them.
   */
  takeCompleteBody(): Buffer | null {
    return this.#source.takeCompleteBody(false);
  }

  /**
   * @internal The body to `sink` instead of a stream, for the gateway: a Readable and pipe() cost more per piece
   * than the pieces' own writes (README, "Client and gateway"). False, and nothing done, when `body` was already
   * asked for: read that stream then.
   */
  sendBodyTo(sink: BodySink): boolean {
    return this.#source.sinkBody(sink);
  }

  /** @internal The sink has room again after its `write` returned false. */
  resumeBody(): void {
    this.#source.onBodyRead();
  }

  /** Reads the whole body into one Buffer. */
  async buffer(): Promise<Buffer> {
    // A copy: a view into a socket chunk would keep the whole chunk alive for as long as the caller keeps it.
    const whole = this.#source.takeCompleteBody(true);
    if (whole !== null) return whole;
    const chunks: Buffer[] = [];
    for await (const chunk of this.body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Reads the whole body as UTF-8 text. */
  async text(): Promise<string> {
    return (await this.buffer()).toString('utf8');
  }
}
