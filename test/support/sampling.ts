/**
 * The fast tier samples its large enumerations (the fault matrix's cases, the property tests' runs)
 * so that it stays under 20 s; the integration tier runs every case (test/integration/full-sets.test.ts).
 * Across the two tiers the coverage is the same; within the fast tier a different sample each run,
 * reproducible from its seed:
 *
 *   DREICHOR_SEED=<n>      the sample (printed by `npm run test:unit`; random when unset)
 *   DREICHOR_MATRIX=full   every case and every run, as the integration tier does
 */
import { randomInt } from 'node:crypto';

const seedFromEnv = Number.parseInt(process.env['DREICHOR_SEED'] ?? '', 10);

/** Whether every case runs (the integration tier), or a sample (the fast tier). */
export const FULL = process.env['DREICHOR_MATRIX'] === 'full';
/** The seed of this run's sample. */
export const SEED = Number.isSafeInteger(seedFromEnv) && seedFromEnv >= 0 ? seedFromEnv : randomInt(2 ** 31 - 1);

/** How to repeat this run, for a failure message or a diagnostic line. */
export const samplingNote = (): string =>
  FULL ? 'every case (DREICHOR_MATRIX=full)' : `a sample: DREICHOR_SEED=${SEED} repeats it, DREICHOR_MATRIX=full runs every case`;

/** A small deterministic generator (mulberry32) from the seed and a salt naming the call site. */
function generator(salt: string): () => number {
  let state = SEED;
  for (const ch of salt) state = Math.imul(state ^ ch.charCodeAt(0), 0x9e3779b1) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * A sample of `items`, stratified: from each stratum (`stratumOf`), `countOf(stratum)` items chosen
 * by the seed, in their original order. Everything when FULL.
 */
export function sampleOf<T>(
  items: readonly T[],
  salt: string,
  stratumOf: (item: T) => string,
  countOf: (stratum: string) => number,
): T[] {
  if (FULL) return [...items];
  const random = generator(salt);
  const strata = new Map<string, number[]>();
  items.forEach((item, i) => {
    const key = stratumOf(item);
    strata.set(key, [...(strata.get(key) ?? []), i]);
  });
  const chosen = new Set<number>();
  for (const [key, indexes] of strata) {
    const pool = [...indexes];
    for (let k = Math.min(countOf(key), pool.length); k > 0; k -= 1) {
      const [picked] = pool.splice(Math.floor(random() * pool.length), 1);
      if (picked !== undefined) chosen.add(picked);
    }
  }
  return items.filter((_, i) => chosen.has(i));
}

/**
 * fast-check's parameters for a property: `fullRuns` runs in the integration tier, a quarter (at
 * least 25) in the fast tier, from the run's seed; fast-check names the seed again when it fails.
 */
export function propertyRuns(fullRuns: number): { readonly numRuns: number; readonly seed: number } {
  return { numRuns: FULL ? fullRuns : Math.max(25, Math.ceil(fullRuns / 4)), seed: SEED };
}
