// A web ReadableStream over the request body's Node stream, for `request.body` of the fetch API. Node 20's
// Readable.toWeb copies every Buffer into a new Uint8Array, and `readable.read()` concatenates whatever is
// buffered; here each chunk the Node stream emits is handed over as a view of the same memory, one chunk per
// pull (a 1 MB upload: no copy and no garbage per chunk). Backpressure is the pull: the Node stream is paused
// once 64 KiB wait unread and resumed when the reader asks for more, so the connection reads no further ahead.
import type { Readable } from 'node:stream';

/** `stream` as a ReadableStream of Uint8Array views; `onPull` runs on the first read (the body is then disturbed). */
export function webBody(stream: Readable, onPull: () => void): ReadableStream<Uint8Array> {
  let first = true;
  let settled = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        stream.on('data', (chunk: Buffer) => {
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) stream.pause();
        });
        stream.once('end', () => {
          if (settled) return;
          settled = true;
          controller.close();
        });
        stream.once('error', (error: unknown) => {
          if (settled) return;
          settled = true;
          controller.error(error);
        });
        // Attaching 'data' set it flowing: nothing is read until the reader asks.
        stream.pause();
      },
      pull() {
        if (first) {
          first = false;
          onPull();
        }
        stream.resume();
      },
      cancel(reason: unknown) {
        settled = true;
        stream.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    // Up to 64 KiB queued before the Node stream is paused: a pause and resume per small STDIN record (nginx
    // sends 8-32 KiB ones) cost more than the bytes.
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );
}
