// A whole request as a web server sends it (FastCGI 1.0 §3.3, §5.1): BEGIN_REQUEST, the PARAMS stream, STDIN
// and, for a filter, DATA, each stream ended, in one buffer ready for one write.
import { Flag, RecordType, Role } from './constants';
import { encodeParams, type PairInput } from './pairs';
import { encodeBeginRequest, streamRecordChunks } from './records';

/** What encodeRequest puts in a request. */
export interface RequestRecordsOptions {
  /** Default 1. */
  readonly requestId?: number;
  /** Default RESPONDER. */
  readonly role?: number;
  /** Sets FCGI_KEEP_CONN. Default false. */
  readonly keepConn?: boolean;
  /** The params, in order; encoded with whole pairs in each record. Default none. */
  readonly params?: Iterable<readonly [PairInput, PairInput]>;
  /** STDIN content; each piece of a list becomes its own record(s), so a list sets the record boundaries. */
  readonly stdin?: Uint8Array | readonly Uint8Array[];
  /** Send the empty STDIN record that ends the stream. Default true. */
  readonly endStdin?: boolean;
  /** DATA content (FILTER role), sent with the empty record that ends it; no DATA stream when absent. */
  readonly data?: Uint8Array;
  /** Pad PARAMS, STDIN and DATA records to 8 bytes. Default true. */
  readonly pad?: boolean;
}

const EMPTY = new Uint8Array(0);

/** encodeRequest returns the records of a whole request in one buffer. Throws what the encoders throw. */
export function encodeRequest(options: RequestRecordsOptions = {}): Buffer {
  const requestId = options.requestId ?? 1;
  const pad = options.pad !== false;
  const chunks: Uint8Array[] = [
    encodeBeginRequest(requestId, options.role ?? Role.RESPONDER, options.keepConn === true ? Flag.KEEP_CONN : 0),
    encodeParams(requestId, options.params ?? [], { pad }),
  ];
  const stdin =
    options.stdin === undefined ? [] : options.stdin instanceof Uint8Array ? [options.stdin] : options.stdin;
  for (const piece of stdin) chunks.push(...streamRecordChunks(RecordType.STDIN, requestId, piece, { pad }));
  if (options.endStdin !== false)
    chunks.push(...streamRecordChunks(RecordType.STDIN, requestId, EMPTY, { pad, end: true }));
  if (options.data !== undefined)
    chunks.push(...streamRecordChunks(RecordType.DATA, requestId, options.data, { pad, end: true }));
  return Buffer.concat(chunks);
}
