// Shared command-line plumbing: a usage error type (exit code 2) and small value parsers.
import { InvalidArgumentError } from '../errors';
import { parseAddress as parseBackendAddress, type ConnectTarget } from '../wire/address';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Exit codes shared by every subcommand. */
export const EXIT_USAGE = 2;

/** parseCount reads a whole number >= min, or throws a UsageError naming the option. */
export function parseCount(name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min)
    throw new UsageError(`--${name} expects a whole number >= ${min}, got '${value}'`);
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

/** parseAddress reads an address in the one grammar (src/wire/address.ts), or throws a UsageError saying why not. */
export function parseAddress(value: string | undefined): ConnectTarget {
  if (value === undefined || value === '')
    throw new UsageError('an address is required: /path/to.sock, unix:/path, host:port or a port');
  try {
    return parseBackendAddress(value);
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new UsageError(error.message);
    throw error;
  }
}

/** parseHeaderOptions reads repeated --header 'Name: value' options into names and trimmed values. */
export function parseHeaderOptions(headers: readonly string[]): Array<[string, string]> {
  return headers.map((header) => {
    const colon = header.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header expects 'Name: value', got '${header}'`);
    return [header.slice(0, colon).trim(), header.slice(colon + 1).trim()];
  });
}
