import { seededRandom } from '../../shared/random.js';
import type { Random } from '../../shared/random.js';
import { AssertionError } from '../../shared/assert.js';
import { MemoryLogStorage, Raft, makeMessage } from '../../store/raft/index.js';
import type {
  ConfChange,
  ConfState,
  MemberId,
  Message,
  RaftTestingBugs,
  Ready,
  Snapshot,
} from '../../store/raft/index.js';
import { Checker, InvariantViolation } from './checker.js';
import type { MachineState } from './checker.js';
import { chainDigest } from './digest.js';
import { EventQueue } from './event-queue.js';

/** Virtual milliseconds per tick; etcd's default heartbeat is 100 ms, ours is scaled down. */
const tickMs = 10;
const electionTicks = 10;
const heartbeatTicks = 1;
const electionTimeoutMs = tickMs * electionTicks;
/** Upper bound on events per run, so a livelocked run ends as a failure instead of hanging. */
const eventsMax = 400_000;
/** Readies drained per member per event (committed entries come in size-limited batches). */
const readiesPerDrainMax = 10_000;
const traceLength = 200;

export interface SimOptions {
  readonly seed: number;
  /** Core bugs switched on in every member (self-tests). */
  readonly bugs?: RaftTestingBugs;
  /** A disk that loses the vote on crash: the "vote not persisted" self-test. */
  readonly diskForgetsVote?: boolean;
  /** A driver that sends a Ready's messages before its write is durable ("ack before fsync"). */
  readonly sendBeforePersist?: boolean;
  /** Fault-phase length in virtual ms. */
  readonly faultPhaseMs?: number;
  /** Liveness budget after healing, in election timeouts. */
  readonly livenessElectionTimeouts?: number;
}

/** Membership chaos is drawn from its own stream, so the fault mixes of earlier seeds stay as they were. */
function drawsMembershipChanges(seed: number): boolean {
  return seededRandom(seed * 7 + 5).float() < 0.5;
}

/** The seed's fault mix ("swarm testing"): every run exercises a different blend. */
export interface FaultMix {
  readonly size: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly delayMeanMs: number;
  readonly chaosIntervalMs: number;
  readonly clientIntervalMs: number;
  readonly crashWeight: number;
  readonly partitionWeight: number;
  readonly compaction: boolean;
  readonly maxInflightMsgs: number;
  readonly maxSizePerMsgBytes: number;
  /** 0: the Ready is written at once; otherwise the write takes about this long. */
  readonly asyncDiskMs: number;
  /** The transport reports messages it could not deliver over a cut link or to a down member. */
  readonly reportUnreachable: boolean;
  /**
   * A crash loses writes made since the last fsync: Readies with mustSync false (a commit-only
   * hard state and the entries applied with it) may vanish, so commit and applied go back.
   */
  readonly loseUnsyncedWrites: boolean;
}

export interface SimResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly failure: string | null;
  readonly mix: FaultMix;
  readonly events: number;
  readonly virtualMs: number;
  readonly committed: number;
  readonly leaderChanges: number;
  readonly crashes: number;
  /** Crashes that lost a commit-only write (commit and applied went back on restart). */
  readonly unsyncedLost: number;
  readonly snapshotsSent: number;
  readonly readsChecked: number;
  /** Conf changes the leader accepted (removals and re-additions of voters). */
  readonly confChanges: number;
  /** A hash of the run's outcome: equal across two runs of one seed (determinism check). */
  readonly fingerprint: number;
  readonly trace: readonly string[];
}

interface Member {
  readonly id: MemberId;
  readonly storage: MemoryLogStorage;
  node: Raft | null;
  life: number;
  machine: MachineState;
  tickIntervalMs: number;
  random: Random;
  /** A Ready is being written (asynchronous disk); the next one waits. */
  writing: boolean;
  /** Commit and machine as of the last fsync: what survives a crash with loseUnsyncedWrites. */
  synced: { commit: number; machine: MachineState; confState: ConfState };
  /** The configuration as this member applied it (the server keeps it with its state). */
  confState: ConfState;
}

