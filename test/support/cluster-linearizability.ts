// Linearizability checking of client histories recorded against a store cluster.
// Two independent checkers:
// - Checker A trusts the store's revisions and the members' final MVCC log (ground truth) and
//   checks, in O(n log n), that every acknowledged write is in the log at its revision, that
//   revisions respect real time, and that every read and failed compare matches the log.
// - Checker B trusts nothing the store reported about revisions: a Wing–Gong search with Lowe's
//   cache over a per-key model of value and version (P-compositionality: keys are independent
//   because every operation touches one key). A bounded search that gives up is "unknown", which
//   callers must treat as a failure.
// Every put value is unique in a history, so a value read identifies the write that made it.

/** Single-key operations, each a real etcd request (see test/support/cluster-workload.ts). */
export type OpInput =
  | { readonly kind: 'get'; readonly key: string }
  | { readonly kind: 'put'; readonly key: string; readonly value: string }
  /** Txn: if version(key) == expectVersion then put(value). */
  | { readonly kind: 'cas'; readonly key: string; readonly expectVersion: number; readonly value: string }
  /** Txn: if value(key) == expectValue then put(value) else get(key). */
  | { readonly kind: 'txn'; readonly key: string; readonly expectValue: string; readonly value: string };

/** What a successful call returned; `revision` is the response header's revision. */
export type OpOutput =
  | { readonly kind: 'get'; readonly revision: number; readonly value: string | null;
      readonly version: number; readonly modRevision: number }
  | { readonly kind: 'put'; readonly revision: number }
  | { readonly kind: 'cas'; readonly revision: number; readonly succeeded: boolean }
  | { readonly kind: 'txn'; readonly revision: number; readonly succeeded: boolean;
      /** The else branch's read (when not succeeded). */
      readonly value: string | null; readonly version: number; readonly modRevision: number };

/**
 * One call. `status`: 'ok' with an output; 'failed' for a definite error (the request had no
 * effect); 'unknown' for a timeout or an indeterminate error (it may or may not have happened,
 * at any time after its call: its return time is +infinity).
 */
export interface HistoryOp {
  readonly id: number;
  readonly client: number;
  readonly input: OpInput;
  readonly callNs: number;
  readonly returnNs: number; // Infinity unless status is 'ok' or 'failed'
  readonly status: 'ok' | 'failed' | 'unknown';
  readonly output: OpOutput | null;
  /** For diagnostics: the member endpoint and the error text, if any. */
  readonly endpoint?: string;
  readonly error?: string;
}

/** One change in the ground-truth MVCC log: a put (value) or a delete (value null). */
export interface LogEvent {
  readonly revision: number;
  readonly key: string;
  readonly value: string | null;
  readonly version: number;
  readonly createRevision: number;
}

export interface KeyState {
  readonly value: string | null;
  readonly version: number;
  readonly modRevision: number;
}

const ABSENT: KeyState = { value: null, version: 0, modRevision: 0 };

function writtenValue(input: OpInput): string | null {
  return input.kind === 'get' ? null : input.value;
}

function isCompareTrue(input: OpInput, state: KeyState): boolean {
  switch (input.kind) {
    case 'get':
    case 'put':
      return true;
    case 'cas':
      return state.version === input.expectVersion;
    case 'txn':
      // etcd 3.4 applyCompare: a value compare on a key that does not exist is always false.
      return state.value !== null && state.value === input.expectValue;
    default: {
      const never: never = input;
      throw new Error(`unknown op ${String(never)}`);
    }
  }
}

/** Whether the op, if it returned `output`, changed its key. */
function didWrite(input: OpInput, output: OpOutput | null): boolean {
  if (input.kind === 'get') return false;
  if (input.kind === 'put') return true;
  if (output === null) return true; // unknown: decided by the log
  return output.kind !== 'get' && output.kind !== 'put' && output.succeeded;
}

// ---------------------------------------------------------------------------------------------
// Ground truth: per-key timelines of the MVCC log.

export class KeyTimeline {
  private readonly revisions: number[] = [];
  private readonly states: KeyState[] = [];

