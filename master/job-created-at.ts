import type { IKeyValue } from 'etcd3';
import { deserializeJobSpec, type JobSpec } from '../shared/job/index.js';

/**
 * The spec to store over `stored` (undefined: the job is new). Its creation instant is the
 * stored job's, or now for a new job; whatever the input said is replaced, so an exported spec
 * applied again neither moves it nor counts as a change. A stored job without one (written
 * around the master) keeps having none: an invented instant would claim slots it never had.
 */
export function withCreationTime(spec: JobSpec, stored: IKeyValue | undefined, nowMs: number): JobSpec {
  const { createdAtMs: _ignored, ...rest } = spec;
  if (stored === undefined) return { ...rest, createdAtMs: Math.floor(nowMs) };
  const parsed = deserializeJobSpec(stored.value.toString());
  const kept = parsed.ok ? parsed.spec.createdAtMs : undefined;
  return kept === undefined ? rest : { ...rest, createdAtMs: kept };
}
