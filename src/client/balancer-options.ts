// The options of a client that spans several upstreams, their defaults, and the checked form the balancer reads.
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors';
import { parseAddress, type BackendAddress, type ConnectTarget } from '../wire/address';
import type { BalancePolicy } from './balance-policy';
import { countOption, durationOption } from '../options/validate';

/** One upstream of a client that spans several. */
export interface UpstreamOptions {
  /**
   * Where it listens, as `address` of createClient takes it. A hostname ('php-fpm.default.svc:9000') becomes one
   * upstream per address it resolves to, each with this weight and cap, re-resolved every resolveInterval.
   */
  address: BackendAddress;
  /** Its share of the requests relative to the others' (an integer). Default 1. */
  weight?: number;
  /**
   * Most requests sent to it at once; more wait in the client's queue for a free slot on any upstream. Set it to
   * php-fpm's `pm.max_children`; it is also its number of connections. Default: what its connections carry
   * (`poolSize`, times `maxRequestsPerConnection` when the backend multiplexes).
   */
  maxConcurrent?: number;
}

/** The active health check: a FastCGI request to a ping path, such as php-fpm's `ping.path`. */
export interface HealthCheckOptions {
  /** The path asked for (SCRIPT_NAME, SCRIPT_FILENAME and REQUEST_URI), e.g. '/ping'; a `?query` goes to QUERY_STRING. */
  path: string;
  /** Milliseconds between checks of each upstream. Default 5000. */
  interval?: number;
  /** A check not answered in full within this many milliseconds fails. Default 2000. */
  timeout?: number;
  /** The status a passing answer has. Default 200. */
  status?: number;
  /** Text a passing answer's body contains, or a pattern it matches (php-fpm's ping.response is 'pong'). Default: any body. */
  body?: string | RegExp;
  /** Params added to the check request (or replacing its defaults). */
  params?: Readonly<Record<string, string>>;
}

/** Resolves a hostname to its addresses, like `dns.promises.lookup(hostname, { all: true })` (the default). */
export type LookupFunction = (hostname: string) => Promise<readonly { readonly address: string }[]>;

/** The options of createClient that spread requests over several upstreams. */
export interface BalancerOptions {
  /** The backends, instead of `address`. An empty list is allowed: add them later with client.addUpstream(). */
  upstreams?: readonly UpstreamOptions[];
  /**
   * Which upstream, among those with a free slot, gets the next request: 'least-in-flight' (default: fewest
   * requests in flight for its weight, ties by smooth weighted round robin), 'round-robin' (smooth weighted,
   * as nginx does) or 'p2c' (the less loaded of two picked at random by weight).
   */
  balance?: BalancePolicy;
  /** Fail a request that waited this long for a free slot with FCGI_ERR_QUEUE_TIMEOUT. Default 0: only requestTimeout limits the wait. */
  queueTimeout?: number;
  /**
   * Eject an upstream after this many failures in a row (connect refused or timed out, a connection reset or
   * closed with requests on it). Default 1; 0 never ejects. An ejected upstream gets no requests until its
   * cooldown (`ejectFor`) ends; then one more failure ejects it again.
   */
  ejectAfter?: number;
  /** The cooldown of an ejected upstream, in milliseconds. Default 10000. */
  ejectFor?: number;
  /** Probe each upstream with a FastCGI request at an interval; one that fails gets no requests until a probe passes. Default: none. */
  healthCheck?: HealthCheckOptions;
  /** Resolve hostnames again this often, in milliseconds, adding and draining upstreams as addresses come and go. Default 30000; 0 resolves once. */
  resolveInterval?: number;
  /** How hostnames are resolved. Default: dns.promises.lookup with `all: true` (A and AAAA). */
  lookup?: LookupFunction;
}

/** An upstream as configured: a fixed address, or a hostname to resolve. */
export interface UpstreamSpec {
  /** The configured address, normalised ('unix:/run/a.sock', '10.0.0.5:9000', 'php:9000'): what removeUpstream matches. */
  readonly key: string;
  /** Where to connect, or null for a hostname. */
  readonly target: ConnectTarget | null;
  /** The hostname and port to resolve, when target is null. */
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly maxConcurrent: number | null;
}

/** HealthCheckOptions with defaults applied. */
export interface ResolvedHealthCheck {
  readonly path: string;
  readonly interval: number;
  readonly timeout: number;
  readonly status: number;
  readonly body: string | RegExp | null;
  readonly params: Readonly<Record<string, string>>;
}

