import { assert } from '../../shared/assert.js';
import { Progress } from './progress.js';
import { committedIndex, hasQuorum, voteResult } from './quorum.js';
import { ReadOnly } from './read-only.js';
import { defaultMaxUncommittedEntriesBytes, readIndexPendingMax } from './limits.js';
import { RaftLog } from './raft-log.js';
import { RaftStorageError } from './types.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  MemberId,
  Message,
  MessageType,
  RaftConfig,
  RaftNode,
  RaftRole,
  RaftStatus,
  RaftTestingBugs,
  ReadState,
  Ready,
  Snapshot,
  SoftState,
  StepResult,
} from './types.js';

/** "No member": no leader known, no vote cast, or a local message with no sender. */
export const none: MemberId = 0n;

const emptyBytes = new Uint8Array(0);
/** Marks the votes of a leadership transfer, which may break a follower's leader lease. */
const campaignTransferContext = new TextEncoder().encode('campaign-transfer');


const ok: StepResult = { ok: true };
const dropped: StepResult = { ok: false, reason: 'proposal-dropped' };
const unknownPeer: StepResult = { ok: false, reason: 'unknown-peer' };
const staleTerm: StepResult = { ok: false, reason: 'stale-term' };

type CampaignKind = 'pre-election' | 'election' | 'transfer';

/** Builds a message, defaulting every field the caller leaves out. */
export function makeMessage(fields: Partial<Message> & Pick<Message, 'type' | 'to'>): Message {
  return {
    from: none,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: emptyBytes,
    ...fields,
  };
}

function voteResponseType(type: MessageType): MessageType {
  return type === 'pre-vote' ? 'pre-vote-resp' : 'vote-resp';
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function payloadBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const entry of entries) total += entry.data.byteLength;
  return total;
}

function validateConfig(config: RaftConfig): void {
  assert(config.id !== none, 'raft: id must not be 0');
  assert(
    Number.isSafeInteger(config.heartbeatTicks) && config.heartbeatTicks > 0,
    'raft: heartbeatTicks must be > 0',
  );
  assert(Number.isSafeInteger(config.electionTicks), 'raft: electionTicks must be an integer');
  assert(
    config.electionTicks > config.heartbeatTicks,
    'raft: electionTicks must exceed heartbeatTicks',
  );
  assert(
    Number.isSafeInteger(config.maxInflightMsgs) && config.maxInflightMsgs > 0,
    'raft: maxInflightMsgs must be > 0',
  );
  assert(config.maxSizePerMsgBytes > 0, 'raft: maxSizePerMsgBytes must be > 0');
  assert(Number.isSafeInteger(config.applied) && config.applied >= 0, 'raft: applied must be >= 0');
  const uncommittedMax = config.maxUncommittedEntriesBytes;
  assert(
    uncommittedMax === undefined || uncommittedMax > 0,
    'raft: maxUncommittedEntriesBytes must be > 0',
  );
}

/**
 * How to drive it (the etcd-io/raft doc.go duties, in our words):
 * 1. Call tick() every heartbeat interval, step() for every message from a peer, propose(),
 *    readIndex(), transferLeadership() and campaign() for local requests.
 * 2. While hasReady(): take ready(); in one durable write store `snapshot`, `entries` and
 *    `hardState` (fsync when `mustSync`); only then send `messages`; install the snapshot and apply
 *    `committed` in index order (the server applies them in the same transaction as the write, so
 *    a restart passes the applied index back in RaftConfig.applied); serve `readStates` once
 *    applied >= their index; finally advance(ready).
 * 3. Inputs may arrive while a Ready is being persisted (between ready() and advance()); their
 *    output waits for the next Ready, which goes out only after this one is durable. But only one
 *    Ready is out at a time: ready() again before advance() is an assertion failure.
 * 4. Report the fate of every 'snap' message with a 'snap-status' message (reject = it failed), as
 *    etcd's transport does; otherwise the follower waits in the snapshot state.
 *
 * The Raft state machine. Every input is a message given to step() (local ones have term 0); the
 * role-specific part of step and tick is a function swapped by becomeFollower/becomeCandidate/
 * becomePreCandidate/becomeLeader, so role checks are not scattered. Output accumulates until
 * ready(); the driver persists, sends and applies it, then calls advance() before the next input.
 */
