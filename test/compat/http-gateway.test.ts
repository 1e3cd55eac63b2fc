// etcd 3.4's HTTP JSON gateway and /metrics on the client port (issue #7), differentially: the
// same curl-style requests go to a real etcd and to the subject in the same order, and the
// answers (status, content type, JSON body) must agree once what etcd decides by chance (cluster
// and member IDs, terms, raft indexes, sizes, hashes, URLs) is masked. Revisions are kept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpCall, httpStream, type HttpAnswer, type HttpStream } from '../support/compat-http.js';
import {
  disposeStores,
  startReference,
  startSubject,
  subjectKind,
} from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

let reference: StoreProcess | undefined;
let subject: StoreProcess | undefined;

beforeAll(async () => {
  [reference, subject] = await Promise.all([startReference(), startSubject()]);
}, 60_000);

afterAll(async () => {
  await disposeStores(reference, subject);
});

function endpoints(): readonly [string, string] {
  if (reference === undefined || subject === undefined) throw new Error('stores not started');
  return [reference.endpoint, subject.endpoint];
}

/** Fields whose values etcd picks by chance or by timing. */
const MASKED = new Set([
  'cluster_id',
  'member_id',
  'raft_term',
  'leader',
  'raftIndex',
  'raftTerm',
  'raftAppliedIndex',
  'dbSize',
  'dbSizeInUse',
  'hash',
  'peerURLs',
  'clientURLs',
]);

function mask(value: unknown, inMembers = false): unknown {
  if (Array.isArray(value)) return value.map((item) => mask(item, inMembers));
  if (typeof value !== 'object' || value === null) return value;
  const object = value as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(object).map(([key, field]) => {
      if (MASKED.has(key) || (inMembers && key === 'ID')) return [key, '<masked>'];
      if (key === 'TTL' && isNearGrantedTtl(field, object['grantedTTL'])) return [key, '<granted>'];
      return [key, mask(field, key === 'members')];
    }),
  );
}

/** A time-to-live read a moment after the grant may have lost a second (§16: TTL ±1 s). */
function isNearGrantedTtl(ttl: unknown, granted: unknown): boolean {
  if (typeof ttl !== 'string' || typeof granted !== 'string') return false;
  const left = Number(ttl);
  return left > 0 && Number(granted) - left <= 1;
}

/** JSON bodies compared as values (masked), others as text; each stream line on its own. */
function normalise(answer: HttpAnswer): unknown {
  const parse = (text: string): unknown => {
    try {
      return mask(JSON.parse(text));
    } catch {
      return text;
    }
  };
  const lines = answer.body.split('\n').filter((line) => line !== '');
  return {
    status: answer.status,
    contentType: answer.contentType,
    body: lines.length > 1 ? lines.map(parse) : parse(answer.body),
  };
}

interface Case {
  readonly name: string;
  readonly path: string;
  readonly body?: string;
  readonly method?: string;
}

