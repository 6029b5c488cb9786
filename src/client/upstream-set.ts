// UpstreamSet: which upstreams the balancer spans. Entries come from the options and client.addUpstream(); an
// entry naming a hostname becomes one upstream per address it resolves to, resolved again every
// resolveInterval so the pods behind a Kubernetes service can come and go. An upstream that leaves (removed, or
// gone from DNS) is drained: it gets no new requests and closes once those it has are over.
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors';
import type { ConnectTarget } from '../wire/address';
import type { LookupFunction, UpstreamSpec } from './balancer-options';
import type { Upstream } from './upstream';

/** Makes the upstream for one address of an entry. */
export type UpstreamFactory = (target: ConnectTarget, spec: UpstreamSpec) => Upstream;

/** What the set tells the balancer. */
export interface MembershipEvents {
  /** Upstreams joined or left, or a hostname's resolution ended: the queue may move, or have nowhere to go. */
  onMembershipChange(): void;
  /** A drained upstream closed: its counters leave the stats. */
  onRetired(upstream: Upstream): void;
}

interface Entry {
  readonly spec: UpstreamSpec;
  /** Its upstreams by address label. */
  readonly members: Map<string, Upstream>;
  /** A hostname waiting for its first answer. */
  isPending: boolean;
  isResolving: boolean;
  /** Why the last resolution failed, if it did. */
  error: Error | null;
}

const defaultLookup: LookupFunction = (hostname) => dnsLookup(hostname, { all: true });

/** @internal */
export class UpstreamSet {
  /** Upstreams in rotation (or able to be), in the order they joined: what the balancer picks from. */
  readonly active: Upstream[] = [];
  readonly #draining = new Set<Upstream>();
  readonly #entries = new Map<string, Entry>();
  readonly #make: UpstreamFactory;
  readonly #events: MembershipEvents;
  readonly #lookup: LookupFunction;
  readonly #interval: number;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(make: UpstreamFactory, events: MembershipEvents, lookup: LookupFunction | null, resolveInterval: number) {
    this.#make = make;
    this.#events = events;
    this.#lookup = lookup ?? defaultLookup;
    this.#interval = resolveInterval;
  }

  /** Whether a hostname still waits for its first resolution (requests wait for it rather than fail). */
  get isPending(): boolean {
    for (const entry of this.#entries.values()) if (entry.isPending) return true;
    return false;
  }

  /** Why hostnames gave no upstream, for the error of a request that has none. */
  get resolveErrors(): string[] {
    const errors: string[] = [];
    for (const entry of this.#entries.values()) {
      if (entry.error !== null && entry.members.size === 0) errors.push(`${entry.spec.key}: ${entry.error.message}`);
    }
    return errors;
  }

  /** Every upstream, those draining included (for stats and shutdown). */
  all(): Upstream[] {
    return [...this.active, ...this.#draining];
  }

  /** Adds an entry; throws InvalidArgumentError when its address is already there. */
  add(spec: UpstreamSpec): void {
    if (this.#entries.has(spec.key)) throw new InvalidArgumentError(`upstream ${spec.key} is already there`);
    const entry: Entry = { spec, members: new Map(), isPending: spec.target === null, isResolving: false, error: null };
    this.#entries.set(spec.key, entry);
    if (spec.target !== null) {
      this.#join(entry, spec.target);
      this.#events.onMembershipChange();
      return;
    }
    void this.#resolve(entry);
    if (this.#interval > 0 && this.#timer === null) {
      this.#timer = setInterval(onResolveTimer, this.#interval, this);
      this.#timer.unref();
    }
  }

  /** Removes an entry and drains its upstreams; resolves true once they have closed, false when there was no such entry. */
  async remove(key: string): Promise<boolean> {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    this.#entries.delete(key);
    const leaving = [...entry.members.values()].map((upstream) => this.#retire(upstream));
    entry.members.clear();
    this.#events.onMembershipChange();
    await Promise.all(leaving);
    return true;
  }

  /** @internal Resolves every hostname again. */
  resolveAll(): void {
    for (const entry of this.#entries.values()) if (entry.spec.target === null) void this.#resolve(entry);
  }

  async #resolve(entry: Entry): Promise<void> {
    if (entry.isResolving) return;
    entry.isResolving = true;
    let found: readonly { readonly address: string }[] | null = null;
    try {
      found = await this.#lookup(entry.spec.host);
      entry.error = null;
    } catch (error) {
      // The last addresses stay: a DNS hiccup must not empty a working set.
      entry.error = error instanceof Error ? error : new Error(String(error));
    }
    entry.isResolving = false;
    entry.isPending = false;
    if (this.#closed || this.#entries.get(entry.spec.key) !== entry) return;
    if (found !== null) this.#apply(entry, found);
    this.#events.onMembershipChange();
  }

  // Each address found becomes an upstream; upstreams whose address is gone are drained.
  #apply(entry: Entry, found: readonly { readonly address: string }[]): void {
    const port = entry.spec.port;
    const wanted = new Map<string, ConnectTarget>();
    for (const { address } of found) {
      const family = isIP(address);
      if (family === 0) continue;
      const label = family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
      wanted.set(label, { host: address, port, label });
    }
    for (const [label, upstream] of entry.members) {
      if (wanted.has(label)) continue;
      entry.members.delete(label);
      void this.#retire(upstream);
    }
    for (const [label, target] of wanted) if (!entry.members.has(label)) this.#join(entry, target);
  }

  #join(entry: Entry, target: ConnectTarget): void {
    const upstream = this.#make(target, entry.spec);
    entry.members.set(target.label, upstream);
    this.active.push(upstream);
  }

  async #retire(upstream: Upstream): Promise<void> {
    const at = this.active.indexOf(upstream);
    if (at !== -1) this.active.splice(at, 1);
    this.#draining.add(upstream);
    await upstream.drain();
    this.#draining.delete(upstream);
    this.#events.onRetired(upstream);
  }

  /** Stops resolving; the upstreams are the caller's to close. */
  stop(): void {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

function onResolveTimer(set: UpstreamSet): void {
  set.resolveAll();
}
