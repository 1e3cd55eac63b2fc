import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Lessor } from '../../store/lease/lessor.js';
import { Backend } from '../../store/mvcc/backend.js';
import { StoreError } from '../../store/mvcc/errors.js';
import { ARENA_HOLE_BYTES_SLACK, MvccStore } from '../../store/mvcc/kv-store.js';
import type { Compare, KeyValue, RangeRequest, RequestOp, TxnRequest } from '../../store/mvcc/types.js';
import { SLAB_BYTES } from '../../store/mvcc/value-arena.js';
import { Applier } from '../../store/server/apply.js';
import type { InternalRequest } from '../../store/server/requests.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const none = Buffer.alloc(0);

function rangeOf(key: string, end = '', extra: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key: b(key), rangeEnd: b(end), limit: 0, revision: 0, sortOrder: 'none', sortTarget: 'key',
    serializable: false, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0,
    minCreateRevision: 0, maxCreateRevision: 0, ...extra,
  };
}

const put = (key: string, value: string, lease = 0n): InternalRequest =>
  ({ type: 'put', request: { key: b(key), value: b(value), lease, prevKv: true, ignoreValue: false, ignoreLease: false } });
const del = (key: string, end = ''): InternalRequest => ({ type: 'delete-range', request: { key: b(key), rangeEnd: b(end), prevKv: true } });

/** A member's state machine on a real SQLite file, re-openable to test restarts. */
class Harness {
  readonly dir = mkdtempSync(join(tmpdir(), 'etcron-mvcc-'));
  backend!: Backend;
  kv!: MvccStore;
  lessor!: Lessor;
  applier!: Applier;

  constructor() {
    this.open();
  }

  open(): void {
    this.backend = new Backend(join(this.dir, 'db'));
    this.kv = new MvccStore(this.backend);
    this.lessor = new Lessor(this.backend, 2);
    for (const kv of this.kv.liveKeys()) if (kv.lease !== 0n) this.lessor.attach(kv.lease, kv.key.toString('latin1'));
    this.kv.setLeaseAttachments(this.lessor);
    this.applier = new Applier(this.kv, this.lessor, this.backend);
  }

  reopen(): void {
    this.backend.close();
    this.open();
  }

  apply(request: InternalRequest) {
    return this.backend.transaction(() => this.applier.apply(request));
  }