  add(event: LogEvent): void {
    const last = this.revisions[this.revisions.length - 1];
    if (last !== undefined && event.revision <= last) {
      throw new Error(`log not in revision order for ${event.key}: ${event.revision} after ${last}`);
    }
    this.revisions.push(event.revision);
    this.states.push(event.value === null
      ? ABSENT
      : { value: event.value, version: event.version, modRevision: event.revision });
  }

  /** The key's state at `revision` (the last change at or below it). */
  at(revision: number): KeyState {
    let low = 0;
    let high = this.revisions.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.revisions[middle] as number) <= revision) low = middle + 1;
      else high = middle;
    }
    return low === 0 ? ABSENT : (this.states[low - 1] as KeyState);
  }
}

export interface GroundTruth {
  readonly timelines: ReadonlyMap<string, KeyTimeline>;
  /** value -> the event that wrote it. */
  readonly byValue: ReadonlyMap<string, LogEvent>;
  readonly problems: readonly string[];
}

/** Indexes a log and checks it on its own: revisions rise, versions count, values unique. */
export function groundTruth(log: readonly LogEvent[]): GroundTruth {
  const timelines = new Map<string, KeyTimeline>();
  const byValue = new Map<string, LogEvent>();
  const problems: string[] = [];
  let lastRevision = 0;
  const lastState = new Map<string, KeyState>();
  for (const event of log) {
    if (event.revision < lastRevision) {
      problems.push(`log revision went backwards: ${event.revision} after ${lastRevision}`);
    }
    lastRevision = Math.max(lastRevision, event.revision);
    const before = lastState.get(event.key) ?? ABSENT;
    if (event.value !== null && event.version !== before.version + 1) {
      problems.push(`log: ${event.key}@${event.revision} has version ${event.version} ` +
        `after ${before.version}`);
    }
    if (event.value !== null) {
      const earlier = byValue.get(event.value);
      if (earlier !== undefined) {
        problems.push(`log: value ${event.value} written twice, at ${earlier.revision} ` +
          `and ${event.revision}`);
      }
      byValue.set(event.value, event);
    }
    let timeline = timelines.get(event.key);
    if (timeline === undefined) {
      timeline = new KeyTimeline();
      timelines.set(event.key, timeline);
    }
    try {
      timeline.add(event);
    } catch (err) {
      problems.push(String(err));
    }
    lastState.set(event.key, event.value === null
      ? ABSENT : { value: event.value, version: event.version, modRevision: event.revision });
  }
  return { timelines, byValue, problems };
}

// ---------------------------------------------------------------------------------------------
// Checker A: revision order against the ground truth.

export interface CheckResult {
  readonly isOk: boolean;
  readonly violations: readonly string[];
}

const VIOLATIONS_MAX = 50;

function describe(op: HistoryOp): string {
  const input = op.input;
  const args = input.kind === 'get' ? input.key
    : input.kind === 'put' ? `${input.key}=${input.value}`
    : input.kind === 'cas' ? `${input.key} v${input.expectVersion}->${input.value}`
    : `${input.key} ${input.expectValue}->${input.value}`;
  const output = op.output === null ? op.status : JSON.stringify(op.output);
  const where = op.endpoint === undefined ? '' : ` @${op.endpoint}`;
  return `#${op.id} c${op.client} ${input.kind}(${args}) -> ${output}${where}`;
}

/** A point of the real-time order: an op with a revision it observed or created. */
interface Point {
  readonly op: HistoryOp;
  readonly revision: number;
  readonly isWrite: boolean;
}

