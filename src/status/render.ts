// Renders a StatusReport as php-fpm's status page does: text (default), JSON, OpenMetrics 1.0 (?openmetrics)
// or the Prometheus text format 0.0.4 (?prometheus). Field names follow php-fpm's where they mean the same.
import type { LatencyHistogram } from '../server/stats';
import type { ProcessEntry, StatusReport } from './report';

export type StatusFormat = 'text' | 'json' | 'openmetrics' | 'prometheus';

/** The Content-Type each format is served with. */
export const CONTENT_TYPES: Record<StatusFormat, string> = {
  text: 'text/plain; charset=utf-8',
  json: 'application/json',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
};

/** The format and `full` flag a status request's QUERY_STRING asks for (php-fpm's ?json, ?openmetrics, ?full). */
export function parseStatusQuery(query: string): { format: StatusFormat; full: boolean } {
  const keys = new Set(query.split('&').map((part) => decodeURIComponent(part.split('=')[0] ?? '')));
  const format: StatusFormat = keys.has('json')
    ? 'json'
    : keys.has('openmetrics')
      ? 'openmetrics'
      : keys.has('prometheus')
        ? 'prometheus'
        : 'text';
  return { format, full: keys.has('full') };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** php-fpm's and the common log format's date: 01/Jul/2024:10:00:00 +0000 (UTC). */
export function clfDate(ms: number): string {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

function sinceSeconds(startTime: number, now: number): number {
  return startTime === 0 ? 0 : Math.max(0, Math.floor((now - startTime) / 1000));
}

/** The pool's fields in order, as label → value: php-fpm's first, then ours. */
function poolFields(report: StatusReport): [string, string | number][] {
  const s = report.stats;
  const fields: [string, string | number][] = [
    ['pool', report.pool],
    ['process manager', report.processManager],
    ['start time', clfDate(s.startTime)],
    ['start since', s.startSince],
    ['accepted conn', s.connections.accepted],
    ['listen queue', report.listenQueue],
    ['max listen queue', report.maxListenQueue],
    // php-fpm's listen backlog; Node does not expose the one it asked for, so 0 (unknown) as for the queue.
    ['listen queue len', 0],
    ['idle processes', report.idleProcesses],
    ['active processes', report.activeProcesses],
    ['total processes', report.totalProcesses],
    ['max active processes', report.maxActiveProcesses],
    ['max children reached', report.maxChildrenReached],
    ['slow requests', s.requests.slow],
    ['open conn', s.connections.open],
    ['max open conn', s.connections.maxOpen],
    ['requests', s.requests.total],
    ['requests in flight', s.requests.inFlight],
    ['max requests in flight', s.requests.maxInFlight],
  ];
  for (const [cls, n] of Object.entries(s.requests.byStatusClass)) fields.push([`requests ${cls}`, n]);
  fields.push(
    ['aborted requests', s.requests.aborted],
    ['timed out requests', s.requests.timedOut],
    ['bytes in', s.bytes.in],
    ['bytes out', s.bytes.out],
  );
  for (const [status, n] of Object.entries(s.requests.byProtocolStatus).sort())
    fields.push([`end request ${status}`, n]);
  for (const [cause, n] of Object.entries(s.connections.refused).sort()) fields.push([`refused conn ${cause}`, n]);
  return fields;
}

function processFields(entry: ProcessEntry, now: number): [string, string | number][] {
  const fields: [string, string | number][] = [
    ['pid', entry.pid],
    ['state', entry.state],
    ['start time', entry.startTime === 0 ? '-' : clfDate(entry.startTime)],
    ['start since', sinceSeconds(entry.startTime, now)],
    ['requests', entry.requests],
  ];
  if (entry.lastRequest !== undefined) {
    // php-fpm reports the duration in microseconds.
    fields.push(
      ['request duration', Math.round(entry.lastRequest.durationMs * 1000)],
      ['request method', entry.lastRequest.method],
      ['request URI', entry.lastRequest.uri],
    );
  }
  return fields;
}

function textBlock(fields: [string, string | number][]): string {
  const width = Math.max(22, ...fields.map(([label]) => label.length + 2));
  return fields.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}\n`).join('');
}

/** php-fpm's text page: `label:` padded, one field a line; ?full adds a block per process after a line of stars. */
export function renderText(report: StatusReport, full: boolean, now = Date.now()): string {
  let out = textBlock(poolFields(report));
  if (full)
    for (const entry of report.processes) out += `\n************************\n${textBlock(processFields(entry, now))}`;
  return out;
}

/** Bucket bounds as Prometheus writes `le`: "0.005" … "+Inf". */
function le(bound: number): string {
  return bound === Infinity ? '+Inf' : String(bound);
}

function cumulative(histogram: LatencyHistogram): number[] {
  let total = 0;
  return histogram.counts.map((count) => (total += count));
}

/** php-fpm's JSON keys (with spaces, start time in seconds since the epoch), ours after them. */
export function renderJson(report: StatusReport, full: boolean, now = Date.now()): string {
  const s = report.stats;
  const out: Record<string, unknown> = {};
  for (const [label, value] of poolFields(report)) {
    if (label.startsWith('requests ') && label.endsWith('xx')) continue;
    if (label.startsWith('end request ') || label.startsWith('refused conn ')) continue;
    out[label] = label === 'start time' ? Math.floor(s.startTime / 1000) : value;
  }
  out['requests by status class'] = s.requests.byStatusClass;
  out['end requests'] = s.requests.byProtocolStatus;
  out['refused conn'] = s.connections.refused;
  out['request duration seconds'] = {
    le: s.latency.bounds.map(le),
    cumulative: cumulative(s.latency),
    sum: s.latency.sum,
    count: s.latency.count,
  };
  if (full) {
    out.processes = report.processes.map((entry) => {
      const p: Record<string, unknown> = {};
      for (const [label, value] of processFields(entry, now))
        p[label] = label === 'start time' ? Math.floor(entry.startTime / 1000) : value;
      return p;
    });
  }
  return `${JSON.stringify(out)}\n`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labels(values: Record<string, string>): string {
  const parts = Object.entries(values).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function number(value: number): string {
  return value === Infinity ? '+Inf' : Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(12)));
}

type Kind = 'counter' | 'gauge' | 'histogram';
interface Family {
  name: string;
  kind: Kind;
  help: string;
  unit?: string;
  samples: { suffix?: string; labels: Record<string, string>; value: number }[];
}

/**
 * The metric families. Every sample carries the pool. A counter's family is named with its `_total`, as its
 * samples are: what the Prometheus text format wants, and what Prometheus's OpenMetrics parser and
 * `promtool check metrics` both read as one family (php-fpm's ?openmetrics names its counters' families and
 * samples alike too); strict OpenMetrics would name the family without the suffix, which the text format then
 * reads as a second family with no help or type.
 */
function families(report: StatusReport, full: boolean): Family[] {
  const s = report.stats;
  const pool = { pool: report.pool };
  const one = (name: string, kind: Kind, help: string, value: number, unit?: string): Family => ({
    name,
    kind,
    help,
    unit,
    samples: [{ labels: pool, value }],
  });
  const list: Family[] = [
    one('fastcgi_engine_up', 'gauge', 'Whether the status page could be built (1).', 1),
    one(
      'fastcgi_engine_start_time_seconds',
      'gauge',
      'When the pool started listening, seconds since the epoch.',
      s.startTime / 1000,
      'seconds',
    ),
    one(
      'fastcgi_engine_start_since_seconds',
      'gauge',
      'Seconds since the pool started listening.',
      s.startSince,
      'seconds',
    ),
    one(
      'fastcgi_engine_accepted_connections',
      'counter',
      'Connections accepted (php-fpm: accepted conn).',
      s.connections.accepted,
    ),
    one('fastcgi_engine_open_connections', 'gauge', 'Connections open now.', s.connections.open),
    one(
      'fastcgi_engine_listen_queue',
      'gauge',
      'Connections waiting in the accept queue (not known here: 0).',
      report.listenQueue,
    ),
    one(
      'fastcgi_engine_max_listen_queue',
      'gauge',
      'Most connections seen waiting in the accept queue (not known here: 0).',
      report.maxListenQueue,
    ),
    one('fastcgi_engine_idle_processes', 'gauge', 'Processes with no request in flight.', report.idleProcesses),
    one('fastcgi_engine_active_processes', 'gauge', 'Processes with a request in flight.', report.activeProcesses),
    one('fastcgi_engine_total_processes', 'gauge', 'Processes in the pool.', report.totalProcesses),
    one(
      'fastcgi_engine_max_active_processes',
      'gauge',
      'Processes that have had a request in flight.',
      report.maxActiveProcesses,
    ),
    one(
      'fastcgi_engine_max_children_reached',
      'counter',
      'Times the process limit was reached (fixed pool: 0).',
      report.maxChildrenReached,
    ),
    one('fastcgi_engine_slow_requests', 'counter', 'Requests slower than the slow request threshold.', s.requests.slow),
    one('fastcgi_engine_requests_in_flight', 'gauge', 'Requests in flight now.', s.requests.inFlight),
    {
      name: 'fastcgi_engine_requests',
      kind: 'counter',
      help: 'Requests answered, by the class of the status the application sent.',
      samples: Object.entries(s.requests.byStatusClass).map(([cls, value]) => ({
        labels: { ...pool, status_class: cls },
        value,
      })),
    },
    one(
      'fastcgi_engine_aborted_requests',
      'counter',
      'Requests the web server aborted (ABORT_REQUEST or a closed connection).',
      s.requests.aborted,
    ),
    one(
      'fastcgi_engine_timed_out_requests',
      'counter',
      'Requests whose handler overran handlerTimeout.',
      s.requests.timedOut,
    ),
    {
      name: 'fastcgi_engine_end_requests',
      kind: 'counter',
      help: 'END_REQUEST records sent, by protocolStatus.',
      samples: Object.entries(s.requests.byProtocolStatus).map(([status, value]) => ({
        labels: { ...pool, protocol_status: status },
        value,
      })),
    },
    {
      name: 'fastcgi_engine_refused_connections',
      kind: 'counter',
      help: 'Connections refused or closed by a limit, a timeout or a protocol error, by cause.',
      samples: Object.entries(s.connections.refused).map(([cause, value]) => ({ labels: { ...pool, cause }, value })),
    },
    one('fastcgi_engine_received_bytes', 'counter', 'Bytes read from web servers.', s.bytes.in),
    one('fastcgi_engine_sent_bytes', 'counter', 'Bytes written to web servers.', s.bytes.out),
  ];
  const counts = cumulative(s.latency);
  list.push({
    name: 'fastcgi_engine_request_duration_seconds',
    kind: 'histogram',
    help: 'Time from a request handed to the application to its end.',
    unit: 'seconds',
    samples: [
      ...s.latency.bounds.map((bound, i) => ({
        suffix: '_bucket',
        labels: { ...pool, le: le(bound) },
        value: counts[i]!,
      })),
      { suffix: '_sum', labels: pool, value: s.latency.sum },
      { suffix: '_count', labels: pool, value: s.latency.count },
    ],
  });
  if (full) {
    list.push({
      name: 'fastcgi_engine_process_requests',
      kind: 'counter',
      help: 'Requests each process has served.',
      samples: report.processes.map((p) => ({ labels: { ...pool, pid: String(p.pid) }, value: p.requests })),
    });
    list.push({
      name: 'fastcgi_engine_process_up',
      kind: 'gauge',
      help: 'Whether each process answered the status query (1) or not (0).',
      samples: report.processes.map((p) => ({
        labels: { ...pool, pid: String(p.pid) },
        value: p.state === 'Not answering' ? 0 : 1,
      })),
    });
  }
  return list;
}

function renderMetrics(report: StatusReport, full: boolean, openMetrics: boolean): string {
  let out = '';
  for (const family of families(report, full)) {
    if (family.samples.length === 0) continue;
    const counter = family.kind === 'counter';
    const typeName = counter ? `${family.name}_total` : family.name;
    out += `# HELP ${typeName} ${family.help}\n# TYPE ${typeName} ${family.kind}\n`;
    // OpenMetrics wants a family with a unit named for it, which `_total` would break: counters have none.
    if (openMetrics && family.unit !== undefined && !counter) out += `# UNIT ${family.name} ${family.unit}\n`;
    for (const sample of family.samples) {
      const suffix = sample.suffix ?? (counter ? '_total' : '');
      out += `${family.name}${suffix}${labels(sample.labels)} ${number(sample.value)}\n`;
    }
  }
  return openMetrics ? `${out}# EOF\n` : out;
}

/** OpenMetrics 1.0 (php-fpm's ?openmetrics; ends with `# EOF`). */
export function renderOpenMetrics(report: StatusReport, full: boolean): string {
  return renderMetrics(report, full, true);
}

/** The Prometheus text format 0.0.4 (?prometheus). */
export function renderPrometheus(report: StatusReport, full: boolean): string {
  return renderMetrics(report, full, false);
}

/** render picks the renderer for a format. */
export function render(report: StatusReport, format: StatusFormat, full: boolean, now = Date.now()): string {
  switch (format) {
    case 'json':
      return renderJson(report, full, now);
    case 'openmetrics':
      return renderOpenMetrics(report, full);
    case 'prometheus':
      return renderPrometheus(report, full);
    default:
      return renderText(report, full, now);
  }
}
