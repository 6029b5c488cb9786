// A Response that costs almost nothing to make when the body is a string, bytes or nothing: what a fetch
// handler returns on nearly every request. undici's Response builds a ReadableStream, a Headers object and
// WebIDL conversions in its constructor (tens of µs here, more than the rest of a FastCGI request), so this
// class keeps the body and init as given and builds the real Response only when something other than status,
// statusText or headers is asked of it. The response writer reads the kept body directly (one write, exact
// Content-Length). Its prototype chain runs to the global Response, so `instanceof Response` holds; the
// `serve` command installs it as globalThis.Response before loading the application (opt out with
// FASTCGI_LIGHT_FETCH=0), as @hono/node-server does for its adapter.
const NativeResponse: typeof Response = globalThis.Response;
const NativeHeaders: typeof Headers = globalThis.Headers;

type HeadersInit = ConstructorParameters<typeof Headers>[0];
type BodyInit = ConstructorParameters<typeof Response>[0];

/** A body the writer can send without a stream: a string, bytes, or none. */
export type SimpleBody = string | Uint8Array | null;

/** What a light response keeps until (unless) the real Response is needed. */
interface LightState {
  status: number;
  statusText: string;
  body: SimpleBody;
  /** As given in init (a Headers object, a record or pairs), or the Headers made on first access. */
  headers: HeadersInit | undefined;
  /** The body was given as a string and init names no Content-Type: undici would add text/plain. */
  defaultTextType: boolean;
}

const kState = Symbol('fastcgi.lightResponse.state');
const kReal = Symbol('fastcgi.lightResponse.real');

interface LightFields {
  [kState]: LightState | null;
  [kReal]: Response | null;
}

// RFC 9110 token characters for header names, and values without CR, LF or NUL (what undici's Headers rejects).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;
const REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

function simpleBody(body: unknown): SimpleBody | undefined {
  if (body === null || body === undefined) return null;
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  return undefined;
}

// Whether `headers` (a record or pairs) is valid as undici would judge it, and whether it names Content-Type.
function checkHeaders(headers: unknown): { valid: boolean; hasType: boolean } {
  let hasType = false;
  const check = (name: unknown, value: unknown): boolean => {
    if (typeof name !== 'string' || !TOKEN.test(name)) return false;
    if (typeof value !== 'string' || BAD_VALUE.test(value)) return false;
    if (name.length === 12 && name.toLowerCase() === 'content-type') hasType = true;
    return true;
  };
  if (Array.isArray(headers)) {
    for (const pair of headers)
      if (!Array.isArray(pair) || pair.length !== 2 || !check(pair[0], pair[1])) return { valid: false, hasType };
    return { valid: true, hasType };
  }
  if (typeof headers === 'object' && headers !== null && Object.getPrototypeOf(headers) === Object.prototype) {
    for (const name in headers)
      if (!check(name, (headers as Record<string, unknown>)[name])) return { valid: false, hasType };
    return { valid: true, hasType };
  }
  return { valid: false, hasType };
}

/** The light Response; use it as the global `Response` (installLightFetch) or construct it directly. */
export class LightResponse {
  declare [kState]: LightState | null;
  declare [kReal]: Response | null;

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    const fields = this as unknown as LightFields;
    fields[kState] = null;
    fields[kReal] = null;
    const simple = simpleBody(body);
    const status = init?.status ?? 200;
    const statusText = init?.statusText ?? '';
    const headers = init?.headers;
    let light =
      simple !== undefined &&
      Number.isInteger(status) &&
      status >= 200 &&
      status <= 599 &&
      typeof statusText === 'string' &&
      REASON.test(statusText);
    // A null-body status (204, 205, 304) with a body is an error undici reports: let it.
    if (light && simple !== null && (status === 204 || status === 205 || status === 304)) light = false;
    let hasType = false;
    if (light && headers !== undefined && !(headers instanceof NativeHeaders)) {
      const checked = checkHeaders(headers);
      light = checked.valid;
      hasType = checked.hasType;
    } else if (light && headers instanceof NativeHeaders) hasType = headers.has('content-type');
    if (!light) {
      fields[kReal] = new NativeResponse(body, init);
      return;
    }
    fields[kState] = {
      status,
      statusText,
      body: simple as SimpleBody,
      headers,
      defaultTextType: typeof simple === 'string' && !hasType,
    };
  }

  // Response.json() and friends (inherited statics) make native responses: those are Responses too.
  static [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof NativeResponse;
  }

  get status(): number {
    const state = (this as unknown as LightFields)[kState];
    return state !== null ? state.status : realResponse(this).status;
  }

  get statusText(): string {
    const state = (this as unknown as LightFields)[kState];
    return state !== null ? state.statusText : realResponse(this).statusText;
  }

  get ok(): boolean {
    const status = this.status;
    return status >= 200 && status <= 299;
  }

  get headers(): Headers {
    const state = (this as unknown as LightFields)[kState];
    if (state === null) return realResponse(this).headers;
    if (!(state.headers instanceof NativeHeaders)) {
      const headers = new NativeHeaders(state.headers);
      if (state.defaultTextType) headers.set('content-type', 'text/plain;charset=UTF-8');
      state.headers = headers;
      state.defaultTextType = false;
    } else if (state.defaultTextType) {
      state.headers.set('content-type', 'text/plain;charset=UTF-8');
      state.defaultTextType = false;
    }
    return state.headers;
  }
}

/** The real Response behind a light one, made on first need (body streams, clone, text(), ...). */
function realResponse(response: LightResponse): Response {
  const fields = response as unknown as LightFields;
  let real = fields[kReal];
  if (real === null) {
    const state = fields[kState]!;
    const headers = state.headers instanceof NativeHeaders ? state.headers : new NativeHeaders(state.headers);
    real = new NativeResponse(state.body, { status: state.status, statusText: state.statusText, headers });
    fields[kReal] = real;
    fields[kState] = null;
  }
  return real;
}

// Everything else a Response has goes to the real one.
for (const name of ['body', 'bodyUsed', 'redirected', 'type', 'url']) {
  Object.defineProperty(LightResponse.prototype, name, {
    get(this: LightResponse) {
      return (realResponse(this) as unknown as Record<string, unknown>)[name];
    },
    configurable: true,
  });
}
for (const name of ['arrayBuffer', 'blob', 'bytes', 'clone', 'formData', 'json', 'text']) {
  Object.defineProperty(LightResponse.prototype, name, {
    value: function (this: LightResponse, ...args: unknown[]) {
      const real = realResponse(this) as unknown as Record<string, (...a: unknown[]) => unknown>;
      return real[name]!(...args);
    },
    writable: true,
    configurable: true,
  });
}
Object.defineProperty(LightResponse.prototype, Symbol.for('nodejs.util.inspect.custom'), {
  value(this: LightResponse) {
    return realResponse(this);
  },
});
Object.setPrototypeOf(LightResponse.prototype, NativeResponse.prototype);
Object.setPrototypeOf(LightResponse, NativeResponse);

/**
 * What the writer needs from a response: the status, reason, header pairs and a simple body, without making the
 * real Response; null when the response is not (or no longer) light.
 */
export function lightParts(response: Response): LightState | null {
  const state = (response as unknown as Partial<LightFields>)[kState];
  return state === undefined ? null : state;
}

/** The native Response and Headers classes, whatever the globals are now. */
export { NativeResponse, NativeHeaders };
