// examples/otel: the channels become OTel spans and the http.server.request.duration histogram, checked with
// the real SDK's in-memory exporters against a running server.
import { afterEach, describe, expect, it } from 'vitest';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type HistogramMetricData,
} from '@opentelemetry/sdk-metrics';
import { createServer } from '../../src/server/server';
import { instrumentFastCGI } from '../../examples/otel/instrument';
import { listenForTest } from '../server/harness';
import { waitFor } from '../client/helpers';

let stop: (() => void) | null = null;
afterEach(() => {
  stop?.();
  stop = null;
});

describe('examples/otel', () => {
  it('makes a server span per request and records http.server.request.duration', async () => {
    const spans = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
    const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 60_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    stop = instrumentFastCGI({ tracer: tracerProvider.getTracer('test'), meter: meterProvider.getMeter('test') });

    const server = createServer({ logger: { warn() {}, error() {} } }, (req, res) => {
      if (req.url === '/fail') throw new Error('nope');
      res.end('hi');
    });
    const { connect } = await listenForTest(server);
    const peer = await connect();
    const params = (uri: string) => ({
      REQUEST_METHOD: 'GET',
      REQUEST_URI: uri,
      SCRIPT_NAME: uri,
      SERVER_NAME: 'example.test',
      SERVER_PORT: '443',
      HTTPS: 'on',
      REMOTE_ADDR: '192.0.2.7',
    });
    await peer.request({ requestId: 1, params: params('/hello?x=1'), keepConn: true });
    await peer.request({ requestId: 2, params: params('/fail'), keepConn: true });
    await waitFor(() => spans.getFinishedSpans().length === 2, 2000, 'two spans');

    const [ok, failed] = spans.getFinishedSpans();
    expect(ok!.name).toBe('GET');
    expect(ok!.kind).toBe(SpanKind.SERVER);
    expect(ok!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/hello',
      'url.query': 'x=1',
      'url.scheme': 'https',
      'server.address': 'example.test',
      'server.port': 443,
      'client.address': '192.0.2.7',
      'http.response.status_code': 200,
      'fastcgi.request_id': 1,
    });
    expect(ok!.status.code).toBe(SpanStatusCode.UNSET);
    expect(failed!.attributes).toMatchObject({ 'http.response.status_code': 500, 'error.type': '500' });
    expect(failed!.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed!.events.map((e) => e.name)).toContain('exception');

    await reader.forceFlush();
    const metric = metrics
      .getMetrics()
      .flatMap((r) => r.scopeMetrics)
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === 'http.server.request.duration') as HistogramMetricData | undefined;
    expect(metric).toBeDefined();
    expect(metric!.descriptor.unit).toBe('s');
    const byStatus = new Map(metric!.dataPoints.map((p) => [p.attributes['http.response.status_code'], p.value.count]));
    expect(byStatus.get(200)).toBe(1);
    expect(byStatus.get(500)).toBe(1);
    await meterProvider.shutdown();
    await tracerProvider.shutdown();
  });
});
