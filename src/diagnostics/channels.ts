// The diagnostics_channel channels this engine publishes on, and the messages they carry. Named as undici
// names its own (`undici:request:create`), under `fastcgi:`. Publishers check `hasSubscribers` before they
// build a message, so an unobserved server or client pays one property read per event.
import diagnosticsChannel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import type { AbortReason, RequestSocket } from '../server/request-socket';
import type { FastCGIError } from '../errors';
import type { ParamsInput } from '../client/params-input';
import type { CgiHeaders } from '../cgi/response';

/** The role names messages carry (FastCGI 1.0 §6); an undefined role number is given as its number. */
export type RoleLabel = 'responder' | 'authorizer' | 'filter' | number;

/** @internal */
export function roleLabel(role: number): RoleLabel {
  return role === 1 ? 'responder' : role === 2 ? 'authorizer' : role === 3 ? 'filter' : role;
}

// ---- Server -------------------------------------------------------------------------------------------------

/** `fastcgi:server:connection:open`: a web server connection was accepted (and not refused). */
export interface ServerConnectionOpenMessage {
  readonly socket: Socket;
}

/** `fastcgi:server:connection:close`: a connection closed, for whatever reason. */
export interface ServerConnectionCloseMessage {
  readonly socket: Socket;
  /** Requests it handed to the application. */
  readonly requests: number;
  /** Bytes read from and written to the socket. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** How long it was open, ms. */
  readonly duration: number;
}

/**
 * `fastcgi:server:connection:error`: a connection was refused (maxConnections, webServerAddrs) or closed by
 * a limit, a timeout or malformed input. `cause` is the key it counts under in `server.stats().connections.refused`.
 */
export interface ServerConnectionErrorMessage {
  readonly socket: Socket;
  readonly error: FastCGIError;
  readonly cause: string;
}

/** What every server request message has. `params` is decoded only when read. */
export interface ServerRequestInfo {
  readonly request: RequestSocket;
  readonly requestId: number;
  readonly role: RoleLabel;
  /** The CGI params as an object (empty if they never completed). Built on first read. */
  readonly params: Record<string, string>;
}

/** `fastcgi:server:request:start`: the params are complete and the request goes to the handler. */
export type ServerRequestStartMessage = ServerRequestInfo;

/** `fastcgi:server:request:finish`: the request is over (END_REQUEST sent, or abandoned on an abort). */
export interface ServerRequestFinishMessage extends ServerRequestInfo {
  /** The response status the application sent (its CGI Status; 200 when it sent none), 0 if it sent no headers. */
  readonly status: number;
  /** END_REQUEST's appStatus. */
  readonly appStatus: number;
  /** END_REQUEST's protocolStatus name ('REQUEST_COMPLETE'); null when the connection closed first. */
  readonly protocolStatus: string | null;
  /** Why the web server gave up on it ('abort-request', 'connection-closed'), or null. */
  readonly abortReason: AbortReason | null;
  /** Body bytes received (STDIN and DATA) and response bytes sent (STDOUT). */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** `performance.now()` at its BEGIN_REQUEST, and ms from then to now. */
  readonly startTime: number;
  readonly duration: number;
}

/** `fastcgi:server:request:abort`: the web server aborted the request (ABORT_REQUEST, or closed the connection). */
export interface ServerRequestAbortMessage extends ServerRequestInfo {
  readonly reason: AbortReason;
}

/** `fastcgi:server:request:error`: the handler threw or rejected, or ran past handlerTimeout. */
export interface ServerRequestErrorMessage extends ServerRequestInfo {
  readonly error: unknown;
  /** The error's code: a FastCGIError's, FCGI_ERR_HANDLER_TIMEOUT, or undefined for an application error without one. */
  readonly code: string | undefined;
}

/** `fastcgi:server:request:reject`: a BEGIN_REQUEST refused at once with END_REQUEST (OVERLOADED, CANT_MPX_CONN, UNKNOWN_ROLE). */
export interface ServerRequestRejectMessage {
  readonly socket: Socket;
  readonly requestId: number;
  readonly role: RoleLabel;
  readonly protocolStatus: string;
}

/**
 * The context of `tracing:fastcgi:server:handler:*` (a TracingChannel): the handler call, so an APM's span
 * for the request covers it and async context flows from `start` into the handler.
 */
export interface ServerHandlerContext extends ServerRequestInfo {
  error?: unknown;
  result?: unknown;
}

// ---- Client -------------------------------------------------------------------------------------------------

