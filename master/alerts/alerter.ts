import type { Etcd3 } from 'etcd3';
import type { Clock, Timer } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import {
  ALERTS_CURSOR_KEY, ALERTS_PREFIX, JOBS_PREFIX, RUNS_PREFIX, alertKey, alertsPrefix, parseRunKey, prefixEnd,
} from '../../shared/keys.js';
import { deserializeJobSpec } from '../../shared/job/parse.js';
import type { AlertSpec, AlertState, JobSpec } from '../../shared/job/spec.js';
import { decodeRunRecord } from '../../shared/history/records.js';
import { decodeAlertRecord, isAlertPending, type AlertRecord, type ChannelName } from '../../shared/history/alerts.js';
import { openPrefixCache, type PrefixCache } from '../../shared/etcd/prefix-cache.js';
import { rangePages } from '../../shared/etcd/range-pages.js';
import { revisionOf, runTxn, putOp, deleteOp } from '../../shared/etcd/txn.js';
import { schedulerMetrics } from '../../shared/metrics/scheduler-metrics.js';
import { runAlertCommand, sendWebhook, type SendOutcome } from './alert-sender.js';
import { followFinishedRuns, type FinishedRun } from '../run-follower/run-follower.js';

/** Tries per channel before a delivery is recorded failed; waits double from the first. */
export const ALERT_ATTEMPTS_MAX = 5;
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** Deliveries kept per job (the oldest finished ones go first). */
const ALERTS_PER_JOB_MAX = 100;
const DELIVERIES_CONCURRENT_MAX = 4;
const OUTPUT_TAIL_CHARS_MAX = 4_096;

export interface AlerterHandle {
  stats(): { raised: number; delivered: number; failed: number };
  stop(): Promise<void>;
}

interface AlerterOptions {
  readonly clock: Clock;
  readonly logger: Logger;
}

/**
 * The leader's alerts: it follows every run record from where the previous leader stopped (the
 * cursor under /cron/master/alerts), and for a run that ended in one of its job's `alerts.on`
 * states, on its last attempt, writes an alert record (create_revision == 0: one per run attempt,
 * whoever leads) and delivers it to the webhook and/or the command, retried with backoff, every
 * try recorded. A new leader resumes the deliveries still pending. Delivery is at least once: two
 * leaders overlapping for an instant may both send.
 */
