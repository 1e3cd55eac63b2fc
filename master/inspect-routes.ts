import type { Etcd3, IKeyValue } from 'etcd3';
import type { Clock } from '../shared/clock.js';
import { randomUUID } from 'node:crypto';
import { jobKey, runsPrefix, slotId, validateJobName } from '../shared/keys.js';
import {
  decodeRunRecord,
  isLiveState,
  readLocks,
  readLockTimeline,
  readWorkers,
  type LockOwnership,
  type RunRecord,
  type Versioned,
} from '../shared/history/index.js';
import { CONTROL_REQUEST_TTL_SECONDS, runNowKey, type RunNowRequest } from './control-keys.js';
import { ApiError } from './errors.js';
import { ok, type RequestContext, type Route, type RouteResult } from './http-server.js';
import { revisionOf, revisionQuery } from './job-routes.js';
import { FOLLOW_STREAMS_MAX, followRunOutput, reserveFollowStream } from './log-stream.js';

/** History pages are bounded: the default and the most one request may ask for. */
const HISTORY_LIMIT_DEFAULT = 50;
const HISTORY_LIMIT_MAX = 10_000;

export interface RunView extends Omit<RunRecord, 'outputTail'> {
  readonly key: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly outputBytes: number;
}

function jobName(context: RequestContext): string {
  const name = context.params['name'] ?? '';
  const check = validateJobName(name);
  if (!check.ok) throw new ApiError('invalid-request', check.reason, [{ field: 'name', message: check.reason }]);
  return name;
}

function runView(run: Versioned<RunRecord>): RunView {
  const { outputTail, ...rest } = run.value;
  return {
    ...rest,
    key: run.key,
    createRevision: run.createRevision,
    modRevision: run.modRevision,
    outputBytes: outputTail === undefined ? 0 : Buffer.byteLength(outputTail),
  };
}

function versionedRun(kv: IKeyValue, record: RunRecord): Versioned<RunRecord> {
  return {
    key: kv.key.toString(),
    value: record,
    createRevision: revisionOf(kv.create_revision, 'create_revision'),
    modRevision: revisionOf(kv.mod_revision, 'mod_revision'),
    version: revisionOf(kv.version, 'version'),
    leaseId: kv.lease,
  };
}

async function readRuns(
  client: Etcd3,
  job: string,
  rev: number | undefined,
  limit: number,
): Promise<{ revision: number; runs: Versioned<RunRecord>[] }> {
  // Newest first, and only `limit` of them: run keys sort by slot, and each value may carry an
  // output tail of up to 1 MiB, so reading a whole history to show a page would be wasteful.
  const builder = client.getAll().prefix(runsPrefix(job)).sort('Key', 'Descend').limit(limit);
  if (rev !== undefined) builder.revision(rev);
  const res = await builder.exec();
  const runs: Versioned<RunRecord>[] = [];
  for (const kv of res.kvs) {
    const record = decodeRunRecord(kv.value.toString());
    if (record === undefined) continue;
    runs.push(versionedRun(kv, record));
  }
  return { revision: rev ?? revisionOf(res.header.revision, 'revision'), runs };
}

function lockRow(lock: LockOwnership): LockOwnership & { ttlSeconds: number | null } {
  return { ...lock, ttlSeconds: lock.ttlSecondsLeft ?? null };
}

/** Finds one run by slot (ISO), run id (`job@slot#attempt`), or `latest`. */
export async function findRun(
  client: Etcd3,
  job: string,
  run: string | undefined,
  rev?: number,
): Promise<Versioned<RunRecord> | undefined> {
  if (run === undefined || run === '' || run === 'latest') {
    return (await readRuns(client, job, rev, 1)).runs[0];
  }
  const hash = run.indexOf('#');
  const at = run.indexOf('@');
  const suffix = at >= 0 ? run.slice(at + 1, hash >= 0 ? hash : undefined) : run;
  const builder = client.get(`${runsPrefix(job)}${suffix}`);
  if (rev !== undefined) builder.revision(rev);
  const kv = (await builder.exec()).kvs[0];
  const record = kv === undefined ? undefined : decodeRunRecord(kv.value.toString());
  if (kv === undefined || record === undefined) return undefined;
  if (hash >= 0 && record.runId !== run) return undefined;
  return versionedRun(kv, record);
}

