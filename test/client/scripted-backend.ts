// A scripted FastCGI backend for client tests: it decodes what the client sends (with the engine's Decoder) and
// answers with exact bytes chosen by the test, including broken ones. Listens on a unix socket in a temp dir.
import * as fs from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { onTestFinished } from 'vitest';
import { Decoder } from '../../src/wire/decoder';
import type { Params } from '../../src/wire/params';
import { RecordType } from '../../src/wire/constants';
import { encodeEndRequest, encodeStream } from '../../src/wire/records';
import type { FastCGIError } from '../../src/errors';

/** One request as the backend received it. */
export interface ScriptedRequest {
  requestId: number;
  role: number;
  keepConn: boolean;
  params: Record<string, string>;
  /** Params in arrival order, duplicates kept. */
  pairs: [string, string][];
  stdin: Buffer;
  data: Buffer;
}

/** A record the backend received: type and id, for ordering assertions. */
export interface ReceivedRecord {
  type: number;
  requestId: number;
  contentLength: number;
  paddingLength: number;
}

export interface Hooks {
  /** A request's STDIN (and, for a Filter, DATA) ended. */
  request?(request: ScriptedRequest, connection: BackendConnection): void;
  /** BEGIN_REQUEST arrived. */
  begin?(requestId: number, connection: BackendConnection): void;
  abort?(requestId: number, connection: BackendConnection): void;
  getValues?(connection: BackendConnection): void;
  connection?(connection: BackendConnection): void;
}

/** One accepted connection, with helpers that write reply records. */
export class BackendConnection {
  readonly socket: Socket;
  readonly records: ReceivedRecord[] = [];
  readonly #pending = new Map<
    number,
    ScriptedRequest & { stdinDone: boolean; dataDone: boolean; chunks: Buffer[]; dataChunks: Buffer[] }
  >();
  readonly #hooks: Hooks;
  readonly #decoder: Decoder;
  error: FastCGIError | null = null;
  #raw: Buffer = Buffer.alloc(0);

  constructor(socket: Socket, hooks: Hooks) {
    this.socket = socket;
    this.#hooks = hooks;
    this.#decoder = new Decoder(this);
    socket.on('data', (chunk: Buffer) => {
      this.#logRecords(chunk);
      this.#decoder.push(chunk);
    });
    socket.on('error', () => {});
  }

  // Every record header, PARAMS included (the decoder joins PARAMS and does not hand them out one by one).
  #logRecords(chunk: Buffer): void {
    this.#raw = this.#raw.length === 0 ? chunk : Buffer.concat([this.#raw, chunk]);
    let at = 0;
    while (this.#raw.length - at >= 8) {
      const contentLength = this.#raw.readUInt16BE(at + 4);
      const size = 8 + contentLength + this.#raw[at + 6]!;
      if (this.#raw.length - at < size) break;
      this.records.push({
        type: this.#raw[at + 1]!,
        requestId: this.#raw.readUInt16BE(at + 2),
        contentLength,
        paddingLength: this.#raw[at + 6]!,
      });
      at += size;
    }
    this.#raw = Buffer.from(this.#raw.subarray(at));
  }

