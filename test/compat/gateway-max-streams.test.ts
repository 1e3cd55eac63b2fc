// --max-concurrent-streams and the JSON gateway, against real etcd 3.4 (as etcd's own
// TestV3Curl_MaxStreams_* tests): etcd's gateway reaches the server over one gRPC connection, so
// with every stream of it held by watches a further gateway request waits, and it goes through
// as soon as one watch ends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStream, type HttpStream } from '../support/compat-http.js';
import { disposeStores, startReference, startSubject } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

const STREAMS = 3;
const watchBody = JSON.stringify({ create_request: { key: Buffer.from('foo').toString('base64'), start_revision: 1 } });
const rangeBody = JSON.stringify({ key: Buffer.from('foo').toString('base64') });

describe('JSON gateway requests in flight under --max-concurrent-streams', () => {
  let stores: StoreProcess[] = [];
  beforeAll(async () => {
    const extraArgs = ['--max-concurrent-streams', String(STREAMS)];
    stores = await Promise.all([startReference({ extraArgs }), startSubject({ extraArgs })]);
  }, 60_000);
  afterAll(async () => { await disposeStores(...stores); });

  it('holds a request while every stream is taken, and answers it when one is freed', { timeout: 60_000 }, async () => {
    for (const store of stores) {
      const watches: HttpStream[] = [];
      try {
        for (let i = 0; i < STREAMS; i++) watches.push(httpStream(store.endpoint, '/v3/watch', watchBody));
        await waitFor(`${store.kind}: every watch created`, () => (watches.every((w) => w.lines().length > 0) ? true : undefined), 10_000, 50);
        const range = httpStream(store.endpoint, '/v3/kv/range', rangeBody);
        try {
          // Held: no answer while the streams stay taken (a bounded look, not a sleep-and-hope:
          // the answer below must come only after a watch is closed).
          await expect(waitFor(`${store.kind}: a range answer`, () => (range.lines().length > 0 ? true : undefined), 1_500, 50)).rejects.toThrow(/timed out/);
          watches.pop()?.close();
          await waitFor(`${store.kind}: the range answered once a watch ended`, () => (range.lines().length > 0 ? true : undefined), 10_000, 50);
          expect(range.lines()[0], store.kind).toContain('"revision":"');
        } finally {
          range.close();
        }
      } finally {
        for (const w of watches) w.close();
      }
    }
  });
});
