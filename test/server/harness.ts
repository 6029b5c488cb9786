// Starts a server on 127.0.0.1:0 for one test and closes it (and its peers) when the test ends.
import { onTestFinished } from 'vitest';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { Server } from '../../src/server/server';
import { TestPeer } from '../helpers/fcgi-peer';

export interface Started {
  server: Server;
  port: number;
  peer(): Promise<TestPeer>;
}

export async function start(server: Server): Promise<Started> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const peers: TestPeer[] = [];
  onTestFinished(async () => {
    for (const p of peers) p.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    server,
    port,
    async peer() {
      const p = await TestPeer.connect({ port });
      peers.push(p);
      return p;
    },
  };
}

/** A logger that records messages, for asserting what the server logged. */
export function recordingLogger(): { warn(m: string): void; error(m: string): void; messages: string[] } {
  const messages: string[] = [];
  return { messages, warn: (m) => messages.push(`warn: ${m}`), error: (m) => messages.push(`error: ${m}`) };
}