export class Raft implements RaftNode {
  readonly id: MemberId;
  private term = 0;
  private vote: MemberId = none;
  private lead: MemberId = none;
  private role: RaftRole = 'follower';
  private readonly log: RaftLog;
  /** The configuration, each list sorted; a member joining a cluster starts with both empty. */
  private voters: MemberId[];
  private learners: MemberId[];
  /** Index of the newest conf-change entry this leader appended; another waits for its apply. */
  private pendingConfIndex = 0;
  private readonly progress = new Map<MemberId, Progress>();
  private votes = new Map<MemberId, boolean>();
  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  /** Ticks since the last election timeout (follower, candidate) or check-quorum round (leader). */
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  /** In [electionTicks, 2 * electionTicks), redrawn on every term or role change. */
  private randomizedElectionTimeout = 0;
  private leadTransferee: MemberId = none;
  private readOnly = new ReadOnly();
  /** ReadIndex requests held until this leader has committed an entry of its own term. */
  private pendingReadIndexMessages: Message[] = [];
  private stepRole: (message: Message) => StepResult;
  private tickRole: () => void;
  private previousSoftState: SoftState;
  private previousHardState: HardState;
  /** The Ready handed out and not yet advanced; the next one waits for it. */
  private outstandingReady: Ready | null = null;
  private readonly config: RaftConfig;
  private readonly bugs: RaftTestingBugs;
  /** Payload bytes this leader appended and has not applied yet; see maxUncommittedEntriesBytes. */
  private uncommittedBytes = 0;
  private readonly maxUncommittedBytes: number;

  constructor(config: RaftConfig) {
    validateConfig(config);
    this.config = config;
    this.bugs = config.testingBugs ?? {};
    this.maxUncommittedBytes =
      config.maxUncommittedEntriesBytes ?? defaultMaxUncommittedEntriesBytes;
    this.id = config.id;
    const { hardState, confState } = config.storage.initialState();
    this.log = new RaftLog(config.storage, config.maxSizePerMsgBytes);
    this.voters = sortedIds(confState.voters);
    this.learners = sortedIds(confState.learners.filter((id) => !confState.voters.includes(id)));
    if (hardState.term !== 0 || hardState.commit !== 0 || hardState.vote !== none) {
      const { commit } = hardState;
      assert(
        commit >= this.log.committed && commit <= this.log.lastIndex(),
        `raft: stored commit ${commit} outside [${this.log.committed}, ${this.log.lastIndex()}]`,
      );
      this.log.committed = commit;
    }
    this.log.appliedTo(config.applied);
    this.stepRole = this.stepFollower;
    this.tickRole = this.tickElection;
    this.becomeFollower(hardState.term, none);
    this.vote = hardState.vote; // becomeFollower keeps the vote only when the term did not change
    this.previousSoftState = this.softState();
    this.previousHardState = this.hardState();
  }

  // ---- Public interface -------------------------------------------------------------------

  tick(): void {
    this.tickRole();
  }

  step(message: Message): StepResult {
    return this.stepMessage(message);
  }

  propose(data: Uint8Array): StepResult {
    const entry: Entry = { term: 0, index: 0, type: 'normal', data };
    return this.step(makeMessage({ type: 'prop', to: this.id, entries: [entry] }));
  }

  proposeConfChange(data: Uint8Array): StepResult {
    const entry: Entry = { term: 0, index: 0, type: 'conf-change', data };
    return this.step(makeMessage({ type: 'prop', to: this.id, entries: [entry] }));
  }

  applyConfChange(change: ConfChange): ConfState {
    const { id } = change;
    const without = (ids: readonly MemberId[]): MemberId[] => ids.filter((x) => x !== id);
    if (change.type === 'remove') {
      this.voters = without(this.voters);
      this.learners = without(this.learners);
      // A leader removing itself keeps its own progress: it leads until its driver stops it.
      if (id !== this.id) this.progress.delete(id);
      this.votes.delete(id);
    } else if (change.type === 'add-voter') {
      this.learners = without(this.learners);
      if (!this.voters.includes(id)) this.voters = sortedIds([...this.voters, id]);
    } else if (!this.voters.includes(id) && !this.learners.includes(id)) {
      // A voter is never demoted to a learner (etcd refuses that before proposing).
      this.learners = sortedIds([...this.learners, id]);
    }
    if (this.role === 'leader' && change.type !== 'remove' && !this.progress.has(id)) {
      const progress = new Progress(this.log.lastIndex() + 1, this.config.maxInflightMsgs);
      progress.recentActive = true;
      this.progress.set(id, progress);
    }
    // A leader that removed itself keeps leading until its driver stops it, as in etcd.
    if (this.role === 'leader' && this.voters.includes(this.id)) {
      if (this.leadTransferee !== none && !this.voters.includes(this.leadTransferee)) this.leadTransferee = none;
      // Fewer voters may make a quorum of what is already replicated.
      if (this.maybeCommit()) this.broadcastAppend();
      else for (const member of this.members()) if (member !== this.id) this.sendAppend(member, false);
    }
    return this.confState();
  }

