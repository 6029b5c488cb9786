// HTTP header names ↔ CGI meta-variable names (RFC 3875 §4.1.18): `Accept-Language` travels as
// HTTP_ACCEPT_LANGUAGE and comes back as `Accept-Language`.
import { NameCache } from './name-cache';

// The same few names arrive on every request: each is worked out once (a gateway turns every header of every
// request into its variable; a server every HTTP_ variable into its header).
const paramNames = new NameCache((headerName) => `HTTP_${headerName.toUpperCase().replace(/-/g, '_')}`);
const headerNames = new NameCache((param) =>
  param
    .slice(5)
    .toLowerCase()
    .replace(/(^|_)([^_]?)/g, (_m, sep: string, c: string) => (sep === '' ? '' : '-') + c.toUpperCase()),
);

/** paramNameOf returns the HTTP_* variable a request header travels in: upper case, '-' as '_'. */
export function paramNameOf(headerName: string): string {
  return paramNames.get(headerName);
}

/**
 * headerNameOf returns the header an HTTP_* variable carries, in the usual capitalisation (HTTP_ACCEPT_LANGUAGE
 * → Accept-Language). Every '_' was a '-' (HTTP_X_PART_2 is X-Part-2, not X-Part_2), whatever follows it.
 */
export function headerNameOf(param: string): string {
  return headerNames.get(param);
}

/**
 * RFC 7230 §6.1 hop-by-hop headers: they describe one connection, not the message, so a gateway forwards them
 * neither to the backend (as params) nor from it (node:http does its own framing; an application's
 * `Transfer-Encoding: chunked` passed on would corrupt the body).
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * isHopByHop tells whether a header name, in any case, is one of HOP_BY_HOP_HEADERS. Only names of their
 * lengths are lowered and looked up: a response's Content-Type or Set-Cookie costs a switch, not a new string.
 */
export function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2: // te
    case 7: // trailer, upgrade
    case 10: // connection, keep-alive
    case 16: // proxy-connection
    case 17: // transfer-encoding
      return HOP_BY_HOP_HEADERS.has(name.toLowerCase());
    default:
      return false;
  }
}
