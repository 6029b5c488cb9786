import { describe, expect, it } from 'vitest';
import { Flag, RecordType, Role } from '../../src/wire/constants';
import { setRequestId } from '../../src/wire/header';
import { encodeParams } from '../../src/wire/pairs';
import { encodeBeginRequest, encodeRecord, encodeStream } from '../../src/wire/records';
import { encodeRequest } from '../../src/wire/request-records';

describe('encodeRequest', () => {
  it('is BEGIN_REQUEST, the PARAMS stream and the STDIN stream, each ended, in one buffer', () => {
    const params: [string, string][] = [
      ['REQUEST_METHOD', 'POST'],
      ['CONTENT_LENGTH', '3'],
    ];
    const body = Buffer.from('abc');
    expect(encodeRequest({ requestId: 7, keepConn: true, params, stdin: body })).toEqual(
      Buffer.concat([
        encodeBeginRequest(7, Role.RESPONDER, Flag.KEEP_CONN),
        encodeParams(7, params),
        encodeStream(RecordType.STDIN, 7, body, { end: true }),
      ]),
    );
  });

  it('keeps the record boundaries of a STDIN list, leaves the stream open on request, and sends a filter its DATA', () => {
    const a = Buffer.from('ab');
    const b = Buffer.from('cde');
    expect(
      encodeRequest({ role: Role.FILTER, stdin: [a, b], endStdin: false, data: Buffer.from('d'), pad: false }),
    ).toEqual(
      Buffer.concat([
        encodeBeginRequest(1, Role.FILTER, 0),
        encodeParams(1, [], { pad: false }),
        encodeRecord(RecordType.STDIN, 1, a, { pad: false }),
        encodeRecord(RecordType.STDIN, 1, b, { pad: false }),
        encodeStream(RecordType.DATA, 1, Buffer.from('d'), { pad: false, end: true }),
      ]),
    );
  });

  it('can be re-addressed to another request id by setRequestId', () => {
    const request = encodeRequest({
      params: [
        ['A', 'x'.repeat(60_000)],
        ['B', 'y'],
      ],
      stdin: Buffer.alloc(60_000, 1),
    });
    setRequestId(request, 513);
    expect(request).toEqual(
      encodeRequest({
        requestId: 513,
        params: [
          ['A', 'x'.repeat(60_000)],
          ['B', 'y'],
        ],
        stdin: Buffer.alloc(60_000, 1),
      }),
    );
  });
});
