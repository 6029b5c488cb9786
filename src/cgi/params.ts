// CGI params for an HTTP request (RFC 3875 §4.1 plus the PHP conventions nginx's fastcgi_params and
// snippets/fastcgi-php.conf set up): where the script is, what was asked, who asked, and the HTTP_* headers.
// The gateway builds them from a node:http request; the command-line tools from a method, a URI and headers.
import type { IncomingMessage } from 'node:http';
import { posix } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { unmapIPv4 } from '../wire/address';
import { HOP_BY_HOP_HEADERS, paramNameOf } from './http-names';

/** How a request path maps to a script under the document root. */
export interface ScriptMapping {
  /** The directory scripts live in, on the backend's filesystem (php-fpm opens SCRIPT_FILENAME itself). */
  documentRoot: string;
  /** Script for a path ending in '/'. Default 'index.php'. */
  index?: string;
  /**
   * Splits a path into the script and PATH_INFO (nginx's fastcgi_split_path_info). Default: up to the first
   * segment ending in `.php`, the rest is PATH_INFO: `/app.php/users/7` → `/app.php` + `/users/7`.
   */
  splitPath?: RegExp;
  /** Script for paths that name none (a front controller such as '/index.php'); default: the path itself. */
  frontController?: string;
}

/** Thrown for a request path that cannot name a file (a NUL byte). Answered with 400. */
export class BadPathError extends Error {}

const DEFAULT_SPLIT = /^(.+?\.php)(\/.*)?$/;

// Hop-by-hop headers are never forwarded. `Proxy` is dropped too: as HTTP_PROXY it would be read as the proxy
// setting by CGI programs (httpoxy, CVE-2016-5385); lighttpd and Apache drop it, nginx does not.
const DROPPED = new Set([...HOP_BY_HOP_HEADERS, 'proxy', 'http2-settings']);

/** Express adds these to req; plain node:http does not. */
interface MountedRequest {
  originalUrl?: unknown;
  baseUrl?: unknown;
}

/**
 * cgiParamsFor builds the params of one HTTP request. Strings are byte strings (one char per byte, as node:http
 * gives header values): percent-escapes in the path are decoded to the bytes they name, so a UTF-8 file name
 * reaches the backend as UTF-8. Throws BadPathError for a path holding a NUL byte.
 */
export function cgiParamsFor(req: IncomingMessage, mapping: ScriptMapping): Record<string, string> {
  const mounted = req as IncomingMessage & MountedRequest;
  const url = req.url ?? '/';
  const requestUri = typeof mounted.originalUrl === 'string' ? mounted.originalUrl : url;
  const baseUrl = typeof mounted.baseUrl === 'string' ? byteString(percentDecode(mounted.baseUrl)) : '';
  const { path: rawPath, query } = splitUri(url);
  const decoded = byteString(percentDecode(rawPath));
  if (decoded.includes('\0')) throw new BadPathError('the request path holds a NUL byte');
  // Resolves `.` and `..` and never climbs above '/': a path cannot leave the document root.
  const path = posix.normalize(`/${decoded}`);
  const { script, pathInfo } = splitScript(path, mapping);
  const root = rootBytes(mapping.documentRoot);
  const socket = req.socket;
  const encrypted = (socket as TLSSocket | undefined)?.encrypted === true;
  const serverAddr = unmapIPv4(socket?.localAddress ?? '');
  const params: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'fastcgi-engine',
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    REQUEST_METHOD: req.method ?? 'GET',
    REQUEST_URI: requestUri,
    QUERY_STRING: query,
    DOCUMENT_ROOT: root,
    DOCUMENT_URI: baseUrl + path,
    SCRIPT_NAME: baseUrl + script,
    SCRIPT_FILENAME: root + script,
    REMOTE_ADDR: unmapIPv4(socket?.remoteAddress ?? ''),
    REMOTE_PORT: String(socket?.remotePort ?? ''),
    SERVER_ADDR: serverAddr,
    SERVER_PORT: String(socket?.localPort ?? ''),
    SERVER_NAME: hostName(req.headers.host) ?? serverAddr,
    REQUEST_SCHEME: encrypted ? 'https' : 'http',
    // php-cgi built with --enable-force-cgi-redirect insists on it; nginx's fastcgi_params always sends it.
    REDIRECT_STATUS: '200',
  };
  if (encrypted) params.HTTPS = 'on';
  if (pathInfo !== '') {
    params.PATH_INFO = pathInfo;
    params.PATH_TRANSLATED = root + pathInfo;
  }
  const contentType = req.headers['content-type'];
  if (contentType !== undefined) params.CONTENT_TYPE = contentType;
  addHeaders(params, req);
  return params;
}

// The document root as a byte string without its trailing '/': the same for every request of a gateway, so the
// last one is kept rather than encoded again per request.
let lastRoot = '';
let lastRootBytes = '';
function rootBytes(documentRoot: string): string {
  if (documentRoot !== lastRoot) {
    lastRootBytes = byteString(Buffer.from(documentRoot.replace(/\/+$/, ''), 'utf8'));
    lastRoot = documentRoot;
  }
  return lastRootBytes;
}