export function checkRevisionOrder(history: readonly HistoryOp[], log: readonly LogEvent[]): CheckResult {
  const truth = groundTruth(log);
  const violations: string[] = [...truth.problems];
  const add = (text: string): void => {
    if (violations.length < VIOLATIONS_MAX) violations.push(text);
  };
  const ours = new Map<string, HistoryOp>();
  for (const op of history) {
    const value = writtenValue(op.input);
    if (value === null) continue;
    if (ours.has(value)) add(`history: value ${value} used by two ops`);
    ours.set(value, op);
  }
  // Every change in the log must come from a write that may have taken effect.
  for (const event of truth.byValue.values()) {
    const op = ours.get(event.value as string);
    if (op === undefined) {
      add(`log has ${event.key}=${event.value}@${event.revision}, a value no client wrote`);
    } else if (op.status === 'failed' || !didWrite(op.input, op.output)) {
      add(`log has ${event.key}=${event.value}@${event.revision} from an op that reported ` +
        `no effect: ${describe(op)}`);
    } else if (op.input.key !== event.key) {
      add(`log has ${event.value} under ${event.key}, written to ${op.input.key}`);
    }
  }
  const points: Point[] = [];
  for (const op of history) {
    if (op.status === 'failed') continue;
    const timeline = truth.timelines.get(op.input.key);
    const stateAt = (revision: number): KeyState => timeline?.at(revision) ?? ABSENT;
    const value = writtenValue(op.input);
    if (op.status === 'unknown') {
      const event = value === null ? undefined : truth.byValue.get(value);
      if (event !== undefined) {
        if (op.input.kind !== 'put' && !isCompareTrue(op.input, stateAt(event.revision - 1))) {
          add(`${describe(op)} took effect at ${event.revision} though its compare was false there`);
        }
        points.push({ op, revision: event.revision, isWrite: true });
      }
      continue;
    }
    const output = op.output;
    if (output === null) {
      add(`${describe(op)} is ok without an output`);
      continue;
    }
    const revision = output.revision;
    if (didWrite(op.input, output)) {
      const event = value === null ? undefined : truth.byValue.get(value);
      if (event === undefined) {
        add(`lost acknowledged write: ${describe(op)} is not in the log`);
      } else if (event.revision !== revision) {
        add(`acknowledged write ${describe(op)} is in the log at ${event.revision}, not at ${revision}`);
      } else if (op.input.kind !== 'put' && !isCompareTrue(op.input, stateAt(revision - 1))) {
        const before = stateAt(revision - 1);
        add(`${describe(op)} succeeded though at ${revision - 1} the key had ` +
          `version ${before.version} value ${before.value}`);
      }
      points.push({ op, revision, isWrite: true });
      continue;
    }
    const state = stateAt(revision);
    if (output.kind === 'get' || (output.kind === 'txn' && !output.succeeded)) {
      const seen = output;
      if (seen.value !== state.value || seen.version !== state.version ||
          (seen.value !== null && seen.modRevision !== state.modRevision)) {
        add(`${describe(op)} does not match the log at ${revision}: ${JSON.stringify(state)}`);
      }
      if (seen.value !== null && !truth.byValue.has(seen.value)) {
        add(`${describe(op)} read a value that is not in the log`);
      }
    }
    if ((output.kind === 'cas' || output.kind === 'txn') && !output.succeeded &&
        isCompareTrue(op.input, state)) {
      add(`${describe(op)} failed though its compare held at ${revision}: ${JSON.stringify(state)}`);
    }
    points.push({ op, revision, isWrite: false });
  }
  checkRealTime(points, add);
  return { isOk: violations.length === 0, violations };
}

/**
 * If a returned before b was called, b's revision is at least a's, and above it when b wrote.
 * Sorted by return time, a prefix maximum answers "the highest revision returned before t".
 */
