import { describe, expect, it } from 'vitest';
import { Decoder } from '../../src/wire/decoder';
import { ErrorCode, LimitError, ProtocolError, type FastCGIError } from '../../src/errors';
import { KNOWN_NAMES } from '../../src/codec/known-names';
import { codecs } from '../helpers/codecs';
import { beginRequest, pair, record, splitAt } from '../helpers/records';
import { traceDecode } from '../helpers/trace';

// A responder request as nginx sends it: BEGIN, one padded PARAMS record, the empty PARAMS, a body, empty STDIN.
const params = Buffer.concat([
  pair('REQUEST_METHOD', 'POST'),
  pair('REQUEST_URI', '/a?b=c'),
  pair('HTTP_X_TRACE', 'é\x01'),
]);
const request = Buffer.concat([
  beginRequest(1, 1, 1),
  record(4, 1, params, 8 - (params.length % 8)),
  record(4, 1),
  record(5, 1, 'hello world', 5),
  record(5, 1),
]);

function everySplit(bytes: Buffer): Buffer[][] {
  const splits: Buffer[][] = [
    [bytes],
    splitAt(
      bytes,
      Array.from({ length: bytes.length }, (_, i) => i),
    ),
  ];
  for (let i = 1; i < bytes.length; i++) splits.push(splitAt(bytes, [i]));
  return splits;
}

