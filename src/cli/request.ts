// `fastcgi-engine request <address>`: one FastCGI request over a raw socket, built with the public encoders,
// its records read by a small header walker so --trace can show each one (type, id, lengths, a dump) and the
// classic deployment failures can be named in plain words.
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import { ProtocolStatus, RecordType, Role, encodeBeginRequest, encodeParams, encodeStream } from '../index';
import { EXIT_USAGE, UsageError, describeAddress, parseAddress, parseCount } from './args';

/** Exit codes of `request` (documented in --help and the README). */
export const RequestExit = {
  OK: 0,
  USAGE: EXIT_USAGE,
  CONNECT: 3,
  HTTP_4XX: 4,
  HTTP_5XX: 5,
  PROTOCOL: 6,
  REJECTED: 7,
  TIMEOUT: 8,
} as const;

const HELP = `Usage: fastcgi-engine request <address> [options]

Sends one FastCGI request (role RESPONDER) and prints the CGI response: the status line, the headers and the
body on stdout, the application's STDERR on stderr.

<address>: /path/to.sock, unix:/path, host:port, tcp://host:port or a port (127.0.0.1).

Options:
  --method M              REQUEST_METHOD (default GET, POST when --body is given)
  --uri U                 REQUEST_URI; SCRIPT_NAME, PATH_INFO-free, and QUERY_STRING follow from it (default /)
  --param K=V             a CGI param; repeatable; overrides the defaults
  --body @FILE | TEXT     the request body (STDIN), from a file with @
  --script-filename F     SCRIPT_FILENAME (php-fpm needs it)
  --header 'Name: value'  an HTTP header, sent as HTTP_NAME; repeatable
  --timeout MS            give up after this long (default 30000)
  --trace                 print every record sent and received on stderr
  -h, --help              this text

Exit codes: 0 2xx/3xx · 2 bad arguments · 3 could not connect (nothing listening, permission denied) ·
4 status 4xx · 5 status 5xx · 6 protocol error (peer speaks HTTP, malformed record or CGI head, closed before
END_REQUEST) · 7 request rejected (protocolStatus not REQUEST_COMPLETE) · 8 timed out.`;

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RecordType).map(([k, v]) => [v, k]));
const PROTOCOL_STATUS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(ProtocolStatus).map(([k, v]) => [v, k]));

/** A short hex + ascii dump of the first bytes of a record's content. */
export function dump(content: Buffer, max = 32): string {
  if (content.length === 0) return '';
  const shown = content.subarray(0, max);
  const hex = [...shown].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const ascii = [...shown].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  return ` | ${hex}${content.length > max ? ' …' : ''} | ${ascii}`;
}

/** Walks the record headers of `bytes` (complete records only) and traces each one. */
function traceRecords(direction: string, bytes: Buffer): void {
  let offset = 0;
  while (offset + 8 <= bytes.length) {
    const type = bytes[offset + 1]!;
    const id = bytes.readUInt16BE(offset + 2);
    const length = bytes.readUInt16BE(offset + 4);
    const padding = bytes[offset + 6]!;
    traceLine(direction, type, id, length, padding, bytes.subarray(offset + 8, offset + 8 + length));
    offset += 8 + length + padding;
  }
}

function traceLine(direction: string, type: number, id: number, length: number, padding: number, content: Buffer): void {
  const name = TYPE_NAMES[type] ?? `type ${type}`;
  process.stderr.write(`${direction} ${name.padEnd(17)} id=${id} len=${length} pad=${padding}${dump(content)}\n`);
}

interface Outcome {
  stdout: Buffer;
  stderr: Buffer;
  appStatus: number;
  protocolStatus: number;
}

class Diagnosis extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function connectDiagnosis(error: NodeJS.ErrnoException, where: string): Diagnosis {
  switch (error.code) {
    case 'ECONNREFUSED':
      return new Diagnosis(`nothing is listening on ${where} (connection refused): is the application running, and on this address?`, RequestExit.CONNECT);
    case 'ENOENT':
      return new Diagnosis(`nothing is listening on ${where}: the socket file does not exist (application not started, or a different path)`, RequestExit.CONNECT);
    case 'EACCES':
    case 'EPERM':
      return new Diagnosis(`permission denied on ${where}: this user may not connect to the socket (check its mode and owner, e.g. --socket-mode 0660 and the web server's group)`, RequestExit.CONNECT);
    case 'ENOTSOCK':
      return new Diagnosis(`${where} is not a socket`, RequestExit.CONNECT);
    case 'ECONNRESET':
    case 'EPIPE':
      return new Diagnosis(`the connection to ${where} was reset before END_REQUEST: the application crashed or closed the connection`, RequestExit.PROTOCOL);
    default:
      return new Diagnosis(`cannot talk to ${where}: ${error.message}`, RequestExit.CONNECT);
  }
}

