import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/**
 * SQLite ignores a WAL from the first frame whose checksum fails, silently: a flipped byte in the
 * middle of the log would drop every later (acknowledged) transaction without a word. Before the
 * database is opened we read the WAL ourselves and refuse to start when a bad frame is followed
 * by frames of the same WAL generation, which a torn final write cannot produce.
 */
export class WalCorruptError extends Error {
  override readonly name = 'WalCorruptError';
}

const HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;
const MAGIC_LITTLE_ENDIAN = 0x377f0682;
const MAGIC_BIG_ENDIAN = 0x377f0683;

interface Checksum {
  s0: number;
  s1: number;
}

function checksum(data: Buffer, start: number, end: number, bigEndian: boolean, seed: Checksum): Checksum {
  let s0 = seed.s0;
  let s1 = seed.s1;
  for (let at = start; at < end; at += 8) {
    const x0 = bigEndian ? data.readUInt32BE(at) : data.readUInt32LE(at);
    const x1 = bigEndian ? data.readUInt32BE(at + 4) : data.readUInt32LE(at + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return { s0, s1 };
}

export function checkWal(walPath: string): void {
  let fd: number;
  try {
    fd = openSync(walPath, 'r');
  } catch {
    return; // no WAL: nothing was left unchecked
  }
  try {
    const size = fstatSync(fd).size;
    if (size < HEADER_BYTES) return;
    const data = Buffer.alloc(size);
    readSync(fd, data, 0, size, 0);
    const magic = data.readUInt32BE(0);
    if (magic !== MAGIC_LITTLE_ENDIAN && magic !== MAGIC_BIG_ENDIAN) {
      throw new WalCorruptError(`${walPath}: not a SQLite WAL (bad magic)`);
    }
    const bigEndian = magic === MAGIC_BIG_ENDIAN;
    const pageSize = data.readUInt32BE(8);
    const salt1 = data.readUInt32BE(16);
    const salt2 = data.readUInt32BE(20);
    const frameBytes = FRAME_HEADER_BYTES + pageSize;
    const frames = Math.floor((size - HEADER_BYTES) / frameBytes);
    const headerSum = checksum(data, 0, 24, bigEndian, { s0: 0, s1: 0 });
    if (headerSum.s0 !== data.readUInt32BE(24) || headerSum.s1 !== data.readUInt32BE(28)) {
      if (frames > 0) throw new WalCorruptError(`${walPath}: the WAL header is damaged and ${frames} frame(s) follow it`);
      return;
    }
    let sum = headerSum;
    let firstBad = -1;
    for (let i = 0; i < frames; i++) {
      const at = HEADER_BYTES + i * frameBytes;
      const sameGeneration = data.readUInt32BE(at + 8) === salt1 && data.readUInt32BE(at + 12) === salt2;
      if (firstBad >= 0) {
        if (sameGeneration) {
          throw new WalCorruptError(`${walPath}: frame ${firstBad} is damaged but later frames of the same log follow; refusing to start rather than lose acknowledged writes`);
        }
        continue;
      }
      if (!sameGeneration) {
        firstBad = i;
        continue;
      }
      let next = checksum(data, at, at + 8, bigEndian, sum);
      next = checksum(data, at + FRAME_HEADER_BYTES, at + frameBytes, bigEndian, next);
      if (next.s0 !== data.readUInt32BE(at + 16) || next.s1 !== data.readUInt32BE(at + 20)) {
        firstBad = i;
        continue;
      }
      sum = next;
    }
  } finally {
    closeSync(fd);
  }
}
