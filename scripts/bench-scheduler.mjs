#!/usr/bin/env node
// npm run bench:scheduler: the scheduler under load, on the bundled store (`etcron store`, one
// member) and on real etcd (/usr/bin/etcd), one after the other in one run, side by side.
//
//   npm run bench:scheduler [-- --quick] [--duration S] [--jobs N] [--period S] [--workers N]
//                           [--executor noop|shell|http] [--stores etcron,etcd] [--no-build] [--json]
//
// Job mix: N jobs (default 10,000), job i is the cron `<i mod P>-59/P * * * * *` (P = --period, a
// divisor of 60, default 60): every job starts once per P seconds and every second of the window
// has N/P slots due on the second itself, so the offered rate is N/P starts/s (167/s by default,
// --period 10 gives 1,000/s). The executor defaults to the in-process no-op that exists for this
// bench only (worker/executor/bench-noop.ts, command `etcron:bench-noop`): it measures the
// scheduler, not process spawning; `--executor shell` runs `true` through the real process-group
// executor instead; `--executor http` makes each run a real HTTP job (worker/executor/
// http-request.ts) against a target server in this driver process, which counts the requests per
// slot (duplicates at the target) and whose CPU is reported apart from the scheduler's. Workers and the housekeeper are real processes (this file, in worker or
// housekeeper mode); everything listens on 127.0.0.1 and is killed at the end, also on failure
// or Ctrl-C. Every wait is bounded.
//
// Figures, for the slots of the measured window only:
//   starts/s     runs started / window length
//   lateness     startedAtMs (worker clock) - nominal slot, p50 / p99 / max
//   duplicates   executor starts counted by the workers minus distinct started run records
//   misses       slots of the window without a record ("unexplained"), and records that were
//                never started, by reason (explained: written by housekeeping or a worker)
//   requests     store requests per start counted by the workers: claims, takeover reads and
//                fenced progress writes (running, finish), where the claims and writes that shared
//                a txn (worker/claimer/txn-batcher.ts) count as that one txn; revisions per start
//                is the store's own count of writes over the window (housekeeping included)
//   cpu          CPU seconds used during the window by the store and by the workers together (each
//                with its run guard, which spawns the runs; the runs' own processes not counted)
//   --json only  latenessTail: where the slowest 1% lost their time, and the worst bursts (one
//                worker's starts of one second: `first` high = its event loop was busy at the
//                slot, `last - first` high = a slow burst)
//
// For finding where time goes (environment): ETCRON_BENCH_CPU_PROF=<dir> (CPU profiles of the
// workers and the housekeeper), ETCRON_BENCH_ALLOC_PROF=<dir> (sampled allocations of the
// workers), ETCRON_BENCH_NODE_FLAGS="..." (node flags for them, e.g. --trace-gc),
// ETCRON_BENCH_CHILD_LOG=<dir> (their standard output, where --trace-gc writes).
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync, readdirSync, existsSync, createWriteStream } from 'node:fs';
import { freePort } from './lib/free-port.mjs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '..');
const ETCD = process.env.ETCRON_ETCD_BIN ?? '/usr/bin/etcd';
const ETCRON = join(REPO, 'bin', 'etcron');
const SELF = import.meta.filename;
const NOOP_COMMAND = 'etcron:bench-noop';
const TICKS_PER_SECOND = 100; // USER_HZ on Linux, for /proc/<pid>/stat CPU times


// ---------------------------------------------------------------------------------------------
// Child modes: one worker, or the housekeeper (what the elected master runs), from dist/.

