// Request bodies (STDIN, and DATA for the Filter role): what callers may pass, and the form the connection sends.
// php-fpm reads only CONTENT_LENGTH bytes of STDIN (none without it) rather than to the end of the stream, so a
// body whose length is not known up front is collected first, up to a cap, to send a correct CONTENT_LENGTH.
import { Readable } from 'node:stream';
import { ErrorCode, InvalidArgumentError } from '../errors';
import { RequestBodyError, clientLimitError } from './errors';

/** A request body: bytes, a UTF-8 string, a Readable or any async iterable of bytes. */
export type RequestBody = Uint8Array | string | Readable | AsyncIterable<Uint8Array | string>;

/** A body ready to send: bytes in memory (replayable), or a stream whose length is known. */
export type PreparedBody =
  | { readonly kind: 'bytes'; readonly chunks: readonly Uint8Array[]; readonly length: number }
  | { readonly kind: 'stream'; readonly source: AsyncIterable<Uint8Array | string>; readonly length: number };

const NO_CHUNKS: readonly Uint8Array[] = [];

/** The empty body. */
export const EMPTY_BODY: PreparedBody = { kind: 'bytes', chunks: NO_CHUNKS, length: 0 };

/**
 * prepareBodySync handles what needs no waiting: bytes and strings, and streams with a declared length.
 * Returns null for a stream of unknown length (collect it with collectBody).
 */
export function prepareBodySync(
  body: RequestBody,
  contentLength: number | undefined,
  what: string,
): PreparedBody | null {
  if (typeof body === 'string') {
    const bytes = Buffer.from(body, 'utf8');
    return { kind: 'bytes', chunks: bytes.length === 0 ? NO_CHUNKS : [bytes], length: bytes.length };
  }
  if (body instanceof Uint8Array) {
    return { kind: 'bytes', chunks: body.length === 0 ? NO_CHUNKS : [body], length: body.length };
  }
  if (!isAsyncIterable(body))
    throw new InvalidArgumentError(`${what} must be a Buffer, Uint8Array, string, Readable or async iterable`);
  if (contentLength !== undefined) {
    if (!Number.isSafeInteger(contentLength) || contentLength < 0)
      throw new InvalidArgumentError(`${what} length must be a non-negative integer, got ${contentLength}`);
    return { kind: 'stream', source: body, length: contentLength };
  }
  return null;
}

/**
 * collectBody reads a stream of unknown length into memory, so that CONTENT_LENGTH can be exact. Throws
 * LimitError (FCGI_ERR_BODY_TOO_LARGE) past `maxBytes`, and RequestBodyError (FCGI_ERR_BODY_SOURCE) when the
 * stream fails.
 */
export async function collectBody(
  source: AsyncIterable<Uint8Array | string>,
  maxBytes: number,
  what: string,
): Promise<PreparedBody> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    for await (const piece of source) {
      const chunk = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
      length += chunk.length;
      if (length > maxBytes) {
        if (source instanceof Readable) source.destroy();
        throw clientLimitError(
          ErrorCode.BODY_TOO_LARGE,
          `${what} of unknown length exceeds ${maxBytes} bytes (bufferUnknownLength); pass its length to stream it`,
          maxBytes,
          length,
        );
      }
      if (chunk.length > 0) chunks.push(chunk);
    }
  } catch (error) {
    if ((error as { code?: unknown }).code === ErrorCode.BODY_TOO_LARGE) throw error;
    throw new RequestBodyError(
      ErrorCode.BODY_SOURCE,
      `reading the ${what} failed: ${(error as Error)?.message ?? String(error)}`,
      { cause: error },
    );
  }
  return { kind: 'bytes', chunks, length };
}

/** isAsyncIterable tells streams and async generators from everything else. */
export function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array | string> {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
  );
}
