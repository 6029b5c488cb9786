// The least a Node gateway in front of php-fpm can do per request, as a baseline for createGateway in
// bench/client.bench.ts: the engine's own codec (encodeRequest, Decoder, CgiHeaderParser) with nothing around
// it (no client, pool policy, timeouts, retries, streaming, logging, Express support). A FIFO of kept upstream
// connections, closed after 1 s idle as the gateway's and nginx's are, so each run starts with php-fpm's
// workers free.
//
// Two front ends:
//   http  node:http: what any `(req, res)` gateway pays at the least, createGateway's floor.
//   net   a bare TCP server that reads `GET path HTTP/1.1` heads and writes each answer in one write: the
//         floor of a Node gateway with no HTTP library at all. A measuring device only: GET without a body,
//         no chunked input, no header validation. Not something to serve from.
//
// The params are those a PHP script needs (nginx's fastcgi_params, the same names createGateway sends).
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { CgiHeaderParser } from '../../src/cgi/response';
import type { FastCGIError } from '../../src/errors';
import { RecordType } from '../../src/wire/constants';
import { Decoder, type DecoderHandler } from '../../src/wire/decoder';
import type { Params } from '../../src/wire/params';
import { encodeRequest } from '../../src/wire/request-records';

export type FloorFrontEnd = 'http' | 'net';

/** One request in the gateway: its encoded records and where its answer goes. */
interface Job {
  readonly records: Buffer;
  // The body as the STDOUT records brought it: views into socket reads, written without a copy (a 64 KiB copy
  // per response is external memory that makes V8 mark the whole heap every few hundred responses).
  readonly answer: (status: number, statusText: string, rawHeaders: string[], body: readonly Buffer[]) => void;
}

const IDLE_CLOSE_MS = 1000;

class Upstream implements DecoderHandler {
  readonly socket: Socket;
  readonly #decoder = new Decoder(this, { collectParams: false });
  readonly #pool: UpstreamPool;
  #job: Job | null = null;
  #parser = new CgiHeaderParser();
  #body: Buffer[] = [];
  #idleTimer: NodeJS.Timeout | null = null;

  constructor(pool: UpstreamPool, path: string) {
    this.#pool = pool;
    this.socket = connect({ path });
    this.socket.on('data', (chunk: Buffer) => this.#decoder.push(chunk));
    this.socket.on('error', (error) => fatal(`upstream: ${error.message}`));
    this.socket.on('close', () => fatal('upstream: php-fpm closed a kept connection'));
  }

  send(job: Job): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    this.#job = job;
    this.socket.write(job.records);
  }

  idle(): void {
    this.#idleTimer = setTimeout(() => this.#pool.retire(this), IDLE_CLOSE_MS);
  }

  onRecord(type: number, _requestId: number, content: Buffer): void {
    if (type === RecordType.STDOUT && content.length > 0) {
      if (this.#parser.head === null) {
        const start = this.#parser.push(content);
        if (start !== -1 && start < content.length) this.#body.push(content.subarray(start));
      } else this.#body.push(content);
      return;
    }
    if (type !== RecordType.END_REQUEST) return;
    const head = this.#parser.head;
    if (head === null) return fatal('upstream: a response without a header block');
    const job = this.#job!;
    const body = this.#body;
    this.#job = null;
    this.#parser = new CgiHeaderParser();
    this.#body = [];
    this.#pool.release(this);
    job.answer(head.status, head.statusText, head.rawHeaders, body);
  }

  onParams(_requestId: number, _params: Params): void {}

  onError(error: FastCGIError): void {
    fatal(`upstream: ${error.message}`);
  }
}

class UpstreamPool {
  readonly #idle: Upstream[] = [];
  readonly #queue: Job[] = [];
  #open = 0;

  constructor(
    readonly path: string,
    readonly size: number,
  ) {}

  dispatch(job: Job): void {
    let upstream = this.#idle.pop();
    if (upstream === undefined && this.#open < this.size) {
      this.#open++;
      upstream = new Upstream(this, this.path);
    }
    if (upstream === undefined) this.#queue.push(job);
    else upstream.send(job);
  }

  release(upstream: Upstream): void {
    const next = this.#queue.shift();
    if (next !== undefined) return upstream.send(next);
    this.#idle.push(upstream);
    upstream.idle();
  }

