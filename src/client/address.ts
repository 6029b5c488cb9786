// Backend addresses: the spellings users write (nginx's `unix:/path`, `host:port`, URLs) → net.connect options.
import { InvalidArgumentError } from '../errors';

/**
 * Where a FastCGI backend listens: a unix socket path ('/run/php/php8.2-fpm.sock', 'unix:/path',
 * 'unix:///path', { path }) or TCP ('127.0.0.1:9000', 'tcp://127.0.0.1:9000', '[::1]:9000', { host, port }).
 */
export type BackendAddress = string | { readonly path: string } | { readonly host?: string; readonly port: number };

/** A parsed address: exactly what net.connect takes, plus a label for messages. */
export type ConnectTarget = { readonly path: string; readonly label: string } | { readonly host: string; readonly port: number; readonly label: string };

/** parseAddress turns a BackendAddress into net.connect options; throws InvalidArgumentError when it cannot. */
export function parseAddress(address: BackendAddress): ConnectTarget {
  if (typeof address === 'object' && address !== null) {
    if ('path' in address && typeof address.path === 'string' && address.path !== '') {
      return { path: address.path, label: `unix:${address.path}` };
    }
    if ('port' in address) return tcp(address.host ?? '127.0.0.1', address.port, JSON.stringify(address));
    throw new InvalidArgumentError(`address must have a path or a port, got ${JSON.stringify(address)}`);
  }
  if (typeof address !== 'string' || address === '') throw new InvalidArgumentError('address must be a non-empty string or object');
  if (address.startsWith('unix:')) {
    // unix:/path (nginx), unix:///path (URL form), unix:path (relative).
    const path = address.startsWith('unix://') ? address.slice(7) : address.slice(5);
    if (path === '') throw new InvalidArgumentError(`address ${address} has no socket path`);
    return { path, label: `unix:${path}` };
  }
  if (address.startsWith('/') || address.startsWith('./') || address.startsWith('../')) return { path: address, label: `unix:${address}` };
  const rest = address.startsWith('tcp://') ? address.slice(6).replace(/\/$/, '') : address;
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(rest);
  if (match === null) throw new InvalidArgumentError(`cannot read address ${JSON.stringify(address)}: use /path.sock, unix:/path, host:port or tcp://host:port`);
  return tcp(match[1] ?? match[2]!, Number(match[3]), address);
}

function tcp(host: string, port: number, original: string): ConnectTarget {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`address ${original} has an invalid port`);
  return { host, port, label: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` };
}
