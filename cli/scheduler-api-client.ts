/**
 * The CLI's client for the master HTTP API. Any master (leader or standby) serves the API, so
 * ETCRON_API / --api may list several URLs: a request goes to the first that answers, which keeps
 * the CLI working while a master is down.
 */

export const DEFAULT_API_URL = 'http://127.0.0.1:7070';
/** An unreachable master must fail the command within a few seconds, not hang. */
export const API_CONNECT_TIMEOUT_MS = 5_000;
export const API_REQUEST_TIMEOUT_MS = 15_000;

/** An error the CLI prints as one line and exits non-zero on; no stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A refusal from the API, with its stable code (e.g. ETCRON_JOB_EXISTS). */
export class ApiRefusal extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: readonly { field: string; message: string }[],
  ) {
    super(message, status === 404 ? 3 : 2);
  }
}

export function parseApiUrls(value: string | undefined): string[] {
  const raw = value ?? process.env['ETCRON_API'] ?? DEFAULT_API_URL;
  const urls = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (/^https?:\/\//.test(s) ? s : `http://${s}`).replace(/\/+$/, ''));
  if (urls.length === 0) throw new CliError('no master API URL given (--api or ETCRON_API)');
  for (const url of urls) {
    try {
      new URL(url);
    } catch {
      throw new CliError(`invalid master API URL: ${url}`);
    }
  }
  return urls;
}

export class ApiClient {
  constructor(private readonly urls: readonly string[]) {}

  async get(path: string): Promise<unknown> {
    return this.json('GET', path, undefined);
  }
  async post(path: string, body?: unknown): Promise<unknown> {
    return this.json('POST', path, body);
  }
  async put(path: string, body: unknown): Promise<unknown> {
    return this.json('PUT', path, body);
  }
  async delete(path: string): Promise<unknown> {
    return this.json('DELETE', path, undefined);
  }

  /** Streams a plain-text response body into `sink` as it arrives (logs --follow). */
  async stream(path: string, sink: (chunk: string) => void): Promise<void> {
    const response = await this.send('GET', path, undefined, false);
    if (!response.ok) await this.refuse(response);
    const body = response.body;
    if (body === null) return;
    const decoder = new TextDecoder();
    for await (const chunk of body) sink(decoder.decode(chunk as Uint8Array, { stream: true }));
    const rest = decoder.decode();
    if (rest.length > 0) sink(rest);
  }

  private async json(method: string, path: string, body: unknown): Promise<unknown> {
    const response = await this.send(method, path, body, true);
    if (!response.ok) await this.refuse(response);
    const text = await response.text();
    return text.length === 0 ? undefined : (JSON.parse(text) as unknown);
  }

  private async refuse(response: Response): Promise<never> {
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CliError(`master answered ${response.status}: ${text.slice(0, 200)}`);
    }
    const error = (parsed as { error?: { code?: unknown; message?: unknown; fields?: unknown } })
      .error;
    const message = typeof error?.message === 'string' ? error.message : text.slice(0, 200);
    const code = typeof error?.code === 'string' ? error.code : 'UNKNOWN';
    const fields = Array.isArray(error?.fields)
      ? (error.fields as { field: string; message: string }[])
      : [];
    throw new ApiRefusal(response.status, code, message, fields);
  }

  /**
   * Tries each URL in turn. Only failures to connect move on to the next master: once a master
   * answered (even with an error), its answer stands, so a write is never sent twice.
   */
  private async send(
    method: string,
    path: string,
    body: unknown,
    isBounded: boolean,
  ): Promise<Response> {
    const failures: string[] = [];
    for (const base of this.urls) {
      const connect = new AbortController();
      const timer = setTimeout(() => connect.abort(), API_CONNECT_TIMEOUT_MS);
      const signals = [connect.signal];
      if (isBounded) signals.push(AbortSignal.timeout(API_REQUEST_TIMEOUT_MS));
      try {
        const init: RequestInit = {
          method,
          signal: AbortSignal.any(signals),
          headers: { accept: 'application/json', 'content-type': 'application/json' },
        };
        if (body !== undefined) init.body = JSON.stringify(body);
        // fetch resolves once headers arrive; clear the connect timer then, not at body end.
        const response = await fetch(`${base}${path}`, init);
        clearTimeout(timer);
        return response;
      } catch (err) {
        clearTimeout(timer);
        const reason = describeFetchError(err);
        // A write that timed out may have been applied: do not send it to another master.
        if (method !== 'GET' && !isNotSent(err)) {
          throw new CliError(`master ${base} did not answer (${reason}); the ${method} may or may not have been applied`);
        }
        failures.push(`${base}: ${reason}`);
      }
    }
    throw new CliError(`cannot reach the master API (${failures.join('; ')})`);
  }
}

/** True when the request certainly never reached a server (connection refused or not found). */
function isNotSent(err: unknown): boolean {
  const cause = err instanceof Error ? (err as { cause?: unknown }).cause : undefined;
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'EAI_AGAIN';
}

function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'AbortError' || err.name === 'TimeoutError') return 'timed out';
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code;
      return typeof code === 'string' ? code : cause.message;
    }
    return err.message;
  }
  return String(err);
}
