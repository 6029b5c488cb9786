import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecordType } from '../../src/wire/constants';
import { COALESCE_LIMIT, RecordWriter } from '../../src/wire/record-writer';

// A socket stand-in that keeps every write (each socket.write call is one entry).
function sink(): { socket: Socket; writes: Buffer[] } {
  const writes: Buffer[] = [];
  const socket = new Writable({
    decodeStrings: true,
    write(chunk: Buffer, _encoding, callback) {
      writes.push(chunk);
      callback();
    },
    writev(chunks, callback) {
      for (const { chunk } of chunks) writes.push(chunk as Buffer);
      callback();
    },
  });
  return { socket: socket as unknown as Socket, writes };
}

type Piece = { text: string; encoding: 'latin1' | 'utf8' } | { bytes: number };

function write(writer: RecordWriter, pieces: Piece[], asText: boolean): void {
  for (const piece of pieces) {
    if ('bytes' in piece) writer.stream(RecordType.STDOUT, 1, Buffer.alloc(piece.bytes, 0x61));
    else if (asText) writer.streamText(RecordType.STDOUT, 1, piece.text, piece.encoding);
    else writer.stream(RecordType.STDOUT, 1, Buffer.from(piece.text, piece.encoding));
  }
  writer.flush();
}

describe('RecordWriter.streamText', () => {
  it('frames text exactly as the same text made into a Buffer first, alone or between byte pieces of any size', () => {
    const piece: fc.Arbitrary<Piece> = fc.oneof(
      fc.record({ text: fc.string({ maxLength: 300 }), encoding: fc.constant('utf8' as const) }),
      fc.record({
        text: fc.string({ unit: 'binary', maxLength: 300 }),
        encoding: fc.constant('utf8' as const),
      }),
      fc.record({
        text: fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 300 }),
        encoding: fc.constant('latin1' as const),
      }),
      fc.record({ text: fc.constant('x'.repeat(COALESCE_LIMIT + 5)), encoding: fc.constant('latin1' as const) }),
      fc.record({ bytes: fc.integer({ min: 0, max: 70000 }) }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
        const text = sink();
        const bytes = sink();
        write(new RecordWriter(text.socket), pieces, true);
        write(new RecordWriter(bytes.socket), pieces, false);
        expect(Buffer.concat(text.writes).equals(Buffer.concat(bytes.writes))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('puts a small response given as text (head, body, END_REQUEST) in one write', () => {
    const { socket, writes } = sink();
    const writer = new RecordWriter(socket);
    writer.streamText(RecordType.STDOUT, 1, 'Status: 200 OK\r\nContent-Length: 6\r\n\r\nhéllo', 'utf8');
    writer.endRequest(1, 0, 0);
    writer.flush();
    expect(writes).toHaveLength(1);
    const out = writes[0]!;
    const length = out.readUInt16BE(4);
    expect(out.subarray(8, 8 + length).toString('utf8')).toBe('Status: 200 OK\r\nContent-Length: 6\r\n\r\nhéllo');
    expect(out.length).toBe(8 + length + out[6]! + 8 + 16);
  });
});
