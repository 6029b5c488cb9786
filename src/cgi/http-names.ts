// HTTP header names ↔ CGI meta-variable names (RFC 3875 §4.1.18): `Accept-Language` travels as
// HTTP_ACCEPT_LANGUAGE and comes back as `Accept-Language`.

/** paramNameOf returns the HTTP_* variable a request header travels in: upper case, '-' as '_'. */
export function paramNameOf(headerName: string): string {
  return `HTTP_${headerName.toUpperCase().replace(/-/g, '_')}`;
}

// The same few names arrive on every request: each is worked out once.
const headerNames = new Map<string, string>();
const MAX_CACHED = 1024;

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
