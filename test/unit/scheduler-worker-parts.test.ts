import { describe, expect, it } from 'vitest';
import { preferredWorker } from '../../worker/preferred.js';
import { OutputTail } from '../../worker/executor/output-tail.js';

describe('preferred worker (rendezvous hashing)', () => {
  const workers = ['w1', 'w2', 'w3'];
  const slots = Array.from({ length: 3_000 }, (_, i) => new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString());

  it('spreads slots evenly and every worker computes the same choice', () => {
    const counts = new Map<string, number>();
    for (const slot of slots) {
      const chosen = preferredWorker('job', slot, workers)!;
      expect(preferredWorker('job', slot, [...workers].reverse())).toBe(chosen);
      counts.set(chosen, (counts.get(chosen) ?? 0) + 1);
    }
    for (const w of workers) expect(counts.get(w)!).toBeGreaterThan(800);
  });

  it('moves only the departed worker\'s slots when a worker leaves', () => {
    let moved = 0;
    for (const slot of slots) {
      const before = preferredWorker('job', slot, workers);
      const after = preferredWorker('job', slot, ['w1', 'w2']);
      if (before !== 'w3') expect(after).toBe(before);
      else moved++;
    }
    expect(moved).toBeGreaterThan(800);
  });

  it('puts a job\'s preferWorkers first, in their order, while they are candidates', () => {
    for (const slot of slots.slice(0, 200)) {
      expect(preferredWorker('job', slot, workers, ['w3', 'w1'])).toBe('w3');
      // w3 gone (dead or not eligible): the next listed one.
      expect(preferredWorker('job', slot, ['w1', 'w2'], ['w3', 'w1'])).toBe('w1');
      // None listed is a candidate: the hash decides, as without affinity.
      expect(preferredWorker('job', slot, ['w1', 'w2'], ['w9'])).toBe(preferredWorker('job', slot, ['w1', 'w2']));
    }
  });
});

describe('output tail', () => {
  it('keeps exactly the last bytesMax bytes', () => {
    const tail = new OutputTail(10);
    tail.push(Buffer.from('0123456789'));
    tail.push(Buffer.from('abc'));
    expect(tail.text()).toBe('3456789abc');
    tail.push(Buffer.from('x'.repeat(25)));
    expect(tail.text()).toBe('x'.repeat(10));
    expect(tail.droppedBytes).toBe(28);
  });
});
