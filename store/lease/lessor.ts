import { assert } from '../../shared/assert.js';
import type { Backend } from '../mvcc/backend.js';
import { StoreError } from '../mvcc/errors.js';

/** etcd refuses TTLs above this many seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

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
}

/**
 * Leases and the keys attached to them. Grant and revoke are applied from committed entries and
 * are deterministic; deadlines are time-dependent and only the primary keeps them (see promote).
 * Remaining time is not persisted: after a restart or a leader change every lease starts again from
 * its full TTL plus an election timeout, as etcd does.
 */
export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  private primary = false;

  constructor(private readonly backend: Backend, readonly minTtlSeconds: number) {
    for (const { id, ttl } of backend.allLeases()) {
      this.leases.set(id, { id, ttlSeconds: ttl, keys: new Set(), deadlineMs: null });
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
    const lease: Lease = { id, ttlSeconds: this.effectiveTtl(ttlSeconds), keys: new Set(), deadlineMs: null };
    this.leases.set(id, lease);
    this.backend.putLease(id, lease.ttlSeconds);
    return lease;
  }

  /** Applied from a committed revoke; returns the keys to delete, in key order. */
  revoke(id: bigint): string[] {
    const lease = this.leases.get(id);
    if (lease === undefined) throw new StoreError('lease-not-found');
    this.leases.delete(id);
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
    for (const lease of this.leases.values()) lease.deadlineMs = nowMs + lease.ttlSeconds * 1000 + extendMs;
  }

  demote(): void {
    this.primary = false;
    for (const lease of this.leases.values()) lease.deadlineMs = null;
  }

  /** Gives leases granted since the last look their first deadline (primary only). */
  startTimers(nowMs: number): void {
    if (!this.primary) return;
    for (const lease of this.leases.values()) {
      if (lease.deadlineMs === null) lease.deadlineMs = nowMs + lease.ttlSeconds * 1000;
    }
  }

  /** A keep-alive: returns the TTL granted again, or 0 when the lease is unknown or expired. */
  renew(id: bigint, nowMs: number): number {
    const lease = this.leases.get(id);
    if (lease === undefined) return 0;
    if (lease.deadlineMs !== null && lease.deadlineMs <= nowMs) return 0;
    lease.deadlineMs = nowMs + lease.ttlSeconds * 1000;
    return lease.ttlSeconds;
  }

  /** Whole seconds left, rounded down; the full TTL when this member keeps no deadline. */
  remainingSeconds(lease: Lease, nowMs: number): number {
    if (lease.deadlineMs === null) return lease.ttlSeconds;
    return Math.max(0, Math.floor((lease.deadlineMs - nowMs) / 1000));
  }

  /** Leases past their deadline, oldest first, at most `limit`. */
  expired(nowMs: number, limit: number): bigint[] {
    const out: { id: bigint; at: number }[] = [];
    for (const lease of this.leases.values()) {
      if (lease.deadlineMs !== null && lease.deadlineMs <= nowMs) out.push({ id: lease.id, at: lease.deadlineMs });
    }
    out.sort((a, b) => a.at - b.at);
    return out.slice(0, limit).map((e) => e.id);
  }
}
