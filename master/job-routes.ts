import type { Etcd3, IKeyValue } from 'etcd3';
import { JOBS_PREFIX, RETRIES_PREFIX, alertsPrefix, jobKey, prefixEnd, validateJobName } from '../shared/keys.js';
import { rangePages } from '../shared/etcd/range-pages.js';
import { purgeHistory } from './housekeeping/trim.js';
import {
  deserializeJobSpec,
  parseJobSpec,
  serializeJobSpec,
  formatJobSpecIssues,
  type JobSpec,
} from '../shared/job/index.js';
import { assertSafeInteger } from '../shared/assert.js';
import { ApiError } from './errors.js';
import { ok, type RequestContext, type Route, type RouteResult } from './http-server.js';
import { applyJobs } from './job-apply-batch.js';
import { withCreationTime } from './job-created-at.js';
import type { Clock } from '../shared/clock.js';

/** How often pause/resume re-read and retry when another writer changed the job in between. */
const READ_MODIFY_WRITE_ATTEMPTS_MAX = 5;
const JOB_LIST_PAGE_KEYS = 1_000;
/** A million jobs: far past what one scheduler runs, so only a bound on the loop. */
const JOB_LIST_PAGES_MAX = 1_000;

/** A stored job as the API shows it: the spec plus the key's revisions (for compare-and-set). */
export interface JobView {
  readonly name: string;
  readonly spec: JobSpec | null;
  /** Set when the stored value no longer parses (written by hand or an older version). */
  readonly invalid?: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

export function revisionOf(value: string, what: string): number {
  const n = Number(value);
  assertSafeInteger(n, what);
  return n;
}

/**
 * A stored job with its revisions. Listing skips full validation (compiling every schedule costs
 * about half a millisecond a job, seconds for 10,000 jobs): values were validated when written,
 * and a value that is not even a JSON object is still reported as invalid.
 */
export function jobView(kv: IKeyValue, isValidated = true): JobView {
  const name = kv.key.toString().slice(JOBS_PREFIX.length);
  const parsed = isValidated ? deserializeJobSpec(kv.value.toString()) : parseStoredJson(kv.value.toString());
  const base = {
    name,
    createRevision: revisionOf(kv.create_revision, 'create_revision'),
    modRevision: revisionOf(kv.mod_revision, 'mod_revision'),
    version: revisionOf(kv.version, 'version'),
  };
  return parsed.ok
    ? { ...base, spec: parsed.spec }
    : { ...base, spec: null, invalid: formatJobSpecIssues(parsed.errors) };
}

function parseStoredJson(text: string): { ok: true; spec: JobSpec } | { ok: false; errors: { field: string; reason: string }[] } {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { schedule?: unknown }).schedule === 'string') {
      return { ok: true, spec: value as JobSpec };
    }
    return { ok: false, errors: [{ field: '(root)', reason: 'not a job spec object' }] };
  } catch {
    return { ok: false, errors: [{ field: '(root)', reason: 'not JSON' }] };
  }
}

/** Validates a body into a spec, or throws 400 naming every bad field; nothing is written. */
export function specFromBody(body: unknown, nameFromPath?: string): JobSpec {
  let input = body;
  if (nameFromPath !== undefined && typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const record = body as Record<string, unknown>;
    if (record['name'] === undefined) input = { ...record, name: nameFromPath };
    else if (record['name'] !== nameFromPath) {
      throw new ApiError('invalid-spec', `name: ${JSON.stringify(record['name'])} differs from the job in the path`, [
        { field: 'name', message: 'differs from the job name in the path' },
      ]);
    }
  }
  const parsed = parseJobSpec(input);
  if (!parsed.ok) {
    throw new ApiError(
      'invalid-spec',
      `invalid job spec: ${parsed.errors.map((e) => `${e.field}: ${e.reason}`).join('; ')}`,
      parsed.errors.map((e) => ({ field: e.field, message: e.reason })),
    );
  }
  return parsed.spec;
}

