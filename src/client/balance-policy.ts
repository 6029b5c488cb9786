// Balancing policies: which of the upstreams that can take a request now gets it.

/** The balancing policies createClient's `balance` option names. */
export type BalancePolicy = 'round-robin' | 'least-in-flight' | 'p2c';

/** What a policy reads from an upstream; `currentWeight` is the smooth weighted round robin's running score. */
export interface Candidate {
  readonly weight: number;
  readonly inFlight: number;
  currentWeight: number;
}

/** Picks one of `candidates` (never empty). */
export type Picker = <T extends Candidate>(candidates: readonly T[]) => T;

/** createPicker returns the policy's picker; `random` (0 ≤ x < 1) drives 'p2c'. */
export function createPicker(policy: BalancePolicy, random: () => number = Math.random): Picker {
  switch (policy) {
    case 'round-robin':
      return smoothWeighted;
    case 'least-in-flight':
      return leastInFlight;
    case 'p2c':
      return (candidates) => twoChoices(candidates, random);
  }
}

/**
 * smoothWeighted is nginx's smooth weighted round robin: each candidate's score grows by its weight, the highest
 * wins and gives back the total. Weights 5, 1, 1 give a a b a c a a: the heavy one's turns are spread out rather
 * than bunched, and the shares are exact over every cycle of the weights' sum.
 */
export function smoothWeighted<T extends Candidate>(candidates: readonly T[]): T {
  let best = candidates[0]!;
  let total = 0;
  for (const candidate of candidates) {
    candidate.currentWeight += candidate.weight;
    total += candidate.weight;
    if (candidate.currentWeight > best.currentWeight) best = candidate;
  }
  best.currentWeight -= total;
  return best;
}

/**
 * leastInFlight picks the candidate with the fewest requests in flight for its weight (inFlight / weight,
 * compared without division), as nginx's least_conn does; ties go round robin, weighted.
 */
export function leastInFlight<T extends Candidate>(candidates: readonly T[]): T {
  let least = candidates[0]!;
  let ties = 1;
  for (let i = 1; i < candidates.length; i++) {
    const candidate = candidates[i]!;
    const order = candidate.inFlight * least.weight - least.inFlight * candidate.weight;
    if (order < 0) {
      least = candidate;
      ties = 1;
    } else if (order === 0) ties++;
  }
  if (ties === 1) return least;
  let best: T | null = null;
  let total = 0;
  for (const candidate of candidates) {
    if (candidate.inFlight * least.weight !== least.inFlight * candidate.weight) continue;
    candidate.currentWeight += candidate.weight;
    total += candidate.weight;
    if (best === null || candidate.currentWeight > best.currentWeight) best = candidate;
  }
  best!.currentWeight -= total;
  return best!;
}

/**
 * twoChoices draws two different candidates at random, each in proportion to its weight, and takes the one with
 * fewer requests in flight for its weight (the heavier one on a tie): "the power of two choices" keeps loads
 * close without every pick scanning for the minimum or all picks herding onto the same one.
 */
export function twoChoices<T extends Candidate>(candidates: readonly T[], random: () => number): T {
  if (candidates.length === 1) return candidates[0]!;
  const first = draw(candidates, random, null);
  const second = draw(candidates, random, first);
  const order = first.inFlight * second.weight - second.inFlight * first.weight;
  if (order < 0) return first;
  if (order > 0) return second;
  return second.weight > first.weight ? second : first;
}

function draw<T extends Candidate>(candidates: readonly T[], random: () => number, skip: T | null): T {
  let total = 0;
  for (const candidate of candidates) if (candidate !== skip) total += candidate.weight;
  let point = random() * total;
  let last: T | null = null;
  for (const candidate of candidates) {
    if (candidate === skip) continue;
    last = candidate;
    point -= candidate.weight;
    if (point < 0) return candidate;
  }
  return last!; // random() close to 1 with rounding
}
