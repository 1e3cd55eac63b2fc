import type { Etcd3, IKeyValue } from 'etcd3';
import { parseRunKey, runKey, slotId } from '../../shared/keys.js';
import type { JobSpec } from '../../shared/job/spec.js';
import { creationCursorMs } from '../../shared/job/creation.js';
import type { CompiledSchedule } from '../../shared/job/schedule.js';
import { recordNotStarted } from '../../shared/history/write.js';
import { runIdFor, type RunRecord } from '../../shared/history/records.js';
import { jitterOffsetMs, nextSlotMs } from '../planner/slots.js';
import { MISSED_MARGIN_MS, startLimitMs } from '../planner/catch-up.js';

/** Slots examined per job per pass; a long outage is worked off over several passes. */
export const MISSED_SLOTS_PER_PASS_MAX = 500;

/** The instant after which no worker will start `slotMs` any more (plus margin for clock skew). */
export function missedAfterMs(spec: JobSpec, slotMs: number): number {
  return slotMs + jitterOffsetMs(spec.name, slotMs, spec.jitterMs) + startLimitMs(spec.catchUp) + MISSED_MARGIN_MS;
}

/** checkedUntil from the job's newest run key (the last key under its runs prefix), if any. */
export function checkedUntilFrom(spec: JobSpec, newest: IKeyValue | undefined, nowMs: number): number {
  // The key names the slot, so keys-only reads suffice.
  const slotMs = newest === undefined ? undefined : parseRunKey(newest.key.toString())?.slotMs;
  if (slotMs === undefined) return nowMs;
  return Math.max(slotMs, nowMs - spec.history.ageMs);
}

/**
 * Where a new housekeeper resumes a job. A job the previous leader covered (its watermark was
 * written after the job existed) resumes from that watermark; any other job from its creation,
 * since no earlier leader may have looked at it at all (it was created just before that leader
 * died). Either way a slot older than the newest record may lack one: it was not yet past its
 * deadline when the previous leader went. Without a creation stamp, the newest record (or now)
 * is all there is. Never before the history age limit, nor before the job existed.
 */
export function resumeCheckedUntil(spec: JobSpec, newest: IKeyValue | undefined, coveredUntilMs: number | undefined, nowMs: number): number {
  const fromRecords = checkedUntilFrom(spec, newest, nowMs);
  const created = creationCursorMs(spec, nowMs);
  const lookBackTo = coveredUntilMs ?? created;
  const from = lookBackTo === undefined ? fromRecords : Math.min(lookBackTo, fromRecords);
  return Math.max(from, nowMs - spec.history.ageMs, created ?? Number.NEGATIVE_INFINITY);
}

/**
 * Records every slot in (checkedUntil, now] that is past its start deadline and has no run record:
 * `skipped` if the job is paused, else `missed`. create_revision == 0 makes this race-free against a
 * worker that claims at the last moment: exactly one of the two records exists. Returns the new
 * checkedUntil. Housekeeping batches the same steps over all jobs (housekeeping.ts), broadcast
 * jobs included; this one-job form is kept for tests and tools.
 */
export async function recordMissedSlots(
  client: Etcd3, spec: JobSpec, schedule: CompiledSchedule, checkedUntilMs: number, nowMs: number,
  nextSlot: (afterMs: number) => number | null = (afterMs) => nextSlotMs(schedule, afterMs),
): Promise<{ checkedUntilMs: number; recorded: number }> {
  if (spec.broadcast) return { checkedUntilMs: nowMs, recorded: 0 };
  const slots = slotsPastDeadline(spec, checkedUntilMs, nowMs, nextSlot);
  const first = slots[0];
  const last = slots[slots.length - 1];
  if (first === undefined || last === undefined) return { checkedUntilMs, recorded: 0 };
  const existing = await client.kv.range({
    key: Buffer.from(runKey(spec.name, first)), range_end: Buffer.from(`${runKey(spec.name, last)}\u0000`), keys_only: true,
  });
  const present = new Set(existing.kvs.map((kv) => kv.key.toString()));
  let recorded = 0;
  for (const slotMs of slots) {
    const key = runKey(spec.name, slotMs);
    if (present.has(key)) continue;
    if (await recordNotStarted(client, key, notStartedRecord(spec, slotMs, nowMs))) recorded++;
  }
  return { checkedUntilMs: last, recorded };
}

/** Slots after `checkedUntilMs` that no worker will start any more, oldest first, bounded. */
export function slotsPastDeadline(
  spec: JobSpec, checkedUntilMs: number, nowMs: number, nextSlot: (afterMs: number) => number | null,
): number[] {
  const slots: number[] = [];
  let cursor = checkedUntilMs;
  while (slots.length < MISSED_SLOTS_PER_PASS_MAX) {
    const next = nextSlot(cursor);
    if (next === null || missedAfterMs(spec, next) >= nowMs) break;
    slots.push(next);
    cursor = next;
  }
  return slots;
}

export function notStartedRecord(spec: JobSpec, slotMs: number, nowMs: number, broadcastWorker?: string): RunRecord {
  const slot = slotId(slotMs);
  const who = broadcastWorker === undefined ? 'no worker' : `worker ${broadcastWorker} (registered at the slot)`;
  return {
    job: spec.name, slot, runId: runIdFor(spec.name, slot, 1, broadcastWorker), attempt: 1, endedAtMs: nowMs,
    ...(broadcastWorker === undefined ? {} : { worker: broadcastWorker }),
    ...(spec.paused
      ? { state: 'skipped', reason: 'job paused' }
      : { state: 'missed', reason: `outside-catch-up-window: ${who} started it within ${startLimitMs(spec.catchUp)} ms` }),
  };
}