async function workerMode([id, endpoints, claimAhead]) {
  const { startWorker } = await import(join(REPO, 'dist', 'worker', 'index.js'));
  const { createLogger } = await import(join(REPO, 'dist', 'shared', 'log.js'));
  const handle = await startWorker({
    id, client: { endpoints }, leaseTtlSeconds: 5, logger: createLogger('warn'), benchNoopExecutor: true,
    ...(claimAhead ? { claimAheadMs: Number(claimAhead) } : {}),
  });
  process.stdout.write(`ready ${id}\n`);
  // The worker's longest event-loop stall per report interval, logged when over 500 ms.
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const report = () => {
    const stallMs = loop.max / 1e6;
    if (stallMs > 500) process.stderr.write(`{"msg":"event loop stalled","stallMs":${Math.round(stallMs)},"atMs":${Date.now()}}\n`);
    loop.reset();
    process.stdout.write(`stats ${JSON.stringify(handle.stats())}\n`);
  };
  const timer = setInterval(report, 1000);
  const allocations = await sampleAllocations(id);
  process.on('SIGTERM', () => {
    clearInterval(timer);
    handle.stop().then(allocations).finally(() => { report(); process.exit(0); });
  });
}

/**
 * ETCRON_BENCH_ALLOC_PROF=<dir>: a sampled allocation profile of the worker, short-lived objects
 * included (what drives its young-generation collections), written to <dir>/<id>.heapprofile.
 */
async function sampleAllocations(id) {
  const dir = process.env.ETCRON_BENCH_ALLOC_PROF;
  if (dir === undefined) return async () => undefined;
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => {
    session.post(method, params, (err, result) => (err ? reject(err) : resolve(result)));
  });
  await post('HeapProfiler.startSampling', {
    samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true,
  });
  return async () => {
    const { profile } = await post('HeapProfiler.stopSampling', {});
    writeFileSync(join(dir, `${id}.heapprofile`), JSON.stringify(profile));
  };
}

async function housekeeperMode([endpoints]) {
  const { startHousekeeping } = await import(join(REPO, 'dist', 'master', 'housekeeping', 'index.js'));
  const { createEtcdClient } = await import(join(REPO, 'dist', 'shared', 'etcd', 'client.js'));
  const { createLogger } = await import(join(REPO, 'dist', 'shared', 'log.js'));
  const client = createEtcdClient({ endpoints });
  const handle = startHousekeeping(client, { logger: createLogger('warn') });
  process.stdout.write('ready housekeeper\n');
  const report = () => process.stdout.write(`stats ${JSON.stringify(handle.stats())}\n`);
  const timer = setInterval(report, 1000);
  process.on('SIGTERM', () => {
    clearInterval(timer);
    handle.stop().finally(() => { report(); client.close(); process.exit(0); });
  });
}

// ---------------------------------------------------------------------------------------------
// Driver

const USAGE = `usage: npm run bench:scheduler -- [options]
  --quick            a 20 s window instead of 60 s
  --duration S       measured window in seconds (default 60, at most 600)
  --jobs N           jobs defined (default 10000)
  --period S         each job starts every S seconds (a divisor of 60; default 60); rate = jobs/S
  --workers N        worker processes (default 3)
  --claim-ahead MS   the workers' --claim-ahead (default: the worker's own, 1000)
  --executor E       noop (in-process, bench only; default), shell (spawns \`true\`) or http (a GET to a local target)
  --stores LIST      etcron,etcd (default both, in that order)
  --no-build         do not run \`npm run build\` first
  --json             print the results as JSON
  --keep             keep the temp dirs (store data, logs)`;

function parseOptions(argv) {
  const o = { durationS: 60, jobs: 10_000, periodS: 60, workers: 3, executor: 'noop', stores: ['etcron', 'etcd'], build: true, json: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i] ?? die(`${flag} needs a value`);
    switch (flag) {
      case '--quick': o.durationS = 20; break;
      case '--duration': o.durationS = boundedInt(flag, value(), 5, 600); break;
      case '--jobs': o.jobs = boundedInt(flag, value(), 1, 100_000); break;
      case '--period': o.periodS = boundedInt(flag, value(), 1, 60); break;
      case '--workers': o.workers = boundedInt(flag, value(), 1, 16); break;
      case '--claim-ahead': o.claimAheadMs = boundedInt(flag, value(), 0, 60_000); break;
      case '--executor': o.executor = value(); break;
      case '--stores': o.stores = value().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--no-build': o.build = false; break;
      case '--json': o.json = true; break;
      case '--keep': o.keep = true; break;
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0); break;
      default: die(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (60 % o.periodS !== 0) die('--period must divide 60');
  if (!['noop', 'shell', 'http'].includes(o.executor)) die('--executor must be noop, shell or http');
  for (const s of o.stores) if (!['etcron', 'etcd'].includes(s)) die(`unknown store ${s}`);
  return o;
}

function boundedInt(flag, v, min, max) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) die(`${flag} must be an integer in [${min}, ${max}]`);
  return n;
}

