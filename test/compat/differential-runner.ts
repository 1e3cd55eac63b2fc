// Sends one request sequence to the reference (real etcd) and the subject in lockstep and
// compares every normalised answer field by field; watch streams are compared per watcher at
// the end, after a barrier write that every live watcher must see.
import { seededRandom } from '../../shared/random.js';
import {
  CompatClient, Normalizer, ResponseStream, child, differences, int, list, showBytes, text,
  type Msg, type Outcome, type Plain, type Wire,
} from '../support/compat-client.js';
import { disposeStores, startReference, startSubject } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import {
  nextRequest, observe, resolveLeases, type Profile, type Request, type UnaryRpc, type WatcherInfo, type World, watchPlan, watcherSees,
} from './differential-ops.js';

export interface Side {
  readonly label: 'reference' | 'subject';
  readonly client: CompatClient;
  readonly normalizer: Normalizer;
  /** Lease IDs in grant order, null where this side's grant failed. */
  readonly leases: (string | null)[];
  readonly watch: ResponseStream;
  /** For each watch create, in order, the watch_id of the side's created response. */
  readonly watchIds: string[];
}

export interface Difference {
  readonly step: number;
  readonly request: string;
  readonly lines: readonly string[];
  readonly reference: string;
  readonly subject: string;
}

export interface CaseReport {
  readonly name: string;
  /** The ETCRON_SEED value that replays this case. */
  readonly replaySeed: number;
  readonly steps: number;
  readonly differences: readonly Difference[];
}

const WAIT_MS = 5_000;
const DIFFERENCES_MAX = 80;

interface Performed {
  readonly raw: Msg | null;
  readonly plain: Plain;
}

function service(rpc: UnaryRpc): string {
  if (rpc === 'Lock' || rpc === 'Unlock') return 'v3lockpb.Lock';
  if (['Campaign', 'Proclaim', 'Leader', 'Resign'].includes(rpc)) return 'v3electionpb.Election';
  if (rpc.startsWith('Lease')) return 'Lease';
  if (rpc.startsWith('Member')) return 'Cluster';
  if (['Range', 'Put', 'DeleteRange', 'Txn', 'Compact'].includes(rpc)) return 'KV';
  return 'Maintenance';
}

async function callUnary(side: Side, rpc: UnaryRpc, body: Msg): Promise<Outcome> {
  if (rpc === 'KeepAliveOnce') return side.client.keepAliveOnce(text(body, 'ID'), WAIT_MS);
  return side.client.call(service(rpc), rpc, body);
}

function fromOutcome(side: Side, rpc: string, outcome: Outcome): Performed {
  return { raw: outcome.ok ? outcome.value : null, plain: side.normalizer.outcome(rpc, outcome) };
}

/** Waits for the first response at or after `from` that satisfies `match`; null on timeout. */
async function awaitResponse(side: Side, from: number, match: (response: Msg) => boolean) {
  try {
    let found: Msg | null = null;
    await side.watch.until('a watch response', (responses) => {
      found = responses.slice(from).find(match) ?? null;
      return found !== null;
    }, WAIT_MS);
    return found as Msg | null;
  } catch {
    return null;
  }
}

function createdCount(responses: readonly Msg[]): number {
  return responses.filter((response) => response['created'] === true).length;
}

async function performWatchCreate(side: Side, body: Msg, predictCancel: boolean) {
  const index = side.watchIds.length;
  side.watch.send({ create_request: body });
  let created: Msg | null = null;
  await side.watch.until('a created response', (responses) => {
    if (createdCount(responses) <= index) return false;
    created = responses.filter((response) => response['created'] === true)[index] ?? null;
    return true;
  }, WAIT_MS).catch(() => undefined);
  const response = created as Msg | null;
  if (response === null) {
    side.watchIds.push('none');
    return { raw: null, plain: 'no created response' } satisfies Performed;
  }
  const id = text(response, 'watch_id');
  side.watchIds.push(id);
  let cancel: Plain = null;
  if (predictCancel && response['canceled'] !== true) {
    const from = side.watch.responses.indexOf(response) + 1;
    const found = await awaitResponse(side, from, (r) => r['canceled'] === true && text(r, 'watch_id') === id);
    cancel = found === null ? 'no compaction cancel' : side.normalizer.message('Watch', found);
  }
  return { raw: response, plain: { created: side.normalizer.message('Watch', response), cancel } };
}

