// Writes a fetch Response to a FastCGI request as a CGI response: `Status: NNN Reason`, the headers (each
// Set-Cookie on its own line), a blank line and the body. A light response's string or bytes go out in one
// write with an exact Content-Length; a stream is read chunk by chunk with backpressure from the request, and a
// stream that turns out to hold one chunk still gets an exact Content-Length.
import { STATUS_CODES } from 'node:http';
import type { RequestSocket } from '../request-socket';
import { lightParts, NativeHeaders } from './light-response';

type HeadersInit = ConstructorParameters<typeof Headers>[0];

const CRLF = '\r\n';

// Requests whose CGI head went out: a failure after that cuts the response instead of answering 500.
const started = new WeakSet<RequestSocket>();

/** Whether the writer has written the response head of `request`. */
export function headWritten(request: RequestSocket): boolean {
  return started.has(request);
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

/** The response's head and body went out, or `signal` aborted the write. */
export async function writeFetchResponse(
  response: Response,
  request: RequestSocket,
  head: boolean,
  signal: AbortSignal,
): Promise<void> {
  const light = lightParts(response);
  if (light !== null) {
    started.add(request);
    request.status = light.status;
    let block = statusLine(light.status, light.statusText) + linesFromInit(light.headers);
    if (light.defaultTextType) block += `content-type: text/plain;charset=UTF-8${CRLF}`;
    const body = light.body;
    if (body === null) {
      request.end(block + CRLF, 'latin1');
      return;
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
    return;
  }
  const block = statusLine(response.status, response.statusText) + linesFromHeaders(response.headers);
  request.status = response.status;
  const stream = response.body;
  if (stream === null) {
    started.add(request);
    request.end(block + CRLF, 'latin1');
    return;
  }
  const reader = stream.getReader();
  try {
    const first = await reader.read();
    started.add(request);
    if (first.done) return void request.end(block + contentLength(0) + CRLF, 'latin1');
    const second = await reader.read().catch((error: unknown) => {
      // Nothing went out yet; the caller answers 500.
      started.delete(request);
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
      if (signal.aborted) throw signal.reason;
      if (!head && !request.write(chunk)) await drained(request, signal);
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

function drained(request: RequestSocket, signal: AbortSignal): Promise<void> {
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
