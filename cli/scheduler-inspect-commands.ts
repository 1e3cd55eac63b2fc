import type { Command } from 'commander';
import { action, apiClient, withClientOptions, type ClientFlags } from './scheduler-common.js';
import { printJson, renderTable } from './scheduler-format.js';

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

  withClientOptions(program.command('status').description('the master answering, the elected leader and the store revision'))
    .action(action(async (flags: ClientFlags) => {
      const result = (await apiClient(flags).get('/v1/status')) as {
        master: string; isLeader: boolean; leader: { id?: string; api?: string } | null; revision: number;
      };
      if (flags.output === 'json') return printJson(result);
      process.stdout.write(renderTable(
        ['MASTER', 'IS_LEADER', 'LEADER', 'LEADER_API', 'REVISION'],
        [[result.master, result.isLeader, result.leader?.id, result.leader?.api, result.revision]],
      ));
    }));
}