describe.each(codecs)('Decoder with the $label scanner', (scanner) => {
  it('gives the same events for every split of a request, including 1-byte reads', () => {
    const expected = traceDecode([request], scanner);
    expect(expected).toEqual([
      'record type=1 id=1 hex=0001010000000000',
      expect.stringMatching(/^params id=1 /),
      `record type=5 id=1 hex=${Buffer.from('hello world').toString('hex')}`,
      'record type=5 id=1 hex=',
    ]);
    for (const chunks of everySplit(request)) expect(traceDecode(chunks, scanner)).toEqual(expected);
  });

  it('hands out lazy params with byte-exact values and known names interned', () => {
    let seen: Record<string, string> | null = null;
    const decoder = new Decoder(
      {
        onRecord() {},
        onParams(requestId, p) {
          expect(requestId).toBe(1);
          expect(p.size).toBe(3);
          expect(p.get('REQUEST_METHOD')).toBe('POST');
          expect(p.nameAt(1)).toBe(KNOWN_NAMES[p.nameIdAt(1)]);
          expect(p.valueBytesAt(2)).toEqual(Buffer.from('é\x01', 'latin1'));
          seen = p.toObject();
        },
        onError(e) {
          throw e;
        },
      },
      { scanner },
    );
    decoder.push(request);
    expect(seen).toEqual({ REQUEST_METHOD: 'POST', REQUEST_URI: '/a?b=c', HTTP_X_TRACE: 'é\x01' });
  });

  it('joins a pair straddling PARAMS records, as h2o and cgi-fcgi send it', () => {
    const block = Buffer.concat([pair('HTTP_COOKIE', 'x'.repeat(300)), pair('SCRIPT_NAME', '/s')]);
    const straddled = Buffer.concat([
      beginRequest(7),
      record(4, 7, block.subarray(0, 2)),
      record(4, 7, block.subarray(2, 150), 3),
      record(4, 7, block.subarray(150)),
      record(4, 7),
    ]);
    const lines = traceDecode([straddled], scanner);
    const whole = traceDecode([Buffer.concat([beginRequest(7), record(4, 7, block), record(4, 7)])], scanner);
    expect(lines).toEqual(whole);
    expect(lines[1]).toContain(Buffer.from('x'.repeat(300)).toString('hex'));
  });

  it('hands out record content as views of the socket chunk, without copying', () => {
    const chunk = Buffer.concat([beginRequest(3), record(5, 3, 'body-bytes')]);
    const views: Buffer[] = [];
    new Decoder({ onRecord: (_t, _id, content) => views.push(content), onParams() {}, onError() {} }, { scanner }).push(
      chunk,
    );
    expect(views[1]!.buffer).toBe(chunk.buffer);
    expect(views[1]!.toString()).toBe('body-bytes');
  });

  it('passes stream pieces of a record cut by a chunk boundary without waiting for the rest', () => {
    const body = Buffer.alloc(60000, 0x61);
    const [first, second] = splitAt(Buffer.concat([beginRequest(1), record(5, 1, body, 0)]), [16 + 8 + 1000]);
    const pieces: number[] = [];
    const decoder = new Decoder(
      { onRecord: (t, _id, c) => t === 5 && pieces.push(c.length), onParams() {}, onError() {} },
      { scanner },
    );
    decoder.push(first!);
    expect(pieces).toEqual([1000]);
    expect(decoder.midRecord).toBe(true);
    decoder.push(second!);
    expect(pieces).toEqual([1000, 59000]);
    expect(decoder.midRecord).toBe(false);
  });

  it('reports an HTTP request on a FastCGI socket with a message that says so', () => {
    const errors: FastCGIError[] = [];
    const decoder = new Decoder({ onRecord() {}, onParams() {}, onError: (e) => errors.push(e) }, { scanner });
    decoder.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    decoder.push(Buffer.from('more'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ProtocolError);
    expect(errors[0]!.code).toBe(ErrorCode.BAD_VERSION);
    expect(errors[0]!.message).toMatch(/invalid record version 71 at offset 0 .*HTTP/);
    expect(decoder.stopped).toBe(true);
  });

  it('reports a bad version at its stream offset when it arrives in a later chunk', () => {
    const lines = traceDecode([record(5, 0, 'abc'), Buffer.from([2, 0, 0])], scanner);
    expect(lines).toEqual(['record type=5 id=0 hex=616263', `error code=${ErrorCode.BAD_VERSION} offset=11`]);
    const split = traceDecode(
      [
        record(5, 0, 'abc'),
        Buffer.from([1, 5]),
        Buffer.from([0]),
        Buffer.from([0, 0, 0, 0, 0]),
        record(5, 0, 'x', 0, 9),
      ],
      scanner,
    );
    expect(split.at(-1)).toBe(`error code=${ErrorCode.BAD_VERSION} offset=19`);
  });

  it('reports a truncated pair at the end of a params stream', () => {
    const bad = Buffer.concat([
      beginRequest(1),
      record(4, 1, Buffer.concat([pair('A', 'b'), Buffer.from([5, 9, 0x41])])),
      record(4, 1),
    ]);
    const errors: FastCGIError[] = [];
    new Decoder({ onRecord() {}, onParams() {}, onError: (e) => errors.push(e) }, { scanner }).push(bad);
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.PAIR_DATA_TRUNCATED]);
    expect(errors[0]).toMatchObject({ requestId: 1, offset: 4 });
  });

  it('enforces maxParamsBytes and maxParamsCount', () => {
    const many = Buffer.concat(Array.from({ length: 100 }, (_, i) => pair(`N${i}`, 'v')));
    const stream = Buffer.concat([beginRequest(1), record(4, 1, many), record(4, 1)]);
    const codes = (options: object) => {
      const errors: FastCGIError[] = [];
      new Decoder({ onRecord() {}, onParams() {}, onError: (e) => errors.push(e) }, { scanner, ...options }).push(
        stream,
      );
      return errors;
    };
    expect(codes({ maxParamsBytes: 100 })[0]).toBeInstanceOf(LimitError);
    expect(codes({ maxParamsBytes: 100 })[0]).toMatchObject({ code: ErrorCode.PARAMS_TOO_LARGE, limit: 100 });
    expect(codes({ maxParamsCount: 99 })[0]).toMatchObject({ code: ErrorCode.PARAMS_TOO_LARGE, limit: 99 });
    expect(codes({ maxParamsCount: 100 })).toEqual([]);
    expect(codes({ maxParamsCount: 10 })[0]).toMatchObject({ code: ErrorCode.PARAMS_TOO_LARGE, limit: 10 });
  });

  it('grows its pair scratch space for a large params stream', () => {
    const many = Buffer.concat(Array.from({ length: 3000 }, (_, i) => pair(`HTTP_X_${i}`, String(i))));
    const stream = Buffer.concat([
      beginRequest(1),
      record(4, 1, many.subarray(0, 60000)),
      record(4, 1, many.subarray(60000)),
      record(4, 1),
    ]);
    let size = 0;
    let last: string | undefined;
    new Decoder(
      {
        onRecord() {},
        onParams: (_id, p) => ((size = p.size), (last = p.get('HTTP_X_2999'))),
        onError: (e) => {
          throw e;
        },
      },
      { scanner },
    ).push(stream);
    expect(size).toBe(3000);
    expect(last).toBe('2999');
  });

  it('passes PARAMS through as records for ids that sent no BEGIN_REQUEST or were discarded', () => {
    const lines = traceDecode([record(4, 2, pair('A', 'b')), record(4, 2)], scanner);
    expect(lines).toEqual([`record type=4 id=2 hex=${pair('A', 'b').toString('hex')}`, 'record type=4 id=2 hex=']);
    const seen: number[] = [];
    const decoder = new Decoder(
      { onRecord: (t) => seen.push(t), onParams: () => seen.push(-1), onError() {} },
      { scanner },
    );
    decoder.push(beginRequest(5));
    decoder.discardParams(5);
    decoder.push(Buffer.concat([record(4, 5, pair('A', 'b')), record(4, 5)]));
    expect(seen).toEqual([1, 4, 4]);
  });

  it('decodes correctly when a handler pushes into another decoder from inside a push (shared scratch)', () => {
    const inner: string[] = [];
    const b = new Decoder(
      {
        onRecord: (t, id) => inner.push(`record ${t} ${id}`),
        onParams: (id, p) => inner.push(`params ${id} ${p.get('REQUEST_URI')}`),
        onError: (e) => {
          throw e;
        },
      },
      { scanner },
    );
    const outer: string[] = [];
    const a = new Decoder(
      {
        onRecord: (t, id) => outer.push(`record ${t} ${id}`),
        onParams: (id, p) => {
          b.push(Buffer.concat([beginRequest(9), record(4, 9, pair('REQUEST_URI', '/inner')), record(4, 9)]));
          outer.push(`params ${id} ${p.get('REQUEST_URI')}`);
        },
        onError: (e) => {
          throw e;
        },
      },
      { scanner },
    );
    a.push(Buffer.concat([request, beginRequest(2), record(4, 2, pair('REQUEST_URI', '/two')), record(4, 2)]));
    expect(inner).toEqual(['record 1 9', 'params 9 /inner', 'record 1 9', 'params 9 /inner']);
    expect(outer).toEqual(['record 1 1', 'params 1 /a?b=c', 'record 5 1', 'record 5 1', 'record 1 2', 'params 2 /two']);
  });

  it('says when the input ends inside a record', () => {
    expect(traceDecode([beginRequest(1).subarray(0, 5)], scanner)).toEqual(['partial']);
    expect(traceDecode([record(8, 1, 'abc').subarray(0, 9)], scanner)).toEqual([
      'record type=8 id=1 hex=61',
      'partial',
    ]);
  });

  it('shows the observer each record once, whole, in order, whatever the chunking', () => {
    const stream = Buffer.concat([request, record(6, 1, 'x'.repeat(40), 0), record(3, 1, Buffer.alloc(8), 0)]);
    const observe = (chunks: Buffer[]): string[] => {
      const seen: string[] = [];
      const decoder = new Decoder(
        {
          onRecord() {},
          onParams() {},
          onError: (e) => {
            throw e;
          },
        },
        {
          scanner,
          observer: (type, id, contentLength, paddingLength, content) =>
            seen.push(`${type} id=${id} len=${contentLength} pad=${paddingLength} ${content.toString('latin1', 0, 4)}`),
        },
      );
      for (const chunk of chunks) decoder.push(chunk);
      return seen;
    };
    const whole = observe([stream]);
    expect(whole).toEqual([
      '1 id=1 len=8 pad=0 \x00\x01\x01\x00',
      `4 id=1 len=${params.length} pad=${8 - (params.length % 8)} ${params.toString('latin1', 0, 4)}`,
      '4 id=1 len=0 pad=0 ',
      '5 id=1 len=11 pad=5 hell',
      '5 id=1 len=0 pad=0 ',
      '6 id=1 len=40 pad=0 xxxx',
      '3 id=1 len=8 pad=0 \x00\x00\x00\x00',
    ]);
    // A stream record cut by chunk boundaries is observed when it ends, with its first piece (4 bytes here).
    for (const chunks of everySplit(stream)) {
      const seen = observe(chunks);
      expect(seen.map((line) => line.split(' ').slice(0, 4).join(' '))).toEqual(
        whole.map((line) => line.split(' ').slice(0, 4).join(' ')),
      );
    }
  });

  it('never shows the observer a record the input ends inside, and counts its bytes', () => {
    const seen: number[] = [];
    const decoder = new Decoder(
      { onRecord() {}, onParams() {}, onError() {} },
      { scanner, collectParams: false, observer: (type) => seen.push(type) },
    );
    decoder.push(Buffer.concat([record(6, 1, 'ab'), record(6, 1, 'x'.repeat(100)).subarray(0, 18)]));
    expect(seen).toEqual([6]);
    expect(decoder.partialRecordBytes).toBe(18);
    decoder.push(Buffer.from('y'.repeat(90)));
    expect(seen).toEqual([6, 6]);
    expect(decoder.partialRecordBytes).toBe(0);
  });
});
