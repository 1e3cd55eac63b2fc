import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { systemRandom } from '../../shared/random.js';
import { SimpleTokenStore } from '../auth/token-store.js';
import type { JwtTokens } from '../auth/jwt-tokens.js';
import { decodeSnapshotRef, prepareSnapshotDir } from '../snapshot/snapshot-file.js';
import { Lessor } from '../lease/lessor.js';
import { Backend } from '../mvcc/backend.js';
import { StoreError } from '../mvcc/errors.js';
import { MvccStore } from '../mvcc/kv-store.js';
import type { KeyValue, RangeRequest, RangeResult } from '../mvcc/types.js';
import { WatchHub, type WatcherSpec, type WatchHandle } from '../mvcc/watch-hub.js';
import { Raft, newRaftNode } from '../raft/raft-node.js';
import type {
  Entry, HardState, Message, RaftNode, Ready, Snapshot, StepResult,
} from '../raft/types.js';
import type { TlsMaterial } from '../tls/tls-config.js';
import { PeerTransport, type ClusterView } from '../transport/peer-transport.js';
import { MemberChangeError, MembershipTable, decodeMemberChange, encodeMemberChange, type MemberChange } from './membership-table.js';
import type { HashKVResponse, LeaseRenewRequest, LeaseRenewResponse } from '../transport/peer-codec.js';
import { hashKVAt, type PeerToCheck } from './initial-corrupt-check.js';
import { SqliteLogStorage } from '../wal/sqlite-log-storage.js';
import { WalCorruptError, checkWal } from '../wal/wal-check.js';
import { Applier, type AlarmEntry, type ApplyResult } from './apply.js';
import { AutoCompactor, type AutoCompactionConfig } from './auto-compactor.js';
import { ReadIndexQueue } from './read-index-queue.js';
import { decodeEnvelope, encodeEnvelope, requestIdOf, type InternalRequest } from './requests.js';
import { SoloNode } from './solo-node.js';
import { Maintenance, type ReadView } from './maintenance.js';
import { WalSyncer } from './wal-syncer.js';
import { serverMetrics } from '../metrics/server-metrics.js';

export interface MemberInfo {
  readonly id: bigint;
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
  readonly isLearner?: boolean;
}

export interface ServerConfig {
  readonly name: string;
  readonly dataDir: string;
  readonly member: MemberInfo;
  readonly members: readonly MemberInfo[];
  readonly clusterId: bigint;
  readonly listenPeerUrls: readonly string[];
  /** --peer-* TLS material for https:// peer URLs; null when the member has none. */
  readonly peerTls: TlsMaterial | null;
  readonly quotaBackendBytes: number;
  readonly heartbeatMs: number;
  readonly electionMs: number;
  readonly autoCompaction: AutoCompactionConfig | null;
  /** How long an auth token lives unused (--auth-token-ttl); default 5 minutes. */
  readonly authTokenTtlMs?: number;
  /** --auth-token jwt: tokens are signed JWTs instead of simple tokens. */
  readonly jwt?: JwtTokens;
  readonly logger: Logger;
  /** --snapshot-count: applied entries between two trims of the Raft log (which keeps 5,000). */
  readonly snapshotCount?: number;
  /** --pre-vote (default true here): a member asks before it campaigns. */
  readonly preVote?: boolean;
  /** --strict-reconfig-check (default true): refuse changes that would endanger the quorum. */
  readonly strictReconfigCheck?: boolean;
  /** Called once this member's own removal from the cluster is applied: it must stop. */
  readonly onRemoved?: () => void;
  /**
   * Keeps the member out of Raft traffic with its peers until releaseRaft() (it still answers
   * their HashKV): --experimental-initial-corrupt-check compares hashes first.
   */
  readonly holdRaft?: boolean;
}

