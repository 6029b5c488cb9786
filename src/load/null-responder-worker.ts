// The null responder's thread (null-responder.ts): a FastCGI application that answers every request at once
// with the same 12-byte response and does nothing else, so a load generator run against it measures the
// generator, the kernel and the socket, not an application. Records are read with the engine's Decoder.
import { createServer, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { Flag, ProtocolStatus, RecordType } from '../wire/constants';
import { encodeEndRequest, encodeStream } from '../wire/records';
import { Decoder } from '../wire/decoder';

const { path, serviceTimeUs } = workerData as { path: string; serviceTimeUs: number };
const sleeper = new Int32Array(new SharedArrayBuffer(4));

// Holds this thread for `us` µs: a futex sleep for all but the last 200 µs (the kernel wakes it up to ~100 µs
// late on a VM), then a spin on the monotonic clock, so the service time is exact without spinning through it.
function serviceTime(us: number): void {
  const until = process.hrtime.bigint() + BigInt(Math.round(us * 1000));
  const sleepMs = (us - 200) / 1000;
  if (sleepMs > 0) Atomics.wait(sleeper, 0, 0, sleepMs);
  while (process.hrtime.bigint() < until);
}

const BODY = Buffer.from(
  'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n',
  'latin1',
);
const replies = new Map<number, Buffer>();

// One reply per request id, encoded once: STDOUT, the empty STDOUT and END_REQUEST in one write.
function replyFor(requestId: number): Buffer {
  let reply = replies.get(requestId);
  if (reply === undefined) {
    reply = Buffer.concat([
      encodeStream(RecordType.STDOUT, requestId, BODY, { end: true }),
      encodeEndRequest(requestId, 0, ProtocolStatus.REQUEST_COMPLETE),
    ]);
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
          if (serviceTimeUs > 0) serviceTime(serviceTimeUs);
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
server.listen(path, () => parentPort!.postMessage('listening'));
parentPort!.on('message', (message: unknown) => {
  if (message === 'close') server.close(() => process.exit(0));
});
