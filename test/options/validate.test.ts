// createServer and createClient check their options with one validator (src/options/validate.ts): an option
// of one kind is refused the same way on both sides, always with an InvalidArgumentError.
import { describe, expect, it } from 'vitest';
import {
  createClient,
  createServer,
  ErrorCode,
  FastCGIError,
  InvalidArgumentError,
  type ClientOptions,
  type ServerOptions,
} from '../../src/index';
import { MAX_DURATION_MS } from '../../src/options/validate';
import { createServer as createNodeFastcgiServer } from '../../src/node-fastcgi';

function refusal(make: () => unknown): FastCGIError {
  try {
    const made = make() as { close?: () => unknown };
    void made.close?.();
  } catch (error) {
    expect(error).toBeInstanceOf(FastCGIError);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as FastCGIError).code).toBe(ErrorCode.INVALID_ARGUMENT);
    return error as FastCGIError;
  }
  throw new Error('accepted');
}

const server = (options: Record<string, unknown>) => () => createServer(options as ServerOptions);
const client = (options: Record<string, unknown>) => () =>
  createClient({ address: '/tmp/none.sock', ...options } as ClientOptions);

describe('option validation', () => {
  // [kind, server option, client option, bad values]
  const kinds: [string, string, string, unknown[]][] = [
    ['a count', 'maxRequestsPerConnection', 'maxRequestsPerConnection', [1.5, 0, -1, NaN, Infinity, '8', null]],
    ['a connection count', 'maxConnections', 'poolSize', [1.5, 0, -3, '4']],
    ['a duration', 'idleTimeout', 'idleTimeout', [1.5, -1, MAX_DURATION_MS + 1, Infinity, '1000', true]],
    ['a duration', 'bodyTimeout', 'bodyTimeout', [0.5, -1, 2 ** 32]],
    ['a byte size', 'connectionHighWaterMark', 'connectionHighWaterMark', [1.5, -1, '65536', {}]],
    ['a flag', 'padRecords', 'padRecords', ['false', 0, 1, null]],
  ];
  for (const [kind, serverName, clientName, values] of kinds) {
    it(`refuses the same bad values of ${kind} in createServer (${serverName}) and createClient (${clientName})`, () => {
      for (const value of values) {
        const onServer = refusal(server({ [serverName]: value }));
        const onClient = refusal(client({ [clientName]: value }));
        expect(onServer.message, String(value)).toContain(serverName);
        expect(onClient.message, String(value)).toContain(clientName);
        // One rule, one wording: only the option's name differs.
        expect(onServer.message.replace(serverName, '<option>')).toBe(onClient.message.replace(clientName, '<option>'));
      }
    });
  }

  it('accepts the edges of each range on both sides', () => {
    for (const timeout of [0, 1, MAX_DURATION_MS]) {
      expect(createServer({ idleTimeout: timeout, closeTimeout: timeout }).settings.idleTimeout).toBe(timeout);
      const c = createClient({ address: '/tmp/none.sock', idleTimeout: timeout });
      expect(c.settings.idleTimeout).toBe(timeout);
      void c.close();
    }
    expect(
      createServer({ maxConnections: 1, maxRequestsPerConnection: 1, multiplex: false }).settings.maxConnections,
    ).toBe(1);
  });

  it('refuses the server-only options that are out of range', () => {
    expect(refusal(server({ mount: 'app' })).message).toContain('mount');
    expect(refusal(server({ socketMode: 0o10000 })).message).toContain('socketMode');
    expect(refusal(server({ socketMode: '0660' })).message).toContain('socketMode');
    expect(refusal(server({ logger: { warn() {} } })).message).toContain('logger');
    expect(refusal(server({ webServerAddrs: 127 })).message).toContain('webServerAddrs');
    expect(refusal(server({ multiplex: 'yes' })).message).toContain('multiplex');
    expect(refusal(server({ minBodyRate: 0.5 })).message).toContain('minBodyRate');
    expect(refusal(() => createServer('fast' as unknown as ServerOptions)).message).toContain('createServer');
  });

  it('refuses the client-only options that are out of range', () => {
    expect(refusal(client({ multiplex: 'yes' })).message).toBe('multiplex must be \'auto\', true or false, got "yes"');
    expect(refusal(client({ abortWith: 'kill' })).message).toBe(
      "abortWith must be 'abort-request' or 'close', got \"kill\"",
    );
    expect(refusal(client({ probeTimeout: 0 })).message).toContain('probeTimeout');
    expect(refusal(client({ bufferUnknownLength: true })).message).toContain('bufferUnknownLength');
    expect(refusal(() => createClient(null as unknown as ClientOptions)).message).toContain('createClient');
  });

  it('applies the same rules through the node-fastcgi drop-in', () => {
    expect(refusal(() => createNodeFastcgiServer({ maxConns: 1.5 })).message).toContain('maxConnections');
  });
});