  confState(): ConfState {
    return { voters: [...this.voters], learners: [...this.learners] };
  }

  readIndex(context: Uint8Array): StepResult {
    assert(context.byteLength > 0, 'raft: a read-index context must not be empty');
    return this.step(makeMessage({ type: 'read-index', to: this.id, context }));
  }

  transferLeadership(target: MemberId): StepResult {
    if (!this.voters.includes(target)) return unknownPeer;
    return this.step(makeMessage({ type: 'transfer-leader', to: this.id, from: target }));
  }

  campaign(): StepResult {
    return this.step(makeMessage({ type: 'hup', to: this.id }));
  }

  hasReady(): boolean {
    if (this.outstandingReady !== null) return false;
    const soft = this.softState();
    if (soft.leader !== this.previousSoftState.leader || soft.role !== this.previousSoftState.role)
      return true;
    if (!this.hardStateEquals(this.hardState(), this.previousHardState)) return true;
    return (
      this.log.hasPendingSnapshot() ||
      this.log.unstable.entries.length > 0 ||
      this.messages.length > 0 ||
      this.readStates.length > 0 ||
      this.log.hasNextCommittedEntries()
    );
  }

  ready(): Ready {
    this.assertNoOutstandingReady();
    const soft = this.softState();
    const hard = this.hardState();
    const softChanged =
      soft.leader !== this.previousSoftState.leader || soft.role !== this.previousSoftState.role;
    const hardChanged = !this.hardStateEquals(hard, this.previousHardState);
    const entries = [...this.log.unstable.entries];
    const snapshot = this.log.unstable.snapshot;
    const ready: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hard : null,
      entries,
      snapshot,
      messages: this.messages,
      committed: this.log.nextCommittedEntries(),
      readStates: this.readStates,
      // A changed term or vote must reach disk before a vote or campaign message leaves.
      mustSync:
        entries.length > 0 ||
        snapshot !== null ||
        hard.term !== this.previousHardState.term ||
        hard.vote !== this.previousHardState.vote,
    };
    this.messages = [];
    this.readStates = [];
    this.outstandingReady = ready;
    return ready;
  }

  advance(ready: Ready): void {
    assert(ready === this.outstandingReady, 'raft: advance() must get the Ready last handed out');
    if (ready.softState !== null) this.previousSoftState = ready.softState;
    if (ready.hardState !== null) this.previousHardState = ready.hardState;
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) this.log.stableTo(lastEntry.index, lastEntry.term);
    if (ready.snapshot !== null) {
      this.log.stableSnapTo(ready.snapshot.metadata.index);
      this.log.appliedTo(ready.snapshot.metadata.index);
    }
    const lastCommitted = ready.committed[ready.committed.length - 1];
    if (lastCommitted !== undefined) this.log.appliedTo(lastCommitted.index);
    if (this.role === 'leader') {
      this.uncommittedBytes = Math.max(0, this.uncommittedBytes - payloadBytes(ready.committed));
    }
    this.outstandingReady = null;
  }

  /**
   * The server took `snapshot` and compacted its LogStorage up to `index` (it may keep some entries
   * after the snapshot for slow followers). LogStorage is read-only to the core, so this checks
   * that nothing unapplied was dropped; the core reads firstIndex from storage on every use.
   */
  compact(index: number, snapshot: Snapshot): void {
    assert(
      snapshot.metadata.index >= index,
      `raft: snapshot ${snapshot.metadata.index} is below ${index}`,
    );
    assert(index <= this.log.applied, `raft: compact ${index} beyond applied ${this.log.applied}`);
    assert(this.log.firstIndex() - 1 >= index, `raft: storage was not compacted to ${index}`);
  }

  currentTerm(): number {
    return this.term;
  }

  status(): RaftStatus {
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      lead: this.lead,
      role: this.role,
      lastIndex: this.log.lastIndex(),
    };
  }

  /** Replication state of each follower, for status endpoints and tests (leader only). */
  progressOf(id: MemberId): Readonly<Progress> | undefined {
    return this.role === 'leader' ? this.progress.get(id) : undefined;
  }

  // ---- Step: term handling shared by every role ------------------------------------------

  private stepMessage(message: Message): StepResult {
    if (message.term !== 0) {
      // A campaign by a member outside the configuration is refused: a removed member must not
      // force elections. Anything else is taken: a member whose configuration is behind (or that
      // is joining) must still follow a leader it does not know yet.
      const isCampaign = message.type === 'vote' || message.type === 'pre-vote';
      if (isCampaign && message.from !== this.id && !this.isMember(message.from) && this.isMember(this.id)) return unknownPeer;
      if (message.term > this.term) {
        if (!this.acceptHigherTerm(message)) return ok;
      } else if (message.term < this.term) {
        this.answerStaleTerm(message);
        return staleTerm;
      }
    }
    switch (message.type) {
      case 'hup':
        this.hup(this.config.preVote ? 'pre-election' : 'election');
        return ok;
      case 'vote':
      case 'pre-vote':
        this.handleVoteRequest(message);
        return ok;
      default:
        return this.stepRole(message);
    }
  }

  /** Returns false when the message must be ignored (a vote request during a leader lease). */
  private acceptHigherTerm(message: Message): boolean {
    const isVoteRequest = message.type === 'vote' || message.type === 'pre-vote';
    if (isVoteRequest) {
      const isTransfer = bytesEqual(message.context, campaignTransferContext);
      // Leader lease: with check-quorum, a follower that heard from a live leader within the
      // election timeout does not let a (possibly partitioned) candidate disrupt it.
      const inLease =
        this.config.checkQuorum &&
        this.lead !== none &&
        this.electionElapsed < this.config.electionTicks;
      if (!isTransfer && inLease) return false;
    }
    if (message.type === 'pre-vote') return true; // a pre-vote never changes our term
    // A granted pre-vote leaves the term alone: it moves when the pre-candidate wins.
    if (message.type === 'pre-vote-resp' && !message.reject) return true;
    const isFromLeader =
      message.type === 'app' || message.type === 'heartbeat' || message.type === 'snap';
    this.becomeFollower(message.term, isFromLeader ? message.from : none);
    return true;
  }

  private answerStaleTerm(message: Message): void {
    if (
      (this.config.checkQuorum || this.config.preVote) &&
      (message.type === 'heartbeat' || message.type === 'app')
    ) {
      // A leader whose term fell behind (its followers moved on through a partitioned node)
      // learns our term from this answer and steps down instead of being ignored forever.
      this.send(makeMessage({ type: 'app-resp', to: message.from }));
    } else if (message.type === 'pre-vote') {
      // Rejecting with our term tells the pre-candidate that it is behind.
      this.send(
        makeMessage({ type: 'pre-vote-resp', to: message.from, term: this.term, reject: true }),
      );
    }
  }

  private handleVoteRequest(message: Message): void {
    const responseType = voteResponseType(message.type);
    const canVote =
      this.vote === message.from ||
      (this.vote === none && this.lead === none) ||
      (message.type === 'pre-vote' && message.term > this.term) ||
      this.bugs.grantTwoVotesPerTerm === true;
    const isUpToDate =
      this.log.isUpToDate(message.index, message.logTerm) || this.bugs.voteWithoutLogCheck === true;
    if (canVote && isUpToDate) {
      this.send(makeMessage({ type: responseType, to: message.from, term: message.term }));
      if (message.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = message.from;
      }
    } else {
      this.send(
        makeMessage({ type: responseType, to: message.from, term: this.term, reject: true }),
      );
    }
  }

  // ---- Role transitions -------------------------------------------------------------------

  private reset(term: number): void {
    assert(
      Number.isSafeInteger(term) && term >= this.term,
      `raft: term ${term} moves back from ${this.term}`,
    );
    if (this.term !== term) {
      this.term = term;
      this.vote = none;
    }
    this.lead = none;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.config.electionTicks + this.config.random.int(this.config.electionTicks);
    this.leadTransferee = none;
    this.votes = new Map();
    const lastIndex = this.log.lastIndex();
    this.progress.clear();
    for (const member of this.members()) {
      const progress = new Progress(lastIndex + 1, this.config.maxInflightMsgs);
      if (member === this.id) progress.match = lastIndex;
      this.progress.set(member, progress);
    }
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
    this.uncommittedBytes = 0;
  }

  private becomeFollower(term: number, lead: MemberId): void {
    this.stepRole = this.stepFollower;
    this.reset(term);
    this.tickRole = this.tickElection;
    this.lead = lead;
    this.role = 'follower';
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'raft: leader cannot become candidate');
    this.stepRole = this.stepCandidate;
    this.reset(this.term + 1);
    this.tickRole = this.tickElection;
    this.vote = this.id;
    this.role = 'candidate';
  }

  /** A pre-candidate asks for votes at term + 1 without moving its own term (Raft thesis §9.6). */
  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'raft: leader cannot become pre-candidate');
    this.stepRole = this.stepCandidate;
    this.votes = new Map();
    this.tickRole = this.tickElection;
    this.lead = none;
    this.role = 'pre-candidate';
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', `raft: ${this.role} cannot become leader`);
    this.stepRole = this.stepLeader;
    this.reset(this.term);
    this.tickRole = this.tickHeartbeat;
    this.lead = this.id;
    this.role = 'leader';
    const self = this.selfProgress();
    self.becomeReplicate();
    self.recentActive = true;
    // Entries of earlier terms may hold a conf change: none is admitted before they are applied.
    this.pendingConfIndex = this.log.lastIndex();
    // An empty entry of the new term: committing it commits everything before it (Raft §5.4.2)
    // and lets ReadIndex start answering.
    this.appendEntries([{ term: 0, index: 0, type: 'normal', data: emptyBytes }]);
    this.config.logger?.info({ member: String(this.id), term: this.term }, 'became leader');
  }

  private hup(kind: CampaignKind): void {
    if (this.role === 'leader') return;
    if (!this.voters.includes(this.id)) return; // not promotable
    this.startCampaign(kind);
  }

  private startCampaign(kind: CampaignKind): void {
    let voteType: MessageType;
    let term: number;
    if (kind === 'pre-election') {
      this.becomePreCandidate();
      voteType = 'pre-vote';
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = 'vote';
      term = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // A single voter wins at once.
      if (kind === 'pre-election') this.startCampaign('election');
      else this.becomeLeader();
      return;
    }
    const context = kind === 'transfer' ? campaignTransferContext : emptyBytes;
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const voter of this.voters) {
      if (voter === this.id) continue;
      this.send(makeMessage({ type: voteType, to: voter, term, index, logTerm, context }));
    }
  }

  private poll(from: MemberId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    return voteResult(this.voters, this.votes);
  }

  // ---- Ticks ------------------------------------------------------------------------------

  private readonly tickElection = (): void => {
    this.electionElapsed++;
    if (this.voters.includes(this.id) && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.stepMessage(makeMessage({ type: 'hup', to: this.id }));
    }
  };

  private readonly tickHeartbeat = (): void => {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum)
        this.stepMessage(makeMessage({ type: 'check-quorum', to: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === 'leader') this.leadTransferee = none;
    }
    if (this.role !== 'leader') return;
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.stepMessage(makeMessage({ type: 'beat', to: this.id }));
    }
  };

  // ---- Leader -----------------------------------------------------------------------------

  private readonly stepLeader = (message: Message): StepResult => {
    switch (message.type) {
      case 'beat':
        this.broadcastHeartbeat();
        return ok;
      case 'check-quorum':
        this.checkQuorum();
        return ok;
      case 'prop':
        if (this.leadTransferee !== none) return dropped; // a transfer is under way
        assert(message.entries.length > 0, 'raft: empty proposal');
        if (!this.admitConfChange(message.entries)) return dropped;
        if (!this.admitUncommitted(message.entries)) return dropped;
        this.appendEntries(message.entries);
        this.broadcastAppend();
        return ok;
      case 'read-index':
        return this.leaderReadIndex(message);
      case 'transfer-leader':
        return this.leaderTransfer(message.from);
      default:
        break;
    }
    const progress = this.progress.get(message.from);
    if (progress === undefined) return unknownPeer;
    switch (message.type) {
      case 'app-resp':
        this.handleAppendResponse(message, progress);
        return ok;
      case 'heartbeat-resp':
        this.handleHeartbeatResponse(message, progress);
        return ok;
      case 'snap-status':
        if (progress.state !== 'snapshot') return ok;
        // Success or failure, go back to probing; on success wait for the follower's answer.
        if (message.reject) progress.pendingSnapshot = 0;
        progress.becomeProbe();
        if (!message.reject) progress.msgAppFlowPaused = true;
        return ok;
      case 'unreachable':
        if (progress.state === 'replicate') progress.becomeProbe();
        return ok;
      default:
        return ok; // e.g. a late vote response after winning
    }
  };

  /**
   * At most one conf change is in the log and not yet applied: any two consecutive
   * configurations then share a quorum (Raft §4.1). Records the index the new one will take.
   */
  private admitConfChange(entries: readonly Entry[]): boolean {
    const at = entries.findIndex((entry) => entry.type === 'conf-change');
    if (at < 0) return true;
    if (this.pendingConfIndex > this.log.applied || entries.findIndex((e, i) => i > at && e.type === 'conf-change') >= 0) {
      this.config.logger?.info({ member: String(this.id), pending: this.pendingConfIndex }, 'conf change refused: one is pending');
      return false;
    }
    this.pendingConfIndex = this.log.lastIndex() + at + 1;
    return true;
  }

  /** One proposal is always admitted, so an entry larger than the limit can still commit. */
  private admitUncommitted(entries: readonly Entry[]): boolean {
    const bytes = payloadBytes(entries);
    if (
      this.uncommittedBytes > 0 &&
      bytes > 0 &&
      this.uncommittedBytes + bytes > this.maxUncommittedBytes
    )
      return false;
    this.uncommittedBytes += bytes;
    return true;
  }

  private checkQuorum(): void {
    const active = hasQuorum(
      this.voters,
      (id) => id === this.id || this.progress.get(id)?.recentActive === true,
    );
    if (!active) {
      this.config.logger?.warn(
        { member: String(this.id), term: this.term },
        'stepped down: no quorum',
      );
      this.becomeFollower(this.term, none);
      return;
    }
    for (const [id, progress] of this.progress) progress.recentActive = id === this.id;
  }

  private appendEntries(proposed: readonly Entry[]): void {
    const lastIndex = this.log.lastIndex();
    const entries = proposed.map((entry, i): Entry => ({
      term: this.term,
      index: lastIndex + 1 + i,
      type: entry.type,
      data: entry.data,
    }));
    const newLast = this.log.append(entries);
    // The leader counts itself at once: the entries are in this Ready and are persisted before
    // any message from it leaves, and a single voter commits them in that same Ready.
    this.selfProgress().maybeUpdate(newLast);
    this.maybeCommit();
  }

  private maybeCommit(): boolean {
    const index = committedIndex(this.voters, (id) => this.progress.get(id)?.match ?? 0);
    if (this.bugs.commitOldTermByCounting === true && index > this.log.committed) {
      this.log.commitTo(index);
      this.releasePendingReadIndex();
      return true;
    }
    if (!this.log.maybeCommit(index, this.term)) return false;
    this.releasePendingReadIndex();
    return true;
  }

  private handleAppendResponse(message: Message, progress: Progress): void {
    progress.recentActive = true;
    if (message.reject) {
      let nextProbe = message.rejectHint;
      if (message.logTerm > 0)
        [nextProbe] = this.log.findConflictByTerm(message.rejectHint, message.logTerm);
      if (progress.maybeDecrTo(message.index, nextProbe)) {
        if (progress.state === 'replicate') progress.becomeProbe();
        this.sendAppend(message.from, true);
      }
      return;
    }
    const wasPaused = progress.isPaused();
    const updated = progress.maybeUpdate(message.index);
    if (updated || (progress.match === message.index && progress.state === 'probe')) {
      if (progress.state === 'probe') {
        progress.becomeReplicate();
      } else if (progress.state === 'snapshot' && progress.match + 1 >= this.log.firstIndex()) {
        progress.becomeProbe();
        progress.becomeReplicate();
      } else if (progress.state === 'replicate') {
        progress.inflights.freeLE(message.index);
      }
      if (this.maybeCommit()) this.broadcastAppend();
      else if (wasPaused) this.sendAppend(message.from, true);
      // Fill the window: each call sends one message, the window bounds how many.
      let sent = 0;
      while (sent < this.config.maxInflightMsgs && this.sendAppend(message.from, false)) sent++;
      if (message.from === this.leadTransferee && progress.match === this.log.lastIndex()) {
        this.send(makeMessage({ type: 'timeout-now', to: message.from }));
      }
    }
  }

  private handleHeartbeatResponse(message: Message, progress: Progress): void {
    progress.recentActive = true;
    progress.msgAppFlowPaused = false;
    // Acks may have been lost; free one slot so a full window cannot stall replication forever.
    if (progress.state === 'replicate' && progress.inflights.full())
      progress.inflights.freeFirstOne();
    if (progress.match < this.log.lastIndex()) this.sendAppend(message.from, true);
    if (message.context.byteLength === 0) return;
    const acks = this.readOnly.recvAck(message.from, message.context);
    if (acks === null || !hasQuorum(this.voters, (id) => acks.has(id))) return;
    for (const status of this.readOnly.advance(message.context)) {
      this.respondReadIndex(status.request, status.index);
    }
  }

  private leaderReadIndex(message: Message): StepResult {
    if (this.voters.length === 1 || this.bugs.readIndexWithoutHeartbeat === true) {
      this.respondReadIndex(message, this.log.committed);
      return ok;
    }
    // Until an entry of this term is committed, our commit index may lag the previous leader's.
    if (this.log.term(this.log.committed) !== this.term) {
      if (this.pendingReadIndexMessages.length >= readIndexPendingMax) return dropped;
      this.pendingReadIndexMessages.push(message);
      return ok;
    }
    return this.startReadIndexRound(message);
  }

  private startReadIndexRound(message: Message): StepResult {
    if (this.readOnly.size >= readIndexPendingMax) return dropped;
    this.readOnly.addRequest(this.log.committed, message);
    this.readOnly.recvAck(this.id, message.context);
    this.broadcastHeartbeat(message.context);
    return ok;
  }

  private releasePendingReadIndex(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (this.log.term(this.log.committed) !== this.term) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const message of pending) this.startReadIndexRound(message);
  }

  private respondReadIndex(request: Message, index: number): void {
    if (request.from === none || request.from === this.id) {
      this.readStates.push({ index, requestContext: request.context });
    } else {
      this.send(
        makeMessage({ type: 'read-index-resp', to: request.from, index, context: request.context }),
      );
    }
  }

  private leaderTransfer(target: MemberId): StepResult {
    if (!this.voters.includes(target)) return unknownPeer;
    if (this.leadTransferee === target) return ok; // already under way
    this.leadTransferee = none;
    if (target === this.id) return ok; // already leader
    // The transfer must finish within one election timeout, counted from now.
    this.electionElapsed = 0;
    this.leadTransferee = target;
    const progress = this.progress.get(target);
    assert(progress !== undefined, 'raft: voter without progress');
    if (progress.match === this.log.lastIndex()) {
      this.send(makeMessage({ type: 'timeout-now', to: target }));
    } else {
      this.sendAppend(target, true);
    }
    return ok;
  }

  private broadcastAppend(): void {
    for (const member of this.members()) if (member !== this.id) this.sendAppend(member, true);
  }

  private isMember(id: MemberId): boolean {
    return this.voters.includes(id) || this.learners.includes(id);
  }

  /** Voters and learners: everyone the leader replicates to. */
  private members(): MemberId[] {
    return [...this.voters, ...this.learners];
  }

  private broadcastHeartbeat(context?: Uint8Array): void {
    const heartbeatContext = context ?? this.readOnly.lastPendingContext() ?? emptyBytes;
    for (const member of this.members()) {
      if (member === this.id) continue;
      const progress = this.progress.get(member);
      assert(progress !== undefined, 'raft: member without progress');
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(progress.match, this.log.committed);
      this.send(makeMessage({ type: 'heartbeat', to: member, commit, context: heartbeatContext }));
    }
  }

  /** Sends the follower its next entries (or a snapshot). Returns whether a message went out. */
  private sendAppend(to: MemberId, sendIfEmpty: boolean): boolean {
    const progress = this.progress.get(to);
    assert(progress !== undefined, 'raft: voter without progress');
    if (progress.isPaused()) return false;
    const previousIndex = progress.next - 1;
    const previousTerm = this.log.term(previousIndex);
    const entries = this.log.entriesFrom(progress.next, this.config.maxSizePerMsgBytes);
    if (entries !== 'compacted' && entries.length === 0 && !sendIfEmpty) return false;
    if (previousTerm === null || entries === 'compacted') return this.sendSnapshot(to, progress);
    this.send(
      makeMessage({
        type: 'app',
        to,
        index: previousIndex,
        logTerm: previousTerm,
        entries,
        commit: this.log.committed,
      }),
    );
    progress.sentEntries(entries.length, progress.next);
    return true;
  }

  private sendSnapshot(to: MemberId, progress: Progress): boolean {
    // A follower that does not answer would not receive it either; wait until it does.
    if (!progress.recentActive) return false;
    let snapshot: Snapshot;
    try {
      snapshot = this.log.snapshot();
    } catch (error) {
      if (error instanceof RaftStorageError && error.kind === 'snapshot-temporarily-unavailable')
        return false;
      throw error;
    }
    assert(snapshot.metadata.index > 0, 'raft: need a non-empty snapshot');
    progress.becomeSnapshot(snapshot.metadata.index);
    this.send(makeMessage({ type: 'snap', to, snapshot }));
    return true;
  }

  // ---- Candidate and pre-candidate ----------------------------------------------------------

  private readonly stepCandidate = (message: Message): StepResult => {
    const myResponseType: MessageType =
      this.role === 'pre-candidate' ? 'pre-vote-resp' : 'vote-resp';
    switch (message.type) {
      case 'prop':
      case 'read-index':
      case 'transfer-leader':
        return dropped; // no leader to forward to
      case 'app':
        this.becomeFollower(message.term, message.from);
        this.handleAppend(message);
        return ok;
      case 'heartbeat':
        this.becomeFollower(message.term, message.from);
        this.handleHeartbeat(message);
        return ok;
      case 'snap':
        this.becomeFollower(message.term, message.from);
        this.handleSnapshot(message);
        return ok;
      default:
        break;
    }
    if (message.type !== myResponseType) return ok;
    const result = this.poll(message.from, !message.reject);
    if (result === 'won') {
      if (this.role === 'pre-candidate') {
        this.startCampaign('election');
      } else {
        this.becomeLeader();
        this.broadcastAppend();
      }
    } else if (result === 'lost') {
      this.becomeFollower(this.term, none);
    }
    return ok;
  };

  // ---- Follower ---------------------------------------------------------------------------

  private readonly stepFollower = (message: Message): StepResult => {
    switch (message.type) {
      case 'prop':
      case 'read-index':
      case 'transfer-leader':
        if (this.lead === none) return dropped;
        this.send({ ...message, to: this.lead, term: 0 });
        return ok;
      case 'app':
        this.electionElapsed = 0;
        this.lead = message.from;
        this.handleAppend(message);
        return ok;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = message.from;
        this.handleHeartbeat(message);
        return ok;
      case 'snap':
        this.electionElapsed = 0;
        this.lead = message.from;
        this.handleSnapshot(message);
        return ok;
      case 'timeout-now':
        // Transfer campaigns skip pre-vote: the old leader asked for this election.
        this.hup('transfer');
        return ok;
      case 'read-index-resp':
        this.readStates.push({ index: message.index, requestContext: message.context });
        return ok;
      default:
        return ok;
    }
  };

  /** Raft §5.3: accept entries after a matching (index, term), or say where to probe. */
  private handleAppend(message: Message): void {
    if (message.index < this.log.committed) {
      this.send(makeMessage({ type: 'app-resp', to: message.from, index: this.log.committed }));
      return;
    }
    // The bug pretends our entry at message.index has the leader's term, whatever it is.
    const logTerm =
      this.bugs.appendWithoutPreviousTermCheck === true
        ? (this.log.term(message.index) ?? message.logTerm)
        : message.logTerm;
    const lastNew = this.log.maybeAppend(message.index, logTerm, message.commit, message.entries);
    if (lastNew !== null) {
      this.send(makeMessage({ type: 'app-resp', to: message.from, index: lastNew }));
      return;
    }
    const hint = Math.min(message.index, this.log.lastIndex());
    const [hintIndex, hintTerm] = this.log.findConflictByTerm(hint, message.logTerm);
    this.send(
      makeMessage({
        type: 'app-resp',
        to: message.from,
        index: message.index,
        reject: true,
        rejectHint: hintIndex,
        logTerm: hintTerm,
      }),
    );
  }

  private handleHeartbeat(message: Message): void {
    this.log.commitTo(message.commit);
    this.send(makeMessage({ type: 'heartbeat-resp', to: message.from, context: message.context }));
  }

  private handleSnapshot(message: Message): void {
    const snapshot = message.snapshot;
    assert(snapshot !== null, 'raft: snap message without a snapshot');
    const { index, term } = snapshot.metadata;
    let answer = this.log.committed;
    if (index > this.log.committed) {
      if (this.log.matchTerm(index, term)) {
        // We already hold the snapshot's last entry: just move commit forward.
        this.log.commitTo(index);
        answer = this.log.committed;
      } else {
        this.log.restore(snapshot);
        // The snapshot carries the configuration as of its index.
        this.voters = sortedIds(snapshot.metadata.confState.voters);
        this.learners = sortedIds(snapshot.metadata.confState.learners);
        answer = this.log.lastIndex();
        this.config.logger?.info({ member: String(this.id), index, term }, 'restoring snapshot');
      }
    }
    this.send(makeMessage({ type: 'app-resp', to: message.from, index: answer }));
  }

  // ---- Helpers ----------------------------------------------------------------------------

  private send(message: Message): void {
    const from = message.from === none ? this.id : message.from;
    let term = message.term;
    const isVoteMessage =
      message.type === 'vote' ||
      message.type === 'pre-vote' ||
      message.type === 'vote-resp' ||
      message.type === 'pre-vote-resp';
    if (isVoteMessage) {
      assert(term !== 0, `raft: ${message.type} needs an explicit term`);
    } else if (
      message.type === 'prop' ||
      message.type === 'read-index' ||
      message.type === 'transfer-leader'
    ) {
      term = 0; // forwarded requests are local-like: the receiver's term rules them
    } else {
      term = this.term;
    }
    this.messages.push({ ...message, from, term });
  }

  private selfProgress(): Progress {
    const progress = this.progress.get(this.id);
    assert(progress !== undefined, 'raft: leader is not a voter');
    return progress;
  }

  private softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private hardStateEquals(a: HardState, b: HardState): boolean {
    return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
  }

  private assertNoOutstandingReady(): void {
    assert(this.outstandingReady === null, 'raft: ready() again before advance()');
  }
}

/** Creates a Raft node from durable state: LogStorage.initialState() plus the applied index. */
export function newRaftNode(config: RaftConfig): Raft {
  return new Raft(config);
}

function sortedIds(ids: readonly MemberId[]): MemberId[] {
  return [...new Set(ids)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
