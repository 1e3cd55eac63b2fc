// HashKV and Hash hash the rows as SQLite packs them (store/mvcc/packed-rows.ts), not as decoded
// rows re-encoded. These tests hold that path to the definition it replaced: every row decoded,
// its bbolt key and marshalled KeyValue written out (revisionKey, keyValueBytes) and hashed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend, type KvRow } from '../../store/mvcc/backend.js';
import { hashKeyValues, keyValueBytes, revisionKey } from '../../store/mvcc/kv-hash.js';
import { INLINE_BYTES_MAX } from '../../store/mvcc/packed-rows.js';
import { Maintenance, type ReadView } from '../../store/server/maintenance.js';
import { crc32c } from '../../store/wire/crc32c.js';

/** The hash as defined before rows were packed: decoded rows, re-encoded. */
function referenceHash(rows: readonly KvRow[], upTo: number, compactRevision: number): number {
  const newest = new Map<string, KvRow>();
  for (const row of rows) if (row.main <= upTo) newest.set(row.key.toString('latin1'), row);
  const kept = [...newest.values()].filter((row) => !row.tombstone).length;
  let hash = crc32c(Buffer.from('key'));
  for (const row of rows) {
    if (row.main > upTo) break;
    if (row.main <= compactRevision && kept > 0) {
      const newestRow = newest.get(row.key.toString('latin1'));
      if (newestRow !== row || row.tombstone) continue;
    }
    hash = crc32c(keyValueBytes(row), crc32c(revisionKey(row), hash));
  }
  return hash;
}

/** A small deterministic generator (xorshift32), so a failure replays. */
function randomSource(seed: number): (below: number) => number {
  let state = seed >>> 0 || 1;
  return (below) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % below;
  };
}

const LEASES = [0n, 1n, 0x7fn, 0x80n, 0x694d7c2b3f4e8a12n, -1n, -(2n ** 63n), 2n ** 53n + 1n];

/** Rows as a history leaves them: several subs per revision, keys rewritten and deleted. */
function history(seed: number, revisions: number): KvRow[] {
  const random = randomSource(seed);
  // Binary keys: a NUL, bytes that are not UTF-8, and an empty key (proto3 leaves it out).
  const keys = [
    Buffer.from('a'), Buffer.from([0, 1, 2]), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.alloc(0),
    ...Array.from({ length: 40 }, (_, i) => Buffer.from(`key/${i}`)),
    Buffer.alloc(INLINE_BYTES_MAX + 5, 0x6b),
  ];
  const rows: KvRow[] = [];
  // Far above 2^32: the high words of the packed integers count.
  let main = 2 ** 40;
  for (let r = 0; r < revisions; r++) {
    main += 1 + random(3);
    const subs = 1 + random(4);
    for (let sub = 0; sub < subs; sub++) {
      const key = keys[random(keys.length)] as Buffer;
      const kind = random(10);
      const value = kind === 0 ? Buffer.alloc(INLINE_BYTES_MAX + 1 + random(100), 0x76)
        : kind === 1 ? Buffer.alloc(0)
          : Buffer.from(Array.from({ length: random(300) }, () => random(256)));
      rows.push({
        main, sub, key, value: kind === 2 ? null : value,
        createRevision: random(4) === 0 ? 0 : main - random(50),
        version: random(3) === 0 ? 0 : 1 + random(2 ** 20),
        lease: LEASES[random(LEASES.length)] as bigint, tombstone: kind === 3,
      });
    }
  }
  return rows;
}

let directory: string | undefined;
let backend: Backend | undefined;
afterEach(() => {
  backend?.close();
  if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
  backend = undefined;
  directory = undefined;
});

function backendWith(rows: readonly KvRow[]): Backend {
  directory = mkdtempSync(join(tmpdir(), 'etcron-kv-hash-'));
  backend = new Backend(join(directory, 'db'));
  const opened = backend;
  opened.transaction(() => { for (const row of rows) opened.insertKv(row); });
  return opened;
}

function maintenanceOver(opened: Backend, currentRev: number, compactRev: number): Maintenance {
  const view: ReadView = {
    backend: opened, currentRev, compactRev, appliedIndex: 0, leases: [],
    isOpen: () => true, release: () => {},
  };
  const host = {
    openReadView: () => Promise.resolve(view),
    compactionSettled: () => Promise.resolve(),
    backend: opened,
  };
  return new Maintenance(host, pino({ level: 'silent' }));
}

describe('HashKV over packed rows', () => {
  it('equals the re-encoded rows\' hash at every revision and compaction point', async () => {
    const rows = history(7, 1_500);
    const opened = backendWith(rows);
    const stored = [...opened.scanAll()];
    expect(stored.length).toBe(rows.length);
    const mains = [...new Set(rows.map((row) => row.main))];
    const at = (fraction: number): number =>
      mains[Math.floor((mains.length - 1) * fraction)] as number;
    const current = at(1);
    // Rows below the compaction point are all still there: the filter decides which count.
    for (const compactRev of [-1, at(0), at(0.3), at(0.6), current]) {
      for (const upTo of [current, at(0.8), at(0.61)]) {
        if (upTo < compactRev) continue;
        const expected = referenceHash(stored, upTo, compactRev);
        const what = `upTo ${upTo}, compacted at ${compactRev}`;
        expect(hashKeyValues(opened, upTo, compactRev), what).toBe(expected);
        if (upTo === compactRev) continue; // HashKV answers "compacted" there
        const maintenance = maintenanceOver(opened, current, compactRev);
        const stepped = await maintenance.hashKv(upTo === current ? 0 : upTo);
        expect(stepped.hash, `stepped: ${what}`).toBe(expected);
      }
    }
    const hash = await maintenanceOver(opened, current, -1).hash();
    expect(hash, 'Hash').toBe(referenceHash(stored, current, -1));
  });

  it('counts rows below the compaction point when no key is kept, as etcd', () => {
    const row = { sub: 0, key: Buffer.from('a'), lease: 0n };
    const rows: KvRow[] = [
      { ...row, main: 2, value: Buffer.from('1'), createRevision: 2, version: 1, tombstone: false },
      { ...row, main: 3, value: null, createRevision: 0, version: 0, tombstone: true },
    ];
    const opened = backendWith(rows);
    expect(hashKeyValues(opened, 3, 2)).toBe(referenceHash(rows, 3, 2));
    expect(hashKeyValues(opened, 3, 2)).not.toBe(crc32c(Buffer.from('key')));
  });

  it('hashes an empty store to the bucket name alone', async () => {
    const opened = backendWith([]);
    expect(hashKeyValues(opened, 1, -1)).toBe(crc32c(Buffer.from('key')));
    expect(await maintenanceOver(opened, 1, -1).hash()).toBe(crc32c(Buffer.from('key')));
  });
});