async function perform(side: Side, request: Request, world: World): Promise<Performed> {
  switch (request.kind) {
    case 'unary': {
      const body = resolveLeases(request.body, side.leases) as Msg;
      return fromOutcome(side, request.rpc, await callUnary(side, request.rpc, body));
    }
    case 'watch-create': {
      const start = watchPlan(request.body).startRevision;
      const predictCancel = world.compactRevision > 0 && start !== 0 && start < world.compactRevision;
      return performWatchCreate(side, request.body, predictCancel);
    }
    case 'watch-cancel': {
      const id = side.watchIds[request.createIndex] ?? 'none';
      const from = side.watch.responses.length;
      side.watch.send({ cancel_request: { watch_id: id } });
      const found = await awaitResponse(side, from, (r) =>
        r['canceled'] === true && r['created'] !== true && text(r, 'watch_id') === id);
      return { raw: found, plain: found === null ? 'no cancel ack' : side.normalizer.message('Watch', found) };
    }
    case 'watch-cancel-unknown': {
      side.watch.send({ cancel_request: { watch_id: request.watchId } });
      return { raw: null, plain: 'sent' };
    }
    case 'lease-expiry': return performLeaseExpiry(side, request.id, request.keys);
    case 'raw': {
      const outcome = await side.client.callRaw(request.service, request.method, request.bytes);
      return fromOutcome(side, request.method, outcome);
    }
    case 'watch-progress': {
      const from = side.watch.responses.length;
      side.watch.send({ progress_request: {} });
      const found = await awaitResponse(side, from, (r) =>
        text(r, 'watch_id') === '-1' && r['created'] !== true);
      return { raw: found, plain: found === null ? 'no progress' : side.normalizer.message('Watch', found) };
    }
    default: {
      const never: never = request;
      throw new Error(`unknown request ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Lease expiry, the one timing-driven write: nothing else runs until both stores have deleted
 * the keys, so the revision it takes and the events it sends are comparable.
 */
async function performLeaseExpiry(side: Side, id: string, keys: readonly Buffer[]): Promise<Performed> {
  const normalize = (rpc: string, outcome: Outcome): Plain => side.normalizer.outcome(rpc, outcome);
  const grant = await side.client.leaseGrant({ ID: id, TTL: '1' });
  const puts: Plain[] = [];
  for (const key of keys) puts.push(normalize('Put', await side.client.put({ key, value: Buffer.from('leased'), lease: id })));
  const startedMs = Date.now();
  let remaining = -1;
  while (Date.now() - startedMs < 15_000) {
    const found = await Promise.all(keys.map((key) => side.client.range({ key, count_only: true })));
    remaining = found.reduce((sum, outcome) => sum + (outcome.ok ? int(outcome.value, 'count') : 1), 0);
    if (remaining === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const after = await side.client.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true });
  const ttl = await side.client.leaseTimeToLive({ ID: id });
  return {
    raw: after.ok ? after.value : null,
    plain: {
      grant: normalize('LeaseGrant', grant), puts, remaining,
      after: normalize('Range', after), timeToLive: normalize('LeaseTimeToLive', ttl),
    },
  };
}

/** A request as readable text: bytes shown with \xNN escapes, at most 600 characters. */
export function showRequest(request: Request): string {
  const show = (value: Wire): Wire => {
    if (Buffer.isBuffer(value)) return showBytes(value);
    if (Array.isArray(value)) return value.map((item: Wire) => show(item));
    if (value === null || value === undefined || typeof value !== 'object') return value;
    const out: Record<string, Wire> = {};
    for (const [name, item] of Object.entries(value)) out[name] = show(item);
    return out;
  };
  const body = request.kind === 'unary' || request.kind === 'watch-create' ? request.body : {};
  if (request.kind === 'raw') return `raw ${request.service}/${request.method} ${showBytes(request.bytes)}`;
  if (request.kind === 'lease-expiry') return `lease-expiry ${request.id} ${request.keys.map(showBytes).join(' ')}`;
  const name = request.kind === 'unary' ? request.rpc : request.kind;
  const extra = request.kind === 'watch-cancel' ? ` #${request.createIndex}` : '';
  const shown = `${name}${extra} ${JSON.stringify(show(body))}`;
  return shown.length > 600 ? `${shown.slice(0, 600)}…` : shown;
}

function clip(value: Plain): string {
  const shown = JSON.stringify(value);
  return shown.length > 1200 ? `${shown.slice(0, 1200)}…` : shown;
}

/** Runs one request on both sides, compares, and lets the world learn from the reference. */
export async function step(
  sides: readonly [Side, Side], request: Request, world: World, found: Difference[],
): Promise<readonly [Performed, Performed]> {
  const [reference, subject] = sides;
  const startedMs = Date.now();
  const answers = await Promise.all([perform(reference, request, world), perform(subject, request, world)]);
  const [left, right] = answers;
  if (process.env['ETCRON_COMPAT_TRACE'] !== undefined && Date.now() - startedMs > 300) {
    console.error(`slow step ${world.opIndex} (${Date.now() - startedMs} ms): ${showRequest(request)}`);
  }
  const lines = differences(left.plain, right.plain);
  if (process.env['ETCRON_COMPAT_TRACE'] === 'all') {
    console.error(`step ${world.opIndex}: ${showRequest(request)}\n  etcd:    ${clip(left.plain)}\n  subject: ${clip(right.plain)}`);
  }
  if (lines.length > 0) {
    found.push({
      step: world.opIndex, request: showRequest(request), lines,
      reference: clip(left.plain), subject: clip(right.plain),
    });
  }
  learn(sides, request, world, answers);
  world.opIndex += 1;
  return answers;
}

function learn(sides: readonly [Side, Side], request: Request, world: World, answers: readonly [Performed, Performed]) {
  const [reference, subject] = sides;
  const [left, right] = answers;
  if (request.kind === 'unary') {
    observe(world, request, left.raw);
    if (request.rpc === 'LeaseGrant' && left.raw !== null) {
      reference.leases.push(text(left.raw, 'ID'));
      subject.leases.push(right.raw === null ? null : text(right.raw, 'ID'));
    }
  } else if (request.kind === 'watch-create') {
    const id = reference.watchIds[world.creates] ?? 'none';
    const created = left.raw;
    const isCancelled = created === null || created['canceled'] === true || predictsCancel(request, world);
    const plan = watchPlan(request.body);
    const racyRevision = world.compactRevision > 0 && plan.startRevision === world.compactRevision ? world.compactRevision : 0;
    world.watchers.push({ ...plan, createIndex: world.creates, watchId: id, isLive: !isCancelled, racyRevision });
    world.usedWatchIds.add(id);
    world.creates += 1;
  } else if (request.kind === 'lease-expiry' && left.raw !== null) {
    world.revision = Math.max(world.revision, int(child(left.raw, 'header'), 'revision'));
  } else if (request.kind === 'watch-cancel') {
    const watcher = world.watchers.find((w) => w.createIndex === request.createIndex);
    if (watcher !== undefined) watcher.isLive = false;
  }
}

function predictsCancel(request: Extract<Request, { kind: 'watch-create' }>, world: World) {
  const start = watchPlan(request.body).startRevision;
  return world.compactRevision > 0 && start !== 0 && start < world.compactRevision;
}

export interface CaseOptions {
  readonly name: string;
  readonly seed: number;
  readonly replaySeed: number;
  readonly profile: Profile;
  readonly steps: number;
  readonly watchersMax: number;
  /** Fixed requests run before the random ones. */
  readonly prelude?: readonly Request[];
}

function openSide(label: 'reference' | 'subject', store: StoreProcess): Side {
  const client = new CompatClient(store.endpoint);
  const normalizer = new Normalizer();
  normalizer.nameUrl(store.clientUrl, 'client-url');
  normalizer.nameUrl(store.peerUrl, 'peer-url');
  return { label, client, normalizer, leases: [], watch: client.watch(), watchIds: [] };
}

const EPOCHS_MAX = 6;

/**
 * Runs the case in epochs: a fresh reference and subject each time. An epoch ends when the
 * stores' contents diverge (after that every answer would differ by the revision alone) or a
 * store dies; the walk then goes on with the same random stream on a new pair of stores, so
 * one run reports several independent differences instead of one and its echoes.
 */
export async function runCase(options: CaseOptions): Promise<CaseReport> {
  const rng = seededRandom(options.seed);
  const found: Difference[] = [];
  let forced = [...(options.prelude ?? [])];
  let remaining = options.steps + forced.length;
  let done = 0;
  for (let epoch = 0; epoch < EPOCHS_MAX && remaining > 0 && found.length < DIFFERENCES_MAX; epoch++) {
    const world: World = {
      rng, revision: 1, compactRevision: 0, leases: [], watchers: [], creates: 0,
      usedWatchIds: new Set(), opIndex: done, forced,
    };
    // Probes not reached in a diverged epoch run at the start of the next one.
    const isDiverged = await runEpoch(options, world, remaining, found);
    forced = [...world.forced];
    remaining -= world.opIndex - done;
    done = world.opIndex;
    if (!isDiverged) break;
  }
  return { name: options.name, replaySeed: options.replaySeed, steps: done, differences: found };
}

async function runEpoch(options: CaseOptions, world: World, steps: number, found: Difference[]) {
  let referenceStore: StoreProcess | undefined;
  let subjectStore: StoreProcess | undefined;
  const sides: Side[] = [];
  try {
    [referenceStore, subjectStore] = await Promise.all([startReference(), startSubject()]);
    const pair = [openSide('reference', referenceStore), openSide('subject', subjectStore)] as const;
    sides.push(...pair);
    return await runSequence(pair, options, world, steps, [referenceStore, subjectStore], found);
  } finally {
    for (const side of sides) {
      side.watch.end();
      side.client.close();
    }
    await disposeStores(referenceStore, subjectStore);
  }
}

/** Compares every key (values, revisions, leases) and the current revision of both stores. */
async function stateDifferences(sides: readonly [Side, Side]): Promise<string[]> {
  const all = { key: Buffer.from([0]), range_end: Buffer.from([0]) };
  const answers = await Promise.all(sides.map(async (side) => side.normalizer.outcome('Range', await side.client.range(all))));
  return differences(answers[0], answers[1]);
}

/** Returns true when the epoch ended because the stores diverged or one of them died. */
async function runSequence(
  sides: readonly [Side, Side], options: CaseOptions, world: World, steps: number,
  stores: readonly [StoreProcess, StoreProcess], found: Difference[],
): Promise<boolean> {
  const first = world.opIndex;
  while (world.opIndex - first < steps && found.length < DIFFERENCES_MAX) {
    const request = relativeStart(await nextRequest(world, options.profile, sides[0].client, options.watchersMax), world);
    const revision = world.revision;
    const before = found.length;
    if (request.kind === 'watch-cancel') {
      // etcd answers a cancel on a control channel that can overtake events it has not sent yet,
      // so the last events before a cancel were a race on etcd's side: cancel only once the
      // watcher has delivered everything written so far, on both sides.
      const watcher = world.watchers.find((w) => w.createIndex === request.createIndex && w.isLive);
      if (watcher !== undefined) await syncWatchers(sides, world, [watcher], found);
    }
    await step(sides, request, world, found);
    const crashed = stores.find((store) => store.child.exitCode !== null || store.child.signalCode !== null);
    if (crashed !== undefined) {
      const role = crashed === stores[0] ? 'the reference etcd' : `the subject (${crashed.kind})`;
      found.push({
        step: world.opIndex - 1, request: showRequest(request), reference: '', subject: '',
        lines: [`${role} exited (${crashed.child.exitCode ?? crashed.child.signalCode}) after this request; its output ends:`,
          ...crashTail(crashed.output())],
      });
      return true;
    }
    if (found.length > before) {
      const diverged = await stateDifferences(sides);
      if (diverged.length > 0) {
        found.push({
          step: world.opIndex - 1, request: 'stores diverged after the step above; new epoch on fresh stores',
          lines: diverged.slice(0, 6), reference: '', subject: '',
        });
        // Up to the revision both stores agreed on, the watchers must still agree.
        await compareWatchers(sides, world, found, revision);
        return true;
      }
    }
    if (request.kind !== 'watch-create') continue;
    const watcher = world.watchers[world.watchers.length - 1];
    const start = watchPlan(request.body).startRevision;
    if (watcher?.isLive === true && start > 0 && start <= revision) {
      await syncWatchers(sides, world, [watcher], found);
    }
  }
  if (found.length < DIFFERENCES_MAX) await compareWatchers(sides, world, found);
  return false;
}

interface BarrierWrite { readonly key: Buffer; readonly isDelete: boolean; readonly revisions: readonly number[] }

/**
 * Writes each watcher's key (put, then delete) through both sides, then waits until every
 * watcher has delivered the last barrier write it can see. Events reach one watcher in revision
 * order, so afterwards its stream is complete up to that revision. After a create with a past
 * start this also ends the catch-up before the next step: etcd syncs lagging watchers every
 * 100 ms, and a compaction racing that would cancel them.
 */
async function syncWatchers(
  sides: readonly [Side, Side], world: World, watchers: readonly WatcherInfo[], found: Difference[],
  areStepsCompared = true,
) {
  // On stores that already diverged the barrier writes differ by revision alone: not reported.
  const stepFound = areStepsCompared ? found : [];
  const writes: BarrierWrite[] = [];
  for (const watcher of watchers) {
    const key = watcher.key.length === 0 ? Buffer.from([0]) : watcher.key;
    const put: Request = { kind: 'unary', rpc: 'Put', body: { key, value: Buffer.from('barrier') } };
    const remove: Request = { kind: 'unary', rpc: 'DeleteRange', body: { key } };
    for (const [request, isDelete] of [[put, false], [remove, true]] as const) {
      const answers = await step(sides, request, world, stepFound);
      const revisions = answers.map((answer) => int(child(answer.raw, 'header'), 'revision'));
      writes.push({ key, isDelete, revisions });
    }
  }
  for (const watcher of watchers) {
    for (const [position, side] of sides.entries()) {
      const seen = writes.filter((write) =>
        watcherSees(watcher, write.key, write.isDelete, write.revisions[position] ?? 0));
      const need = Math.max(0, ...seen.map((write) => write.revisions[position] ?? 0));
      if (need > 0) await awaitWatcher(side, watcher, need, world, found);
    }
  }
}

async function awaitWatcher(side: Side, watcher: WatcherInfo, need: number, world: World, found: Difference[]) {
  const id = side.watchIds[watcher.createIndex] ?? 'none';
  const ok = await side.watch
    .until(`watcher ${id} to reach ${need}`, () => lastEventRevision(responsesOf(side, id)) >= need, WAIT_MS)
    .then(() => true, () => false);
  if (ok) return;
  found.push({
    step: world.opIndex, request: `watch #${watcher.createIndex} barrier`, reference: '', subject: '',
    lines: [
      `${side.label}: watcher ${id} did not deliver events up to revision ${need}; its last entries:`,
      ...transcript(side, id).slice(-6).map((entry) => clip(entry)),
    ],
  });
}

function responsesOf(side: Side, watchId: string): Msg[] {
  return side.watch.responses.filter((response) => text(response, 'watch_id') === watchId);
}

function lastEventRevision(responses: readonly Msg[]): number {
  let last = 0;
  for (const response of responses) {
    for (const event of list(response, 'events')) last = Math.max(last, int(child(event, 'kv'), 'mod_revision'));
  }
  return last;
}

/**
 * etcd fills a watcher's prev_kv when it sends the event, by reading the key at revision − 1; a
 * compaction issued after the write but before that send leaves prev_kv empty. Which one wins is
 * timing inside etcd, so for events whose revision − 1 lies below a compaction issued later, the
 * prev_kv of both sides is masked (the event itself is still compared).
 */
const PREV_KV_RACED = '<prev_kv may have been compacted before etcd sent it>';

function maskRacedPrevKv(event: Msg, compactRevision: number): Msg {
  if (compactRevision <= 0 || int(child(event, 'kv'), 'mod_revision') - 1 >= compactRevision) return event;
  return { ...event, prev_kv: PREV_KV_RACED };
}

/** A watcher's stream as a flat list: status responses (created, cancel) and single events. */
function transcript(
  side: Side, watchId: string, maxRevision = Number.MAX_SAFE_INTEGER, compactRevision = 0, racyRevision = 0,
): Plain[] {
  const out: Plain[] = [];
  for (const response of responsesOf(side, watchId)) {
    const events = list(response, 'events');
    if (events.length === 0) {
      if (int(child(response, 'header'), 'revision') <= maxRevision) {
        out.push(side.normalizer.message('Watch', { ...response, events: null }));
      }
      continue;
    }
    for (const event of events) {
      const revision = int(child(event, 'kv'), 'mod_revision');
      if (revision <= maxRevision && revision !== racyRevision) {
        out.push(side.normalizer.message('Watch', maskRacedPrevKv(event, compactRevision)));
      }
    }
  }
  // Fragment boundaries are the server's choice (clients reassemble); whether it split is not.
  if (responsesOf(side, watchId).some((response) => response['fragment'] === true)) out.push('fragmented');
  return out;
}

/** Checks etcd's watch invariants on one side: revisions rise, one revision is never split. */
function invariantViolations(side: Side, watchId: string): string[] {
  const problems: string[] = [];
  let previousLast = 0;
  for (const response of responsesOf(side, watchId)) {
    const revisions = list(response, 'events').map((event) => int(child(event, 'kv'), 'mod_revision'));
    if (revisions.length === 0) continue;
    const first = revisions[0] ?? 0;
    if (first <= previousLast) problems.push(`revision ${first} after ${previousLast} (split or out of order)`);
    for (let i = 1; i < revisions.length; i++) {
      if ((revisions[i] ?? 0) < (revisions[i - 1] ?? 0)) problems.push(`revisions fall inside a response`);
    }
    previousLast = revisions[revisions.length - 1] ?? previousLast;
  }
  return problems;
}

async function compareWatchers(
  sides: readonly [Side, Side], world: World, found: Difference[], agreedRevision = Number.MAX_SAFE_INTEGER,
) {
  const live = world.watchers.filter((watcher) => watcher.isLive);
  await syncWatchers(sides, world, live, found, agreedRevision === Number.MAX_SAFE_INTEGER);
  const [reference, subject] = sides;
  for (const watcher of world.watchers) {
    const leftId = reference.watchIds[watcher.createIndex] ?? 'none';
    const rightId = subject.watchIds[watcher.createIndex] ?? 'none';
    if (leftId === '-1') continue;
    const left = transcript(reference, leftId, agreedRevision, world.compactRevision, watcher.racyRevision ?? 0);
    const right = transcript(subject, rightId, agreedRevision, world.compactRevision, watcher.racyRevision ?? 0);
    if (process.env['ETCRON_COMPAT_TRACE'] === 'all') {
      console.error(`watch #${watcher.createIndex}: ${left.length}/${right.length} entries, last ${clip(left[left.length - 1] ?? null)}`);
    }
    const lines = differences(left, right);
    for (const side of sides) {
      const id = side.watchIds[watcher.createIndex] ?? 'none';
      for (const problem of invariantViolations(side, id)) lines.push(`${side.label} watch ${id}: ${problem}`);
    }
    if (lines.length > 0) {
      found.push({
        step: world.opIndex, request: `watch #${watcher.createIndex} (ids ${leftId}/${rightId}) stream`,
        lines, reference: clip(left), subject: clip(right),
      });
    }
  }
  const strays = differences(transcript(reference, '-1', agreedRevision), transcript(subject, '-1', agreedRevision));
  if (strays.length > 0) {
    found.push({ step: world.opIndex, request: 'watch_id -1 responses', lines: strays, reference: '', subject: '' });
  }
}

export function formatReport(report: CaseReport): string {
  const lines = [
    `case ${report.name}: ${report.differences.length} differing step(s) in ${report.steps} steps`,
    `replay with ETCRON_SEED=${report.replaySeed} (left = real etcd, right = subject)`,
  ];
  for (const difference of report.differences.slice(0, 60)) {
    lines.push(`- step ${difference.step}: ${difference.request}`);
    for (const line of difference.lines.slice(0, 8)) lines.push(`    ${line}`);
    if (difference.reference !== '' || difference.subject !== '') {
      lines.push(`    etcd:    ${difference.reference}`, `    subject: ${difference.subject}`);
    }
  }
  return lines.join('\n');
}

/** The panic (or the last lines) of a store's output. */
function crashTail(output: string): string[] {
  const lines = output.split('\n');
  const panicAt = lines.findIndex((line) => /panic|fatal|error/i.test(line) && !line.includes('"level":"info"'));
  return panicAt >= 0 ? lines.slice(panicAt, panicAt + 14) : lines.slice(-20);
}

/** A probe's watch start "$rev-N" means N revisions before the current one. */
function relativeStart(request: Request, world: World): Request {
  if (request.kind !== 'watch-create') return request;
  const start = request.body['start_revision'];
  if (typeof start !== 'string' || !start.startsWith('$rev-')) return request;
  const revision = Math.max(1, world.revision - Number(start.slice(5)));
  return { ...request, body: { ...request.body, start_revision: String(revision) } };
}