function checkRealTime(points: readonly Point[], add: (text: string) => void): void {
  const byReturn = points.filter((p) => Number.isFinite(p.op.returnNs))
    .sort((a, b) => a.op.returnNs - b.op.returnNs);
  const prefixMax: Point[] = [];
  let best: Point | undefined;
  for (const point of byReturn) {
    if (best === undefined || point.revision > best.revision) best = point;
    prefixMax.push(best);
  }
  for (const point of points) {
    let low = 0;
    let high = byReturn.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((byReturn[middle] as Point).op.returnNs < point.op.callNs) low = middle + 1;
      else high = middle;
    }
    if (low === 0) continue;
    const before = prefixMax[low - 1] as Point;
    const isBad = point.isWrite ? point.revision <= before.revision : point.revision < before.revision;
    if (isBad) {
      const what = point.isWrite ? 'write revision' : 'stale read: revision';
      add(`${what} ${point.revision} of ${describe(point.op)} is not after ${before.revision} of ` +
        `${describe(before.op)}, which returned before it was called`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Checker B: Wing–Gong search with Lowe's cache, per key.

export type Verdict = 'linearizable' | 'not-linearizable' | 'unknown';

export interface KeyVerdict {
  readonly key: string;
  readonly verdict: Verdict;
  readonly ops: number;
  readonly steps: number;
  /** The most ops linearized on any path (a hint where a violation is). */
  readonly deepest: number;
}

export interface SearchResult {
  readonly verdict: Verdict;
  readonly keys: readonly KeyVerdict[];
}

interface ModelState {
  readonly value: string | null;
  readonly version: number;
}

/** The model's step: the state after `op` if it may return its output in `state`, else null. */
function step(state: ModelState, op: HistoryOp): ModelState | null {
  const input = op.input;
  const output = op.status === 'unknown' ? null : op.output;
  const applied: ModelState = input.kind === 'get'
    ? state
    : { value: input.value, version: state.version + 1 };
  const probe: KeyState = { value: state.value, version: state.version, modRevision: 0 };
  switch (input.kind) {
    case 'get':
      if (output === null || output.kind !== 'get') return null;
      return output.value === state.value && output.version === state.version ? state : null;
    case 'put':
      return output === null || output.kind === 'put' ? applied : null;
    case 'cas':
    case 'txn': {
      const holds = isCompareTrue(input, probe);
      if (output === null) return holds ? applied : state;
      if (output.kind !== input.kind || output.succeeded !== holds) return null;
      if (holds) return applied;
      if (output.kind === 'txn' && (output.value !== state.value || output.version !== state.version)) {
        return null;
      }
      return state;
    }
    default: {
      const never: never = input;
      throw new Error(`unknown op ${String(never)}`);
    }
  }
}

interface Entry {
  readonly isCall: boolean;
  readonly slot: number; // index of the op within the key's ops
  readonly timeNs: number;
  prev: Entry | null;
  next: Entry | null;
  match: Entry | null; // call -> its return
}

function lift(call: Entry): void {
  const ret = call.match as Entry;
  (call.prev as Entry).next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  (ret.prev as Entry).next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match as Entry;
  (ret.prev as Entry).next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  (call.prev as Entry).next = call;
  if (call.next !== null) call.next.prev = call;
}

function stateKey(state: ModelState): string {
  return `${state.version}\u0000${state.value ?? '\u0001'}`;
}

/** Searches one key's ops; `stepsMax` bounds the work (then the verdict is 'unknown'). */
export function searchKey(key: string, ops: readonly HistoryOp[], stepsMax: number,
  initial: ModelState = { value: null, version: 0 }): KeyVerdict {
  const entries: Entry[] = [];
  ops.forEach((op, slot) => {
    const call: Entry = { isCall: true, slot, timeNs: op.callNs, prev: null, next: null, match: null };
    const ret: Entry = {
      isCall: false, slot, timeNs: op.status === 'unknown' ? Infinity : op.returnNs,
      prev: null, next: null, match: null,
    };
    call.match = ret;
    entries.push(call, ret);
  });
  // Calls before returns on ties: ops that touch in time count as concurrent.
  entries.sort((a, b) => (a.timeNs - b.timeNs) || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Entry = { isCall: false, slot: -1, timeNs: -Infinity, prev: null, next: null, match: null };
  let previous = head;
  for (const entry of entries) {
    previous.next = entry;
    entry.prev = previous;
    previous = entry;
  }
  const words = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  const cache = new Set<string>();
  const stack: { entry: Entry; state: ModelState }[] = [];
  let state = initial;
  let entry = head.next;
  let steps = 0;
  let deepest = 0;
  while (head.next !== null) {
    if (++steps > stepsMax) return { key, verdict: 'unknown', ops: ops.length, steps, deepest };
    if (entry === null) throw new Error('search ran off the end of the entry list');
    if (entry.isCall) {
      const next = step(state, ops[entry.slot] as HistoryOp);
      if (next !== null) {
        const word = entry.slot >>> 5;
        const bit = 1 << (entry.slot & 31);
        words[word] = (words[word] as number) | bit;
        const cacheKey = `${words.join(',')}|${stateKey(next)}`;
        if (!cache.has(cacheKey)) {
          cache.add(cacheKey);
          stack.push({ entry, state });
          deepest = Math.max(deepest, stack.length);
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        words[word] = (words[word] as number) & ~bit;
      }
      entry = entry.next;
      continue;
    }
    // A return whose call is not linearized yet: this path is dead; undo the last choice.
    const top = stack.pop();
    if (top === undefined) return { key, verdict: 'not-linearizable', ops: ops.length, steps, deepest };
    const word = top.entry.slot >>> 5;
    words[word] = (words[word] as number) & ~(1 << (top.entry.slot & 31));
    state = top.state;
    unlift(top.entry);
    entry = top.entry.next;
  }
  return { key, verdict: 'linearizable', ops: ops.length, steps, deepest };
}

export interface SearchOptions {
  readonly stepsMaxPerKey?: number;
  /**
   * Values known to be in the members' log. An unknown write whose value is absent never took
   * effect and is dropped, as etcd's robustness tests resolve failed requests from the WAL.
   */
  readonly presentValues?: ReadonlySet<string>;
}

/** Checker B over a whole history: definite failures and unknown reads have no effect. */
export function checkLinearizable(history: readonly HistoryOp[], options: SearchOptions = {}): SearchResult {
  const byKey = new Map<string, HistoryOp[]>();
  for (const op of history) {
    if (op.status === 'failed') continue;
    if (op.status === 'unknown') {
      const value = writtenValue(op.input);
      if (value === null) continue;
      if (options.presentValues !== undefined && !options.presentValues.has(value)) continue;
    }
    const list = byKey.get(op.input.key) ?? [];
    list.push(op);
    byKey.set(op.input.key, list);
  }
  const keys: KeyVerdict[] = [];
  for (const [key, ops] of [...byKey.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    keys.push(searchKey(key, ops, options.stepsMaxPerKey ?? 2_000_000));
  }
  const verdict: Verdict = keys.some((k) => k.verdict === 'not-linearizable') ? 'not-linearizable'
    : keys.some((k) => k.verdict === 'unknown') ? 'unknown' : 'linearizable';
  return { verdict, keys };
}

// ---------------------------------------------------------------------------------------------
// Watch validation against the ground truth.

export interface WatchEvent {
  readonly revision: number;
  readonly key: string;
  readonly value: string | null;
}

/**
 * A watch on `prefix` from `startRevision` must deliver exactly the log's events for that prefix
 * from startRevision on, in order, with no gap and no duplicate.
 */
export function checkWatchEvents(received: readonly WatchEvent[], log: readonly LogEvent[],
  prefix: string, startRevision: number): CheckResult {
  const violations: string[] = [];
  const expected = log.filter((e) => e.key.startsWith(prefix) && e.revision >= startRevision);
  let lastRevision = 0;
  const seen = new Set<string>();
  for (const event of received) {
    const id = `${event.revision}\u0000${event.key}`;
    if (seen.has(id)) violations.push(`duplicate event ${event.key}@${event.revision}`);
    seen.add(id);
    if (event.revision < lastRevision) {
      violations.push(`event ${event.key}@${event.revision} after revision ${lastRevision}`);
    }
    lastRevision = Math.max(lastRevision, event.revision);
  }
  const count = Math.max(expected.length, received.length);
  for (let i = 0; i < count && violations.length < VIOLATIONS_MAX; i++) {
    const want = expected[i];
    const got = received[i];
    if (want === undefined || got === undefined || want.revision !== got.revision ||
        want.key !== got.key || want.value !== got.value) {
      const show = (e: WatchEvent | LogEvent | undefined): string =>
        e === undefined ? 'nothing' : `${e.key}=${e.value}@${e.revision}`;
      violations.push(`watch event #${i}: expected ${show(want)}, received ${show(got)}`);
      break;
    }
  }
  return { isOk: violations.length === 0, violations };
}
