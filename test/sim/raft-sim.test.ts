import { describe, expect, it } from 'vitest';
import { describeFailure, simulate } from './simulation.js';

/**
 * Deterministic simulation of the Raft core. CI sweeps a fixed seed range;
 * ETCRON_SEED=<n> replays exactly one seed, ETCRON_SEEDS=<k> widens the sweep.
 */
const replaySeed = process.env['ETCRON_SEED'];
const seedCount = Number(process.env['ETCRON_SEEDS'] ?? '2000');

describe('raft simulation', () => {
  if (replaySeed !== undefined) {
    it(`replays seed ${replaySeed}`, () => {
      const result = simulate({ seed: Number(replaySeed) });
      if (!result.ok) console.error(describeFailure(result));
      console.log(JSON.stringify({ ...result, trace: undefined }));
      expect(result.failure).toBeNull();
    });
    return;
  }

  it(`keeps every invariant over ${seedCount} seeds and heals`, () => {
    const started = performance.now();
    let events = 0;
    let committed = 0;
    let crashes = 0;
    let unsyncedLost = 0;
    let snapshots = 0;
    let reads = 0;
    let confChanges = 0;
    for (let seed = 1; seed <= seedCount; seed++) {
      const result = simulate({ seed });
      if (!result.ok) {
        console.error(describeFailure(result));
        expect.fail(`seed ${seed}: ${result.failure ?? ''} (replay with ETCRON_SEED=${seed})`);
      }
      events += result.events;
      committed += result.committed;
      crashes += result.crashes;
      unsyncedLost += result.unsyncedLost;
      snapshots += result.snapshotsSent;
      reads += result.readsChecked;
      confChanges += result.confChanges;
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `sim: ${seedCount} seeds in ${seconds.toFixed(1)} s, ${events} events, ${committed} committed, ` +
        `${crashes} crashes (${unsyncedLost} lost unsynced writes), ${snapshots} snapshots, ` +
        `${reads} reads checked, ${confChanges} conf changes`,
    );
    // The sweep must exercise the paths it claims to: crashes, snapshots and reads happened.
    expect(crashes).toBeGreaterThan(0);
    expect(unsyncedLost).toBeGreaterThan(0);
    expect(snapshots).toBeGreaterThan(0);
    expect(reads).toBeGreaterThan(0);
    expect(confChanges).toBeGreaterThan(0);
  }, 600_000);

  it('replays a seed exactly', () => {
    for (const seed of [3, 17, 42]) {
      const first = simulate({ seed });
      const second = simulate({ seed });
      expect(second.fingerprint).toBe(first.fingerprint);
      expect(second.events).toBe(first.events);
      expect(second.trace).toEqual(first.trace);
    }
  });
});
