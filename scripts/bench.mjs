#!/usr/bin/env node
// npm run bench: the same load against real etcd and `etcron store`, one after the other in one
// run, on this machine; prints ops/s, p50 and p99 side by side with the ratio, plus resident
// memory and data-dir size after loading 200k keys of 256 B.
//
//   npm run bench [-- --quick] [--rows put,get,getser,txn,put1,lease,watch,mem] [--repeat N] [--json]
//                 [--subject etcron|etcd] [--members N] [--no-build]
//
// The load generator is bench/loadgen (etcd's own Go client, built offline by bench/build.sh).
// Every server and load generator runs on 127.0.0.1 and is killed at the end, also on failure,
// Ctrl-C or SIGTERM. Every wait is bounded.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync, readdirSync, lstatSync, existsSync } from 'node:fs';
import { freePort } from './lib/free-port.mjs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '..');
const ETCD = process.env.ETCRON_ETCD_BIN ?? '/usr/bin/etcd';
let ETCRON = join(REPO, 'bin', 'etcron');

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: npm run bench -- [options]
  --quick            fewer operations (a smoke run, ~1 min)
  --rows LIST        comma-separated subset of: put,get,getser,txn,put1,lease,watch,mem (default: all)
  --repeat N         run each subject N times, alternating which goes first; report medians
  --json             print the results as JSON instead of a table
  --subject S        what to compare against etcd: etcron (default) or etcd (noise check)
  --members N        cluster size for both sides (default 1)
  --no-build         do not run \`npm run build\` before starting etcron
  --etcron-bin PATH  benchmark another build's bin/etcron (implies --no-build)
  --keep             keep the temp dirs (logs, data) for inspection`;

function parseArgs(argv) {
  const o = { quick: false, rows: null, repeat: 1, json: false, subject: 'etcron', members: 1, build: true, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) die(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--quick': o.quick = true; break;
      case '--json': o.json = true; break;
      case '--no-build': o.build = false; break;
      case '--keep': o.keep = true; break;
      case '--rows': o.rows = value().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--repeat': o.repeat = positiveInt(flag, value()); break;
      case '--members': o.members = positiveInt(flag, value()); break;
      case '--subject': o.subject = value(); break;
      case '--etcron-bin': o.etcronBin = resolve(value()); o.build = false; break;
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0); break;
      default: die(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (!['etcron', 'etcd'].includes(o.subject)) die(`--subject must be etcron or etcd`);
  return o;
}

function positiveInt(flag, v) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1000) die(`${flag} must be a positive integer`);
  return n;
}

