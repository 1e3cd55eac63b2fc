import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { type StoreProcess } from '../support/etcd-process.js';
import { hasStoreUnderTest, startStoreUnderTest } from '../support/store-under-test.js';
import { clientFor, historyRecords, putJob } from '../support/scheduler-fixtures.js';
import { trimHistory } from '../../master/housekeeping/trim.js';
import { recordMissedSlots } from '../../master/housekeeping/missed.js';
import { compileSchedule } from '../../shared/job/schedule.js';
import { runKey, slotId } from '../../shared/keys.js';
import { encodeRecord, runIdFor, type RunRecord, type RunState } from '../../shared/history/records.js';
import { readHistory } from '../../shared/history/read.js';
import type { JobSpec } from '../../shared/job/spec.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

/** History is bounded by count and age, never trims a live run, and reads back at old revisions. */
describe.skipIf(!hasStoreUnderTest())('history trimming and missed slots', () => {
  let store: StoreProcess;
  let client: Etcd3;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    client = clientFor(store);
  });

  afterAll(async () => {
    client?.close();
    await store?.kill();
    store?.cleanup();
  });

  async function writeRecords(spec: JobSpec, count: number, stateOf: (i: number) => RunState): Promise<void> {
    for (let i = 0; i < count; i++) {
      const slotMs = T0 + i * 60_000;
      const slot = slotId(slotMs);
      const record: RunRecord = { job: spec.name, slot, runId: runIdFor(spec.name, slot, 1), state: stateOf(i), attempt: 1, worker: 'w' };
      await client.put(runKey(spec.name, slotMs)).value(encodeRecord(record));
    }
  }

  it('keeps the newest countMax final records and never trims a live run', async () => {
    const spec = await putJob(client, { name: 'trim-count', schedule: '* * * * *', command: 'true', history: { countMax: 5 } });
    await writeRecords(spec, 20, (i) => (i === 2 ? 'running' : 'succeeded'));
    const before = await readHistory(client, 'trim-count');
    const deleted = await trimHistory(client, spec, T0 + 3_600_000);
    const after = await historyRecords(client, 'trim-count');
    expect(deleted).toBe(14);
    expect(after.map((r) => r.slot)).toEqual([slotId(T0 + 2 * 60_000), ...[15, 16, 17, 18, 19].map((i) => slotId(T0 + i * 60_000))]);
    // Trimmed history is still readable at the revision before the trim (MVCC).
    const past = await readHistory(client, 'trim-count', { revision: before.revision });
    expect(past.runs.length).toBe(20);
  });

  it('trims by age, but not records whose slot a worker could still start', async () => {
    const spec = await putJob(client, { name: 'trim-age', schedule: '* * * * *', command: 'true', history: { ageMs: '10m' } });
    await writeRecords(spec, 20, () => 'succeeded');
    // Now = slot 19 + 5 s: slots older than 10 minutes (0..9) go; the rest stay.
    await trimHistory(client, spec, T0 + 19 * 60_000 + 5_000);
    const after = await historyRecords(client, 'trim-age');
    expect(after.length).toBe(10);
    expect(after[0]?.slot).toBe(slotId(T0 + 10 * 60_000));
  });

  it('records every unstarted slot past its deadline once, and not a slot that a worker claimed', async () => {
    const spec = await putJob(client, { name: 'missed', schedule: '* * * * * *', command: 'true', catchUp: { lateStartMs: 0 } });
    const compiled = compileSchedule(spec.schedule, spec.timezone);
    if (!compiled.ok) throw new Error(compiled.reason);
    const claimed: RunRecord = { job: 'missed', slot: slotId(T0 + 3_000), runId: 'x', state: 'succeeded', attempt: 1, worker: 'w' };
    await client.put(runKey('missed', T0 + 3_000)).value(encodeRecord(claimed));
    const first = await recordMissedSlots(client, spec, compiled.schedule, T0, T0 + 20_000);
    // Slots 1..9 are past slot + 5 s grace + 5 s margin at T0 + 20 s; slot 3 was claimed.
    expect(first.recorded).toBe(8);
    expect(first.checkedUntilMs).toBe(T0 + 9_000);
    const again = await recordMissedSlots(client, spec, compiled.schedule, T0, T0 + 20_000);
    expect(again.recorded).toBe(0);
    const records = await historyRecords(client, 'missed');
    expect(records.find((r) => r.slot === slotId(T0 + 3_000))?.state).toBe('succeeded');
    expect(records.filter((r) => r.state === 'missed').every((r) => r.reason?.startsWith('outside-catch-up-window'))).toBe(true);
  });

  it('leaves a slot to the workers until its late-start limit (default 60 s) and margin have passed', async () => {
    const spec = await putJob(client, { name: 'late-default', schedule: '* * * * * *', command: 'true' });
    const compiled = compileSchedule(spec.schedule, spec.timezone);
    if (!compiled.ok) throw new Error(compiled.reason);
    expect((await recordMissedSlots(client, spec, compiled.schedule, T0, T0 + 60_000)).recorded).toBe(0);
    // At T0 + 70 s, slots 1..4 are past slot + 60 s + 5 s margin.
    const later = await recordMissedSlots(client, spec, compiled.schedule, T0, T0 + 70_000);
    expect([later.recorded, later.checkedUntilMs]).toEqual([4, T0 + 4_000]);
    expect((await historyRecords(client, 'late-default'))[0]?.reason).toBe('outside-catch-up-window: no worker started it within 60000 ms');
  });
});
