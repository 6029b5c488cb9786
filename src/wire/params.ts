// Params: a lazy view of one request's name-value pairs. Strings are made on first access only: one latin1
// string per params block, then a `substring` per field (zero-copy in V8 for longer fields), and known names
// come from the interned KNOWN_NAMES table. Values are bytes (latin1), never UTF-8 with replacement.
import { isAscii } from 'node:buffer';
import {
  NAME_UNKNOWN,
  PAIR_NAME_ID,
  PAIR_NAME_LENGTH,
  PAIR_NAME_OFFSET,
  PAIR_STRIDE,
  PAIR_VALUE_LENGTH,
  PAIR_VALUE_OFFSET,
} from '../codec/layout';
import { KNOWN_NAMES, KNOWN_NAME_IDS } from '../codec/known-names';

const NON_ASCII = /[^\x00-\x7f]/;

/** The params of one request, decoded lazily. Later duplicates win in `get`; `getAll` returns every value. */
export class Params implements Iterable<[string, string]> {
  readonly #block: Buffer;
  readonly #pairs: Uint32Array;
  readonly #count: number;
  #text: string | null = null;
  /** @internal Bytes charged to the server's buffer budget for this block, released when the request ends. */
  retainedBytes = 0;
  #utf8 = false;

  /** @internal Made by the decoder: `pairs` holds count * PAIR_STRIDE descriptors into `block`. */
  constructor(block: Buffer, pairs: Uint32Array) {
    this.#block = block;
    this.#pairs = pairs;
    this.#count = pairs.length / PAIR_STRIDE;
  }

  /** Number of pairs, duplicates included. */
  get size(): number {
    return this.#count;
  }

  /** Size of the params block in bytes. */
  get byteLength(): number {
    return this.#block.length;
  }

  /**
   * @internal Names and values decode as UTF-8 from now on (node-fastcgi did; the drop-in must show an app
   * what node-fastcgi showed it). Invalid sequences become U+FFFD, as there.
   */
  decodeUtf8(): void {
    // ASCII reads the same in UTF-8 and latin1: a block of ASCII bytes keeps the latin1 path (one decode of the
    // whole block) instead of a native decode per name and value (the drop-in's params, bench:ab --handler
    // drop-in). A block with a value of 128 bytes or more is not ASCII (its length's high bit), so #utf8At
    // also looks at each string.
    this.#utf8 = !isAscii(this.#block);
  }

  // A name or value in UTF-8 mode: its latin1 reading when that is ASCII, else its UTF-8 decode.
  #utf8At(offset: number, end: number): string {
    const text = this.#string().substring(offset, end);
    return NON_ASCII.test(text) ? this.#block.toString('utf8', offset, end) : text;
  }

  #string(): string {
    return (this.#text ??= this.#block.toString('latin1'));
  }

  /** The known-name id of pair i (an index into KNOWN_NAMES), or NAME_UNKNOWN (0xffffffff). */
  nameIdAt(i: number): number {
    return this.#pairs[i * PAIR_STRIDE + PAIR_NAME_ID]!;
  }

  /** The name of pair i. */
  nameAt(i: number): string {
    const base = i * PAIR_STRIDE;
    const id = this.#pairs[base + PAIR_NAME_ID]!;
    if (id !== NAME_UNKNOWN) return KNOWN_NAMES[id]!;
    const offset = this.#pairs[base + PAIR_NAME_OFFSET]!;
    const end = offset + this.#pairs[base + PAIR_NAME_LENGTH]!;
    return this.#utf8 ? this.#utf8At(offset, end) : this.#string().substring(offset, end);
  }

  /** The value of pair i, as a byte string (latin1). */
  valueAt(i: number): string {
    const base = i * PAIR_STRIDE;
    const offset = this.#pairs[base + PAIR_VALUE_OFFSET]!;
    const end = offset + this.#pairs[base + PAIR_VALUE_LENGTH]!;
    return this.#utf8 ? this.#utf8At(offset, end) : this.#string().substring(offset, end);
  }

  /** The raw bytes of pair i's value, as a zero-copy view (decode UTF-8 yourself where you expect it). */
  valueBytesAt(i: number): Buffer {
    const base = i * PAIR_STRIDE;
    const offset = this.#pairs[base + PAIR_VALUE_OFFSET]!;
    return this.#block.subarray(offset, offset + this.#pairs[base + PAIR_VALUE_LENGTH]!);
  }

  /** The raw bytes of pair i's name, as a zero-copy view. */
  nameBytesAt(i: number): Buffer {
    const base = i * PAIR_STRIDE;
    const offset = this.#pairs[base + PAIR_NAME_OFFSET]!;
    return this.#block.subarray(offset, offset + this.#pairs[base + PAIR_NAME_LENGTH]!);
  }

  // Index of the last pair named `name`, or -1; known names compare as integers, others without allocating.
  #lastIndexOf(name: string, before = this.#count): number {
    const pairs = this.#pairs;
    const id = KNOWN_NAME_IDS.get(name);
    if (id !== undefined) {
      for (let i = before - 1; i >= 0; i--) if (pairs[i * PAIR_STRIDE + PAIR_NAME_ID] === id) return i;
      return -1;
    }
    // Names are matched as bytes: in UTF-8 mode, a non-ASCII name is looked up by its UTF-8 bytes.
    if (this.#utf8 && /[^\x00-\x7f]/.test(name)) name = Buffer.from(name, 'utf8').toString('latin1');
    for (let i = before - 1; i >= 0; i--) {
      const base = i * PAIR_STRIDE;
      if (pairs[base + PAIR_NAME_ID] === NAME_UNKNOWN && pairs[base + PAIR_NAME_LENGTH] === name.length) {
        if (this.#string().startsWith(name, pairs[base + PAIR_NAME_OFFSET])) return i;
      }
    }
    return -1;
  }

  /** The value of the last pair named `name` (CGI variables: the last one wins), or undefined. */
  get(name: string): string | undefined {
    const i = this.#lastIndexOf(name);
    return i < 0 ? undefined : this.valueAt(i);
  }

  /** Whether a pair named `name` is present. */
  has(name: string): boolean {
    return this.#lastIndexOf(name) >= 0;
  }

  /** Every value named `name`, in arrival order (nginx and h2o send duplicates). */
  getAll(name: string): string[] {
    const values: string[] = [];
    for (let i = this.#lastIndexOf(name); i >= 0; i = this.#lastIndexOf(name, i)) values.push(this.valueAt(i));
    return values.reverse();
  }

  /** Pairs in arrival order, duplicates included. */
  *[Symbol.iterator](): IterableIterator<[string, string]> {
    for (let i = 0; i < this.#count; i++) yield [this.nameAt(i), this.valueAt(i)];
  }

  /** Pairs in arrival order, duplicates included. */
  entries(): IterableIterator<[string, string]> {
    return this[Symbol.iterator]();
  }

  /**
   * An object of every param, later duplicates winning (`req.socket.params`). By default it has a null
   * prototype, so a param named `__proto__` or `hasOwnProperty` is just a key. `'plain'` makes the object
   * node-fastcgi made (the drop-in's): `Object.prototype` behind it, and a param named `__proto__` dropped (a
   * string cannot become a prototype, so the assignment does nothing, as there).
   */
  toObject(shape: 'null-prototype' | 'plain' = 'null-prototype'): Record<string, string> {
    const object = shape === 'plain' ? ({} as Record<string, string>) : (Object.create(null) as Record<string, string>);
    for (let i = 0; i < this.#count; i++) object[this.nameAt(i)] = this.valueAt(i);
    return object;
  }
}
