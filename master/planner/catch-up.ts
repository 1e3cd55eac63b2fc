import type { CatchUpPolicy } from '../../shared/job/spec.js';

/**
 * Which due slots a worker may still start, and which it must record as missed. A slot's start
 * instant is slot + jitter; lateness = now - start instant. Two kinds of late slot differ:
 *
 * In view: the slot came due while this worker had the job and a live session. It is late only
 * because of load (claims queued, a busy event loop, a takeover), so it starts however late up to
 * the job's start limit, max(window, lateStartMs, ON_TIME_GRACE_MS); past that it is too late.
 *
 * Not in view (downtime: before the worker started, or while it had no session):
 *   lateness <= ON_TIME_GRACE_MS                      on time: claim normally
 *   ON_TIME_GRACE_MS < lateness <= catch-up window    catch-up: the newest `max` are claimed
 *                                                     (marked catchUp), older ones recorded
 *                                                     missed with reason "catch-up-cap"
 *   lateness > max(window, ON_TIME_GRACE_MS)          too late
 *
 * Housekeeping records a slot that nobody started missed ("outside-catch-up-window") once it is
 * past the start limit and MISSED_MARGIN_MS more, which absorbs clock skew between master and
 * workers; until then a worker may still claim it.
 */
export const ON_TIME_GRACE_MS = 5_000;
export const MISSED_MARGIN_MS = 5_000;

export interface DueSlot {
  readonly slotMs: number;
  readonly startMs: number;
}

export interface CatchUpPlan {
  readonly onTime: readonly DueSlot[];
  readonly catchUp: readonly DueSlot[];
  readonly overCap: readonly DueSlot[];
  readonly tooLate: readonly DueSlot[];
}

/** How long after its start instant a slot may still be started at all. */
export function startLimitMs(policy: CatchUpPolicy): number {
  return Math.max(policy.windowMs, policy.lateStartMs, ON_TIME_GRACE_MS);
}

export function startDeadlineMs(slot: DueSlot, policy: CatchUpPolicy): number {
  return slot.startMs + startLimitMs(policy);
}

/**
 * Splits due slots (oldest first) by lateness at `nowMs`; slots starting at or after
 * `inViewSinceMs` came due while the worker had the job in view. Pure.
 */
export function planDueSlots(due: readonly DueSlot[], nowMs: number, policy: CatchUpPolicy, inViewSinceMs: number): CatchUpPlan {
  const onTime: DueSlot[] = [];
  const late: DueSlot[] = [];
  const tooLate: DueSlot[] = [];
  const limitMs = startLimitMs(policy);
  for (const slot of due) {
    const lateness = nowMs - slot.startMs;
    if (slot.startMs >= inViewSinceMs) (lateness <= limitMs ? onTime : tooLate).push(slot);
    else if (lateness <= ON_TIME_GRACE_MS) onTime.push(slot);
    else if (lateness <= policy.windowMs) late.push(slot);
    else tooLate.push(slot);
  }
  const keep = Math.min(policy.max, late.length);
  return { onTime, catchUp: late.slice(late.length - keep), overCap: late.slice(0, late.length - keep), tooLate };
}