/** exchange sends `request` and reads records until END_REQUEST for id 1. */
function exchange(address: { path: string } | { host: string; port: number }, request: Buffer[], trace: boolean, timeoutMs: number): Promise<Outcome> {
  const where = describeAddress(address);
  return new Promise<Outcome>((resolve, reject) => {
    const socket = 'path' in address ? net.connect(address.path) : net.connect(address.port, address.host);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let pending: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (error: Diagnosis | null, outcome?: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (error !== null) reject(error);
      else resolve(outcome!);
    };
    const timer = setTimeout(() => finish(new Diagnosis(`no END_REQUEST from ${where} after ${timeoutMs} ms`, RequestExit.TIMEOUT)), timeoutMs);
    socket.on('connect', () => {
      if (trace) for (const piece of request) traceRecords('>', piece);
      for (const piece of request) socket.write(piece);
    });
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (!done && pending.length >= 8) {
        const version = pending[0]!;
        if (version !== 1) {
          const start = pending.subarray(0, 16).toString('latin1');
          if (start.startsWith('HTTP/')) {
            finish(new Diagnosis(`${where} speaks HTTP, not FastCGI (it answered ${JSON.stringify(start.split('\r\n')[0])}): point this at the FastCGI socket or port, not the web server's HTTP one`, RequestExit.PROTOCOL));
          } else {
            finish(new Diagnosis(`${where} sent a record with version ${version} (expected 1): not a FastCGI peer, or the stream is corrupt; first bytes${dump(pending.subarray(0, 16), 16)}`, RequestExit.PROTOCOL));
          }
          return;
        }
        const type = pending[1]!;
        const id = pending.readUInt16BE(2);
        const length = pending.readUInt16BE(4);
        const padding = pending[6]!;
        if (pending.length < 8 + length + padding) return;
        const content = Buffer.from(pending.subarray(8, 8 + length));
        pending = pending.subarray(8 + length + padding);
        if (trace) traceLine('<', type, id, length, padding, content);
        if (id !== 1 && id !== 0) continue;
        if (type === RecordType.STDOUT) stdout.push(content);
        else if (type === RecordType.STDERR) {
          stderr.push(content);
        } else if (type === RecordType.END_REQUEST) {
          if (length < 8) return finish(new Diagnosis(`END_REQUEST with ${length} content bytes (expected 8)`, RequestExit.PROTOCOL));
          return finish(null, { stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), appStatus: content.readUInt32BE(0), protocolStatus: content[4]! });
        } else if (type === RecordType.UNKNOWN_TYPE) {
          return finish(new Diagnosis(`${where} answered UNKNOWN_TYPE for record type ${content[0]}`, RequestExit.PROTOCOL));
        }
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish(connectDiagnosis(error, where)));
    socket.on('close', () => {
      const partial = pending.length > 0 ? ` (${pending.length} bytes of an incomplete record left)` : '';
      const got = stdout.length > 0 || stderr.length > 0 ? `after ${Buffer.concat(stdout).length} bytes of STDOUT` : 'before sending anything';
      finish(new Diagnosis(`${where} closed the connection ${got}, before END_REQUEST${partial}: the application crashed, timed out, or does not speak FastCGI`, RequestExit.PROTOCOL));
    });
  });
}

export interface CgiHead {
  status: number;
  reason: string;
  headers: Array<[string, string]>;
  body: Buffer;
}

/** parseCgi splits CGI output into status, headers and body, or throws a Diagnosis naming what is wrong. */
export function parseCgi(stdout: Buffer): CgiHead {
  if (stdout.length === 0) throw new Diagnosis('the application sent no output at all (empty STDOUT): no status, no headers', RequestExit.PROTOCOL);
  const text = stdout.toString('latin1');
  const crlf = text.indexOf('\r\n\r\n');
  const lf = text.indexOf('\n\n');
  let end: number;
  let sep: number;
  if (crlf !== -1 && (lf === -1 || crlf < lf)) [end, sep] = [crlf, 4];
  else if (lf !== -1) [end, sep] = [lf, 2];
  else [end, sep] = [-1, 0];
  const firstLine = text.split(/\r?\n/, 1)[0]!;
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(firstLine)) {
    throw new Diagnosis(`the application wrote output before its headers: the response starts with ${JSON.stringify(firstLine.slice(0, 60))}, not 'Name: value' (a web server reports this as "malformed header" or "premature end of script headers")`, RequestExit.PROTOCOL);
  }
  if (end === -1) {
    throw new Diagnosis(`the application's headers never end: no blank line after them in ${stdout.length} bytes of output (a web server reports "premature end of script headers")`, RequestExit.PROTOCOL);
  }
  const headers: Array<[string, string]> = [];
  let status = 200;
  let reason = 'OK';
  let location = false;
  for (const line of text.slice(0, end).split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Diagnosis(`malformed header line in the application's output: ${JSON.stringify(line.slice(0, 60))}`, RequestExit.PROTOCOL);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') {
      const m = /^(\d{3})\s*(.*)$/.exec(value);
      if (m === null) throw new Diagnosis(`malformed Status header: ${JSON.stringify(value)}`, RequestExit.PROTOCOL);
      status = Number(m[1]);
      reason = m[2] ?? '';
      continue;
    }
    if (name.toLowerCase() === 'location') location = true;
    headers.push([name, value]);
  }
  if (location && !headers.some(([n]) => n.toLowerCase() === 'status') && status === 200) [status, reason] = [302, 'Found'];
  return { status, reason, headers, body: stdout.subarray(end + sep) };
}

