// CGI response header block parser (RFC 3875 §6): fed STDOUT pieces as they arrive, it finds the blank line
// that ends the headers, turns `Status:` and `Location:` into a status, and says where the body starts.
import { STATUS_CODES } from 'node:http';
import { ErrorCode, LimitError, ProtocolError } from '../errors';
import { NameCache } from './name-cache';

/** Response headers by lower-case name; a name sent more than once (and Set-Cookie always) maps to an array. */
export type CgiHeaders = Record<string, string | string[] | undefined>;

/** The parsed header block of a CGI response. */
export interface CgiHead {
  /** From `Status: NNN reason`; 302 for a bare `Location:`; else 200. */
  readonly status: number;
  /** The reason phrase sent with Status, else the standard one for the code. */
  readonly statusText: string;
  /** Header values by lower-case name (null prototype), Status removed. */
  readonly headers: CgiHeaders;
  /** Names and values as sent, in order, flattened (`[name, value, name, value, …]`), Status removed. */
  readonly rawHeaders: string[];
}

/** Default cap on the header block, in bytes: far above nginx's 4 KiB buffer, low enough to bound memory. */
export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;

const LF = 0x0a;
const CR = 0x0d;
// RFC 9110 §5.6.2 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Control bytes other than HT may not appear in a value: Node's http layer rejects them, and lighttpd, Apache
// and h2o answer 400-503 when an application sends them (test/interop/scenarios.ts expectControlByteRejected
// checks the same rule on the way in).
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const STATUS = /^([1-9]\d\d)(?:[ \t]+(.*))?$/;

/**
 * CgiHeaderParser reads the header block at the start of a CGI response. Lines end with CRLF or a bare LF (every
 * web server accepts both); the block may be split across any number of STDOUT pieces. Throws ProtocolError
 * (FCGI_ERR_CGI_HEADER_MALFORMED, FCGI_ERR_CGI_STATUS_INVALID, FCGI_ERR_CGI_HEADER_INCOMPLETE) or LimitError
 * (FCGI_ERR_CGI_HEADER_TOO_LARGE).
 */
export class CgiHeaderParser {
  readonly #maxBytes: number;
  // Bytes of a header block not complete yet (null while nothing is pending).
  #pending: Buffer | null = null;
  #head: CgiHead | null = null;
  #reason: string | null = null;