function chooseMix(random: Random): FaultMix {
  const pick = <T>(values: readonly T[]): T => values[random.int(values.length)] as T;
  return {
    size: pick([3, 3, 5]),
    preVote: random.float() < 0.75,
    checkQuorum: random.float() < 0.75,
    dropRate: pick([0, 0.01, 0.05, 0.15]),
    duplicateRate: pick([0, 0.02, 0.1]),
    delayMeanMs: pick([1, 3, 8, 12]),
    chaosIntervalMs: pick([50, 150, 400]),
    clientIntervalMs: pick([5, 20, 60]),
    crashWeight: pick([0, 1, 3]),
    partitionWeight: pick([0, 1, 3]),
    compaction: random.float() < 0.6,
    maxInflightMsgs: pick([2, 16, 256]),
    // Small limits force many messages per catch-up; 1 MiB is etcd's default.
    maxSizePerMsgBytes: pick([256, 4096, 1 << 20]),
    asyncDiskMs: pick([0, 0, 0.5, 3]),
    reportUnreachable: random.float() < 0.5,
    loseUnsyncedWrites: random.float() < 0.5,
  };
}

function encodeMachine(machine: MachineState): Uint8Array {
  const view = new DataView(new ArrayBuffer(16));
  view.setFloat64(0, machine.index);
  view.setFloat64(8, machine.digest);
  return new Uint8Array(view.buffer);
}

function decodeMachine(data: Uint8Array): MachineState {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { index: view.getFloat64(0), digest: view.getFloat64(8) };
}

function linkKey(from: MemberId, to: MemberId): string {
  return `${from}>${to}`;
}

/**
 * A whole cluster in one process, driven by one seed: a network that drops, duplicates, delays
 * (and so reorders) and partitions; crash-restart that keeps only what a member made durable; and
 * clients proposing unique payloads. The checker runs after every event.
 */
export class Simulation {
  private readonly random: Random;
  private readonly networkRandom: Random;
  private readonly chaosRandom: Random;
  readonly mix: FaultMix;
  private readonly queue = new EventQueue();
  private readonly members: Member[] = [];
  private readonly confState: ConfState;
  private readonly checker = new Checker();
  private readonly cut = new Set<string>();
  private now = 0;
  private events = 0;
  private healed = false;
  private proposalCounter = 0;
  private readCounter = 0;
  private readonly pendingReads = new Map<string, number>();
  private readsChecked = 0;
  private crashes = 0;
  private unsyncedLost = 0;
  private snapshotsSent = 0;
  private leaderChanges = 0;
  private probeAppliedBy = new Map<string, Set<MemberId>>();
  private livenessDone = false;
  private quorumProbeAtMs: number | null = null;
  /** A ring of the last events, formatted only when a run fails. */
  private readonly trace: (string | Message)[] = [];
  private readonly traceTimes: number[] = [];
  private traceNext = 0;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  /** Voters are removed and added back during the fault phase (one change at a time). */
  private readonly membershipChanges: boolean;
  private membershipChangesProposed = 0;

  constructor(private readonly options: SimOptions) {
    this.membershipChanges = drawsMembershipChanges(options.seed);
    this.random = seededRandom(options.seed);
    // Separate streams, so adding a fault type does not shift the draws of the others.
    this.networkRandom = seededRandom(options.seed * 7 + 1);
    this.chaosRandom = seededRandom(options.seed * 7 + 2);
    this.mix = chooseMix(this.random);
    // With pre-vote, as the server runs: without it, a member that was out of the configuration
    // comes back with an inflated term and stalls the cluster for longer than the liveness budget.
    this.membershipChanges = this.membershipChanges && this.mix.preVote;
    const voters: MemberId[] = [];
    for (let i = 1; i <= this.mix.size; i++) voters.push(BigInt(i));
    this.confState = { voters, learners: [] };
    for (const id of voters) {
      const member: Member = {
        id,
        storage: new MemoryLogStorage(this.confState),
        node: null,
        life: 0,
        machine: { index: 0, digest: 0 },
        tickIntervalMs: tickMs,
        writing: false,
        synced: { commit: 0, machine: { index: 0, digest: 0 }, confState: this.confState },
        confState: this.confState,
        random: seededRandom(options.seed * 7 + 3 + Number(id)),
      };
      this.members.push(member);
      this.checker.addMember(id);
      this.start(member);
    }
  }

