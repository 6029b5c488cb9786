// Client: the public face of the FastCGI client. It checks and encodes a request (params never split across
// PARAMS records, CONTENT_LENGTH always exact), prepares its body, and hands it to the pool.
import { Role, type RoleValue } from '../wire/constants';
import { encodeParams, type PairInput } from '../wire/pairs';
import { ErrorCode, InvalidArgumentError } from '../errors';
import type { BackendAddress } from '../wire/address';
import { Balancer } from './balancer';
import type { ClientStats } from './stats';
import { resolveBalancerOptions, type UpstreamOptions } from './balancer-options';
import { EMPTY_BODY, collectBody, prepareBodySync, type PreparedBody, type RequestBody } from './body';
import { ClientRequest, type RequestSettings, type RequestSpec } from './client-request';
import type { ClientResponse } from './client-response';
import { clientLimitError } from './errors';
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './options';
import { Pool } from './pool';
import {
  channels,
  roleLabel,
  tracingActive,
  tracingChannels,
  type ClientRequestContext,
} from '../diagnostics/channels';
import { build } from '../diagnostics/messages';

import type { ParamsInput, ParamValue } from './params-input';

export type { ParamsInput, ParamValue };

/** @internal Who started a request through requestFor(), and may abort it. */
export interface RequestOwner {
  attach(request: AttachedRequest): void;
}

/** @internal The request handed to RequestOwner.attach. */
export interface AttachedRequest {
  abort(message?: string): void;
  /** The backend it went to, once it is on a connection. */
  readonly upstream: string | undefined;
}

/** The role a request asks the application to play (FastCGI 1.0 §6). */
export type RoleName = 'responder' | 'authorizer' | 'filter';

/** Options of client.request(). */
export interface RequestOptions {
  /** CGI params (REQUEST_METHOD, SCRIPT_FILENAME, …). CONTENT_LENGTH (and FCGI_DATA_LENGTH) are set by the client. */
  params?: ParamsInput;
  /** The request body (STDIN). A stream of unknown length is read into memory first (bufferUnknownLength). */
  body?: RequestBody | null;
  /** The length of a stream body, when known: it is then streamed as it is read, and must match. */
  contentLength?: number;
  /** 'responder' (default), 'authorizer', 'filter', or a role number. */
  role?: RoleName | RoleValue | number;
  /** Filter role: the file to filter (DATA stream), sent after the body. */
  data?: RequestBody | null;
  /** The length of a stream `data`, when known. */
  dataLength?: number;
  /** Filter role: FCGI_DATA_LAST_MOD, the data's modification time. */
  dataLastModified?: Date | number;
  /** Aborts the request: queued, it is dropped; started, it is stopped with ABORT_REQUEST or by closing its connection. */
  signal?: AbortSignal;
  /** Overrides the client's requestTimeout for this request. */
  requestTimeout?: number;
  /** Overrides the client's bodyTimeout for this request. */
  bodyTimeout?: number;
  /** Called with each STDERR piece as it arrives (a view: copy it to keep it). */
  onStderr?: (chunk: Buffer) => void;
}

/**
 * Client sends requests to one FastCGI backend (php-fpm, fcgiwrap, a fastcgi-engine server) over a pool of
 * kept connections, or spreads them over several (`upstreams`). Create it with createClient.
 */
export class Client {
  /** The options in force, defaults applied. */
  readonly settings: Readonly<ResolvedClientOptions>;
  // One backend: its pool. Several: the balancer over their pools.
  readonly #pool: Pool | Balancer;
  readonly #requestSettings: RequestSettings;