export async function startAlerter(client: Etcd3, options: AlerterOptions): Promise<AlerterHandle> {
  const { clock, logger } = options;
  const log = logger.child({ component: 'alerts' });
  const specs = new Map<string, JobSpec>();
  const stats = { raised: 0, delivered: 0, failed: 0 };
  let stopped = false;
  const timers = new Set<Timer>();
  const later = (delayMs: number, run: () => void): void => {
    const timer = clock.setTimer(delayMs, () => { timers.delete(timer); if (!stopped) run(); });
    timers.add(timer);
  };

  const jobs: PrefixCache = await openPrefixCache(client, JOBS_PREFIX, {
    put: (key, kv) => {
      const parsed = deserializeJobSpec(kv.value.toString());
      if (parsed.ok) specs.set(key.slice(JOBS_PREFIX.length), parsed.spec);
    },
    delete: (key) => { specs.delete(key.slice(JOBS_PREFIX.length)); },
  }, log);

  // Deliveries: a small queue, a few at a time.
  const queue: string[] = [];
  const queued = new Set<string>();
  let active = 0;
  const inFlight = new Set<Promise<void>>();
  const enqueue = (key: string): void => {
    if (stopped || queued.has(key)) return;
    queued.add(key);
    queue.push(key);
    pump();
  };
  const pump = (): void => {
    while (!stopped && active < DELIVERIES_CONCURRENT_MAX && queue.length > 0) {
      const key = queue.shift() as string;
      queued.delete(key);
      active++;
      const work = deliverOnce(key).catch((err: unknown) => log.warn({ err, key }, 'alert delivery failed'))
        .finally(() => { active--; inFlight.delete(work); pump(); });
      inFlight.add(work);
    }
  };

  /** One try on every pending channel of the alert at `key`, then the record written back. */
  const deliverOnce = async (key: string): Promise<void> => {
    const current = await client.kv.range({ key: Buffer.from(key) });
    const kv = current.kvs[0];
    const record = kv === undefined ? undefined : decodeAlertRecord(kv.value.toString());
    if (kv === undefined || record === undefined || !isAlertPending(record)) return;
    const spec = specs.get(record.job)?.alerts;
    const payload = await alertPayload(client, record);
    const channels = { ...record.channels };
    for (const name of Object.keys(channels) as ChannelName[]) {
      const channel = channels[name];
      if (channel === undefined || channel.status !== 'pending') continue;
      const outcome: SendOutcome = spec === undefined
        ? { ok: false, detail: 'the job or its alerts were removed' }
        : await send(spec, name, record, payload);
      const attempts = [...channel.attempts, { atMs: clock.nowMs(), ok: outcome.ok, detail: outcome.detail }];
      const isFinal = outcome.ok || attempts.length >= ALERT_ATTEMPTS_MAX || spec === undefined;
      channels[name] = { status: outcome.ok ? 'delivered' : isFinal ? 'failed' : 'pending', attempts };
      schedulerMetrics.alertDeliveries.inc({ channel: name, result: outcome.ok ? 'ok' : 'error' });
      if (outcome.ok) stats.delivered++;
      else if (isFinal) stats.failed++;
      if (!outcome.ok) log.warn({ job: record.job, runId: record.runId, channel: name, attempt: attempts.length, detail: outcome.detail }, 'alert not delivered');
    }
    const updated: AlertRecord = { ...record, channels };
    // Only over the version read: a record another leader moved on meanwhile stays as it left it.
    const written = await runTxn(client, {
      compare: [{ key, target: 'Mod', result: 'Equal', value: revisionOf(kv.mod_revision) }],
      success: [putOp(key, JSON.stringify(updated))],
    });
    if (!written.succeeded || !isAlertPending(updated)) return;
    const tries = Math.max(...Object.values(channels).map((c) => c?.attempts.length ?? 0));
    later(Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (tries - 1)), () => enqueue(key));
  };

  const send = (spec: AlertSpec, channel: ChannelName, record: AlertRecord, payload: object): Promise<SendOutcome> => {
    if (channel === 'webhook') {
      return spec.webhook === undefined ? Promise.resolve({ ok: false, detail: 'no webhook configured any more' }) : sendWebhook(spec.webhook, payload);
    }
    if (spec.command === undefined) return Promise.resolve({ ok: false, detail: 'no command configured any more' });
    return runAlertCommand(spec.command, {
      ETCRON_ALERT_JOB: record.job, ETCRON_ALERT_SLOT: record.slot, ETCRON_ALERT_STATE: record.state,
      ETCRON_ALERT_RUN_ID: record.runId, ETCRON_ALERT_ATTEMPT: String(record.attempt),
      ETCRON_ALERT_REASON: record.reason ?? '', ETCRON_ALERT_WORKER: record.worker ?? '',
    }, payload);
  };

  /** Writes the alert record of a run that ended (once per run attempt, whoever leads). */
  const raise = async ({ key, run, spec, revision }: FinishedRun): Promise<void> => {
    const alerts = spec.alerts;
    if (alerts === undefined || parseRunKey(key) === undefined) return;
    const suffix = key.slice(`${RUNS_PREFIX}${run.job}/`.length);
    const target = alertKey(run.job, suffix, run.attempt);
    const record: AlertRecord = {
      job: run.job, slot: run.slot, runId: run.runId, attempt: run.attempt, state: run.state as AlertState,
      ...(run.reason === undefined ? {} : { reason: run.reason }),
      ...(run.worker === undefined ? {} : { worker: run.worker }),
      runKey: key, runRevision: revision, createdAtMs: clock.nowMs(),
      channels: {
        ...(alerts.webhook === undefined ? {} : { webhook: { status: 'pending', attempts: [] } }),
        ...(alerts.command === undefined ? {} : { command: { status: 'pending', attempts: [] } }),
      },
    };
    const created = await runTxn(client, {
      compare: [{ key: target, target: 'Create', result: 'Equal', value: 0 }],
      success: [putOp(target, JSON.stringify(record))],
    });
    if (!created.succeeded) return;
    stats.raised++;
    schedulerMetrics.alertsRaised.inc({ state: run.state });
    log.info({ job: run.job, slot: run.slot, state: run.state }, 'alert raised');
    enqueue(target);
    await trimAlerts(client, run.job);
  };

  const follower = await followFinishedRuns(client, {
    cursorKey: ALERTS_CURSOR_KEY, clock, logger: log,
    specOf: (job) => specs.get(job),
    wants: ({ run, spec }) => spec.alerts?.on.includes(run.state as AlertState) === true,
    handle: raise,
  });

  // Deliveries a previous leader left pending.
  void (async () => {
    for await (const page of rangePages(client, { key: Buffer.from(ALERTS_PREFIX), rangeEnd: prefixEnd(ALERTS_PREFIX), pageKeys: 500, pagesMax: 1_000 })) {
      for (const kv of page.kvs) {
        const record = decodeAlertRecord(kv.value.toString());
        if (record !== undefined && isAlertPending(record)) enqueue(kv.key.toString());
      }
    }
  })().catch((err: unknown) => log.warn({ err }, 'reading pending alerts failed'));

  log.info('alerts started');
  return {
    stats: () => ({ ...stats }),
    async stop(): Promise<void> {
      stopped = true;
      for (const timer of timers) timer.cancel();
      await follower.stop();
      await jobs.close();
      await Promise.race([Promise.all(inFlight), new Promise((resolve) => setTimeout(resolve, 5_000))]);
    },
  };
}

