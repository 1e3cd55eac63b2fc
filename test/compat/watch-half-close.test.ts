// A client that half-closes its Watch stream (sends no more requests) still gets its events, on
// etcd 3.4 and on the subject: etcd ends a watch stream only when the client cancels it or goes
// away. (etcron used to end the stream on half-close, with status OK.)
import { afterAll, describe, expect, it } from 'vitest';
import { CompatClient } from '../support/compat-client.js';
import { disposeStores, startReference, startSubject, subjectKind } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';

describe(`a half-closed watch stream: ${subjectKind()} store against etcd 3.4`, () => {
  const stores: StoreProcess[] = [];
  const clients: CompatClient[] = [];

  afterAll(async () => {
    for (const client of clients) client.close();
    await disposeStores(...stores);
  });

  it('keeps delivering events after the client half-closed it', { timeout: 60_000 }, async () => {
    const sides = await Promise.all([startReference(), startSubject()]);
    stores.push(...sides);
    for (const store of sides) {
      const client = new CompatClient(store.endpoint);
      clients.push(client);
      const stream = client.watch();
      stream.send({ create_request: { key: Buffer.from('half'), start_revision: '0' } });
      await stream.next(5_000); // created
      stream.halfClose();
      expect((await client.put({ key: Buffer.from('half'), value: Buffer.from('v') })).ok).toBe(true);
      const event = await stream.next(5_000);
      expect(event['events'], store.kind).toHaveLength(1);
      expect(stream.hasEnded(), store.kind).toBe(false);
      stream.end();
    }
  });
});
