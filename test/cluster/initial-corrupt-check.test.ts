// --experimental-initial-corrupt-check on 3 `etcron store` members, as etcd 3.4 does it: a member
// restarting on its data dir compares its HashKV with its peers' before it serves clients. Every
// member carries the flag from its first start (as etcd's e2e ctl tests do); a new member has no
// data and skips the check. The corruption is written into a stopped member's SQLite database, so
// this runs on etcron only (etcd keeps a bbolt file, and logs other lines without --logger zap).
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { bytes, list } from '../support/compat-client.js';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';

const FLAG = '--experimental-initial-corrupt-check';
const PASSED = 'initial corruption checking passed; no corruption';
const SERVING = 'serving client requests';

/** The member's SQLite database (etcron keeps it under <data-dir>/member). */
function databaseOf(cluster: Cluster, index: number): string {
  return join(cluster.member(index).dataDir, 'data', 'member', 'etcron.db');
}

/** What a member wrote to its log since `offset` (stdout and stderr go to one file). */
function logSince(cluster: Cluster, index: number, offset: number): string {
  return readFileSync(cluster.member(index).logPath, 'utf8').slice(offset);
}

function logLength(cluster: Cluster, index: number): number {
  return readFileSync(cluster.member(index).logPath, 'utf8').length;
}

/** Waits (bounded) until the member's log since `offset` contains `needle`; pino writes asynchronously. */
async function waitForLog(cluster: Cluster, index: number, offset: number, needle: string): Promise<string> {
  return waitFor(`m${index + 1} to log "${needle}"`, () => {
    const log = logSince(cluster, index, offset);
    return log.includes(needle) ? log : undefined;
  }, 10_000, 50);
}

/** Writes through `via`, retrying while the cluster has no leader yet (a put may then apply twice). */
async function put(cluster: Cluster, via: number, key: string, value: string): Promise<void> {
  await waitFor(`put ${key} through m${via + 1}`, async () => {
    const outcome = await cluster.client(via).call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from(value) }, 3_000);
    if (!outcome.ok) throw new Error(`${outcome.code}: ${outcome.message}`);
    return true;
  }, 20_000, 100);
}

/** The key's value read through member `via`, once it answers (a restarted member may have no leader yet). */
async function valueAt(cluster: Cluster, via: number, key: string): Promise<string | null> {
  return waitFor(`range ${key} on m${via + 1}`, async () => {
    const outcome = await cluster.client(via).call('KV', 'Range', { key: Buffer.from(key) }, 5_000);
    if (!outcome.ok) throw new Error(`${outcome.code}: ${outcome.message}`);
    const kv = list(outcome.value, 'kvs')[0];
    return kv === undefined ? null : bytes(kv, 'value').toString();
  }, 15_000, 100);
}

