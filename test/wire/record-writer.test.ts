import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecordType } from '../../src/wire/constants';
import { COALESCE_LIMIT, RecordWriter } from '../../src/wire/record-writer';
import { encodeEndRequest, encodeRecord, encodeStream, encodeUnknownType } from '../../src/wire/records';
import type { ProtocolStatusValue } from '../../src/wire/constants';

// A socket stand-in that keeps every write (each socket.write call is one entry).
function sink(): { socket: Socket; writes: Buffer[]; calls: () => number } {
  const writes: Buffer[] = [];
  let calls = 0;
  const socket = new Writable({
    decodeStrings: true,
    write(chunk: Buffer, _encoding, callback) {
      calls++;
      writes.push(chunk);
      callback();
    },
    writev(chunks, callback) {
      calls++;
      for (const { chunk } of chunks) writes.push(chunk as Buffer);
      callback();
    },
  });
  return { socket: socket as unknown as Socket, writes, calls: () => calls };
}

type Piece = { text: string; encoding: 'latin1' | 'utf8' } | { bytes: number };

function write(writer: RecordWriter, pieces: Piece[], asText: boolean): void {
  for (const piece of pieces) {
    if ('bytes' in piece) writer.stream(RecordType.STDOUT, 1, Buffer.alloc(piece.bytes, 0x61));
    else if (asText)
      writer.streamText(
        RecordType.STDOUT,
        1,
        piece.text,
        piece.encoding,
        Buffer.byteLength(piece.text, piece.encoding),
      );
    else writer.stream(RecordType.STDOUT, 1, Buffer.from(piece.text, piece.encoding));
  }
  writer.flush();
}

type Op =
  | { stream: number; id: number }
  | { text: string; encoding: 'latin1' | 'utf8'; id: number }
  | { endStream: number; id: number }
  | { endRequest: number; app: number; status: number; stdout: boolean }
  | { raw: number }
  | { flush: true };

describe('RecordWriter', () => {
  it('writes what the record encoders make of the same calls, in order, whatever is queued between flushes', () => {
    const id = fc.integer({ min: 1, max: 65535 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ stream: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 16_000, max: 140_000 })), id }),
      fc.record({
        text: fc.string({ maxLength: 200 }),
        encoding: fc.constantFrom('latin1' as const, 'utf8' as const),
        id,
      }),
      fc.record({ endStream: fc.constantFrom(RecordType.STDOUT, RecordType.STDERR), id }),
      fc.record({
        endRequest: id,
        app: fc.integer({ min: 0, max: 0xffffffff }),
        status: fc.integer({ min: 0, max: 3 }),
        stdout: fc.boolean(),
      }),
      fc.record({ raw: fc.integer({ min: 12, max: 255 }) }),
      fc.constant({ flush: true as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const { socket, writes } = sink();
        const writer = new RecordWriter(socket);
        const expected: Buffer[] = [];
        for (const o of ops) {
          if ('stream' in o) {
            const data = Buffer.alloc(o.stream, o.stream & 0xff);
            writer.stream(RecordType.STDOUT, o.id, data);
            if (o.stream > 0) expected.push(encodeStream(RecordType.STDOUT, o.id, data));
          } else if ('text' in o) {
            writer.streamText(RecordType.STDERR, o.id, o.text, o.encoding, Buffer.byteLength(o.text, o.encoding));
            if (o.text !== '') expected.push(encodeStream(RecordType.STDERR, o.id, Buffer.from(o.text, o.encoding)));
          } else if ('endStream' in o) {
            writer.endStream(o.endStream, o.id);
            expected.push(encodeRecord(o.endStream, o.id));
          } else if ('endRequest' in o) {
            writer.endRequest(o.endRequest, o.app, o.status as ProtocolStatusValue, o.stdout);
            if (o.stdout) expected.push(encodeRecord(RecordType.STDOUT, o.endRequest));
            expected.push(encodeEndRequest(o.endRequest, o.app, o.status as ProtocolStatusValue));
          } else if ('raw' in o) {
            const record = encodeUnknownType(o.raw);
            writer.raw(record);
            expected.push(record);
          } else writer.flush();
        }
        writer.flush();
        expect(Buffer.concat(writes).equals(Buffer.concat(expected))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });
});

describe('RecordWriter syscalls', () => {
  it('sends a 64 KiB response (head, two STDOUT records, END_REQUEST) queued in one turn in one write', async () => {
    const { socket, writes, calls } = sink();
    const writer = new RecordWriter(socket);
    writer.streamText(RecordType.STDOUT, 1, 'Status: 200 OK\r\nContent-Length: 65536\r\n\r\n', 'latin1', 41);
    writer.stream(RecordType.STDOUT, 1, Buffer.alloc(65536, 0x61));
    writer.endRequest(1, 0, 0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls()).toBe(1);
    const bytes = Buffer.concat(writes);
    // head 41 + 7 padding; 65535 (unpadded: php-fpm's limit, see paddingFor); 1 + 7; empty STDOUT; END_REQUEST
    expect(bytes.length).toBe(8 + 41 + 7 + 8 + 65535 + 8 + 1 + 7 + 8 + 16);
  });
});

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
    const head = 'Status: 200 OK\r\nContent-Length: 6\r\n\r\nhéllo';
    writer.streamText(RecordType.STDOUT, 1, head, 'utf8', Buffer.byteLength(head, 'utf8'));
    writer.endRequest(1, 0, 0);
    writer.flush();
    expect(writes).toHaveLength(1);
    const out = writes[0]!;
    const length = out.readUInt16BE(4);
    expect(out.subarray(8, 8 + length).toString('utf8')).toBe('Status: 200 OK\r\nContent-Length: 6\r\n\r\nhéllo');
    expect(out.length).toBe(8 + length + out[6]! + 8 + 16);
  });
});

describe('RecordWriter on a real socket', () => {
  it('delivers every flush intact, when the kernel takes each write at once and when the peer stops reading', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fcgi-rw-'));
    const server = createServer();
    server.listen(join(dir, 's.sock'));
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect(join(dir, 's.sock'));
    await once(client, 'connect');
    const [peer] = await accepted;
    try {
      const writer = new RecordWriter(client);
      const expected: Buffer[] = [];
      const reference = sink();
      const oracle = new RecordWriter(reference.socket);
      // Small flushes (coalesced into the shared buffer), each with different bytes: first read as they go,
      // then with the peer paused until megabytes are queued in the socket.
      const flushes = async (count: number, size: number): Promise<void> => {
        for (let i = 0; i < count; i++) {
          const text = `${i}:`.padEnd(size, String.fromCharCode(97 + (i % 26)));
          for (const w of [writer, oracle]) {
            w.streamText(RecordType.STDOUT, 1 + (i % 7), text, 'latin1', text.length);
            w.endRequest(1 + (i % 7), i, 0);
            w.flush();
          }
          if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      };
      const received: Buffer[] = [];
      peer.on('data', (chunk: Buffer) => received.push(chunk));
      await flushes(300, 100);
      peer.pause();
      await flushes(600, 12_000);
      expect(client.writableLength).toBeGreaterThan(0); // the peer's pause made writes wait
      peer.resume();
      expected.push(...reference.writes);
      const total = expected.reduce((n, b) => n + b.length, 0);
      while (received.reduce((n, b) => n + b.length, 0) < total) await once(peer, 'data');
      expect(Buffer.concat(received).equals(Buffer.concat(expected))).toBe(true);
    } finally {
      client.destroy();
      peer.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