  constructor(options: ClientOptions) {
    this.settings = resolveClientOptions(options);
    const balance = resolveBalancerOptions(options);
    const target = this.settings.target;
    this.#pool = target !== null ? new Pool({ ...this.settings, target }) : new Balancer(this.settings, balance!);
    this.#requestSettings = {
      requestTimeout: this.settings.requestTimeout,
      bodyTimeout: this.settings.bodyTimeout,
      maxHeaderBytes: this.settings.maxHeaderBytes,
      maxStderrBytes: this.settings.maxStderrBytes,
      highWaterMark: this.settings.highWaterMark,
    };
  }

  /** Connections, queue and in-flight counts now; with `upstreams`, also a line per upstream. */
  get stats(): ClientStats {
    return this.#pool.stats;
  }

  /**
   * addUpstream adds a backend to a client created with `upstreams`; a hostname adds one upstream per address
   * it resolves to. Throws InvalidArgumentError (a client with one `address`, a bad or repeated address).
   */
  addUpstream(upstream: UpstreamOptions): void {
    this.#balancer('addUpstream').addUpstream(upstream);
  }

  /**
   * removeUpstream takes a backend (as it was added) out of rotation: it gets no new requests, and those it has
   * finish. Resolves true once its connections have closed, false when no upstream has that address.
   */
  removeUpstream(address: BackendAddress): Promise<boolean> {
    try {
      return this.#balancer('removeUpstream').removeUpstream(address);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  #balancer(method: string): Balancer {
    if (this.#pool instanceof Balancer) return this.#pool;
    throw new InvalidArgumentError(
      `${method} needs a client created with upstreams: createClient({ upstreams: [{ address }, …] })`,
    );
  }

  /**
   * request sends one request. It resolves once the response's CGI header block has arrived, with the status,
   * headers and a streaming body; it rejects with a FastCGIError whose `code` names the cause:
   * FCGI_ERR_CONNECT, FCGI_ERR_CONNECT_TIMEOUT, FCGI_ERR_REQUEST_TIMEOUT, FCGI_ERR_QUEUE_FULL (with upstreams
   * also FCGI_ERR_QUEUE_TIMEOUT and FCGI_ERR_NO_UPSTREAM),
   * FCGI_ERR_BACKEND_CLOSED, FCGI_ERR_OVERLOADED / CANT_MPX_CONN / UNKNOWN_ROLE (BackendError),
   * FCGI_ERR_CGI_* (malformed response), FCGI_ERR_BAD_VERSION and other ProtocolErrors (malformed records),
   * FCGI_ERR_PAIR_TOO_LARGE (a param that cannot fit one record), FCGI_ERR_BODY_* and FCGI_ERR_REQUEST_ABORTED.
   */
  request(options: RequestOptions = {}): Promise<ClientResponse> {
    return this.#request(options, null);
  }

  /**
   * @internal request() for the gateway: `owner.attach` receives the request once it exists, to abort it when
   * the HTTP client leaves. An AbortController per request costs the gateway a quarter of its throughput.
   */
  requestFor(options: RequestOptions, owner: RequestOwner): Promise<ClientResponse> {
    return this.#request(options, owner);
  }

  #request(options: RequestOptions, owner: RequestOwner | null): Promise<ClientResponse> {
    try {
      const role = resolveRole(options.role);
      if (role === Role.AUTHORIZER && options.body != null) {
        throw new InvalidArgumentError('an Authorizer request has no body (FastCGI 1.0 §6.3)');
      }
      if (role !== Role.FILTER && options.data != null)
        throw new InvalidArgumentError('only a Filter request has a DATA stream (role: "filter")');
      const body =
        options.body == null ? EMPTY_BODY : prepareBodySync(options.body, options.contentLength, 'request body');
      const data =
        role !== Role.FILTER
          ? null
          : options.data == null
            ? EMPTY_BODY
            : prepareBodySync(options.data, options.dataLength, 'DATA stream');
      if (body !== null && (role !== Role.FILTER || data !== null))
        return this.#start(options, role, body, data, owner);
      return this.#collectThenStart(options, role, body, data, owner);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  async #collectThenStart(
    options: RequestOptions,
    role: number,
    body: PreparedBody | null,
    data: PreparedBody | null,
    owner: RequestOwner | null,
  ): Promise<ClientResponse> {
    const limit = this.settings.bufferUnknownLength;
    if (limit === false) {
      throw clientLimitError(
        ErrorCode.BODY_TOO_LARGE,
        'a stream body of unknown length needs bufferUnknownLength, or pass its length (contentLength / dataLength)',
        0,
        0,
      );
    }
    // Read before a connection is taken: a slow uploader must not hold a backend worker (caddy#5420).
    body ??= await collectBody(options.body as AsyncIterable<Uint8Array | string>, limit, 'request body');
    if (role === Role.FILTER)
      data ??= await collectBody(options.data as AsyncIterable<Uint8Array | string>, limit, 'DATA stream');
    return this.#start(options, role, body, data, owner);
  }

  #start(
    options: RequestOptions,
    role: number,
    body: PreparedBody,
    data: PreparedBody | null,
    owner: RequestOwner | null,
  ): Promise<ClientResponse> {
    const { params, method } = encodeRequestParams(options, role, body, data, this.settings.padRecords);
    const spec: RequestSpec = {
      params,
      role,
      body,
      data,
      signal: options.signal ?? null,
      onStderr: options.onStderr ?? null,
      replayable: this.settings.retryStaleConnection && isReplayable(method, body, data),
      input: options.params,
      observed: true,
    };
    const settings =
      options.requestTimeout === undefined && options.bodyTimeout === undefined
        ? this.#requestSettings
        : {
            ...this.#requestSettings,
            requestTimeout: options.requestTimeout ?? this.#requestSettings.requestTimeout,
            bodyTimeout: options.bodyTimeout ?? this.#requestSettings.bodyTimeout,
          };
    if (!tracingActive(tracingChannels.clientRequest)) return this.#submit(spec, settings, owner);
    const context: ClientRequestContext = { role: roleLabel(role), params: options.params };
    return tracingChannels.clientRequest.tracePromise(() => this.#submit(spec, settings, owner), context);
  }

  #submit(spec: RequestSpec, settings: RequestSettings, owner: RequestOwner | null): Promise<ClientResponse> {
    return new Promise<ClientResponse>((resolve, reject) => {
      const request = new ClientRequest(spec, settings, resolve, reject);
      if (channels.clientRequestCreate.hasSubscribers)
        channels.clientRequestCreate.publish(build.clientRequestCreate(request));
      owner?.attach(request);
      this.#pool.submit(request);
    });
  }

  /** close refuses new requests, fails queued ones, waits for those in flight, then closes every connection. */
  close(): Promise<void> {
    return this.#pool.close();
  }

  /** destroy closes every connection now; requests in flight fail with FCGI_ERR_CLIENT_CLOSED. */
  destroy(): void {
    this.#pool.destroy();
  }
}