  ok(request: InternalRequest) {
    const outcome = this.apply(request);
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  get(key: string, revision = 0): KeyValue | undefined {
    return this.kv.range(rangeOf(key, '', { revision })).kvs[0];
  }

  close(): void {
    this.backend.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let harness: Harness | undefined;
const open = (): Harness => (harness = new Harness());
afterEach(() => harness?.close());

describe('MVCC revisions (etcd semantics, issue #3)', () => {
  it('starts at revision 1, gives each put a new revision and tracks create revision and version', () => {
    const h = open();
    expect(h.kv.currentRev).toBe(1);
    expect(h.ok(put('a', '1'))).toMatchObject({ revision: 2, prevKv: null });
    expect(h.ok(put('a', '1'))).toMatchObject({ revision: 3 });
    const kv = h.get('a');
    expect(kv).toMatchObject({ createRevision: 2, modRevision: 3, version: 2 });
  });

  it('resets version and create revision after a delete; old revisions stay readable', () => {
    const h = open();
    h.ok(put('a', 'x'));
    h.ok(put('a', 'y'));
    expect(h.ok(del('a'))).toMatchObject({ revision: 4, deleted: 1 });
    h.ok(put('a', 'z'));
    expect(h.get('a')).toMatchObject({ createRevision: 5, modRevision: 5, version: 1 });
    expect(h.get('a', 3)?.value.toString()).toBe('y');
    expect(h.get('a', 4)).toBeUndefined();
    expect(() => h.get('a', 6)).toThrow(StoreError);
  });

  it('does not bump the revision for a delete that matched nothing', () => {
    const h = open();
    h.ok(put('a', '1'));
    expect(h.ok(del('zz'))).toMatchObject({ revision: 2, deleted: 0 });
    expect(h.kv.currentRev).toBe(2);
  });

  it('compaction keeps the state at the compact revision and refuses reads below it', () => {
    const h = open();
    h.ok(put('a', '1')); // 2
    h.ok(put('a', '2')); // 3
    h.ok(put('b', '1')); // 4
    h.ok(del('b')); // 5
    h.ok({ type: 'compact', revision: 4 });
    expect(h.get('a', 4)?.value.toString()).toBe('2');
    expect(h.get('b', 4)?.value.toString()).toBe('1');
    expect(() => h.get('a', 3)).toThrow(/compacted/);
    const again = h.apply({ type: 'compact', revision: 4 });
    expect(again.ok).toBe(false);
    expect(!again.ok && again.error.kind).toBe('compacted');
    const future = h.apply({ type: 'compact', revision: 99 });
    expect(!future.ok && future.error.kind).toBe('future-rev');
  });

  it('keeps keys with bytes 0x00 and 0xff exact and in byte order', () => {
    const h = open();
    const keys = ['a\u00ff', 'a\u0000', 'a', 'b', '\u00ff\u00ff'];
    for (const k of keys) h.ok(put(k, k));
    const got = h.kv.range(rangeOf('\u0000', '\u0000')).kvs.map((kv) => kv.key.toString('latin1'));
    expect(got).toEqual(['a', 'a\u0000', 'a\u00ff', 'b', '\u00ff\u00ff']);
    expect(h.kv.range(rangeOf('a', 'b')).count).toBe(3);
  });

  it('restores index, revision and compaction point after a restart', () => {
    const h = open();
    h.ok(put('a', '1'));
    h.ok(put('a', '2'));
    h.ok(put('b', '1'));
    h.ok(del('b'));
    h.ok({ type: 'compact', revision: 3 });
    h.reopen();
    expect(h.kv.currentRev).toBe(5);
    expect(h.kv.compactRev).toBe(3);
    expect(h.get('a')?.value.toString()).toBe('2');
    expect(h.get('b')).toBeUndefined();
    expect(h.get('b', 4)?.value.toString()).toBe('1');
    expect(h.ok(put('c', '1'))).toMatchObject({ revision: 6 });
  });

  it('answers as compacted at once, and finishes removing rows in steps, across a restart too', () => {
    const h = open();
    for (let i = 0; i < 50; i++) h.ok(put(`k${i % 10}`, String(i)));
    h.ok({ type: 'compact', revision: 40 });
    // Nothing below 40 is readable any more, though no row has been removed yet.
    expect(() => h.get('k0', 39)).toThrow();
    expect(h.get('k8', 40)?.value.toString()).toBe('38');
    expect(h.kv.compactStep(3)).toBe(false);
    h.reopen();
    expect(h.kv.isCompacting).toBe(true);
    expect(() => h.get('k0', 39)).toThrow();
    while (!h.kv.compactStep(3));
    h.reopen();
    expect(h.kv.isCompacting).toBe(false);
    for (let k = 0; k < 10; k++) expect(h.get(`k${k}`)?.value.toString()).toBe(String(40 + k));
    expect(h.get('k8', 40)?.value.toString()).toBe('38');
  });

  it('keeps the current revision after compaction removed every row', () => {
    const h = open();
    h.ok(put('a', '1'));
    h.ok(del('a'));
    h.ok({ type: 'compact', revision: 3 });
    h.reopen();
    expect(h.kv.currentRev).toBe(3);
  });
});

describe('Range options', () => {
  function seed(h: Harness): void {
    h.ok(put('k1', 'c')); // 2
    h.ok(put('k2', 'b')); // 3
    h.ok(put('k3', 'a')); // 4
    h.ok(put('k2', 'bb')); // 5
    h.ok(put('k4', 'd')); // 6
  }

  it('counts all keys in range before limit and filters, and sets more', () => {
    const h = open();
    seed(h);
    const r = h.kv.range(rangeOf('k', 'l', { limit: 2 }));
    expect(r.kvs.map((kv) => kv.key.toString())).toEqual(['k1', 'k2']);
    expect(r).toMatchObject({ count: 4, more: true });
    const filtered = h.kv.range(rangeOf('k', 'l', { minModRevision: 5, limit: 1 }));
    expect(filtered.kvs.map((kv) => kv.key.toString())).toEqual(['k2']);
    expect(filtered).toMatchObject({ count: 4, more: true });
  });

  it('sorts by any target, ties in key order, and descending by key gives the last keys', () => {
    const h = open();
    seed(h);
    const byValue = h.kv.range(rangeOf('k', 'l', { sortTarget: 'value', sortOrder: 'descend' }));
    expect(byValue.kvs.map((kv) => kv.value.toString())).toEqual(['d', 'c', 'bb', 'a']);
    const last = h.kv.range(rangeOf('k', 'l', { sortOrder: 'descend', limit: 2 }));
    expect(last.kvs.map((kv) => kv.key.toString())).toEqual(['k4', 'k3']);
    const versionTies = h.kv.range(rangeOf('k', 'l', { sortTarget: 'version', sortOrder: 'descend' }));
    expect(versionTies.kvs.map((kv) => kv.key.toString())).toEqual(['k2', 'k1', 'k3', 'k4']);
  });

  it('reproduces etcd sorting only the first limit+1 keys when order is NONE', () => {
    const h = open();
    for (let i = 0; i < 3; i++) h.ok(put('x/a', String(i))); // version 3
    for (let i = 0; i < 2; i++) h.ok(put('x/b', String(i))); // version 2
    h.ok(put('x/c', '1')); // version 1
    // Order NONE: only x/a and x/b are read (limit + 1), then sorted: x/b wins.
    const quirk = h.kv.range(rangeOf('x/', 'x0', { sortTarget: 'version', limit: 1 }));
    expect(quirk.kvs.map((kv) => kv.key.toString())).toEqual(['x/b']);
    const ascend = h.kv.range(rangeOf('x/', 'x0', { sortTarget: 'version', sortOrder: 'ascend', limit: 1 }));
    expect(ascend.kvs.map((kv) => kv.key.toString())).toEqual(['x/c']);
    const descend = h.kv.range(rangeOf('x/', 'x0', { sortTarget: 'version', sortOrder: 'descend', limit: 1 }));
    expect(descend.kvs.map((kv) => kv.key.toString())).toEqual(['x/a']);
  });

  it('count_only and keys_only', () => {
    const h = open();
    seed(h);
    expect(h.kv.range(rangeOf('k', 'l', { countOnly: true }))).toEqual({ kvs: [], more: false, count: 4 });
    const keys = h.kv.range(rangeOf('k1', '', { keysOnly: true })).kvs[0];
    expect(keys).toMatchObject({ value: none, version: 1, createRevision: 2 });
  });
});

describe('Txn', () => {
  const cmp = (key: string, target: Compare['target'], result: Compare['result'], operand: Compare['operand']): Compare =>
    ({ key: b(key), rangeEnd: none, target, result, operand });
  const opPut = (key: string, value: string): RequestOp =>
    ({ type: 'put', request: { key: b(key), value: b(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } });
  const opRange = (key: string): RequestOp => ({ type: 'range', request: rangeOf(key) });
  const txn = (request: TxnRequest): InternalRequest => ({ type: 'txn', request });

  it('evaluates nested compares against the state before the txn', () => {
    const h = open();
    const result = h.ok(txn({
      compare: [],
      success: [opPut('k', 'outer'), { type: 'txn', request: { compare: [cmp('k', 'version', 'equal', 0)], success: [opPut('j', 'inner')], failure: [] } }],
      failure: [],
    }));
    expect(result.type === 'txn' && result.result.responses[1]).toMatchObject({ type: 'txn', result: { succeeded: true } });
    expect(h.get('j')?.value.toString()).toBe('inner');
    expect(h.get('k')?.modRevision).toBe(h.get('j')?.modRevision);
  });

  it('reads its own writes and reports revisions as etcd does', () => {
    const h = open();
    h.ok(put('k', 'v0')); // rev 2
    const result = h.ok(txn({ compare: [], success: [opRange('k'), opPut('k', 'v1'), opRange('k')], failure: [] }));
    if (result.type !== 'txn') throw new Error('not a txn');
    const [before, written, after] = result.result.responses;
    expect(before).toMatchObject({ type: 'range', revision: 2 });
    expect(written).toMatchObject({ type: 'put', revision: 3 });
    expect(after).toMatchObject({ type: 'range', revision: 3 });
    expect(after?.type === 'range' && after.result.kvs[0]?.value.toString()).toBe('v1');
    expect(result.result.revision).toBe(3);
  });

  it('treats a value compare on a missing key as false, even NOT_EQUAL', () => {
    const h = open();
    const result = h.ok(txn({ compare: [cmp('missing', 'value', 'not-equal', b('x'))], success: [], failure: [] }));
    expect(result.type === 'txn' && result.result.succeeded).toBe(false);
  });

  it('checks leases only in the branch taken, and refuses the whole txn otherwise', () => {
    const h = open();
    const badLease: RequestOp = { type: 'put', request: { key: b('x'), value: b('1'), lease: 777n, prevKv: false, ignoreValue: false, ignoreLease: false } };
    expect(h.apply(txn({ compare: [], success: [opPut('y', '1')], failure: [badLease] })).ok).toBe(true);
    const refused = h.apply(txn({ compare: [], success: [opPut('z', '1'), badLease], failure: [] }));
    expect(!refused.ok && refused.error.kind).toBe('lease-not-found');
    expect(h.get('z')).toBeUndefined();
  });
});

describe('Leases in apply', () => {
  it('revoke deletes every attached key in one revision, in key order', () => {
    const h = open();
    h.ok({ type: 'lease-grant', id: 5n, ttlSeconds: 1 });
    expect(h.lessor.lookup(5n)?.ttlSeconds).toBe(2); // raised to the minimum TTL
    h.ok(put('b', '1', 5n));
    h.ok(put('a', '1', 5n));
    h.ok(put('c', '1'));
    h.applier.takeEvents();
    h.ok({ type: 'lease-revoke', id: 5n });
    const [events] = h.applier.takeEvents();
    expect(events?.map((e) => [e.type, e.kv.key.toString(), e.kv.modRevision])).toEqual([['delete', 'a', 5], ['delete', 'b', 5]]);
    expect(h.get('c')).toBeDefined();
    const again = h.apply({ type: 'lease-revoke', id: 5n });
    expect(!again.ok && again.error.kind).toBe('lease-not-found');
  });

  it('moves a key between leases on put and keeps attachments across restarts', () => {
    const h = open();
    h.ok({ type: 'lease-grant', id: 1n, ttlSeconds: 10 });
    h.ok({ type: 'lease-grant', id: 2n, ttlSeconds: 10 });
    h.ok(put('k', 'v', 1n));
    h.ok(put('k', 'v', 2n));
    expect([...(h.lessor.lookup(1n)?.keys ?? [])]).toEqual([]);
    h.reopen();
    expect([...(h.lessor.lookup(2n)?.keys ?? [])]).toEqual(['k']);
    h.ok({ type: 'lease-revoke', id: 2n });
    expect(h.get('k')).toBeUndefined();
  });

  it('refuses a put on an unknown lease and changes nothing', () => {
    const h = open();
    const refused = h.apply(put('k', 'v', 42n));
    expect(!refused.ok && refused.error.kind).toBe('lease-not-found');
    expect(h.kv.currentRev).toBe(1);
  });
});

describe('Values in memory (issue #3)', () => {
  const valueOf = (key: string, round: number, sizeBytes: number): string =>
    `${key}@${round}:`.padEnd(sizeBytes, String.fromCharCode(97 + (round % 26)));

  it('moves values out of sparse slabs at compaction; every value reads back intact', () => {
    const h = open();
    const keys = Array.from({ length: 600 }, (_, i) => `k${String(i).padStart(4, '0')}`);
    for (const k of keys) h.ok(put(k, valueOf(k, 0, 1000)));
    const heldView = h.get('k0001')?.value;
    // Every key but one in ten changes: each old slab keeps a tenth of its bytes alive.
    const isOverwritten = (i: number): boolean => i % 10 !== 0;
    keys.forEach((k, i) => isOverwritten(i) && h.ok(put(k, valueOf(k, 1, 1000))));
    expect(h.kv.valueMemory().holeBytes).toBeGreaterThan(0.8 * 540 * 1000);
    h.ok({ type: 'compact', revision: h.kv.currentRev });
    // The apply only moves the compaction point; rows and slabs are dealt with in steps after it.
    expect(h.kv.isCompacting).toBe(true);
    while (!h.kv.compactStep(100));
    const after = h.kv.valueMemory();
    expect(after.liveBytes).toBe(600 * 1000);
    // The old slabs were a tenth live: their values moved; only the current slab's tail is free.
    expect(after.holeBytes).toBeLessThan(SLAB_BYTES);
    const expected = (k: string, i: number): string => valueOf(k, isOverwritten(i) ? 1 : 0, 1000);
    keys.forEach((k, i) => expect(h.get(k)?.value.toString()).toBe(expected(k, i)));
    // A view handed out before the overwrite and the move still shows the bytes it showed then.
    expect(heldView?.toString()).toBe(valueOf('k0001', 0, 1000));
    h.reopen();
    keys.forEach((k, i) => expect(h.get(k)?.value.toString()).toBe(expected(k, i)));
  });

  it('bounds the holes left by overwrites even when nothing is compacted', () => {
    const h = open();
    const valueBytes = 4096;
    const perSlab = SLAB_BYTES / valueBytes;
    // Each slab gets one value that stays and values of a hot key that are soon overwritten:
    // without relocation every slab would stay alive for one value.
    const slabs = Math.ceil((ARENA_HOLE_BYTES_SLACK * 1.25) / SLAB_BYTES);
    for (let s = 0; s < slabs; s++) {
      h.ok(put(`pin${s}`, valueOf(`pin${s}`, s, valueBytes)));
      for (let i = 1; i < perSlab; i++) {
        h.ok(put('hot', valueOf('hot', s * perSlab + i, valueBytes)));
      }
      const memory = h.kv.valueMemory();
      const holeBytesMax = memory.liveBytes + ARENA_HOLE_BYTES_SLACK + SLAB_BYTES;
      expect(memory.holeBytes).toBeLessThanOrEqual(holeBytesMax);
    }
    expect(h.kv.valueMemory().liveBytes).toBe((slabs + 1) * valueBytes);
    for (let s = 0; s < slabs; s++) {
      expect(h.get(`pin${s}`)?.value.toString()).toBe(valueOf(`pin${s}`, s, valueBytes));
    }
  });

  it('a put with ignore_value keeps the value it had', () => {
    const h = open();
    h.ok(put('k', 'kept'));
    h.ok({ type: 'lease-grant', id: 3n, ttlSeconds: 10 });
    const request = {
      key: b('k'), value: none, lease: 3n, prevKv: false, ignoreValue: true, ignoreLease: false,
    };
    h.ok({ type: 'put', request });
    expect(h.get('k')).toMatchObject({ version: 2, lease: 3n });
    expect(h.get('k')?.value.toString()).toBe('kept');
    expect(h.kv.valueMemory().liveBytes).toBe(4);
  });
});
