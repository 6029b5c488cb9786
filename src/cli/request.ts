// `fastcgi-engine request <address>`: one FastCGI request over a raw socket, built with the wire encoders, its
// records read by the engine's Decoder, whose observer lets --trace show each one (type, id, lengths, a dump),
// and the classic deployment failures named in plain words. The CGI head is read by the client's parser.
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { parseArgs } from 'node:util';
import { toolParams } from '../cgi/params';
import { CgiHeaderParser, isHeaderLine } from '../cgi/response';
import { ErrorCode, FastCGIError, ProtocolError } from '../errors';
import type { ConnectTarget } from '../wire/address';
import { ProtocolStatus, RecordType } from '../wire/constants';
import { Decoder, type RecordObserver } from '../wire/decoder';
import { protocolStatusName, recordTypeName } from '../wire/names';
import { encodeRequest } from '../wire/request-records';
import { EXIT_USAGE, UsageError, parseAddress, parseCount, parseHeaderOptions } from './args';

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

/** A short hex + ascii dump of the first bytes of a record's content (`length`: the record's whole content). */
export function dump(content: Buffer, max = 32, length = content.length): string {
  if (length === 0) return '';
  const shown = content.subarray(0, max);
  const hex = [...shown].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const ascii = [...shown].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
  return ` | ${hex}${length > shown.length ? ' …' : ''} | ${ascii}`;
}

/** Prints a record as --trace shows it: direction, type, id, lengths and the start of its content. */
function traceRecord(
  direction: string,
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
  content: Buffer,
): void {
  process.stderr.write(
    `${direction} ${recordTypeName(type).padEnd(17)} id=${requestId} len=${contentLength} pad=${paddingLength}${dump(content, 32, contentLength)}\n`,
  );
}

/** --trace for what we send: the request's own bytes read back through a Decoder, so nothing frames them twice. */
function traceSent(request: Buffer): void {
  const ignore = (): void => {};
  const observer: RecordObserver = (...record) => traceRecord('>', ...record);
  new Decoder({ onRecord: ignore, onParams: ignore, onError: ignore }, { collectParams: false, observer }).push(
    request,
  );
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
      return new Diagnosis(
        `nothing is listening on ${where} (connection refused): is the application running, and on this address?`,
        RequestExit.CONNECT,
      );
    case 'ENOENT':
      return new Diagnosis(
        `nothing is listening on ${where}: the socket file does not exist (application not started, or a different path)`,
        RequestExit.CONNECT,
      );
    case 'EACCES':
    case 'EPERM':
      return new Diagnosis(
        `permission denied on ${where}: this user may not connect to the socket (check its mode and owner, e.g. --socket-mode 0660 and the web server's group)`,
        RequestExit.CONNECT,
      );
    case 'ENOTSOCK':
      return new Diagnosis(`${where} is not a socket`, RequestExit.CONNECT);
    case 'ECONNRESET':
    case 'EPIPE':
      return new Diagnosis(
        `the connection to ${where} was reset before END_REQUEST: the application crashed or closed the connection`,
        RequestExit.PROTOCOL,
      );
    default:
      return new Diagnosis(`cannot talk to ${where}: ${error.message}`, RequestExit.CONNECT);
  }
}

/** What a record with a bad version byte says about the peer, from the bytes at the record's start. */
function versionDiagnosis(where: string, start: Buffer): Diagnosis {
  const text = start.toString('latin1');
  if (text.startsWith('HTTP/')) {
    return new Diagnosis(
      `${where} speaks HTTP, not FastCGI (it answered ${JSON.stringify(text.split('\r\n')[0])}): point this at the FastCGI socket or port, not the web server's HTTP one`,
      RequestExit.PROTOCOL,
    );
  }
  return new Diagnosis(
    `${where} sent a record with version ${start[0]} (expected 1): not a FastCGI peer, or the stream is corrupt; first bytes${dump(start, 16)}`,
    RequestExit.PROTOCOL,
  );
}

