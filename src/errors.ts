// Error classes with stable `code`s, and the table that turns scanner error integers into clear messages.
import {
  ERR_BAD_VERSION,
  ERR_INVALID_ARGUMENT,
  ERR_NONE,
  ERR_PAIR_DATA_TRUNCATED,
  ERR_PAIR_LENGTH_TRUNCATED,
} from './codec/layout';

/** Every error code the package throws or emits; match on `error.code`, not on messages. */
export const ErrorCode = {
  BAD_VERSION: 'FCGI_ERR_BAD_VERSION',
  PAIR_LENGTH_TRUNCATED: 'FCGI_ERR_PAIR_LENGTH_TRUNCATED',
  PAIR_DATA_TRUNCATED: 'FCGI_ERR_PAIR_DATA_TRUNCATED',
  SCAN_INVALID_ARGUMENT: 'FCGI_ERR_SCAN_INVALID_ARGUMENT',
  PARAMS_TOO_LARGE: 'FCGI_ERR_PARAMS_TOO_LARGE',
  PAIR_TOO_LARGE: 'FCGI_ERR_PAIR_TOO_LARGE',
  BUFFER_LIMIT: 'FCGI_ERR_BUFFER_LIMIT',
  SEND_TIMEOUT: 'FCGI_ERR_SEND_TIMEOUT',
  BEGIN_TIMEOUT: 'FCGI_ERR_BEGIN_TIMEOUT',
  CONNECTION_LIMIT: 'FCGI_ERR_CONNECTION_LIMIT',
  INVALID_ARGUMENT: 'FCGI_ERR_INVALID_ARGUMENT',
  NATIVE_LOAD: 'FCGI_ERR_NATIVE_LOAD',
  DUPLICATE_REQUEST_ID: 'FCGI_ERR_DUPLICATE_REQUEST_ID',
  BAD_BEGIN_REQUEST: 'FCGI_ERR_BAD_BEGIN_REQUEST',
  STDIN_BEFORE_PARAMS_END: 'FCGI_ERR_STDIN_BEFORE_PARAMS_END',
  UNEXPECTED_EOF: 'FCGI_ERR_UNEXPECTED_EOF',
  REQUEST_ABORTED: 'FCGI_ERR_REQUEST_ABORTED',
  PARAMS_TIMEOUT: 'FCGI_ERR_PARAMS_TIMEOUT',
  IDLE_TIMEOUT: 'FCGI_ERR_IDLE_TIMEOUT',
  HANDLER_TIMEOUT: 'FCGI_ERR_HANDLER_TIMEOUT',
  PEER_NOT_ALLOWED: 'FCGI_ERR_PEER_NOT_ALLOWED',
  INHERITED_SOCKET: 'FCGI_ERR_INHERITED_SOCKET',
  ADDRESS_IN_USE: 'FCGI_ERR_ADDRESS_IN_USE',
  INVALID_STATE: 'FCGI_ERR_INVALID_STATE',
  HANDLER_RESULT: 'FCGI_ERR_HANDLER_RESULT',
  // Client and gateway.
  CONNECT: 'FCGI_ERR_CONNECT',
  CONNECT_TIMEOUT: 'FCGI_ERR_CONNECT_TIMEOUT',
  REQUEST_TIMEOUT: 'FCGI_ERR_REQUEST_TIMEOUT',
  BODY_TIMEOUT: 'FCGI_ERR_BODY_TIMEOUT',
  QUEUE_FULL: 'FCGI_ERR_QUEUE_FULL',
  QUEUE_TIMEOUT: 'FCGI_ERR_QUEUE_TIMEOUT',
  NO_UPSTREAM: 'FCGI_ERR_NO_UPSTREAM',
  CLIENT_CLOSED: 'FCGI_ERR_CLIENT_CLOSED',
  BACKEND_CLOSED: 'FCGI_ERR_BACKEND_CLOSED',
  BAD_END_REQUEST: 'FCGI_ERR_BAD_END_REQUEST',
  CANT_MPX_CONN: 'FCGI_ERR_CANT_MPX_CONN',
  OVERLOADED: 'FCGI_ERR_OVERLOADED',
  UNKNOWN_ROLE: 'FCGI_ERR_UNKNOWN_ROLE',
  UNKNOWN_PROTOCOL_STATUS: 'FCGI_ERR_UNKNOWN_PROTOCOL_STATUS',
  CGI_HEADER_MALFORMED: 'FCGI_ERR_CGI_HEADER_MALFORMED',
  CGI_STATUS_INVALID: 'FCGI_ERR_CGI_STATUS_INVALID',
  CGI_HEADER_INCOMPLETE: 'FCGI_ERR_CGI_HEADER_INCOMPLETE',
  CGI_HEADER_TOO_LARGE: 'FCGI_ERR_CGI_HEADER_TOO_LARGE',
  BODY_TOO_LARGE: 'FCGI_ERR_BODY_TOO_LARGE',
  BODY_LENGTH_MISMATCH: 'FCGI_ERR_BODY_LENGTH_MISMATCH',
  BODY_SOURCE: 'FCGI_ERR_BODY_SOURCE',
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error this package creates. */
export class FastCGIError extends Error {
  readonly code: ErrorCodeValue;
  constructor(code: ErrorCodeValue, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Where malformed input was met, for logs and `clientError` handlers. */
export interface ProtocolErrorDetails {
  /** Offset in the stream (records) or in the params block (pairs) where the bad item starts. */
  offset?: number;
  recordType?: number;
  requestId?: number;
}

/** The peer sent bytes that are not valid FastCGI; the connection that carried them cannot continue. */
export class ProtocolError extends FastCGIError {
  readonly offset: number | undefined;
  readonly recordType: number | undefined;
  readonly requestId: number | undefined;
  constructor(code: ErrorCodeValue, message: string, details: ProtocolErrorDetails = {}) {
    super(code, message);
    this.offset = details.offset;
    this.recordType = details.recordType;
    this.requestId = details.requestId;
  }
}

/** A configured limit was exceeded (params size, pair size, …). */
export class LimitError extends FastCGIError {
  readonly limit: number;
  readonly value: number;
  constructor(code: ErrorCodeValue, message: string, limit: number, value: number) {
    super(code, message);
    this.limit = limit;
    this.value = value;
  }
}

/** A caller passed an argument (or an option) the API cannot use. */
export class InvalidArgumentError extends FastCGIError {
  constructor(message: string) {
    super(ErrorCode.INVALID_ARGUMENT, message);
  }
}

/** Which server timer ran out. */
export type ServerTimer = 'begin' | 'params' | 'body' | 'send' | 'idle' | 'handler';

/** Which client timer ran out. */
export type ClientTimer = 'connect' | 'request' | 'body' | 'queue';

/**
 * A timer ran out; `timer` names it and `code` the exact cause. Server: the first request's arrival (`begin`),
 * params or body arrival (slowloris), a peer that does not read its responses (`send`), an idle connection, a
 * handler. Client: connecting (`connect`), a response header block (`request`: requestTimeout, queueing
 * included), a response body stalled on the backend's side (`body`).
 */
export class TimeoutError extends FastCGIError {
  readonly timer: ServerTimer | ClientTimer;
  constructor(code: ErrorCodeValue, message: string, timer: ServerTimer | ClientTimer) {
    super(code, message);
    this.timer = timer;
  }
}

/**
 * The web server gave up on a request: ABORT_REQUEST, or the connection closed while the request was in flight.
 * A body read then fails with this error; `code` is FCGI_ERR_REQUEST_ABORTED.
 */
export class RequestAbortedError extends FastCGIError {
  constructor(message = 'request aborted by the web server') {
    super(ErrorCode.REQUEST_ABORTED, message);
  }
}

/** Listening failed in a way the operator must fix (fd 0 is not a listening socket, the path is in use). */
export class ListenError extends FastCGIError {
  constructor(code: ErrorCodeValue, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/** The native addon failed to load while FASTCGI_REQUIRE_NATIVE=1, or does not match this TypeScript build. */
export class NativeLoadError extends FastCGIError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.NATIVE_LOAD, message, options);
  }
}

/** What a scanner reported: its error code and the two numbers that explain it. */
export interface ScanFailure {
  error: number;
  offset: number;
  value: number;
}

/**
 * scanErrorToProtocolError turns a scanner's integer error into a ProtocolError with a message that names the
 * likely cause. `base` shifts offsets from the scanned buffer to the stream (the decoder knows it).
 */
export function scanErrorToProtocolError(
  failure: ScanFailure,
  base = 0,
  details: ProtocolErrorDetails = {},
): ProtocolError {
  const offset = base + failure.offset;
  const at = { ...details, offset };
  switch (failure.error) {
    case ERR_BAD_VERSION:
      return new ProtocolError(
        ErrorCode.BAD_VERSION,
        `invalid record version ${failure.value} at offset ${offset}${versionHint(failure.value)}`,
        at,
      );
    case ERR_PAIR_LENGTH_TRUNCATED:
      return new ProtocolError(
        ErrorCode.PAIR_LENGTH_TRUNCATED,
        `params stream ends inside the length of the pair at offset ${offset}`,
        at,
      );
    case ERR_PAIR_DATA_TRUNCATED:
      return new ProtocolError(
        ErrorCode.PAIR_DATA_TRUNCATED,
        `pair at offset ${offset} declares ${failure.value} bytes of name and value, past the end of the params stream`,
        at,
      );
    case ERR_INVALID_ARGUMENT:
      return new ProtocolError(
        ErrorCode.SCAN_INVALID_ARGUMENT,
        `scanner called with an invalid range or output array at offset ${offset}`,
        at,
      );
    case ERR_NONE:
    default:
      return new ProtocolError(
        ErrorCode.SCAN_INVALID_ARGUMENT,
        `unknown scanner error ${failure.error} at offset ${offset}`,
        at,
      );
  }
}

// The first byte of other protocols on a FastCGI socket tells the operator what is misconfigured.
function versionHint(version: number): string {
  // 'G' 'P' 'H' 'D' 'O' 'C': GET, POST/PUT/PATCH, HEAD, DELETE, OPTIONS, CONNECT.
  if (
    version === 0x47 ||
    version === 0x50 ||
    version === 0x48 ||
    version === 0x44 ||
    version === 0x4f ||
    version === 0x43
  ) {
    return ' (the peer speaks HTTP: point the web server at this socket with fastcgi_pass / proxy:fcgi://, or send HTTP elsewhere)';
  }
  if (version === 0x16) return ' (the peer speaks TLS: FastCGI sockets are plain)';
  return ' (not a FastCGI peer, or the stream lost its framing)';
}
