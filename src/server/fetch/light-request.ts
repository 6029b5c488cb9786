// The Request a fetch handler gets: method, url, headers and signal come straight from the CGI params and the
// FastCGI request, made when first read; the real undici Request (its own AbortSignal, WebIDL conversions, a
// web stream over the body) is made only when the handler asks for something else. text(), json(),
// arrayBuffer() and bytes() read the body stream directly. Its prototype chain runs to the global Request, so
// `instanceof Request` holds; `new Request(lightRequest, init)` works where the global Request is the one
// installLightFetch installs (the `serve` command does).
import type { Params } from '../../wire/params';
import type { RequestSocket } from '../request-socket';
import { headersFromParams, requestUrl } from '../http-message';
import { NativeHeaders } from './light-response';
import { webBody } from './web-body';
import { bodyDisturbed, LightBody, lightBodySupported } from './light-body';

const NativeRequest: typeof Request = globalThis.Request;

const kSource = Symbol('fastcgi.lightRequest.source');
const kReal = Symbol('fastcgi.lightRequest.real');

interface Source {
  request: RequestSocket;
  method: string;
  url: string | null;
  origin: string;
  headers: Headers | null;
  /**
   * The body was read by text()/json()/arrayBuffer()/bytes(), or handed to the real Request; reads through a
   * real body stream show in its disturbed state instead (used()).
   */
  bodyUsed: boolean;
  /** `request.body`, once asked for. */
  web: ReadableStream<Uint8Array> | null;
}

interface LightFields {
  [kSource]: Source;
  [kReal]: Request | null;
}

/** requestOrigin rebuilds the client-facing origin from CGI params (REQUEST_SCHEME or HTTPS, then Host). */
export function requestOrigin(params: Params): string {
  const https = params.get('HTTPS');
  const scheme =
    params.get('REQUEST_SCHEME') ??
    (https !== undefined && https !== '' && https.toLowerCase() !== 'off' ? 'https' : 'http');
  let host = params.get('HTTP_HOST');
  if (host === undefined || host === '') {
    const name = params.get('SERVER_NAME') ?? 'localhost';
    const port = params.get('SERVER_PORT');
    host =
      port === undefined || port === '' || (scheme === 'https' ? port === '443' : port === '80')
        ? name
        : `${name}:${port}`;
  }
  return `${scheme}://${host}`;
}

// A path and query made only of characters a URL keeps as they are, with no dot segment and no backslash: the
// URL parser would return origin + path unchanged, so the string is the href. Anything else goes through URL.
const PLAIN_PATH = /^\/(?:[A-Za-z0-9\-_~!$&'()*+,;=:@%/?]|\.(?![./?]|$))*$/;
const PLAIN_ORIGIN = /^https?:\/\/[a-z0-9.-]+(?::\d{1,5})?$/;

function hasBody(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD';
}

/** The Request-like object handed to a fetch handler for `request`. */
export class LightRequest {
  declare [kSource]: Source;
  declare [kReal]: Request | null;

  constructor(request: RequestSocket) {
    const params = request.rawParams;
    const fields = this as unknown as LightFields;
    fields[kSource] = {
      request,
      method: params.get('REQUEST_METHOD') ?? 'GET',
      url: null,
      origin: requestOrigin(params),
      headers: null,
      bodyUsed: false,
      web: null,
    };
    fields[kReal] = null;
  }

  get method(): string {
    const real = (this as unknown as LightFields)[kReal];
    return real !== null ? real.method : (this as unknown as LightFields)[kSource].method;
  }

  get url(): string {
    const source = (this as unknown as LightFields)[kSource];
    if (source.url === null) {
      const path = requestUrl(source.request.rawParams);
      source.url =
        PLAIN_PATH.test(path) && PLAIN_ORIGIN.test(source.origin)
          ? source.origin + path
          : new URL(path, source.origin).href;
    }
    return source.url;
  }

  get headers(): Headers {
    const real = (this as unknown as LightFields)[kReal];
    if (real !== null) return real.headers;
    const source = (this as unknown as LightFields)[kSource];
    if (source.headers === null) {
      const headers = new NativeHeaders();
      const raw = headersFromParams(source.request.rawParams).rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        try {
          headers.append(raw[i]!, raw[i + 1]!);
        } catch {
          // A value fetch refuses (control bytes): the web server let it through; skip it, keep the request.
        }
      }
      source.headers = headers;
    }
    return source.headers;
  }

  get signal(): AbortSignal {
    const real = (this as unknown as LightFields)[kReal];
    return real !== null ? real.signal : (this as unknown as LightFields)[kSource].request.signal;
  }

  /**
   * The body as a web stream (zero-copy views of the STDIN pieces); null for GET and HEAD, as undici has it. A
   * LightBody: a real ReadableStream is made only when something reads it.
   */
  get body(): ReadableStream<Uint8Array> | null {
    const source = (this as unknown as LightFields)[kSource];
    // The stream the handler was given stays its body once a real Request exists (which got it, or, when it
    // was read already, an empty used one in its place): a native Request's body is one object throughout.
    if (source.web !== null) return source.web;
    const real = (this as unknown as LightFields)[kReal];
    if (real !== null) return real.body;
    if (!hasBody(source.method)) return null;
    if (source.bodyUsed) {
      // Read by text() and the like already: an empty stream, as a consumed body.
      source.web = new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
    } else if (lightBodySupported) {
      // A stream in name until something reads it (light-body.ts).
      source.web = new LightBody(source.request) as unknown as ReadableStream<Uint8Array>;
    } else source.web = webBody(source.request);
    return source.web;
  }

  get bodyUsed(): boolean {
    const real = (this as unknown as LightFields)[kReal];
    return real !== null ? real.bodyUsed : used((this as unknown as LightFields)[kSource]);
  }

  text(): Promise<string> {
    return readBody(this).then((bytes) => bytes.toString('utf8'));
  }

  json(): Promise<unknown> {
    return this.text().then((text) => JSON.parse(text) as unknown);
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return readBody(this).then((bytes) => {
      if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer as ArrayBuffer;
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    });
  }

  bytes(): Promise<Uint8Array> {
    return readBody(this).then((bytes) => new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
}

// Reads the whole body from the FastCGI request's stream (no web stream in between).
function readBody(light: LightRequest): Promise<Buffer> {
  const fields = light as unknown as LightFields;
  const real = fields[kReal];
  if (real !== null) return real.arrayBuffer().then((buffer) => Buffer.from(buffer));
  const source = fields[kSource];
  if (used(source) || source.web?.locked === true) {
    return Promise.reject(new TypeError('Body is unusable: Body has already been read'));
  }
  if (source.web !== null) return collect(source.web);
  source.bodyUsed = true;
  if (!hasBody(source.method)) return Promise.resolve(Buffer.alloc(0));
  const stream = source.request.body;
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
    });
    stream.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)));
    stream.once('error', reject);
  });
}

