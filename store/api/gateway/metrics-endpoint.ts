import type { ServerResponse } from 'node:http';
import {
  handledSamples,
  renderFamilies,
  serverMetrics,
  startedSamples,
  type Family,
} from '../../metrics/index.js';
import { ETCD_VERSION } from '../../server/etcd-server.js';
import type { ApiContext } from '../context.js';

const NO_LABELS = {};

function gauge(name: string, help: string, read: () => number): Family {
  return { name, help, type: 'gauge', collect: () => [[NO_LABELS, read()]] };
}

/** etcd's "info" gauges: the value is 1 and the fact is in the label. */
function info(name: string, help: string, label: string, read: () => string): Family {
  return { name, help, type: 'gauge', collect: () => [[{ [label]: read() }, 1]] };
}

function counter(name: string, help: string, read: () => number): Family {
  return { name, help, type: 'counter', collect: () => [[NO_LABELS, read()]] };
}

/** etcd's core metric families; what the server already tracks is read here, at scrape time. */
function families(ctx: ApiContext): Family[] {
  const server = ctx.server;
  const dbSize = (): number => server.backendSizes().sizeBytes;
  return [
    gauge(
      'etcd_server_has_leader',
      'Whether or not a leader exists. 1 is existence, 0 is not.',
      () => (server.leaderId === 0n ? 0 : 1),
    ),
    gauge(
      'etcd_server_is_leader',
      'Whether or not this member is a leader. 1 if is, 0 otherwise.',
      () => (server.leaderId === server.memberId ? 1 : 0),
    ),
    info(
      'etcd_server_id',
      "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
      'server_id',
      () => server.memberId.toString(16),
    ),
    info(
      'etcd_server_version',
      "Which version is running. 1 for 'server_version' label with current version.",
      'server_version',
      () => ETCD_VERSION,
    ),
    info(
      'etcd_cluster_version',
      "Which version is running. 1 for 'cluster_version' label with current cluster version",
      'cluster_version',
      () => ETCD_VERSION.split('.').slice(0, 2).join('.'),
    ),
    gauge(
      'etcd_debugging_mvcc_current_revision',
      'The current revision of store.',
      () => server.kv.currentRev,
    ),
    gauge(
      'etcd_debugging_mvcc_compact_revision',
      'The revision of the last compaction in store.',
      () => server.kv.compactRev,
    ),
    counter('etcd_mvcc_put_total', 'Total number of puts seen by this member.', () => server.kv.operations.puts),
    counter('etcd_mvcc_delete_total', 'Total number of deletes seen by this member.', () => server.kv.operations.deletes),
    gauge('etcd_debugging_mvcc_keys_total', 'Total number of keys.', () => server.kv.liveKeyTotal()),
    gauge('etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', () => server.watchHub.size),
    gauge('etcd_debugging_mvcc_slow_watcher_total', 'Total number of unsynced slow watchers.', () => server.watchHub.slowCount),
    counter(
      'etcd_server_leader_changes_seen_total',
      'The number of leader changes seen.',
      () => serverMetrics.leaderChanges.value,
    ),
    // etcd exports these two as gauges set to the committed and applied raft indexes.
    gauge(
      'etcd_server_proposals_committed_total',
      'The total number of consensus proposals committed.',
      () => server.raftStatus().index,
    ),
    gauge(
      'etcd_server_proposals_applied_total',
      'The total number of consensus proposals applied.',
      () => server.raftStatus().applied,
    ),
    gauge(
      'etcd_server_proposals_pending',
      'The current number of pending proposals to commit.',
      () => server.pendingProposals,
    ),
    counter(
      'etcd_server_proposals_failed_total',
      'The total number of failed proposals seen.',
      () => serverMetrics.proposalsFailed.value,
    ),
    gauge(
      'etcd_mvcc_db_total_size_in_bytes',
      'Total size of the underlying database physically allocated in bytes.',
      dbSize,
    ),
    gauge(
      'etcd_debugging_mvcc_db_total_size_in_bytes',
      'Total size of the underlying database physically allocated in bytes.',
      dbSize,
    ),
    gauge(
      'etcd_mvcc_db_total_size_in_use_in_bytes',
      'Total size of the underlying database logically in use in bytes.',
      () => server.backendSizes().inUseBytes,
    ),
    {
      name: 'etcd_disk_wal_fsync_duration_seconds',
      help: 'The latency distributions of fsync called by WAL.',
      type: 'histogram',
      collect: () => serverMetrics.walFsyncSeconds,
    },
    {
      name: 'etcd_disk_backend_commit_duration_seconds',
      help: 'The latency distributions of commit called by backend.',
      type: 'histogram',
      collect: () => serverMetrics.backendCommitSeconds,
    },
    {
      name: 'grpc_server_started_total',
      help: 'Total number of RPCs started on the server.',
      type: 'counter',
      collect: startedSamples,
    },
    {
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      type: 'counter',
      collect: handledSamples,
    },
    gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', () =>
      process.memoryUsage.rss(),
    ),
    counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
      const usage = process.cpuUsage();
      return (usage.user + usage.system) / 1e6;
    }),
    gauge(
      'process_start_time_seconds',
      'Start time of the process since unix epoch in seconds.',
      () => Math.floor(Date.now() / 1000 - process.uptime()),
    ),
  ];
}

/** GET /metrics in Prometheus' text format 0.0.4, as etcd serves it on the client port. */
export function answerMetrics(ctx: ApiContext, response: ServerResponse): void {
  response.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
  response.end(renderFamilies(families(ctx)));
}
