// Raw connections and hostile byte layouts for bench/dos.ts and bench/fuzz-live.ts. Records are framed with
// the package's writeHeader and encoders; only their cutting (1-byte records, endless streams) is hostile.
import { connect, type Socket } from 'node:net';
import { HEADER_LENGTH } from '../../src/wire/constants';
import { paddingFor, writeHeader } from '../../src/wire/header';

/** `content` as 1-byte records of `type`, each padded to 8 bytes as a well-behaved peer pads; chunks of 1 MiB. */
export function oneByteRecords(type: number, requestId: number, content: Uint8Array): Buffer[] {
  const RECORD = HEADER_LENGTH + 1 + paddingFor(1);
  const PER_CHUNK = 65_536;
  const out: Buffer[] = [];
  for (let start = 0; start < content.length; start += PER_CHUNK) {
    const n = Math.min(PER_CHUNK, content.length - start);
    const chunk = Buffer.alloc(n * RECORD);
    for (let i = 0; i < n; i++) {
      writeHeader(chunk, i * RECORD, type, requestId, 1, RECORD - HEADER_LENGTH - 1);
      chunk[i * RECORD + HEADER_LENGTH] = content[start + i]!;
    }
    out.push(chunk);
  }
  return out;
}

/** A connected socket whose errors are swallowed (the server closing on us is the expected outcome). */
export async function rawConnection(path: string): Promise<Socket> {
  const socket = connect(path);
  socket.on('error', () => undefined);
  socket.setMaxListeners(0);
  // Not events.once: it rejects on 'error', and a refused connection is for the caller to see as closed.
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('close', () => resolve());
  });
  return socket;
}

/** Writes every chunk, waiting for 'drain' when needed; false once the socket is gone or `stop()` holds. */
export async function writeAll(
  socket: Socket,
  chunks: Iterable<Uint8Array>,
  stop: () => boolean = () => false,
): Promise<boolean> {
  for (const chunk of chunks) {
    if (socket.destroyed || stop()) return false;
    if (!socket.write(chunk)) {
      const drained = await new Promise<boolean>((resolve) => {
        const onDrain = (): void => done(true);
        const onClose = (): void => done(false);
        const done = (value: boolean): void => {
          socket.off('drain', onDrain);
          socket.off('close', onClose);
          resolve(value);
        };
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
      if (!drained) return false;
    }
  }
  return !socket.destroyed;
}

/** Resolves true when the socket closes within `ms`, false otherwise. */
export function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('close', onClose);
      resolve(false);
    }, ms);
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once('close', onClose);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
