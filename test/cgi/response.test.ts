import { describe, expect, it } from 'vitest';
import { CgiHeaderParser, isHeaderLine } from '../../src/cgi/response';
import { FastCGIError, LimitError, ProtocolError } from '../../src/errors';

// Feeds `input` cut at `cuts`; returns the head and the body bytes that followed the header block.
function parse(input: string | Buffer, cuts: number[] = [], maxBytes?: number) {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const parser = new CgiHeaderParser(maxBytes);
  const points = [0, ...cuts, bytes.length];
  const body: Buffer[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const piece = bytes.subarray(points[i], points[i + 1]);
    if (parser.head !== null) {
      body.push(piece);
      continue;
    }
    const start = parser.push(piece);
    if (start !== -1) body.push(piece.subarray(start));
  }
  parser.end();
  return { head: parser.head!, body: Buffer.concat(body).toString('latin1') };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(FastCGIError);
    return (error as FastCGIError).code;
  }
  throw new Error('did not throw');
}

describe('CgiHeaderParser', () => {
  it('reads headers ended by CRLF or bare LF, and hands over the body after the blank line', () => {
    for (const text of [
      'Content-Type: text/plain\r\nX-A:  1 \r\n\r\nbody',
      'Content-Type: text/plain\nX-A:  1 \n\nbody',
      'Content-Type: text/plain\r\nX-A: 1\n\r\nbody',
    ]) {
      const { head, body } = parse(text);
      expect(head.status).toBe(200);
      expect(head.statusText).toBe('OK');
      expect(head.headers['content-type']).toBe('text/plain');
      expect(head.headers['x-a']).toBe('1');
      expect(body).toBe('body');
    }
  });

  it('finds the end of the header block at every split point, one byte at a time included', () => {
    const text = 'Status: 201 Made\r\nSet-Cookie: a=1\r\nX-Long: ' + 'v'.repeat(300) + '\r\n\r\n\x00\x01body\r\n\r\n';
    const whole = parse(text);
    for (let cut = 1; cut < text.length; cut++) {
      const split = parse(text, [cut]);
      expect(split.head).toEqual(whole.head);
      expect(split.body).toBe(whole.body);
    }
    const bytewise = parse(
      text,
      Array.from({ length: text.length - 1 }, (_, i) => i + 1),
    );
    expect(bytewise.head).toEqual(whole.head);
    expect(bytewise.body).toBe('\x00\x01body\r\n\r\n');
  });

  it('takes the status from Status, with the standard reason when none is given', () => {
    expect(parse('Status: 404 Not Here\r\n\r\n').head).toMatchObject({ status: 404, statusText: 'Not Here' });
    expect(parse('Status: 404\r\n\r\n').head).toMatchObject({ status: 404, statusText: 'Not Found' });
    expect(parse('status:503\n\n').head).toMatchObject({ status: 503, statusText: 'Service Unavailable' });
    expect(parse('Status: 404 Not Found\r\n\r\n').head.rawHeaders).toEqual([]);
  });

  it('answers 302 for a Location without Status, and keeps an explicit Status beside Location', () => {
    expect(parse('Location: /x\r\n\r\n').head).toMatchObject({
      status: 302,
      statusText: 'Found',
      headers: { location: '/x' },
    });
    expect(parse('Location: /x\r\nStatus: 301 Moved Permanently\r\n\r\n').head).toMatchObject({ status: 301 });
  });

  it('keeps repeated headers and every Set-Cookie as arrays, in order, with the names as sent', () => {
    const { head } = parse(
      'X-Dup: 1\r\nSet-Cookie: a=1\r\nx-dup: 2\r\nX-DUP: 3\r\nSet-Cookie: b=2\r\nX-One: z\r\n\r\n',
    );
    expect(head.headers['x-dup']).toEqual(['1', '2', '3']);
    expect(head.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(head.headers['x-one']).toBe('z');
    expect(head.rawHeaders).toEqual([
      'X-Dup',
      '1',
      'Set-Cookie',
      'a=1',
      'x-dup',
      '2',
      'X-DUP',
      '3',
      'Set-Cookie',
      'b=2',
      'X-One',
      'z',
    ]);
    expect(Object.getPrototypeOf(head.headers)).toBe(null);
  });

  it('accepts a header block that is only the blank line', () => {
    expect(parse('\r\nbody').body).toBe('body');
    expect(parse('\nbody', [1]).body).toBe('body');
  });

  it('keeps bytes above 0x7f in values as latin1 (byte strings, as node:http does)', () => {
    expect(parse(Buffer.from('X-U: caf\xc3\xa9\r\n\r\n', 'latin1')).head.headers['x-u']).toBe('caf\xc3\xa9');
  });

  it('rejects a line without a colon, a bad name and control characters with FCGI_ERR_CGI_HEADER_MALFORMED', () => {
    expect(codeOf(() => parse('HTTP/1.1 200 OK\r\n\r\n'))).toBe('FCGI_ERR_CGI_HEADER_MALFORMED');
    expect(codeOf(() => parse('Bad Name: x\r\n\r\n'))).toBe('FCGI_ERR_CGI_HEADER_MALFORMED');
    expect(codeOf(() => parse(': x\r\n\r\n'))).toBe('FCGI_ERR_CGI_HEADER_MALFORMED');
    expect(codeOf(() => parse('X-A: a\x01b\r\n\r\n'))).toBe('FCGI_ERR_CGI_HEADER_MALFORMED');
    expect(codeOf(() => parse('X-A: a\rb\r\n\r\n'))).toBe('FCGI_ERR_CGI_HEADER_MALFORMED');
    expect(codeOf(() => parse(' folded: x\r\n\r\n'))).toBe('FCGI_ERR_CGI_HEADER_MALFORMED');
  });

  it('rejects an invalid Status with FCGI_ERR_CGI_STATUS_INVALID', () => {
    for (const status of ['abc', '20', '2000 Big', '099 Low', '']) {
      const error = (() => {
        try {
          parse(`Status: ${status}\r\n\r\n`);
        } catch (e) {
          return e as ProtocolError;
        }
        return null;
      })();
      expect(error, status).toBeInstanceOf(ProtocolError);
      expect(error!.code).toBe('FCGI_ERR_CGI_STATUS_INVALID');
    }
  });

  it('reports output that ends inside the header block, or with none, as FCGI_ERR_CGI_HEADER_INCOMPLETE', () => {
    expect(codeOf(() => parse('Content-Type: text/plain\r\n'))).toBe('FCGI_ERR_CGI_HEADER_INCOMPLETE');
    expect(codeOf(() => parse(''))).toBe('FCGI_ERR_CGI_HEADER_INCOMPLETE');
    expect(() => parse('X: 1\r\n')).toThrow(/ended inside its CGI header block \(6 bytes/);
  });

  it('caps the header block, whether it arrives whole or in pieces (FCGI_ERR_CGI_HEADER_TOO_LARGE)', () => {
    const big = `X-Big: ${'a'.repeat(200)}\r\n\r\nbody`;
    expect(parse(big, [], 300).body).toBe('body');
    for (const cuts of [[], [50], [100, 150, 200]]) {
      let error: unknown = null;
      try {
        parse(big, cuts, 100);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(LimitError);
      expect((error as LimitError).code).toBe('FCGI_ERR_CGI_HEADER_TOO_LARGE');
      expect((error as LimitError).limit).toBe(100);
    }
  });

  it('copies a pending partial block, so the socket chunk it came from may be reused', () => {
    const parser = new CgiHeaderParser();
    const chunk = Buffer.from('X-A: 1\r\n', 'latin1');
    expect(parser.push(chunk)).toBe(-1);
    chunk.fill(0x41);
    expect(parser.push(Buffer.from('\r\nrest'))).toBe(2);
    expect(parser.head!.headers['x-a']).toBe('1');
  });

  it('keeps the reason phrase as sent apart from the one it fills in, for a tool that prints what came', () => {
    const reasonOf = (text: string): [string, string | null] => {
      const parser = new CgiHeaderParser();
      parser.push(Buffer.from(text, 'latin1'));
      return [parser.head!.statusText, parser.sentReason];
    };
    expect(reasonOf('Status: 404\r\n\r\n')).toEqual(['Not Found', null]);
    expect(reasonOf('Status: 404 Gone Fishing\r\n\r\n')).toEqual(['Gone Fishing', 'Gone Fishing']);
    expect(reasonOf('Location: /x\r\n\r\n')).toEqual(['Found', 'Found']);
    expect(reasonOf('X: 1\r\n\r\n')).toEqual(['OK', 'OK']);
  });

  it('says where a malformed line starts in the header block', () => {
    try {
      parse('X-A: 1\r\nnot a header\r\n\r\n');
      throw new Error('did not throw');
    } catch (error) {
      expect(error).toBeInstanceOf(ProtocolError);
      expect((error as ProtocolError).offset).toBe(8);
    }
  });

  it('tells a header line from output written before the headers', () => {
    expect(isHeaderLine('Content-Type: text/plain')).toBe(true);
    expect(isHeaderLine('X-Empty:')).toBe(true);
    expect(isHeaderLine('hello world')).toBe(false);
    expect(isHeaderLine('Bad Name: x')).toBe(false);
    expect(isHeaderLine(': x')).toBe(false);
  });
});

// The header block's rules written as plainly as possible (a line at a time, regular expressions), to check the
// parser's string-cutting against: the same head, or the same error code, for any block.
function referenceParse(block: string): { status: number; rawHeaders: string[]; headers: object } | string {
  const rawHeaders: string[] = [];
  const headers: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  let status: string | null = null;
  let location = false;
  for (const raw of block.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') break;
    const colon = line.indexOf(':');
    const name = colon === -1 ? '' : line.slice(0, colon);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return 'FCGI_ERR_CGI_HEADER_MALFORMED';
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value)) return 'FCGI_ERR_CGI_HEADER_MALFORMED';
    const key = name.toLowerCase();
    if (key === 'status') {
      status = value;
      continue;
    }
    if (key === 'location') location = true;
    rawHeaders.push(name, value);
    const previous = headers[key];
    if (previous === undefined) headers[key] = key === 'set-cookie' ? [value] : value;
    else if (typeof previous === 'string') headers[key] = [previous, value];
    else previous.push(value);
  }
  if (status !== null) {
    const match = /^([1-9]\d\d)(?:[ \t]+(.*))?$/.exec(status);
    if (match === null) return 'FCGI_ERR_CGI_STATUS_INVALID';
    return { status: Number(match[1]), rawHeaders, headers };
  }
  return { status: location ? 302 : 200, rawHeaders, headers };
}

describe('CgiHeaderParser against the plain reading of the rules', () => {
  it('gives the same head or the same error for random header blocks', () => {
    // A small deterministic generator (xorshift), so a failure names a seed that reproduces it.
    let state = 0x2545f491;
    const next = (n: number): number => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % n;
    };
    const pick = <T>(items: readonly T[]): T => items[next(items.length)]!;
    const names = [
      'Content-Type',
      'X-Powered-By',
      'Set-Cookie',
      'Status',
      'Location',
      'content-length',
      'X_Odd',
      'Bad Name',
      '',
      'Näme',
      'a:b',
      'Na\rme',
    ];
    const pieces = [
      'text/html',
      ' ',
      '\t',
      '200 OK',
      '302',
      'abc',
      '\u00e9',
      '\u0001',
      '\u007f',
      '"q"',
      ':',
      '  x  ',
      '1xx',
      '\r',
    ];
    for (let round = 0; round < 3000; round++) {
      const seed = state;
      const lines: string[] = [];
      for (let n = next(5); n > 0; n--) {
        let value = '';
        for (let k = next(4); k > 0; k--) value += pick(pieces);
        lines.push(`${pick(names)}${next(8) === 0 ? '' : ':'}${value}${pick(['\r\n', '\n'])}`);
      }
      const block = `${lines.join('')}${pick(['\r\n', '\n'])}`;
      const expected = referenceParse(block);
      let got: { status: number; rawHeaders: string[]; headers: object } | string;
      try {
        const { head } = parse(block);
        got = { status: head.status, rawHeaders: head.rawHeaders, headers: head.headers };
      } catch (error) {
        got = (error as FastCGIError).code;
      }
      expect(got, `seed ${seed}: ${JSON.stringify(block)}`).toEqual(expected);
    }
  });
});