interface ConfWaiter {
  resolve(): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface Waiter {
  readonly request: InternalRequest;
  resolve(result: ApplyResult): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** How often the leader looks for expired leases (etcd: every 500 ms). */
const LEASE_CHECK_INTERVAL_MS = 500;
/** Leases revoked per check, so that a mass expiry does not stall the loop. */
const LEASE_REVOKES_PER_CHECK = 1000;
/** Keys visited per step of a compaction's row removal (one step per event-loop turn). */
const COMPACTION_KEYS_PER_STEP = 1_000;
/** Raft log entries kept behind the applied index for followers that lag; older ones need a snapshot. */
const LOG_ENTRIES_KEPT = 5000;
/** How often (in applied entries) the log is trimmed by default; --snapshot-count sets it. */
const LOG_COMPACT_EVERY = 1000;
/** etcd refuses new proposals when this many wait. */
export const PENDING_PROPOSALS_MAX = 5000;
/** A Ready of at most this many entries may be fsynced on the main thread (see mayFsyncInline). */
const INLINE_SYNC_MAX_ENTRIES = 8;
/** Raft message size and pipeline depth, as etcd configures its node. */
const MAX_SIZE_PER_MSG_BYTES = 1024 * 1024;
const MAX_INFLIGHT_MSGS = 4096 / 8;

export const ETCD_VERSION = '3.4.23';

/** A typed start-up failure, reported to the operator as one clear line. */
export class DataDirError extends Error {
  override readonly name = 'DataDirError';
}

/**
 * One member of the store: the log (a Raft node), the state machine (MVCC + lessor) and the loop
 * between them. State changes are proposed as entries and applied only once committed and
 * durable. One Ready at a time: its entries and hard state are written (one SQLite transaction),
 * fsynced off the main thread, and only then are its messages sent and its committed entries
 * applied (a second transaction holding the changes and the applied index together).
 */
export class EtcdServer {
  backend: Backend;
  kv: MvccStore;
  lessor: Lessor;
  applier: Applier;
  /** Auth tokens this member knows; kept across snapshots, which replace the applier. */
  readonly tokens: SimpleTokenStore;
  /** Set under --auth-token jwt: Authenticate answers with a JWT, and calls carry JWTs. */
  readonly jwt: JwtTokens | null;
  readonly watchHub: WatchHub;
  /** Snapshot files: written here for followers, received here from the leader. */
  private readonly snapshotDir: string;
  private readonly storage: SqliteLogStorage;
  /** Voters, learners, their peer URLs and the removed IDs, as the log has made them. */
  readonly membership: MembershipTable;
  private readonly confWaiters = new Map<string, ConfWaiter>();
  private nodeReady = false;
  private syncer: WalSyncer;
  private node: RaftNode;
  private transport: PeerTransport | null;
  private reads: ReadIndexQueue;
  /** ServerConfig.holdRaft until releaseRaft(); a transport started meanwhile starts held. */
  private isRaftHeld = false;
  /** Set while a one-member store turns into a Raft group: no Ready is taken meanwhile. */
  private isSwitching = false;
  private readonly waiters = new Map<bigint, Waiter>();
  private proposals: { requestId: bigint; data: Uint8Array }[] = [];
  private readonly requestIdBase: bigint;
  private requestCounter = 0n;
  private drainScheduled = false;
  /** Log entries up to here are known fsynced (0 until this process's first fsync). */
  private durableIndex = 0;
  /** Readies taken but not yet advanced; their continuations run strictly in order. */
  private inflight = 0;
  private lastStep: Promise<void> = Promise.resolve();
  /**
   * A single member's committed entries, durable and not yet applied: the next Ready's
   * transaction applies them (one SQLite commit per batch instead of two), or they are applied
   * alone when there is no next Ready to store.
   */
  private deferredApply: readonly Entry[] = [];
  /** The hard state last written, and to which backend: unchanged fields are not written again. */
  private writtenHardState: { readonly backend: Backend; readonly hardState: HardState } | null =
    null;
  private closed = false;
  private isCompactionScheduled = false;
  /** Open read views; compaction removes no rows while there are any. */
  private compactionHolds = 0;
  private compactionWaiters: (() => void)[] = [];
  /** Hash, HashKV, the Snapshot RPC and Defragment, run in steps. */
  readonly maintenance: Maintenance;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly revoking = new Set<bigint>();
  private readonly compactor: AutoCompactor | null;
  private readonly log: Logger;
  private readonly dbPath: string;
  /** The backend's size after the last applied batch; the quota check reads it, not SQLite. */
  private dbSizeBytes = 0;
  private knownLeader = 0n;
  /** The applied index at the last trim of the Raft log. */
  private logCompactedAt = 0;
  private published = false;
  /** etcd: a request waits at most 5 s + 2 election timeouts. */
  readonly proposalTimeoutMs: number;

  readonly config: ServerConfig;

  constructor(initialConfig: ServerConfig) {
    this.log = initialConfig.logger.child({ component: 'server' });
    this.proposalTimeoutMs = 5000 + 2 * initialConfig.electionMs;
    const memberDir = join(initialConfig.dataDir, 'member');
    prepareDataDir(initialConfig.dataDir, memberDir);
    this.dbPath = join(memberDir, 'etcron.db');
    this.backend = openBackend(this.dbPath);
    // The cluster and member IDs this data dir was created with win over what the flags say: a
    // member that joined an existing cluster got both from the cluster, not from its flags.
    const config = withStoredIdentity(this.backend, initialConfig);
    this.config = config;
    this.isRaftHeld = config.holdRaft === true;
    this.syncer = new WalSyncer(`${this.dbPath}-wal`);
    const minTtl = Math.ceil((1.5 * config.electionMs) / 1000);
    this.lessor = new Lessor(this.backend, minTtl);
    this.kv = new MvccStore(this.backend);
    this.tokens = new SimpleTokenStore(undefined, config.authTokenTtlMs);
    this.jwt = config.jwt ?? null;
    this.applier = this.rebuildStateMachine();
    this.watchHub = new WatchHub(this.kv);
    this.maintenance = new Maintenance(this, this.log.child({ component: 'maintenance' }));
    this.requestIdBase = randomBytes(8).readBigUInt64BE(0) & 0x7fff_ffff_0000_0000n;
    this.membership = new MembershipTable(this.backend, config.members.map((m) => ({ id: m.id, peerUrls: m.peerUrls, isLearner: m.isLearner === true })));
    this.snapshotDir = prepareSnapshotDir(join(memberDir, 'snapshots'));
    this.storage = new SqliteLogStorage(this.backend, () => this.membership.confState(), this.snapshotDir);
    this.replayUnapplied();
    const applied = this.backend.getMetaNumber('applied_index', 0);
    if (config.members.length === 1 && this.membership.list().length === 1) {
      this.node = new SoloNode(config.member.id, {
        term: this.backend.getMetaNumber('term', 1),
        lastIndex: this.storage.lastIndex(),
        applied,
      });
      this.transport = null;
    } else {
      const raft = this.startRaft(applied);
      this.node = raft.node;
      this.transport = raft.transport;
    }
    this.nodeReady = true;
    this.reads = new ReadIndexQueue(this.node, config.member.id, () => this.appliedIndex(), this.proposalTimeoutMs);
    const leaseTimer = setInterval(() => this.expireLeases(), LEASE_CHECK_INTERVAL_MS);
    leaseTimer.unref();
    this.timers.push(leaseTimer);
    this.compactor = config.autoCompaction === null ? null : new AutoCompactor(config.autoCompaction, this, this.log);
    this.drain();
    // A compaction interrupted by a stop goes on where it was.
    this.scheduleCompactionSteps();
    this.log.info({ memberId: config.member.id.toString(16), rev: this.kv.currentRev, term: this.node.status().term, members: config.members.length }, 'member started');
    // etcd logs this once the cluster version is known; etcron serves the 3.4 API from the start.
    this.log.info({ capabilities: ['v3rpc'] }, `enabled capabilities for version ${ETCD_VERSION.split('.').slice(0, 2).join('.')}`);
  }

  /** Starts listening for peers (multi-member clusters only). */
  async listenPeers(): Promise<void> {
    await this.transport?.listen(this.config.listenPeerUrls);
  }

  /** The Raft core, its peer transport and its tick, over this member's log. */
  private startRaft(applied: number): { node: RaftNode; transport: PeerTransport } {
    const config = this.config;
    const node = newRaftNode({
      id: config.member.id,
      electionTicks: Math.max(2, Math.round(config.electionMs / config.heartbeatMs)),
      heartbeatTicks: 1,
      storage: this.storage,
      applied,
      maxSizePerMsgBytes: MAX_SIZE_PER_MSG_BYTES,
      maxInflightMsgs: MAX_INFLIGHT_MSGS,
      preVote: config.preVote ?? true,
      checkQuorum: true,
      random: systemRandom(),
      logger: config.logger.child({ component: 'raft' }),
    });
    const transport = new PeerTransport(
      config.member.id, config.clusterId,
      this.peerAddresses(),
      {
        receive: (m) => this.receive(m), leaseRequest: (r) => this.onLeaseRequest(r), clusterView: () => this.clusterView(),
        hashKV: (revision) => hashKVAt(this.kv, this.maintenance, revision),
      },
      (peer) => this.receive(localMessage('unreachable', peer, config.member.id, false)),
      (peer, failed) => this.receive(localMessage('snap-status', peer, config.member.id, failed)),
      config.logger.child({ component: 'transport' }),
      config.peerTls,
      this.snapshotDir,
    );
    if (this.isRaftHeld) transport.holdRaft();
    // No tick while held: a member cut off from its peers would otherwise campaign (without
    // --pre-vote, with a higher term that unsettles the cluster once the hold ends).
    const tick = setInterval(() => {
      if (this.isRaftHeld) return;
      this.node.tick();
      this.scheduleDrain();
    }, config.heartbeatMs);
    this.timers.push(tick);
    return { node, transport };
  }

  /**
   * A one-member store runs without Raft (SoloNode). Before its first membership change it turns
   * into a Raft group of one, from the same durable log: it waits until no Ready is in flight,
   * starts the core (which elects itself at once), listens on its peer URLs, and waits until the
   * new leader has applied its first entry, after which the core admits a conf change.
   */
  async becomeRaftGroup(): Promise<void> {
    if (!(this.node instanceof SoloNode) || this.isSwitching) return;
    this.isSwitching = true;
    try {
      await pollUntil(() => this.inflight === 0, SWITCH_WAIT_MS, 'the last Ready to finish');
      const applied = this.backend.getMetaNumber('applied_index', 0);
      const raft = this.startRaft(applied);
      this.node = raft.node;
      this.transport = raft.transport;
      this.reads.close(new StoreError('timeout'));
      this.reads = new ReadIndexQueue(this.node, this.config.member.id, () => this.appliedIndex(), this.proposalTimeoutMs);
      this.node.campaign();
      this.log.info({ term: this.node.status().term }, 'a one-member store now runs Raft, for a membership change');
    } finally {
      this.isSwitching = false;
    }
    this.scheduleDrain();
    await this.transport?.listen(this.config.listenPeerUrls);
    const target = this.node.status().lastIndex;
    await pollUntil(() => this.node.status().applied >= target, SWITCH_WAIT_MS, 'the new leader to apply its first entry');
  }

  /** Ends the hold of ServerConfig.holdRaft: Raft messages flow both ways from now on. */
  releaseRaft(): void {
    this.isRaftHeld = false;
    this.transport?.releaseRaft();
    this.scheduleDrain();
  }

  /** The other members and the URL each is dialled at (none for a one-member store). */
  peersToCheck(): PeerToCheck[] {
    return this.peerAddresses();
  }

  /** Asks a peer for its HashKV at `revision` over the peer transport. */
  askPeerHashKV(peer: bigint, revision: number, timeoutMs: number): Promise<HashKVResponse> {
    if (this.transport === null) return Promise.reject(new StoreError('stopped', 'no peer transport'));
    return this.transport.hashKVCall(peer, revision, timeoutMs);
  }

  /** (Re)builds the lease attachments and the applier over the current kv and lessor. */
  private rebuildStateMachine(): Applier {
    for (const kv of this.kv.liveKeys()) {
      if (kv.lease !== 0n && this.lessor.has(kv.lease)) this.lessor.attach(kv.lease, kv.key.toString('latin1'));
    }
    this.kv.setLeaseAttachments(this.lessor);
    return new Applier(this.kv, this.lessor, this.backend, this.tokens);
  }

  /** Entries that were committed and durable but not applied before a crash are applied first. */
  private replayUnapplied(): void {
    const applied = this.backend.getMetaNumber('applied_index', 0);
    const commit = Math.min(this.backend.getMetaNumber('commit', 0), this.storage.lastIndex());
    // A single member commits what it appended; several members may only apply what was committed.
    const upTo = this.membership.list().length === 1 ? this.storage.lastIndex() : commit;
    if (upTo <= applied) return;
    const rows = this.backend.logRange(applied + 1, upTo + 1);
    this.backend.transaction(() => {
      for (const row of rows) this.applyEntry({ index: row.idx, term: row.term, type: row.type === 1 ? 'conf-change' : 'normal', data: row.data });
      this.backend.setMeta('applied_index', upTo);
    });
    this.applier.takeEvents();
  }

  get memberId(): bigint {
    return this.config.member.id;
  }

  get term(): number {
    return this.node.currentTerm();
  }

  get leaderId(): bigint {
    return this.node.status().lead;
  }

  private appliedIndex(): number {
    return this.node.status().applied;
  }

  /** Proposals waiting for their apply (etcd_server_proposals_pending). */
  get pendingProposals(): number {
    return this.waiters.size;
  }

  raftStatus(): { index: number; term: number; applied: number; leader: bigint } {
    const s = this.node.status();
    return { index: s.commit, term: s.term, applied: s.applied, leader: s.lead };
  }

  private receive(message: Message): void {
    if (this.closed) return;
    // A removed member must not disrupt the cluster (its ID is never reused).
    if (this.membership.isRemoved(message.from)) return;
    this.node.step(message);
    this.scheduleDrain(true);
  }

  /** Proposes a state change; resolves once it is committed, applied and durable. */
  propose(request: InternalRequest): Promise<ApplyResult> {
    if (this.closed) return Promise.reject(new StoreError('stopped'));
    if (this.waiters.size >= PENDING_PROPOSALS_MAX) return Promise.reject(new StoreError('too-many-requests'));
    if (this.node.status().lead === 0n) return Promise.reject(new StoreError('no-leader'));
    const requestId = this.requestIdBase | ++this.requestCounter;
    return new Promise<ApplyResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.waiters.delete(requestId)) return;
        serverMetrics.proposalsFailed.inc();
        reject(new StoreError('timeout'));
      }, this.proposalTimeoutMs);
      this.waiters.set(requestId, { resolve, reject, timer, request });
      this.proposals.push({ requestId, data: encodeEnvelope({ requestId, request }) });
      this.scheduleDrain();
    });
  }

  /** Hands the proposals of this event-loop turn to Raft as one message (one append per follower). */
  private flushProposals(): void {
    if (this.proposals.length === 0) return;
    const batch = this.proposals;
    this.proposals = [];
    let result: StepResult;
    if (this.transport === null) {
      result = { ok: true };
      for (const p of batch) if (!this.node.propose(p.data).ok) result = { ok: false, reason: 'proposal-dropped' };
    } else {
      const entries = batch.map((p): Entry => ({ term: 0, index: 0, type: 'normal', data: p.data }));
      result = this.node.step({ ...localMessage('unreachable', this.memberId, this.memberId, false), type: 'prop', from: this.memberId, entries });
    }
    if (result.ok) return;
    for (const p of batch) {
      const waiter = this.waiters.get(p.requestId);
      if (waiter === undefined) continue;
      this.waiters.delete(p.requestId);
      clearTimeout(waiter.timer);
      serverMetrics.proposalsFailed.inc();
      waiter.reject(new StoreError('no-leader'));
    }
  }

  scheduleDrain(isPeerInput = false): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    const run = (): void => {
      this.drainScheduled = false;
      this.forwardProposals();
      this.drain();
    };
    // Client requests of one event-loop turn share one Ready and one fsync. Peer messages arrive
    // a socket read at a time, each read's as one batch: their Ready need not wait for the turn.
    if (isPeerInput) queueMicrotask(run);
    else setImmediate(run);
  }

  /**
   * A follower sends its proposals to the leader now rather than in its next Ready, which waits
   * for the one in flight (an append and its fsync) that a forwarded proposal needs nothing of.
   * The message is the one the Raft core would make (stepFollower: to the leader, term 0).
   */
  private forwardProposals(): void {
    if (this.proposals.length === 0 || this.transport === null || this.closed || this.isSwitching) return;
    const { role, lead } = this.node.status();
    if (role !== 'follower' || lead === 0n || lead === this.memberId) return;
    const entries = this.proposals.map((p): Entry => ({ term: 0, index: 0, type: 'normal', data: p.data }));
    this.proposals = [];
    this.transport.send([{ ...localMessage('unreachable', this.memberId, lead, false), type: 'prop', to: lead, entries }]);
  }

  private drain(): void {
    if (this.closed || this.isSwitching || this.inflight >= this.maxInflight()) return;
    this.flushProposals();
    this.reads.flush();
    if (!this.node.hasReady()) return;
    const ready = this.node.ready();
    if (ready.snapshot !== null) this.installSnapshot(ready.snapshot);
    // A leader's appends and heartbeats may leave before its own write and fsync (Raft thesis
    // §10.2.1): the followers' disks and the leader's then work in parallel. Nothing acts on a
    // commit before the leader's fsync either way: commits come out of the next Ready, and there
    // is one Ready in flight. Everything else waits for the fsync.
    const early = this.node.status().role === 'leader' ? ready.messages.filter((m) => m.type === 'app' || m.type === 'heartbeat') : [];
    const late = early.length === 0 ? ready.messages : ready.messages.filter((m) => m.type !== 'app' && m.type !== 'heartbeat');
    this.inflight++;
    // The peer channel writes to its sockets at once: the appends are on their way before the
    // Ready's own write and fsync start.
    if (early.length > 0) this.transport?.send(early);
    this.store(ready, late);
  }

  /** Writes a Ready (and applies what is already durable), then finishes it after the fsync. */
  private store(ready: Ready, late: readonly Message[]): void {
    if (this.closed) return;
    const firstNew = ready.entries[0];
    // An overwritten suffix is no longer the durable one.
    if (firstNew !== undefined && firstNew.index <= this.durableIndex) this.durableIndex = firstNew.index - 1;
    // Committed entries already on this member's disk need not wait for this Ready's fsync: they
    // are applied in the same transaction that stores the Ready and answered now. Under load every
    // Ready carries new entries, and waiting would add an fsync to every commit.
    const split = this.durablePrefix(ready.committed);
    const store = ready.hardState !== null || ready.entries.length > 0;
    const deferred = this.deferredApply;
    this.deferredApply = [];
    const applies = split > 0 || deferred.length > 0;
    // Heartbeat and ReadIndex rounds carry nothing to store: no transaction for them.
    if (store || applies) {
      const settles = this.backend.transaction(() => {
        const earlier = deferred.length > 0 ? this.applyCommitted(deferred) : [];
        if (store) this.persist(ready);
        if (split === 0) return earlier;
        return earlier.concat(this.applyCommitted(ready.committed.slice(0, split)));
      });
      const hardState = ready.hardState;
      if (hardState !== null) this.writtenHardState = { backend: this.backend, hardState };
      if (applies) this.answerApplied(settles);
    }
    const writtenUpTo = this.storage.lastIndex();
    const durable = !ready.mustSync ? Promise.resolve()
      : (this.mayFsyncInline(ready) ? this.syncer.syncInlineIfQuick() : null) ?? this.syncer.sync();
    const finish = (): void => {
      this.inflight--;
      if (this.closed) return;
      if (split < ready.committed.length) {
        const rest = ready.committed.slice(split);
        if (this.mayDeferApply(ready)) {
          this.applyWithNextReady(ready, rest);
          return;
        }
        this.applyAndAnswer(rest);
      }
      this.node.advance(ready);
      if (ready.softState !== null) this.onSoftState(ready.softState.leader);
      this.reads.answer(ready.readStates);
      this.reads.release();
      this.drain();
    };
    this.lastStep = Promise.all([this.lastStep, durable]).then(
      () => {
        if (ready.mustSync) this.durableIndex = Math.max(this.durableIndex, writtenUpTo);
        if (this.closed) return;
        // Acknowledgements leave (written at once) before the next Ready is stored.
        if (late.length > 0) this.transport?.send(late);
        finish();
      },
      (err: unknown) => {
        // A failed fsync may have dropped pages: going on could acknowledge lost writes.
        this.log.fatal({ err }, 'fsync of the log failed; stopping');
        process.exit(1);
      },
    );
  }

  /**
   * Whether this Ready's fsync may block the loop: a small batch holding every write a client of
   * ours waits for. Then no other request can go on meanwhile, and the thread pool's round trip
   * would only add to the wait; with more writes waiting (a next batch to store, watchers to feed
   * in a busy loop), the loop works while the disk does.
   */
  private mayFsyncInline(ready: Ready): boolean {
    return ready.entries.length <= INLINE_SYNC_MAX_ENTRIES && this.waiters.size <= ready.entries.length;
  }

  /**
   * The Raft core hands out one Ready at a time. A single member's node hands each one over whole,
   * so a second may be written while the first one's fsync runs: the disk then never waits for the
   * apply of the previous batch, and the WAL syncer folds them into at most two fsyncs in flight.
   */
  private maxInflight(): number {
    return this.node instanceof SoloNode ? 2 : 1;
  }

  /**
   * A single member's node hands out the next Ready whatever it has applied, and its advance only
   * counts; the Raft core wants its committed entries applied before it is advanced.
   */
  private mayDeferApply(ready: Ready): boolean {
    return this.node instanceof SoloNode && ready.softState === null;
  }

  /**
   * Finishes a single member's Ready whose entries are now durable: they are applied in the
   * transaction that stores the next Ready, if drain() takes one now, else alone. Its reads are
   * answered after that.
   */
  private applyWithNextReady(ready: Ready, committed: readonly Entry[]): void {
    this.node.advance(ready);
    this.deferredApply = committed;
    this.drain();
    if (this.deferredApply.length > 0) {
      const alone = this.deferredApply;
      this.deferredApply = [];
      this.applyAndAnswer(alone);
    }
    this.reads.answer(ready.readStates);
    this.reads.release();
  }

  /** How many of `committed` (in index order) are already durable in this member's log. */
  private durablePrefix(committed: readonly Entry[]): number {
    let n = 0;
    while (n < committed.length && (committed[n] as Entry).index <= this.durableIndex) n++;
    return n;
  }

  /** Applies committed entries in one transaction, then tells watchers and proposers. */
  private applyAndAnswer(committed: readonly Entry[]): void {
    this.answerApplied(this.backend.transaction(() => this.applyCommitted(committed)));
  }

  private answerApplied(settles: readonly (() => void)[]): void {
    // As etcd counts it: the key-value data, not the Raft log (etcd keeps that in its WAL files).
    this.dbSizeBytes = this.backendSizes().sizeBytes;
    this.watchHub.notify(this.applier.takeEvents());
    this.lessor.startTimers(performance.now());
    for (const settle of settles) settle();
    this.scheduleCompactionSteps();
  }

  /**
   * Removes the rows a compaction made unreachable, COMPACTION_KEYS_PER_STEP keys per event-loop
   * turn (etcd: 1,000 keys per batch), so that heartbeats, proposals and reads go on meanwhile.
   */
  private scheduleCompactionSteps(): void {
    if (this.isCompactionScheduled || this.compactionHolds > 0 || this.closed) return;
    if (!this.kv.isCompacting) {
      this.settleCompactionWaiters();
      return;
    }
    this.isCompactionScheduled = true;
    setImmediate(() => {
      this.isCompactionScheduled = false;
      if (this.closed || this.compactionHolds > 0) return;
      this.kv.compactStep(COMPACTION_KEYS_PER_STEP);
      this.scheduleCompactionSteps();
    });
  }

  private settleCompactionWaiters(): void {
    const waiters = this.compactionWaiters;
    this.compactionWaiters = [];
    for (const settle of waiters) settle();
  }

  /** Resolves once no compaction has rows left to remove (at once if none has). */
  compactionSettled(): Promise<void> {
    if (!this.kv.isCompacting || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.compactionWaiters.push(resolve);
      this.scheduleCompactionSteps();
    });
  }

  async openReadView(): Promise<ReadView> {
    while (this.kv.isCompacting && !this.closed) await this.compactionSettled();
    if (this.closed) throw new StoreError('stopped');
    this.compactionHolds++;
    const backend = this.backend;
    let released = false;
    return {
      backend,
      currentRev: this.kv.currentRev,
      compactRev: this.kv.compactRev,
      appliedIndex: backend.getMetaNumber('applied_index', 0),
      leases: backend.allLeases(),
      isOpen: () => !this.closed && this.backend === backend,
      release: () => {
        if (released) return;
        released = true;
        this.compactionHolds--;
        this.scheduleCompactionSteps();
      },
    };
  }

  private persist(ready: Ready): void {
    const hard = ready.hardState;
    if (hard !== null) {
      const last = this.writtenHardState;
      const written = last !== null && last.backend === this.backend ? last.hardState : null;
      if (written?.term !== hard.term) this.backend.setMeta('term', hard.term);
      if (written?.vote !== hard.vote) this.backend.setMeta('vote', hard.vote.toString());
      if (written?.commit !== hard.commit) this.backend.setMeta('commit', hard.commit);
    }
    // New entries replace any conflicting suffix the leader overwrote.
    this.storage.append(ready.entries);
  }

  private applyCommitted(committed: readonly Entry[]): (() => void)[] {
    const settles: (() => void)[] = [];
    let appliedIndex = -1;
    for (const entry of committed) {
      const settle = this.applyEntry(entry);
      if (settle !== null) settles.push(settle);
      appliedIndex = entry.index;
    }
    if (appliedIndex >= 0) {
      this.backend.setMeta('applied_index', appliedIndex);
      if (appliedIndex - this.logCompactedAt >= (this.config.snapshotCount ?? LOG_COMPACT_EVERY) && appliedIndex > LOG_ENTRIES_KEPT) {
        this.storage.compactTo(appliedIndex - LOG_ENTRIES_KEPT);
        this.logCompactedAt = appliedIndex;
      }
    }
    return settles;
  }

  /** Applies one committed entry; returns how to answer its proposer, if it is waiting here. */
  private applyEntry(entry: Entry): (() => void) | null {
    if (entry.type === 'conf-change') return this.applyMemberChange(entry);
    if (entry.data.length === 0) return null;
    const requestId = requestIdOf(entry.data);
    const waiter = this.waiters.get(requestId);
    // The proposer applies the request object it holds; others decode the entry (same bytes).
    const request = waiter?.request ?? decodeEnvelope(entry.data).request;
    const outcome = this.applier.apply(request, entry.index);
    if (waiter === undefined) return null;
    this.waiters.delete(requestId);
    clearTimeout(waiter.timer);
    return outcome.ok ? () => waiter.resolve(outcome.value) : () => waiter.reject(outcome.error);
  }

  /**
   * Replaces the whole state machine with a leader's snapshot (a serialized database), keeping
   * this member's own Raft hard state. The new file is made durable before it replaces the old one.
   */
  private installSnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    this.log.info({ index, term }, 'installing snapshot from leader');
    this.durableIndex = Math.min(this.durableIndex, index); // the old log beyond it is gone
    const hard = this.storage.initialState().hardState;
    // A file received from the leader (already durable), or, from older senders and tests, the
    // database itself in the message.
    const received = decodeSnapshotRef(snapshot.data);
    const temporary = received?.path ?? `${this.dbPath}.snapshot`;
    if (received === null) {
      const fd = openSync(temporary, 'w');
      try {
        writeSync(fd, snapshot.data);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    this.syncer.close();
    this.backend.close();
    rmSync(`${this.dbPath}-wal`, { force: true });
    renameSync(temporary, this.dbPath);
    this.backend = openBackend(this.dbPath);
    this.backend.transaction(() => {
      this.backend.setMeta('term', hard.term);
      this.backend.setMeta('vote', hard.vote.toString());
      this.backend.setMeta('commit', Math.max(hard.commit, index));
      this.backend.setMeta('applied_index', index);
      this.backend.setMeta('snapshot_index', index);
      this.backend.setMeta('snapshot_term', term);
      // The leader's file names the leader: this member keeps its own identity.
      this.backend.setMeta('member_id', this.config.member.id.toString(16));
      this.backend.setMeta('cluster_id', this.config.clusterId.toString(16));
      this.backend.truncateLogFrom(0);
    });
    this.syncer = new WalSyncer(`${this.dbPath}-wal`);
    this.storage.useBackend(this.backend);
    this.membership.reload(this.backend);
    this.transport?.setPeers(this.peerAddresses());
    this.lessor = new Lessor(this.backend, this.lessor.minTtlSeconds);
    this.kv = new MvccStore(this.backend);
    this.applier = this.rebuildStateMachine();
    this.watchHub.replaceStore(this.kv);
    // A snapshot taken during a compaction finishes it here.
    this.scheduleCompactionSteps();
  }

  private onSoftState(leader: bigint): void {
    if (leader === this.knownLeader) return;
    const wasLeader = this.knownLeader === this.memberId;
    this.knownLeader = leader;
    if (leader !== 0n) serverMetrics.leaderChanges.inc();
    this.log.info({ leader: leader.toString(16), term: this.term }, 'leader changed');
    if (leader === this.memberId) this.lessor.promote(performance.now(), this.config.electionMs);
    else if (wasLeader) this.lessor.demote();
    if (leader !== 0n) this.publishAttributes();
  }

  /** Once per start, as etcd does: tells the cluster this member's name and client URLs. */
  private publishAttributes(): void {
    if (this.published) return;
    this.published = true;
    const { id, name, clientUrls } = this.config.member;
    this.propose({ type: 'member-attributes', id, name, clientUrls }).then(() => {
      // etcd's wording: tools (etcd's own e2e tests among them) wait for this line.
      this.log.info({ memberId: id.toString(16), name, clientUrls }, 'published local member to cluster through raft');
    }, (err: unknown) => {
      this.published = false;
      this.log.warn({ err }, 'publishing member attributes failed; will retry on the next leader change');
    });
  }

  /** Members with the names and client URLs they published (empty until a member has started). */
  members(): MemberInfo[] {
    const published = new Map(this.backend.memberAttributes().map((a) => [a.id, a]));
    return this.membership.list().map((m) => {
      const attrs = published.get(m.id);
      return { id: m.id, peerUrls: m.peerUrls, name: attrs?.name ?? '', clientUrls: attrs?.clientUrls ?? [], isLearner: m.isLearner };
    });
  }

  private peerAddresses(): { id: bigint; url: string }[] {
    return this.membership.list()
      .filter((m) => m.id !== this.config.member.id && m.peerUrls[0] !== undefined)
      .map((m) => ({ id: m.id, url: m.peerUrls[0] as string }));
  }

  private clusterView(): ClusterView {
    const names = new Map(this.backend.memberAttributes().map((a) => [a.id, a.name]));
    return {
      clusterId: this.config.clusterId,
      members: this.membership.list().map((m) => ({ id: m.id, name: names.get(m.id) ?? '', peerUrls: m.peerUrls, isLearner: m.isLearner })),
    };
  }

  /**
   * The database's size as etcd reports and limits it: the key-value data (file size, and pages in
   * use), without the Raft log that shares the SQLite file here (etcd keeps it in WAL files).
   */
  backendSizes(): { sizeBytes: number; inUseBytes: number } {
    const sizes = this.backend.sizes();
    const log = this.storage.logBytes();
    return { sizeBytes: Math.max(0, sizes.sizeBytes - log), inUseBytes: Math.max(0, sizes.inUseBytes - log) };
  }

  /**
   * How long (ms) this member's connection to `id` has been up without a break; Infinity for this
   * member itself, 0 for a member not connected now.
   */
  connectedForMs(id: bigint): number {
    if (id === this.memberId) return Number.POSITIVE_INFINITY;
    const since = this.transport?.activeSince(id) ?? null;
    return since === null ? 0 : performance.now() - since;
  }

  /** Replication progress of a member, as this leader sees it (null on followers). */
  matchIndexOf(id: bigint): { match: number; leaderMatch: number } | null {
    if (!(this.node instanceof Raft)) return null;
    const progress = this.node.progressOf(id);
    const own = this.node.progressOf(this.memberId);
    return progress === undefined || own === undefined ? null : { match: progress.match, leaderMatch: own.match };
  }

  /** Proposes a membership change; resolves once it is applied here (rejects if refused). */
  proposeMemberChange(change: Omit<MemberChange, 'requestId'>): Promise<void> {
    if (this.closed) return Promise.reject(new StoreError('stopped'));
    if (this.node.status().lead === 0n) return Promise.reject(new StoreError('no-leader'));
    const requestId = `${this.memberId.toString(16)}-${(this.requestIdBase | ++this.requestCounter).toString(16)}`;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.confWaiters.delete(requestId)) reject(new StoreError('timeout'));
      }, this.proposalTimeoutMs);
      this.confWaiters.set(requestId, { resolve, reject, timer });
      const data = encodeMemberChange({ ...change, requestId });
      // The core admits one change at a time (and none before a new leader applied its first
      // entry): a refused proposal is tried again until the request times out, as etcd's waits.
      const attempt = (): void => {
        if (!this.confWaiters.has(requestId)) return;
        const result = this.node.proposeConfChange(data);
        if (result.ok) {
          this.scheduleDrain();
          return;
        }
        setTimeout(attempt, CONF_CHANGE_RETRY_MS);
      };
      attempt();
    });
  }

  /** A committed 'conf-change' entry: the membership table, then Raft's configuration, then peers. */
  private applyMemberChange(entry: Entry): (() => void) | null {
    if (entry.data.length === 0) return null;
    const change = decodeMemberChange(entry.data);
    const waiter = this.confWaiters.get(change.requestId);
    let failure: Error | null = null;
    try {
      const confChange = this.membership.apply(change);
      // Replayed at start-up before the node exists: it then starts from the table.
      if (confChange !== null && this.nodeReady) this.node.applyConfChange(confChange);
      this.transport?.setPeers(this.peerAddresses());
      this.log.info({ action: change.action, member: change.id.toString(16), index: entry.index }, 'membership changed');
      if (change.action === 'remove' && change.id === this.memberId && this.nodeReady) {
        this.log.warn('this member has been permanently removed from the cluster; stopping');
        setImmediate(() => this.config.onRemoved?.());
      }
    } catch (err) {
      if (!(err instanceof MemberChangeError)) throw err;
      failure = err;
    }
    if (waiter === undefined) return null;
    this.confWaiters.delete(change.requestId);
    clearTimeout(waiter.timer);
    const error = failure;
    return error === null ? () => waiter.resolve() : () => waiter.reject(error);
  }

  /** A linearizable read point: resolves once this member has applied everything committed before it. */
  readBarrier(): Promise<void> {
    if (this.closed) return Promise.reject(new StoreError('stopped'));
    if (this.transport === null) return Promise.resolve();
    if (this.node.status().lead === 0n) return Promise.reject(new StoreError('no-leader'));
    const done = this.reads.wait();
    this.scheduleDrain();
    return done;
  }

  range(request: RangeRequest): { result: RangeResult; revision: number } {
    const result = this.kv.range(request);
    return { result, revision: this.kv.currentRev };
  }

  watch(spec: WatcherSpec): WatchHandle {
    return this.watchHub.add(spec);
  }

  /**
   * A keep-alive is handled by the leader's lessor, as in etcd; a follower forwards it, waiting
   * for a leader and retrying when the one it knew is gone, within the request timeout.
   */
  async keepAlive(id: bigint): Promise<number> {
    const answer = await this.atLeader({ kind: 'renew', leaseId: id }, () => this.lessor.renew(id, performance.now()));
    return typeof answer === 'number' ? answer : answer.ttl;
  }

  async timeToLive(id: bigint): Promise<{ ttl: number; grantedTtl: number; keys: Buffer[] } | null> {
    const lease = this.lessor.lookup(id);
    if (lease === undefined) return null;
    const keys = [...lease.keys].map((k) => Buffer.from(k, 'latin1'));
    const local = (): number => this.lessor.remainingSeconds(lease, performance.now());
    const answer = await this.atLeader({ kind: 'time-to-live', leaseId: id }, local);
    if (typeof answer === 'number') return { ttl: answer, grantedTtl: lease.ttlSeconds, keys };
    return answer.ttl < 0 ? null : { ttl: answer.ttl, grantedTtl: answer.grantedTtl, keys };
  }

  /** Runs `local` on the leader, or forwards `request` to it; bounded by the request timeout. */
  private async atLeader(request: Omit<LeaseRenewRequest, 'clusterId'>, local: () => number): Promise<number | LeaseRenewResponse> {
    const deadline = performance.now() + this.proposalTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new StoreError('stopped');
      const leader = this.node.status().lead;
      if (leader === this.memberId || this.transport === null) return local();
      const left = deadline - performance.now();
      if (leader !== 0n && left > 0) {
        try {
          return await this.transport.leaseCall(leader, request, Math.min(left, this.config.electionMs));
        } catch {
          // The leader died or stepped down: look again.
        }
      }
      if (performance.now() >= deadline) throw new StoreError(leader === 0n ? 'no-leader' : 'timeout');
      await new Promise((resolve) => setTimeout(resolve, Math.min(50 * (attempt + 1), 200)));
    }
  }

  private async onLeaseRequest(request: LeaseRenewRequest): Promise<LeaseRenewResponse> {
    if (this.node.status().lead !== this.memberId) throw new StoreError('not-leader');
    if (request.kind === 'renew') return { ok: true, ttl: this.lessor.renew(request.leaseId, performance.now()), grantedTtl: 0 };
    const lease = this.lessor.lookup(request.leaseId);
    if (lease === undefined) return { ok: true, ttl: -1, grantedTtl: 0 };
    return { ok: true, ttl: this.lessor.remainingSeconds(lease, performance.now()), grantedTtl: lease.ttlSeconds };
  }

  private expireLeases(): void {
    if (this.closed || !this.lessor.isPrimary) return;
    for (const id of this.lessor.expired(performance.now(), LEASE_REVOKES_PER_CHECK)) {
      if (this.revoking.has(id)) continue;
      this.revoking.add(id);
      this.propose({ type: 'lease-revoke', id })
        .catch((err: unknown) => {
          if (!(err instanceof StoreError && err.kind === 'lease-not-found')) this.log.warn({ err, leaseId: id.toString() }, 'lease revoke failed');
        })
        .finally(() => this.revoking.delete(id));
    }
  }

  /** A fresh lease ID: member-derived high bits and a counter, never 0, never in use. */
  nextLeaseId(): bigint {
    for (;;) {
      const id = (this.requestIdBase | ++this.requestCounter) & 0x7fff_ffff_ffff_ffffn;
      if (id !== 0n && !this.lessor.has(id)) return id;
    }
  }

  alarms(): AlarmEntry[] {
    return this.applier.alarms();
  }

  /**
   * Null while a write may go ahead. Past the quota, a promise that raises NOSPACE through the
   * log and then rejects with no-space: as in etcd, the alarm is in place (AlarmList shows it)
   * by the time the refused client hears of it.
   */
  checkQuota(): Promise<never> | null {
    if (this.applier.hasAlarm('nospace')) return Promise.reject(new StoreError('no-space'));
    if (this.config.quotaBackendBytes <= 0 || this.dbSizeBytes <= this.config.quotaBackendBytes) return null;
    const raise = this.propose({ type: 'alarm', activate: true, memberId: this.memberId, alarm: 'nospace' });
    return raise.then(() => undefined, () => undefined).then(() => { throw new StoreError('no-space'); });
  }

  latest(key: Buffer): KeyValue | null {
    return this.kv.get(key);
  }

  /** Leadership transfer (etcdctl move-leader). */
  moveLeader(target: bigint): void {
    if (this.node.status().lead !== this.memberId) throw new StoreError('not-leader');
    if (this.membership.get(target)?.isLearner !== false) throw new StoreError('bad-leader-transferee');
    if (target === this.memberId) return;
    const result = this.node.transferLeadership(target);
    if (!result.ok) throw new StoreError('bad-leader-transferee');
    this.scheduleDrain();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.compactor?.stop();
    this.transport?.close();
    this.reads.close(new StoreError('stopped'));
    for (const waiter of this.waiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new StoreError('stopped'));
    }
    this.waiters.clear();
    for (const waiter of this.confWaiters.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new StoreError('stopped'));
    }
    this.confWaiters.clear();
    this.settleCompactionWaiters();
    this.syncer.close();
    this.backend.close();
  }
}