  onRecord(type: number, requestId: number, content: Buffer): void {
    if (type === RecordType.GET_VALUES) return this.#hooks.getValues?.(this);
    if (type === RecordType.BEGIN_REQUEST) {
      this.#pending.set(requestId, {
        requestId,
        role: (content[0]! << 8) | content[1]!,
        keepConn: (content[2]! & 1) === 1,
        params: {},
        pairs: [],
        stdin: Buffer.alloc(0),
        data: Buffer.alloc(0),
        stdinDone: false,
        dataDone: false,
        chunks: [],
        dataChunks: [],
      });
      return this.#hooks.begin?.(requestId, this);
    }
    if (type === RecordType.ABORT_REQUEST) return this.#hooks.abort?.(requestId, this);
    const request = this.#pending.get(requestId);
    if (request === undefined) return;
    if (type === RecordType.STDIN) {
      if (content.length > 0) request.chunks.push(Buffer.from(content));
      else request.stdinDone = true;
    } else if (type === RecordType.DATA) {
      if (content.length > 0) request.dataChunks.push(Buffer.from(content));
      else request.dataDone = true;
    }
    if (request.stdinDone && (request.role !== 3 || request.dataDone)) {
      this.#pending.delete(requestId);
      request.stdin = Buffer.concat(request.chunks);
      request.data = Buffer.concat(request.dataChunks);
      const { stdinDone: _a, dataDone: _b, chunks: _c, dataChunks: _d, ...plain } = request;
      this.#hooks.request?.(plain, this);
    }
  }

  onParams(requestId: number, params: Params): void {
    const request = this.#pending.get(requestId);
    if (request === undefined) return;
    for (let i = 0; i < params.size; i++) request.pairs.push([params.nameAt(i), params.valueAt(i)]);
    request.params = params.toObject();
  }

  onError(error: FastCGIError): void {
    this.error = error;
    this.socket.destroy();
  }

  /** STDOUT records (split at 65535) for `requestId`; `end` adds the empty terminator. */
  stdout(requestId: number, content: Buffer | string, end = false): void {
    this.socket.write(encodeStream(RecordType.STDOUT, requestId, Buffer.from(content), { end }));
  }

  stderr(requestId: number, content: Buffer | string): void {
    this.socket.write(encodeStream(RecordType.STDERR, requestId, Buffer.from(content)));
  }

  end(requestId: number, appStatus = 0, protocolStatus = 0): void {
    this.socket.write(encodeEndRequest(requestId, appStatus, protocolStatus as 0));
  }

  /** A whole response: header block + body, the empty STDOUT record unless `noTerminator`, END_REQUEST. */
  respond(
    requestId: number,
    response: string | Buffer,
    options: { noTerminator?: boolean; appStatus?: number } = {},
  ): void {
    this.socket.write(
      Buffer.concat([
        encodeStream(RecordType.STDOUT, requestId, Buffer.from(response), { end: options.noTerminator !== true }),
        encodeEndRequest(requestId, options.appStatus ?? 0),
      ]),
    );
  }

  raw(bytes: Buffer | Uint8Array): void {
    this.socket.write(bytes);
  }
}

/** A listening scripted backend; closed (connections destroyed, temp dir removed) when the test ends. */
export class ScriptedBackend {
  readonly server: Server;
  /** The address to give the client: a unix socket path, or 127.0.0.1:port with `tcp`. */
  path: string;
  readonly connections: BackendConnection[] = [];
  readonly #dir: string;

  private constructor(hooks: Hooks) {
    this.#dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcgi-backend-'));
    this.path = path.join(this.#dir, 'b.sock');
    this.server = createServer((socket) => {
      const connection = new BackendConnection(socket, hooks);
      this.connections.push(connection);
      hooks.connection?.(connection);
    });
  }

  /**
   * `tcp`: listen on 127.0.0.1 (a reset reaches the client as ECONNRESET there, not as a FIN), or on `host` and
   * `port` when given (another loopback address, a port shared by several backends).
   */
  static async start(
    hooks: Hooks,
    options: { tcp?: boolean; host?: string; port?: number } = {},
  ): Promise<ScriptedBackend> {
    const backend = new ScriptedBackend(hooks);
    const host = options.host ?? '127.0.0.1';
    if (options.tcp === true) backend.server.listen(options.port ?? 0, host);
    else backend.server.listen(backend.path);
    await once(backend.server, 'listening');
    if (options.tcp === true) backend.path = `${host}:${(backend.server.address() as { port: number }).port}`;
    onTestFinished(() => backend.close());
    return backend;
  }

  async close(): Promise<void> {
    for (const connection of this.connections) connection.socket.destroy();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }
}
