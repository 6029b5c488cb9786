import { describe, expect, it } from 'vitest';
import { HOP_BY_HOP_HEADERS, headerNameOf, isHopByHop, paramNameOf } from '../../src/cgi/http-names';

describe('HTTP header names and HTTP_ variables', () => {
  it('turns a header name into its HTTP_ variable', () => {
    expect(paramNameOf('accept-language')).toBe('HTTP_ACCEPT_LANGUAGE');
    expect(paramNameOf('X-Forwarded-For')).toBe('HTTP_X_FORWARDED_FOR');
  });

  it('gives the same variable for a name asked again, and past the cache bound', () => {
    expect(paramNameOf('accept-language')).toBe(paramNameOf('accept-language'));
    for (let i = 0; i < 1100; i++) expect(paramNameOf(`x-made-up-${i}`)).toBe(`HTTP_X_MADE_UP_${i}`);
  });

  it('knows every hop-by-hop header in any case, and no other header', () => {
    for (const name of HOP_BY_HOP_HEADERS) {
      expect(isHopByHop(name), name).toBe(true);
      expect(isHopByHop(name.toUpperCase()), name).toBe(true);
      expect(isHopByHop(headerNameOf(paramNameOf(name))), name).toBe(true);
    }
    for (const name of [
      'Content-Type',
      'Set-Cookie',
      'Content-Length',
      'X-Te',
      'Trailers',
      'Status',
      'Upgraded',
      'Location',
    ])
      expect(isHopByHop(name), name).toBe(false);
  });

  it('turns an HTTP_ variable back into the header name, every _ a -', () => {
    expect(headerNameOf('HTTP_ACCEPT_LANGUAGE')).toBe('Accept-Language');
    expect(headerNameOf('HTTP_X_PART_2')).toBe('X-Part-2');
    expect(headerNameOf('HTTP_DNT')).toBe('Dnt');
    expect(headerNameOf(paramNameOf('x-request-id'))).toBe('X-Request-Id');
  });
});
