import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend } from '../../store/mvcc/backend.js';
import { MvccStore } from '../../store/mvcc/kv-store.js';
import { WatchHub, type WatchBatch } from '../../store/mvcc/watch-hub.js';
import type { MvccEvent } from '../../store/mvcc/types.js';
import { waitFor } from '../support/ports.js';

const dirs: string[] = [];
const unexpectedCompaction = (rev: number): void => { throw new Error(`unexpected compaction at ${rev}`); };
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'etcron-watch-'));
  dirs.push(dir);
  const backend = new Backend(join(dir, 'db'));
  const kv = new MvccStore(backend);
  const hub = new WatchHub(kv);
  const write = (ops: ['put' | 'del', string][]): void => {
    const events: MvccEvent[] = backend.transaction(() => {
      const txn = kv.beginWrite();
      for (const [op, key] of ops) {
        if (op === 'put') txn.put({ key: Buffer.from(key), value: Buffer.from(`v${kv.currentRev}`), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
        else txn.deleteRange({ key: Buffer.from(key), rangeEnd: Buffer.alloc(0), prevKv: false });
      }
      return txn.end();
    });
    hub.notify([events]);
  };
  /** Several revisions applied together and announced in one notify, as a group commit does. */
  const writeGroup = (revisions: ['put' | 'del', string][][]): void => {
    const groups: MvccEvent[][] = backend.transaction(() => revisions.map((ops) => {
      const txn = kv.beginWrite();
      for (const [op, key] of ops) {
        if (op === 'put') txn.put({ key: Buffer.from(key), value: Buffer.from('g'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
        else txn.deleteRange({ key: Buffer.from(key), rangeEnd: Buffer.alloc(0), prevKv: false });
      }
      return txn.end();
    }));
    hub.notify(groups);
  };
  return { kv, hub, write, writeGroup, close: () => backend.close() };
}

describe('WatchHub', () => {
  it('replays history from a past revision, then goes live with no gap and no duplicate', async () => {
    const { hub, write, kv, close } = setup();
    for (let i = 0; i < 30; i++) write([['put', `k${i % 3}`]]);
    const batches: WatchBatch[] = [];
    hub.add({ compacted: unexpectedCompaction, key: Buffer.from('k'), rangeEnd: Buffer.from('l'), startRev: 5, noPut: false, noDelete: false, prevKv: true, deliver: (batch) => batches.push(batch) });
    // Writes that race with the catch-up must appear exactly once.
    for (let i = 0; i < 10; i++) write([['put', 'k1'], ['del', 'k2']]);
    await waitFor('catch-up to reach the current revision', () => {
      const last = batches.flatMap((x) => x.events).at(-1);
      return last?.kv.modRevision === kv.currentRev ? true : undefined;
    });
    write([['put', 'k0']]);
    const revs = batches.flatMap((x) => x.events).map((e) => `${e.kv.modRevision}:${e.kv.key.toString()}`);
    const expected: string[] = [];
    for (let rev = 5; rev <= 31; rev++) expected.push(`${rev}:k${(rev - 2) % 3}`);
    expected.push('32:k1', '32:k2'); // k2 is deleted once; later deletes of it match nothing
    for (let rev = 33; rev <= 41; rev++) expected.push(`${rev}:k1`);
    expected.push('42:k0');
    expect(revs).toEqual(expected);
    const events = batches.flatMap((x) => x.events);
    const update = events.find((e) => e.kv.modRevision === 8);
    expect(update?.prevKv?.modRevision).toBe(5);
    close();
  });

  it('applies NOPUT / NODELETE filters and range bounds', () => {
    const { hub, write, close } = setup();
    const seen: string[] = [];
    hub.add({ compacted: unexpectedCompaction, key: Buffer.from('a'), rangeEnd: Buffer.from('c'), startRev: 2, noPut: true, noDelete: false, prevKv: false, deliver: (b) => seen.push(...b.events.map((e) => `${e.type}:${e.kv.key.toString()}`)) });
    write([['put', 'a']]);
    write([['put', 'c'], ['put', 'b']]);
    write([['del', 'a'], ['del', 'c']]);
    expect(seen).toEqual(['delete:a']);
    close();
  });

  it('hands each watcher one batch per group commit, in revision order, header at its last event', () => {
    const { hub, write, writeGroup, close } = setup();
    write([['put', 'x']]);
    const all: WatchBatch[] = [];
    const onlyA: WatchBatch[] = [];
    const watch = (key: string, end: string, into: WatchBatch[]) => hub.add({ compacted: unexpectedCompaction,
      key: Buffer.from(key), rangeEnd: Buffer.from(end), startRev: 3, noPut: false, noDelete: false, prevKv: false,
      deliver: (batch) => into.push(batch),
    });
    watch('a', 'z', all);
    watch('a', '', onlyA);
    writeGroup([[['put', 'a']], [['put', 'b'], ['put', 'c']], [['put', 'd']]]);
    expect(all).toHaveLength(1);
    expect(all[0]?.events.map((e) => `${e.kv.modRevision}:${e.kv.key.toString()}`)).toEqual(['3:a', '4:b', '4:c', '5:d']);
    expect(all[0]?.headerRevision).toBe(5);
    expect(onlyA).toHaveLength(1);
    expect(onlyA[0]?.headerRevision).toBe(3);
    // A watcher cancelled by an earlier delivery of the same group gets nothing more.
    const late: WatchBatch[] = [];
    const handle = hub.add({ compacted: unexpectedCompaction,
      key: Buffer.from('m'), rangeEnd: Buffer.from('n'), startRev: 6, noPut: false, noDelete: false, prevKv: false,
      deliver: (batch) => late.push(batch),
    });
    hub.add({ compacted: unexpectedCompaction,
      key: Buffer.from('a'), rangeEnd: Buffer.from('b'), startRev: 6, noPut: false, noDelete: false, prevKv: false,
      deliver: () => handle.cancel(),
    });
    writeGroup([[['put', 'a']], [['put', 'm']]]);
    expect(late).toEqual([]);
    close();
  });

  it('cancels a catching-up watcher that a compaction overtakes, after delivering what it read', async () => {
    const { hub, write, kv, close } = setup();
    for (let i = 0; i < 2_500; i++) write([['put', `c${i % 10}`]]);
    const seen: number[] = [];
    const compactedAt: number[] = [];
    hub.add({
      key: Buffer.from('c'), rangeEnd: Buffer.from('d'), startRev: 2, noPut: false, noDelete: false, prevKv: false,
      deliver: (batch) => {
        seen.push(...batch.events.map((e) => e.kv.modRevision));
        // After the first step (at most 1,000 rows) history up to revision 2,000 goes.
        if (compactedAt.length === 0 && kv.compactRev < 0) kv.compact(2_000);
      },
      compacted: (rev) => compactedAt.push(rev),
    });
    await waitFor('the compaction to reach the watcher', () => (compactedAt.length > 0 ? true : undefined));
    expect(compactedAt).toEqual([2_000]);
    // What it had read was contiguous from its start; nothing after the gap was delivered.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => 2 + i));
    expect(seen.at(-1)).toBeLessThan(2_000);
    write([['put', 'c0']]);
    expect(seen.at(-1)).toBeLessThan(2_000);
    expect(hub.size).toBe(0);
    close();
  });

  it('parks a watcher whose consumer is full, then catches it up from where it stopped', async () => {
    const { hub, write, kv, close } = setup();
    let ready = true;
    const revs: number[] = [];
    const handle = hub.add({
      compacted: unexpectedCompaction, key: Buffer.from('k'), rangeEnd: Buffer.from('l'), startRev: kv.currentRev + 1,
      noPut: false, noDelete: false, prevKv: false, isReady: () => ready,
      deliver: (batch) => { for (const e of batch.events) revs.push(e.kv.modRevision); },
    });
    write([['put', 'k1']]);
    expect(handle.isSynced()).toBe(true);
    ready = false;
    for (let i = 0; i < 20; i++) write([['put', `k${i}`]]);
    // Nothing queued for it while full; it is no longer synced (no progress notifications).
    expect(revs).toHaveLength(1);
    expect(handle.isSynced()).toBe(false);
    expect(hub.slowCount).toBe(1);
    ready = true;
    handle.resume();
    await waitFor('the parked watcher to catch up', () => (handle.isSynced() ? true : undefined));
    write([['put', 'k0']]);
    expect(revs).toEqual(Array.from({ length: 22 }, (_, i) => 2 + i));
    expect(hub.slowCount).toBe(0);
    close();
  });
});
