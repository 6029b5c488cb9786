// `request.body` of the fetch API's light request: a ReadableStream by prototype, made into a real one
// (web-body.ts) only when something reads it. On Node 20 `new ReadableStream()` costs 11-14 µs (its constructor
// makes every stream transferable: a C++ object with a weak handle), which a handler that never reads the body,
// or reads it with text()/json()/arrayBuffer() without asking for `request.body` first (light-request.ts then
// reads STDIN itself), does not pay.
//
// Every read goes to the real stream, `for await` included. Until this was measured with an application-sized
// heap, `for await` had a path of its own that queued STDIN for the iterator without a stream: 1.00-1.10x the
// http API's CPU on a 1 MB upload in a process holding only the benchmark, but with 4 MB of long-lived objects
// added (bench/apps/ballast.cjs) 1.7-2.3x, 40-90 mark-compacts per 2,500 uploads and ~170 KB surviving each
// scavenge, where the real stream's iterator made 0-1 and 26 KB (README, "End to end", fetch API).
//
// LightBody forwards a stream's internal slots (own symbol-keyed properties: its state, its brand) to the real
// stream, so Node's and undici's own functions (Readable.fromWeb, new Response(body)) see the real stream's state
// through it (test/server/fetch-body.test.ts runs each of them). One thing a LightBody cannot do is be
// transferred to a worker (postMessage's transfer list takes only the real object): `request.body.tee()[0]` can.
import type { RequestSocket } from '../request-socket';
import { Readable } from 'node:stream';
import { webBody } from './web-body';

// The internal slots of a ReadableStream, as one made now has them.
const SLOTS: readonly symbol[] = Object.getOwnPropertySymbols(new ReadableStream());

/**
 * Whether this Node keeps a stream's state where LightBody can forward it (an own `kState` symbol, as Node 20
 * does; other versions are not tested here); where it does not, the light request hands out real streams.
 */
export const lightBodySupported = SLOTS.some((slot) => slot.description === 'kState');

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

/**
 * A request body that is a ReadableStream to every test (`instanceof`, its methods, Node's and undici's
 * functions) and costs a stream only when something reads it.
 */
export class LightBody {
  readonly #request: RequestSocket;
  #real: ReadableStream<Uint8Array> | null = null;

  constructor(request: RequestSocket) {
    this.#request = request;
  }

  /** @internal The real stream, made now if it was not. */
  [kStream](): ReadableStream<Uint8Array> {
    this.#real ??= webBody(this.#request);
    return this.#real;
  }

  /** @internal Whether a real stream made for this body was read. */
  get [kDisturbed](): boolean {
    return this.#real !== null && disturbed(this.#real);
  }

  get locked(): boolean {
    return this.#real !== null && this.#real.locked;
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
    return (this[kStream]() as unknown as { values(o?: object): AsyncIterableIterator<Uint8Array> }).values(options);
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
