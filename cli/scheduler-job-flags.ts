import type { Command } from 'commander';
import { CliError } from './scheduler-api-client.js';

/**
 * `etcron job add` flags and how they map onto JobSpec fields. Values are passed through as typed
 * by the user (numbers only when they look like integers), so that the spec parser, not the CLI,
 * decides what is valid and names the field in its error.
 */
export interface JobFlagValues {
  readonly schedule?: string;
  readonly command?: string;
  readonly httpUrl?: string;
  readonly httpMethod?: string;
  readonly httpHeader?: readonly string[];
  readonly httpBody?: string;
  readonly httpExpectStatus?: string;
  readonly alertWebhook?: string;
  readonly alertCommand?: string;
  readonly alertOn?: string;
  readonly after?: string;
  readonly afterOn?: string;
  readonly timezone?: string;
  readonly env?: readonly string[];
  readonly cwd?: string;
  readonly timeout?: string;
  readonly killGrace?: string;
  readonly retries?: string;
  readonly retryBackoff?: string;
  readonly retryBackoffMax?: string;
  readonly overlap?: string;
  readonly catchUpWindow?: string;
  readonly catchUpMax?: string;
  readonly lateStart?: string;
  readonly tags?: string;
  readonly preferWorkers?: string;
  readonly broadcast?: boolean;
  readonly paused?: boolean;
  readonly historyCount?: string;
  readonly historyAge?: string;
  readonly outputTailBytes?: string;
  readonly jitter?: string;
}

/** Spec field → the flag that sets it, to phrase errors in the user's own terms. */
export const FLAG_FOR_FIELD: Readonly<Record<string, string>> = {
  schedule: '--schedule',
  command: '--command (or --http-url)',
  http: '--http-url',
  'http.url': '--http-url',
  'http.method': '--http-method',
  'http.headers': '--http-header',
  'http.body': '--http-body',
  'http.expectStatus': '--http-expect-status',
  alerts: '--alert-webhook/--alert-command',
  'alerts.on': '--alert-on',
  'alerts.webhook.url': '--alert-webhook',
  'alerts.command': '--alert-command',
  after: '--after',
  'after.job': '--after',
  'after.on': '--after-on',
  timezone: '--timezone',
  env: '--env',
  cwd: '--cwd',
  timeoutMs: '--timeout',
  killGraceMs: '--kill-grace',
  'retries.count': '--retries',
  'retries.backoffInitialMs': '--retry-backoff',
  'retries.backoffMaxMs': '--retry-backoff-max',
  overlap: '--overlap',
  'catchUp.windowMs': '--catch-up-window',
  'catchUp.max': '--catch-up-max',
  'catchUp.lateStartMs': '--late-start',
  tags: '--tags',
  preferWorkers: '--prefer-workers',
  'history.countMax': '--history-count',
  'history.ageMs': '--history-age',
  outputTailBytesMax: '--output-tail-bytes',
  jitterMs: '--jitter',
};

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function addJobFlags(command: Command): Command {
  return command
    .requiredOption('--schedule <cron>', 'cron with optional seconds, a macro (@hourly) or "@every 10s"')
    .option('--command <shell>', 'shell command, run with /bin/sh -c (or give --http-url)')
    .option('--http-url <url>', 'run the job as an HTTP request to this URL, made by the worker')
    .option('--http-method <method>', 'GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS (default GET)')
    .option('--http-header <"Name: value">', 'request header (repeatable)', collect)
    .option('--http-body <text>', 'request body')
    .option('--http-expect-status <codes>', 'statuses that count as success, e.g. 200,204 (default any 2xx)')
    .option('--timezone <iana>', 'IANA time zone of the schedule (default UTC)')
    .option('--env <KEY=VALUE>', 'environment variable for the run (repeatable)', collect)
    .option('--cwd <dir>', 'working directory of the run')
    .option('--timeout <duration>', 'kill the run after this long, e.g. 30s, 5m (default: none)')
    .option('--kill-grace <duration>', 'time between SIGTERM and SIGKILL (default 5s)')
    .option('--retries <n>', 'attempts after a failed first one (default 0)')
    .option('--retry-backoff <duration>', 'first retry delay (default 1s)')
    .option('--retry-backoff-max <duration>', 'largest retry delay (default 60s)')
    .option('--overlap <policy>', 'Allow | Forbid | Replace | BufferOne (default Allow)')
    .option('--catch-up-window <duration>', 'run slots missed during downtime if younger than this (default 0)')
    .option('--catch-up-max <n>', 'at most this many missed slots are run (default 1)')
    .option('--late-start <duration>', 'a slot delayed by load still starts if this late at most (default 60s)')
    .option('--tags <a,b>', 'only workers with all of these tags run the job')
    .option('--prefer-workers <id,id>', 'affinity: the first of these live workers runs each slot; others take over after their delay')
    .option('--broadcast', 'one run per eligible worker per slot')
    .option('--paused', 'create the job paused')
    .option('--history-count <n>', 'keep at most this many runs (default 100)')
    .option('--history-age <duration>', 'drop runs older than this (default 7d)')
    .option('--output-tail-bytes <n>', 'bytes of output kept per run (default 262144)')
    .option('--jitter <duration>', 'start each run up to this long after its slot (default 0)')
    .option('--alert-webhook <url>', 'POST an alert (JSON) here when a run ends in an --alert-on state')
    .option('--alert-command <shell>', 'run this command (by the leading master) on such an alert')
    .option('--alert-on <states>', 'run states that alert (default failed,timeout,lost,missed)')
    .option('--after <job>', 'also run once after each run of this job (with --schedule @triggered: only then)')
    .option('--after-on <outcome>', 'success, failure or always (default success)');
}

