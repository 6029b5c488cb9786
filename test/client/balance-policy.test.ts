// The balancing policies on their own: which candidate each picks, for given weights and loads.
import { describe, expect, it } from 'vitest';
import {
  createPicker,
  leastInFlight,
  smoothWeighted,
  twoChoices,
  type Candidate,
} from '../../src/client/balance-policy';

interface Named extends Candidate {
  readonly name: string;
  inFlight: number;
}

function candidates(spec: Record<string, number | [weight: number, inFlight: number]>): Named[] {
  return Object.entries(spec).map(([name, value]) => {
    const [weight, inFlight] = typeof value === 'number' ? [value, 0] : value;
    return { name, weight, inFlight, currentWeight: 0 };
  });
}

function picks(pick: (list: readonly Named[]) => Named, list: readonly Named[], n: number): string {
  let order = '';
  for (let i = 0; i < n; i++) order += pick(list).name;
  return order;
}

function counts(order: string): Record<string, number> {
  const seen: Record<string, number> = {};
  for (const name of order) seen[name] = (seen[name] ?? 0) + 1;
  return seen;
}

/** A fixed sequence of "random" numbers, repeated. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('smoothWeighted (round-robin)', () => {
  it('spreads the heavy upstream out as nginx does: weights 5, 1, 1 give a a b a c a a', () => {
    expect(picks(smoothWeighted, candidates({ a: 5, b: 1, c: 1 }), 14)).toBe('aabacaa'.repeat(2));
  });

  it('gives each upstream exactly its share over every cycle of the weights', () => {
    const order = picks(smoothWeighted, candidates({ a: 1, b: 2, c: 3 }), 600);
    expect(counts(order)).toEqual({ a: 100, b: 200, c: 300 });
    for (let i = 0; i < 600; i += 6) expect(counts(order.slice(i, i + 6))).toEqual({ a: 1, b: 2, c: 3 });
  });
});

describe('leastInFlight', () => {
  it('picks the fewest requests in flight for the weight', () => {
    // b: 3 in flight for weight 2 (1.5 each) beats a: 2 for weight 1.
    expect(leastInFlight(candidates({ a: [1, 2], b: [2, 3], c: [1, 2] })).name).toBe('b');
    expect(leastInFlight(candidates({ a: [1, 2], b: [1, 1], c: [1, 3] })).name).toBe('b');
  });

  it('breaks ties by weighted round robin among the tied only', () => {
    const list = candidates({ a: 2, b: 1, c: [1, 1] });
    expect(counts(picks(leastInFlight, list, 300))).toEqual({ a: 200, b: 100 });
  });
});

describe('twoChoices (p2c)', () => {
  it('takes the less loaded of the two it draws, and never draws the same one twice', () => {
    const list = candidates({ a: [1, 5], b: [1, 0], c: [1, 9] });
    // Draws a (0.1 of 3), then among b and c: 0.9 of 2 → c; a beats c.
    expect(twoChoices(list, sequence(0.1, 0.9)).name).toBe('a');
    // Draws a, then b: b beats a.
    expect(twoChoices(list, sequence(0.1, 0.1)).name).toBe('b');
    // Never both draws on c, so c (the most loaded) is never picked.
    const pick = createPicker('p2c');
    expect(counts(picks(pick, list, 1000)).c).toBeUndefined();
  });

  it('draws in proportion to weight and prefers the heavier on a tie', () => {
    const list = candidates({ a: 1, b: 3 });
    expect(twoChoices(list, sequence(0.1, 0.5)).name).toBe('b');
    // Weight 8 among 1 + 1 + 8: drawn first 80% of the time, so picked far more often than the others.
    const spread = counts(picks(createPicker('p2c'), candidates({ a: 1, b: 1, c: 8 }), 2000));
    expect(spread.c).toBeGreaterThan(1600);
  });

  it('returns the only candidate without drawing', () => {
    expect(twoChoices(candidates({ a: 1 }), () => Number.NaN).name).toBe('a');
  });
});