async function requireJob(client: Etcd3, job: string): Promise<void> {
  const exists = (await client.get(jobKey(job)).exec()).kvs.length > 0;
  if (!exists) throw new ApiError('job-not-found', `job ${JSON.stringify(job)} not found`);
}

/** Writes a control request bound to a short lease, so an unanswered one expires by itself. */
async function writeControl(client: Etcd3, key: string, value: RunNowRequest): Promise<number> {
  const lease = client.lease(CONTROL_REQUEST_TTL_SECONDS, { autoKeepAlive: false });
  const leaseId = await lease.grant();
  const res = await client.if(key, 'Create', '==', 0).then(client.put(key).value(JSON.stringify(value)).lease(leaseId)).commit();
  lease.release();
  if (!res.succeeded) throw new ApiError('conflict', `request ${key} already exists`);
  return revisionOf(res.header.revision, 'revision');
}

async function listWorkers(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  // ?rev=: workers and their runs as they were then (lease TTLs are known only now).
  const rev = revisionQuery(context);
  const at = rev === undefined ? {} : { revision: rev };
  const [registered, locks] = await Promise.all([readWorkers(client, at), readLocks(client, at)]);
  const ttls = new Map<string, number>();
  await Promise.all(registered.workers.map(async (w) => {
    if (w.leaseId === '0' || rev !== undefined) return;
    ttls.set(w.leaseId, Number((await client.leaseClient.leaseTimeToLive({ ID: w.leaseId })).TTL));
  }));
  const running = new Map<string, string[]>();
  for (const lock of locks.locks) running.set(lock.worker, [...(running.get(lock.worker) ?? []), lock.runId]);
  const list = registered.workers.map((w) => ({
    id: w.value.id,
    tags: w.value.tags,
    hostname: w.value.hostname,
    pid: w.value.pid,
    startedAt: new Date(w.value.startedAtMs).toISOString(),
    leaseId: w.leaseId,
    ttlSeconds: ttls.get(w.leaseId) ?? null,
    running: running.get(w.value.id) ?? [],
  }));
  return ok({ revision: registered.revision, workers: list });
}

async function listLocks(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const rev = revisionQuery(context);
  const view = await readLocks(client, rev === undefined ? {} : { revision: rev });
  return ok({ revision: view.revision, locks: view.locks.map(lockRow) });
}

async function jobHistory(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const job = jobName(context);
  const limitRaw = context.query.get('limit');
  const limit = limitRaw === null ? HISTORY_LIMIT_DEFAULT : Number(limitRaw);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > HISTORY_LIMIT_MAX) {
    throw new ApiError('invalid-request', `limit must be an integer from 1 to ${HISTORY_LIMIT_MAX}`);
  }
  const rev = revisionQuery(context);
  const result = await readRuns(client, job, rev, limit);
  if (result.runs.length === 0) {
    const builder = client.get(jobKey(job));
    if (rev !== undefined) builder.revision(rev);
    if ((await builder.exec()).kvs.length === 0) {
      throw new ApiError('job-not-found', `job ${JSON.stringify(job)} not found${rev === undefined ? '' : ` at revision ${rev}`}`);
    }
  }
  return ok({ job, revision: result.revision, runs: result.runs.map(runView) });
}

async function getRun(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const job = jobName(context);
  const found = await findRun(client, job, context.params['run'], revisionQuery(context));
  if (found === undefined) throw new ApiError('run-not-found', `no run ${context.params['run'] ?? ''} of job ${job}`);
  return ok({ run: { ...runView(found), outputTail: found.value.outputTail ?? '' } });
}

