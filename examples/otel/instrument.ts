// OpenTelemetry from fastcgi-engine's diagnostics channels: a server span per FastCGI request and the
// `http.server.request.duration` histogram, named and attributed by OTel's HTTP semantic conventions. The
// engine knows no OTel; this subscribes to its channels, as an APM agent would.
import diagnosticsChannel from 'node:diagnostics_channel';
import { SpanKind, SpanStatusCode, type Meter, type Span, type Tracer } from '@opentelemetry/api';
import type { ServerRequestFinishMessage, ServerRequestStartMessage, ServerRequestErrorMessage } from '../../src/index';

export interface InstrumentOptions {
  tracer: Tracer;
  meter: Meter;
}

/** Subscribes; returns the function that unsubscribes. */
export function instrumentFastCGI({ tracer, meter }: InstrumentOptions): () => void {
  const duration = meter.createHistogram('http.server.request.duration', {
    unit: 's',
    description: 'Duration of HTTP server requests.',
    advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] },
  });
  const spans = new WeakMap<object, Span>();

  const onStart = (message: unknown): void => {
    const { request, params, requestId, role } = message as ServerRequestStartMessage;
    const method = params.REQUEST_METHOD ?? 'GET';
    const uri = params.REQUEST_URI ?? '';
    const queryAt = uri.indexOf('?');
    // No route is known here, so the span is named by the method alone (the conventions' low-cardinality rule).
    const span = tracer.startSpan(method, {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': method,
        'url.path': queryAt === -1 ? uri : uri.slice(0, queryAt),
        ...(queryAt === -1 ? {} : { 'url.query': uri.slice(queryAt + 1) }),
        'url.scheme':
          params.HTTPS !== undefined && params.HTTPS !== '' && params.HTTPS.toLowerCase() !== 'off' ? 'https' : 'http',
        ...(params.SERVER_NAME ? { 'server.address': params.SERVER_NAME } : {}),
        ...(params.SERVER_PORT ? { 'server.port': Number(params.SERVER_PORT) } : {}),
        ...(params.REMOTE_ADDR ? { 'client.address': params.REMOTE_ADDR } : {}),
        ...(params.HTTP_USER_AGENT ? { 'user_agent.original': params.HTTP_USER_AGENT } : {}),
        'fastcgi.request_id': requestId,
        'fastcgi.role': String(role),
      },
    });
    spans.set(request, span);
  };

  const onError = (message: unknown): void => {
    const { request, error } = message as ServerRequestErrorMessage;
    const span = spans.get(request);
    if (span === undefined) return;
    span.recordException(error instanceof Error ? error : String(error));
  };

  const onFinish = (message: unknown): void => {
    const finish = message as ServerRequestFinishMessage;
    const method = finish.params.REQUEST_METHOD ?? 'GET';
    const attributes: Record<string, string | number> = { 'http.request.method': method };
    if (finish.status !== 0) attributes['http.response.status_code'] = finish.status;
    if (finish.abortReason !== null) attributes['error.type'] = finish.abortReason;
    else if (finish.status >= 500) attributes['error.type'] = String(finish.status);
    duration.record(finish.duration / 1000, attributes);
    const span = spans.get(finish.request);
    if (span === undefined) return;
    spans.delete(finish.request);
    span.setAttributes({
      ...attributes,
      'http.request.body.size': finish.bytesIn,
      'http.response.body.size': finish.bytesOut,
    });
    // Server spans: 5xx and aborts are errors, 4xx are not (the client's fault).
    if (attributes['error.type'] !== undefined) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  };

  diagnosticsChannel.subscribe('fastcgi:server:request:start', onStart);
  diagnosticsChannel.subscribe('fastcgi:server:request:error', onError);
  diagnosticsChannel.subscribe('fastcgi:server:request:finish', onFinish);
  return () => {
    diagnosticsChannel.unsubscribe('fastcgi:server:request:start', onStart);
    diagnosticsChannel.unsubscribe('fastcgi:server:request:error', onError);
    diagnosticsChannel.unsubscribe('fastcgi:server:request:finish', onFinish);
  };
}
