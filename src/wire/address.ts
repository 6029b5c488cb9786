// Backend addresses: the one grammar for every spelling users write (nginx's `unix:/path`, `host:port`, URLs,
// a bare port, a socket file name) → net.connect options. The client, the gateway and the command line read
// addresses here.
import { InvalidArgumentError } from '../errors';

/**
 * Where a FastCGI backend listens: a unix socket path ('/run/php/php8.2-fpm.sock', './app.sock', 'app.sock',
 * 'unix:/path', 'unix:///path', { path }) or TCP ('127.0.0.1:9000', 'tcp://127.0.0.1:9000', '[::1]:9000',
 * ':9000' or '9000' on 127.0.0.1, { host, port }).
 */
export type BackendAddress = string | { readonly path: string } | { readonly host?: string; readonly port: number };

/** A parsed address: exactly what net.connect takes, plus a label for messages. */
export type ConnectTarget =
  | { readonly path: string; readonly label: string }
  | { readonly host: string; readonly port: number; readonly label: string };

const DEFAULT_HOST = '127.0.0.1';
// host:port, [v6]:port, :port (the default host) or a bare port; a host holds no '/' (that is a path).
const TCP = /^(?:(?:\[([^\]]+)\]|([^:/[\]]*)):)?(\d+)$/;

/** parseAddress turns a BackendAddress into net.connect options; throws InvalidArgumentError when it cannot. */
export function parseAddress(address: BackendAddress): ConnectTarget {
  if (typeof address === 'object' && address !== null) {
    if ('path' in address && typeof address.path === 'string' && address.path !== '') {
      return { path: address.path, label: `unix:${address.path}` };
    }
    if ('port' in address) return tcp(address.host ?? DEFAULT_HOST, address.port, JSON.stringify(address));
    throw new InvalidArgumentError(`address must have a path or a port, got ${JSON.stringify(address)}`);
  }
  if (typeof address !== 'string' || address === '')
    throw new InvalidArgumentError('address must be a non-empty string or object');
  if (address.startsWith('unix:')) {
    // unix:/path (nginx), unix:///path (URL form), unix:path (relative).
    const path = address.startsWith('unix://') ? address.slice(7) : address.slice(5);
    if (path === '') throw new InvalidArgumentError(`address ${address} has no socket path`);
    return { path, label: `unix:${path}` };
  }
  if (address.startsWith('/') || address.startsWith('./') || address.startsWith('../'))
    return { path: address, label: `unix:${address}` };
  const url = address.startsWith('tcp://');
  const rest = url ? address.slice(6).replace(/\/$/, '') : address;
  const match = TCP.exec(rest);
  if (match !== null) return tcp(match[1] ?? (match[2] || DEFAULT_HOST), Number(match[3]), address);
  if (!url && address.endsWith('.sock')) return { path: address, label: `unix:${address}` };
  throw new InvalidArgumentError(
    `cannot read address ${JSON.stringify(address)}: use /path.sock, unix:/path, host:port, tcp://host:port or a port`,
  );
}

function tcp(host: string, port: number, original: string): ConnectTarget {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new InvalidArgumentError(`address ${original} has an invalid port`);
  return { host, port, label: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` };
}

/**
 * unmapIPv4 folds an IPv4-mapped IPv6 address (::ffff:127.0.0.1, in any case) to its IPv4 form, which is how
 * web servers write REMOTE_ADDR and how operators write allow lists; anything else comes back unchanged.
 */
export function unmapIPv4(address: string): string {
  return address.length > 7 && address.slice(0, 7).toLowerCase() === '::ffff:' && address.includes('.')
    ? address.slice(7)
    : address;
}