/** A report from the transport about a peer, stepped into the local Raft node. */
function localMessage(type: 'unreachable' | 'snap-status', peer: bigint, self: bigint, reject: boolean): Message {
  return {
    type, to: self, from: peer, term: 0, logTerm: 0, index: 0, entries: [], commit: 0,
    snapshot: null, reject, rejectHint: 0, context: new Uint8Array(0),
  };
}

function prepareDataDir(dataDir: string, memberDir: string): void {
  try {
    const st = statSync(dataDir, { throwIfNoEntry: false });
    if (st !== undefined && !st.isDirectory()) throw new DataDirError(`data dir ${dataDir} is not a directory`);
    mkdirSync(memberDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if (err instanceof DataDirError) throw err;
    throw new DataDirError(`cannot use data dir ${dataDir}: ${(err as Error).message}`);
  }
}

function openBackend(path: string): Backend {
  try {
    checkWal(`${path}-wal`);
  } catch (err) {
    if (err instanceof WalCorruptError) throw new DataDirError(err.message);
    throw err;
  }
  try {
    return new Backend(path);
  } catch (err) {
    const message = (err as Error).message;
    if (/database is locked|SQLITE_BUSY/i.test(message)) {
      throw new DataDirError(`data dir is in use by another process (${path})`);
    }
    throw new DataDirError(`cannot open backend ${path}: ${message}`);
  }
}

/** Reads (or, on a new data dir, records) the cluster and member IDs this member runs with. */
function withStoredIdentity(backend: Backend, config: ServerConfig): ServerConfig {
  const storedCluster = backend.getMeta('cluster_id');
  const storedMember = backend.getMeta('member_id');
  if (typeof storedCluster !== 'string' || typeof storedMember !== 'string') {
    backend.transaction(() => {
      backend.setMeta('cluster_id', config.clusterId.toString(16));
      backend.setMeta('member_id', config.member.id.toString(16));
    });
    return config;
  }
  const clusterId = BigInt(`0x${storedCluster}`);
  const memberId = BigInt(`0x${storedMember}`);
  return { ...config, clusterId, member: { ...config.member, id: memberId } };
}

/** How often a refused conf change (another one pending) is proposed again. */
const CONF_CHANGE_RETRY_MS = 20;

/** How long a one-member store waits for each step of becoming a Raft group. */
const SWITCH_WAIT_MS = 5_000;

/** Resolves once `done()` holds, checking every few milliseconds; rejects after `timeoutMs`. */
async function pollUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new StoreError('timeout', `waited ${timeoutMs} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
