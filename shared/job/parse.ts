import { validateJobName, validateWorkerId } from '../keys.js';
import { Checker, isRecord, type Fields, type JobSpecIssue } from './checker.js';
import { compileSchedule } from './schedule.js';
import { parseHttpRequest } from './parse-http.js';
import { parseAlerts } from './parse-alerts.js';
import { AFTER_OUTCOMES, JOB_DEFAULTS, JOB_LIMITS, OVERLAP_POLICIES, type AfterSpec, type HttpRequestSpec, type JobSpec, type OverlapPolicy, type RetryPolicy } from './spec.js';

export type { JobSpecIssue } from './checker.js';

export type JobSpecResult = { ok: true; spec: JobSpec } | { ok: false; errors: readonly JobSpecIssue[] };

const TOP_FIELDS = [
  'name', 'schedule', 'timezone', 'command', 'argv', 'http', 'env', 'cwd', 'timeoutMs', 'killGraceMs', 'retries', 'overlap',
  'catchUp', 'tags', 'preferWorkers', 'broadcast', 'paused', 'history', 'outputTailBytesMax', 'jitterMs',
  'alerts', 'after', 'createdAtMs',
] as const;
const RETRY_FIELDS = ['count', 'backoffInitialMs', 'backoffMaxMs', 'backoffMultiplier'] as const;
const CATCH_UP_FIELDS = ['windowMs', 'max', 'lateStartMs'] as const;
const HISTORY_FIELDS = ['countMax', 'ageMs'] as const;
const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:=-]*$/;

/**
 * Validates untrusted input (CLI flags, a JSON/YAML file, a stored value) into a JobSpec. Strict:
 * unknown fields are rejected, so a typo such as "schedul" can never create a job without a schedule.
 */
