import { spawn } from 'node:child_process';
import type { AlertSpec } from '../../shared/job/spec.js';

/** One delivery try's outcome on one channel. */
export interface SendOutcome {
  readonly ok: boolean;
  readonly detail: string;
}

/** A delivery that takes longer than this fails (and is retried). */
export const SEND_TIMEOUT_MS = 10_000;
/** Output of an alert command kept in the failure detail. */
const COMMAND_OUTPUT_BYTES_MAX = 512;

/** POSTs the alert as JSON; any 2xx is a delivery, anything else (or no answer) a failure. */
export async function sendWebhook(webhook: NonNullable<AlertSpec['webhook']>, payload: object): Promise<SendOutcome> {
  try {
    const response = await fetch(webhook.url, {
      method: 'POST',
      headers: { ...webhook.headers, 'content-type': 'application/json' },
      body: JSON.stringify(payload),
      redirect: 'manual',
      signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
    });
    await response.arrayBuffer().catch(() => undefined);
    return { ok: response.status >= 200 && response.status <= 299, detail: `HTTP ${response.status}` };
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : undefined;
    return { ok: false, detail: `request failed: ${cause ?? (err instanceof Error ? err.message : String(err))}` };
  }
}

/**
 * Runs the alert command with /bin/sh, the alert as ETCRON_ALERT_* variables and as JSON on its
 * standard input; exit 0 is a delivery. Killed (its process group) at the timeout.
 */
export function runAlertCommand(command: string, env: Readonly<Record<string, string>>, payload: object): Promise<SendOutcome> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let output = '';
    const keep = (chunk: Buffer): void => { output = (output + chunk.toString()).slice(-COMMAND_OUTPUT_BYTES_MAX); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      if (child.pid !== undefined) {
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }, SEND_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, detail: `could not run: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const how = signal === null ? `exit ${code ?? '?'}` : `signal ${signal}`;
      resolve({ ok: code === 0, detail: code === 0 ? how : `${how}${output.trim() === '' ? '' : `: ${output.trim()}`}` });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify(payload));
  });
}
