import { describe, expect, it } from 'vitest';
import { MAX_CACHED_NAME, NameCache } from '../../src/cgi/name-cache';

describe('NameCache', () => {
  it('works a name out once, and again only after it was let go', () => {
    const seen: string[] = [];
    const cache = new NameCache((name) => {
      seen.push(name);
      return name.toUpperCase();
    }, 3);
    expect([cache.get('a'), cache.get('b'), cache.get('a')]).toEqual(['A', 'B', 'A']);
    expect(seen).toEqual(['a', 'b']);
    expect(cache.size).toBe(2);
  });

  it('keeps at most its capacity, starting over when full, so new names are kept again', () => {
    const cache = new NameCache((name) => name.length, 100);
    for (let i = 0; i < 1000; i++) {
      expect(cache.get(`made-up-${i}`)).toBe(`made-up-${i}`.length);
      expect(cache.size).toBeLessThanOrEqual(100);
    }
    expect(cache.get('content-type')).toBe(12);
    expect(cache.size).toBeGreaterThan(0);
  });

  it('never keeps a long name, and counts a kept null as a hit', () => {
    let calls = 0;
    const cache = new NameCache((name) => {
      calls++;
      return name.length;
    });
    const long = 'x'.repeat(MAX_CACHED_NAME + 1);
    expect([cache.get(long), cache.get(long)]).toEqual([long.length, long.length]);
    expect([calls, cache.size]).toEqual([2, 0]);
    // A cached value (null here) is a hit like any other.
    const nulls = new NameCache(() => null);
    expect([nulls.get('bad name'), nulls.get('bad name'), nulls.size]).toEqual([null, null, 1]);
  });
});
