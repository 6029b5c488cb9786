// Request buffering for the gateway: the whole upload is read before a backend worker is taken, so a slow
// client cannot pin php-fpm workers (caddy#5420; nginx's fastcgi_request_buffering). Small bodies stay in
// memory; larger ones go to an unlinked temp file; past a cap the request is refused.
import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ErrorCode } from '../errors';
import { RequestBodyError, clientLimitError } from '../client/errors';

/** Where a spooled body lives and how big it may get. */
export interface SpoolOptions {
  /** Bytes kept in memory before the body moves to a temp file. */
  memoryLimit: number;
  /** Largest body accepted (FCGI_ERR_BODY_TOO_LARGE past it). */
  maxBytes: number;
  /** Directory for temp files. */
  tmpDir: string;
}

/** A body read to its end: in memory, or in an open temp file that no longer has a name. */
export interface SpooledBody {
  readonly length: number;
  /** The bytes, or a stream over the temp file (it closes the file when it ends or is destroyed). */
  readonly body: Buffer | Readable;
  /** Closes the temp file if the body was never read. */
  release(): void;
}

/**
 * spoolBody reads `source` to its end. Throws LimitError (FCGI_ERR_BODY_TOO_LARGE) past `maxBytes` and
 * RequestBodyError (FCGI_ERR_BODY_SOURCE) when the upload fails (the client went away).
 */
export async function spoolBody(source: Readable, options: SpoolOptions): Promise<SpooledBody> {
  const chunks: Buffer[] = [];
  let length = 0;
  let file: FileHandle | null = null;
  try {
    for await (const chunk of source) {
      const bytes = chunk as Buffer;
      length += bytes.length;
      if (length > options.maxBytes) {
        throw clientLimitError(
          ErrorCode.BODY_TOO_LARGE,
          `request body exceeds ${options.maxBytes} bytes (bufferRequests.maxBytes)`,
          options.maxBytes,
          length,
        );
      }
      if (file === null && length <= options.memoryLimit) {
        chunks.push(bytes);
        continue;
      }
      if (file === null) {
        file = await openTempFile(options.tmpDir);
        for (const held of chunks) await file.write(held);
        chunks.length = 0;
      }
      await file.write(bytes);
    }
  } catch (error) {
    await file?.close();
    if ((error as { code?: unknown }).code === ErrorCode.BODY_TOO_LARGE) throw error;
    throw new RequestBodyError(
      ErrorCode.BODY_SOURCE,
      `reading the request body failed: ${(error as Error)?.message ?? String(error)}`,
      { cause: error },
    );
  }
  if (file === null) {
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
    return { length, body, release() {} };
  }
  const handle = file;
  const stream = handle.createReadStream({ start: 0, autoClose: true });
  return {
    length,
    body: stream,
    release() {
      if (!stream.destroyed) stream.destroy();
    },
  };
}

// A temp file unlinked as soon as it is open: nothing is left behind, even if the process dies.
async function openTempFile(dir: string): Promise<FileHandle> {
  const path = join(dir, `fastcgi-engine-body-${process.pid}-${randomBytes(8).toString('hex')}`);
  const handle = await open(path, 'wx+', 0o600);
  await unlink(path);
  return handle;
}
