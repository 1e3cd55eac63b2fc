// Limits set by etcd's flags, on the subject: --quota-backend-bytes (NOSPACE alarm),
// --max-txn-ops and --max-request-bytes. Database sizes differ between bbolt and SQLite, so the
// quota is checked by its behaviour (the NOSPACE alarm and what it refuses), not by the number
// of puts it allows.
import { afterEach, describe, expect, it } from 'vitest';
import { CompatClient, child, list, text, type Outcome } from '../support/compat-client.js';
import { disposeStores, startSubject, subjectKind } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';

const NOSPACE = { ok: false, code: 'RESOURCE_EXHAUSTED', message: 'etcdserver: mvcc: database space exceeded' };

let store: StoreProcess | undefined;
let client: CompatClient | undefined;

afterEach(async () => {
  client?.close();
  client = undefined;
  await disposeStores(store);
  store = undefined;
});

async function open(args: readonly string[]): Promise<CompatClient> {
  store = await startSubject({ extraArgs: args });
  client = new CompatClient(store.endpoint);
  return client;
}

function errorOf(outcome: Outcome): unknown {
  return outcome.ok ? { ok: true } : { ok: false, code: outcome.code, message: outcome.message };
}

const value = Buffer.alloc(64 * 1024, 0x61);

describe(`limits of the ${subjectKind()} store`, () => {
  it('--quota-backend-bytes: NOSPACE alarm refuses writes, allows reads and deletes, stays until disarmed', async () => {
    const etcd = await open(['--quota-backend-bytes=1048576']);
    let refused: Outcome | undefined;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      const outcome = await etcd.put({ key: Buffer.from(`fill/${i}`), value });
      if (!outcome.ok) refused = outcome;
    }
    expect(refused === undefined ? 'never refused' : errorOf(refused)).toEqual(NOSPACE);
    const alarms = await etcd.alarm({ action: 0 });
    expect(alarms.ok, JSON.stringify(alarms)).toBe(true);
    const members = alarms.ok ? list(alarms.value, 'alarms') : [];
    expect(members.map((alarm) => alarm['alarm'])).toEqual([1]);
    const status = await etcd.status();
    const memberId = status.ok ? text(child(status.value, 'header'), 'member_id') : 'none';
    expect(members.map((alarm) => text(alarm, 'memberID'))).toEqual([memberId]);
    expect(status.ok ? status.value['errors'] : null).toEqual([`memberID:${memberId} alarm:NOSPACE `]);
    expect(errorOf(await etcd.put({ key: Buffer.from('small'), value: Buffer.from('x') }))).toEqual(NOSPACE);
    expect(errorOf(await etcd.leaseGrant({ TTL: '60', ID: '0' }))).toEqual(NOSPACE);
    expect(errorOf(await etcd.txn({ success: [{ request_put: { key: Buffer.from('t'), value: Buffer.from('x') } }] }))).toEqual(NOSPACE);
    expect((await etcd.txn({ success: [{ request_range: { key: Buffer.from('fill/0') } }] })).ok).toBe(true);
    expect((await etcd.range({ key: Buffer.from('fill/'), range_end: Buffer.from('fill0'), count_only: true })).ok).toBe(true);
    const deleted = await etcd.deleteRange({ key: Buffer.from('fill/'), range_end: Buffer.from('fill0') });
    expect(deleted.ok, JSON.stringify(deleted)).toBe(true);
    const revision = deleted.ok ? text(child(deleted.value, 'header'), 'revision') : '0';
    expect((await etcd.compact({ revision, physical: true })).ok).toBe(true);
    expect((await etcd.defragment()).ok).toBe(true);
    expect(errorOf(await etcd.put({ key: Buffer.from('small'), value: Buffer.from('x') })), 'alarm outlives defrag').toEqual(NOSPACE);
    const disarmed = await etcd.alarm({ action: 2, memberID: memberId, alarm: 1 });
    expect(disarmed.ok, JSON.stringify(disarmed)).toBe(true);
    expect(disarmed.ok ? list(disarmed.value, 'alarms').map((alarm) => alarm['alarm']) : []).toEqual([1]);
    expect(errorOf(await etcd.put({ key: Buffer.from('small'), value: Buffer.from('x') })), 'put after disarm').toEqual({ ok: true });
    const after = await etcd.alarm({ action: 0 });
    expect(after.ok ? list(after.value, 'alarms') : null).toEqual([]);
  }, 120_000);

  it('--max-txn-ops and --max-request-bytes are honoured with etcd\'s errors', async () => {
    const etcd = await open(['--max-txn-ops=4', '--max-request-bytes=10000']);
    const ranges = (count: number) => Array.from({ length: count }, () => ({ request_range: { key: Buffer.from('a') } }));
    expect((await etcd.txn({ success: ranges(4) })).ok).toBe(true);
    expect(errorOf(await etcd.txn({ success: ranges(5) }))).toEqual({
      ok: false, code: 'INVALID_ARGUMENT', message: 'etcdserver: too many operations in txn request',
    });
    expect((await etcd.put({ key: Buffer.from('k'), value: Buffer.alloc(5_000) })).ok).toBe(true);
    expect(errorOf(await etcd.put({ key: Buffer.from('k'), value: Buffer.alloc(20_000) }))).toEqual({
      ok: false, code: 'INVALID_ARGUMENT', message: 'etcdserver: request is too large',
    });
  });
});
