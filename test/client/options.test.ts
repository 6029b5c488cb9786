import { describe, expect, it } from 'vitest';
import { resolveClientOptions } from '../../src/client/options';
import { InvalidArgumentError } from '../../src/errors';

describe('resolveClientOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveClientOptions({ address: '/x.sock' })).toMatchObject({
      poolSize: 4,
      queueLimit: 1024,
      connectTimeout: 10_000,
      connectRetryWindow: 1000,
      requestTimeout: 60_000,
      bodyTimeout: 60_000,
      idleTimeout: 4000,
      keepConn: true,
      multiplex: 'auto',
      probeTimeout: 1000,
      maxRequestsPerConnection: 128,
      bufferUnknownLength: 16 * 1024 * 1024,
      maxHeaderBytes: 64 * 1024,
      abortWith: null,
      padRecords: true,
    });
  });

  it('refuses out-of-range values', () => {
    expect(() => resolveClientOptions({ address: '/x.sock', poolSize: 0 })).toThrow(
      /poolSize must be an integer of at least 1/,
    );
    expect(() => resolveClientOptions({ address: '/x.sock', queueLimit: -1 })).toThrow(InvalidArgumentError);
    expect(() => resolveClientOptions({ address: '/x.sock', requestTimeout: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => resolveClientOptions({ address: '/x.sock', multiplex: 'yes' as never })).toThrow(InvalidArgumentError);
    expect(() => resolveClientOptions({ address: '/x.sock', abortWith: 'kill' as never })).toThrow(
      InvalidArgumentError,
    );
  });
});