  run(): SimResult {
    const faultPhaseMs = this.options.faultPhaseMs ?? 4000;
    // A quorum must apply a probe within the budget; stragglers may need longer to catch up
    // (thousands of entries through a slow, size-limited pipe), so they get four times as long.
    const quorumMs = (this.options.livenessElectionTimeouts ?? 10) * electionTimeoutMs;
    const livenessMs = 4 * quorumMs;
    this.queue.push(this.mix.chaosIntervalMs, () => this.chaos(faultPhaseMs));
    this.queue.push(this.mix.clientIntervalMs, () => this.client(faultPhaseMs));
    this.queue.push(faultPhaseMs, () => this.heal());
    let failure: string | null = null;
    try {
      this.loop(faultPhaseMs + livenessMs);
      if (this.quorumProbeAtMs === null || this.quorumProbeAtMs > faultPhaseMs + quorumMs) {
        failure = `liveness: no probe write applied on a quorum within ${quorumMs} ms of healing`;
      } else if (!this.livenessDone) {
        failure = `liveness: no probe write applied on every member within ${livenessMs} ms of healing`;
      } else {
        this.checkConverged();
      }
    } catch (error) {
      if (error instanceof InvariantViolation || error instanceof AssertionError) {
        failure = `${error.name}: ${error.message}`;
      } else {
        throw error;
      }
    }
    return this.result(failure);
  }

  private loop(endMs: number): void {
    while (this.queue.size > 0 && this.events < eventsMax) {
      const event = this.queue.pop();
      if (event === undefined || event.at > endMs) break;
      this.now = event.at;
      this.events++;
      event.run();
      if (this.livenessDone) return;
    }
    if (this.events >= eventsMax) throw new InvariantViolation(`run exceeded ${eventsMax} events`);
  }

  // ---- Members: start, tick, drain, crash ------------------------------------------------

  private start(member: Member): void {
    member.life++;
    member.writing = false;
    // Drift: each life ticks at its own pace, within ±2 %.
    member.tickIntervalMs = tickMs * (0.98 + 0.04 * member.random.float());
    member.node = new Raft({
      id: member.id,
      electionTicks,
      heartbeatTicks,
      storage: member.storage,
      applied: member.machine.index,
      maxSizePerMsgBytes: this.mix.maxSizePerMsgBytes,
      maxInflightMsgs: this.mix.maxInflightMsgs,
      preVote: this.mix.preVote,
      checkQuorum: this.mix.checkQuorum,
      random: member.random,
      ...(this.options.bugs !== undefined ? { testingBugs: this.options.bugs } : {}),
    });
    this.observe(member);
    const life = member.life;
    this.queue.push(this.now + member.tickIntervalMs * member.random.float(), () =>
      this.tick(member, life),
    );
  }

  private tick(member: Member, life: number): void {
    if (member.node === null || member.life !== life) return;
    member.node.tick();
    this.drain(member);
    if (member.node !== null && member.life === life) {
      this.queue.push(this.now + member.tickIntervalMs, () => this.tick(member, life));
    }
  }

  /**
   * Handles every Ready: persist (one atomic write), then send, then apply, then advance. With an
   * asynchronous disk the write completes later and inputs keep arriving meanwhile, as in the
   * server; the next Ready waits for this one.
   */
  private drain(member: Member): void {
    for (let i = 0; i < readiesPerDrainMax; i++) {
      const node = member.node;
      if (node === null) return;
      if (member.writing || !node.hasReady()) {
        this.observe(member);
        return;
      }
      const ready = node.ready();
      const leaderTerm = node.status().role === 'leader' ? node.status().term : null;
      if (this.options.sendBeforePersist === true) {
        for (const message of ready.messages) this.send(member, message);
      }
      if (this.mix.asyncDiskMs > 0) {
        member.writing = true;
        const life = member.life;
        const doneAt = this.now + this.mix.asyncDiskMs * (0.2 + member.random.float());
        this.queue.push(doneAt, () => this.finishWrite(member, life, ready, leaderTerm));
        this.observe(member);
        return;
      }
      if (!this.completeReady(member, ready, leaderTerm)) return;
    }
    throw new InvariantViolation(
      `member ${member.id} produced ${readiesPerDrainMax} Readies in a row`,
    );
  }

  private finishWrite(member: Member, life: number, ready: Ready, leaderTerm: number | null): void {
    if (member.node === null || member.life !== life) return; // crashed: the write never happened
    member.writing = false;
    if (this.completeReady(member, ready, leaderTerm)) this.drain(member);
  }

