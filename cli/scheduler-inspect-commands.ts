import type { Command } from 'commander';
import { action, apiClient, withClientOptions, type ClientFlags } from './scheduler-common.js';
import { durationText, printJson, renderTable, shortTime } from './scheduler-format.js';
import type { MasterListing } from './scheduler-api-client.js';

interface LockRow {
  readonly job: string;
  readonly slot: string;
  readonly runId: string;
  readonly worker: string;
  readonly leaseId: string;
  readonly fence: number;
  readonly modRevision: number;
  readonly ttlSeconds: number | null;
}

interface WorkerRow {
  readonly id: string;
  readonly tags: readonly string[];
  readonly hostname: string | null;
  readonly pid: number | null;
  readonly leaseId: string;
  readonly ttlSeconds: number | null;
  readonly running: readonly string[];
}

const leaseHex = (id: string): string => (id === '0' ? '-' : BigInt(id).toString(16));

export function registerInspectCommands(program: Command): void {
  withClientOptions(program.command('locks').description('every run lock: owner worker, lease, TTL left and fencing token'))
    .option('--rev <n>', 'locks as they stood at store revision N (TTL is only known for now)')
    .action(action(async (flags: { rev?: string } & ClientFlags) => {
      const query = flags.rev === undefined ? '' : `?rev=${encodeURIComponent(flags.rev)}`;
      const result = (await apiClient(flags).get(`/v1/locks${query}`)) as { revision: number; locks: LockRow[] };
      if (flags.output === 'json') return printJson(result);
      process.stdout.write(`# locks at revision ${result.revision}\n`);
      process.stdout.write(renderTable(
        ['JOB', 'SLOT', 'WORKER', 'LEASE', 'TTL', 'FENCE', 'RUN'],
        result.locks.map((l) => [
          l.job, l.slot, l.worker, leaseHex(l.leaseId), l.ttlSeconds === null ? null : `${l.ttlSeconds}s`, l.fence, l.runId,
        ]),
      ));
    }));

  withClientOptions(program.command('workers').description('live workers with their tags and running jobs'))
    .action(action(async (flags: ClientFlags) => {
      const result = (await apiClient(flags).get('/v1/workers')) as { revision: number; workers: WorkerRow[] };
      if (flags.output === 'json') return printJson(result);
      process.stdout.write(renderTable(
        ['ID', 'TAGS', 'HOST', 'PID', 'LEASE', 'TTL', 'RUNNING'],
        result.workers.map((w) => [
          w.id, w.tags.join(','), w.hostname, w.pid, leaseHex(w.leaseId),
          w.ttlSeconds === null ? null : `${w.ttlSeconds}s`, w.running.join(','),
        ]),
      ));
    }));

  withClientOptions(program.command('status').description('the master answering, the elected leader, the store revision, housekeeping health and every live master'))
    .action(action(async (flags: ClientFlags) => {
      const client = apiClient(flags);
      const result = (await client.get('/v1/status')) as StatusView;
      // Housekeeping runs on the leader: a standby's answer is completed from the leader's own.
      if (!result.isLeader && result.leader?.api !== undefined) {
        const fromLeader = await client.getFrom(result.leader.api, '/v1/status')
          .then((answer) => (answer as StatusView).housekeeping ?? null, () => null);
        result.housekeeping = fromLeader;
      }
      const masters = (await client.masters()) ?? null;
      if (flags.output === 'json') return printJson({ ...result, masters });
      process.stdout.write(renderTable(
        ['MASTER', 'IS_LEADER', 'LEADER', 'LEADER_API', 'REVISION', 'HOUSEKEEPING'],
        [[result.master, result.isLeader, result.leader?.id, result.leader?.api, result.revision,
          housekeepingText(result.housekeeping ?? null)]],
      ));
      process.stdout.write('\n');
      process.stdout.write(masters === null
        ? 'masters: not listed (the master answering has no /v1/masters)\n'
        : renderTable(['ID', 'API', 'ROLE', 'SINCE'], masters.map(masterRow)));
    }));
}

/** A leader since its term began; a standby since it started. */
function masterRow(m: MasterListing): (string | null)[] {
  const since = m.isLeader ? (m.leaderSince ?? m.startedAt) : m.startedAt;
  return [m.id, m.apiUrl, m.isLeader ? 'leader' : 'standby', `${shortTime(Date.parse(since))} (${durationText(Date.parse(since), Date.now())} ago)`];
}

interface HousekeepingView {
  readonly state: string;
  readonly startAttempts: number;
  readonly lastError: string | null;
  readonly lastPassAtMs: number | null;
  readonly failingPasses: number;
}

interface StatusView {
  master: string;
  isLeader: boolean;
  leader: { id?: string; api?: string } | null;
  revision: number;
  housekeeping?: HousekeepingView | null;
}

function housekeepingText(health: HousekeepingView | null): string {
  if (health === null) return 'unknown';
  const ago = health.lastPassAtMs === null ? 'no pass yet' : `last pass ${durationText(health.lastPassAtMs, Date.now())} ago`;
  const failing = health.failingPasses > 0 ? `, ${health.failingPasses} failing passes` : '';
  const error = health.lastError !== null && health.state !== 'running' ? `: ${health.lastError}` : '';
  return `${health.state} (${ago}${failing})${error}`;
}
