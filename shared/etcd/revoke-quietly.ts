import type { Lease } from 'etcd3';

/** A revoke that must not hang a stop: at most this long, then the lease is left to its TTL. */
const REVOKE_TIMEOUT_MS = 2_000;

/**
 * Gives a lease back on a clean stop, so its keys (a campaign, a registration) go at once. The
 * store may be unreachable: the lease, and with it the keys, then expires by its TTL.
 */
export async function revokeQuietly(lease: Lease): Promise<void> {
  if (lease.revoked()) return;
  try {
    await lease.revoke({ deadline: Date.now() + REVOKE_TIMEOUT_MS });
  } catch {
    lease.release();
  }
}