  constructor(maxBytes = DEFAULT_MAX_HEADER_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** The parsed head once the blank line arrived, else null. */
  get head(): CgiHead | null {
    return this.#head;
  }

  /** The reason phrase as the Status header sent it: null when there was none (`statusText` then fills one in). */
  get sentReason(): string | null {
    return this.#reason;
  }

  /**
   * Feeds the next STDOUT piece; returns the offset in `chunk` where the body starts once the header block is
   * complete, or -1 while it is not. Call only until it returns an offset.
   */
  push(chunk: Buffer): number {
    const pending = this.#pending;
    const buffer = pending === null ? chunk : Buffer.concat([pending, chunk]);
    const end = findBlockEnd(buffer, pending === null ? 0 : Math.max(0, pending.length - 3));
    if (end === -1) {
      if (buffer.length > this.#maxBytes) throw tooLarge(this.#maxBytes, buffer.length);
      // Copy: the piece is a view into a socket chunk that must not be kept alive piecemeal.
      this.#pending = pending === null ? Buffer.from(chunk) : buffer;
      return -1;
    }
    if (end > this.#maxBytes) throw tooLarge(this.#maxBytes, end);
    this.#pending = null;
    const parsed = parseBlock(buffer, end);
    this.#head = parsed.head;
    this.#reason = parsed.reason;
    return end - (pending === null ? 0 : pending.length);
  }

  /** The STDOUT stream ended: throws unless the header block was complete. */
  end(): void {
    if (this.#head !== null) return;
    const got = this.#pending === null ? 0 : this.#pending.length;
    throw new ProtocolError(
      ErrorCode.CGI_HEADER_INCOMPLETE,
      got === 0
        ? 'the response ended without a CGI header block (no output)'
        : `the response ended inside its CGI header block (${got} bytes, no blank line)`,
    );
  }
}

function tooLarge(limit: number, got: number): LimitError {
  return new LimitError(
    ErrorCode.CGI_HEADER_TOO_LARGE,
    `the CGI header block exceeds ${limit} bytes (maxHeaderBytes)`,
    limit,
    got,
  );
}

/**
 * isHeaderLine tells whether a line of CGI output starts like a header (`Name:` with a token name): the first
 * line of a response that does not was output written before the headers.
 */
export function isHeaderLine(line: string): boolean {
  const colon = line.indexOf(':');
  return colon > 0 && TOKEN.test(line.slice(0, colon));
}

// Returns the offset just past the blank line that ends the block, or -1. `from` lets a rescan after more bytes
// arrived start near the old end (a CR LF CR LF may straddle the pieces).
function findBlockEnd(buffer: Buffer, from: number): number {
  // A block that is only a blank line (no headers) is legal.
  if (from === 0) {
    if (buffer[0] === LF) return 1;
    if (buffer[0] === CR && buffer[1] === LF) return 2;
  }
  let at = from;
  for (;;) {
    const newline = buffer.indexOf(LF, at);
    if (newline === -1) return -1;
    const next = buffer[newline + 1];
    if (next === LF) return newline + 2;
    if (next === CR && buffer[newline + 2] === LF) return newline + 3;
    at = newline + 1;
  }
}

// Lower-case keys of the header names seen, each checked against TOKEN once (null: not a token): a backend sends
// the same few names (Content-Type, X-Powered-By, Set-Cookie) on every response.
const KEYS = new NameCache((name) => (TOKEN.test(name) ? name.toLowerCase() : null));

function keyOf(name: string, text: string, lineStart: number, lineEnd: number): string {
  const key = KEYS.get(name);
  if (key !== null) return key;
  throw new ProtocolError(
    ErrorCode.CGI_HEADER_MALFORMED,
    `malformed CGI header line ${JSON.stringify(preview(text.slice(lineStart, lineEnd)))}: expected "Name: value"`,
    { offset: lineStart },
  );
}

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

// The head, and the reason phrase as sent (null without one), which only `fastcgi-engine request` prints. The
// block is decoded once and cut up as a string: a native call per line (indexOf, toString) cost more than the
// lines' bytes (bench:ab --handler gateway).
function parseBlock(buffer: Buffer, end: number): { head: CgiHead; reason: string | null } {
  const text = buffer.toString('latin1', 0, end);
  const headers = Object.create(null) as CgiHeaders;
  const rawHeaders: string[] = [];
  let statusValue: string | null = null;
  let hasLocation = false;
  let at = 0;
  while (at < end) {
    const newline = text.indexOf('\n', at);
    const lineEnd = newline > at && text.charCodeAt(newline - 1) === CR ? newline - 1 : newline;
    const lineStart = at;
    at = newline + 1;
    if (lineEnd === lineStart) break;
    const colon = text.indexOf(':', lineStart);
    const name = colon === -1 || colon > lineEnd ? '' : text.slice(lineStart, colon);
    const key = keyOf(name, text, lineStart, lineEnd);
    // Optional whitespace around the value (RFC 9110 §5.5), spaces and tabs only.
    let valueStart = colon + 1;
    let valueEnd = lineEnd;
    while (valueStart < valueEnd && isBlank(text.charCodeAt(valueStart))) valueStart++;
    while (valueEnd > valueStart && isBlank(text.charCodeAt(valueEnd - 1))) valueEnd--;
    const value = text.slice(valueStart, valueEnd);
    if (CONTROL.test(value)) {
      throw new ProtocolError(ErrorCode.CGI_HEADER_MALFORMED, `CGI header ${name} holds a control character`, {
        offset: lineStart,
      });
    }
    if (key === 'status') {
      statusValue = value;
      continue;
    }
    if (key === 'location') hasLocation = true;
    rawHeaders.push(name, value);
    const previous = headers[key];
    if (previous === undefined) headers[key] = key === 'set-cookie' ? [value] : value;
    else if (typeof previous === 'string') headers[key] = [previous, value];
    else previous.push(value);
  }
  if (statusValue !== null) {
    const match = STATUS.exec(statusValue);
    if (match === null)
      throw new ProtocolError(
        ErrorCode.CGI_STATUS_INVALID,
        `invalid CGI Status ${JSON.stringify(preview(statusValue))}: expected "NNN reason"`,
      );
    const status = Number(match[1]);
    const reason = match[2] ?? null;
    return { head: { status, statusText: reason || (STATUS_CODES[status] ?? ''), headers, rawHeaders }, reason };
  }
  // RFC 3875 §6.2.3-4: a Location without Status is a redirect; web servers answer 302 (nginx, lighttpd).
  if (hasLocation) return { head: { status: 302, statusText: 'Found', headers, rawHeaders }, reason: 'Found' };
  return { head: { status: 200, statusText: 'OK', headers, rawHeaders }, reason: 'OK' };
}

function preview(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
