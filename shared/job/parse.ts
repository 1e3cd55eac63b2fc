import { validateJobName, validateWorkerId } from '../keys.js';
import { parseDurationMs } from './duration.js';
import { compileSchedule } from './schedule.js';
import { JOB_DEFAULTS, JOB_LIMITS, OVERLAP_POLICIES, type JobSpec, type OverlapPolicy, type RetryPolicy } from './spec.js';

/** One problem with a spec; `field` is a dotted path such as "retries.count". */
export interface JobSpecIssue {
  readonly field: string;
  readonly reason: string;
}

export type JobSpecResult = { ok: true; spec: JobSpec } | { ok: false; errors: readonly JobSpecIssue[] };

const TOP_FIELDS = [
  'name', 'schedule', 'timezone', 'command', 'argv', 'env', 'cwd', 'timeoutMs', 'killGraceMs', 'retries', 'overlap',
  'catchUp', 'tags', 'preferWorkers', 'broadcast', 'paused', 'history', 'outputTailBytesMax', 'jitterMs',
  'createdAtMs',
] as const;
const RETRY_FIELDS = ['count', 'backoffInitialMs', 'backoffMaxMs', 'backoffMultiplier'] as const;
const CATCH_UP_FIELDS = ['windowMs', 'max'] as const;
const HISTORY_FIELDS = ['countMax', 'ageMs'] as const;
const TAG_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:=-]*$/;

type Fields = Record<string, unknown>;

function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects issues so that one call reports every bad field, not just the first. */
class Checker {
  readonly errors: JobSpecIssue[] = [];

  fail(field: string, reason: string): undefined {
    this.errors.push({ field, reason });
    return undefined;
  }

  strict(input: Fields, allowed: readonly string[], path: string): void {
    for (const key of Object.keys(input)) {
      if (!allowed.includes(key)) this.fail(path + key, `unknown field; allowed: ${allowed.join(', ')}`);
    }
  }

  record(value: unknown, field: string): Fields | undefined {
    if (value === undefined) return {};
    return isRecord(value) ? value : this.fail(field, 'must be an object');
  }

  duration(value: unknown, field: string, fallback: number, minMs: number): number {
    if (value === undefined) return fallback;
    const parsed = parseDurationMs(value, { minMs, maxMs: JOB_LIMITS.durationMsMax });
    return parsed.ok ? parsed.ms : (this.fail(field, parsed.reason) ?? fallback);
  }

  integer(value: unknown, field: string, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      return this.fail(field, `must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`) ?? fallback;
    }
    return value;
  }

  boolean(value: unknown, field: string): boolean {
    if (value === undefined) return false;
    return typeof value === 'boolean' ? value : (this.fail(field, 'must be true or false') ?? false);
  }

  stringList(value: unknown, field: string, itemsMax: number): string[] {
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.length > itemsMax || !value.every((v) => typeof v === 'string')) {
      return this.fail(field, `must be a list of at most ${itemsMax} strings`) ?? [];
    }
    return value as string[];
  }
}

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
  const timeoutMs = input['timeoutMs'] === undefined ? undefined : c.duration(input['timeoutMs'], 'timeoutMs', 0, 1);
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
    ...(typeof createdAtInput === 'number' ? { createdAtMs: createdAtInput } : {}),
  };
  return { ok: true, spec };
}

function parseCommand(c: Checker, input: Fields): { command: string } | { argv: string[] } | undefined {
  const command = input['command'];
  const argv = input['argv'];
  if ((command === undefined) === (argv === undefined)) {
    return c.fail(command === undefined ? 'command' : 'argv', 'exactly one of command and argv is required');
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