export function parseJobSpec(input: unknown): JobSpecResult {
  const c = new Checker();
  if (!isRecord(input)) return { ok: false, errors: [{ field: '(root)', reason: 'job spec must be an object' }] };
  c.strict(input, TOP_FIELDS, '');
  const name = validateJobName(input['name']);
  if (!name.ok) c.fail('name', name.reason);

  const schedule = compileSchedule(input['schedule'], input['timezone'] ?? JOB_DEFAULTS.timezone);
  if (!schedule.ok) c.fail(schedule.field, schedule.reason);

  const command = parseCommand(c, input);
  const env = parseEnv(c, input['env']);
  const cwd = input['cwd'];
  if (cwd !== undefined && (typeof cwd !== 'string' || cwd.length === 0 || cwd.length > 4096)) {
    c.fail('cwd', 'must be a non-empty path');
  }
  const timeoutMs = input['timeoutMs'] === undefined
    ? (input['http'] === undefined ? undefined : JOB_DEFAULTS.httpTimeoutMs)
    : c.duration(input['timeoutMs'], 'timeoutMs', 0, 1);
  const killGraceMs = c.duration(input['killGraceMs'], 'killGraceMs', JOB_DEFAULTS.killGraceMs, 0);
  const retries = parseRetries(c, input['retries']);

  const overlapInput = input['overlap'] ?? JOB_DEFAULTS.overlap;
  const overlap = OVERLAP_POLICIES.find((p) => p === overlapInput);
  if (overlap === undefined) c.fail('overlap', `must be one of ${OVERLAP_POLICIES.join(', ')} (got ${JSON.stringify(overlapInput)})`);

  const catchUpInput = c.record(input['catchUp'], 'catchUp') ?? {};
  c.strict(catchUpInput, CATCH_UP_FIELDS, 'catchUp.');
  const catchUp = {
    windowMs: c.duration(catchUpInput['windowMs'], 'catchUp.windowMs', JOB_DEFAULTS.catchUp.windowMs, 0),
    max: c.integer(catchUpInput['max'], 'catchUp.max', JOB_DEFAULTS.catchUp.max, 0, JOB_LIMITS.catchUpMax),
    lateStartMs: c.duration(catchUpInput['lateStartMs'], 'catchUp.lateStartMs', JOB_DEFAULTS.catchUp.lateStartMs, 0),
  };

  const tags = c.stringList(input['tags'], 'tags', JOB_LIMITS.tagsMax);
  for (const tag of tags) {
    if (!TAG_PATTERN.test(tag) || tag.length > JOB_LIMITS.tagBytesMax) c.fail('tags', `bad tag ${JSON.stringify(tag)}`);
  }
  const preferWorkers = parsePreferWorkers(c, input['preferWorkers']);
  const historyInput = c.record(input['history'], 'history') ?? {};
  c.strict(historyInput, HISTORY_FIELDS, 'history.');
  const history = {
    countMax: c.integer(historyInput['countMax'], 'history.countMax', JOB_DEFAULTS.history.countMax, 1, JOB_LIMITS.historyCountMax),
    ageMs: c.duration(historyInput['ageMs'], 'history.ageMs', JOB_DEFAULTS.history.ageMs, 1_000),
  };
  const outputTailBytesMax = c.integer(
    input['outputTailBytesMax'], 'outputTailBytesMax', JOB_DEFAULTS.outputTailBytesMax, 0, JOB_LIMITS.outputTailBytesMax,
  );
  const jitterMs = c.duration(input['jitterMs'], 'jitterMs', JOB_DEFAULTS.jitterMs, 0);
  const broadcast = c.boolean(input['broadcast'], 'broadcast');
  const paused = c.boolean(input['paused'], 'paused');
  const alerts = parseAlerts(c, input['alerts']);
  const after = parseAfter(c, input['after'], input['name']);
  const createdAtInput = input['createdAtMs'];
  if (createdAtInput !== undefined && !(Number.isSafeInteger(createdAtInput) && (createdAtInput as number) >= 0)) {
    c.fail('createdAtMs', 'must be a non-negative integer (ms since the epoch)');
  }

  if (c.errors.length > 0 || !name.ok || !schedule.ok || overlap === undefined || command === undefined) {
    return { ok: false, errors: c.errors };
  }
  const spec: JobSpec = {
    name: input['name'] as string,
    schedule: schedule.schedule.source,
    timezone: schedule.schedule.timezone,
    ...command,
    env,
    ...(typeof cwd === 'string' ? { cwd } : {}),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    killGraceMs, retries, overlap: overlap satisfies OverlapPolicy, catchUp, tags: [...tags].sort(),
    // Order is the preference, so it is kept as given.
    ...(preferWorkers.length === 0 ? {} : { preferWorkers }), broadcast, paused,
    history, outputTailBytesMax, jitterMs,
    ...(alerts === undefined ? {} : { alerts }),
    ...(after === undefined ? {} : { after }),
    ...(typeof createdAtInput === 'number' ? { createdAtMs: createdAtInput } : {}),
  };
  return { ok: true, spec };
}

/** Exactly one way to run the job: a shell command, an argv, or an HTTP request. */
function parseCommand(c: Checker, input: Fields): { command: string } | { argv: string[] } | { http: HttpRequestSpec } | undefined {
  const command = input['command'];
  const argv = input['argv'];
  const http = input['http'];
  const given = [command, argv, http].filter((v) => v !== undefined).length;
  if (given !== 1) {
    // None: ask for a command; several: name the one that is one too many.
    const field = given === 0 ? 'command' : (command !== undefined && argv !== undefined ? 'argv' : 'http');
    return c.fail(field, 'exactly one of command, argv and http is required');
  }
  if (http !== undefined) {
    const request = parseHttpRequest(c, http);
    if (input['env'] !== undefined && isRecord(input['env']) && Object.keys(input['env']).length > 0) {
      c.fail('env', 'applies to command and argv jobs; an HTTP job sends headers instead');
    }
    if (input['cwd'] !== undefined) c.fail('cwd', 'applies to command and argv jobs only');
    return request === undefined ? undefined : { http: request };
  }
  if (command !== undefined) {
    if (typeof command !== 'string' || command.trim().length === 0) return c.fail('command', 'must be a non-empty string');
    if (Buffer.byteLength(command) > JOB_LIMITS.commandBytesMax) {
      return c.fail('command', `is longer than ${JOB_LIMITS.commandBytesMax} bytes`);
    }
    return { command };
  }
  const list = c.stringList(argv, 'argv', JOB_LIMITS.argvItemsMax);
  if (list.length === 0 || list[0] === '') return c.fail('argv', 'must name a program');
  if (Buffer.byteLength(list.join('\0')) > JOB_LIMITS.commandBytesMax) {
    return c.fail('argv', `is longer than ${JOB_LIMITS.commandBytesMax} bytes`);
  }
  return { argv: list };
}