function die(msg) {
  process.stderr.write(`bench:scheduler: ${msg}\n`);
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`[bench:scheduler ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/** Every child we start, until it has exited; all are killed on exit, failure or signal. */
const live = new Map();
const tempDirs = new Set();
let keepTemp = false;

function track(child, name) {
  live.set(child.pid, { child, name });
  child.once('exit', () => live.delete(child.pid));
}

function killAllSync() {
  for (const { child } of live.values()) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  if (!keepTemp) for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

async function stopChild(child, graceMs = 8_000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  try { process.kill(-child.pid, 'SIGTERM'); } catch { return; }
  const t = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
  await Promise.race([done, sleep(graceMs + 5_000)]);
  clearTimeout(t);
}


/** CPU seconds (user + system) of one process, from /proc. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch { return 0; }
}

/**
 * CPU seconds of a worker and of its run guard (its node child, which spawns and reaps the runs).
 * The runs themselves (sh, true) are not counted.
 */
function workerCpuSeconds(pid) {
  let sum = cpuSeconds(pid);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && comm === 'node') sum += cpuSeconds(Number(entry));
    } catch { /* gone meanwhile */ }
  }
  return sum;
}

async function startStore(kind, dir) {
  const client = `http://127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const args = ['--name', 'bench', '--data-dir', join(dir, 'data'), '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `bench=${peer}`];
  const [cmd, argv] = kind === 'etcd' ? [ETCD, args] : [process.execPath, [ETCRON, 'store', ...args]];
  const logFile = join(dir, 'store.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, argv, { cwd: dir, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  track(child, `${kind} store`);
  return { child, endpoint: client.replace('http://', ''), logFile };
}

/** Starts a child in worker or housekeeper mode; resolves once it prints its ready line. */
async function startChild(modeFlag, args, name) {
  // ETCRON_BENCH_CPU_PROF=<dir>: V8 CPU profiles of the workers and the housekeeper, for finding bottlenecks.
  const profileDir = process.env.ETCRON_BENCH_CPU_PROF;
  // ETCRON_BENCH_NODE_FLAGS: more node flags for those children (e.g. --trace-gc, heap sizes).
  const extraFlags = (process.env.ETCRON_BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
  const nodeFlags = [...extraFlags, ...(profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir])];
  const child = spawn(process.execPath, [...nodeFlags, SELF, modeFlag, ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child, name);
  const state = { child, name, stats: undefined, stderr: '' };
  let buffered = '';
  // ETCRON_BENCH_CHILD_LOG=<dir>: each child's standard output kept in <dir>/<name>.log (--trace-gc).
  const childLogDir = process.env.ETCRON_BENCH_CHILD_LOG;
  if (childLogDir !== undefined) child.stdout.pipe(createWriteStream(join(childLogDir, `${name}.log`)));
  child.stdout.on('data', (d) => {
    buffered += d;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('ready ')) state.ready = true;
      if (line.startsWith('stats ')) state.stats = JSON.parse(line.slice(6));
    }
  });
  child.stderr.on('data', (d) => { if (state.stderr.length < 200_000) state.stderr += d; });
  await waitUntil(`${name} ready`, () => {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${state.stderr.slice(-2000)}`);
    return state.ready === true;
  }, 120_000);
  return state;
}

async function waitUntil(what, check, timeoutMs, pollMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The ordinal of job i and its cron: every `period` seconds, at second (i mod period). */
function jobSpecInput(i, o) {
  const second = i % o.periodS;
  return {
    name: `bench-${String(i).padStart(6, '0')}`,
    schedule: `${second}-59/${o.periodS} * * * * *`,
    ...(o.executor === 'http' ? { http: { url: `${o.targetUrl}/run` } } : { command: o.executor === 'noop' ? NOOP_COMMAND : 'true' }),
    history: { countMax: 5 },
    // Stamped as the master stamps a new job: slots before it are not the job's.
    createdAtMs: o.definedAtMs,
  };
}

async function defineJobs(lib, client, o) {
  const TXN_PUTS_MAX = 100; // under etcd's 128 ops per txn
  const CONCURRENT_TXNS_MAX = 8;
  const batches = [];
  for (let i = 0; i < o.jobs; i += TXN_PUTS_MAX) batches.push([i, Math.min(o.jobs, i + TXN_PUTS_MAX)]);
  for (let b = 0; b < batches.length; b += CONCURRENT_TXNS_MAX) {
    await Promise.all(batches.slice(b, b + CONCURRENT_TXNS_MAX).map(async ([from, to]) => {
      const success = [];
      for (let i = from; i < to; i++) {
        const parsed = lib.parseJobSpec(jobSpecInput(i, o));
        if (!parsed.ok) throw new Error(`job ${i}: ${JSON.stringify(parsed.errors)}`);
        success.push({ request_put: { key: Buffer.from(lib.jobKey(parsed.spec.name)), value: Buffer.from(lib.serializeJobSpec(parsed.spec)) } });
      }
      await client.kv.txn({ compare: [], success, failure: [] });
    }));
  }
}

async function currentRevision(client) {
  return Number((await client.kv.range({ key: Buffer.from('/cron/jobs/'), count_only: true })).header.revision);
}

/** Every run record under /cron/runs/, page by page. */
async function readAllRuns(lib, client) {
  const PAGE_KEYS = 2_000;
  const PAGES_MAX = 10_000;
  const end = lib.prefixEnd(lib.RUNS_PREFIX);
  let key = Buffer.from(lib.RUNS_PREFIX);
  let revision;
  const runs = [];
  for (let page = 0; page < PAGES_MAX; page++) {
    const r = await client.kv.range({ key, range_end: end, limit: PAGE_KEYS, ...(revision === undefined ? {} : { revision }) });
    revision ??= r.header.revision;
    for (const kv of r.kvs) {
      const record = lib.decodeRunRecord(kv.value.toString());
      if (record !== undefined) runs.push(record);
    }
    const last = r.kvs[r.kvs.length - 1];
    if (!r.more || last === undefined) break;
    key = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return runs;
}

function sumStats(children) {
  const total = {};
  for (const c of children) for (const [k, v] of Object.entries(c.stats ?? {})) total[k] = (total[k] ?? 0) + v;
  return total;
}

/**
 * The HTTP jobs' target, in this process: answers 200 at once and counts requests per slot (job
 * and slot headers), so a slot requested twice shows up whatever the records say.
 */
async function startTarget() {
  const perSlot = new Map();
  const server = createServer((req, res) => {
    const slotKey = `${req.headers['x-etcron-job']} ${req.headers['x-etcron-slot']}`;
    perSlot.set(slotKey, (perSlot.get(slotKey) ?? 0) + 1);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n'));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests: () => { let n = 0; for (const c of perSlot.values()) n += c; return n; },
    duplicates: () => { let n = 0; for (const c of perSlot.values()) n += c - 1; return n; },
    cpuSeconds: () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; },
    close: () => { server.closeAllConnections(); server.close(); },
  };
}

async function runOne(kind, o, lib) {
  const dir = mkdtempSync(join(tmpdir(), `etcron-bench-sched-${kind}-`));
  tempDirs.add(dir);
  const target = o.executor === 'http' ? await startTarget() : undefined;
  if (target !== undefined) o = { ...o, targetUrl: target.url };
  const store = await startStore(kind, dir);
  const client = lib.createEtcdClient({ endpoints: store.endpoint });
  const children = [];
  try {
    await waitUntil(`${kind} store ready`, async () => {
      if (store.child.exitCode !== null) throw new Error(`${kind} store exited; see ${store.logFile}`);
      return client.put('/bench/ready').value('1').then(() => true, () => false);
    }, 60_000, 250);
    const defineStart = Date.now();
    await defineJobs(lib, client, { ...o, definedAtMs: defineStart });
    const defineMs = Date.now() - defineStart;
    log(`${kind}: ${o.jobs} jobs defined in ${defineMs} ms`);
    const housekeeper = await startChild('--housekeeper-mode', [store.endpoint], 'housekeeper');
    children.push(housekeeper);
    const workers = [];
    for (let w = 1; w <= o.workers; w++) workers.push(await startChild('--worker-mode', [`bw${w}`, store.endpoint, String(o.claimAheadMs ?? '')], `worker bw${w}`));
    children.push(...workers);
    // Warm-up: a few seconds of the steady state before the window.
    const windowStartMs = Math.ceil((Date.now() + 5_000) / 1000) * 1000;
    const windowEndMs = windowStartMs + o.durationS * 1000;
    await sleep(windowStartMs - Date.now());
    const pids = { store: [store.child.pid], workers: workers.map((w) => w.child.pid) };
    const cpuBefore = { store: cpuSeconds(pids.store[0]), workers: pids.workers.reduce((s, p) => s + workerCpuSeconds(p), 0), target: target?.cpuSeconds() ?? 0 };
    const revisionBefore = await currentRevision(client);
    const statsBefore = sumStats(workers);
    log(`${kind}: measuring ${o.durationS} s`);
    await sleep(windowEndMs - Date.now());
    const statsAfter = sumStats(workers);
    const revisionAfter = await currentRevision(client);
    const cpuAfter = { store: cpuSeconds(pids.store[0]), workers: pids.workers.reduce((s, p) => s + workerCpuSeconds(p), 0), target: target?.cpuSeconds() ?? 0 };
    // Slots of the window reach their start deadline (5 s) plus housekeeping's margin (5 s); then
    // housekeeping records the ones not started. Wait for a record per slot, bounded.
    log(`${kind}: waiting for the window's deadlines and housekeeping`);
    await sleep(windowEndMs + 11_000 - Date.now());
    const expected = expectedSlots(o, windowStartMs, windowEndMs);
    const settleDeadlineMs = Date.now() + 60_000;
    let runs = await readAllRuns(lib, client);
    while (countInWindow(runs, windowStartMs, windowEndMs) < expected && Date.now() < settleDeadlineMs) {
      await sleep(2_000);
      runs = await readAllRuns(lib, client);
    }
    const settleMs = Date.now() - windowEndMs;
    for (const w of workers) await stopChild(w.child);
    await stopChild(housekeeper.child);
    runs = await readAllRuns(lib, client);
    const targetFigures = target === undefined ? undefined : { requests: target.requests(), duplicates: target.duplicates() };
    return summarize(kind, o, { runs, windowStartMs, windowEndMs, statsBefore, statsAfter, workers, revisionBefore, revisionAfter, cpuBefore, cpuAfter, defineMs, housekeeper, settleMs, targetFigures });
  } finally {
    target?.close();
    for (const c of children) await stopChild(c.child);
    client.close();
    await stopChild(store.child);
    if (!keepTemp) { rmSync(dir, { recursive: true, force: true }); tempDirs.delete(dir); }
  }
}

function countInWindow(runs, fromMs, toMs) {
  let count = 0;
  for (const r of runs) { const s = Date.parse(r.slot); if (s >= fromMs && s < toMs) count++; }
  return count;
}

/** Slots due in [fromMs, toMs): in second t, the jobs whose offset is t mod period. */
function expectedSlots(o, fromMs, toMs) {
  const jobsAtOffset = new Array(o.periodS).fill(0);
  for (let i = 0; i < o.jobs; i++) jobsAtOffset[i % o.periodS]++;
  let count = 0;
  for (let t = Math.ceil(fromMs / 1000); t * 1000 < toMs; t++) count += jobsAtOffset[t % o.periodS];
  return count;
}

/**
 * The bursts (one worker's starts of one second) with the latest last start: `first` high means
 * the worker's event loop was busy at the slot instant, `last - first` high a slow burst.
 */
function worstBursts(started, count) {
  const bursts = new Map();
  for (const r of started) {
    const key = `${r.slot.slice(11, 19)} ${r.worker}`;
    const late = r.startedAtMs - Date.parse(r.slot);
    const b = bursts.get(key) ?? { burst: key, runs: 0, first: late, last: late };
    b.runs++;
    b.first = Math.min(b.first, late);
    b.last = Math.max(b.last, late);
    bursts.set(key, b);
  }
  const all = [...bursts.values()].sort((a, b) => b.last - a.last);
  return { lastStartP50Ms: all[Math.floor(all.length / 2)]?.last, worst: all.slice(0, count) };
}

function summarize(kind, o, m) {
  const inWindow = m.runs.filter((r) => { const s = Date.parse(r.slot); return s >= m.windowStartMs && s < m.windowEndMs; });
  const started = inWindow.filter((r) => r.startedAtMs !== undefined);
  const notStarted = inWindow.filter((r) => r.startedAtMs === undefined);
  const lateness = started.map((r) => r.startedAtMs - Date.parse(r.slot)).sort((a, b) => a - b);
  // Where the slowest 1% lost their time: before the claim was sent (queue, takeover) or after.
  const p99Ms = percentile(lateness, 99);
  const tail = started.filter((r) => r.startedAtMs - Date.parse(r.slot) >= p99Ms && r.claimedAtMs !== undefined);
  const median = (values) => percentile(values.sort((a, b) => a - b), 50);
  const tailSplit = {
    runs: tail.length,
    claimSentAfterSlotMs: median(tail.map((r) => r.claimedAtMs - Date.parse(r.slot))),
    startAfterClaimSentMs: median(tail.map((r) => r.startedAtMs - r.claimedAtMs)),
    byWorker: tail.reduce((acc, r) => ({ ...acc, [r.worker]: (acc[r.worker] ?? 0) + 1 }), {}),
    bySecond: tail.reduce((acc, r) => { const k = r.slot.slice(11, 19); return { ...acc, [k]: (acc[k] ?? 0) + 1 }; }, {}),
    worstBursts: worstBursts(started, 5),
  };
  const expected = expectedSlots(o, m.windowStartMs, m.windowEndMs);
  const states = {};
  for (const r of inWindow) states[r.state] = (states[r.state] ?? 0) + 1;
  const byReason = {};
  for (const r of notStarted) {
    const reason = `${r.state}: ${(r.reason ?? '(none)').split(':')[0]}`;
    byReason[reason] = (byReason[reason] ?? 0) + 1;
  }
  // Every claim won leaves one record that is neither missed nor skipped (no retries in this mix).
  const claimsRecorded = m.runs.filter((r) => r.state !== 'missed' && r.state !== 'skipped').length;
  const stats = sumStats(m.workers);
  const startsInWindow = (m.statsAfter.runsStarted ?? 0) - (m.statsBefore.runsStarted ?? 0);
  const delta = (k) => (m.statsAfter[k] ?? 0) - (m.statsBefore[k] ?? 0);
  const requests = delta('claimTxns') + delta('takeoverReads') + delta('progressWrites') - delta('batchSubmitted') + delta('batchTxns');
  return {
    store: kind,
    jobs: o.jobs, offeredPerSecond: Number((o.jobs / o.periodS).toFixed(1)), windowSeconds: o.durationS, executor: o.executor,
    defineJobsMs: m.defineMs,
    expectedSlots: expected,
    startsPerSecond: Number((started.length / o.durationS).toFixed(1)),
    latenessMs: { p50: percentile(lateness, 50), p99: percentile(lateness, 99), max: lateness[lateness.length - 1] ?? Number.NaN },
    latenessTail: tailSplit,
    // A second start of a slot would be a second executor start with no record of its own.
    duplicates: Math.max(0, (stats.runsStarted ?? 0) - claimsRecorded),
    unexplainedMisses: Math.max(0, expected - inWindow.length) + notStarted.filter((r) => r.reason === undefined).length,
    notStarted: byReason,
    states,
    workerWarnings: warningCounts(m.workers),
    requestsPerStart: Number((requests / Math.max(1, startsInWindow)).toFixed(2)),
    claimTxnsPerStart: Number((delta('claimTxns') / Math.max(1, startsInWindow)).toFixed(2)),
    itemsPerBatch: Number((delta('batchItems') / Math.max(1, delta('batchTxns'))).toFixed(1)),
    batchesFailed: delta('batchesFailed'),
    revisionsPerStart: Number(((m.revisionAfter - m.revisionBefore) / Math.max(1, startsInWindow)).toFixed(2)),
    leaseLosses: stats.leaseLosses ?? 0,
    slotsTooLate: delta('slotsTooLate'),
    slotsDeferred: delta('slotsDeferred'),
    claims: {
      sent: delta('claimTxns'), won: delta('claimsWon'), takeoverReads: delta('takeoverReads'), takeovers: delta('takeovers'),
      meanMs: Math.round(delta('claimMsSum') / Math.max(1, delta('claimsTimed'))), maxMs: Math.round(m.statsAfter.claimMsMax ?? 0),
    },
    housekeepingSettleMs: m.settleMs,
    reportsRejected: stats.reportsRejected ?? 0,
    cpuSeconds: {
      store: Number((m.cpuAfter.store - m.cpuBefore.store).toFixed(1)), workers: Number((m.cpuAfter.workers - m.cpuBefore.workers).toFixed(1)),
      target: Number((m.cpuAfter.target - m.cpuBefore.target).toFixed(1)),
    },
    cpuMsPerStart: Number(((m.cpuAfter.store - m.cpuBefore.store + m.cpuAfter.workers - m.cpuBefore.workers) * 1000 / Math.max(1, startsInWindow)).toFixed(2)),
    target: m.targetFigures ?? null,
    housekeeping: m.housekeeper.stats ?? {},
  };
}

/** Warnings and errors the workers logged, counted by message. */
function warningCounts(workers) {
  const counts = {};
  for (const w of workers) {
    for (const line of w.stderr.split('\n')) {
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1];
      if (msg !== undefined) counts[msg] = (counts[msg] ?? 0) + 1;
      // A lost lease costs the runs it held: say why (deadline or expired, how late).
      if (msg === 'lease lost' || msg === 'event loop stalled') log(`${w.name}: ${line.slice(0, 400)}`);
    }
  }
  return counts;
}

