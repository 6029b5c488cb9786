// Shared command-line plumbing: a usage error type (exit code 2) and small value parsers.
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Exit codes shared by every subcommand. */
export const EXIT_USAGE = 2;

/** parseCount reads a whole number >= min, or throws a UsageError naming the option. */
export function parseCount(name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`--${name} expects a whole number >= ${min}, got '${value}'`);
  return Number(value);
}

/** parseDuration reads '10s', '500ms', '2m' or a bare number of seconds, in milliseconds. */
export function parseDuration(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (match === null) throw new UsageError(`--${name} expects a duration such as 10s, 500ms or 2m, got '${value}'`);
  const n = Number(match[1]);
  return match[2] === 'ms' ? n : match[2] === 'm' ? n * 60_000 : n * 1000;
}

/** parseAddress reads '/path.sock', 'unix:/path', 'host:port', 'tcp://host:port' or a bare port. */
export function parseAddress(value: string | undefined): { path: string } | { host: string; port: number } {
  if (value === undefined || value === '') throw new UsageError('an address is required: /path/to.sock, unix:/path, host:port or a port');
  if (value.startsWith('unix:')) return { path: value.slice(5) };
  const tcp = value.startsWith('tcp://') ? value.slice(6) : value;
  if (/^\d+$/.test(tcp)) return { host: '127.0.0.1', port: Number(tcp) };
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(tcp);
  if (m !== null && !tcp.includes('/')) return { host: m[1] === '' ? '127.0.0.1' : m[1]!, port: Number(m[2]) };
  if (value.includes('/') || value.endsWith('.sock')) return { path: value };
  throw new UsageError(`cannot read address '${value}': use /path/to.sock, unix:/path, host:port or a port`);
}

export function describeAddress(address: { path: string } | { host: string; port: number }): string {
  return 'path' in address ? `unix:${address.path}` : `${address.host}:${address.port}`;
}
