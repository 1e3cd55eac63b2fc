import type { Entry, MemberId, RaftStatus, Snapshot } from '../../store/raft/index.js';
import { chainDigest } from './digest.js';
import type { Digest } from './digest.js';

/** A broken Raft property. The simulator stops at the first one and prints the seed. */
export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
}

function fail(message: string): never {
  throw new InvariantViolation(message);
}

/**
 * The chain digests of one member's durable log: digests[i] covers every entry up to index
 * base + i (d[i] = H(d[i-1], term[i], data[i])), so equal digests at an index mean equal prefixes.
 */
export interface LogChain {
  base: number;
  digests: Digest[];
  /** terms[i] is the term of the entry at base + i. */
  terms: number[];
}

/** State machine of a simulated member: how many entries it applied and a digest of them. */
export interface MachineState {
  index: number;
  digest: Digest;
}

/** Per-member monitor state, reset on restart where the rule says "within a life". */
interface MemberWatch {
  chain: LogChain;
  durableTerm: number;
  durableCommit: number;
  liveTerm: number;
  liveCommit: number;
  liveApplied: number;
  leaderTerm: number; // the last term in which we saw this member lead
}

/**
 * The Raft safety checkers, run after every simulator event. Each is incremental:
 * the work is proportional to what the event changed.
 */
export class Checker {
  /** Election safety: term -> the one leader of that term. */
  private readonly leaderByTerm = new Map<number, MemberId>();
  /** Log matching: the first digest seen for (index, term) pins it for every member. */
  private readonly pinned = new Map<string, Digest>();
  /** committed[i] = digest of the committed prefix up to i (holes where nobody committed i yet). */
  private readonly committed: (Digest | undefined)[] = [0];
  private maxCommitted = 0;
  /** State machine safety: applied[i] = digest of the applied sequence up to i. */
  private readonly applied: (Digest | undefined)[] = [0];
  private readonly watches = new Map<MemberId, MemberWatch>();
  /** Vote safety (Raft Fig. 2, votedFor): "member:term" -> the one candidate it voted for. */
  private readonly votes = new Map<string, MemberId>();
  checks = 0;

  addMember(id: MemberId): void {
    this.watches.set(id, {
      chain: { base: 0, digests: [0], terms: [0] },
      durableTerm: 0,
      durableCommit: 0,
      liveTerm: 0,
      liveCommit: 0,
      liveApplied: 0,
      leaderTerm: 0,
    });
  }

  private watch(id: MemberId): MemberWatch {
    const watch = this.watches.get(id);
    if (watch === undefined) fail(`unknown member ${id}`);
    return watch;
  }

  highestCommitted(): number {
    return this.maxCommitted;
  }

  chainAt(id: MemberId, index: number): Digest | undefined {
    const chain = this.watch(id).chain;
    return chain.digests[index - chain.base];
  }

  // ---- Durable writes (called by the harness as it persists a Ready) ----------------------

  installSnapshot(id: MemberId, snapshot: Snapshot, machine: MachineState): void {
    const { index, term } = snapshot.metadata;
    const digest = this.pinned.get(`${index}:${term}`);
    if (digest === undefined)
      fail(`member ${id} installed a snapshot at ${index}:${term} no log ever held`);
    this.watch(id).chain = { base: index, digests: [digest], terms: [term] };
    if (machine.index !== index)
      fail(`snapshot at ${index} carries machine state at ${machine.index}`);
    this.checkApplied(id, index, machine.digest);
  }

  /**
   * Entries reached member `id`'s disk. Like storage, the write replaces everything from the first
   * new entry on. `leaderTerm` is the term the member leads, if it leads: a leader never rewrites
   * or drops an entry of its own term (leader append-only, Raft Fig. 3).
   */
  appendEntries(id: MemberId, entries: readonly Entry[], leaderTerm: number | null): void {
    const watch = this.watch(id);
    const chain = watch.chain;
    // Entries at or below the snapshot are covered by it; storage skips them too.
    const usable = entries.filter((entry) => entry.index > chain.base);
    const first = usable[0];
    if (first === undefined) return;
    const position = first.index - chain.base;
    if (position > chain.digests.length) fail(`member ${id} appended ${first.index} after a gap`);
    const digests = chain.digests.slice(0, position);
    const terms = chain.terms.slice(0, position);
    let previous = digests[position - 1] as Digest;
    for (const entry of usable) {
      previous = chainDigest(previous, entry.term, entry.data);
      digests.push(previous);
      terms.push(entry.term);
      const key = `${entry.index}:${entry.term}`;
      const pinned = this.pinned.get(key);
      if (pinned === undefined) this.pinned.set(key, previous);
      else if (pinned !== previous)
        fail(`log matching: member ${id} holds ${key} with a different history`);
    }
    for (let i = position; i < chain.digests.length; i++) {
      if (chain.digests[i] === digests[i]) continue;
      const index = chain.base + i;
      if (index <= watch.durableCommit)
        fail(`member ${id} lost or overwrote committed entry ${index}`);
      if (leaderTerm !== null && chain.terms[i] === leaderTerm) {
        fail(`leader ${id} rewrote or dropped its own entry ${index} of term ${leaderTerm}`);
      }
    }
    chain.digests = digests;
    chain.terms = terms;
  }