/** BalancerOptions with defaults applied. */
export interface ResolvedBalancerOptions {
  readonly upstreams: readonly UpstreamSpec[];
  readonly balance: BalancePolicy;
  readonly queueTimeout: number;
  readonly ejectAfter: number;
  readonly ejectFor: number;
  readonly healthCheck: ResolvedHealthCheck | null;
  readonly resolveInterval: number;
  readonly lookup: LookupFunction | null;
}

const POLICIES: readonly BalancePolicy[] = ['least-in-flight', 'round-robin', 'p2c'];
const BALANCER_ONLY = [
  'balance',
  'queueTimeout',
  'ejectAfter',
  'ejectFor',
  'healthCheck',
  'resolveInterval',
  'lookup',
] as const;

/** resolveBalancerOptions checks the balancing options; null for a client with one `address`. Throws InvalidArgumentError. */
export function resolveBalancerOptions(options: BalancerOptions): ResolvedBalancerOptions | null {
  if (options.upstreams === undefined) {
    const misplaced = BALANCER_ONLY.find((name) => options[name] !== undefined);
    if (misplaced !== undefined)
      throw new InvalidArgumentError(`${misplaced} applies to a client with upstreams, not to one with an address`);
    return null;
  }
  if (!Array.isArray(options.upstreams))
    throw new InvalidArgumentError('upstreams must be an array of { address, weight?, maxConcurrent? }');
  const balance = options.balance ?? 'least-in-flight';
  if (!POLICIES.includes(balance))
    throw new InvalidArgumentError(
      `balance must be ${POLICIES.map((p) => `'${p}'`).join(', ')}, got ${String(balance)}`,
    );
  if (options.lookup !== undefined && typeof options.lookup !== 'function')
    throw new InvalidArgumentError('lookup must be a function');
  const upstreams = options.upstreams.map(resolveUpstream);
  const keys = new Set<string>();
  for (const upstream of upstreams) {
    if (keys.has(upstream.key)) throw new InvalidArgumentError(`upstream ${upstream.key} is listed twice`);
    keys.add(upstream.key);
  }
  return {
    upstreams,
    balance,
    queueTimeout: durationOption('queueTimeout', options.queueTimeout, 0, 0),
    ejectAfter: countOption('ejectAfter', options.ejectAfter, 1, 0),
    ejectFor: durationOption('ejectFor', options.ejectFor, 10_000, 1),
    healthCheck: options.healthCheck === undefined ? null : resolveHealthCheck(options.healthCheck),
    resolveInterval: durationOption('resolveInterval', options.resolveInterval, 30_000, 0),
    lookup: options.lookup ?? null,
  };
}

/** resolveUpstream checks one upstream's options (createClient and client.addUpstream); throws InvalidArgumentError. */
export function resolveUpstream(options: UpstreamOptions): UpstreamSpec {
  if (options === null || typeof options !== 'object' || !('address' in options))
    throw new InvalidArgumentError('an upstream needs an address');
  const target = parseAddress(options.address);
  const weight = countOption('weight', options.weight, 1, 1);
  const maxConcurrent =
    options.maxConcurrent === undefined ? null : countOption('maxConcurrent', options.maxConcurrent, 1, 1);
  if ('path' in target || isIP(target.host) !== 0)
    return { key: target.label, target, host: '', port: 0, weight, maxConcurrent };
  return { key: target.label, target: null, host: target.host, port: target.port, weight, maxConcurrent };
}

/** upstreamKey is the key removeUpstream matches an address against. */
export function upstreamKey(address: BackendAddress): string {
  return parseAddress(address).label;
}

function resolveHealthCheck(options: HealthCheckOptions): ResolvedHealthCheck {
  if (
    options === null ||
    typeof options !== 'object' ||
    typeof options.path !== 'string' ||
    !options.path.startsWith('/')
  ) {
    throw new InvalidArgumentError(`healthCheck.path must be a path starting with '/'`);
  }
  const body = options.body ?? null;
  if (body !== null && typeof body !== 'string' && !(body instanceof RegExp))
    throw new InvalidArgumentError('healthCheck.body must be a string or a RegExp');
  const status = countOption('healthCheck.status', options.status, 200, 100);
  if (status > 599) throw new InvalidArgumentError(`healthCheck.status must be an HTTP status, got ${status}`);
  return {
    path: options.path,
    interval: durationOption('healthCheck.interval', options.interval, 5000, 1),
    timeout: durationOption('healthCheck.timeout', options.timeout, 2000, 1),
    status,
    body,
    params: { ...options.params },
  };
}
