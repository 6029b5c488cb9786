// The status page's pure parts: the report built from stats, merged over workers, and its four formats
// (php-fpm's field names, JSON keys, OpenMetrics checked by promtool when installed).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { StatsRecorder, type ServerStats } from '../../src/server/stats';
import { statusOf as cgiStatusOf } from '../../src/server/request-socket';
import { buildReport, mergeHistograms, mergeStats, type ProcessSample } from '../../src/status/report';
import {
  clfDate,
  parseStatusQuery,
  render,
  renderJson,
  renderOpenMetrics,
  renderPrometheus,
  renderText,
} from '../../src/status/render';
import { formatAccessLine } from '../../src/cli/serve-observe';
import { findBinary, requireBinary } from '../helpers/binaries';

const START = Date.UTC(2024, 6, 1, 10, 0, 0);
const NOW = START + 125_000;

function statsOf(record: (r: StatsRecorder) => void): ServerStats {
  const recorder = new StatsRecorder(100);
  record(recorder);
  return { ...recorder.snapshot(), startTime: START, startSince: 125 };
}

function busyWorker(): ServerStats {
  return statsOf((r) => {
    r.connectionOpened();
    r.connectionOpened();
    r.connectionClosed();
    r.refusedBy('maxConnections');
    r.requestBegan();
    r.protocolStatus(0);
    r.requestEnded(200, 3);
    r.requestBegan();
    r.protocolStatus(0);
    r.requestEnded(404, 150);
    r.requestBegan();
    r.aborted++;
    r.protocolStatus(0);
    r.requestEnded(0, 20);
    r.requestBegan(); // still in flight
    r.protocolStatus(2); // OVERLOADED
    r.bytesIn = 1000;
    r.bytesOut = 5000;
  });
}

function sample(pid: number, stats: ServerStats | null): ProcessSample {
  return {
    entry: {
      pid,
      state: stats === null ? 'Not answering' : stats.requests.inFlight > 0 ? 'Running' : 'Idle',
      startTime: START,
      requests: stats?.requests.total ?? 0,
    },
    stats,
  };
}

describe('stats and report', () => {
  it('counts requests by status class, aborts, slow ones and the latency histogram', () => {
    const s = busyWorker();
    // total counts the requests the server took, once they end; the OVERLOADED refusal is only a protocolStatus.
    expect(s.requests).toMatchObject({
      total: 3,
      inFlight: 1,
      maxInFlight: 1,
      aborted: 1,
      slow: 1,
      byStatusClass: { '2xx': 1, '4xx': 1, '5xx': 0 },
    });
    expect(s.requests.byProtocolStatus).toMatchObject({ REQUEST_COMPLETE: 3, OVERLOADED: 1 });
    expect(s.connections).toEqual({ open: 1, accepted: 2, refused: { maxConnections: 1 }, maxOpen: 2 });
    expect(s.latency.count).toBe(3);
    expect(s.latency.counts[0]).toBe(1); // 3 ms ≤ 5 ms
    expect(s.latency.sum).toBeCloseTo(0.173, 6);
  });

  it('reads the CGI status the application sent', () => {
    expect(cgiStatusOf(Buffer.from('Content-Type: text/plain\r\nStatus: 404 Not Found\r\n\r\nx'))).toBe(404);
    expect(cgiStatusOf(Buffer.from('status:503\n\nbody Status: 200'))).toBe(503);
    expect(cgiStatusOf(Buffer.from('Location: /x\r\n\r\n'))).toBe(302);
    expect(cgiStatusOf(Buffer.from('Content-Type: text/html\r\n\r\nStatus: 500'))).toBe(200);
  });

  it('sums workers: counters added, histograms merged bucket by bucket, the earliest start', () => {
    const a = busyWorker();
    const b = { ...busyWorker(), startTime: START - 10_000 };
    const merged = mergeStats([a, b], NOW);
    expect(merged.startTime).toBe(START - 10_000);
    expect(merged.startSince).toBe(135);
    expect(merged.requests.total).toBe(6);
    expect(merged.requests.byStatusClass['4xx']).toBe(2);
    expect(merged.connections.refused).toEqual({ maxConnections: 2 });
    expect(merged.requests.byProtocolStatus.OVERLOADED).toBe(2);
    expect(merged.latency.counts).toEqual(a.latency.counts.map((n) => n * 2));
    expect(merged.bytes).toEqual({ in: 2000, out: 10000 });
  });

  it('re-buckets a histogram with other bounds into the first one’s', () => {
    const merged = mergeHistograms([
      { bounds: [0.1, 1, Infinity], counts: [1, 1, 1], sum: 3, count: 3 },
      { bounds: [0.05, 0.5, 5, Infinity], counts: [1, 2, 3, 4], sum: 10, count: 10 },
    ]);
    expect(merged.counts).toEqual([2, 3, 8]);
    expect(merged.count).toBe(13);
  });

  it('lists a worker that did not answer and leaves it out of the sums', () => {
    const report = buildReport('www', 'static', [sample(10, busyWorker()), sample(11, null)], NOW);
    expect(report.totalProcesses).toBe(2);
    expect(report.activeProcesses).toBe(1);
    expect(report.idleProcesses).toBe(0);
    expect(report.stats.requests.total).toBe(3);
    expect(renderText(report, true, NOW)).toMatch(/pid: +11\nstate: +Not answering\n/);
  });
});

