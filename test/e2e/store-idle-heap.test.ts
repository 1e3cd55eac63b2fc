// A store process gives back the heap a burst left behind once it has gone quiet (issue #14: keep
// the resident-memory advantage). The shipped `etcron store` must be able to reach V8's collector
// (a Node upgrade could take that away silently), and trimming must leave the data served.
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcronStore, type StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

const KEYS = 30_000;
const CONCURRENCY = 64;

interface TrimLine { beforeBytes: number; afterBytes: number; pauseMs: number }

function trimLines(output: string): TrimLine[] {
  return output.split('\n').filter((l) => l.includes('"idle: heap trimmed"')).map((l) => JSON.parse(l) as TrimLine);
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error('no VmRSS');
  return Number(match[1]) * 1024;
}

describe('etcron store: idle heap trimming', () => {
  let store: StoreProcess;
  let client: Etcd3;

  beforeAll(async () => {
    store = await startEtcronStore({ extraArgs: ['--log-level', 'debug'] });
    client = new Etcd3({ hosts: store.clientUrl });
  });

  afterAll(async () => {
    client?.close();
    await store?.stop();
    store?.cleanup();
  });

  it('collects a few seconds after a write burst, gives memory back, and still serves every key', async () => {
    const value = 'v'.repeat(512);
    for (let i = 0; i < KEYS; i += CONCURRENCY) {
      const batch: PromiseLike<unknown>[] = [];
      for (let j = i; j < Math.min(KEYS, i + CONCURRENCY); j++) batch.push(client.put(`idle-heap/${String(j).padStart(6, '0')}`).value(value).exec());
      await Promise.all(batch);
    }
    const pid = store.child.pid as number;
    const rssAfterBurst = rssBytes(pid);
    expect(trimLines(store.output())).toEqual([]);

    // Five quiet one-second ticks, then one collection per tick while each gives memory back or
    // the young generation is still large. The first may free nothing: V8 shrinks the young
    // generation only at a collection that has measured the allocation rate drop, often the next.
    const lines = await waitFor('the store to trim its heap', () => {
      const found = trimLines(store.output());
      return found.some((line) => line.afterBytes < found[0]!.beforeBytes) ? found : undefined;
    }, 30_000, 100);
    expect(lines.length).toBeLessThanOrEqual(4);
    // Resident memory follows (pages are handed back by V8's unmapper, a moment later).
    await waitFor('resident memory to drop', () => (rssBytes(pid) < rssAfterBurst - 8 * 1024 * 1024 ? true : undefined), 15_000, 100);

    const all = await client.getAll().prefix('idle-heap/').count();
    expect(all).toBe(KEYS);
    expect((await client.get('idle-heap/029999').string())).toBe(value);
  }, 120_000);
});
