import { describe, expect, it } from 'vitest';
import { preferredWorker } from '../../worker/preferred.js';
import { OutputTail } from '../../worker/executor/output-tail.js';
import { ClaimQueue } from '../../worker/claim-queue.js';

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

describe('claim queue (slots waiting for room among the claims in flight)', () => {
  const slot = (name: string, startMs: number): { name: string; startMs: number } => ({ name, startMs });
  const neverExpired = (): boolean => false;
  const noExpiry = (): void => {};

  it('gives on-time slots first, oldest first', () => {
    const queue = new ClaimQueue<{ name: string; startMs: number }>(1_000);
    queue.push(slot('a', 10_000));
    queue.push(slot('b', 10_500));
    queue.push(slot('c', 11_000));
    expect(queue.next(10_600, neverExpired, noExpiry)?.name).toBe('a');
    expect(queue.next(10_600, neverExpired, noExpiry)?.name).toBe('b');
    expect(queue.size).toBe(1);
  });

  it('lets a backlog wait behind on-time slots, then serves it newest first', () => {
    const queue = new ClaimQueue<{ name: string; startMs: number }>(1_000);
    for (let i = 0; i < 5; i++) queue.push(slot(`old-${i}`, 1_000 + i));
    queue.push(slot('fresh', 9_900));
    // At 10 s the five old slots are more than 1 s late: the fresh one goes first.
    expect(queue.next(10_000, neverExpired, noExpiry)?.name).toBe('fresh');
    expect(queue.next(10_000, neverExpired, noExpiry)?.name).toBe('old-4');
    expect(queue.next(10_000, neverExpired, noExpiry)?.name).toBe('old-3');
  });

  it('drops late slots past their deadline, oldest first, and reports each', () => {
    const queue = new ClaimQueue<{ name: string; startMs: number }>(1_000);
    for (let i = 0; i < 4; i++) queue.push(slot(`s-${i}`, i * 1_000));
    const expired: string[] = [];
    const next = queue.next(8_000, (s) => 8_000 - s.startMs > 6_500, (s) => expired.push(s.name));
    expect(expired).toEqual(['s-0', 's-1']);
    expect(next?.name).toBe('s-3');
    expect(queue.next(8_000, neverExpired, noExpiry)?.name).toBe('s-2');
    expect(queue.next(8_000, neverExpired, noExpiry)).toBeUndefined();
  });
});
