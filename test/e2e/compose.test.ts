import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCDCTL_BINARY, ETCRON_BIN } from '../support/etcd-process.js';
import { freePort, waitFor } from '../support/ports.js';
import {
  ComposeProject, buildImageOffline, composeCommand, hasDocker, imageSizeBytes, runChecked, runCommand,
} from '../support/docker-compose.js';

/**
 * Issue #6: the repo's docker-compose.yml, run for real. Three store members, two masters and
 * workers scaled 1 → 4 → 2 run an every-second job; then the store's Raft leader and the leading
 * master are stopped. Each run appends "<slot> <worker>" to a file on a volume all workers share.
 * Every slot must appear at most once, and every slot missing from the file must be explained by a
 * history record (missed, lost, …). Skipped without Docker, except under CI=true, where it fails.
 */
const compose = composeCommand();
const isDockerReady = hasDocker() && compose !== undefined;
const isCi = process.env['CI'] === 'true';

const IMAGE = 'etcron:e2e';
const RUNS_FILE = '/var/lib/etcron/shared/runs.txt';
const JOB = 'tick';
/**
 * The job sets no late start (--late-start 0s): a slot nobody started is recorded once it is 5 s
 * late plus a 5 s skew margin.
 */
const SETTLED_AFTER_MS = 12_000;
const STORE_SERVICES = ['store1', 'store2', 'store3'] as const;
const HISTORY_COUNT = 1000;
/** Each run outlives its second, so a worker killed just after a start has a live run. */
const RUN_SECONDS = 3;

interface RunLine { readonly slot: string; readonly worker: string }
interface HistoryRun { readonly slot: string; readonly state: string; readonly worker?: string; readonly reason?: string }
interface MasterStatus { readonly master: string; readonly isLeader: boolean; readonly leader: { readonly id: string } | null }

const figures: Record<string, string> = {};
let project: ComposeProject | undefined;
let hasPassed = false;
const ports = { store: [0, 0, 0], api: [0, 0] };

function apiUrls(): string {
  return ports.api.map((p) => `http://127.0.0.1:${p}`).join(',');
}

async function cli(args: readonly string[]): Promise<string> {
  return runChecked([process.execPath, ETCRON_BIN, ...args], {
    timeoutMs: 30_000, env: { ...process.env, ETCRON_API: apiUrls() },
  });
}

async function readHistory(): Promise<HistoryRun[]> {
  const out = await cli(['job', 'history', JOB, '-o', 'json', '--limit', String(HISTORY_COUNT)]);
  return (JSON.parse(out) as { runs: HistoryRun[] }).runs;
}

