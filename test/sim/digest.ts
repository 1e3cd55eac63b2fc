/**
 * A 53-bit hash chain for the simulator's checkers: two independent 32-bit FNV-1a-style lanes,
 * so a collision between different histories in one run is negligible (~2^-53 per pair).
 */
export type Digest = number;

function mixWord(lane: number, word: number, prime: number): number {
  let h = lane;
  for (let shift = 0; shift < 32; shift += 8) {
    h ^= (word >>> shift) & 0xff;
    h = Math.imul(h, prime);
  }
  return h >>> 0;
}

export function chainDigest(previous: Digest, term: number, data: Uint8Array): Digest {
  let a = (previous % 0x100000000) >>> 0;
  let b = Math.floor(previous / 0x100000000) ^ 0x5bd1e995;
  a = mixWord(a ^ 0x811c9dc5, term, 0x01000193);
  b = mixWord(b, term, 0x5bd1e995);
  for (const byte of data) {
    a = Math.imul(a ^ byte, 0x01000193) >>> 0;
    b = Math.imul(b ^ byte, 0x5bd1e995) >>> 0;
  }
  a = mixWord(a, data.byteLength, 0x01000193);
  return (b & 0x1fffff) * 0x100000000 + a;
}