  /** Returns false when the member crashed on the way. */
  private completeReady(member: Member, ready: Ready, leaderTerm: number | null): boolean {
    const node = member.node;
    if (node === null) return false;
    // A crash may land before the write (all of it lost, nothing was sent), after it (durable,
    // but the messages never left) or after the messages left.
    const crashRoll = this.healed ? 1 : this.chaosRandom.float();
    if (crashRoll < 0.002 * this.mix.crashWeight) {
      this.crash(member, 'before persist');
      return false;
    }
    this.persist(member, ready, leaderTerm);
    // Later fsyncs make earlier writes durable too (a log is written in order).
    if (ready.mustSync) this.markSynced(member);
    if (crashRoll < 0.004 * this.mix.crashWeight) {
      this.crash(member, 'after persist');
      return false;
    }
    if (this.options.sendBeforePersist !== true) {
      for (const message of ready.messages) this.send(member, message);
    }
    this.checkReadStates(member, ready);
    node.advance(ready);
    if (crashRoll < 0.006 * this.mix.crashWeight) {
      this.crash(member, 'after send');
      return false;
    }
    return true;
  }

  /** The durable write of one Ready: snapshot, entries, hard state and applied entries together. */
  private persist(member: Member, ready: Ready, leaderTerm: number | null): void {
    const node = member.node;
    if (node === null) return;
    if (ready.softState !== null && ready.softState.role === 'leader') this.leaderChanges++;
    if (ready.snapshot !== null) {
      member.storage.applySnapshot(ready.snapshot);
      member.machine = decodeMachine(ready.snapshot.data);
      member.confState = ready.snapshot.metadata.confState;
      member.storage.setConfState(member.confState);
      this.checker.installSnapshot(member.id, ready.snapshot, member.machine);
    }
    if (ready.entries.length > 0) {
      member.storage.append(ready.entries);
      this.checker.appendEntries(member.id, ready.entries, leaderTerm);
    }
    if (ready.hardState !== null) {
      member.storage.setHardState(ready.hardState);
      this.checker.hardState(
        member.id,
        ready.hardState.term,
        ready.hardState.vote,
        ready.hardState.commit,
      );
    }
    for (const entry of ready.committed) {
      if (entry.index !== member.machine.index + 1) {
        throw new InvariantViolation(
          `member ${member.id} applies ${entry.index} after ${member.machine.index}`,
        );
      }
      const digest = chainDigest(member.machine.digest, 0, entry.data);
      member.machine = { index: entry.index, digest };
      if (entry.type === 'conf-change') this.applyConfChange(member, node, entry.data);
      this.checker.checkApplied(member.id, entry.index, digest);
      this.noteProbe(member, entry.data);
    }
  }

  private observe(member: Member): void {
    if (member.node !== null) this.checker.observe(member.node.status(), member.machine);
  }

  private markSynced(member: Member): void {
    member.synced = { commit: member.storage.hardStateNow().commit, machine: member.machine, confState: member.confState };
  }

  private applyConfChange(member: Member, node: Raft, data: Uint8Array): void {
    const change = JSON.parse(this.decoder.decode(data)) as { type: ConfChange['type']; id: string };
    member.confState = node.applyConfChange({ type: change.type, id: BigInt(change.id) });
    member.storage.setConfState(member.confState);
    // As the server does: a member that applied its own removal stops (until heal restarts it).
    if (change.type === 'remove' && BigInt(change.id) === member.id && !this.healed) {
      const life = member.life;
      this.queue.push(this.now, () => {
        if (member.node === null || member.life !== life) return;
        this.record(`stop ${member.id} (removed)`);
        member.node = null;
        member.life++; // no automatic restart
      });
    }
  }

  private crash(member: Member, when: string): void {
    if (member.node === null) return;
    this.record(`crash ${member.id} (${when})`);
    member.node = null;
    this.crashes++;
    if (this.mix.loseUnsyncedWrites) {
      // mustSync is false only when term, vote, entries and snapshot are unchanged, so only the
      // commit index and what was applied with it can be lost.
      const hardState = member.storage.hardStateNow();
      if (hardState.commit > member.synced.commit) this.unsyncedLost++;
      member.storage.setHardState({ ...hardState, commit: member.synced.commit });
      member.machine = member.synced.machine;
      // The configuration goes back with the applied entries; they are applied again after restart.
      member.confState = member.synced.confState;
      member.storage.setConfState(member.confState);
      this.checker.lostUnsyncedCommit(member.id, member.synced.commit);
    }
    if (this.options.diskForgetsVote === true) {
      const hardState = member.storage.hardStateNow();
      member.storage.setHardState({ ...hardState, vote: 0n });
    }
    // Half the restarts are quick, inside one election, where a forgotten vote would matter.
    const downMs =
      this.chaosRandom.float() < 0.5
        ? 1 + this.chaosRandom.int(tickMs * 3)
        : 20 + this.chaosRandom.int(10 * electionTimeoutMs);
    const life = member.life;
    this.queue.push(this.now + downMs, () => {
      if (member.node === null && member.life === life) this.restart(member);
    });
  }

