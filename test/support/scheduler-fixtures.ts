import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
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