async function runLogs(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const job = jobName(context);
  const runParam = context.query.get('run') ?? undefined;
  const found = await findRun(client, job, runParam);
  if (found === undefined) {
    throw new ApiError('run-not-found', runParam === undefined ? `job ${job} has no runs yet` : `no run ${runParam} of job ${job}`);
  }
  const follow = context.query.get('follow') === '1' || context.query.get('follow') === 'true';
  const isFollowing = follow && isLiveState(found.value.state);
  if (isFollowing && !reserveFollowStream()) {
    throw new ApiError('busy', `too many log streams open (${FOLLOW_STREAMS_MAX}); try again later`);
  }
  context.response.writeHead(200, {
    'content-type': 'text/plain; charset=utf-8',
    'x-etcron-run-id': found.value.runId,
    'x-etcron-run-state': found.value.state,
    'cache-control': 'no-store',
  });
  if (!isFollowing) {
    context.response.end(found.value.outputTail ?? '');
    return 'streamed';
  }
  await followRunOutput(client, found, context, clock);
  return 'streamed';
}

async function lockTimeline(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const job = jobName(context);
  const from = revisionQuery(context, 'from');
  const to = revisionQuery(context, 'to');
  const view = await readLockTimeline(client, job, {
    ...(from === undefined ? {} : { fromRevision: from }),
    ...(to === undefined ? {} : { toRevision: to }),
  });
  return ok({ job, ...view });
}

async function requestRunNow(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const job = jobName(context);
  await requireJob(client, job);
  const requestedAtMs = clock.nowMs();
  const requestId = randomUUID();
  const request: RunNowRequest = { job, requestId, slot: slotId(requestedAtMs), requestedAtMs };
  const revision = await writeControl(client, runNowKey(job, requestId), request);
  context.log.info({ job, slot: request.slot, rev: revision }, 'run now requested');
  return ok({ requested: request, revision }, 202);
}

/**
 * Kill deletes the run's lock key: its worker watches locks and treats a delete it did not make
 * as a kill (process group SIGTERM, grace, SIGKILL; run recorded `killed`). Each delete compares
 * the lock's mod revision, so a lock taken again by a newer run in between is left alone.
 */
async function killRuns(client: Etcd3, clock: Clock, context: RequestContext): Promise<RouteResult> {
  const job = jobName(context);
  await requireJob(client, job);
  const target = context.query.get('run') ?? undefined;
  const live = (await readLocks(client, { job })).locks;
  const matching = live.filter((l) => target === undefined || l.runId === target || l.slot === target);
  if (target !== undefined && matching.length === 0) {
    throw new ApiError('run-not-found', `no live run ${target} of job ${job}`);
  }
  const killed: LockOwnership[] = [];
  for (const lock of matching) {
    const res = await client.if(lock.key, 'Mod', '==', lock.modRevision).then(client.delete().key(lock.key)).commit();
    if (res.succeeded) killed.push(lock);
  }
  context.log.info({ job, run: target, killed: killed.length }, 'kill requested');
  return ok({ job, killed: killed.map(lockRow) });
}

export function inspectRoutes(client: Etcd3, clock: Clock): Route[] {
  return [
    { method: 'GET', path: '/v1/workers', handler: (context) => listWorkers(client, clock, context) },
    { method: 'GET', path: '/v1/locks', handler: (context) => listLocks(client, clock, context) },
    { method: 'GET', path: '/v1/jobs/:name/history', handler: (context) => jobHistory(client, clock, context) },
    { method: 'GET', path: '/v1/jobs/:name/runs/:run', handler: (context) => getRun(client, clock, context) },
    { method: 'GET', path: '/v1/jobs/:name/logs', handler: (context) => runLogs(client, clock, context) },
    { method: 'GET', path: '/v1/jobs/:name/timeline', handler: (context) => lockTimeline(client, clock, context) },
    { method: 'POST', path: '/v1/jobs/:name/run', handler: (context) => requestRunNow(client, clock, context) },
    { method: 'POST', path: '/v1/jobs/:name/kill', handler: (context) => killRuns(client, clock, context) },
  ];
}