function numberIfInteger(value: string): string | number {
  return /^-?\d+$/.test(value.trim()) ? Number(value) : value;
}

/** Builds the raw spec object from flags; undefined flags are left out so defaults apply. */
export function specFromFlags(name: string, flags: JobFlagValues): Record<string, unknown> {
  const spec: Record<string, unknown> = { name };
  const set = (field: string, value: unknown): void => {
    if (value !== undefined) spec[field] = value;
  };
  set('schedule', flags.schedule);
  set('command', flags.command);
  const http = httpFromFlags(flags);
  if (http !== undefined) spec['http'] = http;
  set('timezone', flags.timezone);
  if (flags.env !== undefined) {
    const env: Record<string, string> = {};
    for (const pair of flags.env) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new CliError(`env (--env): expected KEY=VALUE (got ${JSON.stringify(pair)})`);
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    spec['env'] = env;
  }
  set('cwd', flags.cwd);
  set('timeoutMs', flags.timeout);
  set('killGraceMs', flags.killGrace);
  const retries: Record<string, unknown> = {};
  if (flags.retries !== undefined) retries['count'] = numberIfInteger(flags.retries);
  if (flags.retryBackoff !== undefined) retries['backoffInitialMs'] = flags.retryBackoff;
  if (flags.retryBackoffMax !== undefined) retries['backoffMaxMs'] = flags.retryBackoffMax;
  if (Object.keys(retries).length > 0) spec['retries'] = retries;
  set('overlap', flags.overlap);
  const catchUp: Record<string, unknown> = {};
  if (flags.catchUpWindow !== undefined) catchUp['windowMs'] = flags.catchUpWindow;
  if (flags.catchUpMax !== undefined) catchUp['max'] = numberIfInteger(flags.catchUpMax);
  if (flags.lateStart !== undefined) catchUp['lateStartMs'] = flags.lateStart;
  if (Object.keys(catchUp).length > 0) spec['catchUp'] = catchUp;
  if (flags.tags !== undefined) {
    spec['tags'] = flags.tags.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  }
  if (flags.preferWorkers !== undefined) {
    spec['preferWorkers'] = flags.preferWorkers.split(',').map((w) => w.trim()).filter((w) => w.length > 0);
  }
  if (flags.broadcast === true) spec['broadcast'] = true;
  if (flags.paused === true) spec['paused'] = true;
  const history: Record<string, unknown> = {};
  if (flags.historyCount !== undefined) history['countMax'] = numberIfInteger(flags.historyCount);
  if (flags.historyAge !== undefined) history['ageMs'] = flags.historyAge;
  if (Object.keys(history).length > 0) spec['history'] = history;
  if (flags.outputTailBytes !== undefined) spec['outputTailBytesMax'] = numberIfInteger(flags.outputTailBytes);
  set('jitterMs', flags.jitter);
  if (flags.alertWebhook !== undefined || flags.alertCommand !== undefined || flags.alertOn !== undefined) {
    spec['alerts'] = {
      ...(flags.alertOn === undefined ? {} : { on: flags.alertOn.split(',').map((state) => state.trim()).filter((state) => state !== '') }),
      ...(flags.alertWebhook === undefined ? {} : { webhook: { url: flags.alertWebhook } }),
      ...(flags.alertCommand === undefined ? {} : { command: flags.alertCommand }),
    };
  }
  if (flags.after !== undefined || flags.afterOn !== undefined) {
    spec['after'] = { ...(flags.after === undefined ? {} : { job: flags.after }), ...(flags.afterOn === undefined ? {} : { on: flags.afterOn }) };
  }
  return spec;
}

/** The `http` object from the --http-* flags; undefined without --http-url (the parser names what is missing). */
function httpFromFlags(flags: JobFlagValues): Record<string, unknown> | undefined {
  const rest = [flags.httpMethod, flags.httpHeader, flags.httpBody, flags.httpExpectStatus];
  if (flags.httpUrl === undefined) {
    if (rest.some((v) => v !== undefined)) throw new CliError('--http-method/--http-header/--http-body/--http-expect-status need --http-url');
    return undefined;
  }
  const http: Record<string, unknown> = { url: flags.httpUrl };
  if (flags.httpMethod !== undefined) http['method'] = flags.httpMethod;
  if (flags.httpHeader !== undefined) {
    const headers: Record<string, string> = {};
    for (const line of flags.httpHeader) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new CliError(`http.headers (--http-header): expected "Name: value" (got ${JSON.stringify(line)})`);
      headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    }
    http['headers'] = headers;
  }
  if (flags.httpBody !== undefined) http['body'] = flags.httpBody;
  if (flags.httpExpectStatus !== undefined) {
    http['expectStatus'] = flags.httpExpectStatus.split(',').map((s) => numberIfInteger(s.trim()));
  }
  return http;
}
