import type { Backend } from '../mvcc/backend.js';
import type { ConfChange, ConfState, MemberId } from '../raft/types.js';

/**
 * The cluster's members as the log has made them: who is a voter or a learner, at which peer
 * URLs, and which IDs were removed (a removed ID never comes back). Kept in the member's SQLite
 * file, written in the same transaction as the entry that changed it, so a restart or a snapshot
 * brings it along. Names and client URLs are what members publish when they start (member_attr).
 */
export interface ClusterMember {
  readonly id: MemberId;
  readonly peerUrls: readonly string[];
  readonly isLearner: boolean;
}

/** A membership change as it travels in a 'conf-change' entry. */
export interface MemberChange {
  readonly requestId: string;
  readonly action: 'add' | 'remove' | 'update' | 'promote';
  readonly id: MemberId;
  readonly peerUrls?: readonly string[];
  readonly isLearner?: boolean;
}

export class MemberChangeError extends Error {
  override readonly name = 'MemberChangeError';
  constructor(readonly kind: 'id-exists' | 'id-removed' | 'member-not-found' | 'member-not-learner', message: string) {
    super(message);
  }
}

interface StoredMember { readonly id: string; readonly peerUrls: readonly string[]; readonly isLearner: boolean }

export function encodeMemberChange(change: MemberChange): Uint8Array {
  return Buffer.from(JSON.stringify({ ...change, id: change.id.toString(16) }));
}

export function decodeMemberChange(data: Uint8Array): MemberChange {
  const raw = JSON.parse(Buffer.from(data).toString()) as Omit<MemberChange, 'id'> & { id: string };
  return { ...raw, id: BigInt(`0x${raw.id}`) };
}

export class MembershipTable {
  private members: ClusterMember[];
  private removed: Set<MemberId>;

  constructor(private backend: Backend, bootstrap: readonly ClusterMember[]) {
    const loaded = MembershipTable.read(backend);
    this.members = loaded?.members ?? [...bootstrap];
    this.removed = loaded?.removed ?? new Set();
    if (loaded === null) this.save();
  }

  private static read(backend: Backend): { members: ClusterMember[]; removed: Set<MemberId> } | null {
    const stored = backend.getMeta('cluster_members');
    if (typeof stored !== 'string') return null;
    const members = (JSON.parse(stored) as StoredMember[]).map((m) => ({ id: BigInt(`0x${m.id}`), peerUrls: m.peerUrls, isLearner: m.isLearner }));
    const removedRaw = backend.getMeta('removed_members');
    const removed = new Set(typeof removedRaw === 'string' ? (JSON.parse(removedRaw) as string[]).map((id) => BigInt(`0x${id}`)) : []);
    return { members, removed };
  }

  /** After a snapshot replaced the database: its table is the one now. */
  reload(backend: Backend): void {
    this.backend = backend;
    const loaded = MembershipTable.read(backend);
    if (loaded === null) {
      this.save();
      return;
    }
    this.members = loaded.members;
    this.removed = loaded.removed;
  }

  list(): readonly ClusterMember[] {
    return this.members;
  }

  get(id: MemberId): ClusterMember | undefined {
    return this.members.find((m) => m.id === id);
  }

  isRemoved(id: MemberId): boolean {
    return this.removed.has(id);
  }

  confState(): ConfState {
    return {
      voters: this.members.filter((m) => !m.isLearner).map((m) => m.id),
      learners: this.members.filter((m) => m.isLearner).map((m) => m.id),
    };
  }

  /**
   * Applies a committed change (inside the caller's transaction); returns what the Raft core
   * must apply, or null for an update of URLs. Throws MemberChangeError for a change the table
   * refuses; every member refuses it alike, since they apply the same entries to the same table.
   */
  apply(change: MemberChange): ConfChange | null {
    const existing = this.get(change.id);
    switch (change.action) {
      case 'add': {
        if (this.removed.has(change.id)) throw new MemberChangeError('id-removed', 'etcdserver: ID removed');
        if (existing !== undefined) throw new MemberChangeError('id-exists', 'etcdserver: ID exists');
        const isLearner = change.isLearner === true;
        this.members = [...this.members, { id: change.id, peerUrls: change.peerUrls ?? [], isLearner }];
        this.save();
        return { type: isLearner ? 'add-learner' : 'add-voter', id: change.id };
      }
      case 'remove':
        if (existing === undefined) throw new MemberChangeError('member-not-found', 'etcdserver: member not found');
        this.members = this.members.filter((m) => m.id !== change.id);
        this.removed.add(change.id);
        this.save();
        return { type: 'remove', id: change.id };
      case 'update':
        if (existing === undefined) throw new MemberChangeError('member-not-found', 'etcdserver: member not found');
        this.members = this.members.map((m) => (m.id === change.id ? { ...m, peerUrls: change.peerUrls ?? m.peerUrls } : m));
        this.save();
        return null;
      case 'promote':
        if (existing === undefined) throw new MemberChangeError('member-not-found', 'etcdserver: member not found');
        if (!existing.isLearner) throw new MemberChangeError('member-not-learner', 'etcdserver: can only promote a learner member');
        this.members = this.members.map((m) => (m.id === change.id ? { ...m, isLearner: false } : m));
        this.save();
        return { type: 'add-voter', id: change.id };
    }
  }

  private save(): void {
    const stored: StoredMember[] = this.members.map((m) => ({ id: m.id.toString(16), peerUrls: m.peerUrls, isLearner: m.isLearner }));
    this.backend.setMeta('cluster_members', JSON.stringify(stored));
    this.backend.setMeta('removed_members', JSON.stringify([...this.removed].map((id) => id.toString(16))));
  }
}
