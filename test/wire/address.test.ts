import { describe, expect, it } from 'vitest';
import { parseAddress, unmapIPv4 } from '../../src/wire/address';
import { InvalidArgumentError } from '../../src/errors';

describe('parseAddress', () => {
  it('reads unix socket spellings', () => {
    expect(parseAddress('/run/php/php8.2-fpm.sock')).toEqual({
      path: '/run/php/php8.2-fpm.sock',
      label: 'unix:/run/php/php8.2-fpm.sock',
    });
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

  it('reads what the command line always took: a bare port and :port on 127.0.0.1, a socket file name', () => {
    expect(parseAddress('9000')).toEqual({ host: '127.0.0.1', port: 9000, label: '127.0.0.1:9000' });
    expect(parseAddress(':9000')).toEqual({ host: '127.0.0.1', port: 9000, label: '127.0.0.1:9000' });
    expect(parseAddress('tcp://9000')).toMatchObject({ host: '127.0.0.1', port: 9000 });
    expect(parseAddress('app.sock')).toEqual({ path: 'app.sock', label: 'unix:app.sock' });
    expect(parseAddress('run/app.sock')).toEqual({ path: 'run/app.sock', label: 'unix:run/app.sock' });
  });

  it('refuses what it cannot read with InvalidArgumentError', () => {
    const bad = [
      '',
      'localhost',
      'host:0',
      'host:70000',
      '0',
      '70000',
      'unix:',
      'tcp://host',
      'tcp://app.sock',
      'run/app',
      'a/b:9000',
      { port: 0 },
      {} as { path: string },
    ];
    for (const address of bad) {
      expect(() => parseAddress(address), JSON.stringify(address)).toThrow(InvalidArgumentError);
    }
  });
});

describe('unmapIPv4', () => {
  it('folds an IPv4-mapped IPv6 address to IPv4, in any case, and leaves the rest alone', () => {
    expect(unmapIPv4('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(unmapIPv4('::FFFF:10.0.0.1')).toBe('10.0.0.1');
    expect(unmapIPv4('::ffff:abcd')).toBe('::ffff:abcd');
    expect(unmapIPv4('FE80::1')).toBe('FE80::1');
    expect(unmapIPv4('')).toBe('');
  });
});
