import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { assert } from '../../shared/assert.js';
import { Lessor } from '../lease/lessor.js';
import { Backend } from '../mvcc/backend.js';
import { StoreError } from '../mvcc/errors.js';
import { MvccStore } from '../mvcc/kv-store.js';
import type { KeyValue, RangeRequest, RangeResult } from '../mvcc/types.js';
import { WatchHub, type WatcherSpec } from '../mvcc/watch-hub.js';
import type { Entry, RaftNode, Ready } from '../raft/types.js';
import { Applier, type AlarmEntry, type ApplyResult } from './apply.js';
import { decodeEnvelope, encodeEnvelope, type InternalRequest } from './requests.js';
import { SoloNode } from './solo-node.js';
import { AutoCompactor, type AutoCompactionConfig } from './auto-compactor.js';
import { WalSyncer } from './wal-syncer.js';

export interface MemberInfo {
  readonly id: bigint;
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
}

export interface ServerConfig {
  readonly name: string;
  readonly dataDir: string;
  readonly member: MemberInfo;
  readonly members: readonly MemberInfo[];
  readonly clusterId: bigint;
  readonly quotaBackendBytes: number;
  readonly heartbeatMs: number;
  readonly electionMs: number;
  readonly autoCompaction: AutoCompactionConfig | null;
  readonly logger: Logger;
}

interface Waiter {
  resolve(result: ApplyResult): void;
  reject(error: Error): void;
}

/** How often the leader looks for expired leases (etcd: every 500 ms). */
const LEASE_CHECK_INTERVAL_MS = 500;
/** Leases revoked per check, so that a mass expiry does not stall the loop. */
const LEASE_REVOKES_PER_CHECK = 1000;
/** Raft log entries kept behind the applied index for followers that lag. */
const LOG_ENTRIES_KEPT = 5000;
/** etcd refuses new proposals when this many committed entries wait to be applied. */
export const PENDING_PROPOSALS_MAX = 5000;

export const ETCD_VERSION = '3.4.23';

/**
 * One member of the store: the log (Raft node), the state machine (MVCC + lessor) and the loop
 * between them. Requests that change state are proposed as entries and applied only once
 * committed; each Ready is one SQLite transaction (entries, hard state, applied data and applied
 * index together), so a crash at any instant either keeps all of it or none of it.
 */
export class EtcdServer {
  readonly backend: Backend;
  readonly kv: MvccStore;
  readonly lessor: Lessor;
  readonly applier: Applier;
  readonly watchHub: WatchHub;
  private readonly node: RaftNode;
  private readonly waiters = new Map<bigint, Waiter>();
  private readonly requestIdBase: bigint;
  private requestCounter = 0n;
  private drainScheduled = false;
  private leaseTimer: NodeJS.Timeout | null = null;
  private readonly revoking = new Set<bigint>();
  private readonly compactor: AutoCompactor | null;
  private closed = false;
  private persisting = false;
  private readonly syncer: WalSyncer;
  private readonly log: Logger;
  /** The backend's size after the last applied batch; the quota check reads it, not SQLite. */
  private dbSizeBytes = 0;

  constructor(readonly config: ServerConfig) {
    this.log = config.logger.child({ component: 'server' });
    const memberDir = join(config.dataDir, 'member');
    prepareDataDir(config.dataDir, memberDir);
    this.backend = openBackend(join(memberDir, 'etcron.db'));
    this.syncer = new WalSyncer(`${this.backend.path}-wal`);
    this.kv = new MvccStore(this.backend);
    const minTtl = Math.ceil((1.5 * config.electionMs) / 1000);
    this.lessor = new Lessor(this.backend, minTtl);
    for (const kv of this.kv.liveKeys()) {
      if (kv.lease !== 0n && this.lessor.has(kv.lease)) this.lessor.attach(kv.lease, kv.key.toString('latin1'));
    }
    this.kv.setLeaseAttachments(this.lessor);
    this.applier = new Applier(this.kv, this.lessor, this.backend);
    this.watchHub = new WatchHub(this.kv);
    this.requestIdBase = randomBytes(8).readBigUInt64BE(0) & 0x7fff_ffff_0000_0000n;
    this.replayUnapplied();
    const bounds = this.backend.logBounds();
    this.node = new SoloNode(config.member.id, {
      term: this.backend.getMetaNumber('term', 1),
      lastIndex: bounds.last ?? this.backend.getMetaNumber('applied_index', 0),
      applied: this.backend.getMetaNumber('applied_index', 0),
    });
    this.drain();
    this.lessor.promote(performance.now(), config.electionMs);
    this.leaseTimer = setInterval(() => this.expireLeases(), LEASE_CHECK_INTERVAL_MS);
    this.leaseTimer.unref();
    this.compactor = config.autoCompaction === null ? null : new AutoCompactor(config.autoCompaction, this, this.log);
    this.log.info({ memberId: config.member.id.toString(16), rev: this.kv.currentRev, term: this.node.status().term }, 'member started');
  }

