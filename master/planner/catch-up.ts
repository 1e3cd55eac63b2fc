/**
 * Which due slots a worker may still start, and which it must record as missed. A slot's start
 * instant is slot + jitter. Lateness = now - start instant.
 *   lateness <= ON_TIME_GRACE_MS                      on time: claim normally
 *   ON_TIME_GRACE_MS < lateness <= catch-up window    catch-up: the newest `max` are claimed
 *                                                     (marked catchUp), older ones recorded
 *                                                     missed with reason "catch-up-cap"
 *   lateness > max(window, ON_TIME_GRACE_MS)          too late: housekeeping records it missed
 *                                                     ("outside-catch-up-window") once it is
 *                                                     also past MISSED_MARGIN_MS, which absorbs
 *                                                     clock skew between master and workers.
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

export function startDeadlineMs(slot: DueSlot, windowMs: number): number {
  return slot.startMs + Math.max(windowMs, ON_TIME_GRACE_MS);
}

/** Splits due slots (oldest first) by lateness at `nowMs`. Pure. */
export function planDueSlots(due: readonly DueSlot[], nowMs: number, windowMs: number, max: number): CatchUpPlan {
  const onTime: DueSlot[] = [];
  const late: DueSlot[] = [];
  const tooLate: DueSlot[] = [];
  for (const slot of due) {
    const lateness = nowMs - slot.startMs;
    if (lateness <= ON_TIME_GRACE_MS) onTime.push(slot);
    else if (lateness <= windowMs) late.push(slot);
    else tooLate.push(slot);
  }
  const keep = Math.min(max, late.length);
  return { onTime, catchUp: late.slice(late.length - keep), overCap: late.slice(0, late.length - keep), tooLate };
}