describe.skipIf(clusterSubject() !== 'etcron')(`3 etcron members with ${FLAG}`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3, extraArgs: [FLAG] });
    for (let i = 0; i < 10; i++) await put(cluster, 0, `check/k${i}`, `v${i}`);
    await cluster.converged(15_000);
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('skips the check on a new member', () => {
    for (const member of cluster.members) {
      expect(logSince(cluster, member.index, 0), member.name).not.toContain('starting initial corruption check');
    }
  });

  it('passes on a restart behind its peers, and the member then serves', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    await cluster.kill(0);
    // The peers move on: they must hash at the restarting member's older revision.
    await put(cluster, 1, 'check/after-kill', 'later');
    const offset = logLength(cluster, 0);
    await cluster.restart(0);
    // The member serves clients only after the check: wait for the later line, then compare.
    const log = await waitForLog(cluster, 0, offset, SERVING);
    expect(log).toContain('starting initial corruption check');
    expect(log).not.toContain('found different hash values from remote peer');
    expect(log.indexOf(PASSED), 'checked before serving clients').toBeGreaterThan(-1);
    expect(log.indexOf(PASSED), 'checked before serving clients').toBeLessThan(log.indexOf(SERVING));
    await cluster.converged(20_000);
    expect(await valueAt(cluster, 0, 'check/after-kill')).toBe('later');
  }, 60_000);

  it('warns about a peer that is down and starts anyway', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    await cluster.stop(2);
    await cluster.stop(0);
    const offset = logLength(cluster, 0);
    await cluster.restart(0);
    const log = await waitForLog(cluster, 0, offset, PASSED);
    const failed = log.split('\n').find((line) => line.includes('failed hash kv request'));
    expect(failed, 'a warning for the member that is down').toBeDefined();
    expect(failed).toContain(cluster.member(2).peerUrl.replace('http://', ''));
    expect(JSON.parse(failed ?? '{}')).toMatchObject({ level: 40 });
    // m1 and m2 are a quorum: writes go through the restarted member.
    await put(cluster, 0, 'check/peer-down', 'written');
    expect(await valueAt(cluster, 0, 'check/peer-down')).toBe('written');
    await cluster.restart(2);
    await waitForLog(cluster, 2, 0, PASSED);
    await cluster.converged(20_000);
  }, 90_000);

  it('lets members that restart together check against each other', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    await Promise.all(cluster.members.map((m) => cluster.stop(m.index)));
    const offsets = cluster.members.map((m) => logLength(cluster, m.index));
    // Each answers its peers' HashKV while it checks its own: none waits for another's check.
    await Promise.all(cluster.members.map((m) => cluster.restart(m.index)));
    await Promise.all(cluster.members.map((m) => waitForLog(cluster, m.index, offsets[m.index] ?? 0, PASSED)));
    await cluster.leader(20_000);
    expect(await valueAt(cluster, 2, 'check/peer-down')).toBe('written');
  }, 90_000);

  it('refuses to start a member whose data differs from its peers\'', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    await cluster.converged(20_000);
    const status = await cluster.status(1);
    if (status === null) throw new Error('m2 does not answer Status');
    const memberId = BigInt(status.memberId).toString(16);
    await cluster.stop(1);
    // One value changed behind the store's back: the newest row of one key.
    const db = new Database(databaseOf(cluster, 1));
    try {
      const changed = db.prepare(
        "UPDATE kv SET value = CAST('corrupted' AS BLOB) WHERE main = (SELECT MAX(main) FROM kv WHERE key = CAST('check/k3' AS BLOB))",
      ).run();
      expect(changed.changes).toBe(1);
    } finally {
      db.close();
    }
    const offset = logLength(cluster, 1);
    cluster.startAgain(1);
    await cluster.waitForExit(1, 30_000);
    expect(cluster.exitCode(1)).not.toBe(0);
    expect(cluster.exitCode(1)).not.toBeNull();
    const log = logSince(cluster, 1, offset);
    expect(log).toContain(`${memberId} found data inconsistency with peers`);
    const mismatches = log.split('\n').filter((line) => line.includes('found different hash values from remote peer'));
    expect(mismatches).toHaveLength(2);
    for (const line of mismatches) {
      const fields = JSON.parse(line) as Record<string, unknown>;
      expect(fields).toMatchObject({ level: 50, localMemberId: memberId });
      expect(fields['localMemberHash']).not.toBe(fields['remotePeerHash']);
      expect(fields['localMemberCompactRevision']).toBe(fields['remotePeerCompactRevision']);
    }
    expect(log).not.toContain('serving client requests');
    expect(log).not.toContain(PASSED);
    // The other two still agree and serve.
    expect(await valueAt(cluster, 0, 'check/k3')).toBe('v3');
    expect(await valueAt(cluster, 2, 'check/k3')).toBe('v3');
  }, 90_000);
});

describe.skipIf(clusterSubject() !== 'etcron')(`one etcron member with ${FLAG}`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 1, extraArgs: [FLAG] });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('passes with no peer to ask, after a restart', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    await put(cluster, 0, 'solo/k', 'v');
    await cluster.stop(0);
    const offset = logLength(cluster, 0);
    await cluster.restart(0);
    // The member serves clients only after the check: wait for the later line, then compare.
    const log = await waitForLog(cluster, 0, offset, SERVING);
    expect(log).toContain('starting initial corruption check');
    expect(await valueAt(cluster, 0, 'solo/k')).toBe('v');
  }, 60_000);
});
