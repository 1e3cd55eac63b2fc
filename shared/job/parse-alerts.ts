import { Checker, isRecord } from './checker.js';
import { ALERT_STATES, JOB_DEFAULTS, JOB_LIMITS, type AlertSpec, type AlertState } from './spec.js';

const ALERT_FIELDS = ['on', 'webhook', 'command'] as const;
const WEBHOOK_FIELDS = ['url', 'headers'] as const;

/** Validates a job's `alerts` object; problems go to the checker, under `alerts.`. */
export function parseAlerts(c: Checker, value: unknown): AlertSpec | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) return c.fail('alerts', 'must be an object with a webhook and/or a command');
  c.strict(value, ALERT_FIELDS, 'alerts.');
  const on = parseStates(c, value['on']);
  const webhook = value['webhook'] === undefined ? undefined : parseWebhook(c, value['webhook']);
  const command = value['command'];
  if (command !== undefined && (typeof command !== 'string' || command.trim() === '' || Buffer.byteLength(command) > JOB_LIMITS.commandBytesMax)) {
    c.fail('alerts.command', `must be a non-empty shell command of at most ${JOB_LIMITS.commandBytesMax} bytes`);
  }
  if (value['webhook'] === undefined && command === undefined) c.fail('alerts', 'needs a webhook, a command, or both');
  if (on === undefined || (value['webhook'] !== undefined && webhook === undefined)) return undefined;
  return {
    on,
    ...(webhook === undefined ? {} : { webhook }),
    ...(typeof command === 'string' ? { command } : {}),
  };
}

function parseStates(c: Checker, value: unknown): AlertState[] | undefined {
  if (value === undefined) return [...JOB_DEFAULTS.alertOn];
  const list = Array.isArray(value) ? value : [value];
  const states = list.map((v) => ALERT_STATES.find((s) => s === v));
  if (list.length === 0 || states.some((s) => s === undefined)) {
    return c.fail('alerts.on', `must list run states among ${ALERT_STATES.join(', ')}`);
  }
  // Kept in the order of ALERT_STATES, each once: the stored form does not depend on the input's.
  return ALERT_STATES.filter((s) => states.includes(s));
}

function parseWebhook(c: Checker, value: unknown): AlertSpec['webhook'] {
  if (!isRecord(value)) return c.fail('alerts.webhook', 'must be an object with a url');
  c.strict(value, WEBHOOK_FIELDS, 'alerts.webhook.');
  const raw = value['url'];
  let url: URL | undefined;
  try {
    url = typeof raw === 'string' ? new URL(raw) : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    return c.fail('alerts.webhook.url', 'must be an http:// or https:// URL');
  }
  const headersInput = value['headers'] ?? {};
  if (!isRecord(headersInput) || !Object.values(headersInput).every((v) => typeof v === 'string' && !/[\r\n\0]/.test(v))) {
    return c.fail('alerts.webhook.headers', 'must map header names to single-line strings');
  }
  const headers: Record<string, string> = {};
  for (const [name, v] of Object.entries(headersInput)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) return c.fail(`alerts.webhook.headers.${name}`, 'is not a valid header name');
    headers[name.toLowerCase()] = v as string;
  }
  return { url: url.toString(), headers };
}
