#!/usr/bin/env node
// Where a store's CPU went, from a V8 CPU profile (`node --cpu-prof --cpu-prof-dir=D bin/etcron
// store ...`, load, then stop the store): the busy time (everything but idle) by part of the
// server. A native call (SQLite, a socket write) counts for the part whose JavaScript called it.
//
//   node scripts/profile-summary.mjs PROFILE.cpuprofile [PART]   # PART: the top functions of one part
import { readFileSync } from 'node:fs';

const [file, part] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node scripts/profile-summary.mjs PROFILE.cpuprofile [PART]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map();
for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
const selfUs = new Map();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

/** The nearest frame, this one or a caller, that has a script URL. */
function scriptFrame(node) {
  let cur = node;
  while (cur !== undefined && cur.callFrame.url === '') cur = byId.get(parentOf.get(cur.id));
  return cur;
}

const PARTS = [
  [(u) => u.includes('better-sqlite3') || u.includes('store/mvcc/backend') || u.includes('store/wal/'), 'SQLite and the code that calls it'],
  [(u) => u.includes('store/api/h2'), 'HTTP/2 (store/api/h2)'],
  [(u) => u.includes('store/api/grpc'), 'gRPC framing (store/api/grpc)'],
  [(u) => u.includes('store/api/'), 'handlers, request decoding, response encoding'],
  [(u) => u.includes('store/mvcc'), 'MVCC: key index, values, watch hub'],
  [(u) => u.includes('store/raft') || u.includes('store/server'), 'Raft core, Ready loop, apply'],
  [(u) => u.includes('store/lease'), 'lessor'],
  [(u) => /node:(net|stream|internal\/(net|stream))/.test(u), 'sockets (node:net, streams)'],
  [(u) => u.startsWith('node:internal/modules') || u.startsWith('node:internal/bootstrap'), 'module loading at start'],
  [(u) => u.startsWith('node:'), 'Node internals (buffers, timers, events)'],
];

function partOf(node) {
  const name = node.callFrame.functionName;
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'garbage collection';
  if (name === '(program)') return 'native code V8 does not attribute';
  if (name === 'fdatasync' || name === 'fdatasyncSync') return 'fsync on the event loop (waiting on the disk)';
  const url = scriptFrame(node)?.callFrame.url ?? '';
  for (const [matches, label] of PARTS) if (matches(url)) return label;
  return url === '' ? 'other' : `other: ${url.replace(/^.*?\/(node_modules|dist)\//, '$1/')}`;
}

const parts = new Map();
let busyUs = 0;
let idleUs = 0;
for (const [id, us] of selfUs) {
  const label = partOf(byId.get(id));
  if (label === 'idle') {
    idleUs += us;
    continue;
  }
  busyUs += us;
  parts.set(label, (parts.get(label) ?? 0) + us);
}
const share = (us) => `${((us / busyUs) * 100).toFixed(1).padStart(5)}%`;
console.log(`busy ${(busyUs / 1e6).toFixed(2)} s, idle ${(idleUs / 1e6).toFixed(2)} s (${((idleUs / (busyUs + idleUs)) * 100).toFixed(0)}% of the profile)`);
if (part === undefined) {
  for (const [label, us] of [...parts].sort((a, b) => b[1] - a[1])) if (us / busyUs >= 0.002) console.log(share(us), label);
} else {
  const functions = new Map();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (partOf(node) !== part) continue;
    const where = (scriptFrame(node)?.callFrame.url ?? '').replace(/^.*?\/(node_modules|dist)\//, '$1/');
    const key = `${node.callFrame.functionName || '(anonymous)'} (${where})`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  for (const [key, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(share(us), key);
}
