import { describe, expect, it } from 'vitest';
import { parseAddress } from '../../src/client/address';
import { resolveClientOptions } from '../../src/client/options';
import { InvalidArgumentError } from '../../src/errors';

describe('parseAddress', () => {
  it('reads unix socket spellings', () => {
    expect(parseAddress('/run/php/php8.2-fpm.sock')).toEqual({ path: '/run/php/php8.2-fpm.sock', label: 'unix:/run/php/php8.2-fpm.sock' });
    expect(parseAddress('unix:/run/app.sock')).toMatchObject({ path: '/run/app.sock' });
    expect(parseAddress('unix:///run/app.sock')).toMatchObject({ path: '/run/app.sock' });
    expect(parseAddress('unix:rel.sock')).toMatchObject({ path: 'rel.sock' });
    expect(parseAddress('./here.sock')).toMatchObject({ path: './here.sock' });
    expect(parseAddress({ path: '/x.sock' })).toMatchObject({ path: '/x.sock' });
  });

  it('reads TCP spellings, IPv6 in brackets included', () => {
    expect(parseAddress('127.0.0.1:9000')).toEqual({ host: '127.0.0.1', port: 9000, label: '127.0.0.1:9000' });
    expect(parseAddress('tcp://localhost:9000')).toMatchObject({ host: 'localhost', port: 9000 });
    expect(parseAddress('tcp://127.0.0.1:9000/')).toMatchObject({ host: '127.0.0.1', port: 9000 });
    expect(parseAddress('[::1]:9000')).toEqual({ host: '::1', port: 9000, label: '[::1]:9000' });
    expect(parseAddress({ port: 9001 })).toMatchObject({ host: '127.0.0.1', port: 9001 });
    expect(parseAddress({ host: '::1', port: 9001 })).toMatchObject({ host: '::1', port: 9001, label: '[::1]:9001' });
  });

  it('refuses what it cannot read with InvalidArgumentError', () => {
    for (const bad of ['', 'localhost', 'host:0', 'host:70000', 'unix:', 'tcp://host', { port: 0 }, {} as { path: string }]) {
      expect(() => parseAddress(bad), JSON.stringify(bad)).toThrow(InvalidArgumentError);
    }
  });
});

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
    expect(() => resolveClientOptions({ address: '/x.sock', poolSize: 0 })).toThrow(/poolSize must be an integer of at least 1/);
    expect(() => resolveClientOptions({ address: '/x.sock', queueLimit: -1 })).toThrow(InvalidArgumentError);
    expect(() => resolveClientOptions({ address: '/x.sock', requestTimeout: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => resolveClientOptions({ address: '/x.sock', multiplex: 'yes' as never })).toThrow(InvalidArgumentError);
    expect(() => resolveClientOptions({ address: '/x.sock', abortWith: 'kill' as never })).toThrow(InvalidArgumentError);
  });
});
