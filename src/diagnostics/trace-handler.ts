// The handler call under the `fastcgi:server:handler` TracingChannel: start/end around the synchronous call
// (run inside start's bound stores, so an APM's async context reaches the handler), and asyncStart/asyncEnd
// when the promise it returned settles, as TracingChannel.tracePromise does for a function that may not
// return a promise at all.
import type { RequestSocket } from '../server/request-socket';
import { tracingChannels, type ServerHandlerContext } from './channels';
import { build } from './messages';

/** @internal Calls `call` traced; `call` returns the handler's promise, if it returned one (its rejection already handled). */
export function traceHandler(request: RequestSocket, call: () => unknown): void {
  const tracing = tracingChannels.serverHandler;
  const context = build.serverRequest(request) as ServerHandlerContext;
  let result: unknown;
  tracing.start.runStores(context, () => {
    try {
      result = call();
      context.result = result;
    } catch (error) {
      // The listeners catch their own errors; this is a failure of the call itself.
      context.error = error;
      tracing.error.publish(context);
      throw error;
    } finally {
      tracing.end.publish(context);
    }
  });
  if (result === undefined || result === null || typeof (result as Promise<unknown>).then !== 'function') return;
  const settled = (): void => {
    tracing.asyncStart.publish(context);
    tracing.asyncEnd.publish(context);
  };
  (result as Promise<unknown>).then(settled, (error: unknown) => {
    context.error = error;
    tracing.error.publish(context);
    settled();
  });
}
