// Concurrent recording clients, a per-member revision monitor and the ground-truth log reader
// for the multi-member tests. Clients are sequential, use
// unique put values, and record every call with call and return times on one monotonic clock.
import {
  bytes, child, int, list, text, type CompatClient, type Msg, type Outcome, type ResponseStream,
} from './compat-client.js';
import type { Cluster } from './cluster-process.js';
import {
  checkLinearizable, checkRevisionOrder, type HistoryOp, type LogEvent, type OpInput, type OpOutput,
  type SearchResult, type CheckResult,
} from './cluster-linearizability.js';
import { waitFor } from './ports.js';

export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** gRPC codes that mean the request had no effect; all others are unknown. */
const DEFINITE_CODES = new Set(['INVALID_ARGUMENT', 'NOT_FOUND', 'FAILED_PRECONDITION', 'OUT_OF_RANGE']);

export function isDefiniteFailure(outcome: Outcome): boolean {
  return !outcome.ok && DEFINITE_CODES.has(outcome.code);
}

const b = (value: string): Buffer => Buffer.from(value);

export function requestFor(input: OpInput): { method: 'Range' | 'Put' | 'Txn'; request: Msg } {
  const key = b(input.key);
  switch (input.kind) {
    case 'get':
      return { method: 'Range', request: { key } };
    case 'put':
      return { method: 'Put', request: { key, value: b(input.value) } };
    case 'cas':
      return {
        method: 'Txn',
        request: {
          // CompareResult EQUAL = 0, CompareTarget VERSION = 0.
          compare: [{ result: 0, target: 0, key, version: String(input.expectVersion) }],
          success: [{ request_put: { key, value: b(input.value) } }],
          failure: [],
        },
      };
    case 'txn':
      return {
        method: 'Txn',
        request: {
          // CompareResult EQUAL = 0, CompareTarget VALUE = 3.
          compare: [{ result: 0, target: 3, key, value: b(input.expectValue) }],
          success: [{ request_put: { key, value: b(input.value) } }],
          failure: [{ request_range: { key } }],
        },
      };
    default: {
      const never: never = input;
      throw new Error(`unknown op ${String(never)}`);
    }
  }
}

function readKv(kvs: readonly Msg[]): { value: string | null; version: number; modRevision: number } {
  const kv = kvs[0];
  if (kv === undefined) return { value: null, version: 0, modRevision: 0 };
  return {
    value: bytes(kv, 'value').toString(),
    version: int(kv, 'version'),
    modRevision: int(kv, 'mod_revision'),
  };
}

export function outputFor(input: OpInput, response: Msg): OpOutput {
  const revision = int(child(response, 'header'), 'revision');
  switch (input.kind) {
    case 'get':
      return { kind: 'get', revision, ...readKv(list(response, 'kvs')) };
    case 'put':
      return { kind: 'put', revision };
    case 'cas':
      return { kind: 'cas', revision, succeeded: response['succeeded'] === true };
    case 'txn': {
      const succeeded = response['succeeded'] === true;
      const range = child(list(response, 'responses')[0], 'response_range');
      return { kind: 'txn', revision, succeeded, ...readKv(list(range, 'kvs')) };
    }
    default: {
      const never: never = input;
      throw new Error(`unknown op ${String(never)}`);
    }
  }
}

export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: readonly string[];
  readonly opTimeoutMs?: number;
  /** Each client's op count is bounded, whatever happens to the stop flag. */
  readonly opsPerClientMax?: number;
}

/** A running workload: stop() ends every client after its current call and returns the history. */
export class Workload {
  readonly history: HistoryOp[] = [];
  private isStopping = false;
  private readonly runners: Promise<void>[] = [];
  private nextId = 0;
  private acknowledged = 0;

  constructor(private readonly cluster: Cluster, private readonly options: WorkloadOptions) {
    for (let client = 0; client < options.clients; client++) this.runners.push(this.run(client));
  }

  /** Writes acknowledged so far (for "the cluster made progress after the fault" assertions). */
  acknowledgedWrites(): number {
    return this.acknowledged;
  }

  /** Waits until `count` more writes have been acknowledged than when called. */
  async progress(count: number, timeoutMs = 15_000): Promise<void> {
    const target = this.acknowledged + count;
    await waitFor(`${count} more acknowledged writes (at ${this.acknowledged})`,
      () => (this.acknowledged >= target ? true : undefined), timeoutMs);
  }

  async stop(): Promise<HistoryOp[]> {
    this.isStopping = true;
    await Promise.all(this.runners);
    return this.history;
  }

