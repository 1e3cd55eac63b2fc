import { describe, expect, it } from 'vitest';
import { compileSchedule, type CompiledSchedule } from '../../shared/job/schedule.js';
import { jitterOffsetMs, memoNextSlot, nextSlotMs, slotsBetween } from '../../master/planner/slots.js';
import { planDueSlots, startLimitMs, ON_TIME_GRACE_MS, type DueSlot } from '../../master/planner/catch-up.js';
import type { CatchUpPolicy } from '../../shared/job/spec.js';

function compiled(source: string, timezone = 'UTC'): CompiledSchedule {
  const result = compileSchedule(source, timezone);
  if (!result.ok) throw new Error(`${result.field}: ${result.reason}`);
  return result.schedule;
}

function iso(list: number[]): string[] {
  return list.map((ms) => new Date(ms).toISOString());
}

const NY = 'America/New_York';

describe('planner: slot maths', () => {
  it('runs a daily 02:30 job once at 03:00 EDT on the spring-forward day (02:30 does not exist)', () => {
    const slots = slotsBetween(compiled('0 30 2 * * *', NY), Date.parse('2026-03-06T12:00:00Z'), Date.parse('2026-03-10T12:00:00Z'), 10);
    expect(iso(slots)).toEqual([
      '2026-03-07T07:30:00.000Z', // 02:30 EST
      '2026-03-08T07:00:00.000Z', // gap: next valid instant, 03:00 EDT, once
      '2026-03-09T06:30:00.000Z', // 02:30 EDT
      '2026-03-10T06:30:00.000Z',
    ]);
  });

  it('runs a daily 01:30 job once on the fall-back day, at the first 01:30 (EDT)', () => {
    const slots = slotsBetween(compiled('0 30 1 * * *', NY), Date.parse('2026-10-31T12:00:00Z'), Date.parse('2026-11-02T12:00:00Z'), 10);
    expect(iso(slots)).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });

  it('does not repeat wall times of the repeated hour for a wildcard-hour pattern', () => {
    const slots = slotsBetween(compiled('0 */30 * * * *', NY), Date.parse('2026-11-01T04:00:00Z'), Date.parse('2026-11-01T08:00:00Z'), 20);
    // 00:30 EDT, 01:00 EDT, 01:30 EDT, [01:00 EST and 01:30 EST dropped], 02:00 EST, 02:30 EST, 03:00 EST
    expect(iso(slots)).toEqual([
      '2026-11-01T04:30:00.000Z', '2026-11-01T05:00:00.000Z', '2026-11-01T05:30:00.000Z',
      '2026-11-01T07:00:00.000Z', '2026-11-01T07:30:00.000Z', '2026-11-01T08:00:00.000Z',
    ]);
  });

  it('keeps every-second slots strictly increasing across the fall-back hour, with no wall time twice', () => {
    const schedule = compiled('* * * * * *', NY);
    const slots = slotsBetween(schedule, Date.parse('2026-11-01T05:59:50Z'), Date.parse('2026-11-01T07:00:10Z'), 5_000);
    for (let i = 1; i < slots.length; i++) expect(slots[i]! > slots[i - 1]!).toBe(true);
    // 05:59:51..05:59:59 EDT (9), the EST copy of 01:00-01:59 is dropped, 02:00:00..02:00:10 EST (11)
    expect(slots.length).toBe(9 + 11);
    expect(iso(slots).at(-1)).toBe('2026-11-01T07:00:10.000Z');
  });

  it('crosses the repeated hour of a fall-back night with a few croner calls, not one per second', () => {
    const schedule = compiled('* * * * * *', NY);
    if (schedule.kind !== 'cron') throw new Error('expected a cron schedule');
    let calls = 0;
    const cron = schedule.cron;
    const counted = { ...schedule, cron: { nextRun: (date: Date) => { calls++; return cron.nextRun(date); } } } as unknown as CompiledSchedule;
    // 01:59:59 EDT; the next wall time not seen before is 02:00:00 EST.
    expect(nextSlotMs(counted, Date.parse('2026-11-01T05:59:59Z'))).toBe(Date.parse('2026-11-01T07:00:00Z'));
    expect(calls).toBeLessThanOrEqual(3);
    // From inside the repeated hour (01:20 EST) too.
    calls = 0;
    expect(nextSlotMs(counted, Date.parse('2026-11-01T06:20:00Z'))).toBe(Date.parse('2026-11-01T07:00:00Z'));
    expect(calls).toBeLessThanOrEqual(3);
  });

  it('aligns @every slots to the epoch so that every worker computes the same ones', () => {
    const schedule = compiled('@every 10s');
    expect(nextSlotMs(schedule, Date.parse('2026-01-01T00:00:03.500Z'))).toBe(Date.parse('2026-01-01T00:00:10Z'));
    expect(nextSlotMs(schedule, Date.parse('2026-01-01T00:00:10Z'))).toBe(Date.parse('2026-01-01T00:00:20Z'));
  });

  it('supports seconds and macros', () => {
    expect(iso(slotsBetween(compiled('*/15 * * * * *'), Date.parse('2026-01-01T00:00:00Z'), Date.parse('2026-01-01T00:01:00Z'), 10)))
      .toEqual(['2026-01-01T00:00:15.000Z', '2026-01-01T00:00:30.000Z', '2026-01-01T00:00:45.000Z', '2026-01-01T00:01:00.000Z']);
    expect(iso([nextSlotMs(compiled('@hourly', NY), Date.parse('2026-01-01T00:10:00Z'))!])).toEqual(['2026-01-01T01:00:00.000Z']);
  });

  it('derives jitter deterministically per (job, slot), within [0, jitterMs]', () => {
    const slot = Date.parse('2026-01-01T00:00:00Z');
    const offsets = Array.from({ length: 200 }, (_, i) => jitterOffsetMs('job-a', slot + i * 1000, 5_000));
    expect(offsets.every((o) => o >= 0 && o <= 5_000)).toBe(true);
    expect(new Set(offsets).size).toBeGreaterThan(100);
    expect(jitterOffsetMs('job-a', slot, 5_000)).toBe(offsets[0]);
    expect(jitterOffsetMs('job-a', slot, 0)).toBe(0);
  });
});

