// BufferBudget: how many bytes the server holds on behalf of its peers (params being collected or kept for a
// request in flight, request bodies not yet read by the application). One budget per connection draws on one
// per server, so a single connection cannot hold more than its share, and all of them together cannot hold
// more than the server's: the memory a peer can make the process hold is bounded by these numbers, not by how
// it cuts its records (test/server/abuse.test.ts).

/** What a budget asks of the connection that owns it. */
export interface BudgetOwner {
  /** The server is over its budget and this connection holds the most: free what it holds (close it). */
  evict(used: number, limit: number): void;
  /** The budget fell back under its limit: a connection paused for it may read again. */
  budgetAvailable(): void;
}

/** A byte budget; a connection's has the server's as its parent. */
export class BufferBudget {
  readonly limit: number;
  #used = 0;
  readonly #parent: BufferBudget | null;
  readonly #owner: BudgetOwner | null;
  // Server budget: the connection budgets drawing on it; those paused waiting for room.
  readonly #children = new Set<BufferBudget>();
  readonly #waiting = new Set<BufferBudget>();

  constructor(limit: number, parent: BufferBudget | null = null, owner: BudgetOwner | null = null) {
    this.limit = limit;
    this.#parent = parent;
    this.#owner = owner;
    if (parent !== null) parent.#children.add(this);
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Whether this budget, or its parent, is over its limit. */
  get exhausted(): boolean {
    return this.#used > this.limit || (this.#parent !== null && this.#parent.#used > this.#parent.limit);
  }

  /**
   * Takes `bytes` that must fit (params): false, and nothing taken, when this budget would go over. When the
   * server's would, the connection holding the most is evicted first (not this one, unless it holds the most),
   * so one abusive connection cannot lock everyone else out.
   */
  tryCharge(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    const parent = this.#parent;
    if (parent !== null) {
      while (parent.#used + bytes > parent.limit) {
        const largest = parent.#largestChild();
        if (largest === null || largest === this || largest.#used < this.#used + bytes) return false;
        largest.#owner?.evict(parent.#used, parent.limit);
        // An owner that did not release (already closing) would loop forever: count its bytes as gone.
        if (parent.#children.has(largest)) largest.releaseAll();
      }
      parent.#used += bytes;
    }
    this.#used += bytes;
    return true;
  }

  /** Takes `bytes` that are already held (request bodies); the caller pauses while `exhausted`. */
  charge(bytes: number): void {
    this.#used += bytes;
    if (this.#parent !== null) this.#parent.#used += bytes;
  }

  /** Gives back `bytes`. */
  release(bytes: number): void {
    if (bytes <= 0) return;
    const n = Math.min(bytes, this.#used);
    this.#used -= n;
    const parent = this.#parent;
    if (parent !== null) {
      parent.#used -= n;
      if (parent.#waiting.size > 0 && parent.#used <= parent.limit) parent.#wakeWaiting();
    }
  }

  /** Gives back everything and leaves the parent (the connection closed). */
  releaseAll(): void {
    this.release(this.#used);
    const parent = this.#parent;
    if (parent !== null) {
      parent.#children.delete(this);
      parent.#waiting.delete(this);
    }
  }

  /** Asks for `budgetAvailable()` on the owner once the server's budget has room again. */
  waitForRoom(): void {
    if (this.#parent !== null) this.#parent.#waiting.add(this);
  }

  #largestChild(): BufferBudget | null {
    let largest: BufferBudget | null = null;
    for (const child of this.#children) if (largest === null || child.#used > largest.#used) largest = child;
    return largest;
  }

  #wakeWaiting(): void {
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const child of waiting) child.#owner?.budgetAvailable();
  }
}
