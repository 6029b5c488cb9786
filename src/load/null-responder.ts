// `bench --calibrate`: the same load against a null responder (null-responder-worker.ts) on a unix socket, in a
// worker thread of this process (its own event loop, as a server process would have), so a figure can be read
// against how much of it is the generator itself.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { once } from 'node:events';
import { ErrorCode, FastCGIError } from '../errors';
import { startModuleWorker } from './module-worker';

export interface NullResponder {
  readonly path: string;
  close(): Promise<void>;
}

export interface NullResponderOptions {
  /**
   * A fixed service time: each answer is sent this many µs after its request's STDIN ended, timed on the
   * responder's own thread (a futex sleep, then a spin for the last 200 µs), one request at a time. 0 answers at
   * once. The open-loop accuracy test measures the generator against this known figure.
   */
  serviceTimeUs?: number;
}

export async function startNullResponder(options: NullResponderOptions = {}): Promise<NullResponder> {
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-null-'));
  const path = join(dir, 'null.sock');
  const worker = startModuleWorker(join(__dirname, `null-responder-worker${extname(__filename)}`), {
    path,
    serviceTimeUs: options.serviceTimeUs ?? 0,
  });
  const [message] = (await once(worker, 'message')) as [unknown];
  if (message !== 'listening')
    throw new FastCGIError(ErrorCode.INVALID_STATE, `null responder: unexpected message ${String(message)}`);
  return {
    path,
    async close() {
      const exited = once(worker, 'exit');
      worker.postMessage('close');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
