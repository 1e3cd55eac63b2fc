import { seededRandom } from '../../shared/random.js';
import { MemoryLogStorage, Raft, makeMessage } from '../../store/raft/index.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  MemberId,
  Message,
  RaftStatus,
  RaftTestingBugs,
  ReadState,
  StepResult,
} from '../../store/raft/index.js';

/**
 * A small synchronous cluster for unit tests (the `network` of etcd-io/raft's raft_test.go):
 * messages wait in an inbox until deliver()/stabilize(); links can be cut and messages dropped
 * or rewritten by a filter. Every Ready is persisted to a MemoryLogStorage before its messages
 * are queued, as the server does.
 */
export interface TestClusterOptions {
  readonly size: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly electionTicks?: number;
  readonly maxInflightMsgs?: number;
  readonly maxSizePerMsgBytes?: number;
  readonly maxUncommittedEntriesBytes?: number;
  readonly seed?: number;
  /** Initial log terms per member (index 1, 2, ...), and that member's stored term. */
  readonly logs?: ReadonlyMap<
    MemberId,
    { readonly terms: readonly number[]; readonly term: number }
  >;
  readonly bugs?: ReadonlyMap<MemberId, RaftTestingBugs>;
}

export interface TestMember {
  readonly id: MemberId;
  readonly storage: MemoryLogStorage;
  /** The configuration as this member applied it. */
  confState: ConfState;
  node: Raft | null;
  /** The state machine: payloads of applied entries (empty entries skipped), and its index. */
  applied: string[];
  appliedIndex: number;
  readStates: ReadState[];
  snapshotsInstalled: number;
}

/** Rewrites (or drops, by returning null) a message in flight. */
export type MessageFilter = (message: Message) => Message | null;

const roundsMax = 1000;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

export class TestCluster {
  readonly members = new Map<MemberId, TestMember>();
  readonly confState: ConfState;
  /** Every message sent, in order, for assertions about traffic. */
  readonly sent: Message[] = [];
  filter: MessageFilter | null = null;
  /** Sees every delivery attempt: the message and whether it arrived (interaction transcripts). */
  onDeliver: ((message: Message, arrived: boolean) => void) | null = null;
  private inbox: Message[] = [];
  private readonly cut = new Set<string>();
  private readonly options: TestClusterOptions;

  constructor(options: TestClusterOptions) {
    this.options = options;
    const voters: MemberId[] = [];
    for (let i = 1; i <= options.size; i++) voters.push(BigInt(i));
    this.confState = { voters, learners: [] };
    for (const id of voters) {
      const storage = new MemoryLogStorage(this.confState);
      const log = options.logs?.get(id);
      if (log !== undefined) {
        const entries = log.terms.map((term, i): Entry => ({
          term,
          index: i + 1,
          type: 'normal',
          data: encoder.encode(`seed${i + 1}`),
        }));
        storage.append(entries);
        storage.setHardState({ term: log.term, vote: 0n, commit: 0 });
      }
      const member: TestMember = {
        id,
        storage,
        confState: this.confState,
        node: null,
        applied: [],
        appliedIndex: 0,
        readStates: [],
        snapshotsInstalled: 0,
      };
      this.members.set(id, member);
      this.start(member);
    }
  }

  /**
   * A new member joining the cluster. It starts from the configuration it was told (the server
   * takes it from --initial-cluster), without itself: it is not a member until the conf change
   * that adds it is applied from the log or a snapshot.
   */
  addMember(id: MemberId, told: ConfState = this.confState): TestMember {
    const member: TestMember = {
      id, storage: new MemoryLogStorage(told), confState: told, node: null, applied: [], appliedIndex: 0,
      readStates: [], snapshotsInstalled: 0,
    };
    this.members.set(id, member);
    this.start(member);
    return member;
  }

  /** Proposes a conf change through member `via` (as JSON; applied in drain()). */
  proposeConfChange(via: MemberId, change: ConfChange): StepResult {
    const result = this.node(via).proposeConfChange(encoder.encode(JSON.stringify({ type: change.type, id: String(change.id) })));
    this.drain(via);
    return result;
  }

  private start(member: TestMember): void {
    const bugs = this.options.bugs?.get(member.id);
    member.node = new Raft({
      id: member.id,
      electionTicks: this.options.electionTicks ?? 10,
      heartbeatTicks: 1,
      storage: member.storage,
      applied: member.appliedIndex,
      maxSizePerMsgBytes: this.options.maxSizePerMsgBytes ?? 1 << 20,
      maxInflightMsgs: this.options.maxInflightMsgs ?? 256,
      preVote: this.options.preVote ?? false,
      checkQuorum: this.options.checkQuorum ?? false,
      random: seededRandom((this.options.seed ?? 1) * 31 + Number(member.id)),
      ...(bugs !== undefined ? { testingBugs: bugs } : {}),
      ...(this.options.maxUncommittedEntriesBytes !== undefined
        ? { maxUncommittedEntriesBytes: this.options.maxUncommittedEntriesBytes }
        : {}),
    });
  }

