import type { Etcd3 } from 'etcd3';
import { alertsPrefix, jobKey, prefixEnd, validateJobName } from '../shared/keys.js';
import { decodeAlertRecord } from '../shared/history/alerts.js';
import { ApiError } from './errors.js';
import { ok, type RequestContext, type Route, type RouteResult } from './http-server.js';
import { revisionOf } from './job-routes.js';

const ALERTS_LIMIT_MAX = 100;

/** `GET /v1/jobs/:name/alerts`: a job's alert deliveries, newest first, each try listed. */
async function jobAlerts(client: Etcd3, context: RequestContext): Promise<RouteResult> {
  const job = context.params['name'] ?? '';
  const check = validateJobName(job);
  if (!check.ok) throw new ApiError('invalid-request', check.reason);
  const prefix = alertsPrefix(job);
  const response = await client.kv.range({
    key: Buffer.from(prefix), range_end: prefixEnd(prefix), sort_target: 'Key', sort_order: 'Descend', limit: ALERTS_LIMIT_MAX,
  });
  if (response.kvs.length === 0 && (await client.get(jobKey(job)).exec()).kvs.length === 0) {
    throw new ApiError('job-not-found', `job ${JSON.stringify(job)} not found`);
  }
  const alerts = response.kvs.flatMap((kv) => {
    const record = decodeAlertRecord(kv.value.toString());
    return record === undefined ? [] : [record];
  });
  return ok({ job, revision: revisionOf(response.header.revision, 'revision'), alerts });
}

export function alertRoutes(client: Etcd3): Route[] {
  return [{ method: 'GET', path: '/v1/jobs/:name/alerts', handler: (context) => jobAlerts(client, context) }];
}
