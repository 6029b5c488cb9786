// IdTable: what a connection keeps per request id (FastCGI 1.0 §3.3: ids 1-65535, unique among the requests in
// flight on one connection). Web servers other than HAProxy's fcgi-app never multiplex, so a connection almost
// always has one request in flight, and that one sits in a field; a Map holds the others. A long-lived Map that
// gets a new request object set and deleted on every request cost 0.2-0.6 µs per pair on Node 20 (the table
// shrinking and growing back each time, the old-to-new-space write barrier), against nothing measurable for a
// field; a connection does this in its decoder and its request table (bench/e2e hello profile).

/** A table keyed by request id, for the usual single request in flight without a Map operation. */
export class IdTable<T> {
  #id = -1;
  #value: T | undefined = undefined;
  #more: Map<number, T> | null = null;

  /** Entries in the table. */
  get size(): number {
    return (this.#id === -1 ? 0 : 1) + (this.#more === null ? 0 : this.#more.size);
  }

  get(id: number): T | undefined {
    if (id === this.#id) return this.#value;
    return this.#more === null ? undefined : this.#more.get(id);
  }

  has(id: number): boolean {
    return id === this.#id || (this.#more !== null && this.#more.has(id));
  }

  set(id: number, value: T): void {
    if (id === this.#id) this.#value = value;
    else if (this.#more !== null && this.#more.has(id)) this.#more.set(id, value);
    else if (this.#id === -1) {
      this.#id = id;
      this.#value = value;
    } else (this.#more ??= new Map()).set(id, value);
  }

  /** Removes `id`; whether it was there. */
  delete(id: number): boolean {
    if (id === this.#id) {
      this.#id = -1;
      this.#value = undefined;
      return true;
    }
    return this.#more !== null && this.#more.delete(id);
  }

  /** The values, as a new array (safe to change the table while walking it). */
  values(): T[] {
    const values: T[] = this.#id === -1 ? [] : [this.#value as T];
    if (this.#more !== null) for (const value of this.#more.values()) values.push(value);
    return values;
  }

  clear(): void {
    this.#id = -1;
    this.#value = undefined;
    this.#more = null;
  }
}