function die(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
if (opts.etcronBin) ETCRON = opts.etcronBin;
const log = (msg) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Rows

const SIZE = opts.quick
  ? { n64: 8_000, n1: 600, nWatch: 300, warm64: 500, warm1: 50, load: 20_000, rowCapS: 30, loadCapS: 120 }
  : { n64: 40_000, n1: 3_000, nWatch: 2_000, warm64: 2_000, warm1: 2_000, load: 200_000, rowCapS: 90, loadCapS: 600 };
/**
 * Resident memory is read twice: 3 s after the load (what a busy member holds) and this long after
 * it, idle (what it settles at once its runtime has given back what it no longer needs: V8's memory
 * reducer acts some 20 s after the allocation rate drops, Go's scavenger gives pages back slowly).
 */
const IDLE_RSS_AFTER_S = opts.quick ? 10 : 30;
const KEYS = 1000;
const VAL = 256;

const OPS_ROWS = {
  put: { label: 'put, 64 clients', op: 'put', clients: 64, conns: 8, n: SIZE.n64, warmup: SIZE.warm64 },
  get: { label: 'get (linearizable), 64', op: 'get', clients: 64, conns: 8, n: SIZE.n64, warmup: SIZE.warm64 },
  getser: { label: 'get (serializable), 64', op: 'getser', clients: 64, conns: 8, n: SIZE.n64, warmup: SIZE.warm64 },
  txn: { label: 'txn (compare+put), 64', op: 'txn', clients: 64, conns: 8, n: SIZE.n64, warmup: SIZE.warm64 },
  // One request at a time runs code the 64-client rows hardly use (a Ready of one entry, its fsync
  // on the loop); on a JIT runtime that code is compiled over the first few thousand such requests
  // (some 600 optimizations over three members), so the warm-up is as long as 64 clients' is.
  put1: { label: 'put, 1 client', op: 'put', clients: 1, conns: 1, n: SIZE.n1, warmup: SIZE.warm1 },
  // Keep-alives cycling over 10,000 live leases: what lease bookkeeping costs at scale.
  lease: { label: 'lease keep-alive, 10k leases, 64', op: 'lease', clients: 64, conns: 8, n: SIZE.n64, warmup: SIZE.warm64, keys: 10_000 },
  // Events delivered per second to 1,000 watchers of one prefix (ops/s counts events, not puts;
  // p50/p99 are put-to-event delivery latencies).
  // Its warm-up is a whole fan-out of a quarter the size, on other watchers: like the other rows,
  // it measures servers whose path for it is warm (a JIT compiles the hand-out loop meanwhile).
  watch: { label: 'watch fan-out, 1,000 watchers (events/s)', op: 'watch', clients: 16, conns: 8, n: SIZE.nWatch, warmup: SIZE.nWatch / 4, watchers: 1000 },
};
const ALL_ROWS = [...Object.keys(OPS_ROWS), 'mem'];
const rows = opts.rows ?? ALL_ROWS;
for (const r of rows) if (!ALL_ROWS.includes(r)) die(`unknown row ${r}; rows are ${ALL_ROWS.join(',')}`);
const opsRows = rows.filter((r) => r !== 'mem');
const memRow = rows.includes('mem');

const subjects = ['etcd', opts.subject === 'etcd' ? 'etcd#2' : 'etcron'];
const kindOf = (subject) => (subject.startsWith('etcd') ? 'etcd' : 'etcron');

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: every child we start is in `live` until it has exited.

const live = new Map(); // pid -> { child, group, name }
const tempDirs = new Set();
let cleaningUp = false;

function track(child, name, group) {
  live.set(child.pid, { child, group, name });
  child.once('exit', () => live.delete(child.pid));
}

function signal(entry, sig) {
  try {
    if (entry.group) process.kill(-entry.child.pid, sig); // the whole process group it leads
    else entry.child.kill(sig);
  } catch { /* already gone */ }
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL after graceMs; resolves when the child has exited (bounded). */
async function stopChild(child, graceMs = 8000) {
  const entry = live.get(child.pid) ?? { child, group: false };
  if (exited(child)) {
    if (entry.group) signal(entry, 'SIGKILL'); // any grandchildren left behind
    return;
  }
  const done = new Promise((r) => child.once('exit', r));
  signal(entry, 'SIGTERM');
  const t = setTimeout(() => signal(entry, 'SIGKILL'), graceMs);
  await Promise.race([done, sleep(graceMs + 5000)]);
  clearTimeout(t);
  if (entry.group) signal(entry, 'SIGKILL');
}

function killAllSync() {
  for (const entry of live.values()) signal(entry, 'SIGKILL');
  if (!opts.keep) for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

async function cleanup() {
  if (cleaningUp) return;
  cleaningUp = true;
  await Promise.all([...live.values()].map((e) => stopChild(e.child, 3000)));
  killAllSync();
}

process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: stopping everything`);
    const hard = setTimeout(() => { killAllSync(); process.exit(130); }, 10_000);
    hard.unref();
    cleanup().finally(() => process.exit(130));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Building

function buildLoadgen() {
  log('building bench/loadgen (offline, Debian clientv3 3.4)');
  const r = spawnSync(join(REPO, 'bench', 'build.sh'), [], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 });
  if (r.status !== 0) throw new Error(`bench/build.sh failed (status ${r.status ?? r.signal})`);
  const bin = r.stdout.trim().split('\n').pop();
  if (!bin || !existsSync(bin)) throw new Error(`bench/build.sh printed no binary path`);
  return bin;
}

function buildEtcron() {
  log('npm run build');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'], timeout: 600_000 });
  if (r.status === 0) return '';
  // Others edit the same tree; a half-edited file must not stop the benchmark if dist/ exists.
  const note = `npm run build failed (status ${r.status ?? r.signal}); benchmarking the existing dist/, which may be stale`;
  if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) throw new Error(note);
  log(`WARNING: ${note}`);
  return note;
}

// ---------------------------------------------------------------------------------------------
// Servers


async function startCluster(subject, members) {
  const kind = kindOf(subject);
  const dir = mkdtempSync(join(tmpdir(), `etcron-bench-${kind}-`));
  tempDirs.add(dir);
  const ms = [];
  for (let i = 0; i < members; i++) {
    const name = members === 1 ? 'bench' : `bench${i}`;
    ms.push({ name, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}`, dataDir: join(dir, `${name}.data`), logFile: join(dir, `${name}.log`) });
  }
  const initialCluster = ms.map((m) => `${m.name}=${m.peer}`).join(',');
  for (const m of ms) {
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.client,
      '--advertise-client-urls', m.client,
      '--listen-peer-urls', m.peer,
      '--initial-advertise-peer-urls', m.peer,
      '--initial-cluster', initialCluster,
      ...(members > 1 ? ['--initial-cluster-token', 'etcron-bench', '--initial-cluster-state', 'new'] : []),
    ];
    const [cmd, argv] = kind === 'etcd' ? [ETCD, args] : [process.execPath, [ETCRON, 'store', ...args]];
    const fd = openSync(m.logFile, 'a');
    // detached: its own process group, so we can kill whatever it spawns, and a terminal Ctrl-C
    // reaches only us (we then stop it in order).
    m.child = spawn(cmd, argv, { cwd: dir, detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    track(m.child, `${subject}/${m.name}`, true);
  }
  const cluster = { subject, kind, dir, members: ms, endpoints: ms.map((m) => m.client.replace('http://', '')).join(',') };
  await waitReady(cluster);
  return cluster;
}

