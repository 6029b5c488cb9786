// Errors of the client side (pool, connections, CGI response parsing, gateway), each with a stable `code`.
import { ErrorCode, FastCGIError, LimitError, ProtocolError, type ErrorCodeValue } from '../errors';
import { refusalOf } from '../wire/names';

/** Connecting to the backend failed (refused, no such socket file, permission denied, …); `cause` is the errno error. */
export class ConnectError extends FastCGIError {
  /** The address as given to createClient, for logs. */
  readonly address: string;
  constructor(address: string, cause: Error) {
    const errno = (cause as NodeJS.ErrnoException).code;
    super(ErrorCode.CONNECT, `cannot connect to the FastCGI backend at ${address}: ${errno ?? cause.message}`, {
      cause,
    });
    this.address = address;
  }
}

/**
 * The client's timers throw the one TimeoutError class (`timer` 'connect', 'request', 'body' or, with
 * `upstreams`, 'queue'); this name stays for code written against it, and `instanceof ClientTimeoutError` holds
 * for every TimeoutError.
 */
export { TimeoutError as ClientTimeoutError, type ClientTimer } from '../errors';

/**
 * The backend ended a request with a protocolStatus other than REQUEST_COMPLETE (FastCGI 1.0 §5.5):
 * CANT_MPX_CONN, OVERLOADED or UNKNOWN_ROLE, each with its own code.
 */
export class BackendError extends FastCGIError {
  readonly protocolStatus: number;
  readonly appStatus: number;
  constructor(protocolStatus: number, appStatus: number, requestId: number) {
    const refusal = refusalOf(protocolStatus);
    super(
      refusal.code,
      `the backend refused request ${requestId}: ${refusal.reason} (protocolStatus ${protocolStatus}, appStatus ${appStatus})`,
    );
    this.protocolStatus = protocolStatus;
    this.appStatus = appStatus;
  }
}

/** The backend closed the connection (or reset it) before the request's END_REQUEST arrived. */
export class BackendClosedError extends FastCGIError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.BACKEND_CLOSED, message, options);
  }
}

/**
 * The client spans upstreams and has none to send the request to: none configured (or all removed), or their
 * hostnames did not resolve.
 */
export class NoUpstreamError extends FastCGIError {
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.NO_UPSTREAM, message, options);
  }
}

/** client.request() after close(), or a queued request that close() turned away. */
export class ClientClosedError extends FastCGIError {
  constructor(message = 'the FastCGI client is closed') {
    super(ErrorCode.CLIENT_CLOSED, message);
  }
}

/** The request body could not be sent: its source failed, or it did not match the declared length. */
export class RequestBodyError extends FastCGIError {
  constructor(
    value: typeof ErrorCode.BODY_SOURCE | typeof ErrorCode.BODY_LENGTH_MISMATCH,
    message: string,
    options?: ErrorOptions,
  ) {
    super(value, message, options);
  }
}

/** clientProtocolError builds a ProtocolError with a client code (malformed END_REQUEST, CGI header block). */
export function clientProtocolError(
  value: ErrorCodeValue,
  message: string,
  requestId?: number,
  recordType?: number,
): ProtocolError {
  return new ProtocolError(value, message, { requestId, recordType });
}

/** clientLimitError builds a LimitError with a client code (queue full, header block or body too large). */
export function clientLimitError(value: ErrorCodeValue, message: string, limit: number, actual: number): LimitError {
  return new LimitError(value, message, limit, actual);
}
