import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend } from '../../store/mvcc/backend.js';
import { RaftStorageError, type ConfState, type Entry } from '../../store/raft/types.js';
import { SqliteLogStorage } from '../../store/wal/sqlite-log-storage.js';
import { seededRandom } from '../../shared/random.js';

/**
 * The log storage mirrors bounds and terms in memory; Raft trusts those answers for commit and
 * conflict decisions. Random appends (with overwritten suffixes) and compactions must leave the
 * mirror equal to what the database holds, and a storage reopened on the file must agree.
 */
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function answer(fn: () => number): number | string {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RaftStorageError) return err.message;
    throw err;
  }
}

/** What a storage says about every index around its log, as comparable data. */
function view(storage: SqliteLogStorage, upTo: number): unknown {
  const terms: (number | string)[] = [];
  for (let i = 0; i <= upTo; i++) terms.push(answer(() => storage.term(i)));
  return { first: storage.firstIndex(), last: storage.lastIndex(), terms };
}

describe('SqliteLogStorage', () => {
  it('keeps its in-memory bounds, terms, byte count and recent entries equal to the database through appends, overwrites and compactions', () => {
    const dir = mkdtempSync(join(tmpdir(), 'etcron-log-'));
    dirs.push(dir);
    const backend = new Backend(join(dir, 'db'));
    const confState = (): ConfState => ({ voters: [1n, 2n, 3n], learners: [] });
    const storage = new SqliteLogStorage(backend, confState);
    const random = seededRandom(20261129);
    let term = 1;
    for (let step = 0; step < 400; step++) {
      const last = storage.lastIndex();
      const first = storage.firstIndex();
      if (random.int(10) === 0 && last > first + 2) {
        const to = first + random.int(last - first);
        backend.transaction(() => storage.compactTo(to));
      } else {
        // Start within the kept log (a leader overwriting an uncommitted suffix) or right after it.
        const from = random.int(4) === 0 && last >= first ? first + random.int(last - first + 1) : last + 1;
        if (random.int(5) === 0) term++;
        const entries: Entry[] = [];
        for (let i = 0; i < 1 + random.int(5); i++) entries.push({ index: from + i, term, type: 'normal', data: new Uint8Array(1 + ((step * 7 + i) % 40)).fill(step & 0xff) });
        backend.transaction(() => storage.append(entries));
      }
      const upTo = storage.lastIndex() + 2;
      const reopened = new SqliteLogStorage(backend, confState);
      expect(view(storage, upTo), `step ${step}`).toEqual(view(reopened, upTo));
      // Entries served from the in-memory tail equal those read back from the file.
      const low = storage.firstIndex() + random.int(storage.lastIndex() - storage.firstIndex() + 1);
      const entryView = (s: SqliteLogStorage): unknown => s.entries(low, storage.lastIndex() + 1, Number.POSITIVE_INFINITY)
        .map((e) => ({ index: e.index, term: e.term, type: e.type, data: [...e.data] }));
      if (storage.lastIndex() >= storage.firstIndex()) expect(entryView(storage), `step ${step}`).toEqual(entryView(reopened));
      const rows = backend.logRange(storage.firstIndex(), storage.lastIndex() + 1);
      // The log's share of the file (left out of the space quota, as etcd's WAL is) follows it too.
      expect(storage.logBytes(), `step ${step}`).toBe(rows.reduce((sum, r) => sum + r.data.byteLength + 24, 0));
      expect(rows.map((r) => r.idx)).toEqual(Array.from({ length: storage.lastIndex() - storage.firstIndex() + 1 }, (_, i) => storage.firstIndex() + i));
    }
    expect(storage.firstIndex()).toBeGreaterThan(1); // compactions happened
    backend.close();
  });
});