  /** Closes an idle connection (it is out of the pool before its socket closes). */
  retire(upstream: Upstream): void {
    this.#open--;
    this.#idle.splice(this.#idle.indexOf(upstream), 1);
    upstream.socket.removeAllListeners('close');
    upstream.socket.end();
  }
}

function fatal(message: string): never {
  process.stderr.write(`floor gateway: ${message}\n`);
  process.exit(1);
}

/** The request's records: what nginx's fastcgi_params would send for a GET of `uri` from `socket`. */
function recordsFor(docroot: string, method: string, uri: string, host: string, socket: Socket): Buffer {
  const at = uri.indexOf('?');
  const path = at === -1 ? uri : uri.slice(0, at);
  const params: [string, string][] = [
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', 'floor'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_METHOD', method],
    ['REQUEST_URI', uri],
    ['QUERY_STRING', at === -1 ? '' : uri.slice(at + 1)],
    ['DOCUMENT_ROOT', docroot],
    ['DOCUMENT_URI', path],
    ['SCRIPT_NAME', path],
    ['SCRIPT_FILENAME', docroot + path],
    ['REMOTE_ADDR', socket.remoteAddress ?? ''],
    ['REMOTE_PORT', String(socket.remotePort ?? '')],
    ['SERVER_ADDR', socket.localAddress ?? ''],
    ['SERVER_PORT', String(socket.localPort ?? '')],
    ['SERVER_NAME', host],
    ['REQUEST_SCHEME', 'http'],
    ['REDIRECT_STATUS', '200'],
    ['HTTP_HOST', host],
  ];
  return encodeRequest({ keepConn: true, params });
}

function httpFrontEnd(pool: UpstreamPool, docroot: string): Server {
  return createHttpServer({ keepAliveTimeout: 60_000 }, (req: IncomingMessage, res: ServerResponse) => {
    const records = recordsFor(docroot, req.method!, req.url!, req.headers.host ?? '', req.socket);
    pool.dispatch({
      records,
      answer: (status, statusText, rawHeaders, body) => {
        res.writeHead(status, statusText, rawHeaders);
        if (body.length === 1) return void res.end(body[0]);
        // One writev for the head and every piece.
        res.cork();
        for (const piece of body) res.write(piece);
        res.end();
        res.uncork();
      },
    });
  });
}

const CRLF2 = '\r\n\r\n';

function netFrontEnd(pool: UpstreamPool, docroot: string): Server {
  return createNetServer((socket) => {
    let pending = '';
    // As node:http does: a response's last segment must not wait for the ACK of the one before (Nagle).
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf(CRLF2); end !== -1; end = pending.indexOf(CRLF2)) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        const lineEnd = head.indexOf('\r\n');
        const [method, uri] = head.slice(0, lineEnd === -1 ? head.length : lineEnd).split(' ');
        const host = /\r\nhost:[ \t]*([^\r]*)/i.exec(head)?.[1] ?? '';
        pool.dispatch({
          records: recordsFor(docroot, method!, uri!, host, socket),
          answer: (status, statusText, rawHeaders, body) => {
            let text = `HTTP/1.1 ${status} ${statusText}\r\n`;
            let length = false;
            for (let i = 0; i < rawHeaders.length; i += 2) {
              if (rawHeaders[i]!.toLowerCase() === 'content-length') length = true;
              text += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
            }
            if (!length) text += `Content-Length: ${body.reduce((sum, piece) => sum + piece.length, 0)}\r\n`;
            socket.cork();
            socket.write(`${text}\r\n`, 'latin1');
            for (const piece of body) socket.write(piece);
            socket.uncork();
          },
        });
      }
    });
  });
}

/** The floor gateway's server (not listening yet), keeping up to `poolSize` connections to `phpSocket`. */
export function floorGatewayServer(
  frontEnd: FloorFrontEnd,
  phpSocket: string,
  docroot: string,
  poolSize: number,
): Server {
  const pool = new UpstreamPool(phpSocket, poolSize);
  const root = docroot.replace(/\/+$/, '');
  return frontEnd === 'http' ? httpFrontEnd(pool, root) : netFrontEnd(pool, root);
}
