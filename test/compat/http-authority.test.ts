// etcdctl 3.4 with http:// endpoints (issue 11 item 6): for calls to one endpoint it sends
// `:authority: http://host:port`, which Node's HTTP/2 refuses on its own; etcron must answer them
// as etcd does. Same commands against real etcd and the subject, outputs compared with the
// endpoint and member ID written out of them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctlAt } from '../support/etcdctl-endpoints.js';
import { disposeStores, startReference, startSubject } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { CompatClient } from '../support/compat-client.js';

describe('etcdctl per-endpoint calls with http:// endpoints', () => {
  let stores: StoreProcess[] = [];
  beforeAll(async () => { stores = await Promise.all([startReference(), startSubject()]); }, 60_000);
  afterAll(async () => { await disposeStores(...stores); });

  it('defrag, endpoint status and hashkv, alarm list and move-leader answer as on etcd', { timeout: 60_000 }, async () => {
    const transcripts: string[] = [];
    for (const store of stores) {
      const endpoint = `http://${store.endpoint}`;
      const client = new CompatClient(store.endpoint);
      const members = await client.memberList();
      client.close();
      const memberId = members.ok ? BigInt(String(((members.value['members'] as { ID: string }[])[0])?.ID ?? '0')).toString(16) : '?';
      const lines: string[] = [];
      for (const args of [
        ['put', 'k', 'v'], ['put', 'k', 'w'],
        ['defrag'], ['endpoint', 'status', '-w', 'json'], ['endpoint', 'hashkv'], ['alarm', 'list'],
        ['move-leader', 'ffff'],
      ]) {
        const result = await ctlAt([endpoint], args);
        // What differs between two stores by nature: the endpoint, IDs, sizes, times.
        const text = `${result.stdout}${result.stderr.split('\n').filter((l) => l.startsWith('Error:')).join('\n')}`
          .replaceAll(endpoint, '<endpoint>').replaceAll(memberId, '<member>')
          .replace(/"(cluster_id|member_id|leader|dbSize|dbSizeInUse|raft_term|raftIndex|raftAppliedIndex|raft_index|raftTerm|revision)":"?\d+"?/g, '"$1":0')
          .replace(/"version":"[^"]*"/, '"version":0');
        lines.push(`$ etcdctl ${args.join(' ')} → ${result.code}\n${text.trim()}`);
      }
      transcripts.push(lines.join('\n'));
    }
    expect(transcripts[1]).toBe(transcripts[0]);
    expect(transcripts[1]).toContain('Finished defragmenting etcd member[<endpoint>]');
  });
});
