// The WAL syncer: small batches on a quick disk are synced on the calling thread, anything else
// (a sync in flight, a disk that has been slow) on the thread pool; a WAL that cannot be synced is
// a rejected promise on either path, which the server treats as fatal.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WalSyncer } from '../../store/server/wal-syncer.js';

const dirs: string[] = [];
const syncers: WalSyncer[] = [];

function walFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'etcron-wal-syncer-'));
  dirs.push(dir);
  const path = join(dir, 'etcron.db-wal');
  writeFileSync(path, Buffer.alloc(4096, 7));
  return path;
}

function syncerOf(path: string, inlineMaxMs?: number): WalSyncer {
  const syncer = new WalSyncer(path, inlineMaxMs);
  syncers.push(syncer);
  return syncer;
}

afterEach(() => {
  for (const s of syncers.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('WalSyncer', () => {
  it('syncs inline when idle and the disk is quick, and leaves the loop alone while a sync is in flight', async () => {
    const syncer = syncerOf(walFile());
    const inline = syncer.syncInlineIfQuick();
    expect(inline).not.toBeNull();
    await expect(inline).resolves.toBeUndefined();

    const background = syncer.sync();
    // The disk is busy with a sync that may predate the caller's write: join the queue instead.
    expect(syncer.syncInlineIfQuick()).toBeNull();
    const next = syncer.sync();
    await expect(Promise.all([background, next])).resolves.toEqual([undefined, undefined]);
    expect(syncer.syncInlineIfQuick()).not.toBeNull();
  });

  it('stops syncing inline once fsyncs have been slower than its limit', async () => {
    // A limit of 0 ms: the first sync is tried inline (no history yet), and any real fsync takes
    // longer than that, so the moving average then keeps every later one on the thread pool.
    const syncer = syncerOf(walFile(), 0);
    await syncer.syncInlineIfQuick();
    expect(syncer.syncInlineIfQuick()).toBeNull();
    await expect(syncer.sync()).resolves.toBeUndefined();
    expect(syncer.syncInlineIfQuick()).toBeNull();
  });

  it('rejects, on both paths, when the WAL cannot be synced', async () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'etcron-wal-syncer-')), 'gone', 'etcron.db-wal');
    dirs.push(join(missing, '..', '..'));
    await expect(syncerOf(missing).syncInlineIfQuick()).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(syncerOf(missing).sync()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
