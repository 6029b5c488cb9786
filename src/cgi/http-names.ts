// HTTP header names ↔ CGI meta-variable names (RFC 3875 §4.1.18): `Accept-Language` travels as
// HTTP_ACCEPT_LANGUAGE and comes back as `Accept-Language`.

// The same few names arrive on every request: each is worked out once (a gateway turns every header of every
// request into its variable), up to a bound so that made-up names cannot grow the caches without end.
const paramNames = new Map<string, string>();
const headerNames = new Map<string, string>();
const MAX_CACHED = 1024;

/** paramNameOf returns the HTTP_* variable a request header travels in: upper case, '-' as '_'. */
export function paramNameOf(headerName: string): string {
  let param = paramNames.get(headerName);
  if (param === undefined) {
    param = `HTTP_${headerName.toUpperCase().replace(/-/g, '_')}`;
    if (paramNames.size < MAX_CACHED) paramNames.set(headerName, param);
  }
  return param;
}

/**
 * headerNameOf returns the header an HTTP_* variable carries, in the usual capitalisation (HTTP_ACCEPT_LANGUAGE
 * → Accept-Language). Every '_' was a '-' (HTTP_X_PART_2 is X-Part-2, not X-Part_2), whatever follows it.
 */
export function headerNameOf(param: string): string {
  let name = headerNames.get(param);
  if (name === undefined) {
    name = param
      .slice(5)
      .toLowerCase()
      .replace(/(^|_)([^_]?)/g, (_m, sep: string, c: string) => (sep === '' ? '' : '-') + c.toUpperCase());
    if (headerNames.size < MAX_CACHED) headerNames.set(param, name);
  }
  return name;
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
