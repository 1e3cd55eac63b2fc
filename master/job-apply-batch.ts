import type { Etcd3 } from 'etcd3';
import { jobKey } from '../shared/keys.js';
import { chunkBySize } from '../shared/chunks.js';
import { serializeJobSpec, type JobSpec } from '../shared/job/index.js';
import { getOp, putOp, rangeResult, runTxn, type CompareSpec } from '../shared/etcd/txn.js';
import { ApiError, type FieldError } from './errors.js';
import { ok, type RequestContext, type RouteResult } from './http-server.js';
import { revisionOf, specFromBody, type JobView } from './job-routes.js';
import { withCreationTime } from './job-created-at.js';
import type { Clock } from '../shared/clock.js';

/**
 * `POST /v1/apply`: create or replace many jobs in few store requests. One PUT per job cost a
 * round trip through the master and two through the store each, 35-45 s for 10,000 jobs; here
 * every spec is validated first (one bad spec writes nothing), then jobs are read and written in
 * txns of up to JOBS_PER_TXN_MAX, each write compared on the revision just read, so a concurrent
 * edit is re-read and applied over, never lost silently.
 */

/** A request carries at most this many jobs; the CLI splits bigger files. */
export const APPLY_JOBS_PER_REQUEST_MAX = 1_000;
/** Under etcd's default --max-txn-ops of 128 (compares and puts are counted separately). */
const JOBS_PER_TXN_MAX = 100;
/** Serialized specs per txn, well under etcd's default 1.5 MiB request limit. */
const SPEC_BYTES_PER_TXN_MAX = 512 * 1024;
/** Txns in flight at once: enough to keep the store's pipeline busy without a burst. */
const TXNS_IN_FLIGHT_MAX = 4;
/** Re-reads of one batch whose compare failed because another writer got in between. */
const BATCH_ATTEMPTS_MAX = 5;

export interface ApplyResult {
  readonly name: string;
  readonly created: boolean;
  readonly unchanged: boolean;
  readonly job: JobView;
}

interface Planned {
  readonly spec: JobSpec;
  readonly text: string;
}

export async function applyJobs(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const planned = validateAll(context.body);
  const batches = splitIntoBatches(planned);
  const results: ApplyResult[][] = new Array<ApplyResult[]>(batches.length);
  let next = 0;
  const runner = async (): Promise<void> => {
    for (let index = next++; index < batches.length; index = next++) {
      results[index] = await applyBatch(client, clock, batches[index] as Planned[]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(TXNS_IN_FLIGHT_MAX, batches.length) }, runner));
  const flat = results.flat();
  const written = flat.filter((r) => !r.unchanged).length;
  context.log.info({ jobs: flat.length, written, txns: batches.length }, 'jobs applied');
  return ok({ results: flat });
}

function validateAll(body: unknown): Planned[] {
  const jobs = typeof body === 'object' && body !== null && !Array.isArray(body)
    ? (body as { jobs?: unknown }).jobs
    : undefined;
  if (!Array.isArray(jobs) || jobs.length === 0) {
    throw new ApiError('invalid-request', 'body must be {"jobs": [spec, ...]} with at least one spec');
  }
  if (jobs.length > APPLY_JOBS_PER_REQUEST_MAX) {
    throw new ApiError('invalid-request',
      `at most ${APPLY_JOBS_PER_REQUEST_MAX} jobs per request (got ${jobs.length}); split the list`);
  }
  const problems: FieldError[] = [];
  const planned: Planned[] = [];
  const seen = new Set<string>();
  jobs.forEach((input: unknown, index) => {
    try {
      const spec = specFromBody(input);
      if (seen.has(spec.name)) {
        problems.push({ field: `jobs[${index}].name`, message: `job ${spec.name} appears twice` });
      }
      seen.add(spec.name);
      planned.push({ spec, text: serializeJobSpec(spec) });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const fields = err.fieldErrors.length > 0 ? err.fieldErrors : [{ field: '(root)', message: err.message }];
      for (const field of fields) problems.push({ field: `jobs[${index}].${field.field}`, message: field.message });
    }
  });
  if (problems.length > 0) {
    const summary = problems.slice(0, 5).map((p) => `${p.field}: ${p.message}`).join('; ');
    throw new ApiError('invalid-spec', `invalid job specs, nothing applied: ${summary}`, problems);
  }
  return planned;
}

function splitIntoBatches(planned: readonly Planned[]): Planned[][] {
  return chunkBySize(planned, JOBS_PER_TXN_MAX, SPEC_BYTES_PER_TXN_MAX, (job) => Buffer.byteLength(job.text));
}

async function applyBatch(client: Etcd3, clock: Clock, batch: readonly Planned[]): Promise<ApplyResult[]> {
  const reads = batch.map((job) => getOp(jobKey(job.spec.name)));
  for (let attempt = 0; attempt < BATCH_ATTEMPTS_MAX; attempt++) {
    const read = await runTxn(client, { compare: [], success: reads });
    const current = batch.map((_, index) => rangeResult(read, index)[0]);
    // What each job is stored as depends on what is stored now (its creation instant).
    const nowMs = clock.nowMs();
    const toStore: Planned[] = batch.map((job, index) => {
      const spec = withCreationTime(job.spec, current[index], nowMs);
      return { spec, text: serializeJobSpec(spec) };
    });
    const compare: CompareSpec[] = [];
    const changed = new Set<number>();
    toStore.forEach((job, index) => {
      const kv = current[index];
      if (kv !== undefined && kv.value.toString() === job.text) return;
      changed.add(index);
      const key = jobKey(job.spec.name);
      compare.push(kv === undefined
        ? { key, target: 'Create', result: 'Equal', value: 0 }
        : { key, target: 'Mod', result: 'Equal', value: revisionOf(kv.mod_revision, 'mod_revision') });
    });
    let rev = 0;
    if (changed.size > 0) {
      const success = [...changed].map((index) => putOp(jobKey((toStore[index] as Planned).spec.name), (toStore[index] as Planned).text));
      const outcome = await runTxn(client, { compare, success });
      if (!outcome.succeeded) continue;
      rev = outcome.revision;
    }
    return toStore.map((job, index) => {
      const kv = current[index];
      const isChanged = changed.has(index);
      const base = kv === undefined
        ? { createRevision: rev, modRevision: rev, version: 1 }
        : {
          createRevision: revisionOf(kv.create_revision, 'create_revision'),
          modRevision: isChanged ? rev : revisionOf(kv.mod_revision, 'mod_revision'),
          version: revisionOf(kv.version, 'version') + (isChanged ? 1 : 0),
        };
      return {
        name: job.spec.name,
        created: kv === undefined,
        unchanged: !isChanged,
        job: { name: job.spec.name, spec: job.spec, ...base },
      };
    });
  }
  const names = batch.slice(0, 3).map((job) => job.spec.name).join(', ');
  throw new ApiError('conflict',
    `jobs kept changing while applying (${names}${batch.length > 3 ? ', …' : ''}); apply again`);
}
