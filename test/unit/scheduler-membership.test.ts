import { describe, expect, it } from 'vitest';
import { WorkerMembership } from '../../master/housekeeping/worker-membership.js';
import { memoNextSlot, nextSlotMs } from '../../master/planner/slots.js';
import { compileSchedule } from '../../shared/job/schedule.js';
import type { WorkerInfo } from '../../shared/history/records.js';

function info(id: string, tags: string[], startedAtMs: number): WorkerInfo {
  return { id, tags, hostname: 'h', pid: 1, startedAtMs, leaseId: '1', leaseTtlSeconds: 5 };
}

// Issue 5: broadcast slots are expected of the workers registered at the slot's instant.
describe('worker membership for broadcast accounting', () => {
  it('answers who was registered at an instant, with the job\'s tags', () => {
    const m = new WorkerMembership();
    m.onPut(info('a', [], 1_000), 5_000, true); // seen at start: counts from its own start
    m.onPut(info('b', ['gpu'], 4_000), 6_000, false); // seen later: counts from when it was seen
    expect(m.registeredAt(2_000, [])).toEqual(['a']);
    expect(m.registeredAt(6_500, [])).toEqual(['a', 'b']);
    expect(m.registeredAt(6_500, ['gpu'])).toEqual(['b']);
    m.onDelete('a', 8_000);
    expect(m.registeredAt(7_999, [])).toEqual(['a', 'b']);
    expect(m.registeredAt(8_000, [])).toEqual(['b']);
    // Re-registration after a lease loss with the same tags continues the interval.
    m.onPut(info('b', ['gpu'], 9_000), 9_000, false);
    expect(m.registeredAt(6_500, ['gpu'])).toEqual(['b']);
  });
});

describe('memoized next slot', () => {
  it('gives the same slots as nextSlotMs across DST in a zone and in UTC', () => {
    for (const [pattern, zone] of [['*/30 * * * *', 'America/New_York'], ['7-59/10 * * * * *', 'UTC']] as const) {
      const compiled = compileSchedule(pattern, zone);
      if (!compiled.ok) throw new Error(compiled.reason);
      const next = memoNextSlot(compiled.schedule);
      let cursor = Date.parse('2026-11-01T04:00:00Z');
      for (let i = 0; i < 50; i++) {
        const expected = nextSlotMs(compiled.schedule, cursor);
        expect(next(cursor)).toBe(expected);
        expect(next(cursor)).toBe(expected); // memo hit
        cursor = expected!;
      }
    }
  });
});
