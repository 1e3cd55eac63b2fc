import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend } from '../../store/mvcc/backend.js';
import { MvccStore } from '../../store/mvcc/kv-store.js';
import { WatchHub, inRange, type WatchBatch } from '../../store/mvcc/watch-hub.js';
import type { KeyValue, MvccEvent } from '../../store/mvcc/types.js';
import { waitFor } from '../support/ports.js';
import { seededRandom } from '../../shared/random.js';

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
  return { kv, hub, backend, write, writeGroup, close: () => backend.close() };
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

  it('replays a revision with more events than a catch-up step reads whole, and what follows it', async () => {
    const { hub, kv, backend, close } = setup();
    backend.transaction(() => {
      const txn = kv.beginWrite();
      for (let i = 0; i < 2_500; i++) {
        const key = Buffer.from(`k${String(i).padStart(4, '0')}`);
        txn.put({ key, value: Buffer.from('v'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
      }
      return txn.end();
    });
    backend.transaction(() => {
      const txn = kv.beginWrite();
      txn.deleteRange({ key: Buffer.from('k'), rangeEnd: Buffer.from('l'), prevKv: false });
      return txn.end();
    });
    const got: string[] = [];
    const handle = hub.add({
      key: Buffer.from('k'), rangeEnd: Buffer.from('l'), startRev: 2, noPut: false, noDelete: false, prevKv: false,
      compacted: unexpectedCompaction, deliver: (batch) => { for (const e of batch.events) got.push(`${e.type}@${e.kv.modRevision}`); },
    });
    await waitFor('the watcher to catch up', () => (handle.isSynced() ? true : undefined));
    expect(got.filter((e) => e === 'put@2')).toHaveLength(2_500);
    expect(got.filter((e) => e === 'delete@3')).toHaveLength(2_500);
    expect(got).toHaveLength(5_000);
    close();
  });

  it('catches up many watchers of close revisions with one backend read per step, each from its own revision', async () => {
    const { hub, write, kv, close } = setup();
    for (let i = 0; i < 50; i++) write([['put', `k${i % 5}`]]);
    let reads = 0;
    const eventsFrom = kv.eventsFrom.bind(kv);
    kv.eventsFrom = (fromRev, maxRows) => { reads++; return eventsFrom(fromRev, maxRows); };
    const watchers = Array.from({ length: 300 }, (_, i) => {
      const revs: number[] = [];
      const startRev = 40 + (i % 3);
      const handle = hub.add({
        key: Buffer.from('k'), rangeEnd: Buffer.from('l'), startRev, noPut: false, noDelete: false, prevKv: i % 2 === 0,
        compacted: unexpectedCompaction, deliver: (batch) => { for (const e of batch.events) revs.push(e.kv.modRevision); },
      });
      return { startRev, revs, handle };
    });
    await waitFor('the watchers to catch up', () => (watchers.every((w) => w.handle.isSynced()) ? true : undefined));
    expect(reads).toBe(1);
    for (const w of watchers) expect(w.revs).toEqual(Array.from({ length: 52 - w.startRev }, (_, i) => w.startRev + i));
    close();
  });

  it('a watcher that saw nothing for many revisions resumes where the hub is, not where it last got events', async () => {
    const { hub, write, writeGroup, kv, close } = setup();
    let ready = true;
    const revs: number[] = [];
    const compactedAt: number[] = [];
    const handle = hub.add({
      key: Buffer.from('a'), rangeEnd: Buffer.alloc(0), startRev: kv.currentRev + 1, noPut: false, noDelete: false,
      prevKv: false, isReady: () => ready, compacted: (rev) => compactedAt.push(rev),
      deliver: (batch) => { for (const e of batch.events) revs.push(e.kv.modRevision); },
    });
    for (let i = 0; i < 10; i++) writeGroup([[['put', `b${i}`]], [['put', `c${i}`]]]);
    kv.compact(kv.currentRev);
    ready = false;
    write([['put', 'a']]);
    expect(revs).toEqual([]);
    ready = true;
    handle.resume();
    await waitFor('the parked watcher to catch up', () => (handle.isSynced() ? true : undefined));
    expect(compactedAt).toEqual([]);
    expect(revs).toEqual([kv.currentRev]);
    // The same after a snapshot replaced the store: it goes on from the hub's revision.
    for (let i = 0; i < 5; i++) write([['put', `d${i}`]]);
    kv.compact(kv.currentRev);
    hub.replaceStore(kv);
    await waitFor('the watcher to catch up after the new store', () => (handle.isSynced() ? true : undefined));
    write([['put', 'a']]);
    expect(compactedAt).toEqual([]);
    expect(revs).toEqual([kv.currentRev - 6, kv.currentRev]);
    close();
  });

  it('gives every watcher what a check of every event against it gives (random watchers and writes)', async () => {
    for (let seed = 1; seed <= 8; seed++) {
      const { hub, kv, close, writeRevisions } = setupRecorded();
      const { int } = seededRandom(seed);
      const key = (): string => 'abcdef'[int(6)] + (int(2) === 0 ? '' : String(int(3)));
      const watchers: { spec: Spec; got: MvccEvent[]; handle: ReturnType<WatchHub['add']> }[] = [];
      const addWatcher = (): void => {
        const kind = int(4);
        const from = key();
        const other = key();
        const rangeEnd = kind === 0 ? '' : kind === 1 ? '\u0000' : kind === 2 ? `${from}\u00ff` : (other > from ? other : `${from}0`);
        const ahead = int(4) === 0;
        const spec: Spec = {
          key: from, rangeEnd, noPut: int(4) === 0, noDelete: int(4) === 0, prevKv: int(2) === 0,
          startRev: ahead ? kv.currentRev + 1 + int(5) : Math.max(1, kv.currentRev + 1 - int(8)),
        };
        const got: MvccEvent[] = [];
        const handle = hub.add({
          key: Buffer.from(spec.key), rangeEnd: Buffer.from(spec.rangeEnd, 'latin1'), startRev: spec.startRev,
          noPut: spec.noPut, noDelete: spec.noDelete, prevKv: spec.prevKv, compacted: unexpectedCompaction,
          deliver: (batch) => {
            expect(batch.events.length).toBeGreaterThan(0);
            got.push(...batch.events);
          },
        });
        watchers.push({ spec, got, handle });
      };
      for (let step = 0; step < 80; step++) {
        if (int(3) === 0) addWatcher();
        const revisions = Array.from({ length: 1 + int(4) }, () => {
          const keys = [...new Set(Array.from({ length: 1 + int(3) }, key))];
          return keys.map((k): ['put' | 'del', string] => [int(3) === 0 ? 'del' : 'put', k]);
        });
        writeRevisions(revisions);
        if (int(4) === 0) await new Promise((r) => setImmediate(r));
      }
      await waitFor('every watcher to catch up', () => (watchers.every((w) => w.handle.isSynced()) ? true : undefined));
      const history = recordedHistory(kv);
      for (const [i, w] of watchers.entries()) {
        const expected = history.filter((h) => h.event.kv.modRevision >= w.spec.startRev &&
          (h.event.type === 'put' ? !w.spec.noPut : !w.spec.noDelete) &&
          inRange(h.event.kv.key, Buffer.from(w.spec.key), Buffer.from(w.spec.rangeEnd, 'latin1')));
        const show = (e: MvccEvent, prevKv: KeyValue | null): string =>
          `${e.type}:${e.kv.key.toString()}@${e.kv.modRevision}:${e.kv.value.toString()}:prev=${prevKv === null ? '-' : `${prevKv.modRevision}:${prevKv.value.toString()}`}`;
        expect(w.got.map((e) => show(e, e.prevKv)), `seed ${seed} watcher ${i} ${JSON.stringify(w.spec)}`)
          .toEqual(expected.map((h) => show(h.event, w.spec.prevKv ? h.previous : null)));
      }
      close();
    }
  });
});

interface Spec {
  key: string;
  rangeEnd: string;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
  startRev: number;
}

/** Every event written, with the key's live state before it as the model knows it. */
const histories = new WeakMap<MvccStore, { event: MvccEvent; previous: KeyValue | null }[]>();

function recordedHistory(kv: MvccStore): { event: MvccEvent; previous: KeyValue | null }[] {
  return histories.get(kv) ?? [];
}

/** As setup, but every write is also recorded with an independent model of the live keys. */
function setupRecorded() {
  const dir = mkdtempSync(join(tmpdir(), 'etcron-watch-'));
  dirs.push(dir);
  const backend = new Backend(join(dir, 'db'));
  const kv = new MvccStore(backend);
  const hub = new WatchHub(kv);
  const live = new Map<string, KeyValue>();
  const history: { event: MvccEvent; previous: KeyValue | null }[] = [];
  histories.set(kv, history);
  const writeRevisions = (revisions: ['put' | 'del', string][][]): void => {
    const groups: MvccEvent[][] = backend.transaction(() => revisions.map((ops) => {
      const txn = kv.beginWrite();
      for (const [op, key] of ops) {
        if (op === 'put') txn.put({ key: Buffer.from(key), value: Buffer.from(`v${kv.currentRev + 1}`), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
        else txn.deleteRange({ key: Buffer.from(key), rangeEnd: Buffer.alloc(0), prevKv: false });
      }
      return txn.end();
    }));
    for (const events of groups) {
      for (const event of events) {
        const id = event.kv.key.toString('latin1');
        const before = live.get(id) ?? null;
        history.push({ event, previous: before });
        if (event.type === 'put') live.set(id, event.kv);
        else live.delete(id);
      }
    }
    hub.notify(groups);
  };
  return { kv, hub, writeRevisions, close: () => backend.close() };
}
