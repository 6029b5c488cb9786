// A memo for what is worked out from a header or variable name (its HTTP_ form, its lower-case key): the same
// few names come with every request, and working each out again was a measurable part of a request's cost.

/** Names longer than this are worked out every time, never kept. */
export const MAX_CACHED_NAME = 64;

/**
 * NameCache remembers `compute(name)` for up to `capacity` names of at most MAX_CACHED_NAME characters. What it
 * keeps is bounded whatever a peer sends: a name it has not seen is copied before it is kept, since a name cut
 * out of a larger string (a params block, a header block) is a V8 sliced string that would keep the whole block
 * alive, other requests' cookies with it; and once full it starts over, so made-up names cannot keep the real
 * ones out for good.
 */
export class NameCache<V> {
  readonly #values = new Map<string, V>();
  readonly #compute: (name: string) => V;
  readonly #capacity: number;

  constructor(compute: (name: string) => V, capacity = 1024) {
    this.#compute = compute;
    this.#capacity = capacity;
  }

  /** How many names are kept now. */
  get size(): number {
    return this.#values.size;
  }

  get(name: string): V {
    const known = this.#values.get(name);
    if (known !== undefined) return known;
    if (name.length > MAX_CACHED_NAME) return this.#compute(name);
    // split + join makes a new flat string, whatever the characters (a latin1 round trip would not).
    const own = name.split('').join('');
    const value = this.#compute(own);
    if (this.#values.size >= this.#capacity) this.#values.clear();
    this.#values.set(own, value);
    return value;
  }
}