  /** Entries that were committed but not applied before a crash are applied before serving. */
  private replayUnapplied(): void {
    const applied = this.backend.getMetaNumber('applied_index', 0);
    const { last } = this.backend.logBounds();
    if (last === null || last <= applied) return;
    const rows = this.backend.logRange(applied + 1, last + 1);
    this.backend.transaction(() => {
      for (const row of rows) this.applyEntry({ index: row.idx, term: row.term, type: 'normal', data: row.data });
      this.backend.setMeta('applied_index', last);
    });
    this.applier.takeEvents();
  }

  /** Resolves once everything proposed so far is applied (used at start-up and by tests). */
  async settled(): Promise<void> {
    for (let i = 0; i < 1000 && (this.persisting || this.node.hasReady()); i++) {
      await new Promise((r) => setImmediate(r));
    }
  }

  get memberId(): bigint {
    return this.config.member.id;
  }

  get term(): number {
    return this.node.status().term;
  }

  get leaderId(): bigint {
    return this.node.status().lead;
  }

  raftStatus(): { index: number; term: number; applied: number; leader: bigint } {
    const s = this.node.status();
    return { index: s.commit, term: s.term, applied: s.applied, leader: s.lead };
  }

  /** Proposes a state change; resolves once it is committed, applied and durable. */
  propose(request: InternalRequest): Promise<ApplyResult> {
    if (this.closed) return Promise.reject(new StoreError('stopped'));
    if (this.waiters.size >= PENDING_PROPOSALS_MAX) return Promise.reject(new StoreError('too-many-requests'));
    const requestId = this.requestIdBase | ++this.requestCounter;
    return new Promise<ApplyResult>((resolve, reject) => {
      const result = this.node.propose(encodeEnvelope({ requestId, request }));
      if (!result.ok) {
        reject(new StoreError('no-leader'));
        return;
      }
      this.waiters.set(requestId, { resolve, reject });
      this.scheduleDrain();
    });
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    // Proposals that arrive within this event-loop turn share one Ready and one fsync.
    setImmediate(() => {
      this.drainScheduled = false;
      this.drain();
    });
  }

  /**
   * Takes one Ready at a time: its entries and hard state are written, then made durable by an
   * fsync off the main thread, and only then are its committed entries applied and answered.
   * Proposals that arrive meanwhile wait in the node and form the next Ready (group commit).
   */
  private drain(): void {
    if (this.persisting || this.closed || !this.node.hasReady()) return;
    const ready = this.node.ready();
    this.backend.transaction(() => this.persist(ready));
    const durable = ready.mustSync ? this.syncer.sync() : Promise.resolve();
    this.persisting = true;
    durable.then(
      () => {
        this.persisting = false;
        if (this.closed) return;
        const outcomes = this.backend.transaction(() => this.applyCommitted(ready));
        this.node.advance(ready);
        this.dbSizeBytes = this.backend.sizes().sizeBytes;
        this.watchHub.notify(this.applier.takeEvents());
        this.lessor.startTimers(performance.now());
        for (const settle of outcomes) settle();
        this.drain();
      },
      (err: unknown) => {
        // A failed fsync may have dropped pages: continuing could acknowledge lost writes.
        this.log.fatal({ err }, 'fsync of the log failed; stopping');
        process.exit(1);
      },
    );
  }

