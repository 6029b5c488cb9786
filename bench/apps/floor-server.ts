// The least a Node FastCGI backend can do per request, as a baseline for the engine's rows in bench:e2e: the
// engine's record decoder and the e2e handlers' answers (bench/apps/e2e-handlers.ts), with no API around them
// (no request or response objects, streams, timers, limits or logging). Each answer is its STDOUT records, the
// empty STDOUT and END_REQUEST, encoded once per route and request id and sent in one write; an upload's STDIN
// pieces go straight into its sha256. A measuring device only: it trusts its peer (nginx or HAProxy) and
// serves no application.
import { createHash, type Hash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Flag, ProtocolStatus, RecordType } from '../../src/wire/constants';
import { Decoder } from '../../src/wire/decoder';
import type { Params } from '../../src/wire/params';
import { encodeEndRequest, encodeStream } from '../../src/wire/records';
import { letters, routeOf } from './e2e-handlers';

function cgi(status: string, body: Buffer): Buffer {
  const head = `Status: ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

const OUTPUT: ReadonlyMap<string, Buffer> = new Map([
  ['hello', cgi('200 OK', Buffer.from('hello world\n'))],
  ['4k', cgi('200 OK', letters(4096))],
  ['64k', cgi('200 OK', letters(65536))],
]);
const NOT_FOUND = cgi('404 Not Found', Buffer.from('not found\n'));

// Encoded answers by route and request id (nginx numbers requests from 1 on each connection).
const encoded = new Map<string, Buffer>();

function answer(output: Buffer, key: string | null, requestId: number): Buffer {
  const cacheKey = key === null ? null : `${key} ${requestId}`;
  let records = cacheKey === null ? undefined : encoded.get(cacheKey);
  if (records === undefined) {
    records = Buffer.concat([
      encodeStream(RecordType.STDOUT, requestId, output, { end: true }),
      encodeEndRequest(requestId, 0, ProtocolStatus.REQUEST_COMPLETE),
    ]);
    if (cacheKey !== null) encoded.set(cacheKey, records);
  }
  return records;
}

interface Pending {
  keep: boolean;
  route: string;
  post: boolean;
  hash: Hash | null;
}

function serve(socket: Socket): void {
  const pending = new Map<number, Pending>();
  const decoder = new Decoder({
    onRecord(type, requestId, content) {
      if (type === RecordType.BEGIN_REQUEST) {
        const keep = ((content[2] ?? 0) & Flag.KEEP_CONN) !== 0;
        pending.set(requestId, { keep, route: '', post: false, hash: null });
        return;
      }
      if (type !== RecordType.STDIN) return;
      const request = pending.get(requestId);
      if (request === undefined) return;
      if (content.length > 0) {
        request.hash?.update(content);
        return;
      }
      pending.delete(requestId);
      if (request.hash !== null) {
        const digest = Buffer.from(request.hash.digest('hex'), 'latin1');
        socket.write(answer(cgi('200 OK', digest), null, requestId));
      } else {
        const output = request.post ? undefined : OUTPUT.get(request.route);
        socket.write(answer(output ?? NOT_FOUND, output === undefined ? '404' : request.route, requestId));
      }
      if (!request.keep) socket.end();
    },
    onParams(requestId: number, params: Params) {
      const request = pending.get(requestId);
      if (request === undefined) return;
      request.route = routeOf(params.get('REQUEST_URI') ?? '');
      request.post = params.get('REQUEST_METHOD') === 'POST';
      if (request.post && request.route === 'echo') request.hash = createHash('sha256');
    },
    onError() {
      socket.destroy();
    },
  });
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.on('error', () => socket.destroy());
}

/** The floor backend: a net.Server to listen on a unix socket or TCP port. */
export function floorServer(): Server {
  return createServer(serve);
}
