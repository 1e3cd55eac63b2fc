// Self-tests of the compatibility harness (no processes): what the normalisers mask, what they
// keep, and that the comparators report the differences they exist to find.
import { describe, expect, it } from 'vitest';
import { Normalizer, differences, showBytes, type Msg } from '../support/compat-client.js';
import { normalizeTranscript, transcriptDifferences } from '../support/compat-etcdctl.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { prefixEnd, resolveLeases, watcherSees } from './differential-ops.js';

const header = (revision: string): Msg => ({
  cluster_id: '9829954754940738069', member_id: '123', revision, raft_term: '2',
});

describe('compat harness: gRPC normaliser and differ', () => {
  it('drops cluster_id, member_id and raft_term but keeps the header revision', () => {
    const left = new Normalizer().message('Range', { header: header('7'), count: '1' });
    const right = new Normalizer().message('Range', { header: { ...header('7'), member_id: '999', raft_term: '5' }, count: '1' });
    expect(differences(left, right)).toEqual([]);
    const moved = new Normalizer().message('Range', { header: header('8'), count: '1' });
    expect(differences(left, moved)).toEqual(['$.header.revision: "7" ≠ "8"']);
  });

  it('aliases lease IDs in order of first appearance, so equal histories compare equal', () => {
    const etcd = new Normalizer();
    const subject = new Normalizer();
    const first = [etcd.message('LeaseGrant', { ID: '7587866' }), etcd.message('Put', { prev_kv: { lease: '7587866' } })];
    const second = [subject.message('LeaseGrant', { ID: '1' }), subject.message('Put', { prev_kv: { lease: '1' } })];
    expect(differences(first, second)).toEqual([]);
    const swapped = new Normalizer();
    swapped.leaseAlias('2');
    expect(differences(first, [swapped.message('LeaseGrant', { ID: '1' }), swapped.message('Put', { prev_kv: { lease: '2' } })]))
      .not.toEqual([]);
  });

  it('compares TimeToLive TTL within one second, sorts its keys, and reports larger gaps', () => {
    const ttl = (value: string, keys: Buffer[]) => new Normalizer().message('LeaseTimeToLive', {
      header: header('3'), ID: '5', TTL: value, grantedTTL: '60', keys,
    });
    expect(differences(ttl('59', [Buffer.from('a'), Buffer.from('b')]), ttl('58', [Buffer.from('b'), Buffer.from('a')]))).toEqual([]);
    expect(differences(ttl('59', []), ttl('57', []))).toEqual(['$.TTL: 59 ≠ 57']);
  });

  it('masks sizes, raft indexes and hashes, and shows bytes unambiguously', () => {
    const status = (size: string) => new Normalizer().message('Status', {
      header: header('2'), version: '3.4.23', dbSize: size, raftIndex: '9', raftAppliedIndex: '9', raftTerm: '2',
    });
    expect(differences(status('20480'), status('4096'))).toEqual([]);
    expect(showBytes(Buffer.from([0x00, 0x61, 0x5c, 0xff]))).toBe('\\x00a\\x5c\\xff');
  });

  it('reports errors by code and message', () => {
    const normalizer = new Normalizer();
    const left = normalizer.outcome('Put', { ok: false, code: 'INVALID_ARGUMENT', message: 'etcdserver: key is not provided' });
    const right = normalizer.outcome('Put', { ok: false, code: 'UNKNOWN', message: 'etcdserver: key is not provided' });
    expect(differences(left, right)).toEqual(['$.error.code: "INVALID_ARGUMENT" ≠ "UNKNOWN"']);
  });
});

describe('compat harness: request generator helpers', () => {
  it('computes etcd prefix ends, including trailing 0xff and all-0xff keys', () => {
    expect(prefixEnd(Buffer.from('a\xff', 'latin1'))).toEqual(Buffer.from('b'));
    expect(prefixEnd(Buffer.from([0xff, 0xff]))).toEqual(Buffer.from([0]));
    expect(prefixEnd(Buffer.from([0x61, 0x00]))).toEqual(Buffer.from([0x61, 0x01]));
  });

  it('substitutes each side its own lease IDs', () => {
    expect(resolveLeases({ lease: '$lease:1', other: ['$lease:0'] }, ['10', '11'])).toEqual({ lease: '11', other: ['10'] });
    expect(resolveLeases({ lease: '$lease:5' }, ['10'])).toEqual({ lease: '1' });
  });

  it('knows which barrier writes a watcher sees', () => {
    const plan = { key: Buffer.from('a'), end: Buffer.from('c'), filters: [0], startRevision: 0 };
    expect(watcherSees(plan, Buffer.from('b'), true, 5)).toBe(true);
    expect(watcherSees(plan, Buffer.from('b'), false, 5)).toBe(false);
    expect(watcherSees(plan, Buffer.from('c'), true, 5)).toBe(false);
    expect(watcherSees({ ...plan, end: Buffer.from([0]) }, Buffer.from('zz'), true, 5)).toBe(true);
  });
});

describe('compat harness: etcdctl transcript normaliser', () => {
  const store = {
    endpoint: '127.0.0.1:4000', clientUrl: 'http://127.0.0.1:4000', peerUrl: 'http://127.0.0.1:4001',
    dataDir: '/tmp/x',
  } as unknown as StoreProcess;

  it('masks IDs, durations, sizes and raft numbers, and keeps everything else', () => {
    const etcd = normalizeTranscript([
      'lease 694d7a2c1f8b4a0b granted with TTL(60s)',
      '127.0.0.1:4000 is healthy: successfully committed proposal: took = 1.56ms',
      '127.0.0.1:4000, 8e9e05c52164694d, 3.4.23, 20 kB, true, false, 2, 7, 7,',
      '{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":5,"raft_term":2}}',
    ].join('\n'), store);
    const subject = normalizeTranscript([
      'lease 0000000000000001 granted with TTL(60s)',
      '127.0.0.1:4000 is healthy: successfully committed proposal: took = 310µs',
      '127.0.0.1:4000, c49dc759ed009c84, 3.4.23, 4.1 kB, true, false, 3, 12, 12,',
      '{"header":{"cluster_id":1,"member_id":2,"revision":5,"raft_term":3}}',
    ].join('\n'), store);
    expect(transcriptDifferences(etcd, subject)).toEqual([]);
    const moved = normalizeTranscript('{"header":{"cluster_id":1,"member_id":2,"revision":6,"raft_term":3}}', store);
    expect(transcriptDifferences(normalizeTranscript('{"header":{"revision":5}}', store), moved)).toHaveLength(1);
  });
});
