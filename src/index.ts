// fastcgi-engine's public surface: re-exports only.
export { codec, type CodecInfo } from './codec/load';
export type { CodecImplementation, Scanner } from './codec/scanner';
export {
  Flag,
  ManagementVariable,
  ProtocolStatus,
  RecordType,
  Role,
  type ProtocolStatusValue,
  type RecordTypeValue,
  type RoleValue,
} from './wire/constants';
export { KNOWN_NAMES } from './codec/known-names';
export {
  END_REQUEST_LENGTH,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeGetValues,
  encodeGetValuesResult,
  encodeRecord,
  encodeStream,
  encodeUnknownType,
  paddingFor,
  streamRecordChunks,
  writeEndRequest,
  writeHeader,
  type RecordOptions,
  type StreamOptions,
} from './wire/records';
export { encodePairs, encodeParams, encodedPairLength, type PairInput, type ParamsOptions } from './wire/pairs';
export { Decoder, type DecoderHandler, type DecoderOptions } from './wire/decoder';
export { Params } from './wire/params';
export { Server, createServer, type RequestListener } from './server/server';
export { serve, requestOrigin, type FetchContext, type FetchHandler } from './server/fetch';
export { FastCGIIncomingMessage, FastCGIServerResponse } from './server/http-message';
export { RequestSocket, type AbortReason, type BodySink } from './server/request-socket';
export type { Logger, ServerOptions, StructuredLogger } from './server/options';
export type { LatencyHistogram, ServerStats } from './server/stats';
export {
  channels,
  tracingChannels,
  type ClientConnectErrorMessage,
  type ClientConnectMessage,
  type ClientConnectedMessage,
  type ClientRequestContext,
  type ClientRequestCreateMessage,
  type ClientRequestErrorMessage,
  type ClientRequestFinishMessage,
  type ClientRequestHeadersMessage,
  type ClientRequestInfo,
  type RoleLabel,
  type ServerConnectionCloseMessage,
  type ServerConnectionErrorMessage,
  type ServerConnectionOpenMessage,
  type ServerHandlerContext,
  type ServerRequestAbortMessage,
  type ServerRequestErrorMessage,
  type ServerRequestFinishMessage,
  type ServerRequestInfo,
  type ServerRequestRejectMessage,
  type ServerRequestStartMessage,
} from './diagnostics/channels';
export {
  ErrorCode,
  FastCGIError,
  InvalidArgumentError,
  LimitError,
  ListenError,
  NativeLoadError,
  ProtocolError,
  RequestAbortedError,
  TimeoutError,
  type ErrorCodeValue,
  type ProtocolErrorDetails,
} from './errors';
export {
  Client,
  createClient,
  type ParamValue,
  type ParamsInput,
  type RequestOptions,
  type RoleName,
} from './client/client';
export type { ClientOptions } from './client/options';
export type { BalancerOptions, HealthCheckOptions, LookupFunction, UpstreamOptions } from './client/balancer-options';
export type { BalancePolicy } from './client/balance-policy';
export type { ClientStats, UpstreamStats } from './client/stats';
export type { BackendAddress } from './wire/address';
export type { RequestBody } from './client/body';
export { ClientResponse, ResponseBody, type ClientCompletion } from './client/client-response';
export type { CgiHead, CgiHeaders } from './cgi/response';
export type { PoolStats } from './client/pool';
export {
  createGateway,
  statusFor,
  type BufferRequestsOptions,
  type Gateway,
  type GatewayLogger,
  type GatewayOptions,
} from './gateway/gateway';
export type { ScriptMapping } from './cgi/params';
export { createPhpFrontEnd, type PhpFrontEnd, type PhpFrontEndOptions, type StaticOptions } from './php/front-end';
export type { SendfileRoots } from './php/sendfile';
export {
  BackendClosedError,
  BackendError,
  ClientClosedError,
  ClientTimeoutError,
  ConnectError,
  NoUpstreamError,
  RequestBodyError,
  type ClientTimer,
} from './client/errors';
