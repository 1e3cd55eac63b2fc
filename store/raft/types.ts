/**
 * The vocabulary of the Raft core. Member IDs are bigint because etcd's member IDs are 64-bit and
 * routinely exceed 2^53; terms and indexes are numbers (asserted safe integers).
 */
export type MemberId = bigint;

export type EntryType = 'normal' | 'conf-change';

/** One log entry. `data` is opaque to Raft: the server encodes requests into it. */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must be durable before any message that depends on it leaves the member. */
export interface HardState {
  readonly term: number;
  readonly vote: MemberId; // 0n = no vote
  readonly commit: number;
}

export interface ConfState {
  readonly voters: readonly MemberId[];
  readonly learners: readonly MemberId[];
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/** A state-machine snapshot; `data` is produced and consumed by the server, not by Raft. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

export type MessageType =
  | 'hup' // local: start an election
  | 'beat' // local: leader sends heartbeats
  | 'prop' // proposal (local or forwarded by a follower)
  | 'app'
  | 'app-resp'
  | 'vote'
  | 'vote-resp'
  | 'pre-vote'
  | 'pre-vote-resp'
  | 'snap'
  | 'heartbeat'
  | 'heartbeat-resp'
  | 'unreachable'
  | 'snap-status'
  | 'check-quorum'
  | 'transfer-leader'
  | 'timeout-now'
  | 'read-index'
  | 'read-index-resp';

export interface Message {
  readonly type: MessageType;
  readonly to: MemberId;
  readonly from: MemberId;
  readonly term: number;
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly snapshot: Snapshot | null;
  readonly reject: boolean;
  readonly rejectHint: number;
  /** Opaque request context, used by ReadIndex to match answers to requests. */
  readonly context: Uint8Array;
}

/** The answer to a ReadIndex request: reads with `requestContext` may be served once applied ≥ index. */
export interface ReadState {
  readonly index: number;
  readonly requestContext: Uint8Array;
}

export type RaftRole = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export interface SoftState {
  readonly leader: MemberId; // 0n = none known
  readonly role: RaftRole;
}

/**
 * The core's only output. Field order is the order of the work: persist hardState, entries and
 * snapshot (one durable write, fsynced when mustSync), then send messages, then apply committed
 * entries in index order, then call advance(ready).
 */
export interface Ready {
  readonly softState: SoftState | null; // non-null when it changed
  readonly hardState: HardState | null; // non-null when it changed
  readonly entries: readonly Entry[]; // to append to stable storage
  readonly snapshot: Snapshot | null; // to install before applying anything else
  readonly messages: readonly Message[]; // to send after the write above is durable
  readonly committed: readonly Entry[]; // to apply
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}

export type StepResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'proposal-dropped' | 'unknown-peer' | 'stale-term' };

/** The Raft core: synchronous, deterministic, no I/O, no clocks, no randomness of its own. */
/**
 * A change of the voter/learner configuration, applied by the driver once its 'conf-change'
 * entry is committed (etcd's ConfChange; an update of a member's URLs changes no configuration).
 */
export interface ConfChange {
  readonly type: 'add-voter' | 'add-learner' | 'remove';
  readonly id: MemberId;
}

export interface RaftNode {
  readonly id: MemberId;
  tick(): void;
  step(message: Message): StepResult;
  propose(data: Uint8Array): StepResult;
  /**
   * Proposes a 'conf-change' entry with opaque `data`. Refused (proposal-dropped) while an earlier
   * one is not applied yet: one change at a time, so any two configurations overlap in a quorum.
   */
  proposeConfChange(data: Uint8Array): StepResult;
  /** Applies a committed conf change to the configuration; returns the new configuration. */
  applyConfChange(change: ConfChange): ConfState;
  confState(): ConfState;
  /** Asks for a linearizable read point; the answer arrives as a ReadState with this context. */
  readIndex(context: Uint8Array): StepResult;
  /** Starts a leadership transfer to `target` (etcdctl move-leader). */
  transferLeadership(target: MemberId): StepResult;
  campaign(): StepResult;
  hasReady(): boolean;
  ready(): Ready;
  advance(ready: Ready): void;
  /** Log compaction: entries up to `index` are covered by a snapshot the server took. */
  compact(index: number, snapshot: Snapshot): void;
  status(): RaftStatus;
  /** status().term without building the status: every response header carries it. */
  currentTerm(): number;
}

export interface RaftStatus {
  readonly id: MemberId;
  readonly term: number;
  readonly vote: MemberId;
  readonly commit: number;
  readonly applied: number;
  readonly lead: MemberId;
  readonly role: RaftRole;
  readonly lastIndex: number;
}

/**
 * Read-only view of durable state the core starts from and reads entries through.
 * A disk-backed implementation lives in store/wal; tests use MemoryLogStorage.
 */
export interface LogStorage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [low, high), at most maxBytes in total (always at least one). Throws RaftStorageError. */
  entries(low: number, high: number, maxBytes: number): Entry[];
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

export type RaftStorageErrorKind = 'compacted' | 'unavailable' | 'snapshot-temporarily-unavailable';

export class RaftStorageError extends Error {
  override readonly name = 'RaftStorageError';
  constructor(readonly kind: RaftStorageErrorKind) {
    super(`raft storage: ${kind}`);
  }
}

/** Raft configuration. Randomness for election jitter is passed in (see shared/random.ts). */
export interface RaftConfig {
  readonly id: MemberId;
  readonly electionTicks: number; // etcd: election-timeout / heartbeat-interval = 10
  readonly heartbeatTicks: number; // 1
  readonly storage: LogStorage;
  readonly applied: number; // the last index the state machine already applied (after restart)
  readonly maxSizePerMsgBytes: number;
  readonly maxInflightMsgs: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /**
   * Payload bytes a leader accepts into its log beyond what has been applied; proposals past it
   * are dropped. Bounds leader memory while followers are slow. Default 64 MiB (etcd: unlimited).
   */
  readonly maxUncommittedEntriesBytes?: number;
  readonly random: { int(maxExclusive: number): number };
  readonly logger?: CoreLogger;
  /** Deliberate bugs for the simulator and unit self-tests; never set in production. */
  readonly testingBugs?: RaftTestingBugs;
}

/**
 * Each switch breaks one rule of the Raft paper so that the simulator can show its checkers catch
 * it (test/sim/raft-sim-self-test.test.ts). Production code never sets them.
 */
export interface RaftTestingBugs {
  /** Grant a vote even after voting for someone else in the same term (breaks election safety). */
  readonly grantTwoVotesPerTerm?: boolean;
  /** Commit by counting replicas regardless of the entry's term (the Figure 8 mistake). */
  readonly commitOldTermByCounting?: boolean;
  /** Grant votes without the §5.4.1 "log at least as up to date" check. */
  readonly voteWithoutLogCheck?: boolean;
  /** Accept appends without checking the previous entry's term (breaks log matching). */
  readonly appendWithoutPreviousTermCheck?: boolean;
  /** Answer ReadIndex from the leader's commit index without a heartbeat round. */
  readonly readIndexWithoutHeartbeat?: boolean;
}

/** What the core logs through; pino satisfies it. */
export interface CoreLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}
