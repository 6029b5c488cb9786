// Loads the application module `serve` runs, picks its handler (the rule in serve's --help) and makes the
// FastCGI server for it; servers the module starts by itself while it loads are reported.
import { pathToFileURL } from 'node:url';
import type { FetchHandler } from '../server/fetch';
import type { ServerOptions } from '../server/options';
import { createServer, type RequestListener, type Server } from '../server/server';
import { UsageError } from './args';
import { describeWhere, log, type AppKind, type ServeSettings } from './serve-settings';
import { reportStrayServers, watchListens } from './stray-servers';

/** detectApp picks the handler out of a loaded module and says which kind it is (the rule in serve's --help). */
export function detectApp(
  loaded: unknown,
  force?: AppKind,
): { kind: 'fetch'; handler: FetchHandler } | { kind: 'node'; handler: RequestListener } {
  const mod = loaded as Record<string, unknown>;
  let candidate: unknown = mod.default ?? mod;
  // CommonJS compiled from ESM: module.exports.default, seen through import() as default.default.
  if (
    candidate !== null &&
    typeof candidate === 'object' &&
    'default' in candidate &&
    !('fetch' in candidate) &&
    !('callback' in candidate)
  ) {
    candidate = (candidate as { default: unknown }).default;
  }
  if (
    (candidate === null || typeof candidate !== 'object' || !('fetch' in candidate)) &&
    typeof candidate !== 'function'
  ) {
    candidate = mod.fetch ?? mod.handler ?? candidate;
    if (typeof mod.fetch === 'function') return { kind: 'fetch', handler: mod.fetch as FetchHandler };
  }
  if (candidate !== null && typeof candidate === 'object') {
    const obj = candidate as Record<string, unknown>;
    if (typeof obj.fetch === 'function')
      return { kind: 'fetch', handler: { fetch: (obj.fetch as (r: Request) => Response).bind(obj) } };
    if (typeof obj.callback === 'function')
      return { kind: 'node', handler: (obj.callback as () => RequestListener).call(obj) };
  }
  if (typeof candidate === 'function') {
    const fn = candidate as ((...args: unknown[]) => unknown) & { handle?: unknown };
    if (force === 'fetch') return { kind: 'fetch', handler: fn as FetchHandler };
    if (force === 'node' || typeof fn.handle === 'function' || fn.length >= 2)
      return { kind: 'node', handler: fn as RequestListener };
    return { kind: 'fetch', handler: fn as FetchHandler };
  }
  throw new UsageError(
    'the module exports no handler: export a (req, res) function, an Express/Koa app, or a fetch handler (export default { fetch })',
  );
}

/** loadApp imports the module and returns a FastCGI server (not yet listening) for its handler. */
export async function loadApp(settings: ServeSettings, options: ServerOptions): Promise<Server> {
  let loaded: unknown;
  const stopWatching = watchListens();
  try {
    loaded = await import(pathToFileURL(settings.module).href);
  } catch (error) {
    throw new UsageError(`cannot load ${settings.module}: ${(error as Error).message}`);
  } finally {
    reportStrayServers(stopWatching(), settings.module, describeWhere(settings.where), log);
  }
  const app = detectApp(loaded, settings.kind);
  if (app.kind !== 'fetch') return createServer(options, app.handler);
  // Loaded only for a fetch handler: the fetch API brings Node's Request/Response classes into the heap, and the
  // serve process's heap is kept to what it serves (V8 schedules its collections by heap size: README, "End to
  // end").
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { serve } = require('../server/fetch') as typeof import('../server/fetch');
  return serve(app.handler, options);
}