  member(id: MemberId): TestMember {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  node(id: MemberId): Raft {
    const node = this.member(id).node;
    if (node === null) throw new Error(`member ${id} is down`);
    return node;
  }

  status(id: MemberId): RaftStatus {
    return this.node(id).status();
  }

  /** Persist, queue messages, apply: every Ready of one member. */
  drain(id: MemberId): void {
    const member = this.member(id);
    for (let i = 0; i < roundsMax; i++) {
      const node = member.node;
      if (node === null || !node.hasReady()) return;
      const ready = node.ready();
      if (ready.snapshot !== null) {
        member.storage.applySnapshot(ready.snapshot);
        const state = JSON.parse(decoder.decode(ready.snapshot.data)) as {
          applied: string[];
          index: number;
        };
        member.applied = state.applied;
        member.appliedIndex = state.index;
        member.confState = ready.snapshot.metadata.confState;
        member.storage.setConfState(member.confState);
        member.snapshotsInstalled++;
      }
      member.storage.append(ready.entries);
      if (ready.hardState !== null) member.storage.setHardState(ready.hardState);
      for (const message of ready.messages) {
        this.sent.push(message);
        this.inbox.push(message);
      }
      for (const entry of ready.committed) {
        if (entry.type === 'conf-change') {
          const change = JSON.parse(decoder.decode(entry.data)) as { type: ConfChange['type']; id: string };
          member.confState = node.applyConfChange({ type: change.type, id: BigInt(change.id) });
          member.storage.setConfState(member.confState);
          member.applied.push(`conf ${change.type} ${change.id}`);
        } else if (entry.data.byteLength > 0) {
          member.applied.push(decoder.decode(entry.data));
        }
        member.appliedIndex = entry.index;
      }
      member.readStates.push(...ready.readStates);
      node.advance(ready);
    }
    throw new Error(`member ${id} did not settle`);
  }

  drainAll(): void {
    for (const id of this.members.keys()) this.drain(id);
  }

  /** Delivers what is in the inbox now (not what it causes); returns how many arrived. */
  deliver(): number {
    const batch = this.inbox;
    this.inbox = [];
    let delivered = 0;
    for (const original of batch) {
      const message = this.cut.has(`${original.from}>${original.to}`)
        ? null
        : this.filter === null
          ? original
          : this.filter(original);
      const node = this.members.get(original.to)?.node ?? null;
      const arrived = message !== null && node !== null;
      this.onDeliver?.(message ?? original, arrived);
      if (original.type === 'snap') this.reportSnapshot(original.from, original.to, !arrived);
      if (message === null || node === null) continue;
      node.step(message);
      this.drain(original.to);
      delivered++;
    }
    return delivered;
  }

  private reportSnapshot(sender: MemberId, target: MemberId, failed: boolean): void {
    const node = this.members.get(sender)?.node;
    if (node === undefined || node === null) return;
    node.step(makeMessage({ type: 'snap-status', to: sender, from: target, reject: failed }));
    this.drain(sender);
  }

  /** Runs until no member has work and no message is in flight. */
  stabilize(): void {
    for (let round = 0; round < roundsMax; round++) {
      this.drainAll();
      if (this.inbox.length === 0) return;
      this.deliver();
    }
    throw new Error('cluster did not stabilize');
  }

  pending(): readonly Message[] {
    return this.inbox;
  }

  /** Drops queued messages (lost in the network). */
  dropPending(predicate: (message: Message) => boolean = () => true): void {
    this.inbox = this.inbox.filter((message) => !predicate(message));
  }

  tick(id: MemberId, count = 1): void {
    for (let i = 0; i < count; i++) {
      this.node(id).tick();
      this.drain(id);
    }
  }

  campaign(id: MemberId): void {
    this.node(id).campaign();
    this.stabilize();
  }

  propose(id: MemberId, text: string): StepResult {
    const result = this.node(id).propose(encoder.encode(text));
    this.drain(id);
    return result;
  }

  isolate(id: MemberId): void {
    for (const other of this.members.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  cutLink(from: MemberId, to: MemberId): void {
    this.cut.add(`${from}>${to}`);
  }

  recover(): void {
    this.cut.clear();
    this.filter = null;
  }

  crash(id: MemberId): void {
    this.member(id).node = null;
  }

  restart(id: MemberId): void {
    const member = this.member(id);
    member.readStates = [];
    this.start(member);
  }

  /** The server side of compaction: snapshot the state machine at applied, drop the log up to it. */
  compact(id: MemberId): number {
    const member = this.member(id);
    const index = member.appliedIndex;
    const data = encoder.encode(JSON.stringify({ applied: member.applied, index }));
    const snapshot = member.storage.createSnapshot(index, member.confState, data);
    member.storage.compact(index);
    this.node(id).compact(index, snapshot);
    return index;
  }

  /** The terms of a member's durable log, index 1 first (0 for compacted indexes). */
  logTerms(id: MemberId): number[] {
    const storage = this.member(id).storage;
    const terms: number[] = [];
    for (let index = 1; index <= storage.lastIndex(); index++) {
      terms.push(index < storage.firstIndex() ? 0 : storage.term(index));
    }
    return terms;
  }

  leaders(): MemberId[] {
    const result: MemberId[] = [];
    for (const member of this.members.values()) {
      if (member.node?.status().role === 'leader') result.push(member.id);
    }
    return result;
  }
}

export function text(value: string): Uint8Array {
  return encoder.encode(value);
}
