import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../shared/random.js';
import { DeadlineHeap } from '../../shared/deadline-heap.js';
import { EXPIRED_LEASE_RETRY_MS, Lessor } from '../../store/lease/lessor.js';
import { Backend } from '../../store/mvcc/backend.js';

const dirs: string[] = [];
const backends: Backend[] = [];
afterEach(() => {
  for (const backend of backends.splice(0)) backend.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function newLessor(): Lessor {
  const dir = mkdtempSync(join(tmpdir(), 'etcron-lessor-'));
  dirs.push(dir);
  const backend = new Backend(join(dir, 'db'));
  backends.push(backend);
  return new Lessor(backend, 2);
}

describe('DeadlineHeap', () => {
  it('pops entries in deadline order for any push/pop interleaving', () => {
    const random = seededRandom(20261205);
    const heap = new DeadlineHeap<bigint>();
    const model: number[] = [];
    for (let step = 0; step < 20_000; step++) {
      if (random.int(3) > 0) {
        const atMs = random.int(1_000);
        heap.push({ atMs, id: BigInt(step) });
        model.push(atMs);
        model.sort((a, b) => a - b);
      } else {
        expect(heap.pop()?.atMs).toBe(model.shift());
      }
      expect(heap.size).toBe(model.length);
      expect(heap.peek()?.atMs).toBe(model[0]);
    }
  });
});

describe('Lessor expiry', () => {
  it('hands out expired leases soonest first, and only once per retry interval', () => {
    const lessor = newLessor();
    lessor.grant(1n, 10);
    lessor.grant(2n, 5);
    lessor.promote(0, 1_000);
    lessor.grant(3n, 2);
    lessor.startTimers(100);
    expect(lessor.expired(2_099, 10)).toEqual([]);
    expect(lessor.expired(2_100, 10)).toEqual([3n]);
    // Lease 3 was not revoked: it is due again EXPIRED_LEASE_RETRY_MS after it was handed out.
    expect(lessor.expired(11_000, 10)).toEqual([3n, 2n, 1n]);
    expect(lessor.expired(11_000 + EXPIRED_LEASE_RETRY_MS - 1, 10)).toEqual([]);
    lessor.revoke(3n);
    expect(lessor.expired(11_000 + EXPIRED_LEASE_RETRY_MS, 10)).toEqual([2n, 1n]);
  });

  it('a renewal moves the deadline; the superseded deadline is ignored', () => {
    const lessor = newLessor();
    lessor.grant(7n, 3);
    lessor.promote(0, 0);
    expect(lessor.renew(7n, 2_000)).toBe(3);
    expect(lessor.expired(3_000, 10)).toEqual([]);
    expect(lessor.expired(5_000, 10)).toEqual([7n]);
    expect(lessor.renew(7n, 5_000)).toBe(0);
  });

  it('a follower keeps no deadlines, and a new leader starts every lease afresh', () => {
    const lessor = newLessor();
    lessor.grant(1n, 2);
    lessor.promote(0, 0);
    lessor.demote();
    expect(lessor.expired(1_000_000, 10)).toEqual([]);
    expect(lessor.remainingSeconds(lessor.lookup(1n)!, 1_000_000)).toBe(2);
    lessor.promote(1_000_000, 500);
    expect(lessor.expired(1_002_499, 10)).toEqual([]);
    expect(lessor.expired(1_002_500, 10)).toEqual([1n]);
  });

  it('renewing far more often than the TTL keeps the heap bounded', () => {
    const lessor = newLessor();
    for (let id = 1n; id <= 10n; id++) lessor.grant(id, 60);
    lessor.promote(0, 0);
    for (let now = 1; now <= 50_000; now++) lessor.renew(BigInt(1 + (now % 10)), now);
    expect(lessor.scheduledEntries).toBeLessThanOrEqual(4 * 10 + 1_024 + 1);
    expect(lessor.expired(50_000 + 59_990, 100)).toEqual([]);
    expect(lessor.expired(50_000 + 60_000, 100)).toHaveLength(10);
  });

  it('matches a scan of every lease over a seeded schedule of grants, renewals and revokes', () => {
    const random = seededRandom(7);
    const lessor = newLessor();
    lessor.promote(0, 0);
    let now = 0;
    let nextId = 1n;
    for (let step = 0; step < 5_000; step++) {
      now += random.int(400);
      const live = lessor.all();
      const pick = live[random.int(Math.max(1, live.length))];
      const action = random.int(10);
      if (action < 3 || pick === undefined) lessor.grant(nextId++, 1 + random.int(5));
      else if (action < 7) lessor.renew(pick.id, now);
      else if (action < 8) lessor.revoke(pick.id);
      lessor.startTimers(now);
      const due = lessor.all()
        .filter((lease) => lease.checkAtMs !== null && lease.checkAtMs <= now)
        .map((lease) => lease.checkAtMs as number)
        .sort((a, b) => a - b);
      const limit = 1 + random.int(4);
      const handed = lessor.expired(now, limit);
      expect(handed).toHaveLength(Math.min(limit, due.length));
      for (const id of handed) {
        const lease = lessor.lookup(id);
        expect(lease?.deadlineMs).toBeLessThanOrEqual(now);
        if (random.int(2) === 0) lessor.revoke(id);
      }
    }
  });
});
