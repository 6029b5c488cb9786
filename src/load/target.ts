// What a load run drives and where its outcomes go: the FastCGI driver is one target; a benchmark may bring
// another (HTTP/1.1 to a gateway, a client library's request()), and every one reports the same way.

/** Where outcomes go. `startedAt` is what submit() was given: µs on clock()'s scale (send-timer.ts). */
export interface LoadSink {
  /** An answered request: its HTTP/CGI status (200 when absent, 302 for a bare Location) and body bytes. */
  completed(startedAt: number, status: number, bodyBytes: number): void;
  /** Anything else: an error code, and the protocolStatus when a FastCGI backend refused the request. */
  failed(startedAt: number, code: string, protocolStatus: number | null): void;
}

/** Something that starts requests and reports each outcome to its sink exactly once. */
export interface LoadTarget {
  /** Starts a request now, or queues it until there is room; its time runs from `startedAt`. */
  submit(startedAt: number): void;
  /** Stops: queued requests are dropped (not reported), connections closed. */
  close(): void;
  /** Connections opened so far (equal to the connection count while kept connections hold up). */
  readonly connectionsOpened: number;
  /** The body of the first answered request, when the target was asked to keep it (to check the handler). */
  readonly firstReply: Buffer | null;
}
