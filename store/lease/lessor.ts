import { assert } from '../../shared/assert.js';
import type { Backend } from '../mvcc/backend.js';
import { StoreError } from '../mvcc/errors.js';
import { DeadlineHeap } from '../../shared/deadline-heap.js';

/** etcd refuses TTLs above this many seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/**
 * How long after an expired lease was handed out for revocation it is handed out again, should the
 * revoke not have been applied by then (a lost proposal, a leader change in between); etcd waits
 * the same 3 s.
 */
export const EXPIRED_LEASE_RETRY_MS = 3_000;

/** The deadline heap is rebuilt once it holds more than factor × leases + slack entries. */
const STALE_ENTRIES_FACTOR = 4;
const STALE_ENTRIES_SLACK = 1_024;

export interface Lease {
  readonly id: bigint;
  /** The effective granted TTL in seconds (raised to the minimum). */
  readonly ttlSeconds: number;
  /** Keys attached to the lease, as latin1 strings. */
  readonly keys: Set<string>;
  /**
   * Monotonic deadline in ms, kept only by the member that expires leases (the leader). Null on
   * followers and for leases granted since the last promotion until the server starts their timer.
   */
  deadlineMs: number | null;
  /** When the deadline heap next looks at this lease; entries with another time are stale. */
  checkAtMs: number | null;
}

/**
 * Leases and the keys attached to them. Grant and revoke are applied from committed entries and
 * are deterministic; deadlines are time-dependent and only the primary keeps them (see promote).
 * Remaining time is not persisted: after a restart or a leader change every lease starts again from
 * its full TTL plus an election timeout, as etcd does.
 */
export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  /** Deadlines of the leases this member expires, soonest first (primary only). */
  private readonly deadlines = new DeadlineHeap<bigint>();
  /** Leases granted while primary that have no deadline yet (see startTimers). */
  private readonly untimed = new Set<bigint>();
  private primary = false;

  constructor(private readonly backend: Backend, readonly minTtlSeconds: number) {
    for (const { id, ttl } of backend.allLeases()) {
      this.leases.set(id, { id, ttlSeconds: ttl, keys: new Set(), deadlineMs: null, checkAtMs: null });
    }
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  lookup(id: bigint): Lease | undefined {
    return this.leases.get(id);
  }

  has(id: bigint): boolean {
    return this.leases.has(id);
  }

  all(): Lease[] {
    return [...this.leases.values()];
  }

  effectiveTtl(requestedSeconds: number): number {
    return Math.max(requestedSeconds, this.minTtlSeconds);
  }

  /** Applied from a committed grant. */
  grant(id: bigint, ttlSeconds: number): Lease {
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new StoreError('lease-ttl-too-large');
    if (this.leases.has(id)) throw new StoreError('lease-exists');
    const ttl = this.effectiveTtl(ttlSeconds);
    const lease: Lease = { id, ttlSeconds: ttl, keys: new Set(), deadlineMs: null, checkAtMs: null };
    this.leases.set(id, lease);
    if (this.primary) this.untimed.add(id);
    this.backend.putLease(id, lease.ttlSeconds);
    return lease;
  }

  /** Applied from a committed revoke; returns the keys to delete, in key order. */
  revoke(id: bigint): string[] {
    const lease = this.leases.get(id);
    if (lease === undefined) throw new StoreError('lease-not-found');
    this.leases.delete(id);
    this.untimed.delete(id);
    this.backend.deleteLease(id);
    return [...lease.keys].sort();
  }

  attach(id: bigint, key: string): void {
    const lease = this.leases.get(id);
    assert(lease !== undefined, `attach to unknown lease ${id}`);
    lease.keys.add(key);
  }

  detach(id: bigint, key: string): void {
    this.leases.get(id)?.keys.delete(key);
  }

  /** Becomes the member that expires leases: every lease gets a fresh deadline. */
  promote(nowMs: number, extendMs: number): void {
    this.primary = true;
    this.deadlines.clear();
    this.untimed.clear();
    for (const lease of this.leases.values()) {
      this.schedule(lease, nowMs + lease.ttlSeconds * 1000 + extendMs);
    }
  }

  demote(): void {
    this.primary = false;
    this.deadlines.clear();
    this.untimed.clear();
    for (const lease of this.leases.values()) {
      lease.deadlineMs = null;
      lease.checkAtMs = null;
    }
  }

  /** Gives leases granted since the last look their first deadline (primary only). */
  startTimers(nowMs: number): void {
    if (!this.primary || this.untimed.size === 0) return;
    for (const id of this.untimed) {
      const lease = this.leases.get(id);
      if (lease !== undefined && lease.deadlineMs === null) {
        this.schedule(lease, nowMs + lease.ttlSeconds * 1000);
      }
    }
    this.untimed.clear();
  }

  /** A keep-alive: returns the TTL granted again, or 0 when the lease is unknown or expired. */
  renew(id: bigint, nowMs: number): number {
    const lease = this.leases.get(id);
    if (lease === undefined) return 0;
    if (lease.deadlineMs !== null && lease.deadlineMs <= nowMs) return 0;
    if (this.primary) {
      this.untimed.delete(id);
      this.schedule(lease, nowMs + lease.ttlSeconds * 1000);
    } else {
      lease.deadlineMs = nowMs + lease.ttlSeconds * 1000;
    }
    return lease.ttlSeconds;
  }

  /** Whole seconds left, rounded down; the full TTL when this member keeps no deadline. */
  remainingSeconds(lease: Lease, nowMs: number): number {
    if (lease.deadlineMs === null) return lease.ttlSeconds;
    return Math.max(0, Math.floor((lease.deadlineMs - nowMs) / 1000));
  }

  /**
   * Leases past their deadline, soonest deadline first, at most `limit`. Each is handed out once
   * and then again every EXPIRED_LEASE_RETRY_MS until its revoke is applied; only heap entries
   * that are due are visited, so a check with nothing due costs O(1) whatever the lease count.
   */
  expired(nowMs: number, limit: number): bigint[] {
    const out: bigint[] = [];
    for (;;) {
      if (out.length >= limit) break;
      const next = this.deadlines.peek();
      if (next === undefined || next.atMs > nowMs) break;
      this.deadlines.pop();
      const lease = this.leases.get(next.id);
      if (lease === undefined || lease.checkAtMs !== next.atMs) continue;
      out.push(lease.id);
      lease.checkAtMs = nowMs + EXPIRED_LEASE_RETRY_MS;
      this.deadlines.push({ atMs: lease.checkAtMs, id: lease.id });
    }
    return out;
  }

  private schedule(lease: Lease, deadlineMs: number): void {
    lease.deadlineMs = deadlineMs;
    lease.checkAtMs = deadlineMs;
    this.deadlines.push({ atMs: deadlineMs, id: lease.id });
    // Every renewal leaves a stale entry behind until its time comes; a client renewing far more
    // often than its TTL asks could pile them up, so past a bound the heap is rebuilt from the
    // leases themselves.
    if (this.deadlines.size > STALE_ENTRIES_FACTOR * this.leases.size + STALE_ENTRIES_SLACK) {
      this.rebuildDeadlines();
    }
  }

  private rebuildDeadlines(): void {
    this.deadlines.clear();
    for (const lease of this.leases.values()) {
      if (lease.checkAtMs !== null) this.deadlines.push({ atMs: lease.checkAtMs, id: lease.id });
    }
  }

  /** Heap entries, live and stale (for tests of the bound). */
  get scheduledEntries(): number {
    return this.deadlines.size;
  }
}
