import { assert } from '../../shared/assert.js';
import type {
  ConfState, Entry, HardState, Message, RaftNode, RaftStatus, Ready, ReadState, Snapshot, StepResult,
} from '../raft/types.js';

/**
 * The Raft node of a one-member cluster: it is always the leader, and an entry is committed as
 * soon as it is durably appended, so each Ready carries the same entries to persist and to apply.
 * The multi-member core (store/raft) replaces it behind the same RaftNode interface.
 *
 * Unlike the core, ready() hands its contents over at once, so the server may take the next
 * Ready while the previous one's fsync runs (pipelining: the disk never waits for the CPU);
 * advance() calls must come in the order the Readies were taken.
 */
export class SoloNode implements RaftNode {
  private term: number;
  private commit: number;
  private applied: number;
  private lastIndex: number;
  private unstable: Entry[] = [];
  private readStates: ReadState[] = [];
  private hardStateDirty: boolean;
  private announced = false;

  constructor(
    readonly id: bigint,
    durable: { readonly term: number; readonly lastIndex: number; readonly applied: number },
  ) {
    // Every start is a new election in a one-member cluster, as etcd's term shows after restarts.
    this.term = Math.max(durable.term + 1, 2);
    this.lastIndex = durable.lastIndex;
    this.commit = durable.lastIndex;
    this.applied = durable.applied;
    this.hardStateDirty = true;
    // A new leader appends an empty entry of its term.
    this.append(new Uint8Array(0));
  }

  private append(data: Uint8Array): void {
    this.lastIndex++;
    this.unstable.push({ term: this.term, index: this.lastIndex, type: 'normal', data });
    this.commit = this.lastIndex;
    this.hardStateDirty = true;
  }

  tick(): void {}

  step(_message: Message): StepResult {
    return { ok: false, reason: 'unknown-peer' };
  }

  propose(data: Uint8Array): StepResult {
    this.append(data);
    return { ok: true };
  }

  /** A one-member cluster changes no configuration: it is not a Raft group (see the class note). */
  proposeConfChange(_data: Uint8Array): StepResult {
    return { ok: false, reason: 'proposal-dropped' };
  }

  applyConfChange(): ConfState {
    return this.confState();
  }

  confState(): ConfState {
    return { voters: [this.id], learners: [] };
  }

  readIndex(context: Uint8Array): StepResult {
    this.readStates.push({ index: this.commit, requestContext: context });
    return { ok: true };
  }

  transferLeadership(target: bigint): StepResult {
    return target === this.id ? { ok: true } : { ok: false, reason: 'unknown-peer' };
  }

  campaign(): StepResult {
    return { ok: true };
  }

  hasReady(): boolean {
    return this.unstable.length > 0 || this.readStates.length > 0 || this.hardStateDirty || !this.announced;
  }

  ready(): Ready {
    const hardState: HardState | null = this.hardStateDirty ? { term: this.term, vote: this.id, commit: this.commit } : null;
    const entries = this.unstable;
    const ready: Ready = {
      // The first Ready announces this member as leader (the server promotes its lessor then).
      softState: this.announced ? null : { leader: this.id, role: 'leader' },
      hardState,
      entries,
      snapshot: null,
      messages: [],
      committed: entries,
      readStates: this.readStates,
      mustSync: entries.length > 0 || hardState !== null,
    };
    // Handed over: proposals made while this Ready is being persisted go to the next one.
    this.unstable = [];
    this.readStates = [];
    this.hardStateDirty = false;
    this.announced = true;
    return ready;
  }

  advance(ready: Ready): void {
    const first = ready.committed[0];
    const last = ready.committed[ready.committed.length - 1];
    if (first !== undefined && last !== undefined) {
      assert(first.index > this.applied, 'advance() out of order');
      this.applied = last.index;
    }
  }

  compact(_index: number, _snapshot: Snapshot): void {}

  currentTerm(): number {
    return this.term;
  }

  status(): RaftStatus {
    return {
      id: this.id, term: this.term, vote: this.id, commit: this.commit, applied: this.applied,
      lead: this.id, role: 'leader', lastIndex: this.lastIndex,
    };
  }
}
