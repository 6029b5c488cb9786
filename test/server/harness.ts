// Starts a server on 127.0.0.1:0 for one test and closes it (and its peers) when the test ends.
import { onTestFinished } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { Server } from '../../src/server/server';
import { TestPeer } from '../helpers/fcgi-peer';

export interface Listening {
  port: number;
  /** Opens a peer connection, destroyed when the test finishes. */
  connect(): Promise<TestPeer>;
}

/**
 * Listens with `server` on 127.0.0.1 port 0 (rejecting on a listen error). When the test finishes, the peers
 * opened with `connect` are destroyed, every connection is closed and the server is closed.
 */
export async function listenForTest(server: Server): Promise<Listening> {
  const peers: TestPeer[] = [];
  onTestFinished(async () => {
    for (const peer of peers) peer.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    async connect() {
      const peer = await TestPeer.connect({ port });
      peers.push(peer);
      return peer;
    },
  };
}

export interface Started {
  server: Server;
  port: number;
  peer(): Promise<TestPeer>;
}

export async function start(server: Server): Promise<Started> {
  const { port, connect } = await listenForTest(server);
  return { server, port, peer: connect };
}

/** A logger that records messages, for asserting what the server logged. */
export function recordingLogger(): { warn(m: string): void; error(m: string): void; messages: string[] } {
  const messages: string[] = [];
  return { messages, warn: (m) => messages.push(`warn: ${m}`), error: (m) => messages.push(`error: ${m}`) };
}