/** `after: {job, on}`: the parent job's name (not this job's) and which of its outcomes trigger. */
function parseAfter(c: Checker, value: unknown, ownName: unknown): AfterSpec | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) return c.fail('after', 'must be an object with the parent job and on: success, failure or always');
  c.strict(value, ['job', 'on'], 'after.');
  const parent = validateJobName(value['job']);
  if (!parent.ok) return c.fail('after.job', parent.reason);
  if (value['job'] === ownName) return c.fail('after.job', 'a job cannot run after itself');
  const onInput = value['on'] ?? 'success';
  const on = AFTER_OUTCOMES.find((o) => o === onInput);
  if (on === undefined) return c.fail('after.on', `must be one of ${AFTER_OUTCOMES.join(', ')}`);
  return { job: value['job'] as string, on };
}

function parsePreferWorkers(c: Checker, value: unknown): string[] {
  const ids = c.stringList(value, 'preferWorkers', JOB_LIMITS.preferWorkersMax);
  const seen = new Set<string>();
  for (const id of ids) {
    const check = validateWorkerId(id);
    if (!check.ok) c.fail('preferWorkers', check.reason);
    else if (seen.has(id)) c.fail('preferWorkers', `worker ${JSON.stringify(id)} is listed twice`);
    seen.add(id);
  }
  return ids;
}

function parseEnv(c: Checker, value: unknown): Record<string, string> {
  const env = c.record(value, 'env') ?? {};
  let bytes = 0;
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) c.fail(`env.${key}`, 'is not a valid variable name');
    else if (key.startsWith('ETCRON_')) c.fail(`env.${key}`, 'ETCRON_ variables are set by the worker');
    else if (typeof v !== 'string') c.fail(`env.${key}`, 'must be a string');
    else out[key] = v;
    bytes += key.length + (typeof v === 'string' ? Buffer.byteLength(v) : 0);
  }
  if (bytes > JOB_LIMITS.envBytesMax) c.fail('env', `is larger than ${JOB_LIMITS.envBytesMax} bytes`);
  return out;
}

function parseRetries(c: Checker, value: unknown): RetryPolicy {
  const input = c.record(value, 'retries') ?? {};
  c.strict(input, RETRY_FIELDS, 'retries.');
  const d = JOB_DEFAULTS.retries;
  const multiplier = input['backoffMultiplier'] ?? d.backoffMultiplier;
  if (typeof multiplier !== 'number' || !Number.isFinite(multiplier) || multiplier < 1 || multiplier > 10) {
    c.fail('retries.backoffMultiplier', 'must be a number from 1 to 10');
  }
  return {
    count: c.integer(input['count'], 'retries.count', d.count, 0, JOB_LIMITS.retriesMax),
    backoffInitialMs: c.duration(input['backoffInitialMs'], 'retries.backoffInitialMs', d.backoffInitialMs, 0),
    backoffMaxMs: c.duration(input['backoffMaxMs'], 'retries.backoffMaxMs', d.backoffMaxMs, 0),
    backoffMultiplier: typeof multiplier === 'number' ? multiplier : d.backoffMultiplier,
  };
}

/** Stored form: JSON of the normalized spec. Parsing it back goes through parseJobSpec again. */
export function serializeJobSpec(spec: JobSpec): string {
  return JSON.stringify(spec);
}

export function deserializeJobSpec(text: string): JobSpecResult {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    return { ok: false, errors: [{ field: '(root)', reason: `not JSON: ${err instanceof Error ? err.message : String(err)}` }] };
  }
  return parseJobSpec(input);
}

export function formatJobSpecIssues(errors: readonly JobSpecIssue[]): string {
  return errors.map((e) => `${e.field}: ${e.reason}`).join('\n');
}
