// `npm start`: the demo application served by the engine on a unix socket in a temp dir, with the gateway in
// front of it on http://127.0.0.1:8080 (PORT and HOST change that). No nginx needed. Ctrl-C stops both.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGateway, createServer } from '../../src/index';
import { handle } from './app';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 8080);
const dir = mkdtempSync(join(tmpdir(), 'fastcgi-engine-demo-'));
const socketPath = join(dir, 'app.sock');

const app = createServer(handle);
const gateway = createGateway({
  upstream: { address: socketPath },
  // The app routes on REQUEST_URI; SCRIPT_FILENAME only matters to PHP-style backends.
  documentRoot: dir,
  timeouts: { request: 5000 },
  logger: {
    warn: (message) => console.log(`[gateway] ${message}`),
    error: (message) => console.log(`[gateway] ${message}`),
  },
});
const http = createHttpServer(gateway);

app.listen(socketPath, () => {
  http.listen(port, host);
});
http.on('listening', () => {
  const address = http.address() as AddressInfo;
  const url = `http://${address.address}:${address.port}/`;
  console.log(`fastcgi-engine demo
  application: FastCGI on unix:${socketPath}
  gateway:     HTTP on ${url}

Open ${url} in a browser, or try:
  curl ${url}hello?name=you
  curl ${url}params/extra/path?x=1
  curl --data-binary @package.json ${url}upload
Ctrl-C stops it.`);
});
http.on('error', (error: NodeJS.ErrnoException) => {
  console.error(
    error.code === 'EADDRINUSE' ? `port ${port} is in use: run PORT=8081 npm start` : `cannot listen: ${error.message}`,
  );
  shutdown(1);
});

let stopping = false;
function shutdown(code = 0): void {
  if (stopping) return;
  stopping = true;
  http.close();
  http.closeAllConnections();
  void gateway.close().finally(() => {
    app.close(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(code);
    });
    app.closeAllConnections();
  });
}
process.on('SIGINT', () => shutdown());
process.on('SIGTERM', () => shutdown());
