// A web ReadableStream over a FastCGI request's body, for `request.body` of the fetch API. The request's STDIN
// pieces are enqueued as they arrive (views of the same memory, no copy), with no Node stream in between: a
// Readable under the web stream cost a pause, a resume and a nextTick per piece, and made a 1 MB upload through
// nginx (21 KiB pieces) cost the fetch server 1.4-1.8x the http API's CPU (bench:e2e, post-1m).
//
// Backpressure: the web stream's own high-water mark is 0, so it asks for more (pull) only when a read waits on
// an empty queue. Until then pieces wait in its queue, and the request stops reading its connection once
// inputHighWaterMark bytes wait unread there and in the request (RequestSocket: `unread`, `readableLength`
// below): the same bound the http API's body stream has.
import type { BodySink, RequestSocket } from '../request-socket';

/** STDIN into a web stream's controller, as RequestSocket feeds a body sink. */
class WebBodySink implements BodySink {
  readonly #controller: ReadableStreamDefaultController<Uint8Array>;
  // Closed, errored or cancelled: nothing more goes to the controller.
  #over = false;

  constructor(controller: ReadableStreamDefaultController<Uint8Array>) {
    this.#controller = controller;
  }

  /** Bytes enqueued and not read yet: with a high-water mark of 0, desiredSize is minus that. */
  get readableLength(): number {
    return this.#over ? 0 : -(this.#controller.desiredSize ?? 0);
  }

  push(chunk: Buffer | null): boolean {
    if (this.#over) return true;
    if (chunk === null) {
      this.#over = true;
      this.#controller.close();
      return false;
    }
    // RequestSocket pushes an empty chunk to end a read with nothing new; a web stream needs no such thing.
    if (chunk.length > 0) this.#controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    return false;
  }

  destroy(error?: Error): void {
    if (this.#over) return;
    this.#over = true;
    this.#controller.error(error);
  }

  /** The reader cancelled: what still arrives is dropped (and its memory given back as it is fed). */
  cancel(): void {
    this.#over = true;
  }
}

/**
 * `request`'s body as a ReadableStream of Uint8Array views. It becomes the request's body sink: nothing else may
 * read the body. Whether it was read is the stream's own disturbed state (node:stream's isDisturbed): a read
 * served from what was queued before it runs no pull.
 */
export function webBody(request: RequestSocket): ReadableStream<Uint8Array> {
  let sink: WebBodySink;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        sink = new WebBodySink(controller);
        request.setBodySink(sink);
      },
      pull() {
        // Hands over what waits (or marks the next piece wanted) and lets the connection read again.
        request.resumeInput();
      },
      cancel() {
        sink.cancel();
        // Drains what waits, so the connection is not left paused on bytes nobody will read.
        request.resumeInput();
      },
    },
    { highWaterMark: 0, size: (chunk) => chunk.byteLength },
  );
}