  compact(id: MemberId, index: number): void {
    const chain = this.watch(id).chain;
    if (index <= chain.base) return;
    chain.digests = chain.digests.slice(index - chain.base);
    chain.terms = chain.terms.slice(index - chain.base);
    chain.base = index;
  }

  hardState(id: MemberId, term: number, vote: MemberId, commit: number): void {
    const watch = this.watch(id);
    // Vote safety: a vote that reached disk may have been announced; it never changes in its term.
    // (A vote lost with an unwritten Ready was never sent, so voting again is legal.)
    if (vote !== 0n) {
      const key = `${id}:${term}`;
      const known = this.votes.get(key);
      if (known === undefined) this.votes.set(key, vote);
      else if (known !== vote) fail(`member ${id} voted for ${known} and ${vote} in term ${term}`);
    }
    if (term < watch.durableTerm)
      fail(`member ${id} durable term went back ${watch.durableTerm} -> ${term}`);
    watch.durableTerm = term;
    if (commit < watch.durableCommit)
      fail(`member ${id} durable commit went back ${watch.durableCommit} -> ${commit}`);
    const last = watch.chain.base + watch.chain.digests.length - 1;
    if (commit > last) fail(`member ${id} commit ${commit} beyond its durable log ${last}`);
    if (commit > watch.durableCommit) this.recordCommit(id, commit);
    watch.durableCommit = commit;
  }

  /** A crash lost unsynced writes: the durable commit may go back, but only to a synced value. */
  lostUnsyncedCommit(id: MemberId, commit: number): void {
    const watch = this.watch(id);
    if (commit > watch.durableCommit)
      fail(`member ${id} synced commit ${commit} ahead of its disk`);
    watch.durableCommit = commit;
  }

  /** Committed entries are never lost or changed: every member agrees with the committed prefix. */
  private recordCommit(id: MemberId, commit: number): void {
    const chain = this.watch(id).chain;
    const from = Math.max(chain.base, 1);
    const previousMax = this.maxCommitted;
    // Compare the overlap with what others committed, and extend the committed prefix.
    const check = Math.min(commit, previousMax);
    if (check >= from) {
      const known = this.committed[check];
      if (known !== undefined && known !== chain.digests[check - chain.base]) {
        fail(
          `member ${id} committed ${commit} but its entry ${check} differs from the committed one`,
        );
      }
    }
    for (let i = Math.max(previousMax + 1, from); i <= commit; i++) {
      this.committed[i] = chain.digests[i - chain.base];
    }
    const known = this.committed[commit];
    const mine = chain.digests[commit - chain.base];
    if (known !== undefined && mine !== undefined && known !== mine)
      fail(`member ${id} commit ${commit} disagrees`);
    this.maxCommitted = Math.max(previousMax, commit);
  }

  /** State machine safety: every member applies the same entry at each index. */
  checkApplied(id: MemberId, index: number, digest: Digest): void {
    const known = this.applied[index];
    if (known === undefined) this.applied[index] = digest;
    else if (known !== digest)
      fail(`state machine safety: member ${id} applied a different entry at ${index}`);
  }

  // ---- Live state (called after every event for the members it touched) -------------------

  observe(status: RaftStatus, machine: MachineState): void {
    this.checks++;
    const watch = this.watch(status.id);
    if (status.term < watch.liveTerm)
      fail(`member ${status.id} term went back ${watch.liveTerm} -> ${status.term}`);
    if (status.commit < watch.liveCommit) fail(`member ${status.id} commit went back`);
    if (status.applied < watch.liveApplied) fail(`member ${status.id} applied went back`);
    if (status.applied > status.commit)
      fail(`member ${status.id} applied ${status.applied} > commit ${status.commit}`);
    if (machine.index !== status.applied)
      fail(`member ${status.id} machine at ${machine.index}, raft applied ${status.applied}`);
    watch.liveTerm = status.term;
    watch.liveCommit = status.commit;
    watch.liveApplied = status.applied;
    if (status.role !== 'leader') return;
    const leader = this.leaderByTerm.get(status.term);
    if (leader === undefined) this.leaderByTerm.set(status.term, status.id);
    else if (leader !== status.id)
      fail(`election safety: ${leader} and ${status.id} both lead term ${status.term}`);
    if (watch.leaderTerm !== status.term) {
      watch.leaderTerm = status.term;
      this.checkLeaderCompleteness(status.id);
    }
  }

  /** Raft §5.4: a new leader's (durable) log holds every committed entry. */
  private checkLeaderCompleteness(id: MemberId): void {
    const index = this.maxCommitted;
    if (index === 0) return;
    const chain = this.watch(id).chain;
    if (index < chain.base) return; // covered by the leader's snapshot, which was committed
    const mine = chain.digests[index - chain.base];
    if (mine === undefined)
      fail(`leader completeness: new leader ${id} lacks committed entry ${index}`);
    const known = this.committed[index];
    if (known !== undefined && known !== mine)
      fail(`leader completeness: new leader ${id} differs at ${index}`);
  }

  /** Life-scoped monitors restart with the member (durable ones do not). */
  restarted(id: MemberId): void {
    const watch = this.watch(id);
    watch.liveCommit = 0;
    watch.liveApplied = 0;
    watch.leaderTerm = 0;
    watch.liveTerm = watch.durableTerm;
  }
}