/**
 * createClient returns a Client for the backend at `options.address`, or for the `upstreams` it balances
 * requests over; it connects on first use.
 */
export function createClient(options: ClientOptions): Client {
  return new Client(options);
}

function resolveRole(role: RequestOptions['role']): number {
  switch (role) {
    case undefined:
    case 'responder':
      return Role.RESPONDER;
    case 'authorizer':
      return Role.AUTHORIZER;
    case 'filter':
      return Role.FILTER;
    default:
      if (typeof role === 'number' && Number.isInteger(role) && role >= 0 && role <= 0xffff) return role;
      throw new InvalidArgumentError(
        `role must be 'responder', 'authorizer', 'filter' or a number from 0 to 65535, got ${String(role)}`,
      );
  }
}

// Params the client owns: the lengths it measured replace whatever the caller passed.
function isOwnedName(name: PairInput, role: number): boolean {
  if (typeof name !== 'string') return false;
  return name === 'CONTENT_LENGTH' || (role === Role.FILTER && name === 'FCGI_DATA_LENGTH');
}

// RFC 9110 §9.2.2: repeating these has the effect of sending them once.
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Whether the request may be sent again after its kept connection closed unanswered (retryStaleConnection). */
function isReplayable(method: PairInput | undefined, body: PreparedBody, data: PreparedBody | null): boolean {
  if (body.kind !== 'bytes' || (data !== null && data.kind !== 'bytes')) return false; // a stream is consumed
  return typeof method === 'string' && IDEMPOTENT_METHODS.has(method);
}

/** The PARAMS stream (request id 0, stamped when the request starts) and the REQUEST_METHOD it carries. */
function encodeRequestParams(
  options: RequestOptions,
  role: number,
  body: PreparedBody,
  data: PreparedBody | null,
  pad: boolean,
): { params: Buffer; method: PairInput | undefined } {
  const pairs: [PairInput, PairInput][] = [];
  const input = options.params;
  let method: PairInput | undefined;
  if (input !== undefined) {
    // Iterated once: a generator cannot be read twice.
    if (isIterable(input)) {
      for (const [name, value] of input) {
        if (isOwnedName(name, role)) continue;
        if (name === 'REQUEST_METHOD') method = value;
        pairs.push([name, value]);
      }
    } else {
      for (const name of Object.keys(input)) {
        const value = input[name];
        if (value === undefined || isOwnedName(name, role)) continue;
        pairs.push([name, typeof value === 'number' ? String(value) : value]);
      }
      const given = input.REQUEST_METHOD;
      if (typeof given === 'string') method = given;
    }
  }
  // RFC 3875 §4.1.2: CONTENT_LENGTH only with a body; an Authorizer gets none (FastCGI 1.0 §6.3).
  if (options.body != null && role !== Role.AUTHORIZER) pairs.push(['CONTENT_LENGTH', String(body.length)]);
  if (data !== null) {
    // FastCGI 1.0 §6.4: the Filter's PARAMS carry the DATA stream's length and modification time.
    pairs.push(['FCGI_DATA_LENGTH', String(data.length)]);
    const modified = options.dataLastModified;
    if (modified !== undefined) {
      const seconds = modified instanceof Date ? Math.floor(modified.getTime() / 1000) : Math.floor(modified);
      pairs.push(['FCGI_DATA_LAST_MOD', String(seconds)]);
    }
  }
  // Request id 0 for now: the connection stamps the real one when the request starts.
  return { params: encodeParams(0, pairs, { pad }), method };
}

function isIterable(value: ParamsInput): value is Iterable<readonly [PairInput, PairInput]> {
  return typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function';
}
