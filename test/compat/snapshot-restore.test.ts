// Snapshots in etcd 3.4's own format (issue #11 item 2). A snapshot saved with `etcdctl snapshot
// save` from the subject passes `etcdctl snapshot status`; restored with `etcdctl snapshot restore`
// a real etcd 3.4 serves the same keys, revisions, versions, history after the compaction point
// and leases as the subject did (the way off the bundled store). `etcron snapshot restore` does
// the same into a new etcron store, from the subject's snapshot and from a real etcd's (the way
// onto it). With ETCRON_COMPAT_SUBJECT=etcd the subject is etcd itself, the oracle for all of it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, type CtlResult } from '../support/compat-etcdctl.js';
import { disposeStores, startReference, startSubject, subjectKind, tempDir } from '../support/compat-subject.js';
import { ETCDCTL_BINARY, ETCRON_BIN, startEtcd, startEtcronStore, type StoreProcess } from '../support/etcd-process.js';
import { freePort } from '../support/ports.js';

interface JsonKv { key: string; create_revision: number; mod_revision: number; version: number; value?: string; lease?: number }
interface JsonRange { header: { revision: number }; kvs?: JsonKv[]; count?: number }

function ok(result: CtlResult, what: string): string {
  if (result.code !== 0) throw new Error(`${what}: exit ${result.code}: ${result.stderr}`);
  return result.stdout;
}

async function json<T>(store: StoreProcess, args: readonly string[]): Promise<T> {
  return JSON.parse(ok(await etcdctl(store, [...args, '-w', 'json']), args.join(' '))) as T;
}

/** What a restore must reproduce, written into `store` and read back from it. */
interface Workload {
  readonly beforeCompaction: number;
  readonly afterCompaction: number;
  readonly leaseHex: string;
  readonly all: JsonRange;
  readonly atAfterCompaction: JsonRange;
}

async function writeWorkload(store: StoreProcess): Promise<Workload> {
  const put = async (key: string, value: string, ...flags: string[]): Promise<void> => {
    ok(await etcdctl(store, ['put', key, value, ...flags]), `put ${key}`);
  };
  await put('a', '1');
  await put('b', '1');
  await put('a', '2');
  const beforeCompaction = (await json<JsonRange>(store, ['get', 'a'])).header.revision;
  ok(await etcdctl(store, ['del', 'b']), 'del b');
  await put('a', '3');
  await put('c', Buffer.alloc(3000, 'x').toString());
  // Values bigger than a page: nodes that span overflow pages.
  await put('big1', Buffer.alloc(10_000, 'y').toString());
  await put('big2', Buffer.alloc(9_000, 'z').toString());
  const granted = ok(await etcdctl(store, ['lease', 'grant', '600']), 'lease grant');
  const leaseHex = /lease ([0-9a-f]+) granted/.exec(granted)?.[1] ?? '';
  await put('leased', 'v', '--lease', leaseHex);
  const compactAt = (await json<JsonRange>(store, ['get', 'a'])).header.revision;
  ok(await etcdctl(store, ['compact', String(compactAt)]), 'compact');
  await put('a', '4');
  // Enough keys for more than one leaf page, and a branch above them.
  for (let i = 0; i < 300; i += 1) await put(`many/${String(i).padStart(4, '0')}`, `value-${i}`);
  await put('a', '5');
  const afterCompaction = (await json<JsonRange>(store, ['get', 'a'])).header.revision - 1;
  return {
    beforeCompaction, afterCompaction, leaseHex,
    all: await json<JsonRange>(store, ['get', '', '--prefix']),
    atAfterCompaction: await json<JsonRange>(store, ['get', 'a', `--rev=${afterCompaction}`]),
  };
}

/** `restored` serves what the workload left, as the store it came from did. */
async function expectRestored(restored: StoreProcess, expected: Workload): Promise<void> {
  const after = await json<JsonRange>(restored, ['get', '', '--prefix']);
  expect(after.kvs).toEqual(expected.all.kvs);
  // A restore starts a new cluster whose revision continues from the snapshot's.
  expect(after.header.revision).toBe(expected.all.header.revision);
  // History after the compaction point is there; before it, the same refusal.
  expect((await json<JsonRange>(restored, ['get', 'a', `--rev=${expected.afterCompaction}`])).kvs).toEqual(expected.atAfterCompaction.kvs);
  const below = await etcdctl(restored, ['get', 'a', `--rev=${expected.beforeCompaction}`]);
  expect(below.stderr).toContain('required revision has been compacted');
  // The lease and its key: granted TTL kept, the key still attached.
  const ttl = await json<{ 'granted-ttl': number; keys?: string[] }>(restored, ['lease', 'timetolive', expected.leaseHex, '--keys']);
  expect(ttl['granted-ttl']).toBe(600);
  expect(ttl.keys?.map((k) => Buffer.from(k, 'base64').toString())).toEqual(['leased']);
}

