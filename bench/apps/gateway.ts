// One front end of bench/client.bench.ts, run as its own process (forked with an IPC channel). The process loads
// only what its kind needs: a front end forked from the benchmark's own file carried the whole benchmark (load
// generator, histograms, every engine module), ~10 MB of heap that V8 marks on every mark-compact, and a
// gateway moving 64 KiB responses runs one every ~100 ms (each socket read is new external memory).
//
//   node bench/apps/gateway.js <kind> <sockets> <docroot> <pool>
//     kind     gateway | gateway-balanced | bare | floor-http | floor-net
//              gateway: createGateway on node:http, one `upstream` address, `pool` connections;
//              gateway-balanced: createGateway with `upstreams` (the comma-separated sockets), `pool` each;
//              bare: node:http answering what hello.php answers, no backend (sockets, docroot, pool unused);
//              floor-http / floor-net: ./floor-gateway.ts behind node:http / a bare TCP server.
//
// Sends { port } to the parent once listening on 127.0.0.1; exits when the parent goes away or on SIGTERM.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Server } from 'node:net';

export type GatewayKind = 'gateway' | 'gateway-balanced' | 'bare' | 'floor-http' | 'floor-net';

function gatewayServer(kind: GatewayKind, sockets: string, docroot: string, poolSize: number): Server {
  if (kind === 'floor-http' || kind === 'floor-net') {
    // Required here only: the other kinds' processes never load it.
    const { floorGatewayServer } = require('./floor-gateway') as typeof import('./floor-gateway');
    return floorGatewayServer(kind === 'floor-http' ? 'http' : 'net', sockets, docroot, poolSize);
  }
  if (kind === 'bare')
    return createHttpServer({ keepAliveTimeout: 60_000 }, (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '12' });
      res.end('hello world\n');
    });
  const { createGateway } = require('../../src/gateway/gateway') as typeof import('../../src/gateway/gateway');
  const upstream =
    kind === 'gateway-balanced'
      ? {
          upstreams: sockets.split(',').map((address) => ({ address, maxConcurrent: poolSize })),
          multiplex: false,
          idleTimeout: 1000,
        }
      : { address: sockets, poolSize, multiplex: false, idleTimeout: 1000 };
  const handler = createGateway({
    upstream,
    documentRoot: docroot,
    logger: { warn: () => {}, error: (message) => process.stderr.write(`gateway: ${message}\n`) },
  });
  return createHttpServer({ keepAliveTimeout: 60_000 }, handler);
}

const [kind, sockets = '', docroot = '', pool = '0'] = process.argv.slice(2) as [GatewayKind, ...string[]];
const server = gatewayServer(kind, sockets, docroot, Number(pool));
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
