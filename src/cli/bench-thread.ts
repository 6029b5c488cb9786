// One thread of `bench --threads N`: its share of the connections (and of the rate or the request count) on
// its own event loop, its own histograms; the results go back to the main thread encoded, to be merged there.
import { parentPort, workerData } from 'node:worker_threads';
import { measureShare, type BenchSettings } from './bench';

void measureShare(workerData as BenchSettings).then((result) => parentPort!.postMessage(result));