async function masterStatus(apiPort: number): Promise<MasterStatus | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${apiPort}/v1/status`, { signal: AbortSignal.timeout(3_000) });
    return response.ok ? (await response.json() as MasterStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** The job's side effects, read through any running worker container. */
async function readRuns(stack: ComposeProject): Promise<RunLine[]> {
  for (const id of await stack.containerIds('worker')) {
    const result = await runCommand(['docker', 'exec', id, 'cat', RUNS_FILE], { timeoutMs: 20_000 });
    if (result.code !== 0) continue;
    return result.stdout.split('\n').filter((l) => l.trim().length > 0).map((line) => {
      const [slot = '', worker = ''] = line.trim().split(' ');
      return { slot, worker };
    });
  }
  return [];
}

async function waitForMoreRuns(stack: ComposeProject, what: string, count: number, timeoutMs = 60_000): Promise<RunLine[]> {
  const before = (await readRuns(stack)).length;
  return waitFor(what, async () => {
    const runs = await readRuns(stack);
    return runs.length >= before + count ? runs : undefined;
  }, timeoutMs, 500);
}

/** The store member that leads Raft, as etcdctl sees it through the published ports. */
async function storeLeaderService(): Promise<string> {
  const endpoints = ports.store.map((p) => `127.0.0.1:${p}`).join(',');
  const out = await runChecked([ETCDCTL_BINARY, '--endpoints', endpoints, 'endpoint', 'status', '-w', 'json'], { timeoutMs: 20_000 });
  const statuses = JSON.parse(out) as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[];
  const leading = statuses.find((s) => s.Status.leader === s.Status.header.member_id);
  const index = ports.store.findIndex((p) => leading?.Endpoint === `127.0.0.1:${p}`);
  const service = STORE_SERVICES[index];
  if (service === undefined) throw new Error(`no store leader in ${out}`);
  return service;
}

describe.skipIf(!isDockerReady && !isCi)('docker compose stack (issue #6)', () => {
  beforeAll(async () => {
    if (compose === undefined || !hasDocker()) {
      throw new Error('CI=true but Docker or Compose is not available: .ci/run should have started dockerd');
    }
    let started = Date.now();
    await buildImageOffline(IMAGE);
    figures['image build (base + Dockerfile)'] = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    figures['image size'] = `${((await imageSizeBytes(IMAGE)) / 1e6).toFixed(0)} MB`;
    ports.store = [await freePort(), await freePort(), await freePort()];
    ports.api = [await freePort(), await freePort()];
    project = new ComposeProject(compose, {
      ETCRON_IMAGE: IMAGE,
      ETCRON_STORE1_PORT: String(ports.store[0]),
      ETCRON_STORE2_PORT: String(ports.store[1]),
      ETCRON_STORE3_PORT: String(ports.store[2]),
      ETCRON_API1_PORT: String(ports.api[0]),
      ETCRON_API2_PORT: String(ports.api[1]),
    });
    started = Date.now();
    await project.up(1);
    await waitFor('a master to lead', async () => {
      const statuses = await Promise.all(ports.api.map(masterStatus));
      return statuses.some((s) => s?.isLeader === true) ? true : undefined;
    }, 60_000, 250);
    figures['compose up to stores healthy and a leading master'] = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  }, 420_000);

  afterAll(async () => {
    if (!hasPassed && project !== undefined) console.error(await project.describe(40));
    await project?.down();
    // Measured on a shared 2-core machine: noisy, for orientation only.
    console.info(`compose e2e figures (${compose?.join(' ') ?? 'no compose'}):`, figures);
  }, 150_000);

  it('runs every slot at most once across scaling, a store leader stop and a master failover, and explains every missing slot', async () => {
    const stack = project;
    if (stack === undefined) throw new Error('stack not started');
    const command = `echo "$ETCRON_SLOT $ETCRON_WORKER" >> ${RUNS_FILE}; sleep ${RUN_SECONDS}`;
    let started = Date.now();
    await cli(['job', 'add', JOB, '--schedule', '* * * * * *', '--late-start', '0s', '--history-count', String(HISTORY_COUNT), '--command', command]);
    await waitForMoreRuns(stack, 'the first run with one worker', 1);
    figures['job add to first run'] = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    await waitForMoreRuns(stack, 'two more runs with one worker', 2);
    // The image carries the web UI's files, and the masters serve them and /metrics (#13).
    const api = `http://127.0.0.1:${ports.api[0]}`;
    const app = await fetch(`${api}/ui/app.js`, { signal: AbortSignal.timeout(5_000) });
    expect(app.status).toBe(200);
    const metrics = await fetch(`${api}/metrics`, { signal: AbortSignal.timeout(5_000) });
    expect(await metrics.text()).toContain('etcron_master_leader');

    const workersBefore = new Set((await readRuns(stack)).map((r) => r.worker));
    started = Date.now();
    await stack.scaleWorkers(4);
    await waitFor('a new worker to run a slot', async () => {
      const runs = await readRuns(stack);
      return runs.some((r) => !workersBefore.has(r.worker)) ? true : undefined;
    }, 60_000, 250);
    figures['scale 1 → 4 to first slot run by a new worker'] = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    await waitForMoreRuns(stack, 'runs with four workers', 4);

    // SIGKILL a worker just after it started a run: the run is marked lost once its lease expires.
    const workerContainers = await stack.containerIds('worker');
    const victim = await waitFor('a run that just started', async () => {
      const last = (await readRuns(stack)).at(-1);
      // A worker's id is <hostname>-<pid>, and a container's hostname is its short id.
      const container = workerContainers.find((id) => last?.worker.startsWith(`${id.slice(0, 12)}-`) === true);
      return container === undefined || last === undefined ? undefined : { container, run: last };
    }, 30_000, 100);
    await runChecked(['docker', 'kill', victim.container], { timeoutMs: 20_000 });
    started = Date.now();
    const lost = await waitFor(`the killed worker's run of ${victim.run.slot} to be marked lost`, async () => {
      const runs = await readHistory();
      return runs.find((r) => r.slot === victim.run.slot && r.state === 'lost');
    }, 45_000, 500);
    figures['worker SIGKILL to its run marked lost (lease TTL 5 s)'] = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    expect(lost.worker).toBe(victim.run.worker);

    await stack.scaleWorkers(2);
    await waitForMoreRuns(stack, 'runs after scaling down to two workers', 3);

    const storeLeader = await storeLeaderService();
    await stack.run(['stop', '--timeout', '5', storeLeader]);
    await waitForMoreRuns(stack, `runs after stopping ${storeLeader}, the store's Raft leader`, 3);

    // A status answer needs the store too, which may still be settling after its leader change.
    const leading = await waitFor('a master that leads', async () => {
      const statuses = await Promise.all(ports.api.map(masterStatus));
      return statuses.find((s) => s?.isLeader === true);
    }, 30_000, 250);
    await stack.run(['stop', '--timeout', '5', leading.master]);
    let lastStatuses: (MasterStatus | undefined)[] = [];
    await waitFor('the standby master to take over', async () => {
      lastStatuses = await Promise.all(ports.api.map(masterStatus));
      return lastStatuses.some((s) => s?.isLeader === true && s.master !== leading.master) ? true : undefined;
    }, 45_000, 250).catch(async (err: unknown) => {
      const detail = await stack.explain(['master1', 'master2'], 25);
      throw new Error(`${String(err)}; statuses ${JSON.stringify(lastStatuses)}\n${detail}`);
    });
    await waitForMoreRuns(stack, 'runs after the master failover', 3);

    // Let housekeeping account for the newest slots we check, then compare file and history.
    const cutoffMs = Date.now();
    await new Promise((r) => setTimeout(r, SETTLED_AFTER_MS));
    const runs = await readRuns(stack);
    const recorded = new Map((await readHistory()).map((r) => [r.slot, r]));

    const slotsRun = runs.map((r) => r.slot);
    const duplicates = slotsRun.filter((slot, i) => slotsRun.indexOf(slot) !== i);
    expect(duplicates, 'slots started twice').toEqual([]);
    expect(slotsRun.filter((slot) => !recorded.has(slot)), 'runs without a history record').toEqual([]);

    const first = Math.min(...slotsRun.map((s) => Date.parse(s)));
    const unexplained: string[] = [];
    const explained: string[] = [];
    // Bounded: one step per second between the first run and the cutoff (a few minutes at most).
    for (let slotMs = first; slotMs <= cutoffMs - 1000; slotMs += 1000) {
      const slot = new Date(slotMs).toISOString();
      if (slotsRun.includes(slot)) continue;
      const record = recorded.get(slot);
      if (record === undefined || record.state === 'succeeded') unexplained.push(slot);
      else explained.push(`${slot} ${record.state} (${record.reason ?? 'no reason'})`);
    }
    figures['slots run'] = String(slotsRun.length);
    figures['slots not run, with their history record'] = explained.length === 0 ? 'none' : explained.join('; ');
    expect(unexplained, 'slots neither run nor recorded').toEqual([]);
    hasPassed = true;
  }, 300_000);
});
