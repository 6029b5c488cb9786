// Notices the servers an application module starts by itself while `serve` loads it: an Express module that
// calls app.listen(3000) at its top level and exports the app (Flask's app.run() outside its `__main__` guard
// is the same mistake) would otherwise serve HTTP on that port besides FastCGI, silently.
import { Server as NetServer, type AddressInfo } from 'node:net';

/**
 * watchListens notes every net.Server (http, https and the frameworks' servers are net.Servers) whose listen()
 * is called from now until the returned function is called; that function stops watching and returns them.
 */
export function watchListens(): () => NetServer[] {
  const original = NetServer.prototype.listen;
  const seen: NetServer[] = [];
  NetServer.prototype.listen = function listen(this: NetServer, ...args: unknown[]) {
    seen.push(this);
    return (original as (...a: unknown[]) => NetServer).apply(this, args);
  } as typeof original;
  return () => {
    NetServer.prototype.listen = original;
    return seen;
  };
}

function describeAddress(address: AddressInfo | string | null): string {
  if (address === null) return 'an address';
  if (typeof address === 'string') return `unix:${address}`;
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

/**
 * reportStrayServers calls `warn` once for each server, when it is listening (at once if it already is), with
 * what happened and the fix.
 */
export function reportStrayServers(
  servers: NetServer[],
  module: string,
  servedOn: string,
  warn: (message: string) => void,
): void {
  for (const server of servers) {
    const report = (): void =>
      warn(
        `warning: ${module} started a server of its own on ${describeAddress(server.address())} while it loaded ` +
          `(an app.listen() or server.listen() run at the top of the module): it answers there as well as over FastCGI on ${servedOn}. ` +
          'Listen only when the module is run directly: if (require.main === module) app.listen(...); ' +
          'in an ES module: if (process.argv[1] === fileURLToPath(import.meta.url)) app.listen(...).',
      );
    if (server.listening) report();
    else server.once('listening', report);
  }
}