function logTail(file, lines = 15) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch { return '(no log)'; }
}

function checkAlive(cluster) {
  for (const m of cluster.members) {
    if (exited(m.child)) {
      throw new Error(`${cluster.subject} member ${m.name} exited (${m.child.exitCode ?? m.child.signalCode}); log tail:\n${logTail(m.logFile)}`);
    }
  }
}

async function waitReady(cluster, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    checkAlive(cluster);
    // One put and one serializable get through the real client: the server accepts writes.
    const r = await loadgen(cluster, ['-op', 'getser', '-clients', '1', '-conns', '1', '-n', '1', '-keys', '1', '-prefix', 'bench-ready/', '-timeout', '2s', '-dial-timeout', '2s', '-duration', '5s'], 20_000, true);
    if (r.ok && r.result.errors === 0) return;
    last = r.error ?? r.result?.firstError ?? '';
    await sleep(250);
  }
  checkAlive(cluster);
  throw new Error(`${cluster.subject} not ready after ${timeoutMs} ms: ${last}\n${cluster.members.map((m) => logTail(m.logFile, 8)).join('\n')}`);
}

async function stopCluster(cluster) {
  await Promise.all(cluster.members.map((m) => stopChild(m.child)));
  if (!opts.keep) {
    rmSync(cluster.dir, { recursive: true, force: true });
    tempDirs.delete(cluster.dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Load generator

let LOADGEN = '';

/** Runs the load generator (bounded by timeoutMs) and parses its JSON line. */
function loadgen(cluster, args, timeoutMs, quiet = false) {
  return new Promise((res) => {
    const child = spawn(LOADGEN, ['-endpoints', cluster.endpoints, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child, 'loadgen', false);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { if (err.length < 20_000) err += d; });
    const timer = setTimeout(() => { err += `\n(killed after ${timeoutMs} ms)`; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { err += String(e); });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        const result = JSON.parse(line);
        res({ ok: code === 0, result, error: code === 0 ? undefined : `loadgen exit ${code ?? sig}` });
      } catch {
        const msg = `loadgen exit ${code ?? sig}: ${(err.trim().split('\n').filter((l) => !/^\{"level"/.test(l)).pop() ?? '').slice(0, 300)}`;
        if (!quiet) log(msg);
        res({ ok: false, error: msg });
      }
    });
  });
}

async function runOpsRow(cluster, name) {
  const row = OPS_ROWS[name];
  const args = [
    '-op', row.op, '-clients', String(row.clients), '-conns', String(row.conns), '-n', String(row.n),
    '-keys', String(row.keys ?? KEYS), '-val', String(VAL), '-warmup', String(row.warmup),
    '-prefix', `bench/${name}/`, '-duration', `${SIZE.rowCapS}s`, '-timeout', '10s',
    ...(row.watchers === undefined ? [] : ['-watchers', String(row.watchers)]),
  ];
  const cpuBefore = clusterCpuUs(cluster);
  const r = await loadgen(cluster, args, (SIZE.rowCapS * 2 + 60) * 1000);
  const cpuUs = clusterCpuUs(cluster) - cpuBefore;
  checkAlive(cluster);
  if (!r.ok) throw new Error(r.error);
  // Everything the servers did for the row: seeding (reads and txn write the key space first),
  // warm-up and measured operations. Ticks of 10 ms: a row of 1 s is measured to about 1%.
  const seeded = ['get', 'getser', 'txn'].includes(row.op) ? (row.keys ?? KEYS) : 0;
  // The watch row counts events: its warm-up of puts delivered one to every watcher.
  const requests = r.result.ops + row.warmup * (row.watchers ?? 1) + seeded;
  return { ...r.result, cpuUsPerOp: requests > 0 ? +(cpuUs / requests).toFixed(1) : null };
}

const CLOCK_TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** CPU time (user + system, µs) used so far by the servers' process groups. */
function clusterCpuUs(cluster) {
  return cluster.members.reduce((sum, m) => sum + groupCpuUs(m.child.pid), 0);
}

function groupCpuUs(pid) {
  let ticks = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pid && Number(d) !== pid) continue;
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch { /* exited meanwhile */ }
  }
  return (ticks * 1e6) / CLOCK_TICKS_PER_S;
}