// Reads a whole web stream (request.body was asked for first, then text() or the like). The reader is never
// released: as undici leaves a consumed body, the stream stays locked, so a later read of it is refused.
async function collect(web: ReadableStream<Uint8Array>): Promise<Buffer> {
  const reader = web.getReader();
  const chunks: Buffer[] = [];
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    const chunk = read.value;
    chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

// Read by text() and the like (bodyUsed), or through the body stream.
function used(source: Source): boolean {
  return source.bodyUsed || (source.web !== null && bodyDisturbed(source.web));
}

/** The real Request behind a light one, made on first need. */
export function realRequest(light: LightRequest): Request {
  const fields = light as unknown as LightFields;
  let real = fields[kReal];
  if (real === null) {
    const source = fields[kSource];
    const read = used(source);
    const init: RequestInit & { duplex?: 'half' } = {
      method: source.method,
      headers: light.headers,
      signal: source.request.signal,
    };
    if (hasBody(source.method)) {
      // A stream a `for await` read to its end is unlocked again, but used: the real Request must not take it.
      if (source.web !== null && !source.web.locked && !read) init.body = source.web;
      else if (read || source.web !== null) {
        // Read already: the real Request gets an empty, used body, as a Request whose body was consumed.
        init.body = new ReadableStream({ start: (controller) => controller.close() });
      } else init.body = webBody(source.request);
      init.duplex = 'half';
    }
    real = new NativeRequest(light.url, init);
    if (read && init.body !== undefined && init.body !== source.web) void real.arrayBuffer().catch(() => {});
    source.bodyUsed = true;
    fields[kReal] = real;
  }
  return real;
}

/** Whether `value` is a light request. */
export function isLightRequest(value: unknown): value is LightRequest {
  return typeof value === 'object' && value !== null && kSource in value;
}

// Everything else a Request has goes to the real one.
const DELEGATED_GETTERS = [
  'cache',
  'credentials',
  'destination',
  'duplex',
  'integrity',
  'isHistoryNavigation',
  'isReloadNavigation',
  'keepalive',
  'mode',
  'redirect',
  'referrer',
  'referrerPolicy',
];
for (const name of DELEGATED_GETTERS) {
  Object.defineProperty(LightRequest.prototype, name, {
    get(this: LightRequest) {
      return (realRequest(this) as unknown as Record<string, unknown>)[name];
    },
    configurable: true,
  });
}
for (const name of ['blob', 'clone', 'formData']) {
  Object.defineProperty(LightRequest.prototype, name, {
    value: function (this: LightRequest, ...args: unknown[]) {
      const real = realRequest(this) as unknown as Record<string, (...a: unknown[]) => unknown>;
      return real[name]!(...args);
    },
    writable: true,
    configurable: true,
  });
}
Object.defineProperty(LightRequest.prototype, Symbol.for('nodejs.util.inspect.custom'), {
  value(this: LightRequest) {
    return realRequest(this);
  },
});
Object.setPrototypeOf(LightRequest.prototype, NativeRequest.prototype);

/**
 * The global Request the `serve` command installs: the native one, except that a light request given as the
 * input is replaced by its real Request first (undici checks the brand), and instanceof answers for every
 * Request, native or light.
 */
export class GlobalRequest extends NativeRequest {
  constructor(input: string | URL | Request, init?: RequestInit) {
    super(isLightRequest(input) ? realRequest(input) : input, init);
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof NativeRequest;
  }
}

export { NativeRequest };
