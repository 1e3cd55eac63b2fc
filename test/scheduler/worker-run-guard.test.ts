// The process executor through the run guard (worker/executor/run-guard*.ts), with real processes:
// the guard spawns each run, so the worker's event loop never does, and the guard carries the
// guarantee the per-run watcher carried before: a run never outlives its worker.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../shared/clock.js';
import type { ProcessSpec, RunningProcess } from '../../worker/executor/process-group.js';
import { startRunGuard, type RunGuard } from '../../worker/executor/run-guard.js';
import { envValue, killProcessesWithTokens, RUN_TOKEN_ENV } from '../../worker/executor/run-token-sweep.js';
import { signalQuietly } from '../../worker/executor/signal.js';
import { waitFor } from '../support/ports.js';
import { quietLogger, tempDir } from '../support/scheduler-fixtures.js';
import { isProcessAlive } from '../support/worker-processes.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const base = { env: { ETCRON_JOB: 'probe' }, killGraceMs: 5_000, outputTailBytesMax: 64 } as const;
const shell = (command: string, extra: Partial<ProcessSpec> = {}): ProcessSpec =>
  ({ ...base, argv: ['/bin/sh', '-c', command], ...extra });
const run = (guard: RunGuard, spec: ProcessSpec): RunningProcess =>
  guard.startProcess(spec, systemClock, quietLogger);

/** Live processes whose command line (arguments joined by spaces) holds `marker`; a zombie's is empty. */
const processesNamed = (marker: string): number[] => readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
  try {
    return readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(marker);
  } catch {
    return false;
  }
}).map(Number);

/** A sleep whose command line no other process on the machine has. */
const uniqueSleep = (): string => `sleep 60.${String(process.pid)}${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}`;

/** A pid a run wrote to a file, once it is there. */
const pidIn = (file: string): Promise<number> => waitFor(`a pid in ${file}`, () => {
  const text = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  return text === '' ? undefined : Number(text);
});

describe('process runs started by the run guard', () => {
  const dir = tempDir('etcron-guard-');
  let guard: RunGuard;
  beforeAll(() => { guard = startRunGuard(quietLogger); });
  afterAll(() => {
    guard.close();
    dir.remove();
  });

  it('reports exit code, the combined output tail (bounded), env and cwd; argv runs without a shell', async () => {
    const started = run(guard, shell('echo "$ETCRON_JOB in $(pwd)"; echo oops >&2; exit 3', { cwd: dir.path }));
    const exit = await started.exited;
    expect(exit).toMatchObject({ exitCode: 3, signal: null, outputTail: `probe in ${dir.path}\noops\n` });
    expect(started.pid).toBeGreaterThan(1);

    const argv = await run(guard, { ...base, argv: ['printf', '%s|', 'a b', '$HOME', '*'] }).exited;
    expect(argv).toMatchObject({ exitCode: 0, outputTail: 'a b|$HOME|*|' });

    const long = await run(guard, shell('seq 1 100000')).exited;
    const all = `${Array.from({ length: 100_000 }, (_, i) => i + 1).join('\n')}\n`;
    expect(long.outputTail).toBe(all.slice(-64));
  });

  it('fails a run that cannot start with the spawn error, and nothing runs', async () => {
    const missing = await run(guard, { ...base, argv: ['etcron-no-such-program'] }).exited;
    expect(missing).toMatchObject({
      exitCode: null, signal: null, spawnError: expect.stringContaining('ENOENT') as string,
    });
    const badCwd = await run(guard, shell('true', { cwd: join(dir.path, 'gone') })).exited;
    expect(badCwd.spawnError).toContain('ENOENT');
  });

  it('shows live output while the run lasts', async () => {
    const started = run(guard, shell('echo first; sleep 30'));
    await waitFor('the first line in the live tail', () => (started.outputTail() === 'first\n' ? true : undefined), 5_000);
    started.stop('killed', 0);
    expect(await started.exited).toMatchObject({ signal: 'SIGKILL', stopCause: 'killed', outputTail: 'first\n' });
  });

  it('times out with SIGTERM to the whole group, then SIGKILL after the grace', async () => {
    const child = join(dir.path, 'timeout-child');
    const startedMs = Date.now();
    const command = `trap 'echo term' TERM; sleep 30 & echo $! > ${child}; wait; sleep 30`;
    const exit = await run(guard, shell(command, { timeoutMs: 300, killGraceMs: 400 })).exited;
    expect(exit).toMatchObject({
      exitCode: null, signal: 'SIGKILL', stopCause: 'timeout', outputTail: 'term\n',
    });
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(700);
    expect(isProcessAlive(await pidIn(child))).toBe(false);
  });

  it('kills what a run left in its group once it exits', async () => {
    const child = join(dir.path, 'left-behind');
    const exit = await run(guard, shell(`sleep 30 & echo $! > ${child}; exit 0`)).exited;
    expect(exit).toMatchObject({ exitCode: 0 });
    const pid = await pidIn(child);
    await waitFor('the left-behind process to die', () => (isProcessAlive(pid) ? undefined : true), 2_000);
  });
});

