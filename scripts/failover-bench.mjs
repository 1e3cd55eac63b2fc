#!/usr/bin/env node
// Leader failover time (issue 4, "figures for the closing note"): a 3-member real etcd and a
// 3-member `etcron store` in one run; each round SIGKILLs the leader and measures the time until
// a Put succeeds again on a surviving member, then restarts the killed member and waits for the
// cluster to converge. Prints per-round times, median and max for both, and the ratio.
//
// A failed subject keeps its data dirs and member logs for inspection (the path is printed).
//
//   node scripts/failover-bench.mjs [--rounds 5] [--subjects etcd,etcron]
//                                   [--heartbeat 100] [--election 1000]
//
// `npm run build` first (etcron runs from dist/). Servers listen on 127.0.0.1 only.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { freePort } from './lib/free-port.mjs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const ROOT = resolve(import.meta.dirname, '..');
const ETCD = process.env.ETCRON_ETCD_BIN ?? '/usr/bin/etcd';
const ROUNDS_MAX = 100;
const RECOVERY_MAX_MS = 30_000;

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
}

const rounds = Math.min(ROUNDS_MAX, Math.max(1, Number(option('rounds', '5'))));
const subjects = option('subjects', 'etcd,etcron').split(',');
const heartbeatMs = Number(option('heartbeat', '100'));
const electionMs = Number(option('election', '1000'));

const definition = protoLoader.loadSync(['rpc.proto'], {
  includeDirs: [join(ROOT, 'store', 'api', 'proto')], keepCase: true, longs: String, enums: Number, defaults: true,
});
const etcdserverpb = grpc.loadPackageDefinition(definition).etcdserverpb;