  private restart(member: Member): void {
    this.record(`restart ${member.id}`);
    this.checker.restarted(member.id);
    this.start(member);
  }

  // ---- Network ----------------------------------------------------------------------------

  private send(sender: Member, message: Message): void {
    const random = this.networkRandom;
    const copies = random.float() < this.mix.duplicateRate ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) {
      const isDropped = random.float() < this.mix.dropRate;
      // Exponential delay: a long tail reorders messages on the same link.
      const delayMs = 0.2 - this.mix.delayMeanMs * Math.log(1 - random.float());
      const senderLife = sender.life;
      this.queue.push(this.now + delayMs, () =>
        this.deliver(sender, senderLife, message, isDropped),
      );
    }
  }

  private deliver(sender: Member, senderLife: number, message: Message, isDropped: boolean): void {
    const target = this.members[Number(message.to) - 1];
    const isLost =
      isDropped ||
      this.cut.has(linkKey(message.from, message.to)) ||
      target === undefined ||
      target.node === null;
    if (message.type === 'snap') {
      // The transport reports a snapshot's fate to the sender, as etcd's does.
      if (!isLost) this.snapshotsSent++;
      this.reportSnapshot(sender, senderLife, message.to, isLost);
    }
    const isUnreachable = this.cut.has(linkKey(message.from, message.to)) || target?.node === null;
    if (isUnreachable && this.mix.reportUnreachable)
      this.reportUnreachable(sender, senderLife, message.to);
    if (isLost || target === undefined || target.node === null) return;
    this.record(message);
    const result = target.node.step(message);
    const isSenderOut = !target.confState.voters.includes(message.from) && !target.confState.learners.includes(message.from);
    if (!result.ok && result.reason === 'unknown-peer' && isSenderOut) this.stopRemoved(sender, senderLife);
    this.drain(target);
  }

  /**
   * A member that talks to a peer which no longer counts it a member learns it was removed and
   * stops, as etcd's transport tells it; it comes back only when it is added again.
   */
  private stopRemoved(member: Member, life: number): void {
    if (member.node === null || member.life !== life) return;
    if (member.confState.voters.includes(member.id) && this.members.some((m) => m.node !== null && m.confState.voters.includes(member.id))) return;
    this.record(`stop ${member.id} (told it was removed)`);
    member.node = null;
    member.life++;
  }

  /** Like a transport whose connection failed: the leader falls back to probing that member. */
  private reportUnreachable(sender: Member, senderLife: number, target: MemberId): void {
    if (sender.node === null || sender.life !== senderLife) return;
    sender.node.step(makeMessage({ type: 'unreachable', to: sender.id, from: target }));
    this.drain(sender);
  }

  private reportSnapshot(
    sender: Member,
    senderLife: number,
    target: MemberId,
    failed: boolean,
  ): void {
    if (sender.node === null || sender.life !== senderLife) return;
    sender.node.step(
      makeMessage({ type: 'snap-status', to: sender.id, from: target, reject: failed }),
    );
    this.drain(sender);
  }

  // ---- Faults and clients -----------------------------------------------------------------

  private chaos(faultPhaseMs: number): void {
    if (this.healed) return;
    const random = this.chaosRandom;
    const actions: [number, () => void][] = [
      [1, () => this.propose(1 + random.int(3))],
      [this.mix.partitionWeight, () => this.partition()],
      [this.mix.partitionWeight, () => this.healPartition()],
      [this.mix.crashWeight, () => this.crashRandom()],
      [1, () => this.transferLeadership()],
      [this.mix.compaction ? 3 : 0, () => this.compactRandom()],
      [this.membershipChanges ? 1 : 0, () => this.changeMembership()],
    ];
    const total = actions.reduce((sum, [weight]) => sum + weight, 0);
    let roll = random.float() * total;
    for (const [weight, action] of actions) {
      roll -= weight;
      if (roll < 0) {
        action();
        break;
      }
    }
    const next = this.now + this.mix.chaosIntervalMs * (0.5 + random.float());
    if (next < faultPhaseMs) this.queue.push(next, () => this.chaos(faultPhaseMs));
  }

  /** Clients: a steady stream of unique proposals and linearizable reads at random members. */
  private client(faultPhaseMs: number): void {
    if (this.healed) return;
    if (this.chaosRandom.float() < 0.8) this.propose(1 + this.chaosRandom.int(2));
    else this.issueRead();
    const next = this.now + this.mix.clientIntervalMs * (0.5 + this.chaosRandom.float());
    if (next < faultPhaseMs) this.queue.push(next, () => this.client(faultPhaseMs));
  }

  private liveMembers(): Member[] {
    return this.members.filter((member) => member.node !== null);
  }

  private randomLive(): Member | undefined {
    const live = this.liveMembers();
    return live[this.chaosRandom.int(live.length)];
  }

  private propose(count: number): void {
    const member = this.randomLive();
    if (member === undefined || member.node === null) return;
    for (let i = 0; i < count; i++) {
      member.node.propose(this.encoder.encode(`p${this.proposalCounter++}`));
    }
    this.drain(member);
  }

  /** A ReadIndex answer must be >= every commit index reached before the read was issued. */
  private issueRead(): void {
    const member = this.randomLive();
    if (member === undefined || member.node === null) return;
    const key = `r${member.id}-${this.readCounter++}`;
    let floor = this.checker.highestCommitted();
    for (const other of this.liveMembers())
      floor = Math.max(floor, other.node?.status().commit ?? 0);
    this.pendingReads.set(key, floor);
    member.node.readIndex(this.encoder.encode(key));
    this.drain(member);
  }

  private checkReadStates(member: Member, ready: Ready): void {
    for (const state of ready.readStates) {
      const key = this.decoder.decode(state.requestContext);
      const floor = this.pendingReads.get(key);
      if (floor === undefined) continue; // a duplicate answer, or a request from a previous life
      this.pendingReads.delete(key);
      this.readsChecked++;
      if (state.index < floor) {
        throw new InvariantViolation(
          `read-index at member ${member.id} answered ${state.index} < committed ${floor}`,
        );
      }
    }
  }

  private partition(): void {
    const random = this.chaosRandom;
    const ids = this.members.map((member) => member.id);
    this.cut.clear();
    const shape = random.int(4);
    const cutBoth = (a: MemberId, b: MemberId): void => {
      this.cut.add(linkKey(a, b));
      this.cut.add(linkKey(b, a));
    };
    if (shape === 0) {
      // Random halves.
      const side = new Map(ids.map((id) => [id, random.int(2)]));
      for (const a of ids)
        for (const b of ids) if (side.get(a) !== side.get(b)) this.cut.add(linkKey(a, b));
    } else if (shape === 1) {
      // Isolate one member, often the leader.
      const leader = this.liveMembers().find((member) => member.node?.status().role === 'leader');
      const victim =
        leader !== undefined && random.float() < 0.6
          ? leader.id
          : (ids[random.int(ids.length)] as MemberId);
      for (const other of ids) if (other !== victim) cutBoth(victim, other);
    } else if (shape === 2) {
      // Ring: each member reaches only its neighbours (a bridge when there are 3).
      for (let i = 0; i < ids.length; i++) {
        for (let j = 0; j < ids.length; j++) {
          const distance = Math.min(Math.abs(i - j), ids.length - Math.abs(i - j));
          if (distance > 1) cutBoth(ids[i] as MemberId, ids[j] as MemberId);
        }
      }
    } else {
      // One-way cuts.
      for (const a of ids)
        for (const b of ids) if (a !== b && random.float() < 0.3) this.cut.add(linkKey(a, b));
    }
    this.record(`partition shape ${shape}: ${[...this.cut].join(' ')}`);
  }

  private healPartition(): void {
    this.cut.clear();
    this.record('heal partition');
  }

  private crashRandom(): void {
    const member = this.randomLive();
    if (member !== undefined) this.crash(member, 'idle');
  }

  private transferLeadership(): void {
    const leader = this.liveMembers().find((member) => member.node?.status().role === 'leader');
    if (leader === undefined || leader.node === null) return;
    const target = this.members[this.chaosRandom.int(this.members.length)] as Member;
    this.record(`transfer ${leader.id} -> ${target.id}`);
    leader.node.transferLeadership(target.id);
    this.drain(leader);
  }

  /** Takes a state-machine snapshot and compacts the log, keeping a few entries for slow followers. */
  private compactRandom(): void {
    const member = this.randomLive();
    if (member === undefined || member.node === null) return;
    const snapshotIndex = member.machine.index;
    if (snapshotIndex <= member.storage.snapshot().metadata.index) return;
    const snapshot: Snapshot = member.storage.createSnapshot(
      snapshotIndex,
      member.confState,
      encodeMachine(member.machine),
    );
    const compactIndex = Math.max(
      member.storage.firstIndex() - 1,
      snapshotIndex - this.chaosRandom.int(20),
    );
    member.storage.compact(compactIndex);
    this.checker.compact(member.id, compactIndex);
    member.node.compact(compactIndex, snapshot);
    this.markSynced(member); // the server fsyncs a compaction
    this.record(`compact ${member.id} to ${compactIndex} (snapshot ${snapshotIndex})`);
  }

  /**
   * Through the leader: adds back a member that is out of the configuration, or removes a
   * follower while more than three voters remain. The leader refuses a second change while one is
   * pending, as the server's would.
   */
  private changeMembership(): void {
    const leader = this.liveMembers().find((member) => member.node?.status().role === 'leader');
    if (leader === undefined || leader.node === null) return;
    const voters = leader.confState.voters;
    const out = this.members.find((member) => !voters.includes(member.id));
    let change: ConfChange;
    if (out !== undefined) {
      change = { type: 'add-voter', id: out.id };
    } else {
      const followers = voters.filter((id) => id !== leader.id);
      const victim = followers[this.chaosRandom.int(followers.length)];
      // Three voters stay: two would need every message between them to commit anything, and
      // the liveness budget after healing is sized for a quorum with one to spare.
      if (victim === undefined || voters.length <= 3) return;
      change = { type: 'remove', id: victim };
    }
    const result = leader.node.proposeConfChange(this.encoder.encode(JSON.stringify({ type: change.type, id: String(change.id) })));
    if (result.ok) this.membershipChangesProposed++;
    // A member added back runs again (it stopped when it learned of its removal).
    if (result.ok && out !== undefined && out.node === null) this.restart(out);
    this.record(`conf change ${change.type} ${change.id} via ${leader.id}: ${result.ok ? 'proposed' : 'refused'}`);
    this.drain(leader);
  }

  /** After the faults: every member removed during them is added back, one change at a time. */
  private restoreMembership(): void {
    // A member may have stopped when told of a removal that was since undone: it runs again.
    for (const member of this.members) if (member.node === null) this.restart(member);
    if (this.livenessDone && this.everyoneInConfig()) return;
    const leader = this.liveMembers().find((member) => member.node?.status().role === 'leader');
    if (leader !== undefined && leader.node !== null && this.members.some((m) => !leader.confState.voters.includes(m.id))) {
      this.changeMembership();
    }
    this.queue.push(this.now + electionTimeoutMs / 2, () => this.restoreMembership());
  }

  /** Every member is a voter in the configuration the newest leader applied. */
  private everyoneInConfig(): boolean {
    const leader = this.liveMembers()
      .filter((member) => member.node?.status().role === 'leader')
      .sort((a, b) => (b.node?.status().term ?? 0) - (a.node?.status().term ?? 0))[0];
    return leader !== undefined && this.members.every((m) => leader.confState.voters.includes(m.id));
  }

  // ---- Liveness phase ---------------------------------------------------------------------

  /** The server keeps taking snapshots after the faults stop: it is routine work, not a fault. */
  private compactLoop(): void {
    if (!this.mix.compaction || this.livenessDone) return;
    this.compactRandom();
    this.queue.push(this.now + electionTimeoutMs, () => this.compactLoop());
  }

  private heal(): void {
    this.healed = true;
    this.compactLoop();
    this.cut.clear();
    this.record('heal all, restart all');
    for (const member of this.members) if (member.node === null) this.restart(member);
    if (this.membershipChanges) this.restoreMembership();
    this.probe(0);
  }

  /** Proposes a probe through the current leader until one is applied on every member. */
  private probe(attempt: number): void {
    if (this.livenessDone) return;
    const leader = this.liveMembers()
      .filter((member) => member.node?.status().role === 'leader')
      .sort((a, b) => (b.node?.status().term ?? 0) - (a.node?.status().term ?? 0))[0];
    if (leader !== undefined && leader.node !== null) {
      const payload = `probe${attempt}`;
      this.probeAppliedBy.set(payload, new Set());
      leader.node.propose(this.encoder.encode(payload));
      this.drain(leader);
    }
    if (!this.livenessDone)
      this.queue.push(this.now + electionTimeoutMs / 2, () => this.probe(attempt + 1));
  }

  private noteProbe(member: Member, data: Uint8Array): void {
    if (!this.healed || data.byteLength === 0 || data[0] !== 0x70 /* 'p' */) return;
    const appliedBy = this.probeAppliedBy.get(this.decoder.decode(data));
    if (appliedBy === undefined) return;
    appliedBy.add(member.id);
    if (
      appliedBy.size >= Math.floor(this.members.length / 2) + 1 &&
      this.quorumProbeAtMs === null
    ) {
      this.quorumProbeAtMs = this.now;
    }
    if (appliedBy.size === this.members.length) this.livenessDone = true;
  }

  /** After the probe, every member must reach the same applied state once traffic settles. */
  private checkConverged(): void {
    // A removal proposed just before the heal may commit after the probe: wait (bounded) until
    // every member is back in the configuration, then for the traffic to settle.
    for (let round = 0; this.membershipChanges && round < 40 && !this.everyoneInConfig(); round++) {
      this.loopUntil(this.now + electionTimeoutMs / 2);
    }
    this.loopUntil(this.now + 5 * electionTimeoutMs);
    const first = this.members[0] as Member;
    for (const member of this.members) {
      const leaderCommit = Math.max(...this.members.map((m) => m.node?.status().commit ?? 0));
      if (member.machine.index !== leaderCommit || member.machine.digest !== first.machine.digest) {
        throw new InvariantViolation(
          `members did not converge: ${this.members.map((m) => `${m.id}@${m.machine.index}`).join(' ')} (commit ${leaderCommit})`,
        );
      }
    }
  }

  private loopUntil(endMs: number): void {
    while (this.queue.size > 0 && this.events < eventsMax) {
      const event = this.queue.pop();
      if (event === undefined) break;
      if (event.at > endMs) {
        this.queue.push(event.at, event.run);
        break;
      }
      this.now = event.at;
      this.events++;
      event.run();
    }
  }

  private record(event: string | Message): void {
    this.trace[this.traceNext] = event;
    this.traceTimes[this.traceNext] = this.now;
    this.traceNext = (this.traceNext + 1) % traceLength;
  }

  private formatTrace(): string[] {
    const lines: string[] = [];
    const members: string[] = [];
    for (const member of this.members) {
      const status = member.node?.status();
      members.push(
        `member ${member.id}: ${status === undefined ? 'down' : JSON.stringify(status, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))} machine ${member.machine.index}`,
      );
    }
    for (let i = 0; i < this.trace.length; i++) {
      const slot = (this.traceNext + i) % this.trace.length;
      const event = this.trace[slot] as string | Message;
      const at = (this.traceTimes[slot] ?? 0).toFixed(2);
      if (typeof event === 'string') {
        lines.push(`${at} ${event}`);
      } else {
        const m = event;
        const extra = `${m.reject ? ' reject' : ''}${m.entries.length > 0 ? ` n${m.entries.length}` : ''}`;
        lines.push(
          `${at} ${m.from}->${m.to} ${m.type} t${m.term} lt${m.logTerm} i${m.index} c${m.commit}${extra}`,
        );
      }
    }
    return [...lines, ...members];
  }

  private result(failure: string | null): SimResult {
    let fingerprint = 0;
    for (const member of this.members) {
      fingerprint = chainDigest(
        fingerprint,
        member.machine.index,
        this.encoder.encode(String(member.machine.digest)),
      );
    }
    fingerprint = chainDigest(fingerprint, this.events, new Uint8Array(0));
    return {
      seed: this.options.seed,
      ok: failure === null,
      failure,
      mix: this.mix,
      events: this.events,
      virtualMs: this.now,
      committed: this.checker.highestCommitted(),
      leaderChanges: this.leaderChanges,
      crashes: this.crashes,
      unsyncedLost: this.unsyncedLost,
      snapshotsSent: this.snapshotsSent,
      readsChecked: this.readsChecked,
      confChanges: this.membershipChangesProposed,
      fingerprint,
      trace: this.formatTrace(),
    };
  }
}

export function simulate(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

export function describeFailure(result: SimResult): string {
  return [
    `seed ${result.seed} failed: ${result.failure ?? ''}`,
    `replay: ETCRON_SEED=${result.seed} npx vitest run test/sim`,
    `fault mix: ${JSON.stringify(result.mix)}`,
    `last events:`,
    ...result.trace.slice(-80),
  ].join('\n');
}
