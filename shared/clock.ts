/** A cancellable timer handed out by a Clock. */
export interface Timer {
  cancel(): void;
}

/**
 * Time comes in through this interface so that cores stay deterministic and tests can move time
 * by hand. Wall time is for cron slots and timestamps; monotonic time is for durations.
 */
export interface Clock {
  nowMs(): number;
  monotonicMs(): number;
  setTimer(delayMs: number, fire: () => void): Timer;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  setTimer(delayMs, fire) {
    const handle = setTimeout(fire, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A clock whose wall time is shifted by a fixed offset, for skew tests and `--clock-offset`. */
export function offsetClock(base: Clock, offsetMs: number): Clock {
  return {
    nowMs: () => base.nowMs() + offsetMs,
    monotonicMs: () => base.monotonicMs(),
    setTimer: (delayMs, fire) => base.setTimer(delayMs, fire),
  };
}

interface PendingTimer {
  readonly atMs: number;
  readonly seq: number;
  readonly fire: () => void;
  cancelled: boolean;
}

/** Virtual time for tests: nothing moves until advance() is called; timers fire in (time, seq) order. */
export class SimClock implements Clock {
  private now: number;
  private seq = 0;
  private timers: PendingTimer[] = [];

  constructor(startMs = 0) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  monotonicMs(): number {
    return this.now;
  }

  setTimer(delayMs: number, fire: () => void): Timer {
    const timer: PendingTimer = { atMs: this.now + Math.max(0, delayMs), seq: this.seq++, fire, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.now + ms;
    for (;;) {
      const next = this.nextDue(target);
      if (next === undefined) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.now = next.atMs;
      if (!next.cancelled) next.fire();
    }
    this.now = target;
  }

  private nextDue(limitMs: number): PendingTimer | undefined {
    let best: PendingTimer | undefined;
    for (const t of this.timers) {
      if (t.atMs > limitMs) continue;
      if (!best || t.atMs < best.atMs || (t.atMs === best.atMs && t.seq < best.seq)) best = t;
    }
    return best;
  }
}