  private async run(client: number): Promise<void> {
    const random = seededRandom(client * 7919 + 17);
    const seen = new Map<string, { value: string | null; version: number }>();
    let member = client % this.cluster.size;
    const opsMax = this.options.opsPerClientMax ?? 20_000;
    for (let n = 0; n < opsMax && !this.isStopping; n++) {
      const key = this.options.keys[Math.floor(random() * this.options.keys.length)] as string;
      const input = this.pickOp(client, n, key, random(), seen.get(key));
      const { method, request } = requestFor(input);
      const endpoint = this.cluster.member(member).endpoint;
      const callNs = nowNs();
      const outcome = await this.cluster.client(member)
        .call('KV', method, request, this.options.opTimeoutMs ?? 1_500);
      const returnNs = nowNs();
      const id = this.nextId++;
      if (outcome.ok) {
        const output = outputFor(input, outcome.value);
        this.history.push({ id, client, input, callNs, returnNs, status: 'ok', output, endpoint });
        if (output.kind === 'get' || (output.kind === 'txn' && !output.succeeded)) {
          seen.set(key, { value: output.value, version: output.version });
        }
        if (output.kind === 'put' || ((output.kind === 'cas' || output.kind === 'txn') && output.succeeded)) {
          this.acknowledged += 1;
        }
        continue;
      }
      const error = `${outcome.code}: ${outcome.message}`;
      if (isDefiniteFailure(outcome)) {
        this.history.push({
          id, client, input, callNs, returnNs, status: 'failed', output: null, endpoint, error,
        });
      } else {
        // Indeterminate: it may take effect at any later time. Reads with no answer are dropped.
        if (input.kind !== 'get') {
          this.history.push({
            id, client, input, callNs, returnNs: Infinity, status: 'unknown', output: null,
            endpoint, error,
          });
        }
        member = (member + 1) % this.cluster.size;
        // A refused connection fails at once; pause briefly so a dead member is not hammered.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }

  private pickOp(client: number, n: number, key: string, roll: number,
    seen: { value: string | null; version: number } | undefined): OpInput {
    const value = `c${client}-${n}`;
    if (roll < 0.4) return { kind: 'get', key };
    if (roll < 0.65) return { kind: 'put', key, value };
    if (roll < 0.85) return { kind: 'cas', key, expectVersion: seen?.version ?? 0, value };
    return { kind: 'txn', key, expectValue: seen?.value ?? '', value };
  }
}

function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

// ---------------------------------------------------------------------------------------------

export interface RevisionSample {
  readonly index: number;
  readonly revision: number;
  readonly raftTerm: number;
  readonly atNs: number;
}

/**
 * Polls Status on every running member and records revision and term; a member's revision and
 * term must never go back, restarts included (etcd #17780, #15271).
 */
export class RevisionMonitor {
  readonly samples: RevisionSample[] = [];
  private isStopping = false;
  private readonly loop: Promise<void>;

  constructor(private readonly cluster: Cluster, intervalMs = 50, samplesMax = 50_000) {
    this.loop = (async () => {
      for (let round = 0; round < samplesMax && !this.isStopping; round++) {
        for (const status of await this.cluster.statuses()) {
          const { index, revision, raftTerm } = status;
          this.samples.push({ index, revision, raftTerm, atNs: nowNs() });
        }
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    })();
  }

  async stop(): Promise<RevisionSample[]> {
    this.isStopping = true;
    await this.loop;
    return this.samples;
  }

  /** Violations: a member whose revision or term went down between two samples. */
  static backwards(samples: readonly RevisionSample[]): string[] {
    const last = new Map<number, RevisionSample>();
    const problems: string[] = [];
    for (const sample of samples) {
      const previous = last.get(sample.index);
      if (previous !== undefined && sample.revision < previous.revision) {
        problems.push(`m${sample.index + 1} revision went from ${previous.revision} to ${sample.revision}`);
      }
      if (previous !== undefined && sample.raftTerm < previous.raftTerm) {
        problems.push(`m${sample.index + 1} raft term went from ${previous.raftTerm} to ${sample.raftTerm}`);
      }
      last.set(sample.index, sample);
    }
    return problems;
  }
}

// ---------------------------------------------------------------------------------------------

/** Exclusive end of the range of keys that start with `prefix` (prefix has no 0xff bytes). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  const last = end.length - 1;
  end[last] = (end[last] as number) + 1;
  return end;
}

/** Opens a raw watch on `prefix` from `startRevision` and waits for its created response. */
export async function openWatch(
  client: CompatClient, prefix: string, startRevision: number,
): Promise<ResponseStream> {
  const stream = client.watch({ hasleader: 'true' });
  stream.send({
    create_request: { key: b(prefix), range_end: prefixEnd(prefix), start_revision: String(startRevision) },
  });
  const created = await stream.next(5_000);
  if (created['created'] !== true) throw new Error(`watch not created: ${JSON.stringify(created)}`);
  return stream;
}

/** The events of every response received so far on a raw watch stream, in order. */
export function streamEvents(stream: ResponseStream): LogEvent[] {
  const events: LogEvent[] = [];
  for (const response of stream.responses) {
    for (const event of list(response, 'events')) {
      const kv = child(event, 'kv');
      const isDelete = int(event, 'type') === 1;
      events.push({
        revision: int(kv, 'mod_revision'),
        key: text(kv, 'key'),
        value: isDelete ? null : bytes(kv, 'value').toString(),
        version: int(kv, 'version'),
        createRevision: int(kv, 'create_revision'),
      });
    }
  }
  return events;
}

/** Watch streams one log read may open; each continues where the previous one stopped. */
const LOG_READ_STREAMS_MAX = 50;
/** A catch-up stream that delivers nothing new for this long is reopened from where it stopped. */
const LOG_READ_STALL_MS = 2_000;

/**
 * One member's MVCC log for `prefix`, read by watches from revision 1 (compaction is off) up to
 * a sentinel key written once all members agree; the sentinel is left out of the result. A
 * catch-up watch that stalls is reopened at last revision + 1 (real etcd 3.4.23 was seen to stop
 * a 7,500-revision catch-up at 6,001); reopenings are counted in `readLogReopenings`.
 */
export let readLogReopenings = 0;

export async function readLog(
  cluster: Cluster, index: number, prefix: string, sentinelRevision: number,
): Promise<LogEvent[]> {
  const events: LogEvent[] = [];
  let from = 1;
  for (let streams = 0; streams < LOG_READ_STREAMS_MAX; streams++) {
    const stream = await openWatch(cluster.client(index), prefix, from);
    try {
      let seen = 0;
      let progressAt = Date.now();
      const what = `m${index + 1}'s watch from revision ${from} to reach ${sentinelRevision} or stall`;
      await waitFor(what, () => {
        const received = streamEvents(stream);
        if (received.some((e) => e.revision >= sentinelRevision)) return true;
        if (stream.hasEnded()) return false;
        if (received.length !== seen) {
          seen = received.length;
          progressAt = Date.now();
        }
        return Date.now() - progressAt > LOG_READ_STALL_MS ? false : undefined;
      }, 60_000);
      const received = streamEvents(stream);
      events.push(...received.filter((e) => e.revision < sentinelRevision));
      if (received.some((e) => e.revision >= sentinelRevision)) return events;
      const last = received[received.length - 1];
      if (last !== undefined) from = last.revision + 1;
      readLogReopenings += 1;
    } finally {
      stream.end();
    }
  }
  throw new Error(`m${index + 1}: log read did not reach ${sentinelRevision} in ` +
    `${LOG_READ_STREAMS_MAX} watches (at ${from})`);
}

/** Writes a sentinel under `prefix` through the leader and returns its revision. */
export async function writeSentinel(cluster: Cluster, prefix: string): Promise<number> {
  const leader = await cluster.leader();
  const request = { key: b(`${prefix}~sentinel`), value: b('end') };
  const outcome = await cluster.client(leader.index).call('KV', 'Put', request, 10_000);
  if (!outcome.ok) throw new Error(`sentinel put failed: ${outcome.code} ${outcome.message}`);
  return int(child(outcome.value, 'header'), 'revision');
}

export interface Verification {
  readonly log: LogEvent[];
  readonly logsDiffer: string[];
  readonly checkA: CheckResult;
  readonly checkB: SearchResult;
}

/**
 * After the faults: every member running, converged; each member's log read and compared; then
 * checkers A and B on the history.
 */
export async function verifyHistory(
  cluster: Cluster, prefix: string, history: readonly HistoryOp[],
): Promise<Verification> {
  const sentinel = await writeSentinel(cluster, prefix);
  await cluster.converged(20_000);
  const logs = await Promise.all(cluster.runningIndexes().map((i) => readLog(cluster, i, prefix, sentinel)));
  const reference = logs[0] ?? [];
  const logsDiffer: string[] = [];
  logs.forEach((log, position) => {
    if (JSON.stringify(log) !== JSON.stringify(reference)) {
      logsDiffer.push(`member #${position} log (${log.length} events) differs from the first ` +
        `(${reference.length})`);
    }
  });
  const present = new Set(reference.flatMap((e) => (e.value === null ? [] : [e.value])));
  return {
    log: reference,
    logsDiffer,
    checkA: checkRevisionOrder(history, reference),
    checkB: checkLinearizable(history, { presentValues: present }),
  };
}

/** A short summary of a history for failure messages and logs. */
export function summarize(history: readonly HistoryOp[]): string {
  const counts = { ok: 0, failed: 0, unknown: 0 };
  for (const op of history) counts[op.status] += 1;
  const errors = new Map<string, number>();
  for (const op of history) {
    if (op.error !== undefined) {
      const short = op.error.slice(0, 80);
      errors.set(short, (errors.get(short) ?? 0) + 1);
    }
  }
  const top = [...errors.entries()].sort((x, y) => y[1] - x[1]).slice(0, 6)
    .map(([message, count]) => `${count}× ${message}`).join('; ');
  return `${history.length} ops: ${counts.ok} ok, ${counts.failed} failed, ` +
    `${counts.unknown} unknown; errors: ${top}`;
}