function nameParam(context: RequestContext): string {
  const name = context.params['name'] ?? '';
  const check = validateJobName(name);
  if (!check.ok) throw new ApiError('invalid-request', check.reason, [{ field: 'name', message: check.reason }]);
  return name;
}

/** `?rev=N`: a positive safe integer, or absent for the latest revision. */
export function revisionQuery(context: RequestContext, name = 'rev'): number | undefined {
  const raw = context.query.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n <= 0) {
    throw new ApiError('invalid-request', `${name} must be a positive integer revision (got ${JSON.stringify(raw)})`);
  }
  return n;
}

async function readJob(client: Etcd3, name: string, rev?: number): Promise<IKeyValue | undefined> {
  const builder = client.get(jobKey(name));
  if (rev !== undefined) builder.revision(rev);
  const res = await builder.exec();
  return res.kvs[0];
}

async function createJob(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const spec = withCreationTime(specFromBody(context.body), undefined, clock.nowMs());
  const key = jobKey(spec.name);
  // create_revision == 0: of two concurrent creates exactly one wins; the other learns it lost.
  const res = await client
    .if(key, 'Create', '==', 0)
    .then(client.put(key).value(serializeJobSpec(spec)))
    .else(client.get(key))
    .commit();
  if (!res.succeeded) throw new ApiError('job-exists', `job ${JSON.stringify(spec.name)} already exists`);
  const rev = revisionOf(res.header.revision, 'revision');
  context.log.info({ job: spec.name, rev }, 'job created');
  return ok({ job: { name: spec.name, spec, createRevision: rev, modRevision: rev, version: 1 }, created: true }, 201);
}

/**
 * Apply: create or replace. The write compares on the mod_revision read just before (or on the
 * caller's `?modRevision=`), so a concurrent edit is reported instead of silently overwritten.
 */
async function applyJob(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const name = nameParam(context);
  const input = specFromBody(context.body, name);
  const expected = revisionQuery(context, 'modRevision');
  const key = jobKey(name);
  const current = await readJob(client, name);
  const spec = withCreationTime(input, current, clock.nowMs());
  const currentModRevision = current === undefined ? 0 : revisionOf(current.mod_revision, 'mod_revision');
  if (expected !== undefined && expected !== currentModRevision) {
    throw new ApiError('conflict', `job ${name} is at mod revision ${currentModRevision}, not ${expected}`);
  }
  const text = serializeJobSpec(spec);
  if (current !== undefined && current.value.toString() === text) {
    return ok({ job: jobView(current), created: false, unchanged: true });
  }
  const txn = current === undefined
    ? client.if(key, 'Create', '==', 0)
    : client.if(key, 'Mod', '==', currentModRevision);
  const res = await txn.then(client.put(key).value(text)).commit();
  if (!res.succeeded) {
    throw new ApiError('conflict', `job ${name} changed while applying; read it again and retry`);
  }
  const rev = revisionOf(res.header.revision, 'revision');
  context.log.info({ job: name, rev, created: current === undefined }, 'job applied');
  const after = await readJob(client, name, rev);
  const view = after === undefined ? undefined : jobView(after);
  return ok({ job: view ?? null, created: current === undefined, unchanged: false }, current === undefined ? 201 : 200);
}

async function listJobs(client: Etcd3, context: RequestContext): Promise<RouteResult> {
  // Pages of 1,000 definitions at one revision: 10,000 jobs are about 4 MB, and no single answer
  // should be (gRPC clients refuse 4 MiB by default; etcd's own answers are unbounded).
  const jobs: ReturnType<typeof jobView>[] = [];
  let revision = 0;
  const pages = rangePages(client, {
    key: Buffer.from(JOBS_PREFIX), rangeEnd: prefixEnd(JOBS_PREFIX), pageKeys: JOB_LIST_PAGE_KEYS, pagesMax: JOB_LIST_PAGES_MAX,
  });
  for await (const page of pages) {
    revision = page.revision;
    for (const kv of page.kvs) jobs.push(jobView(kv, false));
  }
  return ok({ revision, jobs });
}