/** Runs each case on etcd, then on the subject, and compares the normalised answers. */
async function expectSameAnswers(cases: readonly Case[]): Promise<void> {
  const [etcd, store] = endpoints();
  for (const c of cases) {
    const method = c.method ?? 'POST';
    const expected = normalise(await httpCall(etcd, method, c.path, c.body ?? ''));
    const actual = normalise(await httpCall(store, method, c.path, c.body ?? ''));
    expect(actual, `${c.name}: ${method} ${c.path} ${c.body ?? ''}`).toEqual(expected);
  }
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

describe(`JSON gateway of the ${subjectKind()} store, against etcd 3.4`, () => {
  it('kv: put, range (numbers as strings, enums by name and number), delete, txn', async () => {
    await expectSameAnswers([
      { name: 'put', path: '/v3/kv/put', body: `{"key":"${b64('foo')}","value":"${b64('bar')}"}` },
      {
        name: 'put with prev_kv',
        path: '/v3/kv/put',
        body: `{"key":"${b64('foo')}","value":"${b64('baz')}","prev_kv":true}`,
      },
      {
        name: 'lowerCamel names win over declared ones',
        path: '/v3/kv/put',
        body: `{"key":"${b64('foo')}","value":"${b64('baz')}","prevKv":true,"prev_kv":false}`,
      },
      { name: 'put sibling', path: '/v3/kv/put', body: `{"key":"${b64('fop')}","value":""}` },
      { name: 'range', path: '/v3/kv/range', body: `{"key":"${b64('foo')}"}` },
      {
        name: 'range prefix, sorted',
        path: '/v3/kv/range',
        body: `{"key":"${b64('f')}","range_end":"${b64('g')}","limit":"1","sort_order":"DESCEND","sort_target":4}`,
      },
      {
        name: 'range keys and count only',
        path: '/v3/kv/range',
        body: `{"key":"${b64('f')}","range_end":"${b64('g')}","keys_only":true}`,
      },
      {
        name: 'range count only',
        path: '/v3/kv/range',
        body: `{"key":"AA==","range_end":"AA==","count_only":true}`,
      },
      {
        name: 'range_end present but empty',
        path: '/v3/kv/range',
        body: `{"key":"${b64('foo')}","range_end":""}`,
      },
      {
        name: 'unknown fields are ignored, camelCase too',
        path: '/v3/kv/range',
        body: `{"key":"${b64('foo')}","nope":1,"keysOnly":true}`,
      },
      {
        name: 'trailing text after the request',
        path: '/v3/kv/range',
        body: `{"key":"${b64('foo')}"} tail`,
      },
      {
        name: 'future revision',
        path: '/v3/kv/range',
        body: `{"key":"${b64('foo')}","revision":1000}`,
      },
      {
        name: 'the /v3beta prefix',
        path: '/v3beta/kv/range',
        body: `{"key":"${b64('foo')}","serializable":true}`,
      },
      { name: 'delete nothing', path: '/v3/kv/deleterange', body: `{"key":"${b64('none')}"}` },
      {
        name: 'delete with prev_kv',
        path: '/v3/kv/deleterange',
        body: `{"key":"${b64('fop')}","prev_kv":true}`,
      },
      {
        name: 'txn success',
        path: '/v3/kv/txn',
        body:
          `{"compare":[{"key":"${b64('foo')}","result":"EQUAL","target":"VALUE","value":"${b64('baz')}"}],` +
          `"success":[{"request_range":{"key":"${b64('foo')}"}},{"request_put":{"key":"${b64('foo')}","value":"${b64('qux')}","prev_kv":true}}]}`,
      },
      {
        name: 'txn failure',
        path: '/v3/kv/txn',
        body:
          `{"compare":[{"key":"${b64('foo')}","target":"MOD","result":"LESS","mod_revision":"2"}],` +
          `"failure":[{"request_delete_range":{"key":"${b64('x')}"}},{"request_txn":{}}]}`,
      },
      { name: 'txn with an empty op', path: '/v3/kv/txn', body: '{"success":[{}]}' },
    ]);
  });

  it('refusals: bad JSON, bad base64, wrong types, unknown enum names, paths and methods', async () => {
    const key = `"key":"${b64('foo')}"`;
    await expectSameAnswers([
      { name: 'bad JSON', path: '/v3/kv/range', body: '{bad' },
      { name: 'truncated JSON', path: '/v3/kv/range', body: `{${key}` },
      { name: 'bad literal', path: '/v3/kv/range', body: `{${key},"serializable": tru}` },
      { name: 'not an object', path: '/v3/kv/range', body: '[]' },
      { name: 'empty body', path: '/v3/kv/range', body: '' },
      { name: 'bad base64', path: '/v3/kv/range', body: '{"key":"!!!"}' },
      { name: 'URL-safe base64', path: '/v3/kv/range', body: '{"key":"Zm9v-_"}' },
      { name: 'unpadded base64', path: '/v3/kv/range', body: '{"key":"Zm9"}' },
      { name: 'bytes as a number', path: '/v3/kv/range', body: '{"key":5}' },
      { name: 'bool as a string', path: '/v3/kv/range', body: `{${key},"keys_only":"true"}` },
      { name: 'fractional int64', path: '/v3/kv/range', body: `{${key},"limit":1.5}` },
      { name: 'quoted garbage int64', path: '/v3/kv/range', body: `{${key},"limit":"x"}` },
      {
        name: 'int64 overflow',
        path: '/v3/kv/range',
        body: `{${key},"limit":"99999999999999999999"}`,
      },
      { name: 'null body', path: '/v3/kv/range', body: 'null' },
      { name: 'a string body', path: '/v3/kv/range', body: '"x"' },
      { name: 'int64 as a bool', path: '/v3/kv/range', body: `{${key},"limit":true}` },
      { name: 'int64 as quoted null', path: '/v3/kv/range', body: `{${key},"limit":"null"}` },
      { name: 'fractional enum', path: '/v3/kv/range', body: `{${key},"sort_order":1.5}` },
      { name: 'repeated as an object', path: '/v3/kv/txn', body: '{"compare":{}}' },
      {
        name: 'nested message as an array',
        path: '/v3/kv/txn',
        body: '{"success":[{"request_range":[]}]}',
      },
      { name: 'unknown enum name', path: '/v3/kv/range', body: `{${key},"sort_order":"WRONG"}` },
      {
        name: 'request larger than gRPC accepts',
        path: '/v3/kv/put',
        body: `{"key":"${b64('big')}","value":"${Buffer.alloc(2 * 1024 * 1024).toString('base64')}"}`,
      },
      { name: 'empty key', path: '/v3/kv/put', body: `{"key":"","value":"${b64('v')}"}` },
      { name: 'unknown route', path: '/v3/kv/nope', body: '{}' },
      {
        name: 'route without a gateway binding in 3.4',
        path: '/v3/maintenance/hashkv',
        body: '{}',
      },
      { name: 'unknown prefix', path: '/v3alpha/kv/range', body: '{}' },
      { name: 'outside the gateway', path: '/nope', body: '{}' },
      { name: 'wrong method', path: '/v3/kv/range', method: 'GET' },
      { name: 'CORS preflight', path: '/v3/kv/range', method: 'OPTIONS' },
      { name: 'bare prefix', path: '/v3', body: '{}' },
    ]);
  });

  it('compaction: compacted and future revisions', async () => {
    const [etcd] = endpoints();
    const current = JSON.parse(
      (await httpCall(etcd, 'POST', '/v3/kv/range', '{"key":"AA=="}')).body,
    ) as { header: { revision: string } };
    const revision = current.header.revision;
    await expectSameAnswers([
      { name: 'compact', path: '/v3/kv/compaction', body: `{"revision":"${revision}"}` },
      {
        name: 'range at a compacted revision',
        path: '/v3/kv/range',
        body: `{"key":"${b64('foo')}","revision":1}`,
      },
      { name: 'compact again below', path: '/v3/kv/compaction', body: '{"revision":1}' },
      { name: 'compact in the future', path: '/v3/kv/compaction', body: '{"revision":100000}' },
      {
        name: 'range at the compaction point',
        path: '/v3/kv/range',
        body: `{"key":"${b64('foo')}","revision":${revision}}`,
      },
    ]);
  });

  it('lease: grant, time-to-live, keep-alive stream, leases, revoke, missing leases', async () => {
    await expectSameAnswers([
      { name: 'grant with an ID', path: '/v3/lease/grant', body: '{"TTL":600,"ID":7000}' },
      { name: 'grant the same ID', path: '/v3/lease/grant', body: '{"TTL":600,"ID":"7000"}' },
      {
        name: 'put with the lease',
        path: '/v3/kv/put',
        body: `{"key":"${b64('leased')}","value":"${b64('v')}","lease":"7000"}`,
      },
      {
        name: 'put with a missing lease',
        path: '/v3/kv/put',
        body: `{"key":"${b64('leased')}","lease":"7001"}`,
      },
      {
        name: 'time-to-live with keys',
        path: '/v3/lease/timetolive',
        body: '{"ID":7000,"keys":true}',
      },
      {
        name: 'time-to-live of a missing lease',
        path: '/v3/kv/lease/timetolive',
        body: '{"ID":7001}',
      },
      { name: 'leases', path: '/v3/lease/leases', body: '{}' },
      {
        name: 'keep-alive stream, two requests',
        path: '/v3/lease/keepalive',
        body: '{"ID":7000}\n{"ID":7001}',
      },
      { name: 'keep-alive stream, bad first request', path: '/v3/lease/keepalive', body: '{bad' },
      { name: 'revoke', path: '/v3/lease/revoke', body: '{"ID":7000}' },
      { name: 'revoke again', path: '/v3/lease/revoke', body: '{"ID":7000}' },
      { name: 'revoke through the kv alias', path: '/v3/kv/lease/revoke', body: '{"ID":7000}' },
      {
        name: 'the leased key went with it',
        path: '/v3/kv/range',
        body: `{"key":"${b64('leased')}"}`,
      },
    ]);
  });

  it('lock and election routes (v3lock, v3election)', async () => {
    const name = b64('election');
    await expectSameAnswers([
      { name: 'grant', path: '/v3/lease/grant', body: '{"TTL":600,"ID":9100}' },
      { name: 'no leader yet', path: '/v3/election/leader', body: `{"name":"${name}"}` },
      {
        name: 'campaign',
        path: '/v3/election/campaign',
        body: `{"name":"${name}","lease":9100,"value":"${b64('v1')}"}`,
      },
      { name: 'leader', path: '/v3/election/leader', body: `{"name":"${name}"}` },
      { name: 'lock', path: '/v3/lock/lock', body: `{"name":"${b64('lock')}","lease":"9100"}` },
      { name: 'unlock', path: '/v3/lock/unlock', body: `{"key":"${b64('lock/238c')}"}` },
      { name: 'revoke', path: '/v3/lease/revoke', body: '{"ID":9100}' },
    ]);
  });

  it('cluster, maintenance and auth routes', async () => {
    await expectSameAnswers([
      { name: 'member list', path: '/v3/cluster/member/list', body: '{}' },
      {
        name: 'member remove of a stranger',
        path: '/v3/cluster/member/remove',
        body: '{"ID":"1"}',
      },
      { name: 'status', path: '/v3/maintenance/status', body: '{}' },
      { name: 'alarm list', path: '/v3/maintenance/alarm', body: '{}' },
      {
        name: 'move leader to a stranger',
        path: '/v3/maintenance/transfer-leadership',
        body: '{"targetID":"1"}',
      },
      {
        name: 'authenticate while auth is off',
        path: '/v3/auth/authenticate',
        body: '{"name":"root","password":"x"}',
      },
      { name: 'auth status has no route in 3.4', path: '/v3/auth/status', body: '{}' },
    ]);
  });
});

/** Waits (bounded) until both streams have at least `count` lines, then compares them masked. */
async function expectSameLines(
  streams: readonly [HttpStream, HttpStream],
  count: number,
  what: string,
): Promise<void> {
  await waitFor(
    `${count} lines on both ${what} streams`,
    () => (streams.every((s) => s.lines().length >= count) ? true : undefined),
    10_000,
  );
  const [expected, actual] = streams.map((s) => s.lines().map((line) => mask(JSON.parse(line))));
  expect(actual, what).toEqual(expected);
}

describe(`watch stream through the gateway of the ${subjectKind()} store`, () => {
  it('streams {"result": WatchResponse} lines and keeps streaming after the request body ends', async () => {
    const [etcd, store] = endpoints();
    const key = b64('watched');
    const opened: HttpStream[] = [];
    try {
      const watch = (): [HttpStream, HttpStream] => {
        const pair: [HttpStream, HttpStream] = [
          httpStream(etcd, '/v3/watch', `{"create_request":{"key":"${key}","prev_kv":true}}`),
          httpStream(store, '/v3/watch', `{"create_request":{"key":"${key}","prev_kv":true}}`),
        ];
        opened.push(...pair);
        return pair;
      };
      const streams = watch();
      await expectSameLines(streams, 1, 'created');
      for (const endpoint of [etcd, store]) {
        expect(
          (await httpCall(endpoint, 'POST', '/v3/kv/put', `{"key":"${key}","value":"${b64('1')}"}`))
            .status,
        ).toBe(200);
        expect(
          (await httpCall(endpoint, 'POST', '/v3/kv/put', `{"key":"${key}","value":"${b64('2')}"}`))
            .status,
        ).toBe(200);
        expect(
          (await httpCall(endpoint, 'POST', '/v3/kv/deleterange', `{"key":"${key}"}`)).status,
        ).toBe(200);
      }
      await expectSameLines(streams, 4, 'put, put, delete');
      expect(streams.map((s) => s.isEnded())).toEqual([false, false]);
    } finally {
      for (const stream of opened) stream.close();
    }
  });

  it('keeps a watch streaming past 4 MiB of events (the volume at which a slow gRPC watcher parks)', { timeout: 60_000 }, async () => {
    const [etcd, store] = endpoints();
    const key = b64('volume');
    const value = b64('v'.repeat(256 * 1024));
    const puts = 24; // 6 MiB of values
    const streams: [HttpStream, HttpStream] = [
      httpStream(etcd, '/v3/watch', `{"create_request":{"key":"${key}"}}`),
      httpStream(store, '/v3/watch', `{"create_request":{"key":"${key}"}}`),
    ];
    try {
      await expectSameLines(streams, 1, 'created');
      for (const endpoint of [etcd, store]) {
        for (let i = 0; i < puts; i++) {
          expect((await httpCall(endpoint, 'POST', '/v3/kv/put', `{"key":"${key}","value":"${value}"}`)).status).toBe(200);
        }
      }
      for (const [i, stream] of streams.entries()) {
        await waitFor(`${i === 0 ? 'etcd' : 'subject'}: every put seen on the watch`,
          () => (stream.lines().length >= 1 + puts ? true : undefined), 30_000, 50);
      }
    } finally {
      for (const stream of streams) stream.close();
    }
  });

  it('compacted start revision, progress and cancel requests, and a bad first request', async () => {
    const [etcd, store] = endpoints();
    const opened: HttpStream[] = [];
    try {
      const both = (body: string): [HttpStream, HttpStream] => {
        const pair: [HttpStream, HttpStream] = [
          httpStream(etcd, '/v3/watch', body),
          httpStream(store, '/v3/watch', body),
        ];
        opened.push(...pair);
        return pair;
      };
      await expectSameLines(
        both(`{"create_request":{"key":"${b64('foo')}","start_revision":"1"}}`),
        2,
        'compacted',
      );
      const requests = `{"create_request":{"key":"${b64('p')}","watch_id":5}}\n{"progress_request":{}}\n{"cancel_request":{"watch_id":5}}`;
      await expectSameLines(both(requests), 3, 'create, progress, cancel');
      const bad = both('{"create_request":{"key":"!!"}}');
      await waitFor(
        'both bad watches to end',
        () => (bad.every((s) => s.isEnded()) ? true : undefined),
        10_000,
      );
      expect(bad.map((s) => s.status())).toEqual([500, 500]);
      expect(bad[1].lines()).toEqual(bad[0].lines());
    } finally {
      for (const stream of opened) stream.close();
    }
  });
});

describe(`snapshot stream through the gateway of the ${subjectKind()} store`, () => {
  it('streams the database as {"result":{"remaining_bytes","blob"}} lines counting down to 0', async () => {
    for (const endpoint of endpoints()) {
      const answer = await httpCall(endpoint, 'POST', '/v3/maintenance/snapshot', '{}');
      expect(answer.status, endpoint).toBe(200);
      const results = answer.body
        .split('\n')
        .filter((line) => line !== '')
        .map(
          (line) =>
            (JSON.parse(line) as { result: { remaining_bytes?: string; blob?: string } }).result,
        );
      expect(results.length, endpoint).toBeGreaterThan(1);
      const remaining = results.map((r) => Number(r.remaining_bytes ?? '0'));
      expect(remaining.at(-1), endpoint).toBe(0);
      expect(remaining.every((value, i) => i === 0 || value <= (remaining[i - 1] ?? 0))).toBe(true);
      expect(results.every((r) => typeof r.blob === 'string' && r.blob.length > 0)).toBe(true);
    }
  });
});

/** The metric families etcron exports under etcd's names (a subset of etcd's own). */
const REQUIRED_FAMILIES = [
  'etcd_server_proposals_committed_total',
  'etcd_server_proposals_applied_total',
  'etcd_server_proposals_pending',
  'etcd_server_proposals_failed_total',
  'etcd_server_has_leader',
  'etcd_server_leader_changes_seen_total',
  'etcd_mvcc_db_total_size_in_bytes',
  'etcd_debugging_mvcc_db_total_size_in_bytes',
  'etcd_disk_wal_fsync_duration_seconds',
  'etcd_disk_backend_commit_duration_seconds',
  'grpc_server_started_total',
  'grpc_server_handled_total',
  'process_resident_memory_bytes',
  'etcd_server_is_leader',
  'etcd_server_id',
  'etcd_server_version',
  'etcd_cluster_version',
  'etcd_debugging_mvcc_current_revision',
  'etcd_mvcc_put_total',
  'etcd_mvcc_delete_total',
  'etcd_debugging_mvcc_keys_total',
];

function families(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
}

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no series ${series}`);
  return Number(line.slice(series.length + 1));
}

describe(`/metrics of the ${subjectKind()} store`, () => {
  it("exports etcd's core families with etcd's types", async () => {
    const [etcd, store] = endpoints();
    const [expected, actual] = await Promise.all([
      httpCall(etcd, 'GET', '/metrics'),
      httpCall(store, 'GET', '/metrics'),
    ]);
    expect(actual.status).toBe(200);
    expect(actual.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const etcdTypes = families(expected.body);
    const ourTypes = families(actual.body);
    for (const name of REQUIRED_FAMILIES) {
      expect(ourTypes.get(name), name).toBeDefined();
      expect(ourTypes.get(name), name).toBe(etcdTypes.get(name));
    }
    expect(sample(actual.body, 'etcd_server_has_leader')).toBe(1);
    expect(sample(actual.body, 'etcd_server_is_leader')).toBe(1);
    for (const series of [
      'etcd_server_version{server_version="3.4.23"}',
      'etcd_cluster_version{cluster_version="3.4"}',
    ]) {
      expect(sample(actual.body, series), series).toBe(sample(expected.body, series));
    }
  });

  it('counters move when a put is made through the gateway', async () => {
    const [etcd, store] = endpoints();
    // The same put on etcd keeps both stores at the same revision for the tests after this one.
    expect(
      (
        await httpCall(
          etcd,
          'POST',
          '/v3/kv/put',
          `{"key":"${b64('metered')}","value":"${b64('1')}"}`,
        )
      ).status,
    ).toBe(200);
    const put =
      'grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}';
    const started =
      'grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}';
    const read = async (): Promise<string> => (await httpCall(store, 'GET', '/metrics')).body;
    const before = await read();
    expect(
      (
        await httpCall(
          store,
          'POST',
          '/v3/kv/put',
          `{"key":"${b64('metered')}","value":"${b64('1')}"}`,
        )
      ).status,
    ).toBe(200);
    // etcd commits its backend on a 100 ms timer: wait, bounded, until every counter has moved.
    const grew = (after: string, series: string): boolean =>
      sample(after, series) > sample(before, series);
    const after = await waitFor(
      'the counters to move after a put',
      async () => {
        const text = await read();
        const moved = [
          'etcd_server_proposals_applied_total',
          'etcd_server_proposals_committed_total',
          'etcd_disk_wal_fsync_duration_seconds_count',
          'etcd_disk_backend_commit_duration_seconds_count',
        ].every((series) => grew(text, series));
        return moved ? text : undefined;
      },
      5_000,
    );
    expect(sample(after, put)).toBe(sample(before, put) + 1);
    expect(sample(after, started)).toBe(sample(before, started) + 1);
    expect(sample(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });
});

describe(`auth through the gateway of the ${subjectKind()} store`, () => {
  // Last in the file: it turns auth on (and off again at its end).
  it('a token from /v3/auth/authenticate is taken from the Authorization header', async () => {
    const answers = await Promise.all(
      endpoints().map(async (endpoint) => {
        const call = async (path: string, body: string, token?: string): Promise<unknown> =>
          normalise(
            await httpCall(
              endpoint,
              'POST',
              path,
              body,
              token === undefined ? {} : { Authorization: token },
            ),
          );
        const seen: unknown[] = [
          await call('/v3/auth/user/add', '{"name":"root","password":"pw"}'),
          await call('/v3/auth/user/grant', '{"user":"root","role":"root"}'),
          await call('/v3/auth/user/add', '{"name":"plain","password":"pw"}'),
          await call('/v3/auth/enable', '{}'),
          await call('/v3/kv/range', '{"key":"Zm9v"}'),
        ];
        const authenticated = await httpCall(
          endpoint,
          'POST',
          '/v3/auth/authenticate',
          '{"name":"root","password":"pw"}',
        );
        const token = (JSON.parse(authenticated.body) as { token?: string }).token ?? '';
        const plain = await httpCall(
          endpoint,
          'POST',
          '/v3/auth/authenticate',
          '{"name":"plain","password":"pw"}',
        );
        const plainToken = (JSON.parse(plain.body) as { token?: string }).token ?? '';
        seen.push(
          token.length > 0,
          await call('/v3/kv/range', '{"key":"Zm9v"}', token),
          await call('/v3/kv/range', '{"key":"Zm9v"}', 'bogus'),
          await call('/v3/auth/user/list', '{}', token),
          // A stream refused before its first message: grpc-gateway's error chunk.
          await call('/v3/maintenance/snapshot', '{}', plainToken),
          await call('/v3/auth/disable', '{}', token),
        );
        return seen;
      }),
    );
    expect(answers[1]).toEqual(answers[0]);
  });
});