function buildParams(values: NonNullable<ReturnType<typeof parseRequestArgs>>): Array<[string, string]> {
  const uri = values.uri;
  const q = uri.indexOf('?');
  const path = q === -1 ? uri : uri.slice(0, q);
  const params = new Map<string, string>([
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['SERVER_SOFTWARE', 'fastcgi-engine-request'],
    ['SERVER_NAME', 'localhost'],
    ['SERVER_PORT', '80'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REQUEST_SCHEME', 'http'],
    ['REQUEST_METHOD', values.method],
    ['REQUEST_URI', uri],
    ['SCRIPT_NAME', path],
    ['DOCUMENT_URI', path],
    ['QUERY_STRING', q === -1 ? '' : uri.slice(q + 1)],
    ['HTTP_HOST', 'localhost'],
    ['CONTENT_LENGTH', String(values.body.length)],
  ]);
  if (values.body.length > 0) params.set('CONTENT_TYPE', 'application/octet-stream');
  if (values.scriptFilename !== undefined) params.set('SCRIPT_FILENAME', values.scriptFilename);
  for (const header of values.headers) {
    const colon = header.indexOf(':');
    if (colon <= 0) throw new UsageError(`--header expects 'Name: value', got '${header}'`);
    const name = header.slice(0, colon).trim();
    const value = header.slice(colon + 1).trim();
    const lower = name.toLowerCase();
    if (lower === 'content-type') params.set('CONTENT_TYPE', value);
    else params.set(`HTTP_${name.toUpperCase().replace(/-/g, '_')}`, value);
  }
  for (const pair of values.params) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param expects K=V, got '${pair}'`);
    params.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return [...params];
}

function parseRequestArgs(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      method: { type: 'string' },
      uri: { type: 'string' },
      param: { type: 'string', multiple: true },
      header: { type: 'string', multiple: true },
      body: { type: 'string' },
      'script-filename': { type: 'string' },
      timeout: { type: 'string' },
      trace: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return null;
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing <address>' : `expected one address, got ${positionals.length} arguments`);
  let body: Buffer = Buffer.alloc(0);
  if (values.body !== undefined) {
    if (values.body.startsWith('@')) {
      try {
        body = readFileSync(values.body.slice(1));
      } catch (error) {
        throw new UsageError(`--body ${values.body}: ${(error as Error).message}`);
      }
    } else body = Buffer.from(values.body, 'utf8');
  }
  const uri = values.uri ?? '/';
  if (!uri.startsWith('/')) throw new UsageError(`--uri must start with '/', got '${uri}'`);
  return {
    address: parseAddress(positionals[0]),
    method: (values.method ?? (values.body !== undefined ? 'POST' : 'GET')).toUpperCase(),
    uri,
    params: values.param ?? [],
    headers: values.header ?? [],
    body,
    scriptFilename: values['script-filename'],
    timeout: parseCount('timeout', values.timeout, 1) ?? 30_000,
    trace: values.trace === true,
  };
}

export async function run(argv: string[]): Promise<number> {
  const values = parseRequestArgs(argv);
  if (values === null) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const params = buildParams(values);
  const request = [
    encodeBeginRequest(1, Role.RESPONDER, 0),
    encodeParams(1, params),
    encodeStream(RecordType.STDIN, 1, values.body, { end: true }),
  ];
  let outcome: Outcome;
  try {
    outcome = await exchange(values.address, request, values.trace, values.timeout);
  } catch (error) {
    if (error instanceof Diagnosis) {
      process.stderr.write(`fastcgi-engine request: ${error.message}\n`);
      return error.exitCode;
    }
    throw error;
  }
  if (outcome.stderr.length > 0) process.stderr.write(outcome.stderr);
  if (outcome.protocolStatus !== ProtocolStatus.REQUEST_COMPLETE) {
    const name = PROTOCOL_STATUS_NAMES[outcome.protocolStatus] ?? String(outcome.protocolStatus);
    process.stderr.write(`fastcgi-engine request: the application rejected the request: protocolStatus ${name}\n`);
    return RequestExit.REJECTED;
  }
  let head: CgiHead;
  try {
    head = parseCgi(outcome.stdout);
  } catch (error) {
    if (!(error instanceof Diagnosis)) throw error;
    process.stderr.write(`fastcgi-engine request: ${error.message}\n`);
    if (outcome.stdout.length > 0) process.stdout.write(outcome.stdout);
    return error.exitCode;
  }
  const lines = [`Status: ${head.status}${head.reason === '' ? '' : ` ${head.reason}`}`, ...head.headers.map(([n, v]) => `${n}: ${v}`)];
  process.stdout.write(`${lines.join('\r\n')}\r\n\r\n`);
  process.stdout.write(head.body);
  if (outcome.appStatus !== 0) process.stderr.write(`fastcgi-engine request: appStatus ${outcome.appStatus}\n`);
  return head.status >= 500 ? RequestExit.HTTP_5XX : head.status >= 400 ? RequestExit.HTTP_4XX : RequestExit.OK;
}
