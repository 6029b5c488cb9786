import { describe, expect, it } from 'vitest';
import { headerNameOf, paramNameOf } from '../../src/cgi/http-names';

describe('HTTP header names and HTTP_ variables', () => {
  it('turns a header name into its HTTP_ variable', () => {
    expect(paramNameOf('accept-language')).toBe('HTTP_ACCEPT_LANGUAGE');
    expect(paramNameOf('X-Forwarded-For')).toBe('HTTP_X_FORWARDED_FOR');
  });

  it('turns an HTTP_ variable back into the header name, every _ a -', () => {
    expect(headerNameOf('HTTP_ACCEPT_LANGUAGE')).toBe('Accept-Language');
    expect(headerNameOf('HTTP_X_PART_2')).toBe('X-Part-2');
    expect(headerNameOf('HTTP_DNT')).toBe('Dnt');
    expect(headerNameOf(paramNameOf('x-request-id'))).toBe('X-Request-Id');
  });
});
