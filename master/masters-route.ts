import type { Etcd3 } from 'etcd3';
import { MASTERS_PREFIX } from '../shared/keys.js';
import { parseJsonObject } from '../shared/json.js';
import { readLeader } from './election.js';
import { ok, type Route } from './http-server.js';
import { revisionOf } from './job-routes.js';

/** One live master as GET /v1/masters lists it. */
export interface MasterView {
  readonly id: string;
  readonly apiUrl: string;
  readonly isLeader: boolean;
  readonly startedAt: string;
  /** When the leader's current term began; null for a standby. */
  readonly leaderSince: string | null;
  readonly hostname: string | null;
  readonly pid: number | null;
}

/**
 * GET /v1/masters: every registered master (a key under /cron/masters/ exists only while its
 * master's lease lives), with the one the election says leads marked. Clients discover the other
 * masters from here.
 */
export function mastersRoute(client: Etcd3, electionPrefix: string): Route {
  return {
    method: 'GET',
    path: '/v1/masters',
    handler: async () => {
      const res = await client.getAll().prefix(MASTERS_PREFIX).sort('Key', 'Ascend').exec();
      // The election, not the registration, decides who leads: a registration is only an announcement.
      const leader = await readLeader(client, electionPrefix);
      const leaderId = leader === undefined ? undefined : idOfCampaignValue(leader.value);
      const masters = res.kvs.flatMap((kv) => {
        const view = masterView(kv.value.toString(), leaderId);
        return view === undefined ? [] : [view];
      });
      return ok({ revision: revisionOf(res.header.revision, 'revision'), masters });
    },
  };
}

function masterView(text: string, leaderId: string | undefined): MasterView | undefined {
  const v = parseJsonObject(text);
  if (v === undefined) return undefined;
  if (typeof v['id'] !== 'string' || typeof v['apiUrl'] !== 'string' || typeof v['startedAtMs'] !== 'number') {
    return undefined;
  }
  const isLeader = v['id'] === leaderId;
  const leaderSinceMs = v['leaderSinceMs'];
  return {
    id: v['id'],
    apiUrl: v['apiUrl'],
    isLeader,
    startedAt: new Date(v['startedAtMs']).toISOString(),
    leaderSince: isLeader && typeof leaderSinceMs === 'number' ? new Date(leaderSinceMs).toISOString() : null,
    hostname: typeof v['hostname'] === 'string' ? v['hostname'] : null,
    pid: typeof v['pid'] === 'number' ? v['pid'] : null,
  };
}

function idOfCampaignValue(value: string): string | undefined {
  try {
    const parsed = JSON.parse(value) as unknown;
    if (typeof parsed === 'object' && parsed !== null) {
      const id = (parsed as Record<string, unknown>)['id'];
      return typeof id === 'string' ? id : undefined;
    }
  } catch {
    // A campaign key written by something else: no master id in it.
  }
  return undefined;
}
