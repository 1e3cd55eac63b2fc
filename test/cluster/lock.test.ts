// Issue 4: `etcdctl lock` keeps mutual exclusion across a leader SIGKILL. Three lockers take the
// same lock in turn with the real etcdctl 3.4 and run a critical section that logs enter/exit
// lines to a file (O_APPEND, one line per write); no two sections may overlap. The leader is
// killed while they run, and lockers must still get the lock afterwards.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster } from '../support/cluster-process.js';
import { ETCDCTL_BINARY } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

const LOCKERS = 3;
const RUNS_PER_LOCKER_MAX = 60;
const RUN_TIMEOUT_MS = 25_000;

interface RunResult { readonly code: number | null; readonly stderr: string }

function runLocker(cluster: Cluster, file: string, tag: string): Promise<RunResult> {
  const section = `echo "enter ${tag}" >> ${file}; sleep 0.1; echo "exit ${tag}" >> ${file}`;
  const child = spawn(ETCDCTL_BINARY, [
    `--endpoints=${cluster.endpoints().join(',')}`, '--dial-timeout=2s', 'lock', 'cluster-test-lock',
    '--', 'sh', '-c', section,
  ], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('3 members: etcdctl lock across a leader SIGKILL', () => {
  let cluster: Cluster;
  let dir: string;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3 });
    dir = mkdtempSync(join(tmpdir(), 'etcron-lock-'));
  });

  afterAll(async () => {
    await cluster?.teardown();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('never lets two holders in at once, and grants the lock again after the kill', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const file = join(dir, 'sections.log');
    writeFileSync(file, '');
    const entries = (): string[] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    let isStopping = false;
    const failures: string[] = [];
    const lockers = Array.from({ length: LOCKERS }, async (_, locker) => {
      for (let run = 0; run < RUNS_PER_LOCKER_MAX && !isStopping; run++) {
        const result = await runLocker(cluster, file, `${locker}.${run}`);
        if (result.code !== 0) failures.push(`locker ${locker} run ${run}: ${result.code} ${result.stderr.trim()}`);
      }
    });
    try {
      await waitFor('6 critical sections', () => (entries().length >= 12 ? true : undefined), 30_000);
      const leader = await cluster.leader();
      await cluster.kill(leader.index);
      const next = await cluster.newLeader(leader);
      expect(next.index).not.toBe(leader.index);
      const atKill = entries().length;
      await cluster.restart(leader.index);
      await waitFor('6 more critical sections after the kill',
        () => (entries().length >= atKill + 12 ? true : undefined), 40_000);
    } finally {
      isStopping = true;
      await Promise.all(lockers);
    }
    const lines = entries();
    let holder: string | null = null;
    const overlaps: string[] = [];
    for (const [position, line] of lines.entries()) {
      const [what, tag] = line.split(' ');
      if (what === 'enter') {
        if (holder !== null) overlaps.push(`line ${position}: ${tag} entered while ${holder} held the lock`);
        holder = tag ?? '?';
      } else if (what === 'exit') {
        if (holder !== tag) overlaps.push(`line ${position}: ${tag} exited while ${holder} held the lock`);
        holder = null;
      }
    }
    console.log(`lock: ${lines.length / 2} sections, ${failures.length} failed etcdctl runs: ${failures.slice(0, 3).join(' | ')}`);
    expect(overlaps).toEqual([]);
    expect(lines.length).toBeGreaterThanOrEqual(24);
  }, 120_000);
});
