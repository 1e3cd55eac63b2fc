import { describe, expect, it } from 'vitest';
import type { IKeyValue } from 'etcd3';
import { parseJobSpec, serializeJobSpec, type JobSpec } from '../../shared/job/index.js';
import { runKey } from '../../shared/keys.js';
import { resumeCheckedUntil } from '../../master/housekeeping/missed.js';
import { withCreationTime } from '../../master/job-created-at.js';

const NOW = Date.parse('2026-12-05T12:00:00Z');
const HOUR = 3_600_000;

function spec(extra: Record<string, unknown> = {}): JobSpec {
  const result = parseJobSpec({ name: 'j', schedule: '* * * * * *', command: 'true', ...extra });
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.spec;
}

function storedKv(value: JobSpec | string): IKeyValue {
  const text = typeof value === 'string' ? value : serializeJobSpec(value);
  return { key: Buffer.from('/cron/jobs/j'), value: Buffer.from(text), create_revision: '5', mod_revision: '5', version: '1', lease: '0' };
}

function runKv(slotMs: number): IKeyValue {
  return { key: Buffer.from(runKey('j', slotMs)), value: Buffer.alloc(0), create_revision: '9', mod_revision: '9', version: '1', lease: '0' };
}

describe('housekeeping: where a new leader resumes a job', () => {
  it('starts a record-less job its predecessor never covered at the job\'s creation, not at its own start', () => {
    const created = NOW - 4_000;
    // The slot at the creation instant itself is the job's: the cursor sits just before it.
    expect(resumeCheckedUntil(spec({ createdAtMs: created }), undefined, undefined, NOW)).toBe(created - 1);
  });

  it('looks back from the creation instant past the newest record of an uncovered job', () => {
    const created = NOW - 10_000;
    expect(resumeCheckedUntil(spec({ createdAtMs: created }), runKv(NOW - 2_000), undefined, NOW)).toBe(created - 1);
  });

  it('resumes a covered job from the watermark, but never before the job existed', () => {
    const created = NOW - 30_000;
    expect(resumeCheckedUntil(spec({ createdAtMs: created }), runKv(NOW - 1_000), NOW - 5_000, NOW)).toBe(NOW - 5_000);
    expect(resumeCheckedUntil(spec({ createdAtMs: created }), runKv(NOW - 1_000), NOW - 60_000, NOW)).toBe(created - 1);
  });

  it('keeps the old rules for a job written around the master (no creation stamp)', () => {
    expect(resumeCheckedUntil(spec(), undefined, undefined, NOW)).toBe(NOW);
    expect(resumeCheckedUntil(spec(), runKv(NOW - 3_000), undefined, NOW)).toBe(NOW - 3_000);
    expect(resumeCheckedUntil(spec(), runKv(NOW - 3_000), NOW - 8_000, NOW)).toBe(NOW - 8_000);
  });

  it('never looks back further than the history age limit, nor past now for a clock ahead of ours', () => {
    const aged = spec({ createdAtMs: NOW - 10 * HOUR, history: { ageMs: HOUR } });
    expect(resumeCheckedUntil(aged, undefined, undefined, NOW)).toBe(NOW - HOUR);
    expect(resumeCheckedUntil(spec({ createdAtMs: NOW + 60_000 }), undefined, undefined, NOW)).toBe(NOW);
  });
});

describe('job creation stamp', () => {
  it('stamps a new job with now and replaces any value the input carried', () => {
    expect(withCreationTime(spec(), undefined, NOW).createdAtMs).toBe(NOW);
    expect(withCreationTime(spec({ createdAtMs: 7 }), undefined, NOW).createdAtMs).toBe(NOW);
  });

  it('keeps the stored stamp across edits, so re-applying an exported spec changes nothing', () => {
    const stored = withCreationTime(spec(), undefined, NOW - HOUR);
    const reapplied = withCreationTime(spec({ createdAtMs: 123 }), storedKv(stored), NOW);
    expect(reapplied.createdAtMs).toBe(NOW - HOUR);
    expect(serializeJobSpec(reapplied)).toBe(serializeJobSpec(stored));
  });

  it('invents no stamp for a stored job that has none', () => {
    expect(withCreationTime(spec({ createdAtMs: 123 }), storedKv(spec()), NOW).createdAtMs).toBeUndefined();
    expect(withCreationTime(spec(), storedKv('not json'), NOW).createdAtMs).toBeUndefined();
  });

  it('refuses a stamp that is not a non-negative integer', () => {
    for (const bad of [-1, 1.5, '5', null]) {
      const result = parseJobSpec({ name: 'j', schedule: '* * * * * *', command: 'true', createdAtMs: bad });
      expect(result.ok, JSON.stringify(bad)).toBe(false);
    }
  });
});
