// Decoder events as comparable lines. Adjacent non-empty pieces of the same stream are merged (as
// llparse-test-fixture merges spans), so one expected trace holds for any chunking of the input.
import { Decoder, type DecoderOptions } from '../../src/wire/decoder';
import { ProtocolError, type FastCGIError } from '../../src/errors';
import type { Scanner } from '../../src/codec/scanner';
import type { Params } from '../../src/wire/params';

const STREAM_TYPES = new Set([4, 5, 6, 7, 8]);

export class Trace {
  readonly lines: string[] = [];
  #open: { type: number; requestId: number; hex: string } | null = null;

  record(type: number, requestId: number, content: Uint8Array): void {
    const hex = Buffer.from(content.buffer, content.byteOffset, content.length).toString('hex');
    if (STREAM_TYPES.has(type) && content.length > 0) {
      if (this.#open !== null && this.#open.type === type && this.#open.requestId === requestId) {
        this.#open.hex += hex;
        return;
      }
      this.#flush();
      this.#open = { type, requestId, hex };
      return;
    }
    this.#flush();
    this.lines.push(`record type=${type} id=${requestId} hex=${hex}`);
  }

  /** pairs: [name bytes hex, value bytes hex, known-name id]. */
  params(requestId: number, pairs: [string, string, number][]): void {
    this.#flush();
    this.lines.push(`params id=${requestId} ${pairs.map(([n, v, id]) => `${n}:${v}#${id}`).join(' ')}`);
  }

  error(error: FastCGIError): void {
    this.#flush();
    this.lines.push(`error code=${error.code} offset=${error instanceof ProtocolError ? error.offset : undefined}`);
  }

  end(partial: boolean): string[] {
    this.#flush();
    if (partial) this.lines.push('partial');
    return this.lines;
  }

  #flush(): void {
    if (this.#open !== null)
      this.lines.push(`record type=${this.#open.type} id=${this.#open.requestId} hex=${this.#open.hex}`);
    this.#open = null;
  }
}

export function paramsPairs(params: Params): [string, string, number][] {
  const pairs: [string, string, number][] = [];
  for (let i = 0; i < params.size; i++)
    pairs.push([params.nameBytesAt(i).toString('hex'), params.valueBytesAt(i).toString('hex'), params.nameIdAt(i)]);
  return pairs;
}

/** Runs a Decoder with `scanner` over `chunks` and returns the trace. */
export function traceDecode(chunks: Uint8Array[], scanner: Scanner, options: DecoderOptions = {}): string[] {
  const trace = new Trace();
  const decoder = new Decoder(
    {
      onRecord: (type, requestId, content) => trace.record(type, requestId, content),
      onParams: (requestId, params) => trace.params(requestId, paramsPairs(params)),
      onError: (error) => trace.error(error),
    },
    { ...options, scanner },
  );
  for (const chunk of chunks) decoder.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
  return trace.end(decoder.midRecord && !decoder.stopped);
}
