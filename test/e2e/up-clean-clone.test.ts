import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/etcd-process.js';
import { runChecked } from '../support/docker-compose.js';
import { freePort, waitFor } from '../support/ports.js';

/**
 * Issue #6: `etcron up` from a clean clone, as a new user gets it. The clone is of the committed
 * HEAD of the repo the test runs from, so uncommitted files cannot make it pass. `npm ci` would
 * need the registry (or, offline, compile better-sqlite3 against downloaded node headers), so the
 * clone reuses this checkout's node_modules through a symlink and runs `npm run build`, which is
 * what `npm ci` does after installing (the prepare script).
 */
const children: ChildProcess[] = [];
let workDir: string | undefined;

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
});

interface Up { readonly child: ChildProcess; output(): string; exited: Promise<number | null> }

function startUp(clone: string, dataDir: string, clientPort: number, apiPort: number): Up {
  const args = ['up', '--data-dir', dataDir, '--client-port', String(clientPort), '--api', String(apiPort)];
  const child = spawn(process.execPath, [join(clone, 'bin', 'etcron'), ...args], { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => { output += c.toString(); });
  child.stderr?.on('data', (c: Buffer) => { output += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

function traceLines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter((l) => l.length > 0) : [];
}

describe('etcron up from a clean clone (issue #6)', () => {
  it('builds, runs an every-second job, stops, and keeps history across a restart', async () => {
    workDir = mkdtempSync(join(tmpdir(), 'etcron-clone-'));
    const clone = join(workDir, 'etcron');
    await runChecked(['git', 'clone', '--quiet', '--no-hardlinks', REPO_ROOT, clone], { timeoutMs: 60_000 });
    expect(existsSync(join(clone, 'dist')), 'a clone has no build output').toBe(false);
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(clone, 'node_modules'), 'dir');
    await runChecked(['npm', 'run', '--silent', 'build'], { timeoutMs: 180_000, cwd: clone });
    const builtAtMs = Date.now();

    const dataDir = join(workDir, 'data');
    const trace = join(workDir, 'trace.txt');
    const clientPort = await freePort();
    const apiPort = await freePort();
    const env = { ...process.env, ETCRON_API: `http://127.0.0.1:${apiPort}` };
    const cli = (args: readonly string[]): Promise<string> =>
      runChecked([process.execPath, join(clone, 'bin', 'etcron'), ...args], { timeoutMs: 30_000, env, cwd: clone });

    const up = startUp(clone, dataDir, clientPort, apiPort);
    await waitFor('etcron up to say it is up', () => (up.output().includes('etcron is up.') ? true : undefined), 30_000, 50);
    await cli(['job', 'add', 'tick', '--schedule', '* * * * * *', '--command', `echo "$ETCRON_SLOT" >> ${trace}`]);
    await waitFor('the first run', () => (traceLines(trace).length >= 1 ? true : undefined), 30_000, 50);
    // Measured on a shared 2-core machine: noisy, for orientation only.
    console.info(`clean clone: build finished to first job run ${((Date.now() - builtAtMs) / 1000).toFixed(1)} s`);
    await waitFor('three runs', () => (traceLines(trace).length >= 3 ? true : undefined), 30_000, 100);
    // The web UI's files ship in the tree and are served by the master with no build of their own.
    const ui = await fetch(`http://127.0.0.1:${apiPort}/ui/`);
    expect(await ui.text()).toContain('<script type="module" src="/ui/app.js"></script>');
    const app = await fetch(`http://127.0.0.1:${apiPort}/ui/app.js`);
    expect(app.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await app.text()).toContain('function jobsPage()');

    const succeeded = (json: string): number =>
      (JSON.parse(json) as { runs: { state: string }[] }).runs.filter((r) => r.state === 'succeeded').length;
    const before = await waitFor('a succeeded run in history', async () => {
      const count = succeeded(await cli(['job', 'history', 'tick', '-o', 'json']));
      return count >= 1 ? count : undefined;
    }, 15_000, 250);
    up.child.kill('SIGTERM');
    expect(await up.exited).toBe(0);
    const slots = traceLines(trace);
    expect(new Set(slots).size, 'no slot ran twice').toBe(slots.length);

    const again = startUp(clone, dataDir, clientPort, apiPort);
    await waitFor('etcron up to come back', () => (again.output().includes('etcron is up.') ? true : undefined), 30_000, 50);
    expect(succeeded(await cli(['job', 'history', 'tick', '-o', 'json']))).toBeGreaterThanOrEqual(before);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  }, 240_000);
});
