import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GRPCDeadlineExceededError, type Etcd3 } from 'etcd3';
import { parseJobSpec, serializeJobSpec, formatJobSpecIssues, type JobSpec } from '../../shared/job/index.js';
import { jobKey } from '../../shared/keys.js';
import { createEtcdClient } from '../../shared/etcd/client.js';
import { readHistory } from '../../shared/history/read.js';
import type { RunRecord } from '../../shared/history/records.js';
import { createLogger } from '../../shared/log.js';
import type { StoreProcess } from './etcd-process.js';

/** Writes a job definition the way the master does (validated, serialized), bypassing the master. */
export async function putJob(client: Etcd3, input: Record<string, unknown>): Promise<JobSpec> {
  const parsed = parseJobSpec(input);
  if (!parsed.ok) throw new Error(formatJobSpecIssues(parsed.errors));
  await client.put(jobKey(parsed.spec.name)).value(serializeJobSpec(parsed.spec));
  return parsed.spec;
}

export function clientFor(store: StoreProcess): Etcd3 {
  return createEtcdClient({ endpoints: store.endpoint });
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface StartLine {
  readonly slot: string;
  readonly worker: string;
  readonly fence: number;
  /** Wall-clock ms when the job's shell ran, when the command printed it. */
  readonly atMs?: number;
}

/** Lines "<slot> <worker> <fence> [<ms>]" appended by the test job's command. */
export function readStarts(file: string): StartLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((line) => {
    const [slot = '', worker = '', fence = '0', atMs] = line.split(' ');
    return atMs === undefined ? { slot, worker, fence: Number(fence) } : { slot, worker, fence: Number(fence), atMs: Number(atMs) };
  });
}

export function duplicates<T>(values: readonly T[]): T[] {
  const seen = new Set<T>();
  const repeated = new Set<T>();
  for (const v of values) (seen.has(v) ? repeated : seen).add(v);
  return [...repeated];
}

export async function historyRecords(client: Etcd3, job: string): Promise<RunRecord[]> {
  return (await readHistory(client, job)).runs.map((r) => r.value);
}

/** The p-th percentile (0-100) of values, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

export const quietLogger = createLogger(process.env['ETCRON_TEST_LOG'] === '1' ? 'debug' : 'silent');

/** A client whose first txn is applied by the store, then fails with a deadline, as on a dropped reply. */
export function dropFirstTxnReply(real: Etcd3): Etcd3 {
  let dropped = false;
  const kv = {
    txn: async (request: Parameters<Etcd3['kv']['txn']>[0]) => {
      const response = await real.kv.txn(request);
      if (dropped) return response;
      dropped = true;
      throw new GRPCDeadlineExceededError('Deadline exceeded');
    },
    range: (request: Parameters<Etcd3['kv']['range']>[0]) => real.kv.range(request),
  };
  return { kv } as unknown as Etcd3;
}
