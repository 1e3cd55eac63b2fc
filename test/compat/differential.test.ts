// Differential test: seeded random request sequences sent in lockstep to a real etcd 3.4 and to
// the subject (etcron by default, ETCRON_COMPAT_SUBJECT=etcd for etcd against itself), answers
// compared field by field after normalisation. ETCRON_SEED=<n> replays a run.
import { describe, expect, it } from 'vitest';
import { formatReport, runCase } from './differential-runner.js';
import type { Profile, Request, UnaryRpc } from './differential-ops.js';
import type { Msg } from '../support/compat-client.js';
import { subjectKind } from '../support/compat-subject.js';

// CI replays a fixed seed so that a landing is decided by the code, not by the draw; elsewhere each
// run explores a new one (ETCRON_SEED pins it). Seeds that still differ are listed in the issue notes.
const CI_SEED = 20261129;
const baseSeed = Number(
  process.env['ETCRON_SEED'] ?? (process.env['CI'] === 'true' ? CI_SEED : Math.floor(Math.random() * 2 ** 31)),
);

function caseSeed(name: string): number {
  let hash = baseSeed >>> 0;
  for (const char of name) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return hash;
}

const kv: Profile = {
  name: 'kv',
  weights: { put: 30, range: 30, delete: 8, txn: 10, compact: 2, lease: 5, bad: 3, watch: 5, maintenance: 1 },
};
const txn: Profile = {
  name: 'txn',
  weights: { put: 15, range: 10, delete: 5, txn: 50, compact: 2, lease: 5, bad: 3, watch: 4, maintenance: 0 },
};
const lease: Profile = {
  name: 'lease',
  weights: { put: 25, range: 15, delete: 5, txn: 10, compact: 1, lease: 30, bad: 5, watch: 4, maintenance: 1 },
};

function unary(rpc: UnaryRpc, body: Msg): Request {
  return { kind: 'unary', rpc, body };
}

const b = (text: string): Buffer => Buffer.from(text, 'latin1');

