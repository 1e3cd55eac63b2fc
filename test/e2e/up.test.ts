import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ETCRON_BIN } from '../support/etcd-process.js';
import { freePort, waitFor } from '../support/ports.js';

/**
 * The README's embedded default, run as a user would: `etcron up` on a data dir, the CLI with the
 * addresses it printed, a job whose runs leave a trace, a clean stop, and a restart that keeps
 * history (issue #6's quick start).
 */
interface Up {
  readonly child: ChildProcess;
  output(): string;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function startUp(dataDir: string, clientPort: number, apiPort: number): Up {
  const child = spawn(process.execPath, [ETCRON_BIN, 'up', '--data-dir', dataDir, '--client-port', String(clientPort), '--api', String(apiPort)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => { output += c.toString(); });
  child.stderr?.on('data', (c: Buffer) => { output += c.toString(); });
  return { child, output: () => output };
}

function cli(args: readonly string[], clientPort: number, apiPort: number): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [ETCRON_BIN, ...args], {
    env: { ...process.env, ETCRON_ENDPOINTS: `127.0.0.1:${clientPort}`, ETCRON_API: `http://127.0.0.1:${apiPort}` },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function stop(up: Up): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => up.child.once('exit', (code) => resolve(code)));
  up.child.kill('SIGTERM');
  return exited;
}

describe('etcron up (embedded default)', () => {
  it('runs jobs, stops cleanly on SIGTERM, refuses a second instance, and keeps history across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'etcron-up-'));
    dirs.push(dir);
    const dataDir = join(dir, 'data');
    const trace = join(dir, 'trace.txt');
    const clientPort = await freePort();
    const apiPort = await freePort();

    const up = startUp(dataDir, clientPort, apiPort);
    await waitFor('etcron up to print that it is up', () => (up.output().includes('etcron is up.') ? true : undefined), 30_000);
    expect(up.output()).toContain(`127.0.0.1:${clientPort}`);

    const add = cli(['job', 'add', 'tick', '--schedule', '* * * * * *', '--command', `echo "$ETCRON_SLOT $ETCRON_FENCE" >> ${trace}`], clientPort, apiPort);
    expect(add.code, add.stderr).toBe(0);
    await waitFor('three runs to leave their trace', () => {
      const lines = existsSync(trace) ? readFileSync(trace, 'utf8').trim().split('\n') : [];
      return lines.length >= 3 ? lines : undefined;
    }, 30_000);

    // A second `up` on the same data dir is refused with a clear error, and the first keeps going.
    const second = startUp(dataDir, await freePort(), await freePort());
    const secondCode = await new Promise<number | null>((resolve) => second.child.once('exit', (code) => resolve(code)));
    expect(secondCode).not.toBe(0);
    expect(second.output()).toMatch(/in use by another process/);

    const history = cli(['job', 'history', 'tick', '-o', 'json'], clientPort, apiPort);
    expect(history.code, history.stderr).toBe(0);
    const before = JSON.parse(history.stdout) as unknown;
    const succeededBefore = JSON.stringify(before).match(/"succeeded"/g)?.length ?? 0;
    expect(succeededBefore).toBeGreaterThanOrEqual(1);

    expect(await stop(up)).toBe(0);
    const slotsBefore = readFileSync(trace, 'utf8').trim().split('\n').map((line) => line.split(' ')[0]);
    expect(new Set(slotsBefore).size).toBe(slotsBefore.length); // no slot ran twice

    const again = startUp(dataDir, clientPort, apiPort);
    await waitFor('etcron up to come back', () => (again.output().includes('etcron is up.') ? true : undefined), 30_000);
    const after = cli(['job', 'history', 'tick', '-o', 'json'], clientPort, apiPort);
    expect(after.code, after.stderr).toBe(0);
    const succeededAfter = after.stdout.match(/"succeeded"/g)?.length ?? 0;
    expect(succeededAfter).toBeGreaterThanOrEqual(succeededBefore);
    const list = cli(['job', 'list', '-o', 'json'], clientPort, apiPort);
    expect(list.stdout).toContain('tick');
    expect(await stop(again)).toBe(0);
  }, 120_000);
});
