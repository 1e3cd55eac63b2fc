import { setFlagsFromString } from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';
import type { Logger } from '../shared/log.js';
import { readHeapSizes } from './heap-sizes.js';

/**
 * Holds V8's young generation at 16 MiB (two 8 MiB semi-spaces) instead of the 32 MiB it grows to
 * under a steady request load. Measured on the store (one member, 64 clients, bench/README.md
 * "Session 21"): the same throughput and CPU per request on every bench row, 14 MB less resident
 * memory under load; in a run at 8 MiB total (4 MiB semi-spaces) reads and transactions lost
 * 10-15% to more frequent scavenges.
 *
 * The maximum is a start-up flag (`node --max-semi-space-size=8`), out of reach of a process that
 * is already running; the growth step is not. V8 reads `--semi-space-growth-factor` each time it
 * grows the young generation, and a factor of 1 makes that growth a no-op. So after every
 * collection the factor is set to 1 once the young generation has reached the cap, and back to
 * V8's 2 when it is below (V8 shrinks it after a quiet spell; it must be able to grow again).
 * A collection's observer runs after it, so the young generation may grow one step past the
 * cap when two growths follow each other before it runs; growth needs a young generation's worth
 * of survivors between steps, which under load takes many scavenges.
 */
export const YOUNG_GENERATION_CAP_BYTES = 16 * 1024 * 1024;

const V8_DEFAULT_GROWTH_FACTOR = 2;

/** The growth factor for a young generation of `youngBytes`: none at or above the cap. */
function youngGrowthFactor(youngBytes: number, capBytes: number): number {
  return youngBytes >= capBytes ? 1 : V8_DEFAULT_GROWTH_FACTOR;
}

/** Whether the process was started with its own young-generation settings, which win. */
function isYoungGenerationGiven(): boolean {
  const given = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)];
  return given.some((arg) => /^--(max|min)[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor/.test(arg));
}

/** Starts holding the young generation at `capBytes`; returns a stop function. One per process. */
export function capYoungGeneration(log: Logger, capBytes: number = YOUNG_GENERATION_CAP_BYTES): () => void {
  if (isYoungGenerationGiven()) {
    log.debug('young generation settings given to node; not capping it');
    return () => {};
  }
  let factor = V8_DEFAULT_GROWTH_FACTOR;
  const adjust = (): void => {
    const wanted = youngGrowthFactor(readHeapSizes().youngBytes, capBytes);
    if (wanted === factor) return;
    setFlagsFromString(`--semi-space-growth-factor=${wanted}`);
    factor = wanted;
  };
  const observer = new PerformanceObserver(adjust);
  observer.observe({ entryTypes: ['gc'] });
  adjust();
  return () => {
    observer.disconnect();
    if (factor !== V8_DEFAULT_GROWTH_FACTOR) setFlagsFromString(`--semi-space-growth-factor=${V8_DEFAULT_GROWTH_FACTOR}`);
  };
}