/** What every client request message has. `request` is the same object in every message of one request. */
export interface ClientRequestInfo {
  /** An opaque handle, the same object in every message of one request. */
  readonly request: object;
  readonly role: RoleLabel;
  /** The params as passed to client.request(). */
  readonly params: ParamsInput | undefined;
}

/** `fastcgi:client:request:create`: client.request() was called; the request queues for a connection. */
export type ClientRequestCreateMessage = ClientRequestInfo;

/** `fastcgi:client:request:headers`: the response's CGI header block arrived. */
export interface ClientRequestHeadersMessage extends ClientRequestInfo {
  readonly status: number;
  readonly headers: CgiHeaders;
  /** The request id on its connection. */
  readonly requestId: number;
}

/** `fastcgi:client:request:finish`: END_REQUEST arrived and the body is complete. */
export interface ClientRequestFinishMessage extends ClientRequestInfo {
  readonly requestId: number;
  readonly appStatus: number | null;
  readonly protocolStatus: string | null;
  /** Response bytes received (STDOUT and STDERR). */
  readonly bytesIn: number;
}

/** `fastcgi:client:request:error`: the request failed (before or after its headers). */
export interface ClientRequestErrorMessage extends ClientRequestInfo {
  readonly requestId: number;
  readonly error: Error;
  readonly code: string | undefined;
}

/** `fastcgi:client:connect`: the client opens a connection to a backend. */
export interface ClientConnectMessage {
  /** The backend, as `host:port` or a unix path. */
  readonly target: string;
  readonly socket: Socket;
}

/** `fastcgi:client:connected`: the connection is up. */
export type ClientConnectedMessage = ClientConnectMessage;

/** `fastcgi:client:connectError`: connecting failed (refused, unreachable, connectTimeout). */
export interface ClientConnectErrorMessage extends ClientConnectMessage {
  readonly error: FastCGIError;
}

/** The context of `tracing:fastcgi:client:request:*` (a TracingChannel around the request's promise). */
export interface ClientRequestContext {
  readonly role: RoleLabel;
  readonly params: ParamsInput | undefined;
  error?: unknown;
  result?: unknown;
}

/** The channels, by name. Subscribe with `diagnostics_channel.subscribe(name, fn)` or through these objects. */
export const channels = {
  serverConnectionOpen: diagnosticsChannel.channel('fastcgi:server:connection:open'),
  serverConnectionClose: diagnosticsChannel.channel('fastcgi:server:connection:close'),
  serverConnectionError: diagnosticsChannel.channel('fastcgi:server:connection:error'),
  serverRequestStart: diagnosticsChannel.channel('fastcgi:server:request:start'),
  serverRequestFinish: diagnosticsChannel.channel('fastcgi:server:request:finish'),
  serverRequestAbort: diagnosticsChannel.channel('fastcgi:server:request:abort'),
  serverRequestError: diagnosticsChannel.channel('fastcgi:server:request:error'),
  serverRequestReject: diagnosticsChannel.channel('fastcgi:server:request:reject'),
  clientRequestCreate: diagnosticsChannel.channel('fastcgi:client:request:create'),
  clientRequestHeaders: diagnosticsChannel.channel('fastcgi:client:request:headers'),
  clientRequestFinish: diagnosticsChannel.channel('fastcgi:client:request:finish'),
  clientRequestError: diagnosticsChannel.channel('fastcgi:client:request:error'),
  clientConnect: diagnosticsChannel.channel('fastcgi:client:connect'),
  clientConnected: diagnosticsChannel.channel('fastcgi:client:connected'),
  clientConnectError: diagnosticsChannel.channel('fastcgi:client:connectError'),
} as const;

/** Tracing channels (`tracing:<name>:start|end|asyncStart|asyncEnd|error`). */
export const tracingChannels = {
  /** The request handler call, sync part and, when it returns a promise, its settlement. */
  serverHandler: diagnosticsChannel.tracingChannel<string, ServerHandlerContext>('fastcgi:server:handler'),
  /** client.request(), from the call until its promise settles (the response headers, or the error). */
  clientRequest: diagnosticsChannel.tracingChannel<string, ClientRequestContext>('fastcgi:client:request'),
} as const;

type AnyTracingChannel = (typeof tracingChannels)[keyof typeof tracingChannels];

/** @internal Whether anyone listens on any of a tracing channel's five channels (TracingChannel.hasSubscribers is newer than Node 20.0). */
export function tracingActive(tracing: AnyTracingChannel): boolean {
  return (
    tracing.start.hasSubscribers ||
    tracing.end.hasSubscribers ||
    tracing.asyncStart.hasSubscribers ||
    tracing.asyncEnd.hasSubscribers ||
    tracing.error.hasSubscribers
  );
}
