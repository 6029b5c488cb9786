// A load target that calls a client library's request function: each submit starts one call, whose settling
// is the outcome. For the benchmark rows that measure clients (fastcgi-client, createClient) with the same
// loop, latency and error counting as every other row (src/load/run.ts).
import { ErrorCode } from '../../src/errors';
import type { LoadSink, LoadTarget } from '../../src/load/target';

/** One request; resolves once the whole reply arrived and was what was expected, else rejects. */
export type RequestFn = () => Promise<void>;

export class CallTarget implements LoadTarget {
  readonly connectionsOpened = 0;
  firstReply: Buffer | null = null;
  // Calls not settled yet, by start time; a call past the timeout is reported as such and its settling ignored.
  readonly #pending = new Set<{ startedAt: number; sentAt: number }>();
  readonly #watchdog: NodeJS.Timeout;
  #closed = false;

  constructor(
    private readonly request: RequestFn,
    private readonly sink: LoadSink,
    timeoutMs: number,
  ) {
    this.#watchdog = setInterval(
      () => {
        const late = performance.now() - timeoutMs;
        for (const call of this.#pending) {
          if (call.sentAt >= late) continue;
          this.#pending.delete(call);
          this.sink.failed(call.startedAt, ErrorCode.REQUEST_TIMEOUT, null);
        }
      },
      Math.max(10, Math.min(250, timeoutMs / 4)),
    );
  }

  submit(startedAt: number): void {
    if (this.#closed) return;
    const call = { startedAt, sentAt: performance.now() };
    this.#pending.add(call);
    this.request().then(
      () => {
        if (!this.#pending.delete(call)) return;
        // The call checked the reply itself: an empty sample says it was the expected one.
        this.firstReply ??= Buffer.alloc(0);
        this.sink.completed(startedAt, 200, 0);
      },
      (error: unknown) => {
        if (this.#pending.delete(call))
          this.sink.failed(startedAt, (error as { code?: string }).code ?? (error as Error).message, null);
      },
    );
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#watchdog);
    this.#pending.clear();
  }
}
