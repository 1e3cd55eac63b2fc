import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseJobSpec, type JobSpec } from '../shared/job/index.js';
import type { AlertRecord, ChannelDelivery } from '../shared/history/alerts.js';
import { chunkBySize } from '../shared/chunks.js';
import { ApiRefusal, CliError, type ApiClient } from './scheduler-api-client.js';
import { action, apiClient, withApiAccessOptions, withClientOptions, type ApiAccessFlags, type ClientFlags } from './scheduler-common.js';
import { addJobFlags, specFromFlags, type JobFlagValues } from './scheduler-job-flags.js';
import { durationText, offsetText, printJson, renderTable } from './scheduler-format.js';

/** The API's JSON shapes the CLI reads (see master/job-routes.ts and master/inspect-routes.ts). */
interface JobView {
  readonly name: string;
  readonly spec: JobSpec | null;
  readonly invalid?: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

interface RunView {
  readonly slot: string;
  readonly runId: string;
  readonly state: string;
  readonly reason?: string;
  readonly worker?: string;
  readonly fence?: number;
  readonly attempt: number;
  readonly startedAtMs?: number;
  readonly endedAtMs?: number;
  readonly exitCode?: number;
  readonly signal?: string;
  readonly catchUp?: boolean;
  readonly triggeredBy?: string;
  readonly httpStatus?: number;
  readonly modRevision: number;
}

interface TimelineEvent {
  readonly type: string;
  readonly revision: number;
  readonly slot: string;
  readonly worker: string;
  readonly runId: string;
  readonly leaseId: string;
  readonly fence: number;
  readonly cause?: string;
}

const path = (name: string, suffix = ''): string => `/v1/jobs/${encodeURIComponent(name)}${suffix}`;

function commandText(spec: JobSpec | null): string {
  if (spec === null) return '';
  const text = spec.http === undefined ? spec.command ?? (spec.argv ?? []).join(' ') : `${spec.http.method} ${spec.http.url}`;
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function printJobs(jobs: readonly JobView[]): void {
  process.stdout.write(renderTable(
    ['NAME', 'SCHEDULE', 'TIMEZONE', 'PAUSED', 'OVERLAP', 'TAGS', 'COMMAND', 'MOD_REV'],
    jobs.map((j) => [
      j.name, j.spec?.schedule ?? `INVALID: ${j.invalid ?? ''}`, j.spec?.timezone, j.spec?.paused,
      j.spec?.overlap, j.spec?.tags.join(','), commandText(j.spec), j.modRevision,
    ]),
  ));
}

/** Reads jobs from a JSON or YAML file: one spec, a list, several YAML documents, or `{jobs: [...]}`. */
export async function readJobFile(file: string): Promise<unknown[]> {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let values: unknown[];
  if (file.endsWith('.json')) {
    try {
      values = [JSON.parse(text) as unknown];
    } catch (err) {
      throw new CliError(`${file}: not valid JSON: ${(err as Error).message}`);
    }
  } else {
    // yaml loads only when needed: it costs every CLI command ~0.1 s of start-up otherwise.
    const { parseAllDocuments } = await import('yaml');
    const documents = parseAllDocuments(text);
    const docs = Array.isArray(documents) ? documents : [documents];
    values = docs.map((doc, i) => {
      const first = doc.errors[0];
      if (first !== undefined) throw new CliError(`${file}: document ${i + 1}: ${first.message}`);
      return doc.toJS() as unknown;
    });
  }
  const jobs: unknown[] = [];
  for (const value of values) {
    if (Array.isArray(value)) jobs.push(...(value as unknown[]));
    else if (typeof value === 'object' && value !== null && Array.isArray((value as { jobs?: unknown }).jobs)) {
      jobs.push(...((value as { jobs: unknown[] }).jobs));
    } else if (value !== null && value !== undefined) jobs.push(value);
  }
  if (jobs.length === 0) throw new CliError(`${file}: no job specs found`);
  return jobs;
}

/** `job apply -f FILE`: every spec is checked before any is sent, so a bad file writes nothing. */
async function applyFile(flags: { file: string } & ClientFlags): Promise<void> {
  const inputs = await readJobFile(flags.file);
  // Every spec is checked before any is sent, so a bad file writes nothing.
  const problems: string[] = [];
  inputs.forEach((input, i) => {
    const parsed = parseJobSpec(input);
    if (!parsed.ok) {
      const label = typeof (input as { name?: unknown }).name === 'string' ? (input as { name: string }).name : `#${i + 1}`;
      for (const e of parsed.errors) problems.push(`  job ${label}: ${e.field}: ${e.reason}`);
    }
  });
  if (problems.length > 0) throw new CliError(`invalid job spec in ${flags.file}; nothing applied\n${problems.join('\n')}`, 2);
  const client = apiClient(flags);
  const results: ApplyResult[] = [];
  for (const chunk of applyChunks(inputs)) {
    for (const result of await applyChunk(client, chunk)) {
      results.push(result);
      if (flags.output === 'table') {
        const what = result.created ? 'created' : result.unchanged ? 'unchanged' : 'updated';
        const revision = result.job === null ? '' : ` (revision ${result.job.modRevision})`;
        process.stdout.write(`job ${result.name} ${what}${revision}\n`);
      }
    }
  }
  if (flags.output === 'json') printJson(results);
}

interface ApplyResult {
  readonly name: string;
  readonly job: JobView | null;
  readonly created: boolean;
  readonly unchanged: boolean;
}

/** Jobs per `POST /v1/apply` (the master takes up to 1,000) and JSON bytes per request. */
const APPLY_CHUNK_JOBS_MAX = 1_000;
const APPLY_CHUNK_BYTES_MAX = 1024 * 1024;

function applyChunks(inputs: readonly unknown[]): unknown[][] {
  return chunkBySize(inputs, APPLY_CHUNK_JOBS_MAX, APPLY_CHUNK_BYTES_MAX, (input) => Buffer.byteLength(JSON.stringify(input)));
}

/** One batched apply; a master without `/v1/apply` (an older version) gets one PUT per job. */
async function applyChunk(client: ApiClient, chunk: readonly unknown[]): Promise<ApplyResult[]> {
  try {
    const answer = (await client.post('/v1/apply', { jobs: chunk })) as { results: ApplyResult[] };
    return answer.results;
  } catch (err) {
    if (!(err instanceof ApiRefusal && err.code === 'ETCRON_NOT_FOUND')) throw err;
  }
  const results: ApplyResult[] = [];
  for (const input of chunk) {
    const name = (input as { name: string }).name;
    const result = (await client.put(path(name), input)) as Omit<ApplyResult, 'name'>;
    results.push({ name, ...result });
  }
  return results;
}

export function registerJobCommands(program: Command): void {
  const job = program.command('job').description('define, inspect and control jobs (through a master)');
  registerDefinitionCommands(job);
  registerRunCommands(job);
}

/** add, apply, list, get, rm, pause, resume: the job definitions. */
function registerDefinitionCommands(job: Command): void {

  withClientOptions(addJobFlags(job.command('add <name>').description('create a job; fails if it exists')))
    .action(action(async (name: string, flags: JobFlagValues & ClientFlags) => {
      const result = (await apiClient(flags).post('/v1/jobs', specFromFlags(name, flags))) as { job: JobView };
      if (flags.output === 'json') printJson(result);
      else process.stdout.write(`job ${name} created (revision ${result.job.modRevision})\n`);
    }));

  withClientOptions(job.command('apply').description('create or replace jobs from a JSON or YAML file'))
    .requiredOption('-f, --file <file>', 'file with one spec, a list of specs, or YAML documents (- for stdin)')
    .action(action(applyFile));

  withClientOptions(job.command('list').alias('ls').description('list jobs'))
    .action(action(async (flags: ClientFlags) => {
      const result = (await apiClient(flags).get('/v1/jobs')) as { revision: number; jobs: JobView[] };
      if (flags.output === 'json') printJson(result);
      else printJobs(result.jobs);
    }));

  withClientOptions(job.command('get <name>').description('show one job'))
    .option('--rev <n>', 'show the job as it was at store revision N')
    .action(action(async (name: string, flags: { rev?: string } & ClientFlags) => {
      const query = flags.rev === undefined ? '' : `?rev=${encodeURIComponent(flags.rev)}`;
      const result = (await apiClient(flags).get(path(name, query))) as { job: JobView };
      if (flags.output === 'json') printJson(result);
      else {
        const j = result.job;
        process.stdout.write(`# job ${j.name}: create revision ${j.createRevision}, mod revision ${j.modRevision}, version ${j.version}\n`);
        const { stringify } = await import('yaml');
        process.stdout.write(j.spec === null ? `# INVALID: ${j.invalid ?? ''}\n` : stringify(j.spec));
      }
    }));

  withClientOptions(job.command('rm <name>').alias('delete').description('delete a job (its history stays until trimmed)'))
    .action(action(async (name: string, flags: ClientFlags) => {
      const result = await apiClient(flags).delete(path(name));
      if (flags.output === 'json') printJson(result);
      else process.stdout.write(`job ${name} deleted\n`);
    }));

  for (const [verb, description] of [['pause', 'stop scheduling new runs'], ['resume', 'schedule runs again']] as const) {
    withClientOptions(job.command(`${verb} <name>`).description(description))
      .action(action(async (name: string, flags: ClientFlags) => {
        const result = (await apiClient(flags).post(path(name, `/${verb}`))) as { unchanged: boolean };
        if (flags.output === 'json') printJson(result);
        else process.stdout.write(`job ${name} ${verb === 'pause' ? 'paused' : 'resumed'}${result.unchanged ? ' (already)' : ''}\n`);
      }));
  }

}

/** run, kill, history, logs, timeline: the runs of a job. */
function registerRunCommands(job: Command): void {
  withClientOptions(job.command('run <name>').description('run the job once now (on any eligible worker)'))
    .action(action(async (name: string, flags: ClientFlags) => {
      const result = (await apiClient(flags).post(path(name, '/run'))) as { requested: { slot: string } };
      if (flags.output === 'json') printJson(result);
      else process.stdout.write(`run of ${name} requested for slot ${result.requested.slot}\n`);
    }));

  withClientOptions(job.command('kill <name> [run]').description('kill the live run(s) of a job (or one run id / slot)'))
    .action(action(async (name: string, run: string | undefined, flags: ClientFlags) => {
      const query = run === undefined ? '' : `?run=${encodeURIComponent(run)}`;
      const result = (await apiClient(flags).post(path(name, `/kill${query}`))) as { killed: { runId: string; worker: string }[] };
      if (flags.output === 'json') printJson(result);
      else if (result.killed.length === 0) process.stdout.write(`job ${name} has no live run\n`);
      else for (const k of result.killed) process.stdout.write(`killing ${k.runId} on ${k.worker}\n`);
    }));

  withClientOptions(job.command('history <name>').description('runs of a job, newest first'))
    .option('--rev <n>', 'history as it stood at store revision N')
    .option('--limit <n>', 'at most this many runs', '50')
    .action(action(async (name: string, flags: { rev?: string; limit: string } & ClientFlags) => {
      const query = new URLSearchParams({ limit: flags.limit });
      if (flags.rev !== undefined) query.set('rev', flags.rev);
      const result = (await apiClient(flags).get(path(name, `/history?${query.toString()}`))) as { revision: number; runs: RunView[] };
      if (flags.output === 'json') return printJson(result);
      process.stdout.write(`# job ${name} at revision ${result.revision}\n`);
      process.stdout.write(renderTable(
        // STARTED: how long after its slot the run started (jitter included): late starts show here.
        ['SLOT', 'STATE', 'ATTEMPT', 'WORKER', 'FENCE', 'EXIT', 'DURATION', 'STARTED', 'REASON'],
        result.runs.map((r) => [
          r.slot, r.state + (r.catchUp === true ? ' (catch-up)' : ''), r.attempt, r.worker, r.fence,
          r.exitCode ?? r.signal ?? (r.httpStatus === undefined ? undefined : `HTTP ${r.httpStatus}`), durationText(r.startedAtMs, r.endedAtMs),
          offsetText(Date.parse(r.slot), r.startedAtMs),
          [r.triggeredBy === undefined ? undefined : `after ${r.triggeredBy}`, r.reason].filter((t) => t !== undefined).join('; '),
        ]),
      ));
    }));

  withClientOptions(job.command('alerts <name>').description('alert deliveries of a job (webhook, command), newest first'))
    .action(action(async (name: string, flags: ClientFlags) => {
      const result = (await apiClient(flags).get(path(name, '/alerts'))) as { revision: number; alerts: AlertRecord[] };
      if (flags.output === 'json') return printJson(result);
      const rows = result.alerts.flatMap((a) => (Object.entries(a.channels) as [string, ChannelDelivery][]).map(([channel, d]) => {
        const last = d.attempts[d.attempts.length - 1];
        return [a.slot, a.attempt, a.state, channel, d.status, d.attempts.length, last?.detail, last === undefined ? undefined : new Date(last.atMs).toISOString()];
      }));
      process.stdout.write(renderTable(['SLOT', 'ATTEMPT', 'STATE', 'CHANNEL', 'DELIVERY', 'TRIES', 'LAST', 'AT'], rows));
    }));

  withApiAccessOptions(job.command('logs <name> [run]')
    .description('output of a run (default: the latest); --follow streams it live while it runs'))
    .option('-f, --follow', 'keep printing output until the run ends')
    .action(action(async (name: string, run: string | undefined, flags: { follow?: boolean } & ApiAccessFlags) => {
      const query = new URLSearchParams();
      if (run !== undefined) query.set('run', run);
      if (flags.follow === true) query.set('follow', '1');
      await apiClient(flags)
        .stream(path(name, `/logs?${query.toString()}`), (chunk) => process.stdout.write(chunk));
    }));

  withClientOptions(job.command('timeline <name>').description('lock acquisitions and releases of a job, from the store\'s MVCC history'))
    .option('--from <rev>', 'first revision (default: oldest uncompacted)')
    .option('--to <rev>', 'last revision (default: current)')
    .action(action(async (name: string, flags: { from?: string; to?: string } & ClientFlags) => {
      const query = new URLSearchParams();
      if (flags.from !== undefined) query.set('from', flags.from);
      if (flags.to !== undefined) query.set('to', flags.to);
      const result = (await apiClient(flags).get(path(name, `/timeline?${query.toString()}`))) as {
        fromRevision: number; toRevision: number; events: TimelineEvent[]; truncated: boolean;
      };
      if (flags.output === 'json') return printJson(result);
      process.stdout.write(`# job ${name}, revisions ${result.fromRevision}..${result.toRevision}${result.truncated ? ' (truncated)' : ''}\n`);
      process.stdout.write(renderTable(
        ['REV', 'EVENT', 'SLOT', 'WORKER', 'FENCE', 'LEASE', 'CAUSE'],
        result.events.map((e) => [e.revision, e.type, e.slot, e.worker, e.fence, BigInt(e.leaseId).toString(16), e.cause]),
      ));
    }));
}