// ---------------------------------------------------------------------------------------------
// Memory and disk

/** VmRSS (bytes) summed over the process group the server leads (workers, children included). */
function groupRss(pid) {
  let rss = 0;
  let hwm = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pgrp = Number(fields[2]);
      if (pgrp !== pid && Number(d) !== pid) continue;
      const status = readFileSync(`/proc/${d}/status`, 'utf8');
      rss += kb(status, 'VmRSS');
      hwm += kb(status, 'VmHWM');
    } catch { /* exited meanwhile */ }
  }
  return { rss, hwm };
}

function kb(status, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Bytes on disk (like du) and apparent size (like du -b) of a directory tree. */
function dirSize(path) {
  let disk = 0;
  let apparent = 0;
  const walk = (p) => {
    let st;
    try { st = lstatSync(p); } catch { return; }
    disk += st.blocks * 512;
    if (st.isDirectory()) { for (const e of readdirSync(p)) walk(join(p, e)); } else apparent += st.size;
  };
  walk(path);
  return { disk, apparent };
}

async function runMem(subject) {
  const cluster = await startCluster(subject, opts.members);
  try {
    const before = groupRss(cluster.members[0].child.pid);
    log(`${subject}: loading ${SIZE.load} keys x ${VAL} B (64 clients)`);
    const cpuBefore = clusterCpuUs(cluster);
    const r = await loadgen(cluster, [
      '-load', String(SIZE.load), '-val', String(VAL), '-clients', '64', '-conns', '8',
      '-prefix', 'bench/mem/', '-duration', `${SIZE.loadCapS}s`, '-timeout', '10s',
    ], (SIZE.loadCapS + 120) * 1000);
    const cpuUs = clusterCpuUs(cluster) - cpuBefore;
    checkAlive(cluster);
    if (!r.ok) throw new Error(r.error);
    // An incomplete load is still measured (and flagged, and counted as a failure).
    const incomplete = r.result.ops < SIZE.load
      ? `only ${r.result.ops} of ${SIZE.load} keys written in ${r.result.seconds} s (${r.result.errors} errors${r.result.firstError ? `, first: ${r.result.firstError}` : ''}${r.result.timedOut ? ', stopped by time limit' : ''})`
      : undefined;
    await sleep(3000); // let background commits settle
    const mem = cluster.members.map((m) => groupRss(m.child.pid));
    const disk = cluster.members.map((m) => dirSize(m.dataDir));
    await sleep((IDLE_RSS_AFTER_S - 3) * 1000);
    checkAlive(cluster);
    const idle = cluster.members.map((m) => groupRss(m.child.pid));
    const max = (xs, f) => Math.max(...xs.map(f));
    return {
      incomplete,
      keysLoaded: r.result.ops,
      load: r.result,
      cpuUsPerKey: r.result.ops > 0 ? +(cpuUs / r.result.ops).toFixed(1) : null,
      rssBytes: max(mem, (x) => x.rss),
      rssPeakBytes: max(mem, (x) => x.hwm),
      rssBeforeLoadBytes: before.rss,
      rssIdleBytes: max(idle, (x) => x.rss),
      dataDirBytes: max(disk, (x) => x.disk),
      dataDirApparentBytes: max(disk, (x) => x.apparent),
    };
  } finally {
    await stopCluster(cluster);
  }
}

// ---------------------------------------------------------------------------------------------
// Driver

const results = {}; // subject -> row -> [result...]; subject -> 'mem' -> object
const errors = [];

async function runSubject(subject, round) {
  results[subject] ??= {};
  if (opsRows.length > 0) {
    let cluster;
    try {
      log(`${subject} (round ${round + 1}/${opts.repeat}): starting ${opts.members} member(s)`);
      cluster = await startCluster(subject, opts.members);
      for (const name of opsRows) {
        try {
          const r = await runOpsRow(cluster, name);
          (results[subject][name] ??= []).push(r);
          log(`${subject} ${name}: ${r.opsPerSec} ops/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms${r.errors ? `, ${r.errors} errors (${r.firstError})` : ''}${r.timedOut ? ', stopped by time limit' : ''}`);
        } catch (e) {
          errors.push({ subject, row: name, round, error: String(e.message ?? e) });
          log(`${subject} ${name}: FAILED: ${e.message ?? e}`);
          if (cluster.members.some((m) => exited(m.child))) break;
        }
      }
    } catch (e) {
      errors.push({ subject, row: 'start', round, error: String(e.message ?? e) });
      log(`${subject}: FAILED: ${e.message ?? e}`);
    } finally {
      if (cluster) await stopCluster(cluster);
    }
  }
  if (memRow && round === 0) {
    try {
      results[subject].mem = await runMem(subject);
      const m = results[subject].mem;
      if (m.incomplete) {
        errors.push({ subject, row: 'mem', round, error: m.incomplete });
        log(`${subject} mem: INCOMPLETE: ${m.incomplete}`);
      }
      log(`${subject} mem: RSS ${mb(m.rssBytes)} MB (${mb(m.rssIdleBytes)} MB idle ${IDLE_RSS_AFTER_S} s after), data dir ${mb(m.dataDirBytes)} MB, load ${m.load.opsPerSec} keys/s`);
    } catch (e) {
      errors.push({ subject, row: 'mem', round, error: String(e.message ?? e) });
      log(`${subject} mem: FAILED: ${e.message ?? e}`);
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (b) => (b / 1048576).toFixed(1);

function summarize(subject, name) {
  const rs = results[subject]?.[name];
  if (!rs || rs.length === 0) return null;
  return {
    opsPerSec: Math.round(median(rs.map((r) => r.opsPerSec))),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    cpuUsPerOp: median(rs.map((r) => r.cpuUsPerOp ?? NaN)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    runs: rs.map((r) => r.opsPerSec),
  };
}

function report(meta) {
  const [a, b] = subjects;
  const out = { ...meta, subjects, rows: {}, mem: {}, errors };
  for (const name of opsRows) {
    const x = summarize(a, name);
    const y = summarize(b, name);
    out.rows[name] = { label: OPS_ROWS[name].label, [a]: x, [b]: y, ratio: x && y ? +(y.opsPerSec / x.opsPerSec).toFixed(2) : null };
  }
  if (memRow) out.mem = { [a]: results[a]?.mem ?? null, [b]: results[b]?.mem ?? null };
  if (opts.json) {
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return;
  }
  const fmt = (v) => (v == null ? '-' : String(v));
  const lat = (s) => (s ? `${s.p50Ms.toFixed(2)} / ${s.p99Ms.toFixed(2)}` : '-');
  // The watch row's ops are events, well under a microsecond each: one decimal below 10.
  const cpu = (s) => (s && Number.isFinite(s.cpuUsPerOp) ? s.cpuUsPerOp.toFixed(s.cpuUsPerOp < 10 ? 1 : 0) : '-');
  const table = [['row', `${a} ops/s`, `${b} ops/s`, `${b}/${a}`, `${a} p50/p99 ms`, `${b} p50/p99 ms`, `${a} / ${b} CPU µs/op`]];
  for (const name of opsRows) {
    const r = out.rows[name];
    const errNote = (s) => (s && s.errors ? ` (${s.errors} err)` : '');
    table.push([r.label, fmt(r[a]?.opsPerSec) + errNote(r[a]), fmt(r[b]?.opsPerSec) + errNote(r[b]), r.ratio == null ? '-' : `${r.ratio.toFixed(2)}x`, lat(r[a]), lat(r[b]), `${cpu(r[a])} / ${cpu(r[b])}`]);
  }
  if (memRow) {
    const ma = out.mem[a];
    const mb_ = out.mem[b];
    const ratio = (f) => (ma && mb_ ? `${(f(mb_) / f(ma)).toFixed(2)}x` : '-');
    const star = (m) => (m?.incomplete ? '*' : '');
    const keys = `${SIZE.load / 1000}k x ${VAL} B`;
    const loadCpu = (m) => (m && Number.isFinite(m.cpuUsPerKey) ? m.cpuUsPerKey.toFixed(0) : '-');
    table.push([`load ${keys} (keys/s)`, fmt(ma?.load.opsPerSec), fmt(mb_?.load.opsPerSec), ratio((m) => m.load.opsPerSec), lat(ma?.load), lat(mb_?.load), `${loadCpu(ma)} / ${loadCpu(mb_)}`]);
    table.push([`RSS 3 s after load (MB)`, ma ? mb(ma.rssBytes) + star(ma) : '-', mb_ ? mb(mb_.rssBytes) + star(mb_) : '-', ratio((m) => m.rssBytes), '(lower is better)', '', '']);
    table.push([`RSS ${IDLE_RSS_AFTER_S} s after, idle (MB)`, ma ? mb(ma.rssIdleBytes) + star(ma) : '-', mb_ ? mb(mb_.rssIdleBytes) + star(mb_) : '-', ratio((m) => m.rssIdleBytes), '(lower is better)', '', '']);
    table.push([`data dir (MB, on disk)`, ma ? mb(ma.dataDirBytes) + star(ma) : '-', mb_ ? mb(mb_.dataDirBytes) + star(mb_) : '-', ratio((m) => m.dataDirBytes), '(lower is better)', '', '']);
  }
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  const lines = [line(table[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...table.slice(1).map(line)];
  process.stdout.write(`\n${meta.title}\n${lines.join('\n')}\n`);
  for (const s of subjects) if (out.mem[s]?.incomplete) process.stdout.write(`* ${s}: ${out.mem[s].incomplete}\n`);
  if (opts.repeat > 1) process.stdout.write(`ops/s and latencies are medians of ${opts.repeat} runs per side, alternating which side goes first.\n`);
  for (const e of errors) process.stdout.write(`FAILED ${e.subject} ${e.row} (round ${e.round + 1}): ${e.error.split('\n')[0]}\n`);
}

async function main() {
  const started = Date.now();
  const loadAtStart = loadavg()[0].toFixed(1);
  let buildNote = '';
  LOADGEN = buildLoadgen();
  if (subjects.includes('etcron')) {
    if (opts.build) buildNote = buildEtcron();
    if (!existsSync(join(ETCRON, '..', '..', 'dist', 'cli', 'main.js'))) throw new Error(`dist/ next to ${ETCRON} is missing; run npm run build`);
  }
  if (!existsSync(ETCD)) throw new Error(`real etcd not found at ${ETCD} (apt-get install etcd-server)`);
  for (let round = 0; round < opts.repeat; round++) {
    const order = round % 2 === 0 ? subjects : [...subjects].reverse();
    for (const s of order) await runSubject(s, round);
  }
  const title = `etcron bench${opts.etcronBin ? ` (etcron = ${opts.etcronBin})` : ''}: ${opts.members} member(s), ${KEYS} keys, ${VAL} B values, ` +
    `${SIZE.n64} ops per 64-client row, ${SIZE.n1} per 1-client row${opts.quick ? ' (--quick)' : ''}; ` +
    `${Math.round((Date.now() - started) / 1000)} s; ${cpus().length} CPUs, load average ${loadAtStart} at start, ${loadavg()[0].toFixed(1)} at end`;
  report({ title: buildNote ? `${title}\nWARNING: ${buildNote}` : title, quick: opts.quick, members: opts.members, repeat: opts.repeat, keys: KEYS, valueBytes: VAL, loadKeys: SIZE.load });
}

main()
  .then(async () => {
    await cleanup();
    process.exit(errors.length > 0 ? 1 : 0);
  })
  .catch(async (e) => {
    log(`error: ${e.stack ?? e}`);
    await cleanup();
    process.exit(1);
  });
