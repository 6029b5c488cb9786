// `request.body` of the fetch API's light request: a ReadableStream by prototype, made into a real one only when
// something needs one. On Node 20 `new ReadableStream()` costs 11-14 µs (its constructor makes every stream
// transferable: a C++ object with a weak handle, which the collector then works through), and a 1 MB upload
// read with `for await` through a real stream drew 35-39 mark-compact collections per 2,000 requests against 6
// for the http API (README, "End to end"). The common case, `for await (const chunk of request.body)`, is served
// here straight from the request's STDIN: no stream object, one promise per chunk.
//
// Everything else goes to a real stream (web-body.ts), made on first need: getReader, pipeTo, pipeThrough, tee,
// cancel, and Node's or undici's own functions (Readable.fromWeb, new Response(body)), which reach a stream's
// internal slots. Those slots are own symbol-keyed properties of every ReadableStream (its state, its brand);
// LightBody forwards them to the real stream, so those functions see the real stream's state through it
// (test/server/fetch-body.test.ts runs each of them). One thing a LightBody cannot do is be transferred to a
// worker (postMessage's transfer list takes only the real object): `request.body.tee()[0]` can.
import type { BodySink, RequestSocket } from '../request-socket';
import { Readable } from 'node:stream';
import { webBody } from './web-body';

// The internal slots of a ReadableStream, as one made now has them.
const SLOTS: readonly symbol[] = Object.getOwnPropertySymbols(new ReadableStream());

/**
 * Whether this Node keeps a stream's state where LightBody can forward it (an own `kState` symbol, as Node 20
 * does; other versions are not tested here); where it does not, the light request hands out real streams.
 */
export const lightBodySupported = SLOTS.some((slot) => slot.description === 'kState');

const AsyncIteratorPrototype = Object.getPrototypeOf(
  Object.getPrototypeOf((async function* () {})()) as object,
) as object;

const kStream = Symbol('fastcgi.lightBody.stream');
const kDisturbed = Symbol('fastcgi.lightBody.disturbed');

// node:stream's isDisturbed, which takes web streams too (their typings say Node streams only).
function disturbed(stream: ReadableStream<Uint8Array>): boolean {
  return Readable.isDisturbed(stream as unknown as NodeJS.ReadableStream);
}

/** Whether `body` (a light request's body: a LightBody or a real stream) was read from. */
export function bodyDisturbed(body: ReadableStream<Uint8Array>): boolean {
  // isDisturbed on a LightBody would reach its forwarded state slot and make the real stream for nothing.
  return body instanceof LightBody ? body[kDisturbed] : disturbed(body);
}

type PipeOptions = Parameters<ReadableStream<Uint8Array>['pipeTo']>[1];
type Pair<T> = Parameters<ReadableStream<Uint8Array>['pipeThrough']>[0] & { readable: ReadableStream<T> };

interface Waiter {
  resolve(result: IteratorResult<Uint8Array, undefined>): void;
  reject(error: unknown): void;
}

/** STDIN for a `for await` over the body: what arrives is queued for the iterator's next() (a BodySink). */
class DirectBody implements BodySink {
  readonly #request: RequestSocket;
  readonly #onRead: () => void;
  #queue: Uint8Array[] = [];
  #bytes = 0;
  #waiters: Waiter[] = [];
  #ended = false;
  #error: unknown = null;
  // Cancelled (a break out of the loop): what still arrives is dropped, and its memory given back as it is fed.
  #cancelled = false;
  #read = false;

  constructor(request: RequestSocket, onRead: () => void) {
    this.#request = request;
    this.#onRead = onRead;
  }

  /** Bytes queued and not read yet (RequestSocket stops reading the connection at inputHighWaterMark). */
  get readableLength(): number {
    return this.#bytes;
  }

