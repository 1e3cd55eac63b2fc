// The way off the bundled store (issue #11 item 2): `etcdctl snapshot save` from the subject,
// `etcdctl snapshot status` on the file, `etcdctl snapshot restore` into a data dir, and a real
// etcd 3.4 started on it must serve the same keys, revisions, versions, history after the
// compaction point and leases as the subject did. With ETCRON_COMPAT_SUBJECT=etcd the subject is
// etcd itself, the oracle for every expectation here.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdctl, type CtlResult } from '../support/compat-etcdctl.js';
import { disposeStores, startSubject, subjectKind, tempDir } from '../support/compat-subject.js';
import { ETCDCTL_BINARY, startEtcd, type StoreProcess } from '../support/etcd-process.js';
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

describe(`snapshot of the ${subjectKind()} store restored into etcd 3.4`, () => {
  const dir = tempDir('etcron-snapshot-restore-');
  let subject: StoreProcess | undefined;
  let restored: StoreProcess | undefined;

  afterAll(async () => {
    await disposeStores(subject, restored);
    dir.remove();
  });

  it('etcdctl snapshot status reads it; etcd started from the restore serves the same data', { timeout: 90_000 }, async () => {
    subject = await startSubject();
    const put = async (key: string, value: string, ...flags: string[]): Promise<void> => {
      ok(await etcdctl(subject!, ['put', key, value, ...flags]), `put ${key}`);
    };
    await put('a', '1');
    await put('b', '1');
    await put('a', '2');
    const beforeCompaction = (await json<JsonRange>(subject, ['get', 'a'])).header.revision;
    ok(await etcdctl(subject, ['del', 'b']), 'del b');
    await put('a', '3');
    await put('c', Buffer.alloc(3000, 'x').toString());
    // Values bigger than a page: nodes that span overflow pages.
    await put('big1', Buffer.alloc(10_000, 'y').toString());
    await put('big2', Buffer.alloc(9_000, 'z').toString());
    const granted = ok(await etcdctl(subject, ['lease', 'grant', '600']), 'lease grant');
    const leaseHex = /lease ([0-9a-f]+) granted/.exec(granted)?.[1] ?? '';
    await put('leased', 'v', '--lease', leaseHex);
    const compactAt = (await json<JsonRange>(subject, ['get', 'a'])).header.revision;
    ok(await etcdctl(subject, ['compact', String(compactAt)]), 'compact');
    await put('a', '4');
    // Enough keys for more than one leaf page, and a branch above them.
    for (let i = 0; i < 300; i += 1) await put(`many/${String(i).padStart(4, '0')}`, `value-${i}`);
    await put('a', '5');
    const afterCompaction = (await json<JsonRange>(subject, ['get', 'a'])).header.revision - 1;

    const file = join(dir.path, 'snapshot.db');
    ok(await etcdctl(subject, ['snapshot', 'save', file]), 'snapshot save');
    const status = JSON.parse(execFileSync(ETCDCTL_BINARY, ['snapshot', 'status', file, '-w', 'json'], { encoding: 'utf8' })) as
      { hash: number; revision: number; totalKey: number; totalSize: number };
    const current = await json<JsonRange>(subject, ['get', '', '--prefix']);
    expect(status.revision).toBe(current.header.revision);
    expect(status.totalKey).toBeGreaterThan(300);

    const peerPort = await freePort();
    // The test harness runs a store with --data-dir <dir>/data.
    const restoredRoot = join(dir.path, 'restored');
    const dataDir = join(restoredRoot, 'data');
    execFileSync(ETCDCTL_BINARY, [
      'snapshot', 'restore', file, '--data-dir', dataDir, '--name', 'restored',
      '--initial-cluster', `restored=http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    ], { encoding: 'utf8', stdio: 'pipe' });
    expect(existsSync(join(dataDir, 'member', 'snap', 'db'))).toBe(true);
    restored = await startEtcd({ dataDir: restoredRoot, peerPort, name: 'restored' });

    const after = await json<JsonRange>(restored, ['get', '', '--prefix']);
    expect(after.kvs).toEqual(current.kvs);
    // Restore starts a new cluster whose revision continues from the snapshot's.
    expect(after.header.revision).toBe(current.header.revision);
    // History after the compaction point is there; before it, both refuse the same way.
    expect(await json<JsonRange>(restored, ['get', 'a', `--rev=${afterCompaction}`]))
      .toEqual({ ...(await json<JsonRange>(subject, ['get', 'a', `--rev=${afterCompaction}`])), header: expect.anything() });
    const below = await etcdctl(restored, ['get', 'a', `--rev=${beforeCompaction}`]);
    expect(below.stderr).toContain('required revision has been compacted');
    expect((await etcdctl(subject, ['get', 'a', `--rev=${beforeCompaction}`])).stderr).toContain('required revision has been compacted');
    // The lease and its key: granted TTL kept, the key still attached.
    const ttl = await json<{ 'granted-ttl': number; keys?: string[] }>(restored, ['lease', 'timetolive', leaseHex, '--keys']);
    expect(ttl['granted-ttl']).toBe(600);
    expect(ttl.keys?.map((k) => Buffer.from(k, 'base64').toString())).toEqual(['leased']);
  });
});
