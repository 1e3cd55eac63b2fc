/**
 * Key-range permissions and the check etcd makes with them. A role grants READ, WRITE or
 * READWRITE on one key (empty range_end), on [key, range_end), or on every key from `key` on
 * (range_end "\0"). A request is allowed when the union of the user's grants of that kind covers
 * all of its keys.
 */
export type PermissionType = 'read' | 'write' | 'readwrite';

export interface Permission {
  readonly type: PermissionType;
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
}

/** The proto enum authpb.Permission.Type, in its order. */
export const PERMISSION_TYPES: readonly PermissionType[] = ['read', 'write', 'readwrite'];

/** A half-open byte interval; `end` null means no upper bound. */
interface Interval {
  readonly begin: Buffer;
  readonly end: Buffer | null;
}

const ZERO = Buffer.from([0]);

function isFromKey(rangeEnd: Buffer): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

/** The keys one grant covers: a single key is [key, key+"\0"). */
function grantInterval(permission: Permission): Interval {
  if (permission.rangeEnd.length === 0)
    return { begin: permission.key, end: Buffer.concat([permission.key, ZERO]) };
  return {
    begin: permission.key,
    end: isFromKey(permission.rangeEnd) ? null : permission.rangeEnd,
  };
}

/** end1 < end2, with null as +infinity. */
function endBefore(a: Buffer | null, b: Buffer | null): boolean {
  if (a === null) return false;
  if (b === null) return true;
  return Buffer.compare(a, b) < 0;
}

function overlaps(grant: Interval, query: Interval): boolean {
  const startsBeforeQueryEnds = query.end === null || Buffer.compare(grant.begin, query.end) < 0;
  const endsAfterQueryStarts = grant.end === null || Buffer.compare(query.begin, grant.end) < 0;
  return startsBeforeQueryEnds && endsAfterQueryStarts;
}

/** Whether the grants, joined where they touch or overlap, cover all of `query`. */
function covers(grants: readonly Interval[], query: Interval): boolean {
  const relevant = grants
    .filter((g) => overlaps(g, query))
    .sort((a, b) => Buffer.compare(a.begin, b.begin));
  const first = relevant[0];
  if (first === undefined || Buffer.compare(first.begin, query.begin) > 0) return false;
  let reached: Buffer | null = first.end;
  for (const grant of relevant.slice(1)) {
    if (reached !== null && Buffer.compare(reached, grant.begin) < 0) return false;
    if (endBefore(reached, grant.end)) reached = grant.end;
  }
  return !endBefore(reached, query.end);
}

function containsPoint(grants: readonly Interval[], key: Buffer): boolean {
  return grants.some(
    (g) => Buffer.compare(g.begin, key) <= 0 && (g.end === null || Buffer.compare(key, g.end) < 0),
  );
}

/** One user's grants, merged over all of its roles, split by kind. */
export class MergedPermissions {
  private readonly reads: Interval[] = [];
  private readonly writes: Interval[] = [];

  constructor(permissions: Iterable<Permission>) {
    for (const permission of permissions) {
      const interval = grantInterval(permission);
      if (permission.type !== 'write') this.reads.push(interval);
      if (permission.type !== 'read') this.writes.push(interval);
    }
  }

  /**
   * As etcd decides it: an empty range_end asks for the single key; "\0" for every key from
   * `key` on; anything else for [key, range_end).
   */
  allows(kind: 'read' | 'write', key: Buffer, rangeEnd: Buffer): boolean {
    const grants = kind === 'read' ? this.reads : this.writes;
    if (rangeEnd.length === 0) return containsPoint(grants, key);
    return covers(grants, { begin: key, end: isFromKey(rangeEnd) ? null : rangeEnd });
  }
}
