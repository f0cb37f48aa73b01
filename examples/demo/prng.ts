/** A small deterministic pseudo-random generator, for demo data that is the same on every run. */
export interface Prng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
  /** Uniform in [min, max), rounded to cents. */
  money(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** `length` characters of [0-9a-z]. */
  token(length: number): string;
}

/** FNV-1a over UTF-16 code units: turns a seed text into a 32-bit state. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/**
 * mulberry32 seeded from a text: fast, tiny, and good enough for demo data (not for secrets —
 * nothing here is one).
 */
export function createPrng(seed: string): Prng {
  let state = hash32(seed);
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  return {
    next,
    int,
    money: (min, max) => Math.round((min + next() * (max - min)) * 100) / 100,
    pick<T>(items: readonly T[]): T {
      const item = items[Math.floor(next() * items.length)];
      if (item === undefined) throw new RangeError('pick from an empty list');
      return item;
    },
    chance: (p) => next() < p,
    token(length) {
      let out = '';
      for (let i = 0; i < length; i += 1) out += ALPHABET.charAt(int(0, ALPHABET.length - 1));
      return out;
    },
  };
}
