// A watcher under a burst of writes: every event arrives once, in revision order, on real etcd
// 3.4 and on the subject alike. etcron joins a busy watcher's events into fewer responses (after
// 5 batches within 25 ms, one response per 10 ms or more); a response other than events (a progress
// answer, a cancel) never overtakes events it held, and a canceled watcher gets no events after
// its cancel answer.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompatClient, type Msg } from '../support/compat-client.js';
import { disposeStores, startReference, startSubject, subjectKind } from '../support/compat-subject.js';
import { REPO_ROOT, type StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

const PUTS = 1000;
/** One put at a time: each revision is its own commit and, unheld, its own response. */
const CONCURRENCY = 1;

function watchMethod(): grpc.MethodDefinition<Msg, Msg> {
  const definitions = protoLoader.loadSync(['rpc.proto'], {
    includeDirs: [join(REPO_ROOT, 'store', 'api', 'proto')], keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true,
  });
  const service = definitions['etcdserverpb.Watch'] as unknown as Record<string, grpc.MethodDefinition<Msg, Msg>>;
  return service['Watch'] as grpc.MethodDefinition<Msg, Msg>;
}

interface Received {
  /** performance.now() when it arrived. */
  readonly atMs: number;
  readonly kind: 'events' | 'progress' | 'created' | 'canceled';
  readonly watchId: number;
  readonly headerRevision: number;
  readonly revisions: number[];
}

/** A watch stream that records every response in the order it arrived. */
class RecordingWatch {
  readonly received: Received[] = [];
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<Msg, Msg>;

  constructor(endpoint: string) {
    const method = watchMethod();
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
    this.call = this.client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
    this.call.on('error', () => {});
    this.call.on('data', (response: Msg) => {
      const events = (response['events'] ?? []) as Msg[];
      const kind = response['created'] === true ? 'created' : response['canceled'] === true ? 'canceled' : events.length > 0 ? 'events' : 'progress';
      this.received.push({
        atMs: performance.now(), kind, watchId: Number(response['watch_id']), headerRevision: Number((response['header'] as Msg)['revision']),
        revisions: events.map((event) => Number((event['kv'] as Msg)['mod_revision'])),
      });
    });
  }

  write(request: Msg): void {
    this.call.write(request);
  }

  async create(watchId: number, prefix: string): Promise<void> {
    this.write({ create_request: { key: Buffer.from(prefix), range_end: Buffer.from(`${prefix.slice(0, -1)}${String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)}`), watch_id: watchId } });
    await waitFor(`watch ${watchId} created`, () => (this.received.some((r) => r.kind === 'created' && r.watchId === watchId) ? true : undefined), 10_000, 10);
  }

  revisionsOf(watchId: number): number[] {
    return this.received.filter((r) => r.kind === 'events' && r.watchId === watchId).flatMap((r) => r.revisions);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

/** `count` puts under `prefix`, CONCURRENCY at a time; resolves with the revisions they made. */
async function burst(writer: CompatClient, prefix: string, count: number, doneAtMs: number[] = []): Promise<number[]> {
  const revisions: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const outcome = await writer.put({ key: Buffer.from(`${prefix}${String(i).padStart(4, '0')}`), value: Buffer.from('v') });
      if (!outcome.ok) throw new Error(`put failed: ${JSON.stringify(outcome)}`);
      revisions.push(Number((outcome.value['header'] as Msg)['revision']));
      doneAtMs.push(performance.now());
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return revisions.sort((a, b) => a - b);
}

describe('a watcher under a burst of writes', () => {
  let stores: StoreProcess[] = [];
  beforeAll(async () => {
    stores = await Promise.all([startReference(), startSubject()]);
  }, 60_000);
  afterAll(async () => { await disposeStores(...stores); });

  it('gets every event once, in revision order; the subject joins them into fewer responses', { timeout: 60_000 }, async () => {
    for (const store of stores) {
      const watch = new RecordingWatch(store.endpoint);
      const writer = new CompatClient(store.endpoint);
      try {
        await watch.create(1, '/burst/');
        const startedMs = performance.now();
        const doneAtMs: number[] = [];
        const written = await burst(writer, '/burst/', PUTS, doneAtMs);
        const burstMs = performance.now() - startedMs;
        await waitFor(`${store.kind}: every event`, () => (watch.revisionsOf(1).length >= PUTS ? true : undefined), 20_000, 10);
        expect(watch.revisionsOf(1), store.kind).toEqual(written);
        const responses = watch.received.filter((r) => r.kind === 'events');
        // A response's header is at or past its last event's revision.
        for (const r of responses) expect(r.headerRevision, store.kind).toBeGreaterThanOrEqual(r.revisions[r.revisions.length - 1] as number);
        // One response per put until the watcher is busy (5 batches within 25 ms; 200 ms leaves
        // room for a slow machine), then one per 10 ms (etcd: one per put).
        if (store === stores[1] && subjectKind() === 'etcron') {
          const early = doneAtMs.filter((at) => at - startedMs < 200).length;
          expect(responses.length, store.kind).toBeLessThanOrEqual(early + Math.ceil(burstMs / 10) + 2);
        }
      } finally {
        watch.close();
        writer.close();
      }
    }
  });

  it('shares one interval among a stream\'s many busy watchers, longer as they are more (subject)', { timeout: 60_000 }, async () => {
    const store = stores[1] as StoreProcess;
    const watch = new RecordingWatch(store.endpoint);
    const writer = new CompatClient(store.endpoint);
    const watchers = 150;
    try {
      for (let id = 1; id <= watchers; id++) await watch.create(id, '/fan/');
      const startedMs = performance.now();
      const written = await burst(writer, '/fan/', PUTS);
      await waitFor('every watcher\'s events', () => {
        for (let id = 1; id <= watchers; id++) if (watch.revisionsOf(id).length < PUTS) return undefined;
        return true;
      }, 30_000, 20);
      for (let id = 1; id <= watchers; id++) expect(watch.revisionsOf(id), `watcher ${id}`).toEqual(written);
      // Past the first windows every watcher is busy: the stream then carries about 2,500 held
      // responses a second (150 watchers: one each per 60 ms), where a 10 ms interval each would
      // be 15,000 and one per put more still. Twice that rate, and a last round, is the bound.
      const settledMs = startedMs + 200;
      const late = watch.received.filter((r) => r.kind === 'events' && r.atMs > settledMs);
      const lastMs = Math.max(...late.map((r) => r.atMs));
      expect(late.length).toBeLessThanOrEqual(Math.ceil((2 * 2500 * (lastMs - settledMs)) / 1000) + 2 * watchers);
    } finally {
      watch.close();
      writer.close();
    }
  });

  it('answers a progress request only after the events it has held (subject)', { timeout: 60_000 }, async () => {
    const store = stores[1] as StoreProcess;
    const watch = new RecordingWatch(store.endpoint);
    const writer = new CompatClient(store.endpoint);
    try {
      await watch.create(1, '/progress/');
      // Long enough (many 25 ms windows) for the watcher to be busy and have batches held.
      const written = await burst(writer, '/progress/', 600);
      watch.write({ progress_request: {} });
      await waitFor('the progress answer', () => (watch.received.some((r) => r.kind === 'progress') ? true : undefined), 10_000, 10);
      const at = watch.received.findIndex((r) => r.kind === 'progress');
      const progress = watch.received[at] as Received;
      const before = watch.received.slice(0, at).filter((r) => r.kind === 'events').flatMap((r) => r.revisions);
      // "Everything up to this revision has been sent": every event at or below it came first.
      expect(progress.headerRevision).toBeGreaterThanOrEqual(written[written.length - 1] as number);
      expect(before).toEqual(written);
    } finally {
      watch.close();
      writer.close();
    }
  });

  it('sends no events for a watcher after answering its cancel, busy as it was', { timeout: 60_000 }, async () => {
    for (const store of stores) {
      const watch = new RecordingWatch(store.endpoint);
      const writer = new CompatClient(store.endpoint);
      try {
        await watch.create(1, '/cancel/');
        const writing = burst(writer, '/cancel/', 800);
        // Past the first window: busy by now, so batches are held when the cancel comes.
        await waitFor(`${store.kind}: the first events`, () => (watch.revisionsOf(1).length > 400 ? true : undefined), 10_000, 1);
        watch.write({ cancel_request: { watch_id: 1 } });
        await writing;
        await waitFor(`${store.kind}: the cancel answer`, () => (watch.received.some((r) => r.kind === 'canceled') ? true : undefined), 10_000, 10);
        // A final marker: a second watcher's event after every write shows the stream has caught up.
        await watch.create(2, '/marker/');
        await writer.put({ key: Buffer.from('/marker/x'), value: Buffer.from('m') });
        await waitFor(`${store.kind}: the marker`, () => (watch.revisionsOf(2).length > 0 ? true : undefined), 10_000, 10);
        const canceledAt = watch.received.findIndex((r) => r.kind === 'canceled');
        expect(watch.received.slice(canceledAt).filter((r) => r.watchId === 1 && r.kind === 'events'), store.kind).toEqual([]);
      } finally {
        watch.close();
        writer.close();
      }
    }
  });
});
