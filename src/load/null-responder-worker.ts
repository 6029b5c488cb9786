// The null responder's thread (null-responder.ts): a FastCGI application that answers every request at once
// with the same 12-byte response and does nothing else, so a load generator run against it measures the
// generator, the kernel and the socket, not an application. Records are read with the engine's Decoder.
import { createServer, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { Flag, ProtocolStatus, RecordType } from '../wire/constants';
import { encodeEndRequest, encodeStream } from '../wire/records';
import { Decoder } from '../wire/decoder';

const BODY = Buffer.from('Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n', 'latin1');
const replies = new Map<number, Buffer>();

// One reply per request id, encoded once: STDOUT, the empty STDOUT and END_REQUEST in one write.
function replyFor(requestId: number): Buffer {
  let reply = replies.get(requestId);
  if (reply === undefined) {
    reply = Buffer.concat([encodeStream(RecordType.STDOUT, requestId, BODY, { end: true }), encodeEndRequest(requestId, 0, ProtocolStatus.REQUEST_COMPLETE)]);
    replies.set(requestId, reply);
  }
  return reply;
}

function serve(socket: Socket): void {
  const keep = new Set<number>();
  const decoder = new Decoder(
    {
      onRecord(type, requestId, content) {
        if (type === RecordType.BEGIN_REQUEST) {
          if (((content[2] ?? 0) & Flag.KEEP_CONN) !== 0) keep.add(requestId);
          else keep.delete(requestId);
        } else if (type === RecordType.STDIN && content.length === 0) {
          socket.write(replyFor(requestId));
          if (!keep.has(requestId)) socket.end();
        }
      },
      onParams() {},
      onError() {
        socket.destroy();
      },
    },
    { collectParams: false },
  );
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  socket.on('error', () => socket.destroy());
}

const server = createServer(serve);
server.listen((workerData as { path: string }).path, () => parentPort!.postMessage('listening'));
parentPort!.on('message', (message: unknown) => {
  if (message === 'close') server.close(() => process.exit(0));
});