function splitScript(path: string, mapping: ScriptMapping): { script: string; pathInfo: string } {
  const match = (mapping.splitPath ?? DEFAULT_SPLIT).exec(path);
  if (match !== null && match[1] !== undefined) return { script: match[1], pathInfo: match[2] ?? '' };
  if (path.endsWith('/')) return { script: path + (mapping.index ?? 'index.php'), pathInfo: '' };
  if (mapping.frontController !== undefined) return { script: mapping.frontController, pathInfo: '' };
  return { script: path, pathInfo: '' };
}

// HTTP_* from the request headers (RFC 3875 §4.1.18). node:http already joined repeated headers (cookies with
// '; '). Names with '_' are dropped, as nginx does by default (underscores_in_headers off): `X_Forwarded_For`
// would otherwise become the same variable as `X-Forwarded-For`.
function addHeaders(params: Record<string, string>, req: IncomingMessage): void {
  const listed = connectionTokens(req.headers.connection);
  for (const name of Object.keys(req.headers)) {
    if (
      DROPPED.has(name) ||
      name === 'content-type' ||
      name === 'content-length' ||
      name.includes('_') ||
      listed.has(name)
    )
      continue;
    const value = req.headers[name];
    if (value === undefined) continue;
    params[paramNameOf(name)] = Array.isArray(value) ? value.join(', ') : value;
  }
}

// RFC 7230 §6.1: headers named in Connection are hop-by-hop too.
function connectionTokens(value: string | undefined): Set<string> {
  if (value === undefined) return EMPTY_SET;
  return new Set(value.split(',').map((token) => token.trim().toLowerCase()));
}
const EMPTY_SET = new Set<string>();

/** splitUri splits a request-target at its first '?': the path, and the query string without the '?'. */
export function splitUri(uri: string): { path: string; query: string } {
  const at = uri.indexOf('?');
  return at === -1 ? { path: uri, query: '' } : { path: uri.slice(0, at), query: uri.slice(at + 1) };
}

/** A request a command-line tool makes up: no client, no socket, no document root. */
export interface ToolRequest {
  /** SERVER_SOFTWARE: the tool's name. */
  readonly software: string;
  readonly method: string;
  /** The request-target, path and query. */
  readonly uri: string;
  /** Header names and values, in order; Content-Type becomes CONTENT_TYPE, the others HTTP_*. */
  readonly headers?: Iterable<readonly [string, string]>;
  /** CONTENT_LENGTH, when the tool knows it here (a load generator sets it from the body it sends). */
  readonly contentLength?: number;
  /** CONTENT_TYPE of the body, unless a Content-Type header says otherwise. */
  readonly contentType?: string;
}

/**
 * toolParams builds the params of a made-up request the way nginx's fastcgi_params would for a request to
 * localhost:80 from 127.0.0.1: SCRIPT_NAME and DOCUMENT_URI are the path, QUERY_STRING what follows '?'.
 * Callers add SCRIPT_FILENAME and their own overrides to the map.
 */
export function toolParams(request: ToolRequest): Map<string, string> {
  const { path, query } = splitUri(request.uri);
  const params = new Map<string, string>([
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_SOFTWARE', request.software],
    ['SERVER_NAME', 'localhost'],
    ['SERVER_PORT', '80'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REQUEST_SCHEME', 'http'],
    ['REQUEST_METHOD', request.method],
    ['REQUEST_URI', request.uri],
    ['SCRIPT_NAME', path],
    ['DOCUMENT_URI', path],
    ['QUERY_STRING', query],
    ['HTTP_HOST', 'localhost'],
  ]);
  if (request.contentLength !== undefined) params.set('CONTENT_LENGTH', String(request.contentLength));
  if (request.contentType !== undefined) params.set('CONTENT_TYPE', request.contentType);
  for (const [name, value] of request.headers ?? []) {
    params.set(name.toLowerCase() === 'content-type' ? 'CONTENT_TYPE' : paramNameOf(name), value);
  }
  return params;
}

function hostName(host: string | undefined): string | null {
  if (host === undefined || host === '') return null;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

// %XX escapes to their bytes; other characters keep the byte node:http read for them (latin1). Malformed escapes
// stay as they are.
function percentDecode(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  if (!text.includes('%')) return bytes;
  const out = Buffer.allocUnsafe(bytes.length);
  let length = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte === 0x25 && i + 2 < bytes.length && isHex(bytes[i + 1]!) && isHex(bytes[i + 2]!)) {
      out[length++] = (hexValue(bytes[i + 1]!) << 4) | hexValue(bytes[i + 2]!);
      i += 2;
    } else out[length++] = byte;
  }
  return out.subarray(0, length);
}

function isHex(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

function hexValue(byte: number): number {
  return byte <= 0x39 ? byte - 0x30 : (byte | 0x20) - 0x61 + 10;
}

function byteString(bytes: Buffer): string {
  return bytes.toString('latin1');
}
