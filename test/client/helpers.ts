// Shared bits of the client tests: a client closed at the end of the test, error capture, waiting on a condition.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { onTestFinished } from 'vitest';
import { createClient, type Client } from '../../src/client/client';
import type { ClientOptions } from '../../src/client/options';

/** A client destroyed when the test ends. */
export function testClient(options: ClientOptions): Client {
  const client = createClient(options);
  onTestFinished(() => client.destroy());
  return client;
}

/** The rejection of `promise` (fails the test if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

/** Polls `condition` every 5 ms until it holds, failing after `ms`. */
export async function waitFor(condition: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/**
 * A TCP port on 127.0.0.1 that never completes a connect: a child process listens with backlog 1 and blocks
 * before accepting; two connections fill its accept queue, so Linux drops later SYNs and connect() hangs.
 */
export async function unacceptingPort(): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('net').createServer();
       s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         console.log(s.address().port);
         setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0), 50);
       });`,
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  const [data] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(String(data).trim());
  await delay(150);
  const { connect } = await import('node:net');
  for (let i = 0; i < 2; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    onTestFinished(() => {
      socket.destroy();
    });
    await once(socket, 'connect');
  }
  return port;
}