/** What is sent: the alert and what the run record says of the run (output tail shortened). */
async function alertPayload(client: Etcd3, record: AlertRecord): Promise<object> {
  const response = await client.kv.range({ key: Buffer.from(record.runKey), revision: String(record.runRevision) }).catch(() => undefined);
  const run = response?.kvs[0] === undefined ? undefined : decodeRunRecord(response.kvs[0].value.toString());
  return {
    job: record.job, slot: record.slot, runId: record.runId, attempt: record.attempt, state: record.state,
    ...(record.reason === undefined ? {} : { reason: record.reason }),
    ...(record.worker === undefined ? {} : { worker: record.worker }),
    ...(run?.startedAtMs === undefined ? {} : { startedAtMs: run.startedAtMs }),
    ...(run?.endedAtMs === undefined ? {} : { endedAtMs: run.endedAtMs }),
    ...(run?.exitCode === undefined ? {} : { exitCode: run.exitCode }),
    ...(run?.httpStatus === undefined ? {} : { httpStatus: run.httpStatus }),
    ...(run?.outputTail === undefined ? {} : { outputTail: run.outputTail.slice(-OUTPUT_TAIL_CHARS_MAX) }),
  };
}

/** Keeps a job's newest ALERTS_PER_JOB_MAX deliveries; finished older ones are deleted. */
async function trimAlerts(client: Etcd3, job: string): Promise<void> {
  const prefix = alertsPrefix(job);
  const count = Number((await client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true })).count);
  if (count <= ALERTS_PER_JOB_MAX) return;
  const oldest = await client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), limit: count - ALERTS_PER_JOB_MAX });
  for (const kv of oldest.kvs) {
    const record = decodeAlertRecord(kv.value.toString());
    if (record !== undefined && isAlertPending(record)) continue;
    await runTxn(client, {
      compare: [{ key: kv.key.toString(), target: 'Mod', result: 'Equal', value: revisionOf(kv.mod_revision) }],
      success: [deleteOp(kv.key.toString())],
    });
  }
}

