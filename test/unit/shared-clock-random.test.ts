import { describe, expect, it } from 'vitest';
import { SimClock } from '../../shared/clock.js';
import { seededRandom } from '../../shared/random.js';

describe('SimClock', () => {
  it('fires timers in time order, ties by creation, only when advanced past them', () => {
    const clock = new SimClock(1000);
    const fired: string[] = [];
    clock.setTimer(50, () => fired.push('b'));
    clock.setTimer(10, () => fired.push('a'));
    clock.setTimer(50, () => fired.push('c'));
    const cancelled = clock.setTimer(20, () => fired.push('x'));
    cancelled.cancel();
    clock.advance(49);
    expect(fired).toEqual(['a']);
    clock.advance(1);
    expect(fired).toEqual(['a', 'b', 'c']);
    expect(clock.nowMs()).toBe(1050);
  });

  it('lets a timer schedule another timer inside the same advance', () => {
    const clock = new SimClock();
    const at: number[] = [];
    clock.setTimer(10, () => { at.push(clock.nowMs()); clock.setTimer(10, () => at.push(clock.nowMs())); });
    clock.advance(100);
    expect(at).toEqual([10, 20]);
  });
});

describe('seededRandom', () => {
  it('replays the same sequence for the same seed and differs across seeds', () => {
    const draw = (seed: number) => { const r = seededRandom(seed); return Array.from({ length: 8 }, () => r.int(1000)); };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
    const r = seededRandom(1);
    for (let i = 0; i < 1000; i++) { const v = r.int(10); expect(v).toBeGreaterThanOrEqual(0); expect(v).toBeLessThan(10); }
  });
});
