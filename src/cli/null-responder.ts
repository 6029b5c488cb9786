// `bench --calibrate`: the same load against a null responder (null-responder-worker.ts) on a unix socket, in a
// worker thread of this process (its own event loop, as a server process would have), so a figure can be read
// against how much of it is the generator itself.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

export interface NullResponder {
  readonly path: string;
  close(): Promise<void>;
}

export async function startNullResponder(): Promise<NullResponder> {
  const dir = mkdtempSync(join(tmpdir(), 'fcgi-null-'));
  const path = join(dir, 'null.sock');
  // The worker runs this module's sibling as built (.js) or, from the checkout under tsx, as source (.ts): Node
  // 20 does not apply tsx's loader to a worker, so the worker registers tsx's require hook itself.
  const file = join(__dirname, `null-responder-worker${extname(__filename)}`);
  const worker =
    extname(__filename) === '.ts'
      ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { eval: true, workerData: { path } })
      : new Worker(file, { workerData: { path } });
  const [message] = (await once(worker, 'message')) as [unknown];
  if (message !== 'listening') throw new Error(`null responder: unexpected message ${String(message)}`);
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
