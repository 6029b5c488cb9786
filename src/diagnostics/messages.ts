// Builds the messages published on the diagnostics channels. Called only after a `hasSubscribers` check, so
// none of this runs when nobody listens (test/diagnostics/channels.test.ts spies on `build` to prove it).
import type { Socket } from 'node:net';
import type { AbortReason, RequestSocket } from '../server/request-socket';
import type { FastCGIError } from '../errors';
import type { ParamsInput } from '../client/params-input';
import type { ClientResponse } from '../client/client-response';
import { protocolStatusName } from '../wire/names';
import {
  roleLabel,
  type ClientConnectErrorMessage,
  type ClientConnectMessage,
  type ClientRequestErrorMessage,
  type ClientRequestFinishMessage,
  type ClientRequestHeadersMessage,
  type ClientRequestInfo,
  type RoleLabel,
  type ServerConnectionCloseMessage,
  type ServerConnectionErrorMessage,
  type ServerConnectionOpenMessage,
  type ServerRequestAbortMessage,
  type ServerRequestErrorMessage,
  type ServerRequestFinishMessage,
  type ServerRequestInfo,
  type ServerRequestRejectMessage,
} from './channels';

/** A server request message; `params` is read from the request only when a subscriber asks. */
class ServerRequestMessage implements ServerRequestInfo {
  readonly request: RequestSocket;
  readonly requestId: number;
  readonly role: RoleLabel;
  constructor(request: RequestSocket) {
    this.request = request;
    this.requestId = request.requestId;
    this.role = roleLabel(request.role);
  }
  get params(): Record<string, string> {
    return this.request.hasParams ? this.request.params : {};
  }
}

class ServerRequestFinish extends ServerRequestMessage implements ServerRequestFinishMessage {
  readonly status: number;
  readonly appStatus: number;
  readonly protocolStatus: string | null;
  readonly abortReason: AbortReason | null;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly startTime: number;
  readonly duration: number;
  constructor(
    request: RequestSocket,
    protocolStatus: number | null,
    duration: number,
    abortReason: AbortReason | null,
  ) {
    super(request);
    this.status = request.status;
    this.appStatus = request.appStatus;
    this.protocolStatus = protocolStatus === null ? null : protocolStatusName(protocolStatus);
    this.abortReason = abortReason ?? request.abortReason;
    this.bytesIn = request.bytesIn;
    this.bytesOut = request.bytesOut;
    this.startTime = request.startTime;
    this.duration = duration;
  }
}

/** A client request message; ClientRequest objects are the opaque `request` handle. */
interface ClientRequestLike {
  readonly requestId: number;
  readonly received: number;
  readonly appStatus: number | null;
  readonly protocolStatus: number | null;
  readonly spec: { readonly role: number; readonly input?: ParamsInput | undefined };
}

function clientInfo(request: ClientRequestLike): ClientRequestInfo {
  return { request, role: roleLabel(request.spec.role), params: request.spec.input };
}

/** The message builders, one per message type. */
export const build = {
  serverConnectionOpen(socket: Socket): ServerConnectionOpenMessage {
    return { socket };
  },
  serverConnectionClose(socket: Socket, requests: number, openedAt: number): ServerConnectionCloseMessage {
    return {
      socket,
      requests,
      bytesIn: socket.bytesRead,
      bytesOut: socket.bytesWritten,
      duration: Date.now() - openedAt,
    };
  },
  serverConnectionError(socket: Socket, error: FastCGIError, cause: string): ServerConnectionErrorMessage {
    return { socket, error, cause };
  },
  serverRequest(request: RequestSocket): ServerRequestInfo {
    return new ServerRequestMessage(request);
  },
  serverRequestFinish(
    request: RequestSocket,
    protocolStatus: number | null,
    duration: number,
    abortReason: AbortReason | null,
  ): ServerRequestFinishMessage {
    return new ServerRequestFinish(request, protocolStatus, duration, abortReason);
  },
  serverRequestAbort(request: RequestSocket, reason: AbortReason): ServerRequestAbortMessage {
    const message = new ServerRequestMessage(request) as ServerRequestMessage & { reason: AbortReason };
    message.reason = reason;
    return message;
  },
  serverRequestError(request: RequestSocket, error: unknown): ServerRequestErrorMessage {
    const message = new ServerRequestMessage(request) as ServerRequestMessage & {
      error: unknown;
      code: string | undefined;
    };
    message.error = error;
    message.code = errorCode(error);
    return message;
  },
  serverRequestReject(
    socket: Socket,
    requestId: number,
    role: number,
    protocolStatus: number,
  ): ServerRequestRejectMessage {
    return { socket, requestId, role: roleLabel(role), protocolStatus: protocolStatusName(protocolStatus) };
  },
  clientRequestCreate(request: ClientRequestLike): ClientRequestInfo {
    return clientInfo(request);
  },
  clientRequestHeaders(request: ClientRequestLike, response: ClientResponse): ClientRequestHeadersMessage {
    return { ...clientInfo(request), requestId: request.requestId, status: response.status, headers: response.headers };
  },
  clientRequestFinish(request: ClientRequestLike): ClientRequestFinishMessage {
    const status = request.protocolStatus;
    return {
      ...clientInfo(request),
      requestId: request.requestId,
      appStatus: request.appStatus,
      protocolStatus: status === null ? null : protocolStatusName(status),
      bytesIn: request.received,
    };
  },
  clientRequestError(request: ClientRequestLike, error: Error): ClientRequestErrorMessage {
    return { ...clientInfo(request), requestId: request.requestId, error, code: errorCode(error) };
  },
  clientConnect(target: string, socket: Socket): ClientConnectMessage {
    return { target, socket };
  },
  clientConnectError(target: string, socket: Socket, error: FastCGIError): ClientConnectErrorMessage {
    return { target, socket, error };
  },
};

/** The `code` of an error (FastCGIError, a Node system error), if it has a string one. */
export function errorCode(error: unknown): string | undefined {
  const code = error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}
