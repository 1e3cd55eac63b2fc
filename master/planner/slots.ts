import type { CompiledSchedule } from '../../shared/job/schedule.js';
import { assert } from '../../shared/assert.js';

/**
 * Pure slot maths: no clock, no I/O. Everything is a function of (schedule, instants), so DST
 * and catch-up behaviour are unit tests with fixed instants.
 *
 * DST rules (America/New_York, 2026):
 * - Spring forward, 8 March: 02:00-02:59 local does not exist. A slot at 02:30 runs once, at the
 *   next valid instant, 03:00 EDT (07:00Z). croner does this for us.
 * - Fall back, 1 November: 01:00-01:59 local happens twice (EDT, then EST). A wall time that
 *   occurs twice runs once, at its first occurrence: a candidate whose local wall time equals the
 *   wall time one DST shift earlier is dropped. This also applies to patterns with a wildcard hour
 *   (e.g. every 30 minutes runs 01:00 and 01:30 once each, not twice).
 * - `@every <n>s` is not a wall-clock pattern: slots are multiples of n since the Unix epoch, so
 *   every worker computes the same slots and DST does not apply.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

function wallFormatter(timezone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timezone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    formatters.set(timezone, formatter);
  }
  return formatter;
}

/** Local wall time as a comparable string, e.g. "11/01/2026, 01:30:00". */
export function wallTime(timezone: string, instantMs: number): string {
  return wallFormatter(timezone).format(new Date(instantMs));
}

/** UTC offset of `timezone` at `instantMs`, in ms (EDT: -4 h). */
export function utcOffsetMs(timezone: string, instantMs: number): number {
  const parts = wallFormatter(timezone).formatToParts(new Date(instantMs));
  const field = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((p) => p.type === type)?.value);
  const asUtc = Date.UTC(field('year'), field('month') - 1, field('day'), field('hour'), field('minute'), field('second'));
  return asUtc - Math.floor(instantMs / 1000) * 1000;
}

/** How far back a DST shift is looked for (Lord Howe shifts 30 minutes; most zones one hour). */
const SHIFT_LOOKBACK_MS = 3 * 3_600_000;

/** The DST shift that makes wall times repeat at `instantMs`, in ms, or 0 when none does. */
function fallBackShiftMs(timezone: string, instantMs: number): number {
  if (timezone === 'UTC') return 0;
  const shiftMs = utcOffsetMs(timezone, instantMs - SHIFT_LOOKBACK_MS) - utcOffsetMs(timezone, instantMs);
  if (shiftMs <= 0) return 0;
  return wallTime(timezone, instantMs - shiftMs) === wallTime(timezone, instantMs) ? shiftMs : 0;
}

/** True when `instantMs` shows a wall time that already occurred earlier the same night (fall back). */
export function isRepeatedWallTime(timezone: string, instantMs: number): boolean {
  return fallBackShiftMs(timezone, instantMs) > 0;
}

/**
 * The first instant after `instantMs` (a repeated wall time) whose wall time is not repeated: the
 * end of the fall-back window, found by bisection over at most the shift (whole seconds, since
 * wall times are compared to the second), instead of asking croner for every slot inside it.
 */
function endOfRepeatedWindowMs(timezone: string, instantMs: number): number {
  let low = instantMs; // repeated
  let high = instantMs + fallBackShiftMs(timezone, instantMs); // past the window
  while (high - low > 1_000) {
    const middle = low + Math.floor((high - low) / 2_000) * 1_000;
    if (isRepeatedWallTime(timezone, middle)) low = middle;
    else high = middle;
  }
  return high;
}

/** Candidates looked at while skipping repeated wall times: one jump per window, a few windows. */
const REPEATED_SKIP_MAX = 8;

/**
 * The first slot strictly after `afterMs`, or null if the schedule never fires again. A candidate
 * in the repeated hour of a fall-back night moves the cursor to the end of that hour, so a
 * per-second job costs a few croner calls there, not 3,600.
 */
export function nextSlotMs(schedule: CompiledSchedule, afterMs: number): number | null {
  if (schedule.kind === 'triggered') return null;
  if (schedule.kind === 'every') {
    return (Math.floor(afterMs / schedule.everyMs) + 1) * schedule.everyMs;
  }
  let cursor = afterMs;
  for (let i = 0; i < REPEATED_SKIP_MAX; i++) {
    const next = schedule.cron.nextRun(new Date(cursor));
    if (next === null) return null;
    const nextMs = next.getTime();
    assert(nextMs > cursor, `croner went backwards: ${nextMs} <= ${cursor}`);
    if (!isRepeatedWallTime(schedule.timezone, nextMs)) return nextMs;
    cursor = endOfRepeatedWindowMs(schedule.timezone, nextMs) - 1;
  }
  return null;
}

/** Remembered answers per memo: the planner asks about the same few cursors tick after tick. */
const NEXT_SLOT_MEMO_ENTRIES_MAX = 8;

/**
 * nextSlotMs with a small memo of recent answers. Planning loops ask "the slot after the cursor"
 * on every tick while a slot waits (e.g. for its takeover delay), and a croner call costs tens to
 * hundreds of microseconds, which at 10,000 jobs is most of a core.
 */
export function memoNextSlot(schedule: CompiledSchedule): (afterMs: number) => number | null {
  const memo = new Map<number, number | null>();
  return (afterMs) => {
    const known = memo.get(afterMs);
    if (known !== undefined) return known;
    const next = nextSlotMs(schedule, afterMs);
    if (memo.size >= NEXT_SLOT_MEMO_ENTRIES_MAX - 1) memo.clear();
    memo.set(afterMs, next);
    // Also the question "is `next` still a slot?" (asked as next - 1 when a claim goes out).
    if (next !== null) memo.set(next - 1, next);
    return next;
  };
}

/** Slots in (afterMs, untilMs], oldest first, at most `max` of them (the oldest ones). */
export function slotsBetween(schedule: CompiledSchedule, afterMs: number, untilMs: number, max: number): number[] {
  const slots: number[] = [];
  let cursor = afterMs;
  while (slots.length < max) {
    const next = nextSlotMs(schedule, cursor);
    if (next === null || next > untilMs) break;
    slots.push(next);
    cursor = next;
  }
  return slots;
}

/** The latest slot at or before `atMs` (searching back at most `lookbackMs`), or null. */
export function previousSlotMs(schedule: CompiledSchedule, atMs: number, lookbackMs: number, stepsMax = 10_000): number | null {
  const slots = slotsBetween(schedule, atMs - lookbackMs, atMs, stepsMax);
  return slots.length === 0 ? null : (slots[slots.length - 1] ?? null);
}

/** FNV-1a, 32 bit: a stable hash so that every process derives the same jitter and preferences. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * FNV-1a followed by murmur3's finalizer. FNV-1a alone spreads near-identical keys (the same job
 * and worker, consecutive slots) unevenly: 754 of 3,000 slots instead of ~1,000 for 3 workers.
 */
export function stableHash(text: string): number {
  let h = fnv1a(text);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Deterministic per-(job, slot) start offset in [0, jitterMs]; the slot id stays nominal. */
export function jitterOffsetMs(job: string, slotMs: number, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  return stableHash(`${job}\n${new Date(slotMs).toISOString()}`) % (jitterMs + 1);
}
