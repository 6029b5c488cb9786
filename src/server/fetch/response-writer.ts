// Writes a fetch Response to a FastCGI request as a CGI response: `Status: NNN Reason`, the headers (each
// Set-Cookie on its own line), a blank line and the body. A light response's string or bytes go out in one
// write with an exact Content-Length; a stream is read chunk by chunk with backpressure from the request, and a
// stream that turns out to hold one chunk still gets an exact Content-Length.
import { STATUS_CODES } from 'node:http';
import type { RequestSocket } from '../request-socket';
import { lightParts, NativeHeaders } from './light-response';

type HeadersInit = ConstructorParameters<typeof Headers>[0];

const CRLF = '\r\n';

/** Whether the writer has written the response head of `request` (a failure after it cuts the response). */
export function headWritten(request: RequestSocket): boolean {
  return request.headWritten;
}

function statusLine(status: number, statusText: string): string {
  return `Status: ${status} ${statusText !== '' ? statusText : (STATUS_CODES[status] ?? 'Unknown')}${CRLF}`;
}

// Header lines from a Headers object (undici validated names and values; names come lower-cased), without
// Content-Length, which the writer adds when it knows the length; Transfer-Encoding is the web server's.
function linesFromHeaders(headers: Headers): string {
  let lines = '';
  for (const [name, value] of headers) {
    if (name === 'set-cookie' || name === 'content-length' || name === 'transfer-encoding') continue;
    lines += `${name}: ${value}${CRLF}`;
  }
  for (const cookie of headers.getSetCookie()) lines += `set-cookie: ${cookie}${CRLF}`;
  return lines;
}

// The handler's own Content-Length for a streamed body, kept as it was given.
function givenLength(headers: Headers): string {
  const length = headers.get('content-length');
  return length === null ? '' : contentLength(length);
}

// Header lines from a record or pairs a light response kept; LightResponse checked them when it was made.
function linesFromInit(headers: HeadersInit | undefined): string {
  let lines = '';
  if (headers === undefined) return lines;
  if (headers instanceof NativeHeaders) return linesFromHeaders(headers);
  const pairs: Iterable<readonly [string, string]> = Array.isArray(headers)
    ? (headers as [string, string][])
    : Object.entries(headers as Record<string, string>);
  for (const [name, value] of pairs) {
    const lower = name.length === 14 || name.length === 17 ? name.toLowerCase() : '';
    if (lower === 'content-length' || lower === 'transfer-encoding') continue;
    lines += `${name}: ${value.trim()}${CRLF}`;
  }
  return lines;
}

function contentLength(length: number | string): string {
  return `content-length: ${length}${CRLF}`;
}

/**
 * Writes `response` to `request`. A light response (a string, bytes or no body) goes out at once and this
 * returns undefined; a stream body returns a promise that settles when it is all out, rejecting when reading
 * it fails or the request is aborted. Nothing here touches `request.signal` unless a write has to wait: an
 * AbortController per request was 8 % of a hello-world fetch server's CPU (bench:e2e profile).
 */
export function writeFetchResponse(
  response: Response,
  request: RequestSocket,
  head: boolean,
): Promise<void> | undefined {
  const light = lightParts(response);
  if (light === null) return writeStreamed(response, request, head);
  request.headWritten = true;
  request.status = light.status;
  let block = statusLine(light.status, light.statusText) + linesFromInit(light.headers);
  if (light.defaultTextType) block += `content-type: text/plain;charset=UTF-8${CRLF}`;
  const body = light.body;
  if (body === null) {
    request.end(block + CRLF, 'latin1');
    return undefined;
  }
  const bytes =
    typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  block += contentLength(bytes.length) + CRLF;
  if (head || bytes.length === 0) request.end(block, 'latin1');
  else {
    request.cork();
    request.write(block, 'latin1');
    request.end(bytes);
    request.uncork();
  }
  return undefined;
}

async function writeStreamed(response: Response, request: RequestSocket, head: boolean): Promise<void> {
  const block = statusLine(response.status, response.statusText) + linesFromHeaders(response.headers);
  request.status = response.status;
  const stream = response.body;
  if (stream === null) {
    request.headWritten = true;
    request.end(block + CRLF, 'latin1');
    return;
  }
  const reader = stream.getReader();
  try {
    const first = await reader.read();
    request.headWritten = true;
    if (first.done) return void request.end(block + contentLength(0) + CRLF, 'latin1');
    const second = await reader.read().catch((error: unknown) => {
      // Nothing went out yet; the caller answers 500.
      request.headWritten = false;
      throw error;
    });
    if (second.done) {
      const bytes = first.value as Uint8Array;
      request.cork();
      request.write(block + contentLength(bytes.byteLength) + CRLF, 'latin1');
      if (!head) request.write(bytes);
      request.end();
      request.uncork();
      return;
    }
    request.write(block + givenLength(response.headers) + CRLF, 'latin1');
    let chunk: Uint8Array | undefined = first.value as Uint8Array;
    let next: Uint8Array | undefined = second.value as Uint8Array;
    while (chunk !== undefined) {
      if (request.abortReason !== null) throw request.signal.reason;
      if (!head && !request.write(chunk)) await drained(request);
      chunk = next;
      if (chunk === undefined) break;
      const read = await reader.read();
      next = read.done ? undefined : (read.value as Uint8Array);
    }
    request.end();
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    throw error;
  }
}

function drained(request: RequestSocket): Promise<void> {
  const signal = request.signal;
  // Made now, the signal may be aborted already (the write that filled the buffer failed the connection).
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      request.off('drain', onDrain);
      reject(signal.reason);
    };
    const onDrain = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    request.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