/** Edge cases of etcd's wire behaviour that are easy to get wrong and a random walk would rarely reach. */
const probes: readonly Request[] = [
  unary('HashKV', { revision: '0' }),
  unary('Compact', { revision: '0' }),
  unary('Compact', { revision: '1' }),
  unary('Compact', { revision: '1' }),
  unary('Put', { key: b('x/a'), value: b('1') }),
  unary('Put', { key: b('x/b'), value: b('1') }),
  unary('Put', { key: b('x/b'), value: b('2') }),
  unary('Put', { key: b('x/c'), value: b('1') }),
  unary('Range', { key: b('x/'), range_end: b('x0'), sort_target: 1, limit: '1' }),
  unary('Range', { key: b('x/'), range_end: b('x0'), sort_target: 1, sort_order: 1, limit: '1' }),
  unary('Range', { key: b('x/'), range_end: b('x0'), sort_order: 7 }),
  unary('Range', { key: b('x/'), range_end: b('x0'), limit: '2', min_mod_revision: '4' }),
  unary('Range', { key: b('x/b'), range_end: b('x/a') }),
  unary('Range', { key: b('\x00'), range_end: b('\x00'), count_only: true }),
  // A range_end present on the wire but empty: etcd 3.4 answers every key from `key`.
  unary('Range', { key: b('x/a'), range_end: Buffer.alloc(0) }),
  unary('DeleteRange', { key: b('x/0'), range_end: Buffer.alloc(0) }),
  unary('Txn', { compare: [{ key: b('missing'), target: 3, result: 3, value: b('v') }] }),
  unary('Txn', {
    success: [
      { request_put: { key: b('k'), value: b('v') } },
      { request_txn: { compare: [{ key: b('k'), target: 0, version: '0' }], success: [{ request_range: { key: b('k') } }] } },
    ],
  }),
  unary('LeaseGrant', { ID: '-7', TTL: '60' }),
  unary('LeaseGrant', { ID: '-7', TTL: '60' }),
  unary('LeaseGrant', { ID: '0', TTL: '9000000001' }),
  unary('LeaseGrant', { ID: '42', TTL: '0' }),
  unary('LeaseRevoke', { ID: '42' }),
  unary('LeaseRevoke', { ID: '0' }),
  unary('Put', { key: b('leased'), value: b('v'), lease: '-7' }),
  unary('Put', { key: b('leased'), value: b('w'), ignore_value: true }),
  unary('LeaseTimeToLive', { ID: '-7', keys: true }),
  unary('Put', { key: b('leased'), value: b('x'), lease: '-7' }),
  unary('Put', { key: b('leased'), ignore_value: true, ignore_lease: true }),
  unary('LeaseTimeToLive', { ID: '-7', keys: true }),
  unary('LeaseTimeToLive', { ID: '99', keys: true }),
  unary('KeepAliveOnce', { ID: '-7' }),
  unary('KeepAliveOnce', { ID: '0' }),
  unary('LeaseRevoke', { ID: '-7' }),
  unary('Put', { key: b('big'), value: Buffer.alloc(1_572_864 - 20) }),
  unary('Put', { key: b('big'), value: Buffer.alloc(1_572_864 - 100) }),
  unary('Put', { key: b('huge'), value: Buffer.alloc(2_200_000) }),
  unary('DeleteRange', { key: b('big') }),
  unary('Status', {}),
  unary('Alarm', { action: 0 }),
  unary('Alarm', { action: 2, memberID: '0', alarm: 0 }),
  unary('MemberList', {}),
  unary('Hash', {}),
  unary('HashKV', { revision: '0' }),
  unary('HashKV', { revision: '1' }),
  unary('HashKV', { revision: '1000' }),
  unary('Defragment', {}),
  unary('MoveLeader', { targetID: '12345' }),
  unary('MemberAdd', { peerURLs: [] }),
  unary('MemberAdd', { peerURLs: ['not a url'] }),
  unary('MemberRemove', { ID: '12345' }),
  unary('MemberUpdate', { ID: '12345', peerURLs: ['http://127.0.0.1:1'] }),
  unary('MemberPromote', { ID: '12345' }),
  { kind: 'watch-create', body: { key: b('b'), range_end: b('a') } },
  { kind: 'watch-create', body: { key: b('x/'), range_end: b('x0'), watch_id: '7', prev_kv: true } },
  { kind: 'watch-create', body: { key: b('x/'), watch_id: '7' } },
  { kind: 'watch-create', body: { key: b('x/a'), start_revision: '2' } },
  { kind: 'watch-progress' },
  unary('DeleteRange', { key: b('x/'), range_end: b('x0'), prev_kv: true }),
  unary('Compact', { revision: '9' }),
  { kind: 'watch-create', body: { key: b('x/'), range_end: b('x0'), start_revision: '3' } },
  { kind: 'watch-create', body: { key: b('x/'), range_end: b('x0'), start_revision: '9', prev_kv: true } },
  unary('HashKV', { revision: '9' }),
  unary('HashKV', { revision: '-1' }),
  // The v3lock and v3election services, with a lease whose ID we choose.
  unary('Lock', { name: b('lk'), lease: '555' }),
  unary('LeaseGrant', { ID: '4242', TTL: '600' }),
  unary('Lock', { name: b('lk'), lease: '4242' }),
  unary('Range', { key: b('lk/'), range_end: b('lk0') }),
  unary('Unlock', { key: b('lk/1092') }),
  unary('Unlock', { key: b('lk/1092') }),
  unary('Leader', { name: b('el') }),
  unary('Campaign', { name: b('el'), lease: '4242', value: b('v1') }),
  unary('Leader', { name: b('el') }),
  unary('Proclaim', { leader: { name: b('el'), key: b('el/1092'), rev: '0', lease: '4242' }, value: b('v2') }),
  unary('Proclaim', { value: b('v3') }),
  unary('Resign', {}),
  unary('Leader', { name: b('el') }),
  unary('LeaseRevoke', { ID: '4242' }),
  unary('Leader', { name: b('el') }),
  // Bad wire input: garbage bytes, a truncated field, an unknown field number.
  { kind: 'raw', service: 'KV', method: 'Range', bytes: Buffer.from([0xff, 0xff, 0xff, 0xff]) },
  { kind: 'raw', service: 'KV', method: 'Put', bytes: Buffer.from([0x0a, 0x10, 0x61]) },
  { kind: 'raw', service: 'KV', method: 'Range', bytes: Buffer.from([0x0a, 0x01, 0x61, 0xf8, 0x06, 0x01]) },
  { kind: 'raw', service: 'Lease', method: 'LeaseGrant', bytes: Buffer.from([0x08, 0x80]) },
  unary('Range', { key: b('x/'), range_end: b('x0'), sort_order: 1, sort_target: 4, keys_only: true }),
  // Expiry of a minimum-TTL lease (2 s): its keys go in one revision, in key order.
  { kind: 'lease-expiry', id: '777', keys: [b('x/lease-b'), b('x/lease-a'), b('x/lease-c')] },
  // Fragmented watch responses: a catch-up over two 1.2 MiB values exceeds 2 MiB.
  unary('Put', { key: b('frag/1'), value: Buffer.alloc(1_200_000, 0x31) }),
  unary('Put', { key: b('frag/2'), value: Buffer.alloc(1_200_000, 0x32) }),
  { kind: 'watch-create', body: { key: b('frag/'), range_end: b('frag0'), start_revision: '$rev-1', fragment: true } },
  { kind: 'watch-create', body: { key: b('frag/'), range_end: b('frag0'), start_revision: '$rev-3' } },
  unary('DeleteRange', { key: b('frag/'), range_end: b('frag0') }),
  unary('Range', { key: b('x/a'), revision: '8' }),
  unary('Range', { key: b('x/a'), revision: '9' }),
];

const cases = [
  { name: 'probes', profile: kv, steps: 500, watchersMax: 10, prelude: probes },
  { name: 'kv', profile: kv, steps: 4000, watchersMax: 10 },
  { name: 'txn', profile: txn, steps: 2000, watchersMax: 6 },
  { name: 'lease', profile: lease, steps: 1500, watchersMax: 6 },
];

describe(`differential: ${subjectKind()} store against etcd 3.4 (seed ${baseSeed})`, () => {
  for (const options of cases) {
    it(`${options.name}: ${options.steps} seeded steps answer as etcd does`, async () => {
      const report = await runCase({ ...options, seed: caseSeed(options.name), replaySeed: baseSeed });
      if (report.differences.length > 0) console.error(formatReport(report));
      expect(report.differences.length, formatReport(report)).toBe(0);
    }, 240_000);
  }
});
