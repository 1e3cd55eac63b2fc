// A watcher whose client stops reading (issue 11 item 8): the member stops queueing for it (etcd
// counts it in etcd_debugging_mvcc_slow_watcher_total), and once the client reads again it gets
// every event, in order, once — on real etcd 3.4 and on the subject alike.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompatClient, type Msg } from '../support/compat-client.js';
import { httpCall } from '../support/compat-http.js';
import { disposeStores, startReference, startSubject } from '../support/compat-subject.js';
import { REPO_ROOT, type StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

const KEYS = 3_000;
const VALUE = Buffer.alloc(4 * 1024, 'v');

function watchMethod(): grpc.MethodDefinition<Msg, Msg> {
  const definitions = protoLoader.loadSync(['rpc.proto'], {
    includeDirs: [join(REPO_ROOT, 'store', 'api', 'proto')], keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true,
  });
  const service = definitions['etcdserverpb.Watch'] as unknown as Record<string, grpc.MethodDefinition<Msg, Msg>>;
  return service['Watch'] as grpc.MethodDefinition<Msg, Msg>;
}

async function slowWatchers(store: StoreProcess): Promise<number> {
  const answer = await httpCall(store.endpoint, 'GET', '/metrics');
  const line = answer.body.split('\n').find((l) => l.startsWith('etcd_debugging_mvcc_slow_watcher_total '));
  return Number(line?.split(' ')[1] ?? Number.NaN);
}

describe('a watch client that stops reading', () => {
  let stores: StoreProcess[] = [];
  beforeAll(async () => {
    stores = await Promise.all([startReference(), startSubject()]);
  }, 60_000);
  afterAll(async () => { await disposeStores(...stores); });

  it('is counted slow, then gets every event in order once it reads again', { timeout: 120_000 }, async () => {
    const method = watchMethod();
    for (const store of stores) {
      const client = new grpc.Client(store.endpoint, grpc.credentials.createInsecure());
      const writer = new CompatClient(store.endpoint);
      const call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
      const keys: string[] = [];
      const revisions: number[] = [];
      let created = false;
      call.on('data', (response: Msg) => {
        if (response['created'] === true) created = true;
        for (const event of (response['events'] ?? []) as Msg[]) {
          keys.push(String((event['kv'] as Msg)['key']));
          revisions.push(Number((event['kv'] as Msg)['mod_revision']));
        }
      });
      call.on('error', () => {});
      try {
        call.write({ create_request: { key: Buffer.from('/slow/'), range_end: Buffer.from('/slow0') } });
        await waitFor(`${store.kind}: watch created`, () => (created ? true : undefined), 10_000, 20);
        call.pause();
        // Far more than the HTTP/2 windows hold: the member's sends must back up.
        for (let i = 0; i < KEYS; i += 100) {
          const puts = [];
          for (let j = i; j < Math.min(KEYS, i + 100); j++) {
            puts.push(writer.put({ key: Buffer.from(`/slow/${String(j).padStart(5, '0')}`), value: VALUE }));
          }
          for (const outcome of await Promise.all(puts)) expect(outcome.ok, store.kind).toBe(true);
        }
        await waitFor(`${store.kind}: the watcher counted slow`, async () => ((await slowWatchers(store)) >= 1 ? true : undefined), 15_000, 100);
        expect(keys.length, store.kind).toBeLessThan(KEYS);
        call.resume();
        await waitFor(`${store.kind}: every event after resuming`, () => (keys.length >= KEYS ? true : undefined), 60_000, 50);
        // Each key once, in revision order, none skipped (puts ran 100 at a time, so the order of
        // keys is the order the member applied them).
        const expected = Array.from({ length: KEYS }, (_, j) => `/slow/${String(j).padStart(5, '0')}`);
        expect([...keys].sort(), store.kind).toEqual(expected);
        expect(revisions.every((rev, i) => i === 0 || rev === (revisions[i - 1] as number) + 1), store.kind).toBe(true);
        await waitFor(`${store.kind}: no slow watcher left`, async () => ((await slowWatchers(store)) === 0 ? true : undefined), 15_000, 100);
      } finally {
        call.cancel();
        client.close();
        writer.close();
      }
    }
  });
});
