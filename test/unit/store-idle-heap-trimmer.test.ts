import { describe, expect, it } from 'vitest';
import { IdleHeapPolicy, type HeapSample, type IdleHeapPolicyOptions } from '../../store/idle-heap-trimmer.js';

const MB = 1024 * 1024;
const OPTIONS: IdleHeapPolicyOptions = { quietCpuShare: 0.05, quietTicks: 3, growthBytes: 16 * MB };
const TICK = 1_000_000;
const busy = (committedMb: number, youngMb = 1) => ({ cpuMicros: TICK / 2, tickMicros: TICK, committedBytes: committedMb * MB, youngBytes: youngMb * MB });
const quiet = (committedMb: number, youngMb = 1) => ({ cpuMicros: TICK / 100, tickMicros: TICK, committedBytes: committedMb * MB, youngBytes: youngMb * MB });

/**
 * Feeds samples, collecting whenever the policy says so, each collection leaving `afterMb` of heap
 * (and a young generation of `youngMb`, 1 MB unless given); returns the ticks (0-based) that collected.
 */
function run(
  policy: IdleHeapPolicy,
  samples: HeapSample[],
  afterMb: (before: number) => number,
  youngMb: (collection: number) => number = () => 1,
): number[] {
  const ticks: number[] = [];
  samples.forEach((s, i) => {
    if (policy.observe(s)) {
      ticks.push(i);
      policy.collected(s.committedBytes, { committedBytes: afterMb(s.committedBytes / MB) * MB, youngBytes: youngMb(ticks.length) * MB });
    }
  });
  return ticks;
}

describe('IdleHeapPolicy', () => {
  it('collects once the process has been quiet for the set number of ticks after a burst that grew the heap', () => {
    const policy = new IdleHeapPolicy(40 * MB, OPTIONS);
    const ticks = run(policy, [busy(80), busy(120), quiet(120), quiet(120), quiet(120), quiet(120)], () => 119);
    // Quiet ticks 2, 3, 4: the third one collects; it freed under 4 MB, so no second one.
    expect(ticks).toEqual([4]);
  });

  it('goes on collecting, one per quiet tick, while each collection still gives memory back, at most four', () => {
    const policy = new IdleHeapPolicy(40 * MB, OPTIONS);
    const freeing = new IdleHeapPolicy(40 * MB, OPTIONS);
    const samples = [busy(130), quiet(130), quiet(130), quiet(130), quiet(100), quiet(67), quiet(67), quiet(67)];
    const sizes = [130, 100, 67, 67];
    let next = 0;
    expect(run(policy, samples, () => sizes[++next] ?? 67)).toEqual([3, 4, 5]);
    // Memory that keeps coming back is still capped at four collections per quiet spell.
    expect(run(freeing, [busy(200), ...Array.from({ length: 9 }, () => quiet(200))], (before) => before - 10)).toEqual([3, 4, 5, 6]);
  });

  it('goes on while the young generation is still at its burst size, though a collection freed little', () => {
    const policy = new IdleHeapPolicy(40 * MB, OPTIONS);
    // V8 shrinks its young generation only at a collection that sees a low allocation rate: here
    // the third; the fourth tick then has nothing left to do.
    const samples = [busy(130), ...Array.from({ length: 8 }, () => quiet(130))];
    expect(run(policy, samples, () => 129, (n) => (n < 3 ? 32 : 1))).toEqual([3, 4, 5]);
  });

  it('collects after a burst that left the young generation at its burst size, though the heap hardly grew', () => {
    // The young generation is held at 16 MiB (young-generation-cap.ts): a burst may not grow the
    // committed heap by the threshold, and still leave 15 MB that a collection gives back.
    const policy = new IdleHeapPolicy(40 * MB, OPTIONS);
    // The first one freed 15 MB: one more on the next tick, which frees nothing, and that is all.
    expect(run(policy, [busy(48, 16), quiet(48, 16), quiet(48, 16), quiet(48, 16), quiet(33, 1), quiet(33, 1)], () => 33)).toEqual([3, 4]);
    // With a small young generation and no growth, nothing to do.
    const idle = new IdleHeapPolicy(40 * MB, OPTIONS);
    expect(run(idle, [busy(48, 2), quiet(48, 2), quiet(48, 2), quiet(48, 2), quiet(48, 2)], () => 47)).toEqual([]);
  });

  it('does not collect while the process is busy, nor when the heap did not grow, nor twice in one quiet spell', () => {
    const policy = new IdleHeapPolicy(100 * MB, OPTIONS);
    expect(run(policy, Array.from({ length: 20 }, () => busy(200)), () => 100)).toEqual([]);
    // Grown by 10 MB only: under the 16 MB threshold.
    expect(run(policy, [busy(110), quiet(110), quiet(110), quiet(110), quiet(110)], () => 100)).toEqual([]);
    // A new burst, a long quiet spell: one collection (it freed little), however long the spell.
    expect(run(policy, [busy(150), ...Array.from({ length: 30 }, () => quiet(150))], () => 148)).toEqual([3]);
    // Activity re-arms it; the baseline is now what the last collection left (148 MB).
    expect(run(policy, [busy(160), quiet(160), quiet(160), quiet(160)], () => 150)).toEqual([]);
    expect(run(policy, [busy(170), quiet(170), quiet(170), quiet(170)], () => 150)).toEqual([3]);
  });

  it('counts a tick as busy from the share of one core the process used, whatever the tick length', () => {
    const policy = new IdleHeapPolicy(0, { ...OPTIONS, quietTicks: 1 });
    // 40 ms of CPU in a 500 ms tick is 8%: busy. 40 ms in 2 s is 2%: quiet.
    expect(policy.observe({ cpuMicros: 40_000, tickMicros: 500_000, committedBytes: 100 * MB, youngBytes: 0 })).toBe(false);
    expect(policy.observe({ cpuMicros: 40_000, tickMicros: 2_000_000, committedBytes: 100 * MB, youngBytes: 0 })).toBe(true);
  });
});
