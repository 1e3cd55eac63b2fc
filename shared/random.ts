import { randomBytes } from 'node:crypto';

/** Randomness is passed in as a value so that seeded runs replay exactly. */
export interface Random {
  /** A uniform integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
  /** A uniform float in [0, 1). */
  float(): number;
}

/** sfc32: small, fast and good enough for simulation; fully determined by the seed. */
export function seededRandom(seed: number): Random {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88 ^ Math.imul(seed, 0x85ebca6b);
  let c = 0xb7e15162;
  let d = 1;
  const next = (): number => {
    a |= 0; b |= 0; c |= 0; d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return {
    float: next,
    int: (maxExclusive) => Math.floor(next() * maxExclusive),
  };
}

/** Production randomness, seeded from the operating system. */
export function systemRandom(): Random {
  return seededRandom(randomBytes(4).readUInt32LE(0));
}