  push(chunk: Buffer | null): boolean {
    if (this.#cancelled || this.#error !== null) return false;
    if (chunk === null) {
      this.#ended = true;
      for (const waiter of this.#waiters.splice(0)) waiter.resolve({ value: undefined, done: true });
      return false;
    }
    // RequestSocket pushes an empty chunk to end a read with nothing new; an iterator needs no such thing.
    if (chunk.length === 0) return false;
    const view = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter.resolve({ value: view, done: false });
    else {
      this.#queue.push(view);
      this.#bytes += view.byteLength;
    }
    return false;
  }

  destroy(error?: Error): void {
    if (this.#cancelled || this.#ended || this.#error !== null) return;
    // As a web stream's controller.error(): what was queued is dropped and every read rejects.
    this.#error = error ?? new Error('the request body was destroyed');
    this.#queue = [];
    this.#bytes = 0;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#error);
  }

  next(): Promise<IteratorResult<Uint8Array, undefined>> {
    if (!this.#read) {
      this.#read = true;
      this.#onRead();
    }
    const chunk = this.#queue.shift();
    if (chunk !== undefined) {
      this.#bytes -= chunk.byteLength;
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.#error !== null) return Promise.reject(this.#error);
    if (this.#ended || this.#cancelled) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      // Hands over what waits (or marks the next piece wanted) and lets the connection read again.
      this.#request.resumeInput();
    });
  }

  /** A break, return or throw out of the loop: the rest of the body is drained and dropped. */
  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#queue = [];
    this.#bytes = 0;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve({ value: undefined, done: true });
    this.#request.resumeInput();
  }
}

/** The async iterator a `for await` gets from a LightBody (ReadableStream's values(), read directly). */
function directIterator(body: DirectBody): AsyncIterableIterator<Uint8Array> {
  const iterator = Object.create(AsyncIteratorPrototype) as AsyncIterableIterator<Uint8Array>;
  iterator.next = () => body.next();
  iterator.return = (value?: unknown) => {
    body.cancel();
    return Promise.resolve({ value: value as undefined, done: true });
  };
  return iterator;
}

/**
 * A request body that is a ReadableStream to every test (`instanceof`, its methods, Node's and undici's
 * functions) and costs a stream only when something other than `for await` reads it.
 */
export class LightBody {
  readonly #request: RequestSocket;
  readonly #onRead: () => void;
  #real: ReadableStream<Uint8Array> | null = null;
  #direct: DirectBody | null = null;

  constructor(request: RequestSocket, onRead: () => void) {
    this.#request = request;
    this.#onRead = onRead;
  }

  /** @internal The real stream, made now if it was not; a locked one once a `for await` took the body. */
  [kStream](): ReadableStream<Uint8Array> {
    if (this.#real === null) {
      if (this.#direct !== null) {
        // The body is being (or was) iterated: as a real stream would be, this one is locked.
        this.#real = new ReadableStream<Uint8Array>();
        this.#real.getReader();
      } else this.#real = webBody(this.#request);
    }
    return this.#real;
  }

  /** @internal Whether a real stream made for this body was read (a `for await` reports its reads itself). */
  get [kDisturbed](): boolean {
    return this.#real !== null && disturbed(this.#real);
  }

  get locked(): boolean {
    return this.#real !== null ? this.#real.locked : this.#direct !== null;
  }

  cancel(reason?: unknown): Promise<void> {
    return this[kStream]().cancel(reason);
  }

  getReader(options?: { mode?: undefined }): ReadableStreamDefaultReader<Uint8Array>;
  getReader(options: { mode: 'byob' }): ReadableStreamBYOBReader;
  getReader(options?: { mode?: 'byob' }): ReadableStreamDefaultReader<Uint8Array> | ReadableStreamBYOBReader {
    return this[kStream]().getReader(options as { mode: 'byob' });
  }

  pipeTo(destination: WritableStream<Uint8Array>, options?: PipeOptions): Promise<void> {
    return this[kStream]().pipeTo(destination, options);
  }

  pipeThrough<T>(transform: Pair<T>, options?: PipeOptions): ReadableStream<T> {
    return this[kStream]().pipeThrough(transform, options);
  }

  tee(): [ReadableStream<Uint8Array>, ReadableStream<Uint8Array>] {
    return this[kStream]().tee();
  }

  values(options?: { preventCancel?: boolean }): AsyncIterableIterator<Uint8Array> {
    // preventCancel leaves the stream readable after a break, which only the real stream can be.
    if (this.#real !== null || this.#direct !== null || options?.preventCancel === true) {
      return (this[kStream]() as unknown as { values(o?: object): AsyncIterableIterator<Uint8Array> }).values(options);
    }
    const direct = new DirectBody(this.#request, this.#onRead);
    this.#direct = direct;
    this.#request.setBodySink(direct);
    return directIterator(direct);
  }

  [Symbol.asyncIterator](options?: { preventCancel?: boolean }): AsyncIterableIterator<Uint8Array> {
    return this.values(options);
  }
}

Object.setPrototypeOf(LightBody.prototype, ReadableStream.prototype);
for (const slot of SLOTS) {
  Object.defineProperty(LightBody.prototype, slot, {
    get(this: LightBody) {
      return (this[kStream]() as unknown as Record<symbol, unknown>)[slot];
    },
    set(this: LightBody, value: unknown) {
      (this[kStream]() as unknown as Record<symbol, unknown>)[slot] = value;
    },
  });
}