describe('a run never outlives its worker or its guard', () => {
  const dir = tempDir('etcron-guard-death-');
  const children: number[] = [];
  afterEach(() => {
    for (const pid of children.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  afterAll(() => dir.remove());

  it('SIGKILLs the runs of a worker killed by SIGKILL', async () => {
    const runPid = join(dir.path, 'run-pid');
    const grandchild = join(dir.path, 'grandchild-pid');
    // A worker in miniature: the compiled guard, one run, then it waits to be killed.
    const dist = (path: string): string => JSON.stringify(join(REPO, 'dist', path));
    // One of the run's processes leaves its group: the guard finds it by the run's token.
    const escaped = uniqueSleep();
    const command = `setsid ${escaped} & sleep 60 & echo $! > ${grandchild}; echo $$ > ${runPid}; wait`;
    const script = `
      const { startRunGuard } = await import(${dist('worker/executor/run-guard.js')});
      const { systemClock } = await import(${dist('shared/clock.js')});
      const { createLogger } = await import(${dist('shared/log.js')});
      const logger = createLogger('silent');
      const guard = startRunGuard(logger);
      const spec = { argv: ['/bin/sh', '-c', ${JSON.stringify(command)}], env: {}, killGraceMs: 1000,
        outputTailBytesMax: 100 };
      guard.startProcess(spec, systemClock, logger);
      setInterval(() => {}, 1000);`;
    const worker = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    if (worker.pid !== undefined) children.push(worker.pid);
    const [leader, inner] = [await pidIn(runPid), await pidIn(grandchild)];
    expect(isProcessAlive(leader) && isProcessAlive(inner)).toBe(true);
    await waitFor('the run\'s process outside its group to start', () => (processesNamed(escaped).length > 0 ? true : undefined), 5_000);
    worker.kill('SIGKILL');
    const isGone = (): true | undefined => (isProcessAlive(leader) || isProcessAlive(inner) || processesNamed(escaped).length > 0 ? undefined : true);
    await waitFor('the run and its children to die with the worker', isGone, 3_000);
  });

  it('kills and fails the runs of a guard that died, and starts runs again on its successor', async () => {
    const guard = startRunGuard(quietLogger);
    try {
      const runPid = join(dir.path, 'orphan-pid');
      const started = run(guard, shell(`echo $$ > ${runPid}; echo up; sleep 60`));
      const leader = await pidIn(runPid);
      // The run executes before its guard reports its pid; this is about a guard that dies after.
      await waitFor('the worker to learn the run\'s pid', () => (started.pid === leader ? true : undefined), 5_000);
      const guardPid = Number(readFileSync(`/proc/${leader}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
      expect(readFileSync(`/proc/${guardPid}/cmdline`, 'utf8')).toContain('run-guard-main');
      process.kill(guardPid, 'SIGKILL');
      expect(await started.exited).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
      await waitFor('the run to die with its guard', () => (isProcessAlive(leader) ? undefined : true), 2_000);
      // A successor guard (started after a second) runs the next ones.
      const next = await waitFor('a run on the restarted guard', async () => {
        const exit = await run(guard, shell('echo again')).exited;
        return exit.spawnError === undefined ? exit : undefined;
      }, 5_000, 200);
      expect(next).toMatchObject({ exitCode: 0, outputTail: 'again\n' });
    } finally {
      guard.close();
    }
  });

  it('kills a run whose guard died between spawning it and reporting its pid', async () => {
    // The guard SIGKILLs itself right after the spawn: the worker never learns the run's pid and
    // finds the run by the token in its environment.
    const guard = startRunGuard(quietLogger, { dieAfterSpawn: true });
    try {
      const sleep = uniqueSleep();
      const started = run(guard, shell(`${sleep} & ${sleep}; wait`));
      const exit = await started.exited;
      expect(started.pid).toBeUndefined();
      expect(exit).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
      await waitFor('no process of the run left', () => (processesNamed(sleep).length === 0 ? true : undefined), 2_000);
    } finally {
      guard.close();
    }
  });

  it('kills the runs at the lease deadline while the worker does not read (frozen)', async () => {
    const guard = startRunGuard(quietLogger);
    try {
      guard.setDeadline(60_000);
      const runPid = join(dir.path, 'frozen-pid');
      // A chatty run fills the pipe to the worker: the guard must not block on it.
      const chatty = run(guard, { ...base, outputTailBytesMax: 1024 * 1024, argv: ['yes', 'etcron'] });
      const quiet = run(guard, shell(`echo $$ > ${runPid}; exec sleep 60`));
      const leader = await pidIn(runPid);
      guard.setDeadline(500);
      const frozenAt = Date.now();
      let diedAfterMs: number | undefined;
      // This event loop is held (the worker frozen) until the run dies or 3 s pass.
      while (diedAfterMs === undefined && Date.now() - frozenAt < 3_000) {
        if (!isProcessAlive(leader)) diedAfterMs = Date.now() - frozenAt;
      }
      expect(diedAfterMs).toBeGreaterThanOrEqual(450);
      expect(diedAfterMs).toBeLessThan(1_500);
      expect(await quiet.exited).toMatchObject({ signal: 'SIGKILL' });
      expect(await chatty.exited).toMatchObject({ signal: 'SIGKILL' });
    } finally {
      guard.close();
    }
  });
});

describe('finding a run by its token', () => {
  it('reads a whole environment entry only', () => {
    const name = RUN_TOKEN_ENV;
    expect(envValue(Buffer.from(`A=1\0${name}=abc\0`), name)).toBe('abc');
    expect(envValue(Buffer.from(`${name}=abc\0B=2\0`), name)).toBe('abc');
    expect(envValue(Buffer.from(`A=1\0${name}=abc`), name)).toBe('abc');
    expect(envValue(Buffer.from(`X${name}=abc\0`), name)).toBeUndefined();
    expect(envValue(Buffer.from(`A=${name}=abc\0`), name)).toBeUndefined();
    expect(envValue(Buffer.from(`A=${name}=x\0${name}=abc\0`), name)).toBe('abc');
  });

  it('kills every process that carries the token, also those that left the run\'s group', async () => {
    const token = `test-${process.pid}-${Date.now()}`;
    const sleep = uniqueSleep();
    // The run leads its own group (as a guard starts it); one child leaves it with setsid.
    const leader = spawn('/bin/sh', ['-c', `setsid ${sleep} & ${sleep} & wait`], {
      detached: true, stdio: 'ignore', env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', [RUN_TOKEN_ENV]: token },
    });
    const other = spawn('sleep', sleep.split(' ').slice(1), { detached: true, stdio: 'ignore', env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
    try {
      // The leader's shell, its two sleeps, and the unmarked process.
      await waitFor('the run\'s processes to start', () => (processesNamed(sleep).length >= 4 ? true : undefined), 5_000);
      expect(killProcessesWithTokens(new Set(['another', token]))).toEqual(new Set([token]));
      await waitFor('the marked processes to die', () => (processesNamed(sleep).length === 1 ? true : undefined), 2_000);
      expect(processesNamed(sleep)).toEqual([other.pid]);
    } finally {
      for (const child of [leader, other]) if (child.pid !== undefined) signalQuietly(-child.pid, 'SIGKILL');
    }
  });
});
