// Byte builders for tests: raw records with any padding, pair blocks with chosen length encodings.
export function record(
  type: number,
  requestId: number,
  content: Uint8Array | string = new Uint8Array(0),
  padding = 0,
  version = 1,
): Buffer {
  const body = typeof content === 'string' ? Buffer.from(content, 'latin1') : Buffer.from(content);
  const out = Buffer.alloc(8 + body.length + padding, 0);
  out[0] = version;
  out[1] = type;
  out.writeUInt16BE(requestId, 2);
  out.writeUInt16BE(body.length, 4);
  out[6] = padding;
  body.copy(out, 8);
  return out;
}

/** A pair length; `long` forces the 4-byte form even below 128 (h2o writes 127 that way). */
export function length(n: number, long = n >= 128): Buffer {
  if (!long) return Buffer.from([n]);
  const b = Buffer.alloc(4);
  b.writeUInt32BE((n | 0x80000000) >>> 0);
  return b;
}

export function pair(
  name: string | Uint8Array,
  value: string | Uint8Array,
  longName?: boolean,
  longValue?: boolean,
): Buffer {
  const n = typeof name === 'string' ? Buffer.from(name, 'latin1') : Buffer.from(name);
  const v = typeof value === 'string' ? Buffer.from(value, 'latin1') : Buffer.from(value);
  return Buffer.concat([length(n.length, longName), length(v.length, longValue), n, v]);
}

export function beginRequest(requestId: number, role = 1, flags = 0): Buffer {
  return record(1, requestId, Buffer.from([role >> 8, role & 0xff, flags, 0, 0, 0, 0, 0]));
}

/** Splits `bytes` at the given cut points (any order, duplicates and out-of-range ignored). */
export function splitAt(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.length))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    chunks.push(Buffer.from(bytes.subarray(last, p)));
    last = p;
  }
  chunks.push(Buffer.from(bytes.subarray(last)));
  return chunks;
}