/** exchange sends `request` and reads records (with the engine's Decoder) until END_REQUEST for id 1. */
function exchange(address: ConnectTarget, request: Buffer, trace: boolean, timeoutMs: number): Promise<Outcome> {
  const where = address.label;
  return new Promise<Outcome>((resolve, reject) => {
    const socket = 'path' in address ? net.connect(address.path) : net.connect(address.port, address.host);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    // Output of whole records, for the message when the peer closes early.
    let wholeOutput = false;
    let wholeStdoutBytes = 0;
    // The chunk being decoded and the stream offset of its first byte, to show the bytes of a bad record.
    let chunk: Buffer = Buffer.alloc(0);
    let base = 0;
    let done = false;
    const finish = (error: Diagnosis | null, outcome?: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      decoder.stop();
      socket.destroy();
      if (error !== null) reject(error);
      else resolve(outcome!);
    };
    const decoder = new Decoder(
      {
        onRecord(type, requestId, content) {
          if (requestId !== 1 && requestId !== 0) return;
          if (type === RecordType.STDOUT) {
            stdout.push(content);
          } else if (type === RecordType.STDERR) {
            stderr.push(content);
          } else if (type === RecordType.END_REQUEST) {
            if (content.length < 8)
              return finish(
                new Diagnosis(`END_REQUEST with ${content.length} content bytes (expected 8)`, RequestExit.PROTOCOL),
              );
            finish(null, {
              stdout: Buffer.concat(stdout),
              stderr: Buffer.concat(stderr),
              appStatus: content.readUInt32BE(0),
              protocolStatus: content[4]!,
            });
          } else if (type === RecordType.UNKNOWN_TYPE) {
            finish(new Diagnosis(`${where} answered UNKNOWN_TYPE for record type ${content[0]}`, RequestExit.PROTOCOL));
          }
        },
        onParams() {},
        onError(error) {
          const at = Math.max(0, (error instanceof ProtocolError ? (error.offset ?? base) : base) - base);
          finish(
            error.code === ErrorCode.BAD_VERSION
              ? versionDiagnosis(where, chunk.subarray(at, at + 16))
              : new Diagnosis(`${where} sent malformed records: ${error.message}`, RequestExit.PROTOCOL),
          );
        },
      },
      {
        collectParams: false,
        observer(type, requestId, contentLength, paddingLength, content) {
          if (trace) traceRecord('<', type, requestId, contentLength, paddingLength, content);
          if ((requestId === 1 || requestId === 0) && (type === RecordType.STDOUT || type === RecordType.STDERR)) {
            wholeOutput = true;
            if (type === RecordType.STDOUT) wholeStdoutBytes += contentLength;
          }
        },
      },
    );
    const timer = setTimeout(
      () => finish(new Diagnosis(`no END_REQUEST from ${where} after ${timeoutMs} ms`, RequestExit.TIMEOUT)),
      timeoutMs,
    );
    socket.on('connect', () => {
      if (trace) traceSent(request);
      socket.write(request);
    });
    socket.on('data', (data: Buffer) => {
      chunk = data;
      decoder.push(data);
      base += data.length;
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish(connectDiagnosis(error, where)));
    socket.on('close', () => {
      const left = decoder.partialRecordBytes;
      const partial = left > 0 ? ` (${left} bytes of an incomplete record left)` : '';
      const got = wholeOutput ? `after ${wholeStdoutBytes} bytes of STDOUT` : 'before sending anything';
      finish(
        new Diagnosis(
          `${where} closed the connection ${got}, before END_REQUEST${partial}: the application crashed, timed out, or does not speak FastCGI`,
          RequestExit.PROTOCOL,
        ),
      );
    });
  });
}

export interface CgiOutput {
  status: number;
  /** The reason phrase as sent ('' for none; OK or Found when the status was implied). */
  reason: string;
  /** Names and values as sent, flattened, Status removed. */
  rawHeaders: string[];
  body: Buffer;
}

/**
 * parseCgi splits CGI output into status, headers and body with the client's header parser (the same rules a
 * web server applies), or throws a Diagnosis naming what is wrong in an operator's words.
 */
export function parseCgi(stdout: Buffer): CgiOutput {
  if (stdout.length === 0)
    throw new Diagnosis(
      'the application sent no output at all (empty STDOUT): no status, no headers',
      RequestExit.PROTOCOL,
    );
  const newline = stdout.indexOf(0x0a);
  const firstLine = stdout.toString('latin1', 0, newline === -1 ? stdout.length : newline).replace(/\r$/, '');
  if (!isHeaderLine(firstLine)) {
    throw new Diagnosis(
      `the application wrote output before its headers: the response starts with ${JSON.stringify(firstLine.slice(0, 60))}, not 'Name: value' (a web server reports this as "malformed header" or "premature end of script headers")`,
      RequestExit.PROTOCOL,
    );
  }
  const parser = new CgiHeaderParser(Number.POSITIVE_INFINITY);
  let bodyStart: number;
  try {
    bodyStart = parser.push(stdout);
    if (bodyStart === -1) parser.end();
  } catch (error) {
    if (!(error instanceof FastCGIError)) throw error;
    if (error.code === ErrorCode.CGI_HEADER_INCOMPLETE) {
      throw new Diagnosis(
        `the application's headers never end: no blank line after them in ${stdout.length} bytes of output (a web server reports "premature end of script headers")`,
        RequestExit.PROTOCOL,
      );
    }
    throw new Diagnosis(`the application's header block is malformed: ${error.message}`, RequestExit.PROTOCOL);
  }
  const head = parser.head!;
  return {
    status: head.status,
    reason: parser.sentReason ?? '',
    rawHeaders: head.rawHeaders,
    body: stdout.subarray(bodyStart),
  };
}

/** The params of the request: the tool's defaults, --script-filename, then --param overrides. */
function buildParams(values: NonNullable<ReturnType<typeof parseRequestArgs>>): Array<[string, string]> {
  const params = toolParams({
    software: 'fastcgi-engine-request',
    method: values.method,
    uri: values.uri,
    contentLength: values.body.length,
    contentType: values.body.length > 0 ? 'application/octet-stream' : undefined,
    headers: parseHeaderOptions(values.headers),
  });
  if (values.scriptFilename !== undefined) params.set('SCRIPT_FILENAME', values.scriptFilename);
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
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length === 0 ? 'missing <address>' : `expected one address, got ${positionals.length} arguments`,
    );
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
  const request = encodeRequest({ params: buildParams(values), stdin: values.body });
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
    process.stderr.write(
      `fastcgi-engine request: the application rejected the request: protocolStatus ${protocolStatusName(outcome.protocolStatus)}\n`,
    );
    return RequestExit.REJECTED;
  }
  let head: CgiOutput;
  try {
    head = parseCgi(outcome.stdout);
  } catch (error) {
    if (!(error instanceof Diagnosis)) throw error;
    process.stderr.write(`fastcgi-engine request: ${error.message}\n`);
    if (outcome.stdout.length > 0) process.stdout.write(outcome.stdout);
    return error.exitCode;
  }
  const lines = [`Status: ${head.status}${head.reason === '' ? '' : ` ${head.reason}`}`];
  for (let i = 0; i < head.rawHeaders.length; i += 2) lines.push(`${head.rawHeaders[i]}: ${head.rawHeaders[i + 1]}`);
  process.stdout.write(`${lines.join('\r\n')}\r\n\r\n`);
  process.stdout.write(head.body);
  if (outcome.appStatus !== 0) process.stderr.write(`fastcgi-engine request: appStatus ${outcome.appStatus}\n`);
  return head.status >= 500 ? RequestExit.HTTP_5XX : head.status >= 400 ? RequestExit.HTTP_4XX : RequestExit.OK;
}
