// A worker thread running one of this package's modules: the built .js, or, from the checkout under tsx, the
// .ts source. Node 20 does not apply tsx's loader to worker threads, so there the worker registers tsx's
// require hook itself.
import { extname } from 'node:path';
import { Worker } from 'node:worker_threads';

export function startModuleWorker(file: string, workerData: unknown): Worker {
  return extname(file) === '.ts'
    ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { eval: true, workerData })
    : new Worker(file, { workerData });
}