async function getJob(client: Etcd3, context: RequestContext): Promise<RouteResult> {
  const name = nameParam(context);
  const kv = await readJob(client, name, revisionQuery(context));
  if (kv === undefined) throw new ApiError('job-not-found', `job ${JSON.stringify(name)} not found`);
  return ok({ job: jobView(kv) });
}

async function removeJob(client: Etcd3, context: RequestContext): Promise<RouteResult> {
  const name = nameParam(context);
  const expected = revisionQuery(context, 'modRevision');
  const key = jobKey(name);
  const txn = expected === undefined
    ? client.if(key, 'Create', '>', 0)
    : client.if(key, 'Mod', '==', expected);
  // Its pending retries go with it, in the same txn: no worker may start an attempt of a job
  // that no longer exists. So do its alert deliveries (a pending one is not sent any more).
  const res = await txn
    .then(client.delete().key(key), client.delete().prefix(`${RETRIES_PREFIX}${name}/`), client.delete().prefix(alertsPrefix(name)))
    .else(client.get(key))
    .commit();
  if (!res.succeeded) {
    const exists = (res.responses[0]?.response_range.kvs.length ?? 0) > 0;
    if (!exists) throw new ApiError('job-not-found', `job ${JSON.stringify(name)} not found`);
    throw new ApiError('conflict', `job ${name} changed since mod revision ${expected ?? 0}`);
  }
  const revision = revisionOf(res.header.revision, 'revision');
  // Its history goes too (it stays readable at earlier revisions until compaction).
  const purged = await purgeHistory(client, name).catch((err: unknown) => {
    context.log.warn({ err, job: name }, 'history of a deleted job not purged');
    return 0;
  });
  context.log.info({ job: name, rev: revision, purged }, 'job deleted');
  return ok({ deleted: name, revision, purgedRuns: purged });
}

async function setJobPaused(client: Etcd3, context: RequestContext, paused: boolean): Promise<RouteResult> {
  const name = nameParam(context);
  const key = jobKey(name);
  for (let attempt = 0; attempt < READ_MODIFY_WRITE_ATTEMPTS_MAX; attempt++) {
    const kv = await readJob(client, name);
    if (kv === undefined) throw new ApiError('job-not-found', `job ${JSON.stringify(name)} not found`);
    const view = jobView(kv);
    if (view.spec === null) throw new ApiError('invalid-spec', `stored job ${name} is invalid: ${view.invalid ?? ''}`);
    if (view.spec.paused === paused) return ok({ job: view, unchanged: true });
    const spec: JobSpec = { ...view.spec, paused };
    const res = await client
      .if(key, 'Mod', '==', view.modRevision)
      .then(client.put(key).value(serializeJobSpec(spec)))
      .commit();
    if (res.succeeded) {
      const rev = revisionOf(res.header.revision, 'revision');
      context.log.info({ job: name, rev, paused }, paused ? 'job paused' : 'job resumed');
      return ok({ job: { ...view, spec, modRevision: rev, version: view.version + 1 }, unchanged: false });
    }
  }
  throw new ApiError('conflict', `job ${name} kept changing; try again`);
}

export function jobRoutes(client: Etcd3, clock: Clock): Route[] {
  return [
    { method: 'GET', path: '/v1/jobs', handler: (context) => listJobs(client, context) },
    { method: 'POST', path: '/v1/jobs', handler: (context) => createJob(client, clock, context) },
    { method: 'GET', path: '/v1/jobs/:name', handler: (context) => getJob(client, context) },
    { method: 'PUT', path: '/v1/jobs/:name', handler: (context) => applyJob(client, clock, context) },
    { method: 'POST', path: '/v1/apply', handler: (context) => applyJobs(client, clock, context) },
    { method: 'DELETE', path: '/v1/jobs/:name', handler: (context) => removeJob(client, context) },
    { method: 'POST', path: '/v1/jobs/:name/pause', handler: (context) => setJobPaused(client, context, true) },
    { method: 'POST', path: '/v1/jobs/:name/resume', handler: (context) => setJobPaused(client, context, false) },
  ];
}
