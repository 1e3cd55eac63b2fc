import type { JobSpec } from './spec.js';

/**
 * The cursor just before the job's first slot, if the master stamped its creation: slots after
 * it are the job's. Clamped to now, so a writer's clock ahead of ours hides no slot.
 */
export function creationCursorMs(spec: JobSpec, nowMs: number): number | undefined {
  return spec.createdAtMs === undefined ? undefined : Math.min(spec.createdAtMs - 1, nowMs);
}