describe('formats', () => {
  const report = buildReport(
    'www',
    'static',
    [
      sample(10, busyWorker()),
      sample(
        11,
        statsOf(() => undefined),
      ),
    ],
    NOW,
  );

  it('parses php-fpm’s query keys', () => {
    expect(parseStatusQuery('')).toEqual({ format: 'text', full: false });
    expect(parseStatusQuery('json&full')).toEqual({ format: 'json', full: true });
    expect(parseStatusQuery('full&openmetrics')).toEqual({ format: 'openmetrics', full: true });
    expect(parseStatusQuery('prometheus')).toEqual({ format: 'prometheus', full: false });
  });

  it('text: php-fpm’s labels and alignment, then ours; ?full adds one block per process', () => {
    const text = renderText(report, false, NOW);
    const lines = text.trimEnd().split('\n');
    expect(lines.slice(0, 6)).toEqual([
      'pool:                         www',
      'process manager:              static',
      'start time:                   01/Jul/2024:10:00:00 +0000',
      'start since:                  125',
      'accepted conn:                2',
      'listen queue:                 0',
    ]);
    expect(text).toContain('requests 4xx:                 1\n');
    expect(text).toContain('refused conn maxConnections:  1\n');
    expect(text).not.toContain('pid:');
    const full = renderText(report, true, NOW);
    expect(full.split('************************')).toHaveLength(3);
    expect(full).toContain('\npid:                  10\nstate:                Running\n');
  });

  it('json: php-fpm’s keys (start time in seconds), the histogram cumulative with le strings', () => {
    const json = JSON.parse(renderJson(report, true, NOW)) as Record<string, unknown>;
    expect(json).toMatchObject({
      pool: 'www',
      'process manager': 'static',
      'start time': START / 1000,
      'accepted conn': 2,
      'listen queue len': 0,
      'active processes': 1,
      'idle processes': 1,
      'total processes': 2,
      'slow requests': 1,
    });
    expect(json['requests by status class']).toEqual({ '1xx': 0, '2xx': 1, '3xx': 0, '4xx': 1, '5xx': 0 });
    const histogram = json['request duration seconds'] as { le: string[]; cumulative: number[]; count: number };
    expect(histogram.le.at(-1)).toBe('+Inf');
    expect(histogram.cumulative.at(-1)).toBe(histogram.count);
    expect((json.processes as unknown[]).length).toBe(2);
  });

  it('openmetrics: counters with _total, a cumulative histogram, label values escaped, # EOF last', () => {
    const odd = { ...report, pool: 'a"b\\c\nd' };
    const text = renderOpenMetrics(odd, true);
    expect(text.endsWith('# EOF\n')).toBe(true);
    expect(text).toContain('# TYPE fastcgi_engine_requests_total counter\n');
    expect(text).toContain('fastcgi_engine_requests_total{pool="a\\"b\\\\c\\nd",status_class="4xx"} 1\n');
    expect(text).toMatch(/fastcgi_engine_request_duration_seconds_bucket\{pool="[^}]*",le="\+Inf"\} 3\n/);
    expect(text).toContain('fastcgi_engine_process_up{pool="a\\"b\\\\c\\nd",pid="10"} 1\n');
    expect(renderPrometheus(report, false)).not.toContain('# EOF');
  });

  for (const format of ['openmetrics', 'prometheus'] as const) {
    it(`${format} passes promtool check metrics`, (context) => {
      const promtool = requireBinary(context, findBinary('promtool'), 'promtool', 'prometheus');
      const result = spawnSync(promtool, ['check', 'metrics'], {
        input: render(report, format, true, NOW),
        encoding: 'utf8',
      });
      expect(result.stdout + result.stderr).toBe('');
      expect(result.status).toBe(0);
    });
  }

  it('access log lines: common log format with the seconds taken, or JSON', () => {
    const entry = {
      time: START,
      remoteAddress: '10.0.0.1',
      method: 'GET',
      uri: '/a "b"',
      protocol: 'HTTP/1.1',
      status: 404,
      bytes: 12,
      durationMs: 1234.5,
      aborted: false,
    };
    expect(formatAccessLine(entry, 'common')).toBe(
      '10.0.0.1 - - [01/Jul/2024:10:00:00 +0000] "GET /a \\"b\\" HTTP/1.1" 404 12 1.234\n',
    );
    expect(JSON.parse(formatAccessLine(entry, 'json'))).toEqual({
      time: '2024-07-01T10:00:00.000Z',
      remote: '10.0.0.1',
      method: 'GET',
      uri: '/a "b"',
      protocol: 'HTTP/1.1',
      status: 404,
      bytes: 12,
      duration_ms: 1234.5,
      aborted: false,
    });
    expect(clfDate(Date.UTC(2025, 0, 2, 3, 4, 5))).toBe('02/Jan/2025:03:04:05 +0000');
  });
});
