// Seeded generator of etcd requests for the differential test. It only looks at the reference
// (real etcd) to choose the next request, so a seed plus etcd's deterministic answers replay the
// same sequence. Lease IDs are symbolic ("$lease:N" = the N-th granted lease) and each side
// substitutes its own ID, because auto-assigned IDs differ between stores.
import type { Random } from '../../shared/random.js';
import { int, list, text, type Msg, type Wire, type CompatClient } from '../support/compat-client.js';

export interface LeaseInfo {
  isLive: boolean;
}

export interface WatcherInfo {
  readonly createIndex: number;
  readonly key: Buffer;
  /** As in the request: empty = just `key`, "\0" = every key from `key`. */
  readonly end: Buffer;
  readonly filters: readonly number[];
  readonly startRevision: number;
  /** The reference's ID for this watcher ("-1" when its creation failed). */
  readonly watchId: string;
  isLive: boolean;
  /**
   * A revision whose events this watcher may or may not get from etcd: the compaction point when
   * the watcher started exactly there. etcd removes compacted rows in the background, so a
   * deletion at that revision is replayed only if the clean-up has not reached it yet. 0 = none.
   */
  racyRevision?: number;
}

/** What the generator knows, all of it learnt from the reference's answers. */
export interface World {
  readonly rng: Random;
  revision: number;
  compactRevision: number;
  readonly leases: LeaseInfo[];
  readonly watchers: WatcherInfo[];
  creates: number;
  readonly usedWatchIds: Set<string>;
  opIndex: number;
  /** Steps that must run next (a revoke right after a minimum-TTL grant). */
  readonly forced: Request[];
}

export type UnaryRpc =
  | 'Range' | 'Put' | 'DeleteRange' | 'Txn' | 'Compact' | 'LeaseGrant' | 'LeaseRevoke'
  | 'LeaseTimeToLive' | 'LeaseLeases' | 'KeepAliveOnce' | 'Status' | 'MemberList' | 'Alarm'
  | 'Hash' | 'HashKV' | 'Defragment' | 'MoveLeader' | 'MemberAdd' | 'MemberRemove'
  | 'MemberUpdate' | 'MemberPromote' | 'Lock' | 'Unlock' | 'Campaign' | 'Proclaim' | 'Leader'
  | 'Resign';

export type Request =
  | { readonly kind: 'unary'; readonly rpc: UnaryRpc; readonly body: Msg }
  | { readonly kind: 'watch-create'; readonly body: Msg }
  | { readonly kind: 'watch-cancel'; readonly createIndex: number }
  | { readonly kind: 'watch-cancel-unknown'; readonly watchId: string }
  | { readonly kind: 'watch-progress' }
  /** Arbitrary bytes as the request message of `service`/`method` (bad-input probes). */
  | { readonly kind: 'raw'; readonly service: string; readonly method: string; readonly bytes: Buffer }
  /** Grants a minimum-TTL lease with `id`, attaches `keys`, and waits until expiry deletes them. */
  | { readonly kind: 'lease-expiry'; readonly id: string; readonly keys: readonly Buffer[] };

export type WatchPlan = Pick<WatcherInfo, 'key' | 'end' | 'filters' | 'startRevision'>;

/** What a watch create request asks for. */
export function watchPlan(body: Msg): WatchPlan {
  const filters = Array.isArray(body['filters']) ? (body['filters'] as number[]) : [];
  const key = Buffer.isBuffer(body['key']) ? body['key'] : Buffer.alloc(0);
  const end = Buffer.isBuffer(body['range_end']) ? body['range_end'] : Buffer.alloc(0);
  return { key, end, filters, startRevision: int(body, 'start_revision') };
}

/** Whether a watcher sees a write of `key` (put or delete) at `revision`. */
export function watcherSees(plan: WatchPlan, key: Buffer, isDelete: boolean, revision: number) {
  if (plan.filters.includes(isDelete ? 1 : 0)) return false;
  if (plan.startRevision > revision) return false;
  const watched = plan.key.length === 0 ? Buffer.from([0]) : plan.key;
  if (plan.end.length === 0) return key.equals(watched);
  if (Buffer.compare(key, watched) < 0) return false;
  return plan.end.equals(Buffer.from([0])) || Buffer.compare(key, plan.end) < 0;
}

export interface Profile {
  readonly name: string;
  readonly weights: Readonly<Record<OpKind, number>>;
}

export type OpKind =
  | 'put' | 'range' | 'delete' | 'txn' | 'compact' | 'lease' | 'bad' | 'watch' | 'maintenance';