  private persist(ready: Ready): void {
    if (ready.hardState !== null) {
      this.backend.setMeta('term', ready.hardState.term);
      this.backend.setMeta('vote', ready.hardState.vote.toString());
      this.backend.setMeta('commit', ready.hardState.commit);
    }
    for (const entry of ready.entries) this.backend.appendLog(entry.index, entry.term, 0, entry.data);
  }

  private applyCommitted(ready: Ready): (() => void)[] {
    const settles: (() => void)[] = [];
    let appliedIndex = -1;
    for (const entry of ready.committed) {
      const settle = this.applyEntry(entry);
      if (settle !== null) settles.push(settle);
      appliedIndex = entry.index;
    }
    if (appliedIndex >= 0) {
      this.backend.setMeta('applied_index', appliedIndex);
      if (appliedIndex % 1000 === 0 && appliedIndex > LOG_ENTRIES_KEPT) this.backend.compactLogTo(appliedIndex - LOG_ENTRIES_KEPT);
    }
    return settles;
  }

  /** Applies one committed entry; returns how to answer its proposer, if it is waiting here. */
  private applyEntry(entry: Entry): (() => void) | null {
    if (entry.data.length === 0) return null;
    const envelope = decodeEnvelope(entry.data);
    const outcome = this.applier.apply(envelope.request);
    const waiter = this.waiters.get(envelope.requestId);
    if (waiter === undefined) return null;
    this.waiters.delete(envelope.requestId);
    return outcome.ok ? () => waiter.resolve(outcome.value) : () => waiter.reject(outcome.error);
  }

  /** A linearizable read point: with one member, everything committed is already applied. */
  async readBarrier(): Promise<void> {
    if (this.closed) throw new StoreError('stopped');
  }

  range(request: RangeRequest): { result: RangeResult; revision: number } {
    const result = this.kv.range(request);
    return { result, revision: this.kv.currentRev };
  }

  watch(spec: WatcherSpec): { cancel(): void } {
    return this.watchHub.add(spec);
  }

  /** A keep-alive handled by the leader's lessor, as etcd does (not through the log). */
  keepAlive(id: bigint): number {
    return this.lessor.renew(id, performance.now());
  }

  timeToLive(id: bigint): { ttl: number; grantedTtl: number; keys: Buffer[] } | null {
    const lease = this.lessor.lookup(id);
    if (lease === undefined) return null;
    return {
      ttl: this.lessor.remainingSeconds(lease, performance.now()),
      grantedTtl: lease.ttlSeconds,
      keys: [...lease.keys].map((k) => Buffer.from(k, 'latin1')),
    };
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

  /** A fresh lease ID: member-derived high bits, time and a counter, as etcd's generator. */
  nextLeaseId(): bigint {
    for (;;) {
      const id = (this.requestIdBase | ++this.requestCounter) & 0x7fff_ffff_ffff_ffffn;
      if (id !== 0n && !this.lessor.has(id)) return id;
    }
  }

  alarms(): AlarmEntry[] {
    return this.applier.alarms();
  }

  /** Raises NOSPACE (through the log) when the backend has grown past the quota. */
  checkQuota(): void {
    if (this.applier.hasAlarm('nospace')) throw new StoreError('no-space');
    if (this.config.quotaBackendBytes <= 0 || this.dbSizeBytes <= this.config.quotaBackendBytes) return;
    void this.propose({ type: 'alarm', activate: true, memberId: this.memberId, alarm: 'nospace' }).catch(() => {});
    throw new StoreError('no-space');
  }

  latest(key: Buffer): KeyValue | null {
    return this.kv.get(key);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.leaseTimer !== null) clearInterval(this.leaseTimer);
    this.compactor?.stop();
    this.syncer.close();
    for (const waiter of this.waiters.values()) waiter.reject(new StoreError('stopped'));
    this.waiters.clear();
    this.backend.close();
  }
}

/** A typed start-up failure, reported to the operator as one clear line. */
export class DataDirError extends Error {
  override readonly name = 'DataDirError';
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
    return new Backend(path);
  } catch (err) {
    const message = (err as Error).message;
    if (/database is locked|SQLITE_BUSY/i.test(message)) {
      throw new DataDirError(`data dir is in use by another process (${path})`);
    }
    throw new DataDirError(`cannot open backend ${path}: ${message}`);
  }
}

export { assert };