async function saveSnapshot(store: StoreProcess, file: string): Promise<void> {
  ok(await etcdctl(store, ['snapshot', 'save', file]), 'snapshot save');
}

async function restoreIntoEtcd(file: string, root: string): Promise<StoreProcess> {
  const peerPort = await freePort();
  // The test harness runs a store with --data-dir <root>/data.
  const dataDir = join(root, 'data');
  execFileSync(ETCDCTL_BINARY, [
    'snapshot', 'restore', file, '--data-dir', dataDir, '--name', 'restored',
    '--initial-cluster', `restored=http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
  ], { encoding: 'utf8', stdio: 'pipe' });
  expect(existsSync(join(dataDir, 'member', 'snap', 'db'))).toBe(true);
  return startEtcd({ dataDir: root, peerPort, name: 'restored' });
}

async function restoreIntoEtcron(file: string, root: string): Promise<StoreProcess> {
  const out = execFileSync(process.execPath, [ETCRON_BIN, 'snapshot', 'restore', file, '--data-dir', join(root, 'data')], { encoding: 'utf8' });
  expect(out).toMatch(/^restored \d+ key revisions and 1 leases at revision \d+ \(compacted at \d+\)/);
  return startEtcronStore({ dataDir: root, name: 'restored' });
}

describe(`snapshots of the ${subjectKind()} store, restored into etcd 3.4 and into etcron`, () => {
  const dir = tempDir('etcron-snapshot-restore-');
  const stores: (StoreProcess | undefined)[] = [];
  let fromSubject: Workload;
  let fromEtcd: Workload;
  const subjectFile = join(dir.path, 'subject.db');
  const etcdFile = join(dir.path, 'etcd.db');

  beforeAll(async () => {
    const [subject, reference] = await Promise.all([startSubject(), startReference()]);
    stores.push(subject, reference);
    [fromSubject, fromEtcd] = await Promise.all([writeWorkload(subject), writeWorkload(reference)]);
    await Promise.all([saveSnapshot(subject, subjectFile), saveSnapshot(reference, etcdFile)]);
  }, 90_000);

  afterAll(async () => {
    await disposeStores(...stores);
    dir.remove();
  });

  it('etcdctl snapshot status reads the subject\'s snapshot', () => {
    const status = JSON.parse(execFileSync(ETCDCTL_BINARY, ['snapshot', 'status', subjectFile, '-w', 'json'], { encoding: 'utf8' })) as
      { hash: number; revision: number; totalKey: number; totalSize: number };
    expect(status.revision).toBe(fromSubject.all.header.revision);
    expect(status.totalKey).toBeGreaterThan(300);
  });

  it('etcd 3.4 restored from the subject\'s snapshot serves the same data', { timeout: 60_000 }, async () => {
    const restored = await restoreIntoEtcd(subjectFile, join(dir.path, 'etcd-from-subject'));
    stores.push(restored);
    await expectRestored(restored, fromSubject);
  });

  it('etcron restored from the subject\'s snapshot serves the same data', { timeout: 60_000 }, async () => {
    const restored = await restoreIntoEtcron(subjectFile, join(dir.path, 'etcron-from-subject'));
    stores.push(restored);
    await expectRestored(restored, fromSubject);
  });

  it('etcron restored from a real etcd\'s snapshot serves the same data', { timeout: 60_000 }, async () => {
    const restored = await restoreIntoEtcron(etcdFile, join(dir.path, 'etcron-from-etcd'));
    stores.push(restored);
    await expectRestored(restored, fromEtcd);
  });

  it('refuses a snapshot whose hash does not match, and a data dir that holds a member', () => {
    const copy = join(dir.path, 'tampered.db');
    const bytes = readFileSync(subjectFile);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    writeFileSync(copy, bytes);
    const run = (args: readonly string[]): { code: number; stderr: string } => {
      try {
        execFileSync(process.execPath, [ETCRON_BIN, 'snapshot', 'restore', ...args], { encoding: 'utf8', stdio: 'pipe' });
        return { code: 0, stderr: '' };
      } catch (err) {
        const failed = err as { status: number; stderr: string };
        return { code: failed.status, stderr: failed.stderr };
      }
    };
    const tampered = run([copy, '--data-dir', join(dir.path, 'never')]);
    expect(tampered.code).not.toBe(0);
    expect(tampered.stderr).toMatch(/expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}/);
    expect(existsSync(join(dir.path, 'never'))).toBe(false);
    const existing = run([subjectFile, '--data-dir', join(dir.path, 'etcron-from-subject', 'data')]);
    expect(existing.code).not.toBe(0);
    expect(existing.stderr).toContain('exists');
  });
});