// ---------------------------------------------------------------------------------------------
// Small helpers.

export function pick<T>(rng: Random, items: readonly T[]): T {
  const item = items[rng.int(items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

function chance(rng: Random, probability: number): boolean {
  return rng.float() < probability;
}

/** Bytes that stress ordering and encoding: NUL, 0x01, ASCII, DEL, 0xfe and 0xff. */
const ALPHABET = [0x00, 0x01, 0x61, 0x62, 0x7f, 0xfe, 0xff];

export function randomKey(rng: Random): Buffer {
  const roll = rng.float();
  const length = roll < 0.35 ? 1 : roll < 0.85 ? 2 : 3;
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = pick(rng, ALPHABET);
  return out;
}

/** etcd's client-side prefix end: drop trailing 0xff, increment the last byte, or "\0". */
export function prefixEnd(key: Buffer): Buffer {
  let end = key.length;
  while (end > 0 && key[end - 1] === 0xff) end--;
  if (end === 0) return Buffer.from([0]);
  const out = Buffer.from(key.subarray(0, end));
  out[end - 1] = (out[end - 1] ?? 0) + 1;
  return out;
}

/**
 * `end` undefined = a single key, sent without range_end. etcd 3.4 reads a range_end that is
 * present on the wire but empty as "every key from `key`" in Range (and as a single key in
 * DeleteRange); Go and etcd3 clients never send that, so the random walk leaves it to a probe.
 */
interface KeyRange { readonly key: Buffer; readonly end: Buffer | undefined }

function randomRange(rng: Random): KeyRange {
  const key = randomKey(rng);
  const roll = rng.int(10);
  if (roll < 4) return { key, end: undefined };
  if (roll < 6) return { key, end: prefixEnd(key) };
  if (roll < 7) return { key, end: Buffer.from([0]) };
  if (roll < 9) return { key, end: randomKey(rng) };
  return { key: Buffer.from([0]), end: Buffer.from([0]) };
}

function randomValue(world: World): Buffer {
  const roll = world.rng.int(10);
  if (roll < 5) return Buffer.from(pick(world.rng, ['', 'v', 'w', 'x']));
  if (roll < 6) return Buffer.from([0x00, 0xff, 0x80]);
  return Buffer.from(`u${world.opIndex}`);
}

function leaseMarker(index: number): string {
  return `$lease:${index}`;
}

/** 0, a live lease, a revoked one, or an ID no store has. */
function randomLease(world: World): string {
  const { rng, leases } = world;
  const roll = rng.int(20);
  if (roll < 12 || leases.length === 0) return '0';
  if (roll < 18) {
    const live = leases.flatMap((lease, index) => (lease.isLive ? [index] : []));
    if (live.length > 0) return leaseMarker(pick(rng, live));
  }
  if (roll < 19) return leaseMarker(rng.int(leases.length));
  return pick(rng, ['424242', '-3']);
}

/** A read revision: latest, negative, past, compacted or future. */
function randomReadRevision(world: World): string {
  const { rng, revision, compactRevision } = world;
  const roll = rng.int(20);
  if (roll < 9) return '0';
  if (roll < 10) return pick(rng, ['-1', '-5']);
  if (roll < 16) {
    const low = Math.max(1, compactRevision);
    return String(low + rng.int(revision - low + 1));
  }
  if (roll < 18 && compactRevision > 1) return String(1 + rng.int(compactRevision - 1));
  return String(revision + 1 + rng.int(3));
}

function revisionAround(world: World): string {
  return String(world.rng.int(world.revision + 3));
}

/** Replaces "$lease:N" markers by this side's N-th lease ID ("1", unknown, if it has none). */
export function resolveLeases(value: Wire, leases: readonly (string | null)[]): Wire {
  if (typeof value === 'string' && value.startsWith('$lease:')) {
    return leases[Number(value.slice(7))] ?? '1';
  }
  if (Array.isArray(value)) return value.map((item: Wire) => resolveLeases(item, leases));
  if (value === null || value === undefined || Buffer.isBuffer(value)) return value;
  if (typeof value !== 'object') return value;
  const out: Record<string, Wire> = {};
  for (const [name, item] of Object.entries(value)) out[name] = resolveLeases(item, leases);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Requests.

async function rangeBody(world: World, reference: CompatClient): Promise<Msg> {
  const { rng } = world;
  const { key, end } = randomRange(rng);
  const body: Record<string, Wire> = {
    key, range_end: end,
    limit: pick(rng, ['0', '0', '1', '2', '3', '-1', '10']),
    revision: randomReadRevision(world),
    serializable: chance(rng, 0.3),
    keys_only: chance(rng, 0.15),
    count_only: chance(rng, 0.1),
  };
  if (chance(rng, 0.15)) body['min_mod_revision'] = revisionAround(world);
  if (chance(rng, 0.15)) body['max_mod_revision'] = revisionAround(world);
  if (chance(rng, 0.15)) body['min_create_revision'] = revisionAround(world);
  if (chance(rng, 0.15)) body['max_create_revision'] = revisionAround(world);
  if (chance(rng, 0.5)) {
    body['sort_order'] = rng.int(3);
    body['sort_target'] = rng.int(5);
    if (body['sort_target'] !== 0 && (await hasTies(reference, body))) body['sort_target'] = 0;
  }
  return body;
}

/** True when two keys of the range share the sort target's value (the order would be arbitrary). */
async function hasTies(reference: CompatClient, body: Msg): Promise<boolean> {
  const outcome = await reference.range({
    key: body['key'], range_end: body['range_end'], revision: body['revision'],
  });
  if (!outcome.ok) return false;
  const field = ['key', 'version', 'create_revision', 'mod_revision', 'value'][
    Number(body['sort_target'])
  ] ?? 'key';
  const seen = new Set<string>();
  for (const kv of list(outcome.value, 'kvs')) {
    const value = text(kv, field);
    if (seen.has(value)) return true;
    seen.add(value);
  }
  return false;
}

function putBody(world: World): Msg {
  const { rng } = world;
  const body: Record<string, Wire> = {
    key: randomKey(rng), value: randomValue(world), lease: randomLease(world),
    prev_kv: chance(rng, 0.5),
  };
  if (chance(rng, 0.06)) {
    body['ignore_value'] = true;
    if (chance(rng, 0.8)) body['value'] = Buffer.alloc(0);
  }
  if (chance(rng, 0.06)) {
    body['ignore_lease'] = true;
    if (chance(rng, 0.8)) body['lease'] = '0';
  }
  return body;
}

function deleteBody(world: World): Msg {
  const { key, end } = randomRange(world.rng);
  return { key, range_end: end, prev_kv: chance(world.rng, 0.5) };
}

const compareFields = ['version', 'create_revision', 'mod_revision', 'value', 'lease'];

function compareBody(world: World): Msg {
  const { rng } = world;
  const target = rng.int(5);
  const body: Record<string, Wire> = { result: rng.int(4), target, key: randomKey(rng) };
  if (chance(rng, 0.2)) body['range_end'] = randomRange(rng).end;
  const roll = rng.int(20);
  if (roll === 0) return body; // No target_union at all: compares against zero / empty.
  const field = roll === 1 ? pick(rng, compareFields) : compareFields[target] ?? 'version';
  if (field === 'version') body[field] = String(rng.int(4));
  else if (field === 'value') body[field] = randomValue(world);
  else if (field === 'lease') body[field] = randomLease(world);
  else body[field] = revisionAround(world);
  return body;
}

async function requestOp(world: World, reference: CompatClient, depth: number): Promise<Msg> {
  const roll = world.rng.int(10);
  if (roll < 4) return { request_put: putBody(world) };
  if (roll < 7) return { request_range: await rangeBody(world, reference) };
  if (roll < 9 || depth >= 2) return { request_delete_range: deleteBody(world) };
  return { request_txn: await txnBody(world, reference, depth + 1) };
}

async function txnBody(world: World, reference: CompatClient, depth: number): Promise<Msg> {
  const { rng } = world;
  const compare: Msg[] = [];
  const success: Msg[] = [];
  const failure: Msg[] = [];
  const compares = rng.int(4);
  for (let i = 0; i < compares; i++) compare.push(compareBody(world));
  const successes = rng.int(4);
  for (let i = 0; i < successes; i++) success.push(await requestOp(world, reference, depth));
  const failures = rng.int(4);
  for (let i = 0; i < failures; i++) failure.push(await requestOp(world, reference, depth));
  const isRisky = [...success, ...failure].some(
    (op) => op['request_txn'] !== undefined || op['request_delete_range'] !== undefined,
  );
  if (depth > 0 || !isRisky) return { compare, success, failure };
  // etcd 3.4.23 panics ("unexpected error during txn: etcdserver: key not found") when a txn
  // deletes a key (from-key range, or in an outer level) that a put with ignore_value or
  // ignore_lease then writes: the check reads the state before the txn and the duplicate check
  // misses these overlaps. Such txns are kept out; etcron must not copy the crash.
  return { compare, success: success.map(withoutIgnoreFlags), failure: failure.map(withoutIgnoreFlags) };
}

function withoutIgnoreFlags(op: Msg): Msg {
  const put = op['request_put'];
  if (put !== undefined && put !== null && typeof put === 'object' && !Array.isArray(put) && !Buffer.isBuffer(put)) {
    const { ignore_value: _value, ignore_lease: _lease, ...rest } = put as Msg;
    return { request_put: rest };
  }
  const txn = op['request_txn'] as Msg | undefined;
  if (txn === undefined || txn === null) return op;
  const branch = (field: string): Msg[] => ((txn[field] ?? []) as Msg[]).map(withoutIgnoreFlags);
  return { request_txn: { ...txn, success: branch('success'), failure: branch('failure') } };
}

function rangeOps(count: number, key: string): Msg[] {
  return Array.from({ length: count }, () => ({ request_range: { key: Buffer.from(key) } }));
}

/** Txns at etcd's limits and syntax errors that random txns rarely hit. */
function specialTxn(world: World): Msg {
  const { rng } = world;
  const key = randomKey(rng);
  const put = { request_put: { key, value: Buffer.from('d') } };
  switch (rng.int(7)) {
    case 0: return { success: rangeOps(128 + rng.int(2), 'a') };
    case 1: return {
      compare: Array.from({ length: 128 }, () => ({ key: Buffer.from('a'), target: 0, version: '0' })),
      success: rangeOps(128, 'b'), failure: rangeOps(128, 'c'),
    };
    case 2: return {
      success: [...rangeOps(100, 'a'), { request_txn: { success: rangeOps(27 + rng.int(2), 'b') } }],
    };
    case 3: return { success: [put, {}] };
    case 4: return { success: [put, put] };
    case 5: return { success: [put, { request_delete_range: { key, range_end: prefixEnd(key) } }] };
    default: return {
      success: [put], failure: [put, { request_txn: { success: [put] } }],
      compare: [{ key: Buffer.from('a'), target: 0, result: 3, version: '0' }],
    };
  }
}

function compactBody(world: World): Msg {
  const { rng, revision, compactRevision } = world;
  const roll = rng.int(10);
  let target: number;
  if (roll < 2) target = revision;
  else if (roll < 6) target = compactRevision + 1 + rng.int(Math.max(1, revision - compactRevision));
  else if (roll < 7) target = compactRevision - rng.int(2);
  else if (roll < 8) target = revision + 1 + rng.int(2);
  else if (roll < 9) target = 0;
  else target = -1;
  return { revision: String(Math.min(target, revision + 2)), physical: chance(rng, 0.3) };
}

function leaseRequest(world: World): Request {
  const { rng, leases } = world;
  const ref = leases.length === 0 ? '0' : leaseMarker(rng.int(leases.length));
  const unknown = pick(rng, ['0', '777', ref, ref]);
  switch (rng.int(10)) {
    case 0:
    case 1: return unary('LeaseGrant', { TTL: String(300 + rng.int(3000)), ID: '0' });
    case 2: {
      const id = pick(rng, [String(1000 + world.opIndex), String(-7 - world.opIndex), ref]);
      return unary('LeaseGrant', { TTL: pick(rng, ['600', '9000000001']), ID: id });
    }
    case 3: {
      const id = String(5000 + world.opIndex);
      world.forced.push(unary('LeaseRevoke', { ID: id }));
      return unary('LeaseGrant', { TTL: pick(rng, ['0', '1', '-5']), ID: id });
    }
    case 4: return unary('LeaseRevoke', { ID: unknown });
    case 5:
    case 6: return unary('LeaseTimeToLive', { ID: unknown, keys: chance(rng, 0.6) });
    case 7: return unary('LeaseLeases', {});
    default: return unary('KeepAliveOnce', { ID: unknown });
  }
}

function badRequest(world: World): Request {
  const { rng } = world;
  const empty = Buffer.alloc(0);
  const missing = Buffer.from('never-written');
  switch (rng.int(9)) {
    case 0: return unary('Put', { key: empty, value: Buffer.from('v') });
    case 1: return unary('Range', { key: empty, range_end: Buffer.from('z') });
    case 2: return unary('DeleteRange', { key: empty });
    case 3: return unary('Put', { key: randomKey(rng), value: Buffer.from('v'), ignore_value: true });
    case 4: return unary('Put', { key: randomKey(rng), lease: '12', ignore_lease: true });
    case 5: return unary('Put', { key: missing, ignore_value: true });
    case 6: return unary('Put', { key: missing, ignore_lease: true });
    case 7: return unary('Txn', { compare: [{ key: empty, target: 0 }] });
    default: return unary('Txn', { success: [{ request_range: { key: empty } }] });
  }
}

function maintenanceRequest(world: World): Request {
  switch (world.rng.int(4)) {
    case 0: return unary('Status', {});
    case 1: return unary('MemberList', {});
    case 2: return unary('Alarm', { action: 0 });
    default: return unary('HashKV', { revision: randomReadRevision(world) });
  }
}

function watchRequest(world: World): Request {
  const { rng } = world;
  const live = world.watchers.filter((watcher) => watcher.isLive);
  const roll = rng.int(10);
  if (roll < 2 && live.length > 0) {
    return { kind: 'watch-cancel', createIndex: pick(rng, live).createIndex };
  }
  if (roll < 3) return { kind: 'watch-cancel-unknown', watchId: String(900 + rng.int(50)) };
  if (roll < 4) return { kind: 'watch-progress' };
  const { key, end } = randomRange(rng);
  const filters = pick(rng, [[], [], [0], [1]]);
  // Negative starts are left out: whether etcd cancels them depends on its compaction state.
  const startRevision = Math.max(0, Number(randomReadRevision(world)));
  const body: Record<string, Wire> = {
    key, range_end: end, start_revision: String(startRevision), filters, prev_kv: chance(rng, 0.5),
  };
  if (chance(rng, 0.1)) {
    // A live ID gives the duplicate-ID error; a retired one is never reused (it would merge
    // two watchers' streams in the comparison).
    const id = String(pick(rng, [100, 101, 0, 1]));
    const isLive = live.some((watcher) => watcher.watchId === id);
    if (isLive || !world.usedWatchIds.has(id)) body['watch_id'] = id;
  }
  return { kind: 'watch-create', body };
}

function unary(rpc: UnaryRpc, body: Msg): Request {
  return { kind: 'unary', rpc, body };
}

function chooseKind(world: World, profile: Profile): OpKind {
  const entries = Object.entries(profile.weights) as [OpKind, number][];
  const total = entries.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = world.rng.float() * total;
  for (const [kind, weight] of entries) {
    roll -= weight;
    if (roll < 0) return kind;
  }
  return 'range';
}

/** The next request of the sequence: a forced one, or one drawn by the profile's weights. */
export async function nextRequest(
  world: World, profile: Profile, reference: CompatClient, watchersMax: number,
): Promise<Request> {
  const forced = world.forced.shift();
  if (forced !== undefined) return forced;
  const kind = chooseKind(world, profile);
  switch (kind) {
    case 'put': return unary('Put', putBody(world));
    case 'range': return unary('Range', await rangeBody(world, reference));
    case 'delete': return unary('DeleteRange', deleteBody(world));
    case 'txn': {
      if (chance(world.rng, 0.06)) return unary('Txn', specialTxn(world));
      return unary('Txn', await txnBody(world, reference, 0));
    }
    case 'compact': return unary('Compact', compactBody(world));
    case 'lease': return leaseRequest(world);
    case 'bad': return badRequest(world);
    case 'maintenance': return maintenanceRequest(world);
    case 'watch': {
      if (world.creates >= watchersMax) return unary('Range', await rangeBody(world, reference));
      return watchRequest(world);
    }
    default: {
      const never: never = kind;
      throw new Error(`unknown op kind ${String(never)}`);
    }
  }
}

/** Learns from the reference's answer what later requests may refer to. */
export function observe(world: World, request: Request, reference: Msg | null): void {
  if (reference === null || request.kind !== 'unary') return;
  const revision = int(reference['header'] as Msg | null | undefined, 'revision');
  world.revision = Math.max(world.revision, revision);
  if (request.rpc === 'Compact') {
    world.compactRevision = Math.max(world.compactRevision, int(request.body, 'revision'));
  } else if (request.rpc === 'LeaseGrant') {
    world.leases.push({ isLive: true });
  } else if (request.rpc === 'LeaseRevoke') {
    const id = text(request.body, 'ID');
    if (id.startsWith('$lease:')) {
      const lease = world.leases[Number(id.slice(7))];
      if (lease !== undefined) lease.isLive = false;
    }
  }
}