function printTable(results, o, load) {
  const rows = [
    ['starts/s', (r) => r.startsPerSecond],
    ['lateness p50 ms', (r) => r.latenessMs.p50],
    ['lateness p99 ms', (r) => r.latenessMs.p99],
    ['lateness max ms', (r) => r.latenessMs.max],
    ['duplicates', (r) => r.duplicates],
    ['unexplained misses', (r) => r.unexplainedMisses],
    ['not started (explained)', (r) => Object.values(r.notStarted).reduce((a, b) => a + b, 0)],
    ['store requests/start', (r) => r.requestsPerStart],
    ['claims/start', (r) => r.claimTxnsPerStart],
    ['claims+writes per shared txn', (r) => r.itemsPerBatch],
    ['shared txns failed', (r) => r.batchesFailed],
    ['revisions/start', (r) => r.revisionsPerStart],
    ['lease losses', (r) => r.leaseLosses],
    ['slots too late (workers)', (r) => r.slotsTooLate],
    ['records complete after ms', (r) => r.housekeepingSettleMs],
    ['cpu s store', (r) => r.cpuSeconds.store],
    ['cpu s workers', (r) => r.cpuSeconds.workers],
    ['cpu ms/start (store+wkrs)', (r) => r.cpuMsPerStart],
    ['target requests', (r) => r.target?.requests ?? '-'],
    ['target duplicate requests', (r) => r.target?.duplicates ?? '-'],
    ['cpu s target (driver)', (r) => (r.target === null ? '-' : r.cpuSeconds.target)],
    ['define jobs ms', (r) => r.defineJobsMs],
  ];
  const etcron = results.find((r) => r.store === 'etcron');
  const etcd = results.find((r) => r.store === 'etcd');
  const out = [`${o.jobs} jobs, ${(o.jobs / o.periodS).toFixed(0)} starts/s offered, ${o.workers} workers, ${o.durationS} s window, executor ${o.executor}; load avg ${load}, ${cpus().length} cores`];
  out.push(`${'figure'.padEnd(26)}${'etcron store'.padStart(14)}${'etcd 3.4'.padStart(14)}${'etcron/etcd'.padStart(13)}`);
  for (const [label, get] of rows) {
    const a = etcron === undefined ? '-' : get(etcron);
    const b = etcd === undefined ? '-' : get(etcd);
    const ratio = typeof a === 'number' && typeof b === 'number' && b !== 0 ? (a / b).toFixed(2) : '-';
    out.push(`${label.padEnd(26)}${String(a).padStart(14)}${String(b).padStart(14)}${ratio.padStart(13)}`);
  }
  for (const r of results) {
    out.push(`${r.store}: run states in the window ${JSON.stringify(r.states)}; housekeeping ${JSON.stringify(r.housekeeping)}`);
    if (Object.keys(r.notStarted).length > 0) out.push(`${r.store}: not started ${JSON.stringify(r.notStarted)}`);
    if (Object.keys(r.workerWarnings).length > 0) out.push(`${r.store}: worker warnings ${JSON.stringify(r.workerWarnings)}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function driverMode(argv) {
  const o = parseOptions(argv);
  keepTemp = o.keep;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { killAllSync(); process.exit(130); });
  if (o.build) {
    log('npm run build');
    const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'], timeout: 600_000 });
    if (r.status !== 0 && !existsSync(join(REPO, 'dist', 'worker', 'index.js'))) die('build failed and dist/ is missing');
    if (r.status !== 0) log('WARNING: build failed; benchmarking the existing dist/, which may be stale');
  }
  const dist = (p) => import(join(REPO, 'dist', ...p.split('/')));
  const [job, keys, records, etcd] = await Promise.all([
    dist('shared/job/index.js'), dist('shared/keys.js'), dist('shared/history/records.js'), dist('shared/etcd/client.js'),
  ]);
  const lib = { ...job, ...keys, ...records, ...etcd };
  const loadBefore = loadavg().map((l) => l.toFixed(2)).join(' ');
  const results = [];
  for (const kind of o.stores) {
    log(`${kind}: starting`);
    results.push(await runOne(kind, o, lib));
  }
  const load = `${loadBefore} before, ${loadavg().map((l) => l.toFixed(2)).join(' ')} after`;
  if (o.json) process.stdout.write(JSON.stringify({ options: o, load, results }, null, 2) + '\n');
  else printTable(results, o, load);
  process.exit(0);
}

// Dispatch last: the module-level constants above must be initialised first.
const mode = process.argv[2];
if (mode === '--worker-mode') await workerMode(process.argv.slice(3));
else if (mode === '--housekeeper-mode') await housekeeperMode(process.argv.slice(3));
else await driverMode(process.argv.slice(2));