/** `count` every-second slots, the newest 1 s before `now`, oldest first. */
const everySecond = (now: number, count: number): DueSlot[] =>
  Array.from({ length: count }, (_, i) => ({ slotMs: now - (count - i) * 1000, startMs: now - (count - i) * 1000 }));

describe('planner: catch-up after downtime', () => {
  const policy = (windowMs: number, max: number, lateStartMs = 60_000): CatchUpPolicy => ({ windowMs, max, lateStartMs });

  it('runs the newest slots within the window up to the cap and marks the older ones over cap', () => {
    const now = Date.parse('2026-01-01T00:01:00Z');
    const plan = planDueSlots(everySecond(now, 30), now, policy(20_000, 3), now);
    expect(plan.onTime.map((s) => now - s.slotMs)).toEqual([5_000, 4_000, 3_000, 2_000, 1_000]);
    expect(plan.catchUp.map((s) => now - s.slotMs)).toEqual([8_000, 7_000, 6_000]);
    expect(plan.overCap.length).toBe(20 - 5 - 3);
    expect(plan.tooLate.length).toBe(10);
    expect(plan.onTime.length + plan.catchUp.length + plan.overCap.length + plan.tooLate.length).toBe(30);
  });

  it('treats a window shorter than the on-time grace as no catch-up at all', () => {
    const now = 100_000;
    const plan = planDueSlots([{ slotMs: now - ON_TIME_GRACE_MS - 1, startMs: now - ON_TIME_GRACE_MS - 1 }], now, policy(0, 5), now);
    expect(plan.tooLate.length).toBe(1);
  });
});

describe('planner: slots late because of load', () => {
  it('starts every slot that came due in view up to the late-start limit, with no catch-up cap', () => {
    const now = 1_000_000;
    // In view for the last 90 s: a busy worker plans 90 slots at once.
    const plan = planDueSlots(everySecond(now, 90), now, { windowMs: 0, max: 1, lateStartMs: 60_000 }, now - 90_000);
    expect(plan.onTime.length).toBe(60);
    expect(Math.max(...plan.onTime.map((s) => now - s.startMs))).toBe(60_000);
    expect(plan.tooLate.map((s) => now - s.startMs)).toEqual(Array.from({ length: 30 }, (_, i) => 90_000 - i * 1000));
    expect(plan.catchUp.length + plan.overCap.length).toBe(0);
  });

  it('keeps downtime rules for slots before the job came into view', () => {
    const now = 1_000_000;
    // In view for the last 8 s; before that the worker was down.
    const plan = planDueSlots(everySecond(now, 20), now, { windowMs: 0, max: 1, lateStartMs: 60_000 }, now - 8_000);
    expect(plan.onTime.map((s) => now - s.startMs)).toEqual([8_000, 7_000, 6_000, 5_000, 4_000, 3_000, 2_000, 1_000]);
    expect(plan.tooLate.length).toBe(12);
  });

  it('a late-start limit of 0 leaves the 5 s grace, as before the limit existed', () => {
    const now = 1_000_000;
    const plan = planDueSlots([{ slotMs: now - 6_000, startMs: now - 6_000 }, { slotMs: now - 4_000, startMs: now - 4_000 }], now,
      { windowMs: 0, max: 1, lateStartMs: 0 }, 0);
    expect([plan.onTime.length, plan.tooLate.length]).toEqual([1, 1]);
    expect(startLimitMs({ windowMs: 0, max: 1, lateStartMs: 0 })).toBe(ON_TIME_GRACE_MS);
    expect(startLimitMs({ windowMs: 120_000, max: 1, lateStartMs: 60_000 })).toBe(120_000);
  });
});

describe('planner: memoized next slot', () => {
  it('answers as croner does, for cursors on, just before and between slots', () => {
    const compiled = compileSchedule('*/7 * * * * *', 'Europe/Paris');
    if (!compiled.ok) throw new Error(compiled.reason);
    const memo = memoNextSlot(compiled.schedule);
    let cursor = Date.parse('2026-03-29T00:59:50Z'); // across a DST change
    for (let i = 0; i < 50; i++) {
      const next = memo(cursor);
      expect(next).toBe(nextSlotMs(compiled.schedule, cursor));
      if (next === null) break;
      expect(memo(next - 1)).toBe(next);
      expect(memo(next - 1_500)).toBe(nextSlotMs(compiled.schedule, next - 1_500));
      cursor = next;
    }
  });
});