const livePids = new Set();
process.on('exit', () => {
  for (const pid of livePids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
});


const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function unary(client, method, request, timeoutMs) {
  return new Promise((resolveCall) => {
    client[method](request, { deadline: Date.now() + timeoutMs }, (err, value) => {
      resolveCall(err ? { ok: false, error: err } : { ok: true, value });
    });
  });
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 100_000; attempt++) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function startCluster(subject) {
  const dir = mkdtempSync(join(tmpdir(), `failover-bench-${subject}-`));
  const members = [];
  for (let i = 0; i < 3; i++) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const member = {
      name: `m${i + 1}`, clientUrl: `http://127.0.0.1:${clientPort}`, peerUrl: `http://127.0.0.1:${peerPort}`,
      dataDir: join(dir, `m${i + 1}`), log: join(dir, `m${i + 1}.log`), child: null, exited: null,
    };
    mkdirSync(member.dataDir, { recursive: true });
    member.kv = new etcdserverpb.KV(`127.0.0.1:${clientPort}`, grpc.credentials.createInsecure());
    member.maintenance = new etcdserverpb.Maintenance(`127.0.0.1:${clientPort}`, grpc.credentials.createInsecure());
    members.push(member);
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const token = `failover-bench-${process.pid}-${subject}`;
  const spawnMember = (member, state) => {
    const args = [
      '--name', member.name, '--data-dir', join(member.dataDir, 'data'),
      '--listen-client-urls', member.clientUrl, '--advertise-client-urls', member.clientUrl,
      '--listen-peer-urls', member.peerUrl, '--initial-advertise-peer-urls', member.peerUrl,
      '--initial-cluster', initialCluster, '--initial-cluster-state', state,
      '--initial-cluster-token', token,
      '--heartbeat-interval', String(heartbeatMs), '--election-timeout', String(electionMs),
    ];
    const [command, argv] = subject === 'etcd'
      ? [ETCD, args] : [process.execPath, [join(ROOT, 'bin', 'etcron'), 'store', ...args]];
    const fd = openSync(member.log, 'a');
    const child = spawn(command, argv, { stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    livePids.add(child.pid);
    member.child = child;
    member.exited = new Promise((r) => child.once('exit', () => { livePids.delete(child.pid); r(); }));
  };
  const kill = async (member) => {
    if (member.child === null) return;
    try { process.kill(member.child.pid, 'SIGKILL'); } catch { /* gone */ }
    await member.exited;
    member.child = null;
  };
  const statuses = async () => {
    const all = await Promise.all(members.map(async (m, index) => {
      if (m.child === null) return null;
      const outcome = await unary(m.maintenance, 'Status', {}, 700);
      return outcome.ok ? { index, id: outcome.value.header.member_id, leader: outcome.value.leader,
        raftIndex: outcome.value.raftIndex } : null;
    }));
    return all.filter((s) => s !== null);
  };
  const leader = () => waitFor(`a ${subject} leader`, async () => {
    const all = await statuses();
    const found = all.find((s) => s.id === s.leader && all.filter((o) => o.leader === s.id).length >= 2);
    return found === undefined ? undefined : found.index;
  }, 30_000);
  const converged = () => waitFor(`${subject} members to converge`, async () => {
    const all = await statuses();
    return all.length === 3 && all.every((s) => s.raftIndex === all[0].raftIndex) ? true : undefined;
  }, 30_000);
  const teardown = async (keep) => {
    for (const m of members) { m.kv.close(); m.maintenance.close(); }
    await Promise.all(members.map(kill));
    if (keep) process.stdout.write(`${subject}: data dirs and member logs kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
  for (const member of members) spawnMember(member, 'new');
  return { subject, members, spawnMember, kill, leader, converged, teardown };
}

/**
 * Kills the leader; resolves with the ms until a Put succeeds on any survivor. A new Put starts
 * on each survivor every ATTEMPT_GAP_MS (each with its own deadline), so the figure is not
 * quantised by a request timeout: a request blocked on the dead leader does not delay the next.
 */
const ATTEMPT_GAP_MS = 25;
async function failoverRound(cluster, round) {
  await cluster.converged();
  const leaderIndex = await cluster.leader();
  const survivors = cluster.members.filter((_, i) => i !== leaderIndex);
  const killed = cluster.members[leaderIndex];
  const started = process.hrtime.bigint();
  const killing = cluster.kill(killed);
  let doneMs = null;
  const inFlight = [];
  for (let attempt = 0; attempt < RECOVERY_MAX_MS / ATTEMPT_GAP_MS && doneMs === null; attempt++) {
    survivors.forEach((member, s) => {
      inFlight.push(unary(member.kv, 'Put',
        { key: Buffer.from('failover-bench'), value: Buffer.from(`${round}-${s}-${attempt}`) }, 5_000)
        .then((put) => {
          if (put.ok && doneMs === null) doneMs = Number(process.hrtime.bigint() - started) / 1e6;
        }));
    });
    await sleep(ATTEMPT_GAP_MS);
  }
  await Promise.all(inFlight);
  await killing;
  if (doneMs === null) throw new Error(`no write succeeded within ${RECOVERY_MAX_MS} ms`);
  cluster.spawnMember(killed, 'existing');
  return doneMs;
}

function summary(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return { median, max: sorted[sorted.length - 1], min: sorted[0] };
}

const results = new Map();
for (const subject of subjects) {
  const cluster = await startCluster(subject);
  let failed = false;
  try {
    await cluster.leader();
    const times = [];
    for (let round = 0; round < rounds; round++) {
      const ms = await failoverRound(cluster, round);
      times.push(ms);
      process.stdout.write(`${subject} round ${round + 1}: ${ms.toFixed(0)} ms\n`);
    }
    results.set(subject, times);
  } catch (err) {
    failed = true;
    process.stdout.write(`${subject}: failed: ${err instanceof Error ? err.message : String(err)}\n`);
  } finally {
    await cluster.teardown(failed);
  }
}

process.stdout.write(`\nleader failover, kill -9 to first successful Put (heartbeat ${heartbeatMs} ms, election ${electionMs} ms, ${rounds} rounds)\n`);
for (const [subject, times] of results) {
  const { median, min, max } = summary(times);
  process.stdout.write(`${subject.padEnd(7)} median ${median.toFixed(0).padStart(6)} ms  min ${min.toFixed(0).padStart(6)} ms  max ${max.toFixed(0).padStart(6)} ms\n`);
}
const etcd = results.get('etcd');
const etcron = results.get('etcron');
if (etcd !== undefined && etcron !== undefined) {
  const ratio = summary(etcron).median / summary(etcd).median;
  process.stdout.write(`ratio etcron/etcd (median): ${ratio.toFixed(2)} (below 1 means etcron recovers faster)\n`);
}
process.exit(0);
